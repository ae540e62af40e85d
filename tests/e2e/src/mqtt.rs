//! A real Mosquitto broker per test, and a subscriber that records what arrives.
//!
//! Tests that stop and restart the broker need their own, so every test starts `mosquitto`
//! (Debian's package; a missing binary fails the test with the install command) on a free port
//! with persistence on: a subscriber's QoS 1 session then survives a broker restart, and what the
//! agent publishes while the subscriber reconnects is queued for it, not lost to the test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::free_port;

/// A `mosquitto` process of the test's own.
#[derive(Debug)]
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Extra lines for mosquitto.conf (TLS listeners, ACLs).
    extra: String,
    /// `extra` is the whole configuration (no plain anonymous listener of the test's own).
    whole: bool,
}

fn mosquitto_path() -> PathBuf {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "mosquitto is not installed: apt-get install mosquitto (the agent tests need a real broker)"
    );
}

impl Broker {
    /// Starts a plain-TCP broker on a free 127.0.0.1 port.
    pub fn start() -> Broker {
        Broker::start_with("")
    }

    /// Starts a broker with extra configuration lines appended.
    pub fn start_with(extra: &str) -> Broker {
        let mut b = Broker {
            port: free_port(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            child: None,
            extra: extra.to_owned(),
            whole: false,
        };
        b.launch();
        b
    }

    /// Starts a broker with `config` as its whole configuration (e.g. the shipped one, its
    /// paths rewritten), waiting until `port`, one of its listeners, accepts connections.
    /// `{dir}` in `config` stands for the broker's temporary directory.
    pub fn start_config(config: &str, port: u16) -> Broker {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = config.replace("{dir}", &dir.path().display().to_string());
        let mut b = Broker {
            port,
            dir,
            child: None,
            extra: config,
            whole: true,
        };
        b.launch();
        b
    }

    /// The broker's temporary directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        // `user root`: started as root (as in CI), mosquitto would otherwise switch to the
        // `mosquitto` user and could not read the test's 0600 keys nor write its temporary
        // directory. Started as anyone else, it stays that user and ignores the line.
        let text = if self.whole {
            format!(
                "user root\nlog_dest file {}/mosquitto.log\nlog_type all\n{}\n",
                self.dir.path().display(),
                self.extra
            )
        } else {
            format!(
                "user root\nper_listener_settings false\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
             log_dest file {}/mosquitto.log\nlog_type all\nlistener {} 127.0.0.1\n{}\n",
                self.dir.path().display(),
                self.dir.path().display(),
                self.port,
                self.extra
            )
        };
        std::fs::write(&conf, text).expect("write mosquitto.conf");
        let child = Command::new(mosquitto_path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen on {} within 10 s: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker with SIGTERM (it saves its persistence file) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One message as a subscriber received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// Subscribes (QoS 1, persistent session) and records every message, on its own thread.
#[derive(Debug)]
pub struct Collector {
    got: Arc<Mutex<Vec<Received>>>,
    client: AsyncClient,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

fn guard(m: &Mutex<Vec<Received>>) -> MutexGuard<'_, Vec<Received>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Collector {
    pub fn start(port: u16, client_id: &str, filter: &str) -> Collector {
        Collector::with_options(MqttOptions::new(client_id, "127.0.0.1", port), filter)
    }

    /// Connects over TLS with a client certificate (PEM files), as a device would.
    pub fn start_tls(
        port: u16,
        client_id: &str,
        filter: &str,
        ca: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Collector {
        let read = |p: &std::path::Path| {
            std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Simple {
                ca: read(ca),
                alpn: None,
                client_auth: Some((read(cert), read(key))),
            },
        ));
        Collector::with_options(opts, filter)
    }

    /// Connects with the given options (credentials, TLS), then as [`Collector::start`].
    pub fn with_options(mut opts: MqttOptions, filter: &str) -> Collector {
        opts.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (g, s, c, f) = (got.clone(), stop.clone(), client.clone(), filter.to_owned());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let mut ready = Some(ready_tx);
                while !s.load(std::sync::atomic::Ordering::SeqCst) {
                    match tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await {
                        Err(_) => {}
                        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                            let _ = c.subscribe(f.clone(), QoS::AtLeastOnce).await;
                        }
                        Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(());
                            }
                        }
                        Ok(Ok(Event::Incoming(Packet::Publish(p)))) => guard(&g).push(Received {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        }),
                        Ok(Ok(_)) => {}
                        Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the test subscriber could not subscribe within 10 s");
        Collector {
            got,
            client,
            thread: Some(thread),
            stop,
        }
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Received> {
        guard(&self.got).clone()
    }

    /// Messages received so far on topics ending with `/{kind}`.
    pub fn of_kind(&self, kind: &str) -> Vec<Received> {
        let suffix = format!("/{kind}");
        guard(&self.got)
            .iter()
            .filter(|r| r.topic.ends_with(&suffix))
            .cloned()
            .collect()
    }

    /// Waits until `check` returns something, polling every 50 ms.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&[Received]) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = check(&guard(&self.got)) {
                return v;
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; got {} messages",
                guard(&self.got).len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Publishes a message (QoS 1) with this subscriber's connection.
    /// Queues a QoS 1 publish, waiting while the client's queue is full (up to 30 s).
    pub fn publish(&self, topic: &str, payload: Vec<u8>) {
        let start = Instant::now();
        let mut payload = payload;
        loop {
            match self
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, payload)
            {
                Ok(()) => return,
                Err(rumqttc::ClientError::TryRequest(rumqttc::Request::Publish(p)))
                    if start.elapsed() < Duration::from_secs(30) =>
                {
                    payload = p.payload.to_vec();
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("cannot queue a publish to {topic}: {e}"),
            }
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
