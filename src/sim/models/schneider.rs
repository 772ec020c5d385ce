//! Schneider EVlink Pro AC (GEX1969300; evcc schneider-v3.go): holding registers, f32 and
//! u64 low word first; unmapped registers in 2999–3222 and 4000–4079 read 0xFFFF.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use std::time::Duration;

use super::{
    Bank, ILLEGAL_ADDRESS, ILLEGAL_VALUE, Simulated, Variant, amps_u16, lsw, one, put, setpoint,
    u32w, uint, writes_to,
};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "schneider-evlink-pro-ac";

impl Variant {
    /// EVlink Pro AC whose lifebit supervision is deactivated in its set-up: 4000 reads 2
    /// and the box does not take the lifebit (the simulator answers a write with exception 3,
    /// so a driver that writes it anyway fails). evcc `charger/schneider-v3.go:106–113` starts
    /// the 2 s heartbeat only when 4000 is not 2.
    pub const EVLINK_LIFEBIT_OFF: Self = Self("evlink-lifebit-off");

    /// EVlink Pro AC reporting an idle socket as EV state 0, 1 or 2 instead of 6 (after
    /// power-on, between sessions): evcc `charger/schneider-v3.go:141–143` takes 0, 1, 2 and 6
    /// alike as "no vehicle" (state A). The simulator shows 2.
    pub const EVLINK_IDLE_STATE_2: Self = Self("evlink-idle-state-2");
}

/// Schneider Electric EVlink Pro AC.
#[derive(Debug, Clone, Copy)]
pub struct EvlinkProAc;

impl Simulated for EvlinkProAc {
    fn variants(&self) -> &'static [Variant] {
        &[
            Variant::STANDARD,
            Variant::EVLINK_LIFEBIT_OFF,
            Variant::EVLINK_IDLE_STATE_2,
        ]
    }

    fn init(&self, s: &mut SimState) {
        // The EVlink watches its lifebit from power-on (the time is the box's), unless the
        // supervision is deactivated.
        if s.variant != Variant::EVLINK_LIFEBIT_OFF {
            s.failsafe_timeout = Duration::from_secs(10);
        }
    }

    fn keeps_alive(&self, request: &Request) -> bool {
        writes_to(request, 4000)
    }

    fn render(&self, s: &SimState, f: &Faults, _unit: u8, b: &mut Bank) {
        let h = &mut b.holding;
        for a in (2999..3223).chain(4000..4080) {
            h.insert(a, 0xFFFF);
        }
        let ev = if f.error_code != 0 {
            10
        } else if !s.connected() && s.variant == Variant::EVLINK_IDLE_STATE_2 {
            2
        } else if !s.connected() {
            6
        } else if s.charging() {
            8
        } else {
            7
        };
        put(h, 1, &[ev]);
        put(h, 150, &[if s.charging() { 3 } else { 1 }]);
        put(h, 1150, &[u16::from(s.connected())]);
        if f.wrong_identity {
            put(h, 1212, &[0xFFFF, 0xFFFF, 0xFFFF]);
        } else {
            put(h, 1212, &[3, 4, 12]);
        }
        let c = s.currents();
        for k in 0..3u16 {
            let idx = usize::from(k);
            let a = c.get(idx).map_or(0.0, |c| c.as_amps_f64());
            put(
                h,
                2999 + 2 * k,
                &if f.invalid_currents {
                    lsw(f32::NAN.to_bits())
                } else {
                    f32_lsw(a)
                },
            );
            put(h, 3027 + 2 * k, &f32_lsw(230.0));
            put(
                h,
                3053 + 2 * k,
                &f32_lsw(s.power_phases_w().get(idx).copied().unwrap_or(0.0) / 1000.0),
            );
        }
        put(h, 3059, &f32_lsw(s.power_w() / 1000.0));
        let [lo, hi] = lsw(uint(s.energy_wh()));
        put(h, 3203, &[lo, hi, 0, 0]);
        let off = s.variant == Variant::EVLINK_LIFEBIT_OFF;
        put(h, 4000, &[if off { 2 } else { 0 }]);
        put(h, 4002, &u32w(0));
        put(
            h,
            4004,
            &[
                amps_u16(s.setpoint),
                amps_u16(s.failsafe_current),
                amps_u16(s.failsafe_current),
            ],
        );
        put(h, 4007, &lsw(s.session_secs()));
        put(h, 4009, &lsw(s.session_secs()));
        put(h, 4011, &[0]);
        put(h, 4012, &lsw(uint(s.session_wh)));
        put(h, 4020, &lsw(f.error_code));
        put(h, 4022, &lsw(0));
    }

    fn write(&self, s: &mut SimState, addr: u16, values: &[u16]) -> Result<(), u8> {
        let v = one(values)?;
        match addr {
            4000 if s.variant == Variant::EVLINK_LIFEBIT_OFF => return Err(ILLEGAL_VALUE),
            4000 => match v {
                // The lifebit: the box falls back to the degraded setpoint when it is not renewed
                // (the time is the box's; 10 s here).
                1 => s.failsafe_timeout = Duration::from_secs(10),
                0 | 2 => s.failsafe_timeout = Duration::ZERO,
                _ => return Err(ILLEGAL_VALUE),
            },
            4004 => s.setpoint = setpoint(u32::from(v), 1000, 6, 32)?,
            4005 | 4006 => s.failsafe_current = setpoint(u32::from(v), 1000, 6, 32)?,
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}

/// f32 as two registers, low word first.
#[allow(clippy::cast_possible_truncation, reason = "display values")]
fn f32_lsw(v: f64) -> [u16; 2] {
    lsw((v as f32).to_bits())
}
