//! Request and response header handling on the way through: hop-by-hop headers removed,
//! `x-forwarded-for`, `x-forwarded-proto`, `x-request-id`, and the `x-envoy-*` controls users
//! rely on.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the proxy-only ones Envoy strips.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

// Names as `HeaderName`s: a lookup by `&str` parses and classifies the name every time.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) const ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");
pub(crate) const ORIGINAL_PATH: HeaderName = HeaderName::from_static("x-envoy-original-path");
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) const X_FORWARDED_CLIENT_CERT: HeaderName =
    HeaderName::from_static("x-forwarded-client-cert");
pub(crate) const ENVOY_INTERNAL: HeaderName = HeaderName::from_static("x-envoy-internal");
pub(crate) const ENVOY_EXTERNAL_ADDRESS: HeaderName =
    HeaderName::from_static("x-envoy-external-address");
pub(crate) const UPSTREAM_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-upstream-rq-timeout-ms");
pub(crate) const PER_TRY_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-upstream-rq-per-try-timeout-ms");
pub(crate) const MAX_RETRIES: HeaderName = HeaderName::from_static("x-envoy-max-retries");
pub(crate) const RETRY_ON: HeaderName = HeaderName::from_static("x-envoy-retry-on");
pub(crate) const EXPECTED_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms");
pub(crate) const UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");
pub(crate) const IMMEDIATE_HEALTH_CHECK_FAIL: HeaderName =
    HeaderName::from_static("x-envoy-immediate-health-check-fail");

/// Whether a header must not be forwarded as is: hop-by-hop, or `te` (reduced to `trailers`).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::TE || HOP_BY_HOP.iter().any(|hop| name == hop)
}

/// Removes hop-by-hop headers, and any header the `Connection` header names. `te: trailers`
/// survives: gRPC needs it end to end. `expect: 100-continue` goes too: the connection
/// manager answers it itself (hyper sends the 100 when the body is first read), as Envoy
/// does without `proxy_100_continue`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages have none: one pass over the names instead of eight removals.
    if !headers
        .keys()
        .any(|name| is_hop_by_hop(name) || name == header::EXPECT)
    {
        return;
    }
    if headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    {
        headers.remove(header::EXPECT);
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        if keep_upgrade && (name == header::UPGRADE || name == header::CONNECTION) {
            continue;
        }
        headers.remove(name);
    }
    let te_trailers = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    headers.remove(header::TE);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Appends the connection manager's `via` value, after a comma if the header is there already
/// (Envoy's `Utility::appendVia`).
pub(crate) fn append_via(headers: &mut HeaderMap, via: &str) {
    let value = match headers.get(header::VIA).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.is_empty() => format!("{existing}, {via}"),
        _ => via.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(header::VIA, value);
    }
}

/// Adds `x-request-id` (a random UUID v4) when absent, or replaces it when `replace`.
pub(crate) fn ensure_request_id(headers: &mut HeaderMap, replace: bool) {
    if !replace && headers.contains_key(X_REQUEST_ID) {
        return;
    }
    if let Ok(value) = HeaderValue::from_bytes(&uuid_v4()) {
        headers.insert(X_REQUEST_ID, value);
    }
}

fn uuid_v4() -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    // Formatted on the stack: this runs for every request without an id.
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            at += 1;
        }
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    text
}

/// A millisecond count from a header (`x-envoy-upstream-rq-timeout-ms`), if valid.
pub(crate) fn millis(headers: &HeaderMap, name: &HeaderName) -> Option<Duration> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

/// A small integer from a header (`x-envoy-max-retries`), if valid.
pub(crate) fn number(headers: &HeaderMap, name: &HeaderName) -> Option<u32> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_te_trailers_stays() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("te", HeaderValue::from_static("trailers, gzip"));
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut headers, false);
        let names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept", "te"]);
        let mut expecting = HeaderMap::new();
        expecting.insert("expect", HeaderValue::from_static("100-Continue"));
        strip_hop_by_hop(&mut expecting, false);
        assert!(expecting.is_empty(), "{expecting:?}");
        assert_eq!(headers["te"], "trailers");
    }

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = String::from_utf8(uuid_v4().to_vec()).expect("ASCII");
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_eq!([&id[8..9], &id[13..14], &id[18..19], &id[23..24]], ["-"; 4]);
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(id.as_bytes(), uuid_v4());
    }
}
