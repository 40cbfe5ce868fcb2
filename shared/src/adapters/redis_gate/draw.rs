//! Reading an event's pre-queue for its draw's reveal: who was counted in
//! the pre-queue (`P:ev:E:joined` fields valued `p`), with the seed.
//!
//! Read in `HSCAN` pages, so a large pre-queue costs the event's core many
//! small reads rather than one long one; the fence is checked before and
//! after, so a list read across a failover is never taken as the draw. A
//! line restored since its pre-queue opened may have lost who was counted
//! (a flush, a failover's last writes): its list is marked incomplete.

use super::{DrawSeed, EntryGate, GateError};
use crate::rules::domain::EventId;
use crate::rules::line::draw::FanRef;

/// Fields per `HSCAN` page: a page costs the core well under a millisecond.
const PAGE: usize = 1000;

/// An event's pre-queue as the gate counted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prequeue {
    pub draw: DrawSeed,
    pub fans: Vec<FanRef>,
    /// False when the line was restored after its pre-queue opened.
    pub complete: bool,
}

impl EntryGate {
    /// The pre-queue of an event with a line; `None` for an event the gate
    /// does not hold or that has no line.
    pub async fn prequeue(&self, id: &EventId) -> Result<Option<Prequeue>, GateError> {
        let Some(draw) = self.event(id).await?.and_then(|v| v.draw) else { return Ok(None) };
        let joined = self.event_keys(id).joined;
        let mut fans = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<Vec<u8>>) = self
                .redis
                .run(|mut c, _| {
                    let joined = joined.clone();
                    async move {
                        redis::cmd("HSCAN").arg(&joined).arg(cursor).arg("COUNT").arg(PAGE).query_async(&mut c).await
                    }
                })
                .await?;
            for pair in page.chunks(2) {
                if let [field, bucket] = pair {
                    if bucket.as_slice() == b"p" {
                        let fan: FanRef = field.as_slice().try_into().map_err(|_| {
                            GateError::Protocol(format!("a pre-queue fan hash of {} bytes", field.len()))
                        })?;
                        fans.push(fan);
                    }
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let meta = self.event_keys(id).meta;
        let (opened, restored): (Option<i64>, Option<i64>) = self
            .redis
            .run(|mut c, _| {
                let meta = meta.clone();
                async move {
                    redis::cmd("HMGET").arg(&meta).arg("linePrequeueMs").arg("lineRestoredAt").query_async(&mut c).await
                }
            })
            .await?;
        let complete = match (opened, restored) {
            (Some(opened), Some(restored)) => restored < opened,
            _ => true,
        };
        // The state is still the one the list was read from.
        self.event(id).await?;
        Ok(Some(Prequeue { draw, fans, complete }))
    }
}
