//! The DLM controller inside the core: smart-meter supervision, emergency mode,
//! high-power devices, and turning the allocation into a current per charging point.
//!
//! Inputs: smart-meter values on objects 10–12 (current, or power converted at the nominal
//! voltage; a 1-phase meter's value counts on every phase), the "In operation" trigger on
//! object 20, high-power devices on object 13, and each charging point's measured currents,
//! mapped to grid phases through its rotation. Where a charging point has no metering, its
//! setpoint counts as its current.
//!
//! Rules:
//! * Budget per phase = overcurrent protection − load reserve. Other load = meter − what
//!   the charging points drew at the reading's moment, at least 0; that draw is estimated
//!   never too high (see [`Core::estimate_other`] and `docs/dlm.md`), so a lagging
//!   measurement never frees budget. Available = budget − other load. [`crate::dlm::allocate()`] shares it among the charging
//!   points with a vehicle connected. A charging point without a vehicle gets 0 A, and gets
//!   its minimum on the next cycle after a vehicle arrives.
//! * Every supervised object must deliver on its own within interval + tolerance: with
//!   monitoring "values" each phase object of the meter (10; 10, 11, 12 with a 3-phase
//!   meter), with "values and In operation" the trigger on object 20 (values then come only
//!   on change; they never stand in for a missing trigger). A silent one → SmartMeterTOut
//!   (90) and emergency mode: every charging point reduced to its minimum until values
//!   return. The same holds before the first value arrives and while
//!   DLMAssociation (120) is present: with no trustworthy measurement, the minimum is the
//!   lowest current that still charges, and it is what the spec's emergency mode uses.
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
//!   is given less, the others on its phases are not raised for the reaction time.
//! * A charging point with invalid currents (DLM InvCurrent) is excluded and gets 0 A;
//!   the device fault DLM InvCurrent (70) shows while any charging point has it.
//! * Every cycle records why each charging point gets its current ([`Limit`]): the
//!   allocation's reason, replaced by the step that lowered or held the current after it
//!   (unbalance, power cap, shortage check, emergency, high-power wait, ramp, minimum on/off
//!   time, break before make), or why it was left out (no vehicle, interrupted, invalid
//!   currents, not reachable). [`Core::limit_of`] adds what the core decides outside the DLM
//!   (interruption, grid-supporting control) and a vehicle drawing less than it may.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Action, Core};
use crate::config::{MeterConnection, MonitoringMode, OvercurrentStrategy, PhaseCount};
use crate::dlm::{Demand, Limit, Limits, Mode, Shortage, allocate};
use crate::faults::{Fault, FaultCode, Scope};
use crate::objects::Value;
use crate::objects::number::device as object;
use crate::units::{ChargePointId, Current, GoNumber, PerPhase, Phase};

/// The smart meter's value objects (L1 or the total, L2, L3).
const METER_VALUES: [GoNumber; 3] = [
    object::METER_VALUE_1,
    object::METER_VALUE_2,
    object::METER_VALUE_3,
];

/// How often increases are re-evaluated while ramping (the step follows the elapsed time).
const RAMP_STEP: std::time::Duration = std::time::Duration::from_millis(250);

/// The least reduction that holds raises nearby for [`REACTION`] (break before make). The
/// other-load estimate moves by a few hundred milliamperes from reading to reading; when
/// every such wobble held the raises of all charging points on the same phases, a point
/// waiting below its share could wait for tens of seconds (the reaction bench saw 20 s and
/// more). A smaller reduction in flight overlaps a raise by less than this for at most the
/// reaction time, well inside the load reserve and the fuse's tolerance.
const MAKE_AFTER_BREAK_STEP: Current = Current::from_milliamps(1_000);

/// How long a vehicle may take to follow a new current (for the other-load estimate).
const REACTION: std::time::Duration = std::time::Duration::from_secs(2);

/// How long after a meter value polls may refine the other-load estimate; a shortage seen in
/// this window is tentative (charging points are held at their minimum, not interrupted).
const REFINE: std::time::Duration = std::time::Duration::from_secs(3);

/// Meter values closer together than this belong to one reading (a KNX meter sends its
/// phases as separate telegrams, milliseconds apart).
const BURST: std::time::Duration = std::time::Duration::from_millis(500);

/// Current above which a charging-point phase counts as used by the vehicle.
const PHASE_DETECTION: Current = Current::from_milliamps(1_000);

/// A vehicle that draws at least this much less than it was told (on its most loaded phase),
/// with time to follow, draws less than it may ([`Limit::VehicleDrawsLess`]).
const DRAWS_LESS: Current = Current::from_milliamps(1_000);

/// DLM state kept by the core.
#[derive(Debug, Default)]
pub(super) struct DlmState {
    /// Last meter reading per grid phase (current).
    meter: [Option<Current>; 3],
    /// When each supervised object (10, 11, 12 values; 20 "In operation") last delivered.
    seen: BTreeMap<GoNumber, Instant>,
    /// When the core started (the first meter deadline runs from here).
    started: Option<Instant>,
    /// High-power device wait ends at.
    high_power_until: Option<Instant>,
    /// Current per charging point as last decided by the DLM.
    pub(super) targets: BTreeMap<ChargePointId, Current>,
    /// When the targets were last ramped.
    last_update: Option<Instant>,
    /// When each charging point was last switched on or off.
    switched: BTreeMap<ChargePointId, Instant>,
    /// Queue order (rotates).
    queue: Vec<ChargePointId>,
    /// Last queue rotation.
    rotated: Option<Instant>,
    /// Budget, load and availability of the last cycle (for the website and simulations).
    pub(super) last: Option<Cycle>,
    /// Other (non-charging) load per phase, estimated when a meter value arrives and held
    /// until the next one.
    other: [Option<Current>; 3],
    /// When the last meter reading began to arrive (polls shortly after it may refine
    /// `other`).
    meter_at: Option<Instant>,
    /// The phases whose value arrived in the last reading: only their other load is
    /// estimated anew; the others keep the estimate from their own value's moment (mixing
    /// an older value with today's charging load would misjudge the house).
    fresh: [bool; 3],
    /// Per charging point, the load its last poll before the last meter reading showed
    /// (grid phases).
    polled_at_meter: Loads,
    /// Per charging point, its latest poll after the last meter reading.
    polled_after_meter: Loads,
    /// Per charging point, what it was commanded from a reaction time before its last poll
    /// up to the last meter reading (taken when the reading arrived, so that what the core
    /// decides after it never counts).
    commanded_before_meter: BTreeMap<ChargePointId, Commanded>,
    /// When each charging point was last polled.
    last_poll: BTreeMap<ChargePointId, Instant>,
    /// When each charging point with a vehicle was last given a lower current (raises of
    /// the others on its phases wait a reaction time).
    lowered_at: BTreeMap<ChargePointId, Instant>,
    /// The last allocation wanted more than the ramp allowed (keep ticking).
    raw_wants_more: bool,
    /// The current shortage is still tentative (within REFINE of its first sight).
    tentative: bool,
    /// When the current shortage of minimum currents was first seen (tentative for REFINE).
    shortage_since: Option<Instant>,
    /// The charging load the core had commanded per charging point (grid phases) over the
    /// last seconds.
    commanded: std::collections::VecDeque<(Instant, Loads)>,
    /// Why each charging point got its DLM current in the last cycle.
    pub(super) limits: Limits,
    /// Per charging point (index 0..=4): its vehicle drew less than it may at its last poll.
    pub(super) draws_less: [bool; ChargePointId::COUNT as usize],
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

impl Core {
    /// Smart-meter and DLM object writes (10, 11, 12, 13, 20).
    pub(super) fn dlm_written(
        &mut self,
        object: GoNumber,
        value: &crate::objects::Value,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if !self.config.dlm.enabled {
            return;
        }
        let phase = match object.0 {
            10 => Some(0),
            11 => Some(1),
            12 => Some(2),
            _ => None,
        };
        match (phase, value) {
            (Some(i), Value::Current(c)) => self.meter_value(i, *c, now),
            (Some(i), Value::Power(p)) => match p.to_current(self.config.dlm.meter.nominal_voltage)
            {
                Some(c) => self.meter_value(i, c, now),
                None => return,
            },
            // Table 20: 1 = active starts (or restarts) the wait; 0 = inactive changes nothing.
            (None, Value::Bool(on)) if object.0 == 13 => {
                if *on {
                    self.dlm.high_power_until = Some(now + self.config.dlm.high_power_waiting_time);
                }
            }
            // Table 21: DPT 1.017 trigger, both 0 and 1 are a trigger.
            (None, Value::Bool(_)) if object.0 == 20 => {}
            _ => return,
        }
        // Supervision per object: only a value that could be used counts as delivered.
        if phase.is_some() || object.0 == 20 {
            self.dlm.seen.insert(object, now);
        }
        self.dlm_update(now, out);
    }

    fn meter_value(&mut self, index: usize, current: Current, now: Instant) {
        if let Some(slot) = self.dlm.meter.get_mut(index) {
            *slot = Some(current);
        }
        let new_reading = self
            .dlm
            .meter_at
            .is_none_or(|t| now.saturating_duration_since(t) > BURST);
        if new_reading {
            self.dlm.meter_at = Some(now);
            self.dlm.fresh = [false; 3];
            self.dlm.polled_at_meter = self.charging_loads();
            self.dlm.commanded_before_meter = self
                .dlm
                .polled_at_meter
                .keys()
                .map(|cp| {
                    let tp = self.dlm.last_poll.get(cp).copied().unwrap_or(now);
                    let from = tp.checked_sub(REACTION).unwrap_or(tp);
                    (*cp, self.commanded_during(*cp, from, now))
                })
                .collect();
            self.dlm.polled_after_meter.clear();
        }
        if let Some(fresh) = self.dlm.fresh.get_mut(index) {
            *fresh = true;
        }
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
    ///   vehicle drew at least `p` at `t` (it may only have been rising): `p` counts. A
    ///   vehicle following a ramp is counted with what it really drew, so the ramp does not
    ///   look like house load (once the cap was the current commanded a reaction time
    ///   before `t`, and the setpoints swung with a fast meter).
    /// * Else a reduction was under way: the smaller of `p` and the lowest current commanded
    ///   in that time counts (the vehicle may or may not have followed it by `t`).
    ///
    /// A later poll never stands for `t` once the current has changed: it shows the change,
    /// not the reading's moment (every reduction would look like house load and the
    /// setpoints would spiral down; every raise like less). Polls within REFINE after the
    /// reading refine the estimate; after that it is held until the next reading.
    fn estimate_other(&mut self, now: Instant) {
        let Some(at) = self.dlm.meter_at else { return };
        if now.saturating_duration_since(at) > REFINE {
            return;
        }
        let zero = PerPhase::splat(Current::ZERO);
        let mut charging = zero;
        let points: std::collections::BTreeSet<ChargePointId> = self
            .dlm
            .polled_at_meter
            .keys()
            .chain(self.dlm.polled_after_meter.keys())
            .copied()
            .collect();
        for cp in points {
            let before = self.dlm.polled_at_meter.get(&cp).copied().unwrap_or(zero);
            let steady = self.commanded_during(cp, at.checked_sub(REACTION).unwrap_or(at), now);
            let after = self
                .dlm
                .polled_after_meter
                .get(&cp)
                .filter(|_| !steady.changed);
            let window = self.dlm.commanded_before_meter.get(&cp).copied();
            for p in Phase::ALL {
                let drew = match after {
                    Some(after) => after.get(p).min(steady.max.get(p)),
                    None => match window {
                        Some(w) if w.reduced => before.get(p).min(w.min.get(p)),
                        _ => before.get(p),
                    },
                };
                charging.set(p, charging.get(p) + drew);
            }
        }
        for p in Phase::ALL {
            if !self.dlm.fresh.get(p.index()).copied().unwrap_or(false) {
                continue;
            }
            let Some(meter) = self.dlm.meter.get(p.index()).copied().flatten() else {
                continue;
            };
            if let Some(slot) = self.dlm.other.get_mut(p.index()) {
                *slot = Some(meter.saturating_sub(charging.get(p)).max(Current::ZERO));
            }
        }
    }

    /// The currents commanded to `cp` (grid phases) while `[from, to]`: the entry in force at
    /// `from` and every later one up to `to`.
    fn commanded_during(&self, cp: ChargePointId, from: Instant, to: Instant) -> Commanded {
        let first = self
            .dlm
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
            .dlm
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

    /// A charging point was polled (its status already updated): within REFINE after a
    /// meter reading the poll may stand for the reading's moment (see
    /// [`Self::estimate_other`]).
    pub(super) fn dlm_polled(&mut self, cp: ChargePointId, now: Instant) {
        self.dlm.last_poll.insert(cp, now);
        if self
            .dlm
            .meter_at
            .is_none_or(|t| now <= t || now.saturating_duration_since(t) > REFINE)
        {
            return;
        }
        if let Some(load) = self.charging_load(cp) {
            self.dlm.polled_after_meter.insert(cp, load);
        }
    }

    /// Remembers the charging load now commanded per charging point, on grid phases (for
    /// [`Self::estimate_other`]).
    fn remember_commanded(&mut self, now: Instant) {
        let mut loads = Loads::new();
        for (cp, target) in &self.dlm.targets {
            let Some(cfg) = self.config.charging_point(*cp) else {
                continue;
            };
            let cp_phases = match cfg.phases {
                PhaseCount::One => PerPhase([*target, Current::ZERO, Current::ZERO]),
                PhaseCount::Three => PerPhase::splat(*target),
            };
            loads.insert(*cp, super::points::to_grid(cfg.rotation, cp_phases));
        }
        if self.dlm.commanded.back().is_some_and(|(_, l)| *l == loads) {
            return;
        }
        self.dlm.commanded.push_back((now, loads));
        // Keep what the estimate can still need (entries older than 10 s, but always one).
        while self.dlm.commanded.len() > 1
            && self.dlm.commanded.get(1).is_some_and(|(t, _)| {
                now.saturating_duration_since(*t) > std::time::Duration::from_secs(10)
            })
        {
            self.dlm.commanded.pop_front();
        }
    }

    /// The objects that must each deliver within interval + tolerance: with monitoring
    /// "values", every phase object of the meter (10; 10, 11 and 12 with a 3-phase meter);
    /// with "values and In operation", the trigger on object 20 (the values then come only
    /// on change and cannot be required).
    fn supervised(&self) -> &'static [GoNumber] {
        const ONE: [GoNumber; 1] = [object::METER_VALUE_1];
        const THREE: [GoNumber; 3] = METER_VALUES;
        const TRIGGER: [GoNumber; 1] = [object::IN_OPERATION];
        let m = &self.config.dlm.meter;
        match (m.monitoring, m.connection) {
            (MonitoringMode::ValuesAndInOperation, _) => &TRIGGER,
            (MonitoringMode::Values, MeterConnection::OnePhase) => &ONE,
            (MonitoringMode::Values, MeterConnection::ThreePhase) => &THREE,
        }
    }

    /// The instant by which `object` must deliver again (from start-up until its first value).
    fn object_deadline(&self, object: GoNumber) -> Option<Instant> {
        let m = &self.config.dlm.meter;
        let from = self.dlm.seen.get(&object).copied().or(self.dlm.started)?;
        Some(from + m.interval + m.tolerance)
    }

    /// The meter deadline: the earliest of the supervised objects' deadlines. After it,
    /// SmartMeterTOut and emergency mode.
    fn meter_deadline(&self) -> Option<Instant> {
        self.supervised()
            .iter()
            .filter_map(|o| self.object_deadline(*o))
            .min()
    }

    /// What the smart meter left silent at `now`, for the fault message.
    fn silence(&self, now: Instant) -> String {
        let silent = |o: &GoNumber| self.object_deadline(*o).is_some_and(|d| now >= d);
        let name = |o: GoNumber| match METER_VALUES.iter().position(|m| *m == o) {
            Some(0) if self.config.dlm.meter.connection == MeterConnection::OnePhase => {
                format!("no smart-meter value (object {})", o.0)
            }
            Some(i) => format!("no smart-meter value L{} (object {})", i + 1, o.0),
            None => format!("no \"In operation\" trigger (object {})", o.0),
        };
        let mut parts: Vec<String> = self
            .supervised()
            .iter()
            .filter(|o| silent(o))
            .map(|o| name(*o))
            .collect();
        if self.config.dlm.meter.monitoring == MonitoringMode::ValuesAndInOperation
            && METER_VALUES.iter().all(silent)
        {
            parts.push("no smart-meter value either".to_owned());
        }
        parts.join(", ")
    }

    /// When the DLM next needs a tick.
    pub(super) fn dlm_timeout(&self) -> Option<Instant> {
        if !self.config.dlm.enabled {
            return None;
        }
        let deadline = self.meter_deadline().filter(|_| {
            !self
                .faults
                .is_present(Scope::Device, FaultCode::SmartMeterTOut)
        });
        let ramping = self
            .dlm
            .last_update
            .filter(|_| self.ramping())
            .map(|t| t + RAMP_STEP);
        let rotate = (self.config.dlm.overcurrent_strategy == OvercurrentStrategy::Queue)
            .then(|| self.rotation_due_at())
            .flatten();
        let refine = self
            .dlm
            .shortage_since
            .map(|t| t + REFINE)
            .filter(|_| self.dlm.tentative);
        [deadline, self.dlm.high_power_until, ramping, rotate, refine]
            .into_iter()
            .flatten()
            .min()
    }

    /// When the queue may rotate next: a rotation interval after the last one, and not before
    /// every charging point with a vehicle has kept its last switch (on or off) for the
    /// minimum on/off time. A rotation never switches a vehicle off before its minimum on
    /// time, nor moves the turn to one that may not be switched on yet, even with a rotation
    /// interval shorter than the minimum on/off time.
    fn rotation_due_at(&self) -> Option<Instant> {
        let dlm = &self.config.dlm;
        let interval = self.dlm.rotated.or(self.dlm.started)? + dlm.rotation_interval;
        let settled = self
            .dlm
            .switched
            .iter()
            .filter(|(cp, _)| {
                self.points
                    .get(cp)
                    .and_then(|p| p.status.as_ref())
                    .is_some_and(|s| s.connected)
            })
            .map(|(_, t)| *t + dlm.min_switch_time)
            .max();
        Some(settled.map_or(interval, |s| s.max(interval)))
    }

    fn ramping(&self) -> bool {
        self.dlm.last.is_some_and(|_| {
            self.points.iter().any(|(cp, p)| {
                p.commanded
                    .is_some_and(|c| self.dlm.targets.get(cp).is_some_and(|t| *t > c))
            })
        }) || self.dlm.raw_wants_more
    }

    /// Recomputes the DLM targets and sends what changed.
    pub(super) fn dlm_update(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.config.dlm.enabled {
            return;
        }
        self.dlm.started.get_or_insert(now);
        let dlm = self.config.dlm.clone();
        // Meter supervision.
        let silent = self.meter_deadline().is_some_and(|d| now >= d);
        if silent
            && !self
                .faults
                .is_present(Scope::Device, FaultCode::SmartMeterTOut)
        {
            let detail = self.silence(now);
            self.faults.raise(Fault::device(
                FaultCode::SmartMeterTOut,
                format!("{detail} for {} s (interval {} s + tolerance {} s); emergency mode: minimum current", (dlm.meter.interval + dlm.meter.tolerance).as_secs(), dlm.meter.interval.as_secs(), dlm.meter.tolerance.as_secs()),
            ));
            self.publish_faults(out);
        } else if !silent
            && self
                .faults
                .is_present(Scope::Device, FaultCode::SmartMeterTOut)
        {
            self.faults.clear(Scope::Device, FaultCode::SmartMeterTOut);
            self.publish_faults(out);
        }
        let three = dlm.meter.connection == MeterConnection::ThreePhase;
        let reading: Option<PerPhase<Current>> = if three {
            match self.dlm.meter {
                [Some(a), Some(b), Some(c)] => Some(PerPhase([a, b, c])),
                _ => None,
            }
        } else {
            self.dlm.meter[0].map(PerPhase::splat)
        };
        let association = self
            .faults
            .is_present(Scope::Device, FaultCode::DlmAssociation);
        if self.dlm.high_power_until.is_some_and(|t| now >= t) {
            self.dlm.high_power_until = None;
        }
        let high_power = self.dlm.high_power_until.is_some();
        let emergency = silent || association || reading.is_none();
        let budget = PerPhase::splat(dlm.budget());
        // Invalid currents exclude a charging point; the device shows DLM InvCurrent (70).
        let invalid: Vec<ChargePointId> = ChargePointId::all()
            .filter(|cp| {
                self.faults
                    .is_present(Scope::ChargingPoint(*cp), FaultCode::DlmInvCurrent)
            })
            .collect();
        let device_inv = self
            .faults
            .is_present(Scope::Device, FaultCode::DlmInvCurrent);
        if !invalid.is_empty() && !device_inv {
            let list: Vec<String> = invalid.iter().map(ToString::to_string).collect();
            self.faults.raise(Fault::device(
                FaultCode::DlmInvCurrent,
                format!(
                    "invalid currents from charging point(s) {}",
                    list.join(", ")
                ),
            ));
            self.publish_faults(out);
        } else if invalid.is_empty() && device_inv {
            self.faults.clear(Scope::Device, FaultCode::DlmInvCurrent);
            self.publish_faults(out);
        }
        let active: Vec<ChargePointId> = ChargePointId::all()
            .filter(|cp| {
                self.config
                    .charging_point(*cp)
                    .is_some_and(crate::config::ChargePointConfig::is_active)
            })
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
            // at 0 A (no vehicle, waiting in the queue, interrupted by OverCurrent, within its
            // minimum off time) stays at 0 A. Without a trustworthy reading nothing may be
            // switched on. Only before the DLM's first decision (start-up) does every charging
            // point get its minimum. OverCurrent stays as it is: whether the minimums fit is
            // not known again until the normal allocation runs.
            for cp in &active {
                let min = self
                    .config
                    .charging_point(*cp)
                    .map_or(Current::ZERO, |c| c.min_current);
                let reduced = match self.dlm.targets.get(cp) {
                    Some(prev) => (*prev).min(min),
                    None => min,
                };
                let reduced = if invalid.contains(cp) {
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
                    self.excluded(*cp, &invalid).unwrap_or(fallback)
                } else {
                    fallback
                };
                limits.set(*cp, limit);
            }
        } else if let Some(meter) = reading {
            // Polls just after a meter value refine the other-load estimate; later ones do not.
            self.estimate_other(now);
            let mut available = PerPhase::splat(Current::ZERO);
            for p in Phase::ALL {
                let other = self
                    .dlm
                    .other
                    .get(p.index())
                    .copied()
                    .flatten()
                    .unwrap_or_else(|| meter.get(p));
                available.set(p, budget.get(p).saturating_sub(other));
            }
            cycle.available = available;
            let demands = self.demands(&active, &invalid);
            let mode = if dlm.per_phase {
                Mode::PerPhase
            } else {
                Mode::Symmetric
            };
            let shortage = match dlm.overcurrent_strategy {
                OvercurrentStrategy::InterruptAll => Shortage::InterruptAll,
                OvercurrentStrategy::Queue => Shortage::Queue,
            };
            let mut result = allocate(available, &demands, mode, shortage);
            let mut currents = result.currents.clone();
            limits = result.limits;
            for cp in &active {
                if !demands.iter().any(|d| d.cp == *cp) {
                    limits.set(
                        *cp,
                        self.excluded(*cp, &invalid).unwrap_or(Limit::NoVehicle),
                    );
                }
            }
            if let Some(limit) = dlm.unbalanced_load_limit {
                // Cap, then let the others use what the capped points left: re-allocate with
                // the capped points' maxima lowered, until nothing changes.
                let mut capped = demands.clone();
                for _ in 0..3 {
                    let before = currents.clone();
                    crate::dlm::limit_unbalance(&mut currents, &capped, limit, &mut limits);
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
                    for d in &demands {
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
                crate::dlm::limit_unbalance(&mut currents, &capped, limit, &mut limits);
            }
            if self.grid_control
                && let Some(watts) = dlm.grid_control_power_w
            {
                crate::dlm::limit_power(
                    &mut currents,
                    &demands,
                    watts,
                    dlm.meter.nominal_voltage,
                    &mut limits,
                );
            }
            for cp in &active {
                raw.insert(*cp, currents.get(cp).copied().unwrap_or(Current::ZERO));
            }
            // A shortage right after a meter value may be a car that started just before the
            // value and is not in the polls yet: hold the charging points at their minimum
            // until the estimate is refined, instead of interrupting everyone at once.
            // Bounded from the first sight of the shortage, not from the latest value: with a
            // meter sending every second, a real shortage must still end in OverCurrent.
            if result.overcurrent {
                self.dlm.shortage_since.get_or_insert(now);
            } else {
                self.dlm.shortage_since = None;
            }
            let tentative = result.overcurrent
                && self
                    .dlm
                    .shortage_since
                    .is_some_and(|t| now.saturating_duration_since(t) < REFINE);
            self.dlm.tentative = tentative;
            if tentative {
                for d in &demands {
                    let charging = self
                        .dlm
                        .targets
                        .get(&d.cp)
                        .is_some_and(|c| *c > Current::ZERO);
                    raw.insert(d.cp, if charging { d.min } else { Current::ZERO });
                    limits.set(d.cp, Limit::ShortagePending);
                }
                result.overcurrent = false;
            }
            let present = self
                .faults
                .is_present(Scope::Device, FaultCode::OverCurrent);
            if result.overcurrent && !present {
                let mins: Vec<String> = demands
                    .iter()
                    .map(|d| format!("{}: {}", d.cp, d.min))
                    .collect();
                let what = if shortage == Shortage::Queue {
                    "waiting charging points queue"
                } else {
                    "charging is interrupted at all charging points"
                };
                self.faults.raise(Fault::device(
                    FaultCode::OverCurrent,
                    format!(
                        "minimum currents ({}) do not fit the available current; {what}",
                        mins.join(", ")
                    ),
                ));
                self.publish_faults(out);
            } else if !result.overcurrent && present {
                self.faults.clear(Scope::Device, FaultCode::OverCurrent);
                self.publish_faults(out);
            }
        }
        self.dlm.last = Some(cycle);
        self.ramp(&raw, now, &dlm, &mut limits);
        self.dlm.limits = limits;
        self.remember_commanded(now);
        self.dlm.last_update = Some(now);
        for cp in &active {
            let less = self.vehicle_draws_less(*cp, now);
            if let Some(slot) = self.dlm.draws_less.get_mut(cp.index()) {
                *slot = less;
            }
        }
        for cp in active {
            self.apply_target(cp, out);
        }
    }

    /// Why a charging point is left out of the allocation, if it is: interrupted (object
    /// 55), not reachable, invalid currents, or no vehicle.
    fn excluded(&self, cp: ChargePointId, invalid: &[ChargePointId]) -> Option<Limit> {
        let point = self.points.get(&cp);
        if point.is_some_and(|p| p.interrupted) {
            return Some(Limit::Interrupted);
        }
        if self
            .faults
            .is_present(Scope::ChargingPoint(cp), FaultCode::NotReachable)
        {
            return Some(Limit::NotReachable);
        }
        if invalid.contains(&cp) {
            return Some(Limit::InvalidCurrents);
        }
        let connected = point
            .and_then(|p| p.status.as_ref())
            .is_some_and(|s| s.connected);
        (!connected).then_some(Limit::NoVehicle)
    }

    /// Whether the vehicle at `cp` draws less than it may: at its last poll it drew, on its
    /// most loaded phase, at least [`DRAWS_LESS`] below its current, and that current had
    /// then been in force for the reaction time (a vehicle still following a change is not
    /// counted).
    fn vehicle_draws_less(&self, cp: ChargePointId, now: Instant) -> bool {
        let Some(target) = self.target(cp).filter(|t| *t > Current::ZERO) else {
            return false;
        };
        let Some(status) = self.points.get(&cp).and_then(|p| p.status.as_ref()) else {
            return false;
        };
        let (Some(currents), Some(polled)) = (status.currents, self.dlm.last_poll.get(&cp)) else {
            return false;
        };
        let drawn = currents.0.into_iter().max().unwrap_or(Current::ZERO);
        if !status.connected || drawn + DRAWS_LESS > target {
            return false;
        }
        let Some(from) = polled.checked_sub(REACTION) else {
            return false;
        };
        // The history must reach back to `from`: a current first commanded after it (at
        // start-up) gave the vehicle no time to follow before the poll.
        let known = self.dlm.commanded.front().is_some_and(|(t, _)| *t <= from);
        known && !self.commanded_during(cp, from, now).changed
    }

    /// Whether a vehicle at `cp` may draw current: one is connected, or current flows. (A
    /// connected vehicle may still be following an earlier, higher current.)
    fn vehicle_present(&self, cp: ChargePointId) -> bool {
        self.points
            .get(&cp)
            .and_then(|p| p.status.as_ref())
            .is_some_and(|s| {
                s.connected
                    || s.charging
                    || s.currents
                        .is_some_and(|c| c.0.iter().any(|a| *a > Current::ZERO))
            })
    }

    /// The grid phases a charging point is wired to.
    fn grid_phases(&self, cp: ChargePointId) -> Vec<Phase> {
        let Some(cfg) = self.config.charging_point(cp) else {
            return Vec::new();
        };
        match cfg.phases {
            PhaseCount::One => cfg.rotation.grid_phase(0).into_iter().collect(),
            PhaseCount::Three => Phase::ALL.to_vec(),
        }
    }

    /// Each charging point's own load per grid phase: measured currents, or the commanded
    /// current where a charging point measures nothing.
    fn charging_loads(&self) -> Loads {
        self.points
            .keys()
            .filter_map(|cp| Some((*cp, self.charging_load(*cp)?)))
            .collect()
    }

    /// One charging point's own load per grid phase (see [`Self::charging_loads`]).
    fn charging_load(&self, cp: ChargePointId) -> Option<PerPhase<Current>> {
        let point = self.points.get(&cp)?;
        let cfg = self.config.charging_point(cp)?;
        let per_cp_phase = if let Some(c) = point.status.as_ref().and_then(|s| s.currents) {
            c
        } else {
            let c = point.commanded.unwrap_or(Current::ZERO);
            let drawn = if point.status.as_ref().is_some_and(|s| s.charging) {
                c
            } else {
                Current::ZERO
            };
            match cfg.phases {
                PhaseCount::One => PerPhase([drawn, Current::ZERO, Current::ZERO]),
                PhaseCount::Three => PerPhase::splat(drawn),
            }
        };
        let grid = super::points::to_grid(cfg.rotation, per_cp_phase);
        Some(PerPhase(grid.0.map(|c| c.max(Current::ZERO))))
    }

    /// Charging points with a vehicle that may charge, in queue order.
    fn demands(&mut self, active: &[ChargePointId], invalid: &[ChargePointId]) -> Vec<Demand> {
        for cp in active {
            if !self.dlm.queue.contains(cp) {
                self.dlm.queue.push(*cp);
            }
        }
        self.dlm.queue.retain(|cp| active.contains(cp));
        let mut out = Vec::new();
        for cp in self.dlm.queue.clone() {
            let Some(cfg) = self.config.charging_point(cp) else {
                continue;
            };
            let Some(point) = self.points.get(&cp) else {
                continue;
            };
            let Some(status) = point.status.as_ref() else {
                continue;
            };
            let reachable = !self
                .faults
                .is_present(Scope::ChargingPoint(cp), FaultCode::NotReachable);
            if !status.connected || point.interrupted || invalid.contains(&cp) || !reachable {
                continue;
            }
            // Phases the vehicle draws on, from its currents; before it draws, as wired.
            let mut cp_phases = [false; 3];
            if let Some(c) = status.currents {
                for (slot, i) in cp_phases.iter_mut().zip(c.0) {
                    *slot = i >= PHASE_DETECTION;
                }
            }
            if !cp_phases.iter().any(|x| *x) {
                cp_phases = match cfg.phases {
                    PhaseCount::One => [true, false, false],
                    PhaseCount::Three => [true, true, true],
                };
            }
            let mut grid = [false; 3];
            for (i, used) in cp_phases.iter().enumerate() {
                if *used && let Some(p) = cfg.rotation.grid_phase(i) {
                    if let Some(slot) = grid.get_mut(p.index()) {
                        *slot = true;
                    }
                }
            }
            out.push(Demand {
                cp,
                min: cfg.min_current,
                max: cfg.max_current,
                phases: grid,
                prioritised: self.config.dlm.prioritised == Some(cp),
            });
        }
        out
    }

    /// Reductions at once; increases at the ramp rate, starting from the minimum; switching
    /// on only after the minimum on/off time.
    fn ramp(
        &mut self,
        raw: &BTreeMap<ChargePointId, Current>,
        now: Instant,
        dlm: &crate::config::DlmConfig,
        limits: &mut Limits,
    ) {
        let dt = self
            .dlm
            .last_update
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.dlm.raw_wants_more = false;
        // Break before make: a grid phase on which a current is lowered now sees no raise for
        // a reaction time, so that a vehicle quick to rise never adds to one still slow to
        // fall when the DLM moves current from one charging point to another.
        for (cp, want) in raw {
            let prev = self.dlm.targets.get(cp).copied().unwrap_or(Current::ZERO);
            if prev.saturating_sub(*want) >= MAKE_AFTER_BREAK_STEP && self.vehicle_present(*cp) {
                self.dlm.lowered_at.insert(*cp, now);
            }
        }
        for (cp, want) in raw {
            let Some(cfg) = self.config.charging_point(*cp) else {
                continue;
            };
            let prev = self.dlm.targets.get(cp).copied().unwrap_or(Current::ZERO);
            let mut next = *want;
            let phases = self.grid_phases(*cp);
            let lowered_nearby = self.dlm.lowered_at.iter().any(|(other, t)| {
                other != cp
                    && now.saturating_duration_since(*t) < REACTION
                    && self.grid_phases(*other).iter().any(|p| phases.contains(p))
            });
            if next > prev && lowered_nearby {
                next = prev;
                self.dlm.raw_wants_more = true;
                limits.set(*cp, Limit::BreakBeforeMake);
            } else if next > prev {
                if prev < cfg.min_current {
                    // Switching on: not sooner than the minimum on/off time after the last switch.
                    let recently =
                        self.dlm.switched.get(cp).is_some_and(|t| {
                            now.saturating_duration_since(*t) < dlm.min_switch_time
                        });
                    next = if recently {
                        limits.set(*cp, Limit::MinSwitchTime);
                        Current::ZERO
                    } else {
                        cfg.min_current.min(next)
                    };
                } else {
                    #[allow(clippy::cast_possible_truncation, reason = "ramp steps are small")]
                    let step = Current::from_milliamps(
                        (f64::from(dlm.ramp_up_per_second.milliamps()) * dt) as i32,
                    );
                    next = next.min(prev + step);
                }
                if next < *want {
                    self.dlm.raw_wants_more = true;
                    if next > Current::ZERO {
                        limits.set(*cp, Limit::Ramp);
                    }
                }
            }
            let vehicle = self
                .points
                .get(cp)
                .and_then(|p| p.status.as_ref())
                .is_some_and(|st| st.connected);
            if vehicle && (prev == Current::ZERO) != (next == Current::ZERO) {
                self.dlm.switched.insert(*cp, now);
            }
            self.dlm.targets.insert(*cp, next);
        }
        if dlm.overcurrent_strategy == OvercurrentStrategy::Queue {
            let due = self.rotation_due_at().is_some_and(|t| now >= t);
            if due {
                self.dlm.rotated = Some(now);
                if !self.dlm.queue.is_empty() {
                    self.dlm.queue.rotate_left(1);
                }
            }
        }
    }
}
