//! What the admin server reads (the bootstrap, the xDS client's status, facts about the process)
//! and the signals it raises for the rest of the binary (`/quitquitquit`, `/healthcheck/*`).

use std::sync::Arc;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use outrider_tables::Tables;
use outrider_xds::ClientStatus;
use tokio::sync::watch;

use crate::ServerInfoSource;
use crate::stats::StatsSource;

/// Everything the admin server shows. Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct AdminState {
    /// The bootstrap as loaded; static resources come from here.
    pub bootstrap: Arc<Bootstrap>,
    /// The xDS client's status, replaced whole by the client after every change.
    pub xds: Arc<ArcSwap<ClientStatus>>,
    pub server_info: Arc<ServerInfoSource>,
    /// Signals raised by POST endpoints, observed by the binary.
    pub control: AdminControl,
    /// The listeners the data plane serves, with their bound addresses (`/listeners`).
    pub listeners: ListenerSource,
    /// The data plane's tables: clusters and endpoints for `/stats` and `/clusters`.
    pub tables: Option<Arc<Tables>>,
    /// More stats for `/stats` (connection managers, reporters).
    pub stats_sources: Vec<StatsSource>,
    pub drain_listeners: Option<DrainHook>,
    pub logging: Option<LoggingHook>,
    /// `admin.allow_paths`: when not empty, only a path (with its query) one of them matches is
    /// served; the rest get 403, as in Envoy.
    pub allow_paths: Arc<[outrider_model::StringMatcher]>,
}

/// POST `/drain_listeners`: drains every listener, or only the inbound ones (`true`); returns
/// how many.
pub type DrainHook = Arc<dyn Fn(bool) -> usize + Send + Sync>;

/// POST `/logging`: sets every logger's level (`Some`), or just tells the filter in force.
pub type LoggingHook = Arc<dyn Fn(Option<&str>) -> Result<String, String> + Send + Sync>;

/// Where `/listeners` reads the bound listeners from: the data plane, when there is one.
pub type ListenerSource = Arc<dyn Fn() -> Vec<(String, std::net::SocketAddr)> + Send + Sync>;

impl AdminState {
    pub fn new(
        bootstrap: Arc<Bootstrap>,
        xds: Arc<ArcSwap<ClientStatus>>,
        server_info: ServerInfoSource,
    ) -> Self {
        AdminState {
            bootstrap,
            xds,
            server_info: Arc::new(server_info),
            control: AdminControl::new(),
            listeners: Arc::new(Vec::new),
            tables: None,
            stats_sources: Vec::new(),
            drain_listeners: None,
            logging: None,
            allow_paths: Arc::new([]),
        }
    }

    /// Serves only the paths `admin.allow_paths` matches (all when empty).
    pub fn with_allow_paths(mut self, allow_paths: Vec<outrider_model::StringMatcher>) -> Self {
        self.allow_paths = allow_paths.into();
        self
    }

    /// Whether `path_and_query` may be served.
    pub fn path_allowed(&self, path_and_query: &str) -> bool {
        self.allow_paths.is_empty() || self.allow_paths.iter().any(|m| m.matches(path_and_query))
    }

    /// Lets POST `/drain_listeners` drain the data plane's listeners.
    pub fn with_drain_listeners(mut self, drain: DrainHook) -> Self {
        self.drain_listeners = Some(drain);
        self
    }

    /// Lets POST `/logging` change the log level.
    pub fn with_logging(mut self, logging: LoggingHook) -> Self {
        self.logging = Some(logging);
        self
    }

    /// Shows the data plane's clusters and endpoints (`/stats`, `/clusters`).
    pub fn with_tables(mut self, tables: Arc<Tables>) -> Self {
        self.tables = Some(tables);
        self
    }

    /// Adds stats kept outside the tables to `/stats`.
    pub fn with_stats(mut self, source: StatsSource) -> Self {
        self.stats_sources.push(source);
        self
    }

    /// Shows the data plane's bound listeners at `/listeners`.
    pub fn with_listeners(mut self, listeners: ListenerSource) -> Self {
        self.listeners = listeners;
        self
    }
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("server_info", &self.server_info)
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

/// Operator requests made through the admin interface. `watch` channels so that the binary can
/// both read the current value and wait for a change, and so that a request made before anyone
/// subscribed is not lost.
#[derive(Debug, Clone)]
pub struct AdminControl {
    quit: Arc<watch::Sender<bool>>,
    health_check_failed: Arc<watch::Sender<bool>>,
}

impl Default for AdminControl {
    fn default() -> Self {
        Self::new()
    }
}

impl AdminControl {
    pub fn new() -> Self {
        AdminControl {
            quit: Arc::new(watch::channel(false).0),
            health_check_failed: Arc::new(watch::channel(false).0),
        }
    }

    /// Becomes `true` once `POST /quitquitquit` was received: the binary should shut down.
    pub fn quit_requested(&self) -> watch::Receiver<bool> {
        self.quit.subscribe()
    }

    /// `true` between `POST /healthcheck/fail` and `POST /healthcheck/ok`: health check filters
    /// should fail, and the server reports `DRAINING`.
    pub fn health_check_failed(&self) -> watch::Receiver<bool> {
        self.health_check_failed.subscribe()
    }

    pub fn is_health_check_failed(&self) -> bool {
        *self.health_check_failed.borrow()
    }

    pub(crate) fn request_quit(&self) {
        self.quit.send_replace(true);
    }

    pub(crate) fn set_health_check_failed(&self, failed: bool) {
        self.health_check_failed.send_replace(failed);
    }
}
