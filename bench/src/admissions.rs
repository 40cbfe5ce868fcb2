//! The Redis ceiling the preflight uses: admissions per second of the gate's
//! own `admit.lua` on one Redis core, next to Redis's own ceiling (`SET`) on
//! the same server with the same clients.
//!
//! A private `redis-server` (nothing else on it) and `redis-benchmark` from
//! redis-tools as the load: C, so the client is not the bottleneck a Rust
//! client on the same two cores would be. 100 connections, one request in
//! flight each (`-P 1`), the way Lambda environments call: each holds one
//! connection and sends one script at a time. The script is invoked exactly
//! as the gate invokes it (`EVALSHA`, six keys, the fence and seven
//! arguments), rate limit off. Three cases:
//!
//! - new fans: random fan ids over 10^8, an event with capacity left;
//! - sold-out fans: the event's `taken` equals its capacity;
//! - repeat fans: 1,000 fans whose entries are confirmed, asking again.
//!
//! Redis's CPU time (`INFO cpu`) over each run says whether its core was
//! the limit (near 100% busy) or the client was.

use crate::figures::{Figure, Report};
use fanrush_local::services::PrivateRedis;
use std::time::Instant;

const ADMIT: &str = include_str!("../../shared/src/adapters/redis_gate/lua/admit.lua");
const CLIENTS: &str = "100";

pub async fn admissions(quick: bool, report: &mut Report) {
    let requests = if quick { 20_000 } else { 300_000 };
    let dir = std::env::temp_dir().join(format!("fanrush-bench-admissions-{}", std::process::id()));
    let mut redis = match PrivateRedis::start(dir.clone()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("  admissions: could not start redis-server ({e}); skipped");
            return;
        }
    };
    let result = measure(&redis, requests).await;
    redis.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    let (set, cases) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("  admissions: {e}; skipped");
            return;
        }
    };
    report.add(Figure {
        name: "admissions/s: Redis's own ceiling (redis-benchmark SET)".into(),
        value: set.rps,
        unit: "req/s",
        limit: None,
        limit_name: format!("same server, {CLIENTS} connections, -P 1; Redis core {:.0}% busy", set.busy * 100.0),
        target: "reported (the limit of the lines below)".into(),
        met: None,
    });
    for (case, run) in cases {
        report.add(Figure {
            name: format!("admissions/s: admit.lua, {case}"),
            value: run.rps,
            unit: "req/s",
            limit: Some(set.rps),
            limit_name: format!("SET on the same server; Redis core {:.0}% busy", run.busy * 100.0),
            target: "measured: the preflight's Redis ceiling per event".into(),
            met: None,
        });
    }
}

/// One load run: requests per second and the share of one core Redis used.
struct Run {
    rps: f64,
    busy: f64,
}

async fn measure(redis: &PrivateRedis, requests: usize) -> Result<(Run, Vec<(&'static str, Run)>), String> {
    let sha = text(redis.command(&["SCRIPT", "LOAD", ADMIT]).await?)?;
    redis.command(&["SET", "b:state", "bench"]).await?;
    let far = "9999999999999";
    redis.command(&["HSET", "b:ev:new", "opensAtMs", "0", "closesAtMs", far, "capacity", "1000000000"]).await?;
    redis.command(&["HSET", "b:ev:sold", "opensAtMs", "0", "closesAtMs", far, "capacity", "1", "taken", "1"]).await?;
    redis.command(&["HSET", "b:ev:rep", "opensAtMs", "0", "closesAtMs", far, "capacity", "1000000000"]).await?;
    // redis-benchmark's __rand_int__ is 12 zero-padded digits: with -r 1000
    // it names exactly these 1,000 fans, whose entries are confirmed.
    let mut repeat: Vec<String> = vec!["HSET".into(), "b:ev:rep:fans".into()];
    for i in 0..1000 {
        repeat.push(format!("fan-{i:012}"));
        repeat.push(format!("{}:1000", i + 1));
    }
    redis.command(&repeat.iter().map(String::as_str).collect::<Vec<_>>()).await?;

    let set = load(redis, requests, &["-t", "set"]).await?;
    let mut cases = Vec::new();
    for (case, event, keyspace) in [
        ("new fans", "b:ev:new", "100000000"),
        ("sold-out fans", "b:ev:sold", "100000000"),
        ("repeat fans", "b:ev:rep", "1000"),
    ] {
        let (fans, notes, pending) = (format!("{event}:fans"), format!("{event}:notes"), format!("{event}:pending"));
        let script = [
            "-r",
            keyspace,
            "EVALSHA",
            &sha,
            "6",
            "b:state",
            event,
            &fans,
            &notes,
            &pending,
            "b:rl",
            "bench",
            "fan-__rand_int__",
            "1000",
            "tok",
            "",
            "0",
            "0",
            "0",
        ];
        cases.push((case, load(redis, requests, &script).await?));
    }
    Ok((set, cases))
}

/// Runs `redis-benchmark` with `args` against `redis`.
async fn load(redis: &PrivateRedis, requests: usize, args: &[&str]) -> Result<Run, String> {
    let port = redis.addr().port().to_string();
    let n = requests.to_string();
    let cpu_before = cpu_seconds(redis).await?;
    let started = Instant::now();
    let out = tokio::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port, "-n", &n, "-c", CLIENTS, "-P", "1", "--csv"])
        .args(args)
        .output()
        .await
        .map_err(|e| format!("redis-benchmark: {e} (apt package redis-tools)"))?;
    let wall = started.elapsed().as_secs_f64();
    let busy = (cpu_seconds(redis).await? - cpu_before) / wall;
    if !out.status.success() {
        return Err(format!("redis-benchmark failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    // CSV: a header, then `"<test>","<rps>",...`.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rps = stdout
        .lines()
        .nth(1)
        .and_then(|line| line.split("\",\"").nth(1))
        .and_then(|v| v.trim_matches('"').parse::<f64>().ok())
        .ok_or_else(|| format!("redis-benchmark printed no rate: {stdout}"))?;
    Ok(Run { rps, busy })
}

/// Redis's own CPU time so far (`used_cpu_user + used_cpu_sys`).
async fn cpu_seconds(redis: &PrivateRedis) -> Result<f64, String> {
    let info = text(redis.command(&["INFO", "cpu"]).await?)?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| format!("INFO cpu has no {name}"))
    };
    Ok(field("used_cpu_user")? + field("used_cpu_sys")?)
}

fn text(v: redis::Value) -> Result<String, String> {
    match v {
        redis::Value::BulkString(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        redis::Value::SimpleString(s) | redis::Value::VerbatimString { text: s, .. } => Ok(s),
        other => Err(format!("unexpected reply {other:?}")),
    }
}
