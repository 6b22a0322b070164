//! The overload manager's global downstream connection limit (Envoy's
//! `envoy.resource_monitors.global_downstream_max_connections`): every worker counts the
//! connections it serves on listeners that do not opt out (`ignore_global_conn_limit`); one
//! accepted over the limit is closed at once and counted in its listener's
//! `downstream_global_cx_overflow`, as Envoy's listener does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use outrider_model::Listener;

/// Shared by every worker.
#[derive(Debug, Default)]
pub struct DownstreamConnections {
    /// `max_active_downstream_connections`; `None`: no limit (nothing is counted).
    limit: Option<u64>,
    active: AtomicU64,
    /// `listener.<name>.downstream_global_cx_overflow`, by the listener's stat name.
    overflow: Mutex<HashMap<String, u64>>,
}

/// A connection's place under the limit, given back when it closes.
pub(crate) struct ConnectionSlot(Option<Arc<DownstreamConnections>>);

impl DownstreamConnections {
    pub fn new(limit: Option<u64>) -> Self {
        DownstreamConnections {
            limit,
            ..Self::default()
        }
    }

    /// A place for a connection accepted on `listener` (stats named `stat_name`), or `None`
    /// (counted): close it.
    pub(crate) fn admit(
        self: &Arc<Self>,
        listener: &Listener,
        stat_name: &str,
    ) -> Option<ConnectionSlot> {
        let Some(limit) = self.limit else {
            return Some(ConnectionSlot(None));
        };
        if listener.ignore_global_conn_limit {
            return Some(ConnectionSlot(None));
        }
        let taken = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < limit).then_some(active + 1)
            });
        if taken.is_ok() {
            return Some(ConnectionSlot(Some(self.clone())));
        }
        let mut overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
        match overflow.get_mut(stat_name) {
            Some(count) => *count += 1,
            None => {
                overflow.insert(stat_name.to_string(), 1);
            }
        }
        None
    }

    /// Connections counted against the limit now.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// `downstream_global_cx_overflow` per listener stat name, sorted.
    pub fn overflow(&self) -> Vec<(String, u64)> {
        let overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = overflow.iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort();
        all
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(connections) = &self.0 {
            connections.active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Envoy's name for a listener's stats: its `stat_prefix`, else the address it is bound to
/// with `:` as `_` (`listener.127.0.0.1_10000.*`).
pub fn listener_stat_name(listener: &Listener, bound: SocketAddr) -> String {
    if listener.stat_prefix.is_empty() {
        bound.to_string().replace(':', "_")
    } else {
        listener.stat_prefix.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(yaml_extra: &str) -> Listener {
        let yaml = format!(
            "name: l\naddress: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}\n{yaml_extra}\nfilter_chains: [ {{ filters: [ {{ name: envoy.filters.network.tcp_proxy, typed_config: {{ '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c }} }} ] }} ]"
        );
        let proto = outrider_envoy_json::from_yaml_str(&yaml).expect("valid YAML");
        Listener::from_proto(&proto).expect("valid listener")
    }

    #[test]
    fn connections_over_the_limit_are_refused_and_counted_per_listener() {
        let connections = Arc::new(DownstreamConnections::new(Some(2)));
        let counted = listener("");
        let exempt = listener("ignore_global_conn_limit: true");
        let name = listener_stat_name(&counted, counted.address);
        assert_eq!(name, "127.0.0.1_10000");
        let first = connections.admit(&counted, &name).expect("under the limit");
        let _second = connections.admit(&counted, &name).expect("at the limit");
        assert!(connections.admit(&counted, &name).is_none());
        // A listener that opts out is neither refused nor counted.
        let _free = connections.admit(&exempt, "exempt").expect("exempt");
        assert_eq!(connections.active(), 2);
        drop(first);
        assert!(connections.admit(&counted, &name).is_some());
        assert_eq!(connections.overflow(), [(name, 1)]);
        let prefixed = listener("stat_prefix: edge");
        assert_eq!(listener_stat_name(&prefixed, prefixed.address), "edge");
    }

    #[test]
    fn without_a_limit_nothing_is_counted() {
        let connections = Arc::new(DownstreamConnections::new(None));
        let _slots: Vec<_> = (0..3)
            .map(|_| connections.admit(&listener(""), "l").expect("no limit"))
            .collect();
        assert_eq!(connections.active(), 0);
    }
}
