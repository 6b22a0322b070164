//! The workers: N OS threads, each with a `current_thread` tokio runtime and a `LocalSet`, each
//! serving its own socket of every listener with its own upstream connection pools. A worker
//! shares nothing mutable with the others on the request path: it reads the tables with
//! `ArcSwap::load` and keeps its caches in `Rc`/`RefCell`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use outrider_model::Listener;
use outrider_tables::Tables;
use tokio::sync::{mpsc, watch};

use crate::connection::serve_connection;
use crate::downstream_connections::{
    DownstreamConnections, GlobalConnectionLimit, listener_stat_name,
};
use crate::http_stats::HttpStatsRegistry;
use crate::listener_manager::{ActiveListener, ListenerManager};
use crate::tls_stats::TlsStatsRegistry;
use crate::worker_context::WorkerContext;
use crate::worker_handle::{WorkerCommand, WorkerHandle};

/// How the data plane runs.
#[derive(Debug, Clone)]
pub struct DataplaneOptions {
    /// Worker threads (Envoy's `--concurrency`).
    pub concurrency: usize,
    /// How long a drained listener's connections may finish (Envoy's `--drain-time-s`, 600 s).
    pub drain_time: Duration,
    /// Whether 503s for want of a healthy endpoint say why in `x-outrider-no-healthy-upstream`.
    pub explain_no_healthy_upstream: bool,
    /// The overload manager's global downstream connection limit (`None`: no limit).
    pub max_downstream_connections: Option<GlobalConnectionLimit>,
    /// Per-listener connection limits by listener name (Envoy's runtime keys
    /// `envoy.resource_limits.listener.<name>.connection_limit`).
    pub listener_connection_limits: BTreeMap<String, u64>,
    /// The most request-body bytes all workers keep for retries at once (runtime key
    /// `outrider.retry_buffer_budget_bytes`); past it, bodies are streamed without retries.
    pub retry_buffer_budget: u64,
}

/// `retry_buffer_budget` unless a runtime key says otherwise: 128 MiB.
pub const DEFAULT_RETRY_BUFFER_BUDGET: u64 = 128 * 1024 * 1024;

impl Default for DataplaneOptions {
    fn default() -> Self {
        DataplaneOptions {
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            drain_time: Duration::from_secs(600),
            explain_no_healthy_upstream: true,
            max_downstream_connections: None,
            listener_connection_limits: BTreeMap::new(),
            retry_buffer_budget: DEFAULT_RETRY_BUFFER_BUDGET,
        }
    }
}

/// The running data plane.
pub struct Dataplane {
    tables: Arc<Tables>,
    http_stats: HttpStatsRegistry,
    tls_stats: TlsStatsRegistry,
    cluster_tls_stats: TlsStatsRegistry,
    connections: Arc<DownstreamConnections>,
    workers: Vec<WorkerHandle>,
    listeners: ListenerManager,
}

impl Dataplane {
    /// Starts the worker threads; they serve nothing until [`Dataplane::run`] hands them
    /// listeners.
    pub fn start(tables: Arc<Tables>, options: DataplaneOptions) -> io::Result<Dataplane> {
        let count = options.concurrency.max(1);
        let mut workers = Vec::with_capacity(count);
        let http_stats = HttpStatsRegistry::default();
        let tls_stats = TlsStatsRegistry::default();
        let cluster_tls_stats = TlsStatsRegistry::default();
        let connections = Arc::new(DownstreamConnections::new(
            options.max_downstream_connections,
            &options.listener_connection_limits,
        ));
        for index in 0..count {
            let (commands, receiver) = mpsc::unbounded_channel();
            let tables = tables.clone();
            let options = options.clone();
            let stats = (
                http_stats.clone(),
                (tls_stats.clone(), cluster_tls_stats.clone()),
            );
            let shared = connections.clone();
            let thread = std::thread::Builder::new()
                .name(format!("outrider-worker-{index}"))
                .spawn(move || run_worker(index, tables, options, stats, shared, receiver))?;
            workers.push(WorkerHandle {
                commands,
                thread: Some(thread),
            });
        }
        Ok(Dataplane {
            tables,
            http_stats,
            tls_stats,
            cluster_tls_stats,
            connections,
            workers,
            listeners: ListenerManager::default(),
        })
    }

    /// Follows the tables' listeners until `shutdown` completes. Runs on the control runtime.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut published = self.tables.subscribe();
        loop {
            self.listeners.reconcile(&self.tables, &self.workers);
            tokio::select! {
                changed = published.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = &mut shutdown => return,
            }
        }
    }

    /// The global downstream connection limit and its listeners' overflow counts (`/stats`).
    pub fn downstream_connections(&self) -> Arc<DownstreamConnections> {
        self.connections.clone()
    }

    /// The listeners' `ssl.*` counters, by scope (`/stats`).
    pub fn tls_stats(&self) -> TlsStatsRegistry {
        self.tls_stats.clone()
    }

    /// The clusters' `ssl.*` counters, by cluster name (`/stats`).
    pub fn cluster_tls_stats(&self) -> TlsStatsRegistry {
        self.cluster_tls_stats.clone()
    }

    /// The HTTP connection managers' counters, by stat prefix (`/stats`).
    pub fn http_stats(&self) -> HttpStatsRegistry {
        self.http_stats.clone()
    }

    /// Admin `/drain_listeners` (`inbound_only`: `?inboundonly`); returns how many listeners
    /// started draining.
    pub fn drain_listeners(&self, inbound_only: bool) -> usize {
        self.listeners.drain_listeners(inbound_only, &self.workers)
    }

    /// The listeners being served, with their bound addresses.
    pub fn listeners(&self) -> Vec<ActiveListener> {
        self.listeners.active()
    }

    /// The bound address of a listener, by name.
    pub fn listener_address(&self, name: &str) -> Option<SocketAddr> {
        self.listeners()
            .into_iter()
            .find(|l| l.config.name == name)
            .map(|l| l.address)
    }
}

impl Drop for Dataplane {
    /// Closing the command channels ends the workers; their connections end with them.
    fn drop(&mut self) {
        let threads: Vec<JoinHandle<()>> = self
            .workers
            .iter_mut()
            .filter_map(|w| w.thread.take())
            .collect();
        self.workers.clear();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn run_worker(
    index: usize,
    tables: Arc<Tables>,
    options: DataplaneOptions,
    (http_stats, tls_stats): (HttpStatsRegistry, (TlsStatsRegistry, TlsStatsRegistry)),
    connections: Arc<DownstreamConnections>,
    mut commands: mpsc::UnboundedReceiver<WorkerCommand>,
) {
    // This thread's counters go to its own shard.
    outrider_tables::set_current_worker(index);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "cannot start the worker runtime");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let context = Rc::new(WorkerContext::new(tables, options, http_stats, tls_stats));
        // Access-log lines are written once a second (Envoy's default flush interval), and at
        // the worker's end.
        let flushing = context.access_log.clone();
        let flusher = tokio::task::spawn_local(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                flushing.flush();
            }
        });
        let mut draining: HashMap<u64, watch::Sender<bool>> = HashMap::new();
        while let Some(command) = commands.recv().await {
            match command {
                WorkerCommand::Serve {
                    id,
                    listener,
                    socket,
                } => {
                    let (drain, drained) = watch::channel(false);
                    draining.insert(id, drain);
                    match tokio::net::TcpListener::from_std(socket) {
                        Ok(socket) => {
                            tokio::task::spawn_local(accept_loop(
                                context.clone(),
                                connections.clone(),
                                listener,
                                socket,
                                drained,
                            ));
                        }
                        Err(e) => {
                            tracing::error!(worker = index, error = %e, "cannot register a listening socket");
                        }
                    }
                }
                WorkerCommand::Drain { id } => {
                    if let Some(drain) = draining.remove(&id) {
                        drain.send_replace(true);
                    }
                }
            }
        }
        flusher.abort();
        context.access_log.flush();
    });
}

/// Accepts until the listener is drained; each connection is served on this worker, unless
/// the global connection limit refuses it (closed at once, as Envoy closes it).
async fn accept_loop(
    context: Rc<WorkerContext>,
    connections: Arc<DownstreamConnections>,
    listener: Arc<Listener>,
    socket: tokio::net::TcpListener,
    drained: watch::Receiver<bool>,
) {
    let mut stop = drained.clone();
    let mut failing = AcceptFailures::default();
    let stat_name = match socket.local_addr() {
        Ok(bound) => listener_stat_name(&listener, bound),
        Err(_) => listener_stat_name(&listener, listener.address),
    };
    let terminates_tls = listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.as_ref())
        .any(|chain| chain.tls.is_some());
    let tls_counters = terminates_tls.then(|| context.tls_stats.scope(&stat_name));
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    failing.recovered(&listener.name);
                    let Some(slot) = connections.admit(&listener, &stat_name) else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let serve = serve_connection(
                        context.clone(),
                        listener.clone(),
                        stream,
                        peer,
                        drained.clone(),
                        slot,
                        tls_counters.clone(),
                    );
                    tokio::task::spawn_local(serve);
                }
                // Out of file descriptors and the like: keep the listener and back off, longer
                // while it lasts, so a persistent error neither spins nor floods the log.
                Err(e) => {
                    let pause = failing.failed(&listener.name, &e);
                    tokio::time::sleep(pause).await;
                }
            },
            _ = stop.wait_for(|d| *d) => return,
        }
    }
}

/// A listener's run of failed accepts: the pause before the next (10 ms, doubling to 1 s)
/// and one log line per 10 s at most, with the count since the last.
#[derive(Default)]
struct AcceptFailures {
    pause: Duration,
    logged: Option<tokio::time::Instant>,
    unlogged: u64,
}

impl AcceptFailures {
    const FIRST_PAUSE: Duration = Duration::from_millis(10);
    const MAX_PAUSE: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(10);

    fn failed(&mut self, listener: &str, error: &io::Error) -> Duration {
        self.pause = (self.pause * 2).clamp(Self::FIRST_PAUSE, Self::MAX_PAUSE);
        self.unlogged += 1;
        let now = tokio::time::Instant::now();
        if self
            .logged
            .is_none_or(|at| now.duration_since(at) >= Self::LOG_EVERY)
        {
            tracing::warn!(
                listener,
                %error,
                failures = self.unlogged,
                pause_ms = self.pause.as_millis(),
                "accept failing; backing off"
            );
            self.logged = Some(now);
            self.unlogged = 0;
        }
        self.pause
    }

    /// Accepting again: the pause starts over, the log limit does not (errors that come and
    /// go would otherwise log a line per cycle).
    fn recovered(&mut self, listener: &str) {
        if self.pause.is_zero() {
            return;
        }
        self.pause = Duration::ZERO;
        let now = tokio::time::Instant::now();
        if self
            .logged
            .is_none_or(|at| now.duration_since(at) >= Self::LOG_EVERY)
        {
            tracing::info!(listener, failures = self.unlogged, "accepting again");
            self.logged = Some(now);
            self.unlogged = 0;
        }
    }
}
