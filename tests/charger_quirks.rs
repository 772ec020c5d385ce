//! The drivers against the simulators' firmware variants: what the real boxes do beyond their
//! register documents (field knowledge from evcc, nymea and the vendors; `docs/chargers.md`
//! names the source of each). Each test fails with a driver that trusts the document alone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unnecessary_wraps,
    missing_docs
)]

use std::time::Duration;

use knx_echarge::catalog;
use knx_echarge::chargers::drivers::{self, AnyDriver, DriverSettings, Transport};
use knx_echarge::chargers::{ChargePoint, ChargerCommand, CommandOutcome, CpState, DriverError};
use knx_echarge::modbus::{Modbus, ModbusError, TcpModbus};
use knx_echarge::sim::{self, SimHandle, SimModel, Variant, Vehicle};
use knx_echarge::units::{Current, Energy, PerPhase};

const TIMEOUT: Duration = Duration::from_millis(300);

async fn pair(model: SimModel, variant: Variant) -> (SimHandle, sim::SimServer, AnyDriver) {
    let handle = SimHandle::with_variant(model, variant);
    let server = sim::serve_tcp(handle.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let unit = catalog::charger_model(model.id()).unwrap().unit_id;
    let t = Transport::Tcp(TcpModbus::new(server.addr.unwrap(), unit, TIMEOUT));
    let d = drivers::build(model.id(), t, unit, DriverSettings::default()).unwrap();
    (handle, server, d)
}

async fn set(d: &mut AnyDriver, amps: i32) {
    assert_eq!(
        d.command(ChargerCommand::SetCurrent(Current::from_amps(amps)))
            .await
            .unwrap(),
        CommandOutcome::Done
    );
}

fn amps(a: [i32; 3]) -> Option<PerPhase<Current>> {
    Some(PerPhase(a.map(Current::from_amps)))
}

#[tokio::test]
async fn alfen_on_one_phase_reads_nan_on_l2_l3_as_zero() {
    let (sim, _s, mut d) = pair(SimModel::AlfenEve, Variant::ALFEN_SINGLE_PHASE).await;
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::single_phase());
    set(&mut d, 16).await;
    let s = d.poll().await.unwrap();
    assert_eq!(s.state, Some(CpState::Charging));
    assert_eq!(s.currents, amps([16, 0, 0]));
}

#[tokio::test]
async fn alfen_state_e_is_no_vehicle_not_an_error() {
    let (_sim, _s, mut d) = pair(SimModel::AlfenEve, Variant::ALFEN_IDLE_E).await;
    d.identify().await.unwrap();
    let s = d.poll().await.unwrap();
    assert_eq!(s.state, Some(CpState::Available), "{s:?}");
    assert!(!s.connected && s.error.is_none());
}

#[tokio::test]
async fn bender_suspended_ev_is_a_car_pausing_itself_not_an_error() {
    let (sim, _s, mut d) = pair(SimModel::BenderCc, Variant::STANDARD).await;
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    assert!(d.poll().await.unwrap().charging);
    // The battery is full: OCPP status 8 (SuspendedEV), vehicle state B.
    sim.lock().state.session_wh = 1e9;
    let s = d.poll().await.unwrap();
    assert_eq!(s.state, Some(CpState::Connected), "{s:?}");
    assert!(s.connected && !s.charging && s.error.is_none());
}

#[tokio::test]
async fn bender_without_a_meter_reports_no_metering_instead_of_failing() {
    let (sim, _s, mut d) = pair(SimModel::BenderCc, Variant::BENDER_NO_METER).await;
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    let s = d.poll().await.unwrap();
    assert_eq!(s.state, Some(CpState::Charging));
    assert_eq!((s.currents, s.power, s.energy_total), (None, None, None));
}

#[tokio::test]
async fn bender_legacy_and_4you_firmware_keep_their_connection() {
    for variant in [Variant::BENDER_LEGACY, Variant::BENDER_4YOU] {
        let (sim, _s, mut d) = pair(SimModel::BenderCc, variant).await;
        d.identify().await.unwrap();
        sim.plug_in(Vehicle::three_phase());
        set(&mut d, 16).await;
        for _ in 0..3 {
            let s = d
                .poll()
                .await
                .unwrap_or_else(|e| panic!("{variant:?}: {e}"));
            assert!(s.charging, "{variant:?}");
            assert_eq!(s.evccid, None, "{variant:?} has no ISO 15118 registers");
            assert!(s.energy_session.is_some(), "{variant:?} session energy");
        }
    }
}

#[tokio::test]
async fn bender_stop_is_safe_with_either_polarity_of_register_124() {
    for variant in [Variant::STANDARD, Variant::BENDER_MENNEKES_522] {
        let (sim, _s, mut d) = pair(SimModel::BenderCc, variant).await;
        d.identify().await.unwrap();
        sim.plug_in(Vehicle::three_phase());
        set(&mut d, 16).await;
        d.command(ChargerCommand::StartStop(false)).await.unwrap();
        let s = d.poll().await.unwrap();
        assert!(!s.charging && !sim.state().charging(), "{variant:?} stop");
        assert_eq!(s.state, Some(CpState::Cancelled), "{variant:?}");
        d.command(ChargerCommand::StartStop(true)).await.unwrap();
        assert!(d.poll().await.unwrap().charging, "{variant:?} start");
        assert!(sim.state().charging(), "{variant:?}");
    }
}

#[tokio::test]
async fn heidelberg_standby_is_disabled_at_start_whatever_the_failsafe() {
    let (sim, _s, mut d) = pair(SimModel::HeidelbergEc, Variant::HEIDELBERG_STANDBY).await;
    d.identify().await.unwrap();
    assert_eq!(sim.state().extra.get(&258), Some(&4), "standby off");
    // A failsafe timeout beyond the 16-bit millisecond register is shortened, not refused.
    let r = d
        .command(ChargerCommand::Failsafe {
            current: Current::from_amps(6),
            timeout: Duration::from_secs(120),
        })
        .await
        .unwrap();
    assert_eq!(r, CommandOutcome::Done);
    assert_eq!(sim.state().failsafe_timeout, Duration::from_millis(65_535));
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let s = d.poll().await.expect("the box must still answer");
    assert_eq!(s.state, Some(CpState::Available));
}

#[tokio::test]
async fn heidelberg_remote_lock_shows_state_f_and_is_lifted_when_it_should_charge() {
    let (sim, _s, mut d) = pair(SimModel::HeidelbergEc, Variant::STANDARD).await;
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    d.command(ChargerCommand::StartStop(false)).await.unwrap();
    let s = d.poll().await.unwrap();
    assert_eq!(s.state, Some(CpState::Cancelled), "locked by us: {s:?}");
    d.command(ChargerCommand::StartStop(true)).await.unwrap();
    assert!(d.poll().await.unwrap().charging);
    // Locked behind our back (state F) while it should charge: the driver unlocks.
    sim.lock().state.extra.insert(259, 0);
    d.poll().await.unwrap();
    assert_eq!(sim.state().extra.get(&259), Some(&1));
    assert!(d.poll().await.unwrap().charging);
}

#[tokio::test]
async fn abb_session_stopped_after_the_car_left_is_available() {
    let (sim, _s, mut d) = pair(SimModel::AbbTerraAc, Variant::STANDARD).await;
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    assert!(d.poll().await.unwrap().charging);
    sim.unplug();
    let s = d.poll().await.unwrap();
    assert_eq!(s.state, Some(CpState::Available), "{s:?}");
    assert!(!s.connected);
}

#[tokio::test]
async fn webasto_restart_carries_the_setpoint_received_while_stopped() {
    let (sim, _s, mut d) = pair(SimModel::WebastoNext, Variant::STANDARD).await;
    // Reads singly: the simulator refuses reads over the gaps of the register list.
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    d.command(ChargerCommand::StartStop(false)).await.unwrap();
    set(&mut d, 10).await;
    d.command(ChargerCommand::StartStop(true)).await.unwrap();
    assert_eq!(sim.state().setpoint, Current::from_amps(10));
    let s = d.poll().await.unwrap();
    assert!(s.charging, "{s:?}");
    assert_eq!(s.currents, amps([10, 10, 10]));
}

#[tokio::test]
async fn vestel_before_3_156_has_no_rfid_and_polls_work() {
    let (sim, _s, mut d) = pair(SimModel::VestelEvc04, Variant::VESTEL_BEFORE_3156).await;
    let id = d.identify().await.unwrap();
    assert_eq!(id.firmware.as_deref(), Some("v3.150.0"));
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    let s = d.poll().await.unwrap();
    assert!(s.charging);
    assert_eq!(s.rfid, None);
}

#[tokio::test]
async fn amtron_compact_leaves_its_error_state_when_the_error_is_gone() {
    // The currents and the power are read apart: the simulator refuses 0x050C–0x0511.
    let (sim, _s, mut d) = pair(SimModel::AmtronCompact, Variant::STANDARD).await;
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    assert!(d.poll().await.unwrap().charging);
    sim.set_faults(|f| f.error_code = 0x22);
    assert_eq!(d.poll().await.unwrap().state, Some(CpState::Error));
    sim.set_faults(|f| f.error_code = 0);
    let s = d.poll().await.unwrap();
    assert_eq!(s.state, Some(CpState::Charging), "{s:?}");
    assert_eq!(
        sim.state().setpoint,
        Current::from_amps(16),
        "setpoint restored"
    );
}

#[tokio::test]
async fn phoenix_on_wallbe_firmware_reads_the_energy_at_2980() {
    let (sim, _s, mut d) = pair(SimModel::PhoenixEvCc, Variant::PHOENIX_WALLBE).await;
    d.identify().await.unwrap();
    let s = d.poll().await.unwrap();
    let want = sim.state().energy_wh();
    assert!(want > 65_535.0);
    let got = s.energy_total.unwrap();
    assert!(
        (got.as_watt_hours_f64() - want).abs() < 2.0,
        "{got:?} vs {want} Wh"
    );
    assert!(got > Energy::from_watt_hours(100_000));
}

#[tokio::test]
async fn a_closed_connection_says_so() {
    let handle = SimHandle::with_variant(SimModel::BenderCc, Variant::BENDER_4YOU);
    let server = sim::serve_tcp(handle, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut m = TcpModbus::new(server.addr.unwrap(), 255, TIMEOUT);
    m.read_holding(100, 2).await.unwrap();
    let e = m.read_holding(741, 6).await.unwrap_err();
    let ModbusError::NotReachable(text) = &e else {
        panic!("{e:?}")
    };
    assert!(text.contains("closed the connection"), "{text}");
    assert!(matches!(DriverError::from(e), DriverError::NotReachable(_)));
    // The next call connects again.
    m.read_holding(100, 2).await.unwrap();
}

/// Every model in every variant: identify, charge, stop, start, error, unplug.
#[tokio::test]
async fn every_variant_of_every_model_charges_stops_and_recovers() {
    for model in SimModel::ALL {
        for &variant in model.variants() {
            let what = format!("{model:?} {variant:?}");
            let (sim, _s, mut d) = pair(model, variant).await;
            d.identify().await.unwrap_or_else(|e| panic!("{what}: {e}"));
            let s = d.poll().await.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(s.state, Some(CpState::Available), "{what}");
            sim.plug_in(Vehicle::three_phase());
            set(&mut d, 10).await;
            let s = d.poll().await.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(s.charging && s.connected, "{what} {s:?}");
            d.command(ChargerCommand::StartStop(false)).await.unwrap();
            let s = d.poll().await.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(!s.charging && !sim.state().charging(), "{what} {s:?}");
            d.command(ChargerCommand::StartStop(true)).await.unwrap();
            assert!(d.poll().await.unwrap().charging, "{what}");
            sim.set_faults(|f| f.error_code = 0x22);
            assert_eq!(
                d.poll().await.unwrap().state,
                Some(CpState::Error),
                "{what}"
            );
            sim.set_faults(|f| f.error_code = 0);
            sim.unplug();
            let s = d.poll().await.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(s.state, Some(CpState::Available), "{what} {s:?}");
        }
    }
}

#[tokio::test]
async fn abl_emh_wakes_up_on_the_repeated_request() {
    let (sim, _s, mut d) = pair(SimModel::AblEmh, Variant::STANDARD).await;
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    assert!(d.poll().await.unwrap().charging);
    // A quiet bus: the box sleeps and misses the first request.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let s = d.poll().await.expect("the repeated read wakes it");
    assert!(s.charging);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    set(&mut d, 10).await;
    assert_eq!(
        sim.state().setpoint,
        Current::from_amps(10),
        "the second write lands"
    );
}

#[tokio::test]
async fn charx_meter_type_65535_means_no_meter() {
    let (sim, _s, mut d) = pair(SimModel::PhoenixCharx, Variant::CHARX_NO_METER_65535).await;
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    // The meter registers hold 0xFFFF (−1 mA): a driver taking 65535 for a meter type
    // reads them and fails every poll with an invalid current.
    let s = d.poll().await.unwrap();
    assert!(s.charging, "{s:?}");
    assert_eq!((s.currents, s.power, s.energy_total), (None, None, None));
}

#[tokio::test]
async fn charx_stops_through_1301_also_when_released_via_ocpp() {
    let (sim, _s, mut d) = pair(SimModel::PhoenixCharx, Variant::CHARX_OCPP_RELEASE).await;
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    assert!(d.poll().await.unwrap().charging);
    // The box ignores the release register 1300 in this mode: a stop written there leaves
    // the car charging.
    d.command(ChargerCommand::StartStop(false)).await.unwrap();
    let s = d.poll().await.unwrap();
    assert!(!s.charging && !sim.state().charging(), "{s:?}");
    assert_eq!(s.state, Some(CpState::Cancelled));
    d.command(ChargerCommand::StartStop(true)).await.unwrap();
    assert!(d.poll().await.unwrap().charging);
}

#[tokio::test]
async fn evlink_with_the_lifebit_deactivated_gets_no_lifebit() {
    let (sim, _s, mut d) = pair(SimModel::EvlinkProAc, Variant::EVLINK_LIFEBIT_OFF).await;
    d.identify().await.unwrap();
    assert_eq!(d.heartbeat_interval(), None);
    // The box refuses the lifebit in this mode: a driver that writes it fails here.
    d.heartbeat().await.unwrap();
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    assert!(d.poll().await.unwrap().charging);
    assert!(
        sim.state().writes.iter().all(|(a, _)| *a != 4000),
        "{:?}",
        sim.state().writes
    );
}

#[tokio::test]
async fn evlink_idle_state_2_is_no_vehicle() {
    let (sim, _s, mut d) = pair(SimModel::EvlinkProAc, Variant::EVLINK_IDLE_STATE_2).await;
    d.identify().await.unwrap();
    let s = d.poll().await.unwrap();
    assert_eq!(s.state, Some(CpState::Available), "{s:?}");
    assert!(!s.connected && s.error.is_none());
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    assert!(d.poll().await.unwrap().connected);
}

#[tokio::test]
async fn abl_emh_outlet_disabled_after_wake_up_is_enabled_again() {
    let (sim, _s, mut d) = pair(SimModel::AblEmh, Variant::ABL_DISABLED_AFTER_WAKE).await;
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::three_phase());
    set(&mut d, 16).await;
    assert!(d.poll().await.unwrap().charging);
    // A quiet bus: the box sleeps, misses the first request and wakes with the outlet
    // disabled (E0). A driver that only reports E0 leaves the car without current.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let s = d.poll().await.expect("the repeated read wakes it");
    assert!(s.charging, "{s:?}");
    assert!(sim.state().charging());
    assert!(
        sim.state()
            .writes
            .iter()
            .any(|(a, v)| *a == 0x05 && v == &[0xA1A1])
    );
}

#[tokio::test]
async fn abl_emh_reads_0x03e8_on_an_idle_phase_as_zero() {
    let (sim, _s, mut d) = pair(SimModel::AblEmh, Variant::ABL_IDLE_PHASES_1000).await;
    sim.lock().state.meter_fitted = true;
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::single_phase());
    set(&mut d, 16).await;
    let s = d.poll().await.unwrap();
    assert!(s.charging);
    // 16 A to 0.1 A as the pilot duty cycle (266 × 0.06 A) gives it.
    let l1 = s.currents.unwrap().0[0];
    assert!(l1 > Current::from_amps(15), "{l1:?}");
    assert_eq!(&s.currents.unwrap().0[1..], &[Current::ZERO; 2]);
}
