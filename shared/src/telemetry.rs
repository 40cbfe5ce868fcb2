//! Logging for every function: JSON lines on stderr (CloudWatch Logs parses
//! them), level from `RUST_LOG` (default `info`). Secrets never reach a log
//! line: configuration is not logged, and errors carry no credentials.

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
