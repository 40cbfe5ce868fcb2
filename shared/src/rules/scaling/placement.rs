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

use super::preflight::gate_rps;
use crate::rules::domain::{EventId, FanEvent};
use chrono::{DateTime, Utc};
use std::ops::RangeInclusive;

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
