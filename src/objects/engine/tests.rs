use super::*;
use crate::config::file;
use crate::knx::dpt::TimeOfDay;

const FIVE: &str = include_str!("../../../examples/five-chargers.toml");

fn engine(policy: SendPolicy) -> Engine {
    let config = file::parse(FIVE, "five").unwrap();
    Engine::new(config.object_table(), policy, "1.1.10".parse().unwrap()).unwrap()
}

fn ga(s: &str) -> GroupAddress {
    s.parse().unwrap()
}

fn frame(dest: &str, apdu: Apdu) -> LData {
    LData::new(
        LDataService::Ind,
        "1.1.99".parse().unwrap(),
        Destination::Group(ga(dest)),
        Tpdu::Data(apdu),
    )
}

fn sent(e: &mut Engine, now: Instant) -> Vec<(GroupAddress, Apdu)> {
    std::iter::from_fn(|| e.poll_transmit(now))
        .map(|f| match (f.destination, f.tpdu) {
            (Destination::Group(g), Tpdu::Data(a)) => (g, a),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn write_is_decoded_with_the_objects_dpt_on_every_linked_address() {
    let mut e = engine(SendPolicy::default());
    let t = Instant::now();
    let got = e.on_frame(&frame("1/0/5", Apdu::GroupValueWrite(Payload::Short(1))), t);
    assert_eq!(
        got,
        vec![Received {
            object: GoNumber(55),
            value: Value::Bool(true)
        }]
    );
    // 0/1/0 is linked to every charging point's interruption (55, 105, …).
    let got = e.on_frame(&frame("0/1/0", Apdu::GroupValueWrite(Payload::Short(0))), t);
    let objects: Vec<u16> = got.iter().map(|r| r.object.0).collect();
    assert_eq!(objects, [55, 105, 155, 205, 255]);
    // Object 10 is a 14.019 current: 4-byte IEEE float in A.
    let got = e.on_frame(
        &frame(
            "0/0/10",
            Apdu::GroupValueWrite(Payload::Long(21.5f32.to_be_bytes().to_vec())),
        ),
        t,
    );
    assert_eq!(
        got,
        vec![Received {
            object: GoNumber(10),
            value: Value::Current(Current::from_milliamps(21_500))
        }]
    );
}

#[test]
fn writes_without_w_flag_and_bad_payloads_are_not_applied() {
    let mut e = engine(SendPolicy::default());
    let t = Instant::now();
    // 56 is CR-T--: no W.
    assert!(
        e.on_frame(&frame("1/0/6", Apdu::GroupValueWrite(Payload::Short(1))), t)
            .is_empty()
    );
    // 10 expects 4 bytes; 2 bytes are rejected and counted.
    assert!(
        e.on_frame(
            &frame(
                "0/0/10",
                Apdu::GroupValueWrite(Payload::Long(vec![0x0c, 0x1a]))
            ),
            t
        )
        .is_empty()
    );
    // NaN is not a current.
    assert!(
        e.on_frame(
            &frame(
                "0/0/10",
                Apdu::GroupValueWrite(Payload::Long(f32::NAN.to_be_bytes().to_vec()))
            ),
            t
        )
        .is_empty()
    );
    assert_eq!(e.stats().rejected, 2);
    assert_eq!(e.value(GoNumber(10)), None);
    // Unlinked address: nothing.
    assert!(
        e.on_frame(&frame("9/0/0", Apdu::GroupValueWrite(Payload::Short(1))), t)
            .is_empty()
    );
}

#[test]
fn responses_update_only_objects_with_the_u_flag() {
    let mut e = engine(SendPolicy::default());
    let t = Instant::now();
    let v = Payload::Long(3.0f32.to_be_bytes().to_vec());
    assert_eq!(
        e.on_frame(&frame("0/0/11", Apdu::GroupValueResponse(v)), t)
            .len(),
        1,
        "11 is C-WTUI"
    );
    assert!(
        e.on_frame(
            &frame("0/0/13", Apdu::GroupValueResponse(Payload::Short(1))),
            t
        )
        .is_empty(),
        "13 is C-W---"
    );
}

#[test]
fn reads_are_answered_with_the_current_value_on_the_read_address() {
    let mut e = engine(SendPolicy::default());
    let t = Instant::now();
    assert!(
        e.on_frame(&frame("1/0/6", Apdu::GroupValueRead), t)
            .is_empty()
    );
    assert_eq!(
        sent(&mut e, t),
        vec![(ga("1/0/6"), Apdu::GroupValueResponse(Payload::Short(0)))],
        "no value yet: the DPT's initial value"
    );
    e.set(GoNumber(56), Value::Bool(true), t);
    let _ = sent(&mut e, t);
    e.on_frame(&frame("1/0/6", Apdu::GroupValueRead), t);
    assert_eq!(
        sent(&mut e, t),
        vec![(ga("1/0/6"), Apdu::GroupValueResponse(Payload::Short(1)))]
    );
    // Before any value every R object answers with its DPT's initial value: "" for the
    // last-fault text (16.001), 00:00:00 without a day for a time (10.001).
    e.on_frame(&frame("0/0/9", Apdu::GroupValueRead), t);
    e.on_frame(&frame("1/0/27", Apdu::GroupValueRead), t);
    assert_eq!(
        sent(&mut e, t),
        vec![
            (
                ga("0/0/9"),
                Apdu::GroupValueResponse(Payload::Long(vec![0; 14]))
            ),
            (
                ga("1/0/27"),
                Apdu::GroupValueResponse(Payload::Long(vec![0; 3]))
            ),
        ]
    );
    // Objects without R (55 is C-WTU-) do not answer.
    e.set(GoNumber(55), Value::Bool(true), t);
    let _ = sent(&mut e, t);
    e.on_frame(&frame("1/0/5", Apdu::GroupValueRead), t);
    assert!(sent(&mut e, t).is_empty());
}

#[test]
fn transmit_on_change_on_the_sending_address() {
    let mut e = engine(SendPolicy::default());
    let t = Instant::now();
    e.set(GoNumber(9), Value::Text("Conf Charger".into()), t);
    let mut bytes = b"Conf Charger".to_vec();
    bytes.resize(14, 0);
    assert_eq!(
        sent(&mut e, t),
        vec![(ga("0/0/9"), Apdu::GroupValueWrite(Payload::Long(bytes)))]
    );
    e.set(GoNumber(9), Value::Text("Conf Charger".into()), t);
    assert!(sent(&mut e, t).is_empty(), "unchanged: not sent again");
    // 55 sends on its first address only.
    e.set(GoNumber(55), Value::Bool(true), t);
    assert_eq!(
        sent(&mut e, t),
        vec![(ga("1/0/5"), Apdu::GroupValueWrite(Payload::Short(1)))]
    );
    // 10 has T but is a received value: setting it from inside still sends (C-WTUI).
    // 13 has no T: never sent.
    e.set(GoNumber(13), Value::Bool(true), t);
    assert!(sent(&mut e, t).is_empty());
}

#[test]
fn measured_values_need_the_minimum_change() {
    let mut e = engine(SendPolicy::default());
    let t = Instant::now();
    let amps = |ma| Value::Current(Current::from_milliamps(ma));
    e.set(GoNumber(62), amps(10_000), t);
    assert_eq!(sent(&mut e, t).len(), 1);
    e.set(GoNumber(62), amps(10_300), t);
    assert!(sent(&mut e, t).is_empty(), "0.3 A < 0.5 A");
    e.set(GoNumber(62), amps(10_600), t);
    assert_eq!(
        sent(&mut e, t).len(),
        1,
        "0.6 A against the last sent 10.0 A"
    );
    assert_eq!(e.value(GoNumber(62)), Some(&amps(10_600)));
}

#[test]
fn limiter_caps_the_rate_and_sends_faults_first() {
    let mut e = engine(SendPolicy::default());
    let t0 = Instant::now();
    // 40 measurement changes and then one fault.
    for cp in 1..=5u16 {
        for off in [12, 13, 14, 15, 16, 20, 24, 25] {
            if e.table().contains(GoNumber(50 * cp + off)) {
                let v = if off >= 20 {
                    Value::Energy(Energy::from_watt_hours(1000))
                } else if off == 16 {
                    Value::Power(Power::from_watts(500))
                } else {
                    Value::Current(Current::from_amps(6))
                };
                e.set(GoNumber(50 * cp + off), v, t0);
            }
        }
    }
    e.set(GoNumber(8), Value::Bool(true), t0);
    let queued = e.queued();
    assert!(queued > 30, "{queued}");
    let first = sent(&mut e, t0);
    assert_eq!(first.len(), 20, "burst of one second at 20 telegrams/s");
    assert_eq!(first[0].0, ga("0/0/8"), "the fault goes first");
    let wake = e.poll_timeout(t0).unwrap();
    assert_eq!(wake - t0, Duration::from_millis(50));
    assert_eq!(sent(&mut e, wake).len(), 1);
    assert!(sent(&mut e, wake).is_empty());
    let later = t0 + Duration::from_secs(10);
    assert_eq!(sent(&mut e, later).len(), queued - 21);
    assert_eq!(e.poll_timeout(later), None);
}

#[test]
fn stale_queued_values_are_replaced_not_queued_twice() {
    let mut e = engine(SendPolicy {
        max_rate: 1,
        ..SendPolicy::default()
    });
    let t = Instant::now();
    e.set(GoNumber(8), Value::Bool(true), t);
    let _ = sent(&mut e, t); // uses the one token
    for ma in (6_000..16_000).step_by(1_000) {
        e.set(GoNumber(62), Value::Current(Current::from_milliamps(ma)), t);
    }
    assert_eq!(e.queued(), 1);
    assert_eq!(e.stats().coalesced, 9);
    let out = sent(&mut e, t + Duration::from_secs(1));
    assert_eq!(
        out,
        vec![(
            ga("1/0/12"),
            Apdu::GroupValueWrite(Payload::Long(15.0f32.to_be_bytes().to_vec()))
        )]
    );
}

#[test]
fn cyclic_sending_repeats_measured_values() {
    let mut e = engine(SendPolicy {
        cyclic: Some(Duration::from_secs(60)),
        ..SendPolicy::default()
    });
    let t = Instant::now();
    e.set(GoNumber(62), Value::Current(Current::from_amps(8)), t);
    e.set(GoNumber(51), Value::Bool(true), t);
    assert_eq!(sent(&mut e, t).len(), 2);
    assert_eq!(e.poll_timeout(t), Some(t + Duration::from_secs(60)));
    let again = sent(&mut e, t + Duration::from_secs(60));
    assert_eq!(
        again.iter().map(|(g, _)| *g).collect::<Vec<_>>(),
        vec![ga("1/0/12")],
        "only measured values are cyclic"
    );
}

#[test]
fn init_reads_go_to_the_sending_address() {
    let mut e = engine(SendPolicy::default());
    let t = Instant::now();
    e.request_read(GoNumber(10));
    assert_eq!(sent(&mut e, t), vec![(ga("0/0/10"), Apdu::GroupValueRead)]);
}

#[test]
fn dpt_conversions_keep_units() {
    let ma = |n| Value::Current(Current::from_milliamps(n));
    let exact = |v| Ok((v, Fit::Exact));
    assert_eq!(
        to_dpt(Dpt::ValueCurr, &ma(16_000)),
        exact(DptValue::Float(16_000.0))
    );
    assert_eq!(
        to_dpt(Dpt::UElCurrentMa, &ma(16_000)),
        exact(DptValue::U16(16_000))
    );
    assert_eq!(
        to_dpt(
            Dpt::ActiveEnergyKwh,
            &Value::Energy(Energy::from_watt_hours(12_600))
        ),
        exact(DptValue::I32(13))
    );
    assert_eq!(
        to_dpt(Dpt::PowerKw, &Value::Power(Power::from_watts(11_000))),
        exact(DptValue::Float(11.0))
    );
    assert_eq!(
        from_dpt(Dpt::ActiveEnergyKwh, &DptValue::I32(2)),
        Ok(Value::Energy(Energy::from_watt_hours(2000)))
    );
    assert_eq!(
        from_dpt(Dpt::PowerKw, &DptValue::Float(1.5)),
        Ok(Value::Power(Power::from_watts(1500)))
    );
    assert!(to_dpt(Dpt::Bool, &ma(1)).is_err());
    let t = TimeOfDay::new(None, 7, 30, 0).unwrap();
    assert_eq!(
        to_dpt(Dpt::TimeOfDay, &Value::TimeOfDay(t)),
        exact(DptValue::TimeOfDay(t))
    );
    assert_eq!(
        to_dpt(Dpt::StringLatin1, &Value::Text("0123456789abcdefgh".into())),
        exact(DptValue::Text("0123456789abcd".into()))
    );
    assert_eq!(
        to_dpt(Dpt::StringLatin1, &Value::Text("a\0b€".into())),
        exact(DptValue::Text("a?b?".into()))
    );
}

#[test]
fn values_beyond_the_dpt_range_are_sent_as_its_edge() {
    let ma = |n| Value::Current(Current::from_milliamps(n));
    let clamped = |v| Ok((v, Fit::Clamped));
    // 7.012: 0..=65 535 mA; the edges themselves fit.
    assert_eq!(
        to_dpt(Dpt::UElCurrentMa, &ma(65_535)),
        Ok((DptValue::U16(65_535), Fit::Exact))
    );
    assert_eq!(
        to_dpt(Dpt::UElCurrentMa, &ma(70_000)),
        clamped(DptValue::U16(65_535))
    );
    assert_eq!(
        to_dpt(Dpt::UElCurrentMa, &ma(-1)),
        clamped(DptValue::U16(0))
    );
    // DPT 9: the largest sendable value is 670 433.28 (670 760.96 would be 0x7FFF).
    assert_eq!(
        to_dpt(Dpt::ValueCurr, &ma(700_000)),
        clamped(DptValue::Float(dpt::F16_MAX_SENDABLE))
    );
    assert_eq!(
        to_dpt(
            Dpt::PowerKw,
            &Value::Power(Power::from_watts(1_000_000_000))
        ),
        clamped(DptValue::Float(dpt::F16_MAX_SENDABLE))
    );
    let celsius = |c: f64| Value::Temperature(Temperature::from_celsius_f64(c).unwrap());
    assert_eq!(
        to_dpt(Dpt::ValueTemp, &celsius(-273.0)),
        Ok((DptValue::Float(-273.0), Fit::Exact))
    );
    assert_eq!(
        to_dpt(Dpt::ValueTemp, &celsius(-300.0)),
        clamped(DptValue::Float(-273.0))
    );
    // DPT 13: i32.
    let wh = |w: f64| Value::Energy(Energy::from_watt_hours_f64(w).unwrap());
    assert_eq!(
        to_dpt(Dpt::ActiveEnergy, &wh(2_147_483_647.0)),
        Ok((DptValue::I32(i32::MAX), Fit::Exact))
    );
    assert_eq!(
        to_dpt(Dpt::ActiveEnergy, &wh(3.0e9)),
        clamped(DptValue::I32(i32::MAX))
    );
    assert_eq!(
        to_dpt(Dpt::ActiveEnergyKwh, &wh(5.0e12)),
        clamped(DptValue::I32(i32::MAX))
    );
    // Every clamped value encodes.
    for (d, v) in [
        (Dpt::UElCurrentMa, ma(70_000)),
        (Dpt::ValueCurr, ma(700_000)),
        (Dpt::ValueTemp, celsius(-300.0)),
        (Dpt::ActiveEnergy, wh(3.0e9)),
    ] {
        let (sent, _) = to_dpt(d, &v).unwrap();
        assert!(dpt::encode(d, &sent).is_ok(), "{d} {sent:?}");
    }
}

#[test]
fn every_dpt_in_the_table_has_a_codec() {
    for o in crate::objects::TableSpec::get()
        .object
        .iter()
        .chain(&crate::objects::TableSpec::get().charging_point_object)
    {
        for d in o.dpts.iter().chain(o.variant.iter().flat_map(|v| &v.dpts)) {
            assert!(d.parse::<Dpt>().is_ok(), "{d}");
        }
    }
}

/// Object 82 of charging point 4 (232, internal temperature) with its own send mode: cyclic
/// only sends nothing on change and repeats at its own cycle; on change ignores the global
/// cycle.
#[test]
fn temperature_has_its_own_send_mode_and_cycle() {
    let temp = |c: i32| Value::Temperature(Temperature::from_celsius(c));
    let own = |on_change, cycle| SendPolicy {
        cyclic: Some(Duration::from_secs(60)),
        own: [(GoNumber(232), OwnSending { on_change, cycle })].into(),
        ..SendPolicy::default()
    };
    let t = Instant::now();
    // Cyclic every 10 s: silent on change, then every 10 s (not at the global 60 s).
    let mut e = engine(own(false, Some(Duration::from_secs(10))));
    e.set(GoNumber(232), temp(30), t);
    e.set(GoNumber(232), temp(45), t + Duration::from_secs(1));
    assert_eq!(sent(&mut e, t + Duration::from_secs(1)), vec![]);
    assert_eq!(e.poll_timeout(t), Some(t + Duration::from_secs(10)));
    let at10 = sent(&mut e, t + Duration::from_secs(10));
    assert_eq!(
        at10,
        vec![(
            ga("4/0/32"),
            Apdu::GroupValueWrite(Payload::Long(
                dpt::encode_f16(45.0).unwrap().to_be_bytes().to_vec()
            ))
        )]
    );
    assert_eq!(sent(&mut e, t + Duration::from_secs(19)), vec![]);
    assert_eq!(sent(&mut e, t + Duration::from_secs(20)).len(), 1);
    assert_eq!(
        sent(&mut e, t + Duration::from_secs(60)).len(),
        1,
        "its own cycle only"
    );
    // On change only: sent on change, never cyclically.
    let mut e = engine(own(true, None));
    e.set(GoNumber(232), temp(30), t);
    assert_eq!(sent(&mut e, t).len(), 1);
    e.set(GoNumber(232), temp(31), t);
    assert_eq!(sent(&mut e, t).len(), 1);
    assert_eq!(sent(&mut e, t + Duration::from_secs(600)), vec![]);
}

#[test]
fn a_new_table_takes_over_values_and_waiting_frames_without_sending_for_the_takeover() {
    let t = Instant::now();
    let mut old = engine(SendPolicy::default());
    old.set(GoNumber(2), Value::Bool(true), t);
    old.set(GoNumber(8), Value::Bool(true), t);
    let _ = old.on_frame(&frame("0/0/2", Apdu::GroupValueRead), t);
    let mut config = file::parse(FIVE, "five").unwrap();
    // Object 2 now sends on 7/2/2; charging point 5 is disabled: its objects go.
    config
        .group_addresses
        .insert(GoNumber(2), vec![ga("7/2/2")]);
    config.charging_points[4].enabled = false;
    let mut new = Engine::new(
        config.object_table(),
        SendPolicy::default(),
        "1.1.20".parse().unwrap(),
    )
    .unwrap();
    old.set(GoNumber(250), Value::U8(2), t);
    new.carry_over(old);
    assert_eq!(new.value(GoNumber(2)), Some(&Value::Bool(true)));
    assert_eq!(
        new.value(GoNumber(250)),
        None,
        "objects that went keep no value"
    );
    // The writes that were waiting go out on the new sending address; the response to a read
    // of 0/0/2 is dropped (object 2 is no longer linked to it).
    let out = sent(&mut new, t);
    assert!(
        out.contains(&(ga("7/2/2"), Apdu::GroupValueWrite(Payload::Short(1)))),
        "{out:?}"
    );
    assert!(out.iter().all(|(g, _)| *g != ga("0/0/2")), "{out:?}");
    // Nothing more: the takeover itself sends nothing.
    assert!(sent(&mut new, t + std::time::Duration::from_secs(5)).is_empty());
}
