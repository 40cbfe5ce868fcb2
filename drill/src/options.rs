//! `fanrush-drill`'s command line: the spike's shape, the scenarios to run
//! and where the binaries and the report are.

use crate::faults::{all_scenarios, Scenario};
use crate::spike::Shape;
use std::path::PathBuf;
use std::time::Duration;

pub struct Options {
    pub shape: Shape,
    pub capacity: i64,
    pub scenarios: Vec<String>,
    pub entry_environments: usize,
    pub writers: usize,
    pub bin_dir: PathBuf,
    pub out: PathBuf,
    pub seed: u64,
    pub settle_limit: Duration,
}

impl Options {
    pub const USAGE: &'static str = "usage: fanrush-drill [--requests 20000] [--fans 15000] [--capacity 5000] [--duration-s 10]\n       [--scenarios all|baseline,redis-flush,...] [--entry-environments 6] [--writers 2]\n       [--bin-dir target/debug] [--out target/drill/results.json] [--seed 1]";

    pub fn parse(args: Vec<String>) -> Result<Self, String> {
        let mut o = Self {
            shape: Shape {
                requests: 20_000,
                fans: 15_000,
                duration: Duration::from_secs(10),
                max_attempts: 40,
                patience: Duration::from_secs(90),
                attempt_timeout: Duration::from_secs(5),
                in_flight: 256,
            },
            capacity: 5_000,
            scenarios: vec!["all".into()],
            entry_environments: 6,
            writers: 2,
            bin_dir: PathBuf::from("target/debug"),
            out: PathBuf::from("target/drill/results.json"),
            seed: 1,
            settle_limit: Duration::from_secs(180),
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = || format!("{flag}: {value:?} is not valid");
            match flag.as_str() {
                "--requests" => o.shape.requests = value.parse().map_err(|_| bad())?,
                "--fans" => o.shape.fans = value.parse().map_err(|_| bad())?,
                "--capacity" => o.capacity = value.parse().map_err(|_| bad())?,
                "--duration-s" => o.shape.duration = Duration::from_secs_f64(value.parse().map_err(|_| bad())?),
                "--scenarios" => o.scenarios = value.split(',').map(str::to_owned).collect(),
                "--entry-environments" => o.entry_environments = value.parse().map_err(|_| bad())?,
                "--writers" => o.writers = value.parse().map_err(|_| bad())?,
                "--bin-dir" => o.bin_dir = PathBuf::from(value),
                "--out" => o.out = PathBuf::from(value),
                "--seed" => o.seed = value.parse().map_err(|_| bad())?,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if o.shape.fans == 0 || o.shape.requests < o.shape.fans || o.capacity < 1 {
            return Err("need --fans >= 1, --requests >= --fans and --capacity >= 1".into());
        }
        if o.entry_environments == 0 || o.writers == 0 {
            return Err("need at least one entry environment and one writer".into());
        }
        Ok(o)
    }

    pub fn selected(&self) -> Result<Vec<Scenario>, String> {
        let every = all_scenarios();
        if self.scenarios.iter().any(|s| s == "all") {
            return Ok(every);
        }
        let known: Vec<&str> = every.iter().map(|s| s.name).collect();
        if let Some(bad) = self.scenarios.iter().find(|s| !known.contains(&s.as_str())) {
            return Err(format!("unknown scenario {bad:?}; known: {}", known.join(", ")));
        }
        Ok(every.into_iter().filter(|s| self.scenarios.iter().any(|n| n == s.name)).collect())
    }
}
