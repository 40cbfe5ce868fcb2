//! `fanrush-local`: the local stand-ins `make run` and the contract check
//! start around the real function binaries.
//!
//! - `fanrush-local setup`: creates the entry queue and its DLQ, migrates
//!   PostgreSQL and restores the gate; prints `SQS_QUEUE_URL=` and
//!   `SQS_DLQ_URL=` lines for the calling script.
//! - `fanrush-local bridge`: the SQS event-source mapping to `writer` and
//!   the minute schedule to `scheduler`, against a Lambda Invoke API.
//! - `fanrush-local gateway`: API Gateway's HTTP API in front of
//!   `entry-api` and `admin-api`.

use clap::{Parser, Subcommand};
use fanrush_local::{bridge, gateway, setup};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "fanrush-local", version, about = "The local stand-ins for what AWS runs around fanrush's functions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates the entry queue and its DLQ, migrates PostgreSQL, restores the
    /// gate; prints SQS_QUEUE_URL= and SQS_DLQ_URL= lines.
    Setup(setup::SetupArgs),
    /// The SQS event-source mapping to `writer` and the minute schedule to
    /// `scheduler`, against a Lambda Invoke API.
    Bridge(bridge::BridgeArgs),
    /// API Gateway's HTTP API in front of entry-api and admin-api.
    Gateway(gateway::GatewayArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    fanrush::telemetry::init();
    let (name, outcome) = match Cli::parse().command {
        Command::Setup(a) => ("setup", setup::run(a).await),
        Command::Bridge(a) => ("bridge", bridge::run(a).await),
        Command::Gateway(a) => ("gateway", gateway::serve(a).await),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fanrush-local {name}: {message}");
            ExitCode::FAILURE
        }
    }
}
