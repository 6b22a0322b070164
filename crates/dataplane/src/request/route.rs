//! The route phase: the route configuration in force, the virtual host and route for the
//! request, and the answers a route gives by itself (`require_tls` redirect, direct response,
//! redirect).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};
use outrider_model::{
    DirectResponse, HttpConnectionManager, RedirectAction, Route, RouteConfiguration, RouteSource,
    VirtualHost,
};
use outrider_tables::Snapshot;

use super::error::ProxyError;
use crate::local_reply::ProxyBody;
use crate::routing::{CompiledRoutes, RequestView, TlsCheck, direct_response, redirect};

/// The connection manager's route configuration: inline, or the RDS one in `snapshot`.
pub(super) fn route_table(
    hcm: &HttpConnectionManager,
    snapshot: &Snapshot,
) -> Result<Arc<RouteConfiguration>, ProxyError> {
    match &hcm.routes {
        RouteSource::Inline(routes) => Ok(routes.clone()),
        RouteSource::Rds {
            route_config_name, ..
        } => snapshot
            .route_config(route_config_name)
            .cloned()
            .ok_or(ProxyError::NoRoute),
    }
}

/// What the route phase found.
pub(super) enum Selected<'c> {
    Route(&'c VirtualHost, &'c Route),
    /// A `require_tls` virtual host sends a plaintext client to HTTPS (301, before any route,
    /// so without route header mutations, as Envoy's TLS-redirect route has none).
    TlsRedirect(String),
}

pub(super) fn select<'c>(
    compiled: &'c CompiledRoutes,
    view: &RequestView<'_>,
) -> Result<Selected<'c>, ProxyError> {
    match compiled.tls_check(view) {
        TlsCheck::Pass => {}
        TlsCheck::NoRoute => return Err(ProxyError::NoRoute),
        TlsCheck::Redirect(location) => return Ok(Selected::TlsRedirect(location)),
    }
    let (vhost, route) = compiled.route(view).ok_or(ProxyError::NoRoute)?;
    Ok(Selected::Route(vhost, route))
}

/// A route's `direct_response`.
pub(super) fn direct(action: &DirectResponse, view: &RequestView<'_>) -> Response<ProxyBody> {
    let local = direct_response(action, view);
    let mut response = Response::new(Either::Right(Full::new(Bytes::copy_from_slice(local.body))));
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

/// A route's `redirect`.
pub(super) fn redirected(
    route: &Route,
    action: &RedirectAction,
    view: &RequestView<'_>,
) -> Response<ProxyBody> {
    let target = redirect(&route.route_match, action, view);
    let status = StatusCode::from_u16(target.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    redirect_response(status, &target.location)
}

/// A redirect: `status` and `Location`, no body.
pub(super) fn redirect_response(status: StatusCode, location: &str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::default()));
    *response.status_mut() = status;
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
