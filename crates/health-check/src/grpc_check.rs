//! gRPC health checks: `grpc.health.v1.Health/Check` with the configured `service_name` over
//! h2c, through tonic-health's client on a hyper HTTP/2 connection kept between checks. SERVING
//! passes; any other answer (NOT_SERVING, a gRPC error status, a non-200 response) fails at
//! once, while a reset stream or a broken connection counts toward the threshold (Envoy).

use std::error::Error as _;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::USER_AGENT;
use http::{HeaderValue, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use outrider_model::GrpcHealthCheck;
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::http_check::USER_AGENT_VALUE;
use crate::outcome::{CheckOutcome, error_chain};
use crate::target::Target;

pub(crate) struct GrpcChecker {
    service_name: String,
    target: Target,
    /// Sent as `grpc-timeout`, as Envoy does.
    timeout: Duration,
    reuse_connection: bool,
    connection: Option<http2::SendRequest<tonic::body::Body>>,
}

impl GrpcChecker {
    pub(crate) fn new(
        config: GrpcHealthCheck,
        target: Target,
        timeout: Duration,
        reuse_connection: bool,
    ) -> Self {
        Self {
            service_name: config.service_name,
            target,
            timeout,
            reuse_connection,
            connection: None,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.connection = None;
    }

    pub(crate) async fn check(&mut self) -> CheckOutcome {
        let sender = match self.connection.take() {
            Some(s) if !s.is_closed() => s,
            _ => match self.connect().await {
                Ok(s) => s,
                Err(outcome) => return outcome,
            },
        };
        // `:authority` comes from the origin; a name that cannot be a URI authority falls back
        // to the address.
        let origin = format!("http://{}", self.target.authority)
            .parse::<Uri>()
            .or_else(|_| format!("http://{}", self.target.addr).parse());
        let origin = match origin {
            Ok(origin) => origin,
            Err(e) => return CheckOutcome::active(format!("authority: {e}")),
        };
        let mut client = HealthClient::with_origin(H2Service(sender.clone()), origin);
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: self.service_name.clone(),
        });
        request.set_timeout(self.timeout);
        let outcome = match client.check(request).await {
            Ok(response) => match response.into_inner().status() {
                ServingStatus::Serving => CheckOutcome::passed(),
                other => CheckOutcome::active(format!("service status {}", other.as_str_name())),
            },
            // tonic keeps the transport error as the source; statuses the host sent have none.
            Err(status) if status.source().is_some() => {
                CheckOutcome::network(format!("rpc: {}", error_chain(&status)))
            }
            Err(status) => CheckOutcome::active(format!(
                "grpc-status {} ({}): {}",
                i32::from(status.code()),
                status.code().description(),
                status.message()
            )),
        };
        if self.reuse_connection {
            self.connection = Some(sender);
        }
        outcome
    }

    async fn connect(&self) -> Result<http2::SendRequest<tonic::body::Body>, CheckOutcome> {
        let stream = TcpStream::connect(self.target.addr)
            .await
            .map_err(|e| CheckOutcome::network(format!("connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| CheckOutcome::network(format!("HTTP/2 handshake: {}", error_chain(&e))))?;
        // Ends when the last sender is dropped or the host closes the connection.
        tokio::spawn(connection);
        Ok(sender)
    }
}

/// A hyper HTTP/2 connection as the service a tonic client calls; adds Envoy's User-Agent.
struct H2Service(http2::SendRequest<tonic::body::Body>);

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Incoming>, hyper::Error>> + Send>>;

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for H2Service {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        request
            .headers_mut()
            .insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        Box::pin(self.0.send_request(request))
    }
}
