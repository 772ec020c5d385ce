//! Core tests of the dynamic load management as the core drives it: meter values, vehicles,
//! queueing, supervision, high-power devices, and why each point gets its current.

use super::*;
use crate::chargers::{ChargerStatus, CpState, DriverError};
use crate::faults::FaultCode;
use crate::units::{Current, PerPhase, Power};
use std::time::Duration;

const HOUSE: &str = r#"
[dlm]
enabled = true
overcurrent_protection = 32
load_reserve = 2
ramp_up_rate = 32.0
min_switch_time = 0
high_power_waiting_time = 60
[dlm.meter]
connection = "3-phase"
measurement = "current"
[dlm.monitoring]
mode = "values"
interval = 10
tolerance = 5
[charging_point.1]
enabled = true
model = "keba-p30"
ip = "10.0.0.1"
max_current = 16
[charging_point.2]
enabled = true
model = "alfen-eve"
ip = "10.0.0.2"
max_current = 16
[charging_point.3]
enabled = true
model = "bender-cc612"
ip = "10.0.0.3"
max_current = 16
[group_addresses]
10 = ["0/0/10"]
11 = ["0/0/11"]
12 = ["0/0/12"]
13 = ["0/0/13"]
20 = ["0/0/20"]
"#;

fn a(n: i32) -> Current {
    Current::from_amps(n)
}

fn cp(n: u8) -> ChargePointId {
    ChargePointId::new(n).unwrap()
}

fn meter(core: &mut Core, t: Instant, l: [i32; 3]) -> Vec<Action> {
    let mut out = Vec::new();
    for (i, v) in l.into_iter().enumerate() {
        out.extend(core.handle(
            Event::ObjectWritten {
                object: GoNumber(10 + u16::try_from(i).unwrap()),
                value: Value::Current(a(v)),
            },
            t,
        ));
    }
    out
}

fn vehicle(core: &mut Core, n: u8, t: Instant, draw: [i32; 3]) -> Vec<Action> {
    let status = ChargerStatus {
        state: Some(if draw.iter().sum::<i32>() > 0 {
            CpState::Charging
        } else {
            CpState::Connected
        }),
        connected: true,
        charging: draw.iter().sum::<i32>() > 0,
        currents: Some(PerPhase(draw.map(a))),
        ..ChargerStatus::default()
    };
    core.handle(Event::ChargerPolled { cp: cp(n), status }, t)
}

fn no_vehicle(core: &mut Core, n: u8, t: Instant) -> Vec<Action> {
    let status = ChargerStatus {
        state: Some(CpState::Available),
        currents: Some(PerPhase::splat(Current::ZERO)),
        ..ChargerStatus::default()
    };
    core.handle(Event::ChargerPolled { cp: cp(n), status }, t)
}

fn target(core: &Core, n: u8) -> Current {
    core.target(cp(n)).unwrap()
}

/// Delivers the tick at the end of the window in which polls may refine the estimate
/// made from a meter value received at `t` (3 s).
fn settle(core: &mut Core, t: Instant) -> Vec<Action> {
    core.handle(Event::Tick, t + Duration::from_secs(3))
}

/// Starts with two vehicles connected (1 and 2) and the house at `house` A per phase.
fn running(text: &str, house: i32) -> (Core, Instant) {
    let mut core = Core::new(config(text), true);
    let t0 = Instant::now();
    let _ = core.handle(Event::Started, t0);
    let _ = vehicle(&mut core, 1, t0, [0, 0, 0]);
    let _ = vehicle(&mut core, 2, t0, [0, 0, 0]);
    let _ = no_vehicle(&mut core, 3, t0);
    let _ = meter(&mut core, t0, [house; 3]);
    (core, t0)
}

/// A setpoint carried out is no DLM input: the ramp moves on with time and meter values,
/// not with the completions of its own commands (which made a feedback loop that flooded
/// the charger tasks with setpoints a milliampere apart).
#[test]
fn a_completed_setpoint_command_does_not_move_the_ramp() {
    let (mut core, t0) = running(HOUSE, 10);
    let t1 = t0 + Duration::from_millis(100);
    let _ = vehicle(&mut core, 1, t1, [6, 6, 6]);
    let ramping = target(&core, 1);
    for i in 1..=50u64 {
        let done = core.handle(
            Event::ChargerCommandDone {
                cp: cp(1),
                command: ChargerCommand::SetCurrent(ramping),
                outcome: crate::chargers::CommandOutcome::Done,
            },
            t1 + Duration::from_micros(50 * i),
        );
        assert!(
            !done.iter().any(|a| matches!(a, Action::Charger { .. })),
            "completion {i} sent a new command: {done:?}"
        );
    }
    assert_eq!(target(&core, 1), ramping);
    // Time moves the ramp on (so the completions above could have moved it).
    let _ = core.handle(Event::Tick, t1 + Duration::from_millis(300));
    assert!(target(&core, 1) > ramping, "the ramp runs on with time");
}

#[test]
fn every_charging_point_first_gets_the_minimum_charging_current() {
    let (core, _) = running(HOUSE, 10);
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(6), a(6)),
        "switching on starts at the minimum"
    );
    assert_eq!(target(&core, 3), Current::ZERO, "no vehicle, no current");
}

#[test]
fn increases_ramp_up_gradually_to_the_even_share() {
    let (mut core, t0) = running(HOUSE, 10);
    // Budget 30 A, house 10 A → 20 A for two cars: 10 A each, reached by ramping.
    let t1 = t0 + Duration::from_millis(100);
    let _ = core.handle(Event::Tick, t1);
    let mid = target(&core, 1);
    assert!(mid > a(6) && mid < a(10), "ramping: {mid}");
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert_eq!((target(&core, 1), target(&core, 2)), (a(10), a(10)));
}

#[test]
fn a_load_step_on_the_meter_reduces_every_setpoint_at_once() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    // The cars follow their 10 A; the next meter value comes 3 s later (more than the
    // 2 s the DLM allows a vehicle to react).
    let t = t0 + Duration::from_secs(5);
    let _ = vehicle(&mut core, 1, t, [10, 10, 10]);
    let _ = vehicle(&mut core, 2, t, [10, 10, 10]);
    // The house jumps by 8 A: the meter shows 10 + 8 + 20 (cars) = 38 A per phase.
    let actions = meter(&mut core, t, [38, 38, 38]);
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(6), a(6)),
        "30 − 18 = 12 A for two cars"
    );
    let cmds: Vec<_> = actions
        .iter()
        .filter(|x| matches!(x, Action::Charger { .. }))
        .collect();
    assert_eq!(
        cmds.len(),
        2,
        "both setpoints drop in the same cycle: {cmds:?}"
    );
}

/// Reported by the simulation: the DLM subtracted its own later increases from a stale
/// meter value and handed out budget that was not there.
#[test]
fn a_stale_meter_value_never_frees_budget_the_dlm_has_already_given_out() {
    let (mut core, t0) = running(HOUSE, 20);
    // House 20 A, budget 30 A: 10 A for two cars, 5 A each... let them ramp up.
    for s in 1..=3u64 {
        let t = t0 + Duration::from_secs(s);
        let (c1, c2) = (target(&core, 1), target(&core, 2));
        let _ = vehicle(&mut core, 1, t, [c1.whole_amps_floor(); 3]);
        let _ = vehicle(&mut core, 2, t, [c2.whole_amps_floor(); 3]);
    }
    // No new meter value for a long time: whatever the cars draw now, the other load
    // stays estimated from the value (20 A), never lower.
    let t = t0 + Duration::from_secs(9);
    let _ = vehicle(&mut core, 1, t, [12, 12, 12]);
    let _ = vehicle(&mut core, 2, t, [12, 12, 12]);
    let _ = core.handle(Event::Tick, t);
    // The two minimums (12 A) do not fit the 10 A left but do fit the fuse: they are held
    // at their minimum while the shortage is confirmed (issue 15: a car's start or a box
    // resuming on its own is not a reason to switch cars off for the minimum on/off time),
    // never raised on the stale value.
    for n in 1..=2 {
        assert!(
            target(&core, n) <= a(6),
            "held at the minimum at most: {}",
            target(&core, n)
        );
    }
    // Confirmed after 10 s: no more than the 10 A left.
    let t = t0 + Duration::from_secs(12);
    let _ = core.handle(Event::Tick, t);
    let total = target(&core, 1) + target(&core, 2);
    assert!(
        total <= a(10),
        "the budget left after 20 A of house load is 10 A, got {total}"
    );
}

/// Reported by the end-to-end test: with a meter every second and vehicles that follow a
/// new current within half a second, the estimate counted each car with what it had been
/// told two seconds earlier, took the rest of its ramp for house load, and the setpoints
/// swung between the minimum and 10–12 A. A vehicle is counted with what it drew when
/// the value arrived.
#[test]
fn a_ramp_followed_at_once_is_not_taken_for_house_load_with_a_fast_meter() {
    let text = HOUSE.replace("ramp_up_rate = 32.0", "ramp_up_rate = 1.0");
    let (mut core, t0) = running(&text, 10);
    let house = a(10);
    let mut drawn = [Current::ZERO; 2];
    let mut seen = Vec::new();
    // 30 s: ticks every 250 ms, polls every 500 ms (the vehicles draw what they were told
    // at the poll before), the meter every second.
    for step in 1..=120u32 {
        let t = t0 + Duration::from_millis(250 * u64::from(step));
        if step % 2 == 0 {
            for n in 1..=2u8 {
                let i = usize::from(n - 1);
                let status = ChargerStatus {
                    state: Some(CpState::Charging),
                    connected: true,
                    charging: drawn[i] > Current::ZERO,
                    currents: Some(PerPhase::splat(drawn[i])),
                    ..ChargerStatus::default()
                };
                let _ = core.handle(Event::ChargerPolled { cp: cp(n), status }, t);
            }
        }
        if step % 4 == 0 {
            // What the meter measures: the house and what the cars drew at the last poll.
            for o in 10..=12u16 {
                let _ = core.handle(
                    Event::ObjectWritten {
                        object: GoNumber(o),
                        value: Value::Current(house + drawn[0] + drawn[1]),
                    },
                    t,
                );
            }
        }
        let _ = core.handle(Event::Tick, t);
        if step % 2 == 0 {
            // The vehicles follow by the next poll.
            drawn = [target(&core, 1), target(&core, 2)];
        }
        seen.push(target(&core, 1));
    }
    // Issue 15: the first reading after the start (1 s) cannot tell cars that started
    // between their last two polls, faster than the DLM yet knows, from house load: the
    // points are held at their minimum until the polls after it. From then on no drop.
    // At the end of the ramp the polls, half a second apart, still show the cars below
    // their new current: the estimate may take up to 1 A of it for house load once or
    // twice (the DLM errs high on the other load), never more.
    let drops: Vec<_> = seen
        .windows(2)
        .skip(4)
        .filter(|w| w[1] < w[0] && w[1] > a(6))
        .collect();
    assert!(
        drops.len() <= 2 && drops.iter().all(|w| w[0] - w[1] <= a(1)),
        "setpoint dropped during the ramp: {drops:?} in {seen:?}"
    );
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(10), a(10)),
        "30 A budget − 10 A house = 10 A each"
    );
}

/// Reported by the end-to-end test: after a load step the cars were reduced; the next
/// meter value (one second later) already showed the reduction while the last polls,
/// taken just before the cars followed, still showed the old current. Counting that,
/// the house looked smaller, and the setpoints went up again for a moment. While a
/// reduction is under way, a car counts with at most its reduced current.
#[test]
fn a_poll_older_than_a_reduction_does_not_make_the_house_look_smaller() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    let t = t0 + Duration::from_secs(5);
    let _ = vehicle(&mut core, 1, t, [10, 10, 10]);
    let _ = vehicle(&mut core, 2, t, [10, 10, 10]);
    // Load step: 10 → 18 A house; the cars go to 6 A at once.
    let _ = meter(&mut core, t, [38, 38, 38]);
    assert_eq!((target(&core, 1), target(&core, 2)), (a(6), a(6)));
    // The polls just before the cars follow still show 10 A...
    let t1 = t + Duration::from_millis(200);
    let _ = vehicle(&mut core, 1, t1, [10, 10, 10]);
    let _ = vehicle(&mut core, 2, t1, [10, 10, 10]);
    // ...the meter one second after the step already shows 18 + 2 × 6 A.
    let t2 = t + Duration::from_secs(1);
    let _ = meter(&mut core, t2, [30, 30, 30]);
    let _ = core.handle(Event::Tick, t2 + Duration::from_millis(100));
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(6), a(6)),
        "no raise on the strength of polls older than the reduction"
    );
    // The polls after the value show 6 A: the house is 18 A, nothing to raise.
    let t3 = t2 + Duration::from_millis(200);
    let _ = vehicle(&mut core, 1, t3, [6, 6, 6]);
    let _ = vehicle(&mut core, 2, t3, [6, 6, 6]);
    let _ = core.handle(Event::Tick, t3 + Duration::from_secs(3));
    assert_eq!((target(&core, 1), target(&core, 2)), (a(6), a(6)));
}

/// Reported by the simulation: a car starting to draw just before a meter value was
/// taken for house load, raising OverCurrent and locking everyone out.
#[test]
fn a_car_starting_before_the_meter_value_is_not_taken_for_house_load() {
    let text = HOUSE
        .replace("overcurrent_protection = 32", "overcurrent_protection = 25")
        .replace("min_switch_time = 0", "min_switch_time = 300");
    let (mut core, t0) = running(&text, 3);
    assert_eq!((target(&core, 1), target(&core, 2)), (a(6), a(6)));
    // 2 s later the meter shows house 3 A + both cars at 6 A, before the next poll.
    let t = t0 + Duration::from_secs(2);
    let _ = meter(&mut core, t, [15, 15, 15]);
    let _ = vehicle(&mut core, 1, t + Duration::from_millis(500), [6, 6, 6]);
    let _ = vehicle(&mut core, 2, t + Duration::from_millis(500), [6, 6, 6]);
    assert!(
        !core
            .faults()
            .is_present(Scope::Device, FaultCode::OverCurrent)
    );
    assert!(target(&core, 1) >= a(6) && target(&core, 2) >= a(6));
}

#[test]
fn an_expired_high_power_wait_does_not_keep_waking_the_core() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(
        Event::ObjectWritten {
            object: GoNumber(13),
            value: Value::Bool(true),
        },
        t0,
    );
    let _ = meter(&mut core, t0 + Duration::from_secs(61), [10, 10, 10]);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(61));
    assert!(
        core.poll_timeout()
            .is_none_or(|t| t > t0 + Duration::from_secs(61))
    );
}

#[test]
fn the_prioritised_charging_point_is_supplied_preferentially() {
    let text = HOUSE.replace(
        "load_reserve = 2",
        "load_reserve = 2\nprioritised_charging_point = 2",
    );
    let (mut core, t0) = running(&text, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(6), a(14)),
        "20 A: 6 for the other, the rest to the prioritised"
    );
}

#[test]
fn smart_meter_silent_gives_smartmetertout_and_the_minimum_current() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert_eq!(target(&core, 1), a(10));
    // interval 10 s + tolerance 5 s without values.
    let t = t0 + Duration::from_secs(15);
    assert!(core.poll_timeout().unwrap() <= t);
    let out = core.handle(Event::Tick, t);
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::SmartMeterTOut)
    );
    assert_eq!(
        sets(&out).get(&9),
        Some(&Value::Text("SmartMeterTOut".into()))
    );
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(6), a(6)),
        "emergency mode: minimum current"
    );
    assert_eq!(core.leds().app, AppLed::ThreeFlashes);
    // Values return: normal again. The first value came while the cars were still coming
    // down to their minimum; the raise waits for the next one (issue 15: no raise judged on
    // a reading that caught the cars half way).
    let _ = meter(&mut core, t + Duration::from_secs(1), [10, 10, 10]);
    assert!(
        !core
            .faults()
            .is_present(Scope::Device, FaultCode::SmartMeterTOut)
    );
    let _ = meter(&mut core, t + Duration::from_secs(4), [10, 10, 10]);
    let _ = core.handle(Event::Tick, t + Duration::from_secs(6));
    assert_eq!(target(&core, 1), a(10));
}

#[test]
fn in_operation_object_keeps_the_smart_meter_supervised_without_values() {
    let text = HOUSE.replace("mode = \"values\"", "mode = \"values-and-in-operation\"");
    let (mut core, t0) = running(&text, 10);
    for s in [9u64, 18, 27] {
        let _ = core.handle(
            Event::ObjectWritten {
                object: GoNumber(20),
                value: Value::Bool(true),
            },
            t0 + Duration::from_secs(s),
        );
        let _ = core.handle(Event::Tick, t0 + Duration::from_secs(s + 1));
    }
    assert!(
        !core
            .faults()
            .is_present(Scope::Device, FaultCode::SmartMeterTOut),
        "values only on change, trigger every interval"
    );
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(27 + 16));
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::SmartMeterTOut),
        "trigger missing"
    );
}

#[test]
fn high_power_consuming_device_reduces_to_minimum_and_a_new_report_restarts_the_wait() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    let hp = |core: &mut Core, t| {
        core.handle(
            Event::ObjectWritten {
                object: GoNumber(13),
                value: Value::Bool(true),
            },
            t,
        )
    };
    let t1 = t0 + Duration::from_secs(3);
    let _ = hp(&mut core, t1);
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(6), a(6)),
        "at once"
    );
    let t2 = t1 + Duration::from_secs(40);
    let _ = meter(&mut core, t2, [10, 10, 10]);
    let _ = hp(&mut core, t2);
    let _ = meter(&mut core, t1 + Duration::from_secs(70), [10, 10, 10]);
    assert_eq!(
        target(&core, 1),
        a(6),
        "the second report restarted the 60 s wait"
    );
    let _ = meter(&mut core, t2 + Duration::from_secs(61), [10, 10, 10]);
    let _ = core.handle(Event::Tick, t2 + Duration::from_secs(63));
    assert_eq!(target(&core, 1), a(10), "redistributed after the wait");
}

#[test]
fn minimums_not_fitting_give_overcurrent_and_interrupt_all_charging_points() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = meter(&mut core, t0 + Duration::from_secs(1), [25, 25, 25]);
    // Right after the value the shortage is tentative: held at the minimum, not yet off.
    assert_eq!((target(&core, 1), target(&core, 2)), (a(6), a(6)));
    let out = settle(&mut core, t0 + Duration::from_secs(1));
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::OverCurrent)
    );
    assert_eq!(sets(&out).get(&9), Some(&Value::Text("OverCurrent".into())));
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (Current::ZERO, Current::ZERO)
    );
    let _ = meter(&mut core, t0 + Duration::from_secs(5), [5, 5, 5]);
    assert!(
        !core
            .faults()
            .is_present(Scope::Device, FaultCode::OverCurrent)
    );
    // Both were switched off at 4 s: each switches on again once the other is seen stopped
    // or has had the 5 s of IEC 61851-1 to stop (no poll here).
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(9));
    assert_eq!(target(&core, 1), a(6));
}

#[test]
fn queueing_lets_those_that_fit_charge_and_rotates() {
    let text = HOUSE.replace(
        "ramp_up_rate = 32.0",
        "ramp_up_rate = 32.0\novercurrent_strategy = \"queue\"\nrotation_interval = 900",
    );
    let (mut core, t0) = running(&text, 10);
    let _ = meter(&mut core, t0 + Duration::from_secs(1), [22, 22, 22]);
    let _ = settle(&mut core, t0 + Duration::from_secs(1));
    // The one that waits was switched off at 4 s; the other rises once it is seen stopped,
    // or after the 5 s IEC 61851-1 gives a vehicle to follow (no poll here).
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(9));
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(8), Current::ZERO),
        "8 A left: one car charges, one waits"
    );
    let later = t0 + Duration::from_secs(901);
    let _ = meter(&mut core, later, [22, 22, 22]);
    let _ = settle(&mut core, later);
    // The newly admitted car starts at its minimum once the other had time to stop (5 s
    // without a poll) and ramps up on the next update.
    let _ = meter(&mut core, later + Duration::from_secs(9), [22, 22, 22]);
    let _ = core.handle(Event::Tick, later + Duration::from_secs(11));
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (Current::ZERO, a(8)),
        "rotated after 15 minutes"
    );
}

#[test]
fn switching_on_waits_for_the_minimum_on_off_time() {
    let text = HOUSE.replace("min_switch_time = 0", "min_switch_time = 300");
    let (mut core, t0) = running(&text, 10);
    let _ = meter(&mut core, t0 + Duration::from_secs(1), [25, 25, 25]);
    let _ = settle(&mut core, t0 + Duration::from_secs(1));
    assert_eq!(
        target(&core, 1),
        Current::ZERO,
        "safety reductions are never delayed beyond the reaction window"
    );
    let _ = meter(&mut core, t0 + Duration::from_secs(6), [5, 5, 5]);
    assert_eq!(target(&core, 1), Current::ZERO, "switched off 2 s ago");
    let _ = meter(&mut core, t0 + Duration::from_secs(310), [5, 5, 5]);
    assert_eq!(target(&core, 1), a(6));
}

#[test]
fn interruption_released_under_dlm_continues_with_the_minimum_charging_current() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    let t = t0 + Duration::from_secs(3);
    let _ = core.handle(
        Event::ObjectWritten {
            object: GoNumber(55),
            value: Value::Bool(true),
        },
        t,
    );
    assert_eq!(target(&core, 1), Current::ZERO);
    assert_eq!(
        target(&core, 2),
        a(10),
        "break before make: the other waits until the interrupted vehicle had time to stop"
    );
    let _ = core.handle(Event::Tick, t + Duration::from_secs(5));
    assert_eq!(
        target(&core, 2),
        a(16),
        "the other takes what is free (20 − 0, capped at 16)"
    );
    let t = t + Duration::from_secs(3);
    let _ = core.handle(
        Event::ObjectWritten {
            object: GoNumber(55),
            value: Value::Bool(false),
        },
        t,
    );
    assert_eq!(
        target(&core, 2),
        a(10),
        "making room at once: the even share"
    );
    let _ = core.handle(Event::Tick, t + Duration::from_secs(5));
    assert_eq!(
        target(&core, 1),
        a(6),
        "resumes at the minimum once the other had time to make room (5 s without a poll), then the DLM regulates"
    );
}

/// Issue 15, phenomenon 8: a KEBA reporting 0x7FFFFFFF mA (2,147,483 A; KEBA marks only
/// values from 2³¹ as invalid) was trusted: the other load became 0, both points rose to
/// their maximum and the value went out on KNX. Now it is DLM InvCurrent: the point is
/// excluded, counted at its maximum, and nothing of that poll is published.
#[test]
fn an_impossible_current_is_dlm_invcurrent_excluded_and_not_published() {
    let (mut core, t0) = running(HOUSE, 10);
    let t = t0 + Duration::from_secs(1);
    let _ = vehicle(&mut core, 1, t, [6, 6, 6]);
    let _ = vehicle(&mut core, 2, t, [6, 6, 6]);
    let bogus = ChargerStatus {
        state: Some(CpState::Charging),
        connected: true,
        charging: true,
        currents: Some(PerPhase([Current::from_milliamps(0x7FFF_FFFF), a(6), a(6)])),
        energy_total: Some(crate::units::Energy::from_watt_hours(429_000_000)),
        ..ChargerStatus::default()
    };
    let out = core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: bogus,
        },
        t,
    );
    let published = sets(&out);
    for o in [62u16, 63, 64, 65, 70, 75] {
        assert!(
            !published.contains_key(&o),
            "object {o} published: {published:?}"
        );
    }
    assert!(
        core.faults()
            .is_present(Scope::ChargingPoint(cp(1)), FaultCode::DlmInvCurrent)
    );
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::DlmInvCurrent)
    );
    assert_eq!(target(&core, 1), Current::ZERO, "excluded");
    // The house at 10 A plus point 1 at its maximum (16 A) leave 4 A of the 30 A budget:
    // below point 2's minimum, so it may not rise; never the whole budget.
    for s in 2..=20 {
        let t = t + Duration::from_secs(s);
        let _ = meter(&mut core, t, [16; 3]);
        let _ = vehicle(&mut core, 2, t, [6, 6, 6]);
        assert!(target(&core, 2) <= a(6), "{s} s: {}", target(&core, 2));
    }
    // A plausible poll clears it again.
    let t = t + Duration::from_secs(21);
    let _ = vehicle(&mut core, 1, t, [0, 0, 0]);
    assert!(
        !core
            .faults()
            .is_present(Scope::ChargingPoint(cp(1)), FaultCode::DlmInvCurrent)
    );
}

#[test]
fn invalid_currents_exclude_the_charging_point_and_show_dlm_invcurrent() {
    let (mut core, t0) = running(HOUSE, 10);
    let out = core.handle(
        Event::ChargerFailed {
            cp: cp(1),
            error: DriverError::InvalidCurrent("0xFFFFFFFF".into()),
        },
        t0 + Duration::from_secs(1),
    );
    assert_eq!(
        target(&core, 1),
        Current::ZERO,
        "charging is not possible at the charging point"
    );
    assert_eq!(
        sets(&out).get(&95),
        Some(&Value::Text("DLM InvCurrent".into()))
    );
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::DlmInvCurrent)
    );
    assert_eq!(
        crate::faults::FaultCode::DlmInvCurrent
            .severity(Scope::Device)
            .0,
        70
    );
}

#[test]
fn dlm_association_missing_keeps_every_charging_point_at_its_minimum() {
    let text = HOUSE.replace("12 = [\"0/0/12\"]\n", "");
    let (mut core, t0) = running(&text, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::DlmAssociation)
    );
    assert_eq!((target(&core, 1), target(&core, 2)), (a(6), a(6)));
}

#[test]
fn power_values_are_converted_to_current_at_the_nominal_voltage() {
    let text = HOUSE.replace("measurement = \"current\"", "measurement = \"power\"");
    let mut core = Core::new(config(&text), true);
    let t0 = Instant::now();
    let _ = core.handle(Event::Started, t0);
    let _ = vehicle(&mut core, 1, t0, [0, 0, 0]);
    // Points 2 and 3 answer without a vehicle (a point never polled keeps its start-up
    // minimum and is booked with it).
    let _ = no_vehicle(&mut core, 2, t0);
    let _ = no_vehicle(&mut core, 3, t0);
    for o in 10..=12 {
        let _ = core.handle(
            Event::ObjectWritten {
                object: GoNumber(o),
                value: Value::Power(Power::from_watts(4600)),
            },
            t0,
        );
    }
    assert_eq!(
        core.dlm_cycle().unwrap().meter,
        PerPhase::splat(a(20)),
        "4600 W / 230 V"
    );
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert_eq!(target(&core, 1), a(10));
}

#[test]
fn single_phase_cars_on_rotated_phases_share_nothing_in_per_phase_mode() {
    let text = HOUSE
        .replace("ip = \"10.0.0.1\"", "ip = \"10.0.0.1\"\nphases = 1")
        .replace(
            "ip = \"10.0.0.2\"",
            "ip = \"10.0.0.2\"\nphases = 1\nphase_rotation = \"L2-L3-L1\"",
        )
        .replace("max_current = 16", "max_current = 32");
    let (mut core, t0) = running(&text, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(3));
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(20), a(20)),
        "each has its own phase"
    );
    let sym = text.replace("[dlm]\n", "[dlm]\nallocation = \"symmetric\"\n");
    let (mut core, t0) = running(&sym, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(3));
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(10), a(10)),
        "the spec's symmetric booking"
    );
}
/// Starts `HOUSE` with a minimum on/off time of 300 s and `strategy`, overloads it with
/// `house` A per phase so that the minimums do not fit, and sends meter values every 10 s
/// until 400 s, so the minimum on/off time of every switched-off point has elapsed.
fn overloaded(strategy: &str, house: i32) -> (Core, Instant) {
    let text = HOUSE
        .replace("min_switch_time = 0", "min_switch_time = 300")
        .replace(
            "ramp_up_rate = 32.0",
            &format!(
                "ramp_up_rate = 32.0\novercurrent_strategy = \"{strategy}\"\nrotation_interval = 900"
            ),
        );
    let (mut core, t0) = running(&text, 10);
    let _ = meter(&mut core, t0 + Duration::from_secs(1), [house; 3]);
    let _ = settle(&mut core, t0 + Duration::from_secs(1));
    for s in (10..=400u64).step_by(10) {
        let _ = meter(&mut core, t0 + Duration::from_secs(s), [house; 3]);
        let _ = core.handle(
            Event::Tick,
            t0 + Duration::from_secs(s) + Duration::from_secs(1),
        );
    }
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::OverCurrent),
        "the minimums do not fit"
    );
    (core, t0 + Duration::from_secs(401))
}

fn switched_on(actions: &[Action], n: u8) -> bool {
    actions.iter().any(|x| {
        matches!(x, Action::Charger { cp: c, command: crate::chargers::ChargerCommand::SetCurrent(i) }
            if *c == cp(n) && *i > Current::ZERO)
    })
}

fn high_power(core: &mut Core, t: Instant) -> Vec<Action> {
    core.handle(
        Event::ObjectWritten {
            object: GoNumber(13),
            value: Value::Bool(true),
        },
        t,
    )
}

/// Spec table 20 / ch. 9.1: a high power-consuming device makes the DLM *reduce* the
/// charging current to the minimum. A charging point at 0 A (interrupted by OverCurrent,
/// or waiting in the queue) is not raised to its minimum, even once its minimum on/off
/// time has elapsed, and OverCurrent stays.
#[test]
fn high_power_report_never_switches_on_a_waiting_or_overcurrent_interrupted_point() {
    // Interrupt-all: both interrupted since 4 s; the report comes at 401 s.
    let (mut core, t) = overloaded("interrupt-all", 25);
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (Current::ZERO, Current::ZERO)
    );
    let out = high_power(&mut core, t);
    assert!(!switched_on(&out, 1) && !switched_on(&out, 2), "{out:?}");
    let _ = core.handle(Event::Tick, t + Duration::from_secs(30));
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (Current::ZERO, Current::ZERO),
        "interrupted points stay off during the wait"
    );
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::OverCurrent),
        "OverCurrent is not cleared by the report"
    );
    // Queue: 8 A left, point 1 charges at 8 A, point 2 waits.
    let (mut core, t) = overloaded("queue", 22);
    assert_eq!((target(&core, 1), target(&core, 2)), (a(8), Current::ZERO));
    let out = high_power(&mut core, t);
    assert!(!switched_on(&out, 2), "{out:?}");
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(6), Current::ZERO),
        "the charging one is reduced to its minimum, the waiting one stays off"
    );
    let _ = core.handle(Event::Tick, t + Duration::from_secs(30));
    assert_eq!(target(&core, 2), Current::ZERO);
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::OverCurrent)
    );
}

/// Spec ch. 9.1 / table 62: in emergency mode (SmartMeterTOut) the DLM regulates *down*
/// to the minimum per charging point: a point at 0 A (interrupted by OverCurrent, or
/// waiting in the queue) is not switched on, and OverCurrent stays.
#[test]
fn smart_meter_timeout_never_switches_on_a_waiting_or_overcurrent_interrupted_point() {
    for (strategy, house, before) in [("interrupt-all", 25, [0, 0]), ("queue", 22, [8, 0])] {
        let (mut core, t) = overloaded(strategy, house);
        assert_eq!(
            [target(&core, 1), target(&core, 2)],
            before.map(a),
            "{strategy}"
        );
        // The last value came at 400 s: SmartMeterTOut at 415 s.
        let timeout = t + Duration::from_secs(14);
        let out = core.handle(Event::Tick, timeout);
        assert!(
            core.faults()
                .is_present(Scope::Device, FaultCode::SmartMeterTOut),
            "{strategy}"
        );
        assert!(!switched_on(&out, 2), "{strategy}: {out:?}");
        let _ = core.handle(Event::Tick, timeout + Duration::from_secs(60));
        assert_eq!(
            [target(&core, 1), target(&core, 2)],
            before.map(|x| a(x.min(6))),
            "{strategy}: reduced to the minimum, 0 A stays 0 A"
        );
        assert!(
            core.faults()
                .is_present(Scope::Device, FaultCode::OverCurrent),
            "{strategy}: OverCurrent is not cleared by emergency mode"
        );
    }
}
fn phase_value(core: &mut Core, object: u16, t: Instant, amps: i32) -> Vec<Action> {
    core.handle(
        Event::ObjectWritten {
            object: GoNumber(object),
            value: Value::Current(a(amps)),
        },
        t,
    )
}

fn smart_meter_timeout(core: &Core) -> Option<String> {
    core.faults()
        .present()
        .into_iter()
        .find(|f| f.code == FaultCode::SmartMeterTOut)
        .map(|f| f.message)
}

fn trigger(core: &mut Core, t: Instant, value: bool) -> Vec<Action> {
    core.handle(
        Event::ObjectWritten {
            object: GoNumber(20),
            value: Value::Bool(value),
        },
        t,
    )
}

/// Ch. 9.1 / table 62: every phase object of a 3-phase meter must deliver within the
/// interval + tolerance. Values on L1 and L3 do not stand in for a silent L2, whose
/// other-load estimate would otherwise be held forever.
#[test]
fn a_silent_phase_of_a_three_phase_meter_raises_smart_meter_timeout() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert_eq!(target(&core, 1), a(10));
    // L2 (object 11) falls silent after t0; L1 and L3 go on every 5 s.
    for s in [5u64, 10] {
        let t = t0 + Duration::from_secs(s);
        let _ = phase_value(&mut core, 10, t, 10);
        let _ = phase_value(&mut core, 12, t, 10);
        let _ = core.handle(Event::Tick, t + Duration::from_secs(1));
    }
    assert!(smart_meter_timeout(&core).is_none(), "L2 is not late yet");
    let deadline = t0 + Duration::from_secs(15);
    assert!(core.poll_timeout().is_some_and(|w| w <= deadline));
    let out = core.handle(Event::Tick, deadline);
    let message = smart_meter_timeout(&core).expect("SmartMeterTOut for the silent L2");
    assert!(message.contains("object 11"), "{message}");
    assert!(
        !message.contains("object 10") && !message.contains("object 12"),
        "{message}"
    );
    assert_eq!(
        sets(&out).get(&9),
        Some(&Value::Text("SmartMeterTOut".into()))
    );
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(6), a(6)),
        "emergency mode: reduced to the minimum"
    );
    // L2 returns: the fault goes and the DLM distributes again.
    let t = deadline + Duration::from_secs(1);
    let _ = meter(&mut core, t, [10, 10, 10]);
    assert!(smart_meter_timeout(&core).is_none());
    // The raise waits for a value taken after the cars came down to their minimum.
    let _ = meter(&mut core, t + Duration::from_secs(3), [10, 10, 10]);
    let _ = core.handle(Event::Tick, t + Duration::from_secs(5));
    assert_eq!(target(&core, 1), a(10));
}

/// Table 21: object 20 is DPT 1.017 "trigger", "0: Trigger 1: Trigger" — a 0 keeps the
/// smart meter supervised exactly as a 1 does.
#[test]
fn in_operation_zero_also_counts_as_trigger() {
    let text = HOUSE.replace("mode = \"values\"", "mode = \"values-and-in-operation\"");
    let (mut core, t0) = running(&text, 10);
    for s in [9u64, 18, 27] {
        let _ = trigger(&mut core, t0 + Duration::from_secs(s), false);
        let _ = core.handle(Event::Tick, t0 + Duration::from_secs(s + 1));
    }
    assert!(smart_meter_timeout(&core).is_none(), "0 is a trigger");
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(27 + 15));
    assert!(
        smart_meter_timeout(&core).is_some(),
        "no trigger for interval + tolerance"
    );
}

/// Table 21 and ch. 9.1: with monitoring "values and In operation" the cyclic trigger on
/// object 20 is what ensures the smart meter is in operation (the values come only on
/// change). A missing trigger raises SmartMeterTOut even while values still arrive, at
/// the same moment as when everything is missing; the message tells the two apart.
#[test]
fn in_operation_mode_a_missing_trigger_raises_smart_meter_timeout_while_values_still_arrive() {
    let text = HOUSE.replace("mode = \"values\"", "mode = \"values-and-in-operation\"");
    // Trigger missing, values every 5 s.
    let (mut core, t0) = running(&text, 10);
    let _ = trigger(&mut core, t0 + Duration::from_secs(9), true);
    for s in [13u64, 18, 23] {
        let _ = meter(
            &mut core,
            t0 + Duration::from_secs(s),
            [10 + i32::try_from(s % 2).unwrap(); 3],
        );
    }
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(23));
    assert!(
        smart_meter_timeout(&core).is_none(),
        "the trigger is not late yet"
    );
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(24));
    let trigger_missing = smart_meter_timeout(&core)
        .expect("a missing trigger raises SmartMeterTOut although values arrive");
    assert!(trigger_missing.contains("object 20"), "{trigger_missing}");
    assert!(!trigger_missing.contains("value"), "{trigger_missing}");
    assert_eq!((target(&core, 1), target(&core, 2)), (a(6), a(6)));
    // Everything missing: the same fault at the same moment, a different message.
    let (mut core, t0) = running(&text, 10);
    let _ = trigger(&mut core, t0 + Duration::from_secs(9), true);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(23));
    assert!(smart_meter_timeout(&core).is_none());
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(24));
    let all_missing = smart_meter_timeout(&core).expect("everything missing");
    assert!(all_missing.contains("object 20"), "{all_missing}");
    assert!(
        all_missing.contains("no smart-meter value"),
        "{all_missing}"
    );
    assert_ne!(trigger_missing, all_missing);
}
/// Delivers `payload` as a GroupValue_Write on `ga` through the object engine (DPT
/// decoding with each object's configured DPT) and hands what it yields to the core.
fn telegram(core: &mut Core, t: Instant, ga: &str, payload: Vec<u8>) -> Vec<GoNumber> {
    use crate::knx::wire::apdu::{Apdu, Payload, Tpdu};
    use crate::knx::wire::cemi::{Destination, LData, LDataService};
    use crate::objects::engine::{Engine, SendPolicy};
    let mut engine = Engine::new(
        core.table().clone(),
        SendPolicy::default(),
        "1.1.10".parse().unwrap(),
    )
    .unwrap();
    let payload = if payload.len() == 1 && payload[0] < 64 {
        Payload::Short(payload[0])
    } else {
        Payload::Long(payload)
    };
    let frame = LData::new(
        LDataService::Ind,
        "1.1.99".parse().unwrap(),
        Destination::Group(ga.parse().unwrap()),
        Tpdu::Data(Apdu::GroupValueWrite(payload)),
    );
    let mut objects = Vec::new();
    for r in engine.on_frame(&frame, t) {
        objects.push(r.object);
        let _ = core.handle(
            Event::ObjectWritten {
                object: r.object,
                value: r.value,
            },
            t,
        );
    }
    objects
}

/// Ch. 9.1: the smart meter's values may come in every DPT the spec allows for objects
/// 10–12 — current as 7.012 (mA), 9.021 (mA, 2-byte float) or 14.019 (A, 4-byte float),
/// power as 9.024 (kW, 2-byte float) or 14.056 (W, 4-byte float), converted at the
/// nominal voltage (230 V). 20 A (4.6 kW) per phase gives the same current and the same
/// distribution in each, within the DPT's resolution.
#[test]
fn meter_value_in_each_allowed_dpt_gives_the_same_current() {
    let cases: [(&str, &str, Vec<u8>); 5] = [
        ("current", "7.012", 20_000u16.to_be_bytes().to_vec()),
        // 0.01 · 1953 · 2^10 mA = 19 998.72 mA, the nearest 2-byte float to 20 000 mA.
        ("current", "9.021", vec![0x57, 0xA1]),
        ("current", "14.019", 20.0f32.to_be_bytes().to_vec()),
        // 0.01 · 460 kW = 4.6 kW.
        ("power", "9.024", vec![0x01, 0xCC]),
        ("power", "14.056", 4600.0f32.to_be_bytes().to_vec()),
    ];
    for (measurement, dpt, payload) in cases {
        let key = if measurement == "power" {
            "power_dpt"
        } else {
            "current_dpt"
        };
        let text = HOUSE.replace(
            "measurement = \"current\"",
            &format!("measurement = \"{measurement}\"\n{key} = \"{dpt}\""),
        );
        let mut core = Core::new(config(&text), true);
        let t0 = Instant::now();
        let _ = core.handle(Event::Started, t0);
        assert_eq!(
            core.table().get(GoNumber(10)).map(|o| o.dpt.as_str()),
            Some(dpt)
        );
        let _ = vehicle(&mut core, 1, t0, [0, 0, 0]);
        let _ = no_vehicle(&mut core, 2, t0);
        let _ = no_vehicle(&mut core, 3, t0);
        for ga in ["0/0/10", "0/0/11", "0/0/12"] {
            let got = telegram(&mut core, t0, ga, payload.clone());
            assert_eq!(got.len(), 1, "{dpt}: decoded for one object");
        }
        let metered = core.dlm_cycle().unwrap().meter;
        for p in crate::units::Phase::ALL {
            let diff = (metered.get(p).milliamps() - 20_000).abs();
            assert!(diff <= 2, "{dpt}: {} on {p:?}", metered.get(p));
        }
        let _ = settle(&mut core, t0);
        assert_eq!(target(&core, 1), a(10), "{dpt}: 30 A budget − 20 A");
    }
}

/// Table 20: several devices may report on further group addresses linked to object 13;
/// a report on the second address reduces to the minimum just as on the first.
#[test]
fn high_power_reports_on_a_second_linked_group_address_work_the_same() {
    let text = HOUSE.replace("13 = [\"0/0/13\"]", "13 = [\"0/0/13\", \"0/0/14\"]");
    let (mut core, t0) = running(&text, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert_eq!(target(&core, 1), a(10));
    let got = telegram(&mut core, t0 + Duration::from_secs(3), "0/0/14", vec![1]);
    assert_eq!(got, vec![GoNumber(13)]);
    assert_eq!((target(&core, 1), target(&core, 2)), (a(6), a(6)));
    // A report on the second address within the wait restarts it, too.
    let _ = meter(&mut core, t0 + Duration::from_secs(10), [10, 10, 10]);
    let _ = telegram(&mut core, t0 + Duration::from_secs(40), "0/0/14", vec![1]);
    let _ = meter(&mut core, t0 + Duration::from_secs(50), [10, 10, 10]);
    let _ = meter(&mut core, t0 + Duration::from_secs(64), [10, 10, 10]);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(66));
    assert_eq!(target(&core, 1), a(6), "the wait runs until 100 s");
    let _ = meter(&mut core, t0 + Duration::from_secs(78), [10, 10, 10]);
    let _ = meter(&mut core, t0 + Duration::from_secs(92), [10, 10, 10]);
    let _ = meter(&mut core, t0 + Duration::from_secs(101), [10, 10, 10]);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(104));
    assert_eq!(target(&core, 1), a(10));
}

/// Table 20: value 0 means "inactive": it neither starts a wait nor ends a running one.
#[test]
fn high_power_inactive_report_neither_starts_nor_ends_the_wait() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    let hp = |core: &mut Core, t, on| {
        core.handle(
            Event::ObjectWritten {
                object: GoNumber(13),
                value: Value::Bool(on),
            },
            t,
        )
    };
    let _ = hp(&mut core, t0 + Duration::from_secs(3), false);
    assert_eq!(target(&core, 1), a(10), "0 starts no wait");
    assert!(!core.dlm_cycle().unwrap().high_power);
    let _ = hp(&mut core, t0 + Duration::from_secs(4), true);
    assert_eq!(target(&core, 1), a(6));
    let _ = meter(&mut core, t0 + Duration::from_secs(10), [10, 10, 10]);
    let _ = hp(&mut core, t0 + Duration::from_secs(20), false);
    let _ = meter(&mut core, t0 + Duration::from_secs(24), [10, 10, 10]);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(27));
    assert_eq!(target(&core, 1), a(6), "0 does not end the wait");
    for s in [38u64, 52] {
        let _ = meter(&mut core, t0 + Duration::from_secs(s), [10, 10, 10]);
    }
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(63));
    assert!(
        core.dlm_cycle().unwrap().high_power,
        "wait from the report at 4 s: until 64 s"
    );
    let _ = meter(&mut core, t0 + Duration::from_secs(65), [10, 10, 10]);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(68));
    assert!(
        !core.dlm_cycle().unwrap().high_power,
        "0 did not restart the wait"
    );
    assert_eq!(target(&core, 1), a(10));
}

/// Ch. 9.1 / table 17: a 1-phase smart meter's value is the current of the shared line; it
/// counts on every phase, so a single-phase point wired to L2 is limited by it too.
#[test]
fn one_phase_meter_value_counts_on_every_phase() {
    let text = HOUSE
        .replace("connection = \"3-phase\"", "connection = \"1-phase\"")
        .replace(
            "ip = \"10.0.0.1\"",
            "ip = \"10.0.0.1\"\nphases = 1\nphase_rotation = \"L2-L3-L1\"",
        );
    let mut core = Core::new(config(&text), true);
    let t0 = Instant::now();
    let _ = core.handle(Event::Started, t0);
    let _ = vehicle(&mut core, 1, t0, [0, 0, 0]);
    let _ = no_vehicle(&mut core, 2, t0);
    let _ = no_vehicle(&mut core, 3, t0);
    let _ = phase_value(&mut core, 10, t0, 20);
    assert_eq!(core.dlm_cycle().unwrap().meter, PerPhase::splat(a(20)));
    let _ = settle(&mut core, t0);
    assert_eq!(
        target(&core, 1),
        a(10),
        "L2 is loaded with 20 A too: 30 − 20"
    );
    assert!(
        smart_meter_timeout(&core).is_none(),
        "objects 11 and 12 are not needed"
    );
}

/// Ch. 9.3: "If you are using a charging point without consumption value measurement with
/// DLM, the provided setpoint current is automatically used as the actual current." The
/// meter then shows house + both cars, and the one without metering is not taken for
/// house load.
#[test]
fn a_point_without_metering_counts_its_setpoint_as_its_current() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert_eq!((target(&core, 1), target(&core, 2)), (a(10), a(10)));
    let t = t0 + Duration::from_secs(5);
    let unmetered = ChargerStatus {
        state: Some(CpState::Charging),
        connected: true,
        charging: true,
        currents: None,
        ..ChargerStatus::default()
    };
    let _ = core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: unmetered,
        },
        t,
    );
    let _ = vehicle(&mut core, 2, t, [10, 10, 10]);
    // House 10 A + 10 A (point 1, measured by nothing) + 10 A (point 2).
    let _ = meter(&mut core, t, [30, 30, 30]);
    let _ = settle(&mut core, t);
    assert!(
        !core
            .faults()
            .is_present(Scope::Device, FaultCode::OverCurrent)
    );
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(10), a(10)),
        "its 10 A setpoint counts as its current: the house is still 10 A"
    );
}

/// Per-phase allocation with phase detection from the measured currents: a 1-phase car
/// at a 3-phase charging point draws on L1 only, so it is booked on L1 only and a
/// single-phase point on L2 gets what L2 has.
#[test]
fn three_phase_point_with_a_one_phase_car_frees_the_other_phases() {
    let text = HOUSE
        .replace(
            "ip = \"10.0.0.3\"",
            "ip = \"10.0.0.3\"\nphases = 1\nphase_rotation = \"L2-L3-L1\"",
        )
        .replace("max_current = 16", "max_current = 32");
    let mut core = Core::new(config(&text), true);
    let t0 = Instant::now();
    let _ = core.handle(Event::Started, t0);
    let _ = vehicle(&mut core, 1, t0, [0, 0, 0]);
    let _ = no_vehicle(&mut core, 2, t0);
    let _ = vehicle(&mut core, 3, t0, [0, 0, 0]);
    let _ = meter(&mut core, t0, [10, 10, 10]);
    let _ = settle(&mut core, t0);
    assert_eq!(
        (target(&core, 1), target(&core, 3)),
        (a(10), a(10)),
        "before point 1's car draws it is booked as wired: L2 shared"
    );
    let t = t0 + Duration::from_secs(5);
    let _ = vehicle(&mut core, 1, t, [10, 0, 0]);
    let _ = vehicle(&mut core, 3, t, [10, 0, 0]);
    let _ = meter(&mut core, t, [20, 20, 10]);
    let _ = settle(&mut core, t);
    let _ = core.handle(Event::Tick, t + Duration::from_secs(6));
    assert_eq!(
        (target(&core, 1), target(&core, 3)),
        (a(20), a(20)),
        "point 1 is booked on L1 only: each has 20 A on its own phase"
    );
}
/// Queueing with a rotation interval (60 s) below the minimum on/off time (300 s): the
/// rotation waits until the charging car has been on, and the waiting one off, for the
/// minimum on/off time; it never switches a car off sooner, and everyone still gets a
/// turn.
#[test]
fn queue_rotation_never_switches_off_before_the_minimum_on_time() {
    let text = HOUSE
        .replace("min_switch_time = 0", "min_switch_time = 300")
        .replace(
            "ramp_up_rate = 32.0",
            "ramp_up_rate = 32.0\novercurrent_strategy = \"queue\"\nrotation_interval = 60",
        );
    let (mut core, t0) = running(&text, 22);
    let _ = settle(&mut core, t0);
    let mut on_since: [Option<u64>; 2] = [Some(0), Some(0)];
    let mut turns = [0u32; 2];
    for s in (5..=1300u64).step_by(5) {
        let t = t0 + Duration::from_secs(s);
        if s % 10 == 0 {
            let _ = meter(&mut core, t, [22, 22, 22]);
        }
        let _ = core.handle(Event::Tick, t);
        for n in 1..=2u8 {
            let i = usize::from(n - 1);
            let on = target(&core, n) > Current::ZERO;
            match (on, on_since[i]) {
                (true, None) => {
                    on_since[i] = Some(s);
                    turns[i] += 1;
                }
                (false, Some(since)) => {
                    // The first switch-off (at 3 s) is the shortage itself, not a rotation.
                    assert!(
                        since == 0 || s - since >= 300,
                        "point {n} switched off after {} s on (at {s} s)",
                        s - since
                    );
                    on_since[i] = None;
                }
                _ => {}
            }
        }
        assert!(
            target(&core, 1) == Current::ZERO || target(&core, 2) == Current::ZERO,
            "only one fits at {s} s"
        );
    }
    assert!(
        turns[1] >= 1 && turns.iter().sum::<u32>() >= 3,
        "rotated: {turns:?}"
    );
}

/// Table 13 with DLM: grid-supporting control with 6 A caps what the DLM gives every
/// charging point; when control ends the DLM raises them again.
#[test]
fn grid_control_caps_dlm_targets_at_the_control_setpoint() {
    let text = HOUSE.replace(
        "high_power_waiting_time = 60",
        "high_power_waiting_time = 60\ngrid_control_current = 6",
    );
    let (mut core, t0) = running(&text, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert_eq!((target(&core, 1), target(&core, 2)), (a(10), a(10)));
    let t = t0 + Duration::from_secs(3);
    let out = core.handle(
        Event::ObjectWritten {
            object: GoNumber(1),
            value: Value::Bool(true),
        },
        t,
    );
    assert_eq!((target(&core, 1), target(&core, 2)), (a(6), a(6)));
    assert!(out.contains(&Action::Charger {
        cp: cp(1),
        command: crate::chargers::ChargerCommand::SetCurrent(a(6))
    }));
    let _ = meter(&mut core, t + Duration::from_secs(5), [10, 10, 10]);
    let _ = core.handle(Event::Tick, t + Duration::from_secs(8));
    assert_eq!(target(&core, 1), a(6), "still capped while control lasts");
    let t = t + Duration::from_secs(9);
    let _ = core.handle(
        Event::ObjectWritten {
            object: GoNumber(1),
            value: Value::Bool(false),
        },
        t,
    );
    let _ = core.handle(Event::Tick, t + Duration::from_secs(1));
    assert_eq!((target(&core, 1), target(&core, 2)), (a(10), a(10)));
}

/// Table 13 with DLM: interruption is dominant during grid-supporting control, and when
/// it is released during control the point returns to the control state (the DLM resumes
/// at the minimum, within the 6 A cap).
#[test]
fn interruption_is_dominant_during_grid_control_with_dlm_on() {
    let text = HOUSE.replace(
        "high_power_waiting_time = 60",
        "high_power_waiting_time = 60\ngrid_control_current = 6",
    );
    let (mut core, t0) = running(&text, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    let w = |core: &mut Core, t, o: u16, v: bool| {
        core.handle(
            Event::ObjectWritten {
                object: GoNumber(o),
                value: Value::Bool(v),
            },
            t,
        )
    };
    let t = t0 + Duration::from_secs(3);
    let _ = w(&mut core, t, 1, true);
    assert_eq!(target(&core, 1), a(6));
    let _ = w(&mut core, t, 55, true);
    assert_eq!(target(&core, 1), Current::ZERO, "interruption dominates");
    assert_eq!(
        target(&core, 2),
        a(6),
        "the other stays capped by the control"
    );
    let _ = w(&mut core, t + Duration::from_secs(1), 55, false);
    let _ = core.handle(Event::Tick, t + Duration::from_secs(4));
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(6), a(6)),
        "back in the control state"
    );
}

/// Table 28 with DLM: "the DLM will continue the charging process with the minimum
/// charging current and will control the available charging current again."
#[test]
fn interruption_released_under_dlm_resumes_at_the_minimum_and_the_dlm_raises_it_again() {
    let text = HOUSE.replace("ramp_up_rate = 32.0", "ramp_up_rate = 1.0");
    let (mut core, t0) = running(&text, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(10));
    assert_eq!(target(&core, 1), a(10));
    let w = |core: &mut Core, t, v: bool| {
        core.handle(
            Event::ObjectWritten {
                object: GoNumber(55),
                value: Value::Bool(v),
            },
            t,
        )
    };
    let _ = w(&mut core, t0 + Duration::from_secs(11), true);
    assert_eq!(target(&core, 1), Current::ZERO);
    let _ = meter(&mut core, t0 + Duration::from_secs(12), [10, 10, 10]);
    let t = t0 + Duration::from_secs(13);
    let _ = w(&mut core, t, false);
    assert_eq!(
        target(&core, 1),
        a(6),
        "resumes at the minimum, not at its old 10 A"
    );
    let _ = core.handle(Event::Tick, t + Duration::from_secs(1));
    assert!(target(&core, 1) > a(6), "then the DLM raises it");
    let _ = meter(&mut core, t + Duration::from_secs(5), [10, 10, 10]);
    let _ = core.handle(Event::Tick, t + Duration::from_secs(14));
    assert_eq!(
        (target(&core, 1), target(&core, 2)),
        (a(10), a(10)),
        "the DLM raises it again to the even share"
    );
}

// Why each charging point gets its current: every reason the DLM cycle records comes
// from the situation that causes it.

use crate::dlm::Limit;

fn limit(core: &Core, n: u8) -> Option<Limit> {
    core.limits().get(cp(n))
}

#[test]
fn reason_own_maximum_when_the_budget_is_ample() {
    let (mut core, t0) = running(HOUSE, 0);
    let _ = no_vehicle(&mut core, 2, t0);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert_eq!(target(&core, 1), a(16));
    assert_eq!(limit(&core, 1), Some(Limit::OwnMax));
    assert_eq!(limit(&core, 2), Some(Limit::NoVehicle));
    assert_eq!(limit(&core, 3), Some(Limit::NoVehicle));
    assert_eq!(core.limits().get(cp(4)), None, "not configured");
}

#[test]
fn reason_fair_share_when_two_cars_share_the_budget_and_ramp_while_rising() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_millis(100));
    assert_eq!(limit(&core, 1), Some(Limit::Ramp), "{}", target(&core, 1));
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert_eq!((target(&core, 1), target(&core, 2)), (a(10), a(10)));
    assert_eq!(limit(&core, 1), Some(Limit::FairShare));
    assert_eq!(limit(&core, 2), Some(Limit::FairShare));
}

#[test]
fn reason_phase_when_the_house_uses_up_one_phase() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = no_vehicle(&mut core, 2, t0);
    let _ = meter(&mut core, t0, [5, 20, 5]);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(3));
    assert_eq!(target(&core, 1), a(10), "30 A budget − 20 A on L2");
    assert_eq!(limit(&core, 1), Some(Limit::Phase(crate::units::Phase::L2)));
}

#[test]
fn reason_prioritised_for_the_others_when_the_prioritised_point_takes_the_rest() {
    let text = HOUSE.replace(
        "load_reserve = 2",
        "load_reserve = 2\nprioritised_charging_point = 2",
    );
    let (mut core, t0) = running(&text, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert_eq!((target(&core, 1), target(&core, 2)), (a(6), a(14)));
    assert_eq!(limit(&core, 1), Some(Limit::Prioritised));
    assert!(matches!(limit(&core, 2), Some(Limit::Phase(_))));
}

#[test]
fn reason_emergency_when_the_smart_meter_is_silent() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(15));
    assert_eq!(target(&core, 1), a(6));
    assert_eq!(limit(&core, 1), Some(Limit::Emergency));
    assert_eq!(limit(&core, 3), Some(Limit::NoVehicle), "0 A, no vehicle");
}

#[test]
fn reason_high_power_during_the_wait() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    let _ = core.handle(
        Event::ObjectWritten {
            object: GoNumber(13),
            value: Value::Bool(true),
        },
        t0 + Duration::from_secs(3),
    );
    assert_eq!(limit(&core, 1), Some(Limit::HighPower));
    assert_eq!(limit(&core, 2), Some(Limit::HighPower));
}

/// In per-phase mode (issue 15, phenomenon 6) only the charging points that do not fit
/// wait, so with no room for any minimum both are queued; the symmetric mode keeps the
/// spec's OverCurrent for all.
#[test]
fn reason_shortage_pending_then_overcurrent_when_the_minimums_do_not_fit() {
    let symmetric = HOUSE.replace("[dlm]\n", "[dlm]\nallocation = \"symmetric\"\n");
    for (text, reason) in [(HOUSE, Limit::Queued), (&*symmetric, Limit::OverCurrent)] {
        let (mut core, t0) = running(text, 10);
        let _ = meter(&mut core, t0 + Duration::from_secs(1), [25, 25, 25]);
        assert_eq!(limit(&core, 1), Some(Limit::ShortagePending));
        let _ = settle(&mut core, t0 + Duration::from_secs(1));
        assert_eq!(limit(&core, 1), Some(reason));
        assert_eq!(limit(&core, 2), Some(reason));
    }
}

#[test]
fn reason_queued_for_the_point_waiting_for_its_turn() {
    let text = HOUSE.replace(
        "ramp_up_rate = 32.0",
        "ramp_up_rate = 32.0\novercurrent_strategy = \"queue\"\nrotation_interval = 900",
    );
    let (mut core, t0) = running(&text, 10);
    let _ = meter(&mut core, t0 + Duration::from_secs(1), [22, 22, 22]);
    let _ = settle(&mut core, t0 + Duration::from_secs(1));
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(9));
    assert_eq!((target(&core, 1), target(&core, 2)), (a(8), Current::ZERO));
    assert_eq!(limit(&core, 2), Some(Limit::Queued));
    assert!(matches!(limit(&core, 1), Some(Limit::Phase(_))));
}

#[test]
fn reason_minimum_on_off_time_holds_switching_on() {
    let text = HOUSE.replace("min_switch_time = 0", "min_switch_time = 300");
    let (mut core, t0) = running(&text, 10);
    let _ = meter(&mut core, t0 + Duration::from_secs(1), [25, 25, 25]);
    let _ = settle(&mut core, t0 + Duration::from_secs(1));
    let _ = meter(&mut core, t0 + Duration::from_secs(9), [5, 5, 5]);
    assert_eq!(target(&core, 1), Current::ZERO);
    assert_eq!(limit(&core, 1), Some(Limit::MinSwitchTime));
}

#[test]
fn reason_break_before_make_and_interrupted_by_object_55() {
    let (mut core, t0) = running(HOUSE, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    let _ = core.handle(
        Event::ObjectWritten {
            object: GoNumber(55),
            value: Value::Bool(true),
        },
        t0 + Duration::from_secs(3),
    );
    assert_eq!(limit(&core, 1), Some(Limit::Interrupted));
    assert_eq!(target(&core, 2), a(10));
    assert_eq!(limit(&core, 2), Some(Limit::BreakBeforeMake));
}

#[test]
fn reason_invalid_currents_and_not_reachable() {
    let (mut core, t0) = running(HOUSE, 10);
    let t = t0 + Duration::from_secs(1);
    let _ = core.handle(
        Event::ChargerFailed {
            cp: cp(1),
            error: DriverError::InvalidCurrent("0xFFFFFFFF".into()),
        },
        t,
    );
    let _ = core.handle(
        Event::ChargerFailed {
            cp: cp(2),
            error: DriverError::NotReachable("timeout".into()),
        },
        t,
    );
    let _ = meter(&mut core, t, [10, 10, 10]);
    assert_eq!(limit(&core, 1), Some(Limit::InvalidCurrents));
    assert_eq!(limit(&core, 2), Some(Limit::NotReachable));
}

#[test]
fn reason_vehicle_draws_less_once_it_had_time_to_follow() {
    let (mut core, t0) = running(HOUSE, 0);
    let _ = no_vehicle(&mut core, 2, t0);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    assert_eq!(target(&core, 1), a(16));
    // A poll right after the raise: the vehicle is still following.
    let _ = vehicle(&mut core, 1, t0 + Duration::from_millis(2_100), [9, 9, 9]);
    assert_eq!(limit(&core, 1), Some(Limit::OwnMax));
    // The current has been 16 A for longer than the reaction time: the vehicle takes 9 A.
    let _ = vehicle(&mut core, 1, t0 + Duration::from_secs(6), [9, 9, 9]);
    assert_eq!(limit(&core, 1), Some(Limit::VehicleDrawsLess));
    let _ = vehicle(&mut core, 1, t0 + Duration::from_secs(7), [16, 16, 16]);
    assert_eq!(limit(&core, 1), Some(Limit::OwnMax));
}

#[test]
fn reason_grid_control_when_its_current_caps_the_allocation() {
    let text = HOUSE.replace(
        "high_power_waiting_time = 60",
        "high_power_waiting_time = 60\ngrid_control_current = 8",
    );
    let (mut core, t0) = running(&text, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(2));
    let _ = core.handle(
        Event::ObjectWritten {
            object: GoNumber(1),
            value: Value::Bool(true),
        },
        t0 + Duration::from_secs(3),
    );
    assert_eq!(target(&core, 1), a(8));
    assert_eq!(limit(&core, 1), Some(Limit::GridControl));
}

/// 1-/3-phase switching end to end in the core (issue 15, item 7): charging point 2 (Alfen
/// Eve, `phase_switch = true`) whose 3-phase minimum does not fit on L3 is paused, sent
/// `SetPhases(One)` once it stops drawing, and resumes at its minimum after the box
/// switched and the pause is over.
#[test]
fn a_point_that_may_switch_is_sent_set_phases_and_resumes_on_one_phase() {
    use crate::units::PhaseCount;
    let text = HOUSE.replace(
        "model = \"alfen-eve\"\n",
        "model = \"alfen-eve\"\nphase_switch = true\n",
    );
    let mut core = Core::new(config(&text), true);
    let t0 = Instant::now();
    let _ = core.handle(Event::Started, t0);
    let _ = no_vehicle(&mut core, 1, t0);
    let _ = no_vehicle(&mut core, 3, t0);
    let poll2 = |core: &mut Core, t: Instant, draw: [i32; 3], on: PhaseCount| {
        let status = ChargerStatus {
            state: Some(CpState::Connected),
            connected: true,
            charging: draw.iter().sum::<i32>() > 0,
            currents: Some(PerPhase(draw.map(a))),
            phases_switched: Some(on),
            phase_switch_available: Some(true),
            ..ChargerStatus::default()
        };
        core.handle(Event::ChargerPolled { cp: cp(2), status }, t)
    };
    let _ = poll2(&mut core, t0, [0, 0, 0], PhaseCount::Three);
    // 26 A on L3 leaves 4 A there: the 3-phase minimum (6 A) does not fit; L1 is free.
    let _ = meter(&mut core, t0, [0, 0, 26]);
    assert_eq!(target(&core, 2), Current::ZERO, "paused");
    let s = |n: u64| t0 + Duration::from_secs(n);
    let out = poll2(&mut core, s(1), [0, 0, 0], PhaseCount::Three);
    let set = ChargerCommand::SetPhases(PhaseCount::One);
    assert!(
        out.iter().any(
            |x| matches!(x, Action::Charger { cp: c, command } if *c == cp(2) && *command == set)
        ),
        "{out:?}"
    );
    let _ = core.handle(
        Event::ChargerCommandDone {
            cp: cp(2),
            command: set,
            outcome: CommandOutcome::Done,
        },
        s(2),
    );
    let _ = poll2(&mut core, s(3), [0, 0, 0], PhaseCount::One);
    let _ = meter(&mut core, s(10), [0, 0, 26]);
    assert_eq!(
        target(&core, 2),
        Current::ZERO,
        "the pause after the switch"
    );
    let _ = poll2(&mut core, s(17), [0, 0, 0], PhaseCount::One);
    let _ = core.handle(Event::Tick, s(19));
    assert_eq!(target(&core, 2), a(6), "resumes at the minimum, on L1");
}
