//! The allocation rule of the DLM: a pure function from what is available per phase and what
//! the charging points want, to a current per charging point.
//!
//! It follows spec ch. 9.1:
//! 1. every active charging point first gets its minimum current;
//! 2. then the prioritised charging point gets more, up to its maximum;
//! 3. what is left is shared evenly among the others, up to their maxima.
//!
//! In [`Mode::Symmetric`] (the spec's behaviour) a charging point is booked on all three
//! phases. In [`Mode::PerPhase`] it consumes budget only on the grid phases its vehicle
//! actually draws on, so a single-phase car on L2 leaves L1 and L3 free for the others.
//! "Evenly" is max-min fair: all unsaturated charging points rise together. A point stops
//! rising when one of its phases is exhausted or it reaches its maximum; the rest go on.
//!
//! When the minimums do not fit, [`Shortage::InterruptAll`] (the spec: OverCurrent, all
//! interrupted) or [`Shortage::Queue`] (the ones that fit, in queue order, charge; the rest
//! wait). Results are whole amperes rounded down, so an allocation never exceeds the
//! budget on any phase.
//!
//! The allocation records why each charging point got what it got ([`Allocation::limits`]):
//! its own maximum, its fair share of a phase it shares, the budget of one phase, the
//! prioritised charging point, the queue, or OverCurrent.

use std::collections::BTreeMap;

use super::{Limit, Limits};
use crate::units::{ChargePointId, Current, PerPhase, Phase};

/// How a charging point is booked against the phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every charging point on all three phases (the spec's DLM).
    Symmetric,
    /// Only on the grid phases the vehicle draws on.
    PerPhase,
}

/// What happens when the minimums do not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// OverCurrent: every charging point is interrupted.
    InterruptAll,
    /// Charging points are admitted in the given order while their minimums fit; the others
    /// wait (current 0).
    Queue,
}

/// One charging point asking for current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Which one.
    pub cp: ChargePointId,
    /// Minimum current (below it the vehicle cannot charge).
    pub min: Current,
    /// Maximum current.
    pub max: Current,
    /// Grid phases the vehicle draws on (after phase rotation).
    pub phases: [bool; 3],
    /// The prioritised charging point.
    pub prioritised: bool,
}

impl Demand {
    /// Whether it is booked on `phase` in `mode`.
    pub(crate) fn uses(&self, phase: Phase, mode: Mode) -> bool {
        match mode {
            Mode::Symmetric => true,
            Mode::PerPhase => self.phases.get(phase.index()).copied().unwrap_or(true),
        }
    }
}

/// The result of one allocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allocation {
    /// Current per charging point (0 = not charging now).
    pub currents: BTreeMap<ChargePointId, Current>,
    /// The minimums of all demands did not fit.
    pub overcurrent: bool,
    /// Charging points waiting in the queue (only with [`Shortage::Queue`]).
    pub waiting: Vec<ChargePointId>,
    /// Why each charging point of the demands got its current.
    pub limits: Limits,
}

impl Allocation {
    /// Current booked on `phase` by this allocation.
    pub fn load(&self, demands: &[Demand], phase: Phase, mode: Mode) -> Current {
        demands
            .iter()
            .filter(|d| d.uses(phase, mode))
            .filter_map(|d| self.currents.get(&d.cp))
            .copied()
            .sum()
    }
}

/// Allocates `available` (per phase, already net of other loads and the reserve) among
/// `demands`. `demands` are in queue order for [`Shortage::Queue`].
pub fn allocate(
    available: PerPhase<Current>,
    demands: &[Demand],
    mode: Mode,
    shortage: Shortage,
) -> Allocation {
    let available = available.map(|a| a.max(Current::ZERO));
    let mut alloc = Allocation::default();
    // 1. Minimums, and who fits.
    let mut admitted: Vec<Demand> = Vec::new();
    let mut booked = PerPhase::splat(Current::ZERO);
    for d in demands {
        let fits = Phase::ALL
            .iter()
            .all(|p| !d.uses(*p, mode) || booked.get(*p) + d.min <= available.get(*p));
        if fits {
            for p in Phase::ALL {
                if d.uses(p, mode) {
                    booked.set(p, booked.get(p) + d.min);
                }
            }
            admitted.push(*d);
        } else {
            alloc.overcurrent = true;
            if shortage == Shortage::Queue {
                alloc.waiting.push(d.cp);
                alloc.limits.set(d.cp, Limit::Queued);
            }
        }
    }
    if alloc.overcurrent && shortage == Shortage::InterruptAll {
        alloc.currents = demands.iter().map(|d| (d.cp, Current::ZERO)).collect();
        for d in demands {
            alloc.limits.set(d.cp, Limit::OverCurrent);
        }
        return alloc;
    }
    let mut current: BTreeMap<ChargePointId, Current> =
        admitted.iter().map(|d| (d.cp, d.min)).collect();
    let headroom = |current: &BTreeMap<ChargePointId, Current>, p: Phase| {
        let used: Current = admitted
            .iter()
            .filter(|d| d.uses(p, mode))
            .filter_map(|d| current.get(&d.cp))
            .copied()
            .sum();
        available.get(p).saturating_sub(used)
    };
    // 2. The prioritised charging point, up to its maximum.
    // The phase the prioritised point used up by rising above its minimum, if it did.
    let mut prioritised_took: Option<Phase> = None;
    for d in admitted.iter().filter(|d| d.prioritised) {
        let tightest = Phase::ALL
            .iter()
            .filter(|p| d.uses(**p, mode))
            .map(|p| (headroom(&current, *p), *p))
            .min_by_key(|(room, _)| *room);
        let room = tightest.map_or(Current::ZERO, |(room, _)| room);
        let now = current.get(&d.cp).copied().unwrap_or(d.min);
        let next = (now + room).min(d.max);
        current.insert(d.cp, next);
        match tightest {
            Some((_, p)) if next < d.max => {
                alloc.limits.set(d.cp, Limit::Phase(p));
                if next > d.min {
                    prioritised_took = Some(p);
                }
            }
            _ => alloc.limits.set(d.cp, Limit::OwnMax),
        }
    }
    // 3. Max-min fair filling of the others.
    let mut rising: Vec<Demand> = admitted
        .iter()
        .filter(|d| !d.prioritised)
        .copied()
        .collect();
    for _ in 0..=admitted.len() * 3 + 3 {
        rising.retain(|d| {
            let below = current.get(&d.cp).copied().unwrap_or(d.max) < d.max;
            if !below {
                alloc.limits.set(d.cp, Limit::OwnMax);
            }
            below
        });
        if rising.is_empty() {
            break;
        }
        // The largest equal step every rising point can take.
        let mut step = i32::MAX;
        for p in Phase::ALL {
            let n = rising.iter().filter(|d| d.uses(p, mode)).count();
            if n > 0 {
                let per = headroom(&current, p).milliamps() / i32::try_from(n).unwrap_or(i32::MAX);
                step = step.min(per);
            }
        }
        for d in &rising {
            let now = current.get(&d.cp).copied().unwrap_or(d.max);
            step = step.min((d.max - now).milliamps());
        }
        if step <= 0 {
            // Some phase is exhausted: freeze the points on it and let the others go on.
            let mut exhausted = PerPhase::splat(false);
            for p in Phase::ALL {
                let n = rising.iter().filter(|d| d.uses(p, mode)).count();
                exhausted.set(
                    p,
                    n > 0
                        && headroom(&current, p).milliamps() / i32::try_from(n).unwrap_or(i32::MAX)
                            == 0,
                );
            }
            let frozen_by = |d: &Demand| {
                Phase::ALL
                    .into_iter()
                    .find(|p| exhausted.get(*p) && d.uses(*p, mode))
            };
            for d in &rising {
                let Some(p) = frozen_by(d) else { continue };
                let limit = if prioritised_took == Some(p) {
                    Limit::Prioritised
                } else if rising.iter().any(|e| e.cp != d.cp && e.uses(p, mode)) {
                    Limit::FairShare
                } else {
                    Limit::Phase(p)
                };
                alloc.limits.set(d.cp, limit);
            }
            let before = rising.len();
            rising.retain(|d| frozen_by(d).is_none());
            if rising.len() == before {
                break;
            }
            continue;
        }
        for d in &rising {
            if let Some(c) = current.get_mut(&d.cp) {
                *c += Current::from_milliamps(step);
            }
        }
    }
    // Points still rising when the filling stopped share what is left evenly.
    for d in &rising {
        let at_max = current.get(&d.cp).is_some_and(|c| *c >= d.max);
        alloc.limits.set(
            d.cp,
            if at_max {
                Limit::OwnMax
            } else {
                Limit::FairShare
            },
        );
    }
    // Whole amperes, rounded down: what a charging point is told must never exceed the budget.
    for d in demands {
        let c = current
            .get(&d.cp)
            .map_or(Current::ZERO, |c| Current::from_amps(c.whole_amps_floor()));
        alloc.currents.insert(d.cp, c);
    }
    alloc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cp(n: u8) -> ChargePointId {
        ChargePointId::new(n).unwrap()
    }

    fn a(n: i32) -> Current {
        Current::from_amps(n)
    }

    fn demand(n: u8, min: i32, max: i32, phases: [bool; 3]) -> Demand {
        Demand {
            cp: cp(n),
            min: a(min),
            max: a(max),
            phases,
            prioritised: false,
        }
    }

    const ALL3: [bool; 3] = [true, true, true];

    #[test]
    fn every_active_point_first_gets_its_minimum() {
        let demands = [demand(1, 6, 16, ALL3), demand(2, 6, 16, ALL3)];
        let r = allocate(
            PerPhase::splat(a(12)),
            &demands,
            Mode::Symmetric,
            Shortage::InterruptAll,
        );
        assert_eq!(r.currents[&cp(1)], a(6));
        assert_eq!(r.currents[&cp(2)], a(6));
        assert!(!r.overcurrent);
    }

    #[test]
    fn prioritised_point_is_preferentially_supplied_up_to_its_maximum() {
        let mut demands = [
            demand(1, 6, 16, ALL3),
            demand(2, 6, 32, ALL3),
            demand(3, 6, 16, ALL3),
        ];
        demands[1].prioritised = true;
        let r = allocate(
            PerPhase::splat(a(40)),
            &demands,
            Mode::Symmetric,
            Shortage::InterruptAll,
        );
        assert_eq!(
            r.currents[&cp(2)],
            a(28),
            "6+6+6 = 18; 22 more go to the prioritised point"
        );
        assert_eq!((r.currents[&cp(1)], r.currents[&cp(3)]), (a(6), a(6)));
        let r = allocate(
            PerPhase::splat(a(60)),
            &demands,
            Mode::Symmetric,
            Shortage::InterruptAll,
        );
        assert_eq!(r.currents[&cp(2)], a(32), "capped at its maximum");
        assert_eq!(
            (r.currents[&cp(1)], r.currents[&cp(3)]),
            (a(14), a(14)),
            "the rest evenly"
        );
    }

    #[test]
    fn remaining_current_is_distributed_evenly_up_to_the_maxima() {
        let demands = [
            demand(1, 6, 10, ALL3),
            demand(2, 6, 32, ALL3),
            demand(3, 6, 32, ALL3),
        ];
        let r = allocate(
            PerPhase::splat(a(50)),
            &demands,
            Mode::Symmetric,
            Shortage::InterruptAll,
        );
        assert_eq!(r.currents[&cp(1)], a(10));
        assert_eq!((r.currents[&cp(2)], r.currents[&cp(3)]), (a(20), a(20)));
    }

    #[test]
    fn symmetric_mode_books_single_phase_cars_on_every_phase() {
        let demands = [
            demand(1, 6, 32, [true, false, false]),
            demand(2, 6, 32, [false, true, false]),
            demand(3, 6, 32, [false, false, true]),
        ];
        let r = allocate(
            PerPhase::splat(a(30)),
            &demands,
            Mode::Symmetric,
            Shortage::InterruptAll,
        );
        assert_eq!(
            r.currents.values().copied().collect::<Vec<_>>(),
            vec![a(10); 3]
        );
    }

    #[test]
    fn per_phase_mode_gives_single_phase_cars_their_own_phase() {
        let demands = [
            demand(1, 6, 32, [true, false, false]),
            demand(2, 6, 32, [false, true, false]),
            demand(3, 6, 32, [false, false, true]),
        ];
        let r = allocate(
            PerPhase::splat(a(30)),
            &demands,
            Mode::PerPhase,
            Shortage::InterruptAll,
        );
        assert_eq!(
            r.currents.values().copied().collect::<Vec<_>>(),
            vec![a(30); 3]
        );
    }

    #[test]
    fn per_phase_mode_lets_others_use_what_a_bottleneck_leaves() {
        // L1 is loaded by the house; the 3-phase car is held by L1, the L2 car is not.
        let demands = [
            demand(1, 6, 32, ALL3),
            demand(2, 6, 32, [false, true, false]),
        ];
        let r = allocate(
            PerPhase([a(10), a(30), a(30)]),
            &demands,
            Mode::PerPhase,
            Shortage::InterruptAll,
        );
        assert_eq!(r.currents[&cp(1)], a(10));
        assert_eq!(r.currents[&cp(2)], a(20));
    }

    #[test]
    fn minimums_not_fitting_interrupt_all_by_default() {
        let demands = [
            demand(1, 6, 16, ALL3),
            demand(2, 6, 16, ALL3),
            demand(3, 6, 16, ALL3),
        ];
        let r = allocate(
            PerPhase::splat(a(17)),
            &demands,
            Mode::Symmetric,
            Shortage::InterruptAll,
        );
        assert!(r.overcurrent);
        assert!(r.currents.values().all(|c| *c == Current::ZERO));
    }

    #[test]
    fn minimums_not_fitting_queue_admits_in_order() {
        let demands = [
            demand(1, 6, 16, ALL3),
            demand(2, 6, 16, ALL3),
            demand(3, 6, 16, ALL3),
        ];
        let r = allocate(
            PerPhase::splat(a(17)),
            &demands,
            Mode::Symmetric,
            Shortage::Queue,
        );
        assert!(r.overcurrent);
        assert_eq!(r.waiting, vec![cp(3)]);
        assert_eq!(
            (r.currents[&cp(1)], r.currents[&cp(2)], r.currents[&cp(3)]),
            (a(8), a(8), Current::ZERO)
        );
    }

    #[test]
    fn negative_availability_counts_as_zero() {
        let demands = [demand(1, 6, 16, ALL3)];
        let r = allocate(
            PerPhase::splat(a(-5)),
            &demands,
            Mode::PerPhase,
            Shortage::InterruptAll,
        );
        assert!(r.overcurrent);
        assert_eq!(r.currents[&cp(1)], Current::ZERO);
    }

    // Why each charging point got its current: every reason the allocation records comes
    // from the situation that causes it.

    #[test]
    fn a_point_at_its_maximum_is_limited_by_its_own_maximum_and_the_others_share_fairly() {
        let demands = [
            demand(1, 6, 10, ALL3),
            demand(2, 6, 32, ALL3),
            demand(3, 6, 32, ALL3),
        ];
        let r = allocate(
            PerPhase::splat(a(50)),
            &demands,
            Mode::Symmetric,
            Shortage::InterruptAll,
        );
        assert_eq!(r.limits.get(cp(1)), Some(Limit::OwnMax));
        assert_eq!(r.limits.get(cp(2)), Some(Limit::FairShare));
        assert_eq!(r.limits.get(cp(3)), Some(Limit::FairShare));
    }

    #[test]
    fn enough_for_everyone_is_own_maximum_for_everyone() {
        let demands = [demand(1, 6, 16, ALL3), demand(2, 6, 16, ALL3)];
        let r = allocate(
            PerPhase::splat(a(63)),
            &demands,
            Mode::PerPhase,
            Shortage::InterruptAll,
        );
        assert_eq!(r.currents[&cp(1)], a(16));
        assert_eq!(r.limits.get(cp(1)), Some(Limit::OwnMax));
        assert_eq!(r.limits.get(cp(2)), Some(Limit::OwnMax));
    }

    #[test]
    fn a_phase_used_up_by_the_house_limits_the_points_on_it_by_that_phase() {
        // L1 is loaded by the house: the 3-phase car stops at L1's budget; the L2 car takes
        // the rest of L2 (the 3-phase car, held lower, takes its part of L2).
        let demands = [
            demand(1, 6, 32, ALL3),
            demand(2, 6, 32, [false, true, false]),
        ];
        let r = allocate(
            PerPhase([a(10), a(30), a(30)]),
            &demands,
            Mode::PerPhase,
            Shortage::InterruptAll,
        );
        assert_eq!(r.limits.get(cp(1)), Some(Limit::Phase(Phase::L1)));
        assert_eq!(r.limits.get(cp(2)), Some(Limit::Phase(Phase::L2)));
        // The same on L3 for a single-phase car on L3.
        let demands = [demand(1, 6, 32, [false, false, true])];
        let r = allocate(
            PerPhase([a(30), a(30), a(12)]),
            &demands,
            Mode::PerPhase,
            Shortage::InterruptAll,
        );
        assert_eq!(r.currents[&cp(1)], a(12));
        assert_eq!(r.limits.get(cp(1)), Some(Limit::Phase(Phase::L3)));
    }

    #[test]
    fn the_prioritised_point_taking_the_rest_limits_the_others() {
        let mut demands = [
            demand(1, 6, 16, ALL3),
            demand(2, 6, 32, ALL3),
            demand(3, 6, 16, ALL3),
        ];
        demands[1].prioritised = true;
        let r = allocate(
            PerPhase::splat(a(40)),
            &demands,
            Mode::Symmetric,
            Shortage::InterruptAll,
        );
        assert_eq!(r.limits.get(cp(2)), Some(Limit::Phase(Phase::L1)));
        assert_eq!(r.limits.get(cp(1)), Some(Limit::Prioritised));
        assert_eq!(r.limits.get(cp(3)), Some(Limit::Prioritised));
        // With room for the prioritised point's maximum the others share the rest.
        let r = allocate(
            PerPhase::splat(a(60)),
            &demands,
            Mode::Symmetric,
            Shortage::InterruptAll,
        );
        assert_eq!(r.limits.get(cp(2)), Some(Limit::OwnMax));
        assert_eq!(r.limits.get(cp(1)), Some(Limit::FairShare));
    }

    #[test]
    fn a_point_that_does_not_fit_waits_in_the_queue() {
        let demands = [
            demand(1, 6, 16, ALL3),
            demand(2, 6, 16, ALL3),
            demand(3, 6, 16, ALL3),
        ];
        let r = allocate(
            PerPhase::splat(a(17)),
            &demands,
            Mode::Symmetric,
            Shortage::Queue,
        );
        assert_eq!(r.limits.get(cp(3)), Some(Limit::Queued));
        assert_eq!(r.limits.get(cp(1)), Some(Limit::FairShare));
    }

    #[test]
    fn minimums_not_fitting_with_interrupt_all_record_overcurrent() {
        let demands = [demand(1, 6, 16, ALL3), demand(2, 6, 16, ALL3)];
        let r = allocate(
            PerPhase::splat(a(11)),
            &demands,
            Mode::Symmetric,
            Shortage::InterruptAll,
        );
        assert_eq!(r.limits.get(cp(1)), Some(Limit::OverCurrent));
        assert_eq!(r.limits.get(cp(2)), Some(Limit::OverCurrent));
    }

    fn arb_demands() -> impl Strategy<Value = Vec<Demand>> {
        proptest::collection::vec(
            (6i32..=16, 0i32..=26, any::<[bool; 3]>(), any::<bool>()),
            0..=5,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (min, extra, mut phases, prio))| {
                    if !phases.iter().any(|p| *p) {
                        phases = [true, true, true];
                    }
                    Demand {
                        cp: cp(u8::try_from(i).unwrap() + 1),
                        min: a(min),
                        max: a(min + extra),
                        phases,
                        prioritised: prio && i == 0,
                    }
                })
                .collect()
        })
    }

    proptest! {
        /// No allocation ever books more than what is available on any phase, and every
        /// charging point gets 0 or a current within its minimum and maximum.
        #[test]
        fn never_exceeds_the_budget_on_any_phase(
            avail in any::<[i32; 3]>().prop_map(|v| v.map(|x| x.rem_euclid(120_000) - 20_000)),
            demands in arb_demands(),
            per_phase in any::<bool>(),
            queue in any::<bool>(),
        ) {
            let mode = if per_phase { Mode::PerPhase } else { Mode::Symmetric };
            let shortage = if queue { Shortage::Queue } else { Shortage::InterruptAll };
            let available = PerPhase(avail.map(Current::from_milliamps));
            let r = allocate(available, &demands, mode, shortage);
            for p in Phase::ALL {
                prop_assert!(r.load(&demands, p, mode) <= available.get(p).max(Current::ZERO), "phase {p:?}: {r:?}");
            }
            for d in &demands {
                let c = r.currents[&d.cp];
                prop_assert!(c == Current::ZERO || (c >= d.min && c <= d.max), "{d:?} got {c}");
                let limit = r.limits.get(d.cp);
                prop_assert!(limit.is_some(), "{d:?} has no reason: {r:?}");
                // Its own maximum is the reason exactly when it got its maximum.
                prop_assert_eq!(limit == Some(Limit::OwnMax), c == d.max, "{:?} {:?} got {}", d, limit, c);
            }
        }

        /// Per-phase booking never delivers less in total than symmetric booking.
        #[test]
        fn per_phase_is_never_worse_than_symmetric(avail in 0i32..100, demands in arb_demands()) {
            let available = PerPhase::splat(a(avail));
            let sym = allocate(available, &demands, Mode::Symmetric, Shortage::Queue);
            let per = allocate(available, &demands, Mode::PerPhase, Shortage::Queue);
            let energy = |r: &Allocation| demands.iter().map(|d| r.currents[&d.cp].milliamps() * i32::try_from(d.phases.iter().filter(|p| **p).count()).unwrap()).sum::<i32>();
            prop_assert!(energy(&per) >= energy(&sym) - 3_000 * i32::try_from(demands.len()).unwrap(), "{sym:?} vs {per:?}");
        }
    }
}
