//! `$SYS/broker/...`: the broker's own figures published as retained messages every
//! `sys_interval`, under the names Mosquitto uses, by shard 0 for the whole broker.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::message::Message;
use crate::metrics::{Registry, Totals};
use crate::protocol::{Publish, QoS};

use super::{Shard, TICK};

/// How long the task waits for every shard to refresh its gauges.
const GAUGE_WAIT: Duration = Duration::from_secs(1);

/// Moving averages of a rate per minute over 1, 5 and 15 minutes, as Mosquitto's
/// `$SYS/broker/load/...` topics report them.
#[derive(Debug, Default, Clone, Copy)]
struct Load {
    last: u64,
    averages: [f64; 3],
}

impl Load {
    const WINDOWS: [(f64, &'static str); 3] = [(60.0, "1min"), (300.0, "5min"), (900.0, "15min")];

    /// Folds in the counter's new value after `elapsed`.
    fn update(&mut self, value: u64, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(1e-3);
        let per_minute = value.saturating_sub(self.last) as f64 * 60.0 / secs;
        self.last = value;
        for (avg, (window, _)) in self.averages.iter_mut().zip(Self::WINDOWS) {
            let k = 1.0 - (-secs / window).exp();
            *avg += (per_minute - *avg) * k;
        }
    }
}

type Reading = fn(&Totals) -> u64;

/// The loads tracked, with their topic names under `$SYS/broker/load/`.
const LOADS: [(&str, Reading); 6] = [
    ("messages/received", |t| t.publish_in),
    ("messages/sent", |t| t.publish_out),
    ("publish/dropped", |t| t.dropped),
    ("bytes/received", |t| t.bytes_in),
    ("bytes/sent", |t| t.bytes_out),
    ("connections", |t| t.connects),
];

/// Every `$SYS` topic and its value for one report.
fn topics(t: &Totals, uptime: Duration, loads: &[Load; 6]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        (
            "version".into(),
            format!("ringmq version {}", env!("CARGO_PKG_VERSION")),
        ),
        ("uptime".into(), format!("{} seconds", uptime.as_secs())),
        ("clients/connected".into(), t.connections.to_string()),
        ("clients/active".into(), t.connections.to_string()),
        (
            "clients/disconnected".into(),
            t.sessions.saturating_sub(t.connections).to_string(),
        ),
        (
            "clients/inactive".into(),
            t.sessions.saturating_sub(t.connections).to_string(),
        ),
        (
            "clients/total".into(),
            t.sessions.max(t.connections).to_string(),
        ),
        ("clients/maximum".into(), t.connections_peak.to_string()),
        ("clients/expired".into(), t.sessions_expired.to_string()),
        ("messages/received".into(), t.publish_in.to_string()),
        ("messages/sent".into(), t.publish_out.to_string()),
        (
            "messages/stored".into(),
            (t.queued + t.inflight + t.retained).to_string(),
        ),
        ("messages/inflight".into(), t.inflight.to_string()),
        ("publish/messages/received".into(), t.publish_in.to_string()),
        ("publish/messages/sent".into(), t.publish_out.to_string()),
        ("publish/messages/dropped".into(), t.dropped.to_string()),
        (
            "publish/bytes/received".into(),
            t.publish_bytes_in.to_string(),
        ),
        ("publish/bytes/sent".into(), t.publish_bytes_out.to_string()),
        ("bytes/received".into(), t.bytes_in.to_string()),
        ("bytes/sent".into(), t.bytes_out.to_string()),
        ("retained messages/count".into(), t.retained.to_string()),
        (
            "store/messages/count".into(),
            (t.queued + t.inflight).to_string(),
        ),
        ("subscriptions/count".into(), t.subscriptions.to_string()),
    ];
    for ((name, _), load) in LOADS.iter().zip(loads) {
        for (avg, (_, window)) in load.averages.iter().zip(Load::WINDOWS) {
            v.push((format!("load/{name}/{window}"), format!("{avg:.2}")));
        }
    }
    v
}

/// Shard 0's `$SYS` publisher; returns at once when the interval is zero.
pub(crate) async fn publisher(shard: Rc<Shard>) {
    let interval = shard.config().sys_interval;
    if interval.is_zero() {
        return;
    }
    let registry: Arc<Registry> = shard.shared.metrics.clone();
    let mut loads = [Load::default(); 6];
    let mut last = Instant::now();
    loop {
        glommio::timer::sleep(interval).await;
        let epoch = registry.request_gauges();
        let deadline = Instant::now() + GAUGE_WAIT;
        while !registry.gauges_answered(epoch) && Instant::now() < deadline {
            glommio::timer::sleep(TICK / 4).await;
        }
        let now = Instant::now();
        let totals = registry.totals();
        for (load, (_, value)) in loads.iter_mut().zip(LOADS) {
            load.update(value(&totals), now - last);
        }
        last = now;
        let mut st = shard.state.borrow_mut();
        for (name, value) in topics(&totals, now - shard.start, &loads) {
            let mut p = Publish::new(format!("$SYS/broker/{name}"), QoS::AtMostOnce, value);
            p.retain = true;
            st.publish(&shard, Arc::new(Message::from_publish(p, 0, now)), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_converges_to_the_per_minute_rate() {
        let mut l = Load::default();
        for i in 1..=200u64 {
            // 10 messages every 10 s: 60 per minute.
            l.update(i * 10, Duration::from_secs(10));
        }
        assert!((l.averages[0] - 60.0).abs() < 0.5, "{:?}", l.averages);
        assert!((l.averages[1] - 60.0).abs() < 1.0, "{:?}", l.averages);
        assert!(
            l.averages[2] > 40.0 && l.averages[2] < 60.0,
            "{:?}",
            l.averages
        );
    }

    #[test]
    fn topics_use_mosquitto_names() {
        let t = Totals {
            connections: 3,
            sessions: 5,
            publish_in: 7,
            ..Totals::default()
        };
        let v = topics(&t, Duration::from_secs(42), &[Load::default(); 6]);
        let get = |k: &str| v.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("uptime"), Some("42 seconds"));
        assert_eq!(get("clients/connected"), Some("3"));
        assert_eq!(get("clients/disconnected"), Some("2"));
        assert_eq!(get("publish/messages/received"), Some("7"));
        assert_eq!(get("load/messages/received/15min"), Some("0.00"));
    }
}
