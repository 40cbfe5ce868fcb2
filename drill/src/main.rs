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
//! cluster (children of the drill), for the cluster scenarios a private
//! three-shard Redis cluster on a second stack, the SQS endpoint of `make run`
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
    // The scenarios on one node first, then those on a cluster, each set on
    // a stack of its own.
    let mut report = None::<report::Report>;
    for cluster in [false, true] {
        let these: Vec<&scenarios::Scenario> = scenarios.iter().filter(|s| s.cluster == cluster).collect();
        if these.is_empty() {
            continue;
        }
        let stack = match Stack::start(&options, cluster).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("fanrush-drill: could not start the stack: {e}");
                return ExitCode::from(2);
            }
        };
        // Ctrl-C stops the run; the drill's children (functions, Redis,
        // PostgreSQL) are stopped either way.
        let part = tokio::select! {
            part = run::run_all(&stack, &these, &options) => Some(part),
            _ = tokio::signal::ctrl_c() => None,
        };
        stack.stop().await;
        let Some(part) = part else {
            eprintln!("fanrush-drill: interrupted; stopped what the drill started");
            return ExitCode::from(130);
        };
        report = Some(match report {
            Some(mut r) => {
                r.rows.extend(part.rows);
                r
            }
            None => part,
        });
    }
    let Some(report) = report else { return ExitCode::from(2) };
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
