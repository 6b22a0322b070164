//! `Checker`: one health check of one host, of whichever kind the config names, with the
//! connection it keeps between checks.

use outrider_model::{HealthCheck, HealthChecker};
use outrider_tables::EndpointState;
use outrider_upstream::events::HealthCheckerType;

use crate::grpc_check::GrpcChecker;
use crate::http_check::HttpChecker;
use crate::outcome::CheckOutcome;
use crate::target::Target;
use crate::tcp_check::TcpChecker;

pub(crate) enum Checker {
    Http(HttpChecker),
    Tcp(TcpChecker),
    Grpc(GrpcChecker),
}

impl Checker {
    /// `None` for an endpoint without an IP address.
    pub(crate) fn new(
        config: &HealthCheck,
        cluster: &str,
        endpoint: &EndpointState,
    ) -> Option<Self> {
        let reuse = config.reuse_connection;
        Some(match &config.checker {
            HealthChecker::Http(http) => Self::Http(HttpChecker::new(
                http.clone(),
                Target::of(endpoint, &http.host, cluster)?,
                reuse,
            )),
            HealthChecker::Tcp(tcp) => Self::Tcp(TcpChecker::new(
                tcp.clone(),
                Target::of(endpoint, "", cluster)?,
                reuse,
            )),
            HealthChecker::Grpc(grpc) => Self::Grpc(GrpcChecker::new(
                grpc.clone(),
                Target::of(endpoint, &grpc.authority, cluster)?,
                config.timeout,
                reuse,
            )),
        })
    }

    pub(crate) fn kind(&self) -> HealthCheckerType {
        match self {
            Self::Http(_) => HealthCheckerType::Http,
            Self::Tcp(_) => HealthCheckerType::Tcp,
            Self::Grpc(_) => HealthCheckerType::Grpc,
        }
    }

    /// One check, without a deadline (the session applies `timeout`).
    pub(crate) async fn check(&mut self) -> CheckOutcome {
        match self {
            Self::Http(c) => c.check().await,
            Self::Tcp(c) => c.check().await,
            Self::Grpc(c) => c.check().await,
        }
    }

    /// Forgets the connection: after a timeout it may be stuck mid-request.
    pub(crate) fn reset(&mut self) {
        match self {
            Self::Http(c) => c.reset(),
            Self::Tcp(c) => c.reset(),
            Self::Grpc(c) => c.reset(),
        }
    }
}
