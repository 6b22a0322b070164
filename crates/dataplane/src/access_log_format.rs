//! An access-log entry as text, in the entry's configured format: Envoy's text format (a
//! missing value is `-`) or its JSON format (one object per line; a value made of one command
//! keeps its type, and a missing one is `null`). With `omit_empty_values`, missing values are
//! empty in text and left out of JSON, as in Envoy.

use std::fmt::Write as _;

use outrider_model::{Format, FormatPart, JsonField, LogFormat, LogFormatKind};

use crate::formatter::{FormatContext, Operand, operand};

/// Appends the entry for `cx` in `format` to `out`.
pub(crate) fn write_entry(out: &mut String, format: &LogFormat, cx: &FormatContext<'_>) {
    let missing = if format.omit_empty_values { "" } else { "-" };
    match &format.kind {
        LogFormatKind::Text(text) => push_text(out, text, cx, missing),
        LogFormatKind::Json { fields, typed } => {
            let json = JsonValues {
                typed: *typed,
                omit_empty: format.omit_empty_values,
            };
            push_object(out, fields, cx, json);
            out.push('\n');
        }
    }
}

fn push_text(out: &mut String, format: &Format, cx: &FormatContext<'_>, missing: &str) {
    for part in &format.0 {
        match part {
            FormatPart::Text(text) => out.push_str(text),
            FormatPart::Command(command) => match operand(command, cx) {
                Some(value) => value.push_to(out),
                None => out.push_str(missing),
            },
        }
    }
}

/// How a JSON format writes its values.
#[derive(Clone, Copy)]
struct JsonValues {
    /// A value that is one command keeps its type; otherwise all are strings.
    typed: bool,
    /// An empty or missing value is left out.
    omit_empty: bool,
}

fn push_object(
    out: &mut String,
    fields: &[(String, JsonField)],
    cx: &FormatContext<'_>,
    json: JsonValues,
) {
    out.push('{');
    let mut first = true;
    for (key, field) in fields {
        let mark = out.len();
        if !first {
            out.push(',');
        }
        push_json_string(out, key);
        out.push(':');
        let written = match field {
            JsonField::Literal(json) => {
                out.push_str(json);
                true
            }
            JsonField::Object(fields) => {
                push_object(out, fields, cx, json);
                true
            }
            JsonField::Format(format) => push_json_value(out, format, cx, json),
        };
        if written {
            first = false;
        } else {
            out.truncate(mark);
        }
    }
    out.push('}');
}

/// Writes `format`'s value; `false` when it is empty and `omit_empty` leaves it out.
fn push_json_value(
    out: &mut String,
    format: &Format,
    cx: &FormatContext<'_>,
    json: JsonValues,
) -> bool {
    let omit_empty = json.omit_empty;
    if let Some(command) = format.single_command().filter(|_| json.typed) {
        return match operand(command, cx) {
            Some(Operand::Number(n)) if command.is_numeric() => {
                let _ = write!(out, "{n}");
                true
            }
            Some(Operand::Text(text)) if omit_empty && text.is_empty() => false,
            Some(value) => {
                let mut text = String::new();
                value.push_to(&mut text);
                push_json_string(out, &text);
                true
            }
            None if omit_empty => false,
            None => {
                out.push_str("null");
                true
            }
        };
    }
    let mut text = String::new();
    push_text(&mut text, format, cx, if omit_empty { "" } else { "-" });
    if omit_empty && text.is_empty() {
        return false;
    }
    push_json_string(out, &text);
    true
}

/// `value` as a JSON string.
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderMap, HeaderValue};
    use outrider_model::{Command, HeaderOperand};

    use super::*;
    use crate::formatter::StreamEnd;
    use crate::formatter::test_support::{ended, with_request};
    use crate::local_reply::ResponseFlag;

    fn format(parts: Vec<FormatPart>) -> Format {
        Format(parts)
    }

    fn with_entry(check: impl FnOnce(&FormatContext<'_>)) {
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", HeaderValue::from_static("say \"hi\"\t"));
        let end = StreamEnd {
            flag: Some(ResponseFlag::NoHealthyUpstream),
            bytes_sent: 19,
            duration: Duration::from_millis(7),
            cluster: Some("backend"),
            ..ended(503)
        };
        with_request("http://example.com/a?b", headers, &end, check);
    }

    fn req(name: &str) -> FormatPart {
        FormatPart::Command(Command::Request(HeaderOperand {
            name: name.into(),
            alternative: None,
            max_length: None,
        }))
    }

    #[test]
    fn text_marks_missing_values() {
        with_entry(|cx| {
            let text = format(vec![
                FormatPart::Command(Command::ResponseCode),
                FormatPart::Text(" ".into()),
                FormatPart::Command(Command::ResponseFlags),
                FormatPart::Text(" ".into()),
                FormatPart::Command(Command::UpstreamHost),
                FormatPart::Text(" ".into()),
                req(":path"),
            ]);
            let mut out = String::new();
            let log = |omit| LogFormat {
                kind: LogFormatKind::Text(text.clone()),
                omit_empty_values: omit,
            };
            write_entry(&mut out, &log(false), cx);
            assert_eq!(out, "503 UH - /a?b");
            out.clear();
            write_entry(&mut out, &log(true), cx);
            assert_eq!(out, "503 UH  /a?b");
        });
    }

    #[test]
    fn json_keeps_types_and_escapes() {
        with_entry(|cx| {
            let single = |command| JsonField::Format(format(vec![FormatPart::Command(command)]));
            let fields = vec![
                (
                    "agent".to_string(),
                    JsonField::Format(format(vec![req("user-agent")])),
                ),
                ("code".to_string(), single(Command::ResponseCode)),
                ("host".to_string(), single(Command::UpstreamHost)),
                (
                    "nested".to_string(),
                    JsonField::Object(vec![("d".to_string(), single(Command::Duration))]),
                ),
                ("on".to_string(), JsonField::Literal("true".into())),
                (
                    "text".to_string(),
                    JsonField::Format(format(vec![
                        FormatPart::Text("c=".into()),
                        FormatPart::Command(Command::UpstreamCluster),
                        FormatPart::Command(Command::RouteName),
                    ])),
                ),
            ];
            let log = |omit| LogFormat {
                kind: LogFormatKind::Json {
                    fields: fields.clone(),
                    typed: true,
                },
                omit_empty_values: omit,
            };
            let mut out = String::new();
            write_entry(&mut out, &log(false), cx);
            assert_eq!(
                out,
                "{\"agent\":\"say \\\"hi\\\"\\t\",\"code\":503,\"host\":null,\"nested\":{\"d\":7},\"on\":true,\"text\":\"c=backend-\"}\n"
            );
            out.clear();
            write_entry(&mut out, &log(true), cx);
            assert_eq!(
                out,
                "{\"agent\":\"say \\\"hi\\\"\\t\",\"code\":503,\"nested\":{\"d\":7},\"on\":true,\"text\":\"c=backend\"}\n"
            );
            // The file logger's legacy `json_format`: every value a string, missing is "-".
            out.clear();
            let untyped = LogFormat {
                kind: LogFormatKind::Json {
                    fields: fields.clone(),
                    typed: false,
                },
                omit_empty_values: false,
            };
            write_entry(&mut out, &untyped, cx);
            assert_eq!(
                out,
                "{\"agent\":\"say \\\"hi\\\"\\t\",\"code\":\"503\",\"host\":\"-\",\"nested\":{\"d\":\"7\"},\"on\":true,\"text\":\"c=backend-\"}\n"
            );
        });
    }
}
