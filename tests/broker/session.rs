//! Sessions: persistence, offline queues, expiry, redelivery and client-id takeover.

use std::time::Duration;

use ringmq::protocol::{Packet, ProtocolVersion, QoS, ReasonCode};

use crate::common::*;

#[test]
fn persistent_session_keeps_subscriptions_and_queues_qos1_and_2() {
    let b = broker();
    for v in VERSIONS {
        for (ps, ss) in [(0, 1), (1, 1)] {
            let id = id_on(ss, 2, &format!("persist-{}-{ps}", v as u8));
            // v5: clean start with an expiry; v3: clean session 0 (a new id, so no session).
            let (mut sub, ack) =
                Client::connect_with(b.local_addr(), persistent(v, &id, v.is_v5(), 600));
            assert!(!ack.session_present);
            sub.subscribe("p/+", QoS::ExactlyOnce);
            sub.disconnect();

            let mut publisher =
                Client::new(b.local_addr(), v, &id_on(ps, 2, &format!("pp-{}", v as u8)));
            publisher.publish("p/0", b"dropped", QoS::AtMostOnce, false);
            publisher.publish("p/1", b"one", QoS::AtLeastOnce, false);
            publisher.publish("p/2", b"two", QoS::ExactlyOnce, false);

            let (mut sub, ack) =
                Client::connect_with(b.local_addr(), persistent(v, &id, false, 600));
            if v != ProtocolVersion::V3_1 {
                assert!(ack.session_present, "{v:?}");
            }
            let first = sub.recv_publish();
            let second = sub.recv_publish();
            assert_eq!(
                (&first.payload[..], first.qos),
                (&b"one"[..], QoS::AtLeastOnce)
            );
            assert_eq!(
                (&second.payload[..], second.qos),
                (&b"two"[..], QoS::ExactlyOnce)
            );
            sub.expect_nothing(Duration::from_millis(100));
            // Still subscribed after resuming.
            publisher.publish("p/3", b"live", QoS::AtLeastOnce, false);
            assert_eq!(&sub.recv_publish().payload[..], b"live");
            // A clean connection discards the session.
            sub.disconnect();
            let (sub, ack) = Client::connect_with(b.local_addr(), persistent(v, &id, true, 0));
            assert!(!ack.session_present);
            sub.disconnect();
        }
    }
}

#[test]
fn clean_session_does_not_survive_disconnect() {
    let b = broker();
    let id = id_on(1, 2, "clean");
    let mut sub = Client::new(b.local_addr(), ProtocolVersion::V3_1_1, &id);
    sub.subscribe("c", QoS::AtLeastOnce);
    sub.disconnect();
    let mut publisher = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(0, 2, "cleanp"),
    );
    publisher.publish("c", b"x", QoS::AtLeastOnce, false);
    let (mut sub, ack) = Client::connect_with(
        b.local_addr(),
        persistent(ProtocolVersion::V3_1_1, &id, false, 0),
    );
    assert!(!ack.session_present);
    sub.expect_nothing(Duration::from_millis(200));
}

#[test]
fn unacknowledged_messages_are_redelivered_with_dup() {
    let b = broker();
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let id = id_on(0, 2, &format!("dup-{}", v as u8));
        let (mut sub, _) = Client::connect_with(b.local_addr(), persistent(v, &id, v.is_v5(), 600));
        sub.subscribe("dup", QoS::AtLeastOnce);
        let mut publisher = Client::new(b.local_addr(), v, &id_on(1, 2, "dupp"));
        publisher.publish("dup", b"unacked", QoS::AtLeastOnce, false);
        let Packet::Publish(first) = sub.recv() else {
            panic!("expected PUBLISH")
        };
        assert!(!first.dup);
        // Drop the connection without acknowledging.
        drop(sub);
        let (mut sub, ack) = Client::connect_with(b.local_addr(), persistent(v, &id, false, 600));
        assert!(ack.session_present);
        let again = sub.recv_publish();
        assert!(again.dup, "redelivery carries DUP");
        assert_eq!(again.pkid, first.pkid);
        assert_eq!(&again.payload[..], b"unacked");
        sub.expect_nothing(Duration::from_millis(100));
    }
}

#[test]
fn session_expiry_interval_ends_the_session() {
    let b = broker();
    let id = id_on(1, 2, "expiry");
    let v = ProtocolVersion::V5;
    let (mut sub, _) = Client::connect_with(b.local_addr(), persistent(v, &id, true, 1));
    sub.subscribe("e", QoS::AtLeastOnce);
    sub.disconnect();
    // Within the interval the session is there...
    let (sub, ack) = Client::connect_with(b.local_addr(), persistent(v, &id, false, 1));
    assert!(ack.session_present);
    sub.disconnect();
    // ...after it, it is gone.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, ack) = Client::connect_with(b.local_addr(), persistent(v, &id, false, 1));
    assert!(!ack.session_present);
}

#[test]
fn takeover_closes_the_old_connection_and_keeps_the_session() {
    let b = broker();
    for shard in 0..2 {
        for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            let id = id_on(shard, 2, &format!("take-{}", v as u8));
            let (mut old, _) =
                Client::connect_with(b.local_addr(), persistent(v, &id, v.is_v5(), 600));
            old.subscribe("take", QoS::AtLeastOnce);
            let (mut new, ack) =
                Client::connect_with(b.local_addr(), persistent(v, &id, false, 600));
            assert!(ack.session_present);
            let seen = old.closed_within(WAIT).expect("old connection closed");
            if v.is_v5() {
                assert!(
                    matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::SessionTakenOver),
                    "{seen:?}"
                );
            } else {
                assert!(seen.is_empty(), "{seen:?}");
            }
            // The subscription moved to the new connection.
            let mut publisher = Client::new(b.local_addr(), v, &id_on(1 - shard, 2, "takep"));
            publisher.publish("take", b"to new", QoS::AtLeastOnce, false);
            assert_eq!(&new.recv_publish().payload[..], b"to new");
            new.disconnect();
        }
    }
}

#[test]
fn slow_consumer_queue_is_bounded_and_others_are_served() {
    let b = broker_with(2, |c| {
        c.limits.max_queued_messages = 100;
        c.limits.max_inflight = 10;
    });
    let mut stuck = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(0, 2, "stuck"),
    );
    stuck.subscribe("flood", QoS::AtLeastOnce);
    let mut healthy = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(1, 2, "healthy"),
    );
    healthy.subscribe("flood", QoS::AtLeastOnce);
    let mut publisher = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(0, 2, "flooder"),
    );
    for i in 0u32..1000 {
        publisher.publish("flood", &i.to_be_bytes(), QoS::AtLeastOnce, false);
        assert_eq!(healthy.recv_publish().payload[..], i.to_be_bytes());
    }
    // The stuck client never acknowledged: it has its window of 10 in flight and
    // at most 100 queued; the rest were dropped.
    let mut received = 0;
    while let Some(Packet::Publish(_)) = stuck.try_recv(Duration::from_millis(200)) {
        received += 1;
    }
    assert_eq!(received, 10);
}

#[test]
fn a_slow_subscriber_slows_its_publisher_instead_of_losing_qos1() {
    let b = broker_with(2, |c| c.limits.max_queued_messages = 100);
    for (ps, ss) in [(0, 0), (1, 0), (0, 1)] {
        let topic = format!("slow/{ps}{ss}");
        let mut sub = Client::new(
            b.local_addr(),
            ProtocolVersion::V3_1_1,
            &id_on(ss, 2, "slowsub"),
        );
        sub.subscribe(&topic, QoS::AtLeastOnce);
        let mut publisher = Client::new(
            b.local_addr(),
            ProtocolVersion::V3_1_1,
            &id_on(ps, 2, "fastpub"),
        );
        const N: u32 = 3000;
        // The publisher pipelines everything without waiting for acknowledgements.
        let mut burst = bytes::BytesMut::new();
        for i in 0..N {
            let mut p = ringmq::protocol::Publish::new(
                topic.as_str(),
                QoS::AtLeastOnce,
                i.to_be_bytes().to_vec(),
            );
            p.pkid = (i % 60000 + 1) as u16;
            Packet::Publish(p)
                .encode(ProtocolVersion::V3_1_1, &mut burst)
                .unwrap();
        }
        let writer = std::thread::spawn({
            let mut stream = publisher.stream.try_clone().unwrap();
            move || std::io::Write::write_all(&mut stream, &burst).unwrap()
        });
        let mut next = 0u32;
        while next < N {
            let Some(Packet::Publish(p)) = sub.try_recv(WAIT) else {
                panic!("{topic}: stalled after {next} messages");
            };
            sub.ack(&p);
            assert_eq!(
                u32::from_be_bytes(p.payload[..].try_into().unwrap()),
                next,
                "{topic}"
            );
            next += 1;
            if next % 500 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        writer.join().unwrap();
        for _ in 0..N {
            assert!(matches!(publisher.recv(), Packet::PubAck(_)));
        }
    }
}
