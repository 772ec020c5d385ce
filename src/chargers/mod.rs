//! Charging points: the model registry ([`registry`]), the types between drivers and the
//! core ([`status`]: [`ChargerStatus`], [`ChargerCommand`], [`DriverError`], the
//! [`ChargePoint`] trait), the Modbus client interface ([`modbus`]) with its hand-written
//! serial framings ([`frame`]) and the shared RS485 line ([`mod@line`]), the model drivers and
//! their factory ([`drivers`], [`driver_for`]), the charger tasks ([`task`]) and the model
//! catalogue of `knx-echarge models` ([`catalog`]).

pub mod catalog;
pub mod drivers;
pub mod frame;
pub mod line;
pub mod modbus;
pub mod registry;
pub mod status;
pub mod task;

pub use drivers::{AnyDriver, DriverSettings, FactoryError, Transport, driver_for};
pub use registry::{Capability, ChargerModel, Interface, MeterModel, Metering, Rs485Framing};
pub use status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
