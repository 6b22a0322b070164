//! Forwarding routes: cluster choice (fixed, header, weighted) and path / authority rewrites.

use std::borrow::Cow;

use super::{config, forward, matched, req};
use crate::routing::{auto_host, choose_cluster, rewrite_authority, rewrite_path};

#[test]
fn weighted_clusters_split_by_weight() {
    let config = config(
        "virtual_hosts:
- name: v
  domains: ['*']
  routes:
  - match: { prefix: / }
    route:
      weighted_clusters:
        clusters:
        - { name: a, weight: 10 }
        - { name: zero, weight: 0 }
        - { name: b, weight: 30 }
        - { name: c, weight: 60 }
",
    );
    let request = req("h", "/");
    let action = forward(matched(&config, &request));
    let view = request.view();
    let mut counts = std::collections::BTreeMap::new();
    // Every value of [0, 100) once: the split is exact.
    for random in 0..100u64 {
        let choice = choose_cluster(action, &view, random + 1_000_000);
        *counts
            .entry(choice.cluster.expect("named").into_owned())
            .or_insert(0) += 1;
    }
    let counts: Vec<_> = counts.into_iter().collect();
    assert_eq!(
        counts,
        vec![
            ("a".to_string(), 10),
            ("b".to_string(), 30),
            ("c".to_string(), 60)
        ]
    );
    // The slices are in configuration order.
    let pick = |random| {
        choose_cluster(action, &view, random)
            .cluster
            .map(Cow::into_owned)
    };
    assert_eq!(pick(0).as_deref(), Some("a"));
    assert_eq!(pick(9).as_deref(), Some("a"));
    assert_eq!(pick(10).as_deref(), Some("b"));
    assert_eq!(pick(40).as_deref(), Some("c"));
    assert_eq!(pick(99).as_deref(), Some("c"));
    assert_eq!(pick(100).as_deref(), Some("a"));
    assert_eq!(pick(u64::MAX).as_deref(), Some("b"), "u64::MAX % 100 = 15");
}

#[test]
fn weighted_random_value_header_and_cluster_headers() {
    let config = config(
        "virtual_hosts:
- name: v
  domains: ['*']
  routes:
  - match: { prefix: /weighted }
    route:
      weighted_clusters:
        header_name: x-random
        clusters:
        - { name: a, weight: 1, host_rewrite_literal: a.internal }
        - { cluster_header: x-cluster, weight: 1 }
  - match: { prefix: /header }
    route: { cluster_header: x-cluster }
  - match: { prefix: / }
    route: { cluster: fixed }
",
    );
    let pick = |request: &super::Req| {
        let action = forward(matched(&config, request));
        let choice = choose_cluster(action, &request.view(), 0);
        (
            choice.cluster.map(Cow::into_owned),
            choice.weighted.and_then(|w| w.host_rewrite_literal.clone()),
        )
    };
    assert_eq!(pick(&req("h", "/other")), (Some("fixed".into()), None));
    assert_eq!(
        pick(&req("h", "/header").header("x-cluster", "from-header")),
        (Some("from-header".into()), None)
    );
    // Missing or empty: no cluster, so the route's cluster_not_found_response_code.
    assert_eq!(pick(&req("h", "/header")), (None, None));
    assert_eq!(
        pick(&req("h", "/header").header("x-cluster", "")),
        (None, None)
    );
    // The random value 0 picks `a`; a numeric x-random overrides it.
    assert_eq!(
        pick(&req("h", "/weighted")),
        (Some("a".into()), Some("a.internal".into()))
    );
    assert_eq!(
        pick(
            &req("h", "/weighted")
                .header("x-random", "1")
                .header("x-cluster", "dyn")
        ),
        (Some("dyn".into()), None)
    );
    assert_eq!(
        pick(&req("h", "/weighted").header("x-random", "not-a-number")),
        (Some("a".into()), Some("a.internal".into()))
    );
}

#[test]
fn path_rewrites() {
    let config = config(
        r#"virtual_hosts:
- name: v
  domains: ['*']
  routes:
  - match: { prefix: /prefix/ }
    route: { cluster: c, prefix_rewrite: /new/ }
  - match: { prefix: /Strip, case_sensitive: false }
    route: { cluster: c, prefix_rewrite: / }
  - match: { path: /exact }
    route: { cluster: c, prefix_rewrite: /replaced }
  - match: { path_separated_prefix: /sep }
    route: { cluster: c, prefix_rewrite: /other }
  - match: { safe_regex: { regex: '/regex/.*' } }
    route: { cluster: c, prefix_rewrite: /whole }
  - match: { prefix: /users/ }
    route:
      cluster: c
      regex_rewrite: { pattern: { regex: '^/users/([0-9]+)/profile$' }, substitution: '/profiles/\1' }
  - match: { prefix: /all-x }
    route:
      cluster: c
      regex_rewrite: { pattern: { regex: 'x' }, substitution: 'y' }
  - match: { prefix: / }
    route: { cluster: c }
"#,
    );
    let cases = [
        ("/prefix/a/b?q=1", "/new/a/b?q=1"),
        ("/prefix/", "/new/"),
        ("/STRIP/x", "//x"),
        ("/stripped", "/ped"),
        ("/exact?q", "/replaced?q"),
        ("/sep/a", "/other/a"),
        ("/sep", "/other"),
        ("/regex/a/b?z", "/whole?z"),
        ("/users/42/profile?full=1", "/profiles/42?full=1"),
        // The regex does not match: the path is unchanged (and borrowed).
        ("/users/abc", "/users/abc"),
        ("/all-x/x?x=x", "/all-y/y?x=x"),
        ("/untouched?x", "/untouched?x"),
    ];
    for (path, expected) in cases {
        let request = req("h", path);
        let route = matched(&config, &request);
        let rewritten = rewrite_path(route, path);
        assert_eq!(rewritten, expected, "{path}");
        if path == expected {
            assert!(matches!(rewritten, Cow::Borrowed(_)), "{path} allocated");
        }
    }
}

#[test]
fn authority_rewrites() {
    let config = config(
        "virtual_hosts:
- name: v
  domains: ['*']
  routes:
  - match: { prefix: /literal }
    route: { cluster: c, host_rewrite_literal: upstream.internal }
  - match: { prefix: /header }
    route: { cluster: c, host_rewrite_header: x-upstream-host }
  - match: { prefix: /auto }
    route: { cluster: c, auto_host_rewrite: true }
  - match: { prefix: /weighted }
    route:
      host_rewrite_literal: route.internal
      weighted_clusters:
        clusters: [{ name: a, weight: 1, host_rewrite_literal: a.internal }]
  - match: { prefix: / }
    route: { cluster: c }
",
    );
    // The authority routing decides, then the endpoint's hostname once one is picked.
    let rewrite = |request: &super::Req, hostname: Option<&str>| {
        let action = forward(matched(&config, request));
        let view = request.view();
        let choice = choose_cluster(action, &view, 0);
        match auto_host(action, hostname.unwrap_or_default()) {
            Some(host) => Some(host.to_string()),
            None => rewrite_authority(action, choice.weighted, &view).map(Cow::into_owned),
        }
    };
    assert_eq!(
        rewrite(&req("h", "/literal"), None).as_deref(),
        Some("upstream.internal")
    );
    assert_eq!(
        rewrite(
            &req("h", "/header").header("x-upstream-host", "from.header"),
            None
        )
        .as_deref(),
        Some("from.header")
    );
    assert_eq!(rewrite(&req("h", "/header"), None), None);
    assert_eq!(
        rewrite(&req("h", "/header").header("x-upstream-host", ""), None),
        None
    );
    assert_eq!(
        rewrite(&req("h", "/auto"), Some("ep.dns.name")).as_deref(),
        Some("ep.dns.name")
    );
    // An endpoint without hostname leaves the authority alone.
    assert_eq!(rewrite(&req("h", "/auto"), None), None);
    assert_eq!(rewrite(&req("h", "/auto"), Some("")), None);
    // The weighted cluster's literal overrides the route's.
    assert_eq!(
        rewrite(&req("h", "/weighted"), None).as_deref(),
        Some("a.internal")
    );
    assert_eq!(rewrite(&req("h", "/plain"), Some("ep")), None);
}
