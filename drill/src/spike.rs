//! The spike: fans entering one event through `entry-api`, shaped as API
//! Gateway would deliver them (JWT authorizer claims, never a header), with
//! the retries of a well-behaved client: exponential backoff with full
//! jitter after a 503 or no answer, `Retry-After` honoured, sold out final.

use crate::verify::Told;
use fanrush_local::pool::Pool;
use fanrush_local::GatewayEvent;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shape of the spike.
#[derive(Debug, Clone)]
pub struct Shape {
    pub requests: usize,
    pub fans: usize,
    /// First requests arrive uniformly over this long.
    pub duration: Duration,
    /// A fan gives up after this many attempts or this long.
    pub max_attempts: u32,
    pub patience: Duration,
    /// API Gateway's integration timeout stand-in.
    pub attempt_timeout: Duration,
    /// Requests in flight at once (the client side's concurrency).
    pub in_flight: usize,
}

/// When a fan's second request follows its first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// A reload, 0.2 to 2 s later.
    Reload,
    /// A double tap, within 5 ms: both requests are in flight at once, in
    /// two execution environments.
    DoubleTap,
}

/// What the spike saw.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// HTTP attempts, by status ("504" = no answer in time).
    pub statuses: BTreeMap<String, usize>,
    pub attempts: usize,
    /// GETs of clients hammering the reads (counted in `attempts` too), by
    /// status: 404 is a right answer there (they hold no entry).
    pub reads: BTreeMap<String, usize>,
    /// Per fan, folded over its requests.
    pub told: HashMap<String, Told>,
    pub sold_out: usize,
    pub gave_up: usize,
}

/// The drill's seeded generator (rand's SmallRng): arrival times and
/// jitter need no cryptographic randomness, and a seed makes runs
/// comparable. Each fan draws from its own, seeded from the run's.
pub type Rng = rand::rngs::SmallRng;

/// Runs the spike against `event` with fan ids `{fan_prefix}{n}`.
pub async fn run(pool: Arc<Pool>, event: &str, fan_prefix: &str, shape: &Shape, repeat: Repeat, seed: u64) -> Observed {
    let mut rng = Rng::seed_from_u64(seed);
    // Every fan sends once; the rest send twice (a reload or a double tap).
    let mut arrivals: Vec<(Duration, usize)> = Vec::with_capacity(shape.requests);
    let mut firsts = Vec::with_capacity(shape.fans);
    for fan in 0..shape.fans {
        let at = shape.duration.mul_f64(rng.random::<f64>());
        firsts.push(at);
        arrivals.push((at, fan));
    }
    for i in 0..shape.requests.saturating_sub(shape.fans) {
        let fan = i % shape.fans.max(1);
        let after = match repeat {
            Repeat::Reload => Duration::from_millis(rng.random_range(200..2_000)),
            Repeat::DoubleTap => Duration::from_micros(rng.random_range(0..5_000)),
        };
        arrivals.push((firsts[fan] + after, fan));
    }
    arrivals.sort();

    let observed = Arc::new(Mutex::new(Observed::default()));
    let gate = Arc::new(tokio::sync::Semaphore::new(shape.in_flight.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(arrivals.len());
    for (at, fan) in arrivals {
        tokio::time::sleep_until((started + at).into()).await;
        let permit = gate.clone().acquire_owned().await.expect("semaphore open");
        let (pool, observed, shape) = (pool.clone(), observed.clone(), shape.clone());
        let fan = format!("{fan_prefix}{fan:05}");
        let event = event.to_owned();
        let seed: u64 = rng.random();
        tasks.push(tokio::spawn(async move {
            let outcome = enter(&pool, &event, &fan, &shape, seed, &observed).await;
            drop(permit);
            let mut o = observed.lock().unwrap();
            fold(&mut o, fan, outcome);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(observed).map(|m| m.into_inner().unwrap()).unwrap_or_default()
}

/// The final answer to one fan request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted(i64),
    Refused { sold_out: bool },
    GaveUp,
}

fn fold(o: &mut Observed, fan: String, outcome: Outcome) {
    match outcome {
        Outcome::Refused { sold_out: true } => o.sold_out += 1,
        Outcome::GaveUp => o.gave_up += 1,
        _ => {}
    }
    let before = o.told.get(&fan).copied();
    let after = match (before, outcome) {
        (None | Some(Told::Refused | Told::Unanswered), Outcome::Accepted(p)) => Told::Accepted(p),
        (Some(Told::Accepted(a)), Outcome::Accepted(p)) if a != p => Told::Contradicted,
        (Some(t @ (Told::Accepted(_) | Told::Contradicted)), _) => t,
        (None | Some(Told::Unanswered), Outcome::Refused { .. }) => Told::Refused,
        (Some(Told::Refused), _) => Told::Refused,
        (None | Some(Told::Unanswered), Outcome::GaveUp) => Told::Unanswered,
    };
    o.told.insert(fan, after);
}

/// One fan request, retried as a careful client would.
async fn enter(pool: &Pool, event: &str, fan: &str, shape: &Shape, seed: u64, observed: &Mutex<Observed>) -> Outcome {
    let mut rng = Rng::seed_from_u64(seed);
    let started = Instant::now();
    for attempt in 0..shape.max_attempts {
        let request = api_gateway_post(event, fan, None);
        let answer = pool.invoke(&request, shape.attempt_timeout).await;
        let (status, retry_after, body) = match &answer {
            Ok(a) => parse(&a.body),
            Err(_) => (504, None, Value::Null),
        };
        {
            let mut o = observed.lock().unwrap();
            o.attempts += 1;
            *o.statuses.entry(status.to_string()).or_default() += 1;
        }
        match status {
            200 | 202 => match body["position"].as_i64() {
                Some(p) => return Outcome::Accepted(p),
                None => return Outcome::GaveUp,
            },
            409 => return Outcome::Refused { sold_out: body["error"] == "sold_out" },
            429 | 503 | 504 => {}
            // Anything else is a defect the table shows; a client would not retry it.
            _ => return Outcome::Refused { sold_out: false },
        }
        let backoff = Duration::from_millis(100u64 << attempt.min(5)).min(Duration::from_secs(2));
        let wait = retry_after.unwrap_or_default().max(backoff.mul_f64(rng.random::<f64>()));
        if started.elapsed() + wait > shape.patience {
            break;
        }
        tokio::time::sleep(wait).await;
    }
    Outcome::GaveUp
}

/// `(status, Retry-After, JSON body)` of an API Gateway proxy response.
pub fn parse(raw: &str) -> (u16, Option<Duration>, Value) {
    let Ok(response) = serde_json::from_str::<Value>(raw) else { return (0, None, Value::Null) };
    let status = response["statusCode"].as_u64().unwrap_or(0) as u16;
    let headers = &response["headers"];
    let retry_after = ["retry-after", "Retry-After"]
        .iter()
        .find_map(|h| headers[*h].as_str())
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response["body"].as_str().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    (status, retry_after, body)
}

/// `POST /events/{event}/entries` as API Gateway's HTTP API sends it, with
/// the fan's identity in the JWT authorizer's claims (and its line ticket,
/// if it holds one), received now: the moment the fan sends it. The wait
/// for one of the drill's requests in flight, and for a busy environment,
/// comes after, as Lambda scaling out does behind a gateway that already
/// took the request.
pub fn api_gateway_post(event: &str, fan: &str, ticket: Option<&str>) -> Value {
    let mut request = GatewayEvent::new("POST", &format!("/events/{event}/entries"))
        .from_api("drill")
        .route("POST /events/{eventId}/entries", &[("eventId", event)])
        .request_id("drill")
        .header("content-type", "application/json")
        .header("host", "drill.local")
        .fan(fan)
        .received_at(chrono::Utc::now())
        .body(b"{}");
    if let Some(ticket) = ticket {
        request = request.header("x-fanrush-ticket", ticket);
    }
    request.to_json()
}
