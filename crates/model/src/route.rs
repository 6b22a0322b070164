//! `RouteConfiguration`: virtual hosts, their domains (Envoy's rules) and their routes.

use std::collections::HashSet;

use envoy_types::pb::envoy::config::route::v3::{
    self as pb, route::Action, route_match::PathSpecifier, virtual_host,
};

use crate::error::{
    Result, ValidationError, Within, convert_each, non_empty, reject_if_set, required,
};
use crate::header_mutation::{MessageHeaderMutations, message_header_mutations};
use crate::matcher::{FullRegex, HeaderMatcher, QueryParameterMatcher, regex_matcher};
use crate::proto_value::{
    bool_or, enum_value, header_name, header_value, parsed_header_name, u32_or,
};
use crate::retry::RetryPolicy;
use crate::route_action::{
    DirectResponse, ForwardAction, RedirectAction, direct_response, forward_action, redirect_action,
};

/// Envoy's default limit on an inline direct-response body.
const DEFAULT_MAX_DIRECT_RESPONSE_BODY_SIZE_BYTES: u32 = 4096;

/// A validated `RouteConfiguration` (from RDS or inline in an HTTP connection manager).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfiguration {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    pub ignore_port_in_host_matching: bool,
    /// Match virtual hosts on this header instead of `:authority` (lower case).
    pub vhost_header: Option<String>,
    pub header_mutations: MessageHeaderMutations,
    /// Apply the table's, then the virtual host's, then the route's mutations (the route's
    /// win); by default the order is reversed and the table's win.
    pub most_specific_header_mutations_wins: bool,
    /// Removed from requests that are not internal (see `InternalAddresses`).
    pub internal_only_headers: Vec<http::HeaderName>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub name: String,
    /// In configuration order; lower case.
    pub domains: Vec<DomainMatcher>,
    pub routes: Vec<Route>,
    /// Virtual-host retry policy; already applied to routes without their own.
    pub retry_policy: Option<RetryPolicy>,
    /// `x-envoy-attempt-count` on each upstream request.
    pub include_request_attempt_count: bool,
    /// `x-envoy-attempt-count` on the response (upstream answers).
    pub include_attempt_count_in_response: bool,
    pub header_mutations: MessageHeaderMutations,
    pub require_tls: TlsRequirement,
}

/// A virtual host's `require_tls`: which requests that did not arrive over https (by
/// `x-forwarded-proto`, as Envoy reads it) are redirected to https with a 301.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRequirement {
    #[default]
    None,
    /// Requests that are not internal (`x-envoy-internal: true`).
    ExternalOnly,
    All,
}

/// A virtual-host domain, as Envoy classifies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainMatcher {
    /// `*`: the default virtual host.
    Any,
    /// `*.example.com` or `*-bar.com`: the host ends with the stored suffix (the part after `*`).
    Suffix(String),
    /// `example.*`: the host starts with the stored prefix (the part before `*`).
    Prefix(String),
    Exact(String),
}

impl DomainMatcher {
    /// Envoy's classification of a domain (already lower-cased).
    fn parse(domain: &str) -> Self {
        if domain == "*" {
            Self::Any
        } else if let Some(suffix) = domain.strip_prefix('*') {
            Self::Suffix(suffix.to_string())
        } else if let Some(prefix) = domain.strip_suffix('*') {
            Self::Prefix(prefix.to_string())
        } else {
            Self::Exact(domain.to_string())
        }
    }

    /// Whether `host` (lower case) matches. Envoy prefers exact, then the longest suffix, then
    /// the longest prefix, then `*`; that ordering is the caller's business.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            // Envoy requires at least one character before the suffix.
            Self::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
            Self::Prefix(p) => host.len() > p.len() && host.starts_with(p.as_str()),
            Self::Exact(e) => host == e,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub route_match: RouteMatch,
    pub action: RouteAction,
    pub header_mutations: MessageHeaderMutations,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    Forward(Box<ForwardAction>),
    Redirect(RedirectAction),
    DirectResponse(DirectResponse),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// Applies to prefix, exact path and path-separated prefix (not to regex), default true.
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatcher>,
    pub query_parameters: Vec<QueryParameterMatcher>,
    /// Only gRPC requests (`content-type: application/grpc*`).
    pub grpc: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathMatch {
    /// The path (without query) starts with this.
    Prefix(String),
    /// The path (without query) equals this.
    Exact(String),
    /// The whole path (without query) matches.
    Regex(FullRegex),
    /// The path equals this or continues with `/` after it.
    SeparatedPrefix(String),
}

impl RouteConfiguration {
    pub fn from_proto(proto: &pb::RouteConfiguration) -> Result<Self> {
        let pb::RouteConfiguration {
            name,
            virtual_hosts,
            vhds,
            internal_only_headers,
            response_headers_to_add,
            response_headers_to_remove,
            request_headers_to_add,
            request_headers_to_remove,
            most_specific_header_mutations_wins,
            validate_clusters,
            max_direct_response_body_size_bytes,
            cluster_specifier_plugins,
            request_mirror_policies,
            ignore_port_in_host_matching,
            vhost_header,
            ignore_path_parameters_in_path_matching,
            typed_per_filter_config,
            // Metadata is read by filters and access logs only.
            metadata: _,
            route_specifiers,
        } = proto;
        reject_if_set!(
            vhds,
            cluster_specifier_plugins,
            request_mirror_policies,
            ignore_path_parameters_in_path_matching,
            typed_per_filter_config,
            route_specifiers,
        );
        let max_body = u32_or(
            max_direct_response_body_size_bytes,
            DEFAULT_MAX_DIRECT_RESPONSE_BODY_SIZE_BYTES,
        );
        let virtual_hosts = convert_each(virtual_hosts, "virtual_hosts", |v| {
            virtual_host(v, max_body)
        })?;
        check_domains(name, &virtual_hosts)?;
        let header_mutations = message_header_mutations(
            request_headers_to_add,
            request_headers_to_remove,
            response_headers_to_add,
            response_headers_to_remove,
        )?;
        let internal_only_headers = internal_only_headers
            .iter()
            .enumerate()
            .map(|(i, name)| parsed_header_name(name, &format!("internal_only_headers[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        // Envoy then refuses a table that routes to a cluster it does not know; we cannot
        // tell here (the unset default, true for an inline table, is the same gap).
        if bool_or(validate_clusters, false) {
            return Err(ValidationError::not_enforced(
                "validate_clusters",
                "routed clusters are not checked when the table is loaded",
            ));
        }
        let vhost_header = if vhost_header.is_empty() {
            None
        } else {
            Some(header_name(vhost_header, "vhost_header")?)
        };
        Ok(Self {
            name: name.clone(),
            virtual_hosts,
            ignore_port_in_host_matching: *ignore_port_in_host_matching,
            vhost_header,
            header_mutations,
            most_specific_header_mutations_wins: *most_specific_header_mutations_wins,
            internal_only_headers,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every cluster a route may forward to by name (weighted clusters included; clusters
    /// chosen from a request header cannot be known in advance).
    pub fn cluster_names(&self) -> impl Iterator<Item = &str> {
        self.virtual_hosts
            .iter()
            .flat_map(|v| v.routes.iter())
            .filter_map(|r| match &r.action {
                RouteAction::Forward(f) => Some(f.cluster.names()),
                _ => None,
            })
            .flatten()
    }
}

/// Envoy's `RouteMatcher` rules: one `*` per route configuration, no duplicate domain of the
/// same kind anywhere in it.
fn check_domains(route_name: &str, virtual_hosts: &[VirtualHost]) -> Result<()> {
    let mut seen = HashSet::new();
    let mut any_seen = false;
    for (v, vhost) in virtual_hosts.iter().enumerate() {
        for (d, domain) in vhost.domains.iter().enumerate() {
            let path = || format!("virtual_hosts[{v}].domains[{d}]");
            if *domain == DomainMatcher::Any {
                if any_seen {
                    return Err(ValidationError::new(
                        path(),
                        format!("Only a single wildcard domain is permitted in route {route_name}"),
                    ));
                }
                any_seen = true;
            } else if !seen.insert(domain) {
                let text = match domain {
                    DomainMatcher::Suffix(s) => format!("*{s}"),
                    DomainMatcher::Prefix(p) => format!("{p}*"),
                    DomainMatcher::Exact(e) => e.clone(),
                    DomainMatcher::Any => "*".to_string(),
                };
                return Err(ValidationError::new(
                    path(),
                    format!(
                        "Only unique values for domains are permitted. Duplicate entry of domain {text} in route {route_name}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn virtual_host(proto: &pb::VirtualHost, max_body: u32) -> Result<VirtualHost> {
    let pb::VirtualHost {
        name,
        domains,
        routes,
        matcher,
        require_tls,
        // Virtual clusters only name request classes in stats.
        virtual_clusters: _,
        rate_limits,
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
        // A CORS policy only acts through the CORS HTTP filter, which a listener cannot have here
        // (unknown HTTP filters are rejected), so it is inert, as in Envoy without that filter.
        cors: _,
        typed_per_filter_config,
        include_request_attempt_count,
        include_attempt_count_in_response,
        retry_policy,
        retry_policy_typed_config,
        hedge_policy,
        include_is_timeout_retry_header,
        per_request_buffer_limit_bytes,
        request_body_buffer_limit,
        request_mirror_policies,
        // Read by filters and access logs only.
        metadata: _,
        route_specifiers,
    } = proto;
    reject_if_set!(
        matcher,
        rate_limits,
        typed_per_filter_config,
        retry_policy_typed_config,
        hedge_policy,
        include_is_timeout_retry_header,
        request_body_buffer_limit,
        request_mirror_policies,
        route_specifiers,
    );
    non_empty(name, "name")?;
    if domains.is_empty() {
        return Err(ValidationError::new(
            "domains",
            "at least one domain is required",
        ));
    }
    let domains = domains
        .iter()
        .enumerate()
        .map(|(i, d)| {
            header_value(d, &format!("domains[{i}]"))?;
            Ok(DomainMatcher::parse(&d.to_ascii_lowercase()))
        })
        .collect::<Result<Vec<_>>>()?;
    let require_tls =
        match enum_value::<virtual_host::TlsRequirementType>(*require_tls, "require_tls")? {
            virtual_host::TlsRequirementType::None => TlsRequirement::None,
            virtual_host::TlsRequirementType::ExternalOnly => TlsRequirement::ExternalOnly,
            virtual_host::TlsRequirementType::All => TlsRequirement::All,
        };
    let header_mutations = message_header_mutations(
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
    )?;
    let retry_policy = retry_policy
        .as_ref()
        .map(|r| RetryPolicy::from_proto(r).within("retry_policy"))
        .transpose()?;
    let vhost_buffer_limit = per_request_buffer_limit_bytes.as_ref().map(|v| v.value);
    let routes = convert_each(routes, "routes", |r| {
        route(r, retry_policy.as_ref(), vhost_buffer_limit, max_body)
    })?;
    Ok(VirtualHost {
        name: name.clone(),
        domains,
        routes,
        retry_policy,
        include_request_attempt_count: *include_request_attempt_count,
        include_attempt_count_in_response: *include_attempt_count_in_response,
        header_mutations,
        require_tls,
    })
}

fn route(
    proto: &pb::Route,
    vhost_retry: Option<&RetryPolicy>,
    vhost_buffer_limit: Option<u32>,
    max_body: u32,
) -> Result<Route> {
    let pb::Route {
        name,
        r#match,
        // Read by filters and access logs only.
        metadata: _,
        // Tracing decoration only.
        decorator: _,
        typed_per_filter_config,
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
        // Tracing sampling only.
        tracing: _,
        per_request_buffer_limit_bytes,
        // Names the route's stats only.
        stat_prefix: _,
        request_body_buffer_limit,
        route_specifiers,
        action,
    } = proto;
    reject_if_set!(
        typed_per_filter_config,
        request_body_buffer_limit,
        route_specifiers
    );
    let header_mutations = message_header_mutations(
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
    )?;
    // Envoy: the route's, else the virtual host's, else (`None`) the connection's buffer
    // limit, which the listener decides.
    let buffer_limit = per_request_buffer_limit_bytes
        .as_ref()
        .map(|v| v.value)
        .or(vhost_buffer_limit);
    let route_match = route_match(required(r#match, "match")?).within("match")?;
    let action = match action {
        Some(Action::Route(a)) => RouteAction::Forward(Box::new(
            forward_action(a, vhost_retry, buffer_limit).within("route")?,
        )),
        Some(Action::Redirect(a)) => RouteAction::Redirect(redirect_action(a).within("redirect")?),
        Some(Action::DirectResponse(a)) => {
            RouteAction::DirectResponse(direct_response(a, max_body).within("direct_response")?)
        }
        Some(Action::FilterAction(_)) => return Err(ValidationError::unsupported("filter_action")),
        Some(Action::NonForwardingAction(_)) => {
            return Err(ValidationError::unsupported("non_forwarding_action"));
        }
        None => {
            return Err(ValidationError::new(
                "action",
                "one of route, redirect or direct_response is required",
            ));
        }
    };
    Ok(Route {
        name: name.clone(),
        route_match,
        action,
        header_mutations,
    })
}

fn route_match(proto: &pb::RouteMatch) -> Result<RouteMatch> {
    let pb::RouteMatch {
        case_sensitive,
        runtime_fraction,
        headers,
        query_parameters,
        cookies,
        grpc,
        tls_context,
        dynamic_metadata,
        filter_state,
        path_specifier,
    } = proto;
    reject_if_set!(
        runtime_fraction,
        cookies,
        tls_context,
        dynamic_metadata,
        filter_state
    );
    let path = match path_specifier {
        Some(PathSpecifier::Prefix(p)) => PathMatch::Prefix(p.clone()),
        Some(PathSpecifier::Path(p)) => PathMatch::Exact(p.clone()),
        Some(PathSpecifier::SafeRegex(r)) => {
            PathMatch::Regex(regex_matcher(r).within("safe_regex")?)
        }
        Some(PathSpecifier::PathSeparatedPrefix(p)) => {
            // PGV: `^[^?#]+[^?#/]$`.
            if p.len() < 2 || p.contains(['?', '#']) || p.ends_with('/') {
                return Err(ValidationError::new(
                    "path_separated_prefix",
                    "must be at least 2 characters, contain no '?' or '#' and not end with '/'",
                ));
            }
            PathMatch::SeparatedPrefix(p.clone())
        }
        Some(PathSpecifier::ConnectMatcher(_)) => {
            return Err(ValidationError::unsupported("connect_matcher"));
        }
        Some(PathSpecifier::PathMatchPolicy(_)) => {
            return Err(ValidationError::unsupported("path_match_policy"));
        }
        None => {
            return Err(ValidationError::new(
                "path_specifier",
                "one of prefix, path, safe_regex or path_separated_prefix is required",
            ));
        }
    };
    Ok(RouteMatch {
        path,
        case_sensitive: bool_or(case_sensitive, true),
        headers: convert_each(headers, "headers", HeaderMatcher::from_proto)?,
        query_parameters: convert_each(
            query_parameters,
            "query_parameters",
            QueryParameterMatcher::from_proto,
        )?,
        grpc: grpc.is_some(),
    })
}
