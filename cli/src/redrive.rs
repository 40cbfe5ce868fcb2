//! `fanrush redrive`: replays the entry queue's DLQ into the entry queue,
//! once the cause that dead-lettered the entries is fixed. Idempotent: the
//! writer stores one row per fan and event however often an entry arrives,
//! so running it twice, or after a stop half-way, loses and duplicates
//! nothing.

use fanrush::adapters::aws_sdk::{aws_config, sqs_client};
use fanrush::adapters::sqs_queue::{EntryQueue, SendPolicy};
use std::time::Duration;

/// AWS access comes from `AWS_ENDPOINT_URL` or the AWS credentials chain.
#[derive(clap::Args)]
pub struct RedriveArgs {
    /// The entry queue's URL.
    #[arg(long)]
    queue_url: String,
    /// Its dead-letter queue's URL.
    #[arg(long)]
    dlq_url: String,
}

pub async fn run(args: RedriveArgs) -> Result<(), String> {
    let sqs = sqs_client(&aws_config().await, Duration::from_secs(10));
    let queue = EntryQueue::new(sqs, &args.queue_url, SendPolicy { attempts: 1, backoff: Duration::ZERO });
    let dead_letters = queue.dead_letters(&args.dlq_url);
    let done = dead_letters.redrive_into(&queue).await.map_err(|e| e.to_string())?;
    let left = dead_letters.depth().await.map_err(|e| e.to_string())?.total();
    println!("{}", serde_json::json!({ "moved": done.moved, "notEntries": done.unreadable, "leftInDlq": left }));
    if left > 0 {
        return Err(format!("{left} messages are still in the DLQ (being read elsewhere); run it again"));
    }
    Ok(())
}
