//! A network namespace for tests that need a peer on a non-loopback interface (knxd serves
//! tunnels and routing only there): `<prefix>-<k>` joined to the host by the veth pair
//! `<veth><k>o` (10.213.k.1, host side) / `<veth><k>i` (10.213.k.2, inside). `k` is reserved
//! through a lock file, so that tests in parallel processes (`tests/knx_link.rs`,
//! `tests/knx_tp.rs`) never share names or subnets; a lock of a dead process is reclaimed.
//! Dropping it removes the namespace, the veth pair, its guard route and the lock, also when
//! the test failed.
//!
//! Test traffic must never leave the machine: an `unreachable` route for 10.213.k.0/24
//! (metric 4000) stands behind the veth's own route, so datagrams for the namespace fail
//! locally instead of following the default route whenever the veth's route is missing.
//! Link cuts are made on the namespace side ([`Netns::set_link`]), which keeps the host's
//! route in place.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Runs a command, panicking only when it cannot be started.
pub(crate) fn sh(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Runs a command that must succeed.
pub(crate) fn must(args: &[&str]) {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test network namespace (see the module docs).
pub(crate) struct Netns {
    /// The namespace's name (`ip netns exec <name> …`).
    pub(crate) name: String,
    /// The host side of the veth pair.
    pub(crate) outer: String,
    /// The namespace side of the veth pair.
    pub(crate) inner: String,
    /// 10.213.k.1.
    pub(crate) host_ip: Ipv4Addr,
    /// 10.213.k.2.
    pub(crate) ns_ip: Ipv4Addr,
    /// The subnet: number `k`.
    pub(crate) k: u8,
    guard_route: String,
    lock: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Reserves a subnet number `k` (10.213.k.0/24) through its lock file.
pub(crate) fn reserve_subnet() -> (u8, PathBuf) {
    let dir = std::env::temp_dir().join("knx-echarge-netns");
    fs::create_dir_all(&dir).unwrap();
    let pid = std::process::id();
    let start = (pid + NEXT.fetch_add(1, Ordering::SeqCst) * 17) % 250;
    for i in 0..250 {
        let k = u8::try_from((start + i) % 250 + 1).unwrap();
        let lock = dir.join(format!("{k}.lock"));
        let take = || {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
                .ok()?;
            writeln!(f, "{pid}").ok()
        };
        if take().is_some() {
            return (k, lock);
        }
        // Taken; reclaim it if its process is gone (a crashed run).
        let owner = fs::read_to_string(&lock).unwrap_or_default();
        let alive = owner
            .trim()
            .parse::<u32>()
            .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive && fs::remove_file(&lock).is_ok() && take().is_some() {
            return (k, lock);
        }
    }
    panic!("no free 10.213.x.0/24 test subnet");
}

impl Netns {
    /// Creates `<prefix>-<k>` with the veth pair `<veth><k>o` / `<veth><k>i`.
    pub(crate) fn new(prefix: &str, veth: &str) -> Self {
        let (k, lock) = reserve_subnet();
        let ns = Self {
            name: format!("{prefix}-{k}"),
            outer: format!("{veth}{k}o"),
            inner: format!("{veth}{k}i"),
            host_ip: Ipv4Addr::new(10, 213, k, 1),
            ns_ip: Ipv4Addr::new(10, 213, k, 2),
            k,
            guard_route: format!("10.213.{k}.0/24"),
            lock,
        };
        // Leftovers of a crashed run with the same number.
        let _ = sh(&["ip", "netns", "del", &ns.name]);
        let _ = sh(&["ip", "link", "del", &ns.outer]);
        let guard = |verb: &str| {
            [
                "ip".to_owned(),
                "route".into(),
                verb.into(),
                "unreachable".into(),
                ns.guard_route.clone(),
                "metric".into(),
                "4000".into(),
            ]
        };
        let del = guard("del");
        let _ = sh(&del.iter().map(String::as_str).collect::<Vec<_>>());
        let add = guard("add");
        must(&add.iter().map(String::as_str).collect::<Vec<_>>());
        let (name, outer, inner) = (ns.name.as_str(), ns.outer.as_str(), ns.inner.as_str());
        let host_cidr = format!("{}/24", ns.host_ip);
        let ns_cidr = format!("{}/24", ns.ns_ip);
        must(&["ip", "netns", "add", name]);
        must(&[
            "ip", "link", "add", outer, "type", "veth", "peer", "name", inner,
        ]);
        must(&["ip", "link", "set", inner, "netns", name]);
        must(&["ip", "addr", "add", &host_cidr, "dev", outer]);
        must(&["ip", "link", "set", outer, "up"]);
        ns.inside(&["ip", "addr", "add", &ns_cidr, "dev", inner]);
        ns.inside(&["ip", "link", "set", inner, "up"]);
        ns.inside(&["ip", "link", "set", "lo", "up"]);
        ns.inside(&["ip", "route", "add", "224.0.0.0/4", "dev", inner]);
        ns
    }

    /// Runs a command inside the namespace; it must succeed.
    pub(crate) fn inside(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", self.name.as_str()];
        all.extend_from_slice(args);
        must(&all);
    }

    /// Cuts or restores the link on the namespace side (the host keeps its route, so
    /// nothing for 10.213.k.2 can take the default route meanwhile).
    pub(crate) fn set_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        self.inside(&["ip", "link", "set", &self.inner, state]);
        if up {
            self.inside(&["ip", "route", "replace", "224.0.0.0/4", "dev", &self.inner]);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.name]);
        let _ = sh(&["ip", "link", "del", &self.outer]);
        // Only now: the host address 10.213.k.1 went with the veth, so nothing can be sent
        // from it any more.
        let _ = sh(&[
            "ip",
            "route",
            "del",
            "unreachable",
            &self.guard_route,
            "metric",
            "4000",
        ]);
        let _ = fs::remove_file(&self.lock);
    }
}
