//! Configuration, one `from_env` per function, and what each function
//! runs built from it (`fan_api`, `admin_api`, `writer`, `job`,
//! `notifier`): the top layer, so adapters and use cases never read the
//! environment themselves. Every variable, its default and its meaning is
//! listed in docs/configuration.md; nothing here touches the network, so init stays
//! free of connections.

use crate::adapters::https::HttpsClient;
use crate::adapters::lambda_control::ProvisionedConcurrency;
use crate::adapters::postgres_store::{Database, Migrations, StoreError};
use crate::adapters::redis_gate::{EntryGate, GateError, LazyRedis};
use crate::adapters::secrets::{MalformedPort, SecretSource};
use crate::adapters::slack::SlackNotifier;
use crate::adapters::sqs_queue::{DeadLetterQueue, EntryQueue, SendPolicy};
use crate::rules::scaling::preflight::{price_per_gb_second, Capacities, Pricing, ADMIN_ROUTE_RATE, FAN_ROUTE_RATE};
use crate::rules::scaling::Quotas;
use crate::rules::scaling::ScalingParams;
use crate::usecases::api::{AdminApi, AuthMode, FanApi, TicketKeyring};
use crate::usecases::database_setup::DatabaseSetup;
use crate::usecases::entrance::{RateLimit, ReceiptKeyring, KEYS_TTL};
use crate::usecases::provisioning::{PreflightInputs, Provisioner, Target};
use crate::usecases::recovery::Patience;
use crate::usecases::scheduler_job::{CalendarFeed, GateUpkeep, SchedulerJob};
use crate::usecases::writer::EntryWriter;
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
    /// The Redis settings do not make a client (a malformed URL).
    #[error(transparent)]
    Redis(#[from] GateError),
    /// The database settings do not make a client (URL, schema name).
    #[error(transparent)]
    Database(#[from] StoreError),
    /// The secrets extension's port is not a port.
    #[error(transparent)]
    SecretsExtension(#[from] MalformedPort),
}

/// `AUTH_MODE`: `jwt`/`iam` (or unset) for the authorizer, `dev` only when
/// explicitly asked for (the functions that read it refuse it in AWS:
/// [`refuse_local_only_in_aws`]).
pub fn auth_mode() -> Result<AuthMode, ConfigError> {
    match std::env::var("AUTH_MODE").unwrap_or_default().as_str() {
        "" | "jwt" | "iam" => Ok(AuthMode::Authorizer),
        "dev" => Ok(AuthMode::Dev),
        other => Err(ConfigError::Invalid { var: "AUTH_MODE", reason: format!("{other:?} is not jwt, iam or dev") }),
    }
}

/// Whether the process runs in AWS Lambda rather than on one machine:
/// Lambda sets `AWS_LAMBDA_LOG_GROUP_NAME` for every function (Lambda
/// Developer Guide, "Defined runtime environment variables"). A local
/// emulator that sets it too (`sam local`, say) marks its run with
/// `FANRUSH_LOCAL=1`, which the template's Guard rule keeps out of AWS.
pub fn runs_in_aws(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env("AWS_LAMBDA_LOG_GROUP_NAME").is_some() && env("FANRUSH_LOCAL").as_deref() != Some("1")
}

/// What is for local runs only, refused in AWS: dev mode (`x-fan-id` names
/// the fan, over a verified identity) and plain-text ticket and receipt keys (they
/// would sit in the function's configuration, readable by anyone who can
/// read it). The template's Guard rule refuses the same.
pub fn refuse_local_only_in_aws(env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    if !runs_in_aws(env) {
        return Ok(());
    }
    if env("AUTH_MODE").as_deref() == Some("dev") {
        let reason = "dev mode trusts the x-fan-id header and is refused in AWS; use the authorizer".to_owned();
        return Err(ConfigError::Invalid { var: "AUTH_MODE", reason });
    }
    for (var, secret_id) in [
        ("LINE_TICKET_SECRET", "LINE_TICKET_SECRET_ID"),
        ("LINE_TICKET_SECRET_PREVIOUS", "LINE_TICKET_SECRET_ID"),
        ("RECEIPT_SECRET", "RECEIPT_SECRET_ID"),
        ("RECEIPT_SECRET_PREVIOUS", "RECEIPT_SECRET_ID"),
    ] {
        if env(var).is_some() {
            let reason = format!("a plain-text key is refused in AWS; set {secret_id} to its secret");
            return Err(ConfigError::Invalid { var, reason });
        }
    }
    Ok(())
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
    /// `REDIS_CLUSTER`: `REDIS_URL` is a cluster's configuration endpoint
    /// (ElastiCache with cluster mode enabled).
    pub cluster: bool,
}

impl RedisConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: var_or("REDIS_URL", "redis://127.0.0.1:6379"),
            key_prefix: var_or("REDIS_KEY_PREFIX", "fanrush"),
            connect_timeout: millis("REDIS_CONNECT_TIMEOUT_MS", 200)?,
            response_timeout: millis("REDIS_RESPONSE_TIMEOUT_MS", 250)?,
            auth: SecretSource::from_env("REDIS_AUTH_SECRET_ID", "REDIS_AUTH_TOKEN")?,
            root_certificates: pem_file("REDIS_CA_FILE")?,
            cluster: flag("REDIS_CLUSTER")?,
        })
    }

    /// The gate on these settings: URL, timeouts, AUTH token source, TLS
    /// roots. Does not connect.
    pub fn gate(&self) -> Result<EntryGate, ConfigError> {
        let mut redis = LazyRedis::new(&self.url, self.connect_timeout, self.response_timeout)
            .map_err(GateError::Refused)?
            .with_auth(self.auth.clone());
        if let Some(pem) = &self.root_certificates {
            redis = redis.with_root_certificates(pem.clone());
        }
        if self.cluster {
            redis = redis.in_cluster_mode();
        }
        Ok(EntryGate::on(redis, &self.key_prefix))
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
    /// `DATABASE_MIGRATIONS`: `apply` (default: the connection is the
    /// owner's) or `expect` (a function's own role: db-setup applies
    /// them).
    pub migrations: Migrations,
}

impl DatabaseConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: required("DATABASE_URL")?,
            schema: std::env::var("DATABASE_SCHEMA").ok().filter(|s| !s.is_empty()),
            connect_timeout: millis("DATABASE_CONNECT_TIMEOUT_MS", 3000)?,
            password: SecretSource::from_env("DATABASE_PASSWORD_SECRET_ID", "DATABASE_PASSWORD")?,
            root_certificates: pem_file("DATABASE_CA_FILE")?,
            migrations: migrations_mode(std::env::var("DATABASE_MIGRATIONS").ok().as_deref())?,
        })
    }

    /// The database on these settings. Does not connect, read the secret or
    /// load certificates.
    pub fn database(&self) -> Result<Database, ConfigError> {
        let db = Database::new(&self.url, self.schema.clone(), self.connect_timeout)?
            .with_password(self.password.clone())
            .with_migrations(self.migrations);
        Ok(match &self.root_certificates {
            Some(pem) => db.with_root_certificates(pem.clone()),
            None => db,
        })
    }
}

/// `DATABASE_MIGRATIONS`'s value.
fn migrations_mode(value: Option<&str>) -> Result<Migrations, ConfigError> {
    match value.unwrap_or_default() {
        "" | "apply" => Ok(Migrations::Apply),
        "expect" => Ok(Migrations::Expect),
        other => Err(ConfigError::Invalid {
            var: "DATABASE_MIGRATIONS",
            reason: format!("{other:?} is not apply or expect"),
        }),
    }
}

/// `db-setup`: the owner's database (`DATABASE_*`, migrations
/// applied whatever `DATABASE_MIGRATIONS` says) and each function role's
/// secret, `DATABASE_ROLE_SECRET_IDS` (comma-separated Secrets Manager ids,
/// read through the extension).
#[derive(Debug, Clone)]
pub struct DatabaseSetupConfig {
    pub database: DatabaseConfig,
    pub role_secrets: Vec<(String, SecretSource)>,
}

impl DatabaseSetupConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let ids = required("DATABASE_ROLE_SECRET_IDS")?;
        let mut role_secrets = Vec::new();
        for id in ids.split(',').map(str::trim).filter(|id| !id.is_empty()) {
            role_secrets.push((id.to_owned(), SecretSource::extension(id.to_owned(), &|k| std::env::var(k).ok())?));
        }
        if role_secrets.is_empty() {
            return Err(ConfigError::Missing("DATABASE_ROLE_SECRET_IDS"));
        }
        Ok(Self {
            database: DatabaseConfig { migrations: Migrations::Apply, ..DatabaseConfig::from_env()? },
            role_secrets,
        })
    }

    pub fn setup(&self) -> Result<DatabaseSetup, ConfigError> {
        Ok(DatabaseSetup::new(self.database.database()?, self.role_secrets.clone()))
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

    /// The entry queue; its client is built on first use.
    pub fn queue(&self) -> EntryQueue {
        EntryQueue::lazy(&self.url, self.policy, self.attempt_timeout)
    }

    /// The entry queue and its DLQ.
    pub fn queues(&self) -> Result<(EntryQueue, DeadLetterQueue), ConfigError> {
        let queue = self.queue();
        let dead = queue.dead_letters(self.dead_letter_url.as_ref().ok_or(ConfigError::Missing("SQS_DLQ_URL"))?);
        Ok((queue, dead))
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
    /// Per-fan entry attempts per window at an event without a line, in
    /// each environment's memory (0 turns the limit off).
    pub rate_limit: RateLimit,
    pub queue: QueueConfig,
    pub auth: AuthMode,
    /// Seconds a client is asked to wait after a 503.
    pub retry_after_s: u64,
    /// `Some(connect budget)` when Lambda initializes this environment ahead
    /// of traffic: see [`warm_at_init`].
    pub warm_at_init: Option<Duration>,
    /// The line's ticket key: `LINE_TICKET_SECRET_ID` (Secrets Manager,
    /// read at first use; its `AWSPREVIOUS` version still verifies after a
    /// rotation) or `LINE_TICKET_SECRET` (local runs only, with an optional
    /// `LINE_TICKET_SECRET_PREVIOUS`).
    pub ticket_key: SecretSource,
    pub previous_ticket_key: SecretSource,
    /// How long read ticket keys are kept: the extension's cache time.
    pub ticket_keys_ttl: Duration,
    /// The key admitted fans' receipts are signed with (Ed25519, derived
    /// from the secret): `RECEIPT_SECRET_ID` (Secrets Manager, rotated as
    /// the ticket key) or `RECEIPT_SECRET` (local runs only, with an
    /// optional `RECEIPT_SECRET_PREVIOUS`).
    pub receipt_key: SecretSource,
    pub previous_receipt_key: SecretSource,
    /// `LINE_SYNC_MS`: how often each event's line is synced with the gate,
    /// at most.
    pub line_sync: Duration,
}

/// Whether init should open connections now, and with what connect budget.
///
/// Lambda sets `AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency` when
/// it initializes an environment for provisioned concurrency, ahead of any
/// request (Lambda Developer Guide, "Defined runtime environment variables",
/// https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html).
/// Such an environment does the opening second's connect work in init, when
/// no fan waits: otherwise thousands of environments open TLS connections to
/// one Redis primary in the same second. On-demand environments stay lazy
/// (their init is on a fan's request path). The budget is far inside init's
/// limit, which for provisioned concurrency is 130 s or the function timeout
/// ("Understanding the Lambda execution environment lifecycle", Init phase,
/// https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html).
fn warm_at_init() -> Option<Duration> {
    let provisioned = std::env::var("AWS_LAMBDA_INITIALIZATION_TYPE").is_ok_and(|t| t == "provisioned-concurrency");
    provisioned.then_some(Duration::from_secs(2))
}

impl EntryApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        refuse_local_only_in_aws(&|var| std::env::var(var).ok())?;
        Ok(Self {
            redis: RedisConfig::from_env()?,
            rate_limit: RateLimit {
                requests: number("RATE_LIMIT_REQUESTS", 10)? as u32,
                window: millis("RATE_LIMIT_WINDOW_MS", 10_000)?,
            },
            queue: QueueConfig::from_env()?,
            auth: auth_mode()?,
            retry_after_s: number("RETRY_AFTER_SECONDS", 1)?,
            warm_at_init: warm_at_init(),
            ticket_key: SecretSource::from_env("LINE_TICKET_SECRET_ID", "LINE_TICKET_SECRET")?,
            previous_ticket_key: SecretSource::from_env("", "LINE_TICKET_SECRET_PREVIOUS")?,
            // The extension's own setting (it caches secrets this long):
            // the keys are read again no sooner than it would see a change.
            ticket_keys_ttl: Duration::from_secs(number("SECRETS_MANAGER_TTL", KEYS_TTL.as_secs())?),
            receipt_key: SecretSource::from_env("RECEIPT_SECRET_ID", "RECEIPT_SECRET")?,
            previous_receipt_key: SecretSource::from_env("", "RECEIPT_SECRET_PREVIOUS")?,
            line_sync: millis("LINE_SYNC_MS", crate::rules::line::SYNC_EVERY.as_millis() as u64)?,
        })
    }

    /// The fan API with its gate, queue, line and per-fan limit.
    pub fn fan_api(&self) -> Result<FanApi, ConfigError> {
        let keys = TicketKeyring::new(self.ticket_key.clone(), self.previous_ticket_key.clone())
            .with_ttl(self.ticket_keys_ttl);
        let receipts =
            ReceiptKeyring::new(self.receipt_key.clone(), self.previous_receipt_key.clone(), self.ticket_keys_ttl);
        Ok(FanApi::new(self.redis.gate()?, self.queue.queue(), self.auth, self.retry_after_s)
            .with_line(keys, self.line_sync, self.rate_limit)
            .with_receipts(receipts))
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
        refuse_local_only_in_aws(&|var| std::env::var(var).ok())?;
        Ok(Self {
            redis: RedisConfig::from_env()?,
            database: DatabaseConfig::from_env()?,
            queue: QueueConfig::with_dead_letters_from_env()?,
            auth: auth_mode()?,
            retry_after_s: number("RETRY_AFTER_SECONDS", 1)?,
            restore_settle: restore_settle()?,
        })
    }

    /// The admin API with its gate, database, queue and DLQ.
    pub fn admin_api(&self) -> Result<AdminApi, ConfigError> {
        let (queue, dead_letters) = self.queue.queues()?;
        let (gate, db) = (self.redis.gate()?, self.database.database()?);
        Ok(AdminApi::new(gate, db, queue, dead_letters, self.auth, self.retry_after_s)
            .with_restore_settle(self.restore_settle))
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

    /// The writer on its database.
    pub fn writer(&self) -> Result<EntryWriter, ConfigError> {
        Ok(EntryWriter::new(self.database.database()?))
    }
}

/// `notifier`, and every function that tells Slack.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// The webhook URL: `SLACK_WEBHOOK_SECRET_ID` (Secrets Manager, read on
    /// the first post) or `SLACK_WEBHOOK_URL` (local runs only).
    pub webhook: SecretSource,
}

impl NotifierConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self { webhook: SecretSource::from_env("SLACK_WEBHOOK_SECRET_ID", "SLACK_WEBHOOK_URL")? })
    }

    pub fn notifier(&self) -> SlackNotifier {
        SlackNotifier::new(self.webhook.clone())
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
    /// entry-api's reserved concurrency, when the stack caps it.
    pub entry_cap: Option<i64>,
    pub scaling: ScalingParams,
    /// An optional iCalendar feed of more fan events.
    pub calendar_ics_url: Option<String>,
    pub slack: NotifierConfig,
    /// What the preflight at scale-out needs besides `GetAccountSettings`.
    pub preflight: PreflightInputs,
    /// `DRAW_REVEAL_AFTER_SECONDS`: how long after an opening its
    /// pre-queue's draw is revealed (drills shorten it).
    pub reveal_after: Duration,
}

impl SchedulerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let dry_run = flag("SCHEDULER_DRY_RUN")?;
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
            reveal_after: Duration::from_secs(number(
                "DRAW_REVEAL_AFTER_SECONDS",
                crate::usecases::draws::REVEAL_AFTER.as_secs(),
            )?),
            entry_function,
            entry_alias: var_or("ENTRY_FUNCTION_ALIAS", "live"),
            dry_run,
            account_limit: match std::env::var("ACCOUNT_CONCURRENCY_LIMIT") {
                Ok(v) if !v.is_empty() => Some(number("ACCOUNT_CONCURRENCY_LIMIT", 0)? as i64),
                _ => None,
            },
            // 0 or unset: entry-api has no reserved concurrency.
            entry_cap: Some(number("ENTRY_MAX_CONCURRENCY", 0)? as i64).filter(|cap| *cap > 0),
            scaling: ScalingParams {
                duration: millis("ENTRY_P99_MS", defaults.duration.as_millis() as u64)?,
                headroom,
                lead: chrono::Duration::minutes(number("LEAD_MINUTES", 30)? as i64),
                cooldown: chrono::Duration::minutes(number("COOLDOWN_MINUTES", 10)? as i64),
                ..defaults
            },
            calendar_ics_url: std::env::var("CALENDAR_ICS_URL").ok().filter(|v| !v.is_empty()),
            slack: NotifierConfig::from_env()?,
            preflight: PreflightInputs {
                api_rate: number("API_THROTTLE_RATE_QUOTA", Quotas::default().api_rate as u64)? as f64,
                api_burst: number("API_THROTTLE_BURST_QUOTA", Quotas::default().api_burst as u64)? as f64,
                fan_route_rate: number("FAN_ROUTE_THROTTLE_RATE", FAN_ROUTE_RATE as u64)? as f64,
                admin_route_rate: number("ADMIN_ROUTE_THROTTLE_RATE", ADMIN_ROUTE_RATE as u64)? as f64,
                capacities: Capacities {
                    writer_max_concurrency: number("WRITER_MAX_CONCURRENCY", 5)? as i64,
                    ..Capacities::default()
                },
                pricing: Pricing { memory_mb: number("ENTRY_MEMORY_MB", 128)? as u32, per_gb_second: entry_price()? },
            },
        })
    }

    /// The scheduler's job: gate upkeep, the calendar feed, and provisioning
    /// against the Lambda API (or, in dry run, none). Nothing connects here.
    pub fn job(&self) -> Result<SchedulerJob, ConfigError> {
        let target = match (&self.entry_function, self.dry_run) {
            (Some(function), false) => Target::Lambda(ProvisionedConcurrency::lazy(function, &self.entry_alias)),
            _ => Target::DryRun { account_limit: self.account_limit },
        };
        let (queue, dead_letters) = self.queue.queues()?;
        let upkeep = GateUpkeep {
            gate: self.redis.gate()?,
            db: self.database.database()?,
            queue,
            dead_letters,
            patience: self.patience,
            reveal_after: self.reveal_after,
        };
        let feed = self.calendar_ics_url.clone().map(|url| CalendarFeed { url, https: HttpsClient::new() });
        Ok(SchedulerJob::new(
            upkeep,
            feed,
            Provisioner::new(target, self.slack.notifier(), self.scaling)
                .with_preflight(self.preflight)
                .with_entry_cap(self.entry_cap),
        ))
    }
}

/// The provisioned-concurrency price of entry-api's architecture
/// (`ENTRY_ARCHITECTURE`, which the template sets from its `Architecture`).
fn entry_price() -> Result<f64, ConfigError> {
    let architecture = var_or("ENTRY_ARCHITECTURE", "arm64");
    price_per_gb_second(&architecture).ok_or_else(|| ConfigError::Invalid {
        var: "ENTRY_ARCHITECTURE",
        reason: format!("{architecture:?} is neither arm64 nor x86_64"),
    })
}

/// `GATE_RESTORE_SETTLE_SECONDS`: how long after Redis lost the gate state
/// the restore waits, so every entry request in flight at the loss has
/// finished (its SQS send landed or failed). Keep it above the entry
/// function's timeout (10 s in the template).
pub fn restore_settle() -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(number("GATE_RESTORE_SETTLE_SECONDS", 15)?))
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

/// A yes/no setting: `true`/`1`/`yes` or `false`/`0`/`no` in any case,
/// unset or empty for no; anything else is refused, not read as no.
fn flag(var: &'static str) -> Result<bool, ConfigError> {
    parse_flag(var, &std::env::var(var).unwrap_or_default())
}

fn parse_flag(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "" | "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::Invalid { var, reason: format!("{value:?} is not true or false") }),
    }
}

fn millis(var: &'static str, default: u64) -> Result<Duration, ConfigError> {
    number(var, default).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn database_migrations_are_applied_or_expected_and_nothing_else() {
        assert_eq!(migrations_mode(None).unwrap(), Migrations::Apply);
        assert_eq!(migrations_mode(Some("apply")).unwrap(), Migrations::Apply);
        assert_eq!(migrations_mode(Some("expect")).unwrap(), Migrations::Expect);
        let err = migrations_mode(Some("Expect")).unwrap_err().to_string();
        assert!(err.contains("DATABASE_MIGRATIONS") && err.contains("\"Expect\""), "{err}");
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        move |name| vars.get(name).map(|v| (*v).to_owned())
    }

    #[test]
    fn a_flag_is_true_false_or_refused_never_read_as_false() {
        for yes in ["true", "TRUE", "1", "Yes"] {
            assert!(parse_flag("F", yes).unwrap(), "{yes}");
        }
        for no in ["", "false", "FALSE", "0", "no"] {
            assert!(!parse_flag("F", no).unwrap(), "{no}");
        }
        assert!(matches!(parse_flag("F", "ture"), Err(ConfigError::Invalid { var: "F", .. })));
    }

    #[test]
    fn dev_mode_and_plain_ticket_keys_are_refused_in_aws_only() {
        let lambda = ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/entry-api");
        for (var, value) in [("AUTH_MODE", "dev"), ("LINE_TICKET_SECRET", "k"), ("LINE_TICKET_SECRET_PREVIOUS", "k")] {
            let refused = refuse_local_only_in_aws(&env(&[lambda, (var, value)]));
            assert!(matches!(refused, Err(ConfigError::Invalid { var: v, .. }) if v == var), "{var}: {refused:?}");
            assert!(refuse_local_only_in_aws(&env(&[(var, value)])).is_ok(), "{var} on one machine");
            assert!(refuse_local_only_in_aws(&env(&[lambda, (var, value), ("FANRUSH_LOCAL", "1")])).is_ok());
        }
        let authorizer = [lambda, ("AUTH_MODE", "jwt"), ("LINE_TICKET_SECRET_ID", "arn")];
        assert!(refuse_local_only_in_aws(&env(&authorizer)).is_ok());
        assert!(refuse_local_only_in_aws(&env(&[lambda, ("AUTH_MODE", "dev"), ("FANRUSH_LOCAL", "yes")])).is_err());
    }
}
