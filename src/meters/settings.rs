//! What a retrofit electricity meter at a charging point is, as the configuration states it:
//! none, a pre-configured model or a manual register map ([`RetrofitMeter`]), and how it is
//! reached. The configuration layer fills these from the ETS parameters or the config file.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::catalog::{Capability, Interface, MeterModel};

/// The kind of retrofit meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrofitKind {
    /// No retrofit meter.
    None,
    /// A pre-configured model.
    Model,
    /// Manual register configuration.
    Manual,
}

/// Modbus data types of a manual meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterDataType {
    /// IEEE 754 float (32 bit with 2 registers, 64 bit with 4).
    Float,
    /// Unsigned integer.
    Unsigned,
    /// Signed integer.
    Signed,
}

/// A manually configured meter (spec ch. 2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualMeter {
    /// 3 (holding) or 4 (input).
    pub function_code: u8,
    /// 1, 2 or 4 registers per value.
    pub register_count: u8,
    /// Encoding of the values.
    pub data_type: MeterDataType,
    /// High word first.
    pub high_word_first: bool,
    /// Value × 10^scale = A.
    pub current_scale: i8,
    /// Value × 10^scale = W.
    pub power_scale: i8,
    /// Value × 10^scale = Wh.
    pub energy_scale: i8,
    /// Current registers L1..L3.
    pub current: [Option<u16>; 3],
    /// Power registers L1..L3.
    pub power: [Option<u16>; 3],
    /// Energy registers L1..L3.
    pub energy: [Option<u16>; 3],
    /// Energy register (sum of phases).
    pub energy_total: Option<u16>,
    /// Fault state register (integer, 0 = fine).
    pub fault_register: Option<u16>,
}

/// A retrofit electricity meter at a charging point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrofitMeter {
    /// None, model or manual.
    pub kind: RetrofitKind,
    /// The chosen model (kept while `kind` is not `Model`).
    pub model: Option<&'static MeterModel>,
    /// How it is reached.
    pub interface: Interface,
    /// Modbus TCP unit id.
    pub unit_id: u8,
    /// IP address (TCP).
    pub ip: Ipv4Addr,
    /// TCP port.
    pub port: u16,
    /// RS485 client address (0 = not set).
    pub rs485_address: u8,
    /// Manual register configuration.
    pub manual: ManualMeter,
}

impl RetrofitMeter {
    /// Capabilities the meter gives its charging point.
    pub fn capabilities(&self) -> BTreeSet<Capability> {
        match self.kind {
            RetrofitKind::None => BTreeSet::new(),
            RetrofitKind::Model => self
                .model
                .map(|m| m.capabilities.clone())
                .unwrap_or_default(),
            RetrofitKind::Manual => {
                let m = &self.manual;
                let mut caps = BTreeSet::new();
                if m.current.iter().any(Option::is_some) {
                    caps.insert(Capability::Current);
                }
                if m.power.iter().any(Option::is_some) {
                    caps.insert(Capability::Power);
                    caps.insert(Capability::PowerPhases);
                }
                if m.energy.iter().any(Option::is_some) || m.energy_total.is_some() {
                    caps.insert(Capability::EnergyTotal);
                    caps.insert(Capability::EnergySession);
                }
                if m.energy.iter().all(Option::is_some) {
                    caps.insert(Capability::EnergyPhases);
                }
                caps
            }
        }
    }

    /// Whether a meter is configured.
    pub fn is_configured(&self) -> bool {
        self.kind != RetrofitKind::None
    }
}
