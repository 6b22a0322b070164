//! What went wrong loading TLS material or building a configuration, with the field it
//! concerns (relative to the Envoy message being built) when there is one.

/// A TLS configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TlsError {
    /// The field of the Envoy message at fault (`certificate_chain`, `private_key`, ...).
    pub field: Option<&'static str>,
    pub message: String,
}

impl TlsError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        TlsError {
            field: None,
            message: message.into(),
        }
    }

    pub(crate) fn at(field: &'static str, message: impl Into<String>) -> Self {
        TlsError {
            field: Some(field),
            message: message.into(),
        }
    }
}
