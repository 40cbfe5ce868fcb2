//! The writer: drains SQS batches of accepted entries into PostgreSQL.
//!
//! A batch is inserted in one round trip and idempotently, so SQS redelivery
//! never duplicates a row. Failures are reported per message
//! (`batchItemFailures`): a poison message is retried alone and ends in the
//! DLQ while the rest of its batch lands. If the database is unreachable the
//! whole batch fails, so SQS retries it later and the event source backs off.

use crate::adapters::postgres_store::{Database, StoreError};
use crate::rules::domain::{Entry, EntryMessage};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use metrics::counter;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WriterError {
    /// Nothing of the batch was written; SQS will deliver it again.
    #[error("the batch could not be written: {0}")]
    Unavailable(#[from] StoreError),
}

/// Writes SQS batches of entries.
pub struct EntryWriter {
    db: Database,
}

impl EntryWriter {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Handles one SQS event, reporting the messages that must come again.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, WriterError> {
        let mut failures = Vec::new();
        let mut ids: Vec<String> = Vec::with_capacity(event.records.len());
        let mut entries: Vec<Entry> = Vec::with_capacity(event.records.len());
        for record in event.records {
            let id = record.message_id.unwrap_or_default();
            match record.body.as_deref().map(EntryMessage::parse) {
                Some(Ok(entry)) => {
                    ids.push(id);
                    entries.push(entry);
                }
                Some(Err(e)) => {
                    tracing::error!(message_id = %id, error = %e, "poison message");
                    failures.push(id);
                }
                None => {
                    tracing::error!(message_id = %id, "message without a body");
                    failures.push(id);
                }
            }
        }
        counter!("PoisonMessages").increment(failures.len() as u64);
        match self.db.insert_entries(&entries).await {
            Ok(written) => {
                counter!("RowsWritten").increment(written);
                tracing::info!(received = entries.len(), written, "batch written");
            }
            Err(e) if e.is_unavailable() => return Err(e.into()),
            // One row is refused (e.g. a position held by another fan): find
            // it by writing row by row, so the others still land.
            Err(e) => {
                tracing::warn!(error = %e, "batch refused; writing row by row");
                for (id, entry) in ids.iter().zip(&entries) {
                    match self.db.insert_entries(std::slice::from_ref(entry)).await {
                        Ok(written) => counter!("RowsWritten").increment(written),
                        Err(e) if e.is_unavailable() => failures.push(id.clone()),
                        Err(e) => {
                            tracing::error!(message_id = %id, event = %entry.event_id, position = entry.position, error = %e, "entry refused by the database");
                            failures.push(id.clone());
                        }
                    }
                }
            }
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures
            .into_iter()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
            .collect();
        Ok(response)
    }
}
