//! Reaction time of the whole gateway (`cargo bench --bench reaction`; a bench binary that
//! prints numbers).
//!
//! Real parts on loopback, in one process: the gateway's built-in KNXnet/IP tunnelling
//! server, the shell with core and object engine, five charger tasks with their drivers
//! talking Modbus TCP to five charging-point simulators (KEBA P30, ABB Terra AC, Bender
//! CC612, Alfen Eve, Webasto Next), each with a vehicle charging on three phases. The smart
//! meter is a KNXnet/IP tunnelling client (the project's own) that sends DPT 14.019
//! GroupValue_Writes on 0/0/10..12 over UDP. With `REACTION_LINK=tp` the gateway and the
//! meter are instead TP-UART links on two ports of the emulated TP line (`knx_echarge::tpline`):
//! the meter's telegrams cross KNX/TP (`TP1_TIMING=1`: at TP1's 9600 bit/s).
//!
//! The meter sends a reading every second (`REACTION_METER_MS` overrides): what a real
//! meter measures, the house load plus what the simulated vehicles draw (they follow a new
//! setpoint at once), per phase. Each step is a load step at one reading (house load up by
//! 8 A per phase, gone at the next) and measures the time from sending its three telegrams until **all five simulators have
//! received a lower setpoint over Modbus TCP** (watched every 100 µs from a thread of its
//! own). Before each step the gateway has ramped back and its setpoints have settled: every
//! one above the minimum and unchanged long enough for a poll to show the vehicles there and
//! a reading to see them (at most 20 s, else the step is made anyway and counted as not
//! settled); that ramp is not timed but reported, as are the setpoints each step began from.
//! A step whose setpoints do not all come down within 2 s is counted as missed. Reports
//! median, p99 and max over the steps (default 200; `REACTION_STEPS` overrides) and a line
//! per step on stderr.
//!
//! The ramp back is bounded below by the DLM's own rule (`docs/dlm.md`, "Raises wait for a
//! reading that sees the vehicle at its level"): a raise waits for a reading taken the
//! vehicle's reaction + 1 s after the last change, so with a meter every second a step takes
//! about 4 s (2 s ramp back, 2 s settled).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use knx_echarge::config::file;
use knx_echarge::gateway::start::{Chargers, Gateway, Options};
use knx_echarge::knx::link::{self, LinkEvent, LinkSpec};
use knx_echarge::knx::wire::apdu::{Apdu, Payload, Tpdu};
use knx_echarge::knx::wire::cemi::{Destination, LData, LDataService};
use knx_echarge::knx::{GroupAddress, IndividualAddress};
use knx_echarge::sim::{self, SimHandle, SimModel, Vehicle};
use knx_echarge::tpline::{LineOptions, TpLine};
use knx_echarge::units::Current;

const MODELS: [(SimModel, &str); 5] = [
    (SimModel::KebaP30, "keba-p30"),
    (SimModel::AbbTerraAc, "abb-terra-ac"),
    (SimModel::BenderCc, "bender-cc612"),
    (SimModel::AlfenEve, "alfen-eve"),
    (SimModel::WebastoNext, "webasto-next"),
];

fn meter_frame(ga: &str, amps: f32) -> LData {
    LData::new(
        LDataService::Req,
        IndividualAddress::from_raw(0),
        Destination::Group(ga.parse::<GroupAddress>().unwrap()),
        Tpdu::Data(Apdu::GroupValueWrite(Payload::Long(
            amps.to_be_bytes().to_vec(),
        ))),
    )
}

/// The setpoints the simulators hold. Read under their lock without cloning their state: the
/// state keeps every write received, and cloning it every 200 µs while the gateway writes
/// cost the gateway CPU time that grew with the run.
fn setpoints(sims: &[SimHandle]) -> Vec<Current> {
    sims.iter().map(|s| s.lock().state.setpoint).collect()
}

/// Minimum current of every charging point (the allocation never goes below it while a
/// vehicle charges): a point there cannot be lowered by a step.
const MIN: Current = Current::from_amps(6);

/// House load before each step; the step adds [`STEP`] on every phase. Budget 63 A − 3 A
/// reserve: 42 A before (8.4 A each, told 8 A: the DLM tells whole amperes, rounded down),
/// 34 A during the step (6.8 A, told 6 A). Not an exact share of 8.000 A: with 20 A, any
/// other-load estimate a milliampere high (the dead band holds the highest estimate of the
/// last 60 s within 4 A) gave everyone 7 A.
const HOUSE: f32 = 18.0;
const STEP: f32 = 8.0;

/// How long the setpoints must stay unchanged before a step: a poll (every 1 s) shows the
/// vehicles at their last setpoints and a meter reading after that poll sees them there, so
/// the step is judged on a settled estimate. Checked at the meter's readings (every 1 s by
/// default), so a change just after a reading is settled two readings later.
const SETTLE: Duration = Duration::from_millis(1_900);

/// The most a ramp back may take before the step is made anyway (counted as not settled).
const RAMP_LIMIT: Duration = Duration::from_secs(20);

/// The most the setpoints may take to come down after a step (counted as missed).
const REACTION_LIMIT: Duration = Duration::from_secs(2);

/// The smart meter: sends what a real meter measures (the house plus what the vehicles draw,
/// per phase) once per `period`, L1, L2, L3 as three telegrams.
struct Meter {
    to_bus: tokio::sync::mpsc::Sender<LData>,
    sims: Vec<SimHandle>,
    period: Duration,
    next: Instant,
    lost: usize,
}

impl Meter {
    async fn send(&mut self, house: f32) {
        let mut phases = [house; 3];
        for s in &self.sims {
            for (p, c) in phases.iter_mut().zip(s.lock().state.currents()) {
                *p += c.as_amps_f64() as f32;
            }
        }
        for (ga, a) in ["0/0/10", "0/0/11", "0/0/12"].into_iter().zip(phases) {
            // Bounded: a link that stops taking telegrams must not hang the bench.
            let sent =
                tokio::time::timeout(Duration::from_secs(1), self.to_bus.send(meter_frame(ga, a)))
                    .await;
            if !matches!(sent, Ok(Ok(()))) {
                self.lost += 1;
            }
        }
        self.next += self.period;
    }

    /// Watches the setpoints until the next reading is due; returns when they last changed.
    async fn until_due(&self, last: &mut Vec<Current>, changed: &mut Instant) {
        while Instant::now() < self.next {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let now = setpoints(&self.sims);
            if now != *last {
                *last = now;
                *changed = Instant::now();
            }
        }
    }

    /// Sends a reading every period until the setpoints have been unchanged for [`SETTLE`],
    /// every one above the minimum, or `limit` has passed. Returns at the moment the next
    /// reading is due (the caller sends it) and whether the setpoints settled.
    async fn settle(&mut self, house: f32, limit: Duration) -> bool {
        let t0 = Instant::now();
        let mut last = setpoints(&self.sims);
        let mut changed = t0;
        loop {
            self.until_due(&mut last, &mut changed).await;
            if changed.elapsed() >= SETTLE && last.iter().all(|c| *c > MIN) {
                return true;
            }
            if t0.elapsed() >= limit {
                return false;
            }
            self.send(house).await;
        }
    }
}

/// Waits until every simulator holds a setpoint below `before`, or `limit` passes; returns
/// when it saw that. Watched from a thread of its own every 100 µs: a tokio sleep lasts at
/// least a millisecond (the timer's resolution), which added up to 1 ms to every figure, and
/// the runtime's two worker threads stay free for the gateway.
async fn all_lower(
    sims: &[SimHandle],
    before: Vec<Current>,
    limit: Duration,
) -> Option<(Instant, u64)> {
    let sims = sims.to_vec();
    tokio::task::spawn_blocking(move || {
        let end = Instant::now() + limit;
        loop {
            let now = Instant::now();
            if setpoints(&sims)
                .iter()
                .zip(&before)
                .all(|(now, was)| now < was)
            {
                return Some((now, requests(&sims)));
            }
            if now >= end {
                return None;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    })
    .await
    .unwrap()
}

/// Modbus requests the simulators have answered so far.
fn requests(sims: &[SimHandle]) -> u64 {
    sims.iter().map(|s| s.lock().requests).sum()
}

/// The machine's load averages (`/proc/loadavg`), or "?" where there is none.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".to_owned(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn amps(setpoints: &[Current]) -> String {
    let list: Vec<String> = setpoints
        .iter()
        .map(|c| format!("{:.1}", c.as_amps_f64()))
        .collect();
    format!("[{}] A", list.join(", "))
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let steps: usize = std::env::var("REACTION_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Five charging-point simulators with vehicles.
        let mut sims = Vec::new();
        let mut servers = Vec::new();
        let mut cps = String::new();
        for (i, (model, id)) in MODELS.iter().enumerate() {
            let handle = SimHandle::new(*model);
            handle.plug_in(Vehicle::three_phase());
            let server = sim::serve_tcp(handle.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
            let addr = server.addr.unwrap();
            let _ = write!(
                cps,
                "[charging_point.{n}]\nenabled = true\nmodel = \"{id}\"\nip = \"127.0.0.1\"\nport = {port}\nmax_current = 16\n",
                n = i + 1,
                port = addr.port()
            );
            sims.push(handle);
            servers.push(server);
        }
        let text = "[knx]\nindividual_address = \"1.1.10\"\n[dlm]\nenabled = true\novercurrent_protection = 63\nload_reserve = 3\nramp_up_rate = 32.0\nmin_switch_time = 0\n[dlm.monitoring]\ninterval = 600\n[modbus]\npoll_interval = 1000\n".to_owned()
            + &cps
            + "[group_addresses]\n10 = [\"0/0/10\"]\n11 = [\"0/0/11\"]\n12 = [\"0/0/12\"]\n";
        let config = file::parse(&text, "reaction bench").unwrap();
        // The gateway's link and the smart meter's: the built-in KNXnet/IP server with a
        // tunnelling client over UDP, or (REACTION_LINK=tp) two TP-UART links on the
        // emulated TP line. The gateway is started as the binary does.
        let tp = std::env::var("REACTION_LINK").is_ok_and(|v| v == "tp");
        let tp1_timing = std::env::var("TP1_TIMING").is_ok_and(|v| v == "1");
        let line = if tp { Some(TpLine::start(2, LineOptions { tp1_timing, ..LineOptions::default() }).unwrap()) } else { None };
        let (gateway_spec, meter_spec) = match &line {
            Some(line) => (
                LinkSpec::Tpuart { path: line.paths()[0].clone() },
                Some(LinkSpec::Tpuart { path: line.paths()[1].clone() }),
            ),
            None => (LinkSpec::Server { bind: "127.0.0.1:0".parse().unwrap() }, None),
        };
        let mut config = config;
        config.knx.link = Some(gateway_spec);
        let gateway = Gateway::start(Options {
            chargers: Chargers::Poll { rs485: None },
            ..Options::new(config)
        })
        .await
        .unwrap();
        let server_addr = gateway.link.as_ref().unwrap().local_addr();
        let meter_spec = meter_spec.unwrap_or(LinkSpec::Tunnel { remote: server_addr });
        let meter_link = link::spawn(meter_spec, IndividualAddress::from_raw(0x1164)).await.unwrap();
        let mut meter_events = meter_link.from_bus;
        let connected = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(ev) = meter_events.recv().await {
                if matches!(ev, LinkEvent::State(link::LinkState::Connected)) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        assert!(connected, "meter link did not connect");
        tokio::spawn(async move { while meter_events.recv().await.is_some() {} });
        let period = Duration::from_millis(
            std::env::var("REACTION_METER_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000),
        );
        let mut meter = Meter { to_bus: meter_link.to_bus.clone(), sims: sims.clone(), period, next: Instant::now(), lost: 0 };
        // Start-up: house 18 A, the meter sending, until every charging point charges above
        // its minimum with setpoints that have settled (the simulators start at their own
        // defaults, so "above the minimum" alone would be true before the gateway wrote).
        let started = Instant::now();
        assert!(meter.settle(HOUSE, Duration::from_secs(60)).await, "setpoints did not settle: {:?}", setpoints(&sims));
        println!("start-up to all five charging points settled above their minimum: {:.2} s", started.elapsed().as_secs_f64());
        let run = Instant::now();
        let mut times = Vec::with_capacity(steps);
        let mut missed = 0;
        let mut recoveries = Vec::with_capacity(steps);
        let mut unsettled = 0;
        let mut starts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        for step in 1..=steps {
            // Back to the settled state first (not timed), the meter sending at its period.
            // After the last step the load is gone (the reading after the step is the house
            // alone); the DLM raises only on a reading taken once the vehicles had time to
            // follow its last change, and the setpoints must then stay unchanged for SETTLE.
            let r0 = Instant::now();
            let settled = meter.settle(HOUSE, RAMP_LIMIT).await;
            let ramp = r0.elapsed();
            if settled {
                recoveries.push(ramp);
            } else {
                unsettled += 1;
            }
            let before = setpoints(&sims);
            *starts.entry(amps(&before)).or_default() += 1;
            // The step, at the meter's next reading (a load that switched on since the last).
            let requests_before = requests(&sims);
            let t0 = Instant::now();
            meter.send(HOUSE + STEP).await;
            let seen = all_lower(&sims, before.clone(), REACTION_LIMIT).await;
            let reacted = seen.is_some();
            let dt = seen.map_or(REACTION_LIMIT, |(t, _)| t.saturating_duration_since(t0));
            // Five of them are the setpoint writes; more are polls (or read-backs) that the
            // writes shared the connections with.
            let served = seen.map_or(0, |(_, r)| r.saturating_sub(requests_before));
            eprintln!(
                "step {step}: ramp back {:.2} s{}, from {}: {}",
                ramp.as_secs_f64(),
                if settled { "" } else { " (not settled)" },
                amps(&before),
                if reacted { format!("all five lower after {:.2} ms ({served} Modbus requests meanwhile)", dt.as_secs_f64() * 1e3) } else { format!("MISSED, now {}", amps(&setpoints(&sims))) },
            );
            if reacted {
                times.push(dt);
            } else {
                missed += 1;
            }
            // The next reading comes a period after the step, or at once if it is overdue.
            meter.next = meter.next.max(Instant::now());
        }
        let total = run.elapsed();
        recoveries.sort();
        println!(
            "{steps} steps in {:.0} s, meter every {} ms, load average {}",
            total.as_secs_f64(),
            period.as_millis(),
            loadavg()
        );
        if let Some(max) = recoveries.last() {
            println!(
                "ramp back to settled setpoints after the load is gone (not timed above; includes {:.1} s unchanged): median {:.2} s, p99 {:.2} s, max {:.2} s; not settled within {} s: {unsettled}",
                SETTLE.as_secs_f64(),
                quantile(&recoveries, 0.5).as_secs_f64(),
                quantile(&recoveries, 0.99).as_secs_f64(),
                max.as_secs_f64(),
                RAMP_LIMIT.as_secs()
            );
        }
        println!("setpoints when the step came (steps): {starts:?}");
        if meter.lost > 0 {
            println!("meter telegrams not taken by the link within 1 s: {}", meter.lost);
        }
        times.sort();
        println!(
            "meter telegram ({}) -> all five setpoints written over Modbus TCP, {} steps:",
            if tp { "KNX/TP, TP-UART links on the emulated line" } else { "UDP, KNXnet/IP tunnel" },
            times.len()
        );
        if let Some(max) = times.last() {
            println!(
                "  median {:.2} ms   p99 {:.2} ms   max {:.2} ms   missed {missed}",
                quantile(&times, 0.5).as_secs_f64() * 1e3,
                quantile(&times, 0.99).as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3
            );
        } else {
            println!("  none timed; missed {missed}");
        }
        if tokio::time::timeout(Duration::from_secs(10), gateway.shutdown()).await.is_err() {
            println!("gateway shutdown took longer than 10 s");
        }
        drop(servers);
        drop(line);
    });
}
