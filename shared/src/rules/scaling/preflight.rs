//! The preflight: every quota a fan event needs, next to what the account
//! has, before the event. Pure: the account's figures come from
//! `GetAccountSettings` or flags, the capacities from `make bench`.
//!
//! For each event, and for each set of events whose scale-out windows
//! overlap (they share the account, the API Gateway throttle and the one
//! Redis primary, so their needs add up), it checks:
//!
//! - Lambda "Concurrent executions" (account, Region): the environments plus
//!   the 100 Lambda keeps unreserved (Lambda quotas page);
//! - the unreserved pool the provisioned concurrency draws from;
//! - Lambda's account request rate, 10 x the concurrency limit (Lambda
//!   Developer Guide, "Understanding concurrency and requests per second");
//! - API Gateway's account throttle rate ("Throttle quota per account, per
//!   Region across HTTP APIs, REST APIs, WebSocket APIs, and WebSocket
//!   callback APIs", API Gateway quotas page);
//! - admissions per second on one Redis primary (ElastiCache with cluster
//!   mode disabled keeps every key on one primary; one event's keys are on
//!   one shard in any case), against the admitted-fan ceiling (`admit.lua`
//!   plus `confirm.lua`) `make bench` or `fanrush measure-gate` measured: an
//!   event without a line meets its arrivals at the gate, and one whose
//!   arrivals exceed the ceiling fails with the `admissionsPerSecond` to
//!   set; an event with a line meets its rate, which passes at up to
//!   [`LINE_SHARE_OF_CEILING`] of the ceiling;
//! - the HTTP API's fan route throttle against the peak, and the fan and
//!   admin route throttles together within the account's rate (API Gateway
//!   throttles the account before any route);
//! - when entry-api is capped, its reserved concurrency against its
//!   environments (its provisioned concurrency comes out of it);
//! - when the node's `maxmemory` is known, the places' memory (what
//!   `make bench` measured per fan and per note) against it: `noeviction`
//!   refuses every write of every event once it is full.
//!
//! The Lambda and API Gateway checks count an event's requests: its
//! arrivals, plus for an event with a line the polls of its waiting fans
//! ([`crate::rules::line::poll::expected_polls_per_second`]).
//!
//! And for each event: the time left to allocate provisioned concurrency
//! (a minute or two to start, then up to 6,000 environments a minute,
//! Lambda Developer Guide, "Configuring provisioned concurrency"), the queue
//! drain time at the writer's measured rate, and the cost.

pub use super::placement::gate_rps;
use super::placement::{shard_peaks, Placement, ShardPeak};
use super::plan::{grantable, Bound, ScalingParams, ScalingPlan, PROVISIONING_RATE_PER_MINUTE, UNRESERVED_MINIMUM};
use super::Quotas;
use super::ACCOUNT_RPS_PER_CONCURRENCY;
use crate::rules::domain::{EventId, FanEvent};
use chrono::{DateTime, Duration, Utc};

pub use super::measured::{
    MEASURED_GATE_ADMISSIONS_PER_SECOND, MEASURED_GATE_ANSWERS_PER_SECOND, MEASURED_GATE_BYTES_PER_FAN,
    MEASURED_GATE_BYTES_PER_NOTE, MEASURED_LINE_PLACES_PER_SECOND, MEASURED_LINE_SYNCS_PER_SECOND, MEASURED_ON,
    MEASURED_WRITER_ROWS_PER_SECOND,
};

/// The share of the core a line may take at its busiest second: its
/// admissions at the catch-up rate, its syncs and the places they count.
/// The rest is a margin.
pub const LINE_SHARE_OF_CEILING: f64 = 0.8;

/// The most one second of a line admits, as a multiple of its rate: the
/// gate's token bucket (`admit.lua`) lets fans who came back late catch up.
pub const LINE_CATCH_UP: f64 = 1.1;

/// The share of a core a line's bookkeeping takes in the opening's peak
/// second: every environment's syncs, spaced to at most
/// [`crate::rules::line::SYNCS_PER_SECOND`] together, and the places of
/// `arrivals` new fans a second counted in them.
pub fn line_overhead(capacities: &Capacities, arrivals: f64) -> f64 {
    let per = |n: f64, ceiling: f64| if ceiling > 0.0 { n.max(0.0) / ceiling } else { 0.0 };
    per(crate::rules::line::SYNCS_PER_SECOND, capacities.line_syncs_per_second)
        + per(arrivals, capacities.line_places_per_second)
}

/// The line's rates for a core.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineRates {
    /// The preflight passes a line up to it: its admissions and its
    /// bookkeeping ([`line_overhead`]) take [`LINE_SHARE_OF_CEILING`] of
    /// the core.
    pub at_most: f64,
    /// The rate to set: its catch-up second ([`LINE_CATCH_UP`]) stays
    /// within that share too.
    pub suggested: f64,
}

impl LineRates {
    /// The rates for the core `capacities` measured, in front of an
    /// opening that peaks at `arrivals` new fans a second.
    pub fn for_core(capacities: &Capacities, arrivals: f64) -> Self {
        let share = (LINE_SHARE_OF_CEILING - line_overhead(capacities, arrivals)).max(0.0);
        let ceiling = capacities.redis_admissions_per_second;
        Self { at_most: (ceiling * share).floor(), suggested: (ceiling * share / LINE_CATCH_UP).floor() }
    }
}

/// Lambda's provisioned-concurrency price on arm64, the template's default
/// architecture, in us-east-1 (USD per GB-second of allocated provisioned
/// concurrency; AWS Lambda pricing page, "Provisioned Concurrency").
pub const PRICE_PER_GB_SECOND: f64 = 0.000_003_333_4;

/// The same price on x86_64.
pub const PRICE_PER_GB_SECOND_X86_64: f64 = 0.000_004_166_7;

/// The provisioned-concurrency price for a function architecture as Lambda
/// names it (`arm64`, `x86_64`), or None for any other name.
pub fn price_per_gb_second(architecture: &str) -> Option<f64> {
    match architecture {
        "arm64" => Some(PRICE_PER_GB_SECOND),
        "x86_64" => Some(PRICE_PER_GB_SECOND_X86_64),
        _ => None,
    }
}

/// Lambda's provisioned-concurrency allocation "takes a minute or two" to
/// start before it proceeds at [`PROVISIONING_RATE_PER_MINUTE`].
pub const ALLOCATION_START: Duration = Duration::minutes(2);

/// What the account has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Account {
    /// Lambda "Concurrent executions".
    pub concurrency: i64,
    /// `UnreservedConcurrentExecutions` from `GetAccountSettings`.
    pub unreserved: i64,
    /// Concurrency the stack reserves for its control plane (the writer,
    /// the scheduler, admin-api and the notifier): out of the pool whether
    /// or not the stack is deployed yet (a deployed stack's reservations are
    /// in `unreserved` already, so the smaller of the two counts).
    pub control_plane_reserved: i64,
    /// entry-api's reserved concurrency when the stack caps it
    /// (`EntryApiMaxConcurrency`): its environments, provisioned or not,
    /// never exceed it, and come out of it rather than the pool.
    pub entry_cap: Option<i64>,
    /// The cache node's `maxmemory` in bytes (`INFO memory`; on ElastiCache
    /// the node type's memory less `reserved-memory-percent`), when known.
    pub cache_maxmemory: Option<u64>,
    /// Provisioned concurrency `entry-api` already holds (it is in the pool).
    pub already_provisioned: i64,
    /// API Gateway's throttle rate and burst for the account and Region.
    pub api_rate: f64,
    pub api_burst: f64,
    /// The HTTP API's route throttles (requests per second): the fan routes'
    /// and the admin routes' own, which keep the admin API usable while
    /// fans take the rest of the account's rate.
    pub fan_route_rate: f64,
    pub admin_route_rate: f64,
}

/// The template's defaults for the control plane's reserved concurrency:
/// `WriterMaxConcurrency` 5, `SchedulerReservedConcurrency` 2,
/// `AdminApiReservedConcurrency` 10, `NotifierReservedConcurrency` 5, and
/// the database setup's 1.
pub const CONTROL_PLANE_RESERVED: i64 = 5 + 2 + 10 + 5 + 1;

/// The template's `FanRouteThrottleRate` and `AdminRouteThrottleRate`
/// defaults: together within the account's default rate of 10,000.
pub const FAN_ROUTE_RATE: f64 = 9_900.0;
pub const ADMIN_ROUTE_RATE: f64 = 50.0;

impl Account {
    /// AWS's defaults for a new account in a large Region, as the model
    /// states them ([`Quotas::default`]); nothing reserved or provisioned.
    pub fn defaults() -> Self {
        let q = Quotas::default();
        Self {
            concurrency: q.account_concurrency,
            unreserved: q.account_concurrency,
            control_plane_reserved: 0,
            entry_cap: None,
            cache_maxmemory: None,
            already_provisioned: 0,
            api_rate: q.api_rate,
            api_burst: q.api_burst,
            fan_route_rate: FAN_ROUTE_RATE,
            admin_route_rate: ADMIN_ROUTE_RATE,
        }
    }
}

/// What fanrush itself can do, measured by `make bench`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacities {
    /// New fans one Redis core admits per second (admit plus confirm).
    pub redis_admissions_per_second: f64,
    pub writer_rows_per_second: f64,
    /// The writer's event-source `MaximumConcurrency` (one database
    /// connection each).
    pub writer_max_concurrency: i64,
    /// `line.lua` syncs carrying no place, and places counted in syncs, per
    /// second of the core.
    pub line_syncs_per_second: f64,
    pub line_places_per_second: f64,
    /// What the gate holds per admitted fan, and what its note adds (a
    /// full note's measured bytes unless the operator expects shorter ones).
    pub bytes_per_fan: f64,
    pub bytes_per_note: f64,
}

impl Default for Capacities {
    fn default() -> Self {
        Self {
            bytes_per_fan: MEASURED_GATE_BYTES_PER_FAN,
            bytes_per_note: MEASURED_GATE_BYTES_PER_NOTE,
            line_syncs_per_second: MEASURED_LINE_SYNCS_PER_SECOND,
            line_places_per_second: MEASURED_LINE_PLACES_PER_SECOND,
            redis_admissions_per_second: MEASURED_GATE_ADMISSIONS_PER_SECOND,
            writer_rows_per_second: MEASURED_WRITER_ROWS_PER_SECOND,
            writer_max_concurrency: 5,
        }
    }
}

/// The provisioned-concurrency price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    pub memory_mb: u32,
    /// USD per GB-second of allocated provisioned concurrency.
    pub per_gb_second: f64,
}

/// One quota next to its need.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// `"<event or a + b>: <quota>"`.
    pub name: String,
    pub needed: f64,
    pub available: f64,
    /// What to raise, and by how much, when not ok.
    pub raise: Option<String>,
}

impl Check {
    pub fn ok(&self) -> bool {
        self.needed <= self.available
    }
}

/// One event's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFigures {
    pub event: EventId,
    /// Arrivals per second at the peak.
    pub peak_rps: f64,
    /// Requests per second at the peak: arrivals, and a line's polls.
    pub requests_per_second: f64,
    /// Admissions per second the gate meets: the arrivals, or the line's rate.
    pub gate_rps: f64,
    pub capacity: i64,
    pub environments: i64,
    pub bound: Bound,
    pub scale_out_at: DateTime<Utc>,
    pub scale_in_at: DateTime<Utc>,
    /// Time Lambda needs to allocate `environments`.
    pub allocation: Duration,
    /// `gate_rps` over the measured Redis ceiling.
    pub redis_load: f64,
    /// Time to drain the worst-case queue, `capacity` entries (every
    /// admitted fan queued before the writer drains any), at one writer's rate.
    pub drain_seconds: f64,
    pub cost_dollars: f64,
}

/// Events whose windows overlap, at the moment their sum peaks.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlap {
    pub events: Vec<EventId>,
    pub at: DateTime<Utc>,
    pub environments: i64,
    /// Requests per second of the events together.
    pub peak_rps: f64,
    /// Admissions per second the gate meets from them together.
    pub gate_rps: f64,
    /// New fans a second at their peak: a line counts their places on the
    /// same core.
    pub arrivals: f64,
    /// Whether any of them has no line (its arrivals meet the gate).
    pub unlined: bool,
    /// Their places together: what the gate holds for them at once.
    pub places: i64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct Preflight {
    pub events: Vec<EventFigures>,
    pub overlaps: Vec<Overlap>,
    /// On a cluster (more than one shard): each shard's busiest moment.
    pub shards: Vec<ShardPeak>,
    pub checks: Vec<Check>,
    /// Calendar entries that are not in the plan, each named with why.
    pub skipped: Vec<String>,
}

impl Preflight {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(Check::ok)
    }

    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok())
    }
}

/// Time Lambda needs to allocate `environments` of provisioned concurrency.
pub fn allocation_time(environments: i64) -> Duration {
    let rate = PROVISIONING_RATE_PER_MINUTE;
    ALLOCATION_START + Duration::minutes((environments.max(0) + rate - 1) / rate)
}

/// The preflight of the events in `events` still to close at `now`.
pub fn preflight(
    params: &ScalingParams,
    events: &[FanEvent],
    placement: &Placement,
    account: Account,
    capacities: Capacities,
    pricing: Pricing,
    now: DateTime<Utc>,
) -> Preflight {
    let events: Vec<FanEvent> = events.iter().filter(|e| e.closes_at > now).cloned().collect();
    let events = &events[..];
    let plan = ScalingPlan::new(params, events, None);
    let gb = f64::from(pricing.memory_mb) / 1024.0;
    let mut report = Preflight {
        events: Vec::new(),
        overlaps: Vec::new(),
        shards: Vec::new(),
        checks: Vec::new(),
        skipped: Vec::new(),
    };
    for need in &plan.needs {
        let Some(event) = events.iter().find(|e| e.id == need.event) else { continue };
        let drain_rate = capacities.writer_rows_per_second.max(f64::MIN_POSITIVE);
        let gate_rps = gate_rps(event);
        let figures = EventFigures {
            event: need.event.clone(),
            peak_rps: event.expected_peak_rps,
            requests_per_second: need.requests_per_second,
            gate_rps,
            capacity: event.capacity,
            environments: need.environments,
            bound: need.bound,
            scale_out_at: need.from,
            scale_in_at: need.until,
            allocation: allocation_time(need.environments),
            redis_load: gate_rps / capacities.redis_admissions_per_second.max(f64::MIN_POSITIVE),
            drain_seconds: event.capacity as f64 / drain_rate,
            cost_dollars: need.environments as f64
                * (need.until - need.from).num_seconds() as f64
                * gb
                * pricing.per_gb_second,
        };
        let label = need.event.to_string();
        let demand = Demand {
            environments: need.environments,
            requests_per_second: need.requests_per_second,
            gate_rps,
            arrivals: event.expected_peak_rps,
            unlined: event.line.is_none(),
            places: event.capacity,
        };
        report.checks.extend(account_checks(&label, &demand, account));
        report.checks.extend(gate_checks(&label, &demand, account, capacities));
        // Allocation starts when the scheduler asks (scale-out, or now when
        // that is already past) and must end by the opening.
        let starts = need.from.max(now);
        let left = (event.opens_at - starts).max(Duration::zero());
        report.checks.push(check(
            format!("{label}: provisioned concurrency allocation time (minutes)"),
            minutes(figures.allocation),
            minutes(left),
            format!(
                "start earlier: set leadMinutes to at least {} (the scheduler already raises the lead; \
                 this event is too close to its opening)",
                figures.allocation.num_minutes() + 1
            ),
        ));
        let window = (need.until - event.opens_at).num_seconds() as f64;
        report.checks.push(check(
            format!("{label}: queue drain before scale-in (seconds)"),
            figures.drain_seconds,
            window,
            "raise the writer's MaximumConcurrency or the database's capacity".to_owned(),
        ));
        report.events.push(figures);
    }
    for action in plan.actions().iter().filter(|a| a.events.len() > 1) {
        let members: Vec<&FanEvent> = events.iter().filter(|e| action.events.contains(&e.id)).collect();
        let peak_rps: f64 =
            plan.needs.iter().filter(|n| action.events.contains(&n.event)).map(|n| n.requests_per_second).sum();
        let gate: f64 = members.iter().map(|e| gate_rps(e)).sum();
        let arrivals: f64 = members.iter().map(|e| e.expected_peak_rps).sum();
        let unlined = members.iter().any(|e| e.line.is_none());
        let places = members.iter().map(|e| e.capacity).sum();
        match report.overlaps.iter_mut().find(|o| o.events == action.events) {
            Some(o) if o.environments >= action.wanted => {}
            Some(o) => (o.at, o.environments) = (action.at, action.wanted),
            None => report.overlaps.push(Overlap {
                events: action.events.clone(),
                at: action.at,
                environments: action.wanted,
                peak_rps,
                gate_rps: gate,
                arrivals,
                unlined,
                places,
            }),
        }
    }
    for o in &report.overlaps {
        let label = o.events.iter().map(EventId::as_str).collect::<Vec<_>>().join(" + ");
        let demand = Demand {
            environments: o.environments,
            requests_per_second: o.peak_rps,
            gate_rps: o.gate_rps,
            arrivals: o.arrivals,
            unlined: o.unlined,
            places: o.places,
        };
        report.checks.extend(account_checks(&label, &demand, account));
        // The gate's load adds up only on a shared shard: the members on
        // each shard, when more than one is.
        for shard in 0..placement.shards.len() {
            let members: Vec<&FanEvent> =
                events.iter().filter(|e| o.events.contains(&e.id) && placement.shard(&e.id) == shard).collect();
            if members.len() < 2 {
                continue;
            }
            let ids: Vec<&str> = members.iter().map(|e| e.id.as_str()).collect();
            let label = match placement.shards.len() {
                1 => label.clone(),
                _ => format!("{}: {}", shard_label(placement, shard), ids.join(" + ")),
            };
            let demand = Demand {
                gate_rps: members.iter().map(|e| gate_rps(e)).sum(),
                arrivals: members.iter().map(|e| e.expected_peak_rps).sum(),
                unlined: members.iter().any(|e| e.line.is_none()),
                places: members.iter().map(|e| e.capacity).sum(),
                ..demand
            };
            report.checks.extend(gate_checks(&label, &demand, account, capacities));
        }
    }
    if placement.shards.len() > 1 {
        report.shards = shard_peaks(placement, events);
        let budget = (LINE_SHARE_OF_CEILING * capacities.redis_admissions_per_second).floor();
        for peak in &report.shards {
            let ids: Vec<&str> = peak.events.iter().map(EventId::as_str).collect();
            report.checks.push(check(
                format!(
                    "{}: redis admissions/s at its peak ({})",
                    shard_label(placement, peak.shard),
                    if ids.is_empty() { "no event".to_owned() } else { ids.join(" + ") }
                ),
                peak.gate_rps,
                budget,
                format!(
                    "at most {budget:.0} a second ({:.0}% of the {:.0} one core admits) on one shard: lower these \
                     events' admissionsPerSecond to fit together, move one to another time, or add a shard (online \
                     resharding) and define the next events after it; placement puts each new event on the shard \
                     least loaded in its window",
                    LINE_SHARE_OF_CEILING * 100.0,
                    capacities.redis_admissions_per_second
                ),
            ));
        }
    }
    // API Gateway throttles at the account before any route (API Gateway
    // Developer Guide, "Throttling requests to your HTTP API"): fans at
    // their route's rate must leave the admin routes theirs.
    let routes = account.fan_route_rate + account.admin_route_rate;
    report.checks.push(check(
        "api gateway: fan and admin route throttles within the account rate".to_owned(),
        routes,
        account.api_rate,
        format!(
            "lower FanRouteThrottleRate to at most {} (the account rate less AdminRouteThrottleRate), or request \
             the API Gateway throttle quota (L-8A5B8E43) of at least {routes} rps",
            (account.api_rate - account.admin_route_rate).floor(),
        ),
    ));
    report
}

/// `shard 2`, with its primary's address when it has one.
pub fn shard_label(placement: &Placement, shard: usize) -> String {
    let primary = &placement.shards[shard].primary;
    match primary.starts_with("shard ") {
        true => format!("shard {}", shard + 1),
        false => format!("shard {} ({primary})", shard + 1),
    }
}

/// What an event, or overlapping events together, draw at their peak.
#[derive(Clone, Copy)]
struct Demand {
    environments: i64,
    requests_per_second: f64,
    gate_rps: f64,
    /// New fans a second at the peak, whose places a line counts.
    arrivals: f64,
    /// Any without a line: arrivals meet the gate unpaced.
    unlined: bool,
    /// Places the gate holds for them.
    places: i64,
}

/// The checks of what one event, or events on one shard together, ask of
/// the shard's Redis primary: its core and its memory.
fn gate_checks(label: &str, demand: &Demand, account: Account, capacities: Capacities) -> Vec<Check> {
    let Demand { gate_rps, arrivals, unlined, places, .. } = *demand;
    let ceiling = capacities.redis_admissions_per_second;
    let LineRates { at_most: line_rate, suggested } = LineRates::for_core(&capacities, arrivals);
    let redis = if unlined {
        check(
            format!("{label}: redis admissions/s on one primary"),
            gate_rps,
            ceiling,
            format!(
                "give the event a line: set admissionsPerSecond to at most {line_rate:.0} (with the line's syncs \
                 and the places they count at the peak, {:.0}% of the core that admits {ceiling:.0} fans/s), best \
                 {suggested:.0}, whose catch-up second ({LINE_CATCH_UP}x the rate) stays within it; measure the \
                 node with fanrush measure-gate",
                LINE_SHARE_OF_CEILING * 100.0
            ),
        )
    } else {
        check(
            format!("{label}: redis admissions/s on one primary (the line's rate)"),
            gate_rps,
            line_rate,
            format!(
                "lower admissionsPerSecond to at most {line_rate:.0} (with the line's syncs and the places they \
                 count at the peak, {:.0}% of the core that admits {ceiling:.0} fans/s)",
                LINE_SHARE_OF_CEILING * 100.0
            ),
        )
    };
    let mut checks = vec![redis];
    if let Some(maxmemory) = account.cache_maxmemory.filter(|m| *m > 0) {
        let bytes = places as f64 * (capacities.bytes_per_fan + capacities.bytes_per_note);
        checks.push(check(
            format!("{label}: redis memory (MB) for its places"),
            (bytes / 1e6).ceil(),
            (maxmemory as f64 / 1e6).floor(),
            "choose a CacheNodeType with more memory (an r-type), or lower the capacity; closed events' keys are \
             retired after their window"
                .to_owned(),
        ));
    }
    checks
}

/// The checks one event and an overlap share: what they draw from the
/// account and API Gateway together.
fn account_checks(label: &str, demand: &Demand, account: Account) -> Vec<Check> {
    let Demand { environments, requests_per_second: peak_rps, .. } = *demand;
    let concurrency_needed = environments + UNRESERVED_MINIMUM;
    let account_rps = ACCOUNT_RPS_PER_CONCURRENCY * account.concurrency as f64;
    vec![
        check(
            format!("{label}: lambda account concurrency"),
            concurrency_needed as f64,
            account.concurrency as f64,
            format!(
                "request Lambda \"Concurrent executions\" of at least {concurrency_needed} (+{}) in Service Quotas",
                concurrency_needed - account.concurrency
            ),
        ),
        match account.entry_cap {
            Some(cap) => check(
                format!("{label}: entry-api reserved concurrency (its cap)"),
                environments as f64,
                cap as f64,
                format!(
                    "deploy with EntryApiMaxConcurrency={environments} (reserved out of the unreserved pool), or 0 \
                     for no cap"
                ),
            ),
            None => check(
                format!("{label}: lambda unreserved concurrency"),
                environments as f64,
                grantable(
                    account.unreserved.min(account.concurrency - account.control_plane_reserved),
                    account.already_provisioned,
                ) as f64,
                "free reserved concurrency held by other functions, or raise \"Concurrent executions\"".to_owned(),
            ),
        },
        check(
            format!("{label}: lambda account requests per second"),
            peak_rps,
            account_rps,
            format!(
                "raise \"Concurrent executions\" to at least {} (10 requests per second each)",
                (peak_rps / ACCOUNT_RPS_PER_CONCURRENCY).ceil()
            ),
        ),
        check(
            format!("{label}: api gateway throttle rate"),
            peak_rps,
            account.api_rate,
            format!(
                "request the API Gateway throttle quota (L-8A5B8E43) of at least {} rps (+{}), then deploy with \
                 ApiThrottleRateQuota={}",
                peak_rps.ceil(),
                (peak_rps - account.api_rate).ceil(),
                peak_rps.ceil()
            ),
        ),
        check(
            format!("{label}: api gateway fan route throttle"),
            peak_rps,
            account.fan_route_rate,
            format!(
                "deploy with FanRouteThrottleRate={} (with AdminRouteThrottleRate, within the account's rate)",
                peak_rps.ceil()
            ),
        ),
    ]
}

fn check(name: String, needed: f64, available: f64, raise: String) -> Check {
    Check { name, needed, available, raise: (needed > available).then_some(raise) }
}

fn minutes(d: Duration) -> f64 {
    d.num_seconds() as f64 / 60.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
    }

    #[test]
    fn provisioned_concurrency_is_priced_by_the_architecture_lambda_names() {
        // Lambda's own names; arm64 is 20% cheaper per GB-second.
        let arm = price_per_gb_second("arm64").unwrap();
        let x86 = price_per_gb_second("x86_64").unwrap();
        assert!((arm / x86 - 0.8).abs() < 1e-3, "{arm} vs {x86}");
        for other in ["ARM64", "x86-64", "amd64", ""] {
            assert_eq!(price_per_gb_second(other), None, "{other:?}");
        }
    }

    fn event(id: &str, opens: (u32, u32), closes: (u32, u32), rps: f64, capacity: i64) -> FanEvent {
        FanEvent {
            id: EventId::parse(id).unwrap(),
            title: id.into(),
            opens_at: t(opens.0, opens.1),
            closes_at: t(closes.0, closes.1),
            capacity,
            expected_peak_rps: rps,
            lead_minutes: None,
            cooldown_minutes: None,
            line: None,
        }
    }

    const PRICING: Pricing = Pricing { memory_mb: 128, per_gb_second: PRICE_PER_GB_SECOND };

    fn run(events: &[FanEvent], account: Account, now: DateTime<Utc>) -> Preflight {
        preflight(&ScalingParams::default(), events, &Placement::single(), account, Capacities::default(), PRICING, now)
    }

    fn named<'a>(p: &'a Preflight, name: &str) -> &'a Check {
        p.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}: {:?}", p.checks))
    }

    #[test]
    fn a_default_account_fails_a_10000_rps_opening_on_concurrency_and_says_by_how_much() {
        let p = run(&[event("gig", (20, 0), (20, 30), 10_000.0, 100_000)], Account::defaults(), t(12, 0));
        assert!(!p.ok());
        // 1,200 environments (10,000 rps / 10 x 1.2) + the 100 Lambda keeps unreserved.
        let c = named(&p, "gig: lambda account concurrency");
        assert_eq!((c.needed, c.available, c.ok()), (1_300.0, 1_000.0, false));
        assert!(c.raise.as_deref().unwrap().contains("at least 1300 (+300)"), "{c:?}");
        // 10,000 rps is exactly API Gateway's default rate and Lambda's 10 x 1,000.
        assert!(named(&p, "gig: api gateway throttle rate").ok());
        assert!(named(&p, "gig: lambda account requests per second").ok());
        let f = &p.events[0];
        assert_eq!((f.environments, f.bound), (1_200, Bound::RequestRate));
        assert_eq!(f.allocation, Duration::minutes(3), "2 to start + 1,200 at 6,000 a minute");
        assert!((f.drain_seconds - 100_000.0 / MEASURED_WRITER_ROWS_PER_SECOND).abs() < 1e-9, "{f:?}");
        // 1,200 x (30 lead + 30 open + 10 cooldown) min x 0.125 GB x arm64's price.
        let cost = 1_200.0 * 70.0 * 60.0 * 0.125 * 0.000_003_333_4;
        assert!((f.cost_dollars - cost).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn raised_quotas_pass_every_check() {
        let raised = Account {
            concurrency: 3_000,
            unreserved: 3_000,
            api_rate: 20_000.0,
            fan_route_rate: 19_000.0,
            ..Account::defaults()
        };
        // A core that admits the peak without a line, whatever the last
        // recorded run measured on its machine.
        let core = Capacities { redis_admissions_per_second: 20_000.0, ..Capacities::default() };
        let gig = [event("gig", (20, 0), (20, 30), 10_000.0, 100_000)];
        let p = preflight(&ScalingParams::default(), &gig, &Placement::single(), raised, core, PRICING, t(12, 0));
        assert!(p.ok(), "{:?}", p.failed().collect::<Vec<_>>());
        assert!(p.checks.iter().all(|c| c.raise.is_none()));
    }

    #[test]
    fn the_control_planes_reservations_come_out_of_the_pool_once() {
        let account = Account { concurrency: 1_400, unreserved: 1_400, ..Account::defaults() };
        let gig = [event("gig", (20, 0), (20, 30), 10_000.0, 100_000)];
        // 1,200 environments fit 1,400 less the 100 kept unreserved...
        assert!(named(&run(&gig, account, t(12, 0)), "gig: lambda unreserved concurrency").ok());
        // ...but not once the stack reserves 150 for its control plane.
        let reserving = Account { control_plane_reserved: 150, ..account };
        let c = named(&run(&gig, reserving, t(12, 0)), "gig: lambda unreserved concurrency").clone();
        assert_eq!((c.needed, c.available, c.ok()), (1_200.0, 1_150.0, false));
        // Deployed, the account reports them as reserved: not counted twice.
        let deployed = Account { unreserved: 1_250, ..reserving };
        let c = named(&run(&gig, deployed, t(12, 0)), "gig: lambda unreserved concurrency").clone();
        assert_eq!(c.available, 1_150.0);
    }

    #[test]
    fn a_capped_entry_api_must_hold_the_events_environments() {
        let big = Account { concurrency: 20_000, unreserved: 20_000, entry_cap: Some(1_000), ..Account::defaults() };
        let gig = [event("gig", (20, 0), (20, 30), 10_000.0, 100_000)];
        let p = run(&gig, big, t(12, 0));
        let c = named(&p, "gig: entry-api reserved concurrency (its cap)");
        assert_eq!((c.needed, c.available, c.ok()), (1_200.0, 1_000.0, false));
        assert!(c.raise.as_deref().unwrap().contains("EntryApiMaxConcurrency=1200"), "{c:?}");
        assert!(p.checks.iter().all(|c| c.name != "gig: lambda unreserved concurrency"));
        let roomy = run(&gig, Account { entry_cap: Some(1_200), ..big }, t(12, 0));
        assert!(named(&roomy, "gig: entry-api reserved concurrency (its cap)").ok());
    }

    #[test]
    fn the_places_of_overlapping_events_must_fit_the_nodes_memory() {
        let capacities = Capacities { bytes_per_fan: 100.0, bytes_per_note: 400.0, ..Capacities::default() };
        // 500 MB: a million places at 500 bytes each fill it; two events of
        // 600,000 that overlap do not fit, each alone does.
        let node = Account { cache_maxmemory: Some(500_000_000), ..Account::defaults() };
        let events = [event("a", (10, 0), (10, 30), 100.0, 600_000), event("b", (10, 20), (11, 0), 100.0, 600_000)];
        let p = preflight(&ScalingParams::default(), &events, &Placement::single(), node, capacities, PRICING, t(8, 0));
        assert!(named(&p, "a: redis memory (MB) for its places").ok());
        let both = named(&p, "a + b: redis memory (MB) for its places");
        assert_eq!((both.needed, both.available, both.ok()), (600.0, 500.0, false));
        assert!(both.raise.as_deref().unwrap().contains("CacheNodeType"), "{both:?}");
        // No node known (a default account, or a server without maxmemory): no check.
        let p = preflight(
            &ScalingParams::default(),
            &events,
            &Placement::single(),
            Account::defaults(),
            capacities,
            PRICING,
            t(8, 0),
        );
        assert!(p.checks.iter().all(|c| !c.name.contains("memory")), "{:?}", p.checks);
    }

    #[test]
    fn the_fan_route_throttle_must_carry_the_peak_and_leave_the_admin_routes_theirs() {
        let raised = Account { concurrency: 3_000, unreserved: 3_000, api_rate: 20_000.0, ..Account::defaults() };
        // The quota was raised but the fan route was left at its default.
        let p = run(&[event("gig", (20, 0), (20, 30), 10_000.0, 100_000)], raised, t(12, 0));
        let route = named(&p, "gig: api gateway fan route throttle");
        assert_eq!((route.needed, route.available, route.ok()), (10_000.0, FAN_ROUTE_RATE, false));
        assert!(route.raise.as_deref().unwrap().contains("FanRouteThrottleRate=10000"), "{route:?}");
        // A fan route as high as the account's rate leaves the admin routes nothing.
        let greedy = Account { fan_route_rate: 20_000.0, ..raised };
        let p = run(&[event("gig", (20, 0), (20, 30), 10_000.0, 100_000)], greedy, t(12, 0));
        assert!(named(&p, "gig: api gateway fan route throttle").ok());
        let both = named(&p, "api gateway: fan and admin route throttles within the account rate");
        assert_eq!((both.needed, both.available), (20_050.0, 20_000.0));
        assert!(both.raise.as_deref().unwrap().contains("at most 19950"), "{both:?}");
    }

    #[test]
    fn overlapping_events_are_checked_together() {
        let raised = Account { concurrency: 2_000, unreserved: 2_000, ..Account::defaults() };
        // a (1,200) and b (600) each fit in 2,000; together at 10:20 they
        // need 1,800 + 100, which fits, but 15,000 rps does not fit API Gateway.
        let events = [event("a", (10, 0), (10, 30), 10_000.0, 1_000), event("b", (10, 20), (11, 0), 5_000.0, 1_000)];
        let p = run(&events, raised, t(8, 0));
        assert!(named(&p, "a: api gateway throttle rate").ok());
        assert!(named(&p, "b: api gateway throttle rate").ok());
        assert_eq!(p.overlaps.len(), 1, "{:?}", p.overlaps);
        assert_eq!((p.overlaps[0].environments, p.overlaps[0].peak_rps), (1_800, 15_000.0));
        let both = named(&p, "a + b: api gateway throttle rate");
        assert!(!both.ok() && both.raise.as_deref().unwrap().contains("ApiThrottleRateQuota=15000"), "{both:?}");
        assert!(named(&p, "a + b: lambda account concurrency").ok());
    }

    #[test]
    fn on_a_cluster_only_events_sharing_a_shard_add_up_and_each_shard_is_held_to_80_percent() {
        let big = Account { concurrency: 200_000, unreserved: 200_000, api_rate: 1e6, ..Account::defaults() };
        let core = Capacities { redis_admissions_per_second: 10_000.0, ..Capacities::default() };
        let lined = |id, rate| FanEvent {
            line: Some(crate::rules::domain::LineSettings { admissions_per_second: rate, prequeue_minutes: 0 }),
            ..event(id, (20, 0), (20, 30), 20_000.0, 10_000)
        };
        let events = [lined("a", 5_000), lined("b", 4_500), lined("c", 4_500)];
        let at = |placement: &Placement| {
            preflight(&ScalingParams::default(), &events, placement, big, core, PRICING, t(12, 0))
        };
        // One node: the three lines together need 14,000 of one core.
        let one = at(&Placement::single());
        assert!(!named(&one, "a + b + c: redis admissions/s on one primary (the line's rate)").ok());
        assert!(one.shards.is_empty());
        // Three shards: each event on its own, each shard's peak within 80%.
        let three = at(&Placement::planned(super::super::placement::even_shards(3), &events));
        assert!(
            three.checks.iter().all(|c| !(c.name.contains(" + ") && c.name.contains("redis"))),
            "no shard holds two"
        );
        assert_eq!(three.shards.len(), 3);
        for i in 1..=3 {
            let c = three
                .checks
                .iter()
                .find(|c| c.name.starts_with(&format!("shard {i}: redis admissions/s at its peak")))
                .unwrap();
            assert!(c.ok() && c.available == 8_000.0, "{c:?}");
        }
        // Two shards: two events share one, and that shard fails by name.
        let two = at(&Placement::planned(super::super::placement::even_shards(2), &events));
        let shared = two.shards.iter().find(|p| p.events.len() == 2).expect("a shard holds two");
        let label = format!("shard {}: ", shared.shard + 1);
        let c = two.checks.iter().find(|c| c.name.starts_with(&label) && c.name.contains("at its peak")).unwrap();
        assert!(!c.ok() && c.needed == 9_000.0 && c.available == 8_000.0, "{c:?}");
        assert!(c.raise.as_deref().unwrap().contains("add a shard"), "{c:?}");
    }

    #[test]
    fn an_event_created_minutes_before_it_opens_cannot_be_allocated_in_time() {
        let big = Account { concurrency: 200_000, unreserved: 200_000, api_rate: 1e6, ..Account::defaults() };
        // 100,000 rps: 12,000 environments need 2 + 2 minutes; 3 are left.
        let p = run(&[event("late", (20, 0), (20, 30), 100_000.0, 1_000)], big, t(19, 57));
        let c = named(&p, "late: provisioned concurrency allocation time (minutes)");
        assert_eq!((c.needed, c.available, c.ok()), (4.0, 3.0, false));
        // Planned ahead, the lead covers it.
        let ahead = run(&[event("late", (20, 0), (20, 30), 100_000.0, 1_000)], big, t(12, 0));
        assert!(named(&ahead, "late: provisioned concurrency allocation time (minutes)").ok());
    }

    #[test]
    fn one_redis_core_caps_one_events_admissions() {
        let big = Account { concurrency: 200_000, unreserved: 200_000, api_rate: 1e6, ..Account::defaults() };
        let p = run(&[event("huge", (20, 0), (20, 30), 50_000.0, 1_000)], big, t(12, 0));
        let c = named(&p, "huge: redis admissions/s on one primary");
        assert!(!c.ok() && c.needed == 50_000.0, "{c:?}");
        assert!((p.events[0].redis_load - 50_000.0 / MEASURED_GATE_ADMISSIONS_PER_SECOND).abs() < 1e-9);
        let LineRates { at_most, suggested } = LineRates::for_core(&Capacities::default(), 50_000.0);
        assert!(c.raise.as_deref().unwrap().contains(&format!("admissionsPerSecond to at most {at_most}")), "{c:?}");
        // The rate it suggests keeps the gate's catch-up second, the line's
        // syncs and the places they count within 80% of the core.
        assert!(c.raise.as_deref().unwrap().contains(&format!("best {suggested}")), "{c:?}");
        let busiest = suggested * LINE_CATCH_UP / MEASURED_GATE_ADMISSIONS_PER_SECOND
            + line_overhead(&Capacities::default(), 50_000.0);
        assert!(busiest <= 0.8 && busiest > 0.79, "{busiest}");
        assert!(at_most < (MEASURED_GATE_ADMISSIONS_PER_SECOND * 0.8).floor(), "the bookkeeping is paid for");
    }

    #[test]
    fn a_line_within_80_percent_of_the_core_passes_and_its_polls_are_counted() {
        let big = Account { concurrency: 200_000, unreserved: 200_000, api_rate: 1e6, ..Account::defaults() };
        let mut lined = event("huge", (20, 0), (20, 30), 50_000.0, 100_000);
        let rate = LineRates::for_core(&Capacities::default(), 50_000.0).at_most as i64;
        lined.line = Some(crate::rules::domain::LineSettings { admissions_per_second: rate, prequeue_minutes: 0 });
        let p = run(&[lined.clone()], big, t(12, 0));
        let c = named(&p, "huge: redis admissions/s on one primary (the line's rate)");
        assert!(c.ok(), "{c:?}");
        assert!(p.events[0].requests_per_second > 50_000.0, "arrivals plus polls: {:?}", p.events[0]);
        lined.line = Some(crate::rules::domain::LineSettings { admissions_per_second: rate + 1, prequeue_minutes: 0 });
        let over = run(&[lined], big, t(12, 0));
        assert!(!named(&over, "huge: redis admissions/s on one primary (the line's rate)").ok());
    }
}
