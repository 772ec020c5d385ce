//! §10a MENNEKES AMTRON Compact 2.0s: holding registers, big-endian floats, RTU 57600 8N2.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{
    Bank, ILLEGAL_ADDRESS, ILLEGAL_VALUE, Simulated, Variant, ascii, f32w, one, put, two, u32w,
    writes_to,
};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};
use crate::units::Current;

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "mennekes-amtron-compact";

impl Variant {
    /// AMTRON Compact without a phase switch: 0x030C reads 1 (assumed: the document names
    /// only 2 = switchable) and a phase request does nothing.
    pub const MENNEKES_FIXED_PHASES: Self = Self("mennekes-fixed-phases");
}

/// Requested phases 0x0D04 (kept in `SimState::extra`): 0 = all, 1 = single.
const REQUESTED: u16 = 0x0D04;

/// Applies a phase request while charging is not released. While it is released the box
/// keeps the request and switches when the release is withdrawn (assumed: evcc switches only
/// with the release withdrawn, `charger/helper.go` `whenDisabled`; what the box does
/// otherwise is not documented).
fn apply_request(s: &mut SimState) {
    if s.started || s.variant == Variant::MENNEKES_FIXED_PHASES {
        return;
    }
    let single = s.extra.get(&REQUESTED) == Some(&1);
    s.switch_phases(if single { 1 } else { 3 });
}

/// MENNEKES AMTRON Compact 2.0s.
#[derive(Debug, Clone, Copy)]
pub struct AmtronCompact;

impl Simulated for AmtronCompact {
    fn variants(&self) -> &'static [Variant] {
        &[Variant::STANDARD, Variant::MENNEKES_FIXED_PHASES]
    }

    fn init(&self, s: &mut SimState) {
        s.hw_max = Current::from_amps(16);
        // No failsafe current: without heartbeat the box stops charging.
        s.failsafe_current = Current::ZERO;
        s.failsafe_timeout = Duration::from_secs(10);
    }

    fn tick(&self, s: &mut SimState, f: &Faults, _now: Instant) -> bool {
        // State 6 stays until the energy manager resets it (0x0302 = 0, 0x0D05 = 1).
        if f.error_code != 0 {
            s.error_latched = true;
        }
        true
    }

    fn holes(&self, addr: u16, n: u16, _table: &BTreeMap<u16, u16>) -> bool {
        // 0x050C–0x0511 are not in the map.
        (addr..addr.saturating_add(n)).any(|a| (0x050C..=0x0511).contains(&a))
    }

    fn keeps_alive(&self, request: &Request) -> bool {
        writes_to(request, 0x0D00)
    }

    fn render(&self, s: &SimState, f: &Faults, _unit: u8, b: &mut Bank) {
        #[allow(clippy::cast_possible_truncation, reason = "display values")]
        let fl = |v: f64| f32w(v as f32);
        let h = &mut b.holding;
        put(h, 0x0000, &[0x0100]);
        put(h, 0x0001, &ascii("5.22.3", 8));
        put(
            h,
            0x0013,
            &ascii(if f.wrong_identity { "" } else { "1201234567" }, 8),
        );
        let state = if f.error_code != 0 || s.error_latched {
            6
        } else if !s.connected() {
            1
        } else if s.charging() {
            5
        } else if !s.started {
            2
        } else if s.offered() < Current::from_amps(6) {
            3
        } else {
            4
        };
        put(h, 0x0100, &[state, 0]);
        put(
            h,
            0x0108,
            &[if s.charging() {
                28
            } else if s.connected() {
                27
            } else {
                10
            }],
        );
        put(h, 0x0302, &fl(s.setpoint.as_amps_f64()));
        put(
            h,
            0x0306,
            &fl(if f.wrong_identity {
                0.0
            } else {
                s.hw_max.as_amps_f64()
            }),
        );
        put(
            h,
            0x030C,
            &[if s.variant == Variant::MENNEKES_FIXED_PHASES {
                1
            } else {
                2
            }],
        );
        for i in 0..3u16 {
            let idx = usize::from(i);
            let c = s.currents().get(idx).map_or(0.0, |c| c.as_amps_f64());
            put(
                h,
                0x0500 + 2 * i,
                &if f.invalid_currents {
                    f32w(f32::NAN)
                } else {
                    fl(c)
                },
            );
            put(h, 0x0506 + 2 * i, &fl(230.0));
        }
        put(h, 0x0512, &fl(s.power_w()));
        put(h, 0x0B00, &fl(s.offered().as_amps_f64()));
        put(h, 0x0B02, &fl(s.session_wh / 1000.0));
        put(h, 0x0B04, &u32w(s.session_secs()));
        put(h, 0x0B06, &[u16::from(s.phases)]);
        put(h, 0x0D00, &[0]);
        put(
            h,
            0x0D04,
            &[
                s.extra.get(&REQUESTED).copied().unwrap_or(0),
                u16::from(s.started),
            ],
        );
        // Switched phases, as 0x0D04: 0 = all, 1 = single (nymea `amtron-compact20-registers.json`).
        put(h, 0x0E02, &[u16::from(s.phases < 3)]);
        put(h, 0x1000, &fl(s.energy_wh() / 1000.0));
    }

    fn write(&self, s: &mut SimState, addr: u16, values: &[u16]) -> Result<(), u8> {
        match addr {
            0x0302 => {
                let amps = f32::from_bits(two(values)?);
                if !amps.is_finite() || amps < 0.0 || (amps > 0.0 && amps < 6.0) || amps > 32.0 {
                    return Err(ILLEGAL_VALUE);
                }
                s.setpoint = Current::from_amps_f64(f64::from(amps)).map_err(|_| ILLEGAL_VALUE)?;
            }
            0x0D00 => {
                if one(values)? != 0x55AA {
                    return Err(ILLEGAL_VALUE);
                }
            }
            0x0D04 => match one(values)? {
                v @ (0 | 1) => {
                    s.extra.insert(REQUESTED, v);
                    apply_request(s);
                }
                _ => return Err(ILLEGAL_VALUE),
            },
            0x0D05 => match one(values)? {
                v @ (0 | 1) => {
                    s.started = v == 1;
                    apply_request(s);
                    // The recovery from state 6: 0 A, then the release.
                    if v == 1 && s.setpoint == Current::ZERO {
                        s.error_latched = false;
                    }
                }
                _ => return Err(ILLEGAL_VALUE),
            },
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}
