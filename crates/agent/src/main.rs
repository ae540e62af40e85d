//! `telltale-agent`: flags and environment over the TOML file, logging, signals. Everything
//! else is in the library (`telltale_agent::run`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use telltale_agent::config::FileConfig;

/// Reads a vehicle over OBD-II/UDS and publishes telemetry, DTC reports and vehicle info over
/// MQTT, keeping every message on disk until the broker has it.
///
/// Settings come from the TOML file (--config), then environment variables, then flags; flags
/// win. `--print-config` shows the result. See deploy/agent/agent.toml for every key.
#[derive(Debug, Parser)]
#[command(name = "telltale-agent", version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, short, env = "TELLTALE_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Device id (MQTT client id and topic level).
    #[arg(long, env = "TELLTALE_AGENT_DEVICE_ID")]
    device_id: Option<String>,
    /// Diagnostic link: socketcan:can0, slcan:PATH[@BITRATE[:BAUD]], elm327:PATH[@BAUD],
    /// elm327+tcp:HOST:PORT, sim:NAME.
    #[arg(long, env = "TELLTALE_AGENT_LINK")]
    link: Option<String>,
    /// Directory for the spool and the command replay guard.
    #[arg(long, env = "TELLTALE_AGENT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Broker: mqtt://HOST:PORT or mqtts://HOST:PORT.
    #[arg(long, env = "TELLTALE_AGENT_MQTT_URL")]
    mqtt_url: Option<String>,
    /// MQTT protocol: 3.1.1 or 5.
    #[arg(long, env = "TELLTALE_AGENT_MQTT_PROTOCOL")]
    mqtt_protocol: Option<String>,
    #[arg(long, env = "TELLTALE_AGENT_MQTT_USERNAME")]
    mqtt_username: Option<String>,
    /// Prefer the environment variable or mqtt.password_file over this flag (visible in `ps`).
    #[arg(long, env = "TELLTALE_AGENT_MQTT_PASSWORD", hide_env_values = true)]
    mqtt_password: Option<String>,
    /// Status endpoint address (empty disables).
    #[arg(long, env = "TELLTALE_AGENT_STATUS_LISTEN")]
    status_listen: Option<String>,
    /// Spool size bound, e.g. 64MiB.
    #[arg(long, env = "TELLTALE_AGENT_SPOOL_MAX_SIZE")]
    spool_max_size: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "TELLTALE_AGENT_LOG_FORMAT")]
    log_format: Option<String>,
    /// Print the effective configuration (TOML, secrets hidden), check it, and exit.
    #[arg(long)]
    print_config: bool,
}

impl Args {
    fn apply(self, mut c: FileConfig) -> FileConfig {
        if let Some(v) = self.device_id {
            c.device_id = v;
        }
        if let Some(v) = self.link {
            c.link = v;
        }
        if let Some(v) = self.state_dir {
            c.state_dir = v;
        }
        if let Some(v) = self.mqtt_url {
            c.mqtt.url = v;
        }
        if let Some(v) = self.mqtt_protocol {
            c.mqtt.protocol = v;
        }
        if let Some(v) = self.mqtt_username {
            c.mqtt.username = Some(v);
        }
        if let Some(v) = self.mqtt_password {
            c.mqtt.password = Some(v);
            c.mqtt.password_file = None;
        }
        if let Some(v) = self.status_listen {
            c.status.listen = v;
        }
        if let Some(v) = self.spool_max_size {
            c.spool.max_size = v;
        }
        if let Some(v) = self.log_format {
            c.log.format = v;
        }
        c
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let file = match &args.config {
        Some(path) => match FileConfig::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("telltale-agent: {e}");
                return ExitCode::from(2);
            }
        },
        None => FileConfig::default(),
    };
    let print = args.print_config;
    let effective = args.apply(file);
    let settings = match effective.validate() {
        Ok(s) => s,
        Err(e) => {
            if print {
                print!("{}", effective.to_toml_redacted());
            }
            eprintln!("telltale-agent: configuration refused: {e}");
            return ExitCode::from(2);
        }
    };
    if print {
        print!("{}", effective.to_toml_redacted());
        return ExitCode::SUCCESS;
    }

    telltale_service::process::init_logs(settings.json_logs, &settings.log_filter);

    // One thread: the agent's work is a few requests per second and a socket; a second worker
    // thread would only cost memory on a dongle. fsyncs run on the blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("telltale-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(telltale_agent::run(
        settings,
        telltale_service::process::shutdown_signal(),
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(cause = format!("{e:#}"), "telltale-agent failed to start");
            eprintln!("telltale-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}
