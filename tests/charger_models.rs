//! A new charging-point model is one driver file (`src/chargers/drivers/`), one simulator file
//! (`src/sim/models/`) and its row in `etsdb/charger-models.toml` (issue 12 point 3): every
//! catalog model has both files, the lists the code uses are the ones build.rs derives from the
//! files, no registry file names a model, and the drivers take their capabilities from the
//! catalog instead of repeating it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use knx_echarge::catalog;
use knx_echarge::chargers::drivers::SUPPORTED_MODELS;
use knx_echarge::sim::SimModel;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// (module, id) of every file in `dir` that declares `pub const ID: &str = "…";`.
fn model_files(dir: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join(dir)).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(rest) = text.split("\npub const ID: &str = \"").nth(1) else {
            continue;
        };
        let id = rest.split('"').next().unwrap().to_owned();
        let module = path.file_stem().unwrap().to_str().unwrap().to_owned();
        out.push((module, id));
    }
    out.sort();
    out
}

fn catalog_ids() -> Vec<&'static str> {
    catalog::charger_models()
        .iter()
        .map(|m| m.id.as_str())
        .collect()
}

#[test]
fn every_catalog_model_has_a_driver_file_and_a_simulator_file() {
    let catalog: BTreeSet<&str> = catalog_ids().into_iter().collect();
    for dir in ["src/chargers/drivers", "src/sim/models"] {
        let files: BTreeSet<String> = model_files(dir).into_iter().map(|(_, id)| id).collect();
        let files: BTreeSet<&str> = files.iter().map(String::as_str).collect();
        assert_eq!(files, catalog, "{dir}: one file per catalog model");
    }
}

#[test]
fn the_lists_are_the_files_in_catalog_order() {
    // SUPPORTED_MODELS, AnyDriver/any!/build/line_spacing (all from the same generated
    // REGISTRY) and the simulators' id map follow the files and the catalog.
    assert_eq!(SUPPORTED_MODELS.to_vec(), catalog_ids());
    let sims: Vec<&str> = SimModel::ALL.iter().map(|m| m.id()).collect();
    assert_eq!(sims, catalog_ids());
    for id in catalog_ids() {
        assert_eq!(SimModel::from_id(id).map(SimModel::id), Some(id));
    }
}

#[test]
fn no_registry_file_names_a_model() {
    // The places that used to hold hand-kept lists (issue 12: SUPPORTED_MODELS, AnyDriver,
    // any!, build, line_spacing, the simulator id map, each driver's capabilities) must not
    // name a model: everything there is generated from the files.
    let registry = [
        "src/chargers/drivers/mod.rs",
        "src/sim/models/mod.rs",
        "src/sim/mod.rs",
        "src/catalog/mod.rs",
        "build.rs",
        "build/models.rs",
    ];
    let modules: BTreeSet<String> = model_files("src/chargers/drivers")
        .into_iter()
        .chain(model_files("src/sim/models"))
        .map(|(m, _)| m)
        .collect();
    for file in registry {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        // Unit tests may use a model as an example; the code may not.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for id in catalog_ids() {
            assert!(
                !code.contains(&format!("\"{id}\"")),
                "{file} names model {id}"
            );
        }
        for m in &modules {
            for pattern in [format!("mod {m};"), format!("{m}::")] {
                assert!(!code.contains(&pattern), "{file} has `{pattern}`");
            }
        }
    }
    // The drivers' capabilities come from the catalog row.
    for (module, _) in model_files("src/chargers/drivers") {
        let text =
            std::fs::read_to_string(root().join(format!("src/chargers/drivers/{module}.rs")))
                .unwrap();
        assert!(
            text.contains("catalog_capabilities(ID)") && !text.contains("Capability::{"),
            "{module}.rs repeats its capabilities instead of reading the catalog"
        );
    }
}

/// `cargo fmt` reaches modules through `mod` items it can read; the model modules are
/// declared by generated code, so their formatting is checked here.
#[test]
fn model_files_are_formatted() {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["src/chargers/drivers", "src/sim/models"] {
        for (module, _) in model_files(dir) {
            files.push(Path::new(dir).join(format!("{module}.rs")));
        }
    }
    let rustfmt = std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into());
    let Ok(out) = std::process::Command::new(rustfmt)
        .current_dir(root())
        .args(["--edition", "2024", "--check"])
        .args(&files)
        .output()
    else {
        eprintln!("skipped: rustfmt is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "model files need `rustfmt --edition 2024 src/chargers/drivers/*.rs src/sim/models/*.rs`:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
