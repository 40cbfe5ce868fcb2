//! `fanrush plan`: the provisioned-concurrency step function a calendar
//! needs, with its estimated cost, before the event.

use crate::calendar;
use fanrush::flags::Args;
use fanrush::rules::domain::{rfc3339, EventId};
use fanrush::rules::scaling::{grantable, ScalingParams, ScalingPlan};
use serde_json::{json, Value};

pub const USAGE: &str =
    "  fanrush plan --calendar FILE(.json|.ics) [--duration-ms D] [--headroom H] [--account-limit N]
               [--memory-mb 128] [--price-per-gb-second P] [--json]";

use fanrush::rules::scaling::preflight::PRICE_PER_GB_SECOND;

pub async fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &["calendar", "duration-ms", "headroom", "account-limit", "memory-mb", "price-per-gb-second"],
        &["json"],
    )?;
    let calendar = calendar::load(&args.need::<String>("calendar")?, chrono::Utc::now())?;
    for why in &calendar.skipped {
        eprintln!("skipped: {why}");
    }
    let events = calendar.events;
    let params = scaling_params(&args)?;
    let limit: Option<i64> = args.opt("account-limit").map(|v| v.parse().map_err(|_| "--account-limit")).transpose()?;
    let plan = ScalingPlan::new(&params, &events, limit.map(|l| grantable(l, 0)));
    let memory_mb: u32 = args.get("memory-mb", 128)?;
    let price: f64 = args.get("price-per-gb-second", PRICE_PER_GB_SECOND)?;
    let gb_seconds = plan.gb_seconds(memory_mb);
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
                "boundBy": n.bound.as_str(),
                "from": rfc3339(n.from),
                "until": rfc3339(n.until),
            })
        })
        .collect();
    let cost = json!({
        "gbSeconds": (gb_seconds * 1000.0).round() / 1000.0,
        "dollars": (gb_seconds * price * 100.0).round() / 100.0,
        "memoryMb": memory_mb,
        "pricePerGbSecond": price,
    });
    if args.switch("json") {
        println!("{}", json!({ "needs": needs, "actions": actions, "cost": cost }));
        return Ok(());
    }
    for n in &plan.needs {
        println!(
            "{}: {} environments from {} until {}, bound by {}",
            n.event,
            n.environments,
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
        "cost: {} GB-s at {memory_mb} MB = ${} (at ${price}/GB-s, x86_64 us-east-1 provisioned-concurrency price)",
        cost["gbSeconds"], cost["dollars"]
    );
    Ok(())
}

/// `--duration-ms` and `--headroom` over the scheduler's defaults.
pub fn scaling_params(args: &Args) -> Result<ScalingParams, String> {
    let defaults = ScalingParams::default();
    Ok(ScalingParams {
        duration: std::time::Duration::from_secs_f64(
            args.get("duration-ms", defaults.duration.as_secs_f64() * 1e3)? / 1e3,
        ),
        headroom: args.get("headroom", defaults.headroom)?,
        ..defaults
    })
}
