//! The gateway binary under a systemd notify socket this test owns (as `Type=notify` with
//! `WatchdogSec=` runs it): `READY=1` once it serves, `WATCHDOG=1` every half watchdog
//! interval, and no more `WATCHDOG=1` once a charging-point task hangs (the debug-build
//! trigger `KNX_ECHARGE_TEST_HANG`, see src/hw/watchdog.rs) — with a `STATUS=` line naming it.
//! The built-in board's GPIO chip and RS485 port do not exist here: the gateway logs that and
//! carries on.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Datagrams received until `until`, with their arrival instants.
fn collect(socket: &UnixDatagram, until: Instant) -> Vec<(Instant, String)> {
    let mut got = Vec::new();
    let mut buf = [0_u8; 4096];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => got.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            )),
            Err(_) => break,
        }
    }
    got
}

#[test]
fn ready_then_watchdog_pings_until_a_task_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let config = dir.path().join("gateway.toml");
    // One charging point nobody answers for: its task retries after 1 s, 2 s, 4 s …
    std::fs::write(
        &config,
        "[charging_point.1]\nenabled = true\nmodel = \"keba-p30\"\nip = \"127.0.0.1\"\nport = 1\n",
    )
    .unwrap();
    let started = Instant::now();
    let child = Command::new(support::gateway_bin())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "1000000")
        .env("KNX_ECHARGE_TEST_HANG", "charging point 1@2")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);

    // READY=1 with a status line, then pings every ~500 ms while all is well.
    let mut first = collect_until_ready(&socket, started + Duration::from_secs(20));
    if let Some((at, _)) = first
        .iter()
        .find(|(_, m)| m.starts_with("READY=1"))
        .cloned()
    {
        first.extend(collect(&socket, at + Duration::from_secs(2)));
    }
    let ready = first
        .iter()
        .find(|(_, m)| m.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 in {first:?}"));
    assert!(
        ready.1.contains("STATUS=serving: 1 charging point(s)"),
        "{}",
        ready.1
    );
    let pings_early = first
        .iter()
        .filter(|(_, m)| m.trim_end() == "WATCHDOG=1")
        .count();
    assert!(
        pings_early >= 2,
        "periodic WATCHDOG=1 before the hang: {first:?}"
    );

    // The task hangs at ~3 s (its first poll after 2 s); 3 s later it counts as hung.
    let rest = collect_until_status(&socket, started + Duration::from_secs(40));
    // The first STATUS line about a failure ends the pings; the hung task is named in it or
    // in the next (the stalled runtime may be seen a moment earlier).
    let failed = rest
        .iter()
        .find(|(_, m)| m.starts_with("STATUS=task not alive"))
        .unwrap_or_else(|| panic!("no STATUS about a failed task in {rest:?}"));
    assert!(
        rest.iter()
            .any(|(_, m)| m.starts_with("STATUS=task not alive")
                && m.contains("charging point 1 (hung)")),
        "no STATUS naming the hung task in {rest:?}"
    );
    let after: Vec<_> = rest
        .iter()
        .filter(|(at, m)| *at > failed.0 && m.trim_end() == "WATCHDOG=1")
        .collect();
    assert!(after.is_empty(), "pings after the hang: {after:?}");
    let last_ping = rest
        .iter()
        .filter(|(_, m)| m.trim_end() == "WATCHDOG=1")
        .map(|(at, _)| *at)
        .max()
        .unwrap_or(started);
    assert!(
        Instant::now().duration_since(last_ping) > Duration::from_secs(3),
        "systemd (WatchdogSec=1) would restart it now"
    );

    // The board's missing devices were reported, and the gateway carried on.
    drop(child);
    let out = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(out.contains("board: "), "{out}");
    assert!(out.contains("is missing"), "{out}");
}

/// Datagrams until the first `READY=1` (or `until`).
fn collect_until_ready(socket: &UnixDatagram, until: Instant) -> Vec<(Instant, String)> {
    let mut got = Vec::new();
    while Instant::now() < until {
        let more = collect(
            socket,
            (Instant::now() + Duration::from_millis(200)).min(until),
        );
        let ready = more.iter().any(|(_, m)| m.starts_with("READY=1"));
        got.extend(more);
        if ready {
            break;
        }
    }
    got
}

/// Collects until the STATUS line about a failed task has arrived and 3 s more have passed
/// (to see that no WATCHDOG=1 follows it), or until `until` (a loaded machine starts slowly).
fn collect_until_status(socket: &UnixDatagram, until: Instant) -> Vec<(Instant, String)> {
    let mut got = Vec::new();
    let mut end = until;
    while Instant::now() < end {
        let more = collect(
            socket,
            (Instant::now() + Duration::from_millis(200)).min(end),
        );
        if let Some((at, _)) = more
            .iter()
            .find(|(_, m)| m.starts_with("STATUS=task not alive"))
        {
            end = (*at + Duration::from_secs(3)).min(until);
        }
        got.extend(more);
    }
    got
}
