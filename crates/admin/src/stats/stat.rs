//! One stat: its Envoy name, its Prometheus metric and tags, and its value.

use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    Counter,
    Gauge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Envoy's flat name, e.g. `cluster.backend.upstream_rq_total`.
    pub name: String,
    /// The Prometheus metric without Envoy's `envoy_` prefix: the name with the tag values
    /// taken out (`cluster_upstream_rq_total`).
    pub metric: String,
    /// Envoy's tag names and values, in Envoy's order.
    pub tags: Vec<(&'static str, String)>,
    pub kind: StatKind,
    pub value: u64,
}

/// Stats from outside the admin crate (the data plane's connection managers, the reporters).
pub type StatsSource = Arc<dyn Fn() -> Vec<Stat> + Send + Sync>;

impl Stat {
    /// A stat without tags: `control_plane.connected_state`.
    pub fn plain(name: &str, kind: StatKind, value: u64) -> Stat {
        Stat {
            name: name.to_string(),
            metric: name.replace('.', "_"),
            tags: Vec::new(),
            kind,
            value,
        }
    }

    /// `cluster.<cluster>.<stat>`, tagged `envoy_cluster_name`.
    pub fn cluster(cluster: &str, stat: &str, kind: StatKind, value: u64) -> Stat {
        Stat {
            name: format!("cluster.{cluster}.{stat}"),
            metric: format!("cluster_{}", stat.replace('.', "_")),
            tags: vec![("envoy_cluster_name", cluster.to_string())],
            kind,
            value,
        }
    }

    /// `cluster.<cluster>.<prefix>_<N>xx`, tagged with the response code class.
    pub fn cluster_class(cluster: &str, prefix: &str, class: u8, value: u64) -> Stat {
        Stat {
            name: format!("cluster.{cluster}.{prefix}_{class}xx"),
            metric: format!("cluster_{prefix}_xx"),
            tags: vec![
                ("envoy_response_code_class", class.to_string()),
                ("envoy_cluster_name", cluster.to_string()),
            ],
            kind: StatKind::Counter,
            value,
        }
    }

    /// `http.<prefix>.<stat>`, tagged `envoy_http_conn_manager_prefix`.
    pub fn http(prefix: &str, stat: &str, kind: StatKind, value: u64) -> Stat {
        Stat {
            name: format!("http.{prefix}.{stat}"),
            metric: format!("http_{}", stat.replace('.', "_")),
            tags: vec![("envoy_http_conn_manager_prefix", prefix.to_string())],
            kind,
            value,
        }
    }

    /// `listener.<listener>.<stat>` (`<listener>`: the stat prefix, or the address with `_`
    /// for `:`), tagged `envoy_listener_address` as Envoy's tag extraction does.
    pub fn listener(listener: &str, stat: &str, kind: StatKind, value: u64) -> Stat {
        Stat {
            name: format!("listener.{listener}.{stat}"),
            metric: format!("listener_{}", stat.replace('.', "_")),
            tags: vec![("envoy_listener_address", listener.to_string())],
            kind,
            value,
        }
    }

    /// `http.<prefix>.<stat>_<N>xx`, tagged with the response code class and the prefix.
    pub fn http_class(prefix: &str, stat: &str, class: u8, value: u64) -> Stat {
        Stat {
            name: format!("http.{prefix}.{stat}_{class}xx"),
            metric: format!("http_{stat}_xx"),
            tags: vec![
                ("envoy_response_code_class", class.to_string()),
                ("envoy_http_conn_manager_prefix", prefix.to_string()),
            ],
            kind: StatKind::Counter,
            value,
        }
    }
}
