//! The sans-IO core: `Core::handle(event, now) -> actions`.
//!
//! The core owns the gateway's decisions and nothing else. It does no I/O and reads no
//! clock: time comes in as `now`, outputs are [`Action`] values, and the same events at the
//! same instants always give the same actions. The async shell ([`crate::gateway::shell`]) feeds it
//! events from the KNX link, the charger tasks and the website and carries out its actions.
//!
//! Calling protocol:
//! 1. [`Core::new`] with a configuration (validated here into configuration faults);
//! 2. [`Event::Started`] once; then every event as it happens, in order;
//! 3. after each call, [`Core::poll_timeout`] says when to deliver [`Event::Tick`] next.
//!
//! Owns: faults and their display (objects 8/9, 94/95 + offset, the APP LED),
//! grid-supporting control and interruption state (objects 1/2, 55/56 + offset),
//! per-charging-point control (start/stop, setpoints, session values), the dynamic load
//! management's state and cycle, programming mode and the LED states, and why each charging
//! point gets its current ([`Core::limits`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chargers::{
    ChargerCommand, ChargerIdentity, ChargerStatus, CommandOutcome, DriverError,
};
use crate::config::{Config, validate};
use crate::faults::{Fault, FaultBoard, FaultCode, FaultLed, Scope};
pub use crate::hw::leds::{AppLed, ComLed, Leds};
use crate::knx::dpt::TimeOfDay;
pub use crate::knx::link::LinkState;
use crate::objects::{ObjectTable, Value};
use crate::units::{ChargePointId, GoNumber};

mod dlm;
mod points;
pub mod reconfigure;

pub use crate::dlm::Cycle as DlmCycle;

use crate::objects::number::{cp as offset, device as object};

/// The device objects that feed the DLM: the smart-meter values and the high-power and
/// "In operation" inputs.
const DLM_INPUTS: [GoNumber; 5] = [
    object::METER_VALUE_1,
    object::METER_VALUE_2,
    object::METER_VALUE_3,
    object::HIGH_POWER_DEVICES,
    object::IN_OPERATION,
];

/// Something that happened outside the core.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The gateway started; sent once before any other event.
    Started,
    /// The instant returned by [`Core::poll_timeout`] was reached.
    Tick,
    /// A group object received a value from the bus (GroupValue_Write, or a response to an
    /// object with the U flag), already decoded with the object's DPT.
    ObjectWritten {
        /// The object.
        object: GoNumber,
        /// The decoded value.
        value: Value,
    },
    /// The KNX link changed state.
    KnxLink(LinkState),
    /// Telegram traffic was seen on the bus (drives the COM LED).
    KnxTraffic,
    /// The programming button was pressed.
    ProgrammingButton,
    /// Programming mode set explicitly (website, or ETS via the device object).
    SetProgrammingMode(bool),
    /// Part of the board (an LED, the programming button, the RS485 port or its termination
    /// switch) is missing or refuses: the device fault ContactSupport (130) with this
    /// message. The gateway carries on without that part.
    BoardFault(String),
    /// The wall-clock time of day now (from the shell, at start and now and then). The core
    /// extrapolates from it with the instants it is given; it never reads a clock.
    Clock(TimeOfDay),
    /// A charging point answered a poll.
    ChargerPolled {
        /// Which one.
        cp: ChargePointId,
        /// What it reported.
        status: ChargerStatus,
    },
    /// A charging point's identity was read (at start and after reconnecting).
    ChargerIdentified {
        /// Which one.
        cp: ChargePointId,
        /// Serial number, firmware, model text.
        identity: ChargerIdentity,
    },
    /// A charging point could not be polled, identified or commanded.
    ChargerFailed {
        /// Which one.
        cp: ChargePointId,
        /// Why (maps to the spec's fault code).
        error: DriverError,
    },
    /// The retrofit electricity meter of a charging point was read (`None` = fine).
    MeterStatus {
        /// Which charging point.
        cp: ChargePointId,
        /// Why the read failed, if it did (EMeterNotReach 30, EMeter Comm 20, EMeter Error 10).
        error: Option<crate::meters::MeterError>,
    },
    /// A command reached the charging point.
    ChargerCommandDone {
        /// Which one.
        cp: ChargePointId,
        /// The command.
        command: ChargerCommand,
        /// Carried out, or refused by the state or range (OpNotPossible / ValOutOfRange).
        outcome: CommandOutcome,
    },
    /// Counters kept in the data directory from before a restart ([`Action::Persist`]); sent
    /// once, before the first poll.
    Restored(Persisted),
    /// A new configuration applied live, without a restart (an ETS download completed, a
    /// master reset unloaded the application): see the calling protocol in
    /// [`reconfigure`].
    Reconfigure {
        /// The new configuration.
        config: Box<Config>,
        /// Whether it is a real one (false: unloaded application, unconfigured).
        configured: bool,
    },
}

/// What the core keeps across a restart (the shell stores it in the data directory): each
/// charging point's lifetime energy counter at the moment its vehicle plugged in, so the
/// energy of the current charge (object 50n+24) stays right when the gateway restarts while
/// a vehicle charges.
///
/// A restored counter is used only if the first poll after the restart finds a vehicle
/// connected and the charging point's counter at or above it (a counter that went backwards
/// belongs to another box or a reset one: the charge then counts from that poll).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Persisted {
    /// Charging point number → lifetime counter at plug-in, in Wh·1000 (mWh).
    pub plug_in_mwh: BTreeMap<u8, i64>,
}

/// What the core asks the shell to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Give an object a new value. The object engine sends it if its flags and send policy
    /// say so, and answers reads with it.
    SetObject {
        /// The object.
        object: GoNumber,
        /// Its value.
        value: Value,
    },
    /// Send a GroupValue_Read for an object (objects with the I flag, at start-up).
    ReadObject {
        /// The object.
        object: GoNumber,
    },
    /// Show these LED states.
    Leds(Leds),
    /// Send a command to a charging point's task.
    Charger {
        /// Which one.
        cp: ChargePointId,
        /// What to do.
        command: ChargerCommand,
    },
    /// Store this in the data directory (it replaces what was stored); given back as
    /// [`Event::Restored`] after a restart.
    Persist(Persisted),
}

/// The charging point a charger task's event is about.
fn charger_of(event: &Event) -> Option<ChargePointId> {
    match event {
        Event::ChargerPolled { cp, .. }
        | Event::ChargerIdentified { cp, .. }
        | Event::ChargerFailed { cp, .. }
        | Event::ChargerCommandDone { cp, .. }
        | Event::MeterStatus { cp, .. } => Some(*cp),
        _ => None,
    }
}

/// How long the COM LED keeps flashing after the last telegram.
const TRAFFIC_HOLD: Duration = Duration::from_millis(500);

/// The gateway's decision logic (see the module docs for the calling protocol).
#[derive(Debug)]
pub struct Core {
    config: Config,
    table: ObjectTable,
    config_faults: Vec<Fault>,
    /// Charging points a serious configuration fault takes out of operation.
    out_of_operation: std::collections::BTreeSet<ChargePointId>,
    faults: FaultBoard,
    configured: bool,
    programming: bool,
    link: LinkState,
    traffic_until: Option<Instant>,
    leds: Option<Leds>,
    grid_control: bool,
    points: BTreeMap<ChargePointId, points::Point>,
    clock: Option<points::ClockAnchor>,
    dlm: crate::dlm::Controller,
    values: BTreeMap<GoNumber, Value>,
    /// Why each charging point gets its current now.
    limits: crate::dlm::Limits,
}

impl Core {
    /// A core for `config`. `configured` is false for a device that has never received a
    /// configuration (factory state): it then shows the "not configured" LED pattern.
    pub fn new(config: Config, configured: bool) -> Self {
        let config_faults = if configured {
            validate::validate(&config)
        } else {
            Vec::new()
        };
        let table = config.object_table();
        let dlm = dlm::controller(&config);
        Self {
            out_of_operation: validate::out_of_operation(&config_faults),
            config,
            table,
            config_faults,
            faults: FaultBoard::new(),
            configured,
            programming: false,
            link: LinkState::Down,
            traffic_until: None,
            leds: None,
            grid_control: false,
            points: BTreeMap::new(),
            clock: None,
            dlm,
            values: BTreeMap::new(),
            limits: crate::dlm::Limits::default(),
        }
    }

    /// Handles one event at `now` and returns what to do.
    #[must_use]
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Started => self.start(now, &mut out),
            Event::Tick => {
                self.points_tick(now, &mut out);
                self.dlm_update(now, &mut out);
            }
            Event::Clock(time) => self.clock = Some(points::ClockAnchor { at: now, time }),
            Event::ObjectWritten { object, value } => {
                self.object_written(object, &value, now, &mut out);
            }
            Event::KnxLink(state) => self.link = state,
            Event::KnxTraffic => self.traffic_until = Some(now + TRAFFIC_HOLD),
            Event::ProgrammingButton => self.programming = !self.programming,
            Event::SetProgrammingMode(on) => self.programming = on,
            Event::BoardFault(message) => {
                self.faults
                    .raise(Fault::device(FaultCode::ContactSupport, message));
                self.publish_faults(&mut out);
            }
            Event::Restored(persisted) => self.restore(&persisted),
            Event::Reconfigure { config, configured } => {
                self.reconfigure(*config, configured, now, &mut out);
            }
            Event::ChargerPolled { .. }
            | Event::ChargerIdentified { .. }
            | Event::ChargerFailed { .. }
            | Event::ChargerCommandDone { .. }
            | Event::MeterStatus { .. } => {
                if charger_of(&event).is_some_and(|cp| self.out_of_operation.contains(&cp)) {
                    // A serious configuration fault took it out of operation (spec ch. 11):
                    // what its task reports is not used until a new download.
                    return out;
                }
                let polled = match &event {
                    Event::ChargerPolled { cp, .. } => Some(*cp),
                    _ => None,
                };
                // A command carried out is no DLM input. Re-running the DLM on it made a
                // feedback loop while ramping: every completed setpoint ramped on by the few
                // microseconds since the last one and sent the next setpoint at once.
                let dlm_input = !matches!(event, Event::ChargerCommandDone { .. });
                self.charger_event(event, now, &mut out);
                if let Some(cp) = polled {
                    self.dlm_polled(cp, now, &mut out);
                } else if dlm_input {
                    self.dlm_update(now, &mut out);
                }
            }
        }
        if self.traffic_until.is_some_and(|t| now >= t) {
            self.traffic_until = None;
        }
        let leds = self.compute_leds();
        if self.leds != Some(leds) {
            self.leds = Some(leds);
            out.push(Action::Leds(leds));
        }
        out
    }

    /// When the core next needs [`Event::Tick`], if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.traffic_until,
            self.points_timeout(),
            self.dlm_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The configuration the core runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The group-object table of the configuration.
    pub fn table(&self) -> &ObjectTable {
        &self.table
    }

    /// The configuration faults found at start.
    pub fn config_faults(&self) -> &[Fault] {
        &self.config_faults
    }

    /// The fault board.
    pub fn faults(&self) -> &FaultBoard {
        &self.faults
    }

    /// Whether programming mode is on.
    pub fn programming_mode(&self) -> bool {
        self.programming
    }

    /// The KNX link's state as last reported by the link.
    pub fn link_state(&self) -> LinkState {
        self.link
    }

    /// The current LED states.
    pub fn leds(&self) -> Leds {
        self.compute_leds()
    }

    /// The value the core last gave an object.
    pub fn value(&self, object: GoNumber) -> Option<&Value> {
        self.values.get(&object)
    }

    fn set(&mut self, object: GoNumber, value: Value, out: &mut Vec<Action>) {
        if !self.table.contains(object) || self.values.get(&object) == Some(&value) {
            return;
        }
        self.values.insert(object, value.clone());
        out.push(Action::SetObject { object, value });
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.raise_config_faults();
        self.set(object::GRID_CONTROL_STATE, Value::Bool(false), out);
        for cp in ChargePointId::all() {
            self.set(
                points::obj(cp, offset::INTERRUPTION_STATE),
                Value::Bool(false),
                out,
            );
        }
        self.publish_faults(out);
        self.start_points(out);
        self.dlm_update(now, out);
        self.read_on_init(out);
    }

    /// Objects with the I flag ask the bus for their value (at start-up and after a download).
    fn read_on_init(&self, out: &mut Vec<Action>) {
        out.extend(
            self.table
                .objects()
                .iter()
                .filter(|o| o.flags.read_on_init && o.flags.communication)
                .map(|o| Action::ReadObject { object: o.number }),
        );
    }

    fn publish_faults(&mut self, out: &mut Vec<Action>) {
        let device = self.faults.display(Scope::Device);
        self.set(object::FAULT, Value::Bool(device.present), out);
        self.set(
            object::LAST_FAULT,
            Value::Text(device.text().to_owned()),
            out,
        );
        for cp in ChargePointId::all() {
            let d = self.faults.display(Scope::ChargingPoint(cp));
            self.set(points::obj(cp, offset::FAULT), Value::Bool(d.present), out);
            self.set(
                points::obj(cp, offset::LAST_FAULT),
                Value::Text(d.text().to_owned()),
                out,
            );
        }
    }

    fn object_written(
        &mut self,
        object: GoNumber,
        value: &Value,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(obj) = self.table.get(object) else {
            return;
        };
        if !(obj.flags.communication && (obj.flags.write || obj.flags.update)) {
            return;
        }
        if object == object::GRID_CONTROL {
            if let Value::Bool(on) = value {
                self.grid_control = *on;
                self.set(object::GRID_CONTROL_STATE, Value::Bool(*on), out);
                for cp in ChargePointId::all() {
                    self.apply_target(cp, out);
                }
            }
            return;
        }
        if DLM_INPUTS.contains(&object) {
            self.dlm_written(object, value, now, out);
            return;
        }
        if let Some((cp, off)) = object.charging_point() {
            self.point_written(cp, off, value, out);
            if off == 5 {
                // A released interruption rejoins the distribution at once.
                self.dlm_update(now, out);
            }
        }
    }

    /// What the DLM saw and decided in its last cycle.
    pub fn dlm_cycle(&self) -> Option<DlmCycle> {
        self.dlm.cycle()
    }

    /// Why each charging point gets the current it is told now (`None` for inactive ones):
    /// recorded by the DLM's cycle and by the core's own steps (interruption, grid-supporting
    /// control, the setpoint of object 60 with the DLM off).
    pub fn limits(&self) -> crate::dlm::Limits {
        self.limits
    }

    fn compute_leds(&self) -> Leds {
        let app = if self.configured {
            match self.faults.led() {
                FaultLed::Normal => AppLed::On,
                FaultLed::ThreeFlashes => AppLed::ThreeFlashes,
                FaultLed::FiveFlashes => AppLed::FiveFlashes,
            }
        } else {
            AppLed::Unconfigured
        };
        let com = match (self.link, self.traffic_until.is_some()) {
            (LinkState::Connected, true) => ComLed::Traffic,
            (LinkState::Connected, false) => ComLed::On,
            _ => ComLed::Off,
        };
        Leds {
            prog: self.programming,
            app,
            com,
        }
    }
}

#[cfg(test)]
mod tests;
