//! The fan path under failing dependencies, with faults injected between the
//! function and the real services by fanrush-local's fault proxy (or by Redis
//! itself): the lazy Redis connection, outages, killed and restarted
//! connections, unknown SQS outcomes, the sweep and a gate restore.

use crate::common::*;
use chrono::Utc;
use fanrush::usecases::api::AuthMode;
use fanrush::usecases::api::{AdminApi, FanApi};
use fanrush::usecases::recovery::Patience;
use fanrush_local::{Fault, FaultProxy};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub fn addr(url: &str) -> SocketAddr {
    let hostport = url.split("://").nth(1).unwrap().trim_end_matches('/');
    let hostport = hostport.rsplit('@').next().unwrap();
    hostport.replace("localhost", "127.0.0.1").parse().unwrap()
}

fn remaining(r: &lambda_http::Response<lambda_http::Body>) -> i64 {
    body_json(r)["remaining"].as_i64().unwrap()
}

async fn view(stack: &Stack, event: &str) -> i64 {
    remaining(&stack.fan.handle(request("GET", &format!("/events/{event}"), &[], None)).await)
}

/// A Redis user of a test's own, so `CLIENT KILL USER` hits only the
/// connections of the API built on [`RedisUser::url`].
struct RedisUser {
    name: String,
    admin: redis::aio::MultiplexedConnection,
}

impl RedisUser {
    async fn create() -> Self {
        let name = unique("u");
        let client = redis::Client::open(redis_url()).unwrap();
        let mut admin = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("ACL")
            .arg(&["SETUSER", &name, "on", ">fanrush-test", "~*", "&*", "+@all"])
            .query_async::<()>(&mut admin)
            .await
            .unwrap();
        Self { name, admin }
    }

    /// A URL for this user at `hostport`.
    fn url(&self, hostport: &str) -> String {
        format!("redis://{}:fanrush-test@{hostport}", self.name)
    }

    /// Kills this user's connections; how many there were.
    async fn kill(&self) -> i64 {
        let mut admin = self.admin.clone();
        redis::cmd("CLIENT").arg(&["KILL", "USER", &self.name]).query_async(&mut admin).await.unwrap()
    }

    async fn delete(mut self) {
        redis::cmd("ACL").arg(&["DELUSER", &self.name]).query_async::<()>(&mut self.admin).await.unwrap();
    }
}

#[tokio::test]
async fn init_never_touches_redis_and_an_outage_answers_503_at_once_then_recovers() {
    let proxy = FaultProxy::start(addr(&redis_url())).await.unwrap();
    proxy.set(Fault::Refuse);
    // Building the API with Redis unreachable succeeds: nothing connects yet.
    let stack = Stack::with(&format!("redis://{}", proxy.addr()), &sqs_endpoint(), Duration::from_secs(1)).await;
    let event = stack.open_event(5).await;

    let started = Instant::now();
    let r = stack.enter(&event, "ann").await;
    assert_error(&r, 503, "unavailable");
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(started.elapsed() < Duration::from_secs(2), "an outage must not hang the request");

    // Blackholed Redis: connect or response timeout, still a prompt 503.
    proxy.set(Fault::Blackhole);
    let started = Instant::now();
    assert_error(&stack.enter(&event, "ann").await, 503, "unavailable");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Back up: the same API object recovers without a restart.
    proxy.set(Fault::None);
    assert_eq!(stack.enter(&event, "ann").await.status(), 202);
    assert_eq!(stack.drain().await, 1);
}

#[tokio::test]
async fn a_connection_killed_while_idle_is_replaced_without_failing_the_request() {
    let user = RedisUser::create().await;
    let stack = Stack::with(&user.url(&addr(&redis_url()).to_string()), &sqs_endpoint(), Duration::from_secs(1)).await;
    let event = stack.open_event(10).await;
    assert_eq!(stack.enter(&event, "f1").await.status(), 202);

    for round in 0..3 {
        assert!(user.kill().await >= 1, "round {round}: the fan API's connection was killed");
        let r = stack.enter(&event, &format!("g{round}")).await;
        assert_eq!(r.status(), 202, "round {round}: {}", body_json(&r));
    }
    user.delete().await;
    assert_eq!(stack.drain().await, 4);
}

#[tokio::test]
async fn a_provisioned_environment_connects_in_init_and_still_recovers_what_goes_wrong_after() {
    let user = RedisUser::create().await;
    let proxy = FaultProxy::start(addr(&redis_url())).await.unwrap();
    let fan_url = user.url(&proxy.addr().to_string());
    let stack = Stack::with(&fan_url, &sqs_endpoint(), Duration::from_secs(1)).await;
    let event = stack.open_event(10).await;

    // Warming opens the connection before any fan arrives.
    stack.fan.warm(Duration::from_secs(2)).await.unwrap();
    assert_eq!(user.kill().await, 1, "warming opened one connection");
    // That connection was killed while the environment sat idle: the first
    // fan is still admitted, on a replacement.
    let r = stack.enter(&event, "f1").await;
    assert_eq!(r.status(), 202, "{}", body_json(&r));

    // Another environment, Redis unreachable at its init: warming fails
    // within its budget and keeps nothing; its first request, with Redis
    // back, connects as usual.
    let other = FanApi::new(gate(&fan_url, &stack.prefix), stack.queue(), AuthMode::Dev, 1);
    proxy.set(Fault::Refuse);
    let started = Instant::now();
    assert!(other.warm(Duration::from_millis(500)).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2), "warming is bounded by its budget");
    proxy.set(Fault::None);
    let r = other.handle(request("POST", &format!("/events/{event}/entries"), &[("x-fan-id", "f2")], None)).await;
    assert_eq!(r.status(), 202, "{}", body_json(&r));
    user.delete().await;
    assert_eq!(stack.drain().await, 2);
}

#[tokio::test]
async fn a_redis_restart_is_noticed_and_refused_until_the_gate_is_restored() {
    // A private redis-server with an append-only file, restarted for real.
    let dir = std::env::temp_dir().join(unique("redis"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let start = || {
        std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--dir", dir.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server")
    };
    let wait_up = || async {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis did not start");
    };
    let mut server = start();
    wait_up().await;
    let url = format!("redis://127.0.0.1:{port}");
    let stack = Stack::new().await;
    let fan = FanApi::new(gate(&url, &stack.prefix), stack.queue(), AuthMode::Dev, 1);
    let admin = AdminApi::new(
        gate(&url, &stack.prefix),
        database(&stack.schema),
        stack.queue(),
        stack.dead_letters(),
        AuthMode::Dev,
        1,
    );
    let (opens, closes) = (Utc::now() - chrono::Duration::days(1), Utc::now() + chrono::Duration::days(365));
    let body = serde_json::json!({"title": "t", "opensAt": opens.to_rfc3339(), "closesAt": closes.to_rfc3339(),
                                  "capacity": 9, "expectedPeakRps": 1})
    .to_string();
    assert_eq!(admin.handle(request("PUT", "/admin/events/live", &[], Some(&body))).await.status(), 201);
    let enter =
        |fan_id: &'static str| fan.handle(request("POST", "/events/live/entries", &[("x-fan-id", fan_id)], None));
    assert_eq!(enter("before").await.status(), 202);

    server.kill().unwrap();
    server.wait().unwrap();
    server = start();
    wait_up().await;

    // The data came back, but this is another server process: nothing tells
    // a full restart from one that came back from an older snapshot, so the
    // gate refuses until it is rebuilt from what is durable.
    assert_error(&enter("after").await, 503, "unavailable");
    assert_eq!(stack.drain().await, 1);
    let patience = Patience { restore_settle: Duration::ZERO, sweep_after: Duration::from_secs(300) };
    let report = stack.housekeeping_of(&gate(&url, &stack.prefix), chrono::Utc::now(), patience).await;
    assert_eq!(report.restored, Some((1, 1)), "{report:?}");
    let r = enter("after").await;
    assert_eq!(r.status(), 202, "{}", body_json(&r));
    assert_eq!(body_json(&r)["position"], 2, "restored from PostgreSQL: position 1 is taken");
    assert_eq!(enter("before").await.status(), 200, "the fan already in is still in");
    server.kill().unwrap();
    server.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(stack.drain().await, 1);
}

#[tokio::test]
async fn sqs_unreachable_answers_503_and_releases_the_slot() {
    let proxy = FaultProxy::start(addr(&sqs_endpoint())).await.unwrap();
    let stack = Stack::with(&redis_url(), &format!("http://{}", proxy.addr()), Duration::from_millis(500)).await;
    sqs_unreachable_releases_the_slot(&stack, &proxy).await;
}

/// `stack`'s fan API reaches SQS through `proxy`.
pub async fn sqs_unreachable_releases_the_slot(stack: &Stack, proxy: &FaultProxy) {
    let event = stack.open_event(2).await;
    proxy.set(Fault::Refuse);
    let r = stack.enter(&event, "gus").await;
    assert_error(&r, 503, "unavailable");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(view(stack, &event).await, 2, "a send that never happened gives its slot back");
    assert_eq!(stack.drain().await, 0);

    proxy.set(Fault::None);
    let r = stack.enter(&event, "gus").await;
    assert_eq!(r.status(), 202);
    assert_eq!(stack.drain().await, 1);
    assert_eq!(stack.rows(&event).await.len(), 1);
}

#[tokio::test]
async fn an_unknown_sqs_outcome_keeps_the_position_for_the_retry_and_lands_one_row() {
    let proxy = FaultProxy::start(addr(&sqs_endpoint())).await.unwrap();
    let stack = Stack::with(&redis_url(), &format!("http://{}", proxy.addr()), Duration::from_millis(300)).await;
    an_unknown_sqs_outcome_keeps_the_position(&stack, &proxy).await;
}

/// `stack`'s fan API reaches SQS through `proxy`, giving up on an attempt
/// well within the proxy's dropped answer.
pub async fn an_unknown_sqs_outcome_keeps_the_position(stack: &Stack, proxy: &FaultProxy) {
    let event = stack.open_event(5).await;
    assert_eq!(stack.enter(&event, "first").await.status(), 202);

    // SQS stores the message but its answer never comes back.
    proxy.set(Fault::DropResponses);
    assert_error(&stack.enter(&event, "hana").await, 503, "unavailable");
    assert_eq!(view(stack, &event).await, 3, "the slot stays reserved for the retry");

    proxy.set(Fault::None);
    let retry = stack.enter(&event, "hana").await;
    assert_eq!(retry.status(), 202);
    assert_eq!(body_json(&retry)["position"], 2, "the retry gets the same position");
    stack.drain().await;
    assert_eq!(stack.rows(&event).await, vec![("first".to_owned(), 1), ("hana".to_owned(), 2)]);
}

#[tokio::test]
async fn the_sweep_confirms_landed_entries_and_releases_ghost_slots() {
    let proxy = FaultProxy::start(addr(&sqs_endpoint())).await.unwrap();
    let stack = Stack::with(&redis_url(), &format!("http://{}", proxy.addr()), Duration::from_millis(300)).await;
    the_sweep_confirms_and_releases(&stack, &proxy).await;
}

/// As [`an_unknown_sqs_outcome_keeps_the_position`].
pub async fn the_sweep_confirms_and_releases(stack: &Stack, proxy: &FaultProxy) {
    let event = stack.open_event(5).await;

    proxy.set(Fault::DropResponses); // landed, answer lost
    assert_error(&stack.enter(&event, "landed").await, 503, "unavailable");
    proxy.set(Fault::Blackhole); // never reached SQS, outcome unknown to the function
    assert_error(&stack.enter(&event, "ghost").await, 503, "unavailable");
    proxy.set(Fault::None);
    assert_eq!(view(stack, &event).await, 3);

    stack.drain().await;
    let patience = Patience { restore_settle: Duration::ZERO, sweep_after: Duration::ZERO };
    let report = stack.housekeeping(chrono::Utc::now(), patience).await;
    assert_eq!((report.sweep.confirmed, report.sweep.released), (1, 1), "{report:?}");
    assert_eq!(view(stack, &event).await, 4, "the ghost's slot is free again");
    let me = |fan| stack.fan.handle(request("GET", &format!("/events/{event}/entries/me"), &[("x-fan-id", fan)], None));
    assert_eq!(me("landed").await.status(), 200);
    assert_error(&me("ghost").await, 404, "entry_not_found");
    assert_eq!(stack.rows(&event).await, vec![("landed".to_owned(), 1)]);
}

/// Deletes every key the gate holds under `pattern`, as a lost shard or a
/// flush would.
async fn lose(pattern: &str) {
    let mut conn = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut conn).await.unwrap();
    assert!(!keys.is_empty(), "nothing under {pattern}");
    redis::cmd("DEL").arg(&keys).query_async::<()>(&mut conn).await.unwrap();
}

#[tokio::test]
async fn an_event_that_lost_its_state_is_fenced_and_restored_alone_while_the_others_keep_admitting() {
    let stack = Stack::new().await;
    let (lost, kept) = (stack.open_event(4).await, stack.open_event(4).await);
    for fan in ["p", "q"] {
        assert_eq!(stack.enter(&lost, fan).await.status(), 202);
        assert_eq!(stack.enter(&kept, fan).await.status(), 202);
    }
    stack.drain().await;

    // One event's keys are gone (its slot's shard lost them); the gate
    // knows the event, so it refuses it rather than calling it unknown.
    lose(&format!("{}:ev:{{{lost}}}*", stack.prefix)).await;
    assert_error(&stack.enter(&lost, "r").await, 503, "unavailable");
    assert_error(&stack.fan.handle(request("GET", &format!("/events/{lost}"), &[], None)).await, 503, "unavailable");
    assert_eq!(stack.enter(&kept, "r").await.status(), 202, "the other event admits throughout");
    assert_error(&stack.fan.handle(request("GET", "/events/never-defined", &[], None)).await, 404, "event_not_found");

    let patience = Patience { restore_settle: Duration::from_secs(15), sweep_after: Duration::from_secs(300) };
    let noticed = Utc::now();
    let early = stack.housekeeping(noticed, patience).await;
    assert_eq!((early.restored, early.deferred), (None, true), "{early:?}");
    assert_eq!(stack.enter(&kept, "s").await.status(), 202, "the other event admits while the lost one settles");
    stack.drain().await;

    let report = stack.housekeeping(noticed + chrono::Duration::seconds(16), patience).await;
    assert_eq!(report.restored, Some((1, 2)), "only the lost event is rebuilt: {report:?}");
    assert_eq!(body_json(&stack.enter(&lost, "q").await)["position"], 2, "its fans keep their places");
    assert_eq!(body_json(&stack.enter(&lost, "r").await)["position"], 3);
    assert_eq!(view(&stack, &kept).await, 0, "the other event's counters were not touched");
    stack.drain().await;
    let positions = |rows: Vec<(String, i64)>| rows.iter().map(|r| r.1).collect::<Vec<_>>();
    assert_eq!(positions(stack.rows(&lost).await), vec![1, 2, 3]);
    assert_eq!(positions(stack.rows(&kept).await), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn a_lost_directory_of_events_is_rebuilt_and_no_event_pauses_for_it() {
    let stack = Stack::new().await;
    let event = stack.open_event(3).await;
    assert_eq!(stack.enter(&event, "p").await.status(), 202);
    lose(&format!("{}:events", stack.prefix)).await;

    // The event's own state holds: it admits. An id without keys cannot be
    // told unknown until the directory is back.
    assert_eq!(stack.enter(&event, "q").await.status(), 202);
    let unknown = || stack.fan.handle(request("GET", "/events/never-defined", &[], None));
    assert_error(&unknown().await, 503, "unavailable");
    stack.drain().await;
    let report =
        stack.housekeeping(Utc::now(), Patience { restore_settle: Duration::ZERO, sweep_after: Duration::ZERO }).await;
    assert_eq!(report.restored, None, "no event was lost: {report:?}");
    assert_error(&unknown().await, 404, "event_not_found");
    assert_eq!(body_json(&stack.enter(&event, "r").await)["position"], 3);
}

#[tokio::test]
async fn a_gate_that_lost_its_state_refuses_then_is_rebuilt_from_postgres() {
    let stack = Stack::new().await;
    let event = stack.open_event(4).await;
    for fan in ["p", "q", "r"] {
        assert_eq!(stack.enter(&event, fan).await.status(), 202);
    }
    stack.drain().await;

    // Lose everything this stack holds in Redis, as a flush would.
    let mut conn = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}:*", stack.prefix)).query_async(&mut conn).await.unwrap();
    redis::cmd("DEL").arg(&keys).query_async::<()>(&mut conn).await.unwrap();

    assert_error(&stack.enter(&event, "s").await, 503, "unavailable");
    assert_error(&stack.fan.handle(request("GET", &format!("/events/{event}"), &[], None)).await, 503, "unavailable");

    // A request admitted just before the loss may still be sending: the
    // restore waits `restore_settle` from when the loss was first noticed.
    let patience = Patience { restore_settle: Duration::from_secs(15), sweep_after: Duration::from_secs(300) };
    let noticed = chrono::Utc::now();
    let early = stack.housekeeping(noticed, patience).await;
    assert_eq!((early.restored, early.deferred), (None, true), "{early:?}");
    let later = noticed + chrono::Duration::seconds(10);
    assert!(stack.housekeeping(later, patience).await.deferred);
    assert_error(&stack.enter(&event, "s").await, 503, "unavailable");

    let settled = noticed + chrono::Duration::seconds(16);
    let report = stack.housekeeping(settled, patience).await;
    assert_eq!(report.restored, Some((1, 3)));
    assert_eq!(view(&stack, &event).await, 1);
    assert_eq!(body_json(&stack.enter(&event, "q").await)["position"], 2, "known fans keep their place");
    let s = stack.enter(&event, "s").await;
    assert_eq!((s.status().as_u16(), body_json(&s)["position"].as_i64()), (202, Some(4)));
    assert_error(&stack.enter(&event, "t").await, 409, "sold_out");
    stack.drain().await;
    let positions: Vec<i64> = stack.rows(&event).await.iter().map(|r| r.1).collect();
    assert_eq!(positions, vec![1, 2, 3, 4]);
}
