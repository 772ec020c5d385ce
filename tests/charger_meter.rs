//! A charging point with a retrofit electricity meter, in one charger task: the meter's
//! values replace the charging point's own in every poll, its health reaches the core as
//! `Event::MeterStatus` (EMeterNotReach while it is gone), and the charging point keeps
//! polling while the meter is down.
//!
//! End to end (spec 2.3, 9.3): a configuration with a model without integrated metering
//! (Phoenix Contact EV Charge Control, no meter at the controller) and a retrofit meter passes
//! validation, goes through `tasks::prepare()` and the shell, and the charging point's current,
//! power and energy objects carry the meter's values; without any meter the setpoint is
//! shown as the actual current.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::time::Duration;

use knx_echarge::catalog::{self, Interface};
use knx_echarge::chargers::drivers::{self, DriverSettings, Transport};
use knx_echarge::core::Event;
use knx_echarge::gateway::start::{Chargers, Gateway, Options};
use knx_echarge::gateway::tasks::{AnyMeter, TaskTiming, run_with_meter};
use knx_echarge::meters::MeterError;
use knx_echarge::meters::meter_for;
use knx_echarge::meters::sim::{MeterSim, SimModel as MeterModelSim, SimValues};
use knx_echarge::modbus::TcpModbus;
use knx_echarge::objects::Value;
use knx_echarge::sim::{self, SimHandle, SimModel, Vehicle};
use knx_echarge::units::{ChargePointId, Current, Energy, PerPhase, Power};
use tokio::sync::mpsc;

mod support;
use support::{MeterAt, model_meter};

const TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn retrofit_meter_values_replace_the_charging_points_and_its_faults_reach_the_core() {
    // The charging point: a KEBA simulator with a vehicle drawing on three phases.
    let keba = SimHandle::new(SimModel::KebaP30);
    let server = sim::serve_tcp(keba.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    keba.plug_in(Vehicle::three_phase());
    let unit = catalog::charger_model("keba-p30").unwrap().unit_id;
    let driver = drivers::build(
        "keba-p30",
        Transport::Tcp(TcpModbus::new(server.addr.unwrap(), unit, TIMEOUT)),
        unit,
        DriverSettings::default(),
    )
    .unwrap();
    // The retrofit meter: an EM24 simulator with its own, distinctive currents.
    let em24 = MeterSim::start(Some(MeterModelSim::Em24Ethernet), 1)
        .await
        .unwrap();
    em24.set_values(&SimValues {
        currents: [7.5, 7.25, 7.0],
        powers: [1700.0, 1650.0, 1600.0],
        energies: [1000.0, 1000.0, 1000.0],
    });
    let plan = meter_for(&model_meter(
        "carlo-gavazzi-em24",
        MeterAt::Tcp(em24.addr().unwrap()),
    ))
    .unwrap()
    .unwrap();
    let meter = AnyMeter::Tcp(plan.tcp_reader(TIMEOUT).unwrap());

    let cp = ChargePointId::new(1).unwrap();
    let (events_tx, mut events) = mpsc::channel(64);
    let (_commands, rx) = mpsc::channel(4);
    let timing = TaskTiming {
        poll: Duration::from_millis(50),
        identify_every: Duration::from_secs(600),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
    };
    let task = tokio::spawn(run_with_meter(
        cp,
        driver,
        Some(meter),
        rx,
        events_tx,
        timing,
    ));

    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap()
    };
    // Healthy: meter status fine, polled currents are the meter's.
    let mut seen_polled = false;
    let mut seen_ok = false;
    while !(seen_polled && seen_ok) {
        match next().await {
            Event::MeterStatus { error: None, .. } => seen_ok = true,
            Event::ChargerPolled { status, .. } => {
                assert_eq!(
                    status.currents,
                    Some(PerPhase([7_500, 7_250, 7_000].map(Current::from_milliamps))),
                    "currents come from the meter"
                );
                seen_polled = true;
            }
            Event::MeterStatus { error: Some(e), .. } => panic!("meter fault while healthy: {e}"),
            _ => {}
        }
    }
    // The meter goes away: EMeterNotReach, and the charging point keeps being polled.
    em24.stop();
    let mut fault = None;
    let mut polled_after = 0;
    while fault.is_none() || polled_after < 2 {
        match next().await {
            Event::MeterStatus { error: Some(e), .. } => fault = Some(e),
            Event::ChargerPolled { .. } if fault.is_some() => polled_after += 1,
            _ => {}
        }
    }
    assert!(
        matches!(fault, Some(MeterError::NotReachable(_))),
        "{fault:?}"
    );
    assert_eq!(
        fault.unwrap().fault_code(),
        knx_echarge::faults::FaultCode::EMeterNotReach
    );
    task.abort();
}

fn shell_config(ev_cc: SocketAddr) -> knx_echarge::config::Config {
    let mut c = knx_echarge::config::Config::defaults();
    c.modbus.poll_interval = Duration::from_millis(100);
    c.modbus.response_timeout = TIMEOUT;
    let p = &mut c.charging_points[0];
    p.enabled = true;
    p.model = catalog::charger_model("phoenix-ev-cc");
    p.interface = Interface::Tcp;
    p.ip = std::net::Ipv4Addr::LOCALHOST;
    p.port = ev_cc.port();
    p.unit_id = None;
    p.max_current = Current::from_amps(10);
    c
}

/// Waits until the snapshot's objects satisfy `pred`; returns the objects then (or last seen).
async fn objects_until(
    shell: &knx_echarge::gateway::shell::ShellHandle,
    pred: impl Fn(&std::collections::BTreeMap<knx_echarge::units::GoNumber, Value>) -> bool,
) -> std::collections::BTreeMap<knx_echarge::units::GoNumber, Value> {
    let mut snap = shell.snapshot.clone();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if pred(&snap.borrow_and_update().objects) {
                return;
            }
            let _ = snap.changed().await;
        }
    })
    .await;
    snap.borrow().objects.clone()
}

fn obj(n: u16) -> knx_echarge::units::GoNumber {
    knx_echarge::units::GoNumber(n)
}

async fn ev_cc_without_own_meter() -> (SimHandle, sim::SimServer) {
    let ev_cc = SimHandle::new(SimModel::PhoenixEvCc);
    ev_cc.lock().state.meter_fitted = false;
    let server = sim::serve_tcp(ev_cc.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    ev_cc.plug_in(Vehicle::three_phase());
    (ev_cc, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrofit_meter_end_to_end_from_the_configuration_to_the_objects() {
    let (ev_cc, server) = ev_cc_without_own_meter().await;
    let em24 = MeterSim::start(Some(MeterModelSim::Em24Ethernet), 1)
        .await
        .unwrap();
    em24.set_values(&SimValues {
        currents: [7.5, 7.25, 7.0],
        powers: [1700.0, 1650.0, 1600.0],
        energies: [4000.0, 4000.0, 4000.0],
    });
    let mut config = shell_config(server.addr.unwrap());
    config.charging_points[0].meter =
        model_meter("carlo-gavazzi-em24", MeterAt::Tcp(em24.addr().unwrap()));
    // Spec 2.3: a model without integrated metering takes a retrofit meter.
    let faults = knx_echarge::config::validate::validate(&config);
    assert!(faults.is_empty(), "{faults:?}");
    // The meter adds what the model lacks by itself (energy of the last charge).
    assert!(
        config.charging_points[0]
            .capabilities()
            .contains(&catalog::Capability::EnergySession)
    );

    let gateway = Gateway::start(Options {
        chargers: Chargers::Poll { rs485: None },
        task_timing: Some(shell_timing()),
        ..Options::new(config)
    })
    .await
    .unwrap();
    let shell = &gateway.shell;
    let amps = |ma: i32| Value::Current(Current::from_milliamps(ma));
    let objects = objects_until(shell, |o| {
        o.get(&obj(62)) == Some(&amps(21_750)) && o.contains_key(&obj(75))
    })
    .await;
    assert_eq!(objects.get(&obj(62)), Some(&amps(21_750)), "current sum");
    assert_eq!(objects.get(&obj(63)), Some(&amps(7_500)), "L1");
    assert_eq!(objects.get(&obj(64)), Some(&amps(7_250)), "L2");
    assert_eq!(objects.get(&obj(65)), Some(&amps(7_000)), "L3");
    assert_eq!(
        objects.get(&obj(66)),
        Some(&Value::Power(Power::from_watts(4950))),
        "power sum"
    );
    assert_eq!(
        objects.get(&obj(75)),
        Some(&Value::Energy(Energy::from_watt_hours(12_000))),
        "energy total"
    );
    // The box itself charges at the configured maximum (it measures nothing of it).
    // (the setpoint command may still be on its way under load: wait for it)
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while ev_cc.state().setpoint != Current::from_amps(10) && tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ev_cc.state().charging());
    assert_eq!(ev_cc.state().setpoint, Current::from_amps(10));
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_meter_the_setpoint_is_the_actual_current_end_to_end() {
    let (ev_cc, server) = ev_cc_without_own_meter().await;
    let config = shell_config(server.addr.unwrap());
    assert!(knx_echarge::config::validate::validate(&config).is_empty());
    let gateway = Gateway::start(Options {
        chargers: Chargers::Poll { rs485: None },
        task_timing: Some(shell_timing()),
        ..Options::new(config)
    })
    .await
    .unwrap();
    let shell = &gateway.shell;
    let ten = Value::Current(Current::from_amps(10));
    let objects = objects_until(shell, |o| o.get(&obj(63)) == Some(&ten)).await;
    for n in 63..=65 {
        assert_eq!(objects.get(&obj(n)), Some(&ten), "object {n}");
    }
    assert_eq!(
        objects.get(&obj(62)),
        Some(&Value::Current(Current::from_amps(30)))
    );
    // Power and energy: not measured, not invented.
    assert!(!objects.contains_key(&obj(66)) && !objects.contains_key(&obj(75)));
    // Unplugged: nothing drawn.
    ev_cc.unplug();
    let zero = Value::Current(Current::ZERO);
    let objects = objects_until(shell, |o| o.get(&obj(62)) == Some(&zero)).await;
    assert_eq!(objects.get(&obj(62)), Some(&zero));
    gateway.shutdown().await;
}

fn shell_timing() -> TaskTiming {
    TaskTiming {
        poll: Duration::from_millis(100),
        identify_every: Duration::from_secs(600),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
    }
}
