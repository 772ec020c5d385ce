//! §5 Heidelberg Energy Control: input registers FC 04, holding FC 03/06, 0.1 A units.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use std::time::{Duration, Instant};

use super::{
    Bank, ILLEGAL_ADDRESS, ILLEGAL_VALUE, Simulated, Variant, amps_u16, ascii, currents_ma, low,
    one, put, setpoint, u32w, uint,
};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};
use crate::units::Current;

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "heidelberg-ec";

impl Variant {
    /// Heidelberg Energy Control that goes into standby (answers nothing) after 1 s without a
    /// vehicle unless register 258 holds 4 (the real box takes minutes).
    pub const HEIDELBERG_STANDBY: Self = Self("heidelberg-standby");
}

/// Heidelberg Energy Control.
#[derive(Debug, Clone, Copy)]
pub struct HeidelbergEc;

impl Simulated for HeidelbergEc {
    fn variants(&self) -> &'static [Variant] {
        &[Variant::STANDARD, Variant::HEIDELBERG_STANDBY]
    }

    fn init(&self, s: &mut SimState) {
        s.hw_max = Current::from_amps(16);
        s.setpoint = Current::from_amps(16);
    }

    fn tick(&self, s: &mut SimState, _f: &Faults, now: Instant) -> bool {
        if s.variant != Variant::HEIDELBERG_STANDBY {
            return true;
        }
        let standby_off = s.extra.get(&258) == Some(&4);
        if !standby_off
            && !s.connected()
            && now.saturating_duration_since(s.created) > Duration::from_secs(1)
        {
            s.standby = true;
        }
        // Only a vehicle wakes it (or a power cycle).
        if s.connected() {
            s.standby = false;
        }
        !s.standby
    }

    fn keeps_alive(&self, _request: &Request) -> bool {
        true
    }

    fn render(&self, s: &SimState, f: &Faults, _unit: u8, b: &mut Bank) {
        let i = &mut b.input;
        let locked = s.extra.get(&259).copied().unwrap_or(1) == 0;
        put(i, 4, &[if f.wrong_identity { 0x0200 } else { 0x0108 }]);
        // The remote lock (259 = 0) forces state F (evcc heidelberg-ec.go).
        let state = if f.error_code != 0 {
            11
        } else if locked {
            10
        } else if !s.connected() {
            3
        } else if s.charging() {
            7
        } else if s.offered() < Current::from_amps(6) {
            4
        } else {
            5
        };
        put(i, 5, &[state]);
        for (k, c) in currents_ma(s, f).into_iter().enumerate() {
            if let Ok(k) = u16::try_from(k) {
                put(i, 6 + k, &[low(c / 100)]);
            }
        }
        #[allow(clippy::cast_possible_truncation, reason = "temperature fits")]
        let t = (s.temperature_c * 10.0) as i16;
        put(i, 9, &[u16::from_be_bytes(t.to_be_bytes())]);
        put(i, 10, &[230, 230, 230, 1]);
        put(i, 14, &[low(uint(s.power_w()))]);
        put(i, 15, &u32w(uint(s.session_wh)));
        put(i, 17, &u32w(uint(s.energy_wh())));
        put(i, 100, &[amps_u16(s.hw_max), 6]);
        put(i, 102, &ascii("HEC-0001-2345", 32));
        put(i, 200, &[0x0001, 0, 0, 0x0107]);
        let h = &mut b.holding;
        put(
            h,
            257,
            &[
                u16::try_from(s.failsafe_timeout.as_millis()).unwrap_or(u16::MAX),
                s.extra.get(&258).copied().unwrap_or(0),
                u16::from(!locked),
                0,
                u16::try_from(s.setpoint.milliamps() / 100).unwrap_or(0),
                u16::try_from(s.failsafe_current.milliamps() / 100).unwrap_or(0),
            ],
        );
    }

    fn write(&self, s: &mut SimState, addr: u16, values: &[u16]) -> Result<(), u8> {
        let v = one(values)?;
        match addr {
            257 => s.failsafe_timeout = Duration::from_millis(u64::from(v)),
            258 => match v {
                0 | 4 => {
                    s.extra.insert(258, v);
                }
                _ => return Err(ILLEGAL_VALUE),
            },
            259 => match v {
                0 | 1 => {
                    s.extra.insert(259, v);
                    s.started = v == 1;
                }
                _ => return Err(ILLEGAL_VALUE),
            },
            261 => s.setpoint = setpoint(u32::from(v), 100, 6, 16)?,
            262 => s.failsafe_current = setpoint(u32::from(v), 100, 6, 16)?,
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}
