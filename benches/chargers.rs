//! Charger poll-cycle benchmark (a bench binary that prints numbers; `cargo bench --bench
//! chargers`).
//!
//! Five charging points against their simulators, all five polled concurrently per cycle, as
//! the charger tasks do:
//! 1. five over Modbus TCP on loopback (KEBA P30, Bender CC612, Alfen Eve, Webasto Next,
//!    Vestel EVC04: KEBA and Vestel read register by register, the others in blocks);
//! 2. three over TCP plus two over Modbus RTU on one pty line at 19200 Bd (Heidelberg
//!    EC with its 100 ms request spacing, ABB Terra AC).
//!
//! The gateway side runs on its own single-threaded runtime on the main thread; the simulators
//! run on another runtime. CPU time per cycle is the gateway thread's own, from
//! `/proc/thread-self/schedstat` (nanoseconds on CPU), so the simulators are not counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    missing_docs
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use knx_echarge::catalog;
use knx_echarge::catalog::Rs485Framing;
use knx_echarge::chargers::ChargePoint;
use knx_echarge::chargers::drivers::{self, AnyDriver, DriverSettings, Transport};
use knx_echarge::config::{Parity, Rs485Config};
use knx_echarge::modbus::TcpModbus;
use knx_echarge::modbus::line::Line;
use knx_echarge::sim::pty::PtyPair;
use knx_echarge::sim::{self, SimHandle, SimModel, Vehicle};

/// CPU time of the calling thread in nanoseconds.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

struct Sims {
    tcp: Vec<(SimModel, SocketAddr)>,
    rtu: Option<PtyPair>,
    _runtime: tokio::runtime::Runtime,
}

fn start_sims(tcp_models: &[SimModel], with_rtu: bool) -> Sims {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tcp, rtu) = runtime.block_on(async {
        let mut tcp = Vec::new();
        for model in tcp_models {
            let h = SimHandle::new(*model);
            h.plug_in(Vehicle::three_phase());
            let server = sim::serve_tcp(h, "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            tcp.push((*model, server.addr.unwrap()));
            std::mem::forget(server); // lives as long as the runtime
        }
        let rtu = if with_rtu {
            PtyPair::open().ok().inspect(|pty| {
                let h = SimHandle::new(SimModel::HeidelbergEc);
                h.plug_in(Vehicle::three_phase());
                let a = SimHandle::new(SimModel::AbbTerraAc);
                a.plug_in(Vehicle::single_phase());
                let server = sim::serve_rtu(&pty.b, 19200, vec![(1, h), (2, a)]).unwrap();
                std::mem::forget(server);
            })
        } else {
            None
        };
        (tcp, rtu)
    });
    Sims {
        tcp,
        rtu,
        _runtime: runtime,
    }
}

fn tcp_driver(model: SimModel, addr: SocketAddr) -> AnyDriver {
    let unit = catalog::charger_model(model.id()).unwrap().unit_id;
    let t = Transport::Tcp(TcpModbus::new(addr, unit, Duration::from_secs(1)));
    drivers::build(model.id(), t, unit, DriverSettings::default()).unwrap()
}

async fn cycle(d: &mut [AnyDriver; 5]) {
    let [a, b, c, e, f] = d;
    let (ra, rb, rc, re, rf) = tokio::join!(a.poll(), b.poll(), c.poll(), e.poll(), f.poll());
    for r in [ra, rb, rc, re, rf] {
        assert!(r.unwrap().charging);
    }
}

fn main() {
    let five = [
        SimModel::KebaP30,
        SimModel::BenderCc,
        SimModel::AlfenEve,
        SimModel::WebastoNext,
        SimModel::VestelEvc04,
    ];
    let sims = start_sims(&five, true);
    // The gateway side: one single-threaded runtime on this thread (it also runs the RS485
    // line task).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tcp: Vec<AnyDriver> = sims.tcp.iter().map(|(m, a)| tcp_driver(*m, *a)).collect();
    let tcp: [AnyDriver; 5] = tcp.try_into().map_err(|_| "five drivers").unwrap();
    bench(&rt, "5 x Modbus TCP (loopback)", tcp, 300);

    let Some(pty) = &sims.rtu else {
        println!("3 x TCP + 2 x RTU: skipped (no pty pair)");
        return;
    };
    let config = Rs485Config {
        baud: 19200,
        data_bits: 8,
        parity: Parity::Even,
        stop_bits: 1,
        framing: Rs485Framing::Rtu,
        termination: false,
    };
    let mixed = rt.block_on(async {
        let line = Line::open(&pty.a, &config, Duration::from_secs(1)).unwrap();
        let h = drivers::build(
            "heidelberg-ec",
            Transport::Line(
                line.device(1)
                    .with_spacing(drivers::line_spacing("heidelberg-ec")),
            ),
            1,
            DriverSettings::default(),
        )
        .unwrap();
        let a = drivers::build(
            "abb-terra-ac",
            Transport::Line(line.device(2)),
            2,
            DriverSettings::default(),
        )
        .unwrap();
        let t = &sims.tcp;
        [
            tcp_driver(t[0].0, t[0].1),
            tcp_driver(t[1].0, t[1].1),
            tcp_driver(t[2].0, t[2].1),
            h,
            a,
        ]
    });
    bench(&rt, "3 x TCP + 2 x RTU (pty, 19200 Bd)", mixed, 30);
}

/// Identifies, warms up, then times `cycles` concurrent poll cycles on `rt`.
fn bench(rt: &tokio::runtime::Runtime, label: &str, mut drivers: [AnyDriver; 5], cycles: u32) {
    rt.block_on(async {
        for d in &mut drivers {
            d.identify().await.unwrap();
        }
        // Warm-up: connections, slow data.
        for _ in 0..3 {
            cycle(&mut drivers).await;
        }
        let mut times = Vec::with_capacity(cycles as usize);
        let cpu0 = thread_cpu_ns();
        let start = Instant::now();
        for _ in 0..cycles {
            let t = Instant::now();
            cycle(&mut drivers).await;
            times.push(t.elapsed());
        }
        let wall = start.elapsed();
        let cpu = thread_cpu_ns().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
        times.sort_unstable();
        let pct = |p: usize| times[(times.len() - 1) * p / 100];
        println!(
            "{label:<36} cycle mean {:>7.2} ms  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            wall.as_secs_f64() * 1000.0 / f64::from(cycles),
            pct(50).as_secs_f64() * 1000.0,
            pct(99).as_secs_f64() * 1000.0,
            times.last().unwrap().as_secs_f64() * 1000.0,
        );
        match cpu {
            Some(ns) => println!(
                "{:<36} CPU {:>7.1} µs per cycle (gateway thread only, {cycles} cycles)",
                "",
                ns as f64 / 1000.0 / f64::from(cycles)
            ),
            None => println!(
                "{:<36} CPU time not available (/proc/thread-self/schedstat)",
                ""
            ),
        }
    });
}
