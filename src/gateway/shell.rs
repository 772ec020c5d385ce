//! The async shell around the sans-IO core.
//!
//! The shell owns the tasks and the clock. It feeds [`Event`]s into [`Core::handle`] with
//! `tokio::time::Instant::now()`, arms one timer from [`Core::poll_timeout`] and carries out
//! the returned [`Action`]s. It keeps the object value image and publishes a [`Snapshot`] on a
//! `watch` channel for the website. It keeps no decision logic of its own. The KNX link, the
//! charger tasks and the website are wired to it by [`crate::gateway::start`]: they send
//! events through [`ShellHandle::events`] and read the snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::tasks::Prepared;
use crate::chargers::{ChargerCommand, CommandQueue};
use crate::config::Config;
use crate::core::{Action, Core, Event, Leds, Persisted};
use crate::faults::Fault;
use crate::knx::device::{Device, DeviceEvent, DeviceState, EraseCode, Identity};
use crate::knx::link::{LinkControl, LinkEvent, OwnDevice};
use crate::knx::wire::cemi::LData;
use crate::knx::wire::cemi::PropFrame;
use crate::objects::Value;
use crate::objects::engine::Engine;
use crate::store::DataDir;
use crate::units::{ChargePointId, GoNumber};

/// The gateway's side of a KNX link ([`crate::knx::link::LinkHandle`] provides both ends).
#[derive(Debug)]
pub struct Bus {
    /// Frames for the bus (L_Data.req).
    pub to_bus: mpsc::Sender<LData>,
    /// Frames from the bus (L_Data.ind) and link-state changes.
    pub from_bus: mpsc::Receiver<LinkEvent>,
    /// The device's addresses for the link when ETS changes them, and the device stack's
    /// answers to the link's [`LinkEvent::PropertyWrite`] (`None`: the link does not need
    /// them).
    pub control: Option<mpsc::Sender<LinkControl>>,
}

/// What the website and tests see of the running gateway.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Current object values (object number → value).
    pub objects: BTreeMap<GoNumber, Value>,
    /// Faults present now, worst first.
    pub faults: Vec<Fault>,
    /// LED states (`None` before start).
    pub leds: Option<Leds>,
    /// Programming mode.
    pub programming_mode: bool,
    /// The KNX link's state (connected, reconnecting or down).
    pub knx_link: crate::core::LinkState,
    /// Objects the gateway asked the bus for at start-up (I flag).
    pub init_reads: Vec<GoNumber>,
    /// Telegrams handed to the link.
    pub telegrams_sent: u64,
    /// Received values rejected (wrong size or range).
    pub telegrams_rejected: u64,
    /// What the DLM saw and decided in its last cycle (`None`: DLM off or no cycle yet).
    pub dlm: Option<crate::core::DlmCycle>,
    /// Why each charging point gets its current, as the core decided it.
    pub limits: crate::dlm::Limits,
    /// The configuration applied live by the last ETS download or master reset (`None`: the
    /// one the gateway started with is still in force).
    #[serde(skip)]
    pub config: Option<Arc<Config>>,
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

/// How often the shell re-anchors the core's time of day (follows clock adjustments by NTP).
const CLOCK_ANCHOR_INTERVAL: Duration = Duration::from_secs(600);

/// The local time of day with weekday, for DPT 10.001.
pub fn local_time_of_day() -> crate::knx::dpt::TimeOfDay {
    use chrono::{Datelike, Timelike};
    let now = chrono::Local::now();
    let weekday = crate::knx::dpt::Weekday::from_number(
        u8::try_from(now.weekday().number_from_monday()).unwrap_or(0),
    );
    let part = |v: u32| u8::try_from(v).unwrap_or(0);
    crate::knx::dpt::TimeOfDay::new(
        weekday,
        part(now.hour()),
        part(now.minute()),
        part(now.second().min(59)),
    )
    .unwrap_or(crate::knx::dpt::TimeOfDay {
        weekday: None,
        hour: 0,
        minute: 0,
        second: 0,
    })
}

/// How long a frame may wait for room in the link's queue before it is dropped (logged).
const LINK_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts the shell with `config` on the current tokio runtime, attached to `bus` if given.
pub fn spawn(config: Config, configured: bool, bus: Option<Bus>) -> ShellHandle {
    spawn_with_chargers(config, configured, bus, BTreeMap::new())
}

/// Command senders of the charger tasks, per charging point
/// ([`crate::gateway::tasks::Prepared::commands`]).
pub type ChargerSenders = BTreeMap<ChargePointId, mpsc::Sender<ChargerCommand>>;

/// [`spawn`], routing `Action::Charger` to the charger tasks' command channels.
pub fn spawn_with_chargers(
    config: Config,
    configured: bool,
    bus: Option<Bus>,
    chargers: ChargerSenders,
) -> ShellHandle {
    spawn_with_store(config, configured, bus, chargers, None)
}

/// The file in the data directory that holds [`Persisted`].
pub const PERSISTED_FILE: &str = "counters.json";

/// [`spawn_with_chargers`], keeping what the core asks to persist ([`Action::Persist`]) in
/// `store` and giving it back to the core at start ([`Event::Restored`]). A file that cannot
/// be read is logged and ignored: the counters then start afresh.
pub fn spawn_with_store(
    config: Config,
    configured: bool,
    bus: Option<Bus>,
    chargers: ChargerSenders,
    store: Option<DataDir>,
) -> ShellHandle {
    spawn_inner(config, configured, bus, chargers, None, store)
}

/// [`spawn_with_store`] with the charger tasks owned by the shell: it starts `prepared` and,
/// when ETS downloads a new configuration, restarts the tasks whose endpoint changed
/// ([`super::tasks::Fleet::reconfigure`]). The tasks stop with the shell.
pub fn spawn_with_fleet(
    config: Config,
    configured: bool,
    bus: Option<Bus>,
    prepared: Option<Prepared>,
    store: Option<DataDir>,
) -> ShellHandle {
    let chargers = prepared
        .as_ref()
        .map(Prepared::commands)
        .unwrap_or_default();
    spawn_inner(config, configured, bus, chargers, prepared, store)
}

fn spawn_inner(
    config: Config,
    configured: bool,
    bus: Option<Bus>,
    chargers: ChargerSenders,
    prepared: Option<Prepared>,
    store: Option<DataDir>,
) -> ShellHandle {
    let restored = store.as_ref().and_then(read_persisted);
    let store_for_device = store.clone();
    let (persist, persist_rx) = watch::channel(None::<Persisted>);
    let writer = store.map(|store| tokio::spawn(persist_writer(store, persist_rx)));
    let mut outlets = Outlets {
        chargers,
        persist,
        pending: BTreeMap::new(),
    };
    let (events, mut rx) = mpsc::channel::<Event>(256);
    // Only the charger tasks the shell owns report through this sender.
    let fleet_events = prepared.as_ref().map(|_| events.clone());
    let (snap_tx, snapshot) = watch::channel(Snapshot::default());
    let (stop, mut stop_rx) = watch::channel(false);
    let policy = config.send_policy();
    let own = config.knx.individual_address;
    let mut first_cycle = FirstPollCycle::new(&config);
    let mut core = Core::new(config, configured);
    for fault in core.config_faults() {
        warn!(code = %fault.code, severity = fault.severity.0, charging_point = ?fault.charging_point.map(u8::from), "configuration fault: {}", fault.message);
    }
    let engine = Engine::new(core.table().clone(), policy, own);
    let mut device = Device::new(identity(), device_state(store_for_device.as_ref(), own));
    let task = tokio::spawn(crate::hw::watchdog::watched("core", async move {
        let mut engine = match engine {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("cannot build the object engine: {e}");
                return;
            }
        };
        let (to_bus, mut from_bus, control) = match bus {
            Some(b) => (Some(b.to_bus), Some(b.from_bus), b.control),
            None => (None, None, None),
        };
        // What the link was last told: address, programming mode (groups: on reconfigure).
        let mut told_link: Option<(crate::knx::IndividualAddress, bool)> = None;
        // M_PropWrite.con to send once the link knows what the write changed.
        let mut confirmations: Vec<(u8, PropFrame)> = Vec::new();
        let mut fleet = match (prepared, fleet_events.as_ref()) {
            (Some(p), Some(tx)) => Some(p.start(tx)),
            _ => None,
        };
        let mut image = Snapshot::default();
        let now = tokio::time::Instant::now().into_std();
        let mut actions = core.handle(Event::Started, now);
        if let Some(persisted) = restored {
            info!(
                charging_points = persisted.plug_in_mwh.len(),
                "energy counters restored from the data directory"
            );
            actions.extend(core.handle(Event::Restored(persisted), now));
        }
        apply(
            &core,
            &mut engine,
            &mut image,
            actions,
            now,
            &snap_tx,
            &mut outlets,
        );
        let mut next_clock = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_clock {
                // The core keeps time of day from this anchor (session start and end times).
                let now = tokio::time::Instant::now().into_std();
                let actions = core.handle(Event::Clock(local_time_of_day()), now);
                apply(
                    &core,
                    &mut engine,
                    &mut image,
                    actions,
                    now,
                    &snap_tx,
                    &mut outlets,
                );
                next_clock += CLOCK_ANCHOR_INTERVAL;
            }
            let device_now = tokio::time::Instant::now().into_std();
            if device.poll_timeout().is_some_and(|t| t <= device_now) {
                device.handle_timeout(device_now);
            }
            let device_events = device_output(
                &mut device,
                core.config(),
                store_for_device.as_ref(),
                to_bus.as_ref(),
            )
            .await;
            // Group telegrams go out from the address ETS programmed.
            engine.set_own_address(device.address());
            let mut new_groups = false;
            for event in device_events {
                let event = match event {
                    Event::Reconfigure { config, configured } => {
                        let mut config = *config;
                        // The bus access is the command line's, not the download's.
                        config.knx.link.clone_from(&core.config().knx.link);
                        if config.ip != core.config().ip {
                            // The OS network settings are written at start (`app`): changing
                            // them under a running ETS connection would cut it.
                            let ip = &config.ip;
                            let address = if ip.dhcp {
                                "DHCP".to_owned()
                            } else {
                                format!("{}/{} via {}", ip.address, ip.subnet_mask, ip.gateway)
                            };
                            info!(dhcp = ip.dhcp, %address, "the new configuration changes the IP settings; they take effect at the next start of the gateway, the running network is left as it is");
                        }
                        if let (Some(fleet), Some(tx)) = (fleet.as_mut(), fleet_events.as_ref()) {
                            let (changed, senders) =
                                fleet.reconfigure(core.config(), &config, tx).await;
                            outlets.replace(&changed, senders);
                        }
                        match Engine::new(
                            config.object_table(),
                            config.send_policy(),
                            device.address(),
                        ) {
                            Ok(new) => {
                                let old = std::mem::replace(&mut engine, new);
                                engine.carry_over(old);
                            }
                            Err(e) => {
                                tracing::error!(
                                    "cannot build the object engine for the download, keeping the previous configuration: {e}"
                                );
                                continue;
                            }
                        }
                        image.objects.retain(|o, _| engine.table().contains(*o));
                        image.init_reads.clear();
                        image.config = Some(Arc::new(config.clone()));
                        new_groups = true;
                        Event::Reconfigure {
                            config: Box::new(config),
                            configured,
                        }
                    }
                    other => other,
                };
                let actions = core.handle(event, device_now);
                apply(
                    &core,
                    &mut engine,
                    &mut image,
                    actions,
                    device_now,
                    &snap_tx,
                    &mut outlets,
                );
            }
            let now_link = (device.address(), core.programming_mode());
            if new_groups || told_link != Some(now_link) {
                told_link = Some(now_link);
                tell_link(control.as_ref(), &engine, now_link.0, now_link.1);
            }
            for (channel, con) in confirmations.drain(..) {
                confirm(control.as_ref(), channel, con);
            }
            flush(&mut engine, to_bus.as_ref()).await;
            publish(&mut image, &engine, &snap_tx);
            let now = tokio::time::Instant::now();
            outlets.flush();
            let retry = outlets
                .has_pending()
                .then(|| now.into_std() + PENDING_RETRY);
            let wake = [
                core.poll_timeout(),
                engine.poll_timeout(now.into_std()),
                device.poll_timeout(),
                retry,
            ]
            .into_iter()
            .flatten()
            .min()
            .map_or(now + IDLE_TICK, tokio::time::Instant::from_std);
            let events_in = tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => vec![ev],
                    None => break,
                },
                frame = recv_frame(&mut from_bus) => {
                    if let Some(LinkEvent::Frame(frame)) = frame.as_ref().filter(|f| matches!(f, LinkEvent::Frame(fr) if device.accepts(fr))) {
                        // Management telegrams to the gateway's own address and broadcasts.
                        device.handle_frame(tokio::time::Instant::now().into_std(), frame);
                        vec![Event::KnxTraffic]
                    } else if let Some(LinkEvent::Frame(frame)) = frame {
                        let now = tokio::time::Instant::now().into_std();
                        let received = engine.on_frame(&frame, now);
                        let mut evs = vec![Event::KnxTraffic];
                        evs.extend(received.into_iter().map(|r| Event::ObjectWritten { object: r.object, value: r.value }));
                        evs
                    } else if let Some(LinkEvent::PropertyWrite { channel, request }) = frame {
                        // cEMI M_PropWrite from a KNXnet/IP device-management connection:
                        // the device stack writes it as it writes an A_PropertyValue_Write.
                        let con = match device.local_property_write(&request) {
                            // A positive M_PropWrite.con is the request's header without data
                            // (xknx 4.0.0 `CEMIMPropWriteResponse.from_knx` refuses any).
                            Ok(_) => PropFrame { data: Vec::new(), ..request },
                            Err(error) => {
                                debug!(channel, object_type = request.object_type, property = request.property_id, "M_PropWrite refused: {error}");
                                request.error(error)
                            }
                        };
                        confirmations.push((channel, con));
                        vec![Event::KnxTraffic]
                    } else if let Some(LinkEvent::State(state)) = frame {
                        info!(?state, "KNX link");
                        vec![Event::KnxLink(state)]
                    } else {
                        warn!("KNX link closed");
                        from_bus = None;
                        vec![Event::KnxLink(crate::core::LinkState::Down)]
                    }
                }
                () = tokio::time::sleep_until(wake.min(next_clock)) => vec![Event::Tick],
                _ = stop_rx.changed() => break,
            };
            for event in events_in {
                if let Event::SetProgrammingMode(on) = event {
                    // Website or button: the device stack answers ETS accordingly.
                    device.set_programming_mode(on);
                    while device.poll_event().is_some() {}
                }
                first_cycle.observe(&event);
                trace_event(&event);
                let now = tokio::time::Instant::now().into_std();
                let actions = core.handle(event, now);
                apply(
                    &core,
                    &mut engine,
                    &mut image,
                    actions,
                    now,
                    &snap_tx,
                    &mut outlets,
                );
            }
        }
        if let Some(fleet) = fleet {
            fleet.shutdown().await;
        }
        // The last state reaches the disk before the shell reports that it has stopped.
        drop(outlets);
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        info!("core stopped");
    }));
    ShellHandle {
        events,
        snapshot,
        stop,
        task,
    }
}

/// Logs, once, when every enabled charging point has answered its first poll (or failed it):
/// the moment the gateway knows the state of the whole installation after start-up. The
/// time is counted from the shell's start.
struct FirstPollCycle {
    started: tokio::time::Instant,
    waiting: BTreeSet<ChargePointId>,
    done: bool,
}

impl FirstPollCycle {
    fn new(config: &Config) -> Self {
        let waiting: BTreeSet<_> = config
            .charging_points
            .iter()
            .filter(|cp| cp.enabled && cp.model.is_some())
            .map(|cp| cp.id)
            .collect();
        Self {
            started: tokio::time::Instant::now(),
            done: waiting.is_empty(),
            waiting,
        }
    }

    fn observe(&mut self, event: &Event) {
        if self.done {
            return;
        }
        let (Event::ChargerPolled { cp, .. } | Event::ChargerFailed { cp, .. }) = event else {
            return;
        };
        self.waiting.remove(cp);
        if self.waiting.is_empty() {
            self.done = true;
            info!(
                elapsed_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "first poll cycle complete: every charging point has answered or failed once"
            );
        }
    }
}

/// Extended logging (debug): what each charging point reported and why a poll failed, so a
/// log ZIP from support shows the charging points' side next to the objects and commands.
fn trace_event(event: &Event) {
    match event {
        Event::ChargerPolled { cp, status } => debug!(
            cp = cp.number(),
            state = ?status.state,
            connected = status.connected,
            charging = status.charging,
            setpoint = ?status.setpoint,
            currents = ?status.currents,
            "charging point polled"
        ),
        Event::ChargerFailed { cp, error } => {
            debug!(cp = cp.number(), "charging point poll failed: {error}");
        }
        _ => {}
    }
}

/// How soon the shell retries commands a charger task had no room for.
const PENDING_RETRY: Duration = Duration::from_millis(5);

/// Where the shell sends what leaves the core besides telegrams and the snapshot.
struct Outlets {
    chargers: ChargerSenders,
    /// The newest state to persist; [`persist_writer`] stores it.
    persist: watch::Sender<Option<Persisted>>,
    /// Commands a charger task had no room for yet, per charging point; how they wait is the
    /// chargers' rule ([`CommandQueue`]).
    pending: BTreeMap<ChargePointId, CommandQueue>,
}

impl Outlets {
    fn send(&mut self, cp: ChargePointId, command: ChargerCommand) {
        debug!(cp = cp.number(), ?command, "charger command");
        self.pending.entry(cp).or_default().push(command);
        self.flush_one(cp);
    }

    fn flush(&mut self) {
        let waiting: Vec<ChargePointId> = self.pending.keys().copied().collect();
        for cp in waiting {
            self.flush_one(cp);
        }
    }

    fn flush_one(&mut self, cp: ChargePointId) {
        let (Some(queue), Some(tx)) = (self.pending.get_mut(&cp), self.chargers.get(&cp)) else {
            return;
        };
        while let Some(command) = queue.front() {
            match tx.try_send(command) {
                Ok(()) => {
                    queue.pop();
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    debug!(
                        cp = cp.number(),
                        waiting = queue.len(),
                        "charger task busy; commands wait"
                    );
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    warn!(
                        cp = cp.number(),
                        ?command,
                        "charger task has stopped; command dropped"
                    );
                    queue.clear();
                }
            }
        }
        self.pending.remove(&cp);
    }

    /// The tasks of `changed` were stopped or restarted: commands waiting for the old ones
    /// are dropped, the new ones' senders (`senders`) take their place.
    fn replace(&mut self, changed: &BTreeSet<ChargePointId>, senders: ChargerSenders) {
        for cp in changed {
            self.pending.remove(cp);
            self.chargers.remove(cp);
        }
        self.chargers.extend(senders);
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

fn read_persisted(store: &DataDir) -> Option<Persisted> {
    match store.read(PERSISTED_FILE) {
        Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(p) => Some(p),
            Err(e) => {
                warn!(file = %store.file(PERSISTED_FILE).display(), "energy counters unreadable, starting afresh: {e}");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            warn!("energy counters unreadable, starting afresh: {e}");
            None
        }
    }
}

/// Writes every new state to the data directory, atomically, off the core's task; states
/// that arrive while a write runs are merged into the next write (only the newest counts).
async fn persist_writer(store: DataDir, mut rx: watch::Receiver<Option<Persisted>>) {
    while rx.changed().await.is_ok() {
        let Some(persisted) = rx.borrow_and_update().clone() else {
            continue;
        };
        let store = store.clone();
        let written = tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec_pretty(&persisted)
                .map_err(|e| crate::store::StoreError::Encode(e.to_string()))?;
            store.write(PERSISTED_FILE, &bytes)
        })
        .await;
        match written {
            Ok(Ok(())) => debug!("energy counters stored"),
            Ok(Err(e)) => warn!("energy counters not stored: {e}"),
            Err(e) => warn!("energy counters not stored: {e}"),
        }
    }
}

/// The gateway's identity as a KNX device (device object, `docs/device-management.md`):
/// manufacturer id and order number from `etsdb/parameters.toml` `[application]` (the same
/// values the generated product database carries), serial number from the manufacturer id,
/// firmware version from the crate version (PDT_VERSION: 5 bits magic 0, 5 bits version, 6
/// bits revision).
fn identity() -> Identity {
    let major: u16 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0);
    let minor: u16 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0);
    let version = ((major & 0x1F) << 6) | (minor & 0x3F);
    // One source for what ETS compares with its product database: `etsdb/parameters.toml`.
    let app = &crate::etsdb::ParamModel::get().application;
    let [m0, m1] = app.manufacturer_id.to_be_bytes();
    Identity {
        serial_number: [m0, m1, 0x00, 0x00, 0x00, 0x01],
        manufacturer_id: app.manufacturer_id,
        order_info: app.order_info(),
        hardware_type: [0, 0, 0, 0, 0, 1],
        firmware_version: version.to_be_bytes(),
    }
}

/// The device state stored by the last download, else a new one with the configured address.
fn device_state(store: Option<&DataDir>, own: crate::knx::IndividualAddress) -> DeviceState {
    match store.map(crate::config::download::load_device_state) {
        Some(Ok(Some(state))) => state,
        Some(Err(e)) => {
            warn!("stored device state unusable, starting unloaded: {e}");
            DeviceState {
                address: own,
                ..DeviceState::default()
            }
        }
        _ => DeviceState {
            address: own,
            ..DeviceState::default()
        },
    }
}

/// Sends the device stack's frames, stores its state when ETS changed it and returns the
/// events the core must see (programming mode).
async fn device_output(
    device: &mut Device,
    running: &Config,
    store: Option<&DataDir>,
    to_bus: Option<&mpsc::Sender<LData>>,
) -> Vec<Event> {
    while let Some(frame) = device.poll_transmit() {
        let Some(tx) = to_bus else { continue };
        if tokio::time::timeout(LINK_SEND_TIMEOUT, tx.send(frame))
            .await
            .is_err()
        {
            warn!("KNX link is not taking telegrams; management answer dropped");
        }
    }
    let mut events = Vec::new();
    let mut persist = false;
    while let Some(event) = device.poll_event() {
        match event {
            DeviceEvent::ProgrammingMode(on) => events.push(Event::SetProgrammingMode(on)),
            DeviceEvent::AddressChanged(address) => {
                info!(%address, "individual address programmed");
                persist = true;
            }
            DeviceEvent::MasterReset(kind) => {
                info!(?kind, "master reset");
                events.extend(after_reset(kind, running, device.address()));
                persist = true;
            }
            DeviceEvent::LoadCompleted(download) => {
                match Config::from_download(&download, device.address()) {
                    Ok(config) => {
                        for fault in crate::config::validate::validate(&config) {
                            warn!(code = %fault.code, "configuration fault in the download: {}", fault.message);
                        }
                        info!("ETS download completed; applying it live");
                        events.push(Event::Reconfigure {
                            config: Box::new(config),
                            configured: true,
                        });
                    }
                    Err(e) => warn!(
                        "ETS download completed but is not usable, the previous configuration stays in force: {e}"
                    ),
                }
                persist = true;
            }
            DeviceEvent::Restart => info!("restart requested by ETS"),
            DeviceEvent::Connected(peer) => debug!(%peer, "management connection opened"),
            DeviceEvent::Disconnected(peer) => debug!(%peer, "management connection closed"),
        }
    }
    if persist {
        if let Some(store) = store {
            let (store, state) = (store.clone(), device.state().clone());
            let stored = tokio::task::spawn_blocking(move || {
                crate::config::download::save_device_state(&store, &state)
            })
            .await;
            match stored {
                Ok(Ok(())) => debug!("device state stored"),
                Ok(Err(e)) => warn!("device state not stored: {e}"),
                Err(e) => warn!("device state not stored: {e}"),
            }
        }
    }
    events
}

/// What a master reset leaves running (KNX 03.05.02 §3.7.2, `docs/device-management.md`):
/// erasing the application or the parameters, or a factory reset, leaves the device
/// unconfigured; erasing the links leaves the configuration without group addresses; a
/// restart or a new address changes no configuration.
fn after_reset(
    kind: EraseCode,
    running: &Config,
    address: crate::knx::IndividualAddress,
) -> Option<Event> {
    let (config, configured) = match kind {
        EraseCode::ConfirmedRestart | EraseCode::ResetIndividualAddress => return None,
        EraseCode::ResetLinks => {
            let mut config = running.clone();
            config.group_addresses.clear();
            (config, true)
        }
        EraseCode::FactoryReset
        | EraseCode::ResetApplicationProgram
        | EraseCode::ResetParameters
        | EraseCode::FactoryResetWithoutIndividualAddress => {
            let mut config = Config::defaults();
            config.knx.individual_address = address;
            (config, false)
        }
    };
    Some(Event::Reconfigure {
        config: Box::new(config),
        configured,
    })
}

/// Hands the device stack's M_PropWrite.con to the link (the built-in server sends it).
fn confirm(control: Option<&mpsc::Sender<LinkControl>>, channel: u8, con: PropFrame) {
    let Some(control) = control else { return };
    if control
        .try_send(LinkControl::PropertyWriteCon { channel, con })
        .is_err()
    {
        warn!(channel, "the KNX link did not take an M_PropWrite.con");
    }
}

/// Tells the link the device's address and the group addresses of its objects (a TP-UART
/// acknowledges frames to them) and its programming mode (the server's device info DIB).
fn tell_link(
    control: Option<&mpsc::Sender<LinkControl>>,
    engine: &Engine,
    own: crate::knx::IndividualAddress,
    programming_mode: bool,
) {
    let Some(control) = control else { return };
    let groups = engine
        .table()
        .objects()
        .iter()
        .flat_map(|o| o.group_addresses.iter().copied())
        .collect();
    if control
        .try_send(LinkControl::Device(OwnDevice {
            own,
            groups: Some(groups),
            programming_mode,
            identity: identity(),
        }))
        .is_err()
    {
        warn!("the KNX link did not take the device's new addresses");
    }
}

async fn recv_frame(from_bus: &mut Option<mpsc::Receiver<LinkEvent>>) -> Option<LinkEvent> {
    match from_bus {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Hands every frame the limiter allows now to the link.
async fn flush(engine: &mut Engine, to_bus: Option<&mpsc::Sender<LData>>) {
    let now = tokio::time::Instant::now().into_std();
    while let Some(frame) = engine.poll_transmit(now) {
        let Some(tx) = to_bus else { continue };
        match tokio::time::timeout(LINK_SEND_TIMEOUT, tx.send(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => warn!("KNX link is gone; telegram dropped"),
            Err(_) => warn!("KNX link is not taking telegrams; telegram dropped"),
        }
    }
}

fn apply(
    core: &Core,
    engine: &mut Engine,
    image: &mut Snapshot,
    actions: Vec<Action>,
    now: std::time::Instant,
    tx: &watch::Sender<Snapshot>,
    outlets: &mut Outlets,
) {
    for action in actions {
        match action {
            Action::SetObject { object, value } => {
                debug!(object = object.0, ?value, "object value");
                engine.set(object, value.clone(), now);
                image.objects.insert(object, value);
            }
            Action::ReadObject { object } => {
                debug!(object = object.0, "read request at start-up");
                engine.request_read(object);
                image.init_reads.push(object);
            }
            Action::Leds(leds) => {
                // The COM LED flickers with every telegram: only programming and application
                // LED changes are worth an info line.
                let notable = image
                    .leds
                    .is_none_or(|old| old.prog != leds.prog || old.app != leds.app);
                if notable {
                    info!(prog = leds.prog, app = ?leds.app, com = ?leds.com, "LEDs");
                } else {
                    debug!(prog = leds.prog, app = ?leds.app, com = ?leds.com, "LEDs");
                }
                image.leds = Some(leds);
            }
            Action::Persist(persisted) => {
                outlets.persist.send_replace(Some(persisted));
            }
            Action::Charger { cp, command } => {
                if outlets.chargers.contains_key(&cp) {
                    outlets.send(cp, command);
                } else {
                    debug!(
                        cp = cp.number(),
                        ?command,
                        "charger command (no charger task attached)"
                    );
                }
            }
        }
    }
    image.faults = core.faults().present();
    image.programming_mode = core.programming_mode();
    image.knx_link = core.link_state();
    image.dlm = core.dlm_cycle();
    image.limits = core.limits();
    publish(image, engine, tx);
}

/// Publishes the image if anything in it changed.
fn publish(image: &mut Snapshot, engine: &Engine, tx: &watch::Sender<Snapshot>) {
    image.telegrams_sent = engine.stats().sent;
    image.telegrams_rejected = engine.stats().rejected;
    tx.send_if_modified(|current| {
        let changed = *current != *image;
        if changed {
            *current = image.clone();
        }
        changed
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Current;

    fn outlets(capacity: usize) -> (Outlets, mpsc::Receiver<ChargerCommand>, ChargePointId) {
        let cp = ChargePointId::new(1).unwrap();
        let (tx, rx) = mpsc::channel(capacity);
        let outlets = Outlets {
            chargers: [(cp, tx)].into_iter().collect(),
            persist: watch::channel(None).0,
            pending: BTreeMap::new(),
        };
        (outlets, rx, cp)
    }

    fn set(amps: i32) -> ChargerCommand {
        ChargerCommand::SetCurrent(Current::from_amps(amps))
    }

    #[test]
    fn a_busy_charger_task_loses_no_command_and_gets_the_newest_setpoint() {
        let (mut outlets, mut rx, cp) = outlets(1);
        outlets.send(cp, set(16));
        // The task is busy: these wait, the newer setpoint replacing the older one, the stop
        // keeping its place.
        outlets.send(cp, set(12));
        outlets.send(cp, set(10));
        outlets.send(cp, ChargerCommand::StartStop(false));
        outlets.send(cp, set(8));
        outlets.send(cp, set(6));
        assert!(outlets.has_pending());
        let mut got = Vec::new();
        while outlets.has_pending() || !rx.is_empty() {
            if let Ok(c) = rx.try_recv() {
                got.push(c);
            }
            outlets.flush();
        }
        assert_eq!(
            got,
            vec![set(16), set(10), ChargerCommand::StartStop(false), set(6)]
        );
    }

    #[test]
    fn commands_for_a_stopped_charger_task_are_dropped_not_kept() {
        let (mut outlets, rx, cp) = outlets(1);
        drop(rx);
        outlets.send(cp, set(6));
        assert!(!outlets.has_pending());
    }
}
