//! The metrics endpoint: `GET /metrics` (Prometheus text) and `GET /healthz` (`ok` while the
//! process runs; the MQTT connection state is a metric, so a broker outage does not get a
//! healthy ingest restarted by a liveness probe). Served by `telltale_service::http`.

use std::sync::Arc;

use telltale_service::http::{self, Reply};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Serves until `shutdown`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    http::serve(
        listener,
        shutdown,
        &["/metrics", "/healthz"],
        move |path| match path {
            "/metrics" => Some(Reply::prometheus(metrics.render())),
            "/healthz" => Some(Reply::text("ok\n")),
            _ => None,
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn serves_metrics_and_health() -> std::io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let metrics = Arc::new(Metrics::default());
        metrics.received(Some(telltale_wire::topic::Kind::Dtc));
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, metrics, stop.clone()));
        let m = get(addr, "/metrics").await?;
        assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
        assert!(
            m.contains("telltale_ingest_messages_total{kind=\"dtc\"} 1"),
            "{m}"
        );
        assert!(get(addr, "/healthz").await?.ends_with("\r\n\r\nok\n"));
        assert!(get(addr, "/nope").await?.starts_with("HTTP/1.1 404"));
        stop.cancel();
        let _ = server.await;
        Ok(())
    }
}
