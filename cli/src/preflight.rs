//! `fanrush preflight`: every quota the calendar's events need next to what
//! the account has, before the event. Exits non-zero when any check fails.
//!
//! The account's Lambda concurrency comes from `GetAccountSettings` unless
//! `--account-limit` is given; API Gateway's quota from `--api-rate` and
//! `--api-burst` (AWS's defaults otherwise: there is no API to read it from
//! API Gateway itself), and the HTTP API's route throttles from
//! `--fan-route-rate` and `--admin-route-rate` (the template's defaults
//! otherwise); the control plane's reserved concurrency from `--reserved`;
//! the Redis and writer capacities from `make bench`. With `--shards N` the
//! events are placed on a cluster of N shards as the admin API would place
//! them, and each shard's peak is checked against its one core.

use crate::calendar;
use crate::plan::Sizing;
use fanrush::adapters::lambda_control::ProvisionedConcurrency;
use fanrush::rules::domain::MAX_NOTE_CHARS;
use fanrush::rules::domain::{rfc3339, EventId};
use fanrush::rules::scaling::placement::{even_shards, Placement};
use fanrush::rules::scaling::preflight::{
    preflight, Account, Capacities, Preflight, Pricing, ADMIN_ROUTE_RATE, CONTROL_PLANE_RESERVED, FAN_ROUTE_RATE,
    MEASURED_GATE_BYTES_PER_NOTE, PRICE_PER_GB_SECOND,
};
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct PreflightArgs {
    /// A JSON array of events (the admin API's fields plus eventId) or an .ics file.
    #[arg(long, value_name = "FILE")]
    calendar: PathBuf,
    /// The account's "Concurrent executions" [default: from GetAccountSettings].
    #[arg(long, value_name = "N")]
    account_limit: Option<i64>,
    /// Its unreserved concurrency [default: the account limit].
    #[arg(long, value_name = "N", requires = "account_limit")]
    unreserved: Option<i64>,
    /// Concurrency the stack reserves for the writer, the scheduler,
    /// admin-api, the notifier and the database setup (the template's
    /// defaults add up to 23): out of the pool entry-api's provisioned
    /// concurrency draws from.
    #[arg(long, value_name = "N", default_value_t = CONTROL_PLANE_RESERVED)]
    reserved: i64,
    /// entry-api's reserved concurrency, when the stack caps it (the
    /// template's EntryApiMaxConcurrency); 0: no cap.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    entry_max_concurrency: i64,
    /// API Gateway's account throttle rate (no API reports it).
    #[arg(long, default_value_t = Account::defaults().api_rate)]
    api_rate: f64,
    /// API Gateway's token bucket.
    #[arg(long, default_value_t = Account::defaults().api_burst)]
    api_burst: f64,
    /// The fan routes' throttle (the template's FanRouteThrottleRate).
    #[arg(long, default_value_t = FAN_ROUTE_RATE)]
    fan_route_rate: f64,
    /// The admin routes' throttle (the template's AdminRouteThrottleRate).
    #[arg(long, default_value_t = ADMIN_ROUTE_RATE)]
    admin_route_rate: f64,
    #[command(flatten)]
    sizing: Sizing,
    /// New fans one Redis core admits per second (admit plus confirm), from
    /// make bench or fanrush measure-gate.
    #[arg(long, default_value_t = Capacities::default().redis_admissions_per_second)]
    redis_admissions_per_second: f64,
    /// Line syncs carrying no place, per second of one Redis core (fanrush measure-gate).
    #[arg(long, default_value_t = Capacities::default().line_syncs_per_second)]
    redis_syncs_per_second: f64,
    /// Places counted in line syncs, per second of one Redis core (fanrush measure-gate).
    #[arg(long, default_value_t = Capacities::default().line_places_per_second)]
    redis_places_per_second: f64,
    /// Rows per second one writer inserts.
    #[arg(long, default_value_t = Capacities::default().writer_rows_per_second)]
    writer_rows_per_second: f64,
    /// The cache node's maxmemory in bytes, as `INFO memory` reports it on
    /// the node (ElastiCache: the node type's memory less
    /// reserved-memory-percent); the places' memory is checked against it.
    /// Unset: no memory check.
    #[arg(long, value_name = "BYTES")]
    cache_maxmemory: Option<u64>,
    /// Bytes the gate holds per admitted fan (fanrush measure-gate).
    #[arg(long, default_value_t = Capacities::default().bytes_per_fan)]
    bytes_per_fan: f64,
    /// Bytes a 280-character note adds to its fan (fanrush measure-gate).
    #[arg(long, default_value_t = MEASURED_GATE_BYTES_PER_NOTE)]
    bytes_per_note: f64,
    /// Characters of the average note to count per fan (280, the most an
    /// entry may carry, unless you know fans write less).
    #[arg(long, default_value_t = MAX_NOTE_CHARS as u64, value_parser = clap::value_parser!(u64).range(0..=MAX_NOTE_CHARS as u64))]
    note_chars: u64,
    /// The writer's MaximumConcurrency (database connections).
    #[arg(long, default_value_t = Capacities::default().writer_max_concurrency)]
    writer_max_concurrency: i64,
    /// entry-api's memory, for the cost.
    #[arg(long, default_value_t = 128)]
    memory_mb: u32,
    /// USD per GB-second of provisioned concurrency [default: arm64 in us-east-1; x86_64 is 0.0000041667].
    #[arg(long, default_value_t = PRICE_PER_GB_SECOND)]
    price_per_gb_second: f64,
    /// The moment to check at (RFC 3339) [default: now].
    #[arg(long, value_parser = parse_time)]
    now: Option<chrono::DateTime<chrono::Utc>>,
    /// Shards of the Redis cluster the gate runs on (the template's
    /// CacheShards): the calendar's events are placed on them in the order
    /// given, as the admin API places each new event, and each shard's
    /// load is checked on its own; 1: a single node.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=500))]
    shards: u16,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

pub async fn run(args: PreflightArgs) -> Result<(), String> {
    let params = args.sizing.params()?;
    let (concurrency, unreserved) = match args.account_limit {
        Some(limit) => (limit, args.unreserved.unwrap_or(limit)),
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
        control_plane_reserved: args.reserved,
        entry_cap: Some(args.entry_max_concurrency).filter(|cap| *cap > 0),
        cache_maxmemory: args.cache_maxmemory,
        already_provisioned: 0,
        api_rate: args.api_rate,
        api_burst: args.api_burst,
        fan_route_rate: args.fan_route_rate,
        admin_route_rate: args.admin_route_rate,
    };
    let capacities = Capacities {
        redis_admissions_per_second: args.redis_admissions_per_second,
        writer_rows_per_second: args.writer_rows_per_second,
        writer_max_concurrency: args.writer_max_concurrency,
        line_syncs_per_second: args.redis_syncs_per_second,
        line_places_per_second: args.redis_places_per_second,
        bytes_per_fan: args.bytes_per_fan,
        bytes_per_note: args.bytes_per_note * args.note_chars as f64 / MAX_NOTE_CHARS as f64,
    };
    let pricing = Pricing { memory_mb: args.memory_mb, per_gb_second: args.price_per_gb_second };
    let now = args.now.unwrap_or_else(chrono::Utc::now);
    let calendar = calendar::load(&args.calendar, now)?;
    let placement = match args.shards {
        1 => Placement::single(),
        n => Placement::planned(even_shards(usize::from(n)), &calendar.events),
    };
    let mut report = preflight(&params, &calendar.events, &placement, account, capacities, pricing, now);
    report.skipped = calendar.skipped;
    if args.json {
        println!("{}", to_json(&report, &placement, account, capacities));
    } else {
        print_text(&report, &placement, capacities);
    }
    let failed = report.failed().count();
    if failed > 0 {
        return Err(format!("{failed} of {} checks failed", report.checks.len()));
    }
    Ok(())
}

fn to_json(report: &Preflight, placement: &Placement, account: Account, capacities: Capacities) -> Value {
    let events: Vec<Value> = report
        .events
        .iter()
        .map(|f| {
            json!({
                "eventId": f.event.as_str(),
                "peakRps": f.peak_rps,
                "requestsPerSecond": round(f.requests_per_second, 1),
                "gateAdmissionsPerSecond": f.gate_rps,
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
                "peakRps": round(o.peak_rps, 1),
                "gateAdmissionsPerSecond": o.gate_rps,
            })
        })
        .collect();
    let shards: Vec<Value> = report
        .shards
        .iter()
        .map(|p| {
            let shard = &placement.shards[p.shard];
            json!({
                "shard": p.shard + 1,
                "slots": shard.describe_slots(),
                "events": placement_of(placement, p.shard),
                "peakAt": p.at.map(rfc3339),
                "peakEvents": p.events.iter().map(EventId::as_str).collect::<Vec<_>>(),
                "gateAdmissionsPerSecond": p.gate_rps,
                "redisLoad": round(p.gate_rps / capacities.redis_admissions_per_second, 3),
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
        "shards": shards,
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
            "lineSyncsPerSecond": capacities.line_syncs_per_second,
            "linePlacesPerSecond": capacities.line_places_per_second,
        },
    })
}

fn print_text(report: &Preflight, placement: &Placement, capacities: Capacities) {
    for f in &report.events {
        println!(
            "{}: {} rps ({:.0} requests/s with polls), capacity {}: {} environments (bound by {}) from {} until {}, \
             {} min to allocate; Redis at {:.0}% of its ceiling; queue up to {} drained in {:.1} s over {} \
             connections; ${:.2}",
            f.event,
            f.peak_rps,
            f.requests_per_second,
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
    for p in &report.shards {
        let ids: Vec<&str> = p.events.iter().map(EventId::as_str).collect();
        println!(
            "shard {} (slots {}): {}; peak {:.0} admissions/s ({:.0}% of one core){}",
            p.shard + 1,
            placement.shards[p.shard].describe_slots(),
            match placement_of(placement, p.shard) {
                events if events.is_empty() => "no event".to_owned(),
                events => events.join(", "),
            },
            p.gate_rps,
            p.gate_rps / capacities.redis_admissions_per_second * 100.0,
            p.at.map(|at| format!(" at {} ({})", rfc3339(at), ids.join(" + "))).unwrap_or_default()
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

/// The events placed on `shard`, each with its tag when it is not the id.
fn placement_of(placement: &Placement, shard: usize) -> Vec<String> {
    placement
        .tags
        .iter()
        .filter(|(id, _)| placement.shard(id) == shard)
        .map(|(id, tag)| if tag == id.as_str() { tag.clone() } else { format!("{id} (tag {tag})") })
        .collect()
}
