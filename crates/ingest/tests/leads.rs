//! The lead sender against a real PostgreSQL outbox and a gRPC server on a real socket.
//!
//! The server here is a stand-in that implements the CRM's `CreateLead` contract (one lead
//! per idempotency key) and records what it was sent; the real CRM is tested against the
//! ingest end to end in the CRM's own tests. What this checks is the sender's side: nothing
//! is sent twice once marked, nothing is lost while the CRM is down, the token goes along.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use telltale_e2e::pg::{Database, Rows};
use telltale_e2e::uplink::Car;
use telltale_ingest::config::CrmSettings;
use telltale_ingest::metrics::Metrics;
use telltale_ingest::validate::{self, Limits};
use telltale_store::{Store, StoreOptions};
use telltale_wire::crm::v1 as crm;
use telltale_wire::crm::v1::lead_service_server::{LeadService, LeadServiceServer};
use telltale_wire::topic::Kind;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// Per idempotency key, the requests sent with it and their `authorization` headers.
type Calls = BTreeMap<String, Vec<(crm::CreateLeadRequest, String)>>;

/// What the stand-in CRM was sent.
#[derive(Debug, Default, Clone)]
struct Seen(Arc<Mutex<Calls>>);

impl Seen {
    fn get(&self) -> Calls {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[tonic::async_trait]
impl LeadService for Seen {
    async fn create_lead(
        &self,
        request: Request<crm::CreateLeadRequest>,
    ) -> Result<Response<crm::CreateLeadResponse>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let r = request.into_inner();
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let calls = seen.entry(r.idempotency_key.clone()).or_default();
        let created = calls.is_empty();
        calls.push((r.clone(), token));
        Ok(Response::new(crm::CreateLeadResponse {
            lead: Some(crm::Lead {
                id: format!("lead-{}", r.idempotency_key),
                vin: r.vin,
                idempotency_key: r.idempotency_key,
                ..crm::Lead::default()
            }),
            created,
        }))
    }
    async fn get_lead(
        &self,
        _: Request<crm::GetLeadRequest>,
    ) -> Result<Response<crm::Lead>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }
    async fn list_leads(
        &self,
        _: Request<crm::ListLeadsRequest>,
    ) -> Result<Response<crm::ListLeadsResponse>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }
    async fn assign_lead(
        &self,
        _: Request<crm::AssignLeadRequest>,
    ) -> Result<Response<crm::Lead>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }
    async fn update_lead_status(
        &self,
        _: Request<crm::UpdateLeadStatusRequest>,
    ) -> Result<Response<crm::Lead>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }
    async fn add_note(
        &self,
        _: Request<crm::AddNoteRequest>,
    ) -> Result<Response<crm::Lead>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }
    type WatchLeadsStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<crm::LeadEvent, Status>> + Send>>;
    async fn watch_leads(
        &self,
        _: Request<crm::WatchLeadsRequest>,
    ) -> Result<Response<Self::WatchLeadsStream>, Status> {
        Err(Status::unimplemented("not in this stand-in"))
    }
}

async fn store_report(store: &Store, car: &Car, seq: u64, payload: Vec<u8>) {
    let accepted = validate::decode(
        &car.topic(Kind::Dtc),
        &payload,
        Utc::now(),
        &Limits::default(),
    )
    .unwrap_or_else(|r| panic!("report {seq} refused: {}", r.reason));
    store
        .ingest(&[accepted.envelope])
        .await
        .unwrap_or_else(|e| panic!("store report {seq}: {e}"));
}

async fn wait(what: &str, mut ready: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_wait_out_a_crm_outage_and_are_sent_once_each() {
    let db = Database::create();
    let store = Store::connect(&db.url, StoreOptions::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let car = Car::new("dongle-lead", [3; 16], "JTDKARFU1H3541802");
    store_report(&store, &car, 1, car.dtc(1, "P0420")).await;
    let outbox = "SELECT count(*) FROM lead_outbox WHERE sent_at IS NULL";
    assert_eq!(db.count(outbox), 1, "one lead for the confirmed P0420");

    // The CRM is down: nothing listens on the port yet.
    let port = telltale_e2e::free_port();
    let settings = CrmSettings {
        url: format!("http://127.0.0.1:{port}"),
        ca_pem: None,
        token: Some("tok-ingest".into()),
        timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(50),
        retry_max: Duration::from_secs(1),
    };
    let metrics = Arc::new(Metrics::default());
    let stop = CancellationToken::new();
    let sender = tokio::spawn(telltale_ingest::leads::run(
        store.clone(),
        settings,
        metrics.clone(),
        Arc::new(tokio::sync::Notify::new()),
        stop.clone(),
    ));
    wait("a failed attempt", || {
        metrics.lead_send_failures.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert_eq!(db.count(outbox), 1, "kept while the CRM is down");
    assert_eq!(
        db.rows("SELECT attempts >= 1, last_error LIKE 'Unavailable%' FROM lead_outbox"),
        ["t|t"]
    );

    // The CRM comes up.
    let seen = Seen::default();
    let crm_stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the CRM port");
    let server = tokio::spawn({
        let (seen, crm_stop) = (seen.clone(), crm_stop.clone());
        async move {
            tonic::transport::Server::builder()
                .add_service(LeadServiceServer::new(seen))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    crm_stop.cancelled_owned(),
                )
                .await
        }
    });
    wait("the lead delivered", || {
        metrics.leads_sent.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(db.count(outbox), 0);
    let got = seen.get();
    let key = "JTDKARFU1H3541802:P0420:1";
    let (request, token) = &got[key][0];
    assert_eq!(token, "Bearer tok-ingest");
    assert_eq!(request.vin, "JTDKARFU1H3541802");
    assert_eq!(request.device_id, "dongle-lead");
    assert_eq!(request.codes, ["P0420"]);
    assert_eq!(request.reason, crm::LeadReason::ConfirmedDtc as i32);
    assert_eq!(request.ecu, 0x7E8);

    // The code clears and comes back: a new occurrence, a new lead; the old one is not resent.
    let cleared = {
        use prost::Message as _;
        let mut r =
            telltale_wire::v1::DtcReport::decode(car.dtc(2, "P0420").as_slice()).expect("decode");
        for e in &mut r.ecus {
            e.cleared = std::mem::take(&mut e.current);
            e.appeared.clear();
            e.mil_on = false;
        }
        r.encode_to_vec()
    };
    store_report(&store, &car, 2, cleared).await;
    store_report(&store, &car, 3, car.dtc(3, "P0420")).await;
    wait("the second occurrence delivered", || {
        metrics.leads_sent.load(Ordering::Relaxed) >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = seen.get();
    let keys: Vec<&str> = got.keys().map(String::as_str).collect();
    assert!(
        keys.contains(&"JTDKARFU1H3541802:P0420:2"),
        "second occurrence: {keys:?}"
    );
    assert_eq!(got[key].len(), 1, "the first lead was sent once");
    assert_eq!(metrics.leads_sent.load(Ordering::Relaxed), got.len() as u64);

    stop.cancel();
    sender.await.expect("the sender stops");
    crm_stop.cancel();
    let _ = server.await;
}
