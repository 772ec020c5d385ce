//! The typed configuration of the gateway.
//!
//! [`Config`] follows from the parameter model (`etsdb/parameters.toml`): it is built from a
//! complete [`ParamSet`] ([`Config::from_params`]) and turned back into one
//! ([`Config::to_params`]) without loss, plus what ETS programs outside the parameter memory:
//! the individual address and the group-address associations. So the config file
//! ([`self::file`]) and an ETS download share one set of checks. [`validate`] turns a config into
//! the configuration faults of the spec (ch. 11).
//!
//! Fields keep their values even where another setting makes them irrelevant (an IP address
//! of a charging point switched to RS485, a manual meter register while a meter model is
//! chosen). Nothing a user entered is lost on save.

pub mod download;
pub mod file;
pub mod models;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::catalog::{self, Capability, ChargerModel, Interface, Metering, Rs485Framing};
use crate::chargers::{self, AnyDriver, DriverSettings, Endpoint, FactoryError};
use crate::etsdb::{ParamError, ParamSet, ParamValue};
use crate::knx::{GroupAddress, IndividualAddress};
pub use crate::meters::settings::{ManualMeter, MeterDataType, RetrofitKind, RetrofitMeter};
use crate::modbus::line::Line;
pub use crate::modbus::line::{Parity, Rs485Config};
use crate::objects::engine::{OwnSending, SendPolicy};
use crate::objects::{ChargePointContext, Context, ObjectTable, TableSpec};
use crate::units::{ChargePointId, Current, Energy, GoNumber, Power, Temperature, Voltage};
pub use crate::units::{PhaseCount, PhaseRotation};

/// The complete configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// KNX device settings and send policy.
    pub knx: KnxConfig,
    /// Dynamic load management.
    pub dlm: DlmConfig,
    /// The RS485 line.
    pub rs485: Rs485Config,
    /// Modbus timing.
    pub modbus: ModbusConfig,
    /// IP settings.
    pub ip: IpConfig,
    /// The five charging points (index 0 = charging point 1).
    pub charging_points: Vec<ChargePointConfig>,
    /// Group addresses per object; the first is the sending address.
    pub group_addresses: BTreeMap<GoNumber, Vec<GroupAddress>>,
}

/// KNX settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnxConfig {
    /// Individual address (programmed by ETS; 15.15.255 = unconfigured).
    pub individual_address: IndividualAddress,
    /// Send current objects only on a change of at least this much.
    pub min_change_current: Current,
    /// Send power objects only on a change of at least this many watts.
    pub min_change_power_w: u16,
    /// Send energy objects only on a change of at least this many watt-hours.
    pub min_change_energy_wh: u16,
    /// Cyclic sending of measured values (`None` = off).
    pub cyclic_interval: Option<Duration>,
    /// Bus-load limit (telegrams per second).
    pub max_telegram_rate: u8,
    /// How the gateway reaches the bus (config file and command line only; the DIN-rail
    /// hardware uses its TP-UART). `None` = no bus link.
    pub link: Option<crate::knx::link::LinkSpec>,
}

/// Smart-meter connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterConnection {
    /// One phase.
    OnePhase,
    /// Three phases (objects 10, 11, 12 = L1, L2, L3).
    ThreePhase,
}

/// What the smart meter measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measurement {
    /// Current.
    Current,
    /// Power (converted to current at the nominal voltage).
    Power,
}

/// How the smart meter is supervised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitoringMode {
    /// The meter sends its values cyclically.
    Values,
    /// Values on change plus a cyclic "In operation" trigger (object 20).
    ValuesAndInOperation,
}

/// What happens when the minimum currents of the active charging points do not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OvercurrentStrategy {
    /// The spec's behaviour: OverCurrent (80) and every charging point interrupted.
    InterruptAll,
    /// Those that fit charge, the others wait; the queue rotates.
    Queue,
}

/// The smart meter of the DLM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartMeterConfig {
    /// 1- or 3-phase.
    pub connection: MeterConnection,
    /// Current or power.
    pub measurement: Measurement,
    /// DPT of current values ("7.012", "9.021", "14.019").
    pub current_dpt: String,
    /// DPT of power values ("9.024", "14.056").
    pub power_dpt: String,
    /// Nominal phase voltage for power → current.
    pub nominal_voltage: Voltage,
    /// Supervision mode.
    pub monitoring: MonitoringMode,
    /// Sending interval of the meter.
    pub interval: Duration,
    /// Grace time on top of the interval.
    pub tolerance: Duration,
}

/// Dynamic load management.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlmConfig {
    /// DLM on.
    pub enabled: bool,
    /// The prioritised charging point.
    pub prioritised: Option<ChargePointId>,
    /// Rating of the overcurrent protection device, per phase.
    pub overcurrent_protection: Current,
    /// Load reserve kept free, per phase.
    pub load_reserve: Current,
    /// The smart meter.
    pub meter: SmartMeterConfig,
    /// Waiting time after a high power-consuming device reports.
    pub high_power_waiting_time: Duration,
    /// Setpoint during grid-supporting control (0 A = interrupt).
    pub grid_control_current: Current,
    /// Unbalanced-load cap (`None` = off).
    pub unbalanced_load_limit: Option<Current>,
    /// Keep this limit even while the cap is off (so it is not lost).
    pub unbalanced_load_value: Current,
    /// When minimums do not fit.
    pub overcurrent_strategy: OvercurrentStrategy,
    /// Queue rotation interval.
    pub rotation_interval: Duration,
    /// Minimum on/off time of a vehicle.
    pub min_switch_time: Duration,
    /// Ramp-up rate per second.
    pub ramp_up_per_second: Current,
    /// Book charging points per phase (true) or on all phases (false, the spec).
    pub per_phase: bool,
    /// Power limit of all charging points together during grid-supporting control, in
    /// watts (`None` = off).
    pub grid_control_power_w: Option<u32>,
}

impl DlmConfig {
    /// Budget per phase: overcurrent protection minus load reserve.
    pub fn budget(&self) -> Current {
        self.overcurrent_protection
            .saturating_sub(self.load_reserve)
    }
}

/// Modbus timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModbusConfig {
    /// Response timeout of every Modbus call.
    pub response_timeout: Duration,
    /// Polling interval of the charging points.
    pub poll_interval: Duration,
}

/// IP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// DHCP (true) or static.
    pub dhcp: bool,
    /// Static address.
    pub address: Ipv4Addr,
    /// Subnet mask.
    pub subnet_mask: Ipv4Addr,
    /// Default gateway.
    pub gateway: Ipv4Addr,
    /// DNS server.
    pub dns: Ipv4Addr,
}

/// When temperature values are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemperatureSending {
    /// Not sent (object 82 does not exist).
    Off,
    /// On change.
    OnChange,
    /// Cyclically.
    Cyclic,
    /// On change and cyclically.
    OnChangeAndCyclic,
}

/// One charging point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargePointConfig {
    /// 1..=5.
    pub id: ChargePointId,
    /// Enabled.
    pub enabled: bool,
    /// Manufacturer and model.
    pub model: Option<&'static ChargerModel>,
    /// TCP or RS485.
    pub interface: Interface,
    /// Modbus TCP unit id (`None` = the model's default).
    pub unit_id: Option<u8>,
    /// IP address (TCP; 0.0.0.0 = not set).
    pub ip: Ipv4Addr,
    /// TCP port.
    pub port: u16,
    /// RS485 client address (0 = not set).
    pub rs485_address: u8,
    /// 1 or 3 phases.
    pub phases: PhaseCount,
    /// Phase rotation.
    pub rotation: PhaseRotation,
    /// Minimum charging current.
    pub min_current: Current,
    /// Maximum charging current.
    pub max_current: Current,
    /// Below this current for `complete_time`, charging counts as complete.
    pub complete_threshold: Current,
    /// See `complete_threshold`.
    pub complete_time: Duration,
    /// When temperatures are sent.
    pub send_temperature: TemperatureSending,
    /// Temperature warning threshold.
    pub temperature_warning: Temperature,
    /// Cycle time of cyclic temperature sending.
    pub temperature_interval: Duration,
    /// DPT of current objects.
    pub dpt_current: String,
    /// DPT of power objects.
    pub dpt_power: String,
    /// DPT of energy objects.
    pub dpt_energy: String,
    /// Current the box falls back to when the gateway falls silent.
    pub failsafe_current: Current,
    /// Silence after which the box falls back.
    pub failsafe_timeout: Duration,
    /// The load management may switch the box between 1 and 3 phases (off by default:
    /// docs/dlm.md, "1-/3-phase switching").
    pub phase_switch: bool,
    /// Retrofit electricity meter.
    pub meter: RetrofitMeter,
}

impl ChargePointConfig {
    /// Enabled and a model chosen: the charging point takes part.
    pub fn is_active(&self) -> bool {
        self.enabled && self.model.is_some()
    }

    /// Model capabilities plus those of the retrofit meter (when the model allows one).
    pub fn capabilities(&self) -> BTreeSet<Capability> {
        let Some(model) = self.model else {
            return BTreeSet::new();
        };
        let mut caps = model.capabilities.clone();
        if model.metering == Metering::Optional {
            caps.extend(self.meter.capabilities());
        }
        caps
    }

    /// Whether `other` is the same box at the same place: same model, interface, address
    /// and unit id. Its session, energy counters and runtime state then carry over a new
    /// configuration applied live; the other settings (currents, phases, DPTs …) may differ.
    pub fn same_box(&self, other: &Self) -> bool {
        self.id == other.id
            && self.model == other.model
            && self.interface == other.interface
            && match self.interface {
                Interface::Tcp => {
                    self.ip == other.ip
                        && self.port == other.port
                        && self.effective_unit_id() == other.effective_unit_id()
                }
                Interface::Rs485 => self.rs485_address == other.rs485_address,
            }
    }

    /// The Modbus unit id in use over TCP.
    pub fn effective_unit_id(&self) -> Option<u8> {
        self.unit_id.or_else(|| self.model.map(|m| m.unit_id))
    }

    /// What a driver takes from this charging point's configuration.
    pub fn driver_settings(&self) -> DriverSettings {
        DriverSettings {
            phases: self.phases,
            temperature_warning: self.temperature_warning,
            failsafe_current: self.failsafe_current,
            failsafe_timeout: self.failsafe_timeout,
        }
    }

    /// Where and how this charging point's driver reaches the box.
    pub fn endpoint(&self, modbus: &ModbusConfig) -> Endpoint {
        Endpoint {
            number: self.id.number(),
            model: self.model,
            interface: self.interface,
            tcp: SocketAddr::from((self.ip, self.port)),
            unit_id: self.unit_id,
            rs485_address: self.rs485_address,
            response_timeout: modbus.response_timeout,
            settings: self.driver_settings(),
        }
    }

    /// This charging point's driver over TCP or `line` (see [`chargers::driver_for`]).
    pub fn driver(
        &self,
        modbus: &ModbusConfig,
        line: Option<&Line>,
    ) -> Result<AnyDriver, FactoryError> {
        chargers::driver_for(&self.endpoint(modbus), line)
    }
}

/// Building a [`Config`] from parameters failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A parameter is missing or of the wrong type (programming error) or invalid.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A parameter value has no meaning here.
    #[error("parameter `{key}`: {reason}")]
    Invalid {
        /// Key.
        key: String,
        /// Why.
        reason: String,
    },
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap_or(0))
}

fn millis(n: i64) -> Duration {
    Duration::from_millis(u64::try_from(n).unwrap_or(0))
}

fn amps(n: i64) -> Current {
    Current::from_milliamps(i32::try_from(n.saturating_mul(1000)).unwrap_or(i32::MAX))
}

fn deciamps(n: i64) -> Current {
    Current::from_milliamps(i32::try_from(n.saturating_mul(100)).unwrap_or(i32::MAX))
}

fn narrow<T: TryFrom<i64>>(key: &str, n: i64) -> Result<T, ConfigError> {
    T::try_from(n).map_err(|_| ConfigError::Invalid {
        key: key.to_owned(),
        reason: format!("{n} does not fit"),
    })
}

fn str_choice(v: &toml::Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn int_choice(v: &toml::Value) -> i64 {
    v.as_integer().unwrap_or_default()
}

fn invalid(key: &str, v: &toml::Value) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: format!("unexpected choice {v}"),
    }
}

impl Config {
    /// The configuration with every parameter at its default and nothing linked.
    pub fn defaults() -> Self {
        #[allow(
            clippy::expect_used,
            reason = "embedded data, validated by unit tests; not input"
        )]
        Self::from_params(
            &ParamSet::defaults(),
            IndividualAddress::UNCONFIGURED,
            BTreeMap::new(),
        )
        .expect("the defaults of etsdb/parameters.toml form a configuration")
    }

    /// Builds the typed configuration from parameters, the individual address and associations.
    pub fn from_params(
        p: &ParamSet,
        individual_address: IndividualAddress,
        group_addresses: BTreeMap<GoNumber, Vec<GroupAddress>>,
    ) -> Result<Self, ConfigError> {
        let cyclic = p.int("knx.cyclic_interval")?;
        let knx = KnxConfig {
            individual_address,
            min_change_current: deciamps(p.int("knx.min_change.current")?),
            min_change_power_w: narrow("knx.min_change.power", p.int("knx.min_change.power")?)?,
            min_change_energy_wh: narrow("knx.min_change.energy", p.int("knx.min_change.energy")?)?,
            cyclic_interval: (cyclic > 0).then(|| secs(cyclic)),
            max_telegram_rate: narrow("knx.max_telegram_rate", p.int("knx.max_telegram_rate")?)?,
            link: None,
        };
        let meter = SmartMeterConfig {
            connection: match str_choice(&p.choice("dlm.meter.connection")?) {
                "1-phase" => MeterConnection::OnePhase,
                "3-phase" => MeterConnection::ThreePhase,
                _ => {
                    return Err(invalid(
                        "dlm.meter.connection",
                        &p.choice("dlm.meter.connection")?,
                    ));
                }
            },
            measurement: match str_choice(&p.choice("dlm.meter.measurement")?) {
                "current" => Measurement::Current,
                "power" => Measurement::Power,
                _ => {
                    return Err(invalid(
                        "dlm.meter.measurement",
                        &p.choice("dlm.meter.measurement")?,
                    ));
                }
            },
            current_dpt: str_choice(&p.choice("dlm.meter.current_dpt")?).to_owned(),
            power_dpt: str_choice(&p.choice("dlm.meter.power_dpt")?).to_owned(),
            nominal_voltage: Voltage::from_volts(narrow(
                "dlm.meter.nominal_voltage",
                p.int("dlm.meter.nominal_voltage")?,
            )?),
            monitoring: match str_choice(&p.choice("dlm.monitoring.mode")?) {
                "values" => MonitoringMode::Values,
                "values-and-in-operation" => MonitoringMode::ValuesAndInOperation,
                _ => {
                    return Err(invalid(
                        "dlm.monitoring.mode",
                        &p.choice("dlm.monitoring.mode")?,
                    ));
                }
            },
            interval: secs(p.int("dlm.monitoring.interval")?),
            tolerance: secs(p.int("dlm.monitoring.tolerance")?),
        };
        let prio = p.int("dlm.prioritised_charging_point")?;
        let unbalanced = amps(p.int("dlm.unbalanced_load.limit")?);
        let dlm = DlmConfig {
            enabled: p.bool("dlm.enabled")?,
            prioritised: u8::try_from(prio).ok().and_then(ChargePointId::new),
            overcurrent_protection: amps(p.int("dlm.overcurrent_protection")?),
            load_reserve: amps(p.int("dlm.load_reserve")?),
            meter,
            high_power_waiting_time: secs(p.int("dlm.high_power_waiting_time")?),
            grid_control_current: amps(p.int("dlm.grid_control_current")?),
            unbalanced_load_limit: p.bool("dlm.unbalanced_load.enabled")?.then_some(unbalanced),
            unbalanced_load_value: unbalanced,
            overcurrent_strategy: match str_choice(&p.choice("dlm.overcurrent_strategy")?) {
                "interrupt-all" => OvercurrentStrategy::InterruptAll,
                "queue" => OvercurrentStrategy::Queue,
                _ => {
                    return Err(invalid(
                        "dlm.overcurrent_strategy",
                        &p.choice("dlm.overcurrent_strategy")?,
                    ));
                }
            },
            rotation_interval: secs(p.int("dlm.rotation_interval")?),
            min_switch_time: secs(p.int("dlm.min_switch_time")?),
            ramp_up_per_second: deciamps(p.int("dlm.ramp_up_rate")?),
            per_phase: str_choice(&p.choice("dlm.allocation")?) == "per-phase",
            grid_control_power_w: {
                let raw = p.int("dlm.grid_control_power")?;
                (raw > 0).then(|| u32::try_from(raw.saturating_mul(100)).unwrap_or(u32::MAX))
            },
        };
        let rs485 = Rs485Config {
            baud: narrow("rs485.baud", int_choice(&p.choice("rs485.baud")?))?,
            data_bits: narrow("rs485.data_bits", int_choice(&p.choice("rs485.data_bits")?))?,
            parity: match str_choice(&p.choice("rs485.parity")?) {
                "none" => Parity::None,
                "even" => Parity::Even,
                "odd" => Parity::Odd,
                _ => return Err(invalid("rs485.parity", &p.choice("rs485.parity")?)),
            },
            stop_bits: narrow("rs485.stop_bits", int_choice(&p.choice("rs485.stop_bits")?))?,
            framing: match str_choice(&p.choice("rs485.framing")?) {
                "rtu" => Rs485Framing::Rtu,
                "ascii" => Rs485Framing::Ascii,
                _ => return Err(invalid("rs485.framing", &p.choice("rs485.framing")?)),
            },
            termination: p.bool("rs485.termination")?,
        };
        let modbus = ModbusConfig {
            response_timeout: millis(p.int("modbus.response_timeout")?),
            poll_interval: millis(p.int("modbus.poll_interval")?),
        };
        let ip = IpConfig {
            dhcp: str_choice(&p.choice("ip.mode")?) == "dhcp",
            address: p.ipv4("ip.address")?,
            subnet_mask: p.ipv4("ip.subnet_mask")?,
            gateway: p.ipv4("ip.gateway")?,
            dns: p.ipv4("ip.dns")?,
        };
        let charging_points = ChargePointId::all()
            .map(|cp| charge_point_from_params(p, cp))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            knx,
            dlm,
            rs485,
            modbus,
            ip,
            charging_points,
            group_addresses,
        })
    }

    /// The parameters of this configuration (inverse of [`Config::from_params`]).
    pub fn to_params(&self) -> Result<ParamSet, ConfigError> {
        let mut p = ParamSet::defaults();
        let int = |n: i64| ParamValue::Int(n);
        let s = |v: &str| toml::Value::String(v.to_owned());
        let i = |v: i64| toml::Value::Integer(v);
        let k = &self.knx;
        p.set(
            "knx.min_change.current",
            int(i64::from(k.min_change_current.milliamps() / 100)),
        )?;
        p.set("knx.min_change.power", int(i64::from(k.min_change_power_w)))?;
        p.set(
            "knx.min_change.energy",
            int(i64::from(k.min_change_energy_wh)),
        )?;
        p.set(
            "knx.cyclic_interval",
            int(k
                .cyclic_interval
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))),
        )?;
        p.set("knx.max_telegram_rate", int(i64::from(k.max_telegram_rate)))?;
        let d = &self.dlm;
        p.set("dlm.enabled", ParamValue::Bool(d.enabled))?;
        p.set(
            "dlm.prioritised_charging_point",
            int(d.prioritised.map_or(0, |c| i64::from(c.number()))),
        )?;
        p.set(
            "dlm.overcurrent_protection",
            int(i64::from(d.overcurrent_protection.whole_amps_floor())),
        )?;
        p.set(
            "dlm.load_reserve",
            int(i64::from(d.load_reserve.whole_amps_floor())),
        )?;
        let m = &d.meter;
        p.set_choice(
            "dlm.meter.connection",
            &s(if m.connection == MeterConnection::OnePhase {
                "1-phase"
            } else {
                "3-phase"
            }),
        )?;
        p.set_choice(
            "dlm.meter.measurement",
            &s(if m.measurement == Measurement::Current {
                "current"
            } else {
                "power"
            }),
        )?;
        p.set_choice("dlm.meter.current_dpt", &s(&m.current_dpt))?;
        p.set_choice("dlm.meter.power_dpt", &s(&m.power_dpt))?;
        p.set(
            "dlm.meter.nominal_voltage",
            int(i64::from(m.nominal_voltage.millivolts() / 1000)),
        )?;
        p.set_choice(
            "dlm.monitoring.mode",
            &s(if m.monitoring == MonitoringMode::Values {
                "values"
            } else {
                "values-and-in-operation"
            }),
        )?;
        p.set("dlm.monitoring.interval", int(dur_secs(m.interval)))?;
        p.set("dlm.monitoring.tolerance", int(dur_secs(m.tolerance)))?;
        p.set(
            "dlm.high_power_waiting_time",
            int(dur_secs(d.high_power_waiting_time)),
        )?;
        p.set(
            "dlm.grid_control_current",
            int(i64::from(d.grid_control_current.whole_amps_floor())),
        )?;
        p.set(
            "dlm.unbalanced_load.enabled",
            ParamValue::Bool(d.unbalanced_load_limit.is_some()),
        )?;
        let unbalanced = d.unbalanced_load_limit.unwrap_or(d.unbalanced_load_value);
        p.set(
            "dlm.unbalanced_load.limit",
            int(i64::from(unbalanced.whole_amps_floor())),
        )?;
        p.set_choice(
            "dlm.overcurrent_strategy",
            &s(if d.overcurrent_strategy == OvercurrentStrategy::Queue {
                "queue"
            } else {
                "interrupt-all"
            }),
        )?;
        p.set("dlm.rotation_interval", int(dur_secs(d.rotation_interval)))?;
        p.set("dlm.min_switch_time", int(dur_secs(d.min_switch_time)))?;
        p.set(
            "dlm.ramp_up_rate",
            int(i64::from(d.ramp_up_per_second.milliamps() / 100)),
        )?;
        p.set_choice(
            "dlm.allocation",
            &s(if d.per_phase {
                "per-phase"
            } else {
                "symmetric"
            }),
        )?;
        p.set(
            "dlm.grid_control_power",
            int(i64::from(d.grid_control_power_w.map_or(0, |w| w / 100))),
        )?;
        let r = &self.rs485;
        p.set_choice("rs485.baud", &i(i64::from(r.baud)))?;
        p.set_choice("rs485.data_bits", &i(i64::from(r.data_bits)))?;
        p.set_choice(
            "rs485.parity",
            &s(match r.parity {
                Parity::None => "none",
                Parity::Even => "even",
                Parity::Odd => "odd",
            }),
        )?;
        p.set_choice("rs485.stop_bits", &i(i64::from(r.stop_bits)))?;
        p.set_choice(
            "rs485.framing",
            &s(if r.framing == Rs485Framing::Rtu {
                "rtu"
            } else {
                "ascii"
            }),
        )?;
        p.set("rs485.termination", ParamValue::Bool(r.termination))?;
        p.set(
            "modbus.response_timeout",
            int(dur_millis(self.modbus.response_timeout)),
        )?;
        p.set(
            "modbus.poll_interval",
            int(dur_millis(self.modbus.poll_interval)),
        )?;
        p.set_choice("ip.mode", &s(if self.ip.dhcp { "dhcp" } else { "static" }))?;
        p.set("ip.address", ParamValue::Ipv4(self.ip.address))?;
        p.set("ip.subnet_mask", ParamValue::Ipv4(self.ip.subnet_mask))?;
        p.set("ip.gateway", ParamValue::Ipv4(self.ip.gateway))?;
        p.set("ip.dns", ParamValue::Ipv4(self.ip.dns))?;
        for c in &self.charging_points {
            charge_point_to_params(&mut p, c)?;
        }
        Ok(p)
    }

    /// The charging point with id `cp`.
    pub fn charging_point(&self, cp: ChargePointId) -> Option<&ChargePointConfig> {
        self.charging_points.get(cp.index())
    }

    /// What this configuration enables in the group-object table.
    pub fn object_context(&self) -> Context {
        let m = &self.dlm.meter;
        let mut dpt_choices = BTreeMap::new();
        dpt_choices.insert("dlm.meter.current_dpt".to_owned(), m.current_dpt.clone());
        dpt_choices.insert("dlm.meter.power_dpt".to_owned(), m.power_dpt.clone());
        Context {
            dlm: self.dlm.enabled,
            meter_three_phase: m.connection == MeterConnection::ThreePhase,
            meter_power: m.measurement == Measurement::Power,
            monitoring_in_operation: m.monitoring == MonitoringMode::ValuesAndInOperation,
            dpt_choices,
            charging_points: self
                .charging_points
                .iter()
                .map(|c| ChargePointContext {
                    active: c.is_active(),
                    capabilities: c.capabilities(),
                    temperature_sending: c.send_temperature != TemperatureSending::Off,
                    dpt_choices: [
                        ("dpt_current".to_owned(), c.dpt_current.clone()),
                        ("dpt_power".to_owned(), c.dpt_power.clone()),
                        ("dpt_energy".to_owned(), c.dpt_energy.clone()),
                    ]
                    .into_iter()
                    .collect(),
                })
                .collect(),
        }
    }

    /// The group-object table that exists under this configuration.
    pub fn object_table(&self) -> ObjectTable {
        ObjectTable::build(
            TableSpec::get(),
            &self.object_context(),
            &self.group_addresses,
        )
    }
}

fn dur_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn dur_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn interface_from(key: &str, v: &toml::Value) -> Result<Interface, ConfigError> {
    match str_choice(v) {
        "tcp" => Ok(Interface::Tcp),
        "rs485" => Ok(Interface::Rs485),
        _ => Err(invalid(key, v)),
    }
}

fn interface_name(i: Interface) -> &'static str {
    match i {
        Interface::Tcp => "tcp",
        Interface::Rs485 => "rs485",
    }
}

fn charge_point_from_params(
    p: &ParamSet,
    cp: ChargePointId,
) -> Result<ChargePointConfig, ConfigError> {
    let rotation_label = p.cp_choice(cp, "phase_rotation")?;
    let rotation = PhaseRotation::ALL
        .into_iter()
        .find(|r| r.label() == str_choice(&rotation_label))
        .ok_or_else(|| invalid("phase_rotation", &rotation_label))?;
    let reg = |k: &str| p.cp_register(cp, k);
    let manual = ManualMeter {
        function_code: narrow(
            "meter.function_code",
            int_choice(&p.cp_choice(cp, "meter.function_code")?),
        )?,
        register_count: narrow(
            "meter.register_count",
            int_choice(&p.cp_choice(cp, "meter.register_count")?),
        )?,
        data_type: match str_choice(&p.cp_choice(cp, "meter.data_type")?) {
            "float" => MeterDataType::Float,
            "unsigned" => MeterDataType::Unsigned,
            "signed" => MeterDataType::Signed,
            _ => {
                return Err(invalid(
                    "meter.data_type",
                    &p.cp_choice(cp, "meter.data_type")?,
                ));
            }
        },
        high_word_first: str_choice(&p.cp_choice(cp, "meter.word_order")?) == "high-first",
        current_scale: narrow("meter.current_scale", p.cp_int(cp, "meter.current_scale")?)?,
        power_scale: narrow("meter.power_scale", p.cp_int(cp, "meter.power_scale")?)?,
        energy_scale: narrow("meter.energy_scale", p.cp_int(cp, "meter.energy_scale")?)?,
        current: [
            reg("meter.current_l1")?,
            reg("meter.current_l2")?,
            reg("meter.current_l3")?,
        ],
        power: [
            reg("meter.power_l1")?,
            reg("meter.power_l2")?,
            reg("meter.power_l3")?,
        ],
        energy: [
            reg("meter.energy_l1")?,
            reg("meter.energy_l2")?,
            reg("meter.energy_l3")?,
        ],
        energy_total: reg("meter.energy_total")?,
        fault_register: reg("meter.fault_register")?,
    };
    let meter = RetrofitMeter {
        kind: match str_choice(&p.cp_choice(cp, "meter.kind")?) {
            "none" => RetrofitKind::None,
            "model" => RetrofitKind::Model,
            "manual" => RetrofitKind::Manual,
            _ => return Err(invalid("meter.kind", &p.cp_choice(cp, "meter.kind")?)),
        },
        model: catalog::meter_model_by_code(p.cp_code(cp, "meter.model")?),
        interface: interface_from("meter.interface", &p.cp_choice(cp, "meter.interface")?)?,
        unit_id: narrow("meter.unit_id", p.cp_int(cp, "meter.unit_id")?)?,
        ip: p.cp_ipv4(cp, "meter.ip")?,
        port: narrow("meter.port", p.cp_int(cp, "meter.port")?)?,
        rs485_address: narrow("meter.rs485_address", p.cp_int(cp, "meter.rs485_address")?)?,
        manual,
    };
    let unit_id: u8 = narrow("unit_id", p.cp_int(cp, "unit_id")?)?;
    Ok(ChargePointConfig {
        id: cp,
        enabled: p.cp_bool(cp, "enabled")?,
        model: catalog::charger_model_by_code(p.cp_code(cp, "model")?),
        interface: interface_from("interface", &p.cp_choice(cp, "interface")?)?,
        unit_id: (unit_id != 0).then_some(unit_id),
        ip: p.cp_ipv4(cp, "ip")?,
        port: narrow("port", p.cp_int(cp, "port")?)?,
        rs485_address: narrow("rs485_address", p.cp_int(cp, "rs485_address")?)?,
        phases: if int_choice(&p.cp_choice(cp, "phases")?) == 1 {
            PhaseCount::One
        } else {
            PhaseCount::Three
        },
        rotation,
        min_current: amps(p.cp_int(cp, "min_current")?),
        max_current: amps(p.cp_int(cp, "max_current")?),
        complete_threshold: deciamps(p.cp_int(cp, "complete_threshold")?),
        complete_time: secs(p.cp_int(cp, "complete_time")?),
        send_temperature: match str_choice(&p.cp_choice(cp, "send_temperature")?) {
            "off" => TemperatureSending::Off,
            "on-change" => TemperatureSending::OnChange,
            "cyclic" => TemperatureSending::Cyclic,
            "on-change-and-cyclic" => TemperatureSending::OnChangeAndCyclic,
            _ => {
                return Err(invalid(
                    "send_temperature",
                    &p.cp_choice(cp, "send_temperature")?,
                ));
            }
        },
        temperature_warning: Temperature::from_celsius(narrow(
            "temperature_warning",
            p.cp_int(cp, "temperature_warning")?,
        )?),
        temperature_interval: secs(p.cp_int(cp, "temperature_interval")?),
        dpt_current: str_choice(&p.cp_choice(cp, "dpt_current")?).to_owned(),
        dpt_power: str_choice(&p.cp_choice(cp, "dpt_power")?).to_owned(),
        dpt_energy: str_choice(&p.cp_choice(cp, "dpt_energy")?).to_owned(),
        failsafe_current: amps(p.cp_int(cp, "failsafe_current")?),
        failsafe_timeout: secs(p.cp_int(cp, "failsafe_timeout")?),
        phase_switch: p.cp_bool(cp, "phase_switch")?,
        meter,
    })
}

fn charge_point_to_params(p: &mut ParamSet, c: &ChargePointConfig) -> Result<(), ConfigError> {
    let cp = c.id;
    let int = |n: i64| ParamValue::Int(n);
    let s = |v: &str| toml::Value::String(v.to_owned());
    let i = |v: i64| toml::Value::Integer(v);
    p.set_cp(cp, "enabled", ParamValue::Bool(c.enabled))?;
    p.set_cp(cp, "model", ParamValue::Code(c.model.map_or(0, |m| m.code)))?;
    p.set_cp_toml(cp, "interface", &s(interface_name(c.interface)))?;
    p.set_cp(cp, "unit_id", int(i64::from(c.unit_id.unwrap_or(0))))?;
    p.set_cp(cp, "ip", ParamValue::Ipv4(c.ip))?;
    p.set_cp(cp, "port", int(i64::from(c.port)))?;
    p.set_cp(cp, "rs485_address", int(i64::from(c.rs485_address)))?;
    p.set_cp_toml(
        cp,
        "phases",
        &i(if c.phases == PhaseCount::One { 1 } else { 3 }),
    )?;
    p.set_cp_toml(cp, "phase_rotation", &s(&c.rotation.label()))?;
    p.set_cp(
        cp,
        "min_current",
        int(i64::from(c.min_current.whole_amps_floor())),
    )?;
    p.set_cp(
        cp,
        "max_current",
        int(i64::from(c.max_current.whole_amps_floor())),
    )?;
    p.set_cp(
        cp,
        "complete_threshold",
        int(i64::from(c.complete_threshold.milliamps() / 100)),
    )?;
    p.set_cp(cp, "complete_time", int(dur_secs(c.complete_time)))?;
    p.set_cp_toml(
        cp,
        "send_temperature",
        &s(match c.send_temperature {
            TemperatureSending::Off => "off",
            TemperatureSending::OnChange => "on-change",
            TemperatureSending::Cyclic => "cyclic",
            TemperatureSending::OnChangeAndCyclic => "on-change-and-cyclic",
        }),
    )?;
    p.set_cp(
        cp,
        "temperature_warning",
        int(i64::from(c.temperature_warning.centi_celsius() / 100)),
    )?;
    p.set_cp(
        cp,
        "temperature_interval",
        int(dur_secs(c.temperature_interval)),
    )?;
    p.set_cp_toml(cp, "dpt_current", &s(&c.dpt_current))?;
    p.set_cp_toml(cp, "dpt_power", &s(&c.dpt_power))?;
    p.set_cp_toml(cp, "dpt_energy", &s(&c.dpt_energy))?;
    p.set_cp(
        cp,
        "failsafe_current",
        int(i64::from(c.failsafe_current.whole_amps_floor())),
    )?;
    p.set_cp(cp, "failsafe_timeout", int(dur_secs(c.failsafe_timeout)))?;
    p.set_cp(cp, "phase_switch", ParamValue::Bool(c.phase_switch))?;
    let m = &c.meter;
    p.set_cp_toml(
        cp,
        "meter.kind",
        &s(match m.kind {
            RetrofitKind::None => "none",
            RetrofitKind::Model => "model",
            RetrofitKind::Manual => "manual",
        }),
    )?;
    p.set_cp(
        cp,
        "meter.model",
        ParamValue::Code(m.model.map_or(0, |x| x.code)),
    )?;
    p.set_cp_toml(cp, "meter.interface", &s(interface_name(m.interface)))?;
    p.set_cp(cp, "meter.unit_id", int(i64::from(m.unit_id)))?;
    p.set_cp(cp, "meter.ip", ParamValue::Ipv4(m.ip))?;
    p.set_cp(cp, "meter.port", int(i64::from(m.port)))?;
    p.set_cp(cp, "meter.rs485_address", int(i64::from(m.rs485_address)))?;
    let man = &m.manual;
    p.set_cp_toml(cp, "meter.function_code", &i(i64::from(man.function_code)))?;
    p.set_cp_toml(
        cp,
        "meter.register_count",
        &i(i64::from(man.register_count)),
    )?;
    p.set_cp_toml(
        cp,
        "meter.data_type",
        &s(match man.data_type {
            MeterDataType::Float => "float",
            MeterDataType::Unsigned => "unsigned",
            MeterDataType::Signed => "signed",
        }),
    )?;
    p.set_cp_toml(
        cp,
        "meter.word_order",
        &s(if man.high_word_first {
            "high-first"
        } else {
            "low-first"
        }),
    )?;
    p.set_cp(cp, "meter.current_scale", int(i64::from(man.current_scale)))?;
    p.set_cp(cp, "meter.power_scale", int(i64::from(man.power_scale)))?;
    p.set_cp(cp, "meter.energy_scale", int(i64::from(man.energy_scale)))?;
    let regs = [
        ("meter.current_l1", man.current[0]),
        ("meter.current_l2", man.current[1]),
        ("meter.current_l3", man.current[2]),
        ("meter.power_l1", man.power[0]),
        ("meter.power_l2", man.power[1]),
        ("meter.power_l3", man.power[2]),
        ("meter.energy_l1", man.energy[0]),
        ("meter.energy_l2", man.energy[1]),
        ("meter.energy_l3", man.energy[2]),
        ("meter.energy_total", man.energy_total),
        ("meter.fault_register", man.fault_register),
    ];
    for (key, r) in regs {
        p.set_cp(cp, key, ParamValue::Register(r))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

impl Config {
    /// The group-object engine's send policy of this configuration.
    pub fn send_policy(&self) -> SendPolicy {
        let k = &self.knx;
        SendPolicy {
            min_change_current: k.min_change_current,
            min_change_power: Power::from_watts(i32::from(k.min_change_power_w)),
            min_change_energy: Energy::from_watt_hours(i32::from(k.min_change_energy_wh)),
            min_change_temperature: Temperature::from_centi_celsius(50),
            cyclic: k.cyclic_interval,
            max_rate: k.max_telegram_rate.max(1),
            own: self
                .charging_points
                .iter()
                .filter_map(|c| {
                    let object =
                        GoNumber(c.id.object_base() + crate::objects::number::cp::TEMPERATURE);
                    let cycle =
                        (!c.temperature_interval.is_zero()).then_some(c.temperature_interval);
                    let (on_change, cycle) = match c.send_temperature {
                        TemperatureSending::Off => return None,
                        TemperatureSending::OnChange => (true, None),
                        TemperatureSending::Cyclic => (false, cycle),
                        TemperatureSending::OnChangeAndCyclic => (true, cycle),
                    };
                    Some((object, OwnSending { on_change, cycle }))
                })
                .collect(),
        }
    }
}
