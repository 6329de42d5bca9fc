//! Publish and subscribe: QoS 0/1/2 on the same shard and across shards.

use std::time::Duration;

use ringmq::protocol::{Packet, ProtocolVersion, PubRel, Publish, QoS};

use crate::common::*;

/// Every combination of publisher and subscriber shard.
const PLACEMENTS: [(usize, usize); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

#[test]
fn qos_levels_same_and_cross_shard() {
    let b = broker();
    for (ps, ss) in PLACEMENTS {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let tag = format!("{ps}{ss}{}", qos as u8);
            let mut sub = Client::new(
                b.local_addr(),
                ProtocolVersion::V3_1_1,
                &id_on(ss, 2, &format!("sub{tag}")),
            );
            sub.subscribe(&format!("q/{tag}"), qos);
            let mut publisher = Client::new(
                b.local_addr(),
                ProtocolVersion::V3_1_1,
                &id_on(ps, 2, &format!("pub{tag}")),
            );
            publisher.publish(&format!("q/{tag}"), tag.as_bytes(), qos, false);
            let got = sub.recv_publish();
            assert_eq!(got.qos, qos, "{tag}");
            assert_eq!(&got.payload[..], tag.as_bytes());
            assert!(!got.retain);
            sub.expect_nothing(Duration::from_millis(50));
        }
    }
}

#[test]
fn delivery_is_downgraded_to_the_granted_qos() {
    let b = broker();
    let mut sub = Client::new(b.local_addr(), ProtocolVersion::V5, &id_on(1, 2, "down"));
    sub.subscribe("d", QoS::AtLeastOnce);
    let mut publisher = Client::new(b.local_addr(), ProtocolVersion::V5, &id_on(0, 2, "downp"));
    publisher.publish("d", b"2", QoS::ExactlyOnce, false);
    assert_eq!(sub.recv_publish().qos, QoS::AtLeastOnce);
    publisher.publish("d", b"0", QoS::AtMostOnce, false);
    assert_eq!(sub.recv_publish().qos, QoS::AtMostOnce);
}

#[test]
fn overlapping_subscriptions_deliver_once_at_the_highest_qos() {
    let b = broker();
    let mut sub = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(0, 2, "overlap"),
    );
    sub.subscribe("o/#", QoS::AtMostOnce);
    sub.subscribe("o/+", QoS::ExactlyOnce);
    let mut publisher = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(1, 2, "overlapp"),
    );
    publisher.publish("o/x", b"x", QoS::AtLeastOnce, false);
    assert_eq!(sub.recv_publish().qos, QoS::AtLeastOnce);
    sub.expect_nothing(Duration::from_millis(100));
}

#[test]
fn order_per_publisher_is_preserved_across_shards() {
    let b = broker();
    let mut sub = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(1, 2, "order"),
    );
    sub.subscribe("ord", QoS::AtLeastOnce);
    let mut publisher = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(0, 2, "orderp"),
    );
    for i in 0u32..500 {
        let mut p = Publish::new("ord", QoS::AtLeastOnce, i.to_be_bytes().to_vec());
        p.pkid = publisher.pkid();
        publisher.send(Packet::Publish(p));
    }
    for i in 0u32..500 {
        let p = sub.recv_publish();
        assert_eq!(u32::from_be_bytes(p.payload[..].try_into().unwrap()), i);
    }
    for _ in 0..500 {
        assert!(matches!(publisher.recv(), Packet::PubAck(_)));
    }
}

#[test]
fn wildcards_and_dollar_topics() {
    let b = broker();
    let mut all = Client::new(b.local_addr(), ProtocolVersion::V3_1_1, &id_on(0, 2, "all"));
    all.subscribe("#", QoS::AtMostOnce);
    let mut plus = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(1, 2, "plus"),
    );
    plus.subscribe("+/status", QoS::AtMostOnce);
    let mut sys = Client::new(b.local_addr(), ProtocolVersion::V3_1_1, &id_on(1, 2, "sys"));
    sys.subscribe("$SYS/#", QoS::AtMostOnce);
    let mut publisher = Client::new(b.local_addr(), ProtocolVersion::V3_1_1, &id_on(0, 2, "wp"));
    publisher.publish("$SYS/status", b"s", QoS::AtMostOnce, false);
    publisher.publish("dev/status", b"d", QoS::AtMostOnce, false);
    assert_eq!(sys.recv_publish().topic, "$SYS/status");
    assert_eq!(all.recv_publish().topic, "dev/status");
    assert_eq!(plus.recv_publish().topic, "dev/status");
    all.expect_nothing(Duration::from_millis(100));
    plus.expect_nothing(Duration::from_millis(10));
    sys.expect_nothing(Duration::from_millis(10));
}

#[test]
fn unsubscribe_stops_delivery() {
    let b = broker();
    let mut sub = Client::new(b.local_addr(), ProtocolVersion::V5, &id_on(1, 2, "unsub"));
    sub.subscribe("u/+", QoS::AtMostOnce);
    let mut publisher = Client::new(b.local_addr(), ProtocolVersion::V5, &id_on(0, 2, "unsubp"));
    publisher.publish("u/1", b"a", QoS::AtLeastOnce, false);
    sub.recv_publish();
    match sub.unsubscribe("u/+") {
        Packet::UnsubAck(a) => assert_eq!(a.reasons, [ringmq::protocol::ReasonCode::Success]),
        other => panic!("{other:?}"),
    }
    match sub.unsubscribe("u/+") {
        Packet::UnsubAck(a) => assert_eq!(
            a.reasons,
            [ringmq::protocol::ReasonCode::NoSubscriptionExisted]
        ),
        other => panic!("{other:?}"),
    }
    publisher.publish("u/1", b"b", QoS::AtLeastOnce, false);
    sub.expect_nothing(Duration::from_millis(200));
}

#[test]
fn qos2_resent_before_pubrel_is_delivered_once() {
    let b = broker();
    let mut sub = Client::new(b.local_addr(), ProtocolVersion::V3_1_1, &id_on(0, 2, "eo"));
    sub.subscribe("eo", QoS::ExactlyOnce);
    let mut publisher = Client::new(b.local_addr(), ProtocolVersion::V3_1_1, &id_on(1, 2, "eop"));
    let mut p = Publish::new("eo", QoS::ExactlyOnce, &b"once"[..]);
    p.pkid = 42;
    publisher.send(Packet::Publish(p.clone()));
    assert!(matches!(publisher.recv(), Packet::PubRec(r) if r.pkid == 42));
    p.dup = true;
    publisher.send(Packet::Publish(p));
    assert!(matches!(publisher.recv(), Packet::PubRec(r) if r.pkid == 42));
    publisher.send(Packet::PubRel(PubRel::new(42)));
    assert!(matches!(publisher.recv(), Packet::PubComp(c) if c.pkid == 42));
    assert_eq!(&sub.recv_publish().payload[..], b"once");
    sub.expect_nothing(Duration::from_millis(200));
}
