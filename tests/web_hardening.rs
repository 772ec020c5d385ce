//! Issue 17, point 1: the running gateway's website under hostile traffic, end to end
//! against the binary.
//!
//! * 300 half-sent requests held open, the gateway under `prlimit --nofile=256`: the web
//!   connections are capped below the descriptor limit, so the Modbus TCP connection to a
//!   simulated charging point still reconnects (before, it failed with `EMFILE` and the
//!   charging point went "not reachable"); a new web client is served or cleanly refused.
//!   The same flood with the cap lifted (debug-build knob `KNX_ECHARGE_TEST_NO_CONNECTION_CAP`)
//!   shows the failure the cap prevents: the reconnect fails with `EMFILE`.
//! * The half-sent requests are closed after the header timeout; `Content-Length: 10 GB`
//!   with no body is closed after the body timeout.
//! * DNS rebinding: a request for `Host: evil.example` with a matching `Origin` is answered
//!   `421`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use knx_echarge::sim::SimModel;
use knx_echarge::web::firmware;
use support::{KillOnDrop, free_tcp, free_udp};

/// The example's one KEBA P30, at the simulator on `port`.
fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    let text = std::fs::read_to_string("examples/single-charger.toml").unwrap();
    let text = text.replace(
        "ip = \"192.168.1.101\"",
        &format!("ip = \"127.0.0.1\"\nport = {port}"),
    );
    assert!(text.contains(&format!("port = {port}")));
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `knx-echarge run` with `config`, its stderr to `log`; `prefix` runs it under another
/// program (`prlimit …`).
fn start(prefix: &[&str], config: &Path, dir: &Path, http: SocketAddr) -> KillOnDrop {
    start_with_knx(prefix, config, dir, http, free_udp(), &[])
}

/// [`start`] with the built-in KNXnet/IP server on `knx`.
fn start_with_knx(
    prefix: &[&str],
    config: &Path,
    dir: &Path,
    http: SocketAddr,
    knx: SocketAddr,
    env: &[(&str, &str)],
) -> KillOnDrop {
    let log = dir.join("gateway.log");
    let bin = support::gateway_bin();
    let mut cmd = if let Some((program, args)) = prefix.split_first() {
        let mut c = Command::new(program);
        c.args(args).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .args(["--knx", &format!("server://{knx}")])
        .args(["--http", &http.to_string()])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let child = KillOnDrop(cmd.spawn().unwrap());
    support::wait_for_log(&log, "device website on http://", Duration::from_secs(60));
    child
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((from, 0)).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

/// `GET /login` from `from`: the status code, or the error when there was no answer.
fn get_login_from(from: [u8; 4], http: SocketAddr) -> Result<u16, String> {
    let mut s = connect_from(from, http).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /login HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line: {text:?}"))
}

/// Whether the server closed `s` (EOF or reset) within `limit`; an answer before the close
/// is read and ignored.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Requests the simulator answered so far.
fn requests(sim: &knx_echarge::sim::SimHandle) -> u64 {
    sim.lock().requests
}

/// Waits until the simulator answered more than `after` requests.
fn polled_after(sim: &knx_echarge::sim::SimHandle, after: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if requests(sim) > after {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// What a flood of 300 half-sent requests did to the gateway under `prlimit --nofile=256`.
struct Flooded {
    /// The charging point's Modbus connection came back during the flood.
    reconnected: bool,
    /// The gateway's log.
    log: String,
    /// Half-sent requests the gateway accepted (connections that got through the kernel).
    held: Vec<TcpStream>,
    flood_started: Instant,
}

/// Starts the gateway under `prlimit --nofile=256` (with `env`), holds 300 half-sent
/// requests open from 30 addresses, and makes the charging point's Modbus connection drop
/// and come back during the flood; runs `then` while the gateway still runs.
fn flood<T>(
    dir: &Path,
    config: &Path,
    sim: &knx_echarge::sim::SimHandle,
    env: &[(&str, &str)],
    then: impl FnOnce(SocketAddr, Flooded) -> T,
) -> T {
    let http = free_tcp();
    let _gateway = start_with_knx(
        &["prlimit", "--nofile=256"],
        config,
        dir,
        http,
        free_udp(),
        env,
    );
    let log = dir.join("gateway.log");
    assert!(
        polled_after(sim, 0, Duration::from_secs(30)),
        "the charging point is polled"
    );
    let mut held = Vec::new();
    // From 30 addresses, 10 each: more than the website's cap in total.
    for i in 0..300u16 {
        let from = [127, 0, 1, u8::try_from(1 + i / 10).unwrap()];
        let Ok(mut s) = connect_from(from, http) else {
            continue;
        };
        let _ = write!(
            s,
            "POST /api/v1/login HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\nContent-Le"
        );
        held.push(s);
    }
    let flood_started = Instant::now();
    eprintln!("{} half-sent requests open", held.len());

    // The charging point goes silent, so the gateway drops its Modbus connection; when it
    // is back, the gateway must open a new one — a new file descriptor — during the flood.
    sim.lock().faults.offline = true;
    std::thread::sleep(Duration::from_secs(4));
    let before = requests(sim);
    sim.lock().faults.offline = false;
    let reconnected = polled_after(sim, before, Duration::from_secs(5));
    let flooded = Flooded {
        reconnected,
        log: std::fs::read_to_string(&log).unwrap(),
        held,
        flood_started,
    };
    then(http, flooded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_flood_under_256_descriptors_never_starves_charging_point_polling() {
    let dir = tempfile::tempdir().unwrap();
    let (sims, _servers, ports) = support::tcp_simulators([SimModel::KebaP30]).await;
    let sim = sims[0].clone();
    let config = config(dir.path(), ports[0]);
    tokio::task::block_in_place(|| {
        flood(dir.path(), &config, &sim, &[], |http, mut f| {
            assert!(
                f.reconnected,
                "the Modbus connection came back during the web flood:\n{}",
                f.log
            );
            assert!(
                !f.log.contains("Too many open files"),
                "descriptors ran out:\n{}",
                f.log
            );

            // A new web client is served or refused with an answer — never left hanging.
            for from in [[127, 0, 0, 2], [127, 0, 1, 1]] {
                let answer = get_login_from(from, http);
                assert!(matches!(answer, Ok(200 | 503)), "{from:?}: {answer:?}");
            }

            // The half-sent requests are closed after the header timeout (10 s).
            let limit = Duration::from_secs(20).saturating_sub(f.flood_started.elapsed());
            let open = f
                .held
                .iter_mut()
                .filter_map(|s| (!closed_within(s, limit)).then_some(()))
                .count();
            assert_eq!(
                open, 0,
                "half-sent requests still open after the header timeout"
            );
            assert!(
                f.flood_started.elapsed() >= Duration::from_secs(8),
                "closed before the header timeout"
            );
            assert_eq!(get_login_from([127, 0, 0, 1], http), Ok(200));
        });
    });
}

/// The test above fails on the behaviour it guards: the same flood with the connection cap
/// and the descriptor reserve lifted (the debug-build knob `KNX_ECHARGE_TEST_NO_CONNECTION_CAP`,
/// src/web/serve.rs) takes every descriptor, and the Modbus reconnect fails with `EMFILE` —
/// issue 17's original finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_connection_cap_the_same_flood_starves_charging_point_polling() {
    let dir = tempfile::tempdir().unwrap();
    let (sims, _servers, ports) = support::tcp_simulators([SimModel::KebaP30]).await;
    let sim = sims[0].clone();
    let config = config(dir.path(), ports[0]);
    tokio::task::block_in_place(|| {
        flood(
            dir.path(),
            &config,
            &sim,
            &[
                ("KNX_ECHARGE_TEST_NO_CONNECTION_CAP", "1"),
                // The charger session's reconnect attempts, with their error.
                ("RUST_LOG", "info,knx_echarge::chargers::session=debug"),
            ],
            |_, f| {
                assert!(
                    f.log.contains("connection cap is lifted"),
                    "the knob works only in debug builds:\n{}",
                    f.log
                );
                eprintln!(
                    "without the cap: {} connections held, Modbus reconnected: {}, EMFILE logged: {}",
                    f.held.len(),
                    f.reconnected,
                    f.log.contains("Too many open files")
                );
                assert!(
                    !f.reconnected && f.log.contains("Too many open files"),
                    "without the cap the flood should starve polling:\n{}",
                    f.log
                );
            },
        );
    });
}

#[test]
fn a_bodyless_10_gb_request_is_closed_and_a_foreign_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // No charging point needed: the example's is unreachable, which is fine here.
    let config = config(dir.path(), 9);
    let http = free_tcp();
    let _gateway = start(&[], &config, dir.path(), http);

    // Content-Length: 10 GB, then nothing: refused as too large at once, and closed.
    let mut s = TcpStream::connect(http).unwrap();
    write!(
        s,
        "POST /api/v1/login HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{{\"pass"
    )
    .unwrap();
    let sent = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "a 10 GB request whose body never comes is held open"
    );
    eprintln!("10 GB request closed after {:?}", sent.elapsed());

    // A body that stops half-way is given up after the body timeout (10 s).
    let mut s = TcpStream::connect(http).unwrap();
    write!(
        s,
        "POST /api/v1/login HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"pass"
    )
    .unwrap();
    let sent = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(25)),
        "a request whose body stops is held open"
    );
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_secs(9),
        "closed after {took:?}, before the body timeout"
    );
    eprintln!("stalled body closed after {took:?}");

    // DNS rebinding: the page on evil.example, re-pointed at the device, is refused, also
    // with a matching Origin and on pages that need no session.
    let body = r#"{"password":"x"}"#;
    for request in [
        format!(
            "POST /api/v1/login HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        "GET /login HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n".to_owned(),
        // A second Host header does not smuggle a foreign name past the check.
        format!(
            "GET /login HTTP/1.1\r\nHost: {http}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        ),
    ] {
        let answer = raw(http, &request);
        assert!(answer.starts_with("HTTP/1.1 421 "), "{request}\n→ {answer}");
        assert!(
            answer.contains("wrong_host") || !answer.contains('{'),
            "{answer}"
        );
    }
    // Its own address and localhost are answered.
    let answer = raw(
        http,
        &format!(
            "GET /login HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            http.port()
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

/// Sends `request` as is; the whole answer.
fn raw(http: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The initial password the gateway printed on its first start.
fn initial_password(dir: &Path) -> String {
    const SHOWN: &str = "initial password (shown once, at first start): ";
    let text = std::fs::read_to_string(dir.join("gateway.log")).unwrap();
    text.lines()
        .find_map(|l| l.split_once(SHOWN).map(|(_, p)| p.trim().to_owned()))
        .unwrap_or_else(|| panic!("no initial password printed:\n{text}"))
}

/// Logs in: (cookie, CSRF token).
fn session(http: SocketAddr, password: &str) -> (String, String) {
    let body = serde_json::json!({ "password": password }).to_string();
    let answer = support::http(
        http,
        "POST",
        "/api/v1/login",
        &[("Content-Type", "application/json")],
        &body,
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.head);
    let cookie = answer
        .head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.trim().split(';').next().map(str::to_owned))
        .unwrap();
    let csrf = answer.json().unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

/// The head of a firmware upload of `len` bytes.
fn upload_head(http: SocketAddr, cookie: &str, csrf: &str, len: usize) -> String {
    format!(
        "POST /api/v1/firmware HTTP/1.1\r\nHost: {http}\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

/// Uploads `file`: (status, body).
fn upload(http: SocketAddr, cookie: &str, csrf: &str, file: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(upload_head(http, cookie, csrf, file.len()).as_bytes())
        .unwrap();
    // The server may answer (409, 422) and close before the whole file is sent.
    let _ = s.write_all(file);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The staged manifest and image agree (or neither is there).
fn staged_pair_agrees(data: &Path) -> Option<String> {
    let json = std::fs::read(data.join(firmware::STAGED_MANIFEST)).ok()?;
    let manifest: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let image = std::fs::read(data.join(firmware::STAGED_IMAGE)).unwrap();
    assert_eq!(
        manifest["sha256"].as_str().unwrap(),
        sha256_hex(&image),
        "firmware-staged.json names another image than firmware-staged.bin"
    );
    Some(manifest["version"].as_str().unwrap().to_owned())
}

/// Issue 17, point 2: uploads are streamed to a temporary file of their own, one at a time;
/// the staged manifest and image always agree; strict versions; leftovers cleaned at start.
#[test]
fn firmware_uploads_run_one_at_a_time_and_the_staged_pair_always_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // What a crash during staging left behind.
    std::fs::write(
        data.join(".firmware-upload-crashed.part"),
        vec![0u8; 1 << 20],
    )
    .unwrap();
    std::fs::write(data.join(".firmware-staged.bin.tmp-4242"), b"old").unwrap();
    let config = config(dir.path(), 9);
    let http = free_tcp();
    let _gateway = start(&[], &config, dir.path(), http);
    let leftovers = |data: &Path| -> Vec<String> {
        std::fs::read_dir(data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".firmware"))
            .collect()
    };
    assert_eq!(leftovers(&data), Vec::<String>::new(), "cleaned at start");
    let (cookie, csrf) = session(http, &initial_password(dir.path()));

    // A second upload while one is running is answered 409.
    let image_a: Vec<u8> = (0..4_000_000u32).map(|i| (i % 253) as u8).collect();
    let file_a = firmware::package("1.0.0", &image_a);
    let mut a = TcpStream::connect(http).unwrap();
    a.write_all(upload_head(http, &cookie, &csrf, file_a.len()).as_bytes())
        .unwrap();
    a.write_all(&file_a[..file_a.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let file_b = firmware::package("2.0.0", b"image b");
    let (status, text) = upload(http, &cookie, &csrf, &file_b);
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("upload_running"), "{text}");
    let parts = leftovers(&data);
    assert_eq!(
        parts.len(),
        1,
        "one temporary file while one upload runs: {parts:?}"
    );
    a.write_all(&file_a[file_a.len() / 2..]).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = String::new();
    let _ = a.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(staged_pair_agrees(&data).as_deref(), Some("1.0.0"));

    // Rounds of two uploads at once: whatever is staged, manifest and image agree.
    for round in 0..6u32 {
        let files: Vec<(String, Vec<u8>)> = (0..2u32)
            .map(|k| {
                let version = format!("3.{round}.{k}");
                let image: Vec<u8> = (0..1_000_000u32)
                    .map(|i| ((i + k * 7 + round) % 251) as u8)
                    .collect();
                (version.clone(), firmware::package(&version, &image))
            })
            .collect();
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let uploads: Vec<_> = files
                .iter()
                .map(|(_, f)| scope.spawn(|| upload(http, &cookie, &csrf, f).0))
                .collect();
            uploads.into_iter().map(|u| u.join().unwrap()).collect()
        });
        assert!(
            statuses.iter().all(|s| matches!(s, 200 | 409)) && statuses.contains(&200),
            "round {round}: {statuses:?}"
        );
        let staged = staged_pair_agrees(&data).unwrap();
        assert!(files.iter().any(|(v, _)| *v == staged), "{staged}");
    }

    // Versions are parsed strictly; unknown manifest keys are refused.
    for version in ["18446744073709551615.0.0", "1.0.0-../../etc/passwd", "9.0"] {
        let (status, text) = upload(http, &cookie, &csrf, &firmware::package(version, b"x"));
        assert_eq!(status, 422, "{version}: {text}");
        assert!(text.contains("firmware_manifest"), "{version}: {text}");
    }
    let sneaky = String::from_utf8(firmware::package("9.0.0", b"x"))
        .unwrap()
        .replacen("{\"product\"", "{\"install_to\":\"/etc\",\"product\"", 1);
    let (status, text) = upload(http, &cookie, &csrf, sneaky.as_bytes());
    assert_eq!(status, 422, "{text}");
    assert_eq!(
        leftovers(&data),
        Vec::<String>::new(),
        "no temporary files left"
    );
}

/// Issue 17, point 3: 40,000 malformed KNXnet/IP datagrams do not wipe the log: the ZIP
/// still holds the start-up and the lockout, and the flood is summarised.
#[test]
fn a_knxnet_ip_flood_keeps_start_up_and_security_entries_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 9);
    let http = free_tcp();
    let knx = free_udp();
    let _gateway = start_with_knx(&[], &config, dir.path(), http, knx, &[]);
    let password = initial_password(dir.path());
    // The sixth wrong password within a minute locks 127.0.0.3 out.
    let wrong = serde_json::json!({ "password": "Not-The-Password-1" }).to_string();
    for _ in 0..6 {
        post_from([127, 0, 0, 3], http, "/api/v1/login", &wrong);
    }
    support::wait_for_log(
        &dir.path().join("gateway.log"),
        "locked out",
        Duration::from_secs(10),
    );

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // A header announcing 255 bytes on a 6-byte datagram.
    let malformed = [0x06, 0x10, 0x04, 0x20, 0x00, 0xff];
    for i in 0..40_000u32 {
        socket.send_to(&malformed, knx).unwrap();
        if i % 2000 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    std::thread::sleep(Duration::from_secs(1));

    let (cookie, _) = session(http, &password);
    let answer =
        support::http(http, "GET", "/api/v1/logs.zip", &[("Cookie", &cookie)], "").unwrap();
    assert_eq!(answer.status, 200, "{}", answer.head);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(answer.body)).unwrap();
    let mut log = String::new();
    zip.by_name("knx-echarge.log")
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("device website on http://"),
        "start-up gone:\n{log}"
    );
    assert!(log.contains("locked out"), "lockout gone:\n{log}");
    let dropped = log.matches("malformed KNXnet/IP datagram dropped").count();
    assert!(
        dropped <= 20,
        "{dropped} flood lines in the log: the rate limit let them through"
    );
    // The summary comes when the window is over; within this test the flood lines are
    // counted, not logged (the summary itself is checked by the unit tests).
    let text = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    let on_stderr = text.matches("malformed KNXnet/IP datagram dropped").count();
    assert!(
        (1..=20).contains(&on_stderr),
        "{on_stderr} flood lines on stderr: none (the flood did not arrive) or too many"
    );
}

/// POSTs JSON `body` to `path` from the loopback address `from`; the status.
fn post_from(from: [u8; 4], http: SocketAddr, path: &str, body: &str) -> u16 {
    let mut s = connect_from(from, http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Issue 17, point 4: under 1,000 wrong logins from 200 addresses, the right password from
/// another address logs in within 5 s.
#[test]
fn a_login_flood_from_200_addresses_does_not_starve_the_real_user() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 9);
    let http = free_tcp();
    let _gateway = start(&[], &config, dir.path(), http);
    let password = initial_password(dir.path());
    let wrong = serde_json::json!({ "password": "Not-The-Password-1" }).to_string();
    let right = serde_json::json!({ "password": password }).to_string();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    let (took, status) = std::thread::scope(|scope| {
        // 40 attackers at a time, each taking 5 addresses × 5 attempts.
        for t in 0..40u8 {
            let (wrong, stop, statuses) = (&wrong, &stop, &statuses);
            scope.spawn(move || {
                for a in 0..5u8 {
                    for _ in 0..5 {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            return;
                        }
                        let s = post_from([127, 0, 2, 1 + t * 5 + a], http, "/api/v1/login", wrong);
                        *statuses.lock().unwrap().entry(s).or_default() += 1;
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        let asked = Instant::now();
        let status = post_from([127, 0, 0, 9], http, "/api/v1/login", &right);
        let took = asked.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (took, status)
    });
    eprintln!("flood answers: {:?}", statuses.lock().unwrap());
    assert_eq!(status, 200, "the real user's login");
    assert!(
        took < Duration::from_secs(5),
        "the real user waited {took:?}"
    );
    eprintln!("the real user logged in after {took:?}");
}

/// Issue 17, point 6: damaged data files. A corrupt password file leaves the website running
/// and saying what is damaged and how to recover; a corrupt settings file is logged and kept
/// aside; an oversized or non-UTF-8 config file is refused with a clear message.
#[test]
fn damaged_data_files_are_reported_and_the_website_still_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("web-password.json"),
        b"{\"initial\": \"$argon2id$v=19$tru",
    )
    .unwrap();
    std::fs::write(data.join("web-settings.json"), b"{\"logging\": 17").unwrap();
    let config = config(dir.path(), 9);
    let http = free_tcp();
    let _gateway = start(&[], &config, dir.path(), http);
    let body = serde_json::json!({ "password": "Whatever-Pass-1" }).to_string();
    let answer = support::http(
        http,
        "POST",
        "/api/v1/login",
        &[("Content-Type", "application/json")],
        &body,
    )
    .unwrap();
    assert_eq!(answer.status, 503, "{}", answer.head);
    let json = answer.json().unwrap();
    assert_eq!(json["key"], "password_damaged");
    let text = json["error"].as_str().unwrap();
    assert!(
        text.contains("web-password.json") && text.contains("delete it"),
        "{text}"
    );
    let login = support::http(http, "GET", "/login", &[], "").unwrap();
    assert_eq!(login.status, 200, "the login page is served");
    assert!(data.join("web-settings.json.bad").exists(), "kept aside");
    assert!(!data.join("web-settings.json").exists());
    let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    assert!(log.contains("web-settings.json is damaged"), "{log}");
    // The password file is left as it was, for the owner to inspect.
    assert!(data.join("web-password.json").exists());

    // Config files: too large, not UTF-8.
    let big = dir.path().join("big.toml");
    let mut text = std::fs::read_to_string("examples/single-charger.toml").unwrap();
    while text.len() <= 2 * 1024 * 1024 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&big, text).unwrap();
    let out = Command::new(support::gateway_bin())
        .arg("check-config")
        .arg(&big)
        .output()
        .unwrap();
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(err.contains("larger than 1048576 bytes"), "{err}");
    let latin1 = dir.path().join("latin1.toml");
    let mut bytes = b"[knx]\nindividual_address = \"1.1.20\"\n# Geb\xe4ude\n".to_vec();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&latin1, bytes).unwrap();
    let out = Command::new(support::gateway_bin())
        .arg("check-config")
        .arg(&latin1)
        .output()
        .unwrap();
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        err.contains("latin1.toml:3:6") && err.contains("not UTF-8"),
        "{err}"
    );
}

/// Resident memory of process `pid`, kB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Issue 17: memory under login floods (a benchmark, not a timed test: it prints the figures
/// for BENCHMARKS.md). Three rounds of 1,000 wrong logins from 200 addresses and 100 right
/// ones; RSS after each round. Run with
/// `cargo test --release --test web_hardening -- --ignored --nocapture login_flood_memory`.
#[test]
#[ignore = "benchmark: prints RSS figures"]
fn login_flood_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 9);
    let http = free_tcp();
    let gateway = start(&[], &config, dir.path(), http);
    let pid = gateway.0.id();
    let password = initial_password(dir.path());
    let wrong = serde_json::json!({ "password": "Not-The-Password-1" }).to_string();
    let right = serde_json::json!({ "password": password }).to_string();
    std::thread::sleep(Duration::from_secs(2));
    println!("RSS at start: {} kB", rss_kb(pid));
    for round in 0..3u8 {
        std::thread::scope(|scope| {
            for t in 0..40u8 {
                let wrong = &wrong;
                scope.spawn(move || {
                    for a in 0..5u8 {
                        for _ in 0..5 {
                            post_from(
                                [127, 1 + round, 2, 1 + t * 5 + a],
                                http,
                                "/api/v1/login",
                                wrong,
                            );
                        }
                    }
                });
            }
        });
        for i in 0..100u8 {
            let status = post_from([127, 0, 3, 1 + i], http, "/api/v1/login", &right);
            assert!(matches!(status, 200 | 503), "{status}");
        }
        std::thread::sleep(Duration::from_secs(1));
        println!("RSS after round {}: {} kB", round + 1, rss_kb(pid));
    }
}
