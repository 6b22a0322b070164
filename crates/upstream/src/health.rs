//! How a load balancer sees one host's health (`HostClass`, from the atomic health flags), and
//! `NoHealthyUpstream`, the explanation returned when there is no host to pick.

use std::fmt;
use std::sync::Arc;

use outrider_tables::{EndpointState, HealthFlags};

use crate::events::EjectionType;

/// A host's health as load balancing uses it (Envoy's Healthy / Degraded / Unhealthy, plus
/// Excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum HostClass {
    Healthy,
    /// Used only when healthy hosts are not enough (their own load share, after the healthy one).
    Degraded,
    Unhealthy,
    /// Not counted and never picked, not even in panic: a new host waiting for its first health
    /// check under `ignore_new_hosts_until_first_hc`.
    Excluded,
}

const DEGRADED: HealthFlags = HealthFlags::from_bits(
    HealthFlags::DEGRADED_ACTIVE_HC.bits() | HealthFlags::DEGRADED_EDS_HEALTH.bits(),
);

impl HostClass {
    /// `exclude_pending`: the cluster's `ignore_new_hosts_until_first_hc`.
    pub(crate) fn of(flags: HealthFlags, exclude_pending: bool) -> Self {
        if exclude_pending && flags.intersects(HealthFlags::PENDING_ACTIVE_HC) {
            Self::Excluded
        } else if flags.intersects(HealthFlags::UNHEALTHY) {
            Self::Unhealthy
        } else if flags.intersects(DEGRADED) {
            Self::Degraded
        } else {
            Self::Healthy
        }
    }
}

/// Which hosts a pick may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Healthy,
    Degraded,
    /// Panic mode: every host that is not excluded.
    All,
}

impl Source {
    pub(crate) fn admits(self, class: HostClass) -> bool {
        match self {
            Self::Healthy => class == HostClass::Healthy,
            Self::Degraded => class == HostClass::Degraded,
            Self::All => class != HostClass::Excluded,
        }
    }
}

/// No host could be picked. The counts say why (a host may count under several reasons), for the
/// `x-outrider-no-healthy-upstream` header; `Display` renders it, e.g.
/// `0 of 3 endpoints healthy (2 ejected by outlier detection, 1 failing active health checks)`.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct NoHealthyUpstream {
    /// Hosts in the cluster (all priorities).
    pub total: usize,
    pub failed_outlier: usize,
    /// Of `failed_outlier`, how many each detector ejected (by `OutlierEjectionType` number).
    pub outlier_by_type: [usize; 7],
    pub failed_active_hc: usize,
    /// EDS said UNHEALTHY, DRAINING or TIMEOUT.
    pub eds_unhealthy: usize,
    pub degraded: usize,
    /// Hosts the request had already tried.
    pub avoided: usize,
}

impl NoHealthyUpstream {
    /// Counts the reasons over `hosts` (the error path only: O(hosts)).
    pub(crate) fn explain<'a>(
        hosts: impl IntoIterator<Item = &'a Arc<EndpointState>>,
        avoid: &[&Arc<EndpointState>],
    ) -> Self {
        let mut why = Self::default();
        for host in hosts {
            let flags = host.health_flags();
            why.total += 1;
            if flags.intersects(HealthFlags::FAILED_OUTLIER_CHECK) {
                why.failed_outlier += 1;
                if let Some(n) = host.outlier.ejected_by().map(usize::from)
                    && let Some(count) = why.outlier_by_type.get_mut(n)
                {
                    *count += 1;
                }
            }
            why.failed_active_hc += usize::from(flags.intersects(HealthFlags::FAILED_ACTIVE_HC));
            why.eds_unhealthy += usize::from(flags.intersects(HealthFlags::FAILED_EDS_HEALTH));
            why.degraded += usize::from(flags.intersects(DEGRADED));
            why.avoided += usize::from(avoid.iter().any(|a| Arc::ptr_eq(a, host)));
        }
        why
    }

    /// `2 ejected by outlier detection (consecutive_5xx)`, or with several detectors
    /// `3 ejected by outlier detection (2 consecutive_5xx, 1 success_rate)`.
    pub fn outlier_reason(&self) -> String {
        let mut text = format!("{} ejected by outlier detection", self.failed_outlier);
        let by: Vec<(usize, EjectionType)> = EjectionType::ALL
            .iter()
            .filter_map(|t| {
                let n = self.outlier_by_type.get(usize::from(t.number())).copied()?;
                (n > 0).then_some((n, *t))
            })
            .collect();
        match by.as_slice() {
            [] => {}
            [(n, t)] if *n == self.failed_outlier => {
                text.push_str(&format!(" ({})", t.stat_name()));
            }
            _ => {
                let parts: Vec<String> = by
                    .iter()
                    .map(|(n, t)| format!("{n} {}", t.stat_name()))
                    .collect();
                text.push_str(&format!(" ({})", parts.join(", ")));
            }
        }
        text
    }
}

impl fmt::Display for NoHealthyUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.total == 0 {
            return f.write_str("no endpoints");
        }
        // Nothing was pickable, so no host was healthy (bar a race with a flag flip).
        let noun = if self.total == 1 {
            "endpoint"
        } else {
            "endpoints"
        };
        write!(f, "0 of {} {noun} healthy", self.total)?;
        let mut first = true;
        if self.failed_outlier > 0 {
            write!(f, " ({}", self.outlier_reason())?;
            first = false;
        }
        let reasons = [
            (self.failed_active_hc, "failing active health checks"),
            (self.eds_unhealthy, "unhealthy per EDS"),
            (self.degraded, "degraded"),
            (self.avoided, "already tried"),
        ];
        for (count, reason) in reasons.into_iter().filter(|(n, _)| *n > 0) {
            f.write_str(if first { " (" } else { ", " })?;
            write!(f, "{count} {reason}")?;
            first = false;
        }
        if !first {
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_from_flags() {
        let cases = [
            (HealthFlags::default(), false, HostClass::Healthy),
            (
                HealthFlags::FAILED_OUTLIER_CHECK,
                false,
                HostClass::Unhealthy,
            ),
            (HealthFlags::FAILED_ACTIVE_HC, false, HostClass::Unhealthy),
            (HealthFlags::FAILED_EDS_HEALTH, false, HostClass::Unhealthy),
            (HealthFlags::DEGRADED_EDS_HEALTH, false, HostClass::Degraded),
            (HealthFlags::DEGRADED_ACTIVE_HC, false, HostClass::Degraded),
            (
                HealthFlags::DEGRADED_ACTIVE_HC | HealthFlags::FAILED_OUTLIER_CHECK,
                false,
                HostClass::Unhealthy,
            ),
            (
                HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC,
                false,
                HostClass::Unhealthy,
            ),
            (
                HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC,
                true,
                HostClass::Excluded,
            ),
            (
                HealthFlags::PENDING_DYNAMIC_REMOVAL,
                false,
                HostClass::Healthy,
            ),
        ];
        for (flags, exclude, want) in cases {
            assert_eq!(
                HostClass::of(flags, exclude),
                want,
                "{}",
                flags.envoy_string()
            );
        }
    }

    #[test]
    fn explanation_text() {
        let cases = [
            (NoHealthyUpstream::default(), "no endpoints"),
            (
                NoHealthyUpstream {
                    total: 3,
                    failed_outlier: 2,
                    failed_active_hc: 1,
                    ..Default::default()
                },
                "0 of 3 endpoints healthy (2 ejected by outlier detection, 1 failing active health checks)",
            ),
            (
                NoHealthyUpstream {
                    total: 1,
                    eds_unhealthy: 1,
                    ..Default::default()
                },
                "0 of 1 endpoint healthy (1 unhealthy per EDS)",
            ),
            (
                NoHealthyUpstream {
                    total: 2,
                    failed_outlier: 2,
                    outlier_by_type: [2, 0, 0, 0, 0, 0, 0],
                    ..Default::default()
                },
                "0 of 2 endpoints healthy (2 ejected by outlier detection (consecutive_5xx))",
            ),
            (
                NoHealthyUpstream {
                    total: 4,
                    failed_outlier: 3,
                    outlier_by_type: [2, 0, 1, 0, 0, 0, 0],
                    failed_active_hc: 1,
                    ..Default::default()
                },
                "0 of 4 endpoints healthy (3 ejected by outlier detection (2 consecutive_5xx, 1 success_rate), 1 failing active health checks)",
            ),
        ];
        for (why, want) in cases {
            assert_eq!(why.to_string(), want);
        }
    }
}
