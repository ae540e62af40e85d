//! Tenants and their tokens.

use sqlx::Row as _;

use super::{Db, DbError, int, text};
use crate::auth::{Principal, Role};

/// A token as listed (never with its secret, which is not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub tenant: String,
    pub role: Role,
    pub subject: String,
    pub label: String,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

impl Db {
    /// Creates the tenant, or renames it when it exists.
    pub async fn put_tenant(&self, id: &str, name: &str, now_ms: i64) -> Result<(), DbError> {
        if id.trim().is_empty() {
            return Err(DbError::Invalid("a tenant needs an id".into()));
        }
        sqlx::query(
            "INSERT INTO tenants (id, name, created_ms) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name",
        )
        .bind(id)
        .bind(name)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn tenant_exists(&self, id: &str) -> Result<bool, DbError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(int(&row, "n")? > 0)
    }

    /// Stores a token's hash. The caller made the token and hands its secret over once.
    pub async fn add_token(&self, token: &TokenRecord, hash: &str) -> Result<(), DbError> {
        if !self.tenant_exists(&token.tenant).await? {
            return Err(DbError::NotFound(format!("tenant {:?}", token.tenant)));
        }
        sqlx::query(
            "INSERT INTO tokens (id, tenant_id, role, subject, label, hash, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&token.id)
        .bind(&token.tenant)
        .bind(token.role.name())
        .bind(&token.subject)
        .bind(&token.label)
        .bind(hash)
        .bind(token.created_ms)
        .bind(token.expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The caller behind a token's hash, if the token exists, is not revoked and not expired.
    pub async fn principal(&self, hash: &str, now_ms: i64) -> Result<Option<Principal>, DbError> {
        let row = sqlx::query(
            "SELECT id, tenant_id, role, subject, expires_ms FROM tokens
             WHERE hash = $1 AND revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > $2)",
        )
        .bind(hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let role = text(&row, "role")?;
        Ok(Some(Principal {
            tenant: text(&row, "tenant_id")?,
            role: Role::parse(&role)
                .ok_or_else(|| DbError::Corrupt(format!("token role {role:?}")))?,
            subject: text(&row, "subject")?,
            token_id: text(&row, "id")?,
            expires_ms: row.try_get::<Option<i64>, _>("expires_ms")?,
        }))
    }

    pub async fn revoke_token(&self, tenant: &str, id: &str, now_ms: i64) -> Result<(), DbError> {
        let done = sqlx::query(
            "UPDATE tokens SET revoked_ms = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_ms IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!(
                "active token {id:?} of tenant {tenant:?}"
            )));
        }
        Ok(())
    }

    pub async fn tokens(&self, tenant: &str) -> Result<Vec<TokenRecord>, DbError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, role, subject, label, created_ms, expires_ms, revoked_ms
             FROM tokens WHERE tenant_id = $1 ORDER BY created_ms, id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let role = text(row, "role")?;
                Ok(TokenRecord {
                    id: text(row, "id")?,
                    tenant: text(row, "tenant_id")?,
                    role: Role::parse(&role)
                        .ok_or_else(|| DbError::Corrupt(format!("token role {role:?}")))?,
                    subject: text(row, "subject")?,
                    label: text(row, "label")?,
                    created_ms: int(row, "created_ms")?,
                    expires_ms: row.try_get::<Option<i64>, _>("expires_ms")?,
                    revoked_ms: row.try_get("revoked_ms")?,
                })
            })
            .collect()
    }
}
