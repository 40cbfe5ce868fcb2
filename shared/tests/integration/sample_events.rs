//! Every sample under `events/` is a valid event for its trigger: each is fed
//! to its handler, the same files `cargo lambda invoke --data-file` and
//! `sam local invoke -e` take.

use crate::common::*;
use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use aws_lambda_events::event::sns::SnsEvent;
use fanrush::adapters::secrets::{Secret, SecretSource};
use fanrush::adapters::slack::SlackNotifier;
use fanrush::usecases::alarms::forward_alarms;
use fanrush::usecases::api::AuthMode;
use fanrush::usecases::api::{AdminApi, FanApi};
use fanrush::usecases::recovery::Patience;
use fanrush_local::HttpCapture;
use std::time::Duration;

fn sample(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn http(name: &str) -> lambda_http::Request {
    lambda_http::request::from_str(&sample(name)).unwrap()
}

#[tokio::test]
async fn the_http_samples_drive_both_apis_with_production_auth() {
    let stack = Stack::new().await;
    let admin = AdminApi::new(
        gate(&redis_url(), &stack.prefix),
        database(&stack.schema),
        stack.queue(),
        stack.dead_letters(),
        AuthMode::Authorizer,
        1,
    );
    let fan = FanApi::new(gate(&redis_url(), &stack.prefix), stack.queue(), AuthMode::Authorizer, 1);

    assert_eq!(admin.handle(http("admin-put-event.json")).await.status(), 201);
    assert_eq!(body_json(&admin.handle(http("admin-list-events.json")).await)["events"][0]["eventId"], "demo");
    assert_eq!(body_json(&fan.handle(http("fan-get-event.json")).await)["remaining"], 5000);
    let entered = fan.handle(http("fan-post-entry.json")).await;
    assert_eq!(entered.status(), 202);
    assert_eq!(body_json(&entered)["fanId"], "fan-7f3a9c");
    let me = body_json(&fan.handle(http("fan-get-my-entry.json")).await);
    assert_eq!((me["position"].as_i64(), me["note"].as_str()), (Some(1), Some("first in line!")));
    assert_eq!(stack.drain().await, 1);
}

#[tokio::test]
async fn the_sqs_sample_is_a_batch_the_writer_lands() {
    let stack = Stack::new().await;
    let event = serde_json::from_str(&sample("sqs-batch.json")).unwrap();
    let response = stack.writer.handle(event).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(stack.rows("sqs-sample").await.len(), 3);
}

#[tokio::test]
async fn the_schedule_sample_is_an_event_the_scheduler_accepts() {
    let stack = Stack::new().await;
    let tick: CloudWatchEvent = serde_json::from_str(&sample("schedule.json")).unwrap();
    assert_eq!(tick.detail_type.as_deref(), Some("Scheduled Event"));
    let patience = Patience { restore_settle: Duration::ZERO, sweep_after: Duration::from_secs(300) };
    let report = stack.housekeeping(chrono::Utc::now(), patience).await;
    assert!(!report.deferred);
}

#[tokio::test]
async fn the_sns_sample_is_an_alarm_the_notifier_forwards_to_slack() {
    let event: SnsEvent = serde_json::from_str(&sample("sns-alarm.json")).unwrap();
    let slack = HttpCapture::start().await.unwrap();
    let notifier = SlackNotifier::new(SecretSource::Plain(Secret::new(slack.url("/hook"))));
    assert_eq!(forward_alarms(&notifier, &event).await.unwrap(), 1);
    let posts = slack.requests();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!((posts[0].method.as_str(), posts[0].path.as_str()), ("POST", "/hook"));
    let text = serde_json::from_str::<serde_json::Value>(&posts[0].body).unwrap()["text"].as_str().unwrap().to_owned();
    assert!(text.contains("fanrush-EntryApiThrottlesAlarm") && text.contains("ALARM"), "{text}");
}

#[tokio::test]
async fn an_alarm_slack_refuses_fails_the_invocation_so_lambda_retries_it() {
    let event: SnsEvent = serde_json::from_str(&sample("sns-alarm.json")).unwrap();
    let slack = HttpCapture::start().await.unwrap();
    slack.answer(500, "{}");
    let notifier = SlackNotifier::new(SecretSource::Plain(Secret::new(slack.url("/hook"))));
    let e = forward_alarms(&notifier, &event).await.unwrap_err();
    assert!(e.to_string().contains("fanrush-EntryApiThrottlesAlarm"), "{e}");
    assert_eq!(slack.requests().len(), 1, "it was tried");
}
