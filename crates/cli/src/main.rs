//! `telltale`: the project's command line for people at a terminal.
//!
//! - `telltale decode FILE` turns a `candump -L` log into one JSON object per diagnostic request
//!   and response ([`decode`]).
//! - `telltale demo` runs the whole system on one machine with simulated cars ([`demo`]).
//! - `telltale command ...` signs and sends a downlink command to one vehicle and prints its
//!   result, and makes the key that signs commands ([`command`]).
//!
//! The protocol work is all in `telltale-obd`; this crate only reads files and prints.

mod command;
mod decode;
mod demo;
mod scan;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "telltale",
    version,
    about = "Telltale connected-vehicle diagnostics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode the diagnostic traffic in a CAN log (`candump -L` format) to JSON lines.
    ///
    /// Each OBD-II / UDS request and response becomes one JSON object on stdout, with at least
    /// `ts`, `can_id` and `service`, and as they apply `pid`, `name`, `value`, `unit`, `dtcs`,
    /// `vin`, `nrc`, `error`. Frames that are not diagnostic traffic are skipped; a broken line or
    /// transfer gives an object with `error` and decoding goes on.
    Decode {
        /// The log file; `-` reads standard input.
        file: PathBuf,
    },
    /// Read a vehicle: VIN and ECUs, live PIDs, trouble codes, freeze frame, clear, watch.
    ///
    /// Text for people by default; `--json` for scripts (shapes in `telltale scan --help`).
    /// Logs (RUST_LOG, default warn) go to stderr.
    Scan(scan::ScanArgs),
    /// Send a signed command to a vehicle over MQTT and print its result; make signing keys.
    ///
    /// Exit status: 0 when the agent ran the command, 2 when it refused or failed it (the JSON
    /// on stdout says why), 1 when no result could be had (broker unreachable, timeout).
    #[command(name = "command")]
    Cmd(command::CommandArgs),
    /// Run the whole system on this machine: an embedded MQTT broker, the ingest on SQLite,
    /// the CRM with its quote page, and simulated cars each read by a real agent; print each
    /// fault as it becomes a lead with a quote and the owner's link. Ctrl-C stops.
    Demo(Box<demo::DemoArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Decode { file } => decode::run(&file),
        Command::Scan(args) => scan::run(args),
        Command::Cmd(args) => match command::run(args) {
            Ok(code) => return code,
            Err(err) => Err(err),
        },
        Command::Demo(args) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(demo::run(*args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("telltale: {err:#}");
            ExitCode::FAILURE
        }
    }
}
