//! Table-driven routing tests, each built from an Envoy YAML route configuration converted by
//! the model exactly as one from the control plane would be.

mod domains;
mod forwarding;
mod hashing;
mod matching;
mod redirects;

use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3 as pb;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use outrider_model::{ForwardAction, Route, RouteAction, RouteConfiguration};

use super::{CompiledRoutes, RequestView};

pub(super) fn config(yaml: &str) -> Arc<RouteConfiguration> {
    let proto: pb::RouteConfiguration =
        outrider_envoy_json::from_yaml_str(yaml).expect("valid route configuration YAML");
    Arc::new(RouteConfiguration::from_proto(&proto).expect("valid route configuration"))
}

/// An owned request that lends a `RequestView`.
#[derive(Debug, Clone)]
pub(super) struct Req {
    authority: String,
    path: String,
    method: Method,
    headers: HeaderMap,
    https: bool,
    grpc: bool,
}

pub(super) fn req(authority: &str, path: &str) -> Req {
    Req {
        authority: authority.to_string(),
        path: path.to_string(),
        method: Method::GET,
        headers: HeaderMap::new(),
        https: false,
        grpc: false,
    }
}

impl Req {
    /// Appends a header value (a second call with the same name adds a second value).
    pub(super) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
            HeaderValue::from_str(value).expect("valid header value"),
        );
        self
    }

    pub(super) fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    pub(super) fn https(mut self) -> Self {
        self.https = true;
        self
    }

    pub(super) fn grpc(mut self) -> Self {
        self.grpc = true;
        self
    }

    pub(super) fn view(&self) -> RequestView<'_> {
        RequestView {
            authority: &self.authority,
            path_and_query: &self.path,
            method: &self.method,
            headers: &self.headers,
            scheme_is_https: self.https,
            is_grpc: self.grpc,
        }
    }
}

/// `"vhost/route"` for the request, checking the scanning and the indexed paths agree.
pub(super) fn routed(config: &Arc<RouteConfiguration>, request: &Req) -> Option<String> {
    let view = request.view();
    let scanned = super::route(config, &view).map(|(v, r)| format!("{}/{}", v.name, r.name));
    let compiled = CompiledRoutes::new(config);
    let indexed = compiled
        .route(&view)
        .map(|(v, r)| format!("{}/{}", v.name, r.name));
    assert_eq!(
        scanned, indexed,
        "scan and index disagree for {} {}",
        request.authority, request.path
    );
    scanned
}

/// Runs a table of `(request, expected "vhost/route")` against `config`.
pub(super) fn check(config: &Arc<RouteConfiguration>, cases: &[(Req, Option<&str>)]) {
    for (request, expected) in cases {
        assert_eq!(
            routed(config, request).as_deref(),
            *expected,
            "{} {} {:?}",
            request.authority,
            request.path,
            request.headers
        );
    }
}

/// The route that `request` selects; panics when none does.
pub(super) fn matched<'c>(config: &'c RouteConfiguration, request: &Req) -> &'c Route {
    super::route(config, &request.view())
        .map(|(_, r)| r)
        .expect("a route matches")
}

pub(super) fn forward(route: &Route) -> &ForwardAction {
    match &route.action {
        RouteAction::Forward(f) => f,
        other => panic!("expected a forwarding route, got {other:?}"),
    }
}
