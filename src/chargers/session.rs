//! The protocol of talking to one charging point, as a sans-IO state machine: identify it
//! (at start and after every loss, with exponential back-off), bring it back to what was last
//! commanded (it may have rebooted), then poll it, re-read its identity now and then, keep the
//! model's heartbeat alive and carry out commands — commands first. Three failed operations in
//! a row, or one that says the box is gone or another one, mean identifying again.
//!
//! The machine never touches the driver or a clock: the charger task asks [`Session::next_op`]
//! what to do at `now`, performs it on the driver and hands the result back with
//! [`Session::done`]; the machine answers with [`Report`]s for the rest of the gateway. When
//! there is nothing to do, the task waits until [`Session::poll_timeout`] or the next command
//! ([`Session::command`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, DriverError};

/// Timing of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// State and currents.
    pub poll: Duration,
    /// Identity (serial, firmware) re-read.
    pub identify_every: Duration,
    /// First retry delay after a failure.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

/// Failed operations in a row after which the box is identified again.
pub const FAILURES_BEFORE_REIDENTIFY: u32 = 3;

/// What the charger task must do with the driver now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read the identity.
    Identify,
    /// Send a command the box must have again after a recovery.
    Replay(ChargerCommand),
    /// Carry out a command from the core.
    Command(ChargerCommand),
    /// Keep the model's heartbeat alive.
    Heartbeat,
    /// Read state and currents (and then the retrofit meter, if any).
    Poll,
}

/// The result of an [`Op`].
#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    /// [`Op::Identify`] succeeded.
    Identified(ChargerIdentity),
    /// [`Op::Replay`] or [`Op::Command`] was answered.
    Commanded(CommandOutcome),
    /// [`Op::Heartbeat`] succeeded.
    Beat,
    /// [`Op::Poll`] succeeded.
    Polled(ChargerStatus),
    /// The operation failed.
    Failed(DriverError),
}

/// What the session tells the rest of the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The box was identified (again).
    Identified(ChargerIdentity),
    /// A poll succeeded.
    Polled(ChargerStatus),
    /// An operation failed.
    Failed(DriverError),
    /// A command from the core was carried out (or refused by the box).
    CommandDone {
        /// The command.
        command: ChargerCommand,
        /// What the box did with it.
        outcome: CommandOutcome,
    },
}

/// The last command of each kind, replayed after a recovery.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Desired {
    failsafe: Option<ChargerCommand>,
    start_stop: Option<ChargerCommand>,
    phases: Option<ChargerCommand>,
    current: Option<ChargerCommand>,
}

impl Desired {
    fn remember(&mut self, command: ChargerCommand) {
        match command {
            ChargerCommand::Failsafe { .. } => self.failsafe = Some(command),
            ChargerCommand::StartStop(_) => self.start_stop = Some(command),
            ChargerCommand::SetCurrent(_) => self.current = Some(command),
            // A box that rebooted may be back on its default phases; the drivers write
            // nothing when it already switches what was asked.
            ChargerCommand::SetPhases(_) => self.phases = Some(command),
            ChargerCommand::Unlock => {}
        }
    }

    fn all(&self) -> VecDeque<ChargerCommand> {
        [self.failsafe, self.start_stop, self.phases, self.current]
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Where the session stands.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Not identified; the next attempt at `at`. Commands meanwhile are kept (`unreported`:
    /// the core has not heard of them yet).
    Identifying {
        at: Instant,
        unreported: Vec<ChargerCommand>,
    },
    /// Identified; replaying `queue` before normal operation.
    Replaying {
        queue: VecDeque<ChargerCommand>,
        unreported: Vec<ChargerCommand>,
    },
    /// Normal operation.
    Running {
        next_poll: Instant,
        next_identify: Instant,
        heartbeat_at: Option<Instant>,
        failures: u32,
    },
}

/// One charging point's session.
#[derive(Debug, Clone)]
pub struct Session {
    timing: Timing,
    phase: Phase,
    backoff: Duration,
    desired: Desired,
    /// Commands from the core not yet carried out (normal operation), oldest first.
    pending: VecDeque<ChargerCommand>,
    /// The operation handed out and not yet done.
    in_flight: Option<Op>,
    /// The charging point's number, for logs.
    number: u8,
}

impl Session {
    /// A session for charging point `number` that identifies the box first, at `now`.
    pub fn new(number: u8, timing: Timing, now: Instant) -> Self {
        Self {
            timing,
            phase: Phase::Identifying {
                at: now,
                unreported: Vec::new(),
            },
            backoff: timing.backoff_min,
            desired: Desired::default(),
            pending: VecDeque::new(),
            in_flight: None,
            number,
        }
    }

    /// Whether the box is identified and in normal operation.
    pub fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Running { .. })
    }

    /// A command from the core arrived.
    pub fn command(&mut self, command: ChargerCommand) -> Vec<Report> {
        match &mut self.phase {
            Phase::Identifying { unreported, .. } => {
                if command == ChargerCommand::Unlock {
                    // Unlocking a cable is not replayed later: refuse it now.
                    return vec![Report::Failed(DriverError::NotReachable(
                        "charging point not identified".into(),
                    ))];
                }
                self.desired.remember(command);
                unreported.push(command);
            }
            Phase::Replaying { .. } | Phase::Running { .. } => self.pending.push_back(command),
        }
        Vec::new()
    }

    /// What to do at `now`, if anything. An operation handed out must be finished with
    /// [`Session::done`] before the next one is asked for.
    pub fn next_op(&mut self, now: Instant) -> Option<Op> {
        if self.in_flight.is_some() {
            return None;
        }
        let op = match &mut self.phase {
            Phase::Identifying { at, .. } => (now >= *at).then_some(Op::Identify),
            Phase::Replaying { queue, .. } => queue.front().copied().map(Op::Replay),
            Phase::Running {
                next_poll,
                next_identify,
                heartbeat_at,
                ..
            } => {
                if let Some(command) = self.pending.pop_front() {
                    self.desired.remember(command);
                    Some(Op::Command(command))
                } else if heartbeat_at.is_some_and(|at| now >= at) {
                    Some(Op::Heartbeat)
                } else if now >= *next_identify {
                    *next_identify += self.timing.identify_every;
                    Some(Op::Identify)
                } else if now >= *next_poll {
                    // As a tokio interval that delays missed ticks: the next poll is one
                    // period after this one started.
                    *next_poll = now + self.timing.poll;
                    Some(Op::Poll)
                } else {
                    None
                }
            }
        };
        self.in_flight = op;
        op
    }

    /// The result of the operation handed out last, at `now`; `heartbeat` is the driver's
    /// heartbeat interval after it (a failsafe command may switch the heartbeat on).
    pub fn done(
        &mut self,
        result: OpResult,
        heartbeat: Option<Duration>,
        now: Instant,
    ) -> Vec<Report> {
        let Some(op) = self.in_flight.take() else {
            return Vec::new();
        };
        let n = self.number;
        let mut reports = Vec::new();
        match (&mut self.phase, op) {
            (Phase::Identifying { unreported, .. }, Op::Identify) => match result {
                OpResult::Identified(identity) => {
                    info!(cp = n, ?identity, "charging point identified");
                    reports.push(Report::Identified(identity));
                    self.backoff = self.timing.backoff_min;
                    self.phase = Phase::Replaying {
                        queue: self.desired.all(),
                        unreported: std::mem::take(unreported),
                    };
                    self.enter_running_if_replayed(heartbeat, now);
                }
                OpResult::Failed(error) => {
                    debug!(cp = n, "identify: {error}");
                    reports.push(Report::Failed(error));
                    let at = now + self.backoff;
                    self.phase = Phase::Identifying {
                        at,
                        unreported: std::mem::take(unreported),
                    };
                    self.backoff = (self.backoff * 2).min(self.timing.backoff_max);
                }
                other => warn!(cp = n, ?other, "unexpected result of identify"),
            },
            (Phase::Replaying { queue, unreported }, Op::Replay(command)) => {
                queue.pop_front();
                match result {
                    OpResult::Commanded(outcome) => {
                        if unreported.contains(&command) {
                            reports.push(Report::CommandDone { command, outcome });
                        } else if outcome != CommandOutcome::Done {
                            warn!(cp = n, ?command, ?outcome, "replayed command refused");
                        }
                        self.enter_running_if_replayed(heartbeat, now);
                    }
                    OpResult::Failed(error) => {
                        let lost = is_lost(&error);
                        reports.push(Report::Failed(error));
                        if lost {
                            self.phase = Phase::Identifying {
                                at: now,
                                unreported: Vec::new(),
                            };
                        } else {
                            self.enter_running_if_replayed(heartbeat, now);
                        }
                    }
                    other => warn!(cp = n, ?other, "unexpected result of a replay"),
                }
            }
            (Phase::Running { .. }, op) => {
                self.running_done(op, result, heartbeat, now, &mut reports);
            }
            (_, op) => warn!(
                cp = n,
                ?op,
                "result of an operation from another phase ignored"
            ),
        }
        reports
    }

    /// When the task must wake up at the latest to do the next operation (`None`: only a
    /// command wakes it).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        match &self.phase {
            Phase::Identifying { at, .. } => Some(*at),
            Phase::Replaying { .. } => None,
            Phase::Running {
                next_poll,
                next_identify,
                heartbeat_at,
                ..
            } => {
                let soonest = (*next_poll).min(*next_identify);
                Some(heartbeat_at.map_or(soonest, |h| h.min(soonest)))
            }
        }
    }

    fn enter_running_if_replayed(&mut self, heartbeat: Option<Duration>, now: Instant) {
        if let Phase::Replaying { queue, .. } = &self.phase {
            if queue.is_empty() {
                self.phase = Phase::Running {
                    next_poll: now,
                    next_identify: now + self.timing.identify_every,
                    heartbeat_at: heartbeat.map(|d| now + d),
                    failures: 0,
                };
            }
        }
    }

    fn running_done(
        &mut self,
        op: Op,
        result: OpResult,
        heartbeat: Option<Duration>,
        now: Instant,
        reports: &mut Vec<Report>,
    ) {
        let Phase::Running {
            heartbeat_at,
            failures,
            ..
        } = &mut self.phase
        else {
            return;
        };
        if op == Op::Heartbeat {
            *heartbeat_at = heartbeat.map(|d| now + d);
        } else if heartbeat_at.is_none() {
            // A failsafe command may have switched the heartbeat on.
            *heartbeat_at = heartbeat.map(|d| now + d);
        }
        match result {
            OpResult::Failed(error) => {
                *failures += 1;
                let relost = is_lost(&error) || *failures >= FAILURES_BEFORE_REIDENTIFY;
                debug!(cp = self.number, failures = *failures, "{error}");
                reports.push(Report::Failed(error));
                if relost {
                    // Wait before identifying again; the next identify reports recovery.
                    self.phase = Phase::Identifying {
                        at: now + self.backoff,
                        unreported: Vec::new(),
                    };
                    self.backoff = (self.backoff * 2).min(self.timing.backoff_max);
                    // Commands not yet carried out wait for the recovery, like those that
                    // arrive meanwhile.
                    let waiting: Vec<ChargerCommand> = self.pending.drain(..).collect();
                    for command in waiting {
                        let _ = self.command(command);
                    }
                }
            }
            OpResult::Polled(status) => {
                *failures = 0;
                reports.push(Report::Polled(status));
            }
            OpResult::Identified(identity) => reports.push(Report::Identified(identity)),
            OpResult::Commanded(outcome) => {
                if let Op::Command(command) = op {
                    reports.push(Report::CommandDone { command, outcome });
                }
            }
            OpResult::Beat => {}
        }
    }
}

/// Whether an error means the charging point must be identified again.
pub fn is_lost(e: &DriverError) -> bool {
    matches!(
        e,
        DriverError::NotReachable(_) | DriverError::WrongCharger(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Current;

    const T: Timing = Timing {
        poll: Duration::from_secs(1),
        identify_every: Duration::from_secs(600),
        backoff_min: Duration::from_secs(1),
        backoff_max: Duration::from_secs(30),
    };

    fn id() -> ChargerIdentity {
        ChargerIdentity::default()
    }

    fn gone() -> DriverError {
        DriverError::NotReachable("timeout".into())
    }

    fn set(a: i32) -> ChargerCommand {
        ChargerCommand::SetCurrent(Current::from_amps(a))
    }

    fn s(secs: u64, t0: Instant) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    /// Runs the session with `answer` deciding each operation's result, from `t0` for `span`,
    /// waking at every `poll_timeout`; returns the operations with their instants and reports.
    fn drive(
        session: &mut Session,
        t0: Instant,
        span: Duration,
        mut answer: impl FnMut(Op, Instant) -> OpResult,
    ) -> (Vec<(Duration, Op)>, Vec<Report>) {
        let mut now = t0;
        let mut ops = Vec::new();
        let mut reports = Vec::new();
        while now <= t0 + span {
            if let Some(op) = session.next_op(now) {
                ops.push((now - t0, op));
                let result = answer(op, now);
                reports.extend(session.done(result, None, now));
                continue;
            }
            match session.poll_timeout() {
                Some(at) if at > now => now = at,
                Some(_) => {}
                None => break,
            }
        }
        (ops, reports)
    }

    #[test]
    fn identify_retries_with_doubling_back_off_up_to_the_maximum() {
        let t0 = Instant::now();
        let mut session = Session::new(1, T, t0);
        let (ops, reports) = drive(&mut session, t0, Duration::from_secs(100), |_, _| {
            OpResult::Failed(gone())
        });
        let at: Vec<u64> = ops.iter().map(|(d, _)| d.as_secs()).collect();
        // 0, +1, +2, +4, +8, +16, +30, +30 …
        assert_eq!(&at[..8], &[0, 1, 3, 7, 15, 31, 61, 91]);
        assert!(ops.iter().all(|(_, op)| *op == Op::Identify));
        assert_eq!(reports.len(), ops.len(), "every failure is reported");
        assert!(!session.is_running());
    }

    #[test]
    fn identified_box_is_polled_every_period_and_identified_again_every_ten_minutes() {
        let t0 = Instant::now();
        let mut session = Session::new(1, T, t0);
        let (ops, reports) = drive(
            &mut session,
            t0,
            Duration::from_secs(1200),
            |op, _| match op {
                Op::Identify => OpResult::Identified(id()),
                Op::Poll => OpResult::Polled(ChargerStatus::default()),
                _ => OpResult::Beat,
            },
        );
        let identifies: Vec<u64> = ops
            .iter()
            .filter(|(_, op)| *op == Op::Identify)
            .map(|(d, _)| d.as_secs())
            .collect();
        assert_eq!(identifies, [0, 600, 1200]);
        let polls = ops.iter().filter(|(_, op)| *op == Op::Poll).count();
        assert_eq!(polls, 1201, "one poll a second, 0 s to 1200 s");
        assert!(reports.iter().any(|r| matches!(r, Report::Polled(_))));
        assert!(session.is_running());
    }

    #[test]
    fn three_failed_polls_in_a_row_mean_identifying_again_after_the_back_off() {
        let t0 = Instant::now();
        let mut session = Session::new(1, T, t0);
        let mut polls = 0;
        let (ops, _) = drive(
            &mut session,
            t0,
            Duration::from_secs(10),
            |op, _| match op {
                Op::Identify => OpResult::Identified(id()),
                Op::Poll => {
                    polls += 1;
                    // Exceptions (the box answers, wrongly): not lost by themselves.
                    if polls <= 2 || (4..=6).contains(&polls) {
                        OpResult::Failed(DriverError::Comm("exception 2".into()))
                    } else {
                        OpResult::Polled(ChargerStatus::default())
                    }
                }
                _ => OpResult::Beat,
            },
        );
        let seq: Vec<(u64, Op)> = ops.iter().map(|(d, op)| (d.as_secs(), *op)).collect();
        // Two failures, a success (counter reset), three failures → identify after 1 s.
        assert_eq!(
            &seq[..9],
            &[
                (0, Op::Identify),
                (0, Op::Poll),
                (1, Op::Poll),
                (2, Op::Poll),
                (3, Op::Poll),
                (4, Op::Poll),
                (5, Op::Poll),
                (6, Op::Identify),
                (6, Op::Poll),
            ]
        );
    }

    #[test]
    fn a_lost_box_is_identified_again_at_once_after_the_back_off_not_after_three_failures() {
        let t0 = Instant::now();
        let mut session = Session::new(1, T, t0);
        let mut polls = 0;
        let (ops, reports) = drive(&mut session, t0, Duration::from_secs(4), |op, _| match op {
            Op::Identify => OpResult::Identified(id()),
            Op::Poll => {
                polls += 1;
                if polls == 2 {
                    OpResult::Failed(gone())
                } else {
                    OpResult::Polled(ChargerStatus::default())
                }
            }
            _ => OpResult::Beat,
        });
        let seq: Vec<(u64, Op)> = ops.iter().map(|(d, op)| (d.as_secs(), *op)).collect();
        assert_eq!(
            &seq[..5],
            &[
                (0, Op::Identify),
                (0, Op::Poll),
                (1, Op::Poll),
                (2, Op::Identify),
                (2, Op::Poll)
            ]
        );
        assert_eq!(
            reports
                .iter()
                .filter(|r| matches!(r, Report::Identified(_)))
                .count(),
            2
        );
    }

    #[test]
    fn after_a_recovery_the_last_commands_are_replayed_and_the_unheard_ones_reported() {
        let t0 = Instant::now();
        let mut session = Session::new(1, T, t0);
        // Running, with a failsafe and a setpoint carried out.
        assert_eq!(session.next_op(t0), Some(Op::Identify));
        session.done(OpResult::Identified(id()), None, t0);
        let failsafe = ChargerCommand::Failsafe {
            current: Current::from_amps(6),
            timeout: Duration::from_secs(60),
        };
        session.command(failsafe);
        session.command(set(16));
        for _ in 0..2 {
            let op = session.next_op(t0).unwrap();
            assert!(matches!(op, Op::Command(_)));
            session.done(OpResult::Commanded(CommandOutcome::Done), None, t0);
        }
        // The box goes away; while it is away the core stops charging and lowers the setpoint.
        assert_eq!(session.next_op(t0), Some(Op::Poll));
        session.done(OpResult::Failed(gone()), None, t0);
        assert!(!session.is_running());
        assert!(session.command(ChargerCommand::StartStop(false)).is_empty());
        assert!(session.command(set(10)).is_empty());
        // An unlock cannot wait: refused at once.
        assert!(matches!(
            session.command(ChargerCommand::Unlock).as_slice(),
            [Report::Failed(DriverError::NotReachable(_))]
        ));
        assert_eq!(session.next_op(t0), None, "back-off first");
        let t1 = s(1, t0);
        assert_eq!(session.poll_timeout(), Some(t1));
        assert_eq!(session.next_op(t1), Some(Op::Identify));
        session.done(OpResult::Identified(id()), None, t1);
        let mut replayed = Vec::new();
        let mut reported = Vec::new();
        while let Some(Op::Replay(c)) = session.next_op(t1) {
            replayed.push(c);
            reported.extend(session.done(OpResult::Commanded(CommandOutcome::Done), None, t1));
        }
        assert_eq!(
            replayed,
            [failsafe, ChargerCommand::StartStop(false), set(10)],
            "failsafe, start/stop, setpoint: the newest of each"
        );
        assert_eq!(
            reported,
            [
                Report::CommandDone {
                    command: ChargerCommand::StartStop(false),
                    outcome: CommandOutcome::Done
                },
                Report::CommandDone {
                    command: set(10),
                    outcome: CommandOutcome::Done
                },
            ],
            "the core hears of the commands it sent while the box was away, not of the old ones"
        );
        assert!(session.is_running());
    }

    #[test]
    fn commands_go_before_a_due_poll_and_the_heartbeat_follows_the_driver() {
        let t0 = Instant::now();
        let mut session = Session::new(1, T, t0);
        session.next_op(t0);
        session.done(OpResult::Identified(id()), None, t0);
        session.command(set(8));
        assert_eq!(session.next_op(t0), Some(Op::Command(set(8))));
        // The command switched the model's heartbeat on (every 5 s).
        session.done(
            OpResult::Commanded(CommandOutcome::Done),
            Some(Duration::from_secs(5)),
            t0,
        );
        assert_eq!(session.next_op(t0), Some(Op::Poll));
        session.done(
            OpResult::Polled(ChargerStatus::default()),
            Some(Duration::from_secs(5)),
            t0,
        );
        let (ops, _) = drive(
            &mut session,
            t0,
            Duration::from_secs(11),
            |op, _| match op {
                Op::Poll => OpResult::Polled(ChargerStatus::default()),
                _ => OpResult::Beat,
            },
        );
        let beats: Vec<u64> = ops
            .iter()
            .filter(|(_, op)| *op == Op::Heartbeat)
            .map(|(d, _)| d.as_secs())
            .collect();
        // drive() hands `None` as the interval after each op: the heartbeat stops after one.
        assert_eq!(beats, [5]);
    }

    #[test]
    fn a_replay_that_finds_the_box_gone_again_identifies_again_at_once() {
        let t0 = Instant::now();
        let mut session = Session::new(1, T, t0);
        session.command(set(12));
        assert_eq!(session.next_op(t0), Some(Op::Identify));
        session.done(OpResult::Identified(id()), None, t0);
        assert_eq!(session.next_op(t0), Some(Op::Replay(set(12))));
        let reports = session.done(OpResult::Failed(gone()), None, t0);
        assert!(matches!(reports.as_slice(), [Report::Failed(_)]));
        assert_eq!(session.next_op(t0), Some(Op::Identify));
    }

    #[test]
    fn a_phase_switch_is_carried_out_reported_and_replayed_before_the_setpoint() {
        use crate::units::PhaseCount;
        let one = ChargerCommand::SetPhases(PhaseCount::One);
        let t0 = Instant::now();
        let mut session = Session::new(1, T, t0);
        session.next_op(t0);
        session.done(OpResult::Identified(id()), None, t0);
        session.command(one);
        session.command(set(8));
        assert_eq!(session.next_op(t0), Some(Op::Command(one)));
        let refused = CommandOutcome::NotPossible("no S10".into());
        assert_eq!(
            session.done(OpResult::Commanded(refused.clone()), None, t0),
            [Report::CommandDone {
                command: one,
                outcome: refused
            }]
        );
        assert_eq!(session.next_op(t0), Some(Op::Command(set(8))));
        session.done(OpResult::Commanded(CommandOutcome::Done), None, t0);
        // The box reboots: phases before the setpoint, so that the car restarts once.
        assert_eq!(session.next_op(t0), Some(Op::Poll));
        session.done(OpResult::Failed(gone()), None, t0);
        let t1 = s(1, t0);
        assert_eq!(session.next_op(t1), Some(Op::Identify));
        session.done(OpResult::Identified(id()), None, t1);
        let mut replayed = Vec::new();
        while let Some(Op::Replay(c)) = session.next_op(t1) {
            replayed.push(c);
            session.done(OpResult::Commanded(CommandOutcome::Done), None, t1);
        }
        assert_eq!(replayed, [one, set(8)]);
    }

    #[test]
    fn results_without_an_operation_are_ignored() {
        let t0 = Instant::now();
        let mut session = Session::new(1, T, t0);
        assert!(session.done(OpResult::Beat, None, t0).is_empty());
        assert_eq!(session.next_op(t0), Some(Op::Identify));
        assert_eq!(session.next_op(t0), None, "one operation at a time");
        assert_eq!(session.poll_timeout(), None);
    }
}
