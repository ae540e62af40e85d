//! Executing a verified command: arguments checked, the matching [`VehicleRequest`] sent to the
//! vehicle task, its answer (or its silence, after a timeout) turned into a command result.
//!
//! Arguments are checked here rather than in the vehicle task so that a bad command never
//! reaches the bus, and so that the limits a command may ask for are in one place.

use std::time::Duration;

use telltale_wire::v1;
use telltale_wire::v1::command::Action;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::vehicle::{RequestError, VehicleRequest};

/// Most PIDs one ReadPids may ask for: enough for any dashboard, few enough that one command
/// cannot monopolise the bus.
pub(crate) const MAX_PIDS_PER_COMMAND: usize = 32;
/// Most signals one SetSchedule may change.
pub(crate) const MAX_SCHEDULE_ENTRIES: usize = 64;

#[derive(Debug)]
pub(crate) struct Executor {
    pub(crate) vehicle: mpsc::Sender<VehicleRequest>,
    pub(crate) allow_clear: bool,
    pub(crate) timeout: Duration,
    pub(crate) cancel: CancellationToken,
}

/// The action's name for logs.
pub(crate) fn action_name(command: &v1::Command) -> &'static str {
    match command.action {
        Some(Action::ReadDtcs(_)) => "read_dtcs",
        Some(Action::ReadFreezeFrame(_)) => "read_freeze_frame",
        Some(Action::ReadPids(_)) => "read_pids",
        Some(Action::SetSchedule(_)) => "set_schedule",
        Some(Action::ClearDtcs(_)) => "clear_dtcs",
        None => "none",
    }
}

fn error(code: v1::CommandError, message: impl Into<String>) -> RequestError {
    RequestError {
        code,
        message: message.into(),
    }
}

impl Executor {
    /// Runs `command` (already verified and admitted) and builds its result.
    pub(crate) async fn execute(&self, command: &v1::Command) -> v1::CommandResult {
        let mut result = v1::CommandResult {
            command_id: command.command_id.clone(),
            ok: true,
            ..Default::default()
        };
        let outcome = match &command.action {
            Some(Action::ReadDtcs(_)) => self
                .ask(|reply| VehicleRequest::ReadDtcs { reply })
                .await
                .map(|report| result.dtcs = Some(report)),
            Some(Action::ReadFreezeFrame(r)) => match u8::try_from(r.frame) {
                Ok(frame) => self
                    .ask(|reply| VehicleRequest::ReadFreezeFrame { frame, reply })
                    .await
                    .map(|ff| result.freeze_frame = Some(ff)),
                Err(_) => Err(error(
                    v1::CommandError::InvalidArgument,
                    format!("freeze frame number {} is over 255", r.frame),
                )),
            },
            Some(Action::ReadPids(r)) => match check_pids(&r.pids) {
                Ok(pids) => self
                    .ask(|reply| VehicleRequest::ReadPids { pids, reply })
                    .await
                    .map(|samples| result.samples = samples),
                Err(e) => Err(e),
            },
            Some(Action::SetSchedule(s)) => match check_schedule(&s.signals) {
                Ok(()) => {
                    let signals = s.signals.clone();
                    self.ask(|reply| VehicleRequest::SetSchedule { signals, reply })
                        .await
                }
                Err(e) => Err(e),
            },
            Some(Action::ClearDtcs(_)) if !self.allow_clear => Err(error(
                v1::CommandError::NotPermitted,
                "clearing DTCs is disabled on this agent (allow_clear = false)",
            )),
            Some(Action::ClearDtcs(_)) => self
                .ask(|reply| VehicleRequest::ClearDtcs { reply })
                .await
                .map(|report| result.dtcs = Some(report)),
            // verify() refuses commands without an action; kept total rather than trusted.
            None => Err(error(v1::CommandError::Malformed, "command has no action")),
        };
        if let Err(err) = outcome {
            result.ok = false;
            result.error = err.message;
            result.set_error_code(err.code);
        }
        result
    }

    /// Sends one request to the vehicle task and waits for its answer, at most `timeout`.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, RequestError>>) -> VehicleRequest,
    ) -> Result<T, RequestError> {
        use v1::CommandError::VehicleUnreachable;
        let (reply, answer) = oneshot::channel();
        let exchange = async {
            self.vehicle
                .send(make(reply))
                .await
                .map_err(|_| error(VehicleUnreachable, "the vehicle task is not running"))?;
            answer.await.map_err(|_| {
                error(
                    VehicleUnreachable,
                    "the vehicle task dropped the request without answering",
                )
            })?
        };
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(error(
                VehicleUnreachable,
                "the agent is stopping; the command may not have run",
            )),
            answer = tokio::time::timeout(self.timeout, exchange) => answer.unwrap_or_else(|_| {
                Err(error(
                    VehicleUnreachable,
                    format!("the vehicle did not answer within {} ms", self.timeout.as_millis()),
                ))
            }),
        }
    }
}

fn check_pids(pids: &[u32]) -> Result<Vec<u8>, RequestError> {
    use v1::CommandError::InvalidArgument;
    if pids.is_empty() {
        return Err(error(InvalidArgument, "no PIDs to read"));
    }
    if pids.len() > MAX_PIDS_PER_COMMAND {
        return Err(error(
            InvalidArgument,
            format!(
                "{} PIDs asked for, at most {MAX_PIDS_PER_COMMAND} per command",
                pids.len()
            ),
        ));
    }
    pids.iter()
        .map(|&p| {
            u8::try_from(p).map_err(|_| error(InvalidArgument, format!("PID {p:#X} is over 0xFF")))
        })
        .collect()
}

fn check_schedule(signals: &[v1::SignalPeriod]) -> Result<(), RequestError> {
    use v1::CommandError::InvalidArgument;
    if signals.is_empty() {
        return Err(error(InvalidArgument, "no signals to schedule"));
    }
    if signals.len() > MAX_SCHEDULE_ENTRIES {
        return Err(error(
            InvalidArgument,
            format!(
                "{} signals, at most {MAX_SCHEDULE_ENTRIES} per command",
                signals.len()
            ),
        ));
    }
    for s in signals {
        if s.pid > 0xFF {
            return Err(error(
                InvalidArgument,
                format!("PID {:#X} of {:?} is over 0xFF", s.pid, s.signal),
            ));
        }
        if s.signal.is_empty() && s.pid == 0 {
            return Err(error(
                InvalidArgument,
                "a schedule entry needs a signal name or a PID",
            ));
        }
    }
    Ok(())
}
