//! Property-based round trip of every packet type in every protocol version: a
//! generated packet encodes to `encoded_len` bytes, and those bytes decode, consuming
//! exactly the packet, to the packet we expect. In 3.1 and 3.1.1 the expected packet is
//! the generated one with its v5-only parts (properties, reason codes, subscription
//! options other than QoS) normalized away, computed explicitly by `expected`.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use ringmq::protocol::{
    Auth, ByteStr, ConnAck, Connect, DecodeError, Disconnect, EncodeError, FixedHeader, Packet,
    Properties, Property, PropertyContext, PropertyId, ProtocolVersion, PubAck, PubComp, PubRec,
    PubRel, Publish, QoS, ReasonCode, ReasonContext, RetainHandling, SubAck, Subscribe,
    SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe, Will, MAX_VAR_INT,
};

/// A complete PINGREQ placed after the packet under test: decoding must stop exactly
/// at the packet's end and leave this intact.
const TRAILER: [u8; 2] = [0xC0, 0x00];

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V3_1),
        Just(ProtocolVersion::V3_1_1),
        Just(ProtocolVersion::V5),
    ]
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce),
    ]
}

/// A UTF-8 Encoded String as MQTT allows it: any characters but U+0000, including
/// multi-byte and supplementary-plane ones.
fn string() -> impl Strategy<Value = ByteStr> {
    "[^\\x00]{0,12}".prop_map(ByteStr::from)
}

/// A topic name: at least one character, no wildcards, no U+0000.
fn topic_name() -> impl Strategy<Value = ByteStr> {
    "[^\\x00+#]{1,12}".prop_map(ByteStr::from)
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..16).prop_map(Bytes::from)
}

/// A payload that is sometimes large enough to need a two- or three-byte remaining length.
fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => vec(any::<u8>(), 0..40),
        1 => vec(any::<u8>(), 100..300),
        1 => vec(any::<u8>(), 16_380..16_500),
    ]
    .prop_map(Bytes::from)
}

fn pkid() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

/// One topic filter level without wildcards.
fn plain_level() -> impl Strategy<Value = String> {
    "[^\\x00+#/]{0,6}"
}

/// A valid non-shared topic filter: levels, some of them `+`, optionally ending in `#`.
fn plain_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => plain_level(), 1 => Just("+".to_string())];
    prop_oneof![
        1 => Just("#".to_string()),
        6 => (vec(level, 1..4), any::<bool>()).prop_map(|(levels, multi)| {
            let mut filter = levels.join("/");
            if multi {
                filter.push_str("/#");
            }
            filter
        }),
    ]
    .prop_filter("a topic filter is at least one character", |f| {
        !f.is_empty()
    })
}

/// A valid topic filter and whether it is a shared subscription.
fn topic_filter() -> impl Strategy<Value = (ByteStr, bool)> {
    prop_oneof![
        3 => plain_filter().prop_map(|f| (ByteStr::from(f), false)),
        1 => ("[^\\x00+#/]{1,6}", plain_filter())
            .prop_map(|(group, f)| (ByteStr::from(format!("$share/{group}/{f}")), true)),
    ]
}

/// A subscription identifier from each of the four variable byte integer widths.
fn subscription_identifier() -> impl Strategy<Value = u32> {
    prop_oneof![
        1..128u32,
        128..16_384u32,
        16_384..2_097_152u32,
        2_097_152..=MAX_VAR_INT
    ]
}

/// A valid value for the property `id` (spec 2.2.2.2 and the property's own section).
fn property(id: PropertyId) -> BoxedStrategy<Property> {
    use Property as P;
    use PropertyId as I;
    let flag = || 0u8..=1;
    match id {
        I::PayloadFormatIndicator => flag().prop_map(P::PayloadFormatIndicator).boxed(),
        I::MessageExpiryInterval => any::<u32>().prop_map(P::MessageExpiryInterval).boxed(),
        I::ContentType => string().prop_map(P::ContentType).boxed(),
        I::ResponseTopic => topic_name().prop_map(P::ResponseTopic).boxed(),
        I::CorrelationData => binary().prop_map(P::CorrelationData).boxed(),
        I::SubscriptionIdentifier => subscription_identifier()
            .prop_map(P::SubscriptionIdentifier)
            .boxed(),
        I::SessionExpiryInterval => any::<u32>().prop_map(P::SessionExpiryInterval).boxed(),
        I::AssignedClientIdentifier => string().prop_map(P::AssignedClientIdentifier).boxed(),
        I::ServerKeepAlive => any::<u16>().prop_map(P::ServerKeepAlive).boxed(),
        I::AuthenticationMethod => string().prop_map(P::AuthenticationMethod).boxed(),
        I::AuthenticationData => binary().prop_map(P::AuthenticationData).boxed(),
        I::RequestProblemInformation => flag().prop_map(P::RequestProblemInformation).boxed(),
        I::WillDelayInterval => any::<u32>().prop_map(P::WillDelayInterval).boxed(),
        I::RequestResponseInformation => flag().prop_map(P::RequestResponseInformation).boxed(),
        I::ResponseInformation => string().prop_map(P::ResponseInformation).boxed(),
        I::ServerReference => string().prop_map(P::ServerReference).boxed(),
        I::ReasonString => string().prop_map(P::ReasonString).boxed(),
        I::ReceiveMaximum => (1..=u16::MAX).prop_map(P::ReceiveMaximum).boxed(),
        I::TopicAliasMaximum => any::<u16>().prop_map(P::TopicAliasMaximum).boxed(),
        I::TopicAlias => (1..=u16::MAX).prop_map(P::TopicAlias).boxed(),
        I::MaximumQoS => flag().prop_map(P::MaximumQoS).boxed(),
        I::RetainAvailable => flag().prop_map(P::RetainAvailable).boxed(),
        I::UserProperty => (string(), string())
            .prop_map(|(k, v)| P::UserProperty(k, v))
            .boxed(),
        I::MaximumPacketSize => (1..=u32::MAX).prop_map(P::MaximumPacketSize).boxed(),
        I::WildcardSubscriptionAvailable => {
            flag().prop_map(P::WildcardSubscriptionAvailable).boxed()
        }
        I::SubscriptionIdentifierAvailable => {
            flag().prop_map(P::SubscriptionIdentifierAvailable).boxed()
        }
        I::SharedSubscriptionAvailable => flag().prop_map(P::SharedSubscriptionAvailable).boxed(),
    }
}

/// A property list for `ctx`: only properties allowed there, each at most once unless
/// repeatable there (then up to three times), in any order.
fn properties(ctx: PropertyContext) -> BoxedStrategy<Properties> {
    let groups: Vec<BoxedStrategy<Vec<Property>>> = PropertyId::ALL
        .iter()
        .copied()
        .filter(|id| id.allowed_in(ctx))
        .map(|id| {
            let most = if id.repeatable_in(ctx) { 3 } else { 1 };
            vec(property(id), 0..=most).boxed()
        })
        .collect();
    assert!(!groups.is_empty(), "no property is allowed in {ctx:?}");
    let some = groups
        .prop_map(|groups| groups.concat())
        .prop_shuffle()
        .prop_map(Properties::from_vec);
    prop_oneof![1 => Just(Properties::new()), 3 => some].boxed()
}

/// Any reason code the specification allows in `ctx`.
fn reason(ctx: ReasonContext) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = (0..=u8::MAX)
        .filter_map(ReasonCode::from_u8)
        .filter(|c| c.valid_in(ctx))
        .collect();
    assert!(!codes.is_empty(), "no reason code is valid in {ctx:?}");
    proptest::sample::select(codes)
}

fn will() -> impl Strategy<Value = Will> {
    (
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        properties(PropertyContext::Will),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
}

fn connect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        any::<u16>(),
        properties(PropertyContext::Connect),
        string(),
        proptest::option::of(will()),
        proptest::option::of(string()),
        proptest::option::of(binary()),
    )
        .prop_map(
            move |(clean_start, keep_alive, properties, client_id, will, username, password)| {
                Packet::Connect(Box::new(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    properties,
                    client_id,
                    will,
                    username,
                    password,
                }))
            },
        )
}

fn connack() -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        reason(ReasonContext::ConnAck),
        properties(PropertyContext::ConnAck),
    )
        .prop_map(|(session_present, reason, properties)| {
            Packet::ConnAck(ConnAck {
                session_present,
                reason,
                properties,
            })
        })
}

/// A PUBLISH; in v5 the topic may be empty when a Topic Alias names it. The packet
/// identifier of a QoS 0 PUBLISH is arbitrary: it is not on the wire.
fn publish(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        prop_oneof![4 => topic_name().prop_map(Some), 1 => Just(None)],
        any::<u16>(),
        properties(PropertyContext::Publish),
        payload(),
        1..=u16::MAX,
    )
        .prop_map(
            move |(dup, qos, retain, topic, raw_pkid, mut properties, payload, alias)| {
                let pkid = if qos == QoS::AtMostOnce {
                    raw_pkid
                } else {
                    raw_pkid.max(1)
                };
                let topic = match topic {
                    Some(t) => t,
                    None if v.is_v5() => {
                        if properties.topic_alias().is_none() {
                            properties.push(Property::TopicAlias(alias));
                        }
                        ByteStr::default()
                    }
                    None => ByteStr::from("t"),
                };
                Packet::Publish(Publish {
                    dup,
                    qos,
                    retain,
                    topic,
                    pkid,
                    properties,
                    payload,
                })
            },
        )
}

fn ack(kind: u8) -> impl Strategy<Value = Packet> {
    let (rctx, pctx) = match kind {
        4 => (ReasonContext::PubAck, PropertyContext::PubAck),
        5 => (ReasonContext::PubRec, PropertyContext::PubRec),
        6 => (ReasonContext::PubRel, PropertyContext::PubRel),
        _ => (ReasonContext::PubComp, PropertyContext::PubComp),
    };
    (pkid(), reason(rctx), properties(pctx)).prop_map(
        move |(pkid, reason, properties)| match kind {
            4 => Packet::PubAck(PubAck {
                pkid,
                reason,
                properties,
            }),
            5 => Packet::PubRec(PubRec {
                pkid,
                reason,
                properties,
            }),
            6 => Packet::PubRel(PubRel {
                pkid,
                reason,
                properties,
            }),
            _ => Packet::PubComp(PubComp {
                pkid,
                reason,
                properties,
            }),
        },
    )
}

fn subscribe_filter() -> impl Strategy<Value = SubscribeFilter> {
    let retain_handling = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendAtSubscribeIfNew),
        Just(RetainHandling::DoNotSend),
    ];
    (
        topic_filter(),
        qos(),
        any::<bool>(),
        any::<bool>(),
        retain_handling,
    )
        .prop_map(
            |((filter, shared), qos, no_local, retain_as_published, retain_handling)| {
                SubscribeFilter {
                    filter,
                    options: SubscriptionOptions {
                        qos,
                        // No Local on a shared subscription is a protocol error (v5 3.8.3.1).
                        no_local: no_local && !shared,
                        retain_as_published,
                        retain_handling,
                    },
                }
            },
        )
}

fn subscribe() -> impl Strategy<Value = Packet> {
    (
        pkid(),
        properties(PropertyContext::Subscribe),
        vec(subscribe_filter(), 1..5),
    )
        .prop_map(|(pkid, properties, filters)| {
            Packet::Subscribe(Subscribe {
                pkid,
                properties,
                filters,
            })
        })
}

fn suback() -> impl Strategy<Value = Packet> {
    (
        pkid(),
        properties(PropertyContext::SubAck),
        vec(reason(ReasonContext::SubAck), 1..5),
    )
        .prop_map(|(pkid, properties, reasons)| {
            Packet::SubAck(SubAck {
                pkid,
                properties,
                reasons,
            })
        })
}

fn unsubscribe() -> impl Strategy<Value = Packet> {
    (
        pkid(),
        properties(PropertyContext::Unsubscribe),
        vec(topic_filter().prop_map(|(f, _)| f), 1..5),
    )
        .prop_map(|(pkid, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                pkid,
                properties,
                filters,
            })
        })
}

fn unsuback() -> impl Strategy<Value = Packet> {
    (
        pkid(),
        properties(PropertyContext::UnsubAck),
        vec(reason(ReasonContext::UnsubAck), 1..5),
    )
        .prop_map(|(pkid, properties, reasons)| {
            Packet::UnsubAck(UnsubAck {
                pkid,
                properties,
                reasons,
            })
        })
}

fn disconnect() -> impl Strategy<Value = Packet> {
    (
        reason(ReasonContext::Disconnect),
        properties(PropertyContext::Disconnect),
    )
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
}

fn auth() -> impl Strategy<Value = Packet> {
    (
        reason(ReasonContext::Auth),
        properties(PropertyContext::Auth),
    )
        .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }))
}

/// Any packet that exists in `v`.
fn packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        connect(v),
        connack(),
        publish(v),
        ack(4),
        ack(5),
        ack(6),
        ack(7),
        subscribe(),
        suback(),
        unsubscribe(),
        unsuback(),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(),
    ];
    if v.is_v5() {
        prop_oneof![14 => common, 1 => auth()].boxed()
    } else {
        common.boxed()
    }
}

/// The MQTT 3.1.1 CONNACK return code (table 3.1) that carries a v5 reason, read back
/// as a reason code: the six v3 outcomes, the rest as "server unavailable".
fn v3_connack_reason(reason: ReasonCode) -> ReasonCode {
    match reason {
        ReasonCode::Success => ReasonCode::Success,
        ReasonCode::UnsupportedProtocolVersion => ReasonCode::UnsupportedProtocolVersion,
        ReasonCode::ClientIdentifierNotValid => ReasonCode::ClientIdentifierNotValid,
        ReasonCode::BadUserNameOrPassword | ReasonCode::BadAuthenticationMethod => {
            ReasonCode::BadUserNameOrPassword
        }
        ReasonCode::NotAuthorized | ReasonCode::Banned => ReasonCode::NotAuthorized,
        _ => ReasonCode::ServerUnavailable,
    }
}

/// The MQTT 3.1.1 SUBACK return code (3.9.3) read back: a granted QoS or 0x80 failure.
fn v3_suback_reason(reason: ReasonCode) -> ReasonCode {
    match reason {
        ReasonCode::Success | ReasonCode::GrantedQoS1 | ReasonCode::GrantedQoS2 => reason,
        _ => ReasonCode::UnspecifiedError,
    }
}

/// What `p`, encoded at `v`, must decode to.
fn expected(p: &Packet, v: ProtocolVersion) -> Packet {
    let v5 = v.is_v5();
    let none = Properties::new;
    match p.clone() {
        Packet::Connect(mut c) => {
            if !c.protocol.is_v5() {
                c.properties = none();
                if let Some(w) = &mut c.will {
                    w.properties = none();
                }
            }
            Packet::Connect(c)
        }
        Packet::ConnAck(mut c) if !v5 => {
            c.properties = none();
            c.reason = v3_connack_reason(c.reason);
            // MQTT 3.1 has no Session Present flag: that byte is reserved.
            if v == ProtocolVersion::V3_1 {
                c.session_present = false;
            }
            Packet::ConnAck(c)
        }
        Packet::Publish(mut p) => {
            // QoS 0 has no packet identifier and must not carry DUP (3.3.1.1).
            if p.qos == QoS::AtMostOnce {
                p.pkid = 0;
                p.dup = false;
            }
            if !v5 {
                p.properties = none();
            }
            Packet::Publish(p)
        }
        Packet::PubAck(a) if !v5 => Packet::PubAck(PubAck::new(a.pkid)),
        Packet::PubRec(a) if !v5 => Packet::PubRec(PubRec::new(a.pkid)),
        Packet::PubRel(a) if !v5 => Packet::PubRel(PubRel::new(a.pkid)),
        Packet::PubComp(a) if !v5 => Packet::PubComp(PubComp::new(a.pkid)),
        Packet::Subscribe(mut s) if !v5 => {
            s.properties = none();
            for f in &mut s.filters {
                f.options = SubscriptionOptions {
                    qos: f.options.qos,
                    ..SubscriptionOptions::default()
                };
            }
            Packet::Subscribe(s)
        }
        Packet::SubAck(mut s) if !v5 => {
            s.properties = none();
            s.reasons = s.reasons.into_iter().map(v3_suback_reason).collect();
            Packet::SubAck(s)
        }
        Packet::Unsubscribe(mut u) if !v5 => {
            u.properties = none();
            Packet::Unsubscribe(u)
        }
        Packet::UnsubAck(u) if !v5 => Packet::UnsubAck(UnsubAck::new(u.pkid, Vec::new())),
        Packet::Disconnect(_) if !v5 => {
            Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION))
        }
        other => other,
    }
}

/// Whether `p` cannot be written at `v` at all, and the error the encoder must give.
fn unencodable(p: &Packet, v: ProtocolVersion) -> Option<EncodeError> {
    match p {
        Packet::Auth(_) if !v.is_v5() => Some(EncodeError::NotInVersion),
        // 3.1.1 [MQTT-3.1.2-22]: no password without a user name.
        Packet::Connect(c)
            if !c.protocol.is_v5() && c.password.is_some() && c.username.is_none() =>
        {
            Some(EncodeError::NotInVersion)
        }
        _ => None,
    }
}

fn check_round_trip(p: &Packet, v: ProtocolVersion) -> Result<(), TestCaseError> {
    let mut out = BytesMut::new();
    if let Some(err) = unencodable(p, v) {
        prop_assert_eq!(p.encode(v, &mut out), Err(err));
        prop_assert!(out.is_empty(), "a failed encode wrote {:?}", out);
        return Ok(());
    }

    // Encoding appends: whatever is already in the buffer stays in front.
    out.extend_from_slice(b"xyz");
    prop_assert_eq!(p.encode(v, &mut out), Ok(()));
    prop_assert_eq!(&out[..3], b"xyz");
    let wire = out.split_off(3).freeze();
    prop_assert_eq!(p.encoded_len(v), wire.len());
    if let Packet::Publish(publish) = p {
        prop_assert_eq!(publish.encoded_len(v), wire.len());
    }
    let header = FixedHeader::parse(&wire);
    prop_assert!(
        matches!(header, Ok(Some(h)) if h.frame_len() == wire.len()),
        "fixed header {:?} does not frame the {} bytes written",
        header,
        wire.len()
    );

    let want = expected(p, v);
    let mut buf = BytesMut::from(&wire[..]);
    buf.extend_from_slice(&TRAILER);
    let got = Packet::decode(&mut buf, v, u32::MAX);
    prop_assert_eq!(got, Ok(Some(want.clone())));
    prop_assert_eq!(
        &buf[..],
        &TRAILER[..],
        "decode did not consume exactly the packet"
    );

    // The decoded packet writes the very same bytes again.
    let mut again = BytesMut::new();
    prop_assert_eq!(want.encode(v, &mut again), Ok(()));
    prop_assert_eq!(&again[..], &wire[..]);

    // The maximum packet size counts the whole packet, fixed header included.
    let len = u32::try_from(wire.len()).expect("test packets are small");
    let mut exact = BytesMut::from(&wire[..]);
    prop_assert_eq!(Packet::decode(&mut exact, v, len), Ok(Some(want)));
    let mut over = BytesMut::from(&wire[..]);
    prop_assert_eq!(
        Packet::decode(&mut over, v, len - 1),
        Err(DecodeError::PacketTooLarge {
            size: wire.len(),
            max: len - 1
        })
    );
    Ok(())
}

fn versioned<S: Strategy<Value = Packet> + 'static>(
    make: fn(ProtocolVersion) -> S,
) -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(move |v| (Just(v), make(v)))
}

proptest! {
    #[test]
    fn connect_round_trips((v, p) in versioned(connect)) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn connack_round_trips(v in version(), p in connack()) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn publish_round_trips((v, p) in versioned(publish)) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn puback_round_trips(v in version(), p in ack(4)) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn pubrec_round_trips(v in version(), p in ack(5)) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn pubrel_round_trips(v in version(), p in ack(6)) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn pubcomp_round_trips(v in version(), p in ack(7)) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn subscribe_round_trips(v in version(), p in subscribe()) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn suback_round_trips(v in version(), p in suback()) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn unsubscribe_round_trips(v in version(), p in unsubscribe()) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn unsuback_round_trips(v in version(), p in unsuback()) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn disconnect_round_trips(v in version(), p in disconnect()) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn auth_round_trips_in_v5_and_is_refused_in_v3(v in version(), p in auth()) {
        check_round_trip(&p, v)?;
    }

    #[test]
    fn concatenated_packets_decode_in_order((v, packets) in version().prop_flat_map(|v| {
        (Just(v), vec(packet(v), 1..12))
    })) {
        let packets: Vec<Packet> = packets
            .into_iter()
            .filter(|p| unencodable(p, v).is_none())
            .collect();
        let mut buf = BytesMut::new();
        for p in &packets {
            prop_assert_eq!(p.encode(v, &mut buf), Ok(()));
        }
        let total: usize = packets.iter().map(|p| p.encoded_len(v)).sum();
        prop_assert_eq!(buf.len(), total);
        for p in &packets {
            prop_assert_eq!(Packet::decode(&mut buf, v, u32::MAX), Ok(Some(expected(p, v))));
        }
        prop_assert!(buf.is_empty(), "{} bytes left after the last packet", buf.len());
        prop_assert_eq!(Packet::decode(&mut buf, v, u32::MAX), Ok(None));
    }
}

#[test]
fn ping_packets_round_trip_in_every_version() {
    for v in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        for p in [Packet::PingReq, Packet::PingResp] {
            check_round_trip(&p, v).unwrap_or_else(|e| panic!("{p:?} at {v:?}: {e}"));
        }
    }
}

#[test]
fn dup_is_written_for_qos_1_and_2_but_never_for_qos_0() {
    for v in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        for (qos, pkid, byte1) in [
            (QoS::AtMostOnce, 0, 0x30),
            (QoS::AtLeastOnce, 7, 0x3A),
            (QoS::ExactlyOnce, 7, 0x3C),
        ] {
            let p = Packet::Publish(Publish {
                dup: true,
                pkid,
                ..Publish::new("a", qos, Bytes::new())
            });
            let mut out = BytesMut::new();
            p.encode(v, &mut out).expect("a valid PUBLISH encodes");
            assert_eq!(out[0], byte1, "{qos:?} at {v:?}");
        }
    }
}
