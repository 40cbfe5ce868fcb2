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
//!
//! [`DeadLetterQueue`]: entries SQS gave up delivering (after the redrive
//! policy's `maxReceiveCount`). Each was told "accepted", so the sweep and
//! the gate restore count them as taken; the scheduler names them to Slack;
//! [`DeadLetterQueue::redrive_into`] (`fanrush redrive`) puts them back once
//! the cause is fixed.

use crate::rules::domain::{Entry, EntryMessage, EventId, FanId};
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
    /// Another reader holds some dead letters out of sight right now.
    #[error("{0} dead letters are being read by someone else; try again shortly")]
    DeadLettersBusy(i64),
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
    /// retries off (see [`crate::adapters::aws_sdk::sqs_client`]): this type retries.
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
                crate::adapters::aws_sdk::sqs_client(
                    &crate::adapters::aws_sdk::aws_config().await,
                    self.lazy_attempt_timeout,
                )
            })
            .await
    }

    /// Builds a lazy queue's SDK configuration and client now (no network
    /// call): for an environment initialized ahead of traffic.
    pub async fn warm(&self) {
        self.client().await;
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
        Ok(depth(self.client().await, &self.queue_url).await?.total() == 0)
    }

    /// The dead-letter queue at `url`, through this queue's client.
    pub fn dead_letters(&self, url: impl Into<String>) -> DeadLetterQueue {
        DeadLetterQueue { queue: Self { queue_url: url.into(), ..self.clone() } }
    }
}

/// How many messages a queue holds, as SQS approximates them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    pub visible: i64,
    /// Received by someone and not yet deleted or back.
    pub in_flight: i64,
    pub delayed: i64,
}

impl Depth {
    pub fn total(&self) -> i64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// How many messages the queue at `url` holds.
pub async fn depth(client: &Client, url: &str) -> Result<Depth, QueueError> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| QueueError::Api(DisplayErrorContext(&e).to_string()))?;
    let attrs = out.attributes.unwrap_or_default();
    let get = |name: QueueAttributeName| attrs.get(&name).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    Ok(Depth {
        visible: get(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    })
}

/// Entries read from the DLQ without removing them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetters {
    /// One per fan of an event, however many messages hold it: a send a
    /// retry took over is a second message of the same entry.
    pub entries: Vec<Entry>,
    /// Messages that are not entry messages at all (they hold no fan's place).
    pub unreadable: usize,
}

impl DeadLetters {
    /// The dead-lettered entry of this fan in this event, if any.
    pub fn find(&self, event: &EventId, fan: &FanId) -> Option<&Entry> {
        self.entries.iter().find(|e| &e.event_id == event && &e.fan_id == fan)
    }
}

/// What [`DeadLetterQueue::redrive_into`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redriven {
    pub moved: usize,
    /// Moved too, though not entry messages: they will come back to the DLQ.
    pub unreadable: usize,
}

/// The DLQ behind the entry queue.
pub struct DeadLetterQueue {
    queue: EntryQueue,
}

/// How long a peek hides what it read: long enough to page through a DLQ
/// without reading a message twice, short enough to hand it back quickly.
const PEEK_VISIBILITY_S: i32 = 10;

impl DeadLetterQueue {
    pub async fn depth(&self) -> Result<Depth, QueueError> {
        depth(self.queue.client().await, &self.queue.queue_url).await
    }

    /// Reads every dead letter without deleting any, then hands each back
    /// at once (visibility timeout 0), so the next reader (the restore, the
    /// sweep, `fanrush redrive`) does not find them out of sight; any not
    /// handed back reappear after [`PEEK_VISIBILITY_S`]. `DeadLettersBusy`
    /// when some are out of sight (another reader has them) or the read came
    /// back short, so a caller never mistakes "not seen" for "not there".
    pub async fn peek(&self) -> Result<DeadLetters, QueueError> {
        let before = self.depth().await?;
        if before.total() == 0 {
            return Ok(DeadLetters::default());
        }
        if before.in_flight > 0 {
            return Err(QueueError::DeadLettersBusy(before.in_flight));
        }
        let mut seen = std::collections::HashSet::new();
        let mut fans = std::collections::HashSet::new();
        let mut receipts = Vec::new();
        let mut letters = DeadLetters::default();
        let mut empty = 0;
        while (seen.len() as i64) < before.visible && empty < 3 {
            let out = self
                .queue
                .client()
                .await
                .receive_message()
                .queue_url(&self.queue.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(PEEK_VISIBILITY_S)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| QueueError::Api(DisplayErrorContext(&e).to_string()))?;
            let messages = out.messages.unwrap_or_default();
            empty = if messages.is_empty() { empty + 1 } else { 0 };
            for m in messages {
                if !seen.insert(m.message_id.clone().unwrap_or_default()) {
                    continue;
                }
                receipts.extend(m.receipt_handle.clone());
                match m.body.as_deref().map(EntryMessage::parse) {
                    Some(Ok(entry)) => {
                        if fans.insert((entry.event_id.clone(), entry.fan_id.clone())) {
                            letters.entries.push(entry);
                        }
                    }
                    _ => letters.unreadable += 1,
                }
            }
        }
        self.hand_back(&receipts).await;
        if (seen.len() as i64) < before.visible {
            return Err(QueueError::DeadLettersBusy(before.visible - seen.len() as i64));
        }
        Ok(letters)
    }

    /// Makes peeked messages visible again now ("ChangeMessageVisibility":
    /// a timeout of 0 makes a received message visible again, SQS Developer
    /// Guide, "Amazon SQS visibility timeout"). Best effort: what fails to
    /// come back now comes back when the peek's visibility timeout ends.
    async fn hand_back(&self, receipts: &[String]) {
        let client = self.queue.client().await;
        // ChangeMessageVisibilityBatch takes at most 10 entries (SQS API
        // Reference, "ChangeMessageVisibilityBatch").
        for chunk in receipts.chunks(10) {
            let entries = chunk.iter().enumerate().filter_map(|(i, receipt)| {
                aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            });
            let sent = client
                .change_message_visibility_batch()
                .queue_url(&self.queue.queue_url)
                .set_entries(Some(entries.collect()))
                .send()
                .await;
            match sent {
                Ok(out) if out.failed.is_empty() => {}
                Ok(out) => {
                    tracing::warn!(failed = out.failed.len(), "some dead letters stay hidden until the peek's timeout")
                }
                Err(e) => {
                    tracing::warn!(error = %DisplayErrorContext(&e), "dead letters stay hidden until the peek's timeout")
                }
            }
        }
    }

    /// Moves every dead letter back into `queue`: send, then delete. A stop
    /// between the two leaves the message in both; the writer's insert is
    /// idempotent per fan, so the replay still makes one row.
    pub async fn redrive_into(&self, queue: &EntryQueue) -> Result<Redriven, QueueError> {
        let api = |e: &dyn std::fmt::Display| QueueError::Api(e.to_string());
        let client = self.queue.client().await;
        let mut done = Redriven::default();
        let mut empty = 0;
        while empty < 3 {
            let out = client
                .receive_message()
                .queue_url(&self.queue.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| api(&DisplayErrorContext(e)))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                empty += 1;
                if self.depth().await?.total() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            empty = 0;
            for m in messages {
                let body = m.body.unwrap_or_default();
                queue
                    .client()
                    .await
                    .send_message()
                    .queue_url(&queue.queue_url)
                    .message_body(&body)
                    .send()
                    .await
                    .map_err(|e| api(&DisplayErrorContext(e)))?;
                client
                    .delete_message()
                    .queue_url(&self.queue.queue_url)
                    .receipt_handle(m.receipt_handle.unwrap_or_default())
                    .send()
                    .await
                    .map_err(|e| api(&DisplayErrorContext(e)))?;
                done.moved += 1;
                if EntryMessage::parse(&body).is_err() {
                    done.unreadable += 1;
                }
            }
        }
        Ok(done)
    }
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
