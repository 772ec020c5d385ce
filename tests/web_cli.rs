//! The device website as the shipped gateway process starts it: the systemd unit serves it
//! (its `ExecStart` flags are accepted by the command line), and the generated initial password
//! is printed at the first start only — and is the password that logs in.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{KillOnDrop, free_tcp};

/// The arguments of the unit file's `ExecStart` (after the program).
fn unit_exec_start() -> Vec<String> {
    let unit = std::fs::read_to_string("hw/knx-echarge.service").unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("ExecStart="))
        .expect("ExecStart in the unit file");
    let mut words = line.split_whitespace().map(str::to_owned);
    assert_eq!(words.next().as_deref(), Some("/usr/bin/knx-echarge"));
    words.collect()
}

#[test]
fn the_shipped_unit_serves_the_website_with_flags_the_cli_accepts() {
    let args = unit_exec_start();
    assert_eq!(args.first().map(String::as_str), Some("run"));
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .unwrap_or_else(|| panic!("{flag} with a value in ExecStart: {args:?}"))
            .clone()
    };
    let http: SocketAddr = value("--http").parse().unwrap();
    assert_eq!(http, SocketAddr::from(([0, 0, 0, 0], 80)));
    // The bus: KNX/TP through the TP-UART of the built-in board description.
    let knx: knx_echarge::knx::link::LinkSpec = value("--knx").parse().unwrap();
    let board = knx_echarge::hw::Board::builtin().unwrap();
    assert_eq!(
        knx,
        knx_echarge::knx::link::LinkSpec::Tpuart {
            path: board.serial.tpuart.device
        }
    );
    // Every flag of the unit is one `run` knows.
    let help = Command::new(support::gateway_bin())
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(flag.as_str()),
            "{flag} not in `run --help`:\n{help}"
        );
    }
    // The whole command line parses: with the board file swapped for a missing one the
    // gateway gets as far as loading it (a parse error would stop it before).
    let dir = tempfile::tempdir().unwrap();
    let board = dir.path().join("missing-board.toml");
    let mut run = args.clone();
    let at = |flag: &str| run.iter().position(|a| a == flag).unwrap() + 1;
    let (d, b) = (at("--data-dir"), at("--board"));
    run[d] = dir.path().join("data").display().to_string();
    run[b] = board.display().to_string();
    let out = Command::new(support::gateway_bin())
        .args(&run)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("missing-board.toml"), "{text}");
    assert!(
        !text.contains("Usage:"),
        "the command line was refused: {text}"
    );
}

/// A started `knx-echarge run` with its stderr collected line by line.
struct Gateway {
    _child: KillOnDrop,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Gateway {
    fn start(data: &std::path::Path, http: SocketAddr) -> Self {
        let mut child = Command::new(support::gateway_bin())
            .args([
                "run",
                "--config",
                "examples/single-charger.toml",
                "--no-chargers",
            ])
            .arg("--data-dir")
            .arg(data)
            .args(["--http", &http.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            _child: KillOnDrop(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until the website logged that it listens; returns everything printed so far.
    fn until_serving(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .seen
            .iter()
            .any(|l| l.contains("device website on http://"))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(e) => panic!("the website did not start ({e}):\n{}", self.seen.join("\n")),
            }
        }
        self.seen.join("\n")
    }
}

/// `POST /api/v1/login` over plain HTTP/1.1; the status code.
fn login_status(http: SocketAddr, password: &str) -> u16 {
    let body = serde_json::json!({ "password": password }).to_string();
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/v1/login HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer}"))
}

#[test]
fn the_generated_initial_password_is_printed_at_the_first_start_only() {
    const SHOWN: &str = "initial password (shown once, at first start): ";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let http = free_tcp();
    let mut first = Gateway::start(&data, http);
    let out = first.until_serving();
    let password = out
        .lines()
        .find_map(|l| l.split_once(SHOWN).map(|(_, p)| p.trim().to_owned()))
        .unwrap_or_else(|| panic!("no initial password printed:\n{out}"));
    knx_echarge::web::auth::check_strength(&password).unwrap();
    assert_eq!(
        login_status(http, &password),
        200,
        "the printed password logs in"
    );
    assert_eq!(login_status(http, "not-the-password"), 401);
    let stored = std::fs::read_to_string(data.join(knx_echarge::web::auth::PASSWORD_FILE)).unwrap();
    assert!(!stored.contains(&password), "only the hash is stored");
    drop(first);

    let http = free_tcp();
    let mut second = Gateway::start(&data, http);
    let out = second.until_serving();
    assert!(!out.contains("initial password"), "printed again:\n{out}");
    assert!(!out.contains(&password), "printed again:\n{out}");
    assert_eq!(
        login_status(http, &password),
        200,
        "the same password still logs in"
    );
}

/// The settings of the unit file's `[Service]` section, `key → values` (repeated keys add).
fn unit_settings() -> Vec<(String, String)> {
    let unit = std::fs::read_to_string("hw/knx-echarge.service").unwrap();
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Issue 17: the shipped unit runs the gateway with systemd's hardening: its own user with
/// only the capability to bind port 80, no new privileges, a read-only system, only its
/// device nodes, and an open-file limit the website's connection cap is sized against.
#[test]
fn the_shipped_unit_is_hardened() {
    let settings = unit_settings();
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| {
        let v = get(key);
        assert_eq!(v.len(), 1, "{key} once in the unit: {v:?}");
        v[0].to_owned()
    };
    assert_eq!(one("User"), "knx-echarge");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("ProtectHome"), "yes");
    assert_eq!(one("PrivateTmp"), "yes");
    assert_eq!(one("CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one("DevicePolicy"), "closed");
    let devices = get("DeviceAllow");
    // The device nodes hw/board.toml names: serial ports (RS485, TP-UART) and the GPIO chip.
    let board = std::fs::read_to_string("hw/board.toml").unwrap();
    for node in board.lines().filter_map(|l| {
        l.split_once("\"/dev/")
            .map(|(_, d)| d.trim_end_matches('"'))
    }) {
        // Input devices (the gpio-keys button) are read only: class char-input.
        if node.starts_with("input/") {
            assert!(
                devices.contains(&"char-input r"),
                "/dev/{node} not allowed: {devices:?}"
            );
            continue;
        }
        let group = node.trim_end_matches(|c: char| c.is_ascii_digit());
        assert!(
            devices.contains(&format!("char-{group} rw").as_str()),
            "/dev/{node} not allowed: {devices:?}"
        );
    }
    let nofile: usize = one("LimitNOFILE").parse().unwrap();
    let limits = knx_echarge::web::serve::Limits::default();
    assert!(
        nofile >= limits.max_connections + limits.reserved_fds + 64,
        "LimitNOFILE {nofile} leaves too little for the website's cap and the reserve"
    );
    assert_eq!(one("StateDirectory"), "knx-echarge");
    // The user exists: the sysusers.d entry creates it with the groups for the devices.
    let sysusers = std::fs::read_to_string("hw/knx-echarge.sysusers.conf").unwrap();
    assert!(sysusers.lines().any(|l| l.starts_with("u knx-echarge ")));
    for group in one("SupplementaryGroups").split_whitespace() {
        assert!(
            sysusers.contains(&format!("m knx-echarge {group}")),
            "{group} not in the sysusers entry"
        );
    }
    // systemd itself accepts the unit, where systemd-analyze is installed.
    if let Ok(out) = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg("hw/knx-echarge.service")
        .output()
    {
        let text = String::from_utf8_lossy(&out.stderr);
        let complaints: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("knx-echarge.service:"))
            // The binary is not installed here.
            .filter(|l| !l.contains("is not executable"))
            .collect();
        assert!(complaints.is_empty(), "systemd-analyze: {text}");
    }
}
