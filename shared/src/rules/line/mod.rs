//! The line: a waiting room in front of the gate, pure rules with no I/O.
//!
//! An event with `admissionsPerSecond` has a line. A fan's first POST joins
//! it and gets a [`Ticket`]: a [`Place`] signed by fanrush, so joining and
//! waiting cost the gate's Redis nothing. Places are ordered:
//!
//! - fans who join in the pre-queue (until the draw closes,
//!   [`draw::CLOSES_BEFORE`] the opening) are all ahead of everyone who
//!   arrives after it, in a uniformly random order fixed by a draw key
//!   ([`draw`]: SHA-256 of the event's seed, the digest of who is in the
//!   draw, and the fan), so when in the window a fan joined does not
//!   matter, and joining again, from any device, draws the same key; until
//!   the gate seals the draw a pre-queued place is [`Place::Drawing`];
//! - after the close, first come, first served by arrival at API Gateway
//!   ([`joined_at`]) in [`BUCKET_MS`] buckets from the opening (a fan who
//!   joins between the close and the opening arrives in its first bucket),
//!   shuffled within a bucket by another keyed hash of the seed and the
//!   fan.
//!
//! The line is a closed loop around the gate. The gate grants places to
//! the fans at its door in the order of their places, at the line's pace,
//! and its served mark (the highest place granted) moves only as it grants:
//! a fan who walked away is never at the door and is passed over. A fan's
//! turn comes when its place is within [`progress::LEAD`] of the served
//! mark: it then calls the gate, joins the door and claims its grant when
//! it is due. [`counts`] ranks places from the line's counts, [`progress`]
//! follows the served mark and says where a place stands, [`poll`] says
//! when a waiting fan should come back.

pub mod counts;
pub mod draw;
pub mod poll;
pub mod progress;
pub mod receipt;
pub mod ticket;

pub use counts::LineCounts;
pub use progress::{Progress, Standing};
pub use ticket::{Ticket, TicketError, TicketKey, TicketKeys, TICKET_TTL};

use sha2::{Digest, Sha256};
use std::time::Duration;

/// Arrivals after the opening are first come, first served to this many
/// milliseconds; inside one bucket the shuffle key orders them, so pressing
/// first within a tenth of a second (a bot's edge) wins nothing.
pub const BUCKET_MS: i64 = 100;

/// How often an execution environment syncs each line it answers fans of
/// (`LINE_SYNC_MS`), at most: the places it gave are counted, and its copy
/// of the counts and the served mark is brought up to date.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// The syncs a second that all the environments answering one line make
/// together, at most, once there are more of them than this a second
/// allows: each then spaces its syncs by [`sync_interval`]. A sync's fixed
/// cost on the event's core is about a ten-thousandth of a second (`make
/// bench`'s "line: line.lua syncs/s"), so this is about 5% of the core; the
/// preflight keeps that share out of the line's rate
/// ([`crate::rules::scaling::preflight::LineRates`]). The places a sync
/// carries cost the same however they are grouped.
pub const SYNCS_PER_SECOND: f64 = 500.0;

/// The longest an environment waits between syncs of a line it answers
/// fans of, however many environments there are: its copy's counts are
/// complete this long (plus a margin) behind the present, and estimated
/// from its own share of the places nearer it.
pub const SYNC_EVERY_MOST: Duration = Duration::from_secs(30);

/// How long an environment waits between syncs of a line that
/// `environments` environments sync: no more often than `every` (the
/// configured [`SYNC_EVERY`]), spaced so that all of them together make at
/// most [`SYNCS_PER_SECOND`], and never more than [`SYNC_EVERY_MOST`].
pub fn sync_interval(every: Duration, environments: u64) -> Duration {
    let spaced = Duration::from_secs_f64(environments as f64 / SYNCS_PER_SECOND);
    spaced.clamp(every, SYNC_EVERY_MOST.max(every))
}

/// How long a restored line grants nothing: every entry environment that
/// answers fans syncs within it (a fan's retry reaches each of them within
/// a second), and puts back at the door the fans it saw there, so grants
/// resume in the order of places, not of whoever called first.
pub const RESTORE_HOLD: Duration = Duration::from_secs(1);

/// How long after the served mark passed a place its fan may still come
/// and claim it; later it gets only an entry it already has (and may join
/// again, at the back). Four times the longest wait the line asks for
/// after the opening ([`poll::MAX_AFTER_OPENING`]), so a fan that follows
/// `Retry-After` never misses its turn.
pub const TURN_WINDOW: Duration = Duration::from_secs(120);

/// An 8-byte hash of a fan in an event, by which the gate counts each fan
/// once however often it joins; the seed keeps it from telling who joined.
pub fn fan_hash(seed: &[u8], event: &str, fan: &str) -> [u8; 8] {
    let digest = Sha256::digest(
        [b"fanrush/line-joined\0".as_slice(), seed, b"\0", event.as_bytes(), b"\0", fan.as_bytes()].concat(),
    );
    digest[..8].try_into().expect("8 bytes")
}

/// A place in an event's line. The derived order is the line's order: every
/// pre-queued place before every arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Place {
    /// Joined before the draw closed, which is not sealed yet: its key is
    /// not known. The fan's reference in the draw.
    Drawing { fan: draw::FanRef },
    /// Joined before the draw closed; ordered by its key in the sealed draw.
    Prequeue { shuffle: u64 },
    /// Joined after the opening: `at_ms` is the start of the arrival's
    /// bucket (Unix ms); the shuffle key orders a bucket.
    Arrival { at_ms: i64, shuffle: u32 },
}

/// The shuffle key of an arrival: a keyed hash, so nobody can compute a
/// fan's place inside its bucket, or choose one, without the event's seed.
fn shuffle(seed: &[u8], event: &str, fan: &str) -> [u8; 32] {
    Sha256::digest(
        [b"fanrush/line-shuffle\0".as_slice(), seed, b"\0", event.as_bytes(), b"\0", fan.as_bytes()].concat(),
    )
    .into()
}

/// Where an order key sits on the line's axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Spot {
    /// In the pre-queue, at this fraction of it (uniform: the shuffle's).
    Prequeue { fraction: f64 },
    /// In an arrival bucket after the opening, at this fraction of it.
    Arrival { bucket: u64, fraction: f64 },
}

impl Spot {
    /// The spot of an order key ([`Place::order_key`]).
    pub fn of_key(key: i64) -> Self {
        if key < 0 {
            Spot::Prequeue { fraction: ((key + (1 << 53)) as f64 / (1u64 << 53) as f64).clamp(0.0, 1.0) }
        } else {
            Spot::Arrival { bucket: (key >> 24) as u64, fraction: (key & 0xFF_FFFF) as f64 / (1u64 << 24) as f64 }
        }
    }
}

impl Place {
    /// The place as a number that sorts as the place does, exact in a
    /// double (a Redis sorted set's score, below 2^53): the pre-queue's
    /// negative, by the shuffle's top 53 bits; an arrival's its bucket since
    /// the opening over the shuffle's top 24 bits (2^29 buckets: 621 days).
    /// A place still drawing has no key yet: it stands at the pre-queue's
    /// middle, where a uniform key is expected to fall.
    pub fn order_key(&self, opens_at_ms: i64) -> i64 {
        match *self {
            Place::Drawing { .. } => -(1 << 52),
            Place::Prequeue { shuffle } => (shuffle >> 11) as i64 - (1 << 53),
            Place::Arrival { at_ms, shuffle } => {
                let bucket = (at_ms - opens_at_ms).div_euclid(BUCKET_MS).clamp(0, (1 << 29) - 1);
                (bucket << 24) | i64::from(shuffle >> 8)
            }
        }
    }
}

/// The oldest a request's arrival at API Gateway is taken as its join: an
/// environment counts the places it gave at its next sync, within a few
/// seconds, so a place's bucket is still inside the ten seconds of counts
/// every environment re-reads behind the present. API Gateway gives up on an integration after 30 s anyway
/// ("Maximum integration timeout", Quotas for configuring and running an
/// HTTP API in API Gateway,
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html>).
pub const RECEIVED_MAX_AGE: Duration = Duration::from_secs(5);

/// When a fan joins, for its place: when its request reached API Gateway
/// (`received_ms`, the request context's `timeEpoch`; the client cannot
/// set it) rather than when the handler ran, so a request that waited for
/// an execution environment to start, or for a busy one, keeps its turn
/// against fans who arrived after it. Before the opening the handler's own
/// clock decides, as the pre-queue's count is settled by it; a receipt
/// before the opening handled after it is the opening's first bucket. A
/// receipt time that is missing (0), in the future or older than
/// [`RECEIVED_MAX_AGE`] is held to those bounds.
pub fn joined_at(now_ms: i64, received_ms: Option<i64>, opens_at_ms: i64) -> i64 {
    if now_ms < opens_at_ms {
        return now_ms;
    }
    let oldest = now_ms - RECEIVED_MAX_AGE.as_millis() as i64;
    match received_ms.filter(|r| *r > 0) {
        Some(r) => r.clamp(oldest, now_ms).max(opens_at_ms),
        None => now_ms,
    }
}

/// The place a fan holds after a POST at `now_ms`: the one its valid ticket
/// names, else a new one (in the draw before it closes, an arrival after
/// it: at the opening's first bucket until the opening).
pub fn place_for(held: Option<Place>, seed: &[u8], event: &str, fan: &str, now_ms: i64, opens_at_ms: i64) -> Place {
    if let Some(place) = held {
        return place;
    }
    if now_ms < draw::closes_at(opens_at_ms) {
        Place::Drawing { fan: draw::fan_ref(seed, event, fan) }
    } else {
        let key = shuffle(seed, event, fan);
        Place::Arrival {
            at_ms: opens_at_ms + (now_ms - opens_at_ms).max(0).div_euclid(BUCKET_MS) * BUCKET_MS,
            shuffle: u32::from_be_bytes(key[8..12].try_into().expect("4 bytes")),
        }
    }
}

impl Place {
    /// The place once the draw is sealed with `digest`: a place still
    /// drawing gets its draw key, so the published draw is the pre-queue's
    /// order; any other is as it was.
    pub fn drawn(self, seed: &[u8], event: &str, digest: &str) -> Place {
        match self {
            Place::Drawing { fan } => Place::Prequeue { shuffle: draw::draw_key(seed, event, digest, &fan) },
            other => other,
        }
    }

    /// Whether the place is in the pre-queue (drawn or not yet).
    pub fn prequeued(&self) -> bool {
        matches!(self, Place::Drawing { .. } | Place::Prequeue { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OPEN: i64 = 1_800_000_000_000;

    #[test]
    fn environments_space_their_syncs_so_that_together_they_stay_within_the_budget() {
        let second = Duration::from_secs(1);
        assert_eq!(sync_interval(second, 0), second);
        assert_eq!(sync_interval(second, 400), second, "few environments sync every second");
        assert_eq!(sync_interval(second, 7_650), Duration::from_secs_f64(15.3));
        for n in [1u64, 499, 500, 501, 2_000, 7_650, 15_000] {
            let per_second = n as f64 / sync_interval(second, n).as_secs_f64();
            assert!(per_second <= SYNCS_PER_SECOND + 1e-9, "{n}: {per_second}");
        }
        assert_eq!(sync_interval(second, 1_000_000), SYNC_EVERY_MOST, "never staler than the most");
        let configured = Duration::from_secs(5);
        assert_eq!(sync_interval(configured, 10), configured, "the configured interval is the least");
    }

    proptest! {
        #[test]
        fn a_places_order_key_sorts_as_the_place_does(
            a in any::<u64>(), b in any::<u64>(), da in 0i64..86_400_000, db in 0i64..86_400_000,
            sa in any::<u32>(), sb in any::<u32>(),
        ) {
            let places = [
                Place::Prequeue { shuffle: a },
                Place::Prequeue { shuffle: b },
                place_for(None, &sa.to_be_bytes(), "gig", "x", OPEN + da, OPEN),
                place_for(None, &sb.to_be_bytes(), "gig", "y", OPEN + db, OPEN),
            ];
            for p in &places {
                prop_assert!(p.order_key(OPEN).abs() < 1 << 53, "exact in a double");
                for q in &places {
                    // Keys drop the shuffles' low bits: a tie there may go either way.
                    if p.order_key(OPEN) != q.order_key(OPEN) {
                        prop_assert_eq!(p < q, p.order_key(OPEN) < q.order_key(OPEN), "{:?} {:?}", p, q);
                    }
                }
            }
        }
    }

    #[test]
    fn the_prequeue_draws_the_same_place_whenever_and_wherever_a_fan_joins() {
        let close = draw::closes_at(OPEN);
        let a = place_for(None, b"seed", "gig", "fan-1", OPEN - 3_600_000, OPEN);
        let b = place_for(None, b"seed", "gig", "fan-1", close - 1, OPEN);
        assert_eq!(a, b, "joined an hour or a millisecond before the draw closed: the same place");
        assert!(matches!(a, Place::Drawing { .. }));
        assert_ne!(a, place_for(None, b"other-seed", "gig", "fan-1", close - 1, OPEN), "the seed decides");
        // Sealed: the key depends on the digest, so on who else is in the draw.
        let drawn = a.drawn(b"seed", "gig", "digest-1");
        assert!(matches!(drawn, Place::Prequeue { .. }) && drawn.prequeued());
        assert_ne!(drawn, a.drawn(b"seed", "gig", "digest-2"), "the digest decides");
        assert_eq!(drawn.drawn(b"seed", "gig", "digest-2"), drawn, "a drawn place stays drawn");
        // After the close, until the opening: the opening's first bucket.
        let late = place_for(None, b"seed", "gig", "fan-1", close, OPEN);
        assert!(matches!(late, Place::Arrival { at_ms, .. } if at_ms == OPEN), "{late:?}");
        assert!(drawn < late && late.order_key(OPEN) >= 0, "behind every drawn place");
        let after = place_for(None, b"seed", "gig", "fan-1", OPEN + 250, OPEN);
        assert_eq!(
            after,
            Place::Arrival {
                at_ms: OPEN + 200,
                shuffle: match after {
                    Place::Arrival { shuffle, .. } => shuffle,
                    _ => 0,
                }
            }
        );
        assert!(a < after, "every pre-queued place is ahead of every arrival");
    }

    #[test]
    fn a_fan_joins_when_its_request_reached_the_api_within_bounds() {
        // After the opening: the receipt, however long the handler took to run.
        assert_eq!(joined_at(OPEN + 2_000, Some(OPEN + 800), OPEN), OPEN + 800);
        // Not older than the bound, not in the future, not missing.
        assert_eq!(joined_at(OPEN + 60_000, Some(OPEN + 1), OPEN), OPEN + 55_000);
        assert_eq!(joined_at(OPEN + 2_000, Some(OPEN + 9_000), OPEN), OPEN + 2_000);
        assert_eq!(joined_at(OPEN + 2_000, Some(0), OPEN), OPEN + 2_000);
        assert_eq!(joined_at(OPEN + 2_000, None, OPEN), OPEN + 2_000);
        // Received before the opening, handled after it: the first bucket,
        // not the pre-queue, whose count is settled by the handlers' clocks.
        assert_eq!(joined_at(OPEN + 300, Some(OPEN - 200), OPEN), OPEN);
        // Before the opening, the handler's clock decides.
        assert_eq!(joined_at(OPEN - 10, Some(OPEN - 900), OPEN), OPEN - 10);
        let late = place_for(None, b"s", "gig", "f", joined_at(OPEN + 1_900, Some(OPEN + 150), OPEN), OPEN);
        assert!(matches!(late, Place::Arrival { at_ms, .. } if at_ms == OPEN + 100), "{late:?}");
    }

    #[test]
    fn a_held_ticket_keeps_its_place() {
        let first = place_for(None, b"s", "gig", "f", OPEN + 10, OPEN);
        assert_eq!(place_for(Some(first), b"s", "gig", "f", OPEN + 99_000, OPEN), first);
    }

    proptest! {
        /// Whatever order joins, refreshes (with the ticket), re-joins
        /// (ticket lost) and joins from a second device arrive in, before
        /// or after the opening, no fan ever holds a better place than its
        /// first.
        #[test]
        fn no_fan_ever_holds_a_better_place_than_its_first(
            steps in prop::collection::vec((0usize..6, 0usize..2, any::<bool>(), 0i64..5_000), 1..200),
            start in -60_000i64..3_000,
        ) {
            let mut now = OPEN + start;
            let mut first: [Option<Place>; 6] = [None; 6];
            // Each fan has two devices, each keeping the last ticket it got.
            let mut devices: [[Option<Place>; 2]; 6] = [[None; 2]; 6];
            for (fan, device, lost, gap) in steps {
                now += gap;
                let name = format!("fan-{fan}");
                if lost {
                    devices[fan][device] = None;
                }
                let place = place_for(devices[fan][device], b"seed", "gig", &name, now, OPEN);
                let best = *first[fan].get_or_insert(place);
                prop_assert!(place >= best, "{} held {:?}, then {:?}", name, best, place);
                devices[fan][device] = Some(place);
            }
        }
    }
}
