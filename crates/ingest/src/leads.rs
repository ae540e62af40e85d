//! The lead sender: delivers what the store's outbox holds to the CRM's `CreateLead`.
//!
//! The store writes a lead into the outbox in the same transaction as the DTC event that
//! raised it, so a lead exists exactly when its event does. This task reads the due ones,
//! calls `CreateLead` with the row's idempotency key (`vin:code:occurrence`), and marks the
//! row sent only after the CRM answered. A crash between the answer and the mark sends the
//! lead again with the same key, and the CRM returns the lead it already has: none is lost,
//! none doubled. A failed call is kept with its error and retried with back-off (from 1 s,
//! doubling up to `leads.retry_max`); a CRM that is unreachable ends the pass, so an outage
//! costs one attempt per pass rather than one per lead.
//!
//! Several ingest instances may run this at once: the CRM's idempotency makes a lead that two
//! of them send in the same moment one lead.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use telltale_store::{OutboxLead, Store};
use telltale_wire::crm::v1::lead_service_client::LeadServiceClient;
use telltale_wire::crm::v1::{CreateLeadRequest, LeadReason};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::config::CrmSettings;
use crate::metrics::Metrics;

/// Leads taken from the outbox per pass.
const PASS: u32 = 100;
/// The first retry's delay; it doubles per failed attempt.
const RETRY_MIN: Duration = Duration::from_secs(1);

/// The CRM endpoint could not be set up (a bad URL or CA); said at start.
#[derive(Debug, thiserror::Error)]
#[error("leads.crm_url {url:?}: {message}")]
pub struct EndpointError {
    url: String,
    message: String,
}

/// A lazily connecting channel to the CRM: nothing is dialled until the first call, so an
/// ingest starts while the CRM is down.
pub fn channel(s: &CrmSettings) -> Result<Channel, EndpointError> {
    let bad = |e: &dyn std::fmt::Display| EndpointError {
        url: s.url.clone(),
        message: e.to_string(),
    };
    let mut endpoint = Endpoint::from_shared(s.url.clone())
        .map_err(|e| bad(&e))?
        .timeout(s.timeout)
        .connect_timeout(s.timeout.min(Duration::from_secs(5)));
    if s.url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &s.ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| bad(&e))?;
    }
    Ok(endpoint.connect_lazy())
}

/// The `CreateLead` request for one outbox row.
pub fn request(lead: &OutboxLead) -> CreateLeadRequest {
    let reason = match lead.reason.as_str() {
        "confirmed" => LeadReason::ConfirmedDtc,
        "mil_on" => LeadReason::MilOn,
        "pending" => LeadReason::PendingDtc,
        _ => LeadReason::Unspecified,
    };
    // A MIL lead names the confirmed codes lit with it, comma-separated, or `MIL` for none.
    let codes = lead
        .code
        .split(',')
        .filter(|c| !c.is_empty() && *c != "MIL")
        .map(str::to_owned)
        .collect();
    CreateLeadRequest {
        idempotency_key: lead.idempotency_key.clone(),
        vin: lead.vin.clone(),
        device_id: lead.device_id.clone(),
        reason: reason as i32,
        codes,
        ecu: lead.ecu,
        detected_unix_ms: lead.created_at.timestamp_millis(),
    }
}

/// The wait before attempt `attempts + 1`.
pub fn retry_delay(attempts: i32, max: Duration) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    RETRY_MIN.saturating_mul(1 << doublings).min(max)
}

/// Failures that another attempt cannot fix without someone changing the configuration (or
/// the CRM): retried at the longest interval and logged as errors.
fn needs_a_person(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        InvalidArgument | PermissionDenied | Unauthenticated | NotFound | Unimplemented
    )
}

/// Sends due leads until `stop`: at once when `due` is notified (a batch this instance
/// committed wrote leads), and every `poll_interval` otherwise.
pub async fn run(
    store: Store,
    settings: CrmSettings,
    metrics: Arc<Metrics>,
    due: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    let channel = match channel(&settings) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(cause = %e, "lead sender not started; leads stay in the outbox");
            return;
        }
    };
    let mut client = LeadServiceClient::new(channel);
    let token = settings
        .token
        .as_ref()
        .and_then(|t| tonic::metadata::MetadataValue::try_from(format!("Bearer {t}")).ok());
    tracing::info!(crm = %settings.url, "sending leads to the CRM");
    while !stop.is_cancelled() {
        let sent_all = pass(
            &store,
            &mut client,
            token.as_ref(),
            &settings,
            &metrics,
            &stop,
        )
        .await;
        if !sent_all {
            tokio::select! {
                _ = tokio::time::sleep(settings.poll_interval) => {}
                _ = due.notified() => {}
                _ = stop.cancelled() => {}
            }
        }
    }
}

/// One pass over the due leads; true when it sent a full pass and more may be due at once.
async fn pass(
    store: &Store,
    client: &mut LeadServiceClient<Channel>,
    token: Option<&tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    settings: &CrmSettings,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> bool {
    let due = match store.due_leads(Utc::now(), PASS).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(cause = %e, "cannot read the lead outbox");
            return false;
        }
    };
    let full = due.len() == PASS as usize;
    for lead in &due {
        if stop.is_cancelled() {
            return false;
        }
        let mut call = tonic::Request::new(request(lead));
        if let Some(t) = token {
            call.metadata_mut().insert("authorization", t.clone());
        }
        match client.create_lead(call).await {
            Ok(answer) => {
                let answer = answer.into_inner();
                let crm_id = answer.lead.map(|l| l.id).unwrap_or_default();
                if let Err(e) = store.lead_sent(lead.id, Utc::now()).await {
                    // The CRM has it; the next pass sends it again under the same key.
                    tracing::warn!(cause = %e, key = %lead.idempotency_key, "lead delivered but not marked sent");
                    return false;
                }
                metrics.leads_sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(key = %lead.idempotency_key, vin = %lead.vin, code = %lead.code, crm_lead = %crm_id, created = answer.created, "lead delivered to the CRM");
            }
            Err(status) => {
                metrics.lead_send_failures.fetch_add(1, Ordering::Relaxed);
                let attempts = lead.attempts.saturating_add(1);
                let person = needs_a_person(status.code());
                let wait = if person {
                    settings.retry_max
                } else {
                    retry_delay(attempts, settings.retry_max)
                };
                let error = format!("{:?}: {}", status.code(), status.message());
                let retry_at = Utc::now()
                    + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::MAX);
                if let Err(e) = store.lead_failed(lead.id, &error, retry_at).await {
                    tracing::warn!(cause = %e, "cannot record the failed lead attempt");
                }
                if person {
                    tracing::error!(key = %lead.idempotency_key, %error, retry_in_s = wait.as_secs(), "the CRM refused the lead; check leads.crm_url and the token's tenant and role");
                } else {
                    tracing::warn!(key = %lead.idempotency_key, %error, attempts, retry_in_s = wait.as_secs(), "lead not delivered; will retry");
                }
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                ) {
                    // The CRM is down or unreachable: the rest wait for the next pass.
                    return false;
                }
            }
        }
    }
    full
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn lead(code: &str, reason: &str) -> OutboxLead {
        OutboxLead {
            id: 1,
            idempotency_key: format!("VIN1:{code}:1"),
            vin: "VIN1".into(),
            device_id: "dongle-1".into(),
            ecu: 0x7E8,
            code: code.into(),
            reason: reason.into(),
            occurrence: 1,
            created_at: Utc.timestamp_millis_opt(1_700_000_000_000).unwrap(),
            attempts: 0,
        }
    }

    #[test]
    fn requests_carry_the_key_the_codes_and_the_reason() {
        let r = request(&lead("P0420", "confirmed"));
        assert_eq!(r.idempotency_key, "VIN1:P0420:1");
        assert_eq!(r.codes, ["P0420"]);
        assert_eq!(r.reason, LeadReason::ConfirmedDtc as i32);
        assert_eq!((r.ecu, r.detected_unix_ms), (0x7E8, 1_700_000_000_000));
        let r = request(&lead("P0300,P0301", "mil_on"));
        assert_eq!(r.codes, ["P0300", "P0301"]);
        assert_eq!(r.reason, LeadReason::MilOn as i32);
        assert!(request(&lead("MIL", "mil_on")).codes.is_empty());
        assert_eq!(
            request(&lead("P0171", "pending")).reason,
            LeadReason::PendingDtc as i32
        );
    }

    #[test]
    fn retries_back_off_to_the_cap() {
        let max = Duration::from_secs(600);
        assert_eq!(retry_delay(1, max), Duration::from_secs(1));
        assert_eq!(retry_delay(2, max), Duration::from_secs(2));
        assert_eq!(retry_delay(5, max), Duration::from_secs(16));
        assert_eq!(retry_delay(40, max), max);
        assert_eq!(retry_delay(0, max), Duration::from_secs(1));
    }
}
