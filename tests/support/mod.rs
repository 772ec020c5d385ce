//! Helpers shared by the end-to-end test crates: processes that die with the test, free
//! loopback ports, the project's `.venv` Python, and headless Chromium.
#![allow(dead_code, reason = "each test crate uses a part of the helpers")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A child process killed (and reaped) when the test ends, passed or not.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port on loopback that was free a moment ago.
pub(crate) fn free_tcp() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free TCP port on loopback")
}

/// A UDP port on loopback that was free a moment ago.
pub(crate) fn free_udp() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port on loopback")
}

/// The `.venv` Python with xknx that `tests/run` installs. `None` means skip; with
/// `KNX_ECHARGE_INTEROP=1` (set by `tests/run`) its absence fails the test instead.
pub(crate) fn venv_python() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var_os("KNX_ECHARGE_INTEROP").is_none(),
        "KNX_ECHARGE_INTEROP is set but {} is missing",
        p.display()
    );
    eprintln!("SKIPPED: no .venv with xknx; run tests/run");
    None
}

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

/// `tests/web/artefacts/` (created if needed) without the files an earlier run of this test
/// left there — stale `failure-*.png` screenshots would otherwise pass for new ones. `owns`
/// picks this test's files by name: the browser test and the demo test share the directory
/// and may run at the same time, so each clears only its own.
pub(crate) fn fresh_artefacts(owns: impl Fn(&str) -> bool) -> PathBuf {
    let dir = PathBuf::from("tests/web/artefacts");
    std::fs::create_dir_all(&dir).expect("creating tests/web/artefacts");
    for entry in std::fs::read_dir(&dir)
        .expect("listing tests/web/artefacts")
        .flatten()
    {
        let name = entry.file_name();
        if entry.file_type().is_ok_and(|t| t.is_file()) && owns(&name.to_string_lossy()) {
            std::fs::remove_file(entry.path()).expect("removing an old artefact");
        }
    }
    dir
}
