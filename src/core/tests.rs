use super::*;
use crate::config::file;
use crate::faults::FaultCode;

fn config(text: &str) -> Config {
    file::parse(text, "test").unwrap()
}

const ONE_KEBA: &str =
    "[charging_point.1]\nenabled = true\nmodel = \"keba-p30\"\nip = \"10.0.0.1\"\n";

fn sets(actions: &[Action]) -> BTreeMap<u16, Value> {
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

#[test]
fn writes_echo_into_state_objects_and_ignore_what_cannot_be_written() {
    let mut core = Core::new(config(ONE_KEBA), true);
    let now = Instant::now();
    let _ = core.handle(Event::Started, now);
    let a = core.handle(
        Event::ObjectWritten {
            object: GoNumber(55),
            value: Value::Bool(true),
        },
        now,
    );
    assert_eq!(sets(&a).get(&56), Some(&Value::Bool(true)));
    let a = core.handle(
        Event::ObjectWritten {
            object: GoNumber(1),
            value: Value::Bool(true),
        },
        now,
    );
    assert_eq!(sets(&a).get(&2), Some(&Value::Bool(true)));
    // Object 56 is read-only (CR-T--): a write is ignored.
    let a = core.handle(
        Event::ObjectWritten {
            object: GoNumber(56),
            value: Value::Bool(false),
        },
        now,
    );
    assert!(sets(&a).is_empty());
    // Charging point 2 does not exist: ignored.
    let a = core.handle(
        Event::ObjectWritten {
            object: GoNumber(105),
            value: Value::Bool(true),
        },
        now,
    );
    assert!(sets(&a).is_empty());
    // Writing the same value again sends nothing new.
    let a = core.handle(
        Event::ObjectWritten {
            object: GoNumber(55),
            value: Value::Bool(true),
        },
        now,
    );
    assert!(sets(&a).is_empty());
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
