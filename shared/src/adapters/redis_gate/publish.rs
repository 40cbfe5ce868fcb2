//! Defining events in the gate (`publish.lua`) with the line's secret
//! seed, archiving them once closed (`archive.lua`) and retiring them
//! (`retire.lua`).

use super::scripts::{ARCHIVE, PUBLISH, RETIRE};
use super::{texts, EntryGate, GateError, OnEviction};
use crate::rules::domain::{EventId, FanEvent};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A new event's line seed: 128 bits from rand's thread generator (a
/// cryptographic generator the operating system seeds), kept secret (never
/// served), fixing the pre-queue's shuffle.
pub fn new_line_seed() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a publish writes the line's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedWrite<'a> {
    /// Leave the seed the gate holds.
    Keep,
    /// This is the event's seed (the one PostgreSQL stores).
    Set(&'a str),
    /// Use this one only if the gate holds none (an event of the calendar
    /// feed, which PostgreSQL does not store).
    IfMissing(&'a str),
}

impl SeedWrite<'_> {
    fn value(&self) -> &str {
        match self {
            Self::Keep => "",
            Self::Set(s) | Self::IfMissing(s) => s,
        }
    }

    fn mode(&self) -> &'static str {
        match self {
            Self::Keep => "",
            Self::Set(_) => "set",
            Self::IfMissing(_) => "missing",
        }
    }
}

/// Result of publishing an event definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Published; `taken` places were already reserved.
    Ok { taken: i64 },
    /// Refused: the new capacity is below the places already taken.
    CapacityBelowTaken { taken: i64 },
    /// Refused: the id was retired (deleted) and is never published again.
    Retired,
    /// Refused: the event closed and was archived ([`EntryGate::archive`]);
    /// its fans are no longer in the gate, so it cannot be reopened.
    Archived,
}

/// What [`EntryGate::archive`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archival {
    /// Archived now.
    Archived,
    /// Archived before.
    Already,
    /// Not closed for long enough yet.
    NotYet,
    /// A send is still pending: the sweep resolves it first.
    Pending,
    NotFound,
}

impl EntryGate {
    /// Publishes an event definition, keeping its counters, and writes its
    /// line's seed as `seed` says. A new event's keys carry its own id as
    /// their tag; see [`EntryGate::publish_at`].
    pub async fn publish(&self, e: &FanEvent, seed: SeedWrite<'_>) -> Result<Published, GateError> {
        Ok(self.publish_at(e, e.id.as_str(), seed).await?.0)
    }

    /// Publishes an event definition as [`EntryGate::publish`] does; a new
    /// event's keys carry `tag` (its placement, which
    /// [`crate::rules::scaling::placement`] chooses). An event listed before
    /// keeps the tag it was listed with, which comes back with the outcome.
    pub async fn publish_at(
        &self,
        e: &FanEvent,
        tag: &str,
        seed: SeedWrite<'_>,
    ) -> Result<(Published, String), GateError> {
        let json = e.to_json();
        let (opens_ms, closes_ms) =
            (e.opens_at.timestamp_millis().to_string(), e.closes_at.timestamp_millis().to_string());
        let rate = e.line.map(|l| l.admissions_per_second.to_string()).unwrap_or_default();
        let joinable_ms = e.joinable_from().timestamp_millis().to_string();
        let args = [
            e.title.as_str(),
            json["opensAt"].as_str().unwrap_or_default(),
            json["closesAt"].as_str().unwrap_or_default(),
            &opens_ms,
            &closes_ms,
            &e.capacity.to_string(),
            &rate,
            &joinable_ms,
            seed.value(),
            seed.mode(),
        ];
        // Listed first: a crash between the two leaves a listed event
        // without keys, which answers as lost until a restore builds it.
        let listed = self.directory_step("list", &[e.id.as_str(), tag]).await?;
        let fresh = match listed.tag() {
            "new" => "1",
            "listed" => "0",
            "state_lost" => return Err(GateError::StateLost),
            _ => return Err(listed.unexpected()),
        };
        let tag = listed.field(1)?.to_owned();
        self.tags.lock().expect("tag cache").insert(e.id.as_str().to_owned(), tag.clone());
        let k = self.keys_at(&tag);
        let args: Vec<&str> = args.into_iter().chain([fresh]).collect();
        let r = self.call_tagged(&e.id, &PUBLISH, OnEviction::Refuse, &[&k.meta], &texts(&args)).await?;
        let published = match r.tag() {
            "ok" => Published::Ok { taken: r.int(1)? },
            "below" => Published::CapacityBelowTaken { taken: r.int(1)? },
            "retired" => Published::Retired,
            "archived" => Published::Archived,
            _ => return Err(r.unexpected()),
        };
        Ok((published, tag))
    }

    /// Archives an event closed for at least `after` at `now`: drops what
    /// the gate holds per fan (PostgreSQL holds the entries), keeps the
    /// definition and counters.
    pub async fn archive(&self, id: &EventId, now: DateTime<Utc>, after: Duration) -> Result<Archival, GateError> {
        let k = self.keys_of(id).await?;
        let keys =
            [&k.meta, &k.fans, &k.notes, &k.pending, &k.counts, &k.joined, &k.door, &k.grants, &k.syncing, &k.draw]
                .map(String::as_str);
        let args = [now.timestamp_millis().to_string(), (after.as_millis() as i64).to_string()];
        let r = self.call_tagged(id, &ARCHIVE, OnEviction::Run, &keys, &texts(&[&args[0], &args[1]])).await?;
        Ok(match r.tag() {
            "ok" => Archival::Archived,
            "already" => Archival::Already,
            "not_yet" => Archival::NotYet,
            "pending" => Archival::Pending,
            "not_found" => Archival::NotFound,
            _ => return Err(r.unexpected()),
        })
    }

    /// Removes everything the gate holds for an event and retires its id:
    /// a later publish of it is refused ([`Published::Retired`]).
    pub async fn unpublish(&self, id: &EventId) -> Result<(), GateError> {
        let k = self.keys_of(id).await?;
        let r = self.call_tagged(id, &RETIRE, OnEviction::Run, &k.all(), &[]).await?;
        match r.tag() {
            "ok" => Ok(()),
            _ => Err(r.unexpected()),
        }
    }
}
