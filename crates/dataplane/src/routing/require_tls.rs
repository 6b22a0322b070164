//! A virtual host's `require_tls`, as Envoy's route matcher applies it before any route: the
//! request's `x-forwarded-proto` says whether it came over https (the connection manager sets
//! it to `http` when absent; our downstream connections are never TLS).

use outrider_model::{TlsRequirement, VirtualHost};

use super::request::RequestView;
use crate::headers::{ENVOY_INTERNAL, X_FORWARDED_PROTO};

/// What `require_tls` makes of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsCheck {
    /// Route it as usual.
    Pass,
    /// Answer 301 with this `Location`: `https://` + the authority as received + the path.
    Redirect(String),
    /// An empty `x-forwarded-proto`: Envoy finds no route (404).
    NoRoute,
}

pub fn tls_check(vhost: &VirtualHost, request: &RequestView<'_>) -> TlsCheck {
    if vhost.require_tls == TlsRequirement::None {
        return TlsCheck::Pass;
    }
    let scheme = request
        .headers
        .get(X_FORWARDED_PROTO)
        .map_or(&b"http"[..], |v| v.as_bytes());
    if scheme.is_empty() {
        return TlsCheck::NoRoute;
    }
    let internal = || {
        request
            .headers
            .get(ENVOY_INTERNAL)
            .is_some_and(|v| v == "true")
    };
    let redirect = scheme != b"https"
        && match vhost.require_tls {
            TlsRequirement::All => true,
            TlsRequirement::ExternalOnly => !internal(),
            TlsRequirement::None => false,
        };
    if redirect {
        TlsCheck::Redirect(format!(
            "https://{}{}",
            request.authority, request.path_and_query
        ))
    } else {
        TlsCheck::Pass
    }
}
