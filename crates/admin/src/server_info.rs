//! The server's lifecycle state as Envoy names it, and the `/ready` and `/server_info` pages.

use std::time::SystemTime;

use envoy_types::pb::envoy::admin::v3::server_info::State;
use envoy_types::pb::envoy::admin::v3::{CommandLineOptions, ServerInfo};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::Duration;
use outrider_xds::ClientStatus;
use prost_reflect::{DynamicMessage, SerializeOptions};

use crate::AdminState;

/// Facts about the process that `/server_info` reports, fixed at start-up.
#[derive(Debug, Clone)]
pub struct ServerInfoSource {
    /// Envoy prints `<commit>/<version>/<status>/<build type>/<ssl>`; tools only display it.
    pub version: String,
    /// Outrider does not hot-restart; Envoy prints `disabled` in that case.
    pub hot_restart_version: String,
    /// The options the binary runs with, in Envoy's vocabulary (`concurrency`, `config_path`, …).
    pub command_line_options: CommandLineOptions,
    /// When the process started (the only epoch: there is no hot restart).
    pub started: SystemTime,
    /// The node identity sent to the management server.
    pub node: Node,
}

/// Envoy's server state: `PRE_INITIALIZING` before any xDS configuration arrived,
/// `INITIALIZING` while the initial configuration is incomplete, `LIVE` once it is in, and
/// `DRAINING` after `/healthcheck/fail`.
///
/// Envoy's PRE_INITIALIZING covers the cluster manager's own start; the closest thing we can
/// observe is "no response accepted yet for any type".
pub fn server_state(status: &ClientStatus, health_check_failed: bool) -> State {
    if !status.initialized {
        let anything_accepted = !status.type_versions.is_empty()
            || status
                .resources
                .values()
                .flat_map(|records| records.values())
                .any(|record| record.resource.is_some());
        return if anything_accepted {
            State::Initializing
        } else {
            State::PreInitializing
        };
    }
    if health_check_failed {
        State::Draining
    } else {
        State::Live
    }
}

/// `/ready`: the state's name and a newline; 200 only when `LIVE`.
pub(crate) fn ready(state: &AdminState) -> (http::StatusCode, String) {
    let status = state.xds.load();
    let server_state = server_state(&status, state.control.is_health_check_failed());
    let code = if server_state == State::Live {
        http::StatusCode::OK
    } else {
        http::StatusCode::SERVICE_UNAVAILABLE
    };
    (code, format!("{}\n", server_state.as_str_name()))
}

/// `/server_info` as Envoy prints it: unlike `/config_dump`, Envoy prints default values here
/// too (`"state": "LIVE"` is the enum's zero), so tools can rely on every field being present.
pub(crate) fn server_info_json(
    state: &AdminState,
    now: SystemTime,
) -> Result<serde_json::Value, outrider_envoy_json::JsonError> {
    let source = &state.server_info;
    let status = state.xds.load();
    let server_state = server_state(&status, state.control.is_health_check_failed());
    // Whole seconds, as Envoy computes uptime from time_t values.
    let uptime = now
        .duration_since(source.started)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let uptime = Duration {
        seconds: i64::try_from(uptime).unwrap_or(i64::MAX),
        nanos: 0,
    };
    let info = ServerInfo {
        version: source.version.clone(),
        state: server_state as i32,
        uptime_current_epoch: Some(uptime),
        uptime_all_epochs: Some(uptime),
        hot_restart_version: source.hot_restart_version.clone(),
        command_line_options: Some(source.command_line_options.clone()),
        node: Some(source.node.clone()),
        hot_restart_initializing: false,
    };
    to_value_with_defaults(&info)
}

/// `/certs`: every TLS context's certificates, printed as Envoy prints them (defaults too).
pub(crate) fn certs_json(
    state: &AdminState,
    now: SystemTime,
) -> Result<serde_json::Value, outrider_envoy_json::JsonError> {
    let certificates = match &state.tables {
        Some(tables) => crate::certs::certificates(&tables.load_full(), now),
        None => Default::default(),
    };
    to_value_with_defaults(&certificates)
}

/// Envoy's `getJsonStringFromMessageOrError(msg, pretty, always_print_primitive_fields=true)`.
fn to_value_with_defaults<M: prost::Message + prost::Name>(
    msg: &M,
) -> Result<serde_json::Value, outrider_envoy_json::JsonError> {
    use outrider_envoy_json::JsonError;
    let desc = outrider_envoy_json::descriptor(&M::full_name())?;
    let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())
        .map_err(|e| JsonError::Decode(e.to_string()))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
        .stringify_64_bit_integers(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| JsonError::Decode(e.to_string()))
}
