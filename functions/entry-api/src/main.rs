//! `entry-api`: the fan path. Fans read an event and enter it through the
//! Redis gate; accepted entries are buffered in SQS.
//!
//! Init builds clients only: no Redis, SQS or network call happens before the
//! first request (Redis connects lazily, on first use).

use fanrush::api::FanApi;
use fanrush::config::{aws_config, sqs_client, EntryApiConfig};
use fanrush::gate::EntryGate;
use fanrush::queue::EntryQueue;
use lambda_http::{run, service_fn, Error, Request};
use std::convert::Infallible;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let config = EntryApiConfig::from_env()?;
    let r = &config.redis;
    let gate = EntryGate::new(&r.url, &r.key_prefix, r.connect_timeout, r.response_timeout)?;
    let sqs = sqs_client(&aws_config().await, config.queue.attempt_timeout);
    let queue = EntryQueue::new(sqs, &config.queue.url, config.queue.policy);
    let api = &FanApi::new(gate, queue, config.auth, config.retry_after_s);
    let metrics = fanrush::telemetry::metrics("entry-api");
    run(service_fn(move |req: Request| async move {
        let response = api.handle(req).await;
        fanrush::telemetry::flush(metrics);
        Ok::<_, Infallible>(response)
    }))
    .await
}
