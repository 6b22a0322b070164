//! `Snapshot`: one immutable, consistent view of listeners, route configurations and clusters
//! (with their endpoints), in persistent maps so a new snapshot shares all unchanged parts.

use std::sync::Arc;
use std::time::SystemTime;

use outrider_model::{
    Cluster, ClusterLoadAssignment, Discovery, EndpointAddress, Listener, RouteConfiguration,
};

use crate::change::Change;
use crate::cluster_state::ClusterState;
use crate::endpoint_set::{EndpointSet, NewEndpointPolicy};
use crate::endpoint_state::{EndpointState, HealthFlags};
use crate::lb_tables::LbTables;

/// A cluster with its current endpoints. A new `ClusterEntry` is published whenever the
/// cluster's config or endpoints change, so its pointer identifies that pair.
#[derive(Debug)]
pub struct ClusterEntry {
    pub config: Arc<Cluster>,
    pub endpoints: Arc<EndpointSet>,
    /// Shared by every entry of this cluster name since it was added (kept across
    /// `UpsertCluster` and EDS updates; a removed and re-added cluster starts afresh, as Envoy's
    /// stats do).
    pub state: Arc<ClusterState>,
    /// Built from `config` and `endpoints` when the entry is published.
    pub lb: LbTables,
    /// `endpoints` came from this `config`'s own discovery: false for a DNS cluster's hosts
    /// kept from the config it replaced until its first resolution. Only then may an update
    /// keep hosts it drops (Envoy's rebuilt cluster starts with none to keep).
    discovered_for_config: bool,
}

impl ClusterEntry {
    fn new(
        config: Arc<Cluster>,
        endpoints: Arc<EndpointSet>,
        state: Arc<ClusterState>,
        discovered_for_config: bool,
    ) -> Self {
        let lb = LbTables::build(&config, &endpoints);
        Self {
            config,
            endpoints,
            state,
            lb,
            discovered_for_config,
        }
    }
}

/// Everything the data plane routes with, at one generation.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    generation: u64,
    listeners: imbl::HashMap<Arc<str>, Arc<Listener>>,
    route_configs: imbl::HashMap<Arc<str>, Arc<RouteConfiguration>>,
    clusters: imbl::HashMap<Arc<str>, Arc<ClusterEntry>>,
    /// EDS resource name → the EDS clusters subscribed to it (several may share one).
    eds_index: imbl::HashMap<Arc<str>, Arc<[Arc<str>]>>,
}

impl Snapshot {
    /// Increases by one with every `Tables::apply`.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn cluster(&self, name: &str) -> Option<&Arc<ClusterEntry>> {
        self.clusters.get(name)
    }

    pub fn listener(&self, name: &str) -> Option<&Arc<Listener>> {
        self.listeners.get(name)
    }

    pub fn route_config(&self, name: &str) -> Option<&Arc<RouteConfiguration>> {
        self.route_configs.get(name)
    }

    /// In no particular order.
    pub fn clusters(&self) -> impl Iterator<Item = (&str, &Arc<ClusterEntry>)> {
        self.clusters.iter().map(|(k, v)| (&**k, v))
    }

    pub fn listeners(&self) -> impl Iterator<Item = (&str, &Arc<Listener>)> {
        self.listeners.iter().map(|(k, v)| (&**k, v))
    }

    pub fn route_configs(&self) -> impl Iterator<Item = (&str, &Arc<RouteConfiguration>)> {
        self.route_configs.iter().map(|(k, v)| (&**k, v))
    }

    pub fn cluster_count(&self) -> usize {
        self.clusters.len()
    }

    /// The EDS clusters whose `eds_resource_name` is `resource`.
    pub fn clusters_for_eds_resource(&self, resource: &str) -> impl Iterator<Item = &str> {
        self.eds_index
            .get(resource)
            .into_iter()
            .flat_map(|names| names.iter().map(|n| &**n))
    }

    /// Every EDS resource name referenced by a cluster (what the EDS subscription must be).
    pub fn eds_resource_names(&self) -> impl Iterator<Item = &str> {
        self.eds_index.keys().map(|k| &**k)
    }

    pub(crate) fn next_generation(&self) -> Self {
        let mut next = self.clone();
        next.generation = self.generation.wrapping_add(1);
        next
    }

    pub(crate) fn apply(&mut self, change: Change) {
        match change {
            Change::UpsertCluster(config) => self.upsert_cluster(config),
            Change::RemoveCluster(name) => {
                if let Some(old) = self.clusters.remove(name.as_str())
                    && let Some(resource) = old.config.eds_resource_name()
                {
                    self.unindex(resource, &name);
                }
            }
            Change::SetEndpoints {
                cluster,
                assignment,
                version,
            } => self.set_endpoints(&cluster, &assignment, &version),
            Change::SetResolvedEndpoints { config, assignment } => {
                self.set_resolved_endpoints(&config, &assignment);
            }
            Change::RemovePendingHost { cluster, host } => {
                self.remove_pending_host(&cluster, &host)
            }
            Change::UpsertListener(l) => {
                self.listeners.insert(l.name().into(), l);
            }
            Change::RemoveListener(name) => {
                self.listeners.remove(name.as_str());
            }
            Change::UpsertRouteConfiguration(r) => {
                self.route_configs.insert(r.name().into(), r);
            }
            Change::RemoveRouteConfiguration(name) => {
                self.route_configs.remove(name.as_str());
            }
        }
    }

    fn upsert_cluster(&mut self, config: Arc<Cluster>) {
        let name: Arc<str> = config.name().into();
        let old = self.clusters.get(&*name).cloned();
        let old_resource = old.as_ref().and_then(|o| o.config.eds_resource_name());
        let new_resource = config.eds_resource_name();
        if old_resource != new_resource {
            if let Some(r) = old_resource {
                self.unindex(r, &name);
            }
            if let Some(r) = new_resource {
                self.index(r, &name);
            }
        }
        // A cluster update starts from its listed hosts, as Envoy's rebuilt cluster does.
        let policy = NewEndpointPolicy {
            keep_removed_while_healthy: false,
            ..endpoint_policy(&config)
        };
        let mut discovered = true;
        let endpoints = match (&config.discovery, &config.load_assignment, &old) {
            // Same EDS resource: the current endpoints stay until EDS says otherwise.
            (Discovery::Eds { .. }, _, Some(old)) if old_resource == new_resource => {
                Arc::clone(&old.endpoints)
            }
            (Discovery::Eds { .. }, _, _) => Arc::new(EndpointSet::empty()),
            // The resolver answers a new config with `SetResolvedEndpoints` at once; until then
            // the endpoints it replaces serve (as Envoy's old cluster serves while the new one
            // warms), and an unchanged host list keeps its resolved addresses.
            (Discovery::StrictDns(_) | Discovery::LogicalDns(_), _, Some(old)) => {
                discovered = false;
                Arc::clone(&old.endpoints)
            }
            // A new DNS cluster: its IP addresses serve at once, its host names once resolved.
            (Discovery::StrictDns(_) | Discovery::LogicalDns(_), Some(cla), None) => Arc::new(
                EndpointSet::build(&ip_endpoints_only(cla), None, "", None, policy),
            ),
            (_, Some(cla), old) => Arc::new(EndpointSet::build(
                cla,
                old.as_ref().map(|o| &*o.endpoints),
                "",
                None,
                policy,
            )),
            (_, None, _) => Arc::new(EndpointSet::empty()),
        };
        let endpoints = match endpoints.without(pending_removal) {
            Some(listed) => Arc::new(listed),
            None => endpoints,
        };
        endpoints.clear_orphaned_flags(
            !config.health_checks.is_empty(),
            config.outlier_detection.is_some(),
        );
        let state = match &old {
            Some(old) => {
                // The flags just cleared (or a STATIC rebuild's EDS health) may belong to hosts
                // the old entry's balancers still use.
                old.state.note_health_change();
                Arc::clone(&old.state)
            }
            None => Arc::new(ClusterState::new()),
        };
        self.clusters.insert(
            name,
            Arc::new(ClusterEntry::new(config, endpoints, state, discovered)),
        );
    }

    fn set_endpoints(&mut self, resource: &str, assignment: &ClusterLoadAssignment, version: &str) {
        let Some(names) = self.eds_index.get(resource).cloned() else {
            // Nobody subscribes to it (any more): nothing to update.
            return;
        };
        let now = SystemTime::now();
        for name in names.iter() {
            let Some(entry) = self.clusters.get(&**name).cloned() else {
                continue;
            };
            let endpoints = EndpointSet::build(
                assignment,
                Some(&entry.endpoints),
                version,
                Some(now),
                endpoint_policy(&entry.config),
            );
            self.clusters.insert(
                Arc::clone(name),
                Arc::new(ClusterEntry::new(
                    Arc::clone(&entry.config),
                    Arc::new(endpoints),
                    Arc::clone(&entry.state),
                    true,
                )),
            );
            // Building refreshed the EDS health of kept hosts in place, under the balancers of
            // the previous set.
            entry.state.note_health_change();
        }
    }

    fn set_resolved_endpoints(
        &mut self,
        config: &Arc<Cluster>,
        assignment: &ClusterLoadAssignment,
    ) {
        let name = config.name();
        let Some(entry) = self.clusters.get(name).cloned() else {
            return;
        };
        // Resolved for a config since replaced or removed: the new config's own resolution
        // follows, and this one's host list may be stale.
        if !Arc::ptr_eq(&entry.config, config) {
            return;
        }
        // The first resolution of a new config keeps nothing it drops.
        let policy = NewEndpointPolicy {
            keep_removed_while_healthy: entry.discovered_for_config
                && endpoint_policy(config).keep_removed_while_healthy,
            ..endpoint_policy(config)
        };
        let endpoints = EndpointSet::build(assignment, Some(&entry.endpoints), "", None, policy);
        self.clusters.insert(
            name.into(),
            Arc::new(ClusterEntry::new(
                Arc::clone(config),
                Arc::new(endpoints),
                Arc::clone(&entry.state),
                true,
            )),
        );
        // Kept hosts had their weight and health status refreshed in place.
        entry.state.note_health_change();
    }

    fn remove_pending_host(&mut self, name: &str, host: &Arc<EndpointState>) {
        let Some(entry) = self.clusters.get(name).cloned() else {
            return;
        };
        let failed = HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_DYNAMIC_REMOVAL;
        let Some(endpoints) = entry
            .endpoints
            .without(|e| std::ptr::eq(e, &**host) && e.health_flags().contains(failed))
        else {
            return;
        };
        self.clusters.insert(
            name.into(),
            Arc::new(ClusterEntry::new(
                Arc::clone(&entry.config),
                Arc::new(endpoints),
                Arc::clone(&entry.state),
                entry.discovered_for_config,
            )),
        );
        entry.state.note_health_change();
    }

    fn index(&mut self, resource: &str, cluster: &Arc<str>) {
        let names: Arc<[Arc<str>]> = match self.eds_index.get(resource) {
            Some(existing) if existing.contains(cluster) => return,
            Some(existing) => existing
                .iter()
                .cloned()
                .chain([Arc::clone(cluster)])
                .collect(),
            None => Arc::from([Arc::clone(cluster)]),
        };
        self.eds_index.insert(resource.into(), names);
    }

    fn unindex(&mut self, resource: &str, cluster: &str) {
        let Some(existing) = self.eds_index.get(resource) else {
            return;
        };
        let rest: Arc<[Arc<str>]> = existing
            .iter()
            .filter(|n| &***n != cluster)
            .cloned()
            .collect();
        if rest.is_empty() {
            self.eds_index.remove(resource);
        } else {
            self.eds_index.insert(resource.into(), rest);
        }
    }
}

/// `assignment` without its host-name endpoints (which cannot serve until resolved).
fn ip_endpoints_only(assignment: &ClusterLoadAssignment) -> ClusterLoadAssignment {
    let mut ips = assignment.clone();
    for locality in &mut ips.localities {
        locality
            .lb_endpoints
            .retain(|e| matches!(e.address, EndpointAddress::Ip(_)));
    }
    ips
}

fn endpoint_policy(cluster: &Cluster) -> NewEndpointPolicy {
    let active_health_checks = !cluster.health_checks.is_empty();
    // Envoy's dynamic host lists: EDS and STRICT_DNS (a LOGICAL_DNS host is one name).
    let dynamic = matches!(
        cluster.discovery,
        Discovery::Eds { .. } | Discovery::StrictDns(_)
    );
    NewEndpointPolicy {
        active_health_checks,
        keep_removed_while_healthy: dynamic
            && active_health_checks
            && !cluster.ignore_health_on_host_removal,
    }
}

fn pending_removal(host: &EndpointState) -> bool {
    host.health_flags()
        .contains(HealthFlags::PENDING_DYNAMIC_REMOVAL)
}
