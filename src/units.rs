//! Physical units and identifiers used across the firmware.
//!
//! Currents, powers and energies are integers in milli-units ([`Current`] in mA, [`Power`] in
//! mW, [`Energy`] in mWh). Load management compares and sums them. With integers those
//! comparisons are exact and a value can never be NaN. Floating-point values from KNX
//! datapoints or Modbus registers are converted at the boundary with
//! [`Current::from_amps_f64`] and friends. Those conversions reject non-finite and
//! out-of-range input.
//!
//! Identifiers: [`ChargePointId`] (1..=5), [`GoNumber`] (group-object number), [`Phase`].

use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// A float that cannot be represented as the unit (NaN, infinite or too large).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("{value} {unit} is not a valid measurement")]
pub struct InvalidQuantity {
    /// The rejected value.
    pub value: f64,
    /// Unit of the rejected value.
    pub unit: &'static str,
}

fn scaled(value: f64, factor: f64, unit: &'static str, limit: f64) -> Result<f64, InvalidQuantity> {
    let v = (value * factor).round();
    if !v.is_finite() || v.abs() > limit {
        return Err(InvalidQuantity { value, unit });
    }
    Ok(v)
}

macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident, $repr:ty, $milli:literal, $base:literal, $ctor_base:ident, $ctor_milli:ident, $get_base:ident, $get_milli:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name($repr);

        impl $name {
            /// Zero.
            pub const ZERO: Self = Self(0);

            #[doc = concat!("From ", $milli, ".")]
            pub const fn $ctor_milli(value: $repr) -> Self {
                Self(value)
            }

            #[doc = concat!("From whole ", $base, ".")]
            pub const fn $ctor_base(value: i32) -> Self {
                Self(value as $repr * 1000)
            }

            #[doc = concat!("Value in ", $milli, ".")]
            pub const fn $get_milli(self) -> $repr {
                self.0
            }

            #[doc = concat!("Value in ", $base, " as a float (for display and KNX encoding).")]
            #[allow(clippy::cast_precision_loss, clippy::cast_lossless, reason = "display and float datapoints only")]
            pub fn $get_base(self) -> f64 {
                self.0 as f64 / 1000.0
            }

            /// The smaller of two values.
            #[must_use]
            pub fn min(self, other: Self) -> Self {
                Ord::min(self, other)
            }

            /// The larger of two values.
            #[must_use]
            pub fn max(self, other: Self) -> Self {
                Ord::max(self, other)
            }

            /// Clamp into `lo..=hi` (`lo` wins if `lo > hi`).
            #[must_use]
            pub fn clamp_to(self, lo: Self, hi: Self) -> Self {
                self.min(hi).max(lo)
            }

            /// Saturating subtraction.
            #[must_use]
            pub fn saturating_sub(self, other: Self) -> Self {
                Self(self.0.saturating_sub(other.0))
            }
        }

        impl Add for $name {
            type Output = Self;
            fn add(self, rhs: Self) -> Self {
                Self(self.0.saturating_add(rhs.0))
            }
        }

        impl AddAssign for $name {
            fn add_assign(&mut self, rhs: Self) {
                *self = *self + rhs;
            }
        }

        impl Sub for $name {
            type Output = Self;
            fn sub(self, rhs: Self) -> Self {
                Self(self.0.saturating_sub(rhs.0))
            }
        }

        impl SubAssign for $name {
            fn sub_assign(&mut self, rhs: Self) {
                *self = *self - rhs;
            }
        }

        impl Neg for $name {
            type Output = Self;
            fn neg(self) -> Self {
                Self(self.0.saturating_neg())
            }
        }

        impl std::iter::Sum for $name {
            fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
                iter.fold(Self::ZERO, Add::add)
            }
        }
    };
}

quantity!(
    /// An electric current, stored in milliamperes.
    Current, i32, "milliamperes", "amperes", from_amps, from_milliamps, as_amps_f64, milliamps
);
quantity!(
    /// An active power, stored in milliwatts.
    Power, i64, "milliwatts", "watts", from_watts, from_milliwatts, as_watts_f64, milliwatts
);
quantity!(
    /// An active energy, stored in milliwatt-hours.
    Energy, i64, "milliwatt-hours", "watt-hours", from_watt_hours, from_milliwatt_hours, as_watt_hours_f64, milliwatt_hours
);

impl Current {
    /// From a float in amperes. Rejects NaN, infinities and |I| > 2 MA.
    #[allow(clippy::cast_possible_truncation, reason = "range checked by `scaled`")]
    pub fn from_amps_f64(amps: f64) -> Result<Self, InvalidQuantity> {
        scaled(amps, 1000.0, "A", f64::from(i32::MAX)).map(|v| Self(v as i32))
    }

    /// Whole amperes, rounded down (what a charging point is told to draw at most).
    pub const fn whole_amps_floor(self) -> i32 {
        self.0.div_euclid(1000)
    }
}

impl Power {
    /// From a float in watts. Rejects NaN, infinities and absurd magnitudes.
    #[allow(clippy::cast_possible_truncation, reason = "range checked by `scaled`")]
    pub fn from_watts_f64(watts: f64) -> Result<Self, InvalidQuantity> {
        scaled(watts, 1000.0, "W", 9.0e15).map(|v| Self(v as i64))
    }

    /// The current this power draws on one phase at `voltage` (I = P / U), rounded up so that
    /// load management never under-estimates a load. `None` when the voltage is zero.
    pub fn to_current(self, voltage: Voltage) -> Option<Current> {
        let mv = i64::from(voltage.millivolts());
        if mv == 0 {
            return None;
        }
        // mW / mV = A; scale by 1000 for mA. Round away from zero (ceil of magnitude).
        let num = self.0.saturating_mul(1000);
        let q = num / mv;
        let r = num % mv;
        let q = if r != 0 { q + num.signum() } else { q };
        i32::try_from(q).ok().map(Current::from_milliamps)
    }
}

impl Energy {
    /// From a float in watt-hours. Rejects NaN, infinities and absurd magnitudes.
    #[allow(clippy::cast_possible_truncation, reason = "range checked by `scaled`")]
    pub fn from_watt_hours_f64(wh: f64) -> Result<Self, InvalidQuantity> {
        scaled(wh, 1000.0, "Wh", 9.0e15).map(|v| Self(v as i64))
    }
}

impl fmt::Display for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} A", self.as_amps_f64())
    }
}

impl fmt::Display for Power {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} W", self.as_watts_f64())
    }
}

impl fmt::Display for Energy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} Wh", self.as_watt_hours_f64())
    }
}

/// A voltage, stored in millivolts (nominal phase voltage for power → current conversion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Voltage(u32);

impl Voltage {
    /// From whole volts.
    pub const fn from_volts(volts: u32) -> Self {
        Self(volts.saturating_mul(1000))
    }

    /// Millivolts.
    pub const fn millivolts(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Voltage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} V", self.0 / 1000)
    }
}

/// A temperature, stored in hundredths of a degree Celsius (the resolution of DPT 9.001).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Temperature(i32);

impl Temperature {
    /// From hundredths of °C.
    pub const fn from_centi_celsius(value: i32) -> Self {
        Self(value)
    }

    /// From whole °C.
    pub const fn from_celsius(value: i32) -> Self {
        Self(value * 100)
    }

    /// From a float in °C; rejects non-finite values and values outside ±1000 °C.
    #[allow(clippy::cast_possible_truncation, reason = "range checked by `scaled`")]
    pub fn from_celsius_f64(value: f64) -> Result<Self, InvalidQuantity> {
        scaled(value, 100.0, "°C", 100_000.0).map(|v| Self(v as i32))
    }

    /// Hundredths of °C.
    pub const fn centi_celsius(self) -> i32 {
        self.0
    }

    /// °C as a float.
    pub fn as_celsius_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl fmt::Display for Temperature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2} °C", self.as_celsius_f64())
    }
}

/// The number (1..=5) of a charging point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(into = "u8")]
pub struct ChargePointId(u8);

impl ChargePointId {
    /// How many charging points the gateway drives.
    pub const COUNT: u8 = 5;

    /// `Some` for 1..=5.
    pub const fn new(number: u8) -> Option<Self> {
        if number >= 1 && number <= Self::COUNT {
            Some(Self(number))
        } else {
            None
        }
    }

    /// All five, in order.
    pub fn all() -> impl Iterator<Item = Self> {
        (1..=Self::COUNT).map(Self)
    }

    /// 1..=5.
    pub const fn number(self) -> u8 {
        self.0
    }

    /// 0..=4, for indexing per-charging-point arrays.
    pub const fn index(self) -> usize {
        (self.0 - 1) as usize
    }

    /// The first group object of this charging point (50·n).
    pub const fn object_base(self) -> u16 {
        50 * self.0 as u16
    }
}

impl From<ChargePointId> for u8 {
    fn from(id: ChargePointId) -> Self {
        id.0
    }
}

impl fmt::Display for ChargePointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A group-object number as ETS shows it (1, 2, 8, …, 299).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct GoNumber(pub u16);

impl GoNumber {
    /// The charging point this object belongs to (objects 50..=299), with the offset in its block.
    pub fn charging_point(self) -> Option<(ChargePointId, u16)> {
        let n = u8::try_from(self.0 / 50).ok()?;
        ChargePointId::new(n).map(|cp| (cp, self.0 % 50))
    }
}

impl fmt::Display for GoNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A grid phase.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Phase {
    /// L1.
    L1,
    /// L2.
    L2,
    /// L3.
    L3,
}

impl Phase {
    /// L1, L2, L3.
    pub const ALL: [Self; 3] = [Self::L1, Self::L2, Self::L3];

    /// 0, 1, 2.
    pub const fn index(self) -> usize {
        match self {
            Self::L1 => 0,
            Self::L2 => 1,
            Self::L3 => 2,
        }
    }
}

/// Number of phases a charging point is connected with, or switches to (1-/3-phase
/// switching; two phases are no switching target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum PhaseCount {
    /// One phase.
    One,
    /// Three phases.
    Three,
}

impl PhaseCount {
    /// 1 or 3.
    pub const fn count(self) -> u8 {
        match self {
            Self::One => 1,
            Self::Three => 3,
        }
    }

    /// `Some` for 1 or 3, `None` for anything else (a register value that is no phase count).
    pub const fn from_count(n: u32) -> Option<Self> {
        match n {
            1 => Some(Self::One),
            3 => Some(Self::Three),
            _ => None,
        }
    }
}

/// Which grid phase each of the charging point's phases 1, 2, 3 is wired to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseRotation(pub [Phase; 3]);

impl PhaseRotation {
    /// The six orders, in parameter code order.
    pub const ALL: [Self; 6] = [
        Self([Phase::L1, Phase::L2, Phase::L3]),
        Self([Phase::L2, Phase::L3, Phase::L1]),
        Self([Phase::L3, Phase::L1, Phase::L2]),
        Self([Phase::L1, Phase::L3, Phase::L2]),
        Self([Phase::L3, Phase::L2, Phase::L1]),
        Self([Phase::L2, Phase::L1, Phase::L3]),
    ];

    /// The grid phase of the charging point's phase `index` (0..3).
    pub fn grid_phase(self, index: usize) -> Option<Phase> {
        self.0.get(index).copied()
    }

    /// "L1-L2-L3" notation.
    pub fn label(self) -> String {
        self.0
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// A value per phase (L1, L2, L3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize)]
pub struct PerPhase<T>(pub [T; 3]);

impl<T: Copy> PerPhase<T> {
    /// The same value on every phase.
    pub const fn splat(v: T) -> Self {
        Self([v, v, v])
    }

    /// The value on `phase`.
    pub fn get(&self, phase: Phase) -> T {
        let [l1, l2, l3] = self.0;
        match phase {
            Phase::L1 => l1,
            Phase::L2 => l2,
            Phase::L3 => l3,
        }
    }

    /// Sets the value on `phase`.
    pub fn set(&mut self, phase: Phase, value: T) {
        let [l1, l2, l3] = &mut self.0;
        match phase {
            Phase::L1 => *l1 = value,
            Phase::L2 => *l2 = value,
            Phase::L3 => *l3 = value,
        }
    }

    /// Applies `f` to each phase.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> PerPhase<U> {
        PerPhase(self.0.map(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn phase_counts_are_one_or_three_only() {
        assert_eq!(PhaseCount::from_count(1), Some(PhaseCount::One));
        assert_eq!(PhaseCount::from_count(3), Some(PhaseCount::Three));
        for garbage in [0, 2, 4, 7, u32::MAX] {
            assert_eq!(PhaseCount::from_count(garbage), None);
        }
        assert_eq!(PhaseCount::One.count() + PhaseCount::Three.count(), 4);
    }

    #[test]
    fn float_boundary_rejects_nan_and_infinity() {
        assert!(Current::from_amps_f64(f64::NAN).is_err());
        assert!(Current::from_amps_f64(f64::INFINITY).is_err());
        assert!(Current::from_amps_f64(3.0e6).is_err());
        assert_eq!(
            Current::from_amps_f64(16.0004).unwrap(),
            Current::from_milliamps(16_000)
        );
        assert_eq!(
            Current::from_amps_f64(-0.0015).unwrap(),
            Current::from_milliamps(-2)
        );
    }

    #[test]
    fn power_to_current_rounds_up() {
        let u = Voltage::from_volts(230);
        assert_eq!(
            Power::from_watts(2300).to_current(u),
            Some(Current::from_amps(10))
        );
        assert_eq!(
            Power::from_watts(1).to_current(u),
            Some(Current::from_milliamps(5))
        );
        assert_eq!(
            Power::from_watts(-1).to_current(u),
            Some(Current::from_milliamps(-5))
        );
        assert_eq!(
            Power::from_watts(1).to_current(Voltage::from_volts(0)),
            None
        );
    }

    #[test]
    fn charge_point_ids_and_objects() {
        assert!(ChargePointId::new(0).is_none());
        assert!(ChargePointId::new(6).is_none());
        assert_eq!(
            ChargePointId::all()
                .map(ChargePointId::object_base)
                .collect::<Vec<_>>(),
            [50, 100, 150, 200, 250]
        );
        assert_eq!(
            GoNumber(155).charging_point(),
            Some((ChargePointId::new(3).unwrap(), 5))
        );
        assert_eq!(GoNumber(20).charging_point(), None);
        assert_eq!(GoNumber(300).charging_point(), None);
    }

    #[test]
    fn whole_amps_floor() {
        assert_eq!(Current::from_milliamps(15_999).whole_amps_floor(), 15);
        assert_eq!(Current::from_milliamps(-1).whole_amps_floor(), -1);
    }

    proptest! {
        #[test]
        fn sums_saturate_instead_of_overflowing(a: i32, b: i32) {
            let _ = Current::from_milliamps(a) + Current::from_milliamps(b);
            let _ = Current::from_milliamps(a) - Current::from_milliamps(b);
        }

        #[test]
        fn any_float_converts_or_errors(x: f64) {
            let _ = Current::from_amps_f64(x);
            let _ = Power::from_watts_f64(x);
            let _ = Energy::from_watt_hours_f64(x);
            let _ = Temperature::from_celsius_f64(x);
        }
    }
}
