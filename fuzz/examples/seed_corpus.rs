//! Writes the seed corpus of the `decode` target into `fuzz/corpus/decode/`: every
//! packet type in each protocol version it exists in, encoded by the codec itself,
//! one stream of them all per version, and hand-written malformed inputs.
//!
//! Each file is a selector byte (see `ringmq_fuzz::settings`) and then the stream.
//! Run with `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus`;
//! files of the same name are overwritten, others are left alone.

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use ringmq::protocol::{
    Auth, ByteStr, ConnAck, Connect, Disconnect, Packet, Properties, Property, ProtocolVersion,
    PubAck, PubComp, PubRec, PubRel, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};

/// File-name tag and selector byte (unlimited packet size) of each version.
const VERSIONS: [(&str, ProtocolVersion, u8); 3] = [
    ("v31", ProtocolVersion::V3_1, 0),
    ("v311", ProtocolVersion::V3_1_1, 1),
    ("v5", ProtocolVersion::V5, 2),
];

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/decode");
    fs::create_dir_all(&dir).expect("create corpus directory");
    let mut written = 0;
    let mut write = |name: &str, selector: u8, stream: &[u8]| {
        let mut data = vec![selector];
        data.extend_from_slice(stream);
        fs::write(dir.join(name), data).unwrap_or_else(|e| panic!("write {name}: {e}"));
        written += 1;
    };
    for (tag, version, selector) in VERSIONS {
        let mut all = BytesMut::new();
        for (name, packet) in packets(version) {
            let mut one = BytesMut::new();
            packet
                .encode(version, &mut one)
                .unwrap_or_else(|e| panic!("encode {tag}-{name}: {e}"));
            write(&format!("{tag}-{name}"), selector, &one);
            all.extend_from_slice(&one);
        }
        write(&format!("{tag}-stream"), selector, &all);
        write(
            &format!("{tag}-stream-truncated"),
            selector,
            &all[..all.len() - 3],
        );
        // Maximum packet size 16 (selector / 3 == 4): the CONNECT is too large.
        write(&format!("{tag}-stream-max16"), selector + 12, &all);
    }
    for (name, selector, stream) in MALFORMED {
        let (version, max) = ringmq_fuzz::settings(*selector);
        match Packet::decode(&mut BytesMut::from(*stream), version, max) {
            Err(e) => println!("bad-{name}: {e}"),
            other => panic!("bad-{name} is not malformed: {other:?}"),
        }
        write(&format!("bad-{name}"), *selector, stream);
    }
    println!("wrote {written} files to {}", dir.display());
}

fn s(text: &'static str) -> ByteStr {
    ByteStr::from_static(text)
}

fn user(key: &'static str, value: &'static str) -> Property {
    Property::UserProperty(s(key), s(value))
}

/// One of each packet the version has; properties are only written in 5.0.
fn packets(version: ProtocolVersion) -> Vec<(&'static str, Packet)> {
    let v5 = version.is_v5();
    let props = |list: Vec<Property>| Properties::from_vec(if v5 { list } else { Vec::new() });

    let mut full = Connect::new(version, "client-1");
    full.clean_start = false;
    full.keep_alive = 30;
    full.properties = props(vec![
        Property::SessionExpiryInterval(3600),
        Property::ReceiveMaximum(20),
        Property::MaximumPacketSize(65536),
        Property::TopicAliasMaximum(10),
        Property::RequestResponseInformation(1),
        user("region", "eu"),
    ]);
    full.will = Some(Will {
        topic: s("clients/client-1/status"),
        payload: Bytes::from_static(b"offline"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: props(vec![
            Property::WillDelayInterval(5),
            Property::PayloadFormatIndicator(1),
            Property::ContentType(s("text/plain")),
        ]),
    });
    full.username = Some(s("alice"));
    full.password = Some(Bytes::from_static(b"secret"));

    let mut publish_props = Publish::new("", QoS::AtMostOnce, &b"aliased"[..]);
    publish_props.properties = props(vec![
        Property::TopicAlias(3),
        Property::MessageExpiryInterval(60),
        Property::ResponseTopic(s("reply/here")),
        Property::CorrelationData(Bytes::from_static(b"\x01\x02")),
        Property::SubscriptionIdentifier(7),
        Property::SubscriptionIdentifier(300),
        user("k", "v"),
        user("k", "v2"),
    ]);
    if !v5 {
        publish_props.topic = s("a/b");
    }
    let mut publish_qos1 = Publish::new("sensors/1/temp", QoS::AtLeastOnce, &b"21.5"[..]);
    publish_qos1.pkid = 1;
    publish_qos1.retain = true;
    let mut publish_qos2 = Publish::new("a/b/c", QoS::ExactlyOnce, Bytes::new());
    publish_qos2.pkid = 65535;
    publish_qos2.dup = true;

    let mut subscribe = Subscribe::new(
        10,
        vec![
            SubscribeFilter::new("a/+/c", QoS::AtMostOnce),
            SubscribeFilter::new("sensors/#", QoS::AtLeastOnce),
            SubscribeFilter::new("$share/group/jobs/+", QoS::ExactlyOnce),
        ],
    );
    if v5 {
        subscribe.properties = props(vec![Property::SubscriptionIdentifier(268_435_455)]);
        subscribe.filters.push(SubscribeFilter {
            filter: s("local/only"),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
        });
    }
    let suback_codes = vec![
        ReasonCode::GRANTED_QOS0,
        ReasonCode::GrantedQoS1,
        ReasonCode::GrantedQoS2,
        ReasonCode::UnspecifiedError,
    ];
    let reason = |code: ReasonCode| if v5 { code } else { ReasonCode::Success };

    let mut list: Vec<(&'static str, Packet)> = vec![
        (
            "connect-min",
            Packet::Connect(Box::new(Connect::new(version, ""))),
        ),
        ("connect-full", Packet::Connect(Box::new(full))),
        (
            "connack",
            Packet::ConnAck(ConnAck::new(ReasonCode::Success, v5)),
        ),
        (
            "connack-refused",
            Packet::ConnAck(ConnAck::new(ReasonCode::NotAuthorized, false)),
        ),
        (
            "publish-qos0",
            Packet::Publish(Publish::new("t", QoS::AtMostOnce, &b"hello"[..])),
        ),
        ("publish-qos1-retain", Packet::Publish(publish_qos1)),
        ("publish-qos2-dup", Packet::Publish(publish_qos2)),
        ("publish-props", Packet::Publish(publish_props)),
        ("puback", Packet::PubAck(PubAck::new(1))),
        (
            "puback-reason",
            Packet::PubAck(PubAck::with_reason(
                2,
                reason(ReasonCode::NoMatchingSubscribers),
            )),
        ),
        (
            "pubrec",
            Packet::PubRec(PubRec::with_reason(3, reason(ReasonCode::QuotaExceeded))),
        ),
        ("pubrel", Packet::PubRel(PubRel::new(4))),
        (
            "pubcomp",
            Packet::PubComp(PubComp::with_reason(
                5,
                reason(ReasonCode::PacketIdentifierNotFound),
            )),
        ),
        ("subscribe", Packet::Subscribe(subscribe)),
        ("suback", Packet::SubAck(SubAck::new(10, suback_codes))),
        (
            "unsubscribe",
            Packet::Unsubscribe(Unsubscribe::new(11, vec![s("a/+/c"), s("sensors/#")])),
        ),
        (
            "unsuback",
            Packet::UnsubAck(UnsubAck::new(
                11,
                if v5 {
                    vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
                } else {
                    Vec::new()
                },
            )),
        ),
        ("pingreq", Packet::PingReq),
        ("pingresp", Packet::PingResp),
        (
            "disconnect",
            Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION)),
        ),
    ];
    if v5 {
        let mut pubrel = PubRel::with_reason(6, ReasonCode::PacketIdentifierNotFound);
        pubrel.properties = props(vec![Property::ReasonString(s("gone")), user("a", "b")]);
        let mut connack = ConnAck::new(ReasonCode::Success, false);
        connack.properties = props(vec![
            Property::AssignedClientIdentifier(s("auto-1")),
            Property::ServerKeepAlive(120),
            Property::MaximumQoS(1),
            Property::RetainAvailable(0),
            Property::WildcardSubscriptionAvailable(1),
            Property::SubscriptionIdentifierAvailable(1),
            Property::SharedSubscriptionAvailable(0),
            Property::ResponseInformation(s("resp/")),
            Property::AuthenticationMethod(s("SCRAM-SHA-1")),
        ]);
        let mut disconnect = Disconnect::new(ReasonCode::ServerMoved);
        disconnect.properties = props(vec![
            Property::SessionExpiryInterval(0),
            Property::ServerReference(s("other:1883")),
            Property::ReasonString(s("moving")),
        ]);
        let auth = Auth::new(
            ReasonCode::ContinueAuthentication,
            props(vec![
                Property::AuthenticationMethod(s("SCRAM-SHA-1")),
                Property::AuthenticationData(Bytes::from_static(b"\x00\xffnonce")),
            ]),
        );
        list.extend([
            ("pubrel-props", Packet::PubRel(pubrel)),
            ("connack-props", Packet::ConnAck(connack)),
            (
                "disconnect-reason",
                Packet::Disconnect(Disconnect::new(ReasonCode::DisconnectWithWillMessage)),
            ),
            ("disconnect-props", Packet::Disconnect(disconnect)),
            (
                "auth-empty",
                Packet::Auth(Auth::new(ReasonCode::Success, Properties::new())),
            ),
            ("auth", Packet::Auth(auth)),
        ]);
    }
    list
}

/// Inputs each decode to a `DecodeError` (or `PacketTooLarge` through the selector).
/// Selector 0/1/2 = 3.1/3.1.1/5.0 with no size limit.
const MALFORMED: &[(&str, u8, &[u8])] = &[
    ("type-0", 1, &[0x00, 0x00]),
    ("varint-5-bytes", 1, &[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]),
    ("varint-not-minimal", 1, &[0x30, 0x80, 0x00]),
    ("pubrel-flags", 1, &[0x60, 0x02, 0x00, 0x01]),
    (
        "subscribe-flags",
        1,
        &[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00],
    ),
    (
        "publish-qos3",
        1,
        &[0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01],
    ),
    ("publish-dup-qos0", 1, &[0x38, 0x03, 0x00, 0x01, b't']),
    ("publish-wildcard-topic", 1, &[0x30, 0x03, 0x00, 0x01, b'#']),
    ("publish-nul-topic", 1, &[0x30, 0x03, 0x00, 0x01, 0x00]),
    (
        "publish-surrogate-topic",
        1,
        &[0x30, 0x05, 0x00, 0x03, 0xed, 0xa0, 0x80],
    ),
    (
        "publish-pkid-0",
        1,
        &[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00],
    ),
    ("publish-empty-topic-v311", 1, &[0x30, 0x02, 0x00, 0x00]),
    (
        "publish-empty-topic-no-alias",
        2,
        &[0x30, 0x03, 0x00, 0x00, 0x00],
    ),
    (
        "publish-topic-alias-0",
        2,
        &[0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x00],
    ),
    ("publish-topic-overruns", 1, &[0x30, 0x03, 0x00, 0x05, b't']),
    (
        "connect-bad-name",
        1,
        &[
            0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'X', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
        ],
    ),
    (
        "connect-level-9",
        1,
        &[
            0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x09, 0x02, 0x00, 0x3c, 0x00, 0x00,
        ],
    ),
    (
        "connect-reserved-flag",
        1,
        &[
            0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x03, 0x00, 0x3c, 0x00, 0x00,
        ],
    ),
    (
        "connect-will-qos-without-will",
        1,
        &[
            0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x0a, 0x00, 0x3c, 0x00, 0x00,
        ],
    ),
    (
        "connect-password-without-user",
        1,
        &[
            0x10, 0x0f, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x42, 0x00, 0x3c, 0x00, 0x00,
            0x00, 0x01, b'p',
        ],
    ),
    (
        "connect-v5-duplicate-property",
        2,
        &[
            0x10, 0x13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3c, 0x06, 0x21,
            0x00, 0x01, 0x21, 0x00, 0x02, 0x00, 0x00,
        ],
    ),
    (
        "connect-v5-receive-maximum-0",
        2,
        &[
            0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3c, 0x03, 0x21,
            0x00, 0x00, 0x00, 0x00,
        ],
    ),
    (
        "puback-v5-unknown-property",
        2,
        &[0x40, 0x05, 0x00, 0x01, 0x10, 0x01, 0x7f],
    ),
    (
        "puback-v5-property-not-allowed",
        2,
        &[0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01],
    ),
    ("puback-v5-bad-reason", 2, &[0x40, 0x03, 0x00, 0x01, 0x81]),
    ("puback-trailing", 1, &[0x40, 0x03, 0x00, 0x01, 0x00]),
    ("puback-pkid-0", 1, &[0x40, 0x02, 0x00, 0x00]),
    ("pingreq-trailing", 1, &[0xc0, 0x01, 0x00]),
    ("subscribe-no-filters", 1, &[0x82, 0x02, 0x00, 0x01]),
    (
        "subscribe-bad-filter",
        1,
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x02, b'a', b'#', 0x00],
    ),
    (
        "subscribe-v311-options",
        1,
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x04],
    ),
    (
        "subscribe-v5-retain-handling-3",
        2,
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30],
    ),
    (
        "subscribe-v5-no-local-shared",
        2,
        &[
            0x82, 0x10, 0x00, 0x01, 0x00, 0x00, 0x0a, b'$', b's', b'h', b'a', b'r', b'e', b'/',
            b'g', b'/', b'a', 0x04,
        ],
    ),
    ("suback-v311-bad-code", 1, &[0x90, 0x03, 0x00, 0x01, 0x03]),
    ("suback-no-codes", 1, &[0x90, 0x02, 0x00, 0x01]),
    ("unsuback-v5-no-codes", 2, &[0xb0, 0x03, 0x00, 0x01, 0x00]),
    ("connack-flags", 1, &[0x20, 0x02, 0x02, 0x00]),
    ("connack-v311-code-6", 1, &[0x20, 0x02, 0x00, 0x06]),
    ("auth-in-v311", 1, &[0xf0, 0x00]),
    ("auth-bad-reason", 2, &[0xf0, 0x01, 0x04]),
    ("disconnect-v311-trailing", 1, &[0xe0, 0x01, 0x00]),
    // Maximum packet size 1 (selector / 3 == 1): even a PINGREQ is too large.
    ("pingreq-too-large", 4, &[0xc0, 0x00]),
];
