//! The status view: what the status page and `GET /api/v1/status` show, built from the
//! shell's [`Snapshot`] and the configuration, and the one-hour history of the DLM for the
//! load-vs-budget chart.
//!
//! The view is derived, never stored: every field comes from an object value of the snapshot
//! (the same values KNX sees), the present faults, the DLM cycle, the reasons the core
//! recorded for each charging point's current, or the configuration.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::config::Config;
use crate::core::{ComLed, DlmCycle, LinkState};
use crate::faults::Fault;
use crate::gateway::shell::Snapshot;
use crate::objects::Value;
use crate::units::GoNumber;

/// The whole status page.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// Device and KNX.
    pub device: DeviceView,
    /// The device's general fault (objects 8/9) and every present fault.
    pub faults: FaultsView,
    /// Dynamic load management.
    pub dlm: DlmView,
    /// One entry per configured charging point (enabled ones), in order.
    pub charging_points: Vec<ChargePointView>,
}

/// Device and KNX information.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    /// Firmware version.
    pub firmware: &'static str,
    /// Application program (ETS) version the firmware is compatible with (main version).
    pub application_version: String,
    /// Firmware and application program have the same main version (spec 8.4.2).
    pub application_compatible: bool,
    /// Seconds since the web server started with the gateway.
    pub uptime_s: u64,
    /// DHCP on.
    pub dhcp: bool,
    /// The address in use, its interface and how it was obtained (fields `ip`, `ip_source`,
    /// `interface`, `mac`, `configured_ip`, `ip_obtained` in the JSON).
    #[serde(flatten)]
    pub network: super::network::NetworkView,
    /// KNX individual address.
    pub individual_address: String,
    /// Programming mode.
    pub programming_mode: bool,
    /// KNX link: "connected", "traffic" (connected, telegrams in the last moments),
    /// "reconnecting" or "down", from the link state the core got from the link.
    pub knx_link: &'static str,
    /// Telegrams sent.
    pub telegrams_sent: u64,
    /// Telegrams rejected.
    pub telegrams_rejected: u64,
}

/// One fault for display.
#[derive(Debug, Clone, Serialize)]
pub struct FaultView {
    /// Code text as KNX shows it.
    pub code: &'static str,
    /// Severity level.
    pub severity: u8,
    /// Charging point, or `None` for the device.
    pub charging_point: Option<u8>,
    /// What the code means.
    pub description: &'static str,
    /// What exactly is wrong.
    pub message: String,
}

impl From<&Fault> for FaultView {
    fn from(f: &Fault) -> Self {
        Self {
            code: f.code.text(),
            severity: f.severity.0,
            charging_point: f.charging_point.map(u8::from),
            description: f.code.description(),
            message: f.message.clone(),
        }
    }
}

/// General fault and the list.
#[derive(Debug, Clone, Serialize)]
pub struct FaultsView {
    /// Object 8: a fault is present.
    pub present: bool,
    /// Object 9: last or current fault text ("No error").
    pub last: String,
    /// Every present fault, worst first.
    pub list: Vec<FaultView>,
}

/// DLM state.
#[derive(Debug, Clone, Serialize)]
pub struct DlmView {
    /// DLM on.
    pub enabled: bool,
    /// "per_phase" or "symmetric".
    pub mode: &'static str,
    /// Fuse the DLM protects, A.
    pub fuse: f64,
    /// Last cycle: budget, meter, available per phase; emergency; high-power wait.
    pub cycle: Option<DlmCycle>,
    /// Grid-supporting control active (object 2).
    pub grid_control: bool,
}

/// One charging point.
#[derive(Debug, Clone, Serialize)]
pub struct ChargePointView {
    /// 1..=5.
    pub id: u8,
    /// Model name.
    pub model: String,
    /// "192.168.1.101:502 unit 255" or "RS485 address 1".
    pub address: String,
    /// State value 0..=11 (object 50).
    pub state: Option<u8>,
    /// English state text.
    pub state_text: &'static str,
    /// Vehicle connected.
    pub connected: bool,
    /// Charging.
    pub charging: bool,
    /// Setpoint, A (object 61).
    pub setpoint: Option<f64>,
    /// Currents L1..L3, A.
    pub currents: [Option<f64>; 3],
    /// Power sum, W.
    pub power: Option<f64>,
    /// Power L1..L3, W.
    pub powers: [Option<f64>; 3],
    /// Energy of the last charge, Wh.
    pub energy_last: Option<f64>,
    /// Energy total, Wh.
    pub energy_total: Option<f64>,
    /// Session start, end (time of day) and duration (s).
    pub session_start: Option<String>,
    /// Session end.
    pub session_end: Option<String>,
    /// Session duration, s.
    pub session_duration_s: Option<i32>,
    /// Charging-point fault present (object 94).
    pub fault_present: bool,
    /// Last charging-point fault text (object 95).
    pub last_fault: Option<String>,
    /// Description of the last fault code, if it is present now.
    pub fault: Option<FaultView>,
    /// Manufacturer fault info 1–4.
    pub fault_info: Vec<String>,
    /// Why the charging point gets the current it gets, as the core and the DLM decided it
    /// (key for the page's translations: `own_max`, `fair_share`, `phase_l1`, `queued`, …;
    /// see [`crate::dlm::Limit`]). `None` before the core decided.
    pub limited_by: Option<&'static str>,
    /// Whether that reason holds the current below what the charging point could take
    /// (`false` for its own maximum and for no vehicle).
    pub limited: bool,
}

/// English text of a state value (spec table 23).
pub fn state_text(v: u8) -> &'static str {
    use crate::chargers::status::CpState as S;
    let s = match v {
        1 => S::StartUp,
        2 => S::Error,
        3 => S::NotAvailable,
        4 => S::Cancelled,
        5 => S::Available,
        6 => S::Connected,
        7 => S::ManualStartRequired,
        8 => S::Charging,
        9 => S::ChargingReduced,
        10 => S::ChargingVentilation,
        11 => S::Interrupted,
        _ => S::Illegal,
    };
    s.text()
}

fn amps(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Current(c) => Some(c.as_amps_f64()),
        _ => None,
    }
}
fn watts(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Power(p) => Some(p.as_watts_f64()),
        _ => None,
    }
}
fn wh(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Energy(e) => Some(e.as_watt_hours_f64()),
        _ => None,
    }
}
fn flag(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true)))
}
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Text(t) => Some(t.clone()),
        Value::TimeOfDay(t) => Some(t.to_string()),
        _ => None,
    }
}

/// Builds the view; `network` is what [`super::network::view`] found.
pub fn view(
    config: &Config,
    snap: &Snapshot,
    uptime: Duration,
    network: super::network::NetworkView,
) -> StatusView {
    let obj = |n: u16| snap.objects.get(&GoNumber(n));
    let knx_link = match snap.knx_link {
        LinkState::Connected if snap.leds.is_some_and(|l| l.com == ComLed::Traffic) => "traffic",
        LinkState::Connected => "connected",
        LinkState::Reconnecting => "reconnecting",
        LinkState::Down => "down",
    };
    let grid_control = flag(obj(2));
    let device = DeviceView {
        firmware: env!("CARGO_PKG_VERSION"),
        application_version: crate::etsdb::ParamModel::get().application.version.clone(),
        application_compatible: crate::etsdb::ParamModel::get()
            .application
            .compatible_with(env!("CARGO_PKG_VERSION")),
        uptime_s: uptime.as_secs(),
        dhcp: config.ip.dhcp,
        network,
        individual_address: config.knx.individual_address.to_string(),
        programming_mode: snap.programming_mode,
        knx_link,
        telegrams_sent: snap.telegrams_sent,
        telegrams_rejected: snap.telegrams_rejected,
    };
    let faults = FaultsView {
        present: flag(obj(8)) || snap.faults.iter().any(|f| f.charging_point.is_none()),
        last: text(obj(9)).unwrap_or_else(|| crate::faults::NO_ERROR.to_owned()),
        list: snap.faults.iter().map(FaultView::from).collect(),
    };
    let dlm = DlmView {
        enabled: config.dlm.enabled,
        mode: if config.dlm.per_phase {
            "per_phase"
        } else {
            "symmetric"
        },
        fuse: config.dlm.overcurrent_protection.as_amps_f64(),
        cycle: snap.dlm,
        grid_control,
    };
    let charging_points = config
        .charging_points
        .iter()
        .filter(|c| c.enabled)
        .map(|c| {
            let base = c.id.object_base();
            let o = |off: u16| obj(base + off);
            let state = match o(0) {
                Some(Value::U8(v)) => Some(*v),
                _ => None,
            };
            let address = match c.interface {
                crate::catalog::Interface::Tcp => format!("{}:{}", c.ip, c.port),
                crate::catalog::Interface::Rs485 => {
                    format!("RS485 {}", c.rs485_address)
                }
            };
            let setpoint = amps(o(11)).or_else(|| amps(o(10)));
            let charging = flag(o(2));
            let limit = snap.limits.get(c.id);
            let fault = snap
                .faults
                .iter()
                .find(|f| f.charging_point == Some(c.id))
                .map(FaultView::from);
            ChargePointView {
                id: c.id.number(),
                model: c.model.map_or_else(|| "—".to_owned(), |m| m.name.clone()),
                address,
                state,
                state_text: state.map_or("—", state_text),
                connected: flag(o(1)),
                charging,
                setpoint,
                currents: [amps(o(13)), amps(o(14)), amps(o(15))],
                power: watts(o(16)),
                powers: [watts(o(17)), watts(o(18)), watts(o(19))],
                energy_last: wh(o(24)),
                energy_total: wh(o(25)),
                session_start: text(o(26)),
                session_end: text(o(27)),
                session_duration_s: match o(28) {
                    Some(Value::Seconds(s)) => Some(*s),
                    _ => None,
                },
                fault_present: flag(o(44)) || fault.is_some(),
                last_fault: text(o(45)),
                fault,
                fault_info: (46..=49).filter_map(|off| text(o(off))).collect(),
                limited_by: limit.map(crate::dlm::Limit::key),
                limited: limit.is_some_and(crate::dlm::Limit::limits),
            }
        })
        .collect();
    StatusView {
        device,
        faults,
        dlm,
        charging_points,
    }
}

/// One sample of the load-vs-budget chart.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// Measured load per phase, A.
    pub load: [f64; 3],
    /// Budget per phase, A.
    pub budget: [f64; 3],
}

/// How long the chart looks back.
pub const HISTORY_SPAN: Duration = Duration::from_secs(3600);

/// The DLM history of the last hour.
#[derive(Debug, Clone)]
pub struct History {
    samples: Arc<Mutex<VecDeque<(Instant, Sample)>>>,
}

impl History {
    /// Samples `snapshot` every `every` while the task runs (the task ends with the channel).
    pub fn spawn(mut snapshot: watch::Receiver<Snapshot>, every: Duration) -> Self {
        let history = Self {
            samples: Arc::new(Mutex::new(VecDeque::new())),
        };
        let h = history.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    changed = snapshot.changed() => if changed.is_err() { break },
                }
                let cycle = snapshot.borrow().dlm;
                if let Some(c) = cycle {
                    h.record(Instant::now(), &c, every);
                }
            }
        });
        history
    }

    /// Adds a sample unless the last one is younger than `min_gap`.
    fn record(&self, now: Instant, c: &DlmCycle, min_gap: Duration) {
        let Ok(mut s) = self.samples.lock() else {
            return;
        };
        if s.back()
            .is_some_and(|(t, _)| now.duration_since(*t) < min_gap)
        {
            return;
        }
        s.push_back((
            now,
            Sample {
                t: chrono::Utc::now().timestamp_millis(),
                load: c.meter.0.map(crate::units::Current::as_amps_f64),
                budget: c.budget.0.map(crate::units::Current::as_amps_f64),
            },
        ));
        while s
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > HISTORY_SPAN)
        {
            s.pop_front();
        }
    }

    /// The samples of the last hour, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .map(|s| s.iter().map(|(_, x)| *x).collect())
            .unwrap_or_default()
    }
}
