//! `fanrush-local bridge`: the local stand-in for what AWS does around the
//! functions, pointed at a Lambda Invoke API (`fanrush-local gateway
//! --invoke-api` under `make run`, `sam local start-lambda` under `make sam-local`):
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
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::time::Duration;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Bridge {
    mapping: EventSourceMapping,
    http: HttpClient,
    invoke_url: String,
    writer: String,
}

#[derive(clap::Args)]
pub struct BridgeArgs {
    /// The entry queue to poll.
    #[arg(long)]
    queue_url: String,
    /// The Lambda Invoke API (fanrush-local gateway --invoke-api, or sam local start-lambda).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    invoke_url: String,
    /// The function that drains the queue.
    #[arg(long, default_value = "writer")]
    writer: String,
    /// The function the schedule invokes.
    #[arg(long, default_value = "scheduler")]
    scheduler: String,
    /// Messages per batch, at most.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch_size: u64,
    /// How long a poller gathers a batch, ms.
    #[arg(long, default_value_t = 200)]
    window_ms: u64,
    /// Pollers at once (the writer's MaximumConcurrency).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,
    /// The schedule's period (0 turns it off).
    #[arg(long, default_value_t = 60)]
    schedule_seconds: u64,
}

pub async fn run(args: BridgeArgs) -> Result<(), String> {
    let bridge = Bridge {
        mapping: EventSourceMapping {
            sqs: sqs_client(&aws_config().await, Duration::from_secs(10)),
            queue_url: args.queue_url,
            batch_size: args.batch_size as usize,
            window: Duration::from_millis(args.window_ms),
        },
        http: Client::builder(TokioExecutor::new()).build_http(),
        invoke_url: args.invoke_url,
        writer: args.writer,
    };
    let bridge: &'static Bridge = Box::leak(Box::new(bridge));
    for _ in 0..args.concurrency {
        tokio::spawn(async move { bridge.poll_forever().await });
    }
    if args.schedule_seconds > 0 {
        let (scheduler, every) = (args.scheduler, Duration::from_secs(args.schedule_seconds));
        tokio::spawn(async move { bridge.schedule_forever(&scheduler, every).await });
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

    /// Invokes a function through the Lambda Invoke API.
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
