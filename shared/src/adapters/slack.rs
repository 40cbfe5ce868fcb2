//! Telling operators: a Slack incoming-webhook notifier.
//!
//! Every scale-out, scale-in, clamp, readiness failure, scheduler error and
//! CloudWatch alarm becomes one [`Notice`]; its text is pure and tested. The
//! webhook URL is a secret: it comes from Secrets Manager through the AWS
//! Parameters and Secrets Lambda Extension on first use (or, locally, from
//! `SLACK_WEBHOOK_URL`), is never logged, and Slack being slow or down never
//! fails what is being reported: a failed post is logged (without the URL)
//! and dropped.

use crate::adapters::https::HttpsClient;
use crate::adapters::secrets::SecretSource;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Something operators must hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Provisioned concurrency changed.
    Scaled { from: i64, to: i64, events: Vec<String>, reason: String },
    /// The calendar wanted more than the account can grant.
    Clamped { wanted: i64, granted: i64, events: Vec<String> },
    /// Provisioned concurrency is not ready shortly before an event opens, or failed.
    NotReady { event: String, status: String, requested: i64, allocated: i64, reason: Option<String> },
    /// The scheduler itself failed.
    SchedulerError { message: String },
    /// A CloudWatch alarm changed state.
    Alarm { name: String, state: String, reason: String },
    /// The preflight at scale-out: how many quota checks ran, and each that
    /// failed with what to raise.
    Preflight { events: Vec<String>, checks: usize, failed: Vec<String> },
    /// Calendar feed entries that are not in the plan, each with why.
    CalendarSkipped { entries: Vec<String> },
    /// Accepted entries sit in the DLQ: named, so an operator knows whose
    /// entries wait for `fanrush redrive`. `entries` is `event/fan@position`.
    DeadLetters { entries: Vec<String>, unreadable: usize },
}

impl Notice {
    /// The Slack message text.
    pub fn text(&self) -> String {
        let list = |events: &[String]| if events.is_empty() { "no events".to_owned() } else { events.join(", ") };
        match self {
            Self::Scaled { from, to, events, reason } => {
                let verb = if to > from { "Scale-out" } else { "Scale-in" };
                format!(":rocket: {verb}: entry-api provisioned concurrency {from} → {to} ({}) - {reason}", list(events))
            }
            Self::Clamped { wanted, granted, events } => format!(
                ":warning: Clamp: the calendar wants {wanted} provisioned environments for {} but the account grants {granted}",
                list(events)
            ),
            Self::NotReady { event, status, requested, allocated, reason } => {
                let mut s = format!(
                    ":rotating_light: Not ready for {event}: provisioned concurrency {status}, {allocated}/{requested} allocated"
                );
                if let Some(r) = reason {
                    let _ = write!(s, " - {r}");
                }
                s
            }
            Self::SchedulerError { message } => format!(":x: Scheduler error: {message}"),
            Self::Alarm { name, state, reason } => format!(":bell: Alarm {name} is {state}: {reason}"),
            Self::Preflight { events, checks, failed } if failed.is_empty() => {
                format!(":white_check_mark: Preflight for {}: all {checks} quota checks pass", list(events))
            }
            Self::Preflight { events, checks, failed } => format!(
                ":rotating_light: Preflight for {}: {} of {checks} quota checks fail - {}",
                list(events),
                failed.len(),
                failed.join("; ")
            ),
            Self::CalendarSkipped { entries } => format!(
                ":warning: {} calendar feed entries are skipped (no scale-out for them): {}",
                entries.len(),
                entries.join("; ")
            ),
            Self::DeadLetters { entries, unreadable } => {
                const SHOWN: usize = 20;
                let mut s = format!(
                    ":rotating_light: {} accepted entries are in the DLQ (their places stay taken): {}",
                    entries.len(),
                    entries.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ")
                );
                if entries.len() > SHOWN {
                    let _ = write!(s, " and {} more", entries.len() - SHOWN);
                }
                if *unreadable > 0 {
                    let _ = write!(s, "; {unreadable} messages are not entries");
                }
                s.push_str(". Fix the cause (see the writer's log), then run `fanrush redrive`.");
                s
            }
        }
    }

    /// The Slack payload. Every notice carries text from outside (an
    /// event's id or title, a calendar feed's entries, an alarm's reason),
    /// so the text is escaped as Slack's "Formatting text for app surfaces"
    /// page says (`&`, `<`, `>`): a title holding `<!channel>` or a
    /// `<https://...|link>` reaches the channel as the characters it is,
    /// not as a mention or a link.
    pub fn payload(&self) -> Value {
        json!({ "text": escaped(&self.text()) })
    }
}

/// Text with Slack's three control characters escaped.
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Reads an SNS message as a CloudWatch alarm notification; any other
/// message is passed on with its subject.
pub fn alarm_notice(subject: Option<&str>, message: &str) -> Notice {
    match serde_json::from_str::<Value>(message) {
        Ok(alarm) if alarm.get("AlarmName").is_some() => Notice::Alarm {
            name: alarm["AlarmName"].as_str().unwrap_or("?").to_owned(),
            state: alarm["NewStateValue"].as_str().unwrap_or("?").to_owned(),
            reason: alarm["NewStateReason"].as_str().unwrap_or("").to_owned(),
        },
        _ => Notice::Alarm {
            name: subject.unwrap_or("SNS message").to_owned(),
            state: "NOTIFIED".to_owned(),
            reason: message.chars().take(500).collect(),
        },
    }
}

/// Posts notices to a Slack incoming webhook.
pub struct SlackNotifier {
    source: SecretSource,
    url: OnceCell<String>,
    web: HttpsClient,
    timeout: Duration,
}

impl SlackNotifier {
    /// Builds the notifier; nothing is read or connected until the first post.
    /// `source` is where the webhook URL comes from
    /// (`SecretSource::from_env("SLACK_WEBHOOK_SECRET_ID", "SLACK_WEBHOOK_URL")`).
    pub fn new(source: SecretSource) -> Self {
        Self { source, url: OnceCell::new(), web: HttpsClient::new(), timeout: Duration::from_secs(3) }
    }

    /// Posts a notice. Never fails: Slack trouble is logged and dropped
    /// (a scale action must not fail because Slack did).
    pub async fn notify(&self, notice: &Notice) {
        if let Err(e) = self.deliver(notice).await {
            tracing::warn!(error = %e, "slack notification failed; dropped");
        }
    }

    /// Posts a notice and says whether Slack took it; with no webhook
    /// configured there is nothing to deliver (logged only).
    pub async fn deliver(&self, notice: &Notice) -> Result<(), String> {
        tracing::info!(notice = %notice.text(), "notice");
        if self.source == SecretSource::None {
            return Ok(());
        }
        let url = self.url.get_or_try_init(|| self.resolve_url()).await?;
        self.web.post_json(url, &notice.payload(), self.timeout).await
    }

    async fn resolve_url(&self) -> Result<String, String> {
        match self.source.resolve().await {
            Ok(Some(url)) => Ok(url.expose().to_owned()),
            Ok(None) => Err("slack is off".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::secrets::Secret;

    #[test]
    fn notices_say_what_happened_with_names_and_numbers() {
        let out = Notice::Scaled { from: 0, to: 1800, events: vec!["drop-1".into()], reason: "opens at 10:00".into() };
        assert_eq!(
            out.text(),
            ":rocket: Scale-out: entry-api provisioned concurrency 0 → 1800 (drop-1) - opens at 10:00"
        );
        let r#in = Notice::Scaled { from: 1800, to: 0, events: vec![], reason: "ended".into() };
        assert!(r#in.text().starts_with(":rocket: Scale-in") && r#in.text().contains("no events"));
        let clamp = Notice::Clamped { wanted: 2700, granted: 1900, events: vec!["a".into(), "b".into()] };
        assert!(
            clamp.text().contains("wants 2700")
                && clamp.text().contains("grants 1900")
                && clamp.text().contains("a, b")
        );
        let failed = Notice::NotReady {
            event: "a".into(),
            status: "FAILED".into(),
            requested: 10,
            allocated: 0,
            reason: Some("limit".into()),
        };
        assert!(failed.text().ends_with("FAILED, 0/10 allocated - limit"));
    }

    #[test]
    fn text_from_outside_cannot_mention_or_link() {
        let title = "Drop <!channel> <https://evil.example|claim here> & <@U123>";
        let notice = Notice::CalendarSkipped { entries: vec![format!("{title}: opens in the past")] };
        let sent = notice.payload()["text"].as_str().unwrap().to_owned();
        assert!(!sent.contains('<') && !sent.contains('>'), "{sent}");
        assert!(
            sent.contains("Drop &lt;!channel&gt; &lt;https://evil.example|claim here&gt; &amp; &lt;@U123&gt;"),
            "{sent}"
        );
        let alarm = alarm_notice(Some("<!here>"), "x -> y");
        assert_eq!(alarm.payload()["text"], ":bell: Alarm &lt;!here&gt; is NOTIFIED: x -&gt; y");
    }

    #[test]
    fn cloudwatch_alarms_become_alarm_notices() {
        let message = r#"{"AlarmName":"fanrush-EntryApiThrottles","NewStateValue":"ALARM","NewStateReason":"Threshold Crossed: 1 datapoint [4.0] was greater than 0.0","OldStateValue":"OK"}"#;
        assert_eq!(
            alarm_notice(Some("ALARM: x"), message).text(),
            ":bell: Alarm fanrush-EntryApiThrottles is ALARM: Threshold Crossed: 1 datapoint [4.0] was greater than 0.0"
        );
        assert_eq!(alarm_notice(Some("hello"), "plain text").text(), ":bell: Alarm hello is NOTIFIED: plain text");
    }

    #[test]
    fn the_webhook_url_never_shows_in_debug_output() {
        let source = SecretSource::Plain(Secret::new("https://hooks.slack.com/services/T/B/secret"));
        let s = format!("{source:?} {:?}", SlackNotifier::new(source.clone()).source);
        assert!(!s.contains("secret") && !s.contains("hooks"), "{s}");
    }
}
