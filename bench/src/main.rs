//! `make bench`: fanrush's figures, each next to the limit it is bounded by,
//! measured in the same run on this machine. Prints a table and writes
//! `target/bench/results.json`.
//!
//! Figures (each a median over repeated runs unless it is a percentile):
//! cold start, memory, accept path, sold-out path, CPU per request, writer
//! throughput, the gate restore of a 1,000,000-entry event, the latency
//! cost of `WAIT 1` per admission, the line (admitted fans per second with both
//! scripts, commands per join and poll, a waiting answer's p50), a hostile client's
//! commands on the core, the opening second (200 environments' first
//! requests at once against Redis with TLS and AUTH), three events on one shard and on a three-shard
//! cluster, package size, concurrency per 10,000 rps, and the Weverse talk's
//! Node.js stack (`bench/peer`) side by side. See docs/benchmarks.md for what each
//! measures and why.

mod cluster;
mod figures;
mod hostile;
mod line;
mod opening;
mod replication;
mod restore;
mod workloads;

use clap::{Parser, ValueEnum};
use figures::Report;
use std::path::PathBuf;

/// One section of the benchmarks.
#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Section {
    Cold,
    Accept,
    Memory,
    Writer,
    Restore,
    Replication,
    Line,
    Hostile,
    Opening,
    Cluster,
    Package,
    Arm64,
    Peer,
}

#[derive(Parser)]
#[command(name = "fanrush-bench", version, about = "fanrush's figures, each next to the limit it is bounded by")]
struct Args {
    /// Fewer repetitions and smaller sizes: a smoke run, not figures to quote.
    #[arg(long)]
    quick: bool,
    /// Run only these sections (comma-separated) [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let quick = args.quick;
    let run = |section: Section| args.only.is_empty() || args.only.contains(&section);
    let mut report = Report::default();
    let mut w = workloads::Workloads::setup(root.clone(), quick).await;

    if run(Section::Cold) {
        eprintln!("[bench] cold start");
        w.cold_starts(&mut report).await;
    }
    if run(Section::Accept) {
        eprintln!("[bench] accept path, sold-out path, CPU");
        w.accept_path(&mut report).await;
        w.concurrency(&mut report);
    }
    if run(Section::Memory) {
        eprintln!("[bench] memory");
        w.memory(&mut report).await;
    }
    if run(Section::Writer) {
        eprintln!("[bench] writer");
        w.writer(&mut report).await;
    }
    if run(Section::Restore) {
        eprintln!("[bench] gate restore at scale");
        restore::restore(&root, w.env(), quick, &mut report).await;
    }
    if run(Section::Replication) {
        eprintln!("[bench] the cost of WAIT 1 per admission");
        replication::replication(quick, &mut report).await;
    }
    if run(Section::Line) {
        eprintln!("[bench] the line: its cost on the gate's core and a waiting answer's");
        line::line(&root, w.env(), quick, &mut report).await;
    }
    if run(Section::Hostile) {
        eprintln!("[bench] a hostile client's cost on the event's core");
        hostile::hostile(&root, w.env(), quick, &mut report).await;
    }
    if run(Section::Opening) {
        eprintln!("[bench] the opening second");
        opening::opening(&root, w.env(), quick, &mut report).await;
    }
    if run(Section::Cluster) {
        eprintln!("[bench] three events at once: one shard, then three");
        cluster::cluster(quick, &mut report).await;
    }
    if run(Section::Package) {
        eprintln!("[bench] package size");
        w.package_sizes(&mut report);
    }
    if run(Section::Arm64) {
        eprintln!("[bench] arm64, the template's default architecture");
        w.arm64(&mut report).await;
    }
    if run(Section::Peer) {
        eprintln!("[bench] Node.js peer");
        w.peer(&mut report).await;
    }

    report.print();
    let out = root.join("target/bench/results.json");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, serde_json::to_string_pretty(&report.json()).unwrap()).unwrap();
    eprintln!("[bench] wrote {}", out.display());
}
