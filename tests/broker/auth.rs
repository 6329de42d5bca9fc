//! Enhanced authentication (v5 4.12) through a test authenticator: one- and
//! two-step exchanges at CONNECT, refusals with the authenticator's reason, method
//! mismatches, re-authentication, and the refusal when no authenticator is set.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringmq::auth::{AuthRequest, AuthStep, Authenticator};
use ringmq::protocol::{
    Auth, ConnAck, Connect, Packet, Properties, Property, ProtocolVersion, QoS, ReasonCode,
};
use ringmq::Hooks;

use crate::common::*;

/// Two methods: `TOKEN`, one step (the data must be `good`), and `CHALLENGE`, two
/// steps (the broker sends a nonce; the answer must be the nonce reversed).
struct TestAuthenticator;

impl Authenticator for TestAuthenticator {
    fn authenticate(&self, req: &AuthRequest<'_>, state: &mut Bytes) -> AuthStep {
        match (req.method, req.round) {
            ("TOKEN", 0) if req.data == Some(&b"good"[..]) => AuthStep::Success(None),
            ("TOKEN", _) => AuthStep::Fail(ReasonCode::NotAuthorized),
            ("CHALLENGE", 0) => {
                let nonce = format!(
                    "nonce-{}-{}",
                    req.client_id,
                    if req.reauthentication { "re" } else { "first" }
                );
                *state = Bytes::from(nonce.clone());
                AuthStep::Continue(Bytes::from(nonce))
            }
            ("CHALLENGE", 1) => {
                let want: Vec<u8> = state.iter().rev().copied().collect();
                if req.data == Some(&want[..]) {
                    AuthStep::Success(Some(Bytes::from_static(b"welcome")))
                } else {
                    AuthStep::Fail(ReasonCode::NotAuthorized)
                }
            }
            _ => AuthStep::Fail(ReasonCode::BadAuthenticationMethod),
        }
    }
}

fn auth_broker() -> ringmq::Broker {
    broker_with_hooks(
        2,
        Hooks {
            authenticator: Some(Arc::new(TestAuthenticator)),
        },
        |_| {},
    )
}

fn connect_auth(id: &str, method: &str, data: Option<&[u8]>) -> Connect {
    let mut c = Connect::new(ProtocolVersion::V5, id);
    c.properties
        .push(Property::AuthenticationMethod(method.into()));
    if let Some(d) = data {
        c.properties
            .push(Property::AuthenticationData(Bytes::copy_from_slice(d)));
    }
    c
}

fn auth(reason: ReasonCode, method: &str, data: Option<&[u8]>) -> Packet {
    let mut p = Properties::new();
    p.push(Property::AuthenticationMethod(method.into()));
    if let Some(d) = data {
        p.push(Property::AuthenticationData(Bytes::copy_from_slice(d)));
    }
    Packet::Auth(Auth::new(reason, p))
}

fn expect_auth(c: &mut Client, reason: ReasonCode, method: &str) -> Option<Bytes> {
    match c.recv() {
        Packet::Auth(a) => {
            assert_eq!(a.reason, reason);
            assert_eq!(
                a.properties.authentication_method().as_deref(),
                Some(method)
            );
            a.properties.authentication_data()
        }
        other => panic!("expected AUTH, got {other:?}"),
    }
}

fn expect_connack(c: &mut Client) -> ConnAck {
    match c.recv() {
        Packet::ConnAck(a) => a,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

fn reversed(b: &[u8]) -> Vec<u8> {
    b.iter().rev().copied().collect()
}

/// Runs the CHALLENGE exchange at CONNECT and returns the client after CONNACK.
fn challenge_connect(addr: std::net::SocketAddr, id: &str) -> (Client, ConnAck) {
    let mut c = Client::raw(addr, ProtocolVersion::V5);
    c.send(Packet::Connect(Box::new(connect_auth(
        id,
        "CHALLENGE",
        None,
    ))));
    let nonce =
        expect_auth(&mut c, ReasonCode::ContinueAuthentication, "CHALLENGE").expect("a challenge");
    assert_eq!(&nonce[..], format!("nonce-{id}-first").as_bytes());
    c.send(auth(
        ReasonCode::ContinueAuthentication,
        "CHALLENGE",
        Some(&reversed(&nonce)),
    ));
    let ack = expect_connack(&mut c);
    (c, ack)
}

/// Checks the connection is fully usable: a message from a client on the other
/// shard arrives.
fn check_usable(b: &ringmq::Broker, c: &mut Client, topic: &str) {
    c.subscribe(topic, QoS::AtLeastOnce);
    for shard in 0..2 {
        let mut publisher = Client::new(
            b.local_addr(),
            ProtocolVersion::V5,
            &id_on(shard, 2, &format!("{topic}-pub")),
        );
        publisher.publish(topic, b"hello", QoS::AtLeastOnce, false);
        assert_eq!(&c.recv_publish().payload[..], b"hello");
    }
}

#[test]
fn one_step_authentication_succeeds() {
    let b = auth_broker();
    for shard in 0..2 {
        let id = id_on(shard, 2, "token-ok");
        let (mut c, ack) =
            Client::connect_with(b.local_addr(), connect_auth(&id, "TOKEN", Some(b"good")));
        assert_eq!(ack.reason, ReasonCode::Success);
        // [MQTT-4.12.0-5]: the successful CONNACK names the method.
        assert_eq!(
            ack.properties.authentication_method().as_deref(),
            Some("TOKEN")
        );
        assert_eq!(ack.properties.authentication_data(), None);
        check_usable(&b, &mut c, &format!("auth/one/{shard}"));
    }
}

#[test]
fn two_step_challenge_response_succeeds() {
    let b = auth_broker();
    for shard in 0..2 {
        let (mut c, ack) = challenge_connect(b.local_addr(), &id_on(shard, 2, "chal-ok"));
        assert_eq!(ack.reason, ReasonCode::Success);
        assert_eq!(
            ack.properties.authentication_method().as_deref(),
            Some("CHALLENGE")
        );
        assert_eq!(
            ack.properties.authentication_data().as_deref(),
            Some(&b"welcome"[..])
        );
        check_usable(&b, &mut c, &format!("auth/two/{shard}"));
    }
}

#[test]
fn failed_authentication_is_refused_with_the_authenticators_reason() {
    let b = auth_broker();
    // (CONNECT method and data, the reason refused with)
    let cases: [(&str, Option<&[u8]>, ReasonCode); 3] = [
        ("TOKEN", Some(b"bad"), ReasonCode::NotAuthorized),
        ("TOKEN", None, ReasonCode::NotAuthorized),
        ("KERBEROS", Some(b"x"), ReasonCode::BadAuthenticationMethod),
    ];
    for (i, (method, data, reason)) in cases.into_iter().enumerate() {
        let (mut c, ack) = Client::connect_with(
            b.local_addr(),
            connect_auth(&id_on(i % 2, 2, "refused"), method, data),
        );
        assert_eq!(ack.reason, reason, "{method}");
        assert_eq!(ack.properties.authentication_method(), None);
        assert_eq!(c.closed_within(WAIT), Some(vec![]));
    }
    // A wrong answer to the challenge.
    let mut c = Client::raw(b.local_addr(), ProtocolVersion::V5);
    c.send(Packet::Connect(Box::new(connect_auth(
        "chal-bad",
        "CHALLENGE",
        None,
    ))));
    expect_auth(&mut c, ReasonCode::ContinueAuthentication, "CHALLENGE");
    c.send(auth(
        ReasonCode::ContinueAuthentication,
        "CHALLENGE",
        Some(b"wrong"),
    ));
    assert_eq!(expect_connack(&mut c).reason, ReasonCode::NotAuthorized);
    assert_eq!(c.closed_within(WAIT), Some(vec![]));
}

#[test]
fn a_failed_client_does_not_take_over_the_session_it_names() {
    let b = auth_broker();
    let id = id_on(1, 2, "victim");
    let (mut owner, ack) =
        Client::connect_with(b.local_addr(), connect_auth(&id, "TOKEN", Some(b"good")));
    assert_eq!(ack.reason, ReasonCode::Success);
    let (mut intruder, ack) =
        Client::connect_with(b.local_addr(), connect_auth(&id, "TOKEN", Some(b"bad")));
    assert_eq!(ack.reason, ReasonCode::NotAuthorized);
    assert_eq!(intruder.closed_within(WAIT), Some(vec![]));
    owner.ping();
}

#[test]
fn answers_out_of_the_exchange_are_protocol_errors() {
    let b = auth_broker();
    let answers = [
        // Another method than CONNECT's.
        auth(ReasonCode::ContinueAuthentication, "TOKEN", Some(b"x")),
        // Not 0x18.
        auth(ReasonCode::ReAuthenticate, "CHALLENGE", Some(b"x")),
        // [MQTT-3.1.2-30]: nothing but AUTH or DISCONNECT before CONNACK.
        Packet::PingReq,
    ];
    for (i, answer) in answers.into_iter().enumerate() {
        let mut c = Client::raw(b.local_addr(), ProtocolVersion::V5);
        c.send(Packet::Connect(Box::new(connect_auth(
            &format!("mismatch-{i}"),
            "CHALLENGE",
            None,
        ))));
        expect_auth(&mut c, ReasonCode::ContinueAuthentication, "CHALLENGE");
        c.send(answer);
        assert_eq!(expect_connack(&mut c).reason, ReasonCode::ProtocolError);
        assert_eq!(c.closed_within(WAIT), Some(vec![]));
    }
}

#[test]
fn authentication_data_without_a_method_is_a_protocol_error() {
    let b = auth_broker();
    let mut c = Connect::new(ProtocolVersion::V5, "data-only");
    c.properties
        .push(Property::AuthenticationData(Bytes::from_static(b"x")));
    let (_, ack) = Client::connect_with(b.local_addr(), c);
    assert_eq!(ack.reason, ReasonCode::ProtocolError);
}

#[test]
fn an_unanswered_challenge_ends_at_the_connect_timeout() {
    let b = broker_with_hooks(
        2,
        Hooks {
            authenticator: Some(Arc::new(TestAuthenticator)),
        },
        |c| c.limits.connect_timeout = Duration::from_millis(300),
    );
    let mut c = Client::raw(b.local_addr(), ProtocolVersion::V5);
    c.send(Packet::Connect(Box::new(connect_auth(
        "silent",
        "CHALLENGE",
        None,
    ))));
    expect_auth(&mut c, ReasonCode::ContinueAuthentication, "CHALLENGE");
    let started = std::time::Instant::now();
    assert_eq!(
        c.closed_within(WAIT),
        Some(vec![]),
        "closed without CONNACK"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn reauthentication_succeeds_while_the_connection_goes_on() {
    let b = auth_broker();
    // One step.
    let id = id_on(1, 2, "reauth-token");
    let (mut c, _) =
        Client::connect_with(b.local_addr(), connect_auth(&id, "TOKEN", Some(b"good")));
    c.send(auth(ReasonCode::ReAuthenticate, "TOKEN", Some(b"good")));
    assert_eq!(expect_auth(&mut c, ReasonCode::Success, "TOKEN"), None);
    check_usable(&b, &mut c, "auth/re/token");

    // Two steps, with a PING answered in the middle of the exchange.
    let id = id_on(0, 2, "reauth-chal");
    let (mut c, ack) = challenge_connect(b.local_addr(), &id);
    assert_eq!(ack.reason, ReasonCode::Success);
    for _ in 0..2 {
        c.send(auth(ReasonCode::ReAuthenticate, "CHALLENGE", None));
        let nonce = expect_auth(&mut c, ReasonCode::ContinueAuthentication, "CHALLENGE")
            .expect("a challenge");
        assert_eq!(&nonce[..], format!("nonce-{id}-re").as_bytes());
        c.ping();
        c.send(auth(
            ReasonCode::ContinueAuthentication,
            "CHALLENGE",
            Some(&reversed(&nonce)),
        ));
        assert_eq!(
            expect_auth(&mut c, ReasonCode::Success, "CHALLENGE").as_deref(),
            Some(&b"welcome"[..])
        );
    }
    check_usable(&b, &mut c, "auth/re/chal");
}

#[test]
fn failed_reauthentication_disconnects_with_the_reason() {
    let b = auth_broker();
    let (mut c, _) = Client::connect_with(
        b.local_addr(),
        connect_auth(&id_on(1, 2, "reauth-fail"), "TOKEN", Some(b"good")),
    );
    c.send(auth(ReasonCode::ReAuthenticate, "TOKEN", Some(b"stale")));
    let seen = c.closed_within(WAIT).expect("closed");
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::NotAuthorized),
        "{seen:?}"
    );

    let (mut c, _) = challenge_connect(b.local_addr(), &id_on(0, 2, "reauth-fail2"));
    c.send(auth(ReasonCode::ReAuthenticate, "CHALLENGE", None));
    expect_auth(&mut c, ReasonCode::ContinueAuthentication, "CHALLENGE");
    c.send(auth(
        ReasonCode::ContinueAuthentication,
        "CHALLENGE",
        Some(b"wrong"),
    ));
    let seen = c.closed_within(WAIT).expect("closed");
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::NotAuthorized),
        "{seen:?}"
    );
}

#[test]
fn reauthentication_out_of_turn_is_a_protocol_error() {
    let b = auth_broker();
    let cases = [
        // [MQTT-4.12.1-1]: the method of CONNECT.
        auth(ReasonCode::ReAuthenticate, "CHALLENGE", None),
        // 0x18 with no exchange in progress.
        auth(ReasonCode::ContinueAuthentication, "TOKEN", Some(b"good")),
        // 0x00 is the server's.
        auth(ReasonCode::Success, "TOKEN", None),
    ];
    for (i, packet) in cases.into_iter().enumerate() {
        let (mut c, _) = Client::connect_with(
            b.local_addr(),
            connect_auth(&id_on(i % 2, 2, "reauth-turn"), "TOKEN", Some(b"good")),
        );
        c.send(packet);
        let seen = c.closed_within(WAIT).expect("closed");
        assert!(
            matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError),
            "{i}: {seen:?}"
        );
    }
}

#[test]
fn auth_from_a_client_that_connected_without_a_method_is_a_protocol_error() {
    let b = auth_broker();
    let mut c = Client::new(b.local_addr(), ProtocolVersion::V5, "plain");
    c.send(auth(ReasonCode::ReAuthenticate, "TOKEN", Some(b"good")));
    let seen = c.closed_within(WAIT).expect("closed");
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError),
        "{seen:?}"
    );
}

#[test]
fn without_an_authenticator_any_method_is_refused() {
    let b = broker();
    for (method, data) in [("TOKEN", Some(&b"good"[..])), ("CHALLENGE", None)] {
        let (mut c, ack) = Client::connect_with(
            b.local_addr(),
            connect_auth(&id_on(1, 2, "no-authenticator"), method, data),
        );
        assert_eq!(ack.reason, ReasonCode::BadAuthenticationMethod);
        assert_eq!(c.closed_within(WAIT), Some(vec![]));
    }
}
