//! The table data checked against an independent transcription of the spec's tables
//! (ch. 10): number, DPTs and flags of every object, and which objects exist for a config.

use super::*;
use crate::catalog::Capability;

/// Spec ch. 10.1/10.2: (number, DPTs, flags).
const SPEC_GENERAL: &[(u16, &[&str], &str)] = &[
    (1, &["1.001"], "C-WTUI"),
    (2, &["1.011"], "CR-T--"),
    (8, &["1.002"], "CR-T--"),
    (9, &["16.001"], "CR-T--"),
    (10, &["7.012", "9.021", "14.019"], "C-WTUI"),
    (11, &["7.012", "9.021", "14.019"], "C-WTUI"),
    (12, &["7.012", "9.021", "14.019"], "C-WTUI"),
    (13, &["1.002"], "C-W---"),
    (20, &["1.017"], "C-W---"),
];

const CUR: &[&str] = &["7.012", "9.021", "14.019"];
const POW: &[&str] = &["9.024", "14.056"];
const EN: &[&str] = &["13.010", "13.013"];
const STR: &[&str] = &["16.001"];

/// Spec ch. 10.3, tables 22–61: (offset, DPTs, flags). Object 50's "Non DPT" byte is 5.010.
const SPEC_CP: &[(u16, &[&str], &str)] = &[
    (0, &["5.010"], "CR-T--"),
    (1, &["1.002"], "CR-T--"),
    (2, &["1.011"], "CR-T--"),
    (3, &["1.002"], "CR-T--"),
    (4, &["1.010"], "C-W---"),
    (5, &["1.002"], "C-WTU-"),
    (6, &["1.011"], "CR-T--"),
    (9, &["1.017"], "C-W---"),
    (10, &["14.019"], "C-W---"),
    (11, &["14.019"], "CR-T--"),
    (12, CUR, "CR-T--"),
    (13, CUR, "CR-T--"),
    (14, CUR, "CR-T--"),
    (15, CUR, "CR-T--"),
    (16, POW, "CR-T--"),
    (17, POW, "CR-T--"),
    (18, POW, "CR-T--"),
    (19, POW, "CR-T--"),
    (20, EN, "CR-T--"),
    (21, EN, "CR-T--"),
    (22, EN, "CR-T--"),
    (23, EN, "CR-T--"),
    (24, EN, "CR-T--"),
    (25, EN, "CR-T--"),
    (26, &["10.001"], "CR-T--"),
    (27, &["10.001"], "CR-T--"),
    (28, &["13.100"], "CR-T--"),
    (29, STR, "CR-T--"),
    (30, STR, "CR-T--"),
    (31, STR, "CR-T--"),
    (32, &["9.001"], "CR-T--"),
    (33, &["1.002"], "CR-T--"),
    (34, STR, "CR-T--"),
    (44, &["1.002"], "CR-T--"),
    (45, STR, "CR-T--"),
    (46, STR, "CR-T--"),
    (47, STR, "CR-T--"),
    (48, STR, "CR-T--"),
    (49, STR, "CR-T--"),
];

fn everything(meter_power: bool, dlm: bool) -> Context {
    Context {
        dlm,
        meter_three_phase: true,
        meter_power,
        monitoring_in_operation: true,
        dpt_choices: BTreeMap::new(),
        charging_points: (0..5)
            .map(|_| ChargePointContext {
                active: true,
                capabilities: Capability::ALL.into_iter().collect(),
                temperature_sending: true,
                dpt_choices: BTreeMap::new(),
            })
            .collect(),
    }
}

fn dpt_bytes(dpt: &str) -> u8 {
    match dpt.split('.').next() {
        Some("1") => 0,
        Some("5") => 1,
        Some("7" | "9") => 2,
        Some("10") => 3,
        Some("13" | "14") => 4,
        Some("16") => 14,
        _ => 255,
    }
}

#[test]
fn the_complete_table_matches_the_spec() {
    let spec = TableSpec::get();
    // With DLM on, everything except object 60 + offset; with DLM off, 60 + offset appears.
    let on = ObjectTable::build(spec, &everything(false, true), &BTreeMap::new());
    let off = ObjectTable::build(spec, &everything(false, false), &BTreeMap::new());
    let mut expected = 0;
    for (n, dpts, flags) in SPEC_GENERAL {
        let o = on
            .get(GoNumber(*n))
            .unwrap_or_else(|| panic!("object {n} missing"));
        assert_eq!(o.flags.to_string(), *flags, "flags of object {n}");
        assert_eq!(o.dpt_choices, *dpts, "DPTs of object {n}");
        expected += 1;
    }
    for cp in ChargePointId::all() {
        for (off_, dpts, flags) in SPEC_CP {
            let n = GoNumber(cp.object_base() + off_);
            let table = if *off_ == 10 { &off } else { &on };
            let o = table.get(n).unwrap_or_else(|| panic!("object {n} missing"));
            assert_eq!(o.flags.to_string(), *flags, "flags of object {n}");
            assert_eq!(o.dpt_choices, *dpts, "DPTs of object {n}");
            assert_eq!(o.charging_point, Some(cp));
            // DLM on hides 60 + offset; DLM off shows it.
            assert!(!on.contains(GoNumber(cp.object_base() + 10)));
            expected += 1;
        }
    }
    // Nothing more than the spec lists: 9 general objects and 39 per charging point.
    assert_eq!(SPEC_CP.len(), 39);
    assert_eq!(on.objects().len() + 5, expected);
    // DLM off: no smart-meter objects.
    for n in [10, 11, 12, 13, 20] {
        assert!(
            !off.contains(GoNumber(n)),
            "object {n} must not exist without DLM"
        );
    }
}

/// The spec's data width is that of the widest DPT an object may use.
#[test]
fn data_width_matches_the_dpt() {
    for o in TableSpec::get()
        .object
        .iter()
        .chain(&TableSpec::get().charging_point_object)
    {
        let widest = o
            .dpts
            .iter()
            .chain(o.variant.iter().flat_map(|v| &v.dpts))
            .map(|d| dpt_bytes(d))
            .max()
            .unwrap();
        let expected = match widest {
            0 => "1 bit".to_owned(),
            1 => "1 byte".to_owned(),
            n => format!("{n} bytes"),
        };
        assert_eq!(o.size, expected, "object {:?}/{:?}", o.number, o.offset);
    }
}

#[test]
fn meter_objects_follow_connection_and_measurement() {
    let spec = TableSpec::get();
    let mut ctx = everything(true, true);
    let t = ObjectTable::build(spec, &ctx, &BTreeMap::new());
    assert_eq!(
        t.get(GoNumber(10)).unwrap().name,
        "Smart meter power value L1"
    );
    assert_eq!(t.get(GoNumber(10)).unwrap().dpt_choices, POW);
    ctx.meter_three_phase = false;
    ctx.meter_power = false;
    ctx.monitoring_in_operation = false;
    ctx.dpt_choices
        .insert("dlm.meter.current_dpt".into(), "7.012".into());
    let t = ObjectTable::build(spec, &ctx, &BTreeMap::new());
    let o10 = t.get(GoNumber(10)).unwrap();
    assert_eq!(
        (o10.name.as_str(), o10.dpt.as_str()),
        ("Smart meter current value", "7.012")
    );
    assert!(!t.contains(GoNumber(11)) && !t.contains(GoNumber(12)) && !t.contains(GoNumber(20)));
}

#[test]
fn capabilities_and_enablement_decide_charging_point_objects() {
    let spec = TableSpec::get();
    let mut ctx = everything(false, true);
    ctx.charging_points[1].capabilities.clear();
    ctx.charging_points[1].temperature_sending = false;
    ctx.charging_points[2].active = false;
    ctx.charging_points[0]
        .dpt_choices
        .insert("dpt_current".into(), "9.021".into());
    let t = ObjectTable::build(spec, &ctx, &BTreeMap::new());
    let cp2: Vec<u16> = t
        .objects()
        .iter()
        .filter(|o| o.charging_point.map(u8::from) == Some(2))
        .map(|o| o.number.0 - 100)
        .collect();
    assert_eq!(
        cp2,
        [0, 1, 2, 3, 5, 6, 11, 44, 45],
        "model-independent objects only"
    );
    assert!(
        t.objects()
            .iter()
            .all(|o| o.charging_point.map(u8::from) != Some(3)),
        "disabled charging point has no objects"
    );
    assert_eq!(t.get(GoNumber(62)).unwrap().dpt, "9.021");
    assert_eq!(t.get(GoNumber(112)), None);
}

#[test]
fn flags_parse_and_print() {
    assert_eq!("C-WTU-".parse::<Flags>().unwrap().to_string(), "C-WTU-");
    assert!("C-WT".parse::<Flags>().is_err());
    assert!("X-WTU-".parse::<Flags>().is_err());
    assert!("cap:teleport".parse::<Condition>().is_err());
}

#[test]
fn associations_link_and_the_first_address_sends() {
    let spec = TableSpec::get();
    let a: GroupAddress = "1/0/5".parse().unwrap();
    let b: GroupAddress = "0/1/0".parse().unwrap();
    let mut links = BTreeMap::new();
    links.insert(GoNumber(55), vec![a, b]);
    links.insert(GoNumber(105), vec![b]);
    let t = ObjectTable::build(spec, &everything(false, true), &links);
    assert_eq!(t.get(GoNumber(55)).unwrap().sending_address(), Some(a));
    let by_b: Vec<u16> = t.by_group_address(b).map(|o| o.number.0).collect();
    assert_eq!(by_b, [55, 105]);
}
