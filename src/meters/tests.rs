//! Unit tests of the meter readers: golden register contents for every pre-configured model
//! and every manual-configuration option, over an in-memory Modbus device; decode of arbitrary
//! register contents never panics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unnecessary_wraps,
    clippy::cast_possible_truncation
)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::models::{Em24Variant, em24, m4m, pac2200, sdm630};
use super::settings::{ManualMeter, MeterDataType, RetrofitMeter};
use super::*;
use crate::catalog::meter_model;

/// An in-memory Modbus device that records its requests.
#[derive(Default)]
struct Mem {
    holding: BTreeMap<u16, u16>,
    input: BTreeMap<u16, u16>,
    requests: Vec<(Table, u16, u16)>,
    fail: Option<ModbusError>,
}

impl Mem {
    fn set(&mut self, table: Table, addr: u16, words: &[u16]) {
        let t = match table {
            Table::Holding => &mut self.holding,
            Table::Input => &mut self.input,
        };
        for (i, w) in words.iter().enumerate() {
            t.insert(addr + i as u16, *w);
        }
    }

    fn read(&mut self, table: Table, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        self.requests.push((table, addr, count));
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        let t = match table {
            Table::Holding => &self.holding,
            Table::Input => &self.input,
        };
        // Unset registers read as 0 here; the TCP simulators are strict about ranges.
        Ok((addr..addr + count)
            .map(|a| t.get(&a).copied().unwrap_or(0))
            .collect())
    }
}

impl Modbus for Mem {
    async fn read_holding(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        self.read(Table::Holding, addr, count)
    }
    async fn read_input(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        self.read(Table::Input, addr, count)
    }
    async fn write_single(&mut self, _: u16, _: u16) -> Result<(), ModbusError> {
        Err(ModbusError::Exception(1))
    }
    async fn write_multiple(&mut self, _: u16, _: &[u16]) -> Result<(), ModbusError> {
        Err(ModbusError::Exception(1))
    }
    async fn read_coils(&mut self, _: u16, _: u16) -> Result<Vec<bool>, ModbusError> {
        Err(ModbusError::Exception(1))
    }
    async fn write_coil(&mut self, _: u16, _: bool) -> Result<(), ModbusError> {
        Err(ModbusError::Exception(1))
    }
}

async fn read(map: MeterMap, mem: Mem) -> (Result<MeterReading, MeterError>, Mem) {
    let mut r = MeterReader::new(map, mem);
    let out = r.read().await;
    let MeterReader { modbus, .. } = r;
    (out, modbus)
}

fn amps(ma: [i32; 3]) -> Option<PerPhase<Current>> {
    Some(PerPhase(ma.map(Current::from_milliamps)))
}

fn watts(mw: [i64; 3]) -> Option<PerPhase<Power>> {
    Some(PerPhase(mw.map(Power::from_milliwatts)))
}

fn wh(mwh: i64) -> Option<Energy> {
    Some(Energy::from_milliwatt_hours(mwh))
}

// ---- pre-configured models ------------------------------------------------------------

#[tokio::test]
async fn em24_din_golden() {
    let mut m = Mem::default();
    // INT32 low word first. I: 16.123 A, 0.5 A, 70 A (0x0001_1170 mA = 70 000).
    m.set(
        Table::Input,
        12,
        &[0x3EFB, 0x0000, 0x01F4, 0x0000, 0x1170, 0x0001],
    );
    // P: 3680.0 W, −150.5 W (−1505 = 0xFFFF_FA1F), 0 W; Σ 3529.5 W.
    m.set(Table::Input, 18, &[0x8FC0, 0x0000, 0xFA1F, 0xFFFF, 0, 0]);
    m.set(Table::Input, 40, &[0x89DF, 0x0000]);
    // kWh(+) 0x0001_E240 = 123 456 × 0.1 kWh = 12 345.6 kWh.
    m.set(Table::Input, 62, &[0xE240, 0x0001]);
    m.set(Table::Input, 52, &[0xFFFF, 0xFFFF]); // E1's register: must not be used
    let (r, m) = read(em24(Em24Variant::Din), m).await;
    let r = r.unwrap();
    assert_eq!(r.currents, amps([16_123, 500, 70_000]));
    assert_eq!(r.power_phases, watts([3_680_000, -150_500, 0]));
    assert_eq!(r.power, Some(Power::from_milliwatts(3_529_500)));
    assert_eq!(r.energy_total, wh(12_345_600_000));
    assert_eq!(r.energy_phases, None);
    assert_eq!(r.fault, None);
    assert_eq!(m.requests, vec![(Table::Input, 12, 52)], "one request");
}

#[tokio::test]
async fn em24_ethernet_reads_energy_at_52() {
    let mut m = Mem::default();
    m.set(Table::Input, 52, &[0x3039, 0x0000]); // 12 345 × 0.1 kWh
    m.set(Table::Input, 62, &[0xFFFF, 0x7FFF]);
    let (r, m) = read(em24(Em24Variant::Ethernet), m).await;
    assert_eq!(r.unwrap().energy_total, wh(1_234_500_000));
    assert_eq!(m.requests, vec![(Table::Input, 12, 42)]);
}

#[tokio::test]
async fn pac2200_golden() {
    let mut m = Mem::default();
    m.set(Table::Holding, 13, &[0x4180, 0, 0x4184, 0, 0x40E8, 0]); // 16, 16.5, 7.25 A
    m.set(
        Table::Holding,
        25,
        &[0x4566, 0, 0xC316, 0x4000, 0x4366, 0x8000],
    ); // 3680, −150.25, 230.5 W
    m.set(Table::Holding, 65, &[0x4566, 0]); // Σ 3680 W (the meter's own sum is used)
    m.set(Table::Holding, 801, &[0x4132, 0xD687, 0, 0]); // 1 234 567 Wh (FLOAT64)
    let (r, m) = read(pac2200(), m).await;
    let r = r.unwrap();
    assert_eq!(r.currents, amps([16_000, 16_500, 7_250]));
    assert_eq!(r.power_phases, watts([3_680_000, -150_250, 230_500]));
    assert_eq!(r.power, Some(Power::from_watts(3680)));
    assert_eq!(r.energy_total, wh(1_234_567_000));
    assert_eq!(
        m.requests,
        vec![(Table::Holding, 13, 54), (Table::Holding, 801, 4)]
    );
}

#[tokio::test]
async fn pac2200_nan_is_comm() {
    let mut m = Mem::default();
    m.set(Table::Holding, 15, &[0x7FC0, 0x0000]); // NaN on I L2
    let (r, _) = read(pac2200(), m).await;
    let e = r.unwrap_err();
    assert!(matches!(e, MeterError::Implausible(_)), "{e:?}");
    assert_eq!(e.fault_code(), FaultCode::EMeterComm);
}

#[tokio::test]
async fn m4m_golden() {
    let mut m = Mem::default();
    // I (U32, 0.01 A): 16.00, 15.99, 0.
    m.set(Table::Holding, 0x5B0C, &[0, 1600, 0, 1599, 0, 0]);
    // P Σ (S32, 0.01 W) 7 358.01 W; P L1..L3: 3 680.00, −1.99, 3 680.00.
    m.set(Table::Holding, 0x5B14, &[0x000B, 0x3A39]);
    m.set(
        Table::Holding,
        0x5B16,
        &[0x0005, 0x9D80, 0xFFFF, 0xFF39, 0x0005, 0x9D80],
    );
    // Energy (U64, 0.01 kWh): total 1 234.56 kWh, phases 1, 2, 0x1_0000_0000 × 0.01 kWh.
    m.set(Table::Holding, 0x5000, &[0, 0, 0x0001, 0xE240]);
    m.set(
        Table::Holding,
        0x5460,
        &[0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 0, 0],
    );
    let (r, m) = read(m4m(), m).await;
    let r = r.unwrap();
    assert_eq!(r.currents, amps([16_000, 15_990, 0]));
    assert_eq!(r.power, Some(Power::from_milliwatts(7_358_010)));
    assert_eq!(r.power_phases, watts([3_680_000, -1_990, 3_680_000]));
    assert_eq!(r.energy_total, wh(1_234_560_000));
    assert_eq!(
        r.energy_phases,
        Some(PerPhase([
            Energy::from_watt_hours(10),
            Energy::from_watt_hours(20),
            Energy::from_milliwatt_hours(42_949_672_960_000)
        ]))
    );
    assert_eq!(
        m.requests,
        vec![
            (Table::Holding, 0x5000, 4),
            (Table::Holding, 0x5460, 12),
            (Table::Holding, 0x5B0C, 16)
        ]
    );
}

#[tokio::test]
async fn m4m_invalid_markers_are_comm() {
    for (addr, words) in [
        (0x5B0E, vec![0xFFFF, 0xFFFF]),
        (0x5B14, vec![0x7FFF, 0xFFFF]),
        (0x5000, vec![0xFFFF; 4]),
        (0x5468, vec![0x7FFF, 0xFFFF, 0xFFFF, 0xFFFF]),
    ] {
        let mut m = Mem::default();
        m.set(Table::Holding, addr, &words);
        let (r, _) = read(m4m(), m).await;
        let e = r.unwrap_err();
        assert!(
            matches!(&e, MeterError::Implausible(s) if s.contains("invalid marker")),
            "{addr:#X}: {e:?}"
        );
        assert_eq!(e.fault_code(), FaultCode::EMeterComm);
    }
}

#[tokio::test]
async fn sdm630_golden() {
    let mut m = Mem::default();
    m.set(Table::Input, 0x06, &[0x4180, 0, 0x4184, 0, 0x40E8, 0]);
    m.set(Table::Input, 0x0C, &[0x4566, 0, 0x4566, 0, 0x4566, 0]);
    m.set(Table::Input, 0x34, &[0x462C, 0x8000]); // 11 040 W
    m.set(Table::Input, 0x48, &[0x449A, 0x5000]); // 1 234.5 kWh
    m.set(Table::Input, 0x15A, &[0x4180, 0, 0x4184, 0, 0x40E8, 0]); // 16, 16.5, 7.25 kWh
    let (r, m) = read(sdm630(), m).await;
    let r = r.unwrap();
    assert_eq!(r.currents, amps([16_000, 16_500, 7_250]));
    assert_eq!(r.power, Some(Power::from_watts(11_040)));
    assert_eq!(r.power_phases, watts([3_680_000; 3]));
    assert_eq!(r.energy_total, wh(1_234_500_000));
    assert_eq!(
        r.energy_phases,
        Some(PerPhase([
            Energy::from_watt_hours(16_000),
            Energy::from_watt_hours(16_500),
            Energy::from_watt_hours(7_250)
        ]))
    );
    assert_eq!(
        m.requests,
        vec![(Table::Input, 0x06, 68), (Table::Input, 0x15A, 6)]
    );
}

#[test]
fn every_registered_meter_model_has_a_map() {
    for model in crate::catalog::meter_models() {
        for iface in &model.interfaces {
            let (name, map) = models::map_for(&model.id, *iface).unwrap();
            assert!(!name.is_empty());
            assert!(map.measures());
            assert!(map.blocks().iter().all(|b| b.count <= 125));
        }
    }
}

// ---- manual configuration ---------------------------------------------------------------

fn manual(fc: u8, regs: u8, dt: MeterDataType, high_first: bool) -> ManualMeter {
    ManualMeter {
        function_code: fc,
        register_count: regs,
        data_type: dt,
        high_word_first: high_first,
        current_scale: 0,
        power_scale: 0,
        energy_scale: 0,
        current: [None; 3],
        power: [None; 3],
        energy: [None; 3],
        energy_total: None,
        fault_register: None,
    }
}

fn regs(a: u16, b: u16, c: u16) -> [Option<u16>; 3] {
    [Some(a), Some(b), Some(c)]
}

async fn read_manual(cfg: &ManualMeter, mem: Mem) -> (Result<MeterReading, MeterError>, Mem) {
    read(manual::map_for(cfg).unwrap(), mem).await
}

#[tokio::test]
async fn manual_float32_both_word_orders() {
    for high_first in [true, false] {
        let mut cfg = manual(4, 2, MeterDataType::Float, high_first);
        cfg.current = regs(100, 102, 104);
        let w = |hi: u16, lo: u16| if high_first { [hi, lo] } else { [lo, hi] };
        let mut m = Mem::default();
        m.set(Table::Input, 100, &w(0x4184, 0));
        m.set(Table::Input, 102, &w(0xC316, 0x4000)); // −150.25 (a current may be signed)
        m.set(Table::Input, 104, &w(0x40E8, 0));
        let (r, m) = read_manual(&cfg, m).await;
        let r = r.unwrap();
        assert_eq!(r.currents, amps([16_500, -150_250, 7_250]), "{high_first}");
        assert_eq!(r.power, None);
        assert_eq!(r.power_phases, None);
        assert_eq!(r.energy_total, None);
        assert_eq!(m.requests, vec![(Table::Input, 100, 6)]);
    }
}

#[tokio::test]
async fn manual_float64_both_word_orders_and_energy_sum_register() {
    for high_first in [true, false] {
        let mut cfg = manual(3, 4, MeterDataType::Float, high_first);
        cfg.power = regs(0, 4, 8);
        cfg.energy_total = Some(40);
        cfg.energy_scale = 3; // kWh
        let w = |x: [u16; 4]| {
            if high_first {
                x
            } else {
                [x[3], x[2], x[1], x[0]]
            }
        };
        let mut m = Mem::default();
        m.set(Table::Holding, 0, &w([0x4030, 0x4000, 0, 0])); // 16.25 W
        m.set(Table::Holding, 4, &w([0xC045, 0x4000, 0, 0])); // −42.5 W
        m.set(Table::Holding, 8, &w([0x40C3, 0x4A40, 0, 0])); // 9 876.5 W
        m.set(Table::Holding, 40, &w([0x40C3, 0x4A40, 0, 0])); // 9 876.5 kWh
        let (r, m) = read_manual(&cfg, m).await;
        let r = r.unwrap();
        assert_eq!(r.power_phases, watts([16_250, -42_500, 9_876_500]));
        assert_eq!(r.power, Some(Power::from_milliwatts(9_850_250)));
        assert_eq!(r.currents, None);
        assert_eq!(r.energy_total, wh(9_876_500_000));
        assert_eq!(r.energy_phases, None);
        assert_eq!(
            m.requests,
            vec![(Table::Holding, 0, 12), (Table::Holding, 40, 4)]
        );
    }
}

#[tokio::test]
async fn manual_u16_with_scales() {
    let mut cfg = manual(3, 1, MeterDataType::Unsigned, true);
    cfg.current = regs(10, 11, 12);
    cfg.current_scale = -2; // 0.01 A
    cfg.power = regs(20, 21, 22);
    cfg.power_scale = 1; // 10 W
    cfg.energy_total = Some(30);
    cfg.energy_scale = 4; // 10 kWh
    let mut m = Mem::default();
    m.set(Table::Holding, 10, &[1600, 65535, 1]);
    m.set(Table::Holding, 20, &[368, 0, 65535]);
    m.set(Table::Holding, 30, &[123]);
    let (r, m) = read_manual(&cfg, m).await;
    let r = r.unwrap();
    assert_eq!(r.currents, amps([16_000, 655_350, 10]));
    assert_eq!(r.power_phases, watts([3_680_000, 0, 655_350_000]));
    assert_eq!(r.power, Some(Power::from_milliwatts(659_030_000)));
    assert_eq!(r.energy_total, wh(1_230_000_000));
    assert_eq!(
        m.requests,
        vec![
            (Table::Holding, 10, 3),
            (Table::Holding, 20, 3),
            (Table::Holding, 30, 1)
        ]
    );
}

#[tokio::test]
async fn manual_u32_both_word_orders() {
    for high_first in [true, false] {
        let mut cfg = manual(4, 2, MeterDataType::Unsigned, high_first);
        cfg.current = regs(0, 2, 4);
        cfg.current_scale = -3; // mA
        cfg.energy = regs(10, 12, 14);
        cfg.energy_scale = -1; // 0.1 Wh
        let w = |hi: u16, lo: u16| if high_first { [hi, lo] } else { [lo, hi] };
        let mut m = Mem::default();
        m.set(Table::Input, 0, &w(0, 16_000));
        m.set(Table::Input, 2, &w(0x0001, 0x0000)); // 65 536 mA
        m.set(Table::Input, 4, &w(0, 0));
        m.set(Table::Input, 10, &w(0x0001, 0x86A0)); // 100 000 × 0.1 Wh
        m.set(Table::Input, 12, &w(0, 5)); // 0.5 Wh
        m.set(Table::Input, 14, &w(0xFFFF, 0xFFFF)); // 429 496 729.5 Wh
        let (r, _) = read_manual(&cfg, m).await;
        let r = r.unwrap();
        assert_eq!(r.currents, amps([16_000, 65_536, 0]));
        let phases = [10_000_000, 500, 429_496_729_500];
        assert_eq!(
            r.energy_phases,
            Some(PerPhase(phases.map(Energy::from_milliwatt_hours)))
        );
        assert_eq!(r.energy_total, wh(phases.iter().sum()));
    }
}

#[tokio::test]
async fn manual_u64_energy_per_phase() {
    for high_first in [true, false] {
        let mut cfg = manual(3, 4, MeterDataType::Unsigned, high_first);
        cfg.current = [Some(0), None, None];
        cfg.current_scale = -3;
        cfg.energy = regs(100, 104, 108);
        cfg.energy_scale = 0; // Wh
        let w = |x: [u16; 4]| {
            if high_first {
                x
            } else {
                [x[3], x[2], x[1], x[0]]
            }
        };
        let mut m = Mem::default();
        m.set(Table::Holding, 0, &w([0, 0, 0, 6000]));
        m.set(Table::Holding, 100, &w([0, 0x0001, 0x0000, 0x0000])); // 2^32 Wh
        m.set(Table::Holding, 104, &w([0, 0, 0, 1]));
        m.set(Table::Holding, 108, &w([0, 0, 0x0001, 0x0002])); // 65 538 Wh
        let (r, m) = read_manual(&cfg, m).await;
        let r = r.unwrap();
        assert_eq!(r.currents, amps([6_000, 0, 0]), "missing phases read as 0");
        assert_eq!(
            r.energy_phases,
            Some(PerPhase([
                Energy::from_milliwatt_hours(4_294_967_296_000),
                Energy::from_watt_hours(1),
                Energy::from_watt_hours(65_538)
            ]))
        );
        assert_eq!(r.energy_total, wh(4_294_967_296_000 + 1_000 + 65_538_000));
        assert_eq!(
            m.requests,
            vec![(Table::Holding, 0, 4), (Table::Holding, 100, 12)]
        );
    }
}

#[tokio::test]
async fn manual_i16_and_i32_signed() {
    let mut cfg = manual(3, 1, MeterDataType::Signed, true);
    cfg.power = regs(0, 1, 2);
    cfg.power_scale = 1;
    let mut m = Mem::default();
    m.set(Table::Holding, 0, &[0xFFFF, 0x8000, 0x7FFF]); // −1, −32768, 32767 × 10 W
    let (r, _) = read_manual(&cfg, m).await;
    assert_eq!(
        r.unwrap().power_phases,
        watts([-10_000, -327_680_000, 327_670_000])
    );

    for high_first in [true, false] {
        let mut cfg = manual(4, 2, MeterDataType::Signed, high_first);
        cfg.power = regs(0, 2, 4);
        cfg.power_scale = -1;
        let w = |hi: u16, lo: u16| if high_first { [hi, lo] } else { [lo, hi] };
        let mut m = Mem::default();
        m.set(Table::Input, 0, &w(0xFFFF, 0xFA1F)); // −1505 × 0.1 W
        m.set(Table::Input, 2, &w(0x0000, 0x8FC0)); // 36 800 × 0.1 W
        m.set(Table::Input, 4, &w(0x8000, 0x0000)); // i32::MIN × 0.1 W: 214 MW → implausible
        let (r, _) = read_manual(&cfg, m).await;
        assert!(matches!(r, Err(MeterError::Implausible(_))), "{r:?}");
        let mut m = Mem::default();
        m.set(Table::Input, 0, &w(0xFFFF, 0xFA1F));
        m.set(Table::Input, 2, &w(0x0000, 0x8FC0));
        let (r, _) = read_manual(&cfg, m).await;
        let r = r.unwrap();
        assert_eq!(r.power_phases, watts([-150_500, 3_680_000, 0]));
        assert_eq!(r.power, Some(Power::from_milliwatts(3_529_500)));
    }
}

#[tokio::test]
async fn manual_i64_signed() {
    let mut cfg = manual(3, 4, MeterDataType::Signed, false);
    cfg.power = [Some(0), None, None];
    let mut m = Mem::default();
    m.set(Table::Holding, 0, &[0xFF38, 0xFFFF, 0xFFFF, 0xFFFF]); // −200 W, low word first
    let (r, _) = read_manual(&cfg, m).await;
    assert_eq!(r.unwrap().power_phases, watts([-200_000, 0, 0]));
}

#[tokio::test]
async fn manual_energy_from_some_phases_is_summed() {
    let mut cfg = manual(3, 1, MeterDataType::Unsigned, true);
    cfg.current = [Some(0), None, None];
    cfg.energy = [Some(10), Some(11), None];
    let mut m = Mem::default();
    m.set(Table::Holding, 10, &[100, 23]);
    let (r, m) = read_manual(&cfg, m).await;
    let r = r.unwrap();
    assert_eq!(
        r.energy_phases, None,
        "per-phase energy needs all three phases"
    );
    assert_eq!(r.energy_total, wh(123_000));
    assert_eq!(
        m.requests,
        vec![(Table::Holding, 0, 1), (Table::Holding, 10, 2)]
    );
}

#[tokio::test]
async fn manual_negative_energy_is_implausible() {
    let mut cfg = manual(3, 1, MeterDataType::Signed, true);
    cfg.current = [Some(0), None, None];
    cfg.energy_total = Some(1);
    let mut m = Mem::default();
    m.set(Table::Holding, 1, &[0xFFFF]);
    let (r, _) = read_manual(&cfg, m).await;
    assert!(matches!(r, Err(MeterError::Implausible(_))));
}

#[tokio::test]
async fn manual_fault_register() {
    for (regs_n, high_first, words, expect) in [
        (1u8, true, vec![0u16], None),
        (1, true, vec![0x0042], Some(0x42)),
        (2, false, vec![0x0000, 0x0001], Some(0x0001_0000)),
        (2, true, vec![0x0000, 0x0001], Some(1)),
        (4, true, vec![0x0001, 0, 0, 0], Some(u32::MAX)),
    ] {
        let mut cfg = manual(4, regs_n, MeterDataType::Signed, high_first);
        cfg.current = [Some(0), None, None];
        cfg.fault_register = Some(50);
        let mut m = Mem::default();
        m.set(Table::Input, 50, &words);
        let (r, _) = read_manual(&cfg, m).await;
        match expect {
            None => assert_eq!(r.unwrap().fault, Some(0)),
            Some(code) => {
                let e = r.unwrap_err();
                assert_eq!(e, MeterError::Fault(code));
                assert_eq!(e.fault_code(), FaultCode::EMeterError);
            }
        }
    }
}

#[tokio::test]
async fn meter_fault_wins_over_implausible_values() {
    let mut cfg = manual(3, 2, MeterDataType::Float, true);
    cfg.current = [Some(0), None, None];
    cfg.fault_register = Some(2);
    let mut m = Mem::default();
    m.set(Table::Holding, 0, &[0x7FC0, 0, 0, 7]); // NaN current, fault 7 (u32 at 2)
    let (r, m) = read_manual(&cfg, m).await;
    assert_eq!(r, Err(MeterError::Fault(7)));
    assert_eq!(
        m.requests,
        vec![(Table::Holding, 0, 4)],
        "contiguous: one request"
    );
}

#[tokio::test]
async fn transport_errors_map_to_meter_faults() {
    for (e, code) in [
        (
            ModbusError::NotReachable("t".into()),
            FaultCode::EMeterNotReach,
        ),
        (ModbusError::Exception(2), FaultCode::EMeterComm),
        (ModbusError::Malformed("x".into()), FaultCode::EMeterComm),
    ] {
        let mem = Mem {
            fail: Some(e),
            ..Mem::default()
        };
        let (r, _) = read(sdm630(), mem).await;
        assert_eq!(r.unwrap_err().fault_code(), code);
    }
}

#[test]
fn manual_configuration_errors() {
    let with_current = |mut m: ManualMeter| {
        m.current = [Some(0), None, None];
        m
    };
    assert!(manual::map_for(&with_current(manual(3, 1, MeterDataType::Float, true))).is_err());
    assert!(manual::map_for(&with_current(manual(3, 3, MeterDataType::Unsigned, true))).is_err());
    assert!(manual::map_for(&with_current(manual(6, 2, MeterDataType::Unsigned, true))).is_err());
    let mut only_energy = manual(3, 2, MeterDataType::Float, true);
    only_energy.energy_total = Some(0);
    assert!(
        manual::map_for(&only_energy).is_err(),
        "needs current or power"
    );
    let mut past_end = manual(3, 4, MeterDataType::Float, true);
    past_end.current = [Some(65534), None, None];
    assert!(manual::map_for(&past_end).is_err());
    let mut ok = manual(3, 4, MeterDataType::Float, true);
    ok.power = [Some(65532), None, None];
    assert!(manual::map_for(&ok).is_ok());
}

// ---- configuration to plan ----------------------------------------------------------------

fn retrofit(kind: RetrofitKind, model: Option<&str>, interface: Interface) -> RetrofitMeter {
    RetrofitMeter {
        kind,
        model: model.and_then(meter_model),
        interface,
        unit_id: 7,
        ip: Ipv4Addr::new(192, 168, 1, 50),
        port: 1502,
        rs485_address: 12,
        manual: with_power(manual(3, 2, MeterDataType::Float, true)),
    }
}

fn with_power(mut m: ManualMeter) -> ManualMeter {
    m.power = [Some(0), None, None];
    m
}

#[test]
fn meter_for_builds_plans() {
    assert_eq!(
        meter_for(&retrofit(RetrofitKind::None, None, Interface::Tcp)),
        Ok(None)
    );
    let p = meter_for(&retrofit(
        RetrofitKind::Model,
        Some("carlo-gavazzi-em24"),
        Interface::Tcp,
    ))
    .unwrap()
    .unwrap();
    assert_eq!(p.map, em24(Em24Variant::Ethernet));
    assert_eq!(
        p.endpoint,
        MeterEndpoint::Tcp("192.168.1.50:1502".parse().unwrap(), 7)
    );
    assert!(p.tcp_reader(Duration::from_millis(10)).is_some());
    let p = meter_for(&retrofit(
        RetrofitKind::Model,
        Some("carlo-gavazzi-em24"),
        Interface::Rs485,
    ))
    .unwrap()
    .unwrap();
    assert_eq!(p.map, em24(Em24Variant::Din));
    assert_eq!(p.endpoint, MeterEndpoint::Rs485(12));
    assert!(p.tcp_reader(Duration::from_millis(10)).is_none());
    for (id, map) in [
        ("siemens-pac2200", pac2200()),
        ("abb-m4m", m4m()),
        ("eastron-sdm630", sdm630()),
    ] {
        let p = meter_for(&retrofit(RetrofitKind::Model, Some(id), Interface::Rs485))
            .unwrap()
            .unwrap();
        assert_eq!(p.map, map, "{id}");
    }
    assert!(meter_for(&retrofit(RetrofitKind::Model, None, Interface::Tcp)).is_err());
    let p = meter_for(&retrofit(RetrofitKind::Manual, None, Interface::Tcp))
        .unwrap()
        .unwrap();
    assert_eq!(p.name, "manual configuration");
    assert_eq!(p.map.table, Table::Holding);
}

#[test]
fn reading_overrides_charger_status() {
    let mut status = ChargerStatus {
        currents: Some(PerPhase::splat(Current::from_amps(1))),
        ..ChargerStatus::default()
    };
    let reading = MeterReading {
        currents: Some(PerPhase::splat(Current::from_amps(16))),
        energy_total: wh(5),
        ..MeterReading::default()
    };
    reading.apply_to(&mut status);
    assert_eq!(status.currents, reading.currents);
    assert_eq!(status.energy_total, wh(5));
    assert_eq!(status.power, None);
}

// ---- decode never panics ------------------------------------------------------------------

fn arb_format() -> impl Strategy<Value = Format> {
    prop_oneof![
        Just(Format::U16),
        Just(Format::I16),
        Just(Format::U32),
        Just(Format::I32),
        Just(Format::U64),
        Just(Format::I64),
        Just(Format::F32),
        Just(Format::F64),
    ]
}

fn arb_field() -> impl Strategy<Value = Option<Field>> {
    proptest::option::of(
        (
            0u16..64,
            arb_format(),
            any::<bool>(),
            any::<i8>(),
            proptest::collection::vec(any::<u64>(), 0..2),
        )
            .prop_map(|(addr, format, hf, exp, inv)| {
                let order = if hf {
                    WordOrder::HighFirst
                } else {
                    WordOrder::LowFirst
                };
                Field::new(addr, format, order, exp).with_invalid(&inv)
            }),
    )
}

fn arb_map() -> impl Strategy<Value = MeterMap> {
    (
        proptest::array::uniform3(arb_field()),
        proptest::array::uniform3(arb_field()),
        arb_field(),
        proptest::array::uniform3(arb_field()),
        arb_field(),
        arb_field(),
        0u16..8,
        0u16..130,
    )
        .prop_map(
            |(current, power, power_total, energy, energy_total, fault, max_gap, max_block)| {
                MeterMap {
                    table: Table::Holding,
                    current,
                    power,
                    power_total,
                    energy,
                    energy_total,
                    fault,
                    max_gap,
                    max_block,
                }
            },
        )
}

proptest! {
    #[test]
    fn decode_of_arbitrary_registers_never_panics(
        map in arb_map(),
        words in proptest::collection::vec(any::<u16>(), 0..80),
        start in 0u16..8,
        truncate in any::<bool>(),
    ) {
        // Exactly the blocks the map asks for, filled from `words`, optionally short.
        let blocks = map.blocks();
        let data: Vec<(u16, Vec<u16>)> = blocks
            .iter()
            .map(|b| {
                let n = if truncate { usize::from(b.count / 2) } else { usize::from(b.count) };
                (b.start, words.iter().copied().cycle().take(n).collect())
            })
            .collect();
        let _ = map.decode(&data);
        // And arbitrary replies that do not match the blocks at all.
        let _ = map.decode(&[(start, words.clone())]);
        for b in &blocks {
            prop_assert!(b.count >= 1 && b.count <= 125);
        }
    }

    #[test]
    fn models_decode_arbitrary_registers(words in proptest::collection::vec(any::<u16>(), 0..=80)) {
        for map in [em24(Em24Variant::Din), em24(Em24Variant::Ethernet), pac2200(), m4m(), sdm630()] {
            let data: Vec<(u16, Vec<u16>)> = map
                .blocks()
                .iter()
                .map(|b| (b.start, words.iter().copied().cycle().take(usize::from(b.count)).collect()))
                .collect();
            if let Ok(r) = map.decode(&data) {
                // Whatever decodes is within the plausibility limits.
                if let Some(c) = r.currents {
                    prop_assert!(c.0.iter().all(|a| a.milliamps().abs() <= 1_000_000));
                }
            }
        }
    }
}
