//! A lazy, self-healing Redis connection.
//!
//! This is the fix for the incident in the Weverse talk at AWS Industry Week 2023 (docs/decisions): a client connected in
//! Lambda init and kept for the life of the environment hit connect timeouts
//! in provisioned environments. Here nothing touches the network until the
//! first command; every connect and every command has a short timeout; a
//! connection found broken is dropped and, if it was an old one, replaced once
//! and the command retried, so an idle environment whose connection was
//! killed serves its next request without failing it.
//!
//! In-transit encryption and AUTH (ElastiCache): a `rediss://` URL connects
//! over TLS, verified against the system roots or a PEM bundle of its own
//! ([`LazyRedis::with_root_certificates`]); the AUTH token comes from a
//! [`SecretSource`], read at every new connection (so a reconnect after a
//! rotation picks up the new token), never from the URL in production and
//! never logged.
//!
//! A connection is opened (TCP, TLS) and then introduced: `AUTH` (when there
//! is a password), `SELECT` and `INFO` in one pipelined round trip, before
//! any command. `INFO` gives the server's `run_id` (which server this
//! connection reached; the gate's fence reads it on the server itself) and
//! its `maxmemory-policy` (read from `INFO`, because ElastiCache refuses
//! `CONFIG GET`). A `READONLY`
//! answer means the endpoint now names a demoted primary: the connection is
//! replaced, as after a failover.
//!
//! [`LazyRedis::warm`] opens the connection ahead of the first command, for
//! an environment Lambda initializes before traffic (provisioned
//! concurrency). It awaits the connect to its end: the Weverse talk's incident
//! was a connect still in flight when Lambda froze the environment after
//! init, which timed out on thaw. A warmed connection is then an old one like
//! any other, replaced once if it went stale. When the AUTH token comes from
//! the Parameters and Secrets extension, which may not be called during init
//! (Systems Manager User Guide, "Using Parameter Store parameters in AWS
//! Lambda functions": the extension can only be called during the INVOKE
//! phase), the warm stops after TLS and the first request introduces the
//! connection: the same one round trip an unwarmed connection spends on
//! `INFO`.

use crate::adapters::secrets::Secret;
use crate::adapters::secrets::{SecretError, SecretSource};
use crate::rules::scaling::placement::Shard;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisConnectionInfo, RedisError,
    RedisFuture, Value,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};

/// A Redis client that connects on first use.
pub struct LazyRedis {
    /// Where to connect, with the URL's credentials and database moved to
    /// `credentials`: they are sent when the connection is introduced.
    info: ConnectionInfo,
    credentials: UrlCredentials,
    auth: SecretSource,
    root_certificates: Option<Vec<u8>>,
    client: OnceCell<Client>,
    config: AsyncConnectionConfig,
    /// The URL names a cluster's configuration endpoint (`REDIS_CLUSTER`):
    /// commands go to the node serving their slot.
    cluster: bool,
    connect_timeout: Duration,
    response_timeout: Duration,
    connection: Mutex<Option<Open>>,
}

/// A connection to one node, or to a cluster through redis-rs's cluster
/// client, which follows `MOVED` and `ASK`, retries `TRYAGAIN` and reads
/// the slots again after a failover.
#[derive(Clone)]
pub enum GateConnection {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for GateConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// What the URL said about who to be and which database to use.
struct UrlCredentials {
    username: Option<String>,
    password: Option<Secret>,
    db: i64,
}

/// An open connection; `server` is `None` until it is introduced.
struct Open {
    connection: GateConnection,
    server: Option<Arc<Server>>,
}

/// What a connection learned about its server when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Unique to one server process: a promoted replica or a restarted
    /// server has a new one.
    pub run_id: String,
    /// `maxmemory_policy` as the server reports it.
    pub maxmemory_policy: String,
    /// `maxmemory` in bytes (0: no limit): on ElastiCache the node type's
    /// memory less `reserved-memory-percent`.
    pub maxmemory: u64,
}

impl Server {
    /// Parses the `INFO` reply (`key:value` lines).
    pub fn from_info(info: &str) -> Option<Self> {
        let field = |name: &str| {
            info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(|v| v.trim().to_owned())
        };
        Some(Self {
            run_id: field("run_id").filter(|r| !r.is_empty())?,
            maxmemory_policy: field("maxmemory_policy")?,
            maxmemory: field("maxmemory").and_then(|m| m.parse().ok()).unwrap_or(0),
        })
    }

    /// True when the server may evict keys that have no TTL, such as the
    /// gate's counters and fan records: every `allkeys-*` policy. `volatile-*`
    /// policies evict only keys with a TTL, and `noeviction` refuses writes
    /// instead.
    pub fn may_evict_gate_keys(&self) -> bool {
        self.maxmemory_policy.starts_with("allkeys")
    }
}

/// How a Redis operation failed, from the caller's point of view.
#[derive(Debug)]
pub enum RedisFailure {
    /// Could not connect, or the connection broke or timed out.
    Unreachable(RedisError),
    /// Redis answered with an error (a bug, not an outage).
    Refused(RedisError),
    /// The AUTH token could not be read.
    Secret(SecretError),
}

impl RedisFailure {
    /// A broken, timed-out or demoted connection is `Unreachable` (drop it,
    /// connect again); any other error is Redis refusing the command.
    fn of(e: RedisError) -> Self {
        if is_connection_failure(&e) {
            Self::Unreachable(e)
        } else {
            Self::Refused(e)
        }
    }
}

impl LazyRedis {
    /// Parses the URL; does not connect.
    pub fn new(url: &str, connect_timeout: Duration, response_timeout: Duration) -> Result<Self, RedisError> {
        let info = url.into_connection_info()?;
        let settings = info.redis_settings();
        let credentials = UrlCredentials {
            username: settings.username().map(str::to_owned),
            password: settings.password().map(Secret::new),
            db: settings.db(),
        };
        // No AUTH, SELECT or CLIENT SETINFO while connecting: the
        // introduction sends what is needed, after the secret is read.
        let info = info.set_redis_settings(RedisConnectionInfo::default().set_skip_set_lib_name());
        Ok(Self {
            info,
            credentials,
            auth: SecretSource::None,
            root_certificates: None,
            client: OnceCell::new(),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(Some(response_timeout)),
            cluster: false,
            connect_timeout,
            response_timeout,
            connection: Mutex::new(None),
        })
    }

    /// The URL is a cluster's configuration endpoint (ElastiCache with
    /// cluster mode enabled): connect through the cluster client.
    pub fn in_cluster_mode(mut self) -> Self {
        self.cluster = true;
        self
    }

    /// The AUTH token, read at each new connection (it replaces any
    /// password in the URL).
    pub fn with_auth(mut self, auth: SecretSource) -> Self {
        self.auth = auth;
        self
    }

    /// PEM root certificates to verify a `rediss://` server against, instead
    /// of the system's.
    pub fn with_root_certificates(mut self, pem: Vec<u8>) -> Self {
        self.root_certificates = Some(pem);
        self
    }

    /// The client (address and TLS settings; no credentials), built on first use.
    async fn client(&self) -> Result<&Client, RedisFailure> {
        self.client
            .get_or_try_init(|| async {
                let info = self.info.clone();
                let client = match &self.root_certificates {
                    Some(pem) => Client::build_with_tls(
                        info,
                        redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
                    ),
                    None => Client::open(info),
                };
                client.map_err(RedisFailure::Refused)
            })
            .await
    }

    /// Runs `op` on a live connection, with what the connection learned
    /// about its server. A failure on a connection that was
    /// already open (it may have gone stale while the environment sat idle)
    /// replaces the connection and retries once; a failure on a fresh one is
    /// returned at once so an outage answers quickly.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, RedisFailure>
    where
        F: Fn(GateConnection, Arc<Server>) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let (connection, server, fresh) = self.connection().await?;
        match op(connection, server).await {
            Ok(value) => Ok(value),
            Err(e) if is_connection_failure(&e) => {
                self.forget().await;
                if fresh {
                    return Err(RedisFailure::Unreachable(e));
                }
                tracing::info!(error = %e, "redis connection went stale; reconnecting");
                let (connection, server, _) = self.connection().await?;
                op(connection, server).await.map_err(|e| self.classify(e))
            }
            Err(e) => Err(RedisFailure::Refused(e)),
        }
    }

    /// The shards serving the gate: a cluster's from `CLUSTER SLOTS` (any
    /// node answers for all), in slot order; a single node is one shard
    /// holding every slot.
    pub async fn shards(&self) -> Result<Vec<Shard>, RedisFailure> {
        let whole = Shard::whole(self.info.addr().to_string());
        self.run(|c, _| {
            let whole = whole.clone();
            async move {
                match c {
                    GateConnection::Node(_) => Ok(vec![whole]),
                    GateConnection::Cluster(mut c) => {
                        let reply = c
                            .route_command(
                                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                            )
                            .await?;
                        shards_of(reply)
                    }
                }
            }
        })
        .await
    }

    fn classify(&self, e: RedisError) -> RedisFailure {
        let failure = RedisFailure::of(e);
        if matches!(failure, RedisFailure::Unreachable(_)) {
            // Drop it without waiting: the next call reconnects.
            if let Ok(mut slot) = self.connection.try_lock() {
                *slot = None;
            }
        }
        failure
    }

    /// Connects now unless a connection is open, allowing `connect_budget`
    /// for the connect instead of the per-request connect timeout (no fan
    /// waits on it); commands keep the usual response timeout. Introduces
    /// the connection too unless its AUTH token must come from the secrets
    /// extension, which init may not call.
    pub async fn warm(&self, connect_budget: Duration) -> Result<(), RedisFailure> {
        let mut slot = self.connection.lock().await;
        if slot.is_some() {
            return Ok(());
        }
        let config = self.config.clone().set_connection_timeout(Some(connect_budget));
        if self.cluster {
            // The cluster client authenticates as it connects: with a token
            // from the extension, the first request opens it.
            if !self.auth.readable_in_init() {
                return Ok(());
            }
            let mut connection = self.open_cluster(connect_budget).await?;
            let server = Some(self.introduce(&mut connection).await?);
            *slot = Some(Open { connection, server });
            return Ok(());
        }
        let mut connection = self.open(&config).await?;
        let server = if self.auth.readable_in_init() { Some(self.introduce(&mut connection).await?) } else { None };
        *slot = Some(Open { connection, server });
        Ok(())
    }

    /// A live, introduced connection, and whether it was opened just now.
    async fn connection(&self) -> Result<(GateConnection, Arc<Server>, bool), RedisFailure> {
        let mut slot = self.connection.lock().await;
        if let Some(Open { connection, server: Some(server) }) = slot.as_ref() {
            return Ok((connection.clone(), server.clone(), false));
        }
        // Opened at init, not yet introduced: it may have gone stale while
        // the environment sat frozen.
        if let Some(Open { mut connection, .. }) = slot.take() {
            match self.introduce(&mut connection).await {
                Ok(server) => {
                    *slot = Some(Open { connection: connection.clone(), server: Some(server.clone()) });
                    return Ok((connection, server, false));
                }
                Err(RedisFailure::Unreachable(e)) => {
                    tracing::info!(error = %e, "the connection opened at init went stale; reconnecting");
                }
                Err(e) => return Err(e),
            }
        }
        let mut connection =
            if self.cluster { self.open_cluster(self.connect_timeout).await? } else { self.open(&self.config).await? };
        let server = self.introduce(&mut connection).await?;
        *slot = Some(Open { connection: connection.clone(), server: Some(server.clone()) });
        Ok((connection, server, true))
    }

    /// TCP and, for `rediss://`, TLS.
    async fn open(&self, config: &AsyncConnectionConfig) -> Result<GateConnection, RedisFailure> {
        self.client()
            .await?
            .get_multiplexed_async_connection_with_config(config)
            .await
            .map(GateConnection::Node)
            .map_err(RedisFailure::Unreachable)
    }

    /// The cluster client from the configuration endpoint: it reads the
    /// slots from the node it reaches and connects to each node as needed,
    /// with the AUTH token read now. A command redirected or refused during
    /// a slot migration (`TRYAGAIN`) is retried a few times, waits included
    /// in the response timeout's order, so a request still answers within
    /// its budget (then 503 with nothing reserved).
    async fn open_cluster(&self, connect_timeout: Duration) -> Result<GateConnection, RedisFailure> {
        if self.credentials.db != 0 {
            return Err(RedisFailure::Refused(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a Redis cluster has only database 0",
            ))));
        }
        let token =
            self.auth.resolve().await.map_err(RedisFailure::Secret)?.or_else(|| self.credentials.password.clone());
        let mut builder = ClusterClientBuilder::new(vec![self.info.clone()])
            .connection_timeout(connect_timeout)
            .response_timeout(self.response_timeout)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_RETRY_WAIT_MS)
            .max_retry_wait(CLUSTER_RETRY_WAIT_MS * 4);
        if let Some(token) = &token {
            builder = builder.password(token.expose());
        }
        if let Some(username) = &self.credentials.username {
            builder = builder.username(username);
        }
        if let Some(pem) = &self.root_certificates {
            builder = builder.certs(redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) });
        }
        let client: ClusterClient = builder.build().map_err(RedisFailure::Refused)?;
        client.get_async_connection().await.map(GateConnection::Cluster).map_err(RedisFailure::Unreachable)
    }

    /// `AUTH` (the token read now, else the URL's password), `SELECT` and
    /// `INFO`, pipelined: one round trip.
    async fn introduce(&self, connection: &mut GateConnection) -> Result<Arc<Server>, RedisFailure> {
        let info = match connection {
            GateConnection::Node(c) => self.introduce_node(c).await?,
            // Authenticated as it connected; INFO from one node (a cluster's
            // nodes share one parameter group).
            GateConnection::Cluster(c) => {
                let reply = c
                    .route_command(redis::cmd("INFO"), RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
                    .await
                    .map_err(RedisFailure::of)?;
                redis::from_redis_value::<String>(reply).map_err(|e| RedisFailure::Refused(e.into()))?
            }
        };
        Server::from_info(&info).map(Arc::new).ok_or_else(|| {
            RedisFailure::Refused(RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "INFO named no run_id or maxmemory_policy",
            )))
        })
    }

    /// A node's introduction: its `INFO`.
    async fn introduce_node(&self, connection: &mut MultiplexedConnection) -> Result<String, RedisFailure> {
        let token =
            self.auth.resolve().await.map_err(RedisFailure::Secret)?.or_else(|| self.credentials.password.clone());
        let mut pipe = redis::pipe();
        if let Some(token) = &token {
            let auth = pipe.cmd("AUTH");
            if let Some(username) = &self.credentials.username {
                auth.arg(username);
            }
            auth.arg(token.expose()).ignore();
        }
        if self.credentials.db != 0 {
            pipe.cmd("SELECT").arg(self.credentials.db).ignore();
        }
        pipe.cmd("INFO");
        let (info,): (String,) = pipe.query_async(connection).await.map_err(RedisFailure::of)?;
        Ok(info)
    }

    /// Drops the connection, so the next command connects and reads the
    /// server's `INFO` again (after a refusal that a configuration change
    /// on the server may lift).
    pub async fn forget(&self) {
        *self.connection.lock().await = None;
    }
}

/// Retries of a cluster command redirected or refused mid-migration, and
/// the shortest wait between them: a resharding's `TRYAGAIN` lasts while one
/// key moves, a failover's slots are read again within the node timeout.
const CLUSTER_RETRIES: u32 = 3;
const CLUSTER_RETRY_WAIT_MS: u64 = 10;

/// A broken, timed-out or demoted connection: drop it and connect again.
/// `READONLY` comes from a primary that a failover turned into a replica
/// while this connection stayed open to it.
fn is_connection_failure(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || e.code() == Some("READONLY")
        || e.kind() == redis::ErrorKind::ClusterConnectionNotFound
}

/// The shards in a `CLUSTER SLOTS` reply: entries `[start, end, [host,
/// port, id, ..], replicas..]`, grouped by primary, in slot order.
fn shards_of(reply: Value) -> Result<Vec<Shard>, RedisError> {
    let entries: Vec<Vec<Value>> = redis::from_redis_value(reply)?;
    let mut shards: Vec<Shard> = Vec::new();
    for entry in entries {
        let (start, end): (u16, u16) = match &entry[..] {
            [start, end, ..] => (redis::from_redis_value(start.clone())?, redis::from_redis_value(end.clone())?),
            _ => return Err(RedisError::from((redis::ErrorKind::Parse, "CLUSTER SLOTS named no slot range"))),
        };
        let primary = match entry.get(2) {
            Some(node) => {
                let (host, port): (String, u16) = match node {
                    Value::Array(fields) if fields.len() >= 2 => {
                        (redis::from_redis_value(fields[0].clone())?, redis::from_redis_value(fields[1].clone())?)
                    }
                    _ => return Err(RedisError::from((redis::ErrorKind::Parse, "CLUSTER SLOTS named no primary"))),
                };
                format!("{host}:{port}")
            }
            None => return Err(RedisError::from((redis::ErrorKind::Parse, "CLUSTER SLOTS named no primary"))),
        };
        match shards.iter_mut().find(|s| s.primary == primary) {
            Some(s) => s.slots.push(start..=end),
            None => shards.push(Shard { primary, slots: vec![start..=end] }),
        }
    }
    for s in &mut shards {
        s.slots.sort_by_key(|r| *r.start());
    }
    shards.sort_by_key(|s| s.slots.first().map(|r| *r.start()));
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::Server;

    #[test]
    fn reads_the_server_identity_and_its_eviction_policy_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\n# Memory\r\nmaxmemory:6871947673\r\n\
                    maxmemory_policy:allkeys-lru\r\n";
        let server = Server::from_info(info).unwrap();
        assert_eq!((server.run_id.as_str(), server.maxmemory_policy.as_str()), ("abc123", "allkeys-lru"));
        assert_eq!(server.maxmemory, 6_871_947_673);
        assert!(server.may_evict_gate_keys());
        for safe in ["noeviction", "volatile-lru", "volatile-ttl"] {
            assert!(!Server { maxmemory_policy: safe.into(), ..server.clone() }.may_evict_gate_keys(), "{safe}");
        }
        assert_eq!(Server::from_info("run_id:\r\nmaxmemory_policy:noeviction"), None, "an empty run_id");
    }
}
