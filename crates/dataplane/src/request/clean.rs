//! Envoy's `cleanInternalHeaders` and the marks of trust: internal requests (see
//! `request/client.rs` for who is internal; nobody by default, as Envoy since 1.33) are marked
//! `x-envoy-internal: true`; all others lose the `x-envoy-*` controls a client could otherwise
//! use to change retries and timeouts, and the route table's `internal_only_headers`.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::client::Client;
use crate::headers::{
    ENVOY_EXTERNAL_ADDRESS, ENVOY_INTERNAL, EXPECTED_TIMEOUT_MS, MAX_RETRIES, PER_TRY_TIMEOUT_MS,
    RETRY_ON, UPSTREAM_TIMEOUT_MS, X_FORWARDED_CLIENT_CERT,
};

/// What Envoy's `cleanInternalHeaders` removes from requests that are not internal.
const EXTERNAL_STRIPPED: [HeaderName; 14] = [
    HeaderName::from_static("x-envoy-retriable-status-codes"),
    HeaderName::from_static("x-envoy-retriable-header-names"),
    RETRY_ON,
    HeaderName::from_static("x-envoy-retry-grpc-on"),
    MAX_RETRIES,
    HeaderName::from_static("x-envoy-upstream-alt-stat-name"),
    UPSTREAM_TIMEOUT_MS,
    PER_TRY_TIMEOUT_MS,
    HeaderName::from_static("x-envoy-upstream-rq-timeout-alt-response"),
    EXPECTED_TIMEOUT_MS,
    HeaderName::from_static("x-envoy-force-trace"),
    HeaderName::from_static("x-envoy-ip-tags"),
    HeaderName::from_static("x-envoy-original-url"),
    HeaderName::from_static("x-envoy-hedge-on-per-try-timeout"),
];

/// What Envoy's `cleanInternalHeaders` also removes from edge requests.
const EDGE_STRIPPED: [HeaderName; 3] = [
    HeaderName::from_static("x-envoy-decorator-operation"),
    HeaderName::from_static("x-envoy-downstream-service-cluster"),
    HeaderName::from_static("x-envoy-downstream-service-node"),
];

/// Cleans `headers` as Envoy's connection manager does before routing, for `client` (see
/// `request/client.rs`): an internal request is marked `x-envoy-internal: true`; the others
/// lose the router's controls and the route table's `internal_only_headers`, and an edge
/// request gets `x-envoy-external-address`. Returns whether the request may still carry the
/// router's `x-envoy-*` controls (an internal request that came with some), so that the
/// router looks for them only then.
pub(crate) fn clean_request_headers(
    headers: &mut HeaderMap,
    client: &Client,
    internal_only_headers: &[HeaderName],
) -> bool {
    // Most requests carry none of these: one pass over the names spares a dozen removals.
    let carries_controls = headers
        .keys()
        .any(|name| name.as_str().starts_with("x-envoy-") || *name == X_FORWARDED_CLIENT_CERT);
    if carries_controls {
        headers.remove(ENVOY_INTERNAL);
        // Envoy's default `forward_client_cert_details` (SANITIZE) drops it from every request
        // not on a mutual-TLS connection, which ours never are.
        headers.remove(X_FORWARDED_CLIENT_CERT);
    }
    if client.internal {
        headers.insert(ENVOY_INTERNAL, HeaderValue::from_static("true"));
        return carries_controls;
    }
    if carries_controls {
        let edge_only = if client.edge { &EDGE_STRIPPED[..] } else { &[] };
        for name in EXTERNAL_STRIPPED.iter().chain(edge_only) {
            headers.remove(name);
        }
    }
    for name in internal_only_headers {
        headers.remove(name);
    }
    // This proxy is the client's first hop into the trusted network: it says who came in
    // (an edge client's address is always resolved).
    if client.edge
        && let Ok(value) = HeaderValue::from_str(&client.address(headers, 0).ip().to_string())
    {
        headers.insert(ENVOY_EXTERNAL_ADDRESS, value);
    }
    false
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn cleaned(client: Client, pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        clean_request_headers(
            &mut headers,
            &client,
            &[HeaderName::from_static("x-secret")],
        );
        headers
    }

    const CONTROLS: [(&str, &str); 6] = [
        ("x-envoy-retry-on", "5xx"),
        ("x-envoy-internal", "true"),
        ("x-forwarded-client-cert", "By=spoofed"),
        ("x-secret", "1"),
        ("x-envoy-upstream-rq-timeout-ms", "1"),
        ("x-envoy-downstream-service-node", "n"),
    ];

    fn client(internal: bool, edge: bool) -> Client {
        Client {
            internal,
            edge,
            ..Client::direct("8.8.8.8:0".parse::<SocketAddr>().expect("ip"))
        }
    }

    #[test]
    fn external_requests_lose_the_controls() {
        let headers = cleaned(client(false, false), &CONTROLS);
        let names: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-envoy-downstream-service-node"]);
        let edge = cleaned(client(false, true), &CONTROLS);
        let names: Vec<_> = edge.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-envoy-external-address"]);
        assert_eq!(edge["x-envoy-external-address"], "8.8.8.8");
    }

    #[test]
    fn internal_requests_keep_them_and_are_marked() {
        let headers = cleaned(client(true, false), &CONTROLS);
        assert_eq!(headers["x-envoy-internal"], "true");
        assert_eq!(headers["x-envoy-retry-on"], "5xx");
        assert_eq!(headers["x-secret"], "1");
        assert!(!headers.contains_key("x-forwarded-client-cert"));
        assert!(!headers.contains_key("x-envoy-external-address"));
    }
}
