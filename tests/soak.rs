//! Soak (issue 17, point 9): the gateway binary with five simulated charging points (Modbus
//! TCP), its built-in KNXnet/IP server and the website, under mixed hostile traffic for a
//! while, sampled every half second: resident memory, open file descriptors and threads must
//! stay flat and every charging point must go on being polled.
//!
//! The traffic, all at once:
//! * a real user logged in, reading the status, charging points and faults in a loop;
//! * wrong-password logins from 50 rotating loopback addresses, garbage and oversized HTTP,
//!   foreign `Host` headers;
//! * 40 half-sent requests held open for 3 s, again and again (slowloris);
//! * malformed KNXnet/IP datagrams, SEARCH requests and CONNECT requests that are never
//!   closed, to the KNX server;
//! * periodic faults: every 8 s one charging point goes silent for 3 s, and vehicles are
//!   plugged in and out.
//!
//! Duration: `KNX_ECHARGE_SOAK_SECS` (default 40, what `tests/run` runs). The 1-hour soak of
//! BENCHMARKS.md:
//! `KNX_ECHARGE_SOAK_SECS=3600 cargo test --release --test soak -- --nocapture`.
//! The core's side (24 h of DLM, objects and faults at injected time) is `tests/soak_core.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_precision_loss
)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use knx_echarge::sim::{SimHandle, SimModel, Vehicle};
use support::{KillOnDrop, free_tcp, free_udp};

const SHOWN: &str = "initial password (shown once, at first start): ";
const SAMPLE: Duration = Duration::from_millis(500);
/// One charging point is silent for [`OUTAGE`] every [`FAULT_PERIOD`], in turn.
const FAULT_PERIOD: Duration = Duration::from_secs(8);
const OUTAGE: Duration = Duration::from_secs(3);

fn soak_duration() -> Duration {
    Duration::from_secs(
        std::env::var("KNX_ECHARGE_SOAK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(40),
    )
}

/// The five-charger example with every charging point on a local simulator (the RS485 one
/// replaced by a Webasto Next on Modbus TCP).
fn config(dir: &Path, ports: &[u16]) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string("examples/five-chargers.toml").unwrap();
    for (i, port) in ports.iter().take(4).enumerate() {
        let from = format!("ip = \"192.168.1.10{}\"", i + 1);
        assert!(text.contains(&from), "{from}");
        text = text.replace(&from, &format!("ip = \"127.0.0.1\"\nport = {port}"));
    }
    let rs485 = "model = \"heidelberg-ec\"\ninterface = \"rs485\"\nrs485_address = 1";
    assert!(text.contains(rs485));
    text = text.replace(
        rs485,
        &format!(
            "model = \"webasto-next\"\nip = \"127.0.0.1\"\nport = {}",
            ports[4]
        ),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((from, 0)).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(2))?;
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

/// Sends `request` from `from` and reads the answer (ignoring errors): whether one came.
fn exchange(from: [u8; 4], to: SocketAddr, request: &[u8]) -> bool {
    let Ok(mut s) = connect_from(from, to) else {
        return false;
    };
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    !answer.is_empty()
}

/// Runs `f` in a loop on a thread until `stop`; counts the rounds.
fn spawn_loop(
    stop: &Arc<AtomicBool>,
    rounds: &Arc<AtomicU64>,
    mut f: impl FnMut(u64) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let stop = stop.clone();
    let rounds = rounds.clone();
    std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            f(i);
            i += 1;
            rounds.fetch_add(1, Ordering::Relaxed);
        }
    })
}

struct Sample {
    at: Duration,
    rss_kb: u64,
    fds: u64,
    threads: u64,
    requests: Vec<u64>,
    offline: Vec<bool>,
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_under_mixed_hostile_traffic_stays_flat_and_keeps_polling() {
    let duration = soak_duration();
    let dir = tempfile::tempdir().unwrap();
    let models = [
        SimModel::KebaP30,
        SimModel::AbbTerraAc,
        SimModel::BenderCc,
        SimModel::AlfenEve,
        SimModel::WebastoNext,
    ];
    let (sims, _servers, ports) = support::tcp_simulators(models).await;
    let config = config(dir.path(), &ports);
    let http = free_tcp();
    let knx = free_udp();
    let log = dir.path().join("gateway.log");
    tokio::task::block_in_place(|| {
        let gateway = KillOnDrop(
            Command::new(support::gateway_bin())
                .arg("run")
                .arg("--config")
                .arg(&config)
                .args(["--knx", &format!("server://{knx}")])
                .args(["--http", &http.to_string()])
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        let pid = gateway.0.id();
        let text = support::wait_for_log(&log, SHOWN, Duration::from_secs(60));
        let password = text
            .lines()
            .find_map(|l| l.split_once(SHOWN).map(|(_, p)| p.trim().to_owned()))
            .unwrap();
        let cookie = support::login(http, &password).expect("the real user logs in");

        let stop = Arc::new(AtomicBool::new(false));
        let user_ok = Arc::new(AtomicU64::new(0));
        let user_rounds = Arc::new(AtomicU64::new(0));
        let attacks = Arc::new(AtomicU64::new(0));
        let slow = Arc::new(AtomicU64::new(0));
        let datagrams = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();

        // The real user.
        let ok = user_ok.clone();
        threads.push(spawn_loop(&stop, &user_rounds, move |i| {
            let path = [
                "/api/v1/status",
                "/api/v1/charging-points",
                "/api/v1/faults",
            ][usize::try_from(i % 3).unwrap()];
            if support::get_json(http, path, &cookie).is_some() {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }));
        // Wrong logins, garbage, oversized and foreign-Host requests from 50 addresses, on
        // three threads.
        for attacker in 0..3u8 {
            threads.push(spawn_loop(&stop, &attacks, move |i| {
            let from = [127, 0, 2 + attacker * 10, u8::try_from(1 + i % 50).unwrap()];
            let body = format!("{{\"password\":\"guess-{i}\"}}");
            let request: Vec<u8> = match i % 4 {
                0 | 1 => format!(
                    "POST /api/v1/login HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
                2 => {
                    let mut r = b"GET /".to_vec();
                    r.extend(std::iter::repeat_n(b'A', 20_000));
                    r.extend_from_slice(b" HTTP/1.1\r\n\r\n");
                    r
                }
                _ => b"GET /api/v1/status HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\nConnection: close\r\n\r\n".to_vec(),
            };
            exchange(from, http, &request);
        }));
        }
        // Slowloris: 40 half-sent requests held for 3 s, again and again.
        threads.push(spawn_loop(&stop, &slow, move |i| {
            let held: Vec<TcpStream> = (0..40u8)
                .filter_map(|k| {
                    let mut s = connect_from([127, 0, 3, 1 + k % 10], http).ok()?;
                    let _ = write!(s, "POST /api/v1/login HTTP/1.1\r\nHost: {http}\r\nConte");
                    Some(s)
                })
                .collect();
            std::thread::sleep(Duration::from_secs(3));
            drop(held);
            let _ = i;
        }));
        // KNXnet/IP: malformed datagrams, SEARCH and CONNECT requests never closed.
        threads.push(spawn_loop(&stop, &datagrams, move |i| {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let me = match socket.local_addr().unwrap() {
                SocketAddr::V4(a) => a,
                SocketAddr::V6(_) => unreachable!(),
            };
            let mut hpai = vec![0x08, 0x01];
            hpai.extend_from_slice(&me.ip().octets());
            hpai.extend_from_slice(&me.port().to_be_bytes());
            for k in 0..50u64 {
                let n = i * 50 + k;
                let frame: Vec<u8> = match n % 5 {
                    // SEARCH_REQUEST.
                    0 => [&[0x06, 0x10, 0x02, 0x01, 0x00, 0x0e][..], &hpai].concat(),
                    // CONNECT_REQUEST (tunnel, link layer), never disconnected.
                    1 => [
                        &[0x06, 0x10, 0x02, 0x05, 0x00, 0x1a][..],
                        &hpai,
                        &hpai,
                        &[0x04, 0x04, 0x02, 0x00],
                    ]
                    .concat(),
                    // Header claims more than is there.
                    2 => vec![0x06, 0x10, 0x04, 0x20, 0x00, 0xff, 0x04, 0x01],
                    // Garbage.
                    3 => (0..u8::try_from(n % 64).unwrap())
                        .map(|b| b.wrapping_mul(37))
                        .collect(),
                    // TUNNELING_REQUEST on a channel that is not ours.
                    _ => vec![
                        0x06, 0x10, 0x04, 0x20, 0x00, 0x15, 0x04, 0x07, 0x00, 0x00, 0x11, 0x00,
                        0xbc, 0xe0, 0x11, 0x01, 0x00, 0x01, 0x01, 0x00, 0x81,
                    ],
                };
                let _ = socket.send_to(&frame, knx);
            }
            std::thread::sleep(Duration::from_millis(50));
        }));

        // Periodic faults and sessions, and the samples.
        let started = Instant::now();
        let mut samples: Vec<Sample> = Vec::new();
        let mut offline_until: Vec<Option<Instant>> = vec![None; sims.len()];
        let mut next_fault = started + FAULT_PERIOD;
        let mut turn = 0;
        while started.elapsed() < duration {
            let now = Instant::now();
            if now >= next_fault {
                let sim: &SimHandle = &sims[turn % sims.len()];
                sim.set_faults(|f| f.offline = true);
                offline_until[turn % sims.len()] = Some(now + OUTAGE);
                // A vehicle arrives at the next one, the one after leaves.
                sims[(turn + 1) % sims.len()].plug_in(Vehicle::three_phase());
                sims[(turn + 3) % sims.len()].unplug();
                turn += 1;
                next_fault = now + FAULT_PERIOD;
            }
            for (sim, until) in sims.iter().zip(offline_until.iter_mut()) {
                if until.is_some_and(|u| now >= u) {
                    sim.set_faults(|f| f.offline = false);
                    *until = None;
                }
                // The simulator's own log of writes is not under test.
                sim.lock().state.writes.clear();
            }
            samples.push(Sample {
                at: started.elapsed(),
                rss_kb: proc_status(pid, "VmRSS:"),
                fds: open_fds(pid),
                threads: proc_status(pid, "Threads:"),
                requests: sims.iter().map(|s| s.lock().requests).collect(),
                offline: offline_until.iter().map(Option::is_some).collect(),
            });
            std::thread::sleep(SAMPLE);
        }
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let alive = gateway_alive(pid);
        let log_text = std::fs::read_to_string(&log).unwrap();

        // The figures.
        let every = (samples.len() / 12).max(1);
        eprintln!("   t/s   RSS/kB  fds  threads  polls per charging point");
        for s in samples.iter().step_by(every).chain(samples.last()) {
            eprintln!(
                "{:>6.0} {:>8} {:>4} {:>8}  {:?}",
                s.at.as_secs_f64(),
                s.rss_kb,
                s.fds,
                s.threads,
                s.requests
            );
        }
        eprintln!(
            "user reads ok {} of {}; hostile HTTP requests {}; slowloris rounds {} (40 each); KNXnet/IP datagrams {}",
            user_ok.load(Ordering::Relaxed),
            user_rounds.load(Ordering::Relaxed),
            attacks.load(Ordering::Relaxed),
            slow.load(Ordering::Relaxed),
            datagrams.load(Ordering::Relaxed) * 50
        );

        assert!(alive, "the gateway died:\n{log_text}");
        assert!(
            !log_text.contains("Too many open files"),
            "descriptors ran out:\n{log_text}"
        );

        // Polling unaffected: a charging point that has been online for 10 s (after an
        // outage the gateway reconnects with back-off) is polled at least every 8 s (every
        // second normally; the margin is for a loaded test machine).
        for cp in 0..sims.len() {
            let mut last_offline = Duration::ZERO;
            let mut since: Option<(Duration, u64)> = None;
            for s in &samples {
                if s.offline[cp] {
                    last_offline = s.at;
                    since = None;
                    continue;
                }
                if s.at.saturating_sub(last_offline) < Duration::from_secs(10) {
                    since = None;
                    continue;
                }
                match since {
                    Some((t, n)) if s.requests[cp] == n => assert!(
                        s.at.saturating_sub(t) < Duration::from_secs(8),
                        "charging point {} not polled for {:?} (at {:?})",
                        cp + 1,
                        s.at.saturating_sub(t),
                        s.at
                    ),
                    _ => since = Some((s.at, s.requests[cp])),
                }
            }
        }
        let user_ok = user_ok.load(Ordering::Relaxed);
        let user_rounds = user_rounds.load(Ordering::Relaxed);
        assert!(
            user_ok * 10 >= user_rounds * 9,
            "the real user was served {user_ok} of {user_rounds} times"
        );

        // Flat: memory, descriptors and threads in the last quarter against the second.
        let quarter = samples.len() / 4;
        let second = &samples[quarter..2 * quarter];
        let last = &samples[3 * quarter..];
        let rss = |q: &[Sample]| median(q.iter().map(|s| s.rss_kb).collect());
        let max_of = |q: &[Sample], f: fn(&Sample) -> u64| q.iter().map(f).max().unwrap_or(0);
        let (rss2, rss4) = (rss(second), rss(last));
        eprintln!(
            "RSS median {rss2} kB → {rss4} kB; fds max {} → {}; threads max {} → {}",
            max_of(second, |s| s.fds),
            max_of(last, |s| s.fds),
            max_of(second, |s| s.threads),
            max_of(last, |s| s.threads)
        );
        assert!(
            rss4 <= rss2 + 8 * 1024,
            "memory grew: {rss2} kB → {rss4} kB"
        );
        // Descriptors move with the connections of the moment (capped at 64 + 16 being
        // refused): their median must not grow by more than the rolling slowloris and the
        // reconnecting clients shift it (a clean-clone run once saw 53 → 62 in 40 s; a leak
        // grows without bound and hits the cap below), their peak must stay under the cap.
        let fds = |q: &[Sample]| median(q.iter().map(|s| s.fds).collect());
        assert!(
            fds(last) <= fds(second) + 16,
            "descriptors grew: median {} → {}",
            fds(second),
            fds(last)
        );
        let peak = max_of(&samples, |s| s.fds);
        assert!(
            peak <= samples[0].fds + 64 + 16 + 16,
            "descriptors beyond the website's cap: {peak}"
        );
        assert!(
            max_of(last, |s| s.threads) <= max_of(second, |s| s.threads) + 8,
            "threads grew"
        );
    });
}

fn gateway_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
}
