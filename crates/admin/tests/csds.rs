//! CSDS over gRPC with a tonic client, on the admin port that also serves HTTP pages.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{client_status, get, start};
use envoy_types::pb::envoy::admin::v3::ClientResourceStatus;
use envoy_types::pb::envoy::service::status::v3::client_config::GenericXdsConfig;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use envoy_types::pb::envoy::service::status::v3::{ClientStatusRequest, ConfigStatus};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{NodeMatcher, StringMatcher};
use outrider_xds::{ClientStatus, ResourceType};
use tonic::transport::Channel;

async fn client(addr: std::net::SocketAddr) -> ClientStatusDiscoveryServiceClient<Channel> {
    ClientStatusDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn find<'a>(
    configs: &'a [GenericXdsConfig],
    kind: ResourceType,
    name: &str,
) -> &'a GenericXdsConfig {
    configs
        .iter()
        .find(|c| c.type_url == kind.type_url() && c.name == name)
        .unwrap_or_else(|| panic!("{kind} {name} in {configs:#?}"))
}

#[tokio::test]
async fn fetch_lists_every_resource_with_its_client_status() {
    let server = start(client_status(true)).await;
    let response = client(server.addr)
        .await
        .fetch_client_status(ClientStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.config.len(), 1);
    let config = &response.config[0];
    assert_eq!(
        config.node.as_ref().unwrap().id,
        "sidecar~10.0.0.1~app-1.default~default.svc.cluster.local"
    );
    let configs = &config.generic_xds_configs;
    // 1 static listener + 2 static clusters + 4 CDS + 1 EDS + 3 LDS + 2 RDS.
    assert_eq!(configs.len(), 13);

    let static_cluster = find(configs, ResourceType::Cluster, "static_cluster");
    assert!(static_cluster.is_static_resource);
    assert_eq!(static_cluster.version_info, "");
    assert!(static_cluster.xds_config.is_some());

    let acked = find(configs, ResourceType::Cluster, "cds_acked");
    assert_eq!(acked.client_status, ClientResourceStatus::Acked as i32);
    // The client's view only: the server-side config_status stays unset.
    assert_eq!(acked.config_status, ConfigStatus::Unknown as i32);
    assert_eq!(acked.version_info, "v2");
    assert!(!acked.is_static_resource);
    assert_eq!(
        acked.last_updated.unwrap().seconds,
        i64::try_from(common::T0 + 10).unwrap()
    );

    // NACKED: the accepted v1 is the config; the rejected v2 is in error_state.
    let nacked = find(configs, ResourceType::Cluster, "cds_nacked");
    assert_eq!(nacked.client_status, ClientResourceStatus::Nacked as i32);
    assert_eq!(nacked.version_info, "v1");
    let error = nacked.error_state.as_ref().unwrap();
    assert_eq!(error.version_info, "v2");
    assert_eq!(error.details, "cds_nacked: connect_timeout: must be > 0");
    assert!(error.failed_configuration.is_some());
    assert!(nacked.xds_config.is_some());

    let requested = find(configs, ResourceType::RouteConfiguration, "rds_requested");
    assert_eq!(
        requested.client_status,
        ClientResourceStatus::Requested as i32
    );
    assert!(requested.xds_config.is_none());

    let never = find(configs, ResourceType::Cluster, "cds_never");
    assert!(never.xds_config.is_none());
    assert!(never.error_state.is_some());

    // Static first, then CDS, EDS, LDS, RDS.
    let order: Vec<_> = configs
        .iter()
        .map(|c| {
            (
                c.is_static_resource,
                c.type_url.rsplit('.').next().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(order[0], (true, "Listener".to_string()));
    assert_eq!(order[3], (false, "Cluster".to_string()));
    assert_eq!(order[12], (false, "RouteConfiguration".to_string()));
}

#[tokio::test]
async fn exclude_resource_contents_drops_configs() {
    let server = start(client_status(true)).await;
    let response = client(server.addr)
        .await
        .fetch_client_status(ClientStatusRequest {
            exclude_resource_contents: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let configs = &response.config[0].generic_xds_configs;
    assert!(configs.iter().all(|c| c.xds_config.is_none()));
    let nacked = find(configs, ResourceType::Cluster, "cds_nacked");
    assert!(
        nacked
            .error_state
            .as_ref()
            .unwrap()
            .failed_configuration
            .is_none()
    );
    assert_eq!(nacked.version_info, "v1");
}

#[tokio::test]
async fn node_matchers_match_the_node_id() {
    let server = start(client_status(true)).await;
    let mut client = client(server.addr).await;
    let matcher = |pattern| NodeMatcher {
        node_id: Some(StringMatcher {
            match_pattern: Some(pattern),
            ignore_case: false,
        }),
        node_metadatas: Vec::new(),
    };
    let request = |matchers| ClientStatusRequest {
        node_matchers: matchers,
        ..Default::default()
    };
    let other = matcher(MatchPattern::Exact("someone-else".into()));
    let ours = matcher(MatchPattern::Prefix("sidecar~".into()));
    let none = client
        .fetch_client_status(request(vec![other.clone()]))
        .await
        .unwrap()
        .into_inner();
    assert!(none.config.is_empty());
    // OR semantics.
    let some = client
        .fetch_client_status(request(vec![other, ours]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(some.config.len(), 1);
}

#[tokio::test]
async fn stream_answers_each_request_from_the_current_status() {
    let server = start(ClientStatus::default()).await;
    let mut client = client(server.addr).await;
    let (requests, rx) = tokio::sync::mpsc::channel(4);
    let mut responses = client
        .stream_client_status(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    requests.send(ClientStatusRequest::default()).await.unwrap();
    let first = responses.message().await.unwrap().unwrap();
    let dynamic = |r: &envoy_types::pb::envoy::service::status::v3::ClientStatusResponse| {
        r.config[0]
            .generic_xds_configs
            .iter()
            .filter(|c| !c.is_static_resource)
            .count()
    };
    assert_eq!(dynamic(&first), 0);

    server.state.xds.store(Arc::new(client_status(true)));
    requests.send(ClientStatusRequest::default()).await.unwrap();
    let second = responses.message().await.unwrap().unwrap();
    assert_eq!(dynamic(&second), 10);

    // The same port still serves the admin pages while the stream is open.
    assert_eq!(
        get(server.addr, "/ready").await,
        (200, "LIVE\n".to_string())
    );
    drop(requests);
    assert!(responses.message().await.unwrap().is_none());
}
