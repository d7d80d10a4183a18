//! Logging: tracing to stderr, filtered by `RUST_LOG` or the configured level.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
