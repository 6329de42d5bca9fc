//! A run's results: the [`Report`] (also the JSON written with `--json`), its
//! verdict on the broker's guarantees, and the summary table printed at the end.
//! `html` renders the same report as one self-contained page; `svg` draws its charts.

pub mod html;
pub mod svg;

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::runner::{bytes, si};
use crate::scenario::Scenario;

/// Latency percentiles over the measured window, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Seconds since the first connection attempt, at the end of this interval.
    pub t: f64,
    /// `connect`, `warmup`, `measure` or `drain`.
    pub phase: String,
    pub published_per_sec: f64,
    pub delivered_per_sec: f64,
    pub connections: u64,
    /// Errors so far (cumulative).
    pub errors: u64,
    /// Latency of messages received in this second.
    pub p50_us: Option<u64>,
    pub p90_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
    pub broker_cpu_percent: Option<f64>,
    pub broker_rss_bytes: Option<u64>,
    pub loadgen_cpu_percent: f64,
}

/// Everything a run measured. Rates are over the measured window; counts over the
/// whole run (warm-up and drain included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub tool: String,
    pub scenario: Scenario,
    pub target: String,
    /// The broker's name, when known (compare runs).
    pub broker: Option<String>,
    pub cores: Vec<usize>,
    pub clients: u64,
    /// Connections that completed their handshakes.
    pub connections: u64,
    pub connect_failed: u64,
    pub connect_secs: f64,
    /// Connections completed per second during the connect phase.
    pub connect_rate: f64,
    /// Seconds from the first connection attempt to the start of publishing (the
    /// origin of the measured timeline is the first connection attempt).
    pub start_secs: f64,
    pub measured_secs: f64,
    pub published: u64,
    pub published_per_sec: f64,
    /// Deliveries owed for what was published.
    pub expected: u64,
    /// First deliveries.
    pub delivered: u64,
    pub delivered_per_sec: f64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub gaps: u64,
    pub late: u64,
    pub unexpected: u64,
    pub untracked: u64,
    /// Messages from another run (a lagging broker's backlog), ignored.
    pub foreign: u64,
    /// Errors after connecting (lost connections, protocol errors, rejected messages).
    pub errors: u64,
    /// The first distinct failure messages.
    pub failures: Vec<String>,
    pub latency_us: Latency,
    pub broker_pid: Option<u32>,
    /// Broker CPU time per delivered message (per published one if none were delivered).
    pub broker_cpu_us_per_msg: Option<f64>,
    /// Broker CPU over the measured window, in percent of one core.
    pub broker_cpu_percent: Option<f64>,
    /// Peak broker resident memory.
    pub broker_rss_bytes: Option<u64>,
    /// Broker resident memory gained per connection while connecting.
    pub broker_rss_per_conn_bytes: Option<f64>,
    /// This generator's CPU time per delivered message.
    pub loadgen_cpu_us_per_msg: Option<f64>,
    pub loadgen_cpu_percent: f64,
    pub loadgen_rss_bytes: u64,
    pub timeline: Vec<Point>,
    /// Broken guarantees: any makes the run fail.
    pub violations: Vec<String>,
    pub warnings: Vec<String>,
    pub ok: bool,
}

impl Report {
    /// Decides which findings are broken guarantees and which are only worth a note.
    /// `shared`: some subscribers share a subscription (order is then per member only).
    pub fn judge(&mut self, shared: bool) {
        let s = &self.scenario;
        let qos = s.delivery_qos();
        let mut v = Vec::new();
        let mut w = Vec::new();
        if self.lost > 0 {
            let msg = format!(
                "{} of {} messages owed to subscribers were never delivered",
                self.lost, self.expected
            );
            if qos >= 1 {
                v.push(format!("QoS {qos}: {msg}"));
            } else {
                w.push(format!("QoS 0: {msg} (allowed at QoS 0)"));
            }
        }
        if self.duplicates > 0 {
            let msg = format!("{} messages were delivered more than once", self.duplicates);
            if qos == 2 {
                v.push(format!("QoS 2: {msg}"));
            } else {
                w.push(format!("QoS {qos}: {msg}"));
            }
        }
        if self.reordered > 0 {
            let msg = format!(
                "{} messages arrived after a later message from the same publisher",
                self.reordered
            );
            if shared {
                w.push(format!("{msg} (across members of a shared subscription)"));
            } else {
                v.push(format!("{msg}: topics must be ordered (MQTT 4.6)"));
            }
        }
        if self.unexpected > 0 {
            v.push(format!(
                "{} messages reached a subscriber whose filters do not match them, had no valid header, or were never sent",
                self.unexpected
            ));
        }
        if self.errors > 0 {
            let first = self
                .failures
                .first()
                .map(|f| format!("; first: {f}"))
                .unwrap_or_default();
            v.push(format!("{} errors after connecting{first}", self.errors));
        }
        if s.pubs.is_some() && s.subs.is_some() && self.expected > 0 && self.delivered == 0 {
            v.push("nothing was delivered".to_string());
        }
        if self.connect_failed > 0 {
            w.push(format!(
                "{} of {} connections failed",
                self.connect_failed, self.clients
            ));
        }
        if self.late > 0 {
            w.push(format!(
                "{} messages arrived after their gap had been written off",
                self.late
            ));
        }
        if self.foreign > 0 {
            w.push(format!(
                "{} messages from an earlier run (or another generator) arrived and were ignored",
                self.foreign
            ));
        }
        if self.untracked > 0 {
            w.push(format!(
                "{} shared-group arrivals were beyond the group's tracking capacity",
                self.untracked
            ));
        }
        self.violations.append(&mut v);
        self.warnings.append(&mut w);
        self.ok = self.violations.is_empty();
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// The summary table printed at the end of a run.
    pub fn summary(&self) -> String {
        let s = &self.scenario;
        let mut rows: Vec<(&str, String)> = Vec::new();
        let version = match s.protocol {
            3 => "MQTT 3.1",
            5 => "MQTT 5.0",
            _ => "MQTT 3.1.1",
        };
        let mut who = Vec::new();
        if let Some(p) = &s.pubs {
            who.push(format!("{} pubs", p.count));
        }
        if let Some(x) = &s.subs {
            who.push(format!("{} subs", x.count));
        }
        if let Some(c) = &s.conns {
            who.push(format!("{} conns", c.count));
        }
        rows.push(("scenario", format!("{} ({})", s.name, s.kind.name())));
        rows.push((
            "target",
            match &self.broker {
                Some(b) => format!("{} ({b})", self.target),
                None => self.target.clone(),
            },
        ));
        rows.push((
            "clients",
            format!(
                "{}; {version}, QoS {}/{}, {} B payload, {} sessions",
                who.join(", "),
                s.qos,
                s.sub_qos(),
                s.payload,
                if s.clean { "clean" } else { "persistent" }
            ),
        ));
        rows.push((
            "connections",
            format!(
                "{} of {} in {:.2} s ({}/s){}",
                self.connections,
                self.clients,
                self.connect_secs,
                si(self.connect_rate),
                if self.connect_failed > 0 {
                    format!(", {} failed", self.connect_failed)
                } else {
                    String::new()
                }
            ),
        ));
        rows.push((
            "window",
            format!(
                "{:.1} s measured after {:.1} s warm-up",
                self.measured_secs, s.warmup
            ),
        ));
        if s.pubs.is_some() {
            let target = match s.rate_per_publisher() {
                Some(r) => format!(
                    " (target {}/s)",
                    si(r * f64::from(s.pubs.as_ref().map_or(0, |p| p.count)))
                ),
                None => " (as fast as the broker takes)".to_string(),
            };
            rows.push((
                "published",
                format!(
                    "{} msgs, {}/s{target}",
                    self.published,
                    si(self.published_per_sec)
                ),
            ));
            rows.push((
                "delivered",
                format!(
                    "{} of {} expected, {}/s",
                    self.delivered,
                    self.expected,
                    si(self.delivered_per_sec)
                ),
            ));
            rows.push(("lost", self.lost.to_string()));
            rows.push(("duplicates", self.duplicates.to_string()));
            rows.push(("reordered", self.reordered.to_string()));
            let l = &self.latency_us;
            rows.push((
                "latency (us)",
                format!(
                    "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})",
                    l.p50, l.p90, l.p99, l.p999, l.max, l.count
                ),
            ));
        }
        if self.errors > 0 {
            rows.push(("errors", self.errors.to_string()));
        }
        if self.broker_pid.is_some() {
            let mut b = Vec::new();
            if let Some(us) = self.broker_cpu_us_per_msg {
                b.push(format!("{us:.2} us CPU/msg"));
            }
            if let Some(p) = self.broker_cpu_percent {
                b.push(format!("{p:.0}% of a core"));
            }
            if let Some(r) = self.broker_rss_bytes {
                b.push(format!("RSS {} peak", bytes(r as f64)));
            }
            if let Some(pc) = self.broker_rss_per_conn_bytes {
                b.push(format!("{}/conn", bytes(pc.max(0.0))));
            }
            rows.push(("broker", b.join(", ")));
        }
        let mut g = Vec::new();
        if let Some(us) = self.loadgen_cpu_us_per_msg {
            g.push(format!("{us:.2} us CPU/msg"));
        }
        g.push(format!("{:.0}% of a core", self.loadgen_cpu_percent));
        g.push(format!("RSS {}", bytes(self.loadgen_rss_bytes as f64)));
        rows.push(("loadgen", g.join(", ")));
        for w in &self.warnings {
            rows.push(("warning", w.clone()));
        }
        for v in &self.violations {
            rows.push(("VIOLATION", v.clone()));
        }
        rows.push((
            "result",
            if self.ok {
                "OK".into()
            } else {
                "FAILED".into()
            },
        ));

        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        let _ = writeln!(out, "{:<width$}  value", "metric");
        let _ = writeln!(out, "{}  {}", "-".repeat(width), "-".repeat(40));
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        out
    }
}
