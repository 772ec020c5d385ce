//! Plausibility of the currents a charging point reports (spec ch. 11, DLM InvCurrent).
//!
//! The drivers already reject the models' own invalid markers (0xFFFFFFFF, NaN, negative
//! values). A value that passes them can still be impossible: KEBA marks only values ≥ 2³¹
//! as invalid, so 0x7FFFFFFF mA reads as 2,147,483 A. Trusting such a value makes the
//! other-load estimate 0 and hands out current that is not there. A reading is implausible
//! when a phase current is
//! * above the charging point's maximum plus [`tolerance`] (a vehicle never draws more
//!   than offered, IEC 61851-1 Annex A, apart from measurement error),
//! * above the rating of the overcurrent protection device (the house could not carry it),
//! * or, with a power reading, far above what the power allows: Σ I × U more than twice the
//!   reported power plus [`POWER_SLACK`] (a poll may read currents and power a moment apart
//!   while a vehicle starts; a power factor below 0.5 does not occur while charging).

use crate::units::{Current, PerPhase, Phase, Power, Voltage};

/// Slack for the power cross-check (a vehicle starting between two register reads).
pub const POWER_SLACK: Power = Power::from_watts(2_500);

/// How far above its maximum a charging point's reading may lie: 10 % + 1 A (meter error,
/// a vehicle's overshoot while following a new duty cycle).
pub fn tolerance(max: Current) -> Current {
    Current::from_milliamps(max.milliamps() / 10 + 1_000)
}

/// Why a reading is implausible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Implausible {
    /// Above the charging point's maximum plus the tolerance.
    #[error("{phase:?} reads {value}, above the maximum {max} + tolerance")]
    AboveMaximum {
        /// The charging point's phase.
        phase: Phase,
        /// The reading.
        value: Current,
        /// The charging point's maximum.
        max: Current,
    },
    /// Above the overcurrent protection device.
    #[error("{phase:?} reads {value}, above the fuse ({fuse})")]
    AboveFuse {
        /// The charging point's phase.
        phase: Phase,
        /// The reading.
        value: Current,
        /// The fuse.
        fuse: Current,
    },
    /// The currents do not go with the power.
    #[error("currents {sum} in total do not go with a power of {power}")]
    Power {
        /// Sum of the phase currents.
        sum: Current,
        /// The power reported.
        power: Power,
    },
}

/// Checks one poll's currents (per charging-point phase).
pub fn check(
    currents: PerPhase<Current>,
    power: Option<Power>,
    max: Current,
    fuse: Current,
    voltage: Voltage,
) -> Result<(), Implausible> {
    for (phase, value) in Phase::ALL.into_iter().zip(currents.0) {
        if value > fuse {
            return Err(Implausible::AboveFuse { phase, value, fuse });
        }
        if value > max + tolerance(max) {
            return Err(Implausible::AboveMaximum { phase, value, max });
        }
    }
    if let Some(power) = power {
        let sum: Current = currents.0.into_iter().sum();
        let implied =
            i64::from(sum.milliamps()) * i64::from(voltage.millivolts()) / 1_000_000 * 1_000;
        let allowed = power.milliwatts().abs() * 2 + POWER_SLACK.milliwatts();
        if implied > allowed {
            return Err(Implausible::Power { sum, power });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: i32) -> Current {
        Current::from_amps(n)
    }

    const U: Voltage = Voltage::from_volts(230);

    #[test]
    fn keba_0x7fffffff_milliamperes_is_implausible() {
        let c = Current::from_milliamps(0x7FFF_FFFF);
        let r = check(PerPhase([c, a(0), a(0)]), None, a(16), a(32), U);
        assert!(matches!(r, Err(Implausible::AboveFuse { .. })), "{r:?}");
    }

    #[test]
    fn above_the_maximum_plus_tolerance_is_implausible_within_it_is_fine() {
        assert!(check(PerPhase::splat(a(17)), None, a(16), a(63), U).is_ok());
        let r = check(PerPhase::splat(a(19)), None, a(16), a(63), U);
        assert!(matches!(r, Err(Implausible::AboveMaximum { .. })), "{r:?}");
    }

    #[test]
    fn currents_far_above_the_power_are_implausible() {
        // 3 × 16 A at 230 V = 11 kW.
        let p = |w| Some(Power::from_watts(w));
        assert!(check(PerPhase::splat(a(16)), p(11_000), a(16), a(32), U).is_ok());
        assert!(check(PerPhase::splat(a(16)), p(4_500), a(16), a(32), U).is_ok());
        assert!(check(PerPhase::splat(a(16)), p(1_000), a(16), a(32), U).is_err());
        assert!(check(PerPhase::splat(a(0)), p(0), a(16), a(32), U).is_ok());
    }
}
