//! Register maps of the pre-configured retrofit meters (`etsdb/meter-models.toml`).
//!
//! Addresses are wire (0-based PDU) addresses. Sources, per model:
//!
//! * **Carlo Gavazzi EM24** — Carlo Gavazzi "EM24-DIN communication protocol" (V3R1) and
//!   "EM24_E1 (Ethernet) communication protocol" (V0R1.2); transcribed in
//!   `docs/register-maps.md` §11b (cross-checked with TF
//!   `meters_modbus_tcp/carlo_gavazzi.py`, openWB `carlo_gavazzi/counter.py`, evcc
//!   `cg-em24.yaml`). FC 0x04 (0x03 answers the same), INT32 **low word first**. I L1..L3
//!   at 12/14/16 (0.001 A), P L1..L3 at 18/20/22 (0.1 W), P Σ at 40 (0.1 W), kWh(+) total at
//!   62 on the EM24-DIN and at **52 on the EM24_E1** (0.1 kWh). The two variants differ only
//!   from register 45 on; we take the Ethernet variant for a meter on Modbus TCP and the DIN
//!   variant on RS485.
//! * **Siemens SENTRON PAC2200** — Siemens PAC2200 manual, "Modbus measured variables with
//!   the function codes 0x03 and 0x04" (offsets = wire addresses); §11d (mbmd `pac2200.go`,
//!   TF `siemens.py`, openWB `siemens_sentron`). FLOAT32 BE: I L1..L3 at 13/15/17 (A), P
//!   L1..L3 at 25/27/29 (W), P Σ at 65 (W); import energy tariff 1 at 801 as FLOAT64 (Wh).
//!   Read with FC 0x03.
//! * **ABB M4M 20/30** — ABB EQ-meter register layout (M4M Modbus protocol); §11e (mbmd
//!   `abb.go`; third-party listing for the M4M). FC 0x03, BE: I L1..L3 at 0x5B0C/0E/10
//!   (U32, 0.01 A), P Σ at 0x5B14 and P L1..L3 at 0x5B16/18/1A (S32, 0.01 W), import energy
//!   at 0x5000 and per phase at 0x5460/64/68 (U64, 0.01 kWh). Invalid: all ones
//!   (0xFFFF…) or 0x7FFF… of the value's width.
//! * **Eastron SDM630 Modbus V2** — Eastron "SDM630 Modbus protocol" (V1.5), input
//!   registers 3xxxx (wire = number − 30001), FLOAT32 BE: I L1..L3 at 0x0006/08/0A (A),
//!   P L1..L3 at 0x000C/0E/10 (W), P Σ at 0x0034 (W), import kWh at 0x0048, import kWh per
//!   phase at 0x015A/5C/5E (kWh). At most 40 values (80 registers) per request.

use crate::catalog::Interface;

use super::map::{Field, Format, MeterMap, Table, WordOrder};

/// The Carlo Gavazzi EM24 variant (they differ in the energy registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Em24Variant {
    /// EM24-DIN (RS485, AV… types): kWh(+) total at 62.
    Din,
    /// EM24_E1 (Ethernet): kWh(+) total at 52.
    Ethernet,
}

/// The map for a model id of `etsdb/meter-models.toml` reached over `interface`, with its
/// display name; `None` for an unknown id.
pub fn map_for(id: &str, interface: Interface) -> Option<(String, MeterMap)> {
    Some(match id {
        "carlo-gavazzi-em24" => match interface {
            Interface::Tcp => (
                "Carlo Gavazzi EM24_E1".to_owned(),
                em24(Em24Variant::Ethernet),
            ),
            Interface::Rs485 => ("Carlo Gavazzi EM24-DIN".to_owned(), em24(Em24Variant::Din)),
        },
        "siemens-pac2200" => ("Siemens SENTRON PAC2200".to_owned(), pac2200()),
        "abb-m4m" => ("ABB M4M 20/30".to_owned(), m4m()),
        "eastron-sdm630" => ("Eastron SDM630".to_owned(), sdm630()),
        _ => return None,
    })
}

/// Carlo Gavazzi EM24.
pub fn em24(variant: Em24Variant) -> MeterMap {
    let i32le = |addr, exp| Some(Field::new(addr, Format::I32, WordOrder::LowFirst, exp));
    MeterMap {
        table: Table::Input,
        current: [i32le(12, -3), i32le(14, -3), i32le(16, -3)],
        power: [i32le(18, -1), i32le(20, -1), i32le(22, -1)],
        power_total: i32le(40, -1),
        energy: [None, None, None],
        energy_total: match variant {
            Em24Variant::Din => i32le(62, 2),
            Em24Variant::Ethernet => i32le(52, 2),
        },
        fault: None,
        // 24..61 are documented measurements (VA, var, PF, frequency, energies): one request.
        max_gap: 24,
        max_block: 64,
    }
}

/// Siemens SENTRON PAC2200.
pub fn pac2200() -> MeterMap {
    let f32be = |addr| Some(Field::new(addr, Format::F32, WordOrder::HighFirst, 0));
    MeterMap {
        table: Table::Holding,
        current: [f32be(13), f32be(15), f32be(17)],
        power: [f32be(25), f32be(27), f32be(29)],
        power_total: f32be(65),
        energy: [None, None, None],
        energy_total: Some(Field::new(801, Format::F64, WordOrder::HighFirst, 0)),
        fault: None,
        // 1..66 are all documented float measurements: 13..66 in one request.
        max_gap: 40,
        max_block: 64,
    }
}

/// ABB M4M 20/30 (EQ-meter layout).
pub fn m4m() -> MeterMap {
    let u32_invalid = [0xFFFF_FFFF, 0x7FFF_FFFF];
    let u64_invalid = [u64::MAX, 0x7FFF_FFFF_FFFF_FFFF];
    let u32be = |addr| {
        Some(Field::new(addr, Format::U32, WordOrder::HighFirst, -2).with_invalid(&u32_invalid))
    };
    let i32be = |addr| {
        Some(Field::new(addr, Format::I32, WordOrder::HighFirst, -2).with_invalid(&u32_invalid))
    };
    let u64be = |addr| {
        Some(Field::new(addr, Format::U64, WordOrder::HighFirst, 1).with_invalid(&u64_invalid))
    };
    MeterMap {
        table: Table::Holding,
        current: [u32be(0x5B0C), u32be(0x5B0E), u32be(0x5B10)],
        power: [i32be(0x5B16), i32be(0x5B18), i32be(0x5B1A)],
        power_total: i32be(0x5B14),
        energy: [u64be(0x5460), u64be(0x5464), u64be(0x5468)],
        energy_total: u64be(0x5000),
        fault: None,
        // 0x5B12..13 (neutral current) lies between I L3 and P Σ.
        max_gap: 2,
        max_block: 64,
    }
}

/// Eastron SDM630 Modbus V2.
pub fn sdm630() -> MeterMap {
    let f32be = |addr, exp| Some(Field::new(addr, Format::F32, WordOrder::HighFirst, exp));
    MeterMap {
        table: Table::Input,
        current: [f32be(0x0006, 0), f32be(0x0008, 0), f32be(0x000A, 0)],
        power: [f32be(0x000C, 0), f32be(0x000E, 0), f32be(0x0010, 0)],
        power_total: f32be(0x0034, 0),
        energy: [f32be(0x015A, 3), f32be(0x015C, 3), f32be(0x015E, 3)],
        energy_total: f32be(0x0048, 3),
        fault: None,
        // 0x0012..0x0047 are documented measurements; Eastron allows 80 registers a request.
        max_gap: 40,
        max_block: 80,
    }
}
