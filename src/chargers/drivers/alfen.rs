//! Alfen Eve (NG9xx platform) with the "Active load balancing" Modbus slave, over Modbus TCP.
//!
//! Source: Alfen "Implementation of Modbus Slave TCP/IP for Alfen NG9xx platform" v2.3
//! (2020-10-30, firmware 4.10; wire addresses, big-endian); cross-checked against evcc
//! `charger/alfen.go` (facts only). Register map: `docs/register-maps.md`
//! §4.
//!
//! Two unit ids over one connection (Alfen allows two masters only): 200 = station, the
//! configured unit (1 or 2) = socket.
//!
//! | what | unit | register | notes |
//! | --- | --- | --- | --- |
//! | name / manufacturer / firmware / platform / serial | 200 | 100 (17) / 117 (5) / 123 (17) / 140 (17) / 157 (11) | identity: manufacturer "Alfen NV" |
//! | board temperature | 200 | 1102 f32 °C | |
//! | meter state | socket | 300 | bit 0x08 = meter error |
//! | currents L1–L3 | socket | 320 / 322 / 324 f32 A | NaN = invalid |
//! | power L1–L3 / sum | socket | 338 / 340 / 342 / 344 f32 W | |
//! | energy delivered sum | socket | 374 f64 Wh | |
//! | availability / mode 3 state | socket | 1200 (1 operative) / 1201 (5) "A".."F" | |
//! | applied max current | socket | 1206 f32 A | |
//! | setpoint | socket | 1210 f32 A, FC 16 | 0 pauses; rewritten as heartbeat within the validity time |
//! | safe current | socket | 1212 f32 A | read-only (set in ACE Service Installer) |
//! | charge using 1 or 3 phases | socket | 1215 | 1 or 3; FC 06 |
//!
//! 1-/3-phase switching (1215) needs "Allow 1- and 3-phased charging" in the ACE Service
//! Installer and a three-phase installation: evcc offers it only when L2 and L3 show a voltage
//! (`charger/alfen.go:96–107`) and writes the phase count itself (:259–263). The driver
//! reads 1215 back after writing: a box that did not take it gives `NotPossible`.
//! No session energy, RFID or unlock. Start/stop is a 0 A setpoint.

use std::collections::BTreeSet;
use std::time::Duration;

use super::common::{
    DriverSettings, Enable, WriteCache, cannot_unlock, catalog_capabilities, check_phase_wiring,
    check_setpoint, currents_f32, f32_at, identity_error, non_empty, reg, regs,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
use crate::modbus::{Modbus, ModbusError, decode};
use crate::units::{Current, Energy, PerPhase, PhaseCount, Power, Temperature};

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "alfen-eve";

const MIN: Current = Current::from_amps(6);
const STATION: u8 = 200;
/// evcc rewrites the setpoint every 25 s; the default validity time is 60 s.
const HEARTBEAT: Duration = Duration::from_secs(25);

/// The Alfen Eve driver.
#[derive(Debug)]
pub struct AlfenEve<M> {
    m: M,
    socket: u8,
    settings: DriverSettings,
    cache: WriteCache,
    enable: Enable,
    max: Current,
}

impl<M: Modbus> AlfenEve<M> {
    /// A driver over `m`, whose unit id is the socket (1 or 2).
    pub fn new(m: M, socket: u8, settings: DriverSettings) -> Self {
        Self {
            m,
            socket,
            settings,
            cache: WriteCache::default(),
            enable: Enable::default(),
            max: Current::from_amps(32),
        }
    }

    async fn station(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        if !self.m.set_unit(STATION) {
            return Err(ModbusError::Malformed(
                "the transport cannot address the Alfen station unit".into(),
            ));
        }
        let r = self.m.read_holding(addr, count).await;
        self.m.set_unit(self.socket);
        r
    }

    async fn set_phases(&mut self, phases: PhaseCount) -> Result<CommandOutcome, DriverError> {
        let v = self.m.read_holding(306, 6).await?;
        let volts = [
            f32_at(&v, 306, 306)?,
            f32_at(&v, 306, 308)?,
            f32_at(&v, 306, 310)?,
        ];
        if !three_phase_installation(volts) {
            return Ok(CommandOutcome::NotPossible(
                "a 1-phase installation (no voltage on L2 and L3): nothing to switch".into(),
            ));
        }
        let now = self.m.read_holding(1215, 1).await?;
        if PhaseCount::from_count(u32::from(reg(&now, 1215, 1215)?)) == Some(phases) {
            return Ok(CommandOutcome::Done);
        }
        let want = u16::from(phases.count());
        match self.m.write_single(1215, want).await {
            Ok(()) => {}
            Err(ModbusError::Exception(code)) => {
                return Ok(CommandOutcome::NotPossible(format!(
                    "the box refused 1215 = {want} (exception {code}): is \"Allow 1- and 3-phased charging\" ticked in ACE?"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let back = self.m.read_holding(1215, 1).await?;
        let back = reg(&back, 1215, 1215)?;
        if back != want {
            return Ok(CommandOutcome::NotPossible(format!(
                "1215 reads {back} after writing {want}: is \"Allow 1- and 3-phased charging\" ticked in ACE?"
            )));
        }
        Ok(CommandOutcome::Done)
    }

    async fn write_setpoint(&mut self, force: bool) -> Result<(), DriverError> {
        let amps = self.enable.effective().as_amps_f64();
        #[allow(clippy::cast_possible_truncation, reason = "amperes fit an f32")]
        let bits = (amps as f32).to_bits();
        let [a, b, c, d] = bits.to_be_bytes();
        let words = [u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])];
        if force {
            self.m.write_multiple(1210, &words).await?;
            self.cache.known(1210, &words);
        } else {
            self.cache.write(&mut self.m, 1210, &words, true).await?;
        }
        Ok(())
    }
}

impl<M: Modbus> ChargePoint for AlfenEve<M> {
    fn capabilities(&self) -> BTreeSet<Capability> {
        catalog_capabilities(ID)
    }

    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        self.cache.clear();
        let b = self
            .station(100, 68)
            .await
            .map_err(|e| identity_error("Alfen station", e))?;
        let manufacturer = decode::ascii(regs(&b, 100, 117, 5)?);
        if !manufacturer.to_ascii_lowercase().contains("alfen") {
            return Err(DriverError::WrongCharger(format!(
                "manufacturer `{manufacturer}` is not Alfen"
            )));
        }
        let max = self
            .station(1100, 2)
            .await
            .map_err(|e| identity_error("Alfen station", e))?;
        let max = decode::f32_be(&max).unwrap_or(32.0);
        if max.is_finite() && (6.0..=80.0).contains(&max) {
            self.max = Current::from_amps_f64(f64::from(max)).unwrap_or(self.max);
        }
        // Probe the socket unit too: a station without the licence answers exceptions there.
        self.m
            .read_holding(1200, 1)
            .await
            .map_err(|e| identity_error("Alfen socket", e))?;
        Ok(ChargerIdentity {
            serial: non_empty(decode::ascii(regs(&b, 100, 157, 11)?)),
            firmware: non_empty(decode::ascii(regs(&b, 100, 123, 17)?)),
            model: non_empty(decode::ascii(regs(&b, 100, 140, 17)?)),
        })
    }

    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        let m = self.m.read_holding(300, 78).await?;
        let meter_state = reg(&m, 300, 300)?;
        let currents = currents_f32(single_phase_nan([
            f32_at(&m, 300, 320)?,
            f32_at(&m, 300, 322)?,
            f32_at(&m, 300, 324)?,
        ]))?;
        // On a 1-phase installation L2 and L3 read NaN (power as the currents).
        let watts = |v: f32| {
            if v.is_nan() {
                Some(Power::ZERO)
            } else {
                Power::from_watts_f64(f64::from(v)).ok()
            }
        };
        let power_phases = match (
            watts(f32_at(&m, 300, 338)?),
            watts(f32_at(&m, 300, 340)?),
            watts(f32_at(&m, 300, 342)?),
        ) {
            (Some(a), Some(b), Some(c)) => Some(PerPhase([a, b, c])),
            _ => None,
        };
        let power = watts(f32_at(&m, 300, 344)?);
        let three_phase = three_phase_installation([
            f32_at(&m, 300, 306)?,
            f32_at(&m, 300, 308)?,
            f32_at(&m, 300, 310)?,
        ]);
        let energy_at = |a: u16| -> Result<Option<Energy>, DriverError> {
            Ok(decode::f64_be(regs(&m, 300, a, 4)?)
                .and_then(|wh| Energy::from_watt_hours_f64(wh).ok()))
        };
        let energy = energy_at(374)?;
        let energy_phases = match (energy_at(362)?, energy_at(366)?, energy_at(370)?) {
            (Some(a), Some(b), Some(c)) => Some(PerPhase([a, b, c])),
            _ => None,
        };
        let s = self.m.read_holding(1200, 16).await?;
        let operative = reg(&s, 1200, 1200)? == 1;
        let mode3 = decode::ascii(regs(&s, 1200, 1201, 5)?);
        let setpoint = f32_at(&s, 1200, 1210)?;
        let phases_switched = PhaseCount::from_count(u32::from(reg(&s, 1200, 1215)?));
        let t = self.station(1102, 2).await?;
        let temperature =
            decode::f32_be(&t).and_then(|v| Temperature::from_celsius_f64(f64::from(v)).ok());
        // Mode-3 state E (no pilot: no vehicle, or the box waking up) is state A, as evcc
        // takes it; only F is the box's error.
        let connected = !matches!(mode3.as_str(), "A" | "E" | "");
        let charging = mode3 == "C2" || mode3 == "D2";
        let faulted = mode3 == "F";
        let state = if faulted || meter_state & 0x08 != 0 {
            CpState::Error
        } else if !operative {
            CpState::NotAvailable
        } else {
            match mode3.as_str() {
                "A" | "E" => CpState::Available,
                "C2" => CpState::Charging,
                "D2" => CpState::ChargingVentilation,
                "B1" | "B2" | "C1" | "D1" if !self.enable.started => CpState::Cancelled,
                "B1" | "C1" | "D1" if setpoint == 0.0 => CpState::Interrupted,
                "B1" | "B2" | "C1" | "D1" => CpState::Connected,
                _ => CpState::Illegal,
            }
        };
        let error = (faulted || meter_state & 0x0C != 0).then(|| ManufacturerError {
            parts: vec![
                u32::from(mode3.bytes().next().unwrap_or(0)),
                u32::from(meter_state),
            ],
        });
        Ok(ChargerStatus {
            state: Some(state),
            connected,
            charging,
            setpoint: Current::from_amps_f64(f64::from(setpoint)).ok(),
            currents: Some(currents),
            power,
            power_phases,
            energy_total: energy,
            energy_phases,
            temperature,
            temperature_warning: temperature.map(|t| t >= self.settings.temperature_warning),
            error,
            phases_switched,
            phase_switch_available: Some(three_phase),
            ..ChargerStatus::default()
        })
    }

    async fn heartbeat(&mut self) -> Result<(), DriverError> {
        self.write_setpoint(true).await
    }

    fn heartbeat_interval(&self) -> Option<Duration> {
        Some(HEARTBEAT)
    }

    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError> {
        match command {
            ChargerCommand::SetCurrent(c) => {
                let set = match check_setpoint(c, MIN, self.max) {
                    Ok(s) => s.unwrap_or(Current::ZERO),
                    Err(o) => return Ok(o),
                };
                self.enable.setpoint = set;
                self.write_setpoint(false).await?;
            }
            ChargerCommand::StartStop(start) => {
                self.enable.started = start;
                self.write_setpoint(false).await?;
            }
            ChargerCommand::Unlock => {
                return Ok(cannot_unlock("Alfen Eve"));
            }
            ChargerCommand::SetPhases(phases) => {
                if let Err(o) = check_phase_wiring(self.settings.phases, phases) {
                    return Ok(o);
                }
                return self.set_phases(phases).await;
            }
            ChargerCommand::Failsafe { current, .. } => {
                // The safe current is set in the ACE Service Installer; it can only be checked.
                let r = self.m.read_holding(1212, 2).await?;
                let safe = decode::f32_be(&r)
                    .and_then(|v| Current::from_amps_f64(f64::from(v)).ok())
                    .unwrap_or(Current::ZERO);
                if safe.whole_amps_floor() != current.whole_amps_floor() {
                    return Ok(CommandOutcome::NotPossible(format!(
                        "the safe current is {safe} (set in ACE); it cannot be written over Modbus"
                    )));
                }
            }
        }
        Ok(CommandOutcome::Done)
    }
}

/// The three currents of a 1-phase installation: NaN on L2 and L3 is "not connected" and
/// reads 0 A (evcc "fix NaN values in 1p connection", #4578). NaN on L1 stays invalid.
fn single_phase_nan(values: [f32; 3]) -> [f32; 3] {
    match values {
        [l1, l2, l3] if l1.is_finite() => [l1, zero_if_nan(l2), zero_if_nan(l3)],
        other => other,
    }
}

/// Whether the phase voltages (L1, L2, L3) show a three-phase installation: L2 and L3 carry a
/// voltage (a 1-phase installation reads NaN or 0 there; evcc `alfen.go:101`).
fn three_phase_installation([_, l2, l3]: [f32; 3]) -> bool {
    l2.is_finite() && l3.is_finite() && l2 > 0.0 && l3 > 0.0
}

fn zero_if_nan(v: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v }
}

/// The driver as the registry builds it (`super::Registered`).
pub type Driver = AlfenEve<super::Transport>;

impl super::Registered for Driver {
    fn open(transport: super::Transport, unit: u8, settings: DriverSettings) -> Self {
        Self::new(transport, unit, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_on_unused_phases_is_zero_but_not_on_l1() {
        let [a, b, c] = single_phase_nan([16.0, f32::NAN, f32::NAN]);
        assert_eq!((a, b, c), (16.0, 0.0, 0.0));
        assert!(single_phase_nan([f32::NAN, 1.0, 1.0])[0].is_nan());
    }

    #[test]
    fn three_phase_installation_needs_voltage_on_l2_and_l3() {
        assert!(three_phase_installation([230.0, 231.0, 229.0]));
        assert!(!three_phase_installation([230.0, f32::NAN, f32::NAN]));
        assert!(!three_phase_installation([230.0, 0.0, 230.0]));
        assert!(!three_phase_installation([230.0, f32::INFINITY, 230.0]));
        assert!(!three_phase_installation([230.0, -5.0, 230.0]));
        // 1215 is 1 or 3; 2 or garbage is no phase count.
        assert_eq!(PhaseCount::from_count(2), None);
    }
}
