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
//!
//! State: 0 start-up, 1 not ready, 2 ready, 3 charging, 4 error, 5 interrupted (disabled or
//! over-temperature). Unlock works only when not charging. 0 A pauses by disabling (5014 = 0);
//! 5004 itself takes 6–63 A.

use std::collections::BTreeSet;
use std::time::Duration;

use super::common::{
    DriverSettings, Enable, WriteCache, catalog_capabilities, check_setpoint, check_timeout,
    currents_ma, id_read, identity_error, milliamps_u16,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
use crate::modbus::{Modbus, decode};
use crate::units::{Current, Energy, Power};

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
    cache: WriteCache,
    enable: Enable,
    polls: u32,
    slow: (Option<Energy>, Option<String>, Option<Energy>),
    charging: bool,
    connected: bool,
    heartbeat: Option<(u16, Duration)>,
}

impl<M: Modbus> KebaP30<M> {
    /// A driver over `m` (unit 255).
    pub fn new(m: M, _settings: DriverSettings) -> Self {
        Self {
            m,
            cache: WriteCache::default(),
            enable: Enable::default(),
            polls: 0,
            slow: (None, None, None),
            charging: false,
            connected: false,
            heartbeat: None,
        }
    }

    async fn u32(&mut self, addr: u16) -> Result<u32, DriverError> {
        let r = self.m.read_holding(addr, 2).await?;
        decode::u32_be(&r).ok_or_else(|| DriverError::Comm(format!("register {addr}")))
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
