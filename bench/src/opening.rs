//! The opening second: every provisioned environment's first request opens
//! its Redis connection (TCP, TLS, AUTH, `INFO`) and builds its SQS client,
//! all in the same second, against one primary.
//!
//! 200 entry-api environments (one process each, the drill's pool) are
//! started and left idle, as provisioned concurrency leaves them; then each
//! gets its first `POST /events/{id}/entries` at the same instant, against a
//! private Redis that speaks only TLS and requires a password, with the
//! function's default timeouts (connect 200 ms, response 250 ms). Reported:
//! the first requests' p50 and p99 and how many were answered 503, next to
//! the same environments' second requests (connections open).
//!
//! Two cores run 200 processes' TLS handshakes and a Redis here, so the
//! figure is pessimistic about CPU and optimistic about the network.

use crate::figures::{percentile, Figure, Report};
use chrono::{Duration as Minutes, Utc};
use fanrush::adapters::redis_gate::{EntryGate, LazyRedis};
use fanrush::adapters::secrets::{Secret, SecretSource};
use fanrush::rules::domain::{EventId, FanEvent};
use fanrush_local::pool::{FunctionSpec, Pool};
use fanrush_local::services::{PrivateRedis, TestCertificates};
use std::path::Path;
use std::time::Duration;

const ENVIRONMENTS: usize = 200;
const PASSWORD: &str = "opening-second-token";

pub async fn opening(root: &Path, env: &[(String, String)], quick: bool, report: &mut Report) {
    let n = if quick { 20 } else { ENVIRONMENTS };
    let dir = std::env::temp_dir().join(format!("fanrush-bench-opening-{}", std::process::id()));
    match measure(root, env, n, &dir).await {
        Ok((first, second, unavailable)) => {
            let (mut first, mut second) = (first, second);
            for p in [50.0, 99.0] {
                report.add(Figure {
                    name: format!("opening: first request p{p:.0}, {n} environments at once, Redis TLS + AUTH"),
                    value: percentile(&mut first, p),
                    unit: "ms",
                    limit: Some(percentile(&mut second, p)),
                    limit_name: format!("the same environments' second request p{p:.0}"),
                    target: "reported: what the opening second costs".into(),
                    met: None,
                });
            }
            report.add(Figure {
                name: format!("opening: first requests answered 503, {n} environments at once"),
                value: unavailable as f64,
                unit: "count",
                limit: Some(0.0),
                limit_name: "none".into(),
                target: "0".into(),
                met: Some(unavailable == 0),
            });
        }
        Err(e) => eprintln!("  opening: {e}; skipped"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// First- and second-request latencies (ms) and the 503s among the first.
async fn measure(
    root: &Path,
    env: &[(String, String)],
    n: usize,
    dir: &Path,
) -> Result<(Vec<f64>, Vec<f64>, usize), String> {
    let certs = TestCertificates::generate(&dir.join("certs")).await?;
    let redis = PrivateRedis::start_with(dir.join("redis"), Some(certs.clone()), Some(PASSWORD.into())).await?;
    let prefix = "opening";
    let lazy = LazyRedis::new(&redis.url(), Duration::from_secs(2), Duration::from_secs(2))
        .map_err(|e| e.to_string())?
        .with_auth(SecretSource::Plain(Secret::new(PASSWORD)))
        .with_root_certificates(certs.ca_pem()?);
    let gate = EntryGate::on(lazy, prefix);
    gate.mark_state_present().await.map_err(|e| e.to_string())?;
    gate.publish(&FanEvent {
        id: EventId::parse("opening").unwrap(),
        title: "Opening".into(),
        opens_at: Utc::now() - Minutes::minutes(1),
        closes_at: Utc::now() + Minutes::hours(1),
        capacity: 1_000_000,
        expected_peak_rps: 10_000.0,
        lead_minutes: None,
        cooldown_minutes: None,
    })
    .await
    .map_err(|e| e.to_string())?;

    let mut function_env: Vec<(String, String)> =
        env.iter().filter(|(k, _)| !k.starts_with("REDIS_")).cloned().collect();
    function_env.extend(
        [
            ("REDIS_URL", redis.url()),
            ("REDIS_KEY_PREFIX", prefix.to_owned()),
            ("REDIS_AUTH_TOKEN", PASSWORD.to_owned()),
            ("REDIS_CA_FILE", certs.ca_cert.display().to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let spec = FunctionSpec {
        name: "entry-api",
        binary: root.join("target/release/entry-api"),
        env: function_env,
        log: dir.join("entry-api.log"),
    };
    let pool = Pool::start(&spec, n).await?;
    // Round-robin: n concurrent requests reach n different environments.
    let wave = |round: usize| {
        let pool = &pool;
        futures::future::join_all((0..n).map(move |i| async move {
            let event = serde_json::from_str(&crate::workloads::http_event(
                "POST",
                "/events/opening/entries",
                &format!("fan-{round}-{i}"),
            ))
            .unwrap();
            let started = std::time::Instant::now();
            let answer = pool.invoke(&event, Duration::from_secs(10)).await;
            (started.elapsed().as_secs_f64() * 1e3, answer)
        }))
    };
    let mut unavailable = 0;
    let mut first = Vec::with_capacity(n);
    for (ms, answer) in wave(0).await {
        let body = answer.map_err(|e| format!("a first request got no answer: {e:?}"))?.body;
        if body.contains("\"statusCode\":503") {
            if unavailable == 0 {
                eprintln!("  opening: a first answer of 503: {body}");
            }
            unavailable += 1;
        } else if !body.contains("\"statusCode\":202") {
            return Err(format!("unexpected first answer: {body}"));
        }
        first.push(ms);
    }
    let mut second = Vec::with_capacity(n);
    for (ms, answer) in wave(1).await {
        answer.map_err(|e| format!("a second request got no answer: {e:?}"))?;
        second.push(ms);
    }
    drop(pool);
    drop(redis);
    Ok((first, second, unavailable))
}
