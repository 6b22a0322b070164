//! Virtual-host selection: precedence, longest wildcard, case, ports, `vhost_header`, index.

use std::sync::Arc;

use http::Method;

use super::{check, config, req, routed};
use crate::routing::{CompiledRoutes, CompiledRoutesCache, strip_host_port, without_port};

/// One virtual host per domain kind; every route is `prefix: /` named `r`.
fn domains_config(extra: &str) -> String {
    let vhost = |name: &str, domains: &str| {
        format!(
            "- name: {name}\n  domains: {domains}\n  routes: [{{ name: r, match: {{ prefix: / }}, direct_response: {{ status: 200 }} }}]\n"
        )
    };
    [
        extra.to_string(),
        "virtual_hosts:\n".to_string(),
        vhost("exact", r#"["www.foo.com", "Mixed.Case.Com"]"#),
        vhost("suffix_short", r#"["*.foo.com"]"#),
        vhost("suffix_long", r#"["*-bar.foo.com"]"#),
        vhost("prefix_short", r#"["foo.*"]"#),
        vhost("prefix_long", r#"["foo.bar.*"]"#),
        vhost("with_port", r#"["www.foo.com:8080", "[::1]:80"]"#),
        vhost("default", r#"["*"]"#),
    ]
    .concat()
}

#[test]
fn exact_then_longest_suffix_then_longest_prefix_then_any() {
    let config = config(&domains_config(""));
    check(
        &config,
        &[
            (req("www.foo.com", "/"), Some("exact/r")),
            (req("WWW.Foo.COM", "/"), Some("exact/r")),
            (req("mixed.case.com", "/"), Some("exact/r")),
            (req("baz-bar.foo.com", "/"), Some("suffix_long/r")),
            (req("baz.foo.com", "/"), Some("suffix_short/r")),
            // The wildcard must match at least one character.
            (req("-bar.foo.com", "/"), Some("suffix_short/r")),
            (req(".foo.com", "/"), Some("default/r")),
            // A suffix wildcard beats a (longer) prefix wildcard.
            (req("foo.bar.foo.com", "/"), Some("suffix_short/r")),
            (req("foo.bar.org", "/"), Some("prefix_long/r")),
            (req("foo.example", "/"), Some("prefix_short/r")),
            (req("foo.", "/"), Some("default/r")),
            (req("other.org", "/"), Some("default/r")),
            (req("", "/"), Some("default/r")),
        ],
    );
}

#[test]
fn port_is_part_of_the_authority_by_default() {
    let config = config(&domains_config(""));
    check(
        &config,
        &[
            (req("www.foo.com:8080", "/"), Some("with_port/r")),
            (req("WWW.FOO.COM:8080", "/"), Some("with_port/r")),
            // Envoy's "why is my route not found": another port does not match the bare name.
            (req("www.foo.com:9090", "/"), Some("default/r")),
            // ... but `foo.*` matches a name with a port after it.
            (req("foo.bar.org:443", "/"), Some("prefix_long/r")),
            (req("[::1]:80", "/"), Some("with_port/r")),
        ],
    );
}

#[test]
fn ignore_port_in_host_matching_strips_any_port() {
    let config = config(
        "ignore_port_in_host_matching: true
virtual_hosts:
- name: plain
  domains: [www.foo.com, '[::1]']
  routes: [{ name: r, match: { prefix: / }, direct_response: { status: 200 } }]
- name: default
  domains: ['*']
  routes: [{ name: r, match: { prefix: / }, direct_response: { status: 200 } }]
",
    );
    check(
        &config,
        &[
            (req("www.foo.com:9090", "/"), Some("plain/r")),
            (req("www.foo.com", "/"), Some("plain/r")),
            (req("[::1]:8080", "/"), Some("plain/r")),
            (req("[::1]", "/"), Some("plain/r")),
            (req("other:80", "/"), Some("default/r")),
        ],
    );
}

#[test]
fn no_default_virtual_host_means_no_route() {
    let config = config(
        "virtual_hosts:
- name: only
  domains: [a.example]
  routes: [{ name: r, match: { prefix: / }, direct_response: { status: 200 } }]
",
    );
    check(
        &config,
        &[
            (req("a.example", "/"), Some("only/r")),
            (req("b.example", "/"), None),
        ],
    );
}

#[test]
fn vhost_header_replaces_the_authority() {
    let config = config(
        "vhost_header: x-target-host
virtual_hosts:
- name: a
  domains: [a.example]
  routes: [{ name: r, match: { prefix: / }, direct_response: { status: 200 } }]
",
    );
    check(
        &config,
        &[
            (
                req("b.example", "/").header("x-target-host", "A.example"),
                Some("a/r"),
            ),
            (req("a.example", "/"), None),
        ],
    );
}

#[test]
fn index_agrees_with_scan_on_many_virtual_hosts() {
    let mut yaml = String::from("virtual_hosts:\n");
    for i in 0..300 {
        yaml.push_str(&format!(
            "- name: v{i}\n  domains: [h{i}.example, '*.w{i}.example', 'p{i}.*']\n  routes: [{{ name: r, match: {{ prefix: / }}, direct_response: {{ status: 200 }} }}]\n"
        ));
    }
    let config = config(&yaml);
    for i in (0..300).step_by(37) {
        assert_eq!(
            routed(&config, &req(&format!("h{i}.example"), "/")),
            Some(format!("v{i}/r"))
        );
        assert_eq!(
            routed(&config, &req(&format!("x.w{i}.example"), "/")),
            Some(format!("v{i}/r"))
        );
        assert_eq!(
            routed(&config, &req(&format!("p{i}.anything"), "/")),
            Some(format!("v{i}/r"))
        );
    }
    assert_eq!(routed(&config, &req("nothing.example", "/")), None);
}

#[test]
fn long_mixed_case_authority_is_matched_without_the_stack_buffer() {
    let long = format!("{}.Example", "a".repeat(300));
    let yaml = format!(
        "virtual_hosts:\n- name: long\n  domains: ['{}']\n  routes: [{{ name: r, match: {{ prefix: / }}, direct_response: {{ status: 200 }} }}]\n",
        long.to_ascii_lowercase()
    );
    check(&config(&yaml), &[(req(&long, "/"), Some("long/r"))]);
}

#[test]
fn cache_recompiles_only_for_a_new_configuration() {
    let first = config(&domains_config(""));
    let second = config(&domains_config(""));
    let mut cache = CompiledRoutesCache::new();
    let a = Arc::clone(cache.get(&first));
    let b = Arc::clone(cache.get(&first));
    assert!(Arc::ptr_eq(&a, &b));
    let c = Arc::clone(cache.get(&second));
    assert!(!Arc::ptr_eq(&a, &c));
    assert!(c.is_compiled_from(&second));
    assert_eq!(
        CompiledRoutes::new(&first)
            .select_virtual_host("baz.foo.com")
            .map(|v| v.name.as_str()),
        Some("suffix_short")
    );
}

#[test]
fn connection_manager_port_stripping() {
    let get = Method::GET;
    assert_eq!(
        strip_host_port("a.example:8080", None, &get),
        Some("a.example")
    );
    assert_eq!(
        strip_host_port("a.example:8080", Some(8080), &get),
        Some("a.example")
    );
    assert_eq!(strip_host_port("a.example:8080", Some(80), &get), None);
    assert_eq!(strip_host_port("a.example", None, &get), None);
    assert_eq!(strip_host_port("a.example:http", None, &get), None);
    assert_eq!(strip_host_port("[::1]:443", None, &get), Some("[::1]"));
    assert_eq!(strip_host_port("[::1]", None, &get), None);
    assert_eq!(
        strip_host_port("a.example:443", None, &Method::CONNECT),
        None
    );
    assert_eq!(without_port("a.example:x"), "a.example");
    assert_eq!(without_port("[::1]"), "[::1]");
}
