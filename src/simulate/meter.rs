//! The smart meter as installed: it measures the true grid current every period, each phase
//! at its own moment (`spread`), adds its noise (seeded, so a run is reproducible), and its
//! values reach the gateway after a latency. A 1-phase meter sends one phase on object 10; a
//! power meter sends W per phase, measured at the grid's real voltage (the gateway converts
//! at its nominal 230 V).
//!
//! Owns [`Meter`]: sans-IO, stepped at injected time, returning the telegrams that arrive.

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::scenario::{MeterKind, MeterSpec};
use crate::objects::Value;
use crate::units::{Current, GoNumber, PerPhase, Phase, Power};

/// One value on its way to the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Telegram {
    /// When it arrives.
    pub at: Duration,
    /// Object (10, 11, 12).
    pub object: GoNumber,
    /// The value.
    pub value: Value,
}

/// The meter's state during a run.
#[derive(Debug)]
pub struct Meter {
    spec: MeterSpec,
    interval: Duration,
    rng: StdRng,
    in_flight: VecDeque<Telegram>,
}

impl Meter {
    /// A meter sending every `interval`.
    pub fn new(spec: MeterSpec, interval: Duration) -> Self {
        Self {
            rng: StdRng::seed_from_u64(spec.seed),
            spec,
            interval,
            in_flight: VecDeque::new(),
        }
    }

    /// Whether phase `k` (0..3) is measured at `t`.
    fn due(&self, k: u32, t: Duration) -> bool {
        let offset = self.spec.spread * k;
        let Some(since) = t.checked_sub(offset) else {
            return false;
        };
        since.as_nanos() % self.interval.as_nanos().max(1) == 0
    }

    fn noisy(&mut self, amps: f64) -> f64 {
        if self.spec.noise <= 0.0 {
            return amps;
        }
        let n = self.spec.noise;
        (amps + self.rng.random_range(-n..=n)).max(0.0)
    }

    /// Measures `truth` where due at `t` (unless `silent`) and returns what arrives at `t`.
    pub fn step(&mut self, t: Duration, truth: &PerPhase<Current>, silent: bool) -> Vec<Telegram> {
        let phases: Vec<(u32, Phase, GoNumber)> = match self.spec.kind {
            MeterKind::OnePhase => vec![(0, self.spec.phase, GoNumber(10))],
            MeterKind::ThreePhase | MeterKind::Power => Phase::ALL
                .into_iter()
                .zip(0u32..)
                .map(|(p, k)| (k, p, GoNumber(10 + u16::try_from(k).unwrap_or(0))))
                .collect(),
        };
        for (k, phase, object) in phases {
            if silent || !self.due(k, t) {
                continue;
            }
            let amps = self.noisy(truth.get(phase).as_amps_f64());
            let value = if self.spec.kind == MeterKind::Power {
                Value::Power(Power::from_watts_f64(amps * self.spec.voltage).unwrap_or_default())
            } else {
                Value::Current(Current::from_amps_f64(amps).unwrap_or_default())
            };
            self.in_flight.push_back(Telegram {
                at: t + self.spec.latency,
                object,
                value,
            });
        }
        let mut out = Vec::new();
        while self.in_flight.front().is_some_and(|m| m.at <= t) {
            out.extend(self.in_flight.pop_front());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(a: i32) -> PerPhase<Current> {
        PerPhase([
            Current::from_amps(a),
            Current::from_amps(a + 1),
            Current::from_amps(a + 2),
        ])
    }

    #[test]
    fn sends_every_period_after_its_latency_with_phases_spread() {
        let spec = MeterSpec {
            latency: Duration::from_millis(500),
            spread: Duration::from_millis(200),
            ..MeterSpec::default()
        };
        let mut m = Meter::new(spec, Duration::from_secs(2));
        let mut got = Vec::new();
        for k in 0..40u64 {
            let t = Duration::from_millis(k * 100);
            for tg in m.step(t, &truth(10), false) {
                got.push((t.as_millis(), tg.object.0));
            }
        }
        assert_eq!(
            got,
            vec![
                (500, 10),
                (700, 11),
                (900, 12),
                (2500, 10),
                (2700, 11),
                (2900, 12)
            ]
        );
    }

    #[test]
    fn noise_is_bounded_and_the_same_seed_gives_the_same_values() {
        let spec = MeterSpec {
            noise: 2.0,
            ..MeterSpec::default()
        };
        let run = || {
            let mut m = Meter::new(spec, Duration::from_secs(1));
            (0..50u64)
                .flat_map(|k| m.step(Duration::from_secs(k), &truth(10), false))
                .map(|t| t.value)
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        for v in &a {
            let Value::Current(c) = v else { panic!() };
            assert!((8.0..=14.0).contains(&c.as_amps_f64()), "{c}");
        }
        assert!(a.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn one_phase_and_power_meters() {
        let spec = MeterSpec {
            kind: MeterKind::OnePhase,
            phase: Phase::L3,
            ..MeterSpec::default()
        };
        let mut m = Meter::new(spec, Duration::from_secs(1));
        let got = m.step(Duration::ZERO, &truth(10), false);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].value, Value::Current(Current::from_amps(12)));
        let spec = MeterSpec {
            kind: MeterKind::Power,
            voltage: 240.0,
            ..MeterSpec::default()
        };
        let mut m = Meter::new(spec, Duration::from_secs(1));
        let got = m.step(Duration::ZERO, &truth(10), false);
        assert_eq!(got[0].value, Value::Power(Power::from_watts(2400)));
        assert!(m.step(Duration::from_secs(1), &truth(10), true).is_empty());
    }
}
