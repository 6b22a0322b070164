//! The ADS protocol as a state machine that does no I/O.
//!
//! Inputs: the stream connected or ended, a response arrived, time passed. Outputs ([`Step`]):
//! table changes to publish and requests to send, in that order, so a response is ACKed only
//! once what it brought is live. The same machine speaks state-of-the-world and delta; what
//! differs is how responses are read and requests written.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use outrider_model::{Cluster, ConfigSource, Listener};
use outrider_tables::Change;

use crate::ResourceType;
use crate::config_cache::ConfigCache;
use crate::status::{ClientStatus, LiveVersion, ResourceRecord, ResourceStatus, UpdateFailure};
use crate::subscription::Subscription;
use crate::validate::{Decoded, Validated};

/// How long a subscribed resource may stay unanswered on a connected stream before it is
/// marked DOES_NOT_EXIST (Envoy's and gRPC's 15 s).
pub const DOES_NOT_EXIST_TIMEOUT: Duration = Duration::from_secs(15);

/// What the client subscribes to and announces.
#[derive(Debug, Clone)]
pub struct AdsConfig {
    /// Sent whole on every request, or on each stream's first only (below).
    pub node: Node,
    /// `ads_config.set_node_on_first_message_only`: the node goes on the first request of each
    /// stream only. Envoy's default (false) sends it on every request.
    pub node_on_first_request_only: bool,
    /// Incremental (delta) xDS instead of state-of-the-world.
    pub delta: bool,
    /// `dynamic_resources.lds_config`, when LDS comes over ADS.
    pub lds: Option<ConfigSource>,
    /// `dynamic_resources.cds_config`, when CDS comes over ADS.
    pub cds: Option<ConfigSource>,
    /// Shown as the stream's server in the admin interface.
    pub server: String,
}

/// A request for the driver to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Sotw(DiscoveryRequest),
    Delta(DeltaDiscoveryRequest),
}

/// The effects of one input: publish `changes` (as one update), then send `requests` in order.
#[derive(Debug, Default)]
pub struct Step {
    pub changes: Vec<Change>,
    pub requests: Vec<Outbound>,
}

/// A clock reading: monotonic for timers, wall time for what operators see.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub instant: Instant,
    pub wall: SystemTime,
}

impl Now {
    pub fn real() -> Self {
        Now {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// One resource of a response, decoded, about to be applied.
struct Incoming {
    name: String,
    version: String,
    any: Any,
    decoded: Decoded,
}

pub struct AdsState {
    config: AdsConfig,
    subscriptions: BTreeMap<ResourceType, Subscription>,
    cache: ConfigCache,
    status: ClientStatus,
    /// A hash of the bytes of every resource in use, to skip validating an unchanged resource
    /// that a state-of-the-world response repeats.
    in_use: HashMap<(ResourceType, String), u64>,
    /// Does-not-exist timers for named resources subscribed on the connected stream.
    does_not_exist: BTreeMap<(ResourceType, String), Instant>,
    connected: bool,
    node_sent: bool,
    /// The SotW type whose response is being applied: its subscription changes go in that
    /// response's ACK (which carries the names), not in a request of their own that would
    /// carry the old version and error.
    answering: Option<ResourceType>,
}

impl AdsState {
    pub fn new(
        config: AdsConfig,
        static_clusters: Vec<Arc<Cluster>>,
        static_listeners: Vec<Arc<Listener>>,
        now: Now,
    ) -> Self {
        let mut subscriptions = BTreeMap::new();
        for (kind, source) in [
            (ResourceType::Cluster, &config.cds),
            (ResourceType::Listener, &config.lds),
        ] {
            if let Some(source) = source {
                let deadline = source.initial_fetch_timeout.map(|t| now.instant + t);
                subscriptions.insert(kind, Subscription::new(kind, deadline));
            }
        }
        for kind in [
            ResourceType::ClusterLoadAssignment,
            ResourceType::RouteConfiguration,
        ] {
            subscriptions.insert(kind, Subscription::new(kind, None));
        }
        let status = ClientStatus {
            stream: crate::StreamStatus {
                server: config.server.clone(),
                delta: config.delta,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut state = AdsState {
            config,
            subscriptions,
            cache: ConfigCache::new(static_clusters, static_listeners),
            status,
            in_use: HashMap::new(),
            does_not_exist: BTreeMap::new(),
            connected: false,
            node_sent: false,
            answering: None,
        };
        // Static clusters and listeners may need EDS and RDS; nothing is sent until connected.
        let mut step = Step::default();
        state.resubscribe(ResourceType::ClusterLoadAssignment, now, &mut step);
        state.resubscribe(ResourceType::RouteConfiguration, now, &mut step);
        state.update_initialized();
        state
    }

    /// The client's status for the admin interface.
    pub fn status(&self) -> &ClientStatus {
        &self.status
    }

    pub fn is_delta(&self) -> bool {
        self.config.delta
    }

    /// A new stream is open: send the node and every subscription, with what we already have
    /// (the last accepted SotW version; delta's `initial_resource_versions`).
    pub fn on_connected(&mut self, now: Now) -> Step {
        self.connected = true;
        self.node_sent = false;
        self.status.stream.connected = true;
        self.status.stream.streams_opened += 1;
        let mut step = Step::default();
        let kinds: Vec<ResourceType> = self.subscriptions.keys().copied().collect();
        for sub in self.subscriptions.values_mut() {
            sub.reset_stream();
        }
        for kind in kinds {
            if self.subscriptions[&kind].wants_anything() {
                self.send_subscription(kind, now, &mut step);
            }
        }
        step
    }

    /// The stream ended: keep serving what we have, forget the stream's nonces and timers.
    pub fn on_disconnected(&mut self, error: String) {
        self.connected = false;
        self.status.stream.connected = false;
        self.status.stream.last_error = Some(error);
        // Does-not-exist timers only run on a connected stream.
        self.does_not_exist.clear();
        for sub in self.subscriptions.values_mut() {
            sub.reset_stream();
        }
    }

    /// The earliest time at which [`AdsState::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let nacks = self
            .subscriptions
            .values()
            .filter_map(|s| s.pending_nack.as_ref().map(|(at, _)| *at));
        let initial = self
            .subscriptions
            .values()
            .filter(|s| !s.answered)
            .filter_map(|s| s.initial_deadline);
        nacks
            .chain(initial)
            .chain(self.does_not_exist.values().copied())
            .chain(self.cache.next_deadline())
            .min()
    }

    /// Time passed: send held-back NACKs, expire does-not-exist and initial-fetch timers.
    pub fn on_timer(&mut self, now: Now) -> Step {
        let mut step = Step::default();
        for sub in self.subscriptions.values_mut() {
            if sub
                .pending_nack
                .as_ref()
                .is_some_and(|(at, _)| *at <= now.instant)
                && let Some((_, request)) = sub.pending_nack.take()
            {
                step.requests.push(request);
            }
            if !sub.answered && sub.initial_deadline.is_some_and(|d| d <= now.instant) {
                tracing::warn!(kind = %sub.kind, "initial fetch timed out; continuing without it");
                sub.answered = true;
            }
        }
        let expired: Vec<(ResourceType, String)> = self
            .does_not_exist
            .iter()
            .filter(|(_, at)| **at <= now.instant)
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            self.does_not_exist.remove(&key);
            if let Some(record) = self.record_mut(key.0, &key.1)
                && record.status == ResourceStatus::Requested
            {
                tracing::warn!(kind = %key.0, name = %key.1, "resource does not exist");
                record.status = ResourceStatus::DoesNotExist;
            }
        }
        self.settle(now, &mut step);
        self.update_initialized();
        step
    }

    /// A state-of-the-world response.
    pub fn on_sotw_response(&mut self, response: DiscoveryResponse, now: Now) -> Step {
        let mut step = Step::default();
        let hash = hash_sotw(&response);
        let Some(kind) = self.begin_response(
            &response.type_url,
            &response.nonce,
            Some(&response.version_info),
            hash,
            now,
            &mut step,
        ) else {
            return step;
        };

        let mut errors = Vec::new();
        let mut incoming = Vec::new();
        let mut seen = HashSet::new();
        let mut duplicate = None;
        for (index, any) in response.resources.iter().enumerate() {
            let decoded = match Decoded::decode(kind, any) {
                Ok(decoded) => decoded,
                Err(reason) => {
                    errors.push(format!("resources[{index}]: {reason}"));
                    continue;
                }
            };
            let name = decoded.name().to_string();
            if !seen.insert(name.clone()) {
                duplicate.get_or_insert(name);
                continue;
            }
            // Resources we did not ask for are ignored (xDS protocol, "Resource Warming").
            if !kind.is_wildcard() && !self.subscriptions[&kind].names.contains(&name) {
                continue;
            }
            incoming.push(Incoming {
                name,
                version: response.version_info.clone(),
                any: any.clone(),
                decoded,
            });
        }
        if let Some(name) = duplicate {
            // Nothing of a response that names a resource twice is applied.
            errors = vec![format!("{name}: duplicate resource name in one response")];
        } else {
            // In SotW a wildcard response is the whole set: what it lacks is gone. When a
            // resource could not even be decoded we cannot tell what it was, so remove nothing.
            let removed: Vec<String> = if kind.is_wildcard() && errors.is_empty() {
                self.dynamic_names(kind)
                    .filter(|name| !seen.contains(*name))
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            self.answering = Some(kind);
            let rejected = self.apply(kind, incoming, &removed, now, &mut step);
            self.answering = None;
            errors.extend(
                rejected
                    .into_iter()
                    .map(|(name, why)| format!("{name}: {why}")),
            );
        }

        self.status.count_update(kind, errors.is_empty());
        let sub = self.subscription(kind);
        if errors.is_empty() {
            sub.version = response.version_info.clone();
            sub.accepted();
            self.status
                .type_versions
                .insert(kind, response.version_info.clone());
        } else {
            tracing::warn!(%kind, version = %response.version_info, errors = %errors.join("; "), "rejecting xDS response");
            sub.rejected(hash, &errors);
        }
        let ack = self.sotw_request(kind);
        step.requests.insert(0, ack);
        self.update_initialized();
        step
    }

    /// New clusters whose first round of active health checks the driver must wait for.
    pub fn awaiting_health_checks(&self) -> impl Iterator<Item = &String> {
        self.cache.awaiting_health_checks()
    }

    /// The first round of active health checks of cluster `name` is done (or the cluster is
    /// gone): it is warm, and listeners waiting for it may go live.
    pub fn on_health_checked(&mut self, name: &str, now: Now) -> Step {
        let mut step = Step::default();
        if self.cache.health_checked(name) {
            self.settle(now, &mut step);
            self.update_initialized();
        }
        step
    }

    /// An incremental (delta) response.
    pub fn on_delta_response(&mut self, response: DeltaDiscoveryResponse, now: Now) -> Step {
        let mut step = Step::default();
        let hash = hash_delta(&response);
        let Some(kind) = self.begin_response(
            &response.type_url,
            &response.nonce,
            None,
            hash,
            now,
            &mut step,
        ) else {
            return step;
        };

        let mut errors = Vec::new();
        let mut incoming = Vec::new();
        let mut seen = HashSet::new();
        let mut duplicate = None;
        for resource in &response.resources {
            let name = resource.name.clone();
            if !seen.insert(name.clone()) {
                duplicate.get_or_insert(name);
                continue;
            }
            // A resource without a body only refreshes its TTL.
            let Some(any) = &resource.resource else {
                continue;
            };
            if !kind.is_wildcard() && !self.subscriptions[&kind].names.contains(&name) {
                continue;
            }
            let decoded = match Decoded::decode(kind, any) {
                Ok(decoded) if decoded.name() == name => decoded,
                Ok(decoded) => {
                    errors.push(format!(
                        "{name}: the resource inside is named {:?}",
                        decoded.name()
                    ));
                    continue;
                }
                Err(reason) => {
                    errors.push(format!("{name}: {reason}"));
                    continue;
                }
            };
            incoming.push(Incoming {
                name,
                version: resource.version.clone(),
                any: any.clone(),
                decoded,
            });
        }
        if let Some(name) = duplicate {
            errors = vec![format!("{name}: duplicate resource name in one response")];
        } else {
            let mut removed: Vec<String> = response.removed_resources.clone();
            removed.extend(
                response
                    .removed_resource_names
                    .iter()
                    .map(|r| r.name.clone()),
            );
            let versions: Vec<(String, String)> = incoming
                .iter()
                .map(|i| (i.name.clone(), i.version.clone()))
                .collect();
            let rejected = self.apply(kind, incoming, &removed, now, &mut step);
            let sub = self.subscription(kind);
            for (name, version) in versions {
                // NACKed resources are not recorded as known, so a reconnect asks for them again.
                if !rejected.iter().any(|(n, _)| *n == name) {
                    sub.known.insert(name, version);
                }
            }
            for name in &removed {
                sub.known.remove(name);
            }
            errors.extend(
                rejected
                    .into_iter()
                    .map(|(name, why)| format!("{name}: {why}")),
            );
        }

        self.status.count_update(kind, errors.is_empty());
        let sub = self.subscription(kind);
        if errors.is_empty() {
            sub.accepted();
            self.status
                .type_versions
                .insert(kind, response.system_version_info.clone());
        } else {
            tracing::warn!(%kind, errors = %errors.join("; "), "rejecting delta xDS response");
            sub.rejected(hash, &errors);
        }
        let ack = self.delta_ack(kind);
        step.requests.insert(0, ack);
        self.update_initialized();
        step
    }

    /// Takes in a response's type, nonce and (SotW) version. `None` when there is nothing more
    /// to do with it: a type we do not subscribe to (ignored), a type nothing references now
    /// (ACKed in `step`), or the same response we just rejected, sent again (its NACK is held
    /// back, longer each time, so the two sides cannot busy-loop).
    fn begin_response(
        &mut self,
        type_url: &str,
        nonce: &str,
        version: Option<&str>,
        hash: u64,
        now: Now,
        step: &mut Step,
    ) -> Option<ResourceType> {
        self.status.stream.last_response = Some(now.wall);
        let Some(kind) = ResourceType::from_type_url(type_url) else {
            tracing::warn!(type_url, "ignoring a response of an unknown type");
            return None;
        };
        let Some(sub) = self.subscriptions.get_mut(&kind) else {
            tracing::warn!(type_url, "ignoring a response of a type not subscribed to");
            return None;
        };
        // Whatever becomes of the response, its nonce is now the latest of its type: the next
        // request must carry it, or a server that ignores stale nonces (go-control-plane)
        // ignores that request and the subscription stalls. An answer held back for an older
        // response is superseded.
        sub.nonce = nonce.to_string();
        sub.pending_nack = None;
        if !sub.wants_anything() {
            // Nothing references this type now (say every cluster went in an empty snapshot),
            // yet a server that reads our empty name list as a wildcard answers it. Nothing to
            // apply; the response is ACKed, so the server holds its next one until the type
            // changes. (Envoy answers one with resources with a request that repeats the old
            // version, which such a server answers at once, again and again.)
            sub.error = None;
            if let Some(version) = version {
                sub.version = version.to_string();
            }
            tracing::debug!(%kind, "ACKing a response for a type nothing references now");
            let ack = if self.config.delta {
                self.delta_ack(kind)
            } else {
                self.sotw_request(kind)
            };
            step.requests.push(ack);
            return None;
        }
        sub.answered = true;
        if sub.rejected != Some(hash) {
            return Some(kind);
        }
        let delay = sub.repeat_nack_delay();
        let request = if self.config.delta {
            self.delta_ack(kind)
        } else {
            self.sotw_request(kind)
        };
        self.subscription(kind).pending_nack = Some((now.instant + delay, request));
        None
    }

    /// Applies the valid resources of a response and removals; returns the rejected ones.
    fn apply(
        &mut self,
        kind: ResourceType,
        incoming: Vec<Incoming>,
        removed: &[String],
        now: Now,
        step: &mut Step,
    ) -> Vec<(String, String)> {
        let mut rejected = Vec::new();
        for resource in incoming {
            let key = (kind, resource.name);
            let hash = hash_bytes(&resource.any.value);
            if self.in_use.get(&key) == Some(&hash) {
                // Unchanged: nothing to validate or publish. If a newer version had been
                // rejected, the server is back on the one in use.
                if let Some(record) = self.record_mut(kind, &key.1)
                    && record.status == ResourceStatus::Nacked
                {
                    record.status = ResourceStatus::Acked;
                    record.error = None;
                }
                continue;
            }
            let validated = self.validate(kind, &key.1, &resource.decoded);
            let record = self
                .status
                .resources
                .entry(kind)
                .or_default()
                .entry(key.1.clone())
                .or_insert_with(ResourceRecord::requested);
            match validated {
                Err(reason) => {
                    record.status = ResourceStatus::Nacked;
                    record.error = Some(UpdateFailure {
                        failed: Some(resource.any),
                        version: resource.version,
                        reason: reason.clone(),
                        time: now.wall,
                    });
                    rejected.push((key.1, reason));
                    continue;
                }
                Ok(validated) => {
                    // If this version has to warm, the one in use now keeps serving.
                    let live = match (record.warming, record.resource.take()) {
                        (false, Some(resource)) => Some(LiveVersion {
                            version: std::mem::take(&mut record.version),
                            resource,
                            last_updated: record.last_updated,
                        }),
                        _ => record.live.take(),
                    };
                    *record = ResourceRecord {
                        status: ResourceStatus::Acked,
                        version: resource.version.clone(),
                        resource: Some(resource.any),
                        last_updated: Some(now.wall),
                        warming: false,
                        live,
                        error: None,
                    };
                    self.does_not_exist.remove(&key);
                    self.in_use.insert(key, hash);
                    self.cache_upsert(validated, resource.version, now, step);
                }
            }
        }
        for name in removed {
            self.remove(kind, name, step);
        }
        self.settle(now, step);
        match kind {
            ResourceType::Cluster => {
                self.resubscribe(ResourceType::ClusterLoadAssignment, now, step)
            }
            ResourceType::Listener => self.resubscribe(ResourceType::RouteConfiguration, now, step),
            _ => {}
        }
        rejected
    }

    fn validate(
        &self,
        kind: ResourceType,
        name: &str,
        decoded: &Decoded,
    ) -> Result<Validated, String> {
        // Envoy refuses a dynamic cluster or listener that would replace a static one.
        let is_static = match kind {
            ResourceType::Cluster => self.cache.is_static_cluster(name),
            ResourceType::Listener => self.cache.is_static_listener(name),
            _ => false,
        };
        if is_static {
            return Err(format!(
                "a static {} of this name exists and cannot be replaced over xDS",
                if kind == ResourceType::Cluster {
                    "cluster"
                } else {
                    "listener"
                }
            ));
        }
        decoded.validate()
    }

    fn cache_upsert(&mut self, validated: Validated, version: String, now: Now, step: &mut Step) {
        match validated {
            Validated::Cluster(c) => self.cache.upsert_cluster(c, now.instant, &mut step.changes),
            Validated::Endpoints(e) => self.cache.set_endpoints(e, version, &mut step.changes),
            Validated::Listener(l) => self
                .cache
                .upsert_listener(l, now.instant, &mut step.changes),
            Validated::Routes(r) => self.cache.set_routes(r, &mut step.changes),
        }
    }

    /// A resource the server removed (SotW: missing from a wildcard response; delta:
    /// `removed_resources`).
    fn remove(&mut self, kind: ResourceType, name: &str, step: &mut Step) {
        self.in_use.remove(&(kind, name.to_string()));
        match kind {
            ResourceType::Cluster => self.cache.remove_cluster(name, &mut step.changes),
            ResourceType::Listener => self.cache.remove_listener(name, &mut step.changes),
            ResourceType::ClusterLoadAssignment => {
                self.cache.remove_endpoints(name, &mut step.changes)
            }
            ResourceType::RouteConfiguration => self.cache.remove_routes(name, &mut step.changes),
        }
        if kind.is_wildcard() {
            if let Some(records) = self.status.resources.get_mut(&kind) {
                records.remove(name);
            }
        } else if let Some(record) = self.record_mut(kind, name) {
            // Still subscribed: the server says it does not exist.
            *record = ResourceRecord {
                status: ResourceStatus::DoesNotExist,
                ..ResourceRecord::requested()
            };
        }
    }

    /// Brings warming resources live when they can be, and keeps the records' warming flags
    /// and the initial-fetch timeouts of their dependencies in step.
    fn settle(&mut self, now: Now, step: &mut Step) {
        let before = step.changes.len();
        let (clusters_timed_out, listeners_timed_out) =
            self.cache.settle(now.instant, &mut step.changes);
        if step.changes.len() > before {
            // A warmed update no longer needs what the version it replaced referenced.
            self.resubscribe(ResourceType::ClusterLoadAssignment, now, step);
            self.resubscribe(ResourceType::RouteConfiguration, now, step);
        }
        for name in &clusters_timed_out {
            tracing::warn!(cluster = %name, "no endpoints within initial_fetch_timeout; cluster is live without them");
            if let Some(eds) = self.cache.cluster(name).and_then(|c| c.eds_resource_name()) {
                let eds = eds.to_string();
                self.mark_timeout(ResourceType::ClusterLoadAssignment, &eds);
            }
        }
        for name in &listeners_timed_out {
            tracing::warn!(listener = %name, "no routes within initial_fetch_timeout; listener is live without them");
        }
        if !listeners_timed_out.is_empty() {
            let missing: Vec<String> = self
                .cache
                .rds_names()
                .into_iter()
                .filter(|n| !self.cache.has_routes(n))
                .collect();
            for name in missing {
                self.mark_timeout(ResourceType::RouteConfiguration, &name);
            }
        }
        for kind in [ResourceType::Cluster, ResourceType::Listener] {
            let warming: Vec<(String, bool)> = self
                .status
                .records(kind)
                .map(|(name, _)| {
                    let warming = match kind {
                        ResourceType::Cluster => self.cache.cluster_is_warming(name),
                        _ => self.cache.listener_is_warming(name),
                    };
                    (name.clone(), warming)
                })
                .collect();
            for (name, warming) in warming {
                if let Some(record) = self.record_mut(kind, &name) {
                    record.warming = warming;
                    if !warming {
                        record.live = None;
                    }
                }
            }
        }
    }

    fn mark_timeout(&mut self, kind: ResourceType, name: &str) {
        if let Some(record) = self.record_mut(kind, name)
            && record.status == ResourceStatus::Requested
        {
            record.status = ResourceStatus::Timeout;
        }
    }

    /// Makes the EDS or RDS subscription equal to the names the configuration references, and
    /// tells the server if that changed.
    fn resubscribe(&mut self, kind: ResourceType, now: Now, step: &mut Step) {
        let wanted: BTreeSet<String> = match kind {
            ResourceType::ClusterLoadAssignment => self.cache.eds_names(),
            ResourceType::RouteConfiguration => self.cache.rds_names(),
            _ => return,
        };
        let sub = self.subscription(kind);
        if sub.names == wanted {
            return;
        }
        let dropped: Vec<String> = sub.names.difference(&wanted).cloned().collect();
        let added: Vec<String> = wanted.difference(&sub.names).cloned().collect();
        sub.names = wanted;
        // A rejected response was judged against the old names (unrequested resources are
        // ignored): the same one again may now be judged differently.
        sub.rejected = None;
        for name in &dropped {
            sub.known.remove(name);
        }
        for name in dropped {
            // No longer referenced: drop it (the last step of make-before-break).
            let key = (kind, name);
            self.in_use.remove(&key);
            self.does_not_exist.remove(&key);
            if let Some(records) = self.status.resources.get_mut(&kind) {
                records.remove(&key.1);
            }
            match kind {
                ResourceType::RouteConfiguration => {
                    self.cache.remove_routes(&key.1, &mut step.changes)
                }
                _ => self.cache.forget_endpoints(&key.1),
            }
        }
        for name in added {
            self.status
                .resources
                .entry(kind)
                .or_default()
                .entry(name)
                .or_insert_with(ResourceRecord::requested);
        }
        if self.connected {
            self.send_subscription(kind, now, step);
        }
    }

    /// Sends the current subscription of a type on the connected stream, and starts the
    /// does-not-exist timer of every name not received yet.
    fn send_subscription(&mut self, kind: ResourceType, now: Now, step: &mut Step) {
        let request = if self.config.delta {
            self.delta_subscription(kind)
        } else if self.answering == Some(kind) {
            // The ACK of the response being applied carries the new names.
            None
        } else {
            let sub = &self.subscriptions[&kind];
            // An empty SotW name list reads as a wildcard: say nothing until there is a name,
            // but do tell a server that already has names that we want none now.
            if !sub.wants_anything() && sub.sent_names.as_ref().is_none_or(BTreeSet::is_empty) {
                None
            } else {
                Some(self.sotw_request(kind))
            }
        };
        match request {
            Some(request) => step.requests.push(request),
            // The ACK will say it: the names still start their timers now.
            None if self.answering == Some(kind) => {}
            None => return,
        }
        let missing: Vec<String> = self.subscriptions[&kind]
            .names
            .iter()
            .filter(|name| !self.is_cached(kind, name))
            .cloned()
            .collect();
        for name in missing {
            self.does_not_exist
                .entry((kind, name))
                .or_insert(now.instant + DOES_NOT_EXIST_TIMEOUT);
        }
    }

    fn is_cached(&self, kind: ResourceType, name: &str) -> bool {
        match kind {
            ResourceType::ClusterLoadAssignment => self.cache.has_endpoints(name),
            ResourceType::RouteConfiguration => self.cache.has_routes(name),
            _ => true,
        }
    }

    /// A SotW request: the full name list, the last accepted version, the latest nonce and, if
    /// the response of that nonce was rejected, why.
    fn sotw_request(&mut self, kind: ResourceType) -> Outbound {
        let node = self.take_node();
        let sub = self.subscription(kind);
        sub.sent_names = Some(sub.names.clone());
        // This request carries the latest nonce and its error: it is the answer a held-back
        // NACK would have been, so that one is not sent as well.
        sub.pending_nack = None;
        Outbound::Sotw(DiscoveryRequest {
            version_info: sub.version.clone(),
            node,
            resource_names: sub.names.iter().cloned().collect(),
            type_url: kind.type_url().to_string(),
            response_nonce: sub.nonce.clone(),
            error_detail: sub.error.clone(),
            ..Default::default()
        })
    }

    /// A delta ACK or NACK: the nonce, and why if rejected.
    fn delta_ack(&mut self, kind: ResourceType) -> Outbound {
        let node = self.take_node();
        let sub = self.subscription(kind);
        Outbound::Delta(DeltaDiscoveryRequest {
            node,
            type_url: kind.type_url().to_string(),
            response_nonce: sub.nonce.clone(),
            error_detail: sub.error.clone(),
            ..Default::default()
        })
    }

    /// A delta subscription change, or the first request of a type on a stream (with
    /// `initial_resource_versions`). `None` when nothing changed.
    fn delta_subscription(&mut self, kind: ResourceType) -> Option<Outbound> {
        let node = self.take_node();
        let sub = self.subscription(kind);
        let request = match &sub.sent_names {
            None => DeltaDiscoveryRequest {
                node,
                type_url: kind.type_url().to_string(),
                // Wildcard types subscribe with an empty list, which every server reads as
                // wildcard on a type's first request.
                resource_names_subscribe: sub.names.iter().cloned().collect(),
                initial_resource_versions: sub
                    .known
                    .iter()
                    .filter(|(name, _)| kind.is_wildcard() || sub.names.contains(*name))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect(),
                ..Default::default()
            },
            Some(sent) => {
                let subscribe: Vec<String> = sub.names.difference(sent).cloned().collect();
                let unsubscribe: Vec<String> = sent.difference(&sub.names).cloned().collect();
                if subscribe.is_empty() && unsubscribe.is_empty() {
                    return None;
                }
                // A subscription change on its own carries no nonce.
                DeltaDiscoveryRequest {
                    node,
                    type_url: kind.type_url().to_string(),
                    resource_names_subscribe: subscribe,
                    resource_names_unsubscribe: unsubscribe,
                    ..Default::default()
                }
            }
        };
        sub.sent_names = Some(sub.names.clone());
        Some(Outbound::Delta(request))
    }

    /// The node for the next request: on every request (Envoy's default), or on the first of
    /// each stream only when `set_node_on_first_message_only` says so.
    fn take_node(&mut self) -> Option<Node> {
        if self.node_sent && self.config.node_on_first_request_only {
            return None;
        }
        self.node_sent = true;
        Some(self.config.node.clone())
    }

    fn update_initialized(&mut self) {
        if self.status.initialized {
            return;
        }
        let answered = self
            .subscriptions
            .values()
            .filter(|s| s.kind.is_wildcard())
            .all(|s| s.answered);
        if answered && !self.cache.any_warming() {
            tracing::info!("initial configuration is in");
            self.status.initialized = true;
        }
    }

    fn dynamic_names(&self, kind: ResourceType) -> Box<dyn Iterator<Item = &String> + '_> {
        match kind {
            ResourceType::Cluster => Box::new(self.cache.dynamic_cluster_names()),
            ResourceType::Listener => Box::new(self.cache.dynamic_listener_names()),
            _ => Box::new(std::iter::empty()),
        }
    }

    fn subscription(&mut self, kind: ResourceType) -> &mut Subscription {
        self.subscriptions
            .entry(kind)
            .or_insert_with(|| Subscription::new(kind, None))
    }

    fn record_mut(&mut self, kind: ResourceType, name: &str) -> Option<&mut ResourceRecord> {
        self.status.resources.get_mut(&kind)?.get_mut(name)
    }
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// What decides the outcome of a state-of-the-world response, as a hash: its version and the
/// set of its resources, whatever their order (go-control-plane builds each response from a Go
/// map, so a re-sent version comes in a new order every time), and whether any resource is in
/// it twice (which rejects the whole response, whichever one it is).
fn hash_sotw(response: &DiscoveryResponse) -> u64 {
    let resources = response.resources.iter().map(|any| {
        let mut hasher = DefaultHasher::new();
        any.type_url.hash(&mut hasher);
        any.value.hash(&mut hasher);
        hasher.finish()
    });
    hash_unordered(&response.version_info, resources, &[])
}

/// The same for a delta response: the set of its resources (name, version, body) and of its
/// removals, in any order. `system_version_info` is for debugging only and decides nothing.
fn hash_delta(response: &DeltaDiscoveryResponse) -> u64 {
    let resources = response.resources.iter().map(|resource| {
        let mut hasher = DefaultHasher::new();
        resource.name.hash(&mut hasher);
        resource.version.hash(&mut hasher);
        resource
            .resource
            .as_ref()
            .map(|any| &any.value)
            .hash(&mut hasher);
        hasher.finish()
    });
    let removed: Vec<&str> = response
        .removed_resources
        .iter()
        .map(String::as_str)
        .chain(
            response
                .removed_resource_names
                .iter()
                .map(|r| r.name.as_str()),
        )
        .collect();
    hash_unordered("", resources, &removed)
}

/// Hashes a version, a set of item hashes and a set of removed names, independent of order;
/// items seen twice count once, plus one flag that some item was repeated.
fn hash_unordered(version: &str, items: impl Iterator<Item = u64>, removed: &[&str]) -> u64 {
    let mut items: Vec<u64> = items.collect();
    items.sort_unstable();
    let count = items.len();
    items.dedup();
    let repeated = items.len() != count;
    let mut removed = removed.to_vec();
    removed.sort_unstable();
    removed.dedup();
    let mut hasher = DefaultHasher::new();
    version.hash(&mut hasher);
    items.hash(&mut hasher);
    repeated.hash(&mut hasher);
    removed.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests;
