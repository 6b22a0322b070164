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

/// What `directives` adds to a level (not shown by `/logging`: it is not the operator's).
const CODEC_DIRECTIVES: [&str; 2] = ["h2=error", "hyper=error"];

/// The filter for `level`: the HTTP/2 and HTTP/1 codec crates' own warnings are about what
/// clients send (streams reset in bulk, broken frames), one line per connection an attacker
/// opens; Envoy logs its codecs' events at debug. So below debug they log errors only.
fn directives(level: &str) -> String {
    match level {
        "info" | "warn" => format!("{level},{}", CODEC_DIRECTIVES.join(",")),
        other => other.to_string(),
    }
}

/// Maps Envoy's `-l` levels to tracing's; `RUST_LOG`, when set, wins.
pub fn init(level: &str) -> Result<(), String> {
    let level = tracing_level(level)?;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives(level)));
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
        .reload(EnvFilter::new(directives(level)))
        .map_err(|e| e.to_string())?;
    Ok(current())
}

/// The filter in force (`info`, or a `RUST_LOG` directive list), without the codec crates'
/// directives that `directives` adds.
pub fn current() -> String {
    let filter = RELOAD
        .get()
        .and_then(|h| h.with_current(|f| f.to_string()).ok())
        .unwrap_or_default();
    let shown: Vec<&str> = filter
        .split(',')
        .filter(|d| !CODEC_DIRECTIVES.contains(d))
        .collect();
    shown.join(",")
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

    #[test]
    fn codec_crates_log_errors_only_below_debug() {
        assert_eq!(directives("info"), "info,h2=error,hyper=error");
        assert_eq!(directives("warn"), "warn,h2=error,hyper=error");
        assert_eq!(directives("debug"), "debug");
        assert_eq!(directives("error"), "error");
    }
}
