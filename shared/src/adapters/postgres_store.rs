//! PostgreSQL: the durable home of the calendar (`fan_events`) and of every
//! accepted entry (`entries`).
//!
//! The connection is made on first use (never in Lambda init), migrated once
//! per process, and replaced after a connection failure. The writer's insert is
//! prepared once per connection so a batch costs exactly one round trip.
//!
//! `sslmode=require` in the URL connects over TLS with rustls, verifying the
//! server against the system roots plus any given PEM roots (RDS Proxy's
//! certificates chain to the system roots; RDS itself needs its bundle). The
//! password may come from Secrets Manager, read at every new connection, so
//! a reconnect after a rotation (or after the old password was refused) uses
//! the current one.

use crate::adapters::secrets::{SecretError, SecretSource};
use crate::rules::domain::{Entry, EventId, FanEvent, FanId, LineSettings, Position};
use crate::rules::line::draw::FanRef;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{Mutex, OnceCell};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

/// The schema, as migrations applied in order (`migrations/*.sql`). Each
/// connection applies those it does not find in `schema_migrations`, in one
/// transaction under an advisory lock, so concurrent cold starts do not race
/// on DDL and a half-applied migration never stays.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_calendar_and_entries", include_str!("../../../migrations/0001_calendar_and_entries.sql")),
    ("0002_retired_event_ids", include_str!("../../../migrations/0002_retired_event_ids.sql")),
    ("0003_the_line", include_str!("../../../migrations/0003_the_line.sql")),
    ("0004_the_line_without_pauses", include_str!("../../../migrations/0004_the_line_without_pauses.sql")),
    ("0005_function_roles", include_str!("../../../migrations/0005_function_roles.sql")),
    ("0006_line_draws", include_str!("../../../migrations/0006_line_draws.sql")),
    ("0007_sealed_draws", include_str!("../../../migrations/0007_sealed_draws.sql")),
    ("0008_gate_tags", include_str!("../../../migrations/0008_gate_tags.sql")),
];

/// The roles 0005 creates, one per function that reads or writes the
/// database; the only roles db-setup gives a password.
pub const FUNCTION_ROLES: [&str; 3] = ["fanrush_writer", "fanrush_admin", "fanrush_scheduler"];

/// Applies the migrations `client` has not seen (its search path decides
/// the schema).
async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(727274);
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version    text PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await?;
    let applied: Vec<String> =
        tx.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    for (version, sql) in MIGRATIONS {
        if applied.iter().any(|a| a == version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version]).await?;
    }
    tx.commit().await
}

/// The migrations `client`'s schema lacks, for a role that may not apply
/// them (no table at all counts as none applied).
async fn missing_migrations(client: &Client) -> Result<Vec<&'static str>, tokio_postgres::Error> {
    let applied: Vec<String> = match client.query("SELECT version FROM schema_migrations", &[]).await {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(MIGRATIONS.iter().map(|(v, _)| *v).filter(|v| !applied.iter().any(|a| a == v)).collect())
}

/// Who brings the schema up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Migrations {
    /// This connection applies what is missing (the owner: local runs,
    /// tests, a bring-your-own database, db-setup).
    #[default]
    Apply,
    /// The schema must be current already: a function's own role, which
    /// may not create tables. A missing migration is an outage until
    /// db-setup runs ([`StoreError::NotMigrated`]).
    Expect,
}

/// Most rows one insert statement carries (5 parameters each, well under
/// PostgreSQL's 65,535).
const MAX_ROWS_PER_INSERT: usize = 1024;

/// How a batch is inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Insert {
    /// A plain multi-row insert: the common case, a first delivery.
    Plain,
    /// The same rows, skipping those already stored (a redelivery).
    SkipStored,
}

/// A multi-row insert of `rows` entries. A VALUES list measured ~1.5x faster
/// than `unnest` of arrays, and `ON CONFLICT` costs ~5 us a row, so it is
/// only used to retry a batch that met rows already stored.
fn insert_entries_sql(rows: usize, mode: Insert) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| format!("(${}, ${}, ${}, ${}, ${})", 5 * i + 1, 5 * i + 2, 5 * i + 3, 5 * i + 4, 5 * i + 5))
        .collect();
    let on_conflict = match mode {
        Insert::Plain => "",
        Insert::SkipStored => " ON CONFLICT (event_id, fan_id) DO NOTHING",
    };
    format!(
        "INSERT INTO entries (event_id, fan_id, position, note, accepted_at) VALUES {}{on_conflict}",
        values.join(", ")
    )
}

const EVENT_COLUMNS: &str = "event_id, title, opens_at, closes_at, capacity, expected_peak_rps, lead_minutes, \
     cooldown_minutes, admissions_per_second, prequeue_minutes";

/// What [`Database::upsert_event`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    /// Nothing: the id belongs to a deleted event.
    Retired,
}

/// Store failures.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be reached or is not accepting work right now.
    #[error("postgres is unavailable: {}", describe(.0))]
    Unavailable(tokio_postgres::Error),
    /// The database refused these rows (a constraint, bad data).
    #[error("postgres refused the statement: {}", describe(.0))]
    Rejected(tokio_postgres::Error),
    #[error("bad database configuration: {0}")]
    Config(String),
    /// The password could not be read: like an outage, retry later.
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("a stored row is invalid: {0}")]
    Corrupt(String),
    /// The schema lacks migrations this role may not apply: run
    /// db-setup (docs/deploy.md). Retried like an outage.
    #[error("the database schema lacks migrations {0:?}: run db-setup")]
    NotMigrated(Vec<&'static str>),
}

/// The database's own words: SQLSTATE, message and detail for an error the
/// server sent (tokio-postgres displays only "db error"), the cause chain
/// for a client-side one. Neither ever holds the password.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("SQLSTATE {} {}", db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

impl StoreError {
    fn from_pg(e: tokio_postgres::Error) -> Self {
        let transient = match e.code() {
            None => true,
            // 08 connection, 57 operator intervention (shutdown), 53 resources, 40 rollback
            Some(code) => ["08", "57", "53", "40"].iter().any(|class| code.code().starts_with(class)),
        };
        if transient || e.is_closed() {
            Self::Unavailable(e)
        } else {
            Self::Rejected(e)
        }
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Secret(_) | Self::NotMigrated(_))
    }

    /// True when the refusal was a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Rejected(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION))
    }
}

/// Connect settings once the secret is read.
struct Ready {
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

async fn watch<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(conn: F) {
    if let Err(e) = conn.await {
        tracing::warn!(error = %e, "postgres connection closed");
    }
}

/// A password secret is either the password itself or, as RDS and Secrets
/// Manager rotation store it, JSON with `password` (and `username`).
pub fn credentials(secret: &str) -> (Option<String>, String) {
    match serde_json::from_str::<serde_json::Value>(secret) {
        Ok(v) if v["password"].is_string() => {
            (v["username"].as_str().map(str::to_owned), v["password"].as_str().unwrap_or_default().to_owned())
        }
        _ => (None, secret.to_owned()),
    }
}

/// rustls with the system roots plus `extra_pem`; certificate and host name
/// are always verified.
fn tls_connector(extra_pem: Option<&[u8]>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(pem) = extra_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| StoreError::Config(format!("DATABASE_CA_FILE: {e}")))?;
            roots.add(cert).map_err(|e| StoreError::Config(format!("DATABASE_CA_FILE: {e}")))?;
        }
    }
    if roots.is_empty() {
        return Err(StoreError::Config("sslmode=require but no root certificates were found".into()));
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

struct Connection {
    client: Client,
    /// Insert statements by row count, prepared on first use. Batch sizes
    /// repeat (the event source fills batches up to its size), so this stays
    /// small; padding to fewer sizes was measured slower (each padding row is
    /// a conflict PostgreSQL must resolve).
    inserts: std::sync::Mutex<std::collections::HashMap<(usize, Insert), Statement>>,
}

/// A lazily connected PostgreSQL database.
pub struct Database {
    config: tokio_postgres::Config,
    schema: Option<String>,
    connection: Mutex<Option<Arc<Connection>>>,
    password: SecretSource,
    root_certificates: Option<Vec<u8>>,
    migrations: Migrations,
    ready: OnceCell<Ready>,
}

impl Database {
    /// Parses the URL; does not connect. `schema`, when set, is created and
    /// used as the search path (tests isolate themselves this way).
    pub fn new(url: &str, schema: Option<String>, connect_timeout: Duration) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Config(format!("{e}")))?;
        config.connect_timeout(connect_timeout);
        config.application_name("fanrush");
        if let Some(s) = &schema {
            if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || s.is_empty() {
                return Err(StoreError::Config(format!("schema name {s:?} must be [A-Za-z0-9_]+")));
            }
        }
        Ok(Self {
            config,
            schema,
            connection: Mutex::new(None),
            password: SecretSource::None,
            root_certificates: None,
            migrations: Migrations::Apply,
            ready: OnceCell::new(),
        })
    }

    /// The password from a secret (Secrets Manager, read at each new
    /// connection) instead of the URL's own.
    pub fn with_password(mut self, password: SecretSource) -> Self {
        self.password = password;
        self
    }

    /// Whether connections apply missing migrations or expect none.
    pub fn with_migrations(mut self, migrations: Migrations) -> Self {
        self.migrations = migrations;
        self
    }

    /// PEM roots to verify the server's certificate against (the RDS bundle
    /// when not going through RDS Proxy); loaded on the first connect.
    pub fn with_root_certificates(mut self, pem: Vec<u8>) -> Self {
        self.root_certificates = Some(pem);
        self
    }

    /// The TLS connector when the URL asks for TLS; built once, on the first
    /// connect.
    async fn ready(&self) -> Result<&Ready, StoreError> {
        self.ready
            .get_or_try_init(|| async {
                let tls = match self.config.get_ssl_mode() {
                    SslMode::Require => Some(tls_connector(self.root_certificates.as_deref())?),
                    _ => None,
                };
                Ok(Ready { tls })
            })
            .await
    }

    /// The connect settings with the password read now.
    async fn credentials(&self) -> Result<tokio_postgres::Config, StoreError> {
        let mut config = self.config.clone();
        if let Some(secret) = self.password.resolve().await? {
            let (user, password) = credentials(secret.expose());
            if let Some(user) = user {
                config.user(user);
            }
            config.password(password);
        }
        Ok(config)
    }

    async fn connection(&self) -> Result<Arc<Connection>, StoreError> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(c.clone());
        }
        let ready = self.ready().await?;
        let config = self.credentials().await?;
        let client = match &ready.tls {
            Some(tls) => {
                let (client, conn) = config.connect(tls.clone()).await.map_err(StoreError::Unavailable)?;
                tokio::spawn(watch(conn));
                client
            }
            None => {
                let (client, conn) = config.connect(NoTls).await.map_err(StoreError::Unavailable)?;
                tokio::spawn(watch(conn));
                client
            }
        };
        let mut client = client;
        match self.migrations {
            Migrations::Apply => {
                if let Some(schema) = &self.schema {
                    let sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}");
                    client.batch_execute(&sql).await.map_err(StoreError::from_pg)?;
                }
                migrate(&mut client).await.map_err(StoreError::from_pg)?;
            }
            // A function's role may not create schemas or tables.
            Migrations::Expect => {
                if let Some(schema) = &self.schema {
                    client.batch_execute(&format!("SET search_path TO {schema}")).await.map_err(StoreError::from_pg)?;
                }
                let missing = missing_migrations(&client).await.map_err(StoreError::from_pg)?;
                if !missing.is_empty() {
                    return Err(StoreError::NotMigrated(missing));
                }
            }
        }
        let c = Arc::new(Connection { client, inserts: Default::default() });
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Drops the connection after a failure so the next call reconnects.
    async fn on_error(&self, e: tokio_postgres::Error) -> StoreError {
        let e = StoreError::from_pg(e);
        if e.is_unavailable() {
            *self.connection.lock().await = None;
        }
        e
    }

    /// Connects and migrates now (setup and tests; functions connect lazily).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.connection().await.map(|_| ())
    }

    /// Lets `role`, one of [`FUNCTION_ROLES`], log in with `password`. The
    /// server gets a SCRAM-SHA-256 verifier computed here, never the
    /// password itself (a statement log keeps no secret).
    pub async fn set_role_password(&self, role: &str, password: &str) -> Result<(), StoreError> {
        if !FUNCTION_ROLES.contains(&role) {
            return Err(StoreError::Config(format!("{role:?} is not one of the functions' roles {FUNCTION_ROLES:?}")));
        }
        if password.is_empty() {
            return Err(StoreError::Config(format!("the password for {role} is empty")));
        }
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        // A verifier is base64 and '$', ':': nothing to escape in a literal.
        let sql = format!("ALTER ROLE {role} WITH LOGIN PASSWORD '{verifier}'");
        let c = self.connection().await?;
        c.client.batch_execute(&sql).await.map_err(StoreError::from_pg)
    }

    /// Inserts entries in one round trip (per 1,024 rows); an entry already
    /// stored for the same fan is skipped, so redelivery never duplicates a
    /// row. Returns how many rows were new.
    pub async fn insert_entries(&self, entries: &[Entry]) -> Result<u64, StoreError> {
        let mut written = 0;
        for chunk in entries.chunks(MAX_ROWS_PER_INSERT) {
            written += self.insert_chunk(chunk).await?;
        }
        Ok(written)
    }

    /// One statement, one round trip: a plain insert, and only if some row
    /// is already stored (SQS delivered the message again) the same rows once
    /// more, skipping those.
    async fn insert_chunk(&self, entries: &[Entry]) -> Result<u64, StoreError> {
        match self.insert_rows(entries, Insert::Plain).await {
            Err(e) if e.is_unique_violation() => self.insert_rows(entries, Insert::SkipStored).await,
            other => other,
        }
    }

    async fn insert_rows(&self, entries: &[Entry], mode: Insert) -> Result<u64, StoreError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let c = self.connection().await?;
        let key = (entries.len(), mode);
        let cached = c.inserts.lock().unwrap().get(&key).cloned();
        let statement = match cached {
            Some(s) => s,
            None => match c.client.prepare(&insert_entries_sql(key.0, mode)).await {
                Ok(s) => {
                    c.inserts.lock().unwrap().insert(key, s.clone());
                    s
                }
                Err(e) => return Err(self.on_error(e).await),
            },
        };
        // The columns as the statement's parameters borrow them.
        let events: Vec<&str> = entries.iter().map(|e| e.event_id.as_str()).collect();
        let fans: Vec<&str> = entries.iter().map(|e| e.fan_id.as_str()).collect();
        let notes: Vec<Option<&str>> = entries.iter().map(|e| e.note.as_deref()).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(key.0 * 5);
        for (i, e) in entries.iter().enumerate() {
            params.extend([&events[i] as &(dyn ToSql + Sync), &fans[i], &e.position, &notes[i], &e.accepted_at]);
        }
        match c.client.execute(&statement, &params).await {
            Ok(n) => Ok(n),
            Err(e) => Err(self.on_error(e).await),
        }
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let c = self.connection().await?;
        match c.client.query(sql, params).await {
            Ok(rows) => Ok(rows),
            Err(e) => Err(self.on_error(e).await),
        }
    }

    /// Whether a fan's entry is stored.
    pub async fn entry_exists(&self, event: &EventId, fan: &FanId) -> Result<bool, StoreError> {
        let rows = self
            .query("SELECT 1 FROM entries WHERE event_id = $1 AND fan_id = $2", &[&event.as_str(), &fan.as_str()])
            .await?;
        Ok(!rows.is_empty())
    }

    /// Every stored entry of an event, by position (checks and tests; a
    /// restore pages through them with [`Database::entries_after`]).
    pub async fn entries(&self, event: &EventId) -> Result<Vec<Entry>, StoreError> {
        self.entries_after(event, 0, i64::MAX).await
    }

    /// At most `limit` stored entries of an event after `position`, by
    /// position: keyset pages on the `(event_id, position)` index, so memory
    /// stays bounded however large the event.
    pub async fn entries_after(
        &self,
        event: &EventId,
        position: Position,
        limit: i64,
    ) -> Result<Vec<Entry>, StoreError> {
        let rows = self
            .query(
                "SELECT fan_id, position, note, accepted_at FROM entries WHERE event_id = $1 AND position > $2
                 ORDER BY position LIMIT $3",
                &[&event.as_str(), &position, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Entry {
                    event_id: event.clone(),
                    fan_id: FanId::parse(r.get(0)).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    position: r.get::<_, Position>(1),
                    note: r.get(2),
                    accepted_at: r.get(3),
                })
            })
            .collect()
    }

    /// How many entries an event holds and its highest position.
    pub async fn entry_totals(&self, event: &EventId) -> Result<(i64, Position), StoreError> {
        let rows = self
            .query("SELECT count(*), coalesce(max(position), 0) FROM entries WHERE event_id = $1", &[&event.as_str()])
            .await?;
        Ok((rows[0].get(0), rows[0].get(1)))
    }

    /// How many entries of an event are stored.
    pub async fn written_count(&self, event: &EventId) -> Result<i64, StoreError> {
        let rows = self.query("SELECT count(*) FROM entries WHERE event_id = $1", &[&event.as_str()]).await?;
        Ok(rows[0].get(0))
    }

    /// Creates or replaces an event definition, unless its id is retired. A
    /// new event's line seed is `seed`; an existing one keeps its own. The
    /// seed the event holds comes back with the outcome.
    pub async fn upsert_event(&self, e: &FanEvent, seed: &str) -> Result<(Upserted, String), StoreError> {
        let lead = e.lead_minutes.map(|m| m as i32);
        let cooldown = e.cooldown_minutes.map(|m| m as i32);
        let rate = e.line.map(|l| l.admissions_per_second);
        let prequeue = e.line.map(|l| l.prequeue_minutes as i32);
        let rows = self
            .query(
                "INSERT INTO fan_events (event_id, title, opens_at, closes_at, capacity, expected_peak_rps, lead_minutes,
                   cooldown_minutes, admissions_per_second, prequeue_minutes, line_seed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (event_id) DO UPDATE SET title = EXCLUDED.title, opens_at = EXCLUDED.opens_at,
                   closes_at = EXCLUDED.closes_at, capacity = EXCLUDED.capacity,
                   expected_peak_rps = EXCLUDED.expected_peak_rps, lead_minutes = EXCLUDED.lead_minutes,
                   cooldown_minutes = EXCLUDED.cooldown_minutes, admissions_per_second = EXCLUDED.admissions_per_second,
                   prequeue_minutes = EXCLUDED.prequeue_minutes, updated_at = now()
                 WHERE fan_events.deleted_at IS NULL
                 RETURNING (xmax = 0) AS created, line_seed",
                &[
                    &e.id.as_str(),
                    &e.title,
                    &e.opens_at,
                    &e.closes_at,
                    &e.capacity,
                    &e.expected_peak_rps,
                    &lead,
                    &cooldown,
                    &rate,
                    &prequeue,
                    &seed,
                ],
            )
            .await?;
        Ok(match rows.first().map(|r| (r.get::<_, bool>(0), r.get::<_, String>(1))) {
            Some((true, seed)) => (Upserted::Created, seed),
            Some((false, seed)) => (Upserted::Updated, seed),
            None => (Upserted::Retired, String::new()),
        })
    }

    /// Stores the hash tag an event's gate keys carry, unless it has one:
    /// a tag is never changed. The tag the event holds comes back (none for
    /// an event that is not stored).
    pub async fn keep_gate_tag(&self, id: &EventId, tag: &str) -> Result<Option<String>, StoreError> {
        let rows = self
            .query(
                "UPDATE fan_events SET gate_tag = COALESCE(gate_tag, $2) WHERE event_id = $1 RETURNING gate_tag",
                &[&id.as_str(), &tag],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// The hash tag of every event of the calendar (deleted ones left
    /// out): the one stored, else the id.
    pub async fn gate_tags(&self) -> Result<Vec<(EventId, String)>, StoreError> {
        let rows = self
            .query(
                "SELECT event_id, COALESCE(gate_tag, event_id) FROM fan_events WHERE deleted_at IS NULL ORDER BY event_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id = EventId::parse(r.get(0)).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((id, r.get(1)))
            })
            .collect()
    }

    /// The line's seed of an event (deleted or not), if it exists: the
    /// pre-queue's secret shuffle seed, fixed at creation.
    pub async fn line_seed(&self, id: &EventId) -> Result<Option<String>, StoreError> {
        let rows = self.query("SELECT line_seed FROM fan_events WHERE event_id = $1", &[&id.as_str()]).await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    /// True when an event with this id was deleted: the id is not reusable.
    pub async fn is_retired(&self, id: &EventId) -> Result<bool, StoreError> {
        let rows = self
            .query("SELECT 1 FROM fan_events WHERE event_id = $1 AND deleted_at IS NOT NULL", &[&id.as_str()])
            .await?;
        Ok(!rows.is_empty())
    }

    /// One event definition.
    pub async fn event(&self, id: &EventId) -> Result<Option<FanEvent>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {EVENT_COLUMNS} FROM fan_events WHERE event_id = $1 AND deleted_at IS NULL"),
                &[&id.as_str()],
            )
            .await?;
        rows.first().map(event_from_row).transpose()
    }

    /// The whole calendar (deleted events left out), by opening time.
    pub async fn events(&self) -> Result<Vec<FanEvent>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {EVENT_COLUMNS} FROM fan_events WHERE deleted_at IS NULL ORDER BY opens_at, event_id"),
                &[],
            )
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Stores an event's revealed draw: its seed, its digest and its
    /// pre-queued fans' references in the order the gate counted them.
    /// Written once: a draw already stored is kept as it was (false).
    pub async fn store_draw(
        &self,
        id: &EventId,
        seed: &str,
        digest: &str,
        fans: &[FanRef],
    ) -> Result<bool, StoreError> {
        let bytes: Vec<u8> = fans.concat();
        let rows = self
            .query(
                "INSERT INTO line_draws (event_id, seed, digest, fans) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (event_id) DO NOTHING RETURNING 1",
                &[&id.as_str(), &seed, &digest, &bytes],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// An event's revealed draw, if it was stored.
    pub async fn draw(&self, id: &EventId) -> Result<Option<StoredDraw>, StoreError> {
        let rows = self
            .query("SELECT seed, digest, fans, revealed_at FROM line_draws WHERE event_id = $1", &[&id.as_str()])
            .await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let bytes: Vec<u8> = row.get(2);
        let fans = bytes.chunks_exact(8).map(|c| c.try_into().expect("8 bytes")).collect();
        Ok(Some(StoredDraw { seed: row.get(0), digest: row.get(1), fans, revealed_at: row.get(3) }))
    }

    /// The events whose draws were stored, of those named.
    pub async fn drawn(&self, ids: &[&str]) -> Result<Vec<String>, StoreError> {
        let rows = self.query("SELECT event_id FROM line_draws WHERE event_id = ANY($1)", &[&ids]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Deletes an event definition; true when it existed. Its entries stay
    /// (they are the record of who was accepted) and its id is retired.
    pub async fn delete_event(&self, id: &EventId) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "UPDATE fan_events SET deleted_at = now() WHERE event_id = $1 AND deleted_at IS NULL RETURNING 1",
                &[&id.as_str()],
            )
            .await?;
        Ok(!rows.is_empty())
    }
}

/// A revealed draw as stored: the seed, the digest it was sealed with, the
/// fans in the order counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDraw {
    pub seed: String,
    pub digest: String,
    pub fans: Vec<FanRef>,
    pub revealed_at: DateTime<Utc>,
}

fn event_from_row(r: &Row) -> Result<FanEvent, StoreError> {
    Ok(FanEvent {
        id: EventId::parse(r.get(0)).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        title: r.get(1),
        opens_at: r.get(2),
        closes_at: r.get(3),
        capacity: r.get(4),
        expected_peak_rps: r.get(5),
        lead_minutes: r.get::<_, Option<i32>>(6).map(i64::from),
        cooldown_minutes: r.get::<_, Option<i32>>(7).map(i64::from),
        line: r.get::<_, Option<i64>>(8).map(|admissions_per_second| LineSettings {
            admissions_per_second,
            prequeue_minutes: r.get::<_, Option<i32>>(9).map_or(0, i64::from),
        }),
    })
}
