//! Request/response header additions and removals of route configurations, virtual hosts,
//! routes and health checks (`core.v3.HeaderValueOption`). Values are literal or, on routes,
//! made with Envoy's command operators (`formatter.rs`).

use envoy_types::pb::envoy::config::core::v3::{
    self as core, header_value_option::HeaderAppendAction,
};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Result, ValidationError, Within, convert_each, required};
use crate::formatter::{Format, FormatPart, FormatScope, parse_format};
use crate::proto_value::{enum_value, header_name, header_value, parsed_header_name};

/// Headers to add and remove on one message (request or response) at one level.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderMutations {
    pub add: Vec<HeaderToAdd>,
    pub remove: Vec<HeaderName>,
}

impl HeaderMutations {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// Whether a value needs the request to be computed.
    pub fn has_formats(&self) -> bool {
        self.add
            .iter()
            .any(|a| matches!(a.value, HeaderText::Formatted(_)))
    }

    /// Removals first, then additions in order, as Envoy's `HeaderParser` evaluates them.
    /// Names and literal values were parsed when the config was loaded: applying them only
    /// clones shared bytes. `formatted` yields the computed values of formatted additions, in
    /// order (none where the model allows no formats).
    pub fn apply(&self, headers: &mut HeaderMap, formatted: &mut dyn Iterator<Item = HeaderValue>) {
        for name in &self.remove {
            headers.remove(name);
        }
        for add in &self.add {
            let value = match &add.value {
                HeaderText::Literal(value) => value.clone(),
                HeaderText::Formatted(_) => {
                    formatted.next().unwrap_or(HeaderValue::from_static(""))
                }
            };
            if value.is_empty() && !add.keep_empty_value {
                continue;
            }
            let name = add.name.clone();
            match add.action {
                AppendAction::AppendIfExistsOrAdd => {
                    headers.append(name, value);
                }
                AppendAction::AddIfAbsent => {
                    if !headers.contains_key(&name) {
                        headers.insert(name, value);
                    }
                }
                AppendAction::OverwriteIfExistsOrAdd => {
                    headers.insert(name, value);
                }
                AppendAction::OverwriteIfExists => {
                    if headers.contains_key(&name) {
                        headers.insert(name, value);
                    }
                }
            }
        }
    }
}

/// The request and response header mutations of a route configuration, virtual host or route.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageHeaderMutations {
    /// Applied to the request sent upstream (after routing; they never change the match).
    pub request: HeaderMutations,
    /// Applied to every response once a route was chosen: upstream answers, direct responses,
    /// redirects and local replies.
    pub response: HeaderMutations,
}

impl MessageHeaderMutations {
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderToAdd {
    pub name: HeaderName,
    pub value: HeaderText,
    pub action: AppendAction,
    /// Add the header even when its value is empty (otherwise an empty value is skipped).
    pub keep_empty_value: bool,
}

/// A header value to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderText {
    /// Fixed (`%%` already unescaped to `%`).
    Literal(HeaderValue),
    /// Computed per request from command operators.
    Formatted(Format),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendAction {
    AppendIfExistsOrAdd,
    AddIfAbsent,
    OverwriteIfExistsOrAdd,
    OverwriteIfExists,
}

/// Converts the four `{request,response}_headers_to_{add,remove}` fields of one level.
pub(crate) fn message_header_mutations(
    request_to_add: &[core::HeaderValueOption],
    request_to_remove: &[String],
    response_to_add: &[core::HeaderValueOption],
    response_to_remove: &[String],
) -> Result<MessageHeaderMutations> {
    Ok(MessageHeaderMutations {
        request: header_mutations(
            request_to_add,
            "request_headers_to_add",
            request_to_remove,
            "request_headers_to_remove",
            Formats::Allowed,
        )?,
        response: header_mutations(
            response_to_add,
            "response_headers_to_add",
            response_to_remove,
            "response_headers_to_remove",
            Formats::Allowed,
        )?,
    })
}

/// Whether values may use command operators (routes) or must be literal (health checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Formats {
    Allowed,
    Refused,
}

/// Converts an `*_headers_to_add` / `*_headers_to_remove` pair; `add_field`/`remove_field`
/// name them for error paths.
pub(crate) fn header_mutations(
    add: &[core::HeaderValueOption],
    add_field: &str,
    remove: &[String],
    remove_field: &str,
    formats: Formats,
) -> Result<HeaderMutations> {
    let add = convert_each(add, add_field, |a| header_to_add(a, formats))?;
    let remove = remove
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let field = format!("{remove_field}[{i}]");
            let name = header_name(name, &field)?;
            if !is_modifiable(&name) {
                return Err(ValidationError::new(
                    field,
                    "':'-prefixed or host headers may not be removed",
                ));
            }
            parsed_header_name(&name, &field)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(HeaderMutations { add, remove })
}

/// Envoy refuses to touch pseudo-headers and `host` through header mutations.
fn is_modifiable(name: &str) -> bool {
    !name.starts_with(':') && name != "host"
}

fn header_to_add(proto: &core::HeaderValueOption, formats: Formats) -> Result<HeaderToAdd> {
    let core::HeaderValueOption {
        header,
        append,
        append_action,
        keep_empty_value,
    } = proto;
    let core::HeaderValue {
        key,
        value,
        raw_value,
    } = required(header, "header")?;
    let name = header_name(key, "key").within("header")?;
    if !is_modifiable(&name) {
        return Err(ValidationError::new(
            "header.key",
            "':'-prefixed or host headers may not be modified",
        ));
    }
    let value = if !raw_value.is_empty() {
        if !value.is_empty() {
            return Err(ValidationError::new(
                "header.raw_value",
                "only one of value and raw_value may be set",
            ));
        }
        String::from_utf8(raw_value.clone())
            .map_err(|_| ValidationError::new("header.raw_value", "must be valid UTF-8"))?
    } else {
        value.clone()
    };
    header_value(&value, "header.value")?;
    let format = parse_format(&value, FormatScope::Header).within("header.value")?;
    let value =
        match (format.has_commands(), formats) {
            (false, _) => {
                let text: String = format
                    .0
                    .iter()
                    .map(|part| match part {
                        FormatPart::Text(text) => text.as_str(),
                        FormatPart::Command(_) => "",
                    })
                    .collect();
                HeaderText::Literal(HeaderValue::from_str(&text).map_err(|_| {
                    ValidationError::new("header.value", "not a valid header value")
                })?)
            }
            (true, Formats::Allowed) => HeaderText::Formatted(format),
            (true, Formats::Refused) => {
                return Err(ValidationError::not_enforced(
                    "header.value",
                    "command operators here (only literal values; write %% for a literal %)",
                ));
            }
        };
    let name = parsed_header_name(&name, "header.key")?;
    let action = match (
        append,
        enum_value::<HeaderAppendAction>(*append_action, "append_action")?,
    ) {
        (Some(_), action) if action != HeaderAppendAction::AppendIfExistsOrAdd => {
            return Err(ValidationError::new(
                "append",
                "both append and append_action are set and it's not allowed",
            ));
        }
        (Some(append), _) if append.value => AppendAction::AppendIfExistsOrAdd,
        (Some(_), _) => AppendAction::OverwriteIfExistsOrAdd,
        (None, HeaderAppendAction::AppendIfExistsOrAdd) => AppendAction::AppendIfExistsOrAdd,
        (None, HeaderAppendAction::AddIfAbsent) => AppendAction::AddIfAbsent,
        (None, HeaderAppendAction::OverwriteIfExistsOrAdd) => AppendAction::OverwriteIfExistsOrAdd,
        (None, HeaderAppendAction::OverwriteIfExists) => AppendAction::OverwriteIfExists,
    };
    Ok(HeaderToAdd {
        name,
        value,
        action,
        keep_empty_value: *keep_empty_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(value: &str) -> core::HeaderValueOption {
        core::HeaderValueOption {
            header: Some(core::HeaderValue {
                key: "x-a".into(),
                value: value.into(),
                raw_value: Vec::new(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn literal_and_formatted_values() {
        let literal = header_to_add(&option("a%%b"), Formats::Refused).expect("a literal");
        assert_eq!(
            literal.value,
            HeaderText::Literal(HeaderValue::from_static("a%b"))
        );
        let formatted = header_to_add(&option("%PROTOCOL%"), Formats::Allowed).expect("a format");
        assert!(matches!(formatted.value, HeaderText::Formatted(_)));
        let refused = header_to_add(&option("%PROTOCOL%"), Formats::Refused).expect_err("refused");
        assert!(refused.path.starts_with("header.value"), "{refused}");
    }
}
