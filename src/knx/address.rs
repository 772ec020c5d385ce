//! KNX addresses: [`GroupAddress`] and [`IndividualAddress`].
//!
//! Both are 16-bit values on the wire. This module owns their textual forms:
//!
//! * group addresses in the 3-level (`main/middle/sub`, 5/3/8 bits), 2-level (`main/sub`, 5/11
//!   bits) and free (`0..=65535`) notations;
//! * individual addresses as `area.line.device` (4/4/8 bits).
//!
//! Parsing is strict: every part must be in range, no empty parts, no signs, no extra
//! separators. Errors say what was wrong. Nothing here panics on any input.

use std::fmt;
use std::str::FromStr;

/// Why an address string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The text does not have the shape of the address kind.
    #[error("`{text}` is not a {kind} (expected {expected})")]
    Syntax {
        /// The offending text.
        text: String,
        /// "group address" or "individual address".
        kind: &'static str,
        /// The accepted notations.
        expected: &'static str,
    },
    /// One part is outside its range.
    #[error("`{text}`: {part} {value} is out of range 0..={max}")]
    Range {
        /// The offending text.
        text: String,
        /// Which part (main, middle, sub, area, line, device).
        part: &'static str,
        /// The value found.
        value: u32,
        /// The largest allowed value.
        max: u32,
    },
}

/// A KNX group address (the destination of group telegrams).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupAddress(u16);

/// How a group address is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAddressStyle {
    /// `main/middle/sub` (5/3/8 bits).
    ThreeLevel,
    /// `main/sub` (5/11 bits).
    TwoLevel,
    /// A plain number 0..=65535.
    Free,
}

impl GroupAddress {
    /// The group address with raw 16-bit value `raw`.
    pub const fn from_raw(raw: u16) -> Self {
        Self(raw)
    }

    /// The raw 16-bit value.
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// A 3-level address, or `None` when a part is out of range.
    pub const fn three_level(main: u8, middle: u8, sub: u8) -> Option<Self> {
        if main > 31 || middle > 7 {
            return None;
        }
        Some(Self(
            ((main as u16) << 11) | ((middle as u16) << 8) | sub as u16,
        ))
    }

    /// Main group (5 bits).
    pub const fn main(self) -> u8 {
        (self.0 >> 11) as u8
    }

    /// Middle group of the 3-level notation (3 bits).
    pub const fn middle(self) -> u8 {
        ((self.0 >> 8) & 0x07) as u8
    }

    /// Sub group of the 3-level notation (8 bits).
    pub const fn sub(self) -> u8 {
        (self.0 & 0xFF) as u8
    }

    /// Formats the address in the given style.
    pub fn display(self, style: GroupAddressStyle) -> String {
        match style {
            GroupAddressStyle::ThreeLevel => self.to_string(),
            GroupAddressStyle::TwoLevel => format!("{}/{}", self.main(), self.0 & 0x07FF),
            GroupAddressStyle::Free => self.0.to_string(),
        }
    }
}

impl fmt::Display for GroupAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.main(), self.middle(), self.sub())
    }
}

/// Parses one decimal part: digits only, no sign, no leading `+`, at most 5 digits.
fn part(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn check(text: &str, part_name: &'static str, value: u32, max: u32) -> Result<u32, AddressError> {
    if value > max {
        return Err(AddressError::Range {
            text: text.to_owned(),
            part: part_name,
            value,
            max,
        });
    }
    Ok(value)
}

impl FromStr for GroupAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || AddressError::Syntax {
            text: text.to_owned(),
            kind: "group address",
            expected: "main/middle/sub, main/sub or 0..=65535",
        };
        let parts: Vec<&str> = text.trim().split('/').collect();
        let nums: Option<Vec<u32>> = parts.iter().map(|p| part(p)).collect();
        let nums = nums.ok_or_else(syntax)?;
        let raw = match nums.as_slice() {
            [free] => check(text, "address", *free, 0xFFFF)?,
            [main, sub] => {
                let main = check(text, "main group", *main, 31)?;
                let sub = check(text, "sub group", *sub, 0x07FF)?;
                (main << 11) | sub
            }
            [main, middle, sub] => {
                let main = check(text, "main group", *main, 31)?;
                let middle = check(text, "middle group", *middle, 7)?;
                let sub = check(text, "sub group", *sub, 255)?;
                (main << 11) | (middle << 8) | sub
            }
            _ => return Err(syntax()),
        };
        u16::try_from(raw).map(Self).map_err(|_| syntax())
    }
}

/// A KNX individual (physical) address `area.line.device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndividualAddress(u16);

impl IndividualAddress {
    /// The address of an unconfigured device, 15.15.255.
    pub const UNCONFIGURED: Self = Self(0xFFFF);

    /// The individual address with raw 16-bit value `raw`.
    pub const fn from_raw(raw: u16) -> Self {
        Self(raw)
    }

    /// `area.line.device`, or `None` when a part is out of range.
    pub const fn new(area: u8, line: u8, device: u8) -> Option<Self> {
        if area > 15 || line > 15 {
            return None;
        }
        Some(Self(
            ((area as u16) << 12) | ((line as u16) << 8) | device as u16,
        ))
    }

    /// The raw 16-bit value.
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// Area (4 bits).
    pub const fn area(self) -> u8 {
        (self.0 >> 12) as u8
    }

    /// Line (4 bits).
    pub const fn line(self) -> u8 {
        ((self.0 >> 8) & 0x0F) as u8
    }

    /// Device (8 bits).
    pub const fn device(self) -> u8 {
        (self.0 & 0xFF) as u8
    }
}

impl fmt::Display for IndividualAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.area(), self.line(), self.device())
    }
}

impl FromStr for IndividualAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || AddressError::Syntax {
            text: text.to_owned(),
            kind: "individual address",
            expected: "area.line.device",
        };
        let parts: Vec<&str> = text.trim().split('.').collect();
        let nums: Option<Vec<u32>> = parts.iter().map(|p| part(p)).collect();
        match nums.ok_or_else(syntax)?.as_slice() {
            [area, line, device] => {
                let area = check(text, "area", *area, 15)?;
                let line = check(text, "line", *line, 15)?;
                let device = check(text, "device", *device, 255)?;
                u16::try_from((area << 12) | (line << 8) | device)
                    .map(Self)
                    .map_err(|_| syntax())
            }
            _ => Err(syntax()),
        }
    }
}

impl serde::Serialize for GroupAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for GroupAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for IndividualAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for IndividualAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn three_level_round_trip() {
        let ga: GroupAddress = "1/2/3".parse().unwrap();
        assert_eq!(ga.raw(), 0x0A03);
        assert_eq!(ga.to_string(), "1/2/3");
        assert_eq!("31/7/255".parse::<GroupAddress>().unwrap().raw(), 0xFFFF);
    }

    #[test]
    fn two_level_and_free() {
        assert_eq!("1/515".parse::<GroupAddress>().unwrap().raw(), 0x0A03);
        assert_eq!("2563".parse::<GroupAddress>().unwrap().raw(), 0x0A03);
        let ga = GroupAddress::from_raw(0x0A03);
        assert_eq!(ga.display(GroupAddressStyle::TwoLevel), "1/515");
        assert_eq!(ga.display(GroupAddressStyle::Free), "2563");
    }

    #[test]
    fn rejects_bad_group_addresses() {
        for bad in [
            "", "/", "1//2", "32/0/0", "0/8/0", "0/0/256", "0/2048", "65536", "-1/0/0", "a/b/c",
            "1/2/3/4", "+1/2/3",
        ] {
            assert!(bad.parse::<GroupAddress>().is_err(), "{bad} accepted");
        }
        let err = "0/8/0".parse::<GroupAddress>().unwrap_err();
        assert!(err.to_string().contains("middle group 8"), "{err}");
    }

    #[test]
    fn individual_addresses() {
        let ia: IndividualAddress = "1.1.10".parse().unwrap();
        assert_eq!(ia.raw(), 0x110A);
        assert_eq!(ia.to_string(), "1.1.10");
        assert_eq!(IndividualAddress::UNCONFIGURED.to_string(), "15.15.255");
        for bad in ["", "1.1", "16.0.0", "0.16.0", "0.0.256", "1.1.1.1", "1..1"] {
            assert!(bad.parse::<IndividualAddress>().is_err(), "{bad} accepted");
        }
    }

    proptest! {
        #[test]
        fn any_raw_group_address_round_trips(raw: u16) {
            let ga = GroupAddress::from_raw(raw);
            prop_assert_eq!(ga.to_string().parse::<GroupAddress>().unwrap(), ga);
            prop_assert_eq!(ga.display(GroupAddressStyle::TwoLevel).parse::<GroupAddress>().unwrap(), ga);
        }

        #[test]
        fn any_raw_individual_address_round_trips(raw: u16) {
            let ia = IndividualAddress::from_raw(raw);
            prop_assert_eq!(ia.to_string().parse::<IndividualAddress>().unwrap(), ia);
        }

        #[test]
        fn parsing_never_panics(text in ".{0,20}") {
            let _ = text.parse::<GroupAddress>();
            let _ = text.parse::<IndividualAddress>();
        }
    }
}
