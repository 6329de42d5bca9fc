//! Codec benchmarks: `ringmq::protocol` beside mqttbytes 0.6, on the same bytes.
//!
//! A decode bench copies a batch of `BATCH` packets, back to back, into a reused
//! buffer (what a broker's read loop holds after a socket read) and decodes and
//! drops every packet; the copy is paid by both sides alike. An encode bench writes
//! `BATCH` packets into a cleared, reused buffer. Before anything is timed, every
//! case checks that both codecs encode each packet to the same bytes and the batch
//! to the same length, and decode the batch back to `BATCH` packets equal to the
//! ones they started from.
//!
//! Representations differ where the codecs differ: ringmq holds a v5 property list as
//! its bytes on the wire, whether it was received or built (`Properties::from_vec`
//! encodes it, here outside the timed loop), so writing it is one copy; mqttbytes
//! holds typed fields and serialises them on every write. The broker's case is the
//! first: it forwards lists it received.
//!
//! Names read `{packet}_{op}_{version}/{case}/{codec}`. PUBLISH groups report
//! bytes per second and their `_pkts` twins packets per second; CONNECT and
//! SUBSCRIBE groups report packets per second.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mqttbytes::{v4, v5};
use ringmq::protocol::{
    Connect, Packet, Properties, Property, ProtocolVersion, Publish, QoS, RetainHandling,
    Subscribe, SubscribeFilter, SubscriptionOptions, Will,
};

/// Packets per batch.
const BATCH: usize = 64;
/// Large enough never to reject a benchmark packet on either side.
const MAX_PACKET: usize = 1 << 20;
const TOPIC: &str = "devices/0042/telemetry/temperature";

/// mqttbytes has a separate packet type per protocol level.
enum Baseline {
    V4(Vec<v4::Packet>),
    V5(Vec<v5::Packet>),
}

impl Baseline {
    fn write_one(&self, i: usize, out: &mut BytesMut) {
        match self {
            Baseline::V4(packets) => write_v4(&packets[i], out),
            Baseline::V5(packets) => write_v5(&packets[i], out),
        }
    }
}

/// One batch, as ringmq packets and as the equivalent mqttbytes packets.
struct Case {
    version: ProtocolVersion,
    ours: Vec<Packet>,
    theirs: Baseline,
    /// The batch on the wire, identical from both encoders.
    wire: Bytes,
}

impl Case {
    /// Builds the case and checks, untimed, that both sides do the same work.
    fn new(version: ProtocolVersion, ours: Vec<Packet>, theirs: Baseline) -> Case {
        assert_eq!(ours.len(), BATCH);
        // Same bytes packet by packet, each written into an empty buffer: mqttbytes'
        // `Connect::write` patches the connect flags at an offset counted from the
        // start of the buffer rather than of the packet, so a CONNECT written after
        // other bytes comes out wrong (same length, same work, wrong flags).
        let mut wire = BytesMut::new();
        let (mut one, mut other) = (BytesMut::new(), BytesMut::new());
        for (i, p) in ours.iter().enumerate() {
            one.clear();
            p.encode(version, &mut one)
                .expect("ringmq encodes the packet");
            other.clear();
            theirs.write_one(i, &mut other);
            assert_eq!(one, other, "encoders disagree on packet {i}");
            wire.extend_from_slice(&one);
        }
        let wire = wire.freeze();
        let (mut batch, mut other) = (BytesMut::new(), BytesMut::new());
        let len = encode_ours(&ours, version, &mut batch);
        assert_eq!(batch, wire, "ringmq encodes a batch as its packets");
        assert_eq!(
            len,
            encode_theirs(&theirs, &mut other),
            "batch lengths differ"
        );

        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let n = decode_ours(&mut buf, &wire, version, |p| decoded.push(p));
        assert_eq!(n, BATCH, "ringmq decoded a wrong number of packets");
        assert_eq!(decoded, ours, "ringmq decoded other packets");
        match &theirs {
            Baseline::V4(packets) => {
                let mut decoded = Vec::new();
                assert_eq!(decode_v4(&mut buf, &wire, |p| decoded.push(p)), BATCH);
                assert_eq!(&decoded, packets, "mqttbytes v4 decoded other packets");
            }
            Baseline::V5(packets) => {
                let mut decoded = Vec::new();
                assert_eq!(decode_v5(&mut buf, &wire, |p| decoded.push(p)), BATCH);
                assert_eq!(&decoded, packets, "mqttbytes v5 decoded other packets");
            }
        }
        Case {
            version,
            ours,
            theirs,
            wire,
        }
    }

    fn version_name(&self) -> &'static str {
        if self.version.is_v5() {
            "v5"
        } else {
            "v4"
        }
    }
}

fn encode_ours(packets: &[Packet], version: ProtocolVersion, out: &mut BytesMut) -> usize {
    out.clear();
    for p in packets {
        p.encode(version, out).expect("ringmq encodes the batch");
    }
    out.len()
}

fn encode_theirs(packets: &Baseline, out: &mut BytesMut) -> usize {
    out.clear();
    match packets {
        Baseline::V4(packets) => {
            for p in packets {
                write_v4(p, out);
            }
        }
        Baseline::V5(packets) => {
            for p in packets {
                write_v5(p, out);
            }
        }
    }
    out.len()
}

/// mqttbytes has no packet-level writer; this is the dispatch ringmq's
/// `Packet::encode` does.
fn write_v4(packet: &v4::Packet, out: &mut BytesMut) {
    match packet {
        v4::Packet::Publish(p) => p.write(out),
        v4::Packet::Connect(p) => p.write(out),
        v4::Packet::Subscribe(p) => p.write(out),
        other => panic!("no baseline writer for {other:?}"),
    }
    .expect("mqttbytes encodes the batch");
}

fn write_v5(packet: &v5::Packet, out: &mut BytesMut) {
    match packet {
        v5::Packet::Publish(p) => p.write(out),
        v5::Packet::Connect(p) => p.write(out),
        v5::Packet::Subscribe(p) => p.write(out),
        other => panic!("no baseline writer for {other:?}"),
    }
    .expect("mqttbytes encodes the batch");
}

/// Refills `buf` with `wire` and decodes every packet into `sink`; returns the count.
fn decode_ours(
    buf: &mut BytesMut,
    wire: &[u8],
    version: ProtocolVersion,
    mut sink: impl FnMut(Packet),
) -> usize {
    buf.clear();
    buf.extend_from_slice(wire);
    let mut n = 0;
    while !buf.is_empty() {
        let packet = Packet::decode(buf, version, MAX_PACKET as u32)
            .expect("ringmq decodes the batch")
            .expect("the batch holds whole packets");
        sink(packet);
        n += 1;
    }
    n
}

fn decode_v4(buf: &mut BytesMut, wire: &[u8], mut sink: impl FnMut(v4::Packet)) -> usize {
    buf.clear();
    buf.extend_from_slice(wire);
    let mut n = 0;
    while !buf.is_empty() {
        sink(v4::read(buf, MAX_PACKET).expect("mqttbytes decodes the batch"));
        n += 1;
    }
    n
}

fn decode_v5(buf: &mut BytesMut, wire: &[u8], mut sink: impl FnMut(v5::Packet)) -> usize {
    buf.clear();
    buf.extend_from_slice(wire);
    let mut n = 0;
    while !buf.is_empty() {
        sink(v5::read(buf, MAX_PACKET).expect("mqttbytes decodes the batch"));
        n += 1;
    }
    n
}

/// Which unit a group reports its throughput in.
#[derive(Clone, Copy)]
enum Unit {
    Bytes,
    Packets,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Bytes => "",
            Unit::Packets => "_pkts",
        }
    }

    fn throughput(self, case: &Case) -> Throughput {
        match self {
            Unit::Bytes => Throughput::Bytes(case.wire.len() as u64),
            Unit::Packets => Throughput::Elements(BATCH as u64),
        }
    }
}

/// Registers a `{packet}_decode_{v}` and a `{packet}_encode_{v}` group holding every
/// labelled case, ringmq beside mqttbytes. The cases share one protocol version.
fn bench_cases(c: &mut Criterion, packet: &str, cases: &[(&str, Case)], unit: Unit) {
    let Some((_, first)) = cases.first() else {
        return;
    };
    let version = first.version_name();
    let suffix = unit.suffix();

    let mut group = c.benchmark_group(format!("{packet}_decode_{version}{suffix}"));
    for (label, case) in cases {
        group.throughput(unit.throughput(case));
        let mut buf = BytesMut::with_capacity(case.wire.len());
        group.bench_function(BenchmarkId::new(*label, "ringmq"), |b| {
            b.iter(|| decode_ours(&mut buf, black_box(&case.wire), case.version, discard))
        });
        match &case.theirs {
            Baseline::V4(_) => group.bench_function(BenchmarkId::new(*label, "mqttbytes"), |b| {
                b.iter(|| decode_v4(&mut buf, black_box(&case.wire), discard))
            }),
            Baseline::V5(_) => group.bench_function(BenchmarkId::new(*label, "mqttbytes"), |b| {
                b.iter(|| decode_v5(&mut buf, black_box(&case.wire), discard))
            }),
        };
    }
    group.finish();

    let mut group = c.benchmark_group(format!("{packet}_encode_{version}{suffix}"));
    for (label, case) in cases {
        group.throughput(unit.throughput(case));
        let mut out = BytesMut::with_capacity(case.wire.len());
        group.bench_function(BenchmarkId::new(*label, "ringmq"), |b| {
            b.iter(|| encode_ours(black_box(&case.ours), case.version, &mut out))
        });
        group.bench_function(BenchmarkId::new(*label, "mqttbytes"), |b| {
            b.iter(|| encode_theirs(black_box(&case.theirs), &mut out))
        });
    }
    group.finish();
}

/// Drops a decoded packet where the optimiser cannot see it unused.
fn discard<T>(packet: T) {
    black_box(packet);
}

/// A packet identifier per position in the batch, as a client would number them.
fn pkid(i: usize) -> u16 {
    u16::try_from(i + 1).expect("batch fits packet identifiers")
}

fn payload(len: usize) -> Bytes {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn publish_case(version: ProtocolVersion, payload_len: usize) -> Case {
    let payload = payload(payload_len);
    let ours = (0..BATCH)
        .map(|i| {
            let mut p = Publish::new(TOPIC, QoS::AtLeastOnce, payload.clone());
            p.pkid = pkid(i);
            if version.is_v5() {
                // In the order mqttbytes writes them, so the bytes match exactly.
                p.properties = Properties::from_vec(vec![
                    Property::MessageExpiryInterval(3600),
                    Property::ResponseTopic("devices/0042/telemetry/ack".into()),
                    Property::CorrelationData(Bytes::from_static(b"req-7f3a9c21")),
                    Property::UserProperty("unit".into(), "celsius".into()),
                    Property::UserProperty("sensor".into(), "bme280".into()),
                    Property::ContentType("application/octet-stream".into()),
                ]);
            }
            Packet::Publish(p)
        })
        .collect();
    let theirs = if version.is_v5() {
        Baseline::V5(
            (0..BATCH)
                .map(|i| {
                    let mut p = v5::Publish::from_bytes(
                        TOPIC,
                        mqttbytes::QoS::AtLeastOnce,
                        payload.clone(),
                    );
                    p.pkid = pkid(i);
                    p.properties = Some(v5::PublishProperties {
                        payload_format_indicator: None,
                        message_expiry_interval: Some(3600),
                        topic_alias: None,
                        response_topic: Some("devices/0042/telemetry/ack".into()),
                        correlation_data: Some(Bytes::from_static(b"req-7f3a9c21")),
                        user_properties: vec![
                            ("unit".into(), "celsius".into()),
                            ("sensor".into(), "bme280".into()),
                        ],
                        subscription_identifiers: Vec::new(),
                        content_type: Some("application/octet-stream".into()),
                    });
                    v5::Packet::Publish(p)
                })
                .collect(),
        )
    } else {
        Baseline::V4(
            (0..BATCH)
                .map(|i| {
                    let mut p = v4::Publish::from_bytes(
                        TOPIC,
                        mqttbytes::QoS::AtLeastOnce,
                        payload.clone(),
                    );
                    p.pkid = pkid(i);
                    v4::Packet::Publish(p)
                })
                .collect(),
        )
    };
    Case::new(version, ours, theirs)
}

fn client_id(i: usize) -> String {
    format!("device-{i:04}")
}

fn connect_case(version: ProtocolVersion) -> Case {
    let v5 = version.is_v5();
    let ours = (0..BATCH)
        .map(|i| {
            let mut will = Will {
                topic: "devices/0042/status".into(),
                payload: Bytes::from_static(b"offline"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: Properties::new(),
            };
            let mut connect = Connect::new(version, client_id(i));
            connect.keep_alive = 30;
            connect.username = Some(client_id(i).into());
            connect.password = Some(Bytes::from_static(b"s3cr3t-t0ken"));
            if v5 {
                connect.properties = Properties::from_vec(vec![
                    Property::SessionExpiryInterval(3600),
                    Property::ReceiveMaximum(64),
                    Property::MaximumPacketSize(MAX_PACKET as u32),
                    Property::TopicAliasMaximum(16),
                    Property::UserProperty("firmware".into(), "1.4.2".into()),
                ]);
                will.properties = Properties::from_vec(vec![
                    Property::WillDelayInterval(30),
                    Property::MessageExpiryInterval(600),
                    Property::ContentType("text/plain".into()),
                    Property::UserProperty("reason".into(), "lwt".into()),
                ]);
            }
            connect.will = Some(will);
            Packet::Connect(Box::new(connect))
        })
        .collect();
    let theirs = if v5 {
        Baseline::V5(
            (0..BATCH)
                .map(|i| {
                    let mut will = v5::LastWill::new(
                        "devices/0042/status",
                        b"offline".to_vec(),
                        mqttbytes::QoS::AtLeastOnce,
                        true,
                    );
                    will.properties = Some(v5::WillProperties {
                        delay_interval: Some(30),
                        payload_format_indicator: None,
                        message_expiry_interval: Some(600),
                        content_type: Some("text/plain".into()),
                        response_topic: None,
                        correlation_data: None,
                        user_properties: vec![("reason".into(), "lwt".into())],
                    });
                    let mut connect = v5::Connect::new(client_id(i));
                    connect.keep_alive = 30;
                    connect.set_login(client_id(i), "s3cr3t-t0ken".into());
                    connect.last_will = Some(will);
                    connect.properties = Some(v5::ConnectProperties {
                        session_expiry_interval: Some(3600),
                        receive_maximum: Some(64),
                        max_packet_size: Some(MAX_PACKET as u32),
                        topic_alias_max: Some(16),
                        request_response_info: None,
                        request_problem_info: None,
                        user_properties: vec![("firmware".into(), "1.4.2".into())],
                        authentication_method: None,
                        authentication_data: None,
                    });
                    v5::Packet::Connect(connect)
                })
                .collect(),
        )
    } else {
        Baseline::V4(
            (0..BATCH)
                .map(|i| {
                    let mut connect = v4::Connect::new(client_id(i));
                    connect.keep_alive = 30;
                    connect.set_login(client_id(i), "s3cr3t-t0ken".into());
                    connect.last_will = Some(v4::LastWill::new(
                        "devices/0042/status",
                        b"offline".to_vec(),
                        mqttbytes::QoS::AtLeastOnce,
                        true,
                    ));
                    v4::Packet::Connect(connect)
                })
                .collect(),
        )
    };
    Case::new(version, ours, theirs)
}

/// Filters with wildcards and a shared subscription, with their v5 options:
/// (filter, QoS, no local, retain as published, retain handling).
const FILTERS: [(&str, QoS, bool, bool, RetainHandling); 4] = [
    (
        "devices/+/telemetry/#",
        QoS::AtLeastOnce,
        false,
        true,
        RetainHandling::SendAtSubscribe,
    ),
    (
        "devices/0042/commands/+",
        QoS::ExactlyOnce,
        true,
        false,
        RetainHandling::SendAtSubscribeIfNew,
    ),
    (
        "$share/ingest/devices/+/events",
        QoS::AtLeastOnce,
        false,
        false,
        RetainHandling::DoNotSend,
    ),
    (
        "alerts/#",
        QoS::AtMostOnce,
        false,
        false,
        RetainHandling::SendAtSubscribe,
    ),
];

fn their_qos(qos: QoS) -> mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => mqttbytes::QoS::ExactlyOnce,
    }
}

fn subscribe_case(version: ProtocolVersion) -> Case {
    let v5 = version.is_v5();
    let ours = (0..BATCH)
        .map(|i| {
            let filters = FILTERS
                .iter()
                .map(
                    |&(filter, qos, no_local, retain_as_published, retain_handling)| {
                        let mut f = SubscribeFilter::new(filter, qos);
                        if v5 {
                            f.options = SubscriptionOptions {
                                qos,
                                no_local,
                                retain_as_published,
                                retain_handling,
                            };
                        }
                        f
                    },
                )
                .collect();
            let mut subscribe = Subscribe::new(pkid(i), filters);
            if v5 {
                subscribe.properties = Properties::from_vec(vec![
                    Property::SubscriptionIdentifier(42),
                    Property::UserProperty("client".into(), "device-0042".into()),
                ]);
            }
            Packet::Subscribe(subscribe)
        })
        .collect();
    let theirs = if v5 {
        Baseline::V5(
            (0..BATCH)
                .map(|i| {
                    let filters = FILTERS.iter().map(
                        |&(filter, qos, no_local, retain_as_published, retain_handling)| {
                            v5::SubscribeFilter {
                                path: filter.into(),
                                qos: their_qos(qos),
                                nolocal: no_local,
                                preserve_retain: retain_as_published,
                                retain_forward_rule: match retain_handling {
                                    RetainHandling::SendAtSubscribe => {
                                        v5::RetainForwardRule::OnEverySubscribe
                                    }
                                    RetainHandling::SendAtSubscribeIfNew => {
                                        v5::RetainForwardRule::OnNewSubscribe
                                    }
                                    RetainHandling::DoNotSend => v5::RetainForwardRule::Never,
                                },
                            }
                        },
                    );
                    let mut subscribe = v5::Subscribe::new_many(filters);
                    subscribe.pkid = pkid(i);
                    subscribe.properties = Some(v5::SubscribeProperties {
                        id: Some(42),
                        user_properties: vec![("client".into(), "device-0042".into())],
                    });
                    v5::Packet::Subscribe(subscribe)
                })
                .collect(),
        )
    } else {
        Baseline::V4(
            (0..BATCH)
                .map(|i| {
                    let filters = FILTERS.iter().map(|&(filter, qos, ..)| {
                        v4::SubscribeFilter::new(filter.into(), their_qos(qos))
                    });
                    let mut subscribe = v4::Subscribe::new_many(filters);
                    subscribe.pkid = pkid(i);
                    v4::Packet::Subscribe(subscribe)
                })
                .collect(),
        )
    };
    Case::new(version, ours, theirs)
}

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

fn publish(c: &mut Criterion) {
    for version in VERSIONS {
        let cases = [
            ("16B", publish_case(version, 16)),
            ("256B", publish_case(version, 256)),
            ("4KiB", publish_case(version, 4096)),
        ];
        bench_cases(c, "publish", &cases, Unit::Bytes);
        bench_cases(c, "publish", &cases, Unit::Packets);
    }
}

fn connect(c: &mut Criterion) {
    for version in VERSIONS {
        bench_cases(
            c,
            "connect",
            &[("will-login", connect_case(version))],
            Unit::Packets,
        );
    }
}

fn subscribe(c: &mut Criterion) {
    for version in VERSIONS {
        bench_cases(
            c,
            "subscribe",
            &[("4filters", subscribe_case(version))],
            Unit::Packets,
        );
    }
}

criterion_group!(benches, publish, connect, subscribe);
criterion_main!(benches);
