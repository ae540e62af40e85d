//! Where telemetry lives on PostgreSQL, decided at every start: a TimescaleDB hypertable, or
//! native daily partitions.
//!
//! The decision follows what the server can *run*, not what is merely installed: TimescaleDB
//! works only when it is in `shared_preload_libraries` (installed but not preloaded, the usual
//! state right after installing the package, `CREATE EXTENSION` ends the connection). With
//! the operator's [`TimescaleMode`] and the table that is already there:
//!
//! | mode | TimescaleDB loaded | no table yet | partitioned | hypertable | plain table |
//! |---|---|---|---|---|---|
//! | auto | yes | hypertable | stays partitioned (say how to move) | hypertable | becomes a hypertable |
//! | auto | no | partitioned (say why) | partitioned | **refuse**: load it | becomes partitioned |
//! | on | yes | hypertable | **moved** into a hypertable | hypertable | becomes a hypertable |
//! | on | no | **refuse**: say what to set | | | |
//! | off | either | partitioned | partitioned | **refuse**: data is in TimescaleDB | becomes partitioned |
//!
//! A plain table is what migration 0002 makes when the extension is installed, ready to
//! become a hypertable; it is also the half-made state an earlier build left when TimescaleDB
//! was installed but not loaded. Either way it is turned into the layout decided (it is empty
//! then, or its rows are copied across once). The refusals name the setting to change.

use sqlx::{PgConnection, Row};

use crate::{StoreError, TimescaleMode};

/// The table as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    None,
    Partitioned,
    Hypertable,
    /// A plain table: migration 0002's TimescaleDB branch, not yet a hypertable.
    Plain,
}

/// What the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Server {
    /// The extension is installed (`pg_available_extensions`).
    pub(crate) available: bool,
    /// It is in `shared_preload_libraries`, so it can run.
    pub(crate) loaded: bool,
}

/// Where telemetry goes, and what has to happen to the table for that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Keep (or make) daily partitions; `convert` when a plain table is to be replaced.
    Partitioned { convert: bool },
    /// Keep (or make) a hypertable; `from_partitions` when the partitioned table's rows move.
    Hypertable { from_partitions: bool },
}

/// What `shared_preload_libraries` must say, and how to get there.
const HOW_TO_LOAD: &str = "add timescaledb to shared_preload_libraries in postgresql.conf \
     (shared_preload_libraries = 'timescaledb', keeping any libraries already listed) and \
     restart PostgreSQL";

/// The decision table of the module docs. `Err` is the refusal, in words for the operator;
/// the note is logged at INFO when the plan is not the obvious one.
pub(crate) fn decide(
    mode: TimescaleMode,
    existing: Existing,
    server: Server,
) -> Result<(Plan, Option<String>), String> {
    use Existing as E;
    use TimescaleMode as M;
    let keep = Plan::Partitioned { convert: false };
    match (mode, existing, server.loaded) {
        (M::Off, E::Hypertable, _) => Err(
            "telemetry is a TimescaleDB hypertable; database.timescaledb = \"off\" cannot use it: \
             set it to \"auto\" or \"on\" (TimescaleDB must be loaded)"
                .into(),
        ),
        (M::Off, E::Plain, _) => Ok((Plan::Partitioned { convert: true }, None)),
        (M::Off, _, _) => Ok((keep, None)),
        (M::On, _, false) => Err(format!(
            "database.timescaledb = \"on\" but TimescaleDB is {}: {HOW_TO_LOAD}",
            if server.available {
                "installed and not loaded"
            } else {
                "not installed on the database server (install the timescaledb package for \
                 this PostgreSQL version first)"
            }
        )),
        (M::On, E::Partitioned, true) => Ok((
            Plan::Hypertable {
                from_partitions: true,
            },
            Some("telemetry moves from daily partitions into a hypertable (every row once)".into()),
        )),
        (M::On | M::Auto, E::None | E::Plain | E::Hypertable, true) => Ok((
            Plan::Hypertable {
                from_partitions: false,
            },
            None,
        )),
        (M::Auto, E::Partitioned, true) => Ok((
            keep,
            Some(
                "TimescaleDB is loaded but telemetry is in daily partitions and stays there; set \
                 database.timescaledb = \"on\" to move it into a hypertable (every row is copied \
                 once, at start)"
                    .into(),
            ),
        )),
        (M::Auto, E::Hypertable, false) => Err(format!(
            "telemetry is a TimescaleDB hypertable but TimescaleDB is not loaded: {HOW_TO_LOAD}"
        )),
        (M::Auto, E::None, false) => Ok((
            keep,
            Some(if server.available {
                format!(
                    "TimescaleDB is installed but not loaded, so telemetry uses daily partitions; to use it, {HOW_TO_LOAD}"
                )
            } else {
                "TimescaleDB is not installed: telemetry uses daily partitions".into()
            }),
        )),
        (M::Auto, E::Plain, false) => Ok((
            Plan::Partitioned { convert: true },
            Some(format!(
                "telemetry was left a plain table for TimescaleDB, which is not loaded: it becomes \
                 daily partitions (to use TimescaleDB instead, {HOW_TO_LOAD})"
            )),
        )),
        (M::Auto, E::Partitioned, false) => Ok((keep, None)),
    }
}

/// What the server offers.
pub(crate) async fn server(conn: &mut PgConnection) -> Result<Server, StoreError> {
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
                current_setting('shared_preload_libraries') ~ '(^|[\\s,])timescaledb($|[\\s,])' AS loaded",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Server {
        available: row.try_get("available")?,
        loaded: row.try_get("loaded")?,
    })
}

/// The telemetry table as it is.
pub(crate) async fn existing(conn: &mut PgConnection) -> Result<Existing, StoreError> {
    let kind: Option<String> = sqlx::query_scalar(
        "SELECT relkind::text FROM pg_class WHERE oid = to_regclass('telemetry')",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match kind.as_deref() {
        None => Existing::None,
        Some("p") => Existing::Partitioned,
        Some(_) => {
            // A hypertable is a plain table TimescaleDB's catalog knows.
            let hypertable: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
                    AND EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                WHERE c.relname = 'hypertable' AND n.nspname = '_timescaledb_catalog')",
            )
            .fetch_one(&mut *conn)
            .await?;
            let is_hypertable = hypertable
                && sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM _timescaledb_catalog.hypertable
                                    WHERE table_name = 'telemetry')",
                )
                .fetch_one(&mut *conn)
                .await?;
            if is_hypertable {
                Existing::Hypertable
            } else {
                Existing::Plain
            }
        }
    })
}

/// The daily-partition layout, as migration 0002 makes it when TimescaleDB is not installed:
/// the parent, the DEFAULT partition for odd device clocks, the `date_bin` views standing in
/// for the continuous aggregates, and the reading index.
const PARTITIONED: &str = "
    CREATE TABLE telemetry (LIKE telemetry_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
        PARTITION BY RANGE (device_time);
    CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT;
    CREATE VIEW telemetry_minute AS
        SELECT vin, signal,
               date_bin(INTERVAL '1 minute', device_time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
               count(*) AS samples, avg(value) AS avg_value, min(value) AS min_value,
               max(value) AS max_value
        FROM telemetry
        GROUP BY vin, signal, bucket;
    CREATE VIEW telemetry_hour AS
        SELECT vin, signal,
               date_bin(INTERVAL '1 hour', device_time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
               count(*) AS samples, avg(value) AS avg_value, min(value) AS min_value,
               max(value) AS max_value
        FROM telemetry
        GROUP BY vin, signal, bucket;
    CREATE INDEX telemetry_vin_signal_time ON telemetry (vin, signal, device_time DESC);";

/// A plain table becomes daily partitions, its rows copied across, in one transaction. The
/// caller makes the partitions the rows need afterwards (rows wait in the DEFAULT partition
/// until then, and move into their day when it is made).
pub(crate) async fn plain_to_partitioned(conn: &mut PgConnection) -> Result<u64, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::raw_sql(
        "ALTER TABLE telemetry RENAME TO telemetry_old;
         ALTER INDEX IF EXISTS telemetry_vin_signal_time RENAME TO telemetry_old_vin_signal_time;",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::raw_sql(PARTITIONED).execute(&mut *tx).await?;
    let moved = sqlx::query("INSERT INTO telemetry SELECT * FROM telemetry_old")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::raw_sql("DROP TABLE telemetry_old")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(moved)
}

/// Daily partitions become a plain table ready for `create_hypertable` (which then moves the
/// rows into chunks), in one transaction: the `date_bin` views go (continuous aggregates of the
/// same names replace them).
pub(crate) async fn partitioned_to_plain(conn: &mut PgConnection) -> Result<u64, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::raw_sql(
        "DROP VIEW IF EXISTS telemetry_minute;
         DROP VIEW IF EXISTS telemetry_hour;
         ALTER TABLE telemetry RENAME TO telemetry_partitioned;
         ALTER INDEX IF EXISTS telemetry_vin_signal_time RENAME TO telemetry_partitioned_vin_signal_time;
         CREATE TABLE telemetry (LIKE telemetry_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
         CREATE INDEX telemetry_vin_signal_time ON telemetry (vin, signal, device_time DESC);",
    )
    .execute(&mut *tx)
    .await?;
    let moved = sqlx::query("INSERT INTO telemetry SELECT * FROM telemetry_partitioned")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::raw_sql("DROP TABLE telemetry_partitioned CASCADE")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOADED: Server = Server {
        available: true,
        loaded: true,
    };
    const INSTALLED: Server = Server {
        available: true,
        loaded: false,
    };
    const ABSENT: Server = Server {
        available: false,
        loaded: false,
    };

    fn plan(mode: TimescaleMode, existing: Existing, server: Server) -> Result<Plan, String> {
        decide(mode, existing, server).map(|(p, _)| p)
    }

    #[test]
    fn usable_not_available_decides() {
        use Existing as E;
        use TimescaleMode as M;
        let hyper = Plan::Hypertable {
            from_partitions: false,
        };
        let parts = Plan::Partitioned { convert: false };
        // The trap: installed, not loaded. auto uses partitions; a half-made plain table is
        // turned into them.
        assert_eq!(plan(M::Auto, E::None, INSTALLED), Ok(parts));
        assert_eq!(
            plan(M::Auto, E::Plain, INSTALLED),
            Ok(Plan::Partitioned { convert: true })
        );
        assert_eq!(plan(M::Auto, E::None, LOADED), Ok(hyper));
        assert_eq!(plan(M::Auto, E::Plain, LOADED), Ok(hyper));
        assert_eq!(plan(M::Auto, E::Partitioned, LOADED), Ok(parts));
        assert_eq!(plan(M::Auto, E::None, ABSENT), Ok(parts));
        // on moves partitions, and refuses a server that cannot run it, saying what to set.
        assert_eq!(
            plan(M::On, E::Partitioned, LOADED),
            Ok(Plan::Hypertable {
                from_partitions: true
            })
        );
        let refusal = plan(M::On, E::None, INSTALLED).unwrap_err();
        assert!(
            refusal.contains("shared_preload_libraries = 'timescaledb'"),
            "{refusal}"
        );
        assert!(refusal.contains("installed and not loaded"), "{refusal}");
        assert!(
            plan(M::On, E::None, ABSENT)
                .unwrap_err()
                .contains("not installed")
        );
        // Data already in TimescaleDB is never silently abandoned.
        assert!(plan(M::Auto, E::Hypertable, INSTALLED).is_err());
        assert!(plan(M::Off, E::Hypertable, LOADED).is_err());
        assert_eq!(plan(M::Off, E::None, LOADED), Ok(parts));
        assert_eq!(
            plan(M::Off, E::Plain, LOADED),
            Ok(Plan::Partitioned { convert: true })
        );
    }
}
