//! The running application as the binary starts it: the gateway ([`crate::gateway::start`])
//! plus what sits on top of it — the device website and, for `knx-echarge demo`, the simulated
//! charging points and house — on one tokio runtime, until a signal or a restart request from
//! the website; then the orderly shutdown, the factory reset's last erase and the re-exec.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tracing::{error, info, warn};

use crate::config::Config;
use crate::demo;
use crate::gateway::device;
use crate::gateway::shell::{self, ShellHandle};
use crate::gateway::start::{Chargers, Gateway, Options};
use crate::hw::Board;
use crate::knx::link::LinkHandle;
use crate::ssdp;
use crate::store::DataDir;
use crate::web;

/// What the application runs.
#[derive(Debug, Clone)]
pub struct App {
    /// The configuration.
    pub config: Config,
    /// Whether it is a real configuration (false: unconfigured).
    pub configured: bool,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Which charging points are polled; ignored by the demo, which polls its simulators.
    pub chargers: Chargers,
    /// Run the demo's simulated charging points and house.
    pub demo: bool,
    /// Serve the device website at this address, with this initial password if none is set.
    pub web: Option<(SocketAddr, Option<String>)>,
    /// The board to drive and where the OS network settings go (`None`: no board at all).
    pub device: Option<DeviceArgs>,
}

/// The board and where the OS network settings go.
#[derive(Debug, Clone)]
pub struct DeviceArgs {
    /// The board description (its backend decides what is driven).
    pub board: Board,
    /// Root directory for the systemd-networkd/timesyncd files (`None`: not applied).
    pub network_root: Option<PathBuf>,
    /// The board file was named (`--board`, as the device's systemd unit does): this machine
    /// is that board, so a part of it that is missing or refuses is a device fault. `false`
    /// (the built-in board file on a PC): only logged.
    pub board_expected: bool,
}

/// How the application ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Stopped by a signal.
    Stopped,
    /// Could not start (logged).
    Failed,
    /// The restart failed after a restart request (logged).
    RestartFailed,
}

impl App {
    /// Runs the application on a new runtime until it stops.
    pub fn run(self) -> Ended {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                error!("cannot start the runtime: {e}");
                return Ended::Failed;
            }
        };
        info!(data_dir = %self.data_dir.display(), individual_address = %self.config.knx.individual_address, "knx-echarge {} starting", env!("CARGO_PKG_VERSION"));
        runtime.block_on(self.serve())
    }

    async fn serve(self) -> Ended {
        let mut config = self.config;
        let mut chargers = self.chargers;
        let mut sims = None;
        if self.demo {
            match demo::Demo::start(config.clone()).await {
                Ok(d) => {
                    config = d.config.clone();
                    chargers = Chargers::Poll {
                        rs485: d.rs485.clone(),
                    };
                    sims = Some(d);
                }
                Err(e) => {
                    error!("{e}");
                    return Ended::Failed;
                }
            }
        }
        let web_config = config.clone();
        let rs485_used = matches!(&chargers, Chargers::Poll { rs485: Some(_) }) && !self.demo;
        let active_points = config
            .charging_points
            .iter()
            .filter(|c| c.is_active())
            .count();
        let gateway = match Gateway::start(Options {
            config,
            configured: self.configured,
            data_dir: Some(self.data_dir.clone()),
            chargers,
            inject: sims.is_some(),
            task_timing: None,
        })
        .await
        {
            Ok(g) => g,
            Err(e) => {
                error!("{e}");
                return Ended::Failed;
            }
        };
        let web_addr = self.web.as_ref().map(|(addr, _)| *addr);
        let mut board = self.device.as_ref().map(|d| {
            device::start(
                &d.board,
                d.board_expected,
                &web_config,
                rs485_used,
                gateway.shell.snapshot.clone(),
                gateway.shell.events.clone(),
            )
        });
        let network = self.device.as_ref().and_then(|d| {
            d.network_root.clone().map(|root| {
                spawn_network(
                    web_config.clone(),
                    &d.board.network.interface,
                    root,
                    &self.data_dir,
                )
            })
        });
        let upnp = web_addr
            .filter(|a| !a.ip().is_loopback())
            .and_then(|_| upnp_device(&web_config, &self.data_dir));
        let mut website = start_web(
            self.web,
            web_config,
            &self.data_dir,
            &gateway.shell,
            upnp.clone(),
        )
        .await;
        let ssdp = match (upnp, website.as_ref()) {
            (Some(mut device), Some(site)) => {
                device.http_port = site.local_addr.port();
                ssdp::driver::spawn(device, ssdp::MULTICAST.port())
                    .map_err(|e| {
                        warn!("SSDP discovery unavailable (the website works without it): {e}");
                    })
                    .ok()
            }
            _ => None,
        };
        if let (Some(sims), Some(meter)) = (sims.as_mut(), gateway.bus_input.clone()) {
            sims.run(meter, gateway.to_bus.clone());
            print_demo_banner(
                sims,
                gateway.link.as_ref().map(LinkHandle::local_addr),
                web_addr,
            );
        }
        device::notify_ready(&format!(
            "serving: {active_points} charging point(s), KNX link {}, website {}",
            gateway
                .link
                .as_ref()
                .map_or_else(|| "none".to_owned(), |l| l.local_addr().to_string()),
            web_addr.map_or_else(|| "off".to_owned(), |a| a.to_string())
        ));
        let watchdog = device::spawn_watchdog();
        let button_reset = async {
            match board.as_mut() {
                Some(b) => {
                    let _ = b.factory_reset.wait_for(|r| *r).await;
                }
                None => std::future::pending().await,
            }
        };
        let (restart, by_button) = tokio::select! {
            () = shell::shutdown_signal() => (false, false),
            () = web::restart_wanted(&mut website) => (true, false),
            () = button_reset => {
                info!("factory reset from the programming button: the gateway starts again in the state of delivery");
                (true, true)
            }
        };
        info!(restart, "shutting down");
        device::notify_stopping();
        drop(watchdog);
        if let Some(n) = network {
            n.abort();
        }
        drop(board);
        let factory_reset = by_button
            || website
                .as_ref()
                .is_some_and(web::WebHandle::factory_reset_requested);
        if let Some(ssdp) = ssdp {
            ssdp.shutdown().await;
        }
        if let Some(website) = website {
            website.shutdown().await;
        }
        if let Some(sims) = sims {
            sims.shutdown().await;
        }
        gateway.shutdown().await;
        if factory_reset {
            // The shell may have stored its counters after the website erased them.
            match DataDir::open(&self.data_dir).and_then(|d| web::erase_state(&d)) {
                Ok(()) => info!("factory reset: data directory back to the state of delivery"),
                Err(e) => error!("factory reset incomplete: {e}"),
            }
        }
        if restart {
            let e = web::reexec();
            error!("restart failed: {e}");
            return Ended::RestartFailed;
        }
        Ended::Stopped
    }
}

/// Applies the OS network settings now and whenever the website's settings change (checked
/// every 5 s; files are rewritten and services reloaded only on a change).
fn spawn_network(
    config: Config,
    interface: &str,
    root: PathBuf,
    data_dir: &Path,
) -> tokio::task::JoinHandle<()> {
    let interface = interface.to_owned();
    let store = DataDir::open(data_dir)
        .ok()
        .map(web::settings::SettingsStore::open);
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let site = store.as_ref().map(web::settings::SettingsStore::get);
            let settings = device::net_settings(
                &config,
                &interface,
                site.as_ref().and_then(|w| w.network.dns),
                site.as_ref().is_none_or(|w| w.ntp.enabled),
                site.map(|w| w.ntp.servers).unwrap_or_default(),
            );
            if last.as_ref() != Some(&settings) {
                let method = device::apply_network(&root, &settings);
                info!(method, "IP settings applied");
                last = Some(settings);
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    })
}

/// Starts the device website; a website that cannot start is logged, the gateway runs on.
async fn start_web(
    web: Option<(SocketAddr, Option<String>)>,
    config: Config,
    data_dir: &Path,
    shell: &ShellHandle,
    upnp: Option<ssdp::Device>,
) -> Option<web::WebHandle> {
    let (addr, initial) = web?;
    let data = DataDir::open(data_dir)
        .map_err(|e| error!("device website: {e}"))
        .ok()?;
    let mut ctx = web::Context::new(config, data, shell.events.clone(), shell.snapshot.clone());
    ctx.initial_password = initial;
    ctx.upnp = upnp;
    web::spawn(addr, ctx)
        .await
        .map_err(|e| error!("device website not started: {e}"))
        .ok()
}

/// Prints, once, where to look at the running demo.
fn print_demo_banner(demo: &demo::Demo, knx: Option<SocketAddr>, web: Option<SocketAddr>) {
    use std::fmt::Write as _;
    let mut text = String::from("\nknx-echarge demo is running (Ctrl-C stops it).\n");
    if let Some(knx) = knx {
        let _ = writeln!(text, "  KNXnet/IP tunnelling server: {knx} (UDP)");
    }
    if let Some(web) = web {
        let _ = writeln!(
            text,
            "  website: http://{web}/  password: {}",
            web::DEMO_PASSWORD
        );
    }
    text += "  simulated charging points:\n";
    for (i, a) in demo.addresses.iter().enumerate() {
        let model = demo
            .config
            .charging_points
            .get(i)
            .and_then(|p| p.model)
            .map_or("-", |m| m.id.as_str());
        let at = match a {
            demo::SimAddress::Tcp(addr) => format!("Modbus TCP {addr}"),
            demo::SimAddress::Rtu(unit) => format!(
                "Modbus RTU address {unit} on {}",
                demo.rs485
                    .as_deref()
                    .map_or_else(String::new, |p| p.display().to_string())
            ),
            demo::SimAddress::Off => "left out (no pty pair)".to_owned(),
        };
        let _ = writeln!(text, "    CP{}: {model}, {at}", i + 1);
    }
    let _ = write!(
        text,
        "  smart meter {} sends objects 10-12 (0/0/10..12, DPT 14.019) and 20 every {} s\n\
         \x20 group addresses: object N < 50 -> 0/0/N; charging point n, object 50n+k -> n/0/k\n\
         \x20 full configuration: knx-echarge demo --print-config\n",
        demo::METER_ADDRESS,
        demo::METER_INTERVAL.as_secs()
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The file in the data directory that keeps the gateway's UPnP identity across restarts.
const UPNP_UUID_FILE: &str = "upnp-uuid";

/// What the gateway announces over SSDP: a stable uuid (made once, kept in the data
/// directory), its individual address in the name, the firmware version.
fn upnp_device(config: &Config, data_dir: &Path) -> Option<ssdp::Device> {
    let data = DataDir::open(data_dir)
        .map_err(|e| warn!("SSDP: {e}"))
        .ok()?;
    let stored = data
        .read(UPNP_UUID_FILE)
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    let uuid = if let Some(uuid) = stored {
        uuid
    } else {
        let b: [u8; 16] = rand::random();
        let hex: String = b.iter().fold(String::new(), |mut h, x| {
            let _ = write!(h, "{x:02x}");
            h
        });
        // RFC 4122 version 4 layout.
        let uuid = format!(
            "{}-{}-4{}-{}{}-{}",
            hex.get(0..8)?,
            hex.get(8..12)?,
            hex.get(13..16)?,
            ["8", "9", "a", "b"].get(usize::from(b.get(8).copied().unwrap_or(0) & 3))?,
            hex.get(17..20)?,
            hex.get(20..32)?
        );
        if let Err(e) = data.write(UPNP_UUID_FILE, uuid.as_bytes()) {
            warn!("SSDP: the device's uuid will change at the next start: {e}");
        }
        uuid
    };
    let boot_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    Some(ssdp::Device {
        uuid,
        friendly_name: format!("knx-echarge {}", config.knx.individual_address),
        model_number: env!("CARGO_PKG_VERSION").to_owned(),
        serial: None,
        http_port: 0,
        boot_id,
    })
}
