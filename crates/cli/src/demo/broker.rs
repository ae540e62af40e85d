//! The demo's embedded MQTT broker: rumqttd on 127.0.0.1, in threads of this process.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Starts rumqttd on `addr` (MQTT 3.1.1) and waits until it accepts connections. It lives as
/// long as the process.
pub(crate) fn start(addr: SocketAddr) -> anyhow::Result<()> {
    let text = format!(
        r#"
id = 0

[router]
max_connections = 10010
max_outgoing_packet_count = 1000
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "demo"
listen = "{addr}"
next_connection_delay_ms = 1

[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 500
dynamic_filters = true
"#
    );
    let config: rumqttd::Config =
        toml::from_str(&text).context("the embedded broker's settings")?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(cause = %e, "the embedded MQTT broker stopped");
            }
        })
        .context("cannot start the broker's thread")?;
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            bail!("the embedded MQTT broker did not listen on {addr} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
