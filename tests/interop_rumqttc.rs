//! Interoperability with a real client library: rumqttc's MQTT 3.1.1 and MQTT 5
//! clients publish and subscribe through a two-shard ringmq broker.

use std::time::Duration;

use ringmq::config::{allowed_cpus, Config, Listener};
use ringmq::shard::owner_shard;
use ringmq::Broker;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Messages each test streams from publisher to subscriber.
const COUNT: u32 = 100;
/// The bound on every wait.
const WAIT: Duration = Duration::from_secs(10);
/// rumqttc requires a keep alive of at least 5 s.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

fn broker() -> Broker {
    broker_with(|_| {})
}

fn broker_with(tweak: impl FnOnce(&mut Config)) -> Broker {
    let cpus = allowed_cpus();
    assert!(
        cpus.len() >= 2,
        "the broker needs two distinct CPUs, have {cpus:?}"
    );
    let mut config = Config {
        listeners: vec![Listener::new("127.0.0.1:0".parse().unwrap())],
        cores: vec![cpus[0], cpus[1]],
        io_memory: 256 * 1024,
        ..Config::default()
    };
    tweak(&mut config);
    Broker::start(config).expect("broker starts")
}

/// A client id that shard `shard` of two owns.
fn id_on(shard: usize, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| owner_shard(id.as_bytes(), 2) == shard)
        .unwrap()
}

/// Publisher and subscriber on the same shard and on different shards.
const PLACEMENTS: [(usize, usize); 2] = [(0, 0), (0, 1)];

mod v4 {
    use super::*;
    use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeReasonCode};

    fn client(port: u16, id: &str) -> (AsyncClient, EventLoop) {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(KEEP_ALIVE);
        AsyncClient::new(options, 2 * COUNT as usize)
    }

    /// Drives a publisher's event loop until every QoS 1 publish is acknowledged;
    /// returns the acknowledged packet ids in arrival order.
    fn drive_publisher(mut events: EventLoop) -> JoinHandle<Vec<u16>> {
        tokio::spawn(async move {
            let mut acked = Vec::new();
            while acked.len() < COUNT as usize {
                match events.poll().await.expect("publisher connection") {
                    Event::Incoming(Packet::PubAck(ack)) => acked.push(ack.pkid),
                    Event::Incoming(Packet::ConnAck(ack)) => {
                        assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success)
                    }
                    _ => {}
                }
            }
            acked
        })
    }

    #[tokio::test]
    async fn qos1_stream_arrives_complete_and_in_order() {
        let b = broker();
        let port = b.local_addr().port();
        for (ps, ss) in PLACEMENTS {
            let topic = format!("interop/v4/p{ps}s{ss}");
            let (sub, mut sub_events) = client(port, &id_on(ss, "v4-sub"));
            sub.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
            let suback = timeout(WAIT, async {
                loop {
                    if let Event::Incoming(Packet::SubAck(ack)) = sub_events.poll().await.unwrap() {
                        return ack;
                    }
                }
            })
            .await
            .expect("SUBACK in time");
            assert_eq!(
                suback.return_codes,
                [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
            );

            let (publisher, pub_events) = client(port, &id_on(ps, &format!("v4-pub-{ss}")));
            let acks = drive_publisher(pub_events);
            for i in 0..COUNT {
                publisher
                    .publish(&topic, QoS::AtLeastOnce, false, i.to_be_bytes().to_vec())
                    .await
                    .unwrap();
            }

            let received = timeout(WAIT, async {
                let mut received = Vec::new();
                while received.len() < COUNT as usize {
                    if let Event::Incoming(Packet::Publish(p)) = sub_events.poll().await.unwrap() {
                        assert_eq!(p.topic, topic);
                        assert_eq!(p.qos, QoS::AtLeastOnce);
                        assert!(!p.retain);
                        received.push(u32::from_be_bytes(p.payload[..].try_into().unwrap()));
                    }
                }
                received
            })
            .await
            .expect("all messages in time");
            assert_eq!(received, (0..COUNT).collect::<Vec<_>>(), "p{ps}s{ss}");
            let acked = timeout(WAIT, acks).await.expect("PUBACKs in time").unwrap();
            assert_eq!(acked.len(), COUNT as usize);
        }
    }
}

mod v5 {
    use super::*;
    use bytes::Bytes;
    use rumqttc::v5::mqttbytes::v5::{
        Packet, PubAckReason, PublishProperties, SubscribeReasonCode,
    };
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

    fn client(port: u16, id: &str) -> (AsyncClient, EventLoop) {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(KEEP_ALIVE);
        AsyncClient::new(options, 2 * COUNT as usize)
    }

    /// Drives a publisher's event loop until every QoS 1 publish is acknowledged;
    /// returns the acknowledgement reasons in arrival order.
    fn drive_publisher(mut events: EventLoop) -> JoinHandle<Vec<PubAckReason>> {
        tokio::spawn(async move {
            let mut acked = Vec::new();
            while acked.len() < COUNT as usize {
                if let Event::Incoming(Packet::PubAck(ack)) =
                    events.poll().await.expect("publisher connection")
                {
                    acked.push(ack.reason);
                }
            }
            acked
        })
    }

    fn user_properties(i: u32) -> Vec<(String, String)> {
        vec![
            ("seq".to_string(), i.to_string()),
            ("origin".to_string(), "rumqttc".to_string()),
            ("seq".to_string(), "again".to_string()),
        ]
    }

    #[tokio::test]
    async fn qos1_stream_with_user_properties_arrives_complete_and_in_order() {
        let b = broker();
        let port = b.local_addr().port();
        for (ps, ss) in PLACEMENTS {
            let topic = format!("interop/v5/p{ps}s{ss}");
            let (sub, mut sub_events) = client(port, &id_on(ss, "v5-sub"));
            sub.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
            let suback = timeout(WAIT, async {
                loop {
                    if let Event::Incoming(Packet::SubAck(ack)) = sub_events.poll().await.unwrap() {
                        return ack;
                    }
                }
            })
            .await
            .expect("SUBACK in time");
            assert_eq!(
                suback.return_codes,
                [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
            );

            let (publisher, pub_events) = client(port, &id_on(ps, &format!("v5-pub-{ss}")));
            let acks = drive_publisher(pub_events);
            for i in 0..COUNT {
                let properties = PublishProperties {
                    user_properties: user_properties(i),
                    content_type: Some("application/octet-stream".into()),
                    correlation_data: Some(Bytes::from(i.to_le_bytes().to_vec())),
                    ..PublishProperties::default()
                };
                publisher
                    .publish_with_properties(
                        topic.as_str(),
                        QoS::AtLeastOnce,
                        false,
                        i.to_be_bytes().to_vec(),
                        properties,
                    )
                    .await
                    .unwrap();
            }

            let received = timeout(WAIT, async {
                let mut received = Vec::new();
                while received.len() < COUNT as usize {
                    if let Event::Incoming(Packet::Publish(p)) = sub_events.poll().await.unwrap() {
                        assert_eq!(p.topic, topic.as_bytes());
                        assert_eq!(p.qos, QoS::AtLeastOnce);
                        let i = u32::from_be_bytes(p.payload[..].try_into().unwrap());
                        let props = p.properties.expect("properties forwarded");
                        assert_eq!(props.user_properties, user_properties(i));
                        assert_eq!(
                            props.content_type.as_deref(),
                            Some("application/octet-stream")
                        );
                        assert_eq!(
                            props.correlation_data.as_deref(),
                            Some(&i.to_le_bytes()[..])
                        );
                        received.push(i);
                    }
                }
                received
            })
            .await
            .expect("all messages in time");
            assert_eq!(received, (0..COUNT).collect::<Vec<_>>(), "p{ps}s{ss}");
            let acked = timeout(WAIT, acks).await.expect("PUBACKs in time").unwrap();
            assert_eq!(acked, vec![PubAckReason::Success; COUNT as usize]);
        }
    }

    /// The broker's topic aliases (LRU, more topics than the client allows) are
    /// resolved by rumqttc: every message arrives under its own topic, in order.
    #[tokio::test]
    async fn broker_topic_aliases_are_resolved_by_rumqttc() {
        let b = broker_with(|c| c.alias_policy = ringmq::config::AliasPolicy::Lru);
        let port = b.local_addr().port();
        let mut options = MqttOptions::new(id_on(1, "v5-alias-sub"), "127.0.0.1", port);
        options.set_keep_alive(KEEP_ALIVE);
        options.set_topic_alias_max(Some(2));
        let (sub, mut sub_events) = AsyncClient::new(options, 2 * COUNT as usize);
        sub.subscribe("interop/alias/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        timeout(WAIT, async {
            while !matches!(
                sub_events.poll().await.unwrap(),
                Event::Incoming(Packet::SubAck(_))
            ) {}
        })
        .await
        .expect("SUBACK in time");

        let (publisher, pub_events) = client(port, &id_on(0, "v5-alias-pub"));
        let acks = drive_publisher(pub_events);
        // Three topics for two aliases: runs of one topic reuse its alias, a new
        // topic takes over the least recently used one.
        let topic = |i: u32| format!("interop/alias/{}", (i / 3) % 3);
        for i in 0..COUNT {
            publisher
                .publish(topic(i), QoS::AtLeastOnce, false, i.to_be_bytes().to_vec())
                .await
                .unwrap();
        }
        let (received, aliased) = timeout(WAIT, async {
            let (mut received, mut aliased) = (Vec::new(), 0);
            while received.len() < COUNT as usize {
                if let Event::Incoming(Packet::Publish(p)) = sub_events.poll().await.unwrap() {
                    let i = u32::from_be_bytes(p.payload[..].try_into().unwrap());
                    assert_eq!(p.topic, topic(i).as_bytes(), "message {i}");
                    if let Some(alias) = p.properties.and_then(|props| props.topic_alias) {
                        assert!((1..=2).contains(&alias), "alias {alias}");
                        aliased += 1;
                    }
                    received.push(i);
                }
            }
            (received, aliased)
        })
        .await
        .expect("all messages in time");
        assert_eq!(received, (0..COUNT).collect::<Vec<_>>());
        assert_eq!(aliased, COUNT, "every message went out with an alias");
        timeout(WAIT, acks).await.expect("PUBACKs in time").unwrap();
    }
}
