//! A tenant's own parts catalog and labor guide, kept as the checked CSV they came from.

use super::{Db, DbError, int, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    Parts,
    Labor,
}

impl CatalogKind {
    pub fn name(self) -> &'static str {
        match self {
            CatalogKind::Parts => "parts",
            CatalogKind::Labor => "labor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogFile {
    pub file_name: String,
    pub body: String,
    pub rows: u64,
    pub imported_ms: i64,
    pub imported_by: String,
}

impl Db {
    /// Replaces the tenant's file of this kind in one statement: the old one serves until the
    /// new one is in. The caller has checked every row.
    pub async fn put_catalog(
        &self,
        tenant: &str,
        kind: CatalogKind,
        file: &CatalogFile,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO catalog_files (tenant_id, kind, file_name, body, row_count, imported_ms, imported_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant_id, kind) DO UPDATE SET file_name = excluded.file_name,
                 body = excluded.body, row_count = excluded.row_count,
                 imported_ms = excluded.imported_ms, imported_by = excluded.imported_by",
        )
        .bind(tenant)
        .bind(kind.name())
        .bind(&file.file_name)
        .bind(&file.body)
        .bind(i64::try_from(file.rows).unwrap_or(i64::MAX))
        .bind(file.imported_ms)
        .bind(&file.imported_by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn catalog(
        &self,
        tenant: &str,
        kind: CatalogKind,
    ) -> Result<Option<CatalogFile>, DbError> {
        let row = sqlx::query(
            "SELECT file_name, body, row_count, imported_ms, imported_by FROM catalog_files
             WHERE tenant_id = $1 AND kind = $2",
        )
        .bind(tenant)
        .bind(kind.name())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(CatalogFile {
                file_name: text(&r, "file_name")?,
                body: text(&r, "body")?,
                rows: u64::try_from(int(&r, "row_count")?).unwrap_or(0),
                imported_ms: int(&r, "imported_ms")?,
                imported_by: text(&r, "imported_by")?,
            })
        })
        .transpose()
    }

    /// When the tenant's catalog last changed (0 when it has none): price books are cached on
    /// this.
    pub async fn catalog_stamp(&self, tenant: &str) -> Result<i64, DbError> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(imported_ms), 0) AS stamp FROM catalog_files WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_one(&self.pool)
        .await?;
        int(&row, "stamp")
    }
}
