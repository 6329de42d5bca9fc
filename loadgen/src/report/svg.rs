//! Inline SVG charts for the HTML reports: line charts over time and grouped bar
//! charts, drawn as text so a report needs no script and fetches nothing.

use std::fmt::Write as _;

use crate::runner::si;

const W: f64 = 760.0;
const H: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 36.0;

/// A palette that stays readable on white.
pub const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One line of a line chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// Round tick values covering `[0, max]`.
fn linear_ticks(max: f64) -> Vec<f64> {
    if max <= 0.0 {
        return vec![0.0, 1.0];
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (0..=5)
        .map(|i| i as f64 * step)
        .take_while(|v| *v <= max + step * 0.999)
        .collect()
}

fn fmt_tick(v: f64) -> String {
    if v != 0.0 && v.abs() < 1.0 {
        format!("{v:.2}")
    } else {
        si(v)
    }
}

/// A line chart of `series` against time (x in seconds). `log_y` draws a decade
/// scale (values must be positive); `shade` greys an x range (connecting and
/// warm-up) and
/// `marker` draws a dashed vertical line (the end of the measured window).
pub fn line_chart(
    title: &str,
    y_label: &str,
    series: &[Series<'_>],
    log_y: bool,
    shade: Option<(f64, f64)>,
    marker: Option<f64>,
) -> String {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let x_max = xs.fold(1.0f64, f64::max);
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite() && (!log_y || *y > 0.0))
        .collect();
    let y_max = ys.iter().copied().fold(0.0f64, f64::max);
    let (ticks, lo, hi) = if log_y {
        let lo_exp = ys
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .max(1.0)
            .log10()
            .floor();
        let hi_exp = y_max.max(10.0).log10().ceil().max(lo_exp + 1.0);
        let ticks: Vec<f64> = (lo_exp as i32..=hi_exp as i32)
            .map(|e| 10f64.powi(e))
            .collect();
        (ticks, lo_exp, hi_exp)
    } else {
        let ticks = linear_ticks(y_max * 1.05);
        let hi = *ticks.last().unwrap_or(&1.0);
        (ticks, 0.0, hi.max(1e-9))
    };
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x_of = |x: f64| LEFT + x / x_max * pw;
    let y_of = |y: f64| {
        let f = if log_y {
            (y.max(1e-9).log10() - lo) / (hi - lo)
        } else {
            y / hi
        };
        TOP + ph * (1.0 - f.clamp(0.0, 1.0))
    };

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" class="chart" role="img" aria-label="{t}">"#,
        t = esc(title)
    );
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="18" class="title">{}</text>"#,
        esc(title)
    );
    if let Some((a, b)) = shade.filter(|(a, b)| b > a) {
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{ph}" fill="#eee"><title>connecting and warm-up</title></rect>"##,
            x_of(a),
            x_of(b) - x_of(a)
        );
    }
    for t in &ticks {
        let y = y_of(*t);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(*t)
        );
    }
    for t in linear_ticks(x_max) {
        let x = x_of(t);
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" class="tick" text-anchor="middle">{}s</text>"#,
            H - BOTTOM + 16.0,
            fmt_tick(t)
        );
    }
    if let Some(m) = marker {
        let x = x_of(m);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="#888" stroke-dasharray="4 3"><title>publishing stopped</title></line>"##,
            TOP + ph
        );
    }
    let _ = write!(
        s,
        r##"<text x="14" y="{:.1}" class="tick" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"##,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(y_label)
    );
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{:.1}" stroke="#444"/><line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#444"/>"##,
        TOP + ph,
        W - RIGHT,
        TOP + ph,
        TOP + ph
    );
    let mut legend_x = W - RIGHT;
    for se in series.iter().rev() {
        legend_x -= 14.0 + 7.0 * se.name.len() as f64;
        let _ = write!(
            s,
            r#"<rect x="{legend_x:.1}" y="10" width="10" height="10" fill="{c}"/><text x="{:.1}" y="19" class="tick">{}</text>"#,
            legend_x + 13.0,
            esc(se.name),
            c = se.color
        );
    }
    for se in series {
        let pts: Vec<&(f64, f64)> = se
            .points
            .iter()
            .filter(|p| p.1.is_finite() && (!log_y || p.1 > 0.0))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let path: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.8" points="{}"/>"#,
            se.color,
            path.join(" ")
        );
        for (x, y) in pts {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.2" fill="{}"><title>{}: {} at {:.0}s</title></circle>"#,
                x_of(*x),
                y_of(*y),
                se.color,
                esc(se.name),
                fmt_tick(*y),
                x
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// A grouped bar chart: one group per label, one bar per series within it.
/// Missing values (`None`) leave a gap labelled "n/a".
pub fn bar_chart(
    title: &str,
    y_label: &str,
    series: &[&str],
    groups: &[(String, Vec<Option<f64>>)],
) -> String {
    let y_max = groups
        .iter()
        .flat_map(|g| g.1.iter().flatten().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let ticks = linear_ticks(y_max * 1.1);
    let hi = ticks.last().copied().unwrap_or(1.0).max(1e-9);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let group_w = pw / groups.len().max(1) as f64;
    let bar_w = (group_w * 0.8 / series.len().max(1) as f64).min(60.0);
    let y_of = |v: f64| TOP + ph * (1.0 - (v / hi).clamp(0.0, 1.0));

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" class="chart" role="img" aria-label="{t}">"#,
        t = esc(title)
    );
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="18" class="title">{}</text>"#,
        esc(title)
    );
    for t in &ticks {
        let y = y_of(*t);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(*t)
        );
    }
    let _ = write!(
        s,
        r##"<text x="14" y="{:.1}" class="tick" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"##,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(y_label)
    );
    for (gi, (label, values)) in groups.iter().enumerate() {
        let gx = LEFT + gi as f64 * group_w;
        let start = gx + (group_w - bar_w * series.len() as f64) / 2.0;
        for (si_, v) in values.iter().enumerate() {
            let x = start + si_ as f64 * bar_w;
            let color = COLORS[si_ % COLORS.len()];
            match v.filter(|v| v.is_finite()) {
                Some(v) => {
                    let y = y_of(v);
                    let _ = write!(
                        s,
                        r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{} / {}: {}</title></rect>"#,
                        bar_w - 2.0,
                        TOP + ph - y,
                        esc(label),
                        esc(series.get(si_).copied().unwrap_or("")),
                        fmt_tick(v)
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">n/a</text>"#,
                        x + bar_w / 2.0,
                        TOP + ph - 4.0
                    );
                }
            }
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
            gx + group_w / 2.0,
            H - BOTTOM + 16.0,
            esc(label)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#444"/>"##,
        W - RIGHT,
        TOP + ph,
        TOP + ph
    );
    let mut legend_x = W - RIGHT;
    for (i, name) in series.iter().enumerate().rev() {
        legend_x -= 14.0 + 7.0 * name.len() as f64;
        let _ = write!(
            s,
            r#"<rect x="{legend_x:.1}" y="10" width="10" height="10" fill="{}"/><text x="{:.1}" y="19" class="tick">{}</text>"#,
            COLORS[i % COLORS.len()],
            legend_x + 13.0,
            esc(name)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_maximum_with_round_steps() {
        let t = linear_ticks(930.0);
        assert_eq!(t.first(), Some(&0.0));
        assert!(*t.last().unwrap() >= 930.0);
        assert!(t.len() <= 6);
    }

    #[test]
    fn charts_are_self_contained_svg() {
        let s = line_chart(
            "a <b>",
            "msgs/s",
            &[Series {
                name: "x",
                color: COLORS[0],
                points: vec![(1.0, 10.0), (2.0, 20.0)],
            }],
            true,
            Some((0.0, 1.0)),
            Some(2.0),
        );
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("a &lt;b&gt;"));
        assert!(!s.contains("http"));
        let b = bar_chart(
            "t",
            "y",
            &["a", "b"],
            &[("g".into(), vec![Some(1.0), None])],
        );
        assert!(b.contains("n/a"));
    }
}
