//! # knx-echarge
//!
//! Firmware for a DIN-rail KNX gateway that brings up to five EV charging points (Modbus TCP and
//! Modbus RTU/ASCII over RS485, mixed models) onto a KNX bus. It maps each charging point onto a
//! numbered KNX group-object table, runs dynamic load management (DLM) against smart-meter
//! telegrams, obeys grid-supporting control, reports faults and is configured from ETS or from
//! a TOML file.
//!
//! ## Layers
//! Each module imports only from the layers below it (`tests/layers.rs` enforces the rule
//! on every `use crate::…` of `src/`; README, "Architecture", explains it):
//!
//! 1. **base** — [`units`] (currents, powers, phases, identifiers as types), [`faults`] (the
//!    spec's error codes and severities), [`store`] (the data directory, atomic writes),
//!    [`netif`] (network interfaces as data), [`hw`] (the board as data), [`catalog`] (the
//!    charging-point and meter model registry, capabilities, interfaces).
//! 2. **protocols** — [`knx`] (addresses, wire formats, DPT codecs, links, the
//!    device-management stack; owns the link state), [`modbus`] (the client interface, Modbus
//!    TCP, the shared RS485 line and its RTU/ASCII framing), [`dlm`] (the pure load-management
//!    allocation), [`ssdp`] (UPnP discovery: the gateway in the Windows network environment).
//! 3. **devices** — [`chargers`] (model drivers over any Modbus transport), [`meters`]
//!    (retrofit meters), [`objects`] (the numbered group-object table and its engine),
//!    [`etsdb`] (the parameter model and its ETS memory layout).
//! 4. **config** — [`config`]: the typed configuration, its file format, its ETS mapping and
//!    its validation into faults.
//! 5. **core** — [`mod@core`]: the sans-IO core, `Core::handle(event, now) -> actions`.
//! 6. **gateway** — [`gateway`]: the async shell around the core and the charger tasks.
//! 7. **edges** — [`app`] (the binary's application: gateway, website, demo), [`web`] (the device website), [`sim`] (simulated charging points; imports only
//!    `modbus`, `catalog` and `units`), [`simulate`] (the DLM simulator), [`demo`],
//!    [`knxprod`] (the ETS product database generated from the same sources); the binary
//!    (`main.rs`) stays thin.
//!
//! The core never reads a clock or touches a socket: time comes in as an argument, outputs are
//! values. See `README.md` for the architecture in brief.

pub mod app;
pub mod catalog;
pub mod chargers;
pub mod config;
pub mod core;
pub mod demo;
pub mod dlm;
pub mod etsdb;
pub mod faults;
pub mod gateway;
pub mod hw;
pub mod knx;
pub mod knxprod;
pub mod meters;
pub mod modbus;
pub mod netif;
pub mod objects;
pub mod sim;
pub mod simulate;
pub mod ssdp;
pub mod store;
pub mod tpline;
pub mod units;
pub mod web;
