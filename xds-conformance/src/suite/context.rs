//! What a scenario works with: its mode, its servers, its client processes (bootstrap written,
//! admin address read), and waits with deadlines on the client's dump and the server's log.
//!
//! Every wait polls or listens until a condition holds or its deadline passes, then fails with
//! what it last saw; nothing sleeps to synchronise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::recorder::{RecordedRequest, RecordedResponse, StreamInfo};
use crate::server::ManagementServer;
use crate::{Behavior, ServerOptions};

use super::admin::{AdminClient, AdminResponse};
use super::bootstrap::BootstrapSpec;
use super::client::{ClientError, ClientProcess, OutputLog};
use super::config_dump::ConfigDump;
use super::subscription::{describe, describe_last};
use super::{ClientCommand, Failure, Mode};

/// How long a check waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);
/// How often the dump is polled while waiting.
pub const POLL: Duration = Duration::from_millis(50);
/// How long a client may take to write its admin address.
const STARTUP: Duration = Duration::from_secs(20);
/// `node.cluster` of every client the suite starts.
pub const NODE_CLUSTER: &str = "xds-conformance";

/// What the runner keeps of a scenario to explain its failure: the servers' logs and the
/// clients' output.
#[derive(Default)]
pub(crate) struct Trace {
    servers: Mutex<Vec<ManagementServer>>,
    outputs: Mutex<Vec<OutputLog>>,
    notes: Mutex<Vec<String>>,
}

impl Trace {
    /// What the scenario measured, for the report.
    pub(crate) fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last requests each server saw and the last lines each client wrote.
    pub(crate) fn explain(&self) -> String {
        let mut out = Vec::new();
        let servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        for (i, server) in servers.iter().enumerate() {
            out.push(format!(
                "server {} ({}) last requests:\n{}",
                i + 1,
                server.addr(),
                indent(&describe_last(&server.requests(), 15))
            ));
        }
        let outputs = self.outputs.lock().unwrap_or_else(|p| p.into_inner());
        for (i, output) in outputs.iter().enumerate() {
            out.push(format!(
                "client {} output (last 30 lines):\n{}",
                i + 1,
                indent(&output.tail(30))
            ));
        }
        out.join("\n")
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How to set up a client beyond the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientSetup {
    /// `cds_config.initial_fetch_timeout`.
    pub cds_initial_fetch_timeout: Option<Duration>,
    /// `lds_config.initial_fetch_timeout`.
    pub lds_initial_fetch_timeout: Option<Duration>,
    /// `ads_config.set_node_on_first_message_only: true`.
    pub node_on_first_message_only: bool,
    /// Events (`cluster_manager.outlier_detection.event_service`) and load reports
    /// (`cluster_manager.load_stats_config`) to the scenario's server.
    pub reporting: bool,
}

/// A scratch directory for one scenario's files, removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(name: &str) -> Result<WorkDir, Failure> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xds-conformance-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
        Ok(WorkDir(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // Leftovers in the temp directory are harmless; a failure here must not hide the result.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One scenario's environment.
pub struct Ctx {
    mode: Mode,
    name: String,
    command: ClientCommand,
    workdir: WorkDir,
    trace: Arc<Trace>,
    clients: usize,
}

impl Ctx {
    pub(crate) fn new(
        name: &str,
        mode: Mode,
        command: ClientCommand,
        trace: Arc<Trace>,
    ) -> Result<Ctx, Failure> {
        Ok(Ctx {
            mode,
            name: name.to_string(),
            command,
            workdir: WorkDir::create(name)?,
            trace,
            clients: 0,
        })
    }

    /// SotW or delta.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Records a measurement for the report (shown next to a pass), e.g. how many reconnect
    /// attempts were seen.
    pub fn note(&self, text: impl Into<String>) {
        self.trace
            .notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(text.into());
    }

    /// `node.id` of the clients of this scenario.
    pub fn node_id(&self) -> String {
        format!("conformance~{}", self.name)
    }

    /// Starts a management server on a free port.
    pub async fn server(&self, options: ServerOptions) -> Result<ManagementServer, Failure> {
        let server = ManagementServer::start(options).await?;
        self.keep(&server);
        Ok(server)
    }

    /// Starts a management server with `behavior` in force from the first request.
    pub async fn server_with(
        &self,
        options: ServerOptions,
        behavior: Behavior,
    ) -> Result<ManagementServer, Failure> {
        let server = self.server(options).await?;
        server.set_behavior(behavior);
        Ok(server)
    }

    /// Starts a management server on `address` (a port the scenario chose), retrying the bind
    /// for a moment: a server just shut down on that port may still hold it.
    pub async fn server_at(
        &self,
        address: SocketAddr,
        options: ServerOptions,
    ) -> Result<ManagementServer, Failure> {
        let listener = listen_again(address).await?;
        let server = ManagementServer::start_on(listener, options)?;
        self.keep(&server);
        Ok(server)
    }

    fn keep(&self, server: &ManagementServer) {
        self.trace
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(server.clone());
    }

    /// Writes a bootstrap pointing at `server`, starts the client and waits for its admin
    /// interface.
    pub async fn client(
        &mut self,
        server: &ManagementServer,
        setup: ClientSetup,
    ) -> Result<RunningClient, Failure> {
        self.clients += 1;
        let bootstrap = self
            .workdir
            .0
            .join(format!("bootstrap-{}.json", self.clients));
        let admin_path = self
            .workdir
            .0
            .join(format!("admin-address-{}", self.clients));
        let spec = BootstrapSpec {
            node_id: self.node_id(),
            node_cluster: NODE_CLUSTER.to_string(),
            mode: self.mode,
            xds_address: server.addr(),
            cds_initial_fetch_timeout: setup.cds_initial_fetch_timeout,
            lds_initial_fetch_timeout: setup.lds_initial_fetch_timeout,
            node_on_first_message_only: setup.node_on_first_message_only,
            reporting: setup.reporting,
        };
        std::fs::write(&bootstrap, spec.to_text()).map_err(|source| ClientError::Write {
            path: bootstrap.clone(),
            source,
        })?;
        let mut process = ClientProcess::spawn(&self.command, &bootstrap, &admin_path)?;
        self.trace
            .outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(process.output().clone());
        let address = process.admin_address(&admin_path, STARTUP).await?;
        Ok(RunningClient {
            process,
            admin: AdminClient::new(address),
        })
    }

    /// The first stream opened after stream `after` (0: any) that has sent a request, checked
    /// to be of this scenario's protocol.
    pub async fn connected_stream(
        &self,
        server: &ManagementServer,
        after: u64,
    ) -> Result<StreamInfo, Failure> {
        self.connected_stream_within(server, after, WAIT).await
    }

    /// [`Ctx::connected_stream`] with its own deadline.
    pub async fn connected_stream_within(
        &self,
        server: &ManagementServer,
        after: u64,
        timeout: Duration,
    ) -> Result<StreamInfo, Failure> {
        let Some(stream) = server
            .wait_for_stream(|s| s.id > after && s.first_request_seen, timeout)
            .await
        else {
            fail!(
                "the client opened no ADS stream (after stream {after}) within {timeout:?}; streams: {:?}",
                server
                    .streams()
                    .iter()
                    .map(|s| (s.id, s.protocol, s.close_reason.clone()))
                    .collect::<Vec<_>>()
            );
        };
        ensure!(
            stream.protocol == self.mode.protocol(),
            "the bootstrap asks for {} but the client opened a {:?} stream",
            match self.mode {
                Mode::Sotw => "GRPC (state of the world)",
                Mode::Delta => "DELTA_GRPC",
            },
            stream.protocol
        );
        Ok(stream)
    }
}

/// Listens on `address` again, retrying for a moment while a server just shut down there still
/// holds it.
pub async fn listen_again(address: SocketAddr) -> Result<tokio::net::TcpListener, Failure> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                fail!("cannot listen on {address} again: {e}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// A client under test with its admin interface. Killed when dropped.
pub struct RunningClient {
    process: ClientProcess,
    admin: AdminClient,
}

impl RunningClient {
    /// The admin interface.
    pub fn admin(&self) -> &AdminClient {
        &self.admin
    }

    /// Fails if the client has exited.
    pub fn ensure_running(&mut self) -> Result<(), Failure> {
        Ok(self.process.ensure_running()?)
    }

    /// One `/config_dump` (with endpoints when `include_eds`).
    pub async fn dump(&mut self, include_eds: bool) -> Result<ConfigDump, Failure> {
        self.ensure_running()?;
        Ok(self.admin.config_dump(include_eds).await?)
    }

    /// `/ready`.
    pub async fn ready(&mut self) -> Result<AdminResponse, Failure> {
        self.ensure_running()?;
        Ok(self.admin.ready().await?)
    }

    /// Polls `/config_dump` until `check` accepts it (returning its value) or [`WAIT`] passes;
    /// then fails with `what`, the last reason `check` gave and the dump's summary.
    pub async fn wait_dump<T>(
        &mut self,
        what: &str,
        include_eds: bool,
        check: impl FnMut(&ConfigDump) -> Result<T, String>,
    ) -> Result<T, Failure> {
        self.wait_dump_for(what, include_eds, WAIT, check).await
    }

    /// [`RunningClient::wait_dump`] with its own deadline.
    pub async fn wait_dump_for<T>(
        &mut self,
        what: &str,
        include_eds: bool,
        timeout: Duration,
        mut check: impl FnMut(&ConfigDump) -> Result<T, String>,
    ) -> Result<T, Failure> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.ensure_running()?;
            let last = match self.admin.config_dump(include_eds).await {
                Ok(dump) => match check(&dump) {
                    Ok(value) => return Ok(value),
                    Err(reason) => format!("{reason}\n  dump: {}", dump.summary()),
                },
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                fail!("{what}: not within {timeout:?}: {last}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Kills the client now (it is also killed when dropped).
    pub async fn kill(&mut self) {
        self.process.kill().await;
    }
}

/// The first request (recorded or to come) matching `pred`, or a failure naming `what` with the
/// last requests the server saw.
pub async fn request(
    server: &ManagementServer,
    what: &str,
    pred: impl Fn(&RecordedRequest) -> bool,
) -> Result<RecordedRequest, Failure> {
    request_within(server, what, WAIT, pred).await
}

/// [`request`] with its own deadline.
pub async fn request_within(
    server: &ManagementServer,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&RecordedRequest) -> bool,
) -> Result<RecordedRequest, Failure> {
    match server.wait_for_request(pred, timeout).await {
        Some(request) => Ok(request),
        None => fail!(
            "{what}: no such request within {timeout:?}; last requests:\n{}",
            indent(&describe_last(&server.requests(), 12))
        ),
    }
}

/// The first response (sent or to come) matching `pred`, or a failure naming `what`.
pub async fn response(
    server: &ManagementServer,
    what: &str,
    pred: impl Fn(&RecordedResponse) -> bool,
) -> Result<RecordedResponse, Failure> {
    match server.wait_for_response(pred, WAIT).await {
        Some(response) => Ok(response),
        None => fail!(
            "{what}: the server sent no such response within {WAIT:?}; last requests:\n{}",
            indent(&describe_last(&server.requests(), 12))
        ),
    }
}

/// The client's answer to `response` (the request carrying its nonce on its stream).
pub async fn answer_to(
    server: &ManagementServer,
    response: &RecordedResponse,
) -> Result<RecordedRequest, Failure> {
    let what = format!(
        "the ACK/NACK of the {} response {:?} (nonce {:?})",
        crate::type_url::short_name(&response.type_url),
        response.version,
        response.nonce
    );
    request(server, &what, |r| {
        r.stream_id == response.stream_id
            && r.type_url() == response.type_url
            && r.response_nonce() == response.nonce
    })
    .await
}

/// The client's answer to `response`, which must be an ACK.
pub async fn ack_of(
    server: &ManagementServer,
    response: &RecordedResponse,
) -> Result<RecordedRequest, Failure> {
    let answer = answer_to(server, response).await?;
    ensure!(
        answer.error_message().is_none(),
        "expected an ACK of the {} response {:?}, got a NACK: {}",
        crate::type_url::short_name(&response.type_url),
        response.version,
        describe(&answer)
    );
    Ok(answer)
}

/// Polls `check` every [`POLL`] until it accepts or `timeout` passes; then fails with `what` and
/// the last reason.
pub async fn until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, Failure> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(reason) if tokio::time::Instant::now() >= deadline => {
                fail!("{what}: not within {timeout:?}: {reason}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn until_returns_the_accepted_value_or_the_last_reason() {
        let mut n = 0;
        let value = until("count", WAIT, || {
            n += 1;
            if n == 3 { Ok(n) } else { Err(format!("n={n}")) }
        })
        .await
        .expect("reaches 3");
        assert_eq!(value, 3);
        let err = until("never", Duration::from_millis(120), || {
            Err::<(), _>("nope".into())
        })
        .await
        .expect_err("times out");
        assert!(err.0.starts_with("never: not within"), "{err}");
        assert!(err.0.ends_with("nope"), "{err}");
    }

    #[tokio::test]
    async fn missing_requests_are_reported_with_the_log() {
        let server = ManagementServer::start(ServerOptions::default())
            .await
            .expect("starts");
        let started = tokio::time::Instant::now();
        let wait = server
            .wait_for_request(|_| true, Duration::from_millis(50))
            .await;
        assert!(wait.is_none());
        assert!(started.elapsed() < WAIT);
        assert_eq!(indent("a\nb"), "    a\n    b");
    }
}
