//! A model of Lambda's on-demand scaling, to see a spike's throttling before
//! the event.
//!
//! - [`ScalingModel::Current`] (AWS's documentation since late 2023): each
//!   function scales by 1,000 new execution environments every 10 seconds,
//!   refilled continuously, up to the account's concurrency limit.
//! - [`ScalingModel::Legacy`] (the design notes): an initial burst of 500 to
//!   3,000 environments by region, then +500 a minute.
//!
//! Provisioned environments are warm from the start. A request that finds no
//! free environment and no room to create one is throttled (429).

use std::collections::VecDeque;

/// How Lambda adds environments on demand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScalingModel {
    /// 1,000 environments per 10 s per function, refilled continuously.
    Current,
    /// `burst` at once, then `per_minute` more each minute.
    Legacy { burst: i64, per_minute: i64 },
}

impl ScalingModel {
    /// The design notes' legacy figures for the largest regions.
    pub const LEGACY: Self = Self::Legacy { burst: 3_000, per_minute: 500 };

    /// `(initial tokens, bucket cap, refill per second)`.
    fn bucket(self) -> (f64, f64, f64) {
        match self {
            Self::Current => (1_000.0, 1_000.0, 100.0),
            Self::Legacy { burst, per_minute } => (burst as f64, f64::INFINITY, per_minute as f64 / 60.0),
        }
    }
}

/// The traffic shape: a linear ramp from 0 to `peak_rps` over `ramp_s`
/// seconds (0 = instant), then `hold_s` seconds at the peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    pub peak_rps: f64,
    pub ramp_s: f64,
    pub hold_s: f64,
    /// Time a request holds an environment.
    pub duration_ms: f64,
}

/// What the spike did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Simulation {
    pub requests: u64,
    pub throttled: u64,
    pub peak_concurrency: i64,
    pub cold_starts: u64,
}

/// Replays `traffic` in 1 ms steps against `provisioned` warm environments and
/// on-demand scaling under `model`, up to `account_limit` environments.
pub fn simulate(traffic: Traffic, provisioned: i64, account_limit: i64, model: ScalingModel) -> Simulation {
    const STEP_MS: f64 = 1.0;
    let (mut tokens, cap, refill_per_s) = model.bucket();
    let total_ms = ((traffic.ramp_s + traffic.hold_s) * 1000.0).ceil() as u64;
    let hold_steps = (traffic.duration_ms / STEP_MS).ceil().max(1.0) as u64;
    let mut environments = provisioned.min(account_limit).max(0);
    let mut busy: i64 = 0;
    let mut finishing: VecDeque<(u64, i64)> = VecDeque::new();
    let mut arrivals = 0.0_f64;
    let mut sim = Simulation::default();
    for step in 0..total_ms {
        while finishing.front().is_some_and(|&(at, _)| at <= step) {
            busy -= finishing.pop_front().map_or(0, |(_, n)| n);
        }
        tokens = (tokens + refill_per_s * STEP_MS / 1000.0).min(cap);
        let t_s = step as f64 * STEP_MS / 1000.0;
        let rate = if traffic.ramp_s > 0.0 && t_s < traffic.ramp_s {
            traffic.peak_rps * t_s / traffic.ramp_s
        } else {
            traffic.peak_rps
        };
        arrivals += rate * STEP_MS / 1000.0;
        let n = arrivals.floor() as i64;
        arrivals -= n as f64;
        if n == 0 {
            continue;
        }
        sim.requests += n as u64;
        let warm = n.min(environments - busy);
        let wanting = n - warm;
        let created = wanting.min(tokens.floor() as i64).min(account_limit - environments).max(0);
        tokens -= created as f64;
        environments += created;
        sim.cold_starts += created as u64;
        sim.throttled += (wanting - created) as u64;
        let served = warm + created;
        busy += served;
        sim.peak_concurrency = sim.peak_concurrency.max(busy);
        finishing.push_back((step + hold_steps, served));
    }
    sim
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_spike() -> Traffic {
        Traffic { peak_rps: 10_000.0, ramp_s: 0.0, hold_s: 60.0, duration_ms: 150.0 }
    }

    #[test]
    fn the_seed_spike_throttles_on_demand_and_not_with_the_plan() {
        let cold = simulate(seed_spike(), 0, 10_000, ScalingModel::Current);
        assert_eq!(cold.requests, 600_000);
        assert!(cold.throttled > 0, "{cold:?}");
        assert_eq!(cold.peak_concurrency, 1500);
        // The plan's 1,800 (1,500 with 1.2 headroom) absorbs it warm.
        let warm = simulate(seed_spike(), 1800, 10_000, ScalingModel::Current);
        assert_eq!((warm.throttled, warm.cold_starts), (0, 0), "{warm:?}");
        assert_eq!(warm.peak_concurrency, 1500);
    }

    #[test]
    fn on_demand_scaling_adds_1000_per_10_seconds() {
        // 20,000 rps x 1 s needs 20,000 environments; the limit is far away.
        let t = Traffic { peak_rps: 20_000.0, ramp_s: 0.0, hold_s: 10.0, duration_ms: 1000.0 };
        let sim = simulate(t, 0, 1_000_000, ScalingModel::Current);
        // 1,000 at once plus 100 a second for 10 s (a token or two of slack).
        assert!((1_990..=2_000).contains(&(sim.cold_starts as i64)), "{sim:?}");
    }

    #[test]
    fn the_legacy_model_bursts_then_adds_500_a_minute() {
        let t = Traffic { peak_rps: 10_000.0, ramp_s: 0.0, hold_s: 120.0, duration_ms: 1000.0 };
        let sim = simulate(t, 0, 1_000_000, ScalingModel::LEGACY);
        assert!((3_990..=4_000).contains(&(sim.cold_starts as i64)), "3,000 + 2 x 500: {sim:?}");
        assert!(sim.throttled > 0);
    }

    #[test]
    fn the_account_limit_caps_everything() {
        let sim = simulate(seed_spike(), 5_000, 1_000, ScalingModel::Current);
        assert_eq!(sim.peak_concurrency, 1_000);
        assert!(sim.throttled > 0);
    }

    #[test]
    fn a_slow_ramp_lets_on_demand_scaling_keep_up() {
        let t = Traffic { peak_rps: 2_000.0, ramp_s: 60.0, hold_s: 10.0, duration_ms: 150.0 };
        let sim = simulate(t, 0, 10_000, ScalingModel::Current);
        assert_eq!(sim.throttled, 0, "{sim:?}");
        assert_eq!(sim.peak_concurrency, 300);
    }
}
