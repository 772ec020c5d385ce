//! Retrofit meters on the RS485 line: `MeterReader<LineModbus>` (the reader the charger task
//! builds for a meter with `interface = "rs485"`) against the meter simulators serving Modbus
//! RTU on the far end of a pty pair. Every pre-configured model is read over the line
//! (the Eastron SDM630 is an RS485-only meter); a meter that does not answer (silent, or no
//! device at the configured address) is EMeterNotReach (30) within the response timeout, an
//! exception reply is EMeter Comm (20), and the reader recovers when the meter answers again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use knx_echarge::catalog::Rs485Framing;
use knx_echarge::config::{Parity, Rs485Config};
use knx_echarge::faults::FaultCode;
use knx_echarge::meters::sim::{MeterSim, SimModel, SimValues};
use knx_echarge::meters::{MeterEndpoint, MeterError, MeterReader, MeterReading, meter_for};
use knx_echarge::modbus::line::{Line, LineModbus};
use knx_echarge::sim::pty::PtyPair;
use knx_echarge::units::{Current, Energy, PerPhase, Power};

mod support;
use support::{MeterAt, model_meter};

const TIMEOUT: Duration = Duration::from_millis(300);
const BAUD: u32 = 19200;

fn line_config() -> Rs485Config {
    Rs485Config {
        baud: BAUD,
        data_bits: 8,
        parity: Parity::None,
        stop_bits: 1,
        framing: Rs485Framing::Rtu,
        termination: false,
    }
}

fn values() -> SimValues {
    SimValues {
        currents: [16.0, 15.5, 0.25],
        powers: [3680.0, 3565.0, -57.5],
        energies: [12_000.0, 11_000.0, 500.0],
    }
}

fn assert_values(r: &MeterReading, what: &str) {
    assert_eq!(
        r.currents,
        Some(PerPhase([16_000, 15_500, 250].map(Current::from_milliamps))),
        "{what}"
    );
    assert_eq!(
        r.power_phases,
        Some(PerPhase(
            [3_680_000, 3_565_000, -57_500].map(Power::from_milliwatts)
        )),
        "{what}"
    );
    assert_eq!(
        r.power,
        Some(Power::from_watts(7_187) + Power::from_milliwatts(500)),
        "{what}"
    );
    assert_eq!(
        r.energy_total,
        Some(Energy::from_watt_hours(23_500)),
        "{what}"
    );
}

/// The simulator of `model` at `address` on a fresh pty pair, and the line on the other end
/// with the reader the configuration gives.
fn rig(
    pty: &PtyPair,
    id: &str,
    model: SimModel,
    address: u8,
) -> (MeterSim, Line, MeterReader<LineModbus>) {
    let sim = MeterSim::start_rtu(&pty.b, BAUD, Some(model), address).unwrap();
    sim.set_values(&values());
    let plan = meter_for(&model_meter(id, MeterAt::Rs485(address)))
        .unwrap()
        .unwrap();
    assert_eq!(plan.endpoint, MeterEndpoint::Rs485(address), "{id}");
    assert!(
        plan.tcp_reader(TIMEOUT).is_none(),
        "{id} is not a TCP meter"
    );
    let line = Line::open(&pty.a, &line_config(), TIMEOUT).unwrap();
    let reader = plan.reader(line.device(address));
    (sim, line, reader)
}

#[tokio::test]
async fn sdm630_over_rtu_with_faults_and_recovery() {
    let Some(pty) = support::ptys() else { return };
    let (sim, line, mut reader) = rig(&pty, "eastron-sdm630", SimModel::Sdm630, 7);
    let r = reader.read().await.unwrap();
    assert_values(&r, "sdm630");
    assert_eq!(
        r.energy_phases,
        Some(PerPhase([12_000, 11_000, 500].map(Energy::from_watt_hours)))
    );
    // Two blocks (0x0000.. and 0x0156..), one RTU request each.
    assert_eq!(sim.requests(), 2);
    // The values follow the meter.
    sim.set_values(&SimValues {
        currents: [6.0, 0.0, 0.0],
        ..values()
    });
    assert_eq!(
        reader.read().await.unwrap().currents,
        Some(PerPhase([6_000, 0, 0].map(Current::from_milliamps)))
    );
    sim.set_values(&values());

    // The meter falls silent: EMeterNotReach, bounded by the response timeout.
    sim.set_silent(true);
    let t = Instant::now();
    let e = reader.read().await.unwrap_err();
    assert!(matches!(e, MeterError::NotReachable(_)), "{e}");
    assert_eq!(e.fault_code(), FaultCode::EMeterNotReach);
    assert!(t.elapsed() < TIMEOUT * 3, "took {:?}", t.elapsed());
    sim.set_silent(false);
    assert_values(&reader.read().await.unwrap(), "after silence");

    // No device at the configured address: not reachable either (a meter on RS485 ignores
    // frames for other addresses, so there is no answer at all).
    let requests = sim.requests();
    let mut nobody = meter_for(&model_meter("eastron-sdm630", MeterAt::Rs485(8)))
        .unwrap()
        .unwrap()
        .reader(line.device(8));
    let e = nobody.read().await.unwrap_err();
    assert_eq!(e.fault_code(), FaultCode::EMeterNotReach, "{e}");
    assert_eq!(sim.requests(), requests + 1, "the frame reached the line");

    // Exception replies: EMeter Comm.
    sim.set_exception(Some(2));
    let e = reader.read().await.unwrap_err();
    assert!(matches!(e, MeterError::Comm(_)), "{e}");
    assert_eq!(e.fault_code(), FaultCode::EMeterComm);
    sim.set_exception(None);
    assert_values(&reader.read().await.unwrap(), "after exceptions");
}

#[tokio::test]
async fn every_meter_model_over_rtu() {
    for (id, model, address) in [
        ("carlo-gavazzi-em24", SimModel::Em24Din, 1),
        ("siemens-pac2200", SimModel::Pac2200, 2),
        ("abb-m4m", SimModel::M4m, 3),
        ("eastron-sdm630", SimModel::Sdm630, 4),
    ] {
        let Some(pty) = support::ptys() else { return };
        let (sim, _line, mut reader) = rig(&pty, id, model, address);
        let r = reader.read().await.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_values(&r, id);
        assert_eq!(
            sim.requests(),
            u64::try_from(reader.blocks().len()).unwrap(),
            "{id}: one request per block"
        );
    }
}
