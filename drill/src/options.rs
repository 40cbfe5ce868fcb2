//! `fanrush-drill`'s command line: the spike's shape, the scenarios to run
//! and where the binaries and the report are.

use crate::spike::Shape;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "fanrush-drill",
    version,
    about = "The spike under faults: every invariant checked against PostgreSQL and Redis"
)]
pub struct Options {
    /// Requests of the spike (every fan once, the rest a second time).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Fans of the spike.
    #[arg(long, default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..))]
    fans: u64,
    /// Places of each scenario's event.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub capacity: i64,
    /// The spike's first requests arrive over this many seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Scenarios, comma-separated, or `all`.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub scenarios: Vec<String>,
    /// entry-api execution environments.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..))]
    entry_environments: u64,
    /// Writer environments (the event-source mapping's pollers).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    writers: u64,
    /// Where the function binaries are.
    #[arg(long, default_value = "target/debug")]
    pub bin_dir: PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "target/drill/results.json")]
    pub out: PathBuf,
    /// Also write every line fan's visit (what it was told, when) here, as
    /// JSON: for looking into a fairness figure.
    #[arg(long)]
    pub visits: Option<PathBuf>,
    /// Seed of the arrivals and the clients' jitter.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The longest a scenario may take to settle after its spike, seconds.
    #[arg(long, default_value_t = 180)]
    settle_limit_s: u64,
}

impl Options {
    /// Checks what flags alone cannot.
    pub fn checked(self) -> Result<Self, String> {
        if (self.requests as u64) < self.fans {
            return Err(format!("--requests {} must be at least --fans {}", self.requests, self.fans));
        }
        if !(self.duration_s.is_finite() && self.duration_s > 0.0) {
            return Err(format!("--duration-s {}: must be a positive number", self.duration_s));
        }
        Ok(self)
    }

    pub fn shape(&self) -> Shape {
        Shape {
            requests: self.requests,
            fans: self.fans as usize,
            duration: Duration::from_secs_f64(self.duration_s),
            max_attempts: 40,
            patience: Duration::from_secs(90),
            attempt_timeout: Duration::from_secs(5),
            in_flight: 256,
        }
    }

    pub fn entry_environments(&self) -> usize {
        self.entry_environments as usize
    }

    pub fn writers(&self) -> usize {
        self.writers as usize
    }

    pub fn settle_limit(&self) -> Duration {
        Duration::from_secs(self.settle_limit_s)
    }
}
