//! The shipped DLM scenarios (`scenarios/*.toml`) run through `knx_echarge::simulate` and the
//! `simulate` command: the fuse is protected, per-phase allocation beats symmetric allocation
//! where single-phase cars sit on different phases, the energy bound holds, meter drop-out
//! leads to emergency minimum and back, and runs are deterministic. The scenarios of issue 15
//! (one per DLM defect found with real vehicle and meter behaviour) run and report their
//! metrics; what they must show is `issue_15_scenarios_meet_the_targets`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::float_cmp,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use knx_echarge::simulate::{self, AllocationMode, RunResult, Scenario};

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The scenarios of issue 15, one per phenomenon 1–9, in that order.
const ISSUE_15: [&str; 9] = [
    "car-start-seen-as-house-load",
    "slow-cars-slow-meter",
    "capped-and-full-cars",
    "steady-load-noisy-meter",
    "prioritised-under-queue",
    "one-phase-car-on-free-phase",
    "emergency-with-high-house-load",
    "invalid-current-reading",
    "start-sequence",
];

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap()
}

fn mode(results: &[RunResult], m: AllocationMode) -> &RunResult {
    results.iter().find(|r| r.summary.mode == m).unwrap()
}

#[test]
fn every_shipped_scenario_protects_the_fuse_and_stays_within_the_energy_bound() {
    let files = scenarios();
    for name in [
        "evening-peak",
        "three-single-phase-cars",
        "meter-dropout",
        "grid-control-event",
        "high-power-storm",
        "minimums-not-fitting",
    ] {
        assert!(
            files.iter().any(|f| f.file_stem().unwrap() == name),
            "scenarios/{name}.toml is missing"
        );
    }
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        if ISSUE_15.contains(&stem.as_str()) {
            continue;
        }
        let scenario = Scenario::load(&file).unwrap();
        for r in simulate::run_all(&scenario).unwrap() {
            let s = &r.summary;
            let what = format!("{} ({})", file.display(), s.mode.name());
            assert_eq!(
                s.overload_amp_seconds.values(),
                [0.0; 3],
                "{what}: overload above the fuse"
            );
            assert!(
                s.energy_kwh <= s.energy_bound_kwh + 1e-9,
                "{what}: {} kWh above the bound {} kWh",
                s.energy_kwh,
                s.energy_bound_kwh
            );
            assert!((0.0..=1.0).contains(&s.jain_fairness), "{what}");
            assert_eq!(r.rows.len(), scenario.duration.as_secs() as usize, "{what}");
        }
    }
}

#[test]
fn per_phase_allocation_delivers_at_least_20_percent_more_to_three_single_phase_cars() {
    let scenario = load("three-single-phase-cars");
    assert_eq!(
        scenario.modes,
        vec![AllocationMode::PerPhase, AllocationMode::Symmetric],
        "both modes are measured in the same run"
    );
    let results = simulate::run_all(&scenario).unwrap();
    let per_phase = mode(&results, AllocationMode::PerPhase).summary.energy_kwh;
    let symmetric = mode(&results, AllocationMode::Symmetric).summary.energy_kwh;
    assert!(
        per_phase >= 1.2 * symmetric,
        "per-phase {per_phase} kWh, symmetric {symmetric} kWh"
    );
    let summaries: Vec<_> = results.iter().map(|r| &r.summary).collect();
    assert!(simulate::per_phase_gain(&summaries).unwrap() >= 0.2);
}

#[test]
fn meter_drop_out_leads_to_emergency_minimum_and_recovery() {
    let scenario = load("meter-dropout");
    let silence = scenario.events.meter_silence[0];
    let limit = silence.from + scenario.meter_interval + scenario.meter_tolerance;
    let mins: Vec<_> = scenario.points.iter().map(|p| p.min).collect();
    for r in simulate::run_all(&scenario).unwrap() {
        let at = |t: u64| &r.rows[t as usize];
        // Before the silence: regulated, above the minimum somewhere.
        assert!(!at(silence.from.as_secs() - 1).emergency);
        // Emergency from interval + tolerance after the last value until values return:
        // never above the minimum; a point switched off shortly before may stay off for the
        // minimum on/off time (300 s), so by the end of the 600 s silence all are at minimum.
        let inside = (limit.as_secs() + 1)..silence.to.as_secs();
        for t in inside.clone() {
            let row = at(t);
            assert!(row.emergency, "t = {t}: emergency expected");
            for (s, m) in row.setpoints.iter().zip(&mins) {
                assert!(s.milliamps() == 0 || s == m, "t = {t}: {s} A in emergency");
            }
        }
        for t in (silence.to.as_secs() - 100)..silence.to.as_secs() {
            assert_eq!(at(t).setpoints, mins, "t = {t}: emergency minimum");
        }
        // Recovery: emergency ends with the first value, currents rise above the minimum.
        let after = silence.to.as_secs() + 1;
        assert!(
            !at(after).emergency,
            "emergency must end when values return"
        );
        let recovered = r.rows[after as usize..]
            .iter()
            .any(|row| row.setpoints.iter().zip(&mins).any(|(s, m)| s > m));
        assert!(recovered, "currents must rise again after the drop-out");
        assert!(r.summary.emergency_s >= silence.to.saturating_sub(limit).as_secs_f64() - 2.0);
    }
}

#[test]
fn the_same_scenario_gives_the_same_summary() {
    let scenario = load("evening-peak");
    let a = simulate::run_all(&scenario).unwrap();
    let b = simulate::run_all(&scenario).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.summary, y.summary);
        assert_eq!(x.rows, y.rows);
    }
}

#[test]
fn the_simulate_command_writes_csv_json_and_svg_per_mode() {
    let out = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/grid-control-event.toml");
    let run = Command::new(env!("CARGO_BIN_EXE_knx-echarge"))
        .arg("simulate")
        .arg(&scenario)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("per-phase vs symmetric"), "{stdout}");
    for m in ["per-phase", "symmetric"] {
        let dir = out.path().join(m);
        let csv = std::fs::read_to_string(dir.join("timeseries.csv")).unwrap();
        assert!(csv.starts_with("t_s,meter_l1_a"), "{csv:.80}");
        assert!(
            csv.lines()
                .next()
                .unwrap()
                .contains("cp3_setpoint_a,cp3_actual_a")
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                .unwrap();
        for key in [
            "overload_amp_seconds",
            "energy_kwh",
            "energy_bound_kwh",
            "efficiency",
            "jain_fairness",
            "switch_events",
        ] {
            assert!(json.get(key).is_some(), "summary.json lacks {key}");
        }
        assert_eq!(json["overload_amp_seconds"]["L2"], 0.0);
        let svg = std::fs::read_to_string(dir.join("plot.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    }
    assert!(out.path().join("comparison.json").exists());
}

#[test]
fn a_bad_scenario_file_is_reported_with_line_and_column_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[grid]\nfuse = 35\n[time]\nduration = 60\n[[charging_point]]\nid = 1\nmax = 16\nspeed = 3\n",
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_knx-echarge"))
        .arg("simulate")
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("bad.toml:8:1:"), "{stderr}");
    assert!(stderr.contains("speed"), "{stderr}");
}

#[test]
fn issue_15_scenarios_run_and_report_their_metrics() {
    for name in ISSUE_15 {
        let scenario = load(name);
        for r in simulate::run_all(&scenario).unwrap() {
            let s = &r.summary;
            assert_eq!(r.rows.len(), scenario.duration.as_secs() as usize, "{name}");
            assert_eq!(s.points.len(), scenario.points.len(), "{name}");
            let split =
                s.over_fuse_house_amp_seconds.sum() + s.over_fuse_charging_amp_seconds.sum();
            assert!(
                (split - s.over_fuse_amp_seconds.sum()).abs() < 1e-3 * (1.0 + split),
                "{name}: the split adds up"
            );
            assert!(
                s.overload_amp_seconds.sum() <= s.over_fuse_amp_seconds.sum() + 1e-9,
                "{name}: the graced figure never exceeds the full one"
            );
            assert!(s.energy_bound_lp_kwh > 0.0, "{name}");
            assert!(!r.timeline.is_empty(), "{name}");
        }
    }
    // Each shows its phenomenon on the DLM it was written against (BENCHMARKS.md, "before").
    let first = |name: &str| simulate::run_all(&load(name)).unwrap().remove(0).summary;
    assert!(first("steady-load-noisy-meter").max_setpoint_changes_per_hour > 0.0);
    assert!(first("invalid-current-reading").max_meter_a.max() > 0.0);
}

/// What scenario `name` misses of the targets of issue 15 ("Done when"): no trip, no on/off
/// period shorter than the minimum on/off time, charging above the fuse only while the meter
/// and the cars catch up with a house step, no implausible value on KNX, and the targets
/// of its own phenomenon.
fn missed_targets(name: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let scenario = load(name);
    let results = simulate::run_all(&scenario).unwrap();
    for r in &results {
        let s = &r.summary;
        if s.protection.tripped {
            failures.push(format!("{name}: {} trips", s.protection.device));
        }
        if s.short_on_off_periods > 0 {
            failures.push(format!(
                "{name}: {} on/off periods shorter than the minimum on/off time",
                s.short_on_off_periods
            ));
        }
        // Charging may exceed the fuse only while the meter and the cars catch up with a
        // house step (or the start): within one meter period + 5 s reaction + 1 s (+ 1 s
        // for the one-second rows) after it.
        let allowed = scenario.meter_interval.as_secs_f64() + 7.0;
        let mut ups: Vec<f64> = vec![0.0];
        ups.extend(
            scenario
                .events
                .load_steps
                .iter()
                .map(|l| l.window.from.as_secs_f64()),
        );
        ups.extend(scenario.house.points.iter().map(|(t, _)| t.as_secs_f64()));
        let late = r.rows.iter().find(|row| {
            let t = row.t.as_secs_f64();
            let since = ups
                .iter()
                .filter(|u| **u <= t)
                .map(|u| t - u)
                .fold(f64::INFINITY, f64::min);
            row.charging_over_fuse.0.iter().any(|c| c.milliamps() > 50) && since > allowed
        });
        if let Some(row) = late {
            failures.push(format!(
                "{name}: charging above the fuse at {} s, longer than {allowed} s after a house step ({} A·s in all)",
                row.t.as_secs(),
                s.over_fuse_charging_amp_seconds.sum()
            ));
        }
        if s.implausible_values_published > 0 {
            failures.push(format!("{name}: implausible currents published on KNX"));
        }
    }
    let summary = &results[0].summary;
    match name {
        "steady-load-noisy-meter" => {
            for p in summary
                .points
                .iter()
                .filter(|p| p.setpoint_changes_per_hour > 60.0)
            {
                failures.push(format!(
                    "{name}: point {} changes {} times per hour",
                    p.charging_point, p.setpoint_changes_per_hour
                ));
            }
        }
        "prioritised-under-queue" => {
            // The prioritised car arrives while the two cars that fit have just started:
            // it takes the place of the first one whose minimum on/off time is over (nobody
            // is switched more often than that), and waits behind nobody after that.
            let v = &summary.vehicles[2];
            let limit = 300.0; // the scenario's min_switch_time
            if v.longest_wait_s > limit || v.waiting_share > 0.05 {
                failures.push(format!(
                    "{name}: the prioritised car waited {} s ({:.0} % of its time)",
                    v.longest_wait_s,
                    v.waiting_share * 100.0
                ));
            }
            // Every waiting car gets its turn within rotation interval × waiting cars (three
            // wait; + 10 s for break before make and a meter period).
            for v in &summary.vehicles {
                if v.longest_wait_s > 3.0 * 900.0 + 10.0 {
                    failures.push(format!("{name}: {} waited {} s", v.name, v.longest_wait_s));
                }
            }
        }
        "start-sequence" => {
            for p in summary.points.iter().filter(|p| p.start_switches > 1) {
                failures.push(format!(
                    "{name}: point {} sent {} on/off switches in the first 5 s",
                    p.charging_point, p.start_switches
                ));
            }
        }
        _ => {}
    }
    failures
}

/// The targets of issue 15 on the nine scenarios written for it. Fails on the DLM
/// before the fix: e.g. `car-start-seen-as-house-load` has 48 on/off periods shorter than
/// the minimum on/off time, `steady-load-noisy-meter` 1,305 setpoint changes per hour per
/// point, `invalid-current-reading` 8,000 A·s per phase above the fuse caused by charging;
/// and until the start-up wait, the queue's minimum-on-time order and the pending-reduction
/// estimate, 2 short periods each in `car-start-seen-as-house-load` and
/// `prioritised-under-queue`; until idle points waited for the meter's first value, 601 s
/// of charging above the fuse in `emergency-with-high-house-load`; until no point was raised
/// while the cautious plans dropped one the latest estimate keeps, 1 short period in
/// `one-phase-car-on-free-phase`.
#[test]
fn issue_15_scenarios_meet_the_targets() {
    let failures: Vec<String> = ISSUE_15.iter().flat_map(|n| missed_targets(n)).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Every event kind and meter kind of the scenario format runs and shows in the timeline:
/// an unreachable point (its box keeps its last setpoint), invalid currents flagged by the
/// driver, interruption (object 55 + 50 × (n − 1)), grid-supporting control with a power
/// cap, the unbalanced-load cap, a phase switch, and 1-phase and power meters.
#[test]
fn every_event_and_meter_kind_runs_and_shows_in_the_timeline() {
    let base = r#"
[grid]
fuse = 35
reserve = 3
protection = "B"
protection_rating = 32
[dlm]
grid_control_power = 4.2
unbalanced_load = 16
[meter]
interval = 2
tolerance = 5
kind = "KIND"
[time]
duration = 900
step = 0.5
[[charging_point]]
id = 1
[[charging_point]]
id = 2
rotation = "L2-L3-L1"
[[vehicle]]
charging_point = 1
arrival = 0
departure = 900
max_current = 16
energy = 20
ramp = 3
phase_switch = [ { at = 400, phases = 1, pause = 30 } ]
[[vehicle]]
charging_point = 2
arrival = 0
departure = 900
phases = 2
max_current = 16
energy = 20
[house]
points = [ { t = 0, current = [5, 5, 5] } ]
[[events.unreachable]]
charging_point = 2
from = 100
to = 160
[[events.invalid_current]]
charging_point = 2
from = 200
to = 230
kind = "flagged"
[[events.interruption]]
charging_point = 1
from = 300
to = 360
[[events.grid_control]]
from = 600
to = 700
"#;
    for kind in ["3-phase", "1-phase", "power"] {
        let scenario = Scenario::parse(&base.replace("KIND", kind), "all.toml").unwrap();
        let r = simulate::run_all(&scenario).unwrap().remove(0);
        assert_eq!(r.summary.protection.device, "B 32 A");
        let has = |kind: &str, what: &str| {
            r.timeline
                .iter()
                .any(|e| e.kind == kind && e.what.contains(what))
        };
        for what in [
            "CP2 unreachable: begins",
            "CP2 reports invalid currents: begins",
            "CP1 interrupted (object 55): begins",
            "grid-supporting control: ends",
        ] {
            assert!(has("event", what), "{kind}: no event {what}");
        }
        assert!(
            r.timeline.iter().any(|e| e.kind == "fault+"),
            "{kind}: no fault raised"
        );
        // Interrupted: point 1 at 0 A in the middle of its interruption.
        assert_eq!(r.rows[330].setpoints[0].milliamps(), 0, "{kind}");
        // After the phase switch the car at point 1 draws on one grid phase only.
        let g = &r.rows[500].actual_phases[0];
        let on: Vec<_> = g.0.iter().filter(|c| c.milliamps() > 0).collect();
        assert!(on.len() <= 1, "{kind}: {g:?}");
        // The 2-phase car draws on L2 and L3 (rotation L2-L3-L1).
        let g = &r.rows[50].actual_phases[1];
        assert_eq!(g.0[0].milliamps(), 0, "{kind}: {g:?}");
    }
}

/// Seconds in which a charging point delivers current (its box's setpoint above 0 A, in this
/// second and the one before) while the DLM's reason for it reads `queued`, over every mode
/// of the scenario.
fn charging_while_shown_queued(name: &str) -> usize {
    let scenario = load(name);
    let mut count = 0;
    for r in simulate::run_all(&scenario).unwrap() {
        for (i, p) in scenario.points.iter().enumerate() {
            let mut changes = r
                .timeline
                .iter()
                .filter(|e| e.kind == "limit" && e.charging_point == Some(p.id.number()))
                .peekable();
            let mut limit = "none";
            for (t, pair) in r.rows.windows(2).enumerate() {
                let t_s = u64::try_from(t + 1).unwrap();
                while let Some(e) = changes.next_if(|e| e.t_s <= t_s) {
                    limit = e.what.as_str();
                }
                let charging = pair
                    .iter()
                    .all(|row| row.setpoints[i] > knx_echarge::units::Current::ZERO);
                if charging && limit == "queued" {
                    count += 1;
                }
            }
        }
    }
    count
}

/// A charging point that keeps charging is never shown as queued: the reason shown is that of
/// the plan whose current is in force, not of the cautious plan raises are granted on (the
/// website and the log showed "queued" at 10 A every other second).
#[test]
fn a_charging_point_that_charges_is_never_shown_as_queued() {
    for name in [
        "evening-peak",
        "minimums-not-fitting",
        "prioritised-under-queue",
        "phase-switching",
    ] {
        let n = charging_while_shown_queued(name);
        eprintln!("{name}: {n} s charging while shown queued");
        assert_eq!(n, 0, "{name}: {n} s charging while shown queued");
    }
}

/// Energy drawn from the grid by charging point `pi` in `[from, to)` s, kWh (one row per
/// second, 230 V per phase).
fn point_kwh(r: &RunResult, pi: usize, from: u64, to: u64) -> f64 {
    r.rows
        .iter()
        .filter(|row| (from..to).contains(&row.t.as_secs()))
        .map(|row| {
            row.actual_phases[pi]
                .0
                .iter()
                .map(|c| c.as_amps_f64())
                .sum::<f64>()
                * 230.0
                / 3_600_000.0
        })
        .sum()
}

/// `scenarios/phase-switching.toml` with switching on or off.
fn phase_switching(on: bool) -> (Scenario, RunResult) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/phase-switching.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\nphase_switch = true\n"));
    let text = if on {
        text
    } else {
        text.replace("\nphase_switch = true\n", "\nphase_switch = false\n")
    };
    let scenario = Scenario::parse(&text, "phase-switching.toml").unwrap();
    let mut results = simulate::run_all(&scenario).unwrap();
    assert_eq!(results.len(), 1, "per-phase only");
    (scenario, results.remove(0))
}

/// The phase switches in the timeline: (s, phases after it).
fn phase_switches(r: &RunResult) -> Vec<(u64, u8)> {
    r.timeline
        .iter()
        .filter(|e| e.kind == "phases")
        .map(|e| {
            let n = if e.what.contains("to 1 phase") { 1 } else { 3 };
            (e.t_s, n)
        })
        .collect()
}

/// Issue 15, item 7: a 3-phase car whose 3-phase minimum does not fit on L2/L3 is switched to
/// one phase and charges on L1 (the point's phase 1) while the load lasts, goes back to three
/// phases when it drops and to one again when it returns; never two switches within the
/// minimum on/off time; the fuse is never exceeded. Without `phase_switch` the same car gets
/// nothing while L2/L3 are loaded.
#[test]
fn phase_switching_charges_a_three_phase_car_on_one_phase_while_l2_and_l3_are_loaded() {
    let (scenario, r) = phase_switching(true);
    let s = &r.summary;
    assert!(!s.protection.tripped);
    assert_eq!(s.over_fuse_amp_seconds.values(), [0.0; 3]);
    assert_eq!(s.over_fuse_charging_amp_seconds.values(), [0.0; 3]);
    assert_eq!(s.short_on_off_periods, 0);
    // To one phase soon after the car arrives (60 s), to three after the load dropped at
    // 1200–1230 s (the 3-phase minimum fitted with its margin for 60 s), to one again once
    // the load that returns from 2400 s leaves less than 6 A on L2/L3.
    let switches = phase_switches(&r);
    assert_eq!(switches.len(), 3, "{switches:?}");
    assert!(
        switches[0].1 == 1 && (60..120).contains(&switches[0].0),
        "{switches:?}"
    );
    assert!(
        switches[1].1 == 3 && (1260..1400).contains(&switches[1].0),
        "{switches:?}"
    );
    assert!(switches[2].1 == 1 && switches[2].0 > 2400, "{switches:?}");
    let min_switch = scenario
        .config(AllocationMode::PerPhase)
        .unwrap()
        .dlm
        .min_switch_time
        .as_secs();
    for w in switches.windows(2) {
        assert!(w[1].0 - w[0].0 >= min_switch, "{switches:?}");
    }
    assert_eq!(s.points[0].phase_switches, 3);
    // On one phase the car charges on L1 only, beyond its minimum.
    for row in &r.rows[200..1200] {
        assert_eq!(row.phases[0], 1, "t = {:?}", row.t);
        let g = row.actual_phases[0].0;
        assert!(g[0].as_amps_f64() >= 6.0, "t = {:?}: {g:?}", row.t);
        assert_eq!((g[1].milliamps(), g[2].milliamps()), (0, 0));
    }
    // Back on three: it draws on all three.
    for row in &r.rows[1400..2400] {
        assert_eq!(row.phases[0], 3, "t = {:?}", row.t);
        assert!(
            row.actual_phases[0]
                .0
                .iter()
                .all(|c| c.as_amps_f64() >= 6.0)
        );
    }
    // While L2/L3 are loaded (0–1200 s): more than 1 kWh with switching, nothing without.
    let (_, off) = phase_switching(false);
    let with = point_kwh(&r, 0, 0, 1200);
    let without = point_kwh(&off, 0, 0, 1200);
    assert!(with > 1.0, "{with} kWh");
    assert!(without < 0.01, "{without} kWh");
    let (v_on, v_off) = (&s.vehicles[0], &off.summary.vehicles[0]);
    assert!(
        v_on.delivered_kwh > v_off.delivered_kwh + 1.5,
        "{v_on:?} {v_off:?}"
    );
    assert!(v_on.longest_wait_s < 60.0 && v_off.longest_wait_s > 1000.0);
}

/// A point without `phase_switch` is never switched: its box stays on three phases and the
/// gateway sends it no `SetPhases`; the fuse is protected all the same.
#[test]
fn a_point_without_phase_switch_stays_on_three_phases() {
    let (_, r) = phase_switching(false);
    assert!(phase_switches(&r).is_empty());
    assert_eq!(r.summary.points[0].phase_switches, 0);
    assert!(r.rows.iter().all(|row| row.phases[0] == 3));
    assert!(!r.summary.protection.tripped);
    assert_eq!(r.summary.over_fuse_charging_amp_seconds.values(), [0.0; 3]);
}
