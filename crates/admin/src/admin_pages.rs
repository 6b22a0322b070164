//! The admin HTTP pages: which path does what, Envoy's help text, its POST-only rule and its
//! 404 page, and the query-string parsing they share.

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use outrider_envoy_json::JsonError;

use crate::AdminState;
use crate::config_dump::DumpInputs;
use crate::config_dump_query::ConfigDumpQuery;
use crate::control_plane::control_plane_json;
use crate::server_info::{certs_json, ready, server_info_json};

/// One admin endpoint, as listed by `/help`.
struct Endpoint {
    path: &'static str,
    help: &'static str,
    /// Changes server state: POST only, as in Envoy.
    mutates: bool,
    params: &'static [(&'static str, &'static str)],
}

/// Sorted by path, the order `/help` prints them in.
const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        path: "/",
        help: "admin home page (this list)",
        mutates: false,
        params: &[],
    },
    Endpoint {
        path: "/certs",
        help: "print certs on machine (Envoy's envoy.admin.v3.Certificates)",
        mutates: false,
        params: &[],
    },
    Endpoint {
        path: "/clusters",
        help: "upstream cluster status: thresholds, hosts, their counters and health flags",
        mutates: false,
        params: &[(
            "format",
            "json for Envoy's envoy.admin.v3.Clusters JSON, else text",
        )],
    },
    Endpoint {
        path: "/config_dump",
        help: "dump current configs (Envoy's envoy.admin.v3.ConfigDump)",
        mutates: false,
        params: &[
            (
                "resource",
                "the repeated field of a dump to list on its own, e.g. dynamic_active_clusters",
            ),
            ("mask", "comma-separated field paths to keep (a FieldMask)"),
            (
                "name_regex",
                "dump only resources whose name fully matches this regex",
            ),
            ("include_eds", "include the endpoints (EDS) dump"),
        ],
    },
    Endpoint {
        path: "/control_plane",
        help: "the ADS stream's state and resources per status (Outrider only)",
        mutates: false,
        params: &[],
    },
    Endpoint {
        path: "/diagnose",
        help: "why a cluster has (no) healthy upstream: cluster, endpoints, ejections, health checks, breakers (Outrider only)",
        mutates: false,
        params: &[
            ("cluster", "the cluster to diagnose (required)"),
            ("format", "json for JSON, else text"),
        ],
    },
    Endpoint {
        path: "/drain_listeners",
        help: "drain listeners: they stop accepting, their connections close within --drain-time-s",
        mutates: true,
        params: &[
            (
                "inboundonly",
                "drain only listeners with traffic_direction INBOUND",
            ),
            (
                "graceful",
                "accepted; draining is always graceful (Connection: close, GOAWAY)",
            ),
        ],
    },
    Endpoint {
        path: "/healthcheck/fail",
        help: "make health checks fail and report DRAINING",
        mutates: true,
        params: &[],
    },
    Endpoint {
        path: "/healthcheck/ok",
        help: "make health checks pass again",
        mutates: true,
        params: &[],
    },
    Endpoint {
        path: "/help",
        help: "list the admin commands",
        mutates: false,
        params: &[],
    },
    Endpoint {
        path: "/listeners",
        help: "print listener info",
        mutates: false,
        params: &[("format", "json for Envoy's ListenersStatus JSON, else text")],
    },
    Endpoint {
        path: "/logging",
        help: "print the log filter in force, or set every logger's level",
        mutates: true,
        params: &[(
            "level",
            "trace, debug, info, warning/warn, error, critical or off",
        )],
    },
    Endpoint {
        path: "/quitquitquit",
        help: "shut the server down",
        mutates: true,
        params: &[],
    },
    Endpoint {
        path: "/ready",
        help: "print the server state; 200 if LIVE, 503 otherwise",
        mutates: false,
        params: &[],
    },
    Endpoint {
        path: "/server_info",
        help: "print version, state, uptime, options and node (envoy.admin.v3.ServerInfo)",
        mutates: false,
        params: &[],
    },
    Endpoint {
        path: "/stats",
        help: "print server stats (counters and gauges, Envoy's names)",
        mutates: false,
        params: &[
            (
                "filter",
                "print only the stats whose name matches this regex",
            ),
            (
                "format",
                "json for {\"stats\":[{\"name\",\"value\"}]}, else text",
            ),
        ],
    },
    Endpoint {
        path: "/stats/prometheus",
        help: "print server stats in the Prometheus text format",
        mutates: false,
        params: &[(
            "filter",
            "print only the stats whose name matches this regex",
        )],
    },
];

/// What a GET to a POST-only endpoint gets. Envoy's documentation (and our spec) says 400;
/// current Envoy sources answer 405 `Method GET not allowed, POST required.`.
const REQUIRES_POST: &str = "This endpoint requires POST.\n";

pub(crate) type AdminResponse = Response<Full<Bytes>>;

/// Answers one admin (non-gRPC) request. Envoy matches the path exactly, ignores the method of
/// read-only endpoints, and requires POST for the ones that change state.
pub(crate) fn handle(
    state: &AdminState,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> AdminResponse {
    let Some(endpoint) = ENDPOINTS.iter().find(|e| e.path == path) else {
        return text(StatusCode::NOT_FOUND, format!("invalid path. {}", help()));
    };
    if endpoint.mutates && method != Method::POST {
        return text(StatusCode::BAD_REQUEST, REQUIRES_POST.to_string());
    }
    let params = QueryParams::parse(query.unwrap_or_default());
    match endpoint.path {
        "/" | "/help" => text(StatusCode::OK, help()),
        "/clusters" => clusters_page(state, &params),
        "/config_dump" => config_dump(state, &params),
        "/control_plane" => json(Ok(control_plane_json(&state.xds.load()))),
        "/listeners" => listeners(state, &params),
        "/ready" => {
            let (status, body) = ready(state);
            text(status, body)
        }
        "/server_info" => json(server_info_json(state, SystemTime::now())),
        "/certs" => json(certs_json(state, SystemTime::now())),
        "/stats" | "/stats/prometheus" => stats_page(state, endpoint.path, &params),
        // Answered by `diagnose_page` (it waits for connect probes); reached only without one.
        "/diagnose" => text(
            StatusCode::BAD_REQUEST,
            "usage: /diagnose?cluster=NAME\n".to_string(),
        ),
        "/quitquitquit" => {
            state.control.request_quit();
            text(StatusCode::OK, "OK\n".to_string())
        }
        "/drain_listeners" => {
            let drained = state
                .drain_listeners
                .as_ref()
                .map_or(0, |drain| drain(params.has("inboundonly")));
            tracing::info!(drained, "listeners drained through the admin interface");
            text(StatusCode::OK, "OK\n".to_string())
        }
        "/logging" => logging_page(state, &params),
        "/healthcheck/fail" => {
            state.control.set_health_check_failed(true);
            text(StatusCode::OK, "OK\n".to_string())
        }
        "/healthcheck/ok" => {
            state.control.set_health_check_failed(false);
            text(StatusCode::OK, "OK\n".to_string())
        }
        _ => text(
            StatusCode::NOT_IMPLEMENTED,
            format!("{} is not implemented yet\n", endpoint.path),
        ),
    }
}

/// `/diagnose?cluster=NAME`: async, as it probes each endpoint with a TCP connect. `None` when
/// the request is not a diagnosis (or lacks its cluster), for `handle` to answer.
pub(crate) async fn diagnose_page(
    state: &AdminState,
    path: &str,
    query: Option<&str>,
) -> Option<AdminResponse> {
    if path != "/diagnose" {
        return None;
    }
    let params = QueryParams::parse(query.unwrap_or_default());
    let cluster = params.first("cluster").filter(|c| !c.is_empty())?;
    let report = crate::diagnose::diagnose(state, cluster).await;
    if params.first("format") == Some("json") {
        return Some(json(Ok(report)));
    }
    Some(text(StatusCode::OK, crate::diagnose::text(&report)))
}

/// POST `/logging`: `?level=` sets every logger (Envoy's names); without it, the filter in
/// force is printed. Envoy's per-logger parameters (`?upstream=debug`) are refused: tracing's
/// targets are not Envoy's logger names.
fn logging_page(state: &AdminState, params: &QueryParams) -> AdminResponse {
    let Some(logging) = &state.logging else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "no logger to configure\n".to_string(),
        );
    };
    if let Some(unknown) = params.names().find(|name| *name != "level") {
        return text(
            StatusCode::BAD_REQUEST,
            format!("unknown logger {unknown:?}: use ?level=<level> to set every logger\n"),
        );
    }
    match logging(params.first("level")) {
        Ok(filter) => text(
            StatusCode::OK,
            format!("active loggers:\n  all: {filter}\n"),
        ),
        Err(reason) => text(StatusCode::BAD_REQUEST, format!("{reason}\n")),
    }
}

/// `/clusters`, text or `?format=json`.
fn clusters_page(state: &AdminState, params: &QueryParams) -> AdminResponse {
    let Some(tables) = &state.tables else {
        return text(StatusCode::OK, String::new());
    };
    let snapshot = tables.load_full();
    let statics: std::collections::HashSet<&str> = state
        .bootstrap
        .static_resources
        .as_ref()
        .map(|r| r.clusters.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let is_static = |name: &str| statics.contains(name);
    if params.first("format") == Some("json") {
        return json(Ok(crate::clusters::json(&snapshot, is_static)));
    }
    text(StatusCode::OK, crate::clusters::text(&snapshot, is_static))
}

/// `/stats` (text or JSON) and `/stats/prometheus`.
fn stats_page(state: &AdminState, path: &str, params: &QueryParams) -> AdminResponse {
    let filter = match params.first("filter").map(regex::Regex::new).transpose() {
        Ok(filter) => filter,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("Invalid regex: {e}\n")),
    };
    let stats = crate::stats::collect(state);
    if path == "/stats/prometheus" {
        return text(
            StatusCode::OK,
            crate::stats::prometheus(stats, filter.as_ref()),
        );
    }
    let as_json = params.first("format") == Some("json");
    let body = crate::stats::text_or_json(stats, filter.as_ref(), as_json);
    if as_json {
        let mut response = text(StatusCode::OK, body);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return response;
    }
    text(StatusCode::OK, body)
}

/// Envoy's `/listeners`: `name::address` lines, or `?format=json` with `listener_statuses`.
fn listeners(state: &AdminState, params: &QueryParams) -> AdminResponse {
    let mut listeners = (state.listeners)();
    listeners.sort();
    if params.first("format") == Some("json") {
        let statuses: Vec<serde_json::Value> = listeners
            .iter()
            .map(|(name, address)| {
                serde_json::json!({
                    "name": name,
                    "local_address": { "socket_address": {
                        "address": address.ip().to_string(),
                        "port_value": address.port(),
                    } },
                })
            })
            .collect();
        return json(Ok(serde_json::json!({ "listener_statuses": statuses })));
    }
    let text_body: String = listeners
        .iter()
        .map(|(name, address)| format!("{name}::{address}\n"))
        .collect();
    text(StatusCode::OK, text_body)
}

fn config_dump(state: &AdminState, params: &QueryParams) -> AdminResponse {
    let query = match ConfigDumpQuery::parse(params) {
        Ok(query) => query,
        Err(e) => return text(e.status, e.message),
    };
    let status = state.xds.load();
    let inputs = DumpInputs {
        bootstrap: &state.bootstrap,
        status: &status,
        started: state.server_info.started,
    };
    let dumped = query.run(&inputs);
    // The Envoy descriptor pool printed the dump; an idle proxy need not keep it.
    outrider_envoy_json::release_pool();
    match dumped {
        Ok(value) => json(Ok(value)),
        Err(e) => text(e.status, e.message),
    }
}

/// Envoy's `/help`: `admin commands are:` then one line per path, parameters indented below.
fn help() -> String {
    let mut out = String::from("admin commands are:\n");
    for endpoint in ENDPOINTS {
        let post = if endpoint.mutates { " (POST)" } else { "" };
        out.push_str(&format!("  {}{}: {}\n", endpoint.path, post, endpoint.help));
        for (name, help) in endpoint.params {
            out.push_str(&format!("      {name}: {help}\n"));
        }
    }
    out
}

fn text(status: StatusCode, body: String) -> AdminResponse {
    respond(status, "text/plain; charset=UTF-8", Bytes::from(body))
}

fn json(value: Result<serde_json::Value, JsonError>) -> AdminResponse {
    let printed = value.and_then(|v| {
        let mut bytes =
            serde_json::to_vec_pretty(&v).map_err(|e| JsonError::Decode(e.to_string()))?;
        bytes.push(b'\n');
        Ok(bytes)
    });
    match printed {
        Ok(bytes) => respond(StatusCode::OK, "application/json", Bytes::from(bytes)),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not print the response: {e}\n"),
        ),
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> AdminResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Envoy sends both on every admin response: admin output must never be cached or sniffed.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, max-age=0"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A decoded query string, parameters in order. `+` stays a plus (regexes need it); `%XX` is
/// decoded; a parameter without `=` has an empty value (`?include_eds`).
#[derive(Debug, Clone, Default)]
pub(crate) struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub(crate) fn parse(query: &str) -> Self {
        QueryParams(
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key), percent_decode(value))
                })
                .collect(),
        )
    }

    /// Whether the query names `name` (with or without a value: `?inboundonly`).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(key, _)| key == name)
    }

    /// Every parameter name, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(key, _)| key.as_str())
    }

    /// The first value of `name`, as Envoy's `getFirstValue`.
    pub(crate) fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode_percent_but_keep_plus() {
        let params = QueryParams::parse("name_regex=%5Ea.%2B&include_eds&mask=x,y&mask=z&bad=%zz");
        assert_eq!(params.first("name_regex"), Some("^a.+"));
        assert_eq!(params.first("include_eds"), Some(""));
        assert_eq!(params.first("mask"), Some("x,y"));
        assert_eq!(params.first("bad"), Some("%zz"));
        assert_eq!(params.first("resource"), None);
        assert_eq!(
            QueryParams::parse("a=b+c").first("a"),
            Some("b+c"),
            "a plus is a regex quantifier here, not a space"
        );
    }

    #[test]
    fn help_lists_paths_in_order_with_post_marks() {
        let help = help();
        assert!(help.starts_with("admin commands are:\n  /: "));
        assert!(help.contains("  /quitquitquit (POST): "));
        assert!(help.contains("      include_eds: "));
        let paths: Vec<_> = ENDPOINTS.iter().map(|e| e.path).collect();
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        assert_eq!(paths, sorted);
    }
}
