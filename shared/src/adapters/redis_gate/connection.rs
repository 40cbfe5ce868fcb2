//! A lazy, self-healing Redis connection.
//!
//! This is the fix for the incident in the design notes: a client connected in
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
//! [`SecretSource`], read on the first connect, never from the URL in
//! production and never logged.
//!
//! Each new connection first reads the server's `INFO` (one round trip,
//! before any command): its `run_id`, which the gate uses to notice that it
//! is talking to another server than the one its state was built on (a
//! failover, a restart from a snapshot), and its `maxmemory-policy` (read
//! from `INFO`, because ElastiCache refuses `CONFIG GET`). A `READONLY`
//! answer means the endpoint now names a demoted primary: the connection is
//! replaced, as after a failover.

use crate::adapters::secrets::{SecretError, SecretSource};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionInfo, IntoConnectionInfo, RedisError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};

/// A Redis client that connects on first use.
pub struct LazyRedis {
    info: ConnectionInfo,
    auth: SecretSource,
    root_certificates: Option<Vec<u8>>,
    client: OnceCell<Client>,
    config: AsyncConnectionConfig,
    connection: Mutex<Option<(MultiplexedConnection, Arc<Server>)>>,
}

/// What a connection learned about its server when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Unique to one server process: a promoted replica or a restarted
    /// server has a new one.
    pub run_id: String,
    /// `maxmemory_policy` as the server reports it.
    pub maxmemory_policy: String,
}

impl Server {
    /// Parses the `INFO` reply (`key:value` lines).
    pub fn from_info(info: &str) -> Option<Self> {
        let field = |name: &str| {
            info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(|v| v.trim().to_owned())
        };
        Some(Self { run_id: field("run_id").filter(|r| !r.is_empty())?, maxmemory_policy: field("maxmemory_policy")? })
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

impl LazyRedis {
    /// Parses the URL; does not connect.
    pub fn new(url: &str, connect_timeout: Duration, response_timeout: Duration) -> Result<Self, RedisError> {
        Ok(Self {
            info: url.into_connection_info()?,
            auth: SecretSource::None,
            root_certificates: None,
            client: OnceCell::new(),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(Some(response_timeout)),
            connection: Mutex::new(None),
        })
    }

    /// The AUTH token, read on the first connect (it replaces any password
    /// in the URL).
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

    /// The client, built on first use with the AUTH token read then.
    async fn client(&self) -> Result<&Client, RedisFailure> {
        self.client
            .get_or_try_init(|| async {
                let mut info = self.info.clone();
                if let Some(token) = self.auth.resolve().await.map_err(RedisFailure::Secret)? {
                    let settings = info.redis_settings().clone().set_password(token.expose());
                    info = info.set_redis_settings(settings);
                }
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
        F: Fn(MultiplexedConnection, Arc<Server>) -> Fut,
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

    fn classify(&self, e: RedisError) -> RedisFailure {
        if is_connection_failure(&e) {
            // Drop it without waiting: the next call reconnects.
            if let Ok(mut slot) = self.connection.try_lock() {
                *slot = None;
            }
            RedisFailure::Unreachable(e)
        } else {
            RedisFailure::Refused(e)
        }
    }

    async fn connection(&self) -> Result<(MultiplexedConnection, Arc<Server>, bool), RedisFailure> {
        let mut slot = self.connection.lock().await;
        if let Some((connection, server)) = slot.as_ref() {
            return Ok((connection.clone(), server.clone(), false));
        }
        let mut connection = self
            .client()
            .await?
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(RedisFailure::Unreachable)?;
        let info: String = redis::cmd("INFO").query_async(&mut connection).await.map_err(|e| {
            if is_connection_failure(&e) {
                RedisFailure::Unreachable(e)
            } else {
                RedisFailure::Refused(e)
            }
        })?;
        let server = Server::from_info(&info).map(Arc::new).ok_or_else(|| {
            RedisFailure::Refused(RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "INFO named no run_id or maxmemory_policy",
            )))
        })?;
        *slot = Some((connection.clone(), server.clone()));
        Ok((connection, server, true))
    }

    /// Drops the connection, so the next command connects and reads the
    /// server's `INFO` again (after a refusal that a configuration change
    /// on the server may lift).
    pub async fn forget(&self) {
        *self.connection.lock().await = None;
    }
}

/// A broken, timed-out or demoted connection: drop it and connect again.
/// `READONLY` comes from a primary that a failover turned into a replica
/// while this connection stayed open to it.
fn is_connection_failure(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || e.code() == Some("READONLY")
}

#[cfg(test)]
mod tests {
    use super::Server;

    #[test]
    fn reads_the_server_identity_and_its_eviction_policy_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\n# Memory\r\nmaxmemory_policy:allkeys-lru\r\n";
        let server = Server::from_info(info).unwrap();
        assert_eq!((server.run_id.as_str(), server.maxmemory_policy.as_str()), ("abc123", "allkeys-lru"));
        assert!(server.may_evict_gate_keys());
        for safe in ["noeviction", "volatile-lru", "volatile-ttl"] {
            assert!(!Server { maxmemory_policy: safe.into(), ..server.clone() }.may_evict_gate_keys(), "{safe}");
        }
        assert_eq!(Server::from_info("run_id:\r\nmaxmemory_policy:noeviction"), None, "an empty run_id");
    }
}
