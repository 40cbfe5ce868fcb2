//! The Redis admission gate: the one place a fan's entry is decided.
//!
//! Every decision is one Lua script, so it is atomic and costs one round
//! trip. Keys, under a configurable prefix (tests use a unique one each):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:state` | string | the `run_id` of the server the whole gate state was built on |
//! | `P:state-lost-at` | string | `run_id:ms`: when a server first noticed its state missing or foreign |
//! | `P:restoring` | string | the lease of the one restorer at work (token, expires) |
//! | `P:ev:E` | hash | event definition, `taken` (slots held), `seq` (last position handed out), `archived`; for a deleted event only `retired` = 1 (a tombstone: the id is never published again); for an event with a line also `lineRate`, `linePrequeueMs` (when joining opens), `lineSeed`, `linePauses` and the pace's `lineTokens`, `lineTokensAt`, `linePrequeueIn` (pre-queued fans admitted) and `linePrequeueAt` (the last of them, or when the first arrival waited for them) |
//! | `P:ev:E:fans` | hash | fan → record (below) |
//! | `P:ev:E:notes` | hash | fan → note |
//! | `P:ev:E:pending` | sorted set | fans whose send is pending, by the time of the last send, for the sweep |
//! | `P:ev:E:line` | string | the line's counts of tickets issued, `u32`s (`BITFIELD`): the pre-queue's, then one per 100 ms bucket after the opening; a restore leaves them, so a failover keeps what replicated |
//! | `P:ev:E:held` | sorted set | fans whose turn came and whom the pace held back, scored by their places' order keys: they take the tokens in that order, no arrival before a pre-queued fan or half a second of arrivals behind the head |
//! | `P:ev:E:held-due` | sorted set | the same fans, scored by when each is due back (Unix ms, with a second's grace): one that is not back by then leaves the queue |
//! | `P:rl:F` | string | a fan's entry attempts in the rate-limit window (`F` percent-encoded) |
//!
//! A fan's record is `position:acceptedAtMs` once the entry is durably
//! queued; `position:acceptedAtMs:token` while one request's SQS send is
//! pending; `position:acceptedAtMs:token:shared` once another request (a
//! retry, a double tap) took the send over. A request whose send surely never
//! reached SQS releases its slot only when the record is its own and not
//! shared: a shared record's first send may still land, so only the sweep
//! releases it, after the queue drained and neither PostgreSQL nor the DLQ
//! holds the entry.
//!
//! **The fence.** Redis may go back in time: a failover promotes a replica
//! that missed the last acknowledged writes (replication is asynchronous), a
//! server restarts from an older snapshot. Either way the server is a new
//! process with a new `run_id`, and every connection learns its server's
//! `run_id` when it opens ([`LazyRedis`]). Every script that reads or
//! decides checks `P:state` against it, so the first request on another
//! server is refused (`state_lost`, 503) before it can admit anyone, and the
//! state stays refused until [`crate::usecases::recovery`] rebuilds it from PostgreSQL
//! and the DLQ and stamps it with the new server's `run_id`.
//!
//! **The line** ([`crate::rules::line`]) costs the gate one call per
//! execution environment per sync ([`EntryGate::sync_line`], `line.lua`),
//! whatever the environment's traffic, plus the admission of each fan whose
//! turn came. `admit.lua` paces those admissions with a token bucket of the
//! event's rate (the fans it holds back queue for the tokens in order), and
//! sends a caller that does not follow the line to it.

mod connection;

pub use connection::{LazyRedis, RedisFailure, Server};

use crate::rules::domain::{Entry, EventId, FanEvent, FanId, Note, Position};
use crate::rules::line::Pause;
use chrono::{DateTime, TimeZone, Utc};
use redis::{FromRedisValue, Script};
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
static RESTORE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/restore.lua")));
static RETIRE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/retire.lua")));
static LINE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/line.lua")));

/// Gate failures. Outcomes a fan can be told about (sold out, closed, ...)
/// are not errors: they are [`Admission`] variants.
#[derive(Debug, Error)]
pub enum GateError {
    #[error("redis is unavailable: {0}")]
    Unavailable(redis::RedisError),
    #[error("redis refused a gate command: {0}")]
    Refused(redis::RedisError),
    /// The gate state is missing (a flush) or was built on another server (a
    /// failover, a restart from a snapshot): it may have gone back in time,
    /// so it refuses everything until it is restored from PostgreSQL.
    #[error("the gate state is gone from redis or was built on another server, and must be restored")]
    StateLost,
    /// The server may evict keys without a TTL (`maxmemory-policy
    /// allkeys-*`): fan records and counters could vanish silently.
    #[error("redis may evict the gate's keys (maxmemory-policy {0}); admissions are refused until it is noeviction")]
    EvictionPossible(String),
    /// Another restorer holds the restore lease, or this one lost it.
    #[error("another restore is in progress")]
    RestoreBusy,
    #[error("unexpected reply from a gate script: {0}")]
    Protocol(String),
    /// The Redis AUTH token could not be read.
    #[error(transparent)]
    Secret(#[from] crate::adapters::secrets::SecretError),
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
    /// The event has a line and the caller did not say the fan's turn came.
    Lined,
    /// The fan's turn came, but the line's pace lets nobody else in for
    /// this long.
    Paced {
        retry_after: Duration,
    },
    /// Asked only for an entry the fan already has (its turn passed), and it
    /// has none.
    TurnMissed,
}

/// What an admission call says about the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineCall {
    /// The caller does not follow a line (an event without one).
    Unlined,
    /// The fan's turn came: admit it, at the line's pace; `order` is its
    /// place's [`Place::order_key`](crate::rules::line::Place::order_key),
    /// the order in which the pace lets the fans it held back in.
    Turn { order: i64 },
    /// The fan's turn passed: only an entry it already has.
    Existing,
}

impl LineCall {
    fn args(self) -> [String; 2] {
        match self {
            Self::Unlined => [String::new(), "0".into()],
            Self::Turn { order } => ["admit".into(), order.to_string()],
            Self::Existing => ["existing".into(), "0".into()],
        }
    }
}

/// A new event's line seed: 128 bits from the operating system's random
/// source, kept secret (never served), fixing the pre-queue's shuffle.
pub fn new_line_seed() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
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

/// Tickets one execution environment issued since its last sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuedTickets {
    /// In the pre-queue.
    pub prequeued: u64,
    /// `(arrival bucket after the opening, tickets)`.
    pub arrivals: Vec<(u64, u64)>,
}

impl IssuedTickets {
    pub fn is_empty(&self) -> bool {
        self.prequeued == 0 && self.arrivals.is_empty()
    }

    /// Counts one ticket in `bucket` (`None`: the pre-queue).
    pub fn add(&mut self, bucket: Option<u64>, n: u64) {
        match bucket {
            None => self.prequeued += n,
            Some(b) => match self.arrivals.iter_mut().find(|(x, _)| *x == b) {
                Some((_, m)) => *m += n,
                None => self.arrivals.push((b, n)),
            },
        }
    }

    pub fn absorb(&mut self, other: IssuedTickets) {
        self.add(None, other.prequeued);
        for (b, n) in other.arrivals {
            self.add(Some(b), n);
        }
    }
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
    Lined(LineStatus),
}

/// An event's line as the gate holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LineStatus {
    pub capacity: i64,
    pub taken: i64,
    pub opens_at_ms: i64,
    pub closes_at_ms: i64,
    /// Admissions per second.
    pub rate: f64,
    /// When fans may first join (the pre-queue's start, or the opening).
    pub joinable_from_ms: i64,
    pub seed: String,
    pub pauses: Vec<Pause>,
    pub counts: LineCountsRead,
}

/// The line's counts as one reply read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineCountsRead {
    pub prequeued: u64,
    /// `arrivals[i]` is the count of bucket `from_bucket + i`.
    pub from_bucket: u64,
    pub arrivals: Vec<u64>,
    /// How many buckets the gate counts; past `from_bucket + 2999` the rest
    /// comes with the next read.
    pub buckets: u64,
}

impl LineCountsRead {
    /// Whether buckets past what this read returned remain to be read.
    pub fn more(&self) -> bool {
        self.buckets > self.from_bucket + self.arrivals.len() as u64
    }
}

/// What an environment sends with a lined admission: its tickets since the
/// last refresh, and from which bucket it wants the counts back (`None`:
/// its copy is fresh enough, only flush).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineRefresh {
    pub issued: IssuedTickets,
    pub from_bucket: Option<u64>,
}

impl LineRefresh {
    fn args(&self) -> Vec<String> {
        let from = self.from_bucket.map_or(-1, |b| b as i64);
        let mut args = vec![from.to_string(), self.issued.prequeued.to_string()];
        for (bucket, n) in &self.issued.arrivals {
            args.extend([bucket.to_string(), n.to_string()]);
        }
        args
    }
}

/// The line's state after a lined admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTail {
    pub taken: i64,
    pub capacity: i64,
    /// When the refresh asked for them.
    pub counts: Option<LineCountsRead>,
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
    /// The event closed before the gate was last restored; its fan records
    /// were not brought back (they are in PostgreSQL).
    Archived,
}

/// Result of publishing an event definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Published; `taken` slots were already reserved.
    Ok { taken: i64 },
    /// Refused: the new capacity is below the slots already taken.
    CapacityBelowTaken { taken: i64 },
    /// Refused: the id was retired (deleted) and is never published again.
    Retired,
}

/// How much of an event a restore brings back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// Open or upcoming: definition, counters and every fan's record.
    Whole,
    /// Closed: definition and counters only.
    Archived,
}

/// The right to write a restore, held by one restorer at a time. Every
/// write under it checks it is still held, so a restorer that stalled past
/// its lease writes nothing.
#[derive(Debug, Clone)]
pub struct RestoreLease {
    token: String,
    ttl: Duration,
}

/// Whether a script checks `P:state` against the connection's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fence {
    /// ARGV[1] is the server's `run_id`.
    Server,
    /// As `Server`, and refused outright if the server may evict gate keys.
    ServerAndEviction,
    None,
}

/// A gate script's reply: a tag, then its fields.
struct Reply(Vec<String>);

impl Reply {
    fn tag(&self) -> &str {
        self.0.first().map(String::as_str).unwrap_or_default()
    }

    fn field(&self, i: usize) -> Result<&str, GateError> {
        self.0.get(i).map(String::as_str).ok_or_else(|| self.unexpected())
    }

    fn int(&self, i: usize) -> Result<i64, GateError> {
        let s = self.field(i)?;
        s.parse().map_err(|_| GateError::Protocol(format!("not an integer: {s:?} in {:?}", self.0)))
    }

    /// `[tag, position, acceptedAtMs, hasNote, note]` as an entry.
    fn entry(&self, event: &EventId, fan: &FanId) -> Result<Entry, GateError> {
        let accepted_at = Utc
            .timestamp_millis_opt(self.int(2)?)
            .single()
            .ok_or_else(|| GateError::Protocol(format!("acceptedAt out of range: {:?}", self.0)))?;
        Ok(Entry {
            event_id: event.clone(),
            fan_id: fan.clone(),
            position: self.int(1)?,
            note: (self.field(3)? == "1").then(|| self.field(4).map(str::to_owned)).transpose()?,
            accepted_at,
        })
    }

    fn unexpected(&self) -> GateError {
        GateError::Protocol(format!("{:?}", self.0))
    }
}

/// An admission script's answer.
fn admission(r: &Reply, event: &EventId, fan: &FanId, token: &str) -> Result<Admission, GateError> {
    Ok(match r.tag() {
        "reserved" => Admission::Reserved(Reservation { entry: r.entry(event, fan)?, token: token.to_owned() }),
        "existing" => Admission::Existing(r.entry(event, fan)?),
        "not_found" => Admission::NotFound,
        "not_open" => Admission::NotOpen,
        "closed" => Admission::Closed,
        "sold_out" => Admission::SoldOut,
        "rate_limited" => Admission::RateLimited { retry_after: Duration::from_millis(r.int(1)?.max(1) as u64) },
        "lined" => Admission::Lined,
        "paced" => Admission::Paced { retry_after: Duration::from_millis(r.int(1)?.max(1) as u64) },
        "turn_missed" => Admission::TurnMissed,
        "state_lost" => return Err(GateError::StateLost),
        _ => return Err(r.unexpected()),
    })
}

/// A reply field as text.
fn text_of(v: Option<&redis::Value>, what: &str) -> Result<String, GateError> {
    match v {
        Some(redis::Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(redis::Value::Int(n)) => Ok(n.to_string()),
        Some(redis::Value::SimpleString(s)) => Ok(s.clone()),
        other => Err(GateError::Protocol(format!("{what}: {other:?}"))),
    }
}

fn number_of(v: Option<&redis::Value>, what: &str) -> Result<f64, GateError> {
    let s = text_of(v, what)?;
    s.parse().map_err(|_| GateError::Protocol(format!("{what}: not a number: {s:?}")))
}

/// Big-endian `u32` counters, as `BITFIELD` keeps them.
fn counters_of(v: Option<&redis::Value>) -> Vec<u64> {
    match v {
        Some(redis::Value::BulkString(b)) => {
            b.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64).collect()
        }
        _ => Vec::new(),
    }
}

/// The line's counts as a reply carries them: the pre-queue's counter,
/// the first bucket, how many the gate counts, the buckets' counters.
fn counts_of(items: &[redis::Value], at: usize) -> Result<LineCountsRead, GateError> {
    Ok(LineCountsRead {
        prequeued: counters_of(items.get(at)).first().copied().unwrap_or(0),
        from_bucket: number_of(items.get(at + 1), "fromBucket")?.max(0.0) as u64,
        buckets: number_of(items.get(at + 2), "buckets")?.max(0.0) as u64,
        arrivals: counters_of(items.get(at + 3)),
    })
}

/// `{taken, capacity[, counts...]}` after a lined admission.
fn line_tail(items: &[redis::Value]) -> Result<LineTail, GateError> {
    Ok(LineTail {
        taken: number_of(items.first(), "taken")? as i64,
        capacity: number_of(items.get(1), "capacity")? as i64,
        counts: if items.len() > 2 { Some(counts_of(items, 2)?) } else { None },
    })
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

    /// Builds the gate on a connection configured elsewhere (AUTH token,
    /// TLS roots). Does not connect.
    pub fn on(redis: LazyRedis, prefix: &str) -> Self {
        Self { redis, prefix: prefix.to_owned(), rate_limit: RateLimit::OFF }
    }

    /// Opens the Redis connection now; see [`LazyRedis::warm`].
    pub async fn warm(&self, connect_budget: Duration) -> Result<(), GateError> {
        Ok(self.redis.warm(connect_budget).await?)
    }

    /// Limits each fan's entry attempts.
    pub fn with_rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    fn event_keys(&self, id: &EventId) -> EventKeys {
        let meta = format!("{}:ev:{}", self.prefix, id);
        EventKeys {
            fans: format!("{meta}:fans"),
            notes: format!("{meta}:notes"),
            pending: format!("{meta}:pending"),
            line: format!("{meta}:line"),
            held: format!("{meta}:held"),
            held_due: format!("{meta}:held-due"),
            meta,
        }
    }

    /// Runs one gate script: `keys`, then (when fenced) the server's
    /// `run_id`, then `args`. A stale connection is replaced and the script
    /// retried once (see [`LazyRedis::run`]).
    async fn call<T: redis::FromRedisValue>(
        &self,
        script: &'static Script,
        fence: Fence,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T, GateError> {
        let reply = self
            .redis
            .run(|mut c, server| {
                let mut inv = script.prepare_invoke();
                for k in keys {
                    inv.key(*k);
                }
                if fence != Fence::None {
                    inv.arg(server.run_id.as_str());
                }
                for a in args {
                    inv.arg(*a);
                }
                let refuse = (fence == Fence::ServerAndEviction && server.may_evict_gate_keys())
                    .then(|| server.maxmemory_policy.clone());
                async move {
                    match refuse {
                        Some(policy) => Ok(Err(policy)),
                        None => inv.invoke_async(&mut c).await.map(Ok),
                    }
                }
            })
            .await?;
        if reply.is_err() {
            // Read the policy again next time: an operator may fix it.
            self.redis.forget().await;
        }
        reply.map_err(|policy| {
            metrics::counter!("RedisEvictionPossible").increment(1);
            tracing::error!(maxmemory_policy = %policy, "redis may evict gate keys; admissions refused");
            GateError::EvictionPossible(policy)
        })
    }

    /// A script whose reply is `[tag, ...]`; `state_lost` is an error.
    async fn call_tagged(
        &self,
        script: &'static Script,
        fence: Fence,
        keys: &[&str],
        args: &[&str],
    ) -> Result<Reply, GateError> {
        let reply = Reply(self.call(script, fence, keys, args).await?);
        match reply.tag() {
            "state_lost" => Err(GateError::StateLost),
            _ => Ok(reply),
        }
    }

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
        let reply: redis::Value = self.admit_call(event, fan, note, now, token, LineCall::Unlined, None).await?;
        let r = Reply(Vec::<String>::from_redis_value(reply).map_err(|e| GateError::Protocol(e.to_string()))?);
        admission(&r, event, fan, token)
    }

    /// Decides the entry of a fan whose turn in the line came (or passed),
    /// at the line's pace, and carries the environment's refresh of the
    /// line: its tickets go into the counts, and the line's state comes back
    /// (`None` when the gate answered before reaching the event).
    #[allow(clippy::too_many_arguments)]
    pub async fn admit_in_line(
        &self,
        event: &EventId,
        fan: &FanId,
        note: &Note,
        now: DateTime<Utc>,
        token: &str,
        call: LineCall,
        refresh: &LineRefresh,
    ) -> Result<(Admission, Option<LineTail>), GateError> {
        let reply: redis::Value = self.admit_call(event, fan, note, now, token, call, Some(refresh)).await?;
        let protocol = |e: redis::ParsingError| GateError::Protocol(e.to_string());
        match reply {
            redis::Value::Array(parts) if matches!(parts.first(), Some(redis::Value::Array(_))) => {
                let mut parts = parts.into_iter();
                let main =
                    Vec::<String>::from_redis_value(parts.next().unwrap_or(redis::Value::Nil)).map_err(protocol)?;
                let tail = line_tail(
                    &parts
                        .next()
                        .map(|t| match t {
                            redis::Value::Array(items) => items,
                            _ => Vec::new(),
                        })
                        .unwrap_or_default(),
                )?;
                Ok((admission(&Reply(main), event, fan, token)?, Some(tail)))
            }
            flat => {
                let r = Reply(Vec::<String>::from_redis_value(flat).map_err(protocol)?);
                Ok((admission(&r, event, fan, token)?, None))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn admit_call(
        &self,
        event: &EventId,
        fan: &FanId,
        note: &Note,
        now: DateTime<Utc>,
        token: &str,
        call: LineCall,
        line: Option<&LineRefresh>,
    ) -> Result<redis::Value, GateError> {
        let k = self.event_keys(event);
        let (state, rate) = (self.key("state"), self.key(&format!("rl:{}", fan.encoded())));
        let (now_ms, limit) = (now.timestamp_millis().to_string(), self.rate_limit.requests.to_string());
        let window_ms = self.rate_limit.window.as_millis().to_string();
        let has_note = if note.is_some() { "1" } else { "0" };
        let mut args: Vec<String> =
            [fan.as_str(), &now_ms, token, note.as_deref().unwrap_or(""), has_note, &limit, &window_ms]
                .iter()
                .map(|a| a.to_string())
                .collect();
        args.extend(call.args());
        if let Some(refresh) = line {
            args.extend(refresh.args());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let keys = [state.as_str(), &k.meta, &k.fans, &k.notes, &k.pending, &rate, &k.line, &k.held, &k.held_due];
        let reply: redis::Value = self.call(&ADMIT, Fence::ServerAndEviction, &keys, &args).await?;
        // `state_lost` comes back flat whatever the call.
        if let redis::Value::Array(items) = &reply {
            if matches!(items.first(), Some(redis::Value::BulkString(b)) if b.as_slice() == b"state_lost") {
                return Err(GateError::StateLost);
            }
        }
        Ok(reply)
    }

    /// Marks a reservation durably queued. False when the reservation was not
    /// there (it was released or never existed): the caller must log it.
    pub async fn confirm(&self, r: &Reservation) -> Result<bool, GateError> {
        self.confirm_position(&r.entry.event_id, &r.entry.fan_id, r.entry.position).await
    }

    /// Marks a fan's pending record at `position` durably queued.
    pub async fn confirm_position(&self, event: &EventId, fan: &FanId, position: Position) -> Result<bool, GateError> {
        let k = self.event_keys(event);
        let done: i64 =
            self.call(&CONFIRM, Fence::None, &[&k.fans, &k.pending], &[fan.as_str(), &position.to_string()]).await?;
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
        let k = self.event_keys(event);
        let done: i64 = self
            .call(
                &RELEASE,
                Fence::None,
                &[&k.meta, &k.fans, &k.notes, &k.pending],
                &[fan.as_str(), &position.to_string(), token, cutoff_ms],
            )
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
        let k = self.event_keys(id);
        let r = self.call_tagged(&EVENT, Fence::Server, &[&self.key("state"), &k.meta], &[]).await?;
        match r.tag() {
            "ok" => Ok(Some(EventView {
                title: r.field(1)?.to_owned(),
                opens_at: r.field(2)?.to_owned(),
                closes_at: r.field(3)?.to_owned(),
                capacity: r.int(4)?,
                taken: r.int(5)?,
            })),
            "not_found" => Ok(None),
            _ => Err(r.unexpected()),
        }
    }

    /// One fan's entry in one event.
    pub async fn entry(&self, event: &EventId, fan: &FanId) -> Result<EntryLookup, GateError> {
        let k = self.event_keys(event);
        let keys = [self.key("state"), k.meta, k.fans, k.notes];
        let r = self.call_tagged(&ENTRY, Fence::Server, &keys.each_ref().map(String::as_str), &[fan.as_str()]).await?;
        Ok(match r.tag() {
            "ok" => EntryLookup::Confirmed(r.entry(event, fan)?),
            "pending" => EntryLookup::Pending,
            "none" => EntryLookup::None,
            "archived" => EntryLookup::Archived,
            "not_found" => EntryLookup::EventNotFound,
            _ => return Err(r.unexpected()),
        })
    }

    /// Publishes an event definition, keeping its counters, and writes its
    /// line's seed as `seed` says.
    pub async fn publish(&self, e: &FanEvent, seed: SeedWrite<'_>) -> Result<Published, GateError> {
        let k = self.event_keys(&e.id);
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
        let r = self.call_tagged(&PUBLISH, Fence::ServerAndEviction, &[&self.key("state"), &k.meta], &args).await?;
        match r.tag() {
            "ok" => Ok(Published::Ok { taken: r.int(1)? }),
            "below" => Ok(Published::CapacityBelowTaken { taken: r.int(1)? }),
            "retired" => Ok(Published::Retired),
            _ => Err(r.unexpected()),
        }
    }

    /// Removes everything the gate holds for an event and retires its id:
    /// a later publish of it is refused ([`Published::Retired`]).
    pub async fn unpublish(&self, id: &EventId) -> Result<(), GateError> {
        let k = self.event_keys(id);
        let keys = [k.meta.as_str(), &k.fans, &k.notes, &k.pending, &k.line, &k.held, &k.held_due];
        let r = self.call_tagged(&RETIRE, Fence::None, &keys, &[]).await?;
        match r.tag() {
            "ok" => Ok(()),
            _ => Err(r.unexpected()),
        }
    }

    /// One execution environment's sync with an event's line: adds the
    /// tickets it issued since its last sync to the gate's counts and reads
    /// the line back, with the counts of every bucket from `from_bucket`.
    pub async fn sync_line(
        &self,
        event: &EventId,
        issued: &IssuedTickets,
        from_bucket: u64,
    ) -> Result<LineSync, GateError> {
        let k = self.event_keys(event);
        let mut args = vec![issued.prequeued.to_string(), from_bucket.to_string()];
        for (bucket, n) in &issued.arrivals {
            args.extend([bucket.to_string(), n.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let keys = [self.key("state"), k.meta, k.line];
        let reply: Vec<redis::Value> =
            self.call(&LINE, Fence::Server, &keys.each_ref().map(String::as_str), &args).await?;
        let int = |i: usize| number_of(reply.get(i), "line sync").map(|x| x as i64);
        match text_of(reply.first(), "line sync")?.as_str() {
            "state_lost" => Err(GateError::StateLost),
            "not_found" => Ok(LineSync::NotFound),
            "unlined" => Ok(LineSync::Unlined { capacity: int(1)?, taken: int(2)? }),
            "ok" => Ok(LineSync::Lined(LineStatus {
                capacity: int(1)?,
                taken: int(2)?,
                opens_at_ms: int(3)?,
                closes_at_ms: int(4)?,
                rate: number_of(reply.get(5), "lineRate")?,
                joinable_from_ms: int(6)?,
                seed: text_of(reply.get(7), "lineSeed")?,
                pauses: Pause::parse_list(&text_of(reply.get(8), "linePauses")?),
                counts: counts_of(&reply, 9)?,
            })),
            other => Err(GateError::Protocol(format!("line sync: {other:?}"))),
        }
    }

    /// Writes an event's line pauses (after a restore recorded a new one).
    pub async fn restore_line_pauses(
        &self,
        lease: &RestoreLease,
        id: &EventId,
        pauses: &[Pause],
    ) -> Result<(), GateError> {
        let k = self.event_keys(id);
        let text = Pause::format_list(pauses);
        self.restore_step(lease, "meta", &[&k.meta], &["linePauses", &text]).await
    }

    /// `None` while Redis holds the gate state built on this server;
    /// otherwise when this server first noticed it missing or foreign
    /// (recorded now if nobody noticed before).
    pub async fn state_lost_since(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, GateError> {
        let keys = [self.key("state"), self.key("state-lost-at")];
        let r: Option<i64> = self
            .call(&LOST, Fence::Server, &keys.each_ref().map(String::as_str), &[&now.timestamp_millis().to_string()])
            .await?;
        r.map(|ms| {
            Utc.timestamp_millis_opt(ms)
                .single()
                .ok_or_else(|| GateError::Protocol(format!("lost-at out of range: {ms}")))
        })
        .transpose()
    }

    /// Takes the restore lease (or renews it, for its holder). `RestoreBusy`
    /// when another restorer holds it.
    pub async fn begin_restore(&self, token: &str, ttl: Duration) -> Result<RestoreLease, GateError> {
        let lease = RestoreLease { token: token.to_owned(), ttl };
        self.restore_step(&lease, "begin", &[], &[]).await?;
        Ok(lease)
    }

    /// Clears what the gate holds for one event, before it is rewritten.
    pub async fn restore_clear(&self, lease: &RestoreLease, id: &EventId) -> Result<(), GateError> {
        let k = self.event_keys(id);
        self.restore_step(lease, "clear", &[&k.meta, &k.fans, &k.notes, &k.pending, &k.held, &k.held_due], &[]).await
    }

    /// Writes confirmed fan records (and notes) for stored entries; called
    /// chunk by chunk so no restorer holds a whole event in memory.
    pub async fn restore_entries(
        &self,
        lease: &RestoreLease,
        id: &EventId,
        entries: &[Entry],
    ) -> Result<(), GateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let k = self.event_keys(id);
        let records: Vec<String> =
            entries.iter().map(|x| format!("{}:{}", x.position, x.accepted_at.timestamp_millis())).collect();
        let mut args: Vec<&str> = Vec::with_capacity(entries.len() * 4);
        for (x, record) in entries.iter().zip(&records) {
            let (has, note) = match &x.note {
                Some(n) => ("1", n.as_str()),
                None => ("0", ""),
            };
            args.extend([x.fan_id.as_str(), record, has, note]);
        }
        self.restore_step(lease, "rows", &[&k.fans, &k.notes], &args).await
    }

    /// Writes an event's definition and counters: `taken` entries held,
    /// `seq` the highest position ever stored (so none is handed out twice).
    pub async fn restore_definition(
        &self,
        lease: &RestoreLease,
        e: &FanEvent,
        line: Option<(&str, &[Pause])>,
        taken: i64,
        seq: Position,
        restored: Restored,
    ) -> Result<(), GateError> {
        let k = self.event_keys(&e.id);
        let json = e.to_json();
        let fields = [
            ("title", e.title.clone()),
            ("opensAt", json["opensAt"].as_str().unwrap_or_default().to_owned()),
            ("closesAt", json["closesAt"].as_str().unwrap_or_default().to_owned()),
            ("opensAtMs", e.opens_at.timestamp_millis().to_string()),
            ("closesAtMs", e.closes_at.timestamp_millis().to_string()),
            ("capacity", e.capacity.to_string()),
            ("taken", taken.to_string()),
            ("seq", seq.to_string()),
            ("archived", if restored == Restored::Archived { "1" } else { "0" }.to_owned()),
        ];
        let mut fields = fields.to_vec();
        if let (Some(settings), Some((seed, pauses))) = (e.line, line) {
            fields.extend([
                ("lineRate", settings.admissions_per_second.to_string()),
                ("linePrequeueMs", e.joinable_from().timestamp_millis().to_string()),
                ("lineSeed", seed.to_owned()),
                ("linePauses", Pause::format_list(pauses)),
            ]);
        }
        let args: Vec<&str> = fields.iter().flat_map(|(f, v)| [*f, v.as_str()]).collect();
        self.restore_step(lease, "meta", &[&k.meta], &args).await
    }

    /// Stamps the gate state with this server's `run_id`: admissions resume.
    pub async fn finish_restore(&self, lease: &RestoreLease) -> Result<(), GateError> {
        let keys = [self.key("state"), self.key("state-lost-at")];
        self.restore_step(lease, "finish", &keys.each_ref().map(String::as_str), &[]).await
    }

    async fn restore_step(
        &self,
        lease: &RestoreLease,
        step: &str,
        keys: &[&str],
        args: &[&str],
    ) -> Result<(), GateError> {
        let lease_key = self.key("restoring");
        let all_keys: Vec<&str> = std::iter::once(lease_key.as_str()).chain(keys.iter().copied()).collect();
        let ttl = lease.ttl.as_millis().max(1).to_string();
        let all_args: Vec<&str> = [lease.token.as_str(), &ttl, step].into_iter().chain(args.iter().copied()).collect();
        // Fenced by the server so the finish step can stamp its run_id.
        let done: i64 = self.call(&RESTORE, Fence::Server, &all_keys, &all_args).await?;
        if done == 1 {
            Ok(())
        } else {
            Err(GateError::RestoreBusy)
        }
    }

    /// Marks an empty gate complete, built on this server: a new
    /// deployment's first setup (and tests). Never use it on a gate that
    /// held entries; restore that instead.
    pub async fn mark_state_present(&self) -> Result<(), GateError> {
        let lease = self.begin_restore("setup", Duration::from_secs(10)).await?;
        self.finish_restore(&lease).await
    }
}

struct EventKeys {
    meta: String,
    fans: String,
    notes: String,
    pending: String,
    line: String,
    held: String,
    held_due: String,
}
