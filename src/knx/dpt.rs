//! KNX datapoint-type (DPT) codecs: typed values ⇄ group-value payloads.
//!
//! This module owns the encoding of exactly the DPTs the group-object table uses (see
//! [`Dpt`]): how a [`DptValue`] becomes the [`Payload`] of an A_GroupValue_Write/Response and
//! back. Values are in the DPT's own unit (9.021 in mA, 9.024 in kW, 14.019 in A, 13.013 in
//! kWh …). Converting them into [`crate::units`] types is another layer's job, and so is
//! deciding *when* to send; this module does no I/O and keeps no state.
//!
//! Rules:
//! * every function returns a value or a [`DptError`]; no input panics;
//! * a payload of the wrong size is [`DptError::Size`], an out-of-range value
//!   [`DptError::OutOfRange`] (NaN included), the DPT 9 "invalid data" pattern `0x7FFF` and
//!   non-finite DPT 14 floats [`DptError::InvalidData`];
//! * the 2-octet float (DPT 9) rounds exactly, see [`encode_f16`].
//!
//! Layouts from KNX 03.07.02 "Datapoint Types" (§3.1 B1, §3.3 U8, §3.5 U16, §3.10 F16,
//! §3.11 N3N5r2N6r2N6 time, §3.14 V32, §3.18 F32, §3.20 A112 string), cross-checked against the
//! behaviour of xknx's `xknx/dpt` (read for facts only).

use std::fmt;
use std::str::FromStr;

pub use crate::knx::wire::apdu::Payload;

/// The datapoint types this firmware encodes and decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dpt {
    /// 1.001 DPT_Switch (off/on).
    Switch,
    /// 1.002 DPT_Bool (false/true).
    Bool,
    /// 1.010 DPT_Start (stop/start).
    Start,
    /// 1.011 DPT_State (inactive/active).
    State,
    /// 1.017 DPT_Trigger (both values trigger).
    Trigger,
    /// 5.010 DPT_Value_1_Ucount (0..=255; the charging-point state).
    Value1Ucount,
    /// 7.012 DPT_UElCurrentmA (0..=65535 mA).
    UElCurrentMa,
    /// 9.001 DPT_Value_Temp (°C, 2-octet float).
    ValueTemp,
    /// 9.021 DPT_Value_Curr (mA, 2-octet float).
    ValueCurr,
    /// 9.024 DPT_Power (kW, 2-octet float).
    PowerKw,
    /// 10.001 DPT_TimeOfDay (weekday, hour, minute, second).
    TimeOfDay,
    /// 13.010 DPT_ActiveEnergy (Wh, i32).
    ActiveEnergy,
    /// 13.013 DPT_ActiveEnergy_kWh (kWh, i32).
    ActiveEnergyKwh,
    /// 13.100 DPT_LongDeltaTimeSec (s, i32).
    LongDeltaTimeSec,
    /// 14.019 DPT_Value_Electric_Current (A, IEEE 754 f32).
    ElectricCurrent,
    /// 14.056 DPT_Value_Power (W, IEEE 754 f32).
    Power,
    /// 16.001 DPT_String_8859_1 (14 bytes, Latin-1, zero padded).
    StringLatin1,
}

/// The size of a DPT's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DptSize {
    /// At most 6 bits, carried inside the APCI octet ([`Payload::Short`]).
    Bits(u8),
    /// Whole bytes following the APCI ([`Payload::Long`]).
    Bytes(u8),
}

impl DptSize {
    /// The size class of a payload: a short payload counts as 6 bits.
    pub fn of(payload: &Payload) -> Self {
        match payload {
            Payload::Short(_) => Self::Bits(6),
            Payload::Long(bytes) => Self::Bytes(u8::try_from(bytes.len()).unwrap_or(u8::MAX)),
        }
    }
}

impl fmt::Display for DptSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bits(n) => write!(f, "{n} bit"),
            Self::Bytes(n) => write!(f, "{n} byte"),
        }
    }
}

impl Dpt {
    /// Every supported DPT, in numeric order.
    pub const ALL: [Self; 17] = [
        Self::Switch,
        Self::Bool,
        Self::Start,
        Self::State,
        Self::Trigger,
        Self::Value1Ucount,
        Self::UElCurrentMa,
        Self::ValueTemp,
        Self::ValueCurr,
        Self::PowerKw,
        Self::TimeOfDay,
        Self::ActiveEnergy,
        Self::ActiveEnergyKwh,
        Self::LongDeltaTimeSec,
        Self::ElectricCurrent,
        Self::Power,
        Self::StringLatin1,
    ];

    /// Main and sub number, e.g. `(14, 19)` for 14.019.
    pub const fn numbers(self) -> (u16, u16) {
        match self {
            Self::Switch => (1, 1),
            Self::Bool => (1, 2),
            Self::Start => (1, 10),
            Self::State => (1, 11),
            Self::Trigger => (1, 17),
            Self::Value1Ucount => (5, 10),
            Self::UElCurrentMa => (7, 12),
            Self::ValueTemp => (9, 1),
            Self::ValueCurr => (9, 21),
            Self::PowerKw => (9, 24),
            Self::TimeOfDay => (10, 1),
            Self::ActiveEnergy => (13, 10),
            Self::ActiveEnergyKwh => (13, 13),
            Self::LongDeltaTimeSec => (13, 100),
            Self::ElectricCurrent => (14, 19),
            Self::Power => (14, 56),
            Self::StringLatin1 => (16, 1),
        }
    }

    /// The main number (format), e.g. 14.
    pub const fn main(self) -> u16 {
        self.numbers().0
    }

    /// The sub number, e.g. 19.
    pub const fn sub(self) -> u16 {
        self.numbers().1
    }

    /// The DPT with the given main and sub numbers, if supported.
    pub fn from_numbers(main: u16, sub: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.numbers() == (main, sub))
    }

    /// The payload size.
    pub const fn size(self) -> DptSize {
        match self.main() {
            1 => DptSize::Bits(1),
            5 => DptSize::Bytes(1),
            7 | 9 => DptSize::Bytes(2),
            10 => DptSize::Bytes(3),
            13 | 14 => DptSize::Bytes(4),
            _ => DptSize::Bytes(14),
        }
    }

    /// The standard name, e.g. `DPT_Value_Electric_Current`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Switch => "DPT_Switch",
            Self::Bool => "DPT_Bool",
            Self::Start => "DPT_Start",
            Self::State => "DPT_State",
            Self::Trigger => "DPT_Trigger",
            Self::Value1Ucount => "DPT_Value_1_Ucount",
            Self::UElCurrentMa => "DPT_UElCurrentmA",
            Self::ValueTemp => "DPT_Value_Temp",
            Self::ValueCurr => "DPT_Value_Curr",
            Self::PowerKw => "DPT_Power",
            Self::TimeOfDay => "DPT_TimeOfDay",
            Self::ActiveEnergy => "DPT_ActiveEnergy",
            Self::ActiveEnergyKwh => "DPT_ActiveEnergy_kWh",
            Self::LongDeltaTimeSec => "DPT_LongDeltaTimeSec",
            Self::ElectricCurrent => "DPT_Value_Electric_Current",
            Self::Power => "DPT_Value_Power",
            Self::StringLatin1 => "DPT_String_8859_1",
        }
    }

    /// The unit of the value, if any.
    pub const fn unit(self) -> Option<&'static str> {
        match self {
            Self::UElCurrentMa | Self::ValueCurr => Some("mA"),
            Self::ValueTemp => Some("°C"),
            Self::PowerKw => Some("kW"),
            Self::ActiveEnergy => Some("Wh"),
            Self::ActiveEnergyKwh => Some("kWh"),
            Self::LongDeltaTimeSec => Some("s"),
            Self::ElectricCurrent => Some("A"),
            Self::Power => Some("W"),
            _ => None,
        }
    }

    /// The name of the [`DptValue`] variant this DPT decodes to.
    pub const fn value_kind(self) -> &'static str {
        match self.main() {
            1 => "Bool",
            5 => "U8",
            7 => "U16",
            9 | 14 => "Float",
            10 => "TimeOfDay",
            13 => "I32",
            _ => "Text",
        }
    }
}

impl fmt::Display for Dpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (main, sub) = self.numbers();
        write!(f, "{main}.{sub:03}")
    }
}

/// A DPT string that is not a supported DPT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a supported DPT (expected e.g. 9.001 or DPST-9-1)")]
pub struct ParseDptError {
    /// The rejected text.
    pub text: String,
}

impl FromStr for Dpt {
    type Err = ParseDptError;

    /// Accepts `main.sub` (`14.019`, `14.19`) and the ETS form `DPST-14-19`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ParseDptError {
            text: text.to_owned(),
        };
        let trimmed = text.trim();
        let (main, sub) = if let Some(rest) = trimmed.strip_prefix("DPST-") {
            rest.split_once('-').ok_or_else(err)?
        } else {
            trimmed.split_once('.').ok_or_else(err)?
        };
        let number = |s: &str| -> Option<u16> {
            if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let (main, sub) = number(main).zip(number(sub)).ok_or_else(err)?;
        Self::from_numbers(main, sub).ok_or_else(err)
    }
}

impl serde::Serialize for Dpt {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Dpt {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Day of the week in DPT 10.001 (1 = Monday … 7 = Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Weekday {
    /// 1.
    Monday,
    /// 2.
    Tuesday,
    /// 3.
    Wednesday,
    /// 4.
    Thursday,
    /// 5.
    Friday,
    /// 6.
    Saturday,
    /// 7.
    Sunday,
}

impl Weekday {
    /// The weekday for the 3-bit day field; 0 ("no day") and values above 7 give `None`.
    pub const fn from_number(day: u8) -> Option<Self> {
        match day {
            1 => Some(Self::Monday),
            2 => Some(Self::Tuesday),
            3 => Some(Self::Wednesday),
            4 => Some(Self::Thursday),
            5 => Some(Self::Friday),
            6 => Some(Self::Saturday),
            7 => Some(Self::Sunday),
            _ => None,
        }
    }

    /// 1 = Monday … 7 = Sunday.
    pub const fn number(self) -> u8 {
        match self {
            Self::Monday => 1,
            Self::Tuesday => 2,
            Self::Wednesday => 3,
            Self::Thursday => 4,
            Self::Friday => 5,
            Self::Saturday => 6,
            Self::Sunday => 7,
        }
    }

    const fn short_name(self) -> &'static str {
        match self {
            Self::Monday => "Mon",
            Self::Tuesday => "Tue",
            Self::Wednesday => "Wed",
            Self::Thursday => "Thu",
            Self::Friday => "Fri",
            Self::Saturday => "Sat",
            Self::Sunday => "Sun",
        }
    }
}

/// A DPT 10.001 time of day. [`encode`] checks the ranges (hour ≤ 23, minute and second
/// ≤ 59); [`TimeOfDay::new`] builds only valid values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeOfDay {
    /// The weekday, or `None` for "no day" (day field 0).
    pub weekday: Option<Weekday>,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59.
    pub second: u8,
}

impl TimeOfDay {
    /// A time of day, or `None` when a field is out of range.
    pub const fn new(weekday: Option<Weekday>, hour: u8, minute: u8, second: u8) -> Option<Self> {
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        Some(Self {
            weekday,
            hour,
            minute,
            second,
        })
    }

    const fn check(self) -> Option<&'static str> {
        if self.hour > 23 {
            Some("hour > 23")
        } else if self.minute > 59 {
            Some("minute > 59")
        } else if self.second > 59 {
            Some("second > 59")
        } else {
            None
        }
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(day) = self.weekday {
            write!(f, "{} ", day.short_name())?;
        }
        write!(f, "{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }
}

/// A decoded datapoint value, in the DPT's own unit.
#[derive(Debug, Clone, PartialEq)]
pub enum DptValue {
    /// DPT 1.x.
    Bool(bool),
    /// DPT 5.010.
    U8(u8),
    /// DPT 7.012.
    U16(u16),
    /// DPT 13.x.
    I32(i32),
    /// DPT 9.x and 14.x.
    Float(f64),
    /// DPT 10.001.
    TimeOfDay(TimeOfDay),
    /// DPT 16.001.
    Text(String),
}

impl DptValue {
    /// The boolean of a `Bool` value.
    pub const fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Any numeric value as `f64` (`Bool`, `TimeOfDay` and `Text` give `None`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::U8(v) => Some(f64::from(*v)),
            Self::U16(v) => Some(f64::from(*v)),
            Self::I32(v) => Some(f64::from(*v)),
            Self::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// An integral numeric value as `i64` (a `Float` must be finite and integral).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::U8(v) => Some(i64::from(*v)),
            Self::U16(v) => Some(i64::from(*v)),
            Self::I32(v) => Some(i64::from(*v)),
            Self::Float(v) => float_to_i64(*v),
            _ => None,
        }
    }
}

/// `v` as `i64` when it is finite, integral and within ±2^53 (so the conversion is exact).
fn float_to_i64(v: f64) -> Option<i64> {
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    if v.is_finite() && v.fract() == 0.0 && v.abs() <= LIMIT {
        // Exact: integral and within the range where every integer is representable.
        #[allow(clippy::cast_possible_truncation)]
        Some(v as i64)
    } else {
        None
    }
}

impl fmt::Display for DptValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::U8(v) => write!(f, "{v}"),
            Self::U16(v) => write!(f, "{v}"),
            Self::I32(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::TimeOfDay(t) => write!(f, "{t}"),
            Self::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// Why a value could not be encoded or a payload decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DptError {
    /// The payload has the wrong size for the DPT.
    #[error("DPT {dpt}: payload is {got}, expected {expected}")]
    Size {
        /// The DPT.
        dpt: Dpt,
        /// The DPT's size.
        expected: DptSize,
        /// The payload's size.
        got: DptSize,
    },
    /// The value is the wrong [`DptValue`] variant for the DPT.
    #[error("DPT {dpt}: expected a {expected} value")]
    ValueKind {
        /// The DPT.
        dpt: Dpt,
        /// The expected variant (see [`Dpt::value_kind`]).
        expected: &'static str,
    },
    /// The value is outside the range the DPT can carry (NaN included).
    #[error("DPT {dpt}: value out of range ({reason})")]
    OutOfRange {
        /// The DPT.
        dpt: Dpt,
        /// What is out of range.
        reason: &'static str,
    },
    /// The payload is the "invalid data" pattern (DPT 9 `0x7FFF`) or a non-finite DPT 14
    /// float.
    #[error("DPT {dpt}: payload marks invalid data")]
    InvalidData {
        /// The DPT.
        dpt: Dpt,
    },
    /// The payload has the right size but an impossible content (e.g. hour 25).
    #[error("DPT {dpt}: malformed payload ({reason})")]
    Malformed {
        /// The DPT.
        dpt: Dpt,
        /// What is wrong.
        reason: &'static str,
    },
    /// A character of a DPT 16.001 string is outside ISO 8859-1 (or is NUL).
    #[error("DPT {dpt}: character {character:?} is not encodable in ISO 8859-1")]
    NotLatin1 {
        /// The DPT.
        dpt: Dpt,
        /// The offending character.
        character: char,
    },
    /// A DPT 16.001 string has more than 14 characters.
    #[error("DPT {dpt}: {chars} characters, at most 14 fit")]
    TooLong {
        /// The DPT.
        dpt: Dpt,
        /// Number of characters given.
        chars: usize,
    },
}

/// Smallest DPT 9 value: −2048 · 2^15 · 0.01.
pub const F16_MIN: f64 = -671_088.64;
/// Largest DPT 9 value of the format, 2047 · 2^15 · 0.01. Its encoding is `0x7FFF`, the
/// "invalid data" pattern, so [`encode_f16`] rejects it; the largest encodable value is
/// 2046 · 2^15 · 0.01 = 670 433.28.
pub const F16_MAX: f64 = 670_760.96;
/// The DPT 9 "invalid data" pattern.
pub const F16_INVALID: u16 = 0x7FFF;
/// The largest DPT 9 value that can be sent: 670433.28 = 2046 · 2^15 / 100 (`0x7FFE`). The
/// nominal maximum [`F16_MAX`] would encode as the invalid-data pattern [`F16_INVALID`].
pub const F16_MAX_SENDABLE: f64 = 670_433.28;

/// Encodes a DPT 9 2-octet float: value = 0.01 · M · 2^E with M a 12-bit two's-complement
/// mantissa (sign in bit 15, 11 bits in bits 10–0) and E a 4-bit exponent (bits 14–11).
///
/// The conversion is the one ETS and xknx (the KNX library behind Home Assistant) use, so
/// both sides of the bus agree to the bit: take `value · 100`, halve it until it lies in
/// −2048..=2047 (the smallest exponent that fits), then round the mantissa **to nearest,
/// ties to even**. A value that rounds to 0 at E 0 is `0x0000` (never the negative zero
/// `0x8000`, which means −20.48). Examples: 20.48 → `0x0C00`; 21.0 → `0x0C1A`; 101.0
/// (10100 / 8 = 1262.5, a tie) → `0x1CEE` (100.96). `tests/dpt_xknx.rs` checks hundreds of
/// values against xknx. Returns `None` for NaN, values outside [`F16_MIN`]..=[`F16_MAX`],
/// and values that would encode as [`F16_INVALID`].
pub fn encode_f16(value: f64) -> Option<u16> {
    if !value.is_finite() || !(F16_MIN..=F16_MAX).contains(&value) {
        return None;
    }
    let mut scaled = value * 100.0;
    if scaled.round_ties_even() == 0.0 {
        return Some(0x0000);
    }
    let mut exponent: u16 = 0;
    while !(-2048.0..=2047.0).contains(&scaled) {
        exponent += 1;
        if exponent > 15 {
            return None;
        }
        scaled /= 2.0;
    }
    // −2048 ≤ scaled ≤ 2047, so the rounded mantissa fits 12 bits with its sign.
    #[allow(
        clippy::cast_possible_truncation,
        reason = "range checked by the loop above"
    )]
    let mantissa = scaled.round_ties_even() as i32;
    let low = u16::try_from(mantissa.rem_euclid(2048)).ok()?;
    let sign = if scaled < 0.0 { 0x8000 } else { 0 };
    let raw = sign | (exponent << 11) | low;
    (raw != F16_INVALID).then_some(raw)
}

/// Decodes a DPT 9 2-octet float; `None` for the invalid-data pattern `0x7FFF`. The result is
/// the `f64` nearest to the exact decimal value M · 2^E / 100.
pub fn decode_f16(raw: u16) -> Option<f64> {
    if raw == F16_INVALID {
        return None;
    }
    let exponent = u32::from((raw >> 11) & 0x0F);
    let low = i32::from(raw & 0x07FF);
    let m = if raw & 0x8000 != 0 { low - 2048 } else { low };
    // |m · 2^e| ≤ 2^26: exact in i32 and in f64, so one correctly rounded division.
    Some(f64::from(m << exponent) / 100.0)
}

fn integer(dpt: Dpt, value: &DptValue, min: i64, max: i64) -> Result<i64, DptError> {
    let v = match value {
        DptValue::Float(f) if f.is_nan() => {
            return Err(DptError::OutOfRange { dpt, reason: "NaN" });
        }
        DptValue::Float(f) if f.is_finite() && f.fract() != 0.0 => {
            return Err(DptError::OutOfRange {
                dpt,
                reason: "not an integer",
            });
        }
        DptValue::U8(_) | DptValue::U16(_) | DptValue::I32(_) | DptValue::Float(_) => {
            value.as_i64().ok_or(DptError::OutOfRange {
                dpt,
                reason: "too large",
            })?
        }
        _ => {
            return Err(DptError::ValueKind {
                dpt,
                expected: dpt.value_kind(),
            });
        }
    };
    if v < min {
        Err(DptError::OutOfRange {
            dpt,
            reason: "below minimum",
        })
    } else if v > max {
        Err(DptError::OutOfRange {
            dpt,
            reason: "above maximum",
        })
    } else {
        Ok(v)
    }
}

fn float(dpt: Dpt, value: &DptValue) -> Result<f64, DptError> {
    let v = value.as_f64().ok_or(DptError::ValueKind {
        dpt,
        expected: dpt.value_kind(),
    })?;
    if v.is_nan() {
        return Err(DptError::OutOfRange { dpt, reason: "NaN" });
    }
    Ok(v)
}

/// Encodes `value` as the payload of `dpt`.
///
/// Each DPT takes the [`DptValue`] variant named by [`Dpt::value_kind`]; integer and float
/// DPTs also accept the other numeric variants (a `Float` for an integer DPT must be
/// integral) and check the range.
pub fn encode(dpt: Dpt, value: &DptValue) -> Result<Payload, DptError> {
    let out_of_range = |reason| DptError::OutOfRange { dpt, reason };
    match dpt.main() {
        1 => match value {
            DptValue::Bool(b) => Ok(Payload::Short(u8::from(*b))),
            _ => Err(DptError::ValueKind {
                dpt,
                expected: "Bool",
            }),
        },
        5 => {
            let v = integer(dpt, value, 0, 255)?;
            let v = u8::try_from(v).map_err(|_| out_of_range("above maximum"))?;
            Ok(Payload::Long(vec![v]))
        }
        7 => {
            let v = integer(dpt, value, 0, 65_535)?;
            let v = u16::try_from(v).map_err(|_| out_of_range("above maximum"))?;
            Ok(Payload::Long(v.to_be_bytes().to_vec()))
        }
        9 => {
            let v = float(dpt, value)?;
            if dpt == Dpt::ValueTemp && v < -273.0 {
                return Err(out_of_range("below -273 °C"));
            }
            if v < F16_MIN {
                return Err(out_of_range("below -671088.64"));
            }
            if v > F16_MAX {
                return Err(out_of_range("above 670760.96"));
            }
            let raw = encode_f16(v).ok_or(out_of_range("encodes as 0x7FFF (invalid data)"))?;
            Ok(Payload::Long(raw.to_be_bytes().to_vec()))
        }
        10 => match value {
            DptValue::TimeOfDay(t) => {
                if let Some(reason) = t.check() {
                    return Err(out_of_range(reason));
                }
                let day = t.weekday.map_or(0, Weekday::number);
                Ok(Payload::Long(vec![(day << 5) | t.hour, t.minute, t.second]))
            }
            _ => Err(DptError::ValueKind {
                dpt,
                expected: "TimeOfDay",
            }),
        },
        13 => {
            let v = integer(dpt, value, i64::from(i32::MIN), i64::from(i32::MAX))?;
            let v = i32::try_from(v).map_err(|_| out_of_range("outside i32"))?;
            Ok(Payload::Long(v.to_be_bytes().to_vec()))
        }
        14 => {
            let v = float(dpt, value)?;
            if !v.is_finite() || v.abs() > f64::from(f32::MAX) {
                return Err(out_of_range("not a finite f32"));
            }
            // In range, so the conversion rounds to the nearest f32 and cannot overflow.
            #[allow(clippy::cast_possible_truncation)]
            let single = v as f32;
            Ok(Payload::Long(single.to_be_bytes().to_vec()))
        }
        _ => match value {
            DptValue::Text(text) => encode_latin1(dpt, text).map(Payload::Long),
            _ => Err(DptError::ValueKind {
                dpt,
                expected: "Text",
            }),
        },
    }
}

fn encode_latin1(dpt: Dpt, text: &str) -> Result<Vec<u8>, DptError> {
    let chars = text.chars().count();
    if chars > 14 {
        return Err(DptError::TooLong { dpt, chars });
    }
    let mut bytes = Vec::with_capacity(14);
    for character in text.chars() {
        let byte = u8::try_from(u32::from(character))
            .ok()
            .filter(|b| *b != 0)
            .ok_or(DptError::NotLatin1 { dpt, character })?;
        bytes.push(byte);
    }
    bytes.resize(14, 0);
    Ok(bytes)
}

fn bytes_of<const N: usize>(dpt: Dpt, payload: &Payload) -> Result<[u8; N], DptError> {
    let size_error = || DptError::Size {
        dpt,
        expected: dpt.size(),
        got: DptSize::of(payload),
    };
    match payload {
        Payload::Long(bytes) => <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| size_error()),
        Payload::Short(_) => Err(size_error()),
    }
}

/// Decodes the payload of `dpt`.
pub fn decode(dpt: Dpt, payload: &Payload) -> Result<DptValue, DptError> {
    match dpt.main() {
        1 => match payload {
            Payload::Short(v @ (0 | 1)) => Ok(DptValue::Bool(*v == 1)),
            Payload::Short(_) => Err(DptError::Malformed {
                dpt,
                reason: "bits above bit 0 set",
            }),
            Payload::Long(_) => Err(DptError::Size {
                dpt,
                expected: dpt.size(),
                got: DptSize::of(payload),
            }),
        },
        5 => {
            let [v] = bytes_of::<1>(dpt, payload)?;
            Ok(DptValue::U8(v))
        }
        7 => Ok(DptValue::U16(u16::from_be_bytes(bytes_of(dpt, payload)?))),
        9 => {
            let raw = u16::from_be_bytes(bytes_of(dpt, payload)?);
            let value = decode_f16(raw).ok_or(DptError::InvalidData { dpt })?;
            if dpt == Dpt::ValueTemp && value < -273.0 {
                // Below absolute zero: not a temperature (xknx refuses it too).
                return Err(DptError::OutOfRange {
                    dpt,
                    reason: "below -273 °C",
                });
            }
            Ok(DptValue::Float(value))
        }
        10 => {
            // Reserved bits (the top two of minute and second) are ignored.
            let [b0, b1, b2] = bytes_of::<3>(dpt, payload)?;
            let weekday = Weekday::from_number(b0 >> 5);
            let time = TimeOfDay {
                weekday,
                hour: b0 & 0x1F,
                minute: b1 & 0x3F,
                second: b2 & 0x3F,
            };
            match time.check() {
                Some(reason) => Err(DptError::Malformed { dpt, reason }),
                None => Ok(DptValue::TimeOfDay(time)),
            }
        }
        13 => Ok(DptValue::I32(i32::from_be_bytes(bytes_of(dpt, payload)?))),
        14 => {
            let v = f32::from_be_bytes(bytes_of(dpt, payload)?);
            if v.is_finite() {
                Ok(DptValue::Float(f64::from(v)))
            } else {
                Err(DptError::InvalidData { dpt })
            }
        }
        _ => {
            let bytes = bytes_of::<14>(dpt, payload)?;
            let text = bytes
                .iter()
                .take_while(|b| **b != 0)
                .map(|b| char::from(*b))
                .collect();
            Ok(DptValue::Text(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    #[test]
    // Exact comparisons are the point: the codec rounds exactly.
    #[allow(clippy::float_cmp)]
    fn f16_known_vectors() {
        // (value, raw, decoded): raw computed by hand from value = 0.01·M·2^E with the
        // smallest E that fits; `decoded` is what the raw pattern means.
        let vectors: [(f64, u16, f64); 14] = [
            (0.0, 0x0000, 0.0),
            (0.01, 0x0001, 0.01),               // E 0, M 1
            (-0.01, 0x87FF, -0.01),             // E 0, M −1 = 0xFFF (12-bit two's complement)
            (20.47, 0x07FF, 20.47),             // E 0, M 2047: largest E 0 value
            (20.48, 0x0C00, 20.48),             // M 2048 does not fit E 0 → E 1, M 1024
            (-20.48, 0x8000, -20.48),           // E 0, M −2048 fits
            (21.0, 0x0C1A, 21.0),               // E 1, M 1050
            (-30.0, 0x8A24, -30.0),             // E 1, M −1500 = 0xA24
            (101.0, 0x1CEE, 100.96), // E 3, 10100/8 = 1262.5: tie, to even → 1262 (as xknx)
            (-101.0, 0x9B12, -100.96), // E 3, M −1262 = 0xB12 (as xknx)
            (0.005, 0x0000, 0.0),    // 0.5 rounds to even 0 → 0x0000 (as ETS and xknx)
            (670_433.28, 0x7FFE, 670_433.28), // E 15, M 2046: largest encodable value
            (-671_088.64, 0xF800, -671_088.64), // E 15, M −2048: smallest value
            (16.0, 0x0640, 16.0),    // E 0, M 1600
        ];
        for (value, raw, decoded) in vectors {
            assert_eq!(encode_f16(value), Some(raw), "encode {value}");
            assert_eq!(decode_f16(raw), Some(decoded), "decode {raw:#06x}");
        }
    }

    #[test]
    fn f16_invalid_and_out_of_range() {
        assert_eq!(decode_f16(0x7FFF), None);
        assert_eq!(encode_f16(F16_MAX), None); // would be 0x7FFF
        assert_eq!(encode_f16(670_760.0), None); // rounds to 2047·2^15 too
        assert_eq!(encode_f16(f64::NAN), None);
        assert_eq!(encode_f16(f64::INFINITY), None);
        assert_eq!(encode_f16(-671_088.65), None);
        assert_eq!(encode_f16(1e9), None);
        assert_eq!(encode_f16(-0.0), Some(0x0000));
        assert_eq!(encode_f16(1e-300), Some(0x0000));
        assert_eq!(
            decode(Dpt::ValueTemp, &Payload::Long(vec![0x7F, 0xFF])),
            Err(DptError::InvalidData {
                dpt: Dpt::ValueTemp
            })
        );
        assert!(matches!(
            encode(Dpt::PowerKw, &DptValue::Float(f64::NAN)),
            Err(DptError::OutOfRange { .. })
        ));
        assert!(matches!(
            encode(Dpt::ValueCurr, &DptValue::Float(700_000.0)),
            Err(DptError::OutOfRange { .. })
        ));
    }

    #[test]
    fn f16_every_pattern_reencodes_to_the_same_value() {
        for raw in 0..=u16::MAX {
            let Some(value) = decode_f16(raw) else {
                assert_eq!(raw, F16_INVALID);
                continue;
            };
            let again =
                encode_f16(value).unwrap_or_else(|| panic!("{raw:#06x} = {value} not encodable"));
            assert_eq!(decode_f16(again), Some(value), "{raw:#06x}");
        }
    }

    #[test]
    fn dpt1_short_values() {
        for dpt in [Dpt::Switch, Dpt::Bool, Dpt::Start, Dpt::State, Dpt::Trigger] {
            assert_eq!(encode(dpt, &DptValue::Bool(true)), Ok(Payload::Short(1)));
            assert_eq!(encode(dpt, &DptValue::Bool(false)), Ok(Payload::Short(0)));
            assert_eq!(decode(dpt, &Payload::Short(1)), Ok(DptValue::Bool(true)));
            assert!(matches!(
                decode(dpt, &Payload::Short(2)),
                Err(DptError::Malformed { .. })
            ));
            assert_eq!(
                decode(dpt, &Payload::Long(vec![1])),
                Err(DptError::Size {
                    dpt,
                    expected: DptSize::Bits(1),
                    got: DptSize::Bytes(1)
                })
            );
        }
        assert!(matches!(
            encode(Dpt::Switch, &DptValue::U8(1)),
            Err(DptError::ValueKind { .. })
        ));
    }

    #[test]
    fn integer_vectors() {
        assert_eq!(
            encode(Dpt::Value1Ucount, &DptValue::U8(200)),
            Ok(Payload::Long(vec![0xC8]))
        );
        // 16000 mA = 0x3E80.
        assert_eq!(
            encode(Dpt::UElCurrentMa, &DptValue::U16(16_000)),
            Ok(Payload::Long(vec![0x3E, 0x80]))
        );
        assert!(matches!(
            encode(Dpt::UElCurrentMa, &DptValue::I32(65_536)),
            Err(DptError::OutOfRange { .. })
        ));
        assert!(matches!(
            encode(Dpt::UElCurrentMa, &DptValue::I32(-1)),
            Err(DptError::OutOfRange { .. })
        ));
        assert!(matches!(
            encode(Dpt::UElCurrentMa, &DptValue::Float(6.5)),
            Err(DptError::OutOfRange { .. })
        ));
        assert_eq!(
            encode(Dpt::UElCurrentMa, &DptValue::Float(6000.0)),
            Ok(Payload::Long(vec![0x17, 0x70]))
        );
        // −1 Wh = 0xFFFFFFFF, 123456 kWh = 0x0001E240.
        assert_eq!(
            encode(Dpt::ActiveEnergy, &DptValue::I32(-1)),
            Ok(Payload::Long(vec![0xFF; 4]))
        );
        assert_eq!(
            decode(
                Dpt::ActiveEnergyKwh,
                &Payload::Long(vec![0x00, 0x01, 0xE2, 0x40])
            ),
            Ok(DptValue::I32(123_456))
        );
        assert!(matches!(
            encode(Dpt::LongDeltaTimeSec, &DptValue::Float(3e9)),
            Err(DptError::OutOfRange { .. })
        ));
        assert_eq!(
            decode(Dpt::Value1Ucount, &Payload::Long(vec![1, 2])),
            Err(DptError::Size {
                dpt: Dpt::Value1Ucount,
                expected: DptSize::Bytes(1),
                got: DptSize::Bytes(2)
            })
        );
        assert!(matches!(
            decode(Dpt::ActiveEnergy, &Payload::Short(1)),
            Err(DptError::Size {
                got: DptSize::Bits(6),
                ..
            })
        ));
    }

    #[test]
    fn four_byte_float_vectors() {
        // 16.0 A = 0x41800000; 11000 W = 0x462BE000.
        assert_eq!(
            encode(Dpt::ElectricCurrent, &DptValue::Float(16.0)),
            Ok(Payload::Long(vec![0x41, 0x80, 0x00, 0x00]))
        );
        assert_eq!(
            decode(Dpt::Power, &Payload::Long(vec![0x46, 0x2B, 0xE0, 0x00])),
            Ok(DptValue::Float(11_000.0))
        );
        assert!(matches!(
            encode(Dpt::Power, &DptValue::Float(f64::INFINITY)),
            Err(DptError::OutOfRange { .. })
        ));
        assert!(matches!(
            encode(Dpt::Power, &DptValue::Float(1e39)),
            Err(DptError::OutOfRange { .. })
        ));
        assert_eq!(
            decode(Dpt::Power, &Payload::Long(vec![0x7F, 0xC0, 0x00, 0x00])),
            Err(DptError::InvalidData { dpt: Dpt::Power })
        );
    }

    #[test]
    fn time_of_day() {
        // Wednesday (3) 13:37:42: 011 01101 = 0x6D, 0x25, 0x2A.
        let t = TimeOfDay::new(Some(Weekday::Wednesday), 13, 37, 42).unwrap();
        assert_eq!(
            encode(Dpt::TimeOfDay, &DptValue::TimeOfDay(t)),
            Ok(Payload::Long(vec![0x6D, 0x25, 0x2A]))
        );
        assert_eq!(t.to_string(), "Wed 13:37:42");
        let no_day = TimeOfDay::new(None, 0, 0, 0).unwrap();
        assert_eq!(
            decode(Dpt::TimeOfDay, &Payload::Long(vec![0x00, 0x00, 0x00])),
            Ok(DptValue::TimeOfDay(no_day))
        );
        let bad = TimeOfDay {
            weekday: None,
            hour: 24,
            minute: 0,
            second: 0,
        };
        assert_eq!(
            encode(Dpt::TimeOfDay, &DptValue::TimeOfDay(bad)),
            Err(DptError::OutOfRange {
                dpt: Dpt::TimeOfDay,
                reason: "hour > 23"
            })
        );
        assert!(matches!(
            decode(Dpt::TimeOfDay, &Payload::Long(vec![0x18, 0x00, 0x00])),
            Err(DptError::Malformed { .. })
        ));
        assert!(TimeOfDay::new(None, 23, 60, 0).is_none());
    }

    #[test]
    fn latin1_strings() {
        let payload = encode(Dpt::StringLatin1, &DptValue::Text("Wallbox Süd".to_owned())).unwrap();
        let mut expected = b"Wallbox S\xFCd".to_vec();
        expected.resize(14, 0);
        assert_eq!(payload, Payload::Long(expected));
        assert_eq!(
            decode(Dpt::StringLatin1, &payload),
            Ok(DptValue::Text("Wallbox Süd".to_owned()))
        );
        assert_eq!(
            encode(Dpt::StringLatin1, &DptValue::Text("€".to_owned())),
            Err(DptError::NotLatin1 {
                dpt: Dpt::StringLatin1,
                character: '€'
            })
        );
        assert_eq!(
            encode(Dpt::StringLatin1, &DptValue::Text("a\0b".to_owned())),
            Err(DptError::NotLatin1 {
                dpt: Dpt::StringLatin1,
                character: '\0'
            })
        );
        assert_eq!(
            encode(Dpt::StringLatin1, &DptValue::Text("x".repeat(15))),
            Err(DptError::TooLong {
                dpt: Dpt::StringLatin1,
                chars: 15
            })
        );
        // Exactly 14 characters, no terminator.
        assert!(encode(Dpt::StringLatin1, &DptValue::Text("ÿ".repeat(14))).is_ok());
        // Decoding stops at the first NUL.
        let mut bytes = b"ab\0cd".to_vec();
        bytes.resize(14, 0);
        assert_eq!(
            decode(Dpt::StringLatin1, &Payload::Long(bytes)),
            Ok(DptValue::Text("ab".to_owned()))
        );
    }

    #[test]
    fn names_and_parsing() {
        for dpt in Dpt::ALL {
            assert_eq!(dpt.to_string().parse::<Dpt>(), Ok(dpt));
            let (main, sub) = dpt.numbers();
            assert_eq!(format!("DPST-{main}-{sub}").parse::<Dpt>(), Ok(dpt));
            assert_eq!(Dpt::from_numbers(main, sub), Some(dpt));
        }
        assert_eq!(Dpt::ElectricCurrent.to_string(), "14.019");
        assert_eq!("13.100".parse(), Ok(Dpt::LongDeltaTimeSec));
        assert_eq!("9.21".parse(), Ok(Dpt::ValueCurr));
        assert!("9.002".parse::<Dpt>().is_err());
        assert!("9".parse::<Dpt>().is_err());
        assert!("+9.001".parse::<Dpt>().is_err());
        assert_eq!(Dpt::StringLatin1.size(), DptSize::Bytes(14));
        assert_eq!(Dpt::Trigger.size(), DptSize::Bits(1));
        let json = serde_json::to_string(&Dpt::PowerKw).unwrap();
        assert_eq!(json, "\"9.024\"");
        assert_eq!(serde_json::from_str::<Dpt>(&json).unwrap(), Dpt::PowerKw);
    }

    fn arb_dpt() -> impl Strategy<Value = Dpt> {
        (0..Dpt::ALL.len()).prop_map(|i| Dpt::ALL.get(i).copied().unwrap_or(Dpt::Switch))
    }

    fn arb_payload() -> impl Strategy<Value = Payload> {
        prop_oneof![
            (0u8..=63).prop_map(Payload::Short),
            vec(any::<u8>(), 1..20).prop_map(Payload::Long),
        ]
    }

    proptest! {
        #[test]
        fn f16_within_half_lsb(value in F16_MIN..670_433.28f64) {
            let raw = encode_f16(value).unwrap();
            let back = decode_f16(raw).unwrap();
            let exponent = i32::from((raw >> 11) & 0x0F);
            let half_lsb = 0.005 * 2f64.powi(exponent);
            prop_assert!((back - value).abs() <= half_lsb * (1.0 + 1e-9),
                "{value} -> {raw:#06x} -> {back}");
            // The exponent is the smallest at which value · 100 (before rounding, as ETS and
            // xknx do it) lies in −2048..=2047.
            if exponent > 0 {
                let scaled = value * 100.0 / 2f64.powi(exponent - 1);
                prop_assert!(!(-2048.0..=2047.0).contains(&scaled));
            }
        }

        #[test]
        fn exact_round_trips(
            u8v in any::<u8>(),
            u16v in any::<u16>(),
            i32v in any::<i32>(),
            f32v in any::<f32>().prop_filter("finite", |f| f.is_finite()),
            text in "[ -~\u{a0}-\u{ff}]{0,14}",
            b in any::<bool>(),
            (day, hour, minute, second) in (0u8..=7, 0u8..24, 0u8..60, 0u8..60),
        ) {
            let t = TimeOfDay::new(Weekday::from_number(day), hour, minute, second).unwrap();
            let cases = [
                (Dpt::Switch, DptValue::Bool(b)),
                (Dpt::Value1Ucount, DptValue::U8(u8v)),
                (Dpt::UElCurrentMa, DptValue::U16(u16v)),
                (Dpt::ActiveEnergy, DptValue::I32(i32v)),
                (Dpt::ActiveEnergyKwh, DptValue::I32(i32v)),
                (Dpt::LongDeltaTimeSec, DptValue::I32(i32v)),
                (Dpt::ElectricCurrent, DptValue::Float(f64::from(f32v))),
                (Dpt::Power, DptValue::Float(f64::from(f32v))),
                (Dpt::TimeOfDay, DptValue::TimeOfDay(t)),
                (Dpt::StringLatin1, DptValue::Text(text.clone())),
            ];
            for (dpt, value) in cases {
                let payload = encode(dpt, &value).unwrap();
                prop_assert_eq!(DptSize::of(&payload) == dpt.size(), dpt.main() != 1);
                prop_assert_eq!(decode(dpt, &payload).unwrap(), value);
            }
        }

        #[test]
        fn decode_arbitrary_payloads(dpt in arb_dpt(), payload in arb_payload()) {
            // Never panics; whatever decodes re-encodes to a payload that decodes the same.
            if let Ok(value) = decode(dpt, &payload) {
                let _ = value.to_string();
                let again = encode(dpt, &value).unwrap();
                prop_assert_eq!(decode(dpt, &again).unwrap(), value);
            }
        }

        #[test]
        fn encode_arbitrary_floats(dpt in arb_dpt(), value in any::<f64>()) {
            // Never panics; NaN is always an error.
            let result = encode(dpt, &DptValue::Float(value));
            if value.is_nan() {
                prop_assert!(result.is_err());
            }
        }
    }
}
