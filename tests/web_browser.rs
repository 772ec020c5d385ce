//! Browser tests of the device website: the gateway (shell + website, logging through
//! `web::logs`) runs in this process with five charging points whose polls change every half
//! second, and `tests/web/run.mjs` drives headless Chromium (playwright-core) against it:
//! login, live values without reload, programming mode, log ZIP download, firmware refusal,
//! password change and re-login, language switch, licences. Screenshots go to
//! `tests/web/artefacts/`, which each run first clears of the files of the run before.
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
use std::time::Duration;

use knx_echarge::chargers::status::{ChargerStatus, CpState};
use knx_echarge::config::file;
use knx_echarge::core::Event;
use knx_echarge::objects::Value;
use knx_echarge::shell;
use knx_echarge::store::DataDir;
use knx_echarge::units::{ChargePointId, Current, GoNumber, PerPhase, Power};
use knx_echarge::web::{self, Context, firmware};

const PASSWORD: &str = "Browser-Test-1";
const NEW_PASSWORD: &str = "Changed-Pass-42";

fn amps(a: f64) -> Current {
    Current::from_amps_f64(a).unwrap()
}

/// A poll of a charging point that charges `a` amps on three phases.
fn charging(a: f64) -> ChargerStatus {
    ChargerStatus {
        state: Some(CpState::Charging),
        connected: true,
        charging: true,
        setpoint: Some(amps(16.0)),
        currents: Some(PerPhase([amps(a), amps(a), amps(a)])),
        power: Power::from_watts_f64(a * 230.0 * 3.0).ok(),
        ..ChargerStatus::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_website_in_headless_chromium() {
    let Some(chromium) = support::browser() else {
        return;
    };
    // A fresh run: no screenshots (or failure screenshots) of an earlier one.
    let artefacts = support::fresh_artefacts(|name| !name.starts_with("demo-"));
    assert!(!artefacts.join("failure-1.png").exists());
    web::logs::init();
    let text = std::fs::read_to_string("examples/five-chargers.toml").unwrap();
    let config = file::parse(&text, "five-chargers.toml").unwrap();
    let shell = shell::spawn(config.clone(), true, None);
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path().join("data")).unwrap();
    let mut ctx = Context::new(
        config,
        data.clone(),
        shell.events.clone(),
        shell.snapshot.clone(),
    );
    ctx.initial_password = Some(PASSWORD.to_owned());
    ctx.sample_every = Duration::from_millis(500);
    let mut site = web::spawn("127.0.0.1:0".parse().unwrap(), ctx)
        .await
        .unwrap();

    // Simulated charging points and smart meter: values change every 500 ms.
    let events = shell.events.clone();
    let feeder = tokio::spawn(async move {
        let ids: Vec<ChargePointId> = ChargePointId::all().collect();
        for cp in &ids {
            let _ = events
                .send(Event::ChargerPolled {
                    cp: *cp,
                    status: ChargerStatus {
                        state: Some(CpState::Available),
                        ..ChargerStatus::default()
                    },
                })
                .await;
        }
        for step in 0u32.. {
            let a = 6.0 + f64::from(step % 10);
            for cp in &ids {
                let status = if cp.number() <= 2 {
                    charging(a + f64::from(cp.number()))
                } else {
                    ChargerStatus {
                        state: Some(CpState::Available),
                        ..ChargerStatus::default()
                    }
                };
                if events
                    .send(Event::ChargerPolled { cp: *cp, status })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            for (object, phase) in [(10u16, 0.0), (11, 1.0), (12, 2.0)] {
                let _ = events
                    .send(Event::ObjectWritten {
                        object: GoNumber(object),
                        value: Value::Current(amps(2.0 * a + 3.0 + phase)),
                    })
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    let old_fw = dir.path().join("knx-echarge-0.0.1.fw");
    std::fs::write(&old_fw, firmware::package("0.0.1", b"an old image")).unwrap();
    let url = format!("http://{}", site.local_addr);
    tokio::task::block_in_place(|| {
        support::run_node(
            "tests/web/run.mjs",
            &[
                ("BASE_URL", url.as_ref()),
                ("PASSWORD", PASSWORD.as_ref()),
                ("NEW_PASSWORD", NEW_PASSWORD.as_ref()),
                ("OLD_FIRMWARE", old_fw.as_ref()),
                ("ARTEFACTS", artefacts.as_ref()),
                ("CHROMIUM", chromium.as_ref()),
            ],
            Duration::from_secs(180),
        );
    });

    // The programming mode the browser switched on and off reached the core.
    assert!(!shell.snapshot.borrow().programming_mode);
    // The firmware older than the installed one was not staged.
    assert!(firmware::staged(&data).is_none());
    // The ZIP the browser downloaded: every file, real log lines, no password anywhere.
    let mut zip =
        zip::ZipArchive::new(std::fs::File::open(artefacts.join("logs.zip")).unwrap()).unwrap();
    let mut all = String::new();
    for i in 0..zip.len() {
        zip.by_index(i).unwrap().read_to_string(&mut all).unwrap();
    }
    for name in [
        "knx-echarge.log",
        "status.json",
        "system.txt",
        "faults.json",
    ] {
        assert!(zip.by_name(name).is_ok(), "{name} missing from the ZIP");
    }
    assert!(
        all.contains("login failed: wrong password"),
        "log lines in the ZIP"
    );
    assert!(all.contains("logging mode changed"));
    assert!(
        all.contains("Extended"),
        "system.txt reports the logging mode"
    );
    // Passwords are never logged: not in the ZIP, not in the log ring after the change.
    let ring =
        String::from_utf8_lossy(&web::logs::LogControl::global().ring().contents()).into_owned();
    for secret in [PASSWORD, NEW_PASSWORD, "wrong-password-1"] {
        assert!(!all.contains(secret), "{secret} in the log ZIP");
        assert!(!ring.contains(secret), "{secret} in the log");
    }
    assert!(ring.contains("device password changed"));

    feeder.abort();
    tokio::select! {
        () = site.restart_requested() => panic!("no restart was requested"),
        () = tokio::time::sleep(Duration::from_millis(10)) => {}
    }
    site.shutdown().await;
    shell.shutdown().await;
}
