//! Leads: creation (idempotent on the client's key, one lead per vehicle and open problem),
//! listing, assignment, the lifecycle and the audit trail.

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::quotes::insert_quote;
use super::{Db, DbError, int, json, text, text_or_empty, to_json};
use crate::knowledge::Severity;
use crate::lifecycle::Stage;
use crate::quote::QuoteBody;

/// Why a lead was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Manual,
    PendingDtc,
    MilOn,
    ConfirmedDtc,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Manual => "manual",
            Reason::PendingDtc => "pending_dtc",
            Reason::MilOn => "mil_on",
            Reason::ConfirmedDtc => "confirmed_dtc",
        }
    }

    pub fn parse(name: &str) -> Option<Reason> {
        [
            Reason::Manual,
            Reason::PendingDtc,
            Reason::MilOn,
            Reason::ConfirmedDtc,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }
}

/// A code on a lead with what the knowledge base says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadFault {
    pub code: String,
    pub ecu: u32,
    pub description: String,
    pub system: String,
    pub severity: Option<Severity>,
    pub needs_diagnosis: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lead {
    pub id: String,
    pub tenant: String,
    pub shop_id: String,
    pub vin: String,
    pub device_id: String,
    pub status: Stage,
    pub reason: Reason,
    pub severity: Option<Severity>,
    pub faults: Vec<LeadFault>,
    pub advisor_id: String,
    pub quote_id: String,
    pub idempotency_key: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub detected_ms: i64,
    pub close_reason: String,
}

/// A lead to create, already routed and priced.
#[derive(Debug, Clone)]
pub struct NewLead {
    pub key: String,
    pub vin: String,
    pub device_id: String,
    pub reason: Reason,
    pub faults: Vec<LeadFault>,
    /// What makes two leads the same problem (see [`problem`]).
    pub problem: String,
    pub shop_id: String,
    pub detected_ms: i64,
    pub quote: QuoteBody,
    pub actor: String,
}

/// What `create_lead` did.
#[derive(Debug, Clone)]
pub struct Created {
    pub lead: Lead,
    /// A new lead.
    pub created: bool,
    /// An open lead for the same problem was found and touched (a new key for it).
    pub updated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// Two leads are the same problem when they are for the same codes (a pending code that is
/// later confirmed is one problem); a lamp without codes is its own problem; a manual lead is
/// never merged.
pub fn problem(reason: Reason, codes: &[&str], key: &str) -> String {
    match reason {
        Reason::Manual => format!("manual:{key}"),
        _ if codes.is_empty() => "mil".to_owned(),
        _ => {
            let mut codes: Vec<&str> = codes.to_vec();
            codes.sort_unstable();
            codes.dedup();
            codes.join("+")
        }
    }
}

pub(crate) fn severity_rank(s: Option<Severity>) -> i64 {
    match s {
        None => 0,
        Some(Severity::CanWait) => 1,
        Some(Severity::ServiceSoon) => 2,
        Some(Severity::StopNow) => 3,
    }
}

fn severity_of(rank: i64) -> Option<Severity> {
    match rank {
        1 => Some(Severity::CanWait),
        2 => Some(Severity::ServiceSoon),
        3 => Some(Severity::StopNow),
        _ => None,
    }
}

pub(super) const LEAD_COLUMNS: &str =
    "id, tenant_id, shop_id, vin, device_id, status, reason, severity, faults,
    advisor_id, quote_id, idempotency_key, created_ms, updated_ms, detected_ms, close_reason";

pub(super) fn lead_from_row(row: &AnyRow) -> Result<Lead, DbError> {
    let status = text(row, "status")?;
    let reason = text(row, "reason")?;
    Ok(Lead {
        id: text(row, "id")?,
        tenant: text(row, "tenant_id")?,
        shop_id: text(row, "shop_id")?,
        vin: text(row, "vin")?,
        device_id: text(row, "device_id")?,
        status: Stage::parse(&status)
            .ok_or_else(|| DbError::Corrupt(format!("lead status {status:?}")))?,
        reason: Reason::parse(&reason)
            .ok_or_else(|| DbError::Corrupt(format!("lead reason {reason:?}")))?,
        severity: severity_of(int(row, "severity")?),
        faults: json(row, "faults")?,
        advisor_id: text_or_empty(row, "advisor_id")?,
        quote_id: text_or_empty(row, "quote_id")?,
        idempotency_key: text(row, "idempotency_key")?,
        created_ms: int(row, "created_ms")?,
        updated_ms: int(row, "updated_ms")?,
        detected_ms: int(row, "detected_ms")?,
        close_reason: text(row, "close_reason")?,
    })
}

pub(crate) async fn lead_in(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
) -> Result<Lead, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {LEAD_COLUMNS} FROM leads WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| DbError::NotFound(format!("lead {id:?}")))?;
    lead_from_row(&row)
}

pub(crate) async fn record(
    conn: &mut AnyConnection,
    tenant: &str,
    lead: &str,
    now_ms: i64,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO lead_history (tenant_id, lead_id, at_ms, actor, action, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(lead)
    .bind(now_ms)
    .bind(actor)
    .bind(action)
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks a lead changed now (its audit entry is recorded by the caller).
pub(crate) async fn touch(
    conn: &mut AnyConnection,
    tenant: &str,
    lead: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query("UPDATE leads SET updated_ms = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(lead)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves a lead forward to `to` (quoting, accepting, booking) unless it is already past it.
pub(crate) async fn advance(
    conn: &mut AnyConnection,
    tenant: &str,
    lead: &str,
    to: Stage,
    now_ms: i64,
    actor: &str,
) -> Result<(), DbError> {
    let current = lead_in(conn, tenant, lead).await?;
    let next = current.status.advance(to);
    if next != current.status {
        sqlx::query(
            "UPDATE leads SET status = $3, updated_ms = $4 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(lead)
        .bind(next.name())
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
        record(
            conn,
            tenant,
            lead,
            now_ms,
            actor,
            "status",
            &format!("{} → {}", current.status, next),
        )
        .await?;
    } else {
        touch(conn, tenant, lead, now_ms).await?;
    }
    Ok(())
}

impl Db {
    /// Creates a lead, or returns the one this key (or an open lead for the same vehicle and
    /// problem) already made. Safe under concurrent duplicate calls: the unique keys decide,
    /// and the loser retries and finds the winner's lead.
    pub async fn create_lead(
        &self,
        tenant: &str,
        new: &NewLead,
        lead_id: &str,
        quote_id: &str,
        now_ms: i64,
    ) -> Result<Created, DbError> {
        for _ in 0..5 {
            match self
                .try_create_lead(tenant, new, lead_id, quote_id, now_ms)
                .await
            {
                Err(e) if e.is_unique_violation() => continue,
                other => return other,
            }
        }
        Err(DbError::Conflict(
            "the lead is being created by another call; retry".into(),
        ))
    }

    async fn try_create_lead(
        &self,
        tenant: &str,
        new: &NewLead,
        lead_id: &str,
        quote_id: &str,
        now_ms: i64,
    ) -> Result<Created, DbError> {
        let mut tx = self.pool.begin().await?;
        let known =
            sqlx::query("SELECT lead_id FROM lead_keys WHERE tenant_id = $1 AND client_key = $2")
                .bind(tenant)
                .bind(&new.key)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = known {
            let lead = lead_in(&mut tx, tenant, &text(&row, "lead_id")?).await?;
            tx.commit().await?;
            return Ok(Created {
                lead,
                created: false,
                updated: false,
            });
        }
        let open = sqlx::query(
            "SELECT id FROM leads WHERE tenant_id = $1 AND vin = $2 AND problem = $3
             AND status NOT IN ('closed_won', 'closed_lost')",
        )
        .bind(tenant)
        .bind(&new.vin)
        .bind(&new.problem)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = open {
            let id = text(&row, "id")?;
            let lead = lead_in(&mut tx, tenant, &id).await?;
            let reason = lead.reason.max(new.reason);
            sqlx::query(
                "UPDATE leads SET reason = $3, updated_ms = $4, detected_ms = $5
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(&id)
            .bind(reason.name())
            .bind(now_ms)
            .bind(new.detected_ms.max(lead.detected_ms))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO lead_keys (tenant_id, client_key, lead_id) VALUES ($1, $2, $3)",
            )
            .bind(tenant)
            .bind(&new.key)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            let detail = format!("reported again ({}, key {})", new.reason.name(), new.key);
            record(
                &mut tx,
                tenant,
                &id,
                now_ms,
                &new.actor,
                "seen_again",
                &detail,
            )
            .await?;
            let lead = lead_in(&mut tx, tenant, &id).await?;
            tx.commit().await?;
            return Ok(Created {
                lead,
                created: false,
                updated: true,
            });
        }
        let severity = new.faults.iter().filter_map(|f| f.severity).max();
        sqlx::query(
            "INSERT INTO leads (id, tenant_id, shop_id, vin, device_id, status, reason, severity,
                 problem, idempotency_key, faults, created_ms, updated_ms, detected_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)",
        )
        .bind(lead_id)
        .bind(tenant)
        .bind(&new.shop_id)
        .bind(&new.vin)
        .bind(&new.device_id)
        .bind(Stage::New.name())
        .bind(new.reason.name())
        .bind(severity_rank(severity))
        .bind(&new.problem)
        .bind(&new.key)
        .bind(to_json(&new.faults))
        .bind(now_ms)
        .bind(new.detected_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO lead_keys (tenant_id, client_key, lead_id) VALUES ($1, $2, $3)")
            .bind(tenant)
            .bind(&new.key)
            .bind(lead_id)
            .execute(&mut *tx)
            .await?;
        insert_quote(
            &mut tx,
            tenant,
            lead_id,
            quote_id,
            &new.shop_id,
            &new.quote,
            now_ms,
        )
        .await?;
        sqlx::query("UPDATE leads SET quote_id = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(lead_id)
            .bind(quote_id)
            .execute(&mut *tx)
            .await?;
        let codes: Vec<&str> = new.faults.iter().map(|f| f.code.as_str()).collect();
        let detail = format!(
            "{} {} (key {})",
            new.reason.name(),
            codes.join(" "),
            new.key
        );
        record(
            &mut tx,
            tenant,
            lead_id,
            now_ms,
            &new.actor,
            "created",
            detail.trim(),
        )
        .await?;
        let lead = lead_in(&mut tx, tenant, lead_id).await?;
        tx.commit().await?;
        Ok(Created {
            lead,
            created: true,
            updated: false,
        })
    }

    /// The lead a client key already made, in one round trip; `None` for a new key.
    pub async fn lead_for_key(&self, tenant: &str, key: &str) -> Result<Option<Lead>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE tenant_id = $1 AND id =
                 (SELECT lead_id FROM lead_keys WHERE tenant_id = $1 AND client_key = $2)"
        ))
        .bind(tenant)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(lead_from_row).transpose()
    }

    pub async fn lead(&self, tenant: &str, id: &str) -> Result<Lead, DbError> {
        let mut conn = self.pool.acquire().await?;
        lead_in(&mut conn, tenant, id).await
    }

    /// Assigns the lead to one of the tenant's advisors.
    pub async fn assign(
        &self,
        tenant: &str,
        id: &str,
        advisor: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<Lead, DbError> {
        self.advisor(tenant, advisor).await?;
        let mut tx = self.pool.begin().await?;
        let lead = lead_in(&mut tx, tenant, id).await?;
        if lead.status.is_closed() {
            return Err(DbError::Precondition(format!("lead {id} is closed")));
        }
        sqlx::query(
            "UPDATE leads SET advisor_id = $3, updated_ms = $4 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(advisor)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let from = if lead.advisor_id.is_empty() {
            "nobody"
        } else {
            lead.advisor_id.as_str()
        };
        record(
            &mut tx,
            tenant,
            id,
            now_ms,
            actor,
            "assigned",
            &format!("{from} → {advisor}"),
        )
        .await?;
        let lead = lead_in(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(lead)
    }

    /// Moves a lead along its lifecycle (see [`crate::lifecycle`]).
    pub async fn set_status(
        &self,
        tenant: &str,
        id: &str,
        to: Stage,
        reason: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<Lead, DbError> {
        let mut tx = self.pool.begin().await?;
        let lead = lead_in(&mut tx, tenant, id).await?;
        lead.status
            .check_move(to, reason)
            .map_err(|e| DbError::Precondition(e.to_string()))?;
        if lead.status == to {
            return Ok(lead);
        }
        let done = sqlx::query(
            "UPDATE leads SET status = $3, close_reason = $4, updated_ms = $5
             WHERE tenant_id = $1 AND id = $2 AND status = $6",
        )
        .bind(tenant)
        .bind(id)
        .bind(to.name())
        .bind(reason.trim())
        .bind(now_ms)
        .bind(lead.status.name())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::Conflict(format!(
                "lead {id} changed meanwhile; read it again"
            )));
        }
        let mut detail = format!("{} → {}", lead.status, to);
        if !reason.trim().is_empty() {
            detail.push_str(&format!(": {}", reason.trim()));
        }
        record(&mut tx, tenant, id, now_ms, actor, "status", &detail).await?;
        let lead = lead_in(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(lead)
    }

    pub async fn add_note(
        &self,
        tenant: &str,
        id: &str,
        note: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<Lead, DbError> {
        if note.trim().is_empty() {
            return Err(DbError::Invalid("a note needs text".into()));
        }
        let mut tx = self.pool.begin().await?;
        lead_in(&mut tx, tenant, id).await?;
        touch(&mut tx, tenant, id, now_ms).await?;
        record(&mut tx, tenant, id, now_ms, actor, "note", note.trim()).await?;
        let lead = lead_in(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(lead)
    }

    /// The audit trail of a lead, oldest first.
    pub async fn history(&self, tenant: &str, id: &str) -> Result<Vec<HistoryEntry>, DbError> {
        self.lead(tenant, id).await?;
        let rows = sqlx::query(
            "SELECT at_ms, actor, action, detail FROM lead_history
             WHERE tenant_id = $1 AND lead_id = $2 ORDER BY seq",
        )
        .bind(tenant)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryEntry {
                    at_ms: int(r, "at_ms")?,
                    actor: text(r, "actor")?,
                    action: text(r, "action")?,
                    detail: text(r, "detail")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_codes_are_the_same_problem() {
        assert_eq!(
            problem(Reason::PendingDtc, &["P0420"], "k1"),
            problem(Reason::ConfirmedDtc, &["P0420"], "k2")
        );
        assert_eq!(
            problem(Reason::ConfirmedDtc, &["P0302", "P0301"], "k"),
            "P0301+P0302"
        );
        assert_eq!(problem(Reason::MilOn, &[], "k"), "mil");
        assert_ne!(
            problem(Reason::Manual, &[], "a"),
            problem(Reason::Manual, &[], "b")
        );
    }
}
