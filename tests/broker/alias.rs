//! Topic aliases the broker sets toward v5 clients (3.3.2.3.4): assigned on first
//! use up to the smaller of the client's Topic Alias Maximum and the broker's limit,
//! then full (`Fill`) or least-recently-used reassignment (`Lru`); never to v3
//! clients or clients that allow none; forgotten with the connection.

use std::collections::HashMap;
use std::time::Duration;

use ringmq::config::AliasPolicy;
use ringmq::protocol::{Connect, Packet, Property, ProtocolVersion, Publish, QoS};

use crate::common::*;

/// A subscriber's view of the broker's aliases on one connection: it resolves each
/// PUBLISH as a client must, failing the test on an alias it was never given.
#[derive(Default)]
struct Aliases(HashMap<u16, String>);

/// What arrived: the topic as sent (empty when aliased), the alias, and the topic
/// it resolves to.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    sent: String,
    alias: Option<u16>,
    topic: String,
}

impl Aliases {
    fn resolve(&mut self, p: &Publish) -> Seen {
        let alias = p.properties.topic_alias();
        let topic = match alias {
            Some(a) if p.topic.is_empty() => self
                .0
                .get(&a)
                .unwrap_or_else(|| panic!("alias {a} used before it was set"))
                .clone(),
            Some(a) => {
                self.0.insert(a, p.topic.to_string());
                p.topic.to_string()
            }
            None => p.topic.to_string(),
        };
        Seen {
            sent: p.topic.to_string(),
            alias,
            topic,
        }
    }
}

fn v5_with_alias_max(id: &str, max: Option<u16>) -> Connect {
    let mut c = Connect::new(ProtocolVersion::V5, id);
    if let Some(max) = max {
        c.properties.push(Property::TopicAliasMaximum(max));
    }
    c
}

/// Sent in full with an alias, sent as the alias alone, sent in full without one.
fn assign(topic: &str, a: u16) -> Seen {
    Seen {
        sent: topic.into(),
        alias: Some(a),
        topic: topic.into(),
    }
}
fn known(topic: &str, a: u16) -> Seen {
    Seen {
        sent: String::new(),
        alias: Some(a),
        topic: topic.into(),
    }
}
fn full(topic: &str) -> Seen {
    Seen {
        sent: topic.into(),
        alias: None,
        topic: topic.into(),
    }
}

/// Publishes each topic (QoS 1, payload = its index) from `publisher` and returns
/// what `sub` sees, checking payloads arrive in order.
fn stream(
    publisher: &mut Client,
    sub: &mut Client,
    aliases: &mut Aliases,
    topics: &[&str],
) -> Vec<Seen> {
    topics
        .iter()
        .enumerate()
        .map(|(i, t)| {
            publisher.publish(t, &[i as u8], QoS::AtLeastOnce, false);
            let p = sub.recv_publish();
            assert_eq!(&p.payload[..], &[i as u8]);
            aliases.resolve(&p)
        })
        .collect()
}

fn broker_aliasing(policy: AliasPolicy, outgoing: u16) -> ringmq::Broker {
    broker_with(2, |c| {
        c.alias_policy = policy;
        c.limits.outgoing_topic_aliases = outgoing;
    })
}

#[test]
fn fill_assigns_aliases_until_the_table_is_full_then_sends_topics_in_full() {
    let b = broker_aliasing(AliasPolicy::Fill, 64);
    for (ps, ss) in SHARD_PAIRS {
        let (mut sub, ack) = Client::connect_with(
            b.local_addr(),
            v5_with_alias_max(&id_on(ss, 2, &format!("fill-sub{ps}{ss}")), Some(2)),
        );
        assert_eq!(ack.reason, ringmq::protocol::ReasonCode::Success);
        sub.subscribe("fill/#", QoS::AtLeastOnce);
        let mut publisher = Client::new(
            b.local_addr(),
            ProtocolVersion::V5,
            &id_on(ps, 2, &format!("fill-pub{ps}{ss}")),
        );
        let seen = stream(
            &mut publisher,
            &mut sub,
            &mut Aliases::default(),
            &["fill/a", "fill/b", "fill/c", "fill/a", "fill/b", "fill/c"],
        );
        assert_eq!(
            seen,
            [
                assign("fill/a", 1),
                assign("fill/b", 2),
                full("fill/c"),
                known("fill/a", 1),
                known("fill/b", 2),
                full("fill/c"),
            ],
            "publisher on shard {ps}, subscriber on shard {ss}"
        );
    }
}

#[test]
fn lru_reassigns_the_least_recently_used_alias() {
    let b = broker_aliasing(AliasPolicy::Lru, 64);
    let (mut sub, _) = Client::connect_with(
        b.local_addr(),
        v5_with_alias_max(&id_on(1, 2, "lru-sub"), Some(2)),
    );
    sub.subscribe("lru/#", QoS::AtLeastOnce);
    let mut publisher = Client::new(b.local_addr(), ProtocolVersion::V5, &id_on(0, 2, "lru-pub"));
    let seen = stream(
        &mut publisher,
        &mut sub,
        &mut Aliases::default(),
        &[
            "lru/a", "lru/b", "lru/a", "lru/c", "lru/b", "lru/c", "lru/b",
        ],
    );
    assert_eq!(
        seen,
        [
            assign("lru/a", 1),
            assign("lru/b", 2),
            known("lru/a", 1),
            // b is the least recently used: its alias now names c.
            assign("lru/c", 2),
            // Then a is: its alias now names b.
            assign("lru/b", 1),
            known("lru/c", 2),
            known("lru/b", 1),
        ]
    );
}

#[test]
fn aliases_stay_within_the_smaller_of_the_client_and_broker_maximum() {
    let b = broker_aliasing(AliasPolicy::Lru, 3);
    let topics: Vec<String> = (0..8).map(|i| format!("max/{i}")).collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    // (client maximum, aliases it may be sent)
    for (client_max, limit) in [(1u16, 1u16), (2, 2), (10, 3)] {
        let (mut sub, _) = Client::connect_with(
            b.local_addr(),
            v5_with_alias_max(
                &id_on(1, 2, &format!("max-sub{client_max}")),
                Some(client_max),
            ),
        );
        sub.subscribe("max/#", QoS::AtLeastOnce);
        let mut publisher = Client::new(
            b.local_addr(),
            ProtocolVersion::V5,
            &id_on(0, 2, &format!("max-pub{client_max}")),
        );
        let mut aliases = Aliases::default();
        // Twice round eight topics: every one is (re)assigned, the table churns.
        let mut seen = stream(&mut publisher, &mut sub, &mut aliases, &topics);
        seen.extend(stream(&mut publisher, &mut sub, &mut aliases, &topics));
        let used: std::collections::BTreeSet<u16> = seen.iter().filter_map(|s| s.alias).collect();
        assert_eq!(
            used,
            (1..=limit).collect(),
            "client maximum {client_max}: aliases 1..={limit}"
        );
        for (s, t) in seen.iter().zip(topics.iter().chain(topics.iter())) {
            assert_eq!(s.topic, *t);
        }
    }
}

#[test]
fn no_alias_for_clients_that_allow_none_or_predate_v5() {
    let b = broker_aliasing(AliasPolicy::Lru, 64);
    let mut publisher = Client::new(
        b.local_addr(),
        ProtocolVersion::V5,
        &id_on(0, 2, "none-pub"),
    );
    let mut subs: Vec<Client> = Vec::new();
    for (i, max) in [None, Some(0)].into_iter().enumerate() {
        let (c, _) = Client::connect_with(
            b.local_addr(),
            v5_with_alias_max(&id_on(1, 2, &format!("none-v5-{i}")), max),
        );
        subs.push(c);
    }
    for v in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
        subs.push(Client::new(
            b.local_addr(),
            v,
            &id_on(1, 2, &format!("none-v{}", v as u8)),
        ));
    }
    for s in &mut subs {
        s.subscribe("none/#", QoS::AtLeastOnce);
    }
    for round in 0..3 {
        publisher.publish("none/t", &[round], QoS::AtLeastOnce, false);
        for s in &mut subs {
            let p = s.recv_publish();
            assert_eq!(p.topic, "none/t");
            assert_eq!(p.properties.topic_alias(), None, "{:?}", s.version);
        }
    }
}

#[test]
fn no_alias_when_the_policy_is_off() {
    let b = broker();
    let (mut sub, _) = Client::connect_with(
        b.local_addr(),
        v5_with_alias_max(&id_on(1, 2, "off-sub"), Some(10)),
    );
    sub.subscribe("off/#", QoS::AtLeastOnce);
    let mut publisher = Client::new(b.local_addr(), ProtocolVersion::V5, &id_on(0, 2, "off-pub"));
    let seen = stream(
        &mut publisher,
        &mut sub,
        &mut Aliases::default(),
        &["off/a", "off/a"],
    );
    assert_eq!(seen, [full("off/a"), full("off/a")]);
}

#[test]
fn a_reconnect_starts_a_fresh_alias_table() {
    let b = broker_aliasing(AliasPolicy::Fill, 64);
    let id = id_on(1, 2, "fresh-sub");
    let connect = || {
        let mut c = persistent(ProtocolVersion::V5, &id, false, 60);
        c.properties.push(Property::TopicAliasMaximum(4));
        c
    };
    let (mut sub, _) = Client::connect_with(b.local_addr(), connect());
    sub.subscribe("fresh/#", QoS::AtLeastOnce);
    let mut publisher = Client::new(
        b.local_addr(),
        ProtocolVersion::V5,
        &id_on(0, 2, "fresh-pub"),
    );
    let mut aliases = Aliases::default();
    let seen = stream(
        &mut publisher,
        &mut sub,
        &mut aliases,
        &["fresh/a", "fresh/b", "fresh/a"],
    );
    assert_eq!(
        seen,
        [
            assign("fresh/a", 1),
            assign("fresh/b", 2),
            known("fresh/a", 1)
        ]
    );

    // One more for fresh/b, received but not acknowledged, then the socket drops.
    publisher.publish("fresh/b", b"unacked", QoS::AtLeastOnce, false);
    match sub.recv() {
        Packet::Publish(p) => assert_eq!(aliases.resolve(&p), known("fresh/b", 2)),
        other => panic!("{other:?}"),
    }
    drop(sub);
    std::thread::sleep(Duration::from_millis(100));

    let (mut sub, ack) = Client::connect_with(b.local_addr(), connect());
    assert!(ack.session_present);
    // The client forgot the old aliases; the broker must have too.
    let mut aliases = Aliases::default();
    let redelivered = sub.recv_publish();
    assert!(redelivered.dup);
    assert_eq!(&redelivered.payload[..], b"unacked");
    assert_eq!(aliases.resolve(&redelivered).topic, "fresh/b");
    assert_eq!(
        redelivered.topic, "fresh/b",
        "redelivery names its topic in full"
    );
    let seen = stream(
        &mut publisher,
        &mut sub,
        &mut aliases,
        &["fresh/a", "fresh/a"],
    );
    assert_eq!(
        seen[0].sent, "fresh/a",
        "first use after reconnect names the topic"
    );
    assert_eq!(seen[1], known("fresh/a", seen[0].alias.expect("aliased")));
}

#[test]
fn an_alias_that_would_exceed_the_client_maximum_packet_size_is_not_assigned() {
    let b = broker_aliasing(AliasPolicy::Fill, 64);
    let topic = "size/topic";
    let big = vec![7u8; 100];
    // v5 QoS 1 PUBLISH: header 2, topic 2 + 10, packet id 2, properties length 1,
    // payload: the largest packet that fits without an alias, not with one (+3).
    let max = 2 + 2 + topic.len() + 2 + 1 + big.len();
    let mut c = v5_with_alias_max(&id_on(1, 2, "size-sub"), Some(4));
    c.properties.push(Property::MaximumPacketSize(max as u32));
    let (mut sub, _) = Client::connect_with(b.local_addr(), c);
    sub.subscribe("size/#", QoS::AtLeastOnce);
    let mut publisher = Client::new(
        b.local_addr(),
        ProtocolVersion::V5,
        &id_on(0, 2, "size-pub"),
    );
    let mut aliases = Aliases::default();
    let mut next = |payload: &[u8]| {
        publisher.publish(topic, payload, QoS::AtLeastOnce, false);
        let p = sub.recv_publish();
        assert_eq!(&p.payload[..], payload);
        let mut out = bytes::BytesMut::new();
        Packet::Publish(p.clone())
            .encode(ProtocolVersion::V5, &mut out)
            .unwrap();
        assert!(out.len() <= max, "{} > {max}", out.len());
        aliases.resolve(&p)
    };
    assert_eq!(next(&big), full(topic), "with an alias it would not fit");
    assert_eq!(next(b"small"), assign(topic, 1));
    assert_eq!(
        next(&big),
        known(topic, 1),
        "the alias alone makes it smaller"
    );
}
