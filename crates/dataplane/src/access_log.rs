//! The access log: one entry per request and configured log, written when the response body
//! ends (so bytes and duration are final) if the log's filter passes it, in the log's format
//! (`access_log_format.rs`). Entries are buffered per worker and flushed every second or when
//! the buffer fills — never a write syscall per request. What an entry reads of the request is
//! kept when the request arrives: only the headers the formats and filters name.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use hyper::body::{Body, Frame, SizeHint};
use outrider_model::{AccessLogSink, AccessLogs};
use tokio::sync::Notify;

use crate::access_log_filter::passes;
use crate::access_log_format::write_entry;
use crate::downstream_io::{ConnectionTls, TlsSummary};
use crate::filter_chain::ChainRef;
use crate::formatter::{FormatContext, StreamEnd};
use crate::local_reply::{AccessInfo, ResponseFlag};
use crate::routing::RequestView;
use crate::stream_body::BodyBytes;

/// A worker's buffer reaching this size is flushed at once.
const FLUSH_AT: usize = 64 * 1024;

/// One worker's pending log lines, per sink.
#[derive(Default)]
pub(crate) struct AccessLogBuffers {
    buffers: RefCell<HashMap<AccessLogSink, Vec<u8>>>,
}

impl AccessLogBuffers {
    fn append(&self, sink: &AccessLogSink, entry: &str) {
        let mut buffers = self.buffers.borrow_mut();
        let buffer = match buffers.get_mut(sink) {
            Some(buffer) => buffer,
            None => buffers.entry(sink.clone()).or_default(),
        };
        buffer.extend_from_slice(entry.as_bytes());
        if buffer.len() >= FLUSH_AT {
            write_out(sink, buffer);
        }
    }

    /// Writes every pending line (called every second by the worker).
    pub(crate) fn flush(&self) {
        for (sink, buffer) in self.buffers.borrow_mut().iter_mut() {
            if !buffer.is_empty() {
                write_out(sink, buffer);
            }
        }
    }
}

fn write_out(sink: &AccessLogSink, buffer: &mut Vec<u8>) {
    let result = match sink {
        AccessLogSink::Stdout => std::io::stdout().lock().write_all(buffer),
        AccessLogSink::Stderr => std::io::stderr().lock().write_all(buffer),
        AccessLogSink::File(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(buffer)),
    };
    if let Err(e) = result {
        tracing::warn!(?sink, error = %e, "cannot write the access log");
    }
    buffer.clear();
}

/// What the entries need of the request, kept before the request is forwarded.
pub(crate) struct RequestRecord {
    /// The request's TLS connection.
    tls: Option<std::sync::Arc<TlsSummary>>,
    start: SystemTime,
    started: Instant,
    /// Method, URI, version and the headers the logs read.
    parts: http::request::Parts,
    /// The client's address as the connection manager decided it.
    remote: SocketAddr,
    direct_remote: SocketAddr,
    local: SocketAddr,
    bytes_received: BodyBytes,
    routed: RouteSlot,
}

impl RequestRecord {
    /// Keeps what the logs read of `request`, and has its body's bytes counted. Boxed: the
    /// request's future holds it across its await, and must stay small when nothing is logged.
    pub(crate) fn new<B>(
        request: &mut Request<B>,
        logs: &AccessLogs,
        remote: SocketAddr,
        direct_remote: SocketAddr,
        local: SocketAddr,
    ) -> Box<Self> {
        let bytes_received = BodyBytes::default();
        request.extensions_mut().insert(bytes_received.clone());
        let routed = RouteSlot::default();
        request.extensions_mut().insert(routed.clone());
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = request.method().clone();
        parts.uri = request.uri().clone();
        parts.version = request.version();
        parts.headers = kept_headers(request.headers(), &logs.request_headers);
        let tls = request
            .extensions()
            .get::<ConnectionTls>()
            .map(|tls| tls.0.clone());
        Box::new(RequestRecord {
            tls,
            start: SystemTime::now(),
            started: Instant::now(),
            parts,
            remote,
            direct_remote,
            local,
            bytes_received,
            routed,
        })
    }
}

/// The values of `names` in `headers`, every one of each.
fn kept_headers(headers: &HeaderMap, names: &[http::HeaderName]) -> HeaderMap {
    let mut kept = HeaderMap::with_capacity(names.len());
    for name in names {
        for value in headers.get_all(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// A response body that writes the request's log entries when it ends (or is dropped early).
pub(crate) struct LoggedBody<B> {
    inner: B,
    pending: Option<Box<PendingEntry>>,
}

/// A request's entries with what its response said, written when the response ends.
struct PendingEntry {
    request: Unwritten,
    /// The response was sent whole: a body dropped before is the client's going away.
    complete: Completion,
    /// Bytes the client sent through its tunnel (after a 101), beside its request body's.
    tunnel_received: u64,
    status: u16,
    response_headers: HeaderMap,
    grpc_status: Option<u32>,
    info: AccessInfo,
    bytes_sent: u64,
}

/// The route and cluster a request was given, for `%ROUTE_NAME%` and `%UPSTREAM_CLUSTER%`:
/// the router fills it in as it decides, so an entry written for a request abandoned on its
/// way names them, as Envoy's does. Shared through the request's extensions when the
/// connection manager has access logs.
#[derive(Clone, Default)]
pub(crate) struct RouteSlot(Arc<Mutex<RouteNames>>);

#[derive(Default)]
struct RouteNames {
    route: Option<String>,
    cluster: Option<String>,
}

impl RouteSlot {
    pub(crate) fn set_route(&self, name: &str) {
        self.names().route = Some(name.to_string());
    }

    /// `None`: the request's cluster does not exist (Envoy's `-` on NC).
    pub(crate) fn set_cluster(&self, name: Option<&str>) {
        self.names().cluster = name.map(str::to_string);
    }

    fn names(&self) -> std::sync::MutexGuard<'_, RouteNames> {
        // Only ever locked on the request's own worker, never across a panic that matters.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What `%REQ(...)%` reads once the router has forwarded the request: Envoy's router changes
/// the downstream request's own headers (route header mutations, path and host rewrites with
/// `x-envoy-original-path`, `x-forwarded-for`, `x-envoy-expected-rq-timeout-ms`), and its
/// access log reads them after that. Only the headers the logs read are kept. Carried in the
/// response's extensions.
#[derive(Clone)]
pub(crate) struct ForwardedRequest {
    headers: HeaderMap,
    path: http::uri::PathAndQuery,
}

impl ForwardedRequest {
    /// `headers`, `path` and `authority` as they go upstream.
    pub(crate) fn new(
        headers: &HeaderMap,
        path: &http::uri::PathAndQuery,
        authority: Option<&str>,
        logs: &AccessLogs,
    ) -> Self {
        let mut kept = kept_headers(headers, &logs.request_headers);
        // An HTTP/2 upstream gets the authority apart from the headers.
        if let Some(value) = authority.and_then(|a| http::HeaderValue::from_str(a).ok()) {
            kept.insert(http::header::HOST, value);
        }
        ForwardedRequest {
            headers: kept,
            path: path.clone(),
        }
    }
}

impl<B: Body> LoggedBody<B> {
    /// Wraps a response for logging to the access logs of `chain`'s connection manager; with
    /// no record (no access logs), nothing is kept.
    pub(crate) fn wrap(
        mut response: Response<B>,
        unwritten: Option<Unwritten>,
    ) -> Response<LoggedBody<B>> {
        let tunnel = response.extensions_mut().remove::<TunnelLog>();
        let pending = unwritten.and_then(|mut request| {
            // hyper drops a body it need not read (empty, or a HEAD's) without polling it.
            let body = response.body();
            let complete = Completion {
                ended: body.is_end_stream() || request.record.parts.method == http::Method::HEAD,
                length: body.size_hint().exact(),
            };
            if let Some(forwarded) = response.extensions_mut().remove::<ForwardedRequest>() {
                request.record.parts.headers = forwarded.headers;
                request.record.parts.uri = http::Uri::from(forwarded.path);
            }
            let headers = response.headers();
            let logs = &request.chain.http()?.access_log;
            let info = response
                .extensions()
                .get::<AccessInfo>()
                .copied()
                .unwrap_or_default();
            Some(Box::new(PendingEntry {
                status: if info.unanswered {
                    0
                } else {
                    response.status().as_u16()
                },
                response_headers: kept_headers(headers, &logs.response_headers),
                grpc_status: grpc_status_header(headers),
                info,
                request,
                complete,
                tunnel_received: 0,
                bytes_sent: 0,
            }))
        });
        // An upgraded stream is logged when its tunnel closes, as Envoy logs it at stream end.
        let pending = match (pending, tunnel) {
            (Some(mut pending), Some(tunnel)) => {
                tokio::task::spawn_local(async move {
                    tunnel.closed.notified().await;
                    pending.tunnel_received = tunnel.received.load(Relaxed);
                    pending.bytes_sent = tunnel.sent.load(Relaxed);
                    pending.info.flag = pending.info.flag.or(tunnel.flag.get().copied());
                    pending.write();
                });
                None
            }
            (pending, _) => pending,
        };
        response.map(|inner| LoggedBody { inner, pending })
    }
}

/// The `grpc-status` a response (or its trailers) carries.
fn grpc_status_header(headers: &HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

impl<B> Body for LoggedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(pending) = self.pending.as_mut()
        {
            if let Some(data) = frame.data_ref() {
                pending.bytes_sent += data.len() as u64;
            } else if let Some(status) = frame.trailers_ref().and_then(grpc_status_header) {
                pending.grpc_status = Some(status);
            }
        }
        // Written at the body's end (or failure); a body dropped before either lost its client.
        let ended = match &polled {
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(frame))) => frame.is_trailers() || self.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if ended && let Some(pending) = self.pending.take() {
            pending.write();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for LoggedBody<B> {
    fn drop(&mut self) {
        if let Some(mut pending) = self.pending.take() {
            // Dropped before its end: the client went away mid-response (Envoy adds `DC`, or
            // `DR` for a reset HTTP/2 stream). hyper stops at a known length without polling
            // the end, so a body sent whole counts as ended.
            let sent_whole = pending
                .complete
                .length
                .is_some_and(|length| pending.bytes_sent >= length);
            if !pending.complete.ended && !sent_whole {
                pending.info.flag = pending.info.flag.or(Some(pending.request.abandoned.flag()));
            }
            pending.write();
        }
    }
}

/// A request's log entries until its response head is ready. Dropped before that (the client
/// went away and the request with it), they are written as Envoy writes them: response code
/// 0 and flag `DC` (`DR` for a reset HTTP/2 stream), with the route and cluster if the
/// request got that far.
pub(crate) struct AwaitingResponse(Option<Unwritten>);

/// A request's log entries, not written yet.
pub(crate) struct Unwritten {
    record: Box<RequestRecord>,
    /// Whose connection manager's access logs the entries go to.
    chain: ChainRef,
    buffers: Rc<AccessLogBuffers>,
    abandoned: Abandonment,
}

/// Whether a response body reached its end.
#[derive(Clone, Copy)]
struct Completion {
    ended: bool,
    /// Its length, when known: hyper stops writing there.
    length: Option<u64>,
}

/// Why a request ended before its response, as Envoy flags it: its connection closed (`DC`),
/// or, on a live HTTP/2 connection, the client reset its stream (`DR`).
#[derive(Clone)]
pub(crate) struct Abandonment {
    http2: bool,
    /// Set when the connection ends. An HTTP/1.1 request is dropped inside its connection's
    /// end, before this is set; an HTTP/2 stream's task runs after it.
    closed: Rc<Cell<bool>>,
}

impl Abandonment {
    pub(crate) fn new(http2: bool, closed: Rc<Cell<bool>>) -> Self {
        Abandonment { http2, closed }
    }

    fn flag(&self) -> ResponseFlag {
        if self.http2 && !self.closed.get() {
            ResponseFlag::DownstreamRemoteReset
        } else {
            ResponseFlag::DownstreamConnectionTermination
        }
    }
}

impl AwaitingResponse {
    /// Nothing to log without a record (the connection manager has no access logs).
    pub(crate) fn new(
        record: Option<Box<RequestRecord>>,
        chain: &ChainRef,
        buffers: &Rc<AccessLogBuffers>,
        abandoned: &Abandonment,
    ) -> Self {
        AwaitingResponse(record.map(|record| Unwritten {
            record,
            chain: chain.clone(),
            buffers: buffers.clone(),
            abandoned: abandoned.clone(),
        }))
    }

    /// The response head is ready: what [`LoggedBody::wrap`] takes.
    pub(crate) fn answered(mut self) -> Option<Unwritten> {
        self.0.take()
    }
}

impl Drop for AwaitingResponse {
    fn drop(&mut self) {
        if let Some(request) = self.0.take() {
            let abandoned = PendingEntry {
                info: AccessInfo {
                    flag: Some(request.abandoned.flag()),
                    upstream: None,
                    unanswered: true,
                },
                request,
                complete: Completion {
                    ended: false,
                    length: None,
                },
                tunnel_received: 0,
                status: 0,
                response_headers: HeaderMap::new(),
                grpc_status: None,
                bytes_sent: 0,
            };
            Box::new(abandoned).write();
        }
    }
}

/// An upgraded stream's tunnel as its log entries see it: the bytes it carried from and to
/// the client, and its end, when they are written (with the tunnel's whole duration). Carried
/// from the tunnel (`upgrade.rs`) to [`LoggedBody::wrap`] in the 101's extensions.
#[derive(Default)]
pub(crate) struct TunnelEnd {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub closed: Notify,
    /// Why the tunnel failed or was cut, if it did: the entry's response flag.
    flag: std::sync::OnceLock<ResponseFlag>,
}

impl TunnelEnd {
    pub(crate) fn ended_by(&self, flag: ResponseFlag) {
        let _ = self.flag.set(flag);
    }
}

pub(crate) type TunnelLog = Arc<TunnelEnd>;

impl PendingEntry {
    fn write(self: Box<Self>) {
        let Some(hcm) = self.request.chain.http() else {
            return;
        };
        let r = &self.request.record;
        let secure = self.request.chain.get().tls.is_some();
        let request = RequestView::from_parts(&r.parts, secure);
        let routed = r.routed.names();
        let end = StreamEnd {
            status: self.status,
            flag: self.info.flag,
            grpc_status: self.grpc_status,
            bytes_received: r.bytes_received.get() + self.tunnel_received,
            bytes_sent: self.bytes_sent,
            duration: r.started.elapsed(),
            upstream: self.info.upstream,
            cluster: routed.cluster.as_deref(),
            route: routed.route.as_deref(),
            response_headers: &self.response_headers,
        };
        let cx = FormatContext {
            request: Some(&request),
            remote: r.remote,
            direct_remote: r.direct_remote,
            local: r.local,
            tls: r.tls.as_deref(),
            version: r.parts.version,
            start: r.start,
            end: Some(&end),
        };
        write_entries(&hcm.access_log, &self.request.buffers, &cx);
    }
}

/// Each of the connection manager's logs whose filter passes gets its entry for `cx`.
fn write_entries(logs: &AccessLogs, buffers: &AccessLogBuffers, cx: &FormatContext<'_>) {
    let mut entry = String::with_capacity(256);
    for log in &logs.logs {
        if log.filter.as_ref().is_none_or(|filter| passes(filter, cx)) {
            entry.clear();
            write_entry(&mut entry, &log.format, cx);
            buffers.append(&log.sink, &entry);
        }
    }
}

/// A request the HTTP/1 codec answered before its head was whole (hyper's 400 or 431 for a
/// head it cannot parse, the 408 of a head out of time): logged as Envoy logs it, its
/// headers `-`.
pub(crate) struct HeadlessEntry {
    pub status: u16,
    pub flag: Option<ResponseFlag>,
    /// From the head's first byte, as far as it is known.
    pub duration: std::time::Duration,
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

impl HeadlessEntry {
    pub(crate) fn write(&self, logs: &AccessLogs, buffers: &AccessLogBuffers) {
        let no_headers = HeaderMap::new();
        let end = StreamEnd {
            status: self.status,
            flag: self.flag,
            grpc_status: None,
            bytes_received: 0,
            bytes_sent: 0,
            duration: self.duration,
            upstream: None,
            cluster: None,
            route: None,
            response_headers: &no_headers,
        };
        let cx = FormatContext {
            request: None,
            remote: self.peer,
            direct_remote: self.peer,
            local: self.local,
            tls: None,
            version: http::Version::HTTP_11,
            start: SystemTime::now()
                .checked_sub(self.duration)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            end: Some(&end),
        };
        write_entries(logs, buffers, &cx);
    }
}
