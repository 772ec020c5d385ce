//! The charging points in the core: what each reported, its session, "charging complete",
//! its faults, and how all of it maps onto objects 50–99 (+ 50 per charging point).
//!
//! * Currents, powers and energies per phase are mapped from the charging point's phases to
//!   the grid phases through its phase rotation, so L1 on KNX is the house's L1.
//! * The energy of the current or last charge is computed from the lifetime counter
//!   (counter now − counter at plug-in) where the model has one, because several models'
//!   session registers reset at odd moments. Otherwise the model's session register is used.
//! * A charging process starts when the vehicle first draws current after plugging in. It
//!   ends when charging stops. Start and end times (DPT 10.001) come from the wall-clock
//!   anchor the shell sends ([`super::Event::Clock`]); the duration (DPT 13.100) is sent at
//!   the end and once a minute while charging.
//! * "Charging complete" is set when the vehicle is connected and the current stays below
//!   the threshold for the configured time. It is reset at once when the current rises above
//!   the threshold or the vehicle leaves.
//! * Without DLM, the setpoint comes from object 60, clamped to the charging point's
//!   minimum and maximum (a clamped value raises ValOutOfRange, information only).
//!   Interruption (55) and grid-supporting control (1) override it. With DLM, load
//!   management decides the current ([`super::dlm`]); a released interruption resumes at the
//!   minimum current and the DLM regulates from there, as the spec asks.
//! * Object 50 shows Interruption (11) while object 55 or grid control at 0 A is active, and
//!   the previous state when it ends (table 23); a vehicle arriving or leaving meanwhile
//!   changes what is restored. The next poll then shows the charging point's own state.
//! * Start/stop (54, table 27): a stop is passed on; after it, a vehicle that has left and
//!   come back shows "Manual start required" (7). A start is passed on only where the
//!   charging point waits for one (state 7, or its state is unknown); otherwise OpNotPossible
//!   (40, information only): automatic start, already started, or stopped with the vehicle
//!   not yet reconnected.

use std::time::{Duration, Instant};

use super::{Action, Core, Event, Persisted};
use crate::chargers::{ChargerCommand, ChargerStatus, CommandOutcome, CpState, DriverError};
use crate::config::{ChargePointConfig, PhaseCount, PhaseRotation};
use crate::dlm::Limit;
use crate::faults::{Fault, FaultCode, Scope};
use crate::knx::dpt::{TimeOfDay, Weekday};
use crate::objects::Value;
use crate::units::{ChargePointId, Current, Energy, GoNumber, PerPhase, Phase, Power};

use crate::objects::number::cp as off;

/// How often the duration object is refreshed while charging.
const DURATION_REFRESH: Duration = Duration::from_secs(60);

/// One charging point as the core sees it.
#[derive(Debug, Clone, Default)]
pub(super) struct Point {
    /// Last successful poll.
    pub(super) status: Option<ChargerStatus>,
    /// KNX interruption (object 55) active.
    pub(super) interrupted: bool,
    /// Setpoint from object 60 (DLM off); starts at the maximum current.
    pub(super) setpoint: Option<Current>,
    /// The current last commanded.
    pub(super) commanded: Option<Current>,
    /// Vehicle was connected at the last poll.
    connected: bool,
    /// Vehicle was charging at the last poll.
    charging: bool,
    /// Lifetime counter when the vehicle plugged in.
    energy_at_plug_in: Option<Energy>,
    /// The counter at plug-in kept from before a restart, until the first poll decides on it.
    restored_plug_in: Option<Energy>,
    /// The current charging process: start instant and time of day.
    process_start: Option<(Instant, Option<TimeOfDay>)>,
    /// When the duration object was last refreshed.
    duration_sent: Option<Instant>,
    /// Since when the current has been below the "complete" threshold while connected.
    below_since: Option<Instant>,
    /// "Charging complete" is set.
    complete: bool,
    /// Object 50 shows Interruption (11) because of object 55 or grid control at 0 A.
    override_shown: bool,
    /// The state to restore on object 50 when that ends (table 23), and whether a vehicle
    /// was connected then.
    before_override: Option<(CpState, bool)>,
    /// Stopped via object 54: `Some(false)` until the vehicle has left, then `Some(true)`
    /// (a reconnected vehicle needs a manual start, state 7); `None` when not stopped.
    stopped: Option<bool>,
    /// The last poll failed with no answer: object 50 shows "not available" (3) until a
    /// poll answers again; the state of the last answer is not published meanwhile.
    unreachable: bool,
}

/// The wall-clock anchor: a time of day at an instant.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClockAnchor {
    pub(super) at: Instant,
    pub(super) time: TimeOfDay,
}

impl ClockAnchor {
    /// The time of day at `now`, extrapolated from the anchor.
    pub(super) fn time_at(self, now: Instant) -> TimeOfDay {
        let base = u64::from(self.time.hour) * 3600
            + u64::from(self.time.minute) * 60
            + u64::from(self.time.second);
        let total = base + now.saturating_duration_since(self.at).as_secs();
        let days = total / 86_400;
        let secs = total % 86_400;
        let weekday = self.time.weekday.and_then(|w| {
            let index = (u64::from(w.number()) - 1 + days) % 7;
            Weekday::from_number(u8::try_from(index).unwrap_or(0) + 1)
        });
        let part = |v: u64| u8::try_from(v).unwrap_or(0);
        TimeOfDay::new(
            weekday,
            part(secs / 3600),
            part(secs / 60 % 60),
            part(secs % 60),
        )
        .unwrap_or(self.time)
    }
}

pub(super) fn obj(cp: ChargePointId, offset: u16) -> GoNumber {
    GoNumber(cp.object_base() + offset)
}

/// Maps values per charging-point phase onto grid phases.
pub(super) fn to_grid<T: Copy + Default>(
    rotation: PhaseRotation,
    cp_phases: PerPhase<T>,
) -> PerPhase<T> {
    let mut grid = PerPhase::splat(T::default());
    for (i, value) in cp_phases.0.into_iter().enumerate() {
        if let Some(phase) = rotation.grid_phase(i) {
            grid.set(phase, value);
        }
    }
    grid
}

impl Core {
    fn point_config(&self, cp: ChargePointId) -> Option<ChargePointConfig> {
        self.operating(cp).cloned()
    }

    /// The configuration of `cp` if it is active and in operation (no serious configuration
    /// fault of its own: [`crate::config::validate::out_of_operation`]).
    pub(super) fn operating(&self, cp: ChargePointId) -> Option<&ChargePointConfig> {
        self.config
            .charging_point(cp)
            .filter(|c| c.is_active() && !self.out_of_operation.contains(&cp))
    }

    /// At start: failsafe settings and the first setpoint for every active charging point.
    pub(super) fn start_points(&mut self, out: &mut Vec<Action>) {
        for cp in ChargePointId::all() {
            let Some(cfg) = self.point_config(cp) else {
                continue;
            };
            out.push(Action::Charger {
                cp,
                command: ChargerCommand::Failsafe {
                    current: cfg.failsafe_current,
                    timeout: cfg.failsafe_timeout,
                },
            });
            self.points.entry(cp).or_default().setpoint = Some(cfg.max_current);
            self.apply_target(cp, out);
        }
    }

    /// The current a charging point should get now, apart from load management.
    pub(super) fn target(&self, cp: ChargePointId) -> Option<Current> {
        let cfg = self.operating(cp)?;
        let point = self.points.get(&cp)?;
        let grid = self.config.dlm.grid_control_current;
        if point.interrupted || (self.grid_control && grid == Current::ZERO) {
            return Some(Current::ZERO);
        }
        let mut target = if self.config.dlm.enabled {
            // Until the DLM's first cycle: the minimum (the safe side that still charges);
            // nothing while the DLM waits for the meter's first value.
            match self.dlm.target(cp) {
                Some(t) => t,
                None if self.dlm.awaiting_first_value() => return None,
                None => cfg.min_current,
            }
        } else {
            point.setpoint.unwrap_or(cfg.max_current)
        };
        if target == Current::ZERO {
            return Some(Current::ZERO);
        }
        if self.grid_control {
            // A reduction below the vehicle's minimum cannot be charged; the minimum is the
            // lowest current that still charges.
            target = target.min(grid.max(cfg.min_current));
        }
        Some(target.clamp_to(cfg.min_current, cfg.max_current))
    }

    /// Why `cp` gets [`Self::target`], following the same steps: interruption (object 55),
    /// grid-supporting control at 0 A, the DLM's reason (DLM on) or the setpoint of object 60
    /// (DLM off), the grid-control cap where it is lower, and a vehicle drawing less than
    /// it may where a ceiling is the reason (DLM on; it needs the DLM's command history).
    pub(super) fn limit_of(&self, cp: ChargePointId) -> Option<Limit> {
        let cfg = self.operating(cp)?;
        let point = self.points.get(&cp)?;
        let grid = self.config.dlm.grid_control_current;
        if point.interrupted {
            return Some(Limit::Interrupted);
        }
        if self.grid_control && grid == Current::ZERO {
            return Some(Limit::GridControl);
        }
        let dlm = self.config.dlm.enabled;
        let (base, uncapped) = if dlm {
            let target = self.dlm.target(cp).unwrap_or(cfg.min_current);
            // Before the DLM's first decision: the minimum, as in emergency mode.
            (self.dlm.limit(cp).unwrap_or(Limit::Emergency), target)
        } else {
            let setpoint = point.setpoint.unwrap_or(cfg.max_current);
            let connected = point.status.as_ref().map(|s| s.connected);
            let base = if connected == Some(false) {
                Limit::NoVehicle
            } else if setpoint < cfg.max_current {
                Limit::Setpoint
            } else {
                Limit::OwnMax
            };
            (base, setpoint)
        };
        if uncapped == Current::ZERO || base == Limit::NoVehicle {
            return Some(base);
        }
        let uncapped = uncapped.clamp_to(cfg.min_current, cfg.max_current);
        let limit = if self.grid_control && grid.max(cfg.min_current) < uncapped {
            Limit::GridControl
        } else {
            base
        };
        let ceiling = matches!(
            limit,
            Limit::OwnMax
                | Limit::FairShare
                | Limit::Phase(_)
                | Limit::Prioritised
                | Limit::Unbalance
                | Limit::GridControl
                | Limit::Emergency
                | Limit::HighPower
                | Limit::Setpoint
        );
        let draws_less = self.dlm.draws_less(cp);
        if dlm && ceiling && draws_less {
            return Some(Limit::VehicleDrawsLess);
        }
        Some(limit)
    }

    /// Sends the target current if it changed, and records why it is what it is.
    pub(super) fn apply_target(&mut self, cp: ChargePointId, out: &mut Vec<Action>) {
        let before = self.limits.get(cp);
        match self.limit_of(cp) {
            Some(limit) => self.limits.set(cp, limit),
            None => self.limits.clear(cp),
        }
        let Some(target) = self.target(cp) else {
            return;
        };
        let after = self.limits.get(cp);
        if after != before {
            tracing::debug!(%cp, %target, reason = ?after, was = ?before, "DLM: why the charging point gets its current changed");
        }
        let point = self.points.entry(cp).or_default();
        if point.commanded != Some(target) {
            tracing::debug!(%cp, %target, reason = ?after, "DLM: setpoint sent to the charging point");
            point.commanded = Some(target);
            out.push(Action::Charger {
                cp,
                command: ChargerCommand::SetCurrent(target),
            });
        }
        if let Some(status) = self.points.get(&cp).and_then(|p| p.status.clone()) {
            self.publish_state(cp, &status, out);
        }
    }

    /// KNX writes to charging-point objects (54, 55, 59, 60 + offset).
    pub(super) fn point_written(
        &mut self,
        cp: ChargePointId,
        offset: u16,
        value: &Value,
        out: &mut Vec<Action>,
    ) {
        let Some(cfg) = self.point_config(cp) else {
            return;
        };
        match (offset, value) {
            (off::START_STOP, Value::Bool(false)) => {
                let point = self.points.entry(cp).or_default();
                point.stopped = Some(false);
                out.push(Action::Charger {
                    cp,
                    command: ChargerCommand::StartStop(false),
                });
                self.apply_target(cp, out);
            }
            (off::START_STOP, Value::Bool(true)) => {
                // Table 27 / table 63: a start is possible only where the charging point waits
                // for one (state 7). Otherwise OpNotPossible (40): automatic start, already
                // started, or stopped with the vehicle not yet reconnected.
                let state = self
                    .points
                    .get(&cp)
                    .and_then(|p| p.status.as_ref().map(|s| Self::own_state(p, s)));
                match state {
                    Some(Some(CpState::ManualStartRequired) | None) | None => {
                        self.points.entry(cp).or_default().stopped = None;
                        out.push(Action::Charger {
                            cp,
                            command: ChargerCommand::StartStop(true),
                        });
                        self.apply_target(cp, out);
                    }
                    Some(Some(state)) => {
                        let why = match self.points.get(&cp).and_then(|p| p.stopped) {
                            Some(false) => {
                                "stopped: a new start is possible once the vehicle is reconnected"
                                    .to_owned()
                            }
                            _ => format!(
                                "no manual start required (state {}): automatic start or already started",
                                state.value()
                            ),
                        };
                        self.faults
                            .raise(Fault::charging_point(FaultCode::OpNotPossible, cp, why));
                        self.publish_faults(out);
                    }
                }
            }
            (off::UNLOCK, Value::Bool(_)) => out.push(Action::Charger {
                cp,
                command: ChargerCommand::Unlock,
            }),
            (off::INTERRUPTION, Value::Bool(on)) => {
                self.points.entry(cp).or_default().interrupted = *on;
                self.set(obj(cp, off::INTERRUPTION_STATE), Value::Bool(*on), out);
                self.apply_target(cp, out);
            }
            (off::SETPOINT, Value::Current(requested)) => {
                // Table 31 note: "some charging points allow 0 A" — every driver pauses at
                // 0 A, so 0 A is taken as it is, not raised to the minimum.
                let clamped = if *requested == Current::ZERO {
                    Current::ZERO
                } else {
                    (*requested).clamp_to(cfg.min_current, cfg.max_current)
                };
                if clamped != *requested {
                    self.faults.raise(Fault::charging_point(
                        FaultCode::ValOutOfRange,
                        cp,
                        format!(
                            "setpoint {requested} outside {}..{}, set to {clamped}",
                            cfg.min_current, cfg.max_current
                        ),
                    ));
                    self.publish_faults(out);
                }
                self.points.entry(cp).or_default().setpoint = Some(clamped);
                self.apply_target(cp, out);
            }
            _ => {}
        }
    }

    /// Events from the charger tasks.
    pub(super) fn charger_event(&mut self, event: Event, now: Instant, out: &mut Vec<Action>) {
        match event {
            Event::ChargerPolled { cp, status } => self.polled(cp, status, now, out),
            Event::ChargerIdentified { cp, identity } => {
                self.faults
                    .clear(Scope::ChargingPoint(cp), FaultCode::WrongCharger);
                if let Some(serial) = identity.serial {
                    self.set(obj(cp, off::SERIAL), Value::Text(serial), out);
                }
                if let Some(firmware) = identity.firmware {
                    self.set(obj(cp, off::FIRMWARE), Value::Text(firmware), out);
                }
                self.publish_faults(out);
            }
            Event::ChargerFailed { cp, error } => {
                // The fault board logs the fault when it begins and when it clears; each
                // failed poll in between only in extended logging.
                tracing::debug!(cp = cp.number(), "charging point: {error}");
                if matches!(error, DriverError::NotReachable(_) | DriverError::Comm(_)) {
                    // After a loss the charging point must be told its current again.
                    let point = self.points.entry(cp).or_default();
                    point.commanded = None;
                    point.unreachable = true;
                    // What it last reported ("Available", "Charge", its currents) no longer
                    // holds: it is not available (table 23: 3) and measures nothing until a
                    // poll shows its own state again.
                    self.set(
                        obj(cp, off::STATE),
                        Value::U8(CpState::NotAvailable.value()),
                        out,
                    );
                    self.set(obj(cp, off::CHARGING), Value::Bool(false), out);
                    self.set(
                        obj(cp, off::CURRENT_SUM),
                        Value::Current(Current::ZERO),
                        out,
                    );
                    self.set(obj(cp, off::POWER_SUM), Value::Power(Power::ZERO), out);
                    for i in 0..3 {
                        self.set(
                            obj(cp, off::CURRENT_L1 + i),
                            Value::Current(Current::ZERO),
                            out,
                        );
                        self.set(obj(cp, off::POWER_L1 + i), Value::Power(Power::ZERO), out);
                    }
                }
                self.faults.raise(Fault::charging_point(
                    error.fault_code(),
                    cp,
                    error.to_string(),
                ));
                self.publish_faults(out);
            }
            Event::MeterStatus { cp, error } => {
                let scope = Scope::ChargingPoint(cp);
                let raised = error.as_ref().map(crate::meters::MeterError::fault_code);
                let mut changed = false;
                for code in [
                    FaultCode::EMeterNotReach,
                    FaultCode::EMeterComm,
                    FaultCode::EMeterError,
                ] {
                    if Some(code) != raised {
                        changed |= self.faults.clear(scope, code);
                    }
                }
                if let (Some(code), Some(e)) = (raised, error) {
                    if !self.faults.is_present(scope, code) {
                        tracing::warn!(cp = cp.number(), "electricity meter: {e}");
                    }
                    changed |= self
                        .faults
                        .raise(Fault::charging_point(code, cp, e.to_string()));
                }
                if changed {
                    self.publish_faults(out);
                }
            }
            Event::ChargerCommandDone {
                cp,
                command,
                outcome,
            } => {
                // Phase switching is the load management's own decision: a box that
                // refuses it is logged, never a fault shown to the user (docs/dlm.md).
                if let ChargerCommand::SetPhases(phases) = command {
                    if let CommandOutcome::NotPossible(why) | CommandOutcome::OutOfRange(why) =
                        &outcome
                    {
                        tracing::info!(
                            cp = cp.number(),
                            "switching to {} phase(s) refused: {why}",
                            phases.count()
                        );
                    }
                    let carried_out = matches!(outcome, CommandOutcome::Done);
                    self.dlm_run(crate::dlm::Input::PhasesSet(cp, carried_out), now, out);
                    return;
                }
                let fault = match outcome {
                    CommandOutcome::Done => None,
                    CommandOutcome::NotPossible(why) => Some((FaultCode::OpNotPossible, why)),
                    CommandOutcome::OutOfRange(why) => Some((FaultCode::ValOutOfRange, why)),
                };
                if let Some((code, why)) = fault {
                    tracing::info!(cp = cp.number(), ?command, "command refused: {why}");
                    self.faults.raise(Fault::charging_point(code, cp, why));
                    self.publish_faults(out);
                }
            }
            _ => {}
        }
    }

    fn polled(
        &mut self,
        cp: ChargePointId,
        mut status: ChargerStatus,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(cfg) = self.point_config(cp) else {
            return;
        };
        self.points.entry(cp).or_default().unreachable = false;
        // With the DLM on, impossible currents are DLM InvCurrent: the charging point is
        // excluded, and its readings are neither published nor counted (docs/dlm.md).
        let implausible = if self.config.dlm.enabled {
            status.currents.and_then(|c| {
                crate::dlm::plausible::check(
                    c,
                    status.power,
                    cfg.max_current,
                    self.config.dlm.overcurrent_protection,
                    self.config.dlm.meter.nominal_voltage,
                )
                .err()
            })
        } else {
            None
        };
        if implausible.is_some() {
            status.currents = None;
            status.power = None;
            status.power_phases = None;
        } else if status.currents.is_none() {
            status.currents = Some(self.setpoint_as_current(cp, &cfg, &status));
        }
        let scope = Scope::ChargingPoint(cp);
        for code in [
            FaultCode::NotReachable,
            FaultCode::Comm,
            FaultCode::WrongCharger,
            FaultCode::DlmInvCurrent,
        ] {
            if code != FaultCode::DlmInvCurrent || implausible.is_none() {
                self.faults.clear(scope, code);
            }
        }
        if let Some(why) = &implausible {
            self.faults.raise(Fault::charging_point(
                FaultCode::DlmInvCurrent,
                cp,
                format!("implausible currents: {why}"),
            ));
        }
        match &status.error {
            Some(e) => {
                let info = e.fault_info();
                self.faults.raise(Fault::charging_point(
                    FaultCode::ChargerError,
                    cp,
                    format!("manufacturer code {}", info.join(" ").trim()),
                ));
                for (i, text) in (0u16..).zip(info) {
                    self.set(obj(cp, off::FAULT_INFO_1 + i), Value::Text(text), out);
                }
            }
            None => {
                if self.faults.is_present(scope, FaultCode::ChargerError) {
                    self.faults.clear(scope, FaultCode::ChargerError);
                    for i in 0..4 {
                        self.set(
                            obj(cp, off::FAULT_INFO_1 + i),
                            Value::Text(String::new()),
                            out,
                        );
                    }
                }
            }
        }
        self.track_session(cp, &cfg, &status, now, out);
        if implausible.is_none() {
            self.publish_measurements(cp, &cfg, &status, out);
        }
        self.publish_state(cp, &status, out);
        self.points.entry(cp).or_default().status = Some(status);
        self.publish_faults(out);
        // A reconnected charging point gets its current again.
        self.apply_target(cp, out);
    }

    /// Spec 9.3: a charging point that measures nothing (no metering of its own, no retrofit
    /// meter) draws its setpoint while it charges, on the phases it is connected with. Used
    /// as its actual current for the objects, charging-complete detection and the DLM.
    fn setpoint_as_current(
        &self,
        cp: ChargePointId,
        cfg: &ChargePointConfig,
        status: &ChargerStatus,
    ) -> PerPhase<Current> {
        let setpoint = status
            .setpoint
            .or_else(|| self.points.get(&cp).and_then(|p| p.commanded))
            .unwrap_or(Current::ZERO);
        let drawn = if status.charging {
            setpoint.max(Current::ZERO)
        } else {
            Current::ZERO
        };
        match cfg.phases {
            PhaseCount::One => PerPhase([drawn, Current::ZERO, Current::ZERO]),
            PhaseCount::Three => PerPhase::splat(drawn),
        }
    }

    /// The charging point's own state (apart from interruption): after a stop via object 54
    /// and a new vehicle, "manual start required" (7); otherwise what it reports.
    fn own_state(point: &Point, status: &ChargerStatus) -> Option<CpState> {
        if point.stopped == Some(true) && status.connected && !status.charging {
            Some(CpState::ManualStartRequired)
        } else {
            status.state
        }
    }

    fn publish_state(&mut self, cp: ChargePointId, status: &ChargerStatus, out: &mut Vec<Action>) {
        if self.points.get(&cp).is_some_and(|p| p.unreachable) {
            return;
        }
        if !status.connected
            && let Some(p) = self.points.get_mut(&cp)
            && p.stopped == Some(false)
        {
            p.stopped = Some(true);
        }
        let own_state = self
            .points
            .get(&cp)
            .map_or(status.state, |p| Self::own_state(p, status));
        let overridden = self.points.get(&cp).is_some_and(|p| p.interrupted)
            || (self.grid_control && self.config.dlm.grid_control_current == Current::ZERO);
        let point = self.points.entry(cp).or_default();
        // Table 23: while interrupted (55, or grid control at 0 A) object 50 shows 11; when
        // that ends, the previous state is restored (until the next poll shows the charging
        // point's own). A vehicle arriving or leaving meanwhile changes what is restored.
        let own = own_state
            .filter(|s| *s != CpState::Interrupted)
            .map(|s| (s, status.connected));
        let state = if overridden {
            if !point.override_shown {
                point.override_shown = true;
                point.before_override = own;
            } else if point
                .before_override
                .is_some_and(|(_, connected)| connected != status.connected)
            {
                point.before_override = own;
            }
            Some(CpState::Interrupted)
        } else if point.override_shown {
            point.override_shown = false;
            point.before_override.take().map(|(s, _)| s).or(own_state)
        } else {
            own_state
        };
        if let Some(state) = state {
            self.set(obj(cp, off::STATE), Value::U8(state.value()), out);
        }
        self.set(obj(cp, off::CONNECTED), Value::Bool(status.connected), out);
        self.set(obj(cp, off::CHARGING), Value::Bool(status.charging), out);
    }

    fn publish_measurements(
        &mut self,
        cp: ChargePointId,
        cfg: &ChargePointConfig,
        s: &ChargerStatus,
        out: &mut Vec<Action>,
    ) {
        let rot = cfg.rotation;
        if let Some(sp) = s.setpoint {
            self.set(obj(cp, off::SETPOINT_STATE), Value::Current(sp), out);
        }
        if let Some(currents) = s.currents {
            let grid = to_grid(rot, currents);
            self.set(
                obj(cp, off::CURRENT_SUM),
                Value::Current(currents.0.into_iter().sum()),
                out,
            );
            for (i, phase) in (0u16..).zip(Phase::ALL) {
                self.set(
                    obj(cp, off::CURRENT_L1 + i),
                    Value::Current(grid.get(phase)),
                    out,
                );
            }
        }
        let power_sum = s
            .power
            .or_else(|| s.power_phases.map(|p| p.0.into_iter().sum::<Power>()));
        if let Some(p) = power_sum {
            self.set(obj(cp, off::POWER_SUM), Value::Power(p), out);
        }
        if let Some(phases) = s.power_phases {
            let grid = to_grid(rot, phases);
            for (i, phase) in (0u16..).zip(Phase::ALL) {
                self.set(
                    obj(cp, off::POWER_L1 + i),
                    Value::Power(grid.get(phase)),
                    out,
                );
            }
        }
        let total = s
            .energy_total
            .or_else(|| s.energy_phases.map(|p| p.0.into_iter().sum::<Energy>()));
        if let Some(e) = total {
            self.set(obj(cp, off::ENERGY_SUM), Value::Energy(e), out);
            self.set(obj(cp, off::ENERGY_TOTAL), Value::Energy(e), out);
        }
        if let Some(phases) = s.energy_phases {
            let grid = to_grid(rot, phases);
            for (i, phase) in (0u16..).zip(Phase::ALL) {
                self.set(
                    obj(cp, off::ENERGY_L1 + i),
                    Value::Energy(grid.get(phase)),
                    out,
                );
            }
        }
        let last = match (
            total,
            self.points.get(&cp).and_then(|p| p.energy_at_plug_in),
        ) {
            (Some(now), Some(start)) => Some(now.saturating_sub(start).max(Energy::ZERO)),
            _ => s.energy_session,
        };
        if let Some(e) = last {
            self.set(obj(cp, off::ENERGY_LAST), Value::Energy(e), out);
        }
        if let Some(t) = s.temperature {
            self.set(obj(cp, off::TEMPERATURE), Value::Temperature(t), out);
        }
        let warning = s
            .temperature_warning
            .or_else(|| s.temperature.map(|t| t >= cfg.temperature_warning));
        if let Some(w) = warning {
            self.set(obj(cp, off::TEMPERATURE_WARNING), Value::Bool(w), out);
        }
        if let Some(tag) = &s.rfid {
            let first = crate::chargers::status::rfid_first_4_bytes(tag);
            self.set(obj(cp, off::RFID), Value::Text(first), out);
        }
        if let Some(id) = &s.evccid {
            self.set(obj(cp, off::EVCCID), Value::Text(id.clone()), out);
        }
    }

    fn track_session(
        &mut self,
        cp: ChargePointId,
        cfg: &ChargePointConfig,
        s: &ChargerStatus,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let clock = self.clock;
        let point = self.points.entry(cp).or_default();
        let total = s
            .energy_total
            .or_else(|| s.energy_phases.map(|p| p.0.into_iter().sum::<Energy>()));
        let mut sets: Vec<(u16, Value)> = Vec::new();
        let restored = point.restored_plug_in.take();
        // Stored while a vehicle is connected; plugging in or out changes what is stored.
        let persist = s.connected != point.connected;
        if s.connected && !point.connected {
            point.energy_at_plug_in = match (restored, total) {
                (Some(r), Some(t)) if r <= t => Some(r),
                _ => total,
            };
        }
        if s.charging && !point.charging && point.process_start.is_none() {
            let tod = clock.map(|c| c.time_at(now));
            point.process_start = Some((now, tod));
            point.duration_sent = Some(now);
            if let Some(t) = tod {
                sets.push((off::START_TIME, Value::TimeOfDay(t)));
            }
            sets.push((off::DURATION, Value::Seconds(0)));
        }
        if let Some((start, _)) = point.process_start {
            let elapsed =
                i32::try_from(now.saturating_duration_since(start).as_secs()).unwrap_or(i32::MAX);
            let ended = (point.charging && !s.charging) || !s.connected;
            if ended {
                if let Some(t) = clock.map(|c| c.time_at(now)) {
                    sets.push((off::END_TIME, Value::TimeOfDay(t)));
                }
                sets.push((off::DURATION, Value::Seconds(elapsed)));
            } else if point
                .duration_sent
                .is_none_or(|t| now.saturating_duration_since(t) >= DURATION_REFRESH)
            {
                point.duration_sent = Some(now);
                sets.push((off::DURATION, Value::Seconds(elapsed)));
            }
            if !s.connected {
                point.process_start = None;
            } else if ended {
                // Charging stopped but the vehicle is still there: the process is over; a new
                // one starts if it draws current again.
                point.process_start = None;
            }
        }
        // Charging complete: connected and below the threshold for the configured time.
        let current: Current = s.currents.map_or(Current::ZERO, |c| c.0.into_iter().sum());
        let complete = if s.connected && current < cfg.complete_threshold {
            let since = *point.below_since.get_or_insert(now);
            now.saturating_duration_since(since) >= cfg.complete_time
        } else {
            point.below_since = None;
            false
        };
        point.connected = s.connected;
        point.charging = s.charging;
        point.complete = complete;
        sets.push((off::COMPLETE, Value::Bool(complete)));
        for (offset, value) in sets {
            self.set(obj(cp, offset), value, out);
        }
        if persist {
            out.push(Action::Persist(self.persisted()));
        }
    }

    /// What must survive a restart now.
    pub(super) fn persisted(&self) -> Persisted {
        Persisted {
            plug_in_mwh: self
                .points
                .iter()
                .filter(|(_, p)| p.connected)
                .filter_map(|(cp, p)| Some((cp.number(), p.energy_at_plug_in?.milliwatt_hours())))
                .collect(),
        }
    }

    /// Takes the counters kept from before a restart ([`Event::Restored`]).
    pub(super) fn restore(&mut self, persisted: &Persisted) {
        for (&n, &mwh) in &persisted.plug_in_mwh {
            if let Some(cp) = ChargePointId::new(n) {
                self.points.entry(cp).or_default().restored_plug_in =
                    Some(Energy::from_milliwatt_hours(mwh));
            }
        }
    }

    /// When the core next needs a tick for charging points ("complete" timers).
    pub(super) fn points_timeout(&self) -> Option<Instant> {
        ChargePointId::all()
            .filter_map(|cp| {
                let point = self.points.get(&cp).filter(|p| !p.complete)?;
                let cfg = self.config.charging_point(cp)?;
                point.below_since.map(|since| since + cfg.complete_time)
            })
            .min()
    }

    /// Re-evaluates time-driven charging-point objects at `now` ("complete" after its time).
    pub(super) fn points_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        for cp in ChargePointId::all() {
            let Some(cfg) = self.point_config(cp) else {
                continue;
            };
            let Some(since) = self
                .points
                .get(&cp)
                .filter(|p| !p.complete)
                .and_then(|p| p.below_since)
            else {
                continue;
            };
            if now.saturating_duration_since(since) >= cfg.complete_time {
                if let Some(p) = self.points.get_mut(&cp) {
                    p.complete = true;
                }
                self.set(obj(cp, off::COMPLETE), Value::Bool(true), out);
            }
        }
    }
}
