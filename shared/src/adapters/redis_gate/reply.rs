//! Reading what the gate's scripts answer: a tag and its fields
//! ([`Reply`]), a nested answer with the line's state after it, and the
//! line's counts as raw `u32`s.

use super::GateError;
use crate::rules::domain::{Entry, EventId, FanId};
use chrono::{TimeZone, Utc};
use redis::{FromRedisValue, Value};

/// A script's answer: a tag, then its fields, as text.
pub(super) struct Reply(pub Vec<String>);

impl Reply {
    pub fn of(value: Value) -> Result<Self, GateError> {
        Vec::<String>::from_redis_value(value).map(Self).map_err(|e| GateError::Protocol(e.to_string()))
    }

    pub fn tag(&self) -> &str {
        self.0.first().map(String::as_str).unwrap_or_default()
    }

    pub fn field(&self, i: usize) -> Result<&str, GateError> {
        self.0.get(i).map(String::as_str).ok_or_else(|| self.unexpected())
    }

    pub fn int(&self, i: usize) -> Result<i64, GateError> {
        let s = self.field(i)?;
        s.parse().map_err(|_| GateError::Protocol(format!("not an integer: {s:?} in {:?}", self.0)))
    }

    /// `[tag, position, acceptedAtMs, hasNote, note]` as an entry.
    pub fn entry(&self, event: &EventId, fan: &FanId) -> Result<Entry, GateError> {
        let accepted_at = Utc
            .timestamp_millis_opt(self.int(2)?)
            .single()
            .ok_or_else(|| GateError::Protocol(format!("acceptedAt out of range: {:?}", self.0)))?;
        Ok(Entry {
            event_id: event.clone(),
            fan_id: fan.clone(),
            position: self.int(1)?,
            note: (self.field(3)? == "1").then(|| self.field(4).map(str::to_owned)).transpose()?,
            accepted_at,
        })
    }

    pub fn unexpected(&self) -> GateError {
        GateError::Protocol(format!("{:?}", self.0))
    }
}

/// A flat answer `[tag]`: how `state_lost` and `absent` come back from
/// every script, whatever its shape.
pub(super) fn tagged(value: &Value, tag: &str) -> bool {
    matches!(value, Value::Array(items)
        if matches!(items.first(), Some(Value::BulkString(b)) if b.as_slice() == tag.as_bytes()))
}

/// An answer nested with what follows it (`{answer, state}`), or a flat
/// answer alone.
pub(super) fn nested(value: Value) -> Result<(Reply, Option<Vec<Value>>), GateError> {
    match value {
        Value::Array(mut parts) if matches!(parts.first(), Some(Value::Array(_))) => {
            let rest = parts.split_off(1);
            let answer = Reply::of(parts.pop().unwrap_or(Value::Nil))?;
            let state = match rest.into_iter().next() {
                Some(Value::Array(items)) => Some(items),
                _ => None,
            };
            Ok((answer, state))
        }
        flat => Ok((Reply::of(flat)?, None)),
    }
}

/// A reply field as text.
pub(super) fn text_of(v: Option<&Value>, what: &str) -> Result<String, GateError> {
    match v {
        Some(Value::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        Some(Value::Int(n)) => Ok(n.to_string()),
        Some(Value::SimpleString(s)) => Ok(s.clone()),
        other => Err(GateError::Protocol(format!("{what}: {other:?}"))),
    }
}

pub(super) fn number_of(v: Option<&Value>, what: &str) -> Result<f64, GateError> {
    let s = text_of(v, what)?;
    s.parse().map_err(|_| GateError::Protocol(format!("{what}: not a number: {s:?}")))
}

pub(super) fn int_of(v: Option<&Value>, what: &str) -> Result<i64, GateError> {
    let s = text_of(v, what)?;
    s.parse().map_err(|_| GateError::Protocol(format!("{what}: not an integer: {s:?}")))
}

/// An array field of a reply.
pub(super) fn array_of<'a>(v: Option<&'a Value>, what: &str) -> Result<&'a [Value], GateError> {
    match v {
        Some(Value::Array(items)) => Ok(items),
        other => Err(GateError::Protocol(format!("{what}: {other:?}"))),
    }
}

/// Big-endian `u32` counters, as `BITFIELD` keeps them.
pub(super) fn counters_of(v: Option<&Value>) -> Vec<u64> {
    match v {
        Some(Value::BulkString(b)) => {
            b.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64).collect()
        }
        _ => Vec::new(),
    }
}
