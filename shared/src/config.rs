//! Configuration, one `from_env` per function. Every variable, its default
//! and its meaning is listed in the README; nothing here touches the network.

use crate::gate::RateLimit;
use crate::queue::SendPolicy;
use crate::recovery::Patience;
use crate::scaling::ScalingParams;
use crate::secrets::SecretSource;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::config::retry::RetryConfig;
use std::time::Duration;
use thiserror::Error;

/// A variable is missing or malformed. Init fails with this message, so a
/// misconfigured function is visible at its first invocation.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{0} must be set")]
    Missing(&'static str),
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
}

/// Where identities come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Production: the fan is the JWT authorizer's `sub`; admins need an IAM
    /// identity in the request context.
    Authorizer,
    /// Local development only: `x-fan-id` names the fan and admin calls need
    /// no IAM identity. Only `AUTH_MODE=dev` switches it on.
    Dev,
}

impl AuthMode {
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var("AUTH_MODE").unwrap_or_default().as_str() {
            "" | "jwt" | "iam" => Ok(Self::Authorizer),
            "dev" => Ok(Self::Dev),
            other => {
                Err(ConfigError::Invalid { var: "AUTH_MODE", reason: format!("{other:?} is not jwt, iam or dev") })
            }
        }
    }
}

/// Redis settings shared by the functions that talk to the gate.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// The AUTH token: `REDIS_AUTH_SECRET_ID` (Secrets Manager, read on the
    /// first connect) or `REDIS_AUTH_TOKEN` (local runs only).
    pub auth: SecretSource,
    /// `REDIS_CA_FILE`: PEM roots for a `rediss://` server (default: the system's).
    pub root_certificates: Option<Vec<u8>>,
}

impl RedisConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: var_or("REDIS_URL", "redis://127.0.0.1:6379"),
            key_prefix: var_or("REDIS_KEY_PREFIX", "fanrush"),
            connect_timeout: millis("REDIS_CONNECT_TIMEOUT_MS", 200)?,
            response_timeout: millis("REDIS_RESPONSE_TIMEOUT_MS", 250)?,
            auth: SecretSource::from_env("REDIS_AUTH_SECRET_ID", "REDIS_AUTH_TOKEN"),
            root_certificates: pem_file("REDIS_CA_FILE")?,
        })
    }
}

/// PostgreSQL settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `sslmode=require` in the URL turns TLS on (verified: the server's
    /// certificate must chain to the roots and name its host).
    pub url: String,
    pub schema: Option<String>,
    pub connect_timeout: Duration,
    /// The password: `DATABASE_PASSWORD_SECRET_ID` (Secrets Manager, read on
    /// the first connect; a JSON secret's `password` field or the plain
    /// string) or the URL's own (local runs only).
    pub password: SecretSource,
    /// `DATABASE_CA_FILE`: PEM roots for TLS (default: the system's; RDS
    /// without RDS Proxy needs the RDS bundle here).
    pub root_certificates: Option<Vec<u8>>,
}

impl DatabaseConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: required("DATABASE_URL")?,
            schema: std::env::var("DATABASE_SCHEMA").ok().filter(|s| !s.is_empty()),
            connect_timeout: millis("DATABASE_CONNECT_TIMEOUT_MS", 3000)?,
            password: SecretSource::from_env("DATABASE_PASSWORD_SECRET_ID", "DATABASE_PASSWORD"),
            root_certificates: pem_file("DATABASE_CA_FILE")?,
        })
    }
}

/// Reads the PEM file a variable names (a local file in the package, so
/// reading it in init costs no network).
fn pem_file(var: &'static str) -> Result<Option<Vec<u8>>, ConfigError> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(path) => {
            std::fs::read(&path).map(Some).map_err(|e| ConfigError::Invalid { var, reason: format!("{path}: {e}") })
        }
    }
}

/// SQS settings for the entry queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub url: String,
    /// `SQS_DLQ_URL`: the entry queue's DLQ. Required where the gate is
    /// restored or swept (admin-api, scheduler): entries in it count as taken.
    pub dead_letter_url: Option<String>,
    pub attempt_timeout: Duration,
    pub policy: SendPolicy,
}

impl QueueConfig {
    /// The entry queue, with its DLQ required.
    pub fn with_dead_letters_from_env() -> Result<Self, ConfigError> {
        let c = Self::from_env()?;
        c.dead_letter_url.as_ref().ok_or(ConfigError::Missing("SQS_DLQ_URL"))?;
        Ok(c)
    }

    /// The entry queue client (built on first use) and, when configured, its DLQ.
    pub fn queues(&self) -> (crate::queue::EntryQueue, Option<crate::queue::DeadLetterQueue>) {
        let queue = crate::queue::EntryQueue::lazy(&self.url, self.policy, self.attempt_timeout);
        let dead = self.dead_letter_url.as_ref().map(|url| queue.dead_letters(url));
        (queue, dead)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: required("SQS_QUEUE_URL")?,
            dead_letter_url: std::env::var("SQS_DLQ_URL").ok().filter(|v| !v.is_empty()),
            attempt_timeout: millis("SQS_ATTEMPT_TIMEOUT_MS", 1000)?,
            policy: SendPolicy {
                attempts: number("SQS_SEND_ATTEMPTS", 2)?.max(1) as u32,
                backoff: millis("SQS_RETRY_BACKOFF_MS", 50)?,
            },
        })
    }
}

/// `entry-api`.
#[derive(Debug, Clone)]
pub struct EntryApiConfig {
    pub redis: RedisConfig,
    /// Per-fan entry attempts per window (0 turns the limit off).
    pub rate_limit: RateLimit,
    pub queue: QueueConfig,
    pub auth: AuthMode,
    /// Seconds a client is asked to wait after a 503.
    pub retry_after_s: u64,
}

impl EntryApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            redis: RedisConfig::from_env()?,
            rate_limit: RateLimit {
                requests: number("RATE_LIMIT_REQUESTS", 10)? as u32,
                window: millis("RATE_LIMIT_WINDOW_MS", 10_000)?,
            },
            queue: QueueConfig::from_env()?,
            auth: AuthMode::from_env()?,
            retry_after_s: number("RETRY_AFTER_SECONDS", 1)?,
        })
    }
}

/// `admin-api`.
#[derive(Debug, Clone)]
pub struct AdminApiConfig {
    pub redis: RedisConfig,
    pub database: DatabaseConfig,
    pub queue: QueueConfig,
    pub auth: AuthMode,
    pub retry_after_s: u64,
    /// See [`restore_settle`].
    pub restore_settle: Duration,
}

impl AdminApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            redis: RedisConfig::from_env()?,
            database: DatabaseConfig::from_env()?,
            queue: QueueConfig::with_dead_letters_from_env()?,
            auth: AuthMode::from_env()?,
            retry_after_s: number("RETRY_AFTER_SECONDS", 1)?,
            restore_settle: restore_settle()?,
        })
    }
}

/// `writer`.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub database: DatabaseConfig,
}

impl WriterConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self { database: DatabaseConfig::from_env()? })
    }
}

/// `scheduler`.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub redis: RedisConfig,
    pub database: DatabaseConfig,
    pub queue: QueueConfig,
    /// When the gate may be restored and stale reservations swept.
    pub patience: Patience,
    /// The function and alias whose provisioned concurrency is managed.
    pub entry_function: Option<String>,
    pub entry_alias: String,
    /// Log what would change instead of calling the Lambda API.
    pub dry_run: bool,
    /// In dry run, the account limit to clamp against.
    pub account_limit: Option<i64>,
    pub scaling: ScalingParams,
    /// An optional iCalendar feed of more fan events.
    pub calendar_ics_url: Option<String>,
}

impl SchedulerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let dry_run = matches!(var_or("SCHEDULER_DRY_RUN", "false").as_str(), "true" | "1" | "yes");
        let entry_function = std::env::var("ENTRY_FUNCTION_NAME").ok().filter(|v| !v.is_empty());
        if !dry_run && entry_function.is_none() {
            return Err(ConfigError::Missing("ENTRY_FUNCTION_NAME"));
        }
        let headroom: f64 = var_or("SCALING_HEADROOM", "1.2")
            .parse()
            .ok()
            .filter(|h: &f64| h.is_finite() && *h >= 1.0)
            .ok_or(ConfigError::Invalid { var: "SCALING_HEADROOM", reason: "must be a number >= 1".into() })?;
        let defaults = ScalingParams::default();
        Ok(Self {
            redis: RedisConfig::from_env()?,
            database: DatabaseConfig::from_env()?,
            queue: QueueConfig::with_dead_letters_from_env()?,
            patience: Patience {
                restore_settle: restore_settle()?,
                sweep_after: Duration::from_secs(number("PENDING_SWEEP_AFTER_SECONDS", 300)?),
            },
            entry_function,
            entry_alias: var_or("ENTRY_FUNCTION_ALIAS", "live"),
            dry_run,
            account_limit: std::env::var("ACCOUNT_CONCURRENCY_LIMIT").ok().and_then(|v| v.parse().ok()),
            scaling: ScalingParams {
                duration: millis("ENTRY_P99_MS", defaults.duration.as_millis() as u64)?,
                headroom,
                lead: chrono::Duration::minutes(number("LEAD_MINUTES", 30)? as i64),
                cooldown: chrono::Duration::minutes(number("COOLDOWN_MINUTES", 10)? as i64),
                ..defaults
            },
            calendar_ics_url: std::env::var("CALENDAR_ICS_URL").ok().filter(|v| !v.is_empty()),
        })
    }
}

/// `GATE_RESTORE_SETTLE_SECONDS`: how long after Redis lost the gate state
/// the restore waits, so every entry request in flight at the loss has
/// finished (its SQS send landed or failed). Keep it above the entry
/// function's timeout (10 s in the template).
pub fn restore_settle() -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(number("GATE_RESTORE_SETTLE_SECONDS", 15)?))
}

/// Loads the AWS SDK configuration (region, credentials chain, and
/// `AWS_ENDPOINT_URL` for local endpoints). Credentials resolve lazily, on
/// the first call.
pub async fn aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// An SQS client with short timeouts and SDK retries off: [`crate::queue`]
/// retries itself so it knows whether any attempt may have landed.
pub fn sqs_client(sdk: &SdkConfig, attempt_timeout: Duration) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(sdk)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(attempt_timeout.min(Duration::from_millis(500)))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

fn var_or(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

fn required(var: &'static str) -> Result<String, ConfigError> {
    std::env::var(var).ok().filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(var))
}

fn number(var: &'static str, default: u64) -> Result<u64, ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => {
            v.parse().map_err(|_| ConfigError::Invalid { var, reason: format!("{v:?} is not a whole number") })
        }
        _ => Ok(default),
    }
}

fn millis(var: &'static str, default: u64) -> Result<Duration, ConfigError> {
    number(var, default).map(Duration::from_millis)
}
