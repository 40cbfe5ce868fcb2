//! What it would cost to make each admission wait for a replica (`WAIT 1`
//! after the gate's script), the alternative to restoring the gate after a
//! failover that docs/benchmarks.md weighs. A private primary and its replica
//! (redis-server children of the bench); one connection runs, back to back,
//! a script shaped like an admission (HINCRBY, HSET and ZADD on one event's
//! keys), alone and then
//! followed by `WAIT 1 1000` on the same connection (WAIT waits for the
//! writes of the calling connection).
//!
//! Two figures, each a p50 and a p99 in microseconds:
//! - no WAIT, a replica attached (asynchronous replication: the write's cost);
//! - WAIT 1, the replica on loopback: the least WAIT can cost, the replica's
//!   acknowledgement round trip on this machine.
//!
//! In AWS the replica of a Multi-AZ group sits in another Availability
//! Zone, and WAIT adds that round trip on top: AWS places AZs "close enough
//! to use synchronous replication with single-digit millisecond latency"
//! (whitepaper *AWS Fault Isolation Boundaries*, "Availability Zones").
//! No local proxy models that faithfully, so docs/benchmarks.md adds it in words.

use crate::figures::{percentile, Figure, Report};
use fanrush_local::services::PrivateRedis;
use std::time::Instant;

/// An admission's writes, in one script: the counter, the fan's record and
/// its pending entry.
const ADMISSION: &str = "local n = redis.call('HINCRBY', KEYS[1], 'taken', 1)
redis.call('HSET', KEYS[2], ARGV[1], n .. ':0:t')
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return n";

pub async fn replication(quick: bool, report: &mut Report) {
    let n = if quick { 300 } else { 5_000 };
    let root = std::env::temp_dir().join(format!("fanrush-bench-replication-{}", std::process::id()));
    let started = async {
        let primary = PrivateRedis::start(root.join("primary")).await?;
        let replica = PrivateRedis::start(root.join("replica")).await?;
        replica.replicate_from(primary.addr()).await?;
        Ok::<_, String>((primary, replica))
    };
    let (mut primary, mut replica) = match started.await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("  replication: could not start a primary and a replica ({e}); skipped");
            return;
        }
    };
    let measured = async {
        let client = redis::Client::open(primary.url()).map_err(|e| e.to_string())?;
        let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
        let none = admissions(&mut conn, n, false).await?;
        let loopback = admissions(&mut conn, n, true).await?;
        Ok::<_, String>([("no WAIT (asynchronous replica)", none), ("WAIT 1, replica on loopback", loopback)])
    };
    let result = measured.await;
    primary.kill().await;
    replica.kill().await;
    let _ = std::fs::remove_dir_all(&root);
    let cases = match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("  replication: {e}; skipped");
            return;
        }
    };
    let base_p99 = percentile(&mut cases[0].1.clone(), 99.0);
    for (name, mut sample) in cases {
        for p in [50.0, 99.0] {
            report.add(Figure {
                name: format!("replication: admission p{p:.0}, {name}"),
                value: percentile(&mut sample, p),
                unit: "us",
                limit: (p == 99.0).then_some(base_p99),
                limit_name: if p == 99.0 { "the p99 without WAIT".into() } else { String::new() },
                target: "measured; no target (chooses the Redis deployment)".into(),
                met: None,
            });
        }
    }
}

/// `n` admission-shaped scripts on one connection, each followed by
/// `WAIT 1 1000` when `wait`; the latency of each in microseconds. A WAIT
/// that times out (no replica acknowledged) is an error: the figure would
/// be the timeout, not the replica.
async fn admissions(conn: &mut redis::aio::MultiplexedConnection, n: usize, wait: bool) -> Result<Vec<f64>, String> {
    let mut sample = Vec::with_capacity(n);
    let event = format!("bench-replication-{}", if wait { "wait" } else { "none" });
    for i in 0..n {
        let fan = format!("fan-{i}");
        let t = Instant::now();
        let _: i64 = redis::cmd("EVAL")
            .arg(ADMISSION)
            .arg(3)
            .arg(&event)
            .arg(format!("{event}:fans"))
            .arg(format!("{event}:pending"))
            .arg(&fan)
            .query_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        if wait {
            let acked: i64 = redis::cmd("WAIT").arg(1).arg(1000).query_async(conn).await.map_err(|e| e.to_string())?;
            if acked < 1 {
                return Err("WAIT 1 timed out: the replica did not acknowledge within 1 s".into());
            }
        }
        sample.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let _: () = redis::cmd("DEL")
        .arg(&event)
        .arg(format!("{event}:fans"))
        .arg(format!("{event}:pending"))
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(sample)
}
