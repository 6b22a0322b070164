//! `EndpointSet`: a cluster's hosts grouped by priority and locality, built from a
//! `ClusterLoadAssignment` while reusing the `EndpointState` of every address it keeps.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use outrider_model::{ClusterLoadAssignment, DropOverload, EndpointAddress, Locality};

use crate::endpoint_state::{EndpointState, HealthFlags};

/// A cluster's endpoints at one point in time. Immutable; replaced whole on each update.
#[derive(Debug)]
pub struct EndpointSet {
    /// EDS `version_info` (empty for endpoints from the cluster's own `load_assignment`).
    pub version: Box<str>,
    /// Index = priority (contiguous from 0, as the model guarantees).
    pub priorities: Vec<PriorityLevel>,
    pub overprovisioning_factor: u32,
    pub drop_overloads: Vec<DropOverload>,
    pub weighted_priority_health: bool,
    /// When EDS last delivered this set (`None`: never; the endpoints came from the cluster).
    pub eds_updated_at: Option<SystemTime>,
}

#[derive(Debug, Default)]
pub struct PriorityLevel {
    pub localities: Vec<LocalityEndpoints>,
}

#[derive(Debug)]
pub struct LocalityEndpoints {
    pub locality: Arc<Locality>,
    /// `load_balancing_weight` of the locality (`None`: unset).
    pub weight: Option<u32>,
    pub endpoints: Vec<Arc<EndpointState>>,
}

/// One host of an `EndpointSet`, with its priority and locality.
#[derive(Debug, Clone, Copy)]
pub struct HostRef<'a> {
    pub priority: usize,
    pub locality: &'a Locality,
    pub host: &'a Arc<EndpointState>,
}

/// How an update treats a cluster's hosts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewEndpointPolicy {
    /// The cluster has active health checks: new hosts wait for their first check.
    pub active_health_checks: bool,
    /// A host the update no longer lists stays while it passes its checks, flagged
    /// `PENDING_DYNAMIC_REMOVAL` (Envoy's `updateDynamicHostList`, for EDS and STRICT_DNS
    /// clusters that check health without `ignore_health_on_host_removal`).
    pub keep_removed_while_healthy: bool,
}

impl EndpointSet {
    pub fn empty() -> Self {
        Self {
            version: "".into(),
            priorities: Vec::new(),
            overprovisioning_factor: outrider_model::DEFAULT_OVERPROVISIONING_FACTOR,
            drop_overloads: Vec::new(),
            weighted_priority_health: false,
            eds_updated_at: None,
        }
    }

    /// Builds the set for `assignment`, reusing the state of every address `previous` has
    /// (so counters, health and outlier state survive), and updating its weight and EDS health
    /// in place; a host whose health-check port or locality changed is new, as in Envoy. Hosts
    /// of `previous` the assignment drops may stay (see `NewEndpointPolicy`). O(size of this
    /// cluster).
    pub(crate) fn build(
        assignment: &ClusterLoadAssignment,
        previous: Option<&EndpointSet>,
        version: &str,
        eds_updated_at: Option<SystemTime>,
        policy: NewEndpointPolicy,
    ) -> Self {
        // An address may have two hosts: one pending removal and its replacement.
        let mut known: HashMap<&EndpointAddress, Vec<HostRef<'_>>> = HashMap::new();
        for host in previous.iter().flat_map(|p| p.hosts()) {
            known.entry(&host.host.address).or_default().push(host);
        }
        // Reused within this build too: an address listed twice shares one state.
        let mut built: HashMap<EndpointAddress, Arc<EndpointState>> = HashMap::new();
        // Addresses listed again at another priority or locality: replaced at once.
        let mut moved: HashSet<&EndpointAddress> = HashSet::new();
        let mut priorities: Vec<PriorityLevel> = Vec::new();
        for locality in &assignment.localities {
            let endpoints = locality
                .lb_endpoints
                .iter()
                .map(|lb| {
                    if let Some(state) = built.get(&lb.address) {
                        return Arc::clone(state);
                    }
                    let candidates = known.get(&lb.address).map_or(&[][..], Vec::as_slice);
                    let same_place = candidates.iter().any(|e| {
                        *e.locality == locality.locality && e.priority == locality.priority as usize
                    });
                    if !candidates.is_empty() && !same_place {
                        moved.insert(&lb.address);
                    }
                    // Another priority keeps the host; another locality makes it new.
                    let reusable = candidates.iter().find(|e| {
                        *e.locality == locality.locality
                            && e.host.keeps_identity(lb, policy.active_health_checks)
                    });
                    let state = match reusable {
                        Some(existing) => {
                            existing.host.refresh(lb);
                            Arc::clone(existing.host)
                        }
                        None => Arc::new(EndpointState::new(lb, policy.active_health_checks)),
                    };
                    built.insert(lb.address.clone(), Arc::clone(&state));
                    state
                })
                .collect();
            let index = locality.priority as usize;
            // Priorities are contiguous from 0 (validated), so this grows by at most one level
            // at a time; resizing keeps it correct even if that ever changed.
            if priorities.len() <= index {
                priorities.resize_with(index + 1, PriorityLevel::default);
            }
            if let Some(level) = priorities.get_mut(index) {
                level.localities.push(LocalityEndpoints {
                    locality: Arc::new(locality.locality.clone()),
                    weight: locality.load_balancing_weight,
                    endpoints,
                });
            }
        }
        if policy.keep_removed_while_healthy
            && let Some(previous) = previous
        {
            // Compared by identity: a host replaced at its address (a new health-check port)
            // may stay beside its replacement, as in Envoy; one that moved goes at once.
            let listed: HashSet<*const EndpointState> = built.values().map(Arc::as_ptr).collect();
            // In the previous set's order, so the kept hosts' order is stable.
            let mut kept = HashSet::new();
            let removed = previous.hosts().filter(|h| {
                !listed.contains(&Arc::as_ptr(h.host)) && !moved.contains(&h.host.address)
            });
            for host in removed {
                // A host listed twice is kept once.
                if !kept.insert(Arc::as_ptr(host.host)) {
                    continue;
                }
                // Outlier ejection is no reason to go: only failing checks or EDS health.
                let failing = HealthFlags::FAILED_ACTIVE_HC | HealthFlags::FAILED_EDS_HEALTH;
                if !host.host.health_flags().intersects(failing) {
                    host.host.set_flags(HealthFlags::PENDING_DYNAMIC_REMOVAL);
                    keep_in(&mut priorities, &host);
                }
            }
        }
        Self {
            version: version.into(),
            priorities,
            overprovisioning_factor: assignment.overprovisioning_factor,
            drop_overloads: assignment.drop_overloads.clone(),
            weighted_priority_health: assignment.weighted_priority_health,
            eds_updated_at,
        }
    }

    /// This set without the hosts `drop` picks (`None` if it picks none); localities left
    /// empty go too.
    pub(crate) fn without(&self, drop: impl Fn(&EndpointState) -> bool) -> Option<Self> {
        if !self.endpoints().any(|e| drop(e)) {
            return None;
        }
        let mut priorities: Vec<PriorityLevel> = self
            .priorities
            .iter()
            .map(|level| PriorityLevel {
                localities: level
                    .localities
                    .iter()
                    .filter_map(|l| {
                        let endpoints: Vec<_> =
                            l.endpoints.iter().filter(|e| !drop(e)).cloned().collect();
                        (!endpoints.is_empty()).then(|| LocalityEndpoints {
                            locality: Arc::clone(&l.locality),
                            weight: l.weight,
                            endpoints,
                        })
                    })
                    .collect(),
            })
            .collect();
        // Levels stay contiguous from 0: only trailing empty ones go.
        while priorities.last().is_some_and(|l| l.localities.is_empty()) {
            priorities.pop();
        }
        Some(Self {
            version: self.version.clone(),
            priorities,
            overprovisioning_factor: self.overprovisioning_factor,
            drop_overloads: self.drop_overloads.clone(),
            weighted_priority_health: self.weighted_priority_health,
            eds_updated_at: self.eds_updated_at,
        })
    }

    /// Every endpoint, priority by priority, locality by locality.
    pub fn endpoints(&self) -> impl Iterator<Item = &Arc<EndpointState>> {
        self.priorities
            .iter()
            .flat_map(|p| p.localities.iter())
            .flat_map(|l| l.endpoints.iter())
    }

    /// Every host with where it sits (priority, locality), for views that show each host
    /// (admin `/clusters`, `/diagnose`).
    pub fn hosts(&self) -> impl Iterator<Item = HostRef<'_>> {
        self.priorities
            .iter()
            .enumerate()
            .flat_map(|(priority, level)| {
                level.localities.iter().flat_map(move |locality| {
                    locality.endpoints.iter().map(move |host| HostRef {
                        priority,
                        locality: &locality.locality,
                        host,
                    })
                })
            })
    }

    pub fn len(&self) -> usize {
        self.endpoints().count()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints().next().is_none()
    }

    /// The endpoint with this address, if any.
    pub fn find(&self, address: &EndpointAddress) -> Option<&Arc<EndpointState>> {
        self.endpoints().find(|e| e.address == *address)
    }

    /// Drops flags whose owner the cluster no longer has (health checks or outlier detection
    /// removed), so a host is not stuck unhealthy by a detector that is gone.
    pub(crate) fn clear_orphaned_flags(
        &self,
        has_health_checks: bool,
        has_outlier_detection: bool,
    ) {
        let mut stale = HealthFlags::default();
        if !has_health_checks {
            stale = stale | HealthFlags::ACTIVE_HC;
        }
        if !has_outlier_detection {
            stale = stale | HealthFlags::FAILED_OUTLIER_CHECK;
        }
        if stale.is_empty() {
            return;
        }
        for e in self.endpoints() {
            e.clear_flags(stale);
        }
    }
}

/// Keeps a host the update dropped where it was: its priority and locality (without a
/// weight if the update has no such locality there).
fn keep_in(priorities: &mut Vec<PriorityLevel>, host: &HostRef<'_>) {
    if priorities.len() <= host.priority {
        priorities.resize_with(host.priority + 1, PriorityLevel::default);
    }
    let Some(level) = priorities.get_mut(host.priority) else {
        return;
    };
    match level
        .localities
        .iter_mut()
        .find(|l| *l.locality == *host.locality)
    {
        Some(locality) => locality.endpoints.push(Arc::clone(host.host)),
        None => level.localities.push(LocalityEndpoints {
            locality: Arc::new(host.locality.clone()),
            // Envoy's weight for a locality the update does not list: none.
            weight: None,
            endpoints: vec![Arc::clone(host.host)],
        }),
    }
}
