//! `notifier`: CloudWatch alarms arrive through SNS and are forwarded to
//! Slack. The webhook URL is read from Secrets Manager on first use.

use aws_lambda_events::event::sns::SnsEvent;
use fanrush::notify::{alarm_notice, SlackNotifier};
use fanrush::secrets::SecretSource;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let slack = &SlackNotifier::new(SecretSource::from_env("SLACK_WEBHOOK_SECRET_ID", "SLACK_WEBHOOK_URL"));
    run(service_fn(move |event: LambdaEvent<SnsEvent>| async move {
        for record in &event.payload.records {
            slack.notify(&alarm_notice(record.sns.subject.as_deref(), &record.sns.message)).await;
        }
        Ok::<_, Error>(())
    }))
    .await
}
