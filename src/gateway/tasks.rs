//! The charger tasks: one tokio task per active charging point, all concurrent. Each moves
//! bytes for its charging point's [`Session`] (the protocol rules, sans-IO, in
//! [`crate::chargers::session`]) and turns what the session reports into core [`Event`]s.
//!
//! Each task identifies its charging point (at start and after every loss), polls it every
//! `modbus.poll_interval`, re-reads its identity now and then, keeps the model's heartbeat
//! alive, carries out the commands the core sends ([`ChargerCommand`] on a per-point channel)
//! and reports everything to the core as [`Event`]s. A failing charging point is retried with
//! exponential back-off (1 s … 30 s) and never holds up the others: the TCP ones have their
//! own connections, the RS485 ones share the line task, which bounds every request by the
//! response timeout. After recovery the task replays the last failsafe, start/stop and
//! setpoint commands, since the box may have rebooted and lost them.
//!
//! [`prepare`] builds the drivers and the command channels for a [`Config`]; the shell takes
//! the senders, and [`Prepared::start`] starts the tasks on the core's event sender.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::hw::watchdog::watched;

use crate::catalog::Interface;
use crate::chargers::session::{Op, OpResult, Report, Session, Timing};
use crate::chargers::{AnyDriver, ChargePoint, ChargerCommand, DriverError, FactoryError};
use crate::config::Config;
use crate::core::Event;
use crate::meters::{self, MeterEndpoint, MeterError, MeterReader, MeterReading};
use crate::modbus::TcpModbus;
use crate::modbus::line::{Line, LineModbus};
use crate::units::ChargePointId;

/// Timing of a charger task (the session's).
pub type TaskTiming = Timing;

/// The timing of the charger tasks from the configuration's poll interval.
pub fn timing_from_config(config: &Config) -> TaskTiming {
    Timing {
        poll: config.modbus.poll_interval.max(Duration::from_millis(100)),
        identify_every: Duration::from_secs(600),
        backoff_min: Duration::from_secs(1),
        backoff_max: Duration::from_secs(30),
    }
}

/// A charging point's retrofit electricity meter on its transport.
#[derive(Debug)]
pub enum AnyMeter {
    /// Over Modbus TCP.
    Tcp(MeterReader<TcpModbus>),
    /// On the shared RS485 line.
    Line(MeterReader<LineModbus>),
}

impl AnyMeter {
    /// Reads the meter.
    pub async fn read(&mut self) -> Result<MeterReading, MeterError> {
        match self {
            Self::Tcp(r) => r.read().await,
            Self::Line(r) => r.read().await,
        }
    }
}

/// The retrofit meter of `cp`, if one is configured and the model takes one.
fn meter_of(
    cp: &crate::config::ChargePointConfig,
    config: &Config,
    line: Option<&Line>,
) -> Option<AnyMeter> {
    let takes_meter = cp
        .model
        .is_some_and(|m| m.metering == crate::catalog::Metering::Optional);
    if !takes_meter || !cp.meter.is_configured() {
        return None;
    }
    let plan = match meters::meter_for(&cp.meter) {
        Ok(Some(plan)) => plan,
        Ok(None) => return None,
        Err(e) => {
            warn!(cp = cp.id.number(), "electricity meter not used: {e}");
            return None;
        }
    };
    info!(cp = cp.id.number(), meter = %plan.name, "retrofit electricity meter");
    match plan.endpoint {
        MeterEndpoint::Tcp(..) => plan
            .tcp_reader(config.modbus.response_timeout)
            .map(AnyMeter::Tcp),
        MeterEndpoint::Rs485(address) => {
            if let Some(line) = line {
                Some(AnyMeter::Line(plan.reader(line.device(address))))
            } else {
                warn!(
                    cp = cp.id.number(),
                    "electricity meter on RS485, but the line is not open"
                );
                None
            }
        }
    }
}

/// One charging point ready to start: driver (or why there is none), command channel, meter.
type PreparedPoint = (
    ChargePointId,
    Result<AnyDriver, FactoryError>,
    mpsc::Receiver<ChargerCommand>,
    Option<AnyMeter>,
);

/// The drivers and command channels of all active charging points, not yet running.
#[derive(Debug)]
pub struct Prepared {
    commands: BTreeMap<ChargePointId, mpsc::Sender<ChargerCommand>>,
    points: Vec<PreparedPoint>,
    timing: TaskTiming,
    line: Option<Line>,
    rs485: Option<PathBuf>,
}

/// The running charger tasks.
#[derive(Debug)]
pub struct Fleet {
    tasks: BTreeMap<ChargePointId, JoinHandle<()>>,
    line: Option<Line>,
    rs485: Option<PathBuf>,
    timing: TaskTiming,
}

/// Which charger tasks a new configuration restarts: those whose charging point became
/// active or inactive, or whose endpoint (model, interface, address, unit id, Modbus timing,
/// driver settings) or retrofit meter changed. The RS485 line is shared: when its settings
/// change or one of its charging points restarts, it is reopened and all of them restart.
/// Returns the charging points and whether the line is reopened.
pub fn changes(old: &Config, new: &Config) -> (BTreeSet<ChargePointId>, bool) {
    let operating = |c: &Config| {
        c.charging_points
            .iter()
            .filter(|p| p.is_active())
            .map(|p| (p.id, (p.endpoint(&c.modbus), p.meter.clone())))
            .collect::<BTreeMap<_, _>>()
    };
    let (before, after) = (operating(old), operating(new));
    let mut changed: BTreeSet<ChargePointId> = ChargePointId::all()
        .filter(|cp| before.get(cp) != after.get(cp))
        .collect();
    let line_users: BTreeSet<ChargePointId> = [old, new]
        .into_iter()
        .flat_map(|c| {
            c.charging_points
                .iter()
                .filter(|p| p.is_active() && uses_line(p))
                .map(|p| p.id)
        })
        .collect();
    let line = !line_users.is_empty()
        && (old.rs485 != new.rs485
            || old.modbus != new.modbus
            || changed.iter().any(|cp| line_users.contains(cp)));
    if line {
        changed.extend(line_users);
    }
    (changed, line)
}

fn uses_line(cp: &crate::config::ChargePointConfig) -> bool {
    cp.interface == Interface::Rs485
        || (cp.meter.is_configured() && cp.meter.interface == Interface::Rs485)
}

/// How long a reopened RS485 line waits for the previous one to let go of the port.
const LINE_REOPEN: Duration = Duration::from_secs(2);

impl Fleet {
    /// Stops every task.
    pub async fn shutdown(self) {
        for t in self.tasks.values() {
            t.abort();
        }
        for t in self.tasks.into_values() {
            let _ = t.await;
        }
    }

    /// Applies a new configuration: stops the tasks [`changes`] names and starts them anew
    /// for `new` (the others keep running, connections and sessions untouched). Returns the
    /// charging points restarted or stopped and the command senders of the new tasks.
    pub async fn reconfigure(
        &mut self,
        old: &Config,
        new: &Config,
        events: &mpsc::Sender<Event>,
    ) -> (
        BTreeSet<ChargePointId>,
        BTreeMap<ChargePointId, mpsc::Sender<ChargerCommand>>,
    ) {
        let (changed, reopen) = changes(old, new);
        for cp in &changed {
            if let Some(task) = self.tasks.remove(cp) {
                task.abort();
                let _ = task.await;
            }
        }
        if reopen {
            // The line task ends once the last driver and this handle let go of it.
            self.line = None;
            let deadline = Instant::now() + LINE_REOPEN;
            while self.rs485.is_some() && needs_line(new) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let opened = open_line(new, self.rs485.as_deref());
                if opened.is_some() || Instant::now() >= deadline {
                    self.line = opened;
                    break;
                }
            }
        }
        let prepared = prepare_points(
            new,
            self.rs485.as_deref(),
            self.timing,
            self.line.clone(),
            |cp| changed.contains(&cp),
        );
        let senders = prepared.commands();
        let Prepared { points, timing, .. } = prepared;
        for (cp, handle) in spawn_points(points, timing, events) {
            self.tasks.insert(cp, handle);
        }
        if !changed.is_empty() {
            info!(
                charging_points = ?changed.iter().map(|cp| cp.number()).collect::<Vec<_>>(),
                rs485_reopened = reopen,
                "charger tasks restarted for the new configuration"
            );
        }
        (changed, senders)
    }

    /// How many tasks run.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// No task runs.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// Builds the drivers for every active charging point of `config`. RS485 charging points use
/// the serial port `rs485_device` (opened once, shared); if it cannot be opened their tasks
/// report NotReachable. Must run inside a tokio runtime.
pub fn prepare(config: &Config, rs485_device: Option<&Path>) -> Prepared {
    prepare_with(config, rs485_device, timing_from_config(config))
}

/// [`prepare`] with explicit timing (tests run faster).
pub fn prepare_with(config: &Config, rs485_device: Option<&Path>, timing: TaskTiming) -> Prepared {
    let line = open_line(config, rs485_device);
    prepare_points(config, rs485_device, timing, line, |_| true)
}

/// Whether an active charging point of `config` (or its meter) is on RS485.
fn needs_line(config: &Config) -> bool {
    config
        .charging_points
        .iter()
        .any(|c| c.is_active() && uses_line(c))
}

/// The RS485 line, when `config` needs it and the board has it.
fn open_line(config: &Config, rs485_device: Option<&Path>) -> Option<Line> {
    match (needs_line(config), rs485_device) {
        (true, Some(path)) => match Line::open(path, &config.rs485, config.modbus.response_timeout)
        {
            Ok(line) => {
                info!(device = %path.display(), baud = config.rs485.baud, framing = %config.rs485.framing, "RS485 line open");
                Some(line)
            }
            Err(e) => {
                warn!("{e}");
                None
            }
        },
        (true, None) => {
            warn!("RS485 charging points configured, but the board has no RS485 port");
            None
        }
        (false, _) => None,
    }
}

/// Drivers and command channels of the active charging points `only` selects, on `line`.
fn prepare_points(
    config: &Config,
    rs485_device: Option<&Path>,
    timing: TaskTiming,
    line: Option<Line>,
    only: impl Fn(ChargePointId) -> bool,
) -> Prepared {
    let mut commands = BTreeMap::new();
    let mut points = Vec::new();
    for cp in config
        .charging_points
        .iter()
        .filter(|c| c.is_active() && only(c.id))
    {
        let (tx, rx) = mpsc::channel(16);
        commands.insert(cp.id, tx);
        let meter = meter_of(cp, config, line.as_ref());
        points.push((cp.id, cp.driver(&config.modbus, line.as_ref()), rx, meter));
    }
    Prepared {
        commands,
        points,
        timing,
        line,
        rs485: rs485_device.map(Path::to_path_buf),
    }
}

/// Starts one task per prepared charging point.
fn spawn_points(
    points: Vec<PreparedPoint>,
    timing: TaskTiming,
    events: &mpsc::Sender<Event>,
) -> Vec<(ChargePointId, JoinHandle<()>)> {
    let mut tasks = Vec::new();
    for (cp, driver, rx, meter) in points {
        let events = events.clone();
        let name = format!("charging point {}", cp.number());
        tasks.push((
            cp,
            match driver {
                Ok(driver) => tokio::spawn(watched(
                    &name,
                    run_with_meter(cp, driver, meter, rx, events, timing),
                )),
                Err(e) => tokio::spawn(watched(&name, no_driver(cp, e, rx, events, timing))),
            },
        ));
    }
    tasks
}

impl Prepared {
    /// The command sender of every active charging point (for the shell).
    pub fn commands(&self) -> BTreeMap<ChargePointId, mpsc::Sender<ChargerCommand>> {
        self.commands.clone()
    }

    /// Starts one task per charging point, reporting to `events`.
    pub fn start(self, events: &mpsc::Sender<Event>) -> Fleet {
        let tasks = spawn_points(self.points, self.timing, events)
            .into_iter()
            .collect();
        Fleet {
            tasks,
            line: self.line,
            rs485: self.rs485,
            timing: self.timing,
        }
    }
}

/// A charging point whose driver could not be built. Configuration errors (no model, a model
/// without driver, the wrong interface) are Conf Charger faults of the validation already and
/// are only logged; a missing RS485 line is reported as NotReachable. Commands are refused
/// until the configuration changes.
async fn no_driver(
    cp: ChargePointId,
    error: FactoryError,
    mut rx: mpsc::Receiver<ChargerCommand>,
    events: mpsc::Sender<Event>,
    timing: TaskTiming,
) {
    warn!(cp = cp.number(), "{error}");
    if !matches!(error, FactoryError::NoLine(_)) {
        let mut open = true;
        loop {
            let _ = next_command(&mut rx, &mut open).await;
        }
    }
    let failed = || Event::ChargerFailed {
        cp,
        error: DriverError::NotReachable(error.to_string()),
    };
    if events.send(failed()).await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(timing.backoff_max);
    tick.tick().await;
    let mut open = true;
    loop {
        tokio::select! {
            _ = next_command(&mut rx, &mut open) => {}
            _ = tick.tick() => {
                if events.send(failed()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The next command; pends forever once every sender is gone (the task then just polls, and
/// ends with the event channel or [`Fleet::shutdown`]).
async fn next_command(rx: &mut mpsc::Receiver<ChargerCommand>, open: &mut bool) -> ChargerCommand {
    if *open {
        if let Some(c) = rx.recv().await {
            return c;
        }
        *open = false;
    }
    std::future::pending().await
}

/// One charging point's task (without a retrofit meter).
pub async fn run(
    cp: ChargePointId,
    driver: AnyDriver,
    rx: mpsc::Receiver<ChargerCommand>,
    events: mpsc::Sender<Event>,
    timing: TaskTiming,
) {
    run_with_meter(cp, driver, None, rx, events, timing).await;
}

/// The core's event for what the session reports.
fn event(cp: ChargePointId, report: Report) -> Event {
    match report {
        Report::Identified(identity) => Event::ChargerIdentified { cp, identity },
        Report::Polled(status) => Event::ChargerPolled { cp, status },
        Report::Failed(error) => Event::ChargerFailed { cp, error },
        Report::CommandDone { command, outcome } => Event::ChargerCommandDone {
            cp,
            command,
            outcome,
        },
    }
}

/// One charging point's task: moves bytes for its [`Session`], which decides what to do when.
/// A retrofit meter is read after every successful poll; its values replace the charging
/// point's own, and its health goes to the core as [`Event::MeterStatus`].
pub async fn run_with_meter(
    cp: ChargePointId,
    mut driver: AnyDriver,
    mut meter: Option<AnyMeter>,
    mut rx: mpsc::Receiver<ChargerCommand>,
    events: mpsc::Sender<Event>,
    timing: TaskTiming,
) {
    let now = || Instant::now().into_std();
    let mut session = Session::new(cp.number(), timing, now());
    let mut open = true;
    loop {
        // Commands first: take what has arrived before deciding.
        let mut reports = Vec::new();
        while open {
            match rx.try_recv() {
                Ok(command) => reports.extend(session.command(command)),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        if let Some(op) = session.next_op(now()) {
            let result = match op {
                Op::Identify => driver
                    .identify()
                    .await
                    .map_or_else(OpResult::Failed, OpResult::Identified),
                Op::Replay(command) | Op::Command(command) => driver
                    .command(command)
                    .await
                    .map_or_else(OpResult::Failed, OpResult::Commanded),
                Op::Heartbeat => driver
                    .heartbeat()
                    .await
                    .map_or_else(OpResult::Failed, |()| OpResult::Beat),
                Op::Poll => match driver.poll().await {
                    Ok(mut status) => {
                        if let Some(m) = meter.as_mut() {
                            let error = match m.read().await {
                                Ok(reading) => {
                                    reading.apply_to(&mut status);
                                    None
                                }
                                Err(e) => Some(e),
                            };
                            if events.send(Event::MeterStatus { cp, error }).await.is_err() {
                                return;
                            }
                        }
                        OpResult::Polled(status)
                    }
                    Err(e) => OpResult::Failed(e),
                },
            };
            reports.extend(session.done(result, driver.heartbeat_interval(), now()));
        } else {
            let wake = session.poll_timeout().map(Instant::from_std);
            tokio::select! {
                command = next_command(&mut rx, &mut open) => {
                    reports.extend(session.command(command));
                }
                () = sleep_until_or_forever(wake) => {}
            }
        }
        for report in reports {
            if events.send(event(cp, report)).await.is_err() {
                return;
            }
        }
    }
}

async fn sleep_until_or_forever(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::file;

    const FIVE: &str = include_str!("../../examples/five-chargers.toml");

    fn numbers(set: &BTreeSet<ChargePointId>) -> Vec<u8> {
        set.iter().map(|cp| cp.number()).collect()
    }

    #[test]
    fn only_points_whose_endpoint_changed_restart_and_the_line_restarts_together() {
        let old = file::parse(FIVE, "five").unwrap();
        let rs485: Vec<u8> = old
            .charging_points
            .iter()
            .filter(|c| c.is_active() && uses_line(c))
            .map(|c| c.id.number())
            .collect();
        assert!(!rs485.is_empty(), "the example has RS485 charging points");
        let tcp = old
            .charging_points
            .iter()
            .find(|c| c.is_active() && !uses_line(c))
            .unwrap()
            .id;
        // Links and currents only: nothing restarts.
        let mut new = old.clone();
        new.group_addresses.clear();
        new.charging_points[0].max_current = crate::units::Current::from_amps(10);
        assert_eq!(changes(&old, &new), (BTreeSet::new(), false));
        // Another address for one TCP box: that one alone.
        let mut new = old.clone();
        new.charging_points[usize::from(tcp.number() - 1)].ip = "10.9.9.9".parse().unwrap();
        assert_eq!(numbers(&changes(&old, &new).0), vec![tcp.number()]);
        // Another RS485 speed: every RS485 charging point, the line reopened.
        let mut new = old.clone();
        new.rs485.baud = 9600;
        let (changed, line) = changes(&old, &new);
        assert!(line);
        assert_eq!(numbers(&changed), rs485);
        // A disabled charging point stops.
        let mut new = old.clone();
        new.charging_points[usize::from(tcp.number() - 1)].enabled = false;
        assert_eq!(numbers(&changes(&old, &new).0), vec![tcp.number()]);
    }
}
