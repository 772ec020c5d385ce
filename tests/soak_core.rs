//! Soak at injected time (issue 17, point 9): 24 hours of the gateway's shell around the core
//! (DLM, group objects, faults) in a few seconds of test time, with `tokio::time::pause`.
//!
//! Five charging points (the five-charger example) are played by small vehicle models that
//! answer every 2 s the way the charger tasks report (`ChargerPolled`), follow the setpoints
//! the core commands and report them done; a smart meter sends the three phase currents and
//! "in operation" every 10 s (base load plus what the vehicles draw). Periodic faults: every
//! 30 minutes one charging point is unreachable for 2 minutes, every 3 hours the smart meter
//! falls silent for 5 minutes, every hour programming mode is switched on and off, and the
//! vehicles come and go on a 4-hour cycle.
//!
//! Checked every simulated hour: the shell's event queue, the bus queue and the command
//! queues do not fill, the snapshot's size (objects, faults, limits) is flat, the test
//! process's memory is flat, every charging point's energy counter object follows its
//! vehicle model (no lost state), and no fault outlives its cause.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use knx_echarge::chargers::{ChargerCommand, ChargerStatus, CommandOutcome, CpState, DriverError};
use knx_echarge::config::file;
use knx_echarge::core::{Event, LinkState};
use knx_echarge::gateway::shell::{self, Bus};
use knx_echarge::knx::link::LinkEvent;
use knx_echarge::objects::Value;
use knx_echarge::objects::number::{cp as offset, device};
use knx_echarge::units::{ChargePointId, Current, Energy, GoNumber, PerPhase, Power};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};

const POLL: Duration = Duration::from_secs(2);
const METER: Duration = Duration::from_secs(10);
const BASE_LOAD_A: f64 = 5.0;

fn amps(a: f64) -> Current {
    Current::from_amps_f64(a).unwrap()
}

/// One charging point and the vehicle at it.
#[derive(Debug, Default, Clone)]
struct Bay {
    connected: bool,
    setpoint_a: f64,
    drawing_a: f64,
    energy_wh: f64,
    unreachable: bool,
}

struct World {
    bays: Mutex<Vec<Bay>>,
    meter_silent: Mutex<bool>,
    commands: Mutex<u64>,
}

/// The vehicle model's status as a charger task reports it.
fn status(bay: &Bay) -> ChargerStatus {
    let i = amps(bay.drawing_a);
    ChargerStatus {
        state: Some(if !bay.connected {
            CpState::Available
        } else if bay.drawing_a > 0.0 {
            CpState::Charging
        } else {
            CpState::Connected
        }),
        connected: bay.connected,
        charging: bay.drawing_a > 0.0,
        setpoint: Some(amps(bay.setpoint_a)),
        currents: Some(PerPhase([i, i, i])),
        power: Some(Power::from_watts_f64(3.0 * 230.0 * bay.drawing_a).unwrap()),
        energy_total: Some(Energy::from_watt_hours_f64(bay.energy_wh.floor()).unwrap()),
        ..ChargerStatus::default()
    }
}

/// Plays one charging point: polls every [`POLL`], commands as they come.
async fn bay(
    cp: ChargePointId,
    index: usize,
    world: Arc<World>,
    mut commands: mpsc::Receiver<ChargerCommand>,
    events: mpsc::Sender<Event>,
) {
    let mut next = Instant::now() + POLL;
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                if let ChargerCommand::SetCurrent(c) = command {
                    world.bays.lock().unwrap()[index].setpoint_a = c.as_amps_f64();
                }
                *world.commands.lock().unwrap() += 1;
                let done = Event::ChargerCommandDone { cp, command, outcome: CommandOutcome::Done };
                if events.send(done).await.is_err() {
                    return;
                }
            }
            () = sleep_until(next) => {
                next += POLL;
                let event = {
                    let mut bays = world.bays.lock().unwrap();
                    let b = &mut bays[index];
                    // The vehicle draws what it may (up to 16 A), the meter counts it.
                    b.drawing_a = if b.connected { b.setpoint_a.min(16.0) } else { 0.0 };
                    b.energy_wh += 3.0 * 230.0 * b.drawing_a * POLL.as_secs_f64() / 3600.0;
                    if b.unreachable {
                        Event::ChargerFailed {
                            cp,
                            error: DriverError::NotReachable("soak: outage".into()),
                        }
                    } else {
                        Event::ChargerPolled { cp, status: status(b) }
                    }
                };
                if events.send(event).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The smart meter: phase currents and "in operation" every [`METER`] unless silent.
async fn meter(world: Arc<World>, events: mpsc::Sender<Event>) {
    loop {
        sleep(METER).await;
        if *world.meter_silent.lock().unwrap() {
            continue;
        }
        let load: f64 = BASE_LOAD_A
            + world
                .bays
                .lock()
                .unwrap()
                .iter()
                .map(|b| b.drawing_a)
                .sum::<f64>();
        for object in [
            device::METER_VALUE_1,
            device::METER_VALUE_2,
            device::METER_VALUE_3,
        ] {
            let value = Value::Current(amps(load));
            if events
                .send(Event::ObjectWritten { object, value })
                .await
                .is_err()
            {
                return;
            }
        }
        let alive = Event::ObjectWritten {
            object: device::IN_OPERATION,
            value: Value::Bool(true),
        };
        if events.send(alive).await.is_err() {
            return;
        }
    }
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[derive(Debug)]
struct Hourly {
    hour: u32,
    rss_kb: u64,
    snapshot_bytes: usize,
    objects: usize,
    faults: usize,
    events_queued: usize,
    bus_queued: usize,
    commands_queued: usize,
    telegrams: u64,
    commands: u64,
}

#[tokio::test(start_paused = true)]
async fn twenty_four_hours_of_core_time_stay_flat_and_lose_nothing() {
    // The example, with every charging point on three phases in grid order, as the vehicle
    // models and the meter below assume.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/five-chargers.toml"
    ))
    .unwrap()
    .lines()
    .filter(|l| !l.starts_with("phase_rotation") && !l.starts_with("phases ="))
    .collect::<Vec<_>>()
    .join("\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), text).unwrap();
    let config = file::load(&dir.path().join("gateway.toml")).unwrap();
    let (to_bus, mut bus_rx) = mpsc::channel(256);
    let (link_tx, from_bus) = mpsc::channel(256);
    let mut senders = BTreeMap::new();
    let mut receivers = Vec::new();
    for cp in ChargePointId::all() {
        let (tx, rx) = mpsc::channel(16);
        senders.insert(cp, tx.clone());
        receivers.push((cp, rx, tx));
    }
    let handle = shell::spawn_with_store(
        config,
        true,
        Some(Bus {
            to_bus,
            from_bus,
            control: None,
        }),
        senders,
        None,
    );
    link_tx
        .send(LinkEvent::State(LinkState::Connected))
        .await
        .unwrap();
    let telegrams = Arc::new(Mutex::new(0_u64));
    let counted = telegrams.clone();
    let bus_depth = Arc::new(Mutex::new(0_usize));
    let depth = bus_depth.clone();
    let drain = tokio::spawn(async move {
        while bus_rx.recv().await.is_some() {
            *counted.lock().unwrap() += 1;
            let mut d = depth.lock().unwrap();
            *d = (*d).max(bus_rx.len());
        }
    });

    let world = Arc::new(World {
        bays: Mutex::new(vec![Bay::default(); 5]),
        meter_silent: Mutex::new(false),
        commands: Mutex::new(0),
    });
    let mut command_senders = Vec::new();
    let mut tasks = Vec::new();
    for (index, (cp, rx, tx)) in receivers.into_iter().enumerate() {
        command_senders.push(tx);
        tasks.push(tokio::spawn(bay(
            cp,
            index,
            world.clone(),
            rx,
            handle.events.clone(),
        )));
    }
    tasks.push(tokio::spawn(meter(world.clone(), handle.events.clone())));

    let start = Instant::now();
    let mut hours: Vec<Hourly> = Vec::new();
    let minute = Duration::from_secs(60);
    let mut max_events_queued = 0;
    let mut max_commands_queued = 0;
    for m in 1..=24 * 60_u32 {
        // The schedule, minute by minute.
        {
            let mut bays = world.bays.lock().unwrap();
            for (i, b) in bays.iter_mut().enumerate() {
                // Vehicles: bay i is occupied for 3 of every 4 hours, staggered.
                let phase = (m / 60 + u32::try_from(i).unwrap()) % 4;
                b.connected = phase != 3;
                // Outages: at minute 30·k bay k mod 5 is unreachable for 2 minutes.
                let slot = m / 30;
                b.unreachable = slot % 5 == u32::try_from(i).unwrap() && m % 30 < 2;
            }
        }
        *world.meter_silent.lock().unwrap() = m % 180 < 5 && m >= 180;
        if m % 60 == 15 {
            handle
                .events
                .send(Event::SetProgrammingMode(true))
                .await
                .unwrap();
        }
        if m % 60 == 16 {
            handle
                .events
                .send(Event::SetProgrammingMode(false))
                .await
                .unwrap();
        }
        sleep_until(start + minute * m).await;
        max_events_queued = max_events_queued.max(256 - handle.events.capacity());
        max_commands_queued = max_commands_queued.max(
            command_senders
                .iter()
                .map(|s| 16 - s.capacity())
                .max()
                .unwrap_or(0),
        );
        if m % 60 == 0 {
            let snap = handle.snapshot.borrow().clone();
            hours.push(Hourly {
                hour: m / 60,
                rss_kb: rss_kb(),
                snapshot_bytes: format!("{snap:?}").len(),
                objects: snap.objects.len(),
                faults: snap.faults.len(),
                events_queued: max_events_queued,
                bus_queued: *bus_depth.lock().unwrap(),
                commands_queued: max_commands_queued,
                telegrams: *telegrams.lock().unwrap(),
                commands: *world.commands.lock().unwrap(),
            });
            max_events_queued = 0;
            max_commands_queued = 0;
            *bus_depth.lock().unwrap() = 0;
            // No lost state: each energy counter object follows its vehicle (within one poll).
            let bays = world.bays.lock().unwrap().clone();
            for (cp, b) in ChargePointId::all().zip(&bays) {
                let object = GoNumber(cp.object_base() + offset::ENERGY_TOTAL);
                let Some(Value::Energy(e)) = snap.objects.get(&object) else {
                    continue;
                };
                let shown = e.as_watt_hours_f64();
                assert!(
                    (b.energy_wh - shown).abs()
                        <= 3.0 * 230.0 * 16.0 * 2.0 * POLL.as_secs_f64() / 3600.0 + 1.0,
                    "hour {}: charging point {} shows {shown} Wh, the vehicle has {}",
                    m / 60,
                    cp.number(),
                    b.energy_wh
                );
            }
        }
    }
    // Ten quiet minutes: every charging point answers, the meter talks.
    {
        let mut bays = world.bays.lock().unwrap();
        for b in bays.iter_mut() {
            b.unreachable = false;
        }
    }
    *world.meter_silent.lock().unwrap() = false;
    sleep(minute * 10).await;
    let end = handle.snapshot.borrow().clone();
    for t in tasks {
        t.abort();
    }
    handle.shutdown().await;
    drain.abort();

    eprintln!(
        "hour  RSS/kB  snapshot/B  objects faults  queued(events bus commands)  telegrams commands"
    );
    for h in &hours {
        eprintln!(
            "{:>4} {:>7} {:>11} {:>8} {:>6}  {:>6} {:>4} {:>4}  {:>15} {:>8}",
            h.hour,
            h.rss_kb,
            h.snapshot_bytes,
            h.objects,
            h.faults,
            h.events_queued,
            h.bus_queued,
            h.commands_queued,
            h.telegrams,
            h.commands
        );
    }
    eprintln!("faults at the end: {:?}", end.faults);

    assert_eq!(hours.len(), 24);
    // Polling (and the core behind it) kept up: no queue ever filled.
    for h in &hours {
        assert!(h.events_queued < 200, "events queued: {h:?}");
        assert!(h.bus_queued < 200, "bus queue: {h:?}");
        assert!(h.commands_queued < 16, "command queue: {h:?}");
    }
    // Work went on every hour: telegrams and commands keep coming.
    for w in hours.windows(2) {
        assert!(
            w[1].telegrams > w[0].telegrams,
            "no telegrams in hour {}",
            w[1].hour
        );
        assert!(
            w[1].commands > w[0].commands,
            "no commands in hour {}",
            w[1].hour
        );
    }
    // Flat: the snapshot and the process, from hour 4 (every object has had a value by then:
    // a session has ended, the meter has fallen silent once) to hour 24.
    let (h2, h24) = (&hours[3], &hours[23]);
    assert!(
        h24.snapshot_bytes <= h2.snapshot_bytes * 11 / 10,
        "snapshot grew: {} → {} bytes",
        h2.snapshot_bytes,
        h24.snapshot_bytes
    );
    assert!(h24.objects <= h2.objects, "objects grew");
    assert!(
        h24.rss_kb <= h2.rss_kb + 4 * 1024,
        "memory grew: {} → {} kB",
        h2.rss_kb,
        h24.rss_kb
    );
    // No fault outlives its cause: at the end (minute 1440: no outage, meter talking) only
    // what the configuration itself says may remain.
    let lingering: Vec<_> = end
        .faults
        .iter()
        .filter(|f| f.severity.0 < 120 && f.severity.0 != 40)
        .collect();
    assert!(
        lingering.is_empty(),
        "faults without a cause: {lingering:?}"
    );
}
