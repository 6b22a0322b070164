//! Route selection on the request path: 1 000 routes as 10 virtual hosts × 100 prefix routes,
//! and 1 000 exact-domain virtual hosts, each matching the last candidate and missing. The
//! indexed lookup (`CompiledRoutes`) must cost the same whatever the number of virtual hosts;
//! the scanning `route()` is measured beside it for comparison.
//!
//! Before measuring, a counting global allocator checks that a plain match allocates nothing.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::config::route::v3 as route_pb;
use hyper::{HeaderMap, Method};
use outrider_dataplane::routing::{CompiledRoutes, RequestView, route};
use outrider_model::RouteConfiguration;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn configuration(vhosts: usize, routes_per_vhost: usize) -> Arc<RouteConfiguration> {
    let mut yaml = String::from("name: bench\nvirtual_hosts:\n");
    for v in 0..vhosts {
        yaml.push_str(&format!(
            "- name: v{v}\n  domains: [svc{v}.example, svc{v}.example:8080]\n  routes:\n"
        ));
        for r in 0..routes_per_vhost {
            yaml.push_str(&format!(
                "  - {{ match: {{ prefix: /api/{r}/ }}, route: {{ cluster: c{v}_{r} }} }}\n"
            ));
        }
    }
    let proto: route_pb::RouteConfiguration =
        outrider_envoy_json::from_yaml_str(&yaml).expect("valid route configuration YAML");
    Arc::new(RouteConfiguration::from_proto(&proto).expect("valid route configuration"))
}

fn view<'a>(
    authority: &'a str,
    path: &'a str,
    method: &'a Method,
    headers: &'a HeaderMap,
) -> RequestView<'a> {
    RequestView {
        authority,
        path_and_query: path,
        method,
        headers,
        scheme_is_https: false,
        is_grpc: false,
    }
}

/// Panics if routing `request` allocates.
fn assert_no_allocation(compiled: &CompiledRoutes, request: &RequestView<'_>) {
    let region = Region::new(ALLOCATOR);
    let found = compiled.route(request).is_some();
    let change = region.change();
    assert_eq!(
        (change.allocations, change.reallocations),
        (0, 0),
        "routing {} {} (found: {found}) allocated",
        request.authority,
        request.path_and_query
    );
}

fn bench(c: &mut Criterion) {
    let method = Method::GET;
    let headers = HeaderMap::new();
    let cases = [
        // (group, vhosts, routes each, authority of the last vhost, last route's path)
        (
            "10x100_prefix",
            10,
            100,
            "svc9.example",
            "/api/99/items?q=1",
        ),
        (
            "1000_exact_vhosts",
            1000,
            1,
            "svc999.example",
            "/api/0/items?q=1",
        ),
    ];
    for (group_name, vhosts, routes, authority, last_path) in cases {
        let config = configuration(vhosts, routes);
        let compiled = CompiledRoutes::new(&config);
        let hit = view(authority, last_path, &method, &headers);
        let miss_path = view(authority, "/other/path", &method, &headers);
        let miss_host = view("unknown.example", last_path, &method, &headers);
        let upper = view("SVC9.Example:8080", last_path, &method, &headers);
        assert!(compiled.route(&hit).is_some());
        assert!(compiled.route(&miss_path).is_none());
        assert!(compiled.route(&miss_host).is_none());
        for request in [&hit, &miss_path, &miss_host, &upper] {
            assert_no_allocation(&compiled, request);
        }

        let mut group = c.benchmark_group(group_name);
        group.bench_function("indexed_last_route", |b| {
            b.iter(|| compiled.route(black_box(&hit)))
        });
        group.bench_function("indexed_miss_path", |b| {
            b.iter(|| compiled.route(black_box(&miss_path)))
        });
        group.bench_function("indexed_miss_host", |b| {
            b.iter(|| compiled.route(black_box(&miss_host)))
        });
        group.bench_function("indexed_mixed_case_port", |b| {
            b.iter(|| compiled.route(black_box(&upper)))
        });
        group.bench_function("scan_last_route", |b| {
            b.iter(|| route(&config, black_box(&hit)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
