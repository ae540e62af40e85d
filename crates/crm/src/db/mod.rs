//! Where the CRM's rows are stored: PostgreSQL (its own `crm` schema) or the embedded SQLite
//! file, behind one set of queries.
//!
//! Both run through sqlx's runtime-chosen `Any` driver with the same SQL: `$n` parameters
//! (SQLite reads them too), integers, text and JSON as text, no database-specific types. Each
//! database has its own migrations (`migrations/postgres`, `migrations/sqlite`, the same
//! tables). Booleans are read as `CASE WHEN b THEN 1 ELSE 0 END` because SQLite hands them
//! back as integers. The SQLite pool has one connection: the embedded store serves one shop
//! on one machine, and one writer at a time is how SQLite works best.
//!
//! Every function that reads or changes a tenant's rows takes the tenant and puts it in the
//! `WHERE` clause; none takes a row id alone.

mod catalog;
mod leads;
mod list;
mod quotes;
mod shops;
mod tenants;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor as _, Row as _};

pub use catalog::{CatalogFile, CatalogKind};
pub use leads::{Created, HistoryEntry, Lead, LeadFault, NewLead, Reason, problem};
pub use list::{LeadFilter, LeadPage};
pub use quotes::{Appointment, QuoteRecord, QuoteState};
pub use shops::{Advisor, Customer, ShopRecord, VehicleRecord};
pub use tenants::TokenRecord;

/// What went wrong, as the API reports it. `Sql` text goes to the log, never to a client.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0} not found")]
    NotFound(String),
    /// The row changed under the caller (a stale version, a slot just taken).
    #[error("{0}")]
    Conflict(String),
    /// The request is valid but the data is not ready for it (no default shop, ...).
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Invalid(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
}

impl DbError {
    /// A unique-key violation: a concurrent caller created the same thing first.
    pub(crate) fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Sql(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The CRM's database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    url: String,
}

impl Db {
    /// Connects to `postgres://...` or `sqlite:PATH` (created if missing). Does not migrate.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(DbError::Invalid(format!(
                "database URL must start with postgres:// or sqlite: (got {:?})",
                url.split(':').next().unwrap_or("")
            )));
        };
        // No ping before each acquire: it is a round trip of its own (a `Sync` on PostgreSQL),
        // which doubled the database round trips of every call (the CRM benchmark,
        // `benches/crm-load`). A connection that died while idle fails its next query, the
        // caller gets UNAVAILABLE and may retry, and the pool replaces the connection.
        let options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false);
        let pool = match backend {
            Backend::Postgres => {
                // The schema must exist before a connection can make it its search path.
                let mut first = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await?;
                first.execute("CREATE SCHEMA IF NOT EXISTS crm").await?;
                options
                    .max_connections(max_connections.max(1))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("SET search_path TO crm").await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                options
                    .max_connections(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
        };
        Ok(Db {
            pool,
            backend,
            url: url.to_owned(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Brings the schema up to date.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let result = match self.backend {
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await
            }
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&self.pool).await,
        };
        result.map_err(|e| DbError::Sql(e.into()))
    }

    /// Where it connected (the lead-change listener opens its own connection there).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// PostgreSQL `NOTIFY` on `channel`, delivered to every listener once the caller's
    /// transaction (already committed here) is visible.
    pub(crate) async fn notify(&self, channel: &str, payload: &str) -> Result<(), DbError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// True when the database answers (the health check).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A text column.
pub(crate) fn text(row: &AnyRow, column: &str) -> Result<String, DbError> {
    Ok(row.try_get::<String, _>(column)?)
}

/// A nullable text column, empty when NULL.
pub(crate) fn text_or_empty(row: &AnyRow, column: &str) -> Result<String, DbError> {
    Ok(row
        .try_get::<Option<String>, _>(column)?
        .unwrap_or_default())
}

pub(crate) fn int(row: &AnyRow, column: &str) -> Result<i64, DbError> {
    Ok(row.try_get::<i64, _>(column)?)
}

/// A boolean read as `CASE WHEN b THEN 1 ELSE 0 END AS column`.
pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool, DbError> {
    Ok(int(row, column)? != 0)
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
) -> Result<T, DbError> {
    serde_json::from_str(&text(row, column)?)
        .map_err(|e| DbError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| unreachable!("plain data serialises: {e}"))
}

/// Number from a u32 field for an integer column.
pub(crate) fn num(value: u32) -> i64 {
    i64::from(value)
}

/// Integer column back to u32, refusing what cannot be one.
pub(crate) fn small(row: &AnyRow, column: &str) -> Result<u32, DbError> {
    u32::try_from(int(row, column)?).map_err(|_| DbError::Corrupt(format!("{column} out of range")))
}
