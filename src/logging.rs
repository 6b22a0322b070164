//! Log setup: Envoy's level names on the command line, `RUST_LOG` for finer filters.

use tracing_subscriber::EnvFilter;

/// Maps Envoy's `-l` levels to tracing's; `RUST_LOG`, when set, wins.
pub fn init(level: &str) -> Result<(), String> {
    let level = match level {
        "trace" | "debug" | "info" | "error" | "off" => level,
        "warning" | "warn" => "warn",
        "critical" => "error",
        other => return Err(format!("unknown log level {other:?}")),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| e.to_string())
}
