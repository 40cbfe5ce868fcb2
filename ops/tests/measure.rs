//! `measure_gate` on real Redis servers of its own (private redis-server
//! processes): it refuses a node that holds a live gate, measures one that
//! does not, and leaves that node as it found it; `measure_shards` measures
//! each primary of a private three-shard cluster the same way.

use chrono::Utc;
use fanrush::adapters::redis_gate::{EntryGate, SeedWrite};
use fanrush::rules::domain::{EventId, FanEvent};
use fanrush_local::cluster::PrivateRedisCluster;
use fanrush_local::services::PrivateRedis;
use fanrush_ops::measure::{measure_gate, measure_shards, Load, MeasureError};
use std::time::Duration;

async fn private_redis(name: &str) -> PrivateRedis {
    let dir = std::env::temp_dir().join(format!("fanrush-ops-{name}-{}", std::process::id()));
    PrivateRedis::start(dir).await.expect("redis-server starts")
}

#[tokio::test]
async fn measure_gate_refuses_a_live_gate_and_leaves_nothing_behind() {
    let load = Load { seconds: Duration::from_millis(300), connections: 4, in_flight: 1 };

    // A node that holds a gate, as entry-api builds it.
    let live = private_redis("live").await;
    let gate = EntryGate::new(&live.url(), "fanrush", Duration::from_secs(1), Duration::from_secs(1)).unwrap();
    gate.mark_state_present().await.unwrap();
    let event = FanEvent {
        id: EventId::parse("live-event").unwrap(),
        title: "live".into(),
        opens_at: Utc::now(),
        closes_at: Utc::now() + chrono::Duration::hours(1),
        capacity: 10,
        expected_peak_rps: 0.0,
        lead_minutes: None,
        cooldown_minutes: None,
        line: None,
    };
    gate.publish(&event, SeedWrite::Set("seed")).await.unwrap();
    let refused = measure_gate(&live.url(), "measure-scratch", load).await;
    assert!(matches!(refused, Err(MeasureError::LiveGate(_))), "{refused:?}");

    // A node with no gate: measured, then left as it was.
    let redis = private_redis("spare").await;
    redis.command(&["SET", "someone-else", "kept"]).await.unwrap();
    let f = measure_gate(&redis.url(), "measure-scratch", load).await.expect("measured");
    for (name, c) in [
        ("set", f.set),
        ("admitted", f.admitted_fans),
        ("at once", f.admitted_at_once),
        ("answers", f.answers),
        ("syncs", f.syncs),
    ] {
        assert!(c.per_second > 0.0 && c.core_busy > 0.0, "{name}: {c:?}");
    }
    assert!(f.admitted_fans.per_second < f.admitted_at_once.per_second, "three calls cost more than two: {f:?}");
    assert!(f.admitted_at_once.per_second < f.set.per_second, "two scripts cost more than a SET: {f:?}");
    assert_eq!(redis.command(&["DBSIZE"]).await.unwrap(), redis::Value::Int(1), "only the key that was there");
}

#[tokio::test]
async fn measure_shards_measures_each_primary_of_a_cluster_and_leaves_nothing_behind() {
    let load = Load { seconds: Duration::from_millis(300), connections: 4, in_flight: 1 };
    let root = std::env::temp_dir().join(format!("fanrush-ops-cluster-{}", std::process::id()));
    let mut cluster = PrivateRedisCluster::start(root.clone(), 3, 0).await.expect("a cluster starts");
    cluster.command_for_key("someone-else", &["SET", "someone-else", "kept"]).await.unwrap();
    let shards = cluster.shards().await.unwrap();

    let measured = measure_shards(&cluster.url(), "measure-scratch", load).await.expect("measured");
    assert_eq!(measured.len(), shards.len(), "{measured:?}");
    for (m, shard) in measured.iter().zip(&shards) {
        assert!(m.shard.primary.ends_with(&format!(":{}", shard.primary)), "in slot order: {m:?} {shard:?}");
        let f = m.figures;
        assert!(f.admitted_fans.per_second > 0.0 && f.admitted_fans.core_busy > 0.0, "{m:?}");
        // Each figure is calls over this primary's own CPU: calls that ran
        // on another shard would leave it idle and the figure far above SET.
        assert!(f.admitted_at_once.per_second < f.set.per_second, "the scripts ran on the shard measured: {m:?}");
    }
    let mut keys = 0;
    for shard in &shards {
        match cluster.node(shard.primary).unwrap().command(&["DBSIZE"]).await.unwrap() {
            redis::Value::Int(n) => keys += n,
            other => panic!("DBSIZE answered {other:?}"),
        }
    }
    assert_eq!(keys, 1, "only the key that was there");
    cluster.kill().await;
    let _ = std::fs::remove_dir_all(&root);
}
