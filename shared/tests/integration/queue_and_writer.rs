//! The writer against real PostgreSQL: one-round-trip idempotent batches,
//! per-message failures for poison and conflicting rows, and a whole-batch
//! failure when the database is down. Batches come from the real SQS endpoint.

use crate::common::*;
use fanrush::adapters::postgres_store::Database;
use fanrush::rules::domain::{Entry, EntryMessage, EventId};
use fanrush::usecases::writer::EntryWriter;
use std::time::Duration;

/// Sends bodies to the stack's queue and receives them back as one batch.
async fn batch(stack: &Stack, bodies: &[String]) -> Vec<aws_sdk_sqs::types::Message> {
    for b in bodies {
        stack.sqs.send_message().queue_url(&stack.queue_url).message_body(b).send().await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < bodies.len() {
        let out =
            stack.sqs.receive_message().queue_url(&stack.queue_url).max_number_of_messages(10).send().await.unwrap();
        got.extend(out.messages.unwrap_or_default());
    }
    got
}

fn body(e: &Entry) -> String {
    EntryMessage::new(e).to_body()
}

#[tokio::test]
async fn redelivered_batches_never_duplicate_rows() {
    let stack = Stack::new().await;
    let bodies: Vec<String> = (1..=10).map(|i| body(&entry("ev", &format!("fan{i}"), i))).collect();
    let messages = batch(&stack, &bodies).await;
    for _ in 0..3 {
        let r = stack.writer.handle(sqs_event(&messages)).await.unwrap();
        assert!(r.batch_item_failures.is_empty());
    }
    assert_eq!(stack.rows("ev").await.len(), 10);
    assert_eq!(stack.db.written_count(&EventId::parse("ev").unwrap()).await.unwrap(), 10);
}

#[tokio::test]
async fn a_poison_message_fails_alone_and_the_rest_of_its_batch_lands() {
    let stack = Stack::new().await;
    let mut bodies: Vec<String> = (1..=4).map(|i| body(&entry("ev", &format!("fan{i}"), i))).collect();
    bodies.push("{\"not\":\"an entry\"}".into());
    bodies.push(body(&entry("ev", "thief", 2))); // position 2 already belongs to fan2
    let messages = batch(&stack, &bodies).await;
    let r = stack.writer.handle(sqs_event(&messages)).await.unwrap();
    let failed: Vec<&str> = r.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    let expected: Vec<&str> = messages
        .iter()
        .filter(|m| m.body.as_deref().is_some_and(|b| b.contains("not") || b.contains("thief")))
        .map(|m| m.message_id.as_deref().unwrap())
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(expected.iter().all(|id| failed.contains(id)), "{failed:?} vs {expected:?}");
    assert_eq!(stack.rows("ev").await.len(), 4, "the valid rows landed");
}

#[tokio::test]
async fn poison_ends_in_the_dead_letter_queue() {
    let stack = Stack::new().await; // test queues redrive after 3 receives, visibility 2 s
    stack.sqs.send_message().queue_url(&stack.queue_url).message_body("garbage").send().await.unwrap();
    for _ in 0..60 {
        let out =
            stack.sqs.receive_message().queue_url(&stack.queue_url).max_number_of_messages(10).send().await.unwrap();
        let messages = out.messages.unwrap_or_default();
        if !messages.is_empty() {
            let r = stack.writer.handle(sqs_event(&messages)).await.unwrap();
            assert_eq!(r.batch_item_failures.len(), 1);
        }
        let dlq = stack.sqs.receive_message().queue_url(&stack.dlq_url).send().await.unwrap();
        if let Some(m) = dlq.messages.unwrap_or_default().first() {
            assert_eq!(m.body.as_deref(), Some("garbage"));
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the poison message never reached the DLQ");
}

#[tokio::test]
async fn a_database_outage_fails_the_whole_batch_for_redelivery() {
    let stack = Stack::new().await;
    let dead = EntryWriter::new(
        Database::new("postgres://postgres@127.0.0.1:1/postgres", None, Duration::from_millis(300)).unwrap(),
    );
    let messages = batch(&stack, &[body(&entry("ev", "x", 1))]).await;
    assert!(dead.handle(sqs_event(&messages)).await.is_err());
    // The same batch succeeds once the database is there.
    assert!(stack.writer.handle(sqs_event(&messages)).await.unwrap().batch_item_failures.is_empty());
    assert_eq!(stack.rows("ev").await, vec![("x".to_owned(), 1)]);
}

#[tokio::test]
async fn batches_of_any_size_land_whole_and_count_only_new_rows() {
    let stack = Stack::new().await;
    // 1,500 rows: one statement of 1,024 rows, one of 476.
    let many: Vec<Entry> = (1..=1500).map(|i| entry("big", &format!("f{i}"), i)).collect();
    assert_eq!(stack.db.insert_entries(&many).await.unwrap(), 1500);
    assert_eq!(stack.db.insert_entries(&many[..3]).await.unwrap(), 0, "a redelivery writes nothing");
    let three: Vec<Entry> = (1..=3).map(|i| entry("small", &format!("g{i}"), i)).collect();
    assert_eq!(stack.db.insert_entries(&three).await.unwrap(), 3);
    assert_eq!(stack.rows("big").await.len(), 1500);
    assert_eq!(stack.rows("small").await, vec![("g1".to_owned(), 1), ("g2".to_owned(), 2), ("g3".to_owned(), 3)]);
}
