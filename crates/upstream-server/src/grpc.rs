//! gRPC upstreams: the minimal unary echo that [`crate::UpstreamServer`] answers any
//! `application/grpc` request with, and [`GrpcUpstream`], a tonic server with the standard
//! `grpc.health.v1.Health` service for active gRPC health checking.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::Error;
use crate::handler::Body;

/// gRPC status codes used here (see `grpc/doc/statuscodes.md`).
pub(crate) const INTERNAL: u32 = 13;
pub(crate) const UNAVAILABLE: u32 = 14;

/// The 5-byte gRPC message prefix: compressed flag and big-endian length.
const PREFIX_LEN: usize = 5;

pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The request's `grpc-timeout`, as received, in every answer to a gRPC call (so a test
/// sees the deadline a proxy passed on).
pub const RECEIVED_GRPC_TIMEOUT_HEADER: &str = "x-received-grpc-timeout";

/// Answers a unary call with the request's own message, so any method whose request and
/// response types match works (and a test can compare bytes). The request's content type is kept
/// (`application/grpc+proto`, `+json`, ...).
pub(crate) fn unary_echo(request_headers: &HeaderMap, message: Bytes) -> Response<Body> {
    let mut response = unary_echo_answer(request_headers, message);
    if let Some(timeout) = request_headers.get("grpc-timeout") {
        response
            .headers_mut()
            .insert(RECEIVED_GRPC_TIMEOUT_HEADER, timeout.clone());
    }
    response
}

fn unary_echo_answer(request_headers: &HeaderMap, message: Bytes) -> Response<Body> {
    if !is_single_message(&message) {
        return error(
            INTERNAL,
            "expected exactly one length-prefixed gRPC message",
        );
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Full::new(message)
        .with_trailers(std::future::ready(Some(Ok(trailers))))
        .boxed();
    let mut response = Response::new(body);
    let content_type = request_headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/grpc"));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

fn is_single_message(body: &[u8]) -> bool {
    match body.get(..PREFIX_LEN) {
        Some(&[_flag, a, b, c, d]) => {
            let len = u32::from_be_bytes([a, b, c, d]) as usize;
            body.len() - PREFIX_LEN == len
        }
        _ => false,
    }
}

/// A trailers-only gRPC error: HTTP 200 with `grpc-status` in the headers and no body, as gRPC
/// servers answer a call that fails before any message.
pub(crate) fn error(code: u32, message: &'static str) -> Response<Body> {
    let mut response = Response::new(crate::handler::full(Bytes::new()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code));
    headers.insert("grpc-message", HeaderValue::from_static(message));
    response
}

/// A tonic server with the `grpc.health.v1.Health` service (Check and Watch). The overall status
/// (service `""`) starts as SERVING; tests flip it, or a named service's, at runtime.
pub struct GrpcUpstream {
    addr: SocketAddr,
    reporter: HealthReporter,
    checks: Arc<AtomicU64>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl GrpcUpstream {
    /// Starts on `127.0.0.1:0`, on the current tokio runtime.
    pub async fn start_local() -> Result<Self, Error> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Self::start(listener)
    }

    /// Serves on `listener`, on the current tokio runtime.
    pub fn start(listener: TcpListener) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let addr = listener.local_addr().map_err(Error::Listener)?;
        let reporter = HealthReporter::new();
        let checks = Arc::new(AtomicU64::new(0));
        let counter = checks.clone();
        let service = HealthServer::with_interceptor(
            HealthService::from_health_reporter(reporter.clone()),
            move |request: tonic::Request<()>| {
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(request)
            },
        );
        let (shutdown, mut stop) = watch::channel(false);
        let task = runtime.spawn(async move {
            // Stops on `shutdown()` and when the handle is dropped.
            let signal = async move { crate::server::stopped(&mut stop).await };
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    signal,
                )
                .await;
            if let Err(e) = served {
                tracing::warn!(%addr, error = %e, "gRPC upstream stopped");
            }
        });
        Ok(Self {
            addr,
            reporter,
            checks,
            shutdown,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, for a tonic channel.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the overall status (service `""`), which is what a health check without a service
    /// name asks for.
    pub async fn set_serving(&self, serving: bool) {
        self.set_service_serving("", serving).await;
    }

    /// Sets the status of one named service (for health checks with `service_name`).
    pub async fn set_service_serving(&self, service: &str, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status(service, status).await;
    }

    /// Health RPCs (Check and Watch) received so far.
    pub fn checks_served(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Stops accepting, lets in-flight calls finish, and waits for the server task.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for GrpcUpstream {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_message_framing() {
        assert!(is_single_message(&[0, 0, 0, 0, 0]));
        assert!(is_single_message(&[0, 0, 0, 0, 2, 8, 1]));
        assert!(!is_single_message(&[0, 0, 0, 0, 3, 8, 1]));
        assert!(!is_single_message(&[0, 0, 0]));
    }
}
