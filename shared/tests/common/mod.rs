//! Shared setup for the integration tests: every test gets its own Redis key
//! prefix, PostgreSQL schema and SQS queue (+ DLQ) on the real local
//! services, so tests run in parallel without seeing each other.
//!
//! Services come from `REDIS_URL`, `DATABASE_URL` and `AWS_ENDPOINT_URL`
//! (defaults: the local stack of `make test`).

#![allow(dead_code)]

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::SqsEvent;
use chrono::{DateTime, Duration as Minutes, Utc};
use fanrush::adapters::aws_sdk::sqs_client;
use fanrush::adapters::postgres_store::Database;
use fanrush::adapters::redis_gate::EntryGate;
use fanrush::adapters::secrets::{Secret, SecretSource};
use fanrush::adapters::sqs_queue::{EntryQueue, SendPolicy};
use fanrush::usecases::api::AuthMode;
use fanrush::usecases::api::{AdminApi, FanApi, TicketKeyring};
use fanrush::usecases::entrance::RateLimit;
use fanrush::usecases::writer::EntryWriter;
use fanrush_local::local_aws::provision;
use fanrush_local::GatewayEvent;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn sqs_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:9324".into())
}

/// A name no other test (or earlier run) uses.
pub fn unique(kind: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{kind}_{}_{:x}_{}", std::process::id(), nanos % 0xffff_ffff, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// AWS SDK configuration for the local SQS endpoint at `endpoint`.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    fanrush_local::local_aws::sdk_config(endpoint).await
}

pub fn gate(url: &str, prefix: &str) -> EntryGate {
    EntryGate::new(url, prefix, Duration::from_millis(200), Duration::from_millis(250)).unwrap()
}

/// A gate on the cluster whose configuration endpoint is `url`.
pub fn cluster_gate(url: &str, prefix: &str) -> EntryGate {
    let redis =
        fanrush::adapters::redis_gate::LazyRedis::new(url, Duration::from_millis(500), Duration::from_millis(500))
            .unwrap()
            .in_cluster_mode();
    EntryGate::on(redis, prefix)
}

pub fn database(schema: &str) -> Database {
    Database::new(&database_url(), Some(schema.to_owned()), Duration::from_secs(3)).unwrap()
}

/// An entry without a note, accepted at a fixed time.
pub fn entry(event: &str, fan: &str, position: i64) -> fanrush::rules::domain::Entry {
    use chrono::TimeZone;
    fanrush::rules::domain::Entry {
        event_id: fanrush::rules::domain::EventId::parse(event).unwrap(),
        fan_id: fanrush::rules::domain::FanId::parse(fan).unwrap(),
        position,
        note: None,
        accepted_at: Utc.timestamp_millis_opt(1_800_000_000_000).unwrap(),
    }
}

pub const POLICY: SendPolicy = SendPolicy { attempts: 2, backoff: Duration::from_millis(20) };

/// The line's ticket key every test stack signs with.
pub const TICKET_KEY: &str = "test-line-ticket-key";

/// How often a test stack's fan API syncs each line with the gate.
pub const LINE_SYNC: Duration = Duration::from_millis(250);

/// A fan API on `gate` and `queue` that signs tickets with [`TICKET_KEY`].
pub fn fan_api(gate: EntryGate, queue: EntryQueue, auth: AuthMode) -> FanApi {
    fan_api_limited(gate, queue, auth, RateLimit::OFF)
}

/// Like [`fan_api`], holding each fan at an event without a line to `limit`.
/// Its event views are read from the gate every time: tests watch the gate
/// change under them (the copies have their own test).
pub fn fan_api_limited(gate: EntryGate, queue: EntryQueue, auth: AuthMode, limit: RateLimit) -> FanApi {
    let keys = TicketKeyring::new(SecretSource::Plain(Secret::new(TICKET_KEY)), SecretSource::None);
    FanApi::new(gate, queue, auth, 1).with_line(keys, LINE_SYNC, limit).with_event_copies(Duration::ZERO)
}

/// One isolated slice of the local stack.
pub struct Stack {
    pub prefix: String,
    pub schema: String,
    pub queue_url: String,
    pub dlq_url: String,
    pub sqs: aws_sdk_sqs::Client,
    pub fan: FanApi,
    pub admin: AdminApi,
    pub writer: EntryWriter,
    pub db: Database,
    pub gate: EntryGate,
}

impl Stack {
    /// A stack whose functions talk to the services directly.
    pub async fn new() -> Self {
        Self::with(&redis_url(), &sqs_endpoint(), Duration::from_millis(1000)).await
    }

    /// A stack whose fan API decides by `clock`.
    pub async fn with_clock(clock: std::sync::Arc<dyn fanrush::usecases::clock::Clock>) -> Self {
        let mut stack = Self::new().await;
        stack.fan = fan_api(gate(&redis_url(), &stack.prefix), stack.queue(), AuthMode::Dev).with_clock(clock);
        stack
    }

    /// A stack whose fan API reaches Redis at `fan_redis` and SQS at
    /// `fan_sqs` (a fault proxy, say); everything else goes direct.
    pub async fn with(fan_redis: &str, fan_sqs: &str, sqs_attempt_timeout: Duration) -> Self {
        let prefix = unique("t");
        let schema = unique("t");
        let direct = sdk_config(&sqs_endpoint()).await;
        let sqs = sqs_client(&direct, Duration::from_secs(5));
        let (queue_url, dlq_url) = provision(&sqs, &prefix, 3, 2).await.expect("create test queues");
        let fan_sqs = sqs_client(&sdk_config(fan_sqs).await, sqs_attempt_timeout);
        let fan = fan_api(gate(fan_redis, &prefix), EntryQueue::new(fan_sqs, &queue_url, POLICY), AuthMode::Dev);
        let admin_queue = EntryQueue::new(sqs.clone(), &queue_url, POLICY);
        let admin = AdminApi::new(
            gate(&redis_url(), &prefix),
            database(&schema),
            admin_queue.clone(),
            admin_queue.dead_letters(&dlq_url),
            AuthMode::Dev,
            1,
        );
        let db = database(&schema);
        db.migrate().await.expect("migrate the test schema");
        Self {
            writer: EntryWriter::new(database(&schema)),
            gate: gate(&redis_url(), &prefix),
            prefix,
            schema,
            queue_url,
            dlq_url,
            sqs,
            fan,
            admin,
            db,
        }
    }

    /// A stack whose every function reaches the Redis cluster whose
    /// configuration endpoint is `url`.
    pub async fn on_cluster(url: &str) -> Self {
        Self::on_cluster_via(url, &sqs_endpoint(), Duration::from_millis(1000)).await
    }

    /// [`Stack::on_cluster`], its fan API reaching SQS at `fan_sqs` (a
    /// fault proxy, say) as [`Stack::with`] does.
    pub async fn on_cluster_via(url: &str, fan_sqs: &str, sqs_attempt_timeout: Duration) -> Self {
        let mut stack = Self::with(url, fan_sqs, sqs_attempt_timeout).await;
        let fan_queue =
            EntryQueue::new(sqs_client(&sdk_config(fan_sqs).await, sqs_attempt_timeout), &stack.queue_url, POLICY);
        stack.fan = fan_api(cluster_gate(url, &stack.prefix), fan_queue, AuthMode::Dev);
        stack.admin = AdminApi::new(
            cluster_gate(url, &stack.prefix),
            database(&stack.schema),
            stack.queue(),
            stack.queue().dead_letters(&stack.dlq_url),
            AuthMode::Dev,
            1,
        );
        stack.gate = cluster_gate(url, &stack.prefix);
        stack
    }

    /// [`Stack::on_cluster`], its fan API deciding by `clock`.
    pub async fn on_cluster_with_clock(url: &str, clock: std::sync::Arc<dyn fanrush::usecases::clock::Clock>) -> Self {
        let mut stack = Self::on_cluster(url).await;
        stack.fan = fan_api(cluster_gate(url, &stack.prefix), stack.queue(), AuthMode::Dev).with_clock(clock);
        stack
    }

    pub fn queue(&self) -> EntryQueue {
        EntryQueue::new(self.sqs.clone(), &self.queue_url, POLICY)
    }

    pub fn dead_letters(&self) -> fanrush::adapters::sqs_queue::DeadLetterQueue {
        self.queue().dead_letters(&self.dlq_url)
    }

    /// One scheduler housekeeping pass over this stack's gate at `now`.
    pub async fn housekeeping(
        &self,
        now: DateTime<Utc>,
        patience: fanrush::usecases::recovery::Patience,
    ) -> fanrush::usecases::recovery::Housekeeping {
        self.housekeeping_of(&self.gate, now, patience).await
    }

    /// Like [`Stack::housekeeping`], for a gate of the caller's.
    pub async fn housekeeping_of(
        &self,
        gate: &EntryGate,
        now: DateTime<Utc>,
        patience: fanrush::usecases::recovery::Patience,
    ) -> fanrush::usecases::recovery::Housekeeping {
        let (queue, dead_letters) = (self.queue(), self.dead_letters());
        let queues = fanrush::usecases::recovery::Queues { entries: &queue, dead_letters: &dead_letters };
        fanrush::usecases::recovery::housekeeping(gate, &self.db, &queues, now, patience).await.expect("housekeeping")
    }

    /// Defines an event through the admin API; returns its id.
    pub async fn event(&self, capacity: i64, opens: DateTime<Utc>, closes: DateTime<Utc>) -> String {
        let id = unique("ev").replace('_', "-");
        let body = json!({ "title": "Test drop", "opensAt": opens.to_rfc3339(), "closesAt": closes.to_rfc3339(),
                           "capacity": capacity, "expectedPeakRps": 1000 });
        let r = self.admin.handle(request("PUT", &format!("/admin/events/{id}"), &[], Some(&body.to_string()))).await;
        assert_eq!(r.status(), 201, "create event: {}", body_json(&r));
        id
    }

    /// Defines an event with a line of `rate` admissions a second and a
    /// pre-queue of `prequeue_minutes`; returns its id.
    pub async fn lined_event(
        &self,
        capacity: i64,
        rate: i64,
        prequeue_minutes: i64,
        opens: DateTime<Utc>,
        closes: DateTime<Utc>,
    ) -> String {
        let id = unique("ln").replace('_', "-");
        let body = json!({ "title": "Lined drop", "opensAt": opens.to_rfc3339(), "closesAt": closes.to_rfc3339(),
                           "capacity": capacity, "expectedPeakRps": 1000, "admissionsPerSecond": rate,
                           "prequeueMinutes": prequeue_minutes });
        let r = self.admin.handle(request("PUT", &format!("/admin/events/{id}"), &[], Some(&body.to_string()))).await;
        assert_eq!(r.status(), 201, "create event: {}", body_json(&r));
        id
    }

    /// A fan's POST with its line ticket.
    pub async fn enter_with(&self, event: &str, fan: &str, ticket: Option<&str>) -> Response<Body> {
        let mut headers = vec![("x-fan-id", fan)];
        if let Some(t) = ticket {
            headers.push(("x-fanrush-ticket", t));
        }
        self.fan.handle(request("POST", &format!("/events/{event}/entries"), &headers, None)).await
    }

    /// An event open now, for an hour.
    pub async fn open_event(&self, capacity: i64) -> String {
        self.event(capacity, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await
    }

    /// A fan's POST to enter `event`.
    pub async fn enter(&self, event: &str, fan: &str) -> Response<Body> {
        self.fan.handle(request("POST", &format!("/events/{event}/entries"), &[("x-fan-id", fan)], None)).await
    }

    /// Drains the queue through the writer, as the event-source mapping
    /// would, until it stays empty. Returns how many messages were written.
    pub async fn drain(&self) -> usize {
        let mut written = 0;
        let mut empty_polls = 0;
        while empty_polls < 2 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                empty_polls += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            empty_polls = 0;
            let response = self.writer.handle(sqs_event(&messages)).await.expect("writer");
            let failed: Vec<String> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
            for m in &messages {
                if !failed.contains(m.message_id.as_ref().unwrap()) {
                    written += 1;
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(m.receipt_handle.clone().unwrap())
                        .send()
                        .await
                        .expect("delete");
                }
            }
        }
        written
    }

    /// `(fan_id, position)` of every stored entry of `event`, by position.
    pub async fn rows(&self, event: &str) -> Vec<(String, i64)> {
        let id = fanrush::rules::domain::EventId::parse(event).unwrap();
        self.db.entries(&id).await.unwrap().into_iter().map(|e| (e.fan_id.to_string(), e.position)).collect()
    }
}

/// An SQS event as the event-source mapping builds it from `messages`.
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({ "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
                    "eventSource": "aws:sqs", "awsRegion": "us-east-1", "attributes": {}, "messageAttributes": {} })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// An API Gateway HTTP API (payload 2.0) request, parsed by lambda_http the
/// way the runtime parses a real one.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Request {
    request_with(method, path, headers, body, None)
}

/// Like [`request`], with an authorizer block in the request context.
pub fn request_with(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    authorizer: Option<Value>,
) -> Request {
    gateway_request(method, path, headers, body, authorizer, 0)
}

/// Like [`request`], received by API Gateway at `received_ms` (Unix ms, the
/// request context's `timeEpoch`).
pub fn request_received_at(method: &str, path: &str, headers: &[(&str, &str)], received_ms: i64) -> Request {
    gateway_request(method, path, headers, None, None, received_ms)
}

fn gateway_request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    authorizer: Option<Value>,
    received_ms: i64,
) -> Request {
    let received = chrono::DateTime::from_timestamp_millis(received_ms).expect("a time in range");
    let mut event = GatewayEvent::new(method, path).from_api("test").request_id(&unique("req")).received_at(received);
    for (name, value) in headers {
        event = event.header(name, value);
    }
    if let Some(body) = body {
        event = event.body(body.as_bytes());
    }
    if let Some(a) = authorizer {
        event = event.authorizer(serde_json::from_value(a).expect("an authorizer block"));
    }
    event.into_request().expect("a valid API Gateway event")
}

pub fn body_json(r: &Response<Body>) -> Value {
    match r.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        Body::Binary(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Asserts a JSON error response with `status` and `code`.
pub fn assert_error(r: &Response<Body>, status: u16, code: &str) {
    let body = body_json(r);
    assert_eq!((r.status().as_u16(), body["error"].as_str()), (status, Some(code)), "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "an error needs a message: {body}");
    assert_eq!(r.headers()["content-type"], "application/json");
}
