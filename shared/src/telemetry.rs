//! Logs and metrics for every function.
//!
//! Logs are JSON lines on stderr (CloudWatch Logs parses them), level from
//! `RUST_LOG` (default `info`). Secrets never reach a log line:
//! configuration is not logged, and errors carry no credentials.
//!
//! Metrics go through the `metrics` facade to CloudWatch Embedded Metric
//! Format (the maintained `metrics_cloudwatch_embedded` crate), namespace
//! `fanrush`, dimension `Function`, flushed to stdout after every invocation.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber once; later calls are ignored.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// The EMF metrics collector of this process.
pub type Metrics = &'static metrics_cloudwatch_embedded::Collector;

/// Installs the process-wide EMF recorder for `function`. Pure: no I/O.
pub fn metrics(function: &'static str) -> Metrics {
    metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace("fanrush")
        .with_dimension("Function", function)
        .init()
        .expect("the metrics recorder is installed once per process")
}

/// Writes this invocation's metrics as one EMF document on stdout.
pub fn flush(metrics: Metrics) {
    if let Err(e) = metrics.flush(std::io::stdout().lock()) {
        tracing::warn!(error = %e, "metrics flush failed");
    }
}
