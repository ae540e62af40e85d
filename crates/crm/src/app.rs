//! The CRM's operations, each checked against the caller's token: what the gRPC API and the
//! owner's quote page both call. Routing a lead to a shop, pricing it, sending the owner's
//! link and booking happen here; rows are kept by [`crate::db`], prices computed by
//! [`crate::pricing`] and [`crate::quote`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use crate::events::LeadChange;

use crate::auth::{self, Action, Principal, PrincipalCache};
use crate::catalog::{LaborGuide, PartsCatalog};
use crate::data::Data;
use crate::db::{
    Appointment, CatalogFile, CatalogKind, Created, Db, DbError, Lead, LeadFault, NewLead,
    QuoteRecord, QuoteState, Reason, ShopRecord, problem,
};
use crate::knowledge;
use crate::link::{Claims, LinkError, LinkKey};
use crate::metrics::bump;
use crate::pricing::{self, PriceBook, Vehicle};
use crate::quote::{OptionDraft, QuoteBody, QuoteError, price_options};
use crate::slots::Slot;

/// How long a looked-up token is trusted without asking the database again (see
/// [`PrincipalCache`]), unless [`Crm::with_token_cache`] says otherwise.
pub const DEFAULT_TOKEN_CACHE: Duration = Duration::from_secs(5);

/// Tokens kept in that cache at most.
const TOKEN_CACHE_ENTRIES: usize = 10_000;

/// How long an owner's link works unless the advisor says otherwise.
pub const DEFAULT_LINK_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);
const DAY_MS: i64 = 86_400_000;

/// What went wrong, for the edge to map to a gRPC status or an HTTP page.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Internal(String),
}

impl From<QuoteError> for AppError {
    fn from(e: QuoteError) -> AppError {
        match e {
            QuoteError::Money(m) => AppError::Invalid(format!("amount out of range: {m}")),
            other => AppError::Invalid(other.to_string()),
        }
    }
}

/// A lead to raise, as a caller asks for it.
#[derive(Debug, Clone, Default)]
pub struct LeadRequest {
    pub key: String,
    pub vin: String,
    pub device_id: String,
    pub reason: Option<Reason>,
    pub codes: Vec<String>,
    pub ecu: u32,
    pub detected_ms: i64,
}

/// Why an owner's link does not open a quote.
#[derive(Debug, thiserror::Error)]
pub enum LinkProblem {
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The quote was sent again or revised: this link was retired.
    #[error("a newer link replaced this one")]
    Replaced,
    #[error(transparent)]
    App(#[from] AppError),
}

/// What the owner's page shows.
#[derive(Debug, Clone)]
pub struct OwnerView {
    pub quote: QuoteRecord,
    pub shop: ShopRecord,
    pub appointment: Option<Appointment>,
    pub expires_ms: i64,
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The labor guide and parts catalog a tenant's quotes are priced from.
#[derive(Debug)]
pub struct TenantCatalog {
    pub labor: LaborGuide,
    pub parts: PartsCatalog,
}

pub struct Crm {
    db: Db,
    data: Arc<Data>,
    /// Per tenant: the catalog stamp it was loaded at, and the catalog.
    books: Mutex<HashMap<String, (i64, Arc<TenantCatalog>)>>,
    events: crate::events::Sender,
    pub metrics: crate::metrics::Metrics,
    links: LinkKey,
    public_url: String,
    clock: Clock,
    principals: PrincipalCache,
}

impl std::fmt::Debug for Crm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crm")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

pub fn system_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn this_year(now_ms: i64) -> u16 {
    // Days since 1970 to a year, good to the day; the model year only needs the year.
    (1970 + now_ms.div_euclid(DAY_MS) * 400 / 146_097) as u16
}

impl Crm {
    /// `public_url` is where owners reach the quote page (`https://quotes.example.com`).
    pub fn new(db: Db, data: Arc<Data>, links: LinkKey, public_url: &str) -> Crm {
        Crm {
            db,
            data,
            books: Mutex::new(HashMap::new()),
            events: broadcast::channel(4096).0,
            metrics: crate::metrics::Metrics::default(),
            links,
            public_url: public_url.trim_end_matches('/').to_owned(),
            clock: Arc::new(system_clock),
            principals: PrincipalCache::new(DEFAULT_TOKEN_CACHE, TOKEN_CACHE_ENTRIES),
        }
    }

    /// How long a looked-up token is trusted before the database is asked again; zero asks it
    /// on every call.
    pub fn with_token_cache(mut self, ttl: Duration) -> Crm {
        self.principals = PrincipalCache::new(ttl, TOKEN_CACHE_ENTRIES);
        self
    }

    /// Revokes a token: it stops working on this instance at once, and on others within their
    /// token cache's time.
    pub async fn revoke_token(&self, tenant: &str, token_id: &str) -> Result<(), AppError> {
        self.db.revoke_token(tenant, token_id, self.now()).await?;
        self.principals.forget(token_id);
        Ok(())
    }

    /// Replaces the clock (tests move time instead of waiting).
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Crm {
        self.clock = Arc::new(clock);
        self
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Checks a bearer token (the `authorization` header's value) and the role's right to
    /// `action`.
    pub async fn authorize(
        &self,
        header: Option<&str>,
        action: Action,
    ) -> Result<Principal, AppError> {
        let result = self.check_token(header, action).await;
        if matches!(
            result,
            Err(AppError::Unauthenticated(_) | AppError::Forbidden(_))
        ) {
            bump(&self.metrics.auth_failures);
        }
        result
    }

    async fn check_token(
        &self,
        header: Option<&str>,
        action: Action,
    ) -> Result<Principal, AppError> {
        let token = auth::bearer(header).map_err(|m| AppError::Unauthenticated(m.to_owned()))?;
        let hash = auth::token_hash(token);
        let now = self.now();
        let who = match self.principals.get(&hash, now) {
            Some(who) => who,
            None => {
                let who = self.db.principal(&hash, now).await?.ok_or_else(|| {
                    AppError::Unauthenticated("the token is unknown, revoked or expired".into())
                })?;
                self.principals.put(&hash, &who, now);
                who
            }
        };
        if !who.role.may(action) {
            return Err(AppError::Forbidden(format!(
                "a {} token may not {action:?}",
                who.role
            )));
        }
        Ok(who)
    }

    /// New and changed leads of every tenant; the caller filters by its own.
    pub fn subscribe(&self) -> broadcast::Receiver<(String, LeadChange)> {
        self.events.subscribe()
    }

    async fn publish(&self, tenant: &str, created: bool, lead: Lead) {
        crate::events::announce(&self.db, &self.events, tenant, created, lead).await;
    }

    async fn publish_lead(&self, tenant: &str, lead_id: &str) {
        crate::events::announce_changed(&self.db, &self.events, tenant, lead_id).await;
    }

    /// Starts relaying lead changes made by other replicas (PostgreSQL) to this process's
    /// watchers, until `shutdown`.
    pub async fn relay_changes(&self, shutdown: CancellationToken) -> Result<(), AppError> {
        crate::events::relay(self.db.clone(), self.events.clone(), shutdown).await?;
        Ok(())
    }

    fn id(prefix: &str) -> Result<String, AppError> {
        auth::new_id(prefix).map_err(|e| AppError::Internal(format!("no randomness: {e}")))
    }

    /// The tenant's price book: its imported catalog, else the shipped one. Cached until the
    /// tenant imports again.
    async fn catalog_of(&self, tenant: &str) -> Result<Arc<TenantCatalog>, AppError> {
        let stamp = self.db.catalog_stamp(tenant).await?;
        if let Some((at, book)) = self
            .books
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            && *at == stamp
        {
            return Ok(book.clone());
        }
        let labor = match self.db.catalog(tenant, CatalogKind::Labor).await? {
            Some(f) => LaborGuide::parse(&f.file_name, &f.body)
                .map_err(|e| AppError::Internal(format!("stored labor guide: {e}")))?,
            None => self.data.labor.clone(),
        };
        let parts = match self.db.catalog(tenant, CatalogKind::Parts).await? {
            Some(f) => PartsCatalog::parse(&f.file_name, &f.body)
                .map_err(|e| AppError::Internal(format!("stored parts catalog: {e}")))?,
            None => self.data.parts.clone(),
        };
        let book = Arc::new(TenantCatalog { labor, parts });
        self.books
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), (stamp, book.clone()));
        Ok(book)
    }

    /// Raises a lead (or finds the one this key or this open problem already made), routed to
    /// the vehicle's home shop or the tenant's default shop and priced there.
    pub async fn create_lead(
        &self,
        who: &Principal,
        req: LeadRequest,
    ) -> Result<Created, AppError> {
        let key = req.key.trim();
        if key.is_empty() || key.len() > 200 {
            return Err(AppError::Invalid(
                "idempotency_key must be 1 to 200 characters".into(),
            ));
        }
        let vin = crate::vehicle::vin(&req.vin).map_err(AppError::Invalid)?;
        let reason = req
            .reason
            .ok_or_else(|| AppError::Invalid("reason is required".into()))?;
        let mut codes: Vec<String> = Vec::new();
        for code in &req.codes {
            let code = code.trim().to_ascii_uppercase();
            if !knowledge::is_code(&code) {
                return Err(AppError::Invalid(format!(
                    "{code:?} is not a trouble code (like P0420)"
                )));
            }
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        if codes.is_empty() && matches!(reason, Reason::ConfirmedDtc | Reason::PendingDtc) {
            return Err(AppError::Invalid("a DTC lead needs its code".into()));
        }
        // A key seen before gets its lead back at once: a retry (the ingest resends after a
        // lost answer) costs one query, not the routing and pricing a new lead needs. The
        // transaction below still decides for concurrent first calls.
        if let Some(lead) = self.db.lead_for_key(&who.tenant, key).await? {
            return Ok(Created {
                lead,
                created: false,
                updated: false,
            });
        }
        let known = match self.db.vehicle(&who.tenant, &vin).await {
            Ok(v) => Some(v),
            Err(DbError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let home = known.as_ref().map_or("", |v| v.home_shop_id.as_str());
        let shop = self.db.route(&who.tenant, home).await?;
        let pricing_shop = shop.pricing();
        let now = self.now();
        let vehicle = match known {
            Some(v) if !v.make.is_empty() => Vehicle {
                make: Some(v.make),
                model_year: u16::try_from(v.model_year).ok().filter(|y| *y > 0),
            },
            _ => self.data.makes.vehicle(&vin, this_year(now)),
        };
        let book = self.catalog_of(&who.tenant).await?;
        let code_refs: Vec<&str> = codes.iter().map(String::as_str).collect();
        let quote = if codes.is_empty() {
            QuoteBody::diagnosis_only(
                &pricing_shop,
                "The check-engine lamp is on but no code was read: a technician diagnoses the \
                 cause before any repair is quoted.",
            )?
        } else {
            let price_book = PriceBook {
                knowledge: &self.data.knowledge,
                labor: &book.labor,
                parts: &book.parts,
            };
            let pq = pricing::quote(price_book, &pricing_shop, &vehicle, &code_refs)
                .map_err(|e| AppError::Invalid(format!("cannot price: {e}")))?;
            QuoteBody::from_prequote(&pq, &pricing_shop)?
        };
        let faults = codes
            .iter()
            .map(|code| {
                let info = self.data.knowledge.code(code);
                LeadFault {
                    code: code.clone(),
                    ecu: req.ecu,
                    description: info.map(|i| i.description.clone()).unwrap_or_default(),
                    system: info.map(|i| i.system.clone()).unwrap_or_default(),
                    severity: info.map(|i| i.severity),
                    needs_diagnosis: info.is_none(),
                }
            })
            .collect();
        let new = NewLead {
            key: key.to_owned(),
            vin: vin.clone(),
            device_id: req.device_id.trim().to_owned(),
            reason,
            faults,
            problem: problem(reason, &code_refs, key),
            shop_id: shop.id.clone(),
            detected_ms: if req.detected_ms > 0 {
                req.detected_ms
            } else {
                now
            },
            quote,
            actor: who.actor(),
        };
        let created = self
            .db
            .create_lead(&who.tenant, &new, &Self::id("ld_")?, &Self::id("qt_")?, now)
            .await?;
        if created.created {
            bump(&self.metrics.leads_created);
        } else if created.updated {
            bump(&self.metrics.leads_merged);
        }
        if created.created || created.updated {
            self.publish(&who.tenant, created.created, created.lead.clone())
                .await;
        }
        Ok(created)
    }

    pub async fn assign(&self, who: &Principal, id: &str, advisor: &str) -> Result<Lead, AppError> {
        let lead = self
            .db
            .assign(&who.tenant, id, advisor, &who.actor(), self.now())
            .await?;
        bump(&self.metrics.lead_changes);
        self.publish(&who.tenant, false, lead.clone()).await;
        Ok(lead)
    }

    pub async fn set_status(
        &self,
        who: &Principal,
        id: &str,
        to: crate::lifecycle::Stage,
        reason: &str,
    ) -> Result<Lead, AppError> {
        let before = self.db.lead(&who.tenant, id).await?;
        let lead = self
            .db
            .set_status(&who.tenant, id, to, reason, &who.actor(), self.now())
            .await?;
        if lead.status != before.status {
            bump(&self.metrics.lead_changes);
            self.publish(&who.tenant, false, lead.clone()).await;
        }
        Ok(lead)
    }

    pub async fn add_note(&self, who: &Principal, id: &str, text: &str) -> Result<Lead, AppError> {
        let lead = self
            .db
            .add_note(&who.tenant, id, text, &who.actor(), self.now())
            .await?;
        bump(&self.metrics.lead_changes);
        self.publish(&who.tenant, false, lead.clone()).await;
        Ok(lead)
    }

    /// Replaces a quote's options with the advisor's, priced by the shop's rules.
    pub async fn revise_quote(
        &self,
        who: &Principal,
        id: &str,
        version: u32,
        drafts: Vec<OptionDraft>,
        assumptions: Vec<String>,
    ) -> Result<QuoteRecord, AppError> {
        let quote = self.db.quote(&who.tenant, id).await?;
        let shop = self.db.shop(&who.tenant, &quote.shop_id).await?;
        let mut body = quote.body.clone();
        body.options = price_options(&shop.pricing(), drafts)?;
        if !assumptions.is_empty() {
            body.assumptions = assumptions;
        }
        let quote = self
            .db
            .revise_quote(&who.tenant, id, version, &body, &who.actor(), self.now())
            .await?;
        self.publish_lead(&who.tenant, &quote.lead_id).await;
        Ok(quote)
    }

    /// Makes the owner's link (a new one each time; older links stop working).
    pub async fn send_quote(
        &self,
        who: &Principal,
        id: &str,
        valid: Duration,
    ) -> Result<(QuoteRecord, String), AppError> {
        let now = self.now();
        let expires_ms = now + i64::try_from(valid.as_millis()).unwrap_or(i64::MAX / 2);
        let nonce = Self::id("")?;
        let quote = self
            .db
            .send_quote(&who.tenant, id, &nonce, expires_ms, &who.actor(), now)
            .await?;
        let url = self.link_url(&quote);
        bump(&self.metrics.quotes_sent);
        self.publish_lead(&who.tenant, &quote.lead_id).await;
        Ok((quote, url))
    }

    /// The owner's link for a sent quote.
    pub fn link_url(&self, quote: &QuoteRecord) -> String {
        let token = self.links.sign(&Claims {
            quote_id: quote.id.clone(),
            expires_ms: quote.link_expires_ms,
            nonce: quote.link_nonce.clone(),
        });
        format!("{}/q/{token}", self.public_url)
    }

    pub async fn accept_quote(
        &self,
        tenant: &str,
        actor: &str,
        id: &str,
        option: &str,
    ) -> Result<QuoteRecord, AppError> {
        let quote = self
            .db
            .accept_quote(tenant, id, option, actor, self.now())
            .await?;
        bump(&self.metrics.quotes_accepted);
        self.publish_lead(tenant, &quote.lead_id).await;
        Ok(quote)
    }

    pub async fn decline_quote(
        &self,
        tenant: &str,
        actor: &str,
        id: &str,
        reason: &str,
    ) -> Result<QuoteRecord, AppError> {
        let quote = self
            .db
            .decline_quote(tenant, id, reason, actor, self.now())
            .await?;
        bump(&self.metrics.quotes_declined);
        self.publish_lead(tenant, &quote.lead_id).await;
        Ok(quote)
    }

    /// Free slots at a shop, by default from now for 14 days.
    pub async fn slots(
        &self,
        tenant: &str,
        shop_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Slot>, AppError> {
        let shop = self.db.shop(tenant, shop_id).await?;
        let now = self.now();
        let from = if from_ms > 0 { from_ms } else { now };
        let to = if to_ms > 0 { to_ms } else { from + 14 * DAY_MS };
        if to <= from || to - from > 92 * DAY_MS {
            return Err(AppError::Invalid(
                "the slot range must be positive and at most 92 days".into(),
            ));
        }
        let booked = self.db.booked_starts(tenant, shop_id, from, to).await?;
        Ok(shop.calendar().free_slots(from, to, now, &booked))
    }

    /// Books an accepted quote at the start of a free slot.
    pub async fn book(
        &self,
        tenant: &str,
        actor: &str,
        quote_id: &str,
        start_ms: i64,
    ) -> Result<Appointment, AppError> {
        let quote = self.db.quote(tenant, quote_id).await?;
        let shop = self.db.shop(tenant, &quote.shop_id).await?;
        let calendar = shop.calendar();
        if !calendar.is_slot_start(start_ms) || start_ms < self.now() {
            return Err(AppError::Invalid(
                "that time is not one of the shop's free slots".into(),
            ));
        }
        let end_ms = start_ms + i64::from(calendar.slot_minutes) * 60_000;
        let appointment = self
            .db
            .book(
                tenant,
                quote_id,
                &Self::id("ap_")?,
                start_ms,
                end_ms,
                calendar.bays,
                actor,
                self.now(),
            )
            .await?;
        bump(&self.metrics.appointments);
        self.publish_lead(tenant, &quote.lead_id).await;
        Ok(appointment)
    }

    /// Opens an owner's link: checks its signature, expiry and that it is the quote's current
    /// link.
    pub async fn open_link(&self, token: &str) -> Result<OwnerView, LinkProblem> {
        let result = self.check_link(token).await;
        let m = &self.metrics;
        bump(match &result {
            Ok(_) => &m.links_opened,
            Err(LinkProblem::Link(LinkError::Expired { .. })) => &m.links_expired,
            Err(LinkProblem::Replaced) => &m.links_replaced,
            Err(LinkProblem::Link(LinkError::Tampered)) => &m.links_damaged,
            Err(LinkProblem::App(AppError::Db(DbError::NotFound(_)))) => &m.links_damaged,
            Err(LinkProblem::App(_)) => return result,
        });
        result
    }

    async fn check_link(&self, token: &str) -> Result<OwnerView, LinkProblem> {
        let claims = self.links.verify(token, self.now())?;
        let quote = self
            .db
            .quote_for_link(&claims.quote_id)
            .await
            .map_err(AppError::from)?;
        if quote.link_nonce != claims.nonce || quote.state == QuoteState::Draft {
            return Err(LinkProblem::Replaced);
        }
        let shop = self
            .db
            .shop(&quote.tenant, &quote.shop_id)
            .await
            .map_err(AppError::from)?;
        let appointment = self
            .db
            .appointment_for(&quote.tenant, &quote.id)
            .await
            .map_err(AppError::from)?;
        Ok(OwnerView {
            quote,
            shop,
            appointment,
            expires_ms: claims.expires_ms,
        })
    }

    /// "Shop name on phone" for a quote, for the page that says its link no longer works.
    pub async fn shop_contact(&self, quote_id: &str) -> Option<String> {
        let quote = self.db.quote_for_link(quote_id).await.ok()?;
        let shop = self.db.shop(&quote.tenant, &quote.shop_id).await.ok()?;
        Some(if shop.phone.is_empty() {
            shop.name
        } else {
            format!("{} on {}", shop.name, shop.phone)
        })
    }

    /// The quote a correctly signed link names, whatever its expiry or nonce.
    pub fn link_quote_id(&self, token: &str) -> Option<String> {
        match self.links.verify(token, i64::MIN) {
            Ok(claims) => Some(claims.quote_id),
            Err(LinkError::Expired { quote_id }) => Some(quote_id),
            Err(LinkError::Tampered) => None,
        }
    }

    /// Replaces the tenant's parts catalog or labor guide with a checked CSV file.
    pub async fn import(
        &self,
        who: &Principal,
        kind: CatalogKind,
        file_name: &str,
        body: String,
    ) -> Result<u64, AppError> {
        let rows = match kind {
            CatalogKind::Parts => PartsCatalog::parse(file_name, &body).map(|c| c.len()),
            CatalogKind::Labor => LaborGuide::parse(file_name, &body).map(|g| g.len()),
        }
        .map_err(|e| AppError::Invalid(e.to_string()))? as u64;
        let file = CatalogFile {
            file_name: file_name.to_owned(),
            body,
            rows,
            imported_ms: self.now(),
            imported_by: who.actor(),
        };
        self.db.put_catalog(&who.tenant, kind, &file).await?;
        Ok(rows)
    }

    /// The tenant's price book, for listing.
    pub async fn price_book(&self, who: &Principal) -> Result<Arc<TenantCatalog>, AppError> {
        self.catalog_of(&who.tenant).await
    }
}
