//! The admin API's calendar: create, update without resetting counters,
//! read back with counts, delete.

use crate::common::*;
use serde_json::json;

/// Open from a day ago for a year.
fn definition(capacity: i64) -> String {
    json!({ "title": "Fan meeting", "opensAt": ago(1), "closesAt": ago(-365),
            "capacity": capacity, "expectedPeakRps": 2500.5, "leadMinutes": 45 })
    .to_string()
}

/// `days` before now, RFC 3339.
fn ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339()
}

#[tokio::test]
async fn events_are_created_updated_listed_and_deleted() {
    let stack = Stack::new().await;
    let put = |capacity| stack.admin.handle(request("PUT", "/admin/events/meet", &[], Some(&definition(capacity))));
    let created = put(3).await;
    assert_eq!(created.status(), 201);
    assert_eq!(body_json(&created)["leadMinutes"], 45);
    assert_eq!(put(3).await.status(), 200, "a second PUT updates");

    for fan in ["a", "b"] {
        assert_eq!(stack.enter("meet", fan).await.status(), 202);
    }
    // Raising capacity moves `remaining` by the difference, keeping entries.
    assert_eq!(put(5).await.status(), 200);
    let view = stack.fan.handle(request("GET", "/events/meet", &[], None)).await;
    assert_eq!(body_json(&view)["remaining"], 3);
    assert_eq!(stack.enter("meet", "a").await.status(), 200, "existing entries survive an update");
    let c = stack.enter("meet", "c").await;
    assert_eq!(body_json(&c)["position"], 3, "positions continue, never restart");

    // Capacity may not drop below what is taken.
    let r = put(2).await;
    assert_error(&r, 409, "capacity_below_accepted");
    assert_eq!(body_json(&r)["field"], "capacity");

    stack.drain().await;
    let one = stack.admin.handle(request("GET", "/admin/events/meet", &[], None)).await;
    let body = body_json(&one);
    assert_eq!((body["accepted"].as_i64(), body["written"].as_i64()), (Some(3), Some(3)));
    assert_eq!(body["expectedPeakRps"], 2500.5);
    // A single node is one shard holding every slot: the event keeps its id
    // as its tag, on the node it was defined on.
    assert_eq!(body["gate"]["hashTag"], "meet");
    assert_eq!(body["gate"]["slot"], fanrush::rules::scaling::placement::slot_of("meet"));
    assert!(body["gate"]["shard"].as_str().is_some_and(|s| s.starts_with("127.0.0.1:")), "{}", body["gate"]);

    let list = stack.admin.handle(request("GET", "/admin/events", &[], None)).await;
    assert_eq!(body_json(&list)["events"].as_array().unwrap().len(), 1);

    let deleted = stack.admin.handle(request("DELETE", "/admin/events/meet", &[], None)).await;
    assert_eq!(deleted.status(), 204);
    assert_error(&stack.enter("meet", "d").await, 404, "event_not_found");
    assert_error(&stack.admin.handle(request("GET", "/admin/events/meet", &[], None)).await, 404, "event_not_found");
    assert_error(&stack.admin.handle(request("DELETE", "/admin/events/meet", &[], None)).await, 404, "event_not_found");
    assert_eq!(stack.rows("meet").await.len(), 3, "entries stay as the record of who was accepted");
}

#[tokio::test]
async fn a_publish_from_a_calendar_read_before_the_delete_cannot_bring_the_event_back() {
    let stack = Stack::new().await;
    let put = || stack.admin.handle(request("PUT", "/admin/events/gone", &[], Some(&definition(10))));
    assert_eq!(put().await.status(), 201);
    assert_eq!(stack.enter("gone", "a").await.status(), 202);
    // The scheduler read the calendar (with this event) just before the
    // operator deleted it, and publishes after: the drill caught this
    // handing position 1 out a second time.
    let read_before = stack.db.event(&fanrush::rules::domain::EventId::parse("gone").unwrap()).await.unwrap().unwrap();
    assert_eq!(stack.admin.handle(request("DELETE", "/admin/events/gone", &[], None)).await.status(), 204);
    assert_eq!(
        stack.gate.publish(&read_before, fanrush::adapters::redis_gate::SeedWrite::Keep).await.unwrap(),
        fanrush::adapters::redis_gate::Published::Retired
    );
    assert_error(&stack.enter("gone", "b").await, 404, "event_not_found");
    assert_error(&put().await, 409, "event_id_retired");
    assert_eq!(stack.drain().await, 1);
    assert_eq!(stack.rows("gone").await.len(), 1);
}
