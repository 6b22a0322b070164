//! Access logs of an HTTP connection manager: stdout, stderr or a file, in Envoy's default
//! format, a text format or a JSON format with Envoy's command operators, behind Envoy's
//! access-log filters (`access_log_filter.rs`). Another logger (gRPC ALS, OpenTelemetry) is
//! rejected until it is built: an operator who configured one expects its lines.

use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLog as PbAccessLog, access_log::ConfigType,
};
use envoy_types::pb::envoy::config::core::v3::{
    SubstitutionFormatString, substitution_format_string::Format as SubstitutionFormat,
};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log::AccessLogFormat as FileFormat,
};
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::{
    StderrAccessLog, StdoutAccessLog,
};
use envoy_types::pb::google::protobuf::{Struct, value::Kind};
use http::HeaderName;
use prost::{Message, Name};

use crate::access_log_filter::LogFilter;
use crate::data_source::DataSource;
use crate::error::{Result, ValidationError, Within};
use crate::formatter::{Command, Format, FormatScope, HeaderOperand, parse_format};

/// Envoy's default access-log format (`config_access_log_default_format`).
pub const DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% \
    %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% \
    %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \
    \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \
    \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// Where an access log line goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccessLogSink {
    Stdout,
    Stderr,
    File(String),
}

/// The access logs of one connection manager, with what they read of each request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessLogs {
    pub logs: Vec<AccessLog>,
    /// The request headers formats and filters read (pseudo-headers aside): only these are
    /// kept for the log entry.
    pub request_headers: Vec<HeaderName>,
    /// The response headers `%RESP(...)%` reads.
    pub response_headers: Vec<HeaderName>,
}

impl AccessLogs {
    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }
}

/// One `access_log` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    pub sink: AccessLogSink,
    pub format: LogFormat,
    /// Only entries it passes are written.
    pub filter: Option<LogFilter>,
}

/// How an entry is written.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFormat {
    pub kind: LogFormatKind,
    /// A value that is missing is written empty (text) or left out (JSON) instead of `-` or
    /// `null`.
    pub omit_empty_values: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LogFormatKind {
    /// Written as it is: the format says where lines end.
    Text(Format),
    /// One JSON object per line, keys in sorted order.
    Json {
        fields: Vec<(String, JsonField)>,
        /// A value that is one command keeps its type (a number for `%DURATION%`, `null` when
        /// missing); otherwise every value is a string (`"-"` when missing), as Envoy renders
        /// the file logger's legacy `json_format`.
        typed: bool,
    },
}

/// A value of a JSON format: a single command keeps its type (a number for `%DURATION%`),
/// anything else is a string.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonField {
    Format(Format),
    Object(Vec<(String, JsonField)>),
    /// A number, boolean or null of the configuration, written as it is (JSON text).
    Literal(String),
}

const STDOUT: &str = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
const STDERR: &str = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog";

/// The access logs of an `access_log` list.
pub(crate) fn access_logs(protos: &[PbAccessLog]) -> Result<AccessLogs> {
    let mut logs = Vec::with_capacity(protos.len());
    for (index, proto) in protos.iter().enumerate() {
        logs.push(access_log(proto).within_index("access_log", index)?);
    }
    let mut request_headers = Vec::new();
    let mut response_headers = Vec::new();
    for log in &logs {
        log.format.visit_commands(&mut |command| match command {
            Command::Request(operand) => read_header(&mut request_headers, operand),
            Command::Response(operand) => read_header(&mut response_headers, operand),
            _ => {}
        });
        if let Some(filter) = &log.filter {
            filter_headers(filter, &mut request_headers);
        }
    }
    Ok(AccessLogs {
        logs,
        request_headers,
        response_headers,
    })
}

fn read_header(names: &mut Vec<HeaderName>, operand: &HeaderOperand) {
    for name in std::iter::once(&operand.name).chain(&operand.alternative) {
        add_header(names, name);
    }
}

fn add_header(names: &mut Vec<HeaderName>, name: &str) {
    // `:authority` may come from `host`; the other pseudo-headers come from the request line.
    let name = if name == ":authority" { "host" } else { name };
    if let Ok(name) = HeaderName::from_bytes(name.as_bytes())
        && !names.contains(&name)
    {
        names.push(name);
    }
}

fn filter_headers(filter: &LogFilter, names: &mut Vec<HeaderName>) {
    match filter {
        LogFilter::Header(matcher) => add_header(names, &matcher.name),
        // A sampled filter reads the request id.
        LogFilter::Runtime {
            independent: false, ..
        } => add_header(names, "x-request-id"),
        LogFilter::And(filters) | LogFilter::Or(filters) => {
            for filter in filters {
                filter_headers(filter, names);
            }
        }
        _ => {}
    }
}

impl LogFormat {
    /// Envoy's default format.
    pub fn envoy_default() -> Self {
        LogFormat {
            kind: LogFormatKind::Text(
                parse_format(DEFAULT_FORMAT, FormatScope::AccessLog)
                    .expect("the default format parses"),
            ),
            omit_empty_values: false,
        }
    }

    fn visit_commands(&self, visit: &mut dyn FnMut(&Command)) {
        fn visit_fields(fields: &[(String, JsonField)], visit: &mut dyn FnMut(&Command)) {
            for (_, field) in fields {
                match field {
                    JsonField::Format(format) => format.commands().for_each(&mut *visit),
                    JsonField::Object(fields) => visit_fields(fields, visit),
                    JsonField::Literal(_) => {}
                }
            }
        }
        match &self.kind {
            LogFormatKind::Text(format) => format.commands().for_each(visit),
            LogFormatKind::Json { fields, .. } => visit_fields(fields, visit),
        }
    }
}

fn access_log(log: &PbAccessLog) -> Result<AccessLog> {
    let PbAccessLog {
        // Names the logger only; the typed config decides.
        name: _,
        filter,
        config_type,
    } = log;
    let filter = filter
        .as_ref()
        .map(|f| LogFilter::from_proto(f).within("filter"))
        .transpose()?;
    let Some(ConfigType::TypedConfig(any)) = config_type else {
        return Err(ValidationError::new(
            "typed_config",
            "is required (a file, stdout or stderr logger)",
        ));
    };
    let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
    let decode_error = |e: prost::DecodeError| ValidationError::new("typed_config", e.to_string());
    let (sink, format) = if type_name == STDOUT {
        let StdoutAccessLog { access_log_format } =
            StdoutAccessLog::decode(any.value.as_slice()).map_err(decode_error)?;
        let format = access_log_format.map(|f| {
            let envoy_types::pb::envoy::extensions::access_loggers::stream::v3::stdout_access_log::AccessLogFormat::LogFormat(f) = f;
            f
        });
        (AccessLogSink::Stdout, substitution_format(format.as_ref()))
    } else if type_name == STDERR {
        let StderrAccessLog { access_log_format } =
            StderrAccessLog::decode(any.value.as_slice()).map_err(decode_error)?;
        let format = access_log_format.map(|f| {
            let envoy_types::pb::envoy::extensions::access_loggers::stream::v3::stderr_access_log::AccessLogFormat::LogFormat(f) = f;
            f
        });
        (AccessLogSink::Stderr, substitution_format(format.as_ref()))
    } else if type_name == FileAccessLog::full_name() {
        let FileAccessLog {
            path,
            access_log_format,
        } = FileAccessLog::decode(any.value.as_slice()).map_err(decode_error)?;
        let sink = match path.as_str() {
            "" => {
                return Err(ValidationError::new(
                    "typed_config.path",
                    "must not be empty",
                ));
            }
            "/dev/stdout" => AccessLogSink::Stdout,
            "/dev/stderr" => AccessLogSink::Stderr,
            path => AccessLogSink::File(path.to_string()),
        };
        let format = match &access_log_format {
            None => Ok(LogFormat::envoy_default()),
            Some(FileFormat::Format(text)) if text.is_empty() => Ok(LogFormat::envoy_default()),
            Some(FileFormat::Format(text)) => text_format(text, false).within("format"),
            Some(FileFormat::JsonFormat(fields)) => {
                // "All values are rendered as strings" (Envoy's file.proto).
                json_format(fields, false, false).within("json_format")
            }
            Some(FileFormat::TypedJsonFormat(fields)) => {
                json_format(fields, false, true).within("typed_json_format")
            }
            Some(FileFormat::LogFormat(format)) => {
                substitution_format(Some(format)).within("log_format")
            }
        };
        (sink, format)
    } else {
        return Err(ValidationError::not_enforced(
            "typed_config",
            &format!("the access logger {type_name} is not built (file, stdout and stderr are)"),
        ));
    };
    let format = format.within("typed_config")?;
    Ok(AccessLog {
        sink,
        format,
        filter,
    })
}

/// A `SubstitutionFormatString` (`None`: Envoy's default format).
fn substitution_format(proto: Option<&SubstitutionFormatString>) -> Result<LogFormat> {
    let Some(proto) = proto else {
        return Ok(LogFormat::envoy_default());
    };
    let SubstitutionFormatString {
        omit_empty_values,
        // Envoy reads it for local replies only; an access log ignores it there too.
        content_type: _,
        formatters,
        // Keys are always written sorted, which `sort_properties` asks for.
        json_format_options: _,
        format,
    } = proto;
    if !formatters.is_empty() {
        return Err(ValidationError::not_enforced(
            "formatters",
            "formatter extensions are not built",
        ));
    }
    match format {
        None => Err(ValidationError::new(
            "format",
            "one of text_format, text_format_source or json_format is required",
        )),
        Some(SubstitutionFormat::TextFormat(text)) => {
            text_format(text, *omit_empty_values).within("text_format")
        }
        Some(SubstitutionFormat::TextFormatSource(source)) => {
            let text = match DataSource::from_proto(source).within("text_format_source")? {
                DataSource::Inline(bytes) => bytes,
                DataSource::File(path) => std::fs::read(&path).map_err(|e| {
                    ValidationError::new(
                        "text_format_source.filename",
                        format!("unable to read file {}: {e}", path.display()),
                    )
                })?,
            };
            let text = String::from_utf8(text)
                .map_err(|_| ValidationError::new("text_format_source", "must be valid UTF-8"))?;
            text_format(&text, *omit_empty_values).within("text_format_source")
        }
        Some(SubstitutionFormat::JsonFormat(fields)) => {
            json_format(fields, *omit_empty_values, true).within("json_format")
        }
    }
}

fn text_format(text: &str, omit_empty_values: bool) -> Result<LogFormat> {
    Ok(LogFormat {
        kind: LogFormatKind::Text(parse_format(text, FormatScope::AccessLog)?),
        omit_empty_values,
    })
}

fn json_format(fields: &Struct, omit_empty_values: bool, typed: bool) -> Result<LogFormat> {
    Ok(LogFormat {
        kind: LogFormatKind::Json {
            fields: json_fields(fields)?,
            typed,
        },
        omit_empty_values,
    })
}

fn json_fields(fields: &Struct) -> Result<Vec<(String, JsonField)>> {
    // Written in key order: what `sort_properties` asks for, and stable otherwise (Envoy's
    // order is its map's).
    let mut sorted: Vec<_> = fields.fields.iter().collect();
    sorted.sort_unstable_by_key(|(key, _)| key.as_str());
    let mut out = Vec::with_capacity(sorted.len());
    for (key, value) in sorted {
        let field = match &value.kind {
            Some(Kind::StringValue(text)) => {
                JsonField::Format(parse_format(text, FormatScope::AccessLog).within(key)?)
            }
            Some(Kind::StructValue(nested)) => JsonField::Object(json_fields(nested).within(key)?),
            Some(Kind::NumberValue(n)) if n.is_finite() => JsonField::Literal(n.to_string()),
            Some(Kind::BoolValue(b)) => JsonField::Literal(b.to_string()),
            Some(Kind::NullValue(_)) | None => JsonField::Literal("null".into()),
            Some(Kind::NumberValue(_)) => {
                return Err(ValidationError::new(key.clone(), "must be a finite number"));
            }
            Some(Kind::ListValue(_)) => {
                return Err(ValidationError::not_enforced(
                    key.clone(),
                    "lists in a JSON access-log format",
                ));
            }
        };
        out.push((key.clone(), field));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(yaml: &str) -> Result<AccessLogs> {
        let proto: PbAccessLog = outrider_envoy_json::from_yaml_str(yaml).expect("an access log");
        access_logs(&[proto])
    }

    #[test]
    fn default_text_and_json_formats() {
        let default = logs("typed_config: { '@type': type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog }")
            .expect("valid");
        assert_eq!(default.logs[0].format, LogFormat::envoy_default());
        let names: Vec<_> = default
            .request_headers
            .iter()
            .map(HeaderName::as_str)
            .collect();
        assert_eq!(
            names,
            [
                "x-envoy-original-path",
                "x-forwarded-for",
                "user-agent",
                "x-request-id",
                "host"
            ]
        );
        let json = logs(
            "typed_config: { '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /tmp/x, log_format: { json_format: { code: '%RESPONSE_CODE%', up: { server: '%RESP(Server)%' }, n: 1 } } }",
        )
        .expect("valid");
        let LogFormatKind::Json {
            fields,
            typed: true,
        } = &json.logs[0].format.kind
        else {
            panic!("json: {:?}", json.logs[0].format);
        };
        let keys: Vec<_> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["code", "n", "up"]);
        assert_eq!(fields[1].1, JsonField::Literal("1".into()));
        assert_eq!(json.response_headers, [HeaderName::from_static("server")]);
    }

    #[test]
    fn errors_name_the_field() {
        let error = logs("typed_config: { '@type': type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog, log_format: { text_format_source: { inline_string: '%NOPE%' } } }")
            .expect_err("unknown operator");
        assert_eq!(error.path, "access_log[0].typed_config.text_format_source");
        assert!(error.reason.contains("%NOPE%"), "{error}");
        let error = logs("typed_config: { '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /tmp/x, json_format: { a: { b: '%BOGUS%' } } }")
            .expect_err("unknown operator");
        assert_eq!(error.path, "access_log[0].typed_config.json_format.a.b");
    }
}
