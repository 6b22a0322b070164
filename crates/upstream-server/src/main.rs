//! `outrider-upstream-server`: runs one [`UpstreamServer`] (and optionally a gRPC health server)
//! until SIGINT/SIGTERM. Used by the load benchmark and by hand.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use outrider_upstream_server::{GrpcUpstream, UpstreamConfig, UpstreamServer};

#[derive(Debug, Parser)]
#[command(version, about = "An upstream HTTP/1.1 + h2c test server for Outrider")]
struct Args {
    /// Address to serve HTTP/1.1 and h2c on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Sent as `x-upstream-name` on every response.
    #[arg(long, default_value = "upstream")]
    name: String,
    /// Share of requests, in [0, 1], answered with --fail-status.
    #[arg(long, default_value_t = 0.0)]
    fail_ratio: f64,
    /// Status of injected failures.
    #[arg(long, default_value_t = 503)]
    fail_status: u16,
    /// Fail exactly every n-th request (deterministic alternative to --fail-ratio).
    #[arg(long)]
    fail_every: Option<u32>,
    /// Latency added to every response, in milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Also serve grpc.health.v1.Health on this address.
    #[arg(long)]
    grpc_listen: Option<SocketAddr>,
    /// Runtime worker threads [default: the CPUs this process may run on, e.g. 1 under
    /// `taskset -c 1`].
    #[arg(long)]
    threads: Option<NonZeroUsize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Plain text when logging to a file (the load benchmark) or a test's pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // available_parallelism honours the affinity mask, so a pinned server gets one thread.
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    // One CPU: a current-thread runtime avoids work-stealing overhead entirely.
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .context("building the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = UpstreamConfig::new(args.name)
        .with_fail_ratio(args.fail_ratio)
        .with_fail_status(args.fail_status);
    config.fail_every = args.fail_every;
    config.latency = args.latency_ms.map(Duration::from_millis);
    let server = UpstreamServer::bind(args.listen, config).await?;
    tracing::info!(addr = %server.addr(), name = server.name(), "serving HTTP/1.1 and h2c");
    let grpc = match args.grpc_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let grpc = GrpcUpstream::start(listener)?;
            tracing::info!(addr = %grpc.addr(), "serving grpc.health.v1.Health");
            Some(grpc)
        }
        None => None,
    };
    wait_for_signal().await?;
    tracing::info!(
        requests = server.requests_served(),
        failures = server.failures_injected(),
        connections = server.connections_accepted(),
        "shutting down"
    );
    if let Some(grpc) = grpc {
        grpc.shutdown().await;
    }
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT"),
        _ = term.recv() => Ok(()),
    }
}
