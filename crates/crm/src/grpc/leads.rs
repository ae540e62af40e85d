//! `LeadService`.

use std::pin::Pin;

use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use telltale_wire::crm::v1 as pb;
use telltale_wire::crm::v1::lead_service_server::LeadService;

use super::convert::{self, lead};
use super::{Api, db_status, invalid, status};
use crate::app::LeadRequest;
use crate::auth::Action;
use crate::db::LeadFilter;

const PAGE_DEFAULT: u32 = 50;

/// Counts a `WatchLeads` stream down when it ends, however it ends.
struct Watching(std::sync::Arc<crate::app::Crm>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0
            .metrics
            .watchers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
const PAGE_MAX: u32 = 500;

fn page_token(next: Option<(i64, String)>) -> String {
    next.map(|(ms, id)| format!("{ms}:{id}"))
        .unwrap_or_default()
}

fn parse_page_token(token: &str) -> Result<Option<(i64, String)>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let (ms, id) = token
        .split_once(':')
        .ok_or_else(|| invalid("page_token is not one this server gave".into()))?;
    let ms = ms
        .parse()
        .map_err(|_| invalid("page_token is not one this server gave".into()))?;
    Ok(Some((ms, id.to_owned())))
}

#[tonic::async_trait]
impl LeadService for Api {
    async fn create_lead(
        &self,
        request: Request<pb::CreateLeadRequest>,
    ) -> Result<Response<pb::CreateLeadResponse>, Status> {
        let who = self.caller(&request, Action::CreateLead).await?;
        let r = request.into_inner();
        let req = LeadRequest {
            key: r.idempotency_key,
            vin: r.vin,
            device_id: r.device_id,
            reason: convert::reason_from(r.reason),
            codes: r.codes,
            ecu: r.ecu,
            detected_ms: r.detected_unix_ms,
        };
        let created = self.crm.create_lead(&who, req).await.map_err(status)?;
        Ok(Response::new(pb::CreateLeadResponse {
            lead: Some(lead(created.lead)),
            created: created.created,
        }))
    }

    async fn get_lead(
        &self,
        request: Request<pb::GetLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        let who = self.caller(&request, Action::ReadLeads).await?;
        let l = self
            .crm
            .db()
            .lead(&who.tenant, &request.get_ref().id)
            .await
            .map_err(db_status)?;
        Ok(Response::new(lead(l)))
    }

    async fn list_leads(
        &self,
        request: Request<pb::ListLeadsRequest>,
    ) -> Result<Response<pb::ListLeadsResponse>, Status> {
        let who = self.caller(&request, Action::ReadLeads).await?;
        let r = request.into_inner();
        let filter = LeadFilter {
            statuses: r
                .status
                .iter()
                .map(|s| convert::stage_from(*s))
                .collect::<Result<_, _>>()
                .map_err(invalid)?,
            shop_id: r.shop_id,
            min_severity: convert::severity_from(r.min_severity).map_err(invalid)?,
            created_from_ms: (r.created_from_unix_ms > 0).then_some(r.created_from_unix_ms),
            created_to_ms: (r.created_to_unix_ms > 0).then_some(r.created_to_unix_ms),
            limit: if r.page_size == 0 {
                PAGE_DEFAULT
            } else {
                r.page_size.min(PAGE_MAX)
            },
            after: parse_page_token(&r.page_token)?,
        };
        let page = self
            .crm
            .db()
            .leads(&who.tenant, &filter)
            .await
            .map_err(db_status)?;
        Ok(Response::new(pb::ListLeadsResponse {
            leads: page.leads.into_iter().map(lead).collect(),
            next_page_token: page_token(page.next),
        }))
    }

    async fn assign_lead(
        &self,
        request: Request<pb::AssignLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        let who = self.caller(&request, Action::WorkLeads).await?;
        let r = request.into_inner();
        Ok(Response::new(lead(
            self.crm
                .assign(&who, &r.id, &r.advisor_id)
                .await
                .map_err(status)?,
        )))
    }

    async fn update_lead_status(
        &self,
        request: Request<pb::UpdateLeadStatusRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        let who = self.caller(&request, Action::WorkLeads).await?;
        let r = request.into_inner();
        let to = convert::stage_from(r.status).map_err(invalid)?;
        Ok(Response::new(lead(
            self.crm
                .set_status(&who, &r.id, to, &r.reason)
                .await
                .map_err(status)?,
        )))
    }

    async fn add_note(
        &self,
        request: Request<pb::AddNoteRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        let who = self.caller(&request, Action::WorkLeads).await?;
        let r = request.into_inner();
        Ok(Response::new(lead(
            self.crm
                .add_note(&who, &r.id, &r.text)
                .await
                .map_err(status)?,
        )))
    }

    type WatchLeadsStream = Pin<Box<dyn Stream<Item = Result<pb::LeadEvent, Status>> + Send>>;

    async fn watch_leads(
        &self,
        request: Request<pb::WatchLeadsRequest>,
    ) -> Result<Response<Self::WatchLeadsStream>, Status> {
        let who = self.caller(&request, Action::ReadLeads).await?;
        let shop = request.into_inner().shop_id;
        let mut events = self.crm.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let shutdown = self.shutdown.clone();
        let crm = self.crm.clone();
        tokio::spawn(async move {
            crate::metrics::bump(&crm.metrics.watchers);
            let _open = Watching(crm);
            loop {
                let event = tokio::select! {
                    () = tx.closed() => return,
                    () = shutdown.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable("the CRM is shutting down; watch again"))).await;
                        return;
                    }
                    e = events.recv() => e,
                };
                let (tenant, change) = match event {
                    Ok(e) => e,
                    Err(RecvError::Lagged(n)) => {
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "this watcher fell {n} changes behind; list the leads and watch again"
                            ))))
                            .await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                };
                if tenant != who.tenant || (!shop.is_empty() && change.lead.shop_id != shop) {
                    continue;
                }
                let kind = if change.created {
                    pb::lead_event::Change::Created
                } else {
                    pb::lead_event::Change::Updated
                };
                let event = pb::LeadEvent {
                    change: kind as i32,
                    lead: Some(lead(change.lead)),
                };
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
