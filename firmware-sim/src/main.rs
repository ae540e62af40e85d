//! `firmware-sim`: simulated vehicles on a CAN bus (SocketCAN, the in-process bus), behind an
//! emulated SLCAN adapter on a pseudo-terminal, or as an ELM327 adapter on a pty or TCP.
//!
//! ```text
//! firmware-sim --list-scenarios
//! firmware-sim socketcan vcan0 --scenario misfire
//! firmware-sim elm327 --tcp 127.0.0.1:35000 --scenario catalyst
//! firmware-sim elm327 --pty-link /tmp/obd --scenario catalyst
//! firmware-sim elm327 --tcp 127.0.0.1:35000 --protocol iso9141 --scenario catalyst
//! firmware-sim slcan --pty-link /tmp/canable --scenario hybrid
//! firmware-sim sim --bus demo --scenario hybrid --duration 60 --report-every 5
//! firmware-sim fleet --vehicles 200 --scenario healthy --stagger --duration 300
//! firmware-sim fleet --vehicles 8 --scenario misfire --socketcan 'vcan{}'
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use firmware_sim::elm327::{Elm327, Quirks, VehicleBus, serve_elm327_pty, serve_elm327_tcp};
use firmware_sim::fleet::{build_fleet, serve_fleet};
use firmware_sim::pty::Pty;
use firmware_sim::serve::{lock, serve_can};
use firmware_sim::{Scenario, Vehicle, load_scenario, scenarios};
use telltale_can::virtual_bus::VirtualBus;
use telltale_can::{CanBus, Filter};
use telltale_obd::CanId;
use telltale_obd::legacy::Protocol as LegacyProtocol;

#[derive(Debug, Parser)]
#[command(
    name = "firmware-sim",
    version,
    about = "Simulated vehicles for Telltale"
)]
struct Cli {
    /// List the built-in scenarios and exit.
    #[arg(long)]
    list_scenarios: bool,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "FIRMWARE_SIM_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one vehicle on a SocketCAN interface (can0, vcan0).
    Socketcan {
        /// The interface.
        iface: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Be an ELM327 adapter plugged into one vehicle, on TCP (like a Wi-Fi dongle) or on a
    /// pseudo-terminal (like a USB one) reachable at a symlink.
    Elm327 {
        /// Listen on this address, e.g. 127.0.0.1:35000.
        #[arg(
            long,
            env = "FIRMWARE_SIM_ELM327_TCP",
            conflicts_with = "pty_link",
            required_unless_present = "pty_link"
        )]
        tcp: Option<SocketAddr>,
        /// Create a pty and a symlink to it at this path, e.g. /tmp/obd.
        #[arg(long, env = "FIRMWARE_SIM_PTY_LINK")]
        pty_link: Option<PathBuf>,
        /// The vehicle's bus: CAN (ELM327 protocols 6 and 7), or one of the older buses
        /// (protocols 1 to 5) that every ECU of the vehicle is then on.
        #[arg(long, env = "FIRMWARE_SIM_ELM327_PROTOCOL", value_enum, default_value_t = BusArg::Can)]
        protocol: BusArg,
        /// Behave like a clone rather than the genuine chip (repeat for several):
        /// stuck-echo, no-spaces, slow-reset, no-brd.
        #[arg(long = "quirk", value_enum)]
        quirks: Vec<QuirkArg>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Be an SLCAN (Lawicel) USB-CAN adapter on a pseudo-terminal, with one vehicle on its bus.
    Slcan {
        /// Create a pty and a symlink to it at this path, e.g. /tmp/canable.
        #[arg(long, env = "FIRMWARE_SIM_PTY_LINK")]
        pty_link: PathBuf,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Serve one vehicle on a named in-process bus and print its state as it plays out.
    Sim {
        /// In-process bus name (`sim:NAME` links in the same process find it).
        #[arg(long, env = "FIRMWARE_SIM_BUS", default_value = "sim")]
        bus: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Serve many vehicles at once, one bus each, for load tests.
    Fleet {
        /// How many vehicles.
        #[arg(long, env = "FIRMWARE_SIM_VEHICLES")]
        vehicles: u32,
        /// SocketCAN interface name pattern, `{}` replaced by the vehicle number (`vcan{}`);
        /// without it each vehicle gets an in-process bus `fleet-N`.
        #[arg(long, env = "FIRMWARE_SIM_SOCKETCAN")]
        socketcan: Option<String>,
        /// Start vehicle i at i/N of a drive, so the fleet is not in lockstep.
        #[arg(long, env = "FIRMWARE_SIM_STAGGER")]
        stagger: bool,
        #[command(flatten)]
        run: RunArgs,
    },
}

/// `--quirk`: one way a clone differs from the data sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum QuirkArg {
    /// `ATE0` answers `OK` but the echo stays on.
    StuckEcho,
    /// Bytes are printed without spaces whatever `ATS1` says.
    NoSpaces,
    /// `ATZ` takes 1.5 s.
    SlowReset,
    /// `AT BRD` (a faster serial rate) is not implemented.
    NoBrd,
}

fn quirks(args: &[QuirkArg]) -> Quirks {
    let has = |q| args.contains(&q);
    Quirks {
        stuck_echo: has(QuirkArg::StuckEcho),
        no_spaces: has(QuirkArg::NoSpaces),
        slow_reset: has(QuirkArg::SlowReset),
        no_brd: has(QuirkArg::NoBrd),
    }
}

/// `--protocol`: the vehicle's bus, by the names people know them by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BusArg {
    /// ISO 15765-4 CAN (ELM327 protocols 6 and 7).
    Can,
    /// SAE J1850 PWM, 41.6 kbit/s (protocol 1).
    #[value(name = "j1850-pwm")]
    J1850Pwm,
    /// SAE J1850 VPW, 10.4 kbit/s (protocol 2).
    #[value(name = "j1850-vpw")]
    J1850Vpw,
    /// ISO 9141-2 (protocol 3).
    #[value(name = "iso9141")]
    Iso9141,
    /// ISO 14230-4 KWP2000 with 5-baud initialisation (protocol 4).
    #[value(name = "kwp-5baud")]
    Kwp5Baud,
    /// ISO 14230-4 KWP2000 with fast initialisation (protocol 5).
    #[value(name = "kwp-fast")]
    KwpFast,
}

impl From<BusArg> for VehicleBus {
    fn from(arg: BusArg) -> VehicleBus {
        let legacy = |p| VehicleBus::Legacy(p);
        match arg {
            BusArg::Can => VehicleBus::Can,
            BusArg::J1850Pwm => legacy(LegacyProtocol::J1850Pwm),
            BusArg::J1850Vpw => legacy(LegacyProtocol::J1850Vpw),
            BusArg::Iso9141 => legacy(LegacyProtocol::Iso9141),
            BusArg::Kwp5Baud => legacy(LegacyProtocol::Kwp5Baud),
            BusArg::KwpFast => legacy(LegacyProtocol::KwpFast),
        }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Built-in scenario name or path to a scenario TOML file.
    #[arg(long, env = "FIRMWARE_SIM_SCENARIO", default_value = "healthy")]
    scenario: String,
    /// Vehicle seconds per real second (overrides the scenario's `time_scale`).
    #[arg(long, env = "FIRMWARE_SIM_TIME_SCALE")]
    time_scale: Option<f64>,
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long, env = "FIRMWARE_SIM_DURATION")]
    duration: Option<f64>,
    /// Print the vehicle's state every this many seconds (0: never).
    #[arg(long, env = "FIRMWARE_SIM_REPORT_EVERY", default_value_t = 0.0)]
    report_every: f64,
}

impl RunArgs {
    fn scenario(&self) -> anyhow::Result<Scenario> {
        let mut s = load_scenario(&self.scenario)
            .with_context(|| format!("loading scenario {:?}", self.scenario))?;
        if let Some(scale) = self.time_scale {
            if !(scale.is_finite() && scale > 0.0 && scale <= 10_000.0) {
                bail!("--time-scale {scale} is not a speed-up between 0 and 10000");
            }
            s.time_scale = scale;
        }
        Ok(s)
    }

    fn duration(&self) -> anyhow::Result<Option<Duration>> {
        self.duration
            .map(|d| {
                Duration::try_from_secs_f64(d)
                    .with_context(|| format!("--duration {d} is not a number of seconds"))
            })
            .transpose()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    if cli.list_scenarios {
        for (name, description) in scenarios() {
            println!("{name:12} {description}");
        }
        return Ok(());
    }
    let Some(command) = cli.command else {
        bail!("nothing to do: give a subcommand (socketcan, sim, fleet) or --list-scenarios");
    };
    match command {
        Command::Socketcan { iface, run } => {
            let scenario = run.scenario()?;
            let bus = open_socketcan(&iface)?;
            serve_one(scenario, bus, &run).await
        }
        Command::Elm327 {
            tcp,
            pty_link,
            protocol,
            quirks: quirk_args,
            run,
        } => {
            let vehicle = new_vehicle(&run.scenario()?, &format!("{tcp:?} {pty_link:?}"));
            let bus = VehicleBus::from(protocol);
            let quirks = quirks(&quirk_args);
            tracing::info!(bus = ?bus, ?quirks, "the vehicle's bus and the adapter's quirks");
            let adapter = Elm327::with_bus(bus).with_quirks(quirks);
            let stop = shutdown(run.duration()?);
            match (tcp, pty_link) {
                (Some(addr), _) => {
                    let listener = tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("cannot listen on {addr}"))?;
                    tracing::info!(%addr, "ELM327 adapter listening");
                    Ok(serve_elm327_tcp(listener, vehicle, adapter, stop).await?)
                }
                (None, Some(link)) => Ok(serve_elm327_pty(&link, vehicle, adapter, stop).await?),
                (None, None) => bail!("give --tcp ADDR or --pty-link PATH"),
            }
        }
        Command::Slcan { pty_link, run } => {
            let vehicle = new_vehicle(&run.scenario()?, &pty_link.display().to_string());
            let bus = VirtualBus::new("slcan");
            let pty = Pty::open()?;
            let _link = pty.link(&pty_link)?;
            tracing::info!(link = %pty_link.display(), device = %pty.slave_path().display(), "SLCAN adapter on pty");
            let stop = shutdown(run.duration()?);
            tokio::select! {
                () = serve_can(vehicle, bus.node(), stop) => Ok(()),
                r = telltale_can::slcan::serve_adapter(pty, bus.node()) => Ok(r?),
            }
        }
        Command::Sim { bus, run } => {
            let scenario = run.scenario()?;
            serve_one(scenario, VirtualBus::named(&bus).node(), &run).await
        }
        Command::Fleet {
            vehicles,
            socketcan,
            stagger,
            run,
        } => {
            if vehicles == 0 {
                bail!("--vehicles must be at least 1");
            }
            let scenario = run.scenario()?;
            let fleet = build_fleet(&scenario, vehicles, stagger);
            let mut served = Vec::new();
            for (i, vehicle) in fleet.iter().enumerate() {
                let bus = match &socketcan {
                    Some(pattern) => open_socketcan(&pattern.replace("{}", &i.to_string()))?,
                    None => VirtualBus::named(&format!("fleet-{i}")).node(),
                };
                served.push((vehicle.clone(), bus));
            }
            tracing::info!(vehicles, scenario = %scenario.name, "fleet serving");
            let reporter = run.report_every.max(0.0);
            let first = fleet.first().cloned();
            let stop = shutdown(run.duration()?);
            tokio::select! {
                () = serve_fleet(served, stop) => {}
                () = report_loop(first, reporter) => {}
            }
            Ok(())
        }
    }
}

/// Opens a SocketCAN interface with kernel filters for what a vehicle's ECUs must hear: the
/// 11-bit physical request ids 7E0-7E7 and 7DF, the 29-bit physical requests from the tester
/// (18DAxxF1) and 18DB33F1. Their own responses never come back to them.
fn open_socketcan(iface: &str) -> anyhow::Result<CanBus> {
    let filters = [
        Filter {
            id: 0x7E0,
            mask: 0x7F8,
            extended: false,
        },
        Filter::exact(CanId::Standard(0x7DF)),
        Filter {
            id: 0x18DA_00F1,
            mask: 0x1FFF_00FF,
            extended: true,
        },
        Filter::exact(CanId::Extended(0x18DB_33F1)),
    ];
    Ok(telltale_can::socketcan::open(iface, &filters)?)
}

/// Builds the scenario's vehicle and logs what it is and where it is served.
fn new_vehicle(scenario: &Scenario, served_on: &str) -> Arc<Mutex<Vehicle>> {
    let vehicle = Arc::new(Mutex::new(Vehicle::from_scenario(scenario)));
    {
        let v = lock(&vehicle);
        tracing::info!(
            scenario = %scenario.name,
            vin = %v.vin(),
            on = served_on,
            time_scale = scenario.time_scale,
            ecus = ?v.ecus().iter().map(|e| format!("{} {}/{}", e.name, e.request_id, e.response_id)).collect::<Vec<_>>(),
            "vehicle serving"
        );
    }
    vehicle
}

async fn serve_one(scenario: Scenario, bus: CanBus, run: &RunArgs) -> anyhow::Result<()> {
    let vehicle = new_vehicle(&scenario, bus.name());
    let stop = shutdown(run.duration()?);
    tokio::select! {
        () = serve_can(vehicle.clone(), bus, stop) => {}
        () = report_loop(Some(vehicle), run.report_every.max(0.0)) => {}
    }
    Ok(())
}

/// Completes at SIGINT, SIGTERM, or after `duration`.
async fn shutdown(duration: Option<Duration>) {
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        () = term => tracing::info!("SIGTERM: stopping"),
        () = timer => tracing::info!("duration reached: stopping"),
    }
}

/// Prints one line per `every` seconds about `vehicle`; never completes.
async fn report_loop(vehicle: Option<Arc<Mutex<Vehicle>>>, every: f64) {
    let (Some(vehicle), Ok(period)) = (vehicle, Duration::try_from_secs_f64(every)) else {
        return std::future::pending().await;
    };
    if period.is_zero() {
        return std::future::pending().await;
    }
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let line = report(&lock(&vehicle));
        println!("{line}");
    }
}

/// One status line: time, drive, a few live values, each ECU's codes.
fn report(v: &Vehicle) -> String {
    let m = v.model();
    let mut line = format!(
        "t={:7.1}s drive={} {:5.1}km/h {:4.0}rpm gear={} coolant={:5.1}C",
        m.t,
        m.cycle + 1,
        m.speed_kmh,
        m.rpm,
        m.gear,
        m.coolant_c
    );
    for (index, info) in v.ecus().iter().enumerate() {
        if v.is_silent(index) {
            line.push_str(&format!(" | {}: silent", info.name));
            continue;
        }
        let Some(ecu) = v.ecu(index) else { continue };
        let list = |pick: fn(&firmware_sim::faults::DtcEntry) -> bool| {
            ecu.dtcs
                .iter()
                .filter(|e| pick(e))
                .map(|e| e.dtc.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        line.push_str(&format!(
            " | {}: pending[{}] stored[{}] permanent[{}]",
            info.name,
            list(|e| e.pending),
            list(|e| e.confirmed),
            list(|e| e.permanent)
        ));
    }
    line
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
