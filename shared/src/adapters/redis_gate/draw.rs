//! Reading an event's pre-queue draw for its reveal: who was counted in it
//! (`P:ev:{E}:draw`, in the order counted) and the digest it was sealed with.
//!
//! Read in `GETRANGE` pages, so a large draw costs the event's core many
//! small reads rather than one long one; the fence is checked before and
//! after, so a list read across a failover is never taken as the draw. A
//! draw is complete only when the list read hashes to the sealed digest
//! and the line was not restored since its pre-queue opened (a flush, a
//! failover's last writes may have lost who was counted).

use super::{DrawSeed, EntryGate, GateError};
use crate::rules::domain::EventId;
use crate::rules::line::draw::{digest, FanRef};

/// Fans per `GETRANGE` page: a page costs the core well under a millisecond.
const PAGE: usize = 8_192;

/// An event's pre-queue draw as the gate holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prequeue {
    pub draw: DrawSeed,
    /// The fans counted in the draw, in the order counted.
    pub fans: Vec<FanRef>,
    /// The draw was sealed, the list hashes to its digest, and the line was
    /// not restored since its pre-queue opened.
    pub complete: bool,
}

impl EntryGate {
    /// The pre-queue draw of an event with a line; `None` for an event the
    /// gate does not hold or that has no line.
    pub async fn prequeue(&self, id: &EventId) -> Result<Option<Prequeue>, GateError> {
        let Some(draw) = self.event(id).await?.and_then(|v| v.draw) else { return Ok(None) };
        let k = self.keys_of(id).await?;
        let mut bytes: Vec<u8> = Vec::new();
        loop {
            let from = bytes.len();
            let page: Vec<u8> = self
                .redis
                .run(|mut c, _| {
                    let key = k.draw.clone();
                    async move {
                        redis::cmd("GETRANGE").arg(&key).arg(from).arg(from + PAGE * 8 - 1).query_async(&mut c).await
                    }
                })
                .await?;
            let done = page.len() < PAGE * 8;
            bytes.extend(page);
            if done {
                break;
            }
        }
        if !bytes.len().is_multiple_of(8) {
            return Err(GateError::Protocol(format!("a pre-queue draw of {} bytes", bytes.len())));
        }
        let fans: Vec<FanRef> = bytes.chunks_exact(8).map(|c| c.try_into().expect("8 bytes")).collect();
        let meta = k.meta;
        let (opened, restored): (Option<i64>, Option<i64>) = self
            .redis
            .run(|mut c, _| {
                let meta = meta.clone();
                async move {
                    redis::cmd("HMGET").arg(&meta).arg("linePrequeueMs").arg("lineRestoredAt").query_async(&mut c).await
                }
            })
            .await?;
        let restored_since = match (opened, restored) {
            (Some(opened), Some(restored)) => restored >= opened,
            _ => false,
        };
        let complete = !restored_since && draw.digest.as_deref() == Some(digest(&fans).as_str());
        // The state is still the one the list was read from.
        self.event(id).await?;
        Ok(Some(Prequeue { draw, fans, complete }))
    }
}
