//! `CatalogService`.

use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status, Streaming};

use telltale_wire::crm::v1 as pb;
use telltale_wire::crm::v1::catalog_service_server::CatalogService;

use super::convert;
use super::{Api, db_status, invalid, status};
use crate::auth::{Action, Principal};
use crate::db::CatalogKind;

/// The largest catalog file taken in one import.
const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;

impl Api {
    async fn import(
        &self,
        who: Principal,
        kind: CatalogKind,
        mut chunks: Streaming<pb::ImportChunk>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        let mut file_name = String::new();
        let mut body = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if file_name.is_empty() && !chunk.file_name.is_empty() {
                file_name = chunk.file_name;
            }
            if body.len() + chunk.data.len() > MAX_IMPORT_BYTES {
                return Err(invalid(format!(
                    "the file is larger than {} MiB",
                    MAX_IMPORT_BYTES >> 20
                )));
            }
            body.extend_from_slice(&chunk.data);
        }
        let body = String::from_utf8(body).map_err(|e| {
            invalid(format!(
                "the file is not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        if file_name.is_empty() {
            file_name = format!("{}.csv", kind.name());
        }
        let rows = self
            .crm
            .import(&who, kind, &file_name, body)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ImportResponse { rows }))
    }
}

#[tonic::async_trait]
impl CatalogService for Api {
    async fn get_shop(
        &self,
        request: Request<pb::GetShopRequest>,
    ) -> Result<Response<pb::Shop>, Status> {
        let who = self.caller(&request, Action::ReadCatalog).await?;
        let shop = self
            .crm
            .db()
            .shop(&who.tenant, &request.get_ref().id)
            .await
            .map_err(db_status)?;
        Ok(Response::new(convert::shop(shop)))
    }

    async fn list_shops(
        &self,
        request: Request<pb::ListShopsRequest>,
    ) -> Result<Response<pb::ListShopsResponse>, Status> {
        let who = self.caller(&request, Action::ReadCatalog).await?;
        let shops = self.crm.db().shops(&who.tenant).await.map_err(db_status)?;
        Ok(Response::new(pb::ListShopsResponse {
            shops: shops.into_iter().map(convert::shop).collect(),
        }))
    }

    async fn put_shop(&self, request: Request<pb::Shop>) -> Result<Response<pb::Shop>, Status> {
        let who = self.caller(&request, Action::ManageShop).await?;
        let shop = convert::shop_from(request.into_inner()).map_err(invalid)?;
        let shop = self
            .crm
            .db()
            .put_shop(&who.tenant, &shop)
            .await
            .map_err(db_status)?;
        Ok(Response::new(convert::shop(shop)))
    }

    async fn list_advisors(
        &self,
        request: Request<pb::ListAdvisorsRequest>,
    ) -> Result<Response<pb::ListAdvisorsResponse>, Status> {
        let who = self.caller(&request, Action::ReadCatalog).await?;
        let list = self
            .crm
            .db()
            .advisors(&who.tenant, &request.get_ref().shop_id)
            .await
            .map_err(db_status)?;
        Ok(Response::new(pb::ListAdvisorsResponse {
            advisors: list.into_iter().map(convert::advisor).collect(),
        }))
    }

    async fn put_advisor(
        &self,
        request: Request<pb::Advisor>,
    ) -> Result<Response<pb::Advisor>, Status> {
        let who = self.caller(&request, Action::ManageShop).await?;
        let a = self
            .crm
            .db()
            .put_advisor(&who.tenant, &convert::advisor_from(request.into_inner()))
            .await
            .map_err(db_status)?;
        Ok(Response::new(convert::advisor(a)))
    }

    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let who = self.caller(&request, Action::ReadCatalog).await?;
        let c = self
            .crm
            .db()
            .customer(&who.tenant, &request.get_ref().id)
            .await
            .map_err(db_status)?;
        Ok(Response::new(convert::customer(c)))
    }

    async fn put_customer(
        &self,
        request: Request<pb::Customer>,
    ) -> Result<Response<pb::Customer>, Status> {
        let who = self.caller(&request, Action::WriteCustomers).await?;
        let c = self
            .crm
            .db()
            .put_customer(&who.tenant, &convert::customer_from(request.into_inner()))
            .await
            .map_err(db_status)?;
        Ok(Response::new(convert::customer(c)))
    }

    async fn get_vehicle(
        &self,
        request: Request<pb::GetVehicleRequest>,
    ) -> Result<Response<pb::Vehicle>, Status> {
        let who = self.caller(&request, Action::ReadCatalog).await?;
        let vin = crate::vehicle::vin(&request.get_ref().vin).map_err(invalid)?;
        let v = self
            .crm
            .db()
            .vehicle(&who.tenant, &vin)
            .await
            .map_err(db_status)?;
        Ok(Response::new(convert::vehicle(v)))
    }

    async fn put_vehicle(
        &self,
        request: Request<pb::Vehicle>,
    ) -> Result<Response<pb::Vehicle>, Status> {
        let who = self.caller(&request, Action::WriteCustomers).await?;
        let v = self
            .crm
            .db()
            .put_vehicle(&who.tenant, &convert::vehicle_from(request.into_inner()))
            .await
            .map_err(db_status)?;
        Ok(Response::new(convert::vehicle(v)))
    }

    async fn import_parts(
        &self,
        request: Request<Streaming<pb::ImportChunk>>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        let who = self.caller(&request, Action::ManageShop).await?;
        self.import(who, CatalogKind::Parts, request.into_inner())
            .await
    }

    async fn import_labor(
        &self,
        request: Request<Streaming<pb::ImportChunk>>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        let who = self.caller(&request, Action::ManageShop).await?;
        self.import(who, CatalogKind::Labor, request.into_inner())
            .await
    }

    async fn list_parts(
        &self,
        request: Request<pb::ListPartsRequest>,
    ) -> Result<Response<pb::ListPartsResponse>, Status> {
        let who = self.caller(&request, Action::ReadCatalog).await?;
        let category = request.into_inner().category;
        let book = self.crm.price_book(&who).await.map_err(status)?;
        let parts = book
            .parts
            .parts()
            .filter(|p| category.is_empty() || p.category == category)
            .map(|p| pb::Part {
                part_number: p.part_number.clone(),
                category: p.category.clone(),
                tier: format!("{:?}", p.tier),
                make: p.make.clone(),
                description: p.description.clone(),
                price_minor: p.price.minor,
                currency: p.price.currency.code().to_owned(),
            })
            .collect();
        Ok(Response::new(pb::ListPartsResponse { parts }))
    }

    async fn list_labor(
        &self,
        request: Request<pb::ListLaborRequest>,
    ) -> Result<Response<pb::ListLaborResponse>, Status> {
        let who = self.caller(&request, Action::ReadCatalog).await?;
        let book = self.crm.price_book(&who).await.map_err(status)?;
        let operations = book
            .labor
            .times()
            .map(|t| pb::LaborOperation {
                op: t.op.clone(),
                name: t.name.clone(),
                make: t.make.clone(),
                tenths: t.hours_x10,
            })
            .collect();
        Ok(Response::new(pb::ListLaborResponse { operations }))
    }
}
