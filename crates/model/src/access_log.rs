//! Access log sinks of an HTTP connection manager: stdout, stderr or a file, in Envoy's
//! default format. A custom format, an access-log filter or another logger (gRPC ALS,
//! OpenTelemetry) is rejected until it is built: an operator who configured one expects its
//! lines, and would otherwise get other lines or none.

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log::ConfigType};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::StdoutAccessLog;
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
        let sink = access_log_sink(log).map_err(at)?;
        if !sinks.contains(&sink) {
            sinks.push(sink);
        }
    }
    Ok(sinks)
}

fn access_log_sink(log: &AccessLog) -> Result<AccessLogSink> {
    let AccessLog {
        // Names the logger only; the typed config decides.
        name: _,
        filter,
        config_type,
    } = log;
    if filter.is_some() {
        return Err(ValidationError::not_enforced(
            "filter",
            "access-log filters are not applied (every request would be logged)",
        ));
    }
    let Some(ConfigType::TypedConfig(any)) = config_type else {
        return Err(ValidationError::new(
            "typed_config",
            "is required (a file, stdout or stderr logger)",
        ));
    };
    let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
    if type_name == STDOUT || type_name == STDERR {
        let log = StdoutAccessLog::decode(any.value.as_slice())
            .map_err(|e| ValidationError::new("typed_config", e.to_string()))?;
        if log.access_log_format.is_some() {
            return Err(custom_format("typed_config.log_format"));
        }
        return Ok(if type_name == STDOUT {
            AccessLogSink::Stdout
        } else {
            AccessLogSink::Stderr
        });
    }
    if type_name != FileAccessLog::full_name() {
        return Err(ValidationError::not_enforced(
            "typed_config",
            &format!("the access logger {type_name} is not built (file, stdout and stderr are)"),
        ));
    }
    let file = FileAccessLog::decode(any.value.as_slice())
        .map_err(|e| ValidationError::new("typed_config", e.to_string()))?;
    if let Some(format) = &file.access_log_format {
        use envoy_types::pb::envoy::extensions::access_loggers::file::v3::file_access_log::AccessLogFormat;
        let field = match format {
            AccessLogFormat::Format(_) => "format",
            AccessLogFormat::JsonFormat(_) => "json_format",
            AccessLogFormat::TypedJsonFormat(_) => "typed_json_format",
            AccessLogFormat::LogFormat(_) => "log_format",
        };
        return Err(custom_format(&format!("typed_config.{field}")));
    }
    Ok(match file.path.as_str() {
        "" => {
            return Err(ValidationError::new(
                "typed_config.path",
                "must not be empty",
            ));
        }
        "/dev/stdout" => AccessLogSink::Stdout,
        "/dev/stderr" => AccessLogSink::Stderr,
        path => AccessLogSink::File(path.to_string()),
    })
}

fn custom_format(path: &str) -> ValidationError {
    ValidationError::not_enforced(
        path,
        "only Envoy's default format is written; a custom format is not built yet",
    )
}
