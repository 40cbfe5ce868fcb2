//! The line's ticket keys, read through a secret source and kept: the
//! current key signs, the current and the previous one verify (Secrets
//! Manager's `AWSCURRENT` and `AWSPREVIOUS`).
//!
//! A rotation reaches environments at different times (each extension
//! caches the secret), so a ticket may name a key this one has not read
//! yet. It is never refused for that: the keys are read again past the
//! extension's cache ([`TicketKeyring::recheck`]), at most every
//! [`KEYS_RECHECK_GAP`], and until that read says the key is not Secrets
//! Manager's the fan is asked to retry (503) and keeps its place. When the
//! keys cannot be read at all, the last ones read keep serving for
//! [`KEYS_KEPT_ON_OUTAGE`], and the read is tried again once a second
//! ([`KEYS_RETRY_GAP`]), not on every request.

use crate::adapters::secrets::{Cache, SecretSource};
use crate::rules::line::{TicketKeys, TICKET_TTL};
use std::time::{Duration, Instant};

/// How often the ticket keys are read again by default: the extension
/// caches them for 300 s by default (its `SECRETS_MANAGER_TTL`), so reading
/// more often would not see a rotation sooner. [`TicketKeyring::with_ttl`]
/// follows an extension configured otherwise.
pub const KEYS_TTL: Duration = Duration::from_secs(300);

/// The least time between two reads past the extension's cache, each a
/// `GetSecretValue` call (Secrets Manager bills and throttles them): a
/// flood of tickets naming a made-up key costs one call per environment
/// in this time, not one each.
pub const KEYS_RECHECK_GAP: Duration = Duration::from_secs(10);

/// How long the last keys read keep serving when reading them fails (the
/// extension or Secrets Manager down): a ticket's own life, so no waiting
/// fan loses its place to the outage. Past it the line answers 503. Each
/// answer given on such keys counts `TicketKeysStale` (an alarm).
pub const KEYS_KEPT_ON_OUTAGE: Duration = TICKET_TTL;

/// While the keys cannot be read, how long the kept ones serve before the
/// next attempt: a failing extension (or Secrets Manager behind it) is
/// asked once a second per environment, not on every fan's request, which
/// would add its timeout to every answer for as long as it fails.
const KEYS_RETRY_GAP: Duration = Duration::from_secs(1);

/// How soon a fan whose ticket could not be judged asks again: soon, since
/// its next call most likely reaches another environment (one that knows
/// the key, or may read it), and a grant waiting for it lapses after 5 s.
const UNDECIDED_RETRY: Duration = Duration::from_secs(1);

/// A ticket signed this long after the keys were read is not judged by them:
/// the issuing environment's clock may run ahead of this one's.
const CLOCK_SKEW_S: i64 = 2;

/// What a second look at the keys says about a ticket whose key was unknown.
#[derive(Debug)]
pub enum Recheck {
    /// Keys read from Secrets Manager since the ticket was issued: judge it
    /// by these (a key they do not hold is not fanrush's).
    Judge(TicketKeys),
    /// The keys could not be read past the cache yet: ask the fan to retry
    /// after this long (it likely reaches another environment), with its
    /// place kept.
    Undecided(Duration),
}

/// The ticket signing keys, read through a secret source and kept.
pub struct TicketKeyring {
    current: SecretSource,
    /// A local stand-in for `AWSPREVIOUS` (the extension reads that itself).
    previous: SecretSource,
    read: tokio::sync::Mutex<Read>,
    ttl: Duration,
}

#[derive(Default)]
struct Read {
    keys: Option<(TicketKeys, Instant)>,
    /// When the keys were last read past the cache: the instant (for the
    /// gap) and the Unix second (to compare with a ticket's issue time).
    bypassed: Option<(Instant, i64)>,
    /// The last read failed: no new attempt before this.
    retry_at: Option<Instant>,
}

impl TicketKeyring {
    pub fn new(current: SecretSource, previous: SecretSource) -> Self {
        Self { current, previous, read: tokio::sync::Mutex::new(Read::default()), ttl: KEYS_TTL }
    }

    /// Reads the keys again once they are `ttl` old: the extension's own
    /// cache time (`SECRETS_MANAGER_TTL`), so a rotation is seen as soon as
    /// the extension sees it.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// No keys: events with a line answer 503 until one is configured.
    pub fn none() -> Self {
        Self::new(SecretSource::None, SecretSource::None)
    }

    /// The keys, read again once their time to live is up; when that read
    /// fails, the last ones read for up to [`KEYS_KEPT_ON_OUTAGE`]. A failed
    /// read is not tried again for [`KEYS_RETRY_GAP`], kept keys or none.
    pub async fn keys(&self) -> Result<TicketKeys, String> {
        let mut read = self.read.lock().await;
        if let Some((keys, at)) = &read.keys {
            if at.elapsed() < self.ttl {
                return Ok(keys.clone());
            }
        }
        let error = if read.retry_at.is_some_and(|t| Instant::now() < t) {
            format!("the ticket keys could not be read; the next attempt is within {KEYS_RETRY_GAP:?}")
        } else {
            match self.read_keys(Cache::Use).await {
                Ok(keys) => {
                    read.keys = Some((keys.clone(), Instant::now()));
                    read.retry_at = None;
                    return Ok(keys);
                }
                Err(e) => {
                    read.retry_at = Some(Instant::now() + KEYS_RETRY_GAP);
                    tracing::warn!(error = %e, "ticket keys unreadable");
                    e
                }
            }
        };
        match &read.keys {
            Some((keys, at)) if at.elapsed() < KEYS_KEPT_ON_OUTAGE => {
                metrics::counter!("TicketKeysStale").increment(1);
                Ok(keys.clone())
            }
            _ => Err(error),
        }
    }

    /// A second look for a ticket (issued at `issued_s`, as it claims)
    /// whose key was not among the keys: judged by keys read from Secrets
    /// Manager since it was issued, reading them past the cache if the gap
    /// allows; undecided while it does not, or the read fails.
    pub async fn recheck(&self, issued_s: i64, now_s: i64) -> Recheck {
        let mut read = self.read.lock().await;
        if let Some((at, at_s)) = read.bypassed {
            if let Some((keys, _)) = read.keys.as_ref().filter(|_| issued_s + CLOCK_SKEW_S < at_s) {
                return Recheck::Judge(keys.clone());
            }
            if at.elapsed() < KEYS_RECHECK_GAP {
                return Recheck::Undecided(UNDECIDED_RETRY);
            }
        }
        match self.read_keys(Cache::Bypass).await {
            Ok(keys) => {
                let now = Instant::now();
                read.keys = Some((keys.clone(), now));
                read.bypassed = Some((now, now_s));
                Recheck::Judge(keys)
            }
            Err(e) => {
                tracing::warn!(error = %e, "ticket keys unreadable past the cache; the fan retries");
                // The failed read counts against the gap too: an outage
                // costs one call per gap, not one per ticket.
                read.bypassed = read.bypassed.map(|(_, s)| (Instant::now(), s)).or(Some((Instant::now(), i64::MIN)));
                Recheck::Undecided(UNDECIDED_RETRY)
            }
        }
    }

    async fn read_keys(&self, cache: Cache) -> Result<TicketKeys, String> {
        let keys = self.current.resolve_rotated(&self.previous, cache).await.map_err(|e| e.to_string())?;
        let (current, previous) = keys.ok_or("no ticket key is configured (LINE_TICKET_SECRET_ID)")?;
        Ok(TicketKeys::new(current.expose().as_bytes(), previous.as_ref().map(|p| p.expose().as_bytes())))
    }
}
