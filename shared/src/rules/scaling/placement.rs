//! Where an event's gate lives on a Redis cluster. Pure.
//!
//! A cluster keeps each of its 16,384 hash slots on one shard, and a key's
//! slot is the CRC16 of its hash tag (Redis Cluster specification, "Hash
//! tags"). Every key of an event shares the tag, so the tag places the
//! event. fanrush chooses it once, when the event is defined: on the shard
//! whose load peaks lowest during the event's window, counting each event
//! as [`gate_rps`] (its arrivals, or its line's rate). The tag is the id
//! itself when the id already falls on that shard, else the id with the
//! first suffix `~n` that does; no id holds a `~`, so a tag never names
//! another event. The tag is kept for the event's life: a restore lists it
//! again and a resharding moves its slot, never the tag.

use crate::rules::domain::{EventId, FanEvent};
use chrono::{DateTime, Utc};
use std::ops::RangeInclusive;

/// Admissions per second an event brings to the gate at its peak: its
/// arrivals, or with a line the line's rate.
pub fn gate_rps(e: &FanEvent) -> f64 {
    match e.line {
        Some(line) => line.admissions_per_second as f64,
        None => e.expected_peak_rps,
    }
}

/// Hash slots of a Redis cluster.
pub const HASH_SLOTS: u16 = 16_384;

/// The hash slot of keys tagged `{tag}` (CRC16-XMODEM, modulo 16,384).
pub fn slot_of(tag: &str) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes()) % HASH_SLOTS
}

/// One shard: its primary's address and the slots it serves. A single
/// node is one shard holding every slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub primary: String,
    pub slots: Vec<RangeInclusive<u16>>,
}

impl Shard {
    /// A single node: every slot.
    pub fn whole(primary: impl Into<String>) -> Self {
        Self { primary: primary.into(), slots: vec![0..=HASH_SLOTS - 1] }
    }

    pub fn holds(&self, slot: u16) -> bool {
        self.slots.iter().any(|r| r.contains(&slot))
    }

    /// The slots as `CLUSTER SLOTS` would list them: `0-5460,10923-10923`.
    pub fn describe_slots(&self) -> String {
        let ranges: Vec<String> = self.slots.iter().map(|r| format!("{}-{}", r.start(), r.end())).collect();
        ranges.join(",")
    }
}

/// The index in `shards` of the shard serving `slot`, if any does (a slot
/// between owners during a failover serves none).
pub fn shard_of(shards: &[Shard], slot: u16) -> Option<usize> {
    shards.iter().position(|s| s.holds(slot))
}

/// An event already defined, with the tag it was given.
#[derive(Debug, Clone, Copy)]
pub struct Placed<'a> {
    pub event: &'a FanEvent,
    pub tag: &'a str,
}

/// The busy window of an event's gate: from when fans may join (a
/// pre-queue opens before the sale) to its close.
fn window(e: &FanEvent) -> (DateTime<Utc>, DateTime<Utc>) {
    (e.joinable_from(), e.closes_at)
}

/// Each shard's peak load (admissions a second, [`gate_rps`]) during
/// `[from, until)` from the events placed on it.
pub fn peak_loads(shards: &[Shard], placed: &[Placed], from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<f64> {
    let mut loads = vec![0.0_f64; shards.len()];
    let overlapping: Vec<(usize, &FanEvent)> = placed
        .iter()
        .filter(|p| {
            let (start, end) = window(p.event);
            start < until && end > from
        })
        .filter_map(|p| shard_of(shards, slot_of(p.tag)).map(|s| (s, p.event)))
        .collect();
    // The sum of overlapping windows peaks at one of their starts (or at
    // `from` for those already running).
    for (shard, load) in loads.iter_mut().enumerate() {
        let mine: Vec<&FanEvent> = overlapping.iter().filter(|(s, _)| *s == shard).map(|(_, e)| *e).collect();
        for t in std::iter::once(from).chain(mine.iter().map(|e| window(e).0.max(from))) {
            let at_t: f64 = mine
                .iter()
                .filter(|e| {
                    let (start, end) = window(e);
                    start <= t && end > t
                })
                .map(|e| gate_rps(e))
                .sum();
            *load = load.max(at_t);
        }
    }
    loads
}

/// The shard for `event`: the one whose load peaks lowest during its
/// window; the first of equals (shards in slot order).
pub fn choose_shard(shards: &[Shard], placed: &[Placed], event: &FanEvent) -> Option<usize> {
    let (from, until) = window(event);
    let others: Vec<Placed> = placed.iter().copied().filter(|p| p.event.id != event.id).collect();
    let loads = peak_loads(shards, &others, from, until);
    (0..shards.len()).min_by(|a, b| loads[*a].total_cmp(&loads[*b]))
}

/// The tag that puts `id` on `shard`: the id itself if its slot is there,
/// else `id~n` for the first `n` that is. `None` for a shard with no slots.
pub fn tag_on(id: &EventId, shard: &Shard) -> Option<String> {
    if shard.slots.is_empty() {
        return None;
    }
    if shard.holds(slot_of(id.as_str())) {
        return Some(id.as_str().to_owned());
    }
    // A shard of k slots is met about once in 16,384 / k tries; a million
    // covers any shard of 16 slots or more with certainty in practice.
    (1..1_000_000u32).map(|n| format!("{id}~{n}")).find(|t| shard.holds(slot_of(t)))
}

/// The hash tag for `event` among the events already `tagged`: on the shard
/// whose load peaks lowest during its window ([`choose_shard`]); the id
/// itself on one shard or when no shard holds a slot.
pub fn place(shards: &[Shard], events: &[FanEvent], tagged: &[(EventId, String)], event: &FanEvent) -> String {
    if shards.len() < 2 {
        return event.id.as_str().to_owned();
    }
    let placed: Vec<Placed> = events
        .iter()
        .filter_map(|e| tagged.iter().find(|(id, _)| *id == e.id).map(|(_, tag)| Placed { event: e, tag }))
        .collect();
    choose_shard(shards, &placed, event)
        .and_then(|s| tag_on(&event.id, &shards[s]))
        .unwrap_or_else(|| event.id.as_str().to_owned())
}

/// `n` shards splitting the slots in even ranges, as `redis-cli --cluster
/// create` and a new ElastiCache cluster do: the shape a plan assumes.
pub fn even_shards(n: usize) -> Vec<Shard> {
    let n = n.max(1);
    let per = usize::from(HASH_SLOTS) / n;
    (0..n)
        .map(|i| {
            let start = (i * per) as u16;
            let end = if i + 1 == n { HASH_SLOTS - 1 } else { ((i + 1) * per - 1) as u16 };
            Shard { primary: format!("shard {}", i + 1), slots: vec![start..=end] }
        })
        .collect()
}

/// Where a calendar's events live: the shards and each event's tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub shards: Vec<Shard>,
    /// Event id → its tag; an event not named here keeps its id.
    pub tags: Vec<(EventId, String)>,
}

impl Placement {
    /// One node: every event on it.
    pub fn single() -> Self {
        Self { shards: vec![Shard::whole("the node")], tags: Vec::new() }
    }

    /// `events` defined one after another on `shards`, each placed as the
    /// admin API places a new event, seeing those before it.
    pub fn planned(shards: Vec<Shard>, events: &[FanEvent]) -> Self {
        let mut tags: Vec<(EventId, String)> = Vec::new();
        for e in events {
            let tag = place(&shards, events, &tags, e);
            tags.push((e.id.clone(), tag));
        }
        Self { shards, tags }
    }

    pub fn tag<'a>(&'a self, id: &'a EventId) -> &'a str {
        self.tags.iter().find(|(e, _)| e == id).map_or(id.as_str(), |(_, tag)| tag.as_str())
    }

    /// The index of the shard an event lives on (the first when its slot
    /// has no owner).
    pub fn shard(&self, id: &EventId) -> usize {
        shard_of(&self.shards, slot_of(self.tag(id))).unwrap_or(0)
    }
}

/// One shard's busiest moment: its load and the events running then.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardPeak {
    pub shard: usize,
    pub at: Option<DateTime<Utc>>,
    /// Admissions a second ([`gate_rps`]) of its events running at `at`.
    pub gate_rps: f64,
    pub events: Vec<EventId>,
}

/// Each shard's busiest moment over `events`.
pub fn shard_peaks(placement: &Placement, events: &[FanEvent]) -> Vec<ShardPeak> {
    (0..placement.shards.len())
        .map(|shard| {
            let mine: Vec<&FanEvent> = events.iter().filter(|e| placement.shard(&e.id) == shard).collect();
            let mut peak = ShardPeak { shard, at: None, gate_rps: 0.0, events: Vec::new() };
            for t in mine.iter().map(|e| window(e).0) {
                let running: Vec<&&FanEvent> = mine
                    .iter()
                    .filter(|e| {
                        let (start, end) = window(e);
                        start <= t && end > t
                    })
                    .collect();
                let load: f64 = running.iter().map(|e| gate_rps(e)).sum();
                if load > peak.gate_rps {
                    peak = ShardPeak {
                        shard,
                        at: Some(t),
                        gate_rps: load,
                        events: running.iter().map(|e| e.id.clone()).collect(),
                    };
                }
            }
            peak
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::domain::LineSettings;
    use chrono::TimeZone;

    fn three_shards() -> Vec<Shard> {
        vec![
            Shard { primary: "a".into(), slots: vec![0..=5460] },
            Shard { primary: "b".into(), slots: vec![5461..=10922] },
            Shard { primary: "c".into(), slots: vec![10923..=16383] },
        ]
    }

    fn event(id: &str, opens_h: u32, rps: f64, line: Option<i64>) -> FanEvent {
        let opens = Utc.with_ymd_and_hms(2026, 12, 24, opens_h, 0, 0).unwrap();
        FanEvent {
            id: EventId::parse(id).unwrap(),
            title: id.into(),
            opens_at: opens,
            closes_at: opens + chrono::Duration::hours(1),
            capacity: 1000,
            expected_peak_rps: rps,
            lead_minutes: None,
            cooldown_minutes: None,
            line: line.map(|admissions_per_second| LineSettings { admissions_per_second, prequeue_minutes: 0 }),
        }
    }

    #[test]
    fn a_plan_spreads_a_calendar_as_the_admin_api_would_and_finds_each_shards_peak() {
        let shards = even_shards(3);
        assert_eq!(shards[0].slots, vec![0..=5460]);
        assert_eq!(shards[2].slots, vec![10922..=16383]);
        let million = event("million", 12, 0.0, Some(8_850));
        let first = event("two-a", 12, 0.0, Some(3_000));
        let second = event("two-b", 12, 0.0, Some(3_000));
        let evening = event("evening", 20, 0.0, Some(5_000));
        let calendar = [million.clone(), first.clone(), second.clone(), evening.clone()];
        let plan = Placement::planned(shards, &calendar);
        let homes: Vec<usize> = calendar.iter().map(|e| plan.shard(&e.id)).collect();
        assert_eq!(homes[..3].iter().collect::<std::collections::HashSet<_>>().len(), 3, "{homes:?}");
        for e in &calendar {
            assert!(plan.shards[plan.shard(&e.id)].holds(slot_of(plan.tag(&e.id))));
        }
        let peaks = shard_peaks(&plan, &calendar);
        assert_eq!(peaks[homes[0]].gate_rps, 8_850.0);
        assert_eq!(peaks[homes[0]].events, vec![million.id.clone()]);
        // The evening event goes where the noon ones do not matter: the first
        // shard, all being idle then, and its peak is the noon one.
        assert_eq!(homes[3], 0);
        assert_eq!(Placement::single().shard(&million.id), 0);
        let one = shard_peaks(&Placement::single(), &calendar);
        assert_eq!(one[0].gate_rps, 14_850.0);
        assert_eq!(one[0].events.len(), 3);
    }

    #[test]
    fn slots_match_the_cluster_specification() {
        // The specification's example: "123456789" hashes to 0x31C3.
        assert_eq!(slot_of("123456789"), 0x31C3);
        assert_eq!(slot_of("foo"), 12182);
        assert_eq!(slot_of("bar"), 5061);
    }

    #[test]
    fn a_tag_lands_on_the_shard_it_was_chosen_for_and_is_the_id_when_it_can_be() {
        let shards = three_shards();
        let id = EventId::parse("drop").unwrap();
        let home = shard_of(&shards, slot_of("drop")).unwrap();
        assert_eq!(tag_on(&id, &shards[home]).as_deref(), Some("drop"));
        for shard in &shards {
            let tag = tag_on(&id, shard).unwrap();
            assert!(shard.holds(slot_of(&tag)), "{tag} on {}", shard.primary);
            assert!(tag == "drop" || tag.starts_with("drop~"), "{tag}");
        }
        assert_eq!(tag_on(&id, &Shard { primary: "x".into(), slots: vec![] }), None);
    }

    #[test]
    fn two_big_events_at_the_same_time_go_to_different_shards() {
        let shards = three_shards();
        let first = event("first", 12, 50_000.0, None);
        let second = event("second", 12, 40_000.0, Some(8_000));
        let first_tag = tag_on(&first.id, &shards[choose_shard(&shards, &[], &first).unwrap()]).unwrap();
        let placed = [Placed { event: &first, tag: &first_tag }];
        let chosen = choose_shard(&shards, &placed, &second).unwrap();
        assert_ne!(Some(chosen), shard_of(&shards, slot_of(&first_tag)));
        // The line's rate is its load, not its arrivals.
        let loads = peak_loads(&shards, &placed, first.opens_at, first.closes_at);
        assert_eq!(loads.iter().sum::<f64>(), 50_000.0);
        let second_tag = tag_on(&second.id, &shards[chosen]).unwrap();
        let both = [placed[0], Placed { event: &second, tag: &second_tag }];
        assert_eq!(peak_loads(&shards, &both, first.opens_at, first.closes_at).iter().sum::<f64>(), 58_000.0);
    }

    #[test]
    fn an_event_at_another_time_does_not_count_and_the_peak_is_of_overlapping_windows() {
        let shards = vec![Shard::whole("one")];
        let morning = event("morning", 8, 9_000.0, None);
        let noon = event("noon", 12, 1_000.0, None);
        let half_past =
            FanEvent { opens_at: noon.opens_at + chrono::Duration::minutes(30), ..event("later", 12, 500.0, None) };
        let placed = [
            Placed { event: &morning, tag: "morning" },
            Placed { event: &noon, tag: "noon" },
            Placed { event: &half_past, tag: "later" },
        ];
        let loads = peak_loads(&shards, &placed, noon.opens_at, noon.closes_at);
        assert_eq!(loads, vec![1_500.0]);
        // Redefining an event does not count it against itself.
        let busy = [Placed { event: &morning, tag: "morning" }];
        assert_eq!(choose_shard(&shards, &busy, &morning), Some(0));
    }

    #[test]
    fn a_lighter_shard_wins_even_when_the_heavier_one_comes_first() {
        let shards = three_shards();
        let big = event("big", 12, 30_000.0, None);
        let small = event("small", 12, 100.0, None);
        let a = tag_on(&big.id, &shards[0]).unwrap();
        let b = tag_on(&small.id, &shards[1]).unwrap();
        let c = event("c", 12, 10.0, None);
        let tag_c = tag_on(&c.id, &shards[2]).unwrap();
        let placed =
            [Placed { event: &big, tag: &a }, Placed { event: &small, tag: &b }, Placed { event: &c, tag: &tag_c }];
        assert_eq!(choose_shard(&shards, &placed, &event("next", 12, 1.0, None)), Some(2));
    }
}
