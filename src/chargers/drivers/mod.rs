//! The model drivers, one module per model, and the factory that builds the right driver over
//! the right transport for a charging point's [`Endpoint`] ([`driver_for`]).
//!
//! [`Transport`] is Modbus TCP or a device on the RS485 line; [`AnyDriver`] is any driver over
//! either, so that the charger tasks are not generic (their futures stay `Send`).

pub mod abb;
pub mod abl;
pub mod alfen;
pub mod bender;
pub mod charx;
pub mod common;
pub mod heidelberg;
pub mod keba;
pub mod mennekes;
pub mod phoenix;
pub mod schneider;
pub mod vestel;
pub mod webasto;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

pub use common::DriverSettings;

use super::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, DriverError,
};
use crate::catalog::{Capability, ChargerModel, Interface};
use crate::modbus::line::{Line, LineModbus};
use crate::modbus::{Modbus, ModbusError, TcpModbus};

/// Models with a driver, by config id.
pub const SUPPORTED_MODELS: [&str; 12] = [
    "keba-p30",
    "abb-terra-ac",
    "bender-cc612",
    "alfen-eve",
    "heidelberg-ec",
    "webasto-next",
    "vestel-evc04",
    "phoenix-ev-cc",
    "mennekes-amtron-compact",
    charx::ID,
    schneider::ID,
    abl::ID,
];

/// Modbus TCP or a device on the RS485 line.
#[derive(Debug)]
pub enum Transport {
    /// Modbus TCP.
    Tcp(TcpModbus),
    /// Modbus RTU or ASCII on the shared line.
    Line(LineModbus),
}

macro_rules! transport {
    ($self:ident, $m:ident => $e:expr) => {
        match $self {
            Transport::Tcp($m) => $e,
            Transport::Line($m) => $e,
        }
    };
}

impl Modbus for Transport {
    async fn read_holding(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        transport!(self, m => m.read_holding(addr, count).await)
    }
    async fn read_input(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        transport!(self, m => m.read_input(addr, count).await)
    }
    async fn write_single(&mut self, addr: u16, value: u16) -> Result<(), ModbusError> {
        transport!(self, m => m.write_single(addr, value).await)
    }
    async fn write_multiple(&mut self, addr: u16, values: &[u16]) -> Result<(), ModbusError> {
        transport!(self, m => m.write_multiple(addr, values).await)
    }
    async fn read_coils(&mut self, addr: u16, count: u16) -> Result<Vec<bool>, ModbusError> {
        transport!(self, m => m.read_coils(addr, count).await)
    }
    async fn write_coil(&mut self, addr: u16, value: bool) -> Result<(), ModbusError> {
        transport!(self, m => m.write_coil(addr, value).await)
    }
    fn set_unit(&mut self, unit: u8) -> bool {
        transport!(self, m => m.set_unit(unit))
    }
}

/// Any supported driver over any transport.
#[derive(Debug)]
#[allow(missing_docs, reason = "one variant per model, named after it")]
pub enum AnyDriver {
    Keba(keba::KebaP30<Transport>),
    Abb(abb::AbbTerraAc<Transport>),
    Bender(bender::BenderCc<Transport>),
    Alfen(alfen::AlfenEve<Transport>),
    Heidelberg(heidelberg::HeidelbergEc<Transport>),
    Webasto(webasto::WebastoNext<Transport>),
    Vestel(vestel::VestelEvc04<Transport>),
    Amtron(mennekes::AmtronCompact<Transport>),
    PhoenixEvCc(phoenix::PhoenixEvCc<Transport>),
    Charx(charx::PhoenixCharx<Transport>),
    Schneider(schneider::EvlinkProAc<Transport>),
    Abl(abl::AblEmh<Transport>),
}

macro_rules! any {
    ($self:ident, $d:ident => $e:expr) => {
        match $self {
            AnyDriver::Keba($d) => $e,
            AnyDriver::Abb($d) => $e,
            AnyDriver::Bender($d) => $e,
            AnyDriver::Alfen($d) => $e,
            AnyDriver::Heidelberg($d) => $e,
            AnyDriver::Webasto($d) => $e,
            AnyDriver::Vestel($d) => $e,
            AnyDriver::Amtron($d) => $e,
            AnyDriver::PhoenixEvCc($d) => $e,
            AnyDriver::Charx($d) => $e,
            AnyDriver::Schneider($d) => $e,
            AnyDriver::Abl($d) => $e,
        }
    };
}

impl ChargePoint for AnyDriver {
    fn capabilities(&self) -> BTreeSet<Capability> {
        any!(self, d => d.capabilities())
    }
    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        any!(self, d => d.identify().await)
    }
    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        any!(self, d => d.poll().await)
    }
    async fn heartbeat(&mut self) -> Result<(), DriverError> {
        any!(self, d => d.heartbeat().await)
    }
    fn heartbeat_interval(&self) -> Option<Duration> {
        any!(self, d => d.heartbeat_interval())
    }
    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError> {
        any!(self, d => d.command(command).await)
    }
}

/// The driver cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactoryError {
    /// No model chosen.
    #[error("charging point {0}: no model configured")]
    NoModel(u8),
    /// The model has no driver yet.
    #[error("charging point {0}: model `{1}` has no driver")]
    Unsupported(u8, String),
    /// The model does not speak on the configured interface.
    #[error("charging point {0}: model `{1}` is not reachable over {2:?}")]
    WrongInterface(u8, String, Interface),
    /// RS485 configured, but no line is open.
    #[error("charging point {0}: the RS485 line is not open")]
    NoLine(u8),
}

/// Builds `model_id`'s driver over `transport`.
pub fn build(
    model_id: &str,
    transport: Transport,
    unit: u8,
    settings: DriverSettings,
) -> Option<AnyDriver> {
    Some(match model_id {
        "keba-p30" => AnyDriver::Keba(keba::KebaP30::new(transport, settings)),
        "abb-terra-ac" => AnyDriver::Abb(abb::AbbTerraAc::new(transport, settings)),
        "bender-cc612" => AnyDriver::Bender(bender::BenderCc::new(transport, settings)),
        "alfen-eve" => AnyDriver::Alfen(alfen::AlfenEve::new(transport, unit, settings)),
        "heidelberg-ec" => {
            AnyDriver::Heidelberg(heidelberg::HeidelbergEc::new(transport, settings))
        }
        "webasto-next" => AnyDriver::Webasto(webasto::WebastoNext::new(transport, settings)),
        "vestel-evc04" => AnyDriver::Vestel(vestel::VestelEvc04::new(transport, settings)),
        "mennekes-amtron-compact" => {
            AnyDriver::Amtron(mennekes::AmtronCompact::new(transport, settings))
        }
        "phoenix-ev-cc" => AnyDriver::PhoenixEvCc(phoenix::PhoenixEvCc::new(transport, settings)),
        charx::ID => AnyDriver::Charx(charx::PhoenixCharx::new(transport, settings)),
        schneider::ID => AnyDriver::Schneider(schneider::EvlinkProAc::new(transport, settings)),
        abl::ID => AnyDriver::Abl(abl::AblEmh::new(transport, settings)),
        _ => return None,
    })
}

/// Extra spacing a model needs between requests on the RS485 line.
pub fn line_spacing(model_id: &str) -> Duration {
    match model_id {
        "heidelberg-ec" => Duration::from_millis(100),
        _ => Duration::ZERO,
    }
}

/// Where and how a charging point's driver reaches its box, and what it takes from the
/// configuration (the configuration layer fills it in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Charging point number 1..=5 (for errors and logs).
    pub number: u8,
    /// The model, if one is chosen.
    pub model: Option<&'static ChargerModel>,
    /// Modbus TCP or RS485.
    pub interface: Interface,
    /// Modbus TCP address.
    pub tcp: SocketAddr,
    /// Modbus TCP unit id (`None` = the model's default).
    pub unit_id: Option<u8>,
    /// RS485 client address (0 = the model's default unit id).
    pub rs485_address: u8,
    /// Response timeout of every Modbus TCP call.
    pub response_timeout: Duration,
    /// The limits a driver takes from the configuration.
    pub settings: DriverSettings,
}

/// The driver for a charging point: its model over TCP (address from the endpoint) or over
/// `line` (address `rs485_address`, else the model's default unit id).
pub fn driver_for(ep: &Endpoint, line: Option<&Line>) -> Result<AnyDriver, FactoryError> {
    let n = ep.number;
    let model = ep.model.ok_or(FactoryError::NoModel(n))?;
    if !model.interfaces.contains(&ep.interface) {
        return Err(FactoryError::WrongInterface(
            n,
            model.id.clone(),
            ep.interface,
        ));
    }
    let (transport, unit) = match ep.interface {
        Interface::Tcp => {
            let unit = ep.unit_id.unwrap_or(model.unit_id);
            (
                Transport::Tcp(TcpModbus::new(ep.tcp, unit, ep.response_timeout)),
                unit,
            )
        }
        Interface::Rs485 => {
            let line = line.ok_or(FactoryError::NoLine(n))?;
            let unit = if ep.rs485_address == 0 {
                model.unit_id
            } else {
                ep.rs485_address
            };
            let device = line.device(unit).with_spacing(line_spacing(&model.id));
            (Transport::Line(device), unit)
        }
    };
    build(&model.id, transport, unit, ep.settings)
        .ok_or_else(|| FactoryError::Unsupported(n, model.id.clone()))
}
