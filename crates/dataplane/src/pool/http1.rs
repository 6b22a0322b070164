//! This worker's HTTP/1.1 connections to upstream endpoints, keyed by address. hyper's pooled
//! client does the same job through a shared, locked pool keyed by hashed URI authorities; here
//! the pool is the worker's own (`RefCell`, no lock), keyed by the endpoint's socket address.
//! HTTP/2 upstreams have a pool of their own (`http2_pool.rs`).
//!
//! The cluster's circuit breakers apply here as in Envoy: a new connection needs a
//! `max_connections` slot (held until the connection closes); without one the request waits as
//! pending (`max_pending_requests`) for one of this pool's connections to the endpoint to come
//! free, or overflows. When this pool has no connection to the endpoint at all, it opens one
//! over the limit, as Envoy does (`Limits::connection_slot`).
//!
//! Connections are retired at the cluster's `idle_timeout`, `max_connection_duration` and
//! `max_requests_per_connection` (`connection_lifetime.rs`).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use outrider_model::Cluster;
use outrider_tables::ClusterState;
use outrider_upstream::{BreakerGuard, try_pending};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::connect::{self as upstream_connect, Carries, ConnectOptions};
use super::lifetime::{Lifetime, Retired, Usage};
use super::{Limits, SendError};
use crate::fast_map::FastMap;
use crate::local_reply::ProxyBody;
use crate::tls_stats::TlsStatsRegistry;

/// Idle connections kept per endpoint; more are closed when their response ends.
const MAX_IDLE_PER_ENDPOINT: usize = 128;

pub(crate) struct Http1Pool {
    connect: ConnectOptions,
    lifetime: Lifetime,
    /// Per endpoint: connections ready for a request, and how many are open in all.
    endpoints: RefCell<FastMap<SocketAddr, EndpointConnections>>,
    /// Wakes pending requests when a connection comes back or closes.
    released: Notify,
    /// How many requests wait as pending (so a checkin without any pays nothing).
    pending: std::cell::Cell<usize>,
}

impl Http1Pool {
    /// `tls_stats`: where the cluster's `ssl.*` counters are.
    pub(crate) fn new(cluster: &Cluster, tls_stats: &TlsStatsRegistry) -> Self {
        Http1Pool {
            connect: ConnectOptions::of(cluster, Carries::Http1, tls_stats),
            lifetime: Lifetime::of(cluster),
            endpoints: RefCell::new(FastMap::default()),
            released: Notify::new(),
            pending: std::cell::Cell::new(0),
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) to `address` on a ready connection, a new
    /// one, or, at `max_connections`, the first one to come free. The connection goes back to
    /// the pool as soon as the response headers are in; it takes the next request once its
    /// response body has been read.
    ///
    /// A kept connection the endpoint closed after its last answer may still look ready; a
    /// request it turns out never to have written is sent again, once, on another connection
    /// (a new one if a slot allows), and does not count as a retry: Envoy gets the same by
    /// seeing the close before it reuses a connection.
    pub(crate) async fn send(
        self: &Rc<Self>,
        address: SocketAddr,
        request: Request<ProxyBody>,
        limits: &Limits<'_>,
    ) -> Result<Response<Incoming>, SendError> {
        let pooled = match self.checkout(address) {
            Some(pooled) => pooled,
            None => self.open_or_wait(address, limits).await?,
        };
        let kept = pooled.usage.requests() > 0;
        match self.send_on(pooled, address, request, limits).await {
            // Boxed: the rare second try's states stay out of every request's future.
            Err(Unsent(request)) if kept => Box::pin(self.resend(address, *request, limits)).await,
            sent => sent.map_err(|Unsent(_)| SendError::Reset("connection closed".into()))?,
        }
    }

    /// The second and last try of a request a kept connection never wrote.
    async fn resend(
        self: &Rc<Self>,
        address: SocketAddr,
        request: Request<ProxyBody>,
        limits: &Limits<'_>,
    ) -> Result<Response<Incoming>, SendError> {
        let pooled = self.open_or_wait(address, limits).await?;
        self.send_on(pooled, address, request, limits)
            .await
            .map_err(|Unsent(_)| SendError::Reset("connection closed".into()))?
    }

    /// A new connection if a `max_connections` slot allows, else the first to come free.
    async fn open_or_wait(
        self: &Rc<Self>,
        address: SocketAddr,
        limits: &Limits<'_>,
    ) -> Result<Pooled, SendError> {
        match limits.connection_slot(self.has_connection_to(address)) {
            Some(slot) => self.connect(address, slot, limits).await,
            None => self.wait_as_pending(address, limits).await,
        }
    }

    /// Sends `request` on `pooled`; gives it back if the connection closed before writing it.
    async fn send_on(
        self: &Rc<Self>,
        mut pooled: Pooled,
        address: SocketAddr,
        request: Request<ProxyBody>,
        limits: &Limits<'_>,
    ) -> Result<Result<Response<Incoming>, SendError>, Unsent> {
        let last = self.lifetime.take_request(&mut pooled.usage);
        let response = match pooled.sender.try_send_request(request).await {
            Ok(response) => response,
            Err(mut failed) => {
                return match failed.take_message() {
                    Some(request) => Err(Unsent(Box::new(request))),
                    None => Ok(Err(SendError::failed(failed.error()))),
                };
            }
        };
        if last {
            // Without its sender hyper closes the connection once this response is read.
            Retired::MaxRequests.count(limits.state);
            drop(pooled);
        } else {
            self.checkin(address, [pooled]);
        }
        if self.pending.get() > 0 {
            // A pending request may now wait on this connection finishing its response.
            self.released.notify_waiters();
        }
        Ok(Ok(response))
    }

    /// A connection ready for a request: idle, open, and done with its previous response.
    fn checkout(&self, address: SocketAddr) -> Option<Pooled> {
        let mut endpoints = self.endpoints.borrow_mut();
        let connections = &mut endpoints.get_mut(&address)?.idle;
        let mut index = connections.len();
        while index > 0 {
            index -= 1;
            if connections[index].sender.is_closed() {
                connections.swap_remove(index);
            } else if connections[index].sender.is_ready() {
                return Some(connections.swap_remove(index));
            }
        }
        None
    }

    /// The connections to `address` still busy with a response, taken out to be waited on.
    fn take_busy(&self, address: SocketAddr) -> Vec<Pooled> {
        let mut endpoints = self.endpoints.borrow_mut();
        let connections = &mut endpoints.entry(address).or_default().idle;
        connections.retain(|c| !c.sender.is_closed());
        std::mem::take(connections)
    }

    fn checkin(&self, address: SocketAddr, pooled: impl IntoIterator<Item = Pooled>) {
        let mut endpoints = self.endpoints.borrow_mut();
        let connections = &mut endpoints.entry(address).or_default().idle;
        for connection in pooled {
            if !connection.sender.is_closed() && connections.len() < MAX_IDLE_PER_ENDPOINT {
                connections.push(connection);
            }
        }
    }

    /// Retires the connections that carry no request and are past a time limit.
    fn sweep(&self, now: Instant) {
        let mut endpoints = self.endpoints.borrow_mut();
        for endpoint in endpoints.values_mut() {
            endpoint.idle.retain_mut(|connection| {
                if connection.sender.is_closed() {
                    return false;
                }
                if !connection.sender.is_ready() {
                    // Still reading a response.
                    return true;
                }
                match self.lifetime.expired(&mut connection.usage, now) {
                    Some(reason) => {
                        reason.count(&connection.cluster);
                        false
                    }
                    None => true,
                }
            });
        }
    }

    /// Waits, as a pending request, for a busy connection to finish its response or a
    /// connection slot to free up (the caller's timeout bounds the wait).
    async fn wait_as_pending(
        self: &Rc<Self>,
        address: SocketAddr,
        limits: &Limits<'_>,
    ) -> Result<Pooled, SendError> {
        let _pending = try_pending(limits.state, limits.breakers, limits.priority)
            .ok_or(SendError::Overflow)?;
        let _counted = PendingCount::new(&self.pending);
        loop {
            // Registered before checking, so a release between the check and the wait counts.
            let released = self.released.notified();
            if let Some(connection) = self.checkout(address) {
                return Ok(connection);
            }
            if let Some(slot) = limits.connection_slot(self.has_connection_to(address)) {
                return self.connect(address, slot, limits).await;
            }
            let mut busy = self.take_busy(address);
            if busy.is_empty() {
                released.await;
                continue;
            }
            let first_ready = {
                let ready = busy.iter_mut().map(|c| Box::pin(c.sender.ready()));
                tokio::select! {
                    (result, index, _) = futures::future::select_all(ready) => result.ok().map(|()| index),
                    () = released => None,
                }
            };
            let chosen = first_ready.map(|index| busy.swap_remove(index));
            // The others go back for whoever needs them next.
            self.checkin(address, busy);
            if let Some(connection) = chosen {
                return Ok(connection);
            }
        }
    }

    /// Whether this pool has a connection to `address` open or opening (idle or busy).
    fn has_connection_to(&self, address: SocketAddr) -> bool {
        self.endpoints
            .borrow()
            .get(&address)
            .is_some_and(|endpoint| endpoint.open > 0)
    }

    /// Opens a connection holding `slot` (a `max_connections` unit) for as long as it lives.
    async fn connect(
        self: &Rc<Self>,
        address: SocketAddr,
        slot: BreakerGuard,
        limits: &Limits<'_>,
    ) -> Result<Pooled, SendError> {
        self.lifetime.keep_sweeping(self, Self::sweep);
        let counted = OpenCount::new(self, address);
        let (stream, open) =
            upstream_connect::connect(address, &self.connect, limits.state, limits.endpoint)
                .await
                .map_err(SendError::Connect)?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        // The connection's I/O runs as its own task on this worker; upgrades (WebSocket) hand
        // the socket over when a 101 comes back.
        let released: Weak<Self> = Rc::downgrade(self);
        tokio::task::spawn_local(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(%address, error = %e, "upstream connection ended");
            }
            drop((slot, open, counted));
            if let Some(pool) = released.upgrade() {
                pool.released.notify_waiters();
            }
        });
        Ok(Pooled {
            sender,
            usage: Usage::new(),
            cluster: limits.state.clone(),
        })
    }
}

/// A request a connection closed before writing: it may go on another. Boxed, so that the
/// result every request's future holds stays the size of a response.
struct Unsent(Box<Request<ProxyBody>>);

/// One connection of the pool, with what its lifetime limits need.
struct Pooled {
    sender: SendRequest<ProxyBody>,
    usage: Usage,
    /// Whose counters its retirement goes to.
    cluster: Arc<ClusterState>,
}

/// One endpoint's connections in this pool.
#[derive(Default)]
struct EndpointConnections {
    /// Ready for a request, or still reading a response body.
    idle: Vec<Pooled>,
    /// Open or opening, wherever they are (idle, or carrying a request).
    open: usize,
}

/// Counts a connection in its endpoint's `open` from the start of the attempt to its close.
struct OpenCount {
    pool: Weak<Http1Pool>,
    address: SocketAddr,
}

impl OpenCount {
    fn new(pool: &Rc<Http1Pool>, address: SocketAddr) -> Self {
        pool.endpoints.borrow_mut().entry(address).or_default().open += 1;
        OpenCount {
            pool: Rc::downgrade(pool),
            address,
        }
    }
}

impl Drop for OpenCount {
    fn drop(&mut self) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        let mut endpoints = pool.endpoints.borrow_mut();
        if let Some(endpoint) = endpoints.get_mut(&self.address) {
            endpoint.open = endpoint.open.saturating_sub(1);
            endpoint.idle.retain(|c| !c.sender.is_closed());
            // An endpoint gone from EDS leaves nothing behind once its connections have closed.
            if endpoint.open == 0 && endpoint.idle.is_empty() {
                endpoints.remove(&self.address);
            }
        }
    }
}

/// Counts a pending request for as long as it waits.
struct PendingCount<'a>(&'a std::cell::Cell<usize>);

impl<'a> PendingCount<'a> {
    fn new(count: &'a std::cell::Cell<usize>) -> Self {
        count.set(count.get() + 1);
        PendingCount(count)
    }
}

impl Drop for PendingCount<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}
