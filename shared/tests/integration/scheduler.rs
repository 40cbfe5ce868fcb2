//! The scheduler's reconcile loop against the Lambda control plane, mocked
//! at the SDK boundary with aws-smithy-mocks (Lambda has no local server),
//! and Slack as a local recording HTTP server.

use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::operation::delete_provisioned_concurrency_config::DeleteProvisionedConcurrencyConfigOutput;
use aws_sdk_lambda::operation::get_account_settings::GetAccountSettingsOutput;
use aws_sdk_lambda::operation::get_provisioned_concurrency_config::{
    GetProvisionedConcurrencyConfigError, GetProvisionedConcurrencyConfigOutput,
};
use aws_sdk_lambda::operation::put_provisioned_concurrency_config::PutProvisionedConcurrencyConfigOutput;
use aws_sdk_lambda::types::error::ProvisionedConcurrencyConfigNotFoundException;
use aws_sdk_lambda::types::{AccountLimit, ProvisionedConcurrencyStatusEnum};
use aws_sdk_lambda::Client;
use aws_smithy_mocks::{mock, mock_client, MockResponse, Rule, RuleMode};
use chrono::{DateTime, Duration, TimeZone, Utc};
use fanrush::adapters::lambda_control::ProvisionedConcurrency;
use fanrush::adapters::secrets::{Secret, SecretSource};
use fanrush::adapters::slack::{Notice, SlackNotifier};
use fanrush::rules::domain::{EventId, FanEvent};
use fanrush::rules::scaling::preflight::{Capacities, Pricing, PRICE_PER_GB_SECOND};
use fanrush::rules::scaling::ScalingParams;
use fanrush::usecases::provisioning::{Applied, PreflightInputs, Provisioner, Target};
use fanrush_local::HttpCapture;
use std::sync::{Arc, Mutex};

/// Lambda's provisioned-concurrency state as the fake control plane keeps it.
#[derive(Default)]
struct FakeLambda {
    config: Option<(i32, ProvisionedConcurrencyStatusEnum, Option<String>)>,
    writes: Vec<String>,
}

type Shared = Arc<Mutex<FakeLambda>>;

fn rules(state: &Shared, unreserved: i32) -> Vec<Rule> {
    let (get, put, delete, account) = (state.clone(), state.clone(), state.clone(), state.clone());
    vec![
        mock!(Client::get_provisioned_concurrency_config).then_compute_response(move |req| {
            assert_eq!((req.function_name(), req.qualifier()), (Some("entry-api"), Some("live")));
            match &get.lock().unwrap().config {
                None => MockResponse::Error(
                    GetProvisionedConcurrencyConfigError::ProvisionedConcurrencyConfigNotFoundException(
                        ProvisionedConcurrencyConfigNotFoundException::builder().build(),
                    ),
                ),
                Some((n, status, reason)) => {
                    let allocated = if *status == ProvisionedConcurrencyStatusEnum::Ready { *n } else { 0 };
                    let mut out = GetProvisionedConcurrencyConfigOutput::builder()
                        .requested_provisioned_concurrent_executions(*n)
                        .allocated_provisioned_concurrent_executions(allocated)
                        .status(status.clone());
                    if let Some(r) = reason {
                        out = out.status_reason(r);
                    }
                    MockResponse::Output(out.build())
                }
            }
        }),
        mock!(Client::put_provisioned_concurrency_config).then_compute_output(move |req| {
            let n = req.provisioned_concurrent_executions().unwrap();
            let mut s = put.lock().unwrap();
            s.config = Some((n, ProvisionedConcurrencyStatusEnum::Ready, None));
            s.writes.push(format!("put {n}"));
            PutProvisionedConcurrencyConfigOutput::builder().build()
        }),
        mock!(Client::delete_provisioned_concurrency_config).then_compute_output(move |_| {
            let mut s = delete.lock().unwrap();
            s.config = None;
            s.writes.push("delete".into());
            DeleteProvisionedConcurrencyConfigOutput::builder().build()
        }),
        // Provisioned concurrency draws from the unreserved pool.
        mock!(Client::get_account_settings).then_compute_output(move |_| {
            let held = account.lock().unwrap().config.as_ref().map_or(0, |c| c.0);
            GetAccountSettingsOutput::builder()
                .account_limit(
                    AccountLimit::builder()
                        .concurrent_executions(10_000)
                        .unreserved_concurrent_executions(unreserved - held)
                        .build(),
                )
                .build()
        }),
    ]
}

fn client(rules: &[Rule]) -> Client {
    mock_client!(aws_sdk_lambda, RuleMode::MatchAny, rules, |c| c.retry_config(
        RetryConfig::standard().with_max_attempts(4).with_initial_backoff(std::time::Duration::from_millis(1))
    ))
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
}

fn event(id: &str, opens: DateTime<Utc>, closes: DateTime<Utc>, rps: f64) -> FanEvent {
    FanEvent {
        id: EventId::parse(id).unwrap(),
        title: id.into(),
        opens_at: opens,
        closes_at: closes,
        capacity: 100,
        expected_peak_rps: rps,
        lead_minutes: None,
        cooldown_minutes: None,
        line: None,
    }
}

fn params() -> ScalingParams {
    ScalingParams { duration: std::time::Duration::from_millis(150), ..Default::default() }
}

fn scheduler(client: Client, slack: &HttpCapture) -> Provisioner {
    Provisioner::new(
        Target::Lambda(ProvisionedConcurrency::new(client, "entry-api", "live")),
        SlackNotifier::new(SecretSource::Plain(Secret::new(slack.url("/hook")))),
        params(),
    )
}

fn slack_texts(slack: &HttpCapture) -> Vec<String> {
    slack
        .requests()
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn overlapping_events_get_exact_calls_at_exact_minutes_and_none_in_between() {
    let state = Shared::default();
    let rules = rules(&state, 9_000);
    let slack = HttpCapture::start().await.unwrap();
    let scheduler = scheduler(client(&rules), &slack);
    // a: 10:00-10:30 at 10k rps (1800); b: 10:20-11:00 at 5k rps (900).
    let calendar = [event("a", at(10, 0), at(10, 30), 10_000.0), event("b", at(10, 20), at(11, 0), 5_000.0)];

    let mut calls = Vec::new();
    let mut minute = at(9, 0);
    while minute <= at(11, 30) {
        let before = state.lock().unwrap().writes.len();
        scheduler.reconcile(&calendar, &[], None, minute).await.unwrap();
        for w in &state.lock().unwrap().writes[before..] {
            calls.push(format!("{} {w}", minute.format("%H:%M")));
        }
        minute += Duration::minutes(1);
    }
    assert_eq!(calls, ["09:30 put 1800", "09:50 put 2700", "10:40 put 900", "11:10 delete"]);
    let texts = slack_texts(&slack);
    assert_eq!(texts.len(), 4, "one notice per scale action: {texts:?}");
    assert!(texts[0].contains("Scale-out") && texts[0].contains("0 → 1800") && texts[0].contains("(a)"));
    assert!(texts[1].contains("1800 → 2700") && texts[1].contains("(a, b)"));
    assert!(texts[3].contains("Scale-in") && texts[3].contains("900 → 0"));
}

#[tokio::test]
async fn a_plan_above_what_the_account_grants_is_clamped_and_reported() {
    let state = Shared::default();
    let rules = rules(&state, 1_000); // 1,000 unreserved: 900 grantable
    let slack = HttpCapture::start().await.unwrap();
    let scheduler = scheduler(client(&rules), &slack);
    let calendar = [event("big", at(10, 0), at(11, 0), 10_000.0)];
    let r = scheduler.reconcile(&calendar, &[], None, at(9, 45)).await.unwrap();
    assert_eq!((r.applied, r.desired.wanted, r.desired.clamped), (Applied::Set(900), 1800, true));
    let texts = slack_texts(&slack);
    assert!(
        texts[0].contains("Clamp") && texts[0].contains("wants 1800") && texts[0].contains("grants 900"),
        "{texts:?}"
    );
    // The next minute holds 900, which counts back into the pool: no write, no notice.
    let r = scheduler.reconcile(&calendar, &[], None, at(9, 46)).await.unwrap();
    assert_eq!(r.applied, Applied::Unchanged);
    assert_eq!(state.lock().unwrap().writes, ["put 900"]);
}

#[tokio::test]
async fn a_capped_entry_api_is_provisioned_within_its_reservation() {
    let state = Shared::default();
    // The pool would grant 8,900; entry-api's own reservation is 600.
    let rules = rules(&state, 9_000);
    let slack = HttpCapture::start().await.unwrap();
    let scheduler = scheduler(client(&rules), &slack).with_entry_cap(Some(600));
    let calendar = [event("big", at(10, 0), at(11, 0), 10_000.0)];
    let r = scheduler.reconcile(&calendar, &[], None, at(9, 45)).await.unwrap();
    assert_eq!((r.applied, r.desired.wanted, r.desired.clamped), (Applied::Set(600), 1800, true));
    assert!(slack_texts(&slack)[0].contains("grants 600"), "{:?}", slack_texts(&slack));
    assert_eq!(state.lock().unwrap().writes, ["put 600"]);
}

#[tokio::test]
async fn a_failed_or_unready_configuration_before_opening_raises_an_alert() {
    let state = Shared::default();
    let rules = rules(&state, 9_000);
    let slack = HttpCapture::start().await.unwrap();
    let scheduler = scheduler(client(&rules), &slack);
    let calendar = [event("drop", at(10, 0), at(10, 30), 10_000.0)];
    scheduler.reconcile(&calendar, &[], None, at(9, 30)).await.unwrap();
    // Allocation is still in progress five minutes before opening.
    state.lock().unwrap().config = Some((1800, ProvisionedConcurrencyStatusEnum::InProgress, None));
    let r = scheduler.reconcile(&calendar, &[], None, at(9, 55)).await.unwrap();
    assert_eq!(r.alerts, 1);
    assert!(slack_texts(&slack)
        .last()
        .unwrap()
        .contains("Not ready for drop (opens 2026-12-01T10:00:00Z): provisioned concurrency IN_PROGRESS, 0/1800"));
    // A FAILED configuration is reported with its reason, whatever the minute.
    let reason = "FUNCTION_ERROR_INIT_FAILURE: init failed";
    state.lock().unwrap().config = Some((1800, ProvisionedConcurrencyStatusEnum::Failed, Some(reason.into())));
    let r = scheduler.reconcile(&calendar, &[], None, at(9, 57)).await.unwrap();
    assert_eq!(r.alerts, 1);
    assert!(slack_texts(&slack).last().unwrap().contains(&format!("FAILED, 0/1800 allocated - {reason}")));
    // READY with everything allocated five minutes before: no alert.
    state.lock().unwrap().config = Some((1800, ProvisionedConcurrencyStatusEnum::Ready, None));
    let before = slack.requests().len();
    assert_eq!(scheduler.reconcile(&calendar, &[], None, at(9, 55)).await.unwrap().alerts, 0);
    assert_eq!(slack.requests().len(), before);
}

#[tokio::test]
async fn every_scale_out_posts_the_preflight_with_what_to_raise() {
    let state = Shared::default();
    let rules = rules(&state, 9_000);
    let slack = HttpCapture::start().await.unwrap();
    // The account has 10,000 concurrent executions (GetAccountSettings); API
    // Gateway's quota is 5,000 rps, below the event's 10,000, and so is the
    // fan routes' throttle within it.
    let inputs = PreflightInputs {
        api_rate: 5_000.0,
        api_burst: 2_500.0,
        fan_route_rate: 4_950.0,
        admin_route_rate: 50.0,
        // A core that admits the peak, whatever the last recorded run measured.
        capacities: Capacities { redis_admissions_per_second: 20_000.0, ..Capacities::default() },
        pricing: Pricing { memory_mb: 128, per_gb_second: PRICE_PER_GB_SECOND },
    };
    let scheduler = scheduler(client(&rules), &slack).with_preflight(inputs);
    let calendar = [event("drop", at(10, 0), at(10, 30), 10_000.0)];
    let r = scheduler.reconcile(&calendar, &[], None, at(9, 30)).await.unwrap();
    assert_eq!((r.applied, r.alerts), (Applied::Set(1800), 1));
    let texts = slack_texts(&slack);
    assert_eq!(texts.len(), 2, "the scale-out, then its preflight: {texts:?}");
    let preflight = &texts[1];
    assert!(preflight.starts_with(":rotating_light: Preflight for drop: 2 of "), "{preflight}");
    assert!(
        preflight.contains("drop: api gateway fan route throttle needs 10000 but has 4950")
            && preflight.contains("FanRouteThrottleRate=10000"),
        "{preflight}"
    );
    assert!(
        preflight.contains("drop: api gateway throttle rate needs 10000 but has 5000")
            && preflight.contains("ApiThrottleRateQuota=10000"),
        "{preflight}"
    );
    assert!(!preflight.contains("lambda account concurrency"), "1,900 of 10,000 passes: {preflight}");
    // A quota that fits is said too, and is no alert.
    let roomy = PreflightInputs { api_rate: 20_000.0, fan_route_rate: 19_950.0, ..inputs };
    let (state, slack) = (Shared::default(), HttpCapture::start().await.unwrap());
    let roomy_scheduler = self::scheduler(client(&self::rules(&state, 9_000)), &slack).with_preflight(roomy);
    let r = roomy_scheduler.reconcile(&calendar, &[], None, at(9, 30)).await.unwrap();
    assert_eq!(r.alerts, 0);
    let texts = slack_texts(&slack);
    assert!(texts[1].starts_with(":white_check_mark: Preflight for drop: all "), "{texts:?}");
}

#[tokio::test]
async fn throttled_control_plane_calls_are_retried() {
    let state = Shared::default();
    let mut rules = rules(&state, 9_000);
    let throttled = mock!(Client::put_provisioned_concurrency_config)
        .sequence()
        .http_response(|| {
            let mut r = aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(429).unwrap(),
                aws_smithy_types::body::SdkBody::from(r#"{"Type":"User","message":"Rate exceeded"}"#),
            );
            r.headers_mut().insert("x-amzn-errortype", "TooManyRequestsException");
            r
        })
        .times(2)
        .output(|| PutProvisionedConcurrencyConfigOutput::builder().build())
        .build();
    rules.insert(0, throttled.clone());
    let slack = HttpCapture::start().await.unwrap();
    let scheduler = scheduler(client(&rules), &slack);
    let calendar = [event("drop", at(10, 0), at(10, 30), 10_000.0)];
    let r = scheduler.reconcile(&calendar, &[], None, at(9, 30)).await.unwrap();
    assert_eq!(r.applied, Applied::Set(1800));
    assert_eq!(throttled.num_calls(), 3, "two throttles, then success");
}

#[tokio::test]
async fn slack_being_down_never_fails_a_scale_action() {
    let state = Shared::default();
    let rules = rules(&state, 9_000);
    let slack = HttpCapture::start().await.unwrap();
    slack.answer(500, "oops");
    let scheduler = scheduler(client(&rules), &slack);
    let calendar = [event("drop", at(10, 0), at(10, 30), 10_000.0)];
    let r = scheduler.reconcile(&calendar, &[], None, at(9, 30)).await.unwrap();
    assert_eq!(r.applied, Applied::Set(1800));
    assert_eq!(slack.requests().len(), 1, "the notice was attempted");
    // Unreachable Slack too.
    let gone = Provisioner::new(
        Target::Lambda(ProvisionedConcurrency::new(client(&rules), "entry-api", "live")),
        SlackNotifier::new(SecretSource::Plain(Secret::new("http://127.0.0.1:1/hook"))),
        params(),
    );
    assert_eq!(gone.reconcile(&calendar, &[], None, at(10, 40)).await.unwrap().applied, Applied::Removed);
}

#[tokio::test]
async fn a_control_plane_failure_is_reported_to_slack_as_a_scheduler_error() {
    let failing = mock!(Client::get_provisioned_concurrency_config).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
            aws_smithy_types::body::SdkBody::from(r#"{"__type":"AccessDeniedException","message":"no"}"#),
        )
    });
    let slack = HttpCapture::start().await.unwrap();
    let scheduler = scheduler(client(&[failing]), &slack);
    let calendar = [event("drop", at(10, 0), at(10, 30), 10.0)];
    assert!(scheduler.reconcile(&calendar, &[], None, at(9, 30)).await.is_err());
    assert!(slack_texts(&slack)[0].starts_with(":x: Scheduler error: lambda GetProvisionedConcurrencyConfig failed"));
}

#[tokio::test]
async fn dry_run_calls_no_lambda_api_and_says_what_it_would_do() {
    let slack = HttpCapture::start().await.unwrap();
    let scheduler = Provisioner::new(
        Target::DryRun { account_limit: Some(1_000) },
        SlackNotifier::new(SecretSource::Plain(Secret::new(slack.url("/hook")))),
        params(),
    );
    let calendar = [event("drop", at(10, 0), at(10, 30), 10_000.0)];
    let r = scheduler.reconcile(&calendar, &[], None, at(9, 30)).await.unwrap();
    assert_eq!(r.applied, Applied::WouldSet(900));
    assert!(slack_texts(&slack).iter().any(|t| t.contains("dry run")));
}

#[tokio::test]
async fn the_webhook_url_can_come_from_the_secrets_extension() {
    let slack = HttpCapture::start().await.unwrap();
    let extension = HttpCapture::start().await.unwrap();
    extension.answer(200, &serde_json::json!({ "SecretString": slack.url("/from-secret") }).to_string());
    let notifier = SlackNotifier::new(SecretSource::Extension {
        secret_id: "arn:aws:secretsmanager:x:1:secret:slack".into(),
        port: extension.port(),
    });
    notifier.notify(&Notice::SchedulerError { message: "one".into() }).await;
    notifier.notify(&Notice::SchedulerError { message: "two".into() }).await;
    assert_eq!(extension.requests().len(), 1, "the secret is read once, on first use");
    assert!(extension.requests()[0].path.starts_with("/secretsmanager/get?secretId=arn%3Aaws"));
    assert_eq!(slack.requests().iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/from-secret", "/from-secret"]);
}
