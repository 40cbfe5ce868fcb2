//! The line in front of the gate, through the fan and admin APIs on the
//! real Redis, PostgreSQL and SQS endpoint: waiting answers with a signed
//! ticket, admission at the fan's turn and at the line's pace, the
//! pre-queue's shuffle, sold out without the gate, tickets bound to their
//! fan and event, a restore that keeps the line's seed and pauses it, and
//! identity providers' subjects stored exactly.

use crate::common::*;
use chrono::{Duration as Minutes, Utc};
use fanrush::adapters::redis_gate::{Admission, EntryGate, IssuedTickets, LineCall, LineRefresh, SeedWrite};
use fanrush::adapters::secrets::{Secret, SecretSource};
use fanrush::rules::domain::{EventId, FanId};
use fanrush::rules::line::{Place, Ticket, TicketKeys};
use fanrush::usecases::api::{AuthMode, TicketKeyring, WAITING};
use fanrush::usecases::recovery::Patience;
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A fan following the line's protocol: join, then repeat the POST with its
/// ticket when told, until a final answer. Returns it, the waiting answers
/// on the way, and when the final one came.
async fn follow(stack: &Stack, event: &str, fan: &str, limit: Duration) -> (Response<Body>, Vec<Value>, Instant) {
    follow_from(stack, event, fan, None, limit).await
}

/// [`follow`] for a fan that already holds a ticket and was told to come
/// back at `wake`.
async fn follow_from(
    stack: &Stack,
    event: &str,
    fan: &str,
    held: Option<(String, Instant)>,
    limit: Duration,
) -> (Response<Body>, Vec<Value>, Instant) {
    let started = Instant::now();
    let mut waits = Vec::new();
    let mut ticket = None;
    if let Some((t, wake)) = held {
        tokio::time::sleep_until(wake.into()).await;
        ticket = Some(t);
    }
    loop {
        let r = stack.enter_with(event, fan, ticket.as_deref()).await;
        if r.status() != WAITING {
            return (r, waits, Instant::now());
        }
        let body = body_json(&r);
        assert_eq!(body["status"], "waiting", "{body}");
        ticket = Some(body["ticket"].as_str().expect("a ticket").to_owned());
        let wait = Duration::from_millis(body["retryAfterMs"].as_u64().expect("retryAfterMs"));
        waits.push(body);
        assert!(started.elapsed() < limit, "{fan} still waiting after {limit:?}: {:?}", waits.last());
        tokio::time::sleep(wait.min(Duration::from_secs(2))).await;
    }
}

/// Spearman's rank correlation of two samples without ties.
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let ranks = |v: &[f64]| {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        for (rank, i) in order.into_iter().enumerate() {
            r[i] = rank as f64;
        }
        r
    };
    let (ra, rb, n) = (ranks(a), ranks(b), a.len() as f64);
    let d2: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - y).powi(2)).sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

fn keys() -> TicketKeys {
    TicketKeys::new(TICKET_KEY.as_bytes(), None)
}

#[tokio::test]
async fn fans_wait_with_a_ticket_and_are_admitted_at_their_turn_at_the_lines_pace() {
    let stack = Stack::new().await;
    let rate = 10;
    let event = stack.lined_event(100, rate, 0, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
    let fans: Vec<String> = (0..30).map(|i| format!("fan-{i:02}")).collect();
    let runs = futures::future::join_all(fans.iter().map(|f| follow(&stack, &event, f, Duration::from_secs(20)))).await;
    let mut waited = 0;
    for (fan, (r, waits, _)) in fans.iter().zip(&runs) {
        assert_eq!(r.status(), 202, "{fan}: {}", body_json(r));
        assert_eq!(body_json(r)["status"], "accepted");
        for w in waits {
            for field in ["position", "ahead", "etaSeconds"] {
                assert!(w[field].is_u64(), "{fan}: {field} must be a number after the opening: {w}");
            }
            assert_eq!(w["fanId"], fan.as_str());
            assert_eq!(w["eventId"], event.as_str());
        }
        waited += usize::from(!waits.is_empty());
    }
    assert!(waited >= 20, "30 fans at 10 a second: most of them wait ({waited})");
    assert_eq!(stack.drain().await, 30);
    // The gate's own clock: no second of admissions above 1.1 x the rate.
    let id = EventId::parse(&event).unwrap();
    let mut at: Vec<i64> =
        stack.db.entries(&id).await.unwrap().iter().map(|e| e.accepted_at.timestamp_millis()).collect();
    at.sort();
    let busiest = (0..at.len()).map(|i| at[i..].iter().take_while(|t| **t < at[i] + 1000).count()).max().unwrap();
    assert!(busiest as f64 <= 1.1 * rate as f64, "{busiest} admissions in one second at a rate of {rate}");
}

#[tokio::test]
async fn a_waiting_answer_is_203_with_a_signed_ticket_position_eta_and_retry_after() {
    let stack = Stack::new().await;
    let event = stack.lined_event(100, 1, 0, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
    for fan in ["a", "b", "c", "d"] {
        stack.enter(&event, fan).await;
    }
    // A bucket later than theirs: behind all four.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let r = stack.enter(&event, "e").await;
    assert_eq!(r.status(), 203, "{}", body_json(&r));
    let body = body_json(&r);
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    assert_eq!(r.headers()["x-fanrush-ticket"], ticket.as_str());
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=31).contains(&retry), "{retry}");
    assert!(body["position"].as_u64().unwrap() >= 5 && body["ahead"].as_u64().unwrap() >= 2, "{body}");
    assert!(body["etaSeconds"].as_u64().unwrap() >= 1, "{body}");
    let verified = Ticket::verify(&ticket, &keys(), &event, "e", Utc::now().timestamp()).expect("signed for e");
    assert!(matches!(verified.place, Place::Arrival { .. }));
    // Polling with it keeps the place, and the line only moves forward.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = body_json(&stack.enter_with(&event, "e", Some(&ticket)).await);
    assert_eq!(again["position"], body["position"], "{again}");
    assert!(again["ahead"].as_u64() <= body["ahead"].as_u64(), "{body} then {again}");
    let renewed =
        Ticket::verify(again["ticket"].as_str().unwrap(), &keys(), &event, "e", Utc::now().timestamp()).unwrap();
    assert_eq!(renewed.place, verified.place);
}

#[tokio::test]
async fn a_fans_place_is_when_its_request_reached_api_gateway_not_when_it_was_handled() {
    let stack = Stack::new().await;
    let event = stack.lined_event(100, 1, 0, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
    let place = |b: &Value, fan: &str| {
        Ticket::verify(b["ticket"].as_str().unwrap(), &keys(), &event, fan, Utc::now().timestamp()).unwrap().place
    };
    // At one a second: the first is let in, nine wait ahead of everyone
    // below for nine seconds.
    let started = Utc::now().timestamp_millis();
    for i in 0..10 {
        stack.enter(&event, &format!("early-{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let path = format!("/events/{event}/entries");
    let received_at = |fan: &str, received_ms: i64| {
        stack.fan.handle(request_received_at("POST", &path, &[("x-fan-id", fan)], received_ms))
    };
    // `prompt` is handled at once; `slow` reached API Gateway half a second
    // before it but is handled after it (a cold start, a busy environment).
    let prompt = body_json(&stack.enter(&event, "prompt").await);
    let slow = body_json(&received_at("slow", started + 500).await);
    assert!(place(&slow, "slow") < place(&prompt, "prompt"), "{slow} {prompt}");
    match place(&slow, "slow") {
        Place::Arrival { at_ms, .. } => {
            assert!((started + 401..=started + 500).contains(&at_ms), "the receipt's bucket: {}", at_ms - started)
        }
        other => panic!("{other:?}"),
    }
    // A receipt time from the future counts as now: the bucket of the
    // moment it was handled (so prompt's or a later one; the same bucket's
    // order is the shuffle's).
    let before = Utc::now().timestamp_millis();
    let skewed = body_json(&received_at("skewed", before + 60_000).await);
    let after = Utc::now().timestamp_millis();
    match place(&skewed, "skewed") {
        Place::Arrival { at_ms, .. } => {
            assert!((before - 99..=after).contains(&at_ms), "the handler's bucket: {} ms before", before - at_ms)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_ticket_is_bound_to_its_fan_and_event_and_a_bad_one_admits_no_one() {
    let stack = Stack::new().await;
    let event = stack.lined_event(100, 1, 0, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
    let other = stack.lined_event(100, 1, 0, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
    for fan in ["a", "b", "c"] {
        stack.enter(&event, fan).await;
    }
    // A bucket after theirs (within one, the shuffle could put mallory
    // first): behind all three, at one a second, so it waits.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let first = stack.enter(&event, "mallory").await;
    let mine = body_json(&first)["ticket"].as_str().unwrap_or_else(|| panic!("{}", body_json(&first))).to_owned();
    assert_error(&stack.enter_with(&event, "trudy", Some(&mine)).await, 403, "invalid_ticket");
    assert_error(&stack.enter_with(&other, "mallory", Some(&mine)).await, 403, "invalid_ticket");
    // An earlier place, forged with another key, or written by hand.
    let forged = Ticket { place: Place::Arrival { at_ms: 0, shuffle: 0 }, issued_at_s: Utc::now().timestamp() };
    let forged = forged.encode(&TicketKeys::new(b"not-the-key", None), &event, "mallory");
    assert_error(&stack.enter_with(&event, "mallory", Some(&forged)).await, 403, "invalid_ticket");
    let mut tampered = mine.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let r = stack.enter_with(&event, "mallory", Some(&tampered)).await;
    assert!(matches!(r.status().as_u16(), 400 | 403), "{}", body_json(&r));
    assert_error(&stack.enter_with(&event, "mallory", Some("hello")).await, 400, "invalid_ticket");
    let old = Ticket { place: Place::Arrival { at_ms: 0, shuffle: 0 }, issued_at_s: Utc::now().timestamp() - 3_600 };
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
async fn the_prequeue_is_shuffled_and_every_prequeued_fan_is_ahead_of_every_later_one() {
    let stack = Stack::new().await;
    let opens = Utc::now() + Minutes::milliseconds(2_500);
    let event = stack.lined_event(100, 40, 10, opens, opens + Minutes::hours(1)).await;
    // Before the pre-queue: not open.
    let early = stack.lined_event(100, 40, 1, Utc::now() + Minutes::minutes(5), Utc::now() + Minutes::hours(1)).await;
    assert_error(&stack.enter(&early, "eager").await, 403, "event_not_open");

    let pre: Vec<String> = (0..20).map(|i| format!("pre-{i:02}")).collect();
    let mut tickets = Vec::new();
    let mut wakes = Vec::new();
    for fan in &pre {
        let r = stack.enter(&event, fan).await;
        wakes.push(Instant::now() + Duration::from_millis(body_json(&r)["retryAfterMs"].as_u64().unwrap()));
        assert_eq!(r.status(), 203, "{}", body_json(&r));
        let b = body_json(&r);
        assert!(
            b["position"].is_null() && b["ahead"].is_null() && b["etaSeconds"].is_null(),
            "before the shuffle: {b}"
        );
        assert!((1..=3).contains(&b["opensInSeconds"].as_u64().unwrap()), "{b}");
        tickets.push(b["ticket"].as_str().unwrap().to_owned());
    }
    // Joining again without the ticket, before the opening, draws the same place.
    let again = body_json(&stack.enter(&event, &pre[3]).await);
    let place = |t: &str, fan: &str| Ticket::verify(t, &keys(), &event, fan, Utc::now().timestamp()).unwrap().place;
    assert_eq!(place(again["ticket"].as_str().unwrap(), &pre[3]), place(&tickets[3], &pre[3]));

    // Each pre-queued fan comes back when its answer said; the later fans
    // join just after the opening.
    let late: Vec<String> = (0..5).map(|i| format!("late-{i}")).collect();
    let early_fans = futures::future::join_all(
        pre.iter()
            .zip(tickets.iter().zip(&wakes))
            .map(|(f, (t, w))| follow_from(&stack, &event, f, Some((t.clone(), *w)), Duration::from_secs(20))),
    );
    let late_fans = async {
        tokio::time::sleep((opens - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(200)).await;
        futures::future::join_all(late.iter().map(|f| follow(&stack, &event, f, Duration::from_secs(20)))).await
    };
    let (mut runs, late_runs) = futures::join!(early_fans, late_fans);
    runs.extend(late_runs);
    for (fan, (r, _, _)) in pre.iter().chain(&late).zip(&runs) {
        assert_eq!(r.status(), 202, "{fan}: {}", body_json(r));
    }
    stack.drain().await;
    let rows = stack.rows(&event).await;
    let position = |fan: &str| rows.iter().find(|(f, _)| f == fan).map(|(_, p)| *p).unwrap();
    let last_pre = pre.iter().map(|f| position(f)).max().unwrap();
    let first_late = late.iter().map(|f| position(f)).min().unwrap();
    assert!(last_pre < first_late, "every pre-queued fan is admitted before every later one: {rows:?}");
    // The pre-queue was admitted in its shuffle order (fans whose turns came
    // within the same moment arrive back in any order), not in join order.
    let mut by_shuffle: Vec<(Place, i64)> = pre.iter().zip(&tickets).map(|(f, t)| (place(t, f), position(f))).collect();
    by_shuffle.sort();
    let admitted: Vec<f64> = by_shuffle.iter().map(|(_, p)| *p as f64).collect();
    let rho = spearman(&(0..admitted.len()).map(|i| i as f64).collect::<Vec<_>>(), &admitted);
    assert!(rho > 0.8, "admitted in shuffle order: rho {rho} {by_shuffle:?}");
    let joined_order: Vec<i64> = pre.iter().map(|f| position(f)).collect();
    assert_ne!(joined_order, (1..=20).collect::<Vec<i64>>(), "not first come, first served in the pre-queue");
}

#[tokio::test]
async fn once_sold_out_every_waiting_fan_is_told_so_without_a_gate_script() {
    let redis =
        fanrush_local::services::PrivateRedis::start(std::env::temp_dir().join(unique("soldout"))).await.unwrap();
    let stack = Stack::with(&redis.url(), &sqs_endpoint(), Duration::from_millis(1000)).await;
    let gate =
        EntryGate::new(&redis.url(), &stack.prefix, Duration::from_millis(200), Duration::from_millis(250)).unwrap();
    gate.mark_state_present().await.unwrap();
    let id = unique("so").replace('_', "-");
    let event = fanrush::rules::domain::FanEvent {
        id: EventId::parse(&id).unwrap(),
        title: "Two places".into(),
        opens_at: Utc::now() - Minutes::minutes(1),
        closes_at: Utc::now() + Minutes::hours(1),
        capacity: 2,
        expected_peak_rps: 10.0,
        lead_minutes: None,
        cooldown_minutes: None,
        line: Some(fanrush::rules::domain::LineSettings { admissions_per_second: 1, prequeue_minutes: 0 }),
    };
    gate.publish(&event, SeedWrite::Set("seed")).await.unwrap();
    // Twenty fans join at once; at one a second, the line lets two in.
    let mut waiting: Vec<(String, String, u64)> = Vec::new();
    for i in 0..20 {
        let fan = format!("f{i:02}");
        let r = stack.enter(&id, &fan).await;
        if r.status() == WAITING {
            let b = body_json(&r);
            waiting.push((fan, b["ticket"].as_str().unwrap().to_owned(), b["position"].as_u64().unwrap()));
        }
    }
    let mut admitted = 20 - waiting.len();
    let started = Instant::now();
    while admitted < 2 {
        assert!(started.elapsed() < Duration::from_secs(15), "two places should go within seconds");
        for (fan, ticket, _) in &waiting {
            if stack.enter_with(&id, fan, Some(ticket)).await.status() == 202 {
                admitted += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The environment learns the gate is full at its next sync.
    tokio::time::sleep(LINE_SYNC + Duration::from_millis(100)).await;
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
    // The ten furthest back are far from their turn: the environment's copy
    // answers them. (Their places, from their tickets: a position told at
    // the join counted only the fans who had joined by then.)
    let place = |fan: &str, t: &str| Ticket::verify(t, &keys(), &id, fan, Utc::now().timestamp()).unwrap().place;
    waiting.sort_by_key(|(fan, ticket, _)| place(fan, ticket));
    let before = scripts(info().await);
    for (fan, ticket, _) in waiting.iter().rev().take(10) {
        assert_error(&stack.enter_with(&id, fan, Some(ticket)).await, 409, "sold_out");
    }
    let after = scripts(info().await);
    // At most the environment's own sync (one a LINE_SYNC), never one per POST.
    assert!(after - before <= 1, "ten sold-out answers ran {} gate scripts", after - before);
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
    ] {
        let mut body = base.clone();
        body["admissionsPerSecond"] = json!(10);
        body[field] = value.clone();
        let r = stack.admin.handle(request("PUT", "/admin/events/bad-line", &[], Some(&body.to_string()))).await;
        assert_error(&r, 400, "invalid_field");
        assert_eq!(body_json(&r)["field"], field, "{field} = {value}");
    }
    let mut orphan = base.clone();
    orphan["prequeueMinutes"] = json!(5);
    let r = stack.admin.handle(request("PUT", "/admin/events/bad-line", &[], Some(&orphan.to_string()))).await;
    assert_eq!((r.status().as_u16(), body_json(&r)["field"].clone()), (400, json!("prequeueMinutes")));
}

#[tokio::test]
async fn a_restore_keeps_the_lines_seed_and_pauses_its_clock_and_tickets_still_hold() {
    let stack = Stack::new().await;
    let event = stack.lined_event(100, 1, 0, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
    for fan in ["a", "b", "c"] {
        stack.enter(&event, fan).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = body_json(&stack.enter(&event, "d").await);
    let ticket = before["ticket"].as_str().unwrap().to_owned();
    let meta = format!("{}:ev:{event}", stack.prefix);
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let seed: String = redis::cmd("HGET").arg(&meta).arg("lineSeed").query_async(&mut redis).await.unwrap();
    // The gate loses its state (a flush of these keys, as after a failover
    // to an empty replica).
    let gate_keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:*", stack.prefix)).query_async(&mut redis).await.unwrap();
    let _: () = redis::cmd("DEL").arg(&gate_keys).query_async(&mut redis).await.unwrap();
    // The restore settles past FRONT_HORIZON, so every environment's front
    // has stopped before the gate admits again; the pause starts at the loss.
    let horizon = fanrush::rules::line::FRONT_HORIZON.to_std().unwrap();
    let patience =
        Patience { restore_settle: horizon + Duration::from_millis(500), sweep_after: Duration::from_secs(300) };
    let first = stack.housekeeping(Utc::now(), patience).await;
    assert!(first.deferred && first.restored.is_none(), "settling first: {first:?}");
    // Meanwhile nobody is admitted: a fan still waiting is told to wait (from
    // the environment's last copy), one whose turn came gets 503.
    let meanwhile = stack.enter_with(&event, "d", Some(&ticket)).await;
    assert!(matches!(meanwhile.status().as_u16(), 203 | 503), "{}", body_json(&meanwhile));
    stack.drain().await;
    tokio::time::sleep(patience.restore_settle + Duration::from_millis(200)).await;
    let restored = stack.housekeeping(Utc::now(), patience).await;
    assert!(restored.restored.is_some(), "{restored:?}");
    let after_seed: String = redis::cmd("HGET").arg(&meta).arg("lineSeed").query_async(&mut redis).await.unwrap();
    assert_eq!(after_seed, seed, "the seed comes back from PostgreSQL");
    let pauses: String = redis::cmd("HGET").arg(&meta).arg("linePauses").query_async(&mut redis).await.unwrap();
    let pauses = fanrush::rules::line::Pause::parse_list(&pauses);
    assert_eq!(pauses.len(), 1, "one pause for the loss");
    assert!(pauses[0].end_ms - pauses[0].start_ms >= 300, "{pauses:?}");
    // The fan's ticket still holds its place.
    tokio::time::sleep(LINE_SYNC + Duration::from_millis(50)).await;
    let r = stack.enter_with(&event, "d", Some(&ticket)).await;
    assert!(matches!(r.status().as_u16(), 202 | 203), "{}", body_json(&r));
    if r.status() == 203 {
        // Same place; the front moved on only in the time outside the pause.
        let after = body_json(&r);
        let renewed = Ticket::verify(after["ticket"].as_str().unwrap(), &keys(), &event, "d", Utc::now().timestamp());
        let original = Ticket::verify(&ticket, &keys(), &event, "d", Utc::now().timestamp()).unwrap();
        assert_eq!(renewed.unwrap().place, original.place, "{after}");
        assert!(after["position"].as_u64() <= before["position"].as_u64(), "{before} then {after}");
    }
}

#[tokio::test]
async fn a_rotated_key_keeps_fans_waiting_and_moves_them_onto_the_new_key() {
    let stack = Stack::new().await;
    let event = stack.lined_event(100, 1, 0, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
    for fan in ["a", "b", "c"] {
        stack.enter(&event, fan).await;
    }
    // A bucket after theirs: behind all three, at one a second.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let old = body_json(&stack.enter(&event, "w").await)["ticket"].as_str().unwrap().to_owned();
    let rotated = TicketKeyring::new(
        SecretSource::Plain(Secret::new("the-new-key")),
        SecretSource::Plain(Secret::new(TICKET_KEY)),
    );
    let after = fanrush::usecases::api::FanApi::new(gate(&redis_url(), &stack.prefix), stack.queue(), AuthMode::Dev, 1)
        .with_line(rotated, LINE_SYNC);
    let r = after
        .handle(request(
            "POST",
            &format!("/events/{event}/entries"),
            &[("x-fan-id", "w"), ("x-fanrush-ticket", &old)],
            None,
        ))
        .await;
    assert!(matches!(r.status().as_u16(), 202 | 203), "{}", body_json(&r));
    if r.status() == 203 {
        let renewed = body_json(&r)["ticket"].as_str().unwrap().to_owned();
        let new_keys = TicketKeys::new(b"the-new-key", None);
        assert!(
            Ticket::verify(&renewed, &new_keys, &event, "w", Utc::now().timestamp()).is_ok(),
            "signed with the new key"
        );
    }
}

#[tokio::test]
async fn the_gate_paces_admissions_lets_the_fans_it_held_back_in_by_place_and_sends_a_caller_that_ignores_the_line_to_it(
) {
    let stack = Stack::new().await;
    let event = stack.lined_event(100, 10, 0, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
    let id = EventId::parse(&event).unwrap();
    let (id, gate) = (&id, &stack.gate);
    let admit = |i: usize, call: LineCall| async move {
        let fan = FanId::parse(&format!("g{i}")).unwrap();
        let refresh = LineRefresh { issued: IssuedTickets::default(), from_bucket: Some(0) };
        let (admission, tail) =
            gate.admit_in_line(id, &fan, &None, Utc::now(), &format!("t{i}"), call, &refresh).await.unwrap();
        assert!(tail.is_some_and(|t| t.capacity == 100), "the line's state rides back");
        admission
    };
    let due = |a: Admission| match a {
        Admission::Paced { retry_after } => retry_after,
        other => panic!("expected paced, got {other:?}"),
    };
    let outside = gate.admit(id, &FanId::parse("g0").unwrap(), &None, Utc::now(), "t0").await.unwrap();
    assert_eq!(outside, Admission::Lined, "a caller that ignores the line is sent to it");
    // At ten a second the bucket holds one token and the queue's window is
    // five fans: the first is let in, the next are held back and told when
    // to come back by their places, not by their calls.
    assert!(matches!(admit(1, LineCall::Turn { order: 1 }).await, Admission::Reserved(_)));
    for i in (2..=8).rev() {
        due(admit(i, LineCall::Turn { order: i as i64 }).await);
    }
    let second = due(admit(2, LineCall::Turn { order: 2 }).await);
    let eighth = due(admit(8, LineCall::Turn { order: 8 }).await);
    assert!(eighth > second, "the eighth called first and still comes back after: {eighth:?}, {second:?}");
    // A token later, the eighth comes back first: outside the window, held;
    // the token goes to a fan inside it.
    tokio::time::sleep(Duration::from_millis(120)).await;
    due(admit(8, LineCall::Turn { order: 8 }).await);
    assert!(matches!(admit(3, LineCall::Turn { order: 3 }).await, Admission::Reserved(_)));
    // A fan whose turn passed gets only what it already has.
    assert_eq!(admit(4, LineCall::Existing).await, Admission::TurnMissed);
    assert!(matches!(admit(1, LineCall::Existing).await, Admission::Reserved(_)), "its pending entry, taken over");
}

/// A lined event at a thousand a second (the bucket holds ten tokens, the
/// queue's window is 500 fans), called as fans whose turn came would call
/// it, each at a given ms from the start.
struct HeldQueue {
    stack: Stack,
    id: EventId,
    start: chrono::DateTime<Utc>,
}

impl HeldQueue {
    async fn new() -> Self {
        let stack = Stack::new().await;
        let event =
            stack.lined_event(100, 1_000, 0, Utc::now() - Minutes::minutes(1), Utc::now() + Minutes::hours(1)).await;
        Self { id: EventId::parse(&event).unwrap(), stack, start: Utc::now() }
    }

    /// `order` is the place's order key (the pre-queue's negative, see
    /// [`arrival`]); the call carries `prequeued` new pre-queue tickets.
    async fn admit(&self, fan: &str, order: i64, prequeued: u64, ms: i64) -> Admission {
        let refresh = LineRefresh { issued: IssuedTickets { prequeued, arrivals: vec![] }, from_bucket: None };
        let (fan, now) = (FanId::parse(fan).unwrap(), self.start + Minutes::milliseconds(ms));
        let call = LineCall::Turn { order };
        self.stack.gate.admit_in_line(&self.id, &fan, &None, now, fan.as_str(), call, &refresh).await.unwrap().0
    }
}

/// An arrival's order key: its 100 ms bucket above 24 bits.
fn arrival(bucket: i64) -> i64 {
    bucket << 24
}

fn reserved(a: &Admission) -> bool {
    matches!(a, Admission::Reserved(_))
}

fn paced(a: &Admission) -> bool {
    matches!(a, Admission::Paced { .. })
}

#[tokio::test]
async fn at_the_gate_no_arrival_goes_before_a_prequeued_fan_until_the_prequeues_admissions_stall() {
    // Tokens are never what holds anyone back here.
    let q = HeldQueue::new().await;
    // Three joined the pre-queue (their tickets counted with the first call).
    let early = q.admit("early", -30, 3, 0).await;
    assert!(reserved(&early), "{early:?}");
    // An arrival whose turn came, with two pre-queued fans not in yet: held.
    assert!(paced(&q.admit("arrival", 5, 0, 100).await));
    let second = q.admit("second", -20, 0, 200).await;
    assert!(reserved(&second), "{second:?}");
    // Still one pre-queued fan out, and the last came in 1.9 s ago: held.
    assert!(paced(&q.admit("arrival", 5, 0, 2_100).await));
    // Two seconds without a pre-queued admission: the one left walked away,
    // and the arrivals go in.
    let late_arrival = q.admit("arrival", 5, 0, 2_300).await;
    assert!(reserved(&late_arrival), "{late_arrival:?}");
    // The last pre-queued fan comes back after all: in, at its place's turn.
    assert!(reserved(&q.admit("late", -10, 0, 2_400).await));
}

#[tokio::test]
async fn a_prequeued_fan_held_in_the_gates_queue_goes_before_every_arrival() {
    let q = HeldQueue::new().await;
    assert!(reserved(&q.admit("p1", -2, 2, 0).await));
    // Past the hold: ten arrivals take the bucket's ten tokens at once.
    for i in 0..10 {
        assert!(reserved(&q.admit(&format!("a{i}"), 100 + i, 0, 2_100).await), "a{i}");
    }
    // The other pre-queued fan comes back in the same millisecond: no token,
    // held in the queue.
    assert!(paced(&q.admit("p2", -1, 0, 2_100).await));
    // Two tokens later an arrival well inside the window calls first; the
    // token is the pre-queued fan's.
    assert!(paced(&q.admit("late", 200, 0, 2_102).await));
    assert!(reserved(&q.admit("p2", -1, 0, 2_103).await));
    assert!(reserved(&q.admit("late", 200, 0, 2_104).await));
}

#[tokio::test]
async fn an_arrival_half_a_second_behind_the_gates_head_waits_for_it() {
    let q = HeldQueue::new().await;
    for i in 0..10 {
        assert!(reserved(&q.admit(&format!("t{i}"), arrival(10), 0, 0).await), "t{i} takes one of the ten tokens");
    }
    assert!(paced(&q.admit("head", arrival(1), 0, 0).await), "no token left: held");
    // Five tokens later: six buckets behind the head waits, four goes in.
    assert!(paced(&q.admit("far", arrival(7), 0, 5).await));
    assert!(reserved(&q.admit("near", arrival(5), 0, 6).await));
    assert!(reserved(&q.admit("head", arrival(1), 0, 7).await));
    assert!(reserved(&q.admit("far", arrival(7), 0, 8).await), "at the head now");
}

#[tokio::test]
async fn a_held_fan_keeps_its_place_for_a_second_past_its_due_and_then_leaves_the_queue() {
    let q = HeldQueue::new().await;
    for i in 0..10 {
        assert!(reserved(&q.admit(&format!("t{i}"), arrival(10), 0, 0).await));
    }
    let due = match q.admit("away", arrival(1), 0, 0).await {
        Admission::Paced { retry_after } => retry_after.as_millis() as i64,
        other => panic!("{other:?}"),
    };
    // Six buckets behind it, `later` waits while `away` may still come back:
    // slow answers are not walking away.
    assert!(paced(&q.admit("later", arrival(7), 0, 500).await));
    assert!(paced(&q.admit("later", arrival(7), 0, due + 900).await));
    // A second past its due, `away` is out of the queue.
    assert!(reserved(&q.admit("later", arrival(7), 0, due + 1_100).await));
    // Should it come back after all, it queues again at its place.
    assert!(reserved(&q.admit("away", arrival(1), 0, due + 1_200).await));
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
async fn measure_gate_refuses_a_live_gate_and_leaves_nothing_behind() {
    use fanrush::usecases::measure::{measure_gate, Load, MeasureError};
    let load = Load { seconds: Duration::from_millis(300), connections: 4, in_flight: 1 };
    // The shared test Redis holds live gates (every test stack makes one).
    let stack = Stack::new().await;
    stack.open_event(1).await;
    let refused = measure_gate(&redis_url(), "measure-scratch", load).await;
    assert!(matches!(refused, Err(MeasureError::LiveGate(_))), "{refused:?}");
    // A node with no gate: measured, then left as it was.
    let redis =
        fanrush_local::services::PrivateRedis::start(std::env::temp_dir().join(unique("measure"))).await.unwrap();
    redis.command(&["SET", "someone-else", "kept"]).await.unwrap();
    let f = measure_gate(&redis.url(), "measure-scratch", load).await.expect("measured");
    for (name, c) in [("set", f.set), ("admitted", f.admitted_fans), ("answers", f.answers), ("syncs", f.syncs)] {
        assert!(c.per_second > 0.0 && c.core_busy > 0.0, "{name}: {c:?}");
    }
    assert!(f.admitted_fans.per_second < f.set.per_second, "two scripts cost more than a SET: {f:?}");
    assert_eq!(redis.command(&["DBSIZE"]).await.unwrap(), redis::Value::Int(1), "only the key that was there");
}

#[tokio::test]
async fn every_environment_counts_the_tickets_the_others_issued_within_a_sync() {
    let stack = Stack::new().await;
    // Opened a while ago (in its first seconds every environment syncs
    // each sync anyway), at twenty a second.
    let opens = Utc::now() - Minutes::seconds(5);
    let event = stack.lined_event(1_000, 20, 0, opens, opens + Minutes::hours(1)).await;
    let other = fan_api(gate(&redis_url(), &stack.prefix), stack.queue(), AuthMode::Dev);
    // Forty fans arrive to an empty line: their turns come at once (the
    // gate paces them), and their admissions carry their tickets.
    for i in 0..40 {
        enter_at(&stack.fan, &event, &format!("x{i:02}")).await;
    }
    // Thirty more, a bucket later, wait behind them, their turns within
    // seconds; none of them reaches the gate, and nobody comes back.
    tokio::time::sleep(Duration::from_millis(120)).await;
    for i in 0..30 {
        assert_eq!(enter_at(&stack.fan, &event, &format!("a{i:02}")).await.status(), 203);
    }
    // The environment's next request, a sync later, flushes them...
    tokio::time::sleep(LINE_SYNC + Duration::from_millis(100)).await;
    assert_eq!(enter_at(&stack.fan, &event, "a-next").await.status(), 203);
    // ... and a fan in another environment counts all seventy ahead of it.
    let r = enter_at(&other, &event, "b").await;
    let b = body_json(&r);
    assert_eq!(r.status(), 203, "{b}");
    assert!(b["position"].as_u64().unwrap() > 70, "seventy joined elsewhere a while ago: {b}");
}

/// A fan's POST through the fan API of one environment.
async fn enter_at(api: &fanrush::usecases::api::FanApi, event: &str, fan: &str) -> Response<Body> {
    api.handle(request("POST", &format!("/events/{event}/entries"), &[("x-fan-id", fan)], None)).await
}
