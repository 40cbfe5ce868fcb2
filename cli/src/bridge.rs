//! `fanrush bridge`: the local stand-in for what AWS does around the
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

use crate::args::Args;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use bytes::Bytes;
use fanrush::config::{aws_config, sqs_client};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

pub const USAGE: &str = "  fanrush bridge --queue-url URL [--invoke-url http://127.0.0.1:9000] [--writer writer] [--scheduler scheduler]\n                 [--batch-size 10] [--window-ms 200] [--concurrency 2] [--schedule-seconds 60]";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Bridge {
    sqs: aws_sdk_sqs::Client,
    http: HttpClient,
    queue_url: String,
    queue_arn: String,
    invoke_url: String,
    writer: String,
    batch_size: usize,
    window: Duration,
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
    let name = queue_url.rsplit('/').next().unwrap_or_default().to_owned();
    let bridge = Bridge {
        sqs: sqs_client(&aws_config().await, Duration::from_secs(10)),
        http: Client::builder(TokioExecutor::new()).build_http(),
        queue_arn: format!("arn:aws:sqs:us-east-1:000000000000:{name}"),
        queue_url,
        invoke_url: args.get("invoke-url", "http://127.0.0.1:9000".to_owned())?,
        writer: args.get("writer", "writer".to_owned())?,
        batch_size: args.get("batch-size", 10usize)?.clamp(1, 10_000),
        window: Duration::from_millis(args.get("window-ms", 200)?),
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
            match self.gather().await {
                Ok(batch) if batch.is_empty() => {}
                Ok(batch) => self.deliver(batch).await,
                Err(e) => {
                    tracing::warn!(error = %e, "receive failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Gathers up to `batch_size` messages: long-polls for the first, then
    /// keeps receiving until the window closes or the queue has no more.
    async fn gather(&self) -> Result<Vec<Message>, String> {
        let mut batch = Vec::new();
        let started = Instant::now();
        while batch.len() < self.batch_size {
            let wait = if batch.is_empty() { 1 } else { 0 };
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages((self.batch_size - batch.len()).min(10) as i32)
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
            let got = out.messages.unwrap_or_default();
            let empty = got.is_empty();
            batch.extend(got);
            if empty && !batch.is_empty() || started.elapsed() >= self.window {
                break;
            }
            if empty {
                return Ok(batch);
            }
        }
        Ok(batch)
    }

    async fn deliver(&self, batch: Vec<Message>) {
        let records: Vec<Value> = batch.iter().map(|m| self.record(m)).collect();
        let failed: HashSet<String> = match self.invoke(&self.writer, &json!({ "Records": records })).await {
            Ok(response) => match response.get("batchItemFailures").and_then(Value::as_array) {
                Some(failures) => failures
                    .iter()
                    .filter_map(|f| f.get("itemIdentifier").and_then(Value::as_str).map(str::to_owned))
                    .collect(),
                None => {
                    tracing::warn!(%response, "writer failed the batch; SQS will redeliver it");
                    return;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "writer invoke failed; SQS will redeliver the batch");
                return;
            }
        };
        let done: Vec<&Message> =
            batch.iter().filter(|m| !failed.contains(m.message_id.as_deref().unwrap_or_default())).collect();
        for chunk in done.chunks(10) {
            let entries = chunk.iter().enumerate().filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone()?)
                    .build()
                    .ok()
            });
            let result = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries.collect()))
                .send()
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "delete failed; messages will be redelivered");
            }
        }
    }

    /// One SQS record as the Lambda event-source mapping shapes it.
    fn record(&self, m: &Message) -> Value {
        let attributes: serde_json::Map<String, Value> =
            m.attributes.iter().flatten().map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone()))).collect();
        json!({
            "messageId": m.message_id,
            "receiptHandle": m.receipt_handle,
            "body": m.body,
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": m.md5_of_body,
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "us-east-1",
        })
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
            match self.invoke(function, &event).await {
                Ok(report) => tracing::info!(%report, "{function} ran"),
                Err(e) => tracing::warn!(error = %e, "{function} invoke failed"),
            }
        }
    }

    /// Invokes a function through the Lambda Invoke API of `cargo lambda watch`.
    async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, String> {
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
