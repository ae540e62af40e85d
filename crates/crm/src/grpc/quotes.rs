//! `QuoteService`.

use std::time::Duration;

use tonic::{Request, Response, Status};

use telltale_wire::crm::v1 as pb;
use telltale_wire::crm::v1::quote_service_server::QuoteService;

use super::convert::{self, quote};
use super::{Api, db_status, invalid, status};
use crate::app::DEFAULT_LINK_VALIDITY;
use crate::auth::Action;

const MAX_LINK_HOURS: u32 = 90 * 24;

#[tonic::async_trait]
impl QuoteService for Api {
    async fn get_quote(
        &self,
        request: Request<pb::GetQuoteRequest>,
    ) -> Result<Response<pb::Quote>, Status> {
        let who = self.caller(&request, Action::ReadQuotes).await?;
        let q = self
            .crm
            .db()
            .quote(&who.tenant, &request.get_ref().id)
            .await
            .map_err(db_status)?;
        Ok(Response::new(quote(q)))
    }

    async fn revise_quote(
        &self,
        request: Request<pb::ReviseQuoteRequest>,
    ) -> Result<Response<pb::Quote>, Status> {
        let who = self.caller(&request, Action::WorkQuotes).await?;
        let r = request.into_inner();
        let drafts = r
            .options
            .into_iter()
            .map(convert::draft)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let q = self
            .crm
            .revise_quote(&who, &r.id, r.version, drafts, r.assumptions)
            .await
            .map_err(status)?;
        Ok(Response::new(quote(q)))
    }

    async fn send_quote(
        &self,
        request: Request<pb::SendQuoteRequest>,
    ) -> Result<Response<pb::SendQuoteResponse>, Status> {
        let who = self.caller(&request, Action::WorkQuotes).await?;
        let r = request.into_inner();
        if r.valid_hours > MAX_LINK_HOURS {
            return Err(invalid(format!(
                "valid_hours is at most {MAX_LINK_HOURS} (90 days)"
            )));
        }
        let valid = if r.valid_hours == 0 {
            DEFAULT_LINK_VALIDITY
        } else {
            Duration::from_secs(u64::from(r.valid_hours) * 3600)
        };
        let (q, url) = self
            .crm
            .send_quote(&who, &r.id, valid)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SendQuoteResponse {
            quote: Some(quote(q)),
            url,
        }))
    }

    async fn accept_quote(
        &self,
        request: Request<pb::AcceptQuoteRequest>,
    ) -> Result<Response<pb::Quote>, Status> {
        let who = self.caller(&request, Action::WorkQuotes).await?;
        let r = request.into_inner();
        let q = self
            .crm
            .accept_quote(&who.tenant, &who.actor(), &r.id, &r.option_id)
            .await
            .map_err(status)?;
        Ok(Response::new(quote(q)))
    }

    async fn decline_quote(
        &self,
        request: Request<pb::DeclineQuoteRequest>,
    ) -> Result<Response<pb::Quote>, Status> {
        let who = self.caller(&request, Action::WorkQuotes).await?;
        let r = request.into_inner();
        let q = self
            .crm
            .decline_quote(&who.tenant, &who.actor(), &r.id, &r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(quote(q)))
    }

    async fn list_slots(
        &self,
        request: Request<pb::ListSlotsRequest>,
    ) -> Result<Response<pb::ListSlotsResponse>, Status> {
        let who = self.caller(&request, Action::ReadQuotes).await?;
        let r = request.into_inner();
        let slots = self
            .crm
            .slots(&who.tenant, &r.shop_id, r.from_unix_ms, r.to_unix_ms)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListSlotsResponse {
            slots: slots.into_iter().map(convert::slot).collect(),
        }))
    }

    async fn book_appointment(
        &self,
        request: Request<pb::BookAppointmentRequest>,
    ) -> Result<Response<pb::Appointment>, Status> {
        let who = self.caller(&request, Action::WorkQuotes).await?;
        let r = request.into_inner();
        let a = self
            .crm
            .book(&who.tenant, &who.actor(), &r.quote_id, r.start_unix_ms)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::appointment(a)))
    }
}
