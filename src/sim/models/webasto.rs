//! §7 Webasto Next: holding registers (FC 04 reads the same), big-endian.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    Bank, ILLEGAL_ADDRESS, ILLEGAL_VALUE, Simulated, amps_u16, ascii, low, ma, one, put, setpoint,
    u32w, uint, writes_to,
};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "webasto-next";

/// Webasto Next.
#[derive(Debug, Clone, Copy)]
pub struct WebastoNext;

impl Simulated for WebastoNext {
    fn holes(&self, addr: u16, n: u16, table: &BTreeMap<u16, u16>) -> bool {
        // Only the listed registers exist.
        (addr..addr.saturating_add(n)).any(|a| !table.contains_key(&a))
    }

    fn keeps_alive(&self, request: &Request) -> bool {
        writes_to(request, 6000)
    }

    fn input_is_holding(&self) -> bool {
        true
    }

    fn render(&self, s: &SimState, f: &Faults, _unit: u8, b: &mut Bank) {
        let h = &mut b.holding;
        let cp = if f.error_code != 0 {
            7
        } else if !s.connected() {
            0
        } else if s.charging() {
            3
        } else if !s.started {
            1
        } else {
            4
        };
        put(
            h,
            1000,
            &[
                cp,
                u16::from(s.charging()),
                if f.error_code != 0 { 2 } else { 1 },
            ],
        );
        put(h, 1004, &[if s.connected() { 3 } else { 0 }]);
        put(h, 1006, &[low(f.error_code)]);
        let c = if f.invalid_currents {
            [0xFFFF; 3]
        } else {
            s.currents().map(|c| low(ma(c)))
        };
        put(h, 1008, &[c[0]]);
        put(h, 1010, &[c[1]]);
        put(h, 1012, &[c[2]]);
        put(h, 1020, &u32w(uint(s.power_w())));
        let p = s.power_phases_w();
        put(h, 1024, &u32w(uint(p[0])));
        put(h, 1028, &u32w(uint(p[1])));
        put(h, 1032, &u32w(uint(p[2])));
        put(h, 1036, &u32w(uint(s.energy_wh())));
        let hw = if f.wrong_identity {
            0
        } else {
            amps_u16(s.hw_max)
        };
        put(h, 1100, &[hw]);
        put(h, 1102, &[6]);
        put(h, 1104, &[amps_u16(s.hw_max)]);
        put(h, 1106, &[32]);
        put(h, 1108, &[32]);
        put(h, 1502, &[low(uint(s.session_wh))]);
        put(h, 1508, &u32w(s.session_secs()));
        put(
            h,
            1600,
            &ascii(
                s.vehicle
                    .as_ref()
                    .and_then(|v| v.rfid.as_deref())
                    .unwrap_or(""),
                10,
            ),
        );
        put(h, 1620, &[0]);
        put(h, 2000, &[amps_u16(s.failsafe_current)]);
        put(
            h,
            2002,
            &[u16::try_from(s.failsafe_timeout.as_secs()).unwrap_or(0)],
        );
        // 5000–5006 and 6000 are write-only (nymea's register file).
    }

    fn write(&self, s: &mut SimState, addr: u16, values: &[u16]) -> Result<(), u8> {
        let v = one(values)?;
        match addr {
            2000 => s.failsafe_current = setpoint(u32::from(v), 1000, 6, 32)?,
            2002 => s.failsafe_timeout = Duration::from_secs(u64::from(v)),
            5004 => s.setpoint = setpoint(u32::from(v), 1000, 6, 32)?,
            5006 => match v {
                0 => {}
                1 => s.started = true,
                2 => s.started = false,
                _ => return Err(ILLEGAL_VALUE),
            },
            6000 => {
                if v != 1 {
                    return Err(ILLEGAL_VALUE);
                }
            }
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}
