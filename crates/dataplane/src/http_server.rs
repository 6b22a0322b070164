//! The downstream HTTP side of a connection: hyper serving HTTP/1.1 and HTTP/2 (h2c, detected
//! by its preface) on the worker's own thread, and retiring it (HTTP/1.1 `Connection: close`,
//! HTTP/2 GOAWAY) when the listener drains (`--drain-time-s` as the limit) or the connection
//! reaches its request count or age (`connection_limits.rs`).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::watch;

use std::convert::Infallible;

use http::Request;
use hyper::body::Incoming;
use outrider_model::{
    DEFAULT_MAX_HEADERS_COUNT, HttpConnectionManager, ServerHeaderTransformation,
};

use crate::access_log::{LoggedBody, RequestRecord};
use crate::connection_limits::{Activity, RequestBudget, Retirement, watch_limits};
use crate::drain::DrainSignal;
use crate::filter_chain::ChainRef;
use crate::headers::{X_REQUEST_ID, append_via};
use crate::http_stats::{HttpCounters, HttpStats};
use crate::local_exec::LocalExec;
use crate::request::{Client, accept, proxy_request};
use crate::worker_context::WorkerContext;

pub(crate) async fn serve_http(
    context: Rc<WorkerContext>,
    chain: ChainRef,
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    mut drained: watch::Receiver<bool>,
) {
    let Some(hcm) = chain.http() else {
        return;
    };
    let header_limit = usize::try_from(hcm.max_request_headers_kb)
        .unwrap_or(usize::MAX)
        .saturating_mul(1024);
    let mut builder = auto::Builder::new(LocalExec);
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_buf_size(header_limit.max(8192))
        // hyper's timer runs from the moment the connection waits for a request's head, idle
        // keep-alive time included, and closes the connection when it fires (its default is
        // 30 s). So it serves as the HCM's `idle_timeout` (Envoy: 1 h), or as
        // `request_headers_timeout` when that is set (Envoy starts that one at the first byte).
        .header_read_timeout(hcm.request_headers_timeout.or(hcm.common.idle_timeout))
        .keep_alive(true);
    // hyper's default is Envoy's 100, parsed on the stack; another limit costs a heap buffer
    // per request, so it is set only when asked for.
    if hcm.common.max_headers_count != DEFAULT_MAX_HEADERS_COUNT {
        let max = usize::try_from(hcm.common.max_headers_count).unwrap_or(usize::MAX);
        builder.http1().max_headers(max);
    }
    let http2 = &hcm.http2;
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_header_list_size(u32::try_from(header_limit).unwrap_or(u32::MAX))
        // Envoy's default is 2^31 - 1 (hyper's own would be 200).
        .max_concurrent_streams(http2.max_concurrent_streams)
        .initial_stream_window_size(http2.initial_stream_window_size)
        .initial_connection_window_size(http2.initial_connection_window_size);
    if let Some(keepalive) = &http2.keepalive {
        builder
            .http2()
            .keep_alive_interval(keepalive.interval)
            .keep_alive_timeout(keepalive.timeout);
    }
    let drain_time = context.options.drain_time;
    let logged = !hcm.access_log.is_empty();
    let response_headers = ResponseHeaders::of(hcm);
    let drain = DrainSignal::new(drained.clone(), drain_time);
    let stats = Rc::new(context.http_stats(&hcm.stat_prefix));
    let _connection_counted = ConnectionCount::new(stats.clone());
    let budget = RequestBudget::of(hcm);
    let activity = Activity::new();
    let service = {
        let chain = chain.clone();
        let budget = budget.clone();
        let activity = activity.clone();
        let stats = stats.clone();
        service_fn(move |mut request: Request<Incoming>| {
            if let Some(budget) = &budget {
                budget.take();
            }
            let in_flight = activity.request_started();
            if request.headers().contains_key(http::header::UPGRADE) {
                // A tunnel outlives this connection's HTTP exchange: it must see the drain.
                request.extensions_mut().insert(drain.clone());
            }
            let context = context.clone();
            let chain = chain.clone();
            let stats = stats.clone();
            let response_headers = response_headers.clone();
            async move {
                let counted = RequestCount::new(stats.local());
                // Before the access log reads the request: the client's address decides
                // forwarding headers and whether `x-request-id` is replaced.
                let accepted = match chain.http() {
                    Some(hcm) => accept(&mut request, hcm, peer, local),
                    None => Ok(Client::direct(peer)),
                };
                let record = match (logged, chain.http()) {
                    (true, Some(hcm)) => {
                        let remote = match &accepted {
                            Ok(client) => {
                                client.address(request.headers(), hcm.xff_num_trusted_hops)
                            }
                            Err(_) => peer,
                        };
                        let logs = &hcm.access_log;
                        Some(RequestRecord::new(&mut request, logs, remote, peer, local))
                    }
                    _ => None,
                };
                let buffers = context.access_log.clone();
                let request_id = response_headers
                    .request_id
                    .then(|| request.headers().get(X_REQUEST_ID).cloned())
                    .flatten();
                // The log reads the connection manager's access logs when the request ends.
                let record = record.map(|record| (record, chain.clone()));
                // Pinned in place, not moved into a second slot (see `proxy_request`).
                let proxied = std::pin::pin!(proxy_request(
                    context,
                    chain,
                    stats.clone(),
                    accepted,
                    local,
                    request
                ));
                let mut response = proxied.await?;
                response_headers.apply(response.headers_mut(), request_id);
                // Counted when the response head is ready (Envoy counts at stream end).
                counted.0.count_response(response.status().as_u16());
                drop(counted);
                drop(in_flight);
                Ok::<_, Infallible>(LoggedBody::wrap(response, record, &buffers))
            }
        })
    };
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut limits = watch_limits(
        budget,
        hcm.common.max_connection_duration,
        hcm.common.idle_timeout.map(|timeout| (activity, timeout)),
        stats.clone(),
    );
    let limit_reached = async {
        match limits.as_mut() {
            Some(limits) => limits.reached().await,
            None => std::future::pending().await,
        }
    };
    let why = tokio::select! {
        biased;
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "downstream connection ended with an error");
            }
            return;
        }
        _ = drained.wait_for(|d| *d) => Retirement::Drain,
        () = limit_reached => Retirement::Limit,
    };
    // Finish what is in flight, refuse new requests, then close: within `--drain-time-s`
    // when the listener drains; a retired connection's last requests run their course, as
    // Envoy's do after its final GOAWAY.
    connection.as_mut().graceful_shutdown();
    match why {
        Retirement::Drain => {
            if tokio::time::timeout(drain_time, connection).await.is_err() {
                tracing::debug!(%peer, "drain time over; closing the connection");
            }
        }
        Retirement::Limit => {
            let _ = connection.await;
        }
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

/// Counts a downstream connection in `downstream_cx_total` / `downstream_cx_active` for as
/// long as it lives (on this worker's shard, which the decrement also hits).
struct ConnectionCount(Rc<HttpStats>);

impl ConnectionCount {
    fn new(stats: Rc<HttpStats>) -> Self {
        let counters = stats.local();
        counters.downstream_cx_total.fetch_add(1, Relaxed);
        counters.downstream_cx_active.fetch_add(1, Relaxed);
        ConnectionCount(stats)
    }
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.local().downstream_cx_active.fetch_sub(1, Relaxed);
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
