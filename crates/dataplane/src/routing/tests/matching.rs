//! Route matching inside a virtual host: path kinds with `case_sensitive`, headers, query
//! parameters, gRPC, and first-match order.

use http::Method;

use super::{check, config, req};

/// One virtual host `v` whose routes are given as YAML flow mappings, named in order.
fn routes(routes: &[&str]) -> String {
    let mut yaml = String::from("virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n");
    for r in routes {
        yaml.push_str(&format!(
            "  - {{ {r}, direct_response: {{ status: 200 }} }}\n"
        ));
    }
    yaml
}

#[test]
fn path_kinds_and_case_sensitivity() {
    let config = config(&routes(&[
        "name: exact, match: { path: /exact }",
        "name: exact_ci, match: { path: /CI-Exact, case_sensitive: false }",
        "name: separated, match: { path_separated_prefix: /sep }",
        "name: separated_ci, match: { path_separated_prefix: /SepCI, case_sensitive: false }",
        "name: regex, match: { safe_regex: { regex: '/re/[0-9]+' }, case_sensitive: false }",
        "name: prefix_ci, match: { prefix: /Upper, case_sensitive: false }",
        "name: prefix, match: { prefix: /lower }",
    ]));
    let v = |r: &'static str| Some(r);
    check(
        &config,
        &[
            (req("h", "/exact"), v("v/exact")),
            (req("h", "/exact?x=1"), v("v/exact")),
            (req("h", "/exact#frag"), v("v/exact")),
            (req("h", "/exact/"), None),
            (req("h", "/EXACT"), None),
            (req("h", "/ci-exact"), v("v/exact_ci")),
            (req("h", "/CI-EXACT?q"), v("v/exact_ci")),
            (req("h", "/sep"), v("v/separated")),
            (req("h", "/sep/more"), v("v/separated")),
            (req("h", "/sep?x"), v("v/separated")),
            (req("h", "/separate"), None),
            (req("h", "/SEP"), None),
            (req("h", "/sepci/x"), v("v/separated_ci")),
            (req("h", "/re/123"), v("v/regex")),
            (req("h", "/re/123?x=y"), v("v/regex")),
            // Full match only; `case_sensitive` does not apply to regexes.
            (req("h", "/re/123/x"), None),
            (req("h", "/RE/123"), None),
            (req("h", "/upperCASE"), v("v/prefix_ci")),
            (req("h", "/UPPER"), v("v/prefix_ci")),
            (req("h", "/lowercase"), v("v/prefix")),
            (req("h", "/LOWERCASE"), None),
            // The query string is never part of the matched path.
            (req("h", "/x?/lower"), None),
            (req("h", ""), None),
        ],
    );
}

#[test]
fn first_match_wins() {
    let config = config(&routes(&[
        "name: specific, match: { prefix: /api/v1 }",
        "name: broad, match: { prefix: /api }",
        "name: shadowed, match: { prefix: /api/v2 }",
        "name: catch_all, match: { prefix: / }",
    ]));
    check(
        &config,
        &[
            (req("h", "/api/v1/users"), Some("v/specific")),
            (req("h", "/api/v2/users"), Some("v/broad")),
            (req("h", "/other"), Some("v/catch_all")),
        ],
    );
}

#[test]
fn header_matchers() {
    let config = config(&routes(&[
        "name: exact, match: { prefix: /, headers: [{ name: x-a, string_match: { exact: one } }] }",
        "name: legacy_exact, match: { prefix: /, headers: [{ name: x-b, exact_match: two }] }",
        "name: ignore_case, match: { prefix: /, headers: [{ name: x-c, string_match: { prefix: ab, ignore_case: true } }] }",
        "name: regex, match: { prefix: /, headers: [{ name: x-d, safe_regex_match: { regex: 'v[0-9]' } }] }",
        "name: range, match: { prefix: /, headers: [{ name: x-e, range_match: { start: 10, end: 20 } }] }",
        "name: range_inverted, match: { prefix: /, headers: [{ name: x-f, range_match: { start: 10, end: 20 }, invert_match: true }] }",
        "name: present, match: { prefix: /, headers: [{ name: x-g, present_match: true }] }",
        "name: absent, match: { prefix: /absent, headers: [{ name: x-h, present_match: false }] }",
        "name: inverted, match: { prefix: /inv, headers: [{ name: x-i, string_match: { exact: no }, invert_match: true }] }",
        "name: missing_as_empty, match: { prefix: /empty, headers: [{ name: x-j, string_match: { exact: '' }, treat_missing_header_as_empty: true }] }",
        "name: all_of, match: { prefix: /all, headers: [{ name: x-k, present_match: true }, { name: x-l, string_match: { suffix: z } }] }",
        "name: method, match: { prefix: /m, headers: [{ name: ':method', string_match: { exact: POST } }] }",
        "name: contains, match: { prefix: /, headers: [{ name: x-m, string_match: { contains: mid } }] }",
        "name: fallback, match: { prefix: / }",
    ]));
    check(
        &config,
        &[
            (req("h", "/").header("x-a", "one"), Some("v/exact")),
            (req("h", "/").header("x-a", "One"), Some("v/fallback")),
            (req("h", "/").header("x-b", "two"), Some("v/legacy_exact")),
            (req("h", "/").header("x-c", "ABCD"), Some("v/ignore_case")),
            (req("h", "/").header("x-d", "v7"), Some("v/regex")),
            (req("h", "/").header("x-d", "v77"), Some("v/fallback")),
            (req("h", "/").header("x-e", "10"), Some("v/range")),
            (req("h", "/").header("x-e", "19"), Some("v/range")),
            (req("h", "/").header("x-e", "20"), Some("v/fallback")),
            (req("h", "/").header("x-e", "ten"), Some("v/fallback")),
            (req("h", "/").header("x-f", "25"), Some("v/range_inverted")),
            (req("h", "/").header("x-f", "15"), Some("v/fallback")),
            (req("h", "/").header("x-g", ""), Some("v/present")),
            (req("h", "/absent"), Some("v/absent")),
            (req("h", "/absent").header("x-h", "x"), Some("v/fallback")),
            (req("h", "/inv").header("x-i", "yes"), Some("v/inverted")),
            (req("h", "/inv").header("x-i", "no"), Some("v/fallback")),
            // A missing header never matches a value rule, inverted or not (as in Envoy).
            (req("h", "/inv"), Some("v/fallback")),
            (req("h", "/empty"), Some("v/missing_as_empty")),
            (
                req("h", "/all").header("x-k", "1").header("x-l", "baz"),
                Some("v/all_of"),
            ),
            (req("h", "/all").header("x-k", "1"), Some("v/fallback")),
            (req("h", "/m").method(Method::POST), Some("v/method")),
            (req("h", "/m"), Some("v/fallback")),
            // Repeated headers are matched as one value joined with ','.
            (
                req("h", "/").header("x-m", "left").header("x-m", "mid"),
                Some("v/contains"),
            ),
            (
                req("h", "/").header("x-a", "one").header("x-a", "two"),
                Some("v/fallback"),
            ),
        ],
    );
}

#[test]
fn query_parameter_matchers() {
    let config = config(&routes(&[
        "name: exact, match: { prefix: /, query_parameters: [{ name: debug, string_match: { exact: 'true' } }] }",
        "name: present, match: { prefix: /, query_parameters: [{ name: flag, present_match: true }] }",
        "name: regex_ci, match: { prefix: /, query_parameters: [{ name: v, string_match: { prefix: ab, ignore_case: true } }] }",
        "name: both, match: { prefix: /both, query_parameters: [{ name: a }, { name: b, string_match: { exact: '2' } }] }",
        "name: fallback, match: { prefix: / }",
    ]));
    check(
        &config,
        &[
            (req("h", "/?debug=true"), Some("v/exact")),
            (req("h", "/?x=1&debug=true&y"), Some("v/exact")),
            // The first value counts.
            (req("h", "/?debug=false&debug=true"), Some("v/fallback")),
            (req("h", "/?debug=TRUE"), Some("v/fallback")),
            // Values are matched undecoded, as Envoy's route matcher does.
            (req("h", "/?debug=%74rue"), Some("v/fallback")),
            (req("h", "/?flag"), Some("v/present")),
            (req("h", "/?flag="), Some("v/present")),
            (req("h", "/?flagx=1"), Some("v/fallback")),
            (req("h", "/?v=ABc"), Some("v/regex_ci")),
            (req("h", "/both?a&b=2"), Some("v/both")),
            (req("h", "/both?b=2"), Some("v/fallback")),
            (req("h", "/"), Some("v/fallback")),
        ],
    );
}

#[test]
fn grpc_routes_need_a_grpc_request() {
    let config = config(&routes(&[
        "name: grpc, match: { prefix: /pkg.Svc/, grpc: {} }",
        "name: other, match: { prefix: / }",
    ]));
    check(
        &config,
        &[
            (req("h", "/pkg.Svc/Call").grpc(), Some("v/grpc")),
            (req("h", "/pkg.Svc/Call"), Some("v/other")),
        ],
    );
    use crate::routing::is_grpc_content_type;
    assert!(is_grpc_content_type(b"application/grpc"));
    assert!(is_grpc_content_type(b"application/grpc+proto"));
    assert!(is_grpc_content_type(b"application/grpc;charset=utf-8"));
    assert!(!is_grpc_content_type(b"application/grpc-web"));
    assert!(!is_grpc_content_type(b"application/json"));
}

#[test]
fn index_prefilter_agrees_on_short_and_long_prefixes() {
    let config = config(&routes(&[
        "name: long, match: { prefix: /abcdefghij }",
        "name: eight, match: { path: /abcdefg }",
        "name: short, match: { prefix: /ab }",
        "name: utf8, match: { prefix: /é }",
        "name: empty, match: { prefix: '' }",
    ]));
    check(
        &config,
        &[
            (req("h", "/abcdefghijk"), Some("v/long")),
            (req("h", "/abcdefghi"), Some("v/short")),
            (req("h", "/abcdefg"), Some("v/eight")),
            (req("h", "/abcdefg?x"), Some("v/eight")),
            (req("h", "/ab"), Some("v/short")),
            (req("h", "/a"), Some("v/empty")),
            (req("h", "/é/x"), Some("v/utf8")),
            (req("h", "*"), Some("v/empty")),
        ],
    );
}
