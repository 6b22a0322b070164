//! This worker's HTTP/2 connections to upstream endpoints: one multiplexed connection per
//! endpoint, keyed by socket address, in a `RefCell` only this worker touches.
//!
//! The cluster's circuit breakers apply as in Envoy: a connection holds a `max_connections`
//! slot for as long as it lives, and requests that arrive while their endpoint's connection is
//! being set up wait as pending (`max_pending_requests`) or overflow. At the connection limit
//! the pool still opens its one connection to an endpoint it has none to, counting
//! `upstream_cx_overflow`, as Envoy's per-worker pools do (`Limits::connection_slot`). A
//! connection attempt runs as its own task, so a request that times out does not cancel it for
//! the others waiting on it.
//!
//! A connection is retired (takes no new stream; hyper closes it once its streams are done) at
//! the cluster's `idle_timeout`, `max_connection_duration` and `max_requests_per_connection`
//! (`connection_lifetime.rs`); the next request opens a new one.
//!
//! Differs from Envoy: Envoy opens another connection when one reaches the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` (or the cluster's `max_concurrent_streams`); here streams
//! beyond it queue on the one connection.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioIo, TokioTimer};
use outrider_model::Cluster;
use outrider_tables::{ClusterState, EndpointState};
use outrider_upstream::{BreakerGuard, try_pending};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::connect::{
    self as upstream_connect, Carries, ConnectOptions, OpenConnection, UpstreamIo,
};
use super::lifetime::{Lifetime, Retired, Usage};
use super::{Limits, SendError};
use crate::fast_map::FastMap;
use crate::local_exec::LocalExec;
use crate::local_reply::ProxyBody;
use crate::tls_stats::TlsStatsRegistry;

pub(crate) struct Http2Pool {
    builder: http2::Builder<LocalExec>,
    connect: ConnectOptions,
    lifetime: Lifetime,
    connections: RefCell<FastMap<SocketAddr, Connection>>,
    /// Wakes waiting requests when a connection attempt ends or a connection closes.
    changed: Notify,
}

enum Connection {
    /// Being set up; requests for this endpoint wait for it.
    Connecting(Rc<Attempt>),
    Ready(Ready),
}

/// An open connection taking new streams.
struct Ready {
    sender: SendRequest<ProxyBody>,
    usage: Usage,
    /// Whose counters its retirement goes to.
    cluster: Arc<ClusterState>,
}

/// One connection attempt, shared by the requests waiting on it.
#[derive(Default)]
struct Attempt {
    /// Why it failed, once it has.
    failure: RefCell<Option<String>>,
}

impl Http2Pool {
    /// `tls_stats`: where the cluster's `ssl.*` counters are.
    pub(crate) fn new(cluster: &Cluster, tls_stats: &TlsStatsRegistry) -> Self {
        let options = &cluster.http.http2;
        let mut builder = http2::Builder::new(LocalExec);
        builder
            .timer(TokioTimer::new())
            .initial_stream_window_size(options.initial_stream_window_size)
            .initial_connection_window_size(options.initial_connection_window_size);
        if let Some(keepalive) = &options.keepalive {
            builder
                .keep_alive_interval(keepalive.interval)
                .keep_alive_timeout(keepalive.timeout);
        }
        Http2Pool {
            builder,
            connect: ConnectOptions::of(cluster, Carries::Http2, tls_stats),
            lifetime: Lifetime::of(cluster),
            connections: RefCell::new(FastMap::default()),
            changed: Notify::new(),
        }
    }

    /// Sends `request` (absolute URI: its authority becomes `:authority`) to `address` on the
    /// endpoint's connection, opening it first if needed.
    pub(crate) async fn send(
        self: &Rc<Self>,
        address: SocketAddr,
        request: Request<ProxyBody>,
        limits: &Limits<'_>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut sender = self.sender(address, limits).await?;
        sender
            .send_request(request)
            .await
            .map_err(|e| SendError::failed(&e))
    }

    /// The endpoint's open connection, once there is one.
    async fn sender(
        self: &Rc<Self>,
        address: SocketAddr,
        limits: &Limits<'_>,
    ) -> Result<SendRequest<ProxyBody>, SendError> {
        // Taken the first time this request has to wait; held until it stops waiting.
        let mut pending: Option<BreakerGuard> = None;
        let mut started_attempt = false;
        loop {
            let attempt = {
                let mut connections = self.connections.borrow_mut();
                match connections.get_mut(&address) {
                    Some(Connection::Ready(ready)) if !ready.sender.is_closed() => {
                        let sender = ready.sender.clone();
                        if self.lifetime.take_request(&mut ready.usage) {
                            // Its last stream: the next request opens a new connection.
                            Retired::MaxRequests.count(&ready.cluster);
                            connections.remove(&address);
                        }
                        return Ok(sender);
                    }
                    Some(Connection::Connecting(attempt)) => Some(attempt.clone()),
                    _ => None,
                }
            };
            let attempt = match attempt {
                Some(attempt) => attempt,
                None => {
                    started_attempt = true;
                    self.start_connecting(
                        address,
                        limits.first_connection_slot(),
                        limits.state.clone(),
                        limits.endpoint.clone(),
                    )
                }
            };
            // The request that started the attempt waits on it without being pending, as
            // in the HTTP/1.1 pool.
            if !started_attempt && pending.is_none() {
                pending = Some(take_pending(limits)?);
            }
            // Registered before looking, so a change between the look and the wait counts.
            let changed = self.changed.notified();
            if attempt.failure.borrow().is_none() && self.is_connecting(address, &attempt) {
                changed.await;
            }
            if let Some(failure) = attempt.failure.borrow().clone() {
                return Err(SendError::Connect(failure));
            }
        }
    }

    /// Retires the connections past a time limit.
    fn sweep(&self, now: Instant) {
        self.connections
            .borrow_mut()
            .retain(|_, connection| match connection {
                Connection::Connecting(_) => true,
                Connection::Ready(ready) if ready.sender.is_closed() => false,
                Connection::Ready(ready) => match self.lifetime.expired(&mut ready.usage, now) {
                    Some(reason) => {
                        reason.count(&ready.cluster);
                        false
                    }
                    None => true,
                },
            });
    }

    fn is_connecting(&self, address: SocketAddr, attempt: &Rc<Attempt>) -> bool {
        matches!(
            self.connections.borrow().get(&address),
            Some(Connection::Connecting(current)) if Rc::ptr_eq(current, attempt)
        )
    }

    /// Starts connecting to `address` in a task of its own, holding `slot` for the life of the
    /// connection.
    fn start_connecting(
        self: &Rc<Self>,
        address: SocketAddr,
        slot: BreakerGuard,
        state: Arc<ClusterState>,
        host: Arc<EndpointState>,
    ) -> Rc<Attempt> {
        self.lifetime.keep_sweeping(self, Self::sweep);
        let attempt = Rc::new(Attempt::default());
        self.connections
            .borrow_mut()
            .insert(address, Connection::Connecting(attempt.clone()));
        let weak_pool: Weak<Self> = Rc::downgrade(self);
        let this_attempt = attempt.clone();
        let builder = self.builder.clone();
        let options = self.connect.clone();
        tokio::task::spawn_local(async move {
            let connected = connect(&builder, address, &options, &state, &host).await;
            let Some(pool) = weak_pool.upgrade() else {
                return;
            };
            let (connection, open) = match connected {
                Ok((sender, connection, open)) => {
                    let ready = Ready {
                        sender,
                        usage: Usage::new(),
                        cluster: state.clone(),
                    };
                    pool.connections
                        .borrow_mut()
                        .insert(address, Connection::Ready(ready));
                    (connection, open)
                }
                Err(failure) => {
                    *this_attempt.failure.borrow_mut() = Some(failure);
                    if pool.is_connecting(address, &this_attempt) {
                        pool.connections.borrow_mut().remove(&address);
                    }
                    pool.changed.notify_waiters();
                    return;
                }
            };
            pool.changed.notify_waiters();
            // The pool must not stay alive for a connection's sake.
            drop(pool);
            if let Err(e) = connection.await {
                tracing::debug!(%address, error = %e, "upstream HTTP/2 connection ended");
            }
            drop((slot, open));
            if let Some(pool) = weak_pool.upgrade() {
                let mut connections = pool.connections.borrow_mut();
                if matches!(connections.get(&address), Some(Connection::Ready(r)) if r.sender.is_closed())
                {
                    connections.remove(&address);
                }
                drop(connections);
                pool.changed.notify_waiters();
            }
        });
        attempt
    }
}

fn take_pending(limits: &Limits<'_>) -> Result<BreakerGuard, SendError> {
    try_pending(limits.state, limits.breakers, limits.priority).ok_or(SendError::Overflow)
}

type Handshake = (
    SendRequest<ProxyBody>,
    http2::Connection<TokioIo<UpstreamIo>, ProxyBody, LocalExec>,
    OpenConnection,
);

async fn connect(
    builder: &http2::Builder<LocalExec>,
    address: SocketAddr,
    options: &ConnectOptions,
    cluster: &ClusterState,
    host: &Arc<EndpointState>,
) -> Result<Handshake, String> {
    let (stream, open) = upstream_connect::connect(address, options, cluster, host).await?;
    let (sender, connection) = builder
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    Ok((sender, connection, open))
}
