//! The async shell around the sans-IO core.
//!
//! The shell owns the tasks and the clock. It feeds [`Event`]s into [`Core::handle`] with
//! `tokio::time::Instant::now()`, arms one timer from [`Core::poll_timeout`] and carries out
//! the returned [`Action`]s. It keeps the object value image and publishes a [`Snapshot`] on a
//! `watch` channel for the website. It keeps no decision logic of its own. Later work plugs
//! the KNX link, the charger tasks and the web server in here: they send events through
//! [`ShellHandle::events`] and read the snapshot.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::core::{Action, Core, Event, Leds};
use crate::faults::Fault;
use crate::objects::Value;
use crate::units::GoNumber;

/// What the website and tests see of the running gateway.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Current object values (object number → value).
    pub objects: BTreeMap<GoNumber, Value>,
    /// Faults present now, worst first.
    pub faults: Vec<Fault>,
    /// LED states (`None` before start).
    pub leds: Option<Leds>,
    /// Programming mode.
    pub programming_mode: bool,
    /// Objects the gateway asked the bus for at start-up (I flag).
    pub init_reads: Vec<GoNumber>,
}

/// A running shell.
#[derive(Debug)]
pub struct ShellHandle {
    /// Sends events into the core.
    pub events: mpsc::Sender<Event>,
    /// The latest snapshot.
    pub snapshot: watch::Receiver<Snapshot>,
    /// Asks the shell to stop.
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ShellHandle {
    /// Stops the shell and waits for it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Longest sleep between core ticks when the core asks for none.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// Starts the shell with `config` on the current tokio runtime.
pub fn spawn(config: Config, configured: bool) -> ShellHandle {
    let (events, mut rx) = mpsc::channel::<Event>(256);
    let (snap_tx, snapshot) = watch::channel(Snapshot::default());
    let (stop, mut stop_rx) = watch::channel(false);
    let mut core = Core::new(config, configured);
    for fault in core.config_faults() {
        warn!(code = %fault.code, severity = fault.severity.0, charging_point = ?fault.charging_point.map(u8::from), "configuration fault: {}", fault.message);
    }
    let task = tokio::spawn(async move {
        let mut image = Snapshot::default();
        let actions = core.handle(Event::Started, tokio::time::Instant::now().into_std());
        apply(&core, &mut image, actions, &snap_tx);
        loop {
            let deadline = core.poll_timeout().map_or_else(
                || tokio::time::Instant::now() + IDLE_TICK,
                tokio::time::Instant::from_std,
            );
            let event = tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => ev,
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => Event::Tick,
                _ = stop_rx.changed() => break,
            };
            let actions = core.handle(event, tokio::time::Instant::now().into_std());
            apply(&core, &mut image, actions, &snap_tx);
        }
        info!("core stopped");
    });
    ShellHandle {
        events,
        snapshot,
        stop,
        task,
    }
}

fn apply(core: &Core, image: &mut Snapshot, actions: Vec<Action>, tx: &watch::Sender<Snapshot>) {
    if actions.is_empty() {
        return;
    }
    for action in actions {
        match action {
            Action::SetObject { object, value } => {
                debug!(object = object.0, ?value, "object value");
                image.objects.insert(object, value);
            }
            Action::ReadObject { object } => {
                debug!(object = object.0, "read request at start-up");
                image.init_reads.push(object);
            }
            Action::Leds(leds) => {
                info!(prog = leds.prog, app = ?leds.app, com = ?leds.com, "LEDs");
                image.leds = Some(leds);
            }
        }
    }
    image.faults = core.faults().present();
    image.programming_mode = core.programming_mode();
    tx.send_replace(image.clone());
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
