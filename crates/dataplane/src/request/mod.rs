//! One downstream HTTP request, in phases:
//!
//! 1. admit (`admit.rs`): the codec's checks on the head;
//! 2. route (`host.rs`, `route.rs`): host as the connection manager leaves it, `x-envoy-*`
//!    clean-up, virtual host and route, and the answers a route gives itself;
//! 3. plan (`plan.rs`): a pure function of request and route: cluster, rewrites, hash,
//!    timeout, retry policy;
//! 4. forward (`forward.rs`, `upstream_headers.rs`, `body.rs`): admission to the cluster and
//!    the upstream request;
//! 5. attempt and retry (`attempt.rs`, `retry.rs`);
//! 6. respond (`respond.rs` for an answer, `error.rs` for a failure), then the route's response
//!    header mutations.
//!
//! Every failure is a [`ProxyError`], mapped to its local reply in one place.

mod admit;
mod attempt;
mod body;
mod clean;
mod client;
mod error;
mod forward;
mod host;
mod path;
mod plan;
mod respond;
mod retry;
mod route;
#[cfg(test)]
mod test_support;
mod timeouts;
mod upstream_headers;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{Request, Response, StatusCode};
use hyper::body::{Body as _, Incoming};
use outrider_model::{HashSource, HttpConnectionManager, RouteAction, StripHostPort};

use clean::clean_request_headers;
pub(crate) use client::Client;
use error::{ProxyError, ReplyTo};

use crate::access_log::RouteSlot;
use crate::downstream_io::ConnectionTls;
use crate::filter_chain::ChainRef;
use crate::formatter::FormatContext;
use crate::headers::ensure_request_id;
use crate::http_stats::HttpStats;
use crate::local_reply::ProxyBody;
use crate::route_headers::RouteHeaders;
use crate::routing::{RequestView, is_grpc_request};
use crate::stream_clock::StreamClock;
use crate::worker_context::WorkerContext;
use forward::{ForwardContext, forward};
use route::Selected;

/// The connection manager's first look at a request, before anything reads it (the access
/// log included): the codec's checks, who the client is and what that changes in the headers
/// (`client.rs`), and `x-request-id` (replaced on an edge request unless
/// `preserve_external_request_id`).
pub(crate) fn accept(
    request: &mut Request<Incoming>,
    hcm: &HttpConnectionManager,
    peer: SocketAddr,
    local: SocketAddr,
    secure: bool,
) -> Result<Client, Refused> {
    if let Err(refused) = admit::admit(request, hcm, secure) {
        let to = ReplyTo {
            grpc: is_grpc_request(request.headers()),
            version: request.version(),
            suppress_envoy_headers: hcm.suppress_envoy_headers,
        };
        return Err(Refused(refused, to));
    }
    let client = client::resolve(request.headers_mut(), hcm, peer, local, secure);
    if hcm.generate_request_id {
        let replace = client.edge && !hcm.preserve_external_request_id;
        ensure_request_id(request.headers_mut(), replace);
    }
    Ok(client)
}

/// A request [`accept`] refused, and how to answer it.
pub(crate) struct Refused(ProxyError, ReplyTo);

impl Refused {
    pub(crate) fn into_response(self) -> Response<ProxyBody> {
        self.0.into_response(self.1)
    }
}

/// hyper's service, after [`accept`]: never fails; every error becomes a response.
pub(crate) async fn proxy_request(
    context: Rc<WorkerContext>,
    chain: ChainRef,
    stats: Rc<HttpStats>,
    accepted: Result<Client, Refused>,
    local: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    // Taken here rather than by the caller, so that its await stays straight-line (a branch
    // around it costs a move of this whole future per request).
    let client = match accepted {
        Ok(client) => client,
        Err(refused) => return Ok(refused.into_response()),
    };
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    let grpc = is_grpc_request(&parts.headers);
    let Some(hcm) = chain.http() else {
        let to = ReplyTo {
            grpc,
            version: parts.version,
            suppress_envoy_headers: false,
        };
        return Ok(ProxyError::NotHttp.into_response(to));
    };
    let reply_to = ReplyTo {
        grpc,
        version: parts.version,
        suppress_envoy_headers: hcm.suppress_envoy_headers,
    };
    if path::normalizes(hcm) {
        match normalized_path(&mut parts, hcm, grpc, &stats) {
            Ok(None) => {}
            Ok(Some(redirect)) => return Ok(redirect),
            Err(error) => return Ok(error.into_response(reply_to)),
        }
    }
    if hcm.strip_host_port != StripHostPort::None || hcm.strip_trailing_host_dot {
        host::rewrite_host(&mut parts, hcm, local.port());
    }
    // Filled in as the route and cluster are decided (with access logs only).
    let route_slot = parts.extensions.remove::<RouteSlot>();
    // One owned snapshot for the whole request: a concurrent update cannot mix two versions.
    let snapshot = context.tables.load_full();
    let routes = match route::route_table(hcm, &snapshot) {
        Ok(routes) => routes,
        Err(error) => return Ok(error.into_response(reply_to)),
    };
    // Before routing, as Envoy's connection manager: routes never see what it removes.
    let envoy_controls =
        clean_request_headers(&mut parts.headers, &client, &routes.internal_only_headers);
    // `:scheme`, and the scheme a redirect keeps: the connection's.
    let secure = chain.get().tls.is_some();
    let view = RequestView::from_parts_with_grpc(&parts, secure, grpc);
    let compiled = context.routes(&routes);
    let (vhost, route) = match route::select(&compiled, &view) {
        Ok(Selected::Route(vhost, route)) => (vhost, route),
        Ok(Selected::TlsRedirect(location)) => {
            return Ok(route::redirect_response(
                StatusCode::MOVED_PERMANENTLY,
                &location,
            ));
        }
        Err(error) => return Ok(error.into_response(reply_to)),
    };
    let mut route_headers = RouteHeaders::new(&routes, vhost, route);
    // Values made with command operators are computed from the request while it is here.
    let render = |route_headers: &mut RouteHeaders<'_>| {
        if !route_headers.is_empty() && route_headers.has_formats() {
            let cx = FormatContext {
                request: Some(&view),
                remote: client.address(&parts.headers, hcm.xff_num_trusted_hops),
                direct_remote: client.peer,
                local,
                tls: parts.extensions.get::<ConnectionTls>().map(|tls| &*tls.0),
                version: parts.version,
                start: SystemTime::now()
                    .checked_sub(started.elapsed())
                    .unwrap_or(UNIX_EPOCH),
                end: None,
            };
            route_headers.render(&cx);
        }
    };
    if let Some(slot) = &route_slot {
        slot.set_route(&route.name);
    }
    let mut forwarded = None;
    let mut response = match &route.action {
        RouteAction::DirectResponse(direct) => {
            render(&mut route_headers);
            route::direct(direct, &view)
        }
        RouteAction::Redirect(action) => {
            render(&mut route_headers);
            route::redirected(route, action, &view)
        }
        RouteAction::Forward(action) => {
            // The client's address only where a hash policy reads it (it may mean parsing
            // x-forwarded-for).
            let reads_address = action.hash_policy.iter().any(|p| {
                matches!(
                    p.source,
                    HashSource::SourceIp | HashSource::Cookie { ttl: Some(_), .. }
                )
            });
            let peer = if reads_address {
                client.address(&parts.headers, hcm.xff_num_trusted_hops)
            } else {
                client.peer
            };
            let downstream = plan::Downstream {
                peer,
                local,
                envoy_controls,
            };
            let plan = plan::plan(hcm, vhost, route, action, &view, downstream, rand::random());
            if let Some(slot) = &route_slot {
                slot.set_cluster(plan.cluster.as_deref());
            }
            if let Some(weighted) = plan.weighted {
                route_headers.with_weighted(&weighted.header_mutations);
            }
            render(&mut route_headers);
            let clock =
                StreamClock::start(started, plan.timeouts.stream, body.is_end_stream(), &stats);
            let cx = ForwardContext {
                worker: &context,
                snapshot: &snapshot,
                hcm,
                vhost,
                route_headers: &route_headers,
                action,
                started,
                clock: clock.as_ref(),
                forwarded: (!hcm.access_log.is_empty()).then_some(&mut forwarded),
            };
            // The stream's limits are watched in every wait until the response head (forward
            // uses `within`), and by the response body after that. Pinned where it is built
            // and awaited by reference: awaited by value, it would take a second slot of this
            // future (9.9 KB instead of 5.7 KB, copied at every move of a request's task).
            let forwarded = std::pin::pin!(forward(cx, &plan, parts, body));
            match forwarded.await {
                Ok(response) => response,
                Err(error) => {
                    // Envoy's `%UPSTREAM_CLUSTER%` names a cluster that exists: `-` on NC.
                    if let (ProxyError::ClusterNotFound { .. }, Some(slot)) = (&error, &route_slot)
                    {
                        slot.set_cluster(None);
                    }
                    error.into_response(reply_to)
                }
            }
        }
    };
    if !route_headers.is_empty() {
        route_headers.apply_to_response(response.headers_mut());
    }
    if let Some(forwarded) = forwarded {
        response.extensions_mut().insert(forwarded);
    }
    Ok(response)
}

/// Envoy's `maybeNormalizePath` on `parts`: the path routed and forwarded from here on, or a
/// 307 to the unescaped path (`UNESCAPE_AND_REDIRECT`; gRPC cannot follow one: 400), or 400.
fn normalized_path(
    parts: &mut http::request::Parts,
    hcm: &outrider_model::HttpConnectionManager,
    grpc: bool,
    stats: &HttpStats,
) -> Result<Option<Response<ProxyBody>>, ProxyError> {
    let original = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let counters = stats.local();
    let failed = || {
        counters
            .downstream_rq_failed_path_normalization
            .fetch_add(1, Relaxed);
        ProxyError::InvalidPath
    };
    let rewritten = match path::normalize(original, hcm) {
        path::PathVerdict::Continue(None) => return Ok(None),
        path::PathVerdict::Continue(Some(rewritten)) => rewritten,
        path::PathVerdict::Reject => return Err(failed()),
        path::PathVerdict::Redirect(_) if grpc => return Err(failed()),
        path::PathVerdict::Redirect(location) => {
            counters
                .downstream_rq_redirected_with_normalized_path
                .fetch_add(1, Relaxed);
            return Ok(Some(route::redirect_response(
                StatusCode::TEMPORARY_REDIRECT,
                &location,
            )));
        }
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = Some(http::uri::PathAndQuery::try_from(rewritten).map_err(|_| failed())?);
    parts.uri = http::Uri::from_parts(uri).map_err(|_| failed())?;
    Ok(None)
}
