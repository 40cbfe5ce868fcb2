//! A private Redis cluster (cluster mode enabled, as ElastiCache's is): a
//! `redis-server --cluster-enabled yes` per node on free loopback ports,
//! joined by `redis-cli --cluster create`, each node a child of the test
//! or drill that started it and killed with it. Its shards are what
//! ElastiCache calls node groups: a primary and its replicas, serving a
//! range of the 16,384 hash slots.

use crate::services::{free_port, PrivateRedis};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// One shard: the slots it serves, its primary and its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub slots: Vec<(u16, u16)>,
    pub primary: u16,
    pub replicas: Vec<u16>,
}

impl Shard {
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(from, to)| (from..=to).contains(&slot))
    }
}

/// The cluster's nodes, each a [`PrivateRedis`] started with cluster mode.
pub struct PrivateRedisCluster {
    nodes: Vec<PrivateRedis>,
    /// Ports of the nodes killed by a failover: no longer asked.
    dead: Vec<u16>,
}

impl PrivateRedisCluster {
    /// `primaries` shards with `replicas` replicas each, under `dir`;
    /// returns once every node sees every slot served (`cluster_state:ok`)
    /// and every replica is attached.
    pub async fn start(dir: PathBuf, primaries: usize, replicas: usize) -> Result<Self, String> {
        let mut nodes = Vec::new();
        for i in 0..primaries * (1 + replicas) {
            let port = free_port();
            let node_dir = dir.join(format!("node-{i}"));
            // The bus port is its own free port: the default, the data
            // port plus 10,000, passes 65,535 for an ephemeral port above
            // 55,535, and redis-server then refuses to start.
            let extra = [
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-port".to_owned(),
                free_port().to_string(),
                "--cluster-config-file".to_owned(),
                node_dir.join("nodes.conf").display().to_string(),
                "--cluster-node-timeout".to_owned(),
                "2000".to_owned(),
            ];
            nodes.push(PrivateRedis::start_on(node_dir, port, &extra).await?);
        }
        let addresses: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .await
            .map_err(|e| format!("redis-cli --cluster create: {e}"))?;
        if !created.status.success() {
            return Err(format!("redis-cli --cluster create: {}", String::from_utf8_lossy(&created.stdout)));
        }
        let cluster = Self { nodes, dead: Vec::new() };
        cluster.wait_until_ok().await?;
        // Replicas attach a moment after the slots are served.
        let started = Instant::now();
        loop {
            let shards = cluster.shards().await?;
            if shards.len() == primaries && shards.iter().all(|s| s.replicas.len() == replicas) {
                return Ok(cluster);
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("the replicas did not attach within 30 s: {shards:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every node reports `cluster_state:ok` and the shards'
    /// primaries agree on who serves what.
    async fn wait_until_ok(&self) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let mut ok = true;
            for node in self.live() {
                ok &= text(node.command(&["CLUSTER", "INFO"]).await).contains("cluster_state:ok");
            }
            if ok {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("the cluster did not reach cluster_state:ok within 30 s".into())
    }

    fn live(&self) -> impl Iterator<Item = &PrivateRedis> {
        self.nodes.iter().filter(|n| !self.dead.contains(&n.addr().port()))
    }

    /// A URL for the cluster client to start from (as ElastiCache's
    /// configuration endpoint): the first node's.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The node listening on `port`.
    pub fn node(&self, port: u16) -> Option<&PrivateRedis> {
        self.nodes.iter().find(|n| n.addr().port() == port)
    }

    /// The shards as the first node that answers sees them (`CLUSTER
    /// NODES`).
    pub async fn shards(&self) -> Result<Vec<Shard>, String> {
        let mut last = String::new();
        for node in self.live() {
            match node.command(&["CLUSTER", "NODES"]).await {
                Ok(v) => return Ok(shards_of(&text(Ok(v)))),
                Err(e) => last = e,
            }
        }
        Err(format!("no node answered CLUSTER NODES: {last}"))
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub async fn slot(&self, key: &str) -> Result<u16, String> {
        match self.nodes[0].command(&["CLUSTER", "KEYSLOT", key]).await? {
            redis::Value::Int(slot) => u16::try_from(slot).map_err(|e| e.to_string()),
            other => Err(format!("CLUSTER KEYSLOT answered {other:?}")),
        }
    }

    /// A failover of the shard whose primary listens on `primary`: its
    /// first replica takes over, as ElastiCache's test failover of a node
    /// group does. First a manual failover (`CLUSTER FAILOVER`, which waits
    /// until the replica caught up); one that a busy machine lets lapse
    /// (Redis gives it 5 s) is followed by `CLUSTER FAILOVER TAKEOVER`, a
    /// takeover without the primary's agreement. Returns the new primary's
    /// port.
    pub async fn fail_over(&self, primary: u16) -> Result<u16, String> {
        let shard = self.shards().await?.into_iter().find(|s| s.primary == primary).ok_or("no such primary")?;
        let replica = *shard.replicas.first().ok_or("the shard has no replica")?;
        let node = self.node(replica).ok_or("no such node")?;
        for (how, wait) in [(None, Duration::from_secs(10)), (Some("TAKEOVER"), Duration::from_secs(30))] {
            let mut failover = vec!["CLUSTER", "FAILOVER"];
            failover.extend(how);
            node.command(&failover).await?;
            let started = Instant::now();
            while started.elapsed() < wait {
                // Done once the old primary knows too: until then it would
                // still take writes for the shard's slots.
                let old = self.node(primary).ok_or("no such node")?;
                if text(node.command(&["ROLE"]).await).starts_with("master")
                    && text(old.command(&["ROLE"]).await).starts_with("slave")
                {
                    self.wait_until_ok().await?;
                    return Ok(replica);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Err("the replica did not take over, even with TAKEOVER".into())
    }

    /// The port of the node [`PrivateRedisCluster::url`] names.
    pub fn url_port(&self) -> u16 {
        self.nodes[0].addr().port()
    }

    /// Runs `args` on the primary serving `key`'s slot.
    pub async fn command_for_key(&self, key: &str, args: &[&str]) -> Result<redis::Value, String> {
        let slot = self.slot(key).await?;
        let shards = self.shards().await?;
        let shard = shards.iter().find(|s| s.serves(slot)).ok_or(format!("no shard serves slot {slot}"))?;
        self.node(shard.primary).ok_or("no such node")?.command(args).await
    }

    /// A failover as ElastiCache plays one with asynchronous replication:
    /// the shard's replica stops receiving writes (its link to the primary
    /// is cut: the replica's `masterauth` is made wrong, so the link it
    /// re-opens fails at AUTH) while the primary keeps acknowledging them
    /// for `lag`; then the primary dies, and the replica takes over
    /// (`CLUSTER FAILOVER TAKEOVER`: the primary is gone) without the
    /// writes of those last `lag`. Returns the new primary's port.
    pub async fn fail_over_lagging(&mut self, primary: u16, lag: Duration) -> Result<u16, String> {
        let shard = self.shards().await?.into_iter().find(|s| s.primary == primary).ok_or("no such primary")?;
        let replica = *shard.replicas.first().ok_or("the shard has no replica")?;
        let (old, new) = (self.node(primary).ok_or("no such node")?, self.node(replica).ok_or("no such node")?);
        new.command(&["CONFIG", "SET", "masterauth", "the-link-is-cut"]).await?;
        old.command(&["CLIENT", "KILL", "TYPE", "replica"]).await?;
        let started = Instant::now();
        while !text(new.command(&["INFO", "replication"]).await).contains("master_link_status:down") {
            if started.elapsed() > Duration::from_secs(5) {
                return Err("the replica's link did not go down".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(lag).await;
        let index = self.nodes.iter().position(|n| n.addr().port() == primary).ok_or("no such node")?;
        self.nodes[index].kill().await;
        self.dead.push(primary);
        let new = self.node(replica).ok_or("no such node")?;
        new.command(&["CONFIG", "SET", "masterauth", ""]).await?;
        new.command(&["CLUSTER", "FAILOVER", "TAKEOVER"]).await?;
        let started = Instant::now();
        while !text(new.command(&["ROLE"]).await).starts_with("master") {
            if started.elapsed() > Duration::from_secs(30) {
                return Err("the replica did not take over".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.wait_until_ok().await?;
        Ok(replica)
    }

    /// Moves `slot` with its keys to the shard whose primary listens on
    /// `to`, as an online resharding does (Redis Cluster specification,
    /// "Live resharding"): the target is marked `IMPORTING`, the source
    /// `MIGRATING` (a command on a key already moved is answered `ASK`,
    /// one that spans moved and unmoved keys `TRYAGAIN`), the keys move in
    /// batches with `MIGRATE`, then every node is told the slot's new
    /// owner (`SETSLOT NODE`). Returns how many keys moved.
    pub async fn migrate_slot(&self, slot: u16, to: u16) -> Result<usize, String> {
        let shards = self.shards().await?;
        let from = shards.iter().find(|s| s.serves(slot)).ok_or(format!("no shard serves slot {slot}"))?.primary;
        if from == to {
            return Err(format!("slot {slot} is already served by {to}"));
        }
        let (source, target) = (self.node(from).ok_or("no such node")?, self.node(to).ok_or("no such node")?);
        let source_id = text(source.command(&["CLUSTER", "MYID"]).await);
        let target_id = text(target.command(&["CLUSTER", "MYID"]).await);
        let slot_text = slot.to_string();
        target.command(&["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &source_id]).await?;
        source.command(&["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &target_id]).await?;
        let mut moved = 0;
        loop {
            let keys = match source.command(&["CLUSTER", "GETKEYSINSLOT", &slot_text, "100"]).await? {
                redis::Value::Array(keys) => keys.into_iter().map(|k| text(Ok(k))).collect::<Vec<_>>(),
                other => return Err(format!("GETKEYSINSLOT answered {other:?}")),
            };
            if keys.is_empty() {
                break;
            }
            let port = to.to_string();
            let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            migrate.extend(keys.iter().map(String::as_str));
            source.command(&migrate).await?;
            moved += keys.len();
        }
        for node in [target, source] {
            node.command(&["CLUSTER", "SETSLOT", &slot_text, "NODE", &target_id]).await?;
        }
        for node in self.live() {
            let _ = node.command(&["CLUSTER", "SETSLOT", &slot_text, "NODE", &target_id]).await;
        }
        Ok(moved)
    }

    /// Kills every node.
    pub async fn kill(&mut self) {
        for node in &mut self.nodes {
            node.kill().await;
        }
    }
}

fn text(v: Result<redis::Value, String>) -> String {
    match v {
        Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(redis::Value::SimpleString(s)) => s,
        Ok(redis::Value::VerbatimString { text, .. }) => text,
        Ok(redis::Value::Array(items)) => items.into_iter().map(|i| text(Ok(i))).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// The shards named in a `CLUSTER NODES` reply: one line per node, `id
/// ip:port@bus flags master-id ping pong epoch link slot-ranges...`.
fn shards_of(nodes: &str) -> Vec<Shard> {
    struct Node {
        id: String,
        port: u16,
        primary_of: Option<String>,
        slots: Vec<(u16, u16)>,
    }
    let parsed: Vec<Node> = nodes
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = f.get(1)?.split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let flags = *f.get(2)?;
            if flags.contains("fail") && !flags.contains("fail?") {
                return None;
            }
            let primary_of = flags.contains("slave").then(|| f.get(3).map(|s| s.to_string())).flatten();
            let slots = f
                .iter()
                .skip(8)
                .filter(|r| !r.starts_with('['))
                .filter_map(|r| match r.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => r.parse().ok().map(|s| (s, s)),
                })
                .collect();
            Some(Node { id: f[0].to_owned(), port, primary_of, slots })
        })
        .collect();
    let mut shards: Vec<Shard> = parsed
        .iter()
        .filter(|n| n.primary_of.is_none() && !n.slots.is_empty())
        .map(|p| Shard {
            slots: p.slots.clone(),
            primary: p.port,
            replicas: parsed.iter().filter(|r| r.primary_of.as_deref() == Some(&p.id)).map(|r| r.port).collect(),
        })
        .collect();
    shards.sort_by_key(|s| s.slots.first().copied());
    shards
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_are_read_as_shards_with_their_replicas() {
        let nodes = "a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460\n\
                     b2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922 12000\n\
                     c3 127.0.0.1:7003@17003 slave a1 0 0 1 connected\n\
                     d4 127.0.0.1:7004@17004 slave b2 0 0 2 connected\n\
                     e5 127.0.0.1:7005@17005 master,fail - 0 0 3 disconnected\n";
        let shards = shards_of(nodes);
        assert_eq!(
            shards,
            vec![
                Shard { slots: vec![(0, 5460)], primary: 7001, replicas: vec![7003] },
                Shard { slots: vec![(5461, 10922), (12000, 12000)], primary: 7002, replicas: vec![7004] },
            ]
        );
        assert!(shards[1].serves(12000) && !shards[1].serves(11000));
    }
}
