//! The Redis admission gate: the one place a fan's entry is decided.
//!
//! Every decision is one Lua script, so it is atomic and costs one round
//! trip. Keys, under a configurable prefix (tests use a unique one each):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:state` | string | present while Redis holds the whole gate state; gone after a flush or failover without persistence |
//! | `P:state-lost-at` | string | when the loss was first noticed (ms); the restore waits until every request in flight then has finished |
//! | `P:ev:E` | hash | event definition plus `taken` (slots reserved) and `seq` (last position handed out) |
//! | `P:ev:E:fans` | hash | fan → `position:acceptedAtMs[:token]` (`token` while the SQS send is pending) |
//! | `P:ev:E:notes` | hash | fan → note |
//! | `P:ev:E:pending` | sorted set | fans whose send is pending, by time, for the sweep |
//!
//! A reservation is made pending, sent to SQS, then confirmed. If the send
//! surely did not reach SQS, the request that owns the reservation releases
//! it; if the outcome is unknown it stays pending, so the fan's retry gets the
//! same position, and the sweep releases it later only when PostgreSQL shows
//! it never landed.

mod connection;

pub use connection::{LazyRedis, RedisFailure};

use crate::domain::{Entry, EventId, FanEvent, FanId, Note, Position};
use chrono::{DateTime, TimeZone, Utc};
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;
use thiserror::Error;

static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/admit.lua")));
static CONFIRM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/confirm.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/release.lua")));
static EVENT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/event.lua")));
static ENTRY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/entry.lua")));
static LOST: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/lost.lua")));
static PUBLISH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/publish.lua")));

/// Gate failures. Outcomes a fan can be told about (sold out, closed, ...)
/// are not errors: they are [`Admission`] variants.
#[derive(Debug, Error)]
pub enum GateError {
    #[error("redis is unavailable: {0}")]
    Unavailable(redis::RedisError),
    #[error("redis refused a gate command: {0}")]
    Refused(redis::RedisError),
    /// Redis lost the gate state (flush, failover without persistence). The
    /// gate refuses to count from zero until it is restored from PostgreSQL.
    #[error("the gate state is gone from redis and must be restored")]
    StateLost,
    #[error("unexpected reply from a gate script: {0}")]
    Protocol(String),
    /// The Redis AUTH token could not be read.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

impl From<RedisFailure> for GateError {
    fn from(f: RedisFailure) -> Self {
        match f {
            RedisFailure::Unreachable(e) => Self::Unavailable(e),
            RedisFailure::Refused(e) => Self::Refused(e),
            RedisFailure::Secret(e) => Self::Secret(e),
        }
    }
}

/// What the gate decided for one entry request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A slot is reserved (or a pending one taken over): send it to SQS.
    Reserved(Reservation),
    /// This fan already has a confirmed entry.
    Existing(Entry),
    NotFound,
    NotOpen,
    Closed,
    SoldOut,
    /// The fan sent more than the rate limit allows; retry after this long.
    RateLimited {
        retry_after: Duration,
    },
}

/// Per-fan request limit, enforced inside the admission script (no extra
/// round trip): at most `requests` entry attempts per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
}

impl RateLimit {
    pub const OFF: Self = Self { requests: 0, window: Duration::from_secs(1) };
}

/// A pending slot owned by one request (its `token`).
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
}

/// Result of publishing an event definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Published; `taken` slots were already reserved.
    Ok { taken: i64 },
    /// Refused: the new capacity is below the slots already taken.
    CapacityBelowTaken { taken: i64 },
}

/// The Redis admission gate.
pub struct EntryGate {
    redis: LazyRedis,
    prefix: String,
    rate_limit: RateLimit,
}

impl EntryGate {
    /// Builds the gate; does not connect.
    pub fn new(
        url: &str,
        prefix: &str,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Self, GateError> {
        Ok(Self {
            redis: LazyRedis::new(url, connect_timeout, response_timeout).map_err(GateError::Refused)?,
            prefix: prefix.to_owned(),
            rate_limit: RateLimit::OFF,
        })
    }

    /// Builds the gate the functions use from their configuration: URL,
    /// timeouts, AUTH token source and TLS roots. Does not connect.
    pub fn from_config(c: &crate::config::RedisConfig) -> Result<Self, GateError> {
        let mut redis = LazyRedis::new(&c.url, c.connect_timeout, c.response_timeout)
            .map_err(GateError::Refused)?
            .with_auth(c.auth.clone());
        if let Some(pem) = &c.root_certificates {
            redis = redis.with_root_certificates(pem.clone());
        }
        Ok(Self { redis, prefix: c.key_prefix.clone(), rate_limit: RateLimit::OFF })
    }

    /// Limits each fan's entry attempts.
    pub fn with_rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    fn state_key(&self) -> String {
        format!("{}:state", self.prefix)
    }

    fn lost_key(&self) -> String {
        format!("{}:state-lost-at", self.prefix)
    }

    fn event_keys(&self, id: &EventId) -> EventKeys {
        let meta = format!("{}:ev:{}", self.prefix, id);
        EventKeys {
            fans: format!("{meta}:fans"),
            notes: format!("{meta}:notes"),
            pending: format!("{meta}:pending"),
            meta,
        }
    }

    /// Decides one entry request atomically. `token` identifies the request
    /// so it alone may release what it reserved.
    pub async fn admit(
        &self,
        event: &EventId,
        fan: &FanId,
        note: &Note,
        now: DateTime<Utc>,
        token: &str,
    ) -> Result<Admission, GateError> {
        let k = self.event_keys(event);
        let state = self.state_key();
        let rate = format!("{}:rl:{}", self.prefix, fan);
        let (limit, window_ms) = (self.rate_limit.requests, self.rate_limit.window.as_millis() as u64);
        let now_ms = now.timestamp_millis();
        let reply: Vec<String> = self
            .redis
            .run(|mut c| {
                let mut inv = ADMIT.prepare_invoke();
                inv.key(&state).key(&k.meta).key(&k.fans).key(&k.notes).key(&k.pending).key(&rate);
                inv.arg(fan.as_str()).arg(now_ms).arg(token).arg(note.as_deref().unwrap_or(""));
                inv.arg(if note.is_some() { "1" } else { "0" }).arg(limit).arg(window_ms);
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        let entry = |r: &[String]| parse_entry(event, fan, r);
        match reply.first().map(String::as_str) {
            Some("reserved") => {
                Ok(Admission::Reserved(Reservation { entry: entry(&reply[1..])?, token: token.to_owned() }))
            }
            Some("existing") => Ok(Admission::Existing(entry(&reply[1..])?)),
            Some("not_found") => Ok(Admission::NotFound),
            Some("not_open") => Ok(Admission::NotOpen),
            Some("closed") => Ok(Admission::Closed),
            Some("sold_out") => Ok(Admission::SoldOut),
            Some("rate_limited") => {
                let ms = reply.get(1).and_then(|t| t.parse::<u64>().ok()).unwrap_or(1000);
                Ok(Admission::RateLimited { retry_after: Duration::from_millis(ms) })
            }
            Some("state_lost") => Err(GateError::StateLost),
            _ => Err(GateError::Protocol(format!("admit: {reply:?}"))),
        }
    }

    /// Marks a reservation durably queued. False when the reservation was not
    /// there (it was released or never existed): the caller must log it.
    pub async fn confirm(&self, r: &Reservation) -> Result<bool, GateError> {
        self.confirm_position(&r.entry.event_id, &r.entry.fan_id, r.entry.position).await
    }

    /// Marks a fan's pending record at `position` durably queued.
    pub async fn confirm_position(&self, event: &EventId, fan: &FanId, position: Position) -> Result<bool, GateError> {
        let k = self.event_keys(event);
        let done: i64 = self
            .redis
            .run(|mut c| {
                let mut inv = CONFIRM.prepare_invoke();
                inv.key(&k.fans).key(&k.pending).arg(fan.as_str()).arg(position);
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Ok(done == 1)
    }

    /// Releases a reservation this request owns and whose send surely never
    /// reached SQS.
    pub async fn release(&self, r: &Reservation) -> Result<bool, GateError> {
        self.release_pending(&r.entry.event_id, &r.entry.fan_id, r.entry.position, &r.token, None).await
    }

    /// Releases a pending reservation older than `cutoff`, whoever owns it
    /// (the sweep, once PostgreSQL shows the entry never landed).
    pub async fn release_stale(
        &self,
        event: &EventId,
        fan: &FanId,
        position: Position,
        cutoff: DateTime<Utc>,
    ) -> Result<bool, GateError> {
        self.release_pending(event, fan, position, "", Some(cutoff.timestamp_millis())).await
    }

    async fn release_pending(
        &self,
        event: &EventId,
        fan: &FanId,
        position: Position,
        token: &str,
        cutoff_ms: Option<i64>,
    ) -> Result<bool, GateError> {
        let k = self.event_keys(event);
        let cutoff = cutoff_ms.map(|c| c.to_string()).unwrap_or_default();
        let done: i64 = self
            .redis
            .run(|mut c| {
                let mut inv = RELEASE.prepare_invoke();
                inv.key(&k.meta).key(&k.fans).key(&k.notes).key(&k.pending);
                inv.arg(fan.as_str()).arg(position).arg(token).arg(&cutoff);
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Ok(done == 1)
    }

    /// Fans whose reservation has been pending since before `cutoff`.
    pub async fn pending_since(
        &self,
        event: &EventId,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<(FanId, Position)>, GateError> {
        let k = self.event_keys(event);
        let cutoff_ms = cutoff.timestamp_millis();
        let fans: Vec<String> = self
            .redis
            .run(|mut c| {
                let key = k.pending.clone();
                async move { redis::cmd("ZRANGEBYSCORE").arg(key).arg("-inf").arg(cutoff_ms).query_async(&mut c).await }
            })
            .await?;
        if fans.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<Option<String>> = self
            .redis
            .run(|mut c| {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(&k.fans).arg(&fans);
                async move { cmd.query_async(&mut c).await }
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
        let k = self.event_keys(id);
        let state = self.state_key();
        let r: Vec<String> = self
            .redis
            .run(|mut c| {
                let mut inv = EVENT.prepare_invoke();
                inv.key(&state).key(&k.meta);
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        match r.first().map(String::as_str) {
            Some("ok") if r.len() == 6 => Ok(Some(EventView {
                title: r[1].clone(),
                opens_at: r[2].clone(),
                closes_at: r[3].clone(),
                capacity: int(&r[4])?,
                taken: int(&r[5])?,
            })),
            Some("not_found") => Ok(None),
            Some("state_lost") => Err(GateError::StateLost),
            _ => Err(GateError::Protocol(format!("event: {r:?}"))),
        }
    }

    /// One fan's entry in one event.
    pub async fn entry(&self, event: &EventId, fan: &FanId) -> Result<EntryLookup, GateError> {
        let k = self.event_keys(event);
        let state = self.state_key();
        let r: Vec<String> = self
            .redis
            .run(|mut c| {
                let mut inv = ENTRY.prepare_invoke();
                inv.key(&state).key(&k.meta).key(&k.fans).key(&k.notes).arg(fan.as_str());
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        match r.first().map(String::as_str) {
            Some("ok") => Ok(EntryLookup::Confirmed(parse_entry(event, fan, &r[1..])?)),
            Some("pending") => Ok(EntryLookup::Pending),
            Some("none") => Ok(EntryLookup::None),
            Some("not_found") => Ok(EntryLookup::EventNotFound),
            Some("state_lost") => Err(GateError::StateLost),
            _ => Err(GateError::Protocol(format!("entry: {r:?}"))),
        }
    }

    /// Publishes an event definition, keeping its counters.
    pub async fn publish(&self, e: &FanEvent) -> Result<Published, GateError> {
        let k = self.event_keys(&e.id);
        let state = self.state_key();
        let json = e.to_json();
        let r: Vec<String> = self
            .redis
            .run(|mut c| {
                let mut inv = PUBLISH.prepare_invoke();
                inv.key(&state).key(&k.meta);
                inv.arg(&e.title).arg(json["opensAt"].as_str()).arg(json["closesAt"].as_str());
                inv.arg(e.opens_at.timestamp_millis()).arg(e.closes_at.timestamp_millis()).arg(e.capacity);
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        match (r.first().map(String::as_str), r.get(1)) {
            (Some("ok"), Some(t)) => Ok(Published::Ok { taken: int(t)? }),
            (Some("below"), Some(t)) => Ok(Published::CapacityBelowTaken { taken: int(t)? }),
            (Some("state_lost"), _) => Err(GateError::StateLost),
            _ => Err(GateError::Protocol(format!("publish: {r:?}"))),
        }
    }

    /// Removes an event and everything the gate holds for it.
    pub async fn unpublish(&self, id: &EventId) -> Result<(), GateError> {
        let k = self.event_keys(id);
        self.redis
            .run(|mut c| {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(&k.meta).arg(&k.fans).arg(&k.notes).arg(&k.pending);
                async move { cmd.query_async::<i64>(&mut c).await }
            })
            .await?;
        Ok(())
    }

    /// `None` while Redis holds the gate state; otherwise when the loss was
    /// first noticed (recorded now if nobody noticed it before).
    pub async fn state_lost_since(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, GateError> {
        let (state, lost) = (self.state_key(), self.lost_key());
        let r: Option<i64> = self
            .redis
            .run(|mut c| {
                let mut inv = LOST.prepare_invoke();
                inv.key(&state).key(&lost).arg(now.timestamp_millis());
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        match r {
            None => Ok(None),
            Some(ms) => Utc
                .timestamp_millis_opt(ms)
                .single()
                .map(Some)
                .ok_or_else(|| GateError::Protocol(format!("lost-at out of range: {ms}"))),
        }
    }

    /// Rewrites one event's gate state from its durable entries: the event
    /// definition, `taken` = the number of entries, `seq` = the highest
    /// position (so no position is ever handed out twice), and each fan's
    /// confirmed record. Part of a restore; see [`crate::recovery`].
    pub async fn restore_event(&self, e: &FanEvent, entries: &[Entry]) -> Result<(), GateError> {
        let k = self.event_keys(&e.id);
        let json = e.to_json();
        let seq = entries.iter().map(|x| x.position).max().unwrap_or(0);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&k.meta).del(&k.fans).del(&k.notes).del(&k.pending);
        pipe.hset_multiple(
            &k.meta,
            &[
                ("title", e.title.clone()),
                ("opensAt", json["opensAt"].as_str().unwrap_or_default().to_owned()),
                ("closesAt", json["closesAt"].as_str().unwrap_or_default().to_owned()),
                ("opensAtMs", e.opens_at.timestamp_millis().to_string()),
                ("closesAtMs", e.closes_at.timestamp_millis().to_string()),
                ("capacity", e.capacity.to_string()),
                ("taken", entries.len().to_string()),
                ("seq", seq.to_string()),
            ],
        );
        for chunk in entries.chunks(1000) {
            let records: Vec<(&str, String)> = chunk
                .iter()
                .map(|x| (x.fan_id.as_str(), format!("{}:{}", x.position, x.accepted_at.timestamp_millis())))
                .collect();
            pipe.hset_multiple(&k.fans, &records);
            let notes: Vec<(&str, &str)> =
                chunk.iter().filter_map(|x| Some((x.fan_id.as_str(), x.note.as_deref()?))).collect();
            if !notes.is_empty() {
                pipe.hset_multiple(&k.notes, &notes);
            }
        }
        let pipe = pipe.ignore().to_owned();
        self.redis
            .run(|mut c| {
                let p = pipe.clone();
                async move { p.query_async::<()>(&mut c).await }
            })
            .await?;
        Ok(())
    }

    /// Marks the gate state complete again after a restore.
    pub async fn mark_state_present(&self) -> Result<(), GateError> {
        let (key, lost) = (self.state_key(), self.lost_key());
        self.redis
            .run(|mut c| {
                let pipe = redis::pipe().atomic().set(&key, 1).ignore().del(&lost).ignore().to_owned();
                async move { pipe.query_async::<()>(&mut c).await }
            })
            .await?;
        Ok(())
    }
}

struct EventKeys {
    meta: String,
    fans: String,
    notes: String,
    pending: String,
}

fn int(s: &str) -> Result<i64, GateError> {
    s.parse().map_err(|_| GateError::Protocol(format!("not an integer: {s:?}")))
}

/// Parses `[position, acceptedAtMs, hasNote, note]` from a script reply.
fn parse_entry(event: &EventId, fan: &FanId, r: &[String]) -> Result<Entry, GateError> {
    let [pos, at, has_note, note] = r else {
        return Err(GateError::Protocol(format!("entry record: {r:?}")));
    };
    let accepted_at = Utc
        .timestamp_millis_opt(int(at)?)
        .single()
        .ok_or_else(|| GateError::Protocol(format!("acceptedAt out of range: {at}")))?;
    Ok(Entry {
        event_id: event.clone(),
        fan_id: fan.clone(),
        position: int(pos)?,
        note: (has_note == "1").then(|| note.clone()),
        accepted_at,
    })
}
