//! `writer`: drains the entry queue into PostgreSQL. Its SQS event source
//! caps concurrency (`MaximumConcurrency`), which caps database connections
//! whatever the spike. PostgreSQL connects on first use.

use aws_lambda_events::event::sqs::SqsEvent;
use fanrush::config::WriterConfig;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let writer = &WriterConfig::from_env()?.writer()?;
    let metrics = fanrush::telemetry::metrics("writer");
    // An error fails the whole batch, so SQS delivers all of it again.
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let outcome = writer.handle(event.payload).await.map_err(Error::from);
        fanrush::telemetry::flush(metrics);
        outcome
    }))
    .await
}
