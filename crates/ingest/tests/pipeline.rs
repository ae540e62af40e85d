//! The pipeline against a real Mosquitto with an in-memory sink: acknowledgements only after
//! commit, a failing store loses nothing, dead letters never block, the persistent session
//! keeps what was published while the ingest was down. These need no database.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{MemorySink, Running, publisher, settings, telemetry, until_subscribed, wait_until};
use telltale_e2e::mqtt::Broker;
use telltale_ingest::pipeline::writer_of;
use telltale_store::Uplink;
use telltale_wire::topic::{Kind, topic};

const LIMIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_messages_are_acknowledged_and_not_delivered_again() {
    let broker = Broker::start();
    let s = settings(&broker.url(), "ingest-acked", true);
    let sink = MemorySink::default();
    let ingest = Running::start(&s, sink.clone());
    let car = publisher(broker.port, "car-acked");
    until_subscribed(&car, "car1", || sink.statuses() > 0).await;
    for seq in 1..=5 {
        car.publish(
            &topic("car1", Kind::Telemetry),
            telemetry("car1", seq, 50.0),
        );
    }
    wait_until("5 telemetry messages stored", LIMIT, || {
        sink.seqs().len() == 5
    })
    .await;
    wait_until("all acknowledged", LIMIT, || {
        ingest.metrics.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(sink.seqs(), vec![1, 2, 3, 4, 5], "in order, each once");
    ingest.stop().await;

    // Same client id, same session: nothing is redelivered. A marker published after the
    // restart is the first and only spooled message the new run sees.
    let sink2 = MemorySink::default();
    let ingest2 = Running::start(&s, sink2.clone());
    car.publish(&topic("car1", Kind::Telemetry), telemetry("car1", 99, 1.0));
    wait_until("the marker", LIMIT, || !sink2.seqs().is_empty()).await;
    assert_eq!(sink2.seqs(), vec![99]);
    ingest2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_is_retried_and_nothing_is_acknowledged_before_the_commit() {
    let broker = Broker::start();
    let s = settings(&broker.url(), "ingest-broken", true);
    let sink = MemorySink::default();
    let ingest = Running::start(&s, sink.clone());
    let car = publisher(broker.port, "car-broken");
    until_subscribed(&car, "car2", || sink.statuses() > 0).await;

    // Two transient failures: retried until stored, once.
    sink.lock().fail_next = 2;
    car.publish(&topic("car2", Kind::Telemetry), telemetry("car2", 1, 10.0));
    wait_until("stored after retries", LIMIT, || sink.seqs() == vec![1]).await;
    assert!(ingest.metrics.store_errors.load(Ordering::SeqCst) >= 2);
    wait_until("seq 1 acknowledged", LIMIT, || {
        ingest.metrics.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
    let acked = ingest.metrics.acked.load(Ordering::SeqCst);

    // The store goes down for good; the ingest is stopped with messages in hand.
    sink.lock().broken = true;
    let before = sink.attempts.load(Ordering::SeqCst);
    for seq in 2..=4 {
        car.publish(
            &topic("car2", Kind::Telemetry),
            telemetry("car2", seq, 20.0),
        );
    }
    wait_until("a failed attempt with the new messages", LIMIT, || {
        sink.attempts.load(Ordering::SeqCst) > before
    })
    .await;
    assert_eq!(
        ingest.metrics.acked.load(Ordering::SeqCst),
        acked,
        "nothing acknowledged while the store fails"
    );
    ingest.stop().await;

    // A new run with a working store gets them again from the broker's session.
    let sink2 = MemorySink::default();
    let ingest2 = Running::start(&s, sink2.clone());
    wait_until("redelivered", LIMIT, || sink2.seqs().len() >= 3).await;
    assert_eq!(sink2.seqs(), vec![2, 3, 4]);
    ingest2.stop().await;
}

/// Two writers: a device whose batch is slow to commit holds back the acknowledgements of
/// messages that arrived after it and were committed meanwhile by the other writer (PUBACKs
/// leave in arrival order), and each device's messages are stored in the order they came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_writers_acks_leave_in_arrival_order_and_each_device_keeps_its_order() {
    let broker = Broker::start();
    let s = settings(&broker.url(), "ingest-writers", true);
    assert_eq!(s.batch_writers, 2, "the default");
    // Two devices that the dispatcher gives to different writers.
    let slow = "car-slow";
    let Some(fast) = (0..100)
        .map(|i| format!("car-fast-{i}"))
        .find(|d| writer_of(d, 2) != writer_of(slow, 2))
    else {
        panic!("no device for the other writer");
    };
    let sink = MemorySink::default();
    let ingest = Running::start(&s, sink.clone());
    let car = publisher(broker.port, "car-writers");
    until_subscribed(&car, slow, || sink.statuses() > 0).await;
    until_subscribed(&car, &fast, || sink.statuses() > 1).await;
    // Let any status still on its way arrive, then settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_until("the statuses acknowledged", LIMIT, || {
        ingest.metrics.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;

    sink.lock().stall_device = Some(slow.into());
    car.publish(&topic(slow, Kind::Telemetry), telemetry(slow, 1, 1.0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    for seq in 1..=3 {
        car.publish(&topic(&fast, Kind::Telemetry), telemetry(&fast, seq, 2.0));
    }
    wait_until("the fast device's three stored", LIMIT, || {
        sink.seqs() == vec![1, 2, 3]
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ingest.metrics.in_flight.load(Ordering::SeqCst),
        4,
        "committed, but behind the slow device's message in arrival order: none acknowledged"
    );

    sink.lock().stall_device = None;
    wait_until("all four acknowledged", LIMIT, || {
        ingest.metrics.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
    for seq in 2..=40 {
        car.publish(&topic(slow, Kind::Telemetry), telemetry(slow, seq, 1.0));
        car.publish(
            &topic(&fast, Kind::Telemetry),
            telemetry(&fast, seq + 2, 2.0),
        );
    }
    wait_until("every message", LIMIT, || sink.seqs().len() == 4 + 2 * 39).await;
    wait_until("every message acknowledged", LIMIT, || {
        ingest.metrics.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
    let per_device = |device: &str| -> Vec<u64> {
        sink.lock()
            .envelopes
            .iter()
            .filter(|e| e.device_id == device && !matches!(e.message, Uplink::Status(_)))
            .filter_map(|e| match &e.message {
                Uplink::Telemetry(m) => m.header.as_ref().map(|h| h.seq),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        per_device(slow),
        (1..=40).collect::<Vec<_>>(),
        "in order, once"
    );
    assert_eq!(
        per_device(&fast),
        (1..=42).collect::<Vec<_>>(),
        "in order, once"
    );
    ingest.stop().await;

    // Everything was acknowledged: the same session gives nothing again.
    let sink2 = MemorySink::default();
    let ingest2 = Running::start(&s, sink2.clone());
    car.publish(&topic(slow, Kind::Telemetry), telemetry(slow, 99, 1.0));
    wait_until("the marker", LIMIT, || !sink2.seqs().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink2.seqs(), vec![99], "nothing redelivered");
    ingest2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_become_dead_letters_and_do_not_block_the_good_ones() {
    let broker = Broker::start();
    let s = settings(&broker.url(), "ingest-dead", false);
    let sink = MemorySink::default();
    let ingest = Running::start(&s, sink.clone());
    let car = publisher(broker.port, "car-dead");
    until_subscribed(&car, "car3", || sink.statuses() > 0).await;

    car.publish(&topic("car3", Kind::Dtc), vec![0x0A, 0x05, 0x01]);
    car.publish(
        &topic("car3", Kind::Telemetry),
        telemetry("someone-else", 1, 1.0),
    );
    car.publish(&topic("car3", Kind::Telemetry), vec![0u8; 300 * 1024]);
    car.publish(&topic("car3", Kind::Telemetry), telemetry("car3", 1, 1.0));
    wait_until("the good one", LIMIT, || sink.seqs() == vec![1]).await;
    wait_until("three dead letters", LIMIT, || {
        sink.lock().dead_letters.len() == 3
    })
    .await;
    let reasons: Vec<String> = sink
        .lock()
        .dead_letters
        .iter()
        .map(|d| d.reason.clone())
        .collect();
    assert!(reasons[0].contains("dtc protobuf"), "{reasons:?}");
    assert!(reasons[1].contains("does not match"), "{reasons:?}");
    assert!(reasons[2].contains("exceeds the limit"), "{reasons:?}");
    assert_eq!(sink.lock().dead_letters[0].payload, vec![0x0A, 0x05, 0x01]);
    assert_eq!(ingest.metrics.dead_letters.load(Ordering::SeqCst), 3);
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_while_the_ingest_is_down_wait_in_its_session() {
    let broker = Broker::start();
    let s = settings(&broker.url(), "ingest-away", true);
    let sink = MemorySink::default();
    let ingest = Running::start(&s, sink.clone());
    let car = publisher(broker.port, "car-away");
    until_subscribed(&car, "car4", || sink.statuses() > 0).await;
    ingest.stop().await;

    for seq in 1..=3 {
        car.publish(
            &topic("car4", Kind::Telemetry),
            telemetry("car4", seq, 30.0),
        );
    }
    // Let the publishes reach the broker before the ingest comes back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sink2 = MemorySink::default();
    let ingest2 = Running::start(&s, sink2.clone());
    wait_until("the three kept messages", LIMIT, || sink2.seqs().len() == 3).await;
    assert_eq!(sink2.seqs(), vec![1, 2, 3]);
    ingest2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_5_works_too() {
    let broker = Broker::start();
    let mut s = settings(&broker.url(), "ingest-v5", true);
    s.mqtt.broker.protocol = telltale_service::mqtt::Protocol::V5;
    let sink = MemorySink::default();
    let ingest = Running::start(&s, sink.clone());
    let car = publisher(broker.port, "car-v5");
    until_subscribed(&car, "car5", || sink.statuses() > 0).await;
    car.publish(&topic("car5", Kind::Telemetry), telemetry("car5", 1, 1.0));
    wait_until("stored", LIMIT, || sink.seqs() == vec![1]).await;
    wait_until("acknowledged", LIMIT, || {
        ingest.metrics.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
    ingest.stop().await;
}
