//! The validated configuration the client holds: what is live in the tables, what is warming,
//! and the EDS and RDS names that the live and warming resources need.
//!
//! Every method returns the table changes it implies, in make-before-break order; the caller
//! applies them as one publication.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment as ClaProto;
use outrider_model::{Cluster, ClusterLoadAssignment, ConfigSource, Listener, RouteConfiguration};
use outrider_tables::Change;

/// Envoy's default `initial_fetch_timeout`.
pub const DEFAULT_INITIAL_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A dynamic cluster or listener: the version in use, and a newer one waiting for its
/// dependencies. The old one keeps serving while the new one warms.
#[derive(Debug)]
struct Entry<T> {
    active: Option<Arc<T>>,
    warming: Option<Warming<T>>,
}

#[derive(Debug)]
struct Warming<T> {
    resource: Arc<T>,
    /// When `initial_fetch_timeout` ends the wait; `None` waits forever.
    deadline: Option<Instant>,
}

impl<T> Entry<T> {
    fn newest(&self) -> Option<&Arc<T>> {
        self.warming
            .as_ref()
            .map(|w| &w.resource)
            .or(self.active.as_ref())
    }
}

fn deadline(source: Option<&ConfigSource>, now: Instant) -> Option<Instant> {
    match source {
        Some(source) => source.initial_fetch_timeout.map(|t| now + t),
        None => Some(now + DEFAULT_INITIAL_FETCH_TIMEOUT),
    }
}

#[derive(Debug, Default)]
pub struct ConfigCache {
    static_clusters: BTreeMap<String, Arc<Cluster>>,
    static_listeners: BTreeMap<String, Arc<Listener>>,
    clusters: BTreeMap<String, Entry<Cluster>>,
    listeners: BTreeMap<String, Entry<Listener>>,
    endpoints: BTreeMap<String, (Arc<ClusterLoadAssignment>, String)>,
    routes: BTreeMap<String, Arc<RouteConfiguration>>,
    /// New clusters with active health checks, live in the tables (so the health checker sees
    /// their hosts) but still warming until their first round of checks is done (Envoy), or
    /// until the deadline (ours: a checker that never finishes must not hold listeners back).
    awaiting_health_checks: BTreeMap<String, Instant>,
}

impl ConfigCache {
    pub fn new(static_clusters: Vec<Arc<Cluster>>, static_listeners: Vec<Arc<Listener>>) -> Self {
        ConfigCache {
            static_clusters: static_clusters
                .into_iter()
                .map(|c| (c.name().to_string(), c))
                .collect(),
            static_listeners: static_listeners
                .into_iter()
                .map(|l| (l.name().to_string(), l))
                .collect(),
            ..ConfigCache::default()
        }
    }

    pub fn is_static_cluster(&self, name: &str) -> bool {
        self.static_clusters.contains_key(name)
    }

    pub fn is_static_listener(&self, name: &str) -> bool {
        self.static_listeners.contains_key(name)
    }

    pub fn cluster_is_warming(&self, name: &str) -> bool {
        self.clusters.get(name).is_some_and(|e| e.warming.is_some())
            || self.awaiting_health_checks.contains_key(name)
    }

    /// Live clusters whose first round of active health checks has not completed.
    pub fn awaiting_health_checks(&self) -> impl Iterator<Item = &String> {
        self.awaiting_health_checks.keys()
    }

    /// The first round of health checks of `name` is done: listeners waiting for it may go
    /// live at the next [`ConfigCache::settle`].
    pub fn health_checked(&mut self, name: &str) -> bool {
        self.awaiting_health_checks.remove(name).is_some()
    }

    pub fn listener_is_warming(&self, name: &str) -> bool {
        self.listeners
            .get(name)
            .is_some_and(|e| e.warming.is_some())
    }

    pub fn any_warming(&self) -> bool {
        self.clusters.values().any(|e| e.warming.is_some())
            || self.listeners.values().any(|e| e.warming.is_some())
            || !self.awaiting_health_checks.is_empty()
    }

    pub fn dynamic_cluster_names(&self) -> impl Iterator<Item = &String> {
        self.clusters.keys()
    }

    pub fn dynamic_listener_names(&self) -> impl Iterator<Item = &String> {
        self.listeners.keys()
    }

    pub fn has_endpoints(&self, name: &str) -> bool {
        self.endpoints.contains_key(name)
    }

    pub fn has_routes(&self, name: &str) -> bool {
        self.routes.contains_key(name)
    }

    /// A new or changed cluster. It goes live at once unless it needs endpoints we do not have.
    pub fn upsert_cluster(&mut self, cluster: Arc<Cluster>, now: Instant, out: &mut Vec<Change>) {
        let name = cluster.name().to_string();
        let entry = self.clusters.entry(name).or_insert(Entry {
            active: None,
            warming: None,
        });
        match cluster.eds_resource_name() {
            Some(eds) if !self.endpoints.contains_key(eds) => {
                let deadline = deadline(cluster.eds_config_source(), now);
                entry.warming = Some(Warming {
                    resource: cluster,
                    deadline,
                });
            }
            eds => {
                entry.warming = None;
                if entry.active.is_none() && !cluster.health_checks.is_empty() {
                    self.awaiting_health_checks.insert(
                        cluster.name().to_string(),
                        now + DEFAULT_INITIAL_FETCH_TIMEOUT,
                    );
                }
                entry.active = Some(cluster.clone());
                out.push(Change::UpsertCluster(cluster.clone()));
                if let Some((cla, version)) = eds.and_then(|n| self.endpoints.get(n)) {
                    out.push(Change::SetEndpoints {
                        cluster: cla.cluster_name().to_string(),
                        assignment: cla.clone(),
                        version: version.clone(),
                    });
                }
            }
        }
    }

    pub fn remove_cluster(&mut self, name: &str, out: &mut Vec<Change>) {
        self.awaiting_health_checks.remove(name);
        if let Some(entry) = self.clusters.remove(name)
            && entry.active.is_some()
        {
            out.push(Change::RemoveCluster(name.to_string()));
        }
    }

    /// A new or changed listener. It goes live at once unless it needs route configurations we do
    /// not have, or a cluster its routes use is known but still warming (make-before-break:
    /// traffic never reaches a route whose cluster cannot serve yet).
    pub fn upsert_listener(
        &mut self,
        listener: Arc<Listener>,
        now: Instant,
        out: &mut Vec<Change>,
    ) {
        let name = listener.name().to_string();
        let ready = self.listener_ready(&listener);
        let missing_routes: Vec<Option<Instant>> = listener
            .rds_dependencies()
            .filter(|(route, _)| !self.routes.contains_key(*route))
            .map(|(_, source)| deadline(Some(source), now))
            .collect();
        let entry = self.listeners.entry(name).or_insert(Entry {
            active: None,
            warming: None,
        });
        if ready {
            entry.warming = None;
            entry.active = Some(listener.clone());
            out.push(Change::UpsertListener(listener));
        } else {
            // Waiting for routes: warming ends at the latest of their timeouts, and never if
            // any of them waits forever. Waiting only for clusters: they have timeouts of their
            // own, and the listener follows them.
            let deadline = missing_routes
                .iter()
                .try_fold(None::<Instant>, |latest, d| {
                    d.map(|d| Some(latest.map_or(d, |l| l.max(d))))
                })
                .flatten();
            entry.warming = Some(Warming {
                resource: listener,
                deadline,
            });
        }
    }

    /// Every route configuration the listener names is here, and no cluster they (or the
    /// listener itself) use is still warming without a live version.
    fn listener_ready(&self, listener: &Listener) -> bool {
        let mut route_clusters = Vec::new();
        for (route, _) in listener.rds_dependencies() {
            match self.routes.get(route) {
                Some(routes) => route_clusters.push(routes),
                None => return false,
            }
        }
        let mut clusters = listener
            .direct_cluster_names()
            .chain(route_clusters.iter().flat_map(|r| r.cluster_names()));
        !clusters.any(|cluster| self.cluster_is_pending(cluster))
    }

    /// Known (from CDS) but with no version live yet, or new and not yet health-checked.
    fn cluster_is_pending(&self, name: &str) -> bool {
        self.awaiting_health_checks.contains_key(name)
            || self
                .clusters
                .get(name)
                .is_some_and(|e| e.active.is_none() && e.warming.is_some())
    }

    pub fn remove_listener(&mut self, name: &str, out: &mut Vec<Change>) {
        if let Some(entry) = self.listeners.remove(name)
            && entry.active.is_some()
        {
            out.push(Change::RemoveListener(name.to_string()));
        }
    }

    /// New endpoints for an EDS name: live clusters get them now; warming clusters waiting for
    /// them go live by [`ConfigCache::settle`].
    pub fn set_endpoints(
        &mut self,
        assignment: Arc<ClusterLoadAssignment>,
        version: String,
        out: &mut Vec<Change>,
    ) {
        let name = assignment.cluster_name().to_string();
        let used_live = self
            .live_clusters()
            .any(|c| c.eds_resource_name() == Some(name.as_str()));
        if used_live {
            out.push(Change::SetEndpoints {
                cluster: name.clone(),
                assignment: assignment.clone(),
                version: version.clone(),
            });
        }
        self.endpoints.insert(name, (assignment, version));
    }

    /// Endpoints the server says no longer exist (delta `removed_resources`): live clusters that
    /// used them are left with none, since the control plane no longer vouches for any.
    pub fn remove_endpoints(&mut self, name: &str, out: &mut Vec<Change>) {
        if self.endpoints.remove(name).is_none() {
            return;
        }
        let used_live = self
            .live_clusters()
            .any(|c| c.eds_resource_name() == Some(name));
        let empty = ClaProto {
            cluster_name: name.to_string(),
            ..ClaProto::default()
        };
        if used_live && let Ok(empty) = ClusterLoadAssignment::from_proto(&empty) {
            out.push(Change::SetEndpoints {
                cluster: name.to_string(),
                assignment: Arc::new(empty),
                version: String::new(),
            });
        }
    }

    /// Drops endpoints no cluster references any more; no live cluster uses them, so the tables
    /// do not change.
    pub fn forget_endpoints(&mut self, name: &str) {
        self.endpoints.remove(name);
    }

    pub fn set_routes(&mut self, routes: Arc<RouteConfiguration>, out: &mut Vec<Change>) {
        out.push(Change::UpsertRouteConfiguration(routes.clone()));
        self.routes.insert(routes.name().to_string(), routes);
    }

    pub fn remove_routes(&mut self, name: &str, out: &mut Vec<Change>) {
        if self.routes.remove(name).is_some() {
            out.push(Change::RemoveRouteConfiguration(name.to_string()));
        }
    }

    /// Brings live every warming resource whose dependencies have arrived or whose
    /// `initial_fetch_timeout` has passed. Returns the names brought live by a timeout, as
    /// (cluster names, listener names).
    pub fn settle(&mut self, now: Instant, out: &mut Vec<Change>) -> (Vec<String>, Vec<String>) {
        let mut timed_out = (Vec::new(), Vec::new());
        for (name, entry) in &mut self.clusters {
            let Some(warming) = &entry.warming else {
                continue;
            };
            let eds = warming.resource.eds_resource_name();
            let ready = eds.and_then(|n| self.endpoints.get(n));
            let expired = warming.deadline.is_some_and(|d| d <= now);
            if ready.is_none() && !expired {
                continue;
            }
            if ready.is_none() {
                timed_out.0.push(name.clone());
            }
            let cluster = warming.resource.clone();
            entry.warming = None;
            if entry.active.is_none() && !cluster.health_checks.is_empty() {
                self.awaiting_health_checks
                    .insert(name.clone(), now + DEFAULT_INITIAL_FETCH_TIMEOUT);
            }
            entry.active = Some(cluster.clone());
            out.push(Change::UpsertCluster(cluster));
            if let Some((cla, version)) = ready {
                out.push(Change::SetEndpoints {
                    cluster: cla.cluster_name().to_string(),
                    assignment: cla.clone(),
                    version: version.clone(),
                });
            }
        }
        self.awaiting_health_checks.retain(|name, deadline| {
            let waiting = *deadline > now;
            if !waiting {
                tracing::warn!(cluster = %name, "first round of health checks not done in time; cluster counts as warm");
            }
            waiting
        });
        // Clusters first: a listener may be waiting for one of them.
        let waiting: Vec<(String, Arc<Listener>, Option<Instant>)> = self
            .listeners
            .iter()
            .filter_map(|(name, entry)| {
                let w = entry.warming.as_ref()?;
                Some((name.clone(), w.resource.clone(), w.deadline))
            })
            .collect();
        for (name, listener, deadline) in waiting {
            let ready = self.listener_ready(&listener);
            let expired = deadline.is_some_and(|d| d <= now);
            if !ready && !expired {
                continue;
            }
            if !ready {
                timed_out.1.push(name.clone());
            }
            if let Some(entry) = self.listeners.get_mut(&name) {
                entry.warming = None;
                entry.active = Some(listener.clone());
            }
            out.push(Change::UpsertListener(listener));
        }
        timed_out
    }

    /// The earliest warming deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        let clusters = self.clusters.values().filter_map(|e| e.warming.as_ref());
        let listeners = self.listeners.values().filter_map(|e| e.warming.as_ref());
        clusters
            .map(|w| w.deadline)
            .chain(listeners.map(|w| w.deadline))
            .flatten()
            .chain(self.awaiting_health_checks.values().copied())
            .min()
    }

    fn live_clusters(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.static_clusters
            .values()
            .chain(self.clusters.values().filter_map(|e| e.active.as_ref()))
    }

    /// Every EDS name referenced by a static, live or warming cluster.
    pub fn eds_names(&self) -> BTreeSet<String> {
        let dynamic = self.clusters.values().flat_map(|e| {
            let active = e.active.as_ref();
            let warming = e.warming.as_ref().map(|w| &w.resource);
            active.into_iter().chain(warming)
        });
        self.static_clusters
            .values()
            .chain(dynamic)
            .filter_map(|c| c.eds_resource_name().map(str::to_string))
            .collect()
    }

    /// Every RDS name referenced by a static, live or warming listener.
    pub fn rds_names(&self) -> BTreeSet<String> {
        let dynamic = self.listeners.values().flat_map(|e| {
            let active = e.active.as_ref();
            let warming = e.warming.as_ref().map(|w| &w.resource);
            active.into_iter().chain(warming)
        });
        self.static_listeners
            .values()
            .chain(dynamic)
            .flat_map(|l| l.rds_dependencies().map(|(name, _)| name.to_string()))
            .collect()
    }

    /// The newest version of a dynamic cluster (warming or live), for tests and diagnostics.
    pub fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.get(name).and_then(Entry::newest)
    }
}
