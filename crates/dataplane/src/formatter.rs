//! Values of Envoy's command operators (`%DOWNSTREAM_REMOTE_ADDRESS%`, `%REQ(x)%`,
//! `%RESPONSE_CODE%` …) for one request: when it is routed (header values) or when it ends
//! (access logs). See `outrider_model::Format` for the operators built.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Version};
use outrider_model::{Command, Format, FormatPart, HeaderOperand};

use crate::downstream_io::TlsSummary;
use crate::local_reply::ResponseFlag;
use crate::routing::RequestView;
use crate::start_time::{push_formatted, rfc3339_millis};

/// What the operators read of a request.
pub(crate) struct FormatContext<'a> {
    /// `None`: the codec refused the request before its head was whole (its headers print
    /// as `-`, as in Envoy).
    pub request: Option<&'a RequestView<'a>>,
    /// The client's address as the connection manager decided it.
    pub remote: SocketAddr,
    /// The connection's peer.
    pub direct_remote: SocketAddr,
    pub local: SocketAddr,
    /// The request's TLS connection.
    pub tls: Option<&'a TlsSummary>,
    pub version: Version,
    pub start: SystemTime,
    /// What is known once the request has ended: access logs only.
    pub end: Option<&'a StreamEnd<'a>>,
}

/// How a request ended, for the access log.
pub(crate) struct StreamEnd<'a> {
    /// 0 when no response was sent.
    pub status: u16,
    pub flag: Option<ResponseFlag>,
    /// `grpc-status` of the response's trailers, else of its headers.
    pub grpc_status: Option<u32>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration: Duration,
    pub upstream: Option<SocketAddr>,
    pub cluster: Option<&'a str>,
    pub route: Option<&'a str>,
    pub response_headers: &'a HeaderMap,
}

/// One operator's value.
pub(crate) enum Operand<'a> {
    Text(Cow<'a, str>),
    Number(u64),
}

impl Operand<'_> {
    pub(crate) fn push_to(&self, out: &mut String) {
        match self {
            Operand::Text(text) => out.push_str(text),
            Operand::Number(n) => {
                use std::fmt::Write as _;
                let _ = write!(out, "{n}");
            }
        }
    }
}

/// `format` for the request in `cx`, as a header value (a part that cannot be one is left
/// out; a missing value is empty, and an empty value is not added unless `keep_empty_value`,
/// as in Envoy).
pub(crate) fn render(format: &Format, cx: &FormatContext<'_>) -> HeaderValue {
    let mut out = String::new();
    for part in &format.0 {
        match part {
            FormatPart::Text(text) => out.push_str(text),
            FormatPart::Command(command) => {
                if let Some(value) = operand(command, cx) {
                    value.push_to(&mut out);
                }
            }
        }
    }
    HeaderValue::from_str(&out).unwrap_or(HeaderValue::from_static(""))
}

/// The value of `command` for the request in `cx`; `None` when it has none (Envoy prints `-`
/// in a text log, `null` in a JSON one).
pub(crate) fn operand<'a>(command: &Command, cx: &FormatContext<'a>) -> Option<Operand<'a>> {
    let address = |addr: SocketAddr, with_port: bool| {
        Operand::Text(Cow::Owned(if with_port {
            addr.to_string()
        } else {
            addr.ip().to_string()
        }))
    };
    let text = |s: &'a str| Some(Operand::Text(Cow::Borrowed(s)));
    let end = cx.end;
    match command {
        Command::DownstreamRemoteAddress { with_port } => Some(address(cx.remote, *with_port)),
        Command::DownstreamRemotePort => Some(Operand::Number(u64::from(cx.remote.port()))),
        Command::DownstreamDirectRemoteAddress { with_port } => {
            Some(address(cx.direct_remote, *with_port))
        }
        Command::DownstreamLocalAddress { with_port } => Some(address(cx.local, *with_port)),
        Command::DownstreamLocalPort => Some(Operand::Number(u64::from(cx.local.port()))),
        Command::Hostname => text(hostname()),
        Command::Protocol => text(protocol(cx.version)),
        Command::StartTime(None) => Some(Operand::Text(Cow::Owned(rfc3339_millis(cx.start)))),
        Command::StartTime(Some(format)) => {
            let mut out = String::new();
            push_formatted(&mut out, format, cx.start);
            Some(Operand::Text(Cow::Owned(out)))
        }
        Command::Request(operand) => {
            header_operand(operand, |name| cx.request?.first_header_value(name))
        }
        Command::Response(operand) => {
            let headers = end?.response_headers;
            header_operand(operand, |name| {
                headers
                    .get(name)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()))
            })
        }
        Command::ResponseCode => Some(Operand::Number(u64::from(end?.status))),
        // Envoy prints `-` for none, in JSON too (never `null`, never omitted).
        Command::ResponseFlags => text(end?.flag.map_or("-", |flag| flag.code())),
        Command::BytesReceived => Some(Operand::Number(end?.bytes_received)),
        Command::BytesSent => Some(Operand::Number(end?.bytes_sent)),
        Command::Duration => Some(Operand::Number(
            u64::try_from(end?.duration.as_millis()).unwrap_or(u64::MAX),
        )),
        Command::UpstreamHost => end?.upstream.map(|a| address(a, true)),
        Command::UpstreamCluster => end?.cluster.and_then(text),
        Command::RouteName => end?.route.filter(|name| !name.is_empty()).and_then(text),
        Command::RequestedServerName => cx.tls?.sni.as_deref().and_then(text),
        Command::DownstreamTlsVersion => cx.tls?.version.and_then(text),
        Command::DownstreamTlsCipher => cx.tls?.cipher.and_then(text),
        Command::DownstreamPeerUriSan => cx.tls?.peer_uri_sans.as_deref().and_then(text),
        Command::DownstreamPeerDnsSan => cx.tls?.peer_dns_sans.as_deref().and_then(text),
    }
}

/// `%REQ(name?alternative):max_length%` and `%RESP(...)%` over `lookup`.
fn header_operand<'a>(
    operand: &HeaderOperand,
    lookup: impl Fn(&str) -> Option<Cow<'a, str>>,
) -> Option<Operand<'a>> {
    let value =
        lookup(&operand.name).or_else(|| operand.alternative.as_deref().and_then(&lookup))?;
    Some(Operand::Text(match operand.max_length {
        Some(max) if value.chars().count() > max => Cow::Owned(value.chars().take(max).collect()),
        _ => value,
    }))
}

/// Envoy's `%PROTOCOL%`.
pub(crate) fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// This host's name, read once (Envoy's `%HOSTNAME%`).
fn hostname() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_string())
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::LazyLock;
    use std::time::UNIX_EPOCH;

    use super::*;

    /// A request that ended with `status`, nothing else known.
    pub(crate) fn ended(status: u16) -> StreamEnd<'static> {
        static NO_HEADERS: LazyLock<HeaderMap> = LazyLock::new(HeaderMap::new);
        StreamEnd {
            status,
            flag: None,
            grpc_status: None,
            bytes_received: 0,
            bytes_sent: 0,
            duration: Duration::ZERO,
            upstream: None,
            cluster: None,
            route: None,
            response_headers: &NO_HEADERS,
        }
    }

    /// Runs `check` on the context of a request to `uri` with `headers` that ended as `end`.
    pub(crate) fn with_request(
        uri: &str,
        headers: HeaderMap,
        end: &StreamEnd<'_>,
        check: impl FnOnce(&FormatContext<'_>),
    ) {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.uri = uri.parse().expect("a uri");
        parts.headers = headers;
        let view = RequestView::from_parts(&parts, false);
        let addr = "127.0.0.1:1000".parse().expect("an address");
        check(&FormatContext {
            request: Some(&view),
            remote: addr,
            direct_remote: addr,
            local: addr,
            tls: None,
            version: Version::HTTP_11,
            start: UNIX_EPOCH,
            end: Some(end),
        });
    }
}
