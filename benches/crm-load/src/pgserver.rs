//! A private PostgreSQL cluster for the `fault` benchmark, when the shared server cannot take
//! the ingest: with TimescaleDB *available* there but not preloaded (the usual state right
//! after installing it, and this machine's since `../shared/timescaledb/install`), the store's
//! migration runs `CREATE EXTENSION timescaledb` and the server ends the connection (issue 15).
//! The private cluster preloads TimescaleDB (`shared_preload_libraries`, telemetry reporting
//! off), so the ingest stores into it as an operator's TimescaleDB server would; the lead path
//! (DTC events, the outbox, the CRM's tables) is plain tables either way.
//!
//! Made with the server binaries (`initdb`, `pg_ctl`) from `TELLTALE_TEST_PG_BINDIR` or the
//! newest `/usr/lib/postgresql/*/bin`; as root it runs as the `postgres` user, since
//! PostgreSQL refuses to run as root. Default settings otherwise (fsync on).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use telltale_load::proc::free_port;

/// A running private cluster; stopped (immediately) when dropped.
#[derive(Debug)]
pub struct PgServer {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    pub port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
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

fn bindir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("TELLTALE_TEST_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
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
    found.pop().map(|(_, b)| b).context(
        "no PostgreSQL server binaries under /usr/lib/postgresql: install Debian's postgresql \
         package or set TELLTALE_TEST_PG_BINDIR",
    )
}

fn run(mut c: Command, what: &str) -> anyhow::Result<()> {
    let out = c.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Whether the server at `admin_url` has TimescaleDB installed but not preloaded: the store's
/// migration would end its connection there.
pub async fn timescale_trap(admin_url: &str) -> anyhow::Result<bool> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to {admin_url}"))?;
    let available: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')",
    )
    .fetch_one(&mut conn)
    .await?;
    let preload: String = sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
        .fetch_one(&mut conn)
        .await?;
    Ok(available && !preload.contains("timescaledb"))
}

impl PgServer {
    /// Initialises and starts a cluster with TimescaleDB preloaded.
    pub fn start() -> anyhow::Result<PgServer> {
        let bindir = bindir()?;
        let dir = tempfile::tempdir().context("a temporary directory for PostgreSQL")?;
        if is_root() {
            let mut c = Command::new("chown");
            c.args(["-R", "postgres:postgres"]).arg(dir.path());
            run(c, "chown")?;
        }
        let data = dir.path().join("data");
        let mut c = as_postgres(&bindir.join("initdb"));
        c.args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data);
        run(c, "initdb")?;
        let port = free_port()?;
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c max_connections=100 \
             -c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off",
            dir.path().display()
        );
        let log = dir.path().join("server.log");
        let mut c = as_postgres(&bindir.join("pg_ctl"));
        c.arg("-D")
            .arg(&data)
            .args(["start", "-w", "-t", "60", "-o", &options, "-l"])
            .arg(&log);
        run(c, "pg_ctl start").map_err(|e| {
            anyhow::anyhow!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default())
        })?;
        Ok(PgServer { dir, bindir, port })
    }

    /// The maintenance database's URL.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["stop", "-m", "immediate", "-w"])
            .output();
    }
}
