//! The SQS event-source mapping, as Lambda runs it in front of `writer`: a
//! poller gathers up to `batch_size` messages, hands them to the function as
//! one SQS event, and deletes only the messages the function did not report
//! in `batchItemFailures`. A function error (or no answer) deletes nothing,
//! so SQS delivers the whole batch again after its visibility timeout.
//!
//! How the function is invoked is the caller's: `fanrush-local bridge` goes
//! through a Lambda Invoke API, the drill straight to a Runtime API harness.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

/// One poller's settings.
pub struct EventSourceMapping {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub batch_size: usize,
    /// How long to keep gathering once the first message arrived.
    pub window: Duration,
}

/// What one [`EventSourceMapping::poll_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// Nothing arrived within the long poll.
    Empty,
    /// The function answered: `deleted` messages done, `failed` to come again.
    Delivered { deleted: usize, failed: usize },
    /// The function failed or gave no answer: the batch comes again.
    Redeliver { messages: usize, why: String },
    /// SQS could not be read.
    ReceiveFailed(String),
}

impl EventSourceMapping {
    /// Gathers one batch, invokes the function with it and deletes what it
    /// handled. `invoke` gets the SQS event and returns the function's answer.
    pub async fn poll_once<F, Fut>(&self, invoke: F) -> Polled
    where
        F: FnOnce(Value) -> Fut,
        Fut: Future<Output = Result<Value, String>>,
    {
        let batch = match self.gather().await {
            Ok(b) if b.is_empty() => return Polled::Empty,
            Ok(b) => b,
            Err(e) => return Polled::ReceiveFailed(e),
        };
        let arn = queue_arn(&self.queue_url);
        let records: Vec<Value> = batch.iter().map(|m| record(m, &arn)).collect();
        let failed: HashSet<String> = match invoke(json!({ "Records": records })).await {
            Ok(answer) => match answer.get("batchItemFailures").and_then(Value::as_array) {
                Some(failures) => failures
                    .iter()
                    .filter_map(|f| f.get("itemIdentifier").and_then(Value::as_str).map(str::to_owned))
                    .collect(),
                None => return Polled::Redeliver { messages: batch.len(), why: format!("answer: {answer}") },
            },
            Err(why) => return Polled::Redeliver { messages: batch.len(), why },
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
            let deleted =
                self.sqs.delete_message_batch().queue_url(&self.queue_url).set_entries(Some(entries.collect())).send();
            if let Err(e) = deleted.await {
                // Not lost: the messages come again and the writer is idempotent.
                eprintln!("esm: delete failed, messages will be redelivered: {}", DisplayErrorContext(e));
            }
        }
        Polled::Delivered { deleted: done.len(), failed: failed.len() }
    }

    /// Long-polls for the first message, then keeps receiving until the
    /// batch is full, the window closes or the queue has no more.
    async fn gather(&self) -> Result<Vec<Message>, String> {
        let mut batch = Vec::new();
        let started = Instant::now();
        while batch.len() < self.batch_size {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages((self.batch_size - batch.len()).min(10) as i32)
                .wait_time_seconds(if batch.is_empty() { 1 } else { 0 })
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .map_err(|e| DisplayErrorContext(e).to_string())?;
            let got = out.messages.unwrap_or_default();
            let empty = got.is_empty();
            batch.extend(got);
            if empty || started.elapsed() >= self.window {
                break;
            }
        }
        Ok(batch)
    }
}

/// The queue's ARN in the local account (fauxqs and friends use 000000000000).
fn queue_arn(queue_url: &str) -> String {
    let name = queue_url.rsplit('/').next().unwrap_or_default();
    format!("arn:aws:sqs:us-east-1:000000000000:{name}")
}

/// One SQS record as the Lambda event-source mapping shapes it.
fn record(m: &Message, queue_arn: &str) -> Value {
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
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    })
}
