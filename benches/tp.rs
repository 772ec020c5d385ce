//! Telegrams per second the TP-UART link sustains on the emulated TP line
//! (`cargo bench --bench tp`; a bench binary that prints numbers).
//!
//! Two TP-UART links (`knx::link::tpuart` over the serial driver) on two ports of
//! `knx_echarge::tpline`: one sends `TP_TELEGRAMS` (default 2,000) group writes as fast as its
//! queue takes them, the other receives them. Each telegram is sent, delivered byte by byte,
//! acknowledged by the receiver's U_AckInformation and confirmed to the sender (`8B`) before
//! the next one goes: the numbers are the round trip of the host protocol on
//! pseudo-terminals. The emulated line does not slow frames to TP1's 9600 bit/s, where a
//! short group telegram with its acknowledgement takes about 20 ms (about 50 telegrams/s);
//! the gateway's own bus-load limiter stays at 20/s on top of that. `TP1_TIMING=1` makes the
//! emulated line hold each frame for its TP1 time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::time::{Duration, Instant};

use knx_echarge::knx::link::{self, LinkEvent, LinkSpec, LinkState};
use knx_echarge::knx::wire::apdu::{Apdu, Payload, Tpdu};
use knx_echarge::knx::wire::cemi::{Destination, LData, LDataService};
use knx_echarge::knx::{GroupAddress, IndividualAddress};
use knx_echarge::tpline::{Ack, LineOptions, TpLine};

async fn connected(events: &mut tokio::sync::mpsc::Receiver<LinkEvent>) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = events.recv().await {
            if ev == LinkEvent::State(LinkState::Connected) {
                return;
            }
        }
    })
    .await
    .expect("link connected");
}

fn main() {
    let n: usize = std::env::var("TP_TELEGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tp1_timing = std::env::var("TP1_TIMING").is_ok_and(|v| v == "1");
        let line = TpLine::start(2, LineOptions { tp1_timing, ..LineOptions::default() }).unwrap();
        let mut monitor = line.monitor();
        let spec = |i: usize| LinkSpec::Tpuart {
            path: line.paths()[i].clone(),
        };
        let mut sender = link::spawn(spec(0), IndividualAddress::from_raw(0x1164)).await.unwrap();
        let mut receiver = link::spawn(spec(1), IndividualAddress::from_raw(0x110A)).await.unwrap();
        connected(&mut sender.from_bus).await;
        connected(&mut receiver.from_bus).await;
        let mut sender_events = std::mem::replace(&mut sender.from_bus, tokio::sync::mpsc::channel(1).1);
        tokio::spawn(async move { while sender_events.recv().await.is_some() {} });
        let ga = GroupAddress::three_level(0, 0, 10).unwrap();
        let to_bus = sender.to_bus.clone();
        let t0 = Instant::now();
        let send = tokio::spawn(async move {
            for i in 0..n {
                let value = u32::try_from(i).unwrap().to_be_bytes().to_vec();
                let frame = LData::new(
                    LDataService::Req,
                    IndividualAddress::from_raw(0),
                    Destination::Group(ga),
                    Tpdu::Data(Apdu::GroupValueWrite(Payload::Long(value))),
                );
                to_bus.send(frame).await.unwrap();
            }
        });
        let mut got = 0;
        let mut latencies = Vec::new();
        let mut last = t0;
        while got < n {
            match tokio::time::timeout(Duration::from_secs(10), receiver.from_bus.recv()).await {
                Ok(Some(LinkEvent::Frame(_))) => {
                    got += 1;
                    let now = Instant::now();
                    latencies.push(now - last);
                    last = now;
                }
                Ok(Some(LinkEvent::State(s))) => println!("receiver state {s:?}"),
                Ok(Some(LinkEvent::PropertyWrite { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let elapsed = t0.elapsed();
        send.await.unwrap();
        let mut acked = 0;
        let mut other = 0;
        while let Ok(m) = monitor.try_recv() {
            if m.ack == Ack::Ack {
                acked += 1;
            } else {
                other += 1;
            }
        }
        latencies.sort();
        let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        println!(
            "TP-UART link to TP-UART link on the emulated line ({}): {got}/{n} telegrams in {:.2} s = {:.0} telegrams/s",
            if tp1_timing { "TP1 timing, 9600 bit/s" } else { "as fast as the hosts answer" },
            elapsed.as_secs_f64(),
            got as f64 / elapsed.as_secs_f64()
        );
        println!(
            "  gap between telegrams at the receiver: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pick(0.5).as_secs_f64() * 1e3,
            pick(0.99).as_secs_f64() * 1e3,
            latencies.last().unwrap().as_secs_f64() * 1e3
        );
        println!("  transmissions on the line: {acked} acknowledged, {other} not (repetitions)");
        drop(line);
    });
}
