//! Broker metrics: counters each shard writes alone and anyone may read, their
//! totals, and the Prometheus text rendering served by [`http`].
//!
//! A shard's counters live in one cache-line-aligned block that only that shard's
//! thread writes, so an increment is a plain load and store (no locked
//! read-modify-write) and readers on other threads see a recent value. Gauges that
//! would cost a walk over every session (queued messages, sessions) are computed by
//! each shard on request, at most once per tick, never on the message path.

pub mod http;

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::protocol::{QoS, ReasonCode};

/// A counter or gauge written by one thread.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one. Only the owning shard's thread calls this.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`. A load and a store rather than `fetch_add`: there is one writer.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a message was not delivered to a subscriber that matched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCause {
    /// QoS 0 dropped: the client's queue was full or the client offline.
    QueueFullQoS0 = 0,
    /// QoS 1/2 dropped: the client's queue was full of QoS 1/2 messages.
    QueueFull = 1,
    /// The message's expiry interval passed while it waited.
    Expired = 2,
    /// Larger than the client's Maximum Packet Size.
    TooLarge = 3,
    /// No member of a shared subscription group could take it.
    NoSharedMember = 4,
}

impl DropCause {
    pub const ALL: [DropCause; 5] = [
        DropCause::QueueFullQoS0,
        DropCause::QueueFull,
        DropCause::Expired,
        DropCause::TooLarge,
        DropCause::NoSharedMember,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropCause::QueueFullQoS0 => "queue_full_qos0",
            DropCause::QueueFull => "queue_full",
            DropCause::Expired => "expired",
            DropCause::TooLarge => "too_large",
            DropCause::NoSharedMember => "no_shared_member",
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectKind {
    /// DISCONNECT from the client (normal, or 0x04 with will).
    Client(ReasonCode),
    /// Closed by the broker with this reason (sent as DISCONNECT to v5 clients).
    Server(ReasonCode),
    /// The socket closed or failed without DISCONNECT.
    Lost,
}

/// One shard's counters and gauges.
#[repr(align(128))]
#[derive(Debug)]
pub struct ShardMetrics {
    /// Connections past CONNECT now (gauge).
    pub connections: Counter,
    /// Highest `connections` seen.
    pub connections_peak: Counter,
    /// CONNECTs accepted.
    pub connects: Counter,
    /// CONNECTs refused, by CONNACK reason code.
    pub refused: [Counter; 256],
    /// Connections closed by the broker, by reason code.
    pub server_disconnects: [Counter; 256],
    /// DISCONNECT from clients, by reason code.
    pub client_disconnects: [Counter; 256],
    /// Connections lost without DISCONNECT.
    pub lost: Counter,
    /// Authentication failures (CONNACK 0x86, 0x87, 0x8C; failed re-authentication).
    pub auth_failures: Counter,
    /// PUBLISH packets received from clients, by QoS.
    pub publish_in: [Counter; 3],
    /// Payload bytes of those.
    pub publish_bytes_in: [Counter; 3],
    /// PUBLISH packets written to clients, by QoS.
    pub publish_out: [Counter; 3],
    pub publish_bytes_out: [Counter; 3],
    /// Bytes read from and written to client sockets.
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    /// Messages not delivered to a matching subscriber, by cause.
    pub dropped: [Counter; 5],
    /// Publishes received on this shard that matched no subscriber on any shard.
    pub unmatched: Counter,
    /// Messages sent to and received from other shards.
    pub mesh_out: Counter,
    pub mesh_in: Counter,
    /// Sessions ended by their expiry interval.
    pub sessions_expired: Counter,
    /// Gauges computed on request (see [`Registry::refresh_gauges`]).
    pub sessions: Counter,
    /// Connections parked (idle, without a task; see `transport::park`).
    pub parked: Counter,
    pub queued: Counter,
    pub inflight: Counter,
    pub subscriptions: Counter,
    pub retained: Counter,
    /// The last gauge request this shard answered.
    pub gauge_epoch: Counter,
}

impl Default for ShardMetrics {
    fn default() -> ShardMetrics {
        ShardMetrics {
            connections: Counter::default(),
            connections_peak: Counter::default(),
            connects: Counter::default(),
            refused: std::array::from_fn(|_| Counter::default()),
            server_disconnects: std::array::from_fn(|_| Counter::default()),
            client_disconnects: std::array::from_fn(|_| Counter::default()),
            lost: Counter::default(),
            auth_failures: Counter::default(),
            publish_in: Default::default(),
            publish_bytes_in: Default::default(),
            publish_out: Default::default(),
            publish_bytes_out: Default::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            dropped: Default::default(),
            unmatched: Counter::default(),
            mesh_out: Counter::default(),
            mesh_in: Counter::default(),
            sessions_expired: Counter::default(),
            sessions: Counter::default(),
            parked: Counter::default(),
            queued: Counter::default(),
            inflight: Counter::default(),
            subscriptions: Counter::default(),
            retained: Counter::default(),
            gauge_epoch: Counter::default(),
        }
    }
}

impl ShardMetrics {
    #[inline]
    pub fn published(&self, qos: QoS, payload: usize) {
        self.publish_in[qos as usize].inc();
        self.publish_bytes_in[qos as usize].add(payload as u64);
    }

    #[inline]
    pub fn dropped(&self, cause: DropCause, n: u64) {
        if n > 0 {
            self.dropped[cause as usize].add(n);
        }
    }

    pub fn refused(&self, reason: ReasonCode) {
        self.refused[reason as u8 as usize].inc();
        if is_auth_failure(reason) {
            self.auth_failures.inc();
        }
    }

    pub fn disconnected(&self, kind: DisconnectKind) {
        match kind {
            DisconnectKind::Client(r) => self.client_disconnects[r as u8 as usize].inc(),
            DisconnectKind::Server(r) => self.server_disconnects[r as u8 as usize].inc(),
            DisconnectKind::Lost => self.lost.inc(),
        }
    }

    pub fn connection_opened(&self) {
        self.connects.inc();
        let n = self.connections.get() + 1;
        self.connections.set(n);
        if n > self.connections_peak.get() {
            self.connections_peak.set(n);
        }
    }

    pub fn connection_closed(&self) {
        self.connections
            .set(self.connections.get().saturating_sub(1));
    }
}

/// Reason codes that mean the client failed to authenticate.
pub fn is_auth_failure(reason: ReasonCode) -> bool {
    matches!(
        reason,
        ReasonCode::BadUserNameOrPassword
            | ReasonCode::NotAuthorized
            | ReasonCode::BadAuthenticationMethod
    )
}

/// Every shard's metrics, shared by the shards, the HTTP endpoint and `$SYS`.
#[derive(Debug)]
pub struct Registry {
    shards: Box<[ShardMetrics]>,
    /// Raised to ask every shard to recompute its gauges.
    gauge_request: AtomicU64,
}

/// Totals over every shard, the figures `$SYS` publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub connections: u64,
    pub connections_peak: u64,
    pub connects: u64,
    pub sessions: u64,
    pub sessions_expired: u64,
    pub publish_in: u64,
    pub publish_out: u64,
    pub publish_bytes_in: u64,
    pub publish_bytes_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub dropped: u64,
    pub queued: u64,
    pub inflight: u64,
    pub subscriptions: u64,
    /// The retained store is replicated on every shard: shard 0's count.
    pub retained: u64,
}

impl Registry {
    pub fn new(shards: usize) -> Registry {
        Registry {
            shards: (0..shards).map(|_| ShardMetrics::default()).collect(),
            gauge_request: AtomicU64::new(0),
        }
    }

    pub fn shard(&self, id: usize) -> &ShardMetrics {
        &self.shards[id]
    }

    pub fn shards(&self) -> &[ShardMetrics] {
        &self.shards
    }

    /// Asks every shard to recompute its gauges and waits, up to `timeout`, until
    /// each has (a shard answers at its next tick). Returns whether all answered.
    /// Blocks the calling thread: not for use on a shard.
    pub fn refresh_gauges(&self, timeout: Duration) -> bool {
        let epoch = self.request_gauges();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.gauges_answered(epoch) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asks every shard to recompute its gauges at its next tick; returns the
    /// request's number for [`Registry::gauges_answered`].
    pub fn request_gauges(&self) -> u64 {
        self.gauge_request.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Whether every shard has answered request `epoch`.
    pub fn gauges_answered(&self, epoch: u64) -> bool {
        self.shards.iter().all(|s| s.gauge_epoch.get() >= epoch)
    }

    /// The gauge request a shard should answer, if it has not yet.
    pub fn gauge_requested(&self, shard: usize) -> Option<u64> {
        let req = self.gauge_request.load(Ordering::Relaxed);
        (req > self.shards[shard].gauge_epoch.get()).then_some(req)
    }

    /// Sums every shard's counters.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in self.shards.iter() {
            t.connections += s.connections.get();
            t.connections_peak += s.connections_peak.get();
            t.connects += s.connects.get();
            t.sessions += s.sessions.get();
            t.sessions_expired += s.sessions_expired.get();
            t.publish_in += sum(&s.publish_in);
            t.publish_out += sum(&s.publish_out);
            t.publish_bytes_in += sum(&s.publish_bytes_in);
            t.publish_bytes_out += sum(&s.publish_bytes_out);
            t.bytes_in += s.bytes_in.get();
            t.bytes_out += s.bytes_out.get();
            t.dropped += sum(&s.dropped);
            t.queued += s.queued.get();
            t.inflight += s.inflight.get();
            t.subscriptions += s.subscriptions.get();
        }
        t.retained = self.shards.first().map_or(0, |s| s.retained.get());
        t
    }

    /// The Prometheus text exposition (format 0.0.4): each family once, with a
    /// sample per shard and, for counters, a total without the shard label.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP ringmq_{name} {help}");
            let _ = writeln!(out, "# TYPE ringmq_{name} {kind}");
            for (labels, v) in samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "ringmq_{name} {v}");
                } else {
                    let _ = writeln!(out, "ringmq_{name}{{{labels}}} {v}");
                }
            }
        };
        let per_shard = |f: &dyn Fn(&ShardMetrics) -> u64| -> Vec<(String, u64)> {
            self.shards
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("shard=\"{i}\""), f(s)))
                .collect()
        };
        let simple: [Family; 14] = [
            (
                "connections",
                "gauge",
                "Client connections past CONNECT.",
                |s| s.connections.get(),
            ),
            (
                "connections_parked",
                "gauge",
                "Idle connections parked: no task, their sockets watched by epoll.",
                |s| s.parked.get(),
            ),
            ("connects_total", "counter", "CONNECTs accepted.", |s| {
                s.connects.get()
            }),
            (
                "connections_lost_total",
                "counter",
                "Connections that ended without DISCONNECT.",
                |s| s.lost.get(),
            ),
            (
                "auth_failures_total",
                "counter",
                "Failed authentications.",
                |s| s.auth_failures.get(),
            ),
            (
                "bytes_received_total",
                "counter",
                "Bytes read from client sockets.",
                |s| s.bytes_in.get(),
            ),
            (
                "bytes_sent_total",
                "counter",
                "Bytes written to client sockets.",
                |s| s.bytes_out.get(),
            ),
            (
                "messages_unmatched_total",
                "counter",
                "Publishes that matched no subscriber on any shard.",
                |s| s.unmatched.get(),
            ),
            (
                "cross_shard_messages_sent_total",
                "counter",
                "Messages sent to other shards.",
                |s| s.mesh_out.get(),
            ),
            (
                "cross_shard_messages_received_total",
                "counter",
                "Messages received from other shards.",
                |s| s.mesh_in.get(),
            ),
            (
                "sessions_expired_total",
                "counter",
                "Sessions ended by their expiry interval.",
                |s| s.sessions_expired.get(),
            ),
            ("sessions", "gauge", "Sessions, connected or not.", |s| {
                s.sessions.get()
            }),
            (
                "queued_messages",
                "gauge",
                "Messages waiting to be sent to clients.",
                |s| s.queued.get(),
            ),
            (
                "inflight_messages",
                "gauge",
                "QoS 1/2 messages sent and not yet acknowledged.",
                |s| s.inflight.get(),
            ),
        ];
        for (name, kind, help, f) in simple {
            let mut samples = per_shard(&f);
            if kind == "counter" || name.starts_with("connections") {
                samples.push((String::new(), self.shards.iter().map(f).sum()));
            }
            family(name, kind, help, &samples);
        }
        family(
            "subscriptions",
            "gauge",
            "Subscriptions (shared ones included).",
            &per_shard(&|s| s.subscriptions.get()),
        );
        family(
            "retained_messages",
            "gauge",
            "Retained messages (each shard holds a full replica).",
            &per_shard(&|s| s.retained.get()),
        );

        // One counter per label value: a sample per shard, then the total.
        let labelled =
            |label: &str, values: &[(&str, usize)], get: &dyn Fn(&ShardMetrics, usize) -> u64| {
                let mut v: Vec<(String, u64)> = Vec::new();
                for &(value, i) in values {
                    for (shard, s) in self.shards.iter().enumerate() {
                        v.push((format!("shard=\"{shard}\",{label}=\"{value}\""), get(s, i)));
                    }
                    let total = self.shards.iter().map(|s| get(s, i)).sum();
                    v.push((format!("{label}=\"{value}\""), total));
                }
                v
            };
        let qos = [("0", 0), ("1", 1), ("2", 2)];
        let by_qos: [(&str, &str, PerQoS); 4] = [
            (
                "messages_received_total",
                "PUBLISH packets received from clients.",
                |s| &s.publish_in,
            ),
            (
                "payload_bytes_received_total",
                "Payload bytes of PUBLISH packets received.",
                |s| &s.publish_bytes_in,
            ),
            (
                "messages_sent_total",
                "PUBLISH packets sent to clients.",
                |s| &s.publish_out,
            ),
            (
                "payload_bytes_sent_total",
                "Payload bytes of PUBLISH packets sent.",
                |s| &s.publish_bytes_out,
            ),
        ];
        for (name, help, arr) in by_qos {
            family(
                name,
                "counter",
                help,
                &labelled("qos", &qos, &|s, q| arr(s)[q].get()),
            );
        }

        let causes: Vec<(&str, usize)> = DropCause::ALL
            .iter()
            .map(|&c| (c.label(), c as usize))
            .collect();
        family(
            "messages_dropped_total",
            "counter",
            "Messages not delivered to a matching subscriber, by cause.",
            &labelled("cause", &causes, &|s, c| s.dropped[c].get()),
        );

        let by_reason: [(&str, &str, &str, PerReason); 3] = [
            (
                "connects_refused_total",
                "CONNECTs refused, by CONNACK reason.",
                "success",
                |s| &s.refused,
            ),
            (
                "disconnects_total",
                "DISCONNECTs from clients, by reason.",
                "normal_disconnection",
                |s| &s.client_disconnects,
            ),
            (
                "server_disconnects_total",
                "Connections closed by the broker, by reason.",
                "normal_disconnection",
                |s| &s.server_disconnects,
            ),
        ];
        for (name, help, zero, arr) in by_reason {
            // Only the reason codes that occurred.
            let reasons: Vec<(&str, usize)> = (0..=255u8)
                .filter(|&code| {
                    self.shards
                        .iter()
                        .any(|s| arr(s)[usize::from(code)].get() > 0)
                })
                .map(|code| {
                    let label = match code {
                        0 => zero,
                        _ => ReasonCode::from_u8(code).map_or("unknown", reason_label),
                    };
                    (label, usize::from(code))
                })
                .collect();
            family(
                name,
                "counter",
                help,
                &labelled("reason", &reasons, &|s, c| arr(s)[c].get()),
            );
        }
        out
    }
}

/// A metric family read from one counter per shard: name, type, help, reader.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ShardMetrics) -> u64,
);

/// A shard's counters by QoS, and by reason code.
type PerQoS = fn(&ShardMetrics) -> &[Counter; 3];
type PerReason = fn(&ShardMetrics) -> &[Counter; 256];

fn sum(counters: &[Counter]) -> u64 {
    counters.iter().map(Counter::get).sum()
}

/// A reason code as a Prometheus label value: its name in snake case.
pub fn reason_label(reason: ReasonCode) -> &'static str {
    use ReasonCode::*;
    match reason {
        Success => "success",
        GrantedQoS1 => "granted_qos1",
        GrantedQoS2 => "granted_qos2",
        DisconnectWithWillMessage => "disconnect_with_will_message",
        NoMatchingSubscribers => "no_matching_subscribers",
        NoSubscriptionExisted => "no_subscription_existed",
        ContinueAuthentication => "continue_authentication",
        ReAuthenticate => "re_authenticate",
        UnspecifiedError => "unspecified_error",
        MalformedPacket => "malformed_packet",
        ProtocolError => "protocol_error",
        ImplementationSpecificError => "implementation_specific_error",
        UnsupportedProtocolVersion => "unsupported_protocol_version",
        ClientIdentifierNotValid => "client_identifier_not_valid",
        BadUserNameOrPassword => "bad_user_name_or_password",
        NotAuthorized => "not_authorized",
        ServerUnavailable => "server_unavailable",
        ServerBusy => "server_busy",
        Banned => "banned",
        ServerShuttingDown => "server_shutting_down",
        BadAuthenticationMethod => "bad_authentication_method",
        KeepAliveTimeout => "keep_alive_timeout",
        SessionTakenOver => "session_taken_over",
        TopicFilterInvalid => "topic_filter_invalid",
        TopicNameInvalid => "topic_name_invalid",
        PacketIdentifierInUse => "packet_identifier_in_use",
        PacketIdentifierNotFound => "packet_identifier_not_found",
        ReceiveMaximumExceeded => "receive_maximum_exceeded",
        TopicAliasInvalid => "topic_alias_invalid",
        PacketTooLarge => "packet_too_large",
        MessageRateTooHigh => "message_rate_too_high",
        QuotaExceeded => "quota_exceeded",
        AdministrativeAction => "administrative_action",
        PayloadFormatInvalid => "payload_format_invalid",
        RetainNotSupported => "retain_not_supported",
        QoSNotSupported => "qos_not_supported",
        UseAnotherServer => "use_another_server",
        ServerMoved => "server_moved",
        SharedSubscriptionsNotSupported => "shared_subscriptions_not_supported",
        ConnectionRateExceeded => "connection_rate_exceeded",
        MaximumConnectTime => "maximum_connect_time",
        SubscriptionIdentifiersNotSupported => "subscription_identifiers_not_supported",
        WildcardSubscriptionsNotSupported => "wildcard_subscriptions_not_supported",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_shards_and_render_names_each_family_once() {
        let r = Registry::new(2);
        r.shard(0).published(QoS::AtLeastOnce, 10);
        r.shard(1).published(QoS::AtLeastOnce, 5);
        r.shard(1).refused(ReasonCode::NotAuthorized);
        r.shard(0).dropped(DropCause::Expired, 3);
        r.shard(0).connection_opened();
        r.shard(0).connection_opened();
        r.shard(0).connection_closed();
        let t = r.totals();
        assert_eq!((t.publish_in, t.publish_bytes_in, t.dropped), (2, 15, 3));
        assert_eq!((t.connections, t.connections_peak, t.connects), (1, 2, 2));
        let text = r.render();
        assert!(text.contains("ringmq_messages_received_total{qos=\"1\"} 2\n"));
        assert!(text.contains("ringmq_messages_received_total{shard=\"1\",qos=\"1\"} 1\n"));
        assert!(text.contains("ringmq_connects_refused_total{reason=\"not_authorized\"} 1\n"));
        assert!(text.contains("ringmq_auth_failures_total 1\n"));
        assert!(text.contains("ringmq_messages_dropped_total{cause=\"expired\"} 3\n"));
        let mut seen = std::collections::HashSet::new();
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            assert!(seen.insert(line.to_string()), "{line} repeated");
        }
    }
}
