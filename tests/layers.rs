//! The layer rule of `src/`, enforced: every `crate::…` path in a module's code (its `use`
//! lines and any path written in place) must point to a layer below it, or to one of the few
//! neighbours the rule names. README ("Architecture") and `src/lib.rs` state the same rule.
//!
//! Test code inside a module (`tests.rs` files and a trailing `#[cfg(test)] mod tests`) may
//! build what it needs from higher layers and is not checked; doc comments are not code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may import every module of a lower layer.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base",
        &["units", "faults", "store", "netif", "hw", "catalog"],
    ),
    ("protocols", &["knx", "modbus", "dlm", "ssdp"]),
    ("devices", &["chargers", "meters", "objects", "etsdb"]),
    ("config", &["config"]),
    ("core", &["core"]),
    ("gateway", &["gateway"]),
    (
        "edges",
        &["web", "sim", "simulate", "demo", "app", "tpline"],
    ),
];

/// Imports inside one layer that the rule allows (importer, imported).
const SAME_LAYER: &[(&str, &str)] = &[
    ("faults", "units"),
    ("hw", "units"),
    ("catalog", "units"),
    ("knx", "netif"),
    ("meters", "chargers"),
    ("simulate", "sim"),
    ("demo", "sim"),
    ("demo", "simulate"),
    ("app", "web"),
    ("app", "demo"),
    ("demo", "tpline"),
    ("app", "tpline"),
];

/// Modules whose imports are restricted beyond their layer: (module, the only ones allowed).
const ONLY: &[(&str, &[&str])] = &[
    // Simulated charging points are independent peers: they must not see the drivers.
    ("sim", &["modbus", "catalog", "units"]),
    // The emulated TP line is an independent peer of the TP-UART link: no KNX code of ours.
    ("tpline", &[]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// Whether `from` may import `to`.
fn allowed(from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    if let Some((_, only)) = ONLY.iter().find(|(m, _)| *m == from) {
        return only.contains(&to);
    }
    match (layer_of(from), layer_of(to)) {
        (Some(a), Some(b)) if b < a => true,
        (Some(a), Some(b)) if a == b => SAME_LAYER.contains(&(from, to)),
        _ => false,
    }
}

/// The modules `source` refers to with `crate::<module>`, with their line numbers; test code
/// at the end of the file and comments are skipped.
fn crate_refs(source: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = source.lines().collect();
    let mut refs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line == "#[cfg(test)]" {
            let next = lines[i + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty())
                .unwrap_or("");
            if next.starts_with("mod ") || next.starts_with("pub mod ") {
                break;
            }
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `knx_echarge::…` or `$crate::…` are not this crate's paths from inside.
            if !matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '$')
                && !name.is_empty()
            {
                refs.push((i + 1, name));
            }
            rest = after;
        }
        i += 1;
    }
    refs
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The violations in one file of module `module`: "path:line: module -> target".
fn violations(module: &str, file: &str, source: &str) -> Vec<String> {
    crate_refs(source)
        .into_iter()
        .filter(|(_, to)| !allowed(module, to))
        .map(|(line, to)| format!("{file}:{line}: {module} imports {to}"))
        .collect()
}

#[test]
fn every_import_in_src_runs_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for path in &files {
        let rel = path.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let is_test_file = rel
            .components()
            .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "tests.rs");
        if is_test_file {
            continue;
        }
        assert!(
            layer_of(&module).is_some(),
            "src/{} belongs to module `{module}`, which has no layer: add it to LAYERS",
            rel.display()
        );
        *seen.entry(module.clone()).or_default() += 1;
        let source = std::fs::read_to_string(path).unwrap();
        bad.extend(violations(
            &module,
            &format!("src/{}", rel.display()),
            &source,
        ));
    }
    assert!(
        seen.len() >= 20,
        "only {} modules found: {seen:?}",
        seen.len()
    );
    assert!(
        bad.is_empty(),
        "imports against the layer rule:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_module_of_lib_rs_has_a_layer() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line.strip_prefix("pub mod ") {
            let name = name.trim_end_matches(';');
            assert!(layer_of(name).is_some(), "`{name}` has no layer");
        }
    }
}

#[test]
fn a_forbidden_import_is_found() {
    // The rule's own "never" list, each as it would be written in a module.
    let cases = [
        ("knx", "use crate::core::LinkState;"),
        ("knx", "let s = crate::gateway::shell::spawn();"),
        ("modbus", "use crate::chargers::ChargerStatus;"),
        ("chargers", "use crate::config::ChargePointConfig;"),
        ("chargers", "use crate::core::Event;"),
        ("objects", "use crate::config::Config;"),
        ("objects", "pub use crate::gateway::Snapshot;"),
        ("sim", "use crate::chargers::drivers::keba;"),
        ("sim", "use crate::config::Config;"),
        ("catalog", "use crate::objects::TableSpec;"),
        ("dlm", "use crate::core::Core;"),
    ];
    for (module, line) in cases {
        let source = format!("//! A module.\n\n{line}\n\nfn f() {{}}\n");
        let found = violations(module, "x.rs", &source);
        assert_eq!(found.len(), 1, "{module}: {line} → {found:?}");
    }
    // And the allowed directions are not reported.
    let fine =
        "use crate::units::Current;\nuse crate::modbus::Modbus;\n// crate::core in a comment\n";
    assert!(violations("chargers", "x.rs", fine).is_empty());
    let test_code = "use crate::units::Current;\n\n#[cfg(test)]\nmod tests {\n    use crate::config::Config;\n}\n";
    assert!(violations("chargers", "x.rs", test_code).is_empty());
}
