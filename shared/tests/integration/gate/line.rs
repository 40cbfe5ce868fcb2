//! The line in front of the gate, through the fan and admin APIs on the
//! real Redis, PostgreSQL and SQS endpoint: waiting answers whose numbers
//! agree, admission at the line's pace in the order of places, the
//! pre-queue's shuffle, one place per fan however often it joins, sold out
//! without the gate, tickets bound to their fan and event, a restore that
//! keeps every place, a line opened a day ago, and identity providers'
//! subjects stored exactly.
//!
//! The fan APIs decide by a manual clock ([`ManualClock`]): fans follow the
//! protocol in the clock's order, one request at a time ([`Crowd`]), so a
//! run never sleeps and is the same every time; the gate's scripts take
//! their time from the same clock.

use crate::common::*;
use chrono::{DateTime, Duration as Minutes, Utc};
use fanrush::adapters::redis_gate::SeedWrite;
use fanrush::adapters::secrets::{Secret, SecretSource};
use fanrush::rules::domain::EventId;
use fanrush::rules::line::{Place, Ticket, TicketKeys};
use fanrush::usecases::api::{AuthMode, FanApi, TicketKeyring, WAITING};
use fanrush::usecases::clock::ManualClock;
use fanrush::usecases::draws::{reveal_due, Withheld};
use fanrush::usecases::entrance::RateLimit;
use fanrush::usecases::recovery::Patience;
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

fn keys() -> TicketKeys {
    TicketKeys::new(TICKET_KEY.as_bytes(), None)
}

/// A manual clock at a whole second, and a stack whose fan API reads it.
async fn stack_at(t: DateTime<Utc>) -> (Stack, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at(t));
    (Stack::with_clock(clock.clone()).await, clock)
}

pub(crate) fn second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

/// Another entry environment of the same stack, on the same clock.
fn environment(stack: &Stack, clock: &Arc<ManualClock>) -> FanApi {
    fan_api(gate(&redis_url(), &stack.prefix), stack.queue(), AuthMode::Dev).with_clock(clock.clone())
}

async fn post(api: &FanApi, event: &str, fan: &str, ticket: Option<&str>) -> Response<Body> {
    let mut headers = vec![("x-fan-id", fan)];
    if let Some(t) = ticket {
        headers.push(("x-fanrush-ticket", t));
    }
    api.handle(request("POST", &format!("/events/{event}/entries"), &headers, None)).await
}

/// One answer a fan had.
#[derive(Debug, Clone)]
struct Heard {
    status: u16,
    body: Value,
}

/// When a fan calls next: the time, its index, the ticket it holds.
type Due = (DateTime<Utc>, usize, Option<String>);

/// Fans following the line's protocol on fan APIs that share a manual
/// clock: each POSTs at its join time (to the environment its index picks),
/// then again with its ticket when told, until a final answer, in the
/// clock's order, one request at a time.
struct Crowd<'a> {
    apis: &'a [&'a FanApi],
    clock: &'a ManualClock,
    event: &'a str,
}

impl Crowd<'_> {
    async fn follow(&self, joins: &[(String, DateTime<Utc>)], until: DateTime<Utc>) -> BTreeMap<String, Vec<Heard>> {
        let mut heard: BTreeMap<String, Vec<Heard>> = BTreeMap::new();
        let mut due: BinaryHeap<Reverse<Due>> =
            joins.iter().enumerate().map(|(i, (_, at))| Reverse((*at, i, None))).collect();
        let mut turn = 0usize;
        while let Some(Reverse((at, i, ticket))) = due.pop() {
            assert!(at <= until, "{} still waiting at {at}: {:?}", joins[i].0, heard[&joins[i].0].last());
            self.clock.set(at);
            let api = self.apis[turn % self.apis.len()];
            turn += 1;
            let r = post(api, self.event, &joins[i].0, ticket.as_deref()).await;
            let (status, body) = (r.status().as_u16(), body_json(&r));
            let next = match status {
                203 => Some((Minutes::milliseconds(body["retryAfterMs"].as_i64().unwrap()), body["ticket"].clone())),
                429 | 503 => {
                    let s: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                    Some((Minutes::seconds(s), Value::from(ticket.clone())))
                }
                _ => None,
            };
            heard.entry(joins[i].0.clone()).or_default().push(Heard { status, body });
            if let Some((wait, ticket)) = next {
                due.push(Reverse((at + wait, i, ticket.as_str().map(str::to_owned))));
            }
        }
        heard
    }
}

/// Every waiting answer's numbers agree: position is ahead + 1, and the
/// ETA is the places ahead at the speed the answer says the line moves,
/// which is at least the gate's pace (1.05 x the rate). (A restore's hold
/// may add a second: none of these tests restores while asking.)
fn assert_numbers_agree(fan: &str, w: &Value, rate: f64) {
    assert_eq!(w["status"], "waiting", "{fan}: {w}");
    assert!(w["placesLeft"].is_u64() && w["beyondReach"].is_boolean(), "{fan}: {w}");
    match (w["position"].as_u64(), w["ahead"].as_u64()) {
        (Some(p), Some(a)) => {
            assert_eq!(p, a + 1, "{fan}: position is ahead + 1: {w}");
            let speed = w["placesPerSecond"].as_f64().unwrap_or_else(|| panic!("{fan}: a speed: {w}"));
            assert!(speed >= 1.05 * rate - 0.01, "{fan}: {w}");
            if let Some(eta) = w["etaSeconds"].as_f64() {
                // Rounded: `ahead` to a whole fan, the ETA up to a second.
                let expected = a as f64 / speed;
                assert!((eta - expected).abs() <= 1.0 + 0.5 / speed, "{fan}: {a} ahead at {speed}/s in {eta} s: {w}");
            }
        }
        (None, None) => assert!(w["opensInSeconds"].is_u64(), "{fan}: before the opening: {w}"),
        _ => panic!("{fan}: position and ahead go together: {w}"),
    }
}

/// The place a waiting answer's ticket holds (its expiry aside).
fn place_of(event: &str, fan: &str, body: &Value) -> Place {
    Ticket::verify(body["ticket"].as_str().unwrap(), &keys(), event, fan, 0).unwrap().place
}

#[tokio::test]
async fn fans_are_admitted_at_the_lines_pace_in_the_order_of_their_places_and_every_answer_agrees() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    admitted_at_the_lines_pace_in_the_order_of_places(&stack, &clock, t0).await;
}

/// The line's pace and order, on `stack` (a single node or a cluster)
/// whose fan API reads `clock`, set at `t0`.
pub(crate) async fn admitted_at_the_lines_pace_in_the_order_of_places(
    stack: &Stack,
    clock: &Arc<ManualClock>,
    t0: DateTime<Utc>,
) {
    let rate = 10;
    let event = stack.lined_event(100, rate, 0, t0 - Minutes::minutes(1), t0 + Minutes::hours(1)).await;
    let joins: Vec<(String, DateTime<Utc>)> =
        (0..30).map(|i| (format!("fan-{i:02}"), t0 + Minutes::milliseconds(i * 3))).collect();
    let heard = Crowd { apis: &[&stack.fan], clock, event: &event }.follow(&joins, t0 + Minutes::seconds(20)).await;
    let mut places = BTreeMap::new();
    for (fan, answers) in &heard {
        let last = answers.last().unwrap();
        assert_eq!(last.status, 202, "{fan}: {}", last.body);
        for w in answers.iter().filter(|h| h.status == 203) {
            assert_numbers_agree(fan, &w.body, rate as f64);
            places.insert(fan.clone(), place_of(&event, fan, &w.body));
        }
    }
    assert!(places.len() >= 25, "30 fans at 10 a second: almost all wait ({})", places.len());
    assert_eq!(stack.drain().await, 30);
    let id = EventId::parse(&event).unwrap();
    let entries = stack.db.entries(&id).await.unwrap();
    // The gate's clock: no second of admissions above 1.1 x the rate, and
    // none slower than the rate from the first to the last.
    let mut at: Vec<i64> = entries.iter().map(|e| e.accepted_at.timestamp_millis()).collect();
    at.sort();
    let busiest = (0..at.len()).map(|i| at[i..].iter().take_while(|t| **t < at[i] + 1000).count()).max().unwrap();
    assert!(busiest as f64 <= 1.1 * rate as f64, "{busiest} admissions in one second at a rate of {rate}");
    let span = (at[at.len() - 1] - at[0]) as f64 / 1000.0;
    assert!((at.len() - 1) as f64 / span >= 0.95 * rate as f64, "{} in {span} s", at.len());
    // Fans who waited at the door together were admitted in the order of their places.
    let mut by_place: Vec<(Place, i64)> =
        entries.iter().filter_map(|e| places.get(e.fan_id.as_str()).map(|p| (*p, e.position))).collect();
    by_place.sort();
    assert!(by_place.windows(2).all(|w| w[0].1 < w[1].1), "positions follow places: {by_place:?}");
}

#[tokio::test]
async fn a_waiting_answer_is_203_with_a_signed_ticket_position_eta_places_left_and_retry_after() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let event = stack.lined_event(100, 1, 0, t0 - Minutes::minutes(1), t0 + Minutes::hours(1)).await;
    for (i, fan) in (0..12).map(|i| format!("f{i}")).enumerate() {
        clock.set(t0 + Minutes::milliseconds(i as i64));
        stack.enter(&event, &fan).await;
    }
    // A bucket later than theirs: behind all twelve, beyond the door.
    clock.set(t0 + Minutes::milliseconds(150));
    let r = stack.enter(&event, "e").await;
    assert_eq!(r.status(), 203, "{}", body_json(&r));
    let body = body_json(&r);
    assert_numbers_agree("e", &body, 1.0);
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    assert_eq!(r.headers()["x-fanrush-ticket"], ticket.as_str());
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=31).contains(&retry), "{retry}");
    // Twelve joined ahead and the first is in: eleven ahead, as the line
    // estimates them from where the gate serves (here, in a line this
    // small, the first fan's place in its bucket moves that by a few).
    assert!(matches!(body["position"].as_u64(), Some(4..=14)), "{body}");
    assert!(body["etaSeconds"].as_u64().unwrap() >= 3, "{body}");
    assert_eq!(body["placesLeft"].as_u64().unwrap() + 1, 100, "one place went to the first fan: {body}");
    assert_eq!(body["beyondReach"], false);
    let verified = Ticket::verify(&ticket, &keys(), &event, "e", clock_now(&clock)).expect("signed for e");
    assert!(matches!(verified.place, Place::Arrival { .. }));
    // Polling with it keeps the place, and the line only moves forward.
    clock.set(t0 + Minutes::milliseconds(2_500));
    let again = body_json(&stack.enter_with(&event, "e", Some(&ticket)).await);
    assert_numbers_agree("e", &again, 1.0);
    assert!(again["ahead"].as_u64() <= body["ahead"].as_u64(), "{body} then {again}");
    let renewed = Ticket::verify(again["ticket"].as_str().unwrap(), &keys(), &event, "e", clock_now(&clock)).unwrap();
    assert_eq!(renewed.place, verified.place);
}

fn clock_now(clock: &ManualClock) -> i64 {
    use fanrush::usecases::clock::Clock;
    clock.now().timestamp()
}

#[tokio::test]
async fn a_fans_place_is_when_its_request_reached_api_gateway_not_when_it_was_handled() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let event = stack.lined_event(100, 1, 0, t0 - Minutes::minutes(1), t0 + Minutes::hours(1)).await;
    let place = |b: &Value, fan: &str| place_of(&event, fan, b);
    for i in 0..10 {
        stack.enter(&event, &format!("early-{i}")).await;
    }
    clock.set(t0 + Minutes::seconds(1));
    let path = format!("/events/{event}/entries");
    let started = t0.timestamp_millis();
    let received_at = |fan: &str, received_ms: i64| {
        stack.fan.handle(request_received_at("POST", &path, &[("x-fan-id", fan)], received_ms))
    };
    // `prompt` is handled at once; `slow` reached API Gateway half a second
    // before it but is handled after it (a cold start, a busy environment).
    let prompt = body_json(&stack.enter(&event, "prompt").await);
    clock.set(t0 + Minutes::milliseconds(1_300));
    let slow = body_json(&received_at("slow", started + 500).await);
    assert!(place(&slow, "slow") < place(&prompt, "prompt"), "{slow} {prompt}");
    assert!(matches!(place(&slow, "slow"), Place::Arrival { at_ms, .. } if at_ms == started + 500), "{slow}");
    // A receipt time from the future counts as now: the bucket of the moment
    // it was handled.
    let skewed = body_json(&received_at("skewed", started + 60_000).await);
    assert!(matches!(place(&skewed, "skewed"), Place::Arrival { at_ms, .. } if at_ms == started + 1_300), "{skewed}");
}

#[tokio::test]
async fn a_ticket_is_bound_to_its_fan_and_event_and_a_bad_one_admits_no_one() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let event = stack.lined_event(100, 1, 0, t0 - Minutes::minutes(1), t0 + Minutes::hours(1)).await;
    let other = stack.lined_event(100, 1, 0, t0 - Minutes::minutes(1), t0 + Minutes::hours(1)).await;
    for fan in ["a", "b", "c", "d", "e", "f"] {
        stack.enter(&event, fan).await;
    }
    clock.set(t0 + Minutes::milliseconds(150));
    let first = stack.enter(&event, "mallory").await;
    let mine = body_json(&first)["ticket"].as_str().unwrap_or_else(|| panic!("{}", body_json(&first))).to_owned();
    assert_error(&stack.enter_with(&event, "trudy", Some(&mine)).await, 403, "invalid_ticket");
    assert_error(&stack.enter_with(&other, "mallory", Some(&mine)).await, 403, "invalid_ticket");
    // An earlier place, forged with another key, or written by hand.
    let forged = Ticket { place: Place::Arrival { at_ms: 0, shuffle: 0 }, issued_at_s: t0.timestamp() };
    let forged = forged.encode(&TicketKeys::new(b"not-the-key", None), &event, "mallory");
    assert_error(&stack.enter_with(&event, "mallory", Some(&forged)).await, 403, "invalid_ticket");
    let mut tampered = mine.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let r = stack.enter_with(&event, "mallory", Some(&tampered)).await;
    assert!(matches!(r.status().as_u16(), 400 | 403), "{}", body_json(&r));
    assert_error(&stack.enter_with(&event, "mallory", Some("hello")).await, 400, "invalid_ticket");
    let old = Ticket { place: Place::Arrival { at_ms: 0, shuffle: 0 }, issued_at_s: t0.timestamp() - 3_600 };
    assert_error(
        &stack.enter_with(&event, "mallory", Some(&old.encode(&keys(), &event, "mallory"))).await,
        403,
        "ticket_expired",
    );
    // Nobody got in with a bad ticket.
    stack.drain().await;
    let rows = stack.rows(&event).await;
    assert!(!rows.iter().any(|(f, _)| f == "trudy" || f == "mallory"), "{rows:?}");
}

#[tokio::test]
async fn an_oversized_ticket_is_refused_on_any_event_before_the_gate_runs() {
    let stack = Stack::new().await;
    let unlined = stack.event(10, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
    let lined = stack.lined_event(100, 10, 0, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
    let huge = "0".repeat(257);
    for event in [&unlined, &lined] {
        assert_error(&stack.enter_with(event, "bulky", Some(&huge)).await, 400, "invalid_ticket");
    }
    // Refused, so nobody was admitted and no place was spent.
    assert_eq!(body_json(&stack.enter(&unlined, "bulky").await)["position"], 1);
}

#[tokio::test]
async fn a_ticket_for_an_event_without_a_line_is_not_read_and_the_fan_enters() {
    let stack = Stack::new().await;
    let unlined = stack.event(10, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
    // A ticket from when the event had a line, or any text within the
    // limit: the event has no line, so the fan enters as without one.
    let r = stack.enter_with(&unlined, "kept", Some(&"0".repeat(256))).await;
    assert_eq!((r.status().as_u16(), body_json(&r)["position"].clone()), (202, json!(1)), "{}", body_json(&r));
}

/// The line's count of pre-queued fans, as the gate holds it.
async fn prequeue_count(stack: &Stack, event: &str) -> u64 {
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let counts: Vec<Option<u64>> = redis::cmd("BITFIELD")
        .arg(format!("{}:ev:{{{event}}}:line", stack.prefix))
        .arg(&["GET", "u32", "#0"][..])
        .query_async(&mut redis)
        .await
        .unwrap();
    counts[0].unwrap_or(0)
}

#[tokio::test]
async fn the_prequeue_is_shuffled_counted_once_and_every_prequeued_fan_goes_before_every_later_one() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let opens = t0 + Minutes::seconds(60);
    let event = stack.lined_event(100, 40, 10, opens, opens + Minutes::hours(1)).await;
    // Before the pre-queue: not open.
    let early = stack.lined_event(100, 40, 1, t0 + Minutes::minutes(5), t0 + Minutes::hours(1)).await;
    assert_error(&stack.enter(&early, "eager").await, 403, "event_not_open");
    let second_env = environment(&stack, &clock);

    let pre: Vec<String> = (0..20).map(|i| format!("pre-{i:02}")).collect();
    let mut joins: Vec<(String, DateTime<Utc>)> =
        pre.iter().enumerate().map(|(i, f)| (f.clone(), t0 + Minutes::milliseconds(200 * i as i64))).collect();
    // Joining again without the ticket, here or elsewhere, before the
    // opening: the same place, and not counted again.
    clock.set(t0 + Minutes::seconds(5));
    let b = body_json(&stack.enter(&event, &pre[3]).await);
    assert!(b["position"].is_null() && b["opensInSeconds"].as_u64() == Some(55), "before the shuffle: {b}");
    let again = body_json(&post(&second_env, &event, &pre[3], None).await);
    assert_eq!(place_of(&event, &pre[3], &again), place_of(&event, &pre[3], &b));
    clock.set(t0 + Minutes::seconds(8));
    post(&second_env, &event, &pre[4], None).await;
    // The later fans join just after the opening.
    joins.extend((0..5).map(|i| (format!("late-{i}"), opens + Minutes::milliseconds(200 + i))));
    let heard = Crowd { apis: &[&stack.fan, &second_env], clock: &clock, event: &event }
        .follow(&joins, opens + Minutes::seconds(20))
        .await;
    for (fan, answers) in &heard {
        assert_eq!(answers.last().unwrap().status, 202, "{fan}: {:?}", answers.last());
        for w in answers.iter().filter(|h| h.status == 203) {
            assert_numbers_agree(fan, &w.body, 40.0);
        }
    }
    assert_eq!(prequeue_count(&stack, &event).await, 20, "twenty fans, counted once each");
    stack.drain().await;
    let rows = stack.rows(&event).await;
    let position = |fan: &str| rows.iter().find(|(f, _)| f == fan).map(|(_, p)| *p).unwrap();
    let last_pre = pre.iter().map(|f| position(f)).max().unwrap();
    let first_late = (0..5).map(|i| position(&format!("late-{i}"))).min().unwrap();
    assert!(last_pre < first_late, "every pre-queued fan is admitted before every later one: {rows:?}");
    // The pre-queue was admitted in its shuffle order, not in join order.
    let mut by_shuffle: Vec<(Place, i64)> = pre
        .iter()
        .map(|f| (place_of(&event, f, &heard[f].iter().rev().find(|h| h.status == 203).unwrap().body), position(f)))
        .collect();
    by_shuffle.sort();
    assert!(by_shuffle.windows(2).all(|w| w[0].1 < w[1].1), "admitted in shuffle order: {by_shuffle:?}");
    let joined_order: Vec<i64> = pre.iter().map(|f| position(f)).collect();
    assert_ne!(joined_order, (1..=20).collect::<Vec<i64>>(), "not first come, first served in the pre-queue");
}

/// A pre-queued fan told at the door before the opening that calls again
/// after it (ignoring `Retry-After`) is answered from the door's answer:
/// nobody was granted before the opening, so its position still agrees
/// with its ETA.
#[tokio::test]
async fn a_fan_at_the_door_asking_again_after_the_opening_is_told_a_position_that_agrees_with_its_eta() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let opens = t0 + Minutes::seconds(60);
    let rate = 10;
    let event = stack.lined_event(100, rate, 10, opens, opens + Minutes::hours(1)).await;
    let fans: Vec<String> = (0..60).map(|i| format!("pre-{i:02}")).collect();
    let mut tickets = BTreeMap::new();
    for fan in &fans {
        let b = body_json(&stack.enter(&event, fan).await);
        tickets.insert(fan.clone(), b["ticket"].as_str().unwrap().to_owned());
    }
    // Every pre-queued turn has come two seconds before the opening: each
    // fan joins the door, and the last of them is told to come back when
    // its grant is due, seconds after the opening.
    clock.set(opens - Minutes::seconds(2));
    let mut last = (String::new(), 0u64);
    for fan in &fans {
        let b = body_json(&post(&stack.fan, &event, fan, Some(&tickets[fan])).await);
        assert!(b["position"].is_null(), "before the opening the order is not told: {b}");
        let wait = b["retryAfterMs"].as_u64().unwrap();
        if wait > last.1 {
            last = (fan.clone(), wait);
        }
    }
    assert!(last.1 > 4_000, "the door's last fan is due well after the opening: {last:?}");
    clock.set(opens + Minutes::milliseconds(500));
    let again = body_json(&post(&stack.fan, &event, &last.0, Some(&tickets[&last.0])).await);
    assert_numbers_agree(&last.0, &again, rate as f64);
    // 2.5 s after the door's answer, but only 0.5 s of granting.
    let expected_ahead = ((last.1 - 2_500) as f64 * 1.05 * rate as f64 / 1000.0).floor();
    let ahead = again["ahead"].as_f64().unwrap();
    assert!((ahead - expected_ahead).abs() <= 1.0, "{ahead} ahead, about {expected_ahead} expected: {again}");
}

#[tokio::test]
async fn three_hundred_joins_without_a_ticket_move_the_next_fan_back_at_most_one_place_and_cost_the_gate_nothing() {
    let t0 = second(Utc::now());
    // Two lines alike to the last bit (same event, seed, fans and times),
    // but in one of them a fan joins without a ticket 300 times.
    let (calm, calm_clock) = stack_at(t0).await;
    let (hammered, clock) = stack_at(t0).await;
    let id = unique("rj").replace('_', "-");
    for stack in [&calm, &hammered] {
        stack.gate.mark_state_present().await.unwrap();
        let event = fanrush::rules::domain::FanEvent {
            id: EventId::parse(&id).unwrap(),
            title: "Re-joins".into(),
            opens_at: t0 - Minutes::minutes(1),
            closes_at: t0 + Minutes::hours(1),
            capacity: 100,
            expected_peak_rps: 10.0,
            lead_minutes: None,
            cooldown_minutes: None,
            line: Some(fanrush::rules::domain::LineSettings { admissions_per_second: 1, prequeue_minutes: 0 }),
        };
        stack.gate.publish(&event, SeedWrite::Set("the same seed")).await.unwrap();
    }
    let other = environment(&hammered, &clock);
    let calm_other = environment(&calm, &calm_clock);
    for (stack, clock) in [(&calm, &calm_clock), (&hammered, &clock)] {
        for i in 0..10 {
            clock.set(t0 + Minutes::milliseconds(i));
            stack.enter(&id, &format!("ahead-{i}")).await;
        }
        // Thirty more half a second later: the hammer's turn is half a
        // minute away, whatever the first grants did to the served mark.
        clock.set(t0 + Minutes::milliseconds(500));
        for i in 0..30 {
            stack.enter(&id, &format!("crowd-{i}")).await;
        }
        // A second on: the environment's sync counts the ten at the gate,
        // so a new environment sees them (not a line still empty).
        clock.set(t0 + Minutes::seconds(1));
        stack.enter(&id, "hammer").await;
    }
    // The hammering: 299 more, on two environments.
    let mut statuses = BTreeMap::new();
    for i in 1..300 {
        clock.set(t0 + Minutes::milliseconds(1_000 + i));
        let api = if i % 2 == 0 { &hammered.fan } else { &other };
        let r = post(api, &id, "hammer", None).await;
        if r.status() == 429 {
            let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
        }
        *statuses.entry(r.status().as_u16()).or_insert(0) += 1;
    }
    let allowance = 2 * fanrush::usecases::entrance::TICKETLESS_JOINS as usize;
    assert_eq!(statuses.get(&429), Some(&(300 - allowance)), "a small allowance, then 429: {statuses:?}");
    // Every environment of both lines syncs; the gate counted the fan once.
    for (stack, clock) in [(&calm, &calm_clock), (&hammered, &clock)] {
        clock.set(t0 + Minutes::seconds(2));
        stack.enter(&id, "ahead-9").await;
    }
    post(&other, &id, "later", None).await;
    post(&calm_other, &id, "later", None).await;
    assert_eq!(arrivals_counted(&calm, &id).await, arrivals_counted(&hammered, &id).await);
    // The next fan: at most one place and one second further back.
    let mut next = Vec::new();
    for (stack, clock) in [(&calm, &calm_clock), (&hammered, &clock)] {
        clock.set(t0 + Minutes::milliseconds(2_150));
        next.push(body_json(&stack.enter(&id, "next").await));
    }
    assert_numbers_agree("next", &next[1], 1.0);
    let moved = next[1]["position"].as_i64().unwrap() - next[0]["position"].as_i64().unwrap();
    let later = next[1]["etaSeconds"].as_i64().unwrap() - next[0]["etaSeconds"].as_i64().unwrap();
    assert!(moved <= 1 && later <= 1, "calm then hammered: {} then {}", next[0], next[1]);
}

#[tokio::test]
async fn among_thousands_of_environments_each_syncs_a_line_seldom_enough_that_together_they_stay_in_budget() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let id = stack.lined_event(1_000, 1, 0, t0 - Minutes::minutes(1), t0 + Minutes::hours(1)).await;
    // 7,649 other environments synced the line a moment ago.
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let mut zadd = redis::cmd("ZADD");
    zadd.arg(format!("{}:ev:{{{id}}}:syncing", stack.prefix));
    for e in 0..7_649 {
        zadd.arg(t0.timestamp_millis()).arg(format!("other-{e}"));
    }
    let _: () = zadd.query_async(&mut redis).await.unwrap();
    // This one learns the line with its first fan (and hears of the others),
    // gives two more places over the next 15 s without a sync, and counts
    // them with the sync after 15.3 s (7,650 / 500 a second).
    post(&stack.fan, &id, "first", None).await;
    for (ms, fan) in [(2_000, "second"), (15_000, "third")] {
        clock.set(t0 + Minutes::milliseconds(ms));
        post(&stack.fan, &id, fan, None).await;
        assert_eq!(arrivals_counted(&stack, &id).await, 0, "no sync at {ms} ms");
    }
    clock.set(t0 + Minutes::milliseconds(15_300));
    post(&stack.fan, &id, "fourth", None).await;
    assert_eq!(arrivals_counted(&stack, &id).await, 3, "the three places before it, counted in one sync");
}

/// The arrivals the gate counted for a line.
async fn arrivals_counted(stack: &Stack, event: &str) -> u64 {
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let raw: Vec<u8> =
        redis::cmd("GET").arg(format!("{}:ev:{{{event}}}:line", stack.prefix)).query_async(&mut redis).await.unwrap();
    raw.chunks_exact(4).skip(1).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64).sum()
}

#[tokio::test]
async fn a_fan_that_joins_again_without_its_ticket_gets_its_place_back_on_any_environment() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let event = stack.lined_event(100, 1, 0, t0 - Minutes::minutes(1), t0 + Minutes::hours(1)).await;
    let other = environment(&stack, &clock);
    for i in 0..30 {
        stack.enter(&event, &format!("ahead-{i}")).await;
    }
    clock.set(t0 + Minutes::milliseconds(500));
    let first = body_json(&stack.enter(&event, "lost").await);
    let original = place_of(&event, "lost", &first);
    // The same environment remembers it.
    clock.set(t0 + Minutes::seconds(3));
    let here = body_json(&stack.enter(&event, "lost").await);
    assert_eq!(place_of(&event, "lost", &here), original);
    // Another environment gives a later place at first; the gate says the
    // fan was counted before, and its next answer gives the first place back.
    clock.set(t0 + Minutes::seconds(4));
    let elsewhere = body_json(&post(&other, &event, "lost", None).await);
    assert!(place_of(&event, "lost", &elsewhere) > original);
    clock.set(t0 + Minutes::seconds(6));
    let back = body_json(&post(&other, &event, "lost", elsewhere["ticket"].as_str()).await);
    assert_eq!(place_of(&event, "lost", &back), original, "{back}");
}

#[tokio::test]
async fn once_sold_out_every_waiting_fan_is_told_so_without_a_gate_script() {
    let redis =
        fanrush_local::services::PrivateRedis::start(std::env::temp_dir().join(unique("soldout"))).await.unwrap();
    let t0 = second(Utc::now());
    let clock = Arc::new(ManualClock::at(t0));
    let mut stack = Stack::with(&redis.url(), &sqs_endpoint(), Duration::from_millis(1000)).await;
    stack.fan = fan_api(gate(&redis.url(), &stack.prefix), stack.queue(), AuthMode::Dev).with_clock(clock.clone());
    let gate = gate(&redis.url(), &stack.prefix);
    gate.mark_state_present().await.unwrap();
    let id = unique("so").replace('_', "-");
    let event = fanrush::rules::domain::FanEvent {
        id: EventId::parse(&id).unwrap(),
        title: "Two places".into(),
        opens_at: t0 - Minutes::minutes(1),
        closes_at: t0 + Minutes::hours(1),
        capacity: 2,
        expected_peak_rps: 10.0,
        lead_minutes: None,
        cooldown_minutes: None,
        line: Some(fanrush::rules::domain::LineSettings { admissions_per_second: 1, prequeue_minutes: 0 }),
    };
    gate.publish(&event, SeedWrite::Set("seed")).await.unwrap();
    // Twenty fans join; the line lets two in over the next seconds.
    let joins: Vec<(String, DateTime<Utc>)> =
        (0..20).map(|i| (format!("f{i:02}"), t0 + Minutes::milliseconds(i))).collect();
    let crowd = Crowd { apis: &[&stack.fan], clock: &clock, event: &id };
    let heard = crowd.follow(&joins[..2], t0 + Minutes::seconds(10)).await;
    assert!(heard.values().all(|a| a.last().unwrap().status == 202), "{heard:?}");
    // The entries are confirmed: sold out for good. The environment hears
    // it at its next sync.
    clock.set(t0 + Minutes::seconds(12));
    let scripts = |info: String| {
        info.lines()
            .filter(|l| l.starts_with("cmdstat_evalsha") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let info = || async {
        match redis.command(&["INFO", "commandstats"]).await.unwrap() {
            redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            redis::Value::VerbatimString { text, .. } => text,
            other => panic!("INFO answered {other:?}"),
        }
    };
    let before = scripts(info().await);
    for (fan, _) in &joins[2..] {
        assert_error(&stack.enter(&id, fan).await, 409, "sold_out");
    }
    let after = scripts(info().await);
    // At most the environment's own sync, never one per POST.
    assert!(after - before <= 1, "eighteen sold-out answers ran {} gate scripts", after - before);
}

#[tokio::test]
async fn the_admin_api_stores_the_line_and_refuses_every_bad_value_by_name() {
    let stack = Stack::new().await;
    let event = stack.lined_event(100, 300, 30, Utc::now() + Minutes::hours(1), Utc::now() + Minutes::hours(2)).await;
    let got = body_json(&stack.admin.handle(request("GET", &format!("/admin/events/{event}"), &[], None)).await);
    assert_eq!((got["admissionsPerSecond"].clone(), got["prequeueMinutes"].clone()), (json!(300), json!(30)), "{got}");
    assert!(got.get("lineSeed").is_none() && !got.to_string().contains("seed"), "the seed is never served: {got}");
    let base = json!({ "title": "t", "opensAt": "2030-01-01T00:00:00Z", "closesAt": "2030-01-01T01:00:00Z",
                       "capacity": 5, "expectedPeakRps": 1 });
    for (field, value) in [
        ("admissionsPerSecond", json!(0)),
        ("admissionsPerSecond", json!(-3)),
        ("admissionsPerSecond", json!(2.5)),
        ("prequeueMinutes", json!(1441)),
        ("expectedPeakRps", json!(1e17)),
        ("leadMinutes", json!(99_999)),
        ("cooldownMinutes", json!(1_441)),
        ("closesAt", json!("2030-01-09T00:00:00Z")),
    ] {
        let mut body = base.clone();
        body["admissionsPerSecond"] = json!(10);
        body[field] = value.clone();
        let r = stack.admin.handle(request("PUT", "/admin/events/bad-line", &[], Some(&body.to_string()))).await;
        assert_error(&r, 400, "invalid_field");
        assert_eq!(body_json(&r)["field"], field, "{field} = {value}");
    }
    // A line whose event opened more than a week ago.
    let mut stale = base.clone();
    stale["admissionsPerSecond"] = json!(10);
    stale["opensAt"] = json!((Utc::now() - Minutes::days(8)).to_rfc3339());
    stale["closesAt"] = json!((Utc::now() - Minutes::days(2)).to_rfc3339());
    let r = stack.admin.handle(request("PUT", "/admin/events/bad-line", &[], Some(&stale.to_string()))).await;
    assert_eq!((r.status().as_u16(), body_json(&r)["field"].clone()), (400, json!("opensAt")), "{}", body_json(&r));
    let mut orphan = base.clone();
    orphan["prequeueMinutes"] = json!(5);
    let r = stack.admin.handle(request("PUT", "/admin/events/bad-line", &[], Some(&orphan.to_string()))).await;
    assert_eq!((r.status().as_u16(), body_json(&r)["field"].clone()), (400, json!("prequeueMinutes")));
}

#[tokio::test]
async fn a_restore_keeps_the_lines_seed_its_served_mark_and_every_place() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let event = stack.lined_event(100, 2, 0, t0 - Minutes::minutes(1), t0 + Minutes::hours(1)).await;
    let joins: Vec<(String, DateTime<Utc>)> =
        (0..6).map(|i| (format!("f{i}"), t0 + Minutes::milliseconds(i))).collect();
    let crowd = Crowd { apis: &[&stack.fan], clock: &clock, event: &event };
    crowd.follow(&joins, t0 + Minutes::seconds(10)).await;
    // Ten more join, and `d` behind them, waits.
    clock.set(t0 + Minutes::seconds(10));
    for i in 0..10 {
        stack.enter(&event, &format!("g{i}")).await;
    }
    clock.set(t0 + Minutes::milliseconds(10_150));
    let before = body_json(&stack.enter(&event, "d").await);
    let ticket = before["ticket"].as_str().unwrap().to_owned();
    let meta = format!("{}:ev:{{{event}}}", stack.prefix);
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let seed: String = redis::cmd("HGET").arg(&meta).arg("lineSeed").query_async(&mut redis).await.unwrap();
    let served: i64 = redis::cmd("HGET").arg(&meta).arg("lineServed").query_async(&mut redis).await.unwrap();
    // The gate loses its state (as after a failover to an empty replica).
    let gate_keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:*", stack.prefix)).query_async(&mut redis).await.unwrap();
    let _: () = redis::cmd("DEL").arg(&gate_keys).query_async(&mut redis).await.unwrap();
    let patience = Patience { restore_settle: Duration::from_secs(5), sweep_after: Duration::from_secs(300) };
    let lost = t0 + Minutes::seconds(11);
    let first = stack.housekeeping(lost, patience).await;
    assert!(first.deferred && first.restored.is_none(), "settling first: {first:?}");
    // Meanwhile nobody is admitted: the fan is told to wait (from the
    // environment's copy) or to retry.
    clock.set(lost);
    let meanwhile = stack.enter_with(&event, "d", Some(&ticket)).await;
    assert!(matches!(meanwhile.status().as_u16(), 203 | 503), "{}", body_json(&meanwhile));
    stack.drain().await;
    let restored = stack.housekeeping(lost + Minutes::seconds(6), patience).await;
    assert!(restored.restored.is_some(), "{restored:?}");
    let after_seed: String = redis::cmd("HGET").arg(&meta).arg("lineSeed").query_async(&mut redis).await.unwrap();
    assert_eq!(after_seed, seed, "the seed comes back from PostgreSQL");
    // The environment's next sync brings the served mark back, and the
    // fan's ticket still holds its place.
    clock.set(lost + Minutes::seconds(7));
    let r = stack.enter_with(&event, "d", Some(&ticket)).await;
    assert!(matches!(r.status().as_u16(), 202 | 203), "{}", body_json(&r));
    let back: i64 = redis::cmd("HGET").arg(&meta).arg("lineServed").query_async(&mut redis).await.unwrap();
    assert!(back >= served, "the served mark as the environments saw it: {served} then {back}");
    if r.status() == 203 {
        let after = body_json(&r);
        // The same place (a grant the loss took is granted again: the
        // position may count that fan once more).
        assert_eq!(place_of(&event, "d", &after), place_of(&event, "d", &before), "{after}");
    }
    let heard = crowd.follow(&[("d".to_owned(), lost + Minutes::seconds(8))], lost + Minutes::seconds(30)).await;
    let last = heard["d"].last().unwrap();
    assert!(matches!(last.status, 200 | 202), "admitted after the restore: {:?}", heard["d"]);
}

#[tokio::test]
async fn a_rotated_key_keeps_fans_waiting_and_moves_them_onto_the_new_key() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let event = stack.lined_event(100, 1, 0, t0 - Minutes::minutes(1), t0 + Minutes::hours(1)).await;
    for fan in ["a", "b", "c", "d", "e", "f"] {
        stack.enter(&event, fan).await;
    }
    clock.set(t0 + Minutes::milliseconds(150));
    let old = body_json(&stack.enter(&event, "w").await)["ticket"].as_str().unwrap().to_owned();
    let rotated = TicketKeyring::new(
        SecretSource::Plain(Secret::new("the-new-key")),
        SecretSource::Plain(Secret::new(TICKET_KEY)),
    );
    let after = FanApi::new(gate(&redis_url(), &stack.prefix), stack.queue(), AuthMode::Dev, 1)
        .with_line(rotated, LINE_SYNC, RateLimit::OFF)
        .with_clock(clock.clone());
    let r = post(&after, &event, "w", Some(&old)).await;
    assert_eq!(r.status(), 203, "{}", body_json(&r));
    let renewed = body_json(&r)["ticket"].as_str().unwrap().to_owned();
    let new_keys = TicketKeys::new(b"the-new-key", None);
    assert!(Ticket::verify(&renewed, &new_keys, &event, "w", clock_now(&clock)).is_ok(), "signed with the new key");
}

/// JWT `sub`s as identity providers issue them (RFC 7519: a StringOrURI).
const SUBJECTS: [(&str, &str); 7] = [
    ("cognito", "6f1b2a54-3c0d-4e6a-9f1e-2b7c8d9e0f11"),
    ("auth0", "auth0|5f7c8ec7c33c6c004bbafe82"),
    ("google via auth0", "google-oauth2|110169484474386276334"),
    ("google", "110169484474386276334"),
    ("okta", "00u1abcd2EFGH3ijk4x7"),
    ("entra id", "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ"),
    ("uri", "https://idp.example/users/42?tenant=a b"),
];

#[tokio::test]
async fn every_identity_providers_subject_enters_and_is_stored_exactly() {
    let stack = Stack::new().await;
    let fan = fan_api(gate(&redis_url(), &stack.prefix), stack.queue(), AuthMode::Authorizer);
    let plain = stack.open_event(100).await;
    let lined =
        stack.lined_event(100, 1_000, 0, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
    for (provider, sub) in SUBJECTS {
        for event in [&plain, &lined] {
            let auth = json!({ "jwt": { "claims": { "sub": sub }, "scopes": null } });
            let mut ticket: Option<String> = None;
            let status = loop {
                let mut headers = vec![];
                if let Some(t) = &ticket {
                    headers.push(("x-fanrush-ticket", t.as_str()));
                }
                let r = fan
                    .handle(request_with(
                        "POST",
                        &format!("/events/{event}/entries"),
                        &headers,
                        None,
                        Some(auth.clone()),
                    ))
                    .await;
                if r.status() != WAITING {
                    break r.status().as_u16();
                }
                ticket = body_json(&r)["ticket"].as_str().map(str::to_owned);
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            assert_eq!(status, 202, "{provider}: {sub}");
        }
    }
    stack.drain().await;
    for event in [&plain, &lined] {
        let mut stored: Vec<String> = stack.rows(event).await.into_iter().map(|(f, _)| f).collect();
        let mut expected: Vec<String> = SUBJECTS.iter().map(|(_, s)| s.to_string()).collect();
        stored.sort();
        expected.sort();
        assert_eq!(stored, expected, "each fan's row holds its exact sub");
    }
}

#[tokio::test]
async fn every_environment_counts_the_fans_the_others_gave_places_within_a_sync() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let opens = t0 - Minutes::seconds(5);
    let event = stack.lined_event(1_000, 20, 0, opens, opens + Minutes::hours(1)).await;
    let other = environment(&stack, &clock);
    // Seventy fans join here; none of them comes back.
    for i in 0..70 {
        clock.set(t0 + Minutes::milliseconds(i));
        stack.enter(&event, &format!("a{i:02}")).await;
    }
    // This environment's next request, a sync later, counts them at the
    // gate, and a fan in another environment counts all seventy ahead.
    clock.set(t0 + Minutes::seconds(2));
    stack.enter(&event, "a-next").await;
    clock.set(t0 + Minutes::milliseconds(2_100));
    let r = post(&other, &event, "b", None).await;
    let b = body_json(&r);
    assert_eq!(r.status(), 203, "{b}");
    // Less the served places: the door took some of them in already.
    let served = b["placesLeft"].as_i64().map(|left| 1_000 - left).unwrap();
    assert!(b["position"].as_i64().unwrap() + served > 70, "seventy joined elsewhere: {b}");
}

#[tokio::test]
async fn a_line_that_opened_a_day_ago_answers_a_join_as_fast_as_one_that_just_opened() {
    let now = second(Utc::now());
    let (stack, clock) = stack_at(now).await;
    let old = stack.lined_event(1_000_000, 100, 0, now - Minutes::hours(24), now + Minutes::hours(1)).await;
    let fresh = stack.lined_event(1_000_000, 100, 0, now - Minutes::seconds(1), now + Minutes::hours(1)).await;
    // The day-old line served fans all day: counts reach back a day, and
    // the served mark stands where the fans are now.
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let day_buckets = 24 * 3_600 * 10;
    for bucket in [0, day_buckets / 2, day_buckets - 50] {
        let _: () = redis::cmd("BITFIELD")
            .arg(format!("{}:ev:{{{old}}}:line", stack.prefix))
            .arg(&["INCRBY", "u32", &format!("#{}", bucket + 1), "3"][..])
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    let served = ((day_buckets - 60) as i64) << 24;
    let _: () = redis::cmd("HSET")
        .arg(format!("{}:ev:{{{old}}}", stack.prefix))
        .arg(&["lineServed", &served.to_string()][..])
        .query_async(&mut redis)
        .await
        .unwrap();
    // Joins at both, interleaved so both meet the same machine, each on a
    // fresh environment (the first join learns the line: its heaviest).
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for i in 0..40 {
        for event in [&old, &fresh] {
            let api = environment(&stack, &clock);
            clock.set(now + Minutes::milliseconds(i));
            let started = std::time::Instant::now();
            let r = post(&api, event, &format!("fan-{i}"), None).await;
            let took = started.elapsed().as_secs_f64();
            assert!(matches!(r.status().as_u16(), 202 | 203), "{}", body_json(&r));
            times.entry(event.as_str()).or_default().push(took);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (o, f) = (median(times.get_mut(old.as_str()).unwrap()), median(times.get_mut(fresh.as_str()).unwrap()));
    assert!(o <= 2.0 * f, "a day-old line's join took {:.2} ms, a fresh one's {:.2} ms", o * 1e3, f * 1e3);
}

/// The receipt key every test environment here signs with.
const RECEIPT_KEY: &str = "test-receipt-key";

#[tokio::test]
async fn the_draw_is_committed_before_the_prequeue_revealed_after_and_every_place_and_receipt_checks() {
    use fanrush::rules::line::draw::{fan_ref, hex, Reveal, RevealRow};
    use fanrush::rules::line::receipt::{PublishedKey, Receipt};
    use fanrush::usecases::entrance::ReceiptKeyring;
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let receipts = || {
        ReceiptKeyring::new(SecretSource::Plain(Secret::new(RECEIPT_KEY)), SecretSource::None, Duration::from_secs(300))
    };
    let api = environment(&stack, &clock).with_receipts(receipts());
    let other = environment(&stack, &clock).with_receipts(receipts());
    let opens = t0 + Minutes::seconds(60);
    let event = stack.lined_event(100, 40, 10, opens, opens + Minutes::hours(1)).await;
    let unlined = stack.lined_event(100, 40, 0, opens, opens + Minutes::hours(1)).await;
    // The commitment is public from the definition on, before anyone joins;
    // a line without a pre-queue has no draw.
    let view = |id: String| {
        let api = &api;
        async move { body_json(&api.handle(request("GET", &format!("/events/{id}"), &[], None)).await) }
    };
    let committed = view(event.clone()).await["drawCommitment"].as_str().expect("a commitment").to_owned();
    assert_eq!(committed.len(), 64, "{committed}");
    assert!(view(unlined.clone()).await.get("drawCommitment").is_none());
    // An update of the event keeps its seed, so its commitment.
    let body = json!({ "title": "Renamed drop", "opensAt": opens.to_rfc3339(), "closesAt": (opens + Minutes::hours(1)).to_rfc3339(),
                       "capacity": 100, "expectedPeakRps": 1000, "admissionsPerSecond": 40, "prequeueMinutes": 10 });
    let r = stack.admin.handle(request("PUT", &format!("/admin/events/{event}"), &[], Some(&body.to_string()))).await;
    assert_eq!(r.status(), 200, "{}", body_json(&r));
    assert_eq!(view(event.clone()).await["drawCommitment"].as_str(), Some(committed.as_str()));
    // The admin API shows it, takes it back unchanged, and refuses another by name.
    let got = body_json(&stack.admin.handle(request("GET", &format!("/admin/events/{event}"), &[], None)).await);
    assert_eq!(got["drawCommitment"].as_str(), Some(committed.as_str()), "{got}");
    let mut same = body.clone();
    same["drawCommitment"] = got["drawCommitment"].clone();
    let r = stack.admin.handle(request("PUT", &format!("/admin/events/{event}"), &[], Some(&same.to_string()))).await;
    assert_eq!(r.status(), 200, "{}", body_json(&r));
    let mut changed = body.clone();
    changed["drawCommitment"] = json!(fanrush::rules::line::draw::commitment("a seed of my choosing"));
    let r =
        stack.admin.handle(request("PUT", &format!("/admin/events/{event}"), &[], Some(&changed.to_string()))).await;
    assert_eq!((r.status().as_u16(), body_json(&r)["field"].clone()), (400, json!("drawCommitment")));
    assert_eq!(view(event.clone()).await["drawCommitment"].as_str(), Some(committed.as_str()));

    let pre: Vec<String> = (0..12).map(|i| format!("pre-{i:02}")).collect();
    let mut joins: Vec<(String, DateTime<Utc>)> =
        pre.iter().enumerate().map(|(i, f)| (f.clone(), t0 + Minutes::milliseconds(300 * i as i64))).collect();
    joins.extend((0..3).map(|i| (format!("late-{i}"), opens + Minutes::milliseconds(300 + i))));
    let heard = Crowd { apis: &[&api, &other], clock: &clock, event: &event }
        .follow(&joins, opens + Minutes::seconds(20))
        .await;

    // Not revealed before its time.
    let get_draw = |from: u64| {
        let admin = &stack.admin;
        let event = event.clone();
        async move { admin.handle(request("GET", &format!("/draws/{event}?from={from}&limit=5"), &[], None)).await }
    };
    assert_error(&get_draw(0).await, 404, "draw_not_revealed");
    let unlined_draw = stack.admin.handle(request("GET", &format!("/draws/{unlined}"), &[], None)).await;
    assert_error(&unlined_draw, 404, "no_draw");
    let events = stack.db.events().await.unwrap();
    let too_soon = reveal_due(&stack.gate, &stack.db, &events, opens + Minutes::seconds(30), Duration::from_secs(60));
    assert_eq!(
        too_soon.await.unwrap(),
        Default::default(),
        "revealed only once every environment counted its pre-queue"
    );
    let revealed = reveal_due(&stack.gate, &stack.db, &events, opens + Minutes::seconds(61), Duration::from_secs(60));
    assert_eq!(revealed.await.unwrap().revealed.len(), 1);
    let again = reveal_due(&stack.gate, &stack.db, &events, opens + Minutes::seconds(62), Duration::from_secs(60));
    assert_eq!(again.await.unwrap(), Default::default(), "revealed once");

    // The reveal, page by page, checks against the commitment seen before.
    let mut fans: Vec<RevealRow> = Vec::new();
    let (mut from, mut first) = (0, None);
    loop {
        let r = get_draw(from).await;
        assert_eq!(r.status(), 200);
        let page = body_json(&r);
        fans.extend(serde_json::from_value::<Vec<RevealRow>>(page["fans"].clone()).unwrap());
        first.get_or_insert(page.clone());
        match page["next"].as_u64() {
            Some(n) => from = n,
            None => break,
        }
    }
    let first = first.unwrap();
    assert_eq!(first["prequeued"], json!(12), "{first}");
    let reveal = Reveal {
        event_id: event.clone(),
        commitment: first["commitment"].as_str().unwrap().into(),
        seed: first["seed"].as_str().unwrap().into(),
        digest: first["digest"].as_str().unwrap().into(),
        fans,
    };
    let sealed = view(event.clone()).await["drawDigest"].as_str().expect("the sealed draw's digest").to_owned();
    assert_eq!(reveal.check(&event, &committed, Some(&sealed)), Ok(()));
    let mut swapped = reveal.clone();
    (swapped.fans[0].fan, swapped.fans[1].fan) = (reveal.fans[1].fan.clone(), reveal.fans[0].fan.clone());
    assert!(swapped.check(&event, &committed, Some(&sealed)).is_err(), "a list with two fans swapped fails");

    // Each pre-queued fan finds its row, and the pre-queue was admitted in
    // the draw's order; the later fans are not in it.
    stack.drain().await;
    let rows = stack.rows(&event).await;
    let position = |fan: &str| rows.iter().find(|(f, _)| f == fan).map(|(_, p)| *p).unwrap();
    let seed = reveal.seed.as_bytes();
    let mut by_index: Vec<(u64, i64)> = pre
        .iter()
        .map(|f| (reveal.row_of(&fan_ref(seed, &event, f)).expect("in the draw").index, position(f)))
        .collect();
    by_index.sort();
    assert!(by_index.windows(2).all(|w| w[0].1 < w[1].1), "admitted in the draw's order: {by_index:?}");
    for i in 0..3 {
        assert!(reveal.row_of(&fan_ref(seed, &event, &format!("late-{i}"))).is_none());
    }

    // Every admitted fan's answer carries a receipt that checks with the
    // published keys, names the fan by its reference, and for a pre-queued
    // fan the key of its row; its own entry carries the same.
    let keys = body_json(&api.handle(request("GET", "/receipt-keys", &[], None)).await);
    let keys: Vec<PublishedKey> = serde_json::from_value(keys["keys"].clone()).unwrap();
    for (fan, answers) in &heard {
        let admitted = answers.iter().find(|h| h.status == 202).unwrap_or_else(|| panic!("{fan}: {answers:?}"));
        let receipt: Receipt = serde_json::from_value(admitted.body["receipt"].clone()).unwrap();
        assert_eq!(receipt.verify(&keys), Ok(()), "{fan}");
        assert_eq!(receipt.claims.fan, hex(&fan_ref(seed, &event, fan)), "{fan}");
        assert_eq!(receipt.claims.position, position(fan), "{fan}");
        let row = reveal.fans.iter().find(|r| Some(&r.key) == receipt.claims.draw_key.as_ref());
        assert_eq!(row.is_some(), fan.starts_with("pre-"), "{fan}: {receipt:?}");
        let mine = body_json(
            &other.handle(request("GET", &format!("/events/{event}/entries/me"), &[("x-fan-id", fan)], None)).await,
        );
        let again: Receipt =
            serde_json::from_value(mine["receipt"].clone()).unwrap_or_else(|e| panic!("{fan}: {e}: {mine}"));
        assert_eq!((again.verify(&keys), &again.claims), (Ok(()), &receipt.claims), "{fan}");
    }
    // Edited to another place, it fails.
    let mut edited: Receipt = serde_json::from_value(heard[&pre[5]].last().unwrap().body["receipt"].clone()).unwrap();
    edited.claims.position += 1;
    assert!(edited.verify(&keys).is_err());
}

#[tokio::test]
async fn a_draw_whose_line_was_restored_after_its_prequeue_opened_is_withheld_not_published() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let opens = t0 + Minutes::seconds(60);
    let event = stack.lined_event(100, 40, 10, opens, opens + Minutes::hours(1)).await;
    for i in 0..5 {
        stack.enter(&event, &format!("pre-{i}")).await;
    }
    clock.set(t0 + Minutes::seconds(2));
    stack.enter(&event, "pre-5").await;
    // The gate loses its state (a flush, a failover's last writes) and is
    // restored: who was counted in the pre-queue may be gone.
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let gate_keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:*", stack.prefix)).query_async(&mut redis).await.unwrap();
    let _: () = redis::cmd("DEL").arg(&gate_keys).query_async(&mut redis).await.unwrap();
    let patience = Patience { restore_settle: Duration::ZERO, sweep_after: Duration::from_secs(300) };
    let mut restored = false;
    for s in 3..6 {
        restored |= stack.housekeeping(t0 + Minutes::seconds(s), patience).await.restored.is_some();
    }
    assert!(restored, "the gate was restored");
    let events = stack.db.events().await.unwrap();
    let r = reveal_due(&stack.gate, &stack.db, &events, opens + Minutes::seconds(61), Duration::from_secs(60));
    let r = r.await.unwrap();
    let withheld = vec![(EventId::parse(&event).unwrap(), Withheld::RestoredSincePrequeue)];
    assert_eq!((r.revealed, r.withheld), (vec![], withheld));
    let draw = stack.admin.handle(request("GET", &format!("/draws/{event}"), &[], None)).await;
    assert_error(&draw, 404, "draw_not_revealed");
}

#[tokio::test]
async fn a_draw_whose_gate_holds_another_seed_than_the_committed_one_is_withheld() {
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let opens = t0 + Minutes::seconds(60);
    let event = stack.lined_event(100, 40, 10, opens, opens + Minutes::hours(1)).await;
    let other = stack.lined_event(100, 40, 10, opens, opens + Minutes::hours(1)).await;
    for i in 0..3 {
        stack.enter(&event, &format!("pre-{i}")).await;
        stack.enter(&other, &format!("pre-{i}")).await;
    }
    clock.set(t0 + Minutes::seconds(2));
    stack.enter(&event, "pre-3").await;
    stack.enter(&other, "pre-3").await;
    // A later request's sync carries the last join to the gate.
    clock.set(t0 + Minutes::seconds(3));
    stack.enter(&other, "pre-3").await;
    // The gate's seed of one event is no longer the stored one.
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let meta = format!("{}:ev:{{{event}}}", stack.prefix);
    let _: () = redis::cmd("HSET")
        .arg(&meta)
        .arg("lineSeed")
        .arg("not-the-committed-seed")
        .query_async(&mut redis)
        .await
        .unwrap();
    let events = stack.db.events().await.unwrap();
    let r = reveal_due(&stack.gate, &stack.db, &events, opens + Minutes::seconds(61), Duration::from_secs(60));
    let r = r.await.unwrap();
    // That draw is withheld; the other event's is revealed all the same.
    assert_eq!(r.withheld, vec![(EventId::parse(&event).unwrap(), Withheld::SeedMismatch)]);
    assert_eq!(r.revealed, vec![(EventId::parse(&other).unwrap(), 4)]);
}

/// The draw takes only the fans the gate counted in it before it was
/// sealed: a fan who joined after it closed, and a pre-queued fan whose
/// environment's count reached the gate only after the seal (lost in
/// flight, retried), are not in the published draw and are admitted
/// behind every fan who is, even when an environment that never heard of
/// the late count calls the gate with the fan's ticket.
#[tokio::test]
async fn only_the_fans_counted_before_the_seal_are_drawn_and_every_other_waits_behind_them() {
    use fanrush::adapters::redis_gate::{CountedFan, LineSync, LineSyncRequest};
    use fanrush::rules::line::draw::{closes_at, digest, draw_key, fan_ref, sealed_at};
    use fanrush::rules::line::fan_hash;
    let t0 = second(Utc::now());
    let (stack, clock) = stack_at(t0).await;
    let busy = environment(&stack, &clock);
    let opens = t0 + Minutes::seconds(60);
    let event = stack.lined_event(100, 40, 10, opens, opens + Minutes::hours(1)).await;
    let ms = |t: DateTime<Utc>| t.timestamp_millis();
    let pre: Vec<String> = (0..5).map(|i| format!("pre-{i}")).collect();
    let mut tickets: BTreeMap<String, String> = BTreeMap::new();
    for fan in &pre {
        keep(&mut tickets, fan, post(&busy, &event, fan, None).await);
    }
    // Each join into the draw is counted in its own request.
    assert_eq!(prequeue_count(&stack, &event).await, 5);
    let seed = stack.db.line_seed(&EventId::parse(&event).unwrap()).await.unwrap().unwrap();
    clock.set(t0 + Minutes::seconds(2));
    let r = post(&busy, &event, "pre-0", tickets.get("pre-0").map(String::as_str)).await;
    let again = keep(&mut tickets, "pre-0", r);
    assert!(again["position"].is_null(), "before the opening the order is not told: {again}");
    // After the close, before the opening: the opening's first bucket.
    let closed = DateTime::from_timestamp_millis(closes_at(ms(opens))).unwrap();
    clock.set(closed + Minutes::seconds(1));
    let b = keep(&mut tickets, "after-close", post(&busy, &event, "after-close", None).await);
    assert!(matches!(place_of(&event, "after-close", &b), Place::Arrival { at_ms, .. } if at_ms == ms(opens)), "{b}");
    // No digest before the seal; the first request after it seals the draw.
    let view = || async { body_json(&busy.handle(request("GET", &format!("/events/{event}"), &[], None)).await) };
    assert!(view().await.get("drawDigest").is_none());
    let seal = DateTime::from_timestamp_millis(sealed_at(ms(opens))).unwrap();
    clock.set(seal + Minutes::seconds(1));
    let r = post(&busy, &event, "pre-1", tickets.get("pre-1").map(String::as_str)).await;
    keep(&mut tickets, "pre-1", r);
    let sealed = view().await["drawDigest"].as_str().expect("sealed before the opening").to_owned();
    // "slow" joined before the close too, but its environment's count was
    // lost on the way: it holds a ticket to a place still drawing, whose
    // key in the sealed draw (chosen so) is ahead of every drawn fan's.
    let key = |fan: &str| draw_key(seed.as_bytes(), &event, &sealed, &fan_ref(seed.as_bytes(), &event, fan));
    let first = pre.iter().map(|f| key(f)).min().unwrap();
    let slow = (0..1_000).map(|i| format!("slow-{i}")).find(|f| key(f) < first).unwrap();
    let ticket =
        Ticket { place: Place::Drawing { fan: fan_ref(seed.as_bytes(), &event, &slow) }, issued_at_s: t0.timestamp() };
    tickets.insert(slow.clone(), ticket.encode(&keys(), &event, &slow));
    // Its count arrives now, retried: the gate counts it at the opening's
    // first bucket, not in the sealed draw, and says so.
    let late = LineSyncRequest {
        fans: vec![CountedFan { hash: fan_hash(seed.as_bytes(), &event, &slow), bucket: None }],
        ..Default::default()
    };
    let id = EventId::parse(&event).unwrap();
    match stack.gate.sync_line(&id, seal + Minutes::seconds(2), &late).await.unwrap() {
        LineSync::Lined(status) => assert_eq!(status.duplicates, vec![(0, Some(0))]),
        other => panic!("{other:?}"),
    }
    let refs: Vec<_> = pre.iter().map(|f| fan_ref(seed.as_bytes(), &event, f)).collect();
    assert_eq!(sealed, digest(&refs), "the digest of the five fans counted before the seal, in the order counted");

    // Everyone follows the line through the busy environment, which holds
    // "slow"'s ticket as a pre-queued place: the gate's door puts it back.
    let mut fans: Vec<String> = pre.clone();
    fans.extend([slow.clone(), "after-close".to_owned()]);
    let mut t = opens - Minutes::seconds(6);
    let mut admitted: BTreeMap<String, i64> = BTreeMap::new();
    while admitted.len() < fans.len() {
        assert!(t < opens + Minutes::seconds(30), "still waiting: {admitted:?}");
        clock.set(t);
        for fan in fans.iter().filter(|f| !admitted.contains_key(*f)).cloned().collect::<Vec<_>>() {
            let r = post(&busy, &event, &fan, tickets.get(&fan).map(String::as_str)).await;
            let status = r.status().as_u16();
            let b = keep(&mut tickets, &fan, r);
            if status == 202 || status == 200 {
                admitted.insert(fan, b["position"].as_i64().unwrap());
            }
        }
        t += Minutes::milliseconds(250);
    }
    let last_drawn = pre.iter().map(|f| admitted[f]).max().unwrap();
    assert!(admitted[&slow] > last_drawn && admitted["after-close"] > last_drawn, "{admitted:?}");

    // The published draw is the five, and checks against the sealed digest.
    let events = stack.db.events().await.unwrap();
    let r = reveal_due(&stack.gate, &stack.db, &events, opens + Minutes::seconds(61), Duration::from_secs(60));
    assert_eq!(r.await.unwrap().revealed, vec![(EventId::parse(&event).unwrap(), 5)]);
    let (reveal, _) =
        fanrush::usecases::draws::reveal(&stack.db, &EventId::parse(&event).unwrap()).await.unwrap().expect("revealed");
    let committed = view().await["drawCommitment"].as_str().unwrap().to_owned();
    assert_eq!(reveal.check(&event, &committed, Some(&sealed)), Ok(()));
    for fan in [slow.as_str(), "after-close"] {
        assert!(reveal.row_of(&fan_ref(seed.as_bytes(), &event, fan)).is_none(), "{fan} is not in the draw");
    }
}

/// The body of an answer, keeping the ticket it carries as the fan's.
fn keep(tickets: &mut BTreeMap<String, String>, fan: &str, r: Response<Body>) -> Value {
    let b = body_json(&r);
    if let Some(t) = b["ticket"].as_str() {
        tickets.insert(fan.to_owned(), t.to_owned());
    }
    b
}
