//! The ETS stand-in (`tests/interop/ets_standin.py`, xknx 4's management procedures) commissions
//! the running gateway binary through its built-in KNXnet/IP tunnelling server, as ETS does
//! an MV-07B0 device (`docs/device-management.md`): finds it in programming mode, writes its
//! individual address, connects, reads the device descriptor and properties, authorizes, and
//! runs a full download (`all`), a parameters-only (`par`) and a links-only (`grp`) download.
//! Checked from outside: the stand-in's answers, and `knx-echarge export-config` on the data
//! directory, which must give back exactly the configuration downloaded.
//!
//! The tables the stand-in downloads are what ETS would write for a configuration (group
//! address table, association table, parameter memory of `etsdb/parameters.toml`); without a
//! .knxprod they are produced from a `Config` here.
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

use knx_echarge::config::{Config, file};
use knx_echarge::knx::{GroupAddress, IndividualAddress};
use knx_echarge::units::GoNumber;
use serde_json::{Value, json};
use support::{KillOnDrop, free_tcp, free_udp, wait_for_log};

fn ga(text: &str) -> GroupAddress {
    text.parse().unwrap()
}

/// The tables of `config` as the stand-in sends them: object index → hex, plus `app_id`,
/// plus the group checks the stand-in runs right after the download.
fn tables_with_checks(config: &Config, checks: &Value) -> Value {
    let mut t = tables(config);
    t["checks"] = checks.clone();
    t
}

/// A group check: write `value` to `write`, read `read`, expect `expect`.
fn check(write: &str, value: u8, read: &str, expect: u8) -> Value {
    json!({"write": write, "value": value, "read": read, "expect": expect})
}

/// The tables of `config` as the stand-in sends them: object index → hex, plus `app_id`.
fn tables(config: &Config) -> Value {
    let state = config.to_device_state().unwrap();
    let mut map = serde_json::Map::new();
    for i in 1..=4 {
        let bytes = state.memory.tables[i].loaded().unwrap();
        map.insert(i.to_string(), Value::String(hex(bytes)));
    }
    map.insert("app_id".into(), Value::String(hex(&state.application_id)));
    Value::Object(map)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[test]
fn ets_stand_in_commissions_the_gateway() {
    let Some(python) = support::venv_python() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let new_address = IndividualAddress::new(1, 1, 20).unwrap();
    let mut base = file::load(&root.join("examples/five-chargers.toml")).unwrap();
    base.knx.link = None;
    base.knx.individual_address = new_address;
    // all: the example plus a second listening address on object 1 and a new link on 51.
    let mut all = base.clone();
    all.group_addresses
        .entry(GoNumber(1))
        .or_default()
        .push(ga("7/0/1"));
    all.group_addresses.insert(GoNumber(51), vec![ga("7/1/51")]);
    // par: one parameter changed, links as before.
    let mut par = all.clone();
    par.knx.max_telegram_rate = 17;
    // grp: links changed, parameters as after par.
    let mut grp = par.clone();
    grp.group_addresses.remove(&GoNumber(51));
    grp.group_addresses
        .insert(GoNumber(2), vec![ga("7/2/2"), ga("0/0/2")]);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let downloads = dir.path().join("downloads.json");
    std::fs::write(
        &downloads,
        json!({
            // Object 1 (grid-supporting control) newly listens on 7/0/1; object 2 (its state)
            // answers on 0/0/2.
            "all": tables_with_checks(&all, &json!([check("7/0/1", 1, "0/0/2", 1)])),
            "par": tables_with_checks(&par, &json!([check("0/0/1", 0, "0/0/2", 0)])),
            // Object 2 newly sends on 7/2/2.
            "grp": tables_with_checks(&grp, &json!([check("7/0/1", 1, "7/2/2", 1)])),
        })
        .to_string(),
    )
    .unwrap();
    let port = free_udp().port();
    let http = free_tcp();
    let log = dir.path().join("gateway.log");
    let mut gateway = KillOnDrop(
        Command::new(support::gateway_bin())
            .args([
                "run",
                "--config",
                "examples/five-chargers.toml",
                "--knx",
                &format!("server://127.0.0.1:{port}"),
                "--no-chargers",
                "--http",
                &http.to_string(),
                "--data-dir",
            ])
            .arg(&data)
            .current_dir(root)
            .env("RUST_LOG", "info,knx_echarge::gateway::shell=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for_log(&log, "KNX link open", Duration::from_secs(20));
    let text = wait_for_log(&log, "device website on", Duration::from_secs(20));
    let password = text
        .lines()
        .find_map(|l| {
            l.split_once("at first start): ")
                .map(|(_, p)| p.trim().to_owned())
        })
        .expect("initial password on the console");
    let pid = gateway.0.id();

    let out = Command::new(python)
        .arg(root.join("tests/interop/ets_standin.py"))
        .args([&port.to_string(), "1.1.10", "1.1.20"])
        .arg(&downloads)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stand-in failed:\n{stdout}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let steps: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {stdout}"))
            .clone()
    };
    assert_eq!(step("progmode_before")["devices"], json!([]));
    assert_eq!(step("progmode")["devices"], json!(["1.1.10"]));
    assert_eq!(step("progmode_after")["devices"], json!([]));
    let device = step("device");
    assert_eq!(device["mask"], "07b0");
    assert_eq!(device["serial"], "00fa00000001");
    assert_eq!(device["max_apdu"], 15);
    assert_eq!(device["level"], 0);
    assert_eq!(
        steps.iter().filter(|s| s["step"] == "download").count(),
        3,
        "{stdout}"
    );
    assert_eq!(step("done")["step"], "done");
    // Each download moved the newly linked objects at once (the stand-in's group checks).
    let checks: Vec<&Value> = steps
        .iter()
        .filter(|s| s["step"] == "group_check")
        .collect();
    assert_eq!(checks.len(), 3, "{stdout}");

    // Applied live: the same process, and its website shows the downloaded configuration.
    assert!(
        gateway.0.try_wait().unwrap().is_none(),
        "the gateway restarted or died"
    );
    assert_eq!(gateway.0.id(), pid);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("configuration applied live").count(),
        3,
        "{text}"
    );
    let started = concat!("knx-echarge ", env!("CARGO_PKG_VERSION"), " starting");
    assert_eq!(text.matches(started).count(), 1, "{text}");
    let cookie = support::login(http, &password).expect("login");
    let status = support::get_json(http, "/api/v1/status", &cookie).unwrap();
    assert_eq!(status["device"]["individual_address"], "1.1.20");
    let objects = support::get_json(http, "/api/v1/objects", &cookie).unwrap();
    let object = |n: u16| {
        objects
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["number"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("object {n} in {objects}"))
    };
    assert_eq!(object(2)["group_addresses"], json!(["7/2/2", "0/0/2"]));
    assert_eq!(object(2)["value"], json!({"type": "bool", "value": true}));
    assert_eq!(object(1)["group_addresses"], json!(["0/0/1", "7/0/1"]));
    assert_eq!(object(51)["group_addresses"], json!([]));

    // From outside: what the data directory now holds is exactly the last state downloaded.
    let export = Command::new(support::gateway_bin())
        .args(["export-config", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let exported = file::parse(&String::from_utf8_lossy(&export.stdout), "export").unwrap();
    assert_eq!(exported, grp);
    assert_eq!(exported.group_addresses[&GoNumber(2)][0], ga("7/2/2"));
    assert_eq!(exported.knx.max_telegram_rate, 17);
}
