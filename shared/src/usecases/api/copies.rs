//! The environment's copies of events' public views, so that `GET
//! /events/{id}` costs the event's core one read per environment and
//! second whoever hammers it: a copy (or "no such event") younger than its
//! maximum age is answered from memory, an older one is read again. A read
//! that fails is not kept: the next request reads again.

use crate::adapters::redis_gate::EventView;
use crate::rules::domain::EventId;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

/// How old a copy may be when it is answered: docs/api.md promises a view
/// at most this old (`remaining` may lag the gate by as much).
pub const EVENT_COPY_MAX_AGE: Duration = Duration::from_secs(1);

/// Events kept per environment: a calendar holds a handful at a time; ids
/// nobody defined (a client walking random ids) are kept too, so the bound
/// keeps them from growing the memory. About 200 bytes each.
const KEPT: usize = 1_000;

pub struct EventCopies {
    max_age_ms: i64,
    copies: Mutex<LruCache<EventId, Kept>>,
}

#[derive(Clone)]
struct Kept {
    read_ms: i64,
    view: Option<EventView>,
}

impl EventCopies {
    /// Copies answered while younger than `max_age` (zero: never).
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age_ms: max_age.as_millis() as i64,
            copies: Mutex::new(LruCache::new(NonZeroUsize::new(KEPT).expect("not zero"))),
        }
    }

    /// The copy of `event` read at most the maximum age before `now_ms`:
    /// `Some(None)` when the gate said there is no such event.
    pub fn fresh(&self, event: &EventId, now_ms: i64) -> Option<Option<EventView>> {
        let mut copies = self.copies.lock().unwrap();
        let copy = copies.get(event)?;
        // A clock that went back does not make a copy younger than zero.
        (now_ms >= copy.read_ms && now_ms - copy.read_ms < self.max_age_ms).then(|| copy.view.clone())
    }

    /// Keeps what the gate answered at `now_ms`.
    pub fn keep(&self, event: &EventId, view: Option<EventView>, now_ms: i64) {
        if self.max_age_ms > 0 {
            self.copies.lock().unwrap().put(event.clone(), Kept { read_ms: now_ms, view });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(taken: i64) -> EventView {
        EventView { title: "t".into(), opens_at: "a".into(), closes_at: "b".into(), capacity: 5, taken, draw: None }
    }

    #[test]
    fn a_copy_is_answered_until_it_is_as_old_as_allowed() {
        let copies = EventCopies::new(Duration::from_secs(1));
        let (gig, none) = (EventId::parse("gig").unwrap(), EventId::parse("none").unwrap());
        assert_eq!(copies.fresh(&gig, 0), None, "nothing read yet");
        copies.keep(&gig, Some(view(1)), 1_000);
        copies.keep(&none, None, 1_000);
        assert_eq!(copies.fresh(&gig, 1_999), Some(Some(view(1))));
        assert_eq!(copies.fresh(&none, 1_500), Some(None), "no such event is kept too");
        assert_eq!(copies.fresh(&gig, 2_000), None, "a second old: read again");
        assert_eq!(copies.fresh(&gig, 999), None, "a clock that went back reads again");
        let never = EventCopies::new(Duration::ZERO);
        never.keep(&gig, Some(view(1)), 0);
        assert_eq!(never.fresh(&gig, 0), None);
    }
}
