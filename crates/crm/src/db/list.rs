//! Listing a tenant's leads: filters and keyset pages, newest first.

use super::leads::{LEAD_COLUMNS, Lead, lead_from_row, severity_rank};
use super::{Db, DbError};
use crate::knowledge::Severity;
use crate::lifecycle::Stage;

/// Filters for `leads`; each applies when set.
#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub statuses: Vec<Stage>,
    pub shop_id: String,
    pub min_severity: Option<Severity>,
    pub created_from_ms: Option<i64>,
    pub created_to_ms: Option<i64>,
    pub limit: u32,
    /// From the previous page.
    pub after: Option<(i64, String)>,
}

#[derive(Debug, Clone)]
pub struct LeadPage {
    pub leads: Vec<Lead>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<(i64, String)>,
}

impl Db {
    /// A page of the tenant's leads, newest first.
    pub async fn leads(&self, tenant: &str, filter: &LeadFilter) -> Result<LeadPage, DbError> {
        let mut sql = format!("SELECT {LEAD_COLUMNS} FROM leads WHERE tenant_id = $1");
        let mut texts: Vec<String> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        // Text parameters are $2.., integer ones follow; numbered as they are added.
        let mut clauses: Vec<(bool, String)> = Vec::new();
        if !filter.statuses.is_empty() {
            let mut names = Vec::new();
            for s in &filter.statuses {
                texts.push(s.name().to_owned());
                names.push(format!("$T{}", texts.len()));
            }
            clauses.push((false, format!("status IN ({})", names.join(", "))));
        }
        if !filter.shop_id.is_empty() {
            texts.push(filter.shop_id.clone());
            clauses.push((false, format!("shop_id = $T{}", texts.len())));
        }
        if let Some(s) = filter.min_severity {
            ints.push(severity_rank(Some(s)));
            clauses.push((true, format!("severity >= $I{}", ints.len())));
        }
        if let Some(t) = filter.created_from_ms {
            ints.push(t);
            clauses.push((true, format!("created_ms >= $I{}", ints.len())));
        }
        if let Some(t) = filter.created_to_ms {
            ints.push(t);
            clauses.push((true, format!("created_ms < $I{}", ints.len())));
        }
        if let Some((created, id)) = &filter.after {
            ints.push(*created);
            texts.push(id.clone());
            // A row-value comparison, so the index on (tenant_id, created_ms, id) bounds the
            // scan: with `created_ms < x OR (created_ms = x AND id < y)` PostgreSQL walked the
            // index from the newest lead and filtered, and page n cost n pages.
            clauses.push((
                true,
                format!(
                    "(created_ms, id) < ($I{i}, $T{t})",
                    i = ints.len(),
                    t = texts.len()
                ),
            ));
        }
        let limit = filter.limit.clamp(1, 500);
        for (_, clause) in &clauses {
            sql.push_str(" AND ");
            sql.push_str(clause);
        }
        sql.push_str(&format!(
            " ORDER BY created_ms DESC, id DESC LIMIT {}",
            limit + 1
        ));
        // Number the parameters: tenant $1, texts $2.., ints after.
        let text_base = 1;
        let int_base = 1 + texts.len();
        for i in (1..=texts.len().max(ints.len())).rev() {
            sql = sql.replace(&format!("$T{i}"), &format!("${}", text_base + i));
            sql = sql.replace(&format!("$I{i}"), &format!("${}", int_base + i));
        }
        let mut query = sqlx::query(&sql).bind(tenant);
        for t in &texts {
            query = query.bind(t.as_str());
        }
        for i in &ints {
            query = query.bind(*i);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut leads = rows
            .iter()
            .map(lead_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if leads.len() > limit as usize {
            leads.truncate(limit as usize);
            leads.last().map(|l| (l.created_ms, l.id.clone()))
        } else {
            None
        };
        Ok(LeadPage { leads, next })
    }
}
