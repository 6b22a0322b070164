//! Every timeout of a forwarded request, decided before any I/O as Envoy's router
//! (`FilterUtility::finalTimeout`) and connection manager (`refreshDurationTimeout`) decide
//! them: the route timeout and per-try timeout with their `x-envoy-*` overrides, the legacy
//! `max_grpc_timeout`, and the stream's own limits (idle, whole request, duration, the last
//! possibly from `grpc-timeout`).

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use outrider_model::{ForwardAction, HttpConnectionManager};

use crate::headers::{PER_TRY_TIMEOUT_MS, UPSTREAM_TIMEOUT_MS, millis};
use crate::stream_clock::StreamLimits;

pub(crate) const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// gRPC's limit on a `grpc-timeout` value: eight digits.
const MAX_GRPC_TIMEOUT_VALUE: u64 = 99_999_999;

/// What happens to the request's `grpc-timeout` on its way upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrpcTimeoutHeader {
    Keep,
    /// Rewritten to the time the upstream really has.
    Set(Duration),
    /// Removed: the route lifted the limit.
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// The router's timeout for the whole request, retries included; `None` for none.
    pub route: Option<Duration>,
    /// Each attempt's own (shorter than `route`, or `None`).
    pub per_try: Option<Duration>,
    pub grpc_timeout_header: GrpcTimeoutHeader,
    pub stream: StreamLimits,
}

impl Timeouts {
    /// `x-envoy-expected-rq-timeout-ms`: the time one attempt has.
    pub(crate) fn expected(&self) -> Option<Duration> {
        match (self.per_try, self.route) {
            (Some(t), Some(r)) => Some(t.min(r)),
            (t, r) => t.or(r),
        }
    }
}

/// The timeouts of a request with `headers` (gRPC or not) on a route forwarding with
/// `action`, whose retry policy has `policy_per_try`.
pub(crate) fn timeouts(
    hcm: &HttpConnectionManager,
    action: &ForwardAction,
    policy_per_try: Option<Duration>,
    headers: &HeaderMap,
    grpc: bool,
    envoy_controls: bool,
) -> Timeouts {
    let new_timeouts = action.stream_duration.is_some();
    // The router's timeout: none with a route `max_stream_duration` (the stream limit
    // governs), the capped `grpc-timeout` under the legacy `max_grpc_timeout`, else the
    // route's; `x-envoy-upstream-rq-timeout-ms` wins when it parses.
    let mut route = if new_timeouts {
        None
    } else {
        match action.max_grpc_timeout.filter(|_| grpc) {
            Some(max) => legacy_grpc_timeout(headers, max, action.grpc_timeout_offset),
            None => action.timeout,
        }
    };
    let control = |name: &HeaderName| envoy_controls.then(|| millis(headers, name)).flatten();
    if let Some(header) = control(&UPSTREAM_TIMEOUT_MS) {
        route = Some(header);
    }
    let route = route.filter(|t| !t.is_zero());
    let per_try = control(&PER_TRY_TIMEOUT_MS)
        .or(policy_per_try)
        .filter(|t| !t.is_zero())
        // Envoy ignores a per-try timeout that is not shorter than the whole.
        .filter(|t| route.is_none_or(|r| *t < r));
    let max_duration = max_stream_duration(hcm, action, headers);
    let grpc_timeout_header = if !grpc {
        GrpcTimeoutHeader::Keep
    } else if new_timeouts {
        // The upstream learns the stream's limit; a limit the route lifted goes (Envoy
        // removes it only when the connection manager had one to lift).
        match max_duration {
            Some(limit) => GrpcTimeoutHeader::Set(limit),
            None if hcm.common.max_stream_duration.is_some() => GrpcTimeoutHeader::Remove,
            None => GrpcTimeoutHeader::Keep,
        }
    } else if action.max_grpc_timeout.is_some() {
        match (per_try, route) {
            (Some(t), Some(r)) => GrpcTimeoutHeader::Set(t.min(r)),
            (Some(t), None) | (None, Some(t)) => GrpcTimeoutHeader::Set(t),
            (None, None) => GrpcTimeoutHeader::Keep,
        }
    } else {
        GrpcTimeoutHeader::Keep
    };
    let idle = match action.idle_timeout {
        Some(route_idle) => Some(route_idle).filter(|t| !t.is_zero()),
        None => hcm.stream_idle_timeout,
    };
    Timeouts {
        route,
        per_try,
        grpc_timeout_header,
        stream: StreamLimits {
            idle,
            request: hcm.request_timeout,
            max_duration,
        },
    }
}

/// The legacy rule: `grpc-timeout` (infinite when absent), less the offset when that leaves
/// something, capped at `max` unless `max` is 0.
fn legacy_grpc_timeout(
    headers: &HeaderMap,
    max: Duration,
    offset: Option<Duration>,
) -> Option<Duration> {
    let mut timeout = grpc_timeout(headers).unwrap_or(Duration::ZERO);
    if let Some(offset) = offset
        && offset < timeout
    {
        timeout -= offset;
    }
    if !max.is_zero() && (timeout.is_zero() || timeout > max) {
        timeout = max;
    }
    Some(timeout)
}

/// The stream's duration limit. With a route `grpc_timeout_header_max` a request's
/// `grpc-timeout` is its limit (capped unless the cap is 0, less the offset down to 0);
/// otherwise the route's `max_stream_duration` (0: none), else the connection manager's.
fn max_stream_duration(
    hcm: &HttpConnectionManager,
    action: &ForwardAction,
    headers: &HeaderMap,
) -> Option<Duration> {
    let route = action.stream_duration;
    let header_max = route.and_then(|r| r.grpc_timeout_header_max);
    if let Some(cap) = header_max
        && let Some(mut timeout) = grpc_timeout(headers)
    {
        if !cap.is_zero() && timeout > cap {
            timeout = cap;
        }
        if let Some(offset) = route.and_then(|r| r.grpc_timeout_header_offset)
            && !timeout.is_zero()
        {
            timeout = timeout.saturating_sub(offset);
        }
        return Some(timeout);
    }
    match route.and_then(|r| r.max) {
        Some(max) => Some(max).filter(|m| !m.is_zero()),
        None => hcm.common.max_stream_duration,
    }
}

/// A request's `grpc-timeout` (gRPC over HTTP/2: up to eight digits and a unit of `H`, `M`,
/// `S`, `m`, `u` or `n`; sub-millisecond values round up), as Envoy reads it.
pub(crate) fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(&GRPC_TIMEOUT)?.to_str().ok()?;
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    if amount > MAX_GRPC_TIMEOUT_VALUE {
        return None;
    }
    let up_to_millis = |nanos: u64| Duration::from_millis(nanos.div_ceil(1_000_000));
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => up_to_millis(amount * 1_000),
        "n" => up_to_millis(amount),
        _ => return None,
    })
}

/// A `grpc-timeout` value for `timeout`, in the smallest of milliseconds, seconds, minutes
/// and hours that keeps it to eight digits (Envoy's `toGrpcTimeout`).
pub(crate) fn grpc_timeout_value(timeout: Duration) -> HeaderValue {
    const UNITS: [char; 4] = ['m', 'S', 'M', 'H'];
    let mut amount = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let mut unit = 0;
    if amount > MAX_GRPC_TIMEOUT_VALUE {
        amount /= 1000;
        unit = 1;
    }
    while amount > MAX_GRPC_TIMEOUT_VALUE {
        if unit == UNITS.len() - 1 {
            amount = MAX_GRPC_TIMEOUT_VALUE;
        } else {
            amount /= 60;
            unit += 1;
        }
    }
    HeaderValue::from_str(&format!("{amount}{}", UNITS[unit]))
        .unwrap_or(HeaderValue::from_static("0m"))
}

#[cfg(test)]
mod tests {
    use outrider_model::RouteAction;

    use super::*;
    use crate::request::test_support;

    /// The timeouts of a request with `headers` (gRPC when `grpc`) on a route with `route`
    /// fields, under a connection manager with `hcm` fields.
    fn planned(hcm: &str, route: &str, headers: &[(&str, &str)], grpc: bool) -> Timeouts {
        let hcm = test_support::hcm(hcm);
        let routes = test_support::routes(
            "",
            &format!("  - match: {{ prefix: / }}\n    route: {{ cluster: c, {route} }}\n"),
        );
        let RouteAction::Forward(action) = &routes.virtual_hosts[0].routes[0].action else {
            panic!("a forwarding route");
        };
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        let per_try = action.retry_policy.as_ref().and_then(|p| p.per_try_timeout);
        timeouts(&hcm, action, per_try, &map, grpc, true)
    }

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    /// One request: its configuration and the route, per-try and duration limits expected.
    struct Case {
        hcm: &'static str,
        route: &'static str,
        headers: &'static [(&'static str, &'static str)],
        grpc: bool,
        expect_route: Option<Duration>,
        expect_per_try: Option<Duration>,
        expect_duration: Option<Duration>,
        expect_grpc_header: GrpcTimeoutHeader,
    }

    const fn case(route: &'static str) -> Case {
        Case {
            hcm: "",
            route,
            headers: &[],
            grpc: false,
            expect_route: Some(Duration::from_secs(15)),
            expect_per_try: None,
            expect_duration: None,
            expect_grpc_header: GrpcTimeoutHeader::Keep,
        }
    }

    #[test]
    fn route_per_try_and_duration_limits() {
        use GrpcTimeoutHeader::{Keep, Remove, Set};
        let cases = [
            // Envoy's 15 s when the route says nothing.
            case("priority: DEFAULT"),
            Case {
                expect_route: ms(2000),
                ..case("timeout: 2s")
            },
            Case {
                headers: &[("x-envoy-upstream-rq-timeout-ms", "700")],
                expect_route: ms(700),
                ..case("timeout: 2s")
            },
            Case {
                headers: &[("x-envoy-upstream-rq-per-try-timeout-ms", "300")],
                expect_route: ms(2000),
                expect_per_try: ms(300),
                ..case("timeout: 2s")
            },
            // A per-try timeout no shorter than the whole is ignored.
            Case {
                expect_route: ms(2000),
                expect_per_try: None,
                ..case("timeout: 2s, retry_policy: { per_try_timeout: 3s }")
            },
            // A route max_stream_duration switches the route timeout off.
            Case {
                expect_route: None,
                expect_duration: ms(900),
                ..case("timeout: 2s, max_stream_duration: { max_stream_duration: 0.9s }")
            },
            Case {
                hcm: "      common_http_protocol_options: { max_stream_duration: 5s }\n",
                expect_duration: ms(5000),
                ..case("timeout: 15s")
            },
            // The route lifts the connection manager's limit, and the gRPC header with it.
            Case {
                hcm: "      common_http_protocol_options: { max_stream_duration: 5s }\n",
                headers: &[("grpc-timeout", "1S")],
                grpc: true,
                expect_route: None,
                expect_duration: None,
                expect_grpc_header: Remove,
                ..case("max_stream_duration: { max_stream_duration: 0s }")
            },
            // grpc-timeout as the limit: capped, less the offset.
            Case {
                headers: &[("grpc-timeout", "10S")],
                grpc: true,
                expect_route: None,
                expect_duration: ms(2500),
                expect_grpc_header: Set(Duration::from_millis(2500)),
                ..case(
                    "max_stream_duration: { grpc_timeout_header_max: 3s, grpc_timeout_header_offset: 0.5s }",
                )
            },
            Case {
                headers: &[("grpc-timeout", "200m")],
                grpc: true,
                expect_route: None,
                expect_duration: ms(200),
                expect_grpc_header: Set(Duration::from_millis(200)),
                ..case("max_stream_duration: { grpc_timeout_header_max: 0s }")
            },
            // Legacy max_grpc_timeout: the header (capped) is the route timeout.
            Case {
                headers: &[("grpc-timeout", "10S")],
                grpc: true,
                expect_route: ms(3000),
                expect_grpc_header: Set(Duration::from_millis(3000)),
                ..case("max_grpc_timeout: 3s")
            },
            Case {
                grpc: true,
                expect_route: None,
                expect_grpc_header: Keep,
                ..case("max_grpc_timeout: 0s")
            },
            // Not gRPC: the legacy rule does not apply.
            Case {
                headers: &[("grpc-timeout", "1S")],
                ..case("max_grpc_timeout: 3s")
            },
        ];
        for c in &cases {
            let t = planned(c.hcm, c.route, c.headers, c.grpc);
            let what = format!("{} / {} / {:?}", c.hcm.trim(), c.route, c.headers);
            assert_eq!(t.route, c.expect_route, "route timeout: {what}");
            assert_eq!(t.per_try, c.expect_per_try, "per-try timeout: {what}");
            assert_eq!(t.stream.max_duration, c.expect_duration, "duration: {what}");
            assert_eq!(
                t.grpc_timeout_header, c.expect_grpc_header,
                "grpc-timeout: {what}"
            );
        }
    }

    #[test]
    fn idle_and_request_limits() {
        let idle = |hcm: &str, route: &str| planned(hcm, route, &[], false).stream.idle;
        assert_eq!(idle("", "timeout: 1s"), Some(Duration::from_secs(300)));
        assert_eq!(idle("      stream_idle_timeout: 0s\n", "timeout: 1s"), None);
        assert_eq!(idle("", "idle_timeout: 0.2s"), ms(200));
        assert_eq!(
            idle("      stream_idle_timeout: 9s\n", "idle_timeout: 0s"),
            None
        );
        let request = planned("      request_timeout: 4s\n", "timeout: 1s", &[], false);
        assert_eq!(request.stream.request, ms(4000));
    }

    fn with_grpc_timeout(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            GRPC_TIMEOUT,
            HeaderValue::from_str(value).expect("a header value"),
        );
        headers
    }

    #[test]
    fn grpc_timeouts_read_as_envoy_reads_them() {
        let ms = Duration::from_millis;
        let cases: &[(&str, Option<Duration>)] = &[
            ("1H", Some(Duration::from_secs(3600))),
            ("2M", Some(Duration::from_secs(120))),
            ("3S", Some(ms(3000))),
            ("250m", Some(ms(250))),
            ("1500u", Some(ms(2))),
            ("1n", Some(ms(1))),
            ("0m", Some(ms(0))),
            ("99999999m", Some(ms(99_999_999))),
            ("100000000m", None),
            ("10", None),
            ("m", None),
            ("-1S", None),
            ("1x", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                grpc_timeout(&with_grpc_timeout(value)),
                *expected,
                "{value}"
            );
        }
    }

    #[test]
    fn grpc_timeouts_written_in_the_smallest_unit_that_fits() {
        let cases: &[(Duration, &str)] = &[
            (Duration::from_millis(250), "250m"),
            (Duration::from_millis(99_999_999), "99999999m"),
            (Duration::from_millis(100_000_000), "100000S"),
            (Duration::from_secs(100_000_000), "1666666M"),
            (Duration::from_secs(u64::MAX / 4), "99999999H"),
        ];
        for (timeout, expected) in cases {
            assert_eq!(grpc_timeout_value(*timeout), *expected, "{timeout:?}");
        }
    }
}
