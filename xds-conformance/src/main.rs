//! `xds-conformance serve`: serve a snapshot file over ADS and log what a client does with it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use xds_conformance::{FileWatcher, ManagementServer, ServerOptions};

#[derive(Parser)]
#[command(
    name = "xds-conformance",
    about = "An xDS v3 management server for testing xDS clients"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a snapshot file (reloaded on change) over ADS, SotW and delta.
    Serve {
        /// The snapshot file (YAML: version, clusters, endpoints, listeners, routes, secrets,
        /// resources).
        #[arg(long)]
        snapshot: PathBuf,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:18000")]
        address: SocketAddr,
        /// Answer a named (EDS/RDS) request only when it names every resource of its type, as
        /// go-control-plane does in ADS mode.
        #[arg(long)]
        ads_strict: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve {
            snapshot,
            address,
            ads_strict,
        } => serve(snapshot, address, ads_strict).await,
    }
}

async fn serve(snapshot: PathBuf, address: SocketAddr, ads_strict: bool) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let options = ServerOptions::default().ads_strict(ads_strict);
    let server = ManagementServer::start_on(listener, options)?;
    let _watcher = FileWatcher::serve(&snapshot, &server)?;
    tracing::info!(address = %server.addr(), file = %snapshot.display(), ads_strict, "serving; Ctrl-C to stop");
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    server.shutdown().await;
    Ok(())
}
