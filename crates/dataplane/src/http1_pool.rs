//! This worker's HTTP/1.1 connections to upstream endpoints, keyed by address. hyper's pooled
//! client does the same job through a shared, locked pool keyed by hashed URI authorities; here
//! the pool is the worker's own (`RefCell`, no lock), keyed by the endpoint's socket address.
//! HTTP/2 upstreams, which multiplex, keep hyper's client (see `worker_context.rs`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::local_reply::ProxyBody;

/// Idle connections kept per endpoint; more are closed when their response ends.
const MAX_IDLE_PER_ENDPOINT: usize = 128;

/// Why a request did not get a response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made (refused, unreachable, connect timeout).
    Connect(String),
    /// The connection failed or was reset before the response headers.
    Reset(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::Reset(e) => write!(f, "reset: {e}"),
        }
    }
}

pub(crate) struct Http1Pool {
    connect_timeout: Duration,
    idle: RefCell<HashMap<SocketAddr, Vec<SendRequest<ProxyBody>>>>,
}

impl Http1Pool {
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        Http1Pool {
            connect_timeout,
            idle: RefCell::new(HashMap::new()),
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) to `address` on an idle connection, or a
    /// new one; the connection goes back to the pool once the response headers are in (it is
    /// reusable when its response body has been read).
    pub(crate) async fn send(
        &self,
        address: SocketAddr,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut sender = match self.checkout(address) {
            Some(sender) => sender,
            None => self.connect(address).await?,
        };
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| SendError::Reset(e.to_string()))?;
        self.checkin(address, sender);
        Ok(response)
    }

    /// A connection ready for a request: idle, open, and done with its previous response.
    fn checkout(&self, address: SocketAddr) -> Option<SendRequest<ProxyBody>> {
        let mut idle = self.idle.borrow_mut();
        let connections = idle.get_mut(&address)?;
        let mut index = connections.len();
        while index > 0 {
            index -= 1;
            if connections[index].is_closed() {
                connections.swap_remove(index);
            } else if connections[index].is_ready() {
                return Some(connections.swap_remove(index));
            }
        }
        None
    }

    fn checkin(&self, address: SocketAddr, sender: SendRequest<ProxyBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        let connections = idle.entry(address).or_default();
        if connections.len() < MAX_IDLE_PER_ENDPOINT {
            connections.push(sender);
        }
    }

    async fn connect(&self, address: SocketAddr) -> Result<SendRequest<ProxyBody>, SendError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| SendError::Connect("connect timeout".to_string()))?
            .map_err(|e| SendError::Connect(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        // The connection's I/O runs as its own task on this worker; upgrades (WebSocket) hand
        // the socket over when a 101 comes back.
        tokio::task::spawn_local(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(%address, error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}
