use super::*;
use crate::units::ChargePointId;
use proptest::prelude::*;

#[test]
fn embedded_model_loads() {
    let m = ParamModel::get();
    assert!(m.general.len() >= 30);
    assert!(m.charging_point.len() >= 40);
}

#[test]
fn application_version_is_major_minor_in_nibbles() {
    assert_eq!(ParamModel::get().application.version_byte(), Some(0x01));
    let v = |s: &str| {
        Application {
            version: s.to_owned(),
            manufacturer_id: 0x00FA,
            application_number: 1,
            order_number: String::new(),
        }
        .version_byte()
    };
    assert_eq!(v("15.3"), Some(0xF3));
    for bad in ["16.0", "1", "1.x", "", "1.2.3", "-1.0"] {
        assert_eq!(v(bad), None, "{bad}");
    }
    let broken = PARAMETERS_TOML.replacen("version = \"0.1\"", "version = \"1.16\"", 1);
    assert!(matches!(
        ParamModel::parse(&broken),
        Err(ModelError::Param { key, .. }) if key == "application.version"
    ));
}

/// The spec's compatibility rule (ch. 8.4.2): the main versions of the firmware and of the
/// application program are equal, so the product database this firmware generates fits it.
#[test]
fn firmware_and_application_main_versions_are_equal() {
    let app = &ParamModel::get().application;
    assert!(
        app.compatible_with(env!("CARGO_PKG_VERSION")),
        "application {} vs firmware {}",
        app.version,
        env!("CARGO_PKG_VERSION")
    );
    let v = |s: &str| Application {
        version: s.to_owned(),
        manufacturer_id: 0x00FA,
        application_number: 1,
        order_number: String::new(),
    };
    assert!(v("2.0").compatible_with("2.3"));
    assert!(v("2.0").compatible_with("2.3.1"));
    assert!(!v("2.0").compatible_with("3.0"));
    assert!(!v("2.0").compatible_with("x"));
}

#[test]
fn application_id_is_manufacturer_number_and_version() {
    let app = &ParamModel::get().application;
    assert_eq!(app.id_bytes(), Some([0x00, 0xFA, 0xEC, 0x01, 0x01]));
}

/// The `when` conditions parse and name parameters of their scope with valid values.
#[test]
fn when_conditions_are_checked() {
    let ok: ShowIf = "meter.kind = model | manual".parse().unwrap();
    assert_eq!(
        ok,
        ShowIf::Value {
            key: "meter.kind".to_owned(),
            values: vec!["model".into(), "manual".into()],
            negate: false
        }
    );
    assert_eq!(
        "model != none"
            .parse::<ShowIf>()
            .map(|c| matches!(c, ShowIf::Value { negate: true, .. })),
        Ok(true)
    );
    assert!("cap:flying".parse::<ShowIf>().is_err());
    let broken = PARAMETERS_TOML.replacen(
        "when = [\"ip.mode = static\"]",
        "when = [\"ip.mode = sometimes\"]",
        1,
    );
    assert!(
        matches!(ParamModel::parse(&broken), Err(ModelError::Param { key, .. }) if key == "ip.address")
    );
    let broken =
        PARAMETERS_TOML.replacen("when = [\"ip.mode = static\"]", "when = [\"cap:rfid\"]", 1);
    assert!(ParamModel::parse(&broken).is_err());
}

/// Every parameter lies inside its region and no two overlap: the layout ETS writes is sound.
#[test]
fn memory_layout_has_no_overlaps() {
    let m = ParamModel::get();
    let mut cells: Vec<(usize, usize, String)> = Vec::new();
    for p in &m.general {
        assert!(
            p.offset + p.size <= m.memory.charging_point_base,
            "{} leaves the general region",
            p.key
        );
        cells.push((p.offset, p.offset + p.size, p.key.clone()));
    }
    for p in &m.charging_point {
        assert!(
            p.offset + p.size <= m.memory.charging_point_stride,
            "{} leaves its block",
            p.key
        );
    }
    for cp in ChargePointId::all() {
        let base = m.memory.block_base(cp.index());
        for p in &m.charging_point {
            cells.push((
                base + p.offset,
                base + p.offset + p.size,
                format!("cp{cp}.{}", p.key),
            ));
        }
    }
    cells.sort();
    for pair in cells.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "{} overlaps {}",
            pair[0].2,
            pair[1].2
        );
    }
    assert!(cells.last().unwrap().1 <= m.memory.size);
}

#[test]
fn keys_are_unique() {
    let m = ParamModel::get();
    let mut keys: Vec<&str> = m.general.iter().map(|p| p.key.as_str()).collect();
    keys.sort_unstable();
    let n = keys.len();
    keys.dedup();
    assert_eq!(n, keys.len());
}

#[test]
fn defaults_round_trip_through_memory() {
    let set = ParamSet::defaults();
    let mem = set.to_memory();
    assert_eq!(mem.len(), ParamModel::get().memory.size);
    assert_eq!(ParamSet::from_memory(&mem).unwrap(), set);
}

#[test]
fn memory_rejects_bad_cells_with_offset_and_key() {
    let mut mem = ParamSet::defaults().to_memory();
    // dlm.enabled at 0x00 must be 0 or 1.
    mem[0] = 7;
    let err = ParamSet::from_memory(&mem).unwrap_err();
    assert!(
        err.to_string().contains("0x000") && err.to_string().contains("dlm.enabled"),
        "{err}"
    );
    // wrong size
    assert!(matches!(
        ParamSet::from_memory(&[0; 3]),
        Err(ParamError::MemorySize { .. })
    ));
    // model code that does not exist in charging point 2's block
    let mut mem = ParamSet::defaults().to_memory();
    let m = ParamModel::get();
    let model_offset =
        m.memory.block_base(1) + m.charging_point[m.cp_index("model").unwrap()].offset;
    mem[model_offset] = 250;
    let err = ParamSet::from_memory(&mem).unwrap_err();
    assert!(err.to_string().contains("charging_point.2.model"), "{err}");
}

#[test]
fn toml_conversion_checks_range_type_and_multiples() {
    let m = ParamModel::get();
    let fuse = &m.general[m.general_index("dlm.overcurrent_protection").unwrap()];
    assert_eq!(
        fuse.from_toml(&toml::Value::Integer(35)),
        Ok(ParamValue::Int(35))
    );
    assert!(
        fuse.from_toml(&toml::Value::Integer(5))
            .unwrap_err()
            .contains("out of range 6..=630 A")
    );
    assert!(fuse.from_toml(&toml::Value::String("35".into())).is_err());
    assert!(fuse.from_toml(&toml::Value::Float(35.5)).is_err());
    let ramp = &m.general[m.general_index("dlm.ramp_up_rate").unwrap()];
    assert_eq!(
        ramp.from_toml(&toml::Value::Float(0.3)),
        Ok(ParamValue::Int(3))
    );
    assert_eq!(ramp.to_toml(&ParamValue::Int(3)), toml::Value::Float(0.3));
    assert!(
        ramp.from_toml(&toml::Value::Float(0.35))
            .unwrap_err()
            .contains("multiple")
    );
    let baud = &m.general[m.general_index("rs485.baud").unwrap()];
    assert_eq!(
        baud.from_toml(&toml::Value::Integer(9600)),
        Ok(ParamValue::Code(3))
    );
    assert!(
        baud.from_toml(&toml::Value::Integer(9601))
            .unwrap_err()
            .contains("one of")
    );
    let model = &m.charging_point[m.cp_index("model").unwrap()];
    assert!(
        model
            .from_toml(&toml::Value::String("tesla".into()))
            .unwrap_err()
            .contains("keba-p30")
    );
}

/// A random valid value for a spec.
fn arb_value(spec: &'static ParamSpec) -> BoxedStrategy<ParamValue> {
    match spec.kind {
        ParamKind::Bool => any::<bool>().prop_map(ParamValue::Bool).boxed(),
        ParamKind::Uint | ParamKind::Int => {
            let (lo, hi) = spec.raw_bounds();
            (lo..=hi).prop_map(ParamValue::Int).boxed()
        }
        ParamKind::Enum => {
            let codes: Vec<u8> = spec.values.iter().map(|v| v.code).collect();
            proptest::sample::select(codes)
                .prop_map(ParamValue::Code)
                .boxed()
        }
        ParamKind::ChargerModel => {
            let mut codes: Vec<u8> = crate::catalog::charger_models()
                .iter()
                .map(|m| m.code)
                .collect();
            codes.push(0);
            proptest::sample::select(codes)
                .prop_map(ParamValue::Code)
                .boxed()
        }
        ParamKind::MeterModel => {
            let mut codes: Vec<u8> = crate::catalog::meter_models()
                .iter()
                .map(|m| m.code)
                .collect();
            codes.push(0);
            proptest::sample::select(codes)
                .prop_map(ParamValue::Code)
                .boxed()
        }
        ParamKind::Ipv4 => any::<[u8; 4]>()
            .prop_map(|o| ParamValue::Ipv4(o.into()))
            .boxed(),
        ParamKind::Register => prop_oneof![Just(None), (0u16..u16::MAX).prop_map(Some)]
            .prop_map(ParamValue::Register)
            .boxed(),
    }
}

/// A random, fully valid parameter set (used by config round-trip tests too).
pub(crate) fn arb_param_set() -> impl Strategy<Value = ParamSet> {
    let m = ParamModel::get();
    let general: Vec<_> = m.general.iter().map(arb_value).collect();
    let block: Vec<_> = m.charging_point.iter().map(arb_value).collect();
    let blocks = proptest::collection::vec(block, 5);
    (general, blocks).prop_map(|(general, blocks)| {
        let mut set = ParamSet::defaults();
        for (spec, v) in ParamModel::get().general.iter().zip(general) {
            set.set(&spec.key, v).unwrap();
        }
        for (cp, block) in ChargePointId::all().zip(blocks) {
            for (spec, v) in ParamModel::get().charging_point.iter().zip(block) {
                set.set_cp(cp, &spec.key, v).unwrap();
            }
        }
        set
    })
}

proptest! {
    #[test]
    fn any_valid_set_round_trips_through_memory(set in arb_param_set()) {
        prop_assert_eq!(ParamSet::from_memory(&set.to_memory()).unwrap(), set);
    }

    #[test]
    fn any_valid_value_round_trips_through_toml(set in arb_param_set()) {
        for (spec, v) in set.general() {
            prop_assert_eq!(spec.from_toml(&spec.to_toml(&v)), Ok(v), "{}", spec.key);
        }
        for (spec, v) in set.charging_point(ChargePointId::new(3).unwrap()) {
            prop_assert_eq!(spec.from_toml(&spec.to_toml(&v)), Ok(v), "{}", spec.key);
        }
    }

    #[test]
    fn arbitrary_memory_never_panics(bytes in proptest::collection::vec(any::<u8>(), 768)) {
        let _ = ParamSet::from_memory(&bytes);
    }
}

#[test]
fn the_order_number_fits_the_device_order_info() {
    let app = &ParamModel::get().application;
    assert!(
        app.order_number.is_ascii() && app.order_number.len() <= 10,
        "PID 15 (order info) holds 10 bytes: {:?}",
        app.order_number
    );
    assert_eq!(
        &app.order_info()[..app.order_number.len()],
        app.order_number.as_bytes()
    );
    assert!(app.id_bytes().is_some(), "the application id is complete");
}
