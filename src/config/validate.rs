//! Validation of a configuration into the configuration faults of the spec (ch. 11).
//!
//! | code | raised when |
//! | --- | --- |
//! | Conf NoCharger | no charging point is enabled with a model and an address |
//! | Conf Charger | a charging point is enabled without a model or without an address; its model has no driver in this firmware yet (listed in the catalogue, `knx-echarge models` marks it); its model cannot use the chosen connection; two charging points share an IP address (spec ch. 11 "an IP address is being used several times": the IP alone, whatever the port and unit id; loopback addresses are exempt, as only simulators live there) or an RS485 client address; a charging point shares a Modbus TCP endpoint (IP, port, unit id) with a retrofit meter; its model speaks another Modbus framing than the RS485 line (RTU and ASCII mixed); a second model type appears on the RS485 line; minimum above maximum current; the prioritised charging point is disabled, has no address or no model |
//! | Conf EMeter | a retrofit meter has no model (kind "model") or no measurement register (kind "manual"), no address, an endpoint or RS485 address used twice, a float with one register, or sits on a model with integrated metering |
//! | DLMAssociation | DLM is on and objects it needs have no group address: 10 always, 11 and 12 with a 3-phase meter, 20 with "In operation" monitoring. Object 13 (high power-consuming devices) is optional. |
//!
//! A duplicate is reported at the later charging point, as the spec does ("the charging point
//! whose configuration triggers the fault is marked as faulty, but is not necessarily the
//! cause"). The message names the earlier one.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::{
    ChargePointConfig, Config, MeterConnection, MeterDataType, MonitoringMode, RetrofitKind,
};
use crate::catalog::{Interface, Metering, Rs485Framing};
use crate::chargers::drivers::SUPPORTED_MODELS;
use crate::faults::{Fault, FaultCode};
use crate::units::GoNumber;

/// A Modbus endpoint used by a device of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Endpoint {
    /// A charging point's IP address (the spec's duplicate rule for charging points).
    Host(Ipv4Addr),
    Tcp(Ipv4Addr, u16, u8),
    Rs485(u8),
}

impl Endpoint {
    fn describe(self) -> String {
        match self {
            Self::Host(ip) => format!("IP address {ip}"),
            Self::Tcp(ip, port, unit) => format!("{ip}:{port} (unit id {unit})"),
            Self::Rs485(addr) => format!("RS485 client address {addr}"),
        }
    }
}

/// The charging points a serious configuration fault (severity 120–130, Conf Charger or Conf
/// EMeter at the charging point) puts out of operation until a new download (spec ch. 11,
/// "Fault severity": such faults "prevent the use of the charging point"): the core neither
/// commands them nor uses what their tasks report.
pub fn out_of_operation(
    faults: &[Fault],
) -> std::collections::BTreeSet<crate::units::ChargePointId> {
    faults
        .iter()
        .filter(|f| f.severity.is_serious())
        .filter_map(|f| f.charging_point)
        .collect()
}

/// Returns every configuration fault of `config`, device faults first, then by charging point.
pub fn validate(config: &Config) -> Vec<Fault> {
    let mut device = Vec::new();
    let mut faults = Vec::new();
    let mut used: BTreeMap<Endpoint, String> = BTreeMap::new();
    let mut rs485_model: Option<(&str, u8)> = None;

    for cp in config.charging_points.iter().filter(|c| c.enabled) {
        check_charging_point(config, cp, &mut used, &mut rs485_model, &mut faults);
    }
    for cp in config
        .charging_points
        .iter()
        .filter(|c| c.is_active() && c.meter.is_configured())
    {
        check_meter(cp, &mut used, &mut faults);
    }
    if config.dlm.enabled
        && let Some(id) = config.dlm.prioritised
        && let Some(cp) = config.charging_point(id)
    {
        let why = if !cp.enabled {
            Some("is disabled".to_owned())
        } else if cp.model.is_none() {
            Some("has no manufacturer and model".to_owned())
        } else if address_missing(cp) {
            Some(match cp.interface {
                Interface::Tcp => "has no IP address (0.0.0.0)".to_owned(),
                Interface::Rs485 => "has no Modbus client address (0)".to_owned(),
            })
        } else {
            None
        };
        if let Some(why) = why {
            faults.push(Fault::charging_point(
                FaultCode::ConfCharger,
                id,
                format!("dlm.prioritised_charging_point = {id}, but charging point {id} {why}"),
            ));
        }
    }
    if !config
        .charging_points
        .iter()
        .any(|c| c.is_active() && !address_missing(c))
    {
        device.push(Fault::device(
            FaultCode::ConfNoCharger,
            "no charging point is completely configured: enable one and set its model and its IP address or Modbus client address",
        ));
    }
    if config.dlm.enabled {
        let mut required = vec![10];
        if config.dlm.meter.connection == MeterConnection::ThreePhase {
            required.extend([11, 12]);
        }
        if config.dlm.meter.monitoring == MonitoringMode::ValuesAndInOperation {
            required.push(20);
        }
        let missing: Vec<String> = required
            .into_iter()
            .filter(|n| {
                config
                    .group_addresses
                    .get(&GoNumber(*n))
                    .is_none_or(Vec::is_empty)
            })
            .map(|n| n.to_string())
            .collect();
        if !missing.is_empty() {
            device.push(Fault::device(
                FaultCode::DlmAssociation,
                format!(
                    "DLM is on but group object(s) {} have no group address",
                    missing.join(", ")
                ),
            ));
        }
    }
    faults.sort_by_key(|f| f.charging_point);
    device.extend(faults);
    device
}

fn address_missing(cp: &ChargePointConfig) -> bool {
    match cp.interface {
        Interface::Tcp => cp.ip.is_unspecified(),
        Interface::Rs485 => cp.rs485_address == 0,
    }
}

fn check_charging_point<'c>(
    config: &Config,
    cp: &'c ChargePointConfig,
    used: &mut BTreeMap<Endpoint, String>,
    rs485_model: &mut Option<(&'c str, u8)>,
    faults: &mut Vec<Fault>,
) {
    let id = cp.id;
    let mut fault =
        |msg: String| faults.push(Fault::charging_point(FaultCode::ConfCharger, id, msg));
    let Some(model) = cp.model else {
        fault(format!(
            "charging point {id} is enabled but charging_point.{id}.model is not set (manufacturer and model missing)"
        ));
        return;
    };
    if !SUPPORTED_MODELS.contains(&model.id.as_str()) {
        fault(format!(
            "charging_point.{id}.model = \"{}\": {} is in the model list but has no driver in this firmware yet; choose one of {}",
            model.id,
            model.display_name(),
            SUPPORTED_MODELS.join(", ")
        ));
        // The other checks still run: everything wrong is reported at once.
    }
    if !model.interfaces.contains(&cp.interface) {
        let iface = if cp.interface == Interface::Tcp {
            "tcp"
        } else {
            "rs485"
        };
        fault(format!(
            "charging_point.{id}.interface = \"{iface}\": {} cannot be connected that way",
            model.display_name()
        ));
        return;
    }
    if cp.min_current > cp.max_current {
        fault(format!(
            "charging_point.{id}.min_current = {} A is above max_current = {} A",
            cp.min_current.whole_amps_floor(),
            cp.max_current.whole_amps_floor()
        ));
    }
    let label = format!("charging point {id}");
    match cp.interface {
        Interface::Tcp => {
            if cp.ip.is_unspecified() {
                fault(format!("charging_point.{id}.ip is not set (0.0.0.0)"));
                return;
            }
            let ep = Endpoint::Tcp(
                cp.ip,
                cp.port,
                cp.effective_unit_id().unwrap_or(model.unit_id),
            );
            let host = Endpoint::Host(cp.ip);
            let taken = used
                .get(&host)
                .filter(|_| !cp.ip.is_loopback())
                .map(|other| (host, other))
                .or_else(|| used.get(&ep).map(|other| (ep, other)));
            if let Some((what, other)) = taken {
                fault(format!(
                    "charging_point.{id}.ip: {} is already used by {other}",
                    what.describe()
                ));
            } else {
                used.insert(host, label.clone());
                used.insert(ep, label);
            }
        }
        Interface::Rs485 => {
            if cp.rs485_address == 0 {
                fault(format!("charging_point.{id}.rs485_address is not set (0)"));
                return;
            }
            let framing = model.rs485_framing.unwrap_or(Rs485Framing::Rtu);
            if framing != config.rs485.framing {
                fault(format!(
                    "{} speaks {framing}, but the RS485 line is set to {} (rs485.framing): RTU and ASCII cannot be mixed",
                    model.display_name(),
                    config.rs485.framing
                ));
            }
            match rs485_model {
                Some((other_model, other_cp)) if *other_model != model.id => fault(format!(
                    "only one model type may share the RS485 line: charging point {other_cp} uses `{other_model}`, this one `{}`",
                    model.id
                )),
                Some(_) => {}
                None => *rs485_model = Some((model.id.as_str(), id.number())),
            }
            let ep = Endpoint::Rs485(cp.rs485_address);
            if let Some(other) = used.get(&ep) {
                fault(format!(
                    "charging_point.{id}.rs485_address: {} is already used by {other}",
                    ep.describe()
                ));
            } else {
                used.insert(ep, label);
            }
        }
    }
}

fn check_meter(
    cp: &ChargePointConfig,
    used: &mut BTreeMap<Endpoint, String>,
    faults: &mut Vec<Fault>,
) {
    let id = cp.id;
    let m = &cp.meter;
    let mut fault =
        |msg: String| faults.push(Fault::charging_point(FaultCode::ConfEMeter, id, msg));
    if let Some(model) = cp.model
        && model.metering == Metering::Integrated
    {
        fault(format!(
            "charging_point.{id}.meter.kind is set, but {} measures itself; a retrofit meter is only for models without metering",
            model.display_name()
        ));
        return;
    }
    match m.kind {
        RetrofitKind::None => return,
        RetrofitKind::Model => match m.model {
            None => {
                return fault(format!(
                    "charging_point.{id}.meter.kind = \"model\" but meter.model is not set"
                ));
            }
            Some(model) if !model.interfaces.contains(&m.interface) => {
                return fault(format!(
                    "charging_point.{id}.meter.interface: {} {} cannot be connected that way",
                    model.manufacturer, model.name
                ));
            }
            Some(_) => {}
        },
        RetrofitKind::Manual => {
            let man = &m.manual;
            if man.current.iter().chain(&man.power).all(Option::is_none) {
                return fault(format!(
                    "charging_point.{id}.meter: manual configuration needs at least one current or power register"
                ));
            }
            if man.data_type == MeterDataType::Float && man.register_count == 1 {
                return fault(format!(
                    "charging_point.{id}.meter.data_type = \"float\" needs 2 or 4 registers (IEEE 754), not 1"
                ));
            }
        }
    }
    let ep = match m.interface {
        Interface::Tcp if m.ip.is_unspecified() => {
            return fault(format!("charging_point.{id}.meter.ip is not set (0.0.0.0)"));
        }
        Interface::Rs485 if m.rs485_address == 0 => {
            return fault(format!(
                "charging_point.{id}.meter.rs485_address is not set (0)"
            ));
        }
        Interface::Tcp => Endpoint::Tcp(m.ip, m.port, m.unit_id),
        Interface::Rs485 => Endpoint::Rs485(m.rs485_address),
    };
    if let Some(other) = used.get(&ep) {
        fault(format!(
            "charging_point.{id}.meter: {} is already used by {other}",
            ep.describe()
        ));
    } else {
        used.insert(ep, format!("the electricity meter of charging point {id}"));
    }
}
