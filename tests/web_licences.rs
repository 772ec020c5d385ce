//! The open-source licences page lists exactly the packages the firmware is built from.
//!
//! `src/web/licences.json` is generated from the real dependency tree (`cargo metadata`, the
//! normal and build dependencies reachable from knx-echarge on Linux, without dev-dependencies)
//! and checked in. This test regenerates it and fails if the checked-in file differs, so a
//! changed dependency cannot ship with a stale licence list. Refresh it with
//! `KNX_ECHARGE_UPDATE_LICENCES=1 cargo test --test web_licences`.
//!
//! A checked-in file rather than a build script: the build then needs no `cargo metadata` run
//! (no nested cargo, no registry access, no output that varies with the machine), the list is
//! reviewable in a diff, and the binary embeds it with `include_str!`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::{Value, json};

const FILE: &str = "src/web/licences.json";

fn generate() -> String {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
            "x86_64-unknown-linux-gnu",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = meta["resolve"]["root"].as_str().unwrap().to_owned();
    let nodes: BTreeMap<String, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap().to_owned(), n))
        .collect();
    // Walk the normal and build dependencies from the root.
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.clone()];
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        for dep in nodes[&id]["deps"].as_array().unwrap() {
            let shipped = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].as_str() != Some("dev"));
            if shipped {
                todo.push(dep["pkg"].as_str().unwrap().to_owned());
            }
        }
    }
    seen.remove(&root);
    let mut packages: Vec<Value> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| seen.contains(p["id"].as_str().unwrap()))
        .map(|p| {
            json!({
                "name": p["name"],
                "version": p["version"],
                "license": p["license"],
                "repository": p["repository"],
            })
        })
        .collect();
    packages.sort_by_key(|p| (p["name"].to_string(), p["version"].to_string()));
    let doc = json!({
        "generated_by": "tests/web_licences.rs from cargo metadata (normal and build dependencies, x86_64-unknown-linux-gnu)",
        "packages": packages,
    });
    serde_json::to_string_pretty(&doc).unwrap() + "\n"
}

#[test]
fn licence_list_matches_the_dependency_tree() {
    let fresh = generate();
    let doc: Value = serde_json::from_str(&fresh).unwrap();
    let names: Vec<&str> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for needed in ["axum", "tokio", "argon2", "serde"] {
        assert!(names.contains(&needed), "{needed} missing");
    }
    assert!(
        !names.contains(&"proptest"),
        "dev-dependencies are not shipped"
    );
    if std::env::var_os("KNX_ECHARGE_UPDATE_LICENCES").is_some() {
        std::fs::write(FILE, &fresh).unwrap();
        return;
    }
    let current = std::fs::read_to_string(FILE).unwrap();
    assert!(
        current == fresh,
        "{FILE} is stale: the dependencies changed. Refresh it with \
         `KNX_ECHARGE_UPDATE_LICENCES=1 cargo test --test web_licences` and commit it."
    );
}
