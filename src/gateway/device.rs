//! The device around the gateway: the front panel, the RS485 mode and termination, the OS
//! network settings and the systemd notifications.
//!
//! Owns the glue between the board ([`crate::hw`]) and the running gateway: LED states from
//! the shell's snapshot go to the panel, the programming button's requests become core events
//! or a factory-reset request; the board's problems are logged once, clearly. systemd: `READY=1`
//! when the gateway serves ([`notify_ready`]), `STATUS=` lines, and `WATCHDOG=1` every half
//! watchdog interval only while every watched task is alive ([`spawn_watchdog`],
//! [`crate::hw::watchdog`]).

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::core::Event;
use crate::gateway::shell::Snapshot;
use crate::hw::backend::{self, Hardware};
use crate::hw::network::{self, IpMode, NetSettings};
use crate::hw::panel::{Panel, Request};
use crate::hw::watchdog::{Health, Registry, RuntimeProbe, health};
use crate::hw::{Board, rs485};

/// The running device side.
#[derive(Debug)]
pub struct Device {
    /// Set when the button's factory-reset sequence was completed.
    pub factory_reset: watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Device {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Opens the board: logs what is missing or refuses, sets the RS485 mode (when `rs485_used`)
/// and the termination switch from the configuration, starts the front panel.
///
/// With `expected` (the board file was named, as on the device) every part that is missing or
/// refuses is also the device fault ContactSupport (130, "generate the log files and contact
/// Support"), one message naming them all; the gateway carries on without them. Without it
/// (the built-in board file on a PC, which has none of the board's devices) they are only
/// logged.
pub fn start(
    board: &Board,
    expected: bool,
    config: &Config,
    rs485_used: bool,
    snapshot: watch::Receiver<Snapshot>,
    events: mpsc::Sender<Event>,
) -> Device {
    let mut hw: Hardware = backend::open(board);
    let mut problems: Vec<String> = hw.problems.iter().map(ToString::to_string).collect();
    if rs485_used {
        match rs485::configure(&board.serial.rs485) {
            Ok(()) if board.serial.rs485.kernel_rs485 => {
                info!(device = %board.serial.rs485.device.display(), "RS485 mode set (TIOCSRS485)");
            }
            Ok(()) => {}
            Err(e) => problems.push(format!(
                "{e}; the charging points on RS485 may not answer (direction switching)"
            )),
        }
    }
    let termination = config.rs485.termination;
    match hw.set_termination(termination) {
        Err(e) => problems.push(e.to_string()),
        Ok(()) if hw.termination.is_some() => info!(on = termination, "RS485 120 Ω termination"),
        Ok(()) => {}
    }
    for problem in &problems {
        if expected {
            error!("board: {problem}; the gateway carries on without it");
        } else {
            warn!(
                "board: {problem}; the gateway carries on without it (built-in board file; with --board this is a fault)"
            );
        }
    }
    if expected && !problems.is_empty() {
        let message = format!("board: {}", problems.join("; "));
        let events = events.clone();
        tokio::spawn(async move {
            let _ = events.send(Event::BoardFault(message)).await;
        });
    }
    let mut panel = Panel::spawn(hw);
    let leds = panel.leds.clone();
    let mut snap = snapshot;
    let follow = tokio::spawn(async move {
        loop {
            let now = snap.borrow_and_update().leds;
            leds.send_if_modified(|l| {
                let changed = *l != now;
                *l = now;
                changed
            });
            if snap.changed().await.is_err() {
                return;
            }
        }
    });
    let (reset_tx, reset_rx) = watch::channel(false);
    let requests = tokio::spawn(async move {
        while let Some(request) = panel.requests.recv().await {
            match request {
                Request::ToggleProgramming => {
                    info!("programming button pressed");
                    if events.send(Event::ProgrammingButton).await.is_err() {
                        return;
                    }
                }
                Request::FactoryReset => {
                    let _ = reset_tx.send(true);
                }
            }
        }
    });
    Device {
        factory_reset: reset_rx,
        tasks: vec![follow, requests],
    }
}

/// The OS network settings for the configuration's IP settings and the website's DNS/NTP.
pub fn net_settings(
    config: &Config,
    interface: &str,
    dns: Option<Ipv4Addr>,
    ntp_enabled: bool,
    ntp_servers: Vec<String>,
) -> NetSettings {
    let ip = &config.ip;
    NetSettings {
        interface: interface.to_owned(),
        mode: if ip.dhcp {
            IpMode::Dhcp
        } else {
            IpMode::Static {
                address: ip.address,
                mask: ip.subnet_mask,
                gateway: ip.gateway,
            }
        },
        dns: dns.or((!ip.dns.is_unspecified()).then_some(ip.dns)),
        ntp_enabled,
        ntp_servers,
    }
}

/// Writes the OS network files under `root` and, when `root` is `/` and they changed, has the
/// services reload them. Returns how the address is obtained ("dhcp" / "static").
pub fn apply_network(root: &Path, settings: &NetSettings) -> &'static str {
    let plan = network::plan(settings);
    if let Some(problem) = &plan.problem {
        error!("configuration fault: {problem}");
    }
    match network::write_files(root, &plan) {
        Ok(true) => {
            info!(root = %root.display(), method = plan.method, "network settings written");
            if root == Path::new("/") {
                for cmd in network::RELOAD {
                    if let Some((program, args)) = cmd.split_first() {
                        match std::process::Command::new(program).args(args).status() {
                            Ok(s) if s.success() => {}
                            Ok(s) => warn!(command = ?cmd, "reload failed: {s}"),
                            Err(e) => warn!(command = ?cmd, "reload failed: {e}"),
                        }
                    }
                }
            }
        }
        Ok(false) => {}
        Err(e) => error!(root = %root.display(), "cannot write the network settings: {e}"),
    }
    plan.method
}

/// Tells systemd the gateway serves (no-op without `NOTIFY_SOCKET`).
pub fn notify_ready(status: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A `STATUS=` line for `systemctl status`.
pub fn notify_status(status: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Status(status)]);
}

/// Tells systemd the gateway is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// The systemd watchdog: a thread of its own and a probe task on the runtime; stopped when
/// dropped.
#[derive(Debug)]
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    probe_task: JoinHandle<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.probe_task.abort();
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Sends `WATCHDOG=1` every half watchdog interval (`WATCHDOG_USEC`) while every watched task
/// is alive and the runtime still runs tasks; none when systemd asked for no watchdog.
///
/// The judge runs on its own thread, not on the tokio runtime: a task that blocks inside a
/// poll can stall the whole two-worker runtime (the other worker parked without the timer
/// driver), and a judge on that runtime would then fall silent without saying why. From its
/// thread it still sends the `STATUS=` line naming the hung task.
pub fn spawn_watchdog() -> Option<Watchdog> {
    // As libsystemd's sd_watchdog_enabled(): WATCHDOG_USEC names the interval; WATCHDOG_PID,
    // when set, must be this process (systemd sets both; a supervisor may set only the first).
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    let for_us = std::env::var("WATCHDOG_PID")
        .ok()
        .is_none_or(|pid| pid.trim().parse::<u32>().ok() == Some(std::process::id()));
    if !for_us || usec == 0 {
        return None;
    }
    let every = Duration::from_micros(usec / 2).max(Duration::from_millis(100));
    info!(interval_ms = every.as_millis(), "systemd watchdog on");
    let probe = Arc::new(RuntimeProbe::new(Instant::now()));
    let beats = probe.clone();
    let probe_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            beats.beat(Instant::now());
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::Builder::new()
        .name("systemd-watchdog".to_owned())
        .spawn(move || {
            let registry = Registry::global();
            // What was reported last: a new STATUS line only when it changes (a stalled
            // runtime may be seen a moment before the task that stalled it).
            let mut reported: Option<Vec<String>> = None;
            let mut next = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                match health(registry, &probe, Instant::now()) {
                    Health::Alive => {
                        reported = None;
                        let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
                    }
                    Health::Failed(tasks) => {
                        if reported.as_ref() != Some(&tasks) {
                            let text = format!("task not alive: {}", tasks.join(", "));
                            error!(
                                "{text}: no more watchdog pings, systemd will restart the gateway"
                            );
                            let _ = sd_notify::notify(false, &[NotifyState::Status(&text)]);
                            reported = Some(tasks);
                        }
                    }
                }
                next += every;
                let now = Instant::now();
                if next <= now {
                    next = now + every;
                }
                std::thread::park_timeout(next.saturating_duration_since(now));
            }
        });
    match thread {
        Ok(t) => Some(Watchdog {
            stop,
            probe_task,
            thread: Some(t),
        }),
        Err(e) => {
            error!("cannot start the systemd watchdog thread: {e}; no watchdog pings");
            probe_task.abort();
            None
        }
    }
}
