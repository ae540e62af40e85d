//! Quotes and appointments.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::leads::{advance, record, touch};
use super::{Db, DbError, int, json, small, text, to_json};
use crate::lifecycle::Stage;
use crate::quote::QuoteBody;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteState {
    Draft,
    Sent,
    Accepted,
    Declined,
}

impl QuoteState {
    pub fn name(self) -> &'static str {
        match self {
            QuoteState::Draft => "draft",
            QuoteState::Sent => "sent",
            QuoteState::Accepted => "accepted",
            QuoteState::Declined => "declined",
        }
    }

    fn parse(name: &str) -> Option<QuoteState> {
        [
            QuoteState::Draft,
            QuoteState::Sent,
            QuoteState::Accepted,
            QuoteState::Declined,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRecord {
    pub id: String,
    pub tenant: String,
    pub lead_id: String,
    pub shop_id: String,
    pub vin: String,
    pub version: u32,
    pub state: QuoteState,
    pub body: QuoteBody,
    pub accepted_option: String,
    pub decline_reason: String,
    pub sent_ms: i64,
    pub link_expires_ms: i64,
    pub link_nonce: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    pub id: String,
    pub shop_id: String,
    pub lead_id: String,
    pub quote_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub bay: u32,
}

const QUOTE_COLUMNS: &str = "q.id, q.tenant_id, q.lead_id, q.shop_id, l.vin, q.version, q.status,
    q.body, q.accepted_option, q.decline_reason, q.sent_ms, q.link_expires_ms, q.link_nonce,
    q.created_ms, q.updated_ms";

fn quote_from_row(row: &AnyRow) -> Result<QuoteRecord, DbError> {
    let state = text(row, "status")?;
    Ok(QuoteRecord {
        id: text(row, "id")?,
        tenant: text(row, "tenant_id")?,
        lead_id: text(row, "lead_id")?,
        shop_id: text(row, "shop_id")?,
        vin: text(row, "vin")?,
        version: small(row, "version")?,
        state: QuoteState::parse(&state)
            .ok_or_else(|| DbError::Corrupt(format!("quote status {state:?}")))?,
        body: json(row, "body")?,
        accepted_option: text(row, "accepted_option")?,
        decline_reason: text(row, "decline_reason")?,
        sent_ms: int(row, "sent_ms")?,
        link_expires_ms: int(row, "link_expires_ms")?,
        link_nonce: text(row, "link_nonce")?,
        created_ms: int(row, "created_ms")?,
        updated_ms: int(row, "updated_ms")?,
    })
}

pub(crate) async fn insert_quote(
    conn: &mut AnyConnection,
    tenant: &str,
    lead: &str,
    id: &str,
    shop: &str,
    body: &QuoteBody,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO quotes (id, tenant_id, lead_id, shop_id, version, status, body, created_ms, updated_ms)
         VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $7)",
    )
    .bind(id)
    .bind(tenant)
    .bind(lead)
    .bind(shop)
    .bind(QuoteState::Draft.name())
    .bind(to_json(body))
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn quote_in(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
) -> Result<QuoteRecord, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {QUOTE_COLUMNS} FROM quotes q JOIN leads l ON l.id = q.lead_id
         WHERE q.tenant_id = $1 AND q.id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| DbError::NotFound(format!("quote {id:?}")))?;
    quote_from_row(&row)
}

/// Why a quote in its state cannot take an action.
fn refuse(quote: &QuoteRecord, action: &str) -> DbError {
    DbError::Precondition(format!(
        "quote {} is {}; it cannot be {action}",
        quote.id,
        quote.state.name()
    ))
}

impl Db {
    pub async fn quote(&self, tenant: &str, id: &str) -> Result<QuoteRecord, DbError> {
        let mut conn = self.pool.acquire().await?;
        quote_in(&mut conn, tenant, id).await
    }

    /// A quote by id alone, for the owner's page once its signed link was checked.
    pub async fn quote_for_link(&self, id: &str) -> Result<QuoteRecord, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {QUOTE_COLUMNS} FROM quotes q JOIN leads l ON l.id = q.lead_id WHERE q.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("quote {id:?}")))?;
        quote_from_row(&row)
    }

    /// Replaces a draft or sent quote's options (a sent quote goes back to draft: its link
    /// stops working until it is sent again). `version` must be the current one.
    pub async fn revise_quote(
        &self,
        tenant: &str,
        id: &str,
        version: u32,
        body: &QuoteBody,
        actor: &str,
        now_ms: i64,
    ) -> Result<QuoteRecord, DbError> {
        let mut tx = self.pool.begin().await?;
        let quote = quote_in(&mut tx, tenant, id).await?;
        if !matches!(quote.state, QuoteState::Draft | QuoteState::Sent) {
            return Err(refuse(&quote, "revised"));
        }
        let done = sqlx::query(
            "UPDATE quotes SET body = $3, version = version + 1, status = $4, link_nonce = '',
                 link_expires_ms = 0, updated_ms = $5
             WHERE tenant_id = $1 AND id = $2 AND version = $6",
        )
        .bind(tenant)
        .bind(id)
        .bind(to_json(body))
        .bind(QuoteState::Draft.name())
        .bind(now_ms)
        .bind(i64::from(version))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::Conflict(format!(
                "quote {id} is at version {}, not {version}: someone revised it meanwhile; read it again",
                quote.version
            )));
        }
        record(
            &mut tx,
            tenant,
            &quote.lead_id,
            now_ms,
            actor,
            "quote_revised",
            &format!("version {}", version + 1),
        )
        .await?;
        let quote = quote_in(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(quote)
    }

    /// Marks a quote sent with its link's nonce and expiry; the lead becomes quoted.
    pub async fn send_quote(
        &self,
        tenant: &str,
        id: &str,
        nonce: &str,
        expires_ms: i64,
        actor: &str,
        now_ms: i64,
    ) -> Result<QuoteRecord, DbError> {
        let mut tx = self.pool.begin().await?;
        let quote = quote_in(&mut tx, tenant, id).await?;
        if !matches!(quote.state, QuoteState::Draft | QuoteState::Sent) {
            return Err(refuse(&quote, "sent"));
        }
        sqlx::query(
            "UPDATE quotes SET status = $3, link_nonce = $4, link_expires_ms = $5, sent_ms = $6,
                 updated_ms = $6 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(QuoteState::Sent.name())
        .bind(nonce)
        .bind(expires_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        record(
            &mut tx,
            tenant,
            &quote.lead_id,
            now_ms,
            actor,
            "quote_sent",
            &format!("version {}", quote.version),
        )
        .await?;
        advance(
            &mut tx,
            tenant,
            &quote.lead_id,
            Stage::Quoted,
            now_ms,
            actor,
        )
        .await?;
        let quote = quote_in(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(quote)
    }

    /// The owner (or an advisor for them) accepts one option; the lead becomes accepted.
    pub async fn accept_quote(
        &self,
        tenant: &str,
        id: &str,
        option: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<QuoteRecord, DbError> {
        self.answer(tenant, id, QuoteState::Accepted, option, actor, now_ms)
            .await
    }

    /// The owner declines; the lead stays open for the advisor to follow up or close.
    pub async fn decline_quote(
        &self,
        tenant: &str,
        id: &str,
        reason: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<QuoteRecord, DbError> {
        self.answer(
            tenant,
            id,
            QuoteState::Declined,
            reason.trim(),
            actor,
            now_ms,
        )
        .await
    }

    /// Records the owner's answer: `Accepted` with the option's id, or `Declined` with the
    /// reason. Giving the same answer again changes nothing; a draft or sent quote is the only
    /// kind that takes one.
    async fn answer(
        &self,
        tenant: &str,
        id: &str,
        to: QuoteState,
        value: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<QuoteRecord, DbError> {
        let (column, action) = match to {
            QuoteState::Accepted => ("accepted_option", "accepted"),
            _ => ("decline_reason", "declined"),
        };
        let mut tx = self.pool.begin().await?;
        let quote = quote_in(&mut tx, tenant, id).await?;
        let same = match to {
            QuoteState::Accepted => quote.accepted_option == value,
            _ => true,
        };
        if quote.state == to && same {
            return Ok(quote);
        }
        if !matches!(quote.state, QuoteState::Draft | QuoteState::Sent) {
            return Err(refuse(&quote, action));
        }
        if to == QuoteState::Accepted && quote.body.option(value).is_none() {
            return Err(DbError::Invalid(format!(
                "quote {id} has no option {value:?}"
            )));
        }
        sqlx::query(&format!(
            "UPDATE quotes SET status = $3, {column} = $4, updated_ms = $5
             WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .bind(to.name())
        .bind(value)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let lead = &quote.lead_id;
        record(
            &mut tx,
            tenant,
            lead,
            now_ms,
            actor,
            &format!("quote_{action}"),
            value,
        )
        .await?;
        if to == QuoteState::Accepted {
            advance(&mut tx, tenant, lead, Stage::Accepted, now_ms, actor).await?;
        } else {
            touch(&mut tx, tenant, lead, now_ms).await?;
        }
        let quote = quote_in(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(quote)
    }

    /// Start times of the shop's appointments in `[from, to)`, one per booked bay.
    pub async fn booked_starts(
        &self,
        tenant: &str,
        shop: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<i64>, DbError> {
        let rows = sqlx::query(
            "SELECT start_ms FROM appointments WHERE tenant_id = $1 AND shop_id = $2
             AND start_ms >= $3 AND start_ms < $4",
        )
        .bind(tenant)
        .bind(shop)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| int(r, "start_ms")).collect()
    }

    pub async fn appointment_for(
        &self,
        tenant: &str,
        quote: &str,
    ) -> Result<Option<Appointment>, DbError> {
        let row = sqlx::query(
            "SELECT id, shop_id, lead_id, quote_id, start_ms, end_ms, bay FROM appointments
             WHERE tenant_id = $1 AND quote_id = $2",
        )
        .bind(tenant)
        .bind(quote)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Appointment {
                id: text(&r, "id")?,
                shop_id: text(&r, "shop_id")?,
                lead_id: text(&r, "lead_id")?,
                quote_id: text(&r, "quote_id")?,
                start_ms: int(&r, "start_ms")?,
                end_ms: int(&r, "end_ms")?,
                bay: small(&r, "bay")?,
            })
        })
        .transpose()
    }

    /// Books an accepted quote into a free bay at `start_ms` (the caller checked it is one of
    /// the shop's slot starts). Refused when every bay is taken; a second booking of the same
    /// quote returns the first.
    #[allow(clippy::too_many_arguments)]
    pub async fn book(
        &self,
        tenant: &str,
        quote_id: &str,
        id: &str,
        start_ms: i64,
        end_ms: i64,
        bays: u32,
        actor: &str,
        now_ms: i64,
    ) -> Result<Appointment, DbError> {
        for _ in 0..5 {
            match self
                .try_book(tenant, quote_id, id, start_ms, end_ms, bays, actor, now_ms)
                .await
            {
                Err(e) if e.is_unique_violation() => continue,
                other => return other,
            }
        }
        Err(DbError::Conflict(
            "the slot is being booked by someone else; pick it again".into(),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn try_book(
        &self,
        tenant: &str,
        quote_id: &str,
        id: &str,
        start_ms: i64,
        end_ms: i64,
        bays: u32,
        actor: &str,
        now_ms: i64,
    ) -> Result<Appointment, DbError> {
        if let Some(existing) = self.appointment_for(tenant, quote_id).await? {
            return Ok(existing);
        }
        let mut tx = self.pool.begin().await?;
        let quote = quote_in(&mut tx, tenant, quote_id).await?;
        if quote.state != QuoteState::Accepted {
            return Err(DbError::Precondition(format!(
                "quote {quote_id} is {}; only an accepted quote is booked",
                quote.state.name()
            )));
        }
        let taken = sqlx::query(
            "SELECT bay FROM appointments WHERE tenant_id = $1 AND shop_id = $2 AND start_ms = $3",
        )
        .bind(tenant)
        .bind(&quote.shop_id)
        .bind(start_ms)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| small(r, "bay"))
        .collect::<Result<Vec<u32>, _>>()?;
        let bay = (1..=bays)
            .find(|b| !taken.contains(b))
            .ok_or_else(|| DbError::Precondition("that slot is full now; pick another".into()))?;
        sqlx::query(
            "INSERT INTO appointments (id, tenant_id, shop_id, lead_id, quote_id, start_ms, end_ms, bay, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(tenant)
        .bind(&quote.shop_id)
        .bind(&quote.lead_id)
        .bind(quote_id)
        .bind(start_ms)
        .bind(end_ms)
        .bind(i64::from(bay))
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        record(
            &mut tx,
            tenant,
            &quote.lead_id,
            now_ms,
            actor,
            "booked",
            &format!("slot {start_ms}, bay {bay}"),
        )
        .await?;
        advance(
            &mut tx,
            tenant,
            &quote.lead_id,
            Stage::Booked,
            now_ms,
            actor,
        )
        .await?;
        tx.commit().await?;
        Ok(Appointment {
            id: id.to_owned(),
            shop_id: quote.shop_id,
            lead_id: quote.lead_id,
            quote_id: quote_id.to_owned(),
            start_ms,
            end_ms,
            bay,
        })
    }
}
