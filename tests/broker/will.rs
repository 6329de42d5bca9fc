//! Will messages: on abnormal close and keep alive timeout, not after DISCONNECT.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringmq::protocol::{Disconnect, Packet, Property, ProtocolVersion, Publish, QoS, ReasonCode};

use crate::common::*;

/// How long to watch for a will that must not come.
const QUIET: Duration = Duration::from_millis(200);

/// One subscriber to `filter` on each shard, at `qos`.
fn watchers(addr: SocketAddr, v: ProtocolVersion, filter: &str, qos: QoS) -> Vec<Client> {
    (0..2)
        .map(|shard| {
            let id = id_on(shard, 2, &format!("watch{}-{filter}", qos as u8));
            let mut c = Client::new(addr, v, &id);
            c.subscribe(filter, qos);
            c
        })
        .collect()
}

/// Connects a client with a will on `topic` and asserts it was accepted.
fn will_client(addr: SocketAddr, connect: ringmq::protocol::Connect) -> Client {
    let id = connect.client_id.to_string();
    let (c, ack) = Client::connect_with(addr, connect);
    assert_eq!(ack.reason, ReasonCode::Success, "CONNACK for {id}");
    c
}

fn assert_will(p: &Publish, topic: &str, payload: &[u8], qos: QoS, what: &str) {
    assert_eq!(p.topic, topic, "{what}");
    assert_eq!(&p.payload[..], payload, "{what}");
    assert_eq!(p.qos, qos, "{what}");
    assert!(!p.retain, "{what}: forwarded live, RETAIN=0");
}

#[test]
fn will_is_published_when_the_connection_is_lost() {
    let b = broker();
    let addr = b.local_addr();
    for v in VERSIONS {
        for ws in 0..2 {
            let topic = format!("will/lost/v{}s{ws}", v.level());
            let mut watchers = watchers(addr, v, &topic, QoS::AtMostOnce);
            let id = id_on(ws, 2, &format!("lost{}", v.level()));
            let connect = connect_with_will(v, &id, &topic, b"gone", QoS::AtMostOnce, false);
            let client = will_client(addr, connect);
            drop(client);
            for (shard, w) in watchers.iter_mut().enumerate() {
                let what = format!("{topic} watcher on shard {shard}");
                assert_will(&w.recv_publish(), &topic, b"gone", QoS::AtMostOnce, &what);
            }
            for w in &mut watchers {
                w.expect_nothing(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn no_will_after_a_normal_disconnect() {
    let b = broker();
    let addr = b.local_addr();
    let mut all = Vec::new();
    for v in VERSIONS {
        for ws in 0..2 {
            let topic = format!("will/normal/v{}s{ws}", v.level());
            let watchers = watchers(addr, v, &topic, QoS::AtMostOnce);
            let id = id_on(ws, 2, &format!("normal{}", v.level()));
            let connect = connect_with_will(v, &id, &topic, b"gone", QoS::AtMostOnce, false);
            will_client(addr, connect).disconnect();
            all.push((topic, watchers));
        }
    }
    std::thread::sleep(QUIET);
    // A marker published now must be the first thing each watcher sees.
    let mut marker = Client::new(addr, ProtocolVersion::V5, "will-normal-marker");
    for (topic, watchers) in &mut all {
        marker.publish(topic, b"marker", QoS::AtLeastOnce, false);
        for w in watchers {
            let got = w.recv_publish();
            assert_eq!(
                &got.payload[..],
                b"marker",
                "{topic}: will published after DISCONNECT"
            );
        }
    }
}

#[test]
fn will_is_published_on_keep_alive_timeout() {
    let b = broker();
    let addr = b.local_addr();
    let mut watchers = watchers(addr, ProtocolVersion::V5, "will/ka/#", QoS::AtMostOnce);
    let mut silent = Vec::new();
    let mut expected = Vec::new();
    for v in V311_V5 {
        for ws in 0..2 {
            let topic = format!("will/ka/v{}s{ws}", v.level());
            let id = id_on(ws, 2, &format!("ka{}", v.level()));
            let mut connect = connect_with_will(v, &id, &topic, b"timeout", QoS::AtMostOnce, false);
            connect.keep_alive = 1;
            silent.push(will_client(addr, connect));
            expected.push(topic);
        }
    }
    let start = Instant::now();
    expected.sort();
    // Keep alive 1 s: the broker allows 1.5 s of silence (v3.1.1 3.1.2.10, v5 3.1.2.10).
    for w in &mut watchers {
        w.expect_nothing(Duration::from_millis(900).saturating_sub(start.elapsed()));
    }
    for (shard, w) in watchers.iter_mut().enumerate() {
        let mut got: Vec<String> = (0..expected.len())
            .map(|_| {
                let p = w.recv_publish();
                assert_eq!(&p.payload[..], b"timeout");
                p.topic.to_string()
            })
            .collect();
        got.sort();
        assert_eq!(got, expected, "watcher on shard {shard}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "wills took {:?}",
        start.elapsed()
    );
}

#[test]
fn will_with_retain_is_stored_as_retained() {
    let b = broker();
    let addr = b.local_addr();
    for v in V311_V5 {
        for ws in 0..2 {
            let topic = format!("will/retain/v{}s{ws}", v.level());
            let mut watchers = watchers(addr, v, &topic, QoS::AtLeastOnce);
            let id = id_on(ws, 2, &format!("retain{}", v.level()));
            let connect = connect_with_will(v, &id, &topic, b"offline", QoS::AtLeastOnce, true);
            drop(will_client(addr, connect));
            for w in &mut watchers {
                assert_will(
                    &w.recv_publish(),
                    &topic,
                    b"offline",
                    QoS::AtLeastOnce,
                    &topic,
                );
            }
            // The will has been published on shard `ws`; make its replicas current.
            Client::new(addr, v, &id_on(ws, 2, &format!("sync{}", v.level()))).sync_shards();
            for ss in 0..2 {
                let id = id_on(ss, 2, &format!("late-{topic}"));
                let mut late = Client::new(addr, v, &id);
                late.subscribe(&topic, QoS::AtLeastOnce);
                let got = late.recv_publish();
                assert_eq!(&got.payload[..], b"offline", "{topic} late on shard {ss}");
                assert!(got.retain, "{topic} late on shard {ss}: retained delivery");
                assert_eq!(got.qos, QoS::AtLeastOnce, "{topic} late on shard {ss}");
            }
        }
    }
}

#[test]
fn will_qos_is_respected_up_to_the_granted_qos() {
    let b = broker();
    let addr = b.local_addr();
    let levels = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    for v in V311_V5 {
        for ws in 0..2 {
            for will_qos in levels {
                let topic = format!("will/qos/v{}s{ws}q{}", v.level(), will_qos as u8);
                let mut subs: Vec<(QoS, Client)> = levels
                    .iter()
                    .flat_map(|&g| {
                        watchers(addr, v, &topic, g)
                            .into_iter()
                            .map(move |w| (g, w))
                    })
                    .collect();
                let id = id_on(ws, 2, &format!("qos{}", v.level()));
                let connect = connect_with_will(v, &id, &topic, b"q", will_qos, false);
                drop(will_client(addr, connect));
                for (g, w) in &mut subs {
                    let p = w.recv_publish();
                    let what = format!("{topic} granted {g:?}");
                    assert_will(&p, &topic, b"q", will_qos.min(*g), &what);
                    if p.qos != QoS::AtMostOnce {
                        assert_ne!(p.pkid, 0, "{what}");
                    }
                }
            }
        }
    }
}

#[test]
fn v5_disconnect_with_will_message_publishes_the_will() {
    let b = broker();
    let addr = b.local_addr();
    let v = ProtocolVersion::V5;
    for ws in 0..2 {
        let topic = format!("will/0x04/s{ws}");
        let mut watchers = watchers(addr, v, &topic, QoS::AtLeastOnce);
        let connect = connect_with_will(
            v,
            &id_on(ws, 2, "with-will"),
            &topic,
            b"bye",
            QoS::AtLeastOnce,
            false,
        );
        let mut client = will_client(addr, connect);
        client.send(Packet::Disconnect(Disconnect::new(
            ReasonCode::DisconnectWithWillMessage,
        )));
        assert_eq!(client.closed_within(WAIT), Some(vec![]), "{topic}");
        for w in &mut watchers {
            assert_will(&w.recv_publish(), &topic, b"bye", QoS::AtLeastOnce, &topic);
        }
    }
}

#[test]
fn will_of_a_client_taken_over_is_published() {
    let b = broker();
    let addr = b.local_addr();
    for v in V311_V5 {
        for ws in 0..2 {
            let topic = format!("will/takeover/v{}s{ws}", v.level());
            let mut watchers = watchers(addr, v, &topic, QoS::AtLeastOnce);
            let id = id_on(ws, 2, &format!("taken{}", v.level()));
            let connect = connect_with_will(v, &id, &topic, b"replaced", QoS::AtLeastOnce, false);
            let mut old = will_client(addr, connect);
            let mut new = Client::new(addr, v, &id);
            let seen = old.closed_within(WAIT).expect("old connection closed");
            if v.is_v5() {
                assert!(
                    matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::SessionTakenOver),
                    "{topic}: {seen:?}"
                );
            } else {
                assert_eq!(seen, [], "{topic}");
            }
            for w in &mut watchers {
                assert_will(
                    &w.recv_publish(),
                    &topic,
                    b"replaced",
                    QoS::AtLeastOnce,
                    &topic,
                );
            }
            // The new connection owns the client id now and works.
            new.subscribe(&format!("{topic}/after"), QoS::AtLeastOnce);
            let mut publisher = Client::new(addr, v, &id_on(1 - ws, 2, "takeover-p"));
            publisher.publish(
                &format!("{topic}/after"),
                b"to new",
                QoS::AtLeastOnce,
                false,
            );
            assert_eq!(&new.recv_publish().payload[..], b"to new", "{topic}");
            new.disconnect();
            for w in &mut watchers {
                w.expect_nothing(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn v5_will_properties_are_forwarded() {
    let b = broker();
    let addr = b.local_addr();
    for ws in 0..2 {
        let topic = format!("will/props/s{ws}");
        let mut watchers = watchers(addr, ProtocolVersion::V5, &topic, QoS::AtMostOnce);
        let id = id_on(ws, 2, "will-props");
        let mut connect = connect_with_will(
            ProtocolVersion::V5,
            &id,
            &topic,
            b"{}",
            QoS::AtMostOnce,
            false,
        );
        let will = connect.will.as_mut().expect("a will");
        will.properties
            .push(Property::ContentType("application/json".into()));
        will.properties
            .push(Property::UserProperty("k".into(), "1".into()));
        will.properties
            .push(Property::UserProperty("k".into(), "2".into()));
        drop(will_client(addr, connect));
        for w in &mut watchers {
            let p = w.recv_publish();
            assert_eq!(
                p.properties.content_type().as_deref(),
                Some("application/json"),
                "{topic}"
            );
            let users: Vec<(&str, &str)> = p.properties.user_properties().collect();
            assert_eq!(users, [("k", "1"), ("k", "2")], "{topic}");
        }
    }
}

/// v5 3.1.3.2.2: "The Server delays publishing the Client's Will Message until the
/// Will Delay Interval has passed or the Session ends, whichever happens first."
#[test]
fn v5_will_delay_interval_postpones_the_will() {
    let b = broker();
    let addr = b.local_addr();
    let mut all = Vec::new();
    for ws in 0..2 {
        let topic = format!("will/delay/s{ws}");
        let watchers = watchers(addr, ProtocolVersion::V5, &topic, QoS::AtMostOnce);
        let id = id_on(ws, 2, "will-delay");
        let mut connect = connect_with_will(
            ProtocolVersion::V5,
            &id,
            &topic,
            b"late",
            QoS::AtMostOnce,
            false,
        );
        connect.properties.push(Property::SessionExpiryInterval(30));
        let will = connect.will.as_mut().expect("a will");
        will.properties.push(Property::WillDelayInterval(1));
        drop(will_client(addr, connect));
        all.push((topic, watchers));
    }
    let start = Instant::now();
    for (topic, watchers) in &mut all {
        for w in watchers {
            if let Some(p) = w.try_recv(Duration::from_millis(700).saturating_sub(start.elapsed()))
            {
                panic!(
                    "{topic}: will published {:?} after the close, before its 1 s delay: {p:?}",
                    start.elapsed()
                );
            }
        }
    }
    for (topic, watchers) in &mut all {
        for w in watchers {
            assert_eq!(&w.recv_publish().payload[..], b"late", "{topic}");
        }
    }
}
