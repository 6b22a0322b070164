//! The scenario suite: runs any xDS client binary against the management server and checks the
//! protocol rules of XDS-SPEC §1 through what the client shows on its admin interface
//! (`/config_dump`, `/ready`, CSDS) and what the server records of its requests.
//!
//! Each scenario starts its own server and its own client process (from a command template with
//! `{bootstrap}` and `{admin_address_path}` placeholders, so Envoy itself can be checked too),
//! waits for conditions with deadlines, and ends with a pass or a failure that says what was
//! expected and what was seen.
//!
//! ```no_run
//! # async fn demo() {
//! use xds_conformance::suite::{ClientCommand, SuiteOptions, run_suite};
//! let client = ClientCommand::new(
//!     "target/debug/outrider",
//!     ["-c", "{bootstrap}", "--admin-address-path", "{admin_address_path}"],
//! );
//! let report = run_suite(&client, &SuiteOptions::default()).await;
//! println!("{}", report.table());
//! assert!(report.all_passed());
//! # }
//! ```

use std::fmt;
use std::path::PathBuf;

use crate::recorder::Protocol;

/// Ends the current scenario with a failure built like `format!`.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::suite::Failure::new(format!($($arg)*)))
    };
}

/// Ends the current scenario with a failure unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            fail!($($arg)*);
        }
    };
}

mod admin;
mod bootstrap;
mod client;
mod config_dump;
mod context;
mod report;
mod resources;
mod runner;
mod scenarios;
mod subscription;
mod upstream;

pub use admin::{AdminClient, AdminResponse, CsdsResource};
pub use bootstrap::BootstrapSpec;
pub use client::{ClientError, ClientProcess, OutputLog};
pub use config_dump::{
    ConfigDump, DumpError, DynamicCluster, DynamicEndpointConfig, DynamicListener,
    DynamicRouteConfig, ErrorState, ListenerState,
};
pub use context::{ClientSetup, Ctx, RunningClient};
pub use report::{Outcome, ScenarioResult, SuiteReport};
pub use runner::{Scenario, run_suite, scenarios};
pub use upstream::Upstream;

/// How to start the client under test. Every argument may contain `{bootstrap}` (the path of
/// the bootstrap the suite wrote) and `{admin_address_path}` (where the client writes its bound
/// admin address, Envoy's `--admin-address-path`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCommand {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments, with placeholders.
    pub args: Vec<String>,
}

impl ClientCommand {
    /// A command from a program and its arguments.
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        ClientCommand {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// The arguments with the placeholders filled in.
    pub fn expand_args(&self, bootstrap: &str, admin_address_path: &str) -> Vec<String> {
        self.args
            .iter()
            .map(|arg| {
                arg.replace("{bootstrap}", bootstrap)
                    .replace("{admin_address_path}", admin_address_path)
            })
            .collect()
    }
}

/// Which ADS flavour a scenario runs with: the bootstrap's `ads_config.api_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// State of the world (`GRPC`).
    Sotw,
    /// Incremental (`DELTA_GRPC`).
    Delta,
}

impl Mode {
    /// `sotw` or `delta`, the prefix of scenario names.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sotw => "sotw",
            Mode::Delta => "delta",
        }
    }

    /// The protocol of the streams a client in this mode must open.
    pub fn protocol(self) -> Protocol {
        match self {
            Mode::Sotw => Protocol::Sotw,
            Mode::Delta => Protocol::Delta,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which scenarios to run and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuiteOptions {
    /// The modes to run every scenario in (a scenario that does not apply to a mode is skipped).
    pub modes: Vec<Mode>,
    /// Only scenarios whose full name (`sotw.nack_keeps_last_good_version`) contains this.
    pub only: Option<String>,
    /// How many scenarios run at once (each runs its own client process).
    pub parallel: usize,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        SuiteOptions {
            modes: vec![Mode::Sotw, Mode::Delta],
            only: None,
            parallel: 2,
        }
    }
}

/// Why a scenario failed: what was expected and what was seen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

impl Failure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Failure(message.into())
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure(e.to_string())
    }
}

impl From<crate::server::ServerError> for Failure {
    fn from(e: crate::server::ServerError) -> Self {
        Failure(format!("the management server: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in_every_argument() {
        let command = ClientCommand::new(
            "outrider",
            [
                "-c",
                "{bootstrap}",
                "--admin-address-path={admin_address_path}",
            ],
        );
        assert_eq!(
            command.expand_args("/tmp/b.json", "/tmp/admin"),
            ["-c", "/tmp/b.json", "--admin-address-path=/tmp/admin"]
        );
    }

    #[test]
    fn modes_name_their_protocol() {
        assert_eq!(Mode::Sotw.as_str(), "sotw");
        assert_eq!(Mode::Delta.to_string(), "delta");
        assert_eq!(Mode::Delta.protocol(), Protocol::Delta);
        assert_eq!(SuiteOptions::default().modes, [Mode::Sotw, Mode::Delta]);
    }
}
