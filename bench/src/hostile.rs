//! `hostile`: what one client that hammers costs the event's one Redis
//! core. entry-api (the release binary, through the Runtime API harness)
//! answers, against a private `redis-server`, one fan's 1,000 entry POSTs,
//! then 1,000 GETs of the event, then 1,000 of its own entry; and a fan
//! refused at a sold-out event, 1,000 POSTs and 1,000 reads of an entry it
//! does not have. Each batch's cost is the sum of `calls` over `INFO
//! commandstats` before and after (the bench's own `INFO` left out), so
//! every command a script ran inside counts, as it costs the core.

use crate::figures::{Figure, Report};
use crate::workloads::http_event_with;
use chrono::{Duration as Minutes, Utc};
use fanrush::adapters::redis_gate::{EntryGate, SeedWrite};
use fanrush::rules::domain::{EventId, FanEvent};
use fanrush_local::runtime::Harness;
use fanrush_local::services::PrivateRedis;
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

const PREFIX: &str = "bench-hostile";

/// The bound on the three batches of the fan that got in.
const MOST_COMMANDS: f64 = 30.0;

pub async fn hostile(root: &Path, env: &[(String, String)], quick: bool, report: &mut Report) {
    let dir = std::env::temp_dir().join(format!("fanrush-bench-hostile-{}", std::process::id()));
    let mut redis = match PrivateRedis::start(dir.clone()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("  hostile: could not start redis-server ({e}); skipped");
            return;
        }
    };
    let url = redis.url();
    let gate = EntryGate::new(&url, PREFIX, Duration::from_secs(1), Duration::from_secs(1)).expect("a redis url");
    gate.mark_state_present().await.expect("redis");
    for (id, capacity) in [("bench-open", 1_000), ("bench-full", 1)] {
        gate.publish(&event(id, capacity), SeedWrite::Keep).await.expect("publish an event");
    }

    let mut env: Vec<(String, String)> =
        env.iter().filter(|(k, _)| k != "REDIS_URL" && k != "REDIS_KEY_PREFIX").cloned().collect();
    env.extend([("REDIS_URL", url.as_str()), ("REDIS_KEY_PREFIX", PREFIX)].map(|(k, v)| (k.to_owned(), v.to_owned())));
    let mut command = Command::new(root.join("target/release/entry-api"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(env);
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let harness = Harness::start().await;
    let (child, _) = harness.spawn(&mut command);

    // The environment's connection and scripts, and the sold-out event's
    // one place, before anything is counted.
    for path in ["/events/bench-open/entries", "/events/bench-full/entries"] {
        let a = harness.invoke(http_event_with("POST", path, "warm", None)).await;
        let answer: serde_json::Value = serde_json::from_str(&a.body).expect("the harness returns JSON");
        assert_eq!(answer["statusCode"], 202, "the warm fan is admitted: {}", a.body);
    }
    let mut counter = Commands::connect(&url).await;
    let n = if quick { 200 } else { 1_000 };
    let posts = batch(&harness, &mut counter, n, "POST", "/events/bench-open/entries", "hammer").await;
    let gets = batch(&harness, &mut counter, n, "GET", "/events/bench-open", "hammer").await;
    let reads = batch(&harness, &mut counter, n, "GET", "/events/bench-open/entries/me", "hammer").await;
    let refused_posts = batch(&harness, &mut counter, n, "POST", "/events/bench-full/entries", "refused").await;
    let refused_reads = batch(&harness, &mut counter, n, "GET", "/events/bench-full/entries/me", "refused").await;
    drop(child);
    redis.kill().await;
    let _ = std::fs::remove_dir_all(&dir);

    let total = posts + gets + reads;
    report.add(Figure {
        name: format!("hostile: Redis commands for one fan's {} requests", 3 * n),
        value: total,
        unit: "cmd",
        limit: Some(MOST_COMMANDS),
        limit_name: format!(
            "{posts:.0} for {n} POSTs (admitted), {gets:.0} for {n} event GETs, {reads:.0} for {n} /entries/me"
        ),
        target: format!("<= {MOST_COMMANDS:.0} commands in all"),
        met: Some(total <= MOST_COMMANDS),
    });
    report.add(Figure {
        name: format!("hostile: Redis commands for a refused fan's {} requests", 2 * n),
        value: refused_posts + refused_reads,
        unit: "cmd",
        limit: None,
        limit_name: format!(
            "{refused_posts:.0} for {n} POSTs at a sold-out event (RATE_LIMIT_REQUESTS a window reach the gate), \
             {refused_reads:.0} for {n} /entries/me (ENTRY_READS a window)"
        ),
        target: "reported (bounded per window, not per request)".into(),
        met: None,
    });
}

/// The commands `n` requests by `fan` cost the core.
async fn batch(harness: &Harness, counter: &mut Commands, n: usize, method: &str, path: &str, fan: &str) -> f64 {
    let before = counter.total().await;
    for _ in 0..n {
        harness.invoke(http_event_with(method, path, fan, None)).await;
    }
    counter.total().await - before
}

/// An unlined event open from a minute ago for six hours.
fn event(id: &str, capacity: i64) -> FanEvent {
    FanEvent {
        id: EventId::parse(id).expect("a valid id"),
        title: "Bench hostile".into(),
        opens_at: Utc::now() - Minutes::minutes(1),
        closes_at: Utc::now() + Minutes::hours(6),
        capacity,
        expected_peak_rps: 1_000.0,
        lead_minutes: None,
        cooldown_minutes: None,
        line: None,
    }
}

/// The server's command counts, through a connection of the bench's own
/// opened before the first count (so its handshake is not counted).
struct Commands(redis::aio::MultiplexedConnection);

impl Commands {
    async fn connect(url: &str) -> Self {
        Self(redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap())
    }

    /// Every command the server ran so far, scripts' own included, less
    /// the `INFO` calls that read them.
    async fn total(&mut self) -> f64 {
        let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut self.0).await.unwrap();
        info.lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter(|l| !l.starts_with("info:"))
            .filter_map(|l| l.split_once("calls=").and_then(|(_, rest)| rest.split(',').next()))
            .filter_map(|calls| calls.parse::<f64>().ok())
            .sum()
    }
}
