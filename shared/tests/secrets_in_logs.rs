//! Secrets never reach a log line: the Slack webhook URL, the Redis password
//! and the database password are configured (in URLs, and read through the
//! secrets extension as in AWS), every path that logs an error about them is
//! driven, and the captured logs are searched for them. (Its own test
//! binary: other tests running beside it would log into what it captures.)

mod common;

use common::*;
use fanrush::adapters::postgres_store::Database;
use fanrush::adapters::secrets::{Secret, SecretSource};
use fanrush::adapters::slack::{Notice, SlackNotifier};
use fanrush::config::{DatabaseConfig, RedisConfig};
use fanrush::usecases::api::AuthMode;
use fanrush::usecases::api::{AdminApi, FanApi};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WEBHOOK_TOKEN: &str = "XSECRETWEBHOOKTOKEN";
const REDIS_PASSWORD: &str = "XSECRETREDISPASSWORD";
const DB_PASSWORD: &str = "XSECRETDBPASSWORD";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_appears_in_any_log_line() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Slack unreachable, with the webhook URL given directly and through the secrets extension.
    let url = format!("http://127.0.0.1:1/services/T000/B000/{WEBHOOK_TOKEN}");
    SlackNotifier::new(SecretSource::Plain(Secret::new(url.clone())))
        .notify(&Notice::SchedulerError { message: "x".into() })
        .await;
    let extension = fanrush_local::HttpCapture::start().await.unwrap();
    extension.answer(200, &serde_json::json!({ "SecretString": url }).to_string());
    SlackNotifier::new(SecretSource::Extension { secret_id: "slack".into(), port: extension.port() })
        .notify(&Notice::SchedulerError { message: "y".into() })
        .await;

    // Redis and PostgreSQL down, with passwords in their URLs.
    let stack = Stack::new().await;
    let redis = format!("redis://fanrush:{REDIS_PASSWORD}@127.0.0.1:1");
    let fan = FanApi::new(gate(&redis, &stack.prefix), stack.queue(), AuthMode::Dev, 1);
    assert_eq!(fan.handle(request("POST", "/events/e/entries", &[("x-fan-id", "f")], None)).await.status(), 503);
    let db = Database::new(
        &format!("postgres://fanrush:{DB_PASSWORD}@127.0.0.1:1/fanrush"),
        None,
        Duration::from_millis(300),
    )
    .unwrap();
    let admin = AdminApi::new(gate(&redis, &stack.prefix), db, stack.queue(), stack.dead_letters(), AuthMode::Dev, 1);
    assert_eq!(admin.handle(request("GET", "/admin/events", &[], None)).await.status(), 503);
    let body = r#"{"title":"t","opensAt":"2020-01-01T00:00:00Z","closesAt":"2029-12-31T00:00:00Z","capacity":3,"expectedPeakRps":1}"#;
    assert_eq!(admin.handle(request("PUT", "/admin/events/e", &[], Some(body))).await.status(), 503);

    // The same secrets read through the secrets extension (as in AWS): the
    // services down, then Redis up but refusing the token.
    let redis_secret = fanrush_local::HttpCapture::start().await.unwrap();
    redis_secret.answer(200, &serde_json::json!({ "SecretString": REDIS_PASSWORD }).to_string());
    let db_secret = fanrush_local::HttpCapture::start().await.unwrap();
    db_secret.answer(200, &serde_json::json!({ "SecretString": DB_PASSWORD }).to_string());
    let redis_config = |url: &str| RedisConfig {
        url: url.to_owned(),
        key_prefix: stack.prefix.clone(),
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
        auth: SecretSource::Extension { secret_id: "redis".into(), port: redis_secret.port() },
        root_certificates: None,
        cluster: false,
    };
    for url in ["redis://127.0.0.1:1", &redis_url()] {
        let fan = FanApi::new(redis_config(url).gate().unwrap(), stack.queue(), AuthMode::Dev, 1);
        assert_eq!(fan.handle(request("POST", "/events/e/entries", &[("x-fan-id", "f")], None)).await.status(), 503);
    }
    let db = DatabaseConfig {
        url: "postgres://fanrush@127.0.0.1:1/fanrush".into(),
        schema: None,
        connect_timeout: Duration::from_millis(300),
        password: SecretSource::Extension { secret_id: "db".into(), port: db_secret.port() },
        root_certificates: None,
        migrations: Default::default(),
    }
    .database()
    .unwrap();
    let gate = redis_config("redis://127.0.0.1:1").gate().unwrap();
    let admin = AdminApi::new(gate, db, stack.queue(), stack.dead_letters(), AuthMode::Dev, 1);
    assert_eq!(admin.handle(request("GET", "/admin/events", &[], None)).await.status(), 503);
    assert!(!redis_secret.requests().is_empty() && !db_secret.requests().is_empty(), "the secrets were read");

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.lines().count() >= 4, "the failures were logged: {text}");
    for secret in [WEBHOOK_TOKEN, REDIS_PASSWORD, DB_PASSWORD] {
        assert!(!text.contains(secret), "{secret} leaked into the logs:\n{text}");
    }
}
