//! Byte-exact examples from the OASIS MQTT 3.1.1 and 5.0 specifications (and the
//! MQTT 3.1 one for "MQIsdp"): each is decoded to the packet it describes and that
//! packet is encoded back to the same bytes. Where a figure shows only part of a
//! packet (a variable header, a payload), the rest is completed as the packet's
//! section prescribes and the figure's bytes are checked where they sit.

use bytes::{Bytes, BytesMut};
use ringmq::protocol::{
    read_var_int, var_int_len, Auth, ByteStr, ConnAck, Connect, DecodeError, Disconnect,
    EncodeError, FixedHeader, Packet, Properties, Property, ProtocolVersion, PubAck, PubComp,
    PubRec, PubRel, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscribeFilter,
    SubscriptionOptions, UnsubAck, Unsubscribe, Will, MAX_VAR_INT,
};

const V31: ProtocolVersion = ProtocolVersion::V3_1;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;
const ALL_VERSIONS: [ProtocolVersion; 3] = [V31, V311, V5];

/// `bytes` decode at `v` to exactly `packet`, consuming all of them, and `packet`
/// encodes at `v` to exactly `bytes`.
#[track_caller]
fn assert_wire(v: ProtocolVersion, bytes: &[u8], packet: Packet) {
    let mut buf = BytesMut::from(bytes);
    assert_eq!(
        Packet::decode(&mut buf, v, u32::MAX),
        Ok(Some(packet.clone())),
        "decoding {bytes:02X?} at {v:?}"
    );
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    let mut out = BytesMut::new();
    assert_eq!(packet.encode(v, &mut out), Ok(()), "encoding {packet:?}");
    assert_eq!(&out[..], bytes, "encoding {packet:?} at {v:?}");
    assert_eq!(packet.encoded_len(v), bytes.len());
}

/// `bytes` decode at `v` to `packet` (for a valid but non-canonical encoding, which the
/// encoder writes shorter).
#[track_caller]
fn assert_decodes(v: ProtocolVersion, bytes: &[u8], packet: Packet) {
    let mut buf = BytesMut::from(bytes);
    assert_eq!(
        Packet::decode(&mut buf, v, u32::MAX),
        Ok(Some(packet)),
        "decoding {bytes:02X?} at {v:?}"
    );
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
}

fn props(list: Vec<Property>) -> Properties {
    Properties::from_vec(list)
}

/// The CONNECT the variable header examples describe: user name, password, a QoS 1
/// will without retain, clean session/start, keep alive 10. The payload values are ours.
fn example_connect(protocol: ProtocolVersion, properties: Properties) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol,
        clean_start: true,
        keep_alive: 10,
        properties,
        client_id: ByteStr::from("cid"),
        will: Some(Will {
            topic: ByteStr::from("w/t"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties::new(),
        }),
        username: Some(ByteStr::from("user")),
        password: Some(Bytes::from_static(b"pass")),
    }))
}

/// 3.1.1 section 3.1.2.10, figure 3.6: the CONNECT variable header example.
#[test]
fn connect_variable_header_v3_1_1() {
    const VARIABLE_HEADER: [u8; 10] = [
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x04, // protocol level
        0xCE, // user name, password, will QoS 1, will flag, clean session
        0x00, 0x0A, // keep alive 10
    ];
    let mut bytes = vec![0x10, 37];
    bytes.extend_from_slice(&VARIABLE_HEADER);
    bytes.extend_from_slice(&[0x00, 0x03, b'c', b'i', b'd']);
    bytes.extend_from_slice(&[0x00, 0x03, b'w', b'/', b't']);
    bytes.extend_from_slice(&[0x00, 0x03, b'b', b'y', b'e']);
    bytes.extend_from_slice(&[0x00, 0x04, b'u', b's', b'e', b'r']);
    bytes.extend_from_slice(&[0x00, 0x04, b'p', b'a', b's', b's']);
    assert_eq!(bytes.len(), 2 + 37);
    // A CONNECT is decoded at the level it carries, whatever the connection's version.
    for v in ALL_VERSIONS {
        assert_wire(v, &bytes, example_connect(V311, Properties::new()));
    }
}

/// 5.0 section 3.1.2.11, figure 3-6: the same example with a Session Expiry Interval
/// of 10 in the CONNECT properties.
#[test]
fn connect_variable_header_v5() {
    const VARIABLE_HEADER: [u8; 16] = [
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x05, // protocol version
        0xCE, // user name, password, will QoS 1, will flag, clean start
        0x00, 0x0A, // keep alive 10
        0x05, // property length 5
        0x11, 0x00, 0x00, 0x00, 0x0A, // session expiry interval 10
    ];
    let mut bytes = vec![0x10, 44];
    bytes.extend_from_slice(&VARIABLE_HEADER);
    bytes.extend_from_slice(&[0x00, 0x03, b'c', b'i', b'd']);
    bytes.push(0x00); // will property length
    bytes.extend_from_slice(&[0x00, 0x03, b'w', b'/', b't']);
    bytes.extend_from_slice(&[0x00, 0x03, b'b', b'y', b'e']);
    bytes.extend_from_slice(&[0x00, 0x04, b'u', b's', b'e', b'r']);
    bytes.extend_from_slice(&[0x00, 0x04, b'p', b'a', b's', b's']);
    assert_eq!(bytes.len(), 2 + 44);
    let packet = example_connect(V5, props(vec![Property::SessionExpiryInterval(10)]));
    assert_wire(V5, &bytes, packet.clone());
    assert_wire(V311, &bytes, packet);
}

/// MQTT 3.1 section 3.1: the same CONNECT example with protocol name "MQIsdp", version 3.
#[test]
fn connect_variable_header_v3_1() {
    const VARIABLE_HEADER: [u8; 12] = [
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name
        0x03, // protocol version
        0xCE, // user name, password, will QoS 1, will flag, clean session
        0x00, 0x0A, // keep alive 10
    ];
    let mut bytes = vec![0x10, 39];
    bytes.extend_from_slice(&VARIABLE_HEADER);
    bytes.extend_from_slice(&[0x00, 0x03, b'c', b'i', b'd']);
    bytes.extend_from_slice(&[0x00, 0x03, b'w', b'/', b't']);
    bytes.extend_from_slice(&[0x00, 0x03, b'b', b'y', b'e']);
    bytes.extend_from_slice(&[0x00, 0x04, b'u', b's', b'e', b'r']);
    bytes.extend_from_slice(&[0x00, 0x04, b'p', b'a', b's', b's']);
    assert_eq!(bytes.len(), 2 + 39);
    assert_wire(V31, &bytes, example_connect(V31, Properties::new()));
}

/// 3.1.1 table 2.4 / 5.0 section 1.5.5: the size of a variable byte integer at each
/// boundary, and its bytes.
const VAR_INT_TABLE: [(u32, &[u8]); 8] = [
    (0, &[0x00]),
    (127, &[0x7F]),
    (128, &[0x80, 0x01]),
    (16_383, &[0xFF, 0x7F]),
    (16_384, &[0x80, 0x80, 0x01]),
    (2_097_151, &[0xFF, 0xFF, 0x7F]),
    (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
    (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
];

#[test]
fn variable_byte_integer_boundaries() {
    assert_eq!(MAX_VAR_INT, 268_435_455);
    for (value, bytes) in VAR_INT_TABLE {
        assert_eq!(
            read_var_int(bytes),
            Ok(Some((value, bytes.len()))),
            "{value}"
        );
        assert_eq!(var_int_len(value as usize), bytes.len(), "{value}");
        // Every strict prefix is incomplete, not an error.
        for cut in 0..bytes.len() {
            assert_eq!(
                read_var_int(&bytes[..cut]),
                Ok(None),
                "{value} cut at {cut}"
            );
        }
    }
}

/// The remaining length of real packets at each boundary the encoder can reach here:
/// a PINGREQ for 0 and QoS 0 PUBLISHes to "t" (3 bytes before the payload) for the rest.
#[test]
fn remaining_length_boundaries_in_packets() {
    assert_wire(V311, &[0xC0, 0x00], Packet::PingReq);
    for (value, len_bytes) in &VAR_INT_TABLE[1..7] {
        let body = *value as usize;
        let payload = Bytes::from(vec![0x5A; body - 3]);
        let packet = Packet::Publish(Publish::new("t", QoS::AtMostOnce, payload));
        let mut wire = vec![0x30];
        wire.extend_from_slice(len_bytes);
        wire.extend_from_slice(&[0x00, 0x01, b't']);
        wire.resize(1 + len_bytes.len() + body, 0x5A);
        assert_wire(V311, &wire, packet);
    }
}

/// The largest remaining length, 268,435,455 (FF FF FF 7F), read from a fixed header
/// alone; one byte more cannot be encoded.
#[test]
fn largest_remaining_length() {
    let header = [0x30, 0xFF, 0xFF, 0xFF, 0x7F];
    assert_eq!(
        FixedHeader::parse(&header),
        Ok(Some(FixedHeader {
            byte1: 0x30,
            remaining_len: 268_435_455,
            header_len: 5,
        }))
    );
    let mut buf = BytesMut::from(&header[..]);
    assert_eq!(
        Packet::decode(&mut buf, V5, 1 << 20),
        Err(DecodeError::PacketTooLarge {
            size: 268_435_460,
            max: 1 << 20
        })
    );

    // Zeroed allocations are lazily mapped: neither packet below is ever written.
    let largest = Packet::Publish(Publish::new(
        "t",
        QoS::AtMostOnce,
        Bytes::from(vec![0u8; 268_435_455 - 3]),
    ));
    assert_eq!(largest.encoded_len(V311), 1 + 4 + 268_435_455);
    let too_large = Packet::Publish(Publish::new(
        "t",
        QoS::AtMostOnce,
        Bytes::from(vec![0u8; 268_435_456 - 3]),
    ));
    let mut out = BytesMut::new();
    assert_eq!(
        too_large.encode(V311, &mut out),
        Err(EncodeError::PacketTooLarge(268_435_456))
    );
    assert!(out.is_empty());
}

/// 3.1.1 section 1.5.3 / 5.0 section 1.5.4: "A𪛔" (U+0041, U+2A6D4) is encoded as
/// 00 05 41 F0 AA 9B 94. Here it is the topic of a QoS 0 PUBLISH and a client identifier.
#[test]
fn utf8_string_example() {
    const A_U2A6D4: [u8; 7] = [0x00, 0x05, 0x41, 0xF0, 0xAA, 0x9B, 0x94];
    let text = "A\u{2A6D4}";

    let mut publish = vec![0x30, 0x07];
    publish.extend_from_slice(&A_U2A6D4);
    for v in ALL_VERSIONS {
        let mut wire = publish.clone();
        if v.is_v5() {
            wire[1] += 1;
            wire.push(0x00); // property length
        }
        assert_wire(
            v,
            &wire,
            Packet::Publish(Publish::new(text, QoS::AtMostOnce, Bytes::new())),
        );
    }

    let mut connect = vec![
        0x10, 17, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C,
    ];
    connect.extend_from_slice(&A_U2A6D4);
    // `Connect::new` is clean session, keep alive 60, no will or credentials.
    assert_wire(
        V311,
        &connect,
        Packet::Connect(Box::new(Connect::new(V311, text))),
    );
}

/// 3.1.1 section 1.5.3 / 5.0 section 1.5.4 [MQTT-1.5.4-3]: EF BB BF is U+FEFF and must
/// not be skipped or stripped.
#[test]
fn utf8_byte_order_mark_is_kept() {
    let wire = [0x30, 0x06, 0x00, 0x04, 0xEF, 0xBB, 0xBF, b'a'];
    assert_wire(
        V311,
        &wire,
        Packet::Publish(Publish::new("\u{FEFF}a", QoS::AtMostOnce, Bytes::new())),
    );
}

/// 3.1.1 section 3.3.2.3, figure 3.11 / 5.0 section 3.3.2.3, figure 3-9: topic "a/b",
/// packet identifier 10 (and in v5 no properties), here with QoS 1 and payload "hi".
#[test]
fn publish_variable_header() {
    let packet = || {
        Packet::Publish(Publish {
            pkid: 10,
            ..Publish::new("a/b", QoS::AtLeastOnce, Bytes::from_static(b"hi"))
        })
    };
    let v3 = [
        0x32, 9, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, b'h', b'i',
    ];
    assert_wire(V31, &v3, packet());
    assert_wire(V311, &v3, packet());
    let v5 = [
        0x32, 10, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, 0x00, b'h', b'i',
    ];
    assert_wire(V5, &v5, packet());
}

/// 3.1.1 section 3.3.1 / 5.0 section 3.3.1: DUP (bit 3), QoS (bits 2-1) and RETAIN
/// (bit 0) in the first byte.
#[test]
fn publish_fixed_header_flags() {
    let packet = Packet::Publish(Publish {
        dup: true,
        retain: true,
        pkid: 1,
        ..Publish::new("a", QoS::ExactlyOnce, Bytes::new())
    });
    assert_wire(V311, &[0x3D, 5, 0x00, 0x01, b'a', 0x00, 0x01], packet);
    let retained = Packet::Publish(Publish {
        retain: true,
        ..Publish::new("a", QoS::AtMostOnce, Bytes::from_static(b"x"))
    });
    assert_wire(V311, &[0x31, 4, 0x00, 0x01, b'a', b'x'], retained);
}

/// 3.1.1 sections 3.8.2 and 3.8.3, figures 3.21 and 3.22 / 5.0 section 3.8.3, figure
/// 3-22: packet identifier 10, "a/b" at QoS 1 and "c/d" at QoS 2.
#[test]
fn subscribe_example() {
    let packet = Packet::Subscribe(Subscribe::new(
        10,
        vec![
            SubscribeFilter::new("a/b", QoS::AtLeastOnce),
            SubscribeFilter::new("c/d", QoS::ExactlyOnce),
        ],
    ));
    let v3 = [
        0x82, 14, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x00, 0x03, b'c', b'/', b'd',
        0x02,
    ];
    assert_wire(V31, &v3, packet.clone());
    assert_wire(V311, &v3, packet.clone());
    let v5 = [
        0x82, 15, 0x00, 0x0A, 0x00, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x00, 0x03, b'c', b'/',
        b'd', 0x02,
    ];
    assert_wire(V5, &v5, packet);
}

/// 5.0 section 3.8.3.1, figure 3-21: the subscription options byte (retain handling in
/// bits 5-4, Retain As Published bit 3, No Local bit 2, QoS bits 1-0).
#[test]
fn subscription_options_byte() {
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
    };
    let packet = Packet::Subscribe(Subscribe::new(
        10,
        vec![SubscribeFilter {
            filter: ByteStr::from("a/b"),
            options,
        }],
    ));
    assert_wire(
        V5,
        &[
            0x82, 9, 0x00, 0x0A, 0x00, 0x00, 0x03, b'a', b'/', b'b', 0x2D,
        ],
        packet,
    );
}

/// 3.1.1 section 3.9.3, figure 3.26: return codes 0 (QoS 0), 2 (QoS 2) and 128 (failure).
#[test]
fn suback_example() {
    let packet = Packet::SubAck(SubAck::new(
        10,
        vec![
            ReasonCode::GRANTED_QOS0,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ],
    ));
    assert_wire(
        V311,
        &[0x90, 5, 0x00, 0x0A, 0x00, 0x02, 0x80],
        packet.clone(),
    );
    assert_wire(V5, &[0x90, 6, 0x00, 0x0A, 0x00, 0x00, 0x02, 0x80], packet);
}

/// 3.1.1 sections 3.10.2 and 3.10.3, figures 3.29 and 3.30 / 5.0 section 3.10.3:
/// packet identifier 10, filters "a/b" and "c/d".
#[test]
fn unsubscribe_example() {
    let packet = Packet::Unsubscribe(Unsubscribe::new(
        10,
        vec![ByteStr::from("a/b"), ByteStr::from("c/d")],
    ));
    let v3 = [
        0xA2, 12, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x03, b'c', b'/', b'd',
    ];
    assert_wire(V311, &v3, packet.clone());
    let v5 = [
        0xA2, 13, 0x00, 0x0A, 0x00, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x03, b'c', b'/', b'd',
    ];
    assert_wire(V5, &v5, packet);
}

/// 3.1.1 section 3.11: UNSUBACK is the packet identifier only. 5.0 section 3.11.3: one
/// reason code per filter.
#[test]
fn unsuback() {
    assert_wire(
        V311,
        &[0xB0, 0x02, 0x00, 0x0A],
        Packet::UnsubAck(UnsubAck::new(10, Vec::new())),
    );
    assert_wire(
        V5,
        &[0xB0, 0x05, 0x00, 0x0A, 0x00, 0x00, 0x11],
        Packet::UnsubAck(UnsubAck::new(
            10,
            vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
        )),
    );
}

/// 3.1.1 sections 3.12, 3.13, 3.14 / 5.0 sections 3.12, 3.13, 3.14.2.1: PINGREQ C0 00,
/// PINGRESP D0 00 and DISCONNECT E0 00 (in v5 a remaining length of 0 means normal
/// disconnection with no properties).
#[test]
fn two_byte_packets() {
    for v in ALL_VERSIONS {
        assert_wire(v, &[0xC0, 0x00], Packet::PingReq);
        assert_wire(v, &[0xD0, 0x00], Packet::PingResp);
        assert_wire(
            v,
            &[0xE0, 0x00],
            Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION)),
        );
    }
}

/// 5.0 section 3.14.2: a DISCONNECT with only a reason code has a remaining length of 1;
/// with properties the property length follows.
#[test]
fn disconnect_v5_reason_and_properties() {
    assert_wire(
        V5,
        &[0xE0, 0x01, 0x04],
        Packet::Disconnect(Disconnect::new(ReasonCode::DisconnectWithWillMessage)),
    );
    assert_wire(
        V5,
        &[0xE0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x3C],
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::NORMAL_DISCONNECTION,
            properties: props(vec![Property::SessionExpiryInterval(60)]),
        }),
    );
}

/// 3.1.1 section 3.2, table 3.1: acknowledge flags, then return codes 0 to 5.
/// 5.0 section 3.2.2: reason code and property length follow the flags.
#[test]
fn connack() {
    assert_wire(
        V311,
        &[0x20, 0x02, 0x00, 0x00],
        Packet::ConnAck(ConnAck::new(ReasonCode::Success, false)),
    );
    assert_wire(
        V311,
        &[0x20, 0x02, 0x01, 0x00],
        Packet::ConnAck(ConnAck::new(ReasonCode::Success, true)),
    );
    let v3_codes = [
        (0x01, ReasonCode::UnsupportedProtocolVersion),
        (0x02, ReasonCode::ClientIdentifierNotValid),
        (0x03, ReasonCode::ServerUnavailable),
        (0x04, ReasonCode::BadUserNameOrPassword),
        (0x05, ReasonCode::NotAuthorized),
    ];
    for (code, reason) in v3_codes {
        for v in [V31, V311] {
            assert_wire(
                v,
                &[0x20, 0x02, 0x00, code],
                Packet::ConnAck(ConnAck::new(reason, false)),
            );
        }
    }
    assert_wire(
        V5,
        &[0x20, 0x03, 0x01, 0x00, 0x00],
        Packet::ConnAck(ConnAck::new(ReasonCode::Success, true)),
    );
    assert_wire(
        V5,
        &[0x20, 0x03, 0x00, 0x87, 0x00],
        Packet::ConnAck(ConnAck::new(ReasonCode::NotAuthorized, false)),
    );
}

/// 3.1.1 sections 3.4-3.7: PUBACK 40, PUBREC 50, PUBREL 62, PUBCOMP 70, each with a
/// remaining length of 2 and the packet identifier.
#[test]
fn publish_acknowledgements() {
    for v in ALL_VERSIONS {
        assert_wire(
            v,
            &[0x40, 0x02, 0x00, 0x0A],
            Packet::PubAck(PubAck::new(10)),
        );
        assert_wire(
            v,
            &[0x50, 0x02, 0x00, 0x0A],
            Packet::PubRec(PubRec::new(10)),
        );
        assert_wire(
            v,
            &[0x62, 0x02, 0x00, 0x0A],
            Packet::PubRel(PubRel::new(10)),
        );
        assert_wire(
            v,
            &[0x70, 0x02, 0x00, 0x0A],
            Packet::PubComp(PubComp::new(10)),
        );
    }
}

/// 5.0 sections 3.4.2.1 and 3.4.2.2: the reason code may follow the packet identifier;
/// with a remaining length under 4 there is no property length; a reason code of 0 with
/// no properties may also be sent in full.
#[test]
fn publish_acknowledgements_v5() {
    assert_wire(
        V5,
        &[0x40, 0x03, 0x00, 0x0A, 0x10],
        Packet::PubAck(PubAck::with_reason(10, ReasonCode::NoMatchingSubscribers)),
    );
    assert_wire(
        V5,
        &[0x62, 0x03, 0x00, 0x0A, 0x92],
        Packet::PubRel(PubRel::with_reason(
            10,
            ReasonCode::PacketIdentifierNotFound,
        )),
    );
    assert_wire(
        V5,
        &[0x50, 0x08, 0x00, 0x0A, 0x00, 0x04, 0x1F, 0x00, 0x01, b'r'],
        Packet::PubRec(PubRec {
            pkid: 10,
            reason: ReasonCode::Success,
            properties: props(vec![Property::ReasonString(ByteStr::from("r"))]),
        }),
    );
    assert_decodes(
        V5,
        &[0x40, 0x03, 0x00, 0x0A, 0x00],
        Packet::PubAck(PubAck::new(10)),
    );
    assert_decodes(
        V5,
        &[0x70, 0x04, 0x00, 0x0A, 0x00, 0x00],
        Packet::PubComp(PubComp::new(10)),
    );
}

/// 5.0 section 3.15.2.1: an AUTH with reason 0 and no properties has remaining length 0.
#[test]
fn auth() {
    assert_wire(
        V5,
        &[0xF0, 0x00],
        Packet::Auth(Auth::new(ReasonCode::Success, Properties::new())),
    );
    assert_wire(
        V5,
        &[
            0xF0, 0x0B, 0x18, 0x09, 0x15, 0x00, 0x02, b'g', b's', 0x16, 0x00, 0x01, 0x2A,
        ],
        Packet::Auth(Auth::new(
            ReasonCode::ContinueAuthentication,
            props(vec![
                Property::AuthenticationMethod(ByteStr::from("gs")),
                Property::AuthenticationData(Bytes::from_static(&[0x2A])),
            ]),
        )),
    );
    assert_decodes(
        V5,
        &[0xF0, 0x02, 0x00, 0x00],
        Packet::Auth(Auth::new(ReasonCode::Success, Properties::new())),
    );
}

/// 5.0 section 3.3.2.3.4: a PUBLISH may carry an empty topic name with a Topic Alias.
#[test]
fn publish_with_topic_alias_and_empty_topic() {
    assert_wire(
        V5,
        &[0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x05, b'x'],
        Packet::Publish(Publish {
            properties: props(vec![Property::TopicAlias(5)]),
            ..Publish::new("", QoS::AtMostOnce, Bytes::from_static(b"x"))
        }),
    );
}
