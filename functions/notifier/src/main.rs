//! `notifier`: CloudWatch alarms arrive through SNS and are forwarded to
//! Slack. The webhook URL is read from Secrets Manager on first use.

use aws_lambda_events::event::sns::SnsEvent;
use fanrush::adapters::slack::alarm_notice;
use fanrush::config::NotifierConfig;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let slack = &NotifierConfig::from_env().notifier();
    run(service_fn(move |event: LambdaEvent<SnsEvent>| async move {
        for record in &event.payload.records {
            slack.notify(&alarm_notice(record.sns.subject.as_deref(), &record.sns.message)).await;
        }
        Ok::<_, Error>(())
    }))
    .await
}
