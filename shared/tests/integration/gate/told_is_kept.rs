//! Nothing a fan was told is ever contradicted: the races and failures that
//! used to sell a place twice or lose a told entry, each driven by the
//! fault proxy or by real Redis servers (a replica promoted, eviction), not
//! by timing luck.

use crate::common::*;
use chrono::Utc;
use fanrush::adapters::aws_sdk::sqs_client;
use fanrush::adapters::redis_gate::SeedWrite;
use fanrush::adapters::sqs_queue::EntryQueue;
use fanrush::usecases::api::AuthMode;
use fanrush::usecases::api::FanApi;
use fanrush::usecases::recovery::Patience;
use fanrush_local::services::PrivateRedis;
use fanrush_local::{Fault, FaultProxy};
use std::net::SocketAddr;
use std::time::Duration;

fn addr(url: &str) -> SocketAddr {
    let hostport = url.split("://").nth(1).unwrap().trim_end_matches('/');
    hostport.replace("localhost", "127.0.0.1").parse().unwrap()
}

fn position(r: &lambda_http::Response<lambda_http::Body>) -> Option<i64> {
    body_json(r)["position"].as_i64()
}

const NOW: Patience = Patience { restore_settle: Duration::ZERO, sweep_after: Duration::ZERO };

/// 3 (a): the first send's outcome is unknown but it landed; the retry's
/// own send is surely refused. The retry must not release the slot.
#[tokio::test]
async fn a_retry_whose_send_is_refused_keeps_a_slot_an_earlier_send_may_hold() {
    let proxy = FaultProxy::start(addr(&sqs_endpoint())).await.unwrap();
    let stack = Stack::with(&redis_url(), &format!("http://{}", proxy.addr()), Duration::from_millis(300)).await;
    let event = stack.open_event(1).await;

    proxy.set(Fault::DropResponses); // SQS stores it; the answer is lost
    assert_error(&stack.enter(&event, "fan").await, 503, "unavailable");
    proxy.set(Fault::Refuse); // the retry's send surely never reaches SQS
    assert_error(&stack.enter(&event, "fan").await, 503, "unavailable");
    proxy.set(Fault::None);

    assert_error(&stack.enter(&event, "other").await, 409, "sold_out");
    let again = stack.enter(&event, "fan").await;
    assert_eq!((again.status().as_u16(), position(&again)), (202, Some(1)), "the fan keeps the place it holds");
    stack.drain().await;
    assert_eq!(stack.rows(&event).await, vec![("fan".to_owned(), 1)]);
}

/// 3 (b): a double tap in two environments. One send succeeds (202 at 1),
/// the other is refused while the first is still on its way.
#[tokio::test]
async fn a_double_tap_whose_second_send_is_refused_does_not_free_the_first() {
    let slow = FaultProxy::start(addr(&sqs_endpoint())).await.unwrap();
    let refusing = FaultProxy::start(addr(&sqs_endpoint())).await.unwrap();
    let stack = Stack::new().await;
    let event = stack.open_event(1).await;
    let env = |proxy: &FaultProxy| {
        let endpoint = format!("http://{}", proxy.addr());
        let (gate, queue_url) = (gate(&redis_url(), &stack.prefix), stack.queue_url.clone());
        async move {
            let sqs = sqs_client(&sdk_config(&endpoint).await, Duration::from_secs(10));
            FanApi::new(gate, EntryQueue::new(sqs, queue_url, POLICY), AuthMode::Dev, 1)
        }
    };
    let (first_env, second_env) = (env(&slow).await, env(&refusing).await);
    let path = format!("/events/{event}/entries");
    let post = move || request("POST", &path, &[("x-fan-id", "fan")], None);

    slow.set(Fault::Delay(Duration::from_millis(1500)));
    refusing.set(Fault::Refuse);
    let first_post = post.clone();
    let first = tokio::spawn(async move { first_env.handle(first_post()).await });
    // The second tap arrives once the first holds the reservation.
    let mut conn = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let fans = format!("{}:ev:{{{event}}}:fans", stack.prefix);
    while !redis::cmd("HEXISTS").arg(&fans).arg("fan").query_async::<bool>(&mut conn).await.unwrap() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = second_env.handle(post()).await;
    assert_error(&second, 503, "unavailable");
    assert!(!first.is_finished(), "the first send is still on its way: the race this test is about");
    let first = first.await.unwrap();
    assert_eq!((first.status().as_u16(), position(&first)), (202, Some(1)));

    refusing.set(Fault::None);
    assert_error(&stack.enter(&event, "other").await, 409, "sold_out");
    let again = second_env.handle(post()).await;
    assert_eq!(position(&again), Some(1), "the fan is told the same place: {}", body_json(&again));
    stack.drain().await;
    assert_eq!(stack.rows(&event).await, vec![("fan".to_owned(), 1)]);
}

/// 1: a failover to a replica that missed the last acknowledged writes.
#[tokio::test]
async fn a_promoted_replica_that_missed_writes_refuses_until_restored_and_oversells_nothing() {
    let root = std::env::temp_dir().join(unique("failover"));
    let mut primary = PrivateRedis::start(root.join("primary")).await.unwrap();
    let replica = PrivateRedis::start(root.join("replica")).await.unwrap();
    // Replication runs through a proxy so the link can be cut; the fan API
    // reaches "the primary endpoint" through another, which a failover moves.
    let link = FaultProxy::start(primary.addr()).await.unwrap();
    let endpoint = FaultProxy::start(primary.addr()).await.unwrap();
    replica.replicate_from(link.addr()).await.unwrap();

    let url = format!("redis://{}", endpoint.addr());
    let stack = Stack::new().await;
    let fan = FanApi::new(gate(&url, &stack.prefix), stack.queue(), AuthMode::Dev, 1);
    let event = stack.open_event(3).await; // published on the shared Redis; this gate is another
    let gate_there = gate(&url, &stack.prefix);
    gate_there.mark_state_present().await.unwrap();
    let stored = stack.db.event(&fanrush::rules::domain::EventId::parse(&event).unwrap()).await.unwrap().unwrap();
    gate_there.publish(&stored, SeedWrite::Keep).await.unwrap();
    let enter =
        |f: &'static str| fan.handle(request("POST", &format!("/events/{event}/entries"), &[("x-fan-id", f)], None));
    // Reads from an environment that told no one anything: the one above
    // answers its own fans' reads from memory.
    let reader = FanApi::new(gate(&url, &stack.prefix), stack.queue(), AuthMode::Dev, 1);
    let me = |f: &'static str| {
        reader.handle(request("GET", &format!("/events/{event}/entries/me"), &[("x-fan-id", f)], None))
    };

    assert_eq!(position(&enter("a").await), Some(1));
    primary.command(&["WAIT", "1", "2000"]).await.unwrap();
    link.set(Fault::Blackhole); // replication stops; the primary keeps acknowledging
    link.reset_all();
    assert_eq!(position(&enter("b").await), Some(2));
    assert_eq!(position(&enter("c").await), Some(3));

    primary.kill().await;
    replica.promote().await.unwrap();
    endpoint.set_upstream(replica.addr());
    endpoint.reset_all();

    // The replica holds the gate as it was after "a": it must not admit.
    assert_error(&enter("d").await, 503, "unavailable");
    assert_error(&me("c").await, 503, "unavailable");

    stack.drain().await;
    let report = stack.housekeeping_of(&gate(&url, &stack.prefix), chrono::Utc::now(), NOW).await;
    assert_eq!(report.restored.map(|r| r.1), Some(3), "{report:?}");
    assert_eq!(position(&me("c").await), Some(3), "a fan told 202 is still in");
    assert_error(&enter("d").await, 409, "sold_out");
    stack.drain().await;
    let rows = stack.rows(&event).await;
    assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![1, 2, 3], "{rows:?}");
    let _ = std::fs::remove_dir_all(&root);
}

/// Eviction: a server that may evict keys without a TTL refuses admissions.
#[tokio::test]
async fn a_redis_that_may_evict_gate_keys_refuses_admissions_until_it_cannot() {
    let root = std::env::temp_dir().join(unique("evict"));
    let redis = PrivateRedis::start(root.clone()).await.unwrap();
    redis.command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]).await.unwrap();
    let stack = Stack::new().await;
    let event = stack.open_event(5).await;
    let there = gate(&redis.url(), &stack.prefix);
    there.mark_state_present().await.unwrap();
    let stored = stack.db.event(&fanrush::rules::domain::EventId::parse(&event).unwrap()).await.unwrap().unwrap();
    assert!(
        matches!(there.publish(&stored, SeedWrite::Keep).await, Err(fanrush::adapters::redis_gate::GateError::EvictionPossible(p)) if p == "allkeys-lru")
    );

    redis.command(&["CONFIG", "SET", "maxmemory-policy", "volatile-lru"]).await.unwrap();
    let fan = FanApi::new(gate(&redis.url(), &stack.prefix), stack.queue(), AuthMode::Dev, 1);
    there.publish(&stored, SeedWrite::Keep).await.expect("volatile-* never evicts keys without a TTL");
    let r = fan.handle(request("POST", &format!("/events/{event}/entries"), &[("x-fan-id", "f")], None)).await;
    assert_eq!(r.status(), 202, "{}", body_json(&r));

    // A healthy connection keeps what it read; the next one reads it anew.
    redis.command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]).await.unwrap();
    redis.kill_clients().await.unwrap();
    let r = fan.handle(request("POST", &format!("/events/{event}/entries"), &[("x-fan-id", "g")], None)).await;
    assert_error(&r, 503, "unavailable");
    stack.drain().await;
    let _ = std::fs::remove_dir_all(&root);
}

/// 4: a deleted event's id cannot be defined again.
#[tokio::test]
async fn a_deleted_event_id_is_retired() {
    let stack = Stack::new().await;
    let event = stack.open_event(5).await;
    assert_eq!(stack.enter(&event, "kept").await.status(), 202);
    stack.drain().await;
    let path = format!("/admin/events/{event}");
    assert_eq!(stack.admin.handle(request("DELETE", &path, &[], None)).await.status(), 204);
    let (opens, closes) = (Utc::now() - chrono::Duration::days(1), Utc::now() + chrono::Duration::days(365));
    let body = serde_json::json!({"title": "again", "opensAt": opens.to_rfc3339(), "closesAt": closes.to_rfc3339(),
                                  "capacity": 5, "expectedPeakRps": 1})
    .to_string();
    assert_error(&stack.admin.handle(request("PUT", &path, &[], Some(&body))).await, 409, "event_id_retired");
    assert_error(&stack.enter(&event, "new").await, 404, "event_not_found");
    assert_error(&stack.admin.handle(request("DELETE", &path, &[], None)).await, 404, "event_not_found");
    assert_eq!(stack.rows(&event).await, vec![("kept".to_owned(), 1)], "the told entry stays");
}

/// 5: an entry in the DLQ is taken, once however many copies of it the DLQ
/// holds, named, and replayed by a redrive.
#[tokio::test]
async fn dead_lettered_entries_stay_taken_through_a_restore_and_are_redriven() {
    let stack = Stack::new().await;
    let event = stack.open_event(2).await;
    assert_eq!(position(&stack.enter(&event, "stuck").await), Some(1));
    // SQS gives up on it: move it into the DLQ, as the redrive policy would,
    // twice (a send taken over by the fan's retry is a second message).
    let out = stack.sqs.receive_message().queue_url(&stack.queue_url).send().await.unwrap();
    let message = out.messages.unwrap().remove(0);
    let body = message.body.unwrap();
    for _ in 0..2 {
        stack.sqs.send_message().queue_url(&stack.dlq_url).message_body(&body).send().await.unwrap();
    }
    stack
        .sqs
        .delete_message()
        .queue_url(&stack.queue_url)
        .receipt_handle(message.receipt_handle.unwrap())
        .send()
        .await
        .unwrap();

    // Redis loses everything this stack holds; the restore must count the dead letter.
    let mut conn = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}:*", stack.prefix)).query_async(&mut conn).await.unwrap();
    redis::cmd("DEL").arg(&keys).query_async::<()>(&mut conn).await.unwrap();
    let report = stack.housekeeping(chrono::Utc::now(), NOW).await;
    assert_eq!(report.restored, Some((1, 1)), "{report:?}");
    assert_eq!(position(&stack.enter(&event, "next").await), Some(2), "position 1 is not handed out again");
    assert_error(&stack.enter(&event, "late").await, 409, "sold_out");
    let me =
        stack.fan.handle(request("GET", &format!("/events/{event}/entries/me"), &[("x-fan-id", "stuck")], None)).await;
    assert_eq!(position(&me), Some(1));

    // The restore's peek handed the dead letter back: nothing is out of
    // sight, so a second reader (another restore, the redrive) sees it now.
    let (queue, dead) = (stack.queue(), stack.dead_letters());
    assert_eq!(dead.depth().await.unwrap().in_flight, 0, "the peek hands back what it read");
    assert_eq!(dead.peek().await.unwrap().entries.len(), 1, "one entry, however many messages hold it");
    let moved = dead.redrive_into(&queue).await.unwrap();
    assert_eq!((moved.moved, moved.unreadable), (2, 0));
    stack.drain().await;
    assert_eq!(stack.rows(&event).await, vec![("stuck".to_owned(), 1), ("next".to_owned(), 2)]);
}

/// 2: the database refuses nothing the API accepted. Generated notes (any
/// Unicode, NUL included, up to and past the limit) go through the fan API,
/// the queue and the real writer into the real PostgreSQL.
#[test]
fn every_note_the_api_accepts_is_stored_as_told() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stack = rt.block_on(Stack::new());
    let event = rt.block_on(stack.open_event(1_000_000));
    let notes = prop_oneof![
        any::<String>(),
        "[\\x00-\\x7f]{0,40}",
        proptest::collection::vec(prop_oneof![Just('\0'), any::<char>()], 0..300).prop_map(String::from_iter),
    ];
    let config = ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() };
    let fans = std::sync::atomic::AtomicU32::new(0);
    proptest!(config, |(note in notes)| {
        let fan = format!("n{}", fans.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let body = serde_json::json!({ "note": note }).to_string();
        let path = format!("/events/{event}/entries");
        let r = rt.block_on(stack.fan.handle(request("POST", &path, &[("x-fan-id", &fan)], Some(&body))));
        let status = r.status().as_u16();
        // 400: a NUL or more than 280 characters; 413: more than 1 KiB of body.
        prop_assert!(matches!(status, 202 | 400 | 413), "{status}: {}", body_json(&r));
        prop_assert_eq!(status == 202, !note.contains('\0') && note.chars().count() <= 280 && body.len() <= 1024);
        rt.block_on(stack.drain());
        let id = fanrush::rules::domain::EventId::parse(&event).unwrap();
        let stored = rt.block_on(stack.db.entries(&id)).unwrap();
        let row = stored.iter().find(|e| e.fan_id.as_str() == fan);
        if status == 202 {
            prop_assert_eq!(row.and_then(|e| e.note.as_deref()), Some(note.as_str()), "told 202, so stored");
        } else {
            prop_assert!(row.is_none());
        }
    });
    let (_, dlq) = rt.block_on(async { (0, stack.dead_letters().depth().await.unwrap()) });
    assert_eq!(dlq.total(), 0, "nothing was dead-lettered");
}

/// An hour after an event closes the gate drops its fans (PostgreSQL keeps
/// them): the event still reads, a fan's read of its entry says archived,
/// and the event cannot be reopened with its fans forgotten.
#[tokio::test]
async fn a_closed_event_is_archived_an_hour_after_it_closes_and_cannot_reopen() {
    use fanrush::usecases::recovery::ARCHIVE_AFTER;
    let stack = Stack::new().await;
    let (opens, closes) = (Utc::now() - chrono::Duration::minutes(1), Utc::now() + chrono::Duration::minutes(10));
    let event = stack.event(5, opens, closes).await;
    for fan in ["a", "b"] {
        assert_eq!(stack.enter(&event, fan).await.status(), 202);
    }
    assert_eq!(stack.drain().await, 2);

    let after = chrono::Duration::from_std(ARCHIVE_AFTER).unwrap();
    let just_before = closes + after - chrono::Duration::seconds(1);
    assert_eq!(stack.housekeeping(just_before, NOW).await.archived, 0, "not closed for long enough");
    let past = closes + after + chrono::Duration::seconds(1);
    assert_eq!(stack.housekeeping(past, NOW).await.archived, 1);
    assert_eq!(stack.housekeeping(past, NOW).await.archived, 0, "archived once");

    let mut conn = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:ev:{{{event}}}*", stack.prefix)).query_async(&mut conn).await.unwrap();
    assert_eq!(keys, vec![format!("{}:ev:{{{event}}}", stack.prefix)], "only the definition and counters stay");

    // An environment that told "a" nothing: the gate no longer knows its fans.
    let reader = FanApi::new(gate(&redis_url(), &stack.prefix), stack.queue(), AuthMode::Dev, 1);
    let me = reader.handle(request("GET", &format!("/events/{event}/entries/me"), &[("x-fan-id", "a")], None)).await;
    assert_error(&me, 410, "entry_archived");
    let view = reader.handle(request("GET", &format!("/events/{event}"), &[], None)).await;
    assert_eq!(body_json(&view)["remaining"], 3, "the counters stay");
    let reopen = serde_json::json!({ "title": "Again", "opensAt": opens.to_rfc3339(),
        "closesAt": (Utc::now() + chrono::Duration::days(1)).to_rfc3339(), "capacity": 5, "expectedPeakRps": 1 });
    let put =
        stack.admin.handle(request("PUT", &format!("/admin/events/{event}"), &[], Some(&reopen.to_string()))).await;
    assert_error(&put, 409, "event_archived");
    assert_eq!(stack.rows(&event).await, vec![("a".to_owned(), 1), ("b".to_owned(), 2)], "the record is PostgreSQL");
}
