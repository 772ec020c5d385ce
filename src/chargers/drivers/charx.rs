//! Phoenix Contact CHARX control modular (SEC-1000/3000/3050/3100/3150; LadeFoxx, Veton) over
//! Modbus TCP, port 502. A model with **optional metering**.
//!
//! Source: the CHARX SEC Modbus register table as quoted in evcc PR #23178/#23225 and used by
//! evcc `charger/phoenix-charx.go` (register constants lines 15–38; facts only). Holding and
//! input registers return the same values; the per-charging-point registers of connector N
//! are at N × 1000 + the address below (connector 1 here); all values big-endian.
//!
//! | what | register | notes |
//! | --- | --- | --- |
//! | device name / software version / number of controllers | 100 (10) / 110 (4) ASCII / 114 | global; identity: controllers ≥ 1 |
//! | meter type | 1112 | 0 or 65535: no meter (evcc phoenix-charx.go:78) |
//! | voltages / currents L1–L3 | 1232.. s32 mV / 1238.. s32 mA | only with a meter |
//! | active power / energy total | 1244 s32 mW / 1250 s64 Wh | only with a meter |
//! | EVCCID / RFID | 1265 (10) / 1275 (10) ASCII | |
//! | connection time / charging time | 1285 / 1287 u32 s | |
//! | CP status | 1299 | IEC 61851 letter 'A'..'F' in the high byte |
//! | max charging current | 1301 A, FC 16 | 6..80; 0 (outside the range) withdraws the release: pause and stop, works with release via Modbus and via OCPP |
//!
//! The charging-release register 1300 is ignored when the controller releases via OCPP, so
//! start/stop uses 1301 = 0, as evcc does (phoenix-charx.go:170–179). No failsafe, error or
//! unlock registers are known: a failsafe command is accepted and logged once.

use std::collections::BTreeSet;

use super::common::{
    DriverSettings, Enable, WriteCache, amps_u16, cannot_switch_phases, cannot_unlock,
    catalog_capabilities, no_failsafe, non_empty,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError,
};
use crate::modbus::{Modbus, decode};
use crate::units::{Current, Energy, PerPhase, Power};

/// The model's config id.
pub const ID: &str = "phoenix-charx";
const MIN: Current = Current::from_amps(6);
const MAX: Current = Current::from_amps(80);
/// Connector 1's registers.
const BASE: u16 = 1000;

/// The CHARX control modular driver (connector 1).
#[derive(Debug)]
pub struct PhoenixCharx<M> {
    m: M,
    cache: WriteCache,
    enable: Enable,
    metered: bool,
    warned: bool,
}

impl<M: Modbus> PhoenixCharx<M> {
    /// A driver over `m`.
    pub fn new(m: M, _settings: DriverSettings) -> Self {
        Self {
            m,
            cache: WriteCache::default(),
            enable: Enable::default(),
            metered: false,
            warned: false,
        }
    }

    async fn read(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, DriverError> {
        Ok(self.m.read_holding(BASE + addr, count).await?)
    }

    async fn write_setpoint(&mut self) -> Result<(), DriverError> {
        let amps = amps_u16(self.enable.effective());
        self.cache
            .write(&mut self.m, BASE + 301, &[amps], true)
            .await?;
        Ok(())
    }
}

fn i32_be(r: &[u16]) -> Option<i32> {
    decode::u32_be(r).map(|v| i32::from_be_bytes(v.to_be_bytes()))
}

impl<M: Modbus> ChargePoint for PhoenixCharx<M> {
    fn capabilities(&self) -> BTreeSet<Capability> {
        catalog_capabilities(ID)
    }

    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        self.cache.clear();
        let g = self
            .m
            .read_holding(100, 15)
            .await
            .map_err(|e| super::common::identity_error("CHARX control modular", e))?;
        let name = decode::ascii(g.get(..10).unwrap_or_default());
        let version = decode::ascii(g.get(10..14).unwrap_or_default());
        let controllers = g.get(14).copied().unwrap_or(0);
        if controllers == 0 || controllers > 16 || version.is_empty() {
            return Err(DriverError::WrongCharger(format!(
                "{controllers} charging controllers, software `{version}`: not a CHARX control modular"
            )));
        }
        let meter = self.read(112, 1).await?;
        self.metered = !matches!(meter.first(), Some(0 | 0xFFFF) | None);
        Ok(ChargerIdentity {
            serial: None,
            firmware: non_empty(version),
            model: non_empty(name),
        })
    }

    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        let st = self.read(299, 3).await?;
        let letter = char::from(st.first().map_or(0, |w| w.to_be_bytes()[0]));
        let set = st.get(2).copied().unwrap_or(0);
        let (currents, power, energy) = if self.metered {
            let m = self.read(238, 16).await?;
            let ma = |i: usize| -> Result<Current, DriverError> {
                let v = m
                    .get(i..i + 2)
                    .and_then(i32_be)
                    .ok_or_else(|| DriverError::Comm("currents".into()))?;
                if !(0..=1_000_000).contains(&v) {
                    return Err(DriverError::InvalidCurrent(format!("current of {v} mA")));
                }
                Ok(Current::from_milliamps(v))
            };
            let currents = PerPhase([ma(0)?, ma(2)?, ma(4)?]);
            let mw = m.get(6..8).and_then(i32_be).unwrap_or(0);
            let wh = decode::u64_be(m.get(12..16).unwrap_or_default())
                .and_then(|v| i64::try_from(v).ok())
                .and_then(|v| v.checked_mul(1000))
                .map(Energy::from_milliwatt_hours);
            (
                Some(currents),
                Some(Power::from_milliwatts(i64::from(mw))),
                wh,
            )
        } else {
            (None, None, None)
        };
        let ids = self.read(265, 20).await?;
        let evccid = decode::ascii(ids.get(..10).unwrap_or_default());
        let rfid = decode::ascii(ids.get(10..20).unwrap_or_default());
        let started = self.enable.started;
        let paused = started && self.enable.setpoint == Current::ZERO;
        let state = match letter {
            'A' => CpState::Available,
            'C' => CpState::Charging,
            'D' => CpState::ChargingVentilation,
            'B' if !started => CpState::Cancelled,
            'B' if paused || set == 0 => CpState::Interrupted,
            'B' => CpState::Connected,
            'E' | 'F' => CpState::Error,
            _ => CpState::Illegal,
        };
        Ok(ChargerStatus {
            state: Some(state),
            connected: matches!(letter, 'B' | 'C' | 'D'),
            charging: matches!(letter, 'C' | 'D'),
            setpoint: Some(Current::from_amps(i32::from(set))),
            currents,
            power,
            energy_total: energy,
            rfid: non_empty(rfid),
            evccid: non_empty(evccid),
            ..ChargerStatus::default()
        })
    }

    async fn heartbeat(&mut self) -> Result<(), DriverError> {
        Ok(())
    }

    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError> {
        match self.enable.take(command, MIN, MAX) {
            Some(Ok(())) => self.write_setpoint().await?,
            Some(Err(o)) => return Ok(o),
            None => {}
        }
        Ok(match command {
            ChargerCommand::SetPhases(_) => cannot_switch_phases("CHARX control modular"),
            ChargerCommand::Unlock => cannot_unlock("CHARX control modular"),
            ChargerCommand::Failsafe { current, .. } => {
                no_failsafe(current, MIN, MAX, "CHARX control modular", &mut self.warned)
            }
            ChargerCommand::SetCurrent(_) | ChargerCommand::StartStop(_) => CommandOutcome::Done,
        })
    }
}

/// The driver as the registry builds it (`super::Registered`).
pub type Driver = PhoenixCharx<super::Transport>;

impl super::Registered for Driver {
    fn open(transport: super::Transport, _unit: u8, settings: DriverSettings) -> Self {
        Self::new(transport, settings)
    }
}
