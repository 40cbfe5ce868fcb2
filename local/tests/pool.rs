//! The pool routes as Lambda does: a request goes to an idle environment,
//! never behind one that is busy. The function is a few lines of shell that
//! speak the Runtime API with curl and answer with their own PID, taking a
//! while over any event that asks to be slow.

use fanrush_local::pool::{FunctionSpec, Pool};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

const FUNCTION: &str = r#"#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
headers="$(mktemp)"
while true; do
  body="$(curl -s -D "$headers" "$api/next")" || exit 1
  id="$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | tr -d '\r' | cut -d' ' -f2)"
  case "$body" in *slow*) sleep 3 ;; esac
  curl -s -X POST -d "{\"pid\":$$}" "$api/$id/response" >/dev/null
done
"#;

fn pid(answer: &fanrush_local::runtime::Answer) -> u64 {
    serde_json::from_str::<Value>(&answer.body).unwrap()["pid"].as_u64().expect("the function's pid")
}

#[tokio::test]
async fn a_request_goes_to_an_idle_environment_not_behind_a_busy_one() {
    let dir = std::env::temp_dir().join(format!("fanrush-pool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let binary = dir.join("function.sh");
    std::fs::write(&binary, FUNCTION).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = FunctionSpec { name: "pid", binary, env: Vec::new(), log: dir.join("function") };
    let pool = Arc::new(Pool::start(&spec, 2).await.expect("two environments start"));
    let timeout = Duration::from_secs(20);

    let slow = tokio::spawn({
        let pool = pool.clone();
        async move { pool.invoke(&json!({"slow": true}), timeout).await }
    });
    while pool.outstanding() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Round-robin would send the second of these behind the slow one.
    let first = pool.invoke(&json!({}), timeout).await.expect("answered");
    let second = pool.invoke(&json!({}), timeout).await.expect("answered");
    let slow = slow.await.unwrap().expect("answered");
    assert_eq!(pid(&first), pid(&second), "both went to the idle environment");
    assert_ne!(pid(&first), pid(&slow), "neither queued behind the busy one");
    assert_eq!(pool.outstanding(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
