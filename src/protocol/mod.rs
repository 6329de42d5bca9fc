//! The MQTT codec: every packet of MQTT 3.1, 3.1.1 and 5.0, decoded zero-copy from a
//! `BytesMut` and encoded into one. Pure: it knows nothing of sockets, clocks or the
//! broker, and depends on `bytes` and `thiserror` only.
//!
//! Decoding returns `Ok(None)` for a partial packet and consumes nothing; the
//! maximum packet size is checked from the fixed header before the body is buffered.
//! Topic names, payloads and strings are `Bytes` slices of the received frame.

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod error;
mod header;
mod primitives;
mod properties;
mod publish;
mod reason;
mod suback;
mod subscribe;
pub mod topic;
mod unsuback;
mod unsubscribe;

use bytes::{Buf, BufMut, BytesMut};

pub use ack::{PubAck, PubComp, PubRec, PubRel};
pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, Will};
pub use disconnect::Disconnect;
pub use error::{DecodeError, EncodeError};
pub use header::{FixedHeader, PacketType};
pub use primitives::{read_var_int, var_int_len, ByteStr, MAX_VAR_INT};
pub use properties::{Properties, Property, PropertyContext, PropertyId};
pub use publish::{OutgoingPublish, Publish};
pub use reason::{ReasonCode, ReasonContext};
pub use suback::SubAck;
pub use subscribe::{RetainHandling, Subscribe, SubscribeFilter, SubscriptionOptions};
pub use unsuback::UnsubAck;
pub use unsubscribe::Unsubscribe;

use primitives::{put_var_int, Reader};

/// The protocol level a connection negotiated in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name "MQIsdp".
    V3_1 = 3,
    /// MQTT 3.1.1.
    V3_1_1 = 4,
    /// MQTT 5.0.
    V5 = 5,
}

impl ProtocolVersion {
    pub fn level(self) -> u8 {
        self as u8
    }

    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

/// Quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Result<QoS, DecodeError> {
        match v {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            _ => Err(DecodeError::InvalidQoS),
        }
    }
}

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubAck),
    PubRec(PubRec),
    PubRel(PubRel),
    PubComp(PubComp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    /// Decodes one packet from the front of `buf`.
    ///
    /// `version` is the level negotiated by CONNECT (a CONNECT itself is decoded by
    /// the level it carries, whatever `version` says). `max_packet_size` bounds the
    /// whole packet, fixed header included, and is checked before the body is
    /// buffered. Returns `Ok(None)` and consumes nothing when `buf` holds only part
    /// of a packet.
    #[inline]
    pub fn decode(
        buf: &mut BytesMut,
        version: ProtocolVersion,
        max_packet_size: u32,
    ) -> Result<Option<Packet>, DecodeError> {
        let Some(header) = FixedHeader::parse(buf)? else {
            return Ok(None);
        };
        let frame_len = header.frame_len();
        if frame_len > max_packet_size as usize {
            return Err(DecodeError::PacketTooLarge {
                size: frame_len,
                max: max_packet_size,
            });
        }
        if buf.len() < frame_len {
            return Ok(None);
        }
        let mut frame = buf.split_to(frame_len).freeze();
        frame.advance(header.header_len);
        let r = Reader::new(frame);
        if header.byte1 >> 4 == PacketType::Publish as u8 {
            // PUBLISH has no fixed flags to check: they are its DUP, QoS and RETAIN.
            return Publish::decode(header.byte1 & 0x0f, r, version)
                .map(|p| Some(Packet::Publish(p)));
        }
        Packet::decode_body(header.byte1, r, version).map(Some)
    }

    /// Every packet but PUBLISH, out of line so that their code does not weigh on
    /// PUBLISH's (registers saved, stack frame).
    #[inline(never)]
    fn decode_body(byte1: u8, r: Reader, version: ProtocolVersion) -> Result<Packet, DecodeError> {
        let flags = byte1 & 0x0f;
        let kind = PacketType::from_u8(byte1 >> 4)?;
        kind.check_flags(flags)?;
        Ok(match kind {
            PacketType::Publish => Packet::Publish(Publish::decode(flags, r, version)?),
            PacketType::Connect => Packet::Connect(Box::new(Connect::decode(r)?)),
            PacketType::ConnAck => Packet::ConnAck(ConnAck::decode(r, version)?),
            PacketType::PubAck => Packet::PubAck(PubAck::decode(r, version)?),
            PacketType::PubRec => Packet::PubRec(PubRec::decode(r, version)?),
            PacketType::PubRel => Packet::PubRel(PubRel::decode(r, version)?),
            PacketType::PubComp => Packet::PubComp(PubComp::decode(r, version)?),
            PacketType::Subscribe => Packet::Subscribe(Subscribe::decode(r, version)?),
            PacketType::SubAck => Packet::SubAck(SubAck::decode(r, version)?),
            PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::decode(r, version)?),
            PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(r, version)?),
            PacketType::PingReq => {
                r.finish()?;
                Packet::PingReq
            }
            PacketType::PingResp => {
                r.finish()?;
                Packet::PingResp
            }
            PacketType::Disconnect => Packet::Disconnect(Disconnect::decode(r, version)?),
            PacketType::Auth => {
                if !version.is_v5() {
                    return Err(DecodeError::AuthInV3);
                }
                Packet::Auth(Auth::decode(r)?)
            }
        })
    }

    /// Bytes this packet takes on the wire for `version`, fixed header included.
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        let body = self.body_len(version);
        1 + var_int_len(body) + body
    }

    fn body_len(&self, version: ProtocolVersion) -> usize {
        match self {
            Packet::Connect(p) => p.body_len(),
            Packet::ConnAck(p) => p.body_len(version),
            Packet::Publish(p) => p.body_len(version),
            Packet::PubAck(p) => p.body_len(version),
            Packet::PubRec(p) => p.body_len(version),
            Packet::PubRel(p) => p.body_len(version),
            Packet::PubComp(p) => p.body_len(version),
            Packet::Subscribe(p) => p.body_len(version),
            Packet::SubAck(p) => p.body_len(version),
            Packet::Unsubscribe(p) => p.body_len(version),
            Packet::UnsubAck(p) => p.body_len(version),
            Packet::PingReq | Packet::PingResp => 0,
            Packet::Disconnect(p) => p.body_len(version),
            Packet::Auth(p) => p.body_len(),
        }
    }

    /// Appends the packet to `out`. A CONNECT is written at its own protocol level.
    pub fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Packet::Publish(p) => p.encode(version, out),
            // Out of line, so that the other packets' code does not weigh on PUBLISH's
            // (registers saved, stack frame).
            other => other.encode_other(version, out),
        }
    }

    #[inline(never)]
    fn encode_other(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        match self {
            Packet::Publish(p) => p.encode(version, out),
            Packet::Connect(p) => p.encode(out),
            Packet::ConnAck(p) => p.encode(version, out),
            Packet::PubAck(p) => p.encode(version, out),
            Packet::PubRec(p) => p.encode(version, out),
            Packet::PubRel(p) => p.encode(version, out),
            Packet::PubComp(p) => p.encode(version, out),
            Packet::Subscribe(p) => p.encode(version, out),
            Packet::SubAck(p) => p.encode(version, out),
            Packet::Unsubscribe(p) => p.encode(version, out),
            Packet::UnsubAck(p) => p.encode(version, out),
            Packet::PingReq => {
                out.put_slice(&[0xC0, 0]);
                Ok(())
            }
            Packet::PingResp => {
                out.put_slice(&[0xD0, 0]);
                Ok(())
            }
            Packet::Disconnect(p) => p.encode(version, out),
            Packet::Auth(p) => {
                if !version.is_v5() {
                    return Err(EncodeError::NotInVersion);
                }
                p.encode(out)
            }
        }
    }
}

/// Writes a fixed header after checking the body fits the four-byte length, and
/// reserves room for the whole packet so the body is written without reallocating.
#[inline]
pub(crate) fn put_header(
    out: &mut BytesMut,
    byte1: u8,
    body_len: usize,
) -> Result<(), EncodeError> {
    if body_len > MAX_VAR_INT as usize {
        return Err(EncodeError::PacketTooLarge(body_len));
    }
    out.reserve(1 + var_int_len(body_len) + body_len);
    out.put_u8(byte1);
    put_var_int(out, body_len);
    Ok(())
}
