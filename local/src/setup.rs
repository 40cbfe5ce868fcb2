//! `fanrush-local setup`: makes a local stack ready. Creates the entry queue and
//! its DLQ (redrive after `--max-receive-count` receives), applies the
//! PostgreSQL schema and restores the gate from PostgreSQL if Redis lost it.
//! Idempotent: run it against services that are already set up and it
//! changes nothing.

use crate::local_aws::provision;
use fanrush::adapters::aws_sdk::{aws_config, sqs_client};
use fanrush::adapters::postgres_store::Database;
use fanrush::adapters::sqs_queue::{EntryQueue, SendPolicy};
use fanrush::config::{DatabaseConfig, RedisConfig};
use fanrush::usecases::recovery::{restore_gate, Queues};
use std::time::Duration;

/// The services come from AWS_ENDPOINT_URL, DATABASE_URL and REDIS_URL.
#[derive(clap::Args)]
pub struct SetupArgs {
    /// The entry queue's name (its DLQ is NAME-dlq).
    #[arg(long, default_value = "fanrush-entries")]
    queue: String,
    /// The queue's visibility timeout, seconds.
    #[arg(long, default_value_t = 10)]
    visibility_timeout: u32,
    /// Receives before a message is dead-lettered.
    #[arg(long, default_value_t = 5)]
    max_receive_count: u32,
}

pub async fn run(args: SetupArgs) -> Result<(), String> {
    let sdk = aws_config().await;
    let sqs = sqs_client(&sdk, Duration::from_secs(5));
    let (queue_url, dlq_url) = provision(&sqs, &args.queue, args.max_receive_count, args.visibility_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let d = DatabaseConfig::from_env().map_err(|e| e.to_string())?;
    let db = Database::new(&d.url, d.schema.clone(), d.connect_timeout).map_err(|e| e.to_string())?;
    db.migrate().await.map_err(|e| e.to_string())?;
    // The functions' own settings (a cluster with REDIS_CLUSTER), with
    // longer timeouts: a restore writes in pages.
    let r = RedisConfig::from_env().map_err(|e| e.to_string())?;
    let r = RedisConfig { connect_timeout: Duration::from_secs(2), response_timeout: Duration::from_secs(10), ..r };
    let gate = r.gate().map_err(|e| e.to_string())?;
    let queue = EntryQueue::new(sqs, &queue_url, SendPolicy { attempts: 1, backoff: Duration::ZERO });
    // Setup runs before any function is started: no request can be in flight.
    let dead_letters = queue.dead_letters(&dlq_url);
    let queues = Queues { entries: &queue, dead_letters: &dead_letters };
    let restored =
        restore_gate(&gate, &db, &queues, chrono::Utc::now(), Duration::ZERO).await.map_err(|e| e.to_string())?;
    eprintln!("gate: {restored:?}");
    println!("SQS_QUEUE_URL={queue_url}");
    println!("SQS_DLQ_URL={dlq_url}");
    Ok(())
}
