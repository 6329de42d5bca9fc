//! MQTT 5 properties forwarded unchanged and reason codes in acks.

use std::time::Duration;

use bytes::Bytes;
use ringmq::protocol::{
    Disconnect, Packet, Properties, Property, PropertyId, ProtocolVersion, PubComp, PubRec, PubRel,
    Publish, QoS, ReasonCode, RetainHandling,
};

use crate::common::*;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// How long to watch for a message that must not come.
const QUIET: Duration = Duration::from_millis(60);

fn tag(ps: usize, ss: usize) -> String {
    format!("p{ps}s{ss}")
}

/// Application properties a publisher sets, with a repeated user property key and
/// user properties interleaved with the others.
fn app_properties() -> Properties {
    Properties::from_vec(vec![
        Property::UserProperty("region".into(), "eu".into()),
        Property::PayloadFormatIndicator(1),
        Property::UserProperty("trace".into(), "a-1".into()),
        Property::ContentType("application/json".into()),
        Property::ResponseTopic("reply/to/me".into()),
        Property::UserProperty("region".into(), "us".into()),
        Property::CorrelationData(Bytes::from_static(&[0, 1, 0xfe, 0xff])),
        Property::UserProperty(String::new().into(), "empty key".into()),
    ])
}

/// Asserts `p` carries exactly the properties of `app_properties` (v5 3.3.2.3:
/// forwarded unchanged, user properties in order).
fn assert_app_properties(p: &Properties, what: &str) {
    let users: Vec<(&str, &str)> = p.user_properties().collect();
    assert_eq!(
        users,
        [
            ("region", "eu"),
            ("trace", "a-1"),
            ("region", "us"),
            ("", "empty key")
        ],
        "{what}: user properties"
    );
    assert_eq!(p.payload_format_indicator(), Some(1), "{what}");
    assert_eq!(
        p.content_type().as_deref(),
        Some("application/json"),
        "{what}"
    );
    assert_eq!(p.response_topic().as_deref(), Some("reply/to/me"), "{what}");
    assert_eq!(
        p.correlation_data().as_deref(),
        Some(&[0u8, 1, 0xfe, 0xff][..]),
        "{what}"
    );
    assert_eq!(p.len(), 8, "{what}: nothing added or dropped: {p:?}");
}

fn publish_with(topic: &str, payload: &'static [u8], qos: QoS, properties: Properties) -> Publish {
    let mut p = Publish::new(topic, qos, payload);
    p.properties = properties;
    p
}

fn subscription_ids(p: &Publish) -> Vec<u32> {
    let mut ids: Vec<u32> = p.properties.subscription_identifiers().collect();
    ids.sort_unstable();
    ids
}

#[test]
fn publish_properties_are_forwarded_unchanged() {
    let b = broker();
    let addr = b.local_addr();
    for (ps, ss) in SHARD_PAIRS {
        let tag = tag(ps, ss);
        let topic = format!("props/{tag}");
        let mut sub = Client::new(addr, V5, &id_on(ss, 2, &format!("s{tag}")));
        sub.subscribe(&topic, QoS::ExactlyOnce);
        let mut v3 = Client::new(
            addr,
            ProtocolVersion::V3_1_1,
            &id_on(ss, 2, &format!("t{tag}")),
        );
        v3.subscribe(&topic, QoS::ExactlyOnce);
        let mut publisher = Client::new(addr, V5, &id_on(ps, 2, &format!("p{tag}")));
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let what = format!("{tag} {qos:?}");
            publisher.publish_packet(publish_with(&topic, b"{\"t\":1}", qos, app_properties()));
            let got = sub.recv_publish();
            assert_eq!(
                (&got.payload[..], got.qos),
                (&b"{\"t\":1}"[..], qos),
                "{what}"
            );
            assert_app_properties(&got.properties, &what);
            // A v3.1.1 subscriber gets the same payload, without properties.
            let got = v3.recv_publish();
            assert_eq!(&got.payload[..], b"{\"t\":1}", "{what} v3.1.1");
        }

        // A retained message keeps its properties for later subscribers.
        let retained = format!("props/{tag}/retained");
        let mut p = publish_with(&retained, b"r", QoS::AtLeastOnce, app_properties());
        p.retain = true;
        publisher.publish_packet(p);
        publisher.sync_shards();
        let mut late = Client::new(addr, V5, &id_on(ss, 2, &format!("l{tag}")));
        late.subscribe(&retained, QoS::AtLeastOnce);
        let got = late.recv_publish();
        assert!(got.retain, "{tag}");
        assert_app_properties(&got.properties, &format!("{tag} retained"));
    }
}

#[test]
fn message_expiry_is_forwarded_as_the_remaining_interval() {
    let b = broker();
    let addr = b.local_addr();
    for (ps, ss) in SHARD_PAIRS {
        let tag = tag(ps, ss);
        let topic = format!("mei/{tag}");
        let mut sub = Client::new(addr, V5, &id_on(ss, 2, &format!("s{tag}")));
        sub.subscribe(&topic, QoS::AtLeastOnce);
        let mut publisher = Client::new(addr, V5, &id_on(ps, 2, &format!("p{tag}")));
        let props = Properties::from_vec(vec![Property::MessageExpiryInterval(60)]);
        publisher.publish_packet(publish_with(&topic, b"e", QoS::AtLeastOnce, props));
        let got = sub.recv_publish();
        let left = got.properties.message_expiry_interval();
        assert!(matches!(left, Some(1..=60)), "{tag}: {:?}", got.properties);
        let count = got
            .properties
            .iter()
            .filter(|p| p.id() == PropertyId::MessageExpiryInterval)
            .count();
        assert_eq!(count, 1, "{tag}: {:?}", got.properties);
    }
}

/// v5 3.3.2.3.3: a message whose expiry interval has passed is not delivered to a
/// subscriber that was offline; one still valid is, with the interval reduced by the
/// time it waited. An expired retained message is not sent on subscribe either.
#[test]
fn expired_messages_are_not_delivered_from_an_offline_queue() {
    let b = broker();
    let addr = b.local_addr();
    let expiry = |secs| Properties::from_vec(vec![Property::MessageExpiryInterval(secs)]);
    let mut offline = Vec::new();
    for (ps, ss) in SHARD_PAIRS {
        let tag = tag(ps, ss);
        let topic = format!("expiry/{tag}");
        let id = id_on(ss, 2, &format!("s{tag}"));
        let (mut sub, ack) = Client::connect_with(addr, persistent(V5, &id, false, 60));
        assert_eq!(
            (ack.reason, ack.session_present),
            (ReasonCode::Success, false)
        );
        sub.subscribe(&topic, QoS::AtLeastOnce);
        sub.send(Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
        assert_eq!(sub.closed_within(WAIT), Some(vec![]), "{tag}");

        let mut publisher = Client::new(addr, V5, &id_on(ps, 2, &format!("p{tag}")));
        publisher.publish_packet(publish_with(&topic, b"short", QoS::AtLeastOnce, expiry(1)));
        publisher.publish_packet(publish_with(&topic, b"long", QoS::AtLeastOnce, expiry(60)));
        let retained = format!("expiry-retained/{tag}");
        let mut short = publish_with(&retained, b"short", QoS::AtLeastOnce, expiry(1));
        short.retain = true;
        publisher.publish_packet(short);
        publisher.publish(&format!("{retained}/keep"), b"keep", QoS::AtLeastOnce, true);
        publisher.sync_shards();
        offline.push((tag, id, retained));
    }
    std::thread::sleep(Duration::from_millis(2100));
    for (tag, id, retained) in offline {
        let (mut sub, ack) = Client::connect_with(addr, persistent(V5, &id, false, 60));
        assert_eq!(
            (ack.reason, ack.session_present),
            (ReasonCode::Success, true),
            "{tag}"
        );
        let got = sub.recv_publish();
        assert_eq!(
            &got.payload[..],
            b"long",
            "{tag}: the expired message was delivered"
        );
        let left = got.properties.message_expiry_interval();
        assert!(
            matches!(left, Some(50..=58)),
            "{tag}: 60 s less the 2 s waited, got {left:?}"
        );
        sub.expect_nothing(QUIET);

        let mut late = Client::new(addr, V5, &id_on(1, 2, &format!("r{tag}")));
        late.subscribe(&format!("{retained}/#"), QoS::AtLeastOnce);
        let got = late.recv_publish();
        assert_eq!(
            &got.payload[..],
            b"keep",
            "{tag}: the expired retained message was sent"
        );
        late.expect_nothing(QUIET);
    }
}

#[test]
fn subscription_identifiers_are_delivered_with_matching_messages() {
    let b = broker();
    let addr = b.local_addr();
    let qos1 = sub_options(QoS::AtLeastOnce, false, RetainHandling::SendAtSubscribe);
    for (ps, ss) in SHARD_PAIRS {
        let tag = tag(ps, ss);
        let mut sub = Client::new(addr, V5, &id_on(ss, 2, &format!("s{tag}")));
        sub.subscribe_opts(&format!("sid/{tag}/a"), qos1, Some(1));
        sub.subscribe_opts(&format!("sid/{tag}/+"), qos1, Some(2));
        sub.subscribe_opts(&format!("sid/{tag}/max"), qos1, Some(268_435_455));
        sub.subscribe(&format!("nosid/{tag}"), QoS::AtLeastOnce);
        let mut publisher = Client::new(addr, V5, &id_on(ps, 2, &format!("p{tag}")));
        let cases: [(String, Vec<u32>); 4] = [
            // v5 3.3.4: one copy for overlapping subscriptions, with every identifier.
            (format!("sid/{tag}/a"), vec![1, 2]),
            (format!("sid/{tag}/b"), vec![2]),
            (format!("sid/{tag}/max"), vec![2, 268_435_455]),
            (format!("nosid/{tag}"), vec![]),
        ];
        for (topic, _) in &cases {
            publisher.publish(topic, topic.as_bytes(), QoS::AtLeastOnce, false);
        }
        for (topic, ids) in &cases {
            let got = sub.recv_publish();
            assert_eq!(
                got.topic,
                topic.as_str(),
                "{tag}: one copy per message, in order"
            );
            assert_eq!(subscription_ids(&got), *ids, "{topic}");
        }
        sub.expect_nothing(QUIET);

        // Subscribing again to the same filter replaces its identifier (v5 3.8.4).
        sub.subscribe_opts(&format!("sid/{tag}/a"), qos1, Some(3));
        publisher.publish(&format!("sid/{tag}/a"), b"again", QoS::AtLeastOnce, false);
        assert_eq!(subscription_ids(&sub.recv_publish()), [2, 3], "{tag}");

        // A retained message sent on subscribe carries that subscription's identifier.
        let retained = format!("sidr/{tag}");
        publisher.publish(&retained, b"r", QoS::AtLeastOnce, true);
        publisher.sync_shards();
        sub.subscribe_opts(&retained, qos1, Some(7));
        let got = sub.recv_publish();
        assert!(got.retain, "{tag}");
        assert_eq!(subscription_ids(&got), [7], "{tag} retained");
    }
}

#[test]
fn acks_from_the_broker_carry_reason_success() {
    let b = broker();
    let addr = b.local_addr();
    for (ps, ss) in SHARD_PAIRS {
        let tag = tag(ps, ss);
        let topic = format!("acks/{tag}");
        let mut sub = Client::new(addr, V5, &id_on(ss, 2, &format!("s{tag}")));
        sub.subscribe(&topic, QoS::ExactlyOnce);
        let mut publisher = Client::new(addr, V5, &id_on(ps, 2, &format!("p{tag}")));

        let mut p = Publish::new(topic.as_str(), QoS::AtLeastOnce, &b"1"[..]);
        p.pkid = 11;
        publisher.send(Packet::Publish(p));
        match publisher.recv() {
            Packet::PubAck(a) => assert_eq!((a.pkid, a.reason), (11, ReasonCode::Success), "{tag}"),
            other => panic!("{tag}: expected PUBACK, got {other:?}"),
        }
        assert_eq!(&sub.recv_publish().payload[..], b"1", "{tag}");

        let mut p = Publish::new(topic.as_str(), QoS::ExactlyOnce, &b"2"[..]);
        p.pkid = 12;
        publisher.send(Packet::Publish(p));
        match publisher.recv() {
            Packet::PubRec(r) => assert_eq!((r.pkid, r.reason), (12, ReasonCode::Success), "{tag}"),
            other => panic!("{tag}: expected PUBREC, got {other:?}"),
        }
        publisher.send(Packet::PubRel(PubRel::new(12)));
        match publisher.recv() {
            Packet::PubComp(c) => {
                assert_eq!((c.pkid, c.reason), (12, ReasonCode::Success), "{tag}")
            }
            other => panic!("{tag}: expected PUBCOMP, got {other:?}"),
        }

        // The broker's PUBREL towards a QoS 2 subscriber carries Success too.
        let got = match sub.recv() {
            Packet::Publish(p) => p,
            other => panic!("{tag}: expected PUBLISH, got {other:?}"),
        };
        assert_eq!(
            (&got.payload[..], got.qos),
            (&b"2"[..], QoS::ExactlyOnce),
            "{tag}"
        );
        sub.send(Packet::PubRec(PubRec::new(got.pkid)));
        match sub.recv() {
            Packet::PubRel(r) => {
                assert_eq!((r.pkid, r.reason), (got.pkid, ReasonCode::Success), "{tag}")
            }
            other => panic!("{tag}: expected PUBREL, got {other:?}"),
        }
        sub.send(Packet::PubComp(PubComp::new(got.pkid)));
        sub.ping();
    }
}

#[test]
fn topic_aliases_from_the_client() {
    let b = broker_with(2, |c| c.limits.topic_alias_maximum = 4);
    let addr = b.local_addr();
    for shard in 0..2 {
        let topic = format!("alias/{shard}");
        let mut sub = Client::new(addr, V5, &id_on(1 - shard, 2, "alias-sub"));
        sub.subscribe(&topic, QoS::AtMostOnce);
        let (mut c, ack) = Client::connect(addr, V5, &id_on(shard, 2, "alias"));
        assert_eq!(ack.properties.topic_alias_maximum(), Some(4));
        let alias = |n| Properties::from_vec(vec![Property::TopicAlias(n)]);
        // Set alias 4 with the topic, then use it with an empty topic.
        c.send(Packet::Publish(publish_with(
            &topic,
            b"set",
            QoS::AtMostOnce,
            alias(4),
        )));
        c.send(Packet::Publish(publish_with(
            "",
            b"use",
            QoS::AtMostOnce,
            alias(4),
        )));
        for want in [&b"set"[..], b"use"] {
            let got = sub.recv_publish();
            assert_eq!(
                (got.topic.as_str(), &got.payload[..]),
                (topic.as_str(), want)
            );
            assert_eq!(got.properties.topic_alias(), None, "aliases are per hop");
        }
        // An alias above the announced maximum closes with 0x94 (v5 3.3.2.3.4).
        c.send(Packet::Publish(publish_with(
            &topic,
            b"x",
            QoS::AtMostOnce,
            alias(5),
        )));
        let seen = c.closed_within(WAIT).expect("connection closed");
        assert!(
            matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::TopicAliasInvalid),
            "shard {shard}: {seen:?}"
        );
        // An alias never set, with an empty topic, is a protocol error.
        let (mut c, _) = Client::connect(addr, V5, &id_on(shard, 2, "alias2"));
        c.send(Packet::Publish(publish_with(
            "",
            b"x",
            QoS::AtMostOnce,
            alias(2),
        )));
        let seen = c.closed_within(WAIT).expect("connection closed");
        assert!(
            matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError),
            "shard {shard}: {seen:?}"
        );
        sub.expect_nothing(QUIET);
    }
}
