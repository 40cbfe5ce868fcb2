//! The scheduler's reconcile loop: bring `entry-api:live`'s provisioned
//! concurrency to what the calendar wants *now*, tell Slack about it, and
//! check readiness shortly before each event opens.
//!
//! At every scale-out it runs the preflight over the starting events (when
//! configured with [`Provisioner::with_preflight`]) and posts it to Slack:
//! a quota that is short is said before the fans arrive.
//!
//! Idempotent: with nothing to change it makes no write call, and two
//! overlapping runs compute and request the same value. In dry-run (local)
//! mode it talks to no Lambda API at all and only says what it would do.

use crate::adapters::lambda_control::{
    AccountConcurrency, ControlError, ProvisionedConcurrency, ProvisionedState, ProvisionedStatus,
};
use crate::adapters::redis_gate::{new_line_seed, EntryGate, SeedWrite};
use crate::adapters::slack::{Notice, SlackNotifier};
use crate::rules::domain::{rfc3339, FanEvent};
use crate::rules::scaling::placement::Placement;
use crate::rules::scaling::plan::grantable;
use crate::rules::scaling::preflight::{preflight, Account, Capacities, Pricing};
use crate::rules::scaling::{PlanAction, ScalingParams, ScalingPlan};
use chrono::{DateTime, Duration, Utc};
use metrics::gauge;

/// How long before `opensAt` readiness is checked.
pub const READINESS_CHECK_BEFORE: Duration = Duration::minutes(5);

/// What one reconcile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Unchanged,
    Set(i64),
    Removed,
    WouldSet(i64),
    WouldRemove,
}

/// The outcome of one reconcile.
#[derive(Debug, Clone)]
pub struct Reconciled {
    pub desired: PlanAction,
    pub previous: i64,
    pub applied: Applied,
    pub alerts: usize,
}

/// Where the scheduler acts.
pub enum Target {
    /// The real control plane.
    Lambda(ProvisionedConcurrency),
    /// Dry run: no Lambda calls; `account_limit`, if known, bounds the plan.
    DryRun { account_limit: Option<i64> },
}

/// What the preflight needs besides the account's Lambda concurrency (read
/// with `GetAccountSettings`): API Gateway's quota, which no API reports to
/// the function, and the measured capacities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreflightInputs {
    pub api_rate: f64,
    pub api_burst: f64,
    /// The HTTP API's fan and admin route throttles.
    pub fan_route_rate: f64,
    pub admin_route_rate: f64,
    pub capacities: Capacities,
    pub pricing: Pricing,
}

pub struct Provisioner {
    target: Target,
    notifier: SlackNotifier,
    params: ScalingParams,
    preflight: Option<PreflightInputs>,
    /// entry-api's reserved concurrency, when the stack caps it: its
    /// provisioned concurrency comes out of that reservation, never more.
    entry_cap: Option<i64>,
}

impl Provisioner {
    pub fn new(target: Target, notifier: SlackNotifier, params: ScalingParams) -> Self {
        Self { target, notifier, params, preflight: None, entry_cap: None }
    }

    /// entry-api runs with this reserved concurrency (the template's
    /// `EntryApiMaxConcurrency`): the plan provisions at most that much,
    /// whatever the account's unreserved pool holds.
    pub fn with_entry_cap(mut self, cap: Option<i64>) -> Self {
        self.entry_cap = cap;
        self
    }

    /// Runs the preflight at every scale-out and posts it to Slack.
    pub fn with_preflight(mut self, inputs: PreflightInputs) -> Self {
        self.preflight = Some(inputs);
        self
    }

    pub fn notifier(&self) -> &SlackNotifier {
        &self.notifier
    }

    /// Reconciles once. `calendar` drives the plan; `publishable` are the
    /// gate's own events (from PostgreSQL), re-published at scale-out to
    /// pre-warm the cache.
    pub async fn reconcile(
        &self,
        calendar: &[FanEvent],
        publishable: &[FanEvent],
        gate: Option<&EntryGate>,
        now: DateTime<Utc>,
    ) -> Result<Reconciled, ControlError> {
        // Any failure also reaches Slack as a scheduler error.
        let result: Result<Reconciled, ControlError> = async {
            let current = match &self.target {
                Target::Lambda(control) => control.current().await?,
                Target::DryRun { .. } => None,
            };
            let previous = current.as_ref().map_or(0, |c| c.requested);
            let wanted = ScalingPlan::new(&self.params, calendar, None).at(now);
            let account = if wanted.wanted == 0 {
                None
            } else {
                match &self.target {
                    Target::Lambda(control) => Some(control.account().await?),
                    Target::DryRun { account_limit } => {
                        account_limit.map(|l| AccountConcurrency { limit: l, unreserved: l })
                    }
                }
            };
            // In a dry run nothing is held (previous is 0) and the whole
            // limit counts as unreserved: the same rule as in AWS.
            // A capped entry-api draws its provisioned concurrency from its
            // own reservation ("Configuring reserved concurrency for a
            // function", Lambda Developer Guide), not from the pool.
            let limit = match self.entry_cap {
                Some(cap) => Some(cap),
                None => account.map(|a| grantable(a.unreserved, previous)),
            };
            let desired = ScalingPlan::new(&self.params, calendar, limit).at(now);
            gauge!("DesiredProvisionedConcurrency").set(desired.provisioned_concurrency as f64);
            gauge!("ActualProvisionedConcurrency").set(current.as_ref().map_or(0, |c| c.allocated) as f64);
            let mut alerts = 0;

            let applied = if desired.provisioned_concurrency == previous {
                Applied::Unchanged
            } else {
                if desired.clamped {
                    alerts += 1;
                    self.notifier
                        .notify(&Notice::Clamped {
                            wanted: desired.wanted,
                            granted: desired.provisioned_concurrency,
                            events: ids(&desired),
                        })
                        .await;
                }
                let applied = self.apply(desired.provisioned_concurrency, current.is_some()).await?;
                let reason = match (&applied, desired.provisioned_concurrency > previous) {
                    (Applied::WouldSet(_) | Applied::WouldRemove, _) => "dry run: would apply".to_owned(),
                    (_, true) => "events entering their scale-out window".to_owned(),
                    (_, false) => "events past their cooldown".to_owned(),
                };
                self.notifier
                    .notify(&Notice::Scaled {
                        from: previous,
                        to: desired.provisioned_concurrency,
                        events: ids(&desired),
                        reason,
                    })
                    .await;
                if desired.provisioned_concurrency > previous {
                    self.prewarm(&desired, publishable, gate).await;
                    alerts += self.preflight(calendar, &desired, gate, account, previous, now).await;
                }
                applied
            };

            alerts += self.check_readiness(calendar, &desired, current, now).await?;
            Ok(Reconciled { desired, previous, applied, alerts })
        }
        .await;
        if let Err(e) = &result {
            self.notifier.notify(&Notice::SchedulerError { message: e.to_string() }).await;
        }
        result
    }

    async fn apply(&self, to: i64, exists: bool) -> Result<Applied, ControlError> {
        match &self.target {
            Target::Lambda(control) if to == 0 => {
                if exists {
                    control.remove().await?;
                }
                Ok(Applied::Removed)
            }
            Target::Lambda(control) => {
                control.set(to).await?;
                Ok(Applied::Set(to))
            }
            Target::DryRun { .. } if to == 0 => Ok(Applied::WouldRemove),
            Target::DryRun { .. } => Ok(Applied::WouldSet(to)),
        }
    }

    /// Re-publishes the starting events so the gate holds them before the
    /// spike. Publishing never resets counters; a failure is only logged.
    async fn prewarm(&self, desired: &PlanAction, publishable: &[FanEvent], gate: Option<&EntryGate>) {
        let Some(gate) = gate else { return };
        for event in publishable.iter().filter(|e| desired.events.contains(&e.id)) {
            if let Err(e) = gate.publish(event, SeedWrite::IfMissing(&new_line_seed())).await {
                tracing::warn!(event = %event.id, error = %e, "pre-warm publish failed");
            }
        }
    }

    /// Posts the preflight of the events in `desired` to Slack; 1 when a
    /// check failed (an alert), else 0.
    async fn preflight(
        &self,
        calendar: &[FanEvent],
        desired: &PlanAction,
        gate: Option<&EntryGate>,
        account: Option<AccountConcurrency>,
        previous: i64,
        now: DateTime<Utc>,
    ) -> usize {
        let Some(inputs) = self.preflight else { return 0 };
        // The node's memory as it reports it, and where the events live;
        // unknown when the gate is unreachable (the memory check is then
        // left out, and every overlap is read as sharing one core).
        let (cache_maxmemory, placement) = match gate {
            Some(gate) => (gate.maxmemory().await.ok(), placement_of(gate, calendar).await),
            None => (None, Placement::single()),
        };
        let events: Vec<FanEvent> = calendar.iter().filter(|e| desired.events.contains(&e.id)).cloned().collect();
        // Unknown in a dry run without ACCOUNT_CONCURRENCY_LIMIT: AWS's defaults.
        let defaults = Account::defaults();
        let account = Account {
            concurrency: account.map_or(defaults.concurrency, |a| a.limit),
            unreserved: account.map_or(defaults.unreserved, |a| a.unreserved),
            // Deployed: the account's unreserved pool already leaves them out.
            control_plane_reserved: 0,
            entry_cap: self.entry_cap,
            cache_maxmemory,
            already_provisioned: previous,
            api_rate: inputs.api_rate,
            api_burst: inputs.api_burst,
            fan_route_rate: inputs.fan_route_rate,
            admin_route_rate: inputs.admin_route_rate,
        };
        let report = preflight(&self.params, &events, &placement, account, inputs.capacities, inputs.pricing, now);
        let failed: Vec<String> = report
            .failed()
            .map(|c| {
                let raise = c.raise.as_deref().unwrap_or("");
                format!("{} needs {} but has {}: {raise}", c.name, c.needed, c.available)
            })
            .collect();
        let alert = usize::from(!failed.is_empty());
        self.notifier.notify(&Notice::Preflight { events: ids(desired), checks: report.checks.len(), failed }).await;
        alert
    }

    /// Alerts when an event opens within [`READINESS_CHECK_BEFORE`] and the
    /// configuration is not READY with everything allocated, and whenever it
    /// is FAILED.
    async fn check_readiness(
        &self,
        calendar: &[FanEvent],
        desired: &PlanAction,
        before: Option<ProvisionedState>,
        now: DateTime<Utc>,
    ) -> Result<usize, ControlError> {
        let Target::Lambda(control) = &self.target else { return Ok(0) };
        let due: Vec<&FanEvent> = calendar
            .iter()
            .filter(|e| {
                let check_at = e.opens_at - READINESS_CHECK_BEFORE;
                check_at <= now && now < check_at + Duration::minutes(1) && desired.events.contains(&e.id)
            })
            .collect();
        let failed = before.as_ref().is_some_and(|s| s.status == ProvisionedStatus::Failed);
        if due.is_empty() && !failed {
            return Ok(0);
        }
        let state = control.current().await?;
        let mut alerts = 0;
        let names: Vec<String> = if due.is_empty() {
            ids(desired)
        } else {
            due.iter().map(|e| format!("{} (opens {})", e.id, rfc3339(e.opens_at))).collect()
        };
        let not_ready = match &state {
            None => !due.is_empty(),
            Some(s) => s.status == ProvisionedStatus::Failed || (!due.is_empty() && !s.is_ready()),
        };
        if not_ready {
            for name in names {
                alerts += 1;
                self.notifier
                    .notify(&Notice::NotReady {
                        event: name,
                        status: state.as_ref().map_or("NONE", |s| s.status.as_str()).to_owned(),
                        requested: state.as_ref().map_or(0, |s| s.requested),
                        allocated: state.as_ref().map_or(0, |s| s.allocated),
                        reason: state.as_ref().and_then(|s| s.reason.clone()),
                    })
                    .await;
            }
        }
        Ok(alerts)
    }
}

fn ids(action: &PlanAction) -> Vec<String> {
    action.events.iter().map(|e| e.to_string()).collect()
}

/// Where the gate holds the calendar's events: its shards and each event's
/// tag, as the gate lists them; one node when the gate cannot say (the
/// preflight then adds every overlap's load on one core, the cautious
/// reading).
async fn placement_of(gate: &EntryGate, calendar: &[FanEvent]) -> Placement {
    let Ok(shards) = gate.shards().await else { return Placement::single() };
    let mut tags = Vec::new();
    for e in calendar {
        if let Ok(Some(tag)) = gate.tag_of(&e.id).await {
            tags.push((e.id.clone(), tag));
        }
    }
    Placement { shards, tags }
}
