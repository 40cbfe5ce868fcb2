//! Bad input of every kind gets a clear 4xx JSON error, and identity comes
//! only from the authorizer unless dev mode is on.

use crate::common::*;
use fanrush::adapters::sqs_queue::EntryQueue;
use fanrush::usecases::api::AuthMode;
use fanrush::usecases::api::{AdminApi, FanApi};
use serde_json::json;

/// method, path, headers, body, expected status, expected error code
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Option<&'a str>, u16, &'a str);

#[tokio::test]
async fn malformed_fan_requests_get_4xx_json_and_the_api_keeps_serving() {
    let stack = Stack::new().await;
    let event = stack.open_event(5).await;
    let entries = format!("/events/{event}/entries");
    let fan = [("x-fan-id", "erin")];
    let big = format!("{{\"note\":\"{}\"}}", "x".repeat(2000));
    let long_note = json!({ "note": "n".repeat(281) }).to_string();
    let long_fan = "f".repeat(fanrush::rules::domain::MAX_FAN_ID_BYTES + 1);
    let cases: Vec<Case> = vec![
        ("POST", entries.clone(), fan.to_vec(), Some("{not json"), 400, "invalid_body"),
        ("POST", entries.clone(), fan.to_vec(), Some("[1,2]"), 400, "invalid_body"),
        ("POST", entries.clone(), fan.to_vec(), Some(r#"{"note": 7}"#), 400, "invalid_body"),
        ("POST", entries.clone(), fan.to_vec(), Some(&long_note), 400, "invalid_body"),
        ("POST", entries.clone(), fan.to_vec(), Some(&big), 413, "body_too_large"),
        ("POST", entries.clone(), vec![], None, 401, "unauthenticated"),
        ("POST", entries.clone(), vec![("x-fan-id", "tab\tin an id")], None, 400, "invalid_fan_id"),
        ("POST", entries.clone(), vec![("x-fan-id", long_fan.as_str())], None, 400, "invalid_fan_id"),
        ("POST", "/events/bad.id/entries".into(), fan.to_vec(), None, 400, "invalid_event_id"),
        ("GET", format!("/events/{}", "e".repeat(65)), vec![], None, 400, "invalid_event_id"),
        ("GET", entries.clone(), fan.to_vec(), None, 405, "method_not_allowed"),
        ("DELETE", format!("/events/{event}"), vec![], None, 405, "method_not_allowed"),
        ("PUT", format!("{entries}/me"), fan.to_vec(), None, 405, "method_not_allowed"),
        ("GET", "/".into(), vec![], None, 404, "route_not_found"),
        ("GET", "/events".into(), vec![], None, 404, "route_not_found"),
        ("GET", format!("{entries}/me/extra"), fan.to_vec(), None, 404, "route_not_found"),
        ("GET", format!("{entries}/me"), vec![], None, 401, "unauthenticated"),
    ];
    for (method, path, headers, body, status, code) in cases {
        let r = stack.fan.handle(request(method, &path, &headers, body)).await;
        assert_error(&r, status, code);
        if status == 405 {
            assert!(r.headers().contains_key("allow"));
        }
    }
    // Nothing above reserved a place, and the API still serves.
    assert_eq!(stack.enter(&event, "erin").await.status(), 202);
    assert_eq!(stack.drain().await, 1);
}

#[tokio::test]
async fn x_fan_id_is_ignored_unless_dev_mode_is_on() {
    let stack = Stack::new().await;
    let event = stack.open_event(5).await;
    let secure = FanApi::new(
        gate(&redis_url(), &stack.prefix),
        EntryQueue::new(stack.sqs.clone(), &stack.queue_url, POLICY),
        AuthMode::Authorizer,
        1,
    );
    let path = format!("/events/{event}/entries");
    let spoofed = secure.handle(request("POST", &path, &[("x-fan-id", "mallory")], None)).await;
    assert_error(&spoofed, 401, "unauthenticated");

    let jwt = json!({ "jwt": { "claims": { "sub": "frank", "iss": "https://issuer" }, "scopes": null } });
    let r = secure.handle(request_with("POST", &path, &[("x-fan-id", "mallory")], None, Some(jwt))).await;
    assert_eq!(r.status(), 202);
    assert_eq!(body_json(&r)["fanId"], "frank", "the claim wins; the header is never trusted");
    assert_eq!(stack.rows(&event).await.len() + stack.drain().await, 1);
    assert_eq!(stack.rows(&event).await, vec![("frank".to_owned(), 1)]);
}

#[tokio::test]
async fn the_admin_api_refuses_requests_without_an_iam_identity() {
    let stack = Stack::new().await;
    let secure = AdminApi::new(
        gate(&redis_url(), &stack.prefix),
        database(&stack.schema),
        stack.queue(),
        stack.dead_letters(),
        AuthMode::Authorizer,
        1,
    );
    let body = json!({"title":"t","opensAt":"2030-01-01T00:00:00Z","closesAt":"2030-01-01T01:00:00Z","capacity":5,"expectedPeakRps":1});
    let r = secure.handle(request("PUT", "/admin/events/sneaky", &[("x-fan-id", "x")], Some(&body.to_string()))).await;
    assert_error(&r, 403, "forbidden");
    assert_error(&secure.handle(request("GET", "/admin/events", &[], None)).await, 403, "forbidden");

    let iam = json!({ "iam": { "accessKey": "AKIA", "accountId": "123456789012", "callerId": "AIDA",
                               "userArn": "arn:aws:iam::123456789012:user/ops", "userId": "AIDA" } });
    let r = secure.handle(request_with("PUT", "/admin/events/allowed", &[], Some(&body.to_string()), Some(iam))).await;
    assert_eq!(r.status(), 201, "{}", body_json(&r));
}

#[tokio::test]
async fn malformed_admin_requests_name_the_field() {
    let stack = Stack::new().await;
    let good = json!({"title":"t","opensAt":"2030-01-01T00:00:00Z","closesAt":"2030-01-01T01:00:00Z","capacity":5,"expectedPeakRps":1});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = good.clone();
        b[k] = v;
        b.to_string()
    };
    let cases = [
        (with("capacity", json!(0)), "capacity"),
        (with("capacity", json!("5")), "capacity"),
        (with("closesAt", json!("2029-12-31T00:00:00Z")), "closesAt"),
        (with("opensAt", json!("yesterday")), "opensAt"),
        (with("expectedPeakRps", json!(-3)), "expectedPeakRps"),
        (with("title", json!(null)), "title"),
    ];
    for (body, field) in cases {
        let r = stack.admin.handle(request("PUT", "/admin/events/e1", &[], Some(&body))).await;
        assert_error(&r, 400, "invalid_field");
        assert_eq!(body_json(&r)["field"], field);
    }
    let r = stack.admin.handle(request("PUT", "/admin/events/e1", &[], Some("nope"))).await;
    assert_error(&r, 400, "invalid_body");
    let r = stack.admin.handle(request("PUT", "/admin/events/e1", &[], Some(&"x".repeat(20_000)))).await;
    assert_error(&r, 413, "body_too_large");
    assert_error(
        &stack.admin.handle(request("PUT", "/admin/events/b%20d", &[], Some(&good.to_string()))).await,
        400,
        "invalid_event_id",
    );
    assert_error(&stack.admin.handle(request("POST", "/admin/events", &[], None)).await, 405, "method_not_allowed");
    assert_error(&stack.admin.handle(request("GET", "/admin", &[], None)).await, 404, "route_not_found");
}
