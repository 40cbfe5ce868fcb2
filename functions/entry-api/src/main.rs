//! `entry-api`: the fan path. Fans read an event and enter it through the
//! Redis gate; accepted entries are buffered in SQS.
//!
//! On-demand init reads configuration only: Redis connects and the SQS
//! client is built on first use, because that init is on a fan's request
//! path. An environment initialized for provisioned concurrency does that
//! work in init instead (see `fanrush::config::EntryApiConfig::warm_at_init`);
//! if it fails, the first request connects as usual.

use fanrush::config::EntryApiConfig;
use lambda_http::{run, service_fn, Error, Request};
use std::convert::Infallible;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let config = EntryApiConfig::from_env()?;
    let api = &config.fan_api()?;
    if let Some(budget) = config.warm_at_init {
        // Logged inside; on failure the first request connects as usual.
        api.warm(budget).await.ok();
    }
    let metrics = fanrush::telemetry::metrics("entry-api");
    run(service_fn(move |req: Request| async move {
        let response = api.handle(req).await;
        fanrush::telemetry::flush(metrics);
        Ok::<_, Infallible>(response)
    }))
    .await
}
