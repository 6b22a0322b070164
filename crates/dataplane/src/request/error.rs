//! The request path's one error: what failed, on whose side, whether another attempt may help,
//! and the one mapping from a failure to the local reply Envoy sends for it (status, body,
//! response flag, and whether the connection closes).

use std::net::SocketAddr;

use http::{HeaderValue, Response, StatusCode, Version, header};

use crate::local_reply::{AccessInfo, Flagged, ProxyBody, ResponseFlag, grpc_reply, local_reply};
use crate::pool::SendError;
use crate::stream_body::BodyFailure;
use crate::stream_clock::StreamTimeout;

/// Whose fault a failure is. Only `Upstream` failures may count against an endpoint or be
/// retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The client's request cannot be served as sent.
    Downstream,
    /// The configuration has no answer for it (no route, no such cluster).
    Config,
    /// The cluster or its endpoints could not answer.
    Upstream,
}

#[derive(Debug)]
pub(crate) enum ProxyError {
    /// The request's header bytes are over `max_request_headers_kb` (431).
    HeadersTooLarge,
    /// A header name with `_` under `headers_with_underscores_action: REJECT_REQUEST` (400).
    UnderscoreInHeaderName,
    /// HTTP/1.0 without `accept_http_10` (426).
    Http10NotAccepted,
    /// More than one `Host` header (RFC 9112 §3.2), or an authority that cannot be one:
    /// which one routing and the upstream would read is not settled (400).
    InvalidHost,
    /// No authority at all: no `Host`, no `:authority`, no absolute-form target (400, as
    /// Envoy's connection manager answers it, without a response flag).
    MissingHost,
    /// An absolute-form target whose scheme is not `http` (`https` needs a TLS connection),
    /// as Envoy's HTTP/1 codec refuses it (400).
    InvalidUrl,
    /// An HTTP/1 head with both `Content-Length` and `Transfer-Encoding` (400), as Envoy's
    /// codec refuses it.
    ConflictingFraming,
    /// An upgrade (WebSocket…) that neither the route nor the listener enables (403).
    UpgradeNotAllowed,
    /// A rewrite produced what cannot be sent as a request (400).
    InvalidUpstreamRequest,
    /// The path failed the connection manager's normalisation (400).
    InvalidPath,
    /// The client's request body failed while it was read for a possible retry or sent
    /// upstream: malformed framing (400, `DPE`), or the client went away mid-body (nobody to
    /// answer: logged as Envoy logs it, code 0 and `DC`).
    RequestBodyFailed(BodyFailure),
    /// The listener's filter chain has no HTTP connection manager (500).
    NotHttp,
    /// No route configuration, virtual host or route for the request (404, `NR`).
    NoRoute,
    /// The route's cluster is not in the tables, or is named by a missing header (`NC`).
    ClusterNotFound {
        /// The route's `cluster_not_found_response_code`.
        status: StatusCode,
        /// Why, when `explain_no_healthy_upstream` is on.
        explanation: Option<String>,
    },
    /// Shed by the cluster's EDS `drop_overloads` (503, `DO`).
    DropOverload,
    /// A circuit breaker is open (503, `UO`).
    Overflow,
    /// No endpoint can take the request (503, `UH`).
    NoHealthyUpstream {
        /// Why, when `explain_no_healthy_upstream` is on.
        explanation: Option<String>,
    },
    /// No connection could be made to the endpoint (503, `UF`).
    ConnectFailure { upstream: SocketAddr },
    /// The connection failed before the response headers (503, `UC`).
    Reset { upstream: SocketAddr },
    /// The route or per-try timeout passed before the response headers (504, `UT`).
    Timeout { upstream: SocketAddr },
    /// A stream limit of the connection manager (idle, whole request, duration) was reached
    /// before the response head: 504 when the request had arrived whole, else 408 (which
    /// closes an HTTP/1 connection), as Envoy's `maybeRequestTimeoutCode`.
    StreamTimeout {
        which: StreamTimeout,
        request_complete: bool,
    },
}

/// What the reply depends on besides the error itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyTo {
    /// The request is gRPC: the reply is a trailers-only gRPC status.
    pub grpc: bool,
    pub version: Version,
    /// The router's `suppress_envoy_headers`: no `x-envoy-overloaded`.
    pub suppress_envoy_headers: bool,
}

impl ProxyError {
    /// The error for a request an endpoint's pool could not send.
    pub(crate) fn from_send(error: &SendError, upstream: SocketAddr) -> Self {
        match error {
            SendError::Connect(_) => Self::ConnectFailure { upstream },
            SendError::Reset(_) => Self::Reset { upstream },
            SendError::ClientBody(how) => Self::RequestBodyFailed(*how),
            SendError::Overflow => Self::Overflow,
        }
    }

    pub(crate) fn side(&self) -> Side {
        match self {
            Self::HeadersTooLarge
            | Self::UnderscoreInHeaderName
            | Self::Http10NotAccepted
            | Self::InvalidHost
            | Self::MissingHost
            | Self::InvalidUrl
            | Self::ConflictingFraming
            | Self::UpgradeNotAllowed
            | Self::InvalidUpstreamRequest
            | Self::InvalidPath
            | Self::RequestBodyFailed(_) => Side::Downstream,
            Self::NotHttp | Self::NoRoute | Self::ClusterNotFound { .. } => Side::Config,
            Self::DropOverload
            | Self::Overflow
            | Self::NoHealthyUpstream { .. }
            | Self::ConnectFailure { .. }
            | Self::Reset { .. }
            | Self::Timeout { .. } => Side::Upstream,
            Self::StreamTimeout {
                request_complete, ..
            } => {
                if *request_complete {
                    Side::Upstream
                } else {
                    Side::Downstream
                }
            }
        }
    }

    /// Whether another attempt, on another endpoint, may succeed (the route's retry policy
    /// decides whether one is made). Breakers, drops and a cluster without endpoints are not
    /// retried, as in Envoy's router.
    pub(crate) fn may_retry(&self) -> bool {
        matches!(
            self,
            Self::ConnectFailure { .. } | Self::Reset { .. } | Self::Timeout { .. }
        )
    }

    /// The endpoint involved, for the access log's `%UPSTREAM_HOST%`.
    pub(crate) fn upstream(&self) -> Option<SocketAddr> {
        match self {
            Self::ConnectFailure { upstream }
            | Self::Reset { upstream }
            | Self::Timeout { upstream } => Some(*upstream),
            _ => None,
        }
    }

    pub(crate) fn flag(&self) -> Option<ResponseFlag> {
        Some(match self {
            // Envoy's codec refuses these (handleCodecError flags the stream).
            Self::HeadersTooLarge
            | Self::UnderscoreInHeaderName
            | Self::Http10NotAccepted
            | Self::InvalidHost
            | Self::InvalidUrl
            | Self::ConflictingFraming
            | Self::RequestBodyFailed(BodyFailure::Malformed) => {
                ResponseFlag::DownstreamProtocolError
            }
            Self::RequestBodyFailed(BodyFailure::ClientGone) => {
                ResponseFlag::DownstreamConnectionTermination
            }
            Self::NoRoute => ResponseFlag::NoRoute,
            Self::ClusterNotFound { .. } => ResponseFlag::NoClusterFound,
            Self::DropOverload => ResponseFlag::DropOverload,
            Self::Overflow => ResponseFlag::UpstreamOverflow,
            Self::NoHealthyUpstream { .. } => ResponseFlag::NoHealthyUpstream,
            Self::ConnectFailure { .. } => ResponseFlag::UpstreamConnectFailure,
            Self::Reset { .. } => ResponseFlag::UpstreamConnectionTermination,
            Self::Timeout { .. } => ResponseFlag::UpstreamRequestTimeout,
            Self::StreamTimeout {
                which: StreamTimeout::Idle,
                ..
            } => ResponseFlag::StreamIdleTimeout,
            _ => return None,
        })
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnderscoreInHeaderName
            | Self::InvalidHost
            | Self::MissingHost
            | Self::InvalidUrl
            | Self::ConflictingFraming
            | Self::InvalidUpstreamRequest
            | Self::InvalidPath
            | Self::RequestBodyFailed(_) => StatusCode::BAD_REQUEST,
            Self::Http10NotAccepted => StatusCode::UPGRADE_REQUIRED,
            Self::UpgradeNotAllowed => StatusCode::FORBIDDEN,
            Self::NotHttp => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::ClusterNotFound { status, .. } => *status,
            Self::DropOverload
            | Self::Overflow
            | Self::NoHealthyUpstream { .. }
            | Self::ConnectFailure { .. }
            | Self::Reset { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::StreamTimeout {
                request_complete: true,
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            Self::StreamTimeout {
                request_complete: false,
                ..
            } => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Envoy's body for the reply.
    fn body(&self) -> &'static str {
        match self {
            Self::DropOverload => "drop_overload",
            Self::Overflow => {
                "upstream connect error or disconnect/reset before headers. reset reason: overflow"
            }
            Self::NoHealthyUpstream { .. } => "no healthy upstream",
            Self::ConnectFailure { .. } | Self::Reset { .. } => {
                "upstream connect error or disconnect/reset before headers"
            }
            Self::Timeout { .. } => "upstream request timeout",
            Self::StreamTimeout { which, .. } => match which {
                StreamTimeout::Idle => "stream timeout",
                StreamTimeout::Request => "request timeout",
                StreamTimeout::MaxDuration => "downstream duration timeout",
            },
            _ => "",
        }
    }

    /// Whether the connection closes after the reply: Envoy's HTTP/1 codec ends the
    /// connection on a request it refuses (an HTTP/2 stream just gets the reply, where Envoy
    /// resets it).
    fn closes(&self, version: Version) -> bool {
        match self {
            Self::Http10NotAccepted => true,
            Self::HeadersTooLarge
            | Self::UnderscoreInHeaderName
            | Self::InvalidHost
            | Self::InvalidUrl
            | Self::ConflictingFraming
            | Self::RequestBodyFailed(_) => version != Version::HTTP_2,
            // The rest of the request would have to be read first.
            Self::StreamTimeout {
                request_complete: false,
                ..
            } => version != Version::HTTP_2,
            _ => false,
        }
    }

    /// The local reply for this failure.
    pub(crate) fn into_response(self, to: ReplyTo) -> Response<ProxyBody> {
        let unanswered = matches!(self, Self::RequestBodyFailed(BodyFailure::ClientGone));
        let status = self.status();
        let body = self.body();
        let closes = self.closes(to.version);
        let flag = self.flag();
        let upstream = self.upstream();
        // Envoy's gRPC status for a stream out of time: DEADLINE_EXCEEDED.
        let grpc_status = matches!(
            self,
            Self::StreamTimeout {
                which: StreamTimeout::MaxDuration,
                ..
            }
        )
        .then_some(4);
        let extra = match self {
            Self::ClusterNotFound { explanation, .. } | Self::NoHealthyUpstream { explanation } => {
                explanation.map(|e| ("x-outrider-no-healthy-upstream", e))
            }
            Self::Overflow if !to.suppress_envoy_headers => {
                Some(("x-envoy-overloaded", "true".to_string()))
            }
            _ => None,
        };
        let mut response = match grpc_status {
            Some(code) if to.grpc => grpc_reply(code, body, extra),
            _ => local_reply(status, body, to.grpc, extra),
        };
        if closes {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let mut response = match flag {
            Some(flag) => response.flagged(flag, upstream),
            None => response,
        };
        if unanswered && let Some(info) = response.extensions_mut().get_mut::<AccessInfo>() {
            info.unanswered = true;
        }
        response
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = match self.side() {
            Side::Downstream => "downstream",
            Side::Config => "config",
            Side::Upstream => "upstream",
        };
        write!(f, "{side}: {self:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(error: ProxyError, version: Version) -> Response<ProxyBody> {
        error.into_response(ReplyTo {
            grpc: false,
            version,
            suppress_envoy_headers: false,
        })
    }

    #[test]
    fn only_upstream_failures_of_a_connection_may_be_retried() {
        let upstream: SocketAddr = "127.0.0.1:1".parse().expect("an address");
        let retried = [
            ProxyError::ConnectFailure { upstream },
            ProxyError::Reset { upstream },
            ProxyError::Timeout { upstream },
        ];
        for error in retried {
            assert!(error.may_retry(), "{error}");
            assert_eq!(error.side(), Side::Upstream);
            assert_eq!(error.upstream(), Some(upstream));
        }
        let final_ = [
            ProxyError::Overflow,
            ProxyError::DropOverload,
            ProxyError::NoHealthyUpstream { explanation: None },
            ProxyError::RequestBodyFailed(BodyFailure::Malformed),
            ProxyError::NoRoute,
        ];
        for error in final_ {
            assert!(!error.may_retry(), "{error}");
        }
        assert_eq!(
            ProxyError::RequestBodyFailed(BodyFailure::ClientGone).side(),
            Side::Downstream
        );
    }

    #[test]
    fn codec_refusals_close_http1_connections_only() {
        let closed = |r: &Response<ProxyBody>| r.headers().get(header::CONNECTION).is_some();
        let h1 = reply(ProxyError::HeadersTooLarge, Version::HTTP_11);
        assert_eq!(h1.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(closed(&h1));
        assert!(!closed(&reply(
            ProxyError::HeadersTooLarge,
            Version::HTTP_2
        )));
        assert!(closed(&reply(
            ProxyError::Http10NotAccepted,
            Version::HTTP_10
        )));
        assert!(!closed(&reply(ProxyError::NoRoute, Version::HTTP_11)));
    }

    #[test]
    fn overflow_says_overloaded_unless_suppressed() {
        let overloaded = |suppress| {
            ProxyError::Overflow
                .into_response(ReplyTo {
                    grpc: false,
                    version: Version::HTTP_11,
                    suppress_envoy_headers: suppress,
                })
                .headers()
                .contains_key("x-envoy-overloaded")
        };
        assert!(overloaded(false));
        assert!(!overloaded(true));
    }
}
