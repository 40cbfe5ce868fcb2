//! The SQS entry queue: every accepted entry is buffered here so the
//! database never sees the spike.
//!
//! A send either succeeds (the entry is durable: only then is the fan told
//! "accepted"), surely did not reach SQS (the caller may release the slot), or
//! has an unknown outcome (a timeout after the request left, a 5xx): then the
//! slot stays reserved so the fan's retry reuses the same position, and the
//! idempotent writer turns any duplicate delivery into one row. SDK retries
//! are off and retried here instead, because whether *any* attempt might have
//! landed decides which of the last two it is.

use crate::domain::{Entry, EntryMessage};
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::OnceCell;

/// Why a send failed.
#[derive(Debug, Error)]
pub enum QueueError {
    /// No attempt reached SQS: nothing was queued.
    #[error("the entry was not sent to SQS: {0}")]
    NotSent(String),
    /// At least one attempt may have reached SQS.
    #[error("the SQS send outcome is unknown: {0}")]
    Unknown(String),
    /// A queue-management call failed.
    #[error("SQS call failed: {0}")]
    Api(String),
}

/// How hard to try one send.
#[derive(Debug, Clone, Copy)]
pub struct SendPolicy {
    /// Attempts per send (at least 1).
    pub attempts: u32,
    /// Pause before each retry.
    pub backoff: Duration,
}

/// The queue of accepted entries.
#[derive(Clone)]
pub struct EntryQueue {
    client: Arc<OnceCell<Client>>,
    /// Attempt timeout of a client built on first use.
    lazy_attempt_timeout: Duration,
    queue_url: String,
    policy: SendPolicy,
}

impl EntryQueue {
    /// Wraps an SQS client. Configure the client's timeouts and turn its
    /// retries off (see [`crate::config::sqs_client`]): this type retries.
    pub fn new(client: Client, queue_url: impl Into<String>, policy: SendPolicy) -> Self {
        Self {
            client: Arc::new(OnceCell::new_with(Some(client))),
            lazy_attempt_timeout: Duration::ZERO,
            queue_url: queue_url.into(),
            policy,
        }
    }

    /// A queue whose SDK configuration and client are built on first use:
    /// loading them (TLS roots, credential chain) is most of a cold start, and
    /// Lambda init should do only what cannot wait.
    pub fn lazy(queue_url: impl Into<String>, policy: SendPolicy, attempt_timeout: Duration) -> Self {
        Self {
            client: Arc::new(OnceCell::new()),
            lazy_attempt_timeout: attempt_timeout,
            queue_url: queue_url.into(),
            policy,
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                crate::config::sqs_client(&crate::config::aws_config().await, self.lazy_attempt_timeout)
            })
            .await
    }

    /// Sends one entry; `Ok` means SQS acknowledged it.
    pub async fn send(&self, entry: &Entry) -> Result<(), QueueError> {
        let body = EntryMessage::new(entry).to_body();
        let mut maybe_sent = false;
        let mut last = String::new();
        for attempt in 0..self.policy.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.policy.backoff).await;
            }
            match self.client().await.send_message().queue_url(&self.queue_url).message_body(&body).send().await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    maybe_sent |= !surely_not_sent(&e);
                    last = DisplayErrorContext(&e).to_string();
                }
            }
        }
        Err(if maybe_sent { QueueError::Unknown(last) } else { QueueError::NotSent(last) })
    }

    /// True when no message is waiting, in flight or delayed: every entry
    /// queued so far has been written or dead-lettered.
    pub async fn is_drained(&self) -> Result<bool, QueueError> {
        let out = self
            .client()
            .await
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| QueueError::Api(DisplayErrorContext(&e).to_string()))?;
        let attrs = out.attributes.unwrap_or_default();
        Ok(attrs.values().all(|v| v.trim() == "0"))
    }
}

/// Creates (or finds) a queue and its dead-letter queue with a redrive policy;
/// returns `(queue_url, dlq_url)`. Used by local setup and tests; in AWS the
/// template creates both.
pub async fn provision(
    client: &Client,
    name: &str,
    max_receive_count: u32,
    visibility_timeout_s: u32,
) -> Result<(String, String), QueueError> {
    let api = |e: &dyn std::fmt::Display| QueueError::Api(e.to_string());
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(|e| api(&DisplayErrorContext(e)))?
        .queue_url
        .ok_or_else(|| QueueError::Api("CreateQueue returned no URL".into()))?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| api(&DisplayErrorContext(e)))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| QueueError::Api("the DLQ has no ARN".into()))?;
    let redrive =
        serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count.to_string() });
    let queue_url = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(QueueAttributeName::VisibilityTimeout, visibility_timeout_s.to_string())
        .send()
        .await
        .map_err(|e| api(&DisplayErrorContext(e)))?
        .queue_url
        .ok_or_else(|| QueueError::Api("CreateQueue returned no URL".into()))?;
    Ok((queue_url, dlq_url))
}

/// True only when the request surely never reached SQS: it could not be
/// built, the connection was refused, or SQS answered with a 4xx refusal.
/// Timeouts and 5xx answers may hide a stored message.
fn surely_not_sent<E>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::ConstructionFailure(_) => true,
        SdkError::ServiceError(s) => s.raw().status().is_client_error(),
        SdkError::DispatchFailure(d) => d.as_connector_error().is_some_and(|c| {
            let mut source: Option<&(dyn StdError + 'static)> = Some(c);
            while let Some(err) = source {
                if let Some(io) = err.downcast_ref::<io::Error>() {
                    return matches!(
                        io.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::AddrNotAvailable
                            | io::ErrorKind::HostUnreachable
                            | io::ErrorKind::NetworkUnreachable
                    );
                }
                source = err.source();
            }
            false
        }),
        _ => false,
    }
}
