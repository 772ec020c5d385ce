//! `knx-echarge simulate`: the DLM of the real core, run at injected time against a
//! simulated house, smart meter, charging points and vehicles, with figures that show whether
//! the fuse was protected and how much energy reached the vehicles.
//!
//! * [`scenario`]: the scenario file (TOML) and the gateway configuration it implies;
//! * [`run`]: one run per allocation mode (physics, the core, the metrics);
//! * [`vehicle`], [`meter`]: what cars and smart meters really do (reaction, ramp, taper,
//!   self-pause, phases; period, noise, latency, phase spread, 1-phase and power meters);
//! * [`protection`]: the fuse or breaker's time-current curve and trip integral;
//! * [`bound`]: the energy upper bound, a linear program per step;
//! * [`output`]: CSV, JSON, SVG and the text summary.
//!
//! The format is documented in README.md ("Simulation"); the reference scenarios are in
//! `scenarios/`. Everything is deterministic: the same scenario gives the same figures.

pub mod bound;
pub mod meter;
pub mod output;
pub mod protection;
pub mod run;
pub mod scenario;
pub mod vehicle;

use std::path::{Path, PathBuf};

pub use run::{RunResult, Summary};
pub use scenario::{AllocationMode, Scenario, ScenarioError};

/// Running a scenario into a directory failed.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The scenario is unreadable or invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// An output file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// File or directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Runs every mode of `scenario`, in the scenario's order.
pub fn run_all(scenario: &Scenario) -> Result<Vec<RunResult>, ScenarioError> {
    scenario
        .modes
        .iter()
        .map(|m| run::run(scenario, *m))
        .collect()
}

/// Energy gain of per-phase over symmetric allocation (0.25 = 25 % more), when both ran.
pub fn per_phase_gain(summaries: &[&Summary]) -> Option<f64> {
    let energy = |m| summaries.iter().find(|s| s.mode == m).map(|s| s.energy_kwh);
    let per_phase = energy(AllocationMode::PerPhase)?;
    let symmetric = energy(AllocationMode::Symmetric)?;
    (symmetric > 0.0).then(|| per_phase / symmetric - 1.0)
}

/// Loads `scenario_path`, runs it and writes the outputs into `out` (one subdirectory per
/// mode when several modes run, plus `comparison.json`). Returns the results.
pub fn simulate_to_dir(scenario_path: &Path, out: &Path) -> Result<Vec<RunResult>, SimulateError> {
    let scenario = Scenario::load(scenario_path)?;
    let results = run_all(&scenario)?;
    let ids: Vec<u8> = scenario.points.iter().map(|p| p.id.number()).collect();
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SimulateError::Write { path, source }
    };
    if let [single] = results.as_slice() {
        output::write_run(out, single, &ids).map_err(write_err(out))?;
    } else {
        for r in &results {
            let dir = out.join(r.summary.mode.name());
            output::write_run(&dir, r, &ids).map_err(write_err(&dir))?;
        }
        let summaries: Vec<&Summary> = results.iter().map(|r| &r.summary).collect();
        let comparison = serde_json::json!({
            "scenario": scenario.name,
            "modes": summaries,
            "per_phase_energy_gain": per_phase_gain(&summaries),
        });
        let path = out.join("comparison.json");
        let text = serde_json::to_string_pretty(&comparison).map_err(std::io::Error::other);
        text.and_then(|t| std::fs::write(&path, t + "\n"))
            .map_err(write_err(&path))?;
    }
    Ok(results)
}
