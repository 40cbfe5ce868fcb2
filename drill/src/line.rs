//! An opening at a line: fans that follow the line's protocol against
//! `entry-api` (JWT authorizer claims, as API Gateway delivers them). Some
//! join the pre-queue before the opening, a crowd arrives in its first
//! second and a thinner tail after. Each fan POSTs, and while it is told
//! 203 `waiting` it repeats the POST with its ticket when `retryAfterMs`
//! says; a 503, a 429 or no answer is retried with the spike client's
//! backoff, keeping the ticket; 202/200/409 are final. Everything a fairness
//! check needs is recorded: when each fan arrived, what it was told on the
//! way, when it was admitted or refused.

use crate::spike::{api_gateway_post, parse, Observed, Rng};
use crate::verify::Told;
use fanrush_local::pool::Pool;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shape of an opening at a line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Opening {
    /// The event's `admissionsPerSecond`.
    pub rate: i64,
    pub capacity: i64,
    /// Fans who join in the pre-queue, spread over the window before the
    /// opening.
    pub prequeuers: usize,
    pub prequeue_window: Duration,
    /// Fans who arrive in the opening's first second.
    pub crowd: usize,
    /// Fans who arrive after it, spread over `tail_window`.
    pub tail: usize,
    pub tail_window: Duration,
}

impl Opening {
    /// The drill's: the rate far below the arrivals (300 a second against
    /// 3,000 in the first second and 1,000 pre-queued), and 4,400 places for
    /// 4,500 fans, so the last of the tail is told sold out.
    pub const DRILL: Self = Self {
        rate: 300,
        capacity: 4_400,
        prequeuers: 1_000,
        prequeue_window: Duration::from_secs(8),
        crowd: 3_000,
        tail: 500,
        tail_window: Duration::from_secs(9),
    };

    pub fn fans(&self) -> usize {
        self.prequeuers + self.crowd + self.tail
    }

    /// About how long the line takes to let every place in, from the opening.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.capacity.min(self.fans() as i64) as f64 / self.rate as f64)
    }
}

/// How one fan's visit ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum End {
    Admitted {
        position: i64,
    },
    SoldOut,
    /// Any other final answer (a defect the table shows).
    Refused {
        status: u16,
    },
    GaveUp,
}

/// One fan's visit.
#[derive(Debug, Clone)]
pub struct Visit {
    pub fan: String,
    /// Told it waits in the pre-queue (its first answer came before the
    /// shuffle: no position yet).
    pub prequeued: bool,
    /// Its first POST.
    pub arrived: Instant,
    pub end: End,
    /// When the final answer came.
    pub ended: Instant,
    pub requests: usize,
    pub unavailable: usize,
    /// Its first waiting answer after the opening: when, and the ETA it gave.
    pub first_eta: Option<(Instant, f64)>,
    /// Every answer it had, for `--visits`.
    pub trail: Vec<Answer>,
}

/// One answer of a visit: when it came (ms from the opening), its status,
/// and what a waiting answer said.
#[derive(Debug, Clone)]
pub struct Answer {
    pub at_ms: i64,
    pub status: u16,
    pub position: Option<i64>,
    pub retry_after_ms: Option<u64>,
}

/// Every fan's visit, and what the spike's checks read.
pub struct Seen {
    pub observed: Observed,
    pub visits: Vec<Visit>,
    pub opened: Instant,
}

impl Seen {
    /// Every visit as JSON, times in ms from the opening (for `--visits`).
    pub fn to_json(&self) -> Value {
        let ms = |t: Instant| ms_since(self.opened, t);
        Value::Array(
            self.visits
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "fan": v.fan,
                        "prequeued": v.prequeued,
                        "arrivedMs": ms(v.arrived),
                        "endedMs": ms(v.ended),
                        "end": format!("{:?}", v.end),
                        "requests": v.requests,
                        "trail": v.trail.iter().map(|a| serde_json::json!([a.at_ms, a.status, a.position, a.retry_after_ms])).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }
}

/// Milliseconds from `from` to `t`, negative before it.
fn ms_since(from: Instant, t: Instant) -> i64 {
    match t.checked_duration_since(from) {
        Some(d) => d.as_millis() as i64,
        None => -(from.duration_since(t).as_millis() as i64),
    }
}

/// Runs the opening against `event`, which opens `until_opening` from now,
/// with fan ids `{prefix}{n}`; at most `in_flight` requests at once.
pub async fn run(
    pool: Arc<Pool>,
    event: &str,
    prefix: &str,
    opening: Opening,
    until_opening: Duration,
    in_flight: usize,
    seed: u64,
) -> Seen {
    let start = Instant::now();
    let opened = start + until_opening;
    let mut rng = Rng::new(seed);
    let mut arrivals: Vec<Instant> = Vec::with_capacity(opening.fans());
    for _ in 0..opening.prequeuers {
        // At least a tenth of a second early, so the POST lands before the
        // opening.
        let before = opening.prequeue_window.mul_f64(rng.unit()).clamp(Duration::from_millis(100), until_opening);
        arrivals.push(opened - before);
    }
    for _ in 0..opening.crowd {
        arrivals.push(opened + Duration::from_secs(1).mul_f64(rng.unit()));
    }
    for _ in 0..opening.tail {
        arrivals.push(opened + Duration::from_secs(1) + opening.tail_window.mul_f64(rng.unit()));
    }
    let observed = Arc::new(Mutex::new(Observed::default()));
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let mut tasks = Vec::with_capacity(arrivals.len());
    for (i, at) in arrivals.into_iter().enumerate() {
        let (pool, observed, permits) = (pool.clone(), observed.clone(), permits.clone());
        let (fan, event) = (format!("{prefix}{i:05}"), event.to_owned());
        let seed = seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            visit(&pool, &event, fan, opened, &permits, &observed, seed).await
        }));
    }
    let mut visits = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(v) = t.await {
            visits.push(v);
        }
    }
    let mut observed = Arc::try_unwrap(observed).map(|m| m.into_inner().unwrap()).unwrap_or_default();
    for v in &visits {
        let told = match v.end {
            End::Admitted { position } => Told::Accepted(position),
            End::SoldOut | End::Refused { .. } => Told::Refused,
            End::GaveUp => Told::Unanswered,
        };
        observed.told.insert(v.fan.clone(), told);
        match v.end {
            End::SoldOut => observed.sold_out += 1,
            End::GaveUp => observed.gave_up += 1,
            _ => {}
        }
    }
    Seen { observed, visits, opened }
}

/// The longest a fan stays, and the most requests it sends.
const PATIENCE: Duration = Duration::from_secs(180);
const MAX_REQUESTS: usize = 400;

#[allow(clippy::too_many_arguments)]
async fn visit(
    pool: &Pool,
    event: &str,
    fan: String,
    opened: Instant,
    permits: &tokio::sync::Semaphore,
    observed: &Mutex<Observed>,
    seed: u64,
) -> Visit {
    let mut rng = Rng::new(seed);
    let arrived = Instant::now();
    let mut v = Visit {
        fan,
        prequeued: false,
        arrived,
        end: End::GaveUp,
        ended: arrived,
        requests: 0,
        unavailable: 0,
        first_eta: None,
        trail: Vec::new(),
    };
    let mut ticket: Option<String> = None;
    let mut refusals = 0u32;
    while v.requests < MAX_REQUESTS && arrived.elapsed() < PATIENCE {
        let request = api_gateway_post(event, &v.fan, ticket.as_deref());
        let answer = {
            let _permit = permits.acquire().await.expect("semaphore open");
            pool.invoke(&request, Duration::from_secs(5)).await
        };
        v.requests += 1;
        let (status, retry_after, body) = match &answer {
            Ok(a) => parse(&a.body),
            Err(_) => (504, None, Value::Null),
        };
        {
            let mut o = observed.lock().unwrap();
            o.attempts += 1;
            *o.statuses.entry(status.to_string()).or_default() += 1;
        }
        let now = Instant::now();
        v.trail.push(Answer {
            at_ms: ms_since(opened, now),
            status,
            position: body["position"].as_i64(),
            retry_after_ms: body["retryAfterMs"].as_u64(),
        });
        let wait = match status {
            203 => {
                refusals = 0;
                if v.requests == 1 {
                    v.prequeued = body["position"].is_null() && body["opensInSeconds"].is_u64();
                }
                ticket = body["ticket"].as_str().map(str::to_owned).or(ticket);
                if v.first_eta.is_none() && now >= opened {
                    v.first_eta = body["etaSeconds"].as_f64().map(|eta| (now, eta));
                }
                Duration::from_millis(body["retryAfterMs"].as_u64().unwrap_or(1000))
            }
            200 | 202 => {
                v.end = match body["position"].as_i64() {
                    Some(position) => End::Admitted { position },
                    None => End::Refused { status },
                };
                v.ended = now;
                return v;
            }
            409 if body["error"] == "sold_out" => {
                (v.end, v.ended) = (End::SoldOut, now);
                return v;
            }
            429 | 503 | 504 => {
                if status == 503 {
                    v.unavailable += 1;
                }
                let backoff = Duration::from_millis(100u64 << refusals.min(5)).min(Duration::from_secs(2));
                refusals += 1;
                retry_after.unwrap_or_default().max(backoff.mul_f64(rng.unit()))
            }
            _ => {
                (v.end, v.ended) = (End::Refused { status }, now);
                return v;
            }
        };
        tokio::time::sleep(wait).await;
    }
    v.ended = Instant::now();
    v
}
