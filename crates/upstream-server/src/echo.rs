//! [`EchoedRequest`]: the JSON body of `/echo`, the request as the upstream received it. Tests
//! parse it to check what a proxy forwarded (`x-forwarded-for`, `x-request-id`, rewritten path or
//! host, the HTTP version of the upstream connection, whether connections are reused).

use serde::{Deserialize, Serialize};

/// A request as received by the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoedRequest {
    /// The name of the upstream that answered.
    pub upstream: String,
    pub method: String,
    /// The request target as received (origin form over HTTP/1.1, usually absolute over h2).
    pub uri: String,
    pub path: String,
    pub query: Option<String>,
    /// `:authority` (HTTP/2) or the `Host` header (HTTP/1.1).
    pub authority: Option<String>,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Lower-case names, values decoded lossily as UTF-8; several values of one name are kept (in
    /// order) and listed together.
    pub headers: Vec<(String, String)>,
    pub body_length: usize,
    /// The body, when it is valid UTF-8.
    pub body: Option<String>,
    /// The number of the downstream connection on this upstream (starting at 1): two requests
    /// with the same number came over the same connection.
    pub connection: u64,
    /// The peer address of that connection.
    pub remote_addr: String,
    /// What the connection's TLS said (`None`: plaintext).
    #[serde(default)]
    pub tls: Option<EchoedTls>,
}

/// The TLS of the connection a request came over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoedTls {
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// The ALPN protocol agreed on.
    pub alpn: Option<String>,
    /// The URI SANs of the client's certificate (empty without one).
    pub peer_uri_sans: Vec<String>,
}

impl EchoedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Describes a request whose body has been read.
pub(crate) fn describe(
    upstream: &str,
    parts: &http::request::Parts,
    body: &[u8],
    connection: u64,
    remote_addr: std::net::SocketAddr,
    tls: Option<&EchoedTls>,
) -> EchoedRequest {
    let authority = parts.uri.authority().map(|a| a.to_string()).or_else(|| {
        parts
            .headers
            .get(http::header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
    });
    EchoedRequest {
        upstream: upstream.to_owned(),
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        authority,
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body_length: body.len(),
        body: std::str::from_utf8(body).ok().map(str::to_owned),
        connection,
        remote_addr: remote_addr.to_string(),
        tls: tls.cloned(),
    }
}
