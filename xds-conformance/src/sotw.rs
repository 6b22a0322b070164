//! State-of-the-world ADS (`StreamAggregatedResources`): the per-stream state machine and the
//! task that drives it over a tonic stream.
//!
//! The rules are go-control-plane's (`pkg/server/sotw` + `pkg/cache/v3/simple.go`, ADS mode):
//! - every accepted request opens a *watch* for its type; one response closes it, so at most one
//!   response per type is in flight and a change made while the client has not answered is sent
//!   after its ACK/NACK;
//! - a request whose nonce is not the last one sent for its type is stale and ignored;
//! - a watch is answered when the snapshot's version for the type differs from the request's
//!   `version_info`, or when the request names a resource that exists and was not in the last
//!   response;
//! - wildcard (LDS/CDS with no names, or `*`) gets every resource; otherwise the named ones that
//!   exist ([`crate::Behavior::empty_names_wildcard`]: no names is a wildcard for every type, as
//!   in go-control-plane's snapshot cache);
//! - ADS strict mode: a named request that does not cover every resource of the type is dropped.
//!
//! Deviation, on purpose: a NACK is not answered with the version it rejected (go-control-plane
//! resends it at once; [`crate::Behavior::resend_nacked`] restores that).

use std::collections::{BTreeSet, HashMap};

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use rand::seq::SliceRandom;

use crate::recorder::{Protocol, RecordedResponse, RequestBody, RequestClass, ResponseOrigin};
use crate::shared::{Env, Shared, StreamCommand, with_env};
use crate::type_url;

/// An open watch: the request waiting for a response.
#[derive(Debug, Clone)]
struct Watch {
    version_info: String,
    nack: bool,
}

/// The last response sent for a type.
#[derive(Debug, Clone)]
struct Sent {
    version: String,
    nonce: String,
    names: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct TypeState {
    /// Names of the last accepted request, `*` excluded.
    names: BTreeSet<String>,
    /// The last accepted request contained `*`.
    star: bool,
    watch: Option<Watch>,
    last_sent: Option<Sent>,
}

impl TypeState {
    fn wildcard(&self, type_url: &str, empty_names_wildcard: bool) -> bool {
        self.star
            || (self.names.is_empty()
                && (empty_names_wildcard || type_url::empty_means_wildcard(type_url)))
    }
}

/// A response to send and why.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) response: DiscoveryResponse,
    pub(crate) names: Vec<String>,
    pub(crate) origin: ResponseOrigin,
}

/// One SotW stream's protocol state. Does no I/O.
#[derive(Debug, Default)]
pub(crate) struct SotwState {
    types: HashMap<String, TypeState>,
}

impl SotwState {
    /// Takes a request into account and classifies it. A stale request changes nothing.
    pub(crate) fn on_request(&mut self, req: &DiscoveryRequest) -> RequestClass {
        let first = !self.types.contains_key(&req.type_url);
        let st = self.types.entry(req.type_url.clone()).or_default();
        let class = match &st.last_sent {
            Some(sent) if sent.nonce != req.response_nonce => return RequestClass::Stale,
            _ if req.error_detail.is_some() => RequestClass::Nack,
            Some(_) => RequestClass::Ack,
            None if first => RequestClass::Initial,
            None => RequestClass::Update,
        };
        st.star = req.resource_names.iter().any(|n| n == "*");
        st.names = req
            .resource_names
            .iter()
            .filter(|n| *n != "*")
            .cloned()
            .collect();
        st.watch = Some(Watch {
            version_info: req.version_info.clone(),
            nack: class == RequestClass::Nack,
        });
        class
    }

    /// Answers the open watch of `type_url`, if the rules say so.
    pub(crate) fn respond(&mut self, type_url: &str, env: &Env<'_>) -> Vec<Outgoing> {
        if env.behavior.silent {
            return Vec::new();
        }
        let Some(st) = self.types.get_mut(type_url) else {
            return Vec::new();
        };
        let Some(watch) = st.watch.clone() else {
            return Vec::new();
        };
        let Some(ts) = env.snapshot.get(type_url) else {
            return Vec::new();
        };
        let wildcard = st.wildcard(type_url, env.behavior.empty_names_wildcard);

        let rejected_is_current = st
            .last_sent
            .as_ref()
            .is_some_and(|s| s.version == ts.version);
        let resend = watch.nack && rejected_is_current;
        if resend && !env.behavior.resend_nacked {
            return Vec::new();
        }
        let returned = st.last_sent.as_ref().map(|s| &s.names);
        let new_names = !wildcard
            && st
                .names
                .iter()
                .any(|n| ts.resources.contains_key(n) && !returned.is_some_and(|r| r.contains(n)));
        if watch.version_info == ts.version && !new_names {
            return Vec::new();
        }

        if env.options().ads_strict
            && !wildcard
            && let Some(missing) = ts.resources.keys().find(|n| !st.names.contains(*n))
        {
            // go-control-plane (simple.go `respond`, ADS mode) drops the watch here: the client
            // stalls until it sends a request whose names cover the whole type.
            tracing::warn!(
                type_url = type_url::short_name(type_url),
                missing = %missing,
                requested = st.names.len(),
                held = ts.resources.len(),
                "ADS strict: request does not name every resource of the type; not answered"
            );
            st.watch = None;
            return Vec::new();
        }

        let mut chosen: Vec<&String> = if wildcard || env.behavior.unrequested_resources {
            ts.resources.keys().collect()
        } else {
            st.names
                .iter()
                .filter(|n| ts.resources.contains_key(*n))
                .collect()
        };
        if env.behavior.shuffle_resources {
            chosen.shuffle(&mut rand::rng());
        }
        if env.behavior.duplicate_resources
            && let Some(first) = chosen.first().copied()
        {
            chosen.push(first);
        }
        let names: Vec<String> = chosen.into_iter().cloned().collect();
        let resources = names
            .iter()
            .filter_map(|n| ts.resources.get(n).map(|r| r.any.clone()))
            .collect();
        let response = DiscoveryResponse {
            version_info: ts.version.clone(),
            resources,
            type_url: type_url.to_string(),
            nonce: env.nonce(),
            ..Default::default()
        };
        st.last_sent = Some(Sent {
            version: ts.version.clone(),
            nonce: response.nonce.clone(),
            names: names.iter().cloned().collect(),
        });
        st.watch = None;

        let origin = if resend {
            ResponseOrigin::Resend
        } else {
            ResponseOrigin::Snapshot
        };
        let mut out = vec![Outgoing {
            response,
            names,
            origin,
        }];
        if env.behavior.duplicate_responses {
            let mut copy = out[0].clone();
            copy.origin = ResponseOrigin::Duplicate;
            out.push(copy);
        }
        out
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

    /// Takes an injected response as the last one sent for its type, so the client's ACK/NACK of
    /// it is in sequence (not stale) and the normal rules decide what follows.
    pub(crate) fn note_raw(&mut self, response: &DiscoveryResponse, names: &[String]) {
        let st = self.types.entry(response.type_url.clone()).or_default();
        st.last_sent = Some(Sent {
            version: response.version_info.clone(),
            nonce: response.nonce.clone(),
            names: names.iter().cloned().collect(),
        });
        st.watch = None;
    }
}

/// Reads the name of a packed Envoy resource: field 1 is the name (`cluster_name` for a
/// `ClusterLoadAssignment`) in every xDS resource type, so no per-type decoding is needed.
pub(crate) fn resource_name(any: &envoy_types::pb::google::protobuf::Any) -> String {
    #[derive(Clone, PartialEq, prost::Message)]
    struct NameOnly {
        #[prost(string, tag = "1")]
        name: String,
    }
    <NameOnly as prost::Message>::decode(any.value.as_slice())
        .map(|n| n.name)
        .unwrap_or_default()
}

type Outbound = crate::stream_loop::Outbound<DiscoveryResponse>;

impl crate::stream_loop::StreamProtocol for SotwState {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;

    fn on_request(
        &mut self,
        shared: &Shared,
        id: u64,
        request: DiscoveryRequest,
        outbound: &Outbound,
    ) -> Result<(), tonic::Status> {
        on_request(shared, id, self, request, outbound)
    }

    fn on_change(&mut self, shared: &Shared, id: u64, outbound: &Outbound) {
        let out = with_env(shared, |env| self.respond_all(env));
        send(shared, id, outbound, out);
    }

    fn on_raw(&mut self, shared: &Shared, id: u64, command: StreamCommand, outbound: &Outbound) {
        if let StreamCommand::Raw(response) = command {
            let names: Vec<String> = response.resources.iter().map(resource_name).collect();
            self.note_raw(&response, &names);
            let out = Outgoing {
                response,
                names,
                origin: ResponseOrigin::Raw,
            };
            send(shared, id, outbound, vec![out]);
        }
    }
}

fn on_request(
    shared: &Shared,
    id: u64,
    state: &mut SotwState,
    req: DiscoveryRequest,
    outbound: &Outbound,
) -> Result<(), tonic::Status> {
    let class = state.on_request(&req);
    log_request(id, class, &req);
    let type_url = req.type_url.clone();
    shared.recorder.request(id, class, RequestBody::Sotw(req));
    if type_url.is_empty() {
        // go-control-plane ends an ADS stream whose request has no type URL.
        return Err(tonic::Status::invalid_argument(
            "type_url is required on an ADS stream",
        ));
    }
    if class != RequestClass::Stale {
        let out = with_env(shared, |env| state.respond(&type_url, env));
        send(shared, id, outbound, out);
    }
    Ok(())
}

fn log_request(id: u64, class: RequestClass, req: &DiscoveryRequest) {
    let ty = type_url::short_name(&req.type_url);
    match class {
        RequestClass::Ack => tracing::info!(
            stream = id, type_url = ty, version = %req.version_info, nonce = %req.response_nonce,
            "ACK"
        ),
        RequestClass::Nack => tracing::warn!(
            stream = id, type_url = ty, version = %req.version_info, nonce = %req.response_nonce,
            error = %req.error_detail.as_ref().map(|s| s.message.as_str()).unwrap_or_default(),
            "NACK"
        ),
        RequestClass::Stale => tracing::debug!(
            stream = id, type_url = ty, nonce = %req.response_nonce, "stale request ignored"
        ),
        RequestClass::Initial | RequestClass::Update => tracing::info!(
            stream = id, type_url = ty, version = %req.version_info, names = ?req.resource_names,
            node = req.node.as_ref().map(|n| n.id.as_str()),
            "request"
        ),
    }
}

fn send(shared: &Shared, id: u64, outbound: &Outbound, out: Vec<Outgoing>) {
    for o in out {
        tracing::debug!(
            stream = id,
            type_url = type_url::short_name(&o.response.type_url),
            version = %o.response.version_info,
            nonce = %o.response.nonce,
            resources = o.names.len(),
            origin = ?o.origin,
            "response"
        );
        shared.recorder.response(RecordedResponse {
            seq: 0,
            stream_id: id,
            at: std::time::Instant::now(),
            protocol: Protocol::Sotw,
            type_url: o.response.type_url.clone(),
            version: o.response.version_info.clone(),
            nonce: o.response.nonce.clone(),
            resource_names: o.names,
            removed: Vec::new(),
            origin: o.origin,
        });
        // A closed channel means the client is gone; the loop notices on its next turn.
        let _ = outbound.send(Ok(o.response));
    }
}

#[cfg(test)]
#[path = "sotw_tests.rs"]
mod tests;
