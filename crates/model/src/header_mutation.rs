//! Request/response header additions and removals of route configurations, virtual hosts,
//! routes and health checks (`core.v3.HeaderValueOption`), restricted to literal values.

use envoy_types::pb::envoy::config::core::v3::{
    self as core, header_value_option::HeaderAppendAction,
};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Result, ValidationError, Within, convert_each, required};
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

    /// Removals first, then additions in order, as Envoy's `HeaderParser` evaluates them.
    /// Names and values were parsed when the config was loaded: applying them only clones
    /// shared bytes.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for add in &self.add {
            if add.value.is_empty() && !add.keep_empty_value {
                continue;
            }
            let (name, value) = (add.name.clone(), add.value.clone());
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
    /// A literal value (`%%` already unescaped to `%`).
    pub value: HeaderValue,
    pub action: AppendAction,
    /// Add the header even when its value is empty (otherwise an empty value is skipped).
    pub keep_empty_value: bool,
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
        )?,
        response: header_mutations(
            response_to_add,
            "response_headers_to_add",
            response_to_remove,
            "response_headers_to_remove",
        )?,
    })
}

/// Converts an `*_headers_to_add` / `*_headers_to_remove` pair; `add_field`/`remove_field`
/// name them for error paths.
pub(crate) fn header_mutations(
    add: &[core::HeaderValueOption],
    add_field: &str,
    remove: &[String],
    remove_field: &str,
) -> Result<HeaderMutations> {
    let add = convert_each(add, add_field, header_to_add)?;
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

fn header_to_add(proto: &core::HeaderValueOption) -> Result<HeaderToAdd> {
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
    let value = literal(&value).within("header.value")?;
    let value = HeaderValue::from_str(&value)
        .map_err(|_| ValidationError::new("header.value", "not a valid header value"))?;
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

/// Envoy evaluates `%COMMAND%` formatters in header values; we only support literal values
/// (with `%%` meaning `%`), so anything else is rejected rather than sent verbatim.
fn literal(value: &str) -> Result<String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        if rest[i..].starts_with("%%") {
            out.push('%');
            rest = &rest[i + 2..];
        } else {
            return Err(ValidationError::new(
                "",
                "header value formatters (%COMMAND%) are not supported; write %% for a literal %",
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_values() {
        assert_eq!(literal("a%%b").as_deref(), Ok("a%b"));
        assert!(literal("%DOWNSTREAM_REMOTE_ADDRESS%").is_err());
    }
}
