//! The I/O-free part of resolution: which addresses a lookup family keeps, how lookup results
//! fold into the last good addresses, and how a DNS cluster's `load_assignment` expands into
//! IP endpoints.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use outrider_model::{
    ClusterLoadAssignment, DnsLookupFamily, EndpointAddress, LbEndpoint, LocalityLbEndpoints,
};

/// Decides how many addresses of a host name become endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DnsKind {
    /// STRICT_DNS: every address.
    Strict,
    /// LOGICAL_DNS: the first address only.
    Logical,
}

/// The last good addresses of each host name, lookup family applied, in the resolver's order.
pub(crate) type ResolvedHosts = BTreeMap<String, Vec<IpAddr>>;

/// The addresses `family` keeps, in their order, without duplicates.
pub(crate) fn select_family(addresses: &[IpAddr], family: DnsLookupFamily) -> Vec<IpAddr> {
    let any_v4 = addresses.iter().any(IpAddr::is_ipv4);
    let any_v6 = addresses.iter().any(IpAddr::is_ipv6);
    let keep = |a: &IpAddr| match family {
        DnsLookupFamily::V4Only => a.is_ipv4(),
        DnsLookupFamily::V6Only => a.is_ipv6(),
        DnsLookupFamily::V4Preferred => a.is_ipv4() || !any_v4,
        DnsLookupFamily::Auto => a.is_ipv6() || !any_v6,
        DnsLookupFamily::All => true,
    };
    let mut kept: Vec<IpAddr> = Vec::new();
    for a in addresses.iter().filter(|a| keep(a)) {
        // /etc/hosts may list an address twice; one endpoint each.
        if !kept.contains(a) {
            kept.push(*a);
        }
    }
    kept
}

/// The distinct host names of `assignment`, in order of first appearance.
pub(crate) fn hostnames(assignment: &ClusterLoadAssignment) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for e in assignment.lb_endpoints() {
        if let EndpointAddress::Dns { hostname, .. } = &e.address
            && !names.contains(hostname)
        {
            names.push(hostname.clone());
        }
    }
    names
}

/// Folds a successful lookup of `hostname` into `resolved`.
pub(crate) fn record(
    resolved: &mut ResolvedHosts,
    kind: DnsKind,
    family: DnsLookupFamily,
    hostname: &str,
    addresses: &[IpAddr],
) {
    let selected = select_family(addresses, family);
    // Envoy's logical host keeps its address when an answer has none; a strict target's
    // hosts become what the answer says, none included.
    if kind == DnsKind::Logical && selected.is_empty() {
        return;
    }
    resolved.insert(hostname.to_string(), selected);
}

/// What a restarted loop keeps from its predecessor: the addresses of the host names the new
/// assignment still has, under the new lookup family (so a failing first lookup keeps them).
pub(crate) fn carry_over(
    previous: &ResolvedHosts,
    hostnames: &[String],
    family: DnsLookupFamily,
) -> ResolvedHosts {
    hostnames
        .iter()
        .filter_map(|h| Some((h.clone(), select_family(previous.get(h)?, family))))
        .collect()
}

/// `assignment` with each host-name endpoint replaced by one endpoint per resolved address
/// (STRICT_DNS) or by its first address (LOGICAL_DNS), each inheriting the entry's priority,
/// locality, weights and health status. A host name not resolved yet contributes nothing.
pub(crate) fn expand(
    assignment: &ClusterLoadAssignment,
    kind: DnsKind,
    resolved: &ResolvedHosts,
) -> ClusterLoadAssignment {
    let ClusterLoadAssignment {
        cluster_name,
        localities,
        overprovisioning_factor,
        drop_overloads,
        weighted_priority_health,
    } = assignment;
    ClusterLoadAssignment {
        cluster_name: cluster_name.clone(),
        localities: localities
            .iter()
            .map(|l| LocalityLbEndpoints {
                locality: l.locality.clone(),
                priority: l.priority,
                load_balancing_weight: l.load_balancing_weight,
                lb_endpoints: l
                    .lb_endpoints
                    .iter()
                    .flat_map(|e| expand_endpoint(e, kind, resolved))
                    .collect(),
            })
            .collect(),
        overprovisioning_factor: *overprovisioning_factor,
        drop_overloads: drop_overloads.clone(),
        weighted_priority_health: *weighted_priority_health,
    }
}

fn expand_endpoint(
    endpoint: &LbEndpoint,
    kind: DnsKind,
    resolved: &ResolvedHosts,
) -> Vec<LbEndpoint> {
    let EndpointAddress::Dns { hostname, port } = &endpoint.address else {
        return vec![endpoint.clone()];
    };
    let addresses = resolved.get(hostname).map_or(&[][..], Vec::as_slice);
    let take = match kind {
        DnsKind::Strict => addresses.len(),
        DnsKind::Logical => 1,
    };
    addresses
        .iter()
        .take(take)
        .map(|ip| LbEndpoint {
            address: EndpointAddress::Ip(SocketAddr::new(*ip, *port)),
            // Envoy names a resolved host after its DNS name unless the endpoint has a hostname
            // (used as Host by `auto_host_rewrite` and by health checks).
            hostname: if endpoint.hostname.is_empty() {
                hostname.clone()
            } else {
                endpoint.hostname.clone()
            },
            ..endpoint.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use DnsLookupFamily::{All, Auto, V4Only, V4Preferred, V6Only};
    use outrider_model::{EndpointHealthCheck, HealthStatus, Locality};

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().expect("an IP")).collect()
    }

    #[test]
    fn lookup_families_keep_what_envoy_keeps() {
        let both = ips(&["::1", "10.0.0.1", "fe80::2", "10.0.0.2", "10.0.0.1"]);
        let v4 = ips(&["10.0.0.1", "10.0.0.2"]);
        let v6 = ips(&["::1", "fe80::2"]);
        let cases: [(DnsLookupFamily, &[IpAddr], Vec<IpAddr>); 10] = [
            (V4Only, &both, v4.clone()),
            (V6Only, &both, v6.clone()),
            (V4Preferred, &both, v4.clone()),
            (V4Preferred, &v6, v6.clone()),
            (Auto, &both, v6.clone()),
            (Auto, &v4, v4.clone()),
            (All, &both, ips(&["::1", "10.0.0.1", "fe80::2", "10.0.0.2"])),
            (V6Only, &v4, vec![]),
            (V4Only, &v6, vec![]),
            (Auto, &[], vec![]),
        ];
        for (family, answer, kept) in cases {
            assert_eq!(
                select_family(answer, family),
                kept,
                "{family:?} of {answer:?}"
            );
        }
    }

    fn endpoint(address: EndpointAddress, weight: u32, health: HealthStatus) -> LbEndpoint {
        LbEndpoint {
            address,
            hostname: String::new(),
            health_status: health,
            load_balancing_weight: weight,
            health_check: EndpointHealthCheck::default(),
        }
    }

    fn dns(hostname: &str, port: u16) -> EndpointAddress {
        EndpointAddress::Dns {
            hostname: hostname.into(),
            port,
        }
    }

    fn ip(address: &str) -> EndpointAddress {
        EndpointAddress::Ip(address.parse().expect("a socket address"))
    }

    /// Priority 0: `web:8080` (weight 3, DEGRADED, in zone a) and `10.9.9.9:80`; priority 1:
    /// `backup:9090` whose endpoint hostname is set.
    fn assignment() -> ClusterLoadAssignment {
        let zone = |z: &str| Locality {
            zone: z.into(),
            ..Locality::default()
        };
        let mut backup = endpoint(dns("backup", 9090), 1, HealthStatus::Unknown);
        backup.hostname = "backup.example".into();
        ClusterLoadAssignment {
            localities: vec![
                LocalityLbEndpoints {
                    locality: zone("a"),
                    priority: 0,
                    load_balancing_weight: Some(7),
                    lb_endpoints: vec![
                        endpoint(dns("web", 8080), 3, HealthStatus::Degraded),
                        endpoint(ip("10.9.9.9:80"), 1, HealthStatus::Healthy),
                    ],
                },
                LocalityLbEndpoints {
                    locality: zone("b"),
                    priority: 1,
                    load_balancing_weight: None,
                    lb_endpoints: vec![backup],
                },
            ],
            ..ClusterLoadAssignment::empty("c")
        }
    }

    fn resolved() -> ResolvedHosts {
        [
            ("web".to_string(), ips(&["10.0.0.1", "10.0.0.2"])),
            ("backup".to_string(), ips(&["10.1.0.1", "10.1.0.2"])),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn strict_dns_makes_every_address_an_endpoint_of_the_entry() {
        let cla = expand(&assignment(), DnsKind::Strict, &resolved());
        let first = &cla.localities[0];
        assert_eq!((first.priority, first.load_balancing_weight), (0, Some(7)));
        assert_eq!(first.locality.zone, "a");
        let mut web = endpoint(ip("10.0.0.1:8080"), 3, HealthStatus::Degraded);
        web.hostname = "web".into();
        let mut web2 = web.clone();
        web2.address = ip("10.0.0.2:8080");
        let literal = endpoint(ip("10.9.9.9:80"), 1, HealthStatus::Healthy);
        assert_eq!(first.lb_endpoints, [web, web2, literal]);
        let second = &cla.localities[1];
        assert_eq!((second.priority, second.locality.zone.as_str()), (1, "b"));
        let addresses: Vec<_> = second.lb_endpoints.iter().map(|e| &e.address).collect();
        assert_eq!(addresses, [&ip("10.1.0.1:9090"), &ip("10.1.0.2:9090")]);
        // An endpoint's own hostname wins over the DNS name.
        assert!(
            second
                .lb_endpoints
                .iter()
                .all(|e| e.hostname == "backup.example")
        );
    }

    #[test]
    fn logical_dns_uses_the_first_address_only() {
        let cla = expand(&assignment(), DnsKind::Logical, &resolved());
        let addresses: Vec<_> = cla.lb_endpoints().map(|e| e.address.to_string()).collect();
        assert_eq!(addresses, ["10.0.0.1:8080", "10.9.9.9:80", "10.1.0.1:9090"]);
    }

    #[test]
    fn unresolved_names_contribute_no_endpoint() {
        let cla = expand(&assignment(), DnsKind::Strict, &ResolvedHosts::new());
        let addresses: Vec<_> = cla.lb_endpoints().map(|e| e.address.to_string()).collect();
        assert_eq!(addresses, ["10.9.9.9:80"]);
        assert_eq!(cla.localities.len(), 2);
        assert_eq!(hostnames(&assignment()), ["web", "backup"]);
    }

    #[test]
    fn empty_answers_empty_a_strict_name_but_not_a_logical_one() {
        let mut strict = resolved();
        record(
            &mut strict,
            DnsKind::Strict,
            V6Only,
            "web",
            &ips(&["10.0.0.3"]),
        );
        assert!(strict["web"].is_empty());
        let mut logical = resolved();
        record(
            &mut logical,
            DnsKind::Logical,
            V6Only,
            "web",
            &ips(&["10.0.0.3"]),
        );
        assert_eq!(logical["web"], ips(&["10.0.0.1", "10.0.0.2"]));
        record(
            &mut logical,
            DnsKind::Logical,
            All,
            "web",
            &ips(&["10.0.0.3"]),
        );
        assert_eq!(logical["web"], ips(&["10.0.0.3"]));
    }

    #[test]
    fn a_restarted_loop_keeps_the_names_it_still_has_under_its_family() {
        let mut previous = resolved();
        previous.insert("dual".into(), ips(&["10.0.0.5", "::5"]));
        let kept = carry_over(
            &previous,
            &["dual".into(), "web".into(), "new".into()],
            V6Only,
        );
        let expected: ResolvedHosts = [
            ("dual".to_string(), ips(&["::5"])),
            ("web".to_string(), vec![]),
        ]
        .into_iter()
        .collect();
        assert_eq!(kept, expected);
    }
}
