//! Scenarios as plain data (TOML or flags), their validation and scaling, and the
//! [`Plan`] made from one: every client with its topic or filters and, for each
//! subscriber, the publishers it must hear from.
//!
//! A scenario is three optional roles: publishers (`pubs`), subscribers (`subs`) and
//! connections that only connect and hold (`conns`). Topic and filter templates
//! expand `%i` to the client's index within its role (`%%` is a literal `%`). The
//! classic mixes are presets of these roles ([`Scenario::preset`]); anything else is
//! a scenario file.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use ringmq::protocol::topic::{
    has_wildcard, matches, parse_shared, validate_topic_filter, validate_topic_name,
};
use serde::{Deserialize, Serialize};

use crate::accounting::PublisherSet;
use crate::payload::HEADER_LEN;

/// The classic mixes, and `custom` for anything a file describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// N publishers -> 1 subscriber (or M subscribers each on a wildcard).
    Fanin,
    /// 1 publisher -> M subscribers on its topic.
    Fanout,
    /// Pair i: publisher i publishes to topic i, subscriber i subscribes to it.
    P2p,
    /// N publishers -> M subscribers sharing one `$share/...` subscription.
    Shared,
    /// N connections opened at a given rate and held.
    Conn,
    #[default]
    Custom,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "fanin" | "fan-in" => Kind::Fanin,
            "fanout" | "fan-out" => Kind::Fanout,
            "p2p" => Kind::P2p,
            "shared" => Kind::Shared,
            "conn" | "connections" => Kind::Conn,
            "custom" => Kind::Custom,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Fanin => "fanin",
            Kind::Fanout => "fanout",
            Kind::P2p => "p2p",
            Kind::Shared => "shared",
            Kind::Conn => "conn",
            Kind::Custom => "custom",
        }
    }
}

fn d_protocol() -> u8 {
    4
}
fn d_qos() -> u8 {
    1
}
fn d_payload() -> usize {
    64
}
fn d_duration() -> f64 {
    10.0
}
fn d_drain() -> f64 {
    2.0
}
fn d_true() -> bool {
    true
}
fn d_expiry() -> u32 {
    300
}
fn d_keepalive() -> u16 {
    60
}
fn d_inflight() -> u16 {
    64
}

/// Publishers: `count` clients, each publishing to its expansion of `topic`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PubRole {
    pub count: u32,
    pub topic: String,
    /// Messages per second per publisher; unset: the scenario's total `rate`, or as
    /// fast as the broker takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Whether `--scale` multiplies `count`.
    #[serde(default = "d_true")]
    pub scale: bool,
}

/// Subscribers: `count` clients, each subscribing to the expansions of `topics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubRole {
    pub count: u32,
    pub topics: Vec<String>,
    /// Subscription QoS; unset: the scenario's `qos`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
    #[serde(default = "d_true")]
    pub scale: bool,
}

/// Connections that connect and hold, optionally with one subscription each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnRole {
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default = "d_true")]
    pub scale: bool,
}

/// One benchmark scenario. Times are in seconds, sizes in bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub kind: Kind,
    /// MQTT protocol level: 3 (3.1), 4 (3.1.1) or 5.
    #[serde(default = "d_protocol")]
    pub protocol: u8,
    /// Publish QoS.
    #[serde(default = "d_qos")]
    pub qos: u8,
    /// Payload size, at least the 20-byte header.
    #[serde(default = "d_payload")]
    pub payload: usize,
    /// Measured time, after warm-up.
    #[serde(default = "d_duration")]
    pub duration: f64,
    #[serde(default)]
    pub warmup: f64,
    /// Longest wait after publishing stops for messages still on their way.
    #[serde(default = "d_drain")]
    pub drain: f64,
    /// Total publish rate (messages per second over all publishers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Clean session / clean start. Persistent v5 sessions ask for `session_expiry`.
    #[serde(default = "d_true")]
    pub clean: bool,
    #[serde(default = "d_expiry")]
    pub session_expiry: u32,
    #[serde(default = "d_keepalive")]
    pub keepalive: u16,
    /// Unacknowledged QoS 1/2 messages per publisher.
    #[serde(default = "d_inflight")]
    pub inflight: u16,
    /// New connections per second (all roles); unset: as fast as they complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubs: Option<PubRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subs: Option<SubRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conns: Option<ConnRole>,
}

/// A scenario that cannot run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

fn bad(msg: impl Into<String>) -> ScenarioError {
    ScenarioError(msg.into())
}

impl Scenario {
    /// The classic mix `kind` with `pubs` publishers and `subs` subscribers (or
    /// connections, for `conn`), falling back to each mix's usual counts.
    pub fn preset(kind: Kind, pubs: Option<u32>, subs: Option<u32>) -> Scenario {
        let mut s = Scenario {
            name: kind.name().to_string(),
            description: String::new(),
            kind,
            protocol: d_protocol(),
            qos: d_qos(),
            payload: d_payload(),
            duration: d_duration(),
            warmup: 0.0,
            drain: d_drain(),
            rate: None,
            clean: true,
            session_expiry: d_expiry(),
            keepalive: d_keepalive(),
            inflight: d_inflight(),
            connect_rate: None,
            pubs: None,
            subs: None,
            conns: None,
        };
        let role = |count: u32, topic: &str| PubRole {
            count,
            topic: topic.into(),
            rate: None,
            scale: true,
        };
        let sub = |count: u32, filter: &str| SubRole {
            count,
            topics: vec![filter.into()],
            qos: None,
            scale: true,
        };
        match kind {
            Kind::Fanin => {
                s.description =
                    "N publishers on their own topics -> subscribers on a wildcard".into();
                s.pubs = Some(role(pubs.unwrap_or(10), "bench/fanin/%i"));
                s.subs = Some(sub(subs.unwrap_or(1), "bench/fanin/+"));
            }
            Kind::Fanout => {
                s.description = "publishers on one topic -> M subscribers".into();
                s.pubs = Some(role(pubs.unwrap_or(1), "bench/fanout"));
                s.subs = Some(sub(subs.unwrap_or(10), "bench/fanout"));
            }
            Kind::P2p => {
                s.description = "pair i: publisher i -> topic i -> subscriber i".into();
                let n = pubs.or(subs).unwrap_or(10);
                s.pubs = Some(role(n, "bench/p2p/%i"));
                s.subs = Some(sub(subs.unwrap_or(n), "bench/p2p/%i"));
            }
            Kind::Shared => {
                s.description = "N publishers -> M subscribers in one shared subscription".into();
                s.protocol = 5;
                s.pubs = Some(role(pubs.unwrap_or(10), "bench/shared/%i"));
                s.subs = Some(sub(subs.unwrap_or(2), "$share/loadgen/bench/shared/+"));
            }
            Kind::Conn => {
                s.description = "open N connections at a given rate and hold them".into();
                s.connect_rate = Some(1000.0);
                s.conns = Some(ConnRole {
                    count: subs.or(pubs).unwrap_or(1000),
                    topic: None,
                    scale: true,
                });
            }
            Kind::Custom => {}
        }
        s
    }

    /// Parses and validates a TOML scenario.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Multiplies the counts of scalable roles (and a total rate) by `factor`, keeping
    /// at least one client per role and per-client rates unchanged. The connect rate
    /// is kept too, so a scaled connection ramp is shorter in proportion.
    pub fn scaled(mut self, factor: f64) -> Result<Scenario, ScenarioError> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(bad(format!("scale: {factor} is not a positive number")));
        }
        if factor == 1.0 {
            return Ok(self);
        }
        let scale = |n: u32| ((f64::from(n) * factor).round() as u32).max(1);
        let mut scaled_pubs = false;
        if let Some(p) = self.pubs.as_mut().filter(|p| p.scale) {
            p.count = scale(p.count);
            scaled_pubs = true;
        }
        if let Some(s) = self.subs.as_mut().filter(|s| s.scale) {
            s.count = scale(s.count);
        }
        if let Some(c) = self.conns.as_mut().filter(|c| c.scale) {
            c.count = scale(c.count);
        }
        if scaled_pubs {
            self.rate = self.rate.map(|r| r * factor);
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks every field and every expanded topic and filter.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if !matches!(self.protocol, 3..=5) {
            return Err(bad(format!("protocol: {} is not 3, 4 or 5", self.protocol)));
        }
        if self.qos > 2 {
            return Err(bad(format!("qos: {} is not 0, 1 or 2", self.qos)));
        }
        if self.payload < HEADER_LEN {
            return Err(bad(format!(
                "payload: {} bytes is less than the {HEADER_LEN}-byte header every message carries",
                self.payload
            )));
        }
        if self.payload > 16 * 1024 * 1024 {
            return Err(bad(format!(
                "payload: {} bytes is more than 16 MiB",
                self.payload
            )));
        }
        for (name, v) in [
            ("duration", self.duration),
            ("warmup", self.warmup),
            ("drain", self.drain),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(format!("{name}: {v} is not a number of seconds")));
            }
        }
        if self.duration <= 0.0 {
            return Err(bad("duration: must be more than 0 seconds"));
        }
        for (name, v) in [("rate", self.rate), ("connect_rate", self.connect_rate)] {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(bad(format!("{name}: {v} is not a positive rate")));
            }
        }
        if self.inflight == 0 {
            return Err(bad("inflight: must be at least 1"));
        }
        if self.pubs.is_none() && self.subs.is_none() && self.conns.is_none() {
            return Err(bad("the scenario has no pubs, subs or conns"));
        }
        if let Some(p) = &self.pubs {
            if p.count == 0 {
                return Err(bad("pubs.count: must be at least 1"));
            }
            if let Some(r) = p.rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
                return Err(bad(format!("pubs.rate: {r} is not a positive rate")));
            }
            if p.rate.is_some() && self.rate.is_some() {
                return Err(bad(
                    "rate and pubs.rate: give a total rate or a per-publisher rate, not both",
                ));
            }
            for i in [0, p.count - 1] {
                let t = expand(&p.topic, i);
                validate_topic_name(&t).map_err(|e| {
                    bad(format!("pubs.topic: '{t}' is not a valid topic name: {e}"))
                })?;
            }
        }
        if let Some(s) = &self.subs {
            if s.count == 0 {
                return Err(bad("subs.count: must be at least 1"));
            }
            if s.topics.is_empty() {
                return Err(bad("subs.topics: at least one filter is needed"));
            }
            if let Some(q) = s.qos.filter(|q| *q > 2) {
                return Err(bad(format!("subs.qos: {q} is not 0, 1 or 2")));
            }
            let shared = s.topics.iter().filter(|t| t.starts_with("$share/")).count();
            if shared > 0 && s.topics.len() > 1 {
                return Err(bad(
                    "subs.topics: a shared subscription ($share/...) must be the subscriber's only filter",
                ));
            }
            for t in &s.topics {
                for i in [0, s.count - 1] {
                    let f = expand(t, i);
                    validate_topic_filter(&f).map_err(|e| {
                        bad(format!("subs.topics: '{f}' is not a valid filter: {e}"))
                    })?;
                }
            }
        }
        if let Some(c) = &self.conns {
            if c.count == 0 {
                return Err(bad("conns.count: must be at least 1"));
            }
            if let Some(t) = &c.topic {
                let f = expand(t, 0);
                validate_topic_filter(&f)
                    .map_err(|e| bad(format!("conns.topic: '{f}' is not a valid filter: {e}")))?;
            }
        }
        Ok(())
    }

    /// Subscription QoS.
    pub fn sub_qos(&self) -> u8 {
        self.subs.as_ref().and_then(|s| s.qos).unwrap_or(self.qos)
    }

    /// The QoS messages are delivered at: the lower of publish and subscription QoS.
    pub fn delivery_qos(&self) -> u8 {
        self.qos.min(self.sub_qos())
    }

    /// Publishers' per-client rate, if paced.
    pub fn rate_per_publisher(&self) -> Option<f64> {
        let p = self.pubs.as_ref()?;
        p.rate.or(self.rate.map(|r| r / f64::from(p.count)))
    }

    /// Clients of every role.
    pub fn clients(&self) -> u64 {
        u64::from(self.pubs.as_ref().map_or(0, |p| p.count))
            + u64::from(self.subs.as_ref().map_or(0, |s| s.count))
            + u64::from(self.conns.as_ref().map_or(0, |c| c.count))
    }
}

/// Expands `%i` to `index` and `%%` to `%`.
pub fn expand(template: &str, index: u32) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('i') => out.push_str(&index.to_string()),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// A publisher's part in a run.
#[derive(Debug, Clone)]
pub struct PubPlan {
    pub id: u32,
    pub topic: String,
    /// Messages per second, if paced.
    pub rate: Option<f64>,
}

/// Where a subscriber's arrivals are accounted.
#[derive(Debug, Clone)]
pub enum BookPlan {
    /// Its own book over these publishers.
    Own(Arc<PublisherSet>),
    /// The book of shared group `n` in [`Plan::groups`].
    Group(usize),
}

#[derive(Debug, Clone)]
pub struct SubPlan {
    pub index: u32,
    pub filters: Vec<String>,
    pub book: BookPlan,
}

#[derive(Debug, Clone)]
pub struct GroupPlan {
    /// The full `$share/{group}/{filter}`.
    pub filter: String,
    pub publishers: Arc<PublisherSet>,
}

#[derive(Debug, Clone)]
pub struct ConnPlan {
    pub index: u32,
    pub filter: Option<String>,
}

/// Every client of a run, and who must hear from whom.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: Scenario,
    pub publishers: Vec<PubPlan>,
    pub subscribers: Vec<SubPlan>,
    pub groups: Vec<GroupPlan>,
    pub conns: Vec<ConnPlan>,
    /// Per publisher: how many books expect each of its messages once.
    pub weights: Vec<u32>,
}

impl Plan {
    /// Expands a validated scenario into clients and works out, per subscriber, the
    /// publishers whose topics its filters match.
    pub fn new(scenario: Scenario) -> Result<Plan, ScenarioError> {
        scenario.validate()?;
        let rate = scenario.rate_per_publisher();
        let publishers: Vec<PubPlan> = scenario.pubs.as_ref().map_or_else(Vec::new, |p| {
            (0..p.count)
                .map(|id| PubPlan {
                    id,
                    topic: expand(&p.topic, id),
                    rate,
                })
                .collect()
        });
        let mut by_topic: HashMap<&str, Vec<u32>> = HashMap::new();
        for p in &publishers {
            by_topic.entry(p.topic.as_str()).or_default().push(p.id);
        }
        let mut matched: HashMap<String, Vec<u32>> = HashMap::new();
        let mut match_filter = |filter: &str| -> Vec<u32> {
            if let Some(ids) = matched.get(filter) {
                return ids.clone();
            }
            let ids: Vec<u32> = if has_wildcard(filter) {
                publishers
                    .iter()
                    .filter(|p| matches(filter, &p.topic))
                    .map(|p| p.id)
                    .collect()
            } else {
                by_topic.get(filter).cloned().unwrap_or_default()
            };
            matched.insert(filter.to_string(), ids.clone());
            ids
        };

        let mut weights = vec![0u32; publishers.len()];
        let mut subscribers = Vec::new();
        let mut groups: Vec<GroupPlan> = Vec::new();
        let mut group_of: HashMap<String, usize> = HashMap::new();
        if let Some(s) = &scenario.subs {
            let mut sets: HashMap<Vec<u32>, Arc<PublisherSet>> = HashMap::new();
            for index in 0..s.count {
                let filters: Vec<String> = s.topics.iter().map(|t| expand(t, index)).collect();
                let book = if let Some(shared) = parse_shared(&filters[0]) {
                    let full = filters[0].clone();
                    let g = match group_of.get(&full) {
                        Some(&g) => g,
                        None => {
                            let ids = match_filter(shared.filter);
                            for &id in &ids {
                                weights[id as usize] += 1;
                            }
                            groups.push(GroupPlan {
                                filter: full.clone(),
                                publishers: Arc::new(PublisherSet::from_sorted(ids)),
                            });
                            group_of.insert(full, groups.len() - 1);
                            groups.len() - 1
                        }
                    };
                    BookPlan::Group(g)
                } else {
                    let mut ids: Vec<u32> = filters.iter().flat_map(|f| match_filter(f)).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    for &id in &ids {
                        weights[id as usize] += 1;
                    }
                    let set = sets
                        .entry(ids)
                        .or_insert_with_key(|ids| {
                            Arc::new(PublisherSet::from_sorted(ids.iter().copied()))
                        })
                        .clone();
                    BookPlan::Own(set)
                };
                subscribers.push(SubPlan {
                    index,
                    filters,
                    book,
                });
            }
        }
        let conns = scenario.conns.as_ref().map_or_else(Vec::new, |c| {
            (0..c.count)
                .map(|index| ConnPlan {
                    index,
                    filter: c.topic.as_ref().map(|t| expand(t, index)),
                })
                .collect()
        });
        Ok(Plan {
            scenario,
            publishers,
            subscribers,
            groups,
            conns,
            weights,
        })
    }

    /// Deliveries expected when publisher `p` has sent `published(p)` messages.
    pub fn expected(&self, published: impl Fn(u32) -> u64) -> u64 {
        self.weights
            .iter()
            .enumerate()
            .map(|(p, &w)| u64::from(w) * published(p as u32))
            .sum()
    }

    /// Subscribers whose filters match no publisher: a scenario mistake worth a warning.
    pub fn deaf_subscribers(&self) -> usize {
        if self.publishers.is_empty() {
            return 0;
        }
        self.subscribers
            .iter()
            .filter(|s| match &s.book {
                BookPlan::Own(set) => set.is_empty(),
                BookPlan::Group(g) => self.groups[*g].publishers.is_empty(),
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_templates() {
        assert_eq!(expand("dev/%i/temp", 42), "dev/42/temp");
        assert_eq!(expand("100%%/%i%", 3), "100%/3%");
    }

    #[test]
    fn p2p_pairs_each_subscriber_with_its_publisher() {
        let plan = Plan::new(Scenario::preset(Kind::P2p, Some(5), None)).unwrap();
        for s in &plan.subscribers {
            let BookPlan::Own(set) = &s.book else {
                panic!("own book")
            };
            assert_eq!(set.iter().collect::<Vec<_>>(), vec![s.index]);
        }
        assert_eq!(plan.expected(|_| 10), 50);
    }

    #[test]
    fn fanin_wildcard_subscribers_expect_every_publisher() {
        let plan = Plan::new(Scenario::preset(Kind::Fanin, Some(4), Some(3))).unwrap();
        assert_eq!(plan.expected(|_| 1), 12);
        assert_eq!(plan.deaf_subscribers(), 0);
    }

    #[test]
    fn shared_subscribers_form_one_group_expecting_each_message_once() {
        let plan = Plan::new(Scenario::preset(Kind::Shared, Some(4), Some(3))).unwrap();
        assert_eq!(plan.groups.len(), 1);
        assert_eq!(plan.expected(|_| 1), 4);
    }

    #[test]
    fn scaling_keeps_unscalable_roles_and_per_client_rates() {
        let mut s = Scenario::preset(Kind::Fanout, Some(5), Some(1000));
        s.pubs.as_mut().unwrap().scale = false;
        s.pubs.as_mut().unwrap().rate = Some(50.0);
        let s = s.scaled(0.01).unwrap();
        assert_eq!(s.pubs.as_ref().unwrap().count, 5);
        assert_eq!(s.subs.as_ref().unwrap().count, 10);
        assert_eq!(s.rate_per_publisher(), Some(50.0));
    }

    #[test]
    fn rejects_small_payloads_and_bad_filters() {
        let mut s = Scenario::preset(Kind::Fanin, None, None);
        s.payload = 16;
        assert!(s.validate().unwrap_err().0.contains("20-byte header"));
        let mut s = Scenario::preset(Kind::Fanin, None, None);
        s.subs.as_mut().unwrap().topics = vec!["a/#/b".into()];
        assert!(s.validate().unwrap_err().0.contains("not a valid filter"));
    }
}
