//! `fanrush-local`: the local stand-ins `make run` and the contract check
//! start around the real function binaries.
//!
//! - `fanrush-local setup`: creates the entry queue and its DLQ, migrates
//!   PostgreSQL and restores the gate; prints `SQS_QUEUE_URL=` and
//!   `SQS_DLQ_URL=` lines for the calling script.
//! - `fanrush-local bridge`: the SQS event-source mapping to `writer` and
//!   the minute schedule to `scheduler`, against `cargo lambda watch`.
//! - `fanrush-local gateway`: API Gateway's HTTP API in front of
//!   `entry-api` and `admin-api`.

use fanrush_local::{bridge, gateway, setup};
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
        "gateway" => gateway::serve(&rest).await,
        _ => Err(format!(
            "usage: fanrush-local <setup|bridge|gateway> [options]\n{}\n{}\n{}",
            setup::USAGE,
            bridge::USAGE,
            gateway::USAGE
        )),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fanrush-local {command}: {message}");
            ExitCode::FAILURE
        }
    }
}
