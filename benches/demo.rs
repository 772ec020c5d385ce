//! The running demo, measured from outside (`cargo bench --bench demo`; a bench binary that
//! prints numbers).
//!
//! Starts the release binary as `knx-echarge demo` (five simulated charging points, one of
//! them over an RTU pty pair (a pty pair made in-process), the simulated house and smart meter, the
//! built-in KNXnet/IP tunnelling server and the website) on free loopback ports with a fresh
//! data directory, and measures what issue 7 asks for:
//!
//! * **start-up**: process start → the gateway's log line "first poll cycle complete" (every
//!   charging point has answered its first poll or failed it);
//! * with the website open (logged in, the live `/api/v1/events` stream read throughout) and
//!   after a warm-up (`DEMO_WARMUP_S`, default 60 s: every demo vehicle has arrived by 45 s),
//!   over a window (`DEMO_WINDOW_S`, default 60 s): **resident memory** (`VmRSS`, and the
//!   high-water mark `VmHWM`), **CPU share** of one core (`utime + stime` from
//!   `/proc/<pid>/stat`; the process includes the simulators), and the **KNX telegrams per
//!   minute** seen by a tunnelling client (the project's own) on the built-in server, split by
//!   source: the gateway (1.1.10) and the simulated meter (1.1.250). The charging points that
//!   charge at the start and end of the window are read from `/api/v1/charging-points`.
//!
//! The HTTP requests are written by hand over a `TcpStream` (four requests; no client crate
//! for a bench).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use knx_echarge::knx::IndividualAddress;
use knx_echarge::knx::link::{self, LinkEvent, LinkSpec, LinkState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "Demo-eCharge-1";

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
    )
}

/// `VmRSS` and `VmHWM` in kB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// utime + stime in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces: fields start after the closing parenthesis.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// One HTTP/1.1 request on a fresh connection; returns status, headers and the body read so
/// far (the whole body with `Connection: close`).
async fn http(addr: SocketAddr, request: String) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

async fn login(addr: SocketAddr) -> String {
    let body = format!("{{\"password\":\"{PASSWORD}\"}}");
    let (status, head, _) = http(
        addr,
        format!(
            "POST /api/v1/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert_eq!(status, 200, "login failed: {head}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .expect("no session cookie");
    cookie.split(';').next().unwrap().to_owned()
}

/// Charging points whose state is "charging", from the API; the others as "id: state
/// (limited by)".
async fn charging(addr: SocketAddr, cookie: &str) -> (Vec<u64>, Vec<String>) {
    let (status, _, body) = http(
        addr,
        format!("GET /api/v1/charging-points HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200);
    // A chunked body: take the JSON between the first '[' and the last ']'.
    let json = &body[body.find('[').unwrap()..=body.rfind(']').unwrap()];
    let points: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    let (on, off): (Vec<_>, Vec<_>) = points
        .iter()
        .partition(|p| p["charging"].as_bool() == Some(true));
    (
        on.iter().filter_map(|p| p["id"].as_u64()).collect(),
        off.iter()
            .map(|p| format!("{}: {} ({})", p["id"], p["state_text"], p["limited_by"]))
            .collect(),
    )
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_knx-echarge");
    let warmup = env_secs("DEMO_WARMUP_S", 60);
    let window = env_secs("DEMO_WINDOW_S", 60);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let data = tempfile::tempdir().unwrap();
        let knx: SocketAddr = format!("127.0.0.1:{}", free_port(true)).parse().unwrap();
        let web: SocketAddr = format!("127.0.0.1:{}", free_port(false)).parse().unwrap();
        let t0 = Instant::now();
        let mut child = std::process::Command::new(bin)
            .args(["demo", "--data-dir"])
            .arg(data.path())
            .args(["--knx-server", &knx.to_string(), "--http", &web.to_string()])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(std::env::var("DEMO_GLIBC_TUNABLES").ok().map(|v| ("GLIBC_TUNABLES", v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        // The log goes to stdout or stderr depending on the build; watch both.
        let (line_tx, line_rx) = std::sync::mpsc::channel::<(Instant, String)>();
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for reader in [out, err] {
            let tx = line_tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufRead::lines(std::io::BufReader::new(reader)).map_while(Result::ok) {
                    let _ = tx.send((Instant::now(), line));
                }
            });
        }
        let startup = loop {
            let (at, line) = line_rx.recv_timeout(Duration::from_secs(30)).expect("no \"first poll cycle complete\" line within 30 s");
            if line.contains("first poll cycle complete") {
                break at - t0;
            }
        };
        println!("start-up: process start -> first completed poll cycle (5 charging points): {:.0} ms", startup.as_secs_f64() * 1e3);
        std::thread::spawn(move || while line_rx.recv().is_ok() {});

        // The website, open: logged in, the live stream read throughout.
        let cookie = login(web).await;
        let mut sse = TcpStream::connect(web).await.unwrap();
        sse.write_all(format!("GET /api/v1/events HTTP/1.1\r\nHost: {web}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n").as_bytes()).await.unwrap();
        let sse_bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sse_bytes.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sse.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            }
        });

        // A tunnelling client on the built-in server counts telegrams by source.
        let tunnel = link::spawn(LinkSpec::Tunnel { remote: knx }, "1.1.200".parse::<IndividualAddress>().unwrap()).await.unwrap();
        let mut from_bus = tunnel.from_bus;
        let counting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counts = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, u64>::new()));
        let (c2, k2) = (counting.clone(), counts.clone());
        let (conn_tx, conn_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut conn_tx = Some(conn_tx);
            while let Some(ev) = from_bus.recv().await {
                match ev {
                    LinkEvent::State(LinkState::Connected) => {
                        if let Some(tx) = conn_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    LinkEvent::Frame(f) if c2.load(std::sync::atomic::Ordering::Relaxed) => {
                        *k2.lock().unwrap().entry(f.source.to_string()).or_default() += 1;
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), conn_rx).await.expect("tunnel did not connect").unwrap();

        if let Some(rest) = warmup.checked_sub(t0.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        let charging_before = charging(web, &cookie).await;
        let sse_before = sse_bytes.load(std::sync::atomic::Ordering::Relaxed);
        let ticks0 = cpu_ticks(pid);
        let w0 = Instant::now();
        counting.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut rss_max = 0;
        while w0.elapsed() < window {
            tokio::time::sleep(Duration::from_secs(1)).await;
            rss_max = rss_max.max(memory_kb(pid).0);
        }
        counting.store(false, std::sync::atomic::Ordering::Relaxed);
        let ticks = cpu_ticks(pid) - ticks0;
        let elapsed = w0.elapsed().as_secs_f64();
        let (rss, hwm) = memory_kb(pid);
        let charging_after = charging(web, &cookie).await;
        let sse_during = sse_bytes.load(std::sync::atomic::Ordering::Relaxed) - sse_before;
        let hz = clock_ticks_per_second();
        let per_min = |n: u64| n as f64 * 60.0 / elapsed;
        let counts = counts.lock().unwrap().clone();
        let gateway = counts.get("1.1.10").copied().unwrap_or(0);
        let meter = counts.get("1.1.250").copied().unwrap_or(0);
        let other: u64 = counts.iter().filter(|(k, _)| *k != "1.1.10" && *k != "1.1.250").map(|(_, v)| v).sum();
        println!("window: {:.0} s after {:.0} s; charging at its start {charging_before:?}, at its end {charging_after:?}; website stream {sse_during} bytes in the window", elapsed, warmup.as_secs_f64());
        println!("resident memory: VmRSS {:.1} MB at the end, at most {:.1} MB in the window; high-water mark since start {:.1} MB", rss as f64 / 1024.0, rss_max as f64 / 1024.0, hwm as f64 / 1024.0);
        println!("CPU: {ticks} ticks of {} ms in {elapsed:.0} s = {:.2} % of one core (gateway and simulators)", 1000 / hz, ticks as f64 / hz as f64 / elapsed * 100.0);
        println!("KNX telegrams per minute: gateway {:.1}, simulated meter {:.1}, others {:.1}", per_min(gateway), per_min(meter), per_min(other));
        let _ = child.kill();
        let _ = child.wait();
    });
}
