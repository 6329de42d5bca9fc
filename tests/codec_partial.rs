//! Partial input: a stream holding every packet type (for each protocol version) is
//! cut at every byte position. Until a packet is complete, decoding returns `Ok(None)`
//! and leaves the buffer as it was; fed the rest, or fed one byte at a time, the
//! decoder yields exactly the original packets, in order.

use bytes::{Bytes, BytesMut};
use ringmq::protocol::{
    Auth, ByteStr, ConnAck, Connect, Disconnect, Packet, Properties, Property, ProtocolVersion,
    PubAck, PubComp, PubRec, PubRel, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

/// Properties for v5 packets, none for v3 (where they would not survive the trip).
fn v5_only(v: ProtocolVersion, list: Vec<Property>) -> Properties {
    if v.is_v5() {
        Properties::from_vec(list)
    } else {
        Properties::new()
    }
}

fn reason_string(text: &str) -> Property {
    Property::ReasonString(ByteStr::from(text))
}

/// One of each packet that exists in `v`, several with properties, plus PUBLISHes whose
/// remaining length takes one, two and three bytes.
fn stream_packets(v: ProtocolVersion) -> Vec<Packet> {
    let v5 = v.is_v5();
    let user = || Property::UserProperty(ByteStr::from("k"), ByteStr::from("v"));
    let mut packets = vec![
        Packet::Connect(Box::new(Connect {
            protocol: v,
            clean_start: false,
            keep_alive: 30,
            properties: v5_only(
                v,
                vec![
                    Property::SessionExpiryInterval(300),
                    Property::ReceiveMaximum(20),
                ],
            ),
            client_id: ByteStr::from("client-\u{2A6D4}"),
            will: Some(Will {
                topic: ByteStr::from("status/client"),
                payload: Bytes::from_static(b"gone"),
                qos: QoS::ExactlyOnce,
                retain: true,
                properties: v5_only(v, vec![Property::WillDelayInterval(5), user()]),
            }),
            username: Some(ByteStr::from("user")),
            password: Some(Bytes::from_static(&[0, 1, 2, 0xFF])),
        })),
        Packet::ConnAck(ConnAck {
            session_present: v != ProtocolVersion::V3_1,
            reason: ReasonCode::Success,
            properties: v5_only(
                v,
                vec![
                    Property::AssignedClientIdentifier(ByteStr::from("auto-1")),
                    Property::TopicAliasMaximum(10),
                ],
            ),
        }),
        Packet::Publish(Publish::new(
            "a/b",
            QoS::AtMostOnce,
            Bytes::from_static(b"q0"),
        )),
        Packet::Publish(Publish {
            dup: true,
            retain: true,
            pkid: 1,
            properties: v5_only(
                v,
                vec![
                    Property::PayloadFormatIndicator(1),
                    Property::SubscriptionIdentifier(200),
                    Property::SubscriptionIdentifier(3),
                ],
            ),
            ..Publish::new("a/c", QoS::AtLeastOnce, Bytes::from(vec![0x11; 200]))
        }),
        Packet::Publish(Publish {
            pkid: 2,
            ..Publish::new("big", QoS::ExactlyOnce, Bytes::from(vec![0x22; 16_400]))
        }),
        Packet::PubAck(PubAck::new(1)),
        Packet::PubRec(PubRec {
            pkid: 2,
            reason: if v5 {
                ReasonCode::NoMatchingSubscribers
            } else {
                ReasonCode::Success
            },
            properties: Properties::new(),
        }),
        Packet::PubRel(PubRel {
            pkid: 2,
            reason: ReasonCode::Success,
            properties: v5_only(v, vec![reason_string("ok")]),
        }),
        Packet::PubComp(PubComp::new(2)),
        Packet::Subscribe(Subscribe {
            pkid: 3,
            properties: v5_only(v, vec![Property::SubscriptionIdentifier(7)]),
            filters: vec![
                SubscribeFilter::new("a/+", QoS::AtLeastOnce),
                SubscribeFilter {
                    filter: ByteStr::from("$share/g/b/#"),
                    options: SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        no_local: false,
                        retain_as_published: v5,
                        retain_handling: if v5 {
                            RetainHandling::DoNotSend
                        } else {
                            RetainHandling::SendAtSubscribe
                        },
                    },
                },
            ],
        }),
        Packet::SubAck(SubAck {
            pkid: 3,
            properties: v5_only(v, vec![user()]),
            reasons: vec![ReasonCode::GrantedQoS1, ReasonCode::UnspecifiedError],
        }),
        Packet::Unsubscribe(Unsubscribe::new(3, vec![ByteStr::from("a/+")])),
        Packet::UnsubAck(UnsubAck {
            pkid: 3,
            properties: v5_only(v, vec![reason_string("done")]),
            reasons: if v5 {
                vec![ReasonCode::Success]
            } else {
                Vec::new()
            },
        }),
        Packet::PingReq,
        Packet::PingResp,
    ];
    if v5 {
        packets.push(Packet::Auth(Auth::new(
            ReasonCode::ContinueAuthentication,
            Properties::from_vec(vec![
                Property::AuthenticationMethod(ByteStr::from("SCRAM-SHA-1")),
                Property::AuthenticationData(Bytes::from_static(b"nonce")),
            ]),
        )));
        packets.push(Packet::Publish(Publish {
            properties: Properties::from_vec(vec![Property::TopicAlias(4)]),
            ..Publish::new("", QoS::AtMostOnce, Bytes::from_static(b"aliased"))
        }));
    }
    packets.push(Packet::Disconnect(Disconnect {
        reason: if v5 {
            ReasonCode::DisconnectWithWillMessage
        } else {
            ReasonCode::NORMAL_DISCONNECTION
        },
        properties: v5_only(v, vec![Property::SessionExpiryInterval(0)]),
    }));
    packets
}

/// The encoded stream and the offset at which each packet ends.
fn encode_stream(v: ProtocolVersion, packets: &[Packet]) -> (Vec<u8>, Vec<usize>) {
    let mut out = BytesMut::new();
    let mut ends = Vec::new();
    for p in packets {
        p.encode(v, &mut out)
            .unwrap_or_else(|e| panic!("{p:?} does not encode at {v:?}: {e}"));
        ends.push(out.len());
    }
    (out.to_vec(), ends)
}

/// Decodes packets from `buf` until it holds no complete packet. Callers check that
/// what is left is exactly the tail of the stream after the last complete packet.
fn drain(buf: &mut BytesMut, v: ProtocolVersion) -> Vec<Packet> {
    let mut got = Vec::new();
    loop {
        match Packet::decode(buf, v, u32::MAX) {
            Ok(Some(p)) => got.push(p),
            Ok(None) => return got,
            Err(e) => panic!("valid stream refused at {v:?}: {e:?}"),
        }
    }
}

#[test]
fn stream_covers_every_packet_type() {
    for v in VERSIONS {
        let kinds: std::collections::HashSet<u8> = stream_packets(v)
            .iter()
            .map(|p| p.packet_type() as u8)
            .collect();
        let want = if v.is_v5() { 15 } else { 14 };
        assert_eq!(kinds.len(), want, "{v:?}");
    }
}

#[test]
fn split_at_every_byte() {
    for v in VERSIONS {
        let packets = stream_packets(v);
        let (stream, ends) = encode_stream(v, &packets);
        // The three PUBLISH sizes give one-, two- and three-byte remaining lengths.
        assert!(stream.len() > 16_384);
        for cut in 0..=stream.len() {
            let complete = ends.iter().filter(|&&end| end <= cut).count();
            let consumed = if complete == 0 { 0 } else { ends[complete - 1] };

            let mut buf = BytesMut::from(&stream[..cut]);
            let first = drain(&mut buf, v);
            assert_eq!(first, packets[..complete], "{v:?}, cut at {cut}");
            assert_eq!(
                &buf[..],
                &stream[consumed..cut],
                "{v:?}, cut at {cut}: the incomplete packet is not intact"
            );

            buf.extend_from_slice(&stream[cut..]);
            let rest = drain(&mut buf, v);
            assert_eq!(rest, packets[complete..], "{v:?}, cut at {cut}");
            assert!(buf.is_empty(), "{v:?}, cut at {cut}: bytes left over");
        }
    }
}

#[test]
fn byte_by_byte() {
    for v in VERSIONS {
        let packets = stream_packets(v);
        let (stream, ends) = encode_stream(v, &packets);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for (i, &byte) in stream.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            let fed = i + 1;
            let decoded = drain(&mut buf, v);
            // A packet appears exactly when its last byte arrives.
            let completes = ends.contains(&fed);
            assert_eq!(
                decoded.len(),
                usize::from(completes),
                "{v:?}, after {fed} bytes"
            );
            got.extend(decoded);
            let consumed = ends.iter().copied().filter(|&end| end <= fed).max();
            assert_eq!(
                &buf[..],
                &stream[consumed.unwrap_or(0)..fed],
                "{v:?}, after {fed} bytes: the incomplete packet is not intact"
            );
        }
        assert_eq!(got, packets, "{v:?}");
        assert!(buf.is_empty());
    }
}

/// Every strict prefix of each packet, alone in the buffer, is incomplete: even a
/// prefix that ends inside the remaining length or right after the fixed header.
#[test]
fn every_strict_prefix_of_each_packet_is_incomplete() {
    for v in VERSIONS {
        for p in stream_packets(v) {
            let mut out = BytesMut::new();
            p.encode(v, &mut out).expect("stream packets encode");
            for cut in 0..out.len() {
                let mut buf = BytesMut::from(&out[..cut]);
                assert_eq!(
                    Packet::decode(&mut buf, v, u32::MAX),
                    Ok(None),
                    "{v:?}: {p:?} cut at {cut}"
                );
                assert_eq!(&buf[..], &out[..cut]);
            }
        }
    }
}
