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

mod points;

/// The DLM in the core (spec ch. 9.1, tables 13, 20, 21, 28 and ch. 11), at injected time.
mod dlm;

mod dlm_limits;

/// For random house loads, vehicles and parameters: once the DLM has reacted to a meter
/// value, the charging load on no phase exceeds what the budget leaves after the house.
mod dlm_property;

/// Conf NoCharger, DLMAssociation and ContactSupport held on objects 8/9 (spec ch. 11.1).
mod serious_faults;
