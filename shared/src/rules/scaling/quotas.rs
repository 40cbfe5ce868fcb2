//! The account's quotas a spike meets in front of `entry-api`, with AWS's
//! defaults: what the preflight checks an event against and the simulator
//! (`fanrush simulate`, in fanrush-ops) plays a spike into.
//!
//! - **API Gateway's account throttle**, a token bucket (API Gateway
//!   Developer Guide, "Amazon API Gateway quotas", "Throttle quota per
//!   account, per Region across HTTP APIs, REST APIs, WebSocket APIs, and
//!   WebSocket callback APIs", quota L-8A5B8E43).
//! - **Lambda's account request rate**: 10 x the account's concurrency limit
//!   per second (Lambda Developer Guide, "Understanding Lambda function
//!   scaling", "Understanding concurrency and requests per second").

/// Lambda's account request rate is this many times its concurrency limit.
pub const ACCOUNT_RPS_PER_CONCURRENCY: f64 = 10.0;

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
