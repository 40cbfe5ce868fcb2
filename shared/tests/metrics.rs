//! CloudWatch Embedded Metric Format output: the fan path and the writer
//! count what they do, and a flush writes one EMF document. (Its own test
//! binary: the metrics recorder is process-wide.)

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn the_fan_path_and_the_writer_emit_emf_metrics() {
    let metrics = fanrush::telemetry::metrics("test");
    let stack = Stack::new().await;
    let event = stack.open_event(1).await;
    assert_eq!(stack.enter(&event, "m1").await.status(), 202);
    assert_eq!(stack.enter(&event, "m2").await.status(), 409);
    assert_eq!(stack.enter("missing", "m3").await.status(), 404);
    stack.drain().await;

    let mut out = Vec::new();
    metrics.flush(&mut out).unwrap();
    let docs: Vec<Value> = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let value = |name: &str| docs.iter().find_map(|d| d.get(name).cloned());
    assert!(docs.iter().all(|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "fanrush"), "{docs:?}");
    assert_eq!(value("EntriesAccepted"), Some(1.into()));
    assert_eq!(value("EntriesSoldOut"), Some(1.into()));
    assert_eq!(value("EntriesRejected"), Some(1.into()));
    assert!(docs.iter().any(|d| d["reason"] == "event_not_found"), "rejections carry their reason: {docs:?}");
    // A label is a dimension beside Function: the dashboard's metrics are
    // checked against that shape (scripts/check-dashboard.py).
    let rejected = docs.iter().find(|d| d.get("EntriesRejected").is_some()).unwrap();
    assert_eq!(rejected["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Function", "reason"]]));
    let accepted = docs.iter().find(|d| d.get("EntriesAccepted").is_some()).unwrap();
    assert_eq!(accepted["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Function"]]));
    assert_eq!(value("RowsWritten"), Some(1.into()));
    assert!(value("RedisLatencyMs").is_some() && value("SqsLatencyMs").is_some());
}
