//! Helpers shared by the end-to-end test crates: processes that die with the test, free
//! loopback ports, the project's `.venv` Python, and headless Chromium.
#![allow(dead_code, reason = "each test crate uses a part of the helpers")]

pub(crate) mod netns;

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

/// The log file of a child process; when dropped during a failing test it prints the last
/// `lines` lines, so a failure in CI shows what the process did.
pub(crate) struct LogTailOnPanic {
    pub(crate) path: std::path::PathBuf,
    pub(crate) lines: usize,
}

impl Drop for LogTailOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(self.lines);
        eprintln!(
            "--- last {} lines of {} ---",
            all.len() - from,
            self.path.display()
        );
        for line in &all[from..] {
            eprintln!("{line}");
        }
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

/// Debian's libfaketime (package `libfaketime`, installed by `tests/run` with `faketime`), to
/// start the gateway with its wall clock at a chosen moment. `None` means skip; with
/// `KNX_ECHARGE_INTEROP=1` its absence fails the test instead.
pub(crate) fn libfaketime() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|arch| arch.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("KNX_ECHARGE_INTEROP").is_none(),
            "KNX_ECHARGE_INTEROP is set but libfaketime is missing (Debian package faketime)"
        );
        eprintln!("SKIPPED: no libfaketime; run tests/run");
    }
    found
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
    run_node_with(script, env, limit, |_| None);
}

/// [`run_node`] with a conversation: every line the script prints is echoed and handed to
/// `answer`; a `Some(reply)` is written back to the script's stdin as one line.
pub(crate) fn run_node_with(
    script: &str,
    env: &[(&str, &std::ffi::OsStr)],
    limit: std::time::Duration,
    mut answer: impl FnMut(&str) -> Option<String>,
) {
    use std::io::{BufRead as _, Write as _};
    use std::sync::mpsc::RecvTimeoutError;
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut node = KillOnDrop(cmd.spawn().expect("starting node"));
    let mut stdin = node.0.stdin.take().expect("piped stdin");
    let stdout = node.0.stdout.take().expect("piped stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + limit;
    let mut exited_at = None;
    loop {
        match lines.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(line) => {
                println!("{line}");
                if let Some(reply) = answer(&line) {
                    // A script that has ended no longer reads; its exit status tells why.
                    let _ = writeln!(stdin, "{reply}").and_then(|()| stdin.flush());
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = std::time::Instant::now();
        assert!(now < deadline, "{script} took longer than {limit:?}");
        // Its output is read to the end, unless something it started holds the pipe open.
        if exited_at.is_none() && node.0.try_wait().expect("waiting for node").is_some() {
            exited_at = Some(now);
        }
        if exited_at.is_some_and(|t| now.duration_since(t) > std::time::Duration::from_secs(2)) {
            break;
        }
    }
    let status = node.0.wait().expect("waiting for node");
    assert!(status.success(), "{script} failed: {status}");
}

/// One HTTP/1.1 request on its own connection (`Connection: close`, so the body is whatever
/// follows the head; the website answers with `Content-Length`, never chunked).
pub(crate) struct HttpAnswer {
    /// Status code (0 when the answer had none).
    pub(crate) status: u16,
    /// Status line and headers.
    pub(crate) head: String,
    /// The body, as sent.
    pub(crate) body: Vec<u8>,
}

impl HttpAnswer {
    /// The body as (lossy) UTF-8.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends `method path` with `headers` and `body` to `addr`.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<HttpAnswer> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(k);
        req.push_str(": ");
        req.push_str(v);
        req.push_str("\r\n");
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).into_owned();
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(HttpAnswer { status, head, body })
}

/// `POST /api/v1/login` with `password`: the session cookie (`kec_session=…`) when it logs in.
pub(crate) fn login(addr: SocketAddr, password: &str) -> Option<String> {
    let body = serde_json::json!({ "password": password }).to_string();
    let answer = http(
        addr,
        "POST",
        "/api/v1/login",
        &[("Content-Type", "application/json")],
        &body,
    )
    .ok()?;
    if answer.status != 200 {
        return None;
    }
    answer
        .head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.trim().split(';').next().map(str::to_owned))
}

/// `GET path` with the session `cookie`: the JSON answer, if 200.
pub(crate) fn get_json(addr: SocketAddr, path: &str, cookie: &str) -> Option<serde_json::Value> {
    let answer = http(addr, "GET", path, &[("Cookie", cookie)], "").ok()?;
    if answer.status == 200 {
        answer.json()
    } else {
        None
    }
}

/// Waits until the file at `path` (a process's captured log) contains `needle`; returns the
/// whole text, or panics with it after `limit`.
pub(crate) fn wait_for_log(path: &Path, needle: &str, limit: std::time::Duration) -> String {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{needle}` not logged within {limit:?}; log so far:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A line-driven child process (e.g. `tests/interop/xknx_peer.py`): commands on stdin, one
/// result per stdout line. Killed when dropped.
pub(crate) struct LinePeer {
    name: String,
    child: KillOnDrop,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl LinePeer {
    /// Starts `program args…`; its stdout lines are collected, stderr is echoed.
    pub(crate) fn start(name: &str, program: &Path, args: &[&str]) -> Self {
        use std::io::BufRead as _;
        let mut child = Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let label = name.to_owned();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("[{label}] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let label = name.to_owned();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("[{label} stderr] {line}");
            }
        });
        Self {
            name: name.to_owned(),
            stdin: child.stdin.take().expect("piped stdin"),
            child: KillOnDrop(child),
            lines,
        }
    }

    /// Sends one command line.
    pub(crate) fn send(&mut self, command: &str) {
        use std::io::Write as _;
        writeln!(self.stdin, "{command}").expect("writing to the peer");
        self.stdin.flush().expect("flushing the peer's stdin");
    }

    /// The next line starting with `prefix`; other lines are skipped, `ERR` lines and
    /// silence for `limit` fail the test.
    pub(crate) fn expect(&mut self, prefix: &str, limit: std::time::Duration) -> String {
        self.expect_where(prefix, |l| l.starts_with(prefix), limit)
    }

    /// The next line for which `want` holds (`what` names it in failures).
    pub(crate) fn expect_where(
        &mut self,
        what: &str,
        want: impl Fn(&str) -> bool,
        limit: std::time::Duration,
    ) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(line) => assert!(!line.starts_with("ERR"), "{}: {line}", self.name),
                Err(e) => panic!("{}: no `{what}` within {limit:?} ({e})", self.name),
            }
        }
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.0.try_wait().ok().flatten().is_none()
    }
}

/// The five models of the end-to-end tests: the example's models, with a Webasto Next (Modbus
/// TCP) in place of the example's RS485 Heidelberg.
pub(crate) const FIVE_MODELS: [knx_echarge::sim::SimModel; 5] = {
    use knx_echarge::sim::SimModel;
    [
        SimModel::KebaP30,
        SimModel::AbbTerraAc,
        SimModel::BenderCc,
        SimModel::AlfenEve,
        SimModel::WebastoNext,
    ]
};

/// Simulated charging points of `models`, each serving Modbus TCP on a loopback port of its
/// own: (handles, servers — stopped when dropped —, ports), in the order of `models`.
pub(crate) async fn tcp_simulators(
    models: impl IntoIterator<Item = knx_echarge::sim::SimModel>,
) -> (
    Vec<knx_echarge::sim::SimHandle>,
    Vec<knx_echarge::sim::SimServer>,
    Vec<u16>,
) {
    use knx_echarge::sim::{self, SimHandle};
    let (mut sims, mut servers, mut ports) = (Vec::new(), Vec::new(), Vec::new());
    for model in models {
        let handle = SimHandle::new(model);
        let server = sim::serve_tcp(handle.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("a simulator on loopback");
        ports.push(server.addr.expect("a TCP simulator's address").port());
        sims.push(handle);
        servers.push(server);
    }
    (sims, servers, ports)
}

/// The xknx tunnel peer of `tests/interop/xknx_peer.py`, connected to a gateway's built-in
/// server on 127.0.0.1:`port`: (peer, the individual address the tunnel got).
pub(crate) fn xknx_tunnel(python: &Path, port: u16) -> (LinePeer, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/xknx_peer.py");
    let port = port.to_string();
    let mut peer = LinePeer::start(
        "xknx",
        python,
        &[
            script.to_str().unwrap_or_default(),
            "tunnel",
            "--gateway",
            "127.0.0.1",
            "--port",
            &port,
            "--local-ip",
            "127.0.0.1",
        ],
    );
    let ready = peer.expect("READY", std::time::Duration::from_secs(20));
    (peer, ready.trim_start_matches("READY ").to_owned())
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

/// The gateway binary under test: `$KNX_ECHARGE_BIN` when set, else the one cargo built for
/// this test run. Worktrees of this repository sharing one target directory get the same
/// artifact names (cargo hashes path packages relative to the workspace root), so
/// `target/debug/knx-echarge` is whichever worktree linked last: copy it right after the
/// build and point `KNX_ECHARGE_BIN` at the copy.
pub(crate) fn gateway_bin() -> PathBuf {
    std::env::var_os("KNX_ECHARGE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_knx-echarge")),
        PathBuf::from,
    )
}

/// Where a retrofit meter answers.
#[derive(Clone, Copy)]
pub(crate) enum MeterAt {
    /// Modbus TCP at this endpoint.
    Tcp(SocketAddr),
    /// This client address on the RS485 line.
    Rs485(u8),
}

/// A retrofit meter of the pre-configured `model` (unit id 1) at `at`; everything else (the
/// manual register layout, unused with a model) at the parameter model's defaults.
pub(crate) fn model_meter(model: &str, at: MeterAt) -> knx_echarge::config::RetrofitMeter {
    use knx_echarge::catalog::{Interface, meter_model};
    use knx_echarge::config::RetrofitKind;
    let mut meter = default_meter();
    meter.kind = RetrofitKind::Model;
    meter.model = Some(meter_model(model).unwrap_or_else(|| panic!("no meter model {model}")));
    meter.unit_id = 1;
    match at {
        MeterAt::Tcp(SocketAddr::V4(v4)) => {
            meter.interface = Interface::Tcp;
            meter.ip = *v4.ip();
            meter.port = v4.port();
        }
        MeterAt::Tcp(addr) => panic!("IPv4 endpoint expected, got {addr}"),
        MeterAt::Rs485(address) => {
            meter.interface = Interface::Rs485;
            meter.rs485_address = address;
        }
    }
    meter
}

/// The retrofit-meter parameters at their defaults (`etsdb/parameters.toml`).
pub(crate) fn default_meter() -> knx_echarge::config::RetrofitMeter {
    knx_echarge::config::Config::defaults()
        .charging_points
        .first()
        .expect("the defaults hold five charging points")
        .meter
        .clone()
}

/// Malformed KNXnet/IP datagrams for a tunnelling server whose only tunnel has `channel`
/// (truncated, wrong length, unknown service, bad channel, garbage cEMI, bad NPDU length,
/// wrong version, noise), each with what it is. A server must drop each with one warning and
/// keep serving.
pub(crate) fn malformed_datagrams(channel: u8) -> Vec<(&'static str, Vec<u8>)> {
    use knx_echarge::knx::wire::apdu::{Apdu, Payload, Tpdu};
    use knx_echarge::knx::wire::cemi::{Cemi, Destination, LData, LDataService};
    use knx_echarge::knx::wire::knxip::{Hpai, KnxIpFrame};
    use knx_echarge::knx::{GroupAddress, IndividualAddress};
    let write = |ga: &str| {
        Cemi::LData(LData::new(
            LDataService::Req,
            IndividualAddress::from_raw(0),
            Destination::Group(ga.parse::<GroupAddress>().expect("a group address")),
            Tpdu::Data(Apdu::GroupValueWrite(Payload::Short(1))),
        ))
    };
    let frame = |f: KnxIpFrame| f.to_bytes().expect("a well-formed frame encodes");
    let mut wrong_total = frame(KnxIpFrame::ConnectionStateRequest {
        channel_id: channel,
        control_endpoint: Hpai::udp(std::net::Ipv4Addr::LOCALHOST, 9),
    });
    wrong_total[5] += 3;
    let bad_channel = frame(KnxIpFrame::TunnellingRequest {
        channel_id: 0xEE,
        sequence: 0,
        cemi: write("5/5/5"),
    });
    let mut garbage_cemi = frame(KnxIpFrame::TunnellingRequest {
        channel_id: channel,
        sequence: 0,
        cemi: write("5/5/6"),
    });
    garbage_cemi[11] = 0xFF; // additional-info length far past the end
    let mut bad_npdu_len = garbage_cemi.clone();
    bad_npdu_len[11] = 0x00;
    bad_npdu_len[18] = 0x09; // NPDU length 9, one byte present
    vec![
        ("truncated header", vec![0x06, 0x10, 0x04]),
        ("wrong total length", wrong_total),
        (
            "unknown service type",
            vec![0x06, 0x10, 0x07, 0x77, 0x00, 0x08, 0xDE, 0xAD],
        ),
        ("TUNNELLING_REQUEST with a bad channel", bad_channel),
        ("garbage cEMI", garbage_cemi),
        ("cEMI with a wrong NPDU length", bad_npdu_len),
        (
            "wrong protocol version",
            vec![0x06, 0x20, 0x02, 0x03, 0x00, 0x06],
        ),
        ("noise", (0u8..64).map(|i| i.wrapping_mul(37)).collect()),
    ]
}

/// A pty pair (made in-process) standing in for the RS485 line; `None` (skip) when the
/// system has no ptys, unless `KNX_ECHARGE_INTEROP` says the peers are installed (then it is a
/// failure).
pub(crate) fn ptys() -> Option<knx_echarge::sim::pty::PtyPair> {
    match knx_echarge::sim::pty::PtyPair::open() {
        Ok(p) => Some(p),
        Err(e) if std::env::var_os("KNX_ECHARGE_INTEROP").is_none() => {
            eprintln!("skipping: no pty pair ({e})");
            None
        }
        Err(e) => panic!("a pty pair is required: {e}"),
    }
}
