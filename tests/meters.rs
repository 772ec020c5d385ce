//! Retrofit meters over real Modbus TCP on loopback: each pre-configured model's reader
//! (built from the configuration by `meter_for`) against its simulator, the manual
//! configuration against a simulator serving a user-defined layout, and the faults: meter
//! unreachable or silent → EMeterNotReach, exception replies → EMeter Comm, the meter's fault
//! register set → EMeter Error, and recovery from each.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unnecessary_wraps
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use knx_echarge::catalog::Interface;
use knx_echarge::catalog::meter_model;
use knx_echarge::config::{ManualMeter, MeterDataType, RetrofitKind, RetrofitMeter};
use knx_echarge::faults::FaultCode;
use knx_echarge::meters::models::{Em24Variant, em24};
use knx_echarge::meters::sim::{MeterSim, SimModel, SimValues};
use knx_echarge::meters::{MeterError, MeterReader, MeterReading, Table, meter_for};
use knx_echarge::modbus::TcpModbus;
use knx_echarge::units::{Current, Energy, PerPhase, Power};

mod support;

const TIMEOUT: Duration = Duration::from_millis(300);

fn config(kind: RetrofitKind, model: Option<&str>, addr: SocketAddr, unit: u8) -> RetrofitMeter {
    let SocketAddr::V4(v4) = addr else {
        panic!("loopback v4 expected")
    };
    RetrofitMeter {
        kind,
        model: model.map(|id| meter_model(id).unwrap()),
        interface: Interface::Tcp,
        unit_id: unit,
        ip: *v4.ip(),
        port: v4.port(),
        rs485_address: 0,
        manual: support::default_meter().manual,
    }
}

fn values() -> SimValues {
    SimValues {
        currents: [16.0, 15.5, 0.25],
        powers: [3680.0, 3565.0, -57.5],
        energies: [12_000.0, 11_000.0, 500.0],
    }
}

fn currents(ma: [i32; 3]) -> Option<PerPhase<Current>> {
    Some(PerPhase(ma.map(Current::from_milliamps)))
}

fn powers(mw: [i64; 3]) -> Option<PerPhase<Power>> {
    Some(PerPhase(mw.map(Power::from_milliwatts)))
}

async fn model_reader(id: &str, model: SimModel, unit: u8) -> (MeterSim, MeterReader<TcpModbus>) {
    let sim = MeterSim::start(Some(model), unit).await.unwrap();
    sim.set_values(&values());
    let plan = meter_for(&config(
        RetrofitKind::Model,
        Some(id),
        sim.addr().unwrap(),
        unit,
    ))
    .unwrap()
    .unwrap();
    let reader = plan.tcp_reader(TIMEOUT).unwrap();
    (sim, reader)
}

fn assert_common(r: &MeterReading) {
    assert_eq!(r.currents, currents([16_000, 15_500, 250]));
    assert_eq!(r.power_phases, powers([3_680_000, 3_565_000, -57_500]));
    assert_eq!(
        r.power,
        Some(Power::from_watts(7_187) + Power::from_milliwatts(500))
    );
}

#[tokio::test]
async fn em24_ethernet_over_tcp() {
    let (sim, mut reader) = model_reader("carlo-gavazzi-em24", SimModel::Em24Ethernet, 1).await;
    let r = reader.read().await.unwrap();
    assert_common(&r);
    assert_eq!(r.energy_total, Some(Energy::from_watt_hours(23_500)));
    assert_eq!(r.energy_phases, None);
    assert_eq!(sim.requests(), 1, "one block read");
}

#[tokio::test]
async fn em24_din_over_tcp() {
    // The DIN variant is chosen for RS485; here its map is read over TCP (a serial gateway).
    let sim = MeterSim::start(Some(SimModel::Em24Din), 3).await.unwrap();
    sim.set_values(&values());
    let mut reader = MeterReader::new(
        em24(Em24Variant::Din),
        TcpModbus::new(sim.addr().unwrap(), 3, TIMEOUT),
    );
    let r = reader.read().await.unwrap();
    assert_common(&r);
    assert_eq!(r.energy_total, Some(Energy::from_watt_hours(23_500)));
}

#[tokio::test]
async fn pac2200_over_tcp() {
    let (sim, mut reader) = model_reader("siemens-pac2200", SimModel::Pac2200, 1).await;
    let r = reader.read().await.unwrap();
    assert_common(&r);
    assert_eq!(r.energy_total, Some(Energy::from_watt_hours(23_500)));
    assert_eq!(sim.requests(), 2);
}

#[tokio::test]
async fn m4m_over_tcp() {
    let (sim, mut reader) = model_reader("abb-m4m", SimModel::M4m, 1).await;
    let r = reader.read().await.unwrap();
    assert_common(&r);
    assert_eq!(r.energy_total, Some(Energy::from_watt_hours(23_500)));
    assert_eq!(
        r.energy_phases,
        Some(PerPhase([12_000, 11_000, 500].map(Energy::from_watt_hours)))
    );
    assert_eq!(sim.requests(), 3);
    // The invalid marker of a current register → EMeter Comm.
    sim.set_registers(Table::Holding, 0x5B0C, &[0xFFFF, 0xFFFF]);
    let e = reader.read().await.unwrap_err();
    assert_eq!(e.fault_code(), FaultCode::EMeterComm, "{e}");
}

#[tokio::test]
async fn sdm630_over_tcp() {
    let (sim, mut reader) = model_reader("eastron-sdm630", SimModel::Sdm630, 2).await;
    let r = reader.read().await.unwrap();
    assert_common(&r);
    assert_eq!(r.energy_total, Some(Energy::from_watt_hours(23_500)));
    assert_eq!(
        r.energy_phases,
        Some(PerPhase([12_000, 11_000, 500].map(Energy::from_watt_hours)))
    );
    assert_eq!(sim.requests(), 2);
    // Values follow the simulator.
    sim.set_values(&SimValues {
        currents: [6.0, 0.0, 0.0],
        ..values()
    });
    assert_eq!(
        reader.read().await.unwrap().currents,
        currents([6_000, 0, 0])
    );
}

/// A meter with a layout of its own: FC 0x04, 2 registers, unsigned, low word first, currents
/// in mA at 1000.., powers in W at 1010.. (L3 not wired), energy per phase in 0.1 Wh at
/// 2000.. and a fault register at 3000.
fn manual_layout() -> ManualMeter {
    ManualMeter {
        function_code: 4,
        register_count: 2,
        data_type: MeterDataType::Unsigned,
        high_word_first: false,
        current_scale: -3,
        power_scale: 0,
        energy_scale: -1,
        current: [Some(1000), Some(1002), Some(1004)],
        power: [Some(1010), Some(1012), None],
        energy: [Some(2000), Some(2002), Some(2004)],
        energy_total: None,
        fault_register: Some(3000),
    }
}

#[tokio::test]
async fn manual_configuration_over_tcp_and_meter_fault() {
    let sim = MeterSim::start(None, 9).await.unwrap();
    // Low word first.
    sim.set_registers(Table::Input, 1000, &[16_000, 0, 15_500, 0, 0x86A0, 0x0001]); // 100 A
    sim.set_registers(Table::Input, 1010, &[3680, 0, 0xC5C0, 0x0001]); // 3680 W, 116 160 W
    sim.set_registers(Table::Input, 2000, &[10, 0, 0, 1, 5, 0]); // 1 Wh, 6553.6 Wh, 0.5 Wh
    sim.set_registers(Table::Input, 3000, &[0, 0]);
    let mut cfg = config(RetrofitKind::Manual, None, sim.addr().unwrap(), 9);
    cfg.manual = manual_layout();
    let plan = meter_for(&cfg).unwrap().unwrap();
    let mut reader = plan.tcp_reader(TIMEOUT).unwrap();

    let r = reader.read().await.unwrap();
    assert_eq!(r.currents, currents([16_000, 15_500, 100_000]));
    assert_eq!(r.power_phases, powers([3_680_000, 116_160_000, 0]));
    assert_eq!(r.power, Some(Power::from_watts(119_840)));
    let e = [1_000, 6_553_600, 500].map(Energy::from_milliwatt_hours);
    assert_eq!(r.energy_phases, Some(PerPhase(e)));
    assert_eq!(r.energy_total, Some(e.into_iter().sum()));
    assert_eq!(r.fault, Some(0));
    // 1000..1005, 1010..1013, 2000..2005, 3000..3001: four requests, no gap bridged.
    assert_eq!(reader.blocks().len(), 4);
    assert_eq!(sim.requests(), 4);

    // The meter's own fault register → EMeter Error, and back.
    sim.set_registers(Table::Input, 3000, &[0x0004, 0x0000]);
    let e = reader.read().await.unwrap_err();
    assert_eq!(e, MeterError::Fault(4));
    assert_eq!(e.fault_code(), FaultCode::EMeterError);
    sim.set_registers(Table::Input, 3000, &[0, 0]);
    assert!(reader.read().await.is_ok());
}

#[tokio::test]
async fn manual_configuration_reading_unserved_registers_is_comm() {
    let sim = MeterSim::start(None, 1).await.unwrap();
    sim.set_registers(Table::Input, 1000, &[1, 0]);
    let mut cfg = config(RetrofitKind::Manual, None, sim.addr().unwrap(), 1);
    cfg.manual = manual_layout(); // 1002.. are not served: exception 0x02
    let mut reader = meter_for(&cfg)
        .unwrap()
        .unwrap()
        .tcp_reader(TIMEOUT)
        .unwrap();
    let e = reader.read().await.unwrap_err();
    assert!(matches!(e, MeterError::Comm(_)), "{e}");
    assert_eq!(e.fault_code(), FaultCode::EMeterComm);
    // FC 0x03 on a meter that serves the layout as input registers: exception as well.
    cfg.manual.function_code = 3;
    let mut reader = meter_for(&cfg)
        .unwrap()
        .unwrap()
        .tcp_reader(TIMEOUT)
        .unwrap();
    assert_eq!(
        reader.read().await.unwrap_err().fault_code(),
        FaultCode::EMeterComm
    );
}

#[tokio::test]
async fn exception_replies_are_comm_and_recover() {
    let (sim, mut reader) = model_reader("siemens-pac2200", SimModel::Pac2200, 1).await;
    assert!(reader.read().await.is_ok());
    for code in [0x02, 0x04, 0x06] {
        sim.set_exception(Some(code));
        let e = reader.read().await.unwrap_err();
        assert_eq!(e.fault_code(), FaultCode::EMeterComm, "{code}: {e}");
    }
    sim.set_exception(None);
    assert_common(&reader.read().await.unwrap());
}

#[tokio::test]
async fn wrong_unit_id_is_comm() {
    let sim = MeterSim::start(Some(SimModel::Sdm630), 5).await.unwrap();
    let plan = meter_for(&config(
        RetrofitKind::Model,
        Some("eastron-sdm630"),
        sim.addr().unwrap(),
        6,
    ))
    .unwrap()
    .unwrap();
    let e = plan.tcp_reader(TIMEOUT).unwrap().read().await.unwrap_err();
    assert_eq!(e.fault_code(), FaultCode::EMeterComm, "{e}");
}

#[tokio::test]
async fn unreachable_meter_is_not_reach() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let plan = meter_for(&config(RetrofitKind::Model, Some("abb-m4m"), addr, 1))
        .unwrap()
        .unwrap();
    let mut reader = plan.tcp_reader(TIMEOUT).unwrap();
    let e = reader.read().await.unwrap_err();
    assert!(matches!(e, MeterError::NotReachable(_)), "{e}");
    assert_eq!(e.fault_code(), FaultCode::EMeterNotReach);

    // The meter comes up at that address: the next read recovers.
    let sim = MeterSim::start_at(addr, Some(SimModel::M4m), 1)
        .await
        .unwrap();
    sim.set_values(&values());
    assert_common(&reader.read().await.unwrap());

    // It goes away (connections closed) and comes back.
    sim.stop();
    drop(sim);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = reader.read().await.unwrap_err();
    assert_eq!(e.fault_code(), FaultCode::EMeterNotReach, "{e}");
    let sim = MeterSim::start_at(addr, Some(SimModel::M4m), 1)
        .await
        .unwrap();
    sim.set_values(&values());
    assert_common(&reader.read().await.unwrap());
}

#[tokio::test]
async fn silent_meter_times_out_as_not_reach_and_recovers() {
    let (sim, mut reader) = model_reader("carlo-gavazzi-em24", SimModel::Em24Ethernet, 1).await;
    assert!(reader.read().await.is_ok());
    sim.set_silent(true);
    let t = std::time::Instant::now();
    let e = reader.read().await.unwrap_err();
    assert_eq!(e.fault_code(), FaultCode::EMeterNotReach, "{e}");
    assert!(t.elapsed() < TIMEOUT * 3, "the timeout bounds the read");
    sim.set_silent(false);
    assert_common(&reader.read().await.unwrap());
}
