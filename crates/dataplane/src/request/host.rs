//! The request's host before routing, as Envoy's connection manager leaves it:
//! `strip_trailing_host_dot` and `strip_any_host_port` / `strip_matching_host_port`.

use std::borrow::Cow;

use http::{HeaderValue, header};
use outrider_model::{HttpConnectionManager, StripHostPort};

use crate::routing::{RequestView, strip_host_port};

/// Envoy's `strip_trailing_host_dot` and `strip_any_host_port` / `strip_matching_host_port`:
/// the host loses its trailing dot and its port before routing, and goes upstream without them
/// (the `Host` header and, for HTTP/2 and absolute-form requests, the URI's authority).
pub(super) fn rewrite_host(
    parts: &mut http::request::Parts,
    hcm: &HttpConnectionManager,
    listener_port: u16,
) {
    let authority = RequestView::from_parts(parts, false).authority;
    let mut host = Cow::Borrowed(authority);
    if hcm.strip_trailing_host_dot {
        host = match strip_trailing_dot(&host) {
            Some(stripped) => Cow::Owned(stripped),
            None => host,
        };
    }
    let port = match hcm.strip_host_port {
        StripHostPort::None => None,
        StripHostPort::Matching => Some(Some(listener_port)),
        StripHostPort::Any => Some(None),
    };
    if let Some(port) = port
        && let Some(stripped) = strip_host_port(&host, port, &parts.method)
    {
        host = Cow::Owned(stripped.to_owned());
    }
    let Cow::Owned(host) = host else {
        return;
    };
    if parts.headers.contains_key(header::HOST)
        && let Ok(value) = HeaderValue::from_str(&host)
    {
        parts.headers.insert(header::HOST, value);
    }
    if parts.uri.authority().is_some()
        && let Ok(authority) = http::uri::Authority::try_from(host.as_str())
    {
        let mut uri = parts.uri.clone().into_parts();
        uri.authority = Some(authority);
        if let Ok(uri) = http::Uri::from_parts(uri) {
            parts.uri = uri;
        }
    }
}

/// `example.com.` → `example.com`, `example.com.:80` → `example.com:80` (Envoy's
/// `HeaderUtility::stripTrailingHostDot`); `None` when there is no trailing dot.
fn strip_trailing_dot(authority: &str) -> Option<String> {
    let (host, port) = match authority.rfind(':') {
        // An IPv6 literal's colons are inside brackets.
        Some(colon) if !authority[colon..].contains(']') => {
            (&authority[..colon], &authority[colon..])
        }
        _ => (authority, ""),
    };
    host.strip_suffix('.').map(|bare| format!("{bare}{port}"))
}

#[cfg(test)]
mod tests {
    use super::strip_trailing_dot;

    #[test]
    fn trailing_host_dots_go_ports_stay() {
        assert_eq!(
            strip_trailing_dot("example.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            strip_trailing_dot("example.com.:8080").as_deref(),
            Some("example.com:8080")
        );
        assert_eq!(strip_trailing_dot("example.com"), None);
        assert_eq!(strip_trailing_dot("example.com:8080"), None);
        assert_eq!(strip_trailing_dot("[::1]:80"), None);
    }
}
