//! Type URLs of the xDS resource types the server knows by name, and which of them are wildcard.

/// `envoy.config.cluster.v3.Cluster` (CDS).
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// `envoy.config.listener.v3.Listener` (LDS).
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// `envoy.config.route.v3.RouteConfiguration` (RDS).
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// `envoy.config.route.v3.ScopedRouteConfiguration` (SRDS).
pub const SCOPED_ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration";
/// `envoy.config.route.v3.VirtualHost` (VHDS).
pub const VIRTUAL_HOST: &str = "type.googleapis.com/envoy.config.route.v3.VirtualHost";
/// `envoy.extensions.transport_sockets.tls.v3.Secret` (SDS).
pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The order in which a change to several types is pushed on one ADS stream: Envoy's
/// make-before-break order (CDS, EDS, LDS, RDS), then any other type by name.
pub(crate) const PUSH_ORDER: [&str; 4] = [CLUSTER, ENDPOINT, LISTENER, ROUTE];

/// Whether an empty name list subscribes to every resource of the type.
///
/// LDS and CDS are wildcard types (xds_protocol: "Envoy will always use wildcard subscriptions for
/// Listener and Cluster resources"); Envoy fetches scoped route configurations the same way. Types
/// that are always fetched by name (EDS, RDS, VHDS, SDS) are not: an empty list for them subscribes
/// to nothing. Any other type is treated as a
/// wildcard type, which is what a pass-through server can do best without knowing the type.
pub fn empty_means_wildcard(type_url: &str) -> bool {
    !matches!(type_url, ENDPOINT | ROUTE | VIRTUAL_HOST | SECRET)
}

/// The short name used in logs (`Cluster` for the CDS type URL).
pub fn short_name(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_types_and_short_names() {
        assert!(empty_means_wildcard(CLUSTER));
        assert!(empty_means_wildcard(LISTENER));
        assert!(empty_means_wildcard("type.googleapis.com/some.Other"));
        assert!(!empty_means_wildcard(ENDPOINT));
        assert!(!empty_means_wildcard(ROUTE));
        assert_eq!(short_name(ENDPOINT), "ClusterLoadAssignment");
        assert_eq!(short_name(""), "");
    }
}
