//! A bare tonic ADS client for driving the server in tests, with no protocol logic of its own.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use xds_conformance::ManagementServer;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);

pub fn node() -> Node {
    Node {
        id: "sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local".into(),
        cluster: "pod".into(),
        user_agent_name: "outrider-test".into(),
        ..Default::default()
    }
}

pub fn sotw(type_url: &str, version: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        version_info: version.into(),
        resource_names: names.iter().map(|n| (*n).to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

pub fn error(message: &str) -> Option<Status> {
    Some(Status {
        code: 3,
        message: message.into(),
        details: vec![],
    })
}

/// A type URL no snapshot holds: a request for it is recorded and never answered, so once it is
/// recorded every earlier message of the stream has been fully handled (one task per stream).
fn probe_type() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "type.googleapis.com/test.Probe{}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct SotwClient {
    tx: mpsc::Sender<DiscoveryRequest>,
    pub rx: tonic::Streaming<DiscoveryResponse>,
}

impl SotwClient {
    pub async fn connect(server: &ManagementServer) -> SotwClient {
        let mut client = AggregatedDiscoveryServiceClient::connect(server.uri())
            .await
            .expect("connect");
        let (tx, rx) = mpsc::channel(16);
        let rx = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner();
        SotwClient { tx, rx }
    }

    pub async fn send(&self, req: DiscoveryRequest) {
        self.tx.send(req).await.expect("stream open");
    }

    pub async fn recv(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("a response in time")
            .expect("no stream error")
            .expect("stream not ended")
    }

    /// The stream's end: `Err(status)` or `Ok(None)`.
    pub async fn end(&mut self) -> Result<Option<DiscoveryResponse>, tonic::Status> {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("stream ends in time")
    }

    /// Returns once the server has handled every request sent so far.
    pub async fn sync(&self, server: &ManagementServer) {
        let probe = probe_type();
        self.send(sotw(&probe, "", &[], "")).await;
        server
            .wait_for_request(|r| r.type_url() == probe, WAIT)
            .await
            .expect("probe recorded");
    }
}

pub struct DeltaClient {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    pub rx: tonic::Streaming<DeltaDiscoveryResponse>,
}

pub fn delta(
    type_url: &str,
    subscribe: &[&str],
    unsubscribe: &[&str],
    nonce: &str,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.into(),
        resource_names_subscribe: subscribe.iter().map(|n| (*n).to_string()).collect(),
        resource_names_unsubscribe: unsubscribe.iter().map(|n| (*n).to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

impl DeltaClient {
    pub async fn connect(server: &ManagementServer) -> DeltaClient {
        let mut client = AggregatedDiscoveryServiceClient::connect(server.uri())
            .await
            .expect("connect");
        let (tx, rx) = mpsc::channel(16);
        let rx = client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner();
        DeltaClient { tx, rx }
    }

    pub async fn send(&self, req: DeltaDiscoveryRequest) {
        self.tx.send(req).await.expect("stream open");
    }

    pub async fn recv(&mut self) -> DeltaDiscoveryResponse {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("a response in time")
            .expect("no stream error")
            .expect("stream not ended")
    }

    pub async fn sync(&self, server: &ManagementServer) {
        let probe = probe_type();
        // Subscribing by name to a type the snapshot lacks is never answered.
        self.send(delta(&probe, &["x"], &[], "")).await;
        server
            .wait_for_request(|r| r.type_url() == probe, WAIT)
            .await
            .expect("probe recorded");
    }
}

pub fn names(resp: &DiscoveryResponse) -> Vec<String> {
    resp.resources
        .iter()
        .map(|any| {
            #[derive(Clone, PartialEq, prost::Message)]
            struct NameOnly {
                #[prost(string, tag = "1")]
                name: String,
            }
            <NameOnly as prost::Message>::decode(any.value.as_slice())
                .expect("decodes")
                .name
        })
        .collect()
}

pub fn delta_names(resp: &DeltaDiscoveryResponse) -> Vec<&str> {
    resp.resources.iter().map(|r| r.name.as_str()).collect()
}

/// A fresh path in the temp directory.
pub fn temp_path(name: &str) -> std::path::PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "xds-conformance-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}
