//! Browser tests of the device website against the running gateway: the `knx-echarge run`
//! binary as its own process, the way the device runs it (`run --config FILE --knx
//! server://… --http … --data-dir …`), with charging points, a smart meter and a browser that
//! all talk to it from outside:
//!
//! * five charging-point simulators owned by this test (`knx_echarge::sim`, Modbus TCP on
//!   loopback) configured as in `examples/five-chargers.toml` — charging point 5, on RS485 in
//!   the example, is a Webasto Next over Modbus TCP here. Vehicles charge at 1 and 2;
//! * a smart meter that sends, every second over a KNXnet/IP tunnel to the gateway's
//!   tunnelling server, the house load plus what the vehicles draw (objects 10–12 and 20), while
//!   the vehicle at charging point 1 changes the current it takes: the live values come from
//!   the charging points and the bus, nothing is fed into the core;
//! * `tests/web/run.mjs` in headless Chromium (playwright-core): login with the initial
//!   password that the first start prints on the console (parsed from the binary's stderr, the
//!   real user flow), live values without reload, chart, a vehicle plugged in and out and
//!   faults of charging points (a manufacturer error, an unreachable box) appearing in their
//!   areas and clearing again — asked for by the script (`SIM …` lines on its stdout, answered
//!   on its stdin once the simulator has changed) —, DE/EN, programming mode, extended logging
//!   and the log ZIP, older firmware refused (EN and DE), DNS and NTP, password change and
//!   re-login, licences, no script errors.
//!
//! This set-up was chosen over `knx-echarge demo` (whose simulators live inside the gateway
//! process): here the test decides what the charging points report and the page must show it.
//!
//! Afterwards the test checks from outside, with the binary still running: the website's API
//! (new password only, programming mode off, DNS/NTP stored, no firmware staged), the data
//! directory (no staged firmware), both log ZIPs (the browser's and one fetched after the
//! password change) and the binary's stderr log (`RUST_LOG=info`, `NO_COLOR=1`): real log lines,
//! no password — the initial one only on its console line of the first start —, no panic, no
//! shutdown. Then it kills the gateway.
//!
//! Screenshots go to `tests/web/artefacts/` (`status.png`, `status-de.png`, `settings.png`,
//! `licences.png`, and `failure-N.png` of a failed step), with the downloaded `logs.zip` and
//! the gateway's log `gateway.log`; each run first clears the files of the run before.
//!
//! Needs node, `tests/web/node_modules` (`npm ci`) and Chromium. Without them the test is
//! skipped, unless `KNX_ECHARGE_BROWSER=1` (set by `tests/run` after installing them) makes
//! their absence a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use knx_echarge::catalog::{Interface, charger_model};
use knx_echarge::config::{Config, PhaseRotation, file};
use knx_echarge::knx::dpt::{self, Dpt, DptValue};
use knx_echarge::knx::link::{self, LinkEvent, LinkSpec, LinkState};
use knx_echarge::knx::wire::apdu::{Apdu, Tpdu};
use knx_echarge::knx::wire::cemi::{Destination, LData, LDataService};
use knx_echarge::knx::{GroupAddress, IndividualAddress};
use knx_echarge::sim::{Faults, SimHandle, Vehicle};
use knx_echarge::store::DataDir;
use knx_echarge::units::{Current, GoNumber};
use knx_echarge::web::firmware;
use serde_json::Value;
use support::{KillOnDrop, free_tcp, free_udp};

const NEW_PASSWORD: &str = "Changed-Pass-42";
const WRONG_PASSWORD: &str = "wrong-password-1";
/// What the first start prints on the console before the initial password.
const SHOWN: &str = "initial password (shown once, at first start): ";
/// DNS server and NTP servers the browser saves (the example's DNS is 192.168.1.1).
const DNS: &str = "192.168.1.53";
const NTP: [&str; 2] = ["ntp.example.org", "10.0.0.1"];

/// The simulated charging points 1–5: the example's models, a Webasto Next in place of the
/// example's RS485 Heidelberg.
use support::FIVE_MODELS as MODELS;

/// `examples/five-chargers.toml` with every charging point at its simulator on loopback.
fn config(ports: &[u16]) -> Config {
    let text = std::fs::read_to_string("examples/five-chargers.toml").unwrap();
    let mut config = file::parse(&text, "five-chargers.toml").unwrap();
    for (p, (model, port)) in config
        .charging_points
        .iter_mut()
        .zip(MODELS.iter().zip(ports))
    {
        p.model = Some(charger_model(model.id()).unwrap());
        p.interface = Interface::Tcp;
        p.ip = Ipv4Addr::LOCALHOST;
        p.port = *port;
    }
    config
}

/// The test's smart meter: a KNXnet/IP tunnelling client of the gateway's server that sends
/// the grid currents every second (DPT 14.019 on objects 10–12, then "in operation" on 20).
struct SmartMeter {
    task: tokio::task::JoinHandle<()>,
    link: tokio::task::JoinHandle<()>,
}

impl SmartMeter {
    /// Connects to the gateway at `knx` and starts sending: house load plus the vehicles'
    /// currents by phase rotation. Charging point 1's vehicle takes 10–16 A, a different
    /// current every second, so its area and the load change live.
    async fn start(knx: SocketAddr, config: &Config, sims: &[SimHandle]) -> Self {
        let mut link = link::spawn(LinkSpec::Tunnel { remote: knx }, "1.1.250".parse().unwrap())
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let event = tokio::time::timeout_at(deadline, link.from_bus.recv())
                .await
                .expect("the smart meter's tunnel connects within 30 s");
            match event {
                Some(LinkEvent::State(LinkState::Connected)) => break,
                Some(_) => {}
                None => panic!("the smart meter's tunnel ended"),
            }
        }
        // The gateway's own telegrams reach the tunnel too: read and drop them.
        let mut from_bus = std::mem::replace(&mut link.from_bus, tokio::sync::mpsc::channel(1).1);
        let to_bus = link.to_bus.clone();
        let link_task = tokio::spawn(async move {
            while from_bus.recv().await.is_some() {}
            drop(link);
        });
        let table = config.object_table();
        let ga = |n: u16| {
            table
                .get(GoNumber(n))
                .and_then(knx_echarge::objects::GroupObject::sending_address)
                .unwrap_or_else(|| panic!("object {n} has no group address"))
        };
        let currents = [ga(10), ga(11), ga(12)];
        let in_operation = ga(20);
        let points: Vec<(SimHandle, PhaseRotation)> = sims
            .iter()
            .zip(&config.charging_points)
            .map(|(s, p)| (s.clone(), p.rotation))
            .collect();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for step in 0u32.. {
                tick.tick().await;
                if let Some(v) = points[0].0.lock().state.vehicle.as_mut() {
                    v.max_current = Current::from_amps(10 + i32::try_from(step % 7).unwrap());
                }
                let mut grid = [2.0, 1.5, 1.0].map(|a| a + f64::from(step % 5) * 0.5);
                for (sim, rotation) in &points {
                    for (k, i) in sim.state().currents().iter().enumerate() {
                        let phase = rotation.grid_phase(k).unwrap();
                        grid[phase.index()] += i.as_amps_f64();
                    }
                }
                for (ga, amps) in currents.iter().zip(grid) {
                    let value = dpt::encode(Dpt::ElectricCurrent, &DptValue::Float(amps)).unwrap();
                    if to_bus.send(write(*ga, value)).await.is_err() {
                        return;
                    }
                }
                let on = dpt::encode(Dpt::Bool, &DptValue::Bool(true)).unwrap();
                if to_bus.send(write(in_operation, on)).await.is_err() {
                    return;
                }
            }
        });
        Self {
            task,
            link: link_task,
        }
    }
}

impl Drop for SmartMeter {
    fn drop(&mut self) {
        self.task.abort();
        self.link.abort();
    }
}

fn write(ga: GroupAddress, payload: knx_echarge::knx::wire::apdu::Payload) -> LData {
    LData::new(
        LDataService::Req,
        IndividualAddress::from_raw(0),
        Destination::Group(ga),
        Tpdu::Data(Apdu::GroupValueWrite(payload)),
    )
}

/// Carries out one `SIM <verb> <charging point> [arg]` line of run.mjs.
fn simulate(sims: &[SimHandle], command: &str) -> Result<(), String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let (verb, cp, arg) = match words.as_slice() {
        [verb, cp] => (*verb, *cp, None),
        [verb, cp, arg] => (*verb, *cp, Some(*arg)),
        _ => return Err("expected <verb> <charging point> [arg]".into()),
    };
    let sim = cp
        .parse::<usize>()
        .ok()
        .and_then(|n| sims.get(n.checked_sub(1)?))
        .ok_or_else(|| format!("no charging point {cp}"))?;
    match (verb, arg) {
        ("plug", None) => sim.plug_in(Vehicle::three_phase()),
        ("unplug", None) => sim.unplug(),
        ("offline", None) => sim.set_faults(|f| f.offline = true),
        ("clear", None) => sim.set_faults(|f| *f = Faults::default()),
        ("error", Some(code)) => {
            let code = u32::from_str_radix(code.trim_start_matches("0x"), 16)
                .map_err(|e| format!("error code {code}: {e}"))?;
            sim.set_faults(|f| f.error_code = code);
        }
        _ => return Err(format!("unknown command {command}")),
    }
    Ok(())
}

/// Waits (`limit`) until the gateway's status shows every charging point polled and
/// fault-free, vehicles charging at 1 and 2 and a DLM cycle on the meter's values.
fn wait_ready(http: SocketAddr, cookie: &str, gateway: &mut KillOnDrop, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no status");
    while Instant::now() < deadline {
        assert!(
            gateway.0.try_wait().unwrap().is_none(),
            "the gateway exited while starting"
        );
        if let Some(s) = support::get_json(http, "/api/v1/status", cookie) {
            match ready(&s) {
                Ok(()) => return,
                Err(why) => last = why,
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("the gateway was not ready within {limit:?}: {last}");
}

fn ready(s: &Value) -> Result<(), String> {
    let cps = s["charging_points"]
        .as_array()
        .ok_or("no charging points")?;
    if cps.len() != MODELS.len() || cps.iter().any(|cp| cp["state"].is_null()) {
        return Err(format!("charging points not all polled: {cps:?}"));
    }
    for cp in &cps[..2] {
        let amps = cp["currents"]
            .as_array()
            .map_or(0.0, |c| c.iter().filter_map(Value::as_f64).sum::<f64>());
        if cp["charging"] != true || amps <= 0.0 {
            return Err(format!("CP{} not charging yet", cp["id"]));
        }
    }
    if s["faults"]["present"] != false || s["faults"]["list"] != serde_json::json!([]) {
        return Err(format!("faults present: {}", s["faults"]));
    }
    if s["dlm"]["cycle"]["meter"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        return Err(format!("no DLM cycle yet: {}", s["dlm"]));
    }
    Ok(())
}

/// Every file of a log ZIP, by name.
fn unzip(bytes: &[u8]) -> Vec<(String, String)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut text = String::new();
            f.read_to_string(&mut text).unwrap();
            (f.name().to_owned(), text)
        })
        .collect()
}

/// Copies the gateway's log into the artefacts when the test ends, passed or not.
struct KeepLog(PathBuf, PathBuf);

impl Drop for KeepLog {
    fn drop(&mut self) {
        let _ = std::fs::copy(&self.0, &self.1);
    }
}

/// The initial password from the first start's console line.
fn initial_password(log: &Path) -> String {
    let text = support::wait_for_log(log, "device website on http://", Duration::from_secs(60));
    text.lines()
        .find_map(|l| l.split_once(SHOWN).map(|(_, p)| p.trim().to_owned()))
        .unwrap_or_else(|| panic!("no initial password on the console:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_website_of_the_running_gateway_in_headless_chromium() {
    let Some(chromium) = support::browser() else {
        return;
    };
    let started = Instant::now();
    // A fresh run: no screenshots (or failure screenshots) of an earlier one.
    let artefacts = support::fresh_artefacts(|name| !name.starts_with("demo-"));
    assert!(!artefacts.join("failure-1.png").exists());
    let dir = tempfile::tempdir().unwrap();

    // The charging points: vehicles at 1 and 2, none at 3–5.
    let (sims, servers, ports) = support::tcp_simulators(MODELS).await;
    for sim in &sims[..2] {
        sim.plug_in(Vehicle::three_phase());
    }
    let config = config(&ports);
    let config_path = dir.path().join("gateway.toml");
    std::fs::write(&config_path, file::to_string(&config).unwrap()).unwrap();

    // The gateway.
    let http = free_tcp();
    let knx = free_udp();
    let data = dir.path().join("data");
    let log = dir.path().join("gateway.log");
    let _keep_log = KeepLog(log.clone(), artefacts.join("gateway.log"));
    let mut gateway = KillOnDrop(
        Command::new(support::gateway_bin())
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(["--knx", &format!("server://{knx}")])
            .args(["--http", &http.to_string()])
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let password = initial_password(&log);
    support::wait_for_log(&log, "KNX link open", Duration::from_secs(30));
    let _meter = SmartMeter::start(knx, &config, &sims).await;
    let cookie = support::login(http, &password).expect("the printed password logs in");
    tokio::task::block_in_place(|| {
        wait_ready(http, &cookie, &mut gateway, Duration::from_secs(60));
    });
    eprintln!("gateway ready after {:?}", started.elapsed());

    let old_fw = dir.path().join("knx-echarge-0.0.1.fw");
    std::fs::write(&old_fw, firmware::package("0.0.1", b"an old image")).unwrap();
    let url = format!("http://{http}");
    let browser_started = Instant::now();
    tokio::task::block_in_place(|| {
        support::run_node_with(
            "tests/web/run.mjs",
            &[
                ("BASE_URL", url.as_ref()),
                ("PASSWORD", password.as_ref()),
                ("NEW_PASSWORD", NEW_PASSWORD.as_ref()),
                ("WRONG_PASSWORD", WRONG_PASSWORD.as_ref()),
                ("DNS", DNS.as_ref()),
                ("NTP_SERVERS", NTP.join(", ").as_ref()),
                ("OLD_FIRMWARE", old_fw.as_ref()),
                ("ARTEFACTS", artefacts.as_ref()),
                ("CHROMIUM", chromium.as_ref()),
            ],
            Duration::from_secs(300),
            |line| {
                let command = line.strip_prefix("SIM ")?;
                Some(match simulate(&sims, command) {
                    Ok(()) => format!("OK {command}"),
                    Err(e) => format!("ERR {command}: {e}"),
                })
            },
        );
    });
    eprintln!("run.mjs took {:?}", browser_started.elapsed());

    // The gateway lived through it all.
    assert!(
        gateway.0.try_wait().unwrap().is_none(),
        "the gateway exited during the browser test"
    );
    // Only the new password logs in now.
    assert_eq!(support::login(http, &password), None, "the old password");
    let cookie = support::login(http, NEW_PASSWORD).expect("the new password logs in");
    // The programming mode the browser switched on and off reached the core: off.
    let status = support::get_json(http, "/api/v1/status", &cookie).unwrap();
    assert_eq!(status["device"]["programming_mode"], false, "{status}");
    // The settings the browser saved are the gateway's; the older firmware was not staged.
    let settings = support::get_json(http, "/api/v1/settings", &cookie).unwrap();
    assert_eq!(settings["network"]["dns"], DNS, "{settings}");
    assert_eq!(
        settings["ntp"]["servers"],
        serde_json::json!(NTP),
        "{settings}"
    );
    assert_eq!(settings["logging"], "simple", "{settings}");
    assert!(settings["firmware"]["staged"].is_null(), "{settings}");
    assert!(firmware::staged(&DataDir::open(&data).unwrap()).is_none());
    // The charging points were polled and controlled by the gateway.
    for (i, sim) in sims.iter().enumerate() {
        let s = sim.lock();
        assert!(
            s.requests > 10,
            "CP{} answered {} requests",
            i + 1,
            s.requests
        );
    }
    assert!(
        !sims[0].lock().state.writes.is_empty(),
        "the gateway never wrote to CP1"
    );

    // The ZIP the browser downloaded (extended logging on): every file, real log lines.
    let secrets = [password.as_str(), NEW_PASSWORD, WRONG_PASSWORD];
    let browser_zip = unzip(&std::fs::read(artefacts.join("logs.zip")).unwrap());
    let names: Vec<&str> = browser_zip.iter().map(|(n, _)| n.as_str()).collect();
    for name in [
        "knx-echarge.log",
        "status.json",
        "system.txt",
        "faults.json",
    ] {
        assert!(
            names.contains(&name),
            "{name} missing from the ZIP: {names:?}"
        );
    }
    let file = |zip: &[(String, String)], name: &str| {
        zip.iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .unwrap_or_default()
    };
    let zip_log = file(&browser_zip, "knx-echarge.log");
    assert!(
        zip_log.contains("login failed: wrong password"),
        "log lines in the ZIP"
    );
    assert!(zip_log.contains("logging mode changed"));
    // Extended logging: what the charging points reported, line by line, only after the switch
    // (Simple mode logs no polls).
    let extended_from = zip_log.find("logging mode changed").unwrap_or(usize::MAX);
    let first_poll = zip_log.find("charging point polled").unwrap_or(0);
    assert!(
        first_poll > extended_from,
        "no poll lines after the switch to extended logging, or some before it"
    );
    assert!(
        file(&browser_zip, "system.txt").contains("Extended"),
        "system.txt reports the logging mode"
    );
    // One fetched now, after the password change.
    let answer =
        support::http(http, "GET", "/api/v1/logs.zip", &[("Cookie", &cookie)], "").unwrap();
    assert_eq!(answer.status, 200, "{}", answer.head);
    let later_zip = unzip(&answer.body);
    let later_log = file(&later_zip, "knx-echarge.log");
    assert!(later_log.contains("device password changed"));
    // The charging-point faults the browser saw begin and end are in the log with their
    // charging point.
    for line in [
        "fault raised: ChargerError (50) at charging point 2",
        "fault cleared: ChargerError (50) at charging point 2",
        "fault raised: NotReachable (80) at charging point 4",
        "fault cleared: NotReachable (80) at charging point 4",
    ] {
        assert!(later_log.contains(line), "`{line}` not in the log ZIP");
    }
    // Passwords are never logged: in neither ZIP.
    for (name, text) in browser_zip.iter().chain(&later_zip) {
        for secret in secrets {
            assert!(!text.contains(secret), "a password in {name} of a log ZIP");
        }
    }
    // The gateway's stderr: the log lines, and the initial password on the console line of
    // the first start only.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("device password changed"), "{text}");
    assert!(text.contains("login failed: wrong password"));
    for secret in [NEW_PASSWORD, WRONG_PASSWORD] {
        assert!(!text.contains(secret), "{secret} in the gateway's log");
    }
    let with_password: Vec<&str> = text.lines().filter(|l| l.contains(&password)).collect();
    assert!(
        with_password.len() == 1 && with_password[0].contains(SHOWN),
        "the initial password outside its console line: {with_password:?}"
    );
    assert!(!text.contains("panicked"), "a panic in the gateway's log");
    assert!(!text.contains("shutting down"), "the gateway began to stop");
    assert!(
        gateway.0.try_wait().unwrap().is_none(),
        "the gateway exited after the browser test"
    );

    drop(gateway);
    drop(servers);
    eprintln!("browser test done after {:?}", started.elapsed());
}
