//! The drill's stack and its run: services, proxies, function pools, the
//! event-source mapping and the schedule; one scenario at a time.

use crate::faults::{all_scenarios, Fault, Scenario};
use crate::functions::{Environment, FunctionSpec, Pool};
use crate::spike::{self, Observed, Shape};
use crate::verify::{self, GateView, Tally};
use chrono::Utc;
use fanrush::domain::{EventId, FanEvent};
use fanrush::gate::EntryGate;
use fanrush::queue::provision;
use fanrush::store::Database;
use fanrush_testkit::esm::{EventSourceMapping, Polled};
use fanrush_testkit::services::{PrivatePostgres, PrivateRedis};
use fanrush_testkit::{local_aws, Fault as ProxyFault, FaultProxy};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The gate's key prefix (the functions' default).
const PREFIX: &str = "fanrush";
/// The compressed schedule and the recovery waits the drill gives the
/// scheduler (production: every minute, 15 s and 300 s). Both waits stay
/// above the longest an entry request can be in flight here (about 2 s:
/// Redis timeouts 0.2 + 0.25 s with one retry, one SQS attempt of 1 s).
const TICK: Duration = Duration::from_secs(1);
const RESTORE_SETTLE_S: &str = "5";
const SWEEP_AFTER_S: &str = "5";

pub struct Options {
    pub shape: Shape,
    pub capacity: i64,
    pub scenarios: Vec<String>,
    pub entry_environments: usize,
    pub writers: usize,
    pub bin_dir: PathBuf,
    pub out: PathBuf,
    pub seed: u64,
    pub settle_limit: Duration,
}

impl Options {
    pub const USAGE: &'static str = "usage: fanrush-drill [--requests 20000] [--fans 15000] [--capacity 5000] [--duration-s 10]\n       [--scenarios all|baseline,redis-flush,...] [--entry-environments 6] [--writers 2]\n       [--bin-dir target/debug] [--out target/drill/results.json] [--seed 1]\n       fanrush-drill gateway [--port 9400] [--bin-dir target/debug] [--log-dir .local] [--entry-environments 2]";

    pub fn parse(args: Vec<String>) -> Result<Self, String> {
        let mut o = Self {
            shape: Shape {
                requests: 20_000,
                fans: 15_000,
                duration: Duration::from_secs(10),
                max_attempts: 40,
                patience: Duration::from_secs(90),
                attempt_timeout: Duration::from_secs(5),
                in_flight: 256,
            },
            capacity: 5_000,
            scenarios: vec!["all".into()],
            entry_environments: 6,
            writers: 2,
            bin_dir: PathBuf::from("target/debug"),
            out: PathBuf::from("target/drill/results.json"),
            seed: 1,
            settle_limit: Duration::from_secs(180),
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = || format!("{flag}: {value:?} is not valid");
            match flag.as_str() {
                "--requests" => o.shape.requests = value.parse().map_err(|_| bad())?,
                "--fans" => o.shape.fans = value.parse().map_err(|_| bad())?,
                "--capacity" => o.capacity = value.parse().map_err(|_| bad())?,
                "--duration-s" => o.shape.duration = Duration::from_secs_f64(value.parse().map_err(|_| bad())?),
                "--scenarios" => o.scenarios = value.split(',').map(str::to_owned).collect(),
                "--entry-environments" => o.entry_environments = value.parse().map_err(|_| bad())?,
                "--writers" => o.writers = value.parse().map_err(|_| bad())?,
                "--bin-dir" => o.bin_dir = PathBuf::from(value),
                "--out" => o.out = PathBuf::from(value),
                "--seed" => o.seed = value.parse().map_err(|_| bad())?,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if o.shape.fans == 0 || o.shape.requests < o.shape.fans || o.capacity < 1 {
            return Err("need --fans >= 1, --requests >= --fans and --capacity >= 1".into());
        }
        if o.entry_environments == 0 || o.writers == 0 {
            return Err("need at least one entry environment and one writer".into());
        }
        Ok(o)
    }

    fn selected(&self) -> Result<Vec<Scenario>, String> {
        let every = all_scenarios();
        if self.scenarios.iter().any(|s| s == "all") {
            return Ok(every);
        }
        let known: Vec<&str> = every.iter().map(|s| s.name).collect();
        if let Some(bad) = self.scenarios.iter().find(|s| !known.contains(&s.as_str())) {
            return Err(format!("unknown scenario {bad:?}; known: {}", known.join(", ")));
        }
        Ok(every.into_iter().filter(|s| self.scenarios.iter().any(|n| n == s.name)).collect())
    }
}

/// Proxies between the functions and each service.
struct Proxies {
    redis: FaultProxy,
    sqs: FaultProxy,
    postgres: FaultProxy,
}

pub struct Drill {
    root: PathBuf,
    redis: Mutex<PrivateRedis>,
    postgres: Mutex<Option<PrivatePostgres>>,
    proxies: Proxies,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: String,
    db: Database,
    gate: EntryGate,
    entry: Arc<Pool>,
    writers: Vec<Arc<Environment>>,
    scheduler: Arc<Environment>,
    stop: Arc<AtomicBool>,
    ticks_failed: Arc<std::sync::atomic::AtomicUsize>,
    started: Instant,
}

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:9324".into())
}

fn loopback(url: &str) -> Result<SocketAddr, String> {
    let hostport = url.split("://").nth(1).unwrap_or(url).split('/').next().unwrap_or_default();
    let addr: SocketAddr =
        hostport.replace("localhost", "127.0.0.1").parse().map_err(|_| format!("{url} is not host:port"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{url} is not on loopback; the drill only sends traffic to loopback"));
    }
    Ok(addr)
}

impl Drill {
    pub async fn start(o: &Options) -> Result<Self, String> {
        o.selected()?;
        let started = Instant::now();
        let root = std::env::temp_dir().join(format!("fanrush-drill-{}", std::process::id()));
        let logs = o.out.parent().map(|p| p.join("logs")).unwrap_or_else(|| PathBuf::from("logs"));
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        eprintln!("drill: private redis-server and PostgreSQL under {}", root.display());
        let redis = PrivateRedis::start(root.join("redis")).await?;
        let postgres = PrivatePostgres::start(root.join("pg")).await?;
        let sqs_addr = loopback(&endpoint())?;
        let proxy = |a| async move { FaultProxy::start(a).await.map_err(|e| format!("proxy: {e}")) };
        let proxies = Proxies {
            redis: proxy(redis.addr()).await?,
            sqs: proxy(sqs_addr).await?,
            postgres: proxy(postgres.addr()).await?,
        };

        let sdk = local_aws::sdk_config(&endpoint()).await;
        let sqs = fanrush::config::sqs_client(&sdk, Duration::from_secs(10));
        let (queue_url, dlq_url) = provision(&sqs, &format!("fanrush-drill-{}", std::process::id()), 10, 3)
            .await
            .map_err(|e| format!("the SQS endpoint at {}: {e}", endpoint()))?;
        let db = Database::new(&postgres.url(), None, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        db.migrate().await.map_err(|e| e.to_string())?;
        // Through the endpoint proxy, which a failover moves to the replica.
        let gate = EntryGate::new(
            &format!("redis://{}", proxies.redis.addr()),
            PREFIX,
            Duration::from_secs(2),
            Duration::from_secs(5),
        )
        .map_err(|e| e.to_string())?;
        gate.mark_state_present().await.map_err(|e| e.to_string())?;

        let env = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
            // The functions reach every service through the drill's proxies.
            let mut v = local_aws::function_env(&format!("http://{}", proxies.sqs.addr()));
            v.extend(
                [
                    ("REDIS_URL", format!("redis://{}", proxies.redis.addr())),
                    ("DATABASE_URL", format!("postgres://postgres@{}/postgres", proxies.postgres.addr())),
                    ("SQS_QUEUE_URL", queue_url.clone()),
                    ("SQS_DLQ_URL", dlq_url.clone()),
                    ("RUST_LOG", "warn".into()),
                ]
                .map(|(k, v)| (k.to_owned(), v)),
            );
            v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            v
        };
        let spec = |name: &'static str, extra: &[(&str, &str)]| FunctionSpec {
            name,
            binary: o.bin_dir.join(name),
            env: env(extra),
            log: logs.join(name),
        };
        for name in ["entry-api", "writer", "scheduler"] {
            if !o.bin_dir.join(name).exists() {
                return Err(format!("{} is missing; build the workspace first", o.bin_dir.join(name).display()));
            }
        }
        let entry = Arc::new(Pool::start(&spec("entry-api", &[]), o.entry_environments).await?);
        let mut writers = Vec::new();
        for i in 0..o.writers {
            let mut s = spec("writer", &[]);
            s.log = logs.join(format!("writer.{i}.log"));
            writers.push(Arc::new(Environment::start(s).await?));
        }
        let scheduler = Arc::new(
            Environment::start(spec(
                "scheduler",
                &[
                    ("SCHEDULER_DRY_RUN", "true"),
                    ("GATE_RESTORE_SETTLE_SECONDS", RESTORE_SETTLE_S),
                    ("PENDING_SWEEP_AFTER_SECONDS", SWEEP_AFTER_S),
                ],
            ))
            .await?,
        );
        let drill = Self {
            root,
            redis: Mutex::new(redis),
            postgres: Mutex::new(Some(postgres)),
            proxies,
            sqs,
            queue_url,
            dlq_url,
            db,
            gate,
            entry,
            writers,
            scheduler,
            stop: Arc::new(AtomicBool::new(false)),
            ticks_failed: Arc::default(),
            started,
        };
        drill.start_event_sources();
        eprintln!("drill: stack up in {:.1} s; logs in {}", started.elapsed().as_secs_f64(), logs.display());
        Ok(drill)
    }

    /// The SQS event-source mapping (one poller per writer environment,
    /// batches of 10, straight to the SQS endpoint as AWS's pollers are
    /// not behind the functions' network) and the compressed schedule.
    fn start_event_sources(&self) {
        for writer in &self.writers {
            let mapping = EventSourceMapping {
                sqs: self.sqs.clone(),
                queue_url: self.queue_url.clone(),
                batch_size: 10,
                window: Duration::from_millis(100),
            };
            let (writer, stop) = (writer.clone(), self.stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let polled = mapping
                        .poll_once(|event| {
                            let writer = writer.clone();
                            async move {
                                let a = writer
                                    .invoke(&event, Duration::from_secs(30))
                                    .await
                                    .map_err(|e| format!("{e:?}"))?;
                                if a.error {
                                    return Err(a.body);
                                }
                                serde_json::from_str(&a.body).map_err(|e| e.to_string())
                            }
                        })
                        .await;
                    if let Polled::ReceiveFailed(_) = polled {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            });
        }
        let (scheduler, stop, failed) = (self.scheduler.clone(), self.stop.clone(), self.ticks_failed.clone());
        tokio::spawn(async move {
            let tick = json!({
                "version": "0", "id": "drill", "detail-type": "Scheduled Event", "source": "aws.events",
                "account": "000000000000", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
                "resources": [], "detail": {}
            });
            while !stop.load(Ordering::Relaxed) {
                match scheduler.invoke(&tick, Duration::from_secs(30)).await {
                    Ok(a) if !a.error => {}
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(TICK).await;
            }
        });
    }

    pub async fn run_all(&self, o: &Options) -> Report {
        let mut report = Report { rows: Vec::new(), shape: format!("{:?}", o.shape), capacity: o.capacity };
        for (i, scenario) in o.selected().unwrap_or_default().into_iter().enumerate() {
            eprintln!("drill: scenario {} ...", scenario.name);
            let row = self.run_scenario(&scenario, i, o).await;
            eprintln!("drill: {} done in {:.1} s: {:?}", scenario.name, row.seconds, row.tally);
            report.rows.push(row);
        }
        report
    }

    async fn run_scenario(&self, scenario: &Scenario, index: usize, o: &Options) -> Row {
        let started = Instant::now();
        let event_id = format!("drill-{}-{}", scenario.name, std::process::id());
        let mut row = Row { scenario: scenario.name.to_owned(), ..Row::default() };
        if let Err(e) = self.open_event(&event_id, o.capacity).await {
            row.problems.push(format!("could not open the event: {e}"));
            return row;
        }
        let faults = async {
            let mut injected = Vec::new();
            let base = Instant::now();
            let timeline = scenario.faults.iter().map(|(at, fault)| async move {
                tokio::time::sleep_until((base + o.shape.duration.mul_f64(*at)).into()).await;
                self.inject(*fault).await
            });
            injected.extend(futures::future::join_all(timeline).await);
            injected
        };
        let fan_prefix = format!("s{index}-fan-");
        let spike = spike::run(self.entry.clone(), &event_id, &fan_prefix, &o.shape, o.seed + index as u64);
        let (observed, injected) = tokio::join!(spike, faults);
        row.faults = injected;
        let settled = self.settle(&event_id, o.settle_limit).await;
        if let Err(e) = &settled {
            row.problems.push(e.clone());
        }
        match self.check(&event_id, o.capacity, &observed).await {
            Ok(t) => row.tally = t,
            Err(e) => row.problems.push(format!("could not check: {e}")),
        }
        row.dead_lettered = self.queue_depth(&self.dlq_url).await.unwrap_or(-1);
        row.requests = o.shape.requests;
        row.fill(&observed);
        row.seconds = started.elapsed().as_secs_f64();
        row
    }

    async fn open_event(&self, id: &str, capacity: i64) -> Result<(), String> {
        let event = FanEvent {
            id: EventId::parse(id).map_err(|e| e.to_string())?,
            title: "Drill".into(),
            opens_at: Utc::now() - chrono::Duration::minutes(1),
            closes_at: Utc::now() + chrono::Duration::hours(2),
            capacity,
            expected_peak_rps: 2_000.0,
            lead_minutes: None,
            cooldown_minutes: None,
        };
        self.db.upsert_event(&event).await.map_err(|e| e.to_string())?;
        // A scenario before may have left the gate to be restored; wait for it.
        for _ in 0..600 {
            match self.gate.publish(&event).await {
                Ok(_) => return Ok(()),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Err("the gate did not accept the event within 60 s".into())
    }

    async fn inject(&self, fault: Fault) -> String {
        let outcome = match fault {
            Fault::RedisClientsKilled => {
                self.redis.lock().await.kill_clients().await.map(|n| format!("Redis: {n} client connections killed"))
            }
            Fault::RedisRestart => self
                .redis
                .lock()
                .await
                .restart_with_data()
                .await
                .map(|d| format!("Redis restarted with its data (down {:.2} s)", d.as_secs_f64())),
            Fault::RedisFlush => {
                self.redis.lock().await.flush().await.map(|_| "Redis lost its data (FLUSHALL)".to_owned())
            }
            Fault::SqsUnreachable(d) => {
                self.proxies.sqs.set(ProxyFault::Refuse);
                tokio::time::sleep(d).await;
                self.proxies.sqs.set(ProxyFault::None);
                Ok(format!("SQS unreachable for {:.1} s", d.as_secs_f64()))
            }
            Fault::SqsAnswersLost(d) => {
                self.proxies.sqs.set(ProxyFault::DropResponses);
                tokio::time::sleep(d).await;
                self.proxies.sqs.set(ProxyFault::None);
                Ok(format!("SQS answers lost for {:.1} s (requests arrived)", d.as_secs_f64()))
            }
            Fault::PostgresRestart => {
                // Slow the database for a second first, so a backlog builds
                // and the restart lands while the writers are draining it.
                self.proxies.postgres.set(ProxyFault::Delay(Duration::from_millis(100)));
                tokio::time::sleep(Duration::from_secs(1)).await;
                let backlog = self.queue_depth(&self.queue_url).await.unwrap_or(-1);
                let busy = self.writers.iter().filter(|w| w.busy()).count();
                let mut pg = self.postgres.lock().await;
                let restarted = match pg.as_mut() {
                    Some(pg) => pg.restart().await.map(|d| {
                        format!(
                            "PostgreSQL restarted with {backlog} entries queued and {busy} writer batches in flight (down {:.2} s)",
                            d.as_secs_f64()
                        )
                    }),
                    None => Err("PostgreSQL is gone".into()),
                };
                self.proxies.postgres.set(ProxyFault::None);
                restarted
            }
            Fault::WriterKilled => Ok(self.kill_a_writer().await),
            Fault::RedisFailover(lag) => self.failover(lag).await,
            Fault::RedisStaleSnapshot(lag) => {
                let snapshot = self.root.join("stale.rdb");
                let redis = self.redis.lock().await;
                match redis.snapshot(&snapshot).await {
                    Ok(()) => {
                        drop(redis);
                        tokio::time::sleep(lag).await;
                        let mut redis = self.redis.lock().await;
                        redis.restart_from_snapshot(&snapshot).await.map(|d| {
                            format!(
                                "Redis restarted from a snapshot {:.1} s old (down {:.2} s)",
                                lag.as_secs_f64(),
                                d.as_secs_f64()
                            )
                        })
                    }
                    Err(e) => Err(e),
                }
            }
            Fault::SqsUnknownThenRefused(d) => {
                self.proxies.sqs.set(ProxyFault::DropResponses);
                tokio::time::sleep(d).await;
                self.proxies.sqs.set(ProxyFault::Refuse);
                tokio::time::sleep(d).await;
                self.proxies.sqs.set(ProxyFault::None);
                Ok(format!("SQS answers lost for {0:.1} s, then SQS refused for {0:.1} s", d.as_secs_f64()))
            }
        };
        outcome.unwrap_or_else(|e| format!("{fault:?} failed: {e}"))
    }

    /// A failover as ElastiCache plays it with asynchronous replication: a
    /// replica of the drill's Redis (through a link proxy) stops receiving
    /// writes for `lag` while the primary keeps acknowledging them; then the
    /// primary dies, the replica is promoted, the endpoint (the functions'
    /// proxy) moves to it and every client connection is cut. The replica
    /// then stands in as the drill's Redis.
    async fn failover(&self, lag: Duration) -> Result<String, String> {
        let redis = self.redis.lock().await;
        let dir = self.root.join(format!("replica-{}", Instant::now().duration_since(self.started).as_millis()));
        let replica = PrivateRedis::start(dir).await?;
        let link = FaultProxy::start(redis.addr()).await.map_err(|e| e.to_string())?;
        replica.replicate_from(link.addr()).await?;
        link.set(ProxyFault::Blackhole);
        link.reset_all();
        drop(redis);
        tokio::time::sleep(lag).await;
        let mut redis = self.redis.lock().await;
        redis.kill().await;
        replica.promote().await?;
        self.proxies.redis.set_upstream(replica.addr());
        self.proxies.redis.reset_all();
        *redis = replica;
        Ok(format!(
            "Redis failover: replication cut {:.1} s before the primary died; replica promoted",
            lag.as_secs_f64()
        ))
    }

    /// Slows PostgreSQL's answers so a batch is surely in flight, then
    /// SIGKILLs the writer holding it.
    async fn kill_a_writer(&self) -> String {
        self.proxies.postgres.set(ProxyFault::Delay(Duration::from_millis(200)));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut victim = None;
        while Instant::now() < deadline && victim.is_none() {
            victim = self.writers.iter().find(|w| w.busy());
            if victim.is_none() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if victim.is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mid_batch = victim.unwrap_or(&self.writers[0]).kill_and_replace().await;
        self.proxies.postgres.set(ProxyFault::None);
        if mid_batch {
            "writer SIGKILLed mid-batch".to_owned()
        } else {
            "writer SIGKILLed while idle (no batch in flight within 5 s)".to_owned()
        }
    }

    /// Waits until the queue drained, the gate state is there and nothing
    /// is pending for the event, twice in a row.
    async fn settle(&self, event: &str, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        let mut calm = 0;
        while started.elapsed() < limit {
            let drained = self.queue_depth(&self.queue_url).await == Ok(0);
            let redis = self.redis.lock().await;
            let state =
                matches!(redis.command(&["EXISTS", &format!("{PREFIX}:state")]).await, Ok(redis::Value::Int(1)));
            let pending = redis.command(&["ZCARD", &format!("{PREFIX}:ev:{event}:pending")]).await;
            drop(redis);
            calm = if drained && state && matches!(pending, Ok(redis::Value::Int(0))) { calm + 1 } else { 0 };
            if calm >= 2 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(format!("did not settle within {limit:?} (queue, gate state or pending reservations)"))
    }

    async fn check(&self, event: &str, capacity: i64, observed: &Observed) -> Result<Tally, String> {
        let id = EventId::parse(event).map_err(|e| e.to_string())?;
        let rows: Vec<(String, i64)> = self
            .db
            .entries(&id)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|e| (e.fan_id.as_str().to_owned(), e.position))
            .collect();
        let redis = self.redis.lock().await;
        let taken = match redis.command(&["HGET", &format!("{PREFIX}:ev:{event}"), "taken"]).await? {
            redis::Value::BulkString(b) => String::from_utf8_lossy(&b).parse().unwrap_or(-1),
            _ => 0,
        };
        let fans = redis.command(&["HGETALL", &format!("{PREFIX}:ev:{event}:fans")]).await?;
        let mut gate = GateView { taken, ..GateView::default() };
        if let redis::Value::Array(items) = fans {
            let text = |v: &redis::Value| match v {
                redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            for pair in items.chunks(2) {
                let (fan, record) = (text(&pair[0]), text(&pair[1]));
                let parts: Vec<&str> = record.split(':').collect();
                let position = parts.first().and_then(|p| p.parse().ok()).unwrap_or(-1);
                gate.records.insert(fan, (position, parts.len() > 2));
            }
        }
        Ok(verify::check(capacity, &observed.told, &rows, &gate, observed.sold_out))
    }

    async fn queue_depth(&self, url: &str) -> Result<i64, String> {
        fanrush::queue::depth(&self.sqs, url).await.map(|d| d.total()).map_err(|e| e.to_string())
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for url in [&self.queue_url, &self.dlq_url] {
            let _ = self.sqs.delete_queue().queue_url(url).send().await;
        }
        if let Some(pg) = self.postgres.lock().await.take() {
            pg.stop().await;
        }
        let _ = std::fs::remove_dir_all(&self.root);
        eprintln!(
            "drill: finished in {:.1} s ({} scheduler ticks failed)",
            self.started.elapsed().as_secs_f64(),
            self.ticks_failed.load(Ordering::Relaxed)
        );
    }
}

/// One scenario's line of the table.
#[derive(Debug, Default)]
pub struct Row {
    pub scenario: String,
    pub requests: usize,
    pub attempts: usize,
    pub statuses: std::collections::BTreeMap<String, usize>,
    pub faults: Vec<String>,
    pub tally: Tally,
    pub gave_up: usize,
    pub dead_lettered: i64,
    pub problems: Vec<String>,
    pub seconds: f64,
}

impl Row {
    fn fill(&mut self, o: &Observed) {
        self.attempts = o.attempts;
        self.statuses = o.statuses.clone();
        self.gave_up = o.gave_up;
    }

    /// Answers that are neither a decision (200/202/409), a throttle (429)
    /// nor a retryable refusal (503): any of them is a defect.
    fn unexpected(&self) -> usize {
        self.statuses
            .iter()
            .filter(|(s, _)| !matches!(s.as_str(), "200" | "202" | "409" | "429" | "503" | "504"))
            .map(|(_, n)| n)
            .sum()
    }

    fn clean(&self) -> bool {
        self.tally.clean() && self.unexpected() == 0 && self.problems.is_empty() && self.dead_lettered == 0
    }
}

pub struct Report {
    pub rows: Vec<Row>,
    pub shape: String,
    pub capacity: i64,
}

impl Report {
    pub fn clean(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(Row::clean)
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let n = |r: &Row, s: &str| r.statuses.get(s).copied().unwrap_or(0);
        let _ = writeln!(t, "| scenario | requests (HTTP attempts) | 202 | 200 | 409 | 429 | 503 | no answer | other | faults | accepted | rows | lost | duplicates | oversold | leaked | ghost | gave up | DLQ |");
        let _ = writeln!(t, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for r in &self.rows {
            let x = &r.tally;
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                format_args!("{} ({} sent)", r.requests, r.attempts),
                n(r, "202"),
                n(r, "200"),
                n(r, "409"),
                n(r, "429"),
                n(r, "503"),
                n(r, "504"),
                r.unexpected(),
                r.faults.len(),
                x.accepted,
                x.rows,
                x.lost,
                x.duplicates,
                x.oversold,
                x.leaked,
                x.ghost,
                r.gave_up,
                r.dead_lettered
            );
        }
        let _ = writeln!(t);
        for r in &self.rows {
            for f in &r.faults {
                let _ = writeln!(t, "- {}: {f}", r.scenario);
            }
            for p in &r.problems {
                let _ = writeln!(t, "- {}: PROBLEM: {p}", r.scenario);
            }
        }
        let verdict = if self.clean() { "every invariant held" } else { "AN INVARIANT WAS BROKEN" };
        let _ = writeln!(t, "\ncapacity {} per scenario; {verdict}", self.capacity);
        t
    }

    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "scenario": r.scenario, "requests": r.requests, "attempts": r.attempts, "statuses": r.statuses, "faults": r.faults,
                    "accepted": r.tally.accepted, "rows": r.tally.rows, "lost": r.tally.lost,
                    "duplicates": r.tally.duplicates, "oversold": r.tally.oversold, "leaked": r.tally.leaked,
                    "ghost": r.tally.ghost, "gaveUp": r.gave_up, "deadLettered": r.dead_lettered,
                    "problems": r.problems, "seconds": r.seconds, "clean": r.clean(),
                })
            })
            .collect();
        let doc = json!({ "shape": self.shape, "capacity": self.capacity, "clean": self.clean(), "scenarios": rows });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
    }
}
