//! `admin-api`: operators define the calendar of fan events (IAM-authorized
//! in AWS). Definitions go to PostgreSQL and are published to the Redis gate.
//!
//! Init builds clients only; Redis and PostgreSQL connect on first use.

use fanrush::api::AdminApi;
use fanrush::config::AdminApiConfig;
use fanrush::gate::EntryGate;
use fanrush::store::Database;
use lambda_http::{run, service_fn, Error, Request};
use std::convert::Infallible;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let config = AdminApiConfig::from_env()?;
    let gate = EntryGate::from_config(&config.redis)?;
    let db = Database::from_config(&config.database)?;
    let (queue, dead_letters) = config.queue.queues();
    let dead_letters = dead_letters.ok_or("SQS_DLQ_URL must be set")?;
    let api = &AdminApi::new(gate, db, queue, dead_letters, config.auth, config.retry_after_s)
        .with_restore_settle(config.restore_settle);
    run(service_fn(move |req: Request| async move { Ok::<_, Infallible>(api.handle(req).await) })).await
}
