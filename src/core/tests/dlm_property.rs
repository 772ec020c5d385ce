//! Property tests of the DLM inside the core: random house loads, vehicles and parameters.

use super::*;
use crate::chargers::{ChargerStatus, CpState};
use crate::units::{Current, PerPhase, Phase};
use proptest::prelude::*;
use std::time::Duration;

#[derive(Debug, Clone)]
struct Car {
    phases: u8,      // 1 or 3 wired at the charging point
    rotation: usize, // 0..6
    uses_one: bool,  // a 1-phase vehicle on a 3-phase point
    min: i32,
    max: i32,
}

fn site(fuse: i32, reserve: i32, per_phase: bool, cars: &[Car]) -> String {
    use std::fmt::Write as _;
    let rotations = [
        "L1-L2-L3", "L2-L3-L1", "L3-L1-L2", "L1-L3-L2", "L3-L2-L1", "L2-L1-L3",
    ];
    let mode = if per_phase { "per-phase" } else { "symmetric" };
    let mut t = format!(
        "[dlm]\nenabled = true\nallocation = \"{mode}\"\novercurrent_protection = {fuse}\nload_reserve = {reserve}\nramp_up_rate = 32.0\nmin_switch_time = 0\n"
    );
    for (i, c) in cars.iter().enumerate() {
        let _ = write!(
            t,
            "[charging_point.{n}]\nenabled = true\nmodel = \"keba-p30\"\nip = \"10.0.0.{n}\"\nphases = {}\nphase_rotation = \"{}\"\nmin_current = {}\nmax_current = {}\n",
            c.phases,
            rotations[c.rotation],
            c.min,
            c.max,
            n = i + 1,
        );
    }
    t.push_str("[group_addresses]\n10 = [\"0/0/10\"]\n11 = [\"0/0/11\"]\n12 = [\"0/0/12\"]\n");
    t
}

fn arb_car() -> impl Strategy<Value = Car> {
    (
        prop_oneof![Just(1u8), Just(3u8)],
        0usize..6,
        any::<bool>(),
        6i32..=10,
        0i32..=22,
    )
        .prop_map(|(phases, rotation, uses_one, min, extra)| Car {
            phases,
            rotation,
            uses_one,
            min,
            max: min + extra,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn charging_load_never_exceeds_what_the_budget_leaves(
        fuse in 16i32..=80,
        reserve in 0i32..=5,
        per_phase in any::<bool>(),
        cars in proptest::collection::vec(arb_car(), 1..=5),
        houses in proptest::collection::vec(any::<[u8; 3]>(), 1..=12),
    ) {
        let text = site(fuse, reserve, per_phase, &cars);
        let mut core = Core::new(config(&text), true);
        let t0 = Instant::now();
        let _ = core.handle(Event::Started, t0);
        let budget = Current::from_amps(fuse - reserve);
        let mut t = t0;
        for house in houses {
            let house = house.map(|h| Current::from_amps(i32::from(h % 40)));
            // Vehicles draw exactly their current on their own phases.
            let mut grid = [Current::ZERO; 3];
            for (i, c) in cars.iter().enumerate() {
                let cp = ChargePointId::new(u8::try_from(i + 1).unwrap()).unwrap();
                let target = core.target(cp).unwrap_or(Current::ZERO);
                let drawn = if c.phases == 1 || c.uses_one { [target, Current::ZERO, Current::ZERO] } else { [target; 3] };
                let rotation = crate::config::PhaseRotation::ALL[c.rotation];
                for (k, d) in drawn.iter().enumerate() {
                    if let Some(p) = rotation.grid_phase(k) {
                        grid[p.index()] += *d;
                    }
                }
                let status = ChargerStatus { state: Some(CpState::Charging), connected: true, charging: target > Current::ZERO, currents: Some(PerPhase(drawn)), ..ChargerStatus::default() };
                let _ = core.handle(Event::ChargerPolled { cp, status }, t);
            }
            t += Duration::from_secs(1);
            for (k, o) in (10u16..=12).enumerate() {
                let _ = core.handle(Event::ObjectWritten { object: GoNumber(o), value: Value::Current(house[k] + grid[k]) }, t);
            }
            // After the reaction window (3 s in which polls may refine the estimate) what the
            // DLM commands fits next to the house within the fuse (minimums may be held while
            // a shortage is confirmed); once it is confirmed (10 s), within the budget.
            let fuse_a = Current::from_amps(fuse);
            for (wait, limit) in [(3, fuse_a), (8, budget)] {
                let _ = core.handle(Event::Tick, t + Duration::from_secs(wait));
                t += Duration::from_secs(wait);
                let mut load = [Current::ZERO; 3];
                for (i, c) in cars.iter().enumerate() {
                    let cp = ChargePointId::new(u8::try_from(i + 1).unwrap()).unwrap();
                    let target = core.target(cp).unwrap_or(Current::ZERO);
                    let rotation = crate::config::PhaseRotation::ALL[c.rotation];
                    let used: Vec<usize> = if c.phases == 1 || c.uses_one { vec![0] } else { vec![0, 1, 2] };
                    for k in used {
                        if let Some(p) = rotation.grid_phase(k) {
                            load[p.index()] += target;
                        }
                    }
                }
                for p in Phase::ALL {
                    let room = limit.saturating_sub(house[p.index()]).max(Current::ZERO);
                    prop_assert!(load[p.index()] <= room, "after {wait} s, phase {p:?}: charging {} > room {} (house {})\n{text}", load[p.index()], room, house[p.index()]);
                }
            }
            t += Duration::from_secs(1);
        }
    }
}

/// A car that follows its command after `lag_ms` (polled every 500 ms).
#[derive(Debug, Clone)]
struct Follower {
    car: Car,
    lag_ms: u64,
}

fn arb_follower() -> impl Strategy<Value = Follower> {
    (
        arb_car(),
        prop_oneof![Just(0u64), Just(250), Just(500), Just(1000), Just(1500)],
    )
        .prop_map(|(car, lag_ms)| Follower { car, lag_ms })
}

/// What a car on `rotation` draws on the grid phases when it charges `current`.
fn grid_draw(car: &Car, current: Current) -> [Current; 3] {
    let drawn = if car.phases == 1 || car.uses_one {
        [current, Current::ZERO, Current::ZERO]
    } else {
        [current; 3]
    };
    let rotation = crate::config::PhaseRotation::ALL[car.rotation];
    let mut grid = [Current::ZERO; 3];
    for (k, d) in drawn.iter().enumerate() {
        if let Some(p) = rotation.grid_phase(k) {
            grid[p.index()] += *d;
        }
    }
    grid
}

/// A site over time (see the property below): `Err` with what went over the room.
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)]
fn run_lagging(
    fuse: i32,
    reserve: i32,
    per_phase: bool,
    ramp: f64,
    period_s: u64,
    cars: Vec<Follower>,
    steps: Vec<([u8; 3], u64)>,
) -> Result<(), String> {
    let plain: Vec<Car> = cars.iter().map(|f| f.car.clone()).collect();
    let text = site(fuse, reserve, per_phase, &plain)
        .replace("ramp_up_rate = 32.0", &format!("ramp_up_rate = {ramp:.1}"));
    let mut core = Core::new(config(&text), true);
    let t0 = Instant::now();
    let _ = core.handle(Event::Started, t0);
    let budget = Current::from_amps(fuse - reserve);
    let max_lag = cars.iter().map(|f| f.lag_ms).max().unwrap_or(0);
    let settle_ms = period_s * 1000 + max_lag + 3000 + 500;
    // Commands per car as (ms, current), to play them back with each car's lag.
    let mut commands: Vec<Vec<(u64, Current)>> = vec![vec![(0, Current::ZERO)]; cars.len()];
    let drawn_at = |commands: &Vec<Vec<(u64, Current)>>, i: usize, ms: u64| -> Current {
        let due = ms.saturating_sub(cars[i].lag_ms);
        commands[i]
            .iter()
            .rev()
            .find(|(t, _)| *t <= due)
            .map_or(Current::ZERO, |(_, c)| *c)
    };
    let mut ms = 0u64;
    for (house, secs) in steps {
        let house = house.map(|h| Current::from_amps(i32::from(h) % (fuse + 8)));
        let changed = ms;
        let end = ms + secs * 1000;
        while ms < end {
            let t = t0 + Duration::from_millis(ms);
            let mut grid = house;
            for (i, f) in cars.iter().enumerate() {
                let d = grid_draw(&f.car, drawn_at(&commands, i, ms));
                for p in 0..3 {
                    grid[p] += d[p];
                }
            }
            if ms % (period_s * 1000) == 0 {
                for (k, o) in (10u16..=12).enumerate() {
                    let _ = core.handle(
                        Event::ObjectWritten {
                            object: GoNumber(o),
                            value: Value::Current(grid[k]),
                        },
                        t,
                    );
                }
            }
            if ms % 500 == 250 {
                for (i, f) in cars.iter().enumerate() {
                    let cp = ChargePointId::new(u8::try_from(i + 1).unwrap()).unwrap();
                    let c = drawn_at(&commands, i, ms);
                    let cp_phases = if f.car.phases == 1 || f.car.uses_one {
                        [c, Current::ZERO, Current::ZERO]
                    } else {
                        [c; 3]
                    };
                    let status = ChargerStatus {
                        state: Some(CpState::Charging),
                        connected: true,
                        charging: c > Current::ZERO,
                        currents: Some(PerPhase(cp_phases)),
                        ..ChargerStatus::default()
                    };
                    let _ = core.handle(Event::ChargerPolled { cp, status }, t);
                }
            }
            let _ = core.handle(Event::Tick, t);
            let mut told = [Current::ZERO; 3];
            for (i, f) in cars.iter().enumerate() {
                let cp = ChargePointId::new(u8::try_from(i + 1).unwrap()).unwrap();
                let target = core.target(cp).unwrap_or(Current::ZERO);
                if commands[i].last().is_some_and(|(_, c)| *c != target) {
                    commands[i].push((ms, target));
                }
                let d = grid_draw(&f.car, target);
                for p in 0..3 {
                    told[p] += d[p];
                }
            }
            let mut drawn = [Current::ZERO; 3];
            for (i, f) in cars.iter().enumerate() {
                let d = grid_draw(&f.car, drawn_at(&commands, i, ms));
                for p in 0..3 {
                    drawn[p] += d[p];
                }
            }
            if ms >= changed + settle_ms {
                // While a shortage of minimums is confirmed (10 s) they may be held within
                // the fuse; after that within the budget.
                let limit = if ms >= changed + settle_ms + 10_000 {
                    budget
                } else {
                    Current::from_amps(fuse)
                };
                for p in 0..3 {
                    let room = limit.saturating_sub(house[p]).max(Current::ZERO);
                    if told[p] > room || drawn[p] > room {
                        return Err(format!(
                            "{ms} ms, phase {}: commanded {}, drawn {} > room {} (house {})\n{text}",
                            p + 1,
                            told[p],
                            drawn[p],
                            room,
                            house[p]
                        ));
                    }
                }
            }
            ms += 250;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// In time: the house load changes in steps, the meter sends every `period_s`, the
    /// cars are polled every 500 ms and follow their commands after up to 1.5 s (less
    /// than the 2 s reaction the DLM allows). Once the house load has been steady for a
    /// meter period plus the cars' lag plus the 3 s refinement window, what is commanded
    /// and what the cars draw fit next to the house on every phase.
    #[test]
    fn with_lagging_cars_and_a_fast_meter_the_fuse_holds_once_the_house_is_steady(
        fuse in 20i32..=63,
        reserve in 0i32..=3,
        per_phase in any::<bool>(),
        ramp in prop_oneof![Just(1.0f64), Just(4.0), Just(32.0)],
        period_s in 1u64..=4,
        cars in proptest::collection::vec(arb_follower(), 1..=5),
        steps in proptest::collection::vec((any::<[u8; 3]>(), 4u64..=20), 1..=8),
    ) {
        let result = run_lagging(fuse, reserve, per_phase, ramp, period_s, cars, steps);
        prop_assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
    }
}

/// Cases the property above found: a car that follows slowly was still rising (or not
/// yet falling) when current was moved to a quick one on the same phase; and the estimate
/// counted decisions taken after the meter reading.
#[test]
fn cases_found_with_lagging_cars_stay_within_the_room() {
    let c = |phases, rotation, uses_one, min, max, lag_ms| Follower {
        car: Car {
            phases,
            rotation,
            uses_one,
            min,
            max,
        },
        lag_ms,
    };
    let cases = [
        // A 1-phase car that follows after 1 s was switched off a second before a reading
        // and on again before the poll after it: the polls around the reading (13 A before,
        // 7 A after) made it look as if it drew 7 A, the house looked 7 A smaller, and it was
        // raised to 18 A on a phase with 13 A left (min_switch_time = 0).
        run_lagging(
            46,
            0,
            true,
            32.0,
            1,
            vec![c(3, 0, true, 6, 6, 1000), c(1, 2, false, 7, 18, 1000)],
            vec![
                ([41, 0, 80], 9),
                ([0, 0, 0], 4),
                ([0, 0, 44], 4),
                ([41, 0, 33], 8),
            ],
        ),
        // A car that follows after 1 s was told 0 A a second before a reading; the poll
        // before the reading still showed it at 12 A. Counted at 12 A, it made the house
        // look 12 A smaller, and a point was switched on 1 A above the fuse (the reaction
        // the model had learned was shorter than the car's).
        run_lagging(
            32,
            0,
            true,
            32.0,
            1,
            vec![
                c(3, 0, false, 8, 9, 0),
                c(1, 1, false, 9, 9, 0),
                c(1, 0, false, 6, 12, 1000),
            ],
            vec![
                ([0, 0, 0], 4),
                ([120, 0, 0], 4),
                ([80, 0, 0], 4),
                ([40, 0, 0], 4),
                ([0, 16, 0], 11),
                ([141, 16, 1], 10),
            ],
        ),
        run_lagging(
            49,
            0,
            false,
            4.0,
            2,
            vec![c(3, 0, false, 6, 12, 0)],
            vec![([57, 0, 0], 4), ([0, 0, 38], 8)],
        ),
        run_lagging(
            47,
            1,
            true,
            4.0,
            1,
            vec![c(1, 3, false, 8, 10, 1000), c(1, 0, false, 10, 23, 1500)],
            vec![([165, 0, 0], 5), ([129, 0, 0], 8)],
        ),
        run_lagging(
            60,
            0,
            true,
            32.0,
            1,
            vec![
                c(3, 0, false, 6, 14, 250),
                c(1, 5, false, 6, 24, 1500),
                c(1, 2, false, 6, 6, 0),
                c(1, 2, false, 6, 20, 0),
            ],
            vec![([0, 164, 165], 14), ([0, 0, 0], 4)],
        ),
        run_lagging(
            46,
            0,
            true,
            32.0,
            1,
            vec![
                c(1, 3, false, 6, 6, 0),
                c(3, 2, true, 9, 15, 1500),
                c(3, 1, true, 7, 8, 500),
                c(3, 0, false, 8, 13, 1000),
                c(1, 3, false, 9, 26, 1000),
            ],
            vec![([0, 0, 30], 4), ([112, 54, 235], 10)],
        ),
        run_lagging(
            34,
            0,
            true,
            32.0,
            1,
            vec![
                c(1, 5, false, 6, 18, 0),
                c(3, 0, false, 6, 11, 1500),
                c(1, 2, false, 7, 13, 1000),
            ],
            vec![([0, 23, 0], 4), ([42, 132, 133], 7)],
        ),
    ];
    for (i, r) in cases.into_iter().enumerate() {
        assert!(r.is_ok(), "case {i}: {}", r.err().unwrap_or_default());
    }
}

/// A drop held at its minimum beside the point kept in its place went over the fuse: 48 A
/// of house load on L2 (56 A fuse, 54 A budget) leave room for one of two 1-phase minimums
/// (7 A and 6 A). The plan in force kept the 6 A car, the plan within the fuse the 7 A one,
/// and the 7 A car was held at its minimum beside the other for the 10 s of a drop
/// confirmation: 13 A where the fuse leaves 8 A (shrunk by the property above, 2026-12-07).
/// A drop is held only while its minimum fits the fuse on top of what the others draw.
#[test]
fn a_drop_is_held_only_within_the_fuse_beside_the_point_kept_in_its_place() {
    let car = |rotation, min, max| Car {
        phases: 1,
        rotation,
        uses_one: false,
        min,
        max,
    };
    let cars = vec![
        Follower {
            car: car(5, 7, 9),
            lag_ms: 250,
        },
        Follower {
            car: car(0, 6, 6),
            lag_ms: 0,
        },
        Follower {
            car: car(5, 6, 13),
            lag_ms: 0,
        },
    ];
    let steps = vec![([64, 166, 0], 12), ([0, 0, 0], 5), ([0, 176, 0], 5)];
    let result = run_lagging(56, 2, true, 1.0, 1, cars, steps);
    assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
}

/// Break before make ended too early: a car with a 1.5 s lag was raised to 10 A, lowered to
/// 7 A 0.75 s later for a queued newcomer, and its next poll still showed its old 6 A: the
/// newcomer was switched on beside it, and when the car followed the raise L2 drew 27 A
/// where the fuse left 26 A (shrunk by the property above, 2026-12-07). The hold ends only
/// when no higher current was told the lowered car within its reaction time.
#[test]
fn a_lagging_car_raised_just_before_its_reduction_holds_a_newcomer_back() {
    let car = |phases, rotation, uses_one, min, max| Car {
        phases,
        rotation,
        uses_one,
        min,
        max,
    };
    let cars = vec![
        Follower {
            car: car(3, 1, true, 6, 10),
            lag_ms: 1500,
        },
        Follower {
            car: car(1, 0, false, 9, 11),
            lag_ms: 0,
        },
        Follower {
            car: car(1, 3, false, 8, 14),
            lag_ms: 1000,
        },
        Follower {
            car: car(3, 0, false, 8, 10),
            lag_ms: 0,
        },
        Follower {
            car: car(3, 0, false, 7, 9),
            lag_ms: 500,
        },
    ];
    let result = run_lagging(44, 0, true, 32.0, 2, cars, vec![([160, 18, 52], 8)]);
    assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
}
