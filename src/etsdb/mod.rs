//! The parameter model: every parameter a user sets in ETS, loaded from `etsdb/parameters.toml`.
//!
//! This module owns:
//! * the model itself ([`ParamModel`], [`ParamSpec`]), embedded at build time and parsed once;
//! * a complete set of parameter values ([`ParamSet`]) and its two external encodings:
//!   TOML values of the config file ([`ParamSpec::from_toml`] / [`ParamSpec::to_toml`]) and the
//!   ETS parameter memory ([`ParamSet::from_memory`] / [`ParamSet::to_memory`]).
//!
//! It knows nothing about what a parameter means: [`crate::config`] turns a [`ParamSet`] into
//! the typed [`crate::config::Config`] and back. Both the config file and an ETS download therefore pass
//! through the same range and type checks here.

mod value;

pub use value::{ParamError, ParamSet, ParamValue};

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::catalog;

/// The parameter model as written in `etsdb/parameters.toml`.
pub const PARAMETERS_TOML: &str = include_str!("../../etsdb/parameters.toml");

/// Where parameters live in the ETS parameter memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryLayout {
    /// Size of the parameter segment in bytes.
    pub size: usize,
    /// Offset of charging point 1's block.
    pub charging_point_base: usize,
    /// Distance between two charging-point blocks.
    pub charging_point_stride: usize,
}

impl MemoryLayout {
    /// Offset of the block of charging point `index` (0-based).
    pub fn block_base(&self, index: usize) -> usize {
        self.charging_point_base + index * self.charging_point_stride
    }
}

/// The kind of a parameter, which fixes its file and memory encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// true/false, one byte 0/1.
    Bool,
    /// Unsigned integer of `size` bytes, optionally scaled.
    Uint,
    /// Signed integer of `size` bytes.
    Int,
    /// One of `values`, stored as its one-byte code.
    Enum,
    /// A charging-point model from `etsdb/charger-models.toml` (code 0 = none).
    ChargerModel,
    /// A retrofit-meter model from `etsdb/meter-models.toml` (code 0 = none).
    MeterModel,
    /// An IPv4 address, four bytes.
    Ipv4,
    /// A Modbus register address, two bytes, 0xFFFF = not used.
    Register,
}

/// One choice of an enum parameter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumItem {
    /// The byte stored in parameter memory.
    pub code: u8,
    /// The value in the config file (a string or an integer).
    pub value: toml::Value,
    /// English label.
    pub en: String,
    /// German label.
    pub de: String,
}

/// One parameter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// Config-file key (dotted path; per charging point relative to `[charging_point.<n>]`).
    pub key: String,
    /// Offset in parameter memory (general) or in the charging point's block.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Kind of value.
    #[serde(rename = "type")]
    pub kind: ParamKind,
    /// Default as a config-file value.
    pub default: toml::Value,
    /// Smallest allowed value (config units).
    pub min: Option<f64>,
    /// Largest allowed value (config units).
    pub max: Option<f64>,
    /// Unit shown to users.
    pub unit: Option<String>,
    /// Config value = raw memory value × scale.
    pub scale: Option<f64>,
    /// English name as ETS shows it.
    pub name_en: String,
    /// German name as ETS shows it.
    pub name_de: String,
    /// ETS parameter tab.
    pub tab: Option<String>,
    /// Context help.
    pub help: Option<String>,
    /// Choices of an enum parameter.
    #[serde(default)]
    pub values: Vec<EnumItem>,
    /// When ETS shows the parameter: conditions that must all hold ([`ShowIf`]).
    #[serde(default)]
    pub when: Vec<String>,
}

/// One condition of a parameter's `when` list: when ETS shows the parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ShowIf {
    /// Another parameter of the same scope has one of `values` (config-file values), or none
    /// of them when `negate`.
    Value {
        /// Key of the other parameter.
        key: String,
        /// The values tested.
        values: Vec<toml::Value>,
        /// `!=` instead of `=`.
        negate: bool,
    },
    /// (Charging point) the chosen model offers the capability.
    Capability(catalog::Capability),
    /// (Charging point) the chosen model allows a retrofit meter.
    OptionalMetering,
}

impl std::str::FromStr for ShowIf {
    type Err = String;

    /// Parses `key = a | b`, `key != a`, `cap:<name>` or `metering:optional`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "metering:optional" {
            return Ok(Self::OptionalMetering);
        }
        if let Some(cap) = s.strip_prefix("cap:") {
            return cap.parse().map(Self::Capability);
        }
        let (key, rest, negate) = if let Some((k, r)) = s.split_once("!=") {
            (k, r, true)
        } else if let Some((k, r)) = s.split_once('=') {
            (k, r, false)
        } else {
            return Err(format!(
                "condition `{s}`: expected `key = value` or `key != value`"
            ));
        };
        let values: Vec<toml::Value> = rest.split('|').map(|v| condition_value(v.trim())).collect();
        if key.trim().is_empty() || values.iter().any(|v| v.as_str() == Some("")) {
            return Err(format!("condition `{s}`: empty key or value"));
        }
        Ok(Self::Value {
            key: key.trim().to_owned(),
            values,
            negate,
        })
    }
}

/// A condition's value as the config file would hold it: a bool, an integer or a string.
fn condition_value(text: &str) -> toml::Value {
    match text {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => text.parse::<i64>().map_or_else(
            |_| toml::Value::String(text.to_owned()),
            toml::Value::Integer,
        ),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    application: Application,
    tables: Tables,
    memory: MemoryLayout,
    param: Vec<ParamSpec>,
    charging_point_param: Vec<ParamSpec>,
}

/// Limits of the tables ETS downloads (`[tables]`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tables {
    /// Entries of the group-address table.
    pub max_group_addresses: u16,
    /// Entries of the association table (object ↔ group address links).
    pub max_associations: u16,
}

/// The application program (`[application]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Version as ETS shows it, `major.minor` with 0..=15 each.
    pub version: String,
    /// KNX manufacturer id (0x00FA: placeholder for open-source builds).
    pub manufacturer_id: u16,
    /// Application number, chosen by the manufacturer.
    pub application_number: u16,
    /// The product's order number: the catalog's and the device's order info (PID 15).
    pub order_number: String,
}

impl Application {
    /// The application id as ETS writes it to PID 13 (PROG_VERSION) of interface object 4:
    /// manufacturer id, application number (both big-endian), version byte.
    pub fn id_bytes(&self) -> Option<[u8; 5]> {
        let [m0, m1] = self.manufacturer_id.to_be_bytes();
        let [a0, a1] = self.application_number.to_be_bytes();
        Some([m0, m1, a0, a1, self.version_byte()?])
    }

    /// The device's order info (interface object 0, PID 15, PDT_GENERIC_10): the order number,
    /// padded with zeros (cut at 10 bytes; a test keeps it within).
    pub fn order_info(&self) -> [u8; 10] {
        let mut info = [0u8; 10];
        for (slot, byte) in info.iter_mut().zip(self.order_number.bytes()) {
            *slot = byte;
        }
        info
    }

    /// The main (major) version, e.g. 2 for "2.0".
    pub fn main_version(&self) -> Option<u8> {
        self.version_byte().map(|b| b >> 4)
    }

    /// The spec's compatibility rule (ch. 8.4.2): firmware and application program are fully
    /// compatible when their main versions are equal. `firmware` is `main.sub[.patch]`.
    pub fn compatible_with(&self, firmware: &str) -> bool {
        let main = firmware
            .split('.')
            .next()
            .and_then(|m| m.parse::<u8>().ok());
        main.is_some() && main == self.main_version()
    }

    /// The version as ETS stores it: major in the high nibble, minor in the low one; `None`
    /// when it is not `major.minor` with 0..=15 each.
    pub fn version_byte(&self) -> Option<u8> {
        let (major, minor) = self.version.split_once('.')?;
        let nibble = |s: &str| s.parse::<u8>().ok().filter(|n| *n <= 15);
        Some((nibble(major)? << 4) | nibble(minor)?)
    }
}

/// The whole parameter model.
#[derive(Debug)]
pub struct ParamModel {
    /// The application program.
    pub application: Application,
    /// Table limits.
    pub tables: Tables,
    /// Memory layout.
    pub memory: MemoryLayout,
    /// Device-wide parameters.
    pub general: Vec<ParamSpec>,
    /// Parameters repeated per charging point.
    pub charging_point: Vec<ParamSpec>,
    general_index: HashMap<String, usize>,
    cp_index: HashMap<String, usize>,
}

/// The embedded model is malformed (only possible in a broken build; unit tests load it).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The TOML does not match the schema.
    #[error("etsdb/parameters.toml: {0}")]
    Toml(#[from] toml::de::Error),
    /// A parameter definition is inconsistent.
    #[error("etsdb/parameters.toml: parameter `{key}`: {reason}")]
    Param {
        /// Parameter key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl ParamModel {
    /// Parses and checks a model (used for the embedded one and by tests).
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let raw: RawModel = toml::from_str(text)?;
        let general_index = raw
            .param
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key.clone(), i))
            .collect();
        let cp_index = raw
            .charging_point_param
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key.clone(), i))
            .collect();
        if raw.application.version_byte().is_none() {
            return Err(ModelError::Param {
                key: "application.version".to_owned(),
                reason: format!(
                    "`{}` is not major.minor with 0..15 each",
                    raw.application.version
                ),
            });
        }
        let model = Self {
            application: raw.application,
            tables: raw.tables,
            memory: raw.memory,
            general: raw.param,
            charging_point: raw.charging_point_param,
            general_index,
            cp_index,
        };
        for spec in model.general.iter().chain(&model.charging_point) {
            spec.check().map_err(|reason| ModelError::Param {
                key: spec.key.clone(),
                reason,
            })?;
        }
        for (scope, is_cp) in [(&model.general, false), (&model.charging_point, true)] {
            for spec in scope {
                Self::check_when(spec, scope, is_cp).map_err(|reason| ModelError::Param {
                    key: spec.key.clone(),
                    reason,
                })?;
            }
        }
        Ok(model)
    }

    /// The embedded model, parsed once.
    pub fn get() -> &'static Self {
        static MODEL: OnceLock<ParamModel> = OnceLock::new();
        MODEL.get_or_init(|| {
            #[allow(
                clippy::expect_used,
                reason = "embedded data, validated by unit tests; not input"
            )]
            Self::parse(PARAMETERS_TOML).expect("embedded etsdb/parameters.toml is valid")
        })
    }

    /// Checks a parameter's `when` list: every condition parses, names a parameter of the same
    /// scope with values that parameter accepts; model conditions only per charging point.
    fn check_when(spec: &ParamSpec, scope: &[ParamSpec], is_cp: bool) -> Result<(), String> {
        for cond in spec.show_if()? {
            match cond {
                ShowIf::Value { key, values, .. } => {
                    let other = scope
                        .iter()
                        .find(|p| p.key == key)
                        .ok_or_else(|| format!("`when` names unknown parameter `{key}`"))?;
                    for v in &values {
                        other
                            .from_toml(v)
                            .map_err(|e| format!("`when` {key} = {v}: {e}"))?;
                    }
                }
                ShowIf::Capability(_) | ShowIf::OptionalMetering if !is_cp => {
                    return Err(
                        "model conditions apply only to charging-point parameters".to_owned()
                    );
                }
                ShowIf::Capability(_) | ShowIf::OptionalMetering => {}
            }
        }
        Ok(())
    }

    /// Index of a general parameter.
    pub fn general_index(&self, key: &str) -> Option<usize> {
        self.general_index.get(key).copied()
    }

    /// Index of a per-charging-point parameter.
    pub fn cp_index(&self, key: &str) -> Option<usize> {
        self.cp_index.get(key).copied()
    }
}

impl ParamSpec {
    fn scale(&self) -> f64 {
        self.scale.unwrap_or(1.0)
    }

    /// Raw (memory) bounds of an integer parameter.
    #[allow(
        clippy::cast_possible_truncation,
        reason = "bounds are small numbers from the model"
    )]
    pub fn raw_bounds(&self) -> (i64, i64) {
        let (lo_type, hi_type) = self.type_bounds();
        let lo = self
            .min
            .map_or(lo_type, |m| (m / self.scale()).round() as i64);
        let hi = self
            .max
            .map_or(hi_type, |m| (m / self.scale()).round() as i64);
        (lo.max(lo_type), hi.min(hi_type))
    }

    fn type_bounds(&self) -> (i64, i64) {
        let bits = u32::try_from(self.size * 8).unwrap_or(32).min(32);
        match self.kind {
            ParamKind::Int => (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1),
            _ => (0, (1i64 << bits) - 1),
        }
    }

    fn check(&self) -> Result<(), String> {
        let expected_size = match self.kind {
            ParamKind::Bool | ParamKind::Enum | ParamKind::ChargerModel | ParamKind::MeterModel => {
                Some(1)
            }
            ParamKind::Ipv4 => Some(4),
            ParamKind::Register => Some(2),
            ParamKind::Uint | ParamKind::Int => None,
        };
        match expected_size {
            Some(size) if size != self.size => return Err(format!("size must be {size}")),
            None if ![1, 2, 4].contains(&self.size) => {
                return Err("size must be 1, 2 or 4".to_owned());
            }
            _ => {}
        }
        if self.kind == ParamKind::Enum {
            if self.values.is_empty() {
                return Err("enum without values".to_owned());
            }
            let mut codes: Vec<u8> = self.values.iter().map(|v| v.code).collect();
            codes.sort_unstable();
            codes.dedup();
            if codes.len() != self.values.len() {
                return Err("duplicate enum codes".to_owned());
            }
        }
        if let Some(scale) = self.scale
            && !(scale > 0.0 && scale.is_finite())
        {
            return Err("scale must be positive".to_owned());
        }
        let (lo, hi) = self.raw_bounds();
        if lo > hi {
            return Err("min is above max".to_owned());
        }
        // The default must itself be a valid value.
        self.from_toml(&self.default)
            .map(|_| ())
            .map_err(|e| format!("default: {e}"))
    }

    /// Converts a config-file value into a parameter value, checking type and range.
    /// The error says why in words that fit after "`key` = value: ".
    pub fn from_toml(&self, value: &toml::Value) -> Result<ParamValue, String> {
        match self.kind {
            ParamKind::Bool => value
                .as_bool()
                .map(ParamValue::Bool)
                .ok_or_else(|| "expected true or false".to_owned()),
            ParamKind::Uint | ParamKind::Int => self.number_from_toml(value),
            ParamKind::Enum => {
                let found = self.values.iter().find(|item| toml_eq(&item.value, value));
                found
                    .map(|item| ParamValue::Code(item.code))
                    .ok_or_else(|| {
                        let choices: Vec<String> =
                            self.values.iter().map(|i| i.value.to_string()).collect();
                        format!("expected one of {}", choices.join(", "))
                    })
            }
            ParamKind::ChargerModel => {
                let id = value
                    .as_str()
                    .ok_or_else(|| "expected a model id (a string)".to_owned())?;
                if id == "none" {
                    return Ok(ParamValue::Code(0));
                }
                catalog::charger_model(id)
                    .map(|m| ParamValue::Code(m.code))
                    .ok_or_else(|| {
                        let ids: Vec<&str> = catalog::charger_models()
                            .iter()
                            .map(|m| m.id.as_str())
                            .collect();
                        format!(
                            "unknown charging-point model `{id}`; known: none, {}",
                            ids.join(", ")
                        )
                    })
            }
            ParamKind::MeterModel => {
                let id = value
                    .as_str()
                    .ok_or_else(|| "expected a meter model id (a string)".to_owned())?;
                if id == "none" {
                    return Ok(ParamValue::Code(0));
                }
                catalog::meter_model(id)
                    .map(|m| ParamValue::Code(m.code))
                    .ok_or_else(|| {
                        let ids: Vec<&str> = catalog::meter_models()
                            .iter()
                            .map(|m| m.id.as_str())
                            .collect();
                        format!(
                            "unknown electricity-meter model `{id}`; known: none, {}",
                            ids.join(", ")
                        )
                    })
            }
            ParamKind::Ipv4 => {
                let text = value.as_str().ok_or_else(|| {
                    "expected an IPv4 address as a string, e.g. \"192.168.1.20\"".to_owned()
                })?;
                text.parse()
                    .map(ParamValue::Ipv4)
                    .map_err(|_| format!("`{text}` is not an IPv4 address"))
            }
            ParamKind::Register => match value {
                toml::Value::String(s) if s == "none" => Ok(ParamValue::Register(None)),
                toml::Value::Integer(n) => u16::try_from(*n)
                    .ok()
                    .filter(|r| *r != u16::MAX)
                    .map(|r| ParamValue::Register(Some(r)))
                    .ok_or_else(|| format!("register {n} is out of range 0..=65534")),
                _ => Err("expected a register address 0..=65534 or \"none\"".to_owned()),
            },
        }
    }

    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        reason = "parameter values are small"
    )]
    fn number_from_toml(&self, value: &toml::Value) -> Result<ParamValue, String> {
        let scale = self.scale();
        let units = match value {
            toml::Value::Integer(n) => *n as f64,
            toml::Value::Float(f) if self.scale.is_some() => *f,
            toml::Value::Float(_) => return Err("expected a whole number".to_owned()),
            _ => return Err("expected a number".to_owned()),
        };
        let raw_f = units / scale;
        let raw = raw_f.round();
        if !raw.is_finite() || (raw - raw_f).abs() > 1e-6 {
            return Err(format!("must be a multiple of {scale}"));
        }
        let raw = raw as i64;
        let (lo, hi) = self.raw_bounds();
        if raw < lo || raw > hi {
            return Err(format!(
                "out of range {}..={}{}",
                self.fmt_units(lo),
                self.fmt_units(hi),
                self.unit_suffix()
            ));
        }
        Ok(ParamValue::Int(raw))
    }

    #[allow(clippy::cast_precision_loss, reason = "parameter values are small")]
    fn fmt_units(&self, raw: i64) -> String {
        match self.scale {
            Some(scale) => format_decimal(raw as f64 * scale),
            None => raw.to_string(),
        }
    }

    fn unit_suffix(&self) -> String {
        match self.unit.as_deref() {
            Some(u) if !u.is_empty() => format!(" {u}"),
            _ => String::new(),
        }
    }

    /// Converts a parameter value into its config-file form.
    #[allow(clippy::cast_precision_loss, reason = "parameter values are small")]
    pub fn to_toml(&self, value: &ParamValue) -> toml::Value {
        match (self.kind, value) {
            (ParamKind::Bool, ParamValue::Bool(b)) => toml::Value::Boolean(*b),
            (ParamKind::Uint | ParamKind::Int, ParamValue::Int(raw)) => match self.scale {
                Some(scale) => toml::Value::Float(round_decimal(*raw as f64 * scale)),
                None => toml::Value::Integer(*raw),
            },
            (ParamKind::Enum, ParamValue::Code(code)) => self
                .values
                .iter()
                .find(|i| i.code == *code)
                .map_or_else(|| self.default.clone(), |i| i.value.clone()),
            (ParamKind::ChargerModel, ParamValue::Code(code)) => toml::Value::String(
                catalog::charger_model_by_code(*code)
                    .map_or_else(|| "none".to_owned(), |m| m.id.clone()),
            ),
            (ParamKind::MeterModel, ParamValue::Code(code)) => toml::Value::String(
                catalog::meter_model_by_code(*code)
                    .map_or_else(|| "none".to_owned(), |m| m.id.clone()),
            ),
            (ParamKind::Ipv4, ParamValue::Ipv4(ip)) => toml::Value::String(ip.to_string()),
            (ParamKind::Register, ParamValue::Register(None)) => {
                toml::Value::String("none".to_owned())
            }
            (ParamKind::Register, ParamValue::Register(Some(r))) => {
                toml::Value::Integer(i64::from(*r))
            }
            _ => self.default.clone(),
        }
    }

    /// The parsed `when` conditions.
    pub fn show_if(&self) -> Result<Vec<ShowIf>, String> {
        self.when.iter().map(|c| c.parse()).collect()
    }

    /// The raw memory value of a parameter value: the byte of a code or bool, the integer, the
    /// big-endian address, the register (0xFFFF = not used).
    pub fn raw(value: &ParamValue) -> i64 {
        match value {
            ParamValue::Bool(b) => i64::from(*b),
            ParamValue::Int(n) => *n,
            ParamValue::Code(c) => i64::from(*c),
            ParamValue::Ipv4(ip) => i64::from(u32::from(*ip)),
            ParamValue::Register(r) => i64::from(r.unwrap_or(u16::MAX)),
        }
    }

    /// The default value.
    pub fn default_value(&self) -> ParamValue {
        // `check` proved at load time that the default converts.
        self.from_toml(&self.default).unwrap_or(ParamValue::Int(0))
    }

    /// The config-file value of an enum code, if the code is valid.
    pub fn enum_value(&self, code: u8) -> Option<&toml::Value> {
        self.values
            .iter()
            .find(|i| i.code == code)
            .map(|i| &i.value)
    }
}

/// Equality of config values where an integer enum value matches an integer in the file.
fn toml_eq(a: &toml::Value, b: &toml::Value) -> bool {
    match (a, b) {
        (toml::Value::String(x), toml::Value::String(y)) => x == y,
        (toml::Value::Integer(x), toml::Value::Integer(y)) => x == y,
        _ => false,
    }
}

/// Rounds away float noise from `raw × scale` (e.g. 0.30000000000000004 → 0.3).
fn round_decimal(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn format_decimal(v: f64) -> String {
    let v = round_decimal(v);
    let s = format!("{v}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

#[cfg(test)]
pub(crate) mod tests;
