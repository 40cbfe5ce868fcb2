//! One execution environment's sync with a line (`line.lua`): the fans it
//! gave a place since its last sync are counted, each fan once; the pace
//! runs; the line's definition, state and counts come back.

use super::admission::LineState;
use super::reply::{array_of, counters_of, int_of, number_of, text_of};
use super::scripts::LINE;
use super::{EntryGate, GateError, OnEviction};
use crate::rules::domain::EventId;
use crate::rules::line::draw;
use chrono::{DateTime, Utc};
use redis::Value;

/// A fan an environment gave a place, to be counted: a hash of the fan (so
/// the gate counts each fan once) and its place's arrival bucket (`None`:
/// the pre-queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedFan {
    pub hash: [u8; 8],
    pub bucket: Option<u64>,
}

/// What a sync sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineSyncRequest {
    /// The execution environment syncing (a random id per process), so the
    /// gate counts the environments that sync; `None`: the housekeeping.
    pub environment: Option<u64>,
    /// Fans given a place here since the last sync.
    pub fans: Vec<CountedFan>,
    /// The served mark this environment last saw: the gate takes it when it
    /// holds none (a restore cleared it).
    pub served_seen: Option<i64>,
    /// Where this environment's front stands (an order key): the served
    /// mark moves there if the line is idle (nobody at the door, a full
    /// bucket).
    pub advance_to: Option<i64>,
    /// The first bucket whose count to read back; `None`: the served
    /// mark's, less ten seconds.
    pub from_bucket: Option<u64>,
    /// Fans this environment saw at the door, with their places' order
    /// keys: put back there (after a restore), unless they hold a place.
    pub seated: Vec<(String, i64)>,
    /// The digest of the draw this environment knows: the gate takes it
    /// when it holds none (a restore cleared it).
    pub draw_seen: Option<String>,
}

/// What a line sync read back.
#[derive(Debug, Clone, PartialEq)]
pub enum LineSync {
    NotFound,
    /// The event has no line (any more).
    Unlined {
        capacity: i64,
        taken: i64,
    },
    Lined(Box<LineStatus>),
}

/// An event's line as the gate holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LineStatus {
    pub opens_at_ms: i64,
    pub closes_at_ms: i64,
    /// Admissions per second.
    pub rate: f64,
    /// When fans may first join (the pre-queue's start, or the opening).
    pub joinable_from_ms: i64,
    pub seed: String,
    pub state: LineState,
    /// Fans of this sync counted before: `(index in the request, the bucket
    /// it was counted at, None for the pre-queue)`.
    pub duplicates: Vec<(usize, Option<u64>)>,
    pub counts: LineCountsRead,
    /// When the line was last restored (Unix ms).
    pub restored_at: Option<i64>,
    /// Environments that synced the line in the last minute.
    pub environments: u64,
    /// The digest of the sealed draw ([`crate::rules::line::draw`]).
    pub draw_digest: Option<String>,
}

/// The line's counts as one reply read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineCountsRead {
    pub prequeued: u64,
    /// `arrivals[i]` is the count of bucket `from_bucket + i`.
    pub from_bucket: u64,
    pub arrivals: Vec<u64>,
    /// How many buckets the gate counts; past what this read returned the
    /// rest comes with the next read.
    pub buckets: u64,
}

impl LineCountsRead {
    /// Whether buckets past what this read returned remain to be read.
    pub fn more(&self) -> bool {
        self.buckets > self.from_bucket + self.arrivals.len() as u64
    }
}

impl EntryGate {
    /// One execution environment's sync with an event's line at `now`.
    pub async fn sync_line(
        &self,
        event: &EventId,
        now: DateTime<Utc>,
        request: &LineSyncRequest,
    ) -> Result<LineSync, GateError> {
        let k = self.keys_of(event).await?;
        let key = |k: Option<i64>| k.map(|k| k.to_string()).unwrap_or_default();
        let head = [
            now.timestamp_millis().to_string(),
            key(request.served_seen),
            key(request.advance_to),
            request.from_bucket.map_or(-1, |b| b as i64).to_string(),
            request.environment.map(|e| format!("{e:016x}")).unwrap_or_default(),
            request.draw_seen.clone().unwrap_or_default(),
            draw::CLOSES_BEFORE.as_millis().to_string(),
            draw::SEALED_BEFORE.as_millis().to_string(),
            request.seated.len().to_string(),
        ];
        let buckets: Vec<String> =
            request.fans.iter().map(|f| f.bucket.map_or_else(|| "p".to_owned(), |b| b.to_string())).collect();
        let seated_keys: Vec<String> = request.seated.iter().map(|(_, k)| k.to_string()).collect();
        let mut args: Vec<&[u8]> = head.iter().map(|a| a.as_bytes()).collect();
        for ((fan, _), key) in request.seated.iter().zip(&seated_keys) {
            args.extend([fan.as_bytes(), key.as_bytes()]);
        }
        for (fan, bucket) in request.fans.iter().zip(&buckets) {
            args.extend([fan.hash.as_slice(), bucket.as_bytes()]);
        }
        let keys =
            [k.meta.as_str(), &k.counts, &k.joined, &k.fans, &k.pending, &k.door, &k.grants, &k.syncing, &k.draw];
        let reply: Vec<Value> = self.call_event(event, &LINE, OnEviction::Run, &keys, &args).await?;
        match text_of(reply.first(), "line sync")?.as_str() {
            "state_lost" => Err(GateError::StateLost),
            "not_found" => Ok(LineSync::NotFound),
            "unlined" => Ok(LineSync::Unlined {
                capacity: int_of(reply.get(1), "capacity")?,
                taken: int_of(reply.get(2), "taken")?,
            }),
            "ok" => Ok(LineSync::Lined(Box::new(status(&reply)?))),
            other => Err(GateError::Protocol(format!("line sync: {other:?}"))),
        }
    }

    /// The housekeeping of a line with no environment calling: grants whose
    /// fans did not come lapse, and the door is granted to at the pace.
    pub async fn tend_line(&self, event: &EventId, now: DateTime<Utc>) -> Result<LineSync, GateError> {
        self.sync_line(event, now, &LineSyncRequest::default()).await
    }
}

/// `{'ok', capacity, taken, opensAtMs, closesAtMs, rate, joinableFromMs,
/// seed, state, duplicates, prequeued, fromBucket, buckets, counts,
/// restoredAt, environments, drawDigest}`.
fn status(reply: &[Value]) -> Result<LineStatus, GateError> {
    let duplicates = array_of(reply.get(9), "duplicates")?
        .chunks(2)
        .map(|pair| {
            let index = int_of(pair.first(), "duplicate index")? as usize;
            let bucket = text_of(pair.get(1), "duplicate bucket")?;
            Ok((index, bucket.parse().ok()))
        })
        .collect::<Result<_, GateError>>()?;
    Ok(LineStatus {
        opens_at_ms: int_of(reply.get(3), "opensAtMs")?,
        closes_at_ms: int_of(reply.get(4), "closesAtMs")?,
        rate: number_of(reply.get(5), "lineRate")?,
        joinable_from_ms: int_of(reply.get(6), "joinableFromMs")?,
        seed: text_of(reply.get(7), "lineSeed")?,
        state: LineState::of(array_of(reply.get(8), "line state")?)?,
        duplicates,
        counts: LineCountsRead {
            prequeued: counters_of(reply.get(10)).first().copied().unwrap_or(0),
            from_bucket: int_of(reply.get(11), "fromBucket")?.max(0) as u64,
            buckets: int_of(reply.get(12), "buckets")?.max(0) as u64,
            arrivals: counters_of(reply.get(13)),
        },
        restored_at: text_of(reply.get(14), "restoredAt")?.parse().ok(),
        environments: int_of(reply.get(15), "environments")?.max(0) as u64,
        draw_digest: Some(text_of(reply.get(16), "drawDigest")?).filter(|d| !d.is_empty()),
    })
}
