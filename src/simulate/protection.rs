//! The protective device the DLM exists for: would it have tripped, and how close did it come?
//!
//! Owns [`Device`] (time-current characteristic) and [`Thermal`] (its state per phase).
//!
//! The characteristic is the **fast edge** of the band the standard allows, i.e. the earliest
//! any compliant device may open; so "no trip" here means no compliant device trips:
//! * **gG fuse-links, IEC 60269-1** (§ 8.4.3.1, table 2 and the "gates" of table 3): no melting
//!   within the conventional time (1 h up to 63 A, 2 h above) at the conventional non-fusing
//!   current 1.25 In (In ≥ 16 A); pre-arcing time at least 10 s at I_min(10 s) and at least
//!   0.1 s at I_min(0.1 s). Gates for 16 A: 33 A and 85 A; 20 A: 42/110; 25 A: 52/150;
//!   32 A: 75/200; 40 A: 95/260; 50 A: 125/350; 63 A: 160/450; 80 A: 215/610; 100 A: 290/820;
//!   125 A: 355/1100 (the same gates are printed in the fuse makers' guides, e.g. Mersen
//!   "IEC 60269 gG & aM", TM_104, § 4.1). Ratings between rows scale the gates of the row
//!   below in proportion to In.
//! * **Circuit breakers type B and C, IEC 60898-1** (table 7): no trip within 1 h at 1.13 In;
//!   at 2.55 In trip after 1 s at the earliest; magnetic release from 3 In (B) or 5 In (C),
//!   taken as instantaneous (10 ms).
//!
//! Between those points the curve is straight on log-log axes. The device heats as a sum of
//! `dt / t_trip(I)` (the share of the trip integral used, 1 = trip) while the current is
//! above the non-tripping current, and cools with a time constant of 5 minutes below it
//! (cFos' charging manager lets a fuse cool for 5 min after an overdraw). The figure is an
//! estimate for comparing DLM behaviour, not a replacement for the maker's curve.

use serde::Serialize;

use super::scenario::DeviceKind;
use crate::units::Current;

/// Cooling time constant below the non-tripping current.
pub const COOLING_S: f64 = 300.0;

/// A protective device: kind and rating.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    kind: DeviceKind,
    rating: f64,
    /// (current in A, earliest trip time in s), increasing current.
    curve: Vec<(f64, f64)>,
    /// Instantaneous release from this current (breakers).
    magnetic: Option<f64>,
}

/// gG gates (In, I_min(10 s), I_min(0.1 s)) of IEC 60269-1 table 3.
const GG_GATES: [(f64, f64, f64); 10] = [
    (16.0, 33.0, 85.0),
    (20.0, 42.0, 110.0),
    (25.0, 52.0, 150.0),
    (32.0, 75.0, 200.0),
    (40.0, 95.0, 260.0),
    (50.0, 125.0, 350.0),
    (63.0, 160.0, 450.0),
    (80.0, 215.0, 610.0),
    (100.0, 290.0, 820.0),
    (125.0, 355.0, 1100.0),
];

impl Device {
    /// The device of `kind` rated `rating`.
    pub fn new(kind: DeviceKind, rating: Current) -> Self {
        let r = rating.as_amps_f64().max(1.0);
        match kind {
            DeviceKind::Gg => {
                let row = GG_GATES
                    .iter()
                    .rev()
                    .find(|g| g.0 <= r)
                    .or(GG_GATES.first())
                    .copied()
                    .unwrap_or((16.0, 33.0, 85.0));
                let scale = r / row.0;
                let conventional = if r <= 63.0 { 3600.0 } else { 7200.0 };
                Self {
                    kind,
                    rating: r,
                    curve: vec![
                        (1.25 * r, conventional),
                        (row.1 * scale, 10.0),
                        (row.2 * scale, 0.1),
                    ],
                    magnetic: None,
                }
            }
            DeviceKind::B | DeviceKind::C => {
                let magnetic = if kind == DeviceKind::B { 3.0 } else { 5.0 };
                Self {
                    kind,
                    rating: r,
                    curve: vec![(1.13 * r, 3600.0), (2.55 * r, 1.0)],
                    magnetic: Some(magnetic * r),
                }
            }
        }
    }

    /// "gG 35 A", "B 32 A".
    pub fn name(&self) -> String {
        let k = match self.kind {
            DeviceKind::Gg => "gG",
            DeviceKind::B => "B",
            DeviceKind::C => "C",
        };
        format!("{k} {:.0} A", self.rating)
    }

    /// Below this current it never trips.
    pub fn non_tripping(&self) -> f64 {
        self.curve.first().map_or(f64::INFINITY, |p| p.0)
    }

    /// The earliest trip time at a steady `amps`, s (`None`: never).
    pub fn trip_time(&self, amps: f64) -> Option<f64> {
        if self.magnetic.is_some_and(|m| amps >= m) {
            return Some(0.01);
        }
        if !amps.is_finite() || amps <= self.non_tripping() {
            return None;
        }
        let seg = self
            .curve
            .windows(2)
            .find(|w| w.get(1).is_some_and(|b| amps <= b.0))
            .or_else(|| self.curve.windows(2).last());
        let (a, b) = match seg {
            Some([a, b]) => (*a, *b),
            _ => return None,
        };
        let slope = (b.1.ln() - a.1.ln()) / (b.0.ln() - a.0.ln());
        Some((a.1.ln() + slope * (amps.ln() - a.0.ln())).exp().max(0.01))
    }
}

/// The device's thermal state on one phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Thermal {
    /// Share of the trip integral used now.
    pub used: f64,
    /// The most used at any moment.
    pub max_used: f64,
    /// When it first reached 1 (tripped), s since start.
    pub tripped_at: Option<f64>,
}

impl Thermal {
    /// Advances by `dt` s at `amps`; `t` is the time since start, s.
    pub fn step(&mut self, device: &Device, amps: f64, dt: f64, t: f64) {
        match device.trip_time(amps) {
            Some(tt) => self.used += dt / tt,
            None => self.used *= (-dt / COOLING_S).exp(),
        }
        self.max_used = self.max_used.max(self.used);
        if self.used >= 1.0 && self.tripped_at.is_none() {
            self.tripped_at = Some(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gg(a: i32) -> Device {
        Device::new(DeviceKind::Gg, Current::from_amps(a))
    }

    #[test]
    fn a_gg_fuse_follows_its_gates() {
        let d = gg(32);
        assert_eq!(d.trip_time(39.0), None, "1.22 In never melts");
        assert!((d.trip_time(75.0).unwrap() - 10.0).abs() < 1e-6);
        assert!((d.trip_time(200.0).unwrap() - 0.1).abs() < 1e-6);
        let t = d.trip_time(48.0).unwrap();
        assert!((10.0..3600.0).contains(&t), "{t}");
        assert_eq!(d.name(), "gG 32 A");
        // 35 A scales the 32 A row.
        assert!((gg(35).trip_time(75.0 * 35.0 / 32.0).unwrap() - 10.0).abs() < 1e-6);
    }

    #[test]
    fn breakers_have_a_thermal_and_a_magnetic_release() {
        let b = Device::new(DeviceKind::B, Current::from_amps(16));
        assert_eq!(b.trip_time(18.0), None);
        assert!((b.trip_time(2.55 * 16.0).unwrap() - 1.0).abs() < 1e-6);
        assert!((b.trip_time(48.0).unwrap() - 0.01).abs() < 1e-9);
        let c = Device::new(DeviceKind::C, Current::from_amps(16));
        assert!(c.trip_time(48.0).unwrap() > 0.01);
        assert!((c.trip_time(80.0).unwrap() - 0.01).abs() < 1e-9);
    }

    #[test]
    fn the_integral_trips_and_cools() {
        let d = gg(32);
        let mut th = Thermal::default();
        for k in 0..9 {
            th.step(&d, 75.0, 1.0, f64::from(k));
        }
        assert!(th.tripped_at.is_none());
        assert!((th.used - 0.9).abs() < 1e-6);
        th.step(&d, 20.0, 300.0, 9.0);
        assert!(th.used < 0.34);
        for k in 0..20 {
            th.step(&d, 75.0, 1.0, 309.0 + f64::from(k));
        }
        assert!(th.tripped_at.is_some());
        assert!(th.max_used >= 1.0);
    }
}
