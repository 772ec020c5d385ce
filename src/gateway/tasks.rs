//! The charger tasks: one tokio task per active charging point, all concurrent.
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

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::catalog::Interface;
use crate::chargers::{
    AnyDriver, ChargePoint, ChargerCommand, CommandOutcome, DriverError, FactoryError,
};
use crate::config::Config;
use crate::core::Event;
use crate::meters::{self, MeterEndpoint, MeterError, MeterReader, MeterReading};
use crate::modbus::TcpModbus;
use crate::modbus::line::{Line, LineModbus};
use crate::units::ChargePointId;

/// Timing of a charger task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskTiming {
    /// State and currents.
    pub poll: Duration,
    /// Identity (serial, firmware) re-read.
    pub identify_every: Duration,
    /// First retry delay after a failure.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

impl TaskTiming {
    /// From the configuration's poll interval.
    pub fn from_config(config: &Config) -> Self {
        Self {
            poll: config.modbus.poll_interval.max(Duration::from_millis(100)),
            identify_every: Duration::from_secs(600),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        }
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
}

/// The running charger tasks.
#[derive(Debug)]
pub struct Fleet {
    tasks: Vec<JoinHandle<()>>,
    _line: Option<Line>,
}

impl Fleet {
    /// Stops every task.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
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
    prepare_with(config, rs485_device, TaskTiming::from_config(config))
}

/// [`prepare`] with explicit timing (tests run faster).
pub fn prepare_with(config: &Config, rs485_device: Option<&Path>, timing: TaskTiming) -> Prepared {
    let active: Vec<_> = config
        .charging_points
        .iter()
        .filter(|c| c.is_active())
        .collect();
    let needs_line = active.iter().any(|c| {
        c.interface == Interface::Rs485
            || (c.meter.is_configured() && c.meter.interface == Interface::Rs485)
    });
    let line = match (needs_line, rs485_device) {
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
    };
    let mut commands = BTreeMap::new();
    let mut points = Vec::new();
    for cp in active {
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
    }
}

impl Prepared {
    /// The command sender of every active charging point (for the shell).
    pub fn commands(&self) -> BTreeMap<ChargePointId, mpsc::Sender<ChargerCommand>> {
        self.commands.clone()
    }

    /// Starts one task per charging point, reporting to `events`.
    pub fn start(self, events: &mpsc::Sender<Event>) -> Fleet {
        let mut tasks = Vec::new();
        for (cp, driver, rx, meter) in self.points {
            let events = events.clone();
            let timing = self.timing;
            tasks.push(match driver {
                Ok(driver) => tokio::spawn(run_with_meter(cp, driver, meter, rx, events, timing)),
                Err(e) => tokio::spawn(no_driver(cp, e, rx, events, timing)),
            });
        }
        Fleet {
            tasks,
            _line: self.line,
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

/// The last command of each kind, replayed after a recovery.
#[derive(Debug, Default)]
struct Desired {
    failsafe: Option<ChargerCommand>,
    start_stop: Option<ChargerCommand>,
    current: Option<ChargerCommand>,
}

impl Desired {
    fn remember(&mut self, command: ChargerCommand) {
        match command {
            ChargerCommand::Failsafe { .. } => self.failsafe = Some(command),
            ChargerCommand::StartStop(_) => self.start_stop = Some(command),
            ChargerCommand::SetCurrent(_) => self.current = Some(command),
            ChargerCommand::Unlock => {}
        }
    }

    fn all(&self) -> impl Iterator<Item = ChargerCommand> + '_ {
        [self.failsafe, self.start_stop, self.current]
            .into_iter()
            .flatten()
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

/// Whether an error means the charging point must be identified again.
fn lost(e: &DriverError) -> bool {
    matches!(
        e,
        DriverError::NotReachable(_) | DriverError::WrongCharger(_)
    )
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

/// One charging point's task. A retrofit meter is read after every successful poll; its
/// values replace the charging point's own, and its health goes to the core as
/// [`Event::MeterStatus`].
pub async fn run_with_meter(
    cp: ChargePointId,
    mut driver: AnyDriver,
    mut meter: Option<AnyMeter>,
    mut rx: mpsc::Receiver<ChargerCommand>,
    events: mpsc::Sender<Event>,
    timing: TaskTiming,
) {
    let n = cp.number();
    let mut desired = Desired::default();
    let mut backoff = timing.backoff_min;
    let mut open = true;
    'outer: loop {
        // Identify, retrying with back-off; commands meanwhile are kept for later.
        let mut unreported: Vec<ChargerCommand> = Vec::new();
        loop {
            match driver.identify().await {
                Ok(identity) => {
                    info!(cp = n, ?identity, "charging point identified");
                    if events
                        .send(Event::ChargerIdentified { cp, identity })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    backoff = timing.backoff_min;
                    break;
                }
                Err(error) => {
                    debug!(cp = n, "identify: {error}");
                    if events
                        .send(Event::ChargerFailed { cp, error })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let until = Instant::now() + backoff;
                    backoff = (backoff * 2).min(timing.backoff_max);
                    loop {
                        tokio::select! {
                            cmd = next_command(&mut rx, &mut open) => match cmd {
                                ChargerCommand::Unlock => {
                                    let error = DriverError::NotReachable("charging point not identified".into());
                                    if events.send(Event::ChargerFailed { cp, error }).await.is_err() {
                                        return;
                                    }
                                }
                                c => {
                                    desired.remember(c);
                                    unreported.push(c);
                                }
                            },
                            () = tokio::time::sleep_until(until) => break,
                        }
                    }
                }
            }
        }
        // Bring the box to what the core asked for (it may have rebooted).
        for command in desired.all().collect::<Vec<_>>() {
            match driver.command(command).await {
                Ok(outcome) => {
                    if unreported.contains(&command) {
                        if events
                            .send(Event::ChargerCommandDone {
                                cp,
                                command,
                                outcome,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    } else if outcome != CommandOutcome::Done {
                        warn!(cp = n, ?command, ?outcome, "replayed command refused");
                    }
                }
                Err(error) => {
                    let relost = lost(&error);
                    if events
                        .send(Event::ChargerFailed { cp, error })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if relost {
                        continue 'outer;
                    }
                }
            }
        }
        let mut poll = tokio::time::interval(timing.poll);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut identify = tokio::time::interval_at(
            Instant::now() + timing.identify_every,
            timing.identify_every,
        );
        let mut heartbeat_at = driver.heartbeat_interval().map(|d| Instant::now() + d);
        let mut failures = 0u32;
        loop {
            let hb = async {
                match heartbeat_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let result: Result<Option<Event>, DriverError> = tokio::select! {
                biased;
                command = next_command(&mut rx, &mut open) => {
                    desired.remember(command);
                    driver.command(command).await.map(|outcome| {
                        Some(Event::ChargerCommandDone { cp, command, outcome })
                    })
                }
                () = hb => {
                    let r = driver.heartbeat().await.map(|()| None);
                    heartbeat_at = driver.heartbeat_interval().map(|d| Instant::now() + d);
                    r
                }
                _ = identify.tick() => driver
                    .identify()
                    .await
                    .map(|identity| Some(Event::ChargerIdentified { cp, identity })),
                _ = poll.tick() => match driver.poll().await {
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
                        Ok(Some(Event::ChargerPolled { cp, status }))
                    }
                    Err(e) => Err(e),
                },
            };
            // A failsafe command may have switched the heartbeat on.
            if heartbeat_at.is_none() {
                heartbeat_at = driver.heartbeat_interval().map(|d| Instant::now() + d);
            }
            match result {
                Ok(None) => {}
                Ok(Some(event)) => {
                    if matches!(event, Event::ChargerPolled { .. }) {
                        failures = 0;
                    }
                    if events.send(event).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    failures += 1;
                    let relost = lost(&error) || failures >= 3;
                    debug!(cp = n, failures, "{error}");
                    if events
                        .send(Event::ChargerFailed { cp, error })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if relost {
                        // Wait before identifying again; the next identify reports recovery.
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(timing.backoff_max);
                        continue 'outer;
                    }
                }
            }
        }
    }
}
