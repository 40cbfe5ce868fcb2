//! `notifier`: CloudWatch alarms arrive through SNS and are forwarded to
//! Slack ([`fanrush::usecases::alarms`]). The webhook URL is read from
//! Secrets Manager on first use. An alarm Slack does not take fails the
//! invocation: Lambda retries it, then the on-failure destination keeps it.

use aws_lambda_events::event::sns::SnsEvent;
use fanrush::config::NotifierConfig;
use fanrush::usecases::alarms::forward_alarms;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    fanrush::telemetry::init();
    let slack = &NotifierConfig::from_env()?.notifier();
    run(service_fn(move |event: LambdaEvent<SnsEvent>| async move {
        forward_alarms(slack, &event.payload).await.map(|_| ()).map_err(Error::from)
    }))
    .await
}
