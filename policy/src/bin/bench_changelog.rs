//! `bench-changelog`: changelog processing speed of the policy engine on one core over a
//! synthetic changelog (see `policy::bench`). Prints one JSON line. Built only with the
//! `testing` feature: it runs the engine on the in-memory fakes.

use clap::Parser;

/// Changelog processing speed over a synthetic changelog (records/s on one core).
#[derive(Parser)]
#[command(name = "bench-changelog")]
struct Args {
    /// Records to feed.
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// Distinct files the records touch.
    #[arg(long, default_value_t = 100_000)]
    files: u64,
}

fn main() {
    let args = Args::parse();
    match policy::bench::run(args.records, args.files)
        .and_then(|r| serde_json::to_string(&r).map_err(|e| e.to_string()))
    {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("bench-changelog: {e}");
            std::process::exit(1);
        }
    }
}
