//! fanrush's real function binaries, each in execution environments of the
//! drill's own: one process per [`Environment`], served by a Runtime API
//! harness. Killing one mid-invocation and starting a fresh process is what
//! Lambda does when an environment dies.

use crate::runtime::{Answer, Harness, InvokeError};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// How to start one function.
#[derive(Clone)]
pub struct FunctionSpec {
    pub name: &'static str,
    pub binary: PathBuf,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

impl FunctionSpec {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log);
        c.stdout(Stdio::null()).stderr(log.map(Stdio::from).unwrap_or_else(|_| Stdio::null()));
        c
    }
}

/// One execution environment: a harness and the process it serves.
pub struct Environment {
    spec: FunctionSpec,
    harness: Harness,
    child: Mutex<Option<Child>>,
    /// Invocations sent here and not answered yet (the one it serves and
    /// those queued behind it).
    outstanding: AtomicUsize,
}

/// Counts an invocation as outstanding for as long as it lives, however
/// its caller's future ends.
struct Outstanding<'a>(&'a AtomicUsize);

impl<'a> Outstanding<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Environment {
    pub async fn start(spec: FunctionSpec) -> Result<Self, String> {
        let mut harness = Harness::start().await;
        let (child, _) = harness.spawn(&mut spec.command());
        if harness.first_next(Duration::from_secs(30)).await.is_none() {
            return Err(format!("{} did not start; see {}", spec.name, spec.log.display()));
        }
        Ok(Self { spec, harness, child: Mutex::new(Some(child)), outstanding: AtomicUsize::new(0) })
    }

    pub async fn invoke(&self, event: &Value, timeout: Duration) -> Result<Answer, InvokeError> {
        let _counted = Outstanding::new(&self.outstanding);
        self.harness.try_invoke(event.to_string(), timeout).await
    }

    /// Invocations sent here and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Whether the function is working on an invocation right now.
    pub fn busy(&self) -> bool {
        self.harness.busy()
    }

    /// SIGKILLs the process (whatever it was doing is cut short; its caller
    /// sees no answer) and starts a fresh one, as Lambda replaces a dead
    /// environment. Returns whether an invocation was in flight.
    pub async fn kill_and_replace(&self) -> bool {
        let mut child = self.child.lock().await;
        let was_busy = self.busy();
        if let Some(mut c) = child.take() {
            let _ = c.kill().await;
        }
        self.harness.abandon();
        let (fresh, _) = self.harness.spawn(&mut self.spec.command());
        *child = Some(fresh);
        was_busy
    }
}

/// Environments of one function. A request goes to an idle environment,
/// as Lambda routes it ("Lambda function scaling", AWS Lambda Developer
/// Guide: a request that finds every environment busy gets a new one).
/// The pool cannot start one, so when every environment is busy the request
/// queues behind the one with the fewest outstanding; ties go round-robin,
/// which spreads requests over equals.
pub struct Pool {
    environments: Vec<Environment>,
    next: AtomicUsize,
}

impl Pool {
    pub async fn start(spec: &FunctionSpec, size: usize) -> Result<Self, String> {
        Self::start_each(spec, size, |_, _| {}).await
    }

    /// Starts `size` environments, letting `adjust` change environment i's
    /// spec (e.g. its own network path to a service).
    pub async fn start_each(
        spec: &FunctionSpec,
        size: usize,
        adjust: impl Fn(usize, &mut FunctionSpec),
    ) -> Result<Self, String> {
        let mut environments = Vec::with_capacity(size);
        for i in 0..size {
            let mut s = spec.clone();
            s.log = spec.log.with_extension(format!("{i}.log"));
            adjust(i, &mut s);
            environments.push(Environment::start(s).await?);
        }
        Ok(Self { environments, next: AtomicUsize::new(0) })
    }

    /// Invocations sent to the pool and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.environments.iter().map(Environment::outstanding).sum()
    }

    pub async fn invoke(&self, event: &Value, timeout: Duration) -> Result<Answer, InvokeError> {
        let n = self.environments.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let i = (0..n)
            .map(|k| (start + k) % n)
            .min_by_key(|&i| self.environments[i].outstanding())
            .expect("a pool has an environment");
        self.environments[i].invoke(event, timeout).await
    }
}
