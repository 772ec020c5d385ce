//! Phoenix Contact EV Charge Control ETH (EV-CC-AC1-M3-CBC-RCM-ETH, -ETH-3G, -RCM-ETH-XP;
//! built into Wallbe Eco/Pro, ESL Walli, E3/DC Easy Connect, Compleo Pro) over Modbus TCP,
//! unit 255, DIP switch 10 = ON. A model with **optional metering**: the energy meter is an
//! add-on of the controller.
//!
//! Source: the Phoenix Contact EV-CC-AC1-M3 Modbus register table as used by evcc
//! `charger/phoenix-ev-eth.go` and nymea `phoenixconnect/phoenixconnect-registers.json`
//! (facts only; no manufacturer document was at hand). Register map:
//! `docs/register-maps.md` §6b. 32-bit values are **low word first**.
//!
//! | what | register | notes |
//! | --- | --- | --- |
//! | CP status | input 100 | IEC 61851 letter 'A'..'F' in the **low** byte; identity check |
//! | charging time | input 102 u32 LSW s | |
//! | firmware | input 105 (2) | ASCII, low byte first in each register (evcc) |
//! | error code | input 107 | 0 ok, 1/2 cable rejected, 3 invalid PP, 4 invalid CP, 5 charging unavailable, 6 lock, 7 unlock, 8 locking error, 9 overload, 10 meter comm error, 11 vehicle rejected, 12 contactor fault, 13 CP diode missing, 15 DC error current |
//! | voltages L1–L3 | input 108 / 110 / 112 s32 LSW V | L1 > 0 V ⇔ a meter is fitted (evcc's detection) |
//! | currents L1–L3 | input 114 / 116 / 118 s32 LSW A | only with a meter |
//! | active power | input 120 s32 LSW W | only with a meter |
//! | serial / device name | holding 304 (6) / 310 (5) ASCII | |
//! | enable charging | coil 400 | start/stop and pause (the setpoint register takes no 0 A) |
//! | RFID reader enabled | coil 419 | |
//! | max current | holding 528 | A; Wallbe firmware: 0.1 A (the register then reads ≥ 60) |
//! | RFID UID | holding 606 (16) ASCII | |
//! | total energy | holding 904 u32 LSW Wh | only with a meter; Wallbe firmware: u64 LSW at 2980 (904 is 16-bit there; evcc phoenix-ev-eth.go:58–59, 199–206) |
//!
//! Without a meter at the controller the driver reports no currents, powers or energies: they
//! come from a retrofit meter at the charging point (spec 2.3, 9.3) or, without one, the core
//! takes the setpoint as the actual current. The controller has no failsafe current or
//! watchdog over Modbus and no cable unlock; the session-energy register (input 132) has no
//! confirmed data type and is not used (the core derives the session energy from the total).

use std::collections::BTreeSet;

use super::common::{
    DriverSettings, Enable, WriteCache, cannot_switch_phases, cannot_unlock, catalog_capabilities,
    id_read, identity_error, no_failsafe, non_empty, reg, regs,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
use crate::modbus::{Modbus, decode};
use crate::units::{Current, Energy, PerPhase, Power};

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "phoenix-ev-cc";

const MIN: Current = Current::from_amps(6);
/// The driver's upper limit: above 59 A the register would be ambiguous with the Wallbe
/// firmware's 0.1 A values (evcc tells them apart by "≥ 60").
const MAX: Current = Current::from_amps(32);
const STATUS: u16 = 100;
const ENABLE_COIL: u16 = 400;
const SETPOINT: u16 = 528;

/// The Phoenix Contact EV Charge Control ETH driver.
#[derive(Debug)]
pub struct PhoenixEvCc<M> {
    m: M,
    cache: WriteCache,
    enable: Enable,
    /// The last value written to the enable coil (written only on change).
    coil: Option<bool>,
    /// Wallbe firmware: the setpoint register counts 0.1 A.
    deci: bool,
    /// The failsafe warning was logged.
    warned: bool,
}

impl<M: Modbus> PhoenixEvCc<M> {
    /// A driver over `m` (unit 255).
    pub fn new(m: M, _settings: DriverSettings) -> Self {
        Self {
            m,
            cache: WriteCache::default(),
            enable: Enable::default(),
            coil: None,
            deci: false,
            warned: false,
        }
    }

    /// Writes the setpoint (when charging is allowed) and the enable coil, each on change.
    async fn apply(&mut self) -> Result<(), DriverError> {
        let effective = self.enable.effective();
        let on = effective > Current::ZERO;
        if on {
            let value = setpoint_register(effective, self.deci);
            self.cache
                .write(&mut self.m, SETPOINT, &[value], false)
                .await?;
        }
        if self.coil != Some(on) {
            self.coil = None;
            self.m.write_coil(ENABLE_COIL, on).await?;
            self.coil = Some(on);
        }
        Ok(())
    }
}

/// The IEC 61851 status letter in the low byte of input register 100.
fn status_letter(word: u16) -> Option<char> {
    let [_, low] = word.to_be_bytes();
    let c = char::from(low);
    ('A'..='F').contains(&c).then_some(c)
}

/// ASCII with the low byte of each register first (the controller's firmware string).
fn ascii_low_first(r: &[u16]) -> String {
    let swapped: Vec<u16> = r.iter().map(|w| w.swap_bytes()).collect();
    decode::ascii(&swapped)
}

/// s32, low word first.
fn s32_lsw(block: &[u16], base: u16, addr: u16) -> Result<i32, DriverError> {
    decode::u32_le(regs(block, base, addr, 2)?)
        .map(|v| i32::from_ne_bytes(v.to_ne_bytes()))
        .ok_or_else(|| DriverError::Comm(format!("s32 at {addr}")))
}

/// The value of register 528 for `c`: whole amperes, or 0.1 A on Wallbe firmware.
fn setpoint_register(c: Current, deci: bool) -> u16 {
    if deci {
        super::common::deciamps_u16(c)
    } else {
        super::common::amps_u16(c)
    }
}

/// The current register 528 holds.
fn setpoint_current(v: u16, deci: bool) -> Current {
    if deci {
        Current::from_milliamps(i32::from(v) * 100)
    } else {
        Current::from_amps(i32::from(v))
    }
}

/// Maps the status letter to the spec's state (table 23).
fn state_of(letter: char, error: u16, started: bool, paused: bool) -> CpState {
    if error != 0 {
        return CpState::Error;
    }
    match letter {
        'A' => CpState::Available,
        'C' => CpState::Charging,
        'D' => CpState::ChargingVentilation,
        'B' if !started => CpState::Cancelled,
        'B' if paused => CpState::Interrupted,
        'B' => CpState::Connected,
        // E: CP short-circuit or EVSE without power; F: EVSE not available / fault.
        _ => CpState::Error,
    }
}

impl<M: Modbus> ChargePoint for PhoenixEvCc<M> {
    fn capabilities(&self) -> BTreeSet<Capability> {
        catalog_capabilities(ID)
    }

    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        const MODEL: &str = "Phoenix Contact EV Charge Control";
        self.cache.clear();
        self.coil = None;
        let s = self
            .m
            .read_input(STATUS, 8)
            .await
            .map_err(|e| identity_error(MODEL, e))?;
        let word = reg(&s, STATUS, STATUS)?;
        if status_letter(word).is_none() {
            return Err(DriverError::WrongCharger(format!(
                "status register reads 0x{word:04X}, not an IEC 61851 letter A..F"
            )));
        }
        let error = reg(&s, STATUS, 107)?;
        if error > 15 {
            return Err(DriverError::WrongCharger(format!(
                "error code {error} is not an EV Charge Control's"
            )));
        }
        let firmware = ascii_low_first(regs(&s, STATUS, 105, 2)?);
        let set = id_read(&mut self.m, MODEL, false, SETPOINT, 1).await?;
        let set = reg(&set, SETPOINT, SETPOINT)?;
        // Wallbe firmware counts 0.1 A (60..800); once seen, kept (it never reads < 60 then).
        self.deci |= set >= 60;
        self.cache.known(SETPOINT, &[set]);
        let id = id_read(&mut self.m, MODEL, false, 304, 11).await?;
        Ok(ChargerIdentity {
            serial: non_empty(decode::ascii(regs(&id, 304, 304, 6)?)),
            firmware: non_empty(firmware),
            model: non_empty(decode::ascii(regs(&id, 304, 310, 5)?))
                .or_else(|| Some("EV Charge Control".into())),
        })
    }

    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        let b = self.m.read_input(STATUS, 22).await?;
        let word = reg(&b, STATUS, STATUS)?;
        let letter = status_letter(word).ok_or_else(|| {
            DriverError::Comm(format!("status register reads 0x{word:04X}, not A..F"))
        })?;
        let error = reg(&b, STATUS, 107)?;
        let enabled = self
            .m
            .read_coils(ENABLE_COIL, 1)
            .await?
            .first()
            .copied()
            .unwrap_or(false);
        let set = self.m.read_holding(SETPOINT, 1).await?;
        let set = setpoint_current(reg(&set, SETPOINT, SETPOINT)?, self.deci);
        let rfid = decode::ascii(&self.m.read_holding(606, 16).await?);
        // The optional meter: fitted when it measures a voltage on L1.
        let metered = s32_lsw(&b, STATUS, 108)? > 0;
        let (currents, power, energy_total) = if metered {
            let mut c = PerPhase::splat(Current::ZERO);
            for (slot, addr) in c.0.iter_mut().zip([114, 116, 118]) {
                let a = s32_lsw(&b, STATUS, addr)?;
                if !(0..=1000).contains(&a) {
                    return Err(DriverError::InvalidCurrent(format!(
                        "current register {addr} reads {a} A"
                    )));
                }
                *slot = Current::from_amps(a);
            }
            let w = s32_lsw(&b, STATUS, 120)?;
            let wh = if self.deci {
                let e = self.m.read_holding(2980, 4).await?;
                u64_le(&e).ok_or_else(|| DriverError::Comm("energy at 2980".into()))?
            } else {
                let e = self.m.read_holding(904, 2).await?;
                u64::from(
                    decode::u32_le(&e).ok_or_else(|| DriverError::Comm("energy at 904".into()))?,
                )
            };
            let wh = i64::try_from(wh)
                .ok()
                .and_then(|wh| wh.checked_mul(1000))
                .ok_or_else(|| DriverError::Comm(format!("energy of {wh} Wh")))?;
            (
                Some(c),
                Some(Power::from_watts(w)),
                Some(Energy::from_milliwatt_hours(wh)),
            )
        } else {
            (None, None, None)
        };
        let paused = self.enable.started && self.enable.setpoint == Current::ZERO;
        Ok(ChargerStatus {
            state: Some(state_of(letter, error, self.enable.started, paused)),
            connected: letter != 'A',
            charging: matches!(letter, 'C' | 'D') && error == 0,
            setpoint: Some(if enabled { set } else { Current::ZERO }),
            currents,
            power,
            energy_total,
            error: (error != 0).then(|| ManufacturerError {
                parts: vec![u32::from(error)],
            }),
            rfid: non_empty(rfid),
            ..ChargerStatus::default()
        })
    }

    async fn heartbeat(&mut self) -> Result<(), DriverError> {
        // No watchdog over Modbus.
        Ok(())
    }

    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError> {
        match self.enable.take(command, MIN, MAX) {
            Some(Ok(())) => self.apply().await?,
            Some(Err(o)) => return Ok(o),
            None => {}
        }
        Ok(match command {
            ChargerCommand::SetPhases(_) => cannot_switch_phases("EV Charge Control"),
            ChargerCommand::Unlock => cannot_unlock("EV Charge Control"),
            ChargerCommand::Failsafe { current, .. } => {
                no_failsafe(current, MIN, MAX, "EV Charge Control", &mut self.warned)
            }
            ChargerCommand::SetCurrent(_) | ChargerCommand::StartStop(_) => CommandOutcome::Done,
        })
    }
}

/// Four registers, lowest word first, as u64 (Wallbe energy at 2980).
fn u64_le(r: &[u16]) -> Option<u64> {
    match r {
        [a, b, c, d] => {
            Some(u64::from(*d) << 48 | u64::from(*c) << 32 | u64::from(*b) << 16 | u64::from(*a))
        }
        _ => None,
    }
}

/// The driver as the registry builds it (`super::Registered`).
pub type Driver = PhoenixEvCc<super::Transport>;

impl super::Registered for Driver {
    fn open(transport: super::Transport, _unit: u8, settings: DriverSettings) -> Self {
        Self::new(transport, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_letters() {
        assert_eq!(status_letter(0x0041), Some('A'));
        assert_eq!(status_letter(0x4143), Some('C'));
        assert_eq!(status_letter(0x4100), None);
        assert_eq!(status_letter(0x0047), None);
        assert_eq!(state_of('A', 0, true, false), CpState::Available);
        assert_eq!(state_of('B', 0, true, false), CpState::Connected);
        assert_eq!(state_of('B', 0, true, true), CpState::Interrupted);
        assert_eq!(state_of('B', 0, false, false), CpState::Cancelled);
        assert_eq!(state_of('C', 0, true, false), CpState::Charging);
        assert_eq!(state_of('D', 0, true, false), CpState::ChargingVentilation);
        assert_eq!(state_of('F', 0, true, false), CpState::Error);
        assert_eq!(state_of('C', 9, true, false), CpState::Error);
    }

    #[test]
    fn words_and_text() {
        assert_eq!(ascii_low_first(&[0x2E31, 0x3430]), "1.04");
        assert_eq!(s32_lsw(&[0xFFFF, 0xFFFF], 0, 0).unwrap(), -1);
        assert_eq!(s32_lsw(&[0x0001, 0x0002], 0, 0).unwrap(), 0x0002_0001);
        assert!(s32_lsw(&[1], 0, 0).is_err());
        assert_eq!(setpoint_register(Current::from_amps(16), false), 16);
        assert_eq!(
            setpoint_register(Current::from_milliamps(16_500), true),
            165
        );
        assert_eq!(setpoint_current(165, true), Current::from_milliamps(16_500));
        assert_eq!(setpoint_current(16, false), Current::from_amps(16));
    }
}
