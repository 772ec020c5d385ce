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
    let port = free_udp().port();
    commission(
        &python,
        &format!("server://127.0.0.1:{port}"),
        "KNX link open",
        port,
        &[],
    );
}

/// The whole commissioning: the gateway binary on the link `knx` (ready once `ready` is
/// logged), the stand-in tunnelling to the KNXnet/IP server on `port` (`env` says where: the
/// gateway's own server on loopback, or knxd), then the
/// checks from outside.
fn commission(python: &Path, knx: &str, ready: &str, port: u16, env: &[(&str, String)]) {
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
    // par: parameters changed (the IP address among them), links as before.
    let mut par = all.clone();
    par.knx.max_telegram_rate = 17;
    par.ip.address = std::net::Ipv4Addr::new(192, 168, 1, 11);
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
    let http = free_tcp();
    let log = dir.path().join("gateway.log");
    let mut gateway = KillOnDrop(
        Command::new(support::gateway_bin())
            .args([
                "run",
                "--config",
                "examples/five-chargers.toml",
                "--knx",
                knx,
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
    wait_for_log(&log, ready, Duration::from_secs(30));
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
        .envs(env.iter().map(|(k, v)| (k, v)))
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
    // The IP address of `par` is stored, not applied while running: logged once (`grp`
    // keeps it).
    assert_eq!(
        text.matches(
            "the new configuration changes the IP settings; they take effect at the next start"
        )
        .count(),
        1,
        "{text}"
    );
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
    assert_eq!(
        exported.ip.address,
        std::net::Ipv4Addr::new(192, 168, 1, 11)
    );
}

/// The gateway binary on the data directory `data` (no `--config`: what ETS downloaded or
/// `import-config` stored), its tunnelling server on `port`.
fn gateway_on(root: &Path, data: &Path, port: u16, log: &Path) -> KillOnDrop {
    let gateway = KillOnDrop(
        Command::new(support::gateway_bin())
            .args([
                "run",
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
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for_log(log, "KNX link open", Duration::from_secs(20));
    gateway
}

/// `import-config FILE` into `data`.
fn import(root: &Path, file: &Path, data: &Path) {
    let out = Command::new(support::gateway_bin())
        .arg("import-config")
        .arg(file)
        .arg("--data-dir")
        .arg(data)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `export-config` of `data`: the configuration TOML, or `None` when nothing is loaded.
fn export(data: &Path) -> Option<Config> {
    let out = Command::new(support::gateway_bin())
        .args(["export-config", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| file::parse(&String::from_utf8_lossy(&out.stdout), "export").unwrap())
}

fn steps_of(out: &std::process::Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_interrupted_download_leaves_the_previous_configuration_running() {
    let Some(python) = support::venv_python() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("examples/five-chargers.toml");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    import(root, &example, &data);
    let stored = std::fs::read(data.join("device.json")).unwrap();
    // The download that is cut short would link object 1 to 7/0/1 as well.
    let mut next = file::load(&example).unwrap();
    next.group_addresses
        .entry(GoNumber(1))
        .or_default()
        .push(ga("7/0/1"));
    let tables_file = dir.path().join("tables.json");
    // Checked afterwards: the previous links work (0/0/1 moves object 2), the new one does not.
    let checks = json!([
        check("0/0/1", 1, "0/0/2", 1),
        check("7/0/1", 0, "0/0/2", 1),
        check("0/0/1", 0, "0/0/2", 0),
    ]);
    std::fs::write(&tables_file, tables_with_checks(&next, &checks).to_string()).unwrap();
    let script = root.join("tests/interop/ets_interrupt.py");
    let tables_arg = tables_file.to_str().unwrap();
    let port = free_udp().port();
    let log = dir.path().join("gateway.log");
    let port_arg = port.to_string();
    let args = |mode: &'static str| {
        vec![
            script.to_str().unwrap().to_owned(),
            port_arg.clone(),
            "1.1.10".to_owned(),
            mode.to_owned(),
            tables_arg.to_owned(),
        ]
    };

    // 1. T_Disconnect between Load and LoadCompleted.
    let mut gateway = gateway_on(root, &data, port, &log);
    let a = args("partial");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut standin = support::LinePeer::start("ets", &python, &a);
    standin.expect("{\"step\": \"partial\"", Duration::from_secs(30));
    standin.send("go");
    standin.expect("{\"step\": \"disconnected\"", Duration::from_secs(30));
    let line = standin.expect("{\"step\": \"done\"", Duration::from_secs(30));
    assert!(line.contains("done"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("applied live"), "{text}");
    assert_eq!(std::fs::read(data.join("device.json")).unwrap(), stored);

    // 2. kill -9 of the gateway in the middle of a download.
    let mut standin = support::LinePeer::start("ets", &python, &a);
    standin.expect("{\"step\": \"partial\"", Duration::from_secs(30));
    gateway.0.kill().unwrap();
    gateway.0.wait().unwrap();
    drop(standin);
    assert_eq!(std::fs::read(data.join("device.json")).unwrap(), stored);
    let log2 = dir.path().join("gateway2.log");
    let _gateway = gateway_on(root, &data, port, &log2);
    let c = args("check");
    let out = Command::new(&python).args(&c).output().unwrap();
    let steps = steps_of(&out);
    assert_eq!(
        steps.iter().filter(|s| s["step"] == "group_check").count(),
        3
    );
    assert_eq!(export(&data), Some(file::load(&example).unwrap()));
}

#[test]
fn master_reset_erase_codes_do_what_they_say() {
    let Some(python) = support::venv_python() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("examples/five-chargers.toml");
    let imported = file::load(&example).unwrap();
    let script = root.join("tests/interop/ets_interrupt.py");
    // Before and after each reset: does 0/0/1 still move object 2 (answered on 0/0/2)?
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe.json");
    std::fs::write(
        &probe,
        json!({"checks": [check("0/0/1", 1, "0/0/2", 1)]}).to_string(),
    )
    .unwrap();
    let silent = dir.path().join("silent.json");
    std::fs::write(
        &silent,
        json!({"checks": [{"write": "0/0/1", "value": 1, "read": "0/0/2", "expect": null}]})
            .to_string(),
    )
    .unwrap();
    let unconfigured = IndividualAddress::new(15, 15, 255).unwrap();
    for code in 1u8..=8 {
        let data = dir.path().join(format!("data{code}"));
        import(root, &example, &data);
        let port = free_udp().port();
        let log = dir.path().join(format!("gateway{code}.log"));
        let _gateway = gateway_on(root, &data, port, &log);
        let run = |args: &[&str]| {
            let out = Command::new(&python)
                .arg(&script)
                .arg(port.to_string())
                .args(args)
                .output()
                .unwrap();
            steps_of(&out)
        };
        let steps = run(&["1.1.10", "reset", &code.to_string()]);
        let reset = steps.iter().find(|s| s["step"] == "reset").unwrap().clone();
        let text = std::fs::read_to_string(&log).unwrap();
        let exported = export(&data);
        // What still answers on the bus, from the gateway's address after the reset.
        let links_work = |expect_links: bool| {
            let file = if expect_links { &probe } else { &silent };
            run(&["0.0.0", "check", file.to_str().unwrap()]);
        };
        match code {
            1 => {
                assert_eq!(reset["error"], 0, "{reset}");
                assert_eq!(exported, Some(imported.clone()));
                links_work(true);
            }
            2 | 7 => {
                assert_eq!(reset["error"], 0, "{reset}");
                assert_eq!(exported, None, "factory reset: nothing loaded");
                assert!(text.contains("configured=false"), "{text}");
                links_work(false);
                let state: Value =
                    serde_json::from_slice(&std::fs::read(data.join("device.json")).unwrap())
                        .unwrap();
                let address = state["address"].as_str().map(str::to_owned);
                let expected = if code == 2 {
                    unconfigured
                } else {
                    imported.knx.individual_address
                };
                assert_eq!(address, Some(expected.to_string()), "{state}");
            }
            3 => {
                assert_eq!(reset["error"], 0, "{reset}");
                let mut expected = imported.clone();
                expected.knx.individual_address = unconfigured;
                assert_eq!(exported, Some(expected));
                links_work(true);
            }
            4 | 5 => {
                assert_eq!(reset["error"], 0, "{reset}");
                assert_eq!(exported, None, "application unloaded");
                assert!(text.contains("configured=false"), "{text}");
                links_work(false);
            }
            6 => {
                assert_eq!(reset["error"], 0, "{reset}");
                let mut expected = imported.clone();
                expected.group_addresses.clear();
                assert_eq!(exported, Some(expected));
                links_work(false);
            }
            _ => {
                assert_eq!(reset["error"], "refused", "unsupported erase code: {reset}");
                assert_eq!(exported, Some(imported.clone()));
                links_work(true);
            }
        }
    }
}

/// Fails under tests/run (`KNX_ECHARGE_INTEROP=1`), else prints a loud SKIP; false = stop.
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

/// The same commissioning over KNX/TP: the gateway's TP-UART link on one port of the
/// emulated line (`knx_echarge::tpline`), knxd as the KNX IP interface on the other (its
/// tunnelling server in a network namespace), the stand-in tunnelling to knxd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ets_stand_in_commissions_the_gateway_over_tp() {
    use knx_echarge::tpline::{LineOptions, TpLine};
    use support::netns::{Netns, sh};
    let have = |cmd: &str| {
        sh(&["sh", "-c", &format!("command -v {cmd}")])
            .status
            .success()
    };
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
    let line = TpLine::start(2, LineOptions::default()).unwrap();
    let [gateway_port, knxd_port] = [&line.paths()[0], &line.paths()[1]];
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("knxets", "kxe");
    let (ns_ip, host_ip) = (ns.ns_ip.to_string(), ns.host_ip.to_string());
    let _knxd = KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "knxd"])
            .args(["-e", "0.0.1", "-E", "0.0.2:8", "-D", "-T", "-S"])
            .args(["-I", &ns.inner, "-b"])
            .arg(format!("tpuart:{}", knxd_port.display()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("knxd.log")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("knxd.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    // knxd's server needs a moment after its TP-UART came up: wait until it takes a tunnel.
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/xknx_peer.py");
    let mut up = false;
    for _ in 0..20 {
        let mut p = support::LinePeer::start(
            "xknx",
            &python,
            &[
                peer.to_str().unwrap(),
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
            Duration::from_secs(30),
        );
        if ready.starts_with("READY") {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(up, "knxd takes no tunnel");
    let knx = format!("tpuart://{}", gateway_port.display());
    let env = [
        ("ETS_GATEWAY_IP", ns_ip.clone()),
        ("ETS_LOCAL_IP", host_ip.clone()),
    ];
    tokio::task::block_in_place(|| commission(&python, &knx, "TP-UART online", 3671, &env));
    drop(line);
}
