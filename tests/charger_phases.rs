//! 1-/3-phase switching: the drivers of the four models whose Modbus maps define it (KEBA P30
//! with a KeContact S10, Alfen Eve, Vestel EVC04, MENNEKES AMTRON Compact) against their
//! simulators, which carry the boxes' quirks (`docs/chargers.md`, "1-/3-phase switching"): the
//! car's currents follow the switch after the box's pause, every refusal is `NotPossible` with
//! its reason, garbage in the phase registers is no phase count, and every other model answers
//! `NotPossible` without touching the box.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unnecessary_wraps,
    missing_docs
)]

use std::time::Duration;

use knx_echarge::catalog::{self, Capability};
use knx_echarge::chargers::drivers::{self, AnyDriver, DriverSettings, Transport};
use knx_echarge::chargers::{ChargePoint, ChargerCommand, ChargerStatus, CommandOutcome};
use knx_echarge::modbus::TcpModbus;
use knx_echarge::sim::{self, SimHandle, SimModel, Variant, Vehicle};
use knx_echarge::units::{Current, PerPhase, PhaseCount};

const TIMEOUT: Duration = Duration::from_millis(300);
/// The simulators' switching pause, shortened for the tests (the real one is ~10 s).
const PAUSE: Duration = Duration::from_millis(300);

async fn pair(model: SimModel, variant: Variant) -> (SimHandle, sim::SimServer, AnyDriver) {
    pair_with(model, variant, DriverSettings::default()).await
}

async fn pair_with(
    model: SimModel,
    variant: Variant,
    settings: DriverSettings,
) -> (SimHandle, sim::SimServer, AnyDriver) {
    let handle = SimHandle::with_variant(model, variant);
    handle.lock().state.phase_switch_pause = PAUSE;
    let server = sim::serve_tcp(handle.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let unit = catalog::charger_model(model.id()).unwrap().unit_id;
    let t = Transport::Tcp(TcpModbus::new(server.addr.unwrap(), unit, TIMEOUT));
    let d = drivers::build(model.id(), t, unit, settings).unwrap();
    (handle, server, d)
}

/// Identified, a three-phase car plugged in and charging at 16 A.
async fn charging(model: SimModel, variant: Variant) -> (SimHandle, sim::SimServer, AnyDriver) {
    let (sim, server, mut d) = pair(model, variant).await;
    d.identify().await.unwrap();
    sim.plug_in(Vehicle::three_phase());
    cmd(&mut d, ChargerCommand::SetCurrent(Current::from_amps(16))).await;
    (sim, server, d)
}

async fn cmd(d: &mut AnyDriver, c: ChargerCommand) {
    assert_eq!(d.command(c).await.unwrap(), CommandOutcome::Done, "{c:?}");
}

async fn phases(d: &mut AnyDriver, p: PhaseCount) -> CommandOutcome {
    d.command(ChargerCommand::SetPhases(p)).await.unwrap()
}

fn amps(a: [i32; 3]) -> Option<PerPhase<Current>> {
    Some(PerPhase(a.map(Current::from_amps)))
}

/// The reason of a refusal; panics on anything else.
fn refused(o: CommandOutcome) -> String {
    match o {
        CommandOutcome::NotPossible(why) => why,
        other => panic!("expected NotPossible, got {other:?}"),
    }
}

/// Polls until the box has finished its switching pause.
async fn after_pause(d: &mut AnyDriver) -> ChargerStatus {
    tokio::time::sleep(PAUSE + Duration::from_millis(100)).await;
    d.poll().await.unwrap()
}

/// The box stops charging for the switch and resumes on `want` phases.
async fn switch_and_check(d: &mut AnyDriver, sim: &SimHandle, want: PhaseCount) {
    assert_eq!(phases(d, want).await, CommandOutcome::Done);
    let during = d.poll().await.unwrap();
    assert!(
        !during.charging && during.currents == amps([0, 0, 0]),
        "the box pauses for the switch: {during:?}"
    );
    let s = after_pause(d).await;
    let expected = match want {
        PhaseCount::One => amps([16, 0, 0]),
        PhaseCount::Three => amps([16, 16, 16]),
    };
    assert!(s.charging, "{s:?}");
    assert_eq!(s.currents, expected, "{s:?}");
    assert_eq!(s.phases_switched, Some(want), "{s:?}");
    assert_eq!(sim.state().phases, want.count());
}

/// Switching to what the box already switches writes nothing.
async fn same_again_writes_nothing(d: &mut AnyDriver, sim: &SimHandle, p: PhaseCount) {
    let writes = sim.state().writes.len();
    assert_eq!(phases(d, p).await, CommandOutcome::Done);
    assert_eq!(sim.state().writes.len(), writes, "{:?}", sim.state().writes);
}

fn writes_to(sim: &SimHandle, addr: u16) -> Vec<Vec<u16>> {
    sim.state()
        .writes
        .into_iter()
        .filter(|(a, _)| *a == addr)
        .map(|(_, v)| v)
        .collect()
}

#[tokio::test]
async fn keba_c_series_sets_the_source_once_and_switches_to_one_phase_and_back() {
    let (sim, _s, mut d) = charging(SimModel::KebaP30, Variant::STANDARD).await;
    let s = d.poll().await.unwrap();
    assert_eq!(s.currents, amps([16, 16, 16]));
    // Source 0 until the c-series is told: 1552 is not trusted yet, but switching may work.
    assert_eq!(
        (s.phases_switched, s.phase_switch_available),
        (None, Some(true))
    );
    switch_and_check(&mut d, &sim, PhaseCount::One).await;
    assert_eq!(writes_to(&sim, 5050), [vec![3]]);
    assert_eq!(writes_to(&sim, 5052), [vec![0]]);
    same_again_writes_nothing(&mut d, &sim, PhaseCount::One).await;
    switch_and_check(&mut d, &sim, PhaseCount::Three).await;
    assert_eq!(writes_to(&sim, 5052), [vec![0], vec![1]]);
    assert_eq!(writes_to(&sim, 5050).len(), 1, "5050 is a setting: once");
    assert_eq!(d.poll().await.unwrap().phase_switch_available, Some(true));
}

#[tokio::test]
async fn keba_x_series_takes_the_source_from_its_web_interface() {
    let (sim, _s, mut d) = charging(SimModel::KebaP30, Variant::KEBA_X_SERIES).await;
    let s = d.poll().await.unwrap();
    assert_eq!(
        (s.phases_switched, s.phase_switch_available),
        (Some(PhaseCount::Three), Some(true))
    );
    switch_and_check(&mut d, &sim, PhaseCount::One).await;
    switch_and_check(&mut d, &sim, PhaseCount::Three).await;
    assert!(writes_to(&sim, 5050).is_empty(), "x-series: no 5050");
    // Someone sets the web interface to UDP control.
    sim.lock().state.extra.insert(1550, 4);
    let why = refused(phases(&mut d, PhaseCount::One).await);
    assert!(why.contains("web interface") && why.contains('4'), "{why}");
    assert!(writes_to(&sim, 5050).is_empty());
    let s = d.poll().await.unwrap();
    assert_eq!(
        (s.phases_switched, s.phase_switch_available),
        (None, Some(false))
    );
    assert_eq!(s.currents, amps([16, 16, 16]), "still on three phases");
}

#[tokio::test]
async fn keba_without_s10_refuses_and_writes_5050_only_once() {
    let (sim, _s, mut d) = charging(SimModel::KebaP30, Variant::KEBA_NO_S10).await;
    for _ in 0..3 {
        let why = refused(phases(&mut d, PhaseCount::One).await);
        assert!(why.contains("S10"), "{why}");
    }
    assert_eq!(writes_to(&sim, 5050), [vec![3]]);
    assert!(writes_to(&sim, 5052).is_empty());
    // A re-identification does not write it again either.
    d.identify().await.unwrap();
    refused(phases(&mut d, PhaseCount::One).await);
    assert_eq!(writes_to(&sim, 5050).len(), 1);
    let s = d.poll().await.unwrap();
    assert_eq!(
        (s.phases_switched, s.phase_switch_available),
        (None, Some(false)),
        "1552 reads 0 without an S10: no phase count"
    );
    assert_eq!(s.currents, amps([16, 16, 16]));
}

#[tokio::test]
async fn keba_firmware_without_phase_registers_refuses_and_polls() {
    let (sim, _s, mut d) = charging(SimModel::KebaP30, Variant::KEBA_NO_PHASE_REGISTERS).await;
    let why = refused(phases(&mut d, PhaseCount::One).await);
    assert!(why.contains("1550"), "{why}");
    assert!(writes_to(&sim, 5050).is_empty() && writes_to(&sim, 5052).is_empty());
    for _ in 0..12 {
        let s = d.poll().await.unwrap();
        assert!(s.charging);
        assert_eq!(
            (s.phases_switched, s.phase_switch_available),
            (None, Some(false))
        );
    }
}

#[tokio::test]
async fn keba_garbage_in_1552_is_no_phase_count() {
    let (sim, _s, mut d) = charging(SimModel::KebaP30, Variant::KEBA_X_SERIES).await;
    sim.lock()
        .state
        .forced
        .holding
        .extend([(1552, 0), (1553, 7)]);
    let s = d.poll().await.unwrap();
    assert_eq!(s.phases_switched, None);
    assert!(s.charging);
    sim.lock()
        .state
        .forced
        .holding
        .extend([(1552, 0xFFFF), (1553, 0xFFFF)]);
    assert_eq!(d.poll().await.unwrap().phases_switched, None);
}

#[tokio::test]
async fn alfen_switches_with_1215_and_refuses_where_it_cannot() {
    let (sim, _s, mut d) = charging(SimModel::AlfenEve, Variant::STANDARD).await;
    let s = d.poll().await.unwrap();
    assert_eq!(
        (s.phases_switched, s.phase_switch_available),
        (Some(PhaseCount::Three), Some(true))
    );
    switch_and_check(&mut d, &sim, PhaseCount::One).await;
    assert_eq!(writes_to(&sim, 1215), [vec![1]]);
    same_again_writes_nothing(&mut d, &sim, PhaseCount::One).await;
    switch_and_check(&mut d, &sim, PhaseCount::Three).await;
    // 1215 = 2 (or garbage) is no phase count.
    sim.lock().state.forced.holding.insert(1215, 2);
    assert_eq!(d.poll().await.unwrap().phases_switched, None);
    sim.lock().state.forced.holding.insert(1215, 0xFFFF);
    assert_eq!(d.poll().await.unwrap().phases_switched, None);

    // A 1-phase installation: nothing to switch, nothing written.
    let (sim, _s, mut d) = charging(SimModel::AlfenEve, Variant::ALFEN_SINGLE_PHASE).await;
    assert_eq!(d.poll().await.unwrap().phase_switch_available, Some(false));
    let why = refused(phases(&mut d, PhaseCount::Three).await);
    assert!(why.contains("1-phase installation"), "{why}");
    assert!(writes_to(&sim, 1215).is_empty());

    // "Allow 1- and 3-phased charging" not ticked: the box does not take the write.
    let (sim, _s, mut d) = charging(SimModel::AlfenEve, Variant::ALFEN_NO_PHASE_SWITCH).await;
    let why = refused(phases(&mut d, PhaseCount::One).await);
    assert!(why.contains("Allow 1- and 3-phased charging"), "{why}");
    let s = d.poll().await.unwrap();
    assert_eq!(s.currents, amps([16, 16, 16]));
    assert_eq!(s.phases_switched, Some(PhaseCount::Three));
    assert_eq!(sim.state().phases, 3);
}

#[tokio::test]
async fn vestel_switches_with_405_and_notices_when_switching_falls_back() {
    let (sim, _s, mut d) = charging(SimModel::VestelEvc04, Variant::STANDARD).await;
    let s = d.poll().await.unwrap();
    assert_eq!(
        (s.phases_switched, s.phase_switch_available),
        (Some(PhaseCount::Three), Some(true))
    );
    switch_and_check(&mut d, &sim, PhaseCount::One).await;
    assert_eq!(writes_to(&sim, 405), [vec![0]]);
    same_again_writes_nothing(&mut d, &sim, PhaseCount::One).await;
    switch_and_check(&mut d, &sim, PhaseCount::Three).await;
    // Garbage in 405.
    sim.lock().state.forced.holding.insert(405, 7);
    assert_eq!(d.poll().await.unwrap().phases_switched, None);
    sim.lock().state.forced.holding.clear();
    // The setting falls back by itself (the test's toggle): seen at the next poll.
    sim.lock().state.extra.insert(404, 0);
    let s = d.poll().await.unwrap();
    assert_eq!(
        (s.phases_switched, s.phase_switch_available),
        (Some(PhaseCount::Three), Some(false))
    );
    let why = refused(phases(&mut d, PhaseCount::One).await);
    assert!(why.contains("404"), "{why}");
    assert_eq!(
        writes_to(&sim, 405).len(),
        2,
        "nothing written while 404 is 0"
    );

    // The variant that falls back after its first switch.
    let (sim, _s, mut d) = charging(SimModel::VestelEvc04, Variant::VESTEL_SWITCH_FALLS_BACK).await;
    switch_and_check(&mut d, &sim, PhaseCount::One).await;
    let s = d.poll().await.unwrap();
    assert_eq!(s.phase_switch_available, Some(false));
    let why = refused(phases(&mut d, PhaseCount::Three).await);
    assert!(why.contains("404"), "{why}");
    assert_eq!(d.poll().await.unwrap().currents, amps([16, 0, 0]));
}

#[tokio::test]
async fn vestel_before_3_187_and_1p_units_refuse() {
    let (sim, _s, mut d) = charging(SimModel::VestelEvc04, Variant::VESTEL_BEFORE_3156).await;
    let s = d.poll().await.unwrap();
    assert!(s.charging);
    assert_eq!(
        (s.phases_switched, s.phase_switch_available),
        (None, Some(false))
    );
    let why = refused(phases(&mut d, PhaseCount::One).await);
    assert!(why.contains("3.187"), "{why}");
    assert!(writes_to(&sim, 405).is_empty());

    let (sim, _s, mut d) = charging(SimModel::VestelEvc04, Variant::VESTEL_1P_UNIT).await;
    let s = d.poll().await.unwrap();
    assert_eq!(s.currents, amps([16, 0, 0]));
    assert_eq!(s.phase_switch_available, Some(false));
    let why = refused(phases(&mut d, PhaseCount::Three).await);
    assert!(why.contains("404"), "{why}");
    assert!(writes_to(&sim, 405).is_empty());
}

#[tokio::test]
async fn amtron_compact_switches_only_without_current_on_offer() {
    let (sim, _s, mut d) = charging(SimModel::AmtronCompact, Variant::STANDARD).await;
    let s = d.poll().await.unwrap();
    assert_eq!(
        (s.phases_switched, s.phase_switch_available),
        (Some(PhaseCount::Three), Some(true))
    );
    // Released with 16 A on offer: pause first.
    let why = refused(phases(&mut d, PhaseCount::One).await);
    assert!(why.contains("0x0D05"), "{why}");
    assert!(writes_to(&sim, 0x0D04).is_empty());
    // Paused at 0 A: the driver withdraws the release for the write and gives it back.
    cmd(&mut d, ChargerCommand::SetCurrent(Current::ZERO)).await;
    assert_eq!(phases(&mut d, PhaseCount::One).await, CommandOutcome::Done);
    assert_eq!(writes_to(&sim, 0x0D04), [vec![1]]);
    assert!(sim.state().started, "the release is back");
    cmd(&mut d, ChargerCommand::SetCurrent(Current::from_amps(16))).await;
    let s = d.poll().await.unwrap();
    assert!(!s.charging, "the box pauses for the switch: {s:?}");
    let s = after_pause(&mut d).await;
    assert_eq!(s.currents, amps([16, 0, 0]), "{s:?}");
    assert_eq!(s.phases_switched, Some(PhaseCount::One));
    same_again_writes_nothing(&mut d, &sim, PhaseCount::One).await;
    // Stopped (release withdrawn by start/stop): switched without touching the release.
    cmd(&mut d, ChargerCommand::StartStop(false)).await;
    let releases = writes_to(&sim, 0x0D05).len();
    assert_eq!(
        phases(&mut d, PhaseCount::Three).await,
        CommandOutcome::Done
    );
    assert_eq!(writes_to(&sim, 0x0D05).len(), releases);
    cmd(&mut d, ChargerCommand::StartStop(true)).await;
    let s = after_pause(&mut d).await;
    assert_eq!(s.currents, amps([16, 16, 16]), "{s:?}");
    assert_eq!(s.phases_switched, Some(PhaseCount::Three));
    // Garbage in 0x0E02.
    sim.lock().state.forced.holding.insert(0x0E02, 5);
    assert_eq!(d.poll().await.unwrap().phases_switched, None);

    // Hardware without the switch.
    let (sim, _s, mut d) = charging(SimModel::AmtronCompact, Variant::MENNEKES_FIXED_PHASES).await;
    let s = d.poll().await.unwrap();
    assert_eq!(
        (s.phases_switched, s.phase_switch_available),
        (None, Some(false))
    );
    cmd(&mut d, ChargerCommand::SetCurrent(Current::ZERO)).await;
    let why = refused(phases(&mut d, PhaseCount::One).await);
    assert!(why.contains("0x030C"), "{why}");
    assert!(writes_to(&sim, 0x0D04).is_empty());
}

#[tokio::test]
async fn models_without_phase_switching_refuse_and_report_nothing() {
    for model in SimModel::ALL {
        let has = catalog::charger_model(model.id())
            .unwrap()
            .has(Capability::PhaseSwitch);
        let (sim, _s, mut d) = charging(model, Variant::STANDARD).await;
        assert_eq!(d.capabilities().contains(&Capability::PhaseSwitch), has);
        let s = d.poll().await.unwrap();
        assert_eq!(s.phase_switch_available.is_some(), has, "{model:?}");
        if has {
            continue;
        }
        assert_eq!(s.phases_switched, None, "{model:?}");
        let writes = sim.state().writes.len();
        for p in [PhaseCount::One, PhaseCount::Three] {
            let why = refused(phases(&mut d, p).await);
            assert!(why.contains("cannot switch"), "{model:?}: {why}");
        }
        assert_eq!(sim.state().writes.len(), writes, "{model:?} wrote");
    }
}

#[tokio::test]
async fn a_point_configured_with_one_phase_is_not_switched_to_three() {
    let one_phase = DriverSettings {
        phases: PhaseCount::One,
        ..DriverSettings::default()
    };
    for model in [
        SimModel::KebaP30,
        SimModel::AlfenEve,
        SimModel::VestelEvc04,
        SimModel::AmtronCompact,
    ] {
        let variant = if model == SimModel::KebaP30 {
            Variant::KEBA_X_SERIES
        } else {
            Variant::STANDARD
        };
        let (sim, _s, mut d) = pair_with(model, variant, one_phase).await;
        d.identify().await.unwrap();
        let writes = sim.state().writes.len();
        let why = refused(phases(&mut d, PhaseCount::Three).await);
        assert!(why.contains("one phase"), "{model:?}: {why}");
        assert_eq!(sim.state().writes.len(), writes, "{model:?}");
        // To one phase is fine (the box switches on its own side).
        cmd(&mut d, ChargerCommand::SetCurrent(Current::ZERO)).await;
        assert_eq!(
            phases(&mut d, PhaseCount::One).await,
            CommandOutcome::Done,
            "{model:?}"
        );
    }
}
