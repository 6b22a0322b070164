//! `ValidationError` (a field path and a reason) and the small helpers every conversion uses.

use std::collections::HashMap;

/// Why a resource was rejected: the path of the offending field, relative to the resource
/// (`load_assignment.endpoints[0].lb_endpoints[2].endpoint.address.socket_address.port_value`),
/// and what is wrong with it. The xDS client prefixes the resource name itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ValidationError {
    pub path: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A field we do not implement and that would change behaviour if we ignored it.
    pub(crate) fn unsupported(path: impl Into<String>) -> Self {
        Self::new(path, "not supported")
    }

    /// A field whose value we would accept and not act on: rejected until it is built, so
    /// that what `/config_dump` shows is what runs.
    pub(crate) fn not_enforced(path: impl Into<String>, what: &str) -> Self {
        Self::new(path, format!("not supported yet: {what}"))
    }

    pub(crate) fn required(path: impl Into<String>) -> Self {
        Self::new(path, "is required")
    }

    /// Puts `field` in front of the path: the error happened inside that field.
    pub(crate) fn under(mut self, field: &str) -> Self {
        self.path = if self.path.is_empty() {
            field.to_string()
        } else if self.path.starts_with('[') {
            format!("{field}{}", self.path)
        } else {
            format!("{field}.{}", self.path)
        };
        self
    }
}

pub(crate) type Result<T, E = ValidationError> = std::result::Result<T, E>;

/// Adds the enclosing field to an error's path while it bubbles up.
pub(crate) trait Within<T> {
    /// The error happened inside `field`.
    fn within(self, field: &str) -> Result<T>;
    /// The error happened inside element `index` of the repeated `field`.
    fn within_index(self, field: &str, index: usize) -> Result<T>;
}

impl<T> Within<T> for Result<T> {
    fn within(self, field: &str) -> Result<T> {
        self.map_err(|e| e.under(field))
    }

    fn within_index(self, field: &str, index: usize) -> Result<T> {
        self.map_err(|e| e.under(&format!("{field}[{index}]")))
    }
}

/// Converts every element of a repeated field, naming the failing element in the path.
pub(crate) fn convert_each<P, T>(
    items: &[P],
    field: &str,
    mut convert: impl FnMut(&P) -> Result<T>,
) -> Result<Vec<T>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| convert(item).within_index(field, i))
        .collect()
}

/// Whether a proto field holds a non-default value (proto3 has no other notion of "set").
pub(crate) trait IsSet {
    fn is_set(&self) -> bool;
}

impl<T: IsSet + ?Sized> IsSet for &T {
    fn is_set(&self) -> bool {
        (**self).is_set()
    }
}
impl<T> IsSet for Option<T> {
    fn is_set(&self) -> bool {
        self.is_some()
    }
}
impl<T> IsSet for Vec<T> {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}
impl<K, V> IsSet for HashMap<K, V> {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}
impl IsSet for String {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}
impl IsSet for bool {
    fn is_set(&self) -> bool {
        *self
    }
}
impl IsSet for i32 {
    fn is_set(&self) -> bool {
        *self != 0
    }
}
impl IsSet for u32 {
    fn is_set(&self) -> bool {
        *self != 0
    }
}
impl IsSet for i64 {
    fn is_set(&self) -> bool {
        *self != 0
    }
}

/// Rejects each listed field that is set: `reject_if_set!(field_a, field_b)`. The fields are
/// local bindings named after the proto fields (from destructuring), so the path is the name.
macro_rules! reject_if_set {
    ($($field:ident),+ $(,)?) => {
        $(
            if $crate::error::IsSet::is_set(&$field) {
                return Err($crate::error::ValidationError::unsupported(
                    stringify!($field).trim_start_matches("r#"),
                ));
            }
        )+
    };
}
pub(crate) use reject_if_set;

/// Rejects a timeout we do not apply yet, unless it is unset or 0 (disabled, which is what we
/// do).
pub(crate) fn reject_timeout(
    value: &Option<envoy_types::pb::google::protobuf::Duration>,
    field: &str,
) -> Result<()> {
    match value {
        Some(d) if d.seconds != 0 || d.nanos != 0 => Err(ValidationError::not_enforced(
            field,
            "this timeout is not applied, so only 0s (disabled) is accepted",
        )),
        _ => Ok(()),
    }
}

/// A required message field: the value or a `"<field>: is required"` error.
pub(crate) fn required<'a, T>(value: &'a Option<T>, field: &str) -> Result<&'a T> {
    value
        .as_ref()
        .ok_or_else(|| ValidationError::required(field))
}

/// A string field that PGV requires to be non-empty (`min_len: 1`).
pub(crate) fn non_empty<'a>(value: &'a str, field: &str) -> Result<&'a str> {
    if value.is_empty() {
        Err(ValidationError::new(field, "must not be empty"))
    } else {
        Ok(value)
    }
}

/// An error and its causes on one line, each cause once: tonic's and hyper's errors keep the
/// useful part ("Connection refused") in their source chain. For every crate that reports
/// network failures (the xDS client, health checks, reporters).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
