//! `fanrush plan`: the provisioned-concurrency step function a calendar
//! needs, with its estimated cost, before the event.

use fanrush::flags::Args;
use fanrush::rules::domain::{parse_ics, rfc3339, EventId, FanEvent, FanEventSpec};
use fanrush::rules::scaling::{grantable, ScalingParams, ScalingPlan};
use serde_json::{json, Value};

pub const USAGE: &str =
    "  fanrush plan --calendar FILE(.json|.ics) [--duration-ms D] [--headroom H] [--account-limit N]
               [--memory-mb 128] [--price-per-gb-second P] [--json]";

/// Lambda's provisioned-concurrency price, x86_64 in us-east-1 (USD per
/// GB-second of allocated provisioned concurrency; arm64 is $0.0000033334).
pub const PRICE_PER_GB_SECOND: f64 = 0.000_004_166_7;

pub async fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &["calendar", "duration-ms", "headroom", "account-limit", "memory-mb", "price-per-gb-second"],
        &["json"],
    )?;
    let path: String = args.need("calendar")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let events = if path.ends_with(".ics") { ics(&text) } else { json_calendar(&text)? };
    let defaults = ScalingParams::default();
    let params = ScalingParams {
        duration: std::time::Duration::from_secs_f64(
            args.get("duration-ms", defaults.duration.as_secs_f64() * 1e3)? / 1e3,
        ),
        headroom: args.get("headroom", defaults.headroom)?,
        ..defaults
    };
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

fn json_calendar(text: &str) -> Result<Vec<FanEvent>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("calendar: not JSON: {e}"))?;
    let items = value.as_array().ok_or("calendar: expected a JSON array of events")?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let fields = item.as_object().ok_or(format!("calendar[{i}]: not an object"))?;
            let id = fields.get("eventId").and_then(Value::as_str).ok_or(format!("calendar[{i}]: no eventId"))?;
            let id = EventId::parse(id).map_err(|e| format!("calendar[{i}]: {e}"))?;
            FanEventSpec::from_fields(id, fields).map_err(|e| format!("calendar[{i}]: {e}"))
        })
        .collect()
}

fn ics(text: &str) -> Vec<FanEvent> {
    let calendar = parse_ics(text);
    for why in &calendar.skipped {
        eprintln!("skipped: {why}");
    }
    calendar.events
}
