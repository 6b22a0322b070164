//! The downstream HTTP side of a connection: hyper serving HTTP/1.1 and HTTP/2 (h2c, detected
//! by its preface) on the worker's own thread, and retiring it (HTTP/1.1 `Connection: close`,
//! HTTP/2 GOAWAY) when the listener drains (`--drain-time-s` as the limit) or the connection
//! reaches its request count or age (`connection_limits.rs`).

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use http::{Request, Response};
use hyper::body::{Body as _, Incoming};
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::server::conn::{http1, http2};
use hyper::service::{HttpService, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use outrider_model::{
    DEFAULT_MAX_HEADERS_COUNT, HttpConnectionManager, ServerHeaderTransformation,
};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::access_log::{Abandonment, AwaitingResponse, LoggedBody, RequestRecord};
use crate::codec_sniff::{Codec, sniff};
use crate::connection_hold::ConnectionHold;
use crate::connection_limits::{
    Activity, InFlight, LimitWatch, RequestBudget, Retirement, watch_limits,
};
use crate::downstream_connections::ConnectionSlot;
use crate::downstream_io::{ConnectionTls, DownstreamIo, TlsSummary};
use crate::drain::DrainSignal;
use crate::filter_chain::ChainRef;
use crate::framing_conflict::FramingConflict;
use crate::head_refusal::HeadRefusal;
use crate::head_timer::{HeadLimits, HeadWatch, TimedHeadIo};
use crate::headers::{X_REQUEST_ID, append_via};
use crate::http_stats::{HttpCounters, HttpStats};
use crate::local_exec::LocalExec;
use crate::local_reply::ProxyBody;
use crate::premature_resets::{PrematureResets, StreamWatch};
use crate::request::{Client, Refused, accept, proxy_request};
use crate::tls_stats::TlsCounters;
use crate::worker_context::WorkerContext;

/// Serves one downstream connection (`stream` from `peer` to `local`) with the HTTP
/// connection manager of its filter chain, until the client closes it or it is retired.
pub(crate) async fn serve_http(
    context: Rc<WorkerContext>,
    chain: ChainRef,
    (stream, peer, local): (TcpStream, SocketAddr, SocketAddr),
    mut drained: watch::Receiver<bool>,
    slot: ConnectionSlot,
    tls_counters: Option<&TlsCounters>,
) {
    let Some(hcm) = chain.http() else {
        return;
    };
    let stats = Rc::new(context.http_stats(&hcm.stat_prefix));
    let hold = ConnectionHold::new(HttpStats::clone(&stats), slot);
    let budget = RequestBudget::of(hcm);
    let activity = Activity::new();
    let mut limits = watch_limits(
        budget.clone(),
        hcm.common.max_connection_duration,
        hcm.common
            .idle_timeout
            .map(|timeout| (activity.clone(), timeout)),
        stats.clone(),
    );
    // A connection that has not finished its TLS handshake or sent enough to tell its codec
    // is closed when its listener drains or one of its limits (`idle_timeout`) is reached.
    let filter_chain = chain.get();
    let opened = async {
        let io = DownstreamIo::open(
            stream,
            filter_chain.tls.as_ref(),
            filter_chain.handshake_timeout,
            tls_counters,
        )
        .await?;
        sniff(io).await
    };
    let (codec, io) = tokio::select! {
        biased;
        sniffed = opened => match sniffed {
            Ok(sniffed) => sniffed,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "downstream connection failed before a request");
                return;
            }
        },
        _ = drained.wait_for(|d| *d) => return,
        () = limit_reached(&mut limits) => return,
    };
    let tls = io.stream().tls_summary().map(Arc::new);
    let closed = Rc::new(Cell::new(false));
    let resets =
        (codec == Codec::Http2).then(|| Rc::new(PrematureResets::new(HttpStats::clone(&stats))));
    let head = (codec == Codec::Http1).then(|| Arc::new(HeadWatch::default()));
    let (log_buffers, refusal_stats) = (context.access_log.clone(), HttpStats::clone(&stats));
    let response_headers = ResponseHeaders::of(hcm);
    let requests = Rc::new(ConnectionRequests {
        tls,
        head: head.clone(),
        abandoned: Abandonment::new(codec == Codec::Http2, closed.clone()),
        resets: resets.clone(),
        closed: closed.clone(),
        drain: DrainSignal::new(drained.clone(), context.options.drain_time),
        hold,
        logged: !hcm.access_log.is_empty(),
        response_headers: response_headers.clone(),
        context,
        chain: chain.clone(),
        stats,
        budget,
        activity,
        peer,
        local,
    });
    let retired = Retire {
        drained,
        limits,
        resets,
        peer,
        drain_time: requests.context.options.drain_time,
    };
    let refused = match (codec, head) {
        (Codec::Http1, Some(head)) => {
            let limits = HeadLimits {
                headers: hcm.request_headers_timeout,
                idle: hcm.stream_idle_timeout,
            };
            let server = response_headers.server.clone();
            let io = TokioIo::new(TimedHeadIo::new(io, head.clone(), limits, server));
            let service = service_fn(move |request| {
                let started = requests.start(request);
                serve_request(requests.clone(), started, proxy_request)
            });
            let connection = http1_builder(hcm)
                .serve_connection(io, service)
                .with_upgrades();
            let ended = retired.drive(connection).await;
            HeadRefusal::of(&head, limits, ended.as_ref())
        }
        (_, _) => {
            let io = TokioIo::new(io);
            // Each stream's future is moved into a task of its own: moving a box is moving
            // a pointer (the request's whole future is ~6 KB).
            let boxed = |context, chain, stats, accepted, local, request| {
                Box::pin(proxy_request(
                    context, chain, stats, accepted, local, request,
                ))
            };
            let service = service_fn(move |request| {
                let started = requests.start(request);
                serve_request(requests.clone(), started, boxed)
            });
            let connection = http2_builder(hcm).serve_connection(io, service);
            retired.drive(connection).await;
            None
        }
    };
    // In the poll that ended the connection: its HTTP/2 streams' tasks run after this.
    closed.set(true);
    if let Some(refused) = refused {
        refused.count_and_log(&refusal_stats, hcm, &log_buffers, peer, local);
    }
}

/// The HTTP/1.x codec as the connection manager configures it.
fn http1_builder(hcm: &HttpConnectionManager) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .max_buf_size(header_limit(hcm).max(8192))
        // hyper's timer runs from the moment the connection waits for a request's head, idle
        // keep-alive time included, and closes the connection when it fires (its default is
        // 30 s). So it serves as the HCM's `idle_timeout` (Envoy: 1 h); a head that has
        // begun is timed from its first byte by `head_timer.rs`.
        .header_read_timeout(hcm.common.idle_timeout)
        .keep_alive(true);
    // hyper's default is Envoy's 100, parsed on the stack; another limit costs a heap buffer
    // per request, so it is set only when asked for.
    if hcm.common.max_headers_count != DEFAULT_MAX_HEADERS_COUNT {
        let max = usize::try_from(hcm.common.max_headers_count).unwrap_or(usize::MAX);
        builder.max_headers(max);
    }
    builder
}

/// The HTTP/2 codec as the connection manager configures it.
fn http2_builder(hcm: &HttpConnectionManager) -> http2::Builder<LocalExec> {
    let http2 = &hcm.http2;
    let mut builder = http2::Builder::new(LocalExec);
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(header_limit(hcm)).unwrap_or(u32::MAX))
        // Envoy's default is 2^31 - 1 (hyper's own would be 200).
        .max_concurrent_streams(http2.max_concurrent_streams)
        .initial_stream_window_size(http2.initial_stream_window_size)
        .initial_connection_window_size(http2.initial_connection_window_size);
    if let Some(keepalive) = &http2.keepalive {
        builder
            .keep_alive_interval(keepalive.interval)
            .keep_alive_timeout(keepalive.timeout);
    }
    builder
}

/// `max_request_headers_kb` in bytes.
fn header_limit(hcm: &HttpConnectionManager) -> usize {
    usize::try_from(hcm.max_request_headers_kb)
        .unwrap_or(usize::MAX)
        .saturating_mul(1024)
}

/// What every request of one connection shares.
struct ConnectionRequests {
    /// The connection's TLS as the access log prints it, handed to each request.
    tls: Option<Arc<TlsSummary>>,
    context: Rc<WorkerContext>,
    chain: ChainRef,
    stats: Rc<HttpStats>,
    budget: Option<Rc<RequestBudget>>,
    activity: Rc<Activity>,
    drain: DrainSignal,
    /// The connection's place under the limits, shared with a tunnel taken from it.
    hold: ConnectionHold,
    /// HTTP/1.1: where the connection is between heads, for their timer.
    head: Option<Arc<HeadWatch>>,
    abandoned: Abandonment,
    /// HTTP/2 only: streams reset before their answer (Envoy's rapid-reset defence).
    resets: Option<Rc<PrematureResets>>,
    /// Set when the connection ends.
    closed: Rc<Cell<bool>>,
    logged: bool,
    response_headers: ResponseHeaders,
    peer: SocketAddr,
    local: SocketAddr,
}

/// A request as the codec hands it over, counted against the connection's limits.
struct Started {
    request: Request<Incoming>,
    in_flight: InFlight,
}

impl ConnectionRequests {
    /// Done when the codec hands the request over, before its future first runs (an HTTP/2
    /// stream's runs later, as a task).
    fn start(&self, mut request: Request<Incoming>) -> Started {
        if let Some(budget) = &self.budget {
            budget.take();
        }
        if let Some(tls) = &self.tls {
            request.extensions_mut().insert(ConnectionTls(tls.clone()));
        }
        if let Some(head) = &self.head {
            let handed = head.request_started(!request.body().is_end_stream());
            if let Some(end) = handed.body_end {
                request.extensions_mut().insert(end);
            }
            if handed.framing_conflict {
                request.extensions_mut().insert(FramingConflict);
            }
        }
        if request.headers().contains_key(http::header::UPGRADE) {
            // A tunnel outlives this connection's HTTP exchange: it must see the drain, and
            // it holds the connection's place until it closes.
            request.extensions_mut().insert(self.drain.clone());
            request.extensions_mut().insert(self.hold.clone());
            if let Some(head) = &self.head {
                request.extensions_mut().insert(head.clone());
            }
        }
        Started {
            request,
            in_flight: self.activity.request_started(),
        }
    }
}

/// One request, from the codec's hand-over to its response head. `proxy` runs the request
/// path: `proxy_request` itself, or a box of it (see `serve_http`).
async fn serve_request<P>(
    requests: Rc<ConnectionRequests>,
    started: Started,
    proxy: impl FnOnce(
        Rc<WorkerContext>,
        ChainRef,
        Rc<HttpStats>,
        Result<Client, Refused>,
        SocketAddr,
        Request<Incoming>,
    ) -> P,
) -> Result<Response<LoggedBody<ProxyBody>>, Infallible>
where
    P: Future<Output = Result<Response<ProxyBody>, Infallible>>,
{
    let Started {
        mut request,
        in_flight,
    } = started;
    let ConnectionRequests {
        context,
        chain,
        stats,
        abandoned,
        logged,
        response_headers,
        peer,
        local,
        resets,
        closed,
        ..
    } = &*requests;
    let (peer, local) = (*peer, *local);
    let counted = RequestCount::new(stats.local());
    // Before the access log reads the request: the client's address decides forwarding
    // headers and whether `x-request-id` is replaced.
    let accepted = match chain.http() {
        Some(hcm) => {
            let secure = chain.get().tls.is_some();
            accept(&mut request, hcm, peer, local, secure)
        }
        None => Ok(Client::direct(peer)),
    };
    let record = match (*logged, chain.http()) {
        (true, Some(hcm)) => {
            let remote = match &accepted {
                Ok(client) => client.address(request.headers(), hcm.xff_num_trusted_hops),
                Err(_) => peer,
            };
            let logs = &hcm.access_log;
            Some(RequestRecord::new(&mut request, logs, remote, peer, local))
        }
        _ => None,
    };
    let request_id = response_headers
        .request_id
        .then(|| request.headers().get(X_REQUEST_ID).cloned())
        .flatten();
    // The log reads the connection manager's access logs when the request ends.
    let record = AwaitingResponse::new(record, chain, &context.access_log, abandoned);
    // Pinned in place, not moved into a second slot (see `proxy_request`).
    let proxied = std::pin::pin!(proxy(
        context.clone(),
        chain.clone(),
        stats.clone(),
        accepted,
        local,
        request
    ));
    let watch = StreamWatch::new(resets.as_deref(), closed);
    let mut response = proxied.await?;
    watch.answered();
    response_headers.apply(response.headers_mut(), request_id);
    // Counted when the response head is ready (Envoy counts at stream end).
    counted.0.count_response(response.status().as_u16());
    drop(counted);
    drop(in_flight);
    Ok(LoggedBody::wrap(response, record.answered()))
}

/// Resolves when the connection's streams were mostly reset early; never for HTTP/1.1.
async fn too_many_resets(resets: Option<&PrematureResets>) {
    match resets {
        Some(resets) => resets.too_many().await,
        None => std::future::pending().await,
    }
}

/// Resolves when one of the connection's limits is reached; never without limits.
async fn limit_reached(limits: &mut Option<LimitWatch>) {
    match limits {
        Some(limits) => limits.reached().await,
        None => std::future::pending().await,
    }
}

/// A connection codec that can stop taking requests and finish what is in flight.
trait Retirable: Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, B, S> Retirable for http1::UpgradeableConnection<I, S>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, B, S> Retirable for http2::Connection<I, S, LocalExec>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
    LocalExec: Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self);
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What retires a connection: its listener's drain and its own limits.
struct Retire {
    drained: watch::Receiver<bool>,
    limits: Option<LimitWatch>,
    resets: Option<Rc<PrematureResets>>,
    peer: SocketAddr,
    drain_time: std::time::Duration,
}

impl Retire {
    /// Serves the connection until it ends, or until it is retired and then finishes; the
    /// codec's error if it ended with one before being retired.
    async fn drive(mut self, connection: impl Retirable) -> Option<hyper::Error> {
        let peer = self.peer;
        let connection = std::pin::pin!(connection);
        let mut connection = connection;
        let why = tokio::select! {
            biased;
            result = connection.as_mut() => {
                let error = result.err();
                if let Some(e) = &error {
                    tracing::debug!(%peer, error = %e, "downstream connection ended with an error");
                }
                return error;
            }
            _ = self.drained.wait_for(|d| *d) => Retirement::Drain,
            () = limit_reached(&mut self.limits) => Retirement::Limit,
            () = too_many_resets(self.resets.as_deref()) => {
                // Aborted at once, as Envoy does: its streams were mostly resets.
                tracing::debug!(%peer, "too many streams reset before their answer; closing");
                return None;
            }
        };
        // Finish what is in flight, refuse new requests, then close: within `--drain-time-s`
        // when the listener drains; a retired connection's last requests run their course, as
        // Envoy's do after its final GOAWAY.
        connection.as_mut().graceful_shutdown();
        match why {
            Retirement::Drain => {
                if tokio::time::timeout(self.drain_time, connection)
                    .await
                    .is_err()
                {
                    tracing::debug!(%peer, "drain time over; closing the connection");
                }
            }
            Retirement::Limit => {
                let _ = connection.await;
            }
        }
        None
    }
}

/// What the connection manager adds to every response, local replies included (Envoy's
/// `mutateResponseHeaders` and `encodeHeaders`): `server` per `server_header_transformation`,
/// its `via`, and the request's `x-request-id` when `always_set_request_id_in_response`.
/// Prepared once per connection; a response costs a shared-bytes clone at most.
#[derive(Clone)]
struct ResponseHeaders {
    /// `None` with `PASS_THROUGH`.
    server: Option<http::HeaderValue>,
    /// `APPEND_IF_ABSENT`: keep an upstream's own `server`.
    server_if_absent: bool,
    via: Option<Rc<str>>,
    request_id: bool,
}

impl ResponseHeaders {
    fn of(hcm: &HttpConnectionManager) -> Self {
        let server = match hcm.server_name.as_str() {
            // Envoy's default name is a static header value: no copy per response.
            "" | "envoy" => Some(http::HeaderValue::from_static("envoy")),
            // The model checked it is a valid header value.
            name => http::HeaderValue::from_str(name).ok(),
        };
        ResponseHeaders {
            server: server.filter(|_| {
                hcm.server_header_transformation != ServerHeaderTransformation::PassThrough
            }),
            server_if_absent: hcm.server_header_transformation
                == ServerHeaderTransformation::AppendIfAbsent,
            via: hcm.via.as_deref().map(Rc::from),
            request_id: hcm.always_set_request_id_in_response,
        }
    }

    fn apply(&self, headers: &mut http::HeaderMap, request_id: Option<http::HeaderValue>) {
        if let Some(server) = &self.server
            && !(self.server_if_absent && headers.contains_key(http::header::SERVER))
        {
            headers.insert(http::header::SERVER, server.clone());
        }
        if let Some(id) = request_id {
            headers.insert(X_REQUEST_ID, id);
        }
        if let Some(via) = &self.via {
            append_via(headers, via);
        }
    }
}

/// Counts a request in `downstream_rq_total` and, until dropped (answered or abandoned),
/// `downstream_rq_active`.
struct RequestCount<'a>(&'a HttpCounters);

impl<'a> RequestCount<'a> {
    fn new(counters: &'a HttpCounters) -> Self {
        counters.downstream_rq_total.fetch_add(1, Relaxed);
        counters.downstream_rq_active.fetch_add(1, Relaxed);
        RequestCount(counters)
    }
}

impl Drop for RequestCount<'_> {
    fn drop(&mut self) {
        self.0.downstream_rq_active.fetch_sub(1, Relaxed);
    }
}
