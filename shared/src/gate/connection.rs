//! A lazy, self-healing Redis connection.
//!
//! This is the fix for the incident in the design notes: a client connected in
//! Lambda init and kept for the life of the environment hit connect timeouts
//! in provisioned environments. Here nothing touches the network until the
//! first command; every connect and every command has a short timeout; a
//! connection found broken is dropped and, if it was an old one, replaced once
//! and the command retried, so an idle environment whose connection was
//! killed serves its next request without failing it.

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};
use std::future::Future;
use std::time::Duration;
use tokio::sync::Mutex;

/// A Redis client that connects on first use.
pub struct LazyRedis {
    client: Client,
    config: AsyncConnectionConfig,
    connection: Mutex<Option<MultiplexedConnection>>,
}

/// How a Redis operation failed, from the caller's point of view.
#[derive(Debug)]
pub enum RedisFailure {
    /// Could not connect, or the connection broke or timed out.
    Unreachable(RedisError),
    /// Redis answered with an error (a bug, not an outage).
    Refused(RedisError),
}

impl LazyRedis {
    /// Parses the URL; does not connect.
    pub fn new(url: &str, connect_timeout: Duration, response_timeout: Duration) -> Result<Self, RedisError> {
        Ok(Self {
            client: Client::open(url)?,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(Some(response_timeout)),
            connection: Mutex::new(None),
        })
    }

    /// Runs `op` on a live connection. A failure on a connection that was
    /// already open (it may have gone stale while the environment sat idle)
    /// replaces the connection and retries once; a failure on a fresh one is
    /// returned at once so an outage answers quickly.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, RedisFailure>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let (connection, fresh) = self.connection().await?;
        match op(connection).await {
            Ok(value) => Ok(value),
            Err(e) if is_connection_failure(&e) => {
                self.forget().await;
                if fresh {
                    return Err(RedisFailure::Unreachable(e));
                }
                tracing::info!(error = %e, "redis connection went stale; reconnecting");
                let (connection, _) = self.connection().await?;
                op(connection).await.map_err(|e| self.classify(e))
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

    async fn connection(&self) -> Result<(MultiplexedConnection, bool), RedisFailure> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok((connection.clone(), false));
        }
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(RedisFailure::Unreachable)?;
        *slot = Some(connection.clone());
        Ok((connection, true))
    }

    async fn forget(&self) {
        *self.connection.lock().await = None;
    }
}

fn is_connection_failure(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}
