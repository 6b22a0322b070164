//! Envoy's access-log filters evaluated on an ended request (`outrider_model::LogFilter`).

use outrider_model::LogFilter;

use crate::formatter::FormatContext;
use crate::headers::X_REQUEST_ID;
use crate::local_reply::grpc_status;

/// Whether the entry for `cx` passes `filter`. `cx.end` is set: filters run when a request
/// ends.
pub(crate) fn passes(filter: &LogFilter, cx: &FormatContext<'_>) -> bool {
    let Some(end) = cx.end else {
        return false;
    };
    match filter {
        LogFilter::StatusCode(comparison) => comparison.holds_for(u64::from(end.status)),
        LogFilter::Duration(comparison) => {
            comparison.holds_for(u64::try_from(end.duration.as_millis()).unwrap_or(u64::MAX))
        }
        LogFilter::NotHealthCheck => true,
        LogFilter::Runtime {
            numerator,
            denominator,
            independent,
        } => {
            let by_request = (!independent).then(|| request_id_value(cx)).flatten();
            let value = by_request.unwrap_or_else(rand::random::<u64>);
            value % denominator < *numerator
        }
        LogFilter::And(filters) => filters.iter().all(|f| passes(f, cx)),
        LogFilter::Or(filters) => filters.iter().any(|f| passes(f, cx)),
        LogFilter::Header(matcher) => {
            let value = cx.request.and_then(|r| r.header_value(&matcher.name));
            matcher.matches(value.as_deref())
        }
        LogFilter::ResponseFlag(flags) => match end.flag {
            None => false,
            Some(flag) => flags.is_empty() || flags.iter().any(|f| f == flag.code()),
        },
        LogFilter::GrpcStatus { statuses, exclude } => {
            // Envoy's `getGrpcStatus`: trailers, then headers, then the HTTP status mapped;
            // with no response at all, `Unknown`.
            let status = end.grpc_status.unwrap_or_else(|| match end.status {
                0 => 2,
                code => http::StatusCode::from_u16(code).map_or(2, |s| u32::from(grpc_status(s))),
            });
            statuses.contains(&status) != *exclude
        }
    }
}

/// The number Envoy's UUID request-id extension samples by: the id's first 8 hex digits.
fn request_id_value(cx: &FormatContext<'_>) -> Option<u64> {
    let id = cx.request?.headers.get(X_REQUEST_ID)?.to_str().ok()?;
    u64::from_str_radix(id.get(..8)?, 16).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderMap, HeaderValue};
    use outrider_model::{CompareOp, Comparison, HeaderMatchRule, HeaderMatcher};

    use super::*;
    use crate::formatter::StreamEnd;
    use crate::formatter::test_support::{ended, with_request};
    use crate::local_reply::ResponseFlag;

    fn check(
        status: u16,
        flag: Option<ResponseFlag>,
        grpc: Option<u32>,
        run: impl FnOnce(&FormatContext<'_>),
    ) {
        let mut headers = HeaderMap::new();
        headers.insert(
            X_REQUEST_ID,
            HeaderValue::from_static("0000000a-1111-4222-8333-444444444444"),
        );
        headers.insert("x-debug", HeaderValue::from_static("1"));
        let end = StreamEnd {
            flag,
            grpc_status: grpc,
            duration: Duration::from_millis(30),
            ..ended(status)
        };
        with_request("/", headers, &end, run);
    }

    fn at_least(value: u64) -> Comparison {
        Comparison {
            op: CompareOp::Ge,
            value,
        }
    }

    #[test]
    fn status_duration_and_operators() {
        check(503, None, None, |cx| {
            assert!(passes(&LogFilter::StatusCode(at_least(500)), cx));
            assert!(!passes(&LogFilter::Duration(at_least(31)), cx));
            let both = LogFilter::And(vec![
                LogFilter::StatusCode(at_least(500)),
                LogFilter::Duration(at_least(31)),
            ]);
            assert!(!passes(&both, cx));
            let either = LogFilter::Or(vec![
                LogFilter::StatusCode(at_least(500)),
                LogFilter::Duration(at_least(31)),
            ]);
            assert!(passes(&either, cx));
        });
    }

    #[test]
    fn flags_headers_and_grpc_status() {
        check(503, Some(ResponseFlag::NoHealthyUpstream), None, |cx| {
            assert!(passes(&LogFilter::ResponseFlag(vec![]), cx));
            assert!(passes(
                &LogFilter::ResponseFlag(vec!["UF".into(), "UH".into()]),
                cx
            ));
            assert!(!passes(&LogFilter::ResponseFlag(vec!["UF".into()]), cx));
            let debug = HeaderMatcher {
                name: "x-debug".into(),
                rule: HeaderMatchRule::Present(true),
                invert_match: false,
                treat_missing_header_as_empty: false,
            };
            assert!(passes(&LogFilter::Header(debug), cx));
            // 503 with no grpc-status is Unavailable (14).
            let unavailable = LogFilter::GrpcStatus {
                statuses: vec![14],
                exclude: false,
            };
            assert!(passes(&unavailable, cx));
        });
        check(200, None, Some(0), |cx| {
            assert!(!passes(&LogFilter::ResponseFlag(vec![]), cx));
            let not_ok = LogFilter::GrpcStatus {
                statuses: vec![0],
                exclude: true,
            };
            assert!(!passes(&not_ok, cx));
        });
    }

    #[test]
    fn runtime_samples_by_request_id() {
        // The id starts with 0x0000000a = 10.
        check(200, None, None, |cx| {
            let sampled = |numerator| LogFilter::Runtime {
                numerator,
                denominator: 100,
                independent: false,
            };
            assert!(passes(&sampled(11), cx));
            assert!(!passes(&sampled(10), cx));
            let never = LogFilter::Runtime {
                numerator: 0,
                denominator: 100,
                independent: true,
            };
            assert!(!passes(&never, cx));
        });
    }
}
