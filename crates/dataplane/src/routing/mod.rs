//! Request routing as Envoy's router does it: the virtual host by authority, the first matching
//! route, then what the route asks for: the upstream cluster (fixed, from a header or weighted),
//! path and authority rewrites, the load-balancing hash, or a local redirect / direct response.
//!
//! Everything reads a borrowed `RequestView` and the immutable model; nothing here allocates
//! for a plain match. On the request path use `CompiledRoutes` (cached per configuration by
//! `CompiledRoutesCache`); the free functions scan the configuration and need no set-up.
//!
//! Port handling follows Envoy's defaults: the authority is matched with its port, so
//! `example.com:8080` does not match the domain `example.com` unless the route configuration
//! sets `ignore_port_in_host_matching`, or the connection manager strips the port first
//! (`strip_any_host_port` / `strip_matching_host_port`: apply `strip_host_port` to the
//! request's authority before routing, since Envoy also forwards the stripped value).

mod compiled;
mod domains;
mod hash_policy;
mod redirect;
mod request;
mod require_tls;
mod rewrite;
mod route_match;
mod weighted;

#[cfg(test)]
mod tests;

use outrider_model::{Route, RouteConfiguration, VirtualHost};

pub use compiled::{CompiledRoutes, CompiledRoutesCache};
pub use domains::{select_virtual_host, strip_host_port, without_port};
pub use hash_policy::{GeneratedCookie, RequestHash, request_hash};
pub use redirect::{LocalResponse, Redirect, direct_response, redirect};
pub use request::{RequestView, is_grpc_content_type, is_grpc_request};
pub use require_tls::{TlsCheck, tls_check};
pub use rewrite::{auto_host, rewrite_authority, rewrite_path};
pub use route_match::{route_matches, select_route};
pub use weighted::{ClusterChoice, choose_cluster, pick_weighted};

/// The virtual host and first matching route for `request`, scanning `config` (no index: use
/// `CompiledRoutes::route` when the configuration has many virtual hosts).
pub fn route<'c>(
    config: &'c RouteConfiguration,
    request: &RequestView<'_>,
) -> Option<(&'c VirtualHost, &'c Route)> {
    let authority = compiled::vhost_authority(config, request)?;
    let vhost = select_virtual_host(config, &authority)?;
    select_route(vhost, request).map(|r| (vhost, r))
}
