//! HTTP health checks over HTTP/1.1 or h2c (`codec_client_type`): one request per check on a
//! connection kept between checks (`reuse_connection`), judged by the response status
//! (`expected_statuses`, `retriable_statuses`) and `x-envoy-degraded`.
//!
//! `x-envoy-immediate-health-check-fail` on a check's answer decides nothing, as in Envoy: its
//! HTTP checker reads it only when the status already failed the check, to set
//! `/excluded_via_immediate_hc_fail`, which is not implemented. The header fails a host at once
//! when it comes back on a proxied request (the data plane signals the session).

use bytes::Bytes;
use http::header::{CONNECTION, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use outrider_model::HttpHealthCheck;
use tokio::net::TcpStream;

use crate::outcome::{CheckOutcome, FailureKind, error_chain};
use crate::target::Target;

/// Envoy's health checker User-Agent.
pub(crate) const USER_AGENT_VALUE: &str = "Envoy/HC";
const DEGRADED_HEADER: &str = "x-envoy-degraded";

enum Connection {
    Http1(http1::SendRequest<Empty<Bytes>>),
    Http2(http2::SendRequest<Empty<Bytes>>),
}

impl Connection {
    fn is_closed(&self) -> bool {
        match self {
            Self::Http1(s) => s.is_closed(),
            Self::Http2(s) => s.is_closed(),
        }
    }
}

pub(crate) struct HttpChecker {
    config: HttpHealthCheck,
    target: Target,
    reuse_connection: bool,
    connection: Option<Connection>,
}

impl HttpChecker {
    pub(crate) fn new(config: HttpHealthCheck, target: Target, reuse_connection: bool) -> Self {
        Self {
            config,
            target,
            reuse_connection,
            connection: None,
        }
    }

    /// Drops the connection (after a timeout: it may hold a request that never finished).
    pub(crate) fn reset(&mut self) {
        self.connection = None;
    }

    pub(crate) async fn check(&mut self) -> CheckOutcome {
        let mut connection = match self.connection.take() {
            Some(c) if !c.is_closed() => c,
            _ => match self.connect().await {
                Ok(c) => c,
                Err(outcome) => return outcome,
            },
        };
        let request = match self.request(matches!(connection, Connection::Http2(_))) {
            Ok(r) => r,
            // Only an unusable configured value can get here; the host is not to blame, but
            // the check cannot pass.
            Err(reason) => return CheckOutcome::active(reason),
        };
        let sent = match &mut connection {
            Connection::Http1(s) => s.send_request(request).await,
            Connection::Http2(s) => s.send_request(request).await,
        };
        let response = match sent {
            Ok(r) => r,
            Err(e) => return CheckOutcome::network(format!("request: {}", error_chain(&e))),
        };
        let (parts, mut body) = response.into_parts();
        // The whole response decides (and an HTTP/1.1 connection is reusable only once read).
        while let Some(frame) = body.frame().await {
            if let Err(e) = frame {
                return CheckOutcome::network(format!("response body: {}", error_chain(&e)));
            }
        }
        let outcome = self.judge(parts.status.as_u16(), &parts.headers);
        if self.reuse_connection && !closes(parts.version, &parts.headers) {
            self.connection = Some(connection);
        }
        outcome
    }

    async fn connect(&self) -> Result<Connection, CheckOutcome> {
        let stream = TcpStream::connect(self.target.addr)
            .await
            .map_err(|e| CheckOutcome::network(format!("connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(stream);
        let handshake =
            |e: hyper::Error| CheckOutcome::network(format!("HTTP handshake: {}", error_chain(&e)));
        if self.config.http2 {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(handshake)?;
            // Ends when the sender is dropped or the host closes the connection.
            tokio::spawn(connection);
            Ok(Connection::Http2(sender))
        } else {
            let (sender, connection) = http1::handshake(io).await.map_err(handshake)?;
            tokio::spawn(connection);
            Ok(Connection::Http1(sender))
        }
    }

    fn request(&self, http2: bool) -> Result<Request<Empty<Bytes>>, String> {
        let method = Method::from_bytes(self.config.method.as_bytes())
            .map_err(|_| format!("method {:?} is not valid", self.config.method))?;
        let path = &self.config.path;
        let host = HeaderValue::from_str(&self.target.authority).map_err(|_| {
            format!(
                "host {:?} is not a valid header value",
                self.target.authority
            )
        })?;
        // HTTP/2 takes `:authority` from the URI; a name that cannot be one (a cluster name
        // with `|`, say) goes in `host` instead, with the address as the URI's authority.
        let uri = if http2 {
            format!("http://{}{path}", self.target.authority)
                .parse::<Uri>()
                .or_else(|_| format!("http://{}{path}", self.target.addr).parse())
        } else {
            path.parse()
        }
        .map_err(|_| format!("path {path:?} is not a valid request target"))?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Empty::new())
            .map_err(|e| format!("building the request: {e}"))?;
        let authority_in_uri = request
            .uri()
            .authority()
            .is_some_and(|a| a.as_str() == self.target.authority);
        let headers = request.headers_mut();
        if !(http2 && authority_in_uri) {
            headers.insert(HOST, host);
        }
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        // Health-check headers are literal (the model refuses command operators there).
        self.config
            .request_headers
            .apply(headers, &mut std::iter::empty());
        Ok(request)
    }

    fn judge(&self, status: u16, headers: &HeaderMap) -> CheckOutcome {
        let within = |ranges: &[std::ops::Range<u16>]| ranges.iter().any(|r| r.contains(&status));
        if !within(&self.config.expected_statuses) {
            return CheckOutcome::Failed {
                kind: FailureKind::Active,
                retriable: within(&self.config.retriable_statuses),
                reason: format!("status {status}"),
            };
        }
        CheckOutcome::Passed {
            degraded: headers.contains_key(DEGRADED_HEADER),
        }
    }
}

/// Whether the host asked to close the connection after this response.
fn closes(version: Version, headers: &HeaderMap) -> bool {
    let connection = |token: &str| {
        headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match version {
        Version::HTTP_10 => !connection("keep-alive"),
        Version::HTTP_11 => connection("close"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrider_model::{AppendAction, HeaderMutations, HeaderToAdd};

    fn checker(http2: bool) -> HttpChecker {
        HttpChecker::new(
            HttpHealthCheck {
                host: String::new(),
                path: "/healthz".into(),
                method: "GET".into(),
                expected_statuses: std::iter::once(200..201).collect(),
                retriable_statuses: std::iter::once(503..504).collect(),
                http2,
                request_headers: HeaderMutations {
                    add: vec![
                        HeaderToAdd {
                            name: http::HeaderName::from_static("x-check"),
                            value: outrider_model::HeaderText::Literal(HeaderValue::from_static(
                                "1",
                            )),
                            action: AppendAction::OverwriteIfExistsOrAdd,
                            keep_empty_value: false,
                        },
                        HeaderToAdd {
                            name: USER_AGENT,
                            value: outrider_model::HeaderText::Literal(HeaderValue::from_static(
                                "custom",
                            )),
                            action: AppendAction::OverwriteIfExists,
                            keep_empty_value: false,
                        },
                    ],
                    remove: vec![],
                },
            },
            Target {
                addr: "127.0.0.1:8080".parse().expect("address"),
                authority: "backend".into(),
            },
            true,
        )
    }

    #[test]
    fn requests_carry_host_user_agent_and_configured_headers() {
        let request = checker(false).request(false).expect("request");
        assert_eq!(request.uri(), "/healthz");
        assert_eq!(request.headers()[HOST], "backend");
        assert_eq!(request.headers()["x-check"], "1");
        // Overwritten because it existed.
        assert_eq!(request.headers()[USER_AGENT], "custom");

        let request = checker(true).request(true).expect("request");
        assert_eq!(request.uri(), "http://backend/healthz");
        assert!(request.headers().get(HOST).is_none());
    }

    #[test]
    fn an_authority_that_cannot_be_in_a_uri_goes_in_host() {
        let mut c = checker(true);
        c.target.authority = "outbound|80||svc".into();
        let request = c.request(true).expect("request");
        assert_eq!(request.uri(), "http://127.0.0.1:8080/healthz");
        assert_eq!(request.headers()[HOST], "outbound|80||svc");
    }

    #[test]
    fn statuses_and_degraded_header_decide() {
        let c = checker(false);
        let mut headers = HeaderMap::new();
        assert_eq!(c.judge(200, &headers), CheckOutcome::passed());
        headers.insert(DEGRADED_HEADER, HeaderValue::from_static("1"));
        assert_eq!(
            c.judge(200, &headers),
            CheckOutcome::Passed { degraded: true }
        );
        assert!(matches!(
            c.judge(503, &headers),
            CheckOutcome::Failed {
                kind: FailureKind::Active,
                retriable: true,
                ..
            }
        ));
        assert!(matches!(
            c.judge(204, &headers),
            CheckOutcome::Failed {
                retriable: false,
                ..
            }
        ));
    }

    #[test]
    fn the_immediate_fail_header_leaves_the_status_to_decide() {
        // Envoy's HTTP checker: a passing status passes, a failing one fails as it would
        // without the header (retriable stays retriable).
        let c = checker(false);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-envoy-immediate-health-check-fail",
            HeaderValue::from_static("true"),
        );
        assert_eq!(c.judge(200, &headers), CheckOutcome::passed());
        assert!(matches!(
            c.judge(503, &headers),
            CheckOutcome::Failed {
                kind: FailureKind::Active,
                retriable: true,
                ..
            }
        ));
        assert!(matches!(
            c.judge(500, &headers),
            CheckOutcome::Failed {
                kind: FailureKind::Active,
                retriable: false,
                ..
            }
        ));
    }

    #[test]
    fn connection_close_rules() {
        let mut headers = HeaderMap::new();
        assert!(!closes(Version::HTTP_11, &headers));
        assert!(closes(Version::HTTP_10, &headers));
        headers.insert(CONNECTION, HeaderValue::from_static("Keep-Alive"));
        assert!(!closes(Version::HTTP_10, &headers));
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade, close"));
        assert!(closes(Version::HTTP_11, &headers));
        assert!(!closes(Version::HTTP_2, &headers));
    }
}
