//! Operators take an event's entries out through the admin API: page by
//! page in position order, as JSON lines or CSV, from PostgreSQL (the
//! record), with bad input named and an unknown event refused.

use crate::common::*;
use lambda_http::{Body, Response};

async fn page(stack: &Stack, event: &str, query: &str) -> Response<Body> {
    stack.admin.handle(request("GET", &format!("/admin/events/{event}/entries{query}"), &[], None)).await
}

fn text(r: &Response<Body>) -> String {
    match r.body() {
        Body::Text(t) => t.clone(),
        other => panic!("a text body: {other:?}"),
    }
}

fn next(r: &Response<Body>) -> Option<i64> {
    r.headers().get("x-fanrush-next-after").map(|v| v.to_str().unwrap().parse().unwrap())
}

#[tokio::test]
async fn an_events_entries_come_out_page_by_page_in_position_order() {
    let stack = Stack::new().await;
    let event = stack.open_event(10).await;
    for fan in ["ana", "bo", "cy", "di", "ed"] {
        let note = format!(r#"{{"note": "{fan}, \"hi\""}}"#);
        let r = stack
            .fan
            .handle(request("POST", &format!("/events/{event}/entries"), &[("x-fan-id", fan)], Some(&note)))
            .await;
        assert_eq!(r.status(), 202, "{}", body_json(&r));
    }
    assert_eq!(stack.drain().await, 5);

    // JSON lines, two at a time, following the cursor to the end.
    let (mut after, mut fans) = (Some(0), Vec::new());
    while let Some(cursor) = after {
        let r = page(&stack, &event, &format!("?after={cursor}&limit=2")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/x-ndjson");
        for line in text(&r).lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(row["note"], format!("{}, \"hi\"", row["fanId"].as_str().unwrap()));
            assert!(row["acceptedAt"].as_str().unwrap().ends_with('Z'));
            fans.push((row["position"].as_i64().unwrap(), row["fanId"].as_str().unwrap().to_owned()));
        }
        after = next(&r);
    }
    let positions: Vec<i64> = fans.iter().map(|(p, _)| *p).collect();
    assert_eq!(positions, vec![1, 2, 3, 4, 5], "every entry once, in order");
    let stored: Vec<(i64, String)> = stack.rows(&event).await.into_iter().map(|(f, p)| (p, f)).collect();
    let mut stored = stored;
    stored.sort();
    assert_eq!(fans, stored);

    // CSV, one page, the notes quoted.
    let r = page(&stack, &event, "?format=csv").await;
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(next(&r), None, "a short page is the last");
    let body = text(&r);
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("position,fanId,acceptedAt,note"));
    assert!(lines.next().unwrap().ends_with(&format!(",\"{}, \"\"hi\"\"\"", fans[0].1)), "{body}");

    // Bad input names its field; an unknown event is 404; nothing else is allowed.
    for (query, field) in [("?limit=0", "limit"), ("?after=x", "after"), ("?format=xml", "format"), ("?x=1", "query")] {
        let r = page(&stack, &event, query).await;
        assert_error(&r, 400, "invalid_field");
        assert_eq!(body_json(&r)["field"], field, "{query}");
    }
    assert_error(&page(&stack, "no-such-event", "").await, 404, "event_not_found");
    let post = stack.admin.handle(request("POST", &format!("/admin/events/{event}/entries"), &[], None)).await;
    assert_error(&post, 405, "method_not_allowed");
}
