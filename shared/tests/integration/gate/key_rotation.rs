//! The line's ticket key rotates in the middle of a wait: environments
//! whose secrets extension still caches the old key and environments on
//! the new one answer the same fans, and none is refused or loses its
//! place. The extensions are HTTP stand-ins answering as the Parameters and
//! Secrets extension does (`refreshNow=true` reaches Secrets Manager).

use crate::common::*;
use chrono::{DateTime, Duration as Minutes, Utc};
use fanrush::adapters::secrets::SecretSource;
use fanrush::rules::line::{Place, Ticket, TicketKeys};
use fanrush::usecases::api::{AuthMode, FanApi, TicketKeyring};
use fanrush::usecases::clock::ManualClock;
use fanrush::usecases::entrance::RateLimit;
use fanrush_local::HttpCapture;
use serde_json::Value;
use std::sync::Arc;

const OLD: &str = "ticket-key-before-the-rotation";
const NEW: &str = "ticket-key-after-the-rotation";

fn secret(value: &str) -> String {
    serde_json::json!({ "SecretString": value }).to_string()
}

/// An extension that cached the secret before the rotation: its cached
/// answers are the old key (and no previous version); a read past its
/// cache gets what Secrets Manager holds now.
async fn extension_behind() -> HttpCapture {
    let e = HttpCapture::start().await.unwrap();
    e.answer_when(&["AWSPREVIOUS", "refreshNow=true"], 200, &secret(OLD));
    e.answer_when(&["refreshNow=true"], 200, &secret(NEW));
    e.answer_when(&["AWSPREVIOUS"], 400, "{\"message\":\"no such version\"}");
    e.answer(200, &secret(OLD));
    e
}

/// An extension that read the secret after the rotation.
async fn extension_ahead() -> HttpCapture {
    let e = HttpCapture::start().await.unwrap();
    e.answer_when(&["AWSPREVIOUS"], 200, &secret(OLD));
    e.answer(200, &secret(NEW));
    e
}

/// An entry environment reading its ticket keys through `extension`.
fn environment(stack: &Stack, clock: &Arc<ManualClock>, extension: &HttpCapture) -> FanApi {
    let source = SecretSource::Extension { secret_id: "line-ticket-key".into(), port: extension.port() };
    FanApi::new(gate(&redis_url(), &stack.prefix), stack.queue(), AuthMode::Dev, 1)
        .with_line(TicketKeyring::new(source, SecretSource::None), LINE_SYNC, RateLimit::OFF)
        .with_clock(clock.clone())
}

async fn post(api: &FanApi, event: &str, fan: &str, ticket: Option<&str>) -> (u16, Value) {
    let mut headers = vec![("x-fan-id", fan)];
    if let Some(t) = ticket {
        headers.push(("x-fanrush-ticket", t));
    }
    let r = api.handle(request("POST", &format!("/events/{event}/entries"), &headers, None)).await;
    (r.status().as_u16(), body_json(&r))
}

fn refreshes(e: &HttpCapture) -> usize {
    e.requests().iter().filter(|r| r.path.contains("refreshNow=true")).count()
}

#[tokio::test]
async fn a_rotation_mid_wait_refuses_no_fan_and_keeps_every_place() {
    let t0: DateTime<Utc> = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let clock = Arc::new(ManualClock::at(t0));
    let stack = Stack::with_clock(clock.clone()).await;
    let event = stack.lined_event(100, 1, 0, t0 - Minutes::minutes(1), t0 + Minutes::hours(1)).await;
    let (behind, ahead) = (extension_behind().await, extension_ahead().await);
    let (old_env, new_env) = (environment(&stack, &clock, &behind), environment(&stack, &clock, &ahead));

    // Fans join where the old key still signs. A fan's place is what its
    // ticket carries (positions are each environment's estimate of it).
    let both = TicketKeys::new(NEW.as_bytes(), Some(OLD.as_bytes()));
    let place = |fan: &str, ticket: &str| Ticket::verify(ticket, &both, &event, fan, t0.timestamp()).unwrap().place;
    let mut waiting = Vec::new();
    for i in 0..6 {
        let fan = format!("fan-{i}");
        let (status, body) = post(&old_env, &event, &fan, None).await;
        assert!(status == 203 || status == 202, "{fan}: {status} {body}");
        if status == 203 {
            let ticket = body["ticket"].as_str().unwrap().to_owned();
            waiting.push((fan.clone(), place(&fan, &ticket), ticket));
        }
    }
    assert!(waiting.len() >= 4, "most fans wait at one admission a second: {waiting:?}");

    // Each polls an environment on the new key (the old one verifies as
    // previous, and the answer re-signs with the new), then the one still
    // on the old key, which reads the keys past its cache once.
    for hop in [&new_env, &old_env] {
        for (fan, held, ticket) in waiting.iter_mut() {
            let (status, body) = post(hop, &event, fan, Some(ticket)).await;
            assert_eq!(status, 203, "{fan}: never refused over a rotation: {body}");
            *ticket = body["ticket"].as_str().unwrap().to_owned();
            assert_eq!(place(fan, ticket), *held, "{fan} kept its place");
        }
    }
    let renewed =
        Ticket::verify(&waiting[0].2, &TicketKeys::new(NEW.as_bytes(), None), &event, &waiting[0].0, t0.timestamp());
    assert!(renewed.is_ok(), "answers after the rotation sign with the new key");
    assert_eq!(refreshes(&behind), 2, "one read past the cache: the current version and the previous");
    assert_eq!(refreshes(&ahead), 0, "an environment that knows the key never reads past its cache");

    // A ticket under a key Secrets Manager never held is refused once the
    // keys were read since it says it was issued; one that says it was
    // issued after that read waits for the next (the fan retries, 503).
    let attacker = TicketKeys::new(b"not-fanrush", None);
    let forged = |issued_at_s| {
        Ticket { place: Place::Prequeue { shuffle: 0 }, issued_at_s }.encode(&attacker, &event, "mallory")
    };
    let (status, body) = post(&old_env, &event, "mallory", Some(&forged(t0.timestamp() - 60))).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("invalid_ticket")), "{body}");
    let (status, body) = post(&old_env, &event, "mallory", Some(&forged(t0.timestamp() + 5))).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("unavailable")), "{body}");
    assert_eq!(refreshes(&behind), 2, "within the gap nothing more reaches Secrets Manager");

    // An environment whose extension cannot reach Secrets Manager: the fan
    // is asked to retry, and its place is there when it does elsewhere.
    let cut = HttpCapture::start().await.unwrap();
    cut.answer_when(&["refreshNow=true"], 500, "{\"message\":\"Secrets Manager unreachable\"}");
    cut.answer_when(&["AWSPREVIOUS"], 400, "{}");
    cut.answer(200, &secret(OLD));
    let cut_env = environment(&stack, &clock, &cut);
    let (fan, held, ticket) = &waiting[0];
    let (status, body) = post(&cut_env, &event, fan, Some(ticket)).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("unavailable")), "{body}");
    let (status, body) = post(&new_env, &event, fan, Some(ticket)).await;
    assert_eq!(status, 203, "{body}");
    assert_eq!(place(fan, body["ticket"].as_str().unwrap()), *held, "its place, after the 503");
    stack.drain().await;
}

#[tokio::test]
async fn the_keys_are_read_again_when_the_extension_would_see_a_rotation() {
    let extension = extension_behind().await;
    let source = || SecretSource::Extension { secret_id: "line-ticket-key".into(), port: extension.port() };
    // The extension's default cache time: one read serves both calls.
    let keyring = TicketKeyring::new(source(), SecretSource::None);
    keyring.keys().await.unwrap();
    let reads = extension.requests().len();
    keyring.keys().await.unwrap();
    assert!(reads >= 1 && extension.requests().len() == reads, "kept, not read again");
    // An extension told to cache for no time (SECRETS_MANAGER_TTL=0): each
    // call reads again, and a rotation the extension sees is seen at once.
    let keyring = TicketKeyring::new(source(), SecretSource::None).with_ttl(std::time::Duration::ZERO);
    keyring.keys().await.unwrap();
    let first = extension.requests().len();
    extension.answer(200, &secret(NEW));
    let keys = keyring.keys().await.unwrap();
    assert!(extension.requests().len() > first, "read again");
    assert!(keys.current == TicketKeys::new(NEW.as_bytes(), None).current, "the new key signs");
}

#[tokio::test]
async fn an_extension_outage_is_asked_once_a_second_while_the_kept_keys_serve() {
    let extension = extension_ahead().await;
    let source = SecretSource::Extension { secret_id: "line-ticket-key".into(), port: extension.port() };
    let keyring = TicketKeyring::new(source, SecretSource::None).with_ttl(std::time::Duration::ZERO);
    let before = keyring.keys().await.unwrap();
    extension.answer_when(&["AWSPREVIOUS"], 500, "{\"message\":\"unreachable\"}");
    extension.answer(500, "{\"message\":\"unreachable\"}");
    let reads = extension.requests().len();
    // The first call after the failure tries, the next ones do not: every
    // fan's answer would otherwise wait for the failing extension.
    for _ in 0..20 {
        assert!(keyring.keys().await.unwrap() == before, "the kept keys serve");
    }
    let tried = extension.requests().len() - reads;
    assert!((1..=2).contains(&tried), "one attempt (current and previous), not one per call: {tried}");
}

#[tokio::test]
async fn an_extension_down_at_the_first_read_is_asked_once_a_second_too() {
    let extension = extension_ahead().await;
    extension.answer_when(&["AWSPREVIOUS"], 500, "{\"message\":\"unreachable\"}");
    extension.answer(500, "{\"message\":\"unreachable\"}");
    let source = SecretSource::Extension { secret_id: "line-ticket-key".into(), port: extension.port() };
    let keyring = TicketKeyring::new(source, SecretSource::None);
    // No keys kept: every call is refused (the fan API answers 503), but
    // only the first waits for the failing extension.
    for _ in 0..20 {
        assert!(keyring.keys().await.is_err(), "no keys to serve");
    }
    let tried = extension.requests().len();
    assert!((1..=2).contains(&tried), "one attempt (current and previous), not one per call: {tried}");
}
