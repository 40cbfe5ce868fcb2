//! `fanrush`: the operator CLI.
//!
//! - `fanrush plan`: the provisioned-concurrency plan of a calendar and its cost
//!   (`--chart` draws it).
//! - `fanrush simulate`: a spike through API Gateway's and Lambda's limits,
//!   the gate's Redis core and, with a line, its pace and polls (`--chart`
//!   draws it second by second).
//! - `fanrush preflight`: every quota the calendar needs next to the account's.
//! - `fanrush measure-gate`: the admitted-fan ceiling of a real Redis node.
//! - `fanrush redrive`: replays the DLQ into the entry queue.
//! - `fanrush events`: defines, reads, lists and deletes events through the
//!   admin API, signed with SigV4; `fanrush entries` takes an event's
//!   entries out, page after page.
//! - `fanrush verify-draw`: checks an event's pre-queue draw, and a fan's
//!   place or receipt in it, from what fanrush published.
//!
//! Operator commands only; the local stand-ins (`setup`, `bridge`,
//! `gateway`) are `fanrush-local`'s.

mod admin;
mod calendar;
mod chart;
mod measure;
mod plan;
mod preflight;
mod redrive;
mod simulate;
mod verify_draw;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "fanrush",
    version,
    about = "Operator commands for fanrush: plan, simulate and check a fan event",
    arg_required_else_help = true
)]
struct Cli {
    /// Print this CLI's reference as Markdown (make tables writes docs/cli.md from it).
    #[arg(long, hide = true)]
    markdown_help: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The provisioned-concurrency plan of a calendar and its cost.
    Plan(plan::PlanArgs),
    /// A spike through API Gateway's and Lambda's limits, the gate's Redis
    /// core and, with a line, its pace and polls.
    Simulate(simulate::SimulateArgs),
    /// Every quota the calendar's events need next to the account's; exits 1
    /// when a check fails.
    Preflight(preflight::PreflightArgs),
    /// Measures the admitted-fan ceiling of a Redis node (admit plus
    /// confirm) on scratch keys, for the preflight and admissionsPerSecond.
    MeasureGate(measure::MeasureArgs),
    /// Replays the entry queue's DLQ into the entry queue.
    Redrive(redrive::RedriveArgs),
    /// Defines, reads, lists and deletes events through the admin API
    /// (SigV4 from the AWS credential chain).
    Events(admin::EventsArgs),
    /// Writes an event's entries to stdout in position order, every page
    /// of them (SigV4 from the AWS credential chain).
    Entries(admin::EntriesArgs),
    /// Checks an event's pre-queue draw against its commitment, recomputes
    /// the whole order, and checks a fan's place or receipt; exits 1 at the
    /// first discrepancy.
    VerifyDraw(verify_draw::VerifyDrawArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    fanrush::telemetry::init();
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        if cli.markdown_help {
            clap_markdown::print_help_markdown::<Cli>();
            return ExitCode::SUCCESS;
        }
        // arg_required_else_help answers a bare `fanrush`; a flag alone lands here.
        eprintln!("fanrush: name a command (fanrush --help lists them)");
        return ExitCode::from(2);
    };
    let (name, outcome) = match command {
        Command::Plan(a) => ("plan", plan::run(a).await),
        Command::Simulate(a) => ("simulate", simulate::run(a).await),
        Command::Preflight(a) => ("preflight", preflight::run(a).await),
        Command::MeasureGate(a) => ("measure-gate", measure::run(a).await),
        Command::Redrive(a) => ("redrive", redrive::run(a).await),
        Command::Events(a) => ("events", admin::events(a).await),
        Command::Entries(a) => ("entries", admin::entries(a).await),
        Command::VerifyDraw(a) => ("verify-draw", verify_draw::run(a).await),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fanrush {name}: {message}");
            ExitCode::FAILURE
        }
    }
}
