//! An opening at a line, played by fans on phones against `entry-api`
//! (JWT authorizer claims, as API Gateway delivers them). Some join the
//! pre-queue before its draw closes, a crowd arrives in its first second and a
//! thinner tail after. Each fan POSTs, and while it is told 203 `waiting`
//! it repeats the POST with its ticket when `retryAfterMs` says; a 503, a
//! 429 or no answer is retried with the spike client's backoff, keeping the
//! ticket; 202/200/409 are final.
//!
//! The network ([`Network`]): each request's round trip is drawn from a
//! lognormal distribution (median 150 ms, sigma 0.8, capped at 3 s) and
//! split between its two legs. The request reaches API Gateway (its
//! `timeEpoch`) after the first leg, the answer reaches the fan after the
//! second, and the fan waits from then. One fan in ten walks away at its
//! first waiting answer after the opening. In a hostile opening
//! ([`Hostile`]) some fans join again without their ticket many times, some
//! reload the page in the middle of their wait (the page keeps its ticket),
//! and a few poll with their ticket as fast as they can; in
//! `hostile-clients` a few clients also GET the event and their own entry
//! every 50 ms. Everything the
//! checks need is recorded: when each fan reached API Gateway, every answer
//! it had, when the last one came.

use crate::spike::{api_gateway_post, parse, Observed, Rng};
use crate::verify::Told;
use fanrush::rules::line::draw::CLOSES_BEFORE;
use fanrush_local::pool::Pool;
use fanrush_local::GatewayEvent;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::Value;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Round trips between a fan's phone and API Gateway.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Network {
    pub median_rtt_ms: f64,
    pub sigma: f64,
    pub cap_ms: f64,
}

impl Network {
    /// Phones: a median round trip of 150 ms, a long tail (sigma 0.8 puts
    /// one in ten past 420 ms and one in a hundred past 960 ms), capped at
    /// 3 s.
    pub const PHONES: Self = Self { median_rtt_ms: 150.0, sigma: 0.8, cap_ms: 3_000.0 };

    /// The round trips' distribution, in ms: lognormal around the median.
    fn round_trips(&self) -> LogNormal<f64> {
        LogNormal::new(self.median_rtt_ms.ln(), self.sigma).expect("a finite median and a positive sigma")
    }

    /// One request's legs: to API Gateway, and back.
    pub fn legs(&self, rng: &mut Rng) -> (Duration, Duration) {
        let rtt = self.round_trips().sample(rng).min(self.cap_ms);
        let up = rtt * (0.25 + 0.5 * rng.random::<f64>());
        (Duration::from_secs_f64(up / 1000.0), Duration::from_secs_f64((rtt - up) / 1000.0))
    }
}

/// Fans who do not follow the protocol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hostile {
    /// Share of fans who join again without their ticket, `rejoins` times
    /// in a row, after their first waiting answer after the opening.
    pub rejoiners: f64,
    pub rejoins: usize,
    /// Share of fans who reload the page in the middle of their wait: one
    /// POST at once, with the ticket the page kept.
    pub reloaders: f64,
    /// Fans who poll with their ticket every 50 ms, whatever they are told.
    pub hammerers: usize,
    /// Clients that GET the event and their own entry every 50 ms from the
    /// opening until the line is done.
    pub getters: usize,
}

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
    pub network: Network,
    /// Share of fans who walk away at their first waiting answer after the
    /// opening.
    pub walk_away: f64,
    pub hostile: Option<Hostile>,
}

impl Opening {
    /// The drill's: the rate far below the arrivals (300 a second against
    /// 3,000 in the first second and 1,000 pre-queued), and 3,600 places
    /// for the 4,050 of 4,500 fans who stay, so the last of them are told
    /// sold out.
    pub const DRILL: Self = Self {
        rate: 300,
        capacity: 3_600,
        prequeuers: 1_000,
        prequeue_window: Duration::from_secs(8),
        crowd: 3_000,
        tail: 500,
        tail_window: Duration::from_secs(9),
        network: Network::PHONES,
        walk_away: 0.1,
        hostile: None,
    };

    /// The same opening with fans who do not follow the protocol.
    pub const HOSTILE: Self = Self {
        hostile: Some(Hostile { rejoiners: 0.01, rejoins: 100, reloaders: 0.05, hammerers: 5, getters: 0 }),
        ..Self::DRILL
    };

    /// The hostile opening, and clients hammering the reads as well.
    pub const HOSTILE_CLIENTS: Self = Self {
        hostile: Some(Hostile { rejoiners: 0.01, rejoins: 100, reloaders: 0.05, hammerers: 5, getters: 5 }),
        ..Self::DRILL
    };

    pub fn fans(&self) -> usize {
        self.prequeuers + self.crowd + self.tail
    }

    /// About how long the line takes to let every place in, from the opening.
    pub fn duration(&self) -> Duration {
        let staying = (self.fans() as f64 * (1.0 - self.walk_away)) as i64;
        Duration::from_secs_f64(self.capacity.min(staying) as f64 / self.rate as f64)
    }
}

/// What a fan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Follows the protocol to the end.
    Follows,
    /// Walks away at its first waiting answer after the opening.
    WalksAway,
    /// Joins again without its ticket many times, then follows.
    Rejoins,
    /// Reloads the page once in the middle of its wait, then follows.
    Reloads,
    /// Polls with its ticket every 50 ms.
    Hammers,
}

impl Kind {
    /// Whether the fan follows the protocol (a reload keeps the ticket and
    /// is following it).
    pub fn follows(self) -> bool {
        matches!(self, Kind::Follows | Kind::Reloads)
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
    WalkedAway,
    GaveUp,
}

/// One fan's visit.
#[derive(Debug, Clone)]
pub struct Visit {
    pub fan: String,
    pub kind: Kind,
    /// Told it waits in the pre-queue (its first answer came before the
    /// shuffle: no position yet).
    pub prequeued: bool,
    /// When its first POST reached API Gateway.
    pub arrived: Instant,
    pub end: End,
    /// When the final answer reached the fan.
    pub ended: Instant,
    pub requests: usize,
    pub unavailable: usize,
    pub limited: usize,
    /// Its first waiting answer after the opening: when it reached the fan,
    /// and the ETA it gave.
    pub first_eta: Option<(Instant, f64)>,
    /// Every answer it had.
    pub trail: Vec<Answer>,
}

/// One answer of a visit: when it reached the fan (ms from the opening), its
/// status, and what a waiting answer said.
#[derive(Debug, Clone)]
pub struct Answer {
    pub at_ms: i64,
    pub status: u16,
    pub position: Option<i64>,
    pub ahead: Option<i64>,
    pub eta_seconds: Option<f64>,
    pub places_per_second: Option<f64>,
    pub retry_after_ms: Option<u64>,
}

impl Answer {
    /// A waiting answer's numbers agree (docs/api.md): position is ahead +
    /// 1, and the ETA is the places ahead at the speed it says the line
    /// moves, plus at most a restore's hold (rounded: a whole fan, a whole
    /// second).
    pub fn numbers_agree(&self) -> bool {
        if self.status != 203 {
            return true;
        }
        let hold = fanrush::rules::line::RESTORE_HOLD.as_secs_f64();
        match (self.position, self.ahead, self.eta_seconds, self.places_per_second) {
            (None, None, None, None) => true,
            (Some(p), Some(a), eta, Some(v)) if v > 0.0 => {
                let rounding = 1.0 + 0.5 / v;
                let at_speed = a as f64 / v;
                p == a + 1 && eta.is_none_or(|eta| eta >= at_speed - rounding && eta <= at_speed + rounding + hold)
            }
            _ => false,
        }
    }
}

/// Every fan's visit, and what the spike's checks read.
pub struct Seen {
    pub observed: Observed,
    pub visits: Vec<Visit>,
    /// The opening, as an instant and in Unix ms.
    pub opened: Instant,
    pub opened_unix_ms: i64,
}

impl Seen {
    /// Every visit as JSON, times in ms from the opening (for `--visits`),
    /// with when the gate admitted the fan (`admitted`: fan to Unix ms).
    pub fn to_json(&self, admitted: &std::collections::HashMap<String, i64>) -> Value {
        let ms = |t: Instant| ms_since(self.opened, t);
        Value::Array(
            self.visits
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "fan": v.fan,
                        "kind": format!("{:?}", v.kind),
                        "prequeued": v.prequeued,
                        "arrivedMs": ms(v.arrived),
                        "endedMs": ms(v.ended),
                        "end": format!("{:?}", v.end),
                        "requests": v.requests,
                        "admittedMs": admitted.get(&v.fan).map(|at| at - self.opened_unix_ms),
                        "trail": v.trail.iter().map(|a| serde_json::json!([a.at_ms, a.status, a.position, a.ahead, a.eta_seconds, a.places_per_second, a.retry_after_ms])).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }
}

/// Milliseconds from `from` to `t`, negative before it.
pub fn ms_since(from: Instant, t: Instant) -> i64 {
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
    let opened_unix_ms = chrono::Utc::now().timestamp_millis() + until_opening.as_millis() as i64;
    let mut rng = Rng::seed_from_u64(seed);
    let mut fans: Vec<(Instant, Kind)> = Vec::with_capacity(opening.fans());
    for i in 0..opening.fans() {
        let at = if i < opening.prequeuers {
            // Sent a longest round trip (or more) before the draw closes,
            // so the POST lands in it whatever the network.
            let margin = Duration::from_millis(opening.network.cap_ms as u64);
            let closes = opened - CLOSES_BEFORE - margin;
            let window = until_opening.saturating_sub(CLOSES_BEFORE + margin);
            closes - opening.prequeue_window.mul_f64(rng.random::<f64>()).min(window)
        } else if i < opening.prequeuers + opening.crowd {
            opened + Duration::from_secs(1).mul_f64(rng.random::<f64>())
        } else {
            opened + Duration::from_secs(1) + opening.tail_window.mul_f64(rng.random::<f64>())
        };
        fans.push((at, kind_of(&opening, i, &mut rng)));
    }
    let observed = Arc::new(Mutex::new(Observed::default()));
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let mut tasks = Vec::with_capacity(fans.len());
    for (i, (at, kind)) in fans.into_iter().enumerate() {
        let (pool, observed, permits) = (pool.clone(), observed.clone(), permits.clone());
        let (fan, event) = (format!("{prefix}{i:05}"), event.to_owned());
        let seed: u64 = rng.random();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let shared = Fan { pool: &pool, event: &event, opened, opening, permits: &permits, observed: &observed };
            shared.visit(fan, kind, seed).await
        }));
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let getters: Vec<_> = (0..opening.hostile.map_or(0, |h| h.getters))
        .map(|k| {
            let (pool, observed, done) = (pool.clone(), observed.clone(), done.clone());
            let (getter, event) = (format!("{prefix}get{k}"), event.to_owned());
            tokio::spawn(async move { hammer_reads(&pool, &event, &getter, opened, &done, &observed).await })
        })
        .collect();
    let mut visits = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(v) = t.await {
            visits.push(v);
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for g in getters {
        let _ = g.await;
    }
    let mut observed = Arc::try_unwrap(observed).map(|m| m.into_inner().unwrap()).unwrap_or_default();
    for v in &visits {
        let told = match v.end {
            End::Admitted { position } => Told::Accepted(position),
            End::SoldOut | End::Refused { .. } => Told::Refused,
            End::GaveUp | End::WalkedAway => Told::Unanswered,
        };
        observed.told.insert(v.fan.clone(), told);
        match v.end {
            End::SoldOut => observed.sold_out += 1,
            End::GaveUp => observed.gave_up += 1,
            _ => {}
        }
    }
    Seen { observed, visits, opened, opened_unix_ms }
}

/// A client that GETs the event and its own entry every [`HAMMER`] from
/// the opening until `done`; each answer is tallied with the fans'.
async fn hammer_reads(
    pool: &Pool,
    event: &str,
    getter: &str,
    opened: Instant,
    done: &AtomicBool,
    observed: &Mutex<Observed>,
) {
    tokio::time::sleep_until(opened.into()).await;
    let routes = [
        (format!("/events/{event}"), "GET /events/{eventId}"),
        (format!("/events/{event}/entries/me"), "GET /events/{eventId}/entries/me"),
    ];
    let mut n = 0usize;
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        let (path, route) = &routes[n % 2];
        n += 1;
        let request = GatewayEvent::new("GET", path)
            .from_api("drill")
            .route(route, &[("eventId", event)])
            .request_id("drill")
            .header("host", "drill.local")
            .fan(getter)
            .received_at(chrono::Utc::now())
            .to_json();
        let status = match pool.invoke(&request, Duration::from_secs(5)).await {
            Ok(a) => parse(&a.body).0,
            Err(_) => 504,
        };
        {
            let mut o = observed.lock().unwrap();
            o.attempts += 1;
            *o.reads.entry(status.to_string()).or_default() += 1;
        }
        tokio::time::sleep(HAMMER).await;
    }
}

/// What the `i`th fan does: a hostile opening's shares first, then one in
/// `walk_away` walks away.
fn kind_of(opening: &Opening, i: usize, rng: &mut Rng) -> Kind {
    let u = rng.random::<f64>();
    if let Some(h) = opening.hostile {
        // Spread over the whole line, a few of every kind of arrival.
        if i % (opening.fans() / h.hammerers.max(1)).max(1) == 7 {
            return Kind::Hammers;
        }
        if u < h.rejoiners {
            return Kind::Rejoins;
        }
        if u < h.rejoiners + h.reloaders {
            return Kind::Reloads;
        }
    }
    if rng.random::<f64>() < opening.walk_away {
        Kind::WalksAway
    } else {
        Kind::Follows
    }
}

/// The longest a fan stays, and the most requests it sends.
const PATIENCE: Duration = Duration::from_secs(180);
const MAX_REQUESTS: usize = 400;
/// A hammering fan's poll.
const HAMMER: Duration = Duration::from_millis(50);

/// What every fan of an opening shares.
struct Fan<'a> {
    pool: &'a Pool,
    event: &'a str,
    opened: Instant,
    opening: Opening,
    permits: &'a tokio::sync::Semaphore,
    observed: &'a Mutex<Observed>,
}

impl Fan<'_> {
    /// One POST through the network: the request's leg, API Gateway and
    /// entry-api, the answer's leg. Returns the status, `Retry-After`, the
    /// body, and when the request reached API Gateway.
    async fn post(&self, fan: &str, ticket: Option<&str>, rng: &mut Rng) -> (u16, Option<Duration>, Value, Instant) {
        let (up, down) = self.opening.network.legs(rng);
        tokio::time::sleep(up).await;
        let reached = Instant::now();
        let request = api_gateway_post(self.event, fan, ticket);
        let answer = {
            let _permit = self.permits.acquire().await.expect("semaphore open");
            self.pool.invoke(&request, Duration::from_secs(5)).await
        };
        tokio::time::sleep(down).await;
        let (status, retry_after, body) = match &answer {
            Ok(a) => parse(&a.body),
            Err(_) => (504, None, Value::Null),
        };
        let mut o = self.observed.lock().unwrap();
        o.attempts += 1;
        *o.statuses.entry(status.to_string()).or_default() += 1;
        (status, retry_after, body, reached)
    }

    async fn visit(&self, fan: String, kind: Kind, seed: u64) -> Visit {
        let mut rng = Rng::seed_from_u64(seed);
        let started = Instant::now();
        let mut v = Visit {
            fan: fan.clone(),
            kind,
            prequeued: false,
            arrived: started,
            end: End::GaveUp,
            ended: started,
            requests: 0,
            unavailable: 0,
            limited: 0,
            first_eta: None,
            trail: Vec::new(),
        };
        let mut ticket: Option<String> = None;
        let mut refusals = 0u32;
        let mut waiting_since: Option<Instant> = None;
        let mut reloaded = false;
        while v.requests < MAX_REQUESTS && started.elapsed() < PATIENCE {
            let (status, retry_after, body, reached) = self.post(&fan, ticket.as_deref(), &mut rng).await;
            if v.requests == 0 {
                v.arrived = reached;
            }
            v.requests += 1;
            let now = Instant::now();
            v.trail.push(answer_of(self.opened, now, status, &body));
            let wait = match status {
                203 => {
                    refusals = 0;
                    if v.requests == 1 {
                        v.prequeued = body["position"].is_null() && body["opensInSeconds"].is_u64();
                    }
                    ticket = body["ticket"].as_str().map(str::to_owned).or(ticket);
                    let told = Duration::from_millis(body["retryAfterMs"].as_u64().unwrap_or(1000));
                    if now >= self.opened && v.first_eta.is_none() {
                        v.first_eta = body["etaSeconds"].as_f64().map(|eta| (now, eta));
                        match kind {
                            Kind::WalksAway => {
                                (v.end, v.ended) = (End::WalkedAway, now);
                                return v;
                            }
                            Kind::Rejoins => {
                                if let Some(end) = self.rejoin(&mut v, &mut rng).await {
                                    v.end = end;
                                    return v;
                                }
                            }
                            _ => {}
                        }
                    }
                    let since = *waiting_since.get_or_insert(now);
                    if kind == Kind::Hammers {
                        HAMMER
                    } else if kind == Kind::Reloads && !reloaded && now >= self.opened && now - since > told / 2 {
                        // A reload in the middle of the wait: at once, ticket kept.
                        reloaded = true;
                        Duration::ZERO
                    } else {
                        told
                    }
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
                    v.unavailable += usize::from(status == 503);
                    v.limited += usize::from(status == 429);
                    let backoff = Duration::from_millis(100u64 << refusals.min(5)).min(Duration::from_secs(2));
                    refusals += 1;
                    if kind == Kind::Hammers {
                        HAMMER
                    } else {
                        retry_after.unwrap_or_default().max(backoff.mul_f64(rng.random::<f64>()))
                    }
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

    /// Joins again without the ticket, `rejoins` times in a row, and then
    /// goes on with its ticket; `Some` when one of them was a final answer.
    async fn rejoin(&self, v: &mut Visit, rng: &mut Rng) -> Option<End> {
        let times = self.opening.hostile.map_or(0, |h| h.rejoins);
        for _ in 0..times {
            let (status, _, body, _) = self.post(&v.fan, None, rng).await;
            v.requests += 1;
            v.limited += usize::from(status == 429);
            let now = Instant::now();
            v.trail.push(answer_of(self.opened, now, status, &body));
            let end = match status {
                200 | 202 => Some(End::Admitted { position: body["position"].as_i64().unwrap_or(-1) }),
                409 if body["error"] == "sold_out" => Some(End::SoldOut),
                _ => None,
            };
            if end.is_some() {
                v.ended = now;
                return end;
            }
        }
        None
    }
}

fn answer_of(opened: Instant, now: Instant, status: u16, body: &Value) -> Answer {
    Answer {
        at_ms: ms_since(opened, now),
        status,
        position: body["position"].as_i64(),
        ahead: body["ahead"].as_i64(),
        eta_seconds: body["etaSeconds"].as_f64(),
        places_per_second: body["placesPerSecond"].as_f64(),
        retry_after_ms: body["retryAfterMs"].as_u64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_round_trips_have_their_median_their_tail_and_their_cap() {
        let mut rng = Rng::seed_from_u64(7);
        let mut rtts: Vec<f64> = (0..20_000)
            .map(|_| {
                let (up, down) = Network::PHONES.legs(&mut rng);
                assert!(
                    up <= down * 3 && down <= up * 3,
                    "each leg carries a quarter to three quarters: {up:?} {down:?}"
                );
                (up + down).as_secs_f64() * 1000.0
            })
            .collect();
        rtts.sort_by(f64::total_cmp);
        let at = |q: f64| rtts[(q * rtts.len() as f64) as usize];
        assert!((140.0..160.0).contains(&at(0.5)), "median {}", at(0.5));
        // sigma 0.8: one in ten past 150 * e^(0.8 * 1.2816) = 419 ms.
        assert!((390.0..450.0).contains(&at(0.9)), "p90 {}", at(0.9));
        assert!(rtts[rtts.len() - 1] <= 3_000.0 + 1e-6, "capped at 3 s");
    }
}
