//! The HTML report: one self-contained page (inline CSS and SVG, no script, nothing
//! fetched) with the verdict, the summary, and throughput, latency and resource
//! charts sampled every second.

use std::fmt::Write as _;

use super::svg::{esc, line_chart, Series, COLORS};
use super::Report;
use crate::runner::{bytes, si};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}\
h1{font-size:20px}h2{font-size:16px;margin-top:28px}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.ok{background:#e6f4ea;border:1px solid #8c8;padding:8px 12px}.fail{background:#fce8e6;border:1px solid #d88;padding:8px 12px}\
.warn{color:#8a5a00}svg.chart{display:block;margin:10px 0;max-width:100%;height:auto}\
svg .title{font:bold 13px system-ui,sans-serif}svg .tick{font:11px system-ui,sans-serif;fill:#444}\
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}";

/// Wraps a body in a complete page.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "n/a".to_string(), f)
}

/// The verdict block: OK, or the broken guarantees; warnings either way.
pub fn verdict(r: &Report) -> String {
    let mut s = String::new();
    if r.ok {
        s.push_str("<div class=\"ok\"><b>OK</b>: every guarantee checked held.");
    } else {
        s.push_str("<div class=\"fail\"><b>FAILED</b>:<ul>");
        for v in &r.violations {
            let _ = write!(s, "<li>{}</li>", esc(v));
        }
        s.push_str("</ul>");
    }
    if !r.warnings.is_empty() {
        s.push_str("<ul class=\"warn\">");
        for w in &r.warnings {
            let _ = write!(s, "<li>{}</li>", esc(w));
        }
        s.push_str("</ul>");
    }
    s.push_str("</div>");
    s
}

/// Throughput and latency charts (and resources, when sampled) for one run.
pub fn charts(r: &Report) -> String {
    let tl = &r.timeline;
    let shade = Some((0.0, r.start_secs + r.scenario.warmup));
    let stop = Some(r.start_secs + r.scenario.warmup + r.scenario.duration);
    let pts = |f: &dyn Fn(&super::Point) -> Option<f64>| -> Vec<(f64, f64)> {
        tl.iter().filter_map(|p| f(p).map(|v| (p.t, v))).collect()
    };
    let mut s = String::new();
    if r.scenario.pubs.is_some() {
        s += &line_chart(
            "Throughput",
            "messages/s",
            &[
                Series {
                    name: "published",
                    color: COLORS[0],
                    points: pts(&|p| Some(p.published_per_sec)),
                },
                Series {
                    name: "delivered",
                    color: COLORS[2],
                    points: pts(&|p| Some(p.delivered_per_sec)),
                },
            ],
            false,
            shade,
            stop,
        );
        s += &line_chart(
            "Latency by second received (log scale)",
            "microseconds",
            &[
                Series {
                    name: "p50",
                    color: COLORS[0],
                    points: pts(&|p| p.p50_us.map(|v| v as f64)),
                },
                Series {
                    name: "p90",
                    color: COLORS[2],
                    points: pts(&|p| p.p90_us.map(|v| v as f64)),
                },
                Series {
                    name: "p99",
                    color: COLORS[3],
                    points: pts(&|p| p.p99_us.map(|v| v as f64)),
                },
                Series {
                    name: "max",
                    color: COLORS[1],
                    points: pts(&|p| p.max_us.map(|v| v as f64)),
                },
            ],
            true,
            shade,
            stop,
        );
    }
    s += &line_chart(
        "Open connections",
        "connections",
        &[Series {
            name: "open",
            color: COLORS[4],
            points: pts(&|p| Some(p.connections as f64)),
        }],
        false,
        shade,
        stop,
    );
    let mut cpu = vec![Series {
        name: "loadgen",
        color: COLORS[5],
        points: pts(&|p| Some(p.loadgen_cpu_percent)),
    }];
    if r.broker_pid.is_some() {
        cpu.insert(
            0,
            Series {
                name: "broker",
                color: COLORS[1],
                points: pts(&|p| p.broker_cpu_percent),
            },
        );
    }
    s += &line_chart("CPU", "% of one core", &cpu, false, shade, stop);
    if r.broker_pid.is_some() {
        s += &line_chart(
            "Broker resident memory",
            "MiB",
            &[Series {
                name: "RSS",
                color: COLORS[1],
                points: pts(&|p| p.broker_rss_bytes.map(|b| b as f64 / (1024.0 * 1024.0))),
            }],
            false,
            shade,
            stop,
        );
    }
    s
}

/// The key figures as an HTML table.
pub fn summary_table(r: &Report) -> String {
    let l = &r.latency_us;
    let rows: Vec<(&str, String)> = vec![
        (
            "connections",
            format!(
                "{} of {} in {:.2} s ({}/s)",
                r.connections,
                r.clients,
                r.connect_secs,
                si(r.connect_rate)
            ),
        ),
        (
            "published",
            format!("{} ({}/s)", r.published, si(r.published_per_sec)),
        ),
        (
            "delivered",
            format!(
                "{} of {} expected ({}/s)",
                r.delivered,
                r.expected,
                si(r.delivered_per_sec)
            ),
        ),
        (
            "lost / duplicates / reordered",
            format!("{} / {} / {}", r.lost, r.duplicates, r.reordered),
        ),
        (
            "latency (µs)",
            format!(
                "p50 {} · p90 {} · p99 {} · p99.9 {} · max {} (n={})",
                l.p50, l.p90, l.p99, l.p999, l.max, l.count
            ),
        ),
        ("errors", r.errors.to_string()),
        (
            "broker CPU per message",
            opt(r.broker_cpu_us_per_msg, |v| format!("{v:.2} µs")),
        ),
        (
            "broker CPU",
            opt(r.broker_cpu_percent, |v| format!("{v:.0}% of a core")),
        ),
        (
            "broker RSS (peak)",
            opt(r.broker_rss_bytes, |v| bytes(v as f64)),
        ),
        (
            "broker memory per connection",
            opt(r.broker_rss_per_conn_bytes, |v| bytes(v.max(0.0))),
        ),
        (
            "loadgen CPU per message",
            opt(r.loadgen_cpu_us_per_msg, |v| format!("{v:.2} µs")),
        ),
        (
            "loadgen CPU",
            format!(
                "{:.0}% of a core on CPUs {:?}",
                r.loadgen_cpu_percent, r.cores
            ),
        ),
    ];
    let mut s = String::from("<table>");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    s.push_str("</table>");
    s
}

/// The whole report page for one run.
pub fn render(r: &Report) -> String {
    let sc = &r.scenario;
    let title = format!(
        "{}: {} against {}{}",
        r.tool,
        sc.name,
        r.target,
        r.broker
            .as_ref()
            .map(|b| format!(" ({b})"))
            .unwrap_or_default()
    );
    let mut body = format!("<h1>{}</h1>", esc(&title));
    if !sc.description.is_empty() {
        let _ = write!(body, "<p>{}</p>", esc(&sc.description));
    }
    let _ = write!(
        body,
        "<p>MQTT level {} · QoS {} (subscriptions {}) · {} B payload · {} s measured after {} s warm-up · {} sessions</p>",
        sc.protocol,
        sc.qos,
        sc.sub_qos(),
        sc.payload,
        sc.duration,
        sc.warmup,
        if sc.clean { "clean" } else { "persistent" }
    );
    body += &verdict(r);
    body += "<h2>Summary</h2>";
    body += &summary_table(r);
    body += "<h2>Over time (sampled every second from the first connection; grey: connecting and warm-up, dashed: publishing stopped)</h2>";
    body += &charts(r);
    if !r.failures.is_empty() {
        body += "<h2>Failures</h2><ul>";
        for f in &r.failures {
            let _ = write!(body, "<li>{}</li>", esc(f));
        }
        body += "</ul>";
    }
    body += "<h2>Scenario</h2><pre>";
    body += &esc(&toml::to_string(sc).unwrap_or_default());
    body += "</pre>";
    page(&title, &body)
}
