//! The `knx-echarge` binary: command-line wiring only; the work is in the library.
//!
//! Exit codes: 0 success; 1 `check-config` found configuration faults; 2 the config file is
//! unreadable or invalid (syntax, unknown key, bad value: line, column and key are printed).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use knx_echarge::config::{Config, file, validate};
use knx_echarge::hw::Board;
use knx_echarge::knx::link::{self, LinkSpec};
use knx_echarge::store::DataDir;
use knx_echarge::{demo, shell, units::ChargePointId};
use tracing::{error, info, warn};

/// Fixes glibc's mmap threshold at its default (128 KiB), which also switches off its dynamic
/// growth. Without this, freeing the 19 MiB Argon2 block of the first password hash raised the
/// threshold above that size, so the block of every later login came from a thread arena that
/// glibc never trims: the demo stayed at 27.6 MB resident instead of 8.6 MB after one login
/// (`cargo bench --bench demo`, `BENCHMARKS.md`). Large blocks are now always mapped and
/// unmapped. (mimalloc was tried instead: 20.7 MB.)
///
/// The one `unsafe` of the crate: a call into the C library, made first thing in `main` while
/// the process has one thread.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn pin_malloc_thresholds() {
    const THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only sets allocator parameters and takes no pointers; it returns 0 when
    // the parameter is refused, which leaves glibc's defaults (logged below).
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) };
    if ok == 0 {
        eprintln!("note: mallopt(M_MMAP_THRESHOLD) refused; memory use may stay at its peak");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn pin_malloc_thresholds() {}

/// The embedded demo configuration (five charging points, DLM on).
const DEMO_CONFIG: &str = include_str!("../examples/five-chargers.toml");

#[derive(Parser)]
#[command(
    name = "knx-echarge",
    version,
    about = "KNX gateway for up to five EV charging points, with dynamic load management"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// Configuration file (TOML). Without it, the configuration saved in the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Directory for what survives a restart.
        #[arg(long, default_value = "./knx-echarge-data")]
        data_dir: PathBuf,
        /// Board description (default: the built-in hw/board.toml).
        #[arg(long)]
        board: Option<PathBuf>,
        /// KNX link, overriding `knx.link` of the config: tpuart:///dev/ttyS1 (KNX/TP),
        /// tunnel://host[:port], routing://interface-address, server://address:port.
        #[arg(long)]
        knx: Option<LinkSpec>,
        /// Do not poll the charging points (bus-only commissioning and tests).
        #[arg(long)]
        no_chargers: bool,
        /// Serve the device website on this address (e.g. 0.0.0.0:80); without it, no website.
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
    },
    /// Run the gateway on its embedded demo configuration.
    Demo {
        /// Print the demo configuration and exit.
        #[arg(long)]
        print_config: bool,
        /// Directory for what survives a restart.
        #[arg(long, default_value = "./knx-echarge-demo-data")]
        data_dir: PathBuf,
        /// Address of the built-in KNXnet/IP tunnelling server.
        #[arg(long, default_value = "127.0.0.1:3671")]
        knx_server: std::net::SocketAddr,
        /// Run on this KNX link instead of the tunnelling server, e.g. tpuart:///dev/pts/5
        /// (a port of `knx-echarge tp-line`).
        #[arg(long)]
        knx: Option<LinkSpec>,
        /// Address of the device website.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: std::net::SocketAddr,
    },
    /// Check a configuration file and list its configuration faults.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
        /// Print the faults as JSON: [{code, severity, charging_point, message}].
        #[arg(long)]
        json: bool,
    },
    /// List the supported charging-point models: transport, defaults, model-dependent objects.
    Models {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a DLM scenario at accelerated time and write timeseries.csv, summary.json, plot.svg.
    Simulate {
        /// Scenario file (TOML, see README "Simulation").
        scenario: PathBuf,
        /// Output directory (one subdirectory per mode when several modes run).
        #[arg(long)]
        out: PathBuf,
    },
    /// Emulate a KNX TP line: pseudo-terminal ports answering like TP-UART chips, joined by
    /// one bus. Prints the port paths, then every frame that crosses the line.
    TpLine {
        /// Number of ports.
        #[arg(long, default_value_t = 2)]
        ports: usize,
        /// Time the receivers have to acknowledge a frame, in milliseconds.
        #[arg(long, default_value_t = 20)]
        ack_window_ms: u64,
        /// Do not echo a frame to its sender.
        #[arg(long)]
        no_echo: bool,
        /// Hold each frame for its time on TP1 (9600 bit/s, about 50 telegrams/s).
        #[arg(long)]
        tp1_timing: bool,
    },
    /// List the group objects that exist under a configuration.
    Objects {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Print JSON: [{number, name, dpt, flags, group_addresses, …}].
        #[arg(long)]
        json: bool,
        /// Language of the names: en or de.
        #[arg(long, default_value = "en")]
        lang: String,
    },
}

fn init_logging() {
    // stderr plus the ring buffer of the website's log download; the website switches the level.
    knx_echarge::web::logs::init();
}

fn main() -> ExitCode {
    pin_malloc_thresholds();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file, json } => check_config(&file, json),
        Command::Objects { config, json, lang } => objects(&config, json, &lang),
        Command::Models { json } => models(json),
        Command::Simulate { scenario, out } => {
            match knx_echarge::simulate::simulate_to_dir(&scenario, &out) {
                Ok(results) => {
                    let summaries: Vec<_> = results.iter().map(|r| &r.summary).collect();
                    let text = knx_echarge::simulate::output::text(&summaries);
                    // A closed pipe (`| head`) ends the output quietly.
                    let _ = writeln!(
                        std::io::stdout().lock(),
                        "{text}written to {}",
                        out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run {
            config,
            data_dir,
            board,
            knx,
            no_chargers,
            http,
        } => {
            init_logging();
            run(
                config.as_deref(),
                &data_dir,
                board.as_deref(),
                knx,
                no_chargers,
                http,
            )
        }
        Command::TpLine {
            ports,
            ack_window_ms,
            no_echo,
            tp1_timing,
        } => tp_line(ports, ack_window_ms, no_echo, tp1_timing),
        Command::Demo {
            print_config,
            data_dir,
            knx_server,
            knx,
            http,
        } => {
            if print_config {
                return print_demo_config(knx_server);
            }
            init_logging();
            match file::parse(DEMO_CONFIG, "demo configuration") {
                Ok(mut config) => {
                    config.knx.link = Some(knx.unwrap_or(LinkSpec::Server { bind: knx_server }));
                    // The simulators replace the example's charging-point addresses at start.
                    let web = Some((http, Some(knx_echarge::web::DEMO_PASSWORD)));
                    serve(config, true, &data_dir, Chargers::Demo, web)
                }
                Err(e) => {
                    error!("{e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `knx-echarge tp-line`: the emulated TP line until Ctrl-C.
fn tp_line(ports: usize, ack_window_ms: u64, no_echo: bool, tp1_timing: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let options = knx_echarge::tpline::LineOptions {
            ack_window: std::time::Duration::from_millis(ack_window_ms),
            echo: !no_echo,
            tp1_timing,
        };
        let line = match knx_echarge::tpline::TpLine::start(ports, options) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        let mut monitor = line.monitor();
        {
            let mut out = std::io::stdout().lock();
            for (i, path) in line.paths().iter().enumerate() {
                let _ = writeln!(out, "port {i}: {}", path.display());
            }
            let _ = out.flush();
        }
        let start = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
                m = monitor.recv() => match m {
                    Ok(m) => {
                        let ms = m.at.duration_since(start).as_secs_f64() * 1000.0;
                        let mut out = std::io::stdout().lock();
                        if writeln!(out, "{ms:10.1} ms  {m}").and_then(|()| out.flush()).is_err() {
                            return ExitCode::SUCCESS;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        eprintln!("monitor lagged, {n} frames not shown");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return ExitCode::from(1),
                },
            }
        }
    })
}

/// `knx-echarge demo --print-config`: the demo configuration as it runs when the simulators'
/// preferred ports are free and socat is present.
fn print_demo_config(knx_server: std::net::SocketAddr) -> ExitCode {
    let mut config = match file::parse(DEMO_CONFIG, "demo configuration") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    config.knx.link = Some(LinkSpec::Server { bind: knx_server });
    let config = demo::demo_config(config, &demo::planned_addresses());
    match file::to_string(&config) {
        Ok(text) => {
            let ports: Vec<String> = demo::PREFERRED_PORTS
                .iter()
                .map(ToString::to_string)
                .collect();
            let header = format!(
                "# knx-echarge demo configuration: the embedded examples/five-chargers.toml with the\n\
                 # simulated charging points' addresses. Charging points 1-4 are Modbus TCP simulators\n\
                 # on 127.0.0.1 ports {} (a free port when one is taken; the log\n\
                 # says which); charging point 5 is Modbus RTU address 1 on a socat pty pair made at\n\
                 # start (left out without socat). The smart meter ({}) sends objects 10-12 and 20.\n\
                 #\n\
                 # Group addresses follow one rule:\n\
                 #   object N < 50                  -> 0/0/N\n\
                 #   charging point n, object 50n+k -> n/0/k\n\
                 # Interruption objects additionally listen on 0/1/0 (all charging points).\n",
                ports.join(", "),
                demo::METER_ADDRESS
            );
            // A closed pipe (`| head`) ends the listing quietly.
            let _ = std::io::stdout()
                .lock()
                .write_all((header + &text).as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write the demo configuration: {e}");
            ExitCode::from(2)
        }
    }
}

fn load_or_exit(path: &Path) -> Result<Config, ExitCode> {
    file::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn check_config(path: &Path, json: bool) -> ExitCode {
    let config = match load_or_exit(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let faults = validate::validate(&config);
    let table = config.object_table();
    let unlinked_inactive: Vec<u16> = config
        .group_addresses
        .keys()
        .filter(|n| !table.contains(**n))
        .map(|n| n.0)
        .collect();
    if json {
        match serde_json::to_string_pretty(&faults) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("cannot encode faults: {e}");
                return ExitCode::from(2);
            }
        }
    } else if faults.is_empty() {
        println!(
            "{}: OK ({} group objects)",
            path.display(),
            table.objects().len()
        );
    } else {
        for f in &faults {
            println!("{f}");
        }
    }
    if !unlinked_inactive.is_empty() {
        eprintln!(
            "warning: group addresses are linked to objects that do not exist under this configuration: {unlinked_inactive:?} (kept, not used)"
        );
    }
    if faults.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn objects(path: &Path, json: bool, lang: &str) -> ExitCode {
    let config = match load_or_exit(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let table = config.object_table();
    if json {
        match serde_json::to_string_pretty(&table) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("cannot encode objects: {e}");
                return ExitCode::from(2);
            }
        }
        return ExitCode::SUCCESS;
    }
    let mut out = std::io::stdout().lock();
    for o in table.objects() {
        let name = if lang == "de" { &o.name_de } else { &o.name };
        let channel = o
            .charging_point
            .map(|cp: ChargePointId| format!("CP{cp} "))
            .unwrap_or_default();
        let gas: Vec<String> = o.group_addresses.iter().map(ToString::to_string).collect();
        // A closed pipe (`| head`) ends the listing quietly.
        if writeln!(
            out,
            "{:>3}  {}  {:<7} {channel}{name}  [{}]",
            o.number,
            o.flags,
            o.dpt,
            gas.join(", ")
        )
        .is_err()
        {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn run(
    config_path: Option<&Path>,
    data_dir: &Path,
    board: Option<&Path>,
    knx: Option<LinkSpec>,
    no_chargers: bool,
    http: Option<std::net::SocketAddr>,
) -> ExitCode {
    let board = match board.map_or_else(Board::builtin, Board::load) {
        Ok(b) => b,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    info!(board = %board.board.name, revision = %board.board.revision, "board");
    let data = match DataDir::open(data_dir) {
        Ok(d) => d,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    let (config, configured) = if let Some(path) = config_path {
        match file::load(path) {
            Ok(c) => (c, true),
            Err(e) => {
                error!("{e}");
                return ExitCode::from(2);
            }
        }
    } else {
        let saved = data.config_path();
        if saved.exists() {
            match file::load(&saved) {
                Ok(c) => (c, true),
                Err(e) => {
                    // Never lose the configuration: keep the file, run unconfigured.
                    error!("saved configuration is unusable, running unconfigured: {e}");
                    (Config::defaults(), false)
                }
            }
        } else {
            warn!(
                "no configuration: running unconfigured (APP LED flashes slowly); pass --config FILE"
            );
            (Config::defaults(), false)
        }
    };
    let mut config = config;
    if knx.is_some() {
        config.knx.link = knx;
    }
    let chargers = if no_chargers {
        Chargers::None
    } else {
        Chargers::Line(board.serial.rs485.device.as_path())
    };
    serve(
        config,
        configured,
        data.path(),
        chargers,
        http.map(|a| (a, None)),
    )
}

fn models(json: bool) -> ExitCode {
    let text = if json {
        match serde_json::to_string_pretty(&knx_echarge::chargers::catalog::models()) {
            Ok(text) => text + "\n",
            Err(e) => {
                eprintln!("cannot encode models: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        knx_echarge::chargers::catalog::text()
    };
    // A closed pipe (`| head`) ends the listing quietly.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

/// Which charging points the gateway polls.
#[derive(Clone, Copy)]
enum Chargers<'a> {
    /// None (bus-only commissioning and tests).
    None,
    /// The configured ones, RS485 on this device.
    Line(&'a Path),
    /// The demo's simulated ones ([`demo::Demo`]), with the simulated house.
    Demo,
}

/// `web`: `Some((address, initial password))` = serve the device website.
fn serve(
    config: Config,
    configured: bool,
    data_dir: &Path,
    chargers: Chargers<'_>,
    web: Option<(std::net::SocketAddr, Option<&str>)>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    info!(data_dir = %data_dir.display(), individual_address = %config.knx.individual_address, "knx-echarge {} starting", env!("CARGO_PKG_VERSION"));
    let objects = config.object_table().objects().len();
    let active: Vec<String> = config
        .charging_points
        .iter()
        .filter(|c| c.is_active())
        .map(|c| c.id.to_string())
        .collect();
    info!(objects, charging_points = %active.join(","), dlm = config.dlm.enabled, "configuration loaded");
    runtime.block_on(async {
        let mut config = config;
        let mut sims = None;
        if let Chargers::Demo = chargers {
            match demo::Demo::start(config.clone()).await {
                Ok(d) => {
                    config = d.config.clone();
                    sims = Some(d);
                }
                Err(e) => {
                    error!("{e}");
                    return ExitCode::from(2);
                }
            }
        }
        let own = config.knx.individual_address;
        let link = if let Some(spec) = config.knx.link.clone() {
            match link::spawn(spec.clone(), own).await {
                Ok(link) => {
                    info!(%spec, local = %link.local_addr(), "KNX link open");
                    Some(link)
                }
                Err(e) => {
                    error!(%spec, "cannot open the KNX link: {e}");
                    return ExitCode::from(2);
                }
            }
        } else {
            warn!("no KNX link configured (knx.link or --knx): the gateway runs without a bus");
            None
        };
        let (bus, link) = match link {
            Some(mut link) => {
                let (_, dummy) = tokio::sync::mpsc::channel(1);
                let from_bus = std::mem::replace(&mut link.from_bus, dummy);
                (
                    Some(shell::Bus {
                        to_bus: link.to_bus.clone(),
                        from_bus,
                    }),
                    Some(link),
                )
            }
            None => (None, None),
        };
        // The demo's smart meter: its frames join the link's on the way into the shell.
        let (bus, meter_input) = match (&sims, bus) {
            (Some(_), bus) => {
                let (to_bus, from_bus) = match bus {
                    Some(b) => (Some(b.to_bus), Some(b.from_bus)),
                    None => (None, None),
                };
                let (from_bus, meter) = demo::merge_bus_input(from_bus);
                let bus = to_bus.clone().map(|to_bus| shell::Bus { to_bus, from_bus });
                (bus, Some((meter, to_bus)))
            }
            (None, bus) => (bus, None),
        };
        let prepared = match (chargers, &sims) {
            (Chargers::None, _) => None,
            (Chargers::Line(rs485), _) => {
                Some(knx_echarge::chargers::task::prepare(&config, Some(rs485)))
            }
            (Chargers::Demo, sims) => Some(knx_echarge::chargers::task::prepare(
                &config,
                sims.as_ref().and_then(|d| d.rs485.as_deref()),
            )),
        };
        let senders = prepared
            .as_ref()
            .map(knx_echarge::chargers::task::Prepared::commands)
            .unwrap_or_default();
        let web_config = config.clone();
        let store = DataDir::open(data_dir)
            .map_err(|e| error!("energy counters will not be kept across restarts: {e}"))
            .ok();
        let handle = shell::spawn_with_store(config, configured, bus, senders, store);
        let fleet = prepared.map(|p| p.start(&handle.events));
        let web_addr = web.map(|(addr, _)| addr);
        let mut web = start_web(web, web_config, data_dir, &handle).await;
        if let (Some(sims), Some((meter, to_bus))) = (sims.as_mut(), meter_input) {
            sims.run(meter, to_bus);
            print_demo_banner(
                sims,
                link.as_ref().map(link::LinkHandle::local_addr),
                web_addr,
            );
        }
        let restart = tokio::select! {
            () = shell::shutdown_signal() => false,
            () = knx_echarge::web::restart_wanted(&mut web) => true,
        };
        info!(restart, "shutting down");
        let factory_reset = web
            .as_ref()
            .is_some_and(knx_echarge::web::WebHandle::factory_reset_requested);
        if let Some(web) = web {
            web.shutdown().await;
        }
        if let Some(fleet) = fleet {
            fleet.shutdown().await;
        }
        if let Some(sims) = sims {
            sims.shutdown().await;
        }
        handle.shutdown().await;
        if let Some(link) = link {
            link.shutdown().await;
        }
        if factory_reset {
            // The shell may have stored its counters after the website erased them.
            match DataDir::open(data_dir).and_then(|d| knx_echarge::web::erase_state(&d)) {
                Ok(()) => info!("factory reset: data directory back to the state of delivery"),
                Err(e) => error!("factory reset incomplete: {e}"),
            }
        }
        if restart {
            let e = knx_echarge::web::reexec();
            error!("restart failed: {e}");
            return ExitCode::from(2);
        }
        ExitCode::SUCCESS
    })
}

/// Prints, once, where to look at the running demo.
fn print_demo_banner(
    demo: &demo::Demo,
    knx: Option<std::net::SocketAddr>,
    web: Option<std::net::SocketAddr>,
) {
    use std::fmt::Write as _;
    let mut text = String::from("\nknx-echarge demo is running (Ctrl-C stops it).\n");
    if let Some(knx) = knx {
        let _ = writeln!(text, "  KNXnet/IP tunnelling server: {knx} (UDP)");
    }
    if let Some(web) = web {
        let _ = writeln!(
            text,
            "  website: http://{web}/  password: {}",
            knx_echarge::web::DEMO_PASSWORD
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
            demo::SimAddress::Off => "left out (no socat)".to_owned(),
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

/// Starts the device website; a website that cannot start is logged, the gateway runs on.
async fn start_web(
    web: Option<(std::net::SocketAddr, Option<&str>)>,
    config: Config,
    data_dir: &Path,
    handle: &shell::ShellHandle,
) -> Option<knx_echarge::web::WebHandle> {
    let (addr, initial) = web?;
    let data = DataDir::open(data_dir)
        .map_err(|e| error!("device website: {e}"))
        .ok()?;
    let mut ctx = knx_echarge::web::Context::new(
        config,
        data,
        handle.events.clone(),
        handle.snapshot.clone(),
    );
    ctx.initial_password = initial.map(str::to_owned);
    knx_echarge::web::spawn(addr, ctx)
        .await
        .map_err(|e| error!("device website not started: {e}"))
        .ok()
}
