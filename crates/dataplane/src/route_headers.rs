//! The header mutations of the chosen route, its virtual host and its route table, applied
//! in Envoy's order.

use http::HeaderMap;
use outrider_model::{MessageHeaderMutations, Route, RouteConfiguration, VirtualHost};

/// The three levels in the order they are applied: by default the route's first and the
/// table's last (so the most general level wins a conflict); reversed with
/// `most_specific_header_mutations_wins`.
pub(crate) struct RouteHeaders<'a>([&'a MessageHeaderMutations; 3]);

impl<'a> RouteHeaders<'a> {
    pub(crate) fn new(
        config: &'a RouteConfiguration,
        vhost: &'a VirtualHost,
        route: &'a Route,
    ) -> Self {
        let (table, vhost, route) = (
            &config.header_mutations,
            &vhost.header_mutations,
            &route.header_mutations,
        );
        Self(if config.most_specific_header_mutations_wins {
            [table, vhost, route]
        } else {
            [route, vhost, table]
        })
    }

    /// No level has any mutation (the common case): callers skip both passes.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(|level| level.is_empty())
    }

    /// On the request sent upstream, after the proxy's own headers (so a mutation can replace
    /// them, as in Envoy where the router runs after the connection manager adds them).
    pub(crate) fn apply_to_request(&self, headers: &mut HeaderMap) {
        for level in self.0 {
            level.request.apply(headers);
        }
    }

    /// On whatever answers the request once it was routed.
    pub(crate) fn apply_to_response(&self, headers: &mut HeaderMap) {
        for level in self.0 {
            level.response.apply(headers);
        }
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::route::v3 as pb;

    use super::*;

    /// `x-level` set by all three levels, `x-list` appended by all three.
    fn config(most_specific_wins: bool) -> RouteConfiguration {
        let set = |value: &str| {
            format!(
                "request_headers_to_add: [ {{ header: {{ key: x-level, value: {value} }}, append_action: OVERWRITE_IF_EXISTS_OR_ADD }}, {{ header: {{ key: x-list, value: {value} }} }} ]\n  response_headers_to_add: [ {{ header: {{ key: x-level, value: {value} }}, append_action: OVERWRITE_IF_EXISTS_OR_ADD }} ]"
            )
        };
        let yaml = format!(
            "name: r\nmost_specific_header_mutations_wins: {most_specific_wins}\n{}\nvirtual_hosts:\n- name: v\n  domains: ['*']\n  {}\n  routes:\n  - match: {{ prefix: / }}\n    route: {{ cluster: c }}\n    {}\n",
            set("table").replace("\n  ", "\n"),
            set("vhost"),
            set("route").replace("\n  ", "\n    "),
        );
        let proto: pb::RouteConfiguration =
            outrider_envoy_json::from_yaml_str(&yaml).expect("valid route configuration YAML");
        RouteConfiguration::from_proto(&proto).expect("valid route configuration")
    }

    fn applied(most_specific_wins: bool) -> (HeaderMap, HeaderMap) {
        let config = config(most_specific_wins);
        let vhost = &config.virtual_hosts[0];
        let levels = RouteHeaders::new(&config, vhost, &vhost.routes[0]);
        let (mut request, mut response) = (HeaderMap::new(), HeaderMap::new());
        levels.apply_to_request(&mut request);
        levels.apply_to_response(&mut response);
        (request, response)
    }

    fn values<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ASCII"))
            .collect()
    }

    #[test]
    fn the_table_wins_by_default() {
        let (request, response) = applied(false);
        assert_eq!(values(&request, "x-level"), ["table"]);
        assert_eq!(values(&request, "x-list"), ["route", "vhost", "table"]);
        assert_eq!(values(&response, "x-level"), ["table"]);
    }

    #[test]
    fn the_route_wins_when_the_most_specific_should() {
        let (request, response) = applied(true);
        assert_eq!(values(&request, "x-level"), ["route"]);
        assert_eq!(values(&request, "x-list"), ["table", "vhost", "route"]);
        assert_eq!(values(&response, "x-level"), ["route"]);
    }
}
