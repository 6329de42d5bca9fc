//! Shared subscriptions: one member per message, spread evenly across members on
//! both shards, and nothing lost when a member goes away.

use std::collections::HashSet;
use std::time::Duration;

use ringmq::protocol::{
    Packet, ProtocolVersion, Publish, QoS, ReasonCode, SubscribeFilter, SubscriptionOptions,
};

use crate::common::*;

fn seq(p: &Publish) -> u32 {
    u32::from_be_bytes(p.payload[..4].try_into().unwrap())
}

#[test]
fn each_message_goes_to_exactly_one_member_evenly() {
    let b = broker();
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut members: Vec<Client> = (0..4)
            .map(|i| {
                let mut c = Client::new(
                    b.local_addr(),
                    v,
                    &id_on(i % 2, 2, &format!("member{}-{i}", v as u8)),
                );
                c.subscribe("$share/workers/jobs/+", QoS::AtLeastOnce);
                c
            })
            .collect();
        let mut publisher = Client::new(b.local_addr(), v, &id_on(0, 2, "jobs-pub"));
        const N: u32 = 2000;
        for i in 0..N {
            publisher.publish("jobs/a", &i.to_be_bytes(), QoS::AtLeastOnce, false);
        }
        let mut seen = HashSet::new();
        for m in &mut members {
            let mut count = 0;
            while let Some(Packet::Publish(p)) = m.try_recv(Duration::from_millis(300)) {
                m.ack(&p);
                assert!(seen.insert(seq(&p)), "message {} delivered twice", seq(&p));
                count += 1;
            }
            // Weighted round robin over shards, then over members: exactly even.
            assert_eq!(count, N / 4, "{v:?}");
        }
        assert_eq!(seen.len(), N as usize);
    }
}

#[test]
fn unacknowledged_messages_of_a_departed_member_go_to_another() {
    let b = broker();
    let mut stays = Client::new(b.local_addr(), ProtocolVersion::V5, &id_on(1, 2, "stays"));
    stays.subscribe("$share/g/work", QoS::AtLeastOnce);
    let mut leaves = Client::new(b.local_addr(), ProtocolVersion::V5, &id_on(0, 2, "leaves"));
    leaves.subscribe("$share/g/work", QoS::AtLeastOnce);
    let mut publisher = Client::new(
        b.local_addr(),
        ProtocolVersion::V5,
        &id_on(0, 2, "work-pub"),
    );
    const N: u32 = 40;
    for i in 0..N {
        publisher.publish("work", &i.to_be_bytes(), QoS::AtLeastOnce, false);
    }
    // `leaves` receives its share but never acknowledges, then its socket drops.
    let mut unacked = 0;
    while let Some(Packet::Publish(_)) = leaves.try_recv(Duration::from_millis(300)) {
        unacked += 1;
    }
    assert!(unacked > 0);
    drop(leaves);
    let mut got = HashSet::new();
    while let Some(Packet::Publish(p)) = stays.try_recv(Duration::from_millis(500)) {
        stays.ack(&p);
        got.insert(seq(&p));
    }
    assert_eq!(
        got.len(),
        N as usize,
        "every message reached the remaining member"
    );
}

#[test]
fn retained_messages_are_not_sent_to_shared_subscriptions() {
    let b = broker();
    let mut publisher = Client::new(b.local_addr(), ProtocolVersion::V5, &id_on(0, 2, "ret-pub"));
    publisher.publish("kept/x", b"r", QoS::AtLeastOnce, true);
    let mut member = Client::new(
        b.local_addr(),
        ProtocolVersion::V5,
        &id_on(0, 2, "ret-member"),
    );
    member.subscribe("$share/g/kept/#", QoS::AtLeastOnce);
    member.expect_nothing(Duration::from_millis(200));
    publisher.publish("kept/x", b"live", QoS::AtLeastOnce, false);
    assert_eq!(&member.recv_publish().payload[..], b"live");
}

#[test]
fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    let b = broker();
    let mut c = Client::new(b.local_addr(), ProtocolVersion::V5, "nolocal");
    let pkid = c.pkid();
    let mut f = SubscribeFilter::new("$share/g/t", QoS::AtMostOnce);
    f.options = SubscriptionOptions {
        no_local: true,
        ..f.options
    };
    c.send(Packet::Subscribe(ringmq::protocol::Subscribe::new(
        pkid,
        vec![f],
    )));
    let seen = c.closed_within(WAIT).expect("closed");
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError),
        "{seen:?}"
    );
}

#[test]
fn shared_and_ordinary_subscriptions_both_receive() {
    let b = broker();
    let mut ordinary = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(1, 2, "ordinary"),
    );
    ordinary.subscribe("mix/+", QoS::AtMostOnce);
    let mut member = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(1, 2, "mixmember"),
    );
    member.subscribe("$share/g/mix/+", QoS::AtMostOnce);
    let mut publisher = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(0, 2, "mix-pub"),
    );
    publisher.publish("mix/1", b"m", QoS::AtMostOnce, false);
    assert_eq!(&ordinary.recv_publish().payload[..], b"m");
    assert_eq!(&member.recv_publish().payload[..], b"m");
    // After the last member leaves, the group is gone everywhere.
    match member.unsubscribe("$share/g/mix/+") {
        Packet::UnsubAck(a) => assert_eq!(a.pkid, 2),
        other => panic!("{other:?}"),
    }
    publisher.publish("mix/2", b"n", QoS::AtMostOnce, false);
    assert_eq!(&ordinary.recv_publish().payload[..], b"n");
    member.expect_nothing(Duration::from_millis(200));
}
