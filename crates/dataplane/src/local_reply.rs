//! Responses the proxy makes itself (no route, no healthy upstream, overflow, timeouts…), with
//! Envoy's bodies and response flags, and gRPC's trailers-only form for gRPC requests.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};

use crate::stream_body::StreamBody;

/// The body of every request and response the proxy sends on: one from the other side, or
/// one it made.
pub(crate) type ProxyBody = Either<StreamBody, Full<Bytes>>;

/// Envoy's response flags (XDS-SPEC §4), for the access log and stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseFlag {
    NoHealthyUpstream,
    UpstreamConnectFailure,
    UpstreamOverflow,
    NoRoute,
    NoClusterFound,
    UpstreamRetryLimitExceeded,
    UpstreamRequestTimeout,
    UpstreamConnectionTermination,
    /// Dropped by the cluster's EDS `drop_overloads`.
    DropOverload,
    /// The stream idle timeout ended it.
    StreamIdleTimeout,
    /// The client's connection closed before the response was done.
    DownstreamConnectionTermination,
    /// The client reset its HTTP/2 stream before the response was done.
    DownstreamRemoteReset,
    /// The request broke a codec rule (header size or count, underscores, HTTP/1.0).
    DownstreamProtocolError,
}

impl ResponseFlag {
    pub(crate) fn code(self) -> &'static str {
        match self {
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamConnectFailure => "UF",
            ResponseFlag::UpstreamOverflow => "UO",
            ResponseFlag::NoRoute => "NR",
            ResponseFlag::NoClusterFound => "NC",
            ResponseFlag::UpstreamRetryLimitExceeded => "URX",
            ResponseFlag::UpstreamRequestTimeout => "UT",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::DropOverload => "DO",
            ResponseFlag::StreamIdleTimeout => "SI",
            ResponseFlag::DownstreamConnectionTermination => "DC",
            ResponseFlag::DownstreamRemoteReset => "DR",
            ResponseFlag::DownstreamProtocolError => "DPE",
        }
    }
}

/// What the access log needs to know of a response that the response itself does not say:
/// Envoy's response flag and the upstream host that answered. Carried in its extensions.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AccessInfo {
    pub flag: Option<ResponseFlag>,
    pub upstream: Option<std::net::SocketAddr>,
    /// The client went away before it could be answered: logged with code 0, as Envoy logs
    /// a stream that sent no response.
    pub unanswered: bool,
}

pub(crate) trait Flagged {
    /// Marks the response with a response flag (and the upstream host, if one was involved).
    fn flagged(self, flag: ResponseFlag, upstream: Option<std::net::SocketAddr>) -> Self;
    /// Marks the response as an upstream's, without a flag.
    fn unflagged(self, upstream: Option<std::net::SocketAddr>) -> Self;
}

impl<B> Flagged for Response<B> {
    fn flagged(mut self, flag: ResponseFlag, upstream: Option<std::net::SocketAddr>) -> Self {
        tracing::debug!(
            flag = flag.code(),
            status = self.status().as_u16(),
            "local reply"
        );
        self.extensions_mut().insert(AccessInfo {
            flag: Some(flag),
            upstream,
            unanswered: false,
        });
        self
    }

    fn unflagged(mut self, upstream: Option<std::net::SocketAddr>) -> Self {
        self.extensions_mut().insert(AccessInfo {
            flag: None,
            upstream,
            unanswered: false,
        });
        self
    }
}

/// HTTP status → gRPC status, as Envoy maps local replies to gRPC requests (its
/// `Grpc::Utility::httpToGrpcStatus`).
pub(crate) fn grpc_status(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

/// A local reply. For a gRPC request, a trailers-only response: HTTP 200 with `grpc-status`
/// and `grpc-message` in the headers, as Envoy sends.
pub(crate) fn local_reply(
    status: StatusCode,
    body: &'static str,
    grpc: bool,
    extra: Option<(&'static str, String)>,
) -> Response<ProxyBody> {
    if grpc {
        return grpc_reply(grpc_status(status), body, extra);
    }
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *response.status_mut() = status;
    if !body.is_empty() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    with_extra(response, extra)
}

/// A trailers-only gRPC reply with `status` and `message`.
pub(crate) fn grpc_reply(
    status: u8,
    message: &'static str,
    extra: Option<(&'static str, String)>,
) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(u16::from(status)));
    if let Ok(message) = HeaderValue::from_str(message) {
        headers.insert("grpc-message", message);
    }
    with_extra(response, extra)
}

fn with_extra(
    mut response: Response<ProxyBody>,
    extra: Option<(&'static str, String)>,
) -> Response<ProxyBody> {
    if let Some((name, value)) = extra
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        response.headers_mut().insert(name, value);
    }
    response
}
