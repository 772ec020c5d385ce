//! The open-source licences page lists exactly the packages the firmware is built from,
//! with the licence texts and each package's copyright notices.
//!
//! `src/web/licences.json` is generated from the real dependency tree (`cargo metadata`, the
//! normal and build dependencies reachable from knx-echarge on Linux, without dev-dependencies)
//! and checked in. This test regenerates it and fails if the checked-in file differs, so a
//! changed dependency cannot ship with a stale licence list. Refresh it with
//! `KNX_ECHARGE_UPDATE_LICENCES=1 cargo test --test web_licences`.
//!
//! The texts come from the packages' own licence files in the cargo registry (found through
//! each package's `manifest_path`: `LICENSE*`, `LICENCE*`, `COPYING*`, `UNLICENSE`,
//! `COPYRIGHT*`, `NOTICE*`, and the files of a `LICENSES/` folder):
//! * `texts`: one full text per distinct SPDX licence named in the tree's licence
//!   expressions, deduplicated. Each licence file is recognised by its wording; of the files
//!   that hold exactly one licence, the most frequent text (copyright lines removed, since
//!   they belong to the package, not to the licence; ties by text) is the licence's text.
//!   The GNU licences keep their own copyright line (the FSF's).
//! * per package, `spdx` (the licences of its expression, to link to the texts) and
//!   `notices`: the copyright lines of its licence files, which MIT and BSD require to be
//!   kept.
//!
//! A licence named in the tree whose text no package ships (serialport ships only the MPL-2.0
//! notice) is taken from `src/web/licence-texts/<id>.txt`, checked in (`from` says which).
//!
//! Deterministic: it reads only the immutable registry sources of the locked versions and
//! the checked-in texts, and writes no machine path. A licence named in the tree without any text fails the test.
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
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const FILE: &str = "src/web/licences.json";

/// Official texts of licences that no package ships (see the README there).
const VENDORED: &str = "src/web/licence-texts";

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
    let mut shipped: Vec<&Value> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| seen.contains(p["id"].as_str().unwrap()))
        .collect();
    shipped.sort_by_key(|p| (p["name"].to_string(), p["version"].to_string()));
    // Every licence file of every package, recognised by its wording.
    let mut candidates: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut packages = Vec::new();
    let mut needed = BTreeSet::new();
    for p in &shipped {
        let dir = Path::new(p["manifest_path"].as_str().unwrap())
            .parent()
            .unwrap();
        let expression = p["license"].as_str().unwrap_or_default();
        let spdx = spdx_ids(expression);
        needed.extend(spdx.iter().cloned());
        let mut notices: Vec<String> = Vec::new();
        for file in licence_files(dir) {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let text = text.replace("\r\n", "\n");
            let ids = recognise(&text);
            if !ids.iter().any(|id| is_gnu(id)) {
                for line in copyright_lines(&text) {
                    if !notices.contains(&line) {
                        notices.push(line);
                    }
                }
            }
            if let [id] = ids.as_slice() {
                candidates
                    .entry(id)
                    .or_default()
                    .push(licence_body(id, &text));
            }
        }
        packages.push(json!({
            "name": p["name"],
            "version": p["version"],
            "license": p["license"],
            "spdx": spdx,
            "notices": notices,
            "repository": p["repository"],
        }));
    }
    let mut texts = Vec::new();
    for id in &needed {
        let Some(found) = candidates.get(id.as_str()) else {
            // No package ships this text: the reviewed copy in the repository.
            let path = format!("{VENDORED}/{id}.txt");
            let Ok(text) = std::fs::read_to_string(&path) else {
                panic!(
                    "no licence text for {id} in the licence files of the packages that name \
                     it, and no {path}: add the official text there"
                );
            };
            let text = text.replace("\r\n", "\n");
            assert_eq!(
                recognise(&text),
                [id.as_str()],
                "{path} is not the {id} text"
            );
            texts.push(json!({ "id": id, "text": licence_body(id, &text), "from": path }));
            continue;
        };
        let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
        for t in found {
            *counts.entry(t).or_default() += 1;
        }
        // The most frequent wording; among equals the first by text (deterministic).
        let best = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(t, _)| (*t).clone())
            .unwrap();
        texts.push(json!({ "id": id, "text": best, "from": "packages" }));
    }
    let doc = json!({
        "generated_by": "tests/web_licences.rs from cargo metadata (normal and build dependencies, x86_64-unknown-linux-gnu) and the packages' licence files",
        "texts": texts,
        "packages": packages,
    });
    serde_json::to_string_pretty(&doc).unwrap() + "\n"
}

/// The licence ids of an SPDX expression (`(MIT OR Apache-2.0) AND Unicode-3.0`; the old
/// `MIT/Apache-2.0` form too), in order, without repeats.
fn spdx_ids(expression: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for token in expression
        .replace(['(', ')'], " ")
        .replace('/', " OR ")
        .split_whitespace()
    {
        if !matches!(token, "OR" | "AND" | "WITH") && !ids.iter().any(|i| i == token) {
            ids.push(token.to_owned());
        }
    }
    ids
}

/// A package's licence files: top-level `LICENSE*`, `LICENCE*`, `COPYING*`, `UNLICENSE*`,
/// `COPYRIGHT*`, `NOTICE*` and the files of a `LICENSES` folder, by name.
fn licence_files(dir: &Path) -> Vec<PathBuf> {
    let licence_name = |name: &str| {
        let lower = name.to_ascii_lowercase();
        [
            "license",
            "licence",
            "copying",
            "unlicense",
            "copyright",
            "notice",
        ]
        .iter()
        .any(|prefix| lower.starts_with(prefix))
    };
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !licence_name(&name) {
            continue;
        }
        if path.is_dir() {
            let mut inner: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .collect();
            inner.sort();
            files.extend(inner);
        } else {
            files.push(path);
        }
    }
    files
}

/// The licences whose full text `text` holds, recognised by wording that only their texts
/// have (a pointer such as "Licensed under the Apache License" is no text).
fn recognise(text: &str) -> Vec<&'static str> {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let has = |s: &str| flat.contains(s);
    let mut ids = Vec::new();
    if has(
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this software",
    ) {
        ids.push("MIT");
    }
    if has("Apache License") && has("Version 2.0, January 2004") {
        ids.push("Apache-2.0");
    }
    if has("This is free and unencumbered software released into the public domain") {
        ids.push("Unlicense");
    }
    if has("Boost Software License - Version 1.0") {
        ids.push("BSL-1.0");
    }
    if has("Redistribution and use in source and binary forms") {
        ids.push(
            if has("Neither the name") || has("names of its contributors may be used") {
                "BSD-3-Clause"
            } else {
                "BSD-2-Clause"
            },
        );
    }
    if has("Altered source versions must be plainly marked as such") {
        ids.push("Zlib");
    }
    if has("Mozilla Public License Version 2.0") || has("Mozilla Public License, version 2.0") {
        ids.push("MPL-2.0");
    }
    if has("GNU GENERAL PUBLIC LICENSE") && has("Version 3, 29 June 2007") {
        ids.push("GPL-3.0-only");
    }
    if has("UNICODE LICENSE V3") {
        ids.push("Unicode-3.0");
    }
    if has(
        "Permission to use, copy, modify, and/or distribute this software for any purpose with or without fee is hereby granted",
    ) {
        ids.push("ISC");
    }
    if has("CC0 1.0 Universal") {
        ids.push("CC0-1.0");
    }
    ids
}

/// The GNU licences carry their own copyright line (the FSF's), which is part of the text.
fn is_gnu(id: &str) -> bool {
    id.starts_with("GPL-") || id.starts_with("LGPL-") || id.starts_with("AGPL-")
}

/// Whether `line` is a copyright notice of a package ("Copyright (c) 2019 axum
/// Contributors", "Copyright 2018 …", "© …"), not a template ("Copyright [yyyy] [name of
/// copyright owner]", "<year>") nor a heading.
fn is_notice(line: &str) -> bool {
    let line = line.trim();
    let rest = if let Some(r) = line.strip_prefix("Copyright") {
        r
    } else if let Some(r) = line.strip_prefix("COPYRIGHT") {
        r
    } else if line.starts_with('©') {
        line
    } else if let Some(r) = line
        .strip_prefix("(c) ")
        .or_else(|| line.strip_prefix("(C) "))
    {
        // "(C) 2024 Trifecta Tech Foundation", not Apache's "(c) You must retain …".
        if !r.starts_with(|c: char| c.is_ascii_digit()) {
            return false;
        }
        r
    } else {
        return false;
    };
    let rest = rest.trim_start();
    let starts_right = rest.starts_with("(c)")
        || rest.starts_with("(C)")
        || rest.starts_with('©')
        || rest.starts_with(|c: char| c.is_ascii_digit());
    let template = [
        "[yyyy]",
        "{yyyy}",
        "<year>",
        "[year]",
        "[name of copyright owner]",
    ]
    .iter()
    .any(|t| line.contains(t));
    starts_right && !template
}

/// "All rights reserved." on the line after a notice belongs to it.
const RESERVED: &str = "All rights reserved.";

/// The copyright notices in `text`, whitespace collapsed.
fn copyright_lines(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !is_notice(line) {
            continue;
        }
        let mut notice = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if lines.get(i + 1).is_some_and(|next| next.trim() == RESERVED)
            && !notice.ends_with(RESERVED)
        {
            notice = format!("{notice} {RESERVED}");
        }
        out.push(notice);
    }
    out
}

/// The licence's own text in a licence file: without the package's copyright lines (except
/// for the GNU licences), without trailing spaces and surrounding blank lines.
fn licence_body(id: &str, text: &str) -> String {
    let all: Vec<&str> = text.lines().collect();
    let mut lines: Vec<&str> = Vec::new();
    for (i, line) in all.iter().enumerate() {
        let after_notice = i > 0 && all.get(i - 1).is_some_and(|l| is_notice(l));
        let package_notice = is_notice(line) || (after_notice && line.trim() == RESERVED);
        if is_gnu(id) || !package_notice {
            lines.push(line.trim_end());
        }
    }
    // No run of blank lines where a notice was taken out.
    let mut body = String::new();
    for line in lines {
        if line.is_empty() && (body.is_empty() || body.ends_with("\n\n")) {
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    body.trim_end_matches('\n').to_owned() + "\n"
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
    // Every licence a package names has its text; MIT and Apache-2.0 are among them.
    let texts: BTreeMap<&str, &str> = doc["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["text"].as_str().unwrap()))
        .collect();
    for p in doc["packages"].as_array().unwrap() {
        for id in p["spdx"].as_array().unwrap() {
            assert!(texts.contains_key(id.as_str().unwrap()), "{id} of {p}");
        }
    }
    assert!(texts["MIT"].contains("Permission is hereby granted, free of charge"));
    assert!(
        !texts["MIT"].contains("Copyright (c)"),
        "notices are per package"
    );
    assert!(
        texts["Apache-2.0"]
            .contains("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION")
    );
    let axum = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "axum")
        .unwrap();
    assert_eq!(
        axum["notices"],
        json!(["Copyright (c) 2019 axum Contributors"])
    );
    if std::env::var_os("KNX_ECHARGE_UPDATE_LICENCES").is_some() {
        std::fs::write(FILE, &fresh).unwrap();
        return;
    }
    let current = std::fs::read_to_string(FILE).unwrap();
    assert!(
        current == fresh,
        "{FILE} is stale: the dependencies (or their licence files, or src/web/licence-texts) changed. Refresh it with \
         `KNX_ECHARGE_UPDATE_LICENCES=1 cargo test --test web_licences` and commit it."
    );
}
