//! `line`: what the line costs the event's one Redis core, and what a
//! waiting fan's answer costs entry-api.
//!
//! - The core's figures come from `fanrush measure-gate`'s own code
//!   ([`measure_gate`]) against a private `redis-server`: `SET`, admitted
//!   fans (a lined `admit.lua` with an environment's refresh riding on it,
//!   plus `confirm.lua`), the gate's answers to a sold-out event and
//!   `line.lua` syncs, each per second of the server's CPU. The preflight's
//!   `MEASURED_*` constants name these figures.
//! - Commands per join and per poll: entry-api (the release binary, through
//!   the Runtime API harness) answers fans of a lined event at one
//!   admission a second, so every answer after the first is a waiting one;
//!   Redis's `total_commands_processed` over the run, divided by the
//!   requests, counts everything the function sent, its syncs included,
//!   and every command a script ran inside (Redis counts those too), so it
//!   errs high: a script call is one round trip.
//! - A waiting answer's p50, next to the bare floor: a hello-world
//!   `lambda_runtime` function through the same harness.

use crate::figures::{percentile, Figure, Report};
use crate::workloads::http_event_with;
use chrono::{Duration as Minutes, Utc};
use fanrush::adapters::redis_gate::{EntryGate, SeedWrite};
use fanrush::rules::domain::{EventId, FanEvent, LineSettings};
use fanrush::usecases::measure::{measure_gate, Load};
use fanrush_local::runtime::Harness;
use fanrush_local::services::PrivateRedis;
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

const EVENT: &str = "bench-line";
const PREFIX: &str = "bench-line";

pub async fn line(root: &Path, env: &[(String, String)], quick: bool, report: &mut Report) {
    let dir = std::env::temp_dir().join(format!("fanrush-bench-line-{}", std::process::id()));
    let mut redis = match PrivateRedis::start(dir.clone()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("  line: could not start redis-server ({e}); skipped");
            return;
        }
    };
    core(&redis.url(), quick, report).await;
    requests(root, env, &redis.url(), quick, report).await;
    redis.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn core(url: &str, quick: bool, report: &mut Report) {
    let load = Load { seconds: Duration::from_secs(if quick { 1 } else { 5 }), connections: 64, in_flight: 2 };
    let figures = match measure_gate(url, "bench-measure", load).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("  line: measure-gate failed ({e}); skipped");
            return;
        }
    };
    let busy = |f: fanrush::usecases::measure::CoreFigure| format!("Redis core {:.0}% busy", f.core_busy * 100.0);
    report.add(Figure {
        name: "line: SET/s on one Redis core".into(),
        value: figures.set.per_second,
        unit: "req/s",
        limit: None,
        limit_name: busy(figures.set),
        target: "reported (the core's own ceiling)".into(),
        met: None,
    });
    for (name, f, target) in [
        (
            "line: admitted fans/s on one Redis core (admit + confirm)",
            figures.admitted_fans,
            "measured: MEASURED_GATE_ADMISSIONS_PER_SECOND, the line's rate is set from it",
        ),
        ("line: joins at the door/s (admit.lua)", figures.joins, "reported (a third of an admission)"),
        ("line: claims of a grant/s (admit.lua)", figures.claims, "reported (a third)"),
        ("line: confirm.lua calls/s", figures.confirms, "reported (the last third)"),
        (
            "line: admitted fans/s, granted at once (one call + confirm)",
            figures.admitted_at_once,
            "reported (a line that keeps up)",
        ),
        ("line: gate answers/s to a sold-out event", figures.answers, "measured: MEASURED_GATE_ANSWERS_PER_SECOND"),
        ("line: line.lua syncs/s on one Redis core", figures.syncs, "measured: MEASURED_LINE_SYNCS_PER_SECOND"),
    ] {
        report.add(Figure {
            name: name.into(),
            value: f.per_second,
            unit: "req/s",
            limit: Some(figures.set.per_second),
            limit_name: format!("SET on the same core; {}", busy(f)),
            target: target.into(),
            met: None,
        });
    }
}

async fn requests(root: &Path, env: &[(String, String)], url: &str, quick: bool, report: &mut Report) {
    let gate = EntryGate::new(url, PREFIX, Duration::from_secs(1), Duration::from_secs(1)).expect("a redis url");
    gate.mark_state_present().await.expect("redis");
    let event = FanEvent {
        id: EventId::parse(EVENT).expect("a valid id"),
        title: "Bench line".into(),
        opens_at: Utc::now() - Minutes::seconds(1),
        closes_at: Utc::now() + Minutes::hours(6),
        capacity: 1_000_000,
        expected_peak_rps: 10_000.0,
        lead_minutes: None,
        cooldown_minutes: None,
        // One admission a second: every fan after the first few waits.
        line: Some(LineSettings { admissions_per_second: 1, prequeue_minutes: 0 }),
    };
    gate.publish(&event, SeedWrite::Set("bench-line-seed")).await.expect("publish the lined event");

    let mut env: Vec<(String, String)> =
        env.iter().filter(|(k, _)| k != "REDIS_URL" && k != "REDIS_KEY_PREFIX").cloned().collect();
    env.extend(
        [("REDIS_URL", url), ("REDIS_KEY_PREFIX", PREFIX), ("LINE_TICKET_SECRET", "bench-line-ticket-key")]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let command = |program: &str| {
        let mut c = Command::new(root.join("target/release").join(program));
        c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(env.iter().cloned());
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        c
    };
    let n = if quick { 200 } else { 2_000 };
    let path = format!("/events/{EVENT}/entries");

    let harness = Harness::start().await;
    let (child, _) = harness.spawn(&mut command("entry-api"));
    // Warm: the connection, the line's definition, the first fans' turns.
    for i in 0..20 {
        harness.invoke(http_event_with("POST", &path, &format!("warm-{i}"), None)).await;
    }
    let commands = || async {
        let mut c = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
        let info: String = redis::cmd("INFO").arg("stats").query_async(&mut c).await.unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .expect("INFO stats names total_commands_processed")
    };

    let before = commands().await;
    // At one a second the front still lets a fan in now and then (places
    // within a 100 ms bucket are shuffled, so any fan of the first buckets
    // may be first): their admissions are counted against the joins.
    let mut tickets = Vec::with_capacity(n);
    for i in 0..n {
        let a = harness.invoke(http_event_with("POST", &path, &format!("fan-{i}"), None)).await;
        if let Some(ticket) = waiting_ticket(&a.body) {
            tickets.push((i, ticket));
        }
    }
    let admitted = n - tickets.len();
    // The INFO call itself is one command (and its connection's HELLO or
    // CLIENT calls, if any, a few more): counted against the fans, so the
    // figure errs high.
    let joins = commands().await - before;
    let before = commands().await;
    let mut waiting = Vec::with_capacity(n);
    for (i, ticket) in &tickets {
        let a = harness.invoke(http_event_with("POST", &path, &format!("fan-{i}"), Some(ticket))).await;
        if waiting_ticket(&a.body).is_some() {
            waiting.push(a.elapsed.as_secs_f64() * 1e3);
        }
    }
    let polls = commands().await - before;
    drop(child);

    let harness = Harness::start().await;
    let (hello, _) = harness.spawn(&mut command("hello"));
    let mut floor = Vec::with_capacity(n);
    for i in 0..n {
        let a = harness.invoke(http_event_with("POST", &path, &format!("hello-{i}"), None)).await;
        floor.push(a.elapsed.as_secs_f64() * 1e3);
    }
    drop(hello);

    for (name, total, requests, note) in [
        ("line: Redis commands per join", joins, n, format!(", and {admitted} admissions whose turn came")),
        ("line: Redis commands per poll", polls, tickets.len(), String::new()),
    ] {
        let per = total / requests.max(1) as f64;
        report.add(Figure {
            name: name.into(),
            value: per,
            unit: "cmd",
            limit: Some(1.0),
            limit_name: format!("{total:.0} commands over {requests} requests, syncs included{note}"),
            target: "<= 1 O(1) command per request (preferably none)".into(),
            met: Some(per <= 1.0),
        });
    }
    let (p50, f50) = (percentile(&mut waiting, 50.0), percentile(&mut floor, 50.0));
    report.add(Figure {
        name: "line: waiting answer p50 (entry-api, through the harness)".into(),
        value: p50,
        unit: "ms",
        limit: Some(f50),
        limit_name: "hello-world lambda_runtime p50, same harness".into(),
        target: "reported (a poll costs the function, not the gate)".into(),
        met: None,
    });
}

/// The ticket of a waiting (203) answer, `None` for an admission (202);
/// panics on any other answer, which would make the figures about
/// something else.
fn waiting_ticket(answer: &str) -> Option<String> {
    let outer: serde_json::Value = serde_json::from_str(answer).expect("the harness returns JSON");
    if outer["statusCode"] == 202 {
        return None;
    }
    assert_eq!(outer["statusCode"], 203, "expected a waiting answer or an admission: {answer}");
    let body: serde_json::Value =
        serde_json::from_str(outer["body"].as_str().expect("a body")).expect("the body is JSON");
    Some(body["ticket"].as_str().expect("a waiting answer carries a ticket").to_owned())
}
