//! `fanrush-drill` (`make drill`): the spike under faults.
//!
//! For each scenario the drill opens a fresh fan event, fires its traffic at
//! `entry-api` (real binaries under a Runtime API harness of its own, fans
//! identified by JWT authorizer claims): the spike, or an opening at a line
//! whose fans follow the line's protocol. It injects the scenario's faults
//! during it, waits until the queue drained and the gate settled (the
//! `scheduler` runs every second, as the minute schedule would, compressed),
//! then checks every invariant against PostgreSQL and Redis, and for a line
//! its fairness. It prints tables and writes `target/drill/results.json`;
//! the exit code is 0 only when lost, duplicates, oversold, leaked and ghost
//! are all zero, no answer was a 5xx other than 503, and every line was fair.
//!
//! Everything runs on loopback: a private redis-server and PostgreSQL
//! cluster (children of the drill), the SQS endpoint of `make run`
//! (`AWS_ENDPOINT_URL`), and a fault proxy in front of each.
//!
//! The modules, each using only those before it: [`options`], [`verify`]
//! (the invariants), [`spike`] and [`line`] (the traffic), [`fairness`]
//! (the line's checks), [`scenarios`] (what to play), [`stack`] (what it is
//! played on), [`faults`] (playing a fault), [`report`], [`run`].

mod draw;
mod fairness;
mod faults;
mod line;
mod options;
mod report;
mod run;
mod scenarios;
mod spike;
mod stack;
mod verify;

use clap::Parser;
use options::Options;
use stack::Stack;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let options = match Options::parse().checked() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fanrush-drill: {e}");
            return ExitCode::from(2);
        }
    };
    let scenarios = match scenarios::resolve(&options.scenarios) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fanrush-drill: {e}");
            return ExitCode::from(2);
        }
    };
    let stack = match Stack::start(&options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fanrush-drill: could not start the stack: {e}");
            return ExitCode::from(2);
        }
    };
    // Ctrl-C stops the run; the drill's children (functions, Redis,
    // PostgreSQL) are stopped either way.
    let report = tokio::select! {
        report = run::run_all(&stack, &scenarios, &options) => Some(report),
        _ = tokio::signal::ctrl_c() => None,
    };
    stack.stop().await;
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
