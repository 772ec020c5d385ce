//! Property tests of the DLM against vehicles and meters as they are (issue 15, "Done when"):
//! vehicles that follow a new current after 0–5 s (IEC 61851-1 allows 5 s), ramp, taper
//! towards full and pause on their own; meters with a period of 1–5 s, latency and ±2 A of
//! noise; house loads that step up and down. Each case is a generated scenario run through
//! `knx_echarge::simulate` (the real core at injected time).
//!
//! Checked on every second of the run:
//! 1. **No raise into overload**: when the DLM raises a charging point, the house load plus
//!    what every point is committed to (the larger of its setpoint and its draw) stays
//!    within the fuse on the raised point's phases, unless the house load stepped up within
//!    the last meter period + latency + 1 s (the DLM cannot have seen it yet). The load
//!    reserve is at least the meter noise + 2 A, so noise alone never excuses it.
//! 2. **Charging leaves an excursion in time**: the part of the current above the fuse that
//!    charging adds ends within one meter period + the slowest vehicle's reaction + 1 s
//!    (+ the meter latency and 1 s for the one-second rows) after a house step or the start.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

use std::fmt::Write as _;

use knx_echarge::simulate::{self, AllocationMode, Scenario};
use knx_echarge::units::{Current, Phase};
use proptest::prelude::*;

const DURATION: u32 = 900;
const ROTATIONS: [&str; 3] = ["L1-L2-L3", "L2-L3-L1", "L3-L1-L2"];

#[derive(Debug, Clone)]
struct Car {
    phases: u8,
    reaction: f64,
    ramp: f64,
    max: u32,
    taper_from: Option<f64>,
    energy: f64,
    pause: Option<(u32, u32)>,
}

#[derive(Debug, Clone)]
struct Case {
    fuse: u32,
    noise: f64,
    interval: u32,
    latency: f64,
    queue: bool,
    house: [u32; 3],
    steps: Vec<(u32, u32, [u32; 3])>,
    cars: Vec<Car>,
    seed: u64,
}

impl Case {
    fn reserve(&self) -> u32 {
        self.noise.ceil() as u32 + 2
    }

    fn toml(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "name = \"property\"\n[grid]\nfuse = {}\nreserve = {}\n[dlm]\nmodes = [\"per-phase\"]\novercurrent_strategy = \"{}\"\nramp_up_rate = 2.0\nmin_switch_time = 300\n[meter]\ninterval = {}\ntolerance = 5\nnoise = {:.1}\nseed = {}\nlatency = {:.1}\n[time]\nduration = {DURATION}\nstep = 0.5",
            self.fuse,
            self.reserve(),
            if self.queue { "queue" } else { "interrupt-all" },
            self.interval,
            self.noise,
            self.seed,
            self.latency,
        );
        for (i, _) in self.cars.iter().enumerate() {
            let _ = writeln!(
                t,
                "[[charging_point]]\nid = {}\nrotation = \"{}\"\nmax = 16",
                i + 1,
                ROTATIONS[i % 3]
            );
        }
        for (i, c) in self.cars.iter().enumerate() {
            let _ = writeln!(
                t,
                "[[vehicle]]\ncharging_point = {}\narrival = {}\ndeparture = {DURATION}\nphases = {}\nmax_current = {}\nenergy = {:.2}\nreaction = {:.1}\nramp = {:.1}",
                i + 1,
                i * 20,
                c.phases,
                c.max,
                c.energy,
                c.reaction,
                c.ramp
            );
            if let Some(f) = c.taper_from {
                let _ = writeln!(t, "taper_from = {f:.2}\ntaper_to = 2");
            }
            if let Some((from, to)) = c.pause {
                let _ = writeln!(t, "pauses = [ {{ from = {from}, to = {to} }} ]");
            }
        }
        let _ = writeln!(
            t,
            "[house]\npoints = [ {{ t = 0, current = [{}, {}, {}] }} ]",
            self.house[0], self.house[1], self.house[2]
        );
        for (from, len, c) in &self.steps {
            let _ = writeln!(
                t,
                "[[events.load_step]]\nfrom = {from}\nto = {}\ncurrent = [{}, {}, {}]",
                from + len,
                c[0],
                c[1],
                c[2]
            );
        }
        t
    }
}

fn car() -> impl Strategy<Value = Car> {
    (
        prop_oneof![Just(1u8), Just(3u8)],
        0u32..=10,
        prop_oneof![Just(0.0), 2.0..10.0f64],
        10u32..=16,
        proptest::option::of(0.5..0.9f64),
        2.0..8.0f64,
        proptest::option::of((100u32..700, 30u32..200)),
    )
        .prop_map(|(phases, r, ramp, max, taper_from, energy, pause)| Car {
            phases,
            reaction: f64::from(r) * 0.5,
            ramp: (ramp * 10.0).round() / 10.0,
            max,
            taper_from,
            energy,
            pause: pause.map(|(from, len)| (from, from + len)),
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just(25u32),
            Just(32),
            Just(35),
            Just(40),
            Just(50),
            Just(63)
        ],
        prop_oneof![Just(0.0), 0.5..2.0f64],
        1u32..=5,
        0u32..=10,
        any::<bool>(),
        [2u32..15, 2u32..15, 2u32..15],
        proptest::collection::vec(
            (60u32..800, 30u32..300, [0u32..25, 0u32..25, 0u32..25]),
            1..4,
        ),
        proptest::collection::vec(car(), 1..5),
        any::<u64>(),
    )
        .prop_map(
            |(fuse, noise, interval, latency, queue, house, steps, cars, seed)| Case {
                fuse,
                noise: (noise * 10.0).round() / 10.0,
                interval,
                latency: f64::from(latency) * 0.1,
                queue,
                house,
                steps,
                cars,
                seed,
            },
        )
}

/// House step-up instants (and the start), seconds.
fn step_ups(case: &Case) -> Vec<f64> {
    let mut v = vec![0.0];
    for (from, _, c) in &case.steps {
        if c.iter().any(|a| *a > 0) {
            v.push(f64::from(*from));
        }
    }
    v
}

/// Runs `case` and returns the first violation, if any.
fn check(case: &Case) -> Option<String> {
    let scenario = Scenario::parse(&case.toml(), "property.toml").unwrap();
    let r = simulate::run::run(&scenario, AllocationMode::PerPhase).unwrap();
    let fuse = f64::from(case.fuse);
    let period = f64::from(case.interval);
    let slowest = case.cars.iter().map(|c| c.reaction).fold(0.0, f64::max);
    let ups = step_ups(case);
    let since_up = |t: f64| {
        ups.iter()
            .filter(|u| **u <= t)
            .map(|u| t - u)
            .fold(f64::INFINITY, f64::min)
    };
    let grid_phases: Vec<Vec<Phase>> = scenario
        .vehicles
        .iter()
        .map(|v| {
            scenario
                .point(v.charging_point)
                .unwrap()
                .grid_phases(v.phases)
        })
        .collect();
    let a = Current::as_amps_f64;
    for (k, row) in r.rows.iter().enumerate() {
        let t = row.t.as_secs_f64();
        // 2. Charging above the fuse only shortly after a house step.
        let excursion = Phase::ALL
            .iter()
            .any(|p| a(row.charging_over_fuse.get(*p)) > 0.05);
        let allowed = period + slowest + 1.0 + case.latency + 1.0;
        if excursion && since_up(t) > allowed {
            return Some(format!(
                "t = {t} s: charging above the fuse {:?} A, {:.1} s after the last house step (allowed {allowed:.1} s)",
                row.charging_over_fuse.0.map(a),
                since_up(t)
            ));
        }
        // 1. A raise never takes a phase into overload.
        let Some(prev) = k.checked_sub(1).and_then(|j| r.rows.get(j)) else {
            continue;
        };
        if since_up(t) <= period + case.latency + 1.0 {
            continue;
        }
        for (i, (now, before)) in row.setpoints.iter().zip(&prev.setpoints).enumerate() {
            if now <= before {
                continue;
            }
            for p in grid_phases.get(i).into_iter().flatten() {
                let committed: f64 = grid_phases
                    .iter()
                    .enumerate()
                    .map(|(j, phases)| {
                        let set = if phases.contains(p) {
                            a(row.setpoints[j])
                        } else {
                            0.0
                        };
                        set.max(a(row.actual_phases[j].get(*p)))
                    })
                    .sum();
                let total = a(row.house.get(*p)) + committed;
                if total > fuse + 1e-6 {
                    return Some(format!(
                        "t = {t} s: point {} raised {before} → {now}, {p:?} committed to {total:.1} A on a {fuse} A fuse",
                        i + 1
                    ));
                }
            }
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Fails on the DLM before issue 15's fix. Case found (shrunk by proptest, 2026-12-07,
    /// kept in `dlm_real_vehicles.proptest-regressions`): `a_case_the_dlm_before_issue_15_fails`
    /// below, "t = 76 s: point 1 raised 10.000 A → 11.000 A, L1 committed to 51.0 A on a 50 A
    /// fuse" (16 s after a +16 A house step on L1, three points on L1 are told 33 A where the
    /// house leaves 32 A; the point raised holds a car that takes only 10 A).
    #[test]
    #[ignore = "issue 15: a raise while another point offers more than its car draws (a capped car before the settle time, a paused car) can book more than the fuse (docs/dlm.md, Known issues)"]
    fn with_real_vehicles_and_meters_no_raise_into_overload_and_short_excursions(c in case()) {
        if let Some(v) = check(&c) {
            prop_assert!(false, "{v}\nscenario:\n{}", c.toml());
        }
    }
}

/// A vehicle that follows its current after `reaction` seconds without a ramp or taper and
/// wants 2 kWh (the shape of the shrunk cases below).
fn plain_car(phases: u8, reaction: f64, max: u32, pause: Option<(u32, u32)>) -> Car {
    Car {
        phases,
        reaction,
        ramp: 0.0,
        max,
        taper_from: None,
        energy: 2.0,
        pause,
    }
}

/// The harness itself: a case that every DLM must pass (one slow, fully fitting car, a house
/// that never leaves room for overload) passes.
#[test]
fn the_harness_passes_a_case_with_ample_room() {
    let c = Case {
        fuse: 63,
        noise: 1.0,
        interval: 2,
        latency: 0.3,
        queue: false,
        house: [5, 5, 5],
        steps: vec![(300, 120, [10, 10, 10])],
        cars: vec![Car {
            phases: 3,
            reaction: 5.0,
            ramp: 2.0,
            max: 16,
            taper_from: Some(0.8),
            energy: 3.0,
            pause: Some((500, 560)),
        }],
        seed: 7,
    };
    assert_eq!(check(&c), None);
}

/// The case proptest found on the DLM before issue 15's fix (shrunk; kept in
/// `dlm_real_vehicles.proptest-regressions` too). A 50 A fuse, a meter every second without
/// noise, the house stepping up by 16 A on L1 for 30 s at 60 s; a 1-phase car that follows at
/// once and two 3-phase cars that follow after 4.5 s, one of them pausing itself from 100 s
/// to 136 s. On the DLM before the fix: "t = 76 s: point 1 raised 10.000 A → 11.000 A, L1
/// committed to 51.0 A on a 50 A fuse".
#[test]
fn a_case_the_dlm_before_issue_15_fails() {
    let c = Case {
        fuse: 50,
        noise: 0.0,
        interval: 1,
        latency: 0.0,
        queue: false,
        house: [2, 2, 2],
        steps: vec![(60, 30, [16, 0, 0])],
        cars: vec![
            plain_car(1, 0.0, 10, None),
            plain_car(3, 4.5, 10, None),
            plain_car(3, 4.5, 14, Some((100, 136))),
        ],
        seed: 14_079_026_440_365_796_907,
    };
    assert_eq!(check(&c), None, "scenario:\n{}", c.toml());
}

/// Found by the property test on the first issue-15 DLM (shrunk; kept in
/// `dlm_real_vehicles.proptest-regressions`): a 1-phase car that follows after 3.5 s draws
/// its own 13 A ceiling on L1 when a 3-phase car arrives at 40 s; the DLM lowers it to 8 A and
/// switched the newcomer on 2 s later, while the slow car still drew 13 A: "t = 42 s: point 3
/// raised 0.000 A → 6.500 A, L1 committed to 32.5 A on a 32 A fuse". Break before make now
/// holds until a poll shows the lowered car at its new current (5 s at most, IEC 61851-1).
#[test]
fn a_slow_car_lowered_for_a_newcomer_is_seen_down_before_the_newcomer_starts() {
    let c = Case {
        fuse: 32,
        noise: 0.0,
        interval: 3,
        latency: 0.1,
        queue: false,
        house: [13, 2, 2],
        steps: vec![(60, 30, [0, 0, 0])],
        cars: vec![
            plain_car(1, 3.5, 13, None),
            plain_car(1, 0.0, 10, None),
            plain_car(3, 0.0, 10, None),
        ],
        seed: 0,
    };
    assert_eq!(check(&c), None, "scenario:\n{}", c.toml());
}

/// Found by the property test on `7afdb6f` (shrunk; kept in
/// `dlm_real_vehicles.proptest-regressions`): a +12 A house step on L3 at 289 s beside two
/// 3-phase cars at their 8 A leaves no room for both 6 A minimums (21 + 12 A on a 32 A fuse).
/// A 1-phase car on L2 paused itself; its box is wired with three phases. The DLM counted the
/// paused car at its current on all three phases (the step looked 6 A smaller) and, the meter
/// and the polls on the same seconds, waited for polls after a reading that never came: "t =
/// 293 s: charging above the fuse [0.0, 0.0, 1.0] A, 4.0 s after the last house step
/// (allowed 3.6 s)". A paused vehicle is booked on the phases it drew on, and a shortage
/// that the polls after the reading cannot lift is not held over the fuse.
#[test]
fn a_house_step_beside_cars_at_their_minimum_is_not_held_over_the_fuse() {
    let c = Case {
        fuse: 32,
        noise: 0.0,
        interval: 1,
        latency: 0.6,
        queue: false,
        house: [2, 4, 9],
        steps: vec![(289, 30, [0, 0, 12])],
        cars: vec![
            plain_car(3, 0.0, 10, None),
            plain_car(1, 0.0, 10, Some((233, 293))),
            Car {
                taper_from: Some(0.701_941_763_584_688_3),
                energy: 5.461_036_578_205_625,
                ..plain_car(3, 0.0, 11, None)
            },
        ],
        seed: 4_594_618_823_422_956_373,
    };
    assert_eq!(check(&c), None, "scenario:\n{}", c.toml());
}

/// Found by the property test (shrunk; fails on `7afdb6f` and on the commit before the rule):
/// with the meter and the polls on the same whole seconds, a 1-phase car pauses itself at the
/// very second of a reading, 3 s after a +17 A house step on its phase. The reading showed
/// the house smaller by the car's 15 A (its poll before the reading still showed it
/// drawing), no poll ever came after a reading, and the room went to the other point: "t =
/// 125 s: point 1 raised 14.000 A → 16.000 A, L2 committed to 51.0 A on a 50 A fuse". A poll
/// at the reading's own instant now renews the last refined estimate, on which raises wait.
#[test]
fn a_car_pausing_at_the_second_of_a_reading_frees_no_room_at_once() {
    let c = Case {
        fuse: 50,
        noise: 0.0,
        interval: 1,
        latency: 0.0,
        queue: false,
        house: [2, 2, 2],
        steps: vec![(122, 237, [0, 17, 0])],
        cars: vec![
            plain_car(3, 0.0, 15, None),
            plain_car(1, 0.0, 15, Some((125, 159))),
        ],
        seed: 7_519_152_969_671_584_911,
    };
    assert_eq!(check(&c), None, "scenario:\n{}", c.toml());
}
