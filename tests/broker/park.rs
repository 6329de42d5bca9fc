//! Parking idle connections: a parked connection must behave exactly like one its
//! task still serves. Each test waits until the broker reports the connections
//! parked, then checks what a client would see.

use std::time::{Duration, Instant};

use ringmq::protocol::{Packet, ProtocolVersion, PubAck, Publish, QoS, ReasonCode};
use ringmq::Broker;

use crate::common::*;

/// Park delay used here: two shard ticks.
const PARK_AFTER: Duration = Duration::from_millis(200);

fn parking_broker() -> Broker {
    broker_with(2, |c| c.park_after = PARK_AFTER)
}

/// Connections parked now, over all shards.
fn parked(b: &Broker) -> u64 {
    assert!(
        b.metrics().refresh_gauges(WAIT),
        "shards answer a gauge request"
    );
    b.metrics().shards().iter().map(|s| s.parked.get()).sum()
}

/// The reason codes of the DISCONNECTs among `seen`.
fn disconnects(seen: &[Packet]) -> Vec<ReasonCode> {
    seen.iter()
        .filter_map(|p| match p {
            Packet::Disconnect(d) => Some(d.reason),
            _ => None,
        })
        .collect()
}

/// Waits until exactly `n` connections are parked.
fn wait_parked(b: &Broker, n: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = parked(b);
        if now == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{now} connections parked, expected {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn parked_subscribers_get_messages_from_either_shard() {
    let b = parking_broker();
    let addr = b.local_addr();
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut subs: Vec<Client> = (0..2)
            .map(|shard| {
                let mut c = Client::new(addr, v, &id_on(shard, 2, &format!("psub{}", v.level())));
                c.subscribe(&format!("park/{}/#", v.level()), QoS::AtLeastOnce);
                c
            })
            .collect();
        wait_parked(&b, 2);
        let mut publisher = Client::new(addr, v, &id_on(0, 2, &format!("ppub{}", v.level())));
        for round in 0..2 {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
                let topic = format!("park/{}/r{round}/q{}", v.level(), qos as u8);
                publisher.publish(&topic, b"wake", qos, false);
                for (shard, s) in subs.iter_mut().enumerate() {
                    let p = s.recv_publish();
                    assert_eq!(
                        &*p.topic,
                        topic.as_str(),
                        "subscriber on shard {shard}, round {round}"
                    );
                    assert_eq!(p.qos, qos);
                }
            }
            // Next round: the publisher is parked too, and its PUBLISH resumes it.
            wait_parked(&b, 3);
        }
        for s in subs {
            s.disconnect();
        }
        publisher.disconnect();
        wait_parked(&b, 0);
    }
}

#[test]
fn a_parked_client_pings_subscribes_and_unsubscribes() {
    let b = parking_broker();
    let addr = b.local_addr();
    let mut c = Client::new(addr, ProtocolVersion::V5, "park-ping");
    wait_parked(&b, 1);
    c.ping();
    wait_parked(&b, 1);
    let ack = c.subscribe("park/ping", QoS::AtLeastOnce);
    assert_eq!(ack.reasons, [ReasonCode::GrantedQoS1]);
    wait_parked(&b, 1);
    assert!(matches!(c.unsubscribe("park/ping"), Packet::UnsubAck(_)));
    wait_parked(&b, 1);
    // Still counted as a connection all along.
    let total: u64 = b
        .metrics()
        .shards()
        .iter()
        .map(|s| s.connections.get())
        .sum();
    assert_eq!(total, 1);
}

#[test]
fn keep_alive_ends_a_parked_connection_and_publishes_its_will() {
    let b = parking_broker();
    let addr = b.local_addr();
    for shard in 0..2 {
        let topic = format!("park/will/ka{shard}");
        let mut watcher = Client::new(addr, ProtocolVersion::V5, &format!("park-kaw{shard}"));
        watcher.subscribe(&topic, QoS::AtMostOnce);
        let id = id_on(shard, 2, "park-ka");
        let mut connect = connect_with_will(
            ProtocolVersion::V5,
            &id,
            &topic,
            b"ka",
            QoS::AtMostOnce,
            false,
        );
        connect.keep_alive = 1;
        let (mut c, ack) = Client::connect_with(addr, connect);
        assert_eq!(ack.reason, ReasonCode::Success);
        wait_parked(&b, 2);
        // Silent past 1.5 times the keep alive: the broker closes it, as it would
        // a connection still served by its task.
        let seen = c.closed_within(WAIT).expect("closed for keep alive");
        assert_eq!(disconnects(&seen), [ReasonCode::KeepAliveTimeout]);
        let will = watcher.recv_publish();
        assert_eq!(&*will.topic, topic.as_str());
        assert_eq!(&will.payload[..], b"ka");
        watcher.disconnect();
        wait_parked(&b, 0);
    }
}

#[test]
fn a_parked_connection_lost_publishes_its_will() {
    let b = parking_broker();
    let addr = b.local_addr();
    for v in VERSIONS {
        let topic = format!("park/will/lost{}", v.level());
        let mut watcher = Client::new(addr, v, &format!("park-lw{}", v.level()));
        watcher.subscribe(&topic, QoS::AtLeastOnce);
        let id = format!("park-lost{}", v.level());
        let connect = connect_with_will(v, &id, &topic, b"lost", QoS::AtLeastOnce, false);
        let (c, ack) = Client::connect_with(addr, connect);
        assert_eq!(ack.reason, ReasonCode::Success);
        wait_parked(&b, 2);
        drop(c);
        let will = watcher.recv_publish();
        assert_eq!(&*will.topic, topic.as_str());
        assert_eq!(&will.payload[..], b"lost");
        watcher.disconnect();
        wait_parked(&b, 0);
    }
}

#[test]
fn takeover_of_a_parked_connection() {
    let b = parking_broker();
    let addr = b.local_addr();
    for shard in 0..2 {
        let id = id_on(shard, 2, "park-take");
        let (mut old, ack) =
            Client::connect_with(addr, persistent(ProtocolVersion::V5, &id, true, 60));
        assert_eq!(ack.reason, ReasonCode::Success);
        old.subscribe("park/take", QoS::AtLeastOnce);
        wait_parked(&b, 1);
        let (mut new, ack) =
            Client::connect_with(addr, persistent(ProtocolVersion::V5, &id, false, 60));
        assert_eq!(ack.reason, ReasonCode::Success);
        assert!(
            ack.session_present,
            "the parked connection's session continues"
        );
        let seen = old
            .closed_within(WAIT)
            .expect("the old connection is closed");
        assert_eq!(disconnects(&seen), [ReasonCode::SessionTakenOver]);
        // The subscription came with the session.
        let mut publisher =
            Client::new(addr, ProtocolVersion::V5, &format!("park-take-pub{shard}"));
        publisher.publish("park/take", b"after", QoS::AtLeastOnce, false);
        assert_eq!(&new.recv_publish().payload[..], b"after");
        new.disconnect();
        publisher.disconnect();
        wait_parked(&b, 0);
    }
}

#[test]
fn unacknowledged_messages_wait_through_parking() {
    let b = broker_with(2, |c| {
        c.park_after = PARK_AFTER;
        c.limits.max_inflight = 1;
    });
    let addr = b.local_addr();
    let mut sub = Client::new(addr, ProtocolVersion::V3_1_1, &id_on(1, 2, "park-inflight"));
    sub.subscribe("park/inflight", QoS::AtLeastOnce);
    let mut publisher = Client::new(
        addr,
        ProtocolVersion::V3_1_1,
        &id_on(0, 2, "park-inflight-pub"),
    );
    publisher.publish("park/inflight", b"1", QoS::AtLeastOnce, false);
    publisher.publish("park/inflight", b"2", QoS::AtLeastOnce, false);
    let first = match sub.recv() {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    };
    assert_eq!(&first.payload[..], b"1");
    // The window is full: the second waits, and the subscriber parks meanwhile.
    wait_parked(&b, 2);
    sub.expect_nothing(Duration::from_millis(100));
    sub.send(Packet::PubAck(PubAck::new(first.pkid)));
    let second: Publish = sub.recv_publish();
    assert_eq!(&second.payload[..], b"2");
}

#[test]
fn shutdown_closes_parked_connections() {
    let b = parking_broker();
    let addr = b.local_addr();
    let mut clients: Vec<Client> = (0..2)
        .map(|shard| Client::new(addr, ProtocolVersion::V5, &id_on(shard, 2, "park-stop")))
        .collect();
    wait_parked(&b, 2);
    let stopping = std::thread::spawn(move || b.shutdown());
    for c in &mut clients {
        let seen = c.closed_within(WAIT).expect("closed at shutdown");
        assert_eq!(disconnects(&seen), [ReasonCode::ServerShuttingDown]);
    }
    stopping.join().unwrap();
}

#[test]
fn parking_can_be_turned_off() {
    let b = broker_with(2, |c| c.park_after = Duration::ZERO);
    let addr = b.local_addr();
    let mut c = Client::new(addr, ProtocolVersion::V5, "park-off");
    std::thread::sleep(PARK_AFTER * 3);
    assert_eq!(parked(&b), 0);
    c.ping();
}
