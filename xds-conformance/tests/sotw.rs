//! The SotW ADS server driven by a real tonic client over 127.0.0.1.

mod common;

use common::{SotwClient, WAIT, error, names, node, sotw};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use xds_conformance::type_url::{CLUSTER, ENDPOINT, LISTENER};
use xds_conformance::{
    Behavior, ManagementServer, RequestClass, ResponseOrigin, ServerOptions, Snapshot, pack,
};

fn cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        ..Default::default()
    }
}

fn cla(name: &str) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        ..Default::default()
    }
}

fn snapshot(version: &str) -> Snapshot {
    Snapshot::new(version)
        .with(cluster("a"))
        .with(cluster("b"))
        .with(cla("a"))
        .with(cla("b"))
}

async fn server(options: ServerOptions) -> ManagementServer {
    let server = ManagementServer::start(options)
        .await
        .expect("server starts");
    server.set_snapshot(snapshot("v1"));
    server
}

#[tokio::test]
async fn wildcard_cds_gets_everything_and_the_node_is_recorded() {
    let server = server(ServerOptions::default()).await;
    let mut client = SotwClient::connect(&server).await;
    let mut first = sotw(CLUSTER, "", &[], "");
    first.node = Some(node());
    client.send(first).await;
    let resp = client.recv().await;
    assert_eq!(resp.version_info, "v1");
    assert_eq!(resp.type_url, CLUSTER);
    assert_eq!(names(&resp), ["a", "b"]);
    assert!(!resp.nonce.is_empty());

    let streams = server.streams();
    assert_eq!(streams.len(), 1);
    assert_eq!(server.streams_opened(), 1);
    let node = streams[0]
        .node
        .as_ref()
        .expect("node from the first request");
    assert_eq!(node.user_agent_name, "outrider-test");
    let logged = server.responses();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].nonce, resp.nonce);
    assert_eq!(logged[0].resource_names, ["a", "b"]);
    server.shutdown().await;
}

#[tokio::test]
async fn eds_by_name_ack_is_not_answered_and_changes_are_pushed() {
    let server = server(ServerOptions::default()).await;
    let mut client = SotwClient::connect(&server).await;
    client.send(sotw(ENDPOINT, "", &["b", "nope"], "")).await;
    let resp = client.recv().await;
    assert_eq!(names(&resp), ["b"]);

    client
        .send(sotw(ENDPOINT, "v1", &["b", "nope"], &resp.nonce))
        .await;
    client.sync(&server).await;
    let ack = server
        .wait_for_request(|r| r.is_ack(), WAIT)
        .await
        .expect("ACK recorded");
    assert_eq!(ack.version_info(), "v1");
    assert_eq!(server.responses().len(), 1, "an ACK is not answered");

    server.update_snapshot(|s| {
        s.set_version("v2");
        s.insert(&ClusterLoadAssignment {
            cluster_name: "b".into(),
            endpoints: vec![Default::default()],
            ..Default::default()
        });
    });
    let pushed = client.recv().await;
    assert_eq!(pushed.version_info, "v2");
    assert_eq!(names(&pushed), ["b"]);
    assert_ne!(pushed.nonce, resp.nonce);
    server.shutdown().await;
}

#[tokio::test]
async fn nack_is_recorded_and_not_answered_with_the_same_version() {
    let server = server(ServerOptions::default()).await;
    let mut client = SotwClient::connect(&server).await;
    client.send(sotw(CLUSTER, "", &[], "")).await;
    let resp = client.recv().await;
    let mut nack = sotw(CLUSTER, "", &[], &resp.nonce);
    nack.error_detail = error("a: connect_timeout must be > 0");
    client.send(nack).await;
    client.sync(&server).await;
    let recorded = server
        .wait_for_request(|r| r.is_nack(), WAIT)
        .await
        .expect("NACK recorded");
    assert_eq!(
        recorded.error_message(),
        Some("a: connect_timeout must be > 0")
    );
    assert_eq!(server.responses().len(), 1);

    // A new version is sent.
    server.set_snapshot(snapshot("v2"));
    assert_eq!(client.recv().await.version_info, "v2");
    server.shutdown().await;
}

#[tokio::test]
async fn resend_misbehaviour_answers_every_nack_with_the_same_version() {
    let server = server(ServerOptions::default()).await;
    server.set_behavior(Behavior {
        resend_nacked: true,
        ..Default::default()
    });
    let mut client = SotwClient::connect(&server).await;
    client.send(sotw(CLUSTER, "", &[], "")).await;
    let mut resp = client.recv().await;
    for _ in 0..3 {
        let mut nack = sotw(CLUSTER, "", &[], &resp.nonce);
        nack.error_detail = error("bad");
        client.send(nack).await;
        let again = client.recv().await;
        assert_eq!(again.version_info, "v1");
        assert_ne!(again.nonce, resp.nonce);
        resp = again;
    }
    let resends = server
        .responses()
        .iter()
        .filter(|r| r.origin == ResponseOrigin::Resend)
        .count();
    assert_eq!(resends, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn strict_mode_withholds_a_partial_eds_request() {
    let server = server(ServerOptions::default().ads_strict(true)).await;
    let mut client = SotwClient::connect(&server).await;
    client.send(sotw(ENDPOINT, "", &["a"], "")).await;
    client.sync(&server).await;
    assert!(server.responses().is_empty(), "partial request answered");

    client.send(sotw(ENDPOINT, "", &["a", "b"], "")).await;
    let resp = client.recv().await;
    assert_eq!(names(&resp), ["a", "b"]);
    server.shutdown().await;
}

#[tokio::test]
async fn duplicate_and_unrequested_misbehaviours() {
    let server = server(ServerOptions::default()).await;
    server.set_behavior(Behavior {
        duplicate_responses: true,
        duplicate_resources: true,
        unrequested_resources: true,
        ..Default::default()
    });
    let mut client = SotwClient::connect(&server).await;
    client.send(sotw(ENDPOINT, "", &["b"], "")).await;
    let first = client.recv().await;
    let second = client.recv().await;
    assert_eq!(first, second);
    assert_eq!(names(&first), ["a", "b", "a"]);
    server.shutdown().await;
}

#[tokio::test]
async fn silence_holds_answers_until_lifted() {
    let server = server(ServerOptions::default()).await;
    server.update_behavior(|b| b.silent = true);
    let mut client = SotwClient::connect(&server).await;
    client.send(sotw(LISTENER, "", &[], "")).await;
    client.send(sotw(CLUSTER, "", &[], "")).await;
    client.sync(&server).await;
    assert!(server.responses().is_empty());
    server.update_behavior(|b| b.silent = false);
    // Make-before-break order: CDS before LDS.
    assert_eq!(client.recv().await.type_url, CLUSTER);
    assert_eq!(client.recv().await.type_url, LISTENER);
    server.shutdown().await;
}

#[tokio::test]
async fn drop_streams_ends_the_stream_with_unavailable_and_the_client_can_reconnect() {
    let server = server(ServerOptions::default()).await;
    let mut client = SotwClient::connect(&server).await;
    client.send(sotw(CLUSTER, "", &[], "")).await;
    client.recv().await;
    assert_eq!(server.drop_streams(), 1);
    let status = client.end().await.expect_err("stream ends with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    server
        .wait_for_stream(|s| s.closed_at.is_some(), WAIT)
        .await
        .expect("closed in the log");
    assert!(server.open_streams().is_empty());

    let again = SotwClient::connect(&server).await;
    again.send(sotw(CLUSTER, "v1", &[], "")).await;
    again.sync(&server).await;
    assert_eq!(server.streams_opened(), 2);
    // Reconnected with the version it has: nothing to send.
    assert_eq!(server.responses().len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn push_raw_reaches_the_client_and_its_ack_is_in_sequence() {
    let server = server(ServerOptions::default()).await;
    let mut client = SotwClient::connect(&server).await;
    client.send(sotw(CLUSTER, "", &[], "")).await;
    client.recv().await;
    let raw = DiscoveryResponse {
        version_info: "raw".into(),
        type_url: CLUSTER.into(),
        nonce: server.next_nonce(),
        resources: vec![pack(&cluster("x")), pack(&cluster("x"))],
        ..Default::default()
    };
    assert_eq!(server.push_raw(raw.clone()), 1);
    assert_eq!(client.recv().await, raw);
    let mut nack = sotw(CLUSTER, "v1", &[], &raw.nonce);
    nack.error_detail = error("duplicate x");
    client.send(nack).await;
    let recorded = server
        .wait_for_request(|r| r.error_message() == Some("duplicate x"), WAIT)
        .await
        .expect("recorded");
    assert_eq!(recorded.class, RequestClass::Nack);
    let logged = server
        .wait_for_response(|r| r.origin == ResponseOrigin::Raw, WAIT)
        .await
        .expect("raw logged");
    assert_eq!(logged.resource_names, ["x", "x"]);
    server.shutdown().await;
}

#[tokio::test]
async fn odd_input_does_not_panic() {
    let server = server(ServerOptions::default().ads_strict(true)).await;
    let mut client = SotwClient::connect(&server).await;
    let long = "n".repeat(100_000);
    for req in [
        sotw(CLUSTER, "whatever", &["*", "*", ""], "no-such-nonce"),
        sotw(ENDPOINT, "", &["", &long], ""),
        sotw("not a url", "", &[], ""),
    ] {
        client.send(req).await;
    }
    client.sync(&server).await;
    // A request without a type URL ends the stream (as go-control-plane does).
    client.send(sotw("", "", &[], "")).await;
    loop {
        match client.end().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("expected a status"),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::InvalidArgument);
                break;
            }
        }
    }
    // The server still serves.
    let mut other = SotwClient::connect(&server).await;
    other.send(sotw(CLUSTER, "", &[], "")).await;
    assert_eq!(names(&other.recv().await), ["a", "b"]);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_streams() {
    let server = server(ServerOptions::default()).await;
    let mut client = SotwClient::connect(&server).await;
    client.send(sotw(CLUSTER, "", &[], "")).await;
    client.recv().await;
    server.shutdown().await;
    assert!(client.end().await.is_err());
}
