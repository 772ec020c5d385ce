//! §8 Vestel EVC04: input registers FC 04 (UTF-16 strings), holding FC 03/06.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use std::time::Duration;

use super::{
    Bank, ILLEGAL_ADDRESS, ILLEGAL_VALUE, Simulated, Variant, amps_u16, low, ma, one, put,
    setpoint, u32w, uint, utf16, writes_to,
};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};
use crate::units::Current;

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "vestel-evc04";

impl Variant {
    /// Vestel EVC04 firmware before 3.156: no RFID register (1516 answers exception 2).
    pub const VESTEL_BEFORE_3156: Self = Self("vestel-before-3.156");

    /// Vestel EVC04 1-phase unit: 404 reads 0, a write to 405 does nothing.
    pub const VESTEL_1P_UNIT: Self = Self("vestel-1p-unit");

    /// Vestel EVC04 whose phase switching "occasionally disables itself" (evcc #21708): here
    /// after the first switch 404 falls to 0 and later writes to 405 do nothing until a
    /// reboot (evcc #31323). A test may also set `extra[404]` to 0 at any time.
    pub const VESTEL_SWITCH_FALLS_BACK: Self = Self("vestel-switch-falls-back");
}

/// Register 404, the unit's phases (kept in `SimState::extra`): 1 = three, switchable.
const UNIT_PHASES: u16 = 404;

/// Vestel EVC04.
#[derive(Debug, Clone, Copy)]
pub struct VestelEvc04;

impl Simulated for VestelEvc04 {
    fn variants(&self) -> &'static [Variant] {
        &[
            Variant::STANDARD,
            Variant::VESTEL_BEFORE_3156,
            Variant::VESTEL_1P_UNIT,
            Variant::VESTEL_SWITCH_FALLS_BACK,
        ]
    }

    fn init(&self, s: &mut SimState) {
        let three = s.variant != Variant::VESTEL_1P_UNIT;
        s.extra.insert(UNIT_PHASES, u16::from(three));
        if !three {
            s.phases = 1;
        }
    }

    fn keeps_alive(&self, request: &Request) -> bool {
        writes_to(request, 6000)
    }

    fn render(&self, s: &SimState, f: &Faults, _unit: u8, b: &mut Bank) {
        let i = &mut b.input;
        let ident = !f.wrong_identity;
        put(i, 100, &utf16(if ident { "VES1234567890" } else { "" }, 25));
        put(i, 130, &utf16("CP-0001", 50));
        put(i, 190, &utf16("Vestel", 10));
        put(i, 210, &utf16(if ident { "EVC04" } else { "" }, 5));
        let old = s.variant == Variant::VESTEL_BEFORE_3156;
        put(
            i,
            230,
            &utf16(if old { "v3.150.0" } else { "v3.187.0" }, 50),
        );
        put(i, 400, &u32w(22_000));
        put(i, 404, &[s.extra.get(&UNIT_PHASES).copied().unwrap_or(1)]);
        let state = if f.error_code != 0 {
            8
        } else if !s.connected() {
            0
        } else if s.charging() {
            2
        } else if s.offered() < Current::from_amps(6) {
            3
        } else {
            4
        };
        put(i, 1000, &[state, u16::from(s.charging())]);
        put(i, 1004, &[if s.connected() { 3 } else { 0 }]);
        put(i, 1006, &u32w(f.error_code));
        let c = if f.invalid_currents {
            [0xFFFF; 3]
        } else {
            s.currents().map(|c| low(ma(c)))
        };
        put(i, 1008, &[c[0]]);
        put(i, 1010, &[c[1]]);
        put(i, 1012, &[c[2]]);
        put(i, 1014, &[230]);
        put(i, 1016, &[230]);
        put(i, 1018, &[230]);
        put(i, 1020, &u32w(uint(s.power_w())));
        put(i, 1036, &u32w(uint(s.energy_wh() / 100.0)));
        put(
            i,
            1100,
            &[amps_u16(s.offered()), 0, 6, 0, amps_u16(s.hw_max), 0, 32],
        );
        put(i, 1502, &u32w(uint(s.session_wh)));
        put(i, 1508, &u32w(s.session_secs()));
        if !old {
            put(
                i,
                1516,
                &utf16(
                    s.vehicle
                        .as_ref()
                        .and_then(|v| v.rfid.as_deref())
                        .unwrap_or(""),
                    15,
                ),
            );
        }
        let h = &mut b.holding;
        put(h, 2000, &[amps_u16(s.failsafe_current)]);
        put(
            h,
            2002,
            &[u16::try_from(s.failsafe_timeout.as_secs()).unwrap_or(0)],
        );
        put(
            h,
            5004,
            &[amps_u16(if s.started { s.setpoint } else { Current::ZERO })],
        );
        put(h, 6000, &[0]);
        // 405 exists from firmware 3.187.0 on (evcc template: 1P3P requires 3.187.0); older
        // firmware answers exception 2 (assumed).
        if !old {
            put(h, 405, &[u16::from(s.phases >= 3)]);
        }
    }

    fn write(&self, s: &mut SimState, addr: u16, values: &[u16]) -> Result<(), u8> {
        let v = one(values)?;
        match addr {
            2000 => s.failsafe_current = setpoint(u32::from(v), 1000, 6, 32)?,
            2002 => s.failsafe_timeout = Duration::from_secs(u64::from(v)),
            5004 => s.setpoint = setpoint(u32::from(v), 1000, 6, 32)?,
            6000 => {
                if v != 1 {
                    return Err(ILLEGAL_VALUE);
                }
            }
            405 if s.variant == Variant::VESTEL_BEFORE_3156 => return Err(ILLEGAL_ADDRESS),
            405 => {
                let phases = match v {
                    0 => 1,
                    1 => 3,
                    _ => return Err(ILLEGAL_VALUE),
                };
                // Taken only while 404 says switchable; otherwise nothing happens (assumed).
                if s.extra.get(&UNIT_PHASES) == Some(&1) {
                    let before = s.phases;
                    s.switch_phases(phases);
                    if s.variant == Variant::VESTEL_SWITCH_FALLS_BACK && before != phases {
                        s.extra.insert(UNIT_PHASES, 0);
                    }
                }
            }
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}
