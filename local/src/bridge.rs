//! `fanrush-local bridge`: the local stand-in for what AWS does around the
//! functions, pointed at `cargo lambda watch`:
//!
//! - the SQS event-source mapping: `--concurrency` pollers each gather up to
//!   `--batch-size` messages (within `--window-ms`), invoke `writer` with a
//!   real SQS event, and delete only the messages it did not report as
//!   failed; a function error deletes nothing, so SQS redelivers;
//! - the EventBridge minute schedule: invokes `scheduler` every
//!   `--schedule-seconds` (0 turns it off).
//!
//! Only ever talks to loopback endpoints given on the command line.

use crate::esm::{EventSourceMapping, Polled};
use bytes::Bytes;
use fanrush::adapters::aws_sdk::{aws_config, sqs_client};
use fanrush::flags::Args;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::time::Duration;

pub const USAGE: &str = "  fanrush-local bridge --queue-url URL [--invoke-url http://127.0.0.1:9000] [--writer writer] [--scheduler scheduler]\n                 [--batch-size 10] [--window-ms 200] [--concurrency 2] [--schedule-seconds 60]";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Bridge {
    mapping: EventSourceMapping,
    http: HttpClient,
    invoke_url: String,
    writer: String,
}

pub async fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &[
            "queue-url",
            "invoke-url",
            "writer",
            "scheduler",
            "batch-size",
            "window-ms",
            "concurrency",
            "schedule-seconds",
        ],
        &[],
    )?;
    let queue_url = args.opt("queue-url").map(str::to_owned).ok_or("--queue-url is required")?;
    let bridge = Bridge {
        mapping: EventSourceMapping {
            sqs: sqs_client(&aws_config().await, Duration::from_secs(10)),
            queue_url,
            batch_size: args.get("batch-size", 10usize)?.clamp(1, 10_000),
            window: Duration::from_millis(args.get("window-ms", 200)?),
        },
        http: Client::builder(TokioExecutor::new()).build_http(),
        invoke_url: args.get("invoke-url", "http://127.0.0.1:9000".to_owned())?,
        writer: args.get("writer", "writer".to_owned())?,
    };
    let bridge: &'static Bridge = Box::leak(Box::new(bridge));
    for _ in 0..args.get("concurrency", 2usize)?.max(1) {
        tokio::spawn(async move { bridge.poll_forever().await });
    }
    let every: u64 = args.get("schedule-seconds", 60)?;
    if every > 0 {
        let scheduler: String = args.get("scheduler", "scheduler".to_owned())?;
        tokio::spawn(async move { bridge.schedule_forever(&scheduler, Duration::from_secs(every)).await });
    }
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}

impl Bridge {
    async fn poll_forever(&self) {
        loop {
            match self.mapping.poll_once(|event| self.invoke(&self.writer, event)).await {
                Polled::Empty | Polled::Delivered { .. } => {}
                Polled::Redeliver { messages, why } => {
                    tracing::warn!(messages, %why, "writer failed the batch; SQS will redeliver it");
                }
                Polled::ReceiveFailed(e) => {
                    tracing::warn!(error = %e, "receive failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn schedule_forever(&self, function: &str, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let event = json!({
                "version": "0", "id": "local", "detail-type": "Scheduled Event", "source": "aws.events",
                "account": "000000000000", "time": chrono::Utc::now().to_rfc3339(), "region": "us-east-1",
                "resources": [], "detail": {}
            });
            match self.invoke(function, event).await {
                Ok(report) => tracing::info!(%report, "{function} ran"),
                Err(e) => tracing::warn!(error = %e, "{function} invoke failed"),
            }
        }
    }

    /// Invokes a function through the Lambda Invoke API of `cargo lambda watch`.
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, String> {
        let request = http::Request::post(format!("{}/2015-03-31/functions/{function}/invocations", self.invoke_url))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload.to_string())))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(Duration::from_secs(600), self.http.request(request))
            .await
            .map_err(|_| "invoke timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        if !status.is_success() || function_error {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        serde_json::from_slice(&body).map_err(|e| format!("bad response: {e}"))
    }
}
