//! Parameter values: one complete set ([`ParamSet`]) and its ETS-memory encoding.

use std::net::Ipv4Addr;

use super::{ParamKind, ParamModel, ParamSpec};
use crate::catalog;
use crate::units::ChargePointId;

/// The value of one parameter, in its raw (memory) form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamValue {
    /// A bool parameter.
    Bool(bool),
    /// An integer parameter, raw (before `scale`).
    Int(i64),
    /// An enum code or a model code.
    Code(u8),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// A Modbus register address, `None` = not used.
    Register(Option<u16>),
}

/// Reading or writing a parameter failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The key is not in the model (a programming error, caught by tests).
    #[error("no parameter `{0}` in etsdb/parameters.toml")]
    UnknownKey(String),
    /// The value has another type than the accessor expects (a programming error).
    #[error("parameter `{key}` is not a {expected}")]
    WrongType {
        /// Parameter key.
        key: String,
        /// The type the caller asked for.
        expected: &'static str,
    },
    /// A value does not fit the parameter (range, enum choice).
    #[error("parameter `{key}`: {reason}")]
    Invalid {
        /// Parameter key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The parameter memory image has the wrong length.
    #[error("parameter memory is {got} bytes, expected {expected}")]
    MemorySize {
        /// Bytes received.
        got: usize,
        /// Bytes the layout needs.
        expected: usize,
    },
    /// A memory cell holds a value the parameter does not allow.
    #[error("parameter memory offset 0x{offset:03X} (`{key}`): {reason}")]
    Memory {
        /// Absolute offset.
        offset: usize,
        /// Parameter key (with `charging_point.<n>.` prefix for block parameters).
        key: String,
        /// Why.
        reason: String,
    },
}

/// A complete set of parameter values: every general parameter and every parameter of the
/// five charging-point blocks, in model order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSet {
    general: Vec<ParamValue>,
    charging_points: Vec<Vec<ParamValue>>,
}

impl Default for ParamSet {
    fn default() -> Self {
        Self::defaults()
    }
}

impl ParamSet {
    /// Every parameter at its default.
    pub fn defaults() -> Self {
        let model = ParamModel::get();
        let block: Vec<ParamValue> = model
            .charging_point
            .iter()
            .map(ParamSpec::default_value)
            .collect();
        Self {
            general: model.general.iter().map(ParamSpec::default_value).collect(),
            charging_points: ChargePointId::all().map(|_| block.clone()).collect(),
        }
    }

    fn general_slot(&self, key: &str) -> Result<(&ParamSpec, ParamValue), ParamError> {
        let model = ParamModel::get();
        let i = model
            .general_index(key)
            .ok_or_else(|| ParamError::UnknownKey(key.to_owned()))?;
        match (model.general.get(i), self.general.get(i)) {
            (Some(spec), Some(v)) => Ok((spec, *v)),
            _ => Err(ParamError::UnknownKey(key.to_owned())),
        }
    }

    fn cp_slot(
        &self,
        cp: ChargePointId,
        key: &str,
    ) -> Result<(&ParamSpec, ParamValue), ParamError> {
        let model = ParamModel::get();
        let i = model
            .cp_index(key)
            .ok_or_else(|| ParamError::UnknownKey(format!("charging_point.{cp}.{key}")))?;
        let block = self.charging_points.get(cp.index());
        match (model.charging_point.get(i), block.and_then(|b| b.get(i))) {
            (Some(spec), Some(v)) => Ok((spec, *v)),
            _ => Err(ParamError::UnknownKey(key.to_owned())),
        }
    }

    /// The value of a general parameter.
    pub fn get(&self, key: &str) -> Result<ParamValue, ParamError> {
        self.general_slot(key).map(|(_, v)| v)
    }

    /// The value of a charging-point parameter.
    pub fn get_cp(&self, cp: ChargePointId, key: &str) -> Result<ParamValue, ParamError> {
        self.cp_slot(cp, key).map(|(_, v)| v)
    }

    /// Sets a general parameter (checked against its spec).
    pub fn set(&mut self, key: &str, value: ParamValue) -> Result<(), ParamError> {
        let model = ParamModel::get();
        let i = model
            .general_index(key)
            .ok_or_else(|| ParamError::UnknownKey(key.to_owned()))?;
        let spec = model
            .general
            .get(i)
            .ok_or_else(|| ParamError::UnknownKey(key.to_owned()))?;
        check_value(spec, value).map_err(|reason| ParamError::Invalid {
            key: key.to_owned(),
            reason,
        })?;
        if let Some(slot) = self.general.get_mut(i) {
            *slot = value;
        }
        Ok(())
    }

    /// Sets a charging-point parameter (checked against its spec).
    pub fn set_cp(
        &mut self,
        cp: ChargePointId,
        key: &str,
        value: ParamValue,
    ) -> Result<(), ParamError> {
        let model = ParamModel::get();
        let full = || format!("charging_point.{cp}.{key}");
        let i = model
            .cp_index(key)
            .ok_or_else(|| ParamError::UnknownKey(full()))?;
        let spec = model
            .charging_point
            .get(i)
            .ok_or_else(|| ParamError::UnknownKey(full()))?;
        check_value(spec, value).map_err(|reason| ParamError::Invalid {
            key: full(),
            reason,
        })?;
        if let Some(slot) = self
            .charging_points
            .get_mut(cp.index())
            .and_then(|b| b.get_mut(i))
        {
            *slot = value;
        }
        Ok(())
    }

    /// All general parameters with their values, in model order.
    pub fn general(&self) -> impl Iterator<Item = (&'static ParamSpec, ParamValue)> + '_ {
        ParamModel::get()
            .general
            .iter()
            .zip(self.general.iter().copied())
    }

    /// All parameters of one charging point with their values, in model order.
    pub fn charging_point(
        &self,
        cp: ChargePointId,
    ) -> impl Iterator<Item = (&'static ParamSpec, ParamValue)> + '_ {
        let block = self
            .charging_points
            .get(cp.index())
            .map(Vec::as_slice)
            .unwrap_or_default();
        ParamModel::get()
            .charging_point
            .iter()
            .zip(block.iter().copied())
    }

    /// Encodes the set into the ETS parameter memory image.
    pub fn to_memory(&self) -> Vec<u8> {
        let model = ParamModel::get();
        let mut mem = vec![0u8; model.memory.size];
        for (spec, value) in self.general() {
            write_cell(&mut mem, spec.offset, spec, value);
        }
        for cp in ChargePointId::all() {
            let base = model.memory.block_base(cp.index());
            for (spec, value) in self.charging_point(cp) {
                write_cell(&mut mem, base + spec.offset, spec, value);
            }
        }
        mem
    }

    /// Decodes an ETS parameter memory image; every cell is checked against its parameter.
    pub fn from_memory(mem: &[u8]) -> Result<Self, ParamError> {
        let model = ParamModel::get();
        if mem.len() != model.memory.size {
            return Err(ParamError::MemorySize {
                got: mem.len(),
                expected: model.memory.size,
            });
        }
        let general = model
            .general
            .iter()
            .map(|spec| read_cell(mem, spec.offset, spec, &spec.key))
            .collect::<Result<Vec<_>, _>>()?;
        let mut charging_points = Vec::new();
        for cp in ChargePointId::all() {
            let base = model.memory.block_base(cp.index());
            let block = model
                .charging_point
                .iter()
                .map(|spec| {
                    read_cell(
                        mem,
                        base + spec.offset,
                        spec,
                        &format!("charging_point.{cp}.{}", spec.key),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            charging_points.push(block);
        }
        Ok(Self {
            general,
            charging_points,
        })
    }

    // ---- typed accessors (used by `config`) ----

    /// A general bool parameter.
    pub fn bool(&self, key: &str) -> Result<bool, ParamError> {
        as_bool(key, self.get(key)?)
    }

    /// A charging-point bool parameter.
    pub fn cp_bool(&self, cp: ChargePointId, key: &str) -> Result<bool, ParamError> {
        as_bool(key, self.get_cp(cp, key)?)
    }

    /// A general integer parameter in config units when unscaled.
    pub fn int(&self, key: &str) -> Result<i64, ParamError> {
        as_int(key, self.get(key)?)
    }

    /// A charging-point integer parameter (raw).
    pub fn cp_int(&self, cp: ChargePointId, key: &str) -> Result<i64, ParamError> {
        as_int(key, self.get_cp(cp, key)?)
    }

    /// The config-file value of a general enum parameter.
    pub fn choice(&self, key: &str) -> Result<toml::Value, ParamError> {
        let (spec, v) = self.general_slot(key)?;
        choice(spec, v)
    }

    /// The config-file value of a charging-point enum parameter.
    pub fn cp_choice(&self, cp: ChargePointId, key: &str) -> Result<toml::Value, ParamError> {
        let (spec, v) = self.cp_slot(cp, key)?;
        choice(spec, v)
    }

    /// A model code (charger or meter model; 0 = none).
    pub fn cp_code(&self, cp: ChargePointId, key: &str) -> Result<u8, ParamError> {
        match self.get_cp(cp, key)? {
            ParamValue::Code(c) => Ok(c),
            _ => Err(ParamError::WrongType {
                key: key.to_owned(),
                expected: "model",
            }),
        }
    }

    /// A general IPv4 parameter.
    pub fn ipv4(&self, key: &str) -> Result<Ipv4Addr, ParamError> {
        as_ipv4(key, self.get(key)?)
    }

    /// A charging-point IPv4 parameter.
    pub fn cp_ipv4(&self, cp: ChargePointId, key: &str) -> Result<Ipv4Addr, ParamError> {
        as_ipv4(key, self.get_cp(cp, key)?)
    }

    /// A charging-point register parameter.
    pub fn cp_register(&self, cp: ChargePointId, key: &str) -> Result<Option<u16>, ParamError> {
        match self.get_cp(cp, key)? {
            ParamValue::Register(r) => Ok(r),
            _ => Err(ParamError::WrongType {
                key: key.to_owned(),
                expected: "register",
            }),
        }
    }

    /// Sets a general enum parameter by its config-file value.
    pub fn set_choice(&mut self, key: &str, value: &toml::Value) -> Result<(), ParamError> {
        let (spec, _) = self.general_slot(key)?;
        let v = spec
            .from_toml(value)
            .map_err(|reason| ParamError::Invalid {
                key: key.to_owned(),
                reason,
            })?;
        self.set(key, v)
    }

    /// Sets a charging-point parameter by its config-file value.
    pub fn set_cp_toml(
        &mut self,
        cp: ChargePointId,
        key: &str,
        value: &toml::Value,
    ) -> Result<(), ParamError> {
        let (spec, _) = self.cp_slot(cp, key)?;
        let v = spec
            .from_toml(value)
            .map_err(|reason| ParamError::Invalid {
                key: format!("charging_point.{cp}.{key}"),
                reason,
            })?;
        self.set_cp(cp, key, v)
    }
}

fn as_bool(key: &str, v: ParamValue) -> Result<bool, ParamError> {
    match v {
        ParamValue::Bool(b) => Ok(b),
        _ => Err(ParamError::WrongType {
            key: key.to_owned(),
            expected: "bool",
        }),
    }
}

fn as_int(key: &str, v: ParamValue) -> Result<i64, ParamError> {
    match v {
        ParamValue::Int(n) => Ok(n),
        _ => Err(ParamError::WrongType {
            key: key.to_owned(),
            expected: "number",
        }),
    }
}

fn as_ipv4(key: &str, v: ParamValue) -> Result<Ipv4Addr, ParamError> {
    match v {
        ParamValue::Ipv4(ip) => Ok(ip),
        _ => Err(ParamError::WrongType {
            key: key.to_owned(),
            expected: "IPv4 address",
        }),
    }
}

fn choice(spec: &ParamSpec, v: ParamValue) -> Result<toml::Value, ParamError> {
    match v {
        ParamValue::Code(c) if spec.kind == ParamKind::Enum => spec
            .enum_value(c)
            .cloned()
            .ok_or_else(|| ParamError::Invalid {
                key: spec.key.clone(),
                reason: format!("code {c} is not a choice"),
            }),
        _ => Err(ParamError::WrongType {
            key: spec.key.clone(),
            expected: "choice",
        }),
    }
}

/// Checks a raw value against a spec (kind, range, enum codes, model codes).
fn check_value(spec: &ParamSpec, value: ParamValue) -> Result<(), String> {
    match (spec.kind, value) {
        (ParamKind::Bool, ParamValue::Bool(_))
        | (ParamKind::Ipv4, ParamValue::Ipv4(_))
        | (ParamKind::Register, ParamValue::Register(None)) => Ok(()),
        (ParamKind::Register, ParamValue::Register(Some(r))) if r != u16::MAX => Ok(()),
        (ParamKind::Uint | ParamKind::Int, ParamValue::Int(n)) => {
            let (lo, hi) = spec.raw_bounds();
            if (lo..=hi).contains(&n) {
                Ok(())
            } else {
                Err(format!("raw value {n} is out of range {lo}..={hi}"))
            }
        }
        (ParamKind::Enum, ParamValue::Code(c)) => {
            if spec.enum_value(c).is_some() {
                Ok(())
            } else {
                Err(format!("code {c} is not one of the choices"))
            }
        }
        (ParamKind::ChargerModel, ParamValue::Code(c)) => {
            if c == 0 || catalog::charger_model_by_code(c).is_some() {
                Ok(())
            } else {
                Err(format!("charging-point model code {c} is unknown"))
            }
        }
        (ParamKind::MeterModel, ParamValue::Code(c)) => {
            if c == 0 || catalog::meter_model_by_code(c).is_some() {
                Ok(())
            } else {
                Err(format!("electricity-meter model code {c} is unknown"))
            }
        }
        _ => Err("value of the wrong type".to_owned()),
    }
}

#[allow(
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation,
    reason = "range checked before storing"
)]
fn write_cell(mem: &mut [u8], offset: usize, spec: &ParamSpec, value: ParamValue) {
    let bytes: Vec<u8> = match value {
        ParamValue::Bool(b) => vec![u8::from(b)],
        ParamValue::Code(c) => vec![c],
        ParamValue::Ipv4(ip) => ip.octets().to_vec(),
        ParamValue::Register(r) => r.unwrap_or(u16::MAX).to_be_bytes().to_vec(),
        ParamValue::Int(n) => {
            let be = (n as u64).to_be_bytes();
            be.get(8 - spec.size.min(8)..).unwrap_or_default().to_vec()
        }
    };
    if let Some(cell) = mem.get_mut(offset..offset + bytes.len()) {
        cell.copy_from_slice(&bytes);
    }
}

fn read_cell(
    mem: &[u8],
    offset: usize,
    spec: &ParamSpec,
    key: &str,
) -> Result<ParamValue, ParamError> {
    let err = |reason: String| ParamError::Memory {
        offset,
        key: key.to_owned(),
        reason,
    };
    let cell = mem
        .get(offset..offset + spec.size)
        .ok_or_else(|| err("outside the memory image".to_owned()))?;
    let unsigned = cell.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let value = match spec.kind {
        ParamKind::Bool => match unsigned {
            0 => ParamValue::Bool(false),
            1 => ParamValue::Bool(true),
            other => return Err(err(format!("{other} is not a bool (0 or 1)"))),
        },
        ParamKind::Enum | ParamKind::ChargerModel | ParamKind::MeterModel => ParamValue::Code(
            u8::try_from(unsigned).map_err(|_| err("code out of range".to_owned()))?,
        ),
        ParamKind::Ipv4 => {
            let octets: [u8; 4] = cell.try_into().map_err(|_| err("not 4 bytes".to_owned()))?;
            ParamValue::Ipv4(Ipv4Addr::from(octets))
        }
        ParamKind::Register => {
            let r = u16::try_from(unsigned).map_err(|_| err("not 2 bytes".to_owned()))?;
            ParamValue::Register(if r == u16::MAX { None } else { Some(r) })
        }
        ParamKind::Uint => {
            ParamValue::Int(i64::try_from(unsigned).map_err(|_| err("too large".to_owned()))?)
        }
        ParamKind::Int => {
            let bits = spec.size * 8;
            let shift = 64 - u32::try_from(bits).unwrap_or(64);
            #[allow(
                clippy::cast_possible_wrap,
                reason = "sign extension of a two's complement cell"
            )]
            let signed = ((unsigned << shift) as i64) >> shift;
            ParamValue::Int(signed)
        }
    };
    check_value(spec, value).map_err(err)?;
    Ok(value)
}
