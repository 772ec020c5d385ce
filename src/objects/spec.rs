//! The group-object table as data: `group-objects/objects.toml`, parsed and checked.
//!
//! Owns the schema of that file: object numbers, names, DPT choices, flags, existence
//! conditions ([`Condition`]) and bus-limiter priorities. [`super::ObjectTable::build`] uses it
//! to build the objects that exist under one configuration.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::catalog::Capability;

/// The table as written in `group-objects/objects.toml`.
pub const OBJECTS_TOML: &str = include_str!("../../group-objects/objects.toml");

/// The CRWTUI flags of a group object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    /// C: communication enabled.
    pub communication: bool,
    /// R: answers GroupValue_Read.
    pub read: bool,
    /// W: accepts GroupValue_Write.
    pub write: bool,
    /// T: transmits on change.
    pub transmit: bool,
    /// U: takes GroupValue_Response as an update.
    pub update: bool,
    /// I: sends GroupValue_Read at start-up.
    pub read_on_init: bool,
}

impl Flags {
    fn bits(self) -> [bool; 6] {
        [
            self.communication,
            self.read,
            self.write,
            self.transmit,
            self.update,
            self.read_on_init,
        ]
    }
}

impl FromStr for Flags {
    type Err = String;

    /// Parses the spec's positional notation, e.g. `C-WTU-` (six characters, `-` = off).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let chars: Vec<char> = s.chars().collect();
        let letters = ['C', 'R', 'W', 'T', 'U', 'I'];
        if chars.len() != letters.len() {
            return Err(format!("flags `{s}` must have six positions CRWTUI"));
        }
        let mut bits = [false; 6];
        for ((bit, c), letter) in bits.iter_mut().zip(&chars).zip(letters) {
            *bit = match *c {
                '-' => false,
                c if c == letter => true,
                _ => {
                    return Err(format!(
                        "flags `{s}`: expected `{letter}` or `-`, found `{c}`"
                    ));
                }
            };
        }
        let [communication, read, write, transmit, update, read_on_init] = bits;
        Ok(Self {
            communication,
            read,
            write,
            transmit,
            update,
            read_on_init,
        })
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, letter) in self.bits().into_iter().zip(['C', 'R', 'W', 'T', 'U', 'I']) {
            write!(f, "{}", if bit { letter } else { '-' })?;
        }
        Ok(())
    }
}

impl Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A condition for an object to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// DLM on (`dlm`) or off (`!dlm`).
    Dlm(bool),
    /// Smart meter 3-phase (`meter:3-phase`) or 1-phase (`meter:1-phase`).
    MeterThreePhase(bool),
    /// Smart meter measures power (`meter:power`) or current (`meter:current`).
    MeterPower(bool),
    /// Monitoring per values and "In operation" object.
    MonitoringInOperation,
    /// The charging point is enabled and has a model.
    ChargingPoint,
    /// The model or its retrofit meter offers the capability.
    Capability(Capability),
    /// "Send temperature values" is not off.
    TemperatureSending,
}

impl FromStr for Condition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "dlm" => Self::Dlm(true),
            "!dlm" => Self::Dlm(false),
            "meter:3-phase" => Self::MeterThreePhase(true),
            "meter:1-phase" => Self::MeterThreePhase(false),
            "meter:power" => Self::MeterPower(true),
            "meter:current" => Self::MeterPower(false),
            "monitoring:in-operation" => Self::MonitoringInOperation,
            "cp" => Self::ChargingPoint,
            "temperature-sending" => Self::TemperatureSending,
            other => match other.strip_prefix("cap:") {
                Some(cap) => Self::Capability(cap.parse()?),
                None => return Err(format!("unknown condition `{other}`")),
            },
        })
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Bus-limiter class of an object: faults go first, then states, then measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Fault objects.
    Alarm,
    /// State objects.
    State,
    /// Measured values.
    Measurement,
    /// Objects the gateway only receives.
    Command,
}

/// A name/DPT alternative of an object (objects 10–12).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Conditions under which this variant applies (first match wins).
    pub when: Vec<Condition>,
    /// English name.
    pub name_en: String,
    /// German name.
    pub name_de: String,
    /// Allowed DPTs.
    pub dpts: Vec<String>,
    /// DPT unless the parameter selects another.
    pub default_dpt: String,
    /// Parameter selecting the DPT.
    pub dpt_param: Option<String>,
}

/// One object (general) or one per-charging-point object template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    /// Object number (general objects).
    pub number: Option<u16>,
    /// Offset in the block of 50 (charging-point objects).
    pub offset: Option<u16>,
    /// The name code uses for the object (`objects::number`, generated by `build.rs`).
    pub key: String,
    /// English name.
    #[serde(default)]
    pub name_en: String,
    /// German name.
    #[serde(default)]
    pub name_de: String,
    /// Allowed DPTs.
    #[serde(default)]
    pub dpts: Vec<String>,
    /// DPT unless the parameter selects another.
    #[serde(default)]
    pub default_dpt: String,
    /// Parameter selecting the DPT; `cp.` prefix = the charging point's own parameter.
    pub dpt_param: Option<String>,
    /// Data width as the spec writes it.
    pub size: String,
    /// CRWTUI flags.
    pub flags: Flags,
    /// Conditions that must all hold.
    pub exists: Vec<Condition>,
    /// Bus-limiter class.
    pub priority: Priority,
    /// Remark.
    pub note: Option<String>,
    /// Alternatives (first matching wins).
    #[serde(default)]
    pub variant: Vec<Variant>,
}

/// The parsed table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// General and DLM objects.
    pub object: Vec<ObjectSpec>,
    /// Charging-point object templates.
    pub charging_point_object: Vec<ObjectSpec>,
}

/// The embedded table is malformed.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Not valid TOML for the schema.
    #[error("group-objects/objects.toml: {0}")]
    Toml(#[from] toml::de::Error),
    /// An entry is inconsistent.
    #[error("group-objects/objects.toml: {0}")]
    Invalid(String),
}

impl TableSpec {
    /// Parses and checks a table.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let spec: Self = toml::from_str(text)?;
        let mut numbers = std::collections::BTreeSet::new();
        for o in &spec.object {
            let n = o
                .number
                .ok_or_else(|| SpecError::Invalid("general object without number".to_owned()))?;
            if n >= 50 || !numbers.insert(n) {
                return Err(SpecError::Invalid(format!(
                    "object {n}: number reused or in the charging-point range"
                )));
            }
            o.check(&format!("object {n}"))?;
        }
        let mut offsets = std::collections::BTreeSet::new();
        for o in &spec.charging_point_object {
            let off = o.offset.ok_or_else(|| {
                SpecError::Invalid("charging-point object without offset".to_owned())
            })?;
            if off >= 50 || !offsets.insert(off) {
                return Err(SpecError::Invalid(format!("offset {off}: reused or ≥ 50")));
            }
            o.check(&format!("charging-point object offset {off}"))?;
        }
        Ok(spec)
    }

    /// The embedded table, parsed once.
    pub fn get() -> &'static Self {
        static SPEC: OnceLock<TableSpec> = OnceLock::new();
        SPEC.get_or_init(|| {
            #[allow(
                clippy::expect_used,
                reason = "embedded data, validated by unit tests; not input"
            )]
            Self::parse(OBJECTS_TOML).expect("embedded group-objects/objects.toml is valid")
        })
    }

    /// Whether `n` is an object number of the table (for any configuration).
    pub fn is_object_number(&self, n: u16) -> bool {
        self.object.iter().any(|o| o.number == Some(n))
            || (50..300).contains(&n)
                && self
                    .charging_point_object
                    .iter()
                    .any(|o| o.offset == Some(n % 50))
    }
}

impl ObjectSpec {
    fn check(&self, what: &str) -> Result<(), SpecError> {
        let bad = |why: &str| Err(SpecError::Invalid(format!("{what}: {why}")));
        if self.variant.is_empty() {
            if self.name_en.is_empty() || self.name_de.is_empty() || self.dpts.is_empty() {
                return bad("needs names and dpts (or variants)");
            }
            if !self.dpts.contains(&self.default_dpt) {
                return bad("default_dpt is not among dpts");
            }
        }
        for v in &self.variant {
            if !v.dpts.contains(&v.default_dpt) {
                return bad("variant default_dpt is not among its dpts");
            }
        }
        Ok(())
    }
}
