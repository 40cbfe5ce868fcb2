//! The drill's stack: a private Redis and PostgreSQL, the SQS endpoint, a
//! fault proxy in front of each, the functions' pools (entry-api, writers,
//! admin-api, scheduler), the event-source mapping and the compressed
//! schedule. [`crate::run`] plays the scenarios on it; [`crate::faults`]
//! plays the faults.

use crate::options::Options;
use chrono::Utc;
use fanrush::adapters::postgres_store::Database;
use fanrush::adapters::redis_gate::{EntryGate, LazyRedis};
use fanrush::rules::domain::{EventId, FanEvent};
use fanrush_local::cluster::PrivateRedisCluster;
use fanrush_local::esm::{EventSourceMapping, Polled};
use fanrush_local::local_aws::provision;
use fanrush_local::pool::{Environment, FunctionSpec, Pool};
use fanrush_local::services::{PrivatePostgres, PrivateRedis};
use fanrush_local::{local_aws, Fault as ProxyFault, FaultProxy, HttpCapture};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The gate's key prefix (the functions' default).
pub const PREFIX: &str = "fanrush";
/// The compressed schedule and the recovery waits the drill gives the
/// scheduler (production: every minute, 15 s and 300 s). Both waits stay
/// above the longest an entry request can be in flight here (about 2 s:
/// Redis timeouts 0.2 + 0.25 s with one retry, one SQS attempt of 1 s).
const TICK: Duration = Duration::from_secs(1);
const RESTORE_SETTLE_S: &str = "5";
const SWEEP_AFTER_S: &str = "5";
/// The draw is revealed this long after the opening (production: 60 s,
/// twice the longest sync interval; the drill's environments sync every
/// second).
const REVEAL_AFTER_S: &str = "5";
/// The receipts' signing key (a local stand-in; the drill checks receipts
/// against the keys entry-api publishes).
const RECEIPT_SECRET: &str = "drill-receipt-key";

/// Proxies between the functions and each service.
pub(crate) struct Proxies {
    pub redis: FaultProxy,
    /// The scheduler's and admin-api's path to SQS.
    pub sqs: FaultProxy,
    /// Each entry environment's own path to SQS (its own network
    /// interface in AWS), so one can fail while another works.
    pub sqs_paths: Vec<FaultProxy>,
    pub postgres: FaultProxy,
}

impl Proxies {
    /// SQS fails the same way for every function.
    pub fn set_sqs(&self, fault: ProxyFault) {
        self.sqs.set(fault);
        self.sqs_paths.iter().for_each(|p| p.set(fault));
    }
}

/// The secrets extensions the entry environments read the line's ticket
/// key through: stand-ins answering as the Parameters and Secrets
/// extension does (`refreshNow=true` reaches past its cache to Secrets
/// Manager, `versionStage=AWSPREVIOUS` the key before the last rotation).
/// The even environments use one, the odd ones the other, so a rotation
/// can reach them at different times, as extension caches do.
pub(crate) struct TicketKeyExtensions {
    /// The even environments': serves a rotated key from its cache late.
    behind: HttpCapture,
    ahead: HttpCapture,
    old: String,
    new: String,
    state: std::sync::Mutex<KeyState>,
}

#[derive(Default)]
struct KeyState {
    rotated: bool,
    caught_up: bool,
    down: bool,
}

/// The secret's id the entry environments read, and how long they (and
/// their extensions) keep it: short, so a rotation lands within a run.
const TICKET_SECRET_ID: &str = "drill-line-ticket-key";
const KEYS_TTL_S: &str = "2";

impl TicketKeyExtensions {
    async fn start() -> Result<Self, String> {
        let start = || async { HttpCapture::start().await.map_err(|e| format!("secrets extension stand-in: {e}")) };
        let (behind, ahead) = (start().await?, start().await?);
        let old = fanrush::adapters::redis_gate::new_line_seed();
        let new = fanrush::adapters::redis_gate::new_line_seed();
        let keys = Self { behind, ahead, old, new, state: std::sync::Mutex::default() };
        keys.apply();
        Ok(keys)
    }

    fn port(&self, environment: usize) -> u16 {
        if environment.is_multiple_of(2) {
            self.behind.port()
        } else {
            self.ahead.port()
        }
    }

    /// The key rotates: the ahead extension serves it at once, the behind
    /// one from its cache only once [`Self::catch_up`].
    pub fn rotate(&self) {
        self.state.lock().unwrap().rotated = true;
        self.apply();
    }

    pub fn catch_up(&self) {
        self.state.lock().unwrap().caught_up = true;
        self.apply();
    }

    /// Both extensions fail every read (500) while `down`.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
        self.apply();
    }

    fn apply(&self) {
        let state = self.state.lock().unwrap();
        let secret = |value: &str| json!({ "SecretString": value }).to_string();
        let none =
            r#"{"message":"Secrets Manager can't find the specified secret value for staging label: AWSPREVIOUS"}"#;
        for (extension, behind) in [(&self.behind, true), (&self.ahead, false)] {
            // (status, body) for: previous past the cache, current past the
            // cache, previous from the cache, current from the cache. Rules
            // are tried in the order first set, so the two-text one first.
            let answers: [(u16, String); 4] = if state.down {
                std::array::from_fn(|_| (500, r#"{"message":"Secrets Manager could not be reached"}"#.to_owned()))
            } else if !state.rotated {
                [(400, none.into()), (200, secret(&self.old)), (400, none.into()), (200, secret(&self.old))]
            } else if behind && !state.caught_up {
                [(200, secret(&self.old)), (200, secret(&self.new)), (400, none.into()), (200, secret(&self.old))]
            } else {
                [(200, secret(&self.old)), (200, secret(&self.new)), (200, secret(&self.old)), (200, secret(&self.new))]
            };
            extension.answer_when(&["AWSPREVIOUS", "refreshNow=true"], answers[0].0, &answers[0].1);
            extension.answer_when(&["refreshNow=true"], answers[1].0, &answers[1].1);
            extension.answer_when(&["AWSPREVIOUS"], answers[2].0, &answers[2].1);
            extension.answer(answers[3].0, &answers[3].1);
        }
    }
}

pub struct Stack {
    pub(crate) root: PathBuf,
    pub(crate) bin_dir: PathBuf,
    pub(crate) redis: Mutex<PrivateRedis>,
    /// On a cluster stack, the three-shard cluster the functions use (the
    /// node above then stands by).
    pub(crate) cluster: Option<Mutex<PrivateRedisCluster>>,
    /// Events whose shard a fault failed over: their 503s are expected.
    pub(crate) failed_over: std::sync::Mutex<Vec<String>>,
    pub(crate) postgres: Mutex<Option<PrivatePostgres>>,
    pub(crate) proxies: Proxies,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) queue_url: String,
    pub(crate) dlq_url: String,
    pub(crate) db: Database,
    pub(crate) gate: EntryGate,
    pub(crate) entry: Arc<Pool>,
    pub(crate) ticket_keys: TicketKeyExtensions,
    pub(crate) admin: Environment,
    pub(crate) writers: Vec<Arc<Environment>>,
    scheduler: Arc<Environment>,
    stop: Arc<AtomicBool>,
    /// Every failed scheduler tick, with its error, and how many of them a
    /// scenario's row has taken.
    ticks_failed: Arc<std::sync::Mutex<Vec<String>>>,
    ticks_taken: std::sync::atomic::AtomicUsize,
    pub(crate) started: Instant,
}

/// One of a scenario's events: its id and the hash tag its keys carry.
#[derive(Debug, Clone)]
pub struct DrillEvent {
    pub id: String,
    pub tag: String,
}

pub(crate) fn endpoint() -> String {
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

impl Stack {
    /// The drill's stack; with `cluster`, its gate on a private three-shard
    /// Redis cluster, each shard a primary and a replica.
    pub async fn start(o: &Options, cluster: bool) -> Result<Self, String> {
        let started = Instant::now();
        let topology = if cluster { "cluster" } else { "node" };
        let root = std::env::temp_dir().join(format!("fanrush-drill-{}-{topology}", std::process::id()));
        let logs_dir = if cluster { "logs-cluster" } else { "logs" };
        let logs = o.out.parent().map(|p| p.join(logs_dir)).unwrap_or_else(|| PathBuf::from(logs_dir));
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        eprintln!("drill: private redis-server and PostgreSQL under {}", root.display());
        let redis = PrivateRedis::start(root.join("redis")).await?;
        let cluster = match cluster {
            true => Some(PrivateRedisCluster::start(root.join("cluster"), 3, 1).await?),
            false => None,
        };
        let postgres = PrivatePostgres::start(root.join("pg")).await?;
        let sqs_addr = loopback(&endpoint())?;
        let proxy = |a| async move { FaultProxy::start(a).await.map_err(|e| format!("proxy: {e}")) };
        let mut sqs_paths = Vec::with_capacity(o.entry_environments());
        for _ in 0..o.entry_environments() {
            sqs_paths.push(proxy(sqs_addr).await?);
        }
        let proxies = Proxies {
            redis: proxy(redis.addr()).await?,
            sqs: proxy(sqs_addr).await?,
            sqs_paths,
            postgres: proxy(postgres.addr()).await?,
        };

        let sdk = local_aws::sdk_config(&endpoint()).await;
        let sqs = fanrush::adapters::aws_sdk::sqs_client(&sdk, Duration::from_secs(10));
        let (queue_url, dlq_url) = provision(&sqs, &format!("fanrush-drill-{}", std::process::id()), 10, 3)
            .await
            .map_err(|e| format!("the SQS endpoint at {}: {e}", endpoint()))?;
        let db = Database::new(&postgres.url(), None, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        db.migrate().await.map_err(|e| e.to_string())?;
        // Through the endpoint proxy, which a failover moves to the replica;
        // on a cluster, through the cluster client as the functions reach it.
        let redis_url = match &cluster {
            Some(c) => c.url(),
            None => format!("redis://{}", proxies.redis.addr()),
        };
        let lazy =
            LazyRedis::new(&redis_url, Duration::from_secs(2), Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let gate = EntryGate::on(if cluster.is_some() { lazy.in_cluster_mode() } else { lazy }, PREFIX);
        gate.mark_state_present().await.map_err(|e| e.to_string())?;

        let ticket_keys = TicketKeyExtensions::start().await?;
        let env = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
            // The functions reach every service through the drill's proxies.
            let mut v = local_aws::function_env(&format!("http://{}", proxies.sqs.addr()));
            v.extend(
                [
                    ("REDIS_URL", redis_url.clone()),
                    ("REDIS_CLUSTER", cluster.is_some().to_string()),
                    ("DATABASE_URL", format!("postgres://postgres@{}/postgres", proxies.postgres.addr())),
                    ("SQS_QUEUE_URL", queue_url.clone()),
                    ("SQS_DLQ_URL", dlq_url.clone()),
                    ("RUST_LOG", std::env::var("DRILL_RUST_LOG").unwrap_or_else(|_| "warn".into())),
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
        for name in ["entry-api", "admin-api", "writer", "scheduler", "fanrush"] {
            if !o.bin_dir.join(name).exists() {
                return Err(format!("{} is missing; build the workspace first", o.bin_dir.join(name).display()));
            }
        }
        let entry = Arc::new(
            Pool::start_each(
                &spec(
                    "entry-api",
                    &[
                        ("LINE_TICKET_SECRET_ID", TICKET_SECRET_ID),
                        ("SECRETS_MANAGER_TTL", KEYS_TTL_S),
                        ("RECEIPT_SECRET", RECEIPT_SECRET),
                    ],
                ),
                o.entry_environments(),
                |i, s| {
                    s.env.push(("AWS_ENDPOINT_URL".into(), format!("http://{}", proxies.sqs_paths[i].addr())));
                    s.env.push(("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT".into(), ticket_keys.port(i).to_string()));
                },
            )
            .await?,
        );
        // IAM-authorized in AWS: the drill's requests carry an IAM identity.
        let admin = Environment::start(spec("admin-api", &[("GATE_RESTORE_SETTLE_SECONDS", RESTORE_SETTLE_S)])).await?;
        let mut writers = Vec::new();
        for i in 0..o.writers() {
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
                    ("DRAW_REVEAL_AFTER_SECONDS", REVEAL_AFTER_S),
                ],
            ))
            .await?,
        );
        let stack = Self {
            root,
            bin_dir: o.bin_dir.clone(),
            redis: Mutex::new(redis),
            cluster: cluster.map(Mutex::new),
            failed_over: Default::default(),
            postgres: Mutex::new(Some(postgres)),
            proxies,
            sqs,
            queue_url,
            dlq_url,
            db,
            gate,
            entry,
            ticket_keys,
            admin,
            writers,
            scheduler,
            stop: Arc::new(AtomicBool::new(false)),
            ticks_failed: Arc::default(),
            ticks_taken: Default::default(),
            started,
        };
        stack.start_event_sources();
        eprintln!("drill: stack up in {:.1} s; logs in {}", started.elapsed().as_secs_f64(), logs.display());
        Ok(stack)
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
        let (scheduler, stop) = (self.scheduler.clone(), self.stop.clone());
        let failed = self.ticks_failed.clone();
        tokio::spawn(async move {
            let tick = json!({
                "version": "0", "id": "drill", "detail-type": "Scheduled Event", "source": "aws.events",
                "account": "000000000000", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
                "resources": [], "detail": {}
            });
            while !stop.load(Ordering::Relaxed) {
                let why = match scheduler.invoke(&tick, Duration::from_secs(30)).await {
                    Ok(a) if !a.error => None,
                    Ok(a) => Some(a.body.chars().take(300).collect()),
                    Err(e) => Some(format!("no answer: {e:?}")),
                };
                if let Some(why) = why {
                    failed.lock().unwrap().push(why);
                }
                tokio::time::sleep(TICK).await;
            }
        });
    }

    /// The scenario's fan event: open for two hours from a minute ago.
    pub(crate) fn event(id: &str, capacity: i64) -> Result<FanEvent, String> {
        Ok(FanEvent {
            id: EventId::parse(id).map_err(|e| e.to_string())?,
            title: "Drill".into(),
            opens_at: Utc::now() - chrono::Duration::minutes(1),
            closes_at: Utc::now() + chrono::Duration::hours(2),
            capacity,
            expected_peak_rps: 2_000.0,
            lead_minutes: None,
            cooldown_minutes: None,
            line: None,
        })
    }

    /// Runs `args` on the Redis server holding `key`: the one node, or the
    /// cluster's primary serving the key's slot.
    pub(crate) async fn command_for(&self, key: &str, args: &[&str]) -> Result<redis::Value, String> {
        match &self.cluster {
            Some(cluster) => cluster.lock().await.command_for_key(key, args).await,
            None => self.redis.lock().await.command(args).await,
        }
    }

    pub(crate) async fn queue_depth(&self, url: &str) -> Result<i64, String> {
        fanrush::adapters::sqs_queue::depth(&self.sqs, url).await.map(|d| d.total()).map_err(|e| e.to_string())
    }

    /// The scheduler's ticks that failed since the last call, each with the
    /// function's error (a tick while PostgreSQL is down fails, so that
    /// Lambda's asynchronous retry runs it again).
    pub fn take_failed_ticks(&self) -> Vec<String> {
        let failed = self.ticks_failed.lock().unwrap();
        let from = self.ticks_taken.swap(failed.len(), Ordering::Relaxed);
        failed[from..].to_vec()
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for url in [&self.queue_url, &self.dlq_url] {
            let _ = self.sqs.delete_queue().queue_url(url).send().await;
        }
        if let Some(pg) = self.postgres.lock().await.take() {
            pg.stop().await;
        }
        if let Some(cluster) = &self.cluster {
            cluster.lock().await.kill().await;
        }
        let _ = std::fs::remove_dir_all(&self.root);
        eprintln!(
            "drill: finished in {:.1} s ({} scheduler ticks failed)",
            self.started.elapsed().as_secs_f64(),
            self.ticks_failed.lock().unwrap().len()
        );
    }
}
