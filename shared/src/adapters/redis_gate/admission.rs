//! Deciding entries (`admit.lua`) and what follows them: confirming a
//! queued entry, releasing a place whose send failed, the sweep's view of
//! pending sends, and the fan API's reads of an event and of an entry.

use super::reply::{int_of, nested, tagged, text_of, Reply};
use super::scripts::{ADMIT, CONFIRM, ENTRY, EVENT, RELEASE};
use super::{texts, EntryGate, GateError, OnEviction};
use crate::rules::domain::{Entry, EventId, FanId, Note, Position};
use crate::rules::line::draw;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What the gate decided for one entry request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A place is reserved for this request (new, a grant claimed, or a
    /// pending one taken over): send it to SQS.
    Reserved(Reservation),
    /// This fan already has a queued entry.
    Existing(Entry),
    NotFound,
    NotOpen,
    Closed,
    SoldOut,
    /// The event has a line and the caller did not say the fan's turn came.
    Lined,
    /// The fan waits at the line's door for its grant.
    AtTheDoor(AtTheDoor),
    /// Asked only for an entry the fan already has (its turn passed), and it
    /// has none.
    TurnMissed,
}

/// A fan at the line's door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtTheDoor {
    /// Fans at the door ahead of it.
    pub ahead: u64,
    /// When its grant is due at the line's pace; `None` while no place is
    /// free (every place is taken, and one may come back).
    pub due: Option<Duration>,
    /// While no place is free: when one may come back (the first grant
    /// waiting for its fan lapses then).
    pub chance: Option<Duration>,
}

/// What an admission call says about the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineCall {
    /// The fan's turn came: it joins the door at its place's
    /// [`order_key`](crate::rules::line::Place::order_key), or claims its
    /// grant. A place in the pre-queue's draw names the fan as the draw
    /// does.
    Turn { order: i64, drawn: Option<Drawn> },
    /// The fan's turn passed: only an entry it already has.
    Existing,
}

/// A place in the pre-queue's draw, as the gate checks it at the door: the
/// draw holds only the fans counted in it before it was sealed, so a fan
/// the gate counted later (its environment synced after the seal) takes
/// the place it was counted at, the opening's first bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drawn {
    /// The fan's hash, as the gate counts it.
    pub fan: [u8; 8],
    /// The order key of its place if it is not in the draw.
    pub late: i64,
}

impl LineCall {
    fn args(self) -> [Vec<u8>; 4] {
        match self {
            Self::Turn { order, drawn } => [
                b"turn".to_vec(),
                order.to_string().into_bytes(),
                drawn.map_or_else(Vec::new, |d| d.fan.to_vec()),
                drawn.map_or_else(Vec::new, |d| d.late.to_string().into_bytes()),
            ],
            Self::Existing => [b"existing".to_vec(), b"0".to_vec(), Vec::new(), Vec::new()],
        }
    }
}

/// A line as the gate left it after a call: every lined answer carries it,
/// so an environment's copy stays fresh on the calls it makes anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineState {
    pub taken: i64,
    pub capacity: i64,
    /// The highest place granted (an order key), once any was.
    pub served: Option<i64>,
    /// Places granted since the opening.
    pub granted: i64,
    /// Fans at the door.
    pub at_door: i64,
    /// Every place is taken and none can come back: no grant waits for its
    /// fan and no send is pending.
    pub sold_out_for_good: bool,
    /// Fans at the door whose places are before the served mark (they came
    /// late): each one place more to serve before anyone after the mark.
    pub behind: i64,
}

impl LineState {
    pub(super) fn of(items: &[redis::Value]) -> Result<Self, GateError> {
        let key = |i: usize, what: &str| -> Result<Option<i64>, GateError> {
            let text = text_of(items.get(i), what)?;
            match text.as_str() {
                "" => Ok(None),
                t => t.parse().map(Some).map_err(|_| GateError::Protocol(format!("{what}: {t:?}"))),
            }
        };
        Ok(Self {
            taken: int_of(items.first(), "taken")?,
            capacity: int_of(items.get(1), "capacity")?,
            served: key(2, "served")?,
            granted: int_of(items.get(3), "granted")?,
            at_door: int_of(items.get(4), "at door")?,
            sold_out_for_good: text_of(items.get(5), "sold out")? == "1",
            behind: int_of(items.get(6), "behind")?,
        })
    }
}

/// A pending place owned by one request (its `token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub entry: Entry,
    pub token: String,
}

/// The fan API's view of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventView {
    pub title: String,
    pub opens_at: String,
    pub closes_at: String,
    pub capacity: i64,
    pub taken: i64,
    /// The line's draw, for an event with a line.
    pub draw: Option<DrawSeed>,
}

/// What an event's line draws its pre-queue with: the seed (never shown to
/// fans before the reveal), whether the line has a draw, and its digest.
#[derive(Clone, PartialEq, Eq)]
pub struct DrawSeed {
    pub seed: String,
    /// The line has a draw: its pre-queue opens before the draw closes.
    pub prequeued: bool,
    /// The digest of the sealed draw, once it is.
    pub digest: Option<String>,
}

impl std::fmt::Debug for DrawSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DrawSeed(<redacted>, prequeued: {})", self.prequeued)
    }
}

impl EventView {
    pub fn remaining(&self) -> i64 {
        (self.capacity - self.taken).max(0)
    }
}

/// A fan's entry as the gate knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryLookup {
    EventNotFound,
    None,
    /// Reserved, but SQS has not confirmed it yet.
    Pending,
    Confirmed(Entry),
    /// The event closed before the gate was last restored; its fan records
    /// were not brought back (they are in PostgreSQL).
    Archived,
}

/// An admission script's answer.
fn admission(r: &Reply, event: &EventId, fan: &FanId, token: &str) -> Result<Admission, GateError> {
    Ok(match r.tag() {
        "reserved" => Admission::Reserved(Reservation { entry: r.entry(event, fan)?, token: token.to_owned() }),
        "existing" => Admission::Existing(r.entry(event, fan)?),
        "door" => Admission::AtTheDoor(AtTheDoor {
            ahead: r.int(1)?.max(0) as u64,
            due: u64::try_from(r.int(2)?).ok().map(Duration::from_millis),
            chance: u64::try_from(r.int(3)?).ok().map(Duration::from_millis),
        }),
        "not_found" => Admission::NotFound,
        "not_open" => Admission::NotOpen,
        "closed" => Admission::Closed,
        "sold_out" => Admission::SoldOut,
        "lined" => Admission::Lined,
        "turn_missed" => Admission::TurnMissed,
        "state_lost" => return Err(GateError::StateLost),
        _ => return Err(r.unexpected()),
    })
}

impl EntryGate {
    /// Decides one entry request atomically, for a caller that does not
    /// follow a line (an event with one answers [`Admission::Lined`]).
    /// `token` identifies the request so it alone may release what it
    /// reserved.
    pub async fn admit(
        &self,
        event: &EventId,
        fan: &FanId,
        note: &Note,
        now: DateTime<Utc>,
        token: &str,
    ) -> Result<Admission, GateError> {
        let direct = [b"direct".to_vec(), b"0".to_vec(), Vec::new(), Vec::new()];
        let (answer, _) = self.admit_call(event, fan, note, now, token, direct).await?;
        admission(&answer, event, fan, token)
    }

    /// Decides the entry of a fan whose turn in the line came (or passed):
    /// it joins the door, or claims its grant. The line's state comes back
    /// with the answer (`None` when the gate answered before reaching the
    /// event).
    pub async fn admit_in_line(
        &self,
        event: &EventId,
        fan: &FanId,
        note: &Note,
        now: DateTime<Utc>,
        token: &str,
        call: LineCall,
    ) -> Result<(Admission, Option<LineState>), GateError> {
        let (answer, state) = self.admit_call(event, fan, note, now, token, call.args()).await?;
        let state = state.map(|items| LineState::of(&items)).transpose()?;
        Ok((admission(&answer, event, fan, token)?, state))
    }

    async fn admit_call(
        &self,
        event: &EventId,
        fan: &FanId,
        note: &Note,
        now: DateTime<Utc>,
        token: &str,
        [mode, order, drawn_fan, late]: [Vec<u8>; 4],
    ) -> Result<(Reply, Option<Vec<redis::Value>>), GateError> {
        let k = self.keys_of(event).await?;
        let now_ms = now.timestamp_millis().to_string();
        let has_note = if note.is_some() { "1" } else { "0" };
        let args: [&[u8]; 9] = [
            fan.as_str().as_bytes(),
            now_ms.as_bytes(),
            token.as_bytes(),
            note.as_deref().unwrap_or("").as_bytes(),
            has_note.as_bytes(),
            &mode,
            &order,
            &drawn_fan,
            &late,
        ];
        let keys = [&k.meta, &k.fans, &k.notes, &k.pending, &k.door, &k.grants, &k.joined].map(String::as_str);
        let reply: redis::Value = self.call_event(event, &ADMIT, OnEviction::Refuse, &keys, &args).await?;
        if tagged(&reply, "state_lost") {
            return Err(GateError::StateLost);
        }
        nested(reply)
    }

    /// Marks a reservation durably queued. False when the reservation was not
    /// there (it was released or never existed): the caller must log it.
    pub async fn confirm(&self, r: &Reservation) -> Result<bool, GateError> {
        self.confirm_position(&r.entry.event_id, &r.entry.fan_id, r.entry.position).await
    }

    /// Marks a fan's pending record at `position` durably queued.
    pub async fn confirm_position(&self, event: &EventId, fan: &FanId, position: Position) -> Result<bool, GateError> {
        let k = self.keys_of(event).await?;
        let args = [fan.as_str(), &position.to_string()];
        let done: i64 = self.call(&CONFIRM, OnEviction::Run, &[&k.fans, &k.pending], &texts(&args)).await?;
        Ok(done == 1)
    }

    /// Releases a reservation this request owns, whose send surely never
    /// reached SQS, and that no other request took over.
    pub async fn release(&self, r: &Reservation) -> Result<bool, GateError> {
        self.release_pending(&r.entry.event_id, &r.entry.fan_id, r.entry.position, &r.token, "").await
    }

    /// Releases a pending reservation older than `cutoff`, whoever owns it
    /// (the sweep, once PostgreSQL and the DLQ show the entry never landed).
    pub async fn release_stale(
        &self,
        event: &EventId,
        fan: &FanId,
        position: Position,
        cutoff: DateTime<Utc>,
    ) -> Result<bool, GateError> {
        self.release_pending(event, fan, position, "", &cutoff.timestamp_millis().to_string()).await
    }

    async fn release_pending(
        &self,
        event: &EventId,
        fan: &FanId,
        position: Position,
        token: &str,
        cutoff_ms: &str,
    ) -> Result<bool, GateError> {
        let k = self.keys_of(event).await?;
        let args = [fan.as_str(), &position.to_string(), token, cutoff_ms];
        let keys = [k.meta.as_str(), &k.fans, &k.notes, &k.pending];
        let done: i64 = self.call(&RELEASE, OnEviction::Run, &keys, &texts(&args)).await?;
        Ok(done == 1)
    }

    /// Fans whose reservation has been pending since before `cutoff`.
    pub async fn pending_since(
        &self,
        event: &EventId,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<(FanId, Position)>, GateError> {
        let k = self.keys_of(event).await?;
        let cutoff_ms = cutoff.timestamp_millis();
        let (fans, records): (Vec<String>, Vec<Option<String>>) = self
            .redis
            .run(|mut c, _| {
                let (pending, fans) = (k.pending.clone(), k.fans.clone());
                async move {
                    let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                        .arg(&pending)
                        .arg("-inf")
                        .arg(cutoff_ms)
                        .query_async(&mut c)
                        .await?;
                    if ids.is_empty() {
                        return Ok((ids, Vec::new()));
                    }
                    let records = redis::cmd("HMGET").arg(&fans).arg(&ids).query_async(&mut c).await?;
                    Ok((ids, records))
                }
            })
            .await?;
        Ok(fans
            .iter()
            .zip(records)
            .filter_map(|(fan, rec)| {
                let position = rec?.split(':').next()?.parse().ok()?;
                Some((FanId::parse(fan).ok()?, position))
            })
            .collect())
    }

    /// The fan API's view of an event, `None` when it does not exist.
    pub async fn event(&self, id: &EventId) -> Result<Option<EventView>, GateError> {
        let k = self.keys_of(id).await?;
        let r = self.call_tagged(id, &EVENT, OnEviction::Run, &[&k.meta], &[]).await?;
        match r.tag() {
            "ok" => Ok(Some(EventView {
                title: r.field(1)?.to_owned(),
                opens_at: r.field(2)?.to_owned(),
                closes_at: r.field(3)?.to_owned(),
                capacity: r.int(4)?,
                taken: r.int(5)?,
                draw: Some(r.field(6)?).filter(|seed| !seed.is_empty()).map(|seed| {
                    let (prequeue, opens) = (r.field(7).ok().and_then(|v| v.parse().ok()), r.int(8).ok());
                    DrawSeed {
                        seed: seed.to_owned(),
                        prequeued: prequeue.zip(opens).is_some_and(|(p, o)| draw::has_draw(p, o)),
                        digest: r.field(9).ok().filter(|d| !d.is_empty()).map(str::to_owned),
                    }
                }),
            })),
            "not_found" => Ok(None),
            _ => Err(r.unexpected()),
        }
    }

    /// One fan's entry in one event.
    pub async fn entry(&self, event: &EventId, fan: &FanId) -> Result<EntryLookup, GateError> {
        let k = self.keys_of(event).await?;
        let keys = [&k.meta, &k.fans, &k.notes].map(String::as_str);
        let r = self.call_tagged(event, &ENTRY, OnEviction::Run, &keys, &texts(&[fan.as_str()])).await?;
        Ok(match r.tag() {
            "ok" => EntryLookup::Confirmed(r.entry(event, fan)?),
            "pending" => EntryLookup::Pending,
            "none" => EntryLookup::None,
            "archived" => EntryLookup::Archived,
            "not_found" => EntryLookup::EventNotFound,
            _ => return Err(r.unexpected()),
        })
    }
}
