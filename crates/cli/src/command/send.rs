//! `telltale command send`: one signed command over MQTT and the wait for its result.
//!
//! The order matters: subscribe to the device's `cmd-result` and wait for the broker's SUBACK
//! *before* publishing the command, or a fast agent could answer before anyone listens (results
//! are not retained). The command goes out at QoS 1; the result is matched on `command_id`
//! (16 random bytes in hex), so other results on the same topic are ignored.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use prost::Message as _;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS};
use telltale_wire::topic::{self, Kind};
use telltale_wire::{signing, v1};
use tokio::time::Instant;
use tracing::debug;

use super::{SendArgs, json, read_secret};

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Broker {
    host: String,
    port: u16,
}

fn parse_broker(url: &str) -> anyhow::Result<Broker> {
    let rest = if let Some(rest) = url.strip_prefix("mqtt://") {
        rest
    } else if url.starts_with("mqtts://") {
        bail!("{url}: TLS (mqtts://) is not supported by `telltale command send` yet");
    } else {
        bail!("{url}: expected mqtt://HOST[:PORT]");
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| anyhow!("{url}: {port:?} is not a port number"))?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() || host.contains('/') {
        bail!("{url}: expected mqtt://HOST[:PORT]");
    }
    Ok(Broker {
        host: host.to_owned(),
        port,
    })
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow!("no randomness from the OS: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(super) fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    topic::validate_device_id(&args.device)?;
    let broker = parse_broker(&args.mqtt)?;
    let key = read_secret(&args.secret)?;
    let now = now_unix_ms();
    let ttl_ms = i64::try_from(args.ttl.as_millis()).unwrap_or(i64::MAX);
    let command = v1::Command {
        command_id: random_hex(16)?,
        device_id: args.device.clone(),
        issued_unix_ms: now,
        expires_unix_ms: now.saturating_add(ttl_ms),
        action: Some(args.action.to_action()),
    };
    let signed = signing::sign(&command, &args.key_id, &key);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(exchange(&broker, &args, &command.command_id, signed))?;
    let ok = result.ok;
    let text = serde_json::to_string_pretty(&json::result(&args.device, &result))?;
    println!("{text}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Polls until `want` says an event is the one awaited, the deadline passes (`Ok(None)`) or the
/// connection fails.
async fn poll_until<T>(
    events: &mut EventLoop,
    deadline: Instant,
    mut want: impl FnMut(&Event) -> Option<T>,
) -> Result<Option<T>, ConnectionError> {
    loop {
        let event = match tokio::time::timeout_at(deadline, events.poll()).await {
            Err(_) => return Ok(None),
            Ok(event) => event?,
        };
        debug!(?event, "mqtt");
        if let Some(found) = want(&event) {
            return Ok(Some(found));
        }
    }
}

async fn exchange(
    broker: &Broker,
    args: &SendArgs,
    command_id: &str,
    signed: v1::SignedCommand,
) -> anyhow::Result<v1::CommandResult> {
    let where_ = format!("{}:{}", broker.host, broker.port);
    let unreachable = |err: ConnectionError| {
        anyhow!(
            "cannot reach the MQTT broker at {where_}: {err}; check the --mqtt URL, that the broker runs, and that it accepts this client"
        )
    };
    let mut options = MqttOptions::new(
        format!("telltale-cli-{}", random_hex(8)?),
        broker.host.clone(),
        broker.port,
    );
    options.set_keep_alive(Duration::from_secs(15));
    let (client, mut events) = AsyncClient::new(options, 10);
    let deadline = Instant::now() + args.wait;

    let result_topic = topic::topic(&args.device, Kind::CmdResult);
    client
        .subscribe(result_topic.clone(), QoS::AtLeastOnce)
        .await
        .context("MQTT client stopped")?;
    let subscribed = poll_until(&mut events, deadline, |e| {
        matches!(e, Event::Incoming(Packet::SubAck(_))).then_some(())
    })
    .await
    .map_err(unreachable)?;
    if subscribed.is_none() {
        bail!(
            "the MQTT broker at {where_} did not accept the subscription to {result_topic} within {}; check that it runs and that its ACL lets this client read that topic",
            humanize(args.wait)
        );
    }

    let cmd_topic = topic::topic(&args.device, Kind::Cmd);
    client
        .publish(
            cmd_topic.clone(),
            QoS::AtLeastOnce,
            false,
            signed.encode_to_vec(),
        )
        .await
        .context("MQTT client stopped")?;
    let mut acked = false;
    let found = poll_until(&mut events, deadline, |e| match e {
        Event::Incoming(Packet::PubAck(_)) => {
            acked = true;
            None
        }
        Event::Incoming(Packet::Publish(p)) if p.topic == result_topic => {
            match v1::CommandResult::decode(p.payload.as_ref()) {
                Ok(r) if r.command_id == command_id => Some(r),
                Ok(r) => {
                    debug!(other = %r.command_id, "result of another command");
                    None
                }
                Err(err) => {
                    debug!(%err, "undecodable payload on the result topic");
                    None
                }
            }
        }
        _ => None,
    })
    .await
    .map_err(unreachable)?;
    let _ = client.disconnect().await;
    match found {
        Some(result) => Ok(result),
        None if !acked => bail!(
            "the MQTT broker at {where_} did not acknowledge the command on {cmd_topic} within {}; check that its ACL lets this client publish there",
            humanize(args.wait)
        ),
        None => bail!(
            "no result for command {command_id} from device {:?} within {}: check that its agent is running and connected to this broker, and that it trusts key id {:?} (`telltale command public-key` prints the key to add)",
            args.device,
            humanize(args.wait),
            args.key_id
        ),
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let b = |host: &str, port| Broker {
            host: host.into(),
            port,
        };
        assert_eq!(
            parse_broker("mqtt://127.0.0.1:1883").ok(),
            Some(b("127.0.0.1", 1883))
        );
        assert_eq!(
            parse_broker("mqtt://broker.local").ok(),
            Some(b("broker.local", 1883))
        );
        assert_eq!(parse_broker("mqtt://h:99/").ok(), Some(b("h", 99)));
        assert!(parse_broker("127.0.0.1:1883").is_err());
        assert!(parse_broker("mqtts://h:8883").is_err());
        assert!(parse_broker("mqtt://h:port").is_err());
        assert!(parse_broker("mqtt://").is_err());
    }
}
