//! The Redis admission gate: the one place a fan's entry is decided.
//!
//! Every decision is one Lua function of the gate's library (`FCALL`,
//! [`scripts`]), so it is atomic and costs one round trip. Every function
//! is idempotent: one retried after a lost reply (see
//! [`LazyRedis::run`]) finds what its first run wrote and answers the same,
//! so nothing is counted twice. Keys, under a configurable prefix (tests use
//! a unique one each); all of one event's share its hash tag `{E}`, so each
//! event script touches one hash slot, and nothing global is read beside
//! them (the directory is a call of its own). The tag is the event's id,
//! or for an event placed on a cluster's least loaded shard
//! ([`crate::rules::scaling::placement`]) the id with a suffix `~n`; the
//! directory lists it, and each environment looks it up once:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:events` | hash | the directory: every event id the gate was given → its hash tag (`1`, listed before tags: the id), and `~fence`, the `run_id` of the server it was built on; it tells an unknown event from one lost with all its keys |
//! | `P:ev:{E}` | hash | event definition, `fence` (the `run_id` of the server the event's state was built on), `taken` (places held), `seq` (last position handed out), `archived` (1 once closed and archived: the event's other keys are gone); for a deleted event only `retired` = 1 and `fence` (a tombstone: the id is never published again); for an event with a line also `lineRate`, `linePrequeueMs` (when joining opens), `lineSeed`, the pace's `lineTokens` and `lineTokensAt`, `lineServed` (the highest place granted, an order key), `lineGranted` (places granted so far), `lineFirstBucket` (the first arrival bucket counted), `lineDrawDigest` (the digest of the sealed draw) and `lineRestoredAt` |
//! | `P:ev:{E}:lost-at` | string | `run_id:ms`: when a server first noticed the event's state missing or foreign |
//! | `P:ev:{E}:restoring` | string | the lease of the one restorer rebuilding the event (token, expires) |
//! | `P:ev:{E}:fans` | hash | fan → record (below) |
//! | `P:ev:{E}:notes` | hash | fan → note |
//! | `P:ev:{E}:pending` | sorted set | fans whose send is pending, by the time of the last send, for the sweep |
//! | `P:ev:{E}:line` | string | the line's counts of fans given a place, `u32`s (`BITFIELD`): the pre-queue's, then one per 100 ms bucket after the opening |
//! | `P:ev:{E}:joined` | hash | an 8-byte hash of each fan counted in the line → the bucket it was counted at (`p`: the pre-queue's draw), so a fan is counted once |
//! | `P:ev:{E}:draw` | string | the 8-byte hashes of the fans counted in the pre-queue's draw, in the order counted: sealed as its SHA-1, `lineDrawDigest` |
//! | `P:ev:{E}:door` | sorted set | the line's door: fans whose turn came and who called, scored by their places' order keys |
//! | `P:ev:{E}:grants` | sorted set | fans granted a place they have not claimed yet, scored by when the grant lapses |
//!
//! A fan's record is `position:acceptedAtMs` once the entry is durably
//! queued; `position:acceptedAtMs:*` while a line's grant waits for the fan
//! to claim it; `position:acceptedAtMs:token` while one request's SQS send is
//! pending; `position:acceptedAtMs:token:shared` once another request (a
//! retry, a double tap) took the send over. A request whose send surely never
//! reached SQS releases its place only when the record is its own and not
//! shared: a shared record's first send may still land, so only the sweep
//! releases it, after the queue drained and neither PostgreSQL nor the DLQ
//! holds the entry. A grant no request claimed lapses by itself.
//!
//! **The fence, per event.** Redis may go back in time: a failover promotes
//! a replica that missed the last acknowledged writes (replication is
//! asynchronous), a server restarts from an older snapshot. Either way the
//! server is a new process with a new `run_id`, which the library reads
//! once per server process on the server itself ([`scripts`]). Every
//! function that reads or decides checks its event's `fence` against it
//! (`lua/prelude.lua`), on whichever node runs it, so the first request on another server is refused
//! (`state_lost`, 503) before it can admit anyone, and the event stays
//! refused until [`crate::usecases::recovery`] rebuilds it from PostgreSQL
//! and the DLQ and stamps it with the new server's `run_id`. Only the
//! events whose state was lost are refused and rebuilt; the others keep
//! admitting. An event with no key at all is looked up in the directory
//! (`lua/dir.lua`): listed, it was lost with its keys (503); never listed,
//! it is unknown (404). The directory is fenced the same way and rebuilt
//! from PostgreSQL. A publish lists a new id first, and builds the event on
//! this server only if the directory did not know it: an id it knew with no
//! keys is only ever rebuilt by a restore. A restore keeps the line's
//! counts and who was counted, and clears its door and grants: the fans
//! come back and call again.
//!
//! **The line** ([`crate::rules::line`]) costs the gate one sync per
//! execution environment and interval ([`EntryGate::sync_line`]), whatever
//! the environment's traffic, and per admitted fan its calls at the door
//! ([`EntryGate::admit_in_line`]): usually one to join it and one to claim
//! its grant, then `confirm.lua`.
//!
//! The files: [`scripts`] loads the Lua, [`reply`] reads what it answers,
//! [`admission`] decides entries, [`line`] syncs an environment's copy of a
//! line, [`publish`] defines, archives and retires events, [`restore`] rebuilds the
//! state, [`draw`] reads a pre-queue for its draw's reveal, [`connection`]
//! is the lazy connection.

mod admission;
mod connection;
mod draw;
mod line;
mod publish;
mod reply;
mod restore;
mod scripts;
pub use scripts::{admit_function, confirm_function, gate_library};

pub use admission::{Admission, AtTheDoor, DrawSeed, Drawn, EntryLookup, EventView, LineCall, LineState, Reservation};
pub use connection::{GateConnection, LazyRedis, RedisFailure, Server};
pub use draw::Prequeue;
pub use line::{CountedFan, LineCountsRead, LineStatus, LineSync, LineSyncRequest};
pub use publish::{new_line_seed, Archival, Published, SeedWrite};
pub use restore::{RestoreLease, Restored};

use crate::rules::domain::EventId;
use crate::rules::scaling::placement::Shard;
use scripts::{GateFunction, DIRECTORY, LIBRARY};
use std::collections::HashMap;
use std::time::Duration;
use thiserror::Error;

/// Gate failures. Outcomes a fan can be told about (sold out, closed, ...)
/// are not errors: they are [`Admission`] variants.
#[derive(Debug, Error)]
pub enum GateError {
    #[error("redis is unavailable: {0}")]
    Unavailable(redis::RedisError),
    #[error("redis refused a gate command: {0}")]
    Refused(redis::RedisError),
    /// The event's gate state is missing (a flush) or was built on another
    /// server (a failover, a restart from a snapshot): it may have gone back
    /// in time, so the event refuses everything until it is restored from
    /// PostgreSQL. So does any event the directory cannot vouch for.
    #[error("the event's gate state is gone from redis or was built on another server, and must be restored")]
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

/// What a call does on a server that may evict keys without a TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnEviction {
    /// Refused outright: it writes what the gate must not lose.
    Refuse,
    Run,
}

/// Every key the gate holds for one event.
struct EventKeys {
    meta: String,
    fans: String,
    notes: String,
    pending: String,
    counts: String,
    joined: String,
    door: String,
    grants: String,
    /// The environments syncing the line lately (`line.lua`).
    syncing: String,
    /// Who was counted in the pre-queue's draw, in order (`line.lua`).
    draw: String,
    /// The lease of the one restorer rebuilding the event.
    restoring: String,
    /// When a server first noticed the event's state lost (`lost.lua`).
    lost_at: String,
}

impl EventKeys {
    /// The keys a restore clears and rebuilds: all but the line's counts
    /// and who was counted, which the restore keeps.
    fn rebuilt(&self) -> [&str; 6] {
        [&self.meta, &self.fans, &self.notes, &self.pending, &self.door, &self.grants]
    }

    fn all(&self) -> [&str; 12] {
        [
            &self.meta,
            &self.restoring,
            &self.lost_at,
            &self.fans,
            &self.notes,
            &self.pending,
            &self.counts,
            &self.joined,
            &self.door,
            &self.grants,
            &self.syncing,
            &self.draw,
        ]
    }
}

/// The Redis admission gate.
pub struct EntryGate {
    redis: LazyRedis,
    prefix: String,
    /// Event id → the hash tag its keys carry, as the directory listed it.
    tags: std::sync::Mutex<HashMap<String, String>>,
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
            tags: Default::default(),
        })
    }

    /// Builds the gate on a connection configured elsewhere (AUTH token,
    /// TLS roots). Does not connect.
    pub fn on(redis: LazyRedis, prefix: &str) -> Self {
        Self { redis, prefix: prefix.to_owned(), tags: Default::default() }
    }

    /// Opens the Redis connection now; see [`LazyRedis::warm`].
    pub async fn warm(&self, connect_budget: Duration) -> Result<(), GateError> {
        Ok(self.redis.warm(connect_budget).await?)
    }

    /// The server's `maxmemory` in bytes (0: no limit), as its connection
    /// found it.
    pub async fn maxmemory(&self) -> Result<u64, GateError> {
        Ok(self.redis.run(|_, server| async move { Ok(server.maxmemory) }).await?)
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// An event's keys, all under its hash tag `{tag}`: each script
    /// touches one hash slot, so a Redis cluster runs it on the event's
    /// shard.
    fn keys_at(&self, tag: &str) -> EventKeys {
        let meta = format!("{}:ev:{{{}}}", self.prefix, tag);
        EventKeys {
            fans: format!("{meta}:fans"),
            notes: format!("{meta}:notes"),
            pending: format!("{meta}:pending"),
            counts: format!("{meta}:line"),
            joined: format!("{meta}:joined"),
            door: format!("{meta}:door"),
            grants: format!("{meta}:grants"),
            syncing: format!("{meta}:syncing"),
            draw: format!("{meta}:draw"),
            restoring: format!("{meta}:restoring"),
            lost_at: format!("{meta}:lost-at"),
            meta,
        }
    }

    /// An event's keys, under the tag the directory lists it with. An id
    /// the directory does not know gets the keys of its own id: its scripts
    /// answer `absent`, which [`EntryGate::call_event`] resolves.
    async fn keys_of(&self, id: &EventId) -> Result<EventKeys, GateError> {
        Ok(self.keys_at(self.tag_of(id).await?.as_deref().unwrap_or(id.as_str())))
    }

    /// The hash tag an event's keys carry, if the directory lists the
    /// event. A tag never changes, so each is looked up once per
    /// environment.
    pub async fn tag_of(&self, id: &EventId) -> Result<Option<String>, GateError> {
        if let Some(tag) = self.tags.lock().expect("tag cache").get(id.as_str()) {
            return Ok(Some(tag.clone()));
        }
        let r = self.directory_step("tag", &[id.as_str()]).await?;
        match r.tag() {
            "listed" => {
                let tag = r.field(1)?.to_owned();
                self.tags.lock().expect("tag cache").insert(id.as_str().to_owned(), tag.clone());
                Ok(Some(tag))
            }
            "unknown" => Ok(None),
            "state_lost" => Err(GateError::StateLost),
            _ => Err(r.unexpected()),
        }
    }

    /// The shards serving the gate, in slot order (one for a single node).
    pub async fn shards(&self) -> Result<Vec<Shard>, GateError> {
        Ok(self.redis.shards().await?)
    }

    /// Runs one gate function (`FCALL`) with `keys` and `args`; a fenced
    /// one gets its server's `run_id` in front of them from the library
    /// ([`scripts`]). A server without the library is given it and asked
    /// again. A stale connection is replaced and the call retried once
    /// (see [`LazyRedis::run`]); every function is idempotent.
    async fn call<T: redis::FromRedisValue>(
        &self,
        function: &'static GateFunction,
        on_eviction: OnEviction,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<T, GateError> {
        let name = function.called();
        let reply = self
            .redis
            .run(|mut c, server| {
                let mut call = redis::cmd("FCALL");
                call.arg(&name).arg(keys.len()).arg(keys);
                for a in args {
                    call.arg(*a);
                }
                let refuse = (on_eviction == OnEviction::Refuse && server.may_evict_gate_keys())
                    .then(|| server.maxmemory_policy.clone());
                async move {
                    if let Some(policy) = refuse {
                        return Ok(Err(policy));
                    }
                    match call.query_async(&mut c).await {
                        Err(e) if is_function_missing(&e) => {
                            load_library(&mut c).await?;
                            call.query_async(&mut c).await.map(Ok)
                        }
                        other => other.map(Ok),
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

    /// Runs one of `event`'s fenced scripts. An event with no key at all
    /// (the script answers `absent`) is looked up in the directory: one it
    /// never listed answers `not_found`, as the script would; one it did
    /// was lost with all its keys, and is [`GateError::StateLost`].
    async fn call_event<T: redis::FromRedisValue>(
        &self,
        event: &EventId,
        function: &'static GateFunction,
        on_eviction: OnEviction,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<T, GateError> {
        let reply: redis::Value = self.call(function, on_eviction, keys, args).await?;
        let reply = if reply::tagged(&reply, "absent") {
            match self.directory_step("check", &[event.as_str()]).await?.tag() {
                "unknown" => redis::Value::Array(vec![redis::Value::BulkString(b"not_found".to_vec())]),
                "listed" | "state_lost" => return Err(GateError::StateLost),
                _ => return Err(GateError::Protocol("unexpected directory answer".into())),
            }
        } else {
            reply
        };
        T::from_redis_value(reply).map_err(|e| GateError::Protocol(e.to_string()))
    }

    /// A script of `event` whose reply is `[tag, ...]`; `state_lost` is an
    /// error.
    async fn call_tagged(
        &self,
        event: &EventId,
        function: &'static GateFunction,
        on_eviction: OnEviction,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<reply::Reply, GateError> {
        let reply = reply::Reply::of(self.call_event(event, function, on_eviction, keys, args).await?)?;
        match reply.tag() {
            "state_lost" => Err(GateError::StateLost),
            _ => Ok(reply),
        }
    }

    /// One step of `dir.lua` on the directory of events. A new id is
    /// listed only where its publish may follow (no eviction).
    async fn directory_step(&self, step: &str, args: &[&str]) -> Result<reply::Reply, GateError> {
        let dir = self.key("events");
        let on_eviction = if step == "list" { OnEviction::Refuse } else { OnEviction::Run };
        let args: Vec<&str> = std::iter::once(step).chain(args.iter().copied()).collect();
        reply::Reply::of(self.call(&DIRECTORY, on_eviction, &[&dir], &texts(&args)).await?)
    }
}

/// Script arguments from text.
fn texts<'a>(args: &'a [&'a str]) -> Vec<&'a [u8]> {
    args.iter().map(|a| a.as_bytes()).collect()
}

/// The server does not hold the gate's library (a new node, a replica
/// promoted before it was loaded, `FUNCTION FLUSH`).
fn is_function_missing(e: &redis::RedisError) -> bool {
    matches!(e.kind(), redis::ErrorKind::Server(_)) && e.to_string().contains("Function not found")
}

/// Loads the gate's library; one a concurrent caller loaded first is as
/// good.
async fn load_library(c: &mut GateConnection) -> redis::RedisResult<()> {
    match redis::cmd("FUNCTION").arg("LOAD").arg(&LIBRARY.source).query_async::<String>(c).await {
        Err(e) if e.to_string().contains("already exists") => Ok(()),
        other => other.map(|_| ()),
    }
}
