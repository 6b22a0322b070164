//! Table-free, network-free tests of the SotW state machine.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::google::rpc::Status;

use super::*;
use crate::behavior::{Behavior, ServerOptions};
use crate::snapshot::{Snapshot, pack};
use crate::type_url::{CLUSTER, ENDPOINT, LISTENER};

struct Rig {
    shared: Shared,
    snapshot: Snapshot,
    behavior: Behavior,
    state: SotwState,
}

impl Rig {
    fn new(options: ServerOptions, snapshot: Snapshot) -> Self {
        Rig {
            shared: Shared::new(options),
            snapshot,
            behavior: Behavior::default(),
            state: SotwState::default(),
        }
    }

    /// Sends a request and returns the class and the responses it produced.
    fn request(&mut self, req: DiscoveryRequest) -> (RequestClass, Vec<Outgoing>) {
        let class = self.state.on_request(&req);
        let env = Env {
            snapshot: &self.snapshot,
            behavior: &self.behavior,
            shared: &self.shared,
        };
        let out = if class == RequestClass::Stale {
            Vec::new()
        } else {
            self.state.respond(&req.type_url, &env)
        };
        (class, out)
    }

    fn set_snapshot(&mut self, snapshot: Snapshot) -> Vec<Outgoing> {
        self.snapshot = snapshot;
        self.reevaluate()
    }

    fn reevaluate(&mut self) -> Vec<Outgoing> {
        let env = Env {
            snapshot: &self.snapshot,
            behavior: &self.behavior,
            shared: &self.shared,
        };
        self.state.respond_all(&env)
    }
}

fn req(type_url: &str, version: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        version_info: version.into(),
        resource_names: names.iter().map(|n| (*n).to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn nack(type_url: &str, version: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        error_detail: Some(Status {
            code: 3,
            message: "bad".into(),
            details: vec![],
        }),
        ..req(type_url, version, names, nonce)
    }
}

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

fn snap(version: &str) -> Snapshot {
    Snapshot::new(version)
        .with(cluster("a"))
        .with(cluster("b"))
        .with(cla("a"))
        .with(cla("b"))
}

fn one(out: &[Outgoing]) -> &Outgoing {
    assert_eq!(out.len(), 1, "expected one response, got {out:?}");
    &out[0]
}

#[test]
fn wildcard_cds_then_ack_then_change() {
    let mut rig = Rig::new(ServerOptions::default(), snap("v1"));
    let (class, out) = rig.request(req(CLUSTER, "", &[], ""));
    assert_eq!(class, RequestClass::Initial);
    let first = one(&out).clone();
    assert_eq!(first.names, ["a", "b"]);
    assert_eq!(first.response.version_info, "v1");

    let (class, out) = rig.request(req(CLUSTER, "v1", &[], &first.response.nonce));
    assert_eq!(class, RequestClass::Ack);
    assert!(out.is_empty(), "ACK of the current version is not answered");

    let out = rig.set_snapshot(snap("v2").with(cluster("c")));
    let second = one(&out);
    assert_eq!(second.response.version_info, "v2");
    assert_eq!(second.names, ["a", "b", "c"]);
    assert_ne!(second.response.nonce, first.response.nonce);
}

#[test]
fn star_is_wildcard_and_eds_is_by_name() {
    let mut rig = Rig::new(ServerOptions::default(), snap("v1"));
    let (_, out) = rig.request(req(CLUSTER, "", &["*"], ""));
    assert_eq!(one(&out).names, ["a", "b"]);
    let (_, out) = rig.request(req(ENDPOINT, "", &["b", "missing"], ""));
    assert_eq!(one(&out).names, ["b"]);
    let (class, out) = rig.request(req(ENDPOINT, "", &[], ""));
    assert_eq!(
        class,
        RequestClass::Stale,
        "no nonce after a response is stale"
    );
    assert!(out.is_empty());
}

#[test]
fn empty_eds_request_gets_an_empty_answer() {
    let mut rig = Rig::new(ServerOptions::default(), snap("v1"));
    let (_, out) = rig.request(req(ENDPOINT, "", &[], ""));
    assert!(one(&out).names.is_empty());
}

#[test]
fn new_existing_name_is_answered_at_the_same_version() {
    let mut rig = Rig::new(ServerOptions::default(), snap("v1"));
    let (_, out) = rig.request(req(ENDPOINT, "", &["a"], ""));
    let nonce = one(&out).response.nonce.clone();
    let (_, out) = rig.request(req(ENDPOINT, "v1", &["a", "b"], &nonce));
    let r = one(&out);
    assert_eq!(r.names, ["a", "b"]);
    let nonce = r.response.nonce.clone();
    // Removing a name, or adding one that does not exist, is not answered (go-control-plane).
    let (_, out) = rig.request(req(ENDPOINT, "v1", &["a", "zzz"], &nonce));
    assert!(out.is_empty());
}

#[test]
fn stale_nonce_is_ignored() {
    let mut rig = Rig::new(ServerOptions::default(), snap("v1"));
    let (_, out) = rig.request(req(CLUSTER, "", &[], ""));
    let nonce = one(&out).response.nonce.clone();
    let (class, out) = rig.request(req(CLUSTER, "", &[], "not-the-nonce"));
    assert_eq!(class, RequestClass::Stale);
    assert!(out.is_empty());
    // Without a watch, a snapshot change waits for the ACK.
    assert!(rig.set_snapshot(snap("v2")).is_empty());
    let (class, out) = rig.request(req(CLUSTER, "v1", &[], &nonce));
    assert_eq!(class, RequestClass::Ack);
    assert_eq!(one(&out).response.version_info, "v2");
}

#[test]
fn nack_is_held_until_the_snapshot_changes() {
    let mut rig = Rig::new(ServerOptions::default(), snap("v1"));
    let (_, out) = rig.request(req(CLUSTER, "", &[], ""));
    let nonce = one(&out).response.nonce.clone();
    let (class, out) = rig.request(nack(CLUSTER, "", &[], &nonce));
    assert_eq!(class, RequestClass::Nack);
    assert!(out.is_empty(), "the NACKed version is not re-sent");
    let out = rig.set_snapshot(snap("v2"));
    assert_eq!(one(&out).response.version_info, "v2");
    assert_eq!(one(&out).origin, ResponseOrigin::Snapshot);
}

#[test]
fn resend_nacked_misbehaviour_resends_at_once() {
    let mut rig = Rig::new(ServerOptions::default(), snap("v1"));
    rig.behavior.resend_nacked = true;
    let (_, out) = rig.request(req(CLUSTER, "", &[], ""));
    let nonce = one(&out).response.nonce.clone();
    let (_, out) = rig.request(nack(CLUSTER, "", &[], &nonce));
    let r = one(&out);
    assert_eq!(r.response.version_info, "v1");
    assert_eq!(r.origin, ResponseOrigin::Resend);
    assert_ne!(r.response.nonce, nonce);
}

#[test]
fn ads_strict_drops_partial_requests() {
    let mut rig = Rig::new(ServerOptions::default().ads_strict(true), snap("v1"));
    let (_, out) = rig.request(req(ENDPOINT, "", &["a"], ""));
    assert!(out.is_empty(), "partial EDS request must be withheld");
    // The watch is gone: a change does not answer it either.
    assert!(rig.set_snapshot(snap("v2")).is_empty());
    let (class, out) = rig.request(req(ENDPOINT, "", &["a", "b"], ""));
    assert_eq!(class, RequestClass::Update);
    assert_eq!(one(&out).names, ["a", "b"]);
    // Wildcard types are not affected.
    let (_, out) = rig.request(req(CLUSTER, "", &[], ""));
    assert_eq!(one(&out).names, ["a", "b"]);
}

#[test]
fn duplicates_unrequested_and_silence() {
    let mut rig = Rig::new(ServerOptions::default(), snap("v1"));
    rig.behavior = Behavior {
        duplicate_responses: true,
        duplicate_resources: true,
        unrequested_resources: true,
        ..Default::default()
    };
    let (_, out) = rig.request(req(ENDPOINT, "", &["b"], ""));
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].names, ["a", "b", "a"]);
    assert_eq!(out[0].response.resources.len(), 3);
    assert_eq!(out[1].origin, ResponseOrigin::Duplicate);
    assert_eq!(out[0].response, out[1].response);

    rig.behavior = Behavior {
        silent: true,
        ..Default::default()
    };
    let (_, out) = rig.request(req(CLUSTER, "", &[], ""));
    assert!(out.is_empty());
    rig.behavior.silent = false;
    assert_eq!(one(&rig.reevaluate()).names, ["a", "b"]);
}

#[test]
fn absent_type_waits_for_the_snapshot() {
    let mut rig = Rig::new(ServerOptions::default(), Snapshot::empty());
    let (_, out) = rig.request(req(LISTENER, "", &[], ""));
    assert!(out.is_empty());
    let out = rig.set_snapshot(Snapshot::new("v1"));
    let r = one(&out);
    assert_eq!(r.response.version_info, "v1");
    assert!(r.names.is_empty());
}

#[test]
fn push_order_is_make_before_break() {
    let mut rig = Rig::new(ServerOptions::default(), Snapshot::empty());
    for t in [LISTENER, ENDPOINT, CLUSTER] {
        rig.request(req(t, "", &["a"], ""));
    }
    let out = rig.set_snapshot(snap("v1"));
    let order: Vec<&str> = out.iter().map(|o| o.response.type_url.as_str()).collect();
    assert_eq!(order, [CLUSTER, ENDPOINT, LISTENER]);
}

#[test]
fn raw_response_is_in_sequence() {
    let mut rig = Rig::new(ServerOptions::default(), snap("v1"));
    let (_, out) = rig.request(req(CLUSTER, "", &[], ""));
    let nonce = one(&out).response.nonce.clone();
    let raw = DiscoveryResponse {
        version_info: "bad".into(),
        type_url: CLUSTER.into(),
        nonce: "raw-1".into(),
        resources: vec![pack(&cluster("x"))],
        ..Default::default()
    };
    rig.state.note_raw(&raw, &["x".to_string()]);
    let (class, _) = rig.request(req(CLUSTER, "v1", &[], &nonce));
    assert_eq!(class, RequestClass::Stale, "the old nonce is now stale");
    let (class, out) = rig.request(nack(CLUSTER, "v1", &[], "raw-1"));
    assert_eq!(class, RequestClass::Nack);
    // The client rejected the raw response and still has v1, the snapshot's version.
    assert!(out.is_empty());
    // Had it accepted the raw version, the snapshot would be sent again.
    let mut rig2 = Rig::new(ServerOptions::default(), snap("v1"));
    rig2.request(req(CLUSTER, "", &[], ""));
    rig2.state.note_raw(&raw, &["x".to_string()]);
    let (class, out) = rig2.request(req(CLUSTER, "bad", &[], "raw-1"));
    assert_eq!(class, RequestClass::Ack);
    assert_eq!(one(&out).response.version_info, "v1");
}

#[test]
fn resource_name_reads_field_one() {
    assert_eq!(resource_name(&pack(&cla("svc"))), "svc");
    assert_eq!(resource_name(&pack(&cluster("c"))), "c");
    let garbage = envoy_types::pb::google::protobuf::Any {
        type_url: "x".into(),
        value: vec![0xff, 0xff],
    };
    assert_eq!(resource_name(&garbage), "");
}
