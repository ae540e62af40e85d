//! A minimal HTTP/1.1 endpoint for what a scraper or a probe asks: one `GET` per connection,
//! answered and closed (`/metrics`, `/healthz`, `/status`). Enough for Prometheus, a load
//! balancer and `curl`, without a web framework on a dongle.
//!
//! The program supplies the routing as a function from path to [`Reply`]; unknown paths get a
//! 404 listing the known ones, other methods a 405. A client that sends nothing is dropped
//! after five seconds.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long a client may take to send its request line.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A 200 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn text(body: impl Into<String>) -> Reply {
        Reply {
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    pub fn json(body: impl Into<String>) -> Reply {
        Reply {
            content_type: "application/json",
            body: body.into(),
        }
    }

    /// Prometheus' text exposition format.
    pub fn prometheus(body: impl Into<String>) -> Reply {
        Reply {
            content_type: "text/plain; version=0.0.4",
            body: body.into(),
        }
    }
}

/// Serves until `shutdown`. `paths` (e.g. `["/metrics", "/healthz"]`) is what a 404 suggests;
/// `route` answers a GET for a path, `None` meaning not found.
pub async fn serve<F>(
    listener: TcpListener,
    shutdown: CancellationToken,
    paths: &'static [&'static str],
    route: F,
) where
    F: Fn(&str) -> Option<Reply> + Send + Sync + 'static,
{
    let route = Arc::new(route);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let route = route.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, paths, &*route).await {
                            tracing::debug!(cause = %e, "HTTP request failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(cause = %e, "HTTP endpoint accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn answer(
    mut stream: TcpStream,
    paths: &[&str],
    route: &(dyn Fn(&str) -> Option<Reply> + Send + Sync),
) -> std::io::Result<()> {
    let mut buf = [0u8; 2048];
    let mut len = 0;
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while len < buf.len() && !buf[..len].contains(&b'\n') {
            let n = stream.read(&mut buf[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let line = String::from_utf8_lossy(&buf[..len]);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    // A query string does not change the answer.
    let path = path.split('?').next().unwrap_or("");
    let (status, reply) = match method {
        "GET" => match route(path) {
            Some(r) => ("200 OK", r),
            None => (
                "404 Not Found",
                Reply::text(format!("try {}\n", paths.join(", "))),
            ),
        },
        _ => ("405 Method Not Allowed", Reply::text("GET only\n")),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.content_type,
        reply.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(reply.body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn request(addr: std::net::SocketAddr, text: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(text.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn routes_404s_405s_and_stops() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, stop.clone(), &["/healthz"], |p| {
            (p == "/healthz").then(|| Reply::text("ok\n"))
        }));
        let ok = request(addr, "GET /healthz?x=1 HTTP/1.1\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nok\n"), "{ok}");
        let missing = request(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        assert!(missing.ends_with("try /healthz\n"), "{missing}");
        let post = request(addr, "POST /healthz HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        stop.cancel();
        server.await.unwrap();
    }
}

/// Prometheus' text exposition format, built one metric family at a time; every name gets the
/// program's prefix (`telltale_ingest_`, ...).
#[derive(Debug)]
pub struct Exposition {
    prefix: &'static str,
    out: String,
}

impl Exposition {
    pub fn new(prefix: &'static str) -> Exposition {
        Exposition {
            prefix,
            out: String::new(),
        }
    }

    /// A family: its HELP and TYPE lines, then one line per sample, each `(labels, value)`
    /// with labels written as Prometheus does (`{code="ok"}`, or empty).
    pub fn family<L: AsRef<str>, V: std::fmt::Display>(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        samples: &[(L, V)],
    ) {
        use std::fmt::Write as _;
        let p = self.prefix;
        let _ = writeln!(self.out, "# HELP {p}{name} {help}");
        let _ = writeln!(self.out, "# TYPE {p}{name} {kind}");
        for (labels, value) in samples {
            self.sample(&format!("{name}{}", labels.as_ref()), value);
        }
    }

    /// One more sample line, for families whose lines differ in name (a histogram's
    /// `_bucket`, `_sum` and `_count`).
    pub fn sample(&mut self, name_and_labels: &str, value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        let _ = writeln!(self.out, "{}{name_and_labels} {value}", self.prefix);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod exposition_tests {
    use super::Exposition;

    #[test]
    fn families_and_samples_carry_the_prefix() {
        let mut e = Exposition::new("t_");
        e.family("hits_total", "Hits.", "counter", &[("", 3)]);
        e.family(
            "errors_total",
            "Errors.",
            "counter",
            &[("{code=\"x\"}", 1), ("{code=\"y\"}", 2)],
        );
        e.family::<&str, u64>("lag_seconds", "Lag.", "gauge", &[]);
        e.sample("lag_seconds", 0.25);
        assert_eq!(
            e.finish(),
            "# HELP t_hits_total Hits.\n# TYPE t_hits_total counter\nt_hits_total 3\n\
             # HELP t_errors_total Errors.\n# TYPE t_errors_total counter\n\
             t_errors_total{code=\"x\"} 1\nt_errors_total{code=\"y\"} 2\n\
             # HELP t_lag_seconds Lag.\n# TYPE t_lag_seconds gauge\nt_lag_seconds 0.25\n"
        );
    }
}
