//! The entrance: the one owner of a fan's POST to an event.
//! [`Entrance::admit`] decides it, with or without a line, and says what to
//! answer: a place reserved for this request (the caller queues the entry
//! in SQS, then confirms it), an entry the fan already has, a waiting
//! answer, or a [`Refusal`]. The fan API maps the outcome to HTTP; nothing
//! else decides.
//!
//! - An event without a line: one gate script (`admit.lua`), after the
//!   fan's own rate limit, which this environment keeps in memory
//!   ([`fans`]): a refusal costs the event's core nothing.
//! - An event with a line ([`crate::rules::line`]): the fan's ticket says
//!   its place; a fan without one gets the place this environment or the
//!   gate remembers for it, else a new one (within a small allowance of
//!   joins without a ticket). The environment's copy of the line
//!   ([`lines`]) says where the place stands; only a fan whose turn came
//!   calls the gate, to join its door or claim its grant, and what the door
//!   told it stands in memory until it is due.

mod fans;
mod keyring;
mod lines;
mod receipts;

pub use fans::{RateLimit, ENTRY_READS, ENTRY_READS_WINDOW, TICKETLESS_JOINS, TICKETLESS_WINDOW};
pub use keyring::{TicketKeyring, KEYS_TTL};
pub use receipts::ReceiptKeyring;

use crate::adapters::redis_gate::{Admission, DrawSeed, EntryGate, GateError, LineCall, Reservation};
use crate::rules::domain::{Entry, EventId, FanId, Note};
use crate::rules::line::receipt::Receipt;
use crate::rules::line::{Ticket, TicketError};
use chrono::{DateTime, Utc};
use fans::FanMemory;
use http::StatusCode;
use keyring::Recheck;
use lines::{LineError, Lines, Step, Synced};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// What to answer a fan's POST.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A place is reserved for this request: queue the entry, then 202.
    Reserved(Reservation),
    /// The fan's entry is queued already: 200.
    Existing(Entry),
    /// Keep waiting in the line: 203.
    Waiting(Waiting),
    Refused(Refusal),
}

/// The line's waiting answer (203), as `openapi.yaml` and docs/api.md
/// describe it: `position` is `ahead + 1`; `ahead` counts the places before
/// the fan's that the gate has not served (or, at the gate's door, the fans
/// there before it); `etaSeconds` is when its grant is due: `ahead` at
/// `placesPerSecond`, the speed the line moves at.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    pub event_id: String,
    pub fan_id: String,
    pub status: &'static str,
    pub ticket: String,
    pub position: Option<u64>,
    pub ahead: Option<u64>,
    pub eta_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_in_seconds: Option<u64>,
    /// Places the line passes a second: its measured speed (at the door,
    /// the gate's grants a second).
    pub places_per_second: Option<f64>,
    /// Places not taken yet, for the fans ahead and this one.
    pub places_left: u64,
    /// The places left are unlikely to reach this fan, even if many of the
    /// fans ahead walk away: it is asked back rarely. Not final.
    pub beyond_reach: bool,
    pub retry_after_ms: u64,
}

impl Waiting {
    pub fn retry_after(&self) -> Duration {
        Duration::from_millis(self.retry_after_ms)
    }
}

/// Every answer that turns a fan away, with its status, code and message:
/// the one place they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    EventNotFound,
    NotOpen,
    Closed,
    SoldOut,
    /// The fan's turn came and passed.
    TurnMissed,
    /// Too many attempts; retry after this long.
    RateLimited {
        retry_after: Duration,
    },
    /// Not a ticket at all, or a header over the limit.
    TicketMalformed,
    /// Tampered, forged, or another fan's or another event's.
    TicketInvalid,
    TicketExpired,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::EventNotFound => StatusCode::NOT_FOUND,
            Self::NotOpen | Self::Closed | Self::TicketInvalid | Self::TicketExpired => StatusCode::FORBIDDEN,
            Self::SoldOut => StatusCode::CONFLICT,
            Self::TurnMissed => StatusCode::GONE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TicketMalformed => StatusCode::BAD_REQUEST,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::EventNotFound => "event_not_found",
            Self::NotOpen => "event_not_open",
            Self::Closed => "event_closed",
            Self::SoldOut => "sold_out",
            Self::TurnMissed => "turn_missed",
            Self::RateLimited { .. } => "rate_limited",
            Self::TicketMalformed | Self::TicketInvalid => "invalid_ticket",
            Self::TicketExpired => "ticket_expired",
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            Self::EventNotFound => "no such event",
            Self::NotOpen => "the event is not open yet",
            Self::Closed => "the event has closed",
            Self::SoldOut => "no places are left",
            Self::TurnMissed => "your turn came and passed; join the line again (POST without the ticket)",
            Self::RateLimited { .. } => "too many entry attempts; slow down",
            Self::TicketMalformed => "the ticket is malformed",
            Self::TicketInvalid => "the ticket is not valid for this fan and event",
            Self::TicketExpired => "the ticket has expired; join the line again",
        }
    }

    /// Seconds to wait, for a refusal that is not final.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

impl From<TicketError> for Refusal {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::Malformed => Self::TicketMalformed,
            TicketError::UnknownKey | TicketError::Forged => Self::TicketInvalid,
            TicketError::Expired => Self::TicketExpired,
        }
    }
}

/// The entrance could not decide: a dependency failed. The fan is asked to
/// retry (503) and keeps its place.
#[derive(Debug, Error)]
pub enum EntranceError {
    #[error(transparent)]
    Gate(#[from] GateError),
    /// No ticket key is configured or readable: the line cannot issue or
    /// verify tickets.
    #[error("the line cannot sign tickets: {0}")]
    NoTicketKeys(String),
    /// The ticket names a key this environment has not read yet, and the
    /// keys cannot be read past the cache before `retry_after`: the fan
    /// retries and keeps its place.
    #[error("the ticket's key is not read yet; retry after {retry_after:?}")]
    TicketKeyUnread { retry_after: Duration },
}

/// One fan's POST to one event.
#[derive(Debug, Clone, Copy)]
pub struct EntryAttempt<'a> {
    pub event: &'a EventId,
    pub fan: &'a FanId,
    pub note: &'a Note,
    /// The line ticket the fan sent, if any.
    pub ticket: Option<&'a str>,
    /// When the request reached API Gateway, as its request context says.
    pub received_ms: Option<i64>,
    pub now: DateTime<Utc>,
}

/// The entrance, built once per execution environment.
pub struct Entrance {
    gate: Arc<EntryGate>,
    lines: Lines,
    fans: FanMemory,
    keys: TicketKeyring,
    limit: RateLimit,
    tokens: RequestTokens,
}

impl Entrance {
    /// The entrance on `gate`: lines signed with `keys` and synced at most
    /// every `sync_every`; each fan's direct attempts held to `limit`.
    pub fn new(gate: Arc<EntryGate>, keys: TicketKeyring, sync_every: Duration, limit: RateLimit) -> Self {
        Self {
            gate,
            lines: Lines::new(sync_every),
            fans: FanMemory::default(),
            keys,
            limit,
            tokens: RequestTokens::new(),
        }
    }

    /// Decides one POST.
    pub async fn admit(&self, a: &EntryAttempt<'_>) -> Result<Outcome, EntranceError> {
        // A fan told it has an entry is told again, from memory.
        if let Some(entry) = self.fans.entry(a.event, a.fan) {
            return Ok(Outcome::Existing(entry));
        }
        // A ticket means a line: no direct call to learn it.
        if a.ticket.is_none() && !self.lines.knows(a.event) {
            match self.direct(a).await? {
                Some(outcome) => return Ok(outcome),
                None => metrics::counter!("LineAdopted").increment(1),
            }
        }
        self.in_line(a).await
    }

    /// The direct path; `None` when the event has a line.
    async fn direct(&self, a: &EntryAttempt<'_>) -> Result<Option<Outcome>, EntranceError> {
        if let Err(retry_after) = self.fans.direct(a.event, a.fan, a.now.timestamp_millis(), self.limit) {
            return Ok(Some(Outcome::Refused(Refusal::RateLimited { retry_after })));
        }
        let token = self.tokens.next();
        let admission = self.gate.admit(a.event, a.fan, a.note, a.now, &token).await?;
        Ok(match admission {
            Admission::Lined => None,
            other => Some(outcome_of(other)?),
        })
    }

    async fn in_line(&self, a: &EntryAttempt<'_>) -> Result<Outcome, EntranceError> {
        // The line first: a ticket for an event that lost its line is not
        // read, the POST goes the direct way.
        match self.lines.sync(&self.gate, &self.fans, a.event, a.now).await {
            Ok(Synced::Lined) => {}
            Ok(Synced::Unlined) => return self.after_line_removed(a).await,
            Err(LineError::NotFound) => return Ok(Outcome::Refused(Refusal::EventNotFound)),
            Err(LineError::Gate(e)) => return Err(e.into()),
        }
        let mut keys = self.keys.keys().await.map_err(EntranceError::NoTicketKeys)?;
        let held = match a.ticket {
            None => None,
            Some(text) => match Ticket::verify(text, &keys, a.event.as_str(), a.fan.as_str(), a.now.timestamp()) {
                Ok(t) => Some(t.place),
                Err(TicketError::UnknownKey) => {
                    // Perhaps a rotation this environment has not read yet:
                    // judged only by keys read since the ticket was issued.
                    let issued = Ticket::claimed_issued_at(text).unwrap_or(i64::MAX);
                    match self.keys.recheck(issued, a.now.timestamp()).await {
                        Recheck::Judge(fresh) => keys = fresh,
                        Recheck::Undecided(retry_after) => {
                            metrics::counter!("LineTicketKeysUndecided").increment(1);
                            return Err(EntranceError::TicketKeyUnread { retry_after });
                        }
                    }
                    match Ticket::verify(text, &keys, a.event.as_str(), a.fan.as_str(), a.now.timestamp()) {
                        Ok(t) => Some(t.place),
                        Err(e) => return Ok(refused_ticket(e)),
                    }
                }
                Err(e) => return Ok(refused_ticket(e)),
            },
        };
        let (call, place) = match self.lines.step(a.event, a.fan, held, a.received_ms, a.now, &keys, &self.fans) {
            Step::Answer(outcome) => {
                self.lines.count_draw(&self.gate, &self.fans, a.event, a.now).await;
                return Ok(outcome);
            }
            Step::Unlined => return self.after_line_removed(a).await,
            Step::Call { call, place } => (call, place),
        };
        let token = self.tokens.next();
        let called = self.gate.admit_in_line(a.event, a.fan, a.note, a.now, &token, call).await;
        let (admission, state) = match called {
            Ok(answer) => answer,
            Err(e) => {
                self.lines.gate_failed(a.event);
                return Err(e.into());
            }
        };
        if let Some(state) = state {
            self.lines.observe(a.event, state, a.now);
        }
        Ok(match admission {
            Admission::AtTheDoor(door) => self.lines.at_the_door(a.event, a.fan, place, door, a.now, &keys, &self.fans),
            other => {
                self.fans.forget_door(a.event, a.fan);
                self.lines.left_door(a.event, a.fan);
                if matches!(other, Admission::Reserved(_)) {
                    metrics::counter!("LineAdmitted").increment(1);
                }
                if matches!(call, LineCall::Existing) && matches!(other, Admission::TurnMissed) {
                    metrics::counter!("LineTurnsMissed").increment(1);
                }
                outcome_of(other)?
            }
        })
    }

    /// The fan was told its entry is queued (202 or 200), with its receipt
    /// when one was signed: its next POSTs and reads here are answered from
    /// memory, the same receipt included.
    pub fn told(&self, entry: &Entry, receipt: Option<&Receipt>) {
        self.fans.remember_entry(entry, receipt);
    }

    /// The receipt this environment gave the fan with its entry.
    pub fn told_receipt(&self, event: &EventId, fan: &FanId) -> Option<Receipt> {
        self.fans.receipt(event, fan)
    }

    /// The entry this environment told the fan it has (or read for it):
    /// queued in SQS, so it never changes and costs the gate no read.
    pub fn told_entry(&self, event: &EventId, fan: &FanId) -> Option<Entry> {
        self.fans.entry(event, fan)
    }

    /// The draw of the event's line, when this environment follows it.
    pub fn draw_seed(&self, event: &EventId) -> Option<DrawSeed> {
        self.lines.draw_seed(event)
    }

    /// Counts a read of the fan's own entry that would reach the gate;
    /// past [`ENTRY_READS`] in its window, the refusal to answer from memory.
    pub fn entry_read(&self, event: &EventId, fan: &FanId, now: DateTime<Utc>) -> Result<(), Refusal> {
        self.fans.read(event, fan, now.timestamp_millis()).map_err(|retry_after| Refusal::RateLimited { retry_after })
    }

    /// The event lost its line while this environment followed it: the
    /// POST goes the direct way.
    async fn after_line_removed(&self, a: &EntryAttempt<'_>) -> Result<Outcome, EntranceError> {
        match self.direct(a).await? {
            Some(outcome) => Ok(outcome),
            None => Err(GateError::Protocol("the gate kept sending this request to the line".into()).into()),
        }
    }
}

fn refused_ticket(e: TicketError) -> Outcome {
    metrics::counter!("LineTicketsRefused").increment(1);
    Outcome::Refused(e.into())
}

/// What the gate's answer tells the fan.
fn outcome_of(admission: Admission) -> Result<Outcome, GateError> {
    Ok(match admission {
        Admission::Reserved(r) => Outcome::Reserved(r),
        Admission::Existing(e) => Outcome::Existing(e),
        Admission::NotFound => Outcome::Refused(Refusal::EventNotFound),
        Admission::NotOpen => Outcome::Refused(Refusal::NotOpen),
        Admission::Closed => Outcome::Refused(Refusal::Closed),
        Admission::SoldOut => Outcome::Refused(Refusal::SoldOut),
        Admission::TurnMissed => Outcome::Refused(Refusal::TurnMissed),
        Admission::Lined | Admission::AtTheDoor(_) => {
            return Err(GateError::Protocol(format!("{admission:?} where no line was followed")))
        }
    })
}

/// Uniform in [0, 1), from rand's thread-local generator (seeded from the
/// operating system): the jitter that keeps fans told alike from coming
/// back in step.
fn jitter() -> f64 {
    rand::random::<f64>()
}

/// Unique request tokens: a random per-process seed and a counter.
struct RequestTokens {
    seed: u64,
    counter: AtomicU64,
}

impl RequestTokens {
    fn new() -> Self {
        Self { seed: rand::random(), counter: AtomicU64::new(0) }
    }

    fn next(&self) -> String {
        format!("{:016x}{:x}", self.seed, self.counter.fetch_add(1, Ordering::Relaxed))
    }
}
