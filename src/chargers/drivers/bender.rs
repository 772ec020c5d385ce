//! Bender CC612 / CC613 charge controllers (MENNEKES AMTRON Professional and many rebrands)
//! over Modbus TCP, register address set "Ebee/Bender/MENNEKES".
//!
//! Source: Bender "Charge Controller Modbus TCP API" v5.32 (bender.de/docs/charge-controller/
//! 5.32/APIs/Modbus-API) and the CC613 configuration-interface register list (registers
//! 100–138); cross-checked against evcc `charger/bender.go` and the Tinkerforge Bender
//! emulation (facts only). Register map: `docs/register-maps.md` §3.
//!
//! | what | register | notes |
//! | --- | --- | --- |
//! | firmware / protocol version | 100 (2) / 120 (2) ASCII | identity: protocol "x.yy" |
//! | OCPP status / error codes 1–4 | 104 (OCPP 1.6 numbering: 3 Unavailable, 4 Faulted, 8 SuspendedEV) / 105, 107, 109, 111 (u32 each) | errors → fault info 1–4 |
//! | vehicle state / availability | 122 (1 A … 5 E) / 124 | 124 is neither read nor written: its polarity flips on MENNEKES firmware ≥ 5.22 |
//! | safe current / comm timeout | 131 A / 132 s | failsafe |
//! | hardware current limit | 133 A | setpoint range |
//! | model text | 142 (10) ASCII | missing on legacy firmware |
//! | energy L1–L3 / power L1–L3 / currents | 200.. Wh / 206.. W / 212.. mA (u32) | 0xFFFFFFFF = invalid |
//! | total energy / total power | 218 Wh / 220 W | 220 = 0xFFFFFFFF: no meter fitted, nothing metered |
//! | session energy | 716 (705 on legacy firmware) u32 Wh | unreliable: the core computes sessions from 218 |
//! | RFID / EVCCID | 720 (10) / 741 (6) ASCII | 741 not on legacy firmware nor 4You/4Business (they close the connection); 730/740 never |
//! | HEMS current limit | 1000 A | setpoint; 0 pauses and stops; rewritten as heartbeat |
//!
//! Field behaviour: `docs/chargers.md` (Bender).

use std::collections::BTreeSet;
use std::time::Duration;

use super::common::{
    DriverSettings, WriteCache, amps_u16, cannot_switch_phases, cannot_unlock,
    catalog_capabilities, check_setpoint, check_timeout, currents_ma, id_read, identity_error,
    non_empty, reg, regs, u32_at,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
use crate::modbus::{Modbus, decode};
use crate::units::{Current, Energy, PerPhase, Power};

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "bender-cc612";

const MIN: Current = Current::from_amps(6);
const INVALID: u32 = u32::MAX;

/// The Bender CC612/CC613 driver.
#[derive(Debug)]
pub struct BenderCc<M> {
    m: M,
    cache: WriteCache,
    max: Current,
    setpoint: u16,
    started: bool,
    legacy: bool,
    no_iso15118: bool,
    heartbeat: Option<Duration>,
}

impl<M: Modbus> BenderCc<M> {
    /// A driver over `m`.
    pub fn new(m: M, _settings: DriverSettings) -> Self {
        Self {
            m,
            cache: WriteCache::default(),
            max: Current::from_amps(32),
            setpoint: 6,
            started: true,
            legacy: false,
            no_iso15118: false,
            heartbeat: None,
        }
    }

    /// The HEMS limit to write: the setpoint while started, else 0 (stop).
    fn effective(&self) -> u16 {
        if self.started { self.setpoint } else { 0 }
    }
}

fn valid(v: u32) -> Option<u32> {
    (v != INVALID).then_some(v)
}

fn wh(v: u32) -> Option<Energy> {
    valid(v).map(|v| Energy::from_milliwatt_hours(i64::from(v) * 1000))
}

fn watts(v: u32) -> Option<Power> {
    valid(v).map(|v| Power::from_milliwatts(i64::from(v) * 1000))
}

fn version_like(s: &str) -> bool {
    !s.is_empty() && s.contains('.') && s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

impl<M: Modbus> ChargePoint for BenderCc<M> {
    fn capabilities(&self) -> BTreeSet<Capability> {
        catalog_capabilities(ID)
    }

    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        self.cache.clear();
        let b = self
            .m
            .read_holding(100, 23)
            .await
            .map_err(|e| identity_error("Bender CC612/613", e))?;
        let firmware = decode::ascii(regs(&b, 100, 100, 2)?);
        let protocol = decode::ascii(regs(&b, 100, 120, 2)?);
        if !version_like(&protocol) {
            return Err(DriverError::WrongCharger(format!(
                "protocol version `{protocol}` is not a Bender charge controller's"
            )));
        }
        let limits = id_read(&mut self.m, "Bender CC612/613", false, 133, 1).await?;
        let hw = reg(&limits, 133, 133)?;
        if (6..=80).contains(&hw) {
            self.max = Current::from_amps(i32::from(hw));
        }
        // The model text is missing on legacy firmware. Legacy firmware and the MENNEKES
        // 4You/4Business close the connection on a read of 730–746 (evcc bender.go).
        let model = match self.m.read_holding(142, 10).await {
            Ok(r) => non_empty(decode::ascii(&r)),
            Err(_) => None,
        };
        self.legacy = model.is_none();
        self.no_iso15118 = self.legacy
            || model
                .as_deref()
                .is_some_and(|m| m.contains("4You") || m.contains("4Business"));
        Ok(ChargerIdentity {
            serial: None,
            firmware: non_empty(firmware),
            model,
        })
    }

    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        let s = self.m.read_holding(104, 21).await?;
        let ocpp = reg(&s, 104, 104)?;
        let errors = [
            u32_at(&s, 104, 105)?,
            u32_at(&s, 104, 107)?,
            u32_at(&s, 104, 109)?,
            u32_at(&s, 104, 111)?,
        ];
        let vehicle = reg(&s, 104, 122)?;
        let m = self.m.read_holding(200, 22).await?;
        // Total power 0xFFFFFFFF: no meter fitted; nothing is metered (evcc uses the meter
        // only when 220 is valid). A single invalid current with a meter stays invalid.
        let metered = u32_at(&m, 200, 220)? != INVALID;
        let currents = if metered {
            Some(currents_ma(
                [
                    u32_at(&m, 200, 212)?,
                    u32_at(&m, 200, 214)?,
                    u32_at(&m, 200, 216)?,
                ],
                &[INVALID],
            )?)
        } else {
            None
        };
        let phase = |a: u16| u32_at(&m, 200, a);
        let power_phases = match (watts(phase(206)?), watts(phase(208)?), watts(phase(210)?)) {
            (Some(a), Some(b), Some(c)) => Some(PerPhase([a, b, c])),
            _ => None,
        };
        let energy_phases = match (wh(phase(200)?), wh(phase(202)?), wh(phase(204)?)) {
            (Some(a), Some(b), Some(c)) => Some(PerPhase([a, b, c])),
            _ => None,
        };
        let session = self
            .m
            .read_holding(if self.legacy { 705 } else { 716 }, 2)
            .await?;
        let rfid = decode::ascii(&self.m.read_holding(720, 10).await?);
        let evccid = if self.no_iso15118 {
            String::new()
        } else {
            decode::ascii(&self.m.read_holding(741, 6).await?)
        };
        let hems = self.m.read_holding(1000, 1).await?;
        let connected = (2..=4).contains(&vehicle);
        let charging = vehicle == 3 || vehicle == 4;
        let error = errors.iter().any(|e| *e != 0);
        let setpoint = reg(&hems, 1000, 1000)?;
        // OCPP 4 = Faulted; 8 = SuspendedEV is a vehicle pausing itself (battery full).
        let state = if vehicle == 5 || ocpp == 4 {
            CpState::Error
        } else if !self.started {
            if connected {
                CpState::Cancelled
            } else {
                CpState::Available
            }
        } else if ocpp == 3 {
            CpState::NotAvailable
        } else {
            match vehicle {
                1 => CpState::Available,
                2 if setpoint == 0 => CpState::Interrupted,
                2 => CpState::Connected,
                3 => CpState::Charging,
                4 => CpState::ChargingVentilation,
                _ => CpState::Illegal,
            }
        };
        Ok(ChargerStatus {
            state: Some(state),
            connected,
            charging,
            setpoint: Some(Current::from_amps(i32::from(setpoint))),
            currents,
            power: watts(phase(220)?),
            power_phases,
            energy_total: wh(phase(218)?),
            energy_phases,
            energy_session: decode::u32_be(&session).and_then(wh),
            error: error.then(|| ManufacturerError {
                parts: errors.to_vec(),
            }),
            rfid: non_empty(rfid),
            evccid: non_empty(evccid),
            ..ChargerStatus::default()
        })
    }

    async fn heartbeat(&mut self) -> Result<(), DriverError> {
        // The HEMS limit must be rewritten within the communication timeout.
        self.m.write_multiple(1000, &[self.effective()]).await?;
        Ok(())
    }

    fn heartbeat_interval(&self) -> Option<Duration> {
        self.heartbeat
    }

    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError> {
        match command {
            ChargerCommand::SetCurrent(c) => {
                let amps = match check_setpoint(c, MIN, self.max) {
                    Ok(s) => s.map_or(0, amps_u16),
                    Err(o) => return Ok(o),
                };
                self.setpoint = amps;
                let v = self.effective();
                self.cache.write(&mut self.m, 1000, &[v], true).await?;
            }
            ChargerCommand::StartStop(start) => {
                // Stop = HEMS limit 0, as evcc does, not register 124 (whose polarity
                // differs between firmware lines): safe on every firmware.
                self.started = start;
                let v = self.effective();
                self.m.write_multiple(1000, &[v]).await?;
                self.cache.known(1000, &[v]);
            }
            ChargerCommand::SetPhases(_) => {
                return Ok(cannot_switch_phases("Bender charge controller"));
            }
            ChargerCommand::Unlock => {
                return Ok(cannot_unlock("Bender charge controller"));
            }
            ChargerCommand::Failsafe { current, timeout } => {
                let amps = match check_setpoint(current, MIN, self.max) {
                    Ok(s) => s.map_or(0, amps_u16),
                    Err(o) => return Ok(o),
                };
                let secs = match check_timeout(timeout, 1, 65_535) {
                    Ok(s) => s,
                    Err(o) => return Ok(o),
                };
                let back = self.m.read_holding(131, 2).await?;
                self.cache.known(131, &[reg(&back, 131, 131)?]);
                self.cache.known(132, &[reg(&back, 131, 132)?]);
                self.cache.write(&mut self.m, 131, &[amps], true).await?;
                self.cache.write(&mut self.m, 132, &[secs], true).await?;
                self.heartbeat = Some(timeout / 2);
            }
        }
        Ok(CommandOutcome::Done)
    }
}

/// The driver as the registry builds it (`super::Registered`).
pub type Driver = BenderCc<super::Transport>;

impl super::Registered for Driver {
    fn open(transport: super::Transport, _unit: u8, settings: DriverSettings) -> Self {
        Self::new(transport, settings)
    }
}
