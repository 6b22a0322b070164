//! The command line, with Envoy's flag names where Envoy has the flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "outrider",
    version,
    about = "A sidecar proxy configured by any xDS v3 control plane",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a bootstrap file and exit: non-zero, with the file, field and reason, if invalid.
    /// Report, per feature the configuration uses, whether it is enforced, rejected (why) or
    /// ignored as harmless (why); exit 1 when anything is rejected.
    Validate {
        /// A bootstrap, an xDS resource with its `@type`, a directory of them, or a saved Envoy
        /// `/config_dump` (YAML or JSON).
        #[arg(short = 'c', long = "config-path")]
        config_path: PathBuf,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the built-in management server serving a snapshot file, and the proxy subscribed to it.
    Demo(DemoArgs),
    /// Ask a running Outrider why a cluster has (no) healthy upstream (its admin `/diagnose`).
    Diagnose {
        /// The admin interface's address.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: std::net::SocketAddr,
        /// The cluster to diagnose.
        #[arg(long)]
        cluster: String,
        /// Print the JSON report instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Envoy's `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Serve,
    Validate,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The bootstrap (Envoy's `Bootstrap`, YAML or JSON).
    #[arg(short = 'c', long = "config-path")]
    pub config_path: Option<PathBuf>,
    /// `validate` checks the bootstrap and exits as Envoy does: `OK`, or the first problem with
    /// its field path (`outrider validate` reports every feature instead).
    #[arg(long, value_enum, default_value = "serve")]
    pub mode: Mode,
    /// Worker threads for the data plane (default: available cores).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Overrides `node.id`.
    #[arg(long)]
    pub service_node: Option<String>,
    /// Overrides `node.cluster`.
    #[arg(long)]
    pub service_cluster: Option<String>,
    /// trace, debug, info, warning/warn, error, critical, off.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    pub log_level: String,
    /// Use incremental (delta) xDS even if the bootstrap says GRPC.
    #[arg(long)]
    pub xds_delta: bool,
    /// Seconds a removed or changed listener's connections may take to finish (Envoy's flag).
    #[arg(long, default_value_t = 600)]
    pub drain_time_s: u64,
    /// Write the admin server's bound address to this file once it listens (Envoy's flag).
    #[arg(long)]
    pub admin_address_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The snapshot the built-in management server serves; edits are picked up live.
    #[arg(long, default_value = "examples/demo.yaml")]
    pub snapshot: PathBuf,
    /// Where the built-in management server listens.
    #[arg(long, default_value = "127.0.0.1:18000")]
    pub xds_address: std::net::SocketAddr,
    /// Where the admin interface listens.
    #[arg(long, default_value = "127.0.0.1:9901")]
    pub admin_address: std::net::SocketAddr,
    /// Use incremental (delta) xDS.
    #[arg(long)]
    pub xds_delta: bool,
    /// Write the admin server's bound address to this file once it listens.
    #[arg(long)]
    pub admin_address_path: Option<PathBuf>,
    /// Do not start the demo upstreams (127.0.0.1:8081-8083 and the gRPC one on 8091).
    #[arg(long)]
    pub no_upstreams: bool,
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    pub log_level: String,
}
