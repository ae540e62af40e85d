//! `telltale-crm` as a process: started on a database with free ports and a fresh link key,
//! tokens made with its own `token create` command.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tonic::Request;
use tonic::transport::Channel;

use crate::{Running, binary, free_port, wait_for};

/// `msg` with `authorization: Bearer token`, as every API call carries it.
pub fn req<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a header value"),
    );
    r
}

#[derive(Debug)]
pub struct CrmServer {
    pub process: Running,
    pub grpc_port: u16,
    pub http_port: u16,
    pub metrics_port: u16,
    /// The gRPC API speaks TLS.
    pub tls: bool,
    database_url: String,
    _dir: tempfile::TempDir,
}

impl CrmServer {
    /// Serves on `database_url` (migrating it) and waits until both ports answer.
    pub fn start(database_url: &str) -> CrmServer {
        CrmServer::start_with(database_url, &[])
    }

    /// As [`CrmServer::start`], with more `serve` flags (`--tls-cert-file` ... makes
    /// [`CrmServer::grpc_url`] https).
    pub fn start_with(database_url: &str, extra: &[&str]) -> CrmServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = dir.path().join("link.key");
        std::fs::write(&key, "e2e-link-key-0123456789abcdef0123456789")
            .expect("write the link key");
        let (grpc_port, http_port, metrics_port) = (free_port(), free_port(), free_port());
        let grpc = format!("127.0.0.1:{grpc_port}");
        let http = format!("127.0.0.1:{http_port}");
        let metrics = format!("127.0.0.1:{metrics_port}");
        let key = key.display().to_string();
        let mut args = vec![
            "serve",
            "--database-url",
            database_url,
            "--grpc-listen",
            &grpc,
            "--http-listen",
            &http,
            "--link-key-file",
            &key,
            "--metrics-listen",
            &metrics,
        ];
        args.extend_from_slice(extra);
        let mut process = Running::start("telltale-crm", &args);
        wait_for("the CRM's ports", Duration::from_secs(30), || {
            process.assert_running();
            std::net::TcpStream::connect(("127.0.0.1", grpc_port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
        });
        CrmServer {
            process,
            grpc_port,
            http_port,
            metrics_port,
            tls: extra.contains(&"--tls-cert-file"),
            database_url: database_url.to_owned(),
            _dir: dir,
        }
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        crate::rig::http_get(self.metrics_port, "/metrics").expect("the CRM's /metrics")
    }

    /// A plaintext channel to the gRPC API.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.grpc_url())
            .expect("a URL")
            .connect()
            .await
            .expect("connect to the CRM")
    }

    pub fn grpc_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.grpc_port)
    }

    /// A new token (`advisor`, `manager` or `integration`) for `tenant`, made by
    /// `telltale-crm token create`.
    pub fn token(&self, tenant: &str, role: &str, subject: &str) -> String {
        let out = Command::new(binary("telltale-crm"))
            .args([
                "token",
                "create",
                "--database-url",
                &self.database_url,
                "--tenant",
                tenant,
                "--role",
                role,
                "--subject",
                subject,
            ])
            .output()
            .expect("run telltale-crm token create");
        assert!(
            out.status.success(),
            "token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("a UTF-8 token")
            .trim()
            .to_owned()
    }

    /// Runs `telltale-crm args..` as a client of this server with `token`.
    pub fn client(&self, token: &str, args: &[&str]) -> std::process::Output {
        Command::new(binary("telltale-crm"))
            .args(args)
            .env("TELLTALE_CRM_URL", self.grpc_url())
            .env("TELLTALE_CRM_TOKEN", token)
            .output()
            .expect("run telltale-crm")
    }
}

/// `telltale-crm leads watch` running, its output lines arriving on `lines`.
#[derive(Debug)]
pub struct Watcher {
    child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl CrmServer {
    /// Starts `leads watch` and returns once it is subscribed (it says so on stderr).
    pub fn watch(&self, token: &str) -> Watcher {
        let mut child = Command::new(binary("telltale-crm"))
            .args(["leads", "watch"])
            .env("TELLTALE_CRM_URL", self.grpc_url())
            .env("TELLTALE_CRM_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run telltale-crm leads watch");
        let mut stderr = std::io::BufReader::new(child.stderr.take().expect("its stderr"));
        let mut first = String::new();
        stderr.read_line(&mut first).expect("leads watch's stderr");
        assert!(first.contains("watching leads"), "leads watch: {first}");
        let lines = crate::lines_of(child.stdout.take().expect("its stdout"));
        Watcher { child, lines }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
