//! Redirect locations and direct responses.

use outrider_model::RouteAction;

use super::{Req, config, matched, req};
use crate::routing::{LocalResponse, direct_response, redirect};

/// `(status, Location)` for `request` on a configuration whose routes are YAML flow mappings.
fn location(routes: &str, request: &Req) -> (u16, String) {
    let config = config(&format!(
        "virtual_hosts:\n- name: v\n  domains: ['*']\n  routes: {routes}\n"
    ));
    let route = matched(&config, request);
    match &route.action {
        RouteAction::Redirect(action) => {
            let r = redirect(&route.route_match, action, &request.view());
            (r.status, r.location)
        }
        other => panic!("expected a redirect, got {other:?}"),
    }
}

#[test]
fn redirect_locations() {
    let cases: &[(&str, Req, u16, &str)] = &[
        // Scheme changes drop the old scheme's default port, keep others.
        (
            "[{ match: { prefix: / }, redirect: { https_redirect: true } }]",
            req("a.example", "/p?q=1"),
            301,
            "https://a.example/p?q=1",
        ),
        (
            "[{ match: { prefix: / }, redirect: { https_redirect: true } }]",
            req("a.example:80", "/p"),
            301,
            "https://a.example/p",
        ),
        (
            "[{ match: { prefix: / }, redirect: { https_redirect: true } }]",
            req("a.example:8080", "/p"),
            301,
            "https://a.example:8080/p",
        ),
        (
            "[{ match: { prefix: / }, redirect: { scheme_redirect: HTTP } }]",
            req("a.example:443", "/p").https(),
            301,
            "http://a.example/p",
        ),
        // x-forwarded-proto decides which default port the authority carried.
        (
            "[{ match: { prefix: / }, redirect: { https_redirect: true } }]",
            req("a.example:443", "/p").header("x-forwarded-proto", "http"),
            301,
            "https://a.example:443/p",
        ),
        // Same scheme: the port stays.
        (
            "[{ match: { prefix: / }, redirect: { path_redirect: /new } }]",
            req("a.example:80", "/old?x=1"),
            301,
            "http://a.example:80/new?x=1",
        ),
        // Host and port.
        (
            "[{ match: { prefix: / }, redirect: { host_redirect: b.example, response_code: FOUND } }]",
            req("a.example:8080", "/p"),
            302,
            "http://b.example/p",
        ),
        (
            "[{ match: { prefix: / }, redirect: { port_redirect: 8443, response_code: SEE_OTHER } }]",
            req("a.example:8080", "/p"),
            303,
            "http://a.example:8443/p",
        ),
        (
            "[{ match: { prefix: / }, redirect: { host_redirect: b.example, port_redirect: 9000, response_code: TEMPORARY_REDIRECT } }]",
            req("[::1]:8080", "/p"),
            307,
            "http://b.example:9000/p",
        ),
        (
            "[{ match: { prefix: / }, redirect: { port_redirect: 9000, response_code: PERMANENT_REDIRECT } }]",
            req("[::1]:8080", "/p"),
            308,
            "http://[::1]:9000/p",
        ),
        // Path redirects: the request query is kept unless the new path has its own.
        (
            "[{ match: { prefix: / }, redirect: { path_redirect: /new?a=b, strip_query: true } }]",
            req("h", "/old?x=1"),
            301,
            "http://h/new?a=b",
        ),
        (
            "[{ match: { prefix: / }, redirect: { path_redirect: /new, strip_query: true } }]",
            req("h", "/old?x=1"),
            301,
            "http://h/new",
        ),
        (
            "[{ match: { prefix: / }, redirect: { path_redirect: relative } }]",
            req("h", "/old"),
            301,
            "http://h/relative",
        ),
        // Prefix and regex rewrites act on the matched part / path, keeping the query.
        (
            "[{ match: { prefix: /v1/ }, redirect: { prefix_rewrite: /v2/ } }]",
            req("h", "/v1/items?page=2"),
            301,
            "http://h/v2/items?page=2",
        ),
        (
            "[{ match: { prefix: /v1/ }, redirect: { prefix_rewrite: /v2/, strip_query: true } }]",
            req("h", "/v1/items?page=2"),
            301,
            "http://h/v2/items",
        ),
        (
            r"[{ match: { prefix: / }, redirect: { regex_rewrite: { pattern: { regex: '^/old/(.*)$' }, substitution: '/new/\1' } } }]",
            req("h", "/old/a/b?k=v"),
            301,
            "http://h/new/a/b?k=v",
        ),
        (
            "[{ match: { prefix: / }, redirect: { strip_query: true } }]",
            req("h", "/keep?drop=1"),
            301,
            "http://h/keep",
        ),
    ];
    for (routes, request, status, expected) in cases {
        assert_eq!(
            location(routes, request),
            (*status, expected.to_string()),
            "{routes}"
        );
    }
}

#[test]
fn direct_responses() {
    let config = config(
        "virtual_hosts:
- name: v
  domains: ['*']
  routes:
  - match: { prefix: /ok }
    direct_response: { status: 200, body: { inline_string: hello } }
  - match: { prefix: /created }
    direct_response: { status: 201 }
  - match: { prefix: /moved }
    direct_response: { status: 302, body: { inline_string: see elsewhere } }
",
    );
    let respond = |request: &Req| {
        let route = matched(&config, request);
        match &route.action {
            RouteAction::DirectResponse(d) => {
                let LocalResponse {
                    status,
                    body,
                    location,
                } = direct_response(d, &request.view());
                (status, String::from_utf8_lossy(body).into_owned(), location)
            }
            other => panic!("expected a direct response, got {other:?}"),
        }
    };
    assert_eq!(respond(&req("h", "/ok")), (200, "hello".into(), None));
    // 201 and 3xx carry the request's own URL as Location, as Envoy's router adds it.
    assert_eq!(
        respond(&req("h:8080", "/created?x=1")),
        (201, String::new(), Some("http://h:8080/created?x=1".into()))
    );
    assert_eq!(
        respond(&req("h", "/moved").https()),
        (302, "see elsewhere".into(), Some("https://h/moved".into()))
    );
}
