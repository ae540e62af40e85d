//! New and changed leads, for `WatchLeads`, across every CRM replica.
//!
//! On PostgreSQL a change is announced with `NOTIFY telltale_crm_leads` after its transaction
//! committed; every replica (the one that made the change too) listens, reads the lead and
//! hands it to its own watchers. So an advisor watching through one replica sees a lead the
//! ingest raised through another. On SQLite (one process) the change goes straight to the
//! watchers. A listener that loses its connection reconnects; what was announced meanwhile
//! is not replayed (a watcher that must not miss anything lists the leads after reconnecting).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::db::{Backend, Db, DbError, Lead};

const CHANNEL: &str = "telltale_crm_leads";

/// A lead that was created or changed.
#[derive(Debug, Clone)]
pub struct LeadChange {
    pub created: bool,
    pub lead: Lead,
}

/// The watchers of one process, with the tenant each change belongs to.
pub type Sender = broadcast::Sender<(String, LeadChange)>;

#[derive(Debug, Serialize, Deserialize)]
struct Note {
    tenant: String,
    lead: String,
    created: bool,
}

/// Tells every replica (PostgreSQL `NOTIFY`); false on SQLite, or when that failed.
async fn notify_replicas(db: &Db, tenant: &str, lead: &str, created: bool) -> bool {
    if db.backend() != Backend::Postgres {
        return false;
    }
    let note = Note {
        tenant: tenant.to_owned(),
        lead: lead.to_owned(),
        created,
    };
    let payload = serde_json::to_string(&note).unwrap_or_default();
    match db.notify(CHANNEL, &payload).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(cause = %e, lead, "cannot announce a lead change to other replicas");
            false
        }
    }
}

/// Announces a change: to every replica on PostgreSQL (each reads the lead itself), to this
/// process's watchers on SQLite (and here too when the announcement fails, so local watchers
/// still see it).
pub(crate) async fn announce(db: &Db, watchers: &Sender, tenant: &str, created: bool, lead: Lead) {
    if !notify_replicas(db, tenant, &lead.id, created).await {
        // No watcher is fine.
        let _ = watchers.send((tenant.to_owned(), LeadChange { created, lead }));
    }
}

/// As [`announce`] for a lead known by id (changed by a quote): on PostgreSQL it is not read
/// here, only by the listeners.
pub(crate) async fn announce_changed(db: &Db, watchers: &Sender, tenant: &str, lead: &str) {
    if notify_replicas(db, tenant, lead, false).await {
        return;
    }
    if let Ok(lead) = db.lead(tenant, lead).await {
        let _ = watchers.send((
            tenant.to_owned(),
            LeadChange {
                created: false,
                lead,
            },
        ));
    }
}

/// Listens for announcements (PostgreSQL only) and hands each changed lead to this process's
/// watchers, until `shutdown`. Returns once listening, so a change made after it returns is
/// seen.
pub(crate) async fn relay(
    db: Db,
    watchers: Sender,
    shutdown: CancellationToken,
) -> Result<(), DbError> {
    if db.backend() != Backend::Postgres {
        return Ok(());
    }
    let mut listener = PgListener::connect(db.url()).await?;
    listener.listen(CHANNEL).await?;
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                n = listener.recv() => n,
            };
            let note = match next {
                Ok(n) => serde_json::from_str::<Note>(n.payload()),
                Err(e) => {
                    // recv() reconnects on its next call.
                    tracing::warn!(cause = %e, "lead-change listener lost its connection; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Ok(note) = note else {
                tracing::warn!("unreadable lead-change announcement ignored");
                continue;
            };
            match db.lead(&note.tenant, &note.lead).await {
                Ok(lead) => {
                    let _ = watchers.send((
                        note.tenant,
                        LeadChange {
                            created: note.created,
                            lead,
                        },
                    ));
                }
                Err(e) => {
                    tracing::warn!(cause = %e, lead = %note.lead, "announced lead not readable")
                }
            }
        }
    });
    Ok(())
}
