//! `scheduler`: runs every minute from an EventBridge schedule (see
//! [`fanrush::usecases::scheduler_job`]): gate housekeeping after Redis lost
//! or rewound its data, the dead letters named, then `entry-api:live`'s
//! provisioned concurrency reconciled with the calendar, telling Slack.
//! `SCHEDULER_DRY_RUN=true` (local) only logs. Every client is built on
//! first use: init reads configuration only.

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use fanrush::config::SchedulerConfig;
use lambda_runtime::{run, service_fn, Diagnostic, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let job = &SchedulerConfig::from_env()?.job()?;
    let metrics = fanrush::telemetry::metrics("scheduler");
    run(service_fn(move |_: LambdaEvent<CloudWatchEvent>| async move {
        let report = job
            .run(chrono::Utc::now())
            .await
            .map_err(|e| Diagnostic { error_type: e.kind().to_owned(), error_message: e.to_string() });
        fanrush::telemetry::flush(metrics);
        report
    }))
    .await
}
