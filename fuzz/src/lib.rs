//! The decoder's invariants, checked on one fuzz input: the `decode` target runs them
//! on generated inputs, and `tests/fuzz_corpus.rs` in the main crate replays the
//! committed corpus through them. That test includes this file by path rather than
//! depending on this crate, so it may use nothing but `ringmq` and `bytes`.
//!
//! An input is one selector byte and then the byte stream. The selector picks the
//! protocol version (`selector % 3`: 3.1, 3.1.1, 5.0) and the maximum packet size
//! (`n = selector / 3`: unlimited for 0, else `n * n` bytes, 1 to 7225).

use bytes::BytesMut;
use ringmq::protocol::{FixedHeader, Packet, PacketType, ProtocolVersion};

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

/// The protocol version and maximum packet size an input's selector byte stands for.
pub fn settings(selector: u8) -> (ProtocolVersion, u32) {
    let version = VERSIONS[usize::from(selector % 3)];
    let max_packet_size = match u32::from(selector / 3) {
        0 => u32::MAX,
        n => n * n,
    };
    (version, max_packet_size)
}

/// Decodes packets from the input until the stream is partial or malformed, and
/// panics if an invariant is broken:
///
/// - decoding never panics;
/// - `Ok(None)` consumes nothing, and only happens when the frame is incomplete;
/// - `Ok(Some)` consumes exactly the frame its fixed header announces;
/// - every strict prefix of that frame decodes to `Ok(None)` (partial is never an error);
/// - the packet encodes again without error, writing `encoded_len` bytes, and those
///   bytes decode to an equal packet with nothing left over.
///
/// Returns the decoding version and the type of each packet decoded, in order.
pub fn check(data: &[u8]) -> Vec<(ProtocolVersion, PacketType)> {
    let Some((&selector, stream)) = data.split_first() else {
        return Vec::new();
    };
    let (version, max_packet_size) = settings(selector);
    let mut buf = BytesMut::from(stream);
    let mut decoded = Vec::new();
    loop {
        let offset = stream.len() - buf.len();
        let header = FixedHeader::parse(&buf);
        match Packet::decode(&mut buf, version, max_packet_size) {
            Err(_) => return decoded,
            Ok(None) => {
                assert_eq!(
                    offset,
                    stream.len() - buf.len(),
                    "Ok(None) consumed bytes at offset {offset}"
                );
                if let Ok(Some(h)) = header {
                    assert!(
                        h.frame_len() > buf.len(),
                        "Ok(None) for a complete {}-byte frame at offset {offset}",
                        h.frame_len()
                    );
                }
                return decoded;
            }
            Ok(Some(packet)) => {
                let Ok(Some(h)) = header else {
                    panic!("decoded {packet:?} but its fixed header parses as {header:?}");
                };
                let consumed = stream.len() - buf.len() - offset;
                assert_eq!(
                    consumed,
                    h.frame_len(),
                    "decoding {packet:?} consumed {consumed} bytes of a {}-byte frame",
                    h.frame_len()
                );
                let frame = &stream[offset..offset + consumed];
                check_prefixes(frame, h.header_len, version, max_packet_size);
                check_round_trip(&packet, version);
                decoded.push((version, packet.packet_type()));
            }
        }
    }
}

/// The header's prefixes and the frame less its last byte are partial packets.
fn check_prefixes(frame: &[u8], header_len: usize, version: ProtocolVersion, max: u32) {
    let last = frame.len() - 1;
    for cut in (0..=header_len.min(last)).chain([last]) {
        let mut partial = BytesMut::from(&frame[..cut]);
        let result = Packet::decode(&mut partial, version, max);
        assert_eq!(result, Ok(None), "{cut}-byte prefix of {frame:02x?}");
        assert_eq!(partial.len(), cut, "{cut}-byte prefix consumed bytes");
    }
}

/// A CONNECT is written at its own protocol level and decoded by the level it carries,
/// so `version` does not matter for it; every other packet uses `version` both ways.
fn check_round_trip(packet: &Packet, version: ProtocolVersion) {
    let mut out = BytesMut::new();
    if let Err(e) = packet.encode(version, &mut out) {
        panic!("decoded {packet:?} does not encode again for {version:?}: {e}");
    }
    assert_eq!(
        packet.encoded_len(version),
        out.len(),
        "encoded_len of {packet:?} for {version:?}"
    );
    let wire = out.to_vec();
    let again = Packet::decode(&mut out, version, u32::MAX);
    assert_eq!(
        again,
        Ok(Some(packet.clone())),
        "{packet:?} re-encoded for {version:?} as {wire:02x?}"
    );
    assert!(out.is_empty(), "{} bytes left after {wire:02x?}", out.len());
}
