//! The gateway in the Windows network environment (spec 7.1), checked with a real UPnP control
//! point: async-upnp-client (the library Home Assistant uses) finds the running gateway binary
//! by M-SEARCH, reads its device description and gets the website as presentation URL; a
//! listener on the SSDP group sees NOTIFY ssdp:alive at start and ssdp:byebye at the stop.
//!
//! Everything runs inside a network namespace of its own (loopback with multicast switched on),
//! so nothing reaches the machine's real network and port 1900 is free.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

fn under_tests_run() -> bool {
    std::env::var_os("KNX_ECHARGE_INTEROP").is_some_and(|v| v == "1")
}

fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    assert!(
        !under_tests_run(),
        "{what} is missing although tests/run should have installed it"
    );
    eprintln!("\n######## SKIP: {what} is missing; run tests/run ########\n");
    false
}

fn python() -> Option<PathBuf> {
    let python = Path::new(CRATE).join(".venv/bin/python");
    Command::new(&python)
        .args(["-c", "import async_upnp_client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        .then_some(python)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn must(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace with only loopback, multicast on and routed there.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("ssdptest-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        must(&["ip", "netns", "add", &name]);
        let ns = Self(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["link", "set", "lo", "multicast", "on"]);
        ns.ip(&[
            "route",
            "add",
            "224.0.0.0/4",
            "dev",
            "lo",
            "src",
            "127.0.0.1",
        ]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.0, "ip"];
        all.extend_from_slice(args);
        must(&all);
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A child process whose stdout lines arrive on a channel; killed when dropped.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
        }
    }

    fn until(&self, within: Duration, want: impl Fn(&str) -> bool) -> Vec<String> {
        let end = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = want(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("not seen within {within:?}; got {seen:#?}");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn a_upnp_control_point_finds_the_gateway_and_its_website() {
    let Some(python) = python() else {
        require("async-upnp-client in .venv", false);
        return;
    };
    if !require("root (network namespaces)", is_root()) {
        return;
    }
    let ns = Netns::new();
    let data = tempfile::tempdir().unwrap();
    let peer = Path::new(CRATE).join("tests/interop/upnp_peer.py");

    // A listener on the group sees the announcements.
    let mut listen = ns.command(&python);
    listen.arg(&peer).arg("listen");
    let listener = Peer::start(listen);
    listener.until(Duration::from_secs(10), |l| l == "listening");

    let mut run = ns.command(Path::new(env!("CARGO_BIN_EXE_knx-echarge")));
    run.args(["run", "--config"])
        .arg(Path::new(CRATE).join("examples/single-charger.toml"))
        .args(["--no-chargers", "--knx", "server://127.0.0.1:3671"])
        .args(["--http", "0.0.0.0:8080", "--data-dir"])
        .arg(data.path());
    let mut gateway = Peer::start(run);

    let alive = listener.until(Duration::from_secs(20), |l| {
        json(l)["nt"] == "urn:schemas-upnp-org:device:Basic:1" && json(l)["nts"] == "ssdp:alive"
    });
    let alive = json(alive.last().unwrap());
    let location = alive["location"].as_str().unwrap().to_owned();
    assert!(location.ends_with(":8080/upnp/device.xml"), "{location}");
    let uuid = std::fs::read_to_string(data.path().join("upnp-uuid")).unwrap();
    assert_eq!(
        alive["usn"],
        format!("uuid:{uuid}::urn:schemas-upnp-org:device:Basic:1")
    );

    // M-SEARCH ssdp:all from the control point: three answers, one device.
    let mut search = ns.command(&python);
    search.arg(&peer).args(["search", "3"]);
    let searcher = Peer::start(search);
    let found = searcher.until(Duration::from_secs(30), |l| l == "done");
    let devices: Vec<serde_json::Value> = found
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| json(l))
        .collect();
    assert_eq!(devices.len(), 1, "{found:#?}");
    let d = &devices[0];
    assert_eq!(d["device_type"], "urn:schemas-upnp-org:device:Basic:1");
    assert_eq!(d["udn"], format!("uuid:{uuid}"));
    assert_eq!(d["friendly_name"], "knx-echarge 1.1.20");
    assert_eq!(d["model_number"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        d["st"],
        serde_json::json!([
            "upnp:rootdevice",
            "urn:schemas-upnp-org:device:Basic:1",
            format!("uuid:{uuid}"),
        ])
    );
    // The presentation URL is the website, and it answers there.
    let website = d["presentation_url"].as_str().unwrap().to_owned();
    assert!(
        website.starts_with("http://") && website.ends_with(":8080/"),
        "{website}"
    );
    let login = ns
        .command(&python)
        .args([
            "-c",
            "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).status)",
        ])
        .arg(&website)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&login.stdout).trim(), "200");

    // SIGTERM: ssdp:byebye before the gateway ends.
    let pid = gateway.child.id().to_string();
    must(&["kill", "-TERM", &pid]);
    listener.until(Duration::from_secs(20), |l| json(l)["nts"] == "ssdp:byebye");
    let status = gateway.child.wait().unwrap();
    assert!(status.success(), "{status}");
    drop(gateway.stdin.take());
}
