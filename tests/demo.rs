//! `knx-echarge demo` as a process: it starts its simulated charging points and house, and its
//! website shows, within 30 s, all five charging points polled (run with an empty PATH: no socat or other tool needed) (no NotReachable), a vehicle
//! charging with a non-zero current, and a DLM cycle with a meter value and a budget; and its
//! status page in headless Chromium with live values (screenshot kept as a test artefact).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{KillOnDrop, free_tcp, free_udp};

/// The demo's documented password.
const DEMO_PASSWORD: &str = "Demo-eCharge-1";

fn status(addr: SocketAddr, cookie: &str) -> Option<Value> {
    support::get_json(addr, "/api/v1/status", cookie)
}

/// What the test waits for, and why it is not there yet.
fn check(s: &Value, points: usize) -> Result<(), String> {
    let cps = s["charging_points"]
        .as_array()
        .ok_or("no charging points")?;
    if cps.len() != points {
        return Err(format!("{} charging points", cps.len()));
    }
    for cp in cps {
        if cp["state"].is_null() {
            return Err(format!("CP{} not polled yet", cp["id"]));
        }
    }
    let unreachable: Vec<&Value> = s["faults"]["list"]
        .as_array()
        .map(|l| l.iter().filter(|f| f["code"] == "NotReachable").collect())
        .unwrap_or_default();
    if !unreachable.is_empty() {
        return Err(format!("NotReachable: {unreachable:?}"));
    }
    let charging = cps.iter().any(|cp| {
        cp["charging"] == true
            && cp["currents"]
                .as_array()
                .is_some_and(|c| c.iter().any(|a| a.as_f64().unwrap_or(0.0) > 0.0))
    });
    if !charging {
        return Err("no vehicle charges yet".into());
    }
    let cycle = &s["dlm"]["cycle"];
    let meter: f64 = cycle["meter"]
        .as_array()
        .ok_or("no DLM cycle")?
        .iter()
        .filter_map(Value::as_f64)
        .sum();
    let budget = cycle["budget"].as_array().ok_or("no DLM budget")?;
    if meter <= 0.0 || budget.len() != 3 || cycle["emergency"] != false {
        return Err(format!("DLM cycle without a meter value yet: {cycle}"));
    }
    Ok(())
}

/// A running demo process with its website address, data directory and how many charging
/// points it runs (all five: the RS485 pty pair is made in-process).
struct Demo {
    process: KillOnDrop,
    http: SocketAddr,
    points: usize,
    _dir: tempfile::TempDir,
}

fn start_demo() -> Demo {
    let http_addr = free_tcp();
    let knx = free_udp();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(support::gateway_bin())
        .args(["demo", "--knx-server", &knx.to_string()])
        // No tool from PATH (socat) is needed: the RS485 pty pair is made in-process.
        .env("PATH", "")
        .args(["--http", &http_addr.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Demo {
        process: KillOnDrop(child),
        http: http_addr,
        points: 5,
        _dir: dir,
    }
}

/// Waits (30 s at most) until the demo's status API shows every charging point polled, a
/// vehicle charging and a DLM cycle; returns the session cookie.
fn wait_ready(demo: &mut Demo) -> String {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let mut cookie = None;
    let mut last = String::from("website not up");
    while Instant::now() < deadline {
        if let Ok(Some(code)) = demo.process.0.try_wait() {
            panic!("the demo exited early: {code}");
        }
        if cookie.is_none() {
            cookie = support::login(demo.http, DEMO_PASSWORD);
        }
        if let Some(c) = &cookie {
            match status(demo.http, c) {
                Some(s) => match check(&s, demo.points) {
                    Ok(()) => {
                        eprintln!("demo ready after {:?}", started.elapsed());
                        return c.clone();
                    }
                    Err(why) => last = why,
                },
                None => last = "status not readable".into(),
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("the demo did not come up within 30 s: {last}");
}

#[test]
fn demo_runs_five_simulated_charging_points_and_a_house() {
    let mut demo = start_demo();
    let cookie = wait_ready(&mut demo);
    // Still so one meter period later: no NotReachable after start-up.
    std::thread::sleep(Duration::from_secs(6));
    let s = status(demo.http, &cookie).expect("status");
    if let Err(why) = check(&s, demo.points) {
        panic!("the demo fell over after start-up: {why}");
    }
}

/// The demo's status page in headless Chromium: login with the demo password, live values
/// changing without reload, screenshot `tests/web/artefacts/demo-status.png`.
#[test]
fn demo_status_page_in_headless_chromium() {
    let Some(chromium) = support::browser() else {
        return;
    };
    let artefacts = support::fresh_artefacts(|name| name.starts_with("demo-"));
    let shot = artefacts.join("demo-status.png");
    let mut demo = start_demo();
    wait_ready(&mut demo);
    let url = format!("http://{}", demo.http);
    let points = demo.points.to_string();
    support::run_node(
        "tests/web/demo.mjs",
        &[
            ("BASE_URL", url.as_ref()),
            ("PASSWORD", DEMO_PASSWORD.as_ref()),
            ("ARTEFACTS", artefacts.as_ref()),
            ("CHROMIUM", chromium.as_ref()),
            ("POINTS", points.as_ref()),
        ],
        Duration::from_secs(120),
    );
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG file");
    assert!(
        png.len() > 20_000,
        "a full page, not a blank one: {} bytes",
        png.len()
    );
    assert!(
        demo.process.0.try_wait().unwrap().is_none(),
        "the demo kept running"
    );
}
