//! A meter's register map as data, how it is split into read requests, and how the replies
//! decode into a [`MeterReading`].
//!
//! Both the pre-configured models and the manual configuration are described as a
//! [`MeterMap`]: one register table (FC 0x03 or 0x04) and, per quantity, an optional
//! [`Field`] (address, [`Format`], [`WordOrder`], power-of-ten exponent to the base unit, the
//! model's invalid markers). [`MeterMap::blocks`] merges the fields into as few contiguous
//! requests as the map's `max_gap`/`max_block` allow; [`MeterMap::decode`] turns the replies
//! into a reading. Decoding is pure and never panics, whatever the registers hold.

use crate::units::{Current, Energy, PerPhase, Power};

use super::{MeterError, MeterReading};

/// Which register table the meter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Holding registers, FC 0x03.
    Holding,
    /// Input registers, FC 0x04.
    Input,
}

/// How one value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Unsigned, one register.
    U16,
    /// Signed (two's complement), one register.
    I16,
    /// Unsigned, two registers.
    U32,
    /// Signed, two registers.
    I32,
    /// Unsigned, four registers.
    U64,
    /// Signed, four registers.
    I64,
    /// IEEE 754 single precision, two registers.
    F32,
    /// IEEE 754 double precision, four registers.
    F64,
}

impl Format {
    /// Registers per value.
    pub const fn words(self) -> u16 {
        match self {
            Self::U16 | Self::I16 => 1,
            Self::U32 | Self::I32 | Self::F32 => 2,
            Self::U64 | Self::I64 | Self::F64 => 4,
        }
    }
}

/// Order of the 16-bit words of a multi-register value (bytes in a word are always big-endian,
/// as Modbus defines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordOrder {
    /// Most significant word first ("ABCD").
    HighFirst,
    /// Least significant word first ("CDAB", e.g. Carlo Gavazzi).
    LowFirst,
}

/// One value in the register map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Wire (0-based PDU) address of the first register.
    pub addr: u16,
    /// Encoding.
    pub format: Format,
    /// Word order.
    pub order: WordOrder,
    /// Register value × 10^`exp` = base unit (A, W or Wh).
    pub exp: i8,
    /// Raw bit patterns (after word ordering, as an unsigned integer of the value's width) the
    /// meter sends for "no valid value".
    pub invalid: Vec<u64>,
}

impl Field {
    /// A field without invalid markers.
    pub const fn new(addr: u16, format: Format, order: WordOrder, exp: i8) -> Self {
        Self {
            addr,
            format,
            order,
            exp,
            invalid: Vec::new(),
        }
    }

    /// The same field with the model's invalid markers.
    #[must_use]
    pub fn with_invalid(mut self, markers: &[u64]) -> Self {
        self.invalid = markers.to_vec();
        self
    }

    /// One past the last register (as u32: a field may end at 65536).
    fn end(&self) -> u32 {
        u32::from(self.addr) + u32::from(self.format.words())
    }
}

/// A meter's register map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterMap {
    /// FC 0x03 or 0x04 for every value.
    pub table: Table,
    /// Current L1..L3.
    pub current: [Option<Field>; 3],
    /// Active power L1..L3.
    pub power: [Option<Field>; 3],
    /// Active power sum.
    pub power_total: Option<Field>,
    /// Import energy L1..L3.
    pub energy: [Option<Field>; 3],
    /// Import energy sum.
    pub energy_total: Option<Field>,
    /// Fault register (an unsigned integer; non-zero = fault).
    pub fault: Option<Field>,
    /// Unused registers a request may span between two fields (0 = contiguous only; only
    /// where the manufacturer documents the registers in between as readable).
    pub max_gap: u16,
    /// Largest request, in registers (≤ 125, the Modbus limit).
    pub max_block: u16,
}

/// One read request: `count` registers from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// First register.
    pub start: u16,
    /// Number of registers.
    pub count: u16,
}

/// Current limits beyond which a reading is taken as wrong (a charging point draws at most
/// a few tens of amperes; a misconfigured scale gives thousands).
const MAX_CURRENT_MA: i128 = 1_000_000;
/// ±1 MW per phase, 3 MW in sum.
const MAX_POWER_MW: i128 = 3_000_000_000;
/// 10 GWh.
const MAX_ENERGY_MWH: i128 = 10_000_000_000_000_000;

impl MeterMap {
    /// Every field with its role, for planning.
    fn fields(&self) -> impl Iterator<Item = &Field> {
        self.current
            .iter()
            .chain(&self.power)
            .chain(std::iter::once(&self.power_total))
            .chain(&self.energy)
            .chain(std::iter::once(&self.energy_total))
            .chain(std::iter::once(&self.fault))
            .flatten()
    }

    /// Whether the map measures current or power at all.
    pub fn measures(&self) -> bool {
        self.current.iter().chain(&self.power).any(Option::is_some) || self.power_total.is_some()
    }

    /// The read requests: fields sorted by address, merged while the gap between them is at
    /// most `max_gap` and the request stays within `max_block` registers. Fields that run past
    /// register 65535 are left out (the map builders reject them).
    pub fn blocks(&self) -> Vec<Block> {
        let mut spans: Vec<(u32, u32)> = self
            .fields()
            .filter(|f| f.end() <= 0x1_0000)
            .map(|f| (u32::from(f.addr), f.end()))
            .collect();
        spans.sort_unstable();
        let max_block = u32::from(self.max_block.clamp(4, 125));
        let mut blocks: Vec<(u32, u32)> = Vec::new();
        for (start, end) in spans {
            match blocks.last_mut() {
                Some((bs, be))
                    if start <= *be + u32::from(self.max_gap)
                        && end.max(*be) - *bs <= max_block =>
                {
                    *be = end.max(*be);
                }
                _ => blocks.push((start, end)),
            }
        }
        blocks
            .into_iter()
            .filter_map(|(s, e)| {
                Some(Block {
                    start: u16::try_from(s).ok()?,
                    count: u16::try_from(e - s).ok()?,
                })
            })
            .collect()
    }

    /// Decodes the replies to [`Self::blocks`] (`(start, registers)` pairs).
    ///
    /// The fault register is checked first: a meter that reports a fault of its own gives
    /// [`MeterError::Fault`] even if its values look wrong too.
    pub fn decode(&self, data: &[(u16, Vec<u16>)]) -> Result<MeterReading, MeterError> {
        let fault = match &self.fault {
            Some(f) => {
                let bits = words_of(f, data).map(|w| raw_bits(f, w))?;
                if bits != 0 {
                    return Err(MeterError::Fault(u32::try_from(bits).unwrap_or(u32::MAX)));
                }
                Some(0)
            }
            None => None,
        };

        let currents = match phases(&self.current, data, "current", MAX_CURRENT_MA)? {
            Some([a, b, c]) => Some(PerPhase([milliamps(a)?, milliamps(b)?, milliamps(c)?])),
            None => None,
        };
        let power_phases = match phases(&self.power, data, "power", MAX_POWER_MW)? {
            Some([a, b, c]) => Some(PerPhase([milliwatts(a)?, milliwatts(b)?, milliwatts(c)?])),
            None => None,
        };
        let power = match &self.power_total {
            Some(f) => Some(milliwatts(value(f, data, "power", MAX_POWER_MW)?)?),
            None => power_phases.map(|p| p.0.into_iter().sum()),
        };
        let energy_list = match phases(&self.energy, data, "energy", MAX_ENERGY_MWH)? {
            Some([a, b, c]) => Some([
                milliwatt_hours(a)?,
                milliwatt_hours(b)?,
                milliwatt_hours(c)?,
            ]),
            None => None,
        };
        let energy_phases = if self.energy.iter().all(Option::is_some) {
            energy_list.map(PerPhase)
        } else {
            None
        };
        let energy_total = match &self.energy_total {
            Some(f) => Some(milliwatt_hours(value(f, data, "energy", MAX_ENERGY_MWH)?)?),
            None => energy_list.map(|p| p.into_iter().sum()),
        };
        Ok(MeterReading {
            currents,
            power,
            power_phases,
            energy_total,
            energy_phases,
            fault,
        })
    }
}

fn implausible(what: &str) -> MeterError {
    MeterError::Implausible(format!("{what} out of range"))
}

fn milliamps(v: i128) -> Result<Current, MeterError> {
    i32::try_from(v)
        .map(Current::from_milliamps)
        .map_err(|_| implausible("current"))
}

fn milliwatts(v: i128) -> Result<Power, MeterError> {
    i64::try_from(v)
        .map(Power::from_milliwatts)
        .map_err(|_| implausible("power"))
}

/// Import counters never run backwards past zero.
fn milliwatt_hours(v: i128) -> Result<Energy, MeterError> {
    if v < 0 {
        return Err(implausible("energy (negative)"));
    }
    i64::try_from(v)
        .map(Energy::from_milliwatt_hours)
        .map_err(|_| implausible("energy"))
}

/// The three phase values in milli-units, `None` when no phase has a register; phases without
/// a register are 0.
fn phases(
    fields: &[Option<Field>; 3],
    data: &[(u16, Vec<u16>)],
    what: &str,
    limit: i128,
) -> Result<Option<[i128; 3]>, MeterError> {
    if fields.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut out = [0i128; 3];
    for (slot, field) in out.iter_mut().zip(fields) {
        if let Some(f) = field {
            *slot = value(f, data, what, limit)?;
        }
    }
    Ok(Some(out))
}

/// The registers of a field within the replies.
fn words_of<'a>(f: &Field, data: &'a [(u16, Vec<u16>)]) -> Result<&'a [u16], MeterError> {
    let n = usize::from(f.format.words());
    data.iter()
        .find_map(|(start, words)| {
            let off = usize::from(f.addr.checked_sub(*start)?);
            words.get(off..off.checked_add(n)?)
        })
        .ok_or_else(|| MeterError::Comm(format!("register {} missing from the replies", f.addr)))
}

/// The value's bits as an unsigned integer of its width, words put in order.
fn raw_bits(f: &Field, words: &[u16]) -> u64 {
    let fold = |acc: u64, w: &u16| (acc << 16) | u64::from(*w);
    match f.order {
        WordOrder::HighFirst => words.iter().fold(0, fold),
        WordOrder::LowFirst => words.iter().rev().fold(0, fold),
    }
}

/// A field's value in milli-units of its base unit (mA, mW, mWh), checked against `limit`.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "bit reinterpretation of the register value into its declared signed width"
)]
fn value(f: &Field, data: &[(u16, Vec<u16>)], what: &str, limit: i128) -> Result<i128, MeterError> {
    let bits = raw_bits(f, words_of(f, data)?);
    if f.invalid.contains(&bits) {
        return Err(MeterError::Implausible(format!(
            "{what} at {} is the meter's invalid marker 0x{bits:X}",
            f.addr
        )));
    }
    let exp = i32::from(f.exp) + 3; // to milli-units
    let milli = match f.format {
        Format::U16 | Format::U32 | Format::U64 => scale_int(i128::from(bits), exp),
        Format::I16 => scale_int(i128::from(bits as u16 as i16), exp),
        Format::I32 => scale_int(i128::from(bits as u32 as i32), exp),
        Format::I64 => scale_int(i128::from(bits as i64), exp),
        Format::F32 => scale_float(f64::from(f32::from_bits(bits as u32)), exp),
        Format::F64 => scale_float(f64::from_bits(bits), exp),
    };
    match milli {
        Some(v) if v.abs() <= limit => Ok(v),
        _ => Err(MeterError::Implausible(format!(
            "{what} at {} out of range (raw 0x{bits:X})",
            f.addr
        ))),
    }
}

/// `raw × 10^exp`, rounded half away from zero; `None` on overflow.
fn scale_int(raw: i128, exp: i32) -> Option<i128> {
    if exp >= 0 {
        raw.checked_mul(10i128.checked_pow(exp.unsigned_abs())?)
    } else {
        let Some(d) = 10i128.checked_pow(exp.unsigned_abs()) else {
            return Some(0);
        };
        let half = d / 2;
        Some(if raw >= 0 {
            (raw + half) / d
        } else {
            (raw - half) / d
        })
    }
}

/// `v × 10^exp`, rounded; `None` for NaN, infinities and values beyond ±10^30.
#[allow(
    clippy::cast_possible_truncation,
    reason = "range checked before the cast"
)]
fn scale_float(v: f64, exp: i32) -> Option<i128> {
    let x = (v * 10f64.powi(exp)).round();
    (x.is_finite() && x.abs() < 1e30).then_some(x as i128)
}

#[cfg(test)]
#[allow(clippy::unnecessary_wraps, reason = "field shorthand")]
mod tests {
    use super::*;

    fn f(addr: u16, format: Format) -> Option<Field> {
        Some(Field::new(addr, format, WordOrder::HighFirst, 0))
    }

    fn map(max_gap: u16) -> MeterMap {
        MeterMap {
            table: Table::Holding,
            current: [f(0, Format::F32), f(2, Format::F32), f(4, Format::F32)],
            power: [f(10, Format::F32), None, None],
            power_total: None,
            energy: [None, None, None],
            energy_total: f(100, Format::F64),
            fault: None,
            max_gap,
            max_block: 125,
        }
    }

    #[test]
    fn blocks_merge_contiguous_and_bridge_gaps() {
        assert_eq!(
            map(0).blocks(),
            vec![
                Block { start: 0, count: 6 },
                Block {
                    start: 10,
                    count: 2
                },
                Block {
                    start: 100,
                    count: 4
                }
            ]
        );
        assert_eq!(
            map(4).blocks(),
            vec![
                Block {
                    start: 0,
                    count: 12
                },
                Block {
                    start: 100,
                    count: 4
                }
            ]
        );
        let mut m = map(200);
        m.max_block = 10;
        assert_eq!(
            m.blocks(),
            vec![
                Block { start: 0, count: 6 },
                Block {
                    start: 10,
                    count: 2
                },
                Block {
                    start: 100,
                    count: 4
                }
            ]
        );
    }

    #[test]
    fn overlapping_fields_share_a_block() {
        let mut m = map(0);
        m.power = [f(1, Format::U16), None, None];
        assert_eq!(
            m.blocks(),
            vec![
                Block { start: 0, count: 6 },
                Block {
                    start: 100,
                    count: 4
                }
            ]
        );
    }

    #[test]
    fn fields_past_the_last_register_are_left_out() {
        let mut m = map(0);
        m.energy_total = f(0xFFFE, Format::U64);
        assert_eq!(
            m.blocks(),
            vec![
                Block { start: 0, count: 6 },
                Block {
                    start: 10,
                    count: 2
                }
            ]
        );
    }

    #[test]
    fn integer_scaling_rounds_half_away_from_zero() {
        assert_eq!(scale_int(15, -1), Some(2));
        assert_eq!(scale_int(-15, -1), Some(-2));
        assert_eq!(scale_int(14, -1), Some(1));
        assert_eq!(scale_int(7, 3), Some(7000));
        assert_eq!(scale_int(7, 200), None);
        assert_eq!(scale_int(7, -200), Some(0));
        assert_eq!(scale_float(f64::NAN, 3), None);
        assert_eq!(scale_float(1.5, 3), Some(1500));
    }

    #[test]
    fn missing_register_in_replies_is_comm() {
        let m = map(0);
        assert!(matches!(m.decode(&[]), Err(MeterError::Comm(_))));
    }
}
