//! The health endpoints a proxy's active health checks probe: `/healthz` (HTTP, any method;
//! also what a TCP check can send as its payload) and gRPC `grpc.health.v1.Health/Check`. They
//! answer from a script the test controls, so a test can decide the outcome of each check in
//! turn: queued answers first, in order, then the standing answer; with no standing answer a
//! check waits (counted in [`HealthScript::waiting`]) until an answer is queued. Health requests
//! skip failure injection and latency, and are not counted as traffic.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::sync::{Notify, watch};

use crate::handler::{Body, text};

/// Path of the HTTP health endpoint.
pub const HEALTH_PATH: &str = "/healthz";
/// Path of the gRPC health check method.
pub const GRPC_HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// The header Envoy reads as "healthy but degraded".
const DEGRADED_HEADER: &str = "x-envoy-degraded";
/// A health check request body is one small message.
const MAX_HEALTH_BODY: usize = 64 * 1024;

/// How one health check is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthAnswer {
    /// HTTP: this status. gRPC: SERVING for a 2xx status, NOT_SERVING otherwise.
    Status(u16),
    /// HTTP 200 with `x-envoy-degraded` (gRPC: SERVING; gRPC health has no "degraded").
    Degraded,
    /// No answer: the connection (HTTP/1.1) or the stream (HTTP/2) is reset.
    Reset,
}

/// What the last health check request looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRequest {
    pub method: String,
    pub path: String,
    /// `:authority`, or the Host header.
    pub authority: Option<String>,
    /// Lower-case names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The `service` of a gRPC check (`None` for HTTP).
    pub grpc_service: Option<String>,
}

#[derive(Debug)]
struct Script {
    queued: VecDeque<HealthAnswer>,
    standing: Option<HealthAnswer>,
}

/// The answers of one server's health endpoints, and what it has seen.
#[derive(Debug)]
pub(crate) struct HealthScript {
    // A plain mutex: held for a queue operation, never across an await.
    script: Mutex<Script>,
    changed: Notify,
    answered: AtomicU64,
    waiting: AtomicUsize,
    last_request: Mutex<Option<HealthRequest>>,
}

impl Default for HealthScript {
    fn default() -> Self {
        Self {
            script: Mutex::new(Script {
                queued: VecDeque::new(),
                standing: Some(HealthAnswer::Status(200)),
            }),
            changed: Notify::new(),
            answered: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            last_request: Mutex::new(None),
        }
    }
}

impl HealthScript {
    pub(crate) fn set_standing(&self, answer: Option<HealthAnswer>) {
        self.lock().standing = answer;
        self.changed.notify_waiters();
    }

    pub(crate) fn queue(&self, answers: impl IntoIterator<Item = HealthAnswer>) {
        self.lock().queued.extend(answers);
        self.changed.notify_waiters();
    }

    pub(crate) fn answered(&self) -> u64 {
        self.answered.load(Ordering::Acquire)
    }

    /// Checks waiting for an answer right now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    pub(crate) fn last_request(&self) -> Option<HealthRequest> {
        self.last_request
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        // A poisoned lock only means a panic elsewhere mid-update; the queue is still usable.
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next answer, waiting for one if the script has none; `None` if the server stops
    /// first.
    async fn next_answer(&self, shutdown: &mut watch::Receiver<bool>) -> Option<HealthAnswer> {
        let mut waiting: Option<WaitingGuard<'_>> = None;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before looking, so an answer queued in between is not missed.
            notified.as_mut().enable();
            {
                let mut script = self.lock();
                if let Some(answer) = script.queued.pop_front().or(script.standing) {
                    drop(waiting.take());
                    return Some(answer);
                }
            }
            if waiting.is_none() {
                waiting = Some(WaitingGuard::new(&self.waiting));
            }
            tokio::select! {
                () = notified => {}
                () = crate::server::stopped(shutdown) => return None,
            }
        }
    }
}

/// Counts a check as waiting for as long as it lives (also when the client gives up).
struct WaitingGuard<'a>(&'a AtomicUsize);

impl<'a> WaitingGuard<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The check was answered with [`HealthAnswer::Reset`] (or the server stopped): the service
/// fails, so hyper closes the HTTP/1.1 connection or resets the HTTP/2 stream.
#[derive(Debug, thiserror::Error)]
#[error("health check reset on purpose")]
pub(crate) struct ResetOnPurpose;

/// Whether `request` is for a health endpoint.
pub(crate) fn is_health_request(request: &Request<Incoming>) -> bool {
    let path = request.uri().path();
    path == HEALTH_PATH
        || (path == GRPC_HEALTH_CHECK_PATH && crate::grpc::is_grpc(request.headers()))
}

/// Answers a health request from the script.
pub(crate) async fn answer(
    script: &HealthScript,
    request: Request<Incoming>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Response<Body>, ResetOnPurpose> {
    let grpc = request.uri().path() == GRPC_HEALTH_CHECK_PATH;
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_HEALTH_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let authority = parts
        .uri
        .authority()
        .map(|a| a.to_string())
        .or_else(|| header_text(&parts.headers, header::HOST.as_str()));
    let seen = HealthRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        authority,
        headers: header_map(&parts.headers),
        grpc_service: grpc.then(|| grpc_service(&body)),
    };
    *script
        .last_request
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(seen);
    let answer = script.next_answer(&mut shutdown).await;
    script.answered.fetch_add(1, Ordering::AcqRel);
    let answer = answer.ok_or(ResetOnPurpose)?;
    match (answer, grpc) {
        (HealthAnswer::Reset, _) => Err(ResetOnPurpose),
        (HealthAnswer::Degraded, false) => {
            let mut response = text(StatusCode::OK, "degraded\n".to_string());
            response
                .headers_mut()
                .insert(DEGRADED_HEADER, HeaderValue::from_static("true"));
            Ok(response)
        }
        (HealthAnswer::Status(code), false) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Ok(text(status, format!("{code}\n")))
        }
        (HealthAnswer::Degraded, true) => Ok(grpc_response(true)),
        (HealthAnswer::Status(code), true) => Ok(grpc_response((200..300).contains(&code))),
    }
}

/// A `HealthCheckResponse` with SERVING (1) or NOT_SERVING (2), `grpc-status: 0`.
fn grpc_response(serving: bool) -> Response<Body> {
    let status = if serving { 1 } else { 2 };
    // Length prefix (5 bytes), then field 1 (varint): tag 0x08, value.
    let message = Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Full::new(message)
        .with_trailers(std::future::ready(Some(Ok(trailers))))
        .boxed();
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// The `service` (field 1) of a length-prefixed `HealthCheckRequest`; empty if absent or
/// malformed.
fn grpc_service(body: &[u8]) -> String {
    let message = body.get(5..).unwrap_or_default();
    match message {
        [0x0a, len, rest @ ..] if usize::from(*len) <= rest.len() && *len < 0x80 => {
            String::from_utf8_lossy(rest.get(..usize::from(*len)).unwrap_or_default()).into_owned()
        }
        _ => String::new(),
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_service_names_are_read_from_the_request() {
        assert_eq!(grpc_service(&[0, 0, 0, 0, 0]), "");
        assert_eq!(
            grpc_service(&[0, 0, 0, 0, 5, 0x0a, 3, b'a', b'p', b'i']),
            "api"
        );
        assert_eq!(grpc_service(&[0, 0, 0, 0, 3, 0x0a, 9, b'a']), "");
    }

    #[tokio::test]
    async fn queued_answers_come_first_and_no_standing_answer_waits() {
        let script = std::sync::Arc::new(HealthScript::default());
        let (_stop, mut shutdown) = watch::channel(false);
        script.queue([HealthAnswer::Status(503)]);
        assert_eq!(
            script.next_answer(&mut shutdown).await,
            Some(HealthAnswer::Status(503))
        );
        assert_eq!(
            script.next_answer(&mut shutdown).await,
            Some(HealthAnswer::Status(200))
        );
        script.set_standing(None);
        let waiter = {
            let script = script.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move { script.next_answer(&mut shutdown).await })
        };
        while script.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        script.queue([HealthAnswer::Reset]);
        assert_eq!(waiter.await.expect("waiter"), Some(HealthAnswer::Reset));
        assert_eq!(script.waiting(), 0);
    }
}
