//! Envoy's trust rule for request headers with `use_remote_address: false`: a request is
//! internal when its `x-forwarded-for` is exactly one address and that address is one of the
//! connection manager's `internal_address_config` ranges (none by default, as Envoy since
//! 1.33). Internal requests are marked `x-envoy-internal: true`; all others lose the
//! `x-envoy-*` controls a client could otherwise use to change retries and timeouts, and the
//! route table's `internal_only_headers`.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use outrider_model::InternalAddresses;

use crate::headers::{
    ENVOY_INTERNAL, EXPECTED_TIMEOUT_MS, MAX_RETRIES, PER_TRY_TIMEOUT_MS, RETRY_ON,
    UPSTREAM_TIMEOUT_MS, X_FORWARDED_CLIENT_CERT, X_FORWARDED_FOR,
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

/// Cleans `headers` as Envoy's connection manager does before routing. Returns whether the
/// request may still carry the router's `x-envoy-*` controls (an internal request that came
/// with some), so that the router looks for them only then.
pub(crate) fn clean_request_headers(
    headers: &mut HeaderMap,
    internal_addresses: &InternalAddresses,
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
    let internal = !internal_addresses.is_empty()
        && single_forwarded_for(headers).is_some_and(|ip| internal_addresses.contains(ip));
    if internal {
        headers.insert(ENVOY_INTERNAL, HeaderValue::from_static("true"));
        return carries_controls;
    }
    if carries_controls {
        for name in &EXTERNAL_STRIPPED {
            headers.remove(name);
        }
    }
    for name in internal_only_headers {
        headers.remove(name);
    }
    false
}

/// Envoy's `getLastAddressFromXFF` with no trusted hops, when it reports a single address:
/// the header (one of them) is exactly one IP address, spaces around it allowed.
fn single_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let mut values = headers.get_all(X_FORWARDED_FOR).iter();
    let value = values.next()?;
    if values.next().is_some() {
        // Several headers are one comma-separated list to Envoy: not a single address.
        return None;
    }
    let text = value.to_str().ok()?;
    if text.contains(',') {
        return None;
    }
    text.trim_matches([' ', '\t']).parse().ok()
}

#[cfg(test)]
mod tests {
    use outrider_model::CidrRange;

    use super::*;

    fn cleaned(addresses: &InternalAddresses, pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        clean_request_headers(
            &mut headers,
            addresses,
            &[HeaderName::from_static("x-secret")],
        );
        headers
    }

    const CONTROLS: [(&str, &str); 5] = [
        ("x-envoy-retry-on", "5xx"),
        ("x-envoy-internal", "true"),
        ("x-forwarded-client-cert", "By=spoofed"),
        ("x-secret", "1"),
        ("x-envoy-upstream-rq-timeout-ms", "1"),
    ];

    #[test]
    fn without_internal_addresses_every_request_is_external() {
        let addresses = InternalAddresses::default();
        let headers = cleaned(
            &addresses,
            &[&CONTROLS[..], &[("x-forwarded-for", "10.0.0.1")]].concat(),
        );
        let names: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-forwarded-for"]);
    }

    #[test]
    fn a_single_internal_forwarded_for_keeps_the_controls() {
        let addresses = InternalAddresses {
            ranges: vec![CidrRange {
                address: "10.0.0.0".parse().expect("ip"),
                prefix_len: 8,
            }],
        };
        for xff in ["10.0.0.1", " 10.9.9.9 "] {
            let headers = cleaned(
                &addresses,
                &[&CONTROLS[..], &[("x-forwarded-for", xff)]].concat(),
            );
            assert_eq!(headers["x-envoy-internal"], "true", "{xff}");
            assert_eq!(headers["x-envoy-retry-on"], "5xx", "{xff}");
            assert_eq!(headers["x-secret"], "1", "{xff}");
            assert!(!headers.contains_key("x-forwarded-client-cert"), "{xff}");
        }
        // Two hops, an external address, a port, or none: external.
        for xff in [
            Some("10.0.0.1, 10.0.0.2"),
            Some("8.8.8.8"),
            Some("10.0.0.1:80"),
            None,
        ] {
            let mut pairs = CONTROLS.to_vec();
            pairs.extend(xff.map(|v| ("x-forwarded-for", v)));
            let headers = cleaned(&addresses, &pairs);
            for (name, _) in CONTROLS {
                assert!(!headers.contains_key(name), "{xff:?}: {name} kept");
            }
        }
    }
}
