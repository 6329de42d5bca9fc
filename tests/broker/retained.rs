//! Retained messages: store, replace, delete, delivery on subscribe, retain flag rules.

use std::time::Duration;

use ringmq::protocol::{Packet, ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling};

use crate::common::*;

/// How long to watch for a message that must not come.
const QUIET: Duration = Duration::from_millis(60);

fn tag(v: ProtocolVersion, ps: usize, ss: usize) -> String {
    format!("v{}p{ps}s{ss}", v.level())
}

/// Publishes a retained message and returns once every shard's replica has it.
fn publish_retained(c: &mut Client, topic: &str, payload: &[u8], qos: QoS) {
    c.publish(topic, payload, qos, true);
    c.sync_shards();
}

/// The next packet, which must be a PUBLISH; it is not acknowledged, so several
/// QoS 2 deliveries can be read in any order.
fn next_publish(c: &mut Client) -> Publish {
    match c.recv() {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

fn granted(qos: QoS) -> ReasonCode {
    match qos {
        QoS::AtMostOnce => ReasonCode::GRANTED_QOS0,
        QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
        QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
    }
}

#[test]
fn retained_message_is_sent_on_subscribe_to_every_matching_filter() {
    let b = broker();
    for v in V311_V5 {
        for (ps, ss) in SHARD_PAIRS {
            let tag = tag(v, ps, ss);
            let topic = format!("{tag}/dev/temp");
            let mut publisher = Client::new(b.local_addr(), v, &id_on(ps, 2, &format!("p{tag}")));
            publish_retained(&mut publisher, &topic, b"21.5", QoS::AtLeastOnce);

            let mut sub = Client::new(b.local_addr(), v, &id_on(ss, 2, &format!("s{tag}")));
            // Non-matching filters first: a retained message sent for one of them
            // would arrive where the next SUBACK is expected.
            for filter in [
                format!("{tag}/dev"),
                format!("{tag}/+"),
                format!("{tag}/dev/temp/+"),
                format!("{tag}/dev/temp/x"),
            ] {
                let ack = sub.subscribe(&filter, QoS::AtLeastOnce);
                assert_eq!(ack.reasons, [ReasonCode::GrantedQoS1], "{filter}");
            }
            for filter in [
                topic.clone(),
                format!("{tag}/dev/+"),
                format!("{tag}/+/temp"),
                format!("{tag}/+/+"),
                format!("{tag}/#"),
                // "a/#" matches "a" itself (spec 4.7.1.2).
                format!("{tag}/dev/temp/#"),
            ] {
                let ack = sub.subscribe(&filter, QoS::AtLeastOnce);
                assert_eq!(ack.reasons, [ReasonCode::GrantedQoS1], "{filter}");
                let got = sub.recv_publish();
                assert_eq!(got.topic, topic.as_str(), "{tag} {filter}");
                assert_eq!(&got.payload[..], b"21.5", "{tag} {filter}");
                assert!(got.retain, "{tag} {filter}: retained delivery has RETAIN=1");
                assert_eq!(got.qos, QoS::AtLeastOnce, "{tag} {filter}");
            }
            sub.expect_nothing(QUIET);
        }
    }
}

#[test]
fn newer_retained_message_replaces_the_older() {
    let b = broker();
    for v in V311_V5 {
        for (ps, ss) in SHARD_PAIRS {
            let tag = tag(v, ps, ss);
            let topic = format!("replace/{tag}");
            let mut publisher = Client::new(b.local_addr(), v, &id_on(ps, 2, &format!("p{tag}")));
            publisher.publish(&topic, b"old", QoS::AtLeastOnce, true);
            // The replacement is QoS 0: the stored QoS must change with it.
            publish_retained(&mut publisher, &topic, b"new", QoS::AtMostOnce);

            let mut sub = Client::new(b.local_addr(), v, &id_on(ss, 2, &format!("s{tag}")));
            sub.subscribe(&topic, QoS::AtLeastOnce);
            let got = sub.recv_publish();
            assert_eq!(&got.payload[..], b"new", "{tag}");
            assert_eq!(got.qos, QoS::AtMostOnce, "{tag}");
            assert!(got.retain, "{tag}");
            sub.expect_nothing(QUIET);
        }
    }
}

#[test]
fn empty_retained_payload_deletes_and_is_still_forwarded() {
    let b = broker();
    for v in V311_V5 {
        for (ps, ss) in SHARD_PAIRS {
            let tag = tag(v, ps, ss);
            let topic = format!("delete/{tag}/gone");
            let control = format!("delete/{tag}/kept");
            let mut live = Client::new(b.local_addr(), v, &id_on(ss, 2, &format!("l{tag}")));
            live.subscribe(&topic, QoS::AtLeastOnce);
            let mut publisher = Client::new(b.local_addr(), v, &id_on(ps, 2, &format!("p{tag}")));
            publisher.publish(&topic, b"x", QoS::AtLeastOnce, true);
            let got = live.recv_publish();
            assert_eq!(&got.payload[..], b"x", "{tag}");

            // v3.1.1 3.3.1.3 / v5 3.3.1.3: processed as normal and sent to current
            // subscribers, and it removes the retained message.
            publisher.publish(&topic, b"", QoS::AtLeastOnce, true);
            let got = live.recv_publish();
            assert_eq!(got.topic, topic.as_str(), "{tag}");
            assert!(got.payload.is_empty(), "{tag}: {got:?}");
            assert!(!got.retain, "{tag}: live forwarding has RETAIN=0");
            publish_retained(&mut publisher, &control, b"k", QoS::AtLeastOnce);

            let mut late = Client::new(b.local_addr(), v, &id_on(ss, 2, &format!("s{tag}")));
            late.subscribe(&format!("delete/{tag}/+"), QoS::AtLeastOnce);
            let got = late.recv_publish();
            assert_eq!(got.topic, control.as_str(), "{tag}: only the kept message");
            late.expect_nothing(QUIET);
        }
    }
}

#[test]
fn live_forwarding_sets_retain_only_with_retain_as_published() {
    let b = broker();
    for pv in V311_V5 {
        for (ps, ss) in SHARD_PAIRS {
            let tag = tag(pv, ps, ss);
            let topic = format!("rap/{tag}");
            let addr = b.local_addr();
            let mut v3 = Client::new(
                addr,
                ProtocolVersion::V3_1_1,
                &id_on(ss, 2, &format!("a{tag}")),
            );
            v3.subscribe(&topic, QoS::AtMostOnce);
            let mut plain =
                Client::new(addr, ProtocolVersion::V5, &id_on(ss, 2, &format!("b{tag}")));
            let opts = sub_options(QoS::AtMostOnce, false, RetainHandling::SendAtSubscribe);
            plain.subscribe_opts(&topic, opts, None);
            let mut rap = Client::new(addr, ProtocolVersion::V5, &id_on(ss, 2, &format!("c{tag}")));
            let opts = sub_options(QoS::AtMostOnce, true, RetainHandling::SendAtSubscribe);
            rap.subscribe_opts(&topic, opts, None);

            let mut publisher = Client::new(addr, pv, &id_on(ps, 2, &format!("p{tag}")));
            publisher.publish(&topic, b"retained", QoS::AtLeastOnce, true);
            publisher.publish(&topic, b"plain", QoS::AtLeastOnce, false);
            // v3.1.1 3.3.1.3 and v5 3.3.1.3: RETAIN is 0 when forwarding to an
            // existing subscription, unless (v5) it has Retain As Published.
            for (name, c, first) in [
                ("v3", &mut v3, false),
                ("v5", &mut plain, false),
                ("rap", &mut rap, true),
            ] {
                let got = c.recv_publish();
                assert_eq!(&got.payload[..], b"retained", "{tag} {name}");
                assert_eq!(
                    got.retain, first,
                    "{tag} {name}: retained message forwarded live"
                );
                let got = c.recv_publish();
                assert_eq!(&got.payload[..], b"plain", "{tag} {name}");
                assert!(!got.retain, "{tag} {name}: non-retained message");
            }
        }
    }
}

#[test]
fn v5_retain_handling_if_new_and_never() {
    let b = broker();
    let v = ProtocolVersion::V5;
    for (ps, ss) in SHARD_PAIRS {
        let tag = tag(v, ps, ss);
        let topic = format!("rh/{tag}");
        let mut publisher = Client::new(b.local_addr(), v, &id_on(ps, 2, &format!("p{tag}")));
        publish_retained(&mut publisher, &topic, b"kept", QoS::AtLeastOnce);

        let mut sub = Client::new(b.local_addr(), v, &id_on(ss, 2, &format!("s{tag}")));
        let if_new = sub_options(
            QoS::AtLeastOnce,
            false,
            RetainHandling::SendAtSubscribeIfNew,
        );
        sub.subscribe_opts(&topic, if_new, None);
        let got = sub.recv_publish();
        assert_eq!(
            (&got.payload[..], got.retain),
            (&b"kept"[..], true),
            "{tag}: new subscription"
        );
        // v5 3.8.3.1: retain handling 1 sends nothing when the subscription exists,
        // 2 never sends, 0 sends on every SUBSCRIBE. A wrongly sent message would
        // arrive where the next SUBACK is expected.
        sub.subscribe_opts(&topic, if_new, None);
        let never = sub_options(QoS::AtLeastOnce, false, RetainHandling::DoNotSend);
        sub.subscribe_opts(&topic, never, None);
        let always = sub_options(QoS::AtLeastOnce, false, RetainHandling::SendAtSubscribe);
        sub.subscribe_opts(&topic, always, None);
        let got = sub.recv_publish();
        assert_eq!(
            (&got.payload[..], got.retain),
            (&b"kept"[..], true),
            "{tag}: resubscribe with 0"
        );
        sub.expect_nothing(QUIET);

        let mut fresh = Client::new(b.local_addr(), v, &id_on(ss, 2, &format!("f{tag}")));
        fresh.subscribe_opts(&topic, never, None);
        publisher.publish(&topic, b"live", QoS::AtLeastOnce, false);
        let got = fresh.recv_publish();
        assert_eq!(
            &got.payload[..],
            b"live",
            "{tag}: retain handling 2 sent the retained message"
        );
        assert_eq!(&sub.recv_publish().payload[..], b"live", "{tag}");
    }
}

#[test]
fn retained_delivery_qos_is_the_lower_of_stored_and_granted() {
    let b = broker();
    let levels = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    for v in V311_V5 {
        for (ps, ss) in SHARD_PAIRS {
            let tag = tag(v, ps, ss);
            let mut publisher = Client::new(b.local_addr(), v, &id_on(ps, 2, &format!("p{tag}")));
            for stored in levels {
                publisher.publish(&format!("qos/{tag}/{}", stored as u8), b"m", stored, true);
            }
            publisher.sync_shards();
            for granted_qos in levels {
                let id = id_on(ss, 2, &format!("s{tag}g{}", granted_qos as u8));
                let mut sub = Client::new(b.local_addr(), v, &id);
                let ack = sub.subscribe(&format!("qos/{tag}/+"), granted_qos);
                assert_eq!(ack.reasons, [granted(granted_qos)]);
                let mut got: Vec<(String, QoS, bool)> = (0..3)
                    .map(|_| {
                        let p = next_publish(&mut sub);
                        (p.topic.to_string(), p.qos, p.retain)
                    })
                    .collect();
                got.sort();
                let want: Vec<(String, QoS, bool)> = levels
                    .iter()
                    .map(|&stored| {
                        (
                            format!("qos/{tag}/{}", stored as u8),
                            stored.min(granted_qos),
                            true,
                        )
                    })
                    .collect();
                assert_eq!(got, want, "{tag} granted {granted_qos:?}");
                sub.expect_nothing(QUIET);
            }
        }
    }
}

#[test]
fn dollar_topics_are_not_sent_to_leading_wildcard_filters() {
    let b = broker();
    for ps in 0..2 {
        let mut publisher = Client::new(
            b.local_addr(),
            ProtocolVersion::V5,
            &id_on(ps, 2, "dollarp"),
        );
        publisher.publish(&format!("$SYS/p{ps}/uptime"), b"42", QoS::AtLeastOnce, true);
        publish_retained(
            &mut publisher,
            &format!("plain/p{ps}"),
            b"7",
            QoS::AtLeastOnce,
        );
    }
    for v in V311_V5 {
        for ss in 0..2 {
            let mut sub = Client::new(
                b.local_addr(),
                v,
                &id_on(ss, 2, &format!("dollar{}", v.level())),
            );
            // MQTT 4.7.2: a filter starting with a wildcard does not match a topic
            // starting with '$'; a wrong delivery arrives where a SUBACK is expected.
            sub.subscribe("+/p0/uptime", QoS::AtMostOnce);
            sub.subscribe("+/p1/uptime", QoS::AtMostOnce);
            let mut topics = Vec::new();
            sub.subscribe("#", QoS::AtMostOnce);
            for _ in 0..2 {
                let p = sub.recv_publish();
                assert!(p.retain);
                topics.push(p.topic.to_string());
            }
            sub.subscribe("$SYS/#", QoS::AtMostOnce);
            for _ in 0..2 {
                topics.push(sub.recv_publish().topic.to_string());
            }
            topics[..2].sort();
            topics[2..].sort();
            assert_eq!(
                topics,
                ["plain/p0", "plain/p1", "$SYS/p0/uptime", "$SYS/p1/uptime"],
                "v{} shard {ss}",
                v.level()
            );
            sub.expect_nothing(QUIET);
        }
    }
}
