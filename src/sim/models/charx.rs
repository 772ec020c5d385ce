//! Phoenix Contact CHARX control modular (evcc phoenix-charx.go): holding = input, connector 1
//! at +1000, big-endian; 1301 = 0 withdraws the release.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use super::{Bank, ILLEGAL_ADDRESS, Simulated, amps_u16, ascii, currents_ma, one, put, u32w, uint};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};
use crate::units::Current;

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "phoenix-charx";

/// Phoenix Contact CHARX control modular, connector 1 (optional metering).
#[derive(Debug, Clone, Copy)]
pub struct PhoenixCharx;

impl Simulated for PhoenixCharx {
    fn keeps_alive(&self, _request: &Request) -> bool {
        // No watchdog over Modbus.
        false
    }

    fn input_is_holding(&self) -> bool {
        true
    }

    fn render(&self, s: &SimState, f: &Faults, _unit: u8, b: &mut Bank) {
        let h = &mut b.holding;
        put(h, 100, &ascii("CHARX SEC-3100", 10));
        put(h, 110, &ascii("1.6.3", 4));
        put(h, 114, &[u16::from(!f.wrong_identity)]);
        put(h, 1112, &[u16::from(s.meter_fitted)]);
        let c = currents_ma(s, f);
        for k in 0..3u16 {
            let idx = usize::from(k);
            put(
                h,
                1232 + 2 * k,
                &s32w(if s.meter_fitted { 230_000 } else { 0 }),
            );
            let ma = c.get(idx).copied().unwrap_or(0);
            put(
                h,
                1238 + 2 * k,
                &s32w(if !s.meter_fitted {
                    0
                } else if f.invalid_currents {
                    -1
                } else {
                    i64::from(ma)
                }),
            );
        }
        #[allow(clippy::cast_possible_truncation, reason = "simulated power fits")]
        let mw = (s.power_w() * 1000.0) as i64;
        put(h, 1244, &s32w(if s.meter_fitted { mw } else { 0 }));
        let wh = u64::from(uint(s.energy_wh()));
        let w = wh.to_be_bytes();
        put(
            h,
            1250,
            &[
                u16::from_be_bytes([w[0], w[1]]),
                u16::from_be_bytes([w[2], w[3]]),
                u16::from_be_bytes([w[4], w[5]]),
                u16::from_be_bytes([w[6], w[7]]),
            ],
        );
        put(h, 1264, &[0]);
        let v = s.vehicle.as_ref();
        put(
            h,
            1265,
            &ascii(v.and_then(|v| v.evccid.as_deref()).unwrap_or(""), 10),
        );
        put(
            h,
            1275,
            &ascii(v.and_then(|v| v.rfid.as_deref()).unwrap_or(""), 10),
        );
        put(h, 1285, &u32w(s.session_secs()));
        put(h, 1287, &u32w(s.session_secs()));
        put(h, 1289, &u32w(uint(s.session_wh)));
        let letter = if f.error_code != 0 {
            b'F'
        } else if !s.connected() {
            b'A'
        } else if s.charging() {
            b'C'
        } else {
            b'B'
        };
        put(h, 1299, &[u16::from(letter) << 8]);
        put(h, 1300, &[u16::from(s.started)]);
        put(h, 1301, &[amps_u16(s.setpoint)]);
    }

    fn write(&self, s: &mut SimState, addr: u16, values: &[u16]) -> Result<(), u8> {
        match addr {
            // Outside 6..80 A withdraws the release (a pause).
            1301 => {
                let v = one(values)?;
                s.setpoint = if (6..=80).contains(&v) {
                    Current::from_amps(i32::from(v))
                } else {
                    Current::ZERO
                };
            }
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}

/// A signed value as two registers, high word first.
fn s32w(v: i64) -> [u16; 2] {
    u32w(u32::from_ne_bytes(
        i32::try_from(v).unwrap_or(i32::MAX).to_ne_bytes(),
    ))
}
