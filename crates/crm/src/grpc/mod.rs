//! The gRPC API (`proto/telltale/crm/v1`): `LeadService`, `QuoteService` and
//! `CatalogService` over [`Crm`], with the standard health service and server reflection (both
//! `grpc.reflection.v1` and `v1alpha`), so `grpcurl`, `grpc_health_probe`, Postman, Python's
//! grpcio-reflection and load balancers work without our proto files.
//!
//! Every call's first step is `Api::caller`: the bearer token and the role's right to the
//! action. Domain errors become gRPC statuses in [`status`], the one place that happens;
//! database text goes to the log, never to the client.

mod catalog;
mod convert;
mod leads;
mod quotes;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Status};
use tonic_health::ServingStatus;

use telltale_wire::crm::v1::catalog_service_server::CatalogServiceServer;
use telltale_wire::crm::v1::lead_service_server::LeadServiceServer;
use telltale_wire::crm::v1::quote_service_server::QuoteServiceServer;

use crate::app::{AppError, Crm};
use crate::auth::{Action, Principal};
use crate::db::DbError;

/// The services' shared state.
#[derive(Debug, Clone)]
pub struct Api {
    crm: Arc<Crm>,
    /// Ends `WatchLeads` streams at shutdown, so the server can drain.
    shutdown: CancellationToken,
}

/// The one mapping from a domain error to a gRPC status.
pub fn status(err: AppError) -> Status {
    match err {
        AppError::Unauthenticated(m) => Status::unauthenticated(m),
        AppError::Forbidden(m) => Status::permission_denied(m),
        AppError::Invalid(m) => Status::invalid_argument(m),
        AppError::Db(DbError::NotFound(m)) => Status::not_found(format!("{m} not found")),
        AppError::Db(DbError::Conflict(m)) => Status::aborted(m),
        AppError::Db(DbError::Precondition(m)) => Status::failed_precondition(m),
        AppError::Db(DbError::Invalid(m)) => Status::invalid_argument(m),
        AppError::Db(e @ (DbError::Corrupt(_) | DbError::Sql(_))) => {
            crate::metrics::bump(&crate::metrics::DATABASE_ERRORS);
            tracing::error!(cause = %e, "database error");
            Status::unavailable("the CRM's database is unavailable or failed; retry later")
        }
        AppError::Internal(m) => {
            tracing::error!(cause = %m, "internal error");
            Status::internal("internal error; the CRM's log has the details")
        }
    }
}

impl Api {
    pub fn new(crm: Arc<Crm>, shutdown: CancellationToken) -> Api {
        Api { crm, shutdown }
    }

    /// Who is calling, if their token may take `action`.
    async fn caller<T>(&self, request: &Request<T>, action: Action) -> Result<Principal, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.crm.authorize(header, action).await.map_err(status)
    }
}

fn db_status(e: DbError) -> Status {
    status(e.into())
}

fn invalid(message: String) -> Status {
    Status::invalid_argument(message)
}

/// What server reflection describes: our services, health, and both reflection versions, so a
/// client of either version finds the other listed. `grpc.reflection.v1` is the current one;
/// `v1alpha` is all that Python's grpcio-reflection client, older grpcurl and Postman speak.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(telltale_wire::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .include_reflection_service(false)
}

/// Serves the gRPC API on `listener` until `shutdown` is cancelled; then stops accepting,
/// ends watch streams and lets calls in flight finish. With `tls` (a PEM certificate chain
/// and key) it speaks only TLS.
pub async fn serve(
    listener: TcpListener,
    crm: Arc<Crm>,
    tls: Option<tonic::transport::Identity>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let api = Api::new(crm.clone(), shutdown.clone());
    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    // Health follows the database: a CRM that cannot reach it is NOT_SERVING.
    let watch = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let serving = if crm.db().ping().await {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            health.set_service_status("", serving).await;
            for name in [
                "telltale.crm.v1.LeadService",
                "telltale.crm.v1.QuoteService",
                "telltale.crm.v1.CatalogService",
            ] {
                health.set_service_status(name, serving).await;
            }
            tokio::select! {
                () = watch.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    });
    let mut server = tonic::transport::Server::builder();
    if let Some(identity) = tls {
        server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    server
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(LeadServiceServer::new(api.clone()))
        .add_service(QuoteServiceServer::new(api.clone()))
        .add_service(CatalogServiceServer::new(api))
        // TCP_NODELAY on every accepted connection: tonic sets it only on listeners it binds
        // itself. Without it a response written while the previous one is unacknowledged waits
        // for the client's delayed ACK: 40 ms per call (the CRM benchmark, `benches/crm-load`).
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_text_never_reaches_the_client() {
        let e = AppError::Db(DbError::Sql(sqlx::Error::Protocol(
            "relation \"crm.leads\" does not exist at 10.0.0.5".into(),
        )));
        let s = status(e);
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(
            !s.message().contains("crm.leads") && !s.message().contains("10.0.0.5"),
            "{}",
            s.message()
        );
        let s = status(AppError::Db(DbError::Corrupt(
            "faults: expected value at line 1".into(),
        )));
        assert!(!s.message().contains("faults"), "{}", s.message());
        let s = status(AppError::Internal("key file /etc/secret".into()));
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(!s.message().contains("/etc/secret"));
    }

    #[test]
    fn domain_errors_get_their_codes() {
        let code = |e| status(e).code();
        assert_eq!(
            code(AppError::Db(DbError::NotFound("lead \"x\"".into()))),
            tonic::Code::NotFound
        );
        assert_eq!(
            code(AppError::Db(DbError::Conflict("stale".into()))),
            tonic::Code::Aborted
        );
        assert_eq!(
            code(AppError::Db(DbError::Precondition("closed".into()))),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            code(AppError::Forbidden("no".into())),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            code(AppError::Unauthenticated("no".into())),
            tonic::Code::Unauthenticated
        );
    }
}
