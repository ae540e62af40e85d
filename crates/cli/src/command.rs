//! `telltale command`: send a signed command to one vehicle and print its result, and manage
//! the Ed25519 key that signs commands.
//!
//! - `keygen --secret FILE` makes a key: the secret seed (base64) goes to FILE with mode 0600,
//!   the public key (base64) to stdout, ready for the agent's list of trusted keys.
//! - `public-key --secret FILE` prints the public key of an existing secret key.
//! - `send ... ACTION` signs and publishes one command and waits for its result
//!   ([`send`]); the result is printed as JSON ([`json`]).
//!
//! Exit status: 0 when the agent ran the command, 2 when it refused or failed it (the JSON
//! says why), 1 when no answer could be had at all (bad arguments, broker unreachable, no
//! result in time).

mod json;
mod send;

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ed25519_dalek::SigningKey;
use telltale_wire::signing;
use telltale_wire::v1;

/// `telltale command` arguments.
#[derive(Debug, Args)]
pub(crate) struct CommandArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Make a new signing key: the secret goes to FILE (mode 0600, never overwritten), the
    /// public key (base64) to stdout for the agents' trusted keys.
    Keygen {
        #[arg(long, value_name = "FILE", env = "TELLTALE_COMMAND_SECRET")]
        secret: PathBuf,
    },
    /// Print the public key (base64) of a secret key file.
    PublicKey {
        #[arg(long, value_name = "FILE", env = "TELLTALE_COMMAND_SECRET")]
        secret: PathBuf,
    },
    /// Sign and send one command to a vehicle, wait for its result and print it as JSON.
    Send(SendArgs),
}

/// `telltale command send` arguments.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The broker, `mqtt://HOST[:PORT]` (port 1883 by default).
    #[arg(long, env = "TELLTALE_MQTT")]
    mqtt: String,
    /// The vehicle's device id (its MQTT client id).
    #[arg(long, env = "TELLTALE_DEVICE")]
    device: String,
    /// The secret key file made by `telltale command keygen`.
    #[arg(long, value_name = "FILE", env = "TELLTALE_COMMAND_SECRET")]
    secret: PathBuf,
    /// The id the agents know this key by (their `trusted_keys` entry).
    #[arg(long, default_value = "default", env = "TELLTALE_KEY_ID")]
    key_id: String,
    /// How long the command stays valid (`60s`, `5m`, `500ms`); the agent refuses it after.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    ttl: Duration,
    /// How long to wait for the result.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    wait: Duration,
    #[command(subcommand)]
    action: ActionArg,
}

/// What the vehicle is asked to do.
#[derive(Debug, Clone, Subcommand)]
enum ActionArg {
    /// Read stored, pending and permanent trouble codes now.
    ReadDtcs,
    /// Read freeze frame N (default 0).
    FreezeFrame {
        #[arg(default_value_t = 0)]
        frame: u8,
    },
    /// Read Mode 01 PIDs once: hex, comma-separated (`0C,0D`).
    ReadPids {
        #[arg(value_parser = parse_pids)]
        pids: PidList,
    },
    /// Change sampling periods: `NAME=MS`, `PID=MS` or `NAME@PID=MS`, comma-separated
    /// (`Vehicle.Speed=1000,0x0C=500`); PIDs are hex (`0C` or `0x0C`); period 0 stops a
    /// signal; a name without a PID is sent with PID 0 (the agent resolves the name).
    SetSchedule {
        #[arg(value_parser = parse_schedule)]
        signals: Schedule,
    },
    /// Clear trouble codes (the agent refuses unless it allows clearing and the car stands).
    ClearDtcs,
}

#[derive(Debug, Clone)]
struct PidList(Vec<u32>);

#[derive(Debug, Clone)]
struct Schedule(Vec<v1::SignalPeriod>);

impl ActionArg {
    fn to_action(&self) -> v1::command::Action {
        use v1::command::Action;
        match self {
            ActionArg::ReadDtcs => Action::ReadDtcs(v1::ReadDtcs {}),
            ActionArg::FreezeFrame { frame } => Action::ReadFreezeFrame(v1::ReadFreezeFrame {
                frame: (*frame).into(),
            }),
            ActionArg::ReadPids { pids } => Action::ReadPids(v1::ReadPids {
                pids: pids.0.clone(),
            }),
            ActionArg::SetSchedule { signals } => Action::SetSchedule(v1::SetSchedule {
                signals: signals.0.clone(),
            }),
            ActionArg::ClearDtcs => Action::ClearDtcs(v1::ClearDtcs {}),
        }
    }
}

/// Runs `telltale command ...`; the exit code follows the module doc.
pub(crate) fn run(args: CommandArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        What::Keygen { secret } => {
            keygen(&secret)?;
            Ok(ExitCode::SUCCESS)
        }
        What::PublicKey { secret } => {
            let key = read_secret(&secret)?;
            println!("{}", signing::encode_verifying_key(&key.verifying_key()));
            Ok(ExitCode::SUCCESS)
        }
        What::Send(args) => send::run(args),
    }
}

fn keygen(path: &Path) -> anyhow::Result<()> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists; refusing to overwrite a secret key (move it away first if you mean to replace it)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    };
    writeln!(file, "{}", signing::encode_signing_key(&key))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", signing::encode_verifying_key(&key.verifying_key()));
    Ok(())
}

fn read_secret(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secret key file {}", path.display()))?;
    signing::parse_signing_key(&text)
        .with_context(|| format!("{} is not a telltale secret key", path.display()))
}

/// `500ms`, `30s`, `5m`, `1h` (the units of every Telltale config); zero is refused.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = telltale_service::config::parse_duration(text)?;
    if d.is_zero() {
        return Err("a duration of zero is not useful here".into());
    }
    Ok(d)
}

fn parse_hex_pid(text: &str) -> Result<u32, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if digits.is_empty() || digits.len() > 2 {
        return Err(format!("{text:?} is not a PID (hex, 00-FF)"));
    }
    u8::from_str_radix(digits, 16)
        .map(u32::from)
        .map_err(|_| format!("{text:?} is not a PID (hex, 00-FF)"))
}

fn parse_pids(text: &str) -> Result<PidList, String> {
    let pids = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(parse_hex_pid)
        .collect::<Result<Vec<_>, _>>()?;
    if pids.is_empty() {
        return Err("no PIDs given".into());
    }
    Ok(PidList(pids))
}

/// A PID is one or two hex digits, optionally with `0x`; anything else is a signal name.
fn looks_like_pid(text: &str) -> bool {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .map(|d| (d, true))
        .unwrap_or((text, false));
    match digits {
        (_, true) => true,
        (d, false) => (1..=2).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_hexdigit()),
    }
}

fn parse_schedule(text: &str) -> Result<Schedule, String> {
    let mut signals = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (target, ms) = item
            .rsplit_once('=')
            .ok_or_else(|| format!("{item:?}: expected NAME=MS, PID=MS or NAME@PID=MS"))?;
        let period_ms: u32 = ms
            .trim()
            .parse()
            .map_err(|_| format!("{item:?}: {ms:?} is not a period in milliseconds"))?;
        let (signal, pid) = match target.split_once('@') {
            Some((name, pid)) => (name.to_owned(), parse_hex_pid(pid)?),
            None if looks_like_pid(target) => (String::new(), parse_hex_pid(target)?),
            None => (target.to_owned(), 0),
        };
        if signal.is_empty() && pid == 0 {
            return Err(format!("{item:?}: PID 00 is not a signal"));
        }
        signals.push(v1::SignalPeriod {
            signal,
            pid,
            period_ms,
        });
    }
    if signals.is_empty() {
        return Err("no signals given".into());
    }
    Ok(Schedule(signals))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn pid_lists() {
        assert_eq!(parse_pids("0C,0D").map(|p| p.0), Ok(vec![0x0C, 0x0D]));
        assert_eq!(parse_pids("0x05, 0c").map(|p| p.0), Ok(vec![0x05, 0x0C]));
        assert!(parse_pids("100").is_err());
        assert!(parse_pids("zz").is_err());
        assert!(parse_pids(",").is_err());
    }

    #[test]
    fn schedules() {
        let Ok(Schedule(s)) = parse_schedule("Vehicle.Speed=1000,0x0C=500,Fuel@2F=0,0D=250") else {
            panic!("schedule refused");
        };
        let got: Vec<_> = s
            .iter()
            .map(|p| (p.signal.as_str(), p.pid, p.period_ms))
            .collect();
        assert_eq!(
            got,
            [
                ("Vehicle.Speed", 0, 1000),
                ("", 0x0C, 500),
                ("Fuel", 0x2F, 0),
                ("", 0x0D, 250)
            ]
        );
        assert!(parse_schedule("Vehicle.Speed").is_err());
        assert!(parse_schedule("0x=5").is_err());
        assert!(parse_schedule("00=5").is_err());
        assert!(parse_schedule("Speed=fast").is_err());
    }
}
