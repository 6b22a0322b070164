//! Hash policies: Envoy's hash functions, combining rule, terminal policies, generated cookies.

use std::net::SocketAddr;
use std::time::Duration;

use xxhash_rust::xxh64::xxh64;

use super::{Req, config, forward, matched, req};
use crate::routing::{GeneratedCookie, RequestHash, request_hash};

const PEER: &str = "10.1.2.3:51000";
const LOCAL: &str = "10.0.0.1:8080";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("valid socket address")
}

/// The hash of `request` under the route whose `hash_policy` is the YAML flow list `policies`.
fn hash(policies: &str, request: &Req, peer: &str) -> RequestHash {
    let config = config(&format!(
        "virtual_hosts:
- name: v
  domains: ['*']
  routes:
  - match: {{ prefix: / }}
    route: {{ cluster: c, hash_policy: {policies} }}
"
    ));
    let action = forward(matched(&config, request));
    request_hash(
        &action.hash_policy,
        &request.view(),
        addr(peer),
        addr(LOCAL),
    )
}

fn value(policies: &str, request: &Req) -> Option<u64> {
    hash(policies, request, PEER).hash
}

#[test]
fn single_sources_use_xxhash64() {
    let r = req("h", "/p?user=alice&x=1").header("x-user", "alice");
    assert_eq!(
        value("[{ header: { header_name: x-user } }]", &r),
        Some(xxh64(b"alice", 0))
    );
    assert_eq!(
        value("[{ query_parameter: { name: user } }]", &r),
        Some(xxh64(b"alice", 0))
    );
    assert_eq!(
        value("[{ connection_properties: { source_ip: true } }]", &r),
        Some(xxh64(b"10.1.2.3", 0))
    );
    assert_eq!(
        hash(
            "[{ connection_properties: { source_ip: true } }]",
            &r,
            "[2001:db8::1]:443"
        )
        .hash,
        Some(xxh64(b"2001:db8::1", 0))
    );
    assert_eq!(
        value("[{ header: { header_name: ':authority' } }]", &r),
        Some(xxh64(b"h", 0))
    );
    // Nothing to hash: no value.
    assert_eq!(value("[{ header: { header_name: x-missing } }]", &r), None);
    assert_eq!(value("[{ query_parameter: { name: nope } }]", &r), None);
}

#[test]
fn same_request_same_hash_and_repeated_header_order_does_not_matter() {
    let policy = "[{ header: { header_name: x-k } }]";
    let a = req("h", "/").header("x-k", "one").header("x-k", "two");
    let b = req("h", "/").header("x-k", "two").header("x-k", "one");
    assert_eq!(value(policy, &a), value(policy, &b));
    assert_eq!(value(policy, &a), value(policy, &a.clone()));
    // Envoy chains sorted values through the seed.
    assert_eq!(value(policy, &a), Some(xxh64(b"two", xxh64(b"one", 0))));
    assert_ne!(
        value(policy, &a),
        value(policy, &req("h", "/").header("x-k", "one"))
    );
}

#[test]
fn policies_combine_by_rotate_and_xor() {
    let r = req("h", "/").header("x-a", "a").header("x-b", "b");
    let (ha, hb) = (xxh64(b"a", 0), xxh64(b"b", 0));
    assert_eq!(
        value(
            "[{ header: { header_name: x-a } }, { header: { header_name: x-b } }]",
            &r
        ),
        Some(ha.rotate_left(1) ^ hb)
    );
    // A policy that yields nothing is skipped without rotating.
    assert_eq!(
        value(
            "[{ header: { header_name: x-none } }, { header: { header_name: x-a } }, { header: { header_name: x-b } }]",
            &r
        ),
        Some(ha.rotate_left(1) ^ hb)
    );
    // Two identical policies do not cancel out.
    assert_eq!(
        value(
            "[{ header: { header_name: x-a } }, { header: { header_name: x-a } }]",
            &r
        ),
        Some(ha.rotate_left(1) ^ ha)
    );
}

#[test]
fn terminal_policy_stops_only_once_a_hash_exists() {
    let both = req("h", "/").header("x-a", "a").header("x-b", "b");
    let only_b = req("h", "/").header("x-b", "b");
    let policies =
        "[{ header: { header_name: x-a }, terminal: true }, { header: { header_name: x-b } }]";
    assert_eq!(value(policies, &both), Some(xxh64(b"a", 0)));
    // The terminal policy produced nothing: the walk goes on.
    assert_eq!(value(policies, &only_b), Some(xxh64(b"b", 0)));
    // A later terminal policy stops after the hash so far is combined.
    let policies = "[{ header: { header_name: x-b } }, { header: { header_name: x-a }, terminal: true }, { connection_properties: { source_ip: true } }]";
    assert_eq!(
        value(policies, &both),
        Some(xxh64(b"b", 0).rotate_left(1) ^ xxh64(b"a", 0))
    );
}

#[test]
fn cookies_are_read_or_generated() {
    let policy = "[{ cookie: { name: session } }]";
    for (cookie, expected) in [
        ("session=abc", Some("abc")),
        ("a=1; session=abc; b=2", Some("abc")),
        ("a=1;session=\"abc\"", Some("abc")),
        ("sessionx=abc", None),
        ("session=", None),
    ] {
        assert_eq!(
            value(policy, &req("h", "/").header("cookie", cookie)),
            expected.map(|v| xxh64(v.as_bytes(), 0)),
            "{cookie}"
        );
    }
    // Found in a second cookie header.
    let r = req("h", "/")
        .header("cookie", "a=1")
        .header("cookie", "session=xyz");
    assert_eq!(value(policy, &r), Some(xxh64(b"xyz", 0)));

    // With a ttl, a missing cookie is generated from the connection's addresses and hashed.
    let policy = "[{ cookie: { name: sticky, path: /app, ttl: 3600s } }]";
    let outcome = hash(policy, &req("h", "/"), PEER);
    let expected_value = format!("{:016x}", xxh64(format!("{PEER}{LOCAL}").as_bytes(), 0));
    assert_eq!(
        outcome.set_cookies,
        vec![GeneratedCookie {
            name: "sticky".into(),
            value: expected_value.clone(),
            path: "/app".into(),
            ttl: Duration::from_secs(3600),
        }]
    );
    assert_eq!(outcome.hash, Some(xxh64(expected_value.as_bytes(), 0)));
    assert_eq!(
        outcome.set_cookies[0].set_cookie_value(),
        format!("sticky=\"{expected_value}\"; Max-Age=3600; Path=/app; HttpOnly")
    );
    // The next request carries it and hashes the same.
    let again = req("h", "/").header("cookie", &format!("sticky={expected_value}"));
    let second = hash(policy, &again, PEER);
    assert_eq!(second.hash, outcome.hash);
    assert!(second.set_cookies.is_empty());
}
