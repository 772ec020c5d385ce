//! Webasto Next (also Ampure NEXT) over Modbus TCP, unit 255, register set "TQ-DM100" with
//! "HEMS activated".
//!
//! Source: "Modbus Specification Webasto NEXT", register list rev 3.00 (2022-04-27), as
//! summarised in the reference; cross-checked against evcc `charger/webasto-next.go` and the
//! nymea `webasto-next-registers.json` (facts only). Register map:
//! `docs/register-maps.md` §7.
//!
//! | what | register | notes |
//! | --- | --- | --- |
//! | charge point state / charge state / EVSE state | 1000 / 1001 / 1002 | 0 no vehicle 1 attached 3 charging 4 paused 7 error 8 reserved / 0-1 / 0 starting 1 running 2 error |
//! | cable state / error code | 1004 / 1006 | ≥ 2 = vehicle attached |
//! | currents L1–L3 | 1008 / 1010 / 1012 u16 mA | |
//! | power sum / L1–L3 | 1020 / 1024 / 1028 / 1032 u32 W | |
//! | energy | 1036 u32 Wh | |
//! | HW max / min / station / cable / EV max current | 1100 … 1108 u16 A | identity plausibility |
//! | session energy | 1502 u16 Wh | |
//! | RFID (user id) | 1600 (10) ASCII | |
//! | safe current / comm timeout | 2000 A / 2002 s | failsafe |
//! | set current | 5004 A | 0 pauses |
//! | start / cancel | 5006 | 1 start, 2 cancel |
//! | life bit | 6000 | write 1 every timeout/2 |
//!
//! No serial number or firmware in the map.

use std::collections::BTreeSet;
use std::time::Duration;

use super::common::{
    DriverSettings, Enable, WriteCache, amps_u16, cannot_switch_phases, cannot_unlock,
    catalog_capabilities, check_setpoint, check_timeout, currents_ma, id_read, identity_error,
    non_empty, reg, u32_at,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
use crate::modbus::{Modbus, decode};
use crate::units::{Current, Energy, PerPhase, Power};

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "webasto-next";

const MIN: Current = Current::from_amps(6);

/// The Webasto Next driver.
#[derive(Debug)]
pub struct WebastoNext<M> {
    m: M,
    cache: WriteCache,
    enable: Enable,
    max: Current,
    heartbeat: Option<Duration>,
}

impl<M: Modbus> WebastoNext<M> {
    /// A driver over `m`.
    pub fn new(m: M, _settings: DriverSettings) -> Self {
        Self {
            m,
            cache: WriteCache::default(),
            enable: Enable::default(),
            max: Current::from_amps(32),
            heartbeat: None,
        }
    }
}

impl<M: Modbus> WebastoNext<M> {
    async fn u16(&mut self, addr: u16) -> Result<u16, DriverError> {
        let r = self.m.read_holding(addr, 1).await?;
        reg(&r, addr, addr)
    }
}

fn watts(v: u32) -> Power {
    Power::from_milliwatts(i64::from(v) * 1000)
}

impl<M: Modbus> ChargePoint for WebastoNext<M> {
    fn capabilities(&self) -> BTreeSet<Capability> {
        catalog_capabilities(ID)
    }

    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        self.cache.clear();
        let l = self
            .m
            .read_holding(1100, 1)
            .await
            .map_err(|e| identity_error("Webasto Next", e))?;
        let hw_max = reg(&l, 1100, 1100)?;
        let l = id_read(&mut self.m, "Webasto Next", false, 1102, 1).await?;
        let hw_min = reg(&l, 1102, 1102)?;
        if !(6..=80).contains(&hw_max) || !(1..=hw_max).contains(&hw_min) {
            return Err(DriverError::WrongCharger(format!(
                "current limits {hw_min}..{hw_max} A are not a Webasto Next's"
            )));
        }
        self.max = Current::from_amps(i32::from(hw_max));
        let e = id_read(&mut self.m, "Webasto Next", false, 1002, 1).await?;
        if reg(&e, 1002, 1002)? > 2 {
            return Err(DriverError::WrongCharger("EVSE state out of range".into()));
        }
        Ok(ChargerIdentity {
            serial: None,
            firmware: None,
            model: Some("Webasto Next".into()),
        })
    }

    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        // Each register on its own: the gaps between them are not in the register list, and
        // evcc and nymea read singly too.
        let s = self.m.read_holding(1000, 3).await?;
        let cp = reg(&s, 1000, 1000)?;
        let charge = reg(&s, 1000, 1001)?;
        let evse = reg(&s, 1000, 1002)?;
        let cable = self.u16(1004).await?;
        let error = self.u16(1006).await?;
        let currents = currents_ma(
            [
                u32::from(self.u16(1008).await?),
                u32::from(self.u16(1010).await?),
                u32::from(self.u16(1012).await?),
            ],
            &[0xFFFF],
        )?;
        let mut p = vec![0u16; 18];
        for a in [1020u16, 1024, 1028, 1032, 1036] {
            let r = self.m.read_holding(a, 2).await?;
            let at = usize::from(a - 1020);
            if let (Some(slot), Some(words)) = (p.get_mut(at..at + 2), r.get(..2)) {
                slot.copy_from_slice(words);
            }
        }
        let session = self.m.read_holding(1502, 1).await?;
        let rfid = decode::ascii(&self.m.read_holding(1600, 10).await?);
        let connected = cable >= 2;
        let charging = charge == 1;
        let state = if evse == 0 {
            CpState::StartUp
        } else if evse == 2 || cp == 7 {
            CpState::Error
        } else {
            match cp {
                0 => CpState::Available,
                1 | 4 if !self.enable.started => CpState::Cancelled,
                1 | 4 if self.enable.setpoint == Current::ZERO => CpState::Interrupted,
                1 => CpState::ManualStartRequired,
                3 => CpState::Charging,
                4 => CpState::Connected,
                8 => CpState::NotAvailable,
                _ => CpState::Illegal,
            }
        };
        Ok(ChargerStatus {
            state: Some(state),
            connected,
            charging,
            setpoint: Some(self.enable.effective()),
            currents: Some(currents),
            power: Some(watts(u32_at(&p, 1020, 1020)?)),
            power_phases: Some(PerPhase([
                watts(u32_at(&p, 1020, 1024)?),
                watts(u32_at(&p, 1020, 1028)?),
                watts(u32_at(&p, 1020, 1032)?),
            ])),
            energy_total: Some(Energy::from_milliwatt_hours(
                i64::from(u32_at(&p, 1020, 1036)?) * 1000,
            )),
            energy_session: Some(Energy::from_watt_hours(i32::from(reg(
                &session, 1502, 1502,
            )?))),
            error: (error != 0).then(|| ManufacturerError {
                parts: vec![u32::from(error)],
            }),
            rfid: non_empty(rfid),
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
                let set = match check_setpoint(c, MIN, self.max) {
                    Ok(s) => s.unwrap_or(Current::ZERO),
                    Err(o) => return Ok(o),
                };
                self.enable.setpoint = set;
                let amps = amps_u16(self.enable.effective());
                self.cache.write(&mut self.m, 5004, &[amps], false).await?;
            }
            ChargerCommand::StartStop(start) => {
                // Not cached: start and cancel are actions, not settings (a start after
                // re-plugging must reach the box even if the last command was a start too).
                // The current (5004) follows: a setpoint that came while stopped was written
                // as 0 and must be there when the session starts again.
                self.enable.started = start;
                let amps = amps_u16(self.enable.effective());
                if start {
                    self.m.write_single(5006, 1).await?;
                    self.m.write_single(5004, amps).await?;
                } else {
                    self.m.write_single(5004, amps).await?;
                    self.m.write_single(5006, 2).await?;
                }
                self.cache.known(5004, &[amps]);
            }
            ChargerCommand::SetPhases(_) => return Ok(cannot_switch_phases("Webasto Next")),
            ChargerCommand::Unlock => {
                return Ok(cannot_unlock("Webasto Next"));
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
                let safe = self.u16(2000).await?;
                let secs_now = self.u16(2002).await?;
                self.cache.known(2000, &[safe]);
                self.cache.known(2002, &[secs_now]);
                self.cache.write(&mut self.m, 2000, &[amps], true).await?;
                self.cache.write(&mut self.m, 2002, &[secs], true).await?;
                self.heartbeat = Some((timeout / 2).max(Duration::from_secs(1)));
            }
        }
        Ok(CommandOutcome::Done)
    }
}

/// The driver as the registry builds it (`super::Registered`).
pub type Driver = WebastoNext<super::Transport>;

impl super::Registered for Driver {
    fn open(transport: super::Transport, _unit: u8, settings: DriverSettings) -> Self {
        Self::new(transport, settings)
    }
}
