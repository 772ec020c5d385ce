//! The device's IP settings end to end, with the operating system's own services as on the
//! device: a network-namespace pair joined by a veth cable, dnsmasq as the DHCP server in one
//! namespace, and in the other the gateway binary (`--network-root`, website on every
//! address) and the real systemd-networkd reading the `.network` file the gateway wrote.
//!
//! networkd runs without systemd as PID 1: in a mount namespace of its own, with a private
//! `/run/systemd`, the gateway's `etc/systemd/network` bind-mounted on `/etc/systemd/network`,
//! and `/sys` read-only (networkd then does not wait for udev, as in a container). It reads its
//! files when it starts, so the test (re)starts it after the gateway wrote them — on the
//! device the gateway runs `networkctl reload`, which needs D-Bus, absent here.
//!
//! Checked, each time also on the website (`GET /api/v1/status`: `ip`, `ip_obtained`):
//! 1. DHCP server down at start: networkd takes a 169.254.x.x link-local address (spec 8.3.2);
//!    the server comes back: a DHCP address.
//! 2. DHCP server up: a DHCP address from the server's range.
//! 3. Static address, mask and gateway: applied, and the website answers on that address from
//!    the other namespace.
//! 4. Static without an address (8.3.2 "serious misconfiguration"): a configuration fault in
//!    the log, and the device keeps DHCP (it gets a DHCP address).
//!
//! Needs root, `ip`, dnsmasq (Debian `dnsmasq-base`) and systemd-networkd; skipped without
//! them, unless `KNX_ECHARGE_INTEROP=1` (set by `tests/run`, which installs them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::KillOnDrop;

const NETWORKD: [&str; 2] = [
    "/usr/lib/systemd/systemd-networkd",
    "/lib/systemd/systemd-networkd",
];
const WEB_PORT: u16 = 8080;
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn networkd() -> Option<&'static str> {
    NETWORKD.into_iter().find(|p| Path::new(p).exists())
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the test can run here (root, ip, dnsmasq, networkd); else skip, or fail when
/// `tests/run` promised them.
fn can_run() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let missing: Vec<&str> = [
        (!root).then_some("root"),
        (!have("ip")).then_some("ip (iproute2)"),
        (!have("dnsmasq")).then_some("dnsmasq (dnsmasq-base)"),
        networkd().is_none().then_some("systemd-networkd"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("KNX_ECHARGE_INTEROP").is_none(),
        "KNX_ECHARGE_INTEROP is set but missing: {missing:?}"
    );
    eprintln!("SKIPPED: missing {missing:?}");
    false
}

fn must(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespace pair: `srv` (dnsmasq, `srv0` = 10.77.0.1/24) and `dev` (the gateway, `eth0`).
struct Pair {
    srv: String,
    dev: String,
}

impl Pair {
    fn new() -> Self {
        let id = std::process::id();
        let pair = Self {
            srv: format!("kecdhcp-srv-{id}"),
            dev: format!("kecdhcp-dev-{id}"),
        };
        for ns in [&pair.srv, &pair.dev] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            must(&["ip", "netns", "add", ns]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        must(&[
            "ip", "link", "add", "srv0", "netns", &pair.srv, "type", "veth", "peer", "name",
            "eth0", "netns", &pair.dev,
        ]);
        must(&[
            "ip",
            "-n",
            &pair.srv,
            "addr",
            "add",
            "10.77.0.1/24",
            "dev",
            "srv0",
        ]);
        must(&["ip", "-n", &pair.srv, "link", "set", "srv0", "up"]);
        pair
    }

    /// The IPv4 addresses (with prefix) on the device's `eth0`, as the kernel reports them.
    fn device_addresses(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-n", &self.dev, "-4", "-o", "addr", "show", "dev", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.position(|x| x == "inet")?;
                w.next().map(str::to_owned)
            })
            .collect()
    }

    /// Waits until an address on `eth0` satisfies `wanted`.
    fn wait_address(&self, what: &str, limit: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let now = self.device_addresses();
            if let Some(a) = now.iter().find(|a| wanted(a)) {
                return a.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on eth0 within {limit:?}: {now:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Forgets what networkd configured (as a reboot of the device would).
    fn reset_device_link(&self) {
        must(&["ip", "-n", &self.dev, "addr", "flush", "dev", "eth0"]);
        must(&["ip", "-n", &self.dev, "link", "set", "eth0", "down"]);
    }

    fn dnsmasq(&self, dir: &Path) -> KillOnDrop {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.srv, "dnsmasq", "--no-daemon"])
            .args([
                "--conf-file=/dev/null",
                "--interface=srv0",
                "--bind-interfaces",
                "--port=0",
                "--no-resolv",
                "--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,2m",
                "--dhcp-option=option:router,10.77.0.1",
                "--log-dhcp",
            ])
            .arg(format!("--dhcp-leasefile={}", dir.join("leases").display()))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("dnsmasq.log")).unwrap())
            .spawn()
            .unwrap();
        KillOnDrop(child)
    }

    /// systemd-networkd in the device namespace, reading `<root>/etc/systemd/network`.
    fn networkd(&self, root: &Path, log: &Path) -> KillOnDrop {
        let script = format!(
            "set -e; mount -t tmpfs tmpfs /run/systemd; mkdir -p /run/systemd/netif; \
             chown systemd-network /run/systemd/netif 2>/dev/null || true; \
             mount --bind '{}' /etc/systemd/network; mount -o remount,ro /sys; exec {}",
            root.join("etc/systemd/network").display(),
            networkd().unwrap()
        );
        let child = Command::new("ip")
            .args([
                "netns", "exec", &self.dev, "unshare", "-m", "sh", "-c", &script,
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        KillOnDrop(child)
    }

    /// The gateway binary in the device namespace with the website on every address.
    fn gateway(&self, config: &Path, data: &Path, root: &Path, log: &Path) -> KillOnDrop {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.dev])
            .arg(support::gateway_bin())
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .args(["--no-chargers", "--http", &format!("0.0.0.0:{WEB_PORT}")])
            .arg("--network-root")
            .arg(root)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        KillOnDrop(child)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.srv, &self.dev] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Runs `f` on a thread that has entered the network namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// The website's `device` view, seen from inside the device namespace (logged in).
fn website_device(pair: &Pair, password: &str) -> serde_json::Value {
    let password = password.to_owned();
    in_netns(&pair.dev, move || {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, WEB_PORT));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(cookie) = support::login(addr, &password)
                && let Some(v) = support::get_json(addr, "/api/v1/status", &cookie)
            {
                return v["device"].clone();
            }
            assert!(Instant::now() < deadline, "the website did not answer");
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

/// Polls the website until its `device.ip_obtained` is `obtained`; returns the view.
fn website_shows(pair: &Pair, password: &str, obtained: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let device = website_device(pair, password);
        if device["ip_obtained"] == obtained {
            return device;
        }
        assert!(
            Instant::now() < deadline,
            "the website never showed {obtained}: {device}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn initial_password(log: &Path) -> String {
    const SHOWN: &str = "initial password (shown once, at first start): ";
    let text = support::wait_for_log(log, SHOWN, Duration::from_secs(30));
    text.lines()
        .find_map(|l| l.split_once(SHOWN).map(|(_, p)| p.trim().to_owned()))
        .unwrap()
}

fn ip_config(dir: &Path, name: &str, section: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("[ip]\n{section}")).unwrap();
    path
}

fn in_range(a: &str) -> bool {
    a.split('/')
        .next()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        .is_some_and(|ip| {
            let o = ip.octets();
            o[..3] == [10, 77, 0] && (50..=99).contains(&o[3])
        })
}

#[test]
fn dhcp_link_local_fallback_static_and_misconfiguration_with_dnsmasq_and_networkd() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("root");
    let data = d.join("data");
    let pair = Pair::new();
    let dhcp = ip_config(d, "dhcp.toml", "mode = \"dhcp\"\n");
    let network_file = root.join("etc/systemd/network/50-knx-echarge.network");

    // 1. No DHCP server at start: link-local, then DHCP once the server answers.
    let started = Instant::now();
    let gateway = pair.gateway(&dhcp, &data, &root, &d.join("gateway1.log"));
    let password = initial_password(&d.join("gateway1.log"));
    support::wait_for_log(
        &d.join("gateway1.log"),
        "IP settings applied",
        Duration::from_secs(10),
    );
    let written = std::fs::read_to_string(&network_file).unwrap();
    assert!(written.contains("Name=eth0"), "{written}");
    assert!(written.contains("DHCP=ipv4"), "{written}");
    assert!(written.contains("LinkLocalAddressing=ipv4"), "{written}");
    let networkd = pair.networkd(&root, &d.join("networkd1.log"));
    let link_local = pair.wait_address("link-local address", Duration::from_secs(30), |a| {
        a.starts_with("169.254.")
    });
    let fallback_after = started.elapsed();
    let ll_ip = link_local.split('/').next().unwrap();
    let octets: Vec<u8> = ll_ip.split('.').map(|o| o.parse().unwrap()).collect();
    assert!(
        (1..=254).contains(&octets[2]),
        "RFC 3927 range 169.254.1.0–169.254.254.255: {link_local}"
    );
    let device = website_shows(&pair, &password, "link-local");
    assert_eq!(device["ip"], ll_ip, "{device}");
    assert_eq!(device["interface"], "eth0", "{device}");
    assert_eq!(device["dhcp"], true, "{device}");

    let server_back = Instant::now();
    let dnsmasq = pair.dnsmasq(d);
    let leased = pair.wait_address("DHCP address", Duration::from_secs(90), in_range);
    let lease_after = server_back.elapsed();
    let device = website_shows(&pair, &password, "dhcp");
    assert_eq!(device["ip"], leased.split('/').next().unwrap(), "{device}");
    eprintln!(
        "link-local after {fallback_after:?}; DHCP address {leased} {lease_after:?} after the server returned"
    );
    drop(networkd);
    drop(gateway);

    // 2. The server answers from the start: a DHCP address.
    pair.reset_device_link();
    let gateway = pair.gateway(&dhcp, &data, &root, &d.join("gateway2.log"));
    support::wait_for_log(
        &d.join("gateway2.log"),
        "IP settings applied",
        Duration::from_secs(20),
    );
    let started = Instant::now();
    let networkd = pair.networkd(&root, &d.join("networkd2.log"));
    let leased = pair.wait_address("DHCP address", Duration::from_secs(30), in_range);
    eprintln!("DHCP address {leased} after {:?}", started.elapsed());
    let device = website_shows(&pair, &password, "dhcp");
    assert_eq!(device["ip"], leased.split('/').next().unwrap(), "{device}");
    drop(networkd);
    drop(gateway);

    // 3. Static address, mask and gateway.
    pair.reset_device_link();
    let fixed = ip_config(
        d,
        "static.toml",
        "mode = \"static\"\naddress = \"10.77.0.7\"\nsubnet_mask = \"255.255.255.0\"\ngateway = \"10.77.0.1\"\n",
    );
    let gateway = pair.gateway(&fixed, &data, &root, &d.join("gateway3.log"));
    support::wait_for_log(
        &d.join("gateway3.log"),
        "IP settings applied",
        Duration::from_secs(20),
    );
    let written = std::fs::read_to_string(&network_file).unwrap();
    assert!(written.contains("Address=10.77.0.7/24"), "{written}");
    assert!(written.contains("Gateway=10.77.0.1"), "{written}");
    let networkd = pair.networkd(&root, &d.join("networkd3.log"));
    pair.wait_address("static address", Duration::from_secs(30), |a| {
        a == "10.77.0.7/24"
    });
    let routes = Command::new("ip")
        .args(["-n", &pair.dev, "-4", "route", "show", "default"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    assert!(routes.contains("via 10.77.0.1"), "default route: {routes}");
    let device = website_shows(&pair, &password, "static");
    assert_eq!(device["ip"], "10.77.0.7", "{device}");
    assert_eq!(device["configured_ip"], serde_json::Value::Null, "{device}");
    // Reachable on it from the other side of the cable.
    let answer = in_netns(&pair.srv, || {
        support::http(
            SocketAddr::from((Ipv4Addr::new(10, 77, 0, 7), WEB_PORT)),
            "GET",
            "/",
            &[],
            "",
        )
        .map(|a| a.status)
    });
    assert!(
        matches!(answer, Ok(200 | 303)),
        "website from {SERVER}: {answer:?}"
    );
    drop(networkd);
    drop(gateway);

    // 4. Static without an address: a configuration fault, and the device keeps DHCP.
    pair.reset_device_link();
    let broken = ip_config(
        d,
        "broken.toml",
        "mode = \"static\"\naddress = \"0.0.0.0\"\nsubnet_mask = \"255.255.255.0\"\n",
    );
    let gateway = pair.gateway(&broken, &data, &root, &d.join("gateway4.log"));
    let log = support::wait_for_log(
        &d.join("gateway4.log"),
        "IP settings applied",
        Duration::from_secs(20),
    );
    assert!(
        log.contains("configuration fault: permanent IP address selected without an IP address"),
        "{log}"
    );
    let written = std::fs::read_to_string(&network_file).unwrap();
    assert!(written.contains("DHCP=ipv4"), "{written}");
    let networkd = pair.networkd(&root, &d.join("networkd4.log"));
    let leased = pair.wait_address("DHCP address", Duration::from_secs(30), in_range);
    let device = website_shows(&pair, &password, "dhcp");
    assert_eq!(device["ip"], leased.split('/').next().unwrap(), "{device}");
    drop(networkd);
    drop(gateway);
    drop(dnsmasq);
}
