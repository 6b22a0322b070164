//! Socket addresses of listeners and endpoints (`core.v3.Address`).

use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::{
    self as core, address, socket_address::PortSpecifier, socket_address::Protocol,
};

use crate::error::{Result, ValidationError, Within, reject_if_set};
use crate::proto_value::enum_value;

/// Where an upstream endpoint lives: an IP address, or (in DNS clusters only) a host name that
/// is resolved at run time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointAddress {
    Ip(SocketAddr),
    Dns { hostname: String, port: u16 },
}

impl EndpointAddress {
    pub fn port(&self) -> u16 {
        match self {
            Self::Ip(addr) => addr.port(),
            Self::Dns { port, .. } => *port,
        }
    }

    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            Self::Ip(addr) => Some(*addr),
            Self::Dns { .. } => None,
        }
    }
}

impl std::fmt::Display for EndpointAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ip(addr) => addr.fmt(f),
            Self::Dns { hostname, port } => write!(f, "{hostname}:{port}"),
        }
    }
}

/// Whether a socket address may carry a host name instead of an IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostnamePolicy {
    IpOnly,
    AllowHostname,
}

/// A `core.v3.Address` that must be a TCP `socket_address`.
pub(crate) fn tcp_address(
    proto: &core::Address,
    policy: HostnamePolicy,
) -> Result<EndpointAddress> {
    let core::Address { address } = proto;
    match address {
        Some(address::Address::SocketAddress(socket)) => {
            socket_address(socket, policy).within("socket_address")
        }
        Some(address::Address::Pipe(_)) => Err(ValidationError::new(
            "pipe",
            "not supported (only socket_address is supported)",
        )),
        Some(address::Address::EnvoyInternalAddress(_)) => Err(ValidationError::new(
            "envoy_internal_address",
            "not supported (only socket_address is supported)",
        )),
        None => Err(ValidationError::required("socket_address")),
    }
}

/// A listener address: always an IP (Envoy resolves nothing for listeners).
pub(crate) fn listener_address(proto: &core::Address) -> Result<SocketAddr> {
    match tcp_address(proto, HostnamePolicy::IpOnly)? {
        EndpointAddress::Ip(addr) => Ok(addr),
        // IpOnly never yields a host name; keep the error rather than a panic all the same.
        EndpointAddress::Dns { .. } => Err(ValidationError::new(
            "socket_address.address",
            "must be an IP address",
        )),
    }
}

fn socket_address(proto: &core::SocketAddress, policy: HostnamePolicy) -> Result<EndpointAddress> {
    let core::SocketAddress {
        protocol,
        address,
        resolver_name,
        // Only meaningful for `::` listeners; Linux dual-stack sockets accept IPv4 by default
        // (net.ipv6.bindv6only=0), which is what Envoy's default also gives.
        ipv4_compat: _,
        network_namespace_filepath,
        port_specifier,
    } = proto;
    if enum_value::<Protocol>(*protocol, "protocol")? != Protocol::Tcp {
        return Err(ValidationError::new("protocol", "only TCP is supported"));
    }
    reject_if_set!(resolver_name, network_namespace_filepath);
    let port = match port_specifier {
        Some(PortSpecifier::PortValue(port)) => u16::try_from(*port)
            .map_err(|_| ValidationError::new("port_value", "must be at most 65535"))?,
        Some(PortSpecifier::NamedPort(_)) => {
            return Err(ValidationError::unsupported("named_port"));
        }
        None => return Err(ValidationError::required("port_value")),
    };
    if address.is_empty() {
        return Err(ValidationError::new("address", "must not be empty"));
    }
    if let Ok(ip) = address.parse::<IpAddr>() {
        return Ok(EndpointAddress::Ip(SocketAddr::new(ip, port)));
    }
    match policy {
        HostnamePolicy::IpOnly => Err(ValidationError::new(
            "address",
            format!(
                "{address:?} is not an IP address (host names need a STRICT_DNS or LOGICAL_DNS cluster)"
            ),
        )),
        HostnamePolicy::AllowHostname => {
            if !is_dns_name(address) {
                return Err(ValidationError::new(
                    "address",
                    format!("{address:?} is neither an IP address nor a DNS name"),
                ));
            }
            Ok(EndpointAddress::Dns {
                hostname: address.to_ascii_lowercase(),
                port,
            })
        }
    }
}

/// A plausible DNS name: letters, digits, `-`, `_` and dots, labels of 1..=63 bytes.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
