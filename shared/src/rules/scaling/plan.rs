//! The calendar's provisioned-concurrency plan.
//!
//! Each fan event needs
//! `ceil(max(expectedPeakRps x p99 duration, expectedPeakRps / 10) x headroom)`
//! environments on `entry-api:live` from `opensAt - lead` to
//! `closesAt + cooldown`. The first term is concurrency (the Weverse talk's example:
//! 10,000 rps x 0.15 s = 1,500); the second is Lambda's cap of 10 requests
//! per second per environment, which binds for any handler faster than
//! 100 ms (10,000 rps at 20 ms needs 1,000 environments, not 200). The plan
//! says which term bound ([`Bound`]). The lead is never
//! shorter than the time Lambda needs to allocate that many environments plus
//! a margin. Overlapping events add up; the sum is clamped to what the account
//! can grant, and a clamp is reported.

use crate::rules::domain::{EventId, FanEvent};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeSet;

/// The longest a plan holds provisioned concurrency before an event or
/// after it: a week. The admin API refuses leads and cooldowns of more than
/// a day, and peaks whose allocation would take longer than this.
pub const MAX_LEAD: Duration = Duration::days(7);

/// Lambda requires this much of the account's concurrency to stay unreserved.
pub const UNRESERVED_MINIMUM: i64 = 100;

/// Provisioned concurrency Lambda allocates per function per minute
/// ("Lambda can provision up to 6,000 execution environments per minute,
/// per function", AWS Lambda Developer Guide, configuring provisioned
/// concurrency).
pub const PROVISIONING_RATE_PER_MINUTE: i64 = 6_000;

/// Requests per second one execution environment can serve, whatever its
/// duration. AWS Lambda Developer Guide, "Understanding Lambda function
/// scaling", "Understanding concurrency and requests per second": "each
/// execution environment can only serve up to 10 requests per second", and
/// on an alias provisioned concurrency serves up to 10 x the allocated
/// amount per second (Lambda quotas page, "Function configuration,
/// deployment, and execution").
pub const RPS_PER_ENVIRONMENT: f64 = 10.0;

/// Which term of the need was larger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `peakRps x p99`: requests in flight at once.
    Concurrency,
    /// `peakRps / 10`: Lambda's per-environment request rate.
    RequestRate,
}

impl Bound {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Concurrency => "concurrency (rps x p99)",
            Self::RequestRate => "request rate (rps / 10 per environment)",
        }
    }
}

/// The knobs of the plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalingParams {
    /// p99 duration of `entry-api` per request.
    pub duration: std::time::Duration,
    /// Multiplier over the bare need.
    pub headroom: f64,
    /// Default scale-out lead before `opensAt`.
    pub lead: Duration,
    /// Default scale-in delay after `closesAt`.
    pub cooldown: Duration,
    /// Extra time on top of the allocation time when the lead is raised.
    pub allocation_margin: Duration,
    /// Environments Lambda allocates per minute.
    pub provisioning_rate_per_minute: i64,
}

impl Default for ScalingParams {
    fn default() -> Self {
        Self {
            // Conservative default over the measured entry-api p99 on the
            // local stack (see docs/benchmarks.md): in-region Redis and
            // SQS round trips dominate.
            duration: std::time::Duration::from_millis(20),
            headroom: 1.2,
            lead: Duration::minutes(30),
            cooldown: Duration::minutes(10),
            allocation_margin: Duration::minutes(5),
            provisioning_rate_per_minute: PROVISIONING_RATE_PER_MINUTE,
        }
    }
}

/// One event's need and the window it holds for.
#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    pub event: EventId,
    /// Requests per second at the peak: arrivals, and a line's polls.
    pub requests_per_second: f64,
    pub environments: i64,
    pub bound: Bound,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// A change of desired provisioned concurrency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanAction {
    pub at: DateTime<Utc>,
    pub provisioned_concurrency: i64,
    /// Events whose window holds at `at`.
    pub events: Vec<EventId>,
    /// The sum was above what the account can grant.
    pub clamped: bool,
    /// The sum before clamping.
    pub wanted: i64,
}

/// The provisioned-concurrency plan of a calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingPlan {
    pub needs: Vec<Need>,
    /// The most the account can grant this function, if known.
    pub grantable: Option<i64>,
}

impl ScalingParams {
    /// Environments one event needs.
    pub fn environments(&self, peak_rps: f64) -> i64 {
        self.sizing(peak_rps).0
    }

    /// Environments one event needs, and which term bound.
    pub fn sizing(&self, peak_rps: f64) -> (i64, Bound) {
        let concurrency = peak_rps * self.duration.as_secs_f64();
        let rate = peak_rps / RPS_PER_ENVIRONMENT;
        let (bare, bound) =
            if rate > concurrency { (rate, Bound::RequestRate) } else { (concurrency, Bound::Concurrency) };
        // Round away float noise (10,000 x 0.15 x 1.2 is 1800.0000000000002).
        let rounded = (bare * self.headroom * 1e6).round() / 1e6;
        (rounded.ceil().max(0.0) as i64, bound)
    }

    /// The lead for `environments`: the event's or default lead, raised to
    /// the allocation time plus a margin when that is longer, and never
    /// longer than [`MAX_LEAD`] (a need that large is the preflight's to
    /// refuse, not the plan's to overflow on).
    pub fn lead_for(&self, environments: i64, requested: Option<Duration>) -> Duration {
        let rate = self.provisioning_rate_per_minute.max(1);
        let minutes = environments.max(0).saturating_add(rate - 1) / rate;
        let allocation = Duration::try_minutes(minutes).unwrap_or(MAX_LEAD).min(MAX_LEAD) + self.allocation_margin;
        requested.unwrap_or(self.lead).max(allocation).min(MAX_LEAD)
    }

    pub fn need(&self, e: &FanEvent) -> Need {
        let requests_per_second = requests_per_second(e);
        let (environments, bound) = self.sizing(requests_per_second);
        let minutes = |m: i64| Duration::try_minutes(m.clamp(0, MAX_LEAD.num_minutes())).unwrap_or(MAX_LEAD);
        let lead = self.lead_for(environments, e.lead_minutes.map(minutes));
        let cooldown = e.cooldown_minutes.map(minutes).unwrap_or(self.cooldown);
        Need {
            event: e.id.clone(),
            requests_per_second,
            environments,
            bound,
            from: e.opens_at.checked_sub_signed(lead).unwrap_or(DateTime::<Utc>::MIN_UTC),
            until: e.closes_at.checked_add_signed(cooldown).unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

/// Requests per second an event brings to `entry-api` at its peak: its
/// arrivals, and for an event with a line the polls of its waiting fans.
pub fn requests_per_second(e: &FanEvent) -> f64 {
    let polls = e.line.map_or(0.0, |line| {
        crate::rules::line::poll::expected_polls_per_second(e.expected_peak_rps, line.admissions_per_second as f64)
    });
    e.expected_peak_rps + polls
}

/// How much of an account's concurrency one function may hold as
/// provisioned concurrency: the unreserved pool less the 100 that must stay
/// unreserved, plus what this function already holds (it is in the pool's
/// reservations already).
pub fn grantable(unreserved: i64, already_provisioned: i64) -> i64 {
    (unreserved + already_provisioned - UNRESERVED_MINIMUM).max(0)
}

impl ScalingPlan {
    pub fn new(params: &ScalingParams, events: &[FanEvent], grantable: Option<i64>) -> Self {
        let needs = events.iter().map(|e| params.need(e)).filter(|n| n.environments > 0).collect();
        Self { needs, grantable }
    }

    /// The desired provisioned concurrency at `t` (half-open windows).
    pub fn at(&self, t: DateTime<Utc>) -> PlanAction {
        let active: Vec<&Need> = self.needs.iter().filter(|n| n.from <= t && t < n.until).collect();
        let wanted: i64 = active.iter().fold(0i64, |sum, n| sum.saturating_add(n.environments));
        let granted = self.grantable.map_or(wanted, |g| wanted.min(g));
        let mut events: Vec<EventId> = active.iter().map(|n| n.event.clone()).collect();
        events.sort();
        PlanAction { at: t, provisioned_concurrency: granted, events, clamped: granted < wanted, wanted }
    }

    /// The step function: one action at every time the desired value (or the
    /// set of events behind it) changes, in time order, ending at zero.
    pub fn actions(&self) -> Vec<PlanAction> {
        let points: BTreeSet<DateTime<Utc>> = self.needs.iter().flat_map(|n| [n.from, n.until]).collect();
        let mut actions: Vec<PlanAction> = Vec::new();
        for t in points {
            let action = self.at(t);
            let changed = actions.last().is_none_or(|last| {
                last.provisioned_concurrency != action.provisioned_concurrency || last.events != action.events
            });
            if changed {
                actions.push(action);
            }
        }
        actions
    }

    /// Provisioned-concurrency GB-seconds of the whole plan at `memory_mb`.
    pub fn gb_seconds(&self, memory_mb: u32) -> f64 {
        let actions = self.actions();
        let gb = f64::from(memory_mb) / 1024.0;
        actions
            .windows(2)
            .map(|w| w[0].provisioned_concurrency as f64 * (w[1].at - w[0].at).num_milliseconds() as f64 / 1000.0 * gb)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    proptest::proptest! {
        /// Whatever a stored event holds (a peak of 1e17, times at the ends
        /// of the calendar, leads of any length), the plan is made without
        /// a panic, and every need holds a window that starts before it ends.
        #[test]
        fn the_plan_never_panics_on_a_stored_event(
            peak in proptest::prop_oneof![0.0..1e7f64, 1e7..1e300f64, proptest::strategy::Just(f64::MAX)],
            opens in proptest::prop_oneof![
                proptest::strategy::Just(DateTime::<Utc>::MIN_UTC.timestamp()),
                proptest::strategy::Just(DateTime::<Utc>::MAX_UTC.timestamp() - 1),
                0i64..4_000_000_000,
            ],
            length_s in 1i64..1_000_000,
            lead in proptest::option::of(proptest::prop_oneof![0i64..1_440, proptest::strategy::Just(i64::MAX)]),
            cooldown in proptest::option::of(proptest::prop_oneof![0i64..1_440, proptest::strategy::Just(i64::MIN)]),
            rate in proptest::option::of(1i64..1_000_000),
        ) {
            let opens_at = DateTime::from_timestamp(opens, 0).unwrap();
            let closes_at = opens_at.checked_add_signed(Duration::seconds(length_s)).unwrap_or(DateTime::<Utc>::MAX_UTC);
            let e = FanEvent {
                id: EventId::parse("extreme").unwrap(),
                title: "extreme".into(),
                opens_at,
                closes_at,
                capacity: 10_000_000,
                expected_peak_rps: peak,
                lead_minutes: lead,
                cooldown_minutes: cooldown,
                line: rate.map(|admissions_per_second| crate::rules::domain::LineSettings {
                    admissions_per_second,
                    prequeue_minutes: 0,
                }),
            };
            let plan = ScalingPlan::new(&ScalingParams::default(), &[e.clone(), e], Some(1_000));
            for need in &plan.needs {
                proptest::prop_assert!(need.from <= need.until);
            }
            let actions = plan.actions();
            proptest::prop_assert!(actions.iter().all(|a| a.provisioned_concurrency <= 1_000));
            let _ = plan.gb_seconds(128);
        }
    }

    fn event(id: &str, opens: (u32, u32), closes: (u32, u32), rps: f64) -> FanEvent {
        let t = |(h, m)| Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap();
        FanEvent {
            id: EventId::parse(id).unwrap(),
            title: id.into(),
            opens_at: t(opens),
            closes_at: t(closes),
            capacity: 1000,
            expected_peak_rps: rps,
            lead_minutes: None,
            cooldown_minutes: None,
            line: None,
        }
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
    }

    fn seed() -> ScalingParams {
        ScalingParams { duration: std::time::Duration::from_millis(150), ..Default::default() }
    }

    #[test]
    fn the_seed_example_needs_1500_bare_and_1800_with_headroom() {
        let bare = ScalingParams { headroom: 1.0, ..seed() };
        assert_eq!(bare.sizing(10_000.0), (1500, Bound::Concurrency), "10,000 rps x 150 ms");
        assert_eq!(seed().environments(10_000.0), 1800);
        assert_eq!(seed().environments(1.0), 1, "any traffic needs at least one environment");
        assert_eq!(seed().environments(0.0), 0);
    }

    #[test]
    fn a_fast_handler_is_bound_by_ten_requests_per_second_per_environment() {
        let fast = ScalingParams { duration: std::time::Duration::from_millis(20), headroom: 1.0, ..seed() };
        // 10,000 rps x 20 ms is only 200 in flight, but 200 environments
        // serve at most 2,000 rps: 1,000 are needed.
        assert_eq!(fast.sizing(10_000.0), (1000, Bound::RequestRate));
        let with_headroom = ScalingParams { headroom: 1.2, ..fast };
        assert_eq!(with_headroom.sizing(10_000.0), (1200, Bound::RequestRate), "1,000 x headroom");
        // At exactly 100 ms both terms agree; above it concurrency binds.
        let tenth = ScalingParams { duration: std::time::Duration::from_millis(100), ..fast };
        assert_eq!(tenth.sizing(10_000.0), (1000, Bound::Concurrency));
        assert_eq!(ScalingParams::default().sizing(10_000.0), (1200, Bound::RequestRate), "the defaults: 20 ms, 1.2");
    }

    #[test]
    fn the_lead_covers_allocation_time_plus_a_margin() {
        let p = seed();
        assert_eq!(p.lead_for(1800, None), Duration::minutes(30));
        assert_eq!(p.lead_for(1800, Some(Duration::minutes(2))), Duration::minutes(6), "1 min to allocate + 5");
        assert_eq!(p.lead_for(300_000, None), Duration::minutes(55), "50 min to allocate + 5");
    }

    #[test]
    fn overlapping_events_add_up_and_the_plan_steps_in_time_order() {
        // a: 10:00-10:30 at 10k rps (1800); b: 10:20-11:00 at 5k rps (900).
        let events = [event("a", (10, 0), (10, 30), 10_000.0), event("b", (10, 20), (11, 0), 5_000.0)];
        let plan = ScalingPlan::new(&seed(), &events, None);
        let steps: Vec<(DateTime<Utc>, i64, usize)> =
            plan.actions().iter().map(|a| (a.at, a.provisioned_concurrency, a.events.len())).collect();
        assert_eq!(
            steps,
            vec![
                (at(9, 30), 1800, 1), // a's lead
                (at(9, 50), 2700, 2), // b's lead
                (at(10, 40), 900, 1), // a's cooldown ends
                (at(11, 10), 0, 0),   // b's cooldown ends
            ]
        );
        assert_eq!(plan.at(at(10, 39)).provisioned_concurrency, 2700);
        assert_eq!(plan.at(at(10, 40)).provisioned_concurrency, 900, "windows are half-open");
        // GB-seconds at 128 MB: 1800 x 20 min + 2700 x 50 min + 900 x 30 min.
        let expected = (1800.0 * 1200.0 + 2700.0 * 3000.0 + 900.0 * 1800.0) * 0.125;
        assert!((plan.gb_seconds(128) - expected).abs() < 1e-6);
    }

    #[test]
    fn the_sum_is_clamped_to_what_the_account_grants_and_says_so() {
        let events = [event("a", (10, 0), (10, 30), 10_000.0), event("b", (10, 20), (11, 0), 5_000.0)];
        let plan = ScalingPlan::new(&seed(), &events, Some(grantable(2000, 0)));
        let peak = plan.at(at(10, 25));
        assert_eq!((peak.provisioned_concurrency, peak.wanted, peak.clamped), (1900, 2700, true));
        assert!(!plan.at(at(10, 45)).clamped);
        assert_eq!(grantable(50, 0), 0);
        assert_eq!(grantable(500, 1000), 1400, "what the function holds counts back into the pool");
    }

    #[test]
    fn per_event_overrides_move_the_window() {
        let mut e = event("a", (10, 0), (10, 30), 100.0);
        e.lead_minutes = Some(60);
        e.cooldown_minutes = Some(0);
        let need = seed().need(&e);
        assert_eq!((need.from, need.until), (at(9, 0), at(10, 30)));
    }

    #[test]
    fn an_event_without_traffic_needs_nothing() {
        let plan = ScalingPlan::new(&seed(), &[event("quiet", (10, 0), (11, 0), 0.0)], None);
        assert!(plan.actions().is_empty());
    }
}
