//! This worker's connections to upstream endpoints: an HTTP/1.1 pool and an HTTP/2 pool per
//! cluster (`http1.rs`, `http2.rs`), the connect step they share with the TCP proxy
//! (`connect.rs`), and when a connection is retired (`lifetime.rs`).

pub(crate) mod connect;
mod http1;
mod http2;
mod lifetime;

use std::rc::Rc;
use std::sync::Arc;

use outrider_model::{CircuitBreakers, Priority};
use outrider_tables::{ClusterState, EndpointState};
use outrider_upstream::{BreakerGuard, connection_over_limit, try_connection};

use crate::local_reply::ProxyBody;
use crate::stream_body::BodyFailure;

pub(crate) use http1::Http1Pool;
pub(crate) use http2::Http2Pool;

/// Why a request did not get a response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made (refused, unreachable, connect timeout).
    Connect(String),
    /// The connection failed or was reset before the response headers.
    Reset(String),
    /// The client's request body failed while it was sent: the endpoint did nothing wrong.
    ClientBody(BodyFailure),
    /// No connection slot and no pending slot (circuit breakers).
    Overflow,
}

/// The circuit breakers a request is subject to, and the host it goes to (whose connection
/// counters the pools keep).
pub(crate) struct Limits<'a> {
    pub state: &'a Arc<ClusterState>,
    pub endpoint: &'a Arc<EndpointState>,
    pub breakers: &'a CircuitBreakers,
    pub priority: Priority,
}

impl Limits<'_> {
    /// A `max_connections` unit for a new connection to the host. At the limit, none, unless
    /// the asking pool has no connection to the host at all (`pool_has_host_connection`).
    pub(crate) fn connection_slot(&self, pool_has_host_connection: bool) -> Option<BreakerGuard> {
        if pool_has_host_connection {
            try_connection(self.state, self.breakers, self.priority)
        } else {
            Some(self.first_connection_slot())
        }
    }

    /// The unit for a pool's first connection to the host: over the limit if need be, as
    /// Envoy does, so requests never wait with no connection of their own to wait on. A
    /// refusal counts in `upstream_cx_overflow` either way.
    pub(crate) fn first_connection_slot(&self) -> BreakerGuard {
        try_connection(self.state, self.breakers, self.priority)
            .unwrap_or_else(|| connection_over_limit(self.state, self.priority))
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::Reset(e) => write!(f, "reset: {e}"),
            SendError::ClientBody(_) => f.write_str("the client's request body failed"),
            SendError::Overflow => f.write_str("overflow"),
        }
    }
}

impl SendError {
    /// A request that failed on its connection: the client's body, or the connection.
    pub(crate) fn failed(error: &hyper::Error) -> Self {
        match crate::stream_body::caused_by_client_body(error) {
            Some(how) => SendError::ClientBody(how),
            None => SendError::Reset(error.to_string()),
        }
    }
}

/// How this worker reaches a cluster's endpoints.
#[derive(Clone)]
pub(crate) enum Upstream {
    Http1(Rc<Http1Pool>),
    Http2(Rc<Http2Pool>),
}

impl Upstream {
    /// Sends a request built by [`Upstream::uri`] to `address`.
    pub(crate) async fn send(
        &self,
        address: std::net::SocketAddr,
        request: http::Request<ProxyBody>,
        limits: &Limits<'_>,
    ) -> Result<http::Response<hyper::body::Incoming>, SendError> {
        match self {
            Upstream::Http1(pool) => pool.send(address, request, limits).await,
            Upstream::Http2(pool) => pool.send(address, request, limits).await,
        }
    }

    /// The request URI: origin-form for HTTP/1.1 (the `Host` header names the authority);
    /// absolute for HTTP/2, whose `:authority` comes from the URI (`authority`, else the
    /// endpoint's address).
    pub(crate) fn uri(
        &self,
        authority: Option<&str>,
        address: std::net::SocketAddr,
        path: http::uri::PathAndQuery,
    ) -> Result<http::Uri, http::Error> {
        match self {
            Upstream::Http1(_) => Ok(http::Uri::from(path)),
            Upstream::Http2(_) => {
                let builder = http::Uri::builder().scheme("http");
                let builder = match authority {
                    Some(authority) => builder.authority(authority),
                    None => builder.authority(address.to_string()),
                };
                builder.path_and_query(path).build()
            }
        }
    }

    pub(crate) fn is_http2(&self) -> bool {
        matches!(self, Upstream::Http2(_))
    }
}
