//! The time the use cases decide by, injected so tests can move it: the
//! system's clock in the functions, a [`ManualClock`] in tests. Every
//! decision of the gate takes its time from the caller (the scripts get
//! `now` as an argument), so a test that moves the clock moves the whole
//! line, Redis included, without sleeping. (tokio's paused time cannot
//! stand in: it skips ahead whenever the runtime waits on a socket, so a
//! real Redis connection times out at once.)

use chrono::{DateTime, Utc};
use std::sync::Mutex;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn at(t: DateTime<Utc>) -> Self {
        Self(Mutex::new(t))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }

    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}
