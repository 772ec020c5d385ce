//! What a charging-point driver reports and accepts: the types between the drivers and the
//! sans-IO core.
//!
//! Drivers turn a model's registers into a [`ChargerStatus`] (state mapped to the spec's
//! values 0–11, currents per charging-point phase *before* phase rotation, powers,
//! energies, identity, manufacturer error) and carry out [`ChargerCommand`]s. Failures are
//! [`DriverError`]s, each mapping to the spec's charging-point fault code.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use crate::catalog::Capability;
use crate::faults::FaultCode;
use crate::modbus::ModbusError;
use crate::units::{Current, Energy, PerPhase, PhaseCount, Power, Temperature};

/// The charging-point state values of the spec (object 50 + offset, table 23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum CpState {
    /// 0: unknown state.
    Illegal = 0,
    /// 1: starting up.
    StartUp = 1,
    /// 2: error (see fault info 1–4).
    Error = 2,
    /// 3: not available.
    NotAvailable = 3,
    /// 4: cancelled via start/stop.
    Cancelled = 4,
    /// 5: available.
    Available = 5,
    /// 6: vehicle connected.
    Connected = 6,
    /// 7: manual start required.
    ManualStartRequired = 7,
    /// 8: charging.
    Charging = 8,
    /// 9: charging with reduced current.
    ChargingReduced = 9,
    /// 10: charging with ventilation.
    ChargingVentilation = 10,
    /// 11: interrupted (KNX interruption, grid control 0 A, or the charging point itself).
    Interrupted = 11,
}

impl CpState {
    /// The value sent on object 50 + offset.
    pub const fn value(self) -> u8 {
        self as u8
    }

    /// English text for the website.
    pub const fn text(self) -> &'static str {
        match self {
            Self::Illegal => "Illegal",
            Self::StartUp => "Start-up",
            Self::Error => "Error",
            Self::NotAvailable => "Not available",
            Self::Cancelled => "Cancelled",
            Self::Available => "Available",
            Self::Connected => "Connected",
            Self::ManualStartRequired => "Manual start required",
            Self::Charging => "Charge",
            Self::ChargingReduced => "Charge with reduced current",
            Self::ChargingVentilation => "Charge + ventilation",
            Self::Interrupted => "Interruption",
        }
    }
}

/// A manufacturer error code, in up to four parts (fault info 1–4, shown as hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManufacturerError {
    /// The parts, most significant first; at most four are shown.
    pub parts: Vec<u32>,
}

impl ManufacturerError {
    /// Fault info 1–4 as readable hex ("0x0000001A"); empty strings for missing parts.
    pub fn fault_info(&self) -> [String; 4] {
        let mut out: [String; 4] = Default::default();
        for (slot, part) in out.iter_mut().zip(&self.parts) {
            *slot = format!("0x{part:08X}");
        }
        out
    }
}

/// One poll of a charging point. `None` = the model does not report it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ChargerStatus {
    /// State (object 50).
    pub state: Option<CpState>,
    /// Vehicle connected (51).
    pub connected: bool,
    /// Charging (52).
    pub charging: bool,
    /// The setpoint the charging point reports (61).
    pub setpoint: Option<Current>,
    /// Currents on the charging point's phases 1, 2, 3 (not yet mapped to grid phases).
    pub currents: Option<PerPhase<Current>>,
    /// Active power sum.
    pub power: Option<Power>,
    /// Active power per charging-point phase.
    pub power_phases: Option<PerPhase<Power>>,
    /// Lifetime energy counter.
    pub energy_total: Option<Energy>,
    /// Lifetime energy per phase.
    pub energy_phases: Option<PerPhase<Energy>>,
    /// Energy of the current or last session as the model reports it.
    pub energy_session: Option<Energy>,
    /// Internal temperature.
    pub temperature: Option<Temperature>,
    /// The model's own over-temperature warning.
    pub temperature_warning: Option<bool>,
    /// A manufacturer error is present.
    pub error: Option<ManufacturerError>,
    /// RFID tag of the session.
    pub rfid: Option<String>,
    /// ISO 15118 EVCCID.
    pub evccid: Option<String>,
    /// The phases the box says it switches to now (1-/3-phase switching, models with
    /// [`Capability::PhaseSwitch`]); `None` = the model does not report it, or not now (a
    /// value that is no phase count, switching not set up).
    pub phases_switched: Option<PhaseCount>,
    /// Whether [`ChargerCommand::SetPhases`] can work now, as far as the box tells (KEBA:
    /// phase-switch source is Modbus; Vestel: register 404 still says switchable; Alfen: a
    /// three-phase installation; MENNEKES: the hardware is switchable); `None` for models
    /// without [`Capability::PhaseSwitch`].
    pub phase_switch_available: Option<bool>,
}

/// What object 84 shows of an RFID tag: "the first 4 bytes of the RFID card serial number"
/// (spec table 55). The models report the tag differently — KEBA the first four UID bytes as a
/// number (8 hex digits), Bender, Webasto, Phoenix and CHARX the UID as hex text of 4, 7 or 10
/// bytes, Vestel as UTF-16 text. A hex UID (separators `:`, `-` and spaces ignored) gives its
/// first 8 hex digits, upper case; any other tag (an OCPP id tag) its first 4 characters.
pub fn rfid_first_4_bytes(tag: &str) -> String {
    let hex: String = tag
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | ' '))
        .collect();
    if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        hex.chars().take(8).collect::<String>().to_ascii_uppercase()
    } else {
        tag.trim().chars().take(4).collect()
    }
}

/// Slowly changing data, read at start and now and then.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ChargerIdentity {
    /// Serial number.
    pub serial: Option<String>,
    /// Firmware version.
    pub firmware: Option<String>,
    /// Model text the device reports, if any.
    pub model: Option<String>,
}

/// What the core asks a charging point to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ChargerCommand {
    /// Limit the charging current (0 A = pause, where the model allows it; otherwise the driver
    /// pauses by its model's means).
    SetCurrent(Current),
    /// Start (true) or stop (false) the charging process (object 54).
    StartStop(bool),
    /// Unlock the cable (object 59).
    Unlock,
    /// Switch between one and three phases (models with [`Capability::PhaseSwitch`]). The
    /// driver writes what its model needs; the box itself stops charging for the switch and
    /// resumes after a pause. `NotPossible` says why it cannot switch now (not fitted, not set
    /// up, released for charging, …); models without the capability always answer so.
    SetPhases(PhaseCount),
    /// Set the current the box falls back to when the gateway falls silent, and after how long.
    Failsafe {
        /// Fallback current (0 A = stop).
        current: Current,
        /// Silence before falling back.
        timeout: Duration,
    },
}

/// How a command ended when the charging point was reachable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CommandOutcome {
    /// Carried out.
    Done,
    /// The state forbids it (OpNotPossible, 40).
    NotPossible(String),
    /// The value is outside what the model accepts (ValOutOfRange, 40).
    OutOfRange(String),
}

/// A driver call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// No answer (NotReachable, 80).
    #[error("not reachable: {0}")]
    NotReachable(String),
    /// The device is not the configured model (WrongCharger, 70).
    #[error("wrong charging point: {0}")]
    WrongCharger(String),
    /// Erroneous answers (Comm, 60).
    #[error("communication: {0}")]
    Comm(String),
    /// Currents that cannot be right (DLM InvCurrent, 90 at the charging point).
    #[error("invalid current values: {0}")]
    InvalidCurrent(String),
}

impl DriverError {
    /// The spec's fault code.
    pub const fn fault_code(&self) -> FaultCode {
        match self {
            Self::NotReachable(_) => FaultCode::NotReachable,
            Self::WrongCharger(_) => FaultCode::WrongCharger,
            Self::Comm(_) => FaultCode::Comm,
            Self::InvalidCurrent(_) => FaultCode::DlmInvCurrent,
        }
    }
}

impl From<ModbusError> for DriverError {
    fn from(e: ModbusError) -> Self {
        match e {
            ModbusError::NotReachable(s) => Self::NotReachable(s),
            ModbusError::Exception(_) | ModbusError::Malformed(_) => Self::Comm(e.to_string()),
        }
    }
}

/// A charging-point driver for one model, over any [`crate::modbus::Modbus`] transport.
///
/// The charger task calls [`ChargePoint::identify`] first (a wrong device gives
/// `WrongCharger`), then [`ChargePoint::poll`] every poll interval,
/// [`ChargePoint::heartbeat`] as the model needs it, and [`ChargePoint::command`] for what
/// the core decides. Drivers write registers only on change, apart from heartbeats, to spare the
/// charging point's EEPROM.
#[allow(
    async_fn_in_trait,
    reason = "charger tasks are generic over the driver; no dyn needed"
)]
pub trait ChargePoint: Send {
    /// The model-dependent functions this driver implements (the same set as the model's
    /// entry in `etsdb/charger-models.toml`; a test keeps them equal).
    fn capabilities(&self) -> BTreeSet<Capability>;

    /// Reads the identity registers; `WrongCharger` when the device is another model.
    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError>;

    /// Reads state, currents, powers and energies.
    async fn poll(&mut self) -> Result<ChargerStatus, DriverError>;

    /// Keeps the model's failsafe watchdog alive (no-op for models without one).
    async fn heartbeat(&mut self) -> Result<(), DriverError>;

    /// How often [`ChargePoint::heartbeat`] must run; `None` = never (polls keep the model's
    /// watchdog alive, or it has none).
    fn heartbeat_interval(&self) -> Option<Duration> {
        None
    }

    /// Carries out a command.
    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_info_is_readable_hex() {
        let e = ManufacturerError {
            parts: vec![0x1A, 0xDEAD_BEEF],
        };
        assert_eq!(
            e.fault_info(),
            [
                "0x0000001A".to_owned(),
                "0xDEADBEEF".to_owned(),
                String::new(),
                String::new()
            ]
        );
    }

    #[test]
    fn rfid_object_shows_the_first_four_bytes() {
        assert_eq!(rfid_first_4_bytes("04a1b2c3"), "04A1B2C3");
        assert_eq!(rfid_first_4_bytes("04A1B2C3D4E5F6"), "04A1B2C3");
        assert_eq!(rfid_first_4_bytes("04:A1:B2:C3:D4:E5:F6"), "04A1B2C3");
        assert_eq!(rfid_first_4_bytes("USER-TAG-17"), "USER");
        assert_eq!(rfid_first_4_bytes(""), "");
    }

    #[test]
    fn errors_map_to_spec_faults() {
        assert_eq!(
            DriverError::from(ModbusError::NotReachable("x".into())).fault_code(),
            FaultCode::NotReachable
        );
        assert_eq!(
            DriverError::from(ModbusError::Exception(2)).fault_code(),
            FaultCode::Comm
        );
        assert_eq!(
            DriverError::InvalidCurrent("NaN".into()).fault_code(),
            FaultCode::DlmInvCurrent
        );
        assert_eq!(CpState::Interrupted.value(), 11);
    }
}
