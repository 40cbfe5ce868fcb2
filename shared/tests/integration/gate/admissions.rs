//! The fan path end to end on the real local Redis, SQS endpoint and
//! PostgreSQL: admission outcomes, the burst invariants (exactly `capacity`
//! acceptances, one row per accepted fan with the position it was told,
//! unique positions) and reading entries back.

use crate::common::*;
use chrono::{Duration, Utc};
use futures::future::join_all;
use std::collections::{HashMap, HashSet};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_admits_exactly_capacity_and_every_acceptance_lands_once() {
    a_burst_admits_exactly_capacity(&Stack::new().await).await;
}

/// 300 fans at once, 60 of them twice, for 40 places: exactly the
/// capacity accepted, each once, with unique positions, and one row each
/// with the position it was told. On a node or a cluster.
pub async fn a_burst_admits_exactly_capacity(stack: &Stack) {
    let capacity = 40;
    let event = stack.open_event(capacity).await;
    // 300 distinct fans, and the first 60 of them press the button twice.
    let fans: Vec<String> = (0..300).map(|i| format!("fan-{i}")).chain((0..60).map(|i| format!("fan-{i}"))).collect();
    let responses = join_all(fans.iter().map(|fan| stack.enter(&event, fan))).await;

    let mut told: HashMap<String, i64> = HashMap::new();
    let mut sold_out = 0;
    for (fan, r) in fans.iter().zip(&responses) {
        let body = body_json(r);
        match r.status().as_u16() {
            200 | 202 => {
                assert_eq!(body["status"], "accepted");
                assert_eq!(body["fanId"], fan.as_str());
                let position = body["position"].as_i64().unwrap();
                if let Some(earlier) = told.insert(fan.clone(), position) {
                    assert_eq!(earlier, position, "a repeat must get the same position");
                }
            }
            409 => {
                assert_error(r, 409, "sold_out");
                sold_out += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(told.len() as i64, capacity, "exactly capacity fans are accepted");
    let positions: HashSet<i64> = told.values().copied().collect();
    assert_eq!(positions.len() as i64, capacity, "positions are unique");
    assert!(sold_out >= 300 - capacity as usize);

    stack.drain().await;
    let rows: HashMap<String, i64> = stack.rows(&event).await.into_iter().collect();
    assert_eq!(rows, told, "one row per accepted fan, with the position it was told");

    let view = stack.fan.handle(request("GET", &format!("/events/{event}"), &[], None)).await;
    assert_eq!(body_json(&view)["remaining"], 0);
}

#[tokio::test]
async fn a_repeat_entry_answers_200_with_the_same_position_and_queues_nothing_new() {
    a_repeat_entry_keeps_its_position(&Stack::new().await).await;
}

pub async fn a_repeat_entry_keeps_its_position(stack: &Stack) {
    let event = stack.open_event(10).await;
    let first = stack.enter(&event, "alice").await;
    assert_eq!(first.status(), 202);
    let again = stack.enter(&event, "alice").await;
    assert_eq!(again.status(), 200);
    assert_eq!(body_json(&first)["position"], body_json(&again)["position"]);
    assert_eq!(stack.drain().await, 1, "a repeat sends no second message");
    assert_eq!(stack.rows(&event).await, vec![("alice".to_owned(), 1)]);
}

#[tokio::test]
async fn the_event_window_and_existence_are_enforced() {
    window_and_existence_are_enforced(&Stack::new().await).await;
}

pub async fn window_and_existence_are_enforced(stack: &Stack) {
    let later = stack.event(5, Utc::now() + Duration::hours(1), Utc::now() + Duration::hours(2)).await;
    assert_error(&stack.enter(&later, "bob").await, 403, "event_not_open");
    let past = stack.event(5, Utc::now() - Duration::hours(2), Utc::now() - Duration::hours(1)).await;
    assert_error(&stack.enter(&past, "bob").await, 403, "event_closed");
    assert_error(&stack.enter("no-such-event", "bob").await, 404, "event_not_found");
    let get = stack.fan.handle(request("GET", "/events/no-such-event", &[], None)).await;
    assert_error(&get, 404, "event_not_found");
    assert_eq!(stack.drain().await, 0, "refusals queue nothing");
}

#[tokio::test]
async fn an_event_reads_back_with_remaining_places() {
    an_event_reads_back(&Stack::new().await).await;
}

pub async fn an_event_reads_back(stack: &Stack) {
    let event = stack.open_event(3).await;
    stack.enter(&event, "a").await;
    let r = stack.fan.handle(request("GET", &format!("/events/{event}"), &[], None)).await;
    assert_eq!(r.status(), 200);
    let body = body_json(&r);
    assert_eq!(body["eventId"], event.as_str());
    assert_eq!(body["title"], "Test drop");
    assert_eq!((body["capacity"].as_i64(), body["remaining"].as_i64()), (Some(3), Some(2)));
    assert!(body["opensAt"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn a_fan_reads_back_its_entry_with_its_note() {
    an_entry_reads_back_with_its_note(&Stack::new().await).await;
}

pub async fn an_entry_reads_back_with_its_note(stack: &Stack) {
    let event = stack.open_event(3).await;
    let path = format!("/events/{event}/entries");
    let r =
        stack.fan.handle(request("POST", &path, &[("x-fan-id", "carol")], Some(r#"{"note":"see you there"}"#))).await;
    assert_eq!(r.status(), 202);
    let me = stack.fan.handle(request("GET", &format!("{path}/me"), &[("x-fan-id", "carol")], None)).await;
    assert_eq!(me.status(), 200);
    let body = body_json(&me);
    assert_eq!((body["position"].as_i64(), body["note"].as_str()), (Some(1), Some("see you there")));
    let none = stack.fan.handle(request("GET", &format!("{path}/me"), &[("x-fan-id", "dave")], None)).await;
    assert_error(&none, 404, "entry_not_found");
    stack.drain().await;
    let stored = stack.db.entries(&fanrush::rules::domain::EventId::parse(&event).unwrap()).await.unwrap();
    assert_eq!(stored[0].note.as_deref(), Some("see you there"));
}

#[tokio::test]
async fn a_fan_hammering_the_entry_endpoint_is_rate_limited_and_others_are_not() {
    use fanrush::usecases::entrance::RateLimit;
    let stack = Stack::new().await;
    let event = stack.open_event(1).await;
    let limit = RateLimit { requests: 3, window: std::time::Duration::from_secs(30) };
    let limited =
        fan_api_limited(gate(&redis_url(), &stack.prefix), stack.queue(), fanrush::usecases::api::AuthMode::Dev, limit);
    let enter = |fan: &'static str| {
        limited.handle(request("POST", &format!("/events/{event}/entries"), &[("x-fan-id", fan)], None))
    };
    assert_eq!(enter("first").await.status(), 202);
    // The event is sold out: a fan who keeps trying is told so three times,
    // then refused from memory.
    let statuses: Vec<u16> =
        futures::future::join_all((0..6).map(|_| enter("hammer"))).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 3, "{statuses:?}");
    let r = enter("hammer").await;
    assert_error(&r, 429, "rate_limited");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry));
    // Another fan is unaffected; the one who got in is told so again, from memory.
    assert_error(&enter("honest").await, 409, "sold_out");
    let again = enter("first").await;
    assert_eq!((again.status().as_u16(), body_json(&again)["position"].clone()), (200, serde_json::json!(1)));
    stack.drain().await;
    assert_eq!(stack.rows(&event).await, vec![("first".to_owned(), 1)]);
}
