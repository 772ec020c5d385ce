//! The device-level serious faults (severity 120–130, spec ch. 11.1, table 62): each takes
//! its function out of operation, is shown on objects 8/9 and the APP LED (five flashes), and
//! stays there until a new configuration; a later, lower fault (the spec's example:
//! SmartMeterTOut, 90) does not overwrite it on object 9.

use super::*;
use crate::chargers::{ChargerStatus, CpState};
use crate::faults::FaultCode;
use crate::units::{Current, PerPhase};
use std::time::Duration;

/// DLM on with a 3-phase current meter every 10 s (tolerance 5 s), two Keba boxes.
const DLM: &str = r#"
[dlm]
enabled = true
overcurrent_protection = 32
load_reserve = 2
ramp_up_rate = 32.0
min_switch_time = 0
[dlm.meter]
connection = "3-phase"
measurement = "current"
[dlm.monitoring]
mode = "values"
interval = 10
tolerance = 5
"#;

const POINTS: &str = r#"
[charging_point.1]
enabled = true
model = "keba-p30"
ip = "10.0.0.1"
max_current = 16
[charging_point.2]
enabled = true
model = "keba-p30"
ip = "10.0.0.2"
max_current = 16
"#;

/// The same boxes with no IP address: nothing is completely configured.
const POINTS_WITHOUT_ADDRESS: &str = r#"
[charging_point.1]
enabled = true
model = "keba-p30"
max_current = 16
[charging_point.2]
enabled = true
model = "keba-p30"
max_current = 16
"#;

const LINKS: &str = r#"
[group_addresses]
10 = ["0/0/10"]
11 = ["0/0/11"]
12 = ["0/0/12"]
"#;

/// Object 10 (L1 current) is not linked.
const LINKS_WITHOUT_L1: &str = r#"
[group_addresses]
11 = ["0/0/11"]
12 = ["0/0/12"]
"#;

fn cp(n: u8) -> ChargePointId {
    ChargePointId::new(n).unwrap()
}

fn a(n: i32) -> Current {
    Current::from_amps(n)
}

fn started(text: &str, t0: Instant) -> (Core, Vec<Action>) {
    let mut core = Core::new(config(text), true);
    let out = core.handle(Event::Started, t0);
    (core, out)
}

fn charging(core: &mut Core, n: u8, t: Instant) -> Vec<Action> {
    let status = ChargerStatus {
        state: Some(CpState::Charging),
        connected: true,
        charging: true,
        currents: Some(PerPhase::splat(a(6))),
        ..ChargerStatus::default()
    };
    core.handle(Event::ChargerPolled { cp: cp(n), status }, t)
}

fn meter(core: &mut Core, t: Instant, amps: i32) -> Vec<Action> {
    let mut out = Vec::new();
    for object in [10u16, 11, 12] {
        out.extend(core.handle(
            Event::ObjectWritten {
                object: GoNumber(object),
                value: Value::Current(a(amps)),
            },
            t,
        ));
    }
    out
}

fn reconfigure(core: &mut Core, text: &str, t: Instant) -> Vec<Action> {
    core.handle(
        Event::Reconfigure {
            config: Box::new(config(text)),
            configured: true,
        },
        t,
    )
}

fn last_fault(core: &Core) -> Option<&Value> {
    core.value(GoNumber(9))
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// Whether `out` commands charging point `n` in any way.
fn commands(out: &[Action], n: u8) -> bool {
    out.iter()
        .any(|a| matches!(a, Action::Charger { cp: c, .. } if *c == cp(n)))
}

/// Conf NoCharger (120): no charging point takes part (each incomplete one carries Conf
/// Charger and is out of operation); SmartMeterTOut (90) later does not overwrite it on
/// object 9; a download with complete charging points ends it.
#[test]
fn conf_nocharger_is_held_against_smartmetertout_until_a_download() {
    let t0 = Instant::now();
    let (mut core, out) = started(&format!("{DLM}{POINTS_WITHOUT_ADDRESS}{LINKS}"), t0);
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::ConfNoCharger)
    );
    assert_eq!(sets(&out).get(&9), Some(&text("Conf NoCharger")));
    assert!(!commands(&out, 1) && !commands(&out, 2), "{out:?}");
    assert_eq!(core.leds().app, AppLed::FiveFlashes);
    // What a charger task would report is not used: the points are out of operation.
    let polled = charging(&mut core, 1, t0);
    assert!(!commands(&polled, 1), "{polled:?}");

    // The smart meter falls silent: SmartMeterTOut is present, object 9 keeps Conf NoCharger.
    let _ = meter(&mut core, t0, 10);
    let t = t0 + Duration::from_secs(16);
    let _ = core.handle(Event::Tick, t);
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::SmartMeterTOut)
    );
    assert_eq!(last_fault(&core), Some(&text("Conf NoCharger")));
    assert_eq!(core.value(GoNumber(8)), Some(&Value::Bool(true)));
    assert_eq!(core.leds().app, AppLed::FiveFlashes);
    // A restart of the meter's values or more time changes nothing either.
    let _ = meter(&mut core, t + Duration::from_secs(1), 10);
    let _ = core.handle(Event::Tick, t + Duration::from_secs(600));
    assert_eq!(last_fault(&core), Some(&text("Conf NoCharger")));
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::ConfNoCharger)
    );

    // A new download with complete charging points: the fault is gone, they operate.
    let t = t + Duration::from_secs(601);
    let out = reconfigure(&mut core, &format!("{DLM}{POINTS}{LINKS}"), t);
    assert!(
        !core
            .faults()
            .is_present(Scope::Device, FaultCode::ConfNoCharger)
    );
    assert_eq!(core.value(GoNumber(8)), Some(&Value::Bool(false)));
    assert!(commands(&out, 1) && commands(&out, 2), "{out:?}");
    assert_ne!(core.leds().app, AppLed::FiveFlashes);
}

/// DLMAssociation (120): the DLM is out of operation (it does not regulate on the
/// measurement it cannot have: every point at its minimum, docs/dlm.md), held on object 9
/// against the SmartMeterTOut that the missing values then give, until a download links the
/// objects.
#[test]
fn dlm_association_is_held_against_smartmetertout_until_a_download() {
    let t0 = Instant::now();
    let (mut core, out) = started(&format!("{DLM}{POINTS}{LINKS_WITHOUT_L1}"), t0);
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::DlmAssociation)
    );
    assert_eq!(sets(&out).get(&9), Some(&text("DLMAssociation")));
    assert_eq!(core.leds().app, AppLed::FiveFlashes);
    let _ = charging(&mut core, 1, t0);
    let _ = charging(&mut core, 2, t0);
    // Values on 11 and 12 (and even on the unlinked 10) do not put the DLM back to work.
    let _ = meter(&mut core, t0, 0);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(4));
    assert_eq!(core.target(cp(1)), Some(a(6)));
    assert_eq!(core.target(cp(2)), Some(a(6)));

    let t = t0 + Duration::from_secs(30);
    let _ = core.handle(Event::Tick, t);
    let lower: Vec<FaultCode> = [
        FaultCode::SmartMeterTOut,
        FaultCode::OverCurrent,
        FaultCode::DlmInvCurrent,
    ]
    .into_iter()
    .filter(|c| core.faults().is_present(Scope::Device, *c))
    .collect();
    assert!(!lower.is_empty(), "the silent meter gives a lower fault");
    assert_eq!(last_fault(&core), Some(&text("DLMAssociation")));
    assert_eq!(core.leds().app, AppLed::FiveFlashes);
    let _ = core.handle(Event::Tick, t + Duration::from_secs(600));
    assert_eq!(last_fault(&core), Some(&text("DLMAssociation")));
    assert_eq!(core.target(cp(1)), Some(a(6)));

    // The download links object 10: the DLM regulates again on the measurement.
    let t = t + Duration::from_secs(601);
    let _ = reconfigure(&mut core, &format!("{DLM}{POINTS}{LINKS}"), t);
    assert!(
        !core
            .faults()
            .is_present(Scope::Device, FaultCode::DlmAssociation)
    );
    let _ = charging(&mut core, 1, t);
    let _ = charging(&mut core, 2, t);
    let _ = meter(&mut core, t, 0);
    let _ = core.handle(Event::Tick, t + Duration::from_secs(4));
    assert!(
        core.target(cp(1)).is_some_and(|c| c > a(6)),
        "{:?}",
        core.target(cp(1))
    );
    assert_ne!(core.leds().app, AppLed::FiveFlashes);
}

/// ContactSupport (130, a part of the board missing or refusing): shown on object 9 above
/// everything later — SmartMeterTOut, and the Conf faults of a download (120). A download
/// does not end it: the board part is still missing (the gateway carries on without it);
/// only a restart that finds the board whole does.
#[test]
fn contact_support_is_held_against_later_faults_and_downloads() {
    let t0 = Instant::now();
    let (mut core, _) = started(&format!("{DLM}{POINTS}{LINKS}"), t0);
    let out = core.handle(Event::BoardFault("the RS485 port does not open".into()), t0);
    assert_eq!(sets(&out).get(&9), Some(&text("ContactSupport")));
    assert_eq!(core.leds().app, AppLed::FiveFlashes);
    let _ = meter(&mut core, t0, 10);
    let _ = core.handle(Event::Tick, t0 + Duration::from_secs(16));
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::SmartMeterTOut)
    );
    assert_eq!(last_fault(&core), Some(&text("ContactSupport")));

    // A download with a configuration fault (Conf NoCharger, 120) does not overwrite it.
    let t = t0 + Duration::from_secs(20);
    let _ = reconfigure(
        &mut core,
        &format!("{DLM}{POINTS_WITHOUT_ADDRESS}{LINKS}"),
        t,
    );
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::ConfNoCharger)
    );
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::ContactSupport)
    );
    assert_eq!(last_fault(&core), Some(&text("ContactSupport")));
    // A clean download neither.
    let _ = reconfigure(&mut core, &format!("{DLM}{POINTS}{LINKS}"), t);
    assert!(
        core.faults()
            .is_present(Scope::Device, FaultCode::ContactSupport)
    );
    assert_eq!(last_fault(&core), Some(&text("ContactSupport")));
    assert_eq!(core.value(GoNumber(8)), Some(&Value::Bool(true)));
    assert_eq!(core.leds().app, AppLed::FiveFlashes);
    // The charging points still operate: only the board part is out of operation.
    let _ = charging(&mut core, 1, t);
    assert!(core.target(cp(1)).is_some());
}
