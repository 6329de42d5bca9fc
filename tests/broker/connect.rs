//! CONNECT, CONNACK, keep alive, PING, DISCONNECT and bad input.

use std::time::Duration;

use ringmq::protocol::{Connect, Packet, Property, ProtocolVersion, QoS, ReasonCode};

use crate::common::*;

#[test]
fn every_version_connects_and_pings() {
    let b = broker();
    for v in VERSIONS {
        for shard in 0..2 {
            let mut c = Client::new(b.local_addr(), v, &id_on(shard, 2, "ping"));
            c.ping();
            c.disconnect();
        }
    }
}

#[test]
fn unsupported_protocol_level_gets_return_code_1() {
    let b = broker();
    let mut c = Client::raw(b.local_addr(), ProtocolVersion::V3_1_1);
    // CONNECT "MQTT" level 6.
    c.send_raw(&[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 6, 2, 0, 60, 0, 0]);
    assert_eq!(
        c.recv(),
        Packet::ConnAck(ringmq::protocol::ConnAck::new(
            ReasonCode::UnsupportedProtocolVersion,
            false
        ))
    );
    assert!(c.closed_within(WAIT).is_some());
}

#[test]
fn empty_client_id() {
    let b = broker();
    // v3.1.1 with clean session 0: identifier rejected (return code 2).
    let mut c = Connect::new(ProtocolVersion::V3_1_1, "");
    c.clean_start = false;
    let (_, ack) = Client::connect_with(b.local_addr(), c);
    assert_eq!(ack.reason, ReasonCode::ClientIdentifierNotValid);
    // v3.1.1 with clean session 1: accepted.
    let (_, ack) = Client::connect(b.local_addr(), ProtocolVersion::V3_1_1, "");
    assert_eq!(ack.reason, ReasonCode::Success);
    // v5: accepted, and the broker tells the client its identifier.
    let (_, ack) = Client::connect(b.local_addr(), ProtocolVersion::V5, "");
    assert_eq!(ack.reason, ReasonCode::Success);
    let assigned = ack
        .properties
        .assigned_client_identifier()
        .expect("assigned id");
    assert!(!assigned.is_empty());
}

#[test]
fn first_packet_must_be_connect() {
    let b = broker();
    let mut c = Client::raw(b.local_addr(), ProtocolVersion::V3_1_1);
    c.send(Packet::PingReq);
    assert_eq!(c.closed_within(WAIT), Some(vec![]));
}

#[test]
fn keepalive_is_enforced_at_one_and_a_half_times() {
    let b = broker();
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut connect = Connect::new(v, id_on(1, 2, "ka").as_str());
        connect.keep_alive = 1;
        let (mut c, _) = Client::connect_with(b.local_addr(), connect);
        // Still open after 1 s of silence...
        c.expect_nothing(Duration::from_millis(1100));
        // ...closed by 1.5 s (plus the timer's resolution).
        let seen = c
            .closed_within(Duration::from_secs(2))
            .expect("closed for keep alive");
        if v.is_v5() {
            assert!(
                matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::KeepAliveTimeout),
                "{seen:?}"
            );
        }
    }
}

#[test]
fn pings_keep_the_connection_alive() {
    let b = broker();
    let mut connect = Connect::new(ProtocolVersion::V3_1_1, "pinger");
    connect.keep_alive = 1;
    let (mut c, _) = Client::connect_with(b.local_addr(), connect);
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(700));
        c.ping();
    }
}

#[test]
fn malformed_packet_closes_only_that_connection() {
    let b = broker();
    let mut other = Client::new(
        b.local_addr(),
        ProtocolVersion::V5,
        &id_on(0, 2, "bystander"),
    );
    other.subscribe("t", QoS::AtMostOnce);
    let mut bad = Client::new(b.local_addr(), ProtocolVersion::V5, &id_on(0, 2, "bad"));
    // PUBLISH with QoS 3.
    bad.send_raw(&[0x36, 5, 0, 1, b't', 0, 1]);
    let seen = bad.closed_within(WAIT).expect("closed");
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::MalformedPacket),
        "{seen:?}"
    );
    let mut publisher = Client::new(b.local_addr(), ProtocolVersion::V5, "publisher");
    publisher.publish("t", b"still here", QoS::AtMostOnce, false);
    assert_eq!(&other.recv_publish().payload[..], b"still here");
}

#[test]
fn packet_too_large_is_refused_with_0x95() {
    let b = broker_with(2, |c| c.limits.max_packet_size = 1024);
    let (mut c, ack) = Client::connect(b.local_addr(), ProtocolVersion::V5, "big");
    assert_eq!(ack.properties.maximum_packet_size(), Some(1024));
    c.publish("t", &[0u8; 2000], QoS::AtMostOnce, false);
    let seen = c.closed_within(WAIT).expect("closed");
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::PacketTooLarge),
        "{seen:?}"
    );
}

#[test]
fn second_connect_is_a_protocol_error() {
    let b = broker();
    let mut c = Client::new(b.local_addr(), ProtocolVersion::V5, "twice");
    c.send(Packet::Connect(Box::new(Connect::new(
        ProtocolVersion::V5,
        "twice",
    ))));
    let seen = c.closed_within(WAIT).expect("closed");
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError),
        "{seen:?}"
    );
}

#[test]
fn authentication_method_without_authenticator_is_refused() {
    let b = broker();
    let mut connect = Connect::new(ProtocolVersion::V5, "auth");
    connect
        .properties
        .push(Property::AuthenticationMethod("SCRAM-SHA-1".into()));
    let (_, ack) = Client::connect_with(b.local_addr(), connect);
    assert_eq!(ack.reason, ReasonCode::BadAuthenticationMethod);
}

#[test]
fn connection_limit_refuses_with_server_busy() {
    let b = broker_with(2, |c| c.limits.max_connections_per_shard = 1);
    let id = id_on(0, 2, "limit");
    let _first = Client::new(b.local_addr(), ProtocolVersion::V5, &id);
    let (_, ack) = Client::connect(b.local_addr(), ProtocolVersion::V5, &id_on(0, 2, "limit2"));
    assert_eq!(ack.reason, ReasonCode::ServerBusy);
    let (_, ack) = Client::connect(
        b.local_addr(),
        ProtocolVersion::V3_1_1,
        &id_on(0, 2, "limit3"),
    );
    assert_eq!(
        ack.reason,
        ReasonCode::ServerUnavailable,
        "v3 return code 3"
    );
    // The other shard has room.
    let (_, ack) = Client::connect(b.local_addr(), ProtocolVersion::V5, &id_on(1, 2, "limit4"));
    assert_eq!(ack.reason, ReasonCode::Success);
}

#[test]
fn response_information_on_request() {
    let b = broker();
    let mut connect = Connect::new(ProtocolVersion::V5, "asker");
    connect
        .properties
        .push(Property::RequestResponseInformation(1));
    let (_, ack) = Client::connect_with(b.local_addr(), connect);
    assert_eq!(
        ack.properties.response_information().as_deref(),
        Some("response/asker")
    );
    let (_, ack) = Client::connect(b.local_addr(), ProtocolVersion::V5, "not-asking");
    assert_eq!(ack.properties.response_information(), None);
}

#[test]
fn reason_strings_only_when_problem_information_is_requested() {
    let b = broker();
    for (request, want_string) in [(None, true), (Some(1), true), (Some(0), false)] {
        let mut connect = Connect::new(ProtocolVersion::V5, "problem");
        if let Some(v) = request {
            connect
                .properties
                .push(Property::RequestProblemInformation(v));
        }
        let (mut c, _) = Client::connect_with(b.local_addr(), connect);
        c.send(Packet::PingResp);
        let seen = c.closed_within(WAIT).expect("closed");
        let [Packet::Disconnect(d)] = &seen[..] else {
            panic!("{seen:?}")
        };
        assert_eq!(d.reason, ReasonCode::ProtocolError);
        assert_eq!(
            d.properties.reason_string().is_some(),
            want_string,
            "{request:?}"
        );
    }
}

#[test]
fn a_port_in_use_is_a_start_error() {
    let b = broker();
    let mut config = ringmq::Config {
        listeners: vec![ringmq::config::Listener::new(b.local_addr())],
        cores: vec![ringmq::config::allowed_cpus()[0]],
        io_memory: 256 * 1024,
        ..ringmq::Config::default()
    };
    config.limits.max_connections_per_shard = 10;
    match ringmq::Broker::start(config) {
        Err(ringmq::shard::StartError::Listen { addr, source }) => {
            assert_eq!(addr, b.local_addr());
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a second broker started on a port in use"),
    }
}
