//! The group-object engine: what the gateway's objects do on the bus.
//!
//! Sans-IO and deterministic, like the core: frames and values come in with `now`, frames to
//! send come out of [`Engine::poll_transmit`], and [`Engine::poll_timeout`] says when to call
//! again. It owns:
//!
//! * **flag semantics**: C enables communication at all; R answers GroupValue_Read with the
//!   current value (on the address that was read); W accepts GroupValue_Write; T transmits on
//!   change; U takes a GroupValue_Response as an update; I asks the bus for the value at
//!   start-up ([`Engine::request_read`]);
//! * **decoding** of received values with the object's configured DPT into a typed
//!   [`Value`]. A wrong-size payload or an out-of-range value is rejected and logged, not
//!   applied;
//! * **send policy**: send on change; measured values (current, power, energy, temperature)
//!   only when they moved by at least the configured minimum change; optional cyclic
//!   sending of measured values;
//! * **bus-load limiter**: a token bucket sized for TP1 (default 20 telegrams/s, burst of
//!   one second). It queues by priority: faults first, then states and responses, then
//!   measured values. A newer value of an object still waiting in the queue replaces the stale
//!   one, so a flood of changes never builds a backlog.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::{ObjectTable, Priority, Value};
use crate::knx::dpt::{self, Dpt, DptValue};
use crate::knx::wire::apdu::{Apdu, Payload, Tpdu};
use crate::knx::wire::cemi::{Destination, LData, LDataService, Priority as BusPriority};
use crate::knx::{GroupAddress, IndividualAddress};
use crate::units::{Current, Energy, GoNumber, Power, Temperature};

/// When measured values are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendPolicy {
    /// Minimum change of a current before it is sent again.
    pub min_change_current: Current,
    /// Minimum change of a power.
    pub min_change_power: Power,
    /// Minimum change of an energy.
    pub min_change_energy: Energy,
    /// Minimum change of a temperature.
    pub min_change_temperature: Temperature,
    /// Cyclic sending of measured values (`None` = off).
    pub cyclic: Option<Duration>,
    /// Bus-load limit in telegrams per second.
    pub max_rate: u8,
    /// Objects with a send mode of their own instead of the minimum change and `cyclic`
    /// above (object 82, internal temperature: the "Send temperature values" parameter and
    /// its cycle time).
    pub own: BTreeMap<GoNumber, OwnSending>,
}

/// The send mode of one object ([`SendPolicy::own`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnSending {
    /// Sent when the value moved by at least the minimum change.
    pub on_change: bool,
    /// Sent every this long, once it has a value (`None` = not cyclically).
    pub cycle: Option<Duration>,
}

impl Default for SendPolicy {
    fn default() -> Self {
        Self {
            min_change_current: Current::from_milliamps(500),
            min_change_power: Power::from_watts(100),
            min_change_energy: Energy::from_watt_hours(100),
            min_change_temperature: Temperature::from_centi_celsius(50),
            cyclic: None,
            max_rate: 20,
            own: BTreeMap::new(),
        }
    }
}

/// A value received for an object (to hand to the core as `Event::ObjectWritten`).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The object.
    pub object: GoNumber,
    /// Its decoded value.
    pub value: Value,
}

/// Counters for logs, the website and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the link.
    pub sent: u64,
    /// Values replaced in the queue before they were sent.
    pub coalesced: u64,
    /// Received values rejected (wrong size, out of range, wrong type).
    pub rejected: u64,
}

/// Something waiting to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Item {
    /// GroupValue_Write of the object's value on its sending address.
    Write(GoNumber),
    /// GroupValue_Response of the object's value on the address that was read.
    Response(GoNumber, GroupAddress),
    /// GroupValue_Read on the object's sending address.
    Read(GoNumber),
}

/// The priority queues of the limiter, FIFO inside a class, one entry per item.
#[derive(Debug, Default)]
struct Queue {
    classes: [VecDeque<Item>; 3],
}

impl Queue {
    fn class(priority: Priority, item: Item) -> usize {
        match (priority, item) {
            (Priority::Alarm, _) => 0,
            (_, Item::Response(..) | Item::Read(_)) | (Priority::State | Priority::Command, _) => 1,
            (Priority::Measurement, _) => 2,
        }
    }

    /// Queues `item`; returns false when it was already waiting (the newer value will be
    /// sent in its place: values are read at send time).
    fn push(&mut self, class: usize, item: Item) -> bool {
        let Some(q) = self.classes.get_mut(class) else {
            return false;
        };
        if q.contains(&item) {
            return false;
        }
        q.push_back(item);
        true
    }

    fn pop(&mut self) -> Option<Item> {
        self.classes.iter_mut().find_map(VecDeque::pop_front)
    }

    fn len(&self) -> usize {
        self.classes.iter().map(VecDeque::len).sum()
    }
}

/// The group-object engine of one configuration (see the module docs).
#[derive(Debug)]
pub struct Engine {
    table: ObjectTable,
    dpts: BTreeMap<GoNumber, Dpt>,
    policy: SendPolicy,
    own_address: IndividualAddress,
    values: BTreeMap<GoNumber, Value>,
    last_sent: BTreeMap<GoNumber, Value>,
    queue: Queue,
    tokens: f64,
    refilled: Option<Instant>,
    next_cyclic: Option<Instant>,
    /// The next cyclic sending of each object with its own cycle.
    next_own: BTreeMap<GoNumber, Instant>,
    stats: Stats,
}

/// The table names a DPT the codecs do not know (a build defect; tests rule it out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("object {object}: unknown DPT `{dpt}`")]
pub struct UnknownDpt {
    /// The object.
    pub object: GoNumber,
    /// The DPT text.
    pub dpt: String,
}

impl Engine {
    /// An engine for `table`, sending as `own_address`.
    pub fn new(
        table: ObjectTable,
        policy: SendPolicy,
        own_address: IndividualAddress,
    ) -> Result<Self, UnknownDpt> {
        let dpts = table
            .objects()
            .iter()
            .map(|o| {
                o.dpt
                    .parse::<Dpt>()
                    .map(|d| (o.number, d))
                    .map_err(|_| UnknownDpt {
                        object: o.number,
                        dpt: o.dpt.clone(),
                    })
            })
            .collect::<Result<_, _>>()?;
        let tokens = f64::from(policy.max_rate);
        Ok(Self {
            table,
            dpts,
            policy,
            own_address,
            values: BTreeMap::new(),
            last_sent: BTreeMap::new(),
            queue: Queue::default(),
            tokens,
            refilled: None,
            next_cyclic: None,
            next_own: BTreeMap::new(),
            stats: Stats::default(),
        })
    }

    /// Takes over what `old` (the engine of the previous configuration) knew, for a new
    /// configuration applied live: the values and last-sent values of objects that still
    /// exist, the frames still waiting whose object still exists (responses only where the
    /// object is still linked to the address asked), the limiter's tokens and the counters.
    /// Nothing is sent because of the takeover itself.
    pub fn carry_over(&mut self, old: Engine) {
        let Engine {
            values,
            last_sent,
            mut queue,
            tokens,
            refilled,
            stats,
            ..
        } = old;
        let exists = |o: &GoNumber| self.table.contains(*o);
        self.values = values.into_iter().filter(|(o, _)| exists(o)).collect();
        self.last_sent = last_sent.into_iter().filter(|(o, _)| exists(o)).collect();
        while let Some(item) = queue.pop() {
            let keep = match item {
                Item::Write(o) | Item::Read(o) => exists(&o),
                Item::Response(o, ga) => self
                    .table
                    .get(o)
                    .is_some_and(|obj| obj.group_addresses.contains(&ga)),
            };
            let priority = match item {
                Item::Write(o) | Item::Read(o) | Item::Response(o, _) => self.table.get(o),
            }
            .map(|obj| obj.priority);
            if let (true, Some(priority)) = (keep, priority) {
                self.queue.push(Queue::class(priority, item), item);
            }
        }
        self.tokens = tokens.min(f64::from(self.policy.max_rate));
        self.refilled = refilled;
        self.stats = stats;
    }

    /// Sends from `address` from now on (ETS wrote a new individual address).
    pub fn set_own_address(&mut self, address: IndividualAddress) {
        self.own_address = address;
    }

    /// The table the engine serves.
    pub fn table(&self) -> &ObjectTable {
        &self.table
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Frames waiting for the limiter.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The current value of an object.
    pub fn value(&self, object: GoNumber) -> Option<&Value> {
        self.values.get(&object)
    }

    /// Handles a frame from the bus. Returns the values written to or updated on our
    /// objects; read requests queue responses.
    pub fn on_frame(&mut self, frame: &LData, now: Instant) -> Vec<Received> {
        self.refill(now);
        // Confirmations of our own sends and echoes of our own frames carry nothing new.
        if frame.service == LDataService::Con || frame.source == self.own_address {
            return Vec::new();
        }
        let Destination::Group(ga) = frame.destination else {
            return Vec::new();
        };
        let Tpdu::Data(apdu) = &frame.tpdu else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match apdu {
            Apdu::GroupValueWrite(payload) => self.receive(ga, payload, false, &mut out),
            Apdu::GroupValueResponse(payload) => self.receive(ga, payload, true, &mut out),
            Apdu::GroupValueRead => {
                let readable: Vec<(GoNumber, Priority)> = self
                    .table
                    .by_group_address(ga)
                    .filter(|o| o.flags.communication && o.flags.read)
                    .map(|o| (o.number, o.priority))
                    .collect();
                // Answered also before any value was set: with the DPT's initial value.
                for (object, priority) in readable {
                    let item = Item::Response(object, ga);
                    self.queue.push(Queue::class(priority, item), item);
                }
            }
            _ => {}
        }
        out
    }

    fn receive(
        &mut self,
        ga: GroupAddress,
        payload: &Payload,
        response: bool,
        out: &mut Vec<Received>,
    ) {
        let targets: Vec<GoNumber> = self
            .table
            .by_group_address(ga)
            .filter(|o| {
                o.flags.communication
                    && if response {
                        o.flags.update
                    } else {
                        o.flags.write
                    }
            })
            .map(|o| o.number)
            .collect();
        for object in targets {
            let Some(dpt) = self.dpts.get(&object).copied() else {
                continue;
            };
            match dpt::decode(dpt, payload)
                .map_err(|e| e.to_string())
                .and_then(|v| from_dpt(dpt, &v))
            {
                Ok(value) => {
                    debug!(object = object.0, %ga, ?value, "received");
                    self.values.insert(object, value.clone());
                    out.push(Received { object, value });
                }
                Err(e) => {
                    self.stats.rejected += 1;
                    warn!(object = object.0, %ga, dpt = %dpt, "rejected value: {e}");
                }
            }
        }
    }

    /// Gives an object a value (from the core). Transmits it if the object has C and T, a
    /// sending address, and the send policy says the change is worth a telegram.
    pub fn set(&mut self, object: GoNumber, value: Value, now: Instant) {
        self.refill(now);
        let Some(obj) = self.table.get(object) else {
            return;
        };
        let (flags, priority, has_address) =
            (obj.flags, obj.priority, obj.sending_address().is_some());
        let transmit = flags.communication && flags.transmit && has_address;
        let own = self.policy.own.get(&object).copied();
        let worth = transmit
            && own.is_none_or(|o| o.on_change)
            && self
                .last_sent
                .get(&object)
                .is_none_or(|last| self.changed_enough(last, &value));
        self.values.insert(object, value);
        if worth {
            let item = Item::Write(object);
            if !self.queue.push(Queue::class(priority, item), item) {
                self.stats.coalesced += 1;
            }
        }
        match own {
            Some(OwnSending {
                cycle: Some(cycle), ..
            }) if transmit => {
                self.next_own.entry(object).or_insert(now + cycle);
            }
            Some(_) => {}
            None => {
                if priority == Priority::Measurement && self.next_cyclic.is_none() {
                    self.next_cyclic = self.policy.cyclic.map(|c| now + c);
                }
            }
        }
    }

    /// Queues a GroupValue_Read for an object (I flag at start-up).
    pub fn request_read(&mut self, object: GoNumber) {
        if self
            .table
            .get(object)
            .is_some_and(|o| o.flags.communication && o.sending_address().is_some())
        {
            let item = Item::Read(object);
            self.queue.push(1, item);
        }
    }

    fn changed_enough(&self, last: &Value, new: &Value) -> bool {
        let p = &self.policy;
        match (last, new) {
            (Value::Current(a), Value::Current(b)) => {
                (*a - *b).milliamps().unsigned_abs()
                    >= p.min_change_current.milliamps().unsigned_abs()
            }
            (Value::Power(a), Value::Power(b)) => {
                (*a - *b).milliwatts().unsigned_abs()
                    >= p.min_change_power.milliwatts().unsigned_abs()
            }
            (Value::Energy(a), Value::Energy(b)) => {
                (*a - *b).milliwatt_hours().unsigned_abs()
                    >= p.min_change_energy.milliwatt_hours().unsigned_abs()
            }
            (Value::Temperature(a), Value::Temperature(b)) => {
                (a.centi_celsius() - b.centi_celsius()).unsigned_abs()
                    >= p.min_change_temperature.centi_celsius().unsigned_abs()
            }
            (a, b) => a != b,
        }
    }

    fn refill(&mut self, now: Instant) {
        let rate = f64::from(self.policy.max_rate);
        if let Some(last) = self.refilled {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * rate).min(rate);
        }
        self.refilled = Some(now);
        if let Some(at) = self.next_cyclic
            && now >= at
        {
            let measured: Vec<GoNumber> = self
                .table
                .objects()
                .iter()
                .filter(|o| {
                    o.priority == Priority::Measurement
                        && o.flags.transmit
                        && o.flags.communication
                        && !self.policy.own.contains_key(&o.number)
                })
                .filter(|o| o.sending_address().is_some() && self.values.contains_key(&o.number))
                .map(|o| o.number)
                .collect();
            for object in measured {
                self.queue.push(2, Item::Write(object));
            }
            self.next_cyclic = self.policy.cyclic.map(|c| at + c);
        }
        let due: Vec<GoNumber> = self
            .next_own
            .iter()
            .filter(|(_, at)| now >= **at)
            .map(|(o, _)| *o)
            .collect();
        for object in due {
            let cycle = self.policy.own.get(&object).and_then(|o| o.cycle);
            let priority = self
                .table
                .get(object)
                .map_or(Priority::Measurement, |o| o.priority);
            let item = Item::Write(object);
            if !self.queue.push(Queue::class(priority, item), item) {
                self.stats.coalesced += 1;
            }
            match (cycle, self.next_own.get(&object).copied()) {
                // The next one a cycle after this one (or after now, after a long pause).
                (Some(c), Some(at)) => {
                    let next = if at + c > now { at + c } else { now + c };
                    self.next_own.insert(object, next);
                }
                _ => {
                    self.next_own.remove(&object);
                }
            }
        }
    }

    /// The next frame to send, if the limiter allows one now.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<LData> {
        self.refill(now);
        while self.tokens >= 1.0 {
            let item = self.queue.pop()?;
            if let Some(frame) = self.frame(item) {
                self.tokens -= 1.0;
                self.stats.sent += 1;
                return Some(frame);
            }
        }
        None
    }

    fn frame(&mut self, item: Item) -> Option<LData> {
        let (object, ga, apdu) = match item {
            Item::Read(object) => (
                object,
                self.table.get(object)?.sending_address()?,
                Apdu::GroupValueRead,
            ),
            Item::Write(object) | Item::Response(object, _) => {
                let obj = self.table.get(object)?;
                let ga = match item {
                    Item::Response(_, ga) => ga,
                    _ => obj.sending_address()?,
                };
                let dpt = *self.dpts.get(&object)?;
                let Some(value) = self.values.get(&object).cloned() else {
                    // A read before any value: the type's initial value (all bits zero: 0,
                    // 0.0, off, "", no day 00:00:00), as a device answers after reset.
                    debug!(object = object.0, %dpt, "read answered with the DPT's initial value");
                    let payload = initial_payload(dpt);
                    return Some(self.response_frame(object, ga, payload));
                };
                let payload = match to_dpt(dpt, &value).and_then(|(v, fit)| {
                    dpt::encode(dpt, &v)
                        .map(|p| (p, v, fit))
                        .map_err(|e| e.to_string())
                }) {
                    Ok((p, sent, fit)) => {
                        // Logged for each value sent; a read answer repeats it silently.
                        if fit == Fit::Clamped && matches!(item, Item::Write(_)) {
                            warn!(
                                object = object.0,
                                dpt = %dpt,
                                ?value,
                                ?sent,
                                "value beyond the range of the object's DPT, sent as the edge of the range"
                            );
                        }
                        p
                    }
                    Err(e) => {
                        warn!(object = object.0, dpt = %dpt, ?value, "cannot encode: {e}");
                        return None;
                    }
                };
                if matches!(item, Item::Write(_)) {
                    self.last_sent.insert(object, value);
                }
                let apdu = if matches!(item, Item::Response(..)) {
                    Apdu::GroupValueResponse(payload)
                } else {
                    Apdu::GroupValueWrite(payload)
                };
                (object, ga, apdu)
            }
        };
        Some(self.group_frame(object, ga, apdu))
    }

    fn response_frame(&self, object: GoNumber, ga: GroupAddress, payload: Payload) -> LData {
        self.group_frame(object, ga, Apdu::GroupValueResponse(payload))
    }

    /// A group telegram of `object` with the bus priority of its object-table priority.
    fn group_frame(&self, object: GoNumber, ga: GroupAddress, apdu: Apdu) -> LData {
        let priority = self
            .table
            .get(object)
            .map_or(Priority::State, |o| o.priority);
        let mut frame = LData::new(
            LDataService::Req,
            self.own_address,
            Destination::Group(ga),
            Tpdu::Data(apdu),
        );
        frame.priority = if priority == Priority::Alarm {
            BusPriority::Urgent
        } else {
            BusPriority::Low
        };
        frame
    }

    /// When to call [`Engine::poll_transmit`] again: when the next token arrives while frames
    /// wait, or at the next cyclic sending.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let token = (self.queue.len() > 0).then(|| {
            let missing = (1.0 - self.tokens).max(0.0);
            now + Duration::from_secs_f64(missing / f64::from(self.policy.max_rate.max(1)))
        });
        [
            token,
            self.next_cyclic,
            self.next_own.values().min().copied(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The payload of a DPT's initial value: every bit zero (0, 0.0, off, "", 00:00:00).
pub fn initial_payload(dpt: Dpt) -> Payload {
    match dpt.size() {
        crate::knx::dpt::DptSize::Bits(_) => Payload::Short(0),
        crate::knx::dpt::DptSize::Bytes(n) => Payload::Long(vec![0; usize::from(n)]),
    }
}

/// Converts a received DPT value into a typed value for the object's DPT.
pub fn from_dpt(dpt: Dpt, v: &DptValue) -> Result<Value, String> {
    let float = || {
        v.as_f64()
            .ok_or_else(|| format!("expected a number, got {v}"))
    };
    let int = || {
        v.as_i64()
            .ok_or_else(|| format!("expected an integer, got {v}"))
    };
    let e = |e: crate::units::InvalidQuantity| e.to_string();
    Ok(match dpt {
        Dpt::Switch | Dpt::Bool | Dpt::Start | Dpt::State | Dpt::Trigger => {
            Value::Bool(v.as_bool().ok_or("expected a bit")?)
        }
        Dpt::Value1Ucount => Value::U8(u8::try_from(int()?).map_err(|_| "out of range")?),
        Dpt::UElCurrentMa => Value::Current(Current::from_milliamps(
            i32::try_from(int()?).map_err(|_| "out of range")?,
        )),
        Dpt::ValueCurr => Value::Current(Current::from_amps_f64(float()? / 1000.0).map_err(e)?),
        Dpt::ElectricCurrent => Value::Current(Current::from_amps_f64(float()?).map_err(e)?),
        Dpt::PowerKw => Value::Power(Power::from_watts_f64(float()? * 1000.0).map_err(e)?),
        Dpt::Power => Value::Power(Power::from_watts_f64(float()?).map_err(e)?),
        Dpt::ValueTemp => Value::Temperature(Temperature::from_celsius_f64(float()?).map_err(e)?),
        Dpt::ActiveEnergy => {
            Value::Energy(Energy::from_milliwatt_hours(int()?.saturating_mul(1000)))
        }
        Dpt::ActiveEnergyKwh => Value::Energy(Energy::from_milliwatt_hours(
            int()?.saturating_mul(1_000_000),
        )),
        Dpt::LongDeltaTimeSec => Value::Seconds(i32::try_from(int()?).map_err(|_| "out of range")?),
        Dpt::TimeOfDay => match v {
            DptValue::TimeOfDay(t) => Value::TimeOfDay(*t),
            _ => return Err("expected a time of day".to_owned()),
        },
        Dpt::StringLatin1 => match v {
            DptValue::Text(s) => Value::Text(s.clone()),
            _ => return Err("expected text".to_owned()),
        },
    })
}

/// Whether a value fitted its object's DPT or was sent as the nearest value the DPT carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// The value is sent as it is (rounded to the DPT's resolution).
    Exact,
    /// The value lies beyond the DPT's range and is sent as the range's edge.
    Clamped,
}

/// Converts a typed value into the DPT value of the object's DPT.
///
/// A value beyond the DPT's range (a current above 65 535 mA for 7.012, an energy above
/// 2 147 483 647 Wh for 13.010, −300 °C for 9.001, …) is sent as the edge of the range, with
/// [`Fit::Clamped`], as a measuring device shows a full-scale value: a visualisation sees
/// "at least this much" instead of nothing, and the engine logs it. Texts are cut to
/// DPT 16's 14 characters, which is the DPT's rule, not a clamp.
#[allow(
    clippy::cast_possible_truncation,
    reason = "values are clamped to the DPT's range before the conversion"
)]
pub fn to_dpt(dpt: Dpt, value: &Value) -> Result<(DptValue, Fit), String> {
    let fit = |clamped: bool| if clamped { Fit::Clamped } else { Fit::Exact };
    // Rounded and clamped to i32 (DPT 13); NaN cannot occur for these fixed-point units.
    let whole = |x: f64| -> (DptValue, Fit) {
        let (min, max) = (f64::from(i32::MIN), f64::from(i32::MAX));
        let r = x.round();
        (
            DptValue::I32(r.clamp(min, max) as i32),
            fit(r < min || r > max),
        )
    };
    // Clamped to the sendable DPT 9 range (−273 °C at the bottom for temperatures).
    let float16 = |x: f64, min: f64| -> (DptValue, Fit) {
        let max = dpt::F16_MAX_SENDABLE;
        (DptValue::Float(x.clamp(min, max)), fit(x < min || x > max))
    };
    Ok(match (dpt, value) {
        (Dpt::Switch | Dpt::Bool | Dpt::Start | Dpt::State | Dpt::Trigger, Value::Bool(b)) => {
            (DptValue::Bool(*b), Fit::Exact)
        }
        (Dpt::Value1Ucount, Value::U8(n)) => (DptValue::U8(*n), Fit::Exact),
        (Dpt::UElCurrentMa, Value::Current(c)) => {
            let ma = c.milliamps();
            let sent = ma.clamp(0, i32::from(u16::MAX));
            (
                DptValue::U16(u16::try_from(sent).unwrap_or(u16::MAX)),
                fit(sent != ma),
            )
        }
        (Dpt::ValueCurr, Value::Current(c)) => float16(f64::from(c.milliamps()), dpt::F16_MIN),
        (Dpt::ElectricCurrent, Value::Current(c)) => (DptValue::Float(c.as_amps_f64()), Fit::Exact),
        (Dpt::PowerKw, Value::Power(p)) => float16(p.as_watts_f64() / 1000.0, dpt::F16_MIN),
        (Dpt::Power, Value::Power(p)) => (DptValue::Float(p.as_watts_f64()), Fit::Exact),
        (Dpt::ValueTemp, Value::Temperature(t)) => float16(t.as_celsius_f64(), -273.0),
        (Dpt::ActiveEnergy, Value::Energy(e)) => whole(e.as_watt_hours_f64()),
        (Dpt::ActiveEnergyKwh, Value::Energy(e)) => whole(e.as_watt_hours_f64() / 1000.0),
        (Dpt::LongDeltaTimeSec, Value::Seconds(s)) => (DptValue::I32(*s), Fit::Exact),
        (Dpt::TimeOfDay, Value::TimeOfDay(t)) => (DptValue::TimeOfDay(*t), Fit::Exact),
        (Dpt::StringLatin1, Value::Text(s)) => (DptValue::Text(latin1_lossy(s, 14)), Fit::Exact),
        (dpt, value) => return Err(format!("a {value:?} cannot be sent as DPT {dpt}")),
    })
}

/// The first `max` characters of `s`, with characters outside ISO 8859-1 replaced by `?`
/// (as xknx does), so a serial number or RFID tag with an odd character is still shown. A NUL,
/// which DPT 16 uses as padding, is replaced too.
pub fn latin1_lossy(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| {
            if ('\u{1}'..='\u{FF}').contains(&c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
