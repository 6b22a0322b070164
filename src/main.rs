//! The `outrider` binary: command line, bootstrap, wiring.

use std::process::ExitCode;

use clap::Parser;
use outrider::bootstrap::{self, Overrides};
use outrider::cli::DemoArgs;
use outrider::cli::{Cli, Command, Mode, RunArgs};
use outrider::{demo, logging, proxy};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Validate { config_path, json }) => migration_report(&config_path, json),
        Some(Command::Demo(args)) => demo(args),
        Some(Command::Diagnose {
            admin,
            cluster,
            json,
        }) => diagnose(admin, &cluster, json),
        None if cli.run.mode == Mode::Validate => match &cli.run.config_path {
            Some(path) => validate(path, &overrides(&cli.run)),
            None => missing_config(),
        },
        None => run(cli.run),
    }
}

fn overrides(args: &RunArgs) -> Overrides {
    Overrides {
        service_node: args.service_node.clone(),
        service_cluster: args.service_cluster.clone(),
        delta: args.xds_delta,
    }
}

fn missing_config() -> ExitCode {
    eprintln!(
        "outrider: a bootstrap is required: outrider -c bootstrap.yaml (or try: outrider demo)"
    );
    ExitCode::from(2)
}

#[allow(
    clippy::print_stdout,
    reason = "the command's answer, as Envoy's --mode validate prints it"
)]
fn validate(path: &std::path::Path, overrides: &Overrides) -> ExitCode {
    match bootstrap::load(path, overrides) {
        Ok(loaded) => {
            println!("configuration '{}' OK", path.display());
            if !loaded.ignored.is_empty() {
                println!("accepted but not acted on: {}", loaded.ignored.join(", "));
            }
            for (listener, skipped) in loaded
                .static_listeners
                .iter()
                .flat_map(|l| l.skipped_filters().map(move |skipped| (l.name(), skipped)))
            {
                println!(
                    "listener {listener}: HTTP filter {} ({}) left out: {}",
                    skipped.name, skipped.type_name, skipped.why
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout, reason = "the command's answer")]
fn migration_report(path: &std::path::Path, json: bool) -> ExitCode {
    match outrider::migration::report(path, &Overrides::default()) {
        Ok(report) => {
            if json {
                println!("{:#}", outrider::migration::json(&report));
            } else {
                print!("{}", outrider::migration::text(&report));
            }
            if report.loads() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("outrider: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout, reason = "the command's answer")]
fn diagnose(admin: std::net::SocketAddr, cluster: &str, json: bool) -> ExitCode {
    match outrider::diagnose::fetch(admin, cluster, json) {
        Ok((200, body)) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("outrider: {admin} answered {status}: {}", body.trim());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("outrider: cannot reach the admin interface at {admin}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    let Some(path) = args.config_path.clone() else {
        return missing_config();
    };
    if let Err(e) = logging::init(&args.log_level) {
        eprintln!("outrider: {e}");
        return ExitCode::from(2);
    }
    let bootstrap = match bootstrap::load(&path, &overrides(&args)) {
        Ok(bootstrap) => bootstrap,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let options = proxy::RunOptions {
        concurrency: args
            .concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        admin_address_path: args.admin_address_path,
        drain_time: std::time::Duration::from_secs(args.drain_time_s),
        log_level: args.log_level,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("outrider: starting the control runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(proxy::serve(
        bootstrap,
        options,
        proxy::termination_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outrider: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn demo(args: DemoArgs) -> ExitCode {
    if let Err(e) = logging::init(&args.log_level) {
        eprintln!("outrider: {e}");
        return ExitCode::from(2);
    }
    on_control_runtime("outrider demo", demo::run(args))
}

/// Runs the control thread's work (xDS client, built-in servers) on a current-thread runtime:
/// the admin server has its own thread, and data-plane workers will have theirs.
fn on_control_runtime(what: &str, work: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{what}: starting the control runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{what}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
