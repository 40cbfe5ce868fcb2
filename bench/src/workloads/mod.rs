//! The benchmark workloads, each run against the real local Redis, SQS
//! endpoint and PostgreSQL of `make bench`, through the Runtime API harness:
//! the shared set-up here, one benchmark per file.

use crate::figures::{median, percentile, Figure, Report};
use aws_lambda_events::event::sqs::SqsEvent;
use chrono::{Duration as Minutes, Utc};
use fanrush::adapters::aws_sdk::sqs_client;
use fanrush::adapters::postgres_store::Database;
use fanrush::adapters::redis_gate::{Admission, EntryGate, SeedWrite};
use fanrush::rules::domain::{Entry, EntryMessage, EventId, FanEvent, FanId};
use fanrush::usecases::writer::EntryWriter;
use fanrush_local::local_aws;
use fanrush_local::local_aws::provision;
use fanrush_local::runtime::{cpu_ms, rss_mb, Harness};
use fanrush_local::GatewayEvent;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::process::Command;

mod accept;
mod arm64;
mod cold;
mod memory;
mod package;
mod peer;
mod writer;

const OPEN: &str = "bench-open";
const FULL: &str = "bench-full";
/// In-region round trips the concurrency estimate assumes (not measured
/// here): ElastiCache answers in well under a millisecond within an AZ (AWS
/// describes it as sub-millisecond), and an SQS SendMessage takes a few
/// milliseconds to low tens; 1 ms and 15 ms are deliberately pessimistic p99s.
const ELASTICACHE_P99_MS: f64 = 1.0;
const SQS_SEND_P99_MS: f64 = 15.0;
/// The Weverse talk's Node.js handler took 150 ms per request.
const SEED_P99_MS: f64 = 150.0;

pub struct Workloads {
    root: PathBuf,
    quick: bool,
    env: Vec<(String, String)>,
    redis_url: String,
    prefix: String,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
    accept: Option<(f64, f64, f64, f64)>,
}

fn var(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_owned())
}

impl Workloads {
    pub async fn setup(root: PathBuf, quick: bool) -> Self {
        let redis_url = var("REDIS_URL", "redis://127.0.0.1:6379");
        let endpoint = var("AWS_ENDPOINT_URL", "http://127.0.0.1:9324");
        let database_url = var("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
        let prefix = format!("bench-{}", std::process::id());
        let sdk = local_aws::sdk_config(&endpoint).await;
        let sqs = sqs_client(&sdk, Duration::from_secs(5));
        let (queue_url, dlq_url) = provision(&sqs, &prefix, 5, 30).await.expect("bench queue");
        let gate = EntryGate::new(&redis_url, &prefix, Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        gate.mark_state_present().await.expect("redis");
        let event = |id: &str, capacity| FanEvent {
            id: EventId::parse(id).unwrap(),
            title: "Bench".into(),
            opens_at: Utc::now() - Minutes::hours(1),
            closes_at: Utc::now() + Minutes::hours(6),
            capacity,
            expected_peak_rps: 10_000.0,
            lead_minutes: None,
            cooldown_minutes: None,
            line: None,
        };
        gate.publish(&event(OPEN, 10_000_000), SeedWrite::Keep).await.unwrap();
        gate.publish(&event(FULL, 1), SeedWrite::Keep).await.unwrap();
        let full = EventId::parse(FULL).unwrap();
        if let Admission::Reserved(r) =
            gate.admit(&full, &FanId::parse("first").unwrap(), &None, Utc::now(), "t").await.unwrap()
        {
            gate.confirm(&r).await.unwrap();
        }
        let mut env = local_aws::function_env(&endpoint);
        env.extend(
            [
                ("REDIS_URL", redis_url.clone()),
                ("REDIS_KEY_PREFIX", prefix.clone()),
                ("SQS_QUEUE_URL", queue_url.clone()),
                ("SQS_DLQ_URL", dlq_url),
                ("DATABASE_URL", database_url),
                ("AUTH_MODE", "dev".into()),
                ("SCHEDULER_DRY_RUN", "true".into()),
                ("RUST_LOG", "warn".into()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        Self { root, quick, env, redis_url, prefix, queue_url, sqs, accept: None }
    }

    /// The functions' environment for the local services.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    fn binary(&self, name: &str) -> PathBuf {
        self.root.join("target/release").join(name)
    }

    fn command(&self, program: &PathBuf, env: &[(String, String)]) -> Command {
        let mut c = Command::new(program);
        c.env_clear().env("PATH", var("PATH", "/usr/bin:/bin")).envs(env.iter().map(|(k, v)| (k, v)));
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        c
    }

    fn runs(&self, full: usize, quick: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// Median exec-to-first-`/next` of `program` over repeated starts.
    async fn cold_start(&self, program: &PathBuf, env: &[(String, String)], args: &[&str]) -> f64 {
        let mut samples = Vec::new();
        for _ in 0..self.runs(21, 5) {
            let mut harness = Harness::start().await;
            let mut command = self.command(program, env);
            command.args(args);
            let (mut child, spawned) = harness.spawn(&mut command);
            let first = harness.first_next(Duration::from_secs(20)).await.expect("the function asks for work");
            samples.push((first - spawned).as_secs_f64() * 1e3);
            let _ = child.kill().await;
        }
        median(&mut samples)
    }
}

/// An API Gateway HTTP API event for the fan API.
pub fn http_event(method: &str, path: &str, fan: &str) -> String {
    http_event_with(method, path, fan, None)
}

/// An HTTP API request, with the line's ticket header when one is given.
pub fn http_event_with(method: &str, path: &str, fan: &str, ticket: Option<&str>) -> String {
    let mut event = GatewayEvent::new(method, path)
        .from_api("bench")
        .request_id("bench")
        .header("x-fan-id", fan)
        .header("content-type", "application/json");
    if let Some(t) = ticket {
        event = event.header("x-fanrush-ticket", t);
    }
    event.to_json().to_string()
}
