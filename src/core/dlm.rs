//! The core's side of load management: it turns group-object writes (smart meter on objects
//! 10–12, high-power devices on 13, "In operation" on 20), polls and timers into
//! [`crate::dlm::Input`]s for the [`crate::dlm::Controller`] it owns, tells the controller
//! what it knows about each charging point ([`crate::dlm::Env`]), puts the controller's
//! device faults on the fault board and sends the resulting currents.
//!
//! The rules themselves live in [`crate::dlm::controller`]; object numbers stay here.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Action, Core};
use crate::config::{Config, MeterConnection, MonitoringMode, OvercurrentStrategy, PhaseCount};
use crate::dlm::{
    Controller, Env, FaultChange, Input, MeterSettings, Mode, PointInput, PointSettings, Settings,
    Shortage, Supervision,
};
use crate::faults::{FaultCode, Scope};
use crate::objects::Value;
use crate::objects::number::device as object;
use crate::units::{ChargePointId, GoNumber, Phase};

/// The DLM's settings from the configuration.
pub(super) fn settings(config: &Config) -> Settings {
    let dlm = &config.dlm;
    let one_phase = dlm.meter.connection == MeterConnection::OnePhase;
    let l1 = if one_phase {
        "no smart-meter value (object 10)".to_owned()
    } else {
        "no smart-meter value L1 (object 10)".to_owned()
    };
    let points: BTreeMap<ChargePointId, PointSettings> = ChargePointId::all()
        .filter_map(|cp| {
            let c = config.charging_point(cp)?;
            Some((
                cp,
                PointSettings {
                    active: c.is_active(),
                    min: c.min_current,
                    max: c.max_current,
                    three_phase: c.phases == PhaseCount::Three,
                    rotation: c.rotation.0,
                    phase_switch: c.phase_switch
                        && c.capabilities()
                            .contains(&crate::catalog::Capability::PhaseSwitch),
                },
            ))
        })
        .collect();
    Settings {
        fuse: dlm.overcurrent_protection,
        budget: dlm.budget(),
        meter: MeterSettings {
            three_phase: !one_phase,
            supervision: match dlm.meter.monitoring {
                MonitoringMode::Values => Supervision::Values,
                MonitoringMode::ValuesAndInOperation => Supervision::Trigger,
            },
            interval: dlm.meter.interval,
            tolerance: dlm.meter.tolerance,
            names: [
                l1,
                "no smart-meter value L2 (object 11)".to_owned(),
                "no smart-meter value L3 (object 12)".to_owned(),
                "no \"In operation\" trigger (object 20)".to_owned(),
            ],
        },
        high_power_wait: dlm.high_power_waiting_time,
        unbalanced_load_limit: dlm.unbalanced_load_limit,
        grid_control_power_w: dlm.grid_control_power_w,
        nominal_voltage: dlm.meter.nominal_voltage,
        shortage: match dlm.overcurrent_strategy {
            OvercurrentStrategy::InterruptAll => Shortage::InterruptAll,
            OvercurrentStrategy::Queue => Shortage::Queue,
        },
        rotation_interval: dlm.rotation_interval,
        min_switch_time: dlm.min_switch_time,
        ramp_up_per_second: dlm.ramp_up_per_second,
        mode: if dlm.per_phase {
            Mode::PerPhase
        } else {
            Mode::Symmetric
        },
        prioritised: dlm.prioritised,
        points,
    }
}

/// Creates the controller for `config`.
pub(super) fn controller(config: &Config) -> Controller {
    Controller::new(settings(config))
}

impl Core {
    /// Smart-meter and DLM object writes (10, 11, 12, 13, 20).
    pub(super) fn dlm_written(
        &mut self,
        object: GoNumber,
        value: &Value,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if !self.config.dlm.enabled {
            return;
        }
        let phase = match object {
            object::METER_VALUE_1 => Some(Phase::L1),
            object::METER_VALUE_2 => Some(Phase::L2),
            object::METER_VALUE_3 => Some(Phase::L3),
            _ => None,
        };
        let input = match (phase, value) {
            (Some(p), Value::Current(c)) => Input::Meter(p, *c),
            (Some(p), Value::Power(w)) => {
                match w.to_current(self.config.dlm.meter.nominal_voltage) {
                    Some(c) => Input::Meter(p, c),
                    None => return,
                }
            }
            (None, Value::Bool(on)) if object == object::HIGH_POWER_DEVICES => {
                Input::HighPower(*on)
            }
            // Table 21: DPT 1.017 trigger, both 0 and 1 are a trigger.
            (None, Value::Bool(_)) if object == object::IN_OPERATION => Input::Trigger,
            _ => return,
        };
        self.dlm_run(input, now, out);
    }

    /// A charging point was polled (its status already updated).
    pub(super) fn dlm_polled(&mut self, cp: ChargePointId, now: Instant, out: &mut Vec<Action>) {
        self.dlm_run(Input::Polled(cp), now, out);
    }

    /// Recomputes the DLM targets and sends what changed.
    pub(super) fn dlm_update(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.dlm_run(Input::Tick, now, out);
    }

    pub(super) fn dlm_run(&mut self, input: Input, now: Instant, out: &mut Vec<Action>) {
        if !self.config.dlm.enabled {
            return;
        }
        let env = self.dlm_env();
        let decision = self.dlm.handle(input, now, &env);
        if !decision.faults.is_empty() {
            for change in decision.faults {
                match change {
                    FaultChange::Raise(fault) => {
                        self.faults.raise(fault);
                    }
                    FaultChange::Clear(code) => {
                        self.faults.clear(Scope::Device, code);
                    }
                }
            }
            self.publish_faults(out);
        }
        for (cp, event) in &decision.phase_events {
            log_phase_event(*cp, event);
        }
        for (cp, to) in &decision.set_phases {
            out.push(Action::Charger {
                cp: *cp,
                command: crate::chargers::ChargerCommand::SetPhases(*to),
            });
        }
        let active: Vec<ChargePointId> = ChargePointId::all()
            .filter(|cp| {
                self.config
                    .charging_point(*cp)
                    .is_some_and(crate::config::ChargePointConfig::is_active)
            })
            .collect();
        for cp in active {
            self.apply_target(cp, out);
        }
    }

    /// What the DLM needs to know about the charging points and the core's own decisions.
    fn dlm_env(&self) -> Env {
        let points = self
            .points
            .iter()
            .filter(|(cp, _)| self.config.charging_point(**cp).is_some())
            .map(|(cp, p)| {
                let status = p.status.as_ref();
                (
                    *cp,
                    PointInput {
                        known: status.is_some(),
                        connected: status.is_some_and(|s| s.connected),
                        charging: status.is_some_and(|s| s.charging),
                        currents: status.and_then(|s| s.currents),
                        commanded: p.commanded,
                        interrupted: p.interrupted,
                        unreachable: self
                            .faults
                            .is_present(Scope::ChargingPoint(*cp), FaultCode::NotReachable),
                        invalid: self
                            .faults
                            .is_present(Scope::ChargingPoint(*cp), FaultCode::DlmInvCurrent),
                        phases_switched: status.and_then(|s| s.phases_switched),
                        phase_switch_available: status.and_then(|s| s.phase_switch_available),
                    },
                )
            })
            .collect();
        Env {
            points,
            association_missing: self
                .faults
                .is_present(Scope::Device, FaultCode::DlmAssociation),
            grid_control: self
                .grid_control
                .then_some(self.config.dlm.grid_control_current),
        }
    }

    /// When the DLM next needs a tick.
    pub(super) fn dlm_timeout(&self) -> Option<Instant> {
        if !self.config.dlm.enabled {
            return None;
        }
        self.dlm.poll_timeout(&self.dlm_env())
    }
}

/// Logs a step of 1-/3-phase switching at info level (the DLM's own decision: never a fault).
fn log_phase_event(cp: ChargePointId, event: &crate::dlm::phases::Event) {
    use crate::dlm::phases::{Event, GiveUp};
    use crate::units::PhaseCount as Count;
    let what = match event {
        Event::Begin(Count::One) => {
            "3-phase minimum does not fit; switching to one phase".to_owned()
        }
        Event::Begin(Count::Three) => {
            "3-phase minimum fits again; switching to three phases".to_owned()
        }
        Event::Switched(to) => format!("switched to {} phase(s); pause", to.count()),
        Event::Complete(to) => format!("resumes on {} phase(s)", to.count()),
        Event::GaveUp(GiveUp::Refused(why)) => {
            format!("phase switching refused ({why}); no more switching until the vehicle leaves")
        }
        Event::GaveUp(GiveUp::DidNotFollow) => "the box did not report the new phases in time; \
             no more switching until the vehicle leaves"
            .to_owned(),
    };
    tracing::info!("CP{cp}: {what}");
}
