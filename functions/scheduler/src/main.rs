//! `scheduler`: runs every minute from an EventBridge schedule. Housekeeping
//! of the gate: restores it from PostgreSQL after Redis lost its data, and
//! resolves reservations left pending by an unknown SQS outcome.

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use fanrush::config::{aws_config, sqs_client, SchedulerConfig};
use fanrush::gate::EntryGate;
use fanrush::queue::EntryQueue;
use fanrush::recovery::housekeeping;
use fanrush::store::Database;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let config = SchedulerConfig::from_env()?;
    let r = &config.redis;
    let gate = &EntryGate::new(&r.url, &r.key_prefix, r.connect_timeout, r.response_timeout)?;
    let d = &config.database;
    let db = &Database::new(&d.url, d.schema.clone(), d.connect_timeout)?;
    let queue = &EntryQueue::new(
        sqs_client(&aws_config().await, config.queue.attempt_timeout),
        &config.queue.url,
        config.queue.policy,
    );
    let sweep_after = config.sweep_after;
    run(service_fn(move |_: LambdaEvent<CloudWatchEvent>| async move {
        let report = housekeeping(gate, db, queue, chrono::Utc::now(), sweep_after).await?;
        lambda_runtime::tracing::info!(?report, "housekeeping done");
        Ok::<_, Error>(json!({
            "restored": report.restored.map(|(events, entries)| json!({ "events": events, "entries": entries })),
            "confirmed": report.sweep.confirmed,
            "released": report.sweep.released,
            "deferred": report.deferred,
        }))
    }))
    .await
}
