//! The overload manager, as far as it is built: the global downstream connection limit
//! (`envoy.resource_monitors.global_downstream_max_connections` with a
//! `DownstreamConnectionsConfig`, as Pomerium and Cilium configure it), or the runtime key
//! `overload.global_downstream_max_connections` that Istio's bootstrap sets, which Envoy still
//! honours when no such monitor is configured; per-listener limits from the runtime keys
//! `envoy.resource_limits.listener.<name>.connection_limit`. Overload actions, load-shed points, buffer
//! accounting and other monitors are refused with their field path: they would do nothing.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::overload::v3::resource_monitor::ConfigType;
use envoy_types::pb::envoy::config::overload::v3::{OverloadManager, ResourceMonitor};
use envoy_types::pb::envoy::extensions::resource_monitors::downstream_connections::v3::DownstreamConnectionsConfig;
use outrider_dataplane::GlobalConnectionLimit;
use prost::{Message, Name};

use super::runtime_flags::{runtime_count, static_runtime, whole_number};

/// The resource monitor Envoy's listeners consult for the global connection limit.
pub const GLOBAL_CONNECTIONS_MONITOR: &str =
    "envoy.resource_monitors.global_downstream_max_connections";

/// The runtime key Envoy read the limit from before the monitor existed.
pub const GLOBAL_CONNECTIONS_RUNTIME_KEY: &str = "overload.global_downstream_max_connections";

/// `max_active_downstream_connections`, if the bootstrap sets a global connection limit.
pub fn downstream_connection_limit(
    proto: &Bootstrap,
) -> Result<Option<GlobalConnectionLimit>, (String, String)> {
    let from_monitor = match &proto.overload_manager {
        Some(manager) => monitor_limit(manager)?,
        None => None,
    };
    // Envoy: the monitor wins over the runtime key.
    let limit = match from_monitor {
        Some(max) => Some(GlobalConnectionLimit {
            max,
            counts_exempt: false,
        }),
        None => runtime_limit(proto)?.map(|max| GlobalConnectionLimit {
            max,
            counts_exempt: true,
        }),
    };
    Ok(limit)
}

fn monitor_limit(manager: &OverloadManager) -> Result<Option<u64>, (String, String)> {
    let OverloadManager {
        // How often polled monitors are read; the connection limit is checked at each accept.
        refresh_interval: _,
        resource_monitors,
        actions,
        loadshed_points,
        buffer_factory_config,
    } = manager;
    let not_built = |path: &str, what: &str| {
        Err((
            format!("overload_manager.{path}"),
            format!(
                "{what} not built: only the global downstream connection limit ({GLOBAL_CONNECTIONS_MONITOR}) is"
            ),
        ))
    };
    if !actions.is_empty() {
        return not_built("actions", "overload actions are");
    }
    if !loadshed_points.is_empty() {
        return not_built("loadshed_points", "load-shed points are");
    }
    if buffer_factory_config.is_some() {
        return not_built("buffer_factory_config", "buffer accounting is");
    }
    let mut limit = None;
    for (index, monitor) in resource_monitors.iter().enumerate() {
        let at = format!("overload_manager.resource_monitors[{index}]");
        let ResourceMonitor { name, config_type } = monitor;
        if name != GLOBAL_CONNECTIONS_MONITOR {
            return Err((
                format!("{at}.name"),
                format!("{name} is not built: only {GLOBAL_CONNECTIONS_MONITOR} is"),
            ));
        }
        let config = match config_type {
            Some(ConfigType::TypedConfig(any))
                if any
                    .type_url
                    .ends_with(&DownstreamConnectionsConfig::full_name()) =>
            {
                DownstreamConnectionsConfig::decode(any.value.as_slice())
                    .map_err(|e| (format!("{at}.typed_config"), format!("cannot decode: {e}")))?
            }
            _ => {
                return Err((
                    format!("{at}.typed_config"),
                    format!("must be a {}", DownstreamConnectionsConfig::full_name()),
                ));
            }
        };
        let max = u64::try_from(config.max_active_downstream_connections)
            .ok()
            .filter(|max| *max > 0)
            .ok_or_else(|| {
                (
                    format!("{at}.typed_config.max_active_downstream_connections"),
                    "must be greater than 0".to_string(),
                )
            })?;
        limit = Some(max);
    }
    Ok(limit)
}

/// The last static layer's `overload.global_downstream_max_connections` (a number, or a
/// string of one, as Istio writes it).
fn runtime_limit(proto: &Bootstrap) -> Result<Option<u64>, (String, String)> {
    runtime_count(proto, GLOBAL_CONNECTIONS_RUNTIME_KEY)
}

/// The runtime keys of per-listener connection limits:
/// `envoy.resource_limits.listener.<listener name>.connection_limit`.
const LISTENER_LIMIT_PREFIX: &str = "envoy.resource_limits.listener.";
const LISTENER_LIMIT_SUFFIX: &str = ".connection_limit";

/// Per-listener connection limits by listener name, from the static runtime layers (later
/// layers win), as Envoy reads them when a listener is created.
pub fn listener_connection_limits(
    proto: &Bootstrap,
) -> Result<BTreeMap<String, u64>, (String, String)> {
    let mut limits = BTreeMap::new();
    for (at, key, value) in static_runtime(proto) {
        if let Some(name) = limited_listener(&key) {
            limits.insert(name.to_string(), whole_number(&at, value)?);
        }
    }
    Ok(limits)
}

/// The listener a runtime key limits, if it is a per-listener connection limit.
pub fn limited_listener(key: &str) -> Option<&str> {
    key.strip_prefix(LISTENER_LIMIT_PREFIX)
        .and_then(|rest| rest.strip_suffix(LISTENER_LIMIT_SUFFIX))
        .filter(|name| !name.is_empty())
}
