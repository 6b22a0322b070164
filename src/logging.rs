//! Log setup: Envoy's level names on the command line, `RUST_LOG` for finer filters, and the
//! level changed at run time through the admin interface's `/logging` (as Envoy's).

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

/// Swaps the filter of the running subscriber (`/logging?level=`).
static RELOAD: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Maps one of Envoy's level names to tracing's.
fn tracing_level(level: &str) -> Result<&'static str, String> {
    Ok(match level {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warning" | "warn" => "warn",
        "error" | "critical" => "error",
        "off" => "off",
        other => return Err(format!("unknown log level {other:?}")),
    })
}

/// Maps Envoy's `-l` levels to tracing's; `RUST_LOG`, when set, wins.
pub fn init(level: &str) -> Result<(), String> {
    let level = tracing_level(level)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (filter, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr))
        .try_init()
        .map_err(|e| e.to_string())?;
    // Set once: `init` runs once per process.
    let _ = RELOAD.set(handle);
    Ok(())
}

/// Sets every logger to `level` (Envoy's names); returns the filter now in force.
pub fn set_level(level: &str) -> Result<String, String> {
    let level = tracing_level(level)?;
    let handle = RELOAD.get().ok_or("logging is not initialised")?;
    handle
        .reload(EnvFilter::new(level))
        .map_err(|e| e.to_string())?;
    Ok(current())
}

/// The filter in force (`info`, or a `RUST_LOG` directive list).
pub fn current() -> String {
    RELOAD
        .get()
        .and_then(|h| h.with_current(|f| f.to_string()).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_level_names_map_to_tracing_levels() {
        assert_eq!(tracing_level("warning"), Ok("warn"));
        assert_eq!(tracing_level("critical"), Ok("error"));
        assert!(tracing_level("loud").is_err());
    }
}
