//! Operating the broker: the Prometheus endpoint against a live broker, `$SYS`
//! topics, and graceful shutdown.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringmq::protocol::{Connect, Packet, Property, ProtocolVersion, QoS, ReasonCode};

use crate::common::*;

/// One HTTP GET; returns the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nAccept: */*\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header and body");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of one exact sample line (`name{labels}`) in a Prometheus text body.
fn sample(body: &str, series: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing from:\n{body}"))
        .parse()
        .unwrap()
}

/// Waits until `series` reads `expected` (the broker acts asynchronously).
fn eventually(maddr: SocketAddr, series: &str, expected: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, body) = get(maddr, "/metrics");
        let value = body.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<u64>()
                .ok()
        });
        if value == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {value:?}, expected {expected}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metrics_broker() -> (ringmq::Broker, SocketAddr) {
    let b = broker_with(2, |c| {
        c.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
        c.limits.max_packet_size = 4096;
    });
    let addr = b.metrics_addr().expect("metrics endpoint");
    (b, addr)
}

#[test]
fn metrics_endpoint_counts_what_clients_do() {
    let (b, maddr) = metrics_broker();
    let (status, body) = get(maddr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(sample(&body, "ringmq_connections"), 0);
    assert_eq!(
        sample(&body, "ringmq_messages_received_total{qos=\"1\"}"),
        0
    );
    assert!(body.contains("# TYPE ringmq_messages_sent_total counter"));

    // A subscriber on one shard, a publisher on the other.
    let mut sub = Client::new(b.local_addr(), ProtocolVersion::V5, &id_on(0, 2, "m-sub"));
    sub.subscribe("m/#", QoS::AtLeastOnce);
    let mut publ = Client::new(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(1, 2, "m-pub"),
    );
    for i in 0..5u8 {
        publ.publish("m/t", &[i; 10], QoS::AtLeastOnce, false);
    }
    publ.publish("m/t", b"zero", QoS::AtMostOnce, false);
    publ.publish("nobody/listens", b"x", QoS::AtMostOnce, false);
    for _ in 0..6 {
        sub.recv_publish();
    }
    // A refused CONNECT: no enhanced authentication method is configured.
    let mut bad = Connect::new(ProtocolVersion::V5, "m-bad");
    bad.properties
        .push(Property::AuthenticationMethod("SCRAM-SHA-1".into()));
    let (_bad, ack) = Client::connect_with(b.local_addr(), bad);
    assert_eq!(ack.reason, ReasonCode::BadAuthenticationMethod);

    let (_, body) = get(maddr, "/metrics");
    assert_eq!(sample(&body, "ringmq_connections"), 2);
    assert_eq!(sample(&body, "ringmq_connects_total"), 2);
    assert_eq!(
        sample(&body, "ringmq_messages_received_total{qos=\"1\"}"),
        5
    );
    assert_eq!(
        sample(&body, "ringmq_messages_received_total{qos=\"0\"}"),
        2
    );
    assert_eq!(
        sample(&body, "ringmq_payload_bytes_received_total{qos=\"1\"}"),
        50
    );
    assert_eq!(sample(&body, "ringmq_messages_sent_total{qos=\"1\"}"), 5);
    assert_eq!(sample(&body, "ringmq_messages_sent_total{qos=\"0\"}"), 1);
    assert_eq!(sample(&body, "ringmq_messages_unmatched_total"), 1);
    // The publisher's shard is not the subscriber's: every message crossed.
    assert_eq!(sample(&body, "ringmq_cross_shard_messages_sent_total"), 6);
    assert_eq!(
        sample(&body, "ringmq_cross_shard_messages_received_total"),
        6
    );
    assert_eq!(
        sample(
            &body,
            "ringmq_connects_refused_total{reason=\"bad_authentication_method\"}"
        ),
        1
    );
    assert_eq!(sample(&body, "ringmq_auth_failures_total"), 1);
    assert!(sample(&body, "ringmq_bytes_received_total") > 50);
    assert!(sample(&body, "ringmq_subscriptions{shard=\"0\"}") >= 1);
    assert_eq!(
        sample(&body, "ringmq_sessions{shard=\"0\"}")
            + sample(&body, "ringmq_sessions{shard=\"1\"}"),
        2
    );

    // Disconnects by reason, and a message too large for the subscriber dropped.
    publ.disconnect();
    let mut small = Connect::new(ProtocolVersion::V5, id_on(1, 2, "m-small").as_str());
    small.properties.push(Property::MaximumPacketSize(64));
    let (mut small, _) = Client::connect_with(b.local_addr(), small);
    small.subscribe("big/#", QoS::AtMostOnce);
    sub.publish("big/t", &[7; 200], QoS::AtMostOnce, false);
    eventually(
        maddr,
        "ringmq_disconnects_total{reason=\"normal_disconnection\"}",
        1,
    );
    eventually(
        maddr,
        "ringmq_messages_dropped_total{cause=\"too_large\"}",
        1,
    );
    small.expect_nothing(Duration::from_millis(100));

    // A malformed packet (a topic longer than the packet) is counted as the
    // broker's disconnect with its reason.
    sub.send_raw(&[0x30, 0x02, 0x00, 0x05]);
    assert!(sub.closed_within(WAIT).is_some());
    eventually(
        maddr,
        "ringmq_server_disconnects_total{reason=\"malformed_packet\"}",
        1,
    );

    let (status, _) = get(maddr, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
fn sys_topics_report_the_broker() {
    let b = broker_with(2, |c| c.sys_interval = Duration::from_millis(200));
    let mut watcher = Client::new(b.local_addr(), ProtocolVersion::V3_1_1, &id_on(1, 2, "sys"));
    let mut publ = Client::new(b.local_addr(), ProtocolVersion::V5, &id_on(0, 2, "sys-pub"));
    for _ in 0..3 {
        publ.publish("sys/t", b"abc", QoS::AtLeastOnce, false);
    }
    // `#` does not match `$SYS` topics; an explicit `$SYS/...` filter does.
    watcher.subscribe("#", QoS::AtMostOnce);
    watcher.subscribe("$SYS/broker/#", QoS::AtMostOnce);
    let deadline = Instant::now() + WAIT;
    let mut seen = std::collections::HashMap::new();
    while Instant::now() < deadline
        && !(seen.get("$SYS/broker/publish/messages/received") == Some(&"3".to_string())
            && seen.get("$SYS/broker/clients/connected") == Some(&"2".to_string())
            && seen.contains_key("$SYS/broker/load/connections/15min"))
    {
        if let Some(Packet::Publish(p)) = watcher.try_recv(Duration::from_millis(500)) {
            assert!(p.topic.starts_with("$SYS/broker/"), "{}", p.topic);
            seen.insert(
                p.topic.to_string(),
                String::from_utf8_lossy(&p.payload).to_string(),
            );
        }
    }
    assert_eq!(
        seen.get("$SYS/broker/publish/messages/received")
            .map(String::as_str),
        Some("3"),
        "{seen:?}"
    );
    assert_eq!(
        seen.get("$SYS/broker/clients/connected")
            .map(String::as_str),
        Some("2")
    );
    assert!(seen["$SYS/broker/version"].starts_with("ringmq version "));
    assert!(seen["$SYS/broker/uptime"].ends_with(" seconds"));
    assert!(seen.contains_key("$SYS/broker/load/messages/received/1min"));
    assert!(seen.contains_key("$SYS/broker/retained messages/count"));
    assert!(seen.contains_key("$SYS/broker/subscriptions/count"));
}

#[test]
fn shutdown_tells_v5_clients_and_flushes_what_is_queued() {
    let b = broker_with(2, |c| c.shutdown_timeout = Duration::from_secs(3));
    let addr = b.local_addr();
    let mut v5 = Client::new(addr, ProtocolVersion::V5, &id_on(0, 2, "sd-v5"));
    v5.subscribe("sd/#", QoS::AtLeastOnce);
    let mut v3 = Client::new(addr, ProtocolVersion::V3_1_1, &id_on(1, 2, "sd-v3"));
    v3.subscribe("will/#", QoS::AtMostOnce);
    // A client with a will: the broker going away is not this client failing.
    let (_willing, _) = Client::connect_with(
        addr,
        connect_with_will(
            ProtocolVersion::V5,
            &id_on(0, 2, "sd-will"),
            "will/x",
            b"w",
            QoS::AtMostOnce,
            false,
        ),
    );
    let mut publ = Client::new(addr, ProtocolVersion::V3_1_1, &id_on(1, 2, "sd-pub"));
    for i in 0..200u16 {
        publ.publish("sd/t", &i.to_be_bytes(), QoS::AtLeastOnce, false);
    }
    // The subscriber has read nothing yet: most of the 200 are queued or in flight.
    let started = Instant::now();
    let stopper = std::thread::spawn(move || b.shutdown());
    let mut got = Vec::new();
    let reason = loop {
        match v5.try_recv(WAIT) {
            Some(Packet::Publish(p)) => {
                got.push(u16::from_be_bytes([p.payload[0], p.payload[1]]));
                v5.ack(&p);
            }
            Some(Packet::Disconnect(d)) => break d.reason,
            other => panic!("expected PUBLISH or DISCONNECT, got {other:?}"),
        }
    };
    assert_eq!(reason, ReasonCode::ServerShuttingDown);
    // Everything the inflight window allowed came before the DISCONNECT, in order.
    assert!(!got.is_empty());
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    assert!(v5.closed_within(WAIT).is_some());
    // 3.1.1 has no server DISCONNECT: the connection just closes, without a will.
    let before_close = v3.closed_within(WAIT).expect("v3 connection closed");
    assert!(before_close.is_empty(), "{before_close:?}");
    stopper.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3) + Duration::from_secs(2));
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn shutdown_is_bounded_when_a_client_never_reads() {
    let b = broker_with(2, |c| c.shutdown_timeout = Duration::from_secs(1));
    let addr = b.local_addr();
    let mut stuck = Client::new(addr, ProtocolVersion::V5, &id_on(0, 2, "stuck"));
    stuck.stream.set_nodelay(true).unwrap();
    stuck.subscribe("flood/#", QoS::AtMostOnce);
    let mut publ = Client::new(addr, ProtocolVersion::V5, &id_on(1, 2, "flooder"));
    let payload = vec![0u8; 32 * 1024];
    for _ in 0..400 {
        publ.publish("flood/t", &payload, QoS::AtMostOnce, false);
    }
    publ.ping();
    let started = Instant::now();
    b.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(1) + Duration::from_millis(1500),
        "shutdown took {:?}",
        started.elapsed()
    );
}
