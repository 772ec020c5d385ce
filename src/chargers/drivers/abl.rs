//! ABL eMH1 / eMH2 (also SENEC Wallbox pro) over **Modbus ASCII**, RS485 38400 Bd 8E1,
//! address 1 by default. A model with **optional metering** (current sensor).
//!
//! Source: ABL's Modbus ASCII interface as used by evcc `charger/abl.go` (registers lines
//! 40–51, states 53–75; facts only) and its template `templates/definition/charger/abl.yaml`
//! (38400 Bd, 8E1). Holding registers, FC 03 reads and FC 16 writes.
//!
//! | what | register | notes |
//! | --- | --- | --- |
//! | firmware | 0x01 (2) | bytes shown as hex; bit 5 of the last byte: current sensor fitted (abl.go:116–122) |
//! | state | 0x04 | low byte: A1 waiting for EV, B1 EV asks, B2 EV may charge, C2 charging, C3/C4 reduced current, E0 outlet disabled, E1–E3 test/setup/bus idle, F1–FB errors |
//! | modify state | 0x05 | 0xA1A1 enable the outlet, 0xE0E0 disable it |
//! | current setting | 0x0F (5) | word 0x12 & 0x0FFF: duty cycle of the setting; 0x03E8 = disabled |
//! | current | 0x14 | duty cycle = A / 0.06 (16 A → 266); 0x03E8 = disabled: pause and stop |
//! | currents | 0x2E (5) | 0x32 / 0x31 / 0x30 = L1 / L2 / L3 in 0.1 A; 0x03E8 or 1 = 0 A (abl.go:227–243) |
//!
//! The box sleeps on a quiet bus and misses the first request after a pause: evcc sends every
//! read and every write twice (abl.go:127–144). The driver repeats a request that found no
//! answer once, and writes every value twice. An outlet found disabled (E0) is enabled again
//! (abl.go:159–162). No failsafe or unlock registers.

use std::collections::BTreeSet;

use super::common::{
    DriverSettings, Enable, WriteCache, cannot_switch_phases, cannot_unlock, catalog_capabilities,
    identity_error, no_failsafe,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
use crate::modbus::{Modbus, ModbusError};
use crate::units::{Current, PerPhase};

/// The model's config id.
pub const ID: &str = "abl-emh";
const MIN: Current = Current::from_amps(6);
const MAX: Current = Current::from_amps(32);
/// The duty-cycle value that disables charging.
const DISABLED: u16 = 0x03E8;

/// The ABL eMH driver.
#[derive(Debug)]
pub struct AblEmh<M> {
    m: M,
    cache: WriteCache,
    enable: Enable,
    sensor: bool,
    warned: bool,
}

/// The duty-cycle value of `c` (A / 0.06, i.e. mA / 60), rounded down: never more than asked.
fn duty(c: Current) -> u16 {
    if c == Current::ZERO {
        DISABLED
    } else {
        u16::try_from(c.milliamps().max(0) / 60).unwrap_or(DISABLED)
    }
}

impl<M: Modbus> AblEmh<M> {
    /// A driver over `m` (an RS485 device speaking Modbus ASCII).
    pub fn new(m: M, _settings: DriverSettings) -> Self {
        Self {
            m,
            cache: WriteCache::default(),
            enable: Enable::default(),
            sensor: false,
            warned: false,
        }
    }

    /// Reads, once more when the first try found no answer (the box was asleep).
    async fn read(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        match self.m.read_holding(addr, count).await {
            Err(ModbusError::NotReachable(_)) => self.m.read_holding(addr, count).await,
            r => r,
        }
    }

    /// Writes twice, as the box may miss the first (only the second must succeed).
    async fn write(&mut self, addr: u16, value: u16) -> Result<(), ModbusError> {
        let _ = self.m.write_multiple(addr, &[value]).await;
        self.m.write_multiple(addr, &[value]).await
    }

    async fn write_current(&mut self) -> Result<(), DriverError> {
        let v = duty(self.enable.effective());
        self.cache
            .write(&mut Twice(&mut self.m), 0x14, &[v], true)
            .await?;
        Ok(())
    }
}

/// A transport view that writes every value twice (the first may be missed).
struct Twice<'a, M>(&'a mut M);

impl<M: Modbus> Modbus for Twice<'_, M> {
    async fn read_holding(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        self.0.read_holding(addr, count).await
    }
    async fn read_input(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        self.0.read_input(addr, count).await
    }
    async fn write_single(&mut self, addr: u16, value: u16) -> Result<(), ModbusError> {
        let _ = self.0.write_multiple(addr, &[value]).await;
        self.0.write_multiple(addr, &[value]).await
    }
    async fn write_multiple(&mut self, addr: u16, values: &[u16]) -> Result<(), ModbusError> {
        let _ = self.0.write_multiple(addr, values).await;
        self.0.write_multiple(addr, values).await
    }
    async fn read_coils(&mut self, addr: u16, count: u16) -> Result<Vec<bool>, ModbusError> {
        self.0.read_coils(addr, count).await
    }
    async fn write_coil(&mut self, addr: u16, value: bool) -> Result<(), ModbusError> {
        self.0.write_coil(addr, value).await
    }
}

impl<M: Modbus> ChargePoint for AblEmh<M> {
    fn capabilities(&self) -> BTreeSet<Capability> {
        catalog_capabilities(ID)
    }

    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        self.cache.clear();
        let fw = self
            .read(0x01, 2)
            .await
            .map_err(|e| identity_error("ABL eMH", e))?;
        let st = self
            .read(0x04, 1)
            .await
            .map_err(|e| identity_error("ABL eMH", e))?;
        let code = st.first().map_or(0, |w| w.to_be_bytes()[1]);
        if !matches!(code >> 4, 0xA..=0xF) {
            return Err(DriverError::WrongCharger(format!(
                "state 0x{code:02X} is not an ABL eMH state"
            )));
        }
        self.sensor = fw.get(1).is_some_and(|w| w & 0x20 != 0);
        let firmware = fw
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(ChargerIdentity {
            serial: None,
            firmware: Some(firmware),
            model: Some("eMH".into()),
        })
    }

    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        let st = self.read(0x04, 1).await?;
        let mut code = st.first().map_or(0, |w| w.to_be_bytes()[1]);
        if code == 0xE0 && self.enable.started {
            // The outlet woke up disabled: enable it again and report what it shows then.
            self.write(0x05, 0xA1A1).await?;
            let st = self.read(0x04, 1).await?;
            code = st.first().map_or(0, |w| w.to_be_bytes()[1]);
        }
        let set = self.read(0x0F, 5).await?;
        let duty_now = set.get(3).map_or(DISABLED, |w| w & 0x0FFF);
        let currents = if self.sensor {
            let c = self.read(0x2E, 5).await?;
            let deci = |i: usize| {
                let v = c.get(i).copied().unwrap_or(0);
                let v = if v == DISABLED || v == 1 { 0 } else { v };
                Current::from_milliamps(i32::from(v) * 100)
            };
            Some(PerPhase([deci(4), deci(3), deci(2)]))
        } else {
            None
        };
        let started = self.enable.started;
        let state = match code {
            0xA1 => CpState::Available,
            0xC2 => CpState::Charging,
            0xC3 | 0xC4 => CpState::ChargingReduced,
            0xB1 | 0xB2 if !started => CpState::Cancelled,
            0xB1 | 0xB2 if duty_now == DISABLED => CpState::Interrupted,
            0xB1 | 0xB2 => CpState::Connected,
            0xE0..=0xE3 => CpState::NotAvailable,
            0xF1..=0xFB => CpState::Error,
            _ => CpState::Illegal,
        };
        // Shown to 0.1 A (266 × 0.06 A = 15.96 A reads 16.0 A).
        let setpoint = if duty_now == DISABLED {
            Current::ZERO
        } else {
            Current::from_milliamps((i32::from(duty_now) * 60 + 50) / 100 * 100)
        };
        Ok(ChargerStatus {
            state: Some(state),
            connected: matches!(code >> 4, 0xB | 0xC),
            charging: matches!(code, 0xC2..=0xC4),
            setpoint: Some(setpoint),
            currents,
            error: matches!(code, 0xF1..=0xFB).then(|| ManufacturerError {
                parts: vec![u32::from(code)],
            }),
            ..ChargerStatus::default()
        })
    }

    async fn heartbeat(&mut self) -> Result<(), DriverError> {
        Ok(())
    }

    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError> {
        match self.enable.take(command, MIN, MAX) {
            Some(Ok(())) => self.write_current().await?,
            Some(Err(o)) => return Ok(o),
            None => {}
        }
        Ok(match command {
            ChargerCommand::SetPhases(_) => cannot_switch_phases("ABL eMH"),
            ChargerCommand::Unlock => cannot_unlock("ABL eMH"),
            ChargerCommand::Failsafe { current, .. } => {
                no_failsafe(current, MIN, MAX, "ABL eMH", &mut self.warned)
            }
            ChargerCommand::SetCurrent(_) | ChargerCommand::StartStop(_) => CommandOutcome::Done,
        })
    }
}

/// The driver as the registry builds it (`super::Registered`).
pub type Driver = AblEmh<super::Transport>;

impl super::Registered for Driver {
    fn open(transport: super::Transport, _unit: u8, settings: DriverSettings) -> Self {
        Self::new(transport, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duty_cycle_is_amperes_over_0_06() {
        assert_eq!(duty(Current::from_amps(16)), 266);
        assert_eq!(duty(Current::from_amps(6)), 100);
        assert_eq!(duty(Current::ZERO), DISABLED);
    }
}
