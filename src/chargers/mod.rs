//! Charging points: the model registry ([`registry`]), the types between drivers and the
//! core ([`status`]: [`ChargerStatus`], [`ChargerCommand`], [`DriverError`], the
//! [`ChargePoint`] trait) and the Modbus client interface ([`modbus`]). Model drivers, the
//! RS485 line and the charger tasks live in further submodules.

pub mod modbus;
pub mod registry;
pub mod status;

pub use registry::{Capability, ChargerModel, Interface, MeterModel, Metering, Rs485Framing};
pub use status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
