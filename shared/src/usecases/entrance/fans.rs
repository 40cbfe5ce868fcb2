//! What one execution environment remembers of the fans it answered, so
//! that hammering costs the event's core nothing: a bounded map (least
//! recently used out) of each fan's attempts without a ticket, its direct
//! attempts at an event without a line, its reads of its own entry, the
//! place it was given here or the gate said it already had, what the gate's
//! door told it, and the entry it was told it has.

use crate::rules::domain::{Entry, EventId, FanId};
use crate::rules::line::receipt::Receipt;
use crate::rules::line::Place;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

/// Fans remembered per environment. An environment answers one request at
/// a time, about ten a second at most, so 5,000 fans are its last eight
/// minutes at full speed: longer than any window kept here (a minute). At
/// about 300 bytes each that is 1.5 MB, reached within the first few
/// thousand requests and flat after (`make bench`'s memory figure).
const REMEMBERED: usize = 5_000;

/// Joins without a ticket one fan may make per [`TICKETLESS_WINDOW`] here:
/// a first join, a reload that lost its ticket, a second device. More are
/// refused (429) from memory; a fan that keeps its ticket never meets this.
pub const TICKETLESS_JOINS: u32 = 3;
pub const TICKETLESS_WINDOW: Duration = Duration::from_secs(60);

/// Reads of its own entry (`GET /entries/me`) one fan may make per
/// [`ENTRY_READS_WINDOW`] here that reach the gate: a page that shows the
/// entry once and a reload or two. More are refused (429) from memory; an
/// entry this environment told the fan, or read for it, is answered from
/// memory and never counts.
pub const ENTRY_READS: u32 = 3;
pub const ENTRY_READS_WINDOW: Duration = Duration::from_secs(10);

/// Per-fan entry attempts at an event without a line, at most `requests`
/// per `window` in each environment (0 turns the limit off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
}

impl RateLimit {
    pub const OFF: Self = Self { requests: 0, window: Duration::from_secs(1) };
}

/// A fixed window of attempts: the first starts its clock.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start_ms: i64,
    count: u32,
}

impl Window {
    /// Counts one attempt at `now_ms`; `Err(wait)` past `most` in `length`.
    fn attempt(&mut self, now_ms: i64, most: u32, length: Duration) -> Result<(), Duration> {
        let length_ms = length.as_millis() as i64;
        if self.count == 0 || now_ms - self.start_ms >= length_ms {
            *self = Window { start_ms: now_ms, count: 0 };
        }
        if self.count >= most {
            return Err(Duration::from_millis((self.start_ms + length_ms - now_ms).max(1) as u64));
        }
        self.count += 1;
        Ok(())
    }
}

/// What the gate's door told a fan: `ahead` fans before it, its grant due
/// at `due_ms` (`None`: no place free when it asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorAnswer {
    pub ahead: u64,
    pub due_ms: Option<i64>,
    /// Until when the answer stands: a call before it asks the gate nothing.
    pub until_ms: i64,
}

#[derive(Debug, Clone, Default)]
struct Remembered {
    place: Option<Place>,
    ticketless: Window,
    direct: Window,
    reads: Window,
    door: Option<DoorAnswer>,
    entry: Option<Entry>,
    /// The receipt the fan was given with its entry.
    receipt: Option<Receipt>,
}

pub struct FanMemory {
    fans: Mutex<LruCache<(EventId, FanId), Remembered>>,
}

impl Default for FanMemory {
    fn default() -> Self {
        Self::with_room(REMEMBERED)
    }
}

impl FanMemory {
    pub fn with_room(fans: usize) -> Self {
        Self { fans: Mutex::new(LruCache::new(NonZeroUsize::new(fans.max(1)).expect("at least one"))) }
    }

    fn with<T>(&self, event: &EventId, fan: &FanId, f: impl FnOnce(&mut Remembered) -> T) -> T {
        let mut fans = self.fans.lock().unwrap();
        f(fans.get_or_insert_mut((event.clone(), fan.clone()), Remembered::default))
    }

    /// Counts a join without a ticket; `Err(wait)` past the allowance.
    pub fn ticketless(&self, event: &EventId, fan: &FanId, now_ms: i64) -> Result<(), Duration> {
        self.with(event, fan, |r| r.ticketless.attempt(now_ms, TICKETLESS_JOINS, TICKETLESS_WINDOW))
    }

    /// Counts a direct attempt; `Err(wait)` past `limit`.
    pub fn direct(&self, event: &EventId, fan: &FanId, now_ms: i64, limit: RateLimit) -> Result<(), Duration> {
        if limit.requests == 0 {
            return Ok(());
        }
        self.with(event, fan, |r| r.direct.attempt(now_ms, limit.requests, limit.window))
    }

    /// Counts a read of the fan's own entry that would reach the gate;
    /// `Err(wait)` past [`ENTRY_READS`].
    pub fn read(&self, event: &EventId, fan: &FanId, now_ms: i64) -> Result<(), Duration> {
        self.with(event, fan, |r| r.reads.attempt(now_ms, ENTRY_READS, ENTRY_READS_WINDOW))
    }

    /// The best place this fan was given here or is known to hold.
    pub fn place(&self, event: &EventId, fan: &FanId) -> Option<Place> {
        self.fans.lock().unwrap().peek(&(event.clone(), fan.clone())).and_then(|r| r.place)
    }

    /// Remembers a place of this fan's, keeping the better one.
    pub fn remember_place(&self, event: &EventId, fan: &FanId, place: Place) {
        self.with(event, fan, |r| r.place = Some(r.place.map_or(place, |p| p.min(place))));
    }

    /// What the door told this fan, while it still stands at `now_ms`.
    pub fn door(&self, event: &EventId, fan: &FanId, now_ms: i64) -> Option<DoorAnswer> {
        let fans = self.fans.lock().unwrap();
        fans.peek(&(event.clone(), fan.clone())).and_then(|r| r.door).filter(|d| now_ms < d.until_ms)
    }

    pub fn remember_door(&self, event: &EventId, fan: &FanId, answer: DoorAnswer) {
        self.with(event, fan, |r| r.door = Some(answer));
    }

    /// The entry this fan was told it has (queued: it never changes).
    pub fn entry(&self, event: &EventId, fan: &FanId) -> Option<Entry> {
        self.fans.lock().unwrap().peek(&(event.clone(), fan.clone())).and_then(|r| r.entry.clone())
    }

    /// The receipt this fan was given with its entry, if one was signed.
    pub fn receipt(&self, event: &EventId, fan: &FanId) -> Option<Receipt> {
        self.fans.lock().unwrap().peek(&(event.clone(), fan.clone())).and_then(|r| r.receipt.clone())
    }

    pub fn remember_entry(&self, entry: &Entry, receipt: Option<&Receipt>) {
        self.with(&entry.event_id, &entry.fan_id, |r| {
            r.entry = Some(entry.clone());
            if let Some(receipt) = receipt {
                r.receipt = Some(receipt.clone());
            }
            r.door = None;
        });
    }

    /// The fan left the door (its grant claimed, or refused).
    pub fn forget_door(&self, event: &EventId, fan: &FanId) {
        if let Some(r) = self.fans.lock().unwrap().peek_mut(&(event.clone(), fan.clone())) {
            r.door = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (EventId, FanId) {
        (EventId::parse("gig").unwrap(), FanId::parse("fan").unwrap())
    }

    #[test]
    fn a_fan_past_its_allowance_waits_for_its_window_to_end() {
        let (e, f) = ids();
        let m = FanMemory::default();
        for _ in 0..TICKETLESS_JOINS {
            assert!(m.ticketless(&e, &f, 1_000).is_ok());
        }
        assert_eq!(m.ticketless(&e, &f, 21_000), Err(Duration::from_secs(40)));
        assert!(m.ticketless(&e, &f, 61_000).is_ok(), "a new window");
        let limit = RateLimit { requests: 2, window: Duration::from_secs(10) };
        assert!(m.direct(&e, &f, 0, limit).is_ok() && m.direct(&e, &f, 1, limit).is_ok());
        assert_eq!(m.direct(&e, &f, 9_000, limit), Err(Duration::from_secs(1)));
        assert!(m.direct(&e, &f, 9_000, RateLimit::OFF).is_ok());
        for _ in 0..ENTRY_READS {
            assert!(m.read(&e, &f, 0).is_ok());
        }
        assert_eq!(m.read(&e, &f, 4_000), Err(Duration::from_secs(6)), "reads have their own window");
    }

    #[test]
    fn the_better_place_is_kept_and_the_memory_is_bounded() {
        let (e, f) = ids();
        let m = FanMemory::with_room(2);
        let (early, late) = (Place::Arrival { at_ms: 100, shuffle: 9 }, Place::Arrival { at_ms: 900, shuffle: 1 });
        m.remember_place(&e, &f, late);
        m.remember_place(&e, &f, early);
        m.remember_place(&e, &f, late);
        assert_eq!(m.place(&e, &f), Some(early));
        for other in ["a", "b"] {
            m.remember_place(&e, &FanId::parse(other).unwrap(), late);
        }
        assert_eq!(m.place(&e, &f), None, "the least recently used fan left");
    }

    #[test]
    fn a_door_answer_stands_until_its_time() {
        let (e, f) = ids();
        let m = FanMemory::default();
        m.remember_door(&e, &f, DoorAnswer { ahead: 3, due_ms: Some(500), until_ms: 500 });
        assert_eq!(m.door(&e, &f, 499).map(|d| d.ahead), Some(3));
        assert_eq!(m.door(&e, &f, 500), None);
        m.forget_door(&e, &f);
        assert_eq!(m.door(&e, &f, 0), None);
    }
}
