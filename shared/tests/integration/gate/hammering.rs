//! A client that hammers costs the event's core little: an event's view is
//! the environment's copy, at most a second old; a fan's own entry is
//! answered from memory once told; reads of an entry a fan does not have
//! reach the gate a few times a window, then are refused from memory. The
//! commands all of it costs are `make bench`'s `hostile` figure.

use crate::common::*;
use chrono::{Duration as Minutes, Utc};
use fanrush::usecases::api::{AuthMode, FanApi, EVENT_COPY_MAX_AGE};
use fanrush::usecases::clock::ManualClock;
use fanrush::usecases::entrance::{ENTRY_READS, ENTRY_READS_WINDOW};
use std::sync::Arc;

type Answer = lambda_http::Response<lambda_http::Body>;

async fn get_event(fan: &FanApi, event: &str) -> Answer {
    fan.handle(request("GET", &format!("/events/{event}"), &[], None)).await
}

async fn my_entry(fan: &FanApi, event: &str, who: &str) -> Answer {
    fan.handle(request("GET", &format!("/events/{event}/entries/me"), &[("x-fan-id", who)], None)).await
}

#[tokio::test]
async fn an_events_view_is_the_environments_copy_at_most_a_second_old() {
    let clock = Arc::new(ManualClock::at(Utc::now()));
    let stack = Stack::new().await;
    let fan = fan_api(gate(&redis_url(), &stack.prefix), stack.queue(), AuthMode::Dev)
        .with_event_copies(EVENT_COPY_MAX_AGE)
        .with_clock(clock.clone());
    let event = stack.open_event(3).await;
    let remaining = |r: &Answer| body_json(r)["remaining"].as_i64();

    assert_eq!(remaining(&get_event(&fan, &event).await), Some(3));
    assert_eq!(stack.enter(&event, "a").await.status(), 202, "another environment admits a fan");
    let age = Minutes::from_std(EVENT_COPY_MAX_AGE).unwrap();
    clock.advance(age - Minutes::milliseconds(1));
    assert_eq!(remaining(&get_event(&fan, &event).await), Some(3), "the copy, just under its age");
    clock.advance(Minutes::milliseconds(1));
    assert_eq!(remaining(&get_event(&fan, &event).await), Some(2), "read again once as old as allowed");

    // "No such event" is a copy too: a definition shows once it is as old.
    let later = unique("later").replace('_', "-");
    assert_error(&get_event(&fan, &later).await, 404, "event_not_found");
    let (opens, closes) = (Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1));
    let body = serde_json::json!({ "title": "Later", "opensAt": opens.to_rfc3339(), "closesAt": closes.to_rfc3339(),
                                   "capacity": 5, "expectedPeakRps": 1 })
    .to_string();
    let put = stack.admin.handle(request("PUT", &format!("/admin/events/{later}"), &[], Some(&body))).await;
    assert_eq!(put.status(), 201, "{}", body_json(&put));
    assert_error(&get_event(&fan, &later).await, 404, "event_not_found");
    clock.advance(age);
    assert_eq!(remaining(&get_event(&fan, &later).await), Some(5));
    stack.drain().await;
}

#[tokio::test]
async fn a_fans_own_entry_is_answered_from_memory_and_its_gate_reads_are_bounded() {
    let clock = Arc::new(ManualClock::at(Utc::now()));
    let stack = Stack::with_clock(clock.clone()).await;
    let event = stack.open_event(5).await;

    // A fan with no entry: a few reads reach the gate, then 429 from memory
    // until the window ends.
    for _ in 0..ENTRY_READS {
        assert_error(&my_entry(&stack.fan, &event, "nobody").await, 404, "entry_not_found");
    }
    let refused = my_entry(&stack.fan, &event, "nobody").await;
    assert_error(&refused, 429, "rate_limited");
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(wait, ENTRY_READS_WINDOW.as_secs());
    clock.advance(Minutes::from_std(ENTRY_READS_WINDOW).unwrap());
    assert_error(&my_entry(&stack.fan, &event, "nobody").await, 404, "entry_not_found");

    // A fan told 202 reads its entry from this environment's memory, as
    // often as it likes, even with the gate's state gone.
    let told = stack.enter(&event, "told").await;
    assert_eq!(told.status(), 202);
    let mut conn = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}:*", stack.prefix)).query_async(&mut conn).await.unwrap();
    redis::cmd("DEL").arg(&keys).query_async::<()>(&mut conn).await.unwrap();
    for _ in 0..3 * ENTRY_READS {
        let me = my_entry(&stack.fan, &event, "told").await;
        assert_eq!(me.status(), 200, "{}", body_json(&me));
        assert_eq!(body_json(&me)["position"], body_json(&told)["position"]);
    }
    // Another fan's read reaches the gate, which refuses its lost state.
    assert_error(&my_entry(&stack.fan, &event, "stranger").await, 503, "unavailable");
    assert_eq!(stack.drain().await, 1);
}
