//! ABL eMH1/eMH2 (evcc abl.go): Modbus ASCII, holding registers, FC 16 writes; currents in
//! 0.1 A at 0x32 (L1) / 0x31 (L2) / 0x30 (L3); duty cycle = A / 0.06, 0x03E8 = disabled.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use std::time::{Duration, Instant};

use super::{Bank, ILLEGAL_ADDRESS, ILLEGAL_VALUE, Simulated, Variant, currents_ma, low, one, put};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};
use crate::units::Current;

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "abl-emh";

impl Variant {
    /// eMH whose outlet wakes up disabled (state E0) after sleeping on a quiet bus, and stays
    /// so until 0xA1A1 is written to 0x05: evcc `charger/abl.go:159–162` ("ensure Outlet is
    /// re-enabled after wake-up").
    pub const ABL_DISABLED_AFTER_WAKE: Self = Self("abl-disabled-after-wake");

    /// eMH reading 0x03E8 (and 1) for phases that draw nothing: evcc `charger/abl.go:236–238`
    /// takes both as 0 A (0x03E8 would otherwise be 100 A).
    pub const ABL_IDLE_PHASES_1000: Self = Self("abl-idle-phases-1000");
}

/// ABL eMH1/eMH2 (Modbus ASCII).
#[derive(Debug, Clone, Copy)]
pub struct AblEmh;

impl Simulated for AblEmh {
    fn variants(&self) -> &'static [Variant] {
        &[
            Variant::STANDARD,
            Variant::ABL_DISABLED_AFTER_WAKE,
            Variant::ABL_IDLE_PHASES_1000,
        ]
    }

    fn init(&self, s: &mut SimState) {
        s.extra.insert(0x14, 266);
    }

    fn tick(&self, s: &mut SimState, _f: &Faults, now: Instant) -> bool {
        // The eMH sleeps on a quiet bus: the first request after 2 s of silence wakes it and
        // gets no answer (why evcc sends everything twice).
        if now.saturating_duration_since(s.last_step) > Duration::from_secs(2) {
            s.last_step = now;
            if s.variant == Variant::ABL_DISABLED_AFTER_WAKE {
                s.extra.insert(0x05, 0xE0E0);
                s.started = false;
            }
            return false;
        }
        true
    }

    fn keeps_alive(&self, _request: &Request) -> bool {
        // No watchdog over Modbus.
        false
    }

    fn render(&self, s: &SimState, f: &Faults, _unit: u8, b: &mut Bank) {
        let h = &mut b.holding;
        // Firmware bytes; bit 5 of the last byte: a current sensor is fitted.
        put(
            h,
            0x01,
            &[0x0112, 0x0400 | if s.meter_fitted { 0x20 } else { 0 }],
        );
        let disabled = s.extra.get(&0x05) == Some(&0xE0E0);
        let duty = s.extra.get(&0x14).copied().unwrap_or(0x03E8);
        let code: u16 = if f.wrong_identity {
            0x0000
        } else if f.error_code != 0 {
            0xF2
        } else if disabled {
            0xE0
        } else if !s.connected() {
            0xA1
        } else if s.charging() {
            0xC2
        } else if duty == 0x03E8 {
            0xB1
        } else {
            0xB2
        };
        put(h, 0x04, &[code]);
        put(h, 0x0F, &[0, 0, 0, 0x1000 | duty, 0]);
        let idle = if s.variant == Variant::ABL_IDLE_PHASES_1000 {
            0x03E8
        } else {
            0
        };
        let [l1, l2, l3] = currents_ma(s, f).map(|ma| {
            if f.invalid_currents {
                0xFFFF
            } else if ma == 0 {
                idle
            } else {
                low(ma / 100)
            }
        });
        put(h, 0x2E, &[0, 0, l3, l2, l1]);
    }

    fn write(&self, s: &mut SimState, addr: u16, values: &[u16]) -> Result<(), u8> {
        let v = one(values)?;
        match addr {
            0x05 => match v {
                0xA1A1 | 0xE0E0 => {
                    s.extra.insert(0x05, v);
                    // A disabled outlet offers nothing.
                    s.started = v == 0xA1A1;
                }
                _ => return Err(ILLEGAL_VALUE),
            },
            0x14 => {
                if v == 0x03E8 {
                    s.setpoint = Current::ZERO;
                } else if (100..=533).contains(&v) {
                    // The pilot duty cycle: v × 0.06 A, which the car draws to 0.1 A.
                    s.setpoint = Current::from_milliamps((i32::from(v) * 60 + 50) / 100 * 100);
                } else {
                    return Err(ILLEGAL_VALUE);
                }
                s.extra.insert(0x14, v);
            }
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}
