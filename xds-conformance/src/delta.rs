//! Incremental ADS (`DeltaAggregatedResources`): the per-stream state machine and the task that
//! drives it over a tonic stream.
//!
//! Rules (go-control-plane `pkg/cache/v3/delta.go`, `simple.go` delta watches):
//! - per type: the subscribed names, whether the stream is wildcard (the first request of the type
//!   subscribes to nothing, or any request subscribes to `*`), and the version of each resource
//!   the client has (from `initial_resource_versions`, then from every response sent);
//! - as in SotW, every request opens a watch and one response closes it;
//! - a response carries the subscribed resources whose version differs from the client's, and in
//!   `removed_resources` the names the client has that are gone, plus subscribed names that do not
//!   exist (once: that is how delta says "does not exist");
//! - the first response of a wildcard subscription is sent even if empty (Envoy needs it to
//!   finish initialisation); otherwise an empty diff is not sent;
//! - a NACK is recorded and not answered: the client's versions were updated when the response was
//!   sent, so there is nothing new to send until the snapshot changes.

use std::collections::{BTreeSet, HashMap};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use rand::seq::SliceRandom;

use crate::recorder::{Protocol, RecordedResponse, RequestBody, RequestClass, ResponseOrigin};
use crate::shared::{Env, Shared, StreamCommand, with_env};
use crate::type_url;

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    subscribed: BTreeSet<String>,
    /// Resource name → the version the client has.
    client_has: HashMap<String, String>,
    /// Subscribed names already reported in `removed_resources` as absent.
    told_missing: BTreeSet<String>,
    watch: bool,
    nack_pending: bool,
    last_nonce: Option<String>,
    responded: bool,
    last_response: Option<DeltaDiscoveryResponse>,
}

impl TypeState {
    fn covers(&self, name: &str) -> bool {
        self.wildcard || self.subscribed.contains(name)
    }
}

/// A response to send and why.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) response: DeltaDiscoveryResponse,
    pub(crate) origin: ResponseOrigin,
}

/// One delta stream's protocol state. Does no I/O.
#[derive(Debug, Default)]
pub(crate) struct DeltaState {
    types: HashMap<String, TypeState>,
}

impl DeltaState {
    /// Applies a request's subscription changes and classifies it.
    pub(crate) fn on_request(&mut self, req: &DeltaDiscoveryRequest) -> RequestClass {
        let first = !self.types.contains_key(&req.type_url);
        let st = self.types.entry(req.type_url.clone()).or_default();
        let class = if !req.response_nonce.is_empty() {
            if st.last_nonce.as_deref() != Some(req.response_nonce.as_str()) {
                RequestClass::Stale
            } else if req.error_detail.is_some() {
                RequestClass::Nack
            } else {
                RequestClass::Ack
            }
        } else if req.error_detail.is_some() {
            RequestClass::Nack
        } else if first {
            RequestClass::Initial
        } else {
            RequestClass::Update
        };

        // Legacy wildcard: the first request of a type that subscribes to nothing.
        if first && req.resource_names_subscribe.is_empty() {
            st.wildcard = true;
        }
        for name in &req.resource_names_subscribe {
            if name == "*" {
                st.wildcard = true;
            } else {
                st.subscribed.insert(name.clone());
            }
        }
        let mut wildcard_dropped = false;
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                st.wildcard = false;
                wildcard_dropped = true;
            } else {
                st.subscribed.remove(name);
                // The client forgets what it no longer subscribes to; a later subscribe must
                // send it again. Under a wildcard the name stays covered.
                if !st.wildcard {
                    st.client_has.remove(name);
                    st.told_missing.remove(name);
                }
            }
        }
        if wildcard_dropped {
            let TypeState {
                subscribed,
                client_has,
                told_missing,
                ..
            } = st;
            client_has.retain(|n, _| subscribed.contains(n));
            told_missing.retain(|n| subscribed.contains(n));
        }
        for (name, version) in &req.initial_resource_versions {
            st.client_has.insert(name.clone(), version.clone());
        }
        // Stale requests still open a watch: their subscription changes must be answered.
        st.watch = true;
        st.nack_pending = class == RequestClass::Nack;
        class
    }

    /// Answers the open watch of `type_url`, if there is anything to say.
    pub(crate) fn respond(&mut self, type_url: &str, env: &Env<'_>) -> Vec<Outgoing> {
        if env.behavior.silent {
            return Vec::new();
        }
        let Some(st) = self.types.get_mut(type_url) else {
            return Vec::new();
        };
        if !st.watch {
            return Vec::new();
        }
        let Some(ts) = env.snapshot.get(type_url) else {
            return Vec::new();
        };

        // Re-sent only while the snapshot is still the one the rejected response came from;
        // once it changed, the client gets the new state like any other.
        if st.nack_pending
            && env.behavior.resend_nacked_delta
            && let Some(last) = &st.last_response
            && last.system_version_info == ts.version
        {
            let mut response = last.clone();
            response.nonce = env.nonce();
            if env.behavior.shuffle_resources {
                response.resources.shuffle(&mut rand::rng());
            }
            st.last_nonce = Some(response.nonce.clone());
            st.watch = false;
            st.nack_pending = false;
            return duplicate_if_asked(
                env,
                Outgoing {
                    response,
                    origin: ResponseOrigin::Resend,
                },
            );
        }

        let mut resources: Vec<Resource> = Vec::new();
        for (name, r) in &ts.resources {
            let wanted = st.covers(name) || env.behavior.unrequested_resources;
            if wanted && st.client_has.get(name) != Some(&r.version) {
                resources.push(Resource {
                    name: name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.any.clone()),
                    ..Default::default()
                });
            }
        }
        let mut removed: Vec<String> = st
            .client_has
            .keys()
            .filter(|n| !ts.resources.contains_key(*n))
            .cloned()
            .collect();
        removed.extend(
            st.subscribed
                .iter()
                .filter(|n| {
                    !ts.resources.contains_key(*n)
                        && !st.client_has.contains_key(*n)
                        && !st.told_missing.contains(*n)
                })
                .cloned(),
        );
        removed.sort();
        removed.dedup();

        let first_wildcard = st.wildcard && !st.responded;
        if resources.is_empty() && removed.is_empty() && !first_wildcard {
            return Vec::new();
        }

        for r in &resources {
            st.client_has.insert(r.name.clone(), r.version.clone());
            st.told_missing.remove(&r.name);
        }
        for name in &removed {
            st.client_has.remove(name);
            if st.subscribed.contains(name) {
                st.told_missing.insert(name.clone());
            }
        }
        if env.behavior.shuffle_resources {
            resources.shuffle(&mut rand::rng());
        }
        if env.behavior.duplicate_resources
            && let Some(first) = resources.first().cloned()
        {
            resources.push(first);
        }
        let response = DeltaDiscoveryResponse {
            system_version_info: ts.version.clone(),
            resources,
            type_url: type_url.to_string(),
            removed_resources: removed,
            nonce: env.nonce(),
            ..Default::default()
        };
        st.last_nonce = Some(response.nonce.clone());
        st.responded = true;
        st.watch = false;
        st.nack_pending = false;
        st.last_response = Some(response.clone());
        duplicate_if_asked(
            env,
            Outgoing {
                response,
                origin: ResponseOrigin::Snapshot,
            },
        )
    }

    /// Answers every open watch, types in make-before-break order (CDS, EDS, LDS, RDS, others).
    pub(crate) fn respond_all(&mut self, env: &Env<'_>) -> Vec<Outgoing> {
        let mut urls: Vec<String> = self.types.keys().cloned().collect();
        urls.sort_by_key(|u| {
            let rank = type_url::PUSH_ORDER.iter().position(|p| p == u);
            (rank.unwrap_or(type_url::PUSH_ORDER.len()), u.clone())
        });
        urls.iter().flat_map(|u| self.respond(u, env)).collect()
    }

    /// Takes an injected response as sent: its nonce is the one the client answers next, and its
    /// resources and removals change what the client has.
    pub(crate) fn note_raw(&mut self, response: &DeltaDiscoveryResponse) {
        let st = self.types.entry(response.type_url.clone()).or_default();
        for r in &response.resources {
            st.client_has.insert(r.name.clone(), r.version.clone());
        }
        for name in &response.removed_resources {
            st.client_has.remove(name);
        }
        st.last_nonce = Some(response.nonce.clone());
        st.watch = false;
    }
}

fn duplicate_if_asked(env: &Env<'_>, out: Outgoing) -> Vec<Outgoing> {
    if env.behavior.duplicate_responses {
        let copy = Outgoing {
            response: out.response.clone(),
            origin: ResponseOrigin::Duplicate,
        };
        vec![out, copy]
    } else {
        vec![out]
    }
}

type Outbound = crate::stream_loop::Outbound<DeltaDiscoveryResponse>;

impl crate::stream_loop::StreamProtocol for DeltaState {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;

    fn on_request(
        &mut self,
        shared: &Shared,
        id: u64,
        request: DeltaDiscoveryRequest,
        outbound: &Outbound,
    ) -> Result<(), tonic::Status> {
        on_request(shared, id, self, request, outbound)
    }

    fn on_change(&mut self, shared: &Shared, id: u64, outbound: &Outbound) {
        let out = with_env(shared, |env| self.respond_all(env));
        send(shared, id, outbound, out);
    }

    fn on_raw(&mut self, shared: &Shared, id: u64, command: StreamCommand, outbound: &Outbound) {
        if let StreamCommand::RawDelta(response) = command {
            self.note_raw(&response);
            let out = Outgoing {
                response,
                origin: ResponseOrigin::Raw,
            };
            send(shared, id, outbound, vec![out]);
        }
    }
}

fn on_request(
    shared: &Shared,
    id: u64,
    state: &mut DeltaState,
    req: DeltaDiscoveryRequest,
    outbound: &Outbound,
) -> Result<(), tonic::Status> {
    let class = state.on_request(&req);
    log_request(id, class, &req);
    let type_url = req.type_url.clone();
    shared.recorder.request(id, class, RequestBody::Delta(req));
    if type_url.is_empty() {
        return Err(tonic::Status::invalid_argument(
            "type_url is required on an ADS stream",
        ));
    }
    let out = with_env(shared, |env| state.respond(&type_url, env));
    send(shared, id, outbound, out);
    Ok(())
}

fn log_request(id: u64, class: RequestClass, req: &DeltaDiscoveryRequest) {
    let ty = type_url::short_name(&req.type_url);
    match class {
        RequestClass::Ack => {
            tracing::info!(stream = id, type_url = ty, nonce = %req.response_nonce, "ACK");
        }
        RequestClass::Nack => tracing::warn!(
            stream = id, type_url = ty, nonce = %req.response_nonce,
            error = %req.error_detail.as_ref().map(|s| s.message.as_str()).unwrap_or_default(),
            "NACK"
        ),
        RequestClass::Stale | RequestClass::Initial | RequestClass::Update => tracing::info!(
            stream = id, type_url = ty, ?class,
            subscribe = ?req.resource_names_subscribe,
            unsubscribe = ?req.resource_names_unsubscribe,
            initial_versions = req.initial_resource_versions.len(),
            node = req.node.as_ref().map(|n| n.id.as_str()),
            "delta request"
        ),
    }
}

fn send(shared: &Shared, id: u64, outbound: &Outbound, out: Vec<Outgoing>) {
    for o in out {
        let r = &o.response;
        tracing::debug!(
            stream = id,
            type_url = type_url::short_name(&r.type_url),
            version = %r.system_version_info,
            nonce = %r.nonce,
            resources = r.resources.len(),
            removed = r.removed_resources.len(),
            origin = ?o.origin,
            "delta response"
        );
        shared.recorder.response(RecordedResponse {
            seq: 0,
            stream_id: id,
            at: std::time::Instant::now(),
            protocol: Protocol::Delta,
            type_url: r.type_url.clone(),
            version: r.system_version_info.clone(),
            nonce: r.nonce.clone(),
            resource_names: r.resources.iter().map(|r| r.name.clone()).collect(),
            removed: r.removed_resources.clone(),
            origin: o.origin,
        });
        let _ = outbound.send(Ok(o.response));
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
