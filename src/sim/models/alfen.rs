//! §4 Alfen Eve: unit 200 = station, 1 = socket; holding registers, big-endian floats.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use std::time::Duration;

use super::{
    Bank, ILLEGAL_ADDRESS, ILLEGAL_VALUE, Simulated, Variant, ascii, f32w, f64w, no_input, one,
    put, two, u32w, writes_to,
};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};
use crate::units::Current;

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "alfen-eve";

impl Variant {
    /// Alfen Eve on a 1-phase installation: L2 and L3 read NaN in normal operation.
    pub const ALFEN_SINGLE_PHASE: Self = Self("alfen-single-phase");

    /// Alfen Eve reporting mode-3 state "E" with no vehicle (evcc takes E as A).
    pub const ALFEN_IDLE_E: Self = Self("alfen-idle-e");

    /// Alfen Eve without "Allow 1- and 3-phased charging" ticked in ACE: a write to 1215 is
    /// taken and changes nothing (assumed; no source says what the box answers).
    pub const ALFEN_NO_PHASE_SWITCH: Self = Self("alfen-no-phase-switch");
}

/// Alfen Eve.
#[derive(Debug, Clone, Copy)]
pub struct AlfenEve;

impl Simulated for AlfenEve {
    fn variants(&self) -> &'static [Variant] {
        &[
            Variant::STANDARD,
            Variant::ALFEN_SINGLE_PHASE,
            Variant::ALFEN_IDLE_E,
            Variant::ALFEN_NO_PHASE_SWITCH,
        ]
    }

    fn init(&self, s: &mut SimState) {
        if s.variant == Variant::ALFEN_SINGLE_PHASE {
            s.phases = 1;
        }
    }

    fn keeps_alive(&self, request: &Request) -> bool {
        writes_to(request, 1210)
    }

    fn check(&self, unit: u8, request: &Request) -> Result<(), u8> {
        match (unit, request) {
            // Unit 200 is the station (read only), unit 1 the socket.
            (200, Request::WriteSingle(..) | Request::WriteMultiple(..)) => Err(ILLEGAL_ADDRESS),
            (1 | 200, _) => no_input(request),
            _ => Err(ILLEGAL_ADDRESS),
        }
    }

    fn render(&self, s: &SimState, f: &Faults, unit: u8, b: &mut Bank) {
        let h = &mut b.holding;
        match unit {
            200 => {
                put(h, 100, &ascii("ALF_1000", 17));
                put(
                    h,
                    117,
                    &ascii(
                        if f.wrong_identity {
                            "Other"
                        } else {
                            "Alfen NV"
                        },
                        5,
                    ),
                );
                put(h, 123, &ascii("4.14.0-3398", 17));
                put(h, 140, &ascii("NG910", 17));
                put(h, 157, &ascii("ACE0123456", 11));
                #[allow(clippy::cast_possible_truncation, reason = "display values")]
                {
                    put(h, 1100, &f32w(s.hw_max.as_amps_f64() as f32));
                    put(h, 1102, &f32w(s.temperature_c as f32));
                }
                put(h, 1104, &[u16::from(s.charging()), 1]);
            }
            1 => {
                #[allow(clippy::cast_possible_truncation, reason = "display values")]
                let fl = |v: f64| f32w(v as f32);
                put(h, 300, &[if f.error_code != 0 { 0x08 } else { 0x03 }]);
                let one_phase = s.variant == Variant::ALFEN_SINGLE_PHASE;
                for i in 0..3u16 {
                    let idx = usize::from(i);
                    // A 1-phase installation measures nothing on L2 and L3: NaN.
                    let unused = one_phase && i > 0;
                    let nan_or = |v: f64| if unused { f32w(f32::NAN) } else { fl(v) };
                    put(h, 306 + 2 * i, &nan_or(230.0));
                    let c = s.currents().get(idx).map_or(0.0, |c| c.as_amps_f64());
                    put(
                        h,
                        320 + 2 * i,
                        &if f.invalid_currents {
                            f32w(f32::NAN)
                        } else {
                            nan_or(c)
                        },
                    );
                    put(
                        h,
                        338 + 2 * i,
                        &nan_or(s.power_phases_w().get(idx).copied().unwrap_or(0.0)),
                    );
                    put(
                        h,
                        362 + 4 * i,
                        &f64w(s.energy_phases_wh.get(idx).copied().unwrap_or(0.0)),
                    );
                }
                let sum: f64 = s.currents().iter().map(|c| c.as_amps_f64()).sum();
                put(h, 326, &fl(sum));
                put(h, 344, &fl(s.power_w()));
                put(h, 374, &f64w(s.energy_wh()));
                put(h, 390, &f64w(0.0));
                put(h, 1200, &[1]);
                let mode3 = if f.error_code != 0 {
                    "F"
                } else if !s.connected() && s.variant == Variant::ALFEN_IDLE_E {
                    "E"
                } else if !s.connected() {
                    "A"
                } else if s.charging() {
                    "C2"
                } else if s.offered() < Current::from_amps(6) {
                    "B1"
                } else {
                    "B2"
                };
                put(h, 1201, &ascii(mode3, 5));
                put(h, 1206, &fl(s.offered().as_amps_f64()));
                put(h, 1208, &u32w(60));
                put(h, 1210, &fl(s.setpoint.as_amps_f64()));
                put(h, 1212, &fl(s.failsafe_current.as_amps_f64()));
                put(h, 1214, &[1, u16::from(s.phases)]);
            }
            // `check` refuses other units.
            _ => {}
        }
    }

    fn write(&self, s: &mut SimState, addr: u16, values: &[u16]) -> Result<(), u8> {
        match addr {
            1210 => {
                let amps = f32::from_bits(two(values)?);
                if !amps.is_finite() || amps < 0.0 || (amps > 0.0 && amps < 6.0) || amps > 80.0 {
                    return Err(ILLEGAL_VALUE);
                }
                s.setpoint = Current::from_amps_f64(f64::from(amps)).map_err(|_| ILLEGAL_VALUE)?;
                // The validity time (60 s) runs from each write.
                s.failsafe_timeout = Duration::from_secs(60);
            }
            // "Charge using 1 or 3 phases": the box stops for the switch and resumes after the
            // pause. A 1-phase installation has nothing to switch; without the ACE setting the
            // write does nothing (both assumed).
            1215 => match one(values)? {
                v @ (1 | 3) => {
                    if s.variant != Variant::ALFEN_SINGLE_PHASE
                        && s.variant != Variant::ALFEN_NO_PHASE_SWITCH
                    {
                        s.switch_phases(u8::try_from(v).unwrap_or(3));
                    }
                }
                _ => return Err(ILLEGAL_VALUE),
            },
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}
