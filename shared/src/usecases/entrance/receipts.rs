//! The receipt keys, read through a secret source and kept: the current
//! key signs an admitted fan's receipt, the current and the previous one
//! are published (`GET /receipt-keys`), as Secrets Manager's `AWSCURRENT`
//! and `AWSPREVIOUS`.
//!
//! A receipt is a courtesy on top of an entry that is already queued: when
//! the keys cannot be read, the answer goes out without one (counted as
//! `ReceiptsUnsigned`), and the fan's `GET /entries/me` gives it later.

use crate::adapters::secrets::{Cache, SecretSource};
use crate::rules::line::receipt::ReceiptKeys;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long keys read are kept: the extension's own cache time, as for the
/// ticket keys ([`super::keyring::KEYS_TTL`]).
pub use super::keyring::KEYS_TTL as RECEIPT_KEYS_TTL;

/// While the keys cannot be read, the least time between two attempts, so
/// a failing extension costs a call a second, not one per answer.
const RETRY_GAP: Duration = Duration::from_secs(1);

/// The receipt keys, read when first needed and again past their time.
pub struct ReceiptKeyring {
    current: SecretSource,
    previous: SecretSource,
    ttl: Duration,
    read: tokio::sync::Mutex<Read>,
}

#[derive(Default)]
struct Read {
    keys: Option<(Arc<ReceiptKeys>, Instant)>,
    retry_at: Option<Instant>,
}

impl ReceiptKeyring {
    pub fn new(current: SecretSource, previous: SecretSource, ttl: Duration) -> Self {
        Self { current, previous, ttl, read: tokio::sync::Mutex::new(Read::default()) }
    }

    /// No keys: answers go without receipts.
    pub fn none() -> Self {
        Self::new(SecretSource::None, SecretSource::None, RECEIPT_KEYS_TTL)
    }

    /// The keys, read again once `ttl` old; the last ones read while a new
    /// read fails; an error when none were ever read.
    pub async fn keys(&self) -> Result<Arc<ReceiptKeys>, String> {
        let mut read = self.read.lock().await;
        let fresh = read.keys.as_ref().filter(|(_, at)| at.elapsed() < self.ttl);
        if let Some((keys, _)) = fresh {
            return Ok(keys.clone());
        }
        if read.retry_at.is_none_or(|t| Instant::now() >= t) {
            match self.read_keys().await {
                Ok(keys) => {
                    let keys = Arc::new(keys);
                    read.keys = Some((keys.clone(), Instant::now()));
                    read.retry_at = None;
                    return Ok(keys);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "receipt keys unreadable");
                    read.retry_at = Some(Instant::now() + RETRY_GAP);
                }
            }
        }
        read.keys.as_ref().map(|(k, _)| k.clone()).ok_or_else(|| "the receipt keys could not be read".into())
    }

    async fn read_keys(&self) -> Result<ReceiptKeys, String> {
        let keys = self.current.resolve_rotated(&self.previous, Cache::Use).await.map_err(|e| e.to_string())?;
        let (current, previous) = keys.ok_or("no receipt key is configured (RECEIPT_SECRET_ID)")?;
        Ok(ReceiptKeys::new(current.expose().as_bytes(), previous.as_ref().map(|p| p.expose().as_bytes())))
    }
}
