//! What a simulation writes: `timeseries.csv`, `summary.json`, `plot.svg` and
//! `timeline.csv` (faults, limit reasons, events as they changed) per run,
//! `comparison.json` when several modes ran, and the one-screen text summary.
//!
//! The SVG is written by hand: one panel per grid phase (true current against the fuse and
//! the DLM budget, house load underneath) and one panel with every charging point's setpoint
//! and actual current. Long runs are thinned to at most [`MAX_PLOT_POINTS`] per line.

use std::fmt::Write as _;
use std::path::Path;

use super::run::{Row, RunResult, Summary};
use crate::units::{Current, Phase};

/// At most this many points per plotted line.
pub const MAX_PLOT_POINTS: usize = 1500;

/// The time series as CSV (one row per second).
pub fn csv(result: &RunResult, point_ids: &[u8]) -> String {
    let mut out = String::from(
        "t_s,meter_l1_a,meter_l2_a,meter_l3_a,budget_l1_a,budget_l2_a,budget_l3_a,available_l1_a,available_l2_a,available_l3_a,house_l1_a,house_l2_a,house_l3_a,emergency,high_power,grid_control",
    );
    for id in point_ids {
        let _ = write!(out, ",cp{id}_setpoint_a,cp{id}_actual_a");
    }
    for id in point_ids {
        let _ = write!(out, ",cp{id}_l1_a,cp{id}_l2_a,cp{id}_l3_a");
    }
    out.push_str(",charging_over_fuse_l1_a,charging_over_fuse_l2_a,charging_over_fuse_l3_a");
    for id in point_ids {
        let _ = write!(out, ",cp{id}_phases");
    }
    out.push('\n');
    let a = |c: Current| c.as_amps_f64();
    for r in &result.rows {
        let _ = write!(out, "{}", r.t.as_secs());
        for v in [&r.meter, &r.budget, &r.available, &r.house] {
            for p in Phase::ALL {
                let _ = write!(out, ",{:.3}", a(v.get(p)));
            }
        }
        let _ = write!(
            out,
            ",{},{},{}",
            u8::from(r.emergency),
            u8::from(r.high_power),
            u8::from(r.grid_control)
        );
        for (s, c) in r.setpoints.iter().zip(&r.actual) {
            let _ = write!(out, ",{:.3},{:.3}", a(*s), a(*c));
        }
        for g in &r.actual_phases {
            for p in Phase::ALL {
                let _ = write!(out, ",{:.3}", a(g.get(p)));
            }
        }
        for p in Phase::ALL {
            let _ = write!(out, ",{:.3}", a(r.charging_over_fuse.get(p)));
        }
        for n in &r.phases {
            let _ = write!(out, ",{n}");
        }
        out.push('\n');
    }
    out
}

const COLOURS: [&str; 5] = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"];

fn polyline(
    out: &mut String,
    rows: &[Row],
    x: &dyn Fn(f64) -> f64,
    y: &dyn Fn(f64) -> f64,
    value: &dyn Fn(&Row) -> f64,
    style: &str,
) {
    let stride = rows.len().div_ceil(MAX_PLOT_POINTS).max(1);
    out.push_str("<polyline fill=\"none\" ");
    out.push_str(style);
    out.push_str(" points=\"");
    for (i, r) in rows.iter().enumerate() {
        if i % stride == 0 || i + 1 == rows.len() {
            let _ = write!(out, "{:.1},{:.1} ", x(r.t.as_secs_f64()), y(value(r)));
        }
    }
    out.push_str("\"/>\n");
}

/// The plot as SVG.
pub fn svg(result: &RunResult, point_ids: &[u8]) -> String {
    let s = &result.summary;
    let rows = &result.rows;
    let (w, panel, left, top) = (1000.0f64, 170.0f64, 60.0f64, 40.0f64);
    let plot_w = w - left - 20.0;
    let panels = 4.0;
    let h = top + panels * (panel + 30.0) + 20.0;
    let t_max = s.duration_s.max(1.0);
    let x = move |t: f64| left + t / t_max * plot_w;
    let max_meter = s.max_meter_a.values().into_iter().fold(0.0f64, f64::max);
    let y_max = (s.fuse_a * 1.15).max(max_meter * 1.05).max(1.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(
        out,
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"20\" font-size=\"14\">{} — {} allocation: energy {:.2} kWh of bound {:.2} kWh, overload A·s {:.1}/{:.1}/{:.1}</text>",
        escape(&s.scenario),
        s.mode.name(),
        s.energy_kwh,
        s.energy_bound_kwh,
        s.overload_amp_seconds.l1,
        s.overload_amp_seconds.l2,
        s.overload_amp_seconds.l3,
    );
    let panel_top = |k: f64| top + k * (panel + 30.0);
    let frame = |out: &mut String, k: f64, title: &str, y_max: f64| {
        let y0 = panel_top(k);
        let _ = writeln!(
            out,
            "<rect x=\"{left}\" y=\"{y0}\" width=\"{plot_w}\" height=\"{panel}\" fill=\"none\" stroke=\"#999\"/>\n<text x=\"{left}\" y=\"{:.1}\">{title}</text>",
            y0 - 4.0
        );
        for i in 0..=4 {
            let v = y_max * f64::from(i) / 4.0;
            let yy = y0 + panel - panel * f64::from(i) / 4.0;
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0} A</text><line x1=\"{left}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>",
                left - 4.0,
                yy + 4.0,
                left + plot_w
            );
        }
        for i in 0..=6 {
            let t = t_max * f64::from(i) / 6.0;
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.0} min</text>",
                x(t),
                y0 + panel + 13.0,
                t / 60.0
            );
        }
    };
    for (k, p) in Phase::ALL.into_iter().enumerate() {
        #[allow(clippy::cast_precision_loss, reason = "panel index")]
        let kf = k as f64;
        frame(
            &mut out,
            kf,
            &format!(
                "L{}: current (black), fuse (red), budget (orange), house load (grey)",
                k + 1
            ),
            y_max,
        );
        let y0 = panel_top(kf);
        let y = move |v: f64| y0 + panel - v.clamp(0.0, y_max) / y_max * panel;
        let fy = y(s.fuse_a);
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{fy:.1}\" y2=\"{fy:.1}\" stroke=\"red\" stroke-dasharray=\"6 3\"/>",
            left + plot_w
        );
        polyline(
            &mut out,
            rows,
            &x,
            &y,
            &|r| r.budget.get(p).as_amps_f64(),
            "stroke=\"orange\" stroke-dasharray=\"3 2\"",
        );
        polyline(
            &mut out,
            rows,
            &x,
            &y,
            &|r| r.house.get(p).as_amps_f64(),
            "stroke=\"#aaa\"",
        );
        polyline(
            &mut out,
            rows,
            &x,
            &y,
            &|r| r.meter.get(p).as_amps_f64(),
            "stroke=\"black\"",
        );
    }
    let max_set = rows
        .iter()
        .flat_map(|r| r.setpoints.iter().chain(&r.actual))
        .map(|c| c.as_amps_f64())
        .fold(6.0f64, f64::max)
        * 1.1;
    frame(
        &mut out,
        3.0,
        "charging points: setpoint (solid), actual per phase (dotted)",
        max_set,
    );
    let y0 = panel_top(3.0);
    let y = move |v: f64| y0 + panel - v.clamp(0.0, max_set) / max_set * panel;
    for (i, id) in point_ids.iter().enumerate() {
        let colour = COLOURS.get(i % COLOURS.len()).copied().unwrap_or("black");
        polyline(
            &mut out,
            rows,
            &x,
            &y,
            &|r| r.setpoints.get(i).map_or(0.0, |c| c.as_amps_f64()),
            &format!("stroke=\"{colour}\""),
        );
        polyline(
            &mut out,
            rows,
            &x,
            &y,
            &|r| r.actual.get(i).map_or(0.0, |c| c.as_amps_f64()),
            &format!("stroke=\"{colour}\" stroke-dasharray=\"2 2\""),
        );
        #[allow(clippy::cast_precision_loss, reason = "at most five")]
        let lx = left + 10.0 + i as f64 * 70.0;
        let _ = writeln!(
            out,
            "<text x=\"{lx:.1}\" y=\"{:.1}\" fill=\"{colour}\">CP{id}</text>",
            y0 + 14.0
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The fault/limit timeline as CSV.
pub fn timeline_csv(result: &RunResult) -> String {
    let mut out = String::from("t_s,kind,charging_point,what\n");
    for e in &result.timeline {
        let cp = e.charging_point.map_or(String::new(), |c| c.to_string());
        let what = e.what.replace('"', "'");
        let _ = writeln!(out, "{},{},{cp},\"{what}\"", e.t_s, e.kind);
    }
    out
}

/// Writes one run's files into `dir`.
pub fn write_run(dir: &Path, result: &RunResult, point_ids: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("timeseries.csv"), csv(result, point_ids))?;
    let json = serde_json::to_string_pretty(&result.summary).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json + "\n")?;
    std::fs::write(dir.join("plot.svg"), svg(result, point_ids))?;
    std::fs::write(dir.join("timeline.csv"), timeline_csv(result))?;
    Ok(())
}

/// One screen of text: a line per mode, then the per-phase gain when both modes ran.
pub fn text(summaries: &[&Summary]) -> String {
    let mut out = String::new();
    if let Some(first) = summaries.first() {
        let _ = writeln!(
            out,
            "scenario {}: {:.0} s, fuse {:.0} A, budget {:.0} A per phase",
            first.scenario, first.duration_s, first.fuse_a, first.budget_a
        );
    }
    let _ = writeln!(
        out,
        "{:<10} {:>20} {:>8} {:>8} {:>6} {:>6} {:>8} {:>8} {:>9}",
        "mode",
        "overload A·s L1/L2/L3",
        "kWh",
        "bound",
        "eff",
        "jain",
        "switches",
        "emerg s",
        "max A"
    );
    for s in summaries {
        let o = s.overload_amp_seconds;
        let max = s.max_meter_a.values().into_iter().fold(0.0f64, f64::max);
        let _ = writeln!(
            out,
            "{:<10} {:>20} {:>8.2} {:>8.2} {:>6.3} {:>6.3} {:>8} {:>8.0} {:>9.1}",
            s.mode.name(),
            format!("{:.1}/{:.1}/{:.1}", o.l1, o.l2, o.l3),
            s.energy_kwh,
            s.energy_bound_kwh,
            s.efficiency,
            s.jain_fairness,
            s.switch_events,
            s.emergency_s,
            max
        );
    }
    let _ = writeln!(
        out,
        "{:<10} {:>22} {:>22} {:>11} {:>8} {:>7} {:>8} {:>6} {:>8} {:>6}",
        "mode",
        "over fuse A·s all/chg",
        "protection (used)",
        "LP bound",
        "eff LP",
        "chg/h",
        "rev/h",
        "flaps",
        "wait s",
        "bad KNX"
    );
    for s in summaries {
        let p = &s.protection;
        let used = p.max_integral_used.max();
        let trip = p
            .tripped_at_s
            .map_or_else(|| format!("{used:.2}"), |at| format!("TRIP {at:.0} s"));
        let max_rev = s
            .points
            .iter()
            .map(|p| p.reversals_per_hour)
            .fold(0.0f64, f64::max);
        let _ = writeln!(
            out,
            "{:<10} {:>22} {:>22} {:>11.2} {:>8.3} {:>7.0} {:>8.0} {:>6} {:>8.0} {:>6}",
            s.mode.name(),
            format!(
                "{:.1}/{:.1}",
                s.over_fuse_amp_seconds.sum(),
                s.over_fuse_charging_amp_seconds.sum()
            ),
            format!("{} {trip}", p.device),
            s.energy_bound_lp_kwh,
            s.efficiency_lp,
            s.max_setpoint_changes_per_hour,
            max_rev,
            s.short_on_off_periods,
            s.longest_wait_s,
            s.implausible_values_published
        );
    }
    for s in summaries {
        let switched: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.phase_switches > 0)
            .map(|p| {
                format!(
                    "CP{} {} switch(es), {:.0} s on one phase",
                    p.charging_point, p.phase_switches, p.one_phase_s
                )
            })
            .collect();
        if !switched.is_empty() {
            let _ = writeln!(
                out,
                "{:<10} 1-/3-phase: {}",
                s.mode.name(),
                switched.join("; ")
            );
        }
    }
    if let Some(gain) = super::per_phase_gain(summaries) {
        let _ = writeln!(out, "per-phase vs symmetric: {:+.1} % energy", gain * 100.0);
    }
    if summaries.iter().any(|s| s.stale_poll_timeouts > 0) {
        let _ = writeln!(
            out,
            "note: the core's poll_timeout named an instant already ticked {} time(s)",
            summaries.iter().map(|s| s.stale_poll_timeouts).sum::<u32>()
        );
    }
    out
}
