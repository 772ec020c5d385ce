//! `knx-echarge demo`: the gateway with simulated peers, all on loopback.
//!
//! * Five simulated charging points ([`crate::sim`]) of five models: KEBA P30, ABB Terra AC,
//!   Bender CC612 and Alfen Eve over Modbus TCP on `127.0.0.1` (preferred ports
//!   [`PREFERRED_PORTS`], a free port when one is taken), and a Heidelberg Energy Control over
//!   Modbus RTU on a pty pair made in-process ([`PtyPair`], no socat needed). The
//!   demo configuration is the embedded example with the charging points' addresses replaced by
//!   the simulators' ([`demo_config`]); its group addresses are kept.
//! * Vehicles that arrive, charge and leave on a loop, with different phase counts and maximum
//!   currents ([`DemoPoint`]).
//! * A simulated house whose smart meter sends its per-phase currents (house load profile plus
//!   the vehicles' real currents mapped by each charging point's phase rotation) every
//!   [`METER_INTERVAL`] as GroupValue_Write telegrams (DPT 14.019 on objects 10–12, then the
//!   "In operation" trigger, object 20, when it has a group address) from individual address
//!   [`METER_ADDRESS`]. The frames go into the shell's bus input, merged with the link's frames
//!   (the gateway's bus input, [`crate::gateway::start::Options::inject`]), so they travel the path of real telegrams; they are also handed
//!   to the link, so tunnelling clients of the built-in server see them.
//!
//! Everything ticks at most once a second (vehicles) or every five seconds (meter): no busy
//! loops.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::catalog::Interface;
use crate::config::{Config, OvercurrentStrategy, PhaseRotation};
use crate::knx::dpt::{self, Dpt, DptValue};
use crate::knx::link::LinkEvent;
use crate::knx::wire::apdu::{Apdu, Tpdu};
use crate::knx::wire::cemi::{Destination, LData, LDataService};
use crate::knx::{GroupAddress, IndividualAddress};
use crate::sim::pty::PtyPair;
use crate::sim::{self, SimHandle, SimModel, SimServer, Vehicle};
use crate::simulate::scenario::{HouseProfile, Interpolation};
use crate::units::{ChargePointId, Current, Energy, GoNumber, PerPhase, Phase};

/// Preferred Modbus TCP ports of the simulated charging points 1–4 (`127.0.0.1:1502n`).
pub const PREFERRED_PORTS: [u16; 4] = [15021, 15022, 15023, 15024];

/// The smart meter's individual address (distinct from the gateway's).
pub const METER_ADDRESS: &str = "1.1.250";

/// How often the smart meter sends.
pub const METER_INTERVAL: Duration = Duration::from_secs(5);

/// How often the vehicles' plans are looked at.
const VEHICLE_TICK: Duration = Duration::from_secs(1);

/// Poll interval of the charging points in the demo.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Baud rate of the simulated RS485 line.
const RTU_BAUD: u32 = 19200;

/// Length of the house load profile's loop.
const HOUSE_LOOP: Duration = Duration::from_secs(600);

/// Why the demo cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A simulator could not be started.
    #[error("cannot start the simulated charging point {cp} ({model}): {source}")]
    Simulator {
        /// Charging point.
        cp: u8,
        /// Model id.
        model: &'static str,
        /// Cause.
        source: std::io::Error,
    },
}

/// Where one simulated charging point is reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimAddress {
    /// Modbus TCP on this loopback address.
    Tcp(SocketAddr),
    /// Modbus RTU on the simulated RS485 line, at this device address.
    Rtu(u8),
    /// Not simulated (the charging point is disabled).
    Off,
}

/// The demo's five charging points: model and the vehicle that comes to it.
const POINTS: [(u8, SimModel); 5] = [
    (1, SimModel::KebaP30),
    (2, SimModel::AbbTerraAc),
    (3, SimModel::BenderCc),
    (4, SimModel::AlfenEve),
    (5, SimModel::HeidelbergEc),
];

/// The demo's house connection: the example's 35 A fuse carries the five minimums on L2
/// (two 1-phase cars there plus three 3-phase ones: 30 A) only while the house draws at most
/// 2 A on L2, so the spec's OverCurrent interrupted every vehicle whenever the simulated
/// washing machine ran. The demo shows load management at work instead.
pub const DEMO_FUSE: Current = Current::from_amps(40);

/// The demo configuration: `base` (the embedded example) with each charging point's address
/// replaced by `addresses` (charging point n at index n−1), loopback only, 1 s polling, a
/// [`DEMO_FUSE`] and KEBA-style queueing when the minimums do not fit (those that fit charge,
/// the others wait and take turns) instead of the spec's default of interrupting all. Group
/// addresses are kept.
pub fn demo_config(mut base: Config, addresses: &[SimAddress]) -> Config {
    base.modbus.poll_interval = POLL_INTERVAL;
    base.dlm.overcurrent_protection = DEMO_FUSE;
    base.dlm.overcurrent_strategy = OvercurrentStrategy::Queue;
    for p in &mut base.charging_points {
        match addresses.get(p.id.index()) {
            Some(SimAddress::Tcp(addr)) => {
                p.interface = Interface::Tcp;
                p.ip = Ipv4Addr::LOCALHOST;
                p.port = addr.port();
            }
            Some(SimAddress::Rtu(unit)) => {
                p.interface = Interface::Rs485;
                p.rs485_address = *unit;
            }
            Some(SimAddress::Off) | None => p.enabled = false,
        }
    }
    base
}

/// The addresses the demo uses when its preferred ports are free (what
/// `knx-echarge demo --print-config` shows).
pub fn planned_addresses() -> Vec<SimAddress> {
    PREFERRED_PORTS
        .iter()
        .map(|p| SimAddress::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, *p))))
        .chain(std::iter::once(SimAddress::Rtu(1)))
        .collect()
}

/// One simulated charging point and the plan of its vehicle.
#[derive(Debug)]
pub struct DemoPoint {
    /// Charging point.
    pub cp: ChargePointId,
    /// The simulator.
    pub sim: SimHandle,
    /// Phase rotation (charging-point phase k → grid phase).
    rotation: PhaseRotation,
    /// The vehicle that comes here.
    vehicle: Vehicle,
    /// How long the vehicle stays at most.
    stay: Duration,
    /// How long the charging point stays free.
    away: Duration,
    /// When the vehicle next arrives or leaves.
    next: Instant,
}

/// The vehicle of charging point `n`: phases, maximum current, stay and absence differ.
fn plan(n: u8) -> (Vehicle, Duration, Duration, Duration) {
    let rfid = Some(format!("DEMO000{n}"));
    let evccid = Some(format!("0012AB34CD5{n}"));
    let (phases, max, kwh, first, stay, away) = match n {
        // (phases, max A, kWh, first arrival after start s, stay s, away s)
        1 => (3, 16, 8, 0, 420, 90),
        2 => (1, 32, 6, 0, 300, 120),
        3 => (3, 11, 5, 25, 360, 60),
        4 => (1, 16, 4, 0, 240, 150),
        _ => (3, 32, 10, 45, 480, 100),
    };
    (
        Vehicle {
            phases,
            max_current: Current::from_amps(max),
            capacity: Energy::from_watt_hours(kwh * 1000),
            rfid,
            evccid,
            reaction: Duration::ZERO,
        },
        Duration::from_secs(first),
        Duration::from_secs(stay),
        Duration::from_secs(away),
    )
}

/// The running simulated peers (charging points, RS485 line).
#[derive(Debug)]
pub struct Demo {
    /// The configuration the gateway runs with.
    pub config: Config,
    /// The gateway's end of the simulated RS485 line (`None`: no RTU charging point).
    pub rs485: Option<PathBuf>,
    /// Where each charging point is simulated (index n−1).
    pub addresses: Vec<SimAddress>,
    points: Vec<DemoPoint>,
    servers: Vec<SimServer>,
    pty: Option<PtyPair>,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

async fn bind_sim(sim: &SimHandle, preferred: u16) -> std::io::Result<SimServer> {
    let loopback = Ipv4Addr::LOCALHOST;
    match sim::serve_tcp(sim.clone(), SocketAddr::from((loopback, preferred))).await {
        Ok(s) => Ok(s),
        Err(e) => {
            debug!(
                port = preferred,
                "preferred simulator port not free ({e}); any free port"
            );
            sim::serve_tcp(sim.clone(), SocketAddr::from((loopback, 0))).await
        }
    }
}

impl Demo {
    /// Starts the simulators for `base` (the embedded example) and builds the demo
    /// configuration. Needs a tokio runtime.
    pub async fn start(base: Config) -> Result<Self, DemoError> {
        let mut points = Vec::new();
        let mut servers = Vec::new();
        let mut addresses = Vec::new();
        let mut pty = None;
        let now = Instant::now();
        for (n, model) in POINTS {
            let Some(cp) = ChargePointId::new(n) else {
                continue;
            };
            let sim = SimHandle::new(model);
            let address = if let Some(port) = PREFERRED_PORTS.get(cp.index()) {
                let server =
                    bind_sim(&sim, *port)
                        .await
                        .map_err(|source| DemoError::Simulator {
                            cp: n,
                            model: model.id(),
                            source,
                        })?;
                let addr = server
                    .addr
                    .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, *port)));
                servers.push(server);
                SimAddress::Tcp(addr)
            } else {
                match PtyPair::open() {
                    Ok(pair) => {
                        let server = sim::serve_rtu(&pair.b, RTU_BAUD, vec![(1, sim.clone())])
                            .map_err(|source| DemoError::Simulator {
                                cp: n,
                                model: model.id(),
                                source,
                            })?;
                        servers.push(server);
                        pty = Some(pair);
                        SimAddress::Rtu(1)
                    }
                    Err(e) => {
                        warn!(
                            cp = n,
                            model = model.id(),
                            "no pty pair ({e}): the RS485 charging point is left out of the demo"
                        );
                        SimAddress::Off
                    }
                }
            };
            info!(cp = n, model = model.id(), address = ?address, "simulated charging point");
            addresses.push(address);
            if address == SimAddress::Off {
                continue;
            }
            let rotation = base
                .charging_points
                .iter()
                .find(|p| p.id == cp)
                .map_or(PhaseRotation::ALL[0], |p| p.rotation);
            let (vehicle, first, stay, away) = plan(n);
            points.push(DemoPoint {
                cp,
                sim,
                rotation,
                vehicle,
                stay,
                away,
                next: now + first,
            });
        }
        let config = demo_config(base, &addresses);
        let (stop, _) = watch::channel(false);
        Ok(Self {
            config,
            rs485: pty.as_ref().map(|p: &PtyPair| p.a.clone()),
            addresses,
            points,
            servers,
            pty,
            tasks: Vec::new(),
            stop,
        })
    }

    /// Starts the vehicles and the house: meter frames go to `bus_input` (the shell's bus
    /// input) and, when given, to `link` (so tunnelling clients see them).
    pub fn run(&mut self, bus_input: mpsc::Sender<LinkEvent>, link: Option<mpsc::Sender<LData>>) {
        let points: Vec<(SimHandle, PhaseRotation)> = self
            .points
            .iter()
            .map(|p| (p.sim.clone(), p.rotation))
            .collect();
        let vehicles = std::mem::take(&mut self.points);
        self.tasks
            .push(tokio::spawn(vehicles_loop(vehicles, self.stop.subscribe())));
        let meter = Meter::new(&self.config);
        self.tasks.push(tokio::spawn(meter_loop(
            meter,
            points,
            bus_input,
            link,
            self.stop.subscribe(),
        )));
    }

    /// Stops the vehicles, the house and the simulators.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        for s in &self.servers {
            s.stop();
        }
        drop(self.pty);
    }
}

async fn vehicles_loop(mut points: Vec<DemoPoint>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(VEHICLE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        for p in &mut points {
            let state = p.sim.state();
            if state.connected() {
                if now >= p.next || state.full() {
                    info!(
                        cp = p.cp.number(),
                        energy_kwh = state.session_wh / 1000.0,
                        "demo vehicle leaves"
                    );
                    p.sim.unplug();
                    p.next = now + p.away;
                }
            } else if now >= p.next {
                info!(
                    cp = p.cp.number(),
                    phases = p.vehicle.phases,
                    max_current = %p.vehicle.max_current,
                    "demo vehicle arrives"
                );
                p.sim.plug_in(p.vehicle.clone());
                p.next = now + p.stay;
            }
        }
    }
}

/// The simulated house's smart meter.
#[derive(Debug)]
struct Meter {
    source: IndividualAddress,
    currents: [Option<GroupAddress>; 3],
    in_operation: Option<GroupAddress>,
    house: HouseProfile,
    started: Instant,
}

/// The house's own load: base load with a few appliances over a 10-minute loop (A per phase).
fn house_profile() -> HouseProfile {
    let pts: [(u64, [i32; 3]); 7] = [
        (0, [3, 2, 2]),
        (90, [4, 2, 3]),
        (150, [12, 3, 3]), // cooker on L1
        (240, [11, 9, 3]), // plus a washing machine on L2
        (330, [4, 9, 2]),
        (450, [3, 3, 8]), // dishwasher on L3
        (600, [3, 2, 2]),
    ];
    HouseProfile {
        interpolation: Interpolation::Linear,
        points: pts
            .iter()
            .map(|(t, a)| {
                (
                    Duration::from_secs(*t),
                    PerPhase(a.map(|x| Current::from_milliamps(x * 1000))),
                )
            })
            .collect(),
    }
}

impl Meter {
    fn new(config: &Config) -> Self {
        let table = config.object_table();
        let ga = |n: u16| {
            table
                .get(GoNumber(n))
                .and_then(crate::objects::GroupObject::sending_address)
        };
        let source = METER_ADDRESS
            .parse()
            .unwrap_or(IndividualAddress::from_raw(0x11FA));
        Self {
            source,
            currents: [ga(10), ga(11), ga(12)],
            in_operation: ga(20),
            house: house_profile(),
            started: Instant::now(),
        }
    }

    /// Per-phase grid currents now: house plus vehicles.
    fn reading(&self, points: &[(SimHandle, PhaseRotation)]) -> [f64; 3] {
        let t = Duration::from_secs(self.started.elapsed().as_secs() % HOUSE_LOOP.as_secs());
        let house = self.house.at(t);
        let mut sum = house.0.map(Current::as_amps_f64);
        for (sim, rotation) in points {
            for (k, i) in sim.state().currents().iter().enumerate() {
                let phase = rotation.grid_phase(k).unwrap_or(Phase::L1);
                if let Some(s) = sum.get_mut(phase.index()) {
                    *s += i.as_amps_f64();
                }
            }
        }
        sum
    }

    fn frames(&self, reading: [f64; 3]) -> Vec<LData> {
        let mut out = Vec::new();
        for (ga, amps) in self.currents.iter().zip(reading) {
            let Some(ga) = ga else { continue };
            if let Some(f) = self.frame(*ga, Dpt::ElectricCurrent, &DptValue::Float(amps)) {
                out.push(f);
            }
        }
        if let Some(ga) = self.in_operation {
            if let Some(f) = self.frame(ga, Dpt::Bool, &DptValue::Bool(true)) {
                out.push(f);
            }
        }
        out
    }

    fn frame(&self, ga: GroupAddress, dpt: Dpt, value: &DptValue) -> Option<LData> {
        match dpt::encode(dpt, value) {
            Ok(payload) => Some(LData::new(
                LDataService::Ind,
                self.source,
                Destination::Group(ga),
                Tpdu::Data(Apdu::GroupValueWrite(payload)),
            )),
            Err(e) => {
                warn!(%ga, "demo meter cannot encode {value:?}: {e}");
                None
            }
        }
    }
}

async fn meter_loop(
    meter: Meter,
    points: Vec<(SimHandle, PhaseRotation)>,
    bus_input: mpsc::Sender<LinkEvent>,
    link: Option<mpsc::Sender<LData>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(METER_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let reading = meter.reading(&points);
        let [l1, l2, l3] = reading;
        debug!(l1, l2, l3, "demo smart meter");
        for frame in meter.frames(reading) {
            if let Some(link) = &link {
                let mut req = frame.clone();
                req.service = LDataService::Req;
                // Best effort: a full link queue only costs the monitor a telegram.
                let _ = link.try_send(req);
            }
            if bus_input.send(LinkEvent::Frame(frame)).await.is_err() {
                return;
            }
        }
    }
}
