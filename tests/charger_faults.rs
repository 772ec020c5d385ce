//! Charging-point faults end to end: the real charger tasks against the charging-point and
//! meter simulators (Modbus TCP on loopback, Modbus RTU on a pty pair), the real shell
//! and core, and the group-object values the gateway would send: objects 94–99 of charging
//! point 1 (fault present, last fault text, fault info 1–4).
//!
//! For every fault kind of the spec (ch. 11) that concerns a charging point — the host does
//! not answer connections, another model at the address, Modbus exception replies, garbage
//! and truncated replies, answers that come too late or never (over Modbus TCP, and the
//! exception, garbage, truncation and silence cases again over Modbus RTU on the RS485 line),
//! a manufacturer error, and the retrofit meter gone (over TCP and over RS485) — each test
//! checks that
//! * object 94 is 1 and object 95 shows the code's text, and the fault present at the
//!   charging point is that code with the spec's severity (80, 70, 60, 50, 30) and no other;
//! * charging point 2, healthy, keeps being polled meanwhile: a vehicle plugged out and in
//!   again shows on its objects 101 and 102, and object 144 stays 0;
//! * recovery (the simulator fixed or restarted) clears object 94 (object 95 keeps the last
//!   fault, "last or current fault") and charging point 1 is polled again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use knx_echarge::catalog::Rs485Framing;
use knx_echarge::catalog::{self, Interface};
use knx_echarge::config::{Config, Parity, Rs485Config};
use knx_echarge::gateway::shell::{self, ShellHandle, Snapshot};
use knx_echarge::gateway::tasks::{self, AnyMeter, Fleet, TaskTiming};
use knx_echarge::meters::meter_for;
use knx_echarge::meters::sim::{MeterSim, SimModel as MeterModel, SimValues};
use knx_echarge::objects::Value;
use knx_echarge::sim::{self, Faults, SimHandle, SimModel, SimServer, Vehicle};
use knx_echarge::units::{ChargePointId, Current, GoNumber};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

mod support;
use support::{MeterAt, model_meter};

/// Offsets in a charging point's block of 50 objects (object = 50·n + offset), from the table.
use knx_echarge::objects::number::cp::{
    CHARGING, CONNECTED, CURRENT_SUM, FAULT, FAULT_INFO_1, LAST_FAULT, SERIAL,
};

const WITHIN: Duration = Duration::from_secs(10);

fn go(cp: u8, offset: u16) -> GoNumber {
    GoNumber(50 * u16::from(cp) + offset)
}

fn cp(n: u8) -> ChargePointId {
    ChargePointId::new(n).unwrap()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A loopback address nobody listens on (released a moment ago).
fn dead_addr() -> SocketAddr {
    std::net::TcpListener::bind(loopback())
        .unwrap()
        .local_addr()
        .unwrap()
}

fn timing() -> TaskTiming {
    TaskTiming {
        poll: Duration::from_millis(200),
        identify_every: Duration::from_secs(60),
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_millis(800),
    }
}

fn base_config() -> Config {
    let mut c = Config::defaults();
    c.modbus.poll_interval = Duration::from_millis(200);
    c.modbus.response_timeout = Duration::from_millis(300);
    c
}

fn tcp_point(c: &mut Config, n: u8, model: &str, addr: SocketAddr) {
    let p = c
        .charging_points
        .iter_mut()
        .find(|p| p.id == cp(n))
        .unwrap();
    p.enabled = true;
    p.model = catalog::charger_model(model);
    p.interface = Interface::Tcp;
    p.ip = Ipv4Addr::LOCALHOST;
    p.port = addr.port();
    p.unit_id = None;
}

/// Serves `sim` at `addr`, retrying while the port is still held by a server just stopped
/// (an aborted server task drops its listener on its next poll, not at once).
async fn serve_at(sim: &SimHandle, addr: SocketAddr) -> SimServer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        match sim::serve_tcp(sim.clone(), addr).await {
            Ok(server) => return server,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("{addr} not free yet: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{addr}: {e}"),
        }
    }
}

/// Charging point 2: a healthy Webasto Next with a vehicle charging.
struct Healthy {
    sim: SimHandle,
    _server: SimServer,
}

impl Healthy {
    async fn add_to(config: &mut Config) -> Self {
        let sim = SimHandle::new(SimModel::WebastoNext);
        sim.plug_in(Vehicle::three_phase());
        let server = sim::serve_tcp(sim.clone(), loopback()).await.unwrap();
        tcp_point(config, 2, "webasto-next", server.addr.unwrap());
        Self {
            sim,
            _server: server,
        }
    }
}

/// The shell with its charger tasks.
struct Gateway {
    shell: ShellHandle,
    fleet: Option<Fleet>,
    tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// The tasks for every active charging point of `config`, as the gateway starts them.
    fn start(config: Config) -> Self {
        Self::start_on(config, None)
    }

    /// [`Gateway::start`] with the RS485 line on the serial port `rs485`.
    fn start_on(config: Config, rs485: Option<&std::path::Path>) -> Self {
        let prepared = tasks::prepare_with(&config, rs485, timing());
        let shell = shell::spawn_with_chargers(config, true, None, prepared.commands());
        let fleet = prepared.start(&shell.events);
        Self {
            shell,
            fleet: Some(fleet),
            tasks: Vec::new(),
        }
    }

    /// Waits until `pred` holds for the snapshot; panics with `what` and the charging points'
    /// fault objects when it does not within [`WITHIN`].
    async fn wait(&self, what: &str, pred: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let mut rx = self.shell.snapshot.clone();
        let reached = tokio::time::timeout(WITHIN, async {
            loop {
                {
                    let snap = rx.borrow_and_update();
                    if pred(&snap) {
                        return snap.clone();
                    }
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        reached.unwrap_or_else(|_| {
            let snap = self.shell.snapshot.borrow().clone();
            panic!(
                "{what}: not within {WITHIN:?}; objects 94/95 {:?} {:?}, 144/145 {:?} {:?}, faults {:?}",
                snap.objects.get(&go(1, FAULT)),
                snap.objects.get(&go(1, LAST_FAULT)),
                snap.objects.get(&go(2, FAULT)),
                snap.objects.get(&go(2, LAST_FAULT)),
                snap.faults
            )
        })
    }

    async fn shutdown(self) {
        if let Some(fleet) = self.fleet {
            fleet.shutdown().await;
        }
        for t in &self.tasks {
            t.abort();
        }
        self.shell.shutdown().await;
    }
}

fn object(snap: &Snapshot, n: u8, offset: u16) -> Option<&Value> {
    snap.objects.get(&go(n, offset))
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// The faults present at charging point `n` as (text, severity).
fn present(snap: &Snapshot, n: u8) -> Vec<(&'static str, u8)> {
    snap.faults
        .iter()
        .filter(|f| f.charging_point == Some(cp(n)))
        .map(|f| (f.code.text(), f.severity.0))
        .collect()
}

fn shows(snap: &Snapshot, n: u8, code: &str) -> bool {
    object(snap, n, FAULT) == Some(&Value::Bool(true))
        && object(snap, n, LAST_FAULT) == Some(&text(code))
}

/// Charging point 1 shows `code` with `severity` on objects 94/95 and in the fault list, and
/// nothing else is present there; charging point 2 shows no fault.
fn assert_fault(snap: &Snapshot, code: &str, severity: u8, when: &str) {
    assert_eq!(
        object(snap, 1, FAULT),
        Some(&Value::Bool(true)),
        "{when}: 94"
    );
    assert_eq!(object(snap, 1, LAST_FAULT), Some(&text(code)), "{when}: 95");
    assert_eq!(present(snap, 1), vec![(code, severity)], "{when}");
    assert_eq!(
        object(snap, 2, FAULT),
        Some(&Value::Bool(false)),
        "{when}: 144"
    );
    assert!(present(snap, 2).is_empty(), "{when}: {:?}", snap.faults);
}

/// Waits for `code` on charging point 1, checks it, then checks that charging point 2 keeps
/// being polled (its vehicle leaves and comes back, its objects follow) while the fault
/// stays as it is.
async fn fault_shown_while_the_other_works(
    gw: &Gateway,
    healthy: &Healthy,
    code: &str,
    severity: u8,
) {
    let snap = gw
        .wait(&format!("{code} on 94/95"), |s| shows(s, 1, code))
        .await;
    assert_fault(&snap, code, severity, "raised");
    let before = healthy.sim.lock().requests;
    healthy.sim.unplug();
    gw.wait("CP2 unplugged (101 = 0)", |s| {
        object(s, 2, CONNECTED) == Some(&Value::Bool(false))
    })
    .await;
    healthy.sim.plug_in(Vehicle::three_phase());
    gw.wait("CP2 charging again (101 = 1, 102 = 1)", |s| {
        object(s, 2, CONNECTED) == Some(&Value::Bool(true))
            && object(s, 2, CHARGING) == Some(&Value::Bool(true))
    })
    .await;
    assert!(
        healthy.sim.lock().requests >= before + 2,
        "CP2 was polled meanwhile"
    );
    // With retries behind it (three failed polls, back-off, identification again: 200 ms
    // polls, 300 ms response timeout, 200..800 ms back-off), the fault is unchanged.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snap = gw.shell.snapshot.borrow().clone();
    assert_fault(&snap, code, severity, "while CP2 works");
}

/// After recovery: object 94 is 0, no fault is present, object 95 keeps the last fault (one of
/// `last`: a box swapped at the address is briefly NotReachable on its way back), and
/// charging point 1 is polled again (a vehicle plugged in shows on object 51).
async fn recovered(gw: &Gateway, cp1: &SimHandle, last: &[&str]) {
    let snap = gw
        .wait("94 cleared", |s| {
            object(s, 1, FAULT) == Some(&Value::Bool(false)) && present(s, 1).is_empty()
        })
        .await;
    assert!(
        last.iter()
            .any(|code| object(&snap, 1, LAST_FAULT) == Some(&text(code))),
        "95 shows the last fault, one of {last:?}: {:?}",
        object(&snap, 1, LAST_FAULT)
    );
    cp1.plug_in(Vehicle::three_phase());
    gw.wait("CP1 polled again (51 = 1)", |s| {
        object(s, 1, CONNECTED) == Some(&Value::Bool(true))
    })
    .await;
    cp1.unplug();
    gw.wait("CP1 unplugged (51 = 0)", |s| {
        object(s, 1, CONNECTED) == Some(&Value::Bool(false))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_host_is_not_reachable_80_and_recovers() {
    let mut config = base_config();
    let addr = dead_addr();
    tcp_point(&mut config, 1, "keba-p30", addr);
    let healthy = Healthy::add_to(&mut config).await;
    let gw = Gateway::start(config);
    fault_shown_while_the_other_works(&gw, &healthy, "NotReachable", 80).await;

    // The charging point comes up at its address.
    let keba = SimHandle::new(SimModel::KebaP30);
    let _server = serve_at(&keba, addr).await;
    recovered(&gw, &keba, &["NotReachable"]).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_model_at_the_address_is_wrong_charger_70_and_recovers() {
    let mut config = base_config();
    let vestel = SimHandle::new(SimModel::VestelEvc04);
    let foreign = sim::serve_tcp(vestel, loopback()).await.unwrap();
    let addr = foreign.addr.unwrap();
    tcp_point(&mut config, 1, "keba-p30", addr);
    let healthy = Healthy::add_to(&mut config).await;
    let gw = Gateway::start(config);
    fault_shown_while_the_other_works(&gw, &healthy, "WrongCharger", 70).await;

    // The foreign box is replaced by the configured model at the same address.
    foreign.stop();
    drop(foreign);
    let keba = SimHandle::new(SimModel::KebaP30);
    let _server = serve_at(&keba, addr).await;
    recovered(&gw, &keba, &["WrongCharger", "NotReachable"]).await;
    gw.shutdown().await;
}

/// Charging point 1 is a KEBA P30 that works first (identified: its serial number is on
/// object 80), then gets `fault`; recovery takes the fault away again.
async fn injected_fault(fault: fn(&mut Faults), code: &str, severity: u8) {
    let mut config = base_config();
    let keba = SimHandle::new(SimModel::KebaP30);
    let server = sim::serve_tcp(keba.clone(), loopback()).await.unwrap();
    tcp_point(&mut config, 1, "keba-p30", server.addr.unwrap());
    let healthy = Healthy::add_to(&mut config).await;
    let gw = Gateway::start(config);
    gw.wait("CP1 identified and fault-free", |s| {
        object(s, 1, SERIAL).is_some() && object(s, 1, FAULT) == Some(&Value::Bool(false))
    })
    .await;
    keba.set_faults(fault);
    fault_shown_while_the_other_works(&gw, &healthy, code, severity).await;
    keba.set_faults(|f| *f = Faults::default());
    recovered(&gw, &keba, &[code]).await;
    gw.shutdown().await;
}

fn rs485_rtu() -> Rs485Config {
    Rs485Config {
        baud: 19200,
        data_bits: 8,
        parity: Parity::None,
        stop_bits: 1,
        framing: Rs485Framing::Rtu,
        termination: false,
    }
}

/// [`injected_fault`] on the RS485 line: charging point 1 is an ABB Terra AC at address 2,
/// served over Modbus RTU by the hand-written line server (which garbles and cuts frames as
/// told) on the far end of a pty pair.
async fn injected_fault_on_rs485(fault: fn(&mut Faults), code: &str, severity: u8) {
    let Some(pty) = support::ptys() else { return };
    let mut config = base_config();
    config.rs485 = rs485_rtu();
    let abb = SimHandle::new(SimModel::AbbTerraAc);
    let port = tokio_serial::SerialStream::open(&tokio_serial::new(pty.b.to_string_lossy(), 19200))
        .unwrap();
    let _server = sim::serve_line(port, Rs485Framing::Rtu, vec![(2, abb.clone())]);
    let p = config
        .charging_points
        .iter_mut()
        .find(|p| p.id == cp(1))
        .unwrap();
    p.enabled = true;
    p.model = catalog::charger_model("abb-terra-ac");
    p.interface = Interface::Rs485;
    p.rs485_address = 2;
    let healthy = Healthy::add_to(&mut config).await;
    let gw = Gateway::start_on(config, Some(&pty.a));
    gw.wait("CP1 on RS485 identified and fault-free", |s| {
        object(s, 1, SERIAL).is_some() && object(s, 1, FAULT) == Some(&Value::Bool(false))
    })
    .await;
    abb.set_faults(fault);
    fault_shown_while_the_other_works(&gw, &healthy, code, severity).await;
    abb.set_faults(|f| *f = Faults::default());
    recovered(&gw, &abb, &[code]).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_rs485_is_comm_60_and_recovers() {
    injected_fault_on_rs485(|f| f.garbage = true, "Comm", 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frames_on_rs485_are_comm_60_and_recover() {
    injected_fault_on_rs485(|f| f.truncate = true, "Comm", 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_replies_on_rs485_are_comm_60_and_recover() {
    // 0x04 (server device failure). Exceptions 0x01/0x02 are taken for missing identity
    // registers when the task identifies the box again after three failed polls: another
    // device at the address, WrongCharger (drivers/common.rs `identity_error`).
    injected_fault_on_rs485(|f| f.exception = Some(0x04), "Comm", 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_on_rs485_is_not_reachable_80_and_recovers() {
    injected_fault_on_rs485(|f| f.offline = true, "NotReachable", 80).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_replies_are_comm_60_and_recover() {
    injected_fault(|f| f.exception = Some(0x04), "Comm", 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_replies_are_comm_60_and_recover() {
    injected_fault(|f| f.garbage = true, "Comm", 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_replies_are_comm_60_and_recover() {
    injected_fault(|f| f.truncate = true, "Comm", 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_replies_time_out_as_not_reachable_80_and_recover() {
    // The server accepts and reads, but answers only after 5 s (response timeout 300 ms).
    injected_fault(|f| f.delay = Duration::from_secs(5), "NotReachable", 80).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_charging_point_is_not_reachable_80_and_recovers() {
    // No answers at all on the open connection, new connections refused.
    injected_fault(|f| f.offline = true, "NotReachable", 80).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manufacturer_error_is_charger_error_50_with_fault_info_96_to_99() {
    let mut config = base_config();
    let abb = SimHandle::new(SimModel::AbbTerraAc);
    let server = sim::serve_tcp(abb.clone(), loopback()).await.unwrap();
    tcp_point(&mut config, 1, "abb-terra-ac", server.addr.unwrap());
    let healthy = Healthy::add_to(&mut config).await;
    let gw = Gateway::start(config);
    gw.wait("CP1 identified and fault-free", |s| {
        object(s, 1, SERIAL).is_some() && object(s, 1, FAULT) == Some(&Value::Bool(false))
    })
    .await;
    // The ABB's error register is a bit field: one part per bit set, at most four shown.
    abb.set_faults(|f| f.error_code = 0x0000_0A05);
    fault_shown_while_the_other_works(&gw, &healthy, "ChargerError", 50).await;
    let snap = gw.shell.snapshot.borrow().clone();
    let info: Vec<_> = (0..4)
        .map(|i| object(&snap, 1, FAULT_INFO_1 + i).cloned())
        .collect();
    assert_eq!(
        info,
        ["0x00000001", "0x00000004", "0x00000200", "0x00000800"]
            .map(|t| Some(text(t)))
            .to_vec(),
        "96–99"
    );
    for i in 0..4 {
        assert_eq!(
            object(&snap, 2, FAULT_INFO_1 + i),
            None,
            "CP2's fault info untouched"
        );
    }
    abb.set_faults(|f| f.error_code = 0);
    recovered(&gw, &abb, &["ChargerError"]).await;
    let snap = gw.shell.snapshot.borrow().clone();
    for i in 0..4 {
        assert_eq!(
            object(&snap, 1, FAULT_INFO_1 + i),
            Some(&text("")),
            "fault info {} cleared",
            i + 1
        );
    }
    gw.shutdown().await;
}

fn meter_values() -> SimValues {
    SimValues {
        currents: [7.5, 7.25, 7.0],
        powers: [1700.0, 1650.0, 1600.0],
        energies: [1000.0, 1000.0, 1000.0],
    }
}

/// The gateway with charging point 1 (a KEBA P30, whose polls `meter` completes) and the
/// healthy charging point 2, each in its own charger task on the shell. No model of the
/// catalogue takes a retrofit meter and has a simulator yet, so the meter is attached to the
/// task directly, as `tasks::prepare` does for a model with optional metering.
fn start_with_meter(config: Config, meter: AnyMeter) -> Gateway {
    let (tx1, rx1) = mpsc::channel(16);
    let (tx2, rx2) = mpsc::channel(16);
    let senders = [(cp(1), tx1), (cp(2), tx2)].into_iter().collect();
    let driver = |n: u8| {
        let point = config
            .charging_points
            .iter()
            .find(|p| p.id == cp(n))
            .unwrap();
        point.driver(&config.modbus, None).unwrap()
    };
    let (d1, d2) = (driver(1), driver(2));
    let shell = shell::spawn_with_chargers(config, true, None, senders);
    let tasks = vec![
        tokio::spawn(tasks::run_with_meter(
            cp(1),
            d1,
            Some(meter),
            rx1,
            shell.events.clone(),
            timing(),
        )),
        tokio::spawn(tasks::run(cp(2), d2, rx2, shell.events.clone(), timing())),
    ];
    Gateway {
        shell,
        fleet: None,
        tasks,
    }
}

/// The meter's currents (7.5 + 7.25 + 7.0 A) are on charging point 1's object 62.
async fn meter_in_use(gw: &Gateway) {
    gw.wait("CP1's current sum from the meter (62 = 21.75 A)", |s| {
        object(s, 1, CURRENT_SUM) == Some(&Value::Current(Current::from_milliamps(21_750)))
            && object(s, 1, FAULT) == Some(&Value::Bool(false))
    })
    .await;
}

/// While the meter is gone, charging point 1 itself is still polled: its vehicle shows.
async fn charging_point_polled_without_meter(gw: &Gateway, keba: &SimHandle) {
    keba.plug_in(Vehicle::three_phase());
    gw.wait("CP1 polled while its meter is gone (51 = 1)", |s| {
        object(s, 1, CONNECTED) == Some(&Value::Bool(true))
    })
    .await;
    keba.unplug();
    gw.wait("CP1 unplugged (51 = 0)", |s| {
        object(s, 1, CONNECTED) == Some(&Value::Bool(false))
    })
    .await;
    assert_fault(
        &gw.shell.snapshot.borrow(),
        "EMeterNotReach",
        30,
        "meter still gone",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrofit_meter_unreachable_over_tcp_is_emeter_not_reach_30_and_recovers() {
    let mut config = base_config();
    let keba = SimHandle::new(SimModel::KebaP30);
    let server = sim::serve_tcp(keba.clone(), loopback()).await.unwrap();
    tcp_point(&mut config, 1, "keba-p30", server.addr.unwrap());
    let healthy = Healthy::add_to(&mut config).await;
    let em24 = MeterSim::start(Some(MeterModel::Em24Ethernet), 1)
        .await
        .unwrap();
    em24.set_values(&meter_values());
    let meter_addr = em24.addr().unwrap();
    let plan = meter_for(&model_meter("carlo-gavazzi-em24", MeterAt::Tcp(meter_addr)))
        .unwrap()
        .unwrap();
    let meter = AnyMeter::Tcp(plan.tcp_reader(config.modbus.response_timeout).unwrap());
    let gw = start_with_meter(config, meter);
    meter_in_use(&gw).await;

    // The meter goes away (listener and connections closed).
    em24.stop();
    drop(em24);
    fault_shown_while_the_other_works(&gw, &healthy, "EMeterNotReach", 30).await;
    charging_point_polled_without_meter(&gw, &keba).await;

    // It comes back at its address.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let em24 = loop {
        match MeterSim::start_at(meter_addr, Some(MeterModel::Em24Ethernet), 1).await {
            Ok(sim) => break sim,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("{meter_addr} not free yet: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{meter_addr}: {e}"),
        }
    };
    em24.set_values(&meter_values());
    recovered(&gw, &keba, &["EMeterNotReach"]).await;
    meter_in_use(&gw).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrofit_meter_unreachable_on_rs485_is_emeter_not_reach_30_and_recovers() {
    let Some(pty) = support::ptys() else { return };
    let mut config = base_config();
    config.rs485 = rs485_rtu();
    let keba = SimHandle::new(SimModel::KebaP30);
    let server = sim::serve_tcp(keba.clone(), loopback()).await.unwrap();
    tcp_point(&mut config, 1, "keba-p30", server.addr.unwrap());
    let healthy = Healthy::add_to(&mut config).await;
    // An Eastron SDM630 (RS485 only) at address 7 on the line.
    let sdm = MeterSim::start_rtu(&pty.b, 19200, Some(MeterModel::Sdm630), 7).unwrap();
    sdm.set_values(&meter_values());
    let line = knx_echarge::modbus::line::Line::open(
        &pty.a,
        &config.rs485,
        config.modbus.response_timeout,
    )
    .unwrap();
    let plan = meter_for(&model_meter("eastron-sdm630", MeterAt::Rs485(7)))
        .unwrap()
        .unwrap();
    let meter = AnyMeter::Line(plan.reader(line.device(7)));
    let gw = start_with_meter(config, meter);
    meter_in_use(&gw).await;

    // The meter stops answering (cable cut, power lost).
    sdm.set_silent(true);
    fault_shown_while_the_other_works(&gw, &healthy, "EMeterNotReach", 30).await;
    charging_point_polled_without_meter(&gw, &keba).await;

    sdm.set_silent(false);
    recovered(&gw, &keba, &["EMeterNotReach"]).await;
    meter_in_use(&gw).await;
    gw.shutdown().await;
    drop(line);
}

/// The transport under the Comm cases: a complete Modbus TCP frame whose echo of a register
/// write is too short is an erroneous answer (Comm), not a lost connection (NotReachable).
#[tokio::test]
async fn a_truncated_write_echo_is_malformed_not_unreachable() {
    use knx_echarge::modbus::{Modbus, ModbusError, TcpModbus};
    let keba = SimHandle::new(SimModel::KebaP30);
    let server = sim::serve_tcp(keba.clone(), loopback()).await.unwrap();
    let mut m = TcpModbus::new(server.addr.unwrap(), 255, Duration::from_millis(300));
    m.write_single(5004, 10_000).await.unwrap();
    keba.set_faults(|f| f.truncate = true);
    let e = m.write_single(5004, 12_000).await.unwrap_err();
    assert!(matches!(e, ModbusError::Malformed(_)), "{e:?}");
    let e = m.read_holding(1000, 2).await.unwrap_err();
    assert!(matches!(e, ModbusError::Malformed(_)), "{e:?}");
    keba.set_faults(|f| f.truncate = false);
    m.write_single(5004, 8_000).await.unwrap();
    assert_eq!(keba.state().setpoint, Current::from_amps(8));
}
