//! Every DPT of the group-object table over the wire, range edges included.
//!
//! The gateway binary (`knx-echarge run`, its built-in KNXnet/IP server on loopback) polls
//! four simulated charging points over Modbus TCP: three Alfen Eve, whose current, power,
//! energy and temperature registers the test forces to the edges of each DPT's range and
//! beyond, each configured with other DPTs for its current, power and energy objects (7.012 /
//! 9.021 / 14.019, 9.024 / 14.056, 13.010 / 13.013), and a Vestel EVC04, whose RFID registers
//! (UTF-16) carry texts with non-ASCII Latin-1 characters and a character outside Latin-1.
//! The gateway runs under libfaketime with its wall clock at Sunday 23:59:30, so the start
//! and end times of a charging process (DPT 10.001) cross midnight and the week's wrap
//! (weekday 7 → 1).
//!
//! xknx tunnels in and reads each R object (GroupValue_Read). The answer's bytes must equal
//! xknx's own encoding of the value the charging point reported (`encode` of
//! `tests/interop/xknx_peer.py`): currents, powers, energies, temperatures and texts as the
//! registers hold them; a value beyond the DPT's range as the edge of the range, which the
//! gateway logs. Start and end times and the duration (13.100) come from the gateway's clock,
//! so they are checked against the window in which the test plugged and unplugged the vehicle,
//! and their bytes against xknx's encoding of the decoded value. Writes from xknx cover the W
//! objects of 1.001 (grid-supporting control), 1.002 (interruption) and 1.010 (start/stop),
//! seen in the state objects (1.011, 5.010).
//!
//! DPT 1.017 (trigger: unlock, "in operation") is write-only and needs DLM or a model with an
//! unlock register; its codec is in the xknx vector sweep (`tests/dpt_xknx.rs`). The edges of
//! 13.100 (68 years) and 5.010 (values the spec does not define) cannot come from a charging
//! point; the vector sweep covers them too.
//!
//! Needs `.venv` with xknx and Debian's faketime (installed by `tests/run`, which also sets
//! KNX_ECHARGE_INTEROP=1: then a missing peer is a failure, not a skip).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use knx_echarge::faults::FaultCode;
use knx_echarge::sim::{SimHandle, SimModel, Vehicle};
use knx_echarge::units::Current;
use serde_json::{Value, json};
use support::{KillOnDrop, LinePeer, free_udp, wait_for_log};

/// The gateway's wall clock when it starts (libfaketime, UTC): a Sunday, 30 s before the
/// week ends.
const FAKE_START: &str = "@2026-11-22 23:59:30";
/// [`FAKE_START`] in seconds since Sunday 00:00.
const FAKE_START_S: u64 = 23 * 3600 + 59 * 60 + 30;
/// Seconds in a day.
const DAY_S: u64 = 86_400;

/// The charging points: model and the DPTs of their current, power and energy objects.
const POINTS: [(SimModel, &str, &str, &str); 4] = [
    (SimModel::AlfenEve, "7.012", "9.024", "13.010"),
    (SimModel::AlfenEve, "9.021", "14.056", "13.013"),
    (SimModel::AlfenEve, "14.019", "14.056", "13.010"),
    (SimModel::VestelEvc04, "14.019", "14.056", "13.010"),
];

/// The Vestel's position (charging point 4).
const VESTEL: usize = 4;

/// Offsets of the charging-point objects linked (all those with R or W that these models
/// have); charging point n's object 50n + k has group address n/0/k.
const OFFSETS: [u16; 31] = [
    0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
    28, 30, 31, 32, 33, 34,
];

fn config(ports: &[u16]) -> String {
    let mut text =
        String::from("[knx]\nindividual_address = \"1.1.10\"\n[modbus]\npoll_interval = 300\n");
    for (n, ((_, current, power, energy), port)) in (1..).zip(POINTS.iter().zip(ports)) {
        let model = POINTS[n - 1].0.id();
        let _ = write!(
            text,
            "[charging_point.{n}]\nenabled = true\nmodel = \"{model}\"\nip = \"127.0.0.1\"\n\
             port = {port}\nmax_current = 16\ndpt_current = \"{current}\"\n\
             dpt_power = \"{power}\"\ndpt_energy = \"{energy}\"\n"
        );
        if n == 1 {
            text.push_str("send_temperature = \"on-change\"\n");
        }
    }
    text.push_str("[group_addresses]\n");
    for n in [1, 2, 8, 9] {
        let _ = writeln!(text, "{n} = [\"0/0/{n}\"]");
    }
    for cp in 1..=POINTS.len() {
        for k in OFFSETS.iter().chain(&[44, 45]) {
            let _ = writeln!(text, "{} = [\"{cp}/0/{k}\"]", 50 * cp + usize::from(*k));
        }
    }
    text
}

/// Charging point `cp`'s object at `offset`: its group address.
fn ga(cp: usize, offset: u16) -> String {
    format!("{cp}/0/{offset}")
}

/// The xknx peer with xknx's encodings cached.
struct Xknx {
    peer: LinePeer,
    encoded: BTreeMap<String, String>,
    /// DPTs whose values were checked.
    checked: BTreeSet<String>,
}

impl Xknx {
    /// xknx's payload for `value` as DPT `dpt` (`arr:…` or `bin:…`).
    fn encode(&mut self, dpt: &str, value: &Value) -> String {
        let key = format!("{dpt} {value}");
        if let Some(p) = self.encoded.get(&key) {
            return p.clone();
        }
        self.peer.send(&format!("encode {key}"));
        let line = self.peer.expect("ENCODED ", Duration::from_secs(10));
        let payload = line.trim_start_matches("ENCODED ").to_owned();
        self.encoded.insert(key, payload.clone());
        payload
    }

    /// One GroupValue_Read: `(payload, xknx's decoding)`, `None` without an answer.
    fn read(&mut self, ga: &str, dpt: &str) -> Option<(String, Value)> {
        self.peer.send(&format!("read {ga} {dpt}"));
        let value = format!("VALUE {ga} ");
        let none = format!("NOVALUE {ga}");
        let line = self.peer.expect_where(
            &value,
            |l| l.starts_with(&value) || l == none,
            Duration::from_secs(15),
        );
        if line == none {
            return None;
        }
        let mut parts = line.splitn(4, ' ').skip(2);
        let payload = parts.next().unwrap_or_default().to_owned();
        let decoded = serde_json::from_str(parts.next().unwrap_or("null"))
            .unwrap_or_else(|e| panic!("{e}: {line}"));
        Some((payload, decoded))
    }

    /// Reads `ga` until its answer is xknx's encoding of `value` (the gateway polls every
    /// 300 ms, so a new reading takes a moment to arrive).
    fn expect(&mut self, ga: &str, dpt: &str, value: &Value) {
        let want = self.encode(dpt, value);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = None;
        while Instant::now() < deadline {
            let answer = self.read(ga, dpt);
            if answer.as_ref().is_some_and(|(p, _)| *p == want) {
                eprintln!("{ga} {dpt}: {value} = {want} ok");
                self.checked.insert(dpt.to_owned());
                return;
            }
            last = answer;
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{ga} (DPT {dpt}): want {value} = {want} (xknx), the gateway answered {last:?}");
    }
}

/// Seconds since Sunday 00:00 of a time xknx decoded (`KNXTime(hour=23, minutes=59,
/// seconds=31, day=<KNXDay.SUNDAY: 7>)`), and the same as a JSON value for `encode`.
fn week_seconds(decoded: &Value) -> (u64, Value) {
    let text = decoded.as_str().unwrap_or_else(|| panic!("{decoded}"));
    let field = |name: &str| -> u64 {
        text.split(&format!("{name}="))
            .nth(1)
            .and_then(|r| r.split([',', ')']).next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let (h, m, s) = (field("hour"), field("minutes"), field("seconds"));
    let day = text
        .split("KNXDay.")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .unwrap_or_else(|| panic!("no weekday in {text}"));
    let since_sunday = match day {
        "SUNDAY" => 0,
        "MONDAY" => DAY_S,
        other => panic!("{other}: the clock started on Sunday 23:59:30 and ran for minutes"),
    };
    (
        since_sunday + h * 3600 + m * 60 + s,
        json!({"day": day.to_lowercase(), "hour": h, "minutes": m, "seconds": s}),
    )
}

/// A vehicle on one phase with an RFID tag.
fn vehicle(rfid: &str) -> Vehicle {
    Vehicle {
        rfid: Some(rfid.to_owned()),
        ..Vehicle::single_phase()
    }
}

fn amps(a: f64) -> Current {
    Current::from_amps_f64(a).unwrap()
}

/// Forces currents (A), powers (W) and lifetime energies (Wh) per phase.
fn force(sim: &SimHandle, currents: [f64; 3], power: [f64; 3], energy: [f64; 3]) {
    let mut s = sim.lock();
    s.state.forced.currents = Some(currents.map(amps));
    s.state.forced.power_phases_w = Some(power);
    s.state.energy_phases_wh = energy;
}

/// An f32 register's value as the gateway reads it.
#[allow(clippy::cast_possible_truncation, reason = "the register is an f32")]
fn f32_of(v: f64) -> f64 {
    f64::from(v as f32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dpt_over_the_wire_with_range_edges_and_latin1_texts() {
    let Some(python) = support::venv_python() else {
        return;
    };
    let Some(faketime) = support::libfaketime() else {
        return;
    };
    let (sims, servers, ports) =
        support::tcp_simulators(POINTS.iter().map(|(model, ..)| *model)).await;
    for sim in &sims[..3] {
        sim.plug_in(Vehicle::three_phase());
    }
    // The first readings, at the low edges (and up to the high edge on single phases).
    force(
        &sims[0],
        [0.0, 0.001, 65.535],
        [0.0, 10.0, 670_433_280.0],
        [0.0, 1.0, 2_147_483_646.0],
    );
    sims[0].lock().state.forced.temperature_c = Some(-273.0);
    force(
        &sims[1],
        [0.01, 16.0, 670.433_28],
        [0.5, 22_000.0, 4.0e9],
        [1499.0, 1500.0, 2_147_483_647_000.0],
    );
    force(
        &sims[2],
        [0.001, 32.0, 2_000_000.0],
        [1.0, 2.0, 3.0],
        [3.0e9, 0.5, 0.0],
    );

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("sweep.toml");
    std::fs::write(&config_path, config(&ports)).unwrap();
    let log = dir.path().join("gateway.log");
    let port = free_udp().port();
    let t0 = Instant::now();
    let mut gateway = KillOnDrop(
        Command::new(support::gateway_bin())
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(["--knx", &format!("server://127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.path().join("data"))
            .env("LD_PRELOAD", &faketime)
            .env("FAKETIME", FAKE_START)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("TZ", "UTC")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // The gateway's clock starts at FAKE_START when the process starts, some time between
    // the spawn (`t0`) and its first log line: at `t` it reads at most `clock_at(t)` and at
    // least `clock_at(t) − lag`, in seconds since Sunday 00:00.
    let clock_at = |t: Instant| FAKE_START_S + t.saturating_duration_since(t0).as_secs();
    wait_for_log(&log, "KNX link open", Duration::from_secs(60));
    let lag = t0.elapsed().as_secs() + 1;
    wait_for_log(&log, "first poll cycle complete", Duration::from_secs(60));

    // The Vestel's vehicle plugs in on Sunday evening, just before midnight.
    sims[VESTEL - 1].plug_in(vehicle("Grüße Ärztin ÿ"));
    let (peer, _) = support::xknx_tunnel(&python, port);
    let mut x = Xknx {
        peer,
        encoded: BTreeMap::new(),
        checked: BTreeSet::new(),
    };

    // Charging point 4: charging, its start time, its texts in Latin-1.
    let v = VESTEL;
    x.expect(&ga(v, 1), "1.002", &json!(true));
    x.expect(&ga(v, 2), "1.011", &json!(true));
    x.expect(&ga(v, 0), "5.010", &json!(8));
    x.expect(&ga(v, 3), "1.002", &json!(false));
    // Object 84 shows the first 4 bytes of the tag (table 55); a tag that is no hex UID gives
    // its first 4 characters, one Latin-1 byte each.
    x.expect(&ga(v, 34), "16.001", &json!("Grüß"));
    x.expect(&ga(v, 30), "16.001", &json!("VES1234567890"));
    x.expect(&ga(v, 31), "16.001", &json!("v3.187.0"));
    // Writes from xknx: grid-supporting control (1.001) and interruption (1.002) on and off,
    // seen in their state objects (1.011) and the state byte (5.010: 11 interrupted).
    // Releasing the interruption starts a new charging process: its start time is checked.
    let mut resumed = Instant::now();
    for on in [true, false] {
        x.peer.send(&format!("write 0/0/1 bin:{}", u8::from(on)));
        x.peer.expect("SENT 0/0/1", Duration::from_secs(10));
        x.expect("0/0/2", "1.011", &json!(on));
        resumed = Instant::now();
        x.peer
            .send(&format!("write {} bin:{}", ga(v, 5), u8::from(on)));
        x.peer.expect("SENT", Duration::from_secs(10));
        x.expect(&ga(v, 6), "1.011", &json!(on));
        x.expect(&ga(v, 0), "5.010", &json!(if on { 11 } else { 8 }));
    }

    let started_seen = Instant::now();
    let (payload, decoded) = x.read(&ga(v, 26), "10.001").expect("a start time");
    let (start, as_json) = week_seconds(&decoded);
    let window = clock_at(resumed).saturating_sub(lag)..=clock_at(started_seen) + 1;
    assert!(
        window.contains(&start),
        "start time {decoded} ({start} s into the week) outside {window:?}"
    );
    assert_eq!(payload, x.encode("10.001", &as_json), "{decoded}");
    x.checked.insert("10.001".into());

    // Charging points 1–3: every reading at the edges of its DPT, or beyond them.
    let a = |cp: usize, k: u16, dpt: &str, value: Value, x: &mut Xknx| {
        x.expect(&ga(cp, k), dpt, &value);
    };
    // 7.012 (mA, 0..=65 535), 9.024 (kW), 13.010 (Wh, i32), 9.001 (−273 °C at the bottom).
    a(1, 13, "7.012", json!(0), &mut x);
    a(1, 14, "7.012", json!(1), &mut x);
    a(1, 15, "7.012", json!(65_535), &mut x);
    a(1, 12, "7.012", json!(65_535), &mut x); // 65.536 A: beyond
    a(1, 17, "9.024", json!(0.0), &mut x);
    a(1, 18, "9.024", json!(0.01), &mut x);
    a(1, 19, "9.024", json!(670_433.28), &mut x); // the largest DPT 9 value
    a(1, 16, "9.024", json!(670_433.28), &mut x); // beyond
    a(1, 21, "13.010", json!(0), &mut x);
    a(1, 22, "13.010", json!(1), &mut x);
    a(1, 23, "13.010", json!(2_147_483_646), &mut x);
    a(1, 20, "13.010", json!(i32::MAX), &mut x);
    a(1, 25, "13.010", json!(i32::MAX), &mut x);
    a(1, 32, "9.001", json!(-273.0), &mut x);
    a(1, 33, "1.002", json!(false), &mut x);
    a(1, 30, "16.001", json!("ACE0123456"), &mut x);
    a(1, 31, "16.001", json!("4.14.0-3398"), &mut x);
    // 9.021 (mA as a 2-octet float), 14.056 (W, f32), 13.013 (kWh, i32).
    a(2, 13, "9.021", json!(10.0), &mut x);
    a(2, 14, "9.021", json!(16_000.0), &mut x);
    a(2, 15, "9.021", json!(670_433.0), &mut x); // 670.433 A: the top step
    a(2, 12, "9.021", json!(670_433.28), &mut x); // 686.4 A: beyond
    a(2, 17, "14.056", json!(0.5), &mut x);
    a(2, 18, "14.056", json!(22_000.0), &mut x);
    a(2, 19, "14.056", json!(4.0e9), &mut x);
    a(2, 16, "14.056", json!(f32_of(4_000_022_000.5)), &mut x);
    a(2, 21, "13.013", json!(1), &mut x); // 1.499 kWh
    a(2, 22, "13.013", json!(2), &mut x); // 1.5 kWh, rounded half away from zero
    a(2, 23, "13.013", json!(i32::MAX), &mut x);
    a(2, 20, "13.013", json!(i32::MAX), &mut x); // beyond
    // 14.019 (A, f32) and 13.010 beyond its range.
    a(3, 13, "14.019", json!(0.001), &mut x);
    a(3, 14, "14.019", json!(32.0), &mut x);
    a(3, 15, "14.019", json!(2_000_000.0), &mut x);
    a(3, 12, "14.019", json!(f32_of(2_000_032.001)), &mut x);
    a(3, 21, "13.010", json!(i32::MAX), &mut x); // 3·10⁹ Wh: beyond
    a(3, 22, "13.010", json!(1), &mut x); // 0.5 Wh
    a(3, 23, "13.010", json!(0), &mut x);

    // New readings: beyond the other ends, and back inside.
    force(&sims[0], [70.0, 16.0, 0.0], [1e9; 3], [3.0e9, 0.0, 0.0]);
    sims[0].lock().state.forced.temperature_c = Some(85.5);
    force(&sims[1], [0.0, 0.0, 700.0], [0.0; 3], [0.0; 3]);
    a(1, 13, "7.012", json!(65_535), &mut x);
    a(1, 14, "7.012", json!(16_000), &mut x);
    a(1, 15, "7.012", json!(0), &mut x);
    a(1, 19, "9.024", json!(670_433.28), &mut x);
    a(1, 21, "13.010", json!(i32::MAX), &mut x);
    a(1, 32, "9.001", json!(85.5), &mut x);
    a(1, 33, "1.002", json!(true), &mut x); // at or above the warning value (70 °C)
    a(2, 13, "9.021", json!(0.0), &mut x);
    a(2, 15, "9.021", json!(670_433.28), &mut x);
    a(2, 23, "13.013", json!(0), &mut x);
    sims[0].lock().state.forced.temperature_c = Some(-300.0);
    a(1, 32, "9.001", json!(-273.0), &mut x); // below absolute zero: beyond
    a(1, 33, "1.002", json!(false), &mut x);

    // A fault on charging point 3: its fault object and fault text (DPT 16, 14 characters).
    sims[2].set_faults(|f| f.invalid_currents = true);
    a(3, 44, "1.002", json!(true), &mut x);
    a(
        3,
        45,
        "16.001",
        json!(FaultCode::DlmInvCurrent.text()),
        &mut x,
    );
    sims[2].set_faults(|f| f.invalid_currents = false);
    a(3, 44, "1.002", json!(false), &mut x);

    // After midnight the vehicle leaves: end time on Monday, the duration.
    while clock_at(Instant::now()) < DAY_S + 2 + lag {
        std::thread::sleep(Duration::from_millis(200));
    }
    let unplugged = Instant::now();
    sims[v - 1].unplug();
    a(v, 1, "1.002", json!(false), &mut x);
    a(v, 0, "5.010", json!(5), &mut x);
    let ended_seen = Instant::now();
    let (payload, decoded) = x.read(&ga(v, 27), "10.001").expect("an end time");
    let (end, as_json) = week_seconds(&decoded);
    let window = clock_at(unplugged).saturating_sub(lag)..=clock_at(ended_seen) + 1;
    assert!(
        window.contains(&end) && end >= DAY_S,
        "end time {decoded} ({end} s into the week) outside {window:?}, or not on Monday"
    );
    assert!(
        start < DAY_S,
        "the charging process started on Sunday: {start}"
    );
    assert_eq!(payload, x.encode("10.001", &as_json), "{decoded}");
    let (payload, decoded) = x.read(&ga(v, 28), "13.100").expect("a duration");
    let secs = decoded.as_u64().unwrap_or_else(|| panic!("{decoded}"));
    assert!(
        secs.abs_diff(end - start) <= 1,
        "duration {secs} s, end − start = {} s",
        end - start
    );
    assert_eq!(payload, x.encode("13.100", &decoded));
    x.checked.insert("13.100".into());

    // Another tag, one character outside Latin-1 (€ → ?): its first 4 characters.
    sims[v - 1].plug_in(vehicle("€uro-Säule-12345"));
    a(v, 34, "16.001", json!("?uro"), &mut x);
    // Start/stop (1.010): stop ends the charging process (5.010: 4 cancelled).
    x.peer.send(&format!("write {} bin:0", ga(v, 4)));
    x.peer.expect("SENT", Duration::from_secs(10));
    a(v, 0, "5.010", json!(4), &mut x);

    // Every DPT of the table with an R object was read, and 1.001 / 1.010 were written.
    let table: BTreeSet<&str> = [
        "1.002", "1.011", "5.010", "7.012", "9.001", "9.021", "9.024", "10.001", "13.010",
        "13.013", "13.100", "14.019", "14.056", "16.001",
    ]
    .into();
    let checked: BTreeSet<&str> = x.checked.iter().map(String::as_str).collect();
    assert_eq!(checked, table);
    // Each clamped value that was still current when the bus limiter's turn came (20
    // telegrams/s; a newer value replaces a queued one) was logged when it was sent.
    let text = std::fs::read_to_string(&log).unwrap();
    let clamped: BTreeSet<u16> = text
        .lines()
        .filter(|l| l.contains("beyond the range of the object's DPT"))
        .filter_map(|l| {
            l.split("object=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    for object in [62, 63, 69, 71, 82, 112, 115, 171] {
        assert!(
            clamped.contains(&object),
            "no warning for object {object}: {clamped:?}\n{}",
            text.lines()
                .filter(|l| l.contains(&format!("object={object} ")))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(
        gateway.0.try_wait().unwrap().is_none(),
        "the gateway stopped"
    );
    x.peer.send("quit");
    drop(servers);
}
