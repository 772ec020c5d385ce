//! §1 KEBA P30: holding registers, u32 high word first, FC 03/06 only.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use std::time::Duration;

use super::{
    Bank, ILLEGAL_ADDRESS, ILLEGAL_FUNCTION, ILLEGAL_VALUE, Simulated, currents_ma, ma, one, put,
    u32w, uint,
};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};
use crate::units::Current;

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "keba-p30";

/// KEBA KeContact P30.
#[derive(Debug, Clone, Copy)]
pub struct KebaP30;

impl Simulated for KebaP30 {
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
            &u32w(if f.wrong_identity { 4_111_110 } else { 304_111 }),
        );
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
            5020 => {
                s.extra
                    .insert(5020, s.extra.get(&5020).copied().unwrap_or(0) + 1);
            }
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}
