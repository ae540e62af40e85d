//! The CRM's numbers for operators (Prometheus text on `--metrics-listen`): what the shops'
//! pipeline is doing and what goes wrong.

use std::sync::atomic::{AtomicU64, Ordering};

use telltale_service::http::Exposition;

/// Database failures seen at the edges (gRPC and the quote page), process-wide.
pub static DATABASE_ERRORS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Default)]
pub struct Metrics {
    pub leads_created: AtomicU64,
    /// A report of an open problem that updated its lead instead of making one.
    pub leads_merged: AtomicU64,
    pub lead_changes: AtomicU64,
    pub quotes_sent: AtomicU64,
    pub quotes_accepted: AtomicU64,
    pub quotes_declined: AtomicU64,
    pub appointments: AtomicU64,
    pub auth_failures: AtomicU64,
    pub links_opened: AtomicU64,
    pub links_expired: AtomicU64,
    pub links_replaced: AtomicU64,
    pub links_damaged: AtomicU64,
    /// `WatchLeads` streams open now.
    pub watchers: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = Exposition::new("telltale_crm_");
        out.family(
            "leads_created_total",
            "Leads created.",
            "counter",
            &[("", g(&self.leads_created))],
        );
        out.family(
            "leads_merged_total",
            "Reports of an open problem that updated its lead instead of making another.",
            "counter",
            &[("", g(&self.leads_merged))],
        );
        out.family(
            "lead_changes_total",
            "Assignments, status changes and notes.",
            "counter",
            &[("", g(&self.lead_changes))],
        );
        out.family(
            "quotes_total",
            "Quotes sent to owners and the owners' answers.",
            "counter",
            &[
                ("{event=\"sent\"}", g(&self.quotes_sent)),
                ("{event=\"accepted\"}", g(&self.quotes_accepted)),
                ("{event=\"declined\"}", g(&self.quotes_declined)),
            ],
        );
        out.family(
            "appointments_total",
            "Appointments booked.",
            "counter",
            &[("", g(&self.appointments))],
        );
        out.family(
            "auth_failures_total",
            "Calls refused for a missing, unknown, expired or revoked token or a role without the right.",
            "counter",
            &[("", g(&self.auth_failures))],
        );
        out.family(
            "quote_links_total",
            "Owners' quote links opened, and refused by why.",
            "counter",
            &[
                ("{result=\"opened\"}", g(&self.links_opened)),
                ("{result=\"expired\"}", g(&self.links_expired)),
                ("{result=\"replaced\"}", g(&self.links_replaced)),
                ("{result=\"damaged\"}", g(&self.links_damaged)),
            ],
        );
        out.family(
            "watchers",
            "WatchLeads streams open.",
            "gauge",
            &[("", g(&self.watchers))],
        );
        out.family(
            "database_errors_total",
            "Database failures answered with UNAVAILABLE or a try-again page.",
            "counter",
            &[("", g(&DATABASE_ERRORS))],
        );
        out.finish()
    }
}
