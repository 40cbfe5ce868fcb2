//! A model of what AWS does to a spike in front of `entry-api`, to see its
//! throttling before the event. Every limit is a documented one:
//!
//! - **API Gateway's account throttle**, a token bucket: 10,000 requests per
//!   second steady with a bucket of 5,000 by default, shared by every API in
//!   the account and Region (API Gateway Developer Guide, "Amazon API Gateway
//!   quotas", "Throttle quota per account, per Region across HTTP APIs, REST
//!   APIs, WebSocket APIs, and WebSocket callback APIs", quota L-8A5B8E43).
//!   A request over it gets 429 from API Gateway and never reaches Lambda.
//! - **Lambda's account request rate**: 10 x the account's concurrency limit
//!   per second (Lambda Developer Guide, "Understanding Lambda function
//!   scaling", "Understanding concurrency and requests per second").
//! - **Lambda's per-environment rate**: one execution environment serves at
//!   most 10 requests per second (same page), so a request holds its
//!   environment for at least 100 ms whatever its duration. The
//!   provisioned-concurrency invocation rate on an alias, 10 x the allocated
//!   amount per second (Lambda quotas page), follows from it.
//! - **On-demand scaling**, [`ScalingModel::Current`] (Lambda Developer
//!   Guide, "Lambda scaling behavior", "Concurrency scaling rate"): each
//!   function adds at most 1,000 execution environments every 10 seconds,
//!   refilled continuously and never banked, up to the account's concurrency
//!   limit ("Concurrent executions", default 1,000, Lambda quotas page).
//!   [`ScalingModel::Legacy`] is the design notes' older rule: an initial
//!   burst of 500 to 3,000 environments by region, then +500 a minute.
//!
//! Provisioned environments are warm from the start (the allocation's own
//! lead time is the plan's business). A request that finds no free
//! environment and no room to create one is throttled by Lambda (429).

use std::collections::VecDeque;

use super::plan::RPS_PER_ENVIRONMENT;

/// Lambda's account request rate is this many times its concurrency limit.
pub const ACCOUNT_RPS_PER_CONCURRENCY: f64 = 10.0;

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

/// The account's quotas the spike meets, with AWS's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quotas {
    /// Lambda "Concurrent executions" for the account and Region.
    pub account_concurrency: i64,
    /// API Gateway's steady throttle rate, requests per second.
    pub api_rate: f64,
    /// API Gateway's token bucket size.
    pub api_burst: f64,
}

impl Default for Quotas {
    /// A new account in a large Region: 1,000 concurrent executions
    /// (Lambda quotas page); 10,000 rps with a 5,000 bucket (API Gateway
    /// quotas page). Some Regions default to 2,500 / 1,250.
    fn default() -> Self {
        Self { account_concurrency: 1_000, api_rate: 10_000.0, api_burst: 5_000.0 }
    }
}

/// The traffic shape: a linear ramp from 0 to `peak_rps` over `ramp_s`
/// seconds (0 = instant), then `hold_s` seconds at the peak, or, with
/// `decay_s`, decaying from it as `peak x e^(-t / decay_s)` (an opening: most
/// fans arrive in its first seconds, fewer and fewer after).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    pub peak_rps: f64,
    pub ramp_s: f64,
    pub hold_s: f64,
    /// 0 = flat at the peak after the ramp.
    pub decay_s: f64,
    /// Time a request holds an environment.
    pub duration_ms: f64,
}

/// What the spike did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Simulation {
    pub requests: u64,
    /// Refused by API Gateway's token bucket (429 before Lambda).
    pub throttled_by_api_gateway: u64,
    /// Refused by Lambda: account request rate, concurrency or scaling rate.
    pub throttled_by_lambda: u64,
    /// Environments held at once (a request holds one for at least 100 ms).
    pub peak_concurrency: i64,
    pub cold_starts: u64,
}

impl Simulation {
    /// Every 429 a fan saw, whoever sent it.
    pub fn throttled(&self) -> u64 {
        self.throttled_by_api_gateway + self.throttled_by_lambda
    }

    /// Requests a function ran.
    pub fn served(&self) -> u64 {
        self.requests - self.throttled()
    }
}

/// A continuously refilled token bucket.
struct Bucket {
    tokens: f64,
    cap: f64,
    per_ms: f64,
}

impl Bucket {
    fn refill(&mut self) {
        self.tokens = (self.tokens + self.per_ms).min(self.cap);
    }

    /// Takes up to `n` whole tokens; returns how many it took.
    fn take(&mut self, n: i64) -> i64 {
        let taken = n.min(self.tokens.floor() as i64).max(0);
        self.tokens -= taken as f64;
        taken
    }
}

/// Replays `traffic` in 1 ms steps through API Gateway's throttle and
/// Lambda's limits, against `provisioned` warm environments plus on-demand
/// scaling under `model`.
pub fn simulate(traffic: Traffic, provisioned: i64, quotas: Quotas, model: ScalingModel) -> Simulation {
    let (tokens, cap, refill_per_s) = model.bucket();
    let mut scaling = Bucket { tokens, cap, per_ms: refill_per_s / 1000.0 };
    let mut api = Bucket { tokens: quotas.api_burst, cap: quotas.api_burst, per_ms: quotas.api_rate / 1000.0 };
    let account_limit = quotas.account_concurrency.max(0);
    // Lambda's account rate, counted over the trailing second.
    let account_rps = (ACCOUNT_RPS_PER_CONCURRENCY * account_limit as f64).floor() as i64;
    let mut last_second: VecDeque<(u64, i64)> = VecDeque::new();
    let mut in_last_second: i64 = 0;
    let total_ms = ((traffic.ramp_s + traffic.hold_s) * 1000.0).ceil() as u64;
    let min_hold_ms = 1000.0 / RPS_PER_ENVIRONMENT;
    let hold_steps = traffic.duration_ms.max(min_hold_ms).ceil().max(1.0) as u64;
    let mut environments = provisioned.min(account_limit).max(0);
    let mut busy: i64 = 0;
    let mut finishing: VecDeque<(u64, i64)> = VecDeque::new();
    let mut arrivals = 0.0_f64;
    let mut sim = Simulation::default();
    for step in 0..total_ms {
        while finishing.front().is_some_and(|&(at, _)| at <= step) {
            busy -= finishing.pop_front().map_or(0, |(_, n)| n);
        }
        while last_second.front().is_some_and(|&(at, _)| at + 1000 <= step) {
            in_last_second -= last_second.pop_front().map_or(0, |(_, n)| n);
        }
        scaling.refill();
        api.refill();
        let t_s = step as f64 / 1000.0;
        let rate = if traffic.ramp_s > 0.0 && t_s < traffic.ramp_s {
            traffic.peak_rps * t_s / traffic.ramp_s
        } else if traffic.decay_s > 0.0 {
            traffic.peak_rps * (-(t_s - traffic.ramp_s) / traffic.decay_s).exp()
        } else {
            traffic.peak_rps
        };
        arrivals += rate / 1000.0;
        let n = arrivals.floor() as i64;
        arrivals -= n as f64;
        if n == 0 {
            continue;
        }
        sim.requests += n as u64;
        let passed = api.take(n);
        sim.throttled_by_api_gateway += (n - passed) as u64;
        let invoked = passed.min(account_rps - in_last_second).max(0);
        let mut refused = passed - invoked;
        let warm = invoked.min(environments - busy);
        let wanting = invoked - warm;
        let created = scaling.take(wanting.min(account_limit - environments));
        environments += created;
        sim.cold_starts += created as u64;
        refused += wanting - created;
        sim.throttled_by_lambda += refused as u64;
        let served = warm + created;
        busy += served;
        sim.peak_concurrency = sim.peak_concurrency.max(busy);
        finishing.push_back((step + hold_steps, served));
        // What ran counts against the account's rate; a refusal does not.
        if served > 0 {
            last_second.push_back((step, served));
            in_last_second += served;
        }
    }
    sim
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_spike() -> Traffic {
        Traffic { peak_rps: 10_000.0, ramp_s: 0.0, hold_s: 60.0, duration_ms: 150.0, decay_s: 0.0 }
    }

    fn account(concurrency: i64) -> Quotas {
        Quotas { account_concurrency: concurrency, ..Quotas::default() }
    }

    /// Only Lambda's limits: API Gateway's throttle raised out of the way.
    fn lambda_only(concurrency: i64) -> Quotas {
        Quotas { account_concurrency: concurrency, api_rate: 1e9, api_burst: 1e9 }
    }

    #[test]
    fn the_seed_spike_throttles_on_demand_and_not_with_the_plan() {
        let cold = simulate(seed_spike(), 0, account(10_000), ScalingModel::Current);
        assert_eq!(cold.requests, 600_000);
        assert!(cold.throttled_by_lambda > 0, "{cold:?}");
        assert_eq!(cold.throttled_by_api_gateway, 0, "10,000 rps is API Gateway's default rate: {cold:?}");
        assert_eq!(cold.peak_concurrency, 1500);
        // The plan's 1,800 (1,500 with 1.2 headroom) absorbs it warm.
        let warm = simulate(seed_spike(), 1800, account(10_000), ScalingModel::Current);
        assert_eq!((warm.throttled(), warm.cold_starts), (0, 0), "{warm:?}");
        assert_eq!(warm.peak_concurrency, 1500);
    }

    #[test]
    fn on_demand_scaling_adds_1000_per_10_seconds() {
        // 20,000 rps x 1 s needs 20,000 environments; the limit is far away.
        let t = Traffic { peak_rps: 20_000.0, ramp_s: 0.0, hold_s: 10.0, duration_ms: 1000.0, decay_s: 0.0 };
        let sim = simulate(t, 0, lambda_only(1_000_000), ScalingModel::Current);
        // 1,000 at once plus 100 a second for 10 s (a token or two of slack).
        assert!((1_990..=2_000).contains(&(sim.cold_starts as i64)), "{sim:?}");
    }

    #[test]
    fn the_legacy_model_bursts_then_adds_500_a_minute() {
        let t = Traffic { peak_rps: 10_000.0, ramp_s: 0.0, hold_s: 120.0, duration_ms: 1000.0, decay_s: 0.0 };
        let sim = simulate(t, 0, lambda_only(1_000_000), ScalingModel::LEGACY);
        assert!((3_990..=4_000).contains(&(sim.cold_starts as i64)), "3,000 + 2 x 500: {sim:?}");
        assert!(sim.throttled_by_lambda > 0);
    }

    #[test]
    fn the_account_limit_caps_everything() {
        let sim = simulate(seed_spike(), 5_000, account(1_000), ScalingModel::Current);
        assert_eq!(sim.peak_concurrency, 1_000);
        assert!(sim.throttled_by_lambda > 0);
    }

    #[test]
    fn a_slow_ramp_lets_on_demand_scaling_keep_up() {
        let t = Traffic { peak_rps: 2_000.0, ramp_s: 60.0, hold_s: 10.0, duration_ms: 150.0, decay_s: 0.0 };
        let sim = simulate(t, 0, account(10_000), ScalingModel::Current);
        assert_eq!(sim.throttled(), 0, "{sim:?}");
        assert_eq!(sim.peak_concurrency, 300);
    }

    #[test]
    fn provisioned_environments_serve_ten_requests_per_second_each() {
        // The example: 240 provisioned environments (10,000 rps x
        // 20 ms x 1.2) serve 2,400 rps, not 10,000. On-demand scaling is
        // switched off to see the provisioned environments alone.
        let t = Traffic { peak_rps: 10_000.0, ramp_s: 0.0, hold_s: 10.0, duration_ms: 20.0, decay_s: 0.0 };
        let none = ScalingModel::Legacy { burst: 0, per_minute: 0 };
        let sim = simulate(t, 240, lambda_only(10_000), none);
        assert_eq!(sim.requests, 100_000);
        assert!((23_900..=24_100).contains(&sim.served()), "2,400 rps for 10 s: {sim:?}");
        assert_eq!(sim.peak_concurrency, 240);
        // The plan's 1,200 serve it all.
        let planned = simulate(t, 1_200, lambda_only(10_000), none);
        assert_eq!(planned.throttled(), 0, "{planned:?}");
        assert_eq!(planned.peak_concurrency, 1_000, "10,000 rps / 10 per environment");
    }

    #[test]
    fn lambda_never_runs_more_than_ten_times_the_account_limit_a_second() {
        let t = Traffic { peak_rps: 30_000.0, ramp_s: 0.0, hold_s: 10.0, duration_ms: 1.0, decay_s: 0.0 };
        let sim = simulate(t, 1_000, lambda_only(1_000), ScalingModel::Current);
        assert!(sim.served() <= 100_000, "10 x 1,000 rps for 10 s: {sim:?}");
        assert!(sim.served() >= 99_000, "and the limit is reached: {sim:?}");
        assert_eq!(sim.throttled_by_api_gateway, 0);
    }

    #[test]
    fn a_decaying_opening_brings_its_integral_of_fans() {
        // Ramp 2 s to the peak, then e^(-t/15) for 58 s: the requests are the
        // triangle plus the decay's integral.
        let t = Traffic { peak_rps: 60_000.0, ramp_s: 2.0, hold_s: 58.0, duration_ms: 20.0, decay_s: 15.0 };
        let expected = 60_000.0 * (1.0 + 15.0 * (1.0 - (-58.0_f64 / 15.0).exp()));
        let sim = simulate(t, 1_000_000, lambda_only(1_000_000), ScalingModel::Current);
        assert!((sim.requests as f64 - expected).abs() / expected < 0.001, "{sim:?} vs {expected}");
        assert_eq!(sim.throttled(), 0);
        // 60,000 rps x 100 ms, a little less: the 100 ms around the peak
        // straddle the ramp and the decay.
        assert!((5_900..=6_000).contains(&sim.peak_concurrency), "60,000 rps / 10: {sim:?}");
    }

    #[test]
    fn api_gateway_throttles_above_its_rate_once_the_bucket_is_empty() {
        // 20,000 rps for 10 s against 10,000 rps and a 5,000 bucket: it passes
        // the bucket plus 10 s of refill, 105,000, and refuses the rest.
        let t = Traffic { peak_rps: 20_000.0, ramp_s: 0.0, hold_s: 10.0, duration_ms: 20.0, decay_s: 0.0 };
        let sim = simulate(t, 2_000, account(100_000), ScalingModel::Current);
        assert_eq!(sim.requests, 200_000);
        assert!((94_980..=95_020).contains(&sim.throttled_by_api_gateway), "{sim:?}");
        assert_eq!(sim.throttled_by_lambda, 0, "what passed found warm environments: {sim:?}");
        assert_eq!(sim.throttled(), sim.throttled_by_api_gateway + sim.throttled_by_lambda);
        // A raised quota lets it all through.
        let raised = Quotas { api_rate: 20_000.0, api_burst: 10_000.0, ..account(100_000) };
        assert_eq!(simulate(t, 2_000, raised, ScalingModel::Current).throttled(), 0);
    }
}
