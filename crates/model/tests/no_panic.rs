//! Conversion never panics: mutated encodings of valid resources go through decode and
//! `from_proto` (a cheap stand-in for the fuzz target, run in every `cargo test`).

use envoy_types::pb::envoy::config::{cluster::v3::Cluster, endpoint::v3::ClusterLoadAssignment};
use envoy_types::pb::envoy::config::{listener::v3::Listener, route::v3::RouteConfiguration};
use prost::Message;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(bytes.len() + 1);
                bytes.insert(i, rng.next() as u8);
            }
            _ => bytes.truncate(rng.below(bytes.len() + 1)),
        }
    }
    bytes
}

fn hammer<M: Message + Default + prost::Name>(yaml: &str, convert: impl Fn(&M)) {
    let seed: M = outrider_envoy_json::from_yaml_str(yaml).expect("seed YAML is valid");
    let encoded = seed.encode_to_vec();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        if let Ok(m) = M::decode(mutate(&mut rng, &encoded).as_slice()) {
            convert(&m);
        }
    }
}

#[test]
fn mutated_clusters_do_not_panic() {
    hammer::<Cluster>(
        "name: s
type: STRICT_DNS
connect_timeout: 1s
lb_policy: RING_HASH
ring_hash_lb_config: { minimum_ring_size: 10 }
outlier_detection: { interval: 1s, max_ejection_percent: 50 }
circuit_breakers: { thresholds: [ { priority: HIGH, max_connections: 1 } ] }
health_checks: [ { timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: { path: /h, expected_statuses: [ { start: 200, end: 300 } ] } } ]
load_assignment: { cluster_name: s, endpoints: [ { priority: 0, lb_endpoints: [ { endpoint: { address: { socket_address: { address: a.example, port_value: 80 } } }, load_balancing_weight: 2 } ] } ] }
",
        |c| {
            let _ = outrider_model::Cluster::from_proto(c);
        },
    );
}

#[test]
fn mutated_listeners_do_not_panic() {
    hammer::<Listener>(
        "name: l
address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
filter_chains:
- filter_chain_match: { server_names: ['*.a.com'], prefix_ranges: [ { address_prefix: 10.0.0.0, prefix_len: 8 } ] }
  filters:
  - name: hcm
    typed_config:
      '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: s
      route_config: { name: r, virtual_hosts: [ { name: v, domains: ['*'], routes: [ { match: { safe_regex: { regex: '/a.*' } }, route: { cluster: c, timeout: 1s } } ] } ] }
      http_filters: [ { name: envoy.filters.http.router, typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]
",
        |l| {
            let _ = outrider_model::Listener::from_proto(l);
        },
    );
}

#[test]
fn mutated_routes_and_assignments_do_not_panic() {
    hammer::<RouteConfiguration>(
        "name: r
virtual_hosts:
- name: v
  domains: ['*', 'a.*', '*.b']
  routes:
  - match: { prefix: /, headers: [ { name: x, range_match: { start: 1, end: 3 } } ] }
    route: { weighted_clusters: { clusters: [ { name: a, weight: 4294967295 }, { name: b, weight: 1 } ] }, retry_policy: { retry_back_off: { base_interval: 1s } } }
  - match: { path: /d }
    direct_response: { status: 200, body: { inline_string: hi } }
",
        |r| {
            let _ = outrider_model::RouteConfiguration::from_proto(r);
        },
    );
    hammer::<ClusterLoadAssignment>(
        "cluster_name: c
endpoints:
- { priority: 0, lb_endpoints: [ { endpoint: { address: { socket_address: { address: 1.2.3.4, port_value: 1 } } } } ] }
- { priority: 1, load_balancing_weight: 3 }
policy: { drop_overloads: [ { category: x, drop_percentage: { numerator: 4000000000, denominator: HUNDRED } } ] }
",
        |c| {
            let _ = outrider_model::ClusterLoadAssignment::from_proto(c);
        },
    );
}
