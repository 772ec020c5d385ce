//! The running gateway binary against xknx (the KNX library behind Home Assistant) over real
//! UDP on loopback: xknx tunnels to the gateway's built-in KNXnet/IP server and acts as a
//! visualisation and push button (`tests/interop/gateway_scenario.py`).
//!
//! A second test runs xknx's `GatewayScanner`: SEARCH_REQUESTs to the KNXnet/IP discovery
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
        Command::new(env!("CARGO_BIN_EXE_knx-echarge"))
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
        Command::new(env!("CARGO_BIN_EXE_knx-echarge"))
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
    assert_eq!(seen["setpoint_state_before_any_value"], Value::Null);
    // The tunnel got its own individual address, next to the gateway's 1.1.10.
    assert_eq!(seen["address"], "1.1.11");
}
