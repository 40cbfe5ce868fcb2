//! The line's door and pace in the gate itself (`admit.lua`, `line.lua`),
//! called as entry environments call them, at times the tests choose (the
//! scripts take `now` from the caller): grants in the order of places at
//! the pace, a grant that waits for its fan and lapses when it does not
//! come, the pre-queue first, sold out only for good, each fan counted
//! once, and an idle line catching up with its fans.

use crate::common::*;
use chrono::{DateTime, Duration as Minutes, Utc};
use fanrush::adapters::redis_gate::{Admission, AtTheDoor, CountedFan, LineCall, LineState, LineSync, LineSyncRequest};
use fanrush::rules::domain::{EventId, FanId};
use std::time::Duration;

/// A lined event at `rate`, and its gate, called at ms from `start`.
struct Door {
    stack: Stack,
    id: EventId,
    start: DateTime<Utc>,
}

impl Door {
    async fn new(capacity: i64, rate: i64) -> Self {
        let stack = Stack::new().await;
        let start = Utc::now();
        let event = stack.lined_event(capacity, rate, 0, start - Minutes::minutes(1), start + Minutes::hours(1)).await;
        Self { id: EventId::parse(&event).unwrap(), stack, start }
    }

    fn at(&self, ms: i64) -> DateTime<Utc> {
        self.start + Minutes::milliseconds(ms)
    }

    async fn call(&self, fan: &str, call: LineCall, ms: i64) -> (Admission, LineState) {
        let fan = FanId::parse(fan).unwrap();
        let (a, state) =
            self.stack.gate.admit_in_line(&self.id, &fan, &None, self.at(ms), fan.as_str(), call).await.unwrap();
        (a, state.expect("a lined answer carries the line's state"))
    }

    async fn turn(&self, fan: &str, order: i64, ms: i64) -> Admission {
        self.call(fan, LineCall::Turn { order, drawn: None }, ms).await.0
    }
}

fn reserved(a: &Admission) -> bool {
    matches!(a, Admission::Reserved(_))
}

fn at_the_door(a: &Admission) -> AtTheDoor {
    match a {
        Admission::AtTheDoor(d) => *d,
        other => panic!("expected the door, got {other:?}"),
    }
}

/// An arrival's order key: its 100 ms bucket above 24 bits.
fn arrival(bucket: i64) -> i64 {
    bucket << 24
}

#[tokio::test]
async fn the_door_grants_places_in_their_order_at_the_pace_and_sends_a_caller_that_ignores_the_line_to_it() {
    let d = Door::new(100, 10).await;
    let outside = d.stack.gate.admit(&d.id, &FanId::parse("g0").unwrap(), &None, d.at(0), "t0").await.unwrap();
    assert_eq!(outside, Admission::Lined, "a caller that ignores the line is sent to it");
    // At ten a second the bucket holds one grant: the first caller takes it.
    assert!(reserved(&d.turn("g1", 1, 0).await));
    // Seven more in the same ms, the furthest back first; asked again,
    // each is told its grant's moment by its place, not by when it called.
    for i in (2..=8).rev() {
        at_the_door(&d.turn(&format!("g{i}"), i, 0).await);
    }
    let mut due = Vec::new();
    for i in (2..=8).rev() {
        due.push((i, at_the_door(&d.turn(&format!("g{i}"), i, 1).await)));
    }
    let of = |i: i64| due.iter().find(|(j, _)| *j == i).unwrap().1;
    assert_eq!((of(2).ahead, of(8).ahead), (0, 6), "{due:?}");
    assert!(of(8).due > of(2).due, "{due:?}");
    // A grant later the eighth calls first: the grant is the second's, and
    // waits for it; the second claims it when it comes.
    let (eighth, state) = d.call("g8", LineCall::Turn { order: 8, drawn: None }, 120).await;
    assert_eq!(at_the_door(&eighth).ahead, 5);
    assert_eq!((state.granted, state.at_door), (2, 6), "{state:?}");
    // Admitted when its grant's token came (1/10.5 s after the first's),
    // not when the eighth happened to call.
    match d.turn("g2", 2, 400).await {
        Admission::Reserved(r) => {
            let granted = r.entry.accepted_at.timestamp_millis() - d.at(0).timestamp_millis();
            assert!((94..=96).contains(&granted), "admitted when granted: {granted} ms")
        }
        other => panic!("{other:?}"),
    }
    // A fan whose turn passed gets only what it already has.
    assert_eq!(d.call("g9", LineCall::Existing, 500).await.0, Admission::TurnMissed);
    assert!(reserved(&d.call("g1", LineCall::Existing, 500).await.0), "its pending entry, taken over");
}

#[tokio::test]
async fn a_grant_waits_for_its_fan_a_while_then_lapses_and_its_place_goes_to_the_next() {
    let d = Door::new(1, 10).await;
    assert!(reserved(&d.turn("first", arrival(0), 0).await));
    d.stack
        .gate
        .release(&match d.turn("first", arrival(0), 1).await {
            Admission::Reserved(r) => r,
            other => panic!("{other:?}"),
        })
        .await
        .unwrap();
    // The place came back: `away` is granted it by the next call, then walks away.
    at_the_door(&d.turn("away", arrival(1), 2).await);
    let (next, state) = d.call("next", LineCall::Turn { order: arrival(2), drawn: None }, 200).await;
    assert_eq!(at_the_door(&next).due, None, "no place free: the grant is away's");
    assert_eq!((state.taken, state.sold_out_for_good), (1, false), "taken, but it may come back: {state:?}");
    // Five seconds on, away's grant lapses, and the place is next's.
    let (lapsed, state) = d.call("next", LineCall::Turn { order: arrival(2), drawn: None }, 5_200).await;
    assert!(reserved(&lapsed), "{lapsed:?} {state:?}");
    // Away comes back: no place is left, and none can come back once next's is queued.
    if let Admission::Reserved(r) = lapsed {
        d.stack.gate.confirm(&r).await.unwrap();
    }
    assert_eq!(d.turn("away", arrival(1), 5_300).await, Admission::SoldOut);
}

#[tokio::test]
async fn every_prequeued_fan_at_the_door_goes_before_every_arrival_and_a_better_place_replaces_a_worse_one() {
    let d = Door::new(100, 1_000).await;
    // Ten arrivals take the bucket's fifty grants' worth at once: the door
    // is empty after them, so a later caller is granted at once too.
    for i in 0..10 {
        assert!(reserved(&d.turn(&format!("a{i}"), arrival(10), 0).await), "a{i}");
    }
    // The bucket is empty; an arrival and a pre-queued fan wait at the door.
    for i in 10..60 {
        d.turn(&format!("a{i}"), arrival(10), 0).await;
    }
    at_the_door(&d.turn("arrival", arrival(1), 0).await);
    let prequeued = at_the_door(&d.turn("pre", -5, 0).await);
    let arriving = at_the_door(&d.turn("arrival", arrival(1), 0).await);
    assert!(prequeued.ahead < arriving.ahead, "{prequeued:?} {arriving:?}");
    // The arrival's other device holds a better place: it replaces the worse.
    let better = at_the_door(&d.turn("arrival", arrival(0), 0).await);
    assert!(better.ahead <= arriving.ahead, "{better:?} {arriving:?}");
    // The next grant is the pre-queued fan's, whoever calls.
    let (_, state) = d.call("arrival", LineCall::Turn { order: arrival(0), drawn: None }, 2).await;
    assert!(state.granted > 50);
    assert!(reserved(&d.turn("pre", -5, 3).await), "pre-queued: granted first");
}

#[tokio::test]
async fn a_sync_counts_each_fan_once_however_often_it_is_sent() {
    let d = Door::new(100, 10).await;
    let fan = |n: u8, bucket: Option<u64>| CountedFan { hash: [n; 8], bucket };
    let d = &d;
    let sync = |fans: Vec<CountedFan>| {
        let request = LineSyncRequest { fans, from_bucket: Some(0), ..LineSyncRequest::default() };
        async move {
            match d.stack.gate.sync_line(&d.id, d.at(0), &request).await.unwrap() {
                LineSync::Lined(status) => status,
                other => panic!("{other:?}"),
            }
        }
    };
    let first = sync(vec![fan(1, None), fan(2, Some(3)), fan(3, Some(3)), fan(4, Some(5))]).await;
    assert!(first.duplicates.is_empty());
    assert_eq!(
        (first.counts.prequeued, first.counts.arrivals.get(3), first.counts.arrivals.get(5)),
        (1, Some(&2), Some(&1))
    );
    // The same sync again (a retry after a lost reply), and fan 2 from
    // another environment at a later bucket: nothing is counted again.
    let again = sync(vec![fan(1, None), fan(2, Some(3)), fan(3, Some(3)), fan(4, Some(5)), fan(2, Some(9))]).await;
    assert_eq!(again.counts.prequeued, 1);
    assert_eq!(again.counts.arrivals[3], 2);
    assert_eq!(again.counts.arrivals.get(9).copied().unwrap_or(0), 0);
    assert_eq!(again.duplicates, vec![(0, None), (1, Some(3)), (2, Some(3)), (3, Some(5)), (4, Some(3))]);
}

#[tokio::test]
async fn a_sync_reads_a_lines_counts_from_where_its_fans_are_not_from_its_opening() {
    let d = Door::new(100, 10).await;
    let day = 24 * 3_600 * 10;
    let fan = CountedFan { hash: [7; 8], bucket: Some(day) };
    let first = LineSyncRequest { fans: vec![fan], from_bucket: Some(day), ..LineSyncRequest::default() };
    d.stack.gate.sync_line(&d.id, d.at(0), &first).await.unwrap();
    // A new environment asks from wherever the line is: nobody was served
    // yet, so from the first fan counted, a day after the opening.
    match d.stack.gate.sync_line(&d.id, d.at(0), &LineSyncRequest::default()).await.unwrap() {
        LineSync::Lined(status) => {
            assert_eq!(status.counts.from_bucket, day);
            assert_eq!(status.counts.arrivals.first(), Some(&1));
            assert!(!status.counts.more(), "one reply holds it all");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_gate_counts_the_environments_that_synced_a_line_in_the_last_minute() {
    let d = Door::new(100, 10).await;
    let environments = |status: LineSync| match status {
        LineSync::Lined(status) => status.environments,
        other => panic!("{other:?}"),
    };
    let sync = |environment: Option<u64>, ms: i64| {
        let request = LineSyncRequest { environment, ..LineSyncRequest::default() };
        let d = &d;
        async move { environments(d.stack.gate.sync_line(&d.id, d.at(ms), &request).await.unwrap()) }
    };
    for e in 0..600 {
        sync(Some(e), 0).await;
    }
    assert_eq!(sync(Some(0), 1_000).await, 600, "each environment once, however often it syncs");
    assert_eq!(sync(None, 1_000).await, 600, "the housekeeping is not an environment");
    // A minute on, only those that synced since are counted.
    for e in 0..10 {
        sync(Some(e), 30_000).await;
    }
    assert_eq!(sync(Some(1_000), 61_000).await, 11);
    // So each of 600 spaces its syncs to keep all of them within the budget.
    let every = fanrush::rules::line::sync_interval(Duration::from_secs(1), 600);
    assert_eq!(every, Duration::from_secs_f64(1.2));
}

#[tokio::test]
async fn an_idle_line_moves_its_served_mark_to_the_first_waiting_place_and_a_restored_one_takes_the_seen_mark() {
    let d = Door::new(100, 10).await;
    let d = &d;
    let sync = |request: LineSyncRequest, ms: i64| async move {
        match d.stack.gate.sync_line(&d.id, d.at(ms), &request).await.unwrap() {
            LineSync::Lined(status) => status.state,
            other => panic!("{other:?}"),
        }
    };
    // Nobody served yet: the mark an environment saw before a restore is taken.
    let seen = sync(LineSyncRequest { served_seen: Some(arrival(4)), ..LineSyncRequest::default() }, 0).await;
    assert_eq!(seen.served, Some(arrival(4)));
    // Nobody at the door, a full bucket: the mark moves to the first waiting place.
    let idle = sync(LineSyncRequest { advance_to: Some(arrival(40)), ..LineSyncRequest::default() }, 500).await;
    assert_eq!(idle.served, Some(arrival(40)));
    // With a fan at the door, it stays where the grants put it.
    d.turn("a", arrival(41), 600).await;
    d.turn("b", arrival(42), 600).await;
    let busy = sync(LineSyncRequest { advance_to: Some(arrival(90)), ..LineSyncRequest::default() }, 601).await;
    assert!(busy.served < Some(arrival(90)), "{busy:?}");
}

#[tokio::test]
async fn a_restored_line_holds_its_grants_a_moment_and_the_fans_an_environment_saw_at_the_door_go_first() {
    let d = Door::new(100, 10).await;
    // The gate is rebuilt: the line resumes at 1 s, holding grants for a second.
    let lease = d.stack.gate.begin_restore(&d.id, "test", Duration::from_secs(10)).await.unwrap();
    let event = d.stack.db.events().await.unwrap().into_iter().find(|e| e.id == d.id).unwrap();
    let seed = d.stack.db.line_seed(&d.id).await.unwrap();
    d.stack.gate.restore_clear(&lease).await.unwrap();
    let restored = fanrush::adapters::redis_gate::Restored::Whole;
    d.stack.gate.restore_definition(&lease, &event, seed.as_deref(), 0, 0, restored, d.at(1_000)).await.unwrap();
    d.stack.gate.finish_restore(&lease).await.unwrap();
    // A fan whose place is late calls first: it waits at the door, and an
    // environment's sync puts back the two it saw there before the loss.
    let late = at_the_door(&d.turn("late", arrival(9), 1_100).await);
    assert!(late.due.unwrap() >= Duration::from_millis(900), "nothing granted while the line holds: {late:?}");
    let seated = vec![("early".to_owned(), arrival(1)), ("middle".to_owned(), arrival(5))];
    let request = LineSyncRequest { seated, ..LineSyncRequest::default() };
    match d.stack.gate.sync_line(&d.id, d.at(1_200), &request).await.unwrap() {
        LineSync::Lined(status) => {
            assert_eq!(status.restored_at, Some(d.at(1_000).timestamp_millis()));
            assert_eq!(status.state.at_door, 3, "{:?}", status.state);
        }
        other => panic!("{other:?}"),
    }
    // When the hold ends, the grants go in the order of places.
    let (_, state) = d.call("late", LineCall::Turn { order: arrival(9), drawn: None }, 2_150).await;
    assert_eq!(state.granted, 1);
    assert!(reserved(&d.turn("early", arrival(1), 2_200).await), "the first place, though it called last");
}
