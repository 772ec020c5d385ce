//! Interop tests of the KNX links (`knx::link`) against real peers: xknx (PyPI, run from
//! `<crate>/.venv`) and knxd (Debian) in a network namespace.
//!
//! `tests/run` installs the peers and sets `KNX_ECHARGE_INTEROP=1`; under it every test here
//! must run. Outside it a test whose peer is missing prints a loud SKIP and passes.
//!
//! * `server_*`: the built-in tunnelling server on 127.0.0.1 with xknx tunnelling clients.
//! * `client_*`: the tunnelling client against knxd in a namespace (knxd does not serve
//!   tunnels on loopback), with xknx as a second knxd client; link cut and knxd restart.
//! * `routing_*`: the routing link and knxd's router exchanging multicast over the veth pair.
//! * `discovery_*`: the gateway binary's server on 0.0.0.0 in a namespace on two networks,
//!   found by xknx's `GatewayScanner` and tunnelled to from each.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::netns::{must, reserve_subnet, sh};

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use knx_echarge::knx::link::{LinkEvent, LinkHandle, LinkSpec, LinkState, spawn};
use knx_echarge::knx::wire::apdu::{Apdu, Payload, Tpdu};
use knx_echarge::knx::wire::cemi::{Destination, LData, LDataService};
use knx_echarge::knx::{GroupAddress, IndividualAddress};
use tokio::sync::mpsc;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");
/// Generous: the CI machine has 2 cores and runs tests in parallel.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);
const FRAME_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// Prerequisites
// ---------------------------------------------------------------------------------------

fn under_tests_run() -> bool {
    std::env::var_os("KNX_ECHARGE_INTEROP").is_some_and(|v| v == "1")
}

/// Fails under tests/run, else prints a loud SKIP; returns false when the test must stop.
fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    assert!(
        !under_tests_run(),
        "{what} is missing although tests/run should have installed it"
    );
    eprintln!(
        "\n\n######## SKIP: {what} is missing; run tests/run to install the interop peers ########\n"
    );
    false
}

fn python() -> Option<PathBuf> {
    let python = Path::new(CRATE).join(".venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import xknx"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn need_xknx() -> Option<PathBuf> {
    let python = python();
    require("xknx in .venv", python.is_some()).then_some(python?)
}

/// xknx, `ip` and root: what a test with its own network namespaces needs.
fn need_namespaces() -> Option<PathBuf> {
    let python = need_xknx()?;
    if !require("ip (iproute2)", have("ip")) || !require("root (network namespaces)", is_root()) {
        return None;
    }
    Some(python)
}

fn need_netns() -> Option<PathBuf> {
    let python = need_namespaces()?;
    require("knxd (Debian package knxd)", have("knxd")).then_some(python)
}

/// Logs of the link go to the test output (`RUST_LOG` to change the level).
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "knx_echarge=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

// ---------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------

fn ga(text: &str) -> GroupAddress {
    text.parse().unwrap()
}

fn ia(text: &str) -> IndividualAddress {
    text.parse().unwrap()
}

fn write(dest: &str, payload: Payload) -> LData {
    LData::new(
        LDataService::Req,
        IndividualAddress::from_raw(0),
        Destination::Group(ga(dest)),
        Tpdu::Data(Apdu::GroupValueWrite(payload)),
    )
}

/// Waits for a frame to `dest`, skipping other events.
async fn expect_frame(link: &mut LinkHandle, dest: &str) -> LData {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, link.from_bus.recv()).await {
            Ok(Some(LinkEvent::Frame(f))) if f.destination == Destination::Group(ga(dest)) => {
                return f;
            }
            Ok(Some(other)) => eprintln!("(skipping {other:?})"),
            Ok(None) => panic!("link closed while waiting for a frame to {dest}"),
            Err(elapsed) => panic!("no frame to {dest}: {elapsed}"),
        }
    }
}

/// Waits for one of `states`, skipping frames; returns the state seen.
async fn expect_state(link: &mut LinkHandle, states: &[LinkState], within: Duration) -> LinkState {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, link.from_bus.recv()).await {
            Ok(Some(LinkEvent::State(s))) if states.contains(&s) => return s,
            Ok(Some(other)) => eprintln!("(skipping {other:?})"),
            Ok(None) => panic!("link closed while waiting for {states:?}"),
            Err(elapsed) => panic!("no state in {states:?}: {elapsed}"),
        }
    }
}

fn assert_group_write(frame: &LData, source: &str, payload: &Payload) {
    assert_eq!(frame.service, LDataService::Ind);
    assert_eq!(frame.source, ia(source), "source of {frame}");
    assert_eq!(
        frame.tpdu,
        Tpdu::Data(Apdu::GroupValueWrite(payload.clone())),
        "TPDU of {frame}"
    );
}

// ---------------------------------------------------------------------------------------
// The xknx peer (tests/interop/xknx_peer.py)
// ---------------------------------------------------------------------------------------

struct Peer {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Peer {
    fn start(python: &Path, name: &str, args: &[&str], netns: Option<&str>) -> Self {
        let script = Path::new(CRATE).join("tests/interop/xknx_peer.py");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(python);
                c
            }
            None => Command::new(python),
        };
        cmd.arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start the xknx peer");
        let (tx, rx) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let label = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[{label}] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let label = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{label} stderr] {line}");
            }
        });
        Self {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix` (earlier lines stay in `seen`).
    async fn expect(&mut self, prefix: &str) -> String {
        self.expect_where(prefix, |l| l.starts_with(prefix)).await
    }

    /// Waits for the RX line of a telegram to `dest`.
    async fn expect_rx(&mut self, dest: &str) -> String {
        let needle = format!(" {dest} ");
        self.expect_where(&format!("RX … {dest}"), |l| {
            l.starts_with("RX ") && l.contains(&needle)
        })
        .await
    }

    async fn expect_where(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        if let Some(pos) = self.seen.iter().position(|l| want(l)) {
            return self.seen.remove(pos);
        }
        let deadline = tokio::time::Instant::now() + PEER_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if want(&line) => return line,
                Ok(Some(line)) => {
                    assert!(!line.starts_with("ERR"), "{}: {line}", self.name);
                    self.seen.push(line);
                }
                Ok(None) => panic!("{} exited while waiting for `{what}`", self.name),
                Err(elapsed) => panic!("{}: no `{what}`: {elapsed}", self.name),
            }
        }
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// Asks the peer to disconnect and waits (bounded) for it to exit.
    async fn quit(mut self) {
        self.send("quit");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("{} did not quit in time; killing it", self.name);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn ready(peer: &mut Peer) -> String {
    let line = peer.expect("READY").await;
    line.trim_start_matches("READY ").to_owned()
}

// ---------------------------------------------------------------------------------------
// (a) server <-> xknx
// ---------------------------------------------------------------------------------------

async fn start_server(own: &str) -> (LinkHandle, u16) {
    let spec = LinkSpec::Server {
        bind: "127.0.0.1:0".parse().unwrap(),
    };
    let mut link = spawn(spec, ia(own)).await.unwrap();
    let port = link.local_addr().port();
    assert_eq!(
        expect_state(&mut link, &[LinkState::Connected], FRAME_TIMEOUT).await,
        LinkState::Connected
    );
    (link, port)
}

fn tunnel_args(gateway: &str, port: u16, local: &str) -> Vec<String> {
    vec![
        "tunnel".into(),
        "--gateway".into(),
        gateway.into(),
        "--port".into(),
        port.to_string(),
        "--local-ip".into(),
        local.into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_serves_xknx_tunnels() {
    init_tracing();
    let Some(python) = need_xknx() else { return };
    let started = Instant::now();
    let (mut link, port) = start_server("1.1.10").await;
    let args = tunnel_args("127.0.0.1", port, "127.0.0.1");

    // SEARCH and DESCRIPTION, parsed by xknx.
    let mut describe = Peer::start(
        &python,
        "describe",
        &[
            "describe",
            "--gateway",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--local-ip",
            "127.0.0.1",
        ],
        None,
    );
    let line = describe.expect("DESCRIPTION").await;
    assert_eq!(
        line,
        "DESCRIPTION name=knx-echarge address=1.1.10 tunnelling=True routing=False"
    );
    let line = describe.expect("SEARCH").await;
    assert_eq!(
        line,
        "SEARCH name=knx-echarge address=1.1.10 tunnelling=True routing=False"
    );

    // Client A connects and gets the first tunnel address.
    let mut a = Peer::start(&python, "xknx-a", &strs(&args), None);
    assert_eq!(ready(&mut a).await, "1.1.11");

    // A writes DPT 1 and a 4-byte value: the gateway receives both.
    a.send("write 1/2/3 bin:1");
    let f = expect_frame(&mut link, "1/2/3").await;
    assert_group_write(&f, "1.1.11", &Payload::Short(1));
    a.expect("SENT 1/2/3").await; // xknx got its L_Data.con
    a.send("write 1/2/4 arr:41a00000");
    let f = expect_frame(&mut link, "1/2/4").await;
    assert_group_write(&f, "1.1.11", &Payload::Long(vec![0x41, 0xa0, 0, 0]));
    a.expect("SENT 1/2/4").await;

    // The gateway writes: A receives it from the gateway's address.
    link.to_bus
        .send(write("2/0/1", Payload::Short(0)))
        .await
        .unwrap();
    link.to_bus
        .send(write("2/0/2", Payload::Long(vec![0x0c, 0x1a])))
        .await
        .unwrap();
    assert_eq!(
        a.expect("RX 1.1.10 2/0/1").await,
        "RX 1.1.10 2/0/1 GroupValueWrite bin:0"
    );
    assert_eq!(
        a.expect("RX 1.1.10 2/0/2").await,
        "RX 1.1.10 2/0/2 GroupValueWrite arr:0c1a"
    );

    // Client B: A and B see each other's telegrams; the gateway sees both.
    let mut b = Peer::start(&python, "xknx-b", &strs(&args), None);
    assert_eq!(ready(&mut b).await, "1.1.12");
    b.send("write 3/3/3 bin:1");
    assert_eq!(
        a.expect("RX 1.1.12 3/3/3").await,
        "RX 1.1.12 3/3/3 GroupValueWrite bin:1"
    );
    assert_group_write(
        &expect_frame(&mut link, "3/3/3").await,
        "1.1.12",
        &Payload::Short(1),
    );
    a.send("write 3/3/4 arr:ff");
    assert_eq!(
        b.expect("RX 1.1.11 3/3/4").await,
        "RX 1.1.11 3/3/4 GroupValueWrite arr:ff"
    );
    assert_group_write(
        &expect_frame(&mut link, "3/3/4").await,
        "1.1.11",
        &Payload::Long(vec![0xff]),
    );
    link.to_bus
        .send(write("2/0/3", Payload::Short(1)))
        .await
        .unwrap();
    a.expect("RX 1.1.10 2/0/3").await;
    b.expect("RX 1.1.10 2/0/3").await;
    assert!(
        !a.seen.iter().any(|l| l.contains(" 3/3/4 ")),
        "A must not get its own telegram back: {:?}",
        a.seen
    );

    a.quit().await;
    b.quit().await;
    link.shutdown().await;
    eprintln!("server_serves_xknx_tunnels took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------
// (e) malformed datagrams to the server
// ---------------------------------------------------------------------------------------

/// A tracing writer that keeps the log for the test to count lines (and echoes it).
#[derive(Clone, Default)]
struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn count(&self, needle: &str) -> usize {
        self.text()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains(needle))
            .count()
    }
}

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        eprint!("{}", String::from_utf8_lossy(buf));
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// Current-thread runtime: the link task runs on the test thread, so the thread-local
/// subscriber below sees its log.
#[tokio::test]
async fn server_drops_malformed_datagrams_and_keeps_serving() {
    let log = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("knx_echarge=debug")
        .with_ansi(false)
        .with_writer(log.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let Some(python) = need_xknx() else { return };
    let (mut link, port) = start_server("1.1.10").await;
    let server: SocketAddr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut a = Peer::start(
        &python,
        "xknx-a",
        &strs(&tunnel_args("127.0.0.1", port, "127.0.0.1")),
        None,
    );
    assert_eq!(ready(&mut a).await, "1.1.11");
    // The only tunnel of a fresh server has channel 1.
    let channel = 1u8;

    let cases = support::malformed_datagrams(channel);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let before = log.count("dropped");
    for (n, (what, datagram)) in cases.iter().enumerate() {
        sock.send_to(datagram, server).await.unwrap();
        let deadline = Instant::now() + FRAME_TIMEOUT;
        while log.count("dropped") < before + n + 1 {
            assert!(Instant::now() < deadline, "no warning for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Nothing was answered to the garbage.
    let mut buf = [0u8; 512];
    let answer = tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await;
    assert!(
        answer.is_err(),
        "malformed input must not be answered: {answer:?}"
    );

    // The xknx client still works both ways.
    a.send("write 1/2/3 bin:1");
    assert_group_write(
        &expect_frame(&mut link, "1/2/3").await,
        "1.1.11",
        &Payload::Short(1),
    );
    a.expect("SENT 1/2/3").await;
    link.to_bus
        .send(write("2/0/1", Payload::Short(1)))
        .await
        .unwrap();
    a.expect("RX 1.1.10 2/0/1").await;
    assert_eq!(
        log.count("dropped"),
        before + cases.len(),
        "exactly one warning per malformed datagram"
    );
    assert!(
        !a.seen.iter().any(|l| l.contains("5/5/")),
        "garbage reached xknx: {:?}",
        a.seen
    );
    a.quit().await;
    link.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Network namespace with knxd (b, c, d)
// ---------------------------------------------------------------------------------------

/// The shared test namespace (`support::netns`: `knxtest-<k>`, veth `kxt<k>o`/`kxt<k>i`)
/// with knxd inside. Dropping it kills knxd before the namespace goes.
struct Netns {
    ns: support::netns::Netns,
    knxd: Option<Child>,
    knxd_log: PathBuf,
}

impl std::ops::Deref for Netns {
    type Target = support::netns::Netns;

    fn deref(&self) -> &Self::Target {
        &self.ns
    }
}

impl Netns {
    fn new() -> Self {
        let ns = support::netns::Netns::new("knxtest", "kxt");
        let knxd_log = std::env::temp_dir().join(format!("knx-echarge-knxd-{}.log", ns.k));
        Self {
            ns,
            knxd: None,
            knxd_log,
        }
    }

    fn knxd_endpoint(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ns_ip, 3671))
    }

    /// Starts knxd in the namespace (tunnelling, routing, discovery, knxd's own TCP client
    /// port for knxtool; a dummy bus) and waits until it answers a DESCRIPTION_REQUEST.
    async fn start_knxd(&mut self) {
        let log = File::create(&self.knxd_log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, "knxd"])
            .args(["-e", "0.0.1", "-E", "0.0.2:8", "-D", "-T", "-R", "-S", "-i"])
            .args(["-I", &self.inner, "-b", "dummy:"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start knxd");
        self.knxd = Some(child);
        let deadline = Instant::now() + PEER_TIMEOUT;
        while !self.knxd_answers().await {
            if let Some(status) = self.knxd.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("knxd exited with {status}: {}", self.knxd_log_text());
            }
            assert!(
                Instant::now() < deadline,
                "knxd does not answer: {}",
                self.knxd_log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn knxd_answers(&self) -> bool {
        use knx_echarge::knx::wire::knxip::{Hpai, KnxIpFrame};
        let Ok(sock) = tokio::net::UdpSocket::bind((self.host_ip, 0)).await else {
            return false;
        };
        let SocketAddr::V4(local) = sock.local_addr().unwrap() else {
            unreachable!()
        };
        let request = KnxIpFrame::DescriptionRequest {
            control_endpoint: Hpai::udp(*local.ip(), local.port()),
        }
        .to_bytes()
        .unwrap();
        if sock.send_to(&request, self.knxd_endpoint()).await.is_err() {
            return false;
        }
        let mut buf = [0u8; 512];
        matches!(
            tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await,
            Ok(Ok((n, _))) if matches!(KnxIpFrame::parse(&buf[..n]), Ok(KnxIpFrame::DescriptionResponse(_)))
        )
    }

    /// Stops knxd with SIGTERM (as a service manager would), bounded.
    async fn stop_knxd(&mut self) {
        if let Some(mut child) = self.knxd.take() {
            let _ = sh(&["kill", "-TERM", &child.id().to_string()]);
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn knxd_log_text(&self) -> String {
        fs::read_to_string(&self.knxd_log).unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut child) = self.knxd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- knxd log ----\n{}", self.knxd_log_text());
        }
        let _ = fs::remove_file(&self.knxd_log);
    }
}

async fn tunnel_to(ns: &Netns) -> LinkHandle {
    let spec = LinkSpec::Tunnel {
        remote: ns.knxd_endpoint(),
    };
    let mut link = spawn(spec, ia("1.1.10")).await.unwrap();
    expect_state(&mut link, &[LinkState::Connected], PEER_TIMEOUT).await;
    link
}

fn xknx_via_knxd(python: &Path, ns: &Netns, name: &str) -> Peer {
    let args = tunnel_args(&ns.ns_ip.to_string(), 3671, &ns.host_ip.to_string());
    Peer::start(python, name, &strs(&args), None)
}

/// The source address in an `RX <src> <dst> …` line.
fn rx_source(line: &str) -> String {
    line.split_whitespace().nth(1).unwrap().to_owned()
}

/// Sends a gateway frame and waits until the xknx peer prints it; returns the RX line.
async fn gateway_to_xknx(
    link: &LinkHandle,
    peer: &mut Peer,
    dest: &str,
    payload: Payload,
    text: &str,
) -> String {
    link.to_bus.send(write(dest, payload)).await.unwrap();
    let line = peer.expect_rx(dest).await;
    assert!(
        line.ends_with(&format!(" {dest} GroupValueWrite {text}")),
        "{line}"
    );
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_talks_to_knxd_and_xknx() {
    init_tracing();
    let Some(python) = need_netns() else { return };
    let started = Instant::now();
    let mut ns = Netns::new();
    ns.start_knxd().await;
    let mut link = tunnel_to(&ns).await;
    let mut x = xknx_via_knxd(&python, &ns, "xknx");
    let x_addr = ready(&mut x).await;

    // xknx -> knxd -> our client.
    x.send("write 1/2/3 bin:1");
    assert_group_write(
        &expect_frame(&mut link, "1/2/3").await,
        &x_addr,
        &Payload::Short(1),
    );
    x.send("write 1/2/4 arr:41a00000");
    let f = expect_frame(&mut link, "1/2/4").await;
    assert_group_write(&f, &x_addr, &Payload::Long(vec![0x41, 0xa0, 0, 0]));

    // Our client -> knxd -> xknx; the source is the address knxd gave our tunnel.
    let line = gateway_to_xknx(&link, &mut x, "2/0/1", Payload::Short(1), "bin:1").await;
    let ours = rx_source(&line);
    assert!(
        ours.starts_with("0.0.") && ours != x_addr && ours != "0.0.1",
        "{line}"
    );
    gateway_to_xknx(
        &link,
        &mut x,
        "2/0/2",
        Payload::Long(vec![0x0c, 0x1a]),
        "arr:0c1a",
    )
    .await;

    // knxd's own client tool as a third peer.
    if have("knxtool") || under_tests_run() {
        let url = format!("ip:{}", ns.ns_ip);
        let out = sh(&["knxtool", "groupswrite", &url, "1/2/5", "1"]);
        assert!(
            out.status.success(),
            "knxtool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let f = expect_frame(&mut link, "1/2/5").await;
        assert_eq!(f.tpdu, Tpdu::Data(Apdu::GroupValueWrite(Payload::Short(1))));
    }

    x.quit().await;
    link.shutdown().await;
    eprintln!("client_talks_to_knxd_and_xknx took {:?}", started.elapsed());
}

/// Allowed time from restoring the server to `Connected`, as the issue asks: 10 s. The
/// client's back-off is capped at 8 s (`tunnel::MAX_BACKOFF`), which leaves 2 s for the
/// CONNECT round trip on a loaded machine.
const RECOVERY: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnects_after_link_cut_and_knxd_restart() {
    init_tracing();
    let Some(python) = need_netns() else { return };
    assert!(knx_echarge::knx::link::tunnel::MAX_BACKOFF + Duration::from_secs(2) <= RECOVERY);
    let started = Instant::now();
    let mut ns = Netns::new();
    ns.start_knxd().await;
    let mut link = tunnel_to(&ns).await;

    // 1. Cut the link: the next frame gets no ACK, twice, and the connection is lost.
    ns.set_link(false);
    link.to_bus
        .send(write("2/0/9", Payload::Short(1)))
        .await
        .unwrap();
    let state = expect_state(
        &mut link,
        &[LinkState::Reconnecting, LinkState::Down],
        FRAME_TIMEOUT,
    )
    .await;
    eprintln!("link cut: {state:?} after {:?}", started.elapsed());
    // An outage long enough for the back-off to reach its cap (1 + 2 + 4 + 8 s), so that the
    // 10 s promise is checked in its worst case, not right after the first quick attempts.
    let ramp: Duration = (0..4).map(knx_echarge::knx::link::tunnel::backoff).sum();
    tokio::time::sleep(ramp + Duration::from_secs(1)).await;
    ns.set_link(true);
    let restored = Instant::now();
    expect_state(&mut link, &[LinkState::Connected], PEER_TIMEOUT).await;
    let took = restored.elapsed();
    eprintln!("reconnected {took:?} after the link came back");
    assert!(took <= RECOVERY, "reconnect took {took:?}");

    // Telegrams flow again, both ways (the frame queued during the outage arrives too).
    let mut x = xknx_via_knxd(&python, &ns, "xknx-1");
    let x_addr = ready(&mut x).await;
    x.send("write 1/2/3 bin:1");
    assert_group_write(
        &expect_frame(&mut link, "1/2/3").await,
        &x_addr,
        &Payload::Short(1),
    );
    gateway_to_xknx(&link, &mut x, "2/0/1", Payload::Short(0), "bin:0").await;
    x.quit().await;

    // 2. Restart knxd.
    ns.stop_knxd().await;
    link.to_bus
        .send(write("2/0/8", Payload::Short(1)))
        .await
        .unwrap();
    let state = expect_state(
        &mut link,
        &[LinkState::Reconnecting, LinkState::Down],
        FRAME_TIMEOUT,
    )
    .await;
    eprintln!("knxd stopped: {state:?}");
    ns.start_knxd().await;
    let restored = Instant::now();
    expect_state(&mut link, &[LinkState::Connected], PEER_TIMEOUT).await;
    let took = restored.elapsed();
    eprintln!("reconnected {took:?} after knxd came back");
    assert!(took <= RECOVERY, "reconnect took {took:?}");
    let mut x = xknx_via_knxd(&python, &ns, "xknx-2");
    let x_addr = ready(&mut x).await;
    x.send("write 1/2/4 bin:0");
    assert_group_write(
        &expect_frame(&mut link, "1/2/4").await,
        &x_addr,
        &Payload::Short(0),
    );
    gateway_to_xknx(&link, &mut x, "2/0/2", Payload::Short(1), "bin:1").await;
    x.quit().await;
    link.shutdown().await;
    eprintln!(
        "client_reconnects_after_link_cut_and_knxd_restart took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// (d) routing
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_exchanges_telegrams_with_knxd_over_the_veth() {
    init_tracing();
    let Some(python) = need_netns() else { return };
    let started = Instant::now();
    let mut ns = Netns::new();
    ns.start_knxd().await;
    let spec = LinkSpec::Routing {
        interface: ns.host_ip,
        group: SocketAddrV4::new(Ipv4Addr::new(224, 0, 23, 12), 3671),
    };
    let mut link = spawn(spec, ia("1.1.10")).await.unwrap();
    expect_state(&mut link, &[LinkState::Connected], FRAME_TIMEOUT).await;
    // xknx tunnels into knxd; knxd routes between its tunnels and the multicast group.
    let mut x = xknx_via_knxd(&python, &ns, "xknx");
    let x_addr = ready(&mut x).await;
    x.send("write 1/2/3 bin:1");
    assert_group_write(
        &expect_frame(&mut link, "1/2/3").await,
        &x_addr,
        &Payload::Short(1),
    );
    x.send("write 1/2/4 arr:41a00000");
    assert_group_write(
        &expect_frame(&mut link, "1/2/4").await,
        &x_addr,
        &Payload::Long(vec![0x41, 0xa0, 0, 0]),
    );
    let line = gateway_to_xknx(&link, &mut x, "2/0/1", Payload::Short(1), "bin:1").await;
    assert_eq!(
        rx_source(&line),
        "1.1.10",
        "routing sends with the gateway's address"
    );
    gateway_to_xknx(
        &link,
        &mut x,
        "2/0/2",
        Payload::Long(vec![1, 2, 3, 4]),
        "arr:01020304",
    )
    .await;
    x.quit().await;
    link.shutdown().await;
    eprintln!(
        "routing_exchanges_telegrams_with_knxd_over_the_veth took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_exchanges_telegrams_with_xknx_routing() {
    init_tracing();
    let Some(python) = need_netns() else { return };
    let started = Instant::now();
    let ns = Netns::new();
    let spec = LinkSpec::Routing {
        interface: ns.host_ip,
        group: SocketAddrV4::new(Ipv4Addr::new(224, 0, 23, 12), 3671),
    };
    let mut link = spawn(spec, ia("1.1.10")).await.unwrap();
    expect_state(&mut link, &[LinkState::Connected], FRAME_TIMEOUT).await;
    // xknx as a KNXnet/IP router inside the namespace: multicast crosses the veth pair.
    let ns_ip = ns.ns_ip.to_string();
    let args = [
        "routing",
        "--local-ip",
        ns_ip.as_str(),
        "--address",
        "1.1.250",
    ];
    let mut x = Peer::start(&python, "xknx-routing", &args, Some(&ns.name));
    assert_eq!(ready(&mut x).await, "1.1.250");
    x.send("write 1/2/3 bin:1");
    x.expect("SENT 1/2/3").await;
    assert_group_write(
        &expect_frame(&mut link, "1/2/3").await,
        "1.1.250",
        &Payload::Short(1),
    );
    x.send("write 1/2/4 arr:0c1a");
    assert_group_write(
        &expect_frame(&mut link, "1/2/4").await,
        "1.1.250",
        &Payload::Long(vec![0x0c, 0x1a]),
    );
    let line = gateway_to_xknx(&link, &mut x, "2/0/1", Payload::Short(1), "bin:1").await;
    assert_eq!(rx_source(&line), "1.1.10");
    // Our own indications do not come back to us (multicast loop off, own-source filter).
    let echo = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            match link.from_bus.recv().await {
                Some(LinkEvent::Frame(f)) if f.source == ia("1.1.10") => return f,
                Some(_) => {}
                None => std::future::pending::<()>().await,
            }
        }
    })
    .await;
    assert!(echo.is_err(), "own frame came back: {echo:?}");
    x.quit().await;
    link.shutdown().await;
    drop(ns);
    eprintln!(
        "routing_exchanges_telegrams_with_xknx_routing took {:?}",
        started.elapsed()
    );
}

/// Two KNX/IP networks on one host: routing on one interface must not hear the other's
/// multicast (Linux hands a joined group's datagrams to every socket on the port unless
/// `IP_MULTICAST_ALL` is off). This failed once in CI when two routing tests overlapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_hears_only_its_own_interface() {
    init_tracing();
    let Some(python) = need_netns() else { return };
    let ns_a = Netns::new();
    let ns_b = Netns::new();
    let group = SocketAddrV4::new(Ipv4Addr::new(224, 0, 23, 12), 3671);
    let mut link_a = spawn(
        LinkSpec::Routing {
            interface: ns_a.host_ip,
            group,
        },
        ia("1.1.10"),
    )
    .await
    .unwrap();
    let mut link_b = spawn(
        LinkSpec::Routing {
            interface: ns_b.host_ip,
            group,
        },
        ia("1.1.11"),
    )
    .await
    .unwrap();
    expect_state(&mut link_a, &[LinkState::Connected], FRAME_TIMEOUT).await;
    expect_state(&mut link_b, &[LinkState::Connected], FRAME_TIMEOUT).await;
    let ns_ip = ns_b.ns_ip.to_string();
    let args = [
        "routing",
        "--local-ip",
        ns_ip.as_str(),
        "--address",
        "1.1.251",
    ];
    let mut x = Peer::start(&python, "xknx-routing-b", &args, Some(&ns_b.name));
    assert_eq!(ready(&mut x).await, "1.1.251");
    x.send("write 3/4/5 bin:1");
    x.expect("SENT 3/4/5").await;
    assert_group_write(
        &expect_frame(&mut link_b, "3/4/5").await,
        "1.1.251",
        &Payload::Short(1),
    );
    let leaked = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            match link_a.from_bus.recv().await {
                Some(LinkEvent::Frame(f)) => return f,
                Some(_) => {}
                None => std::future::pending::<()>().await,
            }
        }
    })
    .await;
    assert!(
        leaked.is_err(),
        "a frame from the other interface reached the routing link: {leaked:?}"
    );
    x.quit().await;
    link_a.shutdown().await;
    link_b.shutdown().await;
    drop(ns_b);
    drop(ns_a);
}

// ---------------------------------------------------------------------------------------
// Our client against our server (no external peer; runs everywhere)
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_and_our_server_talk_and_close_in_order() {
    init_tracing();
    let (mut server, port) = start_server("1.1.10").await;
    let spec: LinkSpec = format!("tunnel://127.0.0.1:{port}").parse().unwrap();
    let mut client = spawn(spec, ia("1.1.99")).await.unwrap();
    expect_state(&mut client, &[LinkState::Connected], FRAME_TIMEOUT).await;
    client
        .to_bus
        .send(write("1/2/3", Payload::Short(1)))
        .await
        .unwrap();
    assert_group_write(
        &expect_frame(&mut server, "1/2/3").await,
        "1.1.11",
        &Payload::Short(1),
    );
    server
        .to_bus
        .send(write("2/0/1", Payload::Long(vec![7, 8])))
        .await
        .unwrap();
    let f = expect_frame(&mut client, "2/0/1").await;
    assert_group_write(&f, "1.1.10", &Payload::Long(vec![7, 8]));
    // The server shuts down: it disconnects the tunnel, and the client goes reconnecting.
    server.shutdown().await;
    expect_state(&mut client, &[LinkState::Reconnecting], FRAME_TIMEOUT).await;
    // Dropping both channels of the handle closes the client's task.
    let LinkHandle {
        to_bus, from_bus, ..
    } = client;
    drop((to_bus, from_bus));
}

/// The control endpoint in the SEARCH_RESPONSE to a unicast SEARCH_REQUEST sent to `to`.
async fn searched_endpoint(to: SocketAddr) -> SocketAddrV4 {
    use knx_echarge::knx::wire::knxip::{Hpai, KnxIpFrame};
    let sock = tokio::net::UdpSocket::bind((to.ip(), 0)).await.unwrap();
    let SocketAddr::V4(local) = sock.local_addr().unwrap() else {
        unreachable!()
    };
    let search = KnxIpFrame::SearchRequest {
        discovery_endpoint: Hpai::udp(*local.ip(), local.port()),
    };
    sock.send_to(&search.to_bytes().unwrap(), to).await.unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(FRAME_TIMEOUT, sock.recv_from(&mut buf))
        .await
        .expect("a SEARCH_RESPONSE")
        .unwrap();
    match KnxIpFrame::parse(&buf[..n]).unwrap() {
        KnxIpFrame::SearchResponse {
            control_endpoint, ..
        } => SocketAddrV4::new(control_endpoint.address, control_endpoint.port),
        other => panic!("{other:?}"),
    }
}

/// A server on 0.0.0.0 tells each client the address the client reached it at (IP_PKTINFO),
/// not 0.0.0.0: 127.0.0.1 over loopback, the machine's own address over that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_on_every_interface_names_the_address_it_was_reached_at() {
    init_tracing();
    let spec = LinkSpec::Server {
        bind: "0.0.0.0:0".parse().unwrap(),
    };
    let link = spawn(spec, ia("1.1.10")).await.unwrap();
    let port = link.local_addr().port();
    let mut addresses = vec![Ipv4Addr::LOCALHOST];
    addresses.extend(
        knx_echarge::netif::interfaces()
            .iter()
            .filter(|i| i.up && !i.loopback)
            .flat_map(|i| i.addresses.iter())
            .filter_map(|a| match a {
                std::net::IpAddr::V4(v4) => Some(*v4),
                std::net::IpAddr::V6(_) => None,
            }),
    );
    for ip in addresses {
        let to = SocketAddrV4::new(ip, port);
        assert_eq!(searched_endpoint(to.into()).await, to, "reached at {to}");
    }
    link.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// (e) the gateway binary as a tunnelling client of knxd
// ---------------------------------------------------------------------------------------

/// The `Response from <src>: <hex>` line of `knxtool groupreadresponse` output (it prints
/// the first telegram to the address, which may also be a write).
fn response_line(out: &str) -> Option<&str> {
    out.lines().find(|l| l.starts_with("Response from "))
}

/// A child process killed and reaped when the test ends.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `knxtool <applet> ip:<knxd> <args…>` (knxd's own client protocol) from the host.
fn knxtool(ns: &Netns, applet: &str, args: &[&str]) -> String {
    let url = format!("ip:{}", ns.ns_ip);
    let mut all = vec!["timeout", "10", "knxtool", applet, &url];
    all.extend_from_slice(args);
    let out = sh(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "knxtool {applet} {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The running binary with `knx.link = "tunnel://<knxd>:3671"` in its config file: knxtool
/// writes reach its W objects through knxd and its tunnel, and knxtool's reads of its R
/// objects are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_binary_tunnels_to_knxd_and_knxtool_reaches_its_objects() {
    init_tracing();
    if need_netns().is_none() || !require("knxtool (Debian package knxd-tools)", have("knxtool")) {
        return;
    }
    let started = Instant::now();
    let mut ns = Netns::new();
    ns.start_knxd().await;
    // The example configuration with the link in its [knx] table, as an installer writes it.
    let dir = tempfile::tempdir().unwrap();
    let example = fs::read_to_string(Path::new(CRATE).join("examples/five-chargers.toml")).unwrap();
    let link = format!("[knx]\nlink = \"tunnel://{}\"\n", ns.knxd_endpoint());
    assert!(example.contains("[knx]\n"));
    let config = dir.path().join("gateway.toml");
    fs::write(&config, example.replacen("[knx]\n", &link, 1)).unwrap();
    let log = dir.path().join("gateway.log");
    let gateway = Command::new(support::gateway_bin())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--no-chargers")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _gateway = Kill(gateway);
    let deadline = Instant::now() + PEER_TIMEOUT;
    let text = loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if text.contains("tunnel connected") {
            break text;
        }
        assert!(Instant::now() < deadline, "no tunnel to knxd:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        text.contains(&format!("remote={}", ns.knxd_endpoint())),
        "{text}"
    );

    // An R object: the last-fault text (DPT 16.001, 14 bytes) answers "No error".
    let answer = knxtool(&ns, "groupreadresponse", &["0/0/9"]);
    eprintln!("groupreadresponse 0/0/9: {answer}");
    let no_error: String = b"No error"
        .iter()
        .chain(&[0u8; 6])
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        response_line(&answer).is_some_and(|l| l.trim_end().to_lowercase().ends_with(&no_error)),
        "0/0/9 should answer {no_error}: {answer}"
    );
    // A W object: interrupting charging point 2 (2/0/5) sets its state object 2/0/6, which
    // then answers 1.
    knxtool(&ns, "groupswrite", &["2/0/5", "1"]);
    let deadline = Instant::now() + FRAME_TIMEOUT;
    loop {
        let answer = knxtool(&ns, "groupreadresponse", &["2/0/6"]);
        eprintln!("groupreadresponse 2/0/6: {answer}");
        if response_line(&answer).is_some_and(|l| l.trim_end().ends_with(": 01")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the write to 2/0/5 did not reach the gateway: 2/0/6 answers {answer}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!(
        "the_gateway_binary_tunnels_to_knxd_and_knxtool_reaches_its_objects took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// (f) discovery of the gateway binary on two networks
// ---------------------------------------------------------------------------------------

/// One of the gateway's two networks: a namespace with a veth link to the gateway's.
struct Side {
    ns: String,
    /// The gateway's end of the link (in the gateway's namespace).
    gateway_if: String,
    gateway_ip: Ipv4Addr,
    client_ip: Ipv4Addr,
}

/// The gateway's namespace `kxd<k>g`, linked by veth pairs to two client namespaces:
/// `kxd<k>a` on 10.213.k.0/25 (gateway .1, client .2) and `kxd<k>b` on 10.213.k.128/25
/// (gateway .129, client .130). `k` is reserved as for [`Netns`]; nothing is connected to
/// the host's own network stack, so no test traffic can leave the machine. The gateway's
/// namespace has neither a default route nor a multicast route, as a gateway on two local
/// networks without a router: the kernel has no interface of its own choice for the
/// discovery group there. The clients have the multicast route of the knxd tests. Dropping
/// it removes the namespaces (with the veths inside), any veth left on the host by a failed
/// set-up, and the lock, also when the test failed.
struct TwoNetworks {
    gateway: String,
    sides: [Side; 2],
    lock: PathBuf,
}

impl TwoNetworks {
    fn new() -> Self {
        let (k, lock) = reserve_subnet();
        let side = |name: char, low: u8| Side {
            ns: format!("kxd{k}{name}"),
            gateway_if: format!("kxd{k}g{name}"),
            gateway_ip: Ipv4Addr::new(10, 213, k, low + 1),
            client_ip: Ipv4Addr::new(10, 213, k, low + 2),
        };
        let nets = Self {
            gateway: format!("kxd{k}g"),
            sides: [side('a', 0), side('b', 128)],
            lock,
        };
        nets.remove();
        let gateway = nets.gateway.as_str();
        must(&["ip", "netns", "add", gateway]);
        must(&[
            "ip", "netns", "exec", gateway, "ip", "link", "set", "lo", "up",
        ]);
        for side in &nets.sides {
            let (ns, gw_if) = (side.ns.as_str(), side.gateway_if.as_str());
            let client_if = ns;
            must(&["ip", "netns", "add", ns]);
            must(&[
                "ip", "link", "add", gw_if, "type", "veth", "peer", "name", client_if,
            ]);
            must(&["ip", "link", "set", gw_if, "netns", gateway]);
            must(&["ip", "link", "set", client_if, "netns", ns]);
            let gw_cidr = format!("{}/25", side.gateway_ip);
            let client_cidr = format!("{}/25", side.client_ip);
            for args in [
                &["ip", "addr", "add", &gw_cidr, "dev", gw_if][..],
                &["ip", "link", "set", gw_if, "up"],
            ] {
                let mut all = vec!["ip", "netns", "exec", gateway];
                all.extend_from_slice(args);
                must(&all);
            }
            for args in [
                &["ip", "addr", "add", &client_cidr, "dev", client_if][..],
                &["ip", "link", "set", client_if, "up"],
                &["ip", "link", "set", "lo", "up"],
                &["ip", "route", "add", "224.0.0.0/4", "dev", client_if],
            ] {
                let mut all = vec!["ip", "netns", "exec", ns];
                all.extend_from_slice(args);
                must(&all);
            }
        }
        nets
    }

    /// Removes what this set of names may have left (a crashed run with the same `k`).
    fn remove(&self) {
        let _ = sh(&["ip", "netns", "del", &self.gateway]);
        for side in &self.sides {
            let _ = sh(&["ip", "netns", "del", &side.ns]);
            let _ = sh(&["ip", "link", "del", &side.gateway_if]);
            let _ = sh(&["ip", "link", "del", &side.ns]);
        }
    }
}

impl Drop for TwoNetworks {
    fn drop(&mut self) {
        self.remove();
        let _ = fs::remove_file(&self.lock);
    }
}

/// The gateway binary in a namespace, killed when dropped; its log is printed if the test
/// failed.
struct GatewayIn {
    child: Kill,
    log: PathBuf,
}

impl GatewayIn {
    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PEER_TIMEOUT;
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            if let Some(status) = self.child.0.try_wait().ok().flatten() {
                panic!("the gateway exited with {status}");
            }
            assert!(Instant::now() < deadline, "`{needle}` not logged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for GatewayIn {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- gateway log ----\n{}", self.log_text());
        }
    }
}

/// xknx's `GatewayScanner` (tests/interop/gateway_discovery.py) in `ns`, searching from
/// `local_ip`: every gateway that answered, as JSON.
fn scan(python: &Path, ns: &str, local_ip: Ipv4Addr) -> serde_json::Value {
    let script = Path::new(CRATE).join("tests/interop/gateway_discovery.py");
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(python)
        .arg(script)
        .arg(local_ip.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scanner in {ns} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The gateway binary with `--knx server://0.0.0.0:3671`, in a namespace on two networks
/// (two veth links, two subnets, no default route): it joins the discovery group on both
/// interfaces, xknx's `GatewayScanner` on each network finds it at its address on *that*
/// network (the SEARCH_RESPONSE's control endpoint), and an xknx tunnel from each network to
/// the address it was given reads an R object (0/0/9, the last fault, "No error").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_the_gateway_on_each_of_its_two_networks() {
    discovery_on_two_networks(3671).await;
}

/// The same with the server on 0.0.0.0:3700: a second socket, bound to the discovery
/// address, joins the group on both interfaces, and the answers name port 3700.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_the_gateway_on_each_of_its_two_networks_on_another_port() {
    discovery_on_two_networks(3700).await;
}

async fn discovery_on_two_networks(port: u16) {
    init_tracing();
    let Some(python) = need_namespaces() else {
        return;
    };
    let started = Instant::now();
    let nets = TwoNetworks::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gateway.log");
    let child = Command::new("ip")
        .args(["netns", "exec", &nets.gateway])
        .arg(support::gateway_bin())
        .args([
            "run",
            "--config",
            "examples/five-chargers.toml",
            "--no-chargers",
            "--knx",
            &format!("server://0.0.0.0:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .current_dir(CRATE)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut gateway = GatewayIn {
        child: Kill(child),
        log,
    };
    gateway.wait_for_log("KNX link open").await;
    let text = gateway.wait_for_log("KNXnet/IP discovery").await;
    let [a, b] = &nets.sides;
    let joined = format!(
        "interfaces={} {}, {} {}",
        a.gateway_if, a.gateway_ip, b.gateway_if, b.gateway_ip
    );
    assert!(
        text.lines()
            .any(|l| l.contains("answering SEARCH_REQUESTs") && l.contains(&joined)),
        "discovery not joined on both interfaces ({joined})"
    );

    // Each network finds the gateway at its address there.
    for side in &nets.sides {
        let found = scan(&python, &side.ns, side.client_ip);
        eprintln!("scan from {}: {found}", side.client_ip);
        assert_eq!(
            found,
            serde_json::json!([{
                "ip": side.gateway_ip.to_string(),
                "port": port,
                "name": "knx-echarge",
                "individual_address": "1.1.10",
                "tunnelling": true,
                "routing": false,
            }]),
            "search from {} ({})",
            side.client_ip,
            side.ns
        );
    }

    // A tunnel from each network to the address it was given; both open at once.
    let mut peers = Vec::new();
    for (side, address) in nets.sides.iter().zip(["1.1.11", "1.1.12"]) {
        let args = tunnel_args(
            &side.gateway_ip.to_string(),
            port,
            &side.client_ip.to_string(),
        );
        let mut peer = Peer::start(&python, &side.ns, &strs(&args), Some(&side.ns));
        assert_eq!(ready(&mut peer).await, address, "tunnel from {}", side.ns);
        peers.push(peer);
    }
    for peer in &mut peers {
        peer.send("read 0/0/9 16.001");
        let line = peer.expect("VALUE 0/0/9").await;
        assert!(line.ends_with("\"No error\""), "{}: {line}", peer.name);
    }
    for peer in peers {
        peer.quit().await;
    }
    eprintln!(
        "discovery on two networks, server on 0.0.0.0:{port}, took {:?}",
        started.elapsed()
    );
}
