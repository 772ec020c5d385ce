//! Charging points: the model registry ([`registry`]) and, in later work, the `ChargePoint`
//! driver trait, the model drivers and the Modbus transports.

pub mod registry;

pub use registry::{Capability, ChargerModel, Interface, MeterModel, Metering, Rs485Framing};
