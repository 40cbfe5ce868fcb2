//! The drill's scenarios: a baseline, each fault alone, the openings at a
//! line, a shard's failover and an opening on a Redis cluster, then
//! everything together; and the faults they play, each as AWS
//! documents the failure (asynchronous replication at a failover, a lost
//! connection, a redelivery). [`resolve`] turns the names asked for into
//! scenarios, once.

use crate::line::Opening;
use crate::spike::Repeat;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `CLIENT KILL TYPE normal` on Redis: every function connection is cut.
    RedisClientsKilled,
    /// Redis saved, stopped and started again with its data.
    RedisRestart,
    /// Redis loses its data (`FLUSHALL`), as a failover without persistence.
    RedisFlush,
    /// Nothing listens where the functions reach SQS, for this long.
    SqsUnreachable(Duration),
    /// SQS gets every request but no answer reaches the function, for this long.
    SqsAnswersLost(Duration),
    /// PostgreSQL fast-shutdown and started again while the writer drains.
    PostgresRestart,
    /// A writer process SIGKILLed in the middle of a batch.
    WriterKilled,
    /// A Multi-AZ failover with asynchronous replication: the replica's link
    /// is cut (it stops receiving writes the primary still acknowledges) for
    /// this long, then the primary is killed, the replica promoted, the
    /// endpoint moved to it and every client connection cut.
    RedisFailover(Duration),
    /// A snapshot is taken, the primary keeps admitting for this long, then
    /// it restarts from that snapshot: everything since is gone.
    RedisStaleSnapshot(Duration),
    /// SQS stores sends but their answers are lost (unknown outcomes), then
    /// refuses every connection (the retries' sends surely fail), each for
    /// this long.
    SqsUnknownThenRefused(Duration),
    /// Each entry environment reaches SQS by a path of its own: for this
    /// long half the paths are slow (300 ms each way: a send still succeeds
    /// inside its 1 s timeout) and the other half refuse. A fan's double tap
    /// is accepted in one environment while its twin's send fails in another.
    SqsSplit(Duration),
    /// An operator deletes the event through admin-api mid-spike, then PUTs
    /// the same id again; the id is retired, so the PUT must answer 409
    /// `event_id_retired` and the entries already taken stay theirs.
    EventDeletedThenRecreated,
    /// PostgreSQL refuses the entries of one fan in ten of the event (a
    /// trigger, standing in for a bad migration) until SQS has moved them to
    /// the DLQ after `maxReceiveCount` receives; the sweep runs meanwhile.
    /// Then the cause is fixed and `fanrush redrive` replays the DLQ.
    PoisonThenRedrive,
    /// The line's ticket key rotates in Secrets Manager: the odd entry
    /// environments' extensions serve the new key at once, the even ones'
    /// serve the old one from their cache for this long (their
    /// `SECRETS_MANAGER_TTL`), and the new one when asked past the cache.
    TicketKeyRotated(Duration),
    /// Every entry environment's secrets extension answers 500 for this
    /// long, as when Secrets Manager cannot be reached.
    SecretsExtensionDown(Duration),
    /// On the cluster: one shard's failover with asynchronous replication,
    /// as [`Fault::RedisFailover`] plays it for one node: its replica's
    /// link is cut for this long, then its primary dies and the replica
    /// takes over. The shard is that of the scenario's second event.
    ClusterFailover(Duration),
    /// On the cluster: the slot of the scenario's first event moves to
    /// another shard mid-spike, as an online resharding moves it
    /// (`CLUSTER SETSLOT`, `MIGRATE`).
    ClusterReshard,
}

/// One drill scenario: a name and its faults, each at a fraction of the
/// spike's arrival window (so they land while fans are being admitted), or
/// for an opening at a line, of the time the line takes to let everyone in.
pub struct Scenario {
    pub name: &'static str,
    pub faults: Vec<(f64, Fault)>,
    /// When fans that send twice send their second request.
    pub repeat: Repeat,
    /// The event is deleted mid-spike: 404 `event_not_found` is then a
    /// right answer, not a defect.
    pub deletes_event: bool,
    /// An opening at a line, its fans following the line's protocol,
    /// instead of the spike.
    pub line: Option<Opening>,
    /// Played on a three-shard Redis cluster (the functions with
    /// `REDIS_CLUSTER=true`) rather than on one node.
    pub cluster: bool,
    /// Events opened at once, each with the traffic; on the cluster each is
    /// placed on its own shard.
    pub events: usize,
}

impl Scenario {
    fn new(name: &'static str, faults: Vec<(f64, Fault)>) -> Self {
        Self { name, faults, repeat: Repeat::Reload, deletes_event: false, line: None, cluster: false, events: 1 }
    }

    fn at_a_line(name: &'static str, opening: Opening, faults: Vec<(f64, Fault)>) -> Self {
        Self { line: Some(opening), ..Self::new(name, faults) }
    }
}

/// Every scenario: a baseline, each fault alone, then all of them together.
pub fn all_scenarios() -> Vec<Scenario> {
    use Fault::*;
    let s3 = Duration::from_secs(3);
    let s2 = Duration::from_secs(2);
    vec![
        Scenario::new("baseline", vec![]),
        Scenario::new(
            "redis-clients-killed",
            vec![(0.1, RedisClientsKilled), (0.2, RedisClientsKilled), (0.3, RedisClientsKilled)],
        ),
        Scenario::new("redis-restart", vec![(0.15, RedisRestart)]),
        Scenario::new("redis-flush", vec![(0.15, RedisFlush)]),
        Scenario::new("sqs-unreachable", vec![(0.1, SqsUnreachable(s3))]),
        Scenario::new("sqs-answers-lost", vec![(0.1, SqsAnswersLost(s2))]),
        Scenario::new("postgres-restart", vec![(0.2, PostgresRestart)]),
        Scenario::new("writer-killed", vec![(0.1, WriterKilled), (0.2, WriterKilled), (0.3, WriterKilled)]),
        Scenario::new("redis-failover", vec![(0.05, RedisFailover(Duration::from_secs(1)))]),
        Scenario::new("redis-stale-snapshot", vec![(0.1, RedisStaleSnapshot(s2))]),
        Scenario::new("sqs-unknown-then-refused", vec![(0.1, SqsUnknownThenRefused(s2))]),
        Scenario { repeat: Repeat::DoubleTap, ..Scenario::new("double-submit", vec![(0.05, SqsSplit(s3))]) },
        Scenario { deletes_event: true, ..Scenario::new("event-recreated", vec![(0.15, EventDeletedThenRecreated)]) },
        Scenario::new("dead-letter", vec![(0.0, PoisonThenRedrive)]),
        Scenario::at_a_line("opening-line", Opening::DRILL, vec![]),
        Scenario::at_a_line(
            "opening-line-failover",
            Opening::DRILL,
            vec![(0.3, RedisFailover(Duration::from_secs(1)))],
        ),
        Scenario::at_a_line("opening-line-hostile", Opening::HOSTILE, vec![]),
        Scenario::at_a_line(
            "hostile-clients",
            Opening::HOSTILE_CLIENTS,
            // The outage comes once every extension has served the new key
            // (2 s behind, then each environment's 2 s keys): a ticket of a
            // key an environment cannot read is rightly undecided (503),
            // which the rotation alone plays.
            vec![(0.1, TicketKeyRotated(s2)), (0.5, SecretsExtensionDown(Duration::from_secs(10)))],
        ),
        Scenario {
            cluster: true,
            events: 3,
            ..Scenario::new("cluster-failover", vec![(0.05, ClusterFailover(Duration::from_secs(1)))])
        },
        Scenario { cluster: true, ..Scenario::new("cluster-reshard", vec![(0.2, ClusterReshard)]) },
        Scenario { cluster: true, ..Scenario::at_a_line("cluster-opening-line", Opening::DRILL, vec![]) },
        Scenario::new(
            "all-together",
            vec![
                (0.05, RedisClientsKilled),
                (0.08, SqsUnreachable(s2)),
                (0.12, WriterKilled),
                (0.15, PostgresRestart),
                (0.2, RedisRestart),
                (0.25, SqsAnswersLost(s2)),
                (0.3, RedisFlush),
            ],
        ),
    ]
}

/// The scenarios named (`all`: every one, in order).
pub fn resolve(names: &[String]) -> Result<Vec<Scenario>, String> {
    let every = all_scenarios();
    if names.iter().any(|s| s == "all") {
        return Ok(every);
    }
    let known: Vec<&str> = every.iter().map(|s| s.name).collect();
    if let Some(bad) = names.iter().find(|s| !known.contains(&s.as_str())) {
        return Err(format!("unknown scenario {bad:?}; known: {}", known.join(", ")));
    }
    Ok(every.into_iter().filter(|s| names.iter().any(|n| n == s.name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_scenarios_in_their_order_and_an_unknown_one_is_named() {
        let all = resolve(&["all".into()]).unwrap();
        assert!(all.iter().any(|s| s.name == "opening-line" && s.line.is_some()));
        assert!(all.iter().any(|s| s.name == "opening-line-hostile" && s.line.is_some_and(|o| o.hostile.is_some())));
        let clients = all.iter().find(|s| s.name == "hostile-clients").unwrap();
        assert!(clients.line.is_some_and(|o| o.hostile.is_some_and(|h| h.getters > 0)));
        assert!(clients.faults.iter().any(|(_, f)| matches!(f, Fault::TicketKeyRotated(_))));
        let cluster: Vec<&str> = all.iter().filter(|s| s.cluster).map(|s| s.name).collect();
        assert_eq!(cluster, ["cluster-failover", "cluster-reshard", "cluster-opening-line"]);
        assert_eq!(all.iter().find(|s| s.name == "cluster-failover").unwrap().events, 3);
        let two = resolve(&["redis-flush".into(), "baseline".into()]).unwrap();
        assert_eq!(two.iter().map(|s| s.name).collect::<Vec<_>>(), ["baseline", "redis-flush"]);
        let err = resolve(&["nope".into()]).err().unwrap();
        assert!(err.contains("\"nope\"") && err.contains("opening-line-failover"), "{err}");
    }
}
