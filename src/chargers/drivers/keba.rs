//! KEBA KeContact P30 c-series / x-series over Modbus TCP (unit 255, FC 03 reads of two
//! registers at a time, FC 06 writes).
//!
//! Source: KEBA "KeContact P30 Modbus TCP Programmers Guide" V1.02 (register table; energy is
//! in 0.1 Wh although V1.02 says Wh — evcc, Tinkerforge and SmartApplianceEnabler all scale
//! by 0.1 Wh), KEBA UDP Programmers Guide V2.01 (failsafe semantics, 5020 stores the failsafe
//! settings in EEPROM); cross-checked against evcc `charger/keba-modbus.go` (facts only).
//! Register map: `docs/register-maps.md` §1.
//!
//! | what | register | notes |
//! | --- | --- | --- |
//! | state / cable / error | 1000 / 1004 / 1006 | u32 |
//! | currents L1–L3 | 1008 / 1010 / 1012 | u32 mA |
//! | serial / product / firmware | 1014 / 1016 / 1018 | product = 6 digits starting with 3 (P30) |
//! | power / energy | 1020 mW / 1036 0.1 Wh | |
//! | offered current | 1100 | mA (setpoint state) |
//! | RFID / session energy | 1500 / 1502 | 4 UID bytes / 0.1 Wh |
//! | failsafe read-back | 1600 mA / 1602 s | |
//! | set current / unlock / enable | 5004 mA / 5012 / 5014 | enable: 0 off, 1 on |
//! | failsafe current / timeout / persist | 5016 / 5018 / 5020 | 5018 is rewritten as heartbeat |
//! | phase-switch source / state | 1550 / 1552 | source 3 = Modbus; state 0 = 1p, 1 = 3p (P30) |
//! | phase-switch source (set) / trigger | 5050 / 5052 | c-series: 5050 = 3 once; 5052: 0 = 1p, 1 = 3p |
//!
//! 1-/3-phase switching needs the KeContact S10 phase switch and "Modbus" as the switch's
//! source (1550 = 3; evcc `charger/keba-modbus.go:143–148` switches only then). The x-series
//! takes the source from its web interface, the c-series from 5050 = 3 (evcc template
//! `keba-modbus.yaml`, requirements). The product code's fourth digit tells the series
//! (1 = c, 0 = x; programmer's guide V1.02 §3.8). The driver writes 5050 = 3 once (per
//! driver, at the first switch) on a c-series whose source is not 3; if the source still is not 3 there is
//! no S10 to take it (sources 0 none, 1 OCPP, 2 REST, 3 Modbus, 4 UDP: OpenEMS
//! `PhaseSwitchSource`). 1552 counts only while the source is 3 (without an S10 it says
//! nothing). Firmware without 1550/1552 (an exception answer) has no switching.
//! State: 0 start-up, 1 not ready, 2 ready, 3 charging, 4 error, 5 interrupted (disabled or
//! over-temperature). Unlock works only when not charging. 0 A pauses by disabling (5014 = 0);
//! 5004 itself takes 6–63 A.

use std::collections::BTreeSet;
use std::time::Duration;

use super::common::{
    DriverSettings, Enable, WriteCache, catalog_capabilities, check_phase_wiring, check_setpoint,
    check_timeout, currents_ma, id_read, identity_error, milliamps_u16, optional_read,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
use crate::modbus::{Modbus, decode};
use crate::units::{Current, Energy, PhaseCount, Power};

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "keba-p30";

/// Slow data is read every this many polls.
const SLOW_EVERY: u32 = 10;
const MIN: Current = Current::from_amps(6);
const MAX: Current = Current::from_amps(63);

/// The KEBA P30 driver.
#[derive(Debug)]
pub struct KebaP30<M> {
    m: M,
    /// The phases the point is connected with (configuration).
    wiring: PhaseCount,
    cache: WriteCache,
    enable: Enable,
    polls: u32,
    slow: (Option<Energy>, Option<String>, Option<Energy>),
    charging: bool,
    connected: bool,
    heartbeat: Option<(u16, Duration)>,
    phase: PhaseSwitch,
}

/// What the driver knows of the box's phase switching.
#[derive(Debug, Clone, Copy, Default)]
struct PhaseSwitch {
    /// 1550/1552 exist on this firmware.
    registers: bool,
    /// A c-series: the source is set by 5050.
    c_series: bool,
    /// 5050 = 3 was written since the last identification.
    source_written: bool,
    /// The last source read (1550).
    source: Option<u32>,
}

/// The phase-switch source that means Modbus (1550).
const SOURCE_MODBUS: u32 = 3;

/// What 1552 says on a P30: 0 = one phase, 1 = three (evcc `keba-modbus.go:111,393`; the P40
/// counts the other way round). Anything else is no answer.
fn switched_phases(state: u32) -> Option<PhaseCount> {
    match state {
        0 => Some(PhaseCount::One),
        1 => Some(PhaseCount::Three),
        _ => None,
    }
}

/// The series digit of the product code (1016): the fourth of six digits, 1 = c-series.
fn is_c_series(product: u32) -> bool {
    (product / 100) % 10 == 1
}

impl<M: Modbus> KebaP30<M> {
    /// A driver over `m` (unit 255).
    pub fn new(m: M, settings: DriverSettings) -> Self {
        Self {
            m,
            wiring: settings.phases,
            cache: WriteCache::default(),
            enable: Enable::default(),
            polls: 0,
            slow: (None, None, None),
            charging: false,
            connected: false,
            heartbeat: None,
            phase: PhaseSwitch::default(),
        }
    }

    async fn u32(&mut self, addr: u16) -> Result<u32, DriverError> {
        let r = self.m.read_holding(addr, 2).await?;
        decode::u32_be(&r).ok_or_else(|| DriverError::Comm(format!("register {addr}")))
    }

    /// Reads 1550; `None` when the firmware lacks it.
    async fn read_source(&mut self) -> Result<Option<u32>, DriverError> {
        Ok(optional_read(&mut self.m, false, 1550, 2)
            .await?
            .and_then(|r| decode::u32_be(&r)))
    }

    /// 1552 as a phase count; `None` for a value that is none or an exception.
    async fn read_state(&mut self) -> Result<Option<PhaseCount>, DriverError> {
        Ok(optional_read(&mut self.m, false, 1552, 2)
            .await?
            .and_then(|r| decode::u32_be(&r))
            .and_then(switched_phases))
    }

    async fn set_phases(&mut self, phases: PhaseCount) -> Result<CommandOutcome, DriverError> {
        if !self.phase.registers {
            return Ok(CommandOutcome::NotPossible(
                "this firmware has no phase-switch registers (1550/1552)".into(),
            ));
        }
        let mut source = self.read_source().await?;
        if source != Some(SOURCE_MODBUS) && self.phase.c_series && !self.phase.source_written {
            // c-series: Modbus becomes the source by 5050 = 3 (once; it is a setting).
            self.phase.source_written = true;
            self.m.write_single(5050, 3).await?;
            source = self.read_source().await?;
        }
        self.phase.source = source;
        if source != Some(SOURCE_MODBUS) {
            let src = source.map_or_else(|| "missing".to_owned(), |v| v.to_string());
            return Ok(CommandOutcome::NotPossible(if self.phase.c_series {
                format!(
                    "phase-switch source (1550) is {src}, not 3 = Modbus, after writing 3 to 5050: no KeContact S10 phase switch answers"
                )
            } else {
                format!(
                    "phase-switch source (1550) is {src}, not 3 = Modbus: choose Modbus as the phase-switch control in the x-series web interface (and fit a KeContact S10)"
                )
            }));
        }
        if self.read_state().await? == Some(phases) {
            return Ok(CommandOutcome::Done);
        }
        let trigger = match phases {
            PhaseCount::One => 0,
            PhaseCount::Three => 1,
        };
        // Not cached: a trigger, not a setting; the box pauses charging for the switch.
        self.m.write_single(5052, trigger).await?;
        Ok(CommandOutcome::Done)
    }

    async fn apply_enable(&mut self) -> Result<(), DriverError> {
        let on = self.enable.effective() > Current::ZERO;
        if on {
            let ma = milliamps_u16(self.enable.effective());
            self.cache.write(&mut self.m, 5004, &[ma], false).await?;
        }
        self.cache
            .write(&mut self.m, 5014, &[u16::from(on)], false)
            .await?;
        Ok(())
    }
}

fn firmware(v: u32) -> String {
    let [a, b, c, _] = v.to_be_bytes();
    format!("{a}.{b}.{c}")
}

impl<M: Modbus> ChargePoint for KebaP30<M> {
    fn capabilities(&self) -> BTreeSet<Capability> {
        catalog_capabilities(ID)
    }

    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        self.cache.clear();
        let product = self
            .m
            .read_holding(1016, 2)
            .await
            .map_err(|e| identity_error("KEBA P30", e))?;
        let product = decode::u32_be(&product)
            .ok_or_else(|| DriverError::Comm("product type register".into()))?;
        if !(300_000..400_000).contains(&product) {
            return Err(DriverError::WrongCharger(format!(
                "product type {product} is not a KeContact P30"
            )));
        }
        // 5050 is written at most once per driver (a setting: spare the EEPROM).
        self.phase = PhaseSwitch {
            c_series: is_c_series(product),
            source_written: self.phase.source_written,
            ..PhaseSwitch::default()
        };
        self.phase.source = self.read_source().await?;
        self.phase.registers = self.phase.source.is_some();
        let serial =
            decode::u32_be(&id_read(&mut self.m, "KEBA P30", false, 1014, 2).await?).unwrap_or(0);
        let fw =
            decode::u32_be(&id_read(&mut self.m, "KEBA P30", false, 1018, 2).await?).unwrap_or(0);
        Ok(ChargerIdentity {
            serial: Some(serial.to_string()),
            firmware: Some(firmware(fw)),
            model: Some(format!("KeContact P30 ({product})")),
        })
    }

    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        let state = self.u32(1000).await?;
        let cable = self.u32(1004).await?;
        let error = self.u32(1006).await?;
        let mut ma = [0u32; 3];
        for (slot, addr) in ma.iter_mut().zip([1008, 1010, 1012]) {
            *slot = self.u32(addr).await?;
        }
        let currents = currents_ma(ma, &[u32::MAX])?;
        let power_mw = self.u32(1020).await?;
        let offered = self.u32(1100).await?;
        let connected = cable & 0b100 != 0;
        // Slow data now and then, and at once when a session starts or ends.
        if self.polls % SLOW_EVERY == 0
            || connected != self.connected
            || (state == 3) != self.charging
        {
            let total = self.u32(1036).await?;
            let rfid = self.u32(1500).await?;
            let session = self.u32(1502).await?;
            if self.phase.registers {
                self.phase.source = self.read_source().await?;
            }
            self.slow = (
                Some(Energy::from_milliwatt_hours(i64::from(total) * 100)),
                (rfid != 0).then(|| format!("{rfid:08X}")),
                Some(Energy::from_milliwatt_hours(i64::from(session) * 100)),
            );
        }
        self.polls = self.polls.wrapping_add(1);
        self.connected = connected;
        self.charging = state == 3;
        let cp_state = match state {
            0 => CpState::StartUp,
            1 if !connected => CpState::Available,
            1 | 5 if !self.enable.started => CpState::Cancelled,
            1 | 5 if self.enable.setpoint == Current::ZERO => CpState::Interrupted,
            1 => CpState::ManualStartRequired,
            2 if connected => CpState::Connected,
            2 => CpState::Available,
            3 => CpState::Charging,
            4 => CpState::Error,
            5 => CpState::Interrupted,
            _ => CpState::Illegal,
        };
        // 1552 each poll, trusted only while Modbus is the switch's source.
        let phases_switched = if self.phase.registers && self.phase.source == Some(SOURCE_MODBUS) {
            self.read_state().await?
        } else {
            None
        };
        let (energy_total, rfid, energy_session) = self.slow.clone();
        Ok(ChargerStatus {
            state: Some(cp_state),
            connected,
            charging: self.charging,
            setpoint: Some(Current::from_milliamps(
                i32::try_from(offered).unwrap_or(i32::MAX),
            )),
            currents: Some(currents),
            power: Some(Power::from_milliwatts(i64::from(power_mw))),
            energy_total,
            energy_session,
            error: (error != 0).then(|| ManufacturerError { parts: vec![error] }),
            rfid,
            phases_switched,
            phase_switch_available: Some(
                self.phase.registers
                    && (self.phase.source == Some(SOURCE_MODBUS)
                        || (self.phase.c_series && !self.phase.source_written)),
            ),
            ..ChargerStatus::default()
        })
    }

    async fn heartbeat(&mut self) -> Result<(), DriverError> {
        if let Some((timeout, _)) = self.heartbeat {
            self.m.write_single(5018, timeout).await?;
        }
        Ok(())
    }

    fn heartbeat_interval(&self) -> Option<Duration> {
        self.heartbeat.map(|(_, every)| every)
    }

    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError> {
        match command {
            ChargerCommand::SetCurrent(c) => {
                let set = match check_setpoint(c, MIN, MAX) {
                    Ok(s) => s,
                    Err(o) => return Ok(o),
                };
                self.enable.setpoint = set.unwrap_or(Current::ZERO);
                self.apply_enable().await?;
            }
            ChargerCommand::StartStop(start) => {
                if start && self.u32(1000).await? == 4 {
                    return Ok(CommandOutcome::NotPossible(
                        "the charging point is in error".into(),
                    ));
                }
                self.enable.started = start;
                self.apply_enable().await?;
            }
            ChargerCommand::SetPhases(phases) => {
                if let Err(o) = check_phase_wiring(self.wiring, phases) {
                    return Ok(o);
                }
                return self.set_phases(phases).await;
            }
            ChargerCommand::Unlock => {
                let state = self.u32(1000).await?;
                let cable = self.u32(1004).await?;
                if state == 3 {
                    return Ok(CommandOutcome::NotPossible(
                        "unlock is possible only when charging is stopped".into(),
                    ));
                }
                if cable & 0b010 == 0 {
                    return Ok(CommandOutcome::NotPossible("no locked plug".into()));
                }
                self.m.write_single(5012, 0).await?;
            }
            ChargerCommand::Failsafe { current, timeout } => {
                if current != Current::ZERO && (current < MIN || current > MAX) {
                    return Ok(CommandOutcome::OutOfRange(format!(
                        "failsafe current {current} is outside 0 or 6..63 A"
                    )));
                }
                let secs = if timeout.is_zero() {
                    0
                } else {
                    match check_timeout(timeout, 10, 600) {
                        Ok(s) => s,
                        Err(o) => return Ok(o),
                    }
                };
                let ma = milliamps_u16(current);
                let have_ma = self.u32(1600).await?;
                let have_s = self.u32(1602).await?;
                if have_ma != u32::from(ma) || have_s != u32::from(secs) {
                    self.m.write_single(5016, ma).await?;
                    self.m.write_single(5018, secs).await?;
                    // Persist once per change, never cyclically (EEPROM).
                    self.m.write_single(5020, 1).await?;
                }
                self.heartbeat =
                    (secs > 0).then(|| (secs, Duration::from_secs(u64::from(secs)) / 2));
            }
        }
        Ok(CommandOutcome::Done)
    }
}

/// The driver as the registry builds it (`super::Registered`).
pub type Driver = KebaP30<super::Transport>;

impl super::Registered for Driver {
    fn open(transport: super::Transport, _unit: u8, settings: DriverSettings) -> Self {
        Self::new(transport, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_state_and_series_digits() {
        assert_eq!(switched_phases(0), Some(PhaseCount::One));
        assert_eq!(switched_phases(1), Some(PhaseCount::Three));
        for garbage in [2, 3, 7, u32::MAX] {
            assert_eq!(switched_phases(garbage), None);
        }
        // Guide V1.02 §3.8: 304111 is a c-series, 304011 an x-series.
        assert!(is_c_series(304_111));
        assert!(!is_c_series(304_011));
    }
}
