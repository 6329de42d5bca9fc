//! Shared subscriptions: one member per message, spread evenly across members on
//! both shards, and nothing lost when a member goes away.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use ringmq::protocol::{
    Packet, ProtocolVersion, PubAck, Publish, QoS, ReasonCode, SubscribeFilter, SubscriptionOptions,
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

/// Reads PUBLISH packets on `stream` and acknowledges each read batch with one
/// write, until `received` (counted across all members) reaches `total`, then reads
/// on briefly to catch duplicates; or until nothing came for two seconds. Returns
/// the sequence numbers this member got.
fn drain_member(mut stream: TcpStream, received: &AtomicUsize, total: usize) -> Vec<u32> {
    let mut got = Vec::new();
    let mut buf = BytesMut::new();
    let mut acks = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut last_read = Instant::now();
    let mut linger_until = None;
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    loop {
        let now = Instant::now();
        let idle = now - last_read > Duration::from_secs(2);
        if idle || linger_until.is_some_and(|t| now > t) {
            return got;
        }
        if linger_until.is_none() && received.load(Ordering::Relaxed) >= total {
            linger_until = Some(now + Duration::from_millis(300));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => continue,
        }
        last_read = now;
        let before = got.len();
        while let Some(p) = Packet::decode(&mut buf, ProtocolVersion::V5, u32::MAX).unwrap() {
            let Packet::Publish(p) = p else {
                panic!("expected PUBLISH, got {p:?}");
            };
            got.push(seq(&p));
            Packet::PubAck(PubAck::new(p.pkid))
                .encode(ProtocolVersion::V5, &mut acks)
                .unwrap();
        }
        received.fetch_add(got.len() - before, Ordering::Relaxed);
        stream.write_all(&acks).unwrap();
        acks.clear();
    }
}

/// Publishes `total` QoS 1 messages (payload: sequence number) pipelined, with at
/// most `window` unacknowledged; returns the number of PUBACKs received.
fn publish_pipelined(publisher: Client, topic: &str, total: u32, window: usize) -> usize {
    let mut reader = publisher.stream.try_clone().unwrap();
    let mut writer = publisher.stream;
    let acked = Arc::new(AtomicUsize::new(0));
    let counter = acked.clone();
    let acks = std::thread::spawn(move || {
        let mut buf = BytesMut::new();
        let mut chunk = vec![0u8; 64 * 1024];
        reader
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        while counter.load(Ordering::Relaxed) < total as usize {
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            while let Some(p) = Packet::decode(&mut buf, ProtocolVersion::V5, u32::MAX).unwrap() {
                assert!(matches!(p, Packet::PubAck(_)), "{p:?}");
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let mut out = BytesMut::new();
    let mut sent = 0u32;
    while sent < total {
        let deadline = Instant::now() + Duration::from_secs(30);
        while sent as usize - acked.load(Ordering::Relaxed) >= window {
            assert!(Instant::now() < deadline, "publisher stalled at {sent}");
            std::thread::sleep(Duration::from_micros(200));
        }
        let batch = (window / 4).max(1).min((total - sent) as usize) as u32;
        for _ in 0..batch {
            let mut p = Publish::new(topic, QoS::AtLeastOnce, sent.to_be_bytes().to_vec());
            // Packet ids cycle through 1..=65535; the window keeps them unique.
            p.pkid = (sent % 65535 + 1) as u16;
            Packet::Publish(p)
                .encode(ProtocolVersion::V5, &mut out)
                .unwrap();
            sent += 1;
        }
        writer.write_all(&out).unwrap();
        out.clear();
    }
    acks.join().unwrap();
    acked.load(Ordering::Relaxed)
}

/// Four members of one group, two on each shard, share 100,000 QoS 1 messages
/// published as fast as the broker takes them: each gets a quarter (within 5%),
/// and every message is delivered exactly once.
#[test]
fn shares_stay_even_under_load_across_shards() {
    const TOTAL: u32 = 100_000;
    // A Receive Maximum far above the subscribers' inflight window lets one
    // publisher outrun the group, so delivery leans on the broker's backpressure.
    let b = broker_with(2, |c| c.limits.receive_maximum = 4096);
    let filter = "$share/fair/load/+";
    let mut streams = Vec::new();
    for i in 0..4 {
        let mut c = Client::new(
            b.local_addr(),
            ProtocolVersion::V5,
            &id_on(i % 2, 2, &format!("fair-member{i}")),
        );
        c.subscribe(filter, QoS::AtLeastOnce);
        streams.push(c.stream);
    }
    let (publisher, ack) = Client::connect(
        b.local_addr(),
        ProtocolVersion::V5,
        &id_on(0, 2, "fair-pub"),
    );
    assert_eq!(ack.reason, ReasonCode::Success);
    // The broker's Receive Maximum bounds the QoS 1 publishes in flight (3.2.2.3.3).
    let window = usize::from(ack.properties.receive_maximum().unwrap_or(u16::MAX));
    let received = Arc::new(AtomicUsize::new(0));
    let members: Vec<_> = streams
        .into_iter()
        .map(|s| {
            let received = received.clone();
            std::thread::spawn(move || drain_member(s, &received, TOTAL as usize))
        })
        .collect();
    let started = Instant::now();
    let acked = publish_pipelined(publisher, "load/x", TOTAL, window);
    let shares: Vec<Vec<u32>> = members.into_iter().map(|m| m.join().unwrap()).collect();
    let elapsed = started.elapsed();
    assert_eq!(acked, TOTAL as usize, "every publish acknowledged");

    let counts: Vec<usize> = shares.iter().map(Vec::len).collect();
    println!("shared fairness: {TOTAL} messages in {elapsed:?}, shares {counts:?}");
    let mut times_seen = vec![0u8; TOTAL as usize];
    for s in shares.iter().flatten() {
        times_seen[*s as usize] += 1;
    }
    let lost = times_seen.iter().filter(|&&n| n == 0).count();
    let duplicated = times_seen.iter().filter(|&&n| n > 1).count();
    assert_eq!((lost, duplicated), (0, 0), "lost and duplicated messages");
    let even = TOTAL as usize / 4;
    for (i, &n) in counts.iter().enumerate() {
        assert!(
            n.abs_diff(even) <= even / 20,
            "member {i} got {n}, outside {even} ± 5% (shares {counts:?})"
        );
    }
}
