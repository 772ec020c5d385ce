//! §2 ABB Terra AC: holding registers (FC 04 reads the same map), u32 high word first.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use std::time::Duration;

use super::{
    Bank, ILLEGAL_ADDRESS, ILLEGAL_FUNCTION, ILLEGAL_VALUE, Simulated, amps_u16, currents_ma, ma,
    one, put, setpoint, two, u32w, uint,
};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};
use crate::units::Current;

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "abb-terra-ac";

/// ABB Terra AC.
#[derive(Debug, Clone, Copy)]
pub struct AbbTerraAc;

impl Simulated for AbbTerraAc {
    fn keeps_alive(&self, _request: &Request) -> bool {
        true
    }

    fn check(&self, _unit: u8, request: &Request) -> Result<(), u8> {
        match request {
            // The setpoint is a u32: FC 16 only.
            Request::WriteSingle(0x4100, _) => Err(ILLEGAL_FUNCTION),
            _ => Ok(()),
        }
    }

    fn input_is_holding(&self) -> bool {
        true
    }

    fn render(&self, s: &SimState, f: &Faults, _unit: u8, b: &mut Bank) {
        let h = &mut b.holding;
        put(h, 0x4000, &[0x1234, 0x5678, 0x9ABC, 0xDEF0]);
        put(h, 0x4004, &[0x0106, 0x0500]);
        put(
            h,
            0x4006,
            &u32w(if f.wrong_identity { 0 } else { ma(s.hw_max) }),
        );
        put(h, 0x4008, &u32w(f.error_code));
        let lock = match (s.connected(), s.unlocked) {
            (false, _) => 0,
            (true, false) => 0x0111,
            (true, true) => 0x0101,
        };
        put(h, 0x400A, &u32w(lock));
        // State 5 "session stopped" stays after the vehicle left, until the next plug-in; only
        // the socket lock tells that nobody is there.
        let code: u16 = if !s.connected() {
            if s.after_session { 5 } else { 0 }
        } else if s.charging() {
            let reduced = s
                .currents()
                .iter()
                .any(|c| *c > Current::ZERO && *c < s.offered());
            4 | if reduced { 0x80 } else { 0 }
        } else if !s.started {
            5
        } else if s.offered() < Current::from_amps(6) {
            3
        } else {
            2
        };
        put(h, 0x400C, &[0, code << 8]);
        put(h, 0x400E, &u32w(ma(s.offered())));
        for (addr, v) in [0x4010, 0x4012, 0x4014].into_iter().zip(currents_ma(s, f)) {
            put(h, addr, &u32w(v));
        }
        for addr in [0x4016, 0x4018, 0x401A] {
            put(h, addr, &u32w(2300));
        }
        put(h, 0x401C, &u32w(uint(s.power_w())));
        put(h, 0x401E, &u32w(uint(s.session_wh)));
        put(
            h,
            0x4020,
            &[u16::try_from(s.failsafe_timeout.as_secs()).unwrap_or(0)],
        );
        put(h, 0x4022, &u32w(ma(s.setpoint)));
        put(h, 0x4024, &[amps_u16(s.failsafe_current)]);
    }

    fn write(&self, s: &mut SimState, addr: u16, values: &[u16]) -> Result<(), u8> {
        match addr {
            0x4100 => {
                let v = two(values)?;
                s.setpoint = setpoint(v, 1, 6, 80)?;
                if s.setpoint > s.hw_max {
                    return Err(ILLEGAL_VALUE);
                }
            }
            0x4103 => match one(values)? {
                0 => s.unlocked = true,
                1 => s.unlocked = false,
                _ => return Err(ILLEGAL_VALUE),
            },
            0x4105 => match one(values)? {
                0 => s.started = true,
                1 => s.started = false,
                _ => return Err(ILLEGAL_VALUE),
            },
            0x4106 => {
                s.failsafe_timeout = Duration::from_secs(u64::from(one(values)?));
            }
            0x4109 => {
                s.failsafe_current = setpoint(u32::from(one(values)?), 1000, 6, 80)?;
            }
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}
