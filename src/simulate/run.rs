//! One simulation run: the real [`Core`] at injected time against a simulated house, meter,
//! charging points and vehicles; and the figures computed from it.
//!
//! Owns the physics and the metrics:
//! * every step the house load (profile + load steps) and the vehicles' draws give the true
//!   current per grid phase; the meter sends it every meter interval (objects 10–12) except
//!   in silence windows; every whole second each charging point is polled
//!   ([`Event::ChargerPolled`]) with its vehicle's state and currents; the core's
//!   `SetCurrent` actions become the points' setpoints;
//! * a vehicle draws min(setpoint, its maximum) on its phases, seeing a setpoint only after
//!   its reaction delay; it stops when its energy is reached or it leaves;
//! * figures: overload above the fuse beyond a 5 s reaction window, delivered energy (230 V
//!   per phase), an energy bound computed without the DLM, efficiency, Jain fairness and
//!   switch events (see [`Summary`]).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::scenario::{AllocationMode, Scenario};
use crate::chargers::{ChargerCommand, ChargerStatus, CpState};
use crate::core::{Action, Core, Event};
use crate::objects::Value;
use crate::units::{ChargePointId, Current, GoNumber, PerPhase, Phase};

/// Phase voltage for energy figures.
pub const VOLTAGE: f64 = 230.0;

/// How long an excursion above the fuse may last before it counts as overload.
pub const REACTION_WINDOW: Duration = Duration::from_secs(5);

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
    /// Highest true grid current.
    pub max_meter_a: Phases,
    /// Energy delivered to all vehicles.
    pub energy_kwh: f64,
    /// Most energy the budget allowed (independent of the DLM).
    pub energy_bound_kwh: f64,
    /// `energy_kwh / energy_bound_kwh` (1 when the bound is 0).
    pub efficiency: f64,
    /// Jain's index over the vehicles' mean currents while present and wanting.
    pub jain_fairness: f64,
    /// Setpoint transitions between 0 A and a current (starting from 0 A).
    pub switch_events: u32,
    /// Time the DLM spent in emergency mode.
    pub emergency_s: f64,
    /// Time the high-power wait ran.
    pub high_power_s: f64,
    /// Times the core's `poll_timeout` named an instant it had already been ticked at.
    pub stale_poll_timeouts: u32,
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
    /// Setpoint per charging point (scenario order).
    pub setpoints: Vec<Current>,
    /// Current the vehicle draws per phase, per charging point.
    pub actual: Vec<Current>,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Figures.
    pub summary: Summary,
    /// Time series.
    pub rows: Vec<Row>,
}

struct PointSim {
    id: ChargePointId,
    setpoint: Current,
    /// Setpoint changes (time, value), oldest first.
    history: Vec<(Duration, Current)>,
}

impl PointSim {
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
struct VehicleSim {
    delivered_wh: f64,
    wanting_s: f64,
    current_as: f64,
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn amps(c: Current) -> f64 {
    c.as_amps_f64()
}

/// Runs `scenario` once with `mode`.
pub fn run(scenario: &Scenario, mode: AllocationMode) -> Result<RunResult, super::ScenarioError> {
    let config = scenario.config(mode)?;
    let budget = config.dlm.budget();
    let mut core = Core::new(config, true);
    let base = Instant::now();
    let at = |t: Duration| base + t;
    let step = scenario.step;
    let dt = step.as_secs_f64();
    let mut points: Vec<PointSim> = scenario
        .points
        .iter()
        .map(|p| PointSim {
            id: p.id,
            setpoint: Current::ZERO,
            history: vec![(Duration::ZERO, Current::ZERO)],
        })
        .collect();
    let mut vehicles: Vec<VehicleSim> = scenario
        .vehicles
        .iter()
        .map(|_| VehicleSim::default())
        .collect();
    let mut switches = 0u32;
    let mut apply = |points: &mut Vec<PointSim>, t: Duration, actions: Vec<Action>| {
        for a in actions {
            if let Action::Charger {
                cp,
                command: ChargerCommand::SetCurrent(c),
            } = a
            {
                if let Some(p) = points.iter_mut().find(|p| p.id == cp) {
                    if (p.setpoint == Current::ZERO) != (c == Current::ZERO) {
                        switches += 1;
                    }
                    p.setpoint = c;
                    p.history.push((t, c));
                }
            }
        }
    };
    let actions = core.handle(Event::Started, at(Duration::ZERO));
    apply(&mut points, Duration::ZERO, actions);

    let mut rows = Vec::new();
    let mut overload = [0.0f64; 3];
    let mut excursion: [Option<Duration>; 3] = [None; 3];
    let mut max_meter = [0.0f64; 3];
    let mut bound_wh = 0.0f64;
    let mut emergency_s = 0.0f64;
    let mut high_power_s = 0.0f64;
    let mut stale = 0u32;
    let mut last_tick: Option<Instant> = None;
    let mut grid_on = false;
    let mut next_high_power = 0usize;
    let steps = scenario.duration.as_nanos() / step.as_nanos().max(1);
    let mut t = Duration::ZERO;
    for _ in 0..steps {
        let now = at(t);
        let whole_second = t.subsec_nanos() == 0;
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
            apply(&mut points, t, a);
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
            apply(&mut points, t, a);
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
        let mut draws: Vec<Current> = vec![Current::ZERO; points.len()];
        let mut cp_currents: Vec<Option<(usize, PerPhase<Current>)>> = vec![None; points.len()];
        // Bound: per phase, what vehicles could take (Wh this step).
        let mut could_wh = [0.0f64; 3];
        for (vi, v) in scenario.vehicles.iter().enumerate() {
            if !(v.arrival <= t && t < v.departure) {
                continue;
            }
            let Some(pi) = points.iter().position(|p| p.id == v.charging_point) else {
                continue;
            };
            let Some(spec) = scenario.point(v.charging_point) else {
                continue;
            };
            let Some(state) = vehicles.get_mut(vi) else {
                continue;
            };
            let wanted_wh = v.energy.as_watt_hours_f64();
            let remaining = (wanted_wh - state.delivered_wh).max(0.0);
            let phases = spec.grid_phases(v.phases);
            #[allow(clippy::cast_precision_loss, reason = "1 to 3 phases")]
            let n = phases.len().max(1) as f64;
            let wanting = remaining > 1e-9;
            let draw = if wanting {
                points
                    .get(pi)
                    .map_or(Current::ZERO, |p| p.seen(t, v.reaction))
                    .min(v.max_current)
                    .max(Current::ZERO)
            } else {
                Current::ZERO
            };
            if wanting {
                let cap = amps(v.max_current.min(spec.max));
                for p in &phases {
                    if let Some(slot) = could_wh.get_mut(p.index()) {
                        *slot += (cap * VOLTAGE * dt / 3600.0).min(remaining / n);
                    }
                }
                state.wanting_s += dt;
                state.current_as += amps(draw) * dt;
            }
            let wh = (amps(draw) * VOLTAGE * n * dt / 3600.0).min(remaining);
            state.delivered_wh += wh;
            for p in &phases {
                meter.set(*p, meter.get(*p) + draw);
            }
            if let Some(slot) = draws.get_mut(pi) {
                *slot = draw;
            }
            let mut per_cp = [Current::ZERO; 3];
            for slot in per_cp.iter_mut().take(phases.len()) {
                *slot = draw;
            }
            if let Some(slot) = cp_currents.get_mut(pi) {
                *slot = Some((vi, PerPhase(per_cp)));
            }
        }
        for p in Phase::ALL {
            let i = p.index();
            let avail = amps(budget.saturating_sub(house.get(p)).max(Current::ZERO));
            if let Some(c) = could_wh.get(i) {
                bound_wh += (avail * VOLTAGE * dt / 3600.0).min(*c);
            }
            let m = amps(meter.get(p));
            if let Some(slot) = max_meter.get_mut(i) {
                *slot = slot.max(m);
            }
            let (Some(ex), Some(ov)) = (excursion.get_mut(i), overload.get_mut(i)) else {
                continue;
            };
            if meter.get(p) > scenario.fuse {
                let start = *ex.get_or_insert(t);
                if t.saturating_sub(start) >= REACTION_WINDOW {
                    *ov += (m - amps(scenario.fuse)) * dt;
                }
            } else {
                *ex = None;
            }
        }
        // The meter sends.
        let interval = scenario.meter_interval.as_nanos().max(1);
        let silent = scenario.events.meter_silence.iter().any(|w| w.contains(t));
        if t.as_nanos() % interval == 0 && !silent {
            for (i, p) in Phase::ALL.into_iter().enumerate() {
                let object = GoNumber(10 + u16::try_from(i).unwrap_or(0));
                let a = core.handle(
                    Event::ObjectWritten {
                        object,
                        value: Value::Current(meter.get(p)),
                    },
                    now,
                );
                apply(&mut points, t, a);
            }
        }
        // The charging points are polled every second.
        if whole_second {
            for (pi, slot) in cp_currents.iter().enumerate() {
                let Some(point) = points.get(pi) else {
                    continue;
                };
                let cp = point.id;
                let status = match slot {
                    Some((_, currents)) => {
                        let charging = currents.0.iter().any(|c| *c > Current::ZERO);
                        ChargerStatus {
                            state: Some(if charging {
                                CpState::Charging
                            } else {
                                CpState::Connected
                            }),
                            connected: true,
                            charging,
                            setpoint: Some(point.setpoint),
                            currents: Some(*currents),
                            ..ChargerStatus::default()
                        }
                    }
                    None => ChargerStatus {
                        state: Some(CpState::Available),
                        setpoint: Some(point.setpoint),
                        currents: Some(PerPhase::splat(Current::ZERO)),
                        ..ChargerStatus::default()
                    },
                };
                let a = core.handle(Event::ChargerPolled { cp, status }, now);
                apply(&mut points, t, a);
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
            apply(&mut points, t, a);
        }
        // Record.
        let cycle = core.dlm_cycle();
        if cycle.is_some_and(|c| c.emergency) {
            emergency_s += dt;
        }
        if cycle.is_some_and(|c| c.high_power) {
            high_power_s += dt;
        }
        if whole_second {
            rows.push(Row {
                t,
                meter,
                house,
                budget: cycle.map_or(PerPhase::splat(budget), |c| c.budget),
                available: cycle.map_or(PerPhase::splat(Current::ZERO), |c| c.available),
                emergency: cycle.is_some_and(|c| c.emergency),
                high_power: cycle.is_some_and(|c| c.high_power),
                grid_control: grid_on,
                setpoints: points.iter().map(|p| p.setpoint).collect(),
                actual: draws,
            });
        }
        t += step;
    }
    let _ = &mut apply;

    let energy_wh: f64 = vehicles.iter().map(|v| v.delivered_wh).sum();
    let means: Vec<f64> = vehicles
        .iter()
        .filter(|v| v.wanting_s > 0.0)
        .map(|v| v.current_as / v.wanting_s)
        .collect();
    let summary = Summary {
        scenario: scenario.name.clone(),
        mode,
        duration_s: scenario.duration.as_secs_f64(),
        step_s: dt,
        fuse_a: amps(scenario.fuse),
        budget_a: amps(budget),
        overload_amp_seconds: Phases::from_array(overload),
        max_meter_a: Phases::from_array(max_meter),
        energy_kwh: round4(energy_wh / 1000.0),
        energy_bound_kwh: round4(bound_wh / 1000.0),
        efficiency: round4(if bound_wh > 0.0 {
            energy_wh / bound_wh
        } else {
            1.0
        }),
        jain_fairness: round4(jain(&means)),
        switch_events: switches,
        emergency_s: round4(emergency_s),
        high_power_s: round4(high_power_s),
        stale_poll_timeouts: stale,
        vehicles: scenario
            .vehicles
            .iter()
            .zip(&vehicles)
            .map(|(spec, v)| VehicleSummary {
                name: spec.name.clone(),
                charging_point: spec.charging_point.number(),
                wanted_kwh: round4(spec.energy.as_watt_hours_f64() / 1000.0),
                delivered_kwh: round4(v.delivered_wh / 1000.0),
                mean_current_a: round4(if v.wanting_s > 0.0 {
                    v.current_as / v.wanting_s
                } else {
                    0.0
                }),
            })
            .collect(),
    };
    Ok(RunResult { summary, rows })
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

    #[test]
    fn a_vehicle_follows_its_setpoint_after_the_reaction_delay() {
        let p = PointSim {
            id: ChargePointId::new(1).unwrap(),
            setpoint: Current::from_amps(10),
            history: vec![
                (Duration::ZERO, Current::ZERO),
                (Duration::from_secs(10), Current::from_amps(10)),
            ],
        };
        let r = Duration::from_secs(2);
        assert_eq!(p.seen(Duration::from_secs(11), r), Current::ZERO);
        assert_eq!(p.seen(Duration::from_secs(12), r), Current::from_amps(10));
        assert_eq!(p.seen(Duration::from_secs(1), r), Current::ZERO);
    }
}
