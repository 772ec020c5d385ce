//! The model catalogue behind `knx-echarge models [--json]`: every charging-point model with
//! its transport, defaults, metering (whether a retrofit meter may be configured), whether a
//! driver exists (models without one are listed for the ETS database but rejected by
//! `check-config` with Conf Charger), and the model-dependent group objects it enables (from
//! `group-objects/objects.toml`, offsets in the charging point's block of 50).

use serde::Serialize;

use crate::catalog::{Capability, Interface, Metering, Rs485Framing, charger_models};
use crate::chargers::drivers::SUPPORTED_MODELS;
use crate::objects::{Condition, TableSpec};

/// One model-dependent object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelObject {
    /// Offset in the block (object 50 + offset for charging point 1).
    pub offset: u16,
    /// English name.
    pub name: String,
    /// The capability that enables it.
    pub capability: Capability,
}

/// One model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Code in the ETS parameter memory.
    pub code: u8,
    /// Config id.
    pub id: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model name.
    pub name: String,
    /// Interfaces.
    pub interfaces: Vec<Interface>,
    /// RS485 framing.
    pub rs485_framing: Option<Rs485Framing>,
    /// Default Modbus TCP port.
    pub port: u16,
    /// Default unit id.
    pub unit_id: u8,
    /// Metering.
    pub metering: Metering,
    /// A driver exists. Without one, a configuration choosing the model fails validation
    /// (Conf Charger).
    pub driver: bool,
    /// A retrofit electricity meter may be configured at the charging point (spec 2.3: only
    /// for models without integrated metering).
    pub retrofit_meter: bool,
    /// Capabilities.
    pub capabilities: Vec<Capability>,
    /// Model-dependent objects.
    pub objects: Vec<ModelObject>,
}

/// Every model of `etsdb/charger-models.toml`.
pub fn models() -> Vec<ModelInfo> {
    let spec = TableSpec::get();
    charger_models()
        .iter()
        .map(|m| {
            let objects = spec
                .charging_point_object
                .iter()
                .filter_map(|o| {
                    let cap = o.exists.iter().find_map(|c| match c {
                        Condition::Capability(cap) if m.has(*cap) => Some(*cap),
                        _ => None,
                    })?;
                    Some(ModelObject {
                        offset: o.offset?,
                        name: o.name_en.clone(),
                        capability: cap,
                    })
                })
                .collect();
            ModelInfo {
                code: m.code,
                id: m.id.clone(),
                manufacturer: m.manufacturer.clone(),
                name: m.name.clone(),
                interfaces: m.interfaces.clone(),
                rs485_framing: m.rs485_framing,
                port: m.port,
                unit_id: m.unit_id,
                metering: m.metering,
                driver: SUPPORTED_MODELS.contains(&m.id.as_str()),
                retrofit_meter: m.metering == Metering::Optional,
                capabilities: m.capabilities.iter().copied().collect(),
                objects,
            }
        })
        .collect()
}

/// The catalogue as text, one block per model.
pub fn text() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for m in models() {
        let transport: Vec<String> = m
            .interfaces
            .iter()
            .map(|i| match (i, m.rs485_framing) {
                (Interface::Tcp, _) => format!("Modbus TCP port {} unit {}", m.port, m.unit_id),
                (Interface::Rs485, Some(f)) => format!("RS485 {f} address {}", m.unit_id),
                (Interface::Rs485, None) => "RS485".to_owned(),
            })
            .collect();
        let _ = writeln!(
            out,
            "{:>3}  {:<24} {} {}{}",
            m.code,
            m.id,
            m.manufacturer,
            m.name,
            if m.driver {
                ""
            } else {
                "  (no driver yet: check-config rejects it)"
            }
        );
        let _ = writeln!(out, "     {}", transport.join("; "));
        let _ = writeln!(
            out,
            "     metering: {}",
            if m.retrofit_meter {
                "optional (a retrofit electricity meter may be configured)"
            } else {
                "integrated"
            }
        );
        if m.capabilities.contains(&Capability::PhaseSwitch) {
            let _ = writeln!(
                out,
                "     1-/3-phase switching over Modbus (where the box is set up for it)"
            );
        }
        let objects: Vec<String> = m
            .objects
            .iter()
            .map(|o| format!("{} {}", 50 + o.offset, o.name))
            .collect();
        let _ = writeln!(out, "     objects: {}", objects.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keba_lists_its_objects() {
        let all = models();
        let keba = all.iter().find(|m| m.id == "keba-p30").unwrap();
        assert!(keba.driver);
        assert!(
            keba.objects
                .iter()
                .any(|o| o.capability == Capability::Unlock)
        );
        assert!(
            !keba
                .objects
                .iter()
                .any(|o| o.capability == Capability::Temperature)
        );
        assert!(text().contains("keba-p30"));
    }

    #[test]
    fn models_without_driver_are_marked_and_optional_metering_takes_a_meter() {
        let all = models();
        let ev_cc = all.iter().find(|m| m.id == "phoenix-ev-cc").unwrap();
        assert!(ev_cc.driver && ev_cc.retrofit_meter);
        let keba = all.iter().find(|m| m.id == "keba-p30").unwrap();
        assert!(!keba.retrofit_meter);
        let charx = all.iter().find(|m| m.id == "phoenix-charx").unwrap();
        assert!(charx.driver && charx.retrofit_meter);
        assert!(
            all.iter().all(|m| m.driver),
            "every listed model has a driver"
        );
        let text = text();
        assert!(!text.contains("(no driver yet"));
        assert!(text.contains("metering: optional (a retrofit electricity meter"));
    }
}
