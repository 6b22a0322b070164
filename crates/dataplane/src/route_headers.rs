//! The header mutations of the chosen route, its virtual host and its route table, applied
//! in Envoy's order.

use http::{HeaderMap, HeaderValue};
use outrider_model::{
    HeaderMutations, HeaderText, MessageHeaderMutations, Route, RouteConfiguration, VirtualHost,
};

use crate::formatter::{FormatContext, render};

/// The three levels in the order they are applied: by default the route's first and the
/// table's last (so the most general level wins a conflict); reversed with
/// `most_specific_header_mutations_wins`. Values made with command operators are computed
/// once, when the request is routed ([`RouteHeaders::render`]); both sides read the request.
pub(crate) struct RouteHeaders<'a> {
    levels: [&'a MessageHeaderMutations; 3],
    /// The picked weighted cluster's, applied before the others whatever their order.
    weighted: Option<&'a MessageHeaderMutations>,
    /// Boxed: most requests have none, and carry one pointer instead of two vectors.
    rendered: Option<Box<Rendered>>,
}

/// Computed values of one request's formatted additions, in application order.
struct Rendered {
    request: Vec<HeaderValue>,
    response: Vec<HeaderValue>,
}

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
        Self {
            levels: if config.most_specific_header_mutations_wins {
                [table, vhost, route]
            } else {
                [route, vhost, table]
            },
            weighted: None,
            rendered: None,
        }
    }

    /// Adds the picked weighted cluster's mutations (applied first, as Envoy's
    /// `WeightedClusterEntry` does before the route's own).
    pub(crate) fn with_weighted(&mut self, weighted: &'a MessageHeaderMutations) {
        if !weighted.is_empty() {
            self.weighted = Some(weighted);
        }
    }

    /// Every level in application order.
    fn all(&self) -> impl Iterator<Item = &'a MessageHeaderMutations> + '_ {
        self.weighted.into_iter().chain(self.levels)
    }

    /// No level has any mutation (the common case): callers skip both passes.
    pub(crate) fn is_empty(&self) -> bool {
        self.weighted.is_none() && self.levels.iter().all(|level| level.is_empty())
    }

    /// Whether a value is made with command operators (then [`RouteHeaders::render`]).
    pub(crate) fn has_formats(&self) -> bool {
        self.all()
            .any(|l| l.request.has_formats() || l.response.has_formats())
    }

    /// Computes the values made with command operators for the request in `cx`.
    pub(crate) fn render(&mut self, cx: &FormatContext<'_>) {
        let values = |side: fn(&MessageHeaderMutations) -> &HeaderMutations| -> Vec<HeaderValue> {
            self.all()
                .flat_map(|level| &side(level).add)
                .filter_map(|add| match &add.value {
                    HeaderText::Formatted(format) => Some(render(format, cx)),
                    HeaderText::Literal(_) => None,
                })
                .collect()
        };
        self.rendered = Some(Box::new(Rendered {
            request: values(|l| &l.request),
            response: values(|l| &l.response),
        }));
    }

    /// On the request sent upstream, after the proxy's own headers (so a mutation can replace
    /// them, as in Envoy where the router runs after the connection manager adds them).
    pub(crate) fn apply_to_request(&self, headers: &mut HeaderMap) {
        let rendered = self.rendered.as_deref().map_or(&[][..], |r| &r.request);
        let mut values = rendered.iter().cloned();
        for level in self.all() {
            level.request.apply(headers, &mut values);
        }
    }

    /// On whatever answers the request once it was routed.
    pub(crate) fn apply_to_response(&self, headers: &mut HeaderMap) {
        let rendered = self.rendered.as_deref().map_or(&[][..], |r| &r.response);
        let mut values = rendered.iter().cloned();
        for level in self.all() {
            level.response.apply(headers, &mut values);
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
