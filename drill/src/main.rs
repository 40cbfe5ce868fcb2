//! `fanrush-drill` (`make drill`): the spike under faults.
//!
//! For each scenario the drill opens a fresh fan event, fires the spike at
//! `entry-api` (real binaries under a Runtime API harness of its own, fans
//! identified by JWT authorizer claims), injects the scenario's faults
//! during it, waits until the queue drained and the gate settled (the
//! `scheduler` runs every second, as the minute schedule would, compressed),
//! then checks every invariant against PostgreSQL and Redis. It prints a
//! table and writes `target/drill/results.json`; the exit code is 0 only
//! when lost, duplicates, oversold, leaked and ghost are all zero and no
//! answer was a 5xx other than 503.
//!
//! Everything runs on loopback: a private redis-server and PostgreSQL
//! cluster (children of the drill), the SQS endpoint of `make run`
//! (`AWS_ENDPOINT_URL`), and a fault proxy in front of each.

mod faults;
mod options;
mod report;
mod spike;
mod stack;
mod verify;

use options::Options;
use stack::Drill;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fanrush-drill: {e}\n{}", Options::USAGE);
            return ExitCode::from(2);
        }
    };
    let drill = match Drill::start(&options).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fanrush-drill: could not start the stack: {e}");
            return ExitCode::from(2);
        }
    };
    // Ctrl-C stops the run; the drill's children (functions, Redis,
    // PostgreSQL) are stopped either way.
    let report = tokio::select! {
        report = drill.run_all(&options) => Some(report),
        _ = tokio::signal::ctrl_c() => None,
    };
    drill.stop().await;
    let Some(report) = report else {
        eprintln!("fanrush-drill: interrupted; stopped what the drill started");
        return ExitCode::from(130);
    };
    println!("{}", report.table());
    if let Err(e) = report.save(&options.out) {
        eprintln!("fanrush-drill: could not write {}: {e}", options.out.display());
    }
    if report.clean() {
        ExitCode::SUCCESS
    } else {
        eprintln!("fanrush-drill: an invariant was broken; see the table");
        ExitCode::FAILURE
    }
}
