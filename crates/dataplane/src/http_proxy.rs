//! One downstream HTTP request: find its route in the current tables, then answer it directly,
//! redirect it, or forward it to the route's cluster.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use outrider_model::{HttpConnectionManager, RouteAction, RouteSource, StripHostPort};

use crate::connection::ChainRef;
use crate::forward::{ForwardContext, Plan, forward};
use crate::internal_request::clean_request_headers;
use crate::local_reply::{Flagged, ProxyBody, ResponseFlag, local_reply};
use crate::route_headers::RouteHeaders;
use crate::routing::{
    RequestView, TlsCheck, choose_cluster, direct_response, is_grpc_request, redirect,
    request_hash, rewrite_authority, rewrite_path, strip_host_port,
};
use crate::underscore_headers;
use crate::worker_context::WorkerContext;

/// Envoy's `strip_trailing_host_dot` and `strip_any_host_port` / `strip_matching_host_port`:
/// the host loses its trailing dot and its port before routing, and goes upstream without them
/// (the `Host` header and, for HTTP/2 and absolute-form requests, the URI's authority).
fn rewrite_host(parts: &mut http::request::Parts, hcm: &HttpConnectionManager, listener_port: u16) {
    let authority = RequestView::from_parts(parts, false).authority;
    let mut host = std::borrow::Cow::Borrowed(authority);
    if hcm.strip_trailing_host_dot {
        host = match strip_trailing_dot(&host) {
            Some(stripped) => std::borrow::Cow::Owned(stripped),
            None => host,
        };
    }
    let port = match hcm.strip_host_port {
        StripHostPort::None => None,
        StripHostPort::Matching => Some(Some(listener_port)),
        StripHostPort::Any => Some(None),
    };
    if let Some(port) = port
        && let Some(stripped) = strip_host_port(&host, port, &parts.method)
    {
        host = std::borrow::Cow::Owned(stripped.to_owned());
    }
    let std::borrow::Cow::Owned(host) = host else {
        return;
    };
    if parts.headers.contains_key(header::HOST)
        && let Ok(value) = HeaderValue::from_str(&host)
    {
        parts.headers.insert(header::HOST, value);
    }
    if parts.uri.authority().is_some()
        && let Ok(authority) = http::uri::Authority::try_from(host.as_str())
    {
        let mut uri = parts.uri.clone().into_parts();
        uri.authority = Some(authority);
        if let Ok(uri) = http::Uri::from_parts(uri) {
            parts.uri = uri;
        }
    }
}

/// `example.com.` → `example.com`, `example.com.:80` → `example.com:80` (Envoy's
/// `HeaderUtility::stripTrailingHostDot`); `None` when there is no trailing dot.
fn strip_trailing_dot(authority: &str) -> Option<String> {
    let (host, port) = match authority.rfind(':') {
        // An IPv6 literal's colons are inside brackets.
        Some(colon) if !authority[colon..].contains(']') => {
            (&authority[..colon], &authority[colon..])
        }
        _ => (authority, ""),
    };
    host.strip_suffix('.').map(|bare| format!("{bare}{port}"))
}

/// hyper's service: never fails; every error becomes a response.
pub(crate) async fn proxy_request(
    context: Rc<WorkerContext>,
    chain: ChainRef,
    peer: SocketAddr,
    local: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    let Some(hcm) = chain.http() else {
        let grpc = is_grpc_request(&parts.headers);
        return Ok(local_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "",
            grpc,
            None,
        ));
    };
    // Envoy's codec limit on the request's header bytes (names and values, pseudo-headers
    // included). hyper's own HTTP/1 buffer cannot go below 8 KiB and counts the raw head, so
    // the exact limit is checked here.
    if header_bytes(&parts) > hcm.max_request_headers_kb as usize * 1024 {
        let grpc = is_grpc_request(&parts.headers);
        let reply = local_reply(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "", grpc, None);
        return Ok(close_http1(parts.version, reply));
    }
    if underscore_headers::refused(&mut parts.headers, hcm.common.headers_with_underscores) {
        let grpc = is_grpc_request(&parts.headers);
        let reply = local_reply(StatusCode::BAD_REQUEST, "", grpc, None);
        return Ok(close_http1(parts.version, reply));
    }
    if hcm.strip_host_port != StripHostPort::None || hcm.strip_trailing_host_dot {
        rewrite_host(&mut parts, hcm, local.port());
    }
    // HTTP/1.0 only where the connection manager accepts it, as Envoy: 426 and close.
    if parts.version == http::Version::HTTP_10 && !hcm.http1.accept_http_10 {
        return Ok(closing(local_reply(
            StatusCode::UPGRADE_REQUIRED,
            "",
            is_grpc_request(&parts.headers),
            None,
        )));
    }
    // One owned snapshot for the whole request: a concurrent update cannot mix two versions.
    let snapshot = context.tables.load_full();
    let routes = match &hcm.routes {
        RouteSource::Inline(routes) => routes.clone(),
        RouteSource::Rds {
            route_config_name, ..
        } => match snapshot.route_config(route_config_name) {
            Some(routes) => routes.clone(),
            None => return Ok(no_route(is_grpc_request(&parts.headers))),
        },
    };
    // Before routing, as Envoy's connection manager: routes never see what it removes.
    clean_request_headers(
        &mut parts.headers,
        &hcm.internal_addresses,
        &routes.internal_only_headers,
    );
    let view = RequestView::from_parts(&parts, false);
    let grpc = view.is_grpc;
    let compiled = context.routes(&routes);
    match compiled.tls_check(&view) {
        TlsCheck::Pass => {}
        TlsCheck::NoRoute => return Ok(no_route(grpc)),
        // No route was chosen, so no route header mutations either: Envoy's TLS-redirect
        // route has none.
        TlsCheck::Redirect(location) => {
            return Ok(redirect_response(StatusCode::MOVED_PERMANENTLY, &location));
        }
    }
    let Some((vhost, route)) = compiled.route(&view) else {
        return Ok(no_route(grpc));
    };
    let route_headers = RouteHeaders::new(&routes, vhost, route);
    let mut response = match &route.action {
        RouteAction::DirectResponse(direct) => {
            let local = direct_response(direct, &view);
            let mut response =
                Response::new(Either::Right(Full::new(Bytes::copy_from_slice(local.body))));
            *response.status_mut() = StatusCode::from_u16(local.status).unwrap_or(StatusCode::OK);
            if !local.body.is_empty() {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            }
            if let Some(location) = local.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        RouteAction::Redirect(action) => {
            let target = redirect(&route.route_match, action, &view);
            let status =
                StatusCode::from_u16(target.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
            redirect_response(status, &target.location)
        }
        RouteAction::Forward(action) => {
            let choice = choose_cluster(action, &view, rand::random());
            let hash = request_hash(&action.hash_policy, &view, peer, local);
            let plan = Plan {
                cluster: choice.cluster.map(|c| c.into_owned()),
                hash: hash.hash,
                set_cookies: hash.set_cookies,
                path: match rewrite_path(route, view.path_and_query) {
                    Cow::Owned(rewritten) => Some(rewritten),
                    Cow::Borrowed(_) => None,
                },
                authority: rewrite_authority(action, choice.weighted, &view)
                    .map(|a| a.into_owned()),
            };
            let forward_context = ForwardContext {
                worker: &context,
                snapshot: &snapshot,
                hcm,
                vhost,
                route_headers: &route_headers,
                action,
                peer,
                grpc,
                started,
            };
            forward(forward_context, plan, parts, body).await
        }
    };
    if !route_headers.is_empty() {
        route_headers.apply_to_response(response.headers_mut());
    }
    Ok(response)
}

/// A request Envoy's HTTP/1 codec refuses: the connection closes after the answer (an HTTP/2
/// stream just gets the answer, where Envoy resets it).
fn close_http1(version: http::Version, response: Response<ProxyBody>) -> Response<ProxyBody> {
    if version == http::Version::HTTP_2 {
        response
    } else {
        closing(response)
    }
}

/// Envoy's `HeaderMap::byteSize`: every name and value, `:method`, `:path` and `:authority`
/// included.
fn header_bytes(parts: &http::request::Parts) -> usize {
    let pseudo = parts.method.as_str().len()
        + parts.uri.path_and_query().map_or(0, |p| p.as_str().len())
        + parts.uri.authority().map_or(0, |a| a.as_str().len());
    parts.headers.iter().fold(pseudo, |sum, (name, value)| {
        sum + name.as_str().len() + value.len()
    })
}

/// `connection: close`: hyper closes an HTTP/1 connection after a response that says so.
fn closing(mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A redirect: `status` and `Location`, no body.
fn redirect_response(status: StatusCode, location: &str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::default()));
    *response.status_mut() = status;
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn no_route(grpc: bool) -> Response<ProxyBody> {
    local_reply(StatusCode::NOT_FOUND, "", grpc, None).flagged(ResponseFlag::NoRoute, None)
}

#[cfg(test)]
mod tests {
    use super::strip_trailing_dot;

    #[test]
    fn trailing_host_dots_go_ports_stay() {
        assert_eq!(
            strip_trailing_dot("example.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            strip_trailing_dot("example.com.:8080").as_deref(),
            Some("example.com:8080")
        );
        assert_eq!(strip_trailing_dot("example.com"), None);
        assert_eq!(strip_trailing_dot("example.com:8080"), None);
        assert_eq!(strip_trailing_dot("[::1]:80"), None);
    }
}
