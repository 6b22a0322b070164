//! What the bootstrap asks us to report, and where: `cluster_manager.outlier_detection`
//! (`event_service`, `event_log_path`) and `cluster_manager.load_stats_config`.

use std::path::PathBuf;

/// A gRPC service reached through a cluster of our own (Envoy's `envoy_grpc`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrpcTarget {
    /// The (static) cluster whose endpoints serve the service.
    pub cluster: String,
    /// `initial_metadata`: headers added to every stream.
    pub initial_metadata: Vec<(String, String)>,
}

impl GrpcTarget {
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            initial_metadata: Vec::new(),
        }
    }
}

/// Every reporter the bootstrap configures; all `None` means none runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportConfig {
    /// `cluster_manager.outlier_detection.event_service`: stream host events here.
    pub event_service: Option<GrpcTarget>,
    /// `cluster_manager.outlier_detection.event_log_path`: append outlier events here as JSON lines.
    pub event_log_path: Option<PathBuf>,
    /// `cluster_manager.load_stats_config`: report load here (LRS).
    pub load_stats: Option<GrpcTarget>,
}

impl ReportConfig {
    pub fn is_empty(&self) -> bool {
        self.event_service.is_none() && self.event_log_path.is_none() && self.load_stats.is_none()
    }
}
