//! Downlink commands: every payload from the `cmd` topic is verified (signature, device,
//! validity window: [`telltale_wire::signing`]), checked against the replay guard, executed
//! through the vehicle task, and answered with exactly one [`v1::CommandResult`].
//!
//! Commands run one at a time, in arrival order: they all go through the single vehicle task
//! anyway, and a serial handler makes "one result per command" easy to see. Nothing a payload
//! contains can make this task panic or stop; only cancellation, the end of `incoming` or a
//! closed `out` does.

mod execute;
mod replay;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use telltale_wire::signing::{self, Policy};
use telltale_wire::v1;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::uplink::Message;
use crate::vehicle::VehicleRequest;
use replay::ReplayGuard;

pub use telltale_wire::signing::TrustedKey;

/// Most command ids the replay guard remembers at once. Ids are forgotten when their command
/// expires, so this is only reached by a flood of validly signed commands; the guard then
/// refuses new ones rather than forget old ones.
pub const MAX_REMEMBERED_COMMANDS: usize = 4096;

/// A reasonable [`CommandConfig::request_timeout`]: longer than a slow multi-ECU DTC read,
/// short enough that the operator's CLI (30 s wait by default) still gets an answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the command handler needs to know (from [`crate::config`]).
#[derive(Debug, Clone)]
pub struct CommandConfig {
    /// This agent's device id: commands for any other are refused.
    pub device_id: String,
    /// Whose signatures are obeyed. Empty means every command is refused.
    pub trusted_keys: Vec<TrustedKey>,
    /// Whether ClearDtcs may run at all. Clearing erases evidence a workshop needs and resets
    /// readiness monitors, so it is off unless the owner turns it on.
    pub allow_clear: bool,
    /// Longest a command may still be valid for when it arrives (suggested: 5 minutes).
    pub max_ttl: Duration,
    /// How far the cloud's clock may be ahead of the car's (suggested: 30 s).
    pub max_clock_skew: Duration,
    /// Where the replay guard keeps the ids seen (rewritten atomically; a few KiB).
    pub replay_file: PathBuf,
    /// How long a command waits for the vehicle task to answer ([`DEFAULT_REQUEST_TIMEOUT`]);
    /// after it the result is VEHICLE_UNREACHABLE (a sleeping car, a jammed bus).
    pub request_timeout: Duration,
}

/// Handles commands until `cancel`, the end of `incoming` or `out` closing. `incoming` carries
/// raw payloads from the `cmd` topic; results go to `out` as [`Message::CmdResult`].
pub async fn run(
    config: CommandConfig,
    mut incoming: mpsc::Receiver<Vec<u8>>,
    vehicle: mpsc::Sender<VehicleRequest>,
    out: mpsc::Sender<Message>,
    cancel: CancellationToken,
) {
    let policy = Policy {
        device_id: config.device_id.clone(),
        trusted_keys: config.trusted_keys.clone(),
        max_ttl: config.max_ttl,
        max_clock_skew: config.max_clock_skew,
    };
    let skew_ms = i64::try_from(config.max_clock_skew.as_millis()).unwrap_or(i64::MAX);
    // The guard reads and rewrites its file (write, fsync, rename): always off the runtime.
    let path = config.replay_file.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        ReplayGuard::load(&path, now_unix_ms(), skew_ms, MAX_REMEMBERED_COMMANDS)
    })
    .await;
    let guard = match loaded {
        Ok(guard) => Arc::new(Mutex::new(guard)),
        Err(e) => {
            tracing::error!(cause = %e, "the replay guard could not be loaded; commands are not served");
            return;
        }
    };
    let executor = execute::Executor {
        vehicle,
        allow_clear: config.allow_clear,
        timeout: config.request_timeout,
        cancel: cancel.clone(),
    };
    loop {
        let payload = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            payload = incoming.recv() => match payload {
                Some(p) => p,
                None => break,
            },
        };
        let result = handle(&payload, &policy, &guard, &executor).await;
        let id = result.command_id.clone();
        let sent = tokio::select! {
            biased;
            sent = out.send(Message::CmdResult(result.clone())) => sent.is_ok(),
            () = cancel.cancelled() => out.try_send(Message::CmdResult(result)).is_ok(),
        };
        if !sent {
            warn!(command_id = %id, "command result could not be handed to the spool writer");
            if out.is_closed() {
                break;
            }
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    info!("command handler stopped");
}

/// One payload in, one result out.
async fn handle(
    payload: &[u8],
    policy: &Policy,
    guard: &Arc<Mutex<ReplayGuard>>,
    executor: &execute::Executor,
) -> v1::CommandResult {
    let now = now_unix_ms();
    let command = match signing::verify(payload, now, policy) {
        Ok(command) => command,
        Err(rejection) => {
            warn!(
                command_id = %rejection.command_id,
                code = rejection.code.as_str_name(),
                reason = %rejection.reason,
                bytes = payload.len(),
                "command refused"
            );
            return refusal(&rejection.command_id, rejection.code, rejection.reason);
        }
    };
    let action = execute::action_name(&command);
    let admitted = {
        let (guard, command) = (guard.clone(), command.clone());
        tokio::task::spawn_blocking(move || {
            guard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .admit(&command, now)
        })
        .await
        .unwrap_or_else(|e| {
            Err(replay::ReplayError::Save {
                path: PathBuf::from("(replay record)"),
                cause: format!("the saving task failed: {e}"),
            })
        })
    };
    if let Err(err) = admitted {
        warn!(command_id = %command.command_id, action, code = "COMMAND_ERROR_REPLAYED", reason = %err, "command refused");
        return refusal(
            &command.command_id,
            v1::CommandError::Replayed,
            err.to_string(),
        );
    }
    let result = executor.execute(&command).await;
    if result.ok {
        info!(command_id = %command.command_id, action, outcome = "ok", "command executed");
    } else {
        warn!(
            command_id = %command.command_id,
            action,
            code = result.error_code().as_str_name(),
            reason = %result.error,
            "command failed"
        );
    }
    result
}

fn refusal(command_id: &str, code: v1::CommandError, error: String) -> v1::CommandResult {
    v1::CommandResult {
        command_id: command_id.to_owned(),
        ok: false,
        error,
        error_code: code as i32,
        ..Default::default()
    }
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
