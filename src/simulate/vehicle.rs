//! What a vehicle behind a charging point draws, written from the charging standard and
//! field behaviour, not from the DLM: it must surprise the DLM the way real cars do.
//!
//! Owns [`Vehicle`], a sans-IO model stepped at injected time:
//! * **reaction**: a new offer (the PWM duty cycle of IEC 61851-1) is followed only after the
//!   vehicle's reaction delay; the standard allows an EV 5 s to follow a new duty cycle;
//! * **minimum**: an offer below 6 A is no permission to charge (IEC 61851-1: duty cycles
//!   below 10 % = 6 A do not allow charging), so the vehicle draws 0 A;
//! * **ramp**: it rises towards a higher target at its ramp rate (A/s); it lowers at once once
//!   the reaction delay has passed;
//! * **ceiling**: its on-board charger takes at most `max_current`, whatever is offered;
//! * **taper**: from `taper_from` of its energy on, the ceiling falls linearly to `taper_to`
//!   at full (the battery's constant-voltage phase);
//! * **self-pause**: in its pause windows it draws 0 A while plugged (SuspendedEV, e.g.
//!   battery conditioning or a departure timer);
//! * **phases**: 1, 2 or 3, on the grid phases given by the point's rotation; a phase switch
//!   (1↔3) pauses at 0 A for its changeover time, then draws on the new number of phases.
//!   Behind a box that switched to one phase it draws on the point's phase 1 only (the box
//!   stops offering current for the switch itself: [`super::run`]); a 1-phase vehicle stays
//!   on one phase behind a box on three.
//!
//! It stops when its energy is reached (and stays plugged until its departure).

use std::time::Duration;

use super::scenario::{PointSpec, VehicleSpec};
use crate::units::{Current, Phase};

/// Below this offer a vehicle may not charge (IEC 61851-1: 10 % duty cycle = 6 A).
pub const MIN_OFFER: f64 = 6.0;

/// Phase voltage for the vehicle's energy.
const VOLTAGE: f64 = 230.0;

/// One vehicle's state during a run.
#[derive(Debug, Clone)]
pub struct Vehicle {
    spec: VehicleSpec,
    /// Energy delivered so far, Wh.
    pub delivered_wh: f64,
    /// What it draws now, per phase, A.
    pub draw: f64,
    /// Phases it draws on now (its own, at most what the box offers).
    pub phases: u8,
}

impl Vehicle {
    /// A vehicle not yet arrived.
    pub fn new(spec: &VehicleSpec) -> Self {
        Self {
            spec: spec.clone(),
            delivered_wh: 0.0,
            draw: 0.0,
            phases: spec.phases,
        }
    }

    /// Its scenario entry.
    pub fn spec(&self) -> &VehicleSpec {
        &self.spec
    }

    /// Plugged in at `t`.
    pub fn present(&self, t: Duration) -> bool {
        self.spec.arrival <= t && t < self.spec.departure
    }

    /// Energy still wanted, Wh.
    pub fn remaining_wh(&self) -> f64 {
        (self.spec.energy.as_watt_hours_f64() - self.delivered_wh).max(0.0)
    }

    /// Still wants energy.
    pub fn wanting(&self) -> bool {
        self.remaining_wh() > 1e-9
    }

    /// In one of its own pauses at `t`.
    pub fn self_paused(&self, t: Duration) -> bool {
        self.spec.pauses.iter().any(|w| w.contains(t))
    }

    /// Inside a phase switch's changeover at `t`.
    fn switching(&self, t: Duration) -> bool {
        self.spec
            .phase_switches
            .iter()
            .any(|s| s.at <= t && t < s.at + s.pause)
    }

    /// The phases it draws on at `t` (after the phase switches that started by then).
    fn phases_at(&self, t: Duration) -> u8 {
        self.spec
            .phase_switches
            .iter()
            .rev()
            .find(|s| s.at <= t)
            .map_or(self.spec.phases, |s| s.phases)
    }

    /// The most it would take now, per phase, A (its on-board charger, less the taper).
    pub fn ceiling(&self) -> f64 {
        self.ceiling_at(self.delivered_wh)
    }

    /// The most it would take with `delivered_wh` in its battery, per phase, A.
    pub fn ceiling_at(&self, delivered_wh: f64) -> f64 {
        let max = self.spec.max_current.as_amps_f64();
        let Some(from) = self.spec.taper_from else {
            return max;
        };
        let wanted = self.spec.energy.as_watt_hours_f64();
        if wanted <= 0.0 {
            return max;
        }
        let frac = delivered_wh / wanted;
        if frac <= from {
            return max;
        }
        let to = self.spec.taper_to.as_amps_f64().min(max);
        let f = ((frac - from) / (1.0 - from)).clamp(0.0, 1.0);
        max - (max - to) * f
    }

    /// Whether it could draw at `t` if it still wanted energy (plugged, not pausing, not
    /// switching phases).
    pub fn available(&self, t: Duration) -> bool {
        self.present(t) && !self.self_paused(t) && !self.switching(t)
    }

    /// The phases it draws on at `t`.
    pub fn phases_now(&self, t: Duration) -> u8 {
        self.phases_at(t)
    }

    /// Whether it would draw now if offered enough (present, wanting, not pausing, not
    /// switching phases).
    pub fn would_charge(&self, t: Duration) -> bool {
        self.present(t) && self.wanting() && !self.self_paused(t) && !self.switching(t)
    }

    /// Advances by `dt` at `t`, following `offer` (the offer it has seen, after its reaction
    /// delay), behind a point offering `point_phases` (the phases it is wired with, or one
    /// while its box is switched to one phase). Returns the energy it took in this step, Wh.
    pub fn step(&mut self, t: Duration, dt: f64, offer: Current, point_phases: u8) -> f64 {
        self.phases = self.phases_at(t).min(point_phases.max(1));
        let target = if self.would_charge(t) && offer.as_amps_f64() >= MIN_OFFER {
            offer.as_amps_f64().min(self.ceiling()).max(0.0)
        } else {
            0.0
        };
        self.draw = match self.spec.ramp {
            Some(rate) if target > self.draw => (self.draw + rate * dt).min(target),
            _ => target,
        };
        let n = f64::from(self.phases);
        let wh = (self.draw * VOLTAGE * n * dt / 3600.0).min(self.remaining_wh());
        self.delivered_wh += wh;
        if !self.wanting() {
            self.draw = 0.0;
        }
        wh
    }

    /// The grid phases it draws on through `point`'s rotation.
    pub fn grid_phases(&self, point: &PointSpec) -> Vec<Phase> {
        point.grid_phases(self.phases)
    }

    /// What it draws on each of the charging point's phases 1, 2, 3 (as the box's meter
    /// reports them), A.
    pub fn point_currents(&self, point: &PointSpec) -> [Current; 3] {
        let n = usize::from(self.phases.min(point.phases));
        let c = Current::from_amps_f64(self.draw).unwrap_or(Current::ZERO);
        let mut out = [Current::ZERO; 3];
        for slot in out.iter_mut().take(n) {
            *slot = c;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::scenario::{PhaseSwitch, Window};
    use crate::units::{ChargePointId, Energy};

    fn spec() -> VehicleSpec {
        VehicleSpec {
            name: "v".to_owned(),
            charging_point: ChargePointId::new(1).unwrap(),
            arrival: Duration::ZERO,
            departure: Duration::from_secs(10_000),
            phases: 3,
            max_current: Current::from_amps(16),
            energy: Energy::from_watt_hours(10_000),
            reaction: Duration::from_secs(2),
            ramp: None,
            taper_from: None,
            taper_to: Current::from_amps(2),
            pauses: Vec::new(),
            phase_switches: Vec::new(),
        }
    }

    fn s(t: u64) -> Duration {
        Duration::from_secs(t)
    }

    #[test]
    fn draws_the_offer_up_to_its_ceiling_and_nothing_below_six_amperes() {
        let mut v = Vehicle::new(&VehicleSpec {
            max_current: Current::from_amps(10),
            ..spec()
        });
        v.step(s(0), 1.0, Current::from_amps(16), 3);
        assert!((v.draw - 10.0).abs() < 1e-9);
        v.step(s(1), 1.0, Current::from_amps(8), 3);
        assert!((v.draw - 8.0).abs() < 1e-9);
        v.step(s(2), 1.0, Current::from_milliamps(5_900), 3);
        assert!(v.draw.abs() < 1e-9);
    }

    #[test]
    fn ramps_up_at_its_rate_and_down_at_once() {
        let mut v = Vehicle::new(&VehicleSpec {
            ramp: Some(2.0),
            ..spec()
        });
        v.step(s(0), 1.0, Current::from_amps(16), 3);
        assert!((v.draw - 2.0).abs() < 1e-9);
        for k in 1..10 {
            v.step(s(k), 1.0, Current::from_amps(16), 3);
        }
        assert!((v.draw - 16.0).abs() < 1e-9);
        v.step(s(10), 1.0, Current::from_amps(6), 3);
        assert!((v.draw - 6.0).abs() < 1e-9);
    }

    #[test]
    fn tapers_towards_full_and_stops_when_full() {
        let mut v = Vehicle::new(&VehicleSpec {
            taper_from: Some(0.5),
            energy: Energy::from_watt_hours(1_000),
            ..spec()
        });
        v.delivered_wh = 750.0;
        assert!((v.ceiling() - 9.0).abs() < 1e-9);
        v.delivered_wh = 999.9;
        v.step(s(0), 1.0, Current::from_amps(16), 3);
        assert!(!v.wanting());
        assert!(v.draw.abs() < 1e-9);
    }

    #[test]
    fn draws_on_one_phase_behind_a_box_switched_to_one_and_a_one_phase_car_stays_on_one() {
        let mut v = Vehicle::new(&spec());
        v.step(s(0), 1.0, Current::from_amps(10), 1);
        assert_eq!(v.phases, 1);
        assert!((v.delivered_wh - 10.0 * VOLTAGE / 3600.0).abs() < 1e-9);
        v.step(s(1), 1.0, Current::from_amps(10), 3);
        assert_eq!(v.phases, 3);
        let mut one = Vehicle::new(&VehicleSpec {
            phases: 1,
            ..spec()
        });
        one.step(s(0), 1.0, Current::from_amps(10), 3);
        assert_eq!(one.phases, 1);
    }

    #[test]
    fn pauses_on_its_own_and_switches_phases_with_a_changeover() {
        let mut v = Vehicle::new(&VehicleSpec {
            pauses: vec![Window {
                from: s(10),
                to: s(20),
            }],
            phase_switches: vec![PhaseSwitch {
                at: s(30),
                phases: 1,
                pause: s(5),
            }],
            ..spec()
        });
        v.step(s(15), 1.0, Current::from_amps(16), 3);
        assert!(v.draw.abs() < 1e-9);
        v.step(s(32), 1.0, Current::from_amps(16), 3);
        assert!(v.draw.abs() < 1e-9);
        assert_eq!(v.phases, 1);
        v.step(s(35), 1.0, Current::from_amps(16), 3);
        assert!((v.draw - 16.0).abs() < 1e-9);
        let point = PointSpec {
            id: ChargePointId::new(1).unwrap(),
            phases: 3,
            rotation: [Phase::L2, Phase::L3, Phase::L1],
            min: Current::from_amps(6),
            max: Current::from_amps(16),
            phase_switch: false,
        };
        assert_eq!(v.grid_phases(&point), vec![Phase::L2]);
    }
}
