//! The KNX protocol layer, written in this project (see README, "Dependencies": the `knx_rs`
//! crate on crates.io cannot carry a device stack).
//!
//! * [`address`]: group and individual addresses and their textual forms.
//! * [`wire`]: cEMI, TPCI/APCI and KNXnet/IP frames: parse and emit, never panic.
//! * [`dpt`]: datapoint-type codecs for every DPT the group-object table uses.
//! * [`device`]: the gateway as a KNX device (MV-07B0) that ETS commissions: transport layer,
//!   management services, interface objects, load-state machines. Sans-IO.

pub mod address;
pub mod device;
pub mod dpt;
pub mod link;
pub mod wire;

pub use address::{AddressError, GroupAddress, GroupAddressStyle, IndividualAddress};
