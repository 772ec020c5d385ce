//! Core tests of the charging points: objects, sessions, interruption, grid-supporting
//! control, faults from the boxes, commands.

use super::*;
use crate::chargers::{
    ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState, DriverError,
    ManufacturerError,
};
use crate::knx::dpt::{TimeOfDay, Weekday};
use crate::units::{Current, Energy, PerPhase, Power};
use std::time::Duration;

const FIVE: &str = include_str!("../../../examples/five-chargers.toml");

fn cp(n: u8) -> ChargePointId {
    ChargePointId::new(n).unwrap()
}

fn amps(a: i32) -> Current {
    Current::from_amps(a)
}

fn charging(l1: i32, l2: i32, l3: i32, wh: i32) -> ChargerStatus {
    ChargerStatus {
        state: Some(CpState::Charging),
        connected: true,
        charging: l1 + l2 + l3 > 0,
        setpoint: Some(amps(16)),
        currents: Some(PerPhase([amps(l1), amps(l2), amps(l3)])),
        power: Some(Power::from_watts(230 * (l1 + l2 + l3))),
        energy_total: Some(Energy::from_watt_hours(wh)),
        ..ChargerStatus::default()
    }
}

fn commands(actions: &[Action]) -> Vec<(u8, ChargerCommand)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Charger { cp, command } => Some((cp.number(), *command)),
            _ => None,
        })
        .collect()
}

fn started(text: &str) -> (Core, Instant) {
    let mut core = Core::new(config(text), true);
    let t0 = Instant::now();
    let _ = core.handle(Event::Started, t0);
    let monday_8 = TimeOfDay::new(Some(Weekday::Monday), 8, 0, 0).unwrap();
    let _ = core.handle(Event::Clock(monday_8), t0);
    (core, t0)
}

/// Spec 9.3: a charging point without any metering (optional-metering model, no retrofit
/// meter) shows its setpoint as the actual current while it charges, on its phases.
#[test]
fn a_point_without_metering_reports_its_setpoint_as_actual_current() {
    let text = "[charging_point.1]\nenabled = true\nmodel = \"phoenix-ev-cc\"\nip = \"10.0.0.1\"\nmax_current = 10\n\n[charging_point.2]\nenabled = true\nmodel = \"phoenix-ev-cc\"\nip = \"10.0.0.2\"\nphases = 1\n";
    let (mut core, t0) = started(text);
    let unmetered = |charging: bool, setpoint: i32| ChargerStatus {
        state: Some(if charging {
            CpState::Charging
        } else {
            CpState::Connected
        }),
        connected: true,
        charging,
        setpoint: Some(amps(setpoint)),
        ..ChargerStatus::default()
    };
    let s = sets(&core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: unmetered(true, 10),
        },
        t0,
    ));
    assert_eq!(s.get(&62), Some(&Value::Current(amps(30))));
    for o in 63..=65 {
        assert_eq!(s.get(&o), Some(&Value::Current(amps(10))), "object {o}");
    }
    // One phase: the setpoint on L1 only.
    let s = sets(&core.handle(
        Event::ChargerPolled {
            cp: cp(2),
            status: unmetered(true, 16),
        },
        t0,
    ));
    assert_eq!(s.get(&112), Some(&Value::Current(amps(16))));
    assert_eq!(s.get(&113), Some(&Value::Current(amps(16))));
    assert_eq!(s.get(&114), Some(&Value::Current(Current::ZERO)));
    // Not charging: nothing drawn.
    let s = sets(&core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: unmetered(false, 10),
        },
        t0,
    ));
    assert_eq!(s.get(&62), Some(&Value::Current(Current::ZERO)));
    // A measuring charging point keeps its own values.
    let s = sets(&core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: charging(7, 7, 0, 1000),
        },
        t0,
    ));
    assert_eq!(s.get(&62), Some(&Value::Current(amps(14))));
}

#[test]
fn start_sends_failsafe_and_a_first_current_to_every_active_point() {
    let mut core = Core::new(config(FIVE), true);
    let actions = core.handle(Event::Started, Instant::now());
    let cmds = commands(&actions);
    for n in 1..=5 {
        assert!(
            cmds.iter()
                .any(|(c, cmd)| *c == n && matches!(cmd, ChargerCommand::Failsafe { .. })),
            "failsafe for {n}"
        );
        // DLM on: no current before the meter's first value or the point's first poll
        // (issue 15, phenomenon 9: the start-up minimum was switched off a second later).
        assert!(
            !cmds
                .iter()
                .any(|(c, cmd)| *c == n && matches!(cmd, ChargerCommand::SetCurrent(_))),
            "no current yet for {n}: {cmds:?}"
        );
    }
    // The meter stays silent (interval 10 s + tolerance): emergency mode, every point at its
    // minimum (the spec's rule).
    let t = Instant::now() + Duration::from_secs(60);
    let cmds = commands(&core.handle(Event::Tick, t));
    for n in 1..=5 {
        assert!(
            cmds.contains(&(n, ChargerCommand::SetCurrent(amps(6)))),
            "emergency minimum for {n}: {cmds:?}"
        );
    }
}

#[test]
fn measurements_map_through_the_phase_rotation() {
    let (mut core, t0) = started(FIVE);
    // Charging point 2 is wired L2-L3-L1: its phase 1 is grid L2.
    let a = core.handle(
        Event::ChargerPolled {
            cp: cp(2),
            status: charging(10, 0, 0, 1000),
        },
        t0,
    );
    let s = sets(&a);
    assert_eq!(s.get(&100), Some(&Value::U8(8)));
    assert_eq!(s.get(&101), Some(&Value::Bool(true)));
    assert_eq!(s.get(&112), Some(&Value::Current(amps(10))), "sum");
    assert_eq!(s.get(&113), Some(&Value::Current(amps(0))), "grid L1");
    assert_eq!(
        s.get(&114),
        Some(&Value::Current(amps(10))),
        "grid L2 carries phase 1"
    );
    assert_eq!(s.get(&116), Some(&Value::Power(Power::from_watts(2300))));
    assert_eq!(
        s.get(&111),
        Some(&Value::Current(amps(16))),
        "setpoint state"
    );
}

#[test]
fn session_energy_times_and_duration() {
    let (mut core, t0) = started(FIVE);
    let idle = ChargerStatus {
        state: Some(CpState::Available),
        energy_total: Some(Energy::from_watt_hours(5000)),
        ..ChargerStatus::default()
    };
    let _ = core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: idle,
        },
        t0,
    );
    let plugged = ChargerStatus {
        connected: true,
        state: Some(CpState::Connected),
        ..charging(0, 0, 0, 5000)
    };
    let _ = core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: plugged,
        },
        t0,
    );
    let t1 = t0 + Duration::from_secs(90);
    let a = core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: charging(16, 16, 16, 5000),
        },
        t1,
    );
    let start = sets(&a).get(&76).cloned();
    assert_eq!(
        start,
        Some(Value::TimeOfDay(
            TimeOfDay::new(Some(Weekday::Monday), 8, 1, 30).unwrap()
        ))
    );
    let t2 = t1 + Duration::from_secs(3600);
    let a = core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: charging(16, 16, 16, 16_000),
        },
        t2,
    );
    assert_eq!(
        sets(&a).get(&74),
        Some(&Value::Energy(Energy::from_watt_hours(11_000))),
        "energy of this charge from the counter"
    );
    assert_eq!(
        sets(&a).get(&78),
        Some(&Value::Seconds(3600)),
        "duration refreshed while charging"
    );
    let t3 = t2 + Duration::from_secs(60);
    let done = ChargerStatus {
        state: Some(CpState::Connected),
        ..charging(0, 0, 0, 16_100)
    };
    let a = core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: done,
        },
        t3,
    );
    let s = sets(&a);
    assert_eq!(
        s.get(&77),
        Some(&Value::TimeOfDay(
            TimeOfDay::new(Some(Weekday::Monday), 9, 2, 30).unwrap()
        ))
    );
    assert_eq!(s.get(&78), Some(&Value::Seconds(3660)));
    assert_eq!(
        s.get(&74),
        Some(&Value::Energy(Energy::from_watt_hours(11_100)))
    );
    assert_eq!(
        s.get(&75),
        Some(&Value::Energy(Energy::from_watt_hours(16_100)))
    );
}

fn persisted(actions: &[Action]) -> Option<Persisted> {
    actions.iter().rev().find_map(|a| match a {
        Action::Persist(p) => Some(p.clone()),
        _ => None,
    })
}

fn poll_status(core: &mut Core, n: u8, status: ChargerStatus, at: Instant) -> Vec<Action> {
    core.handle(Event::ChargerPolled { cp: cp(n), status }, at)
}

#[test]
fn the_counter_at_plug_in_survives_a_restart_while_the_vehicle_charges() {
    let (mut core, t0) = started(FIVE);
    // Plugging in stores the lifetime counter at that moment.
    let a = poll_status(&mut core, 1, charging(16, 16, 16, 5000), t0);
    let stored = persisted(&a).expect("plugging in is persisted");
    assert_eq!(stored.plug_in_mwh.get(&1), Some(&5_000_000));
    // Polls without a change of vehicle persist nothing.
    let a = poll_status(
        &mut core,
        1,
        charging(16, 16, 16, 6000),
        t0 + Duration::from_secs(1),
    );
    assert_eq!(persisted(&a), None);
    // A restart: the new core gets the stored counter, the vehicle is still there and the
    // box counted on meanwhile. The charge counts from the plug-in, not from the restart.
    let (mut core, t1) = started(FIVE);
    let _ = core.handle(Event::Restored(stored.clone()), t1);
    let a = poll_status(&mut core, 1, charging(16, 16, 16, 9000), t1);
    assert_eq!(
        sets(&a).get(&74),
        Some(&Value::Energy(Energy::from_watt_hours(4000))),
        "energy of this charge across the restart"
    );
    // Unplugging stores that no vehicle is connected any more.
    let gone = ChargerStatus {
        state: Some(CpState::Available),
        energy_total: Some(Energy::from_watt_hours(9000)),
        ..ChargerStatus::default()
    };
    let a = poll_status(&mut core, 1, gone, t1 + Duration::from_secs(5));
    assert_eq!(persisted(&a).map(|p| p.plug_in_mwh.len()), Some(0));
}

#[test]
fn a_restored_counter_is_dropped_when_it_cannot_belong_to_the_vehicle() {
    let stored = Persisted {
        plug_in_mwh: [(1, 5_000_000), (2, 5_000_000)].into_iter().collect(),
    };
    let (mut core, t0) = started(FIVE);
    let _ = core.handle(Event::Restored(stored), t0);
    // CP1: the counter went backwards (another or a reset box): count from this poll.
    let a = poll_status(&mut core, 1, charging(16, 16, 16, 3000), t0);
    assert_eq!(
        sets(&a).get(&74),
        Some(&Value::Energy(Energy::ZERO)),
        "a counter below the stored one starts the charge afresh"
    );
    // CP2: no vehicle at the first poll; a vehicle that comes later counts from its own
    // plug-in.
    let idle = ChargerStatus {
        state: Some(CpState::Available),
        energy_total: Some(Energy::from_watt_hours(7000)),
        ..ChargerStatus::default()
    };
    let _ = poll_status(&mut core, 2, idle, t0);
    let a = poll_status(
        &mut core,
        2,
        charging(16, 16, 16, 7000),
        t0 + Duration::from_secs(1),
    );
    assert_eq!(
        persisted(&a).and_then(|p| p.plug_in_mwh.get(&2).copied()),
        Some(7_000_000)
    );
}

#[test]
fn charging_complete_after_the_configured_time_and_reset_at_once() {
    let (mut core, t0) = started(FIVE);
    let trickle = charging(0, 0, 0, 1000);
    let a = core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: trickle.clone(),
        },
        t0,
    );
    assert_eq!(sets(&a).get(&53), Some(&Value::Bool(false)));
    // Default: below 1.0 A for 300 s. (With DLM on, earlier wake-ups exist too.)
    let wake = t0 + Duration::from_secs(300);
    assert!(core.poll_timeout().unwrap() <= wake);
    let a = core.handle(Event::Tick, t0 + Duration::from_secs(299));
    assert_ne!(
        sets(&a).get(&53),
        Some(&Value::Bool(true)),
        "not before its time"
    );
    let a = core.handle(Event::Tick, wake);
    assert_eq!(sets(&a).get(&53), Some(&Value::Bool(true)));
    assert!(
        core.poll_timeout().is_none_or(|t| t > wake),
        "no busy wake-ups once complete"
    );
    let a = core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: charging(2, 0, 0, 1000),
        },
        wake,
    );
    assert_eq!(
        sets(&a).get(&53),
        Some(&Value::Bool(false)),
        "reset as soon as the current rises"
    );
}

#[test]
fn faults_from_the_charger_appear_on_94_to_99_and_clear() {
    let (mut core, t0) = started(FIVE);
    let a = core.handle(
        Event::ChargerFailed {
            cp: cp(3),
            error: DriverError::NotReachable("timeout".into()),
        },
        t0,
    );
    let s = sets(&a);
    assert_eq!(
        (s.get(&194), s.get(&195)),
        (
            Some(&Value::Bool(true)),
            Some(&Value::Text("NotReachable".into()))
        )
    );
    assert_eq!(core.leds().app, AppLed::ThreeFlashes);
    // Unreachable: its state is "not available" (3), not what it last reported.
    assert_eq!(s.get(&150), Some(&Value::U8(3)));
    let mut status = charging(6, 6, 6, 100);
    status.error = Some(ManufacturerError { parts: vec![0x1A] });
    let a = core.handle(Event::ChargerPolled { cp: cp(3), status }, t0);
    let s = sets(&a);
    assert_eq!(s.get(&195), Some(&Value::Text("ChargerError".into())));
    assert_eq!(s.get(&196), Some(&Value::Text("0x0000001A".into())));
    let a = core.handle(
        Event::ChargerPolled {
            cp: cp(3),
            status: charging(6, 6, 6, 100),
        },
        t0,
    );
    let s = sets(&a);
    assert_eq!(s.get(&194), Some(&Value::Bool(false)));
    assert_eq!(s.get(&196), Some(&Value::Text(String::new())));
    // Back: the state is its own again.
    assert_eq!(core.value(GoNumber(150)), Some(&Value::U8(8)));
    // Other charging points are untouched.
    assert_eq!(core.value(GoNumber(144)), Some(&Value::Bool(false)));
    let a = core.handle(
        Event::ChargerFailed {
            cp: cp(1),
            error: DriverError::WrongCharger("serial says ABB".into()),
        },
        t0,
    );
    assert_eq!(sets(&a).get(&95), Some(&Value::Text("WrongCharger".into())));
    let a = core.handle(
        Event::ChargerIdentified {
            cp: cp(1),
            identity: ChargerIdentity {
                serial: Some("17123456".into()),
                firmware: Some("3.10.57".into()),
                model: None,
            },
        },
        t0,
    );
    assert_eq!(sets(&a).get(&80), Some(&Value::Text("17123456".into())));
}

#[test]
fn an_unreachable_charging_point_is_not_available_until_it_answers() {
    let (mut core, t0) = started(FIVE);
    let _ = core.handle(
        Event::ChargerPolled {
            cp: cp(3),
            status: charging(6, 6, 6, 100),
        },
        t0,
    );
    assert_eq!(core.value(GoNumber(150)), Some(&Value::U8(8)));
    let _ = core.handle(
        Event::ChargerFailed {
            cp: cp(3),
            error: DriverError::NotReachable("timeout".into()),
        },
        t0,
    );
    assert_eq!(core.value(GoNumber(150)), Some(&Value::U8(3)));
    // No stale "charging" or currents either (objects 52 and 63–66 of charging point 3).
    let at = |offset: u16| core.value(crate::core::points::obj(cp(3), offset)).cloned();
    assert_eq!(
        at(crate::objects::number::cp::CHARGING),
        Some(Value::Bool(false))
    );
    assert_eq!(
        at(crate::objects::number::cp::CURRENT_SUM),
        Some(Value::Current(Current::ZERO))
    );
    // A new setpoint (object 60) re-applies the target and re-publishes states: the
    // last answer's "Charge" must not come back while it is unreachable.
    let _ = core.handle(
        Event::ObjectWritten {
            object: GoNumber(160),
            value: Value::Current(Current::from_amps(10)),
        },
        t0,
    );
    assert_eq!(core.value(GoNumber(150)), Some(&Value::U8(3)));
    let _ = core.handle(
        Event::ChargerPolled {
            cp: cp(3),
            status: charging(6, 6, 6, 100),
        },
        t0,
    );
    assert_eq!(core.value(GoNumber(150)), Some(&Value::U8(8)));
}

#[test]
fn retrofit_meter_faults_appear_at_the_charging_point_and_clear() {
    use crate::faults::FaultCode;
    use crate::meters::MeterError;
    let (mut core, t0) = started(FIVE);
    let a = core.handle(
        Event::MeterStatus {
            cp: cp(2),
            error: Some(MeterError::NotReachable("timeout".into())),
        },
        t0,
    );
    assert_eq!(
        sets(&a).get(&145),
        Some(&Value::Text("EMeterNotReach".into()))
    );
    assert_eq!(core.faults().worst().map(|s| s.0), Some(30));
    let _ = core.handle(
        Event::MeterStatus {
            cp: cp(2),
            error: Some(MeterError::Fault(0x4)),
        },
        t0,
    );
    assert!(
        core.faults()
            .is_present(Scope::ChargingPoint(cp(2)), FaultCode::EMeterError)
    );
    assert!(
        !core
            .faults()
            .is_present(Scope::ChargingPoint(cp(2)), FaultCode::EMeterNotReach)
    );
    let a = core.handle(
        Event::MeterStatus {
            cp: cp(2),
            error: None,
        },
        t0,
    );
    assert_eq!(sets(&a).get(&144), Some(&Value::Bool(false)));
    assert_eq!(
        core.value(GoNumber(145)),
        Some(&Value::Text("EMeter Error".into())),
        "the last fault stays shown"
    );
}

#[test]
fn refused_commands_are_information_faults() {
    let (mut core, t0) = started(FIVE);
    let a = core.handle(
        Event::ChargerCommandDone {
            cp: cp(1),
            command: ChargerCommand::StartStop(true),
            outcome: CommandOutcome::NotPossible("automatic start".into()),
        },
        t0,
    );
    assert_eq!(
        sets(&a).get(&95),
        Some(&Value::Text("OpNotPossible".into()))
    );
    assert_eq!(
        core.value(GoNumber(94)),
        Some(&Value::Bool(false)),
        "information only: no fault present"
    );
}

#[test]
fn a_refused_phase_switch_is_no_fault() {
    let (mut core, t0) = started(FIVE);
    let a = core.handle(
        Event::ChargerCommandDone {
            cp: cp(1),
            command: ChargerCommand::SetPhases(crate::units::PhaseCount::One),
            outcome: CommandOutcome::NotPossible("no KeContact S10".into()),
        },
        t0,
    );
    assert_eq!(sets(&a).get(&95), None, "no fault message");
    assert_eq!(core.value(GoNumber(94)), Some(&Value::Bool(false)));
}

const DLM_OFF: &str = "[dlm]\ngrid_control_current = 6\n[charging_point.1]\nenabled = true\nmodel = \"keba-p30\"\nip = \"10.0.0.1\"\nmin_current = 6\nmax_current = 32\n";

fn write(core: &mut Core, t: Instant, o: u16, v: Value) -> Vec<Action> {
    core.handle(
        Event::ObjectWritten {
            object: GoNumber(o),
            value: v,
        },
        t,
    )
}

/// A poll of charging point 1 in `state`.
fn poll(core: &mut Core, t: Instant, state: CpState, connected: bool) -> Vec<Action> {
    let charging = state == CpState::Charging;
    let a = if charging { 10 } else { 0 };
    let status = ChargerStatus {
        state: Some(state),
        connected,
        charging,
        currents: Some(PerPhase::splat(amps(a))),
        ..ChargerStatus::default()
    };
    core.handle(Event::ChargerPolled { cp: cp(1), status }, t)
}

fn set_current(n: u8, a: i32) -> (u8, ChargerCommand) {
    (n, ChargerCommand::SetCurrent(amps(a)))
}

/// Table 31 / ch. 9.2: a set value above the maximum is corrected to the maximum, and
/// ValOutOfRange (40) is shown for information only.
#[test]
fn setpoint_above_maximum_is_lowered_to_it_with_valoutofrange() {
    let (mut core, t0) = started(DLM_OFF);
    let a = write(&mut core, t0, 60, Value::Current(amps(10)));
    assert_eq!(commands(&a), vec![set_current(1, 10)]);
    let a = write(&mut core, t0, 60, Value::Current(amps(40)));
    assert_eq!(commands(&a), vec![set_current(1, 32)], "the maximum");
    assert_eq!(
        sets(&a).get(&95),
        Some(&Value::Text("ValOutOfRange".into()))
    );
    assert_eq!(
        core.value(GoNumber(94)),
        Some(&Value::Bool(false)),
        "information only"
    );
}

/// Table 31 note: "Some charging points allow 0 A to be set" — every model here pauses
/// at 0 A, so 0 A is passed on (no raise to the minimum, no ValOutOfRange).
#[test]
fn setpoint_of_zero_pauses_instead_of_being_raised_to_the_minimum() {
    let (mut core, t0) = started(DLM_OFF);
    let _ = write(&mut core, t0, 60, Value::Current(amps(10)));
    let a = write(&mut core, t0, 60, Value::Current(amps(0)));
    assert_eq!(commands(&a), vec![set_current(1, 0)]);
    assert_eq!(sets(&a).get(&95), None, "no ValOutOfRange");
}

/// Table 31 / ch. 9.2: "If the set value falls below the minimum charging current … the
/// set value is automatically corrected to the value of the minimum".
#[test]
fn setpoint_below_minimum_is_raised_to_it_with_valoutofrange() {
    let (mut core, t0) = started(DLM_OFF);
    let _ = write(&mut core, t0, 60, Value::Current(amps(10)));
    let a = write(&mut core, t0, 60, Value::Current(amps(3)));
    assert_eq!(
        commands(&a),
        vec![set_current(1, 6)],
        "the minimum, not 3 A"
    );
    assert_eq!(
        sets(&a).get(&95),
        Some(&Value::Text("ValOutOfRange".into()))
    );
    assert_eq!(
        core.value(GoNumber(94)),
        Some(&Value::Bool(false)),
        "information only"
    );
    let a = write(&mut core, t0, 60, Value::Current(amps(8)));
    assert_eq!(
        commands(&a),
        vec![set_current(1, 8)],
        "in range: taken as it is"
    );
}

/// Table 28: while the charging point is in use, the interruption pauses the charging
/// process (0 A); object 56 shows it and object 50 shows Interruption (11).
#[test]
fn interruption_pauses_charging_and_shows_state_11() {
    let (mut core, t0) = started(DLM_OFF);
    let _ = write(&mut core, t0, 60, Value::Current(amps(10)));
    let _ = poll(&mut core, t0, CpState::Charging, true);
    assert_eq!(core.value(GoNumber(50)), Some(&Value::U8(8)));
    let a = write(&mut core, t0, 55, Value::Bool(true));
    assert_eq!(commands(&a), vec![set_current(1, 0)]);
    assert_eq!(sets(&a).get(&56), Some(&Value::Bool(true)));
    assert_eq!(sets(&a).get(&50), Some(&Value::U8(11)));
}

/// With the DLM off the core records why a charging point gets its current: the
/// setpoint of object 60, its own maximum, interruption, grid-supporting control.
#[test]
fn without_dlm_the_reason_follows_setpoint_interruption_and_grid_control() {
    use crate::dlm::Limit;
    let (mut core, t0) = started(DLM_OFF);
    let _ = poll(&mut core, t0, CpState::Charging, true);
    assert_eq!(core.limits().get(cp(1)), Some(Limit::OwnMax));
    let _ = write(&mut core, t0, 60, Value::Current(amps(12)));
    assert_eq!(core.limits().get(cp(1)), Some(Limit::Setpoint));
    let _ = write(&mut core, t0, 1, Value::Bool(true));
    assert_eq!(core.limits().get(cp(1)), Some(Limit::GridControl));
    let _ = write(&mut core, t0, 55, Value::Bool(true));
    assert_eq!(core.limits().get(cp(1)), Some(Limit::Interrupted));
    let _ = write(&mut core, t0, 55, Value::Bool(false));
    let _ = write(&mut core, t0, 1, Value::Bool(false));
    assert_eq!(core.limits().get(cp(1)), Some(Limit::Setpoint));
    let _ = poll(&mut core, t0, CpState::Available, false);
    assert_eq!(core.limits().get(cp(1)), Some(Limit::NoVehicle));
}

/// Table 28: "If the charging process was previously controlled without DLM, the charging
/// process is continued with the previous setpoint current."
#[test]
fn interruption_released_without_dlm_continues_with_the_previous_setpoint() {
    let (mut core, t0) = started(DLM_OFF);
    let _ = write(&mut core, t0, 60, Value::Current(amps(10)));
    let _ = write(&mut core, t0, 55, Value::Bool(true));
    let a = write(&mut core, t0, 55, Value::Bool(false));
    assert_eq!(commands(&a), vec![set_current(1, 10)]);
    assert_eq!(sets(&a).get(&56), Some(&Value::Bool(false)));
}

/// Table 28: "If the setpoint current is changed during the interruption, the charging
/// process is continued with the re-defined setpoint current."
#[test]
fn interruption_released_without_dlm_continues_with_the_redefined_setpoint() {
    let (mut core, t0) = started(DLM_OFF);
    let _ = write(&mut core, t0, 60, Value::Current(amps(10)));
    let _ = write(&mut core, t0, 55, Value::Bool(true));
    let a = write(&mut core, t0, 60, Value::Current(amps(12)));
    assert!(
        commands(&a).is_empty(),
        "still interrupted: {:?}",
        commands(&a)
    );
    let a = write(&mut core, t0, 55, Value::Bool(false));
    assert_eq!(commands(&a), vec![set_current(1, 12)]);
}

/// Table 28: "If the charging point is currently available …, the charging point is
/// blocked for the duration of the interruption"; table 23: state 11 meanwhile, and the
/// previous state (Available) when it ends.
#[test]
fn interruption_of_an_available_point_blocks_it_and_shows_state_11() {
    let (mut core, t0) = started(DLM_OFF);
    let _ = poll(&mut core, t0, CpState::Available, false);
    assert_eq!(core.value(GoNumber(50)), Some(&Value::U8(5)));
    let a = write(&mut core, t0, 55, Value::Bool(true));
    assert_eq!(
        commands(&a),
        vec![set_current(1, 0)],
        "blocked: no current offered"
    );
    assert_eq!(sets(&a).get(&50), Some(&Value::U8(11)));
    assert_eq!(sets(&a).get(&56), Some(&Value::Bool(true)));
    let _ = poll(
        &mut core,
        t0 + Duration::from_secs(1),
        CpState::Available,
        false,
    );
    assert_eq!(
        core.value(GoNumber(50)),
        Some(&Value::U8(11)),
        "still blocked"
    );
    let a = write(
        &mut core,
        t0 + Duration::from_secs(2),
        55,
        Value::Bool(false),
    );
    assert_eq!(sets(&a).get(&50), Some(&Value::U8(5)), "Available again");
    assert_eq!(commands(&a), vec![set_current(1, 32)]);
}

/// Table 23: "If the interruption is disabled or terminated, the previous state is
/// restored", e.g. Charge (8) — not what the paused charging point showed meanwhile. A
/// vehicle that leaves during the interruption is restored as Available (5).
#[test]
fn released_interruption_restores_the_previous_state_on_object_50() {
    let (mut core, t0) = started(DLM_OFF);
    let _ = poll(&mut core, t0, CpState::Charging, true);
    let _ = write(&mut core, t0, 55, Value::Bool(true));
    // The paused charging point reports its own "Connected" meanwhile.
    let _ = poll(
        &mut core,
        t0 + Duration::from_secs(1),
        CpState::Connected,
        true,
    );
    assert_eq!(core.value(GoNumber(50)), Some(&Value::U8(11)));
    let a = write(
        &mut core,
        t0 + Duration::from_secs(2),
        55,
        Value::Bool(false),
    );
    assert_eq!(sets(&a).get(&50), Some(&Value::U8(8)), "Charge, as before");
    // Interrupted again; the vehicle leaves meanwhile.
    let _ = poll(
        &mut core,
        t0 + Duration::from_secs(3),
        CpState::Charging,
        true,
    );
    let _ = write(
        &mut core,
        t0 + Duration::from_secs(3),
        55,
        Value::Bool(true),
    );
    let _ = poll(
        &mut core,
        t0 + Duration::from_secs(4),
        CpState::Available,
        false,
    );
    assert_eq!(core.value(GoNumber(50)), Some(&Value::U8(11)));
    let a = write(
        &mut core,
        t0 + Duration::from_secs(5),
        55,
        Value::Bool(false),
    );
    assert_eq!(
        sets(&a).get(&50),
        Some(&Value::U8(5)),
        "the vehicle has left"
    );
}

/// Table 13: during grid-supporting control with 6 A the setpoint is reduced to 6 A; the
/// previous setpoint returns when control ends; object 2 mirrors the state.
#[test]
fn grid_control_caps_the_setpoint_and_restores_it_afterwards() {
    let (mut core, t0) = started(DLM_OFF);
    let _ = write(&mut core, t0, 60, Value::Current(amps(12)));
    let a = write(&mut core, t0, 1, Value::Bool(true));
    assert_eq!(commands(&a), vec![set_current(1, 6)]);
    assert_eq!(sets(&a).get(&2), Some(&Value::Bool(true)));
    let a = write(&mut core, t0, 1, Value::Bool(false));
    assert_eq!(commands(&a), vec![set_current(1, 12)]);
    assert_eq!(sets(&a).get(&2), Some(&Value::Bool(false)));
}

/// Table 13, for both settings (6 A and 0 A): "if the setpoint current is changed during
/// grid-supporting control, this setpoint value will be used once the grid-supporting
/// control has ended."
#[test]
fn setpoint_changed_during_grid_control_is_used_afterwards() {
    for grid in [6, 0] {
        let text = DLM_OFF.replace(
            "grid_control_current = 6",
            &format!("grid_control_current = {grid}"),
        );
        let (mut core, t0) = started(&text);
        let _ = write(&mut core, t0, 60, Value::Current(amps(20)));
        let a = write(&mut core, t0, 1, Value::Bool(true));
        assert_eq!(commands(&a), vec![set_current(1, grid)], "{grid} A");
        let a = write(&mut core, t0, 60, Value::Current(amps(12)));
        assert!(commands(&a).is_empty(), "{grid} A: control still active");
        let a = write(&mut core, t0, 1, Value::Bool(false));
        assert_eq!(
            commands(&a),
            vec![set_current(1, 12)],
            "{grid} A: the new setpoint"
        );
    }
}

/// Table 13: "grid-supporting control with 0 A behaves in the same way as the
/// Interruption function. When grid-supporting control is terminated, the previous state
/// is always restored, taking into account the previously used setpoint current";
/// table 23: state 11 meanwhile.
#[test]
fn grid_control_zero_amps_behaves_as_interruption_and_restores_previous_state_and_setpoint() {
    let text = DLM_OFF.replace("grid_control_current = 6", "grid_control_current = 0");
    let (mut core, t0) = started(&text);
    let _ = write(&mut core, t0, 60, Value::Current(amps(20)));
    let _ = poll(&mut core, t0, CpState::Charging, true);
    assert_eq!(core.value(GoNumber(50)), Some(&Value::U8(8)));
    let a = write(&mut core, t0, 1, Value::Bool(true));
    assert_eq!(commands(&a), vec![set_current(1, 0)]);
    assert_eq!(sets(&a).get(&50), Some(&Value::U8(11)), "Interruption");
    let _ = poll(
        &mut core,
        t0 + Duration::from_secs(1),
        CpState::Connected,
        true,
    );
    assert_eq!(core.value(GoNumber(50)), Some(&Value::U8(11)));
    let a = write(
        &mut core,
        t0 + Duration::from_secs(2),
        1,
        Value::Bool(false),
    );
    assert_eq!(
        commands(&a),
        vec![set_current(1, 20)],
        "the previous setpoint"
    );
    assert_eq!(sets(&a).get(&50), Some(&Value::U8(8)), "the previous state");
}

/// Table 13: interruption is dominant also during grid-supporting control with 0 A: it
/// stays in force when control ends, and the setpoint returns only when it is released.
#[test]
fn interruption_is_dominant_during_grid_control_with_zero_amps() {
    let text = DLM_OFF.replace("grid_control_current = 6", "grid_control_current = 0");
    let (mut core, t0) = started(&text);
    let _ = write(&mut core, t0, 60, Value::Current(amps(20)));
    let _ = poll(&mut core, t0, CpState::Charging, true);
    let _ = write(&mut core, t0, 1, Value::Bool(true));
    let a = write(&mut core, t0, 55, Value::Bool(true));
    assert_eq!(sets(&a).get(&56), Some(&Value::Bool(true)));
    let a = write(&mut core, t0, 1, Value::Bool(false));
    assert!(
        commands(&a).is_empty(),
        "still interrupted: {:?}",
        commands(&a)
    );
    assert_eq!(core.value(GoNumber(50)), Some(&Value::U8(11)));
    assert_eq!(core.target(cp(1)), Some(Current::ZERO));
    let a = write(&mut core, t0, 55, Value::Bool(false));
    assert_eq!(commands(&a), vec![set_current(1, 20)]);
    assert_eq!(sets(&a).get(&50), Some(&Value::U8(8)));
}

#[test]
fn start_stop_and_unlock_go_straight_to_the_charging_point() {
    let (mut core, t0) = started(DLM_OFF);
    let a = write(&mut core, t0, 54, Value::Bool(false));
    assert_eq!(commands(&a), vec![(1, ChargerCommand::StartStop(false))]);
    let a = write(&mut core, t0, 59, Value::Bool(true));
    assert_eq!(commands(&a), vec![(1, ChargerCommand::Unlock)]);
}

/// Table 27: a stop cancels the charging process (state 4); it "can only be restarted
/// again once the electric vehicle is reconnected", and then needs a start: the core shows
/// "Manual start required" (7) and passes the start on. A start before that is refused
/// with OpNotPossible (40, information only).
#[test]
fn after_a_stop_a_reconnected_vehicle_shows_manual_start_required() {
    let (mut core, t0) = started(DLM_OFF);
    let _ = poll(&mut core, t0, CpState::Charging, true);
    let a = write(&mut core, t0, 54, Value::Bool(false));
    assert_eq!(commands(&a), vec![(1, ChargerCommand::StartStop(false))]);
    let _ = poll(
        &mut core,
        t0 + Duration::from_secs(1),
        CpState::Cancelled,
        true,
    );
    assert_eq!(core.value(GoNumber(50)), Some(&Value::U8(4)), "Cancelled");
    let a = write(
        &mut core,
        t0 + Duration::from_secs(2),
        54,
        Value::Bool(true),
    );
    assert!(
        commands(&a).is_empty(),
        "not before the vehicle is reconnected"
    );
    assert_eq!(
        sets(&a).get(&95),
        Some(&Value::Text("OpNotPossible".into()))
    );
    let _ = poll(
        &mut core,
        t0 + Duration::from_secs(3),
        CpState::Available,
        false,
    );
    assert_eq!(core.value(GoNumber(50)), Some(&Value::U8(5)));
    // Reconnected: the charging point itself still reports "cancelled" (it stays
    // stopped); the core shows that a manual start is required.
    let _ = poll(
        &mut core,
        t0 + Duration::from_secs(4),
        CpState::Cancelled,
        true,
    );
    assert_eq!(
        core.value(GoNumber(50)),
        Some(&Value::U8(7)),
        "Manual start required"
    );
    let a = write(
        &mut core,
        t0 + Duration::from_secs(5),
        54,
        Value::Bool(true),
    );
    assert_eq!(commands(&a), vec![(1, ChargerCommand::StartStop(true))]);
    assert_ne!(
        sets(&a).get(&95),
        Some(&Value::Text("OpNotPossible".into()))
    );
}

/// Table 63, OpNotPossible (40): a start is refused when the charging point starts
/// automatically or the process has already been started; it is passed on where the
/// charging point reports "Manual start required" (7) itself.
#[test]
fn a_start_without_manual_start_required_is_refused_with_opnotpossible() {
    let (mut core, t0) = started(DLM_OFF);
    let _ = poll(&mut core, t0, CpState::Charging, true);
    let a = write(&mut core, t0, 54, Value::Bool(true));
    assert!(commands(&a).is_empty(), "{:?}", commands(&a));
    assert_eq!(
        sets(&a).get(&95),
        Some(&Value::Text("OpNotPossible".into()))
    );
    assert_eq!(
        core.value(GoNumber(94)),
        Some(&Value::Bool(false)),
        "information only"
    );
    assert!(
        !core.faults().is_present(
            Scope::ChargingPoint(cp(1)),
            crate::faults::FaultCode::OpNotPossible
        ),
        "reset at once"
    );
    let _ = poll(
        &mut core,
        t0 + Duration::from_secs(1),
        CpState::ManualStartRequired,
        true,
    );
    assert_eq!(core.value(GoNumber(50)), Some(&Value::U8(7)));
    let a = write(
        &mut core,
        t0 + Duration::from_secs(1),
        54,
        Value::Bool(true),
    );
    assert_eq!(commands(&a), vec![(1, ChargerCommand::StartStop(true))]);
}

/// Ch. 11: "Faults with severity level 10 or 50 are automatically reset when next called
/// and do not emit any visual signals": EMeter Error (10), EMeter Comm (20),
/// EMeterNotReach (30) at the next meter read, ChargerError (50) at the next poll.
#[test]
fn severities_10_to_50_reset_automatically_when_next_called() {
    use crate::faults::FaultCode;
    use crate::meters::MeterError;
    let (mut core, t0) = started(DLM_OFF);
    let scope = Scope::ChargingPoint(cp(1));
    for (error, code, level) in [
        (MeterError::Fault(0x4), FaultCode::EMeterError, 10),
        (
            MeterError::Comm("exception 2".into()),
            FaultCode::EMeterComm,
            20,
        ),
        (
            MeterError::NotReachable("timeout".into()),
            FaultCode::EMeterNotReach,
            30,
        ),
    ] {
        let _ = core.handle(
            Event::MeterStatus {
                cp: cp(1),
                error: Some(error),
            },
            t0,
        );
        assert!(core.faults().is_present(scope, code), "{code}");
        assert_eq!(code.severity(scope).0, level);
        assert_eq!(core.leds().app, AppLed::On, "{code}: no visual signal");
        let a = core.handle(
            Event::MeterStatus {
                cp: cp(1),
                error: None,
            },
            t0,
        );
        assert!(
            !core.faults().is_present(scope, code),
            "{code}: reset when next read"
        );
        assert_eq!(sets(&a).get(&94), Some(&Value::Bool(false)), "{code}");
    }
    let mut status = charging(6, 6, 6, 100);
    status.error = Some(ManufacturerError { parts: vec![0x1A] });
    let _ = core.handle(Event::ChargerPolled { cp: cp(1), status }, t0);
    assert!(core.faults().is_present(scope, FaultCode::ChargerError));
    assert_eq!(FaultCode::ChargerError.severity(scope).0, 50);
    assert_eq!(
        core.leds().app,
        AppLed::On,
        "ChargerError: no visual signal"
    );
    let a = core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: charging(6, 6, 6, 100),
        },
        t0,
    );
    assert!(!core.faults().is_present(scope, FaultCode::ChargerError));
    assert_eq!(sets(&a).get(&94), Some(&Value::Bool(false)));
}

/// Table 13: interruption and grid-supporting control work in parallel; interruption is
/// dominant, and when it is cleared during control the point returns to the control state.
#[test]
fn interruption_is_dominant_during_grid_control_and_clearing_it_returns_to_the_control_state() {
    let (mut core, t0) = started(DLM_OFF);
    let write = |core: &mut Core, o: u16, v: Value| {
        core.handle(
            Event::ObjectWritten {
                object: GoNumber(o),
                value: v,
            },
            t0,
        )
    };
    let _ = write(&mut core, 60, Value::Current(amps(20)));
    let a = write(&mut core, 1, Value::Bool(true));
    assert_eq!(
        commands(&a),
        vec![(1, ChargerCommand::SetCurrent(amps(6)))],
        "control: 6 A"
    );
    let a = write(&mut core, 55, Value::Bool(true));
    assert_eq!(
        commands(&a),
        vec![(1, ChargerCommand::SetCurrent(Current::ZERO))],
        "interruption dominates"
    );
    let a = write(&mut core, 55, Value::Bool(false));
    assert_eq!(
        commands(&a),
        vec![(1, ChargerCommand::SetCurrent(amps(6)))],
        "back to the control state"
    );
    let a = write(&mut core, 1, Value::Bool(false));
    assert_eq!(
        commands(&a),
        vec![(1, ChargerCommand::SetCurrent(amps(20)))],
        "previous setpoint after control"
    );
    assert_eq!(core.value(GoNumber(2)), Some(&Value::Bool(false)));
}

#[test]
fn grid_control_with_zero_amps_interrupts() {
    let text = DLM_OFF.replace("grid_control_current = 6", "grid_control_current = 0");
    let (mut core, t0) = started(&text);
    let a = core.handle(
        Event::ObjectWritten {
            object: GoNumber(1),
            value: Value::Bool(true),
        },
        t0,
    );
    assert_eq!(
        commands(&a),
        vec![(1, ChargerCommand::SetCurrent(Current::ZERO))]
    );
}

#[test]
fn a_lost_charging_point_is_told_its_current_again_when_it_returns() {
    let (mut core, t0) = started(DLM_OFF);
    let _ = core.handle(
        Event::ChargerFailed {
            cp: cp(1),
            error: DriverError::NotReachable("down".into()),
        },
        t0,
    );
    let a = core.handle(
        Event::ChargerPolled {
            cp: cp(1),
            status: charging(0, 0, 0, 0),
        },
        t0,
    );
    assert_eq!(
        commands(&a),
        vec![(1, ChargerCommand::SetCurrent(amps(32)))]
    );
}

#[test]
fn clock_anchor_rolls_over_midnight_and_weekday() {
    let anchor = super::super::points::ClockAnchor {
        at: Instant::now(),
        time: TimeOfDay::new(Some(Weekday::Sunday), 23, 59, 30).unwrap(),
    };
    let t = anchor.time_at(anchor.at + Duration::from_secs(45));
    assert_eq!(t, TimeOfDay::new(Some(Weekday::Monday), 0, 0, 15).unwrap());
}
