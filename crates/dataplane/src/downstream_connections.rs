//! Downstream connection limits: the overload manager's global one (Envoy's
//! `envoy.resource_monitors.global_downstream_max_connections`), counting the connections of
//! every listener that does not opt out (`ignore_global_conn_limit`), and per-listener ones
//! (runtime keys `envoy.resource_limits.listener.<name>.connection_limit`). A connection
//! accepted over a limit is closed at once and counted in its listener's
//! `downstream_global_cx_overflow` or `downstream_cx_overflow`, as Envoy's listener does.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use outrider_model::Listener;

use crate::memory_bursts::OPEN_CONNECTIONS;

/// The global downstream connection limit, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalConnectionLimit {
    pub max: u64,
    /// Set by the legacy runtime key `overload.global_downstream_max_connections`: Envoy then
    /// compares with every accepted socket, so listeners with `ignore_global_conn_limit` are
    /// counted (never refused); the resource monitor counts only the listeners it limits.
    pub counts_exempt: bool,
}

/// Shared by every worker.
#[derive(Debug, Default)]
pub struct DownstreamConnections {
    /// `None`: no limit (nothing is counted).
    limit: Option<GlobalConnectionLimit>,
    /// The connections counted against the global limit.
    global: Arc<Counted>,
    /// Per-listener limits by listener name (Envoy's runtime keys
    /// `envoy.resource_limits.listener.<name>.connection_limit`): the connections of every
    /// listener of that name count, a replaced listener's draining ones included.
    per_listener: HashMap<String, Arc<Counted>>,
    /// Refusals by the listener's stat name.
    overflow: Mutex<HashMap<String, ListenerOverflow>>,
}

/// A limit and the connections counted against it.
#[derive(Debug, Default)]
struct Counted {
    limit: u64,
    active: AtomicU64,
}

impl Counted {
    fn new(limit: u64) -> Arc<Self> {
        Arc::new(Counted {
            limit,
            active: AtomicU64::new(0),
        })
    }

    /// A place under the limit, if one is left.
    fn take(self: &Arc<Self>) -> Option<Arc<Self>> {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < self.limit).then_some(active + 1)
            })
            .ok()
            .map(|_| self.clone())
    }

    /// Counted without a limit (an exempt listener under the legacy runtime key).
    fn count(self: &Arc<Self>) -> Arc<Self> {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.clone()
    }
}

/// A listener's refused connections.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ListenerOverflow {
    /// `downstream_global_cx_overflow`: over the global limit.
    pub global: u64,
    /// `downstream_cx_overflow`: over the listener's own limit.
    pub listener: u64,
}

/// A connection's places under the limits, given back when it closes (held by every
/// accepted connection, limited or not).
pub(crate) struct ConnectionSlot {
    global: Option<Arc<Counted>>,
    listener: Option<Arc<Counted>>,
}

impl DownstreamConnections {
    pub fn new(limit: Option<GlobalConnectionLimit>, per_listener: &BTreeMap<String, u64>) -> Self {
        let per_listener = per_listener
            .iter()
            .map(|(name, limit)| (name.clone(), Counted::new(*limit)))
            .collect();
        DownstreamConnections {
            limit,
            global: Counted::new(limit.map_or(u64::MAX, |l| l.max)),
            per_listener,
            ..Self::default()
        }
    }

    /// Places for a connection accepted on `listener` (stats named `stat_name`), or `None`
    /// (counted): close it. The global limit is checked first, as Envoy checks it before the
    /// listener sees the connection.
    pub(crate) fn admit(&self, listener: &Listener, stat_name: &str) -> Option<ConnectionSlot> {
        let mut slot = ConnectionSlot::new();
        match self.limit {
            Some(_) if !listener.ignore_global_conn_limit => match self.global.take() {
                Some(place) => slot.global = Some(place),
                None => {
                    self.refused(stat_name, |o| &mut o.global);
                    return None;
                }
            },
            Some(limit) if limit.counts_exempt => slot.global = Some(self.global.count()),
            _ => {}
        }
        if let Some(counted) = self.per_listener.get(&listener.name) {
            match counted.take() {
                Some(place) => slot.listener = Some(place),
                None => {
                    self.refused(stat_name, |o| &mut o.listener);
                    return None;
                }
            }
        }
        Some(slot)
    }

    fn refused(&self, stat_name: &str, counter: impl Fn(&mut ListenerOverflow) -> &mut u64) {
        let mut overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
        match overflow.get_mut(stat_name) {
            Some(counts) => *counter(counts) += 1,
            None => {
                let mut counts = ListenerOverflow::default();
                *counter(&mut counts) += 1;
                overflow.insert(stat_name.to_string(), counts);
            }
        }
    }

    /// Connections counted against the global limit now.
    pub fn active(&self) -> u64 {
        self.global.active.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit.map(|limit| limit.max)
    }

    /// Refusals per listener stat name, sorted.
    pub fn overflow(&self) -> Vec<(String, ListenerOverflow)> {
        let overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = overflow.iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

impl ConnectionSlot {
    /// Counted in the open connections whose burst the heap trim watches.
    fn new() -> Self {
        OPEN_CONNECTIONS.add(1);
        ConnectionSlot {
            global: None,
            listener: None,
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.sub(1);
        for counted in [&self.global, &self.listener].into_iter().flatten() {
            counted.active.fetch_sub(1, Ordering::AcqRel);
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

    fn monitor(max: u64) -> GlobalConnectionLimit {
        GlobalConnectionLimit {
            max,
            counts_exempt: false,
        }
    }

    #[test]
    fn the_runtime_key_counts_exempt_listeners_without_refusing_them() {
        let limit = GlobalConnectionLimit {
            max: 2,
            counts_exempt: true,
        };
        let connections = Arc::new(DownstreamConnections::new(Some(limit), &BTreeMap::new()));
        let exempt = listener("ignore_global_conn_limit: true");
        let _exempt: Vec<_> = (0..3)
            .map(|_| connections.admit(&exempt, "e").expect("never refused"))
            .collect();
        assert_eq!(connections.active(), 3);
        assert!(
            connections.admit(&listener(""), "l").is_none(),
            "over the limit"
        );
    }

    #[test]
    fn connections_over_the_limit_are_refused_and_counted_per_listener() {
        let connections = Arc::new(DownstreamConnections::new(
            Some(monitor(2)),
            &BTreeMap::new(),
        ));
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
        let global = ListenerOverflow {
            global: 1,
            listener: 0,
        };
        assert_eq!(connections.overflow(), [(name, global)]);
        let prefixed = listener("stat_prefix: edge");
        assert_eq!(listener_stat_name(&prefixed, prefixed.address), "edge");
    }

    #[test]
    fn without_a_limit_nothing_is_counted() {
        let connections = Arc::new(DownstreamConnections::new(None, &BTreeMap::new()));
        let _slots: Vec<_> = (0..3)
            .map(|_| connections.admit(&listener(""), "l").expect("no limit"))
            .collect();
        assert_eq!(connections.active(), 0);
    }

    #[test]
    fn a_listener_limit_counts_that_listener_only() {
        let limits = BTreeMap::from([("l".to_string(), 1)]);
        let connections = Arc::new(DownstreamConnections::new(Some(monitor(10)), &limits));
        let limited = listener("");
        let mut other = listener("");
        other.name = "other".into();
        let first = connections.admit(&limited, "a").expect("under the limit");
        assert!(connections.admit(&limited, "a").is_none());
        let _others: Vec<_> = (0..3)
            .map(|_| connections.admit(&other, "b").expect("no listener limit"))
            .collect();
        // The refused one gave its global place back.
        assert_eq!(connections.active(), 4);
        let refused = ListenerOverflow {
            global: 0,
            listener: 1,
        };
        assert_eq!(connections.overflow(), [("a".to_string(), refused)]);
        drop(first);
        let _again = connections
            .admit(&limited, "a")
            .expect("a place given back");
        assert_eq!(connections.active(), 4);
    }
}
