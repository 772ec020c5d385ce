//! The KNX protocol layer, written in this project (see README, "Dependencies": the `knx_rs`
//! crate on crates.io cannot carry a device stack).
//!
//! * [`address`]: group and individual addresses and their textual forms.

pub mod address;

pub use address::{AddressError, GroupAddress, GroupAddressStyle, IndividualAddress};
