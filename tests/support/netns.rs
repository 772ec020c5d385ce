//! A network namespace for knxd's KNXnet/IP server (knxd serves tunnels only on a
//! non-loopback interface): used by `tests/knx_tp.rs` and `tests/ets_download.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub(crate) fn must(args: &[&str]) {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace `knxtp-<k>` joined to the host by veth `kxp<k>o` (10.213.k.1) / `kxp<k>i`
/// (10.213.k.2, inside), `k` reserved through the lock files of `tests/knx_link.rs`'s
/// namespaces (same directory, same subnets), with an `unreachable` guard route so that no
/// test datagram can leave the machine. Dropped: namespace, veth, route and lock removed.
pub(crate) struct Netns {
    pub(crate) name: String,
    outer: String,
    pub(crate) inner: String,
    pub(crate) host_ip: String,
    pub(crate) ns_ip: String,
    guard_route: String,
    lock: PathBuf,
}

fn reserve_subnet() -> (u8, PathBuf) {
    use std::io::Write as _;
    let dir = std::env::temp_dir().join("knx-echarge-netns");
    std::fs::create_dir_all(&dir).unwrap();
    let pid = std::process::id();
    for i in 0..250 {
        let k = u8::try_from((pid + 101 + i) % 250 + 1).unwrap();
        let lock = dir.join(format!("{k}.lock"));
        let take = || {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
                .ok()?;
            writeln!(f, "{pid}").ok()
        };
        if take().is_some() {
            return (k, lock);
        }
        let owner = std::fs::read_to_string(&lock).unwrap_or_default();
        let alive = owner
            .trim()
            .parse::<u32>()
            .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive && std::fs::remove_file(&lock).is_ok() && take().is_some() {
            return (k, lock);
        }
    }
    panic!("no free 10.213.x.0/24 test subnet");
}

impl Netns {
    pub(crate) fn new() -> Self {
        let (k, lock) = reserve_subnet();
        let ns = Self {
            name: format!("knxtp-{k}"),
            outer: format!("kxp{k}o"),
            inner: format!("kxp{k}i"),
            host_ip: format!("10.213.{k}.1"),
            ns_ip: format!("10.213.{k}.2"),
            guard_route: format!("10.213.{k}.0/24"),
            lock,
        };
        let _ = sh(&["ip", "netns", "del", &ns.name]);
        let _ = sh(&["ip", "link", "del", &ns.outer]);
        let guard = ["route", "unreachable", &ns.guard_route, "metric", "4000"];
        let _ = sh(&[
            "ip", guard[0], "del", guard[1], guard[2], guard[3], guard[4],
        ]);
        must(&[
            "ip", guard[0], "add", guard[1], guard[2], guard[3], guard[4],
        ]);
        let (name, outer, inner) = (ns.name.as_str(), ns.outer.as_str(), ns.inner.as_str());
        must(&["ip", "netns", "add", name]);
        must(&[
            "ip", "link", "add", outer, "type", "veth", "peer", "name", inner,
        ]);
        must(&["ip", "link", "set", inner, "netns", name]);
        must(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", ns.host_ip),
            "dev",
            outer,
        ]);
        must(&["ip", "link", "set", outer, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", name];
            all.extend_from_slice(args);
            must(&all);
        };
        inside(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", ns.ns_ip),
            "dev",
            inner,
        ]);
        inside(&["ip", "link", "set", inner, "up"]);
        inside(&["ip", "link", "set", "lo", "up"]);
        inside(&["ip", "route", "add", "224.0.0.0/4", "dev", inner]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.name]);
        let _ = sh(&["ip", "link", "del", &self.outer]);
        let _ = sh(&[
            "ip",
            "route",
            "del",
            "unreachable",
            &self.guard_route,
            "metric",
            "4000",
        ]);
        let _ = std::fs::remove_file(&self.lock);
    }
}
