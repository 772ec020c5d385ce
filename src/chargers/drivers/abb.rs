//! ABB Terra AC wallbox over Modbus TCP or RTU (same map on both).
//!
//! Source: ABB "Terra AC Charger Modbus Communication" v1.11 (library.e.abb.com,
//! ABB_Terra_AC_Charger_ModbusCommunication_v1.11.pdf), as cited chapter by chapter by OpenEMS
//! `io.openems.edge.evcs.abb.terraac`; cross-checked against evcc `charger/abb.go` (facts
//! only). Register map: `docs/register-maps.md` §2.
//!
//! | what | register | notes |
//! | --- | --- | --- |
//! | serial / firmware / max rated current | 0x4000 (4) / 0x4004 (2) / 0x4006 u32 mA | identity |
//! | error bitmask | 0x4008 u32 | bits split into fault info 1–4; 0x4000 = Modbus lost |
//! | socket lock state | 0x400A u32 | ≥ 0x0101 = vehicle connected |
//! | availability / charging state | 0x400C / high byte of 0x400D | A idle, B1, B2, C1, C2, other; bit 7 = below commanded current |
//! | current limit | 0x400E u32 mA | setpoint state |
//! | currents / voltages | 0x4010.. u32 mA / 0x4016.. u32 0.1 V | |
//! | power / session energy | 0x401C u32 W / 0x401E u32 Wh | no lifetime counter |
//! | comm timeout / fallback read-back | 0x4020 s / 0x4024 A | v1.11 |
//! | set current limit | 0x4100 FC 16, u32 mA | 0 pauses |
//! | lock/unlock / start-stop | 0x4103 (0 unlock) / 0x4105 (0 start, 1 stop) | FC 06 |
//! | comm timeout / fallback limit | 0x4106 s / 0x4109 A | reads keep the watchdog alive |

use std::collections::BTreeSet;

use super::common::{
    DriverSettings, WriteCache, cannot_switch_phases, catalog_capabilities, check_setpoint,
    check_timeout, currents_ma, identity_error, reg, regs, split_bits, u32_at,
};
use crate::catalog::Capability;
use crate::chargers::status::{
    ChargePoint, ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, CpState,
    DriverError, ManufacturerError,
};
use crate::modbus::Modbus;
use crate::units::{Current, Energy, Power};

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "abb-terra-ac";

const MIN: Current = Current::from_amps(6);

/// The ABB Terra AC driver.
#[derive(Debug)]
pub struct AbbTerraAc<M> {
    m: M,
    cache: WriteCache,
    max: Current,
    stopped: bool,
    charging: bool,
    connected: bool,
}

impl<M: Modbus> AbbTerraAc<M> {
    /// A driver over `m`.
    pub fn new(m: M, _settings: DriverSettings) -> Self {
        Self {
            m,
            cache: WriteCache::default(),
            max: Current::from_amps(32),
            stopped: false,
            charging: false,
            connected: false,
        }
    }
}

impl<M: Modbus> ChargePoint for AbbTerraAc<M> {
    fn capabilities(&self) -> BTreeSet<Capability> {
        catalog_capabilities(ID)
    }

    async fn identify(&mut self) -> Result<ChargerIdentity, DriverError> {
        self.cache.clear();
        let b = self
            .m
            .read_holding(0x4000, 8)
            .await
            .map_err(|e| identity_error("ABB Terra AC", e))?;
        let max = u32_at(&b, 0x4000, 0x4006)?;
        if !(6_000..=80_000).contains(&max) {
            return Err(DriverError::WrongCharger(format!(
                "rated current {max} mA is not a Terra AC's"
            )));
        }
        self.max = Current::from_milliamps(i32::try_from(max).unwrap_or(32_000));
        let serial = regs(&b, 0x4000, 0x4000, 4)?
            .iter()
            .fold(String::new(), |mut s, w| {
                use std::fmt::Write as _;
                let _ = write!(s, "{w:04X}");
                s
            });
        let [fw_a, fw_b] = [reg(&b, 0x4000, 0x4004)?, reg(&b, 0x4000, 0x4005)?];
        let firmware = format!("{}.{}.{}", fw_a >> 8, fw_a & 0xFF, fw_b >> 8);
        Ok(ChargerIdentity {
            serial: Some(serial),
            firmware: Some(firmware),
            model: Some("Terra AC".into()),
        })
    }

    async fn poll(&mut self) -> Result<ChargerStatus, DriverError> {
        const B: u16 = 0x4008;
        let b = self.m.read_holding(B, 24).await?;
        let error = u32_at(&b, B, 0x4008)?;
        let lock = u32_at(&b, B, 0x400A)?;
        let unavailable = reg(&b, B, 0x400C)? != 0;
        let raw = reg(&b, B, 0x400D)? >> 8;
        let limit = u32_at(&b, B, 0x400E)?;
        let currents = currents_ma(
            [
                u32_at(&b, B, 0x4010)?,
                u32_at(&b, B, 0x4012)?,
                u32_at(&b, B, 0x4014)?,
            ],
            &[u32::MAX],
        )?;
        let power = u32_at(&b, B, 0x401C)?;
        let session = u32_at(&b, B, 0x401E)?;
        let connected = lock >= 0x0101;
        let code = raw & 0x7F;
        let reduced = raw & 0x80 != 0;
        // 0x4000 "Modbus communication lost" is the gateway's own fault, not the box's.
        let box_error = error & !0x4000;
        self.connected = connected;
        self.charging = code == 4;
        let state = if box_error != 0 {
            CpState::Error
        } else if unavailable {
            CpState::NotAvailable
        } else {
            match code {
                0 => CpState::Available,
                1 => CpState::ManualStartRequired,
                4 if reduced => CpState::ChargingReduced,
                4 => CpState::Charging,
                // "Session stopped" outlives the vehicle: the socket lock tells whether one is
                // still there (evcc abb.go:130–138).
                5 if !connected => CpState::Available,
                2 | 3 | 5 if self.stopped => CpState::Cancelled,
                2 | 3 | 5 if limit == 0 => CpState::Interrupted,
                2 | 3 | 5 => CpState::Connected,
                _ => CpState::Illegal,
            }
        };
        Ok(ChargerStatus {
            state: Some(state),
            connected,
            charging: self.charging,
            setpoint: Some(Current::from_milliamps(
                i32::try_from(limit).unwrap_or(i32::MAX),
            )),
            currents: Some(currents),
            power: Some(Power::from_watts(i32::try_from(power).unwrap_or(i32::MAX))),
            energy_session: Some(Energy::from_watt_hours(
                i32::try_from(session).unwrap_or(i32::MAX),
            )),
            error: (error != 0).then(|| ManufacturerError {
                parts: split_bits(error),
            }),
            ..ChargerStatus::default()
        })
    }

    async fn heartbeat(&mut self) -> Result<(), DriverError> {
        // Any request resets the communication timeout; polls suffice.
        Ok(())
    }

    async fn command(&mut self, command: ChargerCommand) -> Result<CommandOutcome, DriverError> {
        match command {
            ChargerCommand::SetCurrent(c) => {
                let ma = match check_setpoint(c, MIN, self.max) {
                    Ok(s) => s.map_or(0, |c| u32::try_from(c.milliamps()).unwrap_or(0)),
                    Err(o) => return Ok(o),
                };
                let [a, b, c, d] = ma.to_be_bytes();
                let words = [u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])];
                self.cache.write(&mut self.m, 0x4100, &words, true).await?;
            }
            ChargerCommand::StartStop(start) => {
                // Not cached: start and stop are actions, not settings. A start after
                // re-plugging must reach the box even if the last command was a start too.
                self.m.write_single(0x4105, u16::from(!start)).await?;
                self.stopped = !start;
            }
            ChargerCommand::SetPhases(_) => return Ok(cannot_switch_phases("ABB Terra AC")),
            ChargerCommand::Unlock => {
                if self.charging {
                    return Ok(CommandOutcome::NotPossible(
                        "unlock is possible only when not charging".into(),
                    ));
                }
                // Not cached: unlocking is an action, not a setting.
                self.m.write_single(0x4103, 0).await?;
            }
            ChargerCommand::Failsafe { current, timeout } => {
                let amps = match check_setpoint(current, MIN, self.max) {
                    Ok(s) => s.map_or(0, super::common::amps_u16),
                    Err(o) => return Ok(o),
                };
                let secs = match check_timeout(timeout, 1, 3600) {
                    Ok(s) => s,
                    Err(o) => return Ok(o),
                };
                let back = self.m.read_holding(0x4020, 6).await?;
                self.cache.known(0x4106, &[reg(&back, 0x4020, 0x4020)?]);
                self.cache.known(0x4109, &[reg(&back, 0x4020, 0x4024)?]);
                self.cache
                    .write(&mut self.m, 0x4106, &[secs], false)
                    .await?;
                self.cache
                    .write(&mut self.m, 0x4109, &[amps], false)
                    .await?;
            }
        }
        Ok(CommandOutcome::Done)
    }
}

/// The driver as the registry builds it (`super::Registered`).
pub type Driver = AbbTerraAc<super::Transport>;

impl super::Registered for Driver {
    fn open(transport: super::Transport, _unit: u8, settings: DriverSettings) -> Self {
        Self::new(transport, settings)
    }
}
