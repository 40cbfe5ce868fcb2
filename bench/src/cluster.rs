//! `cluster`: admitted fans a second for three events open at once, on one
//! shard and then on three, in the same run on the same machine.
//!
//! One shard is a private `redis-server`; three shards are a private Redis
//! cluster (cluster mode enabled, three primaries, no replicas, so the
//! machine's cores go to the primaries), reached through the gate's own
//! cluster client (`REDIS_CLUSTER`). The three events are placed one per
//! shard (their hash tags' slots). Each figure drives the gate's admission
//! (`admit.lua` for an event without a line, then `confirm.lua`) from many
//! connections at once, new fans spread over the three events, for a few
//! seconds, and counts admissions over wall time.
//!
//! On this machine the three shards share two cores with each other and
//! with the client that drives them, so the ratio is bounded by the
//! machine, not by the cluster: the figure says how much of the one-shard
//! ceiling a three-shard layout keeps or adds here. On ElastiCache each
//! shard's primary has its own cores, so three events on three shards each
//! get the whole of one shard's ceiling (`make bench`'s `line` figures).

use crate::figures::{Figure, Report};
use chrono::Utc;
use fanrush::adapters::redis_gate::{Admission, EntryGate, LazyRedis};
use fanrush::rules::domain::{EventId, FanId};
use fanrush_local::cluster::PrivateRedisCluster;
use fanrush_local::services::PrivateRedis;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PREFIX: &str = "bench-cluster";
/// Connections driving the admissions, as as many Lambda environments.
const CONNECTIONS: usize = 48;

pub async fn cluster(quick: bool, report: &mut Report) {
    let seconds = Duration::from_secs(if quick { 1 } else { 5 });
    let root = std::env::temp_dir().join(format!("fanrush-bench-cluster-{}", std::process::id()));
    let mut one = match PrivateRedis::start(root.join("single")).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("  cluster: could not start redis-server ({e}); skipped");
            return;
        }
    };
    let single = measured(&[&one], || gate(&one.url(), false), &["one-a", "one-b", "one-c"], seconds).await;
    one.kill().await;
    let mut three = match PrivateRedisCluster::start(root.join("cluster"), 3, 0).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("  cluster: could not start a Redis cluster ({e}); skipped");
            return;
        }
    };
    let spread = match (one_per_shard(&three).await, three.shards().await) {
        (Ok(events), Ok(shards)) => {
            let ids: Vec<&str> = events.iter().map(String::as_str).collect();
            let primaries: Vec<&PrivateRedis> = shards.iter().filter_map(|s| three.node(s.primary)).collect();
            measured(&primaries, || gate(&three.url(), true), &ids, seconds).await
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    three.kill().await;
    let _ = std::fs::remove_dir_all(&root);
    let (single, spread) = match (single, spread) {
        (Ok(s), Ok(c)) => (s, c),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("  cluster: {e}; skipped");
            return;
        }
    };
    for (layout, m) in [("one shard", single), ("three shards", spread)] {
        report.add(Figure {
            name: format!("cluster: admitted fans/s, three events on {layout}"),
            value: m.rate,
            unit: "req/s",
            limit: None,
            limit_name: format!(
                "{CONNECTIONS} connections, admit + confirm, wall time; two cores for every server and the client"
            ),
            target: "reported".into(),
            met: None,
        });
        report.add(Figure {
            name: format!("cluster: Redis CPU per admitted fan, three events on {layout}"),
            value: m.cpu_per_fan * 1e6,
            unit: "us",
            limit: None,
            limit_name: "used_cpu_user + used_cpu_sys of the primaries, over the admissions".into(),
            target: "reported".into(),
            met: None,
        });
    }
    report.add(Figure {
        name: "cluster: three shards over one, same machine".into(),
        value: spread.rate / single.rate,
        unit: "x",
        limit: None,
        limit_name:
            "bounded here by two cores shared by three servers and the client; on ElastiCache each shard has its own"
                .into(),
        target: "reported".into(),
        met: None,
    });
}

fn gate(url: &str, cluster: bool) -> EntryGate {
    let redis = LazyRedis::new(url, Duration::from_secs(2), Duration::from_secs(2)).expect("a redis url");
    EntryGate::on(if cluster { redis.in_cluster_mode() } else { redis }, PREFIX)
}

/// Three event ids, each hashing into another shard of `cluster`.
async fn one_per_shard(cluster: &PrivateRedisCluster) -> Result<Vec<String>, String> {
    let shards = cluster.shards().await?;
    let mut placed: Vec<Option<String>> = vec![None; shards.len()];
    for n in 0.. {
        if placed.iter().all(Option::is_some) {
            break;
        }
        let id = format!("spread-{n}");
        let slot = cluster.slot(&format!("{{{id}}}")).await?;
        if let Some(i) = shards.iter().position(|s| s.serves(slot)) {
            placed[i].get_or_insert(id);
        }
    }
    Ok(placed.into_iter().flatten().collect())
}

/// What one layout admitted.
#[derive(Debug, Clone, Copy)]
struct Measured {
    /// Admitted fans a second, wall time.
    rate: f64,
    /// The servers' CPU seconds per admitted fan.
    cpu_per_fan: f64,
}

async fn measured(
    servers: &[&PrivateRedis],
    gate: impl Fn() -> EntryGate,
    events: &[&str],
    seconds: Duration,
) -> Result<Measured, String> {
    let before = cpu_seconds(servers).await?;
    let (fans, rate) = admitted(gate, events, seconds).await?;
    let cpu = cpu_seconds(servers).await? - before;
    Ok(Measured { rate, cpu_per_fan: cpu / fans.max(1) as f64 })
}

/// The servers' CPU time so far (`INFO CPU`), summed.
async fn cpu_seconds(servers: &[&PrivateRedis]) -> Result<f64, String> {
    let mut total = 0.0;
    for server in servers {
        let info = match server.command(&["INFO", "CPU"]).await? {
            redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            redis::Value::VerbatimString { text, .. } => text,
            other => return Err(format!("INFO CPU answered {other:?}")),
        };
        for field in ["used_cpu_user:", "used_cpu_sys:"] {
            total += info
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .ok_or("INFO CPU without used_cpu")?;
        }
    }
    Ok(total)
}

/// Fans admitted, and admissions a second (wall time), of new fans spread
/// over `events`, each admitted and confirmed, from [`CONNECTIONS`] gates
/// built by `gate`.
async fn admitted(gate: impl Fn() -> EntryGate, events: &[&str], seconds: Duration) -> Result<(u64, f64), String> {
    let gates: Vec<Arc<EntryGate>> = (0..CONNECTIONS).map(|_| Arc::new(gate())).collect();
    gates[0].mark_state_present().await.map_err(|e| e.to_string())?;
    let ids: Vec<EventId> = events.iter().map(|e| EventId::parse(e).expect("a valid id")).collect();
    for id in &ids {
        let event = fanrush_ops::measure::scratch_event(id.as_str());
        gates[0]
            .publish(&event, fanrush::adapters::redis_gate::SeedWrite::Set("bench"))
            .await
            .map_err(|e| e.to_string())?;
    }
    // Every connection introduced before the clock starts.
    for g in &gates {
        g.event(&ids[0]).await.map_err(|e| e.to_string())?;
    }
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + seconds;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, g) in gates.into_iter().enumerate() {
        let (ids, done) = (ids.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let event = &ids[(i + n as usize) % ids.len()];
                let fan = FanId::parse(&format!("f{i}-{n}")).expect("a valid id");
                match g.admit(event, &fan, &None, Utc::now(), "t").await.map_err(|e| e.to_string())? {
                    Admission::Reserved(r) => {
                        g.confirm(&r).await.map_err(|e| e.to_string())?;
                    }
                    other => return Err(format!("not reserved: {other:?}")),
                }
                done.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let fans = done.load(Ordering::Relaxed);
    Ok((fans, fans as f64 / started.elapsed().as_secs_f64()))
}
