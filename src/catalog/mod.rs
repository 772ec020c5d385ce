//! The registry of charging-point and retrofit-meter models, loaded from
//! `etsdb/charger-models.toml` and `etsdb/meter-models.toml`.
//!
//! It says which models exist, how they are reached (Modbus TCP and/or RS485, the framing they
//! speak there, default port and unit id) and which model-dependent functions
//! ([`Capability`]) they offer. The group-object table uses the capabilities to decide which
//! objects exist. The drivers (`crate::chargers::drivers`) declare the same capabilities. A test keeps the
//! two in step.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::Deserialize;

/// The embedded charging-point model list.
pub const CHARGER_MODELS_TOML: &str = include_str!("../../etsdb/charger-models.toml");
/// The embedded retrofit-meter model list.
pub const METER_MODELS_TOML: &str = include_str!("../../etsdb/meter-models.toml");

/// A model-dependent function; each enables group objects (see `group-objects/objects.toml`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Start/stop charging process (object 54).
    StartStop,
    /// Unlock the cable (59).
    Unlock,
    /// Charging current sum and per phase (62–65).
    Current,
    /// Active power sum (66).
    Power,
    /// Active power per phase (67–69).
    PowerPhases,
    /// Energy counter sum and energy total (70, 75).
    EnergyTotal,
    /// Energy counter per phase (71–73).
    EnergyPhases,
    /// Energy of the current or last charge (74).
    EnergySession,
    /// Charging start, end and duration (76–78).
    SessionTimes,
    /// ISO 15118 EVCCID (79).
    Evccid,
    /// Serial number (80).
    Serial,
    /// Firmware version (81).
    Firmware,
    /// Internal temperature (82).
    Temperature,
    /// Temperature warning (83).
    TemperatureWarning,
    /// RFID tag (84).
    Rfid,
    /// Manufacturer fault info 1–4 (96–99).
    FaultInfo,
    /// 1-/3-phase switching over Modbus (no group object of its own; the load management
    /// uses it).
    PhaseSwitch,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Self; 17] = [
        Self::StartStop,
        Self::Unlock,
        Self::Current,
        Self::Power,
        Self::PowerPhases,
        Self::EnergyTotal,
        Self::EnergyPhases,
        Self::EnergySession,
        Self::SessionTimes,
        Self::Evccid,
        Self::Serial,
        Self::Firmware,
        Self::Temperature,
        Self::TemperatureWarning,
        Self::Rfid,
        Self::FaultInfo,
        Self::PhaseSwitch,
    ];

    /// The name used in the data files.
    pub const fn name(self) -> &'static str {
        match self {
            Self::StartStop => "start-stop",
            Self::Unlock => "unlock",
            Self::Current => "current",
            Self::Power => "power",
            Self::PowerPhases => "power-phases",
            Self::EnergyTotal => "energy-total",
            Self::EnergyPhases => "energy-phases",
            Self::EnergySession => "energy-session",
            Self::SessionTimes => "session-times",
            Self::Evccid => "evccid",
            Self::Serial => "serial",
            Self::Firmware => "firmware",
            Self::Temperature => "temperature",
            Self::TemperatureWarning => "temperature-warning",
            Self::Rfid => "rfid",
            Self::FaultInfo => "fault-info",
            Self::PhaseSwitch => "phase-switch",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Capability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown capability `{s}`"))
    }
}

/// How a device is reached.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Interface {
    /// Modbus TCP over IP.
    Tcp,
    /// Modbus RTU or ASCII over the RS485 line.
    Rs485,
}

/// Modbus framing on the RS485 line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rs485Framing {
    /// Modbus RTU (binary, CRC-16).
    Rtu,
    /// Modbus ASCII (':' hex LRC CRLF).
    Ascii,
}

impl fmt::Display for Rs485Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rtu => "Modbus RTU",
            Self::Ascii => "Modbus ASCII",
        })
    }
}

/// Whether a model measures its own consumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metering {
    /// Built in; no retrofit meter may be configured.
    Integrated,
    /// A meter may or may not be fitted; a retrofit meter may be configured.
    Optional,
}

/// A charging-point model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargerModel {
    /// Code in parameter memory (1..=255).
    pub code: u8,
    /// Id in config files.
    pub id: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model name.
    pub name: String,
    /// Interfaces the model speaks Modbus on.
    pub interfaces: Vec<Interface>,
    /// Framing on RS485, for models with an RS485 interface.
    pub rs485_framing: Option<Rs485Framing>,
    /// Default Modbus TCP port.
    pub port: u16,
    /// Default unit id.
    pub unit_id: u8,
    /// Built-in metering.
    pub metering: Metering,
    /// Model-dependent functions.
    pub capabilities: BTreeSet<Capability>,
    /// Register-map source.
    pub source: String,
}

impl ChargerModel {
    /// "Manufacturer name".
    pub fn display_name(&self) -> String {
        format!("{} {}", self.manufacturer, self.name)
    }

    /// Whether the model offers `cap`.
    pub fn has(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }
}

/// Models are identified by their code.
impl PartialEq for ChargerModel {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
    }
}

impl Eq for ChargerModel {}

/// A pre-configured retrofit electricity meter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterModel {
    /// Code in parameter memory (1..=255).
    pub code: u8,
    /// Id in config files.
    pub id: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model name.
    pub name: String,
    /// Interfaces.
    pub interfaces: Vec<Interface>,
    /// Default unit id.
    pub unit_id: u8,
    /// What the meter measures.
    pub capabilities: BTreeSet<Capability>,
    /// Register-map source.
    pub source: String,
}

/// Meters are identified by their code.
impl PartialEq for MeterModel {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
    }
}

impl Eq for MeterModel {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargerList {
    model: Vec<ChargerModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeterList {
    model: Vec<MeterModel>,
}

/// The embedded registry is malformed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// TOML does not match the schema.
    #[error("model list: {0}")]
    Toml(#[from] toml::de::Error),
    /// Duplicate or zero codes/ids, or an inconsistent entry.
    #[error("model list: {0}")]
    Invalid(String),
}

/// Parses and checks a charging-point model list.
pub fn parse_charger_models(text: &str) -> Result<Vec<ChargerModel>, RegistryError> {
    let list: ChargerList = toml::from_str(text)?;
    let mut codes = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for m in &list.model {
        if m.code == 0 || !codes.insert(m.code) || m.id == "none" || !ids.insert(m.id.clone()) {
            return Err(RegistryError::Invalid(format!(
                "model `{}`: code or id is zero, `none` or used twice",
                m.id
            )));
        }
        if m.interfaces.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "model `{}` has no interface",
                m.id
            )));
        }
        if m.interfaces.contains(&Interface::Rs485) != m.rs485_framing.is_some() {
            return Err(RegistryError::Invalid(format!(
                "model `{}`: rs485_framing is required exactly for RS485 models",
                m.id
            )));
        }
    }
    Ok(list.model)
}

/// Parses and checks a meter model list.
pub fn parse_meter_models(text: &str) -> Result<Vec<MeterModel>, RegistryError> {
    let list: MeterList = toml::from_str(text)?;
    let mut codes = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for m in &list.model {
        if m.code == 0 || !codes.insert(m.code) || m.id == "none" || !ids.insert(m.id.clone()) {
            return Err(RegistryError::Invalid(format!(
                "meter `{}`: code or id is zero, `none` or used twice",
                m.id
            )));
        }
    }
    Ok(list.model)
}

/// All charging-point models.
pub fn charger_models() -> &'static [ChargerModel] {
    static MODELS: OnceLock<Vec<ChargerModel>> = OnceLock::new();
    MODELS.get_or_init(|| {
        #[allow(
            clippy::expect_used,
            reason = "embedded data, validated by unit tests; not input"
        )]
        parse_charger_models(CHARGER_MODELS_TOML)
            .expect("embedded etsdb/charger-models.toml is valid")
    })
}

/// All retrofit-meter models.
pub fn meter_models() -> &'static [MeterModel] {
    static MODELS: OnceLock<Vec<MeterModel>> = OnceLock::new();
    MODELS.get_or_init(|| {
        #[allow(
            clippy::expect_used,
            reason = "embedded data, validated by unit tests; not input"
        )]
        parse_meter_models(METER_MODELS_TOML).expect("embedded etsdb/meter-models.toml is valid")
    })
}

/// The charging-point model with config id `id`.
pub fn charger_model(id: &str) -> Option<&'static ChargerModel> {
    charger_models().iter().find(|m| m.id == id)
}

/// The charging-point model with memory code `code`.
pub fn charger_model_by_code(code: u8) -> Option<&'static ChargerModel> {
    charger_models().iter().find(|m| m.code == code)
}

/// The meter model with config id `id`.
pub fn meter_model(id: &str) -> Option<&'static MeterModel> {
    meter_models().iter().find(|m| m.id == id)
}

/// The meter model with memory code `code`.
pub fn meter_model_by_code(code: u8) -> Option<&'static MeterModel> {
    meter_models().iter().find(|m| m.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_lists_load() {
        assert!(
            charger_models().len() >= 7,
            "the issue asks for at least seven models"
        );
        assert!(
            meter_models().len() >= 3,
            "the issue asks for at least three meters"
        );
        assert_eq!(charger_model("keba-p30").map(|m| m.unit_id), Some(255));
        assert!(charger_model_by_code(0).is_none());
    }

    #[test]
    fn capability_names_round_trip() {
        for cap in Capability::ALL {
            assert_eq!(cap.name().parse::<Capability>(), Ok(cap));
        }
    }

    #[test]
    fn rejects_duplicate_codes() {
        let text = format!(
            "{CHARGER_MODELS_TOML}\n[[model]]\ncode = 1\nid = \"x\"\nmanufacturer = \"x\"\nname = \"x\"\ninterfaces = [\"tcp\"]\nport = 502\nunit_id = 1\nmetering = \"integrated\"\ncapabilities = []\nsource = \"x\"\n"
        );
        assert!(parse_charger_models(&text).is_err());
    }

    #[test]
    fn rs485_models_declare_their_framing() {
        assert_eq!(
            charger_model("abl-emh").and_then(|m| m.rs485_framing),
            Some(Rs485Framing::Ascii)
        );
        assert_eq!(
            charger_model("heidelberg-ec").and_then(|m| m.rs485_framing),
            Some(Rs485Framing::Rtu)
        );
    }
}
