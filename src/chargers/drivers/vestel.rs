//! Vestel EVC04 (Home Smart / Connect Plus), Webasto Unite, Ampure Unite over Modbus TCP,
//! unit 255. Read-only values are input registers (FC 04), settings holding registers.
//!
//! Source: Vestel "EVC04 Modbus TCP/IP Specification" v1.8 (attached to evcc issues as
//! EVC04_Modbus_TCP_Specification.v1.8.pdf); cross-checked against evcc `charger/vestel.go` and
//! nymea `vestel/evc04-registers.json` (facts only). Register map:
//! `docs/register-maps.md` §8.
//!
//! | what | FC | register | notes |
//! | --- | --- | --- | --- |
//! | serial / brand / model / firmware | 04 | 100 (25) / 190 (10) / 210 (5) / 230 (50) | UTF-16, one character per register |
//! | charge point state | 04 | 1000 | OCPP-like: 0 available 1 preparing 2 charging 3 suspended EVSE 4 suspended EV 5 finishing 6 reserved 7 unavailable 8 faulted |
//! | charging / cable | 04 | 1001 / 1004 | cable ≥ 2 = vehicle connected |
//! | EVSE fault code | 04 | 1006 u32 | |
//! | currents L1–L3 | 04 | 1008 / 1010 / 1012 u16 mA | read one by one |
//! | power / energy | 04 | 1020 u32 W / 1036 u32 0.1 kWh | |
//! | session energy / RFID | 04 | 1502 u32 Wh / 1516 (15) | RFID only on firmware ≥ 3.156 (evcc vestel.go:114–126; older firmware answers an exception) |
//! | failsafe current / timeout | 03/06 | 2000 A / 2002 s | |
//! | charging current | 03/06 | 5004 A | 0 pauses: start/stop |
//! | alive register | 06 | 6000 | write 1 every timeout/4 (≥ 1 s) |
//! | number of phases of the unit | 04 | 404 | 0 = 1p, 1 = 3p: only 3p units switch |
//! | phase switch | 03/06 | 405 | 0 = 1p, 1 = 3p; firmware ≥ 3.187.0 |
//!
//! 1-/3-phase switching: evcc offers it when 404 reads 1 (`charger/vestel.go:108–111`) and
//! writes 405 as 0 for one phase, 1 for three (:306–319); its template requires firmware
//! 3.187.0 (`templates/definition/charger/vestel.yaml`, requirements). The box "occasionally
//! disables" switching (evcc #21708): 404 falls to 0 until the box reboots (evcc #31323).
//! The driver reads 404 every poll ([`ChargerStatus::phase_switch_available`]) and 405
//! where the firmware has it, and reads 405 back after writing.

use std::collections::BTreeSet;
use std::time::Duration;

use super::common::{
    DriverSettings, Enable, WriteCache, amps_u16, cannot_unlock, catalog_capabilities,
    check_phase_wiring, check_setpoint, check_timeout, currents_ma, id_read, identity_error,
    non_empty, optional_read, reg, utf16_text,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
use crate::modbus::{Modbus, decode};
use crate::units::{Current, Energy, PhaseCount, Power};

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "vestel-evc04";

const MIN: Current = Current::from_amps(6);
const MAX: Current = Current::from_amps(32);
const SLOW_EVERY: u32 = 10;

/// The Vestel EVC04 driver.
#[derive(Debug)]
pub struct VestelEvc04<M> {
    m: M,
    /// The phases the point is connected with (configuration).
    wiring: PhaseCount,
    cache: WriteCache,
    enable: Enable,
    polls: u32,
    slow: (Option<Energy>, Option<String>),
    connected: bool,
    charging: bool,
    heartbeat: Option<Duration>,
    rfid: bool,
    /// The firmware has 405 (≥ 3.187.0).
    phase_register: bool,
    firmware: String,
}

impl<M: Modbus> VestelEvc04<M> {
    /// A driver over `m`.
    pub fn new(m: M, settings: DriverSettings) -> Self {
        Self {
            m,
            wiring: settings.phases,
            cache: WriteCache::default(),
            enable: Enable::default(),
            polls: 0,
            slow: (None, None),
            connected: false,
            charging: false,
            heartbeat: None,
            rfid: false,
            phase_register: false,
            firmware: String::new(),
        }
    }

    async fn u16(&mut self, addr: u16) -> Result<u16, DriverError> {
        let r = self.m.read_input(addr, 1).await?;
        reg(&r, addr, addr)
    }

    async fn u32(&mut self, addr: u16) -> Result<u32, DriverError> {
        let r = self.m.read_input(addr, 2).await?;
        decode::u32_be(&r).ok_or_else(|| DriverError::Comm(format!("register {addr}")))
    }

    /// 405 as a phase count; `None` for a value that is none. An exception reads as `None`
    /// (a firmware that says 3.187 but lacks it still polls).
    async fn read_405(&mut self) -> Result<(Option<u16>, Option<PhaseCount>), DriverError> {
        let Some(r) = optional_read(&mut self.m, false, 405, 1).await? else {
            return Ok((None, None));
        };
        let v = reg(&r, 405, 405)?;
        Ok((Some(v), switched_phases(v)))
    }

    /// 404, the unit's phases; `None` when the box answers an exception.
    async fn read_404(&mut self) -> Result<Option<u16>, DriverError> {
        match optional_read(&mut self.m, true, 404, 1).await? {
            Some(r) => Ok(Some(reg(&r, 404, 404)?)),
            None => Ok(None),
        }
    }

    async fn set_phases(&mut self, phases: PhaseCount) -> Result<CommandOutcome, DriverError> {
        if !self.phase_register {
            return Ok(CommandOutcome::NotPossible(format!(
                "firmware {} is older than 3.187.0: no phase switch register (405)",
                self.firmware
            )));
        }
        let unit = self.read_404().await?;
        if unit != Some(1) {
            let unit = unit.map_or_else(|| "an exception".to_owned(), |v| v.to_string());
            return Ok(CommandOutcome::NotPossible(format!(
                "register 404 reads {unit}, not 1: a 1-phase unit, or phase switching fell back by itself (evcc #21708; a reboot of the box restores it)"
            )));
        }
        if self.read_405().await?.1 == Some(phases) {
            return Ok(CommandOutcome::Done);
        }
        let want = match phases {
            PhaseCount::One => 0,
            PhaseCount::Three => 1,
        };
        self.m.write_single(405, want).await?;
        let (back, _) = self.read_405().await?;
        if back != Some(want) {
            let back = back.map_or_else(|| "an exception".to_owned(), |v| v.to_string());
            return Ok(CommandOutcome::NotPossible(format!(
                "405 reads {back} after writing {want}: the box did not take the switch"
            )));
        }
        Ok(CommandOutcome::Done)
    }

    async fn apply(&mut self) -> Result<(), DriverError> {
        let amps = amps_u16(self.enable.effective());
        self.cache.write(&mut self.m, 5004, &[amps], false).await?;
        Ok(())
    }
}

impl<M: Modbus> ChargePoint for VestelEvc04<M> {
    fn capabilities(&self) -> BTreeSet<Capability> {
        catalog_capabilities(ID)
    }

    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        self.cache.clear();
        let serial = self
            .m
            .read_input(100, 25)
            .await
            .map_err(|e| identity_error("Vestel EVC04", e))?;
        let brand = utf16_text(&id_read(&mut self.m, "Vestel EVC04", true, 190, 10).await?);
        let model = utf16_text(&id_read(&mut self.m, "Vestel EVC04", true, 210, 5).await?);
        let firmware = utf16_text(&id_read(&mut self.m, "Vestel EVC04", true, 230, 50).await?);
        let serial = utf16_text(&serial);
        if serial.is_empty() || model.is_empty() {
            return Err(DriverError::WrongCharger(
                "no serial number or model text in the EVC04 identity registers".into(),
            ));
        }
        self.rfid = firmware_at_least(&firmware, 3, 156);
        self.phase_register = firmware_at_least(&firmware, 3, 187);
        self.firmware.clone_from(&firmware);
        Ok(ChargerIdentity {
            serial: Some(serial),
            firmware: non_empty(firmware),
            model: Some(format!("{brand} {model}").trim().to_owned()),
        })
    }

    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        let cp = self.u16(1000).await?;
        let charging = self.u16(1001).await? == 1;
        let cable = self.u16(1004).await?;
        let fault = self.u32(1006).await?;
        let mut ma = [0u32; 3];
        for (slot, addr) in ma.iter_mut().zip([1008, 1010, 1012]) {
            *slot = u32::from(self.u16(addr).await?);
        }
        let currents = currents_ma(ma, &[0xFFFF])?;
        let power = self.u32(1020).await?;
        let energy = self.u32(1036).await?;
        let connected = cable >= 2;
        // Slow data now and then, and at once when a session starts or ends.
        if self.polls % SLOW_EVERY == 0 || connected != self.connected || charging != self.charging
        {
            let session = self.u32(1502).await?;
            let rfid = if self.rfid {
                utf16_text(&self.m.read_input(1516, 15).await?)
            } else {
                String::new()
            };
            self.slow = (
                Some(Energy::from_milliwatt_hours(i64::from(session) * 1000)),
                non_empty(rfid),
            );
        }
        self.polls = self.polls.wrapping_add(1);
        let switchable = self.read_404().await? == Some(1);
        let phases_switched = if self.phase_register {
            self.read_405().await?.1
        } else {
            None
        };
        let set = self.m.read_holding(5004, 1).await?;
        let setpoint = reg(&set, 5004, 5004)?;
        self.connected = connected;
        self.charging = charging;
        let state = match cp {
            0 => CpState::Available,
            1 | 3 if !self.enable.started => CpState::Cancelled,
            1 | 3 if setpoint == 0 => CpState::Interrupted,
            1 | 4 | 5 => CpState::Connected,
            2 => CpState::Charging,
            3 => CpState::Interrupted,
            6 | 7 => CpState::NotAvailable,
            8 => CpState::Error,
            _ => CpState::Illegal,
        };
        let (energy_session, rfid) = self.slow.clone();
        Ok(ChargerStatus {
            state: Some(state),
            connected,
            charging,
            setpoint: Some(Current::from_amps(i32::from(setpoint))),
            currents: Some(currents),
            power: Some(Power::from_milliwatts(i64::from(power) * 1000)),
            energy_total: Some(Energy::from_milliwatt_hours(i64::from(energy) * 100_000)),
            energy_session,
            error: (fault != 0).then(|| ManufacturerError { parts: vec![fault] }),
            rfid,
            phases_switched,
            phase_switch_available: Some(switchable && self.phase_register),
            ..ChargerStatus::default()
        })
    }

    async fn heartbeat(&mut self) -> Result<(), DriverError> {
        self.m.write_single(6000, 1).await?;
        Ok(())
    }

    fn heartbeat_interval(&self) -> Option<Duration> {
        self.heartbeat
    }

    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError> {
        match command {
            ChargerCommand::SetCurrent(c) => {
                self.enable.setpoint = match check_setpoint(c, MIN, MAX) {
                    Ok(s) => s.unwrap_or(Current::ZERO),
                    Err(o) => return Ok(o),
                };
                self.apply().await?;
            }
            ChargerCommand::StartStop(start) => {
                if start && self.u16(1000).await? == 8 {
                    return Ok(CommandOutcome::NotPossible(
                        "the charging point is faulted".into(),
                    ));
                }
                self.enable.started = start;
                self.apply().await?;
            }
            ChargerCommand::Unlock => {
                return Ok(cannot_unlock("EVC04"));
            }
            ChargerCommand::SetPhases(phases) => {
                if let Err(o) = check_phase_wiring(self.wiring, phases) {
                    return Ok(o);
                }
                return self.set_phases(phases).await;
            }
            ChargerCommand::Failsafe { current, timeout } => {
                let amps = match check_setpoint(current, MIN, MAX) {
                    Ok(s) => s.map_or(0, amps_u16),
                    Err(o) => return Ok(o),
                };
                let secs = match check_timeout(timeout, 4, 65_535) {
                    Ok(s) => s,
                    Err(o) => return Ok(o),
                };
                let back = self.m.read_holding(2000, 3).await?;
                self.cache.known(2000, &[reg(&back, 2000, 2000)?]);
                self.cache.known(2002, &[reg(&back, 2000, 2002)?]);
                self.cache.write(&mut self.m, 2000, &[amps], false).await?;
                self.cache.write(&mut self.m, 2002, &[secs], false).await?;
                self.heartbeat = Some((timeout / 4).max(Duration::from_secs(1)));
            }
        }
        Ok(CommandOutcome::Done)
    }
}

/// What 405 says: 0 = one phase, 1 = three; anything else is no answer.
fn switched_phases(v: u16) -> Option<PhaseCount> {
    match v {
        0 => Some(PhaseCount::One),
        1 => Some(PhaseCount::Three),
        _ => None,
    }
}

/// Whether firmware `text` ("v3.187.0-…") is `major.minor` or later: RFID (1516) needs 3.156,
/// phase switching (405) 3.187. A version that cannot be read is taken as older (a register
/// not read rather than a failing poll).
fn firmware_at_least(text: &str, want_major: u32, want_minor: u32) -> bool {
    let mut parts = text
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (want_major, want_minor),
        _ => false,
    }
}

/// The driver as the registry builds it (`super::Registered`).
pub type Driver = VestelEvc04<super::Transport>;

impl super::Registered for Driver {
    fn open(transport: super::Transport, _unit: u8, settings: DriverSettings) -> Self {
        Self::new(transport, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfid_from_firmware_3_156() {
        let has_rfid = |t: &str| firmware_at_least(t, 3, 156);
        assert!(has_rfid("v3.187.0-abc"));
        assert!(has_rfid("3.156.0"));
        assert!(!has_rfid("v3.150.0"));
        assert!(!has_rfid("v2.999.9"));
        assert!(!has_rfid(""));
    }

    #[test]
    fn phase_switch_from_firmware_3_187_and_405_values() {
        assert!(firmware_at_least("v3.187.0-abc", 3, 187));
        assert!(firmware_at_least("v4.48.0", 3, 187));
        assert!(!firmware_at_least("v3.186.9", 3, 187));
        assert!(!firmware_at_least("garbage", 3, 187));
        assert_eq!(switched_phases(0), Some(PhaseCount::One));
        assert_eq!(switched_phases(1), Some(PhaseCount::Three));
        assert_eq!(switched_phases(3), None);
        assert_eq!(switched_phases(0xFFFF), None);
    }
}
