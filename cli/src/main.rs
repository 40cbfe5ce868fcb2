//! `fanrush`: the operator CLI.
//!
//! - `fanrush plan`: the provisioned-concurrency plan of a calendar and its cost.
//! - `fanrush simulate`: a spike through API Gateway's and Lambda's limits.
//! - `fanrush preflight`: every quota the calendar needs next to the account's.
//! - `fanrush redrive`: replays the DLQ into the entry queue.
//!
//! Operator commands only; the local stand-ins (`setup`, `bridge`,
//! `gateway`) are `fanrush-local`'s.

mod calendar;
mod plan;
mod preflight;
mod redrive;
mod simulate;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    fanrush::telemetry::init();
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    let rest: Vec<String> = argv.collect();
    let outcome = match command.as_str() {
        "plan" => plan::run(&rest).await,
        "simulate" => simulate::run(&rest).await,
        "preflight" => preflight::run(&rest).await,
        "redrive" => redrive::run(&rest).await,
        _ => Err(format!(
            "usage: fanrush <plan|simulate|preflight|redrive> [options]\n{}\n{}\n{}\n{}",
            plan::USAGE,
            simulate::USAGE,
            preflight::USAGE,
            redrive::USAGE
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
