//! A Lambda Runtime API harness: the HTTP endpoint a function's runtime
//! long-polls for invocations (`GET /2018-06-01/runtime/invocation/next`) and
//! answers (`POST .../{id}/response` or `/error`), on loopback, with nothing
//! else on the network path. It records when the function first asked for
//! work (the end of its init) and when each answer arrived, and sends a
//! unique trace id with every invocation, as Lambda does.
//!
//! One harness is one execution environment: one invocation at a time. The
//! benchmarks time functions under it; the drill runs the spike through a
//! pool of them and kills environments mid-invocation ([`Harness::abandon`]).
//!
//! Its HTTP is hyper's, through the stand-ins' one server loop
//! ([`crate::http_server`]).

use crate::http_server::{response, serve, BodyError, Received};
use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use hyper::Response;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch, Mutex as AsyncMutex};

/// The largest answer a function may send: Lambda's payload quota for a
/// synchronous invocation, 6 MB for the response ("Invocation payload
/// (request and response)", Lambda quotas,
/// https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
const MAX_RESPONSE: usize = 6 * 1024 * 1024;

/// Why an invocation got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeError {
    /// No answer in time (API Gateway would answer 504).
    Timeout,
    /// The environment was killed while it held the invocation.
    Abandoned,
}

/// One invocation's answer.
pub struct Answer {
    pub body: String,
    pub error: bool,
    /// From the harness handing out the event to the answer arriving.
    pub elapsed: Duration,
}

struct Pending {
    request_id: String,
    body: String,
    reply: oneshot::Sender<Answer>,
}

struct Shared {
    queue: AsyncMutex<mpsc::Receiver<Pending>>,
    in_flight: Mutex<Option<(String, Instant, oneshot::Sender<Answer>)>>,
    first_next: Mutex<Option<Instant>>,
    first_next_signal: Mutex<Option<oneshot::Sender<Instant>>>,
    counter: AtomicU64,
    /// Moved on by [`Harness::abandon`]: a poll for work from the process
    /// that was killed stops waiting, so it takes no invocation the next
    /// process should get.
    generation: watch::Sender<u64>,
}

/// A running harness for one function process.
pub struct Harness {
    pub port: u16,
    shared: Arc<Shared>,
    send: mpsc::Sender<Pending>,
    first: Option<oneshot::Receiver<Instant>>,
}

impl Harness {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the harness");
        let port = listener.local_addr().unwrap().port();
        let (send, receive) = mpsc::channel(1);
        let (first_tx, first_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            queue: AsyncMutex::new(receive),
            in_flight: Mutex::new(None),
            first_next: Mutex::new(None),
            first_next_signal: Mutex::new(Some(first_tx)),
            counter: AtomicU64::new(0),
            generation: watch::Sender::new(0),
        });
        let s = shared.clone();
        tokio::spawn(serve(listener, MAX_RESPONSE, move |received| runtime_api(received, s.clone())));
        Self { port, shared, send, first: Some(first_rx) }
    }

    /// Starts `program` as a Lambda function against this harness; its
    /// stdout and stderr go where the caller set them.
    pub fn spawn(&self, program: &mut Command) -> (Child, Instant) {
        program
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{}", self.port))
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            // This is a local emulator, not AWS: dev mode and plain keys
            // are allowed (fanrush::config::runs_in_aws).
            .env("FANRUSH_LOCAL", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let started = Instant::now();
        (program.spawn().expect("spawn the function"), started)
    }

    /// Waits until the function first asks for an invocation.
    pub async fn first_next(&mut self, timeout: Duration) -> Option<Instant> {
        let first = self.first.take()?;
        tokio::time::timeout(timeout, first).await.ok()?.ok()
    }

    /// Sends one invocation and waits for its answer; panics without one
    /// within 30 s (benchmarks: a function that does not answer is a bug).
    pub async fn invoke(&self, body: String) -> Answer {
        self.try_invoke(body, Duration::from_secs(30)).await.expect("the function answers")
    }

    /// Sends one invocation (queued behind any in flight) and waits up to
    /// `timeout` for its answer.
    pub async fn try_invoke(&self, body: String, timeout: Duration) -> Result<Answer, InvokeError> {
        let n = self.shared.counter.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let pending = Pending { request_id: format!("req-{n:012}"), body, reply };
        let exchange = async {
            self.send.send(pending).await.map_err(|_| InvokeError::Abandoned)?;
            answer.await.map_err(|_| InvokeError::Abandoned)
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| InvokeError::Timeout)?
    }

    /// Whether the function holds an invocation right now.
    pub fn busy(&self) -> bool {
        self.shared.in_flight.lock().unwrap().is_some()
    }

    /// Gives up the invocation in flight (its caller sees
    /// [`InvokeError::Abandoned`]): call it after killing the process.
    pub fn abandon(&self) {
        self.shared.generation.send_modify(|g| *g += 1);
        self.shared.in_flight.lock().unwrap().take();
    }
}

/// The Runtime API's three calls: the next invocation, its answer, its
/// error (init errors and anything else are acknowledged and dropped).
async fn runtime_api(received: Result<Received, BodyError>, shared: Arc<Shared>) -> Response<Full<Bytes>> {
    let request = match received {
        Ok(r) => r,
        Err(BodyError::TooLarge) => return response(413, &[], "the answer is over Lambda's 6 MB"),
        Err(BodyError::Broken) => return response(400, &[], ""),
    };
    let path = request.parts.uri.path();
    if request.parts.method == Method::GET && path.ends_with("/runtime/invocation/next") {
        return next_invocation(&shared).await;
    }
    if request.parts.method == Method::POST && (path.ends_with("/response") || path.ends_with("/error")) {
        if let Some((_, delivered, reply)) = shared.in_flight.lock().unwrap().take() {
            let _ = reply.send(Answer {
                body: String::from_utf8_lossy(&request.body).into_owned(),
                error: path.ends_with("/error"),
                elapsed: delivered.elapsed(),
            });
        }
        return response(202, &[], "{\"status\":\"OK\"}\n");
    }
    response(202, &[], "")
}

/// Waits for work and hands it out with Lambda's headers, unless the
/// process asking is abandoned first.
async fn next_invocation(shared: &Shared) -> Response<Full<Bytes>> {
    {
        let mut first = shared.first_next.lock().unwrap();
        if first.is_none() {
            let now = Instant::now();
            *first = Some(now);
            if let Some(tx) = shared.first_next_signal.lock().unwrap().take() {
                let _ = tx.send(now);
            }
        }
    }
    let mut generation = shared.generation.subscribe();
    let gone = || response(410, &[], "");
    let p = tokio::select! {
        biased;
        _ = generation.changed() => return gone(),
        p = async { shared.queue.lock().await.recv().await } => match p {
            Some(p) => p,
            None => return gone(),
        },
    };
    let n = shared.counter.load(Ordering::Relaxed);
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let trace = format!("Root=1-{:08x}-{n:024x};Parent={:016x};Sampled=0", deadline / 1000, n ^ 0x5bd1e995);
    let (deadline, request_id) = (deadline.to_string(), p.request_id.clone());
    let headers = [
        ("content-type", "application/json"),
        ("lambda-runtime-aws-request-id", request_id.as_str()),
        ("lambda-runtime-deadline-ms", deadline.as_str()),
        ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:000000000000:function:bench"),
        ("lambda-runtime-trace-id", trace.as_str()),
    ];
    let answer = response(200, &headers, p.body);
    *shared.in_flight.lock().unwrap() = Some((p.request_id, Instant::now(), p.reply));
    answer
}

/// Resident set size of a process, in MB.
pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User + system CPU time of a process, in ms.
pub fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks * 1000.0 / 100.0
}

/// The machine a run ran on, for its results file: the CPU model and the
/// cores this process may use.
pub fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name"))?.split(':').nth(1).map(|m| m.trim().to_owned()))
        .unwrap_or_default();
    serde_json::json!({ "cpu": cpu, "cores": std::thread::available_parallelism().map_or(0, |n| n.get()) })
}
