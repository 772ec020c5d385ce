//! Limits applied after the allocation (pure functions).
//!
//! * [`limit_unbalance`]: the charging points' load on the most loaded grid phase may exceed
//!   the least loaded one by at most the unbalanced-load limit (default 20 A when enabled,
//!   as grid codes such as VDE-AR-N 4100 require for single-phase loads). A charging point
//!   that loads the heaviest phase but not the lightest is reduced. Below its minimum it is
//!   paused.
//! * [`limit_power`]: during grid-supporting control, the charging points together draw at
//!   most a power (the §14a EnWG style cap). The largest currents are reduced first, never
//!   below a minimum. Points are paused from the end of the queue if the minimums alone
//!   exceed the power.
//!
//! Both only ever lower currents, so they keep every guarantee of the allocation, and both
//! record the reason ([`Limit::Unbalance`], [`Limit::GridControl`]) for every charging point
//! they lower.

use std::collections::BTreeMap;

use super::{Demand, Limit, Limits};
use crate::units::{ChargePointId, Current, Phase, Voltage};

fn phase_load(
    currents: &BTreeMap<ChargePointId, Current>,
    demands: &[Demand],
    phase: Phase,
) -> Current {
    demands
        .iter()
        .filter(|d| d.phases.get(phase.index()).copied().unwrap_or(false))
        .filter_map(|d| currents.get(&d.cp))
        .copied()
        .sum()
}

/// Lowers currents until the charging load of any two grid phases differs by at most `limit`.
pub fn limit_unbalance(
    currents: &mut BTreeMap<ChargePointId, Current>,
    demands: &[Demand],
    limit: Current,
    limits: &mut Limits,
) {
    for _ in 0..=demands.len() * 4 {
        let loads: Vec<(Phase, Current)> = Phase::ALL
            .iter()
            .map(|p| (*p, phase_load(currents, demands, *p)))
            .collect();
        let Some((hi, hi_load)) = loads.iter().max_by_key(|(_, l)| *l).copied() else {
            return;
        };
        let Some((lo, lo_load)) = loads.iter().min_by_key(|(_, l)| *l).copied() else {
            return;
        };
        let excess = hi_load.saturating_sub(lo_load).saturating_sub(limit);
        if excess <= Current::ZERO {
            return;
        }
        // The largest point on the heavy phase that does not also load the light phase.
        let culprit = demands
            .iter()
            .filter(|d| {
                d.phases.get(hi.index()).copied().unwrap_or(false)
                    && !d.phases.get(lo.index()).copied().unwrap_or(false)
            })
            .filter(|d| currents.get(&d.cp).is_some_and(|c| *c > Current::ZERO))
            .max_by_key(|d| currents.get(&d.cp).copied().unwrap_or(Current::ZERO));
        let Some(d) = culprit else { return };
        let now = currents.get(&d.cp).copied().unwrap_or(Current::ZERO);
        let reduced = Current::from_amps(now.saturating_sub(excess).whole_amps_floor());
        limits.set(d.cp, Limit::Unbalance);
        currents.insert(
            d.cp,
            if reduced < d.min {
                Current::ZERO
            } else {
                reduced
            },
        );
    }
}

/// Lowers currents until the charging points together draw at most `watts` at `voltage`.
pub fn limit_power(
    currents: &mut BTreeMap<ChargePointId, Current>,
    demands: &[Demand],
    watts: u32,
    voltage: Voltage,
    limits: &mut Limits,
) {
    let power = |currents: &BTreeMap<ChargePointId, Current>| -> i64 {
        demands
            .iter()
            .map(|d| {
                let phases = i64::try_from(d.phases.iter().filter(|p| **p).count()).unwrap_or(3);
                let ma = i64::from(
                    currents
                        .get(&d.cp)
                        .copied()
                        .unwrap_or(Current::ZERO)
                        .milliamps(),
                );
                ma * phases * i64::from(voltage.millivolts()) / 1_000_000
            })
            .sum()
    };
    let budget = i64::from(watts);
    // Reduce the largest current by one ampere at a time (at most 64 A × 5 steps).
    for _ in 0..400 {
        if power(currents) <= budget {
            return;
        }
        let reducible = demands
            .iter()
            .filter(|d| currents.get(&d.cp).is_some_and(|c| *c > d.min))
            .max_by_key(|d| currents.get(&d.cp).copied().unwrap_or(Current::ZERO));
        if let Some(d) = reducible {
            let now = currents.get(&d.cp).copied().unwrap_or(Current::ZERO);
            currents.insert(d.cp, (now - Current::from_amps(1)).max(d.min));
            limits.set(d.cp, Limit::GridControl);
        } else {
            // Every point at its minimum and still too much: pause from the end of the queue.
            let Some(last) = demands
                .iter()
                .rev()
                .find(|d| currents.get(&d.cp).is_some_and(|c| *c > Current::ZERO))
            else {
                return;
            };
            currents.insert(last.cp, Current::ZERO);
            limits.set(last.cp, Limit::GridControl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(n: u8) -> ChargePointId {
        ChargePointId::new(n).unwrap()
    }

    fn a(n: i32) -> Current {
        Current::from_amps(n)
    }

    fn d(n: u8, phases: [bool; 3]) -> Demand {
        Demand {
            cp: cp(n),
            min: a(6),
            max: a(32),
            phases,
            prioritised: false,
        }
    }

    #[test]
    fn unbalance_is_capped_by_reducing_the_single_phase_load() {
        let demands = [d(1, [true, false, false]), d(2, [true, true, true])];
        let mut c: BTreeMap<_, _> = [(cp(1), a(32)), (cp(2), a(10))].into();
        limit_unbalance(&mut c, &demands, a(20), &mut Limits::default());
        assert_eq!(c[&cp(1)], a(20), "L1 = 30, L2/L3 = 10: difference 20");
        assert_eq!(c[&cp(2)], a(10));
    }

    #[test]
    fn unbalance_pauses_a_point_that_would_go_below_its_minimum() {
        let demands = [d(1, [true, false, false])];
        let mut c: BTreeMap<_, _> = [(cp(1), a(10))].into();
        limit_unbalance(&mut c, &demands, a(5), &mut Limits::default());
        assert_eq!(c[&cp(1)], Current::ZERO);
    }

    #[test]
    fn power_is_capped_largest_first_and_never_below_the_minimum() {
        let demands = [d(1, [true, true, true]), d(2, [true, false, false])];
        let mut c: BTreeMap<_, _> = [(cp(1), a(16)), (cp(2), a(16))].into();
        // 4.2 kW at 230 V.
        limit_power(
            &mut c,
            &demands,
            4_200,
            Voltage::from_volts(230),
            &mut Limits::default(),
        );
        assert_eq!(c[&cp(1)], a(6), "3 × 6 A × 230 V = 4140 W");
        assert_eq!(c[&cp(2)], Current::ZERO, "no room left for the second car");
        let total = 6 * 3 * 230;
        assert!(total <= 4_200);
    }

    #[test]
    fn the_unbalance_cap_records_its_reason_for_the_points_it_lowers() {
        let demands = [d(1, [true, false, false]), d(2, [true, true, true])];
        let mut c: BTreeMap<_, _> = [(cp(1), a(32)), (cp(2), a(10))].into();
        let mut limits = Limits::default();
        limits.set(cp(1), Limit::OwnMax);
        limits.set(cp(2), Limit::FairShare);
        limit_unbalance(&mut c, &demands, a(20), &mut limits);
        assert_eq!(limits.get(cp(1)), Some(Limit::Unbalance));
        assert_eq!(limits.get(cp(2)), Some(Limit::FairShare), "not lowered");
    }

    #[test]
    fn the_grid_control_power_cap_records_its_reason_for_the_points_it_lowers() {
        let demands = [d(1, [true, true, true]), d(2, [true, false, false])];
        let mut c: BTreeMap<_, _> = [(cp(1), a(16)), (cp(2), a(6))].into();
        let mut limits = Limits::default();
        limits.set(cp(2), Limit::OwnMax);
        // 3 × 10 A + 6 A = 36 A · 230 V = 8280 W.
        limit_power(
            &mut c,
            &demands,
            8_300,
            Voltage::from_volts(230),
            &mut limits,
        );
        assert_eq!(c[&cp(1)], a(10));
        assert_eq!(limits.get(cp(1)), Some(Limit::GridControl));
        assert_eq!(limits.get(cp(2)), Some(Limit::OwnMax), "not lowered");
    }

    #[test]
    fn power_limit_leaves_fitting_allocations_alone() {
        let demands = [d(1, [true, false, false])];
        let mut c: BTreeMap<_, _> = [(cp(1), a(16))].into();
        limit_power(
            &mut c,
            &demands,
            11_000,
            Voltage::from_volts(230),
            &mut Limits::default(),
        );
        assert_eq!(c[&cp(1)], a(16));
    }
}
