//! The line's ticket keys, read through a secret source and cached: the
//! current key signs, the current and the previous one verify (Secrets
//! Manager's `AWSCURRENT` and `AWSPREVIOUS`).

use crate::adapters::secrets::SecretSource;
use crate::rules::line::TicketKeys;
use std::time::{Duration, Instant};

/// How often the ticket keys are read again (the secrets extension caches
/// them for 300 s by default), and at most how often an unknown key id
/// makes them be read early.
const KEYS_TTL: Duration = Duration::from_secs(300);
const KEYS_REFRESH_GAP: Duration = Duration::from_secs(10);

/// The ticket signing keys, read through a secret source and cached.
pub struct TicketKeyring {
    current: SecretSource,
    /// A local stand-in for `AWSPREVIOUS` (the extension reads that itself).
    previous: SecretSource,
    cached: tokio::sync::Mutex<Option<(TicketKeys, Instant)>>,
}

impl TicketKeyring {
    pub fn new(current: SecretSource, previous: SecretSource) -> Self {
        Self { current, previous, cached: tokio::sync::Mutex::new(None) }
    }

    /// No keys: events with a line answer 503 until one is configured.
    pub fn none() -> Self {
        Self::new(SecretSource::None, SecretSource::None)
    }

    /// The keys; `refresh` reads them again when the cached ones are older
    /// than the refresh gap (a ticket named a key this copy does not hold).
    pub async fn keys(&self, refresh: bool) -> Result<TicketKeys, String> {
        let mut cached = self.cached.lock().await;
        if let Some((keys, at)) = cached.as_ref() {
            let fresh = at.elapsed() < KEYS_TTL;
            if fresh && !(refresh && at.elapsed() >= KEYS_REFRESH_GAP) {
                return Ok(keys.clone());
            }
        }
        let current = self.current.resolve().await.map_err(|e| e.to_string())?;
        let Some(current) = current.filter(|c| !c.expose().is_empty()) else {
            return Err("no ticket key is configured (LINE_TICKET_SECRET_ID)".into());
        };
        let previous = match self.previous.resolve().await.map_err(|e| e.to_string())? {
            Some(p) => Some(p),
            None => self.current.resolve_previous().await.map_err(|e| e.to_string())?,
        };
        let keys = TicketKeys::new(current.expose().as_bytes(), previous.as_ref().map(|p| p.expose().as_bytes()));
        *cached = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }
}
