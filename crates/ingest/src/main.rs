//! `telltale-ingest`: flags and environment over the TOML file, logging, signals, the
//! `migrate` subcommand. Everything else is in the library (`telltale_ingest::run`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use telltale_ingest::config::{FileConfig, Flags, Settings};

/// Takes the fleet's MQTT traffic (telemetry, DTC reports, vehicle info, status, command
/// results) into the telemetry store, acknowledging each message only after it is committed.
///
/// Settings come from the TOML file (--config), then environment variables, then flags; flags
/// win. `--print-config` shows the result.
#[derive(Debug, Parser)]
#[command(name = "telltale-ingest", version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short, env = "TELLTALE_INGEST_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: Flags,
    /// Print the effective configuration (TOML, secrets hidden), check it, and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the database migrations and exit.
    Migrate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => match FileConfig::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("telltale-ingest: {e}");
                return ExitCode::from(2);
            }
        },
        None => FileConfig::default(),
    };
    let effective = cli.flags.apply(file);
    let settings = match effective.validate() {
        Ok(s) => s,
        Err(e) => {
            if cli.print_config {
                print!("{}", effective.to_toml_redacted());
            }
            eprintln!("telltale-ingest: configuration refused: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        print!("{}", effective.to_toml_redacted());
        return ExitCode::SUCCESS;
    }
    telltale_service::process::init_logs(settings.json_logs, &settings.log_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("telltale-ingest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Migrate) => migrate(&settings).await,
            None => telltale_ingest::run(settings, telltale_service::process::shutdown_signal())
                .await
                .context("telltale-ingest"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(cause = format!("{e:#}"), "telltale-ingest failed");
            eprintln!("telltale-ingest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = telltale_ingest::open_store(settings)
        .await
        .context("database.url")?;
    store.migrate().await.context("migrating the store")?;
    tracing::info!("migrations applied");
    Ok(())
}
