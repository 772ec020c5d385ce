//! The `knx-echarge` binary: command-line wiring only; the work is in the library.
//!
//! Exit codes: 0 success; 1 `check-config` found configuration faults; 2 the config file is
//! unreadable or invalid (syntax, unknown key, bad value: line, column and key are printed).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use knx_echarge::app::{App, DeviceArgs, Ended};
use knx_echarge::config::{Config, file, validate};
use knx_echarge::gateway::start::{Chargers, load_config};
use knx_echarge::hw::Board;
use knx_echarge::knx::link::LinkSpec;
use knx_echarge::store::DataDir;
use knx_echarge::{demo, units::ChargePointId};
use tracing::{error, info};

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
        /// Apply the IP, DNS and NTP settings to the operating system: systemd-networkd and
        /// timesyncd files are written under this root directory (`/` on the device, which
        /// also reloads the services). Without it, the OS network settings are left alone.
        #[arg(long)]
        network_root: Option<PathBuf>,
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
    /// Write the ETS product database (application program, Hardware.xml, Catalog.xml; KNX
    /// project schema 20) generated from the group-object table and the parameter model.
    Etsdb {
        /// Output directory (the files go to DIR/M-XXXX/).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the configuration ETS downloaded (stored in the data directory) as TOML.
    ExportConfig {
        /// Directory for what survives a restart.
        #[arg(long, default_value = "./knx-echarge-data")]
        data_dir: PathBuf,
    },
    /// Store a TOML configuration in the data directory as if ETS had downloaded it.
    ImportConfig {
        /// Configuration file (TOML).
        file: PathBuf,
        /// Directory for what survives a restart.
        #[arg(long, default_value = "./knx-echarge-data")]
        data_dir: PathBuf,
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

/// `knx-echarge etsdb --out DIR`.
fn etsdb(out: &Path) -> ExitCode {
    match knx_echarge::knxprod::write_to_dir(out) {
        Ok(paths) => {
            let app = &knx_echarge::etsdb::ParamModel::get().application;
            let firmware = env!("CARGO_PKG_VERSION");
            let mut stdout = std::io::stdout().lock();
            for p in &paths {
                let _ = writeln!(stdout, "wrote {}", p.display());
            }
            let _ = writeln!(
                stdout,
                "application program version {} (firmware {firmware}: {}); manufacturer id \
                 M-{:04X} is a placeholder; signing the .knxprod needs the KNX Manufacturer Tool \
                 or the ETS DLLs (README, \"ETS product database\")",
                app.version,
                if app.compatible_with(firmware) {
                    "compatible, same main version"
                } else {
                    "INCOMPATIBLE, main versions differ"
                },
                app.manufacturer_id
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
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
        Command::Etsdb { out } => etsdb(&out),
        Command::ExportConfig { data_dir } => export_config(&data_dir),
        Command::ImportConfig { file, data_dir } => import_config(&file, &data_dir),
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
            network_root,
        } => {
            init_logging();
            run(
                config.as_deref(),
                &data_dir,
                board.as_deref(),
                knx,
                no_chargers,
                http,
                network_root,
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
                    exit_code(
                        App {
                            config,
                            configured: true,
                            data_dir,
                            chargers: Chargers::None,
                            demo: true,
                            web: Some((http, Some(knx_echarge::web::DEMO_PASSWORD.to_owned()))),
                            // The demo's board is simulated: nothing is driven.
                            device: Board::builtin().ok().map(|b| DeviceArgs {
                                board: b.simulated(),
                                network_root: None,
                                board_expected: false,
                            }),
                        }
                        .run(),
                    )
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
/// preferred ports are free.
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
                 # says which); charging point 5 is Modbus RTU address 1 on a pty pair made at\n\
                 # start (in-process, no socat). The smart meter ({}) sends objects 10-12 and 20.\n\
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

fn export_config(data_dir: &Path) -> ExitCode {
    let text = DataDir::open(data_dir)
        .map_err(knx_echarge::config::download::DownloadError::from)
        .and_then(|data| knx_echarge::config::download::export_toml(&data));
    match text {
        Ok(text) => {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn import_config(file: &Path, data_dir: &Path) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let origin = file.display().to_string();
    let faults = DataDir::open(data_dir)
        .map_err(knx_echarge::config::download::DownloadError::from)
        .and_then(|data| knx_echarge::config::download::import_toml(&text, &origin, &data));
    match faults {
        Ok(faults) => {
            for fault in &faults {
                eprintln!("configuration fault: {fault}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
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
    network_root: Option<PathBuf>,
) -> ExitCode {
    let board_expected = board.is_some();
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
    let (mut config, configured) = match load_config(config_path, &data) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    if knx.is_some() {
        config.knx.link = knx;
    }
    let chargers = if no_chargers {
        Chargers::None
    } else {
        Chargers::Poll {
            rs485: Some(board.serial.rs485.device.clone()),
        }
    };
    exit_code(
        App {
            config,
            configured,
            data_dir: data.path().to_path_buf(),
            chargers,
            demo: false,
            web: http.map(|a| (a, None)),
            device: Some(DeviceArgs {
                board,
                network_root,
                board_expected,
            }),
        }
        .run(),
    )
}

/// The process's exit code for how the application ended.
fn exit_code(ended: Ended) -> ExitCode {
    match ended {
        Ended::Stopped => ExitCode::SUCCESS,
        Ended::Failed | Ended::RestartFailed => ExitCode::from(2),
    }
}

fn models(json: bool) -> ExitCode {
    let text = if json {
        match serde_json::to_string_pretty(&knx_echarge::config::models::models()) {
            Ok(text) => text + "\n",
            Err(e) => {
                eprintln!("cannot encode models: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        knx_echarge::config::models::text()
    };
    // A closed pipe (`| head`) ends the listing quietly.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
