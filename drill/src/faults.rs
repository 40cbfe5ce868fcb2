//! The faults and the scenarios that combine them. Every fault is injected
//! from outside the code under test: through the drill's fault proxies
//! (between the functions and Redis, SQS and PostgreSQL), by commands to the
//! drill's private Redis, by restarting its private PostgreSQL, or by
//! killing a writer process.

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
}

/// One drill scenario: a name and its faults, each at a fraction of the
/// spike's arrival window (so they land while fans are being admitted).
pub struct Scenario {
    pub name: &'static str,
    pub faults: Vec<(f64, Fault)>,
}

/// Every scenario: a baseline, each fault alone, then all of them together.
pub fn all_scenarios() -> Vec<Scenario> {
    use Fault::*;
    let s3 = Duration::from_secs(3);
    let s2 = Duration::from_secs(2);
    vec![
        Scenario { name: "baseline", faults: vec![] },
        Scenario {
            name: "redis-clients-killed",
            faults: vec![(0.1, RedisClientsKilled), (0.2, RedisClientsKilled), (0.3, RedisClientsKilled)],
        },
        Scenario { name: "redis-restart", faults: vec![(0.15, RedisRestart)] },
        Scenario { name: "redis-flush", faults: vec![(0.15, RedisFlush)] },
        Scenario { name: "sqs-unreachable", faults: vec![(0.1, SqsUnreachable(s3))] },
        Scenario { name: "sqs-answers-lost", faults: vec![(0.1, SqsAnswersLost(s2))] },
        Scenario { name: "postgres-restart", faults: vec![(0.2, PostgresRestart)] },
        Scenario { name: "writer-killed", faults: vec![(0.1, WriterKilled), (0.2, WriterKilled), (0.3, WriterKilled)] },
        Scenario { name: "redis-failover", faults: vec![(0.05, RedisFailover(Duration::from_secs(1)))] },
        Scenario { name: "redis-stale-snapshot", faults: vec![(0.1, RedisStaleSnapshot(s2))] },
        Scenario { name: "sqs-unknown-then-refused", faults: vec![(0.1, SqsUnknownThenRefused(s2))] },
        Scenario {
            name: "all-together",
            faults: vec![
                (0.05, RedisClientsKilled),
                (0.08, SqsUnreachable(s2)),
                (0.12, WriterKilled),
                (0.15, PostgresRestart),
                (0.2, RedisRestart),
                (0.25, SqsAnswersLost(s2)),
                (0.3, RedisFlush),
            ],
        },
    ]
}
