//! The composition root: the one place that wires a configuration into a running gateway —
//! the KNX link, the shell around the core, the charger and meter tasks, the data directory.
//! The binary (through [`crate::app`]), the demo, tests and benches all start the gateway
//! with [`Gateway::start`]; what sits on top (the website, the demo's simulators) is added by
//! the edge that needs it.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::shell::{self, Bus, ShellHandle};
use super::tasks::{self, TaskTiming};
use crate::config::{Config, file};
use crate::knx::link::{self, LinkEvent, LinkHandle};
use crate::knx::wire::cemi::LData;
use crate::store::DataDir;

/// Which charging points the gateway polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chargers {
    /// None (bus-only commissioning and tests).
    None,
    /// The configured ones; RS485 charging points on the line at `rs485` (a serial device).
    Poll {
        /// The RS485 serial device, if the device has one.
        rs485: Option<PathBuf>,
    },
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration (its `knx.link` says which bus access to open).
    pub config: Config,
    /// Whether the configuration is a real one (false: unconfigured, APP LED flashes).
    pub configured: bool,
    /// The data directory for what the core persists (energy counters); `None` keeps nothing.
    pub data_dir: Option<PathBuf>,
    /// Which charging points to poll.
    pub chargers: Chargers,
    /// Whether to offer [`Gateway::bus_input`]: frames that enter the gateway as if they came
    /// from the bus (the demo's simulated smart meter, tests).
    pub inject: bool,
    /// Polling and back-off timing of the charger tasks; `None` = from the configuration.
    pub task_timing: Option<TaskTiming>,
}

impl Options {
    /// Options for `config`: configured, no charging points polled, nothing persisted, no
    /// injection.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            configured: true,
            data_dir: None,
            chargers: Chargers::None,
            inject: false,
            task_timing: None,
        }
    }
}

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The KNX link named by the configuration could not be opened.
    #[error("cannot open the KNX link {spec}: {reason}")]
    Link {
        /// The link.
        spec: String,
        /// Why.
        reason: String,
    },
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// The shell: events into the core, the snapshot out.
    pub shell: ShellHandle,
    /// The KNX link, if one is configured.
    pub link: Option<LinkHandle>,
    /// Frames entering as if from the bus ([`Options::inject`]).
    pub bus_input: Option<mpsc::Sender<LinkEvent>>,
    /// Frames for the bus (the link's send queue), if a link is open.
    pub to_bus: Option<mpsc::Sender<LData>>,
}

impl Gateway {
    /// Opens the link, starts the shell and the charger tasks on the current tokio runtime.
    pub async fn start(options: Options) -> Result<Self, StartError> {
        let Options {
            config,
            configured,
            data_dir,
            chargers,
            inject,
            task_timing,
        } = options;
        log_configuration(&config);
        let own = config.knx.individual_address;
        let mut link = if let Some(spec) = config.knx.link.clone() {
            // The device's address table: on TP the link acknowledges these groups only.
            let groups = config
                .object_table()
                .objects()
                .iter()
                .flat_map(|o| o.group_addresses.iter().copied())
                .collect();
            let link = link::spawn_with_groups(spec.clone(), own, Some(groups))
                .await
                .map_err(|e| StartError::Link {
                    spec: spec.to_string(),
                    reason: e.to_string(),
                })?;
            info!(%spec, local = %link.local_addr(), "KNX link open");
            if let link::LinkSpec::Server { .. } = spec {
                // The KNXnet/IP parameter object that ETS reads over IP.
                // It ends by itself once the link is gone.
                tokio::spawn(super::ip_parameters::refresh(
                    config.ip.clone(),
                    Some(link.local_addr()),
                    link.control.clone(),
                ));
            }
            Some(link)
        } else {
            warn!("no KNX link configured (knx.link or --knx): the gateway runs without a bus");
            None
        };
        let to_bus = link.as_ref().map(|l| l.to_bus.clone());
        let control = link.as_ref().map(|l| l.control.clone());
        let from_link = link.as_mut().map(|l| {
            let (_, closed) = mpsc::channel(1);
            std::mem::replace(&mut l.from_bus, closed)
        });
        let (from_bus, bus_input) = if inject {
            let (rx, tx) = merge_bus_input(from_link);
            (Some(rx), Some(tx))
        } else {
            (from_link, None)
        };
        let bus = match (to_bus.clone(), from_bus) {
            (Some(to_bus), Some(from_bus)) => Some(Bus {
                to_bus,
                from_bus,
                control,
            }),
            _ => None,
        };
        let prepared = match &chargers {
            Chargers::None => None,
            Chargers::Poll { rs485 } => {
                let timing = task_timing.unwrap_or_else(|| tasks::timing_from_config(&config));
                Some(tasks::prepare_with(&config, rs485.as_deref(), timing))
            }
        };
        let store = data_dir.as_deref().and_then(|dir| {
            DataDir::open(dir)
                .map_err(|e| error!("energy counters will not be kept across restarts: {e}"))
                .ok()
        });
        // The shell owns the charger tasks: a download applied live restarts those whose
        // endpoint changed.
        let shell = shell::spawn_with_fleet(config, configured, bus, prepared, store);
        Ok(Self {
            shell,
            link,
            bus_input,
            to_bus,
        })
    }

    /// Stops the charger tasks and the shell (it owns them), then the link.
    pub async fn shutdown(self) {
        self.shell.shutdown().await;
        if let Some(link) = self.link {
            link.shutdown().await;
        }
    }
}

/// The configuration to run with: `path` if given (an unreadable file is an error), else the
/// one ETS downloaded into `data` (`device.json`), else the one saved in `data` (unusable: logged and kept, the gateway runs unconfigured), else
/// unconfigured. Returns the configuration and whether it is a real one.
pub fn load_config(path: Option<&Path>, data: &DataDir) -> Result<(Config, bool), file::LoadError> {
    if let Some(path) = path {
        return file::load(path).map(|c| (c, true));
    }
    // What ETS downloaded (or `import-config` stored) comes first.
    match crate::config::download::downloaded_config(data) {
        Ok(Some(config)) => return Ok((config, true)),
        Ok(None) => {}
        Err(e) => error!("the downloaded configuration is unusable, ignoring it: {e}"),
    }
    let saved = data.config_path();
    if saved.exists() {
        match file::load(&saved) {
            Ok(c) => Ok((c, true)),
            Err(e) => {
                // Never lose the configuration: keep the file, run unconfigured.
                error!("saved configuration is unusable, running unconfigured: {e}");
                Ok((Config::defaults(), false))
            }
        }
    } else {
        warn!(
            "no configuration: running unconfigured (APP LED flashes slowly); pass --config FILE"
        );
        Ok((Config::defaults(), false))
    }
}

fn log_configuration(config: &Config) {
    let objects = config.object_table().objects().len();
    let active: Vec<String> = config
        .charging_points
        .iter()
        .filter(|c| c.is_active())
        .map(|c| c.id.to_string())
        .collect();
    info!(objects, charging_points = %active.join(","), dlm = config.dlm.enabled, "configuration loaded");
}

/// Joins the link's input (if any) with a second input: returns the joined receiver and the
/// sender of the second input.
fn merge_bus_input(
    from_link: Option<mpsc::Receiver<LinkEvent>>,
) -> (mpsc::Receiver<LinkEvent>, mpsc::Sender<LinkEvent>) {
    let (tx, rx) = mpsc::channel(256);
    if let Some(mut from_link) = from_link {
        let forward = tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = from_link.recv().await {
                if forward.send(ev).await.is_err() {
                    break;
                }
            }
        });
    }
    (rx, tx)
}
