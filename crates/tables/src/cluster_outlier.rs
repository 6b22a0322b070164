//! `ClusterOutlier`: a cluster's outlier-detection stats (Envoy's `cluster.<name>.outlier_detection.*`)
//! and the wake-up the data plane gives the detector when a host crosses a consecutive-failure
//! threshold. Written on the control thread, except the wake-up (rare: one per crossing).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::sync::Notify;

use crate::outlier_state::SuccessRateCell;

/// Envoy's `OutlierEjectionType` names as they appear in stat names, by proto number.
pub const EJECTION_TYPE_STAT_NAMES: [&str; 7] = [
    "consecutive_5xx",
    "consecutive_gateway_failure",
    "success_rate",
    "consecutive_local_origin_failure",
    "local_origin_success_rate",
    "failure_percentage",
    "local_origin_failure_percentage",
];

/// Envoy's outlier-detection stats of one cluster.
#[derive(Debug, Default)]
pub struct OutlierStats {
    /// Ejections that took effect, every type.
    pub ejections_enforced_total: AtomicU64,
    /// Hosts ejected now (a gauge).
    pub ejections_active: AtomicU64,
    /// Ejections refused by `max_ejection_percent`.
    pub ejections_overflow: AtomicU64,
    /// By `OutlierEjectionType` number (see `EJECTION_TYPE_STAT_NAMES`).
    pub ejections_enforced: [AtomicU64; 7],
    /// Detections (enforced or not, overflowed or not), by `OutlierEjectionType` number.
    pub ejections_detected: [AtomicU64; 7],
}

impl OutlierStats {
    /// Every stat as `(name after "outlier_detection.", value)`, in a fixed order.
    pub fn values(&self) -> Vec<(String, u64)> {
        let mut out = vec![
            (
                "ejections_enforced_total".to_string(),
                self.ejections_enforced_total.load(Relaxed),
            ),
            (
                "ejections_active".to_string(),
                self.ejections_active.load(Relaxed),
            ),
            (
                "ejections_overflow".to_string(),
                self.ejections_overflow.load(Relaxed),
            ),
        ];
        for (i, name) in EJECTION_TYPE_STAT_NAMES.iter().enumerate() {
            let enforced = self
                .ejections_enforced
                .get(i)
                .map_or(0, |c| c.load(Relaxed));
            let detected = self
                .ejections_detected
                .get(i)
                .map_or(0, |c| c.load(Relaxed));
            out.push((format!("ejections_enforced_{name}"), enforced));
            out.push((format!("ejections_detected_{name}"), detected));
        }
        out
    }
}

/// Outlier detection's per-cluster state. Lives in `ClusterState`, so it survives config and
/// endpoint updates of the cluster.
#[derive(Debug, Default)]
pub struct ClusterOutlier {
    pub stats: OutlierStats,
    /// The success-rate statistic of the last interval, external origin (`None`: too few hosts
    /// with enough requests), as Envoy's `/clusters` shows it.
    pub success_rate_average: SuccessRateCell,
    pub success_rate_ejection_threshold: SuccessRateCell,
    /// The same for local-origin errors (split mode only).
    pub local_origin_success_rate_average: SuccessRateCell,
    pub local_origin_success_rate_ejection_threshold: SuccessRateCell,
    wake: Notify,
}

impl ClusterOutlier {
    /// Wakes the cluster's detector (a host crossed a consecutive threshold). Lock-free when
    /// the detector is not waiting; a wake while it is busy is kept for its next wait.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Completes at the next `wake` (or at once if one came since the last wait).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}
