//! Dynamic load management: how much current each charging point may draw so that the fuse
//! protecting the house connection is never overloaded.
//!
//! * [`allocate()`]: the allocation rule (pure function): minimums first, then the
//!   prioritised charging point, then max-min fair sharing; symmetric (spec) or per phase.
//! * [`limits`]: the unbalanced-load cap and the power cap during grid-supporting control.
//! * [`reason`]: why each charging point gets its current ([`Limit`], one per charging point
//!   in [`Limits`]), recorded by the decision that set it.
//!
//! The controller around it (meter supervision, emergency mode, high-power devices, ramps,
//! minimum on/off times, queue rotation) runs inside the sans-IO core.

pub mod allocate;
pub mod limits;
pub mod reason;

pub use allocate::{Allocation, Demand, Mode, Shortage, allocate};
pub use limits::{limit_power, limit_unbalance};
pub use reason::{Limit, Limits};
