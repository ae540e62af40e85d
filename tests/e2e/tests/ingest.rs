//! `telltale-ingest` end to end: the real binary between a real Mosquitto and a real
//! database (each test on a database of its own; the restart test on a private server).
//! From the simulator and the agent to rows; the ingest killed mid-batch; the database crashed
//! under load; bad messages; two instances on one shared subscription. Each runs on plain
//! PostgreSQL and on PostgreSQL with TimescaleDB (telemetry a hypertable), and where one
//! machine is the deployment (the kill, bad messages) on SQLite too.
//!
//! "Every sample once" is checked on the rows: the `messages` table holds each (device, boot,
//! seq) once by its key, and the telemetry table has no key, so a double write would show as
//! a batch with too many samples.

use std::time::Duration;

use telltale_e2e::ingest::{Ingest, until_subscribed, wait_count};
use telltale_e2e::mqtt::{Broker, Collector};
use telltale_e2e::pg::{Database, Rows, Server, SqliteFile, timescale_admin_url};
use telltale_e2e::rig::{AgentRig, make_certs, repo, simulator};
use telltale_e2e::uplink::Car;
use telltale_e2e::{free_port, wait_for};
use telltale_wire::topic::Kind;

/// Mosquitto's defaults (20 messages in flight, 1000 queued for an absent session) would
/// throttle the ingest's batches and drop what arrives while it is away; deploy/ raises them
/// the same way.
const BROKER: &str = "max_inflight_messages 1000\nmax_queued_messages 1000000\n";

/// Checks that every telemetry message of `devices` (seqs 1..=n, `samples` each) is stored
/// exactly once.
fn assert_each_sample_once(db: &dyn Rows, devices: &[&Car], n: u64, samples: i64) {
    for car in devices {
        let d = &car.device;
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) FROM messages WHERE device_id = '{d}' AND kind = 'telemetry'"
            )),
            n as i64,
            "{d}: messages"
        );
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) FROM telemetry WHERE device_id = '{d}'"
            )),
            n as i64 * samples,
            "{d}: samples"
        );
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) FROM (SELECT seq FROM telemetry WHERE device_id = '{d}' \
                 GROUP BY boot_id, seq HAVING count(*) <> {samples}) odd"
            )),
            0,
            "{d}: a message with a wrong number of samples"
        );
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) FROM telemetry WHERE device_id = '{d}' AND seq BETWEEN 1 AND {n}"
            )),
            n as i64 * samples,
            "{d}: seqs outside 1..={n}"
        );
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) FROM gaps WHERE device_id = '{d}'"
            )),
            0,
            "{d}: a gap recorded where nothing was missing"
        );
    }
}

/// A database of its own on the TimescaleDB server the tests share.
fn on_timescaledb() -> Database {
    Database::create_on(&timescale_admin_url())
}

/// Checks that the ingest made telemetry a hypertable (TimescaleDB loaded, `auto`).
fn assert_hypertable(db: &Database) {
    assert_eq!(
        db.count(
            "SELECT count(*) FROM timescaledb_information.hypertables \
             WHERE hypertable_name = 'telemetry'"
        ),
        1,
        "telemetry is not a hypertable"
    );
}

#[test]
fn agent_and_simulator_to_rows_on_postgres() {
    agent_and_simulator_to_rows(&Database::create());
}

#[test]
fn agent_and_simulator_to_rows_on_timescaledb() {
    let db = on_timescaledb();
    agent_and_simulator_to_rows(&db);
    assert_hypertable(&db);
}

fn agent_and_simulator_to_rows(db: &Database) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start_with(BROKER);
    let ingest = Ingest::start(&broker, &db.url, "ingest-e2e-agent", &[]);
    let publisher = Collector::start(broker.port, "probe-agent", "test/nothing");
    until_subscribed(&publisher, db, "probe-agent");

    // At 400x the catalyst scenario sets P0420 pending after ~0.7 s and stored after ~2 s.
    let (_sim, link) = simulator(dir.path(), "catalyst", "400");
    let rig = AgentRig::new(
        dir.path(),
        "car-rows",
        &link,
        &broker.url(),
        "[obd]\nbatch_max_samples = 20\nbatch_max_age = \"1s\"\n[dtc]\nperiod = \"1s\"\n",
    );
    let mut agent = rig.start();

    let vin = "JTDKARFU1H3541802";
    wait_for(
        "P0420 stored and active for the simulated vehicle",
        Duration::from_secs(60),
        || {
            db.try_count(&format!(
                "SELECT count(*) FROM dtc_state WHERE vin = '{vin}' AND code = 'P0420' \
                 AND kind = 'stored' AND active"
            ))
            .unwrap_or(0)
                == 1
        },
    );
    assert_eq!(
        db.rows(&format!(
            "SELECT last_device_id FROM vehicles WHERE vin = '{vin}'"
        )),
        ["car-rows"],
        "the vehicle, found by its VIN, read through the dongle"
    );
    assert_eq!(
        db.rows("SELECT vin, online FROM devices WHERE device_id = 'car-rows'"),
        [format!("{vin}|t")]
    );
    wait_for(
        "speed and engine speed samples",
        Duration::from_secs(30),
        || {
            db.count(&format!(
                "SELECT count(DISTINCT signal) FROM telemetry WHERE vin = '{vin}' AND signal IN \
             ('Vehicle.Speed', 'Vehicle.Powertrain.CombustionEngine.Speed')"
            )) == 2
        },
    );
    // The device's clock and the cloud's are both kept, and agree on this machine.
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM telemetry WHERE vin = '{vin}' AND \
             abs(extract(epoch FROM received_at - device_time)) > 60"
        )),
        0
    );
    let stored_event = db.rows(&format!(
        "SELECT change, mil_on, freeze_frame IS NOT NULL FROM dtc_events WHERE vin = '{vin}' \
         AND code = 'P0420' AND kind = 'stored' ORDER BY id"
    ));
    assert_eq!(
        stored_event.first().map(String::as_str),
        Some("appeared|t|t"),
        "P0420 appeared as stored with the MIL on and a freeze frame: {stored_event:?}"
    );
    assert!(
        db.count(&format!(
            "SELECT count(*) FROM dtc_events WHERE vin = '{vin}' AND code = 'P0420' \
             AND kind = 'pending'"
        )) >= 1,
        "the pending stage is recorded too"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM lead_outbox WHERE vin = '{vin}' AND code = 'P0420'"
        )),
        1,
        "one lead waits in the outbox for the confirmed P0420"
    );

    // The agent dies: the broker publishes its will, and the fleet view says offline.
    agent.kill9();
    wait_for("the device marked offline", Duration::from_secs(30), || {
        db.rows("SELECT online FROM devices WHERE device_id = 'car-rows'") == ["f"]
    });
    assert_eq!(ingest.metric("telltale_ingest_dead_letters_total"), 0.0);
}

#[test]
fn killed_mid_batch_on_postgres() {
    ingest_killed_mid_batch_stores_every_sample_once(&Database::create());
}

#[test]
fn killed_mid_batch_on_timescaledb() {
    let db = on_timescaledb();
    ingest_killed_mid_batch_stores_every_sample_once(&db);
    assert_hypertable(&db);
}

#[test]
fn killed_mid_batch_on_sqlite() {
    ingest_killed_mid_batch_stores_every_sample_once(&SqliteFile::create());
}

fn ingest_killed_mid_batch_stores_every_sample_once(db: &dyn Rows) {
    let broker = Broker::start_with(BROKER);
    let mut ingest = Ingest::start(&broker, db.url(), "ingest-e2e-kill", &[]);
    let publisher = Collector::start(broker.port, "pub-kill", "test/nothing");
    until_subscribed(&publisher, db, "probe-kill");

    const N: u64 = 3000;
    const SAMPLES: usize = 5;
    let cars: Vec<Car> = (0..3)
        .map(|i| {
            Car::new(
                &format!("car-kill-{i}"),
                [i as u8 + 1; 16],
                "WVWZZZ1JZXW000001",
            )
        })
        .collect();
    for seq in 1..=N {
        for car in &cars {
            publisher.publish(
                &car.topic(Kind::Telemetry),
                car.telemetry(seq, seq as f64, SAMPLES),
            );
        }
    }
    let total = (N * cars.len() as u64) as i64;
    let stored = "SELECT count(*) FROM messages WHERE kind = 'telemetry'";
    wait_for(
        "a quarter of the messages stored",
        Duration::from_secs(60),
        || db.try_count(stored).unwrap_or(0) >= total / 4,
    );
    ingest.process.kill9();
    let at_kill = db.count(stored);
    assert!(
        at_kill < total,
        "the kill came too late to test anything ({at_kill} of {total} already stored)"
    );

    // Same client id: the broker kept the session, with what was delivered but not
    // acknowledged and what arrived meanwhile.
    let ingest = Ingest::start(&broker, db.url(), "ingest-e2e-kill", &[]);
    wait_count(db, stored, total, Duration::from_secs(120), &ingest);
    let refs: Vec<&Car> = cars.iter().collect();
    assert_each_sample_once(db, &refs, N, SAMPLES as i64);
}

#[test]
fn database_crash_under_load_loses_nothing_on_postgres() {
    database_crash_under_load_loses_nothing(&Server::start(), false);
}

#[test]
fn database_crash_under_load_loses_nothing_on_timescaledb() {
    database_crash_under_load_loses_nothing(&Server::start_timescale(), true);
}

fn database_crash_under_load_loses_nothing(server: &Server, hypertable: bool) {
    let db = Database::create_on(&server.admin_url());
    let broker = Broker::start_with(BROKER);
    let mut ingest = Ingest::start(&broker, &db.url, "ingest-e2e-pgcrash", &[]);
    let publisher = Collector::start(broker.port, "pub-pgcrash", "test/nothing");
    until_subscribed(&publisher, &db, "probe-pgcrash");

    const N: u64 = 1500;
    let car = Car::new("car-pgcrash", [7; 16], "WVWZZZ1JZXW000001");
    let stored = "SELECT count(*) FROM messages WHERE kind = 'telemetry'";
    // 500 messages a second; the database is down from a third of the way in to two thirds.
    for seq in 1..=N {
        publisher.publish(&car.topic(Kind::Telemetry), car.telemetry(seq, 1.0, 4));
        if seq % 50 == 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        if seq == N / 3 {
            server.crash();
        }
        if seq == 2 * N / 3 {
            wait_for("the ingest to notice", Duration::from_secs(30), || {
                ingest.metric("telltale_ingest_store_errors_total") >= 1.0
            });
            ingest.process.assert_running();
            server.restart();
        }
    }
    wait_count(&db, stored, N as i64, Duration::from_secs(120), &ingest);
    ingest.process.assert_running();
    assert_each_sample_once(&db, &[&car], N, 4);
    if hypertable {
        assert_hypertable(&db);
    }
}

#[test]
fn bad_messages_on_postgres() {
    bad_messages_become_dead_letters_and_the_rest_flows(&Database::create());
}

#[test]
fn bad_messages_on_timescaledb() {
    let db = on_timescaledb();
    bad_messages_become_dead_letters_and_the_rest_flows(&db);
    assert_hypertable(&db);
}

#[test]
fn bad_messages_on_sqlite() {
    bad_messages_become_dead_letters_and_the_rest_flows(&SqliteFile::create());
}

fn bad_messages_become_dead_letters_and_the_rest_flows(db: &dyn Rows) {
    let broker = Broker::start_with(BROKER);
    let ingest = Ingest::start(&broker, db.url(), "ingest-e2e-bad", &[]);
    let publisher = Collector::start(broker.port, "pub-bad", "test/nothing");
    until_subscribed(&publisher, db, "probe-bad");

    let a = Car::new("car-a", [0xA; 16], "WVWZZZ1JZXW000001");
    let b = Car::new("car-b", [0xB; 16], "WVWZZZ1JZXW000002");
    let good = a.telemetry(1, 42.0, 3);
    publisher.publish(&a.topic(Kind::Telemetry), vec![0xFF, 0x01, 0x02, 0x03]);
    publisher.publish(&a.topic(Kind::Dtc), vec![0x42; 300 * 1024]);
    publisher.publish(&a.topic(Kind::Telemetry), b.telemetry(1, 1.0, 3));
    publisher.publish(&a.topic(Kind::Telemetry), good.clone());
    publisher.publish(&a.topic(Kind::Telemetry), good.clone());
    wait_for("three dead letters", Duration::from_secs(30), || {
        db.count("SELECT count(*) FROM dead_letters") == 3
    });
    wait_for("the good message", Duration::from_secs(30), || {
        db.count("SELECT count(*) FROM telemetry WHERE device_id = 'car-a'") == 3
    });
    // Replayed after its commit, too.
    publisher.publish(&a.topic(Kind::Telemetry), good);
    publisher.publish(&a.topic(Kind::Telemetry), a.telemetry(2, 43.0, 3));
    wait_for(
        "the message after the replay",
        Duration::from_secs(30),
        || db.count("SELECT count(*) FROM messages WHERE device_id = 'car-a'") == 2,
    );
    assert_eq!(
        db.count("SELECT count(*) FROM telemetry WHERE device_id = 'car-a'"),
        6,
        "the replayed message was stored once"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM telemetry WHERE device_id = 'car-b'"),
        0,
        "a message on another device's topic is not stored as either"
    );
    let reasons = db.rows(
        "SELECT topic || ' ' || length(payload) || ' ' || reason FROM dead_letters \
         ORDER BY id",
    );
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].starts_with("telltale/v1/car-a/telemetry 4 payload is not a valid telemetry"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("telltale/v1/car-a/dtc 307200 payload of 307200 bytes exceeds"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("does not match the topic's \"car-a\""),
        "{reasons:?}"
    );
    assert_eq!(ingest.metric("telltale_ingest_dead_letters_total"), 3.0);
}

#[test]
fn two_instances_split_a_shared_subscription_on_postgres() {
    two_instances_split_a_shared_subscription(&Database::create());
}

#[test]
fn two_instances_split_a_shared_subscription_on_timescaledb() {
    let db = on_timescaledb();
    two_instances_split_a_shared_subscription(&db);
    assert_hypertable(&db);
}

fn two_instances_split_a_shared_subscription(db: &Database) {
    let broker = Broker::start_with(BROKER);
    let first = Ingest::start(&broker, &db.url, "ingest-e2e-share-1", &[]);
    let second = Ingest::start(
        &broker,
        &db.url,
        "ingest-e2e-share-2",
        &["--migrate-on-start", "false"],
    );
    let publisher = Collector::start(broker.port, "pub-share", "test/nothing");
    // Each instance stores a probe of its own only once both subscribed.
    until_subscribed(&publisher, db, "probe-share");
    wait_for(
        "the second instance subscribed",
        Duration::from_secs(30),
        || second.metric("telltale_ingest_mqtt_connected") == 1.0,
    );
    std::thread::sleep(Duration::from_millis(500));

    const N: u64 = 200;
    let cars: Vec<Car> = (0..10)
        .map(|i| {
            Car::new(
                &format!("car-share-{i}"),
                [0x50 + i as u8; 16],
                "WVWZZZ1JZXW000001",
            )
        })
        .collect();
    for seq in 1..=N {
        for car in &cars {
            publisher.publish(&car.topic(Kind::Telemetry), car.telemetry(seq, 1.0, 2));
        }
    }
    let total = (N * cars.len() as u64) as i64;
    wait_count(
        db,
        "SELECT count(*) FROM messages WHERE kind = 'telemetry'",
        total,
        Duration::from_secs(60),
        &first,
    );
    let refs: Vec<&Car> = cars.iter().collect();
    assert_each_sample_once(db, &refs, N, 2);
    let (one, two) = (
        first.metric("telltale_ingest_samples_total"),
        second.metric("telltale_ingest_samples_total"),
    );
    assert!(
        one > 0.0 && two > 0.0,
        "both instances wrote a share: {one} and {two} rows"
    );
}

#[test]
fn ingest_over_mutual_tls_with_the_shipped_broker_config() {
    let certs = tempfile::tempdir().expect("tempdir");
    let c = |f: &str| certs.path().join(f).display().to_string();
    make_certs(certs.path(), &["car-tls-1", "car-tls-2", "telltale-cloud"]);
    std::fs::copy(
        repo().join("deploy/mosquitto/acl"),
        certs.path().join("acl"),
    )
    .expect("copy the shipped ACL");
    let port = free_port();
    let shipped = std::fs::read_to_string(repo().join("deploy/mosquitto/mosquitto.conf"))
        .expect("the shipped mosquitto.conf");
    let config = shipped
        .replace("/etc/mosquitto/telltale/", &format!("{}/", c("")))
        .replace("/var/lib/mosquitto/", "{dir}/")
        .replace("listener 8883", &format!("listener {port} 127.0.0.1"));
    let broker = Broker::start_config(&config, port);
    let db = Database::create();
    let url = format!("mqtts://127.0.0.1:{port}");
    let (ca, cert, key) = (
        c("ca.crt"),
        c("telltale-cloud.crt"),
        c("telltale-cloud.key"),
    );
    let ingest = Ingest::start_at(
        &url,
        &db.url,
        "ingest-e2e-tls",
        &[
            "--mqtt-protocol",
            "5",
            "--mqtt-ca-file",
            &ca,
            "--mqtt-cert-file",
            &cert,
            "--mqtt-key-file",
            &key,
        ],
    );
    let device = Collector::start_tls(
        port,
        "car-tls-1",
        "telltale/v1/car-tls-1/cmd",
        certs.path().join("ca.crt").as_path(),
        certs.path().join("car-tls-1.crt").as_path(),
        certs.path().join("car-tls-1.key").as_path(),
    );
    until_subscribed(&device, &db, "car-tls-1");

    let car = Car::new("car-tls-1", [0x71; 16], "WVWZZZ1JZXW000001");
    let spoof = Car::new("car-spoofed", [0x72; 16], "WVWZZZ1JZXW000009");
    for seq in 1..=50 {
        device.publish(&car.topic(Kind::Telemetry), car.telemetry(seq, 1.0, 2));
        // The same certificate claiming another device's topic: the ACL drops it.
        device.publish(&spoof.topic(Kind::Telemetry), spoof.telemetry(seq, 1.0, 2));
    }
    wait_count(
        &db,
        "SELECT count(*) FROM messages WHERE device_id = 'car-tls-1' AND kind = 'telemetry'",
        50,
        Duration::from_secs(30),
        &ingest,
    );
    assert_each_sample_once(&db, &[&car], 50, 2);
    assert_eq!(
        db.count("SELECT count(*) FROM messages WHERE device_id = 'car-spoofed'"),
        0,
        "a device published as another one:\n{}",
        broker.log()
    );
    assert_eq!(ingest.metric("telltale_ingest_dead_letters_total"), 0.0);

    // Nor can a device read another device's commands: car-tls-2, subscribed to every device's
    // commands, gets its own and not car-tls-1's.
    let pem = |name: &str| {
        (
            certs.path().join(format!("{name}.crt")),
            certs.path().join(format!("{name}.key")),
        )
    };
    let ca_file = certs.path().join("ca.crt");
    let (rogue_crt, rogue_key) = pem("car-tls-2");
    let rogue = Collector::start_tls(
        port,
        "car-tls-2",
        "telltale/v1/+/cmd",
        &ca_file,
        &rogue_crt,
        &rogue_key,
    );
    let (cloud_crt, cloud_key) = pem("telltale-cloud");
    let cloud = Collector::start_tls(
        port,
        "cloud-commands",
        "telltale/v1/+/status",
        &ca_file,
        &cloud_crt,
        &cloud_key,
    );
    cloud.publish(
        "telltale/v1/car-tls-1/cmd",
        b"a command for car-tls-1".to_vec(),
    );
    cloud.publish(
        "telltale/v1/car-tls-2/cmd",
        b"a command for car-tls-2".to_vec(),
    );
    rogue.wait_for("its own command", Duration::from_secs(10), |got| {
        got.iter()
            .find(|r| r.topic == "telltale/v1/car-tls-2/cmd")
            .map(|_| ())
    });
    device.wait_for(
        "the command at its own device",
        Duration::from_secs(10),
        |got| {
            got.iter()
                .find(|r| r.topic == "telltale/v1/car-tls-1/cmd")
                .map(|_| ())
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        rogue
            .all()
            .iter()
            .all(|r| r.topic != "telltale/v1/car-tls-1/cmd"),
        "a device read another device's command:\n{}",
        broker.log()
    );
}
