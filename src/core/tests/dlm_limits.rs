//! Core tests of the DLM limits: unbalanced load and the grid-supporting power cap.

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
