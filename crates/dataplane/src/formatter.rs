//! Values of Envoy's command operators (`%DOWNSTREAM_REMOTE_ADDRESS%`, `%REQ(x)%` …) for one
//! request, computed when it is routed (see `outrider_model::Format` for those built).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::SystemTime;

use http::{HeaderValue, Version};
use outrider_model::{Command, Format, FormatPart};

use crate::access_log::{protocol, rfc3339_millis};
use crate::routing::RequestView;

/// What the operators read of a request.
pub(crate) struct FormatContext<'a> {
    pub request: &'a RequestView<'a>,
    /// The client's address as the connection manager decided it.
    pub remote: SocketAddr,
    /// The connection's peer.
    pub direct_remote: SocketAddr,
    pub local: SocketAddr,
    pub version: Version,
    pub start: SystemTime,
}

/// `format` for the request in `cx`, as a header value (a part that cannot be one is left
/// out; a missing request header is empty, and an empty value is not added unless
/// `keep_empty_value`, as in Envoy).
pub(crate) fn render(format: &Format, cx: &FormatContext<'_>) -> HeaderValue {
    let mut out = String::new();
    for part in &format.0 {
        match part {
            FormatPart::Text(text) => out.push_str(text),
            FormatPart::Command(command) => push_command(&mut out, command, cx),
        }
    }
    HeaderValue::from_str(&out).unwrap_or(HeaderValue::from_static(""))
}

fn push_command(out: &mut String, command: &Command, cx: &FormatContext<'_>) {
    let address = |addr: SocketAddr, with_port: bool| {
        if with_port {
            addr.to_string()
        } else {
            addr.ip().to_string()
        }
    };
    match command {
        Command::DownstreamRemoteAddress { with_port } => {
            out.push_str(&address(cx.remote, *with_port));
        }
        Command::DownstreamRemotePort => out.push_str(&cx.remote.port().to_string()),
        Command::DownstreamDirectRemoteAddress { with_port } => {
            out.push_str(&address(cx.direct_remote, *with_port));
        }
        Command::DownstreamLocalAddress { with_port } => {
            out.push_str(&address(cx.local, *with_port));
        }
        Command::DownstreamLocalPort => out.push_str(&cx.local.port().to_string()),
        Command::Hostname => out.push_str(hostname()),
        Command::Protocol => out.push_str(protocol(cx.version)),
        Command::StartTime => out.push_str(&rfc3339_millis(cx.start)),
        Command::Request {
            name,
            alternative,
            max_length,
        } => {
            let value = cx.request.first_header_value(name).or_else(|| {
                alternative
                    .as_deref()
                    .and_then(|alt| cx.request.first_header_value(alt))
            });
            if let Some(value) = value {
                match max_length {
                    Some(max) => out.extend(value.chars().take(*max)),
                    None => out.push_str(&value),
                }
            }
        }
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
