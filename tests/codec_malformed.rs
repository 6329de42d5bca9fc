//! Malformed and forbidden input: each case names the `DecodeError` the decoder must
//! return and the reason code (`DecodeError::reason_code`) a v5 broker would answer
//! with. Then the specification's tables checked whole: which reason codes each packet
//! accepts (5.0 table 2-6, 3.1.1 tables 3.1 and 3.9.3) and where each property may
//! appear and repeat (5.0 table 2-4).

use bytes::BytesMut;
use ringmq::protocol::{
    DecodeError, Packet, PropertyContext, PropertyId, ProtocolVersion, ReasonContext,
};

const V31: ProtocolVersion = ProtocolVersion::V3_1;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

const MALFORMED: u8 = 0x81;
const PROTOCOL_ERROR: u8 = 0x82;
const UNSUPPORTED_PROTOCOL: u8 = 0x84;
const FILTER_INVALID: u8 = 0x8F;
const NAME_INVALID: u8 = 0x90;
const ALIAS_INVALID: u8 = 0x94;
const TOO_LARGE: u8 = 0x95;

/// A two-byte length and the bytes (spec 1.5.4 / 1.5.6).
fn str16(s: &[u8]) -> Vec<u8> {
    let len = u16::try_from(s.len()).expect("short test strings");
    [&len.to_be_bytes()[..], s].concat()
}

/// A packet: first byte, one-byte remaining length, body.
fn frame(byte1: u8, parts: &[&[u8]]) -> Vec<u8> {
    let body = parts.concat();
    let len = u8::try_from(body.len())
        .ok()
        .filter(|l| *l < 0x80)
        .expect("test bodies fit a one-byte remaining length");
    [&[byte1, len][..], &body].concat()
}

/// A property list with its (one-byte) length.
fn props(list: &[u8]) -> Vec<u8> {
    let len = u8::try_from(list.len()).expect("short property lists");
    assert!(len < 0x80);
    [&[len][..], list].concat()
}

/// A v3 CONNECT: protocol name and level, flags, keep alive 60, then `rest`.
fn connect(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    frame(0x10, &[&str16(name), &[level, flags, 0x00, 0x3C], rest])
}

/// A v5 CONNECT with these CONNECT properties and client identifier "c".
fn connect_v5(properties: &[u8]) -> Vec<u8> {
    frame(
        0x10,
        &[
            &str16(b"MQTT"),
            &[5, 0x02, 0x00, 0x3C],
            &props(properties),
            &str16(b"c"),
        ],
    )
}

/// A v5 QoS 0 PUBLISH to "a" with these properties and no payload.
fn publish_v5(properties: &[u8]) -> Vec<u8> {
    frame(0x30, &[&str16(b"a"), &props(properties)])
}

/// A QoS 0 PUBLISH with this raw topic field content (3.1.1 layout).
fn publish_topic(topic: &[u8]) -> Vec<u8> {
    frame(0x30, &[&str16(topic)])
}

/// A SUBSCRIBE with one filter; in v5 with these properties.
fn subscribe(v5: Option<&[u8]>, filter: &[u8], options: u8) -> Vec<u8> {
    let properties = v5.map(props).unwrap_or_default();
    frame(
        0x82,
        &[&[0x00, 0x01], &properties, &str16(filter), &[options]],
    )
}

fn unsubscribe(v5: bool, filter: &[u8]) -> Vec<u8> {
    let properties = if v5 { vec![0x00] } else { Vec::new() };
    frame(0xA2, &[&[0x00, 0x01], &properties, &str16(filter)])
}

struct Case {
    name: &'static str,
    version: ProtocolVersion,
    bytes: Vec<u8>,
    max_packet_size: u32,
    err: DecodeError,
    reason: u8,
}

fn case(
    name: &'static str,
    version: ProtocolVersion,
    bytes: impl Into<Vec<u8>>,
    err: DecodeError,
    reason: u8,
) -> Case {
    Case {
        name,
        version,
        bytes: bytes.into(),
        max_packet_size: u32::MAX,
        err,
        reason,
    }
}

fn flags(packet_type: u8, flags: u8) -> DecodeError {
    DecodeError::InvalidHeaderFlags { packet_type, flags }
}

// One case per entry, laid out as a table.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use DecodeError as E;
    let surrogate = [0xED, 0xA0, 0x80];
    let mut cases = vec![
        // Fixed header (2.1).
        case("reserved packet type 0", V311, [0x00, 0x00], E::InvalidPacketType(0), MALFORMED),
        case("packet type 0, first byte only", V5, [0x00], E::InvalidPacketType(0), MALFORMED),
        case("AUTH in 3.1.1", V311, [0xF0, 0x00], E::AuthInV3, MALFORMED),
        case("AUTH in 3.1", V31, [0xF0, 0x00], E::AuthInV3, MALFORMED),
        case("CONNECT flags 0010", V311, [&[0x12][..], &connect(b"MQTT", 4, 0x02, &str16(b"c"))[1..]].concat(),
            flags(1, 0b0010), MALFORMED),
        case("CONNACK flags 0001", V311, [0x21, 0x02, 0x00, 0x00], flags(2, 0b0001), MALFORMED),
        case("PUBACK flags 0010", V311, [0x42, 0x02, 0x00, 0x01], flags(4, 0b0010), MALFORMED),
        case("PUBREC flags 0010", V5, [0x52, 0x02, 0x00, 0x01], flags(5, 0b0010), MALFORMED),
        case("PUBREL flags 0000", V311, [0x60, 0x02, 0x00, 0x01], flags(6, 0b0000), MALFORMED),
        case("PUBREL flags 0011", V5, [0x63, 0x02, 0x00, 0x01], flags(6, 0b0011), MALFORMED),
        case("PUBCOMP flags 0010", V311, [0x72, 0x02, 0x00, 0x01], flags(7, 0b0010), MALFORMED),
        case("SUBSCRIBE flags 0000", V311, [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00],
            flags(8, 0b0000), MALFORMED),
        case("SUBSCRIBE flags 0011", V5, [0x83, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x00],
            flags(8, 0b0011), MALFORMED),
        case("SUBACK flags 0010", V311, [0x92, 0x03, 0x00, 0x01, 0x00], flags(9, 0b0010), MALFORMED),
        case("UNSUBSCRIBE flags 0000", V311, [0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'],
            flags(10, 0b0000), MALFORMED),
        case("UNSUBSCRIBE flags 1010", V5, [0xAA, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b'a'],
            flags(10, 0b1010), MALFORMED),
        case("UNSUBACK flags 0010", V311, [0xB2, 0x02, 0x00, 0x01], flags(11, 0b0010), MALFORMED),
        case("PINGREQ flags 0001", V311, [0xC1, 0x00], flags(12, 0b0001), MALFORMED),
        case("PINGRESP flags 1000", V5, [0xD8, 0x00], flags(13, 0b1000), MALFORMED),
        case("DISCONNECT flags 0010", V311, [0xE2, 0x00], flags(14, 0b0010), MALFORMED),
        case("AUTH flags 0001", V5, [0xF1, 0x00], flags(15, 0b0001), MALFORMED),

        // Variable byte integers (1.5.5 / 2.2.3).
        case("remaining length of five bytes", V311, [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            E::MalformedVarInt, MALFORMED),
        case("fifth length byte announced by the fourth", V311, [0x30, 0x80, 0x80, 0x80, 0x80],
            E::MalformedVarInt, MALFORMED),
        case("remaining length 0 as 80 00", V311, [0xC0, 0x80, 0x00], E::MalformedVarInt, MALFORMED),
        case("remaining length 127 as FF 00", V311, [0x30, 0xFF, 0x00], E::MalformedVarInt, MALFORMED),
        case("remaining length 128 as 80 81 00", V5, [0x30, 0x80, 0x81, 0x00],
            E::MalformedVarInt, MALFORMED),
        case("property length 0 as 80 00", V5, frame(0x30, &[&str16(b"a"), &[0x80, 0x00]]),
            E::MalformedVarInt, MALFORMED),
        case("subscription identifier 1 as 81 00", V5, publish_v5(&[0x0B, 0x81, 0x00]),
            E::MalformedVarInt, MALFORMED),

        // PUBLISH (3.3).
        case("QoS 3 PUBLISH", V311, [0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01], E::InvalidQoS, MALFORMED),
        case("QoS 3 PUBLISH with DUP", V5, [0x3E, 0x06, 0x00, 0x01, b'a', 0x00, 0x01, 0x00],
            E::InvalidQoS, MALFORMED),
        case("DUP on QoS 0", V311, [0x38, 0x03, 0x00, 0x01, b'a'], E::DupOnQoS0, MALFORMED),
        case("DUP on QoS 0 (v5)", V5, [0x39, 0x04, 0x00, 0x01, b'a', 0x00], E::DupOnQoS0, MALFORMED),
        case("QoS 1 PUBLISH with packet id 0", V311, [0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00],
            E::ZeroPacketId, PROTOCOL_ERROR),
        case("QoS 2 PUBLISH with packet id 0", V5, [0x34, 0x06, 0x00, 0x01, b'a', 0x00, 0x00, 0x00],
            E::ZeroPacketId, PROTOCOL_ERROR),
        case("'+' in a topic name", V311, publish_topic(b"a/+"), E::InvalidTopicName, NAME_INVALID),
        case("'#' in a topic name", V311, publish_topic(b"a/#"), E::InvalidTopicName, NAME_INVALID),
        case("'+' inside a level of a topic name", V5,
            frame(0x30, &[&str16(b"a+b"), &[0x00]]), E::InvalidTopicName, NAME_INVALID),
        case("empty topic in 3.1.1", V311, publish_topic(b""), E::InvalidTopicName, NAME_INVALID),
        case("empty topic in 3.1", V31, publish_topic(b""), E::InvalidTopicName, NAME_INVALID),
        case("empty topic with a topic alias in 3.1.1", V311,
            frame(0x30, &[&str16(b""), &[0x03, 0x23, 0x00, 0x01]]), E::InvalidTopicName, NAME_INVALID),
        case("empty topic without a topic alias", V5, frame(0x30, &[&str16(b""), &[0x00]]),
            E::EmptyTopicWithoutAlias, PROTOCOL_ERROR),
        case("topic alias 0", V5, publish_v5(&[0x23, 0x00, 0x00]), E::TopicAliasZero, ALIAS_INVALID),
        case("topic alias 0 with an empty topic", V5,
            frame(0x30, &[&str16(b""), &[0x03, 0x23, 0x00, 0x00]]), E::TopicAliasZero, ALIAS_INVALID),

        // UTF-8 Encoded Strings (1.5.4).
        case("0xFF in a topic", V311, publish_topic(&[b'a', 0xFF]), E::InvalidUtf8, MALFORMED),
        case("overlong '/' (C0 AF) in a topic", V311, publish_topic(&[0xC0, 0xAF]), E::InvalidUtf8, MALFORMED),
        case("truncated sequence (E2 82) in a topic", V311, publish_topic(&[b'a', 0xE2, 0x82]),
            E::InvalidUtf8, MALFORMED),
        case("U+0000 in a topic", V311, publish_topic(b"a\0b"), E::InvalidUtf8, MALFORMED),
        case("U+D800 (ED A0 80) in a topic", V311, publish_topic(&surrogate), E::InvalidUtf8, MALFORMED),
        case("U+DFFF (ED BF BF) in a topic", V5, frame(0x30, &[&str16(&[0xED, 0xBF, 0xBF]), &[0x00]]),
            E::InvalidUtf8, MALFORMED),
        case("U+0000 in a client identifier", V311, connect(b"MQTT", 4, 0x02, &str16(b"c\0")),
            E::InvalidUtf8, MALFORMED),
        case("U+D800 in a user name", V311,
            connect(b"MQTT", 4, 0x82, &[str16(b"c"), str16(&surrogate)].concat()),
            E::InvalidUtf8, MALFORMED),
        case("U+D800 in a topic filter", V311, subscribe(None, &surrogate, 0x00), E::InvalidUtf8, MALFORMED),
        case("U+0000 in a user property", V5,
            publish_v5(&[&[0x26][..], &str16(b"k\0"), &str16(b"v")].concat()), E::InvalidUtf8, MALFORMED),
        case("U+D800 in a reason string", V5,
            frame(0x40, &[&[0x00, 0x01, 0x80], &props(&[&[0x1F][..], &str16(&surrogate)].concat())]),
            E::InvalidUtf8, MALFORMED),

        // CONNECT (3.1).
        case("protocol name MQTX", V311, connect(b"MQTX", 4, 0x02, &str16(b"c")),
            E::InvalidProtocolName, UNSUPPORTED_PROTOCOL),
        case("protocol name in lower case", V5, connect(b"mqtt", 5, 0x02, &str16(b"c")),
            E::InvalidProtocolName, UNSUPPORTED_PROTOCOL),
        case("protocol level 6", V311, connect(b"MQTT", 6, 0x02, &str16(b"c")),
            E::UnsupportedProtocolLevel(6), UNSUPPORTED_PROTOCOL),
        case("MQTT at level 3", V311, connect(b"MQTT", 3, 0x02, &str16(b"c")),
            E::UnsupportedProtocolLevel(3), UNSUPPORTED_PROTOCOL),
        case("MQIsdp at level 4", V31, connect(b"MQIsdp", 4, 0x02, &str16(b"c")),
            E::UnsupportedProtocolLevel(4), UNSUPPORTED_PROTOCOL),
        case("CONNECT reserved flag", V311, connect(b"MQTT", 4, 0x03, &str16(b"c")),
            E::ConnectReservedFlag, MALFORMED),
        case("CONNECT reserved flag (v5)", V5, connect(b"MQTT", 5, 0x01, &[0x00, 0x00, 0x01, b'c']),
            E::ConnectReservedFlag, MALFORMED),
        case("will QoS 1 without the will flag", V311, connect(b"MQTT", 4, 0x0A, &str16(b"c")),
            E::WillFlagsWithoutWill, MALFORMED),
        case("will QoS 2 without the will flag", V5, connect(b"MQTT", 5, 0x12, &[0x00, 0x00, 0x01, b'c']),
            E::WillFlagsWithoutWill, MALFORMED),
        case("will retain without the will flag", V311, connect(b"MQTT", 4, 0x22, &str16(b"c")),
            E::WillFlagsWithoutWill, MALFORMED),
        case("will QoS 3", V311,
            connect(b"MQTT", 4, 0x1E, &[str16(b"c"), str16(b"w"), str16(b"m")].concat()),
            E::InvalidQoS, MALFORMED),
        case("will QoS 3 (v5)", V5,
            connect(b"MQTT", 5, 0x1E, &[vec![0x00], str16(b"c"), vec![0x00], str16(b"w"), str16(b"m")].concat()),
            E::InvalidQoS, MALFORMED),
        case("password without user name in 3.1.1", V311,
            connect(b"MQTT", 4, 0x42, &[str16(b"c"), str16(b"p")].concat()),
            E::PasswordWithoutUsername, MALFORMED),
        case("password without user name in 3.1", V31,
            connect(b"MQIsdp", 3, 0x42, &[str16(b"c"), str16(b"p")].concat()),
            E::PasswordWithoutUsername, MALFORMED),
        case("wildcard in the will topic", V311,
            connect(b"MQTT", 4, 0x06, &[str16(b"c"), str16(b"w/#"), str16(b"m")].concat()),
            E::InvalidTopicName, NAME_INVALID),
        case("empty will topic", V5,
            connect(b"MQTT", 5, 0x06, &[vec![0x00], str16(b"c"), vec![0x00], str16(b""), str16(b"m")].concat()),
            E::InvalidTopicName, NAME_INVALID),
        case("CONNECT cut inside the protocol name", V311, frame(0x10, &[&[0x00, 0x04, b'M', b'Q']]),
            E::UnexpectedEof, MALFORMED),
        case("CONNECT without its client identifier", V311, connect(b"MQTT", 4, 0x02, &[]),
            E::UnexpectedEof, MALFORMED),
        case("CONNECT user name flag without a user name", V311, connect(b"MQTT", 4, 0x82, &str16(b"c")),
            E::UnexpectedEof, MALFORMED),
        case("bytes after the CONNECT payload", V311, connect(b"MQTT", 4, 0x02, &[0x00, 0x01, b'c', 0x00]),
            E::TrailingBytes(1), MALFORMED),

        // Trailing bytes and truncated bodies.
        case("PINGREQ with a body", V311, [0xC0, 0x01, 0x00], E::TrailingBytes(1), MALFORMED),
        case("PINGRESP with a body", V5, [0xD0, 0x02, 0x00, 0x00], E::TrailingBytes(2), MALFORMED),
        case("3.1.1 CONNACK of three bytes", V311, [0x20, 0x03, 0x00, 0x00, 0x00], E::TrailingBytes(1), MALFORMED),
        case("v5 CONNACK with bytes after its properties", V5, [0x20, 0x04, 0x00, 0x00, 0x00, 0x00],
            E::TrailingBytes(1), MALFORMED),
        case("3.1.1 PUBACK with a reason code", V311, [0x40, 0x03, 0x00, 0x01, 0x00], E::TrailingBytes(1), MALFORMED),
        case("3.1 PUBCOMP with a reason code", V31, [0x70, 0x03, 0x00, 0x01, 0x00], E::TrailingBytes(1), MALFORMED),
        case("v5 PUBACK with bytes after its properties", V5, [0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00],
            E::TrailingBytes(1), MALFORMED),
        case("3.1.1 UNSUBACK with a reason code", V311, [0xB0, 0x03, 0x00, 0x01, 0x00], E::TrailingBytes(1), MALFORMED),
        case("3.1.1 DISCONNECT with a reason code", V311, [0xE0, 0x01, 0x00], E::TrailingBytes(1), MALFORMED),
        case("v5 DISCONNECT with bytes after its properties", V5, [0xE0, 0x03, 0x00, 0x00, 0x00],
            E::TrailingBytes(1), MALFORMED),
        case("v5 AUTH with bytes after its properties", V5, [0xF0, 0x03, 0x00, 0x00, 0x00],
            E::TrailingBytes(1), MALFORMED),
        case("topic length beyond the frame", V311, [0x30, 0x03, 0x00, 0x05, b'a'], E::UnexpectedEof, MALFORMED),
        case("QoS 1 PUBLISH without its packet id", V311, [0x32, 0x03, 0x00, 0x01, b'a'],
            E::UnexpectedEof, MALFORMED),
        case("v5 PUBLISH without its property length", V5, [0x30, 0x03, 0x00, 0x01, b'a'],
            E::UnexpectedEof, MALFORMED),
        case("property length beyond the frame", V5, frame(0x30, &[&str16(b"a"), &[0x05, 0x01, 0x00]]),
            E::UnexpectedEof, MALFORMED),
        case("property value cut by the property length", V5, publish_v5(&[0x02, 0x00, 0x00]),
            E::UnexpectedEof, MALFORMED),
        case("PUBACK of one byte", V311, [0x40, 0x01, 0x00], E::UnexpectedEof, MALFORMED),
        case("v5 CONNACK without its property length", V5, [0x20, 0x02, 0x00, 0x00], E::UnexpectedEof, MALFORMED),
        case("SUBSCRIBE filter without its options", V311, frame(0x82, &[&[0x00, 0x01], &str16(b"a")]),
            E::UnexpectedEof, MALFORMED),

        // Packet identifiers (2.2.1).
        case("PUBACK with packet id 0", V311, [0x40, 0x02, 0x00, 0x00], E::ZeroPacketId, PROTOCOL_ERROR),
        case("PUBREC with packet id 0", V5, [0x50, 0x02, 0x00, 0x00], E::ZeroPacketId, PROTOCOL_ERROR),
        case("PUBREL with packet id 0", V311, [0x62, 0x02, 0x00, 0x00], E::ZeroPacketId, PROTOCOL_ERROR),
        case("PUBCOMP with packet id 0", V5, [0x70, 0x02, 0x00, 0x00], E::ZeroPacketId, PROTOCOL_ERROR),
        case("SUBSCRIBE with packet id 0", V311, [0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00],
            E::ZeroPacketId, PROTOCOL_ERROR),
        case("SUBACK with packet id 0", V311, [0x90, 0x03, 0x00, 0x00, 0x00], E::ZeroPacketId, PROTOCOL_ERROR),
        case("UNSUBSCRIBE with packet id 0", V5, [0xA2, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, b'a'],
            E::ZeroPacketId, PROTOCOL_ERROR),
        case("UNSUBACK with packet id 0", V311, [0xB0, 0x02, 0x00, 0x00], E::ZeroPacketId, PROTOCOL_ERROR),

        // SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (3.8-3.11).
        case("SUBSCRIBE without filters", V311, [0x82, 0x02, 0x00, 0x01], E::NoTopicFilters, PROTOCOL_ERROR),
        case("SUBSCRIBE without filters (v5)", V5, [0x82, 0x03, 0x00, 0x01, 0x00], E::NoTopicFilters, PROTOCOL_ERROR),
        case("UNSUBSCRIBE without filters", V311, [0xA2, 0x02, 0x00, 0x01], E::NoTopicFilters, PROTOCOL_ERROR),
        case("UNSUBSCRIBE without filters (v5)", V5, [0xA2, 0x03, 0x00, 0x01, 0x00], E::NoTopicFilters, PROTOCOL_ERROR),
        case("SUBACK without return codes", V311, [0x90, 0x02, 0x00, 0x01], E::NoReasonCodes, PROTOCOL_ERROR),
        case("v5 UNSUBACK without reason codes", V5, [0xB0, 0x03, 0x00, 0x01, 0x00], E::NoReasonCodes, PROTOCOL_ERROR),
        case("filter a/#/b", V5, subscribe(Some(&[]), b"a/#/b", 0x00), E::InvalidTopicFilter, FILTER_INVALID),
        case("filter a/#/b (3.1.1)", V311, subscribe(None, b"a/#/b", 0x00), E::InvalidTopicFilter, FILTER_INVALID),
        case("filter a#", V311, subscribe(None, b"a#", 0x01), E::InvalidTopicFilter, FILTER_INVALID),
        case("filter a+", V5, subscribe(Some(&[]), b"a+", 0x00), E::InvalidTopicFilter, FILTER_INVALID),
        case("filter +a/b", V311, subscribe(None, b"+a/b", 0x00), E::InvalidTopicFilter, FILTER_INVALID),
        case("empty filter", V311, subscribe(None, b"", 0x00), E::InvalidTopicFilter, FILTER_INVALID),
        case("filter $share/g", V5, subscribe(Some(&[]), b"$share/g", 0x00), E::InvalidTopicFilter, FILTER_INVALID),
        case("filter $share/g+/x", V5, subscribe(Some(&[]), b"$share/g+/x", 0x00),
            E::InvalidTopicFilter, FILTER_INVALID),
        case("filter $share//x", V5, subscribe(Some(&[]), b"$share//x", 0x00), E::InvalidTopicFilter, FILTER_INVALID),
        case("filter $share/g/", V5, subscribe(Some(&[]), b"$share/g/", 0x00), E::InvalidTopicFilter, FILTER_INVALID),
        case("filter $share/g/a/#/b", V5, subscribe(Some(&[]), b"$share/g/a/#/b", 0x00),
            E::InvalidTopicFilter, FILTER_INVALID),
        case("unsubscribe from a/#/b", V311, unsubscribe(false, b"a/#/b"), E::InvalidTopicFilter, FILTER_INVALID),
        case("unsubscribe from a+ (v5)", V5, unsubscribe(true, b"a+"), E::InvalidTopicFilter, FILTER_INVALID),
        case("3.1.1 subscription option bit 2", V311, subscribe(None, b"a", 0x04),
            E::InvalidSubscriptionOptions, MALFORMED),
        case("3.1.1 subscription option bit 7", V311, subscribe(None, b"a", 0x80),
            E::InvalidSubscriptionOptions, MALFORMED),
        case("v5 subscription option bit 6", V5, subscribe(Some(&[]), b"a", 0x40),
            E::InvalidSubscriptionOptions, MALFORMED),
        case("v5 subscription option bit 7", V5, subscribe(Some(&[]), b"a", 0x81),
            E::InvalidSubscriptionOptions, MALFORMED),
        case("3.1.1 subscription QoS 3", V311, subscribe(None, b"a", 0x03), E::InvalidQoS, MALFORMED),
        case("v5 subscription maximum QoS 3", V5, subscribe(Some(&[]), b"a", 0x03),
            E::InvalidSubscriptionQoS, PROTOCOL_ERROR),
        case("retain handling 3", V5, subscribe(Some(&[]), b"a", 0x30), E::InvalidRetainHandling, PROTOCOL_ERROR),
        case("no local on $share/g/a", V5, subscribe(Some(&[]), b"$share/g/a", 0x04),
            E::NoLocalOnSharedSubscription, PROTOCOL_ERROR),
        case("3.1.1 SUBACK return code 3", V311, [0x90, 0x03, 0x00, 0x01, 0x03], E::InvalidReasonCode(3), MALFORMED),
        case("3.1.1 SUBACK return code 0x81", V311, [0x90, 0x03, 0x00, 0x01, 0x81],
            E::InvalidReasonCode(0x81), MALFORMED),

        // CONNACK (3.2).
        case("CONNACK reserved acknowledge flag", V311, [0x20, 0x02, 0x02, 0x00], E::InvalidConnAckFlags, MALFORMED),
        case("CONNACK reserved acknowledge flag (v5)", V5, [0x20, 0x03, 0x80, 0x00, 0x00],
            E::InvalidConnAckFlags, MALFORMED),
        case("3.1.1 CONNACK return code 6", V311, [0x20, 0x02, 0x00, 0x06], E::InvalidReasonCode(6), MALFORMED),

        // Properties (2.2.2).
        case("unknown property 0x04", V5, publish_v5(&[0x04, 0x00]), E::UnknownProperty(0x04), MALFORMED),
        case("unknown property 0x00", V5, publish_v5(&[0x00]), E::UnknownProperty(0x00), MALFORMED),
        case("unknown property 0x2B", V5, publish_v5(&[0x2B, 0x00]), E::UnknownProperty(0x2B), MALFORMED),
        case("unknown two-byte property id 128", V5, publish_v5(&[0x80, 0x01, 0x00]),
            E::UnknownProperty(0x80), MALFORMED),
        case("Topic Alias in CONNECT", V5, connect_v5(&[0x23, 0x00, 0x01]),
            E::PropertyNotAllowed(0x23), MALFORMED),
        case("Topic Alias 0 in CONNECT", V5, connect_v5(&[0x23, 0x00, 0x00]),
            E::PropertyNotAllowed(0x23), MALFORMED),
        case("Receive Maximum 0 in PUBLISH", V5, publish_v5(&[0x21, 0x00, 0x00]),
            E::PropertyNotAllowed(0x21), MALFORMED),
        case("Session Expiry Interval in PUBACK", V5,
            frame(0x40, &[&[0x00, 0x01, 0x00], &props(&[0x11, 0x00, 0x00, 0x00, 0x01])]),
            E::PropertyNotAllowed(0x11), MALFORMED),
        case("Will Delay Interval in PUBLISH", V5, publish_v5(&[0x18, 0x00, 0x00, 0x00, 0x01]),
            E::PropertyNotAllowed(0x18), MALFORMED),
        case("Reason String in SUBSCRIBE", V5, subscribe(Some(&[0x1F, 0x00, 0x00]), b"a", 0x00),
            E::PropertyNotAllowed(0x1F), MALFORMED),
        case("two Session Expiry Intervals", V5,
            connect_v5(&[0x11, 0x00, 0x00, 0x00, 0x01, 0x11, 0x00, 0x00, 0x00, 0x02]),
            E::DuplicateProperty(0x11), PROTOCOL_ERROR),
        case("two Topic Aliases", V5, publish_v5(&[0x23, 0x00, 0x01, 0x23, 0x00, 0x02]),
            E::DuplicateProperty(0x23), PROTOCOL_ERROR),
        case("two Reason Strings in DISCONNECT", V5,
            frame(0xE0, &[&[0x00], &props(&[0x1F, 0x00, 0x00, 0x1F, 0x00, 0x00])]),
            E::DuplicateProperty(0x1F), PROTOCOL_ERROR),
        case("two subscription identifiers in SUBSCRIBE", V5,
            subscribe(Some(&[0x0B, 0x01, 0x0B, 0x02]), b"a", 0x00), E::DuplicateProperty(0x0B), PROTOCOL_ERROR),
        case("subscription identifier 0 in SUBSCRIBE", V5, subscribe(Some(&[0x0B, 0x00]), b"a", 0x00),
            E::InvalidPropertyValue(0x0B), PROTOCOL_ERROR),
        case("subscription identifier 0 in PUBLISH", V5, publish_v5(&[0x0B, 0x00]),
            E::InvalidPropertyValue(0x0B), PROTOCOL_ERROR),
        case("Receive Maximum 0", V5, connect_v5(&[0x21, 0x00, 0x00]), E::InvalidPropertyValue(0x21), PROTOCOL_ERROR),
        case("Maximum Packet Size 0", V5, connect_v5(&[0x27, 0x00, 0x00, 0x00, 0x00]),
            E::InvalidPropertyValue(0x27), PROTOCOL_ERROR),
        case("Payload Format Indicator 2", V5, publish_v5(&[0x01, 0x02]), E::InvalidPropertyValue(0x01), PROTOCOL_ERROR),
        case("Request Problem Information 2", V5, connect_v5(&[0x17, 0x02]),
            E::InvalidPropertyValue(0x17), PROTOCOL_ERROR),
        case("Request Response Information 2", V5, connect_v5(&[0x19, 0x02]),
            E::InvalidPropertyValue(0x19), PROTOCOL_ERROR),
        case("Maximum QoS 2", V5, frame(0x20, &[&[0x00, 0x00], &props(&[0x24, 0x02])]),
            E::InvalidPropertyValue(0x24), PROTOCOL_ERROR),
        case("Retain Available 2", V5, frame(0x20, &[&[0x00, 0x00], &props(&[0x25, 0x02])]),
            E::InvalidPropertyValue(0x25), PROTOCOL_ERROR),
        case("Payload Format Indicator 2 in a will", V5,
            connect(b"MQTT", 5, 0x06, &[vec![0x00], str16(b"c"), props(&[0x01, 0x02]), str16(b"w"), str16(b"m")].concat()),
            E::InvalidPropertyValue(0x01), PROTOCOL_ERROR),
        case("Topic Alias in a will", V5,
            connect(b"MQTT", 5, 0x06, &[vec![0x00], str16(b"c"), props(&[0x23, 0x00, 0x01]), str16(b"w"), str16(b"m")].concat()),
            E::PropertyNotAllowed(0x23), MALFORMED),

        // Reason codes not valid in their packet (2.4).
        case("PUBREL with reason 0x10", V5, [0x62, 0x03, 0x00, 0x01, 0x10], E::InvalidReasonCode(0x10), MALFORMED),
        case("PUBACK with reason 0x92", V5, [0x40, 0x03, 0x00, 0x01, 0x92], E::InvalidReasonCode(0x92), MALFORMED),
        case("DISCONNECT with reason 0x01", V5, [0xE0, 0x01, 0x01], E::InvalidReasonCode(0x01), MALFORMED),
        case("AUTH with reason 0x87", V5, [0xF0, 0x02, 0x87, 0x00], E::InvalidReasonCode(0x87), MALFORMED),
        case("CONNACK with reason 0x04", V5, [0x20, 0x03, 0x00, 0x04, 0x00], E::InvalidReasonCode(0x04), MALFORMED),
    ];

    // The maximum packet size is enforced from the fixed header alone (3.1.2.11.4 /
    // 3.2.2.3.6): only the first bytes are in the buffer, the body never arrives.
    let mut too_large = |name, bytes: &[u8], max: u32, size: usize| {
        let mut c = case(name, V5, bytes, E::PacketTooLarge { size, max }, TOO_LARGE);
        c.max_packet_size = max;
        cases.push(c);
    };
    too_large("1003-byte PUBLISH, limit 100, header only", &[0x30, 0xE8, 0x07], 100, 1003);
    too_large("largest PUBLISH, limit 1 MiB, header only", &[0x30, 0xFF, 0xFF, 0xFF, 0x7F], 1 << 20, 268_435_460);
    too_large("129-byte CONNECT, limit 128, header and a byte", &[0x10, 0x7F, 0x00], 128, 129);
    too_large("complete 4-byte PUBACK, limit 3", &[0x40, 0x02, 0x00, 0x01], 3, 4);
    cases
}

#[test]
fn malformed_packets_are_refused_with_the_right_reason() {
    let mut failures = Vec::new();
    for c in cases() {
        let mut buf = BytesMut::from(&c.bytes[..]);
        let got = Packet::decode(&mut buf, c.version, c.max_packet_size);
        if got != Err(c.err) {
            failures.push(format!(
                "{}: expected Err({:?}), got {:?}",
                c.name, c.err, got
            ));
        }
        let reason = c.err.reason_code().value();
        if reason != c.reason {
            failures.push(format!(
                "{}: {:?} maps to reason {reason:#04x}, expected {:#04x}",
                c.name, c.err, c.reason
            ));
        }
        // A refused CONNECT is answered with a v5 CONNACK, so its reason must be one a
        // CONNACK may carry.
        if c.bytes[0] >> 4 == 1 && !c.err.reason_code().valid_in(ReasonContext::ConnAck) {
            failures.push(format!(
                "{}: CONNECT error {:?} maps to {:?}, which no CONNACK may carry",
                c.name,
                c.err,
                c.err.reason_code()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The same size check must not fire while the header says the packet fits: then a
/// header alone is just an incomplete packet.
#[test]
fn a_header_within_the_limit_waits_for_the_body() {
    for (bytes, max) in [
        (&[0x30, 0xE8, 0x07][..], 1003),
        (&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..], u32::MAX),
        (&[0x40, 0x02, 0x00][..], 4),
    ] {
        let mut buf = BytesMut::from(bytes);
        assert_eq!(Packet::decode(&mut buf, V5, max), Ok(None), "{bytes:02X?}");
        assert_eq!(&buf[..], bytes);
    }
}

/// Inputs close to the malformed ones above that the specification allows.
#[test]
#[rustfmt::skip]
fn near_misses_are_accepted() {
    let accepted: Vec<(&str, ProtocolVersion, Vec<u8>)> = vec![
        ("password without user name in v5", V5,
            connect(b"MQTT", 5, 0x42, &[vec![0x00], str16(b"c"), str16(b"p")].concat())),
        ("two subscription identifiers in PUBLISH", V5, publish_v5(&[0x0B, 0x01, 0x0B, 0x02])),
        ("two user properties with the same name", V5,
            publish_v5(&[&[0x26][..], &str16(b"k"), &str16(b"1"), &[0x26], &str16(b"k"), &str16(b"2")].concat())),
        ("empty topic with a topic alias", V5, frame(0x30, &[&str16(b""), &[0x03, 0x23, 0x00, 0x01]])),
        ("no local on an ordinary filter", V5, subscribe(Some(&[]), b"a/+", 0x04)),
        ("$share/g/a with QoS 1 in 3.1.1", V311, subscribe(None, b"$share/g/a", 0x01)),
        ("$share/g/# with no local off", V5, subscribe(Some(&[]), b"$share/g/#", 0x2A)),
        ("filters # and + alone", V311, frame(0x82, &[&[0x00, 0x01], &str16(b"#"), &[0x00], &str16(b"+"), &[0x02]])),
        ("filter with empty levels", V311, subscribe(None, b"/a//+/", 0x00)),
        ("topic with a space and a dollar", V311, publish_topic(b"$SYS/a b")),
        ("topic /", V311, publish_topic(b"/")),
        ("largest subscription identifier", V5, publish_v5(&[0x0B, 0xFF, 0xFF, 0xFF, 0x7F])),
        ("PUBACK reason and no property length", V5, vec![0x40, 0x03, 0x00, 0x01, 0x10]),
        ("packet of exactly the maximum size", V5, vec![0x40, 0x02, 0x00, 0x01]),
        ("CONNECT with any CONNECT flags but reserved", V311,
            connect(b"MQTT", 4, 0xF6, &[str16(b"c"), str16(b"w"), str16(b"m"), str16(b"u"), str16(b"p")].concat())),
    ];
    for (name, v, bytes) in accepted {
        let mut buf = BytesMut::from(&bytes[..]);
        let max = if name == "packet of exactly the maximum size" { 4 } else { u32::MAX };
        match Packet::decode(&mut buf, v, max) {
            Ok(Some(_)) => assert!(buf.is_empty(), "{name}: {} bytes left", buf.len()),
            other => panic!("{name}: expected a packet, got {other:?}"),
        }
    }
}

/// 5.0 table 2-6 and the per-packet tables of chapter 3: the reason codes each packet
/// may carry.
const CONNACK_CODES: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const PUBACK_CODES: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_CODES: &[u8] = &[0x00, 0x92];
const SUBACK_CODES: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const UNSUBACK_CODES: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT_CODES: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
    0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH_CODES: &[u8] = &[0x00, 0x18, 0x19];

const V3_CONNACK_CODES: &[u8] = &[0x00, 0x01, 0x02, 0x03, 0x04, 0x05];
const V3_SUBACK_CODES: &[u8] = &[0x00, 0x01, 0x02, 0x80];

/// A packet that carries one reason code: its bytes with the code at `at`, and the
/// codes the specification allows there.
struct ReasonSlot {
    name: &'static str,
    version: ProtocolVersion,
    packet: &'static [u8],
    at: usize,
    allowed: &'static [u8],
}

#[rustfmt::skip]
const REASON_SLOTS: [ReasonSlot; 12] = [
    ReasonSlot { name: "v5 CONNACK", version: V5, packet: &[0x20, 0x03, 0x00, 0xFF, 0x00], at: 3, allowed: CONNACK_CODES },
    ReasonSlot { name: "PUBACK", version: V5, packet: &[0x40, 0x03, 0x00, 0x01, 0xFF], at: 4, allowed: PUBACK_CODES },
    ReasonSlot { name: "PUBREC", version: V5, packet: &[0x50, 0x03, 0x00, 0x01, 0xFF], at: 4, allowed: PUBACK_CODES },
    ReasonSlot { name: "PUBREL", version: V5, packet: &[0x62, 0x03, 0x00, 0x01, 0xFF], at: 4, allowed: PUBREL_CODES },
    ReasonSlot { name: "PUBCOMP", version: V5, packet: &[0x70, 0x03, 0x00, 0x01, 0xFF], at: 4, allowed: PUBREL_CODES },
    ReasonSlot { name: "v5 SUBACK", version: V5, packet: &[0x90, 0x04, 0x00, 0x01, 0x00, 0xFF], at: 5, allowed: SUBACK_CODES },
    ReasonSlot { name: "UNSUBACK", version: V5, packet: &[0xB0, 0x04, 0x00, 0x01, 0x00, 0xFF], at: 5, allowed: UNSUBACK_CODES },
    ReasonSlot { name: "DISCONNECT", version: V5, packet: &[0xE0, 0x01, 0xFF], at: 2, allowed: DISCONNECT_CODES },
    ReasonSlot { name: "AUTH", version: V5, packet: &[0xF0, 0x02, 0xFF, 0x00], at: 2, allowed: AUTH_CODES },
    // 3.1.1 table 3.1: CONNACK return codes 0 to 5; 3.9.3: SUBACK 0, 1, 2 and 0x80.
    ReasonSlot { name: "3.1.1 CONNACK", version: V311, packet: &[0x20, 0x02, 0x00, 0xFF], at: 3, allowed: V3_CONNACK_CODES },
    ReasonSlot { name: "3.1 CONNACK", version: V31, packet: &[0x20, 0x02, 0x00, 0xFF], at: 3, allowed: V3_CONNACK_CODES },
    ReasonSlot { name: "3.1.1 SUBACK", version: V311, packet: &[0x90, 0x03, 0x00, 0x01, 0xFF], at: 4, allowed: V3_SUBACK_CODES },
];

#[test]
fn each_packet_accepts_exactly_its_reason_codes() {
    let mut failures = Vec::new();
    for slot in &REASON_SLOTS {
        for code in 0..=u8::MAX {
            let mut bytes = slot.packet.to_vec();
            bytes[slot.at] = code;
            let mut buf = BytesMut::from(&bytes[..]);
            let got = Packet::decode(&mut buf, slot.version, u32::MAX);
            let allowed = slot.allowed.contains(&code);
            let ok = if allowed {
                matches!(got, Ok(Some(_))) && buf.is_empty()
            } else {
                got == Err(DecodeError::InvalidReasonCode(code))
            };
            if !ok {
                failures.push(format!(
                    "{} with {code:#04x} (allowed: {allowed}): got {got:?}",
                    slot.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const ALL_CONTEXTS: [PropertyContext; 14] = [
    PropertyContext::Connect,
    PropertyContext::ConnAck,
    PropertyContext::Publish,
    PropertyContext::Will,
    PropertyContext::PubAck,
    PropertyContext::PubRec,
    PropertyContext::PubRel,
    PropertyContext::PubComp,
    PropertyContext::Subscribe,
    PropertyContext::SubAck,
    PropertyContext::Unsubscribe,
    PropertyContext::UnsubAck,
    PropertyContext::Disconnect,
    PropertyContext::Auth,
];

/// 5.0 table 2-4: each property identifier and the packets it may appear in.
fn property_table() -> Vec<(u8, Vec<PropertyContext>)> {
    use PropertyContext::*;
    let acks = vec![
        ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth,
    ];
    vec![
        (0x01, vec![Publish, Will]),
        (0x02, vec![Publish, Will]),
        (0x03, vec![Publish, Will]),
        (0x08, vec![Publish, Will]),
        (0x09, vec![Publish, Will]),
        (0x0B, vec![Publish, Subscribe]),
        (0x11, vec![Connect, ConnAck, Disconnect]),
        (0x12, vec![ConnAck]),
        (0x13, vec![ConnAck]),
        (0x15, vec![Connect, ConnAck, Auth]),
        (0x16, vec![Connect, ConnAck, Auth]),
        (0x17, vec![Connect]),
        (0x18, vec![Will]),
        (0x19, vec![Connect]),
        (0x1A, vec![ConnAck]),
        (0x1C, vec![ConnAck, Disconnect]),
        (0x1F, acks),
        (0x21, vec![Connect, ConnAck]),
        (0x22, vec![Connect, ConnAck]),
        (0x23, vec![Publish]),
        (0x24, vec![ConnAck]),
        (0x25, vec![ConnAck]),
        (0x26, ALL_CONTEXTS.to_vec()),
        (0x27, vec![Connect, ConnAck]),
        (0x28, vec![ConnAck]),
        (0x29, vec![ConnAck]),
        (0x2A, vec![ConnAck]),
    ]
}

#[test]
fn property_identifiers_and_where_they_may_appear() {
    let table = property_table();
    assert_eq!(PropertyId::ALL.len(), table.len());
    for raw in 0..=u8::MAX {
        let spec = table.iter().find(|(id, _)| *id == raw);
        let id = PropertyId::from_u8(raw);
        assert_eq!(id.is_some(), spec.is_some(), "property {raw:#04x}");
        let (Some(id), Some((_, contexts))) = (id, spec) else {
            continue;
        };
        assert_eq!(id as u8, raw);
        for ctx in ALL_CONTEXTS {
            assert_eq!(
                id.allowed_in(ctx),
                contexts.contains(&ctx),
                "{id:?} in {ctx:?}"
            );
            if contexts.contains(&ctx) {
                // User Property may repeat anywhere (2.2.2.2); several Subscription
                // Identifiers only in PUBLISH (3.3.2.3.8 against 3.8.2.1.2).
                let repeatable = raw == 0x26 || (raw == 0x0B && ctx == PropertyContext::Publish);
                assert_eq!(id.repeatable_in(ctx), repeatable, "{id:?} in {ctx:?}");
            }
        }
    }
}

/// A valid encoded value for property `id`.
fn property_value(id: u8) -> Vec<u8> {
    match id {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => vec![0x01],
        0x0B => vec![0x05],
        0x13 | 0x21 | 0x22 | 0x23 => vec![0x00, 0x05],
        0x02 | 0x11 | 0x18 | 0x27 => vec![0x00, 0x00, 0x00, 0x05],
        0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => str16(b"x"),
        0x09 | 0x16 => vec![0x00, 0x01, 0xAB],
        0x26 => [str16(b"k"), str16(b"v")].concat(),
        other => panic!("no value for property {other:#04x}"),
    }
}

/// A v5 packet whose `ctx` property list is `list`.
fn packet_with_properties(ctx: PropertyContext, list: &[u8]) -> Vec<u8> {
    use PropertyContext::*;
    let p = props(list);
    let head = |byte1: u8, before: &[u8], after: &[u8]| frame(byte1, &[before, &p, after]);
    match ctx {
        Connect => frame(
            0x10,
            &[&str16(b"MQTT"), &[5, 0x02, 0x00, 0x3C], &p, &str16(b"c")],
        ),
        Will => frame(
            0x10,
            &[
                &str16(b"MQTT"),
                &[5, 0x06, 0x00, 0x3C, 0x00],
                &str16(b"c"),
                &p,
                &str16(b"w"),
                &str16(b""),
            ],
        ),
        ConnAck => head(0x20, &[0x00, 0x00], &[]),
        Publish => head(0x30, &str16(b"a"), b"payload"),
        PubAck => head(0x40, &[0x00, 0x01, 0x00], &[]),
        PubRec => head(0x50, &[0x00, 0x01, 0x00], &[]),
        PubRel => head(0x62, &[0x00, 0x01, 0x00], &[]),
        PubComp => head(0x70, &[0x00, 0x01, 0x00], &[]),
        Subscribe => head(0x82, &[0x00, 0x01], &[&str16(b"a")[..], &[0x01]].concat()),
        SubAck => head(0x90, &[0x00, 0x01], &[0x01]),
        Unsubscribe => head(0xA2, &[0x00, 0x01], &str16(b"a")),
        UnsubAck => head(0xB0, &[0x00, 0x01], &[0x00]),
        Disconnect => head(0xE0, &[0x00], &[]),
        Auth => head(0xF0, &[0x18], &[]),
    }
}

/// Every property in every packet: decoded where table 2-4 allows it (and then found
/// in the decoded packet), refused as not allowed elsewhere; a second copy refused as
/// a duplicate unless the property may repeat there.
#[test]
fn each_packet_accepts_exactly_its_properties() {
    let mut failures = Vec::new();
    for (raw, contexts) in property_table() {
        let one = [&[raw][..], &property_value(raw)].concat();
        let two = [one.clone(), one.clone()].concat();
        for ctx in ALL_CONTEXTS {
            let mut buf = BytesMut::from(&packet_with_properties(ctx, &one)[..]);
            let got = Packet::decode(&mut buf, V5, u32::MAX);
            if contexts.contains(&ctx) {
                match &got {
                    Ok(Some(p)) if carries(p, ctx, raw) && buf.is_empty() => {}
                    other => failures.push(format!("{raw:#04x} in {ctx:?}: got {other:?}")),
                }
                let mut buf = BytesMut::from(&packet_with_properties(ctx, &two)[..]);
                let got = Packet::decode(&mut buf, V5, u32::MAX);
                let repeatable = raw == 0x26 || (raw == 0x0B && ctx == PropertyContext::Publish);
                let ok = if repeatable {
                    matches!(got, Ok(Some(_)))
                } else {
                    got == Err(DecodeError::DuplicateProperty(raw))
                };
                if !ok {
                    failures.push(format!("{raw:#04x} twice in {ctx:?}: got {got:?}"));
                }
            } else if got != Err(DecodeError::PropertyNotAllowed(raw)) {
                failures.push(format!("{raw:#04x} in {ctx:?} (not allowed): got {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Whether the decoded packet holds property `raw` in its `ctx` list.
fn carries(p: &Packet, ctx: PropertyContext, raw: u8) -> bool {
    let list = match (p, ctx) {
        (Packet::Connect(c), PropertyContext::Will) => match &c.will {
            Some(w) => &w.properties,
            None => return false,
        },
        (Packet::Connect(c), _) => &c.properties,
        (Packet::ConnAck(c), _) => &c.properties,
        (Packet::Publish(c), _) => &c.properties,
        (Packet::PubAck(c), _) => &c.properties,
        (Packet::PubRec(c), _) => &c.properties,
        (Packet::PubRel(c), _) => &c.properties,
        (Packet::PubComp(c), _) => &c.properties,
        (Packet::Subscribe(c), _) => &c.properties,
        (Packet::SubAck(c), _) => &c.properties,
        (Packet::Unsubscribe(c), _) => &c.properties,
        (Packet::UnsubAck(c), _) => &c.properties,
        (Packet::Disconnect(c), _) => &c.properties,
        (Packet::Auth(c), _) => &c.properties,
        (Packet::PingReq | Packet::PingResp, _) => return false,
    };
    list.iter().any(|p| p.id() as u8 == raw)
}
