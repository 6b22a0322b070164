//! `EndpointSet`: a cluster's hosts grouped by priority and locality, built from a
//! `ClusterLoadAssignment` while reusing the `EndpointState` of every address it keeps.

use std::collections::HashMap;
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

/// How endpoints new to a cluster start out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewEndpointPolicy {
    /// The cluster has active health checks: new hosts wait for their first check.
    pub active_health_checks: bool,
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
    /// in place; a host whose health-check port changed is new, as in Envoy. O(size of this
    /// cluster).
    pub(crate) fn build(
        assignment: &ClusterLoadAssignment,
        previous: Option<&EndpointSet>,
        version: &str,
        eds_updated_at: Option<SystemTime>,
        policy: NewEndpointPolicy,
    ) -> Self {
        let known: HashMap<&EndpointAddress, &Arc<EndpointState>> = previous
            .map(|p| p.endpoints().map(|e| (&e.address, e)).collect())
            .unwrap_or_default();
        // Reused within this build too: an address listed twice shares one state.
        let mut built: HashMap<EndpointAddress, Arc<EndpointState>> = HashMap::new();
        let mut priorities: Vec<PriorityLevel> = Vec::new();
        for locality in &assignment.localities {
            let endpoints = locality
                .lb_endpoints
                .iter()
                .map(|lb| {
                    if let Some(state) = built.get(&lb.address) {
                        return Arc::clone(state);
                    }
                    let state = match known.get(&lb.address) {
                        Some(existing)
                            if existing.keeps_identity(lb, policy.active_health_checks) =>
                        {
                            existing.refresh(lb);
                            Arc::clone(existing)
                        }
                        _ => Arc::new(EndpointState::new(lb, policy.active_health_checks)),
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
        Self {
            version: version.into(),
            priorities,
            overprovisioning_factor: assignment.overprovisioning_factor,
            drop_overloads: assignment.drop_overloads.clone(),
            weighted_priority_health: assignment.weighted_priority_health,
            eds_updated_at,
        }
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
