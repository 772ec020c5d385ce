//! # knx-echarge
//!
//! Firmware for a DIN-rail KNX gateway that brings up to five EV charging points (Modbus TCP and
//! Modbus RTU/ASCII over RS485, mixed models) onto a KNX bus. It maps each charging point onto a
//! numbered KNX group-object table, runs dynamic load management (DLM) against smart-meter
//! telegrams, obeys grid-supporting control, reports faults and is configured from ETS or from
//! a TOML file.
//!
//! ## Layers
//! * [`units`]: currents, powers, energies and identifiers as types, not bare numbers.
//! * [`knx`]: KNX addresses, wire formats and datapoint codecs (no I/O).
//! * [`objects`]: the numbered group-object table, built from the data in `group-objects/`.
//! * [`etsdb`]: the parameter model from `etsdb/` with its ETS parameter-memory layout.
//! * [`chargers`]: the charging-point model registry (and, later, the Modbus drivers).
//! * [`config`]: the typed configuration, its TOML file format and its validation into faults.
//! * [`faults`]: the error codes and severities of the spec, and how they overwrite each other.
//! * [`core`]: the sans-IO core: `Core::handle(event, now) -> actions`, deterministic.
//! * [`shell`]: the async shell that hosts the core and, later, the links and the web server.
//! * [`sim`] and [`demo`]: simulated charging points and the `knx-echarge demo` around them.
//! * [`store`]: the data directory (atomic writes) and [`hw`]: the board as data.
//! * [`netif`]: the machine's network interfaces as data (status page, KNXnet/IP discovery).
//!
//! The core never reads a clock or touches a socket: time comes in as an argument, outputs are
//! values. See `README.md` for the architecture in brief.

pub mod chargers;
pub mod config;
pub mod core;
pub mod demo;
pub mod dlm;
pub mod etsdb;
pub mod faults;
pub mod hw;
pub mod knx;
pub mod meters;
pub mod netif;
pub mod objects;
pub mod shell;
pub mod sim;
pub mod simulate;
pub mod store;
pub mod tpline;
pub mod units;
pub mod web;
