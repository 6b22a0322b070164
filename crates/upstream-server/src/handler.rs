//! Answers one request: failure injection and latency first, then the endpoint the path names.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::sync::watch;

use crate::stats::{ServerState, Verdict};
use crate::websocket;
use crate::{
    IMMEDIATE_HEALTH_CHECK_FAIL_HEADER, INJECTED_FAILURE_HEADER, SERVER_HEADER_VALUE,
    UPSTREAM_NAME_HEADER, echo, grpc, health,
};

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// Bodies larger than this are refused (413): the server is a fixture, not a sink.
const MAX_REQUEST_BODY: usize = 64 * 1024 * 1024;
/// Upper bound of `/bytes/<n>`.
const MAX_BYTES: usize = 64 * 1024 * 1024;
/// Upper bound of `/delay/<ms>`, so a typo cannot hold a connection for days.
const MAX_DELAY: Duration = Duration::from_secs(300);

/// `/bytes/<n>` up to this size is served from a static buffer without allocating, which keeps
/// the upstream cheap in the load benchmark.
const FILLER_LEN: usize = 64 * 1024;
static FILLER: [u8; FILLER_LEN] = [b'x'; FILLER_LEN];

/// What a request needs to know about its connection.
pub(crate) struct ConnInfo {
    pub(crate) id: u64,
    pub(crate) remote: std::net::SocketAddr,
    pub(crate) tls: Option<crate::echo::EchoedTls>,
    /// Handed to upgraded connections (WebSocket), which outlive the HTTP connection's task.
    pub(crate) shutdown: watch::Receiver<bool>,
}

pub(crate) async fn handle(
    state: Arc<ServerState>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, health::ResetOnPurpose> {
    // Health checks answer from their script: no failure injection, latency or counting.
    let mut response = if health::is_health_request(&req) {
        health::answer(&state.health, req, conn.shutdown.clone()).await?
    } else {
        serve(&state, &conn, req).await
    };
    let headers = response.headers_mut();
    // The name was checked to be a valid header value when the server started.
    if let Ok(name) = HeaderValue::from_str(&state.name) {
        headers.insert(UPSTREAM_NAME_HEADER, name);
    }
    headers.insert(
        header::SERVER,
        HeaderValue::from_static(SERVER_HEADER_VALUE),
    );
    Ok(response)
}

async fn serve(state: &ServerState, conn: &ConnInfo, mut req: Request<Incoming>) -> Response<Body> {
    let verdict = state.admit(req.uri().path());
    if let Some(latency) = state.latency {
        tokio::time::sleep(latency).await;
    }
    let is_grpc = grpc::is_grpc(req.headers());
    match verdict {
        Verdict::Fail(status) => {
            drain(req.into_body()).await;
            let mut response = if is_grpc {
                grpc::error(grpc::UNAVAILABLE, "injected failure")
            } else {
                text(
                    status_or_500(status),
                    format!("injected failure from {}\n", state.name),
                )
            };
            response
                .headers_mut()
                .insert(INJECTED_FAILURE_HEADER, HeaderValue::from_static("true"));
            response
        }
        Verdict::Serve if websocket::is_upgrade(&req) => {
            websocket::accept(&mut req, conn.shutdown.clone())
        }
        Verdict::Serve => {
            let (parts, body) = req.into_parts();
            match Limited::new(body, MAX_REQUEST_BODY).collect().await {
                Ok(collected) => {
                    let body = collected.to_bytes();
                    if is_grpc {
                        grpc::unary_echo(&parts.headers, body)
                    } else {
                        route(state, conn, &parts, body).await
                    }
                }
                Err(e) => {
                    let status = if e.is::<http_body_util::LengthLimitError>() {
                        StatusCode::PAYLOAD_TOO_LARGE
                    } else {
                        StatusCode::BAD_REQUEST
                    };
                    text(status, format!("reading the request body: {e}\n"))
                }
            }
        }
    }
}

async fn route(
    state: &ServerState,
    conn: &ConnInfo,
    parts: &http::request::Parts,
    body: Bytes,
) -> Response<Body> {
    let path = parts.uri.path();
    if path == "/echo" {
        let echoed = echo::describe(
            &state.name,
            parts,
            &body,
            conn.id,
            conn.remote,
            conn.tls.as_ref(),
        );
        return match serde_json::to_vec_pretty(&echoed) {
            Ok(json) => with_type(Response::new(full(Bytes::from(json))), "application/json"),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        };
    }
    if path == "/immediate-health-check-fail" {
        let mut response = text(StatusCode::OK, format!("failing from {}\n", state.name));
        response.headers_mut().insert(
            IMMEDIATE_HEALTH_CHECK_FAIL_HEADER,
            HeaderValue::from_static("true"),
        );
        return response;
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return match code.parse::<u16>().ok().and_then(final_status) {
            Some(status) => text(status, format!("{}\n", status.as_u16())),
            None => text(
                StatusCode::BAD_REQUEST,
                format!("/status/<code>: {code:?} is not a final status (200..=999)\n"),
            ),
        };
    }
    if let Some(ms) = path.strip_prefix("/delay/") {
        return match ms.parse::<u64>().map(Duration::from_millis) {
            Ok(delay) if delay <= MAX_DELAY => {
                tokio::time::sleep(delay).await;
                text(StatusCode::OK, format!("delayed {ms} ms\n"))
            }
            _ => text(
                StatusCode::BAD_REQUEST,
                format!("/delay/<ms>: {ms:?} is not a number of milliseconds up to 300000\n"),
            ),
        };
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        return match n.parse::<usize>() {
            Ok(n) if n <= MAX_BYTES => {
                with_type(Response::new(full(filler(n))), "application/octet-stream")
            }
            _ => text(
                StatusCode::BAD_REQUEST,
                format!("/bytes/<n>: {n:?} is not a size up to {MAX_BYTES}\n"),
            ),
        };
    }
    if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
        let mut response = Response::new(full(body));
        if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type.clone());
        }
        return response;
    }
    text(StatusCode::OK, format!("hello from {}\n", state.name))
}

fn filler(n: usize) -> Bytes {
    match FILLER.get(..n) {
        Some(slice) => Bytes::from_static(slice),
        None => Bytes::from(vec![b'x'; n]),
    }
}

/// Reads and discards a body, so that an HTTP/1.1 connection stays reusable after an early
/// answer. Errors do not matter here: the answer is already decided.
async fn drain(body: Incoming) {
    let _ = Limited::new(body, MAX_REQUEST_BODY).collect().await;
}

fn final_status(code: u16) -> Option<StatusCode> {
    if code >= 200 {
        StatusCode::from_u16(code).ok()
    } else {
        None
    }
}

/// The config was validated at start, so the fallback is never used in practice.
fn status_or_500(code: u16) -> StatusCode {
    final_status(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub(crate) fn full(body: Bytes) -> Body {
    Full::new(body).boxed()
}

pub(crate) fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = with_type(
        Response::new(full(Bytes::from(body))),
        "text/plain; charset=utf-8",
    );
    *response.status_mut() = status;
    response
}

fn with_type(mut response: Response<Body>, content_type: &'static str) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_has_the_requested_length_small_and_large() {
        assert_eq!(filler(0).len(), 0);
        assert_eq!(filler(1024).len(), 1024);
        assert_eq!(filler(FILLER_LEN).len(), FILLER_LEN);
        assert_eq!(filler(FILLER_LEN + 1).len(), FILLER_LEN + 1);
    }

    #[test]
    fn only_final_statuses_are_accepted() {
        assert_eq!(final_status(204), Some(StatusCode::NO_CONTENT));
        assert_eq!(final_status(101), None);
        assert_eq!(final_status(1000), None);
    }
}
