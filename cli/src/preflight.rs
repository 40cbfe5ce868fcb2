//! `fanrush preflight`: every quota the calendar's events need next to what
//! the account has, before the event. Exits non-zero when any check fails.
//!
//! The account's Lambda concurrency comes from `GetAccountSettings` unless
//! `--account-limit` is given; API Gateway's quota from `--api-rate` and
//! `--api-burst` (AWS's defaults otherwise: there is no API to read it from
//! API Gateway itself); the Redis and writer capacities from `make bench`.

use crate::calendar;
use crate::plan::scaling_params;
use fanrush::adapters::lambda_control::ProvisionedConcurrency;
use fanrush::flags::Args;
use fanrush::rules::domain::{rfc3339, EventId};
use fanrush::rules::scaling::preflight::{preflight, Account, Capacities, Preflight, Pricing, PRICE_PER_GB_SECOND};
use serde_json::{json, Value};

pub const USAGE: &str =
    "  fanrush preflight --calendar FILE(.json|.ics) [--account-limit N] [--unreserved N] [--api-rate 10000]
                    [--api-burst 5000] [--duration-ms D] [--headroom H] [--redis-admissions-per-second X]
                    [--writer-rows-per-second X] [--writer-max-concurrency 5] [--memory-mb 128]
                    [--price-per-gb-second P] [--now RFC3339] [--json]";

pub async fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &[
            "calendar",
            "account-limit",
            "unreserved",
            "api-rate",
            "api-burst",
            "duration-ms",
            "headroom",
            "redis-admissions-per-second",
            "writer-rows-per-second",
            "writer-max-concurrency",
            "memory-mb",
            "price-per-gb-second",
            "now",
        ],
        &["json"],
    )?;
    let params = scaling_params(&args)?;
    let defaults = Account::defaults();
    let (concurrency, unreserved) = match args.opt("account-limit") {
        Some(_) => {
            let limit: i64 = args.need("account-limit")?;
            (limit, args.get("unreserved", limit)?)
        }
        None => {
            let account = ProvisionedConcurrency::lazy("entry-api", "live").account().await.map_err(|e| {
                format!("could not read the account's concurrency ({e}); pass --account-limit (and --unreserved)")
            })?;
            (account.limit, account.unreserved)
        }
    };
    let account = Account {
        concurrency,
        unreserved,
        already_provisioned: 0,
        api_rate: args.get("api-rate", defaults.api_rate)?,
        api_burst: args.get("api-burst", defaults.api_burst)?,
    };
    let measured = Capacities::default();
    let capacities = Capacities {
        redis_admissions_per_second: args.get("redis-admissions-per-second", measured.redis_admissions_per_second)?,
        writer_rows_per_second: args.get("writer-rows-per-second", measured.writer_rows_per_second)?,
        writer_max_concurrency: args.get("writer-max-concurrency", measured.writer_max_concurrency)?,
    };
    let pricing = Pricing {
        memory_mb: args.get("memory-mb", 128)?,
        per_gb_second: args.get("price-per-gb-second", PRICE_PER_GB_SECOND)?,
    };
    let now = match args.opt("now") {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t).map_err(|e| format!("--now {t:?}: {e}"))?.to_utc(),
        None => chrono::Utc::now(),
    };
    let calendar = calendar::load(&args.need::<String>("calendar")?, now)?;
    let mut report = preflight(&params, &calendar.events, account, capacities, pricing, now);
    report.skipped = calendar.skipped;
    if args.switch("json") {
        println!("{}", to_json(&report, account, capacities));
    } else {
        print_text(&report, capacities);
    }
    let failed = report.failed().count();
    if failed > 0 {
        return Err(format!("{failed} of {} checks failed", report.checks.len()));
    }
    Ok(())
}

fn to_json(report: &Preflight, account: Account, capacities: Capacities) -> Value {
    let events: Vec<Value> = report
        .events
        .iter()
        .map(|f| {
            json!({
                "eventId": f.event.as_str(),
                "peakRps": f.peak_rps,
                "capacity": f.capacity,
                "environments": f.environments,
                "boundBy": f.bound.as_str(),
                "scaleOutAt": rfc3339(f.scale_out_at),
                "scaleInAt": rfc3339(f.scale_in_at),
                "allocationMinutes": f.allocation.num_minutes(),
                "redisLoad": round(f.redis_load, 3),
                "queueDepth": f.capacity,
                "drainSeconds": round(f.drain_seconds, 3),
                "databaseConnections": capacities.writer_max_concurrency,
                "costDollars": round(f.cost_dollars, 2),
            })
        })
        .collect();
    let overlaps: Vec<Value> = report
        .overlaps
        .iter()
        .map(|o| {
            json!({
                "events": o.events.iter().map(EventId::as_str).collect::<Vec<_>>(),
                "at": rfc3339(o.at),
                "environments": o.environments,
                "peakRps": o.peak_rps,
            })
        })
        .collect();
    let checks: Vec<Value> = report
        .checks
        .iter()
        .map(
            |c| json!({ "name": c.name, "needed": c.needed, "available": c.available, "ok": c.ok(), "raise": c.raise }),
        )
        .collect();
    json!({
        "ok": report.ok(),
        "events": events,
        "overlaps": overlaps,
        "checks": checks,
        "skipped": report.skipped,
        "account": {
            "concurrency": account.concurrency,
            "unreserved": account.unreserved,
            "apiRate": account.api_rate,
            "apiBurst": account.api_burst,
        },
        "capacities": {
            "redisAdmissionsPerSecond": capacities.redis_admissions_per_second,
            "writerRowsPerSecond": capacities.writer_rows_per_second,
            "writerMaxConcurrency": capacities.writer_max_concurrency,
        },
    })
}

fn print_text(report: &Preflight, capacities: Capacities) {
    for f in &report.events {
        println!(
            "{}: {} rps, capacity {}: {} environments (bound by {}) from {} until {}, {} min to allocate; \
             Redis at {:.0}% of its ceiling; queue up to {} drained in {:.1} s over {} connections; ${:.2}",
            f.event,
            f.peak_rps,
            f.capacity,
            f.environments,
            f.bound.as_str(),
            rfc3339(f.scale_out_at),
            rfc3339(f.scale_in_at),
            f.allocation.num_minutes(),
            f.redis_load * 100.0,
            f.capacity,
            f.drain_seconds,
            capacities.writer_max_concurrency,
            f.cost_dollars
        );
    }
    for o in &report.overlaps {
        let ids: Vec<&str> = o.events.iter().map(EventId::as_str).collect();
        println!(
            "overlap {} at {}: {} environments, {} rps",
            ids.join(" + "),
            rfc3339(o.at),
            o.environments,
            o.peak_rps
        );
    }
    for why in &report.skipped {
        println!("skipped: {why}");
    }
    for c in &report.checks {
        println!(
            "{:<4} {:<70} needed {:>12} available {:>12}",
            if c.ok() { "ok" } else { "FAIL" },
            c.name,
            c.needed,
            c.available
        );
        if let Some(raise) = &c.raise {
            println!("     -> {raise}");
        }
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}
