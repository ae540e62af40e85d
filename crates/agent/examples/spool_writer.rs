//! The writer half of the spool crash test (`tests/spool_crash.rs`): appends records with
//! `FsyncPolicy::Always` forever, printing each id `append` returned, until it is killed.
//!
//!     spool_writer DIR FIRST_SEQ

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use telltale_agent::spool::Spool;

#[path = "../tests/common/crash_payload.rs"]
mod crash_payload;

use crash_payload::{MARK, class_of, config, payload};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(Ok(start))) = (args.next(), args.next().map(|s| s.parse::<u64>())) else {
        eprintln!("usage: spool_writer DIR FIRST_SEQ");
        return ExitCode::from(2);
    };
    let mut spool = match Spool::open(config(&PathBuf::from(dir))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("spool_writer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    for seq in start.. {
        match spool.append(class_of(seq), &format!("crash/{seq}"), &payload(seq)) {
            Ok(id) => {
                if writeln!(out, "{MARK}{} {seq}", id.0)
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("spool_writer: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
