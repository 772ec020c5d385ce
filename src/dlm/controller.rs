//! The DLM controller: a sans-IO state machine that turns smart-meter values, the charging
//! points' polls and timers into a current per charging point, with the reason for each and
//! the device faults of the DLM (SmartMeterTOut, OverCurrent, DLM InvCurrent).
//!
//! It owns meter supervision, emergency mode, high-power devices, the other-load estimate,
//! the allocation (through [`crate::dlm::allocate()`] and the limits after it), ramps,
//! minimum on/off times, break before make and queue rotation. It knows no group-object
//! numbers, no configuration file and no charger driver: the core gives it [`Settings`]
//! once, an [`Env`] (what each charging point reported, what the core decided outside the
//! DLM) with every call, and carries out what it returns.
//!
//! Calling protocol: [`Controller::handle`] with each [`Input`] at its instant `now`; after
//! each call, [`Controller::poll_timeout`] says when to send [`Input::Tick`] next. The same
//! inputs at the same instants always give the same decisions.
//!
//! Rules:
//! * Budget per phase = overcurrent protection − load reserve. Other load = meter − what
//!   the charging points drew at the reading's moment, at least 0; that draw is estimated
//!   never too high (see `Controller::estimate_other` and `docs/dlm.md`), so a lagging
//!   measurement never frees budget. Available = budget − other load.
//!   [`crate::dlm::allocate()`] shares it among the charging points with a vehicle
//!   connected. A charging point without a vehicle gets 0 A, and gets its minimum on the
//!   next cycle after a vehicle arrives.
//! * Every supervised meter source must deliver on its own within interval + tolerance: with
//!   monitoring "values" each phase value of the meter (L1; L1, L2, L3 with a 3-phase
//!   meter), with "values and In operation" the trigger (values then come only on change;
//!   they never stand in for a missing trigger). A silent one → SmartMeterTOut (90) and
//!   emergency mode: every charging point reduced to its minimum until values return. The
//!   same holds before the first value arrives and while DLMAssociation (120) is present.
//! * A high-power device reporting 1 → every charging point reduced to its minimum at once;
//!   the waiting time restarts with every report; afterwards normal allocation.
//! * "Reduced to the minimum" only lowers: a charging point at 0 A (no vehicle, waiting in
//!   the queue, interrupted by OverCurrent) stays at 0 A, and OverCurrent stays until the
//!   normal allocation finds that the minimums fit. Only at start-up, before the DLM's first
//!   decision, does every charging point get its minimum.
//! * Minimums not fitting → OverCurrent (80): all interrupted (spec), or, as a parameter,
//!   a queue that rotates every rotation interval, but never before every charging point
//!   with a vehicle has kept its last switch (on or off) for the minimum on/off time.
//! * Reductions apply at once. Increases ramp at the configured rate, starting from the
//!   minimum. A vehicle is switched on no sooner than the minimum on/off time after it was
//!   switched off (safety reductions are never delayed). Break before make: after a vehicle
//!   is given less, the others on its phases are not raised until a poll shows it at its
//!   new current, 5 s at most (IEC 61851-1).
//! * A charging point with invalid currents (DLM InvCurrent) is excluded and gets 0 A;
//!   the device fault DLM InvCurrent (70) shows while any charging point has it.
//! * Every cycle records why each charging point gets its current ([`Limit`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::phases::{self, Fit, PhaseSettings, PointPhases};
use super::vehicle::{self, VehicleModel};
use super::{Demand, Limit, Limits, Mode, Shortage, allocate};
use crate::faults::{Fault, FaultCode};
use crate::units::{ChargePointId, Current, PerPhase, Phase, PhaseCount};

/// How often increases are re-evaluated while ramping (the step follows the elapsed time).
const RAMP_STEP: Duration = Duration::from_millis(250);

/// The least reduction that holds raises nearby for the lowered vehicle's reaction time
/// (break before make). The
/// other-load estimate moves by a few hundred milliamperes from reading to reading; when
/// every such wobble held the raises of all charging points on the same phases, a point
/// waiting below its share could wait for tens of seconds (the reaction bench saw 20 s and
/// more). A smaller reduction in flight overlaps a raise by less than this for at most the
/// reaction time, well inside the load reserve and the fuse's tolerance.
const MAKE_AFTER_BREAK_STEP: Current = Current::from_milliamps(1_000);

/// How long a lowered vehicle holds the raises of others on its phases (break before make)
/// at most: IEC 61851-1 gives an EV 5 s to follow a new PWM duty cycle. A poll that shows it
/// at its new current ends the hold earlier.
const FOLLOW_MAX: Duration = Duration::from_secs(5);

/// How far back a meter value may have been measured before it arrived (its latency).
const LATE: Duration = Duration::from_secs(1);

/// How long polls are kept for the other-load estimate.
const POLL_HISTORY: Duration = Duration::from_secs(10);

/// No raise of a charging point within this time after its level was reduced (no reversal;
/// reductions are never held). Off for now: with 60 s a ramp's last step, which the
/// conservative estimate can take for house load, held the point 1 A below its share for
/// good (`a_ramp_followed_at_once_is_not_taken_for_house_load_with_a_fast_meter`).
const REVERSAL: Duration = Duration::ZERO;

/// Polls around a reading that differ by more than this leave the estimate inexact.
const EXACT: Current = Current::from_milliamps(500);

/// The dead band: a raise smaller than this is not made.
const BAND: Current = Current::from_milliamps(1_000);

/// Raises are granted on the highest other load of the last `HOLD` (within [`NOISE`] of the
/// latest), so that meter noise does not move setpoints up and down.
const HOLD: Duration = Duration::from_secs(60);

/// Other-load values more than this above the latest are a real drop of the house load, not
/// noise: they do not hold raises back.
const NOISE: Current = Current::from_milliamps(4_000);

/// How long after a meter value polls may refine the other-load estimate; a shortage seen in
/// this window is tentative (charging points are held at their minimum, not interrupted).
const REFINE: Duration = Duration::from_secs(3);

/// A shortage of minimum currents that the measured charging load does not confirm (the
/// polls around the reading show the cars drawing more than they were told: a box that
/// resumes at its own stored current, a car that starts before its setpoint arrives) holds
/// the charging points at their minimum for at most this long before they queue or are
/// interrupted.
const CONFIRM: Duration = Duration::from_secs(10);

/// Meter values closer together than this belong to one reading (a KNX meter sends its
/// phases as separate telegrams, milliseconds apart).
const BURST: Duration = Duration::from_millis(500);

/// Current above which a charging-point phase counts as used by the vehicle.
const PHASE_DETECTION: Current = Current::from_milliamps(1_000);

/// A vehicle that draws at least this much less than it was told (on its most loaded phase),
/// with time to follow, draws less than it may ([`Limit::VehicleDrawsLess`]).
const DRAWS_LESS: Current = Current::from_milliamps(1_000);

/// How the smart meter is supervised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervision {
    /// Every phase value must arrive within interval + tolerance.
    Values,
    /// The "In operation" trigger must arrive within interval + tolerance (values come on
    /// change only).
    Trigger,
}

/// What the smart meter sends and how it is supervised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterSettings {
    /// A 3-phase meter (one value per phase); otherwise one value counts on every phase.
    pub three_phase: bool,
    /// How it is supervised.
    pub supervision: Supervision,
    /// Its sending interval.
    pub interval: Duration,
    /// Grace time on top of the interval.
    pub tolerance: Duration,
    /// How the fault message names a silent source: L1, L2, L3 values, then the trigger.
    pub names: [String; 4],
}

/// One charging point as the DLM sees its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointSettings {
    /// Configured and enabled (only active points are allocated).
    pub active: bool,
    /// Minimum current (below it the vehicle cannot charge).
    pub min: Current,
    /// Maximum current.
    pub max: Current,
    /// Connected with three phases (else one).
    pub three_phase: bool,
    /// The grid phase of each of the charging point's phases 1, 2, 3.
    pub rotation: [Phase; 3],
    /// It may switch between one and three phases (its model has the capability and the
    /// configuration allows it); used only for a point wired with three phases.
    pub phase_switch: bool,
}

impl PointSettings {
    /// Maps values per charging-point phase onto grid phases.
    pub fn to_grid(&self, cp_phases: PerPhase<Current>) -> PerPhase<Current> {
        let mut grid = PerPhase::splat(Current::ZERO);
        for (value, phase) in cp_phases.0.into_iter().zip(self.rotation) {
            grid.set(phase, value);
        }
        grid
    }

    /// The grid phases the charging point is wired to.
    pub fn grid_phases(&self) -> Vec<Phase> {
        if self.three_phase {
            Phase::ALL.to_vec()
        } else {
            let [first, _, _] = self.rotation;
            vec![first]
        }
    }

    /// `current` on the charging point's wired phases, mapped to grid phases.
    fn wired(&self, current: Current) -> PerPhase<Current> {
        let cp_phases = if self.three_phase {
            PerPhase::splat(current)
        } else {
            PerPhase([current, Current::ZERO, Current::ZERO])
        };
        self.to_grid(cp_phases)
    }
}

/// The DLM's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Rating of the overcurrent protection device, per phase.
    pub fuse: Current,
    /// Budget per phase: the fuse minus the load reserve.
    pub budget: Current,
    /// The smart meter.
    pub meter: MeterSettings,
    /// Waiting time after a high power-consuming device reports.
    pub high_power_wait: Duration,
    /// Unbalanced-load cap (`None` = off).
    pub unbalanced_load_limit: Option<Current>,
    /// Power cap of all charging points together during grid-supporting control, in watts.
    pub grid_control_power_w: Option<u32>,
    /// Nominal phase voltage (for the power cap).
    pub nominal_voltage: crate::units::Voltage,
    /// When the minimums do not fit.
    pub shortage: Shortage,
    /// Queue rotation interval.
    pub rotation_interval: Duration,
    /// Minimum on/off time of a vehicle.
    pub min_switch_time: Duration,
    /// Ramp-up rate per second.
    pub ramp_up_per_second: Current,
    /// Symmetric (the spec) or per-phase booking.
    pub mode: Mode,
    /// The prioritised charging point.
    pub prioritised: Option<ChargePointId>,
    /// Every configured charging point.
    pub points: BTreeMap<ChargePointId, PointSettings>,
}

/// What a charging point reported and what the core decided about it outside the DLM, as of
/// the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PointInput {
    /// It answered a poll since start-up (before that, whether a vehicle is connected is
    /// not known).
    pub known: bool,
    /// A vehicle is connected (false before the first poll).
    pub connected: bool,
    /// The vehicle charges.
    pub charging: bool,
    /// Measured currents per charging-point phase (`None`: not measured).
    pub currents: Option<PerPhase<Current>>,
    /// The current last commanded to it (`None`: not yet, or to be sent again).
    pub commanded: Option<Current>,
    /// Interrupted (object 55 in the core).
    pub interrupted: bool,
    /// Not reachable (its polls go unanswered).
    pub unreachable: bool,
    /// It reports invalid currents (DLM InvCurrent at the charging point).
    pub invalid: bool,
    /// The phases the box reports it switched to (`None`: the model does not report them).
    pub phases_switched: Option<PhaseCount>,
    /// Whether the box can switch phases now (`None`: the model does not say).
    pub phase_switch_available: Option<bool>,
}

/// The world outside the DLM at one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// Each charging point the core knows.
    pub points: BTreeMap<ChargePointId, PointInput>,
    /// Not all group objects the DLM needs are linked (DLMAssociation): emergency mode.
    pub association_missing: bool,
    /// Grid-supporting control is active, with its current cap (0 A = interrupt).
    pub grid_control: Option<Current>,
}

/// Something that happened that the DLM must react to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A smart-meter value of one grid phase (a 1-phase meter sends [`Phase::L1`]).
    Meter(Phase, Current),
    /// The meter's "In operation" trigger.
    Trigger,
    /// A high power-consuming device reports (`true` starts or restarts the wait).
    HighPower(bool),
    /// A charging point was polled (the [`Env`] already holds what it reported).
    Polled(ChargePointId),
    /// A charging point answered the `SetPhases` of a [`Decision`]: carried out (`true`) or
    /// refused (`false`).
    PhasesSet(ChargePointId, bool),
    /// Something else changed in the [`Env`], or [`Controller::poll_timeout`] was reached.
    Tick,
}

/// A device fault of the DLM that begins or ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultChange {
    /// The fault begins.
    Raise(Fault),
    /// The fault ends.
    Clear(FaultCode),
}

/// What the DLM decided in one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Device faults that begin or end.
    pub faults: Vec<FaultChange>,
    /// Current per active charging point (0 A = not charging now).
    pub targets: BTreeMap<ChargePointId, Current>,
    /// Why each gets it.
    pub limits: Limits,
    /// `ChargerCommand::SetPhases` due now, per charging point.
    pub set_phases: Vec<(ChargePointId, PhaseCount)>,
    /// What happened in phase switching since the last decision (for the core's log).
    pub phase_events: Vec<(ChargePointId, phases::Event)>,
}

/// What the DLM saw and decided in one cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Cycle {
    /// Budget per phase.
    pub budget: PerPhase<Current>,
    /// Meter reading per phase.
    pub meter: PerPhase<Current>,
    /// Available for charging per phase.
    pub available: PerPhase<Current>,
    /// Emergency mode (meter silent, association missing, no value yet).
    pub emergency: bool,
    /// High-power device wait running.
    pub high_power: bool,
}

/// Charging load per charging point, on grid phases.
type Loads = BTreeMap<ChargePointId, PerPhase<Current>>;

/// What was commanded to one charging point over a span of time (grid phases).
#[derive(Debug, Clone, Copy)]
struct Commanded {
    /// The lowest current per phase.
    min: PerPhase<Current>,
    /// The highest current per phase.
    max: PerPhase<Current>,
    /// The current changed within the span.
    changed: bool,
    /// The current was lowered within the span.
    reduced: bool,
}

/// The plans a drop is judged on (`Controller::confirm_drops`): on the measured charging
/// load, within the fuse on the latest estimate, on the mean estimate.
struct DropPlans {
    low: Plan,
    fuse: Plan,
    /// What the fuse leaves for charging on the latest estimate, per grid phase.
    fuse_room: PerPhase<Current>,
    mean: Option<Plan>,
}

/// One allocation with the caps after it.
struct Plan {
    currents: BTreeMap<ChargePointId, Current>,
    limits: Limits,
    overcurrent: bool,
}

/// The DLM controller (see the module docs).
#[derive(Debug)]
pub struct Controller {
    settings: Settings,
    /// Device faults of the DLM now present.
    faults: BTreeSet<FaultCode>,
    /// Last meter reading per grid phase (current).
    meter: PerPhase<Option<Current>>,
    /// When each supervised source (L1, L2, L3 values; trigger) last delivered.
    seen: PerPhase<Option<Instant>>,
    /// When the "In operation" trigger last arrived.
    trigger_seen: Option<Instant>,
    /// When the controller first ran (the first meter deadline runs from here).
    started: Option<Instant>,
    /// High-power device wait ends at.
    high_power_until: Option<Instant>,
    /// Current per charging point as last decided.
    targets: BTreeMap<ChargePointId, Current>,
    /// When the targets were last ramped.
    last_update: Option<Instant>,
    /// When each charging point was last switched on or off.
    switched: BTreeMap<ChargePointId, Instant>,
    /// Since when each charging point has had a current with a vehicle connected.
    charging_since: BTreeMap<ChargePointId, Instant>,
    /// The reading on which a shortage was last seen (see `shortage_since`).
    shortage_reading: Option<Instant>,
    /// The charging points that asked for current at the last cycle, and since when that
    /// set has been the same (a shortage is timed from the reading, or from a change of
    /// the set after it).
    demanding: (u8, Option<Instant>),
    /// Since when each charging point that charges has been dropped by the plan in force
    /// (see `confirm_drops`).
    drop_since: BTreeMap<ChargePointId, Instant>,
    /// The last cycle came before the meter's first value, within its interval + tolerance:
    /// a charging point not yet polled gets no target.
    awaiting_first_value: bool,
    /// Queue order (rotates).
    queue: Vec<ChargePointId>,
    /// Last queue rotation.
    rotated: Option<Instant>,
    /// Budget, load and availability of the last cycle (for the website and simulations).
    last: Option<Cycle>,
    /// Other (non-charging) load per phase, estimated when a meter value arrives and held
    /// until the next one.
    other: PerPhase<Option<Current>>,
    /// When the last meter reading began to arrive.
    meter_at: Option<Instant>,
    /// The phases whose value arrived in the last reading.
    fresh: PerPhase<bool>,
    /// Per charging point, the load its last poll before the last meter reading showed.
    polled_at_meter: Loads,
    /// Per charging point, the least of its polls after the last meter reading.
    polled_after_meter: Loads,
    /// Per charging point, the most of its polls after the last meter reading.
    polled_after_max: Loads,
    /// Per charging point, the least of its polls at the very instant the last meter reading
    /// arrived (after it): what it drew then is no more than that unless it was rising.
    polled_at_reading: Loads,
    /// The other load on the higher estimate of the charging load (see
    /// [`Self::estimate_other`]): what levels already granted are kept on.
    other_kept: PerPhase<Option<Current>>,
    /// The other load with every charging point counted at the most its polls around the
    /// last reading showed: the least the other load can be. A shortage of minimums on the
    /// cautious estimates that this one does not show is not acted on at once ([`CONFIRM`]).
    other_low: PerPhase<Option<Current>>,
    /// The other load with every charging point counted at the most it may have drawn at the
    /// last reading: its polls around it, or what it was told from its reaction time before
    /// (a car that started or resumed unseen). A shortage of minimums on this estimate is
    /// one the polls after the reading cannot lift.
    other_floor: PerPhase<Option<Current>>,
    /// The estimate of the last reading is final (REFINE has passed).
    estimate_final: bool,
    /// Every charging point's polls around the last reading agree (within [`EXACT`]): the
    /// estimate is no vehicle in transition, and the dead band may hold on to it.
    exact: bool,
    /// Per charging point, what it was commanded from a reaction time before its last poll
    /// up to the last meter reading.
    commanded_before_meter: BTreeMap<ChargePointId, Commanded>,
    /// The charging points whose vehicle drew nothing at the last meter reading though its
    /// current had stood for [`vehicle::SETTLE`] (paused itself, or full); judged when the
    /// reading arrived, before any decision on it.
    paused_at_meter: BTreeSet<ChargePointId>,
    /// When each charging point was last polled.
    last_poll: BTreeMap<ChargePointId, Instant>,
    /// When each charging point with a vehicle was last given a lower current.
    lowered_at: BTreeMap<ChargePointId, Instant>,
    /// When each charging point's current last changed from one level to another (the next
    /// raise waits for a meter reading that shows the vehicle at it).
    changed_at: BTreeMap<ChargePointId, Instant>,
    /// The charging-point phases each connected vehicle drew on when it last drew (a vehicle
    /// that waits or pauses is booked on them, not on every wired phase).
    vehicle_phases: BTreeMap<ChargePointId, [bool; 3]>,
    /// The last allocation wanted more than the ramp allowed (keep ticking).
    raw_wants_more: bool,
    /// The current shortage is still tentative (within REFINE of its first sight).
    tentative: bool,
    /// When the current shortage of minimum currents was first seen.
    shortage_since: Option<Instant>,
    /// The charging load commanded per charging point (grid phases) over the last seconds.
    commanded: VecDeque<(Instant, Loads)>,
    /// Why each charging point got its current in the last cycle.
    limits: Limits,
    /// Per charging point: its vehicle drew less than it may at its last poll.
    draws_less: [bool; ChargePointId::COUNT as usize],
    /// What was learned about the vehicle at each charging point (see [`VehicleModel`]).
    vehicles: BTreeMap<ChargePointId, VehicleModel>,
    /// Per charging point, its polled load (grid phases) over the last seconds.
    polls: BTreeMap<ChargePointId, VecDeque<(Instant, PerPhase<Current>)>>,
    /// The other-load estimate over the last [`HOLD`] (for the dead band).
    others: VecDeque<(Instant, PerPhase<Current>)>,
    /// The other-load estimate of the last cycle whose estimate the polls after its reading
    /// had refined (raises on an estimate not refined yet are granted no lower than it).
    refined_other: Option<PerPhase<Current>>,
    /// Per charging point, the level last decided before the ramp (the dead band holds it).
    levels: BTreeMap<ChargePointId, Current>,
    /// Per charging point, when its level was last reduced (no raise within [`REVERSAL`]).
    reduced_at: BTreeMap<ChargePointId, Instant>,
    /// 1-/3-phase switching of each charging point that may switch (see [`phases`]).
    phases: BTreeMap<ChargePointId, PointPhases>,
    /// Phase-switching events not yet returned in a [`Decision`].
    phase_events: Vec<(ChargePointId, phases::Event)>,
}

impl Controller {
    /// A controller with `settings`, before any input.
    pub fn new(settings: Settings) -> Self {
        let phase_settings = PhaseSettings::with_min_switch_time(settings.min_switch_time);
        let phases = settings
            .points
            .iter()
            .filter(|(_, p)| p.active && p.phase_switch && p.three_phase)
            .map(|(cp, _)| (*cp, PointPhases::new(phase_settings)))
            .collect();
        Self {
            phases,
            phase_events: Vec::new(),
            settings,
            faults: BTreeSet::new(),
            meter: PerPhase::splat(None),
            seen: PerPhase::splat(None),
            trigger_seen: None,
            started: None,
            high_power_until: None,
            targets: BTreeMap::new(),
            last_update: None,
            switched: BTreeMap::new(),
            charging_since: BTreeMap::new(),
            awaiting_first_value: true,
            drop_since: BTreeMap::new(),
            shortage_reading: None,
            demanding: (0, None),
            queue: Vec::new(),
            rotated: None,
            last: None,
            other: PerPhase::splat(None),
            meter_at: None,
            fresh: PerPhase::splat(false),
            polled_at_meter: Loads::new(),
            polled_after_meter: Loads::new(),
            polled_after_max: Loads::new(),
            polled_at_reading: Loads::new(),
            other_kept: PerPhase::splat(None),
            other_low: PerPhase::splat(None),
            other_floor: PerPhase::splat(None),
            estimate_final: true,
            exact: false,
            commanded_before_meter: BTreeMap::new(),
            paused_at_meter: BTreeSet::new(),
            last_poll: BTreeMap::new(),
            lowered_at: BTreeMap::new(),
            changed_at: BTreeMap::new(),
            vehicle_phases: BTreeMap::new(),
            raw_wants_more: false,
            tentative: false,
            shortage_since: None,
            commanded: VecDeque::new(),
            limits: Limits::default(),
            draws_less: [false; ChargePointId::COUNT as usize],
            vehicles: BTreeMap::new(),
            polls: BTreeMap::new(),
            others: VecDeque::new(),
            refined_other: None,
            levels: BTreeMap::new(),
            reduced_at: BTreeMap::new(),
        }
    }

    /// What the DLM learned about the vehicle at `cp` (`None` without a vehicle).
    pub fn vehicle(&self, cp: ChargePointId) -> Option<&VehicleModel> {
        self.vehicles.get(&cp)
    }

    /// The reaction time assumed for the vehicle at `cp`.
    fn reaction(&self, cp: ChargePointId) -> Duration {
        self.vehicles
            .get(&cp)
            .map_or(vehicle::DEFAULT_REACTION, VehicleModel::reaction)
    }

    /// The load reserve: what the fuse allows above the budget.
    fn reserve(&self) -> Current {
        self.settings.fuse.saturating_sub(self.settings.budget)
    }

    /// The settings it runs.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current decided for `cp` (`None` before the first decision).
    pub fn target(&self, cp: ChargePointId) -> Option<Current> {
        self.targets.get(&cp).copied()
    }

    /// Whether the DLM waits for the meter's first value (within its interval + tolerance):
    /// a charging point without a target then gets no command yet (the core's start-up
    /// minimum would switch it on and, a second later, off again).
    pub fn awaiting_first_value(&self) -> bool {
        self.awaiting_first_value
    }

    /// Why `cp` got its current in the last cycle.
    pub fn limit(&self, cp: ChargePointId) -> Option<Limit> {
        self.limits.get(cp)
    }

    /// Whether the vehicle at `cp` drew less than it may at its last poll.
    pub fn draws_less(&self, cp: ChargePointId) -> bool {
        self.draws_less.get(cp.index()).copied() == Some(true)
    }

    /// What the DLM saw and decided in its last cycle.
    pub fn cycle(&self) -> Option<Cycle> {
        self.last
    }

    /// Handles one input at `now` and decides.
    pub fn handle(&mut self, input: Input, now: Instant, env: &Env) -> Decision {
        match input {
            Input::Meter(phase, current) => {
                self.meter_value(phase, current, now, env);
                self.seen.set(phase, Some(now));
            }
            Input::Trigger => self.trigger_seen = Some(now),
            Input::HighPower(on) => {
                // Table 20: 1 = active starts (or restarts) the wait; 0 changes nothing.
                if on {
                    self.high_power_until = Some(now + self.settings.high_power_wait);
                }
            }
            Input::Polled(cp) => self.polled(cp, now, env),
            Input::PhasesSet(cp, carried_out) => {
                let reports = env
                    .points
                    .get(&cp)
                    .is_some_and(|p| p.phases_switched.is_some());
                if let Some(pp) = self.phases.get_mut(&cp) {
                    let event = if carried_out {
                        pp.done(now, reports)
                    } else {
                        pp.refused("refused by the charging point")
                    };
                    self.phase_event(cp, event);
                }
            }
            Input::Tick => {}
        }
        self.update(now, env)
    }

    /// Records a phase-switching event: a box that switched is booked afresh (the phases its
    /// vehicle drew on before are no longer where it draws); the pause that completes a switch
    /// is part of it, so resuming waits for no minimum on/off time (the switch itself keeps
    /// to it).
    fn phase_event(&mut self, cp: ChargePointId, event: Option<phases::Event>) {
        let Some(event) = event else {
            return;
        };
        match event {
            phases::Event::Switched(_) => {
                self.vehicle_phases.remove(&cp);
            }
            phases::Event::Complete(_) => {
                self.switched.remove(&cp);
            }
            phases::Event::Begin(_) | phases::Event::GaveUp(_) => {}
        }
        self.phase_events.push((cp, event));
    }

    /// Whether `cp` may switch phases now: a vehicle connected and charging allowed, the box
    /// not saying it cannot, per-phase booking (in symmetric mode every point is booked on
    /// every phase: one phase fits no better than three).
    fn may_switch_phases(&self, cp: ChargePointId, env: &Env) -> bool {
        self.settings.mode == Mode::PerPhase
            && env.points.get(&cp).is_some_and(|p| {
                p.known
                    && p.connected
                    && !p.interrupted
                    && !p.unreachable
                    && !p.invalid
                    && p.phase_switch_available != Some(false)
            })
            && env.grid_control != Some(Current::ZERO)
    }

    fn point(&self, cp: ChargePointId) -> Option<&PointSettings> {
        self.settings.points.get(&cp)
    }

    fn meter_value(&mut self, phase: Phase, current: Current, now: Instant, env: &Env) {
        self.meter.set(phase, Some(current));
        let new_reading = self
            .meter_at
            .is_none_or(|t| now.saturating_duration_since(t) > BURST);
        if new_reading {
            self.meter_at = Some(now);
            self.fresh = PerPhase::splat(false);
            self.polled_at_meter = env
                .points
                .keys()
                .filter_map(|cp| Some((*cp, self.drawn_before(*cp, now, env)?)))
                .collect();
            self.commanded_before_meter = self
                .polled_at_meter
                .keys()
                .map(|cp| {
                    let tp = self.last_poll.get(cp).copied().unwrap_or(now);
                    // Whether a reduction may have been followed by the reading is judged
                    // on the longer of the learned and the default reaction: a reaction
                    // learned too short must not make a reduced vehicle count high.
                    let reaction = self.reaction(*cp).max(vehicle::DEFAULT_REACTION);
                    let from = tp.checked_sub(reaction).unwrap_or(tp);
                    let mut window = self.commanded_during(*cp, from, now);
                    // A vehicle polled above what it is told has a reduction still to
                    // follow, however long ago it came: it may have followed by the
                    // reading (a car told to stop 3 s before a reading, polled at its old
                    // current just before it, had stopped when the meter measured).
                    let told = self.commanded_during(*cp, now, now).min;
                    if let Some(polled) = self.polled_at_meter.get(cp)
                        && Phase::ALL
                            .iter()
                            .any(|p| polled.get(*p) > told.get(*p) + EXACT)
                    {
                        window.reduced = true;
                        for p in Phase::ALL {
                            window.min.set(p, window.min.get(p).min(told.get(p)));
                        }
                    }
                    (*cp, window)
                })
                .collect();
            // Judged now: a reduction decided on this reading's first phase value (a meter
            // sends its phases one by one) is no sign that the vehicle was following its
            // current when the meter measured (a paused car counted at its offer hid a +17 A
            // house step until it resumed into it: the real-vehicle property).
            self.paused_at_meter = self
                .polled_at_meter
                .iter()
                .filter(|(cp, drew)| {
                    drew.0.iter().all(|c| *c < PHASE_DETECTION)
                        && now.checked_sub(vehicle::SETTLE).is_some_and(|from| {
                            let span = self.commanded_during(**cp, from, now);
                            !span.changed && span.max.0.iter().any(|c| *c > Current::ZERO)
                        })
                })
                .map(|(cp, _)| *cp)
                .collect();
            self.polled_after_meter.clear();
            self.polled_after_max.clear();
            self.polled_at_reading.clear();
            self.estimate_final = false;
        }
        self.fresh.set(phase, true);
        self.estimate_other(now);
    }

    /// Estimates the other (non-charging) load from the last meter reading.
    ///
    /// The reading is a snapshot of house plus charging at its moment `t`. What each
    /// charging point drew then is only known within limits, and the estimate must never be
    /// too high: that would make the other load look smaller than it is and hand out budget
    /// that is not there. Vehicles follow a new current within the reaction time (2 s) and
    /// are assumed not to lower their current on their own between two polls (a vehicle
    /// that tapers does so over minutes). Per charging point, with `p` its last poll before
    /// `t` (taken at `tp`):
    ///
    /// * Its current was the same from a reaction time before `t` until now, and a poll came
    ///   after `t`: the vehicle had time to follow, so that later poll stands for `t` (it
    ///   catches a vehicle that started just before the reading).
    /// * Else, if no reduction was commanded from a reaction time before `tp` up to `t`, the
    ///   vehicle drew at least `p` at `t` (it may only have been rising): `p` counts.
    /// * Else a reduction was under way: the smaller of `p` and the lowest current commanded
    ///   in that time counts (the vehicle may or may not have followed it by `t`).
    ///
    /// A later poll never stands for `t` once the current has changed: it shows the change,
    /// not the reading's moment. Polls within REFINE after the reading refine the estimate;
    /// after that it is held until the next reading.
    fn estimate_other(&mut self, now: Instant) {
        let Some(at) = self.meter_at else { return };
        if self.estimate_final {
            return;
        }
        // After REFINE the estimate is final: a point that sent no poll after the reading is
        // counted with what it drew before it, not with what it was told.
        let expired = now.saturating_duration_since(at) >= REFINE;
        self.estimate_final = expired;
        let zero = PerPhase::splat(Current::ZERO);
        let mut charging = zero;
        let points: BTreeSet<ChargePointId> = self
            .polled_at_meter
            .keys()
            .chain(self.polled_after_meter.keys())
            .copied()
            .collect();
        let mut kept = zero;
        let mut measured_high = zero;
        let mut possible = zero;
        let mut exact = true;
        for cp in points {
            let before = self.polled_at_meter.get(&cp).copied().unwrap_or(zero);
            let after = self.polled_after_meter.get(&cp);
            let after_max = self.polled_after_max.get(&cp);
            let window = self.commanded_before_meter.get(&cp).copied();
            // Only what it was told from at least its reaction time before the reading, and
            // not less since, can explain what the reading saw.
            let followed = at.checked_sub(self.reaction(cp)).unwrap_or(at);
            let commanded = self.commanded_during(cp, followed, at);
            // Only about a point polled regularly (a poll after the reading will confirm it).
            let known = self.commanded.front().is_some_and(|(t, _)| *t <= followed)
                && self
                    .last_poll
                    .get(&cp)
                    .is_some_and(|t| at.saturating_duration_since(*t) <= LATE + LATE);
            let used = self.phases_drawn(cp);
            // A vehicle that draws nothing though its current has stood for the settle time
            // paused itself (or is full): it is not counted at that current before the polls
            // after the reading (it may resume, but then the reading after shows it). Counted
            // at it, it hid a house step while it was paused, and it resumed into the
            // overload (the real-vehicle property).
            let paused = self.paused_at_meter.contains(&cp);
            // A reduction still in force (nothing higher commanded since the lowest current
            // of the window) lets the vehicle only come down: the poll after the reading is
            // then a lower bound of what it drew at the reading, as without a reduction (a
            // car told to stop for a newcomer, still drawing while it follows, is no house
            // load; it made the newcomer's partner wait too, issue 15, phenomenon 5).
            let rose_after_reduction = window.is_some_and(|w| {
                let since = self.commanded_during(cp, at, now);
                w.reduced && Phase::ALL.iter().any(|p| since.max.get(*p) > w.min.get(*p))
            });
            for p in Phase::ALL {
                let (low, high) = after
                    .zip(after_max)
                    .map_or((before.get(p), before.get(p)), |(a, b)| {
                        (a.get(p).min(before.get(p)), b.get(p).max(before.get(p)))
                    });
                if after.is_none() || high.saturating_sub(low) > EXACT {
                    exact = false;
                }
                let drew = match after {
                    // The polls around the reading bracket what the vehicle drew at its
                    // moment (a vehicle does not go down and up again within a second):
                    // the lower one counts.
                    // A reduction in the window may have been followed by the reading and
                    // a later rise have come before the poll after it (a point switched off
                    // and on again): the lowest current commanded then bounds it too.
                    Some(after) => match window {
                        Some(w) if rose_after_reduction => {
                            after.get(p).min(before.get(p)).min(w.min.get(p))
                        }
                        // Only coming down since the reading: every later poll is below
                        // what it drew then, the first ones the closest (a car that stopped
                        // two seconds after the reading is not counted at 0 A).
                        Some(w) if w.reduced => after_max
                            .map_or(after.get(p), |m| m.get(p).max(after.get(p)))
                            .min(before.get(p)),
                        _ => after.get(p).min(before.get(p)),
                    },
                    None => match window {
                        Some(w) if w.reduced => before.get(p).min(w.min.get(p)),
                        // A vehicle polled lower at the reading's own instant, not told
                        // less, came down on its own (paused, tapered) around the reading:
                        // the lower poll counts (a car pausing at the very second of a
                        // reading freed room for a raise before any poll after the
                        // reading, with the meter and the polls on the same seconds: the
                        // real-vehicle property).
                        _ => self
                            .polled_at_reading
                            .get(&cp)
                            .map_or(before.get(p), |a| a.get(p).min(before.get(p))),
                    },
                };
                charging.set(p, charging.get(p) + drew);
                // What levels already granted are kept on: the higher end of the bracket as
                // far as the vehicle was told so (its own start or rise, which the plan that
                // told it already counted, is not house load).
                // Before the polls after the reading come in (within a second), what it was
                // told stands for what it may already draw.
                let told = if expired || !known || paused || !used.get(p) {
                    before.get(p)
                } else {
                    commanded.min.get(p)
                };
                let polled_high = after_max.map_or(before.get(p), |a| a.get(p).max(before.get(p)));
                let seen = after_max.map_or(told, |a| a.get(p)).max(before.get(p));
                let high = seen
                    .min(
                        if known && used.get(p) {
                            commanded.min.get(p)
                        } else {
                            Current::ZERO
                        }
                        .max(before.get(p)),
                    )
                    .max(drew);
                // A reduction commanded from a reaction time before its last poll up to the
                // reading may have been followed by then: the poll before it is no lower
                // bound of what it drew, only the lowest current of that span is.
                let cap = |v: Current| match window {
                    Some(w) if w.reduced => v.min(w.min.get(p).max(drew)),
                    _ => v,
                };
                let high = cap(high);
                measured_high.set(p, measured_high.get(p) + cap(polled_high));
                // A vehicle that paused itself is counted at what it drew: had it resumed
                // just before the reading, the reading after would show it; held meanwhile, it
                // resumed into a house step over the fuse (the real-vehicle property).
                let told_max = if used.get(p) && !paused {
                    commanded.max.get(p)
                } else {
                    Current::ZERO
                };
                let polled_most = after
                    .map_or(Current::ZERO, |a| a.get(p))
                    .max(after_max.map_or(Current::ZERO, |a| a.get(p)));
                possible.set(
                    p,
                    possible.get(p) + before.get(p).max(polled_most).max(told_max),
                );
                kept.set(p, kept.get(p) + high);
            }
        }
        self.exact = exact;
        for p in Phase::ALL {
            if !self.fresh.get(p) {
                continue;
            }
            let Some(meter) = self.meter.get(p) else {
                continue;
            };
            self.other.set(
                p,
                Some(meter.saturating_sub(charging.get(p)).max(Current::ZERO)),
            );
            self.other_kept.set(
                p,
                Some(meter.saturating_sub(kept.get(p)).max(Current::ZERO)),
            );
            self.other_low.set(
                p,
                Some(
                    meter
                        .saturating_sub(measured_high.get(p))
                        .max(Current::ZERO),
                ),
            );
            self.other_floor.set(
                p,
                Some(meter.saturating_sub(possible.get(p)).max(Current::ZERO)),
            );
        }
    }

    /// The currents commanded to `cp` (grid phases) while `[from, to]`: the entry in force at
    /// `from` and every later one up to `to`.
    fn commanded_during(&self, cp: ChargePointId, from: Instant, to: Instant) -> Commanded {
        let first = self
            .commanded
            .iter()
            .rposition(|(t, _)| *t <= from)
            .unwrap_or(0);
        let zero = PerPhase::splat(Current::ZERO);
        let mut span = Commanded {
            min: zero,
            max: zero,
            changed: false,
            reduced: false,
        };
        let mut previous: Option<PerPhase<Current>> = None;
        for (_, loads) in self
            .commanded
            .iter()
            .skip(first)
            .take_while(|(t, _)| *t <= to)
        {
            let load = loads.get(&cp).copied().unwrap_or(zero);
            match previous {
                None => {
                    span.min = load;
                    span.max = load;
                }
                Some(prev) => {
                    for p in Phase::ALL {
                        span.min.set(p, span.min.get(p).min(load.get(p)));
                        span.max.set(p, span.max.get(p).max(load.get(p)));
                        if load.get(p) < prev.get(p) {
                            span.reduced = true;
                        }
                        if load.get(p) != prev.get(p) {
                            span.changed = true;
                        }
                    }
                }
            }
            previous = Some(load);
        }
        span
    }

    /// A charging point was polled: within REFINE after a meter reading the poll may stand
    /// for the reading's moment (see [`Self::estimate_other`]); the vehicle model learns
    /// from it.
    fn polled(&mut self, cp: ChargePointId, now: Instant, env: &Env) {
        self.last_poll.insert(cp, now);
        let point = env.points.get(&cp).copied().unwrap_or_default();
        // Break before make ends once the lowered vehicle is seen at its new current, and no
        // higher current was told it within its reaction time: a lagging car raised just
        // before the reduction may still rise to follow the raise (it showed its old, lower
        // current, and a newcomer was switched on beside it: found by the lagging-car
        // property).
        if self.lowered_at.get(&cp).is_some_and(|t| now > *t) {
            let drawn = point.currents.map_or(Current::ZERO, |c| {
                c.0.into_iter().max().unwrap_or(Current::ZERO)
            });
            let told = self.final_target(cp, env).unwrap_or(Current::ZERO);
            let since = now.checked_sub(self.reaction(cp)).unwrap_or(now);
            // Within the load reserve (measurement error); without one, exactly.
            let margin = DRAWS_LESS.min(self.reserve());
            let raised_lately = self.commanded.iter().any(|(t, loads)| {
                *t > since
                    && loads
                        .get(&cp)
                        .is_some_and(|l| l.0.iter().any(|c| *c > told + margin))
            });
            if !point.invalid && drawn <= told + margin && !raised_lately {
                self.lowered_at.remove(&cp);
            }
        }
        if point.connected && !point.invalid {
            let offered = self.final_target(cp, env).unwrap_or(Current::ZERO);
            let drawn = point.currents.map_or(Current::ZERO, |c| {
                c.0.into_iter().max().unwrap_or(Current::ZERO)
            });
            self.vehicles
                .entry(cp)
                .or_default()
                .polled(now, drawn, offered, point.charging);
        } else if !point.connected {
            self.vehicles.remove(&cp);
        }
        if let Some(pp) = self.phases.get_mut(&cp) {
            let event = if point.connected {
                let drawing = point.currents.map_or(point.charging, |c| {
                    c.0.iter().any(|i| *i >= PHASE_DETECTION)
                });
                if let Some(switched) = point.phases_switched {
                    pp.observed(switched);
                }
                pp.polled(now, drawing, point.phases_switched)
            } else {
                pp.vehicle_left();
                None
            };
            self.phase_event(cp, event);
        }
        if !point.connected {
            self.vehicle_phases.remove(&cp);
        } else if let Some(c) = point.currents.filter(|_| !point.invalid) {
            let used = c.0.map(|i| i >= PHASE_DETECTION);
            if used.iter().any(|u| *u) {
                self.vehicle_phases.insert(cp, used);
            }
        }
        let load = self.charging_load(cp, env);
        let history = self.polls.entry(cp).or_default();
        match load {
            Some(l) => history.push_back((now, l)),
            None => history.clear(),
        }
        while history
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > POLL_HISTORY)
        {
            history.pop_front();
        }
        if self.meter_at == Some(now)
            && let Some(load) = load
        {
            let slot = self.polled_at_reading.entry(cp).or_insert(load);
            for p in Phase::ALL {
                slot.set(p, slot.get(p).min(load.get(p)));
            }
        }
        if self
            .meter_at
            .is_none_or(|t| now <= t || now.saturating_duration_since(t) > REFINE)
        {
            return;
        }
        if let Some(load) = load {
            // Every poll after the reading bounds the draw at its moment from above (the
            // least of them counts: the estimate of the charging load errs low).
            let slot = self.polled_after_meter.entry(cp).or_insert(load);
            for p in Phase::ALL {
                slot.set(p, slot.get(p).min(load.get(p)));
            }
            // The most of them bounds it from below only while its current is what it was
            // at the reading: a poll after a change shows the change (after a reduction it
            // would make a car that had followed a raise look as if it had not).
            let at = self.meter_at.unwrap_or(now);
            if !self.commanded_during(cp, at, now).changed {
                let slot = self.polled_after_max.entry(cp).or_insert(load);
                for p in Phase::ALL {
                    slot.set(p, slot.get(p).max(load.get(p)));
                }
            }
        }
    }

    /// What `cp` drew around a meter reading arriving at `at`, from the polls before it: the
    /// least of what it reports now and the polls of the last [`LATE`] (the meter measured
    /// a little before it sent).
    fn drawn_before(&self, cp: ChargePointId, at: Instant, env: &Env) -> Option<PerPhase<Current>> {
        let mut drew = self.charging_load(cp, env)?;
        if let Some(history) = self.polls.get(&cp) {
            let cutoff = at.checked_sub(LATE).unwrap_or(at);
            for (_, load) in history.iter().filter(|(t, _)| *t > cutoff) {
                for p in Phase::ALL {
                    drew.set(p, drew.get(p).min(load.get(p)));
                }
            }
        }
        Some(drew)
    }

    /// The grid phases the vehicle at `cp` drew on in the recent polls; all of them when it
    /// drew on none yet (a vehicle starting).
    fn phases_drawn(&self, cp: ChargePointId) -> PerPhase<bool> {
        let mut used = PerPhase::splat(false);
        for (_, load) in self.polls.get(&cp).into_iter().flatten() {
            for p in Phase::ALL {
                if load.get(p) >= PHASE_DETECTION {
                    used.set(p, true);
                }
            }
        }
        if used.0.iter().any(|u| *u) {
            return used;
        }
        // A vehicle that paused (or waits) draws again on the phases it drew on before: a
        // 1-phase car paused on a box wired with three was booked at its current on all
        // three, and a house step on another phase stayed unseen (the real-vehicle property).
        match (self.vehicle_phases.get(&cp), self.point(cp)) {
            (Some(seen), Some(cfg)) if seen.iter().any(|u| *u) => {
                for (u, p) in seen.iter().zip(cfg.rotation) {
                    used.set(p, *u);
                }
                used
            }
            _ => PerPhase::splat(true),
        }
    }

    /// Whether every charging point polled shortly before the last reading has been polled
    /// after it (the estimate is refined; raises may be granted on it).
    fn refined(&self, now: Instant) -> bool {
        let Some(at) = self.meter_at else {
            return true;
        };
        if now.saturating_duration_since(at) > REFINE {
            return true;
        }
        self.polled_at_meter.keys().all(|cp| {
            self.polled_after_meter.contains_key(cp)
                || self
                    .last_poll
                    .get(cp)
                    .is_none_or(|t| at.saturating_duration_since(*t) > REFINE)
        })
    }

    /// Remembers the charging load now commanded per charging point, on grid phases.
    fn remember_commanded(&mut self, now: Instant) {
        let mut loads = Loads::new();
        for (cp, target) in &self.targets {
            let Some(cfg) = self.point(*cp) else {
                continue;
            };
            loads.insert(*cp, cfg.wired(*target));
        }
        if self.commanded.back().is_some_and(|(_, l)| *l == loads) {
            return;
        }
        self.commanded.push_back((now, loads));
        // Keep what the estimate can still need (entries older than 10 s, but always one).
        while self.commanded.len() > 1
            && self
                .commanded
                .get(1)
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > Duration::from_secs(10))
        {
            self.commanded.pop_front();
        }
    }

    /// The sources that must each deliver within interval + tolerance (indices into `seen`).
    fn supervised(&self) -> &'static [usize] {
        let m = &self.settings.meter;
        match (m.supervision, m.three_phase) {
            (Supervision::Trigger, _) => &[3],
            (Supervision::Values, false) => &[0],
            (Supervision::Values, true) => &[0, 1, 2],
        }
    }

    /// The instant by which source `i` must deliver again (from start-up until its first value).
    fn source_deadline(&self, i: usize) -> Option<Instant> {
        let m = &self.settings.meter;
        let seen = match i {
            0 => self.seen.get(Phase::L1),
            1 => self.seen.get(Phase::L2),
            2 => self.seen.get(Phase::L3),
            _ => self.trigger_seen,
        };
        let from = seen.or(self.started)?;
        Some(from + m.interval + m.tolerance)
    }

    /// The meter deadline: the earliest of the supervised sources' deadlines.
    fn meter_deadline(&self) -> Option<Instant> {
        self.supervised()
            .iter()
            .filter_map(|i| self.source_deadline(*i))
            .min()
    }

    /// What the smart meter left silent at `now`, for the fault message.
    fn silence(&self, now: Instant) -> String {
        let silent = |i: usize| self.source_deadline(i).is_some_and(|d| now >= d);
        let names = &self.settings.meter.names;
        let mut parts: Vec<String> = self
            .supervised()
            .iter()
            .filter(|i| silent(**i))
            .filter_map(|i| names.get(*i).cloned())
            .collect();
        if self.settings.meter.supervision == Supervision::Trigger && (0..3).all(silent) {
            parts.push("no smart-meter value either".to_owned());
        }
        parts.join(", ")
    }

    /// When the controller next needs [`Input::Tick`].
    pub fn poll_timeout(&self, env: &Env) -> Option<Instant> {
        let deadline = self
            .meter_deadline()
            .filter(|_| !self.faults.contains(&FaultCode::SmartMeterTOut));
        let ramping = self
            .last_update
            .filter(|_| self.ramping(env))
            .map(|t| t + RAMP_STEP);
        let rotate = (self.shortage() == Shortage::Queue)
            .then(|| self.rotation_due_at(env))
            .flatten();
        // A tentative shortage is looked at again when the polls should have refined it and
        // when it is confirmed by time.
        let refine = self
            .shortage_since
            .filter(|_| self.tentative)
            .and_then(|t| {
                [t + REFINE, t + CONFIRM]
                    .into_iter()
                    .find(|at| self.last_update.is_none_or(|u| *at > u))
            });
        let finalise = self
            .meter_at
            .filter(|_| !self.estimate_final)
            .map(|t| t + REFINE + Duration::from_millis(1));
        [
            deadline,
            self.high_power_until,
            ramping,
            rotate,
            refine,
            finalise,
            self.phases
                .values()
                .filter_map(PointPhases::poll_timeout)
                .min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When the queue may rotate next: a rotation interval after the last one, and not before
    /// every charging point with a vehicle has kept its last switch (on or off) for the
    /// minimum on/off time.
    fn rotation_due_at(&self, env: &Env) -> Option<Instant> {
        let s = &self.settings;
        let interval = self.rotated.or(self.started)? + s.rotation_interval;
        let settled = self
            .switched
            .iter()
            .filter(|(cp, _)| env.points.get(cp).is_some_and(|p| p.connected))
            .map(|(_, t)| *t + s.min_switch_time)
            .max();
        Some(settled.map_or(interval, |s| s.max(interval)))
    }

    fn ramping(&self, env: &Env) -> bool {
        self.last.is_some_and(|_| {
            env.points.iter().any(|(cp, p)| {
                p.commanded
                    .is_some_and(|c| self.targets.get(cp).is_some_and(|t| *t > c))
            })
        }) || self.raw_wants_more
    }

    fn set_fault(&mut self, code: FaultCode, present: Option<String>, out: &mut Vec<FaultChange>) {
        match present {
            Some(text) if !self.faults.contains(&code) => {
                self.faults.insert(code);
                out.push(FaultChange::Raise(Fault::device(code, text)));
            }
            None if self.faults.remove(&code) => out.push(FaultChange::Clear(code)),
            _ => {}
        }
    }

    /// Recomputes the targets.
    #[allow(
        clippy::too_many_lines,
        reason = "one cycle, step by step as docs/dlm.md describes it"
    )]
    fn update(&mut self, now: Instant, env: &Env) -> Decision {
        let mut faults = Vec::new();
        self.started.get_or_insert(now);
        let s = self.settings.clone();
        let switching: Vec<ChargePointId> = self.phases.keys().copied().collect();
        for cp in &switching {
            let event = self.phases.get_mut(cp).and_then(|p| p.tick(now));
            self.phase_event(*cp, event);
        }
        // Meter supervision.
        let silent = self.meter_deadline().is_some_and(|d| now >= d);
        if silent != self.faults.contains(&FaultCode::SmartMeterTOut) {
            let text = silent.then(|| {
                format!(
                    "{} for {} s (interval {} s + tolerance {} s); emergency mode: minimum current",
                    self.silence(now),
                    (s.meter.interval + s.meter.tolerance).as_secs(),
                    s.meter.interval.as_secs(),
                    s.meter.tolerance.as_secs()
                )
            });
            self.set_fault(FaultCode::SmartMeterTOut, text, &mut faults);
        }
        let reading: Option<PerPhase<Current>> = if s.meter.three_phase {
            match self.meter.0 {
                [Some(a), Some(b), Some(c)] => Some(PerPhase([a, b, c])),
                _ => None,
            }
        } else {
            self.meter.get(Phase::L1).map(PerPhase::splat)
        };
        if self.high_power_until.is_some_and(|t| now >= t) {
            self.high_power_until = None;
        }
        let high_power = self.high_power_until.is_some();
        let emergency = silent || env.association_missing || reading.is_none();
        let budget = PerPhase::splat(s.budget);
        // Invalid currents exclude a charging point; the device shows DLM InvCurrent (70).
        let invalid: Vec<ChargePointId> = ChargePointId::all()
            .filter(|cp| env.points.get(cp).is_some_and(|p| p.invalid))
            .collect();
        let text = (!invalid.is_empty()).then(|| {
            let list: Vec<String> = invalid.iter().map(ToString::to_string).collect();
            format!(
                "invalid currents from charging point(s) {}",
                list.join(", ")
            )
        });
        self.set_fault(FaultCode::DlmInvCurrent, text, &mut faults);
        let active: Vec<ChargePointId> = s
            .points
            .iter()
            .filter(|(_, p)| p.active)
            .map(|(cp, _)| *cp)
            .collect();
        let mut raw: BTreeMap<ChargePointId, Current> = BTreeMap::new();
        let mut limits = Limits::default();
        let mut cycle = Cycle {
            budget,
            meter: reading.unwrap_or_default(),
            available: PerPhase::splat(Current::ZERO),
            emergency,
            high_power,
        };
        if emergency || high_power {
            // "Reduce to the minimum": a charging point above its minimum comes down to it; one
            // at 0 A stays at 0 A. Only before the DLM's first decision (start-up) does every
            // charging point get its minimum. OverCurrent stays as it is.
            //
            // Beyond the spec, for safety (per-phase mode; the symmetric mode keeps the
            // spec's rule): when the other load last estimated plus the minimums exceed the
            // budget, the charging points that do not fit wait (0 A) instead of all running at
            // their minimum (issue 15, phenomenon 7). The estimate goes on with every value
            // that still arrives (one phase silent, DLMAssociation, a high-power wait).
            let waits = if s.mode == Mode::PerPhase {
                self.emergency_waiting(budget, &active, &invalid, env, now)
            } else {
                Vec::new()
            };
            // Before the meter's first value (and within its interval + tolerance), a point
            // whose poll shows no current waits for it: switching it on at its minimum now
            // would switch it off again a second later if the minimums do not all fit
            // (issue 15, phenomena 1 and 9). A point not yet polled may be charging: it gets
            // no target (its box keeps what it has); one polled charging gets its minimum.
            let first_value = reading.is_none() && !silent && !env.association_missing;
            self.awaiting_first_value = first_value;
            for cp in &active {
                let min = self.point(*cp).map_or(Current::ZERO, |c| c.min);
                let polled = env.points.get(cp).filter(|p| p.known);
                let idle = polled.is_some_and(|p| {
                    !p.charging
                        && p.currents
                            .is_none_or(|c| c.0.iter().all(|a| *a < PHASE_DETECTION))
                });
                let reduced = match self.targets.get(cp) {
                    Some(prev) => (*prev).min(min),
                    None if first_value && idle => Current::ZERO,
                    None if first_value && polled.is_none() => {
                        limits.set(*cp, Limit::Emergency);
                        continue;
                    }
                    None => min,
                };
                let reduced = if invalid.contains(cp) || waits.contains(cp) {
                    Current::ZERO
                } else {
                    reduced
                };
                raw.insert(*cp, reduced);
                let fallback = if emergency {
                    Limit::Emergency
                } else {
                    Limit::HighPower
                };
                let limit = if reduced == Current::ZERO {
                    Self::excluded(*cp, env).unwrap_or(fallback)
                } else {
                    fallback
                };
                limits.set(*cp, limit);
            }
        } else if let Some(meter) = reading {
            // Polls just after a meter value refine the other-load estimate; later ones do not.
            self.estimate_other(now);
            let mut other = PerPhase::splat(Current::ZERO);
            let mut other_kept = PerPhase::splat(Current::ZERO);
            let mut other_low = PerPhase::splat(Current::ZERO);
            let mut other_floor = PerPhase::splat(Current::ZERO);
            for p in Phase::ALL {
                other.set(p, self.other.get(p).unwrap_or_else(|| meter.get(p)));
                other_kept.set(p, self.other_kept.get(p).unwrap_or_else(|| meter.get(p)));
                other_low.set(
                    p,
                    self.other_low
                        .get(p)
                        .unwrap_or_else(|| meter.get(p))
                        .min(other_kept.get(p)),
                );
                other_floor.set(
                    p,
                    self.other_floor
                        .get(p)
                        .unwrap_or_else(|| meter.get(p))
                        .min(other_low.get(p)),
                );
            }
            // Raises are granted on the higher of the held estimate and the latest cautious one.
            let refined = self.refined(now);
            let exact = self.exact && refined;
            let held = self.held_other(now, other_kept, exact);
            let mut cautious = held;
            for p in Phase::ALL {
                cautious.set(p, held.get(p).max(other.get(p)));
            }
            // Room that a reading shows before the polls after it do is not granted yet: a
            // car that paused itself just before the reading is still counted with the poll
            // before it, and the house looks smaller by its current (issue 15, the
            // real-vehicle property: 16 A on an 11 A phase).
            // Polls at the reading's own instant (the meter measured before it sent) count
            // here too: with the meter and the polls on the same seconds no poll ever comes
            // after a reading, and the last refined estimate was never renewed.
            let polled_since = self.polled_at_meter.keys().all(|cp| {
                self.polled_after_meter.contains_key(cp) || self.polled_at_reading.contains_key(cp)
            });
            if refined || polled_since {
                self.refined_other = Some(other);
            } else if let Some(last) = self.refined_other {
                for p in Phase::ALL {
                    cautious.set(p, cautious.get(p).max(last.get(p)));
                }
            }
            // A charging point with invalid currents is told 0 A but may not follow: it is
            // counted at its maximum on its phases, on top of what the meter shows of it.
            let mut unknown = PerPhase::splat(Current::ZERO);
            for cp in &invalid {
                if let Some(cfg) = self.point(*cp) {
                    let reserve = cfg.wired(cfg.max);
                    for p in Phase::ALL {
                        unknown.set(p, unknown.get(p) + reserve.get(p));
                    }
                }
            }
            let available_within = |limit: Current, other: PerPhase<Current>| {
                let mut available = PerPhase::splat(Current::ZERO);
                for p in Phase::ALL {
                    available.set(
                        p,
                        limit
                            .saturating_sub(other.get(p))
                            .saturating_sub(unknown.get(p)),
                    );
                }
                available
            };
            let available_with = |other: PerPhase<Current>| available_within(s.budget, other);
            cycle.available = available_with(other);
            let demands = self.demands(&active, env, now);
            // One bit per charging point (no allocation on every cycle).
            let asking = demands
                .iter()
                .fold(0u8, |set, d| set | (1u8 << d.cp.index()));
            if asking != self.demanding.0 {
                self.demanding = (asking, Some(now));
            }
            let shortage = self.shortage();
            // Three plans: what may be kept on the latest estimate; the same on the estimate
            // held over the last HOLD (a margin against the next wobble); what may be granted
            // on the held estimate or the latest cautious one, whichever is higher. A level
            // above the first is reduced at once, to the second; a level is raised only to the
            // third, and by at least BAND. Every level stays within the first plan, so the
            // levels together stay within the budget.
            let keep = self.plan(available_with(other_kept), &demands, env, shortage);
            // 1-/3-phase switching: whether the point's 3-phase minimum fits what is left for
            // it when every other point with a vehicle charges at its minimum (how the
            // minimums are admitted), on the estimate levels are kept on.
            for cp in &switching {
                let Some(cfg) = self.point(*cp).copied() else {
                    continue;
                };
                let others: Vec<(Current, [bool; 3])> = demands
                    .iter()
                    .filter(|d| d.cp != *cp)
                    .map(|d| (d.min, d.phases))
                    .collect();
                let left = phases::left_for(available_with(other_kept), others.iter().copied());
                let power = env.grid_control.and(s.grid_control_power_w).map(|watts| {
                    let used: i64 = others
                        .iter()
                        .map(|(c, p)| {
                            let n: i64 = p.iter().map(|u| i64::from(*u)).sum();
                            n * i64::from(c.milliamps()) * i64::from(s.nominal_voltage.millivolts())
                                / 1_000_000
                        })
                        .sum();
                    let left = (i64::from(watts) - used).max(0);
                    (u32::try_from(left).unwrap_or(0), s.nominal_voltage)
                });
                let [first, _, _] = cfg.rotation;
                let margin = PhaseSettings::with_min_switch_time(s.min_switch_time).hysteresis;
                let fit = phases::fit(left, cfg.min, first, margin, power);
                // A vehicle seen drawing on one phase of a box on three gains nothing from the
                // switch: it is booked on that phase already (it was switched for an 18 s
                // stop each time the 3-phase minimum did not fit).
                let one_phase_vehicle = self
                    .phases
                    .get(cp)
                    .is_some_and(|p| p.phases() == PhaseCount::Three)
                    && self
                        .vehicle_phases
                        .get(cp)
                        .is_some_and(|used| used.iter().filter(|u| **u).count() == 1);
                let eligible = self.may_switch_phases(*cp, env) && !one_phase_vehicle;
                let event = self
                    .phases
                    .get_mut(cp)
                    .and_then(|p| p.decide(now, fit, eligible));
                self.phase_event(*cp, event);
            }
            let margin = self.plan(available_with(held), &demands, env, shortage);
            let grant = self.plan(available_with(cautious), &demands, env, shortage);
            limits = grant.limits;
            for cp in &active {
                if !demands.iter().any(|d| d.cp == *cp) {
                    limits.set(*cp, Self::excluded(*cp, env).unwrap_or(Limit::NoVehicle));
                }
            }
            // While the cautious plans have no room for a point the latest estimate keeps
            // charging, they drop it from the queue and hand its share to the others: a raise
            // on that share would follow the latest noisy value up and the next one down
            // (issue 15, phenomenon 6: ±1 A every few seconds at the edge of a phase, and an
            // estimate biased by the changes). No point is raised then.
            let cautious_drop = active.iter().any(|cp| {
                let at = |plan: &Plan| plan.currents.get(cp).copied().unwrap_or(Current::ZERO);
                let charging = self
                    .levels
                    .get(cp)
                    .or_else(|| self.targets.get(cp))
                    .is_some_and(|l| *l > Current::ZERO);
                charging
                    && at(&keep) > Current::ZERO
                    && (at(&margin) == Current::ZERO || at(&grant) == Current::ZERO)
            });
            for cp in &active {
                let n = keep.currents.get(cp).copied().unwrap_or(Current::ZERO);
                let m = margin
                    .currents
                    .get(cp)
                    .copied()
                    .unwrap_or(Current::ZERO)
                    .min(n);
                let k = grant
                    .currents
                    .get(cp)
                    .copied()
                    .unwrap_or(Current::ZERO)
                    .min(m);
                let level = self
                    .levels
                    .get(cp)
                    .or_else(|| self.targets.get(cp))
                    .copied()
                    .unwrap_or(Current::ZERO);
                let commanded = self.targets.get(cp).copied().unwrap_or(Current::ZERO);
                let next = if level > n && commanded <= n {
                    // Still ramping towards a level that no longer fits: the ramp stops where
                    // it fits; what is commanded needs no reduction.
                    n
                } else if level > n {
                    if let Some(l) = margin.limits.get(*cp) {
                        limits.set(*cp, l);
                    }
                    m
                } else if k > level
                    && !cautious_drop
                    && (level == Current::ZERO
                        || (k >= level + BAND
                            && self
                                .reduced_at
                                .get(cp)
                                .is_none_or(|t| now.saturating_duration_since(*t) >= REVERSAL)))
                {
                    k
                } else {
                    level
                };
                if next < level && next > Current::ZERO {
                    self.reduced_at.insert(*cp, now);
                }
                // A point that keeps charging is not shown as queued because the cautious
                // grant plan would not admit it now: the reason is the keep plan's, whose
                // current is in force (the website showed "queued" at 10 A every other second).
                if next > Current::ZERO && limits.get(*cp) == Some(Limit::Queued) {
                    match keep.limits.get(*cp).filter(|l| *l != Limit::Queued) {
                        Some(l) => limits.set(*cp, l),
                        None => limits.clear(*cp),
                    }
                }
                raw.insert(*cp, next);
            }
            // A shortage right after a meter value may be a car that started just before the
            // value and is not in the polls yet: hold the charging points at their minimum
            // until the polls after the value refine the estimate, instead of interrupting
            // everyone at once. Bounded from the first sight of the shortage, not from the
            // latest value: with a meter sending every second, a real shortage must still end
            // in OverCurrent.
            self.note_drops(now, &demands, &raw);
            let mut overcurrent = keep.overcurrent;
            if overcurrent {
                // Timed from the reading that showed it, like a drop: a shortage first seen
                // on a later tick of the same reading (when its estimate became final) is no
                // younger, and the minimums were held over the budget 11 s after the value
                // (found by `charging_load_never_exceeds_what_the_budget_leaves`). A car
                // that arrived after the reading makes a shortage of its own, from then.
                let from = self
                    .meter_at
                    .max(self.demanding.1)
                    .filter(|m| *m <= now)
                    .unwrap_or(now);
                self.shortage_since.get_or_insert(from);
                self.shortage_reading = self.meter_at;
            } else if self.meter_at != self.shortage_reading {
                // Only a newer reading ends a shortage's timer: the estimate of one reading
                // can change between its ticks (refined, then final), and a shortage that
                // came back on the same reading is no younger (it held the minimums beyond
                // CONFIRM, over the budget).
                self.shortage_since = None;
            }
            // The shortage is also tentative, for at most CONFIRM, while the measured charging
            // load does not show it, or while the minimums still fit the fuse (the load
            // reserve takes the excess meanwhile): a car's start, a box resuming at its own
            // stored current or one noisy value does not switch cars off for the minimum
            // on/off time.
            let since = |limit: Duration| {
                self.shortage_since
                    .is_some_and(|t| now.saturating_duration_since(t) < limit)
            };
            let unconfirmed = overcurrent
                && since(CONFIRM)
                && (!self
                    .plan(available_with(other_low), &demands, env, shortage)
                    .overcurrent
                    || !self
                        .plan(
                            available_within(s.fuse, other_kept),
                            &demands,
                            env,
                            shortage,
                        )
                        .overcurrent);
            // Waiting for the polls after the reading is no reason to hold a charging point
            // over the fuse: when the minimums of the points charging do not fit the fuse even
            // with every car counted at the most it may have drawn at the reading (a car that
            // started or resumed unseen, drawing what it was told), the polls after it cannot
            // lift the shortage, and the reduction starts at once. With the meter and the
            // polls on the same seconds no poll ever came after a reading, and a house step
            // beside two cars at their minimum was held 3 s over the fuse (the real-vehicle
            // property). Within the fuse the load reserve takes the excess meanwhile.
            let refining = overcurrent && !self.refined(now) && since(REFINE) && {
                let within = self.plan(
                    available_within(s.fuse, other_floor),
                    &demands,
                    env,
                    shortage,
                );
                !demands.iter().any(|d| {
                    self.targets.get(&d.cp).is_some_and(|c| *c > Current::ZERO)
                        && within
                            .currents
                            .get(&d.cp)
                            .is_none_or(|c| *c <= Current::ZERO)
                })
            };
            let tentative = overcurrent && (refining || unconfirmed);
            self.tentative = tentative;
            if tentative {
                for d in &demands {
                    // A hold while the estimate is refined is no reduction to keep to.
                    self.reduced_at.remove(&d.cp);
                    let charging = self.targets.get(&d.cp).is_some_and(|c| *c > Current::ZERO);
                    raw.insert(d.cp, if charging { d.min } else { Current::ZERO });
                    limits.set(d.cp, Limit::ShortagePending);
                }
                overcurrent = false;
            } else if shortage == Shortage::Queue && !self.drop_since.is_empty() {
                let plans = DropPlans {
                    low: self.plan(available_with(other_low), &demands, env, shortage),
                    fuse: self.plan(
                        available_within(s.fuse, other_kept),
                        &demands,
                        env,
                        shortage,
                    ),
                    fuse_room: available_within(s.fuse, other_kept),
                    mean: self
                        .mean_other(now)
                        .map(|m| self.plan(available_with(m), &demands, env, shortage)),
                };
                self.confirm_drops(now, &demands, &mut raw, &mut limits, &plans);
            }
            if overcurrent && !self.faults.contains(&FaultCode::OverCurrent) {
                tracing::debug!(
                    meter = ?meter, other = ?other, kept = ?other_kept, low = ?other_low, held = ?held,
                    tentative, demands = ?demands.iter().map(|d| (d.cp, d.min, d.phases)).collect::<Vec<_>>(),
                    "DLM: the minimum currents do not fit"
                );
            }
            let present = self.faults.contains(&FaultCode::OverCurrent);
            // The fault ends only when the minimums fit the held estimate too.
            let overcurrent = overcurrent || (present && !tentative && grant.overcurrent);
            if overcurrent != present {
                let text = overcurrent.then(|| {
                    let mins: Vec<String> = demands
                        .iter()
                        .map(|d| format!("{}: {}", d.cp, d.min))
                        .collect();
                    let what = if shortage == Shortage::Queue {
                        "waiting charging points queue"
                    } else {
                        "charging is interrupted at all charging points"
                    };
                    format!(
                        "minimum currents ({}) do not fit the available current; {what}",
                        mins.join(", ")
                    )
                });
                self.set_fault(FaultCode::OverCurrent, text, &mut faults);
            }
        }
        // A point switching phases is held at 0 A until the switch is complete.
        for cp in &switching {
            if emergency || high_power || !self.may_switch_phases(*cp, env) {
                let event = self
                    .phases
                    .get_mut(cp)
                    .and_then(|p| p.decide(now, Fit::default(), false));
                self.phase_event(*cp, event);
            }
            if self.phases.get(cp).is_some_and(PointPhases::paused) && raw.contains_key(cp) {
                raw.insert(*cp, Current::ZERO);
                limits.set(*cp, Limit::PhaseSwitch);
            }
        }
        let mut set_phases = Vec::new();
        for cp in &switching {
            if let Some(phases::Action::SetPhases(to)) =
                self.phases.get_mut(cp).and_then(PointPhases::take_action)
            {
                set_phases.push((*cp, to));
            }
        }
        self.levels.clone_from(&raw);
        self.last = Some(cycle);
        self.ramp(&raw, now, env, &mut limits);
        self.limits = limits;
        self.remember_commanded(now);
        self.last_update = Some(now);
        for cp in &active {
            let less = self.vehicle_draws_less(*cp, now, env);
            if let Some(slot) = self.draws_less.get_mut(cp.index()) {
                *slot = less;
            }
        }
        Decision {
            faults,
            targets: active
                .iter()
                .filter_map(|cp| Some((*cp, self.targets.get(cp).copied()?)))
                .collect(),
            limits: self.limits,
            set_phases,
            phase_events: std::mem::take(&mut self.phase_events),
        }
    }

    /// A charging point that charges and that the plan in force would switch off (the queue
    /// rule; a shortage no longer tentative, or one that only a waiting car made): when the
    /// plan on the measured charging load, or the plan within the fuse, would keep it, the
    /// drop is not confirmed yet (a car's start or a noisy value taken for house load). It
    /// is held at its minimum for at most [`REFINE`] from when the drop first appeared (the
    /// time the polls after a reading take to correct the estimate); for at most
    /// [`CONFIRM`] while the minimums fit the fuse on the latest estimate and the budget on
    /// the mean of the last [`CONFIRM`] (meter noise: a value 1.5 A high must not stop a car
    /// for the minimum on/off time; a drop every reading asks for that long does, like a
    /// shortage). No point is raised or switched on meanwhile (the drop's room is not
    /// free). Issue 15, phenomenon 6: a car switched off 3 s after its start.
    fn confirm_drops(
        &mut self,
        now: Instant,
        demands: &[Demand],
        raw: &mut BTreeMap<ChargePointId, Current>,
        limits: &mut Limits,
        plans: &DropPlans,
    ) {
        let mode = self.settings.mode;
        let uses = |d: &Demand, p: Phase| d.uses(p, mode);
        // What the points that are not dropped will draw, per grid phase: a drop is held only
        // while the plan within the fuse keeps it and its minimum fits the fuse on top of
        // that and of the drops held before it (the plan within the fuse may keep it in place
        // of another point the plan in force keeps, and holding both went over the fuse:
        // found by the lagging-car property).
        let mut booked = PerPhase::splat(Current::ZERO);
        // (No point is raised while a drop is held: at most what it has now.)
        for d in demands
            .iter()
            .filter(|d| !self.drop_since.contains_key(&d.cp))
        {
            let at = self.targets.get(&d.cp).copied().unwrap_or(Current::ZERO);
            let c = raw.get(&d.cp).copied().unwrap_or(Current::ZERO).min(at);
            for p in Phase::ALL.into_iter().filter(|p| uses(d, *p)) {
                booked.set(p, booked.get(p) + c);
            }
        }
        let mut held = false;
        for d in demands {
            let Some(since) = self.drop_since.get(&d.cp).copied() else {
                continue;
            };
            let keeps = |p: &Plan| p.currents.get(&d.cp).is_some_and(|c| *c > Current::ZERO);
            let within_fuse = keeps(&plans.fuse)
                && Phase::ALL
                    .into_iter()
                    .filter(|p| uses(d, *p))
                    .all(|p| booked.get(p) + d.min <= plans.fuse_room.get(p));
            let refining =
                (keeps(&plans.low) || within_fuse) && now.saturating_duration_since(since) < REFINE;
            let noise = within_fuse
                && plans.mean.as_ref().is_some_and(keeps)
                && now.saturating_duration_since(since) < CONFIRM;
            if refining || noise {
                raw.insert(d.cp, d.min);
                limits.set(d.cp, Limit::ShortagePending);
                held = true;
                for p in Phase::ALL.into_iter().filter(|p| uses(d, *p)) {
                    booked.set(p, booked.get(p) + d.min);
                }
            }
        }
        if held {
            for d in demands {
                let at = self.targets.get(&d.cp).copied().unwrap_or(Current::ZERO);
                if let Some(want) = raw.get_mut(&d.cp)
                    && *want > at
                {
                    *want = at;
                    limits.set(d.cp, Limit::ShortagePending);
                }
            }
        }
    }

    /// The mean of the refined other-load estimates of the last [`CONFIRM`] (at least two).
    fn mean_other(&self, now: Instant) -> Option<PerPhase<Current>> {
        let recent: Vec<&PerPhase<Current>> = self
            .others
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) <= CONFIRM)
            .map(|(_, o)| o)
            .collect();
        let n = i64::try_from(recent.len()).ok().filter(|n| *n >= 2)?;
        let mut mean = PerPhase::splat(Current::ZERO);
        for p in Phase::ALL {
            let sum: i64 = recent.iter().map(|o| i64::from(o.get(p).milliamps())).sum();
            mean.set(p, Current::from_milliamps(i32::try_from(sum / n).ok()?));
        }
        Some(mean)
    }

    /// Keeps `drop_since` up to date: the charging points that charge and that the plan in
    /// force would switch off, since when (whether or not the drop is held).
    fn note_drops(
        &mut self,
        now: Instant,
        demands: &[Demand],
        raw: &BTreeMap<ChargePointId, Current>,
    ) {
        let dropped: Vec<ChargePointId> = demands
            .iter()
            .filter(|d| {
                self.targets.get(&d.cp).is_some_and(|c| *c > Current::ZERO)
                    && raw.get(&d.cp) == Some(&Current::ZERO)
            })
            .map(|d| d.cp)
            .collect();
        self.drop_since.retain(|cp, _| dropped.contains(cp));
        // Timed from the reading that showed it (a drop first decided on a later tick is
        // no younger than the value it rests on).
        let from = self.meter_at.filter(|m| *m <= now).unwrap_or(now);
        for cp in dropped {
            self.drop_since.entry(cp).or_insert(from);
        }
    }

    /// The shortage rule in force: the configured one, except that in per-phase mode only
    /// the charging points that do not fit wait (issue 15, phenomenon 6; the symmetric mode
    /// keeps the spec's "interrupt all").
    fn shortage(&self) -> Shortage {
        if self.settings.mode == Mode::PerPhase {
            Shortage::Queue
        } else {
            self.settings.shortage
        }
    }

    /// The other load raises are granted on: the highest refined estimate of the last
    /// [`HOLD`] that is within [`NOISE`] of `latest` (noise), never below `latest`.
    fn held_other(
        &mut self,
        now: Instant,
        latest: PerPhase<Current>,
        exact: bool,
    ) -> PerPhase<Current> {
        // Only estimates on which the polls around their reading agree are remembered (a
        // vehicle starting or ramping between two polls is no house load to hold on to).
        if exact && self.others.back().is_none_or(|(_, o)| *o != latest) {
            self.others.push_back((now, latest));
        }
        while self
            .others
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > HOLD)
        {
            self.others.pop_front();
        }
        let mut held = latest;
        for (_, o) in &self.others {
            for p in Phase::ALL {
                let v = o.get(p);
                if v > held.get(p) && v <= latest.get(p) + NOISE {
                    held.set(p, v);
                }
            }
        }
        held
    }

    /// The allocation of `available` among `demands`, with the unbalanced-load cap and the
    /// grid-control power cap after it.
    fn plan(
        &self,
        available: PerPhase<Current>,
        demands: &[Demand],
        env: &Env,
        shortage: Shortage,
    ) -> Plan {
        let s = &self.settings;
        let mode = s.mode;
        let mut result = allocate(available, demands, mode, shortage);
        let mut currents = result.currents.clone();
        let mut limits = result.limits;
        if let Some(limit) = s.unbalanced_load_limit {
            // Cap, then let the others use what the capped points left: re-allocate with
            // the capped points' maxima lowered, until nothing changes.
            let mut capped = demands.to_vec();
            for _ in 0..3 {
                let before = currents.clone();
                super::limit_unbalance(&mut currents, &capped, limit, &mut limits);
                if currents == before {
                    break;
                }
                capped.retain(|d| currents.get(&d.cp).is_some_and(|c| *c > Current::ZERO));
                for d in &mut capped {
                    // Only the points the cap lowered keep their lowered maximum.
                    if let (Some(c), Some(b)) = (currents.get(&d.cp), before.get(&d.cp))
                        && c < b
                    {
                        d.max = d.max.min(*c);
                    }
                }
                result = allocate(available, &capped, mode, shortage);
                for d in demands {
                    currents.insert(
                        d.cp,
                        result.currents.get(&d.cp).copied().unwrap_or(Current::ZERO),
                    );
                }
                // A point at the maximum the cap lowered is held by the cap.
                for d in &capped {
                    let lowered = demands.iter().any(|o| o.cp == d.cp && o.max > d.max);
                    match result.limits.get(d.cp) {
                        Some(Limit::OwnMax) if lowered => limits.set(d.cp, Limit::Unbalance),
                        Some(l) => limits.set(d.cp, l),
                        None => {}
                    }
                }
            }
            super::limit_unbalance(&mut currents, &capped, limit, &mut limits);
        }
        if env.grid_control.is_some()
            && let Some(watts) = s.grid_control_power_w
        {
            super::limit_power(
                &mut currents,
                demands,
                watts,
                s.nominal_voltage,
                &mut limits,
            );
        }
        Plan {
            currents,
            limits,
            overcurrent: result.overcurrent,
        }
    }

    /// In emergency mode: the charging points whose minimums do not fit the budget with the
    /// other load last estimated (and invalid points at their maximum), admitted in queue
    /// order with the prioritised one first. Empty without an estimate (no value yet): then
    /// the spec's rule, every point at its minimum.
    fn emergency_waiting(
        &mut self,
        budget: PerPhase<Current>,
        active: &[ChargePointId],
        invalid: &[ChargePointId],
        env: &Env,
        now: Instant,
    ) -> Vec<ChargePointId> {
        let mut available = budget;
        for p in Phase::ALL {
            let Some(other) = self.other.get(p) else {
                return Vec::new();
            };
            available.set(p, available.get(p).saturating_sub(other));
        }
        for cp in invalid {
            if let Some(cfg) = self.point(*cp) {
                let reserve = cfg.wired(cfg.max);
                for p in Phase::ALL {
                    available.set(p, available.get(p).saturating_sub(reserve.get(p)));
                }
            }
        }
        // Only the points that would charge (at or above 0 A now) compete for the minimums.
        let demands: Vec<Demand> = self
            .demands(active, env, now)
            .into_iter()
            .filter(|d| self.targets.get(&d.cp).is_none_or(|t| *t > Current::ZERO))
            .map(|d| Demand { max: d.min, ..d })
            .collect();
        allocate(available, &demands, self.settings.mode, Shortage::Queue).waiting
    }

    /// Why a charging point is left out of the allocation, if it is: interrupted, not
    /// reachable, invalid currents, or no vehicle.
    fn excluded(cp: ChargePointId, env: &Env) -> Option<Limit> {
        let point = env.points.get(&cp);
        if point.is_some_and(|p| p.interrupted) {
            return Some(Limit::Interrupted);
        }
        if point.is_some_and(|p| p.unreachable) {
            return Some(Limit::NotReachable);
        }
        if point.is_some_and(|p| p.invalid) {
            return Some(Limit::InvalidCurrents);
        }
        let connected = point.is_some_and(|p| p.connected);
        (!connected).then_some(Limit::NoVehicle)
    }

    /// The current the core will command to `cp` after this decision: the DLM's target,
    /// with the core's interruption and grid-control cap, within the point's range.
    fn final_target(&self, cp: ChargePointId, env: &Env) -> Option<Current> {
        let cfg = self.point(cp).filter(|c| c.active)?;
        let point = env.points.get(&cp)?;
        if point.interrupted || env.grid_control == Some(Current::ZERO) {
            return Some(Current::ZERO);
        }
        let mut target = self.targets.get(&cp).copied().unwrap_or(cfg.min);
        if target == Current::ZERO {
            return Some(Current::ZERO);
        }
        if let Some(grid) = env.grid_control {
            target = target.min(grid.max(cfg.min));
        }
        Some(target.clamp_to(cfg.min, cfg.max))
    }

    /// Whether the vehicle at `cp` draws less than it may: at its last poll it drew, on its
    /// most loaded phase, at least [`DRAWS_LESS`] below its current, and that current had
    /// then been in force for the reaction time.
    fn vehicle_draws_less(&self, cp: ChargePointId, now: Instant, env: &Env) -> bool {
        let Some(target) = self.final_target(cp, env).filter(|t| *t > Current::ZERO) else {
            return false;
        };
        let Some(point) = env.points.get(&cp) else {
            return false;
        };
        let (Some(currents), Some(polled)) = (point.currents, self.last_poll.get(&cp)) else {
            return false;
        };
        let drawn = currents.0.into_iter().max().unwrap_or(Current::ZERO);
        if !point.connected || drawn + DRAWS_LESS > target {
            return false;
        }
        let Some(from) = polled.checked_sub(self.reaction(cp)) else {
            return false;
        };
        // The history must reach back to `from`: a current first commanded after it (at
        // start-up) gave the vehicle no time to follow before the poll.
        let known = self.commanded.front().is_some_and(|(t, _)| *t <= from);
        known && !self.commanded_during(cp, from, now).changed
    }

    /// Whether a vehicle at `cp` may draw current: one is connected, or current flows.
    fn vehicle_present(cp: ChargePointId, env: &Env) -> bool {
        env.points.get(&cp).is_some_and(|s| {
            s.connected
                || s.charging
                || s.currents
                    .is_some_and(|c| c.0.iter().any(|a| *a > Current::ZERO))
        })
    }

    /// One charging point's own load per grid phase: measured currents, or the commanded
    /// current where a charging point measures nothing.
    fn charging_load(&self, cp: ChargePointId, env: &Env) -> Option<PerPhase<Current>> {
        let point = env.points.get(&cp)?;
        let cfg = self.point(cp)?;
        if point.invalid {
            // Its readings cannot be trusted: what it draws stays in the other load.
            return None;
        }
        let grid = if let Some(c) = point.currents {
            cfg.to_grid(c)
        } else {
            let c = point.commanded.unwrap_or(Current::ZERO);
            cfg.wired(if point.charging { c } else { Current::ZERO })
        };
        Some(grid.map(|c| c.max(Current::ZERO)))
    }

    /// Charging points with a vehicle that may charge, in queue order.
    fn demands(&mut self, active: &[ChargePointId], env: &Env, now: Instant) -> Vec<Demand> {
        for cp in active {
            if !self.queue.contains(cp) {
                self.queue.push(*cp);
            }
        }
        self.queue.retain(|cp| active.contains(cp));
        let mut out = Vec::new();
        for cp in &self.queue {
            let Some(cfg) = self.settings.points.get(cp) else {
                continue;
            };
            let Some(point) = env.points.get(cp) else {
                continue;
            };
            if point.interrupted || point.invalid || point.unreachable {
                continue;
            }
            // A point switching phases is held at 0 A: it takes no budget.
            let phase_count = match self.phases.get(cp) {
                Some(p) if p.paused() => continue,
                Some(p) => p.phases(),
                None => PhaseCount::Three,
            };
            // Before its first poll a point is booked at its minimum (a vehicle may be
            // charging): it is not switched off and on again when the first meter value comes
            // before the first poll (issue 15, phenomenon 9).
            if !point.connected && point.known {
                continue;
            }
            // Phases the vehicle draws on, from its currents; before it draws, as wired.
            let mut cp_phases = [false; 3];
            if let Some(c) = point.currents {
                for (slot, i) in cp_phases.iter_mut().zip(c.0) {
                    *slot = i >= PHASE_DETECTION;
                }
            }
            // A box switched to one phase charges on its phase 1; only where its polls show
            // no phase drawn (a box that did not follow is booked where it draws).
            if !cp_phases.iter().any(|x| *x) && phase_count == PhaseCount::One {
                cp_phases = [true, false, false];
            }
            if !cp_phases.iter().any(|x| *x)
                && let Some(seen) = self.vehicle_phases.get(cp)
            {
                cp_phases = *seen;
            }
            if !cp_phases.iter().any(|x| *x) {
                cp_phases = if cfg.three_phase {
                    [true, true, true]
                } else {
                    [true, false, false]
                };
            }
            let mut grid = PerPhase::splat(false);
            for (used, p) in cp_phases.iter().zip(cfg.rotation) {
                if *used {
                    grid.set(p, true);
                }
            }
            let grid = grid.0;
            out.push(Demand {
                cp: *cp,
                min: cfg.min,
                // A vehicle that draws less than it is offered is offered its ceiling + 1 A;
                // the rest goes to others (issue 15, phenomenon 3).
                max: if point.known {
                    self.vehicles
                        .get(cp)
                        .map_or(cfg.max, |v| v.offer_limit(cfg.max))
                        .max(cfg.min)
                } else {
                    cfg.min
                },
                phases: grid,
                prioritised: self.settings.prioritised == Some(*cp),
            });
        }
        // A point switched on less than the minimum on/off time ago keeps its place: nobody
        // is switched more often than that for a turn (issue 15, fairness); a shortage that
        // leaves it no room still stops it. Then the prioritised charging point, which never
        // waits behind others in the queue (issue 15, phenomenon 5): it is admitted first,
        // whatever the rotation did, once the points that just started may stop.
        let min_on = self.settings.min_switch_time;
        let started_recently = |cp: ChargePointId| {
            self.charging_since
                .get(&cp)
                .is_some_and(|t| now.saturating_duration_since(*t) < min_on)
        };
        out.sort_by_key(|d| (!started_recently(d.cp), !d.prioritised));
        out
    }

    /// Reductions at once; increases at the ramp rate, starting from the minimum; switching
    /// on only after the minimum on/off time.
    fn ramp(
        &mut self,
        raw: &BTreeMap<ChargePointId, Current>,
        now: Instant,
        env: &Env,
        limits: &mut Limits,
    ) {
        let min_switch_time = self.settings.min_switch_time;
        let ramp_rate = self.settings.ramp_up_per_second;
        let dt = self
            .last_update
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.raw_wants_more = false;
        // Break before make: a grid phase on which a current is lowered now sees no raise for
        // a reaction time, so that a vehicle quick to rise never adds to one still slow to
        // fall when the DLM moves current from one charging point to another.
        // A smaller reduction in flight may overlap a raise by that much: the load reserve
        // takes it, so without one every reduction holds the raises (a 0.5 A reduction of a
        // car with a 1.5 s lag beside a raise put 0.5 A over a fuse with no reserve: found
        // by the lagging-car property).
        let step = MAKE_AFTER_BREAK_STEP.min(self.reserve());
        for (cp, want) in raw {
            let prev = self.targets.get(cp).copied().unwrap_or(Current::ZERO);
            // A point with invalid currents is reserved at its maximum anyway.
            if prev > *want
                && prev.saturating_sub(*want) >= step
                && Self::vehicle_present(*cp, env)
                && !env.points.get(cp).is_some_and(|p| p.invalid)
            {
                self.lowered_at.insert(*cp, now);
            }
        }
        for (cp, want) in raw {
            let Some(cfg) = self.point(*cp).copied() else {
                continue;
            };
            let prev = self.targets.get(cp).copied().unwrap_or(Current::ZERO);
            let mut next = *want;
            let phases = cfg.grid_phases();
            let lowered_nearby = self.lowered_at.iter().any(|(other, t)| {
                other != cp
                    && now.saturating_duration_since(*t) < FOLLOW_MAX
                    && self
                        .point(*other)
                        .is_some_and(|o| o.grid_phases().iter().any(|p| phases.contains(p)))
            });
            if next > prev && lowered_nearby {
                next = prev;
                self.raw_wants_more = true;
                limits.set(*cp, Limit::BreakBeforeMake);
            } else if next > prev {
                if prev < cfg.min {
                    // Switching on: not sooner than the minimum on/off time after the last switch.
                    let recently = self
                        .switched
                        .get(cp)
                        .is_some_and(|t| now.saturating_duration_since(*t) < min_switch_time);
                    next = if recently {
                        limits.set(*cp, Limit::MinSwitchTime);
                        Current::ZERO
                    } else {
                        cfg.min.min(next)
                    };
                } else if let Some(changed) = self.changed_at.get(cp).copied()
                    && self.meter_at.is_some_and(|m| {
                        let followed = changed + self.reaction(*cp) + LATE;
                        m > changed && m < followed && now < followed + self.settings.meter.interval
                    })
                {
                    // The latest meter reading was taken while the vehicle was still following
                    // its last change: a raise waits for a reading taken after it had time to
                    // follow and a poll to show it, so that it is judged on an estimate that
                    // sees the vehicle where it is (a car quick to follow a ramp between two
                    // readings looked like house load, and the setpoints hunted). A meter that
                    // sends on change only may send none: then, a meter period later, the raise
                    // is judged on the reading there is (it errs high on the other load).
                    next = prev;
                } else {
                    // The step the ramp rate allows since the last change, at most over one
                    // raise cadence (reaction, a poll, a meter period): the average rate is
                    // the configured one, a point long held does not jump.
                    let cadence = self.reaction(*cp) + LATE + self.settings.meter.interval;
                    let since = self.changed_at.get(cp).map_or(dt, |t| {
                        now.saturating_duration_since(*t).min(cadence).as_secs_f64()
                    });
                    #[allow(clippy::cast_possible_truncation, reason = "ramp steps are small")]
                    let step =
                        Current::from_milliamps((f64::from(ramp_rate.milliamps()) * since) as i32);
                    next = next.min(prev + step);
                }
                if next < *want {
                    self.raw_wants_more = true;
                    if next > Current::ZERO {
                        limits.set(*cp, Limit::Ramp);
                    }
                }
            }
            if next != prev {
                // A change between two levels is what the next raise waits to see followed.
                // Switching on or off is a start or stop, which the estimate brackets with
                // the polls (and the start-up minimum is no change a reading can catch half
                // done).
                if prev > Current::ZERO && next > Current::ZERO {
                    self.changed_at.insert(*cp, now);
                } else {
                    self.changed_at.remove(cp);
                }
                if let Some(model) = self.vehicles.get_mut(cp) {
                    model.commanded(now, prev, next);
                }
            }
            let vehicle = env.points.get(cp).is_some_and(|p| p.connected);
            if vehicle && (prev == Current::ZERO) != (next == Current::ZERO) {
                self.switched.insert(*cp, now);
            }
            if vehicle && next > Current::ZERO {
                self.charging_since.entry(*cp).or_insert(now);
            } else {
                self.charging_since.remove(cp);
            }
            self.targets.insert(*cp, next);
        }
        if self.shortage() == Shortage::Queue {
            let due = self.rotation_due_at(env).is_some_and(|t| now >= t);
            if due {
                self.rotated = Some(now);
                if !self.queue.is_empty() {
                    self.queue.rotate_left(1);
                    // The prioritised point is admitted first wherever it stands: a turn that
                    // brought it to the head would give the others nothing new (issue 15,
                    // fairness: every waiting car within rotation interval × waiting cars).
                    if self.queue.len() > 1
                        && self.queue.first() == self.settings.prioritised.as_ref()
                    {
                        self.queue.rotate_left(1);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
