//! Listener filter chains: their match criteria, downstream TLS and the terminal network
//! filter (HTTP connection manager or TCP proxy), identified by `typed_config` type URL.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3::{self as pb, filter, filter_chain_match};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager as PbHcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy as PbTcpProxy;
use prost::Name;

use crate::error::{Result, ValidationError, Within, convert_each, non_empty, reject_if_set};
use crate::http_connection_manager::HttpConnectionManager;
use crate::proto_value::{any_type_name, bool_or, decode_any, enum_value, opt_duration};
use crate::tcp_proxy::TcpProxy;
use crate::tls::{DownstreamTls, downstream_transport_socket};

#[derive(Debug, Clone, PartialEq)]
pub struct FilterChain {
    pub name: String,
    pub filter_chain_match: FilterChainMatch,
    /// `transport_socket`: TLS terminated here (`None`: plaintext).
    pub tls: Option<DownstreamTls>,
    /// `transport_socket_connect_timeout`: the TLS handshake must end within this.
    pub handshake_timeout: Option<std::time::Duration>,
    /// The chain's only network filter: the terminal one.
    pub filter: NetworkFilter,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NetworkFilter {
    HttpConnectionManager(Box<HttpConnectionManager>),
    TcpProxy(TcpProxy),
}

/// The criteria a connection must meet to use a filter chain (empty = any).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct FilterChainMatch {
    pub destination_port: Option<u16>,
    pub prefix_ranges: Vec<CidrRange>,
    pub direct_source_prefix_ranges: Vec<CidrRange>,
    pub source_type: SourceType,
    pub source_prefix_ranges: Vec<CidrRange>,
    pub source_ports: Vec<u16>,
    /// Lower case; `*.example.com` wildcards allowed.
    pub server_names: Vec<String>,
    /// `raw_buffer` or `tls`.
    pub transport_protocol: Option<String>,
    pub application_protocols: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum SourceType {
    #[default]
    Any,
    SameIpOrLoopback,
    External,
}

/// An IP prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CidrRange {
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl CidrRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix_len,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix_len)
            }
            _ => false,
        }
    }

    pub(crate) fn from_proto(proto: &core::CidrRange) -> Result<Self> {
        let core::CidrRange {
            address_prefix,
            prefix_len,
        } = proto;
        let address: IpAddr = address_prefix.parse().map_err(|_| {
            ValidationError::new(
                "address_prefix",
                format!("malformed IP address: {address_prefix}"),
            )
        })?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let len = prefix_len.as_ref().map_or(0, |v| v.value);
        if len > max {
            return Err(ValidationError::new(
                "prefix_len",
                format!("must be at most {max}"),
            ));
        }
        // `len <= 128` checked above.
        Ok(Self {
            address,
            prefix_len: len as u8,
        })
    }
}

fn prefix_eq(a: u128, b: u128, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    a & mask == b & mask
}

impl FilterChain {
    pub(crate) fn from_proto(proto: &pb::FilterChain) -> Result<Self> {
        let pb::FilterChain {
            filter_chain_match,
            filters,
            use_proxy_proto,
            // Read by filters and access logs only.
            metadata: _,
            transport_socket,
            transport_socket_connect_timeout,
            name,
        } = proto;
        if bool_or(use_proxy_proto, false) {
            return Err(ValidationError::unsupported("use_proxy_proto"));
        }
        let filter_chain_match = match filter_chain_match {
            Some(m) => FilterChainMatch::from_proto(m).within("filter_chain_match")?,
            None => FilterChainMatch::default(),
        };
        let tls = match transport_socket {
            Some(ts) => downstream_transport_socket(ts).within("transport_socket")?,
            None => None,
        };
        // Times the TLS handshake; a plaintext chain has none to time.
        let handshake_timeout = opt_duration(
            transport_socket_connect_timeout,
            "transport_socket_connect_timeout",
        )?
        .filter(|d| !d.is_zero());
        let filter = match filters.as_slice() {
            [] => {
                return Err(ValidationError::new(
                    "filters",
                    "a terminal network filter is required",
                ));
            }
            [only] => network_filter(only).within_index("filters", 0)?,
            [first, ..] => {
                // Every filter we support is terminal, so more than one cannot be valid: report
                // the first as Envoy would ("terminal filter ... must be the last filter").
                network_filter(first).within_index("filters", 0)?;
                return Err(ValidationError::new(
                    "filters[0]",
                    "a terminal filter must be the last filter in a network filter chain",
                ));
            }
        };
        Ok(Self {
            name: name.clone(),
            filter_chain_match,
            tls,
            handshake_timeout,
            filter,
        })
    }
}

fn network_filter(proto: &pb::Filter) -> Result<NetworkFilter> {
    let pb::Filter { name, config_type } = proto;
    non_empty(name, "name")?;
    let any = match config_type {
        Some(filter::ConfigType::TypedConfig(any)) => any,
        Some(filter::ConfigType::ConfigDiscovery(_)) => {
            return Err(ValidationError::unsupported("config_discovery"));
        }
        None => return Err(ValidationError::required("typed_config")),
    };
    match any_type_name(any) {
        t if t == PbHcm::full_name() => {
            let hcm: PbHcm = decode_any(any, "typed_config")?;
            Ok(NetworkFilter::HttpConnectionManager(Box::new(
                HttpConnectionManager::from_proto(&hcm).within("typed_config")?,
            )))
        }
        t if t == PbTcpProxy::full_name() => {
            let tcp: PbTcpProxy = decode_any(any, "typed_config")?;
            Ok(NetworkFilter::TcpProxy(
                TcpProxy::from_proto(&tcp).within("typed_config")?,
            ))
        }
        _ => Err(ValidationError::new(
            "typed_config",
            format!(
                "unsupported network filter {} (supported: http_connection_manager, tcp_proxy)",
                any.type_url
            ),
        )),
    }
}

impl FilterChainMatch {
    pub(crate) fn from_proto(proto: &pb::FilterChainMatch) -> Result<Self> {
        let pb::FilterChainMatch {
            destination_port,
            prefix_ranges,
            address_suffix,
            suffix_len,
            direct_source_prefix_ranges,
            source_type,
            source_prefix_ranges,
            source_ports,
            server_names,
            transport_protocol,
            application_protocols,
        } = proto;
        // Not implemented by Envoy either.
        reject_if_set!(address_suffix, suffix_len);
        let destination_port = match destination_port {
            None => None,
            Some(p) => match u16::try_from(p.value) {
                Ok(port) if port >= 1 => Some(port),
                _ => {
                    return Err(ValidationError::new(
                        "destination_port",
                        "must be between 1 and 65535",
                    ));
                }
            },
        };
        let source_ports = source_ports
            .iter()
            .enumerate()
            .map(|(i, p)| match u16::try_from(*p) {
                Ok(port) if port >= 1 => Ok(port),
                _ => Err(ValidationError::new(
                    format!("source_ports[{i}]"),
                    "must be between 1 and 65535",
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        let server_names = server_names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let wildcard_ok = n.strip_prefix("*.").is_some_and(|rest| !rest.contains('*'));
                if n.contains('*') && !wildcard_ok {
                    return Err(ValidationError::new(
                        format!("server_names[{i}]"),
                        "partial wildcards are not supported in \"server_names\"",
                    ));
                }
                Ok(n.to_ascii_lowercase())
            })
            .collect::<Result<Vec<_>>>()?;
        // Matching on what a ClientHello says needs TLS, which is not built yet: such a chain
        // would never be picked (TLS clients would land on a plaintext chain or nowhere).
        if !server_names.is_empty() {
            return Err(ValidationError::not_enforced(
                "server_names",
                "SNI is not read until TLS is built",
            ));
        }
        if !matches!(transport_protocol.as_str(), "" | "raw_buffer") {
            return Err(ValidationError::not_enforced(
                "transport_protocol",
                "TLS is not detected until TLS is built; only raw_buffer is accepted",
            ));
        }
        if !application_protocols.is_empty() {
            return Err(ValidationError::not_enforced(
                "application_protocols",
                "ALPN and HTTP inspection do not feed chain matching yet",
            ));
        }
        let source_type = match enum_value::<filter_chain_match::ConnectionSourceType>(
            *source_type,
            "source_type",
        )? {
            filter_chain_match::ConnectionSourceType::Any => SourceType::Any,
            filter_chain_match::ConnectionSourceType::SameIpOrLoopback => {
                SourceType::SameIpOrLoopback
            }
            filter_chain_match::ConnectionSourceType::External => SourceType::External,
        };
        Ok(Self {
            destination_port,
            prefix_ranges: convert_each(prefix_ranges, "prefix_ranges", CidrRange::from_proto)?,
            direct_source_prefix_ranges: convert_each(
                direct_source_prefix_ranges,
                "direct_source_prefix_ranges",
                CidrRange::from_proto,
            )?,
            source_type,
            source_prefix_ranges: convert_each(
                source_prefix_ranges,
                "source_prefix_ranges",
                CidrRange::from_proto,
            )?,
            source_ports,
            server_names,
            transport_protocol: Some(transport_protocol.clone()).filter(|t| !t.is_empty()),
            application_protocols: application_protocols.clone(),
        })
    }

    /// The match with its lists sorted, so two matches for the same connections compare equal.
    pub(crate) fn normalized(&self) -> Self {
        let mut m = self.clone();
        m.prefix_ranges.sort();
        m.prefix_ranges.dedup();
        m.direct_source_prefix_ranges.sort();
        m.direct_source_prefix_ranges.dedup();
        m.source_prefix_ranges.sort();
        m.source_prefix_ranges.dedup();
        m.source_ports.sort_unstable();
        m.source_ports.dedup();
        m.server_names.sort();
        m.server_names.dedup();
        m.application_protocols.sort();
        m.application_protocols.dedup();
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let net = CidrRange {
            address: "10.1.0.0".parse().expect("ip"),
            prefix_len: 16,
        };
        assert!(net.contains("10.1.2.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        let all = CidrRange {
            address: "::".parse().expect("ip"),
            prefix_len: 0,
        };
        assert!(all.contains("2001:db8::1".parse().expect("ip")));
    }
}
