//! # telltale-testdb: the databases of Telltale's tests
//!
//! The one place tests get a database: a fresh one per test on the shared server
//! ([`Database::create`]), a private server a test may stop and start under load
//! ([`Server::start`]), a database on the TimescaleDB server every test of a run shares
//! ([`timescale_admin_url`]), or a SQLite file ([`SqliteFile`]). Tests read rows through
//! [`Rows`], with `psql` or Python's `sqlite3`, so they read exactly what an operator would.
//!
//! The TimescaleDB server is a cluster of its own (`initdb`, `pg_ctl`) with
//! `shared_preload_libraries = 'timescaledb'` and `timescaledb.telemetry_level = off`, in
//! `$TMPDIR/telltale-tsdb-UID/`: the first test that needs it starts it (under a file lock, so
//! parallel test processes start it once), later ones and later runs reuse it, and
//! `scripts/test` stops and removes it around the suite. It needs TimescaleDB installed into the
//! machine's PostgreSQL (`../shared/timescaledb/install`, which `scripts/test` runs); without
//! it the test fails saying so, it never skips.
//!
//! The shared server is the one at `TELLTALE_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), whose user may create databases. A private
//! server is made with the PostgreSQL server binaries (`initdb`, `pg_ctl`) from
//! `TELLTALE_TEST_PG_BINDIR` or the newest `/usr/lib/postgresql/*/bin`; as root it runs as the
//! `postgres` user, since PostgreSQL refuses to run as root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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
}

/// Reading a test database as an operator would: rows as text, columns separated by `|`.
/// The same checks then run on PostgreSQL ([`Database`]) and SQLite ([`SqliteFile`]).
pub trait Rows {
    /// The URL the program under test is given.
    fn url(&self) -> &str;

    /// The rows of `sql`, or the error.
    fn try_rows(&self, sql: &str) -> Result<Vec<String>, String>;

    /// The rows of `sql`; panics with the error.
    fn rows(&self, sql: &str) -> Vec<String> {
        self.try_rows(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// One number (`SELECT count(*) ...`); panics on an error or a non-number.
    fn count(&self, sql: &str) -> i64 {
        self.try_count(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// One number, or why not (the server may be down on purpose, or the table not made yet).
    fn try_count(&self, sql: &str) -> Result<i64, String> {
        let rows = self.try_rows(sql)?;
        rows.first()
            .and_then(|r| r.trim().parse().ok())
            .ok_or_else(|| format!("not one number: {rows:?}"))
    }
}

impl Rows for Database {
    fn url(&self) -> &str {
        &self.url
    }

    fn try_rows(&self, sql: &str) -> Result<Vec<String>, String> {
        try_psql(&self.url, sql)
    }
}

/// A SQLite database file in a directory of its own, removed when the value goes. Read with
/// Python's `sqlite3` module (as a separate process, like `psql`), so the test reads the file
/// the program wrote, through no code of ours.
#[derive(Debug)]
pub struct SqliteFile {
    url: String,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SqliteFile {
    /// A path for a new database; the program under test creates the file.
    pub fn create() -> SqliteFile {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("telltale.db");
        SqliteFile {
            url: format!("sqlite://{}", path.display()),
            path,
            _dir: dir,
        }
    }
}

/// Prints the rows of `sys.argv[2]` in the database `sys.argv[1]`, as `psql -A -t` does.
const SQLITE_ROWS: &str = "import sqlite3, sys
db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, timeout=30)
for row in db.execute(sys.argv[2]):
    print('|'.join('' if v is None else str(v) for v in row))";

impl Rows for SqliteFile {
    fn url(&self) -> &str {
        &self.url
    }

    fn try_rows(&self, sql: &str) -> Result<Vec<String>, String> {
        let out = Command::new("python3")
            .args(["-c", SQLITE_ROWS])
            .arg(&self.path)
            .arg(sql)
            .output()
            .map_err(|e| format!("cannot run python3 (needed to read SQLite): {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect())
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
        chown_to_postgres(dir.path());
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

    /// As [`Server::start`], with TimescaleDB preloaded.
    pub fn start_timescale() -> Server {
        require_timescaledb();
        let server = Server::start();
        server.pg_ctl(&["stop", "-m", "fast", "-w"]);
        append_conf(&server.dir.path().join("data"), TIMESCALE_CONF);
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

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Polls `ready` every 50 ms until it holds or `limit` passes.
pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a TimescaleDB test server adds to `postgresql.conf`.
const TIMESCALE_CONF: &str = "
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 200
";

fn append_conf(data: &Path, text: &str) {
    use std::io::Write as _;
    let path = data.join("postgresql.conf");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Panics, saying how to fix it, when TimescaleDB is not installed into the PostgreSQL whose
/// server binaries the tests use.
pub fn require_timescaledb() {
    let pg_config = server_bindir().join("pg_config");
    let sharedir = Command::new(&pg_config)
        .arg("--sharedir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| PathBuf::from("/usr/share/postgresql/15"));
    let control = sharedir.join("extension/timescaledb.control");
    assert!(
        control.exists(),
        "TimescaleDB is not installed ({} is missing): run ../shared/timescaledb/install as root \
         (scripts/test does), or install the timescaledb package for this PostgreSQL",
        control.display()
    );
}

/// The maintenance database of the TimescaleDB server shared by every test of a run, started
/// if it is not running (see the crate docs). Make a database of your own on it
/// ([`Database::create_on`]).
pub fn timescale_admin_url() -> String {
    require_timescaledb();
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let root = std::env::temp_dir().join(format!("telltale-tsdb-{uid}"));
    let lock_path = std::env::temp_dir().join(format!("telltale-tsdb-{uid}.lock"));
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("{}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("lock {}: {e}", lock_path.display()));
    let port_file = root.join("port");
    if let Ok(port) = std::fs::read_to_string(&port_file) {
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", port.trim());
        if try_psql(&url, "SELECT 1").is_ok() {
            return url;
        }
    }
    // Not running: start it (on what is there, or a new cluster).
    let bindir = server_bindir();
    let data = root.join("data");
    if !data.join("PG_VERSION").exists() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        chown_to_postgres(&root);
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
            "initdb for the TimescaleDB test server failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        append_conf(&data, TIMESCALE_CONF);
    }
    let port = free_port();
    let options = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
        root.display()
    );
    let log = root.join("server.log");
    let out = as_postgres(&bindir.join("pg_ctl"))
        .arg("-D")
        .arg(&data)
        .args(["start", "-w", "-t", "60", "-o", &options, "-l"])
        .arg(&log)
        .output()
        .expect("run pg_ctl");
    assert!(
        out.status.success(),
        "the TimescaleDB test server did not start: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    std::fs::write(&port_file, port.to_string())
        .unwrap_or_else(|e| panic!("{}: {e}", port_file.display()));
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    wait_for(
        "the TimescaleDB test server to answer",
        Duration::from_secs(30),
        || try_psql(&url, "SELECT 1").is_ok(),
    );
    url
}

fn chown_to_postgres(dir: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .expect("run chown");
        assert!(status.success(), "chown {} to postgres", dir.display());
    }
}
