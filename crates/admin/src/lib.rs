//! Outrider's admin interface, Envoy-compatible: `/config_dump`, `/ready`, `/server_info`, the
//! POST-only control endpoints, and CSDS (`envoy.service.status.v3`) on the same port.
//!
//! The admin server reads only published snapshots (the bootstrap and the xDS client's
//! [`outrider_xds::ClientStatus`]), and runs on its own thread and runtime so that an expensive
//! request (a large `/config_dump`) never competes with traffic.
//!
//! Wiring, in the binary: build an [`AdminState`] from the bootstrap, the xDS client's
//! `Arc<ArcSwap<ClientStatus>>` and a [`ServerInfoSource`]; bind the admin address; call
//! [`spawn`]; watch [`AdminHandle::quit_requested`] (and
//! [`AdminControl::health_check_failed`]); on exit call [`AdminHandle::shutdown`] then
//! [`AdminHandle::join`]. Tests use [`serve`] on their own runtime instead.

mod admin_pages;
mod certs;
mod clusters;
mod config_dump;
mod config_dump_query;
mod control_plane;
mod csds;
mod diagnose;
mod field_mask;
mod redact;
mod server;
mod server_info;
mod state;
mod stats;
mod xds_record;

pub use csds::ClientStatusService;
pub use server::{AdminHandle, serve, spawn};
pub use server_info::{ServerInfoSource, server_state};
pub use state::{AdminControl, AdminState};
pub use stats::{Stat, StatKind, StatsSource};
