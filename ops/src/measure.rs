//! Measuring a gate's Redis core: what one node admits per second, so a
//! line's `admissionsPerSecond` and the preflight's ceiling come from the
//! node the event will run on, not from someone's laptop.
//!
//! Everything goes through the gate's own code ([`EntryGate`]) on a
//! scratch key prefix, which is removed afterwards: `SET` (the core's own
//! ceiling); the calls a fan admitted through a busy line costs (it joins
//! the door, claims its grant at a later call, and its entry is confirmed),
//! each measured apart and added up; the same for a line that keeps up
//! (one call joins, is granted and claims); the gate's cheaper answers (a
//! sold-out event) and line syncs (`line.lua`): one that carries no place,
//! and one that carries fifty, whose difference is what counting a place
//! costs. Each is driven for a while from many connections with
//! requests in flight, as thousands of Lambda environments would.
//!
//! [`measure_memory`] counts what the gate holds per admitted fan and per
//! note (`MEMORY USAGE` of the event's keys over thousands
//! of them), for the preflight's memory check.
//!
//! On a cluster (cluster mode enabled), [`measure_shards`] measures every
//! shard's primary in turn, the same calls through the gate's cluster
//! client, its scratch events tagged into that shard's slots: each shard
//! has its own core, and an event's ceiling is its shard's.
//!
//! A figure is calls per second of the *server's* CPU time (`INFO CPU`,
//! `used_cpu_user` + `used_cpu_sys`, over the run): what the core admits
//! when it is the limit, whether or not this client kept it busy (on one
//! small machine the client competes with Redis for CPU). How busy the core
//! was is reported next to it. A server that holds a live gate (any key
//! named like one) is refused: the measurement saturates its core.

use chrono::Utc;
use fanrush::adapters::redis_gate::{
    Admission, CountedFan, EntryGate, GateError, LazyRedis, LineCall, LineSyncRequest, Reservation, SeedWrite,
};
use fanrush::rules::domain::{EventId, FanEvent, FanId, LineSettings, MAX_NOTE_CHARS};
use fanrush::rules::scaling::placement::{tag_on, Shard};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MeasureError {
    #[error("the server holds a live gate (key {0:?}); measure a node before the event is defined")]
    LiveGate(String),
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error("redis: {0}")]
    Redis(String),
    #[error("the cluster's primary {0:?} makes no URL from the configuration endpoint's")]
    Node(String),
}

/// How hard and how long to drive each kind of call.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub seconds: Duration,
    pub connections: usize,
    /// Requests in flight on each connection.
    pub in_flight: usize,
}

/// One kind of call: per second of the core's CPU, and how busy the core
/// was while it was driven.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoreFigure {
    pub per_second: f64,
    pub core_busy: f64,
}

/// What one core answers per second of its time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoreFigures {
    pub set: CoreFigure,
    /// Fans admitted through a busy line: a call that joins the door, a
    /// call that claims the grant, `confirm.lua`; measured apart, added up.
    /// The line's ceiling.
    pub admitted_fans: CoreFigure,
    /// Fans admitted through a line that keeps up: one call that joins, is
    /// granted and claims, then `confirm.lua`.
    pub admitted_at_once: CoreFigure,
    /// The calls alone.
    pub joins: CoreFigure,
    pub claims: CoreFigure,
    pub at_once: CoreFigure,
    pub confirms: CoreFigure,
    /// The gate's answers to a sold-out event.
    pub answers: CoreFigure,
    /// `admit.lua` for an event without a line: new fans (each reserves a
    /// place), and fans asking again once their entry is queued.
    pub direct: CoreFigure,
    pub repeats: CoreFigure,
    /// `line.lua` syncs that carry no place (each environment's own, spaced).
    pub syncs: CoreFigure,
    /// Places counted per second inside syncs: from syncs of
    /// [`PLACES_PER_SYNC`] places, less the syncs' own cost.
    pub places: CoreFigure,
}

/// Places one sync counts in [`measure_gate`]'s sync with places.
pub const PLACES_PER_SYNC: usize = 50;

/// What the gate holds in memory per place (`MEMORY USAGE` of the event's
/// keys over its places, each admitted and confirmed, so it counts the
/// record that stays).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryFigures {
    /// Bytes per admitted fan with a 36-character id (a Cognito `sub`) and
    /// no note.
    pub per_fan: f64,
    /// Bytes a note of [`MAX_NOTE_CHARS`] characters adds to its fan.
    pub per_note: f64,
}

/// Fans [`measure_memory`] admits for each figure: enough that the hash
/// tables' doublings average out.
pub const MEMORY_FANS: u64 = 20_000;

/// An event open for the next hour without a line, with room for any
/// measurement: what the measurements admit fans to.
pub fn scratch_event(id: &str) -> FanEvent {
    FanEvent {
        id: EventId::parse(id).expect("a valid id"),
        title: "measure".into(),
        opens_at: Utc::now() - chrono::Duration::minutes(1),
        closes_at: Utc::now() + chrono::Duration::hours(1),
        capacity: 1_000_000_000,
        expected_peak_rps: 0.0,
        lead_minutes: None,
        cooldown_minutes: None,
        line: None,
    }
}

/// One shard of a cluster and what its primary's core answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardFigures {
    pub shard: Shard,
    pub figures: CoreFigures,
}

/// Where a measurement runs: a node, or one shard of a cluster reached
/// through its configuration endpoint.
struct Target<'a> {
    /// What the gate connects to (the node, or the configuration endpoint).
    url: &'a str,
    /// The shard measured; `None` on a node.
    shard: Option<&'a Shard>,
    /// The node whose core is measured (`INFO CPU`, `SET`, `SCAN`).
    node: redis::Client,
}

impl<'a> Target<'a> {
    fn node(url: &'a str) -> Result<Self, MeasureError> {
        Ok(Self { url, shard: None, node: open(url)? })
    }

    fn shard(url: &'a str, shard: &'a Shard) -> Result<Self, MeasureError> {
        Ok(Self { url, shard: Some(shard), node: open(&node_url(url, &shard.primary)?)? })
    }

    /// A gate as the functions build it: the cluster client on a cluster.
    fn gate(&self, prefix: &str) -> Result<EntryGate, MeasureError> {
        let redis =
            LazyRedis::new(self.url, Duration::from_secs(5), Duration::from_secs(5)).map_err(GateError::Refused)?;
        Ok(EntryGate::on(if self.shard.is_some() { redis.in_cluster_mode() } else { redis }, prefix))
    }

    /// The hash tag that puts `id`'s keys on the measured shard.
    fn tag(&self, id: &str) -> String {
        let id = EventId::parse(id).expect("a valid id");
        self.shard.and_then(|s| tag_on(&id, s)).unwrap_or_else(|| id.as_str().to_owned())
    }

    async fn admin(&self) -> Result<redis::aio::MultiplexedConnection, MeasureError> {
        self.node.get_multiplexed_async_connection().await.map_err(|e| MeasureError::Redis(e.to_string()))
    }
}

fn open(url: &str) -> Result<redis::Client, MeasureError> {
    redis::Client::open(url).map_err(|e| MeasureError::Redis(e.to_string()))
}

/// `url` (scheme, credentials, options) pointed at the node `host:port`.
fn node_url(url: &str, node: &str) -> Result<String, MeasureError> {
    let unreachable = || MeasureError::Node(node.to_owned());
    let mut parsed = url::Url::parse(url).map_err(|_| unreachable())?;
    let (host, port) = node.rsplit_once(':').ok_or_else(unreachable)?;
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    parsed.set_host(Some(&host)).map_err(|_| unreachable())?;
    parsed.set_port(Some(port.parse().map_err(|_| unreachable())?)).map_err(|_| unreachable())?;
    Ok(parsed.into())
}

/// The shards of the cluster whose configuration endpoint is `url`, as the
/// gate's cluster client reads them (`CLUSTER SLOTS`), in slot order.
async fn cluster_shards(url: &str) -> Result<Vec<Shard>, MeasureError> {
    let cluster = LazyRedis::new(url, Duration::from_secs(5), Duration::from_secs(5)).map_err(GateError::Refused)?;
    Ok(EntryGate::on(cluster.in_cluster_mode(), "").shards().await?)
}

/// Measures the core behind `url` under `prefix` (which must be unused).
pub async fn measure_gate(url: &str, prefix: &str, load: Load) -> Result<CoreFigures, MeasureError> {
    let target = Target::node(url)?;
    let mut admin = target.admin().await?;
    refuse_live_gate(&mut admin, prefix).await?;
    let figures = run(&target, prefix, load).await;
    let cleaned = clean(&mut admin, prefix).await;
    let figures = figures?;
    cleaned?;
    Ok(figures)
}

/// Measures each shard of the cluster whose configuration endpoint is
/// `url`, one after another (the others idle), under `prefix` (which must
/// be unused on every primary).
pub async fn measure_shards(url: &str, prefix: &str, load: Load) -> Result<Vec<ShardFigures>, MeasureError> {
    let shards = cluster_shards(url).await?;
    let targets: Vec<Target> = shards.iter().map(|s| Target::shard(url, s)).collect::<Result<_, _>>()?;
    let mut admins = Vec::with_capacity(targets.len());
    for t in &targets {
        let mut admin = t.admin().await?;
        refuse_live_gate(&mut admin, prefix).await?;
        admins.push(admin);
    }
    let mut measured = Vec::with_capacity(targets.len());
    let mut failed = None;
    for (i, t) in targets.iter().enumerate() {
        // A directory of scratch events per shard: the same ids on each.
        match run(t, &format!("{prefix}:s{i}"), load).await {
            Ok(figures) => measured.push(ShardFigures { shard: shards[i].clone(), figures }),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    for admin in &mut admins {
        clean(admin, prefix).await?;
    }
    failed.map_or(Ok(measured), Err)
}

async fn run(target: &Target<'_>, prefix: &str, load: Load) -> Result<CoreFigures, MeasureError> {
    let client = &target.node;
    let gates: Vec<Arc<EntryGate>> =
        (0..load.connections.max(1)).map(|_| target.gate(prefix).map(Arc::new)).collect::<Result<_, _>>()?;
    gates[0].mark_state_present().await?;
    let event = |id: &str, capacity: i64, rate: Option<i64>| FanEvent {
        capacity,
        line: rate.map(|admissions_per_second| LineSettings { admissions_per_second, prequeue_minutes: 0 }),
        ..scratch_event(id)
    };
    // A rate far above what a core admits, so the pace never binds; and one
    // so low that every call only joins the door.
    let (fast, busy, full, open) = (
        event("fast", 1_000_000_000, Some(1_000_000)),
        event("busy", 1_000_000_000, Some(1)),
        event("full", 1, None),
        event("open", 1_000_000_000, None),
    );
    for e in [&fast, &busy, &full, &open] {
        gates[0].publish_at(e, &target.tag(e.id.as_str()), SeedWrite::Set("measure")).await?;
    }
    let first = FanId::parse("first").expect("a valid id");
    let _ = gates[0].admit(&full.id, &first, &None, Utc::now(), "t").await?;

    // On the measured node: its own slots on a cluster.
    let set_key = format!("{prefix}:set:{{{}}}", target.tag("set"));
    // SET through long-lived connections, one per gate, as the gate's own.
    let conns: Vec<redis::aio::MultiplexedConnection> = {
        let mut v = Vec::new();
        for _ in 0..load.connections.max(1) {
            v.push(client.get_multiplexed_async_connection().await.map_err(|e| MeasureError::Redis(e.to_string()))?);
        }
        v
    };
    let set = drive(client, &gates, load, |i, n| {
        let mut c = conns[i % conns.len()].clone();
        let key = format!("{set_key}:{}", n % 1024);
        async move { redis::cmd("SET").arg(&key).arg("v").query_async::<()>(&mut c).await.map_err(|e| e.to_string()) }
    })
    .await?;

    // A busy line: fans join the door; at one a second nobody but the
    // first caller is granted.
    let joined: Arc<std::sync::Mutex<Vec<(usize, u64)>>> = Arc::default();
    let reserved: Arc<std::sync::Mutex<Vec<Reservation>>> = Arc::default();
    let joins = drive(client, &gates, load, |i, n| {
        let (gate, id, joined, reserved) = (gates[i].clone(), busy.id.clone(), joined.clone(), reserved.clone());
        async move {
            let fan = FanId::parse(&format!("b{i}-{n}")).expect("a valid id");
            let call = LineCall::Turn { order: n as i64, drawn: None };
            match gate.admit_in_line(&id, &fan, &None, Utc::now(), "t", call).await.map_err(|e| e.to_string())? {
                (Admission::AtTheDoor(_), _) => joined.lock().unwrap().push((i, n)),
                (Admission::Reserved(r), _) => reserved.lock().unwrap().push(r),
                other => return Err(format!("not at the door: {other:?}")),
            }
            Ok(())
        }
    })
    .await?;
    // Then the pace lets them through: each fan's next call claims its grant
    // (the pace granting the door's head on the way).
    gates[0].publish(&FanEvent { line: fast.line, ..busy.clone() }, SeedWrite::Keep).await?;
    let waiting = Arc::new(std::sync::Mutex::new(std::mem::take(&mut *joined.lock().unwrap())));
    waiting.lock().unwrap().reverse();
    let until_done = Load { seconds: Duration::from_secs(3600), ..load };
    let claims = drive(client, &gates, until_done, |i, _| {
        let (gate, id, waiting, reserved) = (gates[i].clone(), busy.id.clone(), waiting.clone(), reserved.clone());
        async move {
            let Some((j, n)) = waiting.lock().unwrap().pop() else { return Err(DONE.into()) };
            let fan = FanId::parse(&format!("b{j}-{n}")).expect("a valid id");
            let call = LineCall::Turn { order: n as i64, drawn: None };
            match gate.admit_in_line(&id, &fan, &None, Utc::now(), &format!("t{n}"), call).await {
                Ok((Admission::Reserved(r), _)) => {
                    reserved.lock().unwrap().push(r);
                    Ok(())
                }
                // Its grant is due at the next call: it goes back in the line.
                Ok((Admission::AtTheDoor(_), _)) => {
                    waiting.lock().unwrap().insert(0, (j, n));
                    Ok(())
                }
                other => Err(format!("not admitted: {other:?}")),
            }
        }
    })
    .await?;
    // A line that keeps up: one call joins, is granted and claims.
    let at_once = drive(client, &gates, load, |i, n| {
        let (gate, id, reserved) = (gates[i].clone(), fast.id.clone(), reserved.clone());
        async move {
            let fan = FanId::parse(&format!("f{i}-{n}")).expect("a valid id");
            let call = LineCall::Turn { order: n as i64, drawn: None };
            match gate.admit_in_line(&id, &fan, &None, Utc::now(), &format!("t{n}"), call).await {
                Ok((Admission::Reserved(r), _)) => {
                    reserved.lock().unwrap().push(r);
                    Ok(())
                }
                other => Err(format!("not admitted at once: {other:?}")),
            }
        }
    })
    .await?;
    let queue = Arc::new(std::sync::Mutex::new(std::mem::take(&mut *reserved.lock().unwrap())));
    let confirms = drive(client, &gates, until_done, |i, _| {
        let (gate, queue) = (gates[i].clone(), queue.clone());
        async move {
            let Some(r) = queue.lock().unwrap().pop() else { return Err(DONE.into()) };
            gate.confirm(&r).await.map(|_| ()).map_err(|e| e.to_string())
        }
    })
    .await?;
    let answers = drive(client, &gates, load, |i, n| {
        let (gate, id) = (gates[i].clone(), full.id.clone());
        async move {
            let fan = FanId::parse(&format!("s{i}-{n}")).expect("a valid id");
            match gate.admit(&id, &fan, &None, Utc::now(), "t").await.map_err(|e| e.to_string())? {
                Admission::SoldOut => Ok(()),
                other => Err(format!("not sold out: {other:?}")),
            }
        }
    })
    .await?;
    // Syncs, each environment its own, reading ten seconds of counts back:
    // with no place, then with fifty over its last ten buckets.
    let sync = |places: usize| {
        let (gates, id) = (&gates, fast.id.clone());
        move |i: usize, n: u64| {
            let (gate, id) = (gates[i].clone(), id.clone());
            async move {
                let bucket = 100 + n % 500;
                let fans = (0..places as u64)
                    .map(|k| {
                        let mut hash = [0u8; 8];
                        hash[..4].copy_from_slice(&(i as u32).to_be_bytes());
                        hash[4..].copy_from_slice(&((n * 64 + k) as u32).to_be_bytes());
                        CountedFan { hash, bucket: Some(bucket - k % 10) }
                    })
                    .collect();
                let request = LineSyncRequest {
                    environment: Some(i as u64),
                    fans,
                    from_bucket: Some(bucket - 100),
                    ..LineSyncRequest::default()
                };
                gate.sync_line(&id, Utc::now(), &request).await.map(|_| ()).map_err(|e| e.to_string())
            }
        }
    };
    // An event without a line: new fans reserve a place (each driver's first
    // fan's entry is queued too); then those first fans ask again.
    let direct = drive(client, &gates, load, |i, n| {
        let (gate, id) = (gates[i].clone(), open.id.clone());
        async move {
            let fan = FanId::parse(&format!("d{i}-{n}")).expect("a valid id");
            match gate.admit(&id, &fan, &None, Utc::now(), "t").await.map_err(|e| e.to_string())? {
                Admission::Reserved(r) if n % 1_000_000_000 == 0 => {
                    gate.confirm(&r).await.map(|_| ()).map_err(|e| e.to_string())
                }
                Admission::Reserved(_) => Ok(()),
                other => Err(format!("not reserved: {other:?}")),
            }
        }
    })
    .await?;
    let repeats = drive(client, &gates, load, |i, n| {
        let (gate, id) = (gates[i].clone(), open.id.clone());
        async move {
            // Each driver's first fan, whose entry is queued.
            let fan = FanId::parse(&format!("d{i}-{}", n - n % 1_000_000_000)).expect("a valid id");
            match gate.admit(&id, &fan, &None, Utc::now(), "t").await.map_err(|e| e.to_string())? {
                Admission::Existing(_) => Ok(()),
                other => Err(format!("not an existing entry: {other:?}")),
            }
        }
    })
    .await?;
    let syncs = drive(client, &gates, load, sync(0)).await?;
    let full_syncs = drive(client, &gates, load, sync(PLACES_PER_SYNC)).await?;
    // A place's cost: a full sync's, less an empty one's, over its places.
    let per_place = (1.0 / full_syncs.per_second - 1.0 / syncs.per_second).max(1e-9) / PLACES_PER_SYNC as f64;
    let places = CoreFigure { per_second: 1.0 / per_place, core_busy: full_syncs.core_busy };
    let sum = |parts: &[CoreFigure]| CoreFigure {
        per_second: 1.0 / parts.iter().map(|f| 1.0 / f.per_second).sum::<f64>(),
        core_busy: parts.iter().map(|f| f.core_busy).fold(1.0, f64::min),
    };
    Ok(CoreFigures {
        set,
        admitted_fans: sum(&[joins, claims, confirms]),
        admitted_at_once: sum(&[at_once, confirms]),
        joins,
        claims,
        at_once,
        confirms,
        answers,
        direct,
        repeats,
        syncs,
        places,
    })
}

/// What the gate holds per admitted fan on the server behind `url`, under
/// `prefix` (which must be unused; removed afterwards): [`MEMORY_FANS`]
/// fans without a note, then as many with notes of [`MAX_NOTE_CHARS`]
/// characters, each admitted and confirmed.
pub async fn measure_memory(url: &str, prefix: &str) -> Result<MemoryFigures, MeasureError> {
    memory_on(&Target::node(url)?, prefix).await
}

/// [`measure_memory`] on the first shard of the cluster whose
/// configuration endpoint is `url`: a fan's bytes are the same on every
/// shard.
pub async fn measure_memory_in_cluster(url: &str, prefix: &str) -> Result<MemoryFigures, MeasureError> {
    let shards = cluster_shards(url).await?;
    let first = shards.first().ok_or_else(|| MeasureError::Redis("CLUSTER SLOTS named no shard".into()))?;
    memory_on(&Target::shard(url, first)?, prefix).await
}

async fn memory_on(target: &Target<'_>, prefix: &str) -> Result<MemoryFigures, MeasureError> {
    let mut admin = target.admin().await?;
    refuse_live_gate(&mut admin, prefix).await?;
    let figures = memory(target, prefix, &mut admin).await;
    let cleaned = clean(&mut admin, prefix).await;
    let figures = figures?;
    cleaned?;
    Ok(figures)
}

async fn memory(
    target: &Target<'_>,
    prefix: &str,
    admin: &mut redis::aio::MultiplexedConnection,
) -> Result<MemoryFigures, MeasureError> {
    // Keys as the gate names them (EntryGate's `P:ev:{E}` and `P:ev:{E}:*`).
    let gate = target.gate(prefix)?;
    gate.mark_state_present().await?;
    let note = "n".repeat(MAX_NOTE_CHARS);
    let mut per_fan = Vec::new();
    for (id, with_note) in [("plain", false), ("noted", true)] {
        let event = scratch_event(id);
        let (_, tag) = gate.publish_at(&event, &target.tag(id), SeedWrite::Set("measure")).await?;
        let note = with_note.then(|| note.clone());
        for n in 0..MEMORY_FANS {
            // A Cognito sub's shape: 36 characters.
            let fan = FanId::parse(&format!("{n:08x}-0000-4000-8000-{n:012x}")).expect("a valid id");
            match gate.admit(&event.id, &fan, &note, Utc::now(), "t").await? {
                Admission::Reserved(r) => {
                    gate.confirm(&r).await?;
                }
                other => return Err(MeasureError::Redis(format!("not reserved: {other:?}"))),
            }
        }
        // Every key of the event, each counted whole (SAMPLES 0).
        let mut bytes = 0;
        for key in event_keys(admin, &format!("{prefix}:ev:{{{tag}}}")).await? {
            bytes += memory_usage(admin, &key).await?;
        }
        per_fan.push(bytes as f64 / MEMORY_FANS as f64);
    }
    Ok(MemoryFigures { per_fan: per_fan[0], per_note: (per_fan[1] - per_fan[0]).max(0.0) })
}

/// One page of `SCAN cursor MATCH pattern COUNT 1000`: the next cursor (0
/// at the end) and the keys it found.
async fn scan_page(
    c: &mut redis::aio::MultiplexedConnection,
    cursor: u64,
    pattern: &str,
) -> Result<(u64, Vec<String>), MeasureError> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .query_async(c)
        .await
        .map_err(|e| MeasureError::Redis(e.to_string()))
}

/// The keys named `meta` or `meta:*`.
async fn event_keys(c: &mut redis::aio::MultiplexedConnection, meta: &str) -> Result<Vec<String>, MeasureError> {
    let mut keys = vec![meta.to_owned()];
    let mut cursor: u64 = 0;
    loop {
        let (next, found) = scan_page(c, cursor, &format!("{meta}:*")).await?;
        keys.extend(found);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

async fn memory_usage(c: &mut redis::aio::MultiplexedConnection, key: &str) -> Result<i64, MeasureError> {
    let bytes: Option<i64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(c)
        .await
        .map_err(|e| MeasureError::Redis(e.to_string()))?;
    Ok(bytes.unwrap_or(0))
}

/// The server's CPU seconds so far.
async fn cpu_seconds(client: &redis::Client) -> Result<f64, MeasureError> {
    let mut c = client.get_multiplexed_async_connection().await.map_err(|e| MeasureError::Redis(e.to_string()))?;
    let info: String =
        redis::cmd("INFO").arg("CPU").query_async(&mut c).await.map_err(|e| MeasureError::Redis(e.to_string()))?;
    let field = |name: &str| {
        info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse::<f64>().ok()).unwrap_or(0.0)
    };
    Ok(field("used_cpu_user") + field("used_cpu_sys"))
}

/// What an operation answers when it has nothing left to do: its driver stops.
const DONE: &str = "done";

/// Runs `op` from `load.connections x load.in_flight` drivers for
/// `load.seconds` (or until every driver is done): calls per second of the
/// server's CPU, or the first failure.
async fn drive<F, Fut>(
    client: &redis::Client,
    gates: &[Arc<EntryGate>],
    load: Load,
    op: F,
) -> Result<CoreFigure, MeasureError>
where
    F: Fn(usize, u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_seconds(client).await?;
    let started = Instant::now();
    let deadline = started + load.seconds;
    let mut drivers = Vec::new();
    let counter = Arc::new(AtomicU64::new(0));
    for i in 0..gates.len() {
        for _ in 0..load.in_flight.max(1) {
            let done = done.clone();
            // Each driver numbers its own calls, apart from the others'.
            let first = counter.fetch_add(1, Ordering::Relaxed) * 1_000_000_000;
            let op = &op;
            drivers.push(async move {
                let mut n = first;
                while Instant::now() < deadline {
                    match op(i, n).await {
                        Ok(()) => {}
                        Err(e) if e == DONE => break,
                        Err(e) => return Err(e),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                Ok::<(), String>(())
            });
        }
    }
    let outcomes = futures::future::join_all(drivers).await;
    let wall = started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(client).await? - cpu_before).max(1e-6);
    if let Some(Err(e)) = outcomes.into_iter().find(Result::is_err) {
        return Err(MeasureError::Redis(e));
    }
    let calls = done.load(Ordering::Relaxed) as f64;
    Ok(CoreFigure { per_second: calls / cpu, core_busy: (cpu / wall).min(1.0) })
}

/// Refuses a server where any key looks like a gate's (`*:events`, `*:ev:*`)
/// outside `prefix`.
async fn refuse_live_gate(c: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Result<(), MeasureError> {
    for pattern in ["*:events", "*:ev:*"] {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys) = scan_page(c, cursor, pattern).await?;
            if let Some(key) = keys.into_iter().find(|k| !k.starts_with(&format!("{prefix}:"))) {
                return Err(MeasureError::LiveGate(key));
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
}

/// Removes every key under `prefix`.
async fn clean(c: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Result<(), MeasureError> {
    let mut cursor: u64 = 0;
    loop {
        let (next, keys) = scan_page(c, cursor, &format!("{prefix}:*")).await?;
        if !keys.is_empty() {
            // One UNLINK per key: a cluster node refuses one over several slots.
            let mut unlink = redis::pipe();
            for key in &keys {
                unlink.cmd("UNLINK").arg(key).ignore();
            }
            unlink.query_async::<()>(c).await.map_err(|e| MeasureError::Redis(e.to_string()))?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
