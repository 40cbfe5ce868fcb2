//! Property test of the request-to-response path of both APIs: arbitrary
//! methods, paths, headers, bodies (any bytes, any size, base64 as API
//! Gateway sends binary) never panic, never answer 5xx while the services are
//! up, and every answer is JSON with an `error` code when it refuses.

use crate::common::*;
use fanrush_local::GatewayEvent;
use lambda_http::Body;
use proptest::prelude::*;
use serde_json::Value;

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("events".to_owned()),
        Just("entries".to_owned()),
        Just("me".to_owned()),
        Just("admin".to_owned()),
        "[A-Za-z0-9_-]{1,70}",
        "[a-z%.~!$&'()*+,;=:@]{1,12}",
        "\\PC{1,8}",
    ]
}

fn case() -> impl Strategy<Value = (String, Vec<String>, Option<String>, Vec<u8>, bool)> {
    (
        prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE"), Just("PATCH"), Just("HEAD"), Just("OPTIONS")]
            .prop_map(str::to_owned),
        prop::collection::vec(segment(), 0..6),
        prop::option::of("\\PC{0,140}"),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..3000),
            "\\PC{0,300}".prop_map(String::into_bytes),
            Just(br#"{"note":"hi"}"#.to_vec()),
            Just(br#"{"title":"t","opensAt":"2020-01-01T00:00:00Z","closesAt":"2029-12-31T00:00:00Z","capacity":3,"expectedPeakRps":1}"#.to_vec()),
        ],
        any::<bool>(),
    )
}

fn event(
    method: &str,
    segments: &[String],
    fan: &Option<String>,
    body: &[u8],
    binary: bool,
) -> Option<lambda_http::Request> {
    // A client percent-encodes a '?' inside a segment; a bare one starts
    // the query string, which the event carries apart.
    let path = format!("/{}", segments.join("/").replace('?', "%3F"));
    let mut event = GatewayEvent::new(method, &path).from_api("fuzz").request_id("r");
    if let Some(f) = fan {
        event = event.header("x-fan-id", f);
    }
    event = if binary {
        event.base64_body(&aws_smithy_types::base64::encode(body))
    } else {
        event.body(String::from_utf8_lossy(body).as_bytes())
    };
    // What lambda_http cannot turn into a request never reaches a handler.
    event.into_request().ok()
}

fn check(r: &lambda_http::Response<Body>) -> Result<(), TestCaseError> {
    let status = r.status().as_u16();
    prop_assert!(status < 500, "a 5xx with every service up: {status}");
    if status == 204 {
        return Ok(());
    }
    let body: Value = match r.body() {
        Body::Text(t) => serde_json::from_str(t).map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?,
        other => return Err(TestCaseError::fail(format!("not a text body: {other:?}"))),
    };
    if status >= 400 {
        prop_assert!(body["error"].is_string() && body["message"].is_string(), "{body}");
    }
    Ok(())
}

#[test]
fn both_apis_answer_any_request_with_json_and_never_a_5xx() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stack = rt.block_on(Stack::new());
    rt.block_on(stack.open_event(1_000_000));
    let config = ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |((method, segments, fan, body, binary) in case())| {
        let Some(request) = event(&method, &segments, &fan, &body, binary) else { return Ok(()) };
        let admin_request = event(&method, &segments, &fan, &body, binary).unwrap();
        check(&rt.block_on(stack.fan.handle(request)))?;
        check(&rt.block_on(stack.admin.handle(admin_request)))?;
    });
    // And both still serve.
    let r = rt.block_on(stack.fan.handle(request("GET", "/events/nope", &[], None)));
    assert_eq!(r.status(), 404);
}
