//! The running gateway binary against xknx (the KNX library behind Home Assistant) over real
//! UDP on loopback: xknx tunnels to the gateway's built-in KNXnet/IP server and acts as a
//! visualisation and push button (`tests/interop/gateway_scenario.py`).
//!
//! Another sends the malformed datagrams of `knx_link::server_drops_malformed_datagrams_and_
//! keeps_serving` to the binary's built-in server: one warning each in its log, and an xknx
//! tunnel still gets its reads answered afterwards.
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
use support::{KillOnDrop, LinePeer, free_udp, wait_for_log};

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

/// The xknx tunnel peer of `tests/interop/xknx_peer.py`, connected to the gateway on `port`.
fn xknx_peer(python: &Path, port: u16) -> LinePeer {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/xknx_peer.py");
    let port = port.to_string();
    let mut peer = LinePeer::start(
        "xknx",
        python,
        &[
            script.to_str().unwrap(),
            "tunnel",
            "--gateway",
            "127.0.0.1",
            "--port",
            &port,
            "--local-ip",
            "127.0.0.1",
        ],
    );
    let ready = peer.expect("READY", Duration::from_secs(20));
    assert_eq!(ready, "READY 1.1.11", "the first tunnel of a fresh gateway");
    peer
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
    use knx_echarge::knx::wire::apdu::{Apdu, Payload, Tpdu};
    use knx_echarge::knx::wire::cemi::{Cemi, Destination, LData, LDataService};
    use knx_echarge::knx::wire::knxip::{Hpai, KnxIpFrame};
    use knx_echarge::knx::{GroupAddress, IndividualAddress};
    use std::net::{Ipv4Addr, UdpSocket};

    let Some(python) = support::venv_python() else {
        return;
    };
    let port = free_udp().port();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("gateway.log");
    let _gateway = start_gateway(port, &data.path().join("data"), &log);
    let mut peer = xknx_peer(&python, port);
    // The only tunnel of a fresh server has channel 1.
    let channel = 1u8;
    let write = |ga: &str| {
        Cemi::LData(LData::new(
            LDataService::Req,
            IndividualAddress::from_raw(0),
            Destination::Group(ga.parse::<GroupAddress>().unwrap()),
            Tpdu::Data(Apdu::GroupValueWrite(Payload::Short(1))),
        ))
    };
    // The datagrams of knx_link::server_drops_malformed_datagrams_and_keeps_serving.
    let heartbeat = KnxIpFrame::ConnectionStateRequest {
        channel_id: channel,
        control_endpoint: Hpai::udp(Ipv4Addr::LOCALHOST, 9),
    }
    .to_bytes()
    .unwrap();
    let mut wrong_total = heartbeat.clone();
    wrong_total[5] += 3;
    let bad_channel = KnxIpFrame::TunnellingRequest {
        channel_id: 0xEE,
        sequence: 0,
        cemi: write("5/5/5"),
    }
    .to_bytes()
    .unwrap();
    let mut garbage_cemi = KnxIpFrame::TunnellingRequest {
        channel_id: channel,
        sequence: 0,
        cemi: write("5/5/6"),
    }
    .to_bytes()
    .unwrap();
    garbage_cemi[11] = 0xFF; // additional-info length far past the end
    let mut bad_npdu_len = garbage_cemi.clone();
    bad_npdu_len[11] = 0x00;
    bad_npdu_len[18] = 0x09; // NPDU length 9, one byte present
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated header", vec![0x06, 0x10, 0x04]),
        ("wrong total length", wrong_total),
        (
            "unknown service type",
            vec![0x06, 0x10, 0x07, 0x77, 0x00, 0x08, 0xDE, 0xAD],
        ),
        ("TUNNELLING_REQUEST with a bad channel", bad_channel),
        ("garbage cEMI", garbage_cemi),
        ("cEMI with a wrong NPDU length", bad_npdu_len),
        (
            "wrong protocol version",
            vec![0x06, 0x20, 0x02, 0x03, 0x00, 0x06],
        ),
        ("noise", (0u8..64).map(|i| i.wrapping_mul(37)).collect()),
    ];
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
