//! `Target`: where one host's checks go (the endpoint's IP, with `health_check_config.port_value`
//! if set) and the name they carry (Host / `:authority`).

use std::net::SocketAddr;

use outrider_tables::EndpointState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    /// Host header of HTTP checks, `:authority` of gRPC checks.
    pub(crate) authority: String,
}

impl Target {
    /// `None` for an endpoint that is not an IP address (a DNS name not resolved yet).
    /// `configured`: the check's own `host` / `authority` (empty: unset). As in Envoy, the
    /// endpoint's `health_check_config.hostname` wins, then the check's value, then the cluster
    /// name.
    pub(crate) fn of(endpoint: &EndpointState, configured: &str, cluster: &str) -> Option<Self> {
        let mut addr = endpoint.address.ip()?;
        if endpoint.health_check_port != 0 {
            addr.set_port(endpoint.health_check_port);
        }
        let authority = [&*endpoint.health_check.hostname, configured, cluster]
            .into_iter()
            .find(|name| !name.is_empty())
            .unwrap_or_default()
            .to_string();
        Some(Self { addr, authority })
    }
}
