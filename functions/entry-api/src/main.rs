//! `entry-api`: the fan path. Fans read an event and enter it through the
//! Redis gate; accepted entries are buffered in SQS.
//!
//! Init reads configuration only: Redis connects and the SQS client is built
//! on first use, so no network call and no TLS setup happens in init.

use fanrush::config::EntryApiConfig;
use lambda_http::{run, service_fn, Error, Request};
use std::convert::Infallible;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let api = &EntryApiConfig::from_env()?.fan_api()?;
    let metrics = fanrush::telemetry::metrics("entry-api");
    run(service_fn(move |req: Request| async move {
        let response = api.handle(req).await;
        fanrush::telemetry::flush(metrics);
        Ok::<_, Infallible>(response)
    }))
    .await
}
