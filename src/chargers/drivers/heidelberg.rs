//! Heidelberg (Amperfied) Wallbox Energy Control over Modbus RTU (19200 Bd 8E1, address from
//! DIP switch S4; ~100 ms between requests).
//!
//! Source: Heidelberg/Amperfied "ModBus-Register-Tabelle" register layout 1.0.x (2021-02-22),
//! via the faithful listings cited in the reference; cross-checked against evcc
//! `charger/heidelberg-ec.go` (facts only). Register map:
//! `docs/register-maps.md` §5.
//!
//! | what | FC | register | notes |
//! | --- | --- | --- | --- |
//! | layout version | 04 | 4 | 0x01xx; identity check |
//! | charging state | 04 | 5 | 2 A1 3 A2 4 B1 5 B2 6 C1 7 C2 8 derating 9 E 10 F 11 error |
//! | currents L1–L3 / PCB temperature | 04 | 6–8 (0.1 A) / 9 (0.1 °C, signed) | |
//! | power / energy since power-on / since installation | 04 | 14 VA / 15 u32 VAh / 17 u32 VAh | VA ≈ W, VAh ≈ Wh |
//! | HW max / min current, logistic string | 04 | 100 / 101 A, 102–133 ASCII | serial |
//! | HW variant / application software | 04 | 200 / 203 | firmware |
//! | watchdog timeout | 03/06 | 257 ms | any request resets it |
//! | standby control | 03/06 | 258 | 4 = standby off (else the box stops answering) |
//! | remote lock | 03/06 | 259 | 0 locked, 1 unlocked: start/stop |
//! | max current / failsafe current | 03/06 | 261 / 262 (0.1 A) | 0 or 60–160 |
//!
//! Field behaviour (`docs/chargers.md`, Heidelberg): standby is disabled (258 = 4) at every
//! start, whatever else is configured; every write uses FC 16, as evcc does; the remote lock
//! (259 = 0) shows state F, and a box found locked while it should charge is unlocked again.

use std::collections::BTreeSet;
use std::time::Duration;

use super::common::{
    DriverSettings, WriteCache, cannot_switch_phases, catalog_capabilities, check_setpoint,
    deciamps_u16, id_read, identity_error, non_empty, reg, regs, u32_at,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
use crate::modbus::{Modbus, decode};
use crate::units::{Current, Energy, PerPhase, Power, Temperature};

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "heidelberg-ec";

const MIN: Current = Current::from_amps(6);

/// The Heidelberg Energy Control driver.
#[derive(Debug)]
pub struct HeidelbergEc<M> {
    m: M,
    settings: DriverSettings,
    cache: WriteCache,
    max: Current,
    started: bool,
}

/// The watchdog register counts milliseconds in 16 bits: at most 65.535 s.
const WATCHDOG_MAX_MS: u16 = u16::MAX;

impl<M: Modbus> HeidelbergEc<M> {
    /// A driver over `m` (an RS485 device, with 100 ms spacing).
    pub fn new(m: M, settings: DriverSettings) -> Self {
        Self {
            m,
            settings,
            cache: WriteCache::default(),
            max: Current::from_amps(16),
            started: true,
        }
    }
}

impl<M: Modbus> ChargePoint for HeidelbergEc<M> {
    fn capabilities(&self) -> BTreeSet<Capability> {
        catalog_capabilities(ID)
    }

    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        self.cache.clear();
        let v = self
            .m
            .read_input(4, 1)
            .await
            .map_err(|e| identity_error("Heidelberg Energy Control", e))?;
        let layout = reg(&v, 4, 4)?;
        if layout >> 8 != 1 {
            return Err(DriverError::WrongCharger(format!(
                "register layout 0x{layout:04X} is not a Heidelberg Energy Control's (1.x)"
            )));
        }
        let l = id_read(&mut self.m, "Heidelberg Energy Control", true, 100, 34).await?;
        let hw_max = reg(&l, 100, 100)?;
        if (6..=16).contains(&hw_max) {
            self.max = Current::from_amps(i32::from(hw_max));
        }
        let serial = decode::ascii(regs(&l, 100, 102, 32)?);
        let f = id_read(&mut self.m, "Heidelberg Energy Control", true, 200, 4).await?;
        // Standby off, unconditionally: in standby the box stops answering (evcc writes it at
        // start, heidelberg-ec.go:99).
        self.m.write_multiple(258, &[4]).await?;
        self.cache.known(258, &[4]);
        let firmware = format!(
            "HW {:X} / SW {:X} (layout {}.{}.{})",
            reg(&f, 200, 200)?,
            reg(&f, 200, 203)?,
            layout >> 8,
            (layout >> 4) & 0xF,
            layout & 0xF
        );
        Ok(ChargerIdentity {
            serial: non_empty(serial),
            firmware: Some(firmware),
            model: Some("Energy Control".into()),
        })
    }

    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        let b = self.m.read_input(4, 15).await?;
        let code = reg(&b, 4, 5)?;
        let deci = |a| reg(&b, 4, a).map(|v| Current::from_milliamps(i32::from(v) * 100));
        let currents = PerPhase([deci(6)?, deci(7)?, deci(8)?]);
        #[allow(clippy::cast_possible_wrap, reason = "the register is signed")]
        let temperature = Temperature::from_centi_celsius(i32::from(reg(&b, 4, 9)? as i16) * 10);
        let power = Power::from_watts(i32::from(reg(&b, 4, 14)?));
        let session = u32_at(&b, 4, 15)?;
        let total = u32_at(&b, 4, 17)?;
        let h = self.m.read_holding(257, 6).await?;
        let unlocked = reg(&h, 257, 259)? == 1;
        if !unlocked && self.started {
            // Locked (state F) although it should charge: unlock, as evcc does on F.
            self.m.write_multiple(259, &[1]).await?;
            self.cache.known(259, &[1]);
        }
        let setpoint = reg(&h, 257, 261)?;
        let connected = (4..=8).contains(&code);
        let charging = code == 7 || code == 8;
        let state = match code {
            2 | 3 => CpState::Available,
            4..=6 if !unlocked => CpState::Cancelled,
            4 | 6 if setpoint == 0 => CpState::Interrupted,
            4 => CpState::ManualStartRequired,
            5 | 6 => CpState::Connected,
            7 => CpState::Charging,
            8 => CpState::ChargingReduced,
            9 | 11 => CpState::Error,
            10 if !self.started => CpState::Cancelled,
            10 => CpState::NotAvailable,
            _ => CpState::Illegal,
        };
        Ok(ChargerStatus {
            state: Some(state),
            connected,
            charging,
            setpoint: Some(Current::from_milliamps(i32::from(setpoint) * 100)),
            currents: Some(currents),
            power: Some(power),
            energy_total: Some(Energy::from_milliwatt_hours(i64::from(total) * 1000)),
            energy_session: Some(Energy::from_milliwatt_hours(i64::from(session) * 1000)),
            temperature: Some(temperature),
            temperature_warning: Some(
                code == 8 || temperature >= self.settings.temperature_warning,
            ),
            error: matches!(code, 9 | 11).then(|| ManufacturerError {
                parts: vec![u32::from(code)],
            }),
            ..ChargerStatus::default()
        })
    }

    async fn heartbeat(&mut self) -> Result<(), DriverError> {
        // Every request resets the watchdog; polls suffice.
        Ok(())
    }

    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError> {
        match command {
            ChargerCommand::SetCurrent(c) => {
                let deci = match check_setpoint(c, MIN, self.max) {
                    Ok(s) => s.map_or(0, deciamps_u16),
                    Err(o) => return Ok(o),
                };
                self.cache.write(&mut self.m, 261, &[deci], true).await?;
            }
            ChargerCommand::StartStop(start) => {
                self.started = start;
                self.cache
                    .write(&mut self.m, 259, &[u16::from(start)], true)
                    .await?;
            }
            ChargerCommand::SetPhases(_) => return Ok(cannot_switch_phases("Energy Control")),
            ChargerCommand::Unlock => {
                return Ok(CommandOutcome::NotPossible(
                    "the Energy Control has no unlock over Modbus".into(),
                ));
            }
            ChargerCommand::Failsafe { current, timeout } => {
                let deci = match check_setpoint(current, MIN, self.max) {
                    Ok(s) => s.map_or(0, deciamps_u16),
                    Err(o) => return Ok(o),
                };
                // A longer timeout than the register holds is shortened to its maximum (the
                // safe side: the box falls back sooner, and polls keep it alive anyway).
                let ms = u16::try_from(timeout.as_millis()).unwrap_or(WATCHDOG_MAX_MS);
                if ms == 0 {
                    return Ok(CommandOutcome::OutOfRange(format!(
                        "watchdog timeout {timeout:?} is below 1 ms"
                    )));
                }
                let back = self.m.read_holding(257, 6).await?;
                self.cache.known(257, &[reg(&back, 257, 257)?]);
                self.cache.known(262, &[reg(&back, 257, 262)?]);
                self.cache.write(&mut self.m, 262, &[deci], true).await?;
                self.cache.write(&mut self.m, 257, &[ms], true).await?;
            }
        }
        Ok(CommandOutcome::Done)
    }
}

/// The driver as the registry builds it (`super::Registered`).
pub type Driver = HeidelbergEc<super::Transport>;

impl super::Registered for Driver {
    const LINE_SPACING: Duration = Duration::from_millis(100);

    fn open(transport: super::Transport, _unit: u8, settings: DriverSettings) -> Self {
        Self::new(transport, settings)
    }
}
