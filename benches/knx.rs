//! KNX hot-path benchmark (a bench binary that prints numbers; `cargo bench --bench knx`).
//!
//! 1. Decode + dispatch: raw cEMI bytes of a GroupValue_Write → `Cemi::parse` → object engine
//!    (`Engine::on_frame`: address lookup, flag check, DPT decode into a typed value). Reports
//!    nanoseconds per telegram over many iterations, for a 1-bit and a 4-byte float telegram.
//! 2. Bus limiter under a flood: 1,000 value changes per second spread over the measured
//!    current objects of the five-charger example, plus one fault-object change per second,
//!    for 60 simulated seconds at the default policy (20 telegrams/s). Time is injected, so the
//!    result is exact and repeatable: telegrams actually sent per second, queue length, values
//!    coalesced, and the latency of fault telegrams from change to send.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use knx_echarge::config::file;
use knx_echarge::knx::wire::cemi::{Cemi, Destination};
use knx_echarge::objects::engine::{Engine, SendPolicy};
use knx_echarge::objects::{Priority, Value};
use knx_echarge::units::{Current, GoNumber};

const FIVE: &str = include_str!("../examples/five-chargers.toml");

fn engine(policy: SendPolicy) -> Engine {
    let config = file::parse(FIVE, "five-chargers").expect("example parses");
    Engine::new(config.object_table(), policy, config.knx.individual_address).expect("engine")
}

fn decode_dispatch(label: &str, bytes: &[u8]) {
    let mut e = engine(SendPolicy::default());
    let now = Instant::now();
    let iterations = 1_000_000u32;
    for _ in 0..10_000 {
        if let Ok(Cemi::LData(frame)) = Cemi::parse(black_box(bytes)) {
            black_box(e.on_frame(&frame, now));
        }
    }
    let start = Instant::now();
    let mut dispatched = 0usize;
    for _ in 0..iterations {
        if let Ok(Cemi::LData(frame)) = Cemi::parse(black_box(bytes)) {
            dispatched += black_box(e.on_frame(&frame, now)).len();
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(
        dispatched, iterations as usize,
        "every telegram reached its object"
    );
    println!(
        "decode+dispatch {label:<28} {:>6.0} ns/telegram  ({iterations} telegrams in {:.2} s)",
        elapsed.as_nanos() as f64 / f64::from(iterations),
        elapsed.as_secs_f64()
    );
}

fn flood() {
    let mut e = engine(SendPolicy::default());
    let measured: Vec<GoNumber> = e
        .table()
        .objects()
        .iter()
        .filter(|o| o.priority == Priority::Measurement && o.flags.transmit && o.dpt == "14.019")
        .map(|o| o.number)
        .collect();
    let fault_ga = "0/0/8".parse().expect("ga");
    let t0 = Instant::now();
    let seconds = 60u32;
    let changes_per_second = 1_000u32;
    let step = Duration::from_secs(1) / changes_per_second;
    let mut sent = 0u64;
    let mut sent_per_second = Vec::new();
    let mut fault_latency = Vec::new();
    let mut fault_set_at: Option<Instant> = None;
    let mut max_queue = 0usize;
    let mut fault_state = false;
    for tick in 0..(seconds * changes_per_second) {
        let now = t0 + step * tick;
        // One measured current changes by 1 A (above the 0.5 A minimum change).
        let object = measured[tick as usize % measured.len()];
        let amps = 6 + (tick / measured.len() as u32) % 10;
        e.set(object, Value::Current(Current::from_amps(amps as i32)), now);
        if tick % changes_per_second == 500 {
            fault_state = !fault_state;
            e.set(GoNumber(8), Value::Bool(fault_state), now);
            fault_set_at = Some(now);
        }
        max_queue = max_queue.max(e.queued());
        while let Some(frame) = e.poll_transmit(now) {
            sent += 1;
            if frame.destination == Destination::Group(fault_ga)
                && let Some(at) = fault_set_at.take()
            {
                fault_latency.push(now - at);
            }
        }
        if (tick + 1) % changes_per_second == 0 {
            sent_per_second.push(sent);
            sent = 0;
        }
    }
    let steady = &sent_per_second[1..];
    let avg = steady.iter().sum::<u64>() as f64 / steady.len() as f64;
    let max_latency = fault_latency.iter().max().copied().unwrap_or_default();
    let stats = e.stats();
    println!(
        "flood: 1000 changes/s over {} measured objects + 1 fault change/s, {seconds} s simulated",
        measured.len()
    );
    println!(
        "  telegrams sent per second: {} in the first second (burst), then avg {avg:.1}, max {}",
        sent_per_second[0],
        steady.iter().max().copied().unwrap_or_default()
    );
    println!(
        "  values coalesced in the queue: {} of {}; queue never longer than {max_queue}",
        stats.coalesced,
        seconds * changes_per_second
    );
    println!(
        "  fault telegrams: {} of {seconds} sent, latency from change to send max {:.1} ms",
        fault_latency.len(),
        max_latency.as_secs_f64() * 1000.0
    );
}

fn main() {
    println!(
        "knx-echarge KNX benchmark ({} build)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    // L_Data.ind 1.1.99 → 2/0/5, GroupValue_Write short 1 (interruption of charging point 2).
    decode_dispatch(
        "1-bit write (object 105)",
        &[
            0x29, 0x00, 0xBC, 0xE0, 0x11, 0x63, 0x10, 0x05, 0x01, 0x00, 0x81,
        ],
    );
    // L_Data.ind 1.1.99 → 0/0/10, GroupValue_Write 4-byte float 21.5 A (smart meter L1).
    let mut four = vec![
        0x29, 0x00, 0xBC, 0xE0, 0x11, 0x63, 0x00, 0x0A, 0x05, 0x00, 0x80,
    ];
    four.extend(21.5f32.to_be_bytes());
    decode_dispatch("14.019 write (object 10)", &four);
    flood();
}
