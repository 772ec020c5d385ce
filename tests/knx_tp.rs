//! The gateway on KNX/TP: the binary's TP-UART link on one port of the emulated TP line
//! (`knx_echarge::tpline`), knxd as an independent TP-UART host on the other.
//!
//! * knxd (`-b tpuart:/dev/pts/M`, its client socket for knxtool) and the gateway binary
//!   (`run --knx tpuart:///dev/pts/N` with `examples/five-chargers.toml`) each go through the
//!   chip handshake with their emulated chip;
//! * knxtool's group writes from knxd's side reach the gateway's objects: interruption of
//!   charging point 2 (its state object then answers 1), grid-supporting control (its state
//!   object then answers 1), and the smart-meter currents of the DLM (acknowledged on the
//!   line by the gateway's chip, which leaves groups it has no object on unacknowledged);
//! * knxtool's reads are answered over TP (the last-fault text);
//! * the DLM over TP (`meter_values_on_tp_move_the_setpoint_at_the_charging_point`): the
//!   gateway drives a simulated KEBA P30 over Modbus TCP; the smart-meter currents, the
//!   interruption and grid-supporting control written with knxtool on TP change what the
//!   simulator receives (register 5004, the current in mA, and 5014, enable);
//! * objects 82 and 83 (spec ch. 10) over TP with an Alfen Eve simulator: the internal
//!   temperature follows its "Send temperature values" mode (on change and cyclic) and its
//!   own cycle time (`temperature_interval`), the warning the configured threshold;
//! * xknx (Home Assistant's KNX library), tunnelling to knxd's server (in a network namespace,
//!   `tests/support/netns.rs`: knxd serves tunnels only on a non-loopback interface), reads every readable object of
//!   `examples/five-chargers.toml` across the TP line and decodes each answer with the
//!   object's DPT; none stays silent, also those no value was set on yet.
//!
//! Needs knxd and knxtool (Debian knxd, knxd-tools), for the xknx test also xknx in `.venv`,
//! `ip` and root. `tests/run` installs them and sets
//! `KNX_ECHARGE_INTEROP=1`: then a missing peer is a failure, otherwise a loud SKIP.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use knx_echarge::tpline::{Ack, LineOptions, Monitored, TpLine};
use support::KillOnDrop;
use support::netns::{Netns, sh};

const CRATE: &str = env!("CARGO_MANIFEST_DIR");
/// Generous: the CI machine has 2 cores and runs tests in parallel.
const TIMEOUT: Duration = Duration::from_secs(30);

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails under tests/run, else prints a loud SKIP; returns false when the test must stop.
fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    assert!(
        std::env::var_os("KNX_ECHARGE_INTEROP").is_none_or(|v| v != "1"),
        "{what} is missing although tests/run should have installed it"
    );
    eprintln!("\n\n######## SKIP: {what} is missing; run tests/run to install it ########\n");
    false
}

/// `knxtool <applet> local:<socket> <args…>`; `None` when it fails (knxd not ready yet).
fn knxtool(socket: &Path, applet: &str, args: &[&str]) -> Option<String> {
    let url = format!("local:{}", socket.display());
    let out = Command::new("timeout")
        .args(["10", "knxtool", applet, &url])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Some(text)
    } else {
        eprintln!(
            "knxtool {applet} {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        None
    }
}

fn response_line(out: &str) -> Option<&str> {
    out.lines().find(|l| l.starts_with("Response from "))
}

/// Reads `ga` with knxtool until the answer ends with `want` (lower-case hex bytes).
async fn expect_answer(socket: &Path, ga: &str, want: &str, what: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let answer = knxtool(socket, "groupreadresponse", &[ga]).unwrap_or_default();
        eprintln!("groupreadresponse {ga}: {answer}");
        if response_line(&answer).is_some_and(|l| l.trim_end().to_lowercase().ends_with(want)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {ga} should answer {want}, got {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Writes with knxtool, retrying while knxd is not ready.
async fn write(socket: &Path, applet: &str, args: &[&str]) {
    let deadline = Instant::now() + TIMEOUT;
    while knxtool(socket, applet, args).is_none() {
        assert!(Instant::now() < deadline, "knxtool {applet} {args:?} fails");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits for a transmission from `port` to the raw group address `ga` on the line.
async fn crossed(
    monitor: &mut tokio::sync::broadcast::Receiver<Monitored>,
    port: usize,
    ga: u16,
) -> Monitored {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let m = tokio::time::timeout_at(deadline, monitor.recv())
            .await
            .expect("frame on the line")
            .expect("monitor open");
        let dst = u16::from_be_bytes([m.frame[3], m.frame[4]]);
        if m.port == port && m.frame[0] & 0x80 != 0 && dst == ga {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knxd_on_the_emulated_line_reaches_the_gateway_binary_over_tp() {
    if !require("knxd (Debian package knxd)", have("knxd"))
        || !require("knxtool (Debian package knxd-tools)", have("knxtool"))
    {
        return;
    }
    let started = Instant::now();
    let line = TpLine::start(2, LineOptions::default()).unwrap();
    let mut monitor = line.monitor();
    let [gateway_port, knxd_port] = [&line.paths()[0], &line.paths()[1]];
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("knxd.sock");
    let knxd_log = dir.path().join("knxd.log");
    let _knxd = KillOnDrop(
        Command::new("knxd")
            .args(["-e", "0.0.1", "-E", "0.0.2:8", "-u"])
            .arg(&socket)
            .arg("-b")
            .arg(format!("tpuart:{}", knxd_port.display()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&knxd_log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("knxd.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = dir.path().join("gateway.log");
    let _gateway = KillOnDrop(
        Command::new(support::gateway_bin())
            .args(["run", "--config", "examples/five-chargers.toml", "--knx"])
            .arg(format!("tpuart://{}", gateway_port.display()))
            .arg("--no-chargers")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .current_dir(CRATE)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    support::wait_for_log(&log, "TP-UART online", TIMEOUT);

    // An R object over TP: the last-fault text (DPT 16.001) answers "No error".
    let no_error: String = b"No error"
        .iter()
        .chain(&[0u8; 6])
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    expect_answer(&socket, "0/0/9", &no_error, "last fault").await;

    // Interruption of charging point 2 (2/0/5) sets its state object 2/0/6.
    write(&socket, "groupswrite", &["2/0/5", "1"]).await;
    let m = crossed(&mut monitor, 1, 0x1005).await;
    assert_eq!(m.ack, Ack::Ack, "the gateway acknowledges its group: {m}");
    expect_answer(&socket, "2/0/6", ": 01", "interruption").await;

    // Grid-supporting control (0/0/1) sets its state object 0/0/2.
    write(&socket, "groupswrite", &["0/0/1", "1"]).await;
    expect_answer(&socket, "0/0/2", ": 01", "grid-supporting control").await;

    // The smart meter's currents (DPT 14.019, 12.5 A = 0x41480000) for the DLM.
    for ga in ["0/0/10", "0/0/11", "0/0/12"] {
        write(&socket, "groupwrite", &[ga, "41", "48", "00", "00"]).await;
    }
    for raw in [10, 11, 12] {
        let m = crossed(&mut monitor, 1, raw).await;
        assert_eq!(m.ack, Ack::Ack, "{m}");
    }
    // A group the gateway has no object on is not acknowledged (nobody else listens): the
    // sending chip repeats it and confirms negatively.
    write(&socket, "groupswrite", &["7/7/7", "1"]).await;
    let m = crossed(&mut monitor, 1, 0x3F07).await;
    assert_eq!(m.ack, Ack::None, "{m}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("TP-UART chip reset"), "{text}");
    eprintln!(
        "knxd_on_the_emulated_line_reaches_the_gateway_binary_over_tp took {:?}",
        started.elapsed()
    );
}

/// The gateway of `tp_dlm_config`: charging point 1 a KEBA P30 simulator on loopback.
fn tp_dlm_config(port: u16) -> String {
    format!(
        "[knx]\nindividual_address = \"1.1.10\"\n\
         [dlm]\nenabled = true\novercurrent_protection = 35\nload_reserve = 3\n\
         ramp_up_rate = 32.0\nmin_switch_time = 0\ngrid_control_current = 6\n\
         [dlm.meter]\nconnection = \"3-phase\"\nmeasurement = \"current\"\n\
         current_dpt = \"14.019\"\n\
         [dlm.monitoring]\nmode = \"values\"\ninterval = 60\ntolerance = 10\n\
         [modbus]\npoll_interval = 300\n\
         [charging_point.1]\nenabled = true\nmodel = \"keba-p30\"\nip = \"127.0.0.1\"\n\
         port = {port}\nmax_current = 16\n\
         [group_addresses]\n1 = [\"0/0/1\"]\n2 = [\"0/0/2\"]\n10 = [\"0/0/10\"]\n\
         11 = [\"0/0/11\"]\n12 = [\"0/0/12\"]\n55 = [\"1/0/5\"]\n56 = [\"1/0/6\"]\n\
         61 = [\"1/0/11\"]\n"
    )
}

/// The current the simulated KEBA was last told over Modbus (register 5004, mA), and whether
/// it is enabled (5014).
fn keba_registers(sim: &knx_echarge::sim::SimHandle) -> (Option<u16>, Option<u16>) {
    let writes = sim.state().writes;
    let last = |addr: u16| {
        writes
            .iter()
            .rev()
            .find(|(a, _)| *a == addr)
            .and_then(|(_, v)| v.first().copied())
    };
    (last(5004), last(5014))
}

/// Waits until the simulator's registers satisfy `ok`.
async fn registers_until(
    sim: &knx_echarge::sim::SimHandle,
    what: &str,
    ok: impl Fn((Option<u16>, Option<u16>)) -> bool,
) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r = keba_registers(sim);
        if ok(r) {
            eprintln!("{what}: 5004/5014 = {r:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: registers 5004/5014 {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 14.019 (A as float32) as knxtool `groupwrite` bytes.
fn amps_bytes(a: f32) -> Vec<String> {
    a.to_be_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

async fn meter(socket: &Path, amps: f32) {
    let bytes = amps_bytes(amps);
    for ga in ["0/0/10", "0/0/11", "0/0/12"] {
        let mut args = vec![ga];
        args.extend(bytes.iter().map(String::as_str));
        write(socket, "groupwrite", &args).await;
    }
}

/// knxd (TP-UART host, client socket for knxtool) and the gateway binary with `config` on
/// the two ports of an emulated TP line; the gateway polls its charging points itself.
struct TpGateway {
    line: TpLine,
    socket: std::path::PathBuf,
    _knxd: KillOnDrop,
    _gateway: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl TpGateway {
    fn start(config: &str) -> Self {
        let line = TpLine::start(2, LineOptions::default()).unwrap();
        let [gateway_port, knxd_port] = [&line.paths()[0], &line.paths()[1]];
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("tp.toml");
        std::fs::write(&config_path, config).unwrap();
        let socket = dir.path().join("knxd.sock");
        let knxd = KillOnDrop(
            Command::new("knxd")
                .args(["-e", "0.0.1", "-E", "0.0.2:8", "-u"])
                .arg(&socket)
                .arg("-b")
                .arg(format!("tpuart:{}", knxd_port.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("knxd.err")).unwrap())
                .spawn()
                .unwrap(),
        );
        let log = dir.path().join("gateway.log");
        let gateway = KillOnDrop(
            Command::new(support::gateway_bin())
                .arg("run")
                .arg("--config")
                .arg(&config_path)
                .arg("--knx")
                .arg(format!("tpuart://{}", gateway_port.display()))
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .current_dir(CRATE)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        support::wait_for_log(&log, "TP-UART online", TIMEOUT);
        Self {
            line,
            socket,
            _knxd: knxd,
            _gateway: gateway,
            _dir: dir,
        }
    }
}

fn have_knxd() -> bool {
    require("knxd (Debian package knxd)", have("knxd"))
        && require("knxtool (Debian package knxd-tools)", have("knxtool"))
}

/// Issue 13: smart-meter values, interruption and grid-supporting control written on TP by
/// knxd reach the DLM, and the DLM's answer reaches a simulated charging point as Modbus
/// writes (KEBA P30: 5004 current in mA, 5014 enable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_values_on_tp_move_the_setpoint_at_the_charging_point() {
    use knx_echarge::sim::{self, SimHandle, SimModel, Vehicle};
    if !have_knxd() {
        return;
    }
    let started = Instant::now();
    let keba = SimHandle::new(SimModel::KebaP30);
    keba.plug_in(Vehicle::three_phase());
    let server = sim::serve_tcp(keba.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let tp = TpGateway::start(&tp_dlm_config(server.addr.unwrap().port()));
    let socket = tp.socket.as_path();

    // A light house load: 14 A at the meter before the car draws (the DLM commands nothing
    // before the meter's first value and 0 A to a point polled idle) leaves 18 A, room for
    // the charging point's maximum (16 A = 16000 mA in 5004).
    meter(socket, 14.0).await;
    registers_until(&keba, "full current", |(set, on)| {
        set == Some(16_000) && on != Some(0)
    })
    .await;
    // The house takes 24 A more: 44 A at a 35 A fuse less 3 A reserve. The DLM must cut the
    // charging point to what is left (below 16 A, at least the 6 A minimum or off).
    meter(socket, 44.0).await;
    registers_until(&keba, "setpoint cut by the DLM", |(set, on)| {
        on == Some(0) || set.is_some_and(|s| s < 16_000)
    })
    .await;
    let (set, on) = keba_registers(&keba);
    assert!(
        on == Some(0) || set.is_some_and(|s| (6_000..=10_000).contains(&s)),
        "{set:?} {on:?}"
    );
    // Back to the light load, then the interruption object of charging point 1 (1/0/5): the
    // box is disabled (5014 = 0) and does not offer current.
    meter(socket, 20.0).await;
    registers_until(&keba, "full current again", |(set, on)| {
        set == Some(16_000) && on != Some(0)
    })
    .await;
    write(socket, "groupswrite", &["1/0/5", "1"]).await;
    registers_until(&keba, "interruption", |(_, on)| on == Some(0)).await;
    assert_eq!(keba.state().offered(), knx_echarge::units::Current::ZERO);
    expect_answer(socket, "1/0/6", ": 01", "interruption state").await;
    write(socket, "groupswrite", &["1/0/5", "0"]).await;
    registers_until(&keba, "interruption lifted", |(_, on)| on == Some(1)).await;
    // Grid-supporting control (0/0/1): the charging points get the configured 6 A.
    write(socket, "groupswrite", &["0/0/1", "1"]).await;
    registers_until(&keba, "grid-supporting control", |(set, on)| {
        on == Some(0) || set.is_some_and(|s| s <= 6_000)
    })
    .await;
    expect_answer(socket, "0/0/2", ": 01", "grid-supporting control state").await;
    eprintln!(
        "meter_values_on_tp_move_the_setpoint_at_the_charging_point took {:?}",
        started.elapsed()
    );
}

/// The first transmissions (not the repetitions: nobody acknowledges these groups) from
/// one port, kept in order so that a test can look for telegrams whatever order the
/// gateway's priorities gave them.
struct Sent {
    monitor: tokio::sync::broadcast::Receiver<Monitored>,
    port: usize,
    seen: Vec<Monitored>,
}

impl Sent {
    /// The index of the first telegram at or after `from` to raw group `ga` with `data`.
    async fn find(&mut self, from: usize, ga: u16, data: &[u8]) -> usize {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let mut checked = from;
        loop {
            while let Some(m) = self.seen.get(checked) {
                if u16::from_be_bytes([m.frame[3], m.frame[4]]) == ga && payload(m) == data {
                    return checked;
                }
                checked += 1;
            }
            let m = tokio::time::timeout_at(deadline, self.monitor.recv())
                .await
                .unwrap_or_else(|_| panic!("no telegram to {ga:#06x} with {data:02x?}"))
                .expect("monitor open");
            if m.port == self.port && m.frame[0] & 0x80 != 0 && m.frame[0] & 0x20 != 0 {
                eprintln!("{m}");
                self.seen.push(m);
            }
        }
    }

    fn at(&self, i: usize) -> tokio::time::Instant {
        self.seen[i].at
    }
}

/// The data of a monitored group write (the 6 bits of a short one, else the bytes).
fn payload(m: &Monitored) -> Vec<u8> {
    let len = usize::from(m.frame[5] & 0x0F);
    if len == 1 {
        vec![m.frame[7] & 0x3F]
    } else {
        m.frame[8..7 + len].to_vec()
    }
}

/// Spec ch. 10, objects 82 and 83 of charging point 1 (an Alfen Eve simulator): the internal
/// temperature is sent as the "Send temperature values" parameter says (on change and every
/// `temperature_interval`), and the warning follows the configured threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temperature_objects_follow_their_send_mode_cycle_and_threshold() {
    use knx_echarge::sim::{self, SimHandle, SimModel};
    if !have_knxd() {
        return;
    }
    let alfen = SimHandle::new(SimModel::AlfenEve);
    alfen.lock().state.forced.temperature_c = Some(30.0);
    let server = sim::serve_tcp(alfen.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = server.addr.unwrap().port();
    let config = format!(
        "[knx]\nindividual_address = \"1.1.10\"\n[modbus]\npoll_interval = 300\n\
         [charging_point.1]\nenabled = true\nmodel = \"alfen-eve\"\nip = \"127.0.0.1\"\n\
         port = {port}\nsend_temperature = \"on-change-and-cyclic\"\n\
         temperature_interval = 10\ntemperature_warning = 40\n\
         [group_addresses]\n82 = [\"1/0/32\"]\n83 = [\"1/0/33\"]\n"
    );
    let tp = TpGateway::start(&config);
    let mut sent = Sent {
        monitor: tp.line.monitor(),
        port: 0,
        seen: Vec::new(),
    };
    let (temp, warn) = (0x0820, 0x0821);
    // 30 °C (DPT 9.001 0x0DDC); no warning (the object keeps its initial 0).
    let first = sent.find(0, temp, &[0x0D, 0xDC]).await;
    // 45 °C (0x1465): sent at once (on change), and the warning rises above 40 °C.
    alfen.lock().state.forced.temperature_c = Some(45.0);
    let changed = sent.find(first + 1, temp, &[0x14, 0x65]).await;
    assert!(sent.at(changed).duration_since(sent.at(first)) < Duration::from_secs(5));
    let warning = sent.find(first + 1, warn, &[1]).await;
    // Unchanged, it comes again with the cycle of 10 s that started with the first value
    // (the global cyclic sending is off).
    let cyclic = sent.find(changed + 1, temp, &[0x14, 0x65]).await;
    let after = sent.at(cyclic).duration_since(sent.at(first));
    assert!(
        (Duration::from_secs(8)..Duration::from_secs(13)).contains(&after),
        "{after:?}"
    );
    // Back below the threshold: the warning goes.
    alfen.lock().state.forced.temperature_c = Some(30.0);
    sent.find(warning + 1, warn, &[0]).await;
}

/// Every object of the five-charger example with the R flag and a group address:
/// (number, first group address, DPT).
fn readable_objects() -> Vec<(u64, String, String)> {
    let out = Command::new(support::gateway_bin())
        .args([
            "objects",
            "--config",
            "examples/five-chargers.toml",
            "--json",
        ])
        .current_dir(CRATE)
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .filter(|o| o["flags"].as_str().unwrap().contains('R'))
        .filter_map(|o| {
            let ga = o["group_addresses"]
                .as_array()?
                .first()?
                .as_str()?
                .to_owned();
            Some((
                o["number"].as_u64().unwrap(),
                ga,
                o["dpt"].as_str().unwrap().to_owned(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xknx_through_knxd_reads_every_readable_object_over_tp() {
    if !require("knxd (Debian package knxd)", have("knxd"))
        || !require("ip (iproute2)", have("ip"))
        || !require(
            "root (network namespaces)",
            sh(&["id", "-u"]).stdout.starts_with(b"0"),
        )
    {
        return;
    }
    let Some(python) = support::venv_python() else {
        require("xknx in .venv", false);
        return;
    };
    let started = Instant::now();
    let line = TpLine::start(2, LineOptions::default()).unwrap();
    let [gateway_port, knxd_port] = [&line.paths()[0], &line.paths()[1]];
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("knxtp", "kxp");
    let (ns_ip, host_ip) = (ns.ns_ip.to_string(), ns.host_ip.to_string());
    let knxd_log = dir.path().join("knxd.log");
    let _knxd = KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "knxd"])
            .args(["-e", "0.0.1", "-E", "0.0.2:8", "-D", "-T", "-S"])
            .args(["-I", &ns.inner, "-b"])
            .arg(format!("tpuart:{}", knxd_port.display()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&knxd_log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("knxd.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = dir.path().join("gateway.log");
    let _gateway = KillOnDrop(
        Command::new(support::gateway_bin())
            .args(["run", "--config", "examples/five-chargers.toml", "--knx"])
            .arg(format!("tpuart://{}", gateway_port.display()))
            .arg("--no-chargers")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .current_dir(CRATE)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    support::wait_for_log(&log, "TP-UART online", TIMEOUT);
    let script = Path::new(CRATE).join("tests/interop/xknx_peer.py");
    // knxd's server needs a moment after its TP-UART came up.
    let mut peer = None;
    for _ in 0..20 {
        let mut p = support::LinePeer::start(
            "xknx",
            &python,
            &[
                script.to_str().unwrap(),
                "tunnel",
                "--gateway",
                &ns_ip,
                "--port",
                "3671",
                "--local-ip",
                &host_ip,
            ],
        );
        let ready = p.expect_where(
            "READY or ERR",
            |l| l.starts_with("READY") || l.starts_with("ERR"),
            TIMEOUT,
        );
        if ready.starts_with("READY") {
            peer = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut peer = peer.unwrap_or_else(|| {
        panic!(
            "xknx cannot tunnel to knxd: {}",
            std::fs::read_to_string(&knxd_log).unwrap_or_default()
        )
    });
    let objects = readable_objects();
    assert!(objects.len() > 100, "{} readable objects", objects.len());
    let mut silent = Vec::new();
    for (number, ga, dpt) in &objects {
        peer.send(&format!("read {ga} {dpt}"));
        let answer = peer.expect_where(
            "VALUE/NOVALUE",
            |l| {
                (l.starts_with("VALUE ") || l.starts_with("NOVALUE "))
                    && l.split_whitespace().nth(1) == Some(ga.as_str())
            },
            TIMEOUT,
        );
        // VALUE <ga> <payload> <json>: decoded with the object's DPT by xknx.
        let decoded = answer.split_whitespace().nth(3);
        if !answer.starts_with("VALUE ") || decoded.is_none() {
            silent.push(format!("{number} {ga} {dpt}: {answer}"));
        }
    }
    peer.send("quit");
    assert!(
        silent.is_empty(),
        "objects silent or undecodable over TP: {silent:#?}"
    );
    eprintln!(
        "xknx read {} objects through knxd over TP in {:?}",
        objects.len(),
        started.elapsed()
    );
}
