//! The notifier's job (`notifier`): each CloudWatch alarm SNS delivers is
//! posted to Slack. An alarm Slack did not take fails the invocation, so
//! Lambda retries it and, after the template's retries, its on-failure
//! destination keeps it: an alarm is never dropped silently.

use crate::adapters::slack::{alarm_notice, SlackNotifier};
use aws_lambda_events::event::sns::SnsEvent;

/// An alarm that was not delivered.
#[derive(Debug, thiserror::Error)]
#[error("alarm {subject:?} not delivered to Slack: {why}")]
pub struct AlarmNotDelivered {
    pub subject: String,
    pub why: String,
}

/// Forwards every alarm of `event`; how many were delivered. Stops at the
/// first failure (a retry sends the whole event again: Slack may see an
/// alarm twice, never zero times).
pub async fn forward_alarms(slack: &SlackNotifier, event: &SnsEvent) -> Result<usize, AlarmNotDelivered> {
    for record in &event.records {
        let subject = record.sns.subject.as_deref();
        slack
            .deliver(&alarm_notice(subject, &record.sns.message))
            .await
            .map_err(|why| AlarmNotDelivered { subject: subject.unwrap_or_default().to_owned(), why })?;
    }
    Ok(event.records.len())
}
