//! Retrofit electricity meters at the charging points (spec ch. 2.3 and 9.3).
//!
//! A charging point without metering of its own can have a retrofit meter: one of the
//! pre-configured models ([`models`]: Carlo Gavazzi EM24, Siemens SENTRON PAC2200, ABB M4M,
//! Eastron SDM630) or a manually configured one ([`manual`]: FC 0x03/0x04, 1, 2 or 4 registers
//! per value, IEEE 754 float or integer with a power-of-ten scale, either word order, energy
//! per phase or as a sum, a fault register).
//!
//! This module owns:
//! * [`MeterReading`], what one read gives, and [`MeterError`] with its mapping to the spec's
//!   faults EMeterNotReach (30), EMeter Comm (20) and EMeter Error (10);
//! * [`meter_for`], which turns a charging point's [`RetrofitMeter`] into a
//!   [`MeterPlan`] (register map, endpoint), and [`MeterReader`], which reads a plan over any
//!   [`Modbus`] transport (TCP here, RTU/ASCII over the RS485 line) with as few requests as
//!   the register map allows;
//! * the register map description and its decoding ([`map`]), pure and panic-free;
//! * [`sim`], Modbus TCP and RTU simulators of the pre-configured models for tests and the demo.

pub mod manual;
pub mod map;
pub mod models;
pub mod settings;
pub mod sim;

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::catalog::Interface;
use crate::chargers::ChargerStatus;
use crate::faults::FaultCode;
use crate::modbus::{Modbus, ModbusError, TcpModbus};
use crate::units::{Current, Energy, PerPhase, Power};
use settings::{RetrofitKind, RetrofitMeter};

pub use map::{Block, Field, Format, MeterMap, Table, WordOrder};

/// One read of a retrofit meter. `None` = the meter (or its configuration) does not measure it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeterReading {
    /// Currents on phases L1, L2, L3 of the meter (phases without a register read as 0).
    pub currents: Option<PerPhase<Current>>,
    /// Active power sum (the meter's own sum register, else the sum of the phase powers).
    pub power: Option<Power>,
    /// Active power per phase (phases without a register read as 0).
    pub power_phases: Option<PerPhase<Power>>,
    /// Lifetime import energy (the meter's sum register, else the sum of the phase energies).
    pub energy_total: Option<Energy>,
    /// Lifetime import energy per phase (only when all three phases have a register).
    pub energy_phases: Option<PerPhase<Energy>>,
    /// The meter's fault register (0 = fine); a non-zero value is reported as
    /// [`MeterError::Fault`] instead of a reading.
    pub fault: Option<u32>,
}

impl MeterReading {
    /// Puts the meter's measurements into a charging point's status, replacing what the
    /// charging point itself reported for them.
    pub fn apply_to(&self, status: &mut ChargerStatus) {
        if self.currents.is_some() {
            status.currents = self.currents;
        }
        if self.power.is_some() {
            status.power = self.power;
        }
        if self.power_phases.is_some() {
            status.power_phases = self.power_phases;
        }
        if self.energy_total.is_some() {
            status.energy_total = self.energy_total;
        }
        if self.energy_phases.is_some() {
            status.energy_phases = self.energy_phases;
        }
    }
}

/// A meter read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeterError {
    /// No connection or no answer in time (EMeterNotReach, 30).
    #[error("electricity meter not reachable: {0}")]
    NotReachable(String),
    /// Exception reply or malformed answer (EMeter Comm, 20).
    #[error("electricity meter communication: {0}")]
    Comm(String),
    /// The answer decodes to a value that cannot be right: NaN, infinity, the model's invalid
    /// marker, out of range (EMeter Comm, 20).
    #[error("electricity meter value implausible: {0}")]
    Implausible(String),
    /// The meter's own fault register is not zero (EMeter Error, 10).
    #[error("electricity meter reports fault 0x{0:X}")]
    Fault(u32),
}

impl MeterError {
    /// The spec's fault code.
    pub const fn fault_code(&self) -> FaultCode {
        match self {
            Self::NotReachable(_) => FaultCode::EMeterNotReach,
            Self::Comm(_) | Self::Implausible(_) => FaultCode::EMeterComm,
            Self::Fault(_) => FaultCode::EMeterError,
        }
    }
}

impl From<ModbusError> for MeterError {
    fn from(e: ModbusError) -> Self {
        match e {
            ModbusError::NotReachable(s) => Self::NotReachable(s),
            ModbusError::Exception(_) | ModbusError::Malformed(_) => Self::Comm(e.to_string()),
        }
    }
}

/// The retrofit meter configuration cannot be turned into a reader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("retrofit meter: {0}")]
pub struct MeterConfigError(pub String);

/// Where the meter is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterEndpoint {
    /// Modbus TCP at this address, unit id.
    Tcp(SocketAddr, u8),
    /// On the shared RS485 line at this client address.
    Rs485(u8),
}

/// A configured meter: what to read and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterPlan {
    /// Model name ("Carlo Gavazzi EM24 DIN", "manual configuration", …) for logs and the
    /// website.
    pub name: String,
    /// Its register map.
    pub map: MeterMap,
    /// Its address.
    pub endpoint: MeterEndpoint,
}

impl MeterPlan {
    /// A reader for this plan over `modbus` (already bound to the meter's unit/address).
    pub fn reader<M: Modbus>(&self, modbus: M) -> MeterReader<M> {
        MeterReader::new(self.map.clone(), modbus)
    }

    /// A reader over Modbus TCP for a TCP meter; `None` for an RS485 meter (its transport is
    /// the shared line's).
    pub fn tcp_reader(&self, timeout: Duration) -> Option<MeterReader<TcpModbus>> {
        match self.endpoint {
            MeterEndpoint::Tcp(addr, unit) => {
                Some(self.reader(TcpModbus::new(addr, unit, timeout)))
            }
            MeterEndpoint::Rs485(_) => None,
        }
    }
}

/// The plan for a charging point's retrofit meter; `Ok(None)` when it has none.
pub fn meter_for(cfg: &RetrofitMeter) -> Result<Option<MeterPlan>, MeterConfigError> {
    let (name, map) = match cfg.kind {
        RetrofitKind::None => return Ok(None),
        RetrofitKind::Model => {
            let model = cfg
                .model
                .ok_or_else(|| MeterConfigError("kind \"model\" without a model".to_owned()))?;
            models::map_for(&model.id, cfg.interface).ok_or_else(|| {
                MeterConfigError(format!("no register map for meter model `{}`", model.id))
            })?
        }
        RetrofitKind::Manual => (
            "manual configuration".to_owned(),
            manual::map_for(&cfg.manual)?,
        ),
    };
    let endpoint = match cfg.interface {
        Interface::Tcp => MeterEndpoint::Tcp(
            SocketAddr::V4(SocketAddrV4::new(cfg.ip, cfg.port)),
            cfg.unit_id,
        ),
        Interface::Rs485 => MeterEndpoint::Rs485(cfg.rs485_address),
    };
    Ok(Some(MeterPlan {
        name,
        map,
        endpoint,
    }))
}

/// Reads one meter over a Modbus transport.
#[derive(Debug)]
pub struct MeterReader<M> {
    map: MeterMap,
    blocks: Vec<Block>,
    modbus: M,
}

impl<M: Modbus> MeterReader<M> {
    /// A reader for `map` over `modbus`.
    pub fn new(map: MeterMap, modbus: M) -> Self {
        let blocks = map.blocks();
        Self {
            map,
            blocks,
            modbus,
        }
    }

    /// The register blocks one read requests (one Modbus request each).
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The transport.
    pub fn modbus_mut(&mut self) -> &mut M {
        &mut self.modbus
    }

    /// Reads every block and decodes the values.
    pub async fn read(&mut self) -> Result<MeterReading, MeterError> {
        let mut data = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let words = match self.map.table {
                Table::Holding => self.modbus.read_holding(block.start, block.count).await,
                Table::Input => self.modbus.read_input(block.start, block.count).await,
            }
            .map_err(|e| {
                tracing::debug!(start = block.start, count = block.count, error = %e, "meter read failed");
                MeterError::from(e)
            })?;
            if words.len() != usize::from(block.count) {
                return Err(MeterError::Comm(format!(
                    "{} registers instead of {} at {}",
                    words.len(),
                    block.count,
                    block.start
                )));
            }
            data.push((block.start, words));
        }
        let reading = self.map.decode(&data);
        if let Err(e) = &reading {
            tracing::debug!(error = %e, "meter reading rejected");
        }
        reading
    }
}

#[cfg(test)]
mod tests;
