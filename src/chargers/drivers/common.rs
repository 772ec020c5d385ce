//! What every driver shares: the per-charging-point limits a driver gets from the
//! configuration, write-on-change bookkeeping (EEPROM wear), the setpoint checks that give
//! `OutOfRange`, the start/stop-versus-pause bookkeeping for models that stop by 0 A, and
//! register decoding beyond [`crate::modbus::decode`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::catalog::{self, Capability};
use crate::chargers::status::{ChargerCommand, CommandOutcome, DriverError};
use crate::modbus::{Modbus, ModbusError, decode};
use crate::units::{Current, PerPhase, PhaseCount, Temperature};

/// What a driver takes from the charging point's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverSettings {
    /// Phases the charging point is connected with.
    pub phases: PhaseCount,
    /// Temperature at or above which the driver reports a temperature warning.
    pub temperature_warning: Temperature,
    /// Failsafe current written at start.
    pub failsafe_current: Current,
    /// Failsafe timeout written at start.
    pub failsafe_timeout: Duration,
}

impl Default for DriverSettings {
    fn default() -> Self {
        Self {
            phases: PhaseCount::Three,
            temperature_warning: Temperature::from_celsius(70),
            failsafe_current: Current::from_amps(6),
            failsafe_timeout: Duration::from_secs(60),
        }
    }
}

/// The capabilities of model `id` as `etsdb/charger-models.toml` lists them: a driver
/// implements what its catalog row promises (the driver tests check each capability against
/// the simulators) instead of repeating the list.
pub fn catalog_capabilities(id: &str) -> BTreeSet<Capability> {
    catalog::charger_model(id).map_or_else(BTreeSet::new, |m| m.capabilities.clone())
}

/// Remembers what was written, so that registers are written only on change.
#[derive(Debug, Default, Clone)]
pub struct WriteCache {
    last: BTreeMap<u16, Vec<u16>>,
}

impl WriteCache {
    /// Writes `values` at `addr` (FC 06 for one register unless `multiple`, else FC 16) unless
    /// the same values were the last written there. Returns whether it wrote.
    pub async fn write<M: Modbus>(
        &mut self,
        m: &mut M,
        addr: u16,
        values: &[u16],
        multiple: bool,
    ) -> Result<bool, ModbusError> {
        if self.last.get(&addr).is_some_and(|v| v == values) {
            return Ok(false);
        }
        self.last.remove(&addr);
        match values {
            [v] if !multiple => m.write_single(addr, *v).await?,
            _ => m.write_multiple(addr, values).await?,
        }
        self.last.insert(addr, values.to_vec());
        Ok(true)
    }

    /// Forgets everything (after reconnecting: the device may have rebooted).
    pub fn clear(&mut self) {
        self.last.clear();
    }

    /// Marks `addr` as holding `values` (read back from the device).
    pub fn known(&mut self, addr: u16, values: &[u16]) {
        self.last.insert(addr, values.to_vec());
    }
}

/// Checks a requested charging current against a model's range. `Ok(None)` = 0 A (pause),
/// `Ok(Some(mA))` otherwise; `Err` is the `OutOfRange` outcome.
pub fn check_setpoint(
    requested: Current,
    min: Current,
    max: Current,
) -> Result<Option<Current>, CommandOutcome> {
    if requested == Current::ZERO {
        return Ok(None);
    }
    if requested < min || requested > max {
        return Err(CommandOutcome::OutOfRange(format!(
            "{requested} is outside 0 or {min}..{max}"
        )));
    }
    Ok(Some(requested))
}

/// Checks a failsafe timeout against a model's range in seconds.
pub fn check_timeout(timeout: Duration, min_s: u64, max_s: u64) -> Result<u16, CommandOutcome> {
    let s = timeout.as_secs();
    if s < min_s || s > max_s {
        return Err(CommandOutcome::OutOfRange(format!(
            "failsafe timeout {s} s is outside {min_s}..{max_s} s"
        )));
    }
    u16::try_from(s).map_err(|_| CommandOutcome::OutOfRange(format!("{s} s")))
}

/// The identity registers are missing (exception 1 or 2): another device at the address.
pub fn identity_error(model: &str, e: ModbusError) -> DriverError {
    match e {
        ModbusError::Exception(code @ (1 | 2)) => DriverError::WrongCharger(format!(
            "the device does not have the {model} identity registers (exception {code})"
        )),
        e => DriverError::from(e),
    }
}

/// Whether a Modbus error is the box's exception answer — for an optional register (phase
/// switching, added by later firmware) that means "not on this box", as opposed to a failed
/// call (no answer, garbage), which stays an error.
pub fn modbus_absent(e: &ModbusError) -> bool {
    matches!(e, ModbusError::Exception(_))
}

/// Reads an optional register (FC 03, or FC 04 if `input`): `Ok(None)` when the box answers
/// with an exception, so that a firmware without it still polls.
pub async fn optional_read<M: Modbus>(
    m: &mut M,
    input: bool,
    addr: u16,
    count: u16,
) -> Result<Option<Vec<u16>>, DriverError> {
    let r = if input {
        m.read_input(addr, count).await
    } else {
        m.read_holding(addr, count).await
    };
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if modbus_absent(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads identity registers (FC 03, or FC 04 if `input`); exceptions 1 and 2 mean another
/// device: `WrongCharger`.
pub async fn id_read<M: Modbus>(
    m: &mut M,
    model: &str,
    input: bool,
    addr: u16,
    count: u16,
) -> Result<Vec<u16>, DriverError> {
    let r = if input {
        m.read_input(addr, count).await
    } else {
        m.read_holding(addr, count).await
    };
    r.map_err(|e| identity_error(model, e))
}

/// Start/stop and pause bookkeeping for models that stop charging by a 0 A setpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enable {
    /// Started (object 54) — true until the core stops it.
    pub started: bool,
    /// The last setpoint the core asked for (0 = paused by load management).
    pub setpoint: Current,
}

impl Default for Enable {
    fn default() -> Self {
        Self {
            started: true,
            setpoint: Current::from_amps(6),
        }
    }
}

impl Enable {
    /// The current to write: the setpoint while started, else 0.
    pub fn effective(self) -> Current {
        if self.started {
            self.setpoint
        } else {
            Current::ZERO
        }
    }
}

impl Enable {
    /// Takes a setpoint or start/stop command into the bookkeeping: `Some(Ok(()))` = write
    /// [`Enable::effective`] now, `Some(Err(outcome))` = refused (out of range), `None` = not
    /// such a command.
    pub fn take(
        &mut self,
        command: ChargerCommand,
        min: Current,
        max: Current,
    ) -> Option<Result<(), CommandOutcome>> {
        match command {
            ChargerCommand::SetCurrent(c) => Some(
                check_setpoint(c, min, max).map(|s| self.setpoint = s.unwrap_or(Current::ZERO)),
            ),
            ChargerCommand::StartStop(start) => {
                self.started = start;
                Some(Ok(()))
            }
            ChargerCommand::Unlock
            | ChargerCommand::Failsafe { .. }
            | ChargerCommand::SetPhases(_) => None,
        }
    }
}

/// The answer of a model that has no unlock command over Modbus.
pub fn cannot_unlock(model: &str) -> CommandOutcome {
    CommandOutcome::NotPossible(format!("the {model} cannot unlock over Modbus"))
}

/// A charging point configured as connected with one phase is not switched to three: its
/// box may have the switch, but the load management counts it on one phase.
pub fn check_phase_wiring(wired: PhaseCount, phases: PhaseCount) -> Result<(), CommandOutcome> {
    if wired == PhaseCount::One && phases == PhaseCount::Three {
        return Err(CommandOutcome::NotPossible(
            "the charging point is configured as connected with one phase".into(),
        ));
    }
    Ok(())
}

/// The answer of a model that cannot switch between one and three phases over Modbus.
pub fn cannot_switch_phases(model: &str) -> CommandOutcome {
    CommandOutcome::NotPossible(format!(
        "the {model} cannot switch between 1 and 3 phases over Modbus"
    ))
}

/// A failsafe command to a model without a failsafe current over Modbus: the current is
/// checked, nothing is written (refusing would raise a fault at every start that no setting
/// can clear), and the gap is said once in the log (`warned`).
pub fn no_failsafe(
    current: Current,
    min: Current,
    max: Current,
    model: &str,
    warned: &mut bool,
) -> CommandOutcome {
    if let Err(o) = check_setpoint(current, min, max) {
        return o;
    }
    if !*warned {
        tracing::warn!(
            "the {model} has no failsafe current over Modbus: if the gateway falls silent it keeps its last setpoint"
        );
        *warned = true;
    }
    CommandOutcome::Done
}

/// Whole amperes of a current (rounded down), as u16.
pub fn amps_u16(c: Current) -> u16 {
    u16::try_from(c.whole_amps_floor().max(0)).unwrap_or(u16::MAX)
}

/// Deci-amperes of a current (rounded down), as u16.
pub fn deciamps_u16(c: Current) -> u16 {
    u16::try_from((c.milliamps() / 100).max(0)).unwrap_or(u16::MAX)
}

/// Milliamperes as u16 (saturating).
pub fn milliamps_u16(c: Current) -> u16 {
    u16::try_from(c.milliamps().max(0)).unwrap_or(u16::MAX)
}

/// Register `addr` of a block read starting at `base`.
pub fn reg(block: &[u16], base: u16, addr: u16) -> Result<u16, DriverError> {
    addr.checked_sub(base)
        .and_then(|i| block.get(usize::from(i)).copied())
        .ok_or_else(|| DriverError::Comm(format!("register {addr} missing in the answer")))
}

/// Registers `addr..addr+n` of a block read starting at `base`.
pub fn regs(block: &[u16], base: u16, addr: u16, n: u16) -> Result<&[u16], DriverError> {
    let start = usize::from(addr.saturating_sub(base));
    block
        .get(start..start + usize::from(n))
        .filter(|_| addr >= base)
        .ok_or_else(|| DriverError::Comm(format!("registers {addr}+{n} missing in the answer")))
}

/// u32 high word first at `addr` of a block.
pub fn u32_at(block: &[u16], base: u16, addr: u16) -> Result<u32, DriverError> {
    decode::u32_be(regs(block, base, addr, 2)?)
        .ok_or_else(|| DriverError::Comm(format!("u32 at {addr}")))
}

/// f32 high word first at `addr` of a block.
pub fn f32_at(block: &[u16], base: u16, addr: u16) -> Result<f32, DriverError> {
    decode::f32_be(regs(block, base, addr, 2)?)
        .ok_or_else(|| DriverError::Comm(format!("f32 at {addr}")))
}

/// Three currents in mA; `0xFFFFFFFF` (or any of `invalid`) makes them invalid.
pub fn currents_ma(values: [u32; 3], invalid: &[u32]) -> Result<PerPhase<Current>, DriverError> {
    let mut out = PerPhase::splat(Current::ZERO);
    for (slot, v) in out.0.iter_mut().zip(values) {
        if invalid.contains(&v) {
            return Err(DriverError::InvalidCurrent(format!(
                "current register reads 0x{v:08X}"
            )));
        }
        *slot = Current::from_milliamps(
            i32::try_from(v)
                .map_err(|_| DriverError::InvalidCurrent(format!("current of {v} mA")))?,
        );
    }
    Ok(out)
}

/// Three currents in amperes as floats; NaN, infinities and negative values are invalid.
pub fn currents_f32(values: [f32; 3]) -> Result<PerPhase<Current>, DriverError> {
    let mut out = PerPhase::splat(Current::ZERO);
    for (slot, v) in out.0.iter_mut().zip(values) {
        if !v.is_finite() || v < 0.0 {
            return Err(DriverError::InvalidCurrent(format!("current reads {v}")));
        }
        *slot = Current::from_amps_f64(f64::from(v))
            .map_err(|e| DriverError::InvalidCurrent(e.to_string()))?;
    }
    Ok(out)
}

/// The set bits of a bitmask error register as separate parts (fault info 1–4), lowest
/// first; at most four.
pub fn split_bits(mask: u32) -> Vec<u32> {
    (0..32)
        .map(|i| 1u32 << i)
        .filter(|bit| mask & bit != 0)
        .take(4)
        .collect()
}

/// Text from registers holding one character each (UTF-16BE code units, Vestel).
pub fn utf16_text(r: &[u16]) -> String {
    char::decode_utf16(r.iter().copied().take_while(|c| *c != 0))
        .map(|c| c.unwrap_or('?'))
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `Some(text)` unless empty.
pub fn non_empty(text: String) -> Option<String> {
    if text.is_empty() { None } else { Some(text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setpoints() {
        let (min, max) = (Current::from_amps(6), Current::from_amps(32));
        assert_eq!(check_setpoint(Current::ZERO, min, max), Ok(None));
        assert_eq!(
            check_setpoint(Current::from_amps(16), min, max),
            Ok(Some(Current::from_amps(16)))
        );
        assert!(check_setpoint(Current::from_amps(3), min, max).is_err());
        assert!(check_setpoint(Current::from_amps(40), min, max).is_err());
        assert!(check_setpoint(Current::from_milliamps(-1), min, max).is_err());
    }

    #[test]
    fn invalid_currents() {
        assert!(matches!(
            currents_ma([1, 0xFFFF_FFFF, 3], &[0xFFFF_FFFF]),
            Err(DriverError::InvalidCurrent(_))
        ));
        assert!(matches!(
            currents_f32([1.0, f32::NAN, 3.0]),
            Err(DriverError::InvalidCurrent(_))
        ));
        assert_eq!(
            currents_f32([16.0, 0.0, 0.5]).unwrap().0,
            [
                Current::from_amps(16),
                Current::ZERO,
                Current::from_milliamps(500)
            ]
        );
    }

    #[test]
    fn a_one_phase_point_is_not_switched_to_three() {
        assert!(check_phase_wiring(PhaseCount::One, PhaseCount::Three).is_err());
        assert!(check_phase_wiring(PhaseCount::One, PhaseCount::One).is_ok());
        assert!(check_phase_wiring(PhaseCount::Three, PhaseCount::One).is_ok());
        assert!(check_phase_wiring(PhaseCount::Three, PhaseCount::Three).is_ok());
    }

    #[test]
    fn bits_and_text() {
        assert_eq!(split_bits(0x4022), vec![0x2, 0x20, 0x4000]);
        assert_eq!(split_bits(0), Vec::<u32>::new());
        assert_eq!(utf16_text(&[0x56, 0x45, 0, 0x41]), "VE");
        assert_eq!(reg(&[1, 2, 3], 10, 12).unwrap(), 3);
        assert!(reg(&[1, 2, 3], 10, 13).is_err());
        assert!(reg(&[1, 2, 3], 10, 9).is_err());
        assert!(regs(&[1, 2, 3], 10, 9, 2).is_err());
    }
}
