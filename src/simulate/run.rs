//! One simulation run: the real [`Core`] at injected time against a simulated house, meter,
//! charging points and vehicles; and the figures computed from it.
//!
//! Owns the physics and the metrics:
//! * every step the house load (profile + load steps) and the vehicles' draws
//!   ([`super::vehicle`]) give the true current per grid phase; the meter
//!   ([`super::meter`]) measures it with its period, noise, latency and phase spread; every
//!   whole second each charging point is polled ([`Event::ChargerPolled`]) with its
//!   vehicle's state and currents, or fails ([`Event::ChargerFailed`]) while unreachable
//!   or flagging invalid currents; the core's `SetCurrent` actions become the boxes'
//!   setpoints (lost while a box is unreachable);
//! * 1-/3-phase switching (docs/chargers.md, "1-/3-phase switching"): a box whose point has
//!   `phase_switch` answers `SetPhases` with `Done` (fed back as the charger task does, as
//!   [`Event::ChargerCommandDone`]), stops offering current for [`PHASE_SWITCH_PAUSE`] with a
//!   vehicle plugged in, then offers its setpoint on the new phase count; its polls carry
//!   `phases_switched`. Any other box answers `NotPossible` and reports no phases;
//! * scenario events: meter silence, grid-supporting control (object 1), high-power reports
//!   (13), interruption (55 + 50 × (n − 1)), load steps, unreachable points, invalid currents;
//! * figures ([`Summary`]): the protective device's trip integral ([`super::protection`]);
//!   current above the fuse without grace, split into what the house alone caused and what
//!   charging added; the old overload figure (beyond a 5 s grace); delivered energy (230 V
//!   per phase) against two bounds (per phase, and the linear program of [`super::bound`]);
//!   setpoint changes and reversals per hour, on/off periods shorter than the minimum on/off
//!   time, the longest wait of a car that wanted to charge, Jain fairness, and a timeline of
//!   faults, limit reasons and events.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::bound::{self, Taker};
use super::meter::Meter;
use super::protection::{Device, Thermal};
use super::scenario::PointSpec;
use super::scenario::{AllocationMode, InvalidKind, Scenario};
use super::vehicle::{MIN_OFFER, Vehicle};
use crate::chargers::{ChargerCommand, ChargerStatus, CommandOutcome, CpState, DriverError};
use crate::core::{Action, Core, Event};
use crate::objects::Value;
use crate::sim::PHASE_SWITCH_PAUSE;
use crate::units::{ChargePointId, Current, GoNumber, PerPhase, Phase, PhaseCount, Power};

/// Phase voltage for energy figures.
pub const VOLTAGE: f64 = 230.0;

/// How long an excursion above the fuse may last before it counts as overload (the old
/// figure, `overload_amp_seconds`; `over_fuse_amp_seconds` has no grace).
pub const REACTION_WINDOW: Duration = Duration::from_secs(5);

/// On/off switches in this first part of a run count as start-up switches.
pub const START_WINDOW: Duration = Duration::from_secs(5);

/// A current published on KNX above this is implausible for any charging point.
pub const IMPLAUSIBLE: Current = Current::from_milliamps(1_000_000);

/// A value per phase, as JSON `{"L1": …, "L2": …, "L3": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Phases {
    /// L1.
    #[serde(rename = "L1")]
    pub l1: f64,
    /// L2.
    #[serde(rename = "L2")]
    pub l2: f64,
    /// L3.
    #[serde(rename = "L3")]
    pub l3: f64,
}

impl Phases {
    fn from_array(a: [f64; 3]) -> Self {
        let [l1, l2, l3] = a.map(round4);
        Self { l1, l2, l3 }
    }

    /// The three values.
    pub fn values(&self) -> [f64; 3] {
        [self.l1, self.l2, self.l3]
    }

    /// The largest of the three.
    pub fn max(&self) -> f64 {
        self.values().into_iter().fold(f64::MIN, f64::max)
    }

    /// The sum of the three.
    pub fn sum(&self) -> f64 {
        self.values().into_iter().sum()
    }
}

/// One vehicle's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VehicleSummary {
    /// Name.
    pub name: String,
    /// Charging point.
    pub charging_point: u8,
    /// Energy wanted.
    pub wanted_kwh: f64,
    /// Energy delivered.
    pub delivered_kwh: f64,
    /// Mean current per phase while present and wanting.
    pub mean_current_a: f64,
    /// Longest time it wanted to charge (plugged, not full, not pausing itself) and was
    /// offered less than 6 A.
    pub longest_wait_s: f64,
    /// Share of its wanting time at less than 6 A offered.
    pub waiting_share: f64,
}

/// One charging point's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointSummary {
    /// Charging point.
    pub charging_point: u8,
    /// Setpoint changes per hour (every command that changed the box's current).
    pub setpoint_changes_per_hour: f64,
    /// Changes whose direction is opposite to the change before, per hour.
    pub reversals_per_hour: f64,
    /// On or off periods shorter than the minimum on/off time with a vehicle plugged in
    /// (flapping); the pause of a 1-/3-phase switch is part of the switch, not an off
    /// period.
    pub short_on_off_periods: u32,
    /// Switches between 0 A and a current in the first 5 s (1 = switched on once).
    pub start_switches: u32,
    /// 1-/3-phase switches its box carried out.
    pub phase_switches: u32,
    /// Time its box was switched to one phase, s.
    pub one_phase_s: f64,
}

/// The protective device's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtectionSummary {
    /// Kind and rating ("gG 35 A").
    pub device: String,
    /// Whether the trip integral reached 1 on some phase.
    pub tripped: bool,
    /// When it first did, s since start.
    pub tripped_at_s: Option<f64>,
    /// The largest share of the trip integral used, per phase (1 = trip).
    pub max_integral_used: Phases,
}

/// The figures of one run (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Allocation mode.
    pub mode: AllocationMode,
    /// Length of the run.
    pub duration_s: f64,
    /// Simulation step.
    pub step_s: f64,
    /// Fuse per phase.
    pub fuse_a: f64,
    /// Budget per phase (fuse − reserve).
    pub budget_a: f64,
    /// Current above the fuse, integrated over time, counted only beyond the first 5 s of
    /// each excursion.
    pub overload_amp_seconds: Phases,
    /// Current above the fuse integrated over time, without grace.
    pub over_fuse_amp_seconds: Phases,
    /// The part of it the house load alone caused (house above the fuse).
    pub over_fuse_house_amp_seconds: Phases,
    /// The part charging added on top (the rest).
    pub over_fuse_charging_amp_seconds: Phases,
    /// Longest stretch in which charging took a phase above the fuse, s.
    pub longest_charging_over_fuse_s: f64,
    /// The protective device.
    pub protection: ProtectionSummary,
    /// Highest true grid current.
    pub max_meter_a: Phases,
    /// Energy delivered to all vehicles.
    pub energy_kwh: f64,
    /// Most energy the budget allowed per phase, each phase on its own (independent of the
    /// DLM; generous: a 3-phase car counts on each phase separately).
    pub energy_bound_kwh: f64,
    /// `energy_kwh / energy_bound_kwh` (1 when the bound is 0).
    pub efficiency: f64,
    /// Most energy any allocation could have delivered: the linear program per step
    /// ([`super::bound`]).
    pub energy_bound_lp_kwh: f64,
    /// `energy_kwh / energy_bound_lp_kwh` (1 when the bound is 0).
    pub efficiency_lp: f64,
    /// Jain's index over the vehicles' mean currents while present and wanting.
    pub jain_fairness: f64,
    /// Setpoint transitions between 0 A and a current (starting from 0 A).
    pub switch_events: u32,
    /// The longest wait of any vehicle (see [`VehicleSummary::longest_wait_s`]).
    pub longest_wait_s: f64,
    /// Setpoint changes per hour, the worst charging point.
    pub max_setpoint_changes_per_hour: f64,
    /// On/off periods shorter than the minimum on/off time, all points.
    pub short_on_off_periods: u32,
    /// Currents above 1,000 A the gateway published on KNX.
    pub implausible_values_published: u32,
    /// Time the DLM spent in emergency mode.
    pub emergency_s: f64,
    /// Time the high-power wait ran.
    pub high_power_s: f64,
    /// Times the core's `poll_timeout` named an instant it had already been ticked at.
    pub stale_poll_timeouts: u32,
    /// Per charging point.
    pub points: Vec<PointSummary>,
    /// Per vehicle.
    pub vehicles: Vec<VehicleSummary>,
}

/// One row of the time series (every whole second).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Time since start.
    pub t: Duration,
    /// True current per grid phase (house + loads + vehicles).
    pub meter: PerPhase<Current>,
    /// House load (profile + load steps).
    pub house: PerPhase<Current>,
    /// The DLM's budget per phase.
    pub budget: PerPhase<Current>,
    /// What the DLM saw as available for charging.
    pub available: PerPhase<Current>,
    /// DLM emergency mode.
    pub emergency: bool,
    /// High-power wait running.
    pub high_power: bool,
    /// Grid-supporting control on.
    pub grid_control: bool,
    /// Setpoint per charging point (scenario order): the box's current.
    pub setpoints: Vec<Current>,
    /// Current the vehicle draws per phase, per charging point.
    pub actual: Vec<Current>,
    /// What each charging point draws per grid phase.
    pub actual_phases: Vec<PerPhase<Current>>,
    /// Phases each charging point's box offers (1 or 3; a 1-phase point: 1).
    pub phases: Vec<u8>,
    /// The part of the current above the fuse that charging added, per grid phase.
    pub charging_over_fuse: PerPhase<Current>,
}

/// One entry of the fault/limit timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// Time since start, s.
    pub t_s: u64,
    /// `fault+`, `fault-`, `limit`, `event`, `phases` (a box switched its phases).
    pub kind: &'static str,
    /// The charging point, if it concerns one.
    pub charging_point: Option<u8>,
    /// What.
    pub what: String,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Figures.
    pub summary: Summary,
    /// Time series.
    pub rows: Vec<Row>,
    /// Faults, limit reasons and scenario events as they changed.
    pub timeline: Vec<TimelineEntry>,
}

struct PointSim {
    id: ChargePointId,
    /// Phases it is wired with.
    wired: u8,
    /// Its box can switch and the gateway may switch it.
    switchable: bool,
    /// What its box switches now.
    switched: PhaseCount,
    /// The box offers no current until then (a phase switch).
    pause_until: Option<Duration>,
    /// Phase switches carried out (time, new count), oldest first.
    phase_log: Vec<(Duration, PhaseCount)>,
    /// Entries of `phase_log` already in the timeline.
    logged: usize,
    /// What the box applies.
    setpoint: Current,
    /// Setpoint changes (time, value), oldest first.
    history: Vec<(Duration, Current)>,
    changes: u32,
    reversals: u32,
    last_direction: i8,
    last_switch: Option<Duration>,
    short_periods: u32,
    start_switches: u32,
}

impl PointSim {
    /// The box takes setpoint `c` at `t`: counts changes, reversals, short on/off periods
    /// (with a vehicle plugged in) and start-up switches. Returns 1 if it switched the point
    /// on or off, else 0.
    fn set_current(&mut self, t: Duration, c: Current, plugged: bool, min_switch: Duration) -> u32 {
        let mut switched = 0;
        if c != self.setpoint {
            self.changes += 1;
            let direction = if c > self.setpoint { 1 } else { -1 };
            if self.last_direction == -direction {
                self.reversals += 1;
            }
            self.last_direction = direction;
        }
        if (self.setpoint == Current::ZERO) != (c == Current::ZERO) {
            switched = 1;
            if t < START_WINDOW {
                self.start_switches += 1;
            }
            // The pause of a 1-/3-phase switch is part of the switch (which keeps to the
            // minimum on/off time itself): no short off period.
            let phase_switch_pause = c != Current::ZERO
                && self
                    .phase_log
                    .last()
                    .is_some_and(|(at, _)| self.last_switch.is_none_or(|l| *at >= l));
            if plugged {
                if !phase_switch_pause
                    && self
                        .last_switch
                        .is_some_and(|l| t.saturating_sub(l) < min_switch)
                {
                    self.short_periods += 1;
                }
                self.last_switch = Some(t);
            } else {
                self.last_switch = None;
            }
        }
        self.setpoint = c;
        self.history.push((t, c));
        switched
    }

    fn new(spec: &PointSpec) -> Self {
        Self {
            id: spec.id,
            wired: spec.phases,
            switchable: spec.phase_switch && spec.phases == 3,
            switched: if spec.phases == 3 {
                PhaseCount::Three
            } else {
                PhaseCount::One
            },
            pause_until: None,
            phase_log: Vec::new(),
            logged: 0,
            setpoint: Current::ZERO,
            history: vec![(Duration::ZERO, Current::ZERO)],
            changes: 0,
            reversals: 0,
            last_direction: 0,
            last_switch: None,
            short_periods: 0,
            start_switches: 0,
        }
    }

    /// Phases its box offers now.
    fn phases(&self) -> u8 {
        self.wired.min(self.switched.count())
    }

    /// What the box offers a vehicle with `reaction` delay at `t`: nothing during a phase
    /// switch's pause, else its setpoint as the vehicle follows it.
    fn offer(&self, t: Duration, reaction: Duration) -> Current {
        if self.pause_until.is_some_and(|u| t < u) {
            return Current::ZERO;
        }
        self.seen(t, reaction)
    }

    /// The box's answer to `SetPhases(phases)` at `t` (`plugged`: a vehicle is plugged in).
    /// A KEBA P30 with a KeContact S10 under Modbus control or an Alfen Eve with 1-/3-phase
    /// charging allowed: `Done`; asking for what it switches already changes nothing; a box
    /// that cannot switch refuses (docs/chargers.md, "1-/3-phase switching").
    fn set_phases(&mut self, t: Duration, phases: PhaseCount, plugged: bool) -> CommandOutcome {
        if !self.switchable {
            return CommandOutcome::NotPossible(
                "simulated box: cannot switch between 1 and 3 phases".to_owned(),
            );
        }
        if phases != self.switched {
            self.switched = phases;
            self.phase_log.push((t, phases));
            if plugged {
                self.pause_until = Some(t + PHASE_SWITCH_PAUSE);
            }
        }
        CommandOutcome::Done
    }

    /// The setpoint a vehicle with `reaction` delay follows at `t`.
    fn seen(&self, t: Duration, reaction: Duration) -> Current {
        let Some(cut) = t.checked_sub(reaction) else {
            return self.history.first().map_or(Current::ZERO, |h| h.1);
        };
        self.history
            .iter()
            .rev()
            .find(|(at, _)| *at <= cut)
            .map_or(Current::ZERO, |h| h.1)
    }
}

#[derive(Default)]
struct VehicleStats {
    wanting_s: f64,
    current_as: f64,
    waiting_s: f64,
    wait_since: Option<Duration>,
    longest_wait: Duration,
    bound_wh: f64,
}

/// Everything the core's actions act on.
struct World {
    points: Vec<PointSim>,
    /// Command answers the charger tasks have not reported yet.
    answers: Vec<(ChargePointId, ChargerCommand, CommandOutcome)>,
    switches: u32,
    implausible: u32,
    min_switch: Duration,
}

impl World {
    fn apply(
        &mut self,
        t: Duration,
        actions: Vec<Action>,
        scenario: &Scenario,
        vehicles: &[Vehicle],
    ) {
        for a in actions {
            match a {
                Action::Charger { cp, command } => {
                    // A command to an unreachable box is lost.
                    let unreachable = scenario
                        .events
                        .unreachable
                        .iter()
                        .any(|u| u.cp == cp && u.window.contains(t));
                    if unreachable {
                        continue;
                    }
                    let plugged = vehicles
                        .iter()
                        .any(|v| v.spec().charging_point == cp && v.present(t));
                    let Some(p) = self.points.iter_mut().find(|p| p.id == cp) else {
                        continue;
                    };
                    match command {
                        ChargerCommand::SetCurrent(c) => {
                            self.switches += p.set_current(t, c, plugged, self.min_switch);
                        }
                        ChargerCommand::SetPhases(n) => {
                            let outcome = p.set_phases(t, n, plugged);
                            self.answers
                                .push((cp, ChargerCommand::SetPhases(n), outcome));
                        }
                        _ => {}
                    }
                }
                Action::SetObject {
                    value: Value::Current(c),
                    ..
                } if c > IMPLAUSIBLE => self.implausible += 1,
                _ => {}
            }
        }
    }
}

/// A vehicle in the linear program: its index, its taker and phase count, and the 1-phase
/// alternative where its box may switch.
type LpTaker = (usize, Taker, f64, Option<(Taker, f64)>);

/// The best power over every choice of phases of the takers with an alternative, and per
/// vehicle its current and phase count in that choice.
fn best_choice(room: [f64; 3], takers: &[LpTaker]) -> (f64, Vec<(usize, f64, f64)>) {
    // At most five charging points: 32 choices.
    let alts = takers.iter().filter(|t| t.3.is_some()).count().min(5);
    let mut best: (f64, Vec<(usize, f64, f64)>) = (-1.0, Vec::new());
    for mask in 0u32..(1 << alts) {
        let mut k = 0;
        let mut list = Vec::with_capacity(takers.len());
        let mut ns = Vec::with_capacity(takers.len());
        for (_, own, n_own, alt) in takers {
            let (tk, n) = match alt {
                Some((a, n_alt)) => {
                    let one = mask & (1 << k) != 0;
                    k += 1;
                    if one { (a, *n_alt) } else { (own, *n_own) }
                }
                None => (own, *n_own),
            };
            list.push(tk.clone());
            ns.push(n);
        }
        let (watts, x) = bound::best(room, &list, VOLTAGE);
        if watts > best.0 {
            let chosen = takers
                .iter()
                .zip(x)
                .zip(ns)
                .map(|((t, xi), n)| (t.0, xi, n))
                .collect();
            best = (watts, chosen);
        }
    }
    (best.0.max(0.0), best.1)
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn amps(c: Current) -> f64 {
    c.as_amps_f64()
}

fn current(a: f64) -> Current {
    Current::from_amps_f64(a).unwrap_or(Current::ZERO)
}

/// Runs `scenario` once with `mode`.
pub fn run(scenario: &Scenario, mode: AllocationMode) -> Result<RunResult, super::ScenarioError> {
    let config = scenario.config(mode)?;
    let budget = config.dlm.budget();
    let min_switch = config.dlm.min_switch_time;
    let mut core = Core::new(config, true);
    let base = Instant::now();
    let at = |t: Duration| base + t;
    let step = scenario.step;
    let dt = step.as_secs_f64();
    let device = Device::new(scenario.protection.0, scenario.protection.1);
    let mut thermal: [Thermal; 3] = Default::default();
    let mut meter_model = Meter::new(scenario.meter, scenario.meter_interval);
    let mut world = World {
        points: scenario.points.iter().map(PointSim::new).collect(),
        answers: Vec::new(),
        switches: 0,
        implausible: 0,
        min_switch,
    };
    let mut vehicles: Vec<Vehicle> = scenario.vehicles.iter().map(Vehicle::new).collect();
    let mut stats: Vec<VehicleStats> = scenario
        .vehicles
        .iter()
        .map(|_| VehicleStats::default())
        .collect();
    let actions = core.handle(Event::Started, at(Duration::ZERO));
    world.apply(Duration::ZERO, actions, scenario, &vehicles);

    let mut rows = Vec::new();
    let mut timeline: Vec<TimelineEntry> = Vec::new();
    let mut overload = [0.0f64; 3];
    let mut over = [0.0f64; 3];
    let mut over_house = [0.0f64; 3];
    let mut over_charging = [0.0f64; 3];
    let mut charging_since: Option<Duration> = None;
    let mut longest_charging = Duration::ZERO;
    let mut excursion: [Option<Duration>; 3] = [None; 3];
    let mut max_meter = [0.0f64; 3];
    let mut bound_wh = 0.0f64;
    let mut bound_lp_wh = 0.0f64;
    let mut emergency_s = 0.0f64;
    let mut high_power_s = 0.0f64;
    let mut stale = 0u32;
    let mut last_tick: Option<Instant> = None;
    let mut grid_on = false;
    let mut interrupted: Vec<bool> = vec![false; scenario.points.len()];
    let mut next_high_power = 0usize;
    let mut faults_before: BTreeSet<(Option<u8>, String)> = BTreeSet::new();
    let mut limits_before: Vec<Option<&'static str>> = vec![None; scenario.points.len()];
    let mut events_before: BTreeSet<String> = BTreeSet::new();
    let mut one_phase_s: Vec<f64> = vec![0.0; scenario.points.len()];
    let steps = scenario.duration.as_nanos() / step.as_nanos().max(1);
    let mut t = Duration::ZERO;
    for _ in 0..steps {
        let now = at(t);
        let whole_second = t.subsec_nanos() == 0;
        // The charger tasks report the answers of the commands sent in the last step.
        for _ in 0..100 {
            if world.answers.is_empty() {
                break;
            }
            for (cp, command, outcome) in std::mem::take(&mut world.answers) {
                let a = core.handle(
                    Event::ChargerCommandDone {
                        cp,
                        command,
                        outcome,
                    },
                    now,
                );
                world.apply(t, a, scenario, &vehicles);
            }
        }
        // Scenario events.
        let grid = scenario.events.grid_control.iter().any(|w| w.contains(t));
        if grid != grid_on {
            grid_on = grid;
            let a = core.handle(
                Event::ObjectWritten {
                    object: GoNumber(1),
                    value: Value::Bool(grid),
                },
                now,
            );
            world.apply(t, a, scenario, &vehicles);
        }
        for (pi, p) in scenario.points.iter().enumerate() {
            let on = scenario
                .events
                .interruption
                .iter()
                .any(|w| w.cp == p.id && w.window.contains(t));
            if interrupted.get(pi).copied() != Some(on) {
                if let Some(slot) = interrupted.get_mut(pi) {
                    *slot = on;
                }
                let a = core.handle(
                    Event::ObjectWritten {
                        object: GoNumber(p.id.object_base() + 5),
                        value: Value::Bool(on),
                    },
                    now,
                );
                world.apply(t, a, scenario, &vehicles);
            }
        }
        while scenario
            .events
            .high_power
            .get(next_high_power)
            .is_some_and(|h| *h <= t)
        {
            next_high_power += 1;
            let a = core.handle(
                Event::ObjectWritten {
                    object: GoNumber(13),
                    value: Value::Bool(true),
                },
                now,
            );
            world.apply(t, a, scenario, &vehicles);
        }
        // Physics at t.
        let mut house = scenario.house.at(t);
        for s in &scenario.events.load_steps {
            if s.window.contains(t) {
                for p in Phase::ALL {
                    house.set(p, house.get(p) + s.current.get(p));
                }
            }
        }
        let mut meter = house;
        let zero = PerPhase::splat(Current::ZERO);
        let mut draws: Vec<Current> = vec![Current::ZERO; world.points.len()];
        let mut draws_grid: Vec<PerPhase<Current>> = vec![zero; world.points.len()];
        let mut cp_currents: Vec<Option<PerPhase<Current>>> = vec![None; world.points.len()];
        // Bounds: per phase, what vehicles could take (Wh this step); LP takers.
        let mut could_wh = [0.0f64; 3];
        let mut takers: Vec<LpTaker> = Vec::new();
        for (vi, v) in vehicles.iter_mut().enumerate() {
            if !v.present(t) {
                continue;
            }
            let cp = v.spec().charging_point;
            let Some(pi) = world.points.iter().position(|p| p.id == cp) else {
                continue;
            };
            let Some(spec) = scenario.point(cp) else {
                continue;
            };
            let Some(st) = stats.get_mut(vi) else {
                continue;
            };
            let (offer, box_phases) = world
                .points
                .get(pi)
                .map_or((Current::ZERO, spec.phases), |p| {
                    (p.offer(t, v.spec().reaction), p.phases())
                });
            let wanting = v.wanting();
            let remaining = v.remaining_wh();
            v.step(t, dt, offer, box_phases);
            let phases = v.grid_phases(spec);
            // The per-phase bound counts the vehicle on all the phases it could draw on (a
            // switched box could offer three again).
            let bound_phases = spec.grid_phases(v.phases_now(t));
            #[allow(clippy::cast_precision_loss, reason = "1 to 3 phases")]
            let n = bound_phases.len().max(1) as f64;
            let draw = current(v.draw);
            if wanting {
                let cap = amps(v.spec().max_current.min(spec.max));
                for p in &bound_phases {
                    if let Some(slot) = could_wh.get_mut(p.index()) {
                        *slot += (cap * VOLTAGE * dt / 3600.0).min(remaining / n);
                    }
                }
                st.wanting_s += dt;
                st.current_as += v.draw * dt;
            }
            // Waiting: it wants to charge and is offered less than it may start with.
            let box_setpoint = world.points.get(pi).map_or(Current::ZERO, |p| p.setpoint);
            if wanting && v.available(t) && amps(box_setpoint) < MIN_OFFER {
                let since = *st.wait_since.get_or_insert(t);
                st.longest_wait = st.longest_wait.max((t + step).saturating_sub(since));
                st.waiting_s += dt;
            } else {
                st.wait_since = None;
            }
            // The LP bound's own vehicle.
            let bound_remaining = (v.spec().energy.as_watt_hours_f64() - st.bound_wh).max(0.0);
            if v.available(t) && bound_remaining > 1e-9 {
                let taker = |n: u8| {
                    let n_bound = f64::from(n.min(spec.phases)).max(1.0);
                    let by_energy = bound_remaining * 3600.0 / (VOLTAGE * n_bound * dt);
                    let cap = v.ceiling_at(st.bound_wh).min(amps(spec.max)).min(by_energy);
                    (
                        Taker {
                            phases: spec.grid_phases(n),
                            cap,
                        },
                        n_bound,
                    )
                };
                let (own, n_own) = taker(v.phases_now(t));
                // A box that may switch could also have offered one phase.
                let alt =
                    (spec.phase_switch && v.phases_now(t).min(spec.phases) > 1).then(|| taker(1));
                takers.push((vi, own, n_own, alt));
            }
            let mut grid = zero;
            for p in &phases {
                meter.set(*p, meter.get(*p) + draw);
                grid.set(*p, draw);
            }
            if let Some(slot) = draws.get_mut(pi) {
                *slot = draw;
            }
            if let Some(slot) = draws_grid.get_mut(pi) {
                *slot = grid;
            }
            if let Some(slot) = cp_currents.get_mut(pi) {
                *slot = Some(PerPhase(v.point_currents(spec)));
            }
        }
        let mut room = [0.0f64; 3];
        let mut charging_over = zero;
        let mut charging_over_any = false;
        for p in Phase::ALL {
            let i = p.index();
            let avail = amps(budget.saturating_sub(house.get(p)).max(Current::ZERO));
            if let Some(slot) = room.get_mut(i) {
                *slot = avail;
            }
            if let Some(c) = could_wh.get(i) {
                bound_wh += (avail * VOLTAGE * dt / 3600.0).min(*c);
            }
            let m = amps(meter.get(p));
            if let Some(slot) = max_meter.get_mut(i) {
                *slot = slot.max(m);
            }
            if let Some(th) = thermal.get_mut(i) {
                th.step(&device, m, dt, t.as_secs_f64());
            }
            let fuse = amps(scenario.fuse);
            let excess = (m - fuse).max(0.0);
            let by_house = (amps(house.get(p)) - fuse).max(0.0).min(excess);
            if let (Some(o), Some(oh), Some(oc)) = (
                over.get_mut(i),
                over_house.get_mut(i),
                over_charging.get_mut(i),
            ) {
                *o += excess * dt;
                *oh += by_house * dt;
                *oc += (excess - by_house) * dt;
            }
            if excess - by_house > 1e-9 {
                charging_over.set(p, current(excess - by_house));
                charging_over_any = true;
            }
            let (Some(ex), Some(ov)) = (excursion.get_mut(i), overload.get_mut(i)) else {
                continue;
            };
            if meter.get(p) > scenario.fuse {
                let start = *ex.get_or_insert(t);
                if t.saturating_sub(start) >= REACTION_WINDOW {
                    *ov += (m - fuse) * dt;
                }
            } else {
                *ex = None;
            }
        }
        if charging_over_any {
            let since = *charging_since.get_or_insert(t);
            longest_charging = longest_charging.max((t + step).saturating_sub(since));
        } else {
            charging_since = None;
        }
        // The linear program (the minimums relaxed: an upper bound); with every choice of
        // phases for the boxes that may switch, the best.
        let (watts, chosen) = best_choice(room, &takers);
        bound_lp_wh += watts * dt / 3600.0;
        for (vi, xi, n) in chosen {
            if let Some(st) = stats.get_mut(vi) {
                st.bound_wh += xi * VOLTAGE * n * dt / 3600.0;
            }
        }
        // The meter measures and sends.
        let silent = scenario.events.meter_silence.iter().any(|w| w.contains(t));
        for tg in meter_model.step(t, &meter, silent) {
            let a = core.handle(
                Event::ObjectWritten {
                    object: tg.object,
                    value: tg.value,
                },
                now,
            );
            world.apply(t, a, scenario, &vehicles);
        }
        // The charging points are polled every second.
        if whole_second {
            for (pi, slot) in cp_currents.iter().enumerate() {
                let Some(point) = world.points.get(pi) else {
                    continue;
                };
                let cp = point.id;
                let in_window =
                    |w: &super::scenario::PointWindow| w.cp == cp && w.window.contains(t);
                let event = if scenario.events.unreachable.iter().any(in_window) {
                    Event::ChargerFailed {
                        cp,
                        error: DriverError::NotReachable("simulated: no answer".to_owned()),
                    }
                } else {
                    let invalid = scenario
                        .events
                        .invalid_current
                        .iter()
                        .find(|i| in_window(&i.at));
                    match (invalid, slot) {
                        (Some(i), _) if i.kind == InvalidKind::Flagged => Event::ChargerFailed {
                            cp,
                            error: DriverError::InvalidCurrent(
                                "simulated: invalid current marker".to_owned(),
                            ),
                        },
                        _ => {
                            let mut status = poll_status(point.setpoint, slot.as_ref());
                            if point.switchable {
                                status.phases_switched = Some(point.switched);
                                status.phase_switch_available = Some(true);
                            }
                            if let Some(i) = invalid {
                                status.currents =
                                    Some(PerPhase::splat(Current::from_milliamps(i.milliamps)));
                            }
                            Event::ChargerPolled { cp, status }
                        }
                    }
                };
                let a = core.handle(event, now);
                world.apply(t, a, scenario, &vehicles);
            }
        }
        // Timers the core asked for, inside this step.
        for _ in 0..1000 {
            let Some(due) = core.poll_timeout() else {
                break;
            };
            if due >= now + step {
                break;
            }
            if last_tick.is_some_and(|l| due <= l) {
                stale += 1;
                break;
            }
            let tick_at = due.max(now);
            last_tick = Some(tick_at);
            let a = core.handle(Event::Tick, tick_at);
            world.apply(t, a, scenario, &vehicles);
        }
        // Record.
        let cycle = core.dlm_cycle();
        if cycle.is_some_and(|c| c.emergency) {
            emergency_s += dt;
        }
        if cycle.is_some_and(|c| c.high_power) {
            high_power_s += dt;
        }
        for (p, s) in world.points.iter().zip(one_phase_s.iter_mut()) {
            if p.phases() == 1 && p.wired == 3 {
                *s += dt;
            }
        }
        if whole_second {
            for p in &mut world.points {
                for (at, n) in p.phase_log.iter().skip(p.logged) {
                    timeline.push(TimelineEntry {
                        t_s: at.as_secs(),
                        kind: "phases",
                        charging_point: Some(p.id.number()),
                        what: format!("switched to {} phase(s)", n.count()),
                    });
                }
                p.logged = p.phase_log.len();
            }
            record_timeline(
                &mut timeline,
                t,
                &core,
                scenario,
                &mut faults_before,
                &mut limits_before,
                &mut events_before,
            );
            rows.push(Row {
                t,
                meter,
                house,
                budget: cycle.map_or(PerPhase::splat(budget), |c| c.budget),
                available: cycle.map_or(zero, |c| c.available),
                emergency: cycle.is_some_and(|c| c.emergency),
                high_power: cycle.is_some_and(|c| c.high_power),
                grid_control: grid_on,
                setpoints: world.points.iter().map(|p| p.setpoint).collect(),
                actual: draws,
                actual_phases: draws_grid,
                phases: world.points.iter().map(PointSim::phases).collect(),
                charging_over_fuse: charging_over,
            });
        }
        t += step;
    }

    let energy_wh: f64 = vehicles.iter().map(|v| v.delivered_wh).sum();
    let means: Vec<f64> = stats
        .iter()
        .filter(|v| v.wanting_s > 0.0)
        .map(|v| v.current_as / v.wanting_s)
        .collect();
    let hours = scenario.duration.as_secs_f64() / 3600.0;
    let per_hour = |n: u32| {
        round4(if hours > 0.0 {
            f64::from(n) / hours
        } else {
            0.0
        })
    };
    let points: Vec<PointSummary> = world
        .points
        .iter()
        .zip(&one_phase_s)
        .map(|(p, one)| PointSummary {
            charging_point: p.id.number(),
            phase_switches: u32::try_from(p.phase_log.len()).unwrap_or(u32::MAX),
            one_phase_s: round4(*one),
            setpoint_changes_per_hour: per_hour(p.changes),
            reversals_per_hour: per_hour(p.reversals),
            short_on_off_periods: p.short_periods,
            start_switches: p.start_switches,
        })
        .collect();
    let vehicle_summaries: Vec<VehicleSummary> = vehicles
        .iter()
        .zip(&stats)
        .map(|(v, st)| VehicleSummary {
            name: v.spec().name.clone(),
            charging_point: v.spec().charging_point.number(),
            wanted_kwh: round4(v.spec().energy.as_watt_hours_f64() / 1000.0),
            delivered_kwh: round4(v.delivered_wh / 1000.0),
            mean_current_a: round4(if st.wanting_s > 0.0 {
                st.current_as / st.wanting_s
            } else {
                0.0
            }),
            longest_wait_s: round4(st.longest_wait.as_secs_f64()),
            waiting_share: round4(if st.wanting_s > 0.0 {
                st.waiting_s / st.wanting_s
            } else {
                0.0
            }),
        })
        .collect();
    let tripped_at = thermal
        .iter()
        .filter_map(|th| th.tripped_at)
        .reduce(f64::min);
    let ratio = |e: f64, b: f64| round4(if b > 0.0 { e / b } else { 1.0 });
    let summary = Summary {
        scenario: scenario.name.clone(),
        mode,
        duration_s: scenario.duration.as_secs_f64(),
        step_s: dt,
        fuse_a: amps(scenario.fuse),
        budget_a: amps(budget),
        overload_amp_seconds: Phases::from_array(overload),
        over_fuse_amp_seconds: Phases::from_array(over),
        over_fuse_house_amp_seconds: Phases::from_array(over_house),
        over_fuse_charging_amp_seconds: Phases::from_array(over_charging),
        longest_charging_over_fuse_s: round4(longest_charging.as_secs_f64()),
        protection: ProtectionSummary {
            device: device.name(),
            tripped: tripped_at.is_some(),
            tripped_at_s: tripped_at.map(round4),
            max_integral_used: Phases::from_array(
                [0, 1, 2].map(|i| thermal.get(i).map_or(0.0, |th| th.max_used)),
            ),
        },
        max_meter_a: Phases::from_array(max_meter),
        energy_kwh: round4(energy_wh / 1000.0),
        energy_bound_kwh: round4(bound_wh / 1000.0),
        efficiency: ratio(energy_wh, bound_wh),
        energy_bound_lp_kwh: round4(bound_lp_wh / 1000.0),
        efficiency_lp: ratio(energy_wh, bound_lp_wh),
        jain_fairness: round4(jain(&means)),
        switch_events: world.switches,
        longest_wait_s: vehicle_summaries
            .iter()
            .map(|v| v.longest_wait_s)
            .fold(0.0, f64::max),
        max_setpoint_changes_per_hour: points
            .iter()
            .map(|p| p.setpoint_changes_per_hour)
            .fold(0.0, f64::max),
        short_on_off_periods: points.iter().map(|p| p.short_on_off_periods).sum(),
        implausible_values_published: world.implausible,
        emergency_s: round4(emergency_s),
        high_power_s: round4(high_power_s),
        stale_poll_timeouts: stale,
        points,
        vehicles: vehicle_summaries,
    };
    Ok(RunResult {
        summary,
        rows,
        timeline,
    })
}

/// What a box reports at a poll: `currents` on its own phases while a vehicle is plugged.
fn poll_status(setpoint: Current, currents: Option<&PerPhase<Current>>) -> ChargerStatus {
    match currents {
        Some(currents) => {
            let charging = currents.0.iter().any(|c| *c > Current::ZERO);
            let watts: f64 = currents.0.iter().map(|c| amps(*c) * VOLTAGE).sum();
            ChargerStatus {
                state: Some(if charging {
                    CpState::Charging
                } else {
                    CpState::Connected
                }),
                connected: true,
                charging,
                setpoint: Some(setpoint),
                currents: Some(*currents),
                power: Power::from_watts_f64(watts).ok(),
                ..ChargerStatus::default()
            }
        }
        None => ChargerStatus {
            state: Some(CpState::Available),
            setpoint: Some(setpoint),
            currents: Some(PerPhase::splat(Current::ZERO)),
            power: Some(Power::ZERO),
            ..ChargerStatus::default()
        },
    }
}

/// Appends what changed since the last second: faults raised or cleared, each point's limit
/// reason, scenario events starting or ending.
fn record_timeline(
    timeline: &mut Vec<TimelineEntry>,
    t: Duration,
    core: &Core,
    scenario: &Scenario,
    faults_before: &mut BTreeSet<(Option<u8>, String)>,
    limits_before: &mut [Option<&'static str>],
    events_before: &mut BTreeSet<String>,
) {
    let t_s = t.as_secs();
    let faults: BTreeSet<(Option<u8>, String)> = core
        .faults()
        .present()
        .into_iter()
        .map(|f| {
            (
                f.charging_point.map(ChargePointId::number),
                format!("{}: {}", f.code.text(), f.message),
            )
        })
        .collect();
    for (cp, what) in faults.difference(faults_before) {
        timeline.push(TimelineEntry {
            t_s,
            kind: "fault+",
            charging_point: *cp,
            what: what.clone(),
        });
    }
    for (cp, what) in faults_before.difference(&faults) {
        timeline.push(TimelineEntry {
            t_s,
            kind: "fault-",
            charging_point: *cp,
            what: what.clone(),
        });
    }
    *faults_before = faults;
    let limits = core.limits();
    for (p, before) in scenario.points.iter().zip(limits_before.iter_mut()) {
        let now = limits.get(p.id).map(crate::dlm::Limit::key);
        if now != *before {
            timeline.push(TimelineEntry {
                t_s,
                kind: "limit",
                charging_point: Some(p.id.number()),
                what: now.unwrap_or("none").to_owned(),
            });
            *before = now;
        }
    }
    let e = &scenario.events;
    let mut events: BTreeSet<String> = BTreeSet::new();
    for w in &e.meter_silence {
        if w.contains(t) {
            events.insert("meter silent".to_owned());
        }
    }
    for w in &e.grid_control {
        if w.contains(t) {
            events.insert("grid-supporting control".to_owned());
        }
    }
    for s in &e.load_steps {
        if s.window.contains(t) {
            let c = s.current.0.map(amps);
            events.insert(format!("load step {:.0}/{:.0}/{:.0} A", c[0], c[1], c[2]));
        }
    }
    for u in &e.unreachable {
        if u.window.contains(t) {
            events.insert(format!("CP{} unreachable", u.cp));
        }
    }
    for u in &e.interruption {
        if u.window.contains(t) {
            events.insert(format!("CP{} interrupted (object 55)", u.cp));
        }
    }
    for i in &e.invalid_current {
        if i.at.window.contains(t) {
            events.insert(format!("CP{} reports invalid currents", i.at.cp));
        }
    }
    for what in events.difference(events_before) {
        timeline.push(TimelineEntry {
            t_s,
            kind: "event",
            charging_point: None,
            what: format!("{what}: begins"),
        });
    }
    for what in events_before.difference(&events) {
        timeline.push(TimelineEntry {
            t_s,
            kind: "event",
            charging_point: None,
            what: format!("{what}: ends"),
        });
    }
    *events_before = events;
}

/// Jain's fairness index: (Σx)² / (n·Σx²); 1 for no values or all zero.
pub fn jain(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let sq: f64 = values.iter().map(|x| x * x).sum();
    if values.is_empty() || sq <= 0.0 {
        return 1.0;
    }
    #[allow(clippy::cast_precision_loss, reason = "a handful of vehicles")]
    let n = values.len() as f64;
    sum * sum / (n * sq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_index_is_one_for_equal_shares_and_one_over_n_for_one_taker() {
        assert!((jain(&[10.0, 10.0, 10.0]) - 1.0).abs() < 1e-12);
        assert!((jain(&[30.0, 0.0, 0.0]) - 1.0 / 3.0).abs() < 1e-12);
        assert!((jain(&[]) - 1.0).abs() < 1e-12);
    }

    fn point(phase_switch: bool) -> PointSpec {
        PointSpec {
            id: ChargePointId::new(1).unwrap(),
            phases: 3,
            rotation: [Phase::L2, Phase::L3, Phase::L1],
            min: Current::from_amps(6),
            max: Current::from_amps(16),
            phase_switch,
        }
    }

    #[test]
    fn a_box_that_may_switch_pauses_then_offers_one_phase_and_one_that_may_not_refuses() {
        let s = Duration::from_secs;
        let mut p = PointSim::new(&point(true));
        p.setpoint = Current::from_amps(8);
        p.history.push((s(1), Current::from_amps(8)));
        assert_eq!(p.phases(), 3);
        assert_eq!(
            p.set_phases(s(100), PhaseCount::One, true),
            CommandOutcome::Done
        );
        assert_eq!(p.phases(), 1);
        let r = s(2);
        assert_eq!(p.offer(s(100), r), Current::ZERO, "the pause begins");
        assert_eq!(
            p.offer(
                s(100) + PHASE_SWITCH_PAUSE.saturating_sub(Duration::from_millis(1)),
                r
            ),
            Current::ZERO
        );
        assert_eq!(
            p.offer(s(100) + PHASE_SWITCH_PAUSE, r),
            Current::from_amps(8)
        );
        // Asking for what it switches already changes nothing and pauses nothing.
        assert_eq!(
            p.set_phases(s(200), PhaseCount::One, true),
            CommandOutcome::Done
        );
        assert_eq!(p.offer(s(200), r), Current::from_amps(8));
        assert_eq!(p.phase_log, vec![(s(100), PhaseCount::One)]);
        // Without a vehicle it switches without a pause.
        assert_eq!(
            p.set_phases(s(300), PhaseCount::Three, false),
            CommandOutcome::Done
        );
        assert_eq!((p.phases(), p.offer(s(300), r)), (3, Current::from_amps(8)));

        let mut q = PointSim::new(&point(false));
        assert!(matches!(
            q.set_phases(s(100), PhaseCount::One, true),
            CommandOutcome::NotPossible(_)
        ));
        assert_eq!(q.phases(), 3);
        assert!(q.phase_log.is_empty());
        let mut one = PointSim::new(&PointSpec {
            phases: 1,
            ..point(true)
        });
        assert!(!one.switchable);
        assert!(matches!(
            one.set_phases(s(1), PhaseCount::Three, true),
            CommandOutcome::NotPossible(_)
        ));
        assert_eq!(one.phases(), 1);
    }

    #[test]
    fn a_vehicle_follows_its_setpoint_after_the_reaction_delay() {
        let p = PointSim {
            setpoint: Current::from_amps(10),
            history: vec![
                (Duration::ZERO, Current::ZERO),
                (Duration::from_secs(10), Current::from_amps(10)),
            ],
            ..PointSim::new(&point(false))
        };
        let r = Duration::from_secs(2);
        assert_eq!(p.seen(Duration::from_secs(11), r), Current::ZERO);
        assert_eq!(p.seen(Duration::from_secs(12), r), Current::from_amps(10));
        assert_eq!(p.seen(Duration::from_secs(1), r), Current::ZERO);
    }
}
