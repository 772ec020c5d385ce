//! Charging points: the types between drivers and the rest of the gateway ([`status`]:
//! [`ChargerStatus`], [`ChargerCommand`], [`DriverError`], the [`ChargePoint`] trait) and the
//! model drivers with their factory ([`drivers`], [`build`]) and the rule of how commands wait
//! for a busy charger task ([`CommandQueue`]), and the protocol of a charger session — identify,
//! back-off, replay, poll, re-identify — as a sans-IO machine ([`session`]).
//!
//! A driver speaks one model's register map over any [`crate::modbus::Modbus`] transport. The
//! model registry and capabilities live in [`crate::catalog`]; the charger tasks that poll the
//! drivers live in the gateway. Chargers know nothing of the configuration, the core or KNX.

pub mod drivers;
pub mod queue;
pub mod session;
pub mod status;

pub use drivers::{
    AnyDriver, DriverSettings, Endpoint, FactoryError, Transport, build, driver_for,
};
pub use queue::CommandQueue;
pub use status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
