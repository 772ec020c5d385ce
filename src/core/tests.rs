use super::*;
use crate::config::file;
use crate::faults::FaultCode;

fn config(text: &str) -> Config {
    file::parse(text, "test").unwrap()
}

const ONE_KEBA: &str =
    "[charging_point.1]\nenabled = true\nmodel = \"keba-p30\"\nip = \"10.0.0.1\"\n";

/// The objects set by `actions` (number → value); shared with the other core test modules.
pub(super) fn sets(actions: &[Action]) -> BTreeMap<u16, Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SetObject { object, value } => Some((object.0, value.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn start_publishes_no_fault_for_a_clean_config() {
    let mut core = Core::new(config(ONE_KEBA), true);
    let now = Instant::now();
    let actions = core.handle(Event::Started, now);
    let s = sets(&actions);
    assert_eq!(s.get(&8), Some(&Value::Bool(false)));
    assert_eq!(s.get(&9), Some(&Value::Text("No error".into())));
    assert_eq!(s.get(&95), Some(&Value::Text("No error".into())));
    assert_eq!(s.get(&56), Some(&Value::Bool(false)));
    // Objects of disabled charging points do not exist and get no values.
    assert!(!s.contains_key(&145));
    assert!(actions.contains(&Action::Leds(Leds {
        prog: false,
        app: AppLed::On,
        com: ComLed::Off
    })));
    // Object 1 has the I flag: read at start-up.
    assert!(actions.contains(&Action::ReadObject {
        object: GoNumber(1)
    }));
}

#[test]
fn configuration_faults_are_shown_on_objects_and_led() {
    let text = format!(
        "{ONE_KEBA}[charging_point.2]\nenabled = true\nmodel = \"alfen-eve\"\nip = \"10.0.0.1\"\nunit_id = 255\n"
    );
    let mut core = Core::new(config(&text), true);
    let s = sets(&core.handle(Event::Started, Instant::now()));
    assert_eq!(s.get(&144), Some(&Value::Bool(true)));
    assert_eq!(s.get(&145), Some(&Value::Text("Conf Charger".into())));
    assert_eq!(core.leds().app, AppLed::FiveFlashes);
    assert!(core.faults().is_present(
        Scope::ChargingPoint(ChargePointId::new(2).unwrap()),
        FaultCode::ConfCharger
    ));
    // Table 62 (general error codes): Conf Charger is a general fault too, on 8/9.
    assert_eq!(s.get(&8), Some(&Value::Bool(true)));
    assert_eq!(s.get(&9), Some(&Value::Text("Conf Charger".into())));
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::ConfCharger)
    );
}

#[test]
fn no_charging_point_gives_conf_nocharger_on_object_9() {
    let mut core = Core::new(config(""), true);
    let s = sets(&core.handle(Event::Started, Instant::now()));
    assert_eq!(s.get(&8), Some(&Value::Bool(true)));
    assert_eq!(s.get(&9), Some(&Value::Text("Conf NoCharger".into())));
}

#[test]
fn unconfigured_device_flashes_slowly_and_raises_nothing() {
    let mut core = Core::new(Config::defaults(), false);
    let actions = core.handle(Event::Started, Instant::now());
    assert!(core.config_faults().is_empty());
    assert!(actions.contains(&Action::Leds(Leds {
        prog: false,
        app: AppLed::Unconfigured,
        com: ComLed::Off
    })));
}

fn write(core: &mut Core, object: u16, value: bool) -> Vec<Action> {
    core.handle(
        Event::ObjectWritten {
            object: GoNumber(object),
            value: Value::Bool(value),
        },
        Instant::now(),
    )
}

fn started_one_keba() -> Core {
    let mut core = Core::new(config(ONE_KEBA), true);
    let _ = core.handle(Event::Started, Instant::now());
    core
}

/// Table 28/29: a write to "Interruption" (55) shows on "Interruption – state" (56).
#[test]
fn interruption_write_echoes_into_object_56() {
    let mut core = started_one_keba();
    let a = write(&mut core, 55, true);
    assert_eq!(sets(&a).get(&56), Some(&Value::Bool(true)));
}

/// Table 13/14: a write to "Grid-supporting control" (1) shows on its state object (2).
#[test]
fn grid_control_write_echoes_into_object_2() {
    let mut core = started_one_keba();
    let a = write(&mut core, 1, true);
    assert_eq!(sets(&a).get(&2), Some(&Value::Bool(true)));
}

/// Object 56 is read-only (flags CR-T--): a write from the bus changes nothing.
#[test]
fn writes_to_read_only_objects_are_ignored() {
    let mut core = started_one_keba();
    let _ = write(&mut core, 55, true);
    let a = write(&mut core, 56, false);
    assert!(sets(&a).is_empty(), "{a:?}");
    assert_eq!(core.value(GoNumber(56)), Some(&Value::Bool(true)));
}

/// Charging point 2 is not configured: its objects do not exist and writes to them do
/// nothing.
#[test]
fn writes_to_objects_of_a_disabled_charging_point_are_ignored() {
    let mut core = started_one_keba();
    let a = write(&mut core, 105, true);
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(core.value(GoNumber(106)), None);
}

/// A state object sends only when its value changes.
#[test]
fn writing_the_same_value_again_sends_nothing_new() {
    let mut core = started_one_keba();
    let _ = write(&mut core, 55, true);
    let a = write(&mut core, 55, true);
    assert!(sets(&a).is_empty(), "{a:?}");
}

#[test]
fn programming_mode_and_com_led_follow_events_at_injected_time() {
    let mut core = Core::new(config(ONE_KEBA), true);
    let t0 = Instant::now();
    let _ = core.handle(Event::Started, t0);
    let a = core.handle(Event::ProgrammingButton, t0);
    assert!(matches!(
        a.as_slice(),
        [Action::Leds(Leds { prog: true, .. })]
    ));
    let _ = core.handle(Event::KnxLink(LinkState::Connected), t0);
    assert_eq!(core.leds().com, ComLed::On);
    let _ = core.handle(Event::KnxTraffic, t0);
    assert_eq!(core.leds().com, ComLed::Traffic);
    let wake = core.poll_timeout().unwrap();
    assert_eq!(wake, t0 + TRAFFIC_HOLD);
    let a = core.handle(Event::Tick, wake);
    assert!(matches!(
        a.as_slice(),
        [Action::Leds(Leds {
            com: ComLed::On,
            ..
        })]
    ));
    assert_eq!(core.poll_timeout(), None);
    let _ = core.handle(Event::SetProgrammingMode(false), wake);
    assert!(!core.programming_mode());
}

#[test]
fn same_events_same_actions() {
    let run = || {
        let mut core = Core::new(config(ONE_KEBA), true);
        let t0 = Instant::now();
        let mut all = core.handle(Event::Started, t0);
        all.extend(core.handle(
            Event::ObjectWritten {
                object: GoNumber(55),
                value: Value::Bool(true),
            },
            t0,
        ));
        all.extend(core.handle(Event::KnxTraffic, t0));
        all
    };
    assert_eq!(run(), run());
}

mod points {
    use super::*;
    use crate::chargers::{
        ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState, DriverError,
        ManufacturerError,
    };
    use crate::knx::dpt::{TimeOfDay, Weekday};
    use crate::units::{Current, Energy, PerPhase, Power};
    use std::time::Duration;

    const FIVE: &str = include_str!("../../examples/five-chargers.toml");

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
            // DLM on: the minimum current until load management runs (safe side that charges).
            assert!(
                cmds.contains(&(n, ChargerCommand::SetCurrent(amps(6)))),
                "first current for {n}: {cmds:?}"
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
}

/// The DLM in the core (spec ch. 9.1, tables 13, 20, 21, 28 and ch. 11), at injected time.
mod dlm {
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
        // Values return: normal again.
        let _ = meter(&mut core, t + Duration::from_secs(1), [10, 10, 10]);
        assert!(
            !core
                .faults()
                .is_present(Scope::Device, FaultCode::SmartMeterTOut)
        );
        let _ = core.handle(Event::Tick, t + Duration::from_secs(3));
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
        // Both were switched off at 4 s: each switches on again once the other has had the
        // reaction time (2 s) to stop.
        let _ = core.handle(Event::Tick, t0 + Duration::from_secs(6));
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
        // The one that waits was switched off at 4 s; the other rises once it had time to stop.
        let _ = core.handle(Event::Tick, t0 + Duration::from_secs(6));
        assert_eq!(
            (target(&core, 1), target(&core, 2)),
            (a(8), Current::ZERO),
            "8 A left: one car charges, one waits"
        );
        let later = t0 + Duration::from_secs(901);
        let _ = meter(&mut core, later, [22, 22, 22]);
        let _ = settle(&mut core, later);
        // The newly admitted car starts at its minimum and ramps up on the next update.
        let _ = core.handle(Event::Tick, later + Duration::from_secs(5));
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
        let _ = core.handle(Event::Tick, t + Duration::from_secs(2));
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
        let _ = core.handle(Event::Tick, t + Duration::from_secs(2));
        assert_eq!(
            target(&core, 1),
            a(6),
            "resumes at the minimum once the other had time to make room, then the DLM regulates"
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
        let _ = core.handle(Event::Tick, t + Duration::from_secs(3));
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
        let _ = core.handle(Event::Tick, t0 + Duration::from_secs(6));
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
        let _ = meter(&mut core, t0 + Duration::from_secs(6), [5, 5, 5]);
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
}

mod dlm_limits {
    use super::*;
    use crate::chargers::{ChargerStatus, CpState};
    use crate::units::{Current, PerPhase};
    use std::time::Duration;

    fn a(n: i32) -> Current {
        Current::from_amps(n)
    }

    const SITE: &str = r#"
[dlm]
enabled = true
overcurrent_protection = 63
load_reserve = 3
ramp_up_rate = 32.0
min_switch_time = 0
grid_control_power = 4.2
[dlm.unbalanced_load]
enabled = true
limit = 20
[charging_point.1]
enabled = true
model = "keba-p30"
ip = "10.0.0.1"
phases = 1
max_current = 32
[charging_point.2]
enabled = true
model = "alfen-eve"
ip = "10.0.0.2"
max_current = 32
[group_addresses]
10 = ["0/0/10"]
11 = ["0/0/11"]
12 = ["0/0/12"]
"#;

    fn setup() -> (Core, Instant) {
        let mut core = Core::new(config(SITE), true);
        let t0 = Instant::now();
        let _ = core.handle(Event::Started, t0);
        for (n, draw) in [(1u8, [0, 0, 0]), (2, [0, 0, 0])] {
            let status = ChargerStatus {
                state: Some(CpState::Connected),
                connected: true,
                currents: Some(PerPhase(draw.map(a))),
                ..ChargerStatus::default()
            };
            let _ = core.handle(
                Event::ChargerPolled {
                    cp: ChargePointId::new(n).unwrap(),
                    status,
                },
                t0,
            );
        }
        for o in 10..=12 {
            let _ = core.handle(
                Event::ObjectWritten {
                    object: GoNumber(o),
                    value: Value::Current(a(5)),
                },
                t0,
            );
        }
        let _ = core.handle(Event::Tick, t0 + Duration::from_secs(3));
        (core, t0)
    }

    #[test]
    fn unbalanced_load_between_phases_is_capped_when_enabled() {
        let (core, _) = setup();
        let one = core.target(ChargePointId::new(1).unwrap()).unwrap();
        let three = core.target(ChargePointId::new(2).unwrap()).unwrap();
        // The single-phase car may exceed the three-phase one on L1 by at most 20 A.
        assert!(one <= three + a(20), "{one} vs {three}");
        assert_eq!(three, a(32));
    }

    #[test]
    fn grid_supporting_control_caps_the_total_power_of_all_charging_points() {
        let (mut core, t0) = setup();
        let t = t0 + Duration::from_secs(4);
        let _ = core.handle(
            Event::ObjectWritten {
                object: GoNumber(1),
                value: Value::Bool(true),
            },
            t,
        );
        let _ = core.handle(Event::Tick, t + Duration::from_secs(1));
        let one = core.target(ChargePointId::new(1).unwrap()).unwrap();
        let three = core.target(ChargePointId::new(2).unwrap()).unwrap();
        let watts = (one.milliamps() + 3 * three.milliamps()) * 230 / 1000;
        assert!(watts <= 4_200, "{one} + 3 × {three} = {watts} W");
        // The power cap is the reason for the points it lowered.
        let limits = core.limits();
        let capped = ChargePointId::all()
            .filter(|cp| limits.get(*cp) == Some(crate::dlm::Limit::GridControl))
            .count();
        assert!(capped >= 1, "{limits:?}");
    }

    #[test]
    fn the_unbalance_cap_is_the_reason_for_the_single_phase_car() {
        let (core, _) = setup();
        let one = core.target(ChargePointId::new(1).unwrap()).unwrap();
        assert!(one < a(32), "capped: {one}");
        assert_eq!(
            core.limits().get(ChargePointId::new(1).unwrap()),
            Some(crate::dlm::Limit::Unbalance)
        );
        assert_eq!(
            core.limits().get(ChargePointId::new(2).unwrap()),
            Some(crate::dlm::Limit::OwnMax)
        );
    }
}

/// For random house loads, vehicles and parameters: once the DLM has reacted to a meter
/// value, the charging load on no phase exceeds what the budget leaves after the house.
mod dlm_property {
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
                // After the reaction window (3 s in which polls may refine the estimate)...
                let _ = core.handle(Event::Tick, t + Duration::from_secs(3));
                t += Duration::from_secs(3);
                // ...what the DLM commands must fit next to the house on every phase.
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
                    let room = budget.saturating_sub(house[p.index()]).max(Current::ZERO);
                    prop_assert!(load[p.index()] <= room, "phase {p:?}: charging {} > room {} (house {})\n{text}", load[p.index()], room, house[p.index()]);
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
                    for p in 0..3 {
                        let room = budget.saturating_sub(house[p]).max(Current::ZERO);
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
}
