//! `make bench`: fanrush's figures, each next to the limit it is bounded by,
//! measured in the same run on this machine. Prints a table and writes
//! `target/bench/results.json`.
//!
//! Figures (each a median over repeated runs unless it is a percentile):
//! cold start, memory, accept path, sold-out path, CPU per request, writer
//! throughput, the gate restore of a 1,000,000-entry event, the latency
//! cost of `WAIT 1` per admission, admissions per second on one Redis core
//! (the preflight's ceiling), the line (admitted fans per second with both
//! scripts, commands per join and poll, a waiting answer's p50), the opening second (200 environments' first
//! requests at once against Redis with TLS and AUTH), package size, concurrency per 10,000 rps, and the Weverse talk's
//! Node.js stack (`bench/peer`) side by side. See docs/benchmarks.md for what each
//! measures and why.

mod admissions;
mod figures;
mod line;
mod opening;
mod replication;
mod restore;
mod workloads;

use figures::Report;
use std::path::PathBuf;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only a,b` runs just those sections (cold,accept,memory,writer,restore,replication,admissions,line,opening,package,arm64,peer).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').map(str::to_owned).collect());
    let run = |section: &str| only.as_ref().is_none_or(|o| o.iter().any(|s| s == section));
    let mut report = Report::default();
    let mut w = workloads::Workloads::setup(root.clone(), quick).await;

    if run("cold") {
        eprintln!("[bench] cold start");
        w.cold_starts(&mut report).await;
    }
    if run("accept") {
        eprintln!("[bench] accept path, sold-out path, CPU");
        w.accept_path(&mut report).await;
        w.concurrency(&mut report);
    }
    if run("memory") {
        eprintln!("[bench] memory");
        w.memory(&mut report).await;
    }
    if run("writer") {
        eprintln!("[bench] writer");
        w.writer(&mut report).await;
    }
    if run("restore") {
        eprintln!("[bench] gate restore at scale");
        restore::restore(&root, w.env(), quick, &mut report).await;
    }
    if run("replication") {
        eprintln!("[bench] the cost of WAIT 1 per admission");
        replication::replication(quick, &mut report).await;
    }
    if run("admissions") {
        eprintln!("[bench] admissions per second on one Redis core");
        admissions::admissions(quick, &mut report).await;
    }
    if run("line") {
        eprintln!("[bench] the line: its cost on the gate's core and a waiting answer's");
        line::line(&root, w.env(), quick, &mut report).await;
    }
    if run("opening") {
        eprintln!("[bench] the opening second");
        opening::opening(&root, w.env(), quick, &mut report).await;
    }
    if run("package") {
        eprintln!("[bench] package size");
        w.package_sizes(&mut report);
    }
    if run("arm64") {
        eprintln!("[bench] arm64, the template's default architecture");
        w.arm64(&mut report).await;
    }
    if run("peer") {
        eprintln!("[bench] Node.js peer");
        w.peer(&mut report).await;
    }

    report.print();
    let out = root.join("target/bench/results.json");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, serde_json::to_string_pretty(&report.json()).unwrap()).unwrap();
    eprintln!("[bench] wrote {}", out.display());
}
