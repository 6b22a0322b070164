//! `xds-conformance serve`: serve a snapshot file over ADS and log what a client does with it.
//! `xds-conformance suite -- <client command>`: run the scenario suite against an xDS client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use xds_conformance::suite::{ClientCommand, Mode, SuiteOptions, run_suite, scenarios};
use xds_conformance::{Behavior, FileWatcher, ManagementServer, ServerOptions};

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
        /// Behave as go-control-plane v0.12 (grpc-go) really does: re-send a NACKed version at
        /// once, resources in random order, an empty name list as a wildcard, reporting streams
        /// with grpc-go's late response headers.
        #[arg(long)]
        go_control_plane: bool,
    },
    /// Run the scenario suite against an xDS client and print a pass/fail table; exits non-zero
    /// if a scenario fails. The client command may use {bootstrap} and {admin_address_path}.
    ///
    /// Example: xds-conformance suite --both -- target/debug/outrider -c {bootstrap}
    /// --admin-address-path {admin_address_path}
    Suite(SuiteArgs),
}

#[derive(Args)]
struct SuiteArgs {
    /// Only state-of-the-world scenarios.
    #[arg(long, conflicts_with_all = ["delta", "both"])]
    sotw: bool,
    /// Only delta scenarios.
    #[arg(long, conflicts_with_all = ["sotw", "both"])]
    delta: bool,
    /// Both modes (the default).
    #[arg(long, conflicts_with_all = ["sotw", "delta"])]
    both: bool,
    /// Only scenarios whose name (e.g. `sotw.nack_keeps_last_good_version`) contains this.
    #[arg(long)]
    only: Option<String>,
    /// How many scenarios run at once.
    #[arg(long, default_value_t = 2)]
    parallel: usize,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// The client: program and arguments.
    #[arg(last = true, required_unless_present = "list")]
    command: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // The suite's own log would drown its table: quiet unless RUST_LOG asks.
    let default_level = match cli.command {
        Command::Serve { .. } => "info",
        Command::Suite(_) => "error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve {
            snapshot,
            address,
            ads_strict,
            go_control_plane,
        } => serve(snapshot, address, ads_strict, go_control_plane)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Suite(args) => Ok(suite(args).await),
    }
}

#[allow(
    clippy::print_stdout,
    reason = "the scenario list and the result table are the command's output"
)]
async fn suite(args: SuiteArgs) -> ExitCode {
    if args.list {
        for scenario in scenarios() {
            let modes: Vec<&str> = scenario.modes.iter().map(|m| m.as_str()).collect();
            println!(
                "{:<40} {:<11} {}",
                scenario.name,
                modes.join(","),
                scenario.checks
            );
        }
        return ExitCode::SUCCESS;
    }
    let modes = if args.sotw {
        vec![Mode::Sotw]
    } else if args.delta {
        vec![Mode::Delta]
    } else {
        vec![Mode::Sotw, Mode::Delta]
    };
    let Some((program, rest)) = args.command.split_first() else {
        eprintln!("xds-conformance suite: give the client command after --");
        return ExitCode::from(2);
    };
    let client = ClientCommand::new(program, rest);
    let options = SuiteOptions {
        modes,
        only: args.only,
        parallel: args.parallel.max(1),
    };
    let report = run_suite(&client, &options).await;
    println!("{}", report.table());
    if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn serve(
    snapshot: PathBuf,
    address: SocketAddr,
    ads_strict: bool,
    go_control_plane: bool,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let options = ServerOptions::default().ads_strict(ads_strict);
    let server = ManagementServer::start_on(listener, options)?;
    if go_control_plane {
        server.set_behavior(Behavior::go_control_plane());
    }
    let _watcher = FileWatcher::serve(&snapshot, &server)?;
    tracing::info!(address = %server.addr(), file = %snapshot.display(), ads_strict, go_control_plane, "serving; Ctrl-C to stop");
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    server.shutdown().await;
    Ok(())
}
