//! The numbered group-object table of one configuration.
//!
//! [`ObjectTable::build`] takes the table data ([`spec::TableSpec`], from `group-objects/`) and
//! a [`Context`] (what the configuration enables) and produces the objects that exist. Each
//! object gets its number, name, chosen DPT, flags, bus priority and linked group addresses
//! (the first is the sending address). This is the only place object existence is decided.
//! Nothing else in the firmware lists objects by hand.
//!
//! [`Value`] is what the core reads from and writes to objects: a typed value with its unit.
//! The object's configured DPT decides the bytes on the bus (done in the KNX layer).

pub mod engine;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use spec::{Condition, Flags, Priority, TableSpec};

use crate::catalog::Capability;
use crate::knx::GroupAddress;
use crate::units::{ChargePointId, Current, Energy, GoNumber, Power, Temperature};

/// What a configuration enables, as far as object existence is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// DLM on.
    pub dlm: bool,
    /// Smart meter connected 3-phase.
    pub meter_three_phase: bool,
    /// Smart meter measures power (else current).
    pub meter_power: bool,
    /// Monitoring per values and "In operation" object.
    pub monitoring_in_operation: bool,
    /// The DPT chosen by each general DPT parameter (key → "14.019").
    pub dpt_choices: BTreeMap<String, String>,
    /// Per charging point (index 0..5).
    pub charging_points: Vec<ChargePointContext>,
}

/// What one charging point enables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChargePointContext {
    /// Enabled and a model chosen.
    pub active: bool,
    /// Capabilities of the model plus those of its retrofit meter.
    pub capabilities: BTreeSet<Capability>,
    /// "Send temperature values" is not off.
    pub temperature_sending: bool,
    /// The DPT chosen by each of its DPT parameters (key without `cp.` → "14.019").
    pub dpt_choices: BTreeMap<String, String>,
}

impl Context {
    fn holds(&self, cond: Condition, cp: Option<&ChargePointContext>) -> bool {
        match cond {
            Condition::Dlm(on) => self.dlm == on,
            Condition::MeterThreePhase(three) => self.meter_three_phase == three,
            Condition::MeterPower(power) => self.meter_power == power,
            Condition::MonitoringInOperation => self.monitoring_in_operation,
            Condition::ChargingPoint => cp.is_some_and(|c| c.active),
            Condition::Capability(cap) => cp.is_some_and(|c| c.capabilities.contains(&cap)),
            Condition::TemperatureSending => cp.is_some_and(|c| c.temperature_sending),
        }
    }

    fn dpt(
        &self,
        param: Option<&str>,
        cp: Option<&ChargePointContext>,
        default: &str,
        allowed: &[String],
    ) -> String {
        let chosen = match (param, cp) {
            (Some(p), Some(cp)) if p.starts_with("cp.") => {
                cp.dpt_choices.get(p.trim_start_matches("cp."))
            }
            (Some(p), _) => self.dpt_choices.get(p),
            (None, _) => None,
        };
        chosen
            .filter(|d| allowed.contains(d))
            .map_or_else(|| default.to_owned(), Clone::clone)
    }
}

/// One group object that exists under the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupObject {
    /// Object number.
    pub number: GoNumber,
    /// Its charging point, for objects 50..=299.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charging_point: Option<ChargePointId>,
    /// English name (object function).
    pub name: String,
    /// German name.
    pub name_de: String,
    /// The DPT in use.
    pub dpt: String,
    /// The DPTs the object may use.
    pub dpt_choices: Vec<String>,
    /// Data width.
    pub size: String,
    /// CRWTUI flags.
    pub flags: Flags,
    /// Bus-limiter class.
    pub priority: Priority,
    /// Linked group addresses; the first is the sending address.
    pub group_addresses: Vec<GroupAddress>,
}

impl GroupObject {
    /// The address the object sends on (first linked), if any.
    pub fn sending_address(&self) -> Option<GroupAddress> {
        self.group_addresses.first().copied()
    }
}

/// The objects of one configuration, ordered by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectTable {
    objects: Vec<GroupObject>,
    /// Group address → indexes into `objects` (the receive path looks objects up by address).
    by_address: BTreeMap<GroupAddress, Vec<usize>>,
}

/// Serialised as the list of objects.
impl Serialize for ObjectTable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.objects.serialize(s)
    }
}

impl ObjectTable {
    /// Builds the table: every object of `spec` whose conditions hold in `ctx`, linked to the
    /// group addresses in `associations` (object number → addresses, first = sending).
    pub fn build(
        spec: &TableSpec,
        ctx: &Context,
        associations: &BTreeMap<GoNumber, Vec<GroupAddress>>,
    ) -> Self {
        let mut objects = Vec::new();
        let links = |n: GoNumber| associations.get(&n).cloned().unwrap_or_default();
        for o in &spec.object {
            let Some(number) = o.number else { continue };
            if let Some(obj) = instantiate(o, GoNumber(number), None, None, ctx, &links) {
                objects.push(obj);
            }
        }
        for (cp_ctx, cp) in ctx.charging_points.iter().zip(ChargePointId::all()) {
            for o in &spec.charging_point_object {
                let Some(offset) = o.offset else { continue };
                let number = GoNumber(cp.object_base() + offset);
                if let Some(obj) = instantiate(o, number, Some(cp), Some(cp_ctx), ctx, &links) {
                    objects.push(obj);
                }
            }
        }
        objects.sort_by_key(|o| o.number);
        let mut by_address: BTreeMap<GroupAddress, Vec<usize>> = BTreeMap::new();
        for (i, o) in objects.iter().enumerate() {
            for ga in &o.group_addresses {
                by_address.entry(*ga).or_default().push(i);
            }
        }
        Self {
            objects,
            by_address,
        }
    }

    /// All objects, ordered by number.
    pub fn objects(&self) -> &[GroupObject] {
        &self.objects
    }

    /// The object with number `n`.
    pub fn get(&self, n: GoNumber) -> Option<&GroupObject> {
        self.objects
            .binary_search_by_key(&n, |o| o.number)
            .ok()
            .and_then(|i| self.objects.get(i))
    }

    /// Whether object `n` exists.
    pub fn contains(&self, n: GoNumber) -> bool {
        self.get(n).is_some()
    }

    /// Objects linked to group address `ga` (a group address may drive several objects).
    pub fn by_group_address(&self, ga: GroupAddress) -> impl Iterator<Item = &GroupObject> {
        self.objects
            .iter()
            .filter(move |o| o.group_addresses.contains(&ga))
    }
}

fn instantiate(
    o: &spec::ObjectSpec,
    number: GoNumber,
    cp: Option<ChargePointId>,
    cp_ctx: Option<&ChargePointContext>,
    ctx: &Context,
    links: &impl Fn(GoNumber) -> Vec<GroupAddress>,
) -> Option<GroupObject> {
    if !o.exists.iter().all(|c| ctx.holds(*c, cp_ctx)) {
        return None;
    }
    let (name_en, name_de, dpts, default_dpt, dpt_param) = if o.variant.is_empty() {
        (
            &o.name_en,
            &o.name_de,
            &o.dpts,
            &o.default_dpt,
            o.dpt_param.as_deref(),
        )
    } else {
        let v = o
            .variant
            .iter()
            .find(|v| v.when.iter().all(|c| ctx.holds(*c, cp_ctx)))?;
        (
            &v.name_en,
            &v.name_de,
            &v.dpts,
            &v.default_dpt,
            v.dpt_param.as_deref(),
        )
    };
    Some(GroupObject {
        number,
        charging_point: cp,
        name: name_en.clone(),
        name_de: name_de.clone(),
        dpt: ctx.dpt(dpt_param, cp_ctx, default_dpt, dpts),
        dpt_choices: dpts.clone(),
        size: o.size.clone(),
        flags: o.flags,
        priority: o.priority,
        group_addresses: links(number),
    })
}

/// A typed object value, independent of the DPT that carries it on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    /// 1-bit values (switch, boolean, start/stop, state, trigger).
    Bool(bool),
    /// An unsigned byte (charging-point state 0..=11).
    U8(u8),
    /// A current.
    Current(Current),
    /// A power.
    Power(Power),
    /// An energy.
    Energy(Energy),
    /// A temperature.
    Temperature(Temperature),
    /// A duration in seconds (DPT 13.100).
    Seconds(i32),
    /// Text (DPT 16.001, at most 14 Latin-1 characters on the bus).
    Text(String),
    /// A time of day with optional weekday (DPT 10.001).
    #[serde(serialize_with = "serialize_display")]
    TimeOfDay(crate::knx::dpt::TimeOfDay),
}

fn serialize_display<S: serde::Serializer, T: std::fmt::Display>(
    v: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Serialize for Current {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_amps_f64())
    }
}

impl Serialize for Power {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_watts_f64())
    }
}

impl Serialize for Energy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_watt_hours_f64())
    }
}

impl Serialize for Temperature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_celsius_f64())
    }
}

#[cfg(test)]
mod tests;
