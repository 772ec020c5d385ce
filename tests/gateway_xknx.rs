//! The running gateway binary against xknx (the KNX library behind Home Assistant) over real
//! UDP on loopback: xknx tunnels to the gateway's built-in KNXnet/IP server and acts as a
//! visualisation and push button (`tests/interop/gateway_scenario.py`).
//!
//! Another sends the malformed datagrams of `knx_link::server_drops_malformed_datagrams_and_
//! keeps_serving` to the binary's built-in server: one warning each in its log, and an xknx
//! tunnel still gets its reads answered afterwards.
//!
//! A DPT sweep runs `knx-echarge demo` (simulated charging points) and reads R objects of
//! every DPT the demo fills (1.x, 5.010, 9.001, 10.001, 13.010, 13.100, 14.019, 14.056,
//! 16.001) with xknx: each answer, decoded by xknx's own transcoder, must be a value the
//! gateway's core gave that object (its debug log), texts cut to DPT 16's 14 characters.
//!
//! A third runs xknx's `GatewayScanner`: SEARCH_REQUESTs to the KNXnet/IP discovery
//! address 224.0.23.12:3671 (multicast on loopback) must find the gateway.
//!
//! Needs `.venv` with xknx (installed by `tests/run`, which also sets KNX_ECHARGE_INTEROP=1:
//! then a missing peer is a failure, not a skip).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{KillOnDrop, free_udp, wait_for_log};

/// Starts the gateway binary with the five-charger example, its built-in server on
/// 127.0.0.1:`port`, no charging-point polling, and its log (RUST_LOG=info) in `log`.
fn start_gateway(port: u16, data: &Path, log: &Path) -> KillOnDrop {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stderr = std::fs::File::create(log).unwrap();
    let gateway = KillOnDrop(
        Command::new(support::gateway_bin())
            .args([
                "run",
                "--config",
                "examples/five-chargers.toml",
                "--knx",
                &format!("server://127.0.0.1:{port}"),
                "--no-chargers",
                "--data-dir",
            ])
            .arg(data)
            .current_dir(root)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    wait_for_log(log, "KNX link open", Duration::from_secs(20));
    gateway
}

#[test]
fn xknx_gateway_scanner_finds_the_running_gateway() {
    let Some(python) = support::venv_python() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = free_udp().port();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("gateway.log");
    let _gateway = start_gateway(port, &data.path().join("data"), &log);
    let text = wait_for_log(&log, "KNXnet/IP discovery", Duration::from_secs(5));
    assert!(
        text.contains("answering SEARCH_REQUESTs sent to the multicast group"),
        "discovery group not joined on loopback:\n{text}"
    );
    let out = Command::new(python)
        .arg(root.join("tests/interop/gateway_discovery.py"))
        .arg("127.0.0.1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scanner failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    // Other gateways of concurrent tests may answer too: ours is the one on our port.
    let ours: Vec<&Value> = found
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["port"] == port)
        .collect();
    assert_eq!(
        ours,
        [&json!({
            "ip": "127.0.0.1",
            "port": port,
            "name": "knx-echarge",
            "individual_address": "1.1.10",
            "tunnelling": true,
            "routing": false,
        })],
        "all answers: {found}"
    );
}

#[test]
fn xknx_drives_the_running_gateway() {
    let Some(python) = support::venv_python() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = free_udp().port();
    let data = tempfile::tempdir().unwrap();
    let _gateway = KillOnDrop(
        Command::new(support::gateway_bin())
            .args([
                "run",
                "--config",
                "examples/five-chargers.toml",
                "--knx",
                &format!("server://127.0.0.1:{port}"),
                // The example's charging points are on 192.168.1.x: never poll them from tests.
                "--no-chargers",
                "--data-dir",
            ])
            .arg(data.path())
            .current_dir(root)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Give the gateway time to bind; the scenario's connect also retries.
    std::thread::sleep(Duration::from_millis(500));
    let out = Command::new(python)
        .arg(root.join("tests/interop/gateway_scenario.py"))
        .arg(port.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scenario failed: {stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(seen["fault"], 0, "{seen}");
    assert_eq!(seen["last_fault"], "No error");
    assert_eq!(seen["cp2_last_fault"], "No error");
    assert_eq!(
        seen["interruption_state_sent"], 1,
        "T object sends on change"
    );
    assert_eq!(seen["interruption_state_read"], 1, "R object answers reads");
    assert_eq!(
        seen["all_interrupted"],
        json!({"1": 1, "2": 1, "3": 1, "4": 1, "5": 1})
    );
    assert_eq!(
        (
            seen["grid_state_on"].clone(),
            seen["grid_state_off"].clone()
        ),
        (json!(1), json!(0))
    );
    assert_eq!(seen["still_serving"], "No error");
    // Before any value an R object answers with its DPT's initial value (0.0 A).
    assert_eq!(seen["setpoint_state_before_any_value"], json!(0.0));
    // The tunnel got its own individual address, next to the gateway's 1.1.10.
    assert_eq!(seen["address"], "1.1.11");
}

/// Warning lines about a dropped datagram in the gateway's log.
fn dropped_warnings(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("dropped"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_running_gateway_warns_about_each_malformed_datagram_and_keeps_serving() {
    use std::net::UdpSocket;

    let Some(python) = support::venv_python() else {
        return;
    };
    let port = free_udp().port();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("gateway.log");
    let _gateway = start_gateway(port, &data.path().join("data"), &log);
    let (mut peer, address) = support::xknx_tunnel(&python, port);
    assert_eq!(address, "1.1.11", "the first tunnel of a fresh gateway");
    // The only tunnel of a fresh server has channel 1.
    let channel = 1u8;
    let cases = support::malformed_datagrams(channel);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let before = dropped_warnings(&log).len();
    for (n, (what, datagram)) in cases.iter().enumerate() {
        sock.send_to(datagram, ("127.0.0.1", port)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while dropped_warnings(&log).len() < before + n + 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "no warning for {what}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{what}: {}", dropped_warnings(&log)[before + n]);
    }
    // Nothing was answered to the garbage, and each datagram gave exactly one warning.
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 512];
    let answer = sock.recv_from(&mut buf);
    assert!(
        answer.is_err(),
        "malformed input must not be answered: {answer:?}"
    );
    assert_eq!(dropped_warnings(&log).len(), before + cases.len());
    // The gateway still serves the xknx tunnel: a read of the last-fault object (R, DPT 16)
    // is answered, and a write from xknx is taken (the interruption state follows).
    peer.send("read 0/0/9 16.001");
    let line = peer.expect("VALUE 0/0/9", Duration::from_secs(10));
    assert!(line.ends_with("\"No error\""), "{line}");
    peer.send("write 2/0/5 bin:1");
    peer.expect("SENT 2/0/5", Duration::from_secs(10));
    peer.send("read 2/0/6");
    assert_eq!(
        peer.expect("VALUE 2/0/6", Duration::from_secs(10)),
        "VALUE 2/0/6 bin:1"
    );
    assert!(peer.is_running());
    peer.send("quit");
}

/// The values the gateway's core gave object `object`, as its debug log shows them
/// (`object value object=N value=…`, Rust debug format), oldest first.
fn logged_values(log: &str, object: u16) -> Vec<String> {
    let needle = format!("object value object={object} value=");
    log.lines()
        .filter_map(|l| l.split_once(&needle).map(|(_, v)| v.trim().to_owned()))
        .collect()
}

/// The number inside `Kind(Kind(n))` or `Kind(n)`.
fn inner_number(text: &str) -> Option<f64> {
    text.trim_end_matches(')')
        .rsplit('(')
        .next()
        .and_then(|n| n.parse().ok())
}

/// Whether xknx's decoding `x` (JSON) is the gateway value `logged` (debug format) as the
/// object's DPT carries it.
fn same_value(logged: &str, x: &Value) -> bool {
    let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * a.abs().max(1.0);
    let kind = logged.split('(').next().unwrap_or_default();
    match kind {
        "Bool" => {
            let ours = logged == "Bool(true)";
            let theirs = match x {
                Value::Bool(b) => Some(*b),
                Value::String(s) => match s.as_str() {
                    "ON" | "TRUE" | "ACTIVE" | "ENABLE" | "START" => Some(true),
                    "OFF" | "FALSE" | "INACTIVE" | "DISABLE" | "STOP" => Some(false),
                    _ => None,
                },
                _ => None,
            };
            theirs == Some(ours)
        }
        "U8" | "Seconds" => inner_number(logged) == x.as_f64(),
        // mWh in the core, whole Wh on the bus (DPT 13.010).
        "Energy" => match (inner_number(logged), x.as_f64()) {
            (Some(milli), Some(wh)) => (milli / 1000.0 - wh).abs() < 1.0,
            _ => false,
        },
        // mA and mW in the core, A and W (float32) on the bus.
        "Current" | "Power" => match (inner_number(logged), x.as_f64()) {
            (Some(milli), Some(v)) => close(milli / 1000.0, v, 1e-6),
            _ => false,
        },
        // Centi-degrees in the core; DPT 9 keeps 0.01 K steps at these magnitudes.
        "Temperature" => match (inner_number(logged), x.as_f64()) {
            (Some(centi), Some(v)) => (centi / 100.0 - v).abs() <= 0.011,
            _ => false,
        },
        "Text" => {
            let ours: String = logged
                .trim_start_matches("Text(\"")
                .trim_end_matches("\")")
                .chars()
                .take(14)
                .collect();
            x.as_str() == Some(ours.as_str())
        }
        "TimeOfDay" => {
            // TimeOfDay(TimeOfDay { weekday: Some(Saturday), hour: 18, minute: 56, second: 44 })
            // vs "KNXTime(hour=18, minutes=56, seconds=44, day=<KNXDay.SATURDAY: 6>)".
            let field = |name: &str| {
                logged
                    .split(&format!("{name}: "))
                    .nth(1)
                    .and_then(|r| r.split([',', ' ', '}']).next())
                    .map(str::to_owned)
            };
            let (Some(h), Some(m), Some(s)) = (field("hour"), field("minute"), field("second"))
            else {
                return false;
            };
            let day = logged
                .split("weekday: Some(")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .map_or("NO_DAY".to_owned(), str::to_uppercase);
            x.as_str().is_some_and(|t| {
                t.starts_with(&format!(
                    "KNXTime(hour={h}, minutes={m}, seconds={s}, day=<KNXDay.{day}:"
                ))
            })
        }
        _ => false,
    }
}

#[test]
fn demo_answers_reads_of_r_objects_of_every_dpt_as_xknx_decodes_them() {
    let Some(python) = support::venv_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("demo.log");
    let _demo = KillOnDrop(
        Command::new(support::gateway_bin())
            .args([
                "demo",
                "--knx-server",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .current_dir(dir.path())
            .env("RUST_LOG", "info,knx_echarge::gateway::shell=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let text = wait_for_log(&log, "first poll cycle complete", Duration::from_secs(60));
    let port: u16 = text
        .lines()
        .find(|l| l.contains("KNX link open"))
        .and_then(|l| l.split("local=127.0.0.1:").nth(1))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no KNX server port in the log:\n{text}"));
    // Let every simulated charging point be polled once more (vehicles, times, temperatures).
    std::thread::sleep(Duration::from_secs(3));
    let (mut peer, _) = support::xknx_tunnel(&python, port);
    // (group address, DPT, object) per the example configuration the demo runs.
    let sweep: &[(&str, &str, u16)] = &[
        ("0/0/2", "1.011", 2),
        ("0/0/8", "1.002", 8),
        ("0/0/9", "16.001", 9),
        ("1/0/0", "5.010", 50),
        ("1/0/1", "1.002", 51),
        ("1/0/2", "1.011", 52),
        ("1/0/12", "14.019", 62),
        ("1/0/16", "14.056", 66),
        ("1/0/20", "13.010", 70),
        ("1/0/25", "13.010", 75),
        ("1/0/26", "10.001", 76),
        ("1/0/28", "13.100", 78),
        ("1/0/30", "16.001", 80),
        ("1/0/31", "16.001", 81),
        ("1/0/34", "16.001", 84),
        ("2/0/30", "16.001", 130),
        ("3/0/12", "14.019", 162),
        ("3/0/16", "14.056", 166),
        ("3/0/31", "16.001", 181),
        ("4/0/32", "9.001", 232),
        ("5/0/31", "16.001", 281),
    ];
    let mut checked = std::collections::BTreeSet::new();
    for &(ga, dpt, object) in sweep {
        peer.send(&format!("read {ga} {dpt}"));
        let value_prefix = format!("VALUE {ga} ");
        let none = format!("NOVALUE {ga}");
        let line = peer.expect_where(
            &value_prefix,
            |l| l.starts_with(&value_prefix) || l == none,
            Duration::from_secs(15),
        );
        let log_text = std::fs::read_to_string(&log).unwrap();
        let logged = logged_values(&log_text, object);
        assert!(line != none, "{ga} (object {object}) did not answer");
        if logged.is_empty() {
            // No value yet: the DPT's initial value, every bit zero.
            let payload = line.split_whitespace().nth(2).unwrap_or_default();
            assert!(
                payload == "bin:0"
                    || payload
                        .strip_prefix("arr:")
                        .is_some_and(|hex| hex.chars().all(|c| c == '0')),
                "{ga} (object {object}) has no value but answered {line}"
            );
            eprintln!("{ga} {dpt}: no value yet, answered the initial value");
            continue;
        }
        let json = line
            .splitn(4, ' ')
            .nth(3)
            .unwrap_or_else(|| panic!("{line}"));
        let decoded: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            logged.iter().any(|v| same_value(v, &decoded)),
            "{ga} (object {object}, DPT {dpt}): xknx decoded {decoded} from {line}, the gateway had {logged:?}"
        );
        eprintln!("{ga} {dpt}: {decoded} ok");
        checked.insert(dpt);
    }
    // The demo fills all of these; a sweep that checked only a few DPTs proves little.
    for dpt in [
        "1.002", "1.011", "5.010", "13.010", "14.019", "14.056", "16.001",
    ] {
        assert!(checked.contains(dpt), "no value of DPT {dpt} was checked");
    }
    peer.send("quit");
}
