//! Access log sinks of an HTTP connection manager: stdout, stderr or a file, in Envoy's
//! default format. Custom formats and access-log filters are accepted and not applied (every
//! request is logged in the default format): logging does not change what is proxied, and a
//! listener should not be refused for its log line. Other loggers (gRPC ALS, OpenTelemetry) are
//! ignored, with a warning in the docs.

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log::ConfigType};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
use prost::{Message, Name};

use crate::error::{Result, ValidationError};

/// Where an access log line goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccessLogSink {
    Stdout,
    Stderr,
    File(String),
}

const STDOUT: &str = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
const STDERR: &str = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog";

/// The sinks we write to, from an `access_log` list.
pub(crate) fn access_log_sinks(logs: &[AccessLog]) -> Result<Vec<AccessLogSink>> {
    let mut sinks = Vec::new();
    for (index, log) in logs.iter().enumerate() {
        let at = |e: ValidationError| e.under(&format!("access_log[{index}]"));
        let Some(ConfigType::TypedConfig(any)) = &log.config_type else {
            continue;
        };
        let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
        let sink = if type_name == STDOUT {
            AccessLogSink::Stdout
        } else if type_name == STDERR {
            AccessLogSink::Stderr
        } else if type_name == FileAccessLog::full_name() {
            let file = FileAccessLog::decode(any.value.as_slice())
                .map_err(|e| at(ValidationError::new("typed_config", e.to_string())))?;
            match file.path.as_str() {
                "" => {
                    return Err(at(ValidationError::new(
                        "typed_config.path",
                        "must not be empty",
                    )));
                }
                "/dev/stdout" => AccessLogSink::Stdout,
                "/dev/stderr" => AccessLogSink::Stderr,
                path => AccessLogSink::File(path.to_string()),
            }
        } else {
            continue;
        };
        if !sinks.contains(&sink) {
            sinks.push(sink);
        }
    }
    Ok(sinks)
}
