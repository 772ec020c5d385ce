//! Phoenix Contact CHARX control modular (evcc phoenix-charx.go): holding = input, connector 1
//! at +1000, big-endian; 1301 = 0 withdraws the release.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use super::{
    Bank, ILLEGAL_ADDRESS, ILLEGAL_VALUE, Simulated, Variant, amps_u16, ascii, currents_ma, one,
    put, u32w, uint,
};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};
use crate::units::Current;

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "phoenix-charx";

impl Variant {
    /// CHARX without an energy meter configured: the meter type 1112 reads 65535 (not 0),
    /// and the meter registers are unset (0xFFFF, i.e. −1 mA, −1 mW). evcc
    /// `charger/phoenix-charx.go:78` treats 0 and 65535 alike as "no meter".
    pub const CHARX_NO_METER_65535: Self = Self("charx-no-meter-65535");

    /// CHARX whose charging release is configured "via OCPP": writes to 1300 are taken and
    /// ignored; only 1301 outside 6–80 A withdraws the release (evcc
    /// `charger/phoenix-charx.go:169–179` enables and disables through 1301 only; PR
    /// #23178/#23225).
    pub const CHARX_OCPP_RELEASE: Self = Self("charx-ocpp-release");
}

/// Phoenix Contact CHARX control modular, connector 1 (optional metering).
#[derive(Debug, Clone, Copy)]
pub struct PhoenixCharx;

impl Simulated for PhoenixCharx {
    fn variants(&self) -> &'static [Variant] {
        &[
            Variant::STANDARD,
            Variant::CHARX_NO_METER_65535,
            Variant::CHARX_OCPP_RELEASE,
        ]
    }

    fn init(&self, s: &mut SimState) {
        if s.variant == Variant::CHARX_NO_METER_65535 {
            s.meter_fitted = false;
        }
    }

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
        let unset = s.variant == Variant::CHARX_NO_METER_65535;
        put(
            h,
            1112,
            &[if unset {
                0xFFFF
            } else {
                u16::from(s.meter_fitted)
            }],
        );
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
        if unset {
            for a in 1232..1264 {
                h.insert(a, 0xFFFF);
            }
        }
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
        put(
            h,
            1300,
            &[u16::from(s.extra.get(&1300).is_none_or(|v| *v != 0))],
        );
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
            // The charging release: effective when released via Modbus, taken and ignored
            // when the box is configured "release via OCPP".
            1300 => match one(values)? {
                v @ (0 | 1) => {
                    s.extra.insert(1300, v);
                    if s.variant != Variant::CHARX_OCPP_RELEASE {
                        s.started = v == 1;
                    }
                }
                _ => return Err(ILLEGAL_VALUE),
            },
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
