//! Which requests the connection manager trusts as internal (`internal_address_config`).
//!
//! With `use_remote_address: false` (the only setting we accept), Envoy calls a request
//! internal when its `x-forwarded-for` holds exactly one address and that address is an
//! internal one. Internal requests keep the `x-envoy-*` controls (retries, timeouts) and get
//! `x-envoy-internal: true`; all others lose them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::InternalAddressConfig;

use crate::error::{Result, convert_each};
use crate::filter_chain::CidrRange;

/// The addresses that make a request internal. Without `internal_address_config` there are
/// none, as in Envoy since 1.33 (RFC 1918 is no longer trusted by default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InternalAddresses {
    pub ranges: Vec<CidrRange>,
}

impl InternalAddresses {
    /// `unix_sockets` is accepted and changes nothing: we have no pipe listeners (refused),
    /// so no peer is a Unix socket.
    pub(crate) fn from_proto(proto: Option<&InternalAddressConfig>) -> Result<Self> {
        let Some(InternalAddressConfig {
            unix_sockets: _,
            cidr_ranges,
        }) = proto
        else {
            return Ok(Self::default());
        };
        if cidr_ranges.is_empty() {
            return Ok(Self {
                ranges: legacy_ranges(),
            });
        }
        Ok(Self {
            ranges: convert_each(cidr_ranges, "cidr_ranges", CidrRange::from_proto)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|range| range.contains(ip))
    }
}

/// Envoy's `isInternalAddress`, used when the config is present without ranges: RFC 1918,
/// `127.0.0.1` alone (not 127/8), `fd00::/8` and `::1`.
fn legacy_ranges() -> Vec<CidrRange> {
    let range = |address: IpAddr, prefix_len| CidrRange {
        address,
        prefix_len,
    };
    vec![
        range(Ipv4Addr::new(10, 0, 0, 0).into(), 8),
        range(Ipv4Addr::new(172, 16, 0, 0).into(), 12),
        range(Ipv4Addr::new(192, 168, 0, 0).into(), 16),
        range(Ipv4Addr::LOCALHOST.into(), 32),
        range(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0).into(), 8),
        range(Ipv6Addr::LOCALHOST.into(), 128),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_trusts_nothing_and_empty_ranges_mean_envoys_legacy_set() {
        let none = InternalAddresses::from_proto(None).expect("valid");
        assert!(!none.contains("10.1.2.3".parse().expect("ip")));
        let legacy =
            InternalAddresses::from_proto(Some(&InternalAddressConfig::default())).expect("valid");
        for internal in [
            "10.1.2.3",
            "172.31.0.1",
            "192.168.9.9",
            "127.0.0.1",
            "fd12::1",
            "::1",
        ] {
            assert!(legacy.contains(internal.parse().expect("ip")), "{internal}");
        }
        for external in [
            "8.8.8.8",
            "172.32.0.1",
            "127.0.0.2",
            "fc00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                !legacy.contains(external.parse().expect("ip")),
                "{external}"
            );
        }
    }
}
