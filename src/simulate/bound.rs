//! The most energy any load management could have delivered: a linear program per step,
//! solved with `microlp` (pure Rust simplex).
//!
//! Owns `Bound`. Per step, each vehicle that would charge has one variable x (A per phase)
//! with 0 ≤ x ≤ min(its ceiling, its point's maximum, what its remaining energy allows);
//! a vehicle drawing on several phases draws x on each, so it is held by its tightest phase;
//! on each grid phase the vehicles on it take at most the budget less the house load. The
//! objective is the power Σ phases · x. The minimum current (6 A) is relaxed, so the result
//! is an upper bound. Each vehicle's energy in the bound is tracked on its own (it fills up
//! in the bound when it would have), and its taper follows the bound's own energy.

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use crate::units::Phase;

/// One vehicle's part in a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Taker {
    /// Grid phases it draws on.
    pub phases: Vec<Phase>,
    /// Most it may take per phase now, A.
    pub cap: f64,
}

/// Best total power (W at `voltage` per phase) for `takers` given `room` per grid phase (A),
/// with the current per taker.
pub fn best(room: [f64; 3], takers: &[Taker], voltage: f64) -> (f64, Vec<f64>) {
    if takers.iter().all(|t| t.cap <= 0.0 || t.phases.is_empty()) {
        return (0.0, vec![0.0; takers.len()]);
    }
    let mut p = Problem::new(OptimizationDirection::Maximize);
    let vars: Vec<_> = takers
        .iter()
        .map(|t| {
            #[allow(clippy::cast_precision_loss, reason = "1 to 3 phases")]
            let n = t.phases.len() as f64;
            p.add_var(n * voltage, (0.0, t.cap.max(0.0)))
        })
        .collect();
    for ph in Phase::ALL {
        let terms: Vec<_> = takers
            .iter()
            .zip(&vars)
            .filter(|(t, _)| t.phases.contains(&ph))
            .map(|(_, v)| (*v, 1.0))
            .collect();
        if !terms.is_empty() {
            let r = room.get(ph.index()).copied().unwrap_or(0.0).max(0.0);
            p.add_constraint(terms.as_slice(), ComparisonOp::Le, r);
        }
    }
    match p.solve() {
        Ok(microlp::SolveOutcome::Solution(sol)) => {
            let x = vars.iter().map(|v| sol.var_value(*v)).collect();
            (sol.objective(), x)
        }
        _ => (0.0, vec![0.0; takers.len()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_three_phase_car_is_held_by_its_tightest_phase() {
        let takers = [Taker {
            phases: Phase::ALL.to_vec(),
            cap: 16.0,
        }];
        let (w, x) = best([20.0, 8.0, 20.0], &takers, 230.0);
        assert!((x[0] - 8.0).abs() < 1e-6);
        assert!((w - 3.0 * 8.0 * 230.0).abs() < 1e-3);
    }

    #[test]
    fn single_phase_cars_fill_the_phases_a_three_phase_car_leaves() {
        let takers = [
            Taker {
                phases: Phase::ALL.to_vec(),
                cap: 16.0,
            },
            Taker {
                phases: vec![Phase::L1],
                cap: 16.0,
            },
            Taker {
                phases: vec![Phase::L3],
                cap: 4.0,
            },
        ];
        let (w, x) = best([20.0, 10.0, 20.0], &takers, 230.0);
        assert!((x[0] - 10.0).abs() < 1e-6);
        assert!((x[1] - 10.0).abs() < 1e-6);
        assert!((x[2] - 4.0).abs() < 1e-6);
        assert!((w - (30.0 + 10.0 + 4.0) * 230.0).abs() < 1e-3);
        assert!(best([20.0; 3], &[], 230.0).0.abs() < 1e-12);
    }
}
