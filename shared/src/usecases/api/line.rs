//! The fan API's side of the line ([`crate::rules::line`]): what one
//! execution environment keeps of each event with a line, and the answers
//! it gives without asking the gate.
//!
//! An environment learns that an event has a line from the gate itself
//! (`admit.lua` answers `lined` to a caller that did not follow one), so an
//! event without a line costs nothing more than it did. Every join and
//! every poll is then answered from memory: the ticket is verified and the
//! front computed here, and only a fan whose turn came reaches the gate.
//!
//! The environment's copy of the line is refreshed on the admissions it
//! sends anyway: a fan's admission carries the tickets the environment
//! issued since (into the gate's counts) and brings the counts, `taken` and
//! `capacity` back, at most once per `max_age` ([`EntryGate::admit_in_line`]).
//! An environment that admitted nobody for [`FALLBACK_SYNC`] syncs on its
//! own ([`EntryGate::sync_line`]), and every [`FULL_SYNC`] it re-reads the
//! line's definition (rate, seed, pauses). When a call to the gate fails,
//! the front stands where the gate last answered until it answers again,
//! and an environment that does not call stops [`FRONT_HORIZON`] after the
//! last answer; a restore pauses the line from the loss on, so the turns
//! that came while nobody could be admitted come again, first, once the
//! gate is back.

use super::{json_response, ApiError};
use crate::adapters::redis_gate::{
    EntryGate, GateError, IssuedTickets, LineCall, LineCountsRead, LineRefresh, LineStatus, LineSync, LineTail,
};
use crate::adapters::secrets::SecretSource;
use crate::rules::domain::{EventId, FanId};
use crate::rules::line::front::bucket_of;
use crate::rules::line::poll::{come_back_in, paced_wait, retry_after_header, while_gate_fails};
use crate::rules::line::{
    joined_at, place_for, FrontWalk, LineCounts, LineShape, Place, Ticket, TicketError, TicketKeys, FALLBACK_SYNC,
    FRONT_HORIZON, FULL_SYNC, PREQUEUE_SETTLE, SOLD_OUT_SYNC, TURN_WINDOW,
};
use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use metrics::{counter, gauge};
use serde_json::json;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The request header a fan repeats its POST with.
pub const TICKET_HEADER: &str = "x-fanrush-ticket";

/// The longest ticket header accepted, as `openapi.yaml` documents it: a
/// ticket is 51 characters, so anything past this is refused before the line
/// (or an unlined gate) is consulted.
pub const TICKET_HEADER_MAX_LEN: usize = 256;

/// The waiting answer's status: 203 Non-Authoritative Information. No other
/// answer of either API uses it, so a client can tell "keep waiting" from
/// every final answer by the status alone; it is a 2xx (waiting is the line
/// working, not an error: API Gateway's 4XX/5XX metrics and the alarms on
/// them stay quiet during an opening); it carries a body; and its meaning
/// fits: the answer is the line's estimate, not the gate's decision.
pub const WAITING: StatusCode = StatusCode::NON_AUTHORITATIVE_INFORMATION;

/// Buckets the gate's counts are re-read behind the present at each
/// refresh (10 s): twice the longest an environment keeps tickets before
/// its fallback sync flushes them, so a late flush still lands in the
/// others' copies.
const RECOUNT_BUCKETS: u64 = 100;

/// How often the ticket keys are read again (the secrets extension caches
/// them for 300 s by default), and at most how often an unknown key id
/// makes them be read early.
const KEYS_TTL: Duration = Duration::from_secs(300);
const KEYS_REFRESH_GAP: Duration = Duration::from_secs(10);

/// Why the line could not answer.
#[derive(Debug)]
pub(super) enum LineError {
    /// The gate could not be reached, and nothing is known of the line yet.
    Gate(GateError),
    /// The event does not exist.
    NotFound,
    /// A refusal to answer as it is (bad ticket, not open, sold out...).
    Refused(ApiError),
    /// No ticket key is configured or readable: the line cannot issue or
    /// verify tickets.
    NoKeys(String),
}

/// What to do with a POST to an event.
pub(super) enum Step {
    /// The event has no line (as far as this environment knows).
    Unlined,
    /// The fan's turn came: ask the gate.
    Turn { call: LineCall, place: Place },
    /// The answer, given without the gate.
    Answer(Response<Body>),
}

/// The ticket signing keys, read through a secret source and cached.
pub struct TicketKeyring {
    current: SecretSource,
    /// A local stand-in for `AWSPREVIOUS` (the extension reads that itself).
    previous: SecretSource,
    cached: tokio::sync::Mutex<Option<(TicketKeys, Instant)>>,
}

impl TicketKeyring {
    pub fn new(current: SecretSource, previous: SecretSource) -> Self {
        Self { current, previous, cached: tokio::sync::Mutex::new(None) }
    }

    /// No keys: events with a line answer 503 until one is configured.
    pub fn none() -> Self {
        Self::new(SecretSource::None, SecretSource::None)
    }

    async fn keys(&self, refresh: bool) -> Result<TicketKeys, String> {
        let mut cached = self.cached.lock().await;
        if let Some((keys, at)) = cached.as_ref() {
            let fresh = at.elapsed() < KEYS_TTL;
            if fresh && !(refresh && at.elapsed() >= KEYS_REFRESH_GAP) {
                return Ok(keys.clone());
            }
        }
        let current = self.current.resolve().await.map_err(|e| e.to_string())?;
        let Some(current) = current.filter(|c| !c.expose().is_empty()) else {
            return Err("no ticket key is configured (LINE_TICKET_SECRET_ID)".into());
        };
        let previous = match self.previous.resolve().await.map_err(|e| e.to_string())? {
            Some(p) => Some(p),
            None => self.current.resolve_previous().await.map_err(|e| e.to_string())?,
        };
        let keys = TicketKeys::new(current.expose().as_bytes(), previous.as_ref().map(|p| p.expose().as_bytes()));
        *cached = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }
}

/// One event's line as this environment knows it.
struct EventLine {
    status: LineStatus,
    /// The gate's counts as last read (they only grow: merged by maximum,
    /// so a late reply never takes a count back).
    counts: LineCounts,
    walk: FrontWalk,
    /// The last counts read (and when, Unix ms), the last definition read,
    /// and the last answer of any kind from the gate (Unix ms).
    counted_at: Instant,
    counted_at_ms: i64,
    defined_at: Instant,
    heard_at_ms: i64,
    /// Tickets issued here since the last refresh, and those a call on its
    /// way carries: counted in the walk until the gate's counts hold them.
    issued: IssuedTickets,
    in_flight: IssuedTickets,
    /// When the call carrying `in_flight` left (a call whose request was
    /// dropped stops counting as on its way after [`CALL_ABANDONED`]).
    calling: Option<Instant>,
    /// A call failed since the definition was last read: read it again.
    stale_definition: bool,
    /// The gate's last answer here was a failure: the front stands where
    /// the gate last answered until it answers again, so no turn comes
    /// during an outage (a restore pauses the line from the loss, and a
    /// fan let through meanwhile would come back ahead of the earlier fans
    /// the outage refused).
    gate_failing: bool,
    /// When the first ticket issued here since the last refresh whose turn
    /// is near ([`FALLBACK_SYNC`] or less away) was issued: the others'
    /// fronts reach it soon, so it is flushed within `max_age`, admissions
    /// or not.
    near_issued_at: Option<Instant>,
}

/// Longer than any call to the gate takes (Redis's timeouts).
const CALL_ABANDONED: Duration = Duration::from_secs(5);

impl EventLine {
    fn new(status: LineStatus, now_ms: i64) -> Self {
        let mut line = Self {
            counts: LineCounts::default(),
            walk: FrontWalk::new(shape_of(&status, LineCounts::default(), false)),
            status,
            counted_at: Instant::now(),
            counted_at_ms: now_ms,
            defined_at: Instant::now(),
            heard_at_ms: now_ms,
            issued: IssuedTickets::default(),
            in_flight: IssuedTickets::default(),
            calling: None,
            stale_definition: false,
            gate_failing: false,
            near_issued_at: None,
        };
        let counts = line.status.counts.clone();
        line.absorb(&counts);
        line
    }

    /// Takes counts a reply read into the environment's copy and rebuilds
    /// the walk.
    fn absorb(&mut self, read: &LineCountsRead) {
        let mut counts = LineCounts { prequeued: read.prequeued, arrivals: vec![0; read.from_bucket as usize] };
        counts.arrivals.extend_from_slice(&read.arrivals);
        self.counts.merge(&counts);
        let mut counts = self.counts.clone();
        for pending in [&self.issued, &self.in_flight] {
            counts.prequeued += pending.prequeued;
            for (bucket, n) in &pending.arrivals {
                let b = *bucket as usize;
                if counts.arrivals.len() <= b {
                    counts.arrivals.resize(b + 1, 0);
                }
                counts.arrivals[b] += n;
            }
        }
        self.walk = FrontWalk::new(shape_of(&self.status, counts, self.prequeue_settled()));
    }

    fn settles_at(&self) -> i64 {
        self.status.opens_at_ms + PREQUEUE_SETTLE.as_millis() as i64
    }

    /// Whether the counts were read late enough to hold the whole pre-queue.
    fn prequeue_settled(&self) -> bool {
        self.counted_at_ms >= self.settles_at()
    }

    /// Notes a read of the counts at `now_ms`.
    fn counted(&mut self, read: &LineCountsRead, now_ms: i64) {
        self.counted_at = Instant::now();
        self.counted_at_ms = self.counted_at_ms.max(now_ms);
        self.absorb(read);
    }

    /// Counts a ticket issued here at `now_ms`: in the next refresh, and in
    /// this environment's front at once.
    fn count(&mut self, place: &Place, now_ms: i64) {
        self.walk.add(place);
        let bucket = match place {
            Place::Prequeue { .. } => None,
            Place::Arrival { at_ms, .. } => Some(bucket_of(*at_ms, self.status.opens_at_ms) as u64),
        };
        self.issued.add(bucket, 1);
        if self.near_issued_at.is_none() && self.walk.eta_seconds(place, now_ms) <= FALLBACK_SYNC.as_secs_f64() {
            self.near_issued_at = Some(Instant::now());
        }
    }

    /// The first bucket a refresh should read back.
    fn recount_from(&self, now_ms: i64) -> u64 {
        let now_bucket = bucket_of(now_ms, self.status.opens_at_ms) as u64;
        (self.counts.arrivals.len() as u64).min(now_bucket.saturating_sub(RECOUNT_BUCKETS))
    }

    fn busy(&self) -> bool {
        self.calling.is_some_and(|at| at.elapsed() < CALL_ABANDONED)
    }

    /// Hands the tickets issued since the last refresh to a call leaving now.
    fn start_call(&mut self) -> IssuedTickets {
        self.calling = Some(Instant::now());
        // A call that was abandoned: its tickets go out with this one.
        let abandoned = std::mem::take(&mut self.in_flight);
        self.issued.absorb(abandoned);
        self.in_flight = std::mem::take(&mut self.issued);
        self.near_issued_at = None;
        self.in_flight.clone()
    }

    /// The call failed: its tickets go out with the next one, and the
    /// definition is read again once the gate answers.
    fn call_failed(&mut self) {
        let unsent = std::mem::take(&mut self.in_flight);
        if !unsent.is_empty() {
            self.near_issued_at.get_or_insert_with(Instant::now);
        }
        self.issued.absorb(unsent);
        self.calling = None;
        self.stale_definition = true;
        self.gate_failing = true;
    }

    /// Whether a standalone sync is due at `now_ms`. Until the pre-queue's
    /// count is final, every `max_age` (before the opening the gate admits
    /// nobody, so nothing else brings the counts), and once as soon as it
    /// can be; within `max_age` of a ticket issued near the front; else
    /// when no admission brought the counts for [`FALLBACK_SYNC`].
    fn sync_due(&self, max_age: Duration, now_ms: i64) -> bool {
        let fallback = if now_ms < self.settles_at() {
            max_age
        } else if self.status.taken >= self.status.capacity {
            SOLD_OUT_SYNC
        } else {
            FALLBACK_SYNC
        };
        self.counted_at.elapsed() >= fallback.max(max_age)
            || self.near_issued_at.is_some_and(|at| at.elapsed() >= max_age)
            || (now_ms >= self.settles_at() && !self.prequeue_settled())
            || self.defined_at.elapsed() >= FULL_SYNC
            || self.stale_definition
    }

    fn call_done(&mut self, now_ms: i64) {
        self.in_flight = IssuedTickets::default();
        self.calling = None;
        self.heard(now_ms);
    }

    fn heard(&mut self, now_ms: i64) {
        self.heard_at_ms = now_ms;
        self.gate_failing = false;
    }

    /// The moment this environment's front stands at, at `now_ms`: where
    /// the gate last answered while it fails, else at most
    /// [`FRONT_HORIZON`] past its last answer.
    fn front_time(&self, now_ms: i64) -> i64 {
        if self.gate_failing {
            now_ms.min(self.heard_at_ms)
        } else {
            now_ms.min(self.heard_at_ms + FRONT_HORIZON.num_milliseconds())
        }
    }
}

fn shape_of(s: &LineStatus, counts: LineCounts, prequeue_settled: bool) -> LineShape {
    LineShape { opens_at_ms: s.opens_at_ms, rate: s.rate, pauses: s.pauses.clone(), counts, prequeue_settled }
}

/// Every event with a line this environment has seen.
pub(super) struct Lines {
    events: Mutex<HashMap<EventId, EventLine>>,
    keys: TicketKeyring,
    max_age: Duration,
    jitter_seed: u64,
    jitter_counter: AtomicU64,
}

impl Lines {
    pub fn new(keys: TicketKeyring, max_age: Duration) -> Self {
        Self {
            events: Mutex::new(HashMap::new()),
            keys,
            max_age,
            jitter_seed: RandomState::new().hash_one(std::process::id()),
            jitter_counter: AtomicU64::new(0),
        }
    }

    fn jitter(&self) -> f64 {
        let n = RandomState::new().hash_one((self.jitter_seed, self.jitter_counter.fetch_add(1, Ordering::Relaxed)));
        (n >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Learns (or re-reads) an event's line from the gate after it answered
    /// `lined`.
    pub async fn adopt(&self, gate: &EntryGate, event: &EventId, now: DateTime<Utc>) -> Result<(), LineError> {
        self.sync(gate, event, now, true).await.map(|_| ())
    }

    /// Syncs on its own when this environment's admissions brought no
    /// refresh for [`FALLBACK_SYNC`], when the definition is older than
    /// [`FULL_SYNC`], or when `force`d; never while another call carries its
    /// tickets. Returns whether the event (still) has a line; a failed sync
    /// leaves the last copy in use.
    async fn sync(
        &self,
        gate: &EntryGate,
        event: &EventId,
        now: DateTime<Utc>,
        force: bool,
    ) -> Result<bool, LineError> {
        let now_ms = now.timestamp_millis();
        let (mut carried, mut from) = {
            let mut events = self.events.lock().unwrap();
            match events.get_mut(event) {
                Some(line) if line.busy() => return Ok(true),
                Some(line) if !force && !line.sync_due(self.max_age, now_ms) => return Ok(true),
                Some(line) => (line.start_call(), line.recount_from(now_ms)),
                None if !force => return Ok(false),
                None => (IssuedTickets::default(), 0),
            }
        };
        loop {
            let outcome = gate.sync_line(event, &carried, from).await;
            let failed = {
                let mut events = self.events.lock().unwrap();
                match outcome {
                    Ok(LineSync::Lined(status)) => {
                        let read = status.counts.clone();
                        let line =
                            events.entry(event.clone()).or_insert_with(|| EventLine::new(status.clone(), now_ms));
                        line.status = status;
                        line.call_done(now_ms);
                        line.counted(&read, now_ms);
                        line.defined_at = Instant::now();
                        line.stale_definition = false;
                        if !read.more() {
                            return Ok(true);
                        }
                        // A long line's first sync: read the rest of the counts.
                        line.calling = Some(Instant::now());
                        (carried, from) = (IssuedTickets::default(), read.from_bucket + read.arrivals.len() as u64);
                        None
                    }
                    Ok(LineSync::Unlined { .. }) => {
                        events.remove(event);
                        return Ok(false);
                    }
                    Ok(LineSync::NotFound) => {
                        events.remove(event);
                        return Err(LineError::NotFound);
                    }
                    Err(e) => {
                        let Some(line) = events.get_mut(event) else { return Err(LineError::Gate(e)) };
                        line.call_failed();
                        Some(e)
                    }
                }
            };
            if let Some(e) = failed {
                self.lost(gate, event, &e, now).await;
                return Ok(true);
            }
        }
    }

    /// The gate failed a call: logged, and a lost state marked at once (not
    /// at the scheduler's next run), so the restore's pause starts where
    /// the fronts stopped.
    async fn lost(&self, gate: &EntryGate, event: &EventId, e: &GateError, now: DateTime<Utc>) {
        tracing::warn!(error = %e, event = %event, "line refresh failed; answering from the last copy");
        if matches!(e, GateError::StateLost) {
            let _ = gate.state_lost_since(now).await;
        }
    }

    /// What a lined admission leaving now carries: the tickets issued here
    /// since the last refresh, and a request for the counts when the copy is
    /// older than `max_age`; nothing while another call carries them.
    pub fn refresh(&self, event: &EventId, now: DateTime<Utc>) -> LineRefresh {
        let mut events = self.events.lock().unwrap();
        match events.get_mut(event) {
            Some(line) if !line.busy() => {
                let from_bucket =
                    (line.counted_at.elapsed() >= self.max_age).then(|| line.recount_from(now.timestamp_millis()));
                // Nothing to carry: the call is not this environment's
                // bookkeeping, and must not hold the next one back.
                if from_bucket.is_none() && line.issued.is_empty() && line.in_flight.is_empty() {
                    return LineRefresh::default();
                }
                LineRefresh { issued: line.start_call(), from_bucket }
            }
            _ => LineRefresh::default(),
        }
    }

    /// Takes what a lined admission brought back (or that it failed).
    pub async fn refreshed(
        &self,
        gate: &EntryGate,
        event: &EventId,
        refresh: &LineRefresh,
        outcome: Result<&Option<LineTail>, &GateError>,
        now: DateTime<Utc>,
    ) {
        let now_ms = now.timestamp_millis();
        {
            let mut events = self.events.lock().unwrap();
            let Some(line) = events.get_mut(event) else { return };
            let carried = refresh.issued != IssuedTickets::default() || refresh.from_bucket.is_some();
            match outcome {
                Ok(tail) => {
                    if carried {
                        line.call_done(now_ms);
                    } else {
                        line.heard(now_ms);
                    }
                    if let Some(tail) = tail {
                        line.status.taken = tail.taken;
                        line.status.capacity = tail.capacity;
                        if let Some(read) = &tail.counts {
                            line.counted(read, now_ms);
                        }
                    }
                    return;
                }
                Err(_) if carried => line.call_failed(),
                Err(_) => line.gate_failing = true,
            }
        }
        if let Err(e) = outcome {
            self.lost(gate, event, e, now).await;
        }
    }

    /// Decides a POST to an event: answered here, or the fan's turn came.
    /// `received_ms` is when the request reached API Gateway, if it says.
    pub async fn step(
        &self,
        gate: &EntryGate,
        event: &EventId,
        fan: &FanId,
        ticket: Option<&str>,
        now: DateTime<Utc>,
        received_ms: Option<i64>,
    ) -> Result<Step, LineError> {
        if !self.sync(gate, event, now, false).await? {
            return Ok(Step::Unlined);
        }
        let keys = self.keys.keys(false).await.map_err(LineError::NoKeys)?;
        let now_ms = now.timestamp_millis();
        let held = match ticket {
            None => None,
            Some(text) => match Ticket::verify(text, &keys, event.as_str(), fan.as_str(), now.timestamp()) {
                Ok(t) => Some(t.place),
                Err(TicketError::UnknownKey) => {
                    // Perhaps a rotation this environment has not seen yet.
                    let keys = self.keys.keys(true).await.map_err(LineError::NoKeys)?;
                    let again = Ticket::verify(text, &keys, event.as_str(), fan.as_str(), now.timestamp());
                    Some(again.map_err(|e| LineError::Refused(ticket_refused(e)))?.place)
                }
                Err(e) => return Err(LineError::Refused(ticket_refused(e))),
            },
        };
        let mut events = self.events.lock().unwrap();
        let Some(line) = events.get_mut(event) else { return Ok(Step::Unlined) };
        if now_ms < line.status.joinable_from_ms {
            return Err(LineError::Refused(ApiError::new(
                StatusCode::FORBIDDEN,
                "event_not_open",
                "the event is not open yet",
            )));
        }
        if now_ms >= line.status.closes_at_ms {
            return Err(LineError::Refused(ApiError::new(
                StatusCode::FORBIDDEN,
                "event_closed",
                "the event has closed",
            )));
        }
        let (seed, opens_at_ms) = (line.status.seed.as_bytes(), line.status.opens_at_ms);
        let joined_ms = joined_at(now_ms, received_ms, opens_at_ms);
        let place = place_for(held, seed, event.as_str(), fan.as_str(), joined_ms, opens_at_ms);
        if held.is_none() {
            line.count(&place, now_ms);
            counter!("LineJoined").increment(1);
        }
        // A front whose gate stopped answering stops with it.
        let t = line.front_time(now_ms);
        if line.walk.front(t).passed(&place) {
            let came = line.walk.turn_came_at(&place, t).unwrap_or(t);
            let missed = now_ms - came > TURN_WINDOW.as_millis() as i64;
            let call = if missed {
                LineCall::Existing
            } else {
                LineCall::Turn { order: place.order_key(line.status.opens_at_ms) }
            };
            return Ok(Step::Turn { call, place });
        }
        if line.status.taken >= line.status.capacity {
            counter!("EntriesSoldOut").increment(1);
            return Err(LineError::Refused(ApiError::new(StatusCode::CONFLICT, "sold_out", "no places are left")));
        }
        let answer = self.waiting(line, &keys, event, fan, place, now, t, None);
        Ok(Step::Answer(answer))
    }

    /// The waiting answer for a fan whose turn came but whom the gate's pace
    /// holds back: it comes back when the gate says its token is due
    /// ([`paced_wait`]). The answer's `ahead` is the places before it not
    /// yet admitted.
    pub async fn paced(
        &self,
        event: &EventId,
        fan: &FanId,
        place: Place,
        now: DateTime<Utc>,
        retry_after: Duration,
    ) -> Result<Response<Body>, LineError> {
        counter!("LinePaced").increment(1);
        let keys = self.keys.keys(false).await.map_err(LineError::NoKeys)?;
        let mut events = self.events.lock().unwrap();
        let line = events.get_mut(event).ok_or(LineError::NotFound)?;
        let t = now.timestamp_millis();
        let at_gate = (line.walk.shape().rank(&place) - line.status.taken as f64).max(0.0);
        let wait = paced_wait(retry_after);
        Ok(self.waiting(line, &keys, event, fan, place, now, t, Some((wait, at_gate))))
    }

    /// The gate answered sold out: every waiting fan here is told so too.
    pub fn sold_out(&self, event: &EventId) {
        if let Some(line) = self.events.lock().unwrap().get_mut(event) {
            line.status.taken = line.status.taken.max(line.status.capacity);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn waiting(
        &self,
        line: &mut EventLine,
        keys: &TicketKeys,
        event: &EventId,
        fan: &FanId,
        place: Place,
        now: DateTime<Utc>,
        front_at: i64,
        paced: Option<(Duration, f64)>,
    ) -> Response<Body> {
        counter!("LineWaiting").increment(1);
        // Gauges, read with Maximum across environments: the rate, and the
        // places joined that the front has not reached, as this copy sees them.
        gauge!("LineRate").set(line.status.rate);
        let counts = &line.walk.shape().counts;
        let joined = counts.prequeued + counts.arrivals.iter().sum::<u64>();
        // One walk of the front serves the gauge and the fan's `ahead`.
        let released = line.walk.front_rank(front_at);
        gauge!("LineLength").set((joined as f64 - released).max(0.0));
        let now_ms = now.timestamp_millis();
        let open = now_ms >= line.status.opens_at_ms;
        let eta = match paced {
            Some((wait, _)) => wait.as_secs_f64(),
            None => line.walk.eta_seconds(&place, front_at),
        };
        let mut wait = paced.map_or_else(|| come_back_in(eta, self.jitter(), open), |(wait, _)| wait);
        if line.gate_failing && paced.is_none() {
            wait = while_gate_fails(wait, self.jitter());
        }
        let ticket = Ticket { place, issued_at_s: now.timestamp() }.encode(keys, event.as_str(), fan.as_str());
        let mut body = json!({
            "eventId": event.as_str(),
            "fanId": fan.as_str(),
            "status": "waiting",
            "ticket": ticket,
            "position": null,
            "ahead": null,
            "etaSeconds": null,
            "retryAfterMs": wait.as_millis() as u64,
        });
        let shuffled = open || !matches!(place, Place::Prequeue { .. });
        if shuffled {
            let shape = line.walk.shape();
            let rank = shape.rank(&place);
            let ahead = (rank - released).max(0.0);
            body["position"] = (rank.floor() as i64 + 1).into();
            let ahead = paced.map_or(ahead, |(_, at_gate)| at_gate);
            body["ahead"] = (ahead.ceil() as i64).into();
            body["etaSeconds"] = (eta.ceil() as i64).into();
        } else {
            body["opensInSeconds"] = ((line.status.opens_at_ms - now_ms).max(0) as u64).div_ceil(1000).into();
        }
        let mut response = json_response(WAITING, &body);
        let headers = response.headers_mut();
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after_header(wait)));
        if let Ok(value) = HeaderValue::from_str(&ticket) {
            headers.insert(TICKET_HEADER, value);
        }
        response
    }
}

fn ticket_refused(e: TicketError) -> ApiError {
    counter!("LineTicketsRefused").increment(1);
    match e {
        TicketError::Malformed => ApiError::new(StatusCode::BAD_REQUEST, "invalid_ticket", e.to_string()),
        TicketError::UnknownKey | TicketError::Forged => {
            ApiError::new(StatusCode::FORBIDDEN, "invalid_ticket", TicketError::Forged.to_string())
        }
        TicketError::Expired => ApiError::new(StatusCode::FORBIDDEN, "ticket_expired", e.to_string()),
    }
}
