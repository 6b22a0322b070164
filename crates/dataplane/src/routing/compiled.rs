//! `CompiledRoutes`: a route configuration with its virtual-host index, built once per
//! published `Arc<RouteConfiguration>` so per-request lookups cost the same with 1 or 10 000
//! virtual hosts; and `CompiledRoutesCache`, the per-worker slot that rebuilds it only when the
//! tables publish a new configuration.

use std::borrow::Cow;
use std::sync::Arc;

use outrider_model::{PathMatch, Route, RouteConfiguration, TlsRequirement, VirtualHost};

use super::domains::DomainIndex;
use super::request::RequestView;
use super::require_tls::{TlsCheck, tls_check};
use super::route_match::route_matches;

/// An immutable route configuration and its index.
#[derive(Debug)]
pub struct CompiledRoutes {
    config: Arc<RouteConfiguration>,
    domains: DomainIndex,
    /// Per virtual host, one filter per route, in route order.
    filters: Vec<Vec<PathFilter>>,
    /// Some virtual host has `require_tls`: only then is it looked at per request.
    any_require_tls: bool,
}

/// A quick reject for a route: the first (up to) 8 bytes its path must start with, compared as
/// one integer. Scanning these dense filters instead of the routes themselves keeps a virtual
/// host with hundreds of prefix routes in cache; the full match runs only when a filter passes.
/// A filter never rejects a path its route matches: a matching path starts with those bytes.
#[derive(Debug, Clone, Copy)]
struct PathFilter {
    head: u64,
    mask: u64,
}

impl PathFilter {
    fn new(route: &Route) -> Self {
        let m = &route.route_match;
        match &m.path {
            PathMatch::Prefix(p) | PathMatch::Exact(p) | PathMatch::SeparatedPrefix(p)
                if m.case_sensitive =>
            {
                let len = p.len().min(8);
                Self {
                    head: head(p.as_bytes()),
                    mask: if len == 8 {
                        u64::MAX
                    } else {
                        (1u64 << (8 * len)) - 1
                    },
                }
            }
            // Case-insensitive and regex routes always go to the full match.
            _ => Self { head: 0, mask: 0 },
        }
    }

    fn may_match(self, path_head: u64) -> bool {
        path_head & self.mask == self.head
    }
}

/// The first 8 bytes, zero-padded, as a little-endian integer (byte 0 in the low bits).
fn head(bytes: &[u8]) -> u64 {
    let mut buffer = [0u8; 8];
    let n = bytes.len().min(8);
    buffer[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(buffer)
}

impl CompiledRoutes {
    /// Indexes `config`: linear in its number of domains; do it off the request path or once
    /// per configuration (see `CompiledRoutesCache`).
    pub fn new(config: &Arc<RouteConfiguration>) -> Self {
        Self {
            config: Arc::clone(config),
            domains: DomainIndex::new(config),
            filters: config
                .virtual_hosts
                .iter()
                .map(|v| v.routes.iter().map(PathFilter::new).collect())
                .collect(),
            any_require_tls: config
                .virtual_hosts
                .iter()
                .any(|v| v.require_tls != TlsRequirement::None),
        }
    }

    pub fn config(&self) -> &Arc<RouteConfiguration> {
        &self.config
    }

    /// Whether this was compiled from that very configuration (pointer equality).
    pub fn is_compiled_from(&self, config: &Arc<RouteConfiguration>) -> bool {
        Arc::ptr_eq(&self.config, config)
    }

    /// The virtual host for `authority`, as `select_virtual_host` would pick it.
    pub fn select_virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        self.domains
            .find(authority)
            .and_then(|i| self.config.virtual_hosts.get(i))
    }

    /// The first route of virtual host `index` that matches, as `select_route` would pick it.
    fn select_route(&self, index: usize, request: &RequestView<'_>) -> Option<&Route> {
        let routes = &self.config.virtual_hosts.get(index)?.routes;
        let filters = self.filters.get(index)?;
        if request.path_and_query.is_empty() {
            return None;
        }
        let path = request.path();
        let path_head = head(path.as_bytes());
        filters
            .iter()
            .zip(routes)
            .find(|(filter, route)| {
                filter.may_match(path_head) && route_matches(&route.route_match, request, path)
            })
            .map(|(_, route)| route)
    }

    /// `require_tls` of the virtual host `request` goes to, checked before its routes as Envoy
    /// does; free when no virtual host asks for it.
    pub fn tls_check(&self, request: &RequestView<'_>) -> TlsCheck {
        if !self.any_require_tls {
            return TlsCheck::Pass;
        }
        vhost_authority(&self.config, request)
            .and_then(|authority| self.domains.find(&authority))
            .and_then(|index| self.config.virtual_hosts.get(index))
            .map_or(TlsCheck::Pass, |vhost| tls_check(vhost, request))
    }

    /// The virtual host and first matching route for `request`; `None` is Envoy's
    /// `route_not_found` (404). With `vhost_header` configured, that header names the host;
    /// a request without it matches no virtual host.
    pub fn route(&self, request: &RequestView<'_>) -> Option<(&VirtualHost, &Route)> {
        let authority = vhost_authority(&self.config, request)?;
        let index = self.domains.find(&authority)?;
        let vhost = self.config.virtual_hosts.get(index)?;
        self.select_route(index, request).map(|r| (vhost, r))
    }
}

/// The text virtual hosts are matched against: `:authority`, or the `vhost_header`.
pub(crate) fn vhost_authority<'a>(
    config: &RouteConfiguration,
    request: &RequestView<'a>,
) -> Option<Cow<'a, str>> {
    match &config.vhost_header {
        None => Some(Cow::Borrowed(request.authority)),
        Some(header) => request.first_header_value(header),
    }
}

/// One worker's compiled copy of the route configuration currently in use by one connection
/// manager. Holding the `Arc` keeps the pointer it compares against alive, so a new
/// configuration at a reused address cannot be mistaken for the old one.
#[derive(Debug, Default)]
pub struct CompiledRoutesCache {
    current: Option<Arc<CompiledRoutes>>,
}

impl CompiledRoutesCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The compiled form of `config`, rebuilt when `config` is not the one compiled last.
    pub fn get(&mut self, config: &Arc<RouteConfiguration>) -> &Arc<CompiledRoutes> {
        let current = match self.current.take() {
            Some(c) if c.is_compiled_from(config) => c,
            _ => Arc::new(CompiledRoutes::new(config)),
        };
        self.current.insert(current)
    }
}
