//! `admin-api`: operators define the calendar of fan events (IAM-authorized
//! in AWS). Definitions go to PostgreSQL and are published to the Redis gate.
//!
//! Init builds clients only; Redis and PostgreSQL connect on first use.

use fanrush::config::AdminApiConfig;
use lambda_http::{run, service_fn, Error, Request};
use std::convert::Infallible;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let api = &AdminApiConfig::from_env()?.admin_api()?;
    run(service_fn(move |req: Request| async move { Ok::<_, Infallible>(api.handle(req).await) })).await
}
