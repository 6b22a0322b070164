//! CSDS (`envoy.service.status.v3.ClientStatusDiscoveryService`): the xDS client's view of every
//! resource, one `GenericXdsConfig` per resource, for tools such as `istioctl proxy-status` or
//! `grpcdebug`.
//!
//! Outrider is an xDS *client*, so per the proto it fills `client_status` and leaves
//! `config_status` (the management server's view) unset. As the proto asks, `xds_config` is always
//! the most recent *accepted* version; a rejected one is in `error_state.failed_configuration`.

use std::pin::Pin;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::status::v3::client_config::GenericXdsConfig;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_server::{
    ClientStatusDiscoveryService, ClientStatusDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::status::v3::{
    ClientConfig, ClientStatusRequest, ClientStatusResponse,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{NodeMatcher, StringMatcher};
use futures::{Stream, StreamExt};
use outrider_xds::{ClientStatus, ResourceType};
use regex::Regex;
use tonic::{Request, Response, Status, Streaming};

use crate::AdminState;
use crate::xds_record::{client_status, error_state, last_updated, pack, timestamp};

/// The CSDS service over the admin state. Serve it with [`ClientStatusService::into_server`]
/// (the admin server does so on its own port already).
#[derive(Debug, Clone)]
pub struct ClientStatusService {
    state: AdminState,
}

impl ClientStatusService {
    pub fn new(state: AdminState) -> Self {
        ClientStatusService { state }
    }

    pub fn into_server(self) -> ClientStatusDiscoveryServiceServer<Self> {
        ClientStatusDiscoveryServiceServer::new(self)
    }

    /// The answer to one request, from the current snapshot of the client's status.
    fn respond(&self, request: &ClientStatusRequest) -> Result<ClientStatusResponse, Status> {
        let node = &self.state.server_info.node;
        if !node_matches(&request.node_matchers, node)? {
            return Ok(ClientStatusResponse { config: Vec::new() });
        }
        let status = self.state.xds.load();
        let mut configs = static_configs(&self.state);
        configs.extend(dynamic_configs(&status));
        if request.exclude_resource_contents {
            for config in &mut configs {
                config.xds_config = None;
                if let Some(error) = config.error_state.as_mut() {
                    error.failed_configuration = None;
                }
            }
        }
        Ok(ClientStatusResponse {
            config: vec![ClientConfig {
                node: Some(node.clone()),
                generic_xds_configs: configs,
                ..Default::default()
            }],
        })
    }
}

/// Listeners and clusters from the bootstrap: no version, no client status (nothing was
/// requested or acknowledged), `is_static_resource`.
fn static_configs(state: &AdminState) -> Vec<GenericXdsConfig> {
    let Some(resources) = state.bootstrap.static_resources.as_ref() else {
        return Vec::new();
    };
    let started = Some(timestamp(state.server_info.started));
    let listeners = resources.listeners.iter().map(|listener| GenericXdsConfig {
        type_url: ResourceType::Listener.type_url().to_string(),
        name: listener.name.clone(),
        xds_config: Some(pack(listener)),
        last_updated: started,
        is_static_resource: true,
        ..Default::default()
    });
    let clusters = resources.clusters.iter().map(|cluster| GenericXdsConfig {
        type_url: ResourceType::Cluster.type_url().to_string(),
        name: cluster.name.clone(),
        xds_config: Some(pack(cluster)),
        last_updated: started,
        is_static_resource: true,
        ..Default::default()
    });
    listeners.chain(clusters).collect()
}

/// Every record the client holds, requested ones included, in apply order (CDS, EDS, LDS, RDS).
fn dynamic_configs(status: &ClientStatus) -> impl Iterator<Item = GenericXdsConfig> + '_ {
    ResourceType::ALL.into_iter().flat_map(move |kind| {
        status
            .records(kind)
            .map(move |(name, record)| GenericXdsConfig {
                type_url: kind.type_url().to_string(),
                name: name.clone(),
                version_info: record.version.clone(),
                xds_config: record.resource.clone(),
                last_updated: last_updated(record),
                config_status: 0,
                client_status: client_status(record.status) as i32,
                error_state: record.error.as_ref().map(error_state),
                is_static_resource: false,
            })
    })
}

/// `node_matchers` (OR semantics) against our node. Only `node_id` is evaluated; metadata
/// matchers are ignored, so a matcher with only metadata matches. No matcher matches everything.
fn node_matches(matchers: &[NodeMatcher], node: &Node) -> Result<bool, Status> {
    if matchers.is_empty() {
        return Ok(true);
    }
    for matcher in matchers {
        let matched = match &matcher.node_id {
            None => true,
            Some(id) => string_matches(id, &node.id)?,
        };
        if matched {
            return Ok(true);
        }
    }
    Ok(false)
}

fn string_matches(matcher: &StringMatcher, value: &str) -> Result<bool, Status> {
    let fold = |s: &str| {
        if matcher.ignore_case {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let folded = fold(value);
    Ok(match &matcher.match_pattern {
        Some(MatchPattern::Exact(exact)) => folded == fold(exact),
        Some(MatchPattern::Prefix(prefix)) => folded.starts_with(&fold(prefix)),
        Some(MatchPattern::Suffix(suffix)) => folded.ends_with(&fold(suffix)),
        Some(MatchPattern::Contains(part)) => folded.contains(&fold(part)),
        Some(MatchPattern::SafeRegex(regex)) => {
            // Envoy's regex matchers match the whole string; ignore_case does not apply.
            let re = Regex::new(&format!("^(?:{})$", regex.regex)).map_err(|e| {
                Status::invalid_argument(format!("node_matchers: node_id.safe_regex: {e}"))
            })?;
            re.is_match(value)
        }
        Some(MatchPattern::Custom(_)) => {
            return Err(Status::unimplemented(
                "node_matchers: custom string matchers are not supported",
            ));
        }
        None => true,
    })
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ClientStatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ClientStatusDiscoveryService for ClientStatusService {
    type StreamClientStatusStream = ResponseStream;

    /// One response per request on the stream, each from the snapshot current at that time.
    async fn stream_client_status(
        &self,
        request: Request<Streaming<ClientStatusRequest>>,
    ) -> Result<Response<Self::StreamClientStatusStream>, Status> {
        let service = self.clone();
        let responses = request
            .into_inner()
            .map(move |request| request.and_then(|request| service.respond(&request)));
        Ok(Response::new(Box::pin(responses)))
    }

    async fn fetch_client_status(
        &self,
        request: Request<ClientStatusRequest>,
    ) -> Result<Response<ClientStatusResponse>, Status> {
        self.respond(request.get_ref()).map(Response::new)
    }
}
