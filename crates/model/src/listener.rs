//! `Listener`: a bound TCP address with its filter chains and listener filters.

use std::collections::HashMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::listener::v3::{self as pb, listener, listener_filter};
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use prost::Name;

use crate::address::listener_address;
use crate::cluster::DEFAULT_PER_CONNECTION_BUFFER_LIMIT_BYTES;
use crate::config_source::ConfigSource;
use crate::error::{
    Result, ValidationError, Within, convert_each, non_empty, reject_if_set, required,
};
use crate::filter_chain::{FilterChain, NetworkFilter};
use crate::http_connection_manager::{RouteSource, SkippedFilter};
use crate::proto_value::{any_type_name, bool_or, enum_value, opt_duration, u32_or};

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub stat_prefix: String,
    pub filter_chains: Vec<FilterChain>,
    pub default_filter_chain: Option<FilterChain>,
    pub tcp_backlog_size: Option<u32>,
    /// SO_KEEPALIVE on accepted connections (set on the listening sockets, which they inherit).
    pub tcp_keepalive: Option<crate::cluster::TcpKeepalive>,
    /// `traffic_direction: INBOUND` (Istio sets it): what admin `/drain_listeners?inboundonly`
    /// drains.
    pub inbound: bool,
    /// Exempt from the overload manager's global downstream connection limit (neither
    /// refused by it nor counted in it).
    pub ignore_global_conn_limit: bool,
}

impl Listener {
    pub fn from_proto(proto: &pb::Listener) -> Result<Listener> {
        let pb::Listener {
            name,
            address,
            additional_addresses,
            stat_prefix,
            // Only chooses which stats exist.
            stats_matcher: _,
            filter_chains,
            fcds_config,
            filter_chain_matcher,
            use_original_dst,
            default_filter_chain,
            per_connection_buffer_limit_bytes,
            per_connection_buffer_high_watermark_timeout,
            // Read by filters and access logs only.
            metadata: _,
            deprecated_v1,
            drain_type,
            listener_filters,
            listener_filters_timeout,
            // See `listener_filters_timeout` below.
            continue_on_listener_filters_timeout: _,
            transparent,
            freebind,
            socket_options,
            // TCP Fast Open only shortens handshakes.
            tcp_fast_open_queue_length: _,
            // Informational, bar `/drain_listeners?inboundonly`.
            traffic_direction,
            udp_listener_config,
            api_listener,
            // How accepted connections spread over workers; we always use SO_REUSEPORT.
            connection_balance_config: _,
            reuse_port: _,
            enable_reuse_port: _,
            access_log,
            tcp_backlog_size,
            // Accept batching and connection-limit bookkeeping: performance only.
            max_connections_to_accept_per_socket_event: _,
            bind_to_port,
            enable_mptcp,
            ignore_global_conn_limit,
            bypass_overload_manager: _,
            tcp_keepalive,
            listener_specifier,
        } = proto;
        reject_if_set!(
            additional_addresses,
            fcds_config,
            filter_chain_matcher,
            per_connection_buffer_high_watermark_timeout,
            deprecated_v1,
            socket_options,
            udp_listener_config,
            api_listener,
            enable_mptcp,
            listener_specifier,
        );
        for (field, value) in [
            ("use_original_dst", use_original_dst),
            ("transparent", transparent),
            ("freebind", freebind),
        ] {
            if bool_or(value, false) {
                return Err(ValidationError::unsupported(field));
            }
        }
        if !bool_or(bind_to_port, true) {
            return Err(ValidationError::new(
                "bind_to_port",
                "false is not supported",
            ));
        }
        non_empty(name, "name")?;
        let address = listener_address(required(address, "address")?).within("address")?;
        let mut filter_chains =
            convert_each(filter_chains, "filter_chains", FilterChain::from_proto)?;
        check_unique_matches(&filter_chains)?;
        let mut default_filter_chain = default_filter_chain
            .as_ref()
            .map(|c| FilterChain::from_proto(c).within("default_filter_chain"))
            .transpose()?;
        if filter_chains.is_empty() && default_filter_chain.is_none() {
            return Err(ValidationError::new(
                "filter_chains",
                "no filter chains specified (and no default_filter_chain)",
            ));
        }
        // The inspectors only look at the first bytes, and no filter chain may match on what
        // they find (server names, TLS, ALPN are rejected until TLS is built): leaving them out
        // changes nothing.
        check_listener_filters(listener_filters)?;
        // Validated only: with the inspectors left out nothing waits for a client's first
        // bytes, so a client that never speaks is served at once (Envoy waits this long, then
        // closes unless `continue_on_listener_filters_timeout`): a difference only a
        // server-first protocol sees (README).
        opt_duration(listener_filters_timeout, "listener_filters_timeout")?;
        // What Envoy's connection manager makes of it: the largest request body kept for a
        // retry where the route sets no `per_request_buffer_limit_bytes`. Its other use in
        // Envoy, the read watermark of a connection's flow control, has no counterpart to set:
        // what a connection reads ahead is bounded by its codec (README).
        let connection_buffer_limit = u32_or(
            per_connection_buffer_limit_bytes,
            DEFAULT_PER_CONNECTION_BUFFER_LIMIT_BYTES,
        );
        for chain in filter_chains
            .iter_mut()
            .chain(default_filter_chain.as_mut())
        {
            if let NetworkFilter::HttpConnectionManager(hcm) = &mut chain.filter {
                hcm.connection_buffer_limit = connection_buffer_limit;
            }
        }
        // MODIFY_ONLY is what every listener does here: `/healthcheck/fail` does not start a
        // drain. DEFAULT (the default) also drains then in Envoy; that part is not built
        // (README).
        enum_value::<listener::DrainType>(*drain_type, "drain_type")?;
        if !access_log.is_empty() {
            return Err(ValidationError::not_enforced(
                "access_log",
                "listener access logs are not written",
            ));
        }
        Ok(Listener {
            name: name.clone(),
            address,
            stat_prefix: stat_prefix.clone(),
            filter_chains,
            default_filter_chain,
            tcp_backlog_size: tcp_backlog_size.as_ref().map(|v| v.value),
            tcp_keepalive: tcp_keepalive
                .as_ref()
                .map(crate::cluster::TcpKeepalive::from_proto),
            inbound: *traffic_direction
                == envoy_types::pb::envoy::config::core::v3::TrafficDirection::Inbound as i32,
            ignore_global_conn_limit: *ignore_global_conn_limit,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every filter chain, the default one last.
    pub fn all_filter_chains(&self) -> impl Iterator<Item = &FilterChain> {
        self.filter_chains
            .iter()
            .chain(self.default_filter_chain.iter())
    }

    /// Every RDS route-config name this listener's HTTP connection managers reference, with its
    /// config source.
    pub fn rds_dependencies(&self) -> impl Iterator<Item = (&str, &ConfigSource)> {
        self.all_filter_chains()
            .filter_map(|chain| match &chain.filter {
                NetworkFilter::HttpConnectionManager(hcm) => match &hcm.routes {
                    RouteSource::Rds {
                        route_config_name,
                        config_source,
                    } => Some((route_config_name.as_str(), config_source)),
                    RouteSource::Inline(_) => None,
                },
                NetworkFilter::TcpProxy(_) => None,
            })
    }

    /// The HTTP filters this listener leaves out because nothing observable depends on them.
    pub fn skipped_filters(&self) -> impl Iterator<Item = &SkippedFilter> {
        self.all_filter_chains()
            .filter_map(|chain| match &chain.filter {
                NetworkFilter::HttpConnectionManager(hcm) => Some(hcm.skipped_filters.iter()),
                NetworkFilter::TcpProxy(_) => None,
            })
            .flatten()
    }
}

impl Listener {
    /// Every cluster named by this listener itself: by TCP proxies and by route configurations
    /// written inline. (Clusters named by RDS route configurations come with those.)
    pub fn direct_cluster_names(&self) -> impl Iterator<Item = &str> {
        self.all_filter_chains()
            .flat_map(|chain| -> Box<dyn Iterator<Item = &str> + '_> {
                match &chain.filter {
                    NetworkFilter::HttpConnectionManager(hcm) => match &hcm.routes {
                        RouteSource::Inline(routes) => Box::new(routes.cluster_names()),
                        RouteSource::Rds { .. } => Box::new(std::iter::empty()),
                    },
                    NetworkFilter::TcpProxy(tcp) => tcp.cluster.names(),
                }
            })
    }
}

/// Envoy: "multiple filter chains with the same matching rules are defined".
fn check_unique_matches(chains: &[FilterChain]) -> Result<()> {
    let mut seen = HashMap::with_capacity(chains.len());
    for (i, chain) in chains.iter().enumerate() {
        if let Some(first) = seen.insert(chain.filter_chain_match.normalized(), i) {
            return Err(ValidationError::new(
                format!("filter_chains[{i}].filter_chain_match"),
                format!(
                    "multiple filter chains with the same matching rules are defined (same as filter_chains[{first}])"
                ),
            ));
        }
    }
    Ok(())
}

/// Only the TLS and HTTP inspectors are supported; they feed filter-chain matching.
fn check_listener_filters(filters: &[pb::ListenerFilter]) -> Result<()> {
    for (i, f) in filters.iter().enumerate() {
        let pb::ListenerFilter {
            name,
            filter_disabled,
            config_type,
        } = f;
        let at = |e: ValidationError| e.under(&format!("listener_filters[{i}]"));
        if filter_disabled.is_some() {
            return Err(at(ValidationError::unsupported("filter_disabled")));
        }
        let type_name = match config_type {
            Some(listener_filter::ConfigType::TypedConfig(any)) => any_type_name(any).to_string(),
            Some(listener_filter::ConfigType::ConfigDiscovery(_)) => {
                return Err(at(ValidationError::unsupported("config_discovery")));
            }
            // Envoy still finds a listener filter without typed_config by its name.
            None => match name.as_str() {
                "envoy.filters.listener.tls_inspector" => TlsInspector::full_name(),
                "envoy.filters.listener.http_inspector" => HttpInspector::full_name(),
                _ => return Err(at(ValidationError::required("typed_config"))),
            },
        };
        // The inspectors' own settings (fingerprinting, buffer sizes) do not change matching.
        if type_name != TlsInspector::full_name() && type_name != HttpInspector::full_name() {
            return Err(at(ValidationError::new(
                "typed_config",
                format!(
                    "unsupported listener filter {type_name} (supported: tls_inspector, http_inspector)"
                ),
            )));
        }
    }
    Ok(())
}
