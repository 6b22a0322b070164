//! Virtual-host selection by authority, with Envoy's rules: case-insensitive; the port is part
//! of the authority unless `ignore_port_in_host_matching` (or the connection manager's
//! `strip_*_host_port`, applied before routing) removes it; exact domain first, then the
//! longest suffix wildcard, then the longest prefix wildcard, then `*`.
//!
//! Two implementations: a linear scan over a `&RouteConfiguration` (no set-up, for one-off use)
//! and `DomainIndex` (hash maps, built once per configuration), which `CompiledRoutes` uses so
//! that the cost of a lookup does not grow with the number of virtual hosts.

use std::borrow::Cow;
use std::collections::HashMap;

use foldhash::fast::RandomState;
use outrider_model::{DomainMatcher, RouteConfiguration, VirtualHost};

/// DNS names are at most 253 bytes; longer authorities (IPv6 literals with ports fit) are
/// lower-cased on the heap instead.
const HOST_BUFFER: usize = 256;

/// Envoy's `HeaderUtility::getPortStart`: the index of the `:` before the port, if any. A `]`
/// after the last `:` means a bracketed IPv6 literal without port.
fn port_start(authority: &str) -> Option<usize> {
    let colon = authority.rfind(':')?;
    match authority.rfind(']') {
        Some(bracket) if bracket > colon => None,
        _ => Some(colon),
    }
}

/// The authority without its port, as `ignore_port_in_host_matching` compares it.
pub fn without_port(authority: &str) -> &str {
    port_start(authority).map_or(authority, |p| &authority[..p])
}

/// Envoy's `HeaderUtility::stripPortFromHost`, for the connection manager's
/// `strip_any_host_port` (`listener_port: None`) and `strip_matching_host_port`
/// (`Some(port)`: only that port is removed). `None` when the authority stays as it is: no
/// port, a port that is not a number, another port, or a CONNECT request (whose authority must
/// keep its port).
pub fn strip_host_port<'a>(
    authority: &'a str,
    listener_port: Option<u16>,
    method: &http::Method,
) -> Option<&'a str> {
    if method == http::Method::CONNECT {
        return None;
    }
    let colon = port_start(authority)?;
    let port: u32 = authority[colon + 1..].parse().ok()?;
    if listener_port.is_some_and(|l| u32::from(l) != port) {
        return None;
    }
    Some(&authority[..colon])
}

/// The authority as domains are compared: port removed when the configuration asks, ASCII
/// lower-cased (into `buffer` when it has upper-case letters, so no allocation).
pub(crate) fn normalized_host<'b>(
    authority: &'b str,
    ignore_port: bool,
    buffer: &'b mut [u8; HOST_BUFFER],
) -> Cow<'b, str> {
    let host = if ignore_port {
        without_port(authority)
    } else {
        authority
    };
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(host);
    }
    let Some(target) = buffer.get_mut(..host.len()) else {
        return Cow::Owned(host.to_ascii_lowercase());
    };
    for (out, b) in target.iter_mut().zip(host.bytes()) {
        *out = b.to_ascii_lowercase();
    }
    // ASCII lower-casing keeps UTF-8 valid; the fallback is never taken.
    match std::str::from_utf8(target) {
        Ok(lowered) => Cow::Borrowed(lowered),
        Err(_) => Cow::Owned(host.to_ascii_lowercase()),
    }
}

/// Picks the virtual host for `authority` by scanning every domain of `config` (Envoy's order;
/// see the module docs). Prefer `CompiledRoutes` on the request path of large configurations.
pub fn select_virtual_host<'c>(
    config: &'c RouteConfiguration,
    authority: &str,
) -> Option<&'c VirtualHost> {
    let mut buffer = [0u8; HOST_BUFFER];
    let host = normalized_host(authority, config.ignore_port_in_host_matching, &mut buffer);
    let host = host.as_ref();
    // (length of the wildcard, vhost) of the best suffix and prefix matches so far.
    let mut suffix: Option<(usize, &VirtualHost)> = None;
    let mut prefix: Option<(usize, &VirtualHost)> = None;
    let mut any = None;
    for vhost in &config.virtual_hosts {
        for domain in &vhost.domains {
            if !domain.matches(host) {
                continue;
            }
            match domain {
                DomainMatcher::Exact(_) => return Some(vhost),
                DomainMatcher::Suffix(s) if suffix.is_none_or(|(len, _)| s.len() > len) => {
                    suffix = Some((s.len(), vhost));
                }
                DomainMatcher::Prefix(p) if prefix.is_none_or(|(len, _)| p.len() > len) => {
                    prefix = Some((p.len(), vhost));
                }
                DomainMatcher::Any => any = Some(vhost),
                DomainMatcher::Suffix(_) | DomainMatcher::Prefix(_) => {}
            }
        }
    }
    suffix.or(prefix).map(|(_, v)| v).or(any)
}

/// Domain text (without `*`) to the index of its virtual host.
type DomainMap = HashMap<Box<str>, usize, RandomState>;

/// Wildcards of one kind grouped by length, longest first: a lookup tries one hash probe per
/// distinct length, whatever the number of virtual hosts.
#[derive(Debug, Default)]
struct WildcardTable {
    by_length: Vec<(usize, DomainMap)>,
}

impl WildcardTable {
    fn insert(&mut self, fixed: &str, vhost: usize) {
        let len = fixed.len();
        let slot = match self.by_length.binary_search_by(|(l, _)| len.cmp(l)) {
            Ok(i) => i,
            Err(i) => {
                self.by_length.insert(i, (len, HashMap::default()));
                i
            }
        };
        // Duplicate domains are rejected by the model; keep the first, as a scan would.
        self.by_length[slot].1.entry(fixed.into()).or_insert(vhost);
    }

    /// `part(host, len)` cuts the candidate of length `len` out of the host (its end for
    /// suffixes, its start for prefixes). The wildcard must match at least one character.
    fn find(&self, host: &str, part: impl Fn(&str, usize) -> Option<&str>) -> Option<usize> {
        self.by_length
            .iter()
            .filter(|(len, _)| *len < host.len())
            .find_map(|(len, map)| part(host, *len).and_then(|p| map.get(p).copied()))
    }
}

/// Virtual-host lookup in constant time for exact domains.
#[derive(Debug, Default)]
pub(crate) struct DomainIndex {
    exact: DomainMap,
    suffixes: WildcardTable,
    prefixes: WildcardTable,
    any: Option<usize>,
    ignore_port: bool,
}

impl DomainIndex {
    pub(crate) fn new(config: &RouteConfiguration) -> Self {
        let mut index = Self {
            ignore_port: config.ignore_port_in_host_matching,
            ..Self::default()
        };
        for (v, vhost) in config.virtual_hosts.iter().enumerate() {
            for domain in &vhost.domains {
                match domain {
                    DomainMatcher::Exact(e) => {
                        index.exact.entry(e.as_str().into()).or_insert(v);
                    }
                    DomainMatcher::Suffix(s) => index.suffixes.insert(s, v),
                    DomainMatcher::Prefix(p) => index.prefixes.insert(p, v),
                    DomainMatcher::Any => {
                        index.any.get_or_insert(v);
                    }
                }
            }
        }
        index
    }

    /// The index of the virtual host for `authority`.
    pub(crate) fn find(&self, authority: &str) -> Option<usize> {
        let only_default = self.exact.is_empty()
            && self.suffixes.by_length.is_empty()
            && self.prefixes.by_length.is_empty();
        if only_default {
            return self.any;
        }
        let mut buffer = [0u8; HOST_BUFFER];
        let host = normalized_host(authority, self.ignore_port, &mut buffer);
        let host = host.as_ref();
        self.exact
            .get(host)
            .copied()
            .or_else(|| self.suffixes.find(host, |h, len| h.get(h.len() - len..)))
            .or_else(|| self.prefixes.find(host, |h, len| h.get(..len)))
            .or(self.any)
    }
}
