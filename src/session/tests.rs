//! Session state machine tests: packets and time in, bytes out; no executor, no socket.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use smallvec::smallvec;

use super::*;
use crate::protocol::{Packet, Properties, ProtocolVersion};

fn limits() -> Rc<SessionLimits> {
    Rc::new(SessionLimits {
        max_inflight: 2,
        max_queued_messages: 4,
        max_queued_bytes: 1 << 20,
        receive_maximum: 2,
    })
}

fn session(version: ProtocolVersion) -> Session {
    let mut s = Session::new("c".into(), 1, version, limits());
    let mut out = BytesMut::new();
    s.attach(version, u16::MAX, u32::MAX, Instant::now(), &mut out);
    assert!(out.is_empty(), "a new session has nothing to redeliver");
    s
}

fn delivery(topic: &str, qos: QoS) -> Delivery {
    Delivery {
        msg: Arc::new(Message {
            topic: topic.into(),
            payload: bytes::Bytes::from_static(b"payload"),
            qos,
            retain: false,
            properties: Properties::new(),
            expires_at: None,
            publisher: 9,
        }),
        qos,
        retain: false,
        sub_ids: SmallVec::new(),
        shared: None,
    }
}

fn packets(version: ProtocolVersion, out: &mut BytesMut) -> Vec<Packet> {
    let mut v = Vec::new();
    while let Some(p) = Packet::decode(out, version, u32::MAX).unwrap() {
        v.push(p);
    }
    assert!(out.is_empty());
    v
}

fn publish_ids(ps: &[Packet]) -> Vec<(u16, bool)> {
    ps.iter()
        .map(|p| match p {
            Packet::Publish(p) => (p.pkid, p.dup),
            other => panic!("expected PUBLISH, got {other:?}"),
        })
        .collect()
}

#[test]
fn inflight_window_limits_unacknowledged_messages() {
    let v = ProtocolVersion::V3_1_1;
    let mut s = session(v);
    for t in ["a", "b", "c"] {
        assert_eq!(s.enqueue(delivery(t, QoS::AtLeastOnce)), Enqueued::Queued);
    }
    let mut out = BytesMut::new();
    assert_eq!(s.fill(&mut out, Instant::now(), usize::MAX), 2);
    assert_eq!(publish_ids(&packets(v, &mut out)), [(1, false), (2, false)]);
    assert!(!s.can_send(), "window of 2 is full");
    s.on_puback(1);
    assert_eq!(s.fill(&mut out, Instant::now(), usize::MAX), 1);
    assert_eq!(publish_ids(&packets(v, &mut out)), [(3, false)]);
}

#[test]
fn reconnect_redelivers_with_dup_in_order() {
    let v = ProtocolVersion::V5;
    let mut s = session(v);
    s.enqueue(delivery("a", QoS::AtLeastOnce));
    s.enqueue(delivery("b", QoS::ExactlyOnce));
    let mut out = BytesMut::new();
    s.fill(&mut out, Instant::now(), usize::MAX);
    packets(v, &mut out);
    s.on_pubrec(2, ReasonCode::Success, &mut out);
    assert!(matches!(packets(v, &mut out)[..], [Packet::PubRel(ref r)] if r.pkid == 2));
    s.detach();
    s.attach(v, 10, u32::MAX, Instant::now(), &mut out);
    let again = packets(v, &mut out);
    assert!(matches!(&again[0], Packet::Publish(p) if p.pkid == 1 && p.dup));
    assert!(matches!(&again[1], Packet::PubRel(r) if r.pkid == 2));
    s.on_puback(1);
    s.on_pubcomp(2);
    assert_eq!(s.inflight(), 0);
}

#[test]
fn qos2_duplicate_before_pubrel_is_not_routed_twice() {
    let mut s = session(ProtocolVersion::V5);
    assert_eq!(s.on_incoming_qos2(7), Ok(true));
    assert_eq!(s.on_incoming_qos2(7), Ok(false));
    assert!(s.on_pubrel(7));
    assert!(!s.on_pubrel(7));
    assert_eq!(
        s.on_incoming_qos2(7),
        Ok(true),
        "a released id is new again"
    );
    assert_eq!(s.on_incoming_qos2(8), Ok(true));
    assert_eq!(
        s.on_incoming_qos2(9),
        Err(SessionError::ReceiveMaximumExceeded),
        "receive maximum 2"
    );
}

#[test]
fn full_queue_drops_qos0_first() {
    let mut s = session(ProtocolVersion::V3_1_1);
    s.enqueue(delivery("q0a", QoS::AtMostOnce));
    s.enqueue(delivery("q1a", QoS::AtLeastOnce));
    s.enqueue(delivery("q0b", QoS::AtMostOnce));
    s.enqueue(delivery("q1b", QoS::AtLeastOnce));
    assert_eq!(
        s.enqueue(delivery("q0c", QoS::AtMostOnce)),
        Enqueued::DroppedQoS0
    );
    assert_eq!(
        s.enqueue(delivery("q1c", QoS::AtLeastOnce)),
        Enqueued::Queued
    );
    assert_eq!(
        s.enqueue(delivery("q1d", QoS::AtLeastOnce)),
        Enqueued::Queued
    );
    assert_eq!(
        s.enqueue(delivery("q1e", QoS::AtLeastOnce)),
        Enqueued::DroppedFull
    );
    assert_eq!(s.queued(), 4);
    let stats = s.take_stats();
    assert_eq!(stats.dropped_qos0, 3);
    assert_eq!(stats.dropped_full, 1);
    assert_eq!(s.take_stats(), SessionStats::default(), "taken once");
}

#[test]
fn offline_session_keeps_qos1_only() {
    let mut s = session(ProtocolVersion::V3_1_1);
    s.enqueue(delivery("a", QoS::AtMostOnce));
    s.enqueue(delivery("b", QoS::AtLeastOnce));
    s.detach();
    assert_eq!(s.queued(), 1);
    assert_eq!(
        s.enqueue(delivery("c", QoS::AtMostOnce)),
        Enqueued::DroppedQoS0
    );
    assert_eq!(s.enqueue(delivery("d", QoS::ExactlyOnce)), Enqueued::Queued);
}

#[test]
fn expired_messages_are_not_sent_and_expiry_counts_down() {
    let v = ProtocolVersion::V5;
    let mut s = session(v);
    let now = Instant::now();
    let mut expired = delivery("old", QoS::AtMostOnce);
    Arc::get_mut(&mut expired.msg).unwrap().expires_at = Some(now);
    let mut fresh = delivery("new", QoS::AtMostOnce);
    Arc::get_mut(&mut fresh.msg).unwrap().expires_at = Some(now + Duration::from_secs(30));
    fresh.sub_ids = smallvec![4, 9];
    s.enqueue(expired);
    s.enqueue(fresh);
    let mut out = BytesMut::new();
    assert_eq!(
        s.fill(&mut out, now + Duration::from_secs(10), usize::MAX),
        1
    );
    let ps = packets(v, &mut out);
    let Packet::Publish(p) = &ps[0] else {
        panic!("expected PUBLISH")
    };
    assert_eq!(p.topic, "new");
    assert_eq!(p.properties.message_expiry_interval(), Some(20));
    assert_eq!(
        p.properties.subscription_identifiers().collect::<Vec<_>>(),
        [4, 9]
    );
    assert_eq!(s.take_stats().dropped_expired, 1);
}

#[test]
fn v3_gets_no_properties() {
    let v = ProtocolVersion::V3_1_1;
    let mut s = session(v);
    let mut d = delivery("t", QoS::AtMostOnce);
    d.sub_ids = smallvec![1];
    s.enqueue(d);
    let mut out = BytesMut::new();
    s.fill(&mut out, Instant::now(), usize::MAX);
    let ps = packets(v, &mut out);
    assert!(matches!(&ps[0], Packet::Publish(p) if p.properties.is_empty()));
}

#[test]
fn too_large_for_the_client_is_dropped() {
    let v = ProtocolVersion::V5;
    let mut s = Session::new("c".into(), 1, v, limits());
    let mut out = BytesMut::new();
    s.attach(v, 10, 12, Instant::now(), &mut out);
    s.enqueue(delivery("topic/that/is/long", QoS::AtMostOnce));
    assert_eq!(s.fill(&mut out, Instant::now(), usize::MAX), 0);
    assert!(out.is_empty());
    assert_eq!(s.take_stats().dropped_too_large, 1);
}

#[test]
fn an_idle_session_holds_no_flow_and_an_emptied_offline_one_frees_it() {
    let v = ProtocolVersion::V3_1_1;
    let mut s = session(v);
    assert!(
        s.flow.is_none(),
        "nothing allocated before the first message"
    );
    assert_eq!(s.enqueue(delivery("t", QoS::AtMostOnce)), Enqueued::Queued);
    s.detach();
    // QoS 0 is not kept offline: counted when dropped, and again when offered.
    assert_eq!(
        s.enqueue(delivery("t", QoS::AtMostOnce)),
        Enqueued::DroppedQoS0
    );
    s.trim();
    assert!(s.flow.is_some(), "kept until its counts are taken");
    assert_eq!(s.take_stats().dropped_qos0, 2);
    s.trim();
    assert!(
        s.flow.is_none(),
        "an offline session holding nothing frees it"
    );
}

#[test]
fn trimming_keeps_what_an_offline_session_still_holds() {
    let v = ProtocolVersion::V3_1_1;
    let mut s = session(v);
    s.enqueue(delivery("a", QoS::AtLeastOnce));
    s.enqueue(delivery("b", QoS::AtLeastOnce));
    let mut out = BytesMut::new();
    assert_eq!(s.fill(&mut out, Instant::now(), usize::MAX), 2);
    s.on_puback(1);
    out.clear();
    s.enqueue(delivery("c", QoS::AtLeastOnce));
    s.detach();
    s.take_stats();
    s.trim();
    assert_eq!((s.queued(), s.inflight()), (1, 1));
    s.attach(v, u16::MAX, u32::MAX, Instant::now(), &mut out);
    assert_eq!(publish_ids(&packets(v, &mut out)), [(2, true)]);
    assert_eq!(s.fill(&mut out, Instant::now(), usize::MAX), 1);
    assert_eq!(publish_ids(&packets(v, &mut out)), [(3, false)]);
}
