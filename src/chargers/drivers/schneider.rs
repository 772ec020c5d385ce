//! Schneider Electric EVlink Pro AC over Modbus TCP, unit 255.
//!
//! Source: Schneider Electric "EVlink Pro AC Modbus TCP" technical guide GEX1969300-04
//! (download.schneider-electric.com, GEX1969300-04.pdf), as used by evcc
//! `charger/schneider-v3.go` (register constants lines 39–56; facts only). Holding registers;
//! float32 and u64 values **low word first** (evcc reads them "LswFirst", lines 191, 203, 229).
//!
//! | what | register | notes |
//! | --- | --- | --- |
//! | EV state | 1 | 0,1,2,6 no vehicle (1 = not available); 3,4,5,7 vehicle connected; 8 charging, 9 with ventilation; 10, 11 CP faults (evcc schneider-v3.go:139–148) |
//! | firmware | 1212 / 1213 / 1214 | major / minor / build |
//! | currents L1–L3 | 2999 / 3001 / 3003 f32 A | |
//! | power L1–L3 / total | 3053 / 3055 / 3057 / 3059 f32 **kW** | |
//! | total energy | 3203 u64 Wh | |
//! | lifebit | 4000 | write 1 every 2 s (evcc); 2 = the lifebit is deactivated |
//! | setpoint | 4004 A | 0 = disabled: pause and stop, as evcc does |
//! | degraded setpoints mono / tri | 4005 / 4006 A | the current without lifebit: failsafe |
//! | session charging time / session energy | 4009 u32 s / 4012 u32 Wh | |
//! | error bit fields | 4020 / 4022 u32 | fault info |
//!
//! The time after which the box falls back to the degraded setpoint is not configurable over
//! Modbus; the driver renews the lifebit every 2 s as evcc does.

use std::collections::BTreeSet;
use std::time::Duration;

use super::common::{
    DriverSettings, Enable, WriteCache, amps_u16, cannot_switch_phases, cannot_unlock,
    catalog_capabilities, check_setpoint, identity_error,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
use crate::modbus::Modbus;
use crate::units::{Current, Energy, PerPhase, Power};

/// The model's config id.
pub const ID: &str = "schneider-evlink-pro-ac";
const MIN: Current = Current::from_amps(6);
const MAX: Current = Current::from_amps(32);
const LIFEBIT: Duration = Duration::from_secs(2);

/// The EVlink Pro AC driver.
#[derive(Debug)]
pub struct EvlinkProAc<M> {
    m: M,
    cache: WriteCache,
    enable: Enable,
    lifebit: bool,
}

impl<M: Modbus> EvlinkProAc<M> {
    /// A driver over `m`.
    pub fn new(m: M, _settings: DriverSettings) -> Self {
        Self {
            m,
            cache: WriteCache::default(),
            enable: Enable::default(),
            lifebit: true,
        }
    }

    async fn one(&mut self, addr: u16) -> Result<u16, DriverError> {
        let r = self.m.read_holding(addr, 1).await?;
        r.first()
            .copied()
            .ok_or_else(|| DriverError::Comm(format!("register {addr} missing")))
    }

    async fn write_setpoint(&mut self) -> Result<(), DriverError> {
        let amps = amps_u16(self.enable.effective());
        self.cache.write(&mut self.m, 4004, &[amps], false).await?;
        Ok(())
    }
}

/// u32 from two registers, low word first.
fn u32_lsw(r: &[u16]) -> Option<u32> {
    match r {
        [lo, hi, ..] => Some(u32::from(*hi) << 16 | u32::from(*lo)),
        _ => None,
    }
}

/// f32 from two registers, low word first.
fn f32_lsw(r: &[u16]) -> Option<f32> {
    u32_lsw(r).map(f32::from_bits)
}

/// u64 from four registers, low word first.
fn u64_lsw(r: &[u16]) -> Option<u64> {
    match r {
        [a, b, c, d, ..] => {
            Some(u64::from(*d) << 48 | u64::from(*c) << 32 | u64::from(*b) << 16 | u64::from(*a))
        }
        _ => None,
    }
}

impl<M: Modbus> ChargePoint for EvlinkProAc<M> {
    fn capabilities(&self) -> BTreeSet<Capability> {
        catalog_capabilities(ID)
    }

    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        self.cache.clear();
        let fw = self
            .m
            .read_holding(1212, 3)
            .await
            .map_err(|e| identity_error("EVlink Pro AC", e))?;
        let ev = self.one(1).await?;
        if ev > 11 || fw.iter().all(|v| *v == 0xFFFF) {
            return Err(DriverError::WrongCharger(format!(
                "EV state {ev} and firmware {fw:?} are not an EVlink Pro AC's"
            )));
        }
        let life = self.one(4000).await?;
        self.lifebit = life != 2;
        let firmware = match fw.as_slice() {
            [a, b, c] => Some(format!("{a}.{b}.{c}")),
            _ => None,
        };
        Ok(ChargerIdentity {
            serial: None,
            firmware,
            model: Some("EVlink Pro AC".into()),
        })
    }

    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        let ev = self.one(1).await?;
        let c = self.m.read_holding(2999, 6).await?;
        let mut amps = [Current::ZERO; 3];
        for (k, slot) in amps.iter_mut().enumerate() {
            let v = c
                .get(2 * k..2 * k + 2)
                .and_then(f32_lsw)
                .ok_or_else(|| DriverError::Comm("currents".into()))?;
            if !v.is_finite() || v < 0.0 {
                return Err(DriverError::InvalidCurrent(format!("current reads {v}")));
            }
            *slot = Current::from_amps_f64(f64::from(v))
                .map_err(|e| DriverError::InvalidCurrent(e.to_string()))?;
        }
        let p = self.m.read_holding(3053, 8).await?;
        let kw = |i: usize| {
            p.get(i..i + 2)
                .and_then(f32_lsw)
                .and_then(|v| Power::from_watts_f64(f64::from(v) * 1000.0).ok())
        };
        let power_phases = match (kw(0), kw(2), kw(4)) {
            (Some(a), Some(b), Some(c)) => Some(PerPhase([a, b, c])),
            _ => None,
        };
        let e = self.m.read_holding(3203, 4).await?;
        let energy = u64_lsw(&e)
            .and_then(|wh| i64::try_from(wh).ok())
            .and_then(|wh| wh.checked_mul(1000))
            .map(Energy::from_milliwatt_hours);
        let s = self.m.read_holding(4012, 2).await?;
        let session = u32_lsw(&s).map(|wh| Energy::from_milliwatt_hours(i64::from(wh) * 1000));
        let errs = self.m.read_holding(4020, 4).await?;
        let errors: Vec<u32> = [errs.get(..2), errs.get(2..4)]
            .into_iter()
            .map(|w| w.and_then(u32_lsw).unwrap_or(0))
            .filter(|e| *e != 0 && *e != u32::MAX)
            .collect();
        let set = self.one(4004).await?;
        let connected = matches!(ev, 3 | 4 | 5 | 7 | 8 | 9);
        let charging = matches!(ev, 8 | 9);
        let started = self.enable.started;
        let state = if !errors.is_empty() || matches!(ev, 10 | 11) {
            CpState::Error
        } else {
            match ev {
                1 => CpState::NotAvailable,
                0 | 2 | 6 => CpState::Available,
                8 => CpState::Charging,
                9 => CpState::ChargingVentilation,
                3 | 4 | 5 | 7 if !started => CpState::Cancelled,
                3 | 4 | 5 | 7 if set == 0 => CpState::Interrupted,
                3 | 4 | 5 | 7 => CpState::Connected,
                _ => CpState::Illegal,
            }
        };
        Ok(ChargerStatus {
            state: Some(state),
            connected,
            charging,
            setpoint: Some(Current::from_amps(i32::from(set))),
            currents: Some(PerPhase(amps)),
            power: kw(6),
            power_phases,
            energy_total: energy,
            energy_session: session,
            error: (!errors.is_empty() || matches!(ev, 10 | 11)).then(|| ManufacturerError {
                parts: if errors.is_empty() {
                    vec![u32::from(ev)]
                } else {
                    errors
                },
            }),
            ..ChargerStatus::default()
        })
    }

    async fn heartbeat(&mut self) -> Result<(), DriverError> {
        if self.lifebit {
            self.m.write_single(4000, 1).await?;
        }
        Ok(())
    }

    fn heartbeat_interval(&self) -> Option<Duration> {
        self.lifebit.then_some(LIFEBIT)
    }

    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError> {
        match self.enable.take(command, MIN, MAX) {
            Some(Ok(())) => self.write_setpoint().await?,
            Some(Err(o)) => return Ok(o),
            None => {}
        }
        match command {
            ChargerCommand::SetCurrent(_) | ChargerCommand::StartStop(_) => {}
            ChargerCommand::SetPhases(_) => return Ok(cannot_switch_phases("EVlink Pro AC")),
            ChargerCommand::Unlock => {
                return Ok(cannot_unlock("EVlink Pro AC"));
            }
            ChargerCommand::Failsafe { current, .. } => {
                let amps = match check_setpoint(current, MIN, MAX) {
                    Ok(s) => s.map_or(0, amps_u16),
                    Err(o) => return Ok(o),
                };
                let back = self.m.read_holding(4005, 2).await?;
                if let [mono, tri] = back.as_slice() {
                    self.cache.known(4005, &[*mono]);
                    self.cache.known(4006, &[*tri]);
                }
                self.cache.write(&mut self.m, 4005, &[amps], false).await?;
                self.cache.write(&mut self.m, 4006, &[amps], false).await?;
            }
        }
        Ok(CommandOutcome::Done)
    }
}

/// The driver as the registry builds it (`super::Registered`).
pub type Driver = EvlinkProAc<super::Transport>;

impl super::Registered for Driver {
    fn open(transport: super::Transport, _unit: u8, settings: DriverSettings) -> Self {
        Self::new(transport, settings)
    }
}
