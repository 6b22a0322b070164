//! The reporting services (EventReportingService, LRS) driven by raw tonic clients: what they
//! record, what LRS answers, and how tests end their streams.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::data::cluster::v3::OutlierDetectionEvent;
use envoy_types::pb::envoy::service::event_reporting::v3::event_reporting_service_client::EventReportingServiceClient;
use envoy_types::pb::envoy::service::event_reporting::v3::{
    StreamEventsRequest, stream_events_request::Identifier,
};
use envoy_types::pb::envoy::service::load_stats::v3::LoadStatsRequest;
use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_client::LoadReportingServiceClient;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use xds_conformance::{Behavior, ManagementServer, ServerOptions};

const WAIT: Duration = Duration::from_secs(5);

fn node() -> Node {
    Node {
        id: "n".into(),
        ..Node::default()
    }
}

fn outlier(url: &str) -> Any {
    Any {
        type_url: OutlierDetectionEvent::type_url(),
        value: OutlierDetectionEvent {
            upstream_url: url.into(),
            ..OutlierDetectionEvent::default()
        }
        .encode_to_vec(),
    }
}

#[tokio::test]
async fn events_are_recorded_and_decoded_and_streams_end_on_command() {
    let server = ManagementServer::start(ServerOptions::default())
        .await
        .expect("server");
    let mut client = EventReportingServiceClient::connect(server.uri())
        .await
        .expect("connect");
    let (sender, receiver) = mpsc::channel(4);
    sender
        .send(StreamEventsRequest {
            identifier: Some(Identifier { node: Some(node()) }),
            events: vec![outlier("tcp://1.2.3.4:1")],
        })
        .await
        .expect("send");
    sender
        .send(StreamEventsRequest {
            identifier: None,
            events: vec![outlier("tcp://1.2.3.4:2"), outlier("tcp://1.2.3.4:3")],
        })
        .await
        .expect("send");
    let mut responses = client
        .stream_events(ReceiverStream::new(receiver))
        .await
        .expect("stream")
        .into_inner();
    let events = server.wait_for_events(3, WAIT).await.expect("three events");
    assert_eq!(events.len(), 3);
    let urls: Vec<String> = server
        .outlier_events()
        .into_iter()
        .map(|e| e.upstream_url)
        .collect();
    assert_eq!(
        urls,
        ["tcp://1.2.3.4:1", "tcp://1.2.3.4:2", "tcp://1.2.3.4:3"]
    );
    assert!(server.health_check_events().is_empty());
    let requests = server.event_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].stream_id, 1);
    assert_eq!(server.event_streams_opened(), 1);

    server.drop_report_streams();
    let ended = responses.message().await.expect_err("dropped");
    assert_eq!(ended.code(), tonic::Code::Unavailable);

    // After shutdown no new stream opens.
    server.shutdown().await;
    let (_sender, receiver) = mpsc::channel::<StreamEventsRequest>(1);
    assert!(
        client
            .stream_events(ReceiverStream::new(receiver))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn lrs_answers_the_first_request_and_every_change_of_settings() {
    let server = ManagementServer::start(ServerOptions::default())
        .await
        .expect("server");
    let mut client = LoadReportingServiceClient::connect(server.uri())
        .await
        .expect("connect");
    let (sender, receiver) = mpsc::channel(4);
    sender
        .send(LoadStatsRequest {
            node: Some(node()),
            cluster_stats: Vec::new(),
        })
        .await
        .expect("send");
    let mut responses = client
        .stream_load_stats(ReceiverStream::new(receiver))
        .await
        .expect("stream")
        .into_inner();
    let first = server
        .wait_for_load_report(|_| true, WAIT)
        .await
        .expect("recorded");
    assert_eq!(first.request.node, Some(node()));
    assert_eq!(server.load_report_streams_opened(), 1);

    // Nothing is said until the test sets what to report; then at once, and on every change.
    server.set_load_reporting(&["a", "b"], Duration::from_millis(1500), false, true);
    let response = responses.message().await.expect("ok").expect("a response");
    assert_eq!(response.clusters, ["a", "b"]);
    assert!(!response.send_all_clusters);
    assert!(response.report_endpoint_granularity);
    let interval = response.load_reporting_interval.expect("interval");
    assert_eq!((interval.seconds, interval.nanos), (1, 500_000_000));
    server.set_load_reporting(&[], Duration::from_secs(1), true, false);
    let response = responses.message().await.expect("ok").expect("a response");
    assert!(response.send_all_clusters);

    sender
        .send(LoadStatsRequest::default())
        .await
        .expect("send");
    let all = server.wait_for_load_reports(2, WAIT).await.expect("two");
    assert_eq!(all[1].request, LoadStatsRequest::default());

    server.drop_report_streams();
    let ended = responses.message().await.expect_err("dropped");
    assert_eq!(ended.code(), tonic::Code::Unavailable);
}

/// A bounded window in which a call must not resolve: the server's response headers are
/// withheld, as grpc-go withholds them.
const NO_HEADERS_WINDOW: Duration = Duration::from_millis(300);

#[tokio::test]
async fn grpc_go_events_handler_sends_no_headers_until_the_client_ends_the_stream() {
    let server = ManagementServer::start(ServerOptions::default())
        .await
        .expect("server");
    server.set_behavior(Behavior::go_control_plane());
    let mut client = EventReportingServiceClient::connect(server.uri())
        .await
        .expect("connect");
    let (sender, receiver) = mpsc::channel(4);
    let call = client.stream_events(ReceiverStream::new(receiver));
    tokio::pin!(call);
    // Messages flow although no headers came back: a client must not wait for them.
    for port in 1..=2 {
        sender
            .send(StreamEventsRequest {
                identifier: (port == 1).then(|| Identifier { node: Some(node()) }),
                events: vec![outlier(&format!("tcp://1.2.3.4:{port}"))],
            })
            .await
            .expect("send");
    }
    let recorded = async { server.wait_for_events(2, WAIT).await };
    tokio::select! {
        events = recorded => assert_eq!(events.expect("two events").len(), 2),
        response = &mut call => panic!("headers before the client ended its stream: {response:?}"),
    }
    assert!(
        tokio::time::timeout(NO_HEADERS_WINDOW, &mut call)
            .await
            .is_err(),
        "the call resolved (headers sent) while the client's stream is open"
    );
    // The client ends its side: the handler returns, headers and trailers go together.
    drop(sender);
    let mut responses = tokio::time::timeout(WAIT, call)
        .await
        .expect("the call resolves once the client ends its stream")
        .expect("an OK status")
        .into_inner();
    assert!(responses.message().await.expect("ok").is_none());
}

#[tokio::test]
async fn grpc_go_lrs_handler_sends_headers_with_its_first_response_after_the_first_request() {
    let server = ManagementServer::start(ServerOptions::default())
        .await
        .expect("server");
    server.set_behavior(Behavior::go_control_plane());
    server.set_load_reporting(&["a"], Duration::from_secs(1), false, false);
    let mut client = LoadReportingServiceClient::connect(server.uri())
        .await
        .expect("connect");
    let (sender, receiver) = mpsc::channel(4);
    let call = client.stream_load_stats(ReceiverStream::new(receiver));
    tokio::pin!(call);
    assert!(
        tokio::time::timeout(NO_HEADERS_WINDOW, &mut call)
            .await
            .is_err(),
        "headers before the client's first request"
    );
    sender
        .send(LoadStatsRequest {
            node: Some(node()),
            cluster_stats: Vec::new(),
        })
        .await
        .expect("send");
    let mut responses = tokio::time::timeout(WAIT, call)
        .await
        .expect("headers with the first response")
        .expect("stream")
        .into_inner();
    let response = responses.message().await.expect("ok").expect("a response");
    assert_eq!(response.clusters, ["a"]);
    assert_eq!(server.load_reports().len(), 1);
}
