//! `telltale demo`: one command starts the broker, the ingest, the CRM and simulated cars
//! with their agents; faults come out as leads with quotes and working owner's links, and
//! Ctrl-C stops it cleanly. Once on the embedded parts, once on the real PostgreSQL and
//! Mosquitto.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use telltale_e2e::binary;
use telltale_e2e::pg::Rows;
use telltale_e2e::rig::http_request;

/// Starts `telltale demo args..` (free ports, 400x) and returns it with its output so far,
/// once it has printed `links` owner's links.
fn demo_until_links(args: &[&str], links: usize) -> (Child, mpsc::Receiver<String>, Vec<String>) {
    let mut all = vec![
        "demo",
        "--time-scale",
        "400",
        "--http-listen",
        "127.0.0.1:0",
        "--grpc-listen",
        "127.0.0.1:0",
    ];
    all.extend_from_slice(args);
    let mut demo = Command::new(binary("telltale"))
        .args(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run telltale demo");
    let lines = telltale_e2e::lines_of(demo.stdout.take().expect("its stdout"));
    let mut seen: Vec<String> = Vec::new();
    let start = Instant::now();
    while seen.iter().filter(|l| l.contains("owner's link:")).count() < links {
        let left = Duration::from_secs(90).saturating_sub(start.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = demo.kill();
                panic!(
                    "{links} leads did not come out within 90 s; output so far:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
    (demo, lines, seen)
}

/// Ctrl-C: the demo must stop within 30 s, succeed and say so.
fn ctrl_c(mut demo: Child, lines: &mpsc::Receiver<String>) {
    let status = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = demo.try_wait().expect("wait") {
            break exit;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = demo.kill();
            panic!("the demo did not stop within 30 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The reader thread may still be passing on the last lines.
    std::thread::sleep(Duration::from_millis(200));
    let rest: Vec<String> = lines.try_iter().collect();
    let mut err = String::new();
    if let Some(mut e) = demo.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(exit.success(), "exit {exit}: {err}");
    assert!(rest.iter().any(|l| l == "stopped"), "{rest:?} {err}");
}

#[test]
fn the_demo_turns_faults_into_quotes_and_stops_on_ctrl_c() {
    let (demo, lines, seen) = demo_until_links(
        &[
            "--vehicles",
            "2",
            "--scenario",
            "catalyst",
            "--scenario",
            "thermostat",
        ],
        2,
    );
    let text = seen.join("\n");
    // The quotes at the demo garage's rates are the totals worked out by hand in the CRM's
    // contract test (USD 150.00/h, 8.25 % tax on parts and supplies...).
    assert!(text.contains("P0420 (Emissions / catalyst)"), "{text}");
    assert!(text.contains("quote: USD 1,114.94 most likely"), "{text}");
    assert!(
        text.contains("P0128 (Cooling)") && text.contains("quote: USD 423.46 most likely"),
        "{text}"
    );
    // The owner's link works while the demo runs.
    let link = seen
        .iter()
        .find_map(|l| l.split("owner's link: ").nth(1))
        .expect("a link");
    let rest = link
        .strip_prefix("http://127.0.0.1:")
        .expect("a local link");
    let (port, path) = rest.split_once('/').expect("a port and a path");
    let (code, page) = http_request(
        port.parse().expect("a port"),
        "GET",
        &format!("/{path}"),
        None,
    )
    .expect("the quote page");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Your options"), "{page}");
    ctrl_c(demo, &lines);
}

#[test]
fn the_demo_runs_on_real_postgresql_and_mosquitto() {
    let db = telltale_e2e::pg::Database::create();
    let broker = telltale_e2e::mqtt::Broker::start();
    let url = broker.url();
    let (demo, lines, seen) = demo_until_links(
        &[
            "--vehicles",
            "1",
            "--scenario",
            "catalyst",
            "--postgres",
            &db.url,
            "--mqtt",
            &url,
        ],
        1,
    );
    let text = seen.join("\n");
    assert!(text.contains("P0420") && !text.contains("sqlite"), "{text}");
    // The lead went through the real services: the store's outbox and the CRM's schema.
    assert_eq!(
        db.count("SELECT count(*) FROM lead_outbox WHERE code = 'P0420'"),
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM crm.leads"), 1);
    ctrl_c(demo, &lines);
}
