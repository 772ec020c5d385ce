//! DLM decision-time benchmark (a bench binary that prints numbers; `cargo bench --bench dlm`).
//!
//! Five charging points (three 3-phase, two 1-phase on rotated phases), every one with a
//! vehicle drawing current. Each measured call is `Core::handle` for a smart-meter value on
//! object 10 (L1): a full DLM cycle (meter supervision, other load, allocation, ramp,
//! setpoint changes). Before each measured call (untimed) every vehicle is polled drawing
//! what it was last told and the meter sends L2 and L3 (every phase object is supervised on
//! its own: without them the DLM would fall into emergency mode after 15 s and the bench
//! would time that instead), and the L1 meter value alternates between a light and a heavy
//! house load, so the allocation really changes every cycle. Time
//! inside the core is injected (1 s per cycle); the wall-clock time of each call is measured
//! with `Instant::now` around it. Prints the median, p99 and maximum over the cycles.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use knx_echarge::chargers::{ChargerCommand, ChargerStatus, CpState};
use knx_echarge::config::file;
use knx_echarge::core::{Action, Core, Event};
use knx_echarge::objects::Value;
use knx_echarge::units::{ChargePointId, Current, GoNumber, PerPhase};

const CYCLES: usize = 20_000;
const WARM_UP: usize = 1_000;

const CONFIG: &str = r#"
[dlm]
enabled = true
overcurrent_protection = 63
load_reserve = 3
ramp_up_rate = 32.0
min_switch_time = 0
allocation = "per-phase"
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
model = "keba-p30"
ip = "10.0.0.2"
phase_rotation = "L2-L3-L1"
max_current = 16
[charging_point.3]
enabled = true
model = "keba-p30"
ip = "10.0.0.3"
phase_rotation = "L3-L1-L2"
max_current = 32
[charging_point.4]
enabled = true
model = "keba-p30"
ip = "10.0.0.4"
phases = 1
phase_rotation = "L2-L3-L1"
max_current = 16
[charging_point.5]
enabled = true
model = "keba-p30"
ip = "10.0.0.5"
phases = 1
phase_rotation = "L3-L1-L2"
max_current = 16
[group_addresses]
10 = ["0/0/10"]
11 = ["0/0/11"]
12 = ["0/0/12"]
13 = ["0/0/13"]
"#;

fn meter(object: u16, amps: i32) -> Event {
    Event::ObjectWritten {
        object: GoNumber(object),
        value: Value::Current(Current::from_amps(amps)),
    }
}

fn poll(core: &mut Core, n: u8, amps: i32, now: Instant) -> Vec<Action> {
    let draw = if n <= 3 {
        [amps, amps, amps]
    } else {
        [amps, 0, 0]
    };
    let status = ChargerStatus {
        state: Some(CpState::Charging),
        connected: true,
        charging: true,
        currents: Some(PerPhase(draw.map(Current::from_amps))),
        ..ChargerStatus::default()
    };
    let cp = ChargePointId::new(n).unwrap();
    core.handle(Event::ChargerPolled { cp, status }, now)
}

fn main() {
    let config = file::parse(CONFIG, "bench").unwrap();
    let mut core = Core::new(config, true);
    let t0 = Instant::now();
    let _ = core.handle(Event::Started, t0);
    let mut told = [10i32; 5];
    for n in 1..=5u8 {
        let _ = poll(&mut core, n, 10, t0);
    }
    for o in [10, 11, 12] {
        let _ = core.handle(meter(o, 30), t0);
    }
    let mut times: Vec<Duration> = Vec::with_capacity(CYCLES);
    let mut setpoint_changes = 0usize;
    for i in 0..WARM_UP + CYCLES {
        let now = t0 + Duration::from_secs(1 + i as u64);
        for n in 1..=5u8 {
            let _ = poll(&mut core, n, told[usize::from(n) - 1], now);
        }
        for o in [11, 12] {
            let _ = core.handle(meter(o, 30), now);
        }
        // L1 carries the house and the three 3-phase points (the 1-phase ones are on L2, L3).
        let house = if i % 2 == 0 { 30 } else { 10 };
        let amps = house + told[0] + told[1] + told[2];
        let event = meter(10, amps);
        let start = Instant::now();
        let actions = core.handle(black_box(event), now);
        let elapsed = start.elapsed();
        for a in &actions {
            if let Action::Charger {
                cp,
                command: ChargerCommand::SetCurrent(c),
            } = a
            {
                told[cp.index()] = c.whole_amps_floor();
            }
        }
        if i >= WARM_UP {
            times.push(elapsed);
            setpoint_changes += actions
                .iter()
                .filter(|a| matches!(a, Action::Charger { .. }))
                .count();
        }
        black_box(actions);
    }
    times.sort();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let cycle = core.dlm_cycle().unwrap();
    assert!(
        !cycle.emergency && !cycle.high_power,
        "the bench must time the normal allocation, not emergency mode: {cycle:?}"
    );
    println!("DLM decision time, five charging points, {CYCLES} meter-triggered cycles:");
    println!("  median {:>8.2} µs", pick(0.5).as_secs_f64() * 1e6);
    println!("  p99    {:>8.2} µs", pick(0.99).as_secs_f64() * 1e6);
    println!("  max    {:>8.2} µs", pick(1.0).as_secs_f64() * 1e6);
    println!(
        "  setpoint commands per cycle {:.2} (the allocation changes every cycle); last available per phase {:?} A",
        setpoint_changes as f64 / CYCLES as f64,
        cycle.available.0.map(Current::as_amps_f64)
    );
    println!("  reasons of the last cycle {:?}", core.limits());
}
