//! Measuring a gate's Redis core: what one node admits per second, so a
//! line's `admissionsPerSecond` and the preflight's ceiling come from the
//! node the event will run on, not from someone's laptop.
//!
//! Everything goes through the gate's own code ([`EntryGate`]) on a
//! scratch key prefix, which is removed afterwards: `SET` (the core's own
//! ceiling), admitted fans (a lined `admit.lua` with a refresh riding on
//! it, then `confirm.lua`: both scripts an admission costs), the gate's
//! cheaper answers (a sold-out event) and line syncs (`line.lua`). Each is
//! driven for a while from many connections with requests in flight, as
//! thousands of Lambda environments would.
//!
//! A figure is calls per second of the *server's* CPU time (`INFO CPU`,
//! `used_cpu_user` + `used_cpu_sys`, over the run): what the core admits
//! when it is the limit, whether or not this client kept it busy (on one
//! small machine the client competes with Redis for CPU). How busy the core
//! was is reported next to it. A server that holds a live gate (any key
//! named like one) is refused: the measurement saturates its core.

use crate::adapters::redis_gate::{Admission, EntryGate, GateError, IssuedTickets, LineCall, LineRefresh, SeedWrite};
use crate::rules::domain::{EventId, FanEvent, FanId, LineSettings};
use chrono::Utc;
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
    /// New fans admitted: a lined `admit.lua` and a `confirm.lua` each,
    /// measured apart and added up.
    pub admitted_fans: CoreFigure,
    /// The two scripts alone.
    pub admits: CoreFigure,
    pub confirms: CoreFigure,
    /// The gate's answers to a sold-out event.
    pub answers: CoreFigure,
    pub syncs: CoreFigure,
}

/// Measures the core behind `url` under `prefix` (which must be unused).
pub async fn measure_gate(url: &str, prefix: &str, load: Load) -> Result<CoreFigures, MeasureError> {
    let client = redis::Client::open(url).map_err(|e| MeasureError::Redis(e.to_string()))?;
    let mut admin = client.get_multiplexed_async_connection().await.map_err(|e| MeasureError::Redis(e.to_string()))?;
    refuse_live_gate(&mut admin, prefix).await?;
    let figures = run(url, prefix, load).await;
    let cleaned = clean(&mut admin, prefix).await;
    let figures = figures?;
    cleaned?;
    Ok(figures)
}

async fn run(url: &str, prefix: &str, load: Load) -> Result<CoreFigures, MeasureError> {
    let client = redis::Client::open(url).map_err(|e| MeasureError::Redis(e.to_string()))?;
    let gates: Vec<Arc<EntryGate>> = (0..load.connections.max(1))
        .map(|_| EntryGate::new(url, prefix, Duration::from_secs(5), Duration::from_secs(5)).map(Arc::new))
        .collect::<Result<_, _>>()?;
    gates[0].mark_state_present().await?;
    let event = |id: &str, capacity: i64, line: bool| FanEvent {
        id: EventId::parse(id).expect("a valid id"),
        title: "measure".into(),
        opens_at: Utc::now() - chrono::Duration::minutes(1),
        closes_at: Utc::now() + chrono::Duration::hours(1),
        capacity,
        expected_peak_rps: 0.0,
        lead_minutes: None,
        cooldown_minutes: None,
        // A rate far above what a core admits: the pace never binds.
        line: line.then_some(LineSettings { admissions_per_second: 1_000_000, prequeue_minutes: 0 }),
    };
    let (open, full) = (event("open", 1_000_000_000, true), event("full", 1, false));
    gates[0].publish(&open, SeedWrite::Set("measure")).await?;
    gates[0].publish(&full, SeedWrite::Keep).await?;
    let first = FanId::parse("first").expect("a valid id");
    let _ = gates[0].admit(&full.id, &first, &None, Utc::now(), "t").await?;

    let set_key = format!("{prefix}:set");
    // SET through long-lived connections, one per gate, as the gate's own.
    let conns: Vec<redis::aio::MultiplexedConnection> = {
        let mut v = Vec::new();
        for _ in 0..load.connections.max(1) {
            v.push(client.get_multiplexed_async_connection().await.map_err(|e| MeasureError::Redis(e.to_string()))?);
        }
        v
    };
    let set = drive(&client, &gates, load, |i, n| {
        let mut c = conns[i % conns.len()].clone();
        let key = format!("{set_key}:{}", n % 1024);
        async move { redis::cmd("SET").arg(&key).arg("v").query_async::<()>(&mut c).await.map_err(|e| e.to_string()) }
    })
    .await;
    // Admissions, keeping each reservation for the confirms after.
    let reserved: Arc<std::sync::Mutex<Vec<(usize, crate::adapters::redis_gate::Reservation)>>> = Arc::default();
    let admits = drive(&client, &gates, load, |i, n| {
        let (gate, id, reserved) = (gates[i].clone(), open.id.clone(), reserved.clone());
        async move {
            let fan = FanId::parse(&format!("m{i}-{n}")).expect("a valid id");
            // As an environment refreshes at the peak: its tickets of the last
            // second (ten buckets), the last 10 s of counts back.
            let bucket = 100 + n % 500;
            let refresh = LineRefresh {
                issued: IssuedTickets { prequeued: 0, arrivals: (bucket - 9..=bucket).map(|b| (b, 1)).collect() },
                from_bucket: Some(bucket - 100),
            };
            let (admission, _) = gate
                .admit_in_line(
                    &id,
                    &fan,
                    &None,
                    Utc::now(),
                    &format!("t{n}"),
                    LineCall::Turn { order: n as i64 },
                    &refresh,
                )
                .await
                .map_err(|e| e.to_string())?;
            let Admission::Reserved(r) = admission else { return Err(format!("not admitted: {admission:?}")) };
            reserved.lock().unwrap().push((i, r));
            Ok(())
        }
    })
    .await?;
    let queue = Arc::new(std::sync::Mutex::new(std::mem::take(&mut *reserved.lock().unwrap())));
    let confirm_load = Load { seconds: Duration::from_secs(3600), ..load };
    let confirms = drive(&client, &gates, confirm_load, |i, _| {
        let (gate, queue) = (gates[i].clone(), queue.clone());
        async move {
            let Some((_, r)) = queue.lock().unwrap().pop() else { return Err(DONE.into()) };
            gate.confirm(&r).await.map(|_| ()).map_err(|e| e.to_string())
        }
    })
    .await?;
    let per_pair = 1.0 / admits.per_second + 1.0 / confirms.per_second;
    let admitted_fans = CoreFigure { per_second: 1.0 / per_pair, core_busy: admits.core_busy.min(confirms.core_busy) };
    let answers = drive(&client, &gates, load, |i, n| {
        let (gate, id) = (gates[i].clone(), full.id.clone());
        async move {
            let fan = FanId::parse(&format!("s{i}-{n}")).expect("a valid id");
            match gate.admit(&id, &fan, &None, Utc::now(), "t").await.map_err(|e| e.to_string())? {
                Admission::SoldOut => Ok(()),
                other => Err(format!("not sold out: {other:?}")),
            }
        }
    })
    .await;
    let syncs = drive(&client, &gates, load, |i, n| {
        let (gate, id) = (gates[i].clone(), open.id.clone());
        async move {
            // A fallback sync: five seconds of one environment's tickets.
            let bucket = 100 + n % 500;
            let issued = IssuedTickets { prequeued: 0, arrivals: (bucket - 49..=bucket).map(|b| (b, 1)).collect() };
            gate.sync_line(&id, &issued, bucket - 100).await.map(|_| ()).map_err(|e| e.to_string())
        }
    })
    .await;
    Ok(CoreFigures { set: set?, admitted_fans, admits, confirms, answers: answers?, syncs: syncs? })
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

/// Refuses a server where any key looks like a gate's (`*:state`, `*:ev:*`)
/// outside `prefix`.
async fn refuse_live_gate(c: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Result<(), MeasureError> {
    for pattern in ["*:state", "*:ev:*"] {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(c)
                .await
                .map_err(|e| MeasureError::Redis(e.to_string()))?;
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
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(c)
            .await
            .map_err(|e| MeasureError::Redis(e.to_string()))?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(c)
                .await
                .map_err(|e| MeasureError::Redis(e.to_string()))?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
