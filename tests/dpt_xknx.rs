//! Our DPT codecs against xknx (the KNX library behind Home Assistant): for every DPT of the
//! group-object table, a sweep of values including range edges, DPT 9 rounding ties and
//! Latin-1 strings is encoded by xknx (`tests/interop/dpt_vectors.py`) and by us. The bytes
//! must be identical, and we must refuse exactly what xknx refuses.
//!
//! Needs `.venv` with xknx, which `tests/run` installs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::path::Path;
use std::process::Command;

use knx_echarge::knx::dpt::{self, Dpt, DptValue, TimeOfDay, Weekday};
use knx_echarge::knx::wire::apdu::Payload;
use knx_echarge::objects::engine::latin1_lossy;
use serde_json::Value as Json;

fn xknx_vectors() -> Option<Vec<Json>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        assert!(
            std::env::var_os("KNX_ECHARGE_INTEROP").is_none(),
            "KNX_ECHARGE_INTEROP is set but {} is missing",
            python.display()
        );
        eprintln!(
            "SKIPPED: {} not found; run tests/run, which installs xknx",
            python.display()
        );
        return None;
    }
    let out = Command::new(python)
        .arg(root.join("tests/interop/dpt_vectors.py"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dpt_vectors.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn our_value(dpt: Dpt, v: &Json) -> Option<DptValue> {
    Some(match dpt {
        Dpt::Switch | Dpt::Bool | Dpt::Start | Dpt::State | Dpt::Trigger => {
            DptValue::Bool(v.as_bool()?)
        }
        Dpt::TimeOfDay => {
            let weekday = v["weekday"]
                .as_u64()
                .and_then(|d| Weekday::from_number(d as u8));
            let t = TimeOfDay::new(
                weekday,
                v["hour"].as_u64()? as u8,
                v["minute"].as_u64()? as u8,
                v["second"].as_u64()? as u8,
            )?;
            DptValue::TimeOfDay(t)
        }
        Dpt::StringLatin1 => DptValue::Text(latin1_lossy(v.as_str()?, 15)),
        _ => match (v.as_i64(), v.as_f64()) {
            (Some(i), _)
                if i32::try_from(i).is_ok()
                    && !matches!(
                        dpt,
                        Dpt::ValueTemp
                            | Dpt::ValueCurr
                            | Dpt::PowerKw
                            | Dpt::ElectricCurrent
                            | Dpt::Power
                    ) =>
            {
                DptValue::I32(i as i32)
            }
            (_, Some(f)) => DptValue::Float(f),
            _ => return None,
        },
    })
}

#[test]
fn our_encoding_matches_xknx_for_every_dpt_of_the_table() {
    let Some(vectors) = xknx_vectors() else {
        return;
    };
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    let mut mismatches = Vec::new();
    for v in &vectors {
        let dpt: Dpt = v["dpt"].as_str().unwrap().parse().unwrap();
        let ours = our_value(dpt, &v["value"])
            .ok_or("no value")
            .and_then(|val| dpt::encode(dpt, &val).map_err(|_| "refused"));
        let expected = if v["error"].as_bool().unwrap() {
            None
        } else if let Some(short) = v["short"].as_u64() {
            Some(Payload::Short(short as u8))
        } else {
            Some(Payload::Long(hex(v["bytes"].as_str().unwrap())))
        };
        match (&ours, &expected) {
            (Ok(a), Some(b)) if a == b => {}
            (Err(_), None) => {}
            _ => mismatches.push(format!(
                "{dpt} {}: ours {ours:?}, xknx {expected:?}",
                v["value"]
            )),
        }
        // The other direction: what xknx sends, we decode to a value that encodes back the same.
        if let Some(p) = &expected {
            let back = dpt::decode(dpt, p).and_then(|val| dpt::encode(dpt, &val));
            if back.as_ref() != Ok(p) {
                mismatches.push(format!(
                    "{dpt} {}: decode/encode of xknx bytes gives {back:?}",
                    v["value"]
                ));
            }
        }
        *checked.entry(dpt.to_string()).or_default() += 1;
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // Every DPT the table uses was covered.
    for o in knx_echarge::objects::TableSpec::get()
        .object
        .iter()
        .chain(&knx_echarge::objects::TableSpec::get().charging_point_object)
    {
        for d in o.dpts.iter().chain(o.variant.iter().flat_map(|v| &v.dpts)) {
            assert!(
                checked.get(d.as_str()).copied().unwrap_or(0) > 0,
                "DPT {d} not covered"
            );
        }
    }
    eprintln!(
        "{} vectors over {} DPTs match xknx",
        vectors.len(),
        checked.len()
    );
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
