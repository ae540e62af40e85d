//! PostgreSQL for end-to-end tests: a fresh database per test on the shared server
//! ([`Database::create`]), or a private server a test may stop and start under load
//! ([`Server::start`]). Queries go through `psql`, so the tests read the rows exactly as an
//! operator would.
//!
//! The shared server is the one at `TELLTALE_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), whose user may create databases. A private
//! server is made with the PostgreSQL server binaries (`initdb`, `pg_ctl`) from
//! `TELLTALE_TEST_PG_BINDIR` or the newest `/usr/lib/postgresql/*/bin`; as root it runs as the
//! `postgres` user, since PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::{free_port, wait_for};

/// The maintenance database of the shared server.
pub fn admin_url() -> String {
    std::env::var("TELLTALE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Runs one SQL command with `psql` against `url`; the rows, columns separated by `|`.
pub fn try_psql(url: &str, sql: &str) -> Result<Vec<String>, String> {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("cannot run psql (install postgresql-client): {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect())
}

/// A database of its own, dropped (with its connections) when the value goes.
#[derive(Debug)]
pub struct Database {
    pub url: String,
    admin: String,
    name: String,
}

impl Database {
    /// A new, empty database on the shared server.
    pub fn create() -> Database {
        Database::create_on(&admin_url())
    }

    /// A new, empty database on the server whose maintenance database is `admin`.
    pub fn create_on(admin: &str) -> Database {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "telltale_e2e_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = try_psql(admin, &format!("CREATE DATABASE {name}")) {
            panic!(
                "cannot create a test database on {admin} (is PostgreSQL running? set \
                 TELLTALE_TEST_PG_URL): {e}"
            );
        }
        let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
        Database {
            url: format!("{base}/{name}"),
            admin: admin.to_owned(),
            name,
        }
    }

    /// The rows of `sql`; panics with the error.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        try_psql(&self.url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// One number (`SELECT count(*) ...`); panics on an error or a non-number.
    pub fn count(&self, sql: &str) -> i64 {
        self.try_count(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// One number, or why not (the server may be down on purpose, or the table not made yet).
    pub fn try_count(&self, sql: &str) -> Result<i64, String> {
        let rows = try_psql(&self.url, sql)?;
        rows.first()
            .and_then(|r| r.trim().parse().ok())
            .ok_or_else(|| format!("not one number: {rows:?}"))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = try_psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A private PostgreSQL server on a free port, in a temporary directory; stopped when dropped.
#[derive(Debug)]
pub struct Server {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    pub port: u16,
}

impl Server {
    /// Initialises a cluster (trust authentication, no fsync: a test server) and starts it.
    pub fn start() -> Server {
        let bindir = server_bindir();
        let dir = tempfile::tempdir().expect("a temporary directory");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(status.success(), "chown the test cluster to postgres");
        }
        let data = dir.path().join("data");
        let out = as_postgres(&bindir.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = Server {
            dir,
            bindir,
            port: free_port(),
        };
        server.pg_ctl_start();
        server
    }

    /// The maintenance database's URL.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`immediate`: like a crash, connections cut, no checkpoint).
    pub fn crash(&self) {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }

    /// Starts it again after [`Server::crash`], on the same port, and waits until it answers.
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=50",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "30",
            "-o",
            &options,
            "-l",
            &log.to_string_lossy(),
        ]);
        let admin = self.admin_url();
        wait_for(
            "the test PostgreSQL server to answer",
            Duration::from_secs(30),
            || try_psql(&admin, "SELECT 1").is_ok(),
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let out = as_postgres(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(args)
            .output()
            .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["stop", "-m", "immediate"])
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Where `initdb` and `pg_ctl` are: `TELLTALE_TEST_PG_BINDIR` or Debian's newest
/// `/usr/lib/postgresql/N/bin`. Panics with the fix when there is none.
fn server_bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("TELLTALE_TEST_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql: install \
             Debian's postgresql package or set TELLTALE_TEST_PG_BINDIR"
        ),
    }
}
