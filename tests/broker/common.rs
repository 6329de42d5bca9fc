//! Test harness: a real broker started in-process on 127.0.0.1:0 with two shards,
//! and a small blocking MQTT client built on ringmq's own codec that talks to it
//! over a real socket, packet by packet, so tests can check exact bytes and codes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq::config::{allowed_cpus, Config, Listener};
use ringmq::protocol::{
    ConnAck, Connect, Packet, Properties, Property, ProtocolVersion, PubAck, PubComp, PubRec,
    PubRel, Publish, QoS, ReasonCode, SubAck, Subscribe, SubscribeFilter, Unsubscribe, Will,
};
use ringmq::shard::owner_shard;
use ringmq::{Broker, Hooks};

/// How long a test waits for a packet it expects.
pub const WAIT: Duration = Duration::from_secs(5);

/// Starts a broker with `shards` shards on this machine's first allowed cores.
pub fn broker_with(shards: usize, tweak: impl FnOnce(&mut Config)) -> Broker {
    broker_with_hooks(shards, Hooks::default(), tweak)
}

/// Like `broker_with`, with hooks (an authenticator) plugged in.
pub fn broker_with_hooks(shards: usize, hooks: Hooks, tweak: impl FnOnce(&mut Config)) -> Broker {
    let cpus = allowed_cpus();
    let mut config = Config {
        listeners: vec![Listener::new("127.0.0.1:0".parse().unwrap())],
        // With fewer CPUs than shards, shards share the last CPU's neighbours.
        cores: (0..shards).map(|i| cpus[i % cpus.len()]).collect(),
        io_memory: 256 * 1024,
        ..Config::default()
    };
    config.cores.dedup();
    // With RINGMQ_TEST_PARK_AFTER_MS set, every test broker parks connections idle
    // that long, so the whole suite also runs against parked connections
    // (`.ci/run` makes a pass with 100).
    if let Ok(ms) = std::env::var("RINGMQ_TEST_PARK_AFTER_MS") {
        let ms = ms
            .parse()
            .expect("RINGMQ_TEST_PARK_AFTER_MS is milliseconds");
        config.park_after = Duration::from_millis(ms);
    }
    assert_eq!(
        config.cores.len(),
        shards,
        "tests need {shards} distinct CPUs"
    );
    tweak(&mut config);
    Broker::start_with(config, hooks).expect("broker starts")
}

pub fn broker() -> Broker {
    broker_with(2, |_| {})
}

/// A client id that the broker's shard `shard` (of `shards`) owns.
pub fn id_on(shard: usize, shards: usize, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| owner_shard(id.as_bytes(), shards) == shard)
        .unwrap()
}

pub struct Client {
    pub stream: TcpStream,
    pub version: ProtocolVersion,
    buf: BytesMut,
    next_pkid: u16,
}

impl Client {
    /// Opens a socket without sending anything.
    pub fn raw(addr: SocketAddr, version: ProtocolVersion) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to broker");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            version,
            buf: BytesMut::new(),
            next_pkid: 1,
        }
    }

    /// Connects with a clean session and returns the CONNACK.
    pub fn connect(addr: SocketAddr, version: ProtocolVersion, id: &str) -> (Client, ConnAck) {
        Client::connect_with(addr, Connect::new(version, id))
    }

    pub fn connect_with(addr: SocketAddr, connect: Connect) -> (Client, ConnAck) {
        let mut c = Client::raw(addr, connect.protocol);
        c.send(Packet::Connect(Box::new(connect)));
        match c.recv() {
            Packet::ConnAck(ack) => (c, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects and asserts success.
    pub fn new(addr: SocketAddr, version: ProtocolVersion, id: &str) -> Client {
        let (c, ack) = Client::connect(addr, version, id);
        assert_eq!(ack.reason, ReasonCode::Success, "CONNACK for {id}");
        c
    }

    pub fn pkid(&mut self) -> u16 {
        let id = self.next_pkid;
        self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
        id
    }

    pub fn send(&mut self, p: Packet) {
        let mut out = BytesMut::new();
        p.encode(self.version, &mut out)
            .expect("test packet encodes");
        self.send_raw(&out);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to broker");
    }

    /// The next packet, or `None` if none arrives within `wait` (or the socket closed).
    pub fn try_recv(&mut self, wait: Duration) -> Option<Packet> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(p) = Packet::decode(&mut self.buf, self.version, u32::MAX)
                .expect("broker sent a valid packet")
            {
                return Some(p);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(_) => return None,
            }
        }
    }

    pub fn recv(&mut self) -> Packet {
        self.try_recv(WAIT).expect("a packet within the wait")
    }

    /// Asserts nothing arrives for `wait`.
    pub fn expect_nothing(&mut self, wait: Duration) {
        if let Some(p) = self.try_recv(wait) {
            panic!("expected nothing, got {p:?}");
        }
    }

    /// Whether the broker closed the connection within `wait` (reading and
    /// discarding anything before the close). Returns the packets seen first.
    pub fn closed_within(&mut self, wait: Duration) -> Option<Vec<Packet>> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            while let Ok(Some(p)) = Packet::decode(&mut self.buf, self.version, u32::MAX) {
                seen.push(p);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Some(seen),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(_) => return Some(seen),
            }
        }
    }

    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> SubAck {
        self.subscribe_with(vec![SubscribeFilter::new(filter, qos)], Properties::new())
    }

    pub fn subscribe_with(
        &mut self,
        filters: Vec<SubscribeFilter>,
        properties: Properties,
    ) -> SubAck {
        let pkid = self.pkid();
        let mut s = Subscribe::new(pkid, filters);
        s.properties = properties;
        self.send(Packet::Subscribe(s));
        match self.recv() {
            Packet::SubAck(a) => {
                assert_eq!(a.pkid, pkid);
                a
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub fn unsubscribe(&mut self, filter: &str) -> Packet {
        let pkid = self.pkid();
        self.send(Packet::Unsubscribe(Unsubscribe::new(
            pkid,
            vec![filter.into()],
        )));
        self.recv()
    }

    /// Publishes and completes the QoS flow from the publisher's side.
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
        let mut p = Publish::new(topic, qos, bytes::Bytes::copy_from_slice(payload));
        p.retain = retain;
        self.publish_packet(p);
    }

    pub fn publish_packet(&mut self, mut p: Publish) {
        if p.qos != QoS::AtMostOnce && p.pkid == 0 {
            p.pkid = self.pkid();
        }
        let (qos, pkid) = (p.qos, p.pkid);
        self.send(Packet::Publish(p));
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => match self.recv() {
                Packet::PubAck(a) => assert_eq!(a.pkid, pkid),
                other => panic!("expected PUBACK, got {other:?}"),
            },
            QoS::ExactlyOnce => {
                match self.recv() {
                    Packet::PubRec(r) => assert_eq!(r.pkid, pkid),
                    other => panic!("expected PUBREC, got {other:?}"),
                }
                self.send(Packet::PubRel(PubRel::new(pkid)));
                match self.recv() {
                    Packet::PubComp(c) => assert_eq!(c.pkid, pkid),
                    other => panic!("expected PUBCOMP, got {other:?}"),
                }
            }
        }
    }

    /// Receives a PUBLISH and acknowledges it as a client should.
    pub fn recv_publish(&mut self) -> Publish {
        match self.recv() {
            Packet::Publish(p) => {
                self.ack(&p);
                p
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    pub fn ack(&mut self, p: &Publish) {
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(Packet::PubAck(PubAck::new(p.pkid))),
            QoS::ExactlyOnce => {
                self.send(Packet::PubRec(PubRec::new(p.pkid)));
                match self.recv() {
                    Packet::PubRel(r) => assert_eq!(r.pkid, p.pkid),
                    other => panic!("expected PUBREL, got {other:?}"),
                }
                self.send(Packet::PubComp(PubComp::new(p.pkid)));
            }
        }
    }

    pub fn ping(&mut self) {
        self.send(Packet::PingReq);
        assert_eq!(self.recv(), Packet::PingResp);
    }

    pub fn disconnect(mut self) {
        self.send(Packet::Disconnect(ringmq::protocol::Disconnect::new(
            ReasonCode::Success,
        )));
    }
}

/// A CONNECT with a will.
pub fn connect_with_will(
    version: ProtocolVersion,
    id: &str,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
) -> Connect {
    let mut c = Connect::new(version, id);
    c.will = Some(Will {
        topic: topic.into(),
        payload: bytes::Bytes::copy_from_slice(payload),
        qos,
        retain,
        properties: Properties::new(),
    });
    c
}

/// A persistent-session CONNECT (v3: clean session 0; v5: clean start 0 with an expiry).
pub fn persistent(version: ProtocolVersion, id: &str, clean: bool, expiry: u32) -> Connect {
    let mut c = Connect::new(version, id);
    c.clean_start = clean;
    if version.is_v5() {
        c.properties.push(Property::SessionExpiryInterval(expiry));
    }
    c
}

pub const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

impl Client {
    /// Returns once everything this client's shard has sent to the other shards so
    /// far (retained updates, wills) has been applied there. A SUBSCRIBE to a filter
    /// new to the shard is answered only after every other shard has confirmed the
    /// route, and each pair of shards is joined by one FIFO channel, so the SUBACK
    /// comes after the earlier updates on every shard.
    pub fn sync_shards(&mut self) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ack = self.subscribe(&format!("sync-shards/{n}"), QoS::AtMostOnce);
        assert_eq!(ack.reasons, [ReasonCode::Success], "barrier SUBACK");
    }

    /// Sends a SUBSCRIBE for one filter with options and an optional v5 subscription
    /// identifier, and returns its SUBACK.
    pub fn subscribe_opts(
        &mut self,
        filter: &str,
        options: ringmq::protocol::SubscriptionOptions,
        id: Option<u32>,
    ) -> SubAck {
        let mut properties = Properties::new();
        if let Some(id) = id {
            properties.push(Property::SubscriptionIdentifier(id));
        }
        self.subscribe_with(
            vec![SubscribeFilter {
                filter: filter.into(),
                options,
            }],
            properties,
        )
    }
}

/// Every combination of (publisher shard, subscriber shard) on a two-shard broker.
pub const SHARD_PAIRS: [(usize, usize); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

/// The two protocol versions whose behaviour differs in retained, will and
/// property handling.
pub const V311_V5: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

/// Subscription options with v5 retain-as-published and retain handling set.
pub fn sub_options(
    qos: QoS,
    retain_as_published: bool,
    retain_handling: ringmq::protocol::RetainHandling,
) -> ringmq::protocol::SubscriptionOptions {
    ringmq::protocol::SubscriptionOptions {
        qos,
        no_local: false,
        retain_as_published,
        retain_handling,
    }
}
