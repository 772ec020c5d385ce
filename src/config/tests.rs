use super::*;
use crate::etsdb::tests::arb_param_set;
use crate::faults::FaultCode;
use crate::units::Phase;
use proptest::prelude::*;

const FIVE: &str = include_str!("../../examples/five-chargers.toml");
const SINGLE: &str = include_str!("../../examples/single-charger.toml");

#[test]
fn examples_load() {
    let five = file::parse(FIVE, "five").unwrap();
    assert!(five.dlm.enabled);
    assert_eq!(
        five.charging_points
            .iter()
            .filter(|c| c.is_active())
            .count(),
        5
    );
    assert_eq!(five.dlm.budget(), Current::from_amps(32));
    assert_eq!(five.charging_points[4].interface, Interface::Rs485);
    assert_eq!(
        five.charging_points[3].rotation.grid_phase(0),
        Some(Phase::L2)
    );
    assert!(
        validate::validate(&five).is_empty(),
        "{:?}",
        validate::validate(&five)
    );
    let single = file::parse(SINGLE, "single").unwrap();
    assert!(!single.dlm.enabled);
    assert!(validate::validate(&single).is_empty());
}

#[test]
fn load_save_load_is_unchanged() {
    for text in [FIVE, SINGLE, ""] {
        let a = file::parse(text, "a").unwrap();
        let saved = file::to_string(&a).unwrap();
        let b = file::parse(&saved, "saved").unwrap_or_else(|e| panic!("{e}\n{saved}"));
        assert_eq!(a, b);
        assert_eq!(file::to_string(&b).unwrap(), saved, "saving is stable");
    }
}

#[test]
fn defaults_build() {
    let d = Config::defaults();
    assert!(!d.dlm.enabled);
    assert_eq!(d.knx.individual_address, IndividualAddress::UNCONFIGURED);
    assert_eq!(d.to_params().unwrap(), ParamSet::defaults());
}

#[test]
fn syntax_errors_give_line_and_column() {
    let err = file::parse("[dlm]\nenabled = true\noops =\n", "f.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("f.toml:3:"), "{err}");
}

#[test]
fn unknown_keys_and_bad_values_give_line_column_and_key() {
    let text = "[dlm]\nenabld = true\noverload = 1\n\n[charging_point.2]\nmax_current = 99\nmodel = \"tesla\"\n\n[charging_point.7]\nenabled = true\n";
    let file::LoadError::Invalid { problems, .. } = file::parse(text, "f.toml").unwrap_err() else {
        panic!()
    };
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 5, "{shown:#?}");
    assert!(
        shown[0].starts_with("2:1: `dlm.enabld`: unknown key"),
        "{}",
        shown[0]
    );
    assert!(
        shown[2].starts_with("6:15: `charging_point.2.max_current`: 99: out of range 6..=63 A"),
        "{}",
        shown[2]
    );
    assert!(
        shown[3].contains("unknown charging-point model `tesla`"),
        "{}",
        shown[3]
    );
    assert!(
        shown[4].starts_with("10:1: `charging_point.7.enabled`: charging point `7` does not exist"),
        "{}",
        shown[4]
    );
}

#[test]
fn group_address_errors() {
    for (text, needle) in [
        (
            "[group_addresses]\n57 = [\"1/0/0\"]\n",
            "there is no group object 57",
        ),
        (
            "[group_addresses]\n55 = [\"1/0/0\", \"1/0/0\"]\n",
            "listed twice",
        ),
        ("[group_addresses]\n55 = [\"1/9/0\"]\n", "middle group 9"),
        ("[group_addresses]\n55 = [5]\n", "not a group address"),
        (
            "[group_addresses]\nfoo = [\"1/0/0\"]\n",
            "expected `<object number>",
        ),
    ] {
        let err = file::parse(text, "f").unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
        assert!(err.starts_with("f:2:"), "{err}");
    }
    let ok = file::parse("[group_addresses]\n55 = \"1/0/5\"\n", "f").unwrap();
    assert_eq!(
        ok.group_addresses[&GoNumber(55)],
        vec!["1/0/5".parse::<GroupAddress>().unwrap()]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Config and ParamSet are two views of the same thing: nothing is lost either way.
    #[test]
    fn config_and_params_are_a_bijection(set in arb_param_set()) {
        let config = Config::from_params(&set, IndividualAddress::UNCONFIGURED, BTreeMap::new()).unwrap();
        prop_assert_eq!(config.to_params().unwrap(), set);
    }

    /// Any valid configuration survives save → load.
    #[test]
    fn any_config_round_trips_through_the_file(set in arb_param_set(), ia in any::<u16>()) {
        let mut links = BTreeMap::new();
        links.insert(GoNumber(55), vec![GroupAddress::from_raw(0x0801), GroupAddress::from_raw(0x0100)]);
        let config = Config::from_params(&set, IndividualAddress::from_raw(ia), links).unwrap();
        let text = file::to_string(&config).unwrap();
        let back = file::parse(&text, "saved").unwrap();
        prop_assert_eq!(back, config);
    }

    /// Arbitrary text never panics the loader.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = file::parse(&text, "x");
    }
}

#[test]
fn knx_link_is_read_checked_and_saved() {
    let c = file::parse("[knx]\nlink = \"server://127.0.0.1:3671\"\n", "f").unwrap();
    assert_eq!(
        c.knx.link.as_ref().map(ToString::to_string),
        Some("server://127.0.0.1:3671".to_owned())
    );
    let saved = file::to_string(&c).unwrap();
    assert_eq!(file::parse(&saved, "saved").unwrap(), c);
    let err = file::parse("[knx]\nlink = \"udp://1.2.3.4\"\n", "f")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("f:2:8: `knx.link`"), "{err}");
}

#[test]
fn every_tcp_model_has_a_driver_and_retrofit_meters_follow_the_metering() {
    let faults = |text: &str| validate::validate(&file::parse(text, "t").unwrap());
    let cp = "[charging_point.1]\nenabled = true\nip = \"10.0.0.1\"\n";
    let meter = "[charging_point.1.meter]\nkind = \"model\"\nmodel = \"carlo-gavazzi-em24\"\nip = \"10.0.0.50\"\n";
    for id in [
        "phoenix-charx",
        "schneider-evlink-pro-ac",
        "keba-p30",
        "alfen-eve",
    ] {
        let f = faults(&format!("{cp}model = \"{id}\"\n"));
        assert!(f.is_empty(), "{id}: {f:?}");
    }
    // A model without integrated metering takes a retrofit meter; an integrated one does not.
    assert!(faults(&format!("{cp}model = \"phoenix-ev-cc\"\n{meter}")).is_empty());
    let f = faults(&format!("{cp}model = \"keba-p30\"\n{meter}"));
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].code, FaultCode::ConfEMeter);
}

/// The DLM parameter defaults (docs/dlm.md): unbalanced-load cap off (20 A once switched
/// on), strategy "interrupt-all" (the spec), queue rotation every 900 s, minimum on/off time
/// 300 s — read from a parsed configuration that sets none of them.
#[test]
fn dlm_parameter_defaults_are_cap_off_interrupt_all_rotation_900_s_and_min_switch_300_s() {
    let d = file::parse("[dlm]\nenabled = true\n", "defaults")
        .unwrap()
        .dlm;
    assert_eq!(d.unbalanced_load_limit, None, "unbalanced-load cap off");
    assert_eq!(d.overcurrent_strategy, OvercurrentStrategy::InterruptAll);
    assert_eq!(d.rotation_interval, Duration::from_secs(900));
    assert_eq!(d.min_switch_time, Duration::from_secs(300));
    let on = file::parse(
        "[dlm]\nenabled = true\n[dlm.unbalanced_load]\nenabled = true\n",
        "on",
    )
    .unwrap()
    .dlm;
    assert_eq!(
        on.unbalanced_load_limit,
        Some(Current::from_amps(20)),
        "20 A when on"
    );
}

/// Spec ch. 11, Conf Charger: "an IP address is being used several times" — the IP alone,
/// whatever port and unit id; loopback is exempt (only simulators live there).
#[test]
fn an_ip_address_used_twice_is_conf_charger_whatever_port_and_unit() {
    let faults = |text: &str| validate::validate(&file::parse(text, "t").unwrap());
    let two = |ip: &str, port2: u16| {
        format!(
            "[charging_point.1]\nenabled = true\nmodel = \"alfen-eve\"\nip = \"{ip}\"\nunit_id = 1\n\
             [charging_point.2]\nenabled = true\nmodel = \"alfen-eve\"\nip = \"{ip}\"\nport = {port2}\nunit_id = 2\n"
        )
    };
    let f = faults(&two("10.0.0.7", 503));
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].code, FaultCode::ConfCharger);
    assert!(f[0].message.contains("IP address 10.0.0.7"), "{f:?}");
    assert!(faults(&two("127.0.0.1", 503)).is_empty());
}

/// 1-/3-phase switching is off unless the installer allows it per charging point.
#[test]
fn phase_switch_is_off_by_default_and_allowed_per_charging_point() {
    let five = file::parse(FIVE, "five").unwrap();
    assert!(five.charging_points.iter().all(|c| !c.phase_switch));
    let text = "[charging_point.1]\nenabled = true\nmodel = \"keba-p30\"\nip = \"10.0.0.1\"\nphase_switch = true\n";
    let c = file::parse(text, "t").unwrap();
    assert!(c.charging_points[0].phase_switch);
    assert!(!c.charging_points[1].phase_switch);
}
