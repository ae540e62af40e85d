//! `telltale-ingest` (skeleton).
fn main() {
    eprintln!("telltale-ingest: not built yet");
    std::process::exit(2);
}
