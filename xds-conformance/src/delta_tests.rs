//! Network-free tests of the delta state machine.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::google::rpc::Status;

use super::*;
use crate::behavior::{Behavior, ServerOptions};
use crate::snapshot::Snapshot;
use crate::type_url::{CLUSTER, ENDPOINT};

struct Rig {
    shared: Shared,
    snapshot: Snapshot,
    behavior: Behavior,
    state: DeltaState,
}

impl Rig {
    fn new(snapshot: Snapshot) -> Self {
        Rig {
            shared: Shared::new(ServerOptions::default()),
            snapshot,
            behavior: Behavior::default(),
            state: DeltaState::default(),
        }
    }

    fn request(&mut self, req: DeltaDiscoveryRequest) -> (RequestClass, Vec<Outgoing>) {
        let class = self.state.on_request(&req);
        let env = Env {
            snapshot: &self.snapshot,
            behavior: &self.behavior,
            shared: &self.shared,
        };
        (class, self.state.respond(&req.type_url, &env))
    }

    fn set_snapshot(&mut self, snapshot: Snapshot) -> Vec<Outgoing> {
        self.snapshot = snapshot;
        let env = Env {
            snapshot: &self.snapshot,
            behavior: &self.behavior,
            shared: &self.shared,
        };
        self.state.respond_all(&env)
    }
}

fn sub(
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

fn ack(type_url: &str, nonce: &str) -> DeltaDiscoveryRequest {
    sub(type_url, &[], &[], nonce)
}

fn cluster(name: &str, alt_stat_name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        alt_stat_name: alt_stat_name.into(),
        ..Default::default()
    }
}

fn cla(name: &str) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        ..Default::default()
    }
}

fn names(o: &Outgoing) -> Vec<&str> {
    o.response
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect()
}

fn one(out: &[Outgoing]) -> &Outgoing {
    assert_eq!(out.len(), 1, "expected one response, got {out:?}");
    &out[0]
}

#[test]
fn wildcard_sends_changes_only_and_removals() {
    let mut rig = Rig::new(
        Snapshot::new("v1")
            .with(cluster("a", ""))
            .with(cluster("b", "")),
    );
    let (class, out) = rig.request(sub(CLUSTER, &[], &[], ""));
    assert_eq!(class, RequestClass::Initial);
    let r = one(&out);
    assert_eq!(names(r), ["a", "b"]);
    assert_eq!(r.response.system_version_info, "v1");
    assert!(
        r.response
            .resources
            .iter()
            .all(|r| !r.version.is_empty() && r.resource.is_some())
    );
    let nonce = r.response.nonce.clone();

    let (class, out) = rig.request(ack(CLUSTER, &nonce));
    assert_eq!(class, RequestClass::Ack);
    assert!(out.is_empty());

    // b changes, a stays, c is new, nothing removed.
    let out = rig.set_snapshot(
        Snapshot::new("v2")
            .with(cluster("a", ""))
            .with(cluster("b", "changed"))
            .with(cluster("c", "")),
    );
    let r = one(&out);
    assert_eq!(names(r), ["b", "c"]);
    assert!(r.response.removed_resources.is_empty());
    let nonce = r.response.nonce.clone();
    rig.request(ack(CLUSTER, &nonce));

    let out = rig.set_snapshot(Snapshot::new("v3").with(cluster("c", "")));
    let r = one(&out);
    assert!(names(r).is_empty());
    assert_eq!(r.response.removed_resources, ["a", "b"]);
}

#[test]
fn first_wildcard_response_is_sent_even_if_empty() {
    let mut rig = Rig::new(Snapshot::new("v1"));
    let (_, out) = rig.request(sub(CLUSTER, &[], &[], ""));
    let r = one(&out);
    assert!(r.response.resources.is_empty());
    let nonce = r.response.nonce.clone();
    let (_, out) = rig.request(ack(CLUSTER, &nonce));
    assert!(out.is_empty());
}

#[test]
fn named_subscribe_unsubscribe_and_missing_names() {
    let mut rig = Rig::new(Snapshot::new("v1").with(cla("a")).with(cla("b")));
    let (_, out) = rig.request(sub(ENDPOINT, &["a", "ghost"], &[], ""));
    let r = one(&out);
    assert_eq!(names(r), ["a"]);
    // A subscribed name that does not exist is reported once as removed.
    assert_eq!(r.response.removed_resources, ["ghost"]);
    let nonce = r.response.nonce.clone();
    let (_, out) = rig.request(ack(ENDPOINT, &nonce));
    assert!(out.is_empty());

    // A subscription change without a nonce.
    let (class, out) = rig.request(sub(ENDPOINT, &["b"], &["a"], ""));
    assert_eq!(class, RequestClass::Update);
    let r = one(&out);
    assert_eq!(names(r), ["b"]);
    assert!(r.response.removed_resources.is_empty());
    let nonce = r.response.nonce.clone();
    rig.request(ack(ENDPOINT, &nonce));

    // Re-subscribing to a after unsubscribing sends it again.
    let (_, out) = rig.request(sub(ENDPOINT, &["a"], &[], ""));
    assert_eq!(names(one(&out)), ["a"]);
}

#[test]
fn initial_resource_versions_skip_what_the_client_has() {
    let snapshot = Snapshot::new("v1").with(cla("a")).with(cla("b"));
    let have_a = snapshot
        .resource_version(ENDPOINT, "a")
        .expect("a exists")
        .to_string();
    let mut rig = Rig::new(snapshot);
    let mut req = sub(ENDPOINT, &["a", "b", "gone"], &[], "");
    req.initial_resource_versions = HashMap::from([
        ("a".to_string(), have_a),
        ("b".to_string(), "old".to_string()),
        ("gone".to_string(), "old".to_string()),
    ]);
    let (_, out) = rig.request(req);
    let r = one(&out);
    assert_eq!(names(r), ["b"]);
    assert_eq!(r.response.removed_resources, ["gone"]);
}

#[test]
fn nack_is_not_answered_unless_resend_is_on() {
    let mut rig = Rig::new(Snapshot::new("v1").with(cla("a")));
    let (_, out) = rig.request(sub(ENDPOINT, &["a"], &[], ""));
    let nonce = one(&out).response.nonce.clone();
    let mut nack = ack(ENDPOINT, &nonce);
    nack.error_detail = Some(Status {
        code: 3,
        message: "bad endpoint".into(),
        details: vec![],
    });
    let (class, out) = rig.request(nack.clone());
    assert_eq!(class, RequestClass::Nack);
    assert!(out.is_empty());

    let mut rig = Rig::new(Snapshot::new("v1").with(cla("a")));
    rig.behavior.resend_nacked_delta = true;
    let (_, out) = rig.request(sub(ENDPOINT, &["a"], &[], ""));
    let first = one(&out).response.clone();
    nack.response_nonce = first.nonce.clone();
    let (_, out) = rig.request(nack);
    let r = one(&out);
    assert_eq!(r.origin, ResponseOrigin::Resend);
    assert_eq!(r.response.resources, first.resources);
    assert_ne!(r.response.nonce, first.nonce);
}

#[test]
fn explicit_star_and_unsubscribe_star() {
    let mut rig = Rig::new(Snapshot::new("v1").with(cla("a")).with(cla("b")));
    let (_, out) = rig.request(sub(ENDPOINT, &["*"], &[], ""));
    let nonce = one(&out).response.nonce.clone();
    assert_eq!(names(one(&out)), ["a", "b"]);
    rig.request(ack(ENDPOINT, &nonce));
    // Dropping the wildcard but keeping b: the client forgets a, nothing is sent.
    let (_, out) = rig.request(sub(ENDPOINT, &["b"], &["*"], ""));
    assert!(out.is_empty());
    let out = rig.set_snapshot(
        Snapshot::new("v2")
            .with(cla("b"))
            .with(ClusterLoadAssignment {
                cluster_name: "a".into(),
                endpoints: vec![Default::default()],
                ..Default::default()
            }),
    );
    assert!(
        out.is_empty(),
        "a changed but is no longer subscribed: {out:?}"
    );
}

#[test]
fn unrequested_does_not_loop() {
    let mut rig = Rig::new(Snapshot::new("v1").with(cla("a")).with(cla("b")));
    rig.behavior.unrequested_resources = true;
    let (_, out) = rig.request(sub(ENDPOINT, &["a"], &[], ""));
    let r = one(&out);
    assert_eq!(names(r), ["a", "b"]);
    let nonce = r.response.nonce.clone();
    let (_, out) = rig.request(ack(ENDPOINT, &nonce));
    assert!(out.is_empty());
}

#[test]
fn duplicates_and_raw() {
    let mut rig = Rig::new(Snapshot::new("v1").with(cla("a")));
    rig.behavior.duplicate_resources = true;
    rig.behavior.duplicate_responses = true;
    let (_, out) = rig.request(sub(ENDPOINT, &["a"], &[], ""));
    assert_eq!(out.len(), 2);
    assert_eq!(names(&out[0]), ["a", "a"]);
    assert_eq!(out[0].response, out[1].response);

    let raw = DeltaDiscoveryResponse {
        type_url: ENDPOINT.into(),
        nonce: "raw".into(),
        removed_resources: vec!["a".into()],
        ..Default::default()
    };
    rig.state.note_raw(&raw);
    rig.behavior = Behavior::default();
    // The client acks the raw removal: the server sends a back.
    let (class, out) = rig.request(ack(ENDPOINT, "raw"));
    assert_eq!(class, RequestClass::Ack);
    assert_eq!(names(one(&out)), ["a"]);
}
