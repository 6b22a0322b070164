//! Envoy's filter chain match for plaintext connections, and the chain a connection keeps.

use std::net::SocketAddr;
use std::sync::Arc;

use outrider_model::{
    FilterChain, FilterChainMatch, HttpConnectionManager, Listener, NetworkFilter, SourceType,
};

/// The filter chain a connection uses, held through its listener (no copy of the config).
#[derive(Clone)]
pub(crate) struct ChainRef {
    pub listener: Arc<Listener>,
    /// `None` for the default filter chain.
    pub chain: Option<usize>,
}

impl ChainRef {
    pub(crate) fn get(&self) -> &FilterChain {
        let chain = match self.chain {
            Some(index) => self.listener.filter_chains.get(index),
            None => self.listener.default_filter_chain.as_ref(),
        };
        // Built by `select_filter_chain` from this very listener, which is immutable.
        chain.expect("a ChainRef points at an existing filter chain")
    }

    /// The HTTP connection manager of this chain, if it has one.
    pub(crate) fn http(&self) -> Option<&HttpConnectionManager> {
        match &self.get().filter {
            NetworkFilter::HttpConnectionManager(hcm) => Some(hcm),
            NetworkFilter::TcpProxy(_) => None,
        }
    }
}

/// The filter chain for a plaintext connection: the most specific chain whose criteria accept
/// it (Envoy's order: destination port, destination IP, source type, source IP, source port),
/// else the default chain. Chains that require TLS (server names, a TLS transport protocol,
/// ALPN) never match a plaintext connection.
pub(crate) fn select_filter_chain(
    listener: &Listener,
    local: SocketAddr,
    peer: SocketAddr,
) -> Option<Option<usize>> {
    let best = listener
        .filter_chains
        .iter()
        .enumerate()
        .filter(|(_, chain)| accepts(&chain.filter_chain_match, local, peer))
        .max_by_key(|(_, chain)| specificity(&chain.filter_chain_match))
        .map(|(index, _)| Some(index));
    best.or(listener.default_filter_chain.as_ref().map(|_| None))
}

fn accepts(m: &FilterChainMatch, local: SocketAddr, peer: SocketAddr) -> bool {
    let plaintext = m.server_names.is_empty()
        && m.application_protocols.is_empty()
        && m.transport_protocol
            .as_deref()
            .is_none_or(|p| p == "raw_buffer");
    let source_type = match m.source_type {
        SourceType::Any => true,
        SourceType::SameIpOrLoopback => peer.ip().is_loopback() || peer.ip() == local.ip(),
        SourceType::External => !(peer.ip().is_loopback() || peer.ip() == local.ip()),
    };
    plaintext
        && source_type
        && m.destination_port.is_none_or(|p| p == local.port())
        && (m.prefix_ranges.is_empty() || m.prefix_ranges.iter().any(|r| r.contains(local.ip())))
        && (m.direct_source_prefix_ranges.is_empty()
            || m.direct_source_prefix_ranges
                .iter()
                .any(|r| r.contains(peer.ip())))
        && (m.source_prefix_ranges.is_empty()
            || m.source_prefix_ranges.iter().any(|r| r.contains(peer.ip())))
        && (m.source_ports.is_empty() || m.source_ports.contains(&peer.port()))
}

/// Envoy narrows by each criterion in turn, so a chain that names a destination port beats any
/// chain that does not, whatever else they name; longer prefixes beat shorter ones.
fn specificity(m: &FilterChainMatch) -> (bool, u8, bool, u8, bool) {
    let longest = |ranges: &[outrider_model::CidrRange]| ranges.iter().map(|r| r.prefix_len).max();
    (
        m.destination_port.is_some(),
        longest(&m.prefix_ranges).map_or(0, |l| l.saturating_add(1)),
        !matches!(m.source_type, SourceType::Any),
        longest(&m.source_prefix_ranges).map_or(0, |l| l.saturating_add(1)),
        !m.source_ports.is_empty(),
    )
}
