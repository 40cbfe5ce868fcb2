//! `scheduler`: runs every minute from an EventBridge schedule.
//!
//! 1. Housekeeping of the gate: restores it from PostgreSQL after Redis lost
//!    its data, and resolves reservations left pending by an unknown SQS
//!    outcome.
//! 2. Scaling: reads the calendar (PostgreSQL, plus an optional iCalendar
//!    feed) and reconciles `entry-api:live`'s provisioned concurrency with it,
//!    telling Slack what it did. `SCHEDULER_DRY_RUN=true` (local) only logs.

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use fanrush::config::SchedulerConfig;
use fanrush::control::ProvisionedConcurrency;
use fanrush::gate::EntryGate;
use fanrush::notify::SlackNotifier;
use fanrush::scheduler::{Scheduler, Target};
use fanrush::secrets::SecretSource;
use fanrush::store::Database;
use fanrush::tick::{tick, Services};
use fanrush::web::Web;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let config = SchedulerConfig::from_env()?;
    // Every client is built on first use: init reads configuration only.
    let target = match (&config.entry_function, config.dry_run) {
        (Some(function), false) => Target::Lambda(ProvisionedConcurrency::lazy(function, &config.entry_alias)),
        _ => Target::DryRun { account_limit: config.account_limit },
    };
    let (queue, dead_letters) = config.queue.queues();
    let services = &Services {
        gate: EntryGate::from_config(&config.redis)?,
        db: Database::from_config(&config.database)?,
        queue,
        dead_letters: dead_letters.ok_or("SQS_DLQ_URL must be set")?,
        dead_letters_told: Default::default(),
        scheduler: Scheduler::new(
            target,
            SlackNotifier::new(SecretSource::from_env("SLACK_WEBHOOK_SECRET_ID", "SLACK_WEBHOOK_URL")),
            config.scaling,
        ),
        patience: config.patience,
        calendar_ics_url: config.calendar_ics_url.clone(),
        web: Web::new(),
    };
    let metrics = fanrush::telemetry::metrics("scheduler");
    run(service_fn(move |_: LambdaEvent<CloudWatchEvent>| async move {
        let report = tick(services, chrono::Utc::now()).await.map_err(Error::from);
        fanrush::telemetry::flush(metrics);
        report
    }))
    .await
}
