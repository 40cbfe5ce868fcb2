//! The gate on a real Redis cluster (cluster mode enabled, three shards of a
//! primary and a replica), through redis-rs's cluster client as the
//! functions reach ElastiCache's configuration endpoint: each event runs on
//! its own slot, and a shard's failover fences only that shard's events.

use crate::common::*;
use crate::gate::admissions::{
    a_burst_admits_exactly_capacity, a_repeat_entry_keeps_its_position, an_entry_reads_back_with_its_note,
    an_event_reads_back, window_and_existence_are_enforced,
};
use crate::gate::failing_dependencies::{
    addr, an_unknown_sqs_outcome_keeps_the_position, sqs_unreachable_releases_the_slot, the_sweep_confirms_and_releases,
};
use crate::gate::line::{admitted_at_the_lines_pace_in_the_order_of_places, second};
use chrono::Utc;
use fanrush::usecases::clock::ManualClock;
use fanrush::usecases::recovery::Patience;
use fanrush_local::cluster::{PrivateRedisCluster, Shard};
use fanrush_local::FaultProxy;
use std::sync::Arc;
use std::time::Duration;

const NOW: Patience = Patience { restore_settle: Duration::ZERO, sweep_after: Duration::ZERO };

/// A private three-shard cluster of a test's own, in a directory removed
/// with it.
struct Scratch {
    cluster: PrivateRedisCluster,
    root: std::path::PathBuf,
}

impl Scratch {
    async fn start(name: &str, replicas: usize) -> Self {
        let root = std::env::temp_dir().join(unique(name));
        let cluster = PrivateRedisCluster::start(root.clone(), 3, replicas).await.unwrap();
        Self { cluster, root }
    }

    async fn stop(mut self) {
        self.cluster.kill().await;
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Defines three events at the same time through the admin API and reads
/// where each was placed: placement spreads them, one per shard. The events
/// in the order of their shards, with their hash tags.
async fn one_event_per_shard(cluster: &PrivateRedisCluster, stack: &Stack, shards: &[Shard]) -> Vec<(String, String)> {
    let mut placed: Vec<Option<(String, String)>> = vec![None; shards.len()];
    for peak in [9_000, 8_000, 7_000] {
        let id = unique("ev").replace('_', "-");
        let body = serde_json::json!({ "title": "Cluster drop",
            "opensAt": (Utc::now() - chrono::Duration::minutes(1)).to_rfc3339(),
            "closesAt": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339(), "capacity": 5, "expectedPeakRps": peak });
        let r = stack.admin.handle(request("PUT", &format!("/admin/events/{id}"), &[], Some(&body.to_string()))).await;
        assert_eq!(r.status(), 201, "create event: {}", body_json(&r));
        let gate = placement(stack, &id).await;
        let primary = gate["shard"].as_str().expect("a shard serves the slot").to_owned();
        let i = shards.iter().position(|s| primary.ends_with(&format!(":{}", s.primary))).expect("a known primary");
        let tag = gate["hashTag"].as_str().unwrap();
        let slot = cluster.slot(&format!("{{{tag}}}")).await.unwrap();
        assert_eq!(gate["slot"], slot, "the server's own CLUSTER KEYSLOT");
        assert!(shards[i].serves(slot), "{gate}");
        assert!(placed[i].is_none(), "two events at the same time on one shard: {gate}");
        placed[i] = Some((id, gate["hashTag"].as_str().unwrap().to_owned()));
    }
    placed.into_iter().flatten().collect()
}

/// The admin GET's `gate`: the event's hash tag, slot and shard.
async fn placement(stack: &Stack, id: &str) -> serde_json::Value {
    let r = stack.admin.handle(request("GET", &format!("/admin/events/{id}"), &[], None)).await;
    assert_eq!(r.status(), 200);
    body_json(&r)["gate"].clone()
}

#[tokio::test]
async fn on_a_three_shard_cluster_a_failover_fences_only_the_events_of_its_shard() {
    let scratch = Scratch::start("cluster", 1).await;
    let shards = scratch.cluster.shards().await.unwrap();
    assert_eq!(shards.len(), 3, "{shards:?}");
    let stack = Stack::on_cluster(&scratch.cluster.url()).await;
    stack.gate.mark_state_present().await.unwrap();
    let placed = one_event_per_shard(&scratch.cluster, &stack, &shards).await;
    let events: Vec<String> = placed.iter().map(|(id, _)| id.clone()).collect();
    for event in &events {
        for fan in ["a", "b"] {
            assert_eq!(stack.enter(event, fan).await.status(), 202, "{fan} in {event}");
        }
    }

    // The second shard fails over: its replica, another server process,
    // takes over with the data intact. The client follows the slots; that
    // shard's event is refused until it is restored, and the events on the
    // other shards admit throughout.
    scratch.cluster.fail_over(shards[1].primary).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_error(&stack.enter(&events[1], "c").await, 503, "unavailable");
    assert_error(
        &stack.fan.handle(request("GET", &format!("/events/{}", events[1]), &[], None)).await,
        503,
        "unavailable",
    );
    for event in [&events[0], &events[2]] {
        assert_eq!(stack.enter(event, "c").await.status(), 202, "a shard that did not fail over admits");
    }

    stack.drain().await;
    let report = stack.housekeeping(Utc::now(), NOW).await;
    assert_eq!(report.restored, Some((1, 2)), "only the failed shard's event is rebuilt: {report:?}");
    assert_eq!(body_json(&stack.enter(&events[1], "b").await)["position"], 2, "a fan told 202 keeps its place");
    assert_eq!(body_json(&stack.enter(&events[1], "c").await)["position"], 3);
    assert_eq!(placement(&stack, &events[1]).await["hashTag"], placed[1].1.as_str(), "a restore keeps the tag");
    stack.drain().await;
    for event in &events {
        let positions: Vec<i64> = stack.rows(event).await.iter().map(|r| r.1).collect();
        assert_eq!(positions, vec![1, 2, 3], "{event}");
    }
    scratch.stop().await;
}

#[tokio::test]
async fn on_a_three_shard_cluster_a_line_admits_at_its_pace_in_the_order_of_places() {
    let scratch = Scratch::start("cluster-line", 0).await;
    let t0 = second(Utc::now());
    let clock = Arc::new(ManualClock::at(t0));
    let stack = Stack::on_cluster_with_clock(&scratch.cluster.url(), clock.clone()).await;
    stack.gate.mark_state_present().await.unwrap();
    admitted_at_the_lines_pace_in_the_order_of_places(&stack, &clock, t0).await;
    scratch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_three_shard_cluster_a_burst_admits_exactly_capacity_and_every_acceptance_lands_once() {
    let scratch = Scratch::start("cluster-burst", 0).await;
    let stack = Stack::on_cluster(&scratch.cluster.url()).await;
    stack.gate.mark_state_present().await.unwrap();
    a_burst_admits_exactly_capacity(&stack).await;
    scratch.stop().await;
}

/// What a fan was told is kept on the cluster as on one node: a send that
/// never reached SQS gives its place back, one whose answer was lost keeps
/// the position for the retry, and the sweep confirms the one that landed
/// and frees the ghost's place.
#[tokio::test]
async fn on_a_three_shard_cluster_an_sqs_failure_keeps_what_each_fan_was_told() {
    let scratch = Scratch::start("cluster-sqs", 0).await;
    let proxy = FaultProxy::start(addr(&sqs_endpoint())).await.unwrap();
    let stack =
        Stack::on_cluster_via(&scratch.cluster.url(), &format!("http://{}", proxy.addr()), Duration::from_millis(300))
            .await;
    stack.gate.mark_state_present().await.unwrap();
    sqs_unreachable_releases_the_slot(&stack, &proxy).await;
    an_unknown_sqs_outcome_keeps_the_position(&stack, &proxy).await;
    the_sweep_confirms_and_releases(&stack, &proxy).await;
    scratch.stop().await;
}

/// The fan path's everyday answers on the cluster as on one node: a repeat
/// keeps its position, the window is enforced and an unknown id is 404 (the
/// directory, on its own slot, tells it from a lost event), and an event
/// and an entry read back.
#[tokio::test]
async fn on_a_three_shard_cluster_the_fan_paths_answers_are_those_of_one_node() {
    let scratch = Scratch::start("cluster-answers", 0).await;
    let stack = Stack::on_cluster(&scratch.cluster.url()).await;
    stack.gate.mark_state_present().await.unwrap();
    a_repeat_entry_keeps_its_position(&stack).await;
    window_and_existence_are_enforced(&stack).await;
    an_event_reads_back(&stack).await;
    an_entry_reads_back_with_its_note(&stack).await;
    scratch.stop().await;
}
