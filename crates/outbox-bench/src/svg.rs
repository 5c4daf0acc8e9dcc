//! The herd plot, as a self-contained SVG (no plotting dependency): left,
//! requests per second ÷ capacity after recovery; right, the cumulative
//! share delivered. Both on a log time axis, binned in log-spaced buckets so
//! that the burst at recovery and the long tails both read.

use std::fmt::Write as _;

use crate::herd::{HerdResult, Strategy};

const W: f64 = 980.0;
const H: f64 = 470.0;
const PANEL_W: f64 = 400.0;
const PANEL_H: f64 = 280.0;
const TOP: f64 = 60.0;
const LEFT: [f64; 2] = [70.0, 560.0];
/// Time axis: 1 s … 10,000 s after recovery.
const T_MIN: f64 = 1.0;
const T_MAX: f64 = 10_000.0;

fn color(s: Strategy) -> &'static str {
    match s {
        Strategy::SeedBatch => "#d62728",
        Strategy::SeedJitter => "#ff7f0e",
        Strategy::Workbox => "#9467bd",
        Strategy::Outbox => "#1f77b4",
        Strategy::OutboxTimers => "#2ca02c",
        Strategy::OutboxUnthrottled => "#7f7f7f",
    }
}

fn dash(s: Strategy) -> &'static str {
    match s {
        Strategy::OutboxTimers => " stroke-dasharray=\"6 3\"",
        Strategy::OutboxUnthrottled => " stroke-dasharray=\"2 2\"",
        _ => "",
    }
}

fn x_of(panel: usize, t: f64) -> f64 {
    let f = (t.max(T_MIN).ln() - T_MIN.ln()) / (T_MAX.ln() - T_MIN.ln());
    LEFT[panel] + f.clamp(0.0, 1.0) * PANEL_W
}

/// Log-spaced bucket edges in seconds: 0–1, 1–1.25, … up to `T_MAX`.
fn edges() -> Vec<f64> {
    let mut e = vec![0.0, 1.0];
    let mut t: f64 = 1.0;
    while t < T_MAX {
        t *= 1.2;
        e.push(t.min(T_MAX));
    }
    e
}

/// Renders the plot for one scenario's results.
pub fn herd_plot(rows: &[&HerdResult]) -> String {
    let mut s = String::new();
    let Some(first) = rows.first() else {
        return s;
    };
    let sc = &first.scenario;
    let cap = f64::from(sc.capacity_per_s.max(1));
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{}" y="22" font-size="15" font-weight="bold" text-anchor="middle">Herd after a {}-minute outage: N = {} clients × {} messages, server capacity {} requests/s</text>
"##,
        W / 2.0,
        sc.outage_ms / 60_000,
        crate::report::count(sc.clients as u64),
        sc.messages,
        crate::report::count(u64::from(sc.capacity_per_s))
    );
    // Axes.
    let y_load = |v: f64| {
        // log scale 0.01× … 1000×
        let f = (v.max(0.01).log10() + 2.0) / 5.0;
        TOP + PANEL_H - f.clamp(0.0, 1.0) * PANEL_H
    };
    let y_share = |v: f64| TOP + PANEL_H - v.clamp(0.0, 1.0) * PANEL_H;
    for (panel, &l) in LEFT.iter().enumerate() {
        let _ = writeln!(
            s,
            r##"<rect x="{l}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#444"/>"##
        );
        for t in [1.0, 10.0, 100.0, 1000.0, 10_000.0] {
            let x = x_of(panel, t);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{}" stroke="#e5e5e5"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                TOP + PANEL_H,
                TOP + PANEL_H + 16.0,
                if t >= 1000.0 {
                    format!("{}k", t / 1000.0)
                } else {
                    format!("{t}")
                }
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle">seconds after recovery (log)</text>"##,
            l + PANEL_W / 2.0,
            TOP + PANEL_H + 34.0
        );
    }
    for (v, label) in [
        (0.01, "0.01×"),
        (0.1, "0.1×"),
        (1.0, "1×"),
        (10.0, "10×"),
        (100.0, "100×"),
        (1000.0, "1000×"),
    ] {
        let y = y_load(v);
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            LEFT[0],
            LEFT[0] + PANEL_W,
            LEFT[0] - 6.0,
            y + 4.0
        );
    }
    let y1 = y_load(1.0);
    let _ = writeln!(
        s,
        r##"<line x1="{}" y1="{y1:.1}" x2="{}" y2="{y1:.1}" stroke="#000" stroke-width="1.2" stroke-dasharray="4 4"/><text x="{}" y="{:.1}" text-anchor="end" fill="#000">capacity</text>"##,
        LEFT[0],
        LEFT[0] + PANEL_W,
        LEFT[0] + PANEL_W - 4.0,
        y1 - 4.0
    );
    for v in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = y_share(v);
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end">{:.0} %</text>"##,
            LEFT[1],
            LEFT[1] + PANEL_W,
            LEFT[1] - 6.0,
            y + 4.0,
            v * 100.0
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">Load: requests per second ÷ capacity</text><text x="{}" y="{}" text-anchor="middle" font-weight="bold">Messages delivered (share of all)</text>"##,
        LEFT[0] + PANEL_W / 2.0,
        TOP - 8.0,
        LEFT[1] + PANEL_W / 2.0,
        TOP - 8.0
    );
    // Series.
    let edges = edges();
    for r in rows {
        let c = color(r.strategy);
        let d = dash(r.strategy);
        // Load: mean arrivals per second in each bucket, until the last
        // second with any (a quiet bucket drops to the axis).
        let mut pts = Vec::new();
        for w in edges.windows(2) {
            let (a, b) = (w[0] as usize, (w[1].ceil() as usize).max(w[0] as usize + 1));
            if a >= r.arrivals_per_s.len() {
                break;
            }
            let slice = &r.arrivals_per_s[a..b.min(r.arrivals_per_s.len())];
            let mean = slice.iter().map(|v| f64::from(*v)).sum::<f64>() / slice.len() as f64;
            pts.push(((w[0].max(T_MIN) * w[1].max(T_MIN)).sqrt(), mean / cap));
        }
        let path: Vec<String> = pts
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x_of(0, *t), y_load(*v)))
            .collect();
        if !path.is_empty() {
            let _ = writeln!(
                s,
                r##"<polyline fill="none" stroke="{c}" stroke-width="2"{d} points="{}"/>"##,
                path.join(" ")
            );
        }
        // Delivered share, cumulative, at each bucket's end.
        let total = r.messages.max(1) as f64;
        let mut cum = 0u64;
        let mut pts = vec![(T_MIN, 0.0)];
        let mut i = 0usize;
        for w in edges.windows(2).skip(1) {
            let end = w[1] as usize;
            while i < r.delivered_per_s.len() && i < end {
                cum += u64::from(r.delivered_per_s[i]);
                i += 1;
            }
            pts.push((w[1], cum as f64 / total));
            if i >= r.delivered_per_s.len() {
                break;
            }
        }
        let path: Vec<String> = pts
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x_of(1, *t), y_share(*v)))
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline fill="none" stroke="{c}" stroke-width="2"{d} points="{}"/>"##,
            path.join(" ")
        );
    }
    // Legend: two rows.
    for (i, r) in rows.iter().enumerate() {
        let label = r.strategy.label();
        let (lx, ly) = (
            40.0 + (i % 3) as f64 * 310.0,
            H - 44.0 + (i / 3) as f64 * 22.0,
        );
        let _ = writeln!(
            s,
            r##"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="3"{}/><text x="{}" y="{}">{}</text>"##,
            lx + 22.0,
            color(r.strategy),
            dash(r.strategy),
            lx + 27.0,
            ly + 4.0,
            label.replace('&', "&amp;").replace('<', "&lt;")
        );
    }
    s.push_str("</svg>\n");
    s
}
