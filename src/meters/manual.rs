//! The manual meter configuration of spec ch. 2.3 as a register map.
//!
//! Every option of [`ManualMeter`]: FC 0x03 or 0x04; 1, 2 or 4 consecutive registers per
//! value; IEEE 754 float (2 or 4 registers) or unsigned/signed integer; high or low word
//! first; a power-of-ten scale per quantity (value × 10^scale = A, W, Wh); current and power
//! per phase (at least one of them), energy per phase or as a sum; a fault register read as
//! an unsigned integer of the same width and word order (non-zero = EMeter Error).
//!
//! The meter is unknown, so only registers that are actually configured are read: requests
//! merge fields that touch or overlap, never bridge a gap.

use super::settings::{ManualMeter, MeterDataType};

use super::MeterConfigError;
use super::map::{Field, Format, MeterMap, Table, WordOrder};

/// The register map of a manual configuration.
pub fn map_for(m: &ManualMeter) -> Result<MeterMap, MeterConfigError> {
    let table = match m.function_code {
        3 => Table::Holding,
        4 => Table::Input,
        fc => {
            return Err(MeterConfigError(format!(
                "function code {fc}: only 3 (holding) or 4 (input) registers can be read"
            )));
        }
    };
    let format = format_of(m.data_type, m.register_count)?;
    let fault_format = format_of(MeterDataType::Unsigned, m.register_count)?;
    let order = if m.high_word_first {
        WordOrder::HighFirst
    } else {
        WordOrder::LowFirst
    };
    let field =
        |addr: Option<u16>, fmt: Format, exp: i8| -> Result<Option<Field>, MeterConfigError> {
            match addr {
                None => Ok(None),
                Some(a) if u32::from(a) + u32::from(fmt.words()) > 0x1_0000 => {
                    Err(MeterConfigError(format!(
                        "register {a}: {} registers from there run past 65535",
                        fmt.words()
                    )))
                }
                Some(a) => Ok(Some(Field::new(a, fmt, order, exp))),
            }
        };
    let per_phase =
        |regs: &[Option<u16>; 3], exp: i8| -> Result<[Option<Field>; 3], MeterConfigError> {
            let [a, b, c] = *regs;
            Ok([
                field(a, format, exp)?,
                field(b, format, exp)?,
                field(c, format, exp)?,
            ])
        };
    let map = MeterMap {
        table,
        current: per_phase(&m.current, m.current_scale)?,
        power: per_phase(&m.power, m.power_scale)?,
        power_total: None,
        energy: per_phase(&m.energy, m.energy_scale)?,
        energy_total: field(m.energy_total, format, m.energy_scale)?,
        fault: field(m.fault_register, fault_format, 0)?,
        max_gap: 0,
        max_block: 125,
    };
    if !map.measures() {
        return Err(MeterConfigError(
            "manual configuration needs at least one current or power register".to_owned(),
        ));
    }
    Ok(map)
}

fn format_of(data_type: MeterDataType, registers: u8) -> Result<Format, MeterConfigError> {
    match (data_type, registers) {
        (MeterDataType::Unsigned, 1) => Ok(Format::U16),
        (MeterDataType::Unsigned, 2) => Ok(Format::U32),
        (MeterDataType::Unsigned, 4) => Ok(Format::U64),
        (MeterDataType::Signed, 1) => Ok(Format::I16),
        (MeterDataType::Signed, 2) => Ok(Format::I32),
        (MeterDataType::Signed, 4) => Ok(Format::I64),
        (MeterDataType::Float, 2) => Ok(Format::F32),
        (MeterDataType::Float, 4) => Ok(Format::F64),
        (MeterDataType::Float, 1) => Err(MeterConfigError(
            "an IEEE 754 float needs 2 or 4 registers, not 1".to_owned(),
        )),
        (_, n) => Err(MeterConfigError(format!(
            "{n} registers per value: only 1, 2 or 4 are possible"
        ))),
    }
}
