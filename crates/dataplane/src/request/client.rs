//! Who the client is, as Envoy's connection manager decides it (`mutateRequestHeaders`): its
//! address (the peer, or with `xff_num_trusted_hops` the entry of `x-forwarded-for` before the
//! trusted proxies), whether the request is internal, and whether this proxy is its edge
//! (`use_remote_address` and not internal). With `use_remote_address` the peer goes onto
//! `x-forwarded-for` and an untrusted `x-forwarded-proto` is replaced. Runs before routing,
//! so routes match on the result; `internal_request.rs` then marks internal requests and
//! cleans the others.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use outrider_model::HttpConnectionManager;

use crate::headers::{X_FORWARDED_FOR, X_FORWARDED_PORT, X_FORWARDED_PROTO, append_via};

/// The client as the connection manager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client {
    /// The connection's peer.
    pub peer: SocketAddr,
    /// The downstream remote address (hash policies' `source_ip` read it): the peer, or an
    /// address from `x-forwarded-for` with port 0, as Envoy parses it. `None` until needed
    /// when nothing else asked for it (see [`Client::address`]).
    pub(super) resolved: Option<SocketAddr>,
    /// Internal: from one of `internal_address_config`'s ranges, by the rules below.
    pub internal: bool,
    /// Edge: `use_remote_address` and not internal.
    pub edge: bool,
}

impl Client {
    /// The peer itself, trusted with nothing (for a chain without a connection manager, which
    /// only answers 500).
    pub(crate) fn direct(peer: SocketAddr) -> Client {
        Client {
            peer,
            resolved: Some(peer),
            internal: false,
            edge: false,
        }
    }

    /// The downstream remote address, read from `x-forwarded-for` (Envoy's default detection,
    /// skipping `trusted_hops`) if nothing needed it before.
    pub(crate) fn address(&self, headers: &HeaderMap, trusted_hops: u32) -> SocketAddr {
        self.resolved.unwrap_or_else(|| {
            last_forwarded_address(headers, trusted_hops)
                .map_or(self.peer, |(ip, _)| SocketAddr::new(ip, 0))
        })
    }
}

/// Decides the client of a request from `peer` and updates `headers` to match; `secure`:
/// the connection is TLS (`x-forwarded-proto: https`).
pub(crate) fn resolve(
    headers: &mut HeaderMap,
    hcm: &HttpConnectionManager,
    peer: SocketAddr,
    local: SocketAddr,
    secure: bool,
) -> Client {
    let proto = HeaderValue::from_static(if secure { "https" } else { "http" });
    let from_list = |ip: IpAddr| SocketAddr::new(ip, 0);
    let hops = hcm.xff_num_trusted_hops;
    let (address, trusted_checks) = if hcm.use_remote_address {
        // Internal only when the peer itself is the client: no proxy in between.
        let trusted_checks = !headers.contains_key(X_FORWARDED_FOR);
        let address = hops
            .checked_sub(1)
            .and_then(|skip| last_forwarded_address(headers, skip))
            .map_or(peer, |(ip, _)| from_list(ip));
        if !hcm.skip_xff_append {
            append_forwarded_for(headers, peer.ip());
        }
        // A proxy this one does not trust cannot say how the client connected (an absent
        // one is set below either way).
        if hops == 0 {
            headers.insert(X_FORWARDED_PROTO, proto.clone());
        }
        if hcm.append_x_forwarded_port && hops == 0 {
            headers.insert(X_FORWARDED_PORT, HeaderValue::from(local.port()));
        }
        (Some(address), trusted_checks)
    } else if hcm.internal_addresses.is_empty() {
        // Nobody can be internal: the address is read only if a hash policy asks.
        (None, false)
    } else {
        // Envoy's default detection: `x-forwarded-for` as sent, trusted for internal checks
        // only when it holds one address and no hop is skipped.
        match last_forwarded_address(headers, hops) {
            Some((ip, single)) => (Some(from_list(ip)), single && hops == 0),
            None => (Some(peer), false),
        }
    };
    if !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, proto);
    }
    if hcm.append_x_forwarded_port && !headers.contains_key(X_FORWARDED_PORT) {
        headers.insert(X_FORWARDED_PORT, HeaderValue::from(local.port()));
    }
    let internal =
        trusted_checks && address.is_some_and(|a| hcm.internal_addresses.contains(a.ip()));
    let edge = hcm.use_remote_address && !internal;
    if let Some(via) = &hcm.via {
        append_via(headers, via);
    }
    Client {
        peer,
        resolved: address,
        internal,
        edge,
    }
}

/// Envoy's `getLastAddressFromXFF`: the address `skip` entries from the end of
/// `x-forwarded-for` (all its headers as one list), and whether it is the list's only one.
fn last_forwarded_address(headers: &HeaderMap, skip: u32) -> Option<(IpAddr, bool)> {
    let mut values = headers.get_all(X_FORWARDED_FOR).iter();
    let first = values.next()?.to_str().ok()?;
    let joined;
    let list = match values.next() {
        None => first,
        Some(second) => {
            let mut all = format!("{first},{}", second.to_str().ok()?);
            for more in values {
                all.push(',');
                all.push_str(more.to_str().ok()?);
            }
            joined = all;
            joined.as_str()
        }
    };
    let mut entries = list.rsplit(',');
    for _ in 0..skip {
        entries.next()?;
    }
    let entry = entries.next()?;
    let single = entries.next().is_none() && skip == 0;
    entry.trim().parse().ok().map(|address| (address, single))
}

/// Appends the peer to `x-forwarded-for`; a loopback peer as this host's address, as Envoy
/// appends its local address then.
fn append_forwarded_for(headers: &mut HeaderMap, peer: IpAddr) {
    let hop = if peer.is_loopback() {
        host_address()
    } else {
        peer
    };
    let value = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.is_empty() => format!("{existing}, {hop}"),
        _ => hop.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

/// This host's address, found once: the source address the kernel would use for an
/// outbound IPv4 packet (no packet is sent), else loopback, as Envoy falls back to it.
fn host_address() -> IpAddr {
    static ADDRESS: OnceLock<IpAddr> = OnceLock::new();
    *ADDRESS.get_or_init(|| {
        let probe = || -> std::io::Result<IpAddr> {
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
            socket.connect(SocketAddr::from(([192, 0, 2, 1], 9)))?;
            Ok(socket.local_addr()?.ip())
        };
        probe()
            .ok()
            .filter(|ip| !ip.is_unspecified())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::test_support;

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("a name"),
                HeaderValue::from_str(value).expect("a value"),
            );
        }
        headers
    }

    fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
        headers.get(name).and_then(|v| v.to_str().ok())
    }

    const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 5000);
    const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 8443);

    #[test]
    fn the_edge_appends_and_marks_external_requests() {
        let hcm = test_support::hcm("      use_remote_address: true\n");
        let mut headers = request(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let client = resolve(&mut headers, &hcm, PEER, LOCAL, false);
        assert_eq!(
            (client.resolved, client.internal, client.edge),
            (Some(PEER), false, true)
        );
        assert_eq!(
            header(&headers, "x-forwarded-for"),
            Some("1.2.3.4, 10.0.0.9")
        );
        assert_eq!(header(&headers, "x-forwarded-proto"), Some("http"));
    }

    #[test]
    fn forwarded_port_appended_when_asked() {
        let behind = test_support::hcm("      append_x_forwarded_port: true\n");
        let mut headers = request(&[]);
        resolve(&mut headers, &behind, PEER, LOCAL, false);
        assert_eq!(header(&headers, "x-forwarded-port"), Some("8443"));
        let mut kept = request(&[("x-forwarded-port", "80")]);
        resolve(&mut kept, &behind, PEER, LOCAL, false);
        assert_eq!(header(&kept, "x-forwarded-port"), Some("80"));
        // At the edge an untrusted one is replaced.
        let edge = test_support::hcm(
            "      use_remote_address: true\n      append_x_forwarded_port: true\n",
        );
        let mut replaced = request(&[("x-forwarded-port", "80")]);
        resolve(&mut replaced, &edge, PEER, LOCAL, false);
        assert_eq!(header(&replaced, "x-forwarded-port"), Some("8443"));
    }

    #[test]
    fn trusted_hops_name_the_client() {
        let hcm =
            test_support::hcm("      use_remote_address: true\n      xff_num_trusted_hops: 1\n");
        let mut headers = request(&[
            ("x-forwarded-for", "5.6.7.8"),
            ("x-forwarded-for", "9.9.9.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let client = resolve(&mut headers, &hcm, PEER, LOCAL, false);
        let nine = "9.9.9.9:0".parse::<SocketAddr>().expect("an address");
        assert_eq!(client.address(&headers, 1), nine);
        assert_eq!(
            header(&headers, "x-forwarded-proto"),
            Some("https"),
            "trusted"
        );
    }

    #[test]
    fn behind_an_edge_the_address_is_read_when_asked() {
        let hcm = test_support::hcm("");
        let mut headers = request(&[("x-forwarded-for", "8.8.8.8, 7.7.7.7")]);
        let client = resolve(&mut headers, &hcm, PEER, LOCAL, false);
        let last = "7.7.7.7:0".parse::<SocketAddr>().expect("an address");
        assert_eq!(client.address(&headers, 0), last);
        assert_eq!(client.address(&request(&[]), 0), PEER);
        assert_eq!(
            header(&headers, "x-forwarded-for"),
            Some("8.8.8.8, 7.7.7.7")
        );
    }

    #[test]
    fn internal_requests_by_envoys_rules() {
        let ranges = "      internal_address_config: { cidr_ranges: [{ address_prefix: 10.0.0.0, prefix_len: 8 }] }\n";
        let edge = test_support::hcm(&format!("      use_remote_address: true\n{ranges}"));
        // At the edge: internal only when nothing is in between.
        for (pairs, internal) in [
            (&[][..], true),
            (&[("x-forwarded-for", "10.1.1.1")][..], false),
        ] {
            let mut headers = request(pairs);
            let client = resolve(&mut headers, &edge, PEER, LOCAL, false);
            assert_eq!(client.internal, internal, "{pairs:?}");
            assert_eq!(client.edge, !internal);
        }
        let behind = test_support::hcm(ranges);
        for (pairs, internal) in [
            (&[("x-forwarded-for", "10.1.1.1")][..], true),
            (&[("x-forwarded-for", "8.8.8.8")][..], false),
            (&[("x-forwarded-for", "8.8.8.8, 10.1.1.1")][..], false),
            (&[][..], false),
        ] {
            let mut headers = request(pairs);
            let client = resolve(&mut headers, &behind, PEER, LOCAL, false);
            assert_eq!(client.internal, internal, "{pairs:?}");
            assert!(!client.edge);
            assert_eq!(
                header(&headers, "x-forwarded-for"),
                pairs.first().map(|p| p.1)
            );
        }
    }
}
