//! `fanrush events` and `fanrush entries` against a stand-in of the admin
//! API (fanrush-local's `HttpCapture`): calls signed with SigV4 for
//! `execute-api` from the AWS chain's credentials, or unsigned when asked,
//! the API's refusals and bad input named on stderr with a non-zero exit.
//! `make test` also runs both commands in dev mode against the real
//! admin-api behind the local gateway (scripts/contract.sh).

use fanrush_local::HttpCapture;
use std::process::{Command, Output};

fn fanrush(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fanrush"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        .env("AWS_SESSION_TOKEN", "session-token-example")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
}

fn header<'a>(r: &'a fanrush_local::Captured, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_are_signed_with_sigv4_for_execute_api_unless_unsigned() {
    let api = HttpCapture::start().await.unwrap();
    api.answer(200, r#"{"events":[{"eventId":"gig"}]}"#);
    let base = api.url("");

    let out = fanrush(&["events", "list", "--api", &base]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"events":[{"eventId":"gig"}]}"#);
    let put_file = std::env::temp_dir().join(format!("fanrush-event-{}.json", std::process::id()));
    std::fs::write(&put_file, r#"{"title":"Gig"}"#).unwrap();
    let out = fanrush(&["events", "put", "--api", &base, "--event", "gig", "--file", put_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = fanrush(&["events", "delete", "--api", &base, "--event", "gig", "--unsigned"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let calls = api.requests();
    let (list, put, delete) = (&calls[0], &calls[1], &calls[2]);
    assert_eq!((list.method.as_str(), list.path.as_str()), ("GET", "/admin/events"));
    let auth = header(list, "authorization").expect("a signed call");
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
    assert!(auth.contains("/eu-west-1/execute-api/aws4_request") && auth.contains("SignedHeaders="), "{auth}");
    assert!(header(list, "x-amz-date").is_some() && header(list, "x-amz-security-token").is_some());
    assert_eq!(
        (put.method.as_str(), put.path.as_str(), put.body.as_str()),
        ("PUT", "/admin/events/gig", r#"{"title":"Gig"}"#)
    );
    assert!(header(put, "authorization").is_some());
    assert_eq!(delete.method, "DELETE");
    assert_eq!(header(delete, "authorization"), None, "--unsigned sends no signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_bad_input_exit_non_zero_and_say_why() {
    let api = HttpCapture::start().await.unwrap();
    api.answer(409, r#"{"error":"event_archived","message":"event gig closed and was archived"}"#);
    let base = api.url("");
    let stderr = |out: &Output| {
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let refused = stderr(&fanrush(&["events", "get", "--api", &base, "--event", "gig"]));
    assert!(refused.contains("409 event_archived: event gig closed and was archived"), "{refused}");
    let entries = stderr(&fanrush(&["entries", "--api", &base, "--event", "gig"]));
    assert!(entries.starts_with("fanrush entries:") && entries.contains("409"), "{entries}");

    let bad_id = stderr(&fanrush(&["events", "get", "--api", &base, "--event", "no spaces!"]));
    assert!(bad_id.contains("--event"), "{bad_id}");
    let bad_url = stderr(&fanrush(&["events", "list", "--api", "ftp://example.com"]));
    assert!(bad_url.contains("API URL"), "{bad_url}");
    let bad_size = stderr(&fanrush(&["entries", "--api", &base, "--event", "gig", "--page-size", "0"]));
    assert!(bad_size.contains("--page-size"), "{bad_size}");
    let missing = std::env::temp_dir().join("fanrush-no-such-file.json");
    let bad_file =
        stderr(&fanrush(&["events", "put", "--api", &base, "--event", "gig", "--file", missing.to_str().unwrap()]));
    assert!(bad_file.contains("fanrush-no-such-file.json"), "{bad_file}");
    assert_eq!(api.requests().len(), 2, "bad input calls nothing");
}
