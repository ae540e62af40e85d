//! `telltale-crm` end to end: the real binary on the real PostgreSQL, used through its gRPC
//! API by tonic clients and its own command line, the owner's page in headless Chromium, and a
//! fault travelling from the simulated car through the agent, Mosquitto and the ingest to an
//! advisor's `WatchLeads` stream.

use std::time::Duration;

use tokio_stream::StreamExt as _;
use tonic::Code;
use tonic::transport::Channel;

use telltale_e2e::browser::{Browser, artifacts_dir};
use telltale_e2e::crm::{CrmServer, req};
use telltale_e2e::ingest::Ingest;
use telltale_e2e::mqtt::Broker;
use telltale_e2e::pg::{Database, Rows};
use telltale_e2e::rig::{AgentRig, make_certs, simulator};
use telltale_wire::crm::v1 as pb;
use telltale_wire::crm::v1::catalog_service_client::CatalogServiceClient;
use telltale_wire::crm::v1::lead_service_client::LeadServiceClient;
use telltale_wire::crm::v1::quote_service_client::QuoteServiceClient;

const VIN: &str = "JTDKARFU1H3541802";

/// A shop open around the clock every day, so a test at any hour finds free slots.
fn shop(id: &str) -> pb::Shop {
    pb::Shop {
        id: id.into(),
        name: "Main Street Auto".into(),
        currency: "USD".into(),
        labor_rate_minor: 15_000,
        diagnostic_fee_minor: 12_000,
        supplies_bp: 1_000,
        supplies_cap_minor: 4_000,
        tax_bp: 825,
        tax_labor: false,
        utc_offset_minutes: 0,
        hours: (1..=7)
            .map(|d| pb::OpeningHours {
                weekday: d,
                open_minute: 0,
                close_minute: 1440,
            })
            .collect(),
        bays: 2,
        slot_minutes: 60,
        is_default: true,
        phone: "555-0100".into(),
        address: "1 Main Street".into(),
    }
}

fn dtc(key: &str, vin: &str, code: &str) -> pb::CreateLeadRequest {
    pb::CreateLeadRequest {
        idempotency_key: key.into(),
        vin: vin.into(),
        device_id: "dongle-e2e".into(),
        reason: pb::LeadReason::ConfirmedDtc as i32,
        codes: vec![code.into()],
        ecu: 0x7E8,
        detected_unix_ms: 0,
    }
}

/// The answer to `ListServices` from the reflection service `service` (`grpc.reflection.v1`
/// or `grpc.reflection.v1alpha`). The two versions differ only in the package name, so their
/// messages are the same bytes and v1's types serve for both.
async fn list_services(
    ch: Channel,
    service: &str,
) -> tonic_reflection::pb::v1::ServerReflectionResponse {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let path = format!("/{service}/ServerReflectionInfo");
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.expect("the channel is ready");
    let mut answers = grpc
        .streaming(
            tonic::Request::new(tokio_stream::iter(vec![ask])),
            path.parse().expect("a path"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{service}: {e:?}"))
        .into_inner();
    answers
        .next()
        .await
        .expect("an answer")
        .unwrap_or_else(|e| panic!("{service}: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_api_health_reflection_scopes_and_tenancy() {
    let db = Database::create();
    let crm = CrmServer::start(&db.url);
    let manager = crm.token("acme", "manager", "boss");
    let ingest = crm.token("acme", "integration", "ingest");
    let advisor = crm.token("acme", "advisor", "ann");
    let rival = crm.token("rival", "manager", "spy");
    let ch = crm.channel().await;

    // Standard tools see it without our protos: health and reflection.
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let check = |service: &str| tonic_health::pb::HealthCheckRequest {
        service: service.into(),
    };
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(
        health
            .check(check(""))
            .await
            .expect("health")
            .into_inner()
            .status,
        serving
    );
    assert_eq!(
        health
            .check(check("telltale.crm.v1.LeadService"))
            .await
            .expect("health")
            .into_inner()
            .status,
        serving
    );
    // Reflection in both versions (tools that know only v1alpha are still common), each
    // listing every service, the other reflection version included.
    let answers = [
        format!(
            "{:?}",
            list_services(ch.clone(), "grpc.reflection.v1.ServerReflection").await
        ),
        format!(
            "{:?}",
            list_services(ch.clone(), "grpc.reflection.v1alpha.ServerReflection").await
        ),
    ];
    for (version, answer) in ["v1", "v1alpha"].into_iter().zip(answers) {
        for service in [
            "telltale.crm.v1.LeadService",
            "telltale.crm.v1.QuoteService",
            "telltale.crm.v1.CatalogService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ] {
            assert!(
                answer.contains(&format!("\"{service}\"")),
                "reflection {version} lists {service}: {answer}"
            );
        }
    }

    let mut catalog = CatalogServiceClient::new(ch.clone());
    let mut leads = LeadServiceClient::new(ch.clone());
    let mut quotes = QuoteServiceClient::new(ch.clone());
    // Scopes: no token, a wrong role.
    let e = leads
        .list_leads(pb::ListLeadsRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = catalog
        .put_shop(req(&advisor, shop("main")))
        .await
        .expect_err("an advisor manages no shop");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = leads
        .create_lead(req(&manager, dtc("k0", VIN, "P0420")))
        .await
        .expect_err("no shop yet");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("no default shop"), "{e:?}");
    catalog
        .put_shop(req(&manager, shop("main")))
        .await
        .expect("put shop");
    catalog
        .put_shop(req(&rival, shop("rival-main")))
        .await
        .expect("rival shop");
    catalog
        .put_advisor(req(
            &manager,
            pb::Advisor {
                id: "ann".into(),
                shop_id: "main".into(),
                name: "Ann".into(),
                email: String::new(),
                active: true,
            },
        ))
        .await
        .expect("put advisor");

    // An advisor at a terminal watching, and a watcher on the API; then eight concurrent
    // duplicate calls: one lead, one event.
    let terminal = crm.watch(&advisor);
    let mut watch = leads
        .watch_leads(req(&advisor, pb::WatchLeadsRequest::default()))
        .await
        .expect("watch")
        .into_inner();
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut c = leads.clone();
        let token = ingest.clone();
        calls.push(tokio::spawn(async move {
            c.create_lead(req(&token, dtc("JTD:P0420:1", VIN, "P0420")))
                .await
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for call in calls {
        let r = call.await.expect("join").expect("create lead").into_inner();
        created += usize::from(r.created);
        ids.insert(r.lead.expect("a lead").id);
    }
    assert_eq!((created, ids.len()), (1, 1));
    let id = ids.into_iter().next().expect("an id");
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("an event in time")
        .expect("open")
        .expect("ok");
    assert_eq!(event.change, pb::lead_event::Change::Created as i32);
    let lead = event.lead.expect("a lead");
    assert_eq!(
        (lead.id.as_str(), lead.vin.as_str(), lead.shop_id.as_str()),
        (id.as_str(), VIN, "main")
    );
    assert_eq!(lead.faults[0].code, "P0420");
    assert!(
        lead.faults[0].description.contains("catalytic converter"),
        "{:?}",
        lead.faults[0]
    );
    let line = tokio::task::block_in_place(|| terminal.lines.recv_timeout(Duration::from_secs(10)))
        .expect("a line from leads watch");
    assert!(
        line.contains(&id) && line.contains("new") && line.contains("P0420"),
        "{line}"
    );

    // Bad input is named; another tenant sees nothing.
    let e = leads
        .create_lead(req(&ingest, dtc("k1", "not a vin!", "P0420")))
        .await
        .expect_err("bad VIN");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("not a VIN"), "{e:?}");
    let e = leads
        .create_lead(req(&ingest, dtc("k2", VIN, "X123")))
        .await
        .expect_err("bad code");
    assert!(e.message().contains("not a trouble code"), "{e:?}");
    let e = leads
        .get_lead(req(&rival, pb::GetLeadRequest { id: id.clone() }))
        .await
        .expect_err("other tenant");
    assert_eq!(e.code(), Code::NotFound);
    assert!(
        leads
            .list_leads(req(&rival, pb::ListLeadsRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .leads
            .is_empty()
    );
    let e = quotes
        .get_quote(req(
            &rival,
            pb::GetQuoteRequest {
                id: lead.quote_id.clone(),
            },
        ))
        .await
        .expect_err("other tenant's quote");
    assert_eq!(e.code(), Code::NotFound);
    let e = leads
        .assign_lead(req(
            &rival,
            pb::AssignLeadRequest {
                id: id.clone(),
                advisor_id: "ann".into(),
            },
        ))
        .await
        .expect_err("other tenant");
    assert_eq!(e.code(), Code::NotFound);

    // The lifecycle: assign, a refused step back, the audit in the watch stream.
    let assigned = leads
        .assign_lead(req(
            &advisor,
            pb::AssignLeadRequest {
                id: id.clone(),
                advisor_id: "ann".into(),
            },
        ))
        .await
        .expect("assign")
        .into_inner();
    assert_eq!(assigned.advisor_id, "ann");
    let e = leads
        .assign_lead(req(
            &ingest,
            pb::AssignLeadRequest {
                id: id.clone(),
                advisor_id: "ann".into(),
            },
        ))
        .await
        .expect_err("integration");
    assert_eq!(e.code(), Code::PermissionDenied);
    leads
        .update_lead_status(req(
            &advisor,
            pb::UpdateLeadStatusRequest {
                id: id.clone(),
                status: pb::LeadStatus::Contacted as i32,
                reason: String::new(),
            },
        ))
        .await
        .expect("contacted");
    let e = leads
        .update_lead_status(req(
            &advisor,
            pb::UpdateLeadStatusRequest {
                id: id.clone(),
                status: pb::LeadStatus::New as i32,
                reason: String::new(),
            },
        ))
        .await
        .expect_err("backwards");
    assert_eq!(e.code(), Code::FailedPrecondition);
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("ok");
    assert_eq!(event.lead.expect("lead").advisor_id, "ann");

    // The quote: priced, revisable with a version check, shown by the command line.
    let quote = quotes
        .get_quote(req(
            &advisor,
            pb::GetQuoteRequest {
                id: lead.quote_id.clone(),
            },
        ))
        .await
        .expect("quote")
        .into_inner();
    assert_eq!(quote.status, pb::QuoteStatus::Draft as i32);
    let better = quote
        .options
        .iter()
        .find(|o| o.id == "better")
        .expect("a better option");
    assert_eq!(better.total_minor, quote.most_likely_minor);
    let out = crm.client(&advisor, &["quote", "show", &quote.id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("[better]") && text.contains("P0420"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = crm.client(&advisor, &["leads", "list", "--status", "contacted"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&id) && text.contains("contacted"), "{text}");
    let out = crm.client(&advisor, &["leads", "list", "--status", "booked"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&id));

    // Import: a bad file is refused by line before anything is sent; a manager's good file
    // goes in; an advisor's is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("parts.csv");
    std::fs::write(&bad, "part_number,category,tier,make,description,price_minor,currency\nA,cat,premium,*,x,1,USD\nB,cat,oem,*,y,lots,USD\n").expect("write");
    let out = crm.client(&manager, &["import", "parts", bad.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("parts.csv:2")
            && err.contains("parts.csv:3")
            && err.contains("nothing was imported"),
        "{err}"
    );
    let good = telltale_e2e::rig::repo().join("data/catalog/labor.csv");
    let out = crm.client(
        &advisor,
        &["import", "labor", good.to_str().expect("utf-8")],
    );
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("PermissionDenied")
    );
    let out = crm.client(
        &manager,
        &["import", "labor", good.to_str().expect("utf-8")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("100%"),
        "a progress bar"
    );
    let metrics = crm.metrics();
    for line in [
        "telltale_crm_leads_created_total 1",
        "telltale_crm_leads_merged_total 0",
        "telltale_crm_watchers 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("telltale_crm_auth_failures_total "))
        .expect("auth failures");
    assert!(failures.parse::<u64>().expect("a number") >= 3, "{metrics}");
    let labor = catalog
        .list_labor(req(&advisor, pb::ListLaborRequest {}))
        .await
        .expect("labor")
        .into_inner();
    assert!(labor.operations.len() > 50);

    // A shop from the command line, with amounts and hours as a person writes them.
    let out = crm.client(
        &manager,
        &[
            "shop",
            "put",
            "--id",
            "north",
            "--name",
            "North Garage",
            "--labor-rate",
            "142.50",
            "--diagnostic-fee",
            "99",
            "--supplies",
            "8%",
            "--supplies-cap",
            "35.00",
            "--tax",
            "7.25%",
            "--hours",
            "mon-fri 07:30-18:00; sat 08:00-12:00",
            "--utc-offset-minutes",
            "-300",
            "--phone",
            "555-0199",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let north = catalog
        .get_shop(req(&advisor, pb::GetShopRequest { id: "north".into() }))
        .await
        .expect("shop")
        .into_inner();
    assert_eq!(
        (
            north.labor_rate_minor,
            north.diagnostic_fee_minor,
            north.supplies_bp,
            north.supplies_cap_minor,
            north.tax_bp
        ),
        (14_250, 9_900, 800, 3_500, 725)
    );
    assert_eq!(
        (
            north.hours.len(),
            north.hours[0].open_minute,
            north.utc_offset_minutes,
            north.is_default
        ),
        (6, 450, -300, false)
    );
    let out = crm.client(
        &manager,
        &[
            "shop",
            "put",
            "--id",
            "x",
            "--name",
            "X",
            "--labor-rate",
            "12.345",
            "--diagnostic-fee",
            "1",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--labor-rate"),
        "{err}"
    );
    let out = crm.client(&advisor, &["shop", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("North Garage") && text.contains("USD 142.50"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owner_accepts_and_books_in_a_real_browser() {
    let db = Database::create();
    let crm = CrmServer::start(&db.url);
    let manager = crm.token("acme", "manager", "boss");
    let advisor = crm.token("acme", "advisor", "ann");
    let ch = crm.channel().await;
    let mut catalog = CatalogServiceClient::new(ch.clone());
    let mut leads = LeadServiceClient::new(ch.clone());
    let mut quotes = QuoteServiceClient::new(ch.clone());
    catalog
        .put_shop(req(&manager, shop("main")))
        .await
        .expect("put shop");
    let lead = leads
        .create_lead(req(&advisor, dtc("misfire", "1FMCU9GD4KUA37218", "P0301")))
        .await
        .expect("lead")
        .into_inner()
        .lead
        .expect("lead");
    let sent = quotes
        .send_quote(req(
            &advisor,
            pb::SendQuoteRequest {
                id: lead.quote_id.clone(),
                valid_hours: 24,
            },
        ))
        .await
        .expect("send")
        .into_inner();
    assert!(
        sent.url
            .starts_with(&format!("http://127.0.0.1:{}/q/", crm.http_port)),
        "{}",
        sent.url
    );
    let good = sent
        .quote
        .expect("quote")
        .options
        .into_iter()
        .find(|o| o.id == "good")
        .expect("a good option");

    let shots = artifacts_dir();
    let mut browser = tokio::task::block_in_place(Browser::phone);
    let page = tokio::task::block_in_place(|| {
        browser.goto(&sent.url);
        browser.screenshot(&shots.join("quote-page-options.png"));
        browser.source()
    });
    assert!(page.contains("Stop driving"), "the urgency in plain words");
    assert!(
        page.contains("cylinder 1") || page.contains("Cylinder 1"),
        "the problem in plain words"
    );
    assert!(page.contains("USD "), "prices");
    assert!(!page.contains("<script"), "no JavaScript");
    let after_accept = tokio::task::block_in_place(|| {
        browser.click("input[value=good]");
        browser.click("#accept");
        browser.wait_for_text("Pick a time")
    });
    assert!(after_accept.contains("Pick a time"), "{after_accept}");
    let quote = quotes
        .get_quote(req(
            &advisor,
            pb::GetQuoteRequest {
                id: lead.quote_id.clone(),
            },
        ))
        .await
        .expect("quote")
        .into_inner();
    assert_eq!(
        (quote.status, quote.accepted_option_id.as_str()),
        (pb::QuoteStatus::Accepted as i32, "good")
    );
    let booked = tokio::task::block_in_place(|| {
        browser.click("#book");
        let page = browser.wait_for_text("id=\"booked\"");
        browser.screenshot(&shots.join("quote-page-booked.png"));
        page
    });
    assert!(
        booked.contains("id=\"booked\"") && booked.contains("1 Main Street"),
        "{booked}"
    );
    let now = leads
        .get_lead(req(
            &advisor,
            pb::GetLeadRequest {
                id: lead.id.clone(),
            },
        ))
        .await
        .expect("lead")
        .into_inner();
    assert_eq!(now.status, pb::LeadStatus::Booked as i32);
    assert!(good.total_minor > 0);

    // A changed link and a replaced link get their own pages.
    let mut tampered = sent.url.clone();
    let at = tampered.len() - 5;
    let swap = if &tampered[at..at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(at..at + 1, swap);
    let second = leads
        .create_lead(req(&advisor, dtc("cat", "JTDKARFU1H3541802", "P0420")))
        .await
        .expect("lead")
        .into_inner()
        .lead
        .expect("lead");
    let first_link = quotes
        .send_quote(req(
            &advisor,
            pb::SendQuoteRequest {
                id: second.quote_id.clone(),
                valid_hours: 1,
            },
        ))
        .await
        .expect("send")
        .into_inner()
        .url;
    quotes
        .send_quote(req(
            &advisor,
            pb::SendQuoteRequest {
                id: second.quote_id.clone(),
                valid_hours: 1,
            },
        ))
        .await
        .expect("send again");
    let (bad, replaced) = tokio::task::block_in_place(|| {
        browser.goto(&tampered);
        let bad = browser.source();
        browser.goto(&first_link);
        browser.screenshot(&shots.join("quote-page-replaced.png"));
        (bad, browser.source())
    });
    assert!(bad.contains("This link does not work"), "{bad}");
    assert!(
        replaced.contains("A newer quote was sent") && replaced.contains("555-0100"),
        "{replaced}"
    );
    // What an operator sees of it.
    let metrics = crm.metrics();
    for line in [
        "telltale_crm_leads_created_total 2",
        "telltale_crm_quotes_total{event=\"sent\"} 3",
        "telltale_crm_quotes_total{event=\"accepted\"} 1",
        "telltale_crm_appointments_total 1",
        "telltale_crm_quote_links_total{result=\"damaged\"} 1",
        "telltale_crm_quote_links_total{result=\"replaced\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    eprintln!("screenshots in {}", shots.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fault_in_the_car_reaches_the_advisors_screen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::create();
    // The CRM's API over TLS, with a certificate from the shipped test CA script.
    make_certs(dir.path(), &[]);
    let cert = dir.path().join("broker.crt").display().to_string();
    let key = dir.path().join("broker.key").display().to_string();
    let crm = CrmServer::start_with(&db.url, &["--tls-cert-file", &cert, "--tls-key-file", &key]);
    let manager = crm.token("fleet", "manager", "boss");
    let ingest_token = crm.token("fleet", "integration", "ingest");
    let advisor = crm.token("fleet", "advisor", "ann");
    let ca = std::fs::read(dir.path().join("ca.crt")).expect("the CA");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca));
    let ch = Channel::from_shared(crm.grpc_url())
        .expect("a URL")
        .tls_config(tls)
        .expect("TLS settings")
        .connect()
        .await
        .expect("connect over TLS");
    let plain = Channel::from_shared(format!("http://127.0.0.1:{}", crm.grpc_port))
        .expect("a URL")
        .connect()
        .await;
    if let Ok(plain) = plain {
        let e = LeadServiceClient::new(plain)
            .list_leads(req(&advisor, pb::ListLeadsRequest::default()))
            .await;
        assert!(e.is_err(), "plaintext to the TLS port must fail");
    }
    CatalogServiceClient::new(ch.clone())
        .put_shop(req(&manager, shop("main")))
        .await
        .expect("put shop");
    let mut leads = LeadServiceClient::new(ch.clone());
    let mut watch = leads
        .watch_leads(req(&advisor, pb::WatchLeadsRequest::default()))
        .await
        .expect("watch")
        .into_inner();

    let broker = Broker::start_with("max_inflight_messages 1000\n");
    let crm_url = crm.grpc_url();
    let config = dir.path().join("ingest.toml");
    // An hour between polls of the outbox: the lead can only leave because the batch that
    // wrote it woke the sender.
    std::fs::write(
        &config,
        format!(
            "[leads]\nca_file = {:?}\npoll_interval = \"1h\"\n",
            dir.path().join("ca.crt")
        ),
    )
    .expect("write the ingest config");
    let config = config.display().to_string();
    let _ingest = Ingest::start(
        &broker,
        &db.url,
        "ingest-crm-e2e",
        &[
            "--config",
            &config,
            "--crm-url",
            &crm_url,
            "--crm-token",
            &ingest_token,
        ],
    );
    // At 400x the catalyst scenario confirms P0420 after about 2 s.
    let (_sim, link) = simulator(dir.path(), "catalyst", "400");
    let rig = AgentRig::new(
        dir.path(),
        "car-crm",
        &link,
        &broker.url(),
        "[dtc]\nperiod = \"1s\"\n",
    );
    let _agent = rig.start();

    let event = tokio::time::timeout(Duration::from_secs(90), watch.next())
        .await
        .unwrap_or_else(|_| panic!("no lead within 90 s\n{}", crm.process.log()))
        .expect("the stream is open")
        .expect("an event");
    assert_eq!(event.change, pb::lead_event::Change::Created as i32);
    let lead = event.lead.expect("a lead");
    assert_eq!(
        (lead.vin.as_str(), lead.device_id.as_str()),
        (VIN, "car-crm")
    );
    assert_eq!(lead.reason, pb::LeadReason::ConfirmedDtc as i32);
    assert_eq!(
        lead.faults
            .iter()
            .map(|f| f.code.as_str())
            .collect::<Vec<_>>(),
        ["P0420"]
    );
    assert_eq!(lead.faults[0].ecu, 0x7E8);
    assert!(
        lead.idempotency_key.starts_with(&format!("{VIN}:P0420:")),
        "{}",
        lead.idempotency_key
    );
    // The advisor's command line over TLS, trusting the test CA.
    let out = std::process::Command::new(telltale_e2e::binary("telltale-crm"))
        .args(["leads", "list"])
        .env("TELLTALE_CRM_URL", crm.grpc_url())
        .env("TELLTALE_CRM_TOKEN", &advisor)
        .env("TELLTALE_CRM_CA_FILE", dir.path().join("ca.crt"))
        .output()
        .expect("run telltale-crm leads list");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&lead.id),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The outbox row is marked sent once the CRM answered.
    telltale_e2e::wait_for(
        "the outbox row marked sent",
        Duration::from_secs(10),
        || {
            db.try_count("SELECT count(*) FROM lead_outbox WHERE sent_at IS NOT NULL")
                .unwrap_or(0)
                == 1
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watchers_on_one_replica_see_leads_made_through_another() {
    let db = Database::create();
    let first = CrmServer::start(&db.url);
    let second = CrmServer::start(&db.url);
    let manager = first.token("acme", "manager", "boss");
    let ingest = first.token("acme", "integration", "ingest");
    let advisor = first.token("acme", "advisor", "ann");
    CatalogServiceClient::new(first.channel().await)
        .put_shop(req(&manager, shop("main")))
        .await
        .expect("put shop");
    let mut watch = LeadServiceClient::new(first.channel().await)
        .watch_leads(req(&advisor, pb::WatchLeadsRequest::default()))
        .await
        .expect("watch")
        .into_inner();
    let mut through_second = LeadServiceClient::new(second.channel().await);
    let created = through_second
        .create_lead(req(&ingest, dtc("k", VIN, "P0420")))
        .await
        .expect("create")
        .into_inner();
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("the first replica's watcher hears of it")
        .expect("open")
        .expect("ok");
    assert_eq!(event.change, pb::lead_event::Change::Created as i32);
    assert_eq!(
        event.lead.expect("a lead").id,
        created.lead.expect("a lead").id
    );
}
