//! Runs the CRM: the gRPC API and the owner's quote page side by side on listeners the caller
//! bound, until `shutdown` is cancelled or one of them fails (which stops the other).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::Crm;

pub async fn run(
    crm: Arc<Crm>,
    grpc: TcpListener,
    grpc_tls: Option<tonic::transport::Identity>,
    http: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    crm.relay_changes(shutdown.clone()).await?;
    let grpc_task = tokio::spawn(crate::grpc::serve(
        grpc,
        crm.clone(),
        grpc_tls,
        shutdown.clone(),
    ));
    let http_task = tokio::spawn({
        let (crm, shutdown) = (crm.clone(), shutdown.clone());
        async move {
            crate::web::serve(http, crm, shutdown)
                .await
                .map_err(anyhow::Error::from)
        }
    });
    let (g, h) = tokio::join!(
        async {
            let r = grpc_task.await;
            shutdown.cancel();
            r
        },
        async {
            let r = http_task.await;
            shutdown.cancel();
            r
        }
    );
    g??;
    h??;
    crm.db().close().await;
    Ok(())
}
