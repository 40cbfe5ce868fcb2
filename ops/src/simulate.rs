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
//!   [`ScalingModel::Legacy`] is the older rule from the Weverse talk at AWS Industry Week 2023 (docs/decisions): an initial
//!   burst of 500 to 3,000 environments by region, then +500 a minute.
//!
//! Provisioned environments are warm from the start (the allocation's own
//! lead time is the plan's business). A request that finds no free
//! environment and no room to create one is throttled by Lambda (429).

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::collections::VecDeque;

use fanrush::rules::line::poll::{beyond_reach, come_back_in, NO_PLACE_FREE};
use fanrush::rules::line::progress::{self, PACE_HEADROOM};
use fanrush::rules::scaling::{Quotas, ACCOUNT_RPS_PER_CONCURRENCY, RPS_PER_ENVIRONMENT};

/// How Lambda adds environments on demand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScalingModel {
    /// 1,000 environments per 10 s per function, refilled continuously.
    Current,
    /// `burst` at once, then `per_minute` more each minute.
    Legacy { burst: i64, per_minute: i64 },
}

impl ScalingModel {
    /// The Weverse talk's legacy figures for the largest regions.
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

impl Traffic {
    /// Arrivals per second `t_s` seconds in.
    fn rate_at(&self, t_s: f64) -> f64 {
        if self.ramp_s > 0.0 && t_s < self.ramp_s {
            self.peak_rps * t_s / self.ramp_s
        } else if self.decay_s > 0.0 {
            self.peak_rps * (-(t_s - self.ramp_s) / self.decay_s).exp()
        } else {
            self.peak_rps
        }
    }
}

/// One Redis primary, the event's gate: how much of each kind of call one
/// core answers per second, measured by `make bench` (or `fanrush
/// measure-gate` on the real node), and the event's places. A call waits in
/// Redis at most its 250 ms response timeout, so a quarter of a second of the
/// core's work can queue; beyond that the call is refused (the fan gets 503).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateModel {
    /// New fans admitted per second (`admit.lua` plus `confirm.lua`).
    pub admissions_per_second: f64,
    /// The gate's other answers per second (sold out, already in).
    pub answers_per_second: f64,
    /// Line syncs per second (`line.lua`), carrying no place.
    pub syncs_per_second: f64,
    /// Places a line's syncs count per second (each fan's first join).
    pub places_per_second: f64,
    /// Places to admit.
    pub capacity: u64,
}

impl GateModel {
    /// A gate that refuses nothing and never sells out.
    pub const UNLIMITED: Self = Self {
        admissions_per_second: f64::INFINITY,
        answers_per_second: f64::INFINITY,
        syncs_per_second: f64::INFINITY,
        places_per_second: f64::INFINITY,
        capacity: u64::MAX,
    };
}

/// A line in front of the gate, as [`fanrush::rules::line`] runs it: a fan's
/// turn comes when its place is within the lead of the places granted so
/// far (the served mark); it then joins the gate's door and is granted a
/// place at the pace
/// ([`PACE_HEADROOM`] x `rate`), in the order of places, and claims it when
/// told. The measured cost of an admitted fan (joining, claiming,
/// confirming) is charged at its claim, a place's count at its join. Every
/// busy execution environment syncs the line every `sync_s`, spaced as
/// [`fanrush::rules::line::sync_interval`] spaces them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineModel {
    pub rate: f64,
    pub sync_s: f64,
}

impl LineModel {
    /// A line at `rate` with the fan API's sync interval.
    pub fn at(rate: f64) -> Self {
        Self { rate, sync_s: fanrush::rules::line::SYNC_EVERY.as_secs_f64() }
    }

    /// Syncs a second from `environments` busy environments.
    pub fn syncs_per_second(&self, environments: f64) -> f64 {
        let n = environments.max(0.0);
        let every = std::time::Duration::from_secs_f64(self.sync_s.max(1e-3));
        n / fanrush::rules::line::sync_interval(every, n.ceil() as u64).as_secs_f64()
    }

    /// Grants a second.
    pub fn pace(&self) -> f64 {
        self.rate * PACE_HEADROOM
    }

    /// Places past the served mark whose turn has come: the line's lead.
    fn lead(&self) -> f64 {
        self.pace() * progress::LEAD.as_secs_f64()
    }
}

/// Everything a simulated opening meets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    pub traffic: Traffic,
    pub provisioned: i64,
    pub quotas: Quotas,
    pub model: ScalingModel,
    pub gate: GateModel,
    pub line: Option<LineModel>,
    /// Fans retry a 429 or 503 as the drill's client does: exponential
    /// backoff with full jitter, 0.1 s doubling to 2 s, at least
    /// `Retry-After` (1 s on a 503), giving up after 40 attempts or 90 s.
    pub retries: bool,
    pub seed: u64,
}

/// One second of a simulated opening.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Second {
    /// New fans.
    pub arrivals: u64,
    /// HTTP requests, polls and retries included.
    pub requests: u64,
    /// Requests a function ran.
    pub served: u64,
    pub throttled_by_api_gateway: u64,
    pub throttled_by_lambda: u64,
    pub refused_by_redis: u64,
    pub admitted: u64,
    /// Fans in the line at the end of the second.
    pub waiting: u64,
    /// Polls among the requests.
    pub polls: u64,
    /// The gate's Redis core's busy share (1.0: all of it), by what kept it
    /// busy: admissions, other answers, the line's standalone syncs.
    pub redis_admissions: f64,
    pub redis_answers: f64,
    pub redis_syncs: f64,
}

/// What the spike did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Simulation {
    /// Fans who arrived.
    pub fans: u64,
    /// HTTP requests through API Gateway: first tries, polls and retries.
    pub requests: u64,
    /// Requests of fans waiting in the line after their join.
    pub polls: u64,
    /// Requests repeating one that was refused (429, 503).
    pub retries: u64,
    /// Refused by API Gateway's token bucket (429 before Lambda).
    pub throttled_by_api_gateway: u64,
    /// Refused by Lambda: account request rate, concurrency or scaling rate.
    pub throttled_by_lambda: u64,
    /// Gate calls past what its Redis core answers in time (503).
    pub refused_by_redis: u64,
    pub admitted: u64,
    /// Fans told the event is sold out.
    pub sold_out: u64,
    /// Fans who gave up retrying.
    pub gave_up: u64,
    /// Environments held at once (a request holds one for at least 100 ms).
    pub peak_concurrency: i64,
    pub cold_starts: u64,
    /// The most requests in one second.
    pub peak_requests_per_second: u64,
    /// The busiest second of the gate's Redis core, as a share of it.
    pub redis_peak_load: f64,
    /// From arrival to admission, over admitted fans.
    pub wait_p50_seconds: f64,
    pub wait_max_seconds: f64,
    pub seconds: Vec<Second>,
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

    /// Work that is done whether or not there is room: the bucket goes into
    /// debt, and what comes next waits for it.
    fn owe(&mut self, n: f64) {
        self.tokens -= n;
    }

    /// Takes `n` if it holds them.
    fn take(&mut self, n: f64) -> bool {
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// A fan's progress.
#[derive(Debug, Clone, Copy, Default)]
struct Fan {
    arrived_ms: u64,
    /// When its grant is due (ms), once it joined the door.
    grant_at: Option<u64>,
    /// Its place in the line (arrival order), once joined.
    place: Option<u64>,
    attempts: u32,
    done: bool,
}

/// How long after the traffic ends the simulation follows retries and polls.
const TAIL_MS: u64 = 600_000;

/// Replays `traffic` in 1 ms steps through API Gateway's throttle and
/// Lambda's limits, against `provisioned` warm environments plus on-demand
/// scaling under `model`: each request once, no gate limit, no retries.
pub fn simulate(traffic: Traffic, provisioned: i64, quotas: Quotas, model: ScalingModel) -> Simulation {
    simulate_spike(&Spike {
        traffic,
        provisioned,
        quotas,
        model,
        gate: GateModel::UNLIMITED,
        line: None,
        retries: false,
        seed: 1,
    })
}

/// Replays a spike fan by fan, in 1 ms steps: API Gateway's throttle,
/// Lambda's limits, the gate's Redis core and, with a line, the line's
/// pace and its polls; refused fans retry when `spike.retries`.
pub fn simulate_spike(spike: &Spike) -> Simulation {
    let mut run = Run::new(spike);
    for step in 0..run.later.len() as u64 {
        if step >= run.traffic_ms && run.pending == 0 {
            break;
        }
        run.step(step);
    }
    run.finish()
}

/// What the gate's core spends on each kind of call, in ms of its time.
struct Costs {
    admission: f64,
    answer: f64,
    sync: f64,
    place: f64,
}

impl Costs {
    fn of(gate: &GateModel) -> Self {
        let cost = |per_second: f64| if per_second.is_finite() && per_second > 0.0 { 1000.0 / per_second } else { 0.0 };
        Self {
            admission: cost(gate.admissions_per_second),
            answer: cost(gate.answers_per_second),
            sync: cost(gate.syncs_per_second),
            place: cost(gate.places_per_second),
        }
    }
}

/// Lambda's side: the function's environments, the requests holding them,
/// and the account's request rate over the trailing second.
struct Lambda {
    limit: i64,
    /// Lambda's account rate: requests run in any one second.
    account_rps: i64,
    environments: i64,
    busy: i64,
    /// When held environments come free, and how many.
    finishing: VecDeque<(u64, i64)>,
    /// The requests run in the trailing second, by ms.
    last_second: VecDeque<(u64, i64)>,
    in_last_second: i64,
    /// How long a request holds its environment, in ms.
    hold_steps: u64,
    /// On-demand scaling's tokens.
    scaling: Bucket,
}

impl Lambda {
    fn new(spike: &Spike) -> Self {
        let limit = spike.quotas.account_concurrency.max(0);
        let (tokens, cap, refill_per_s) = spike.model.bucket();
        let min_hold_ms = 1000.0 / RPS_PER_ENVIRONMENT;
        Self {
            limit,
            account_rps: (ACCOUNT_RPS_PER_CONCURRENCY * limit as f64).floor() as i64,
            environments: spike.provisioned.min(limit).max(0),
            busy: 0,
            finishing: VecDeque::new(),
            last_second: VecDeque::new(),
            in_last_second: 0,
            hold_steps: spike.traffic.duration_ms.max(min_hold_ms).ceil().max(1.0) as u64,
            scaling: Bucket { tokens, cap, per_ms: refill_per_s / 1000.0 },
        }
    }

    /// Frees what finished by `step` and forgets what left the trailing second.
    fn release(&mut self, step: u64) {
        while self.finishing.front().is_some_and(|&(at, _)| at <= step) {
            self.busy -= self.finishing.pop_front().map_or(0, |(_, n)| n);
        }
        while self.last_second.front().is_some_and(|&(at, _)| at + 1000 <= step) {
            self.in_last_second -= self.last_second.pop_front().map_or(0, |(_, n)| n);
        }
    }

    /// Whether one more request runs this ms, after `served_now` others: a
    /// warm environment, or a new one if the account and scaling allow.
    fn runs(&mut self, served_now: i64, sim: &mut Simulation) -> bool {
        let room = self.in_last_second + served_now < self.account_rps;
        let warm = room && self.environments - self.busy - served_now > 0;
        warm || (room && self.environments < self.limit && self.scaling.take(1.0) && {
            self.environments += 1;
            sim.cold_starts += 1;
            true
        })
    }

    /// The `n` requests run at `step` hold their environments and count
    /// against the account's rate (a refusal does not).
    fn hold(&mut self, step: u64, n: i64, sim: &mut Simulation) {
        if n > 0 {
            self.busy += n;
            sim.peak_concurrency = sim.peak_concurrency.max(self.busy);
            self.finishing.push_back((step + self.hold_steps, n));
            self.last_second.push_back((step, n));
            self.in_last_second += n;
        }
    }

    /// Environments that served in the last second: each takes its share of
    /// the requests, at most 10 a second.
    fn serving(&self) -> f64 {
        (self.in_last_second.min(self.environments * 10).max(0) as f64 / 10.0).max(self.busy as f64)
    }
}

/// The line's side: places handed out, grants at the pace, syncs owed.
#[derive(Default)]
struct Line {
    joined: u64,
    granted: u64,
    /// The pace's clock: when the next grant is due.
    next_grant_ms: f64,
    sync_debt: f64,
    /// Fans who joined the line and are done with it (in, sold out, gave up).
    left: u64,
}

/// What a request came to, for its fan.
enum Next {
    /// The fan comes back at this ms.
    Again(u64),
    /// In, sold out, or told to stop.
    Done,
    /// Refused (a 429 or a 503): it retries as a client does, not before
    /// `retry_after` ms.
    Refused { retry_after: u64 },
}

/// One spike in progress, a millisecond at a time.
struct Run<'a> {
    spike: &'a Spike,
    costs: Costs,
    api: Bucket,
    /// The gate's core in ms of work: 250 ms of it may queue (the response timeout).
    redis: Bucket,
    redis_used_this_second: f64,
    lambda: Lambda,
    line: Line,
    traffic_ms: u64,
    /// Arrivals owed, fractional.
    arrivals: f64,
    fans: Vec<Fan>,
    /// Requests scheduled for later, by ms.
    later: Vec<Vec<u32>>,
    pending: usize,
    admitted: u64,
    waits: Vec<u64>,
    rng: SmallRng,
    sim: Simulation,
    second: Second,
}

impl<'a> Run<'a> {
    fn new(spike: &'a Spike) -> Self {
        let (traffic, quotas) = (spike.traffic, spike.quotas);
        let traffic_ms = ((traffic.ramp_s + traffic.hold_s) * 1000.0).ceil() as u64;
        Self {
            spike,
            costs: Costs::of(&spike.gate),
            api: Bucket { tokens: quotas.api_burst, cap: quotas.api_burst, per_ms: quotas.api_rate / 1000.0 },
            redis: Bucket { tokens: 250.0, cap: 250.0, per_ms: 1.0 },
            redis_used_this_second: 0.0,
            lambda: Lambda::new(spike),
            line: Line::default(),
            traffic_ms,
            arrivals: 0.0,
            fans: Vec::new(),
            later: vec![Vec::new(); (traffic_ms + TAIL_MS) as usize + 1],
            pending: 0,
            admitted: 0,
            waits: Vec::new(),
            // Jitter needs no cryptographic randomness, and a seed makes runs comparable.
            rng: SmallRng::seed_from_u64(spike.seed),
            sim: Simulation::default(),
            second: Second::default(),
        }
    }

    fn step(&mut self, step: u64) {
        self.lambda.release(step);
        self.lambda.scaling.refill();
        self.api.refill();
        self.redis.refill();
        self.sync_line();
        let due = self.due(step);
        let served = self.served_mark(step);
        let mut served_now = 0i64;
        for id in due {
            self.answer(id as usize, step, served, &mut served_now);
        }
        self.lambda.hold(step, served_now, &mut self.sim);
        if step % 1000 == 999 {
            self.close_second();
        }
    }

    /// Syncs of the environments busy in the last second, spread over the
    /// ms. A sync that finds no room fails; the environment answers from
    /// its last copy.
    fn sync_line(&mut self) {
        let Some(line) = self.spike.line else { return };
        self.line.sync_debt += line.syncs_per_second(self.lambda.serving()) / 1000.0;
        while self.line.sync_debt >= 1.0 {
            self.line.sync_debt -= 1.0;
            if self.redis.take(self.costs.sync) {
                self.redis_used_this_second += self.costs.sync;
                self.second.redis_syncs += self.costs.sync / 1000.0;
            }
        }
    }

    /// This ms's requests: new fans, then those scheduled.
    fn due(&mut self, step: u64) -> Vec<u32> {
        let mut due = std::mem::take(&mut self.later[step as usize]);
        self.pending -= due.len();
        if step < self.traffic_ms {
            self.arrivals += self.spike.traffic.rate_at(step as f64 / 1000.0) / 1000.0;
            let n = self.arrivals.floor() as u64;
            self.arrivals -= n as f64;
            for _ in 0..n {
                due.push(self.fans.len() as u32);
                self.fans.push(Fan { arrived_ms: step, ..Fan::default() });
            }
            self.sim.fans += n;
            self.second.arrivals += n;
        }
        due
    }

    /// The served mark: the grants made by now (the door's grants are
    /// scheduled at the pace, some of them still ahead).
    fn served_mark(&self, step: u64) -> u64 {
        match self.spike.line {
            Some(line) => {
                let ahead_of_now = ((self.line.next_grant_ms - step as f64).max(0.0) * line.pace() / 1000.0).floor();
                self.line.granted.saturating_sub(ahead_of_now as u64)
            }
            None => self.line.granted,
        }
    }

    /// One request of fan `id`: through API Gateway and Lambda to the gate,
    /// then when its fan comes back, if it does.
    fn answer(&mut self, id: usize, step: u64, served: u64, served_now: &mut i64) {
        self.sim.requests += 1;
        self.second.requests += 1;
        let fan = self.fans[id];
        if fan.place.is_some() && fan.attempts == 0 {
            self.second.polls += 1;
        }
        let next = if !self.api.take(1.0) {
            self.sim.throttled_by_api_gateway += 1;
            self.second.throttled_by_api_gateway += 1;
            Next::Refused { retry_after: 0 }
        } else if !self.lambda.runs(*served_now, &mut self.sim) {
            self.sim.throttled_by_lambda += 1;
            self.second.throttled_by_lambda += 1;
            Next::Refused { retry_after: 0 }
        } else {
            *served_now += 1;
            self.second.served += 1;
            self.at_the_gate(id, step, served)
        };
        self.follow_up(id, step, next);
    }

    /// A request a function ran: the gate's answer, by where its fan is.
    fn at_the_gate(&mut self, id: usize, step: u64, served: u64) -> Next {
        let sold_out = self.admitted >= self.spike.gate.capacity;
        let turn = match self.spike.line {
            None => true,
            Some(line) => (self.place_of(id) as f64) < served as f64 + line.lead(),
        };
        let fan = self.fans[id];
        let unclaimed = self.spike.line.is_some() && fan.grant_at.is_none();
        if let Some(at) = fan.grant_at.filter(|at| *at > step) {
            Next::Again(at)
        } else if sold_out && unclaimed {
            // Sold out for good: told from the environment's copy.
            self.sim.sold_out += 1;
            Next::Done
        } else if turn && unclaimed {
            self.at_the_door(id, step)
        } else if turn {
            self.admit(id, step, sold_out)
        } else {
            self.wait(id, step, served)
        }
    }

    /// The fan's place in the line, taken at its first request. Its count
    /// rides on its environment's next sync: charged now, room or not (a
    /// sync that fails is sent again).
    fn place_of(&mut self, id: usize) -> u64 {
        if let Some(place) = self.fans[id].place {
            return place;
        }
        self.line.joined += 1;
        let place = self.line.joined - 1;
        self.fans[id].place = Some(place);
        self.redis.owe(self.costs.place);
        self.redis_used_this_second += self.costs.place;
        self.second.redis_syncs += self.costs.place / 1000.0;
        place
    }

    /// Its turn came: it joins the door, and its grant comes at the pace; or
    /// no place is free and one may come back.
    fn at_the_door(&mut self, id: usize, step: u64) -> Next {
        if self.line.granted >= self.spike.gate.capacity {
            return Next::Again(step + NO_PLACE_FREE.as_millis() as u64);
        }
        let line = self.spike.line.expect("a door only in a line");
        let at = (step as f64).max(self.line.next_grant_ms);
        self.line.next_grant_ms = at + 1000.0 / line.pace();
        self.line.granted += 1;
        self.fans[id].grant_at = Some(at.ceil() as u64);
        Next::Again((at.ceil() as u64).max(step + 1))
    }

    /// The gate's call: admitted, or told it is sold out, if the core has
    /// room; a 503 if not.
    fn admit(&mut self, id: usize, step: u64, sold_out: bool) -> Next {
        let c = if sold_out { self.costs.answer } else { self.costs.admission };
        if !self.redis.take(c) {
            self.sim.refused_by_redis += 1;
            self.second.refused_by_redis += 1;
            return Next::Refused { retry_after: 1000 };
        }
        self.redis_used_this_second += c;
        if sold_out {
            self.second.redis_answers += c / 1000.0;
            self.sim.sold_out += 1;
        } else {
            self.second.redis_admissions += c / 1000.0;
            self.admitted += 1;
            self.sim.admitted += 1;
            self.second.admitted += 1;
            self.waits.push(step - self.fans[id].arrived_ms);
        }
        Next::Done
    }

    /// Not its turn: asked back when it is due, or rarely when the places
    /// left cannot reach it.
    fn wait(&mut self, id: usize, step: u64, served: u64) -> Next {
        let line = self.spike.line.expect("waiting only in a line");
        let place = self.fans[id].place.unwrap_or_default() as f64;
        let turn_in = ((place + 1.0 - served as f64 - line.lead()) / line.pace()).max(0.0);
        // Every fan here comes (no walk-aways): show fraction 1.
        let places_left = self.spike.gate.capacity.saturating_sub(self.line.granted) as i64;
        let ahead = place - served as f64;
        let wait = if progress::beyond_reach(ahead, places_left, Some(1.0)) {
            beyond_reach(turn_in, self.rng.random::<f64>())
        } else {
            come_back_in(turn_in, self.rng.random::<f64>(), true)
        };
        Next::Again(step + (wait.as_millis() as u64).max(1))
    }

    /// A refused fan retries with backoff (at least `Retry-After`) until it
    /// gives up; a fan that comes back is scheduled.
    fn follow_up(&mut self, id: usize, step: u64, next: Next) {
        let again = match next {
            Next::Again(at) => Some(at),
            Next::Done => {
                self.fans[id].done = true;
                None
            }
            Next::Refused { retry_after } => {
                let fan = &mut self.fans[id];
                fan.attempts += 1;
                let backoff = (100u64 << fan.attempts.min(5)).min(2_000) as f64 * self.rng.random::<f64>();
                let at = step + (backoff as u64).max(retry_after).max(1);
                if self.spike.retries && fan.attempts < 40 && at - fan.arrived_ms <= 90_000 {
                    self.sim.retries += 1;
                    Some(at)
                } else {
                    fan.done = true;
                    self.sim.gave_up += 1;
                    None
                }
            }
        };
        let fan = &mut self.fans[id];
        if fan.done && fan.place.is_some() {
            self.line.left += 1;
        }
        if let Some(at) = again {
            if (at as usize) < self.later.len() {
                self.later[at as usize].push(id as u32);
                self.pending += 1;
            } else {
                fan.done = true;
                self.sim.gave_up += 1;
                self.line.left += u64::from(fan.place.is_some());
            }
        }
    }

    fn close_second(&mut self) {
        self.second.waiting = self.line.joined - self.line.left;
        self.sim.peak_requests_per_second = self.sim.peak_requests_per_second.max(self.second.requests);
        self.sim.redis_peak_load = self.sim.redis_peak_load.max(self.redis_used_this_second / 1000.0);
        self.sim.seconds.push(std::mem::take(&mut self.second));
        self.redis_used_this_second = 0.0;
    }

    fn finish(mut self) -> Simulation {
        let mut sim = self.sim;
        if self.second.requests > 0 || self.second.arrivals > 0 {
            sim.peak_requests_per_second = sim.peak_requests_per_second.max(self.second.requests);
            sim.seconds.push(self.second);
        }
        sim.polls = sim.requests - sim.fans - sim.retries;
        self.waits.sort_unstable();
        if let Some(max) = self.waits.last() {
            sim.wait_p50_seconds = self.waits[self.waits.len() / 2] as f64 / 1000.0;
            sim.wait_max_seconds = *max as f64 / 1000.0;
        }
        sim
    }
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

    /// The worked opening (docs/scaling.md), scaled down a hundredfold: 10,000 fans in
    /// a minute for 1,000 places, against a core admitting 200 a second.
    fn opening(line: Option<LineModel>) -> Spike {
        Spike {
            traffic: Traffic { peak_rps: 637.5, ramp_s: 2.0, hold_s: 58.0, decay_s: 15.0, duration_ms: 20.0 },
            provisioned: 200,
            quotas: lambda_only(10_000),
            model: ScalingModel::Current,
            gate: GateModel {
                admissions_per_second: 200.0,
                answers_per_second: 400.0,
                // Each of the 200 environments syncs every second: 2% of the core.
                syncs_per_second: 10_000.0,
                // The opening's peak of 637.5 places a second: 3% of it.
                places_per_second: 20_000.0,
                capacity: 1_000,
            },
            line,
            retries: true,
            seed: 7,
        }
    }

    #[test]
    fn without_a_line_the_gates_core_refuses_the_opening_and_refused_fans_retry() {
        let sim = simulate_spike(&opening(None));
        assert!(sim.fans > 9_900 && sim.fans < 10_100, "{}", sim.fans);
        assert!(sim.refused_by_redis > 0, "637 a second against a core of 200: {sim:?}");
        assert!(sim.retries >= sim.refused_by_redis, "every refusal comes back: {sim:?}");
        assert_eq!(sim.requests, sim.fans + sim.retries + sim.polls);
        assert_eq!(sim.polls, 0, "no line, no polls");
        assert_eq!(sim.admitted, 1_000, "places still sell, later: {sim:?}");
    }

    #[test]
    fn a_line_at_the_suggested_rate_is_never_refused_and_sells_every_place() {
        use fanrush::rules::scaling::preflight::{Capacities, LineRates};
        let core = Capacities {
            redis_admissions_per_second: 200.0,
            line_syncs_per_second: 10_000.0,
            line_places_per_second: 20_000.0,
            ..Capacities::default()
        };
        let rate = LineRates::for_core(&core, 637.5).suggested;
        let sim = simulate_spike(&opening(Some(LineModel::at(rate))));
        assert_eq!(sim.refused_by_redis, 0, "{} refused", sim.refused_by_redis);
        assert_eq!(sim.admitted, 1_000);
        assert_eq!(sim.admitted + sim.sold_out + sim.gave_up, sim.fans, "every fan told its outcome");
        assert_eq!(sim.gave_up, 0);
        assert!(sim.polls > 0 && sim.requests == sim.fans + sim.polls + sim.retries, "{} polls", sim.polls);
        // 1,000 places at 152 grants a second go in about 6.6 s; the last
        // fans in arrived about 2 s into the opening.
        assert!(sim.wait_max_seconds > 2.0 && sim.wait_max_seconds < 9.0, "{}", sim.wait_max_seconds);
        // The admissions, the syncs and the places they count take at most 80% of the core.
        assert!(sim.redis_peak_load <= 0.8, "{}", sim.redis_peak_load);
        let busiest = sim.seconds.iter().map(|s| s.admitted).max().unwrap();
        assert!(busiest as f64 <= 1.1 * rate, "{busiest} in one second");
        assert!(sim.seconds.iter().any(|s| s.waiting > 0));
    }

    #[test]
    fn the_sizing_estimate_of_polls_holds_to_the_simulated_line() {
        use fanrush::rules::line::poll::expected_polls_per_second;
        // Opening shapes a tenth of the worked event's sizes (docs/scaling.md) and smaller: a
        // decaying opening, a flat minute, few places and many, arrivals
        // below the pace and far above it.
        for (peak, ramp, decay, capacity, rate) in [
            (6_375.0, 2.0, 15.0, 10_000u64, 1_120.0),
            (6_375.0, 0.0, 0.0, 10_000u64, 1_120.0),
            (2_000.0, 0.0, 0.0, 10_000, 500.0),
            (300.0, 0.0, 0.0, 200, 30.0),
            (6_375.0, 2.0, 15.0, 10_000u64, 600.0),
            (6_375.0, 2.0, 15.0, 2_000u64, 1_120.0),
            (1_000.0, 0.0, 0.0, 10_000u64, 1_120.0),
            (3_000.0, 2.0, 15.0, 5_000u64, 300.0),
        ] {
            let spike = Spike {
                traffic: Traffic {
                    peak_rps: peak,
                    ramp_s: ramp,
                    hold_s: 60.0 - ramp,
                    decay_s: decay,
                    duration_ms: 20.0,
                },
                provisioned: 10_000,
                quotas: Quotas { account_concurrency: 20_000, api_rate: 1e7, api_burst: 1e7 },
                model: ScalingModel::Current,
                gate: GateModel { capacity, ..GateModel::UNLIMITED },
                line: Some(LineModel::at(rate)),
                retries: true,
                seed: 3,
            };
            let sim = simulate_spike(&spike);
            let simulated = sim.seconds.iter().map(|s| s.polls).max().unwrap() as f64;
            let estimate = expected_polls_per_second(peak, rate);
            let ratio = estimate / simulated;
            assert!(
                (0.85..=1.35).contains(&ratio),
                "{peak} {rate} {capacity}: estimate {estimate}, simulated {simulated}, ratio {ratio}"
            );
        }
    }
}
