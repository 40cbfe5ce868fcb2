//! `fanrush plan`: the provisioned-concurrency step function a calendar
//! needs, with its estimated cost, before the event.

use crate::calendar;
use fanrush::rules::domain::{rfc3339, EventId};
use fanrush::rules::scaling::preflight::PRICE_PER_GB_SECOND;
use fanrush::rules::scaling::{grantable, ScalingParams, ScalingPlan};
use serde_json::{json, Value};
use std::path::PathBuf;

/// How entry-api is sized: its duration and the headroom over the need.
#[derive(clap::Args, Clone, Copy)]
pub struct Sizing {
    /// entry-api's p99 duration, ms [default: the scheduler's, 20].
    #[arg(long, value_name = "MS")]
    duration_ms: Option<f64>,
    /// Multiplier over the bare need (at least 1) [default: 1.2].
    #[arg(long)]
    headroom: Option<f64>,
}

impl Sizing {
    /// These flags over the scheduler's defaults.
    pub fn params(&self) -> Result<ScalingParams, String> {
        let defaults = ScalingParams::default();
        let duration_ms = self.duration_ms.unwrap_or(defaults.duration.as_secs_f64() * 1e3);
        if !(duration_ms.is_finite() && duration_ms > 0.0) {
            return Err(format!("--duration-ms {duration_ms}: must be a positive number"));
        }
        let headroom = self.headroom.unwrap_or(defaults.headroom);
        if !(headroom.is_finite() && headroom >= 1.0) {
            return Err(format!("--headroom {headroom}: must be a number of at least 1"));
        }
        Ok(ScalingParams { duration: std::time::Duration::from_secs_f64(duration_ms / 1e3), headroom, ..defaults })
    }
}

#[derive(clap::Args)]
pub struct PlanArgs {
    /// A JSON array of events (the admin API's fields plus eventId) or an .ics file.
    #[arg(long, value_name = "FILE")]
    calendar: PathBuf,
    #[command(flatten)]
    sizing: Sizing,
    /// The account's "Concurrent executions", to clamp against.
    #[arg(long, value_name = "N")]
    account_limit: Option<i64>,
    /// entry-api's memory, for the cost.
    #[arg(long, default_value_t = 128)]
    memory_mb: u32,
    /// USD per GB-second of provisioned concurrency [default: arm64 in us-east-1; x86_64 is 0.0000041667].
    #[arg(long, default_value_t = PRICE_PER_GB_SECOND)]
    price_per_gb_second: f64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Also draw the plan as SVG: each event's environments over time,
    /// stacked, with the account's clamp.
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<PathBuf>,
}

pub async fn run(args: PlanArgs) -> Result<(), String> {
    let calendar = calendar::load(&args.calendar, chrono::Utc::now())?;
    for why in &calendar.skipped {
        eprintln!("skipped: {why}");
    }
    let events = calendar.events;
    let params = args.sizing.params()?;
    let plan = ScalingPlan::new(&params, &events, args.account_limit.map(|l| grantable(l, 0)));
    if let Some(path) = &args.chart {
        crate::chart::plan(path, &plan).map_err(|e| format!("--chart {}: {e}", path.display()))?;
    }
    let (memory_mb, price) = (args.memory_mb, args.price_per_gb_second);
    // `+ 0.0`: an empty plan's sum is -0.0, which prints as a negative cost.
    let gb_seconds = plan.gb_seconds(memory_mb) + 0.0;
    let actions: Vec<Value> = plan
        .actions()
        .iter()
        .map(|a| {
            json!({
                "at": rfc3339(a.at),
                "provisionedConcurrency": a.provisioned_concurrency,
                "events": a.events.iter().map(EventId::as_str).collect::<Vec<_>>(),
                "clamped": a.clamped,
            })
        })
        .collect();
    let needs: Vec<Value> = plan
        .needs
        .iter()
        .map(|n| {
            json!({
                "eventId": n.event.as_str(),
                "environments": n.environments,
                "requestsPerSecond": n.requests_per_second,
                "boundBy": n.bound.as_str(),
                "from": rfc3339(n.from),
                "until": rfc3339(n.until),
            })
        })
        .collect();
    let cost = json!({
        "gbSeconds": (gb_seconds * 1000.0).round() / 1000.0,
        "dollars": (gb_seconds * price * 100.0).round() / 100.0 + 0.0,
        "memoryMb": memory_mb,
        "pricePerGbSecond": price,
    });
    if args.json {
        println!("{}", json!({ "needs": needs, "actions": actions, "cost": cost }));
        return Ok(());
    }
    for n in &plan.needs {
        println!(
            "{}: {} environments for {:.0} requests/s from {} until {}, bound by {}",
            n.event,
            n.environments,
            n.requests_per_second,
            rfc3339(n.from),
            rfc3339(n.until),
            n.bound.as_str()
        );
    }
    println!("{:<22} {:>12}  {:<8} events", "at", "provisioned", "clamped");
    for a in &actions {
        let events: Vec<&str> = a["events"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        println!(
            "{:<22} {:>12}  {:<8} {}",
            a["at"].as_str().unwrap_or_default(),
            a["provisionedConcurrency"].as_i64().unwrap_or_default(),
            if a["clamped"] == true { "yes" } else { "" },
            events.join(", ")
        );
    }
    println!(
        "cost: {} GB-s at {memory_mb} MB = ${} (at ${price}/GB-s: arm64 us-east-1 provisioned concurrency unless --price-per-gb-second says otherwise)",
        cost["gbSeconds"], cost["dollars"]
    );
    Ok(())
}
