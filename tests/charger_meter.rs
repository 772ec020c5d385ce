//! A charging point with a retrofit electricity meter, in one charger task: the meter's
//! values replace the charging point's own in every poll, its health reaches the core as
//! `Event::MeterStatus` (EMeterNotReach while it is gone), and the charging point keeps
//! polling while the meter is down.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::time::Duration;

use knx_echarge::chargers::drivers::{self, DriverSettings, Transport};
use knx_echarge::chargers::modbus::TcpModbus;
use knx_echarge::chargers::registry::{self, Interface, meter_model};
use knx_echarge::chargers::task::{AnyMeter, TaskTiming, run_with_meter};
use knx_echarge::config::{ManualMeter, MeterDataType, RetrofitKind, RetrofitMeter};
use knx_echarge::core::Event;
use knx_echarge::meters::MeterError;
use knx_echarge::meters::meter_for;
use knx_echarge::meters::sim::{MeterSim, SimModel as MeterModelSim, SimValues};
use knx_echarge::sim::{self, SimHandle, SimModel, Vehicle};
use knx_echarge::units::{ChargePointId, Current, PerPhase};
use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_millis(300);

fn meter_config(addr: SocketAddr) -> RetrofitMeter {
    let SocketAddr::V4(v4) = addr else {
        panic!("v4")
    };
    RetrofitMeter {
        kind: RetrofitKind::Model,
        model: meter_model("carlo-gavazzi-em24"),
        interface: Interface::Tcp,
        unit_id: 1,
        ip: *v4.ip(),
        port: v4.port(),
        rs485_address: 0,
        manual: ManualMeter {
            function_code: 3,
            register_count: 2,
            data_type: MeterDataType::Float,
            high_word_first: true,
            current_scale: 0,
            power_scale: 0,
            energy_scale: 0,
            current: [None; 3],
            power: [None; 3],
            energy: [None; 3],
            energy_total: None,
            fault_register: None,
        },
    }
}

#[tokio::test]
async fn retrofit_meter_values_replace_the_charging_points_and_its_faults_reach_the_core() {
    // The charging point: a KEBA simulator with a vehicle drawing on three phases.
    let keba = SimHandle::new(SimModel::KebaP30);
    let server = sim::serve_tcp(keba.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    keba.plug_in(Vehicle::three_phase());
    let unit = registry::charger_model("keba-p30").unwrap().unit_id;
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
    let plan = meter_for(&meter_config(em24.addr().unwrap()))
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
