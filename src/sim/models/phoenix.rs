//! §6b Phoenix Contact EV Charge Control ETH: input registers (status, meter), holding
//! (identity, setpoint, RFID, energy), coils (enable); 32-bit values low word first. The
//! meter is optional: without it voltages, currents, power and energy read 0.
//!
//! Written from the register document and field knowledge (`docs/chargers.md`), not from
//! the driver.

use super::{
    Bank, ILLEGAL_ADDRESS, ILLEGAL_VALUE, Simulated, Variant, amps_u16, ascii, low, lsw, lsw_i32,
    one, put, setpoint, uint,
};
use crate::modbus::frame::Request;
use crate::sim::{Faults, SimState};

/// The model's id in `etsdb/charger-models.toml`.
pub const ID: &str = "phoenix-ev-cc";

impl Variant {
    /// Phoenix EV Charge Control with Wallbe firmware: setpoint 528 in 0.1 A, firmware at
    /// 149, total energy u64 low word first at 2980, and 904 only 16 bits wide.
    pub const PHOENIX_WALLBE: Self = Self("phoenix-wallbe");
}

/// Phoenix Contact EV Charge Control ETH (optional metering: see
/// [`SimState::meter_fitted`]).
#[derive(Debug, Clone, Copy)]
pub struct PhoenixEvCc;

impl Simulated for PhoenixEvCc {
    fn variants(&self) -> &'static [Variant] {
        &[Variant::STANDARD, Variant::PHOENIX_WALLBE]
    }

    fn init(&self, s: &mut SimState) {
        if s.variant == Variant::PHOENIX_WALLBE {
            // Wallbe boxes have their meter; lifetime counters beyond 16 bits.
            s.energy_phases_wh = [40_000.0; 3];
        }
    }

    fn keeps_alive(&self, _request: &Request) -> bool {
        // No watchdog over Modbus.
        false
    }

    fn has_coils(&self) -> bool {
        true
    }

    fn write_coil(&self, s: &mut SimState, addr: u16, on: bool) -> Result<(), u8> {
        phoenix_coil(s, addr, on)
    }

    fn render(&self, s: &SimState, f: &Faults, _unit: u8, b: &mut Bank) {
        let i = &mut b.input;
        let letter = if f.wrong_identity {
            0
        } else if f.error_code != 0 {
            u16::from(b'F')
        } else if !s.connected() {
            u16::from(b'A')
        } else if s.charging() {
            u16::from(b'C')
        } else {
            u16::from(b'B')
        };
        put(i, 100, &[letter]);
        put(i, 102, &lsw(s.session_secs()));
        put(i, 104, &[0x0200]);
        put(i, 105, &ascii_low_first("1.04", 2));
        let wallbe = s.variant == Variant::PHOENIX_WALLBE;
        if wallbe {
            put(i, 149, &ascii_low_first("WB-1.04", 6));
        }
        put(i, 107, &[low(f.error_code)]);
        let metered = s.meter_fitted;
        for (k, addr) in [108u16, 110, 112].into_iter().enumerate() {
            put(i, addr, &lsw(if metered { 230 } else { 0 }));
            let amps = if !metered {
                0
            } else if f.invalid_currents {
                -1
            } else {
                s.currents()
                    .get(k)
                    .map_or(0, |c| c.whole_amps_floor().max(0))
            };
            put(i, addr + 6, &lsw_i32(amps));
        }
        let watts = if metered { uint(s.power_w()) } else { 0 };
        put(i, 120, &lsw(watts));
        put(i, 132, &lsw(if metered { uint(s.session_wh) } else { 0 }));
        let h = &mut b.holding;
        put(h, 304, &ascii("EVCC0012345", 6));
        put(h, 310, &ascii("EV-CC-ETH", 5));
        put(
            h,
            528,
            &[if wallbe {
                u16::try_from(s.setpoint.milliamps() / 100).unwrap_or(0)
            } else {
                amps_u16(s.setpoint)
            }],
        );
        put(
            h,
            606,
            &ascii(
                s.vehicle
                    .as_ref()
                    .and_then(|v| v.rfid.as_deref())
                    .unwrap_or(""),
                16,
            ),
        );
        let wh = if metered { uint(s.energy_wh()) } else { 0 };
        if wallbe {
            // Wallbe: 904 is one 16-bit register; the total is a u64 at 2980, low word first.
            put(h, 904, &[low(wh)]);
            put(h, 2980, &[low(wh), low(wh >> 16), 0, 0]);
        } else {
            put(h, 904, &lsw(wh));
        }
        b.coils.insert(400, s.started);
        b.coils.insert(419, true);
    }

    fn write(&self, s: &mut SimState, addr: u16, values: &[u16]) -> Result<(), u8> {
        match addr {
            // Whole amperes; 0 is not a setpoint (the enable coil pauses).
            528 => {
                let v = one(values)?;
                if v == 0 {
                    return Err(ILLEGAL_VALUE);
                }
                // Wallbe firmware counts 0.1 A.
                let unit = if s.variant == Variant::PHOENIX_WALLBE {
                    100
                } else {
                    1000
                };
                s.setpoint = setpoint(u32::from(v), unit, 6, 80)?;
            }
            _ => return Err(ILLEGAL_ADDRESS),
        }
        Ok(())
    }
}

/// ASCII with the low byte of each register first.
fn ascii_low_first(text: &str, n: usize) -> Vec<u16> {
    ascii(text, n).into_iter().map(u16::swap_bytes).collect()
}

fn phoenix_coil(s: &mut SimState, addr: u16, on: bool) -> Result<(), u8> {
    match addr {
        400 => s.started = on,
        419 => {}
        _ => return Err(ILLEGAL_ADDRESS),
    }
    s.writes.push((addr, vec![u16::from(on)]));
    Ok(())
}
