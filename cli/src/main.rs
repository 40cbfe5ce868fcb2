//! `fanrush`: the operator CLI.
//!
//! - `fanrush plan`: the provisioned-concurrency plan of a calendar and its cost.
//! - `fanrush simulate`: a spike against Lambda's scaling model.
//! - `fanrush setup`: provisions the local stack's queue + DLQ, migrates
//!   PostgreSQL and restores the gate; prints `SQS_QUEUE_URL=` and
//!   `SQS_DLQ_URL=` lines for the calling script.
//! - `fanrush redrive`: replays the DLQ into the entry queue.
//! - `fanrush bridge`: the local stand-in for Lambda's event sources (SQS
//!   event-source mapping to `writer`, the minute schedule to `scheduler`).

mod args;
mod bridge;
mod plan;
mod redrive;
mod setup;
mod simulate;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    fanrush::telemetry::init();
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    let rest: Vec<String> = argv.collect();
    let outcome = match command.as_str() {
        "setup" => setup::run(&rest).await,
        "bridge" => bridge::run(&rest).await,
        "plan" => plan::run(&rest).await,
        "simulate" => simulate::run(&rest).await,
        "redrive" => redrive::run(&rest).await,
        _ => Err(format!(
            "usage: fanrush <plan|simulate|redrive|setup|bridge> [options]\n{}\n{}\n{}\n{}\n{}",
            plan::USAGE,
            simulate::USAGE,
            redrive::USAGE,
            setup::USAGE,
            bridge::USAGE
        )),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fanrush {command}: {message}");
            ExitCode::FAILURE
        }
    }
}
