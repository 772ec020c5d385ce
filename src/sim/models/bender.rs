//! §3 Bender CC612/613: holding registers, u32 high word first, FC 03 / FC 16 (FC 06 accepted).
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use std::time::Duration;

use super::{
    Bank, ILLEGAL_ADDRESS, ILLEGAL_VALUE, Simulated, Variant, amps_u16, ascii, currents_ma,
    no_input, one, put, reads, setpoint, u32w, uint, writes_to,
};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};
use crate::units::Current;

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "bender-cc612";

impl Variant {
    /// Bender CC without a meter: the meter registers 200–227 read 0xFFFFFFFF.
    pub const BENDER_NO_METER: Self = Self("bender-no-meter");

    /// Bender legacy firmware: no model text (142), session energy and duration at 705/709
    /// only, and a read of 730–746 closes the TCP connection.
    pub const BENDER_LEGACY: Self = Self("bender-legacy");

    /// MENNEKES AMTRON 4You (Bender inside): model text "AMTRON 4You"; a read of 730–746
    /// closes the TCP connection.
    pub const BENDER_4YOU: Self = Self("bender-4you");

    /// MENNEKES-branded Bender firmware ≥ 5.22: register 124 with the other polarity
    /// (0 = inoperative).
    pub const BENDER_MENNEKES_522: Self = Self("bender-mennekes-5.22");
}

/// Bender CC612/613.
#[derive(Debug, Clone, Copy)]
pub struct BenderCc;

impl Simulated for BenderCc {
    fn variants(&self) -> &'static [Variant] {
        &[
            Variant::STANDARD,
            Variant::BENDER_NO_METER,
            Variant::BENDER_LEGACY,
            Variant::BENDER_4YOU,
            Variant::BENDER_MENNEKES_522,
        ]
    }

    fn closes_on(&self, s: &SimState, request: &Request) -> bool {
        matches!(s.variant, Variant::BENDER_LEGACY | Variant::BENDER_4YOU)
            && reads(request, 730, 746)
    }

    fn keeps_alive(&self, request: &Request) -> bool {
        writes_to(request, 1000)
    }

    fn check(&self, _unit: u8, request: &Request) -> Result<(), u8> {
        no_input(request)
    }

    fn render(&self, s: &SimState, f: &Faults, _unit: u8, b: &mut Bank) {
        let h = &mut b.holding;
        let v = s.variant;
        put(
            h,
            100,
            &ascii(
                if v == Variant::BENDER_MENNEKES_522 {
                    "5.22"
                } else {
                    "5.33"
                },
                2,
            ),
        );
        // OCPP 1.6 ChargePointStatus numbering (0 Available … 4 Faulted, 5 Preparing, 6 Charging,
        // 7 SuspendedEVSE, 8 SuspendedEV, 9 Finishing).
        let ocpp = if f.error_code != 0 {
            4
        } else if !s.started {
            3
        } else if !s.connected() {
            0
        } else if s.charging() {
            6
        } else if s.full() {
            8
        } else if s.offered() < Current::from_amps(6) {
            7
        } else {
            5
        };
        put(h, 104, &[ocpp]);
        put(h, 105, &u32w(f.error_code));
        put(h, 107, &u32w(0));
        put(h, 109, &u32w(0));
        put(h, 111, &u32w(0));
        put(
            h,
            120,
            &ascii(if f.wrong_identity { "" } else { "0.14" }, 2),
        );
        let vehicle = if f.error_code != 0 {
            5
        } else if s.charging() {
            3
        } else if s.connected() {
            2
        } else {
            1
        };
        put(h, 122, &[vehicle, 0x0A + vehicle - 1]);
        // 0 operative, 1 inoperative; the other way round on MENNEKES firmware ≥ 5.22.
        let flipped = v == Variant::BENDER_MENNEKES_522;
        put(h, 124, &[u16::from(s.started == flipped)]);
        put(h, 131, &[amps_u16(s.failsafe_current)]);
        put(
            h,
            132,
            &[u16::try_from(s.failsafe_timeout.as_secs()).unwrap_or(0)],
        );
        put(h, 133, &[amps_u16(s.hw_max), amps_u16(s.hw_max)]);
        put(h, 140, &[u16::from(s.charging())]);
        match v {
            Variant::BENDER_LEGACY => {}
            Variant::BENDER_4YOU => put(h, 142, &ascii("AMTRON 4You 500", 10)),
            _ => put(h, 142, &ascii("CC613-ELPU", 10)),
        }
        let e = s.energy_phases_wh;
        let p = s.power_phases_w();
        if v == Variant::BENDER_NO_METER {
            for a in (200..228).step_by(2) {
                put(h, a, &u32w(u32::MAX));
            }
        }
        for i in 0..3u16 {
            if v == Variant::BENDER_NO_METER {
                break;
            }
            let idx = usize::from(i);
            put(
                h,
                200 + 2 * i,
                &u32w(uint(e.get(idx).copied().unwrap_or(0.0))),
            );
            put(
                h,
                206 + 2 * i,
                &u32w(uint(p.get(idx).copied().unwrap_or(0.0))),
            );
            put(
                h,
                212 + 2 * i,
                &u32w(currents_ma(s, f).get(idx).copied().unwrap_or(0)),
            );
            put(h, 222 + 2 * i, &u32w(230));
        }
        if v != Variant::BENDER_NO_METER {
            put(h, 218, &u32w(uint(s.energy_wh())));
            put(h, 220, &u32w(uint(s.power_w())));
        }
        put(h, 705, &u32w(uint(s.session_wh)));
        put(h, 706, &[amps_u16(s.offered())]);
        put(h, 709, &u32w(s.session_secs()));
        if v != Variant::BENDER_LEGACY {
            put(h, 716, &u32w(uint(s.session_wh)));
            put(h, 718, &u32w(s.session_secs()));
        }
        let v = s.vehicle.as_ref();
        put(
            h,
            720,
            &ascii(v.and_then(|v| v.rfid.as_deref()).unwrap_or(""), 10),
        );
        put(h, 730, &[0]);
        put(h, 740, &[0]);
        put(
            h,
            741,
            &ascii(v.and_then(|v| v.evccid.as_deref()).unwrap_or(""), 6),
        );
        put(h, 1000, &[amps_u16(s.setpoint)]);
    }

    fn write(&self, s: &mut SimState, addr: u16, values: &[u16]) -> Result<(), u8> {
        let v = one(values)?;
        match addr {
            124 => match v {
                0 | 1 => s.started = (v == 0) != (s.variant == Variant::BENDER_MENNEKES_522),
                _ => return Err(ILLEGAL_VALUE),
            },
            131 => s.failsafe_current = setpoint(u32::from(v), 1000, 6, 80)?,
            132 => s.failsafe_timeout = Duration::from_secs(u64::from(v)),
            1000 => {
                // The controller clamps to its hardware limit.
                let c = setpoint(u32::from(v), 1000, 6, 80)?;
                s.setpoint = c.min(s.hw_max);
            }
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}
