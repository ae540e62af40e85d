//! `telltale demo`: one command starts the broker, the ingest, the CRM and simulated cars
//! with their agents; faults come out as leads with quotes and working owner's links, and
//! Ctrl-C stops it cleanly.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use telltale_e2e::binary;
use telltale_e2e::rig::http_request;

#[test]
fn the_demo_turns_faults_into_quotes_and_stops_on_ctrl_c() {
    let mut demo = Command::new(binary("telltale"))
        .args([
            "demo",
            "--vehicles",
            "2",
            "--scenario",
            "catalyst",
            "--scenario",
            "thermostat",
            "--time-scale",
            "400",
            "--http-listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run telltale demo");
    let stdout = demo.stdout.take().expect("its stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let start = Instant::now();
    while seen
        .iter()
        .filter(|l: &&String| l.contains("owner's link:"))
        .count()
        < 2
    {
        let left = Duration::from_secs(90).saturating_sub(start.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = demo.kill();
                panic!(
                    "two leads did not come out within 90 s; output so far:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
    let text = seen.join("\n");
    // The catalyst car's quote at the demo garage's rates: the totals worked out by hand in the
    // CRM's contract test (USD 150.00/h, 8.25 % tax...).
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

    // Ctrl-C: everything stops in order and the command succeeds.
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
    let rest: Vec<String> = lines.try_iter().collect();
    let mut err = String::new();
    if let Some(mut e) = demo.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(exit.success(), "exit {exit}: {err}");
    assert!(rest.iter().any(|l| l == "stopped"), "{rest:?} {err}");
}
