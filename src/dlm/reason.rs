//! Why a charging point gets the current it gets: one [`Limit`] per charging point, recorded
//! by the decision that set the current (the allocation, the limits after it, the controller
//! in the core), never inferred afterwards from what the objects show.
//!
//! [`Limits`] is a fixed array, one slot per charging point, so recording the reasons costs
//! the DLM cycle no allocation. A [`Limit`] serialises as its [`Limit::key`], the key the
//! website translates (`lim.<key>` in `i18n.js`).

use serde::{Serialize, Serializer};

use crate::units::{ChargePointId, Phase};

/// What decided a charging point's current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// No vehicle is connected: 0 A.
    NoVehicle,
    /// The charging point's own maximum current: nothing else limits it.
    OwnMax,
    /// Its fair share: the budget of a phase it shares with other charging points is used
    /// up, and all of them rose together until then (max-min fair sharing).
    FairShare,
    /// The budget left on this grid phase is used up, and no other charging point rising
    /// with it shares the phase (the house load or a charging point held at a lower level
    /// takes the rest).
    Phase(Phase),
    /// The prioritised charging point took what was left on a phase this one uses.
    Prioritised,
    /// Waiting in the queue for a turn: the minimums do not fit and the queue strategy lets
    /// the charging points that fit charge first.
    Queued,
    /// The minimums do not fit ("interrupt all" strategy): OverCurrent, every charging point
    /// interrupted.
    OverCurrent,
    /// A shortage seen just after a meter value: held at the minimum (or 0 A) until polls
    /// confirm it (3 s), instead of interrupting at once.
    ShortagePending,
    /// The unbalanced-load cap between the phases.
    Unbalance,
    /// Grid-supporting control (object 1): its current cap, its power cap, or 0 A.
    GridControl,
    /// Emergency mode: the smart meter is silent, not linked, or has sent no value yet; the
    /// minimum current (or 0 A where nothing may be switched on).
    Emergency,
    /// A high-power device reported (object 13): the minimum current during its wait.
    HighPower,
    /// Switching on waits for the minimum on/off time since the last switch.
    MinSwitchTime,
    /// Switching between one and three phases: held at 0 A until the box has switched and
    /// the pause after it is over.
    PhaseSwitch,
    /// An increase ramps at the configured rate (switching on starts at the minimum).
    Ramp,
    /// Break before make: another charging point on one of its phases was just given less,
    /// so raises wait for the reaction time.
    BreakBeforeMake,
    /// Interrupted by object 55 (interruption of the charging point).
    Interrupted,
    /// The charging point reports invalid currents (DLM InvCurrent): 0 A.
    InvalidCurrents,
    /// The charging point is not reachable: left out of the allocation.
    NotReachable,
    /// The vehicle draws less than it may (at least 1 A below what it was told, with time
    /// to follow).
    VehicleDrawsLess,
    /// DLM off: the setpoint of object 60.
    Setpoint,
}

impl Limit {
    /// Every reason (for the website's translations and their test).
    pub const ALL: [Self; 23] = [
        Self::NoVehicle,
        Self::OwnMax,
        Self::FairShare,
        Self::Phase(Phase::L1),
        Self::Phase(Phase::L2),
        Self::Phase(Phase::L3),
        Self::Prioritised,
        Self::Queued,
        Self::OverCurrent,
        Self::ShortagePending,
        Self::Unbalance,
        Self::GridControl,
        Self::Emergency,
        Self::HighPower,
        Self::MinSwitchTime,
        Self::PhaseSwitch,
        Self::Ramp,
        Self::BreakBeforeMake,
        Self::Interrupted,
        Self::InvalidCurrents,
        Self::NotReachable,
        Self::VehicleDrawsLess,
        Self::Setpoint,
    ];

    /// The key the website translates (`lim.<key>`).
    pub const fn key(self) -> &'static str {
        match self {
            Self::NoVehicle => "no_vehicle",
            Self::OwnMax => "own_max",
            Self::FairShare => "fair_share",
            Self::Phase(Phase::L1) => "phase_l1",
            Self::Phase(Phase::L2) => "phase_l2",
            Self::Phase(Phase::L3) => "phase_l3",
            Self::Prioritised => "prioritised",
            Self::Queued => "queued",
            Self::OverCurrent => "overcurrent",
            Self::ShortagePending => "shortage_pending",
            Self::Unbalance => "unbalance",
            Self::GridControl => "grid_control",
            Self::Emergency => "dlm_emergency",
            Self::HighPower => "high_power",
            Self::MinSwitchTime => "min_switch_time",
            Self::PhaseSwitch => "phase_switch",
            Self::Ramp => "ramp",
            Self::BreakBeforeMake => "break_before_make",
            Self::Interrupted => "interrupted",
            Self::InvalidCurrents => "invalid_currents",
            Self::NotReachable => "not_reachable",
            Self::VehicleDrawsLess => "vehicle",
            Self::Setpoint => "setpoint",
        }
    }

    /// Whether this reason holds the current below what the charging point could take
    /// (`false` for its own maximum and for no vehicle).
    pub const fn limits(self) -> bool {
        !matches!(self, Self::OwnMax | Self::NoVehicle)
    }
}

impl Serialize for Limit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.key())
    }
}

/// One [`Limit`] per charging point (`None`: not decided, e.g. a disabled charging point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Limits([Option<Limit>; ChargePointId::COUNT as usize]);

impl Limits {
    /// The reason recorded for `cp`.
    pub fn get(&self, cp: ChargePointId) -> Option<Limit> {
        self.0.get(cp.index()).copied().flatten()
    }

    /// Records `limit` for `cp`.
    pub fn set(&mut self, cp: ChargePointId, limit: Limit) {
        if let Some(slot) = self.0.get_mut(cp.index()) {
            *slot = Some(limit);
        }
    }

    /// Forgets the reason of `cp`.
    pub fn clear(&mut self, cp: ChargePointId) {
        if let Some(slot) = self.0.get_mut(cp.index()) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_key() {
        let keys: std::collections::BTreeSet<&str> = Limit::ALL.iter().map(|l| l.key()).collect();
        assert_eq!(keys.len(), Limit::ALL.len());
        assert_eq!(
            serde_json::to_string(&Limit::Phase(Phase::L2)).unwrap(),
            "\"phase_l2\""
        );
    }

    #[test]
    fn limits_keep_one_reason_per_charging_point() {
        let cp = |n| ChargePointId::new(n).unwrap();
        let mut l = Limits::default();
        l.set(cp(5), Limit::Queued);
        l.set(cp(1), Limit::OwnMax);
        assert_eq!(l.get(cp(5)), Some(Limit::Queued));
        assert_eq!(l.get(cp(2)), None);
        l.clear(cp(5));
        assert_eq!(l.get(cp(5)), None);
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            "[\"own_max\",null,null,null,null]"
        );
    }
}
