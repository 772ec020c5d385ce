//! §1 KEBA P30: holding registers, u32 high word first, FC 03/06 only.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.
//!
//! 1-/3-phase switching (KeContact S10): 1550 is the switch's source (0 none, 1 OCPP, 2 REST,
//! 3 Modbus, 4 UDP), 1552 its state (0 = 1p, 1 = 3p), 5050 sets the source on a c-series, 5052
//! triggers (0 = 1p, 1 = 3p). The c-series starts with source 0 until 5050 = 3 (assumed: the
//! factory setting is not documented); the x-series takes the source from its web interface
//! (here: 3, a test may change `extra[1550]`) and ignores 5050 (assumed). Without an S10 the
//! source stays 0, 5052 is accepted and does nothing and 1552 reads 0 (assumed: no source
//! says what such a box answers). The box stops charging for the switch and resumes after
//! the pause (`SimState::switch_phases`).

use std::time::Duration;

use super::{
    Bank, ILLEGAL_ADDRESS, ILLEGAL_FUNCTION, ILLEGAL_VALUE, Simulated, Variant, currents_ma, ma,
    one, put, u32w, uint,
};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};
use crate::units::Current;

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "keba-p30";

impl Variant {
    /// KEBA P30 x-series (product digit 4 = 0): the phase-switch source comes from the web
    /// interface (set to Modbus here), 5050 does nothing.
    pub const KEBA_X_SERIES: Self = Self("keba-x-series");

    /// KEBA P30 c-series without a KeContact S10 phase switch: the source stays 0 whatever
    /// 5050 says, 5052 does nothing.
    pub const KEBA_NO_S10: Self = Self("keba-no-s10");

    /// KEBA P30 firmware without the phase-switch registers (1550/1552/5050/5052 answer
    /// exception 2).
    pub const KEBA_NO_PHASE_REGISTERS: Self = Self("keba-no-phase-registers");
}

/// The phase-switch source register (kept in `SimState::extra`).
const SOURCE: u16 = 1550;
/// Source 3: Modbus controls the S10.
const SOURCE_MODBUS: u16 = 3;

/// KEBA KeContact P30.
#[derive(Debug, Clone, Copy)]
pub struct KebaP30;

impl Simulated for KebaP30 {
    fn variants(&self) -> &'static [Variant] {
        &[
            Variant::STANDARD,
            Variant::KEBA_X_SERIES,
            Variant::KEBA_NO_S10,
            Variant::KEBA_NO_PHASE_REGISTERS,
        ]
    }

    fn init(&self, s: &mut SimState) {
        let source = if s.variant == Variant::KEBA_X_SERIES {
            SOURCE_MODBUS
        } else {
            0
        };
        s.extra.insert(SOURCE, source);
    }

    fn keeps_alive(&self, request: &Request) -> bool {
        matches!(
            request,
            Request::WriteSingle(..) | Request::WriteMultiple(..)
        )
    }

    fn check(&self, _unit: u8, request: &Request) -> Result<(), u8> {
        match request {
            Request::ReadInput(..) | Request::WriteMultiple(..) => Err(ILLEGAL_FUNCTION),
            // KEBA reads no blocks: at most two registers at a time.
            Request::ReadHolding(_, n) if *n > 2 => Err(ILLEGAL_ADDRESS),
            _ => Ok(()),
        }
    }

    fn render(&self, s: &SimState, f: &Faults, _unit: u8, b: &mut Bank) {
        let h = &mut b.holding;
        let state = if f.error_code != 0 {
            4
        } else if !s.connected() {
            1
        } else if s.charging() {
            3
        } else if !s.started {
            5
        } else {
            2
        };
        let cable = match (s.connected(), s.unlocked) {
            (false, _) => 0,
            (true, false) => 7,
            (true, true) => 5,
        };
        put(h, 1000, &u32w(state));
        put(h, 1004, &u32w(cable));
        put(h, 1006, &u32w(f.error_code));
        for (addr, v) in [1008, 1010, 1012].into_iter().zip(currents_ma(s, f)) {
            put(h, addr, &u32w(v));
        }
        put(h, 1014, &u32w(22_334_455));
        put(
            h,
            1016,
            &u32w(if f.wrong_identity {
                4_111_110
            } else if s.variant == Variant::KEBA_X_SERIES {
                304_011
            } else {
                304_111
            }),
        );
        if s.variant != Variant::KEBA_NO_PHASE_REGISTERS {
            let source = s.extra.get(&SOURCE).copied().unwrap_or(0);
            put(h, 1550, &u32w(u32::from(source)));
            let three = s.phases >= 3 && s.variant != Variant::KEBA_NO_S10;
            put(h, 1552, &u32w(u32::from(three)));
        }
        put(h, 1018, &u32w(0x030A_2A00));
        put(h, 1020, &u32w(uint(s.power_w() * 1000.0)));
        put(h, 1036, &u32w(uint(s.energy_wh() * 10.0)));
        for (i, addr) in [1040u16, 1042, 1044].into_iter().enumerate() {
            let _ = i;
            put(h, addr, &u32w(230));
        }
        put(h, 1046, &u32w(1000));
        put(h, 1100, &u32w(ma(s.offered())));
        put(h, 1110, &u32w(ma(s.hw_max)));
        let rfid = s
            .vehicle
            .as_ref()
            .and_then(|v| v.rfid.as_deref())
            .and_then(|r| u32::from_str_radix(r.get(..8).unwrap_or(r), 16).ok())
            .unwrap_or(0);
        put(h, 1500, &u32w(rfid));
        put(h, 1502, &u32w(uint(s.session_wh * 10.0)));
        put(h, 1600, &u32w(ma(s.failsafe_current)));
        put(
            h,
            1602,
            &u32w(u32::try_from(s.failsafe_timeout.as_secs()).unwrap_or(0)),
        );
    }

    fn write(&self, s: &mut SimState, addr: u16, values: &[u16]) -> Result<(), u8> {
        let v = one(values)?;
        match addr {
            5004 => {
                if !(6000..=63000).contains(&v) {
                    return Err(ILLEGAL_VALUE);
                }
                s.setpoint = Current::from_milliamps(i32::from(v));
            }
            5010 => {}
            5012 => {
                // Unlocking works only when suspended.
                if !s.charging() {
                    s.unlocked = true;
                }
            }
            5014 => match v {
                0 | 1 => s.started = v == 1,
                _ => return Err(ILLEGAL_VALUE),
            },
            5016 => {
                if v != 0 && v < 6000 {
                    return Err(ILLEGAL_VALUE);
                }
                s.failsafe_current = Current::from_milliamps(i32::from(v));
            }
            5018 => {
                if v != 0 && !(10..=600).contains(&v) {
                    return Err(ILLEGAL_VALUE);
                }
                s.failsafe_timeout = Duration::from_secs(u64::from(v));
            }
            5050 | 5052 if s.variant == Variant::KEBA_NO_PHASE_REGISTERS => {
                return Err(ILLEGAL_ADDRESS);
            }
            5050 => {
                if v > 4 {
                    return Err(ILLEGAL_VALUE);
                }
                // Only a c-series with an S10 takes the source from here.
                if s.variant == Variant::STANDARD {
                    s.extra.insert(SOURCE, v);
                }
            }
            5052 => {
                let phases = match v {
                    0 => 1,
                    1 => 3,
                    _ => return Err(ILLEGAL_VALUE),
                };
                // The trigger counts only from the configured source, with an S10 fitted.
                if s.extra.get(&SOURCE) == Some(&SOURCE_MODBUS) && s.variant != Variant::KEBA_NO_S10
                {
                    s.switch_phases(phases);
                }
            }
            5020 => {
                s.extra
                    .insert(5020, s.extra.get(&5020).copied().unwrap_or(0) + 1);
            }
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}
