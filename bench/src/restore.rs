//! The gate restore at scale: an open event with 1,000,000 stored entries
//! (100,000 with `--quick`), Redis's gate state gone, and `fanrush-local setup`
//! (the same `restore_gate` the scheduler and admin-api run) rebuilding it
//! in a process of its own, timed, with its peak RSS read by `/usr/bin/time`.
//! Targets: under 60 s and under 96 MB (a 128 MB function with headroom).
//! Then the same entries taken out: admin-api (the release binary, through
//! the Runtime API harness) answers `GET /admin/events/big/entries` page
//! after page until the last, timed, with its peak RSS (`VmHWM`) read at
//! the end: flat memory is under the same 96 MB however many pages.

use crate::figures::{Figure, Report};
use crate::workloads::http_event_with;
use base64::Engine as _;
use fanrush_local::runtime::Harness;
use std::path::Path;
use std::time::Instant;
use tokio::process::Command;

pub async fn restore(root: &Path, env: &[(String, String)], quick: bool, report: &mut Report) {
    let entries: i64 = if quick { 100_000 } else { 1_000_000 };
    let schema = format!("bench_restore_{}", std::process::id());
    let prefix = format!("bench-restore-{}", std::process::id());
    let database_url = env.iter().find(|(k, _)| k == "DATABASE_URL").map(|(_, v)| v.clone()).unwrap_or_default();
    let env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "REDIS_KEY_PREFIX" && k != "DATABASE_SCHEMA")
        .cloned()
        .chain([("REDIS_KEY_PREFIX".into(), prefix.clone()), ("DATABASE_SCHEMA".into(), schema.clone())])
        .collect();
    let setup = || {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%e %M"]).arg(root.join("target/release/fanrush-local")).args(["setup", "--queue", &prefix]);
        c.envs(env.iter().cloned()).stdout(std::process::Stdio::null());
        c
    };
    // First run: the schema, the queues and an empty gate.
    if !setup().stderr(std::process::Stdio::null()).status().await.is_ok_and(|s| s.success()) {
        eprintln!("  restore: fanrush-local setup failed; skipped");
        return;
    }
    let fill = format!(
        "SET search_path TO {schema};
         INSERT INTO fan_events (event_id, title, opens_at, closes_at, capacity, expected_peak_rps)
           VALUES ('big', 'Big', now() - interval '1 hour', now() + interval '1 day', {entries}, 10000);
         INSERT INTO entries (event_id, fan_id, position, note, accepted_at)
           SELECT 'big', 'fan-' || g, g, CASE WHEN g % 10 = 0 THEN 'note ' || g END, now()
           FROM generate_series(1, {entries}) g;"
    );
    let filled = Command::new("psql").arg(&database_url).args(["-q", "-c", &fill]).status().await;
    if !filled.is_ok_and(|s| s.success()) {
        eprintln!("  restore: could not fill the schema; skipped");
        return;
    }
    let mut redis = match redis::Client::open(
        env.iter().find(|(k, _)| k == "REDIS_URL").map(|(_, v)| v.as_str()).unwrap_or("redis://127.0.0.1:6379"),
    ) {
        Ok(c) => c.get_multiplexed_async_connection().await.ok(),
        Err(_) => None,
    };
    if let Some(c) = redis.as_mut() {
        // The directory of events lost: the setup's restore rebuilds it,
        // and the event, which the gate never held, from PostgreSQL.
        let _: Result<(), _> = redis::cmd("DEL").arg(format!("{prefix}:events")).query_async(c).await;
    }
    let out = setup().output().await;
    let measured = out.ok().and_then(|o| {
        let text = String::from_utf8_lossy(&o.stderr).into_owned();
        let last = text.lines().last()?.to_owned();
        let mut it = last.split_whitespace();
        Some((it.next()?.parse::<f64>().ok()?, it.next()?.parse::<f64>().ok()? / 1024.0))
    });
    let exported = export(root, &env, entries).await;
    let _ = Command::new("psql")
        .arg(&database_url)
        .args(["-q", "-c", &format!("SET client_min_messages = warning; DROP SCHEMA {schema} CASCADE")])
        .status()
        .await;
    if let Some(c) = redis.as_mut() {
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(c).await.unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("UNLINK").arg(&keys).query_async(c).await;
        }
    }
    if let Some((seconds, rss_mb, rows)) = exported {
        report.add(Figure {
            name: format!("export: {rows} entries out of admin-api, page by page"),
            value: seconds,
            unit: "s",
            limit: None,
            limit_name: format!("{} pages of {PAGE} (JSON lines)", (rows + PAGE - 1) / PAGE),
            target: "reported".into(),
            met: None,
        });
        report.add(Figure {
            name: format!("export: admin-api peak RSS over {rows} entries"),
            value: rss_mb,
            unit: "MB",
            limit: Some(96.0),
            limit_name: "target (a 128 MB function)".into(),
            target: "under 96 MB: flat whatever the event's size".into(),
            met: Some(rss_mb < 96.0),
        });
    }
    let Some((seconds, rss_mb)) = measured else {
        eprintln!("  restore: no measurement (is /usr/bin/time installed?)");
        return;
    };
    report.add(Figure {
        name: format!("restore: time for {entries} entries"),
        value: seconds,
        unit: "s",
        limit: Some(60.0),
        limit_name: "target".into(),
        target: "under 60 s".into(),
        met: Some(seconds < 60.0),
    });
    report.add(Figure {
        name: format!("restore: peak RSS for {entries} entries"),
        value: rss_mb,
        unit: "MB",
        limit: Some(96.0),
        limit_name: "target (a 128 MB function)".into(),
        target: "under 96 MB".into(),
        met: Some(rss_mb < 96.0),
    });
}

/// Entries per page the export asks for: the most a page holds.
const PAGE: i64 = 10_000;

/// Pages through event `big` with admin-api: seconds, its peak RSS in MB
/// and the rows read, or `None` when a page failed (said on stderr).
async fn export(root: &Path, env: &[(String, String)], entries: i64) -> Option<(f64, f64, i64)> {
    let harness = Harness::start().await;
    let mut command = Command::new(root.join("target/release/admin-api"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(env.iter().cloned());
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let (child, _) = harness.spawn(&mut command);
    let pid = child.id()?;
    let started = Instant::now();
    let (mut after, mut rows) = (Some(0i64), 0i64);
    while let Some(cursor) = after {
        let path = format!("/admin/events/big/entries?after={cursor}&limit={PAGE}");
        let answer = harness.invoke(http_event_with("GET", &path, "operator", None)).await;
        let answer: serde_json::Value = serde_json::from_str(&answer.body).ok()?;
        if answer["statusCode"] != 200 {
            eprintln!("  export: page after {cursor} answered {}", answer["statusCode"]);
            return None;
        }
        // A body that is not text-like to lambda_http comes base64-encoded
        // (API Gateway decodes it for the client).
        let body = answer["body"].as_str().unwrap_or_default();
        let body = if answer["isBase64Encoded"] == true {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body).ok()?).ok()?
        } else {
            body.to_owned()
        };
        rows += body.lines().count() as i64;
        after = answer["headers"]["x-fanrush-next-after"].as_str().and_then(|v| v.parse().ok());
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let peak_kb: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches(" kB").trim().parse().ok()?;
    drop(child);
    if rows != entries {
        eprintln!("  export: read {rows} rows of {entries}");
        return None;
    }
    Some((seconds, peak_kb / 1024.0, rows))
}
