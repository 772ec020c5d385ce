//! Helpers shared by the test crates that drive the website in headless Chromium
//! (`tests/web_browser.rs`, `tests/demo.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Chromium to drive: `$CHROMIUM`, else Debian's.
fn chromium() -> Option<PathBuf> {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(PathBuf::from))
        .find(|p| p.exists())
}

/// Chromium, node and `tests/web/node_modules` (playwright-core), or why they are missing.
fn prerequisites() -> Result<PathBuf, String> {
    let chromium = chromium().ok_or("chromium not installed")?;
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node not installed".to_owned());
    }
    if !Path::new("tests/web/node_modules/playwright-core").exists() {
        return Err("tests/web/node_modules missing (npm ci in tests/web)".to_owned());
    }
    Ok(chromium)
}

/// The Chromium executable when a browser test can run. `None` means skip; with
/// `KNX_ECHARGE_BROWSER=1` (set by `tests/run` after installing them) a missing prerequisite
/// fails the test instead.
pub(crate) fn browser() -> Option<PathBuf> {
    match prerequisites() {
        Ok(c) => Some(c),
        Err(why) => {
            assert!(
                std::env::var_os("KNX_ECHARGE_BROWSER").is_none(),
                "browser test required but {why}"
            );
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// Runs `node <script>` with `env`, killing it after `limit`; panics unless it succeeds.
pub(crate) fn run_node(script: &str, env: &[(&str, &std::ffi::OsStr)], limit: std::time::Duration) {
    let mut cmd = Command::new("node");
    cmd.arg(script);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut node = cmd.spawn().expect("starting node");
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = node.try_wait().expect("waiting for node") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = node.kill();
            let _ = node.wait();
            panic!("{script} took longer than {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "{script} failed: {status}");
}
