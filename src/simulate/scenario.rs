//! The scenario file of `knx-echarge simulate`: its TOML format (serde, unknown keys
//! rejected), its checks with line and column, and the gateway configuration it implies.
//!
//! Owns: [`Scenario`] (typed, validated), [`ScenarioError`], and [`Scenario::config`], which
//! writes the DLM part of a gateway configuration as TOML text and parses it with
//! [`crate::config::file::parse`], so the simulation runs the same parameter path (ranges,
//! defaults) as the firmware. A parameter out of range there is reported at the scenario key
//! that set it.
//!
//! Times are whole seconds from the start of the run; currents are amperes (decimals allowed
//! for loads and vehicles, whole amperes where the gateway parameter is whole).

use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Config, file};
use crate::units::{ChargePointId, Current, Energy, PerPhase, Phase};

/// Reading or checking a scenario failed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Syntax, unknown key, wrong type or an inconsistent value.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// File path (or the origin given to [`Scenario::parse`]).
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// Which allocation the DLM uses in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllocationMode {
    /// Charging points booked only on the grid phases their vehicles draw on.
    PerPhase,
    /// Every charging point booked on all three phases (the spec's DLM).
    Symmetric,
}

impl AllocationMode {
    /// The parameter value (`dlm.allocation`) and directory name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::PerPhase => "per-phase",
            Self::Symmetric => "symmetric",
        }
    }
}

/// What the DLM does when the minimums do not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// OverCurrent: all interrupted (the spec).
    #[default]
    InterruptAll,
    /// Queue with rotation.
    Queue,
}

impl Strategy {
    const fn name(self) -> &'static str {
        match self {
            Self::InterruptAll => "interrupt-all",
            Self::Queue => "queue",
        }
    }
}

/// How the house profile is read between its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interpolation {
    /// Straight lines between points.
    #[default]
    Linear,
    /// Each point's value holds until the next.
    Step,
}

/// The protective device upstream of the installation (the "fuse" whose rating the DLM
/// protects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
pub enum DeviceKind {
    /// gG fuse-link (IEC 60269), the usual house connection fuse.
    #[default]
    #[serde(rename = "gG")]
    Gg,
    /// Miniature circuit breaker, type B (IEC 60898-1).
    B,
    /// Miniature circuit breaker, type C (IEC 60898-1).
    C,
}

/// What the smart meter measures and sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeterKind {
    /// Current per phase on objects 10, 11, 12.
    #[default]
    #[serde(rename = "3-phase")]
    ThreePhase,
    /// The current of one phase on object 10 (the gateway counts it on every phase).
    #[serde(rename = "1-phase")]
    OnePhase,
    /// Active power per phase on objects 10, 11, 12 (DPT 14.056); the gateway converts at
    /// its nominal voltage while the grid runs at the meter's `voltage`.
    Power,
}

/// How a charging point reports currents that cannot be right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidKind {
    /// The poll carries the raw value as a current on every phase (e.g. 0x7FFFFFFF mA, which
    /// KEBA's register map marks invalid only from 2³¹ on).
    #[default]
    Value,
    /// The driver recognises it and reports DLM InvCurrent.
    Flagged,
}

// ---------------------------------------------------------------------------------------
// The file as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: Option<String>,
    #[serde(default)]
    description: String,
    grid: GridFile,
    #[serde(default)]
    dlm: DlmFile,
    #[serde(default)]
    meter: MeterFile,
    time: TimeFile,
    #[serde(default)]
    charging_point: Vec<Spanned<PointFile>>,
    #[serde(default)]
    vehicle: Vec<Spanned<VehicleFile>>,
    #[serde(default)]
    house: HouseFile,
    #[serde(default)]
    events: EventsFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    fuse: Spanned<u32>,
    #[serde(default)]
    reserve: Option<Spanned<u32>>,
    #[serde(default)]
    protection: DeviceKind,
    protection_rating: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DlmFile {
    modes: Option<Spanned<Vec<AllocationMode>>>,
    #[serde(default)]
    overcurrent_strategy: Strategy,
    ramp_up_rate: Option<Spanned<f64>>,
    min_switch_time: Option<Spanned<u32>>,
    high_power_waiting_time: Option<Spanned<u32>>,
    grid_control_current: Option<Spanned<u32>>,
    rotation_interval: Option<Spanned<u32>>,
    prioritised_charging_point: Option<Spanned<u32>>,
    grid_control_power: Option<Spanned<f64>>,
    unbalanced_load: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MeterFile {
    interval: Option<Spanned<u32>>,
    tolerance: Option<Spanned<u32>>,
    #[serde(default)]
    kind: MeterKind,
    #[serde(default)]
    phase: Option<Spanned<String>>,
    #[serde(default)]
    noise: f64,
    #[serde(default = "one_u64")]
    seed: u64,
    #[serde(default)]
    latency: f64,
    #[serde(default)]
    spread: f64,
    #[serde(default = "nominal_volts")]
    voltage: f64,
}

const fn one_u64() -> u64 {
    1
}
const fn nominal_volts() -> f64 {
    230.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeFile {
    duration: Spanned<u32>,
    step: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointFile {
    id: u8,
    #[serde(default = "three")]
    phases: u8,
    #[serde(default = "default_rotation")]
    rotation: String,
    #[serde(default = "six")]
    min: u32,
    #[serde(default = "sixteen")]
    max: u32,
    /// The load management may switch the box between 1 and 3 phases (the gateway's
    /// `phase_switch`; off by default).
    #[serde(default)]
    phase_switch: bool,
}

const fn three() -> u8 {
    3
}
const fn six() -> u32 {
    6
}
const fn sixteen() -> u32 {
    16
}
fn default_rotation() -> String {
    "L1-L2-L3".to_owned()
}
const fn two() -> f64 {
    2.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VehicleFile {
    name: Option<String>,
    charging_point: u8,
    arrival: u32,
    departure: u32,
    #[serde(default = "three")]
    phases: u8,
    max_current: f64,
    energy: f64,
    #[serde(default = "two")]
    reaction: f64,
    #[serde(default)]
    ramp: f64,
    taper_from: Option<f64>,
    #[serde(default = "two")]
    taper_to: f64,
    #[serde(default)]
    pauses: Vec<WindowFile>,
    #[serde(default)]
    phase_switch: Vec<PhaseSwitchFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseSwitchFile {
    at: u32,
    phases: u8,
    #[serde(default = "default_switch_pause")]
    pause: u32,
}

const fn default_switch_pause() -> u32 {
    60
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HouseFile {
    #[serde(default)]
    interpolation: Interpolation,
    #[serde(default)]
    points: Vec<Spanned<HousePointFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HousePointFile {
    t: u32,
    current: [f64; 3],
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EventsFile {
    #[serde(default)]
    meter_silence: Vec<Spanned<WindowFile>>,
    #[serde(default)]
    grid_control: Vec<Spanned<WindowFile>>,
    #[serde(default)]
    high_power: Vec<Spanned<HighPowerFile>>,
    #[serde(default)]
    load_step: Vec<Spanned<LoadStepFile>>,
    #[serde(default)]
    unreachable: Vec<Spanned<PointWindowFile>>,
    #[serde(default)]
    invalid_current: Vec<Spanned<InvalidFile>>,
    #[serde(default)]
    interruption: Vec<Spanned<PointWindowFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointWindowFile {
    charging_point: u8,
    from: u32,
    to: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidFile {
    charging_point: u8,
    from: u32,
    to: u32,
    #[serde(default)]
    kind: InvalidKind,
    #[serde(default = "i32_max")]
    milliamps: i64,
}

const fn i32_max() -> i64 {
    2_147_483_647
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    from: u32,
    to: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HighPowerFile {
    at: u32,
    #[serde(default = "one")]
    repeat: u32,
    #[serde(default)]
    every: u32,
}

const fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadStepFile {
    from: u32,
    to: Option<u32>,
    current: [f64; 3],
}

// ---------------------------------------------------------------------------------------
// The checked scenario.

/// A charging point of the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointSpec {
    /// Which one (1..5).
    pub id: ChargePointId,
    /// 1 or 3 phases.
    pub phases: u8,
    /// Grid phase of the charging point's phases 1, 2, 3.
    pub rotation: [Phase; 3],
    /// Minimum current.
    pub min: Current,
    /// Maximum current.
    pub max: Current,
    /// Its box switches between 1 and 3 phases and the gateway may switch it (the gateway
    /// parameter `phase_switch`; only on a 3-phase point).
    pub phase_switch: bool,
}

impl PointSpec {
    /// Grid phases a vehicle drawing on `phases` of this point's phases uses.
    pub fn grid_phases(&self, vehicle_phases: u8) -> Vec<Phase> {
        let n = usize::from(vehicle_phases.min(self.phases));
        self.rotation.iter().take(n).copied().collect()
    }
}

/// A vehicle of the scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleSpec {
    /// Name in the summary.
    pub name: String,
    /// The charging point it plugs into.
    pub charging_point: ChargePointId,
    /// Plug-in time.
    pub arrival: Duration,
    /// Unplug time.
    pub departure: Duration,
    /// Phases it draws on at arrival (1, 2 or 3; mapped through the point's rotation; a
    /// 3-phase car on a 1-phase point uses one).
    pub phases: u8,
    /// Most it draws per phase.
    pub max_current: Current,
    /// Energy it wants.
    pub energy: Energy,
    /// Delay between a new setpoint and the vehicle drawing it.
    pub reaction: Duration,
    /// How fast it rises towards a higher target, A/s (`None` = at once).
    pub ramp: Option<f64>,
    /// Tapering: from this fraction of `energy` on, its ceiling falls linearly to
    /// `taper_to` at full.
    pub taper_from: Option<f64>,
    /// Current at the end of the taper.
    pub taper_to: Current,
    /// Windows in which it pauses on its own (SuspendedEV: plugged, draws 0 A).
    pub pauses: Vec<Window>,
    /// Phase switches: from `at`, it draws on `phases`, after `pause` at 0 A.
    pub phase_switches: Vec<PhaseSwitch>,
}

/// A 1↔3-phase switch of a vehicle (by the box or the vehicle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseSwitch {
    /// When it starts.
    pub at: Duration,
    /// Phases after it.
    pub phases: u8,
    /// Time at 0 A while the contactors change over.
    pub pause: Duration,
}

/// The smart meter as it behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterSpec {
    /// What it sends.
    pub kind: MeterKind,
    /// The phase a 1-phase meter measures.
    pub phase: Phase,
    /// Noise: each value is off by up to ± this many amperes (uniform).
    pub noise: f64,
    /// Seed of the noise (the same seed gives the same run).
    pub seed: u64,
    /// Time from measuring to the value's arrival at the gateway.
    pub latency: Duration,
    /// L2 is measured this long after L1, L3 twice as long.
    pub spread: Duration,
    /// The grid's real voltage (a power meter's values are converted back at the gateway's
    /// nominal 230 V).
    pub voltage: f64,
}

impl Default for MeterSpec {
    fn default() -> Self {
        Self {
            kind: MeterKind::ThreePhase,
            phase: Phase::L1,
            noise: 0.0,
            seed: 1,
            latency: Duration::ZERO,
            spread: Duration::ZERO,
            voltage: 230.0,
        }
    }
}

/// A window at one charging point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointWindow {
    /// Which charging point.
    pub cp: ChargePointId,
    /// When.
    pub window: Window,
}

/// A charging point reporting invalid currents for a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidCurrent {
    /// Which charging point, when.
    pub at: PointWindow,
    /// As a raw value or flagged by the driver.
    pub kind: InvalidKind,
    /// The raw value in milliamperes (kind `value`).
    pub milliamps: i32,
}

/// A time window `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start (inclusive).
    pub from: Duration,
    /// End (exclusive).
    pub to: Duration,
}

impl Window {
    /// Whether `t` lies inside.
    pub fn contains(&self, t: Duration) -> bool {
        self.from <= t && t < self.to
    }
}

/// An extra load switched on for a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadStep {
    /// When it is on.
    pub window: Window,
    /// Current per grid phase.
    pub current: PerPhase<Current>,
}

/// Scenario events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Events {
    /// The meter sends nothing in these windows.
    pub meter_silence: Vec<Window>,
    /// Grid-supporting control (object 1) on in these windows.
    pub grid_control: Vec<Window>,
    /// High-power device reports (object 13 = 1) at these times, sorted.
    pub high_power: Vec<Duration>,
    /// Sudden extra loads.
    pub load_steps: Vec<LoadStep>,
    /// Charging points that do not answer (their box keeps its last setpoint).
    pub unreachable: Vec<PointWindow>,
    /// Charging points reporting invalid currents.
    pub invalid_current: Vec<InvalidCurrent>,
    /// Interruption (object 55 + 50 × (n − 1)) on in these windows.
    pub interruption: Vec<PointWindow>,
}

/// The house load per phase over time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HouseProfile {
    /// Linear or step.
    pub interpolation: Interpolation,
    /// Points, sorted by time.
    pub points: Vec<(Duration, PerPhase<Current>)>,
}

impl HouseProfile {
    /// The house load at `t` (before the first point: the first value; after the last: the
    /// last value; no points: 0 A).
    pub fn at(&self, t: Duration) -> PerPhase<Current> {
        let after = self.points.iter().position(|(pt, _)| *pt > t);
        let zero = PerPhase::splat(Current::ZERO);
        match after {
            None => self.points.last().map_or(zero, |(_, v)| *v),
            Some(0) => self.points.first().map_or(zero, |(_, v)| *v),
            Some(i) => {
                let (Some((t0, v0)), Some((t1, v1))) = (self.points.get(i - 1), self.points.get(i))
                else {
                    return zero;
                };
                match self.interpolation {
                    Interpolation::Step => *v0,
                    Interpolation::Linear => {
                        let span = t1.saturating_sub(*t0).as_secs_f64();
                        let f = if span > 0.0 {
                            t.saturating_sub(*t0).as_secs_f64() / span
                        } else {
                            0.0
                        };
                        let mut out = zero;
                        for p in Phase::ALL {
                            let a = f64::from(v0.get(p).milliamps());
                            let b = f64::from(v1.get(p).milliamps());
                            #[allow(clippy::cast_possible_truncation, reason = "between two i32")]
                            out.set(p, Current::from_milliamps((a + (b - a) * f).round() as i32));
                        }
                        out
                    }
                }
            }
        }
    }
}

/// A checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name (the file stem when the file gives none).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Rating of the main fuse per phase.
    pub fuse: Current,
    /// Load reserve.
    pub reserve: Current,
    /// Allocation modes to run, in order.
    pub modes: Vec<AllocationMode>,
    /// When minimums do not fit.
    pub strategy: Strategy,
    /// The protective device and its rating.
    pub protection: (DeviceKind, Current),
    /// The meter's behaviour.
    pub meter: MeterSpec,
    /// Meter sending interval.
    pub meter_interval: Duration,
    /// Tolerance before the meter counts as silent.
    pub meter_tolerance: Duration,
    /// Length of the run.
    pub duration: Duration,
    /// Simulation step (divides one second).
    pub step: Duration,
    /// Charging points, by id.
    pub points: Vec<PointSpec>,
    /// Vehicles.
    pub vehicles: Vec<VehicleSpec>,
    /// House load.
    pub house: HouseProfile,
    /// Events.
    pub events: Events,
    /// `[dlm]` lines of the gateway configuration (without allocation).
    dlm_lines: String,
    /// Gateway parameter key → (line, column, scenario key) that set it.
    origins: Vec<(String, usize, usize, String)>,
    origin: String,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |i| {
        before.get(i + 1..).map_or(0, |s| s.chars().count())
    }) + 1;
    (line, column)
}

/// The `[dlm]` lines being written, and which scenario key set each parameter.
struct Params<'a> {
    text: &'a str,
    lines: String,
    origins: Vec<(String, usize, usize, String)>,
}

impl Params<'_> {
    fn set(&mut self, key: &str, value: &str, span: Range<usize>, scenario_key: &str) {
        let (line, column) = line_col(self.text, span.start);
        self.origins
            .push((key.to_owned(), line, column, scenario_key.to_owned()));
        let _ = writeln!(self.lines, "{key} = {value}");
    }
}

struct Checker<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Checker<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        let (line, column) = line_col(self.text, span.start);
        ScenarioError::Invalid {
            path: self.origin.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    fn amps(&self, span: &Range<usize>, what: &str, v: f64) -> Result<Current, ScenarioError> {
        if !(0.0..=1000.0).contains(&v) {
            return Err(self.err(span.clone(), format!("{what}: {v} A is outside 0..1000 A")));
        }
        Current::from_amps_f64(v).map_err(|e| self.err(span.clone(), format!("{what}: {e}")))
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

fn float_secs(
    c: &Checker<'_>,
    span: &Range<usize>,
    what: &str,
    v: f64,
    max: f64,
) -> Result<Duration, ScenarioError> {
    if !(0.0..=max).contains(&v) {
        return Err(c.err(span.clone(), format!("{what}: {v} s is outside 0..{max} s")));
    }
    Ok(Duration::from_secs_f64(v))
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut s = Self::parse(&text, &path.display().to_string())?;
        if s.name.is_empty() {
            s.name = path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        Ok(s)
    }

    /// Parses and checks scenario text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let c = Checker { text, origin };
        let file: ScenarioFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            c.err(span, e.message().trim().to_owned())
        })?;
        let mut params = Params {
            text,
            lines: String::new(),
            origins: Vec::new(),
        };

        // Grid and DLM parameters.
        let fuse = *file.grid.fuse.get_ref();
        params.set(
            "overcurrent_protection",
            &fuse.to_string(),
            file.grid.fuse.span(),
            "grid.fuse",
        );
        let reserve = file.grid.reserve.as_ref().map_or(0, |r| *r.get_ref());
        if let Some(r) = &file.grid.reserve {
            params.set(
                "load_reserve",
                &reserve.to_string(),
                r.span(),
                "grid.reserve",
            );
        } else {
            let _ = writeln!(params.lines, "load_reserve = 0");
        }
        let d = &file.dlm;
        if let Some(v) = &d.ramp_up_rate {
            if !v.get_ref().is_finite() {
                return Err(c.err(v.span(), "dlm.ramp_up_rate: not a number"));
            }
            params.set(
                "ramp_up_rate",
                &format!("{:.1}", v.get_ref()),
                v.span(),
                "dlm.ramp_up_rate",
            );
        }
        for (key, v) in [
            ("min_switch_time", &d.min_switch_time),
            ("high_power_waiting_time", &d.high_power_waiting_time),
            ("grid_control_current", &d.grid_control_current),
            ("rotation_interval", &d.rotation_interval),
            ("prioritised_charging_point", &d.prioritised_charging_point),
        ] {
            if let Some(v) = v {
                params.set(
                    key,
                    &v.get_ref().to_string(),
                    v.span(),
                    &format!("dlm.{key}"),
                );
            }
        }
        let _ = writeln!(
            params.lines,
            "overcurrent_strategy = \"{}\"",
            d.overcurrent_strategy.name()
        );
        if let Some(v) = &d.grid_control_power {
            let kw = *v.get_ref();
            if !kw.is_finite() {
                return Err(c.err(v.span(), "dlm.grid_control_power: not a number"));
            }
            params.set(
                "grid_control_power",
                &format!("{kw:.1}"),
                v.span(),
                "dlm.grid_control_power",
            );
        }
        let modes = match &d.modes {
            None => vec![AllocationMode::PerPhase],
            Some(m) => {
                let mut list = m.get_ref().clone();
                let n = list.len();
                list.sort();
                list.dedup();
                if list.is_empty() || list.len() != n {
                    return Err(c.err(
                        m.span(),
                        "dlm.modes: give \"per-phase\", \"symmetric\" or both, each once",
                    ));
                }
                list
            }
        };
        let (connection, measurement) = match file.meter.kind {
            MeterKind::ThreePhase => ("3-phase", "current"),
            MeterKind::OnePhase => ("1-phase", "current"),
            MeterKind::Power => ("3-phase", "power"),
        };
        let _ = writeln!(
            params.lines,
            "[dlm.meter]\nconnection = \"{connection}\"\nmeasurement = \"{measurement}\"\n[dlm.monitoring]\nmode = \"values\""
        );
        let interval = file.meter.interval.as_ref().map_or(10, |v| *v.get_ref());
        let tolerance = file.meter.tolerance.as_ref().map_or(5, |v| *v.get_ref());
        match &file.meter.interval {
            Some(v) => params.set(
                "interval",
                &interval.to_string(),
                v.span(),
                "meter.interval",
            ),
            None => {
                let _ = writeln!(params.lines, "interval = {interval}");
            }
        }
        match &file.meter.tolerance {
            Some(v) => params.set(
                "tolerance",
                &tolerance.to_string(),
                v.span(),
                "meter.tolerance",
            ),
            None => {
                let _ = writeln!(params.lines, "tolerance = {tolerance}");
            }
        }

        if let Some(v) = &d.unbalanced_load {
            let _ = writeln!(params.lines, "[dlm.unbalanced_load]\nenabled = true");
            params.set(
                "limit",
                &v.get_ref().to_string(),
                v.span(),
                "dlm.unbalanced_load",
            );
        }
        let m = &file.meter;
        let meter_span = m.phase.as_ref().map_or(0..0, Spanned::span);
        let phase = match m.phase.as_ref().map(|p| p.get_ref().as_str()) {
            None | Some("L1") => Phase::L1,
            Some("L2") => Phase::L2,
            Some("L3") => Phase::L3,
            Some(other) => {
                return Err(c.err(
                    meter_span,
                    format!("meter.phase: \"{other}\" is not L1, L2 or L3"),
                ));
            }
        };
        if !(0.0..=50.0).contains(&m.noise) {
            return Err(c.err(0..0, "meter.noise: 0 to 50 A"));
        }
        if !(100.0..=300.0).contains(&m.voltage) {
            return Err(c.err(0..0, "meter.voltage: 100 to 300 V"));
        }
        let meter = MeterSpec {
            kind: m.kind,
            phase,
            noise: m.noise,
            seed: m.seed,
            latency: float_secs(&c, &(0..0), "meter.latency", m.latency, 60.0)?,
            spread: float_secs(&c, &(0..0), "meter.spread", m.spread, 10.0)?,
            voltage: m.voltage,
        };
        let rating = file
            .grid
            .protection_rating
            .as_ref()
            .map_or(*file.grid.fuse.get_ref(), |r| *r.get_ref());
        if !(1..=1000).contains(&rating) {
            let span = file
                .grid
                .protection_rating
                .as_ref()
                .map_or(0..0, Spanned::span);
            return Err(c.err(span, "grid.protection_rating: 1 to 1000 A"));
        }
        let protection = (
            file.grid.protection,
            Current::from_amps(i32::try_from(rating).unwrap_or(1000)),
        );

        // Time.
        let duration = *file.time.duration.get_ref();
        if !(1..=7 * 86_400).contains(&duration) {
            return Err(c.err(
                file.time.duration.span(),
                "time.duration: 1 s to 7 days (604800 s)",
            ));
        }
        let step = match &file.time.step {
            None => Duration::from_secs(1),
            Some(s) => {
                let v = *s.get_ref();
                let per_second = 1.0 / v;
                let ok = v > 0.0
                    && v <= 1.0
                    && (per_second - per_second.round()).abs() < 1e-9
                    && per_second.round() <= 100.0;
                if !ok {
                    return Err(c.err(
                        s.span(),
                        "time.step: must divide one second (1, 0.5, 0.25, 0.2, 0.1 … 0.01 s)",
                    ));
                }
                Duration::from_secs_f64(v)
            }
        };

        // Charging points.
        let mut points: Vec<PointSpec> = Vec::new();
        let mut point_lines = String::new();
        for p in &file.charging_point {
            let span = p.span();
            let f = p.get_ref();
            let Some(id) = ChargePointId::new(f.id) else {
                return Err(c.err(span, format!("charging_point.id: {} is not 1..5", f.id)));
            };
            if points.iter().any(|q| q.id == id) {
                return Err(c.err(span, format!("charging point {id} is given twice")));
            }
            if !matches!(f.phases, 1 | 3) {
                return Err(c.err(span, "charging_point.phases: 1 or 3"));
            }
            let rotation = parse_rotation(&f.rotation).ok_or_else(|| {
                c.err(
                    span.clone(),
                    format!(
                        "charging_point.rotation: \"{}\" is not a phase order like \"L2-L3-L1\"",
                        f.rotation
                    ),
                )
            })?;
            if f.phase_switch && f.phases != 3 {
                return Err(c.err(
                    span,
                    "charging_point.phase_switch: only a 3-phase point switches between 1 and 3 phases",
                ));
            }
            let key = format!("charging_point.{id}");
            let (line, column) = line_col(text, span.start);
            for k in [
                "min_current",
                "max_current",
                "phases",
                "phase_rotation",
                "phase_switch",
            ] {
                params.origins.push((
                    format!("{key}.{k}"),
                    line,
                    column,
                    format!("charging_point {id}"),
                ));
            }
            let _ = writeln!(
                point_lines,
                "[{key}]\nenabled = true\nmodel = \"keba-p30\"\nip = \"10.0.0.{id}\"\nphases = {}\nphase_rotation = \"{}\"\nmin_current = {}\nmax_current = {}\nphase_switch = {}",
                f.phases, f.rotation, f.min, f.max, f.phase_switch
            );
            let min = i32::try_from(f.min).unwrap_or(i32::MAX);
            let max = i32::try_from(f.max).unwrap_or(i32::MAX);
            if min > max {
                return Err(c.err(span, "charging_point: min above max"));
            }
            points.push(PointSpec {
                id,
                phases: f.phases,
                rotation,
                min: Current::from_amps(min.min(1000)),
                max: Current::from_amps(max.min(1000)),
                phase_switch: f.phase_switch,
            });
        }
        if points.is_empty() {
            return Err(c.err(0..0, "no [[charging_point]]"));
        }
        points.sort_by_key(|p| p.id);
        params.lines.push_str(&point_lines);

        // Vehicles.
        let mut vehicles: Vec<VehicleSpec> = Vec::new();
        for (i, v) in file.vehicle.iter().enumerate() {
            let span = v.span();
            let f = v.get_ref();
            let Some(cp) = ChargePointId::new(f.charging_point)
                .filter(|cp| points.iter().any(|p| p.id == *cp))
            else {
                return Err(c.err(
                    span,
                    format!(
                        "vehicle.charging_point: there is no [[charging_point]] with id {}",
                        f.charging_point
                    ),
                ));
            };
            if f.arrival >= f.departure {
                return Err(c.err(span, "vehicle: arrival must be before departure"));
            }
            if !matches!(f.phases, 1..=3) {
                return Err(c.err(span, "vehicle.phases: 1, 2 or 3"));
            }
            if !(f.ramp.is_finite() && (0.0..=1000.0).contains(&f.ramp)) {
                return Err(c.err(span, "vehicle.ramp: 0 (at once) to 1000 A/s"));
            }
            if f.taper_from.is_some_and(|x| !(0.0..1.0).contains(&x)) {
                return Err(c.err(span, "vehicle.taper_from: a fraction 0 to below 1"));
            }
            let taper_to = c.amps(&span, "vehicle.taper_to", f.taper_to)?;
            let mut pauses = Vec::new();
            for w in &f.pauses {
                if w.from >= w.to {
                    return Err(c.err(span, "vehicle.pauses: from must be before to"));
                }
                pauses.push(Window {
                    from: secs(w.from),
                    to: secs(w.to),
                });
            }
            let mut phase_switches = Vec::new();
            for w in &f.phase_switch {
                if !matches!(w.phases, 1..=3) {
                    return Err(c.err(span, "vehicle.phase_switch.phases: 1, 2 or 3"));
                }
                phase_switches.push(PhaseSwitch {
                    at: secs(w.at),
                    phases: w.phases,
                    pause: secs(w.pause),
                });
            }
            phase_switches.sort_by_key(|p| p.at);
            let max_current = c.amps(&span, "vehicle.max_current", f.max_current)?;
            if !(0.0..=1000.0).contains(&f.energy) {
                return Err(c.err(span, "vehicle.energy: 0 to 1000 kWh"));
            }
            let energy = Energy::from_watt_hours_f64(f.energy * 1000.0)
                .map_err(|e| c.err(span.clone(), format!("vehicle.energy: {e}")))?;
            let reaction = float_secs(&c, &span, "vehicle.reaction", f.reaction, 60.0)?;
            let arrival = secs(f.arrival);
            let departure = secs(f.departure);
            if let Some(o) = vehicles
                .iter()
                .find(|o| o.charging_point == cp && o.arrival < departure && arrival < o.departure)
            {
                return Err(c.err(
                    span,
                    format!("vehicle overlaps \"{}\" at charging point {cp}", o.name),
                ));
            }
            vehicles.push(VehicleSpec {
                name: f
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("vehicle {}", i + 1)),
                charging_point: cp,
                arrival,
                departure,
                phases: f.phases,
                max_current,
                energy,
                reaction,
                ramp: (f.ramp > 0.0).then_some(f.ramp),
                taper_from: f.taper_from,
                taper_to,
                pauses,
                phase_switches,
            });
        }

        // House.
        let mut house = HouseProfile {
            interpolation: file.house.interpolation,
            points: Vec::new(),
        };
        for p in &file.house.points {
            let span = p.span();
            let f = p.get_ref();
            let t = secs(f.t);
            if house.points.last().is_some_and(|(last, _)| *last >= t) {
                return Err(c.err(span, "house.points: times must increase"));
            }
            let mut v = PerPhase::splat(Current::ZERO);
            for (ph, a) in Phase::ALL.into_iter().zip(f.current) {
                v.set(ph, c.amps(&span, "house.points.current", a)?);
            }
            house.points.push((t, v));
        }

        // Events.
        let window = |w: &Spanned<WindowFile>, what: &str| {
            let f = w.get_ref();
            if f.from >= f.to {
                Err(c.err(w.span(), format!("{what}: from must be before to")))
            } else {
                Ok(Window {
                    from: secs(f.from),
                    to: secs(f.to),
                })
            }
        };
        let mut events = Events::default();
        for w in &file.events.meter_silence {
            events
                .meter_silence
                .push(window(w, "events.meter_silence")?);
        }
        for w in &file.events.grid_control {
            events.grid_control.push(window(w, "events.grid_control")?);
        }
        for h in &file.events.high_power {
            let f = h.get_ref();
            if f.repeat == 0 || f.repeat > 10_000 || (f.repeat > 1 && f.every == 0) {
                return Err(c.err(
                    h.span(),
                    "events.high_power: repeat 1..10000, and every > 0 s when repeating",
                ));
            }
            for k in 0..f.repeat {
                events
                    .high_power
                    .push(secs(f.at) + secs(f.every).saturating_mul(k));
            }
        }
        events.high_power.sort();
        for s in &file.events.load_step {
            let span = s.span();
            let f = s.get_ref();
            if f.to.is_some_and(|to| to <= f.from) {
                return Err(c.err(span, "events.load_step: from must be before to"));
            }
            let mut current = PerPhase::splat(Current::ZERO);
            for (ph, a) in Phase::ALL.into_iter().zip(f.current) {
                current.set(ph, c.amps(&span, "events.load_step.current", a)?);
            }
            events.load_steps.push(LoadStep {
                window: Window {
                    from: secs(f.from),
                    to: f.to.map_or(Duration::MAX, secs),
                },
                current,
            });
        }

        let point_window = |f: &PointWindowFile, span: Range<usize>, what: &str| {
            let cp = ChargePointId::new(f.charging_point)
                .filter(|cp| points.iter().any(|p| p.id == *cp))
                .ok_or_else(|| {
                    c.err(
                        span.clone(),
                        format!(
                            "{what}.charging_point: there is no [[charging_point]] with id {}",
                            f.charging_point
                        ),
                    )
                })?;
            if f.from >= f.to {
                return Err(c.err(span, format!("{what}: from must be before to")));
            }
            Ok(PointWindow {
                cp,
                window: Window {
                    from: secs(f.from),
                    to: secs(f.to),
                },
            })
        };
        for w in &file.events.unreachable {
            let pw = point_window(w.get_ref(), w.span(), "events.unreachable")?;
            events.unreachable.push(pw);
        }
        for w in &file.events.interruption {
            let pw = point_window(w.get_ref(), w.span(), "events.interruption")?;
            events.interruption.push(pw);
        }
        for w in &file.events.invalid_current {
            let f = w.get_ref();
            let at = point_window(
                &PointWindowFile {
                    charging_point: f.charging_point,
                    from: f.from,
                    to: f.to,
                },
                w.span(),
                "events.invalid_current",
            )?;
            let Ok(milliamps) = i32::try_from(f.milliamps) else {
                return Err(c.err(
                    w.span(),
                    "events.invalid_current.milliamps: a 32-bit signed value",
                ));
            };
            events.invalid_current.push(InvalidCurrent {
                at,
                kind: f.kind,
                milliamps,
            });
        }

        let scenario = Self {
            name: file.name.unwrap_or_default(),
            description: file.description,
            fuse: Current::from_amps(i32::try_from(fuse).unwrap_or(i32::MAX).min(100_000)),
            reserve: Current::from_amps(i32::try_from(reserve).unwrap_or(i32::MAX).min(100_000)),
            modes,
            strategy: d.overcurrent_strategy,
            protection,
            meter,
            meter_interval: secs(interval),
            meter_tolerance: secs(tolerance),
            duration: secs(duration),
            step,
            points,
            vehicles,
            house,
            events,
            dlm_lines: params.lines,
            origins: params.origins,
            origin: origin.to_owned(),
        };
        // Every mode's configuration must be valid; report it now, at the scenario key.
        for mode in &scenario.modes {
            scenario.config(*mode)?;
        }
        Ok(scenario)
    }

    /// The gateway configuration text for `mode`.
    pub fn config_text(&self, mode: AllocationMode) -> String {
        let mut text = format!(
            "[dlm]\nenabled = true\nallocation = \"{}\"\n{}",
            mode.name(),
            self.dlm_lines
        );
        text.push_str(
            "[group_addresses]\n1 = [\"0/0/1\"]\n10 = [\"0/0/10\"]\n11 = [\"0/0/11\"]\n12 = [\"0/0/12\"]\n13 = [\"0/0/13\"]\n",
        );
        for p in &self.points {
            let o = p.id.object_base() + 5;
            let _ = writeln!(text, "{o} = [\"0/1/{o}\"]");
        }
        text
    }

    /// The gateway configuration for `mode`, through the firmware's own config loader.
    pub fn config(&self, mode: AllocationMode) -> Result<Config, ScenarioError> {
        file::parse(&self.config_text(mode), "scenario").map_err(|e| match e {
            file::LoadError::Invalid { problems, .. } => {
                let p = problems.first();
                let key = p.and_then(|p| p.key.clone()).unwrap_or_default();
                let message = p.map_or_else(String::new, |p| p.message.clone());
                let found = self.origins.iter().find(|(k, ..)| {
                    key == *k || key.ends_with(&format!(".{k}")) && !k.contains('.')
                });
                let (line, column, skey) =
                    found.map_or((1, 1, key.clone()), |(_, l, c, s)| (*l, *c, s.clone()));
                ScenarioError::Invalid {
                    path: self.origin.clone(),
                    line,
                    column,
                    message: format!("{skey}: {message} (gateway parameter `{key}`)"),
                }
            }
            other => ScenarioError::Invalid {
                path: self.origin.clone(),
                line: 1,
                column: 1,
                message: other.to_string(),
            },
        })
    }

    /// The charging point `id`.
    pub fn point(&self, id: ChargePointId) -> Option<&PointSpec> {
        self.points.iter().find(|p| p.id == id)
    }
}

fn parse_rotation(text: &str) -> Option<[Phase; 3]> {
    let mut out = [Phase::L1; 3];
    let mut parts = text.split('-');
    for slot in &mut out {
        *slot = match parts.next()?.trim() {
            "L1" => Phase::L1,
            "L2" => Phase::L2,
            "L3" => Phase::L3,
            _ => return None,
        };
    }
    let distinct = out
        .iter()
        .all(|p| out.iter().filter(|q| *q == p).count() == 1);
    (parts.next().is_none() && distinct).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
name = "small"
[grid]
fuse = 25
reserve = 2
[dlm]
modes = ["symmetric", "per-phase"]
ramp_up_rate = 2.0
[meter]
interval = 2
tolerance = 3
[time]
duration = 600
[[charging_point]]
id = 1
rotation = "L2-L3-L1"
max = 16
[[vehicle]]
charging_point = 1
arrival = 0
departure = 600
phases = 1
max_current = 16
energy = 5
[house]
points = [ { t = 0, current = [5, 5, 5] }, { t = 100, current = [15, 5, 5] } ]
[[events.load_step]]
from = 50
to = 60
current = [1, 2, 3]
"#;

    fn err(text: &str) -> String {
        Scenario::parse(text, "s.toml").unwrap_err().to_string()
    }

    #[test]
    fn a_small_scenario_parses() {
        let s = Scenario::parse(SMALL, "s.toml").unwrap();
        assert_eq!(
            s.modes,
            vec![AllocationMode::PerPhase, AllocationMode::Symmetric]
        );
        assert_eq!(s.fuse, Current::from_amps(25));
        assert_eq!(s.points[0].grid_phases(1), vec![Phase::L2]);
        assert_eq!(
            s.points[0].grid_phases(3),
            vec![Phase::L2, Phase::L3, Phase::L1]
        );
        let c = s.config(AllocationMode::Symmetric).unwrap();
        assert!(!c.dlm.per_phase);
        assert_eq!(c.dlm.budget(), Current::from_amps(23));
        assert_eq!(s.events.load_steps.len(), 1);
    }

    #[test]
    fn house_profile_interpolates_linearly_or_in_steps() {
        let mut s = Scenario::parse(SMALL, "s.toml").unwrap();
        let l1 = |s: &Scenario, t| s.house.at(Duration::from_secs(t)).get(Phase::L1);
        assert_eq!(l1(&s, 50), Current::from_amps(10));
        assert_eq!(l1(&s, 500), Current::from_amps(15));
        s.house.interpolation = Interpolation::Step;
        assert_eq!(l1(&s, 50), Current::from_amps(5));
    }

    #[test]
    fn unknown_keys_are_rejected_with_line_and_column() {
        let text = SMALL.replace("tolerance = 3", "tolerance = 3\nspeed = 1");
        let e = err(&text);
        assert!(e.starts_with("s.toml:12:1:"), "{e}");
        assert!(e.contains("speed"), "{e}");
    }

    #[test]
    fn wrong_types_and_inconsistent_values_are_located() {
        let e = err(&SMALL.replace("fuse = 25", "fuse = \"big\""));
        assert!(e.starts_with("s.toml:4:"), "{e}");
        let e = err(&SMALL.replace("charging_point = 1", "charging_point = 4"));
        assert!(e.contains("no [[charging_point]] with id 4"), "{e}");
        assert!(e.starts_with("s.toml:18:"), "{e}");
        let e = err(&SMALL.replace("departure = 600", "departure = 0"));
        assert!(e.contains("arrival must be before departure"), "{e}");
        let e = err(&SMALL.replace("\"L2-L3-L1\"", "\"L2-L2-L1\""));
        assert!(e.contains("phase order"), "{e}");
    }

    #[test]
    fn phase_switch_is_off_by_default_and_passed_to_the_gateway_as_its_own_key() {
        let s = Scenario::parse(SMALL, "s.toml").unwrap();
        assert!(!s.points[0].phase_switch);
        let c = s.config(AllocationMode::PerPhase).unwrap();
        assert!(!c.charging_points[0].phase_switch);
        let text = SMALL.replace("max = 16", "max = 16\nphase_switch = true");
        let s = Scenario::parse(&text, "s.toml").unwrap();
        assert!(s.points[0].phase_switch);
        assert!(
            s.config_text(AllocationMode::PerPhase)
                .contains("phase_switch = true")
        );
        let c = s.config(AllocationMode::PerPhase).unwrap();
        assert!(c.charging_points[0].phase_switch);
        assert!(!c.charging_points[1].phase_switch);
        // A wrong type is located; a 1-phase point cannot switch.
        let e = err(&SMALL.replace("max = 16", "max = 16\nphase_switch = \"yes\""));
        assert!(e.starts_with("s.toml:18:"), "{e}");
        let e = err(&SMALL.replace("max = 16", "max = 16\nphase_switch = 1"));
        assert!(e.starts_with("s.toml:18:"), "{e}");
        let e = err(&SMALL.replace("max = 16", "max = 16\nphases = 1\nphase_switch = true"));
        assert!(e.contains("charging_point.phase_switch"), "{e}");
        assert!(e.contains("3-phase"), "{e}");
    }

    #[test]
    fn gateway_parameter_ranges_are_reported_at_the_scenario_key() {
        let e = err(&SMALL.replace("fuse = 25", "fuse = 700"));
        assert!(e.starts_with("s.toml:4:8:"), "{e}");
        assert!(e.contains("grid.fuse"), "{e}");
        let e = err(&SMALL.replace("max = 16", "max = 80"));
        assert!(e.contains("charging_point 1"), "{e}");
    }
}
