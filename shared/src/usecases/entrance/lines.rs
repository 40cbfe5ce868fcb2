//! One execution environment's copies of the lines it has seen, and the
//! answers it gives from them without asking the gate.
//!
//! An environment learns that an event has a line from the gate itself
//! (`admit.lua` answers `lined` to a direct call), so an event without one
//! costs nothing more. From then on every join and every poll is answered
//! from the copy: the place's rank from the line's counts, the served mark
//! and its speed from the gate's last answers. Only a fan whose turn came
//! calls the gate. The copy is kept fresh by a sync at most every
//! `sync_every` while fans ask (`line.lua`: the places given here are
//! counted, each fan once, and the counts come back from the served mark
//! on), and by the line's state that every call at the door brings back.
//! Many environments space their syncs so that together they make at most
//! [`crate::rules::line::SYNCS_PER_SECOND`].
//! Its memory is bounded: counts from the served mark on, and the served
//! mark's last two minutes.

use super::fans::{DoorAnswer, FanMemory};
use super::{Outcome, Refusal, Waiting};
use crate::adapters::redis_gate::{
    AtTheDoor, CountedFan, DrawSeed, Drawn, EntryGate, GateError, LineCall, LineState, LineStatus, LineSync,
    LineSyncRequest,
};
use crate::rules::domain::{EventId, FanId};
use crate::rules::line::counts::bucket_of;
use crate::rules::line::draw;
use crate::rules::line::poll::{at_the_door, come_back_in, while_gate_fails};
use crate::rules::line::progress::{beyond_reach, speed, standing, Turn, PACE_HEADROOM};
use crate::rules::line::{
    fan_hash, joined_at, place_for, poll, sync_interval, LineCounts, Place, Progress, Spot, Ticket, TicketKeys,
    BUCKET_MS,
};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Buckets re-read behind the present at each sync (10 s): longer than an
/// environment keeps a place before counting it, so a late count still
/// reaches every copy. The served mark's bucket less as many is the first
/// a copy holds.
const RECOUNT_BUCKETS: u64 = 100;

/// Longer than any call to the gate takes (Redis's timeouts): a sync still
/// on its way after this was lost, and its places go out with the next.
const CALL_ABANDONED_MS: i64 = 5_000;

/// Syncs a request makes, beyond its own, for places in the draw given
/// here while its sync was on its way: only an environment that serves
/// requests at the same time (a local one) needs them; a Lambda
/// environment serves one at a time.
const DRAW_RESYNCS: usize = 3;

/// Fans this environment remembers at the door, at most, and for how long
/// after they last called it: long enough to outlast an outage and its
/// restore, short enough that a fan who walked away is not put back.
const SEATED: usize = 20_000;
const SEATED_FOR_MS: i64 = 60_000;

/// Why the line could not answer.
#[derive(Debug)]
pub(super) enum LineError {
    /// The gate could not be reached, and nothing is known of the line yet.
    Gate(GateError),
    /// The event does not exist.
    NotFound,
}

/// What a sync found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Synced {
    Lined,
    /// The event has no line (any more).
    Unlined,
}

/// What to do with a POST to a lined event.
pub(super) enum Step {
    /// The answer, given from the copy.
    Answer(Outcome),
    /// The fan's turn came (or passed): call the gate.
    Call { call: LineCall, place: Place },
    /// The copy is gone: the event lost its line.
    Unlined,
}

/// One event's line as this environment knows it.
struct EventLine {
    opens_at_ms: i64,
    closes_at_ms: i64,
    joinable_from_ms: i64,
    rate: f64,
    seed: String,
    state: LineState,
    counts: LineCounts,
    progress: Progress,
    /// Places given here that no sync carried yet, and those one on its way
    /// carries, with their fans.
    unsent: Vec<(CountedFan, FanId)>,
    in_flight: Vec<(CountedFan, FanId)>,
    syncing_since_ms: Option<i64>,
    synced_at_ms: Option<i64>,
    /// The counts go on past the last read: read on from here next.
    read_more_from: Option<u64>,
    /// The first place answered "waiting" since the last sync: where the
    /// served mark may move when the line is idle.
    first_waiting: Option<i64>,
    /// The gate's last answer here was a failure.
    gate_failing: bool,
    /// How long this environment waits between syncs of the line, and the
    /// least it may (the configured interval).
    every: Duration,
    least_every: Duration,
    /// When the last sync set out (ms).
    attempted_at_ms: Option<i64>,
    /// Fans whose turn came and who called the gate here: their places'
    /// order keys, and when they last called (ms). Put back at the door
    /// after a restore.
    seated: lru::LruCache<FanId, (i64, i64)>,
    /// When the line was last restored, as this copy knows; a later one
    /// makes the next sync put the seated fans back.
    restored_at: Option<i64>,
    reseat: bool,
    /// The digest of the pre-queue's draw, once the gate sealed it.
    digest: Option<String>,
}

impl EventLine {
    fn new(status: &LineStatus, every: Duration) -> Self {
        Self {
            opens_at_ms: status.opens_at_ms,
            closes_at_ms: status.closes_at_ms,
            joinable_from_ms: status.joinable_from_ms,
            rate: status.rate,
            seed: status.seed.clone(),
            state: status.state,
            counts: LineCounts::new(status.opens_at_ms),
            progress: Progress::default(),
            unsent: Vec::new(),
            in_flight: Vec::new(),
            syncing_since_ms: None,
            synced_at_ms: None,
            read_more_from: None,
            first_waiting: None,
            gate_failing: false,
            every,
            least_every: every,
            attempted_at_ms: None,
            seated: lru::LruCache::new(std::num::NonZeroUsize::new(SEATED).expect("not zero")),
            restored_at: status.restored_at,
            reseat: false,
            digest: None,
        }
    }

    fn has_draw(&self) -> bool {
        draw::has_draw(self.joinable_from_ms, self.opens_at_ms)
    }

    /// A place as the line orders it: drawn, once the draw is sealed.
    fn drawn(&self, event: &EventId, place: Place) -> Place {
        match &self.digest {
            Some(digest) => place.drawn(self.seed.as_bytes(), event.as_str(), digest),
            None => place,
        }
    }

    /// The place of a fan the gate counted at `bucket` (`None`: the draw).
    fn counted_place(&self, event: &EventId, fan: &FanId, bucket: Option<u64>) -> Place {
        let at_ms = match bucket {
            None => draw::closes_at(self.opens_at_ms) - 1,
            Some(b) => self.opens_at_ms + b as i64 * BUCKET_MS,
        };
        place_for(None, self.seed.as_bytes(), event.as_str(), fan.as_str(), at_ms, self.opens_at_ms)
    }

    /// Whether to sync now: at the interval; at once while the counts are
    /// read on or a restore's fans are to be put back; and while the gate's
    /// last answer here was a failure, at the least interval (it may have
    /// been restored since, and this environment's fans are to be seated).
    fn sync_due(&self, now_ms: i64) -> bool {
        if self.syncing_since_ms.is_some_and(|at| now_ms - at < CALL_ABANDONED_MS) {
            return false;
        }
        let since = |at: Option<i64>, every: Duration| at.is_none_or(|at| now_ms - at >= every.as_millis() as i64);
        match self.synced_at_ms {
            None => true,
            Some(at) => {
                self.read_more_from.is_some()
                    || self.reseat
                    || (self.gate_failing && since(self.attempted_at_ms, self.least_every))
                    || (self.awaits_seal(now_ms) && since(self.attempted_at_ms, self.least_every))
                    || since(Some(at), self.every)
            }
        }
    }

    /// Places in the draw wait to be counted, and no sync is on its way.
    fn drawing_unsent(&self, now_ms: i64) -> bool {
        self.unsent.iter().any(|(f, _)| f.bucket.is_none())
            && self.syncing_since_ms.is_none_or(|at| now_ms - at >= CALL_ABANDONED_MS)
    }

    /// The draw is due sealed and this copy has no digest yet: the next
    /// request syncs to learn it, as every pre-queued fan's turn needs it.
    fn awaits_seal(&self, now_ms: i64) -> bool {
        self.digest.is_none() && self.has_draw() && now_ms >= draw::sealed_at(self.opens_at_ms)
    }

    /// What the next sync carries: the places given here, the served mark
    /// last seen, the first waiting place, the counts to read back.
    fn start_sync(&mut self, now_ms: i64) -> LineSyncRequest {
        // A sync that was lost: its places go out with this one.
        let abandoned = std::mem::take(&mut self.in_flight);
        self.unsent.extend(abandoned);
        self.in_flight = std::mem::take(&mut self.unsent);
        self.syncing_since_ms = Some(now_ms);
        self.attempted_at_ms = Some(now_ms);
        let recount = bucket_of(now_ms, self.opens_at_ms).saturating_sub(RECOUNT_BUCKETS);
        let from = match (self.read_more_from, self.synced_at_ms) {
            (Some(b), _) => Some(b),
            (None, None) => None,
            (None, Some(_)) => Some(recount.min(self.counts.end()).max(self.counts.base())),
        };
        let seated = if self.reseat {
            self.seated
                .iter()
                .filter(|(_, (_, at))| now_ms - at < SEATED_FOR_MS)
                .map(|(fan, (key, _))| (fan.as_str().to_owned(), *key))
                .collect()
        } else {
            Vec::new()
        };
        LineSyncRequest {
            environment: None,
            fans: self.in_flight.iter().map(|(f, _)| *f).collect(),
            served_seen: self.progress.served(),
            advance_to: self.first_waiting.take(),
            from_bucket: from,
            seated,
            draw_seen: self.digest.clone(),
        }
    }

    /// Takes in what a sync read at `now_ms`; `reseated` whether it put the
    /// seated fans back.
    fn synced(&mut self, status: LineStatus, now_ms: i64, event: &EventId, fans: &FanMemory, reseated: bool) {
        if reseated {
            self.reseat = false;
        }
        self.every = sync_interval(self.least_every, status.environments);
        self.counts.set_sync_interval(self.every);
        self.progress.set_sync_interval(self.every);
        // A restore since the last sync: the next one puts the fans back.
        if status.restored_at.is_some() && status.restored_at != self.restored_at {
            self.reseat = self.restored_at.is_some() || self.synced_at_ms.is_some();
            self.restored_at = status.restored_at;
        }
        let sent = std::mem::take(&mut self.in_flight);
        let prequeued = sent.iter().filter(|(f, _)| f.bucket.is_none()).count() as u64;
        let buckets: Vec<u64> = sent.iter().filter_map(|(f, _)| f.bucket).collect();
        self.counts.counted(prequeued, &buckets);
        (self.opens_at_ms, self.closes_at_ms) = (status.opens_at_ms, status.closes_at_ms);
        (self.joinable_from_ms, self.rate, self.seed) = (status.joinable_from_ms, status.rate, status.seed);
        if status.draw_digest.is_some() {
            self.digest = status.draw_digest;
        }
        // A fan counted before keeps the place it was counted at (a fan the
        // draw was sealed without, the opening's first bucket).
        for (index, bucket) in &status.duplicates {
            if let Some((_, fan)) = sent.get(*index) {
                fans.remember_place(event, fan, self.counted_place(event, fan, *bucket));
            }
        }
        self.syncing_since_ms = None;
        self.synced_at_ms = Some(now_ms);
        let read = &status.counts;
        if let Some(Spot::Arrival { bucket, .. }) = status.state.served.map(Spot::of_key) {
            self.counts.drop_before(bucket.saturating_sub(RECOUNT_BUCKETS).min(read.from_bucket));
        }
        self.counts.read(read.prequeued, read.from_bucket, &read.arrivals, now_ms);
        self.read_more_from = read.more().then(|| read.from_bucket + read.arrivals.len() as u64);
        self.observe(status.state, now_ms);
    }

    fn sync_failed(&mut self) {
        let unsent = std::mem::take(&mut self.in_flight);
        self.unsent.extend(unsent);
        self.syncing_since_ms = None;
        self.gate_failing = true;
    }

    /// The line's state as the gate left it at `now_ms`.
    fn observe(&mut self, state: LineState, now_ms: i64) {
        self.state = state;
        self.gate_failing = false;
        let served = state.served.map_or(0.0, |key| self.counts.rank_of_key(key));
        self.progress.record(now_ms, state.served, served, state.granted);
        if state.served.is_some() {
            self.progress.next_at(now_ms, served, state.behind);
        }
    }

    /// Counts a place given here.
    fn give(&mut self, event: &EventId, fan: &FanId, place: &Place) {
        self.counts.give(place);
        let bucket = match place {
            Place::Drawing { .. } | Place::Prequeue { .. } => None,
            Place::Arrival { at_ms, .. } => Some(bucket_of(*at_ms, self.opens_at_ms)),
        };
        let hash = fan_hash(self.seed.as_bytes(), event.as_str(), fan.as_str());
        self.unsent.push((CountedFan { hash, bucket }, fan.clone()));
    }

    fn places_left(&self) -> u64 {
        (self.state.capacity - self.state.taken).max(0) as u64
    }

    fn note_waiting(&mut self, place: &Place) {
        let key = place.order_key(self.opens_at_ms);
        self.first_waiting = Some(self.first_waiting.map_or(key, |k| k.min(key)));
    }
}

/// Everything a waiting answer says, before it is signed.
struct Told {
    position: Option<u64>,
    eta_seconds: Option<u64>,
    speed: Option<f64>,
    opens_in_seconds: Option<u64>,
    places_left: u64,
    beyond_reach: bool,
    wait: Duration,
}

/// Every event with a line this environment has seen.
pub(super) struct Lines {
    events: Mutex<HashMap<EventId, EventLine>>,
    /// The least interval between syncs of a line (`LINE_SYNC_MS`).
    sync_every: Duration,
    /// This environment, to the gate's count of those syncing a line.
    environment: u64,
}

impl Lines {
    pub fn new(sync_every: Duration) -> Self {
        let environment = rand::random();
        Self { events: Mutex::new(HashMap::new()), sync_every, environment }
    }

    /// Whether this environment knows the event has a line.
    pub fn knows(&self, event: &EventId) -> bool {
        self.events.lock().unwrap().contains_key(event)
    }

    /// The draw of a line this environment knows.
    pub fn draw_seed(&self, event: &EventId) -> Option<DrawSeed> {
        let events = self.events.lock().unwrap();
        let line = events.get(event)?;
        Some(DrawSeed { seed: line.seed.clone(), prequeued: line.has_draw(), digest: line.digest.clone() })
    }

    /// Syncs the event's copy when it is due (or first learns the line).
    /// A failed sync leaves the last copy in use.
    pub async fn sync(
        &self,
        gate: &EntryGate,
        fans: &FanMemory,
        event: &EventId,
        now: DateTime<Utc>,
    ) -> Result<Synced, LineError> {
        self.sync_when(gate, fans, event, now, EventLine::sync_due).await
    }

    /// Counts at once the places in the draw given here: the draw holds
    /// only the fans the gate counted before it was sealed, and an
    /// environment may serve no other request before then (a Lambda
    /// environment runs nothing between requests), so a join into the
    /// draw is counted in its own request. Its cost, one sync per new
    /// pre-queued fan, falls before the opening, when the gate admits
    /// nobody.
    pub async fn count_draw(&self, gate: &EntryGate, fans: &FanMemory, event: &EventId, now: DateTime<Utc>) {
        let _ = self.sync_when(gate, fans, event, now, EventLine::drawing_unsent).await;
    }

    /// Syncs when `due` says so; then again, a few times at most, while
    /// places in the draw were given here during the sync (by requests
    /// this environment served at the same time, which found it on its
    /// way): they are counted before this request ends.
    async fn sync_when(
        &self,
        gate: &EntryGate,
        fans: &FanMemory,
        event: &EventId,
        now: DateTime<Utc>,
        due: impl Fn(&EventLine, i64) -> bool,
    ) -> Result<Synced, LineError> {
        let mut synced = self.sync_once(gate, fans, event, now, &due).await;
        for _ in 0..DRAW_RESYNCS {
            // Not while the gate fails: the places wait for the next request.
            let again = matches!(synced, Ok(Synced::Lined))
                && self
                    .events
                    .lock()
                    .unwrap()
                    .get(event)
                    .is_some_and(|l| !l.gate_failing && l.drawing_unsent(now.timestamp_millis()));
            if !again {
                break;
            }
            synced = self.sync_once(gate, fans, event, now, &EventLine::drawing_unsent).await;
        }
        synced
    }

    async fn sync_once(
        &self,
        gate: &EntryGate,
        fans: &FanMemory,
        event: &EventId,
        now: DateTime<Utc>,
        due: &impl Fn(&EventLine, i64) -> bool,
    ) -> Result<Synced, LineError> {
        let now_ms = now.timestamp_millis();
        let request = {
            let mut events = self.events.lock().unwrap();
            let request = match events.get_mut(event) {
                Some(line) if !due(line, now_ms) => return Ok(Synced::Lined),
                Some(line) => line.start_sync(now_ms),
                None => LineSyncRequest::default(),
            };
            LineSyncRequest { environment: Some(self.environment), ..request }
        };
        let outcome = gate.sync_line(event, now, &request).await;
        let reseated = !request.seated.is_empty();
        let failed = {
            let mut events = self.events.lock().unwrap();
            match outcome {
                Ok(LineSync::Lined(status)) => {
                    let every = self.sync_every;
                    let line = events.entry(event.clone()).or_insert_with(|| EventLine::new(&status, every));
                    line.synced(*status, now_ms, event, fans, reseated);
                    return Ok(Synced::Lined);
                }
                Ok(LineSync::Unlined { .. }) => {
                    events.remove(event);
                    return Ok(Synced::Unlined);
                }
                Ok(LineSync::NotFound) => {
                    events.remove(event);
                    return Err(LineError::NotFound);
                }
                Err(e) => match events.get_mut(event) {
                    Some(line) => {
                        line.sync_failed();
                        e
                    }
                    None => return Err(LineError::Gate(e)),
                },
            }
        };
        tracing::warn!(error = %failed, event = %event, "line sync failed; answering from the last copy");
        if matches!(failed, GateError::StateLost) {
            // Marked now, not at the scheduler's next run: the restore waits
            // for requests in flight from the loss itself.
            let _ = gate.state_lost_since(event, now).await;
        }
        Ok(Synced::Lined)
    }

    /// Decides a POST to a lined event from the copy: its place (the
    /// ticket's, else the one this environment or the gate remembers, else
    /// a new one), then an answer, or a call to the gate.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        event: &EventId,
        fan: &FanId,
        held: Option<Place>,
        received_ms: Option<i64>,
        now: DateTime<Utc>,
        keys: &TicketKeys,
        fans: &FanMemory,
    ) -> Step {
        let now_ms = now.timestamp_millis();
        let mut events = self.events.lock().unwrap();
        let Some(line) = events.get_mut(event) else { return Step::Unlined };
        if now_ms < line.joinable_from_ms {
            return Step::Answer(Outcome::Refused(Refusal::NotOpen));
        }
        if now_ms >= line.closes_at_ms {
            return Step::Answer(Outcome::Refused(Refusal::Closed));
        }
        let refused = |wait| Step::Answer(Outcome::Refused(Refusal::RateLimited { retry_after: wait }));
        let remembered = fans.place(event, fan);
        let place = match (held, remembered) {
            (Some(h), r) => {
                if r.is_none_or(|r| h < r) {
                    fans.remember_place(event, fan, h);
                }
                r.map_or(h, |r| h.min(r))
            }
            (None, Some(r)) => r,
            (None, None) => {
                if let Err(wait) = fans.ticketless(event, fan, now_ms) {
                    return refused(wait);
                }
                let joined = joined_at(now_ms, received_ms, line.opens_at_ms);
                let place =
                    place_for(None, line.seed.as_bytes(), event.as_str(), fan.as_str(), joined, line.opens_at_ms);
                line.give(event, fan, &place);
                fans.remember_place(event, fan, place);
                metrics::counter!("LineJoined").increment(1);
                place
            }
        };
        let place = line.drawn(event, place);
        if line.state.sold_out_for_good {
            return Step::Answer(Outcome::Refused(Refusal::SoldOut));
        }
        let door = fans.door(event, fan, now_ms);
        let s = standing(&mut line.counts, &line.progress, &place, now_ms, line.rate);
        // A join without the ticket is held to the allowance, unless it is
        // the call the fan owes: its turn came and the door's answer ran out.
        let rejoin = held.is_none() && remembered.is_some();
        if rejoin && (door.is_some() || matches!(s.turn, Turn::In(_))) {
            if let Err(wait) = fans.ticketless(event, fan, now_ms) {
                return refused(wait);
            }
        }
        if let Some(door) = door {
            return Step::Answer(self.waiting(line, keys, event, fan, place, now, told_at_door(line, door, now_ms)));
        }
        match s.turn {
            Turn::Missed => Step::Call { call: LineCall::Existing, place },
            Turn::Came => {
                let order = place.order_key(line.opens_at_ms);
                line.seated.put(fan.clone(), (order, now_ms));
                let drawn = place.prequeued().then(|| Drawn {
                    fan: fan_hash(line.seed.as_bytes(), event.as_str(), fan.as_str()),
                    late: line.counted_place(event, fan, Some(0)).order_key(line.opens_at_ms),
                });
                Step::Call { call: LineCall::Turn { order, drawn }, place }
            }
            Turn::In(turn_in) => {
                // A place still drawing has no key: where the line stands
                // is not known from it.
                if !matches!(place, Place::Drawing { .. }) {
                    line.note_waiting(&place);
                }
                let open = now_ms >= line.opens_at_ms;
                let places_left = line.places_left();
                let beyond = open && beyond_reach(s.ahead, places_left as i64, line.progress.show_fraction());
                let jitter = super::jitter();
                let mut wait =
                    if beyond { poll::beyond_reach(turn_in, jitter) } else { come_back_in(turn_in, jitter, open) };
                if line.gate_failing {
                    wait = while_gate_fails(wait, jitter);
                }
                // Before the opening a pre-queued place is drawn, not counted
                // yet; a place still drawing has no key.
                let hidden = (!open && place.prequeued()) || matches!(place, Place::Drawing { .. });
                let ahead = s.ahead.round() as u64;
                let told = Told {
                    position: (!hidden).then_some(ahead + 1),
                    eta_seconds: (!hidden).then_some(s.eta_s.ceil() as u64),
                    speed: (!hidden).then(|| speed(&line.progress, line.rate)),
                    opens_in_seconds: hidden.then(|| ((line.opens_at_ms - now_ms).max(0) as u64).div_ceil(1000)),
                    places_left,
                    beyond_reach: beyond,
                    wait,
                };
                Step::Answer(self.waiting(line, keys, event, fan, place, now, told))
            }
        }
    }

    /// The line's state a call at the door brought back.
    pub fn observe(&self, event: &EventId, state: LineState, now: DateTime<Utc>) {
        if let Some(line) = self.events.lock().unwrap().get_mut(event) {
            line.observe(state, now.timestamp_millis());
        }
    }

    /// The fan left the door: admitted, or told a final answer.
    pub fn left_door(&self, event: &EventId, fan: &FanId) {
        if let Some(line) = self.events.lock().unwrap().get_mut(event) {
            line.seated.pop(fan);
        }
    }

    /// A call to the gate failed: answers slow down until it answers again.
    pub fn gate_failed(&self, event: &EventId) {
        if let Some(line) = self.events.lock().unwrap().get_mut(event) {
            line.gate_failing = true;
        }
    }

    /// The waiting answer for a fan the gate's door holds, remembered until
    /// the fan is told to come back.
    #[allow(clippy::too_many_arguments)]
    pub fn at_the_door(
        &self,
        event: &EventId,
        fan: &FanId,
        place: Place,
        door: AtTheDoor,
        now: DateTime<Utc>,
        keys: &TicketKeys,
        fans: &FanMemory,
    ) -> Outcome {
        metrics::counter!("LineAtTheDoor").increment(1);
        let now_ms = now.timestamp_millis();
        let mut events = self.events.lock().unwrap();
        let Some(line) = events.get_mut(event) else { return Outcome::Refused(Refusal::EventNotFound) };
        let due_ms = door.due.map(|d| now_ms + d.as_millis() as i64);
        let wait = at_the_door(door.due, door.chance, super::jitter());
        let answer = DoorAnswer { ahead: door.ahead, due_ms, until_ms: now_ms + wait.as_millis() as i64 };
        fans.remember_door(event, fan, answer);
        let told = Told { wait, ..told_at_door(line, answer, now_ms) };
        self.waiting(line, keys, event, fan, place, now, told)
    }

    #[allow(clippy::too_many_arguments)]
    fn waiting(
        &self,
        line: &EventLine,
        keys: &TicketKeys,
        event: &EventId,
        fan: &FanId,
        place: Place,
        now: DateTime<Utc>,
        told: Told,
    ) -> Outcome {
        metrics::counter!("LineWaiting").increment(1);
        metrics::gauge!("LineRate").set(line.rate);
        metrics::gauge!("LineAtDoor").set(line.state.at_door as f64);
        let ticket = Ticket { place, issued_at_s: now.timestamp() }.encode(keys, event.as_str(), fan.as_str());
        Outcome::Waiting(Waiting {
            event_id: event.as_str().to_owned(),
            fan_id: fan.as_str().to_owned(),
            status: "waiting",
            ticket,
            position: told.position,
            ahead: told.position.map(|p| p - 1),
            eta_seconds: told.eta_seconds,
            opens_in_seconds: told.opens_in_seconds,
            places_per_second: told.speed.map(|v| (v * 100.0).round() / 100.0),
            places_left: told.places_left,
            beyond_reach: told.beyond_reach,
            retry_after_ms: told.wait.as_millis() as u64,
        })
    }
}

/// What a fan at the door is told at `now_ms`, from the door's answer
/// (given then or earlier). The fans still ahead are those the pace has not
/// reached by now, counted back from when the grant is due, never more than
/// the door held: the gate grants nothing before the opening or during a
/// restore's hold, so the time since the answer alone would count fans as
/// gone who are not, and the position would disagree with the ETA.
fn told_at_door(line: &EventLine, door: DoorAnswer, now_ms: i64) -> Told {
    let due_in = door.due_ms.map(|d| (d - now_ms).max(0));
    let pace = line.rate * PACE_HEADROOM;
    let ahead = match due_in {
        Some(d) => door.ahead.min((d as f64 * pace / 1000.0).floor() as u64),
        None => door.ahead,
    };
    let door = DoorAnswer { ahead, ..door };
    let places_left = line.places_left();
    // Before the opening the pre-queue's order is not told.
    let open = now_ms >= line.opens_at_ms;
    Told {
        position: open.then_some(door.ahead + 1),
        eta_seconds: due_in.filter(|_| open).map(|d| (d as u64).div_ceil(1000)),
        speed: open.then_some(pace),
        opens_in_seconds: (!open).then(|| ((line.opens_at_ms - now_ms) as u64).div_ceil(1000)),
        places_left,
        // At the door a fan is next for any place that comes back.
        beyond_reach: false,
        wait: Duration::from_millis((door.until_ms - now_ms).max(0) as u64),
    }
}
