//! The command handler driven through its channels: signed payloads in, command results out,
//! with a small task standing in for the vehicle side and recording what reached it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use prost::Message as _;
use telltale_agent::command::{self, CommandConfig, TrustedKey};
use telltale_agent::uplink::Message;
use telltale_agent::vehicle::{RequestError, VehicleRequest};
use telltale_wire::signing;
use telltale_wire::v1::{self, CommandError as E, command::Action};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const DEVICE: &str = "car-7";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ops_key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

fn config(replay_file: &Path, allow_clear: bool) -> CommandConfig {
    CommandConfig {
        device_id: DEVICE.into(),
        trusted_keys: vec![TrustedKey {
            id: "ops".into(),
            key: ops_key().verifying_key(),
        }],
        allow_clear,
        max_ttl: Duration::from_secs(300),
        max_clock_skew: Duration::from_secs(30),
        replay_file: replay_file.to_owned(),
        request_timeout: Duration::from_secs(5),
    }
}

fn command(id: &str, action: Action) -> v1::Command {
    let now = now_ms();
    v1::Command {
        command_id: id.into(),
        device_id: DEVICE.into(),
        issued_unix_ms: now,
        expires_unix_ms: now + 60_000,
        action: Some(action),
    }
}

fn signed(command: &v1::Command) -> Vec<u8> {
    signing::sign(command, "ops", &ops_key()).encode_to_vec()
}

/// How the stand-in vehicle behaves.
#[derive(Clone, Copy)]
enum Vehicle {
    Answers,
    /// Takes requests and never answers (the reply senders are kept alive).
    Silent,
}

/// What reached the stand-in vehicle, in words.
type Seen = mpsc::UnboundedReceiver<String>;

fn spawn_vehicle(mode: Vehicle) -> (mpsc::Sender<VehicleRequest>, Seen, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<VehicleRequest>(4);
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(request) = rx.recv().await {
            if let Vehicle::Silent = mode {
                let _ = seen_tx.send("held".to_string());
                held.push(request);
                continue;
            }
            let _ = match request {
                VehicleRequest::ReadDtcs { reply } => {
                    let _ = seen_tx.send("read_dtcs".into());
                    reply.send(Ok(report("P0420"))).map_err(|_| ())
                }
                VehicleRequest::ReadFreezeFrame { frame, reply } => {
                    let _ = seen_tx.send(format!("freeze_frame {frame}"));
                    let answer = if frame == 9 {
                        Err(RequestError {
                            code: E::RefusedByEcu,
                            message: "ECU 7E8 answered NRC 0x12".into(),
                        })
                    } else {
                        Ok(v1::FreezeFrame {
                            trigger_code: "P0301".into(),
                            values: vec![],
                        })
                    };
                    reply.send(answer).map_err(|_| ())
                }
                VehicleRequest::ReadPids { pids, reply } => {
                    let _ = seen_tx.send(format!("read_pids {pids:02X?}"));
                    let samples = pids
                        .iter()
                        .map(|&pid| v1::Sample {
                            signal: format!("pid.{pid:02X}"),
                            pid: pid.into(),
                            value: 1.0,
                            ..Default::default()
                        })
                        .collect();
                    reply.send(Ok(samples)).map_err(|_| ())
                }
                VehicleRequest::SetSchedule { signals, reply } => {
                    let _ = seen_tx.send(format!("set_schedule {}", signals.len()));
                    reply.send(Ok(())).map_err(|_| ())
                }
                VehicleRequest::ClearDtcs { reply } => {
                    let _ = seen_tx.send("clear_dtcs".into());
                    reply.send(Ok(report("P0000"))).map_err(|_| ())
                }
            };
        }
    });
    (tx, seen, task)
}

fn report(code: &str) -> v1::DtcReport {
    v1::DtcReport {
        ecus: vec![v1::EcuDtcs {
            ecu_can_id: 0x7E8,
            current: vec![v1::Dtc {
                code: code.into(),
                kind: v1::DtcKind::Stored as i32,
                ..Default::default()
            }],
            ..Default::default()
        }],
        reason: v1::DtcReportReason::Command as i32,
        ..Default::default()
    }
}

struct Agent {
    cmd: mpsc::Sender<Vec<u8>>,
    out: mpsc::Receiver<Message>,
    seen: Seen,
    cancel: CancellationToken,
    handler: JoinHandle<()>,
}

impl Agent {
    fn start(config: CommandConfig, mode: Vehicle) -> Agent {
        let (cmd, incoming) = mpsc::channel(8);
        let (out_tx, out) = mpsc::channel(8);
        let (vehicle, seen, _vehicle_task) = spawn_vehicle(mode);
        let cancel = CancellationToken::new();
        let handler = tokio::spawn(command::run(
            config,
            incoming,
            vehicle,
            out_tx,
            cancel.clone(),
        ));
        Agent {
            cmd,
            out,
            seen,
            cancel,
            handler,
        }
    }

    /// Sends one payload and returns the one result it produced.
    async fn ask(&mut self, payload: Vec<u8>) -> v1::CommandResult {
        let Ok(()) = self.cmd.send(payload).await else {
            panic!("handler stopped taking payloads");
        };
        match self.out.recv().await {
            Some(Message::CmdResult(r)) => r,
            other => panic!("expected a command result, got {other:?}"),
        }
    }

    /// Stops the handler and returns everything the vehicle was asked.
    async fn stop(mut self) -> Vec<String> {
        self.cancel.cancel();
        let Ok(()) = self.handler.await else {
            panic!("handler panicked");
        };
        let mut seen = Vec::new();
        while let Ok(s) = self.seen.try_recv() {
            seen.push(s);
        }
        assert!(self.out.try_recv().is_err(), "no extra results");
        seen
    }
}

fn replay_file(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let path = dir.path().join(name);
    (dir, path)
}

fn code(r: &v1::CommandResult) -> E {
    r.error_code()
}

#[tokio::test]
async fn happy_paths_carry_the_vehicle_answers() {
    let (_dir, file) = replay_file("replay.json");
    let mut agent = Agent::start(config(&file, true), Vehicle::Answers);

    let r = agent
        .ask(signed(&command("c1", Action::ReadDtcs(v1::ReadDtcs {}))))
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.command_id, "c1");
    assert_eq!(code(&r), E::None);
    assert_eq!(
        r.dtcs.as_ref().map(|d| d.ecus[0].current[0].code.as_str()),
        Some("P0420")
    );

    let r = agent
        .ask(signed(&command(
            "c2",
            Action::ReadFreezeFrame(v1::ReadFreezeFrame { frame: 0 }),
        )))
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.freeze_frame.map(|f| f.trigger_code), Some("P0301".into()));

    let r = agent
        .ask(signed(&command(
            "c3",
            Action::ReadPids(v1::ReadPids {
                pids: vec![0x0C, 0x0D],
            }),
        )))
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        r.samples.iter().map(|s| s.pid).collect::<Vec<_>>(),
        [0x0C, 0x0D]
    );

    let schedule = v1::SetSchedule {
        signals: vec![v1::SignalPeriod {
            signal: "Vehicle.Speed".into(),
            pid: 0x0D,
            period_ms: 1000,
        }],
    };
    let r = agent
        .ask(signed(&command("c4", Action::SetSchedule(schedule))))
        .await;
    assert!(r.ok, "{r:?}");

    let r = agent
        .ask(signed(&command("c5", Action::ClearDtcs(v1::ClearDtcs {}))))
        .await;
    assert!(r.ok, "{r:?}");
    assert!(r.dtcs.is_some());

    // The vehicle's own refusal comes through with its code and words.
    let r = agent
        .ask(signed(&command(
            "c6",
            Action::ReadFreezeFrame(v1::ReadFreezeFrame { frame: 9 }),
        )))
        .await;
    assert!(!r.ok);
    assert_eq!(code(&r), E::RefusedByEcu);
    assert!(r.error.contains("NRC 0x12"), "{}", r.error);

    assert_eq!(
        agent.stop().await,
        [
            "read_dtcs",
            "freeze_frame 0",
            "read_pids [0C, 0D]",
            "set_schedule 1",
            "clear_dtcs",
            "freeze_frame 9"
        ]
    );
}

#[tokio::test]
async fn every_rejection_has_its_code_and_never_reaches_the_vehicle() {
    let (_dir, file) = replay_file("replay.json");
    let mut agent = Agent::start(config(&file, true), Vehicle::Answers);
    let read = || Action::ReadDtcs(v1::ReadDtcs {});

    let mut unsigned = signing::sign(&command("u1", read()), "ops", &ops_key());
    unsigned.signature.clear();
    let wrong_key = signing::sign(
        &command("u2", read()),
        "ops",
        &SigningKey::from_bytes(&[99; 32]),
    );
    let mut tampered = signing::sign(&command("u3", read()), "ops", &ops_key());
    let n = tampered.command.len();
    tampered.command[n - 1] ^= 0x01;
    let mut other_device = command("u4", read());
    other_device.device_id = "car-8".into();
    let mut expired = command("u5", read());
    expired.issued_unix_ms -= 120_000;
    expired.expires_unix_ms = expired.issued_unix_ms + 60_000;
    let mut too_long = command("u6", read());
    too_long.expires_unix_ms = now_ms() + 3_600_000;
    let mut issued_ahead = command("u7", read());
    issued_ahead.issued_unix_ms = now_ms() + 600_000;
    let mut no_action = command("u8", read());
    no_action.action = None;
    let bad_pid = command(
        "u9",
        Action::ReadPids(v1::ReadPids {
            pids: vec![0x0C, 0x1FF],
        }),
    );

    let cases: Vec<(&str, Vec<u8>, E, &str)> = vec![
        ("unsigned", unsigned.encode_to_vec(), E::BadSignature, "u1"),
        (
            "wrong key",
            wrong_key.encode_to_vec(),
            E::BadSignature,
            "u2",
        ),
        // The last byte is the (empty) action's length: the tampered bytes no longer decode,
        // so the refusal cannot name the command.
        ("tampered", tampered.encode_to_vec(), E::BadSignature, ""),
        ("wrong device", signed(&other_device), E::WrongDevice, "u4"),
        ("expired", signed(&expired), E::Expired, "u5"),
        ("valid too long", signed(&too_long), E::Expired, "u6"),
        (
            "issued in the future",
            signed(&issued_ahead),
            E::Expired,
            "u7",
        ),
        ("no action", signed(&no_action), E::Malformed, "u8"),
        (
            "garbage",
            b"\xFF\xFFnot protobuf".to_vec(),
            E::Malformed,
            "",
        ),
        // An empty payload is a SignedCommand with nothing in it: unsigned.
        ("empty", Vec::new(), E::BadSignature, ""),
        ("bad pid", signed(&bad_pid), E::InvalidArgument, "u9"),
    ];
    for (what, payload, want, id) in cases {
        let r = agent.ask(payload).await;
        assert!(!r.ok, "{what}: {r:?}");
        assert_eq!(code(&r), want, "{what}: {}", r.error);
        assert!(!r.error.is_empty(), "{what}: a reason in words");
        assert_eq!(r.command_id, id, "{what}");
    }
    assert_eq!(agent.stop().await, Vec::<String>::new());
}

#[tokio::test]
async fn clear_is_refused_unless_allowed() {
    let (_dir, file) = replay_file("replay.json");
    let mut agent = Agent::start(config(&file, false), Vehicle::Answers);
    let r = agent
        .ask(signed(&command("clr", Action::ClearDtcs(v1::ClearDtcs {}))))
        .await;
    assert!(!r.ok);
    assert_eq!(code(&r), E::NotPermitted);
    assert!(r.error.contains("allow_clear"), "{}", r.error);
    assert_eq!(agent.stop().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_replayed_command_is_refused_also_after_a_restart() {
    let (_dir, file) = replay_file("state/replay.json");
    let payload = signed(&command("once", Action::ReadDtcs(v1::ReadDtcs {})));

    let mut agent = Agent::start(config(&file, false), Vehicle::Answers);
    assert!(agent.ask(payload.clone()).await.ok);
    let r = agent.ask(payload.clone()).await;
    assert_eq!(
        (r.ok, code(&r), r.command_id.as_str()),
        (false, E::Replayed, "once")
    );
    assert_eq!(agent.stop().await, ["read_dtcs"]);

    let mut restarted = Agent::start(config(&file, false), Vehicle::Answers);
    let r = restarted.ask(payload).await;
    assert_eq!((r.ok, code(&r)), (false, E::Replayed), "{}", r.error);
    // A new command still runs.
    let fresh = signed(&command("twice", Action::ReadDtcs(v1::ReadDtcs {})));
    assert!(restarted.ask(fresh).await.ok);
    assert_eq!(restarted.stop().await, ["read_dtcs"]);
}

/// Real time, but not a sleep-as-synchronisation: the stand-in never answers, so the outcome
/// cannot depend on scheduling; only the wait's length does (tokio's paused clock would need
/// the `test-util` feature, which this crate does not enable).
#[tokio::test]
async fn a_silent_vehicle_gives_unreachable_after_the_timeout() {
    let (_dir, file) = replay_file("replay.json");
    let mut cfg = config(&file, false);
    cfg.request_timeout = Duration::from_millis(100);
    let mut agent = Agent::start(cfg, Vehicle::Silent);
    let r = agent
        .ask(signed(&command("slow", Action::ReadDtcs(v1::ReadDtcs {}))))
        .await;
    assert_eq!((r.ok, code(&r)), (false, E::VehicleUnreachable));
    assert!(r.error.contains("100 ms"), "{}", r.error);
    assert_eq!(agent.stop().await, ["held"]);
}

#[tokio::test]
async fn a_stopped_vehicle_task_gives_unreachable_not_a_hang() {
    let (_dir, file) = replay_file("replay.json");
    let (cmd, incoming) = mpsc::channel(1);
    let (out_tx, mut out) = mpsc::channel(1);
    let (vehicle, vehicle_rx) = mpsc::channel::<VehicleRequest>(1);
    drop(vehicle_rx);
    let cancel = CancellationToken::new();
    let handler = tokio::spawn(command::run(
        config(&file, false),
        incoming,
        vehicle,
        out_tx,
        cancel.clone(),
    ));
    let Ok(()) = cmd
        .send(signed(&command("x", Action::ReadDtcs(v1::ReadDtcs {}))))
        .await
    else {
        panic!("send");
    };
    let Some(Message::CmdResult(r)) = out.recv().await else {
        panic!("no result");
    };
    assert_eq!(code(&r), E::VehicleUnreachable);
    // Closing the input ends the handler.
    drop(cmd);
    let Ok(()) = handler.await else {
        panic!("handler panicked");
    };
}
