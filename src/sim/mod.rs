//! Simulated charging points for the demo, the tests and the benchmark.
//!
//! A [`SimCharger`] holds the physical state of one charging point (vehicle, setpoint,
//! start/stop, failsafe, meters) and serves one model's register map ([`models`]) over
//! Modbus TCP (tokio-modbus's server), Modbus RTU (tokio-modbus's RTU server on a serial
//! port or pty) or Modbus ASCII (hand-written, tokio-modbus has none) — see [`server`].
//! The simulated vehicle plugs in ([`SimHandle::plug_in`]), draws up to the offered current on
//! one or three phases and finishes when its battery is full.
//!
//! Fault injection for tests ([`Faults`]): silent (unreachable), exception replies, garbage or
//! truncated replies, delayed replies, the identity of another model, invalid current values,
//! a manufacturer error code.
//!
//! The register maps here are written from `docs/register-maps.md`, on
//! their own, not from the drivers.

pub mod models;
pub mod pty;
pub mod server;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use models::{SimModel, Variant};
pub use server::{SimServer, serve_ascii, serve_line, serve_rtu, serve_tcp};

use crate::modbus::frame::{Request, Response};
use crate::units::{Current, Energy};

/// A simulated vehicle.
#[derive(Debug, Clone, PartialEq)]
pub struct Vehicle {
    /// 1 or 3 phases.
    pub phases: u8,
    /// The most it draws per phase.
    pub max_current: Current,
    /// Energy until full.
    pub capacity: Energy,
    /// RFID tag used to start the session.
    pub rfid: Option<String>,
    /// ISO 15118 EVCCID.
    pub evccid: Option<String>,
    /// How long it takes to follow a new offer (IEC 61851-1 allows an EV 5 s to follow a
    /// new PWM duty cycle; zero = at once).
    pub reaction: Duration,
}

impl Vehicle {
    /// A three-phase car drawing up to 16 A, needing 10 kWh.
    pub fn three_phase() -> Self {
        Self {
            phases: 3,
            max_current: Current::from_amps(16),
            capacity: Energy::from_watt_hours(10_000),
            rfid: Some("04A1B2C3".into()),
            evccid: Some("0012AB34CD56".into()),
            reaction: Duration::ZERO,
        }
    }

    /// The same vehicle, following a new offer after `reaction`.
    #[must_use]
    pub fn with_reaction(self, reaction: Duration) -> Self {
        Self { reaction, ..self }
    }

    /// A single-phase car drawing up to 32 A.
    pub fn single_phase() -> Self {
        Self {
            phases: 1,
            max_current: Current::from_amps(32),
            ..Self::three_phase()
        }
    }
}

/// Injected faults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// No answers at all, new TCP connections refused.
    pub offline: bool,
    /// Every request answered with this exception code.
    pub exception: Option<u8>,
    /// Answers replaced by garbage.
    pub garbage: bool,
    /// Answers cut short (TCP: a consistent frame with two data bytes fewer; serial: the frame
    /// cut before its CRC/LRC).
    pub truncate: bool,
    /// Answers delayed by this long.
    pub delay: Duration,
    /// The identity registers show another model.
    pub wrong_identity: bool,
    /// Current registers show the model's invalid marker (0xFFFFFFFF, NaN, …).
    pub invalid_currents: bool,
    /// Manufacturer error code shown (0 = none).
    pub error_code: u32,
}

/// How long a box stops charging for a 1-/3-phase switch: the control pilot is interrupted,
/// the relays move, the car restarts. openWB's own switching sequence takes at least 7 s
/// (evcc `charger/openwb-native_linux.go:16,190–201`: 1 s, the CP wait of ≥ 5 s, 1 s) before
/// the car is asked to restart; evcc gives a box 60 s before it trusts the phases measured
/// after a switch (`core/loadpoint.go:62`). Tests shorten it ([`SimState::phase_switch_pause`]).
pub const PHASE_SWITCH_PAUSE: Duration = Duration::from_secs(10);

/// Readings a test forces on a simulated charging point: its meters show these instead of
/// what the vehicle draws, and its lifetime counters stand still (a test that forces
/// readings sets [`SimState::energy_phases_wh`] itself). For range tests: a current of
/// 700 A or a temperature of −300 °C is not physics, but a register can hold it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Forced {
    /// Currents per phase.
    pub currents: Option<[Current; 3]>,
    /// Power per phase in W.
    pub power_phases_w: Option<[f64; 3]>,
    /// Board temperature in °C.
    pub temperature_c: Option<f64>,
    /// Raw holding registers served instead of the model's (garbage values, for parser tests).
    pub holding: std::collections::BTreeMap<u16, u16>,
    /// Raw input registers served instead of the model's.
    pub input: std::collections::BTreeMap<u16, u16>,
}

impl Forced {
    /// Whether any reading is forced.
    pub fn any(&self) -> bool {
        self.currents.is_some() || self.power_phases_w.is_some() || self.temperature_c.is_some()
    }
}

/// The physical state of a simulated charging point.
#[derive(Debug, Clone)]
pub struct SimState {
    /// The plugged-in vehicle.
    pub vehicle: Option<Vehicle>,
    /// Current offered by the box (its setpoint register).
    pub setpoint: Current,
    /// Started (start/stop, enable, availability).
    pub started: bool,
    /// Cable unlocked by a command since plug-in.
    pub unlocked: bool,
    /// Failsafe current.
    pub failsafe_current: Current,
    /// Failsafe timeout (zero = off).
    pub failsafe_timeout: Duration,
    /// Whether the failsafe current applies (heartbeat missed).
    pub in_failsafe: bool,
    /// Hardware maximum per phase.
    pub hw_max: Current,
    /// Lifetime energy per phase in Wh.
    pub energy_phases_wh: [f64; 3],
    /// Energy of the current session in Wh.
    pub session_wh: f64,
    /// Board temperature in °C.
    pub temperature_c: f64,
    /// Phases the box switches (1 or 3).
    pub phases: u8,
    /// How long the box stops charging for a phase switch ([`PHASE_SWITCH_PAUSE`]).
    pub phase_switch_pause: Duration,
    /// A phase switch is under way until then: nothing is offered.
    pub switching_until: Option<Instant>,
    /// Writes received (address, values), for write-hygiene tests.
    pub writes: Vec<(u16, Vec<u16>)>,
    /// Other model-specific registers written (address → value).
    pub extra: std::collections::BTreeMap<u16, u16>,
    /// Models with optional metering (Phoenix EV Charge Control): a meter is fitted to the
    /// box. Without it the box measures nothing.
    pub meter_fitted: bool,
    /// Readings forced by a test.
    pub forced: Forced,
    /// A manufacturer error is shown ([`Faults::error_code`]): nothing is offered.
    pub in_error: bool,
    /// The firmware variant or installation quirk the box shows ([`Variant`]).
    pub variant: Variant,
    /// A session ended since the last plug-in (the vehicle left after charging).
    pub after_session: bool,
    /// MENNEKES AMTRON Compact: an error state latched until the recovery writes.
    pub error_latched: bool,
    /// Heidelberg Energy Control: in standby (answers nothing).
    pub standby: bool,
    created: Instant,
    /// The offer the vehicle follows (after its reaction time), the latest offer and since
    /// when it stands.
    followed: Current,
    offer: Current,
    offer_since: Instant,
    last_keepalive: Instant,
    last_step: Instant,
    session_start: Option<Instant>,
}

impl SimState {
    fn new(now: Instant) -> Self {
        Self {
            vehicle: None,
            setpoint: Current::from_amps(16),
            started: true,
            unlocked: false,
            failsafe_current: Current::from_amps(6),
            failsafe_timeout: Duration::ZERO,
            in_failsafe: false,
            hw_max: Current::from_amps(32),
            energy_phases_wh: [1000.0, 1000.0, 1000.0],
            session_wh: 0.0,
            temperature_c: 30.0,
            phases: 3,
            phase_switch_pause: PHASE_SWITCH_PAUSE,
            switching_until: None,
            writes: Vec::new(),
            extra: std::collections::BTreeMap::new(),
            meter_fitted: true,
            forced: Forced::default(),
            in_error: false,
            variant: Variant::STANDARD,
            after_session: false,
            error_latched: false,
            standby: false,
            created: now,
            followed: Current::ZERO,
            offer: Current::ZERO,
            offer_since: now,
            last_keepalive: now,
            last_step: now,
            session_start: None,
        }
    }

    /// The current the box offers the vehicle now.
    pub fn offered(&self) -> Current {
        if self.in_error || self.switching_until.is_some() {
            Current::ZERO
        } else if self.in_failsafe {
            self.failsafe_current.min(self.hw_max)
        } else if !self.started {
            Current::ZERO
        } else {
            self.setpoint.min(self.hw_max)
        }
    }

    /// A vehicle is plugged in.
    pub fn connected(&self) -> bool {
        self.vehicle.is_some()
    }

    /// The vehicle is full.
    pub fn full(&self) -> bool {
        self.vehicle
            .as_ref()
            .is_some_and(|v| self.session_wh >= v.capacity.as_watt_hours_f64())
    }

    /// Currents drawn per phase.
    pub fn currents(&self) -> [Current; 3] {
        if let Some(forced) = self.forced.currents {
            return forced;
        }
        let Some(v) = &self.vehicle else {
            return [Current::ZERO; 3];
        };
        let offered = if v.reaction.is_zero() {
            self.offered()
        } else {
            self.followed
        };
        if offered < Current::from_amps(6) || self.full() {
            return [Current::ZERO; 3];
        }
        let i = offered.min(v.max_current);
        let phases = v.phases.min(self.phases);
        if phases >= 3 {
            [i; 3]
        } else {
            [i, Current::ZERO, Current::ZERO]
        }
    }

    /// Whether the vehicle draws current.
    pub fn charging(&self) -> bool {
        self.currents().iter().any(|c| *c > Current::ZERO)
    }

    /// Power per phase in W at 230 V.
    pub fn power_phases_w(&self) -> [f64; 3] {
        if let Some(forced) = self.forced.power_phases_w {
            return forced;
        }
        self.currents().map(|c| c.as_amps_f64() * 230.0)
    }

    /// Total power in W.
    pub fn power_w(&self) -> f64 {
        self.power_phases_w().iter().sum()
    }

    /// Lifetime energy in Wh.
    pub fn energy_wh(&self) -> f64 {
        self.energy_phases_wh.iter().sum()
    }

    /// Seconds since the session started.
    pub fn session_secs(&self) -> u32 {
        self.session_start.map_or(0, |s| {
            u32::try_from(s.elapsed().as_secs()).unwrap_or(u32::MAX)
        })
    }

    /// Switches the box to `phases` (1 or 3). With a vehicle plugged in the box stops
    /// offering current for [`SimState::phase_switch_pause`] and then resumes on the new
    /// phases; a vehicle draws on no more phases than the box switches.
    pub fn switch_phases(&mut self, phases: u8) {
        if phases == self.phases {
            return;
        }
        self.phases = phases;
        if self.vehicle.is_some() {
            self.switching_until = Some(self.last_step + self.phase_switch_pause);
        }
    }

    /// Advances the simulation to `now` (nothing moves while readings are forced).
    fn step(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last_step).as_secs_f64();
        self.last_step = now;
        if self.switching_until.is_some_and(|t| now >= t) {
            self.switching_until = None;
        }
        if !self.failsafe_timeout.is_zero()
            && now.saturating_duration_since(self.last_keepalive) > self.failsafe_timeout
        {
            self.in_failsafe = true;
        }
        // The vehicle follows a new offer after its reaction time.
        let offered = self.offered();
        if offered != self.offer {
            self.offer = offered;
            self.offer_since = now;
        }
        let reaction = self.vehicle.as_ref().map_or(Duration::ZERO, |v| v.reaction);
        if now.saturating_duration_since(self.offer_since) >= reaction {
            self.followed = self.offer;
        }
        if self.forced.any() {
            if let Some(t) = self.forced.temperature_c {
                self.temperature_c = t;
            }
            return;
        }
        let p = self.power_phases_w();
        for (e, p) in self.energy_phases_wh.iter_mut().zip(p) {
            *e += p * dt / 3600.0;
        }
        self.session_wh += p.iter().sum::<f64>() * dt / 3600.0;
        let amps: f64 = self.currents().iter().map(|c| c.as_amps_f64()).sum();
        self.temperature_c = 30.0 + amps / 4.0;
    }

    /// Records a keep-alive (heartbeat) from the gateway.
    pub fn keepalive(&mut self, now: Instant) {
        self.last_keepalive = now;
        self.in_failsafe = false;
    }
}

/// One simulated charging point.
#[derive(Debug)]
pub struct SimCharger {
    /// The model whose registers are served.
    pub model: SimModel,
    /// Physical state.
    pub state: SimState,
    /// Injected faults.
    pub faults: Faults,
    /// Requests answered.
    pub requests: u64,
    /// The last request made the box close the TCP connection (the server does so before
    /// reading the next request).
    pub close_connection: bool,
}

impl SimCharger {
    /// A simulated `model` with no vehicle.
    pub fn new(model: SimModel) -> Self {
        Self::with_variant(model, Variant::STANDARD)
    }

    /// A simulated `model` in firmware variant `variant`, with no vehicle.
    pub fn with_variant(model: SimModel, variant: Variant) -> Self {
        let mut state = SimState::new(Instant::now());
        state.variant = variant;
        model.init(&mut state);
        Self {
            model,
            state,
            faults: Faults::default(),
            requests: 0,
            close_connection: false,
        }
    }

    /// Answers one request to `unit`: `None` = no answer, `Err(code)` = exception.
    pub fn handle(&mut self, unit: u8, request: &Request) -> Option<Result<Response, u8>> {
        if self.faults.offline {
            return None;
        }
        if let Some(code) = self.faults.exception {
            return Some(Err(code));
        }
        let now = Instant::now();
        if !self.model.tick(&mut self.state, &self.faults, now) {
            return None;
        }
        // A box that shows a manufacturer error stops charging, as real ones do.
        self.state.in_error = self.faults.error_code != 0 || self.state.error_latched;
        self.state.step(now);
        if self.model.closes_on(&self.state, request) {
            self.close_connection = true;
            return None;
        }
        self.requests += 1;
        let result = self
            .model
            .serve(&mut self.state, &self.faults, unit, request);
        if result.is_ok() && self.model.keeps_alive(request) {
            self.state.keepalive(now);
        }
        if let (Ok(_), Request::WriteSingle(a, v)) = (&result, request) {
            self.state.writes.push((*a, vec![*v]));
        }
        if let (Ok(_), Request::WriteMultiple(a, v)) = (&result, request) {
            self.state.writes.push((*a, v.clone()));
        }
        Some(result)
    }
}

/// A shared handle on a simulated charging point: the servers and the test both hold one.
#[derive(Debug, Clone)]
pub struct SimHandle(Arc<Mutex<SimCharger>>);

impl SimHandle {
    /// A new simulated `model`.
    pub fn new(model: SimModel) -> Self {
        Self::with_variant(model, Variant::STANDARD)
    }

    /// A new simulated `model` in firmware variant `variant`.
    pub fn with_variant(model: SimModel, variant: Variant) -> Self {
        Self(Arc::new(Mutex::new(SimCharger::with_variant(
            model, variant,
        ))))
    }

    /// Locks the simulator (never across an await).
    pub fn lock(&self) -> MutexGuard<'_, SimCharger> {
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Plugs a vehicle in (starts a session).
    pub fn plug_in(&self, vehicle: Vehicle) {
        let mut s = self.lock();
        s.state.step(Instant::now());
        s.state.vehicle = Some(vehicle);
        s.state.session_wh = 0.0;
        s.state.unlocked = false;
        s.state.after_session = false;
        s.state.session_start = Some(Instant::now());
    }

    /// Unplugs the vehicle.
    pub fn unplug(&self) {
        let mut s = self.lock();
        s.state.step(Instant::now());
        s.state.vehicle = None;
        s.state.session_start = None;
        s.state.after_session = true;
    }

    /// Changes the injected faults.
    pub fn set_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.lock().faults);
    }

    /// A copy of the state.
    pub fn state(&self) -> SimState {
        let mut s = self.lock();
        s.state.step(Instant::now());
        s.state.clone()
    }

    /// The model.
    pub fn model(&self) -> SimModel {
        self.lock().model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vehicle_with_a_reaction_time_follows_a_new_offer_only_after_it() {
        let t0 = Instant::now();
        let mut s = SimState::new(t0);
        s.vehicle = Some(Vehicle::three_phase().with_reaction(Duration::from_millis(1500)));
        s.setpoint = Current::from_amps(10);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // It starts after its reaction time too.
        s.step(t0);
        assert_eq!(s.currents(), [Current::ZERO; 3]);
        s.step(at(1500));
        assert_eq!(s.currents(), [Current::from_amps(10); 3]);
        s.setpoint = Current::from_amps(6);
        s.step(at(2000));
        assert_eq!(
            s.currents(),
            [Current::from_amps(10); 3],
            "still the old offer"
        );
        s.step(at(3400));
        assert_eq!(
            s.currents(),
            [Current::from_amps(10); 3],
            "1.4 s after the change"
        );
        s.step(at(3500));
        assert_eq!(s.currents(), [Current::from_amps(6); 3]);
    }

    #[test]
    fn a_vehicle_without_a_reaction_time_follows_at_once() {
        let t0 = Instant::now();
        let mut s = SimState::new(t0);
        s.vehicle = Some(Vehicle::three_phase());
        s.setpoint = Current::from_amps(10);
        assert_eq!(s.currents(), [Current::from_amps(10); 3]);
        s.setpoint = Current::from_amps(7);
        assert_eq!(s.currents(), [Current::from_amps(7); 3]);
    }
}
