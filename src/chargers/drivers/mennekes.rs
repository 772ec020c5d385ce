//! MENNEKES AMTRON Compact 2.0s (also AMTRON 4You 300, Kostal Enector) over Modbus RTU,
//! 57600 Bd 8N2, address 50 by default.
//!
//! Source: the register list as used by evcc `charger/mennekes-compact.go` and nymea
//! `mennekes/amtron-compact20-registers.json` (facts only; no manufacturer document was found).
//! Register map: `docs/register-maps.md` §10a.
//!
//! | what | register | notes |
//! | --- | --- | --- |
//! | firmware / serial | 0x0001 (8) / 0x0013 (8) ASCII | identity |
//! | EVSE state | 0x0100 | 0 not initialised 1 idle 2 EV connected 3 preconditions valid, not charging 4 ready 5 charging 6 error 7 service |
//! | charging current (EM) | 0x0302 f32 A | setpoint; FC 16 |
//! | max current EVSE | 0x0306 f32 A | setpoint range |
//! | currents L1–L3 | 0x0500 f32 A ×3 | |
//! | power | 0x0512 f32 W | |
//! | session energy | 0x0B02 f32 kWh | unit inferred from the total (uncertain) |
//! | heartbeat | 0x0D00 | write 0x55AA every ≤ 5 s |
//! | charging release | 0x0D05 | 1 allowed, 0 not: start/stop |
//! | energy total | 0x1000 f32 kWh | |
//! | phase options hardware | 0x030C | 2 = switchable |
//! | requested / switched phases | 0x0D04 / 0x0E02 | 0 = all (3p), 1 = single |
//!
//! 1-/3-phase switching: evcc offers it when 0x030C reads 2 (`charger/mennekes-compact.go:107–110`)
//! and writes 0x0D04 only with the charging release withdrawn (:273–284 with
//! `charger/helper.go:94–114`: release 0, write, release 1); nymea names 0x0E02 "switched
//! phases" with the same values as 0x0D04 (`amtron-compact20-registers.json`). The driver
//! switches while the point is stopped, or paused at 0 A (then it withdraws the release for
//! the write and gives it back, like evcc); while current is offered it answers
//! `NotPossible`: pause first.
//!
//! Field behaviour (`docs/chargers.md`, MENNEKES): state 6 (error) stays until the energy
//! manager resets it — 0.0 A to 0x0302, then 1 to 0x0D05 (evcc mennekes-compact.go:146–154);
//! the driver does so, restores its setpoint and release and reads the state again.
//! 0x050C–0x0511 are not in the map: currents (0x0500) and power (0x0512) are read apart.
//!
//! There is no failsafe current register: without heartbeat the box stops charging, so a
//! failsafe of 0 A is what it does anyway and any other current is `NotPossible`.

use std::collections::BTreeSet;
use std::time::Duration;

use super::common::{
    DriverSettings, WriteCache, cannot_unlock, catalog_capabilities, check_phase_wiring,
    check_setpoint, currents_f32, f32_at, id_read, non_empty, optional_read, reg,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
use crate::modbus::{Modbus, decode};
use crate::units::{Current, Energy, PhaseCount, Power};

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "mennekes-amtron-compact";

const MIN: Current = Current::from_amps(6);
const HEARTBEAT: Duration = Duration::from_secs(4);
const HEARTBEAT_VALUE: u16 = 0x55AA;

/// The AMTRON Compact 2.0s driver.
#[derive(Debug)]
pub struct AmtronCompact<M> {
    m: M,
    /// The phases the point is connected with (configuration).
    wiring: PhaseCount,
    cache: WriteCache,
    max: Current,
    released: bool,
    started: bool,
    setpoint: [u16; 2],
    /// 0x030C as read at identification (2 = switchable); `None` if the register is missing.
    phase_options: Option<u16>,
}

impl<M: Modbus> AmtronCompact<M> {
    /// A driver over `m` (an RS485 device).
    pub fn new(m: M, settings: DriverSettings) -> Self {
        Self {
            m,
            wiring: settings.phases,
            cache: WriteCache::default(),
            max: Current::from_amps(16),
            released: true,
            started: true,
            setpoint: f32_words(6.0),
            phase_options: None,
        }
    }

    fn switchable(&self) -> bool {
        self.phase_options == Some(2)
    }

    async fn set_phases(&mut self, phases: PhaseCount) -> Result<CommandOutcome, DriverError> {
        if !self.switchable() {
            let v = self
                .phase_options
                .map_or_else(|| "missing".to_owned(), |v| v.to_string());
            return Ok(CommandOutcome::NotPossible(format!(
                "phase options hardware (0x030C) is {v}, not 2: this unit cannot switch phases"
            )));
        }
        let now = self.m.read_holding(0x0E02, 1).await?;
        if switched_phases(reg(&now, 0x0E02, 0x0E02)?) == Some(phases) {
            return Ok(CommandOutcome::Done);
        }
        let r = self.m.read_holding(0x0D05, 1).await?;
        let released = reg(&r, 0x0D05, 0x0D05)? == 1;
        let offered = decode::f32_be(&self.setpoint).unwrap_or(0.0);
        if released && offered != 0.0 {
            return Ok(CommandOutcome::NotPossible(format!(
                "charging is released (0x0D05 = 1) with {offered} A offered: the AMTRON Compact switches phases only without the release; pause the point (0 A) first"
            )));
        }
        let request = match phases {
            PhaseCount::One => 1,
            PhaseCount::Three => 0,
        };
        if released {
            self.m.write_single(0x0D05, 0).await?;
        }
        self.m.write_single(0x0D04, request).await?;
        if released {
            self.m.write_single(0x0D05, 1).await?;
        }
        self.cache.known(0x0D04, &[request]);
        Ok(CommandOutcome::Done)
    }

    /// Leaves state 6: 0 A, release, then the driver's own setpoint and release again.
    async fn recover(&mut self) -> Result<(), DriverError> {
        self.m.write_multiple(0x0302, &f32_words(0.0)).await?;
        self.m.write_single(0x0D05, 1).await?;
        let words = self.setpoint;
        self.m.write_multiple(0x0302, &words).await?;
        self.cache.known(0x0302, &words);
        if !self.started {
            self.m.write_single(0x0D05, 0).await?;
        }
        self.cache.known(0x0D05, &[u16::from(self.started)]);
        Ok(())
    }
}

fn f32_words(v: f32) -> [u16; 2] {
    let [a, b, c, d] = v.to_bits().to_be_bytes();
    [u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])]
}

/// What 0x0E02 (and 0x0D04) say: 0 = all phases, 1 = a single one; anything else is none.
fn switched_phases(v: u16) -> Option<PhaseCount> {
    match v {
        0 => Some(PhaseCount::Three),
        1 => Some(PhaseCount::One),
        _ => None,
    }
}

fn kwh(v: f32) -> Option<Energy> {
    Energy::from_watt_hours_f64(f64::from(v) * 1000.0).ok()
}

impl<M: Modbus> ChargePoint for AmtronCompact<M> {
    fn capabilities(&self) -> BTreeSet<Capability> {
        catalog_capabilities(ID)
    }

    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        self.cache.clear();
        let model = "MENNEKES AMTRON Compact";
        let fw = id_read(&mut self.m, model, false, 0x0001, 8).await?;
        let serial = id_read(&mut self.m, model, false, 0x0013, 8).await?;
        let max = id_read(&mut self.m, model, false, 0x0306, 2).await?;
        let max = decode::f32_be(&max).unwrap_or(f32::NAN);
        if !max.is_finite() || !(6.0..=32.0).contains(&max) {
            return Err(DriverError::WrongCharger(format!(
                "maximum current {max} A is not an AMTRON Compact's"
            )));
        }
        self.max = Current::from_amps_f64(f64::from(max)).unwrap_or(self.max);
        self.phase_options = match optional_read(&mut self.m, false, 0x030C, 1).await? {
            Some(r) => Some(reg(&r, 0x030C, 0x030C)?),
            None => None,
        };
        let serial = decode::ascii(&serial);
        if serial.is_empty() {
            return Err(DriverError::WrongCharger("no serial number".into()));
        }
        Ok(ChargerIdentity {
            serial: Some(serial),
            firmware: non_empty(decode::ascii(&fw)),
            model: Some("AMTRON Compact 2.0s".into()),
        })
    }

    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        let s = self.m.read_holding(0x0100, 1).await?;
        let mut state = reg(&s, 0x0100, 0x0100)?;
        if state == 6 {
            self.recover().await?;
            let s = self.m.read_holding(0x0100, 1).await?;
            state = reg(&s, 0x0100, 0x0100)?;
        }
        let set = self.m.read_holding(0x0302, 2).await?;
        let setpoint = decode::f32_be(&set).unwrap_or(f32::NAN);
        let m = self.m.read_holding(0x0500, 6).await?;
        let currents = currents_f32([
            f32_at(&m, 0x0500, 0x0500)?,
            f32_at(&m, 0x0500, 0x0502)?,
            f32_at(&m, 0x0500, 0x0504)?,
        ])?;
        let p = self.m.read_holding(0x0512, 2).await?;
        let power = Power::from_watts_f64(f64::from(f32_at(&p, 0x0512, 0x0512)?)).ok();
        let session = self.m.read_holding(0x0B02, 2).await?;
        let total = self.m.read_holding(0x1000, 2).await?;
        let r = self.m.read_holding(0x0D05, 1).await?;
        self.released = reg(&r, 0x0D05, 0x0D05)? == 1;
        let phases_switched = if self.switchable() {
            match optional_read(&mut self.m, false, 0x0E02, 1).await? {
                Some(p) => switched_phases(reg(&p, 0x0E02, 0x0E02)?),
                None => None,
            }
        } else {
            None
        };
        let connected = (2..=5).contains(&state);
        let charging = state == 5;
        let cp_state = match state {
            0 => CpState::StartUp,
            1 => CpState::Available,
            2..=4 if !self.released => CpState::Cancelled,
            2..=4 if setpoint == 0.0 => CpState::Interrupted,
            2..=4 => CpState::Connected,
            5 => CpState::Charging,
            6 => CpState::Error,
            7 => CpState::NotAvailable,
            _ => CpState::Illegal,
        };
        Ok(ChargerStatus {
            state: Some(cp_state),
            connected,
            charging,
            setpoint: Current::from_amps_f64(f64::from(setpoint)).ok(),
            currents: Some(currents),
            power,
            energy_total: decode::f32_be(&total).and_then(kwh),
            energy_session: decode::f32_be(&session).and_then(kwh),
            error: (state == 6).then(|| ManufacturerError {
                parts: vec![u32::from(state)],
            }),
            phases_switched,
            phase_switch_available: Some(self.switchable()),
            ..ChargerStatus::default()
        })
    }

    async fn heartbeat(&mut self) -> Result<(), DriverError> {
        self.m.write_single(0x0D00, HEARTBEAT_VALUE).await?;
        Ok(())
    }

    fn heartbeat_interval(&self) -> Option<Duration> {
        Some(HEARTBEAT)
    }

    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError> {
        match command {
            ChargerCommand::SetCurrent(c) => {
                let amps = match check_setpoint(c, MIN, self.max) {
                    Ok(s) => s.unwrap_or(Current::ZERO),
                    Err(o) => return Ok(o),
                };
                #[allow(clippy::cast_possible_truncation, reason = "amperes fit an f32")]
                let words = f32_words(amps.as_amps_f64() as f32);
                self.setpoint = words;
                self.cache.write(&mut self.m, 0x0302, &words, true).await?;
            }
            ChargerCommand::StartStop(start) => {
                self.started = start;
                self.cache
                    .write(&mut self.m, 0x0D05, &[u16::from(start)], false)
                    .await?;
            }
            ChargerCommand::Unlock => {
                return Ok(cannot_unlock("AMTRON Compact"));
            }
            ChargerCommand::SetPhases(phases) => {
                if let Err(o) = check_phase_wiring(self.wiring, phases) {
                    return Ok(o);
                }
                return self.set_phases(phases).await;
            }
            ChargerCommand::Failsafe { current, .. } => {
                self.heartbeat().await?;
                if current != Current::ZERO {
                    return Ok(CommandOutcome::NotPossible(
                        "the AMTRON Compact has no failsafe current: it stops charging when the heartbeat stops"
                            .into(),
                    ));
                }
            }
        }
        Ok(CommandOutcome::Done)
    }
}

/// The driver as the registry builds it (`super::Registered`).
pub type Driver = AmtronCompact<super::Transport>;

impl super::Registered for Driver {
    fn open(transport: super::Transport, _unit: u8, settings: DriverSettings) -> Self {
        Self::new(transport, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switched_phases_zero_is_all_one_is_single() {
        assert_eq!(switched_phases(0), Some(PhaseCount::Three));
        assert_eq!(switched_phases(1), Some(PhaseCount::One));
        assert_eq!(switched_phases(3), None);
        assert_eq!(switched_phases(0xFFFF), None);
    }
}
