//! The delta ADS server driven by a real tonic client over 127.0.0.1.

mod common;

use std::collections::HashMap;

use common::{DeltaClient, WAIT, delta, delta_names, error, node};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse;
use xds_conformance::type_url::{CLUSTER, ENDPOINT};
use xds_conformance::{
    Behavior, ManagementServer, Protocol, ResponseOrigin, ServerOptions, Snapshot,
};

fn cla(name: &str, endpoints: usize) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![Default::default(); endpoints],
        ..Default::default()
    }
}

fn snapshot(version: &str) -> Snapshot {
    Snapshot::new(version)
        .with(Cluster {
            name: "a".into(),
            ..Default::default()
        })
        .with(cla("a", 1))
        .with(cla("b", 1))
}

async fn server() -> ManagementServer {
    let server = ManagementServer::start(ServerOptions::default())
        .await
        .expect("server starts");
    server.set_snapshot(snapshot("v1"));
    server
}

#[tokio::test]
async fn subscribe_unsubscribe_and_removed_resources() {
    let server = server().await;
    let mut client = DeltaClient::connect(&server).await;
    let mut first = delta(ENDPOINT, &["a", "b"], &[], "");
    first.node = Some(node());
    client.send(first).await;
    let resp = client.recv().await;
    assert_eq!(delta_names(&resp), ["a", "b"]);
    assert_eq!(resp.system_version_info, "v1");
    assert_eq!(
        resp.resources[0].version,
        server
            .snapshot()
            .resource_version(ENDPOINT, "a")
            .expect("a")
    );
    client.send(delta(ENDPOINT, &[], &[], &resp.nonce)).await;

    // Only the changed resource is sent.
    server.update_snapshot(|s| {
        s.set_version("v2");
        s.insert(&cla("b", 2));
    });
    let resp = client.recv().await;
    assert_eq!(delta_names(&resp), ["b"]);
    assert_eq!(resp.system_version_info, "v2");
    client.send(delta(ENDPOINT, &[], &[], &resp.nonce)).await;

    // Deleting b: removed_resources.
    server.update_snapshot(|s| {
        s.set_version("v3");
        s.remove(ENDPOINT, "b");
    });
    let resp = client.recv().await;
    assert!(resp.resources.is_empty());
    assert_eq!(resp.removed_resources, ["b"]);
    client.send(delta(ENDPOINT, &[], &[], &resp.nonce)).await;

    // Unsubscribing a: later changes to it are not sent.
    client.send(delta(ENDPOINT, &[], &["a"], "")).await;
    client.sync(&server).await;
    server.update_snapshot(|s| {
        s.set_version("v4");
        s.insert(&cla("a", 3));
    });
    client.sync(&server).await;
    assert_eq!(server.responses().len(), 3, "{:#?}", server.responses());

    let streams = server.streams();
    assert_eq!(streams[0].protocol, Protocol::Delta);
    assert_eq!(
        streams[0].node.as_ref().map(|n| n.user_agent_name.as_str()),
        Some("outrider-test")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn initial_resource_versions_after_reconnect() {
    let server = server().await;
    let have_a = server
        .snapshot()
        .resource_version(ENDPOINT, "a")
        .expect("a")
        .to_string();
    let mut client = DeltaClient::connect(&server).await;
    let mut req = delta(ENDPOINT, &["a", "b", "c"], &[], "");
    req.initial_resource_versions = HashMap::from([
        ("a".to_string(), have_a),
        ("b".to_string(), "stale".to_string()),
        ("c".to_string(), "stale".to_string()),
    ]);
    client.send(req).await;
    let resp = client.recv().await;
    assert_eq!(delta_names(&resp), ["b"], "a is current, b is stale");
    assert_eq!(resp.removed_resources, ["c"], "c no longer exists");
    server.shutdown().await;
}

#[tokio::test]
async fn wildcard_cds_and_nack() {
    let server = server().await;
    let mut client = DeltaClient::connect(&server).await;
    client.send(delta(CLUSTER, &[], &[], "")).await;
    let resp = client.recv().await;
    assert_eq!(delta_names(&resp), ["a"]);
    let mut nack = delta(CLUSTER, &[], &[], &resp.nonce);
    nack.error_detail = error("a: bad");
    client.send(nack.clone()).await;
    client.sync(&server).await;
    let recorded = server
        .wait_for_request(|r| r.is_nack(), WAIT)
        .await
        .expect("NACK recorded");
    assert_eq!(recorded.error_message(), Some("a: bad"));
    assert_eq!(server.responses().len(), 1, "a NACK is not answered");

    // Turning the resend misbehaviour on answers the held NACK at once, and every later one.
    server.set_behavior(Behavior {
        resend_nacked_delta: true,
        ..Default::default()
    });
    let again = client.recv().await;
    assert_eq!(delta_names(&again), ["a"]);
    assert_ne!(again.nonce, resp.nonce);
    nack.response_nonce = again.nonce.clone();
    client.send(nack).await;
    let third = client.recv().await;
    assert_eq!(delta_names(&third), ["a"]);
    let resends = server
        .responses()
        .iter()
        .filter(|r| r.origin == ResponseOrigin::Resend)
        .count();
    assert_eq!(resends, 2);
    server.shutdown().await;
}

#[tokio::test]
async fn push_raw_delta_and_drop() {
    let server = server().await;
    let mut client = DeltaClient::connect(&server).await;
    client.send(delta(ENDPOINT, &["a"], &[], "")).await;
    client.recv().await;
    let raw = DeltaDiscoveryResponse {
        type_url: ENDPOINT.into(),
        nonce: server.next_nonce(),
        removed_resources: vec!["a".into()],
        ..Default::default()
    };
    assert_eq!(server.push_raw_delta(raw.clone()), 1);
    assert_eq!(server.push_raw(Default::default()), 0, "no SotW stream");
    assert_eq!(client.recv().await, raw);
    assert_eq!(server.drop_streams(), 1);
    let end = tokio::time::timeout(WAIT, client.rx.message())
        .await
        .expect("ends in time");
    assert_eq!(end.expect_err("status").code(), tonic::Code::Unavailable);
    server.shutdown().await;
}
