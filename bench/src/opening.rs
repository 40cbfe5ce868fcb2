//! The opening second: every provisioned environment's first request opens
//! its Redis connection (TCP, TLS, AUTH, `INFO`) and builds its SQS client,
//! all in the same second, against one primary.
//!
//! 200 entry-api environments (one process each, the drill's pool) are
//! started and left idle, as provisioned concurrency leaves them; then each
//! gets its first `POST /events/{id}/entries` at the same instant, against a
//! private Redis that speaks only TLS and requires a password (read through
//! a stand-in of the secrets extension, as in AWS), with the
//! function's default timeouts (connect 200 ms, response 250 ms). Reported:
//! the first requests' p50 and p99 and how many were answered 503, next to
//! the same environments' second requests (connections open).
//!
//! Measured twice: environments initialized on demand (lazy: the first
//! request connects), then environments initialized as for provisioned
//! concurrency (`AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`:
//! init opens TCP and TLS; the extension may not be called in init, so the
//! first request reads the token and sends `AUTH` + `INFO`; see
//! `fanrush::config::EntryApiConfig::warm_at_init`). The
//! pool starts environments one after another, so the warm connects here are
//! not contended; Lambda initializes provisioned environments in parallel,
//! each on its own CPU, at up to 6,000 a minute.
//!
//! Two cores run 200 processes' TLS handshakes and a Redis here, so the
//! figure is pessimistic about CPU and optimistic about the network.

use crate::figures::{percentile, Figure, Report};
use chrono::{Duration as Minutes, Utc};
use fanrush::adapters::redis_gate::{EntryGate, LazyRedis, SeedWrite};
use fanrush::adapters::secrets::{Secret, SecretSource};
use fanrush::rules::domain::{EventId, FanEvent};
use fanrush_local::pool::{FunctionSpec, Pool};
use fanrush_local::services::{PrivateRedis, TestCertificates};
use fanrush_local::HttpCapture;
use std::path::Path;
use std::time::Duration;

const ENVIRONMENTS: usize = 200;
const PASSWORD: &str = "opening-second-token";

pub async fn opening(root: &Path, env: &[(String, String)], quick: bool, report: &mut Report) {
    let n = if quick { 20 } else { ENVIRONMENTS };
    for provisioned in [false, true] {
        let init = if provisioned { "provisioned init (warmed)" } else { "on-demand init (lazy)" };
        let dir = std::env::temp_dir().join(format!("fanrush-bench-opening-{}-{provisioned}", std::process::id()));
        match measure(root, env, n, &dir, provisioned).await {
            Ok(m) => {
                let (mut first, mut second) = (m.first, m.second);
                for p in [50.0, 99.0] {
                    report.add(Figure {
                        name: format!("opening, {init}: first request p{p:.0}, {n} environments at once"),
                        value: percentile(&mut first, p),
                        unit: "ms",
                        limit: Some(percentile(&mut second, p)),
                        limit_name: format!("the same environments' second request p{p:.0}"),
                        target: "reported: what the opening second costs".into(),
                        met: None,
                    });
                }
                report.add(Figure {
                    name: format!("opening, {init}: first requests answered 503, {n} environments at once"),
                    value: m.unavailable as f64,
                    unit: "count",
                    limit: Some(0.0),
                    limit_name: "none".into(),
                    // Only the warmed environments are held to it: the lazy
                    // run is the baseline the warm exists to fix.
                    target: if provisioned { "0".into() } else { "reported".into() },
                    met: provisioned.then_some(m.unavailable == 0),
                });
                if provisioned {
                    report.add(Figure {
                        name: format!("opening, {init}: environments whose init logged a warm connection"),
                        value: m.warmed as f64,
                        unit: "count",
                        limit: Some(n as f64),
                        limit_name: "environments".into(),
                        target: format!("{n}"),
                        met: Some(m.warmed == n),
                    });
                }
            }
            Err(e) => eprintln!("  opening ({init}): {e}; skipped"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

struct Measured {
    /// First- and second-request latencies, ms.
    first: Vec<f64>,
    second: Vec<f64>,
    /// First requests answered 503.
    unavailable: usize,
    /// Environments whose init log says the warm connected.
    warmed: usize,
}

async fn measure(
    root: &Path,
    env: &[(String, String)],
    n: usize,
    dir: &Path,
    provisioned: bool,
) -> Result<Measured, String> {
    let certs = TestCertificates::generate(&dir.join("certs")).await?;
    let redis = PrivateRedis::start_with(dir.join("redis"), Some(certs.clone()), Some(PASSWORD.into())).await?;
    let prefix = "opening";
    let lazy = LazyRedis::new(&redis.url(), Duration::from_secs(2), Duration::from_secs(2))
        .map_err(|e| e.to_string())?
        .with_auth(SecretSource::Plain(Secret::new(PASSWORD)))
        .with_root_certificates(certs.ca_pem()?);
    let gate = EntryGate::on(lazy, prefix);
    gate.mark_state_present().await.map_err(|e| e.to_string())?;
    gate.publish(
        &FanEvent {
            id: EventId::parse("opening").unwrap(),
            title: "Opening".into(),
            opens_at: Utc::now() - Minutes::minutes(1),
            closes_at: Utc::now() + Minutes::hours(1),
            capacity: 1_000_000,
            expected_peak_rps: 10_000.0,
            lead_minutes: None,
            cooldown_minutes: None,
            line: None,
        },
        SeedWrite::Keep,
    )
    .await
    .map_err(|e| e.to_string())?;

    // The token comes through a stand-in of the Parameters and Secrets
    // extension, as in AWS, so a provisioned init cannot read it.
    let extension = HttpCapture::start().await.map_err(|e| e.to_string())?;
    extension.answer(200, &serde_json::json!({ "SecretString": PASSWORD }).to_string());
    let mut function_env: Vec<(String, String)> =
        env.iter().filter(|(k, _)| !k.starts_with("REDIS_") && k != "RUST_LOG").cloned().collect();
    // info: the init's "warmed at init" line is counted below.
    function_env.push(("RUST_LOG".into(), "info".into()));
    if provisioned {
        function_env.push(("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "provisioned-concurrency".into()));
    }
    function_env.extend(
        [
            ("REDIS_URL", redis.url()),
            ("REDIS_KEY_PREFIX", prefix.to_owned()),
            ("REDIS_AUTH_SECRET_ID", "fanrush/redis-auth".to_owned()),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", extension.port().to_string()),
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
    let warmed = (0..n)
        .filter(|i| {
            let log = std::fs::read_to_string(dir.join(format!("entry-api.{i}.log"))).unwrap_or_default();
            log.contains("warmed at init")
        })
        .count();
    Ok(Measured { first, second, unavailable, warmed })
}
