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
//! Each step sends a load step on the meter (house load up by 8 A per phase) and measures
//! the time from sending the three telegrams until **all five simulators have received a
//! lower setpoint over Modbus TCP**. Before each step the load is gone and the gateway has
//! ramped back to its settled setpoints (the meter sending every 500 ms meanwhile); that
//! ramp is not timed but reported. Reports median, p99 and max over the steps (default 1,000;
//! `REACTION_STEPS` overrides).
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

fn setpoints(sims: &[SimHandle]) -> Vec<Current> {
    sims.iter().map(|s| s.state().setpoint).collect()
}

async fn send_meter(meter: &tokio::sync::mpsc::Sender<LData>, sims: &[SimHandle], house: f32) {
    // What a real meter measures: the house plus what the vehicles draw, per phase.
    let mut phases = [house; 3];
    for s in sims {
        for (p, c) in phases.iter_mut().zip(s.state().currents()) {
            *p += c.as_amps_f64() as f32;
        }
    }
    for (ga, a) in ["0/0/10", "0/0/11", "0/0/12"].into_iter().zip(phases) {
        meter.send(meter_frame(ga, a)).await.unwrap();
    }
}

async fn wait_until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    false
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
        .unwrap_or(1000);
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
        let meter = meter_link.to_bus.clone();
        // Settle: house 20 A; wait until every charging point charges above its minimum.
        let started = Instant::now();
        // A real meter sends on; until the gateway has settled, every 500 ms.
        let mut up = false;
        for _ in 0..60 {
            send_meter(&meter, &sims, 20.0).await;
            if wait_until(Duration::from_millis(500), || at_share(&setpoints(&sims))).await {
                up = true;
                break;
            }
        }
        assert!(up, "setpoints did not come up: {:?}", setpoints(&sims));
        println!("start-up to all five charging points charging above minimum: {:.2} s", started.elapsed().as_secs_f64());
        let mut times = Vec::with_capacity(steps);
        let mut missed = 0;
        let mut recoveries = Vec::with_capacity(steps);
        let mut unsettled = 0;
        for _ in 0..steps {
            // Back to the settled state first (not timed). Like a real meter, send every
            // 500 ms meanwhile: right after a reduction the DLM counts the vehicles
            // conservatively until a later reading, and raises wait 2 s (break before make).
            let r0 = Instant::now();
            let mut settled = false;
            for _ in 0..40 {
                send_meter(&meter, &sims, 20.0).await;
                if wait_until(Duration::from_millis(500), || at_share(&setpoints(&sims))).await {
                    settled = true;
                    break;
                }
            }
            if settled {
                recoveries.push(r0.elapsed());
            } else {
                unsettled += 1;
            }
            let before = setpoints(&sims);
            let t0 = Instant::now();
            send_meter(&meter, &sims, 28.0).await;
            if wait_until(Duration::from_secs(2), || setpoints(&sims).iter().zip(&before).all(|(now, was)| now < was)).await {
                times.push(t0.elapsed());
            } else {
                missed += 1;
                if missed <= 3 {
                    println!("  missed: before {before:?}, after {:?}", setpoints(&sims));
                }
            }
        }
        recoveries.sort();
        if let (Some(mid), Some(max)) = (recoveries.get(recoveries.len() / 2), recoveries.last()) {
            println!(
                "ramp back to the settled setpoints after the load is gone (not timed above): median {:.2} s, max {:.2} s, not within 20 s: {unsettled}",
                mid.as_secs_f64(),
                max.as_secs_f64()
            );
        }
        times.sort();
        let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!(
            "meter telegram ({}) -> all five setpoints written over Modbus TCP, {} steps:",
            if tp { "KNX/TP, TP-UART links on the emulated line" } else { "UDP, KNXnet/IP tunnel" },
            times.len()
        );
        println!("  median {:.2} ms   p99 {:.2} ms   max {:.2} ms   missed {missed}", pick(0.5).as_secs_f64() * 1e3, pick(0.99).as_secs_f64() * 1e3, times.last().unwrap().as_secs_f64() * 1e3);
        gateway.shutdown().await;
        drop(servers);
        drop(line);
    });
}

/// Every charging point at the fair share of the settled state: 63 A fuse − 3 A reserve −
/// 20 A house = 40 A for five 3-phase vehicles, 8 A each (the simulators start at their own
/// defaults, so "above the minimum" would be true before the gateway wrote anything).
fn at_share(setpoints: &[Current]) -> bool {
    setpoints
        .iter()
        .all(|c| (Current::from_milliamps(7_500)..=Current::from_milliamps(8_500)).contains(c))
}
