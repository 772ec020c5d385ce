//! Dynamic load management: how much current each charging point may draw so that the fuse
//! protecting the house connection is never overloaded.
//!
//! * [`allocate()`]: the allocation rule (pure function): minimums first, then the
//!   prioritised charging point, then max-min fair sharing; symmetric (spec) or per phase.
//! * [`limits`]: the unbalanced-load cap and the power cap during grid-supporting control.
//! * [`reason`]: why each charging point gets its current ([`Limit`], one per charging point
//!   in [`Limits`]), recorded by the decision that set it.
//! * [`plausible`]: whether a charging point's reported currents can be true (DLM InvCurrent).
//! * [`phases`]: 1-/3-phase switching (when, and the pause around a switch), per point.
//! * [`vehicle`]: what the DLM learns about each vehicle (reaction delay, ceiling).
//! * [`controller`]: the sans-IO controller around them ([`Controller`]: meter supervision,
//!   emergency mode, high-power devices, the other-load estimate, ramps, minimum on/off
//!   times, queue rotation), driven by [`Input`]s at injected instants.
//!
//! The DLM imports only `units` and `faults`; it knows no group-object numbers and no
//! configuration file. The core owns a [`Controller`] and carries out its decisions.

pub mod allocate;
pub mod controller;
pub mod limits;
pub mod phases;
pub mod plausible;
pub mod reason;
pub mod vehicle;

pub use allocate::{Allocation, Demand, Mode, Shortage, allocate};
pub use controller::{
    Controller, Cycle, Decision, Env, FaultChange, Input, MeterSettings, PointInput, PointSettings,
    Settings, Supervision,
};
pub use limits::{limit_power, limit_unbalance};
pub use reason::{Limit, Limits};
pub use vehicle::VehicleModel;
