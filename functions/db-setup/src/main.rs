//! `db-setup`: invoked once after each deploy that adds a migration
//! (docs/deploy.md). As the database's owner it applies the migrations and
//! lets each function's role log in with its own secret's password
//! ([`fanrush::usecases::database_setup`]). Any payload; it answers with
//! the roles it set.

use fanrush::config::DatabaseSetupConfig;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let setup = &DatabaseSetupConfig::from_env()?.setup()?;
    run(service_fn(move |_: LambdaEvent<Value>| async move {
        let report = setup.run().await.map_err(Error::from)?;
        Ok::<_, Error>(serde_json::to_value(report)?)
    }))
    .await
}
