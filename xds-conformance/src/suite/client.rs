//! The client under test as a child process: started from the command template, its stdout and
//! stderr kept (the tail is shown when a scenario fails), its admin address read from the file it
//! writes, killed when the scenario ends.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use super::ClientCommand;

/// How many lines of the client's output are kept.
const OUTPUT_LINES: usize = 2000;
/// How often the admin address file is looked at.
const ADDRESS_POLL: Duration = Duration::from_millis(25);

/// Why the client could not be started or reached.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The client exited (too early).
    #[error("the client exited with {0}")]
    Exited(ExitStatus),
    /// The client did not write its admin address in time.
    #[error("the client wrote no admin address to {path} within {waited:?}{last}")]
    NoAdminAddress {
        path: PathBuf,
        waited: Duration,
        last: String,
    },
    /// An admin request failed at the transport level.
    #[error("admin {path}: {reason}")]
    Admin { path: String, reason: String },
    /// A file of the scenario could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The last lines a process wrote to stdout and stderr, interleaved in arrival order. Cheap to
/// clone; every clone sees the same lines.
#[derive(Clone, Debug, Default)]
pub struct OutputLog {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl OutputLog {
    fn push(&self, line: String) {
        let line = strip_ansi(&line);
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == OUTPUT_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The last `n` lines, joined.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let skip = lines.len().saturating_sub(n);
        let tail: Vec<&str> = lines.iter().skip(skip).map(String::as_str).collect();
        tail.join("\n")
    }

    /// How many lines are kept.
    pub fn len(&self) -> usize {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A running client. Killed when dropped.
#[derive(Debug)]
pub struct ClientProcess {
    child: Child,
    output: OutputLog,
    exited: Option<ExitStatus>,
}

impl ClientProcess {
    /// Starts the client with the placeholders of `command` filled in.
    pub fn spawn(
        command: &ClientCommand,
        bootstrap: &Path,
        admin_address_path: &Path,
    ) -> Result<ClientProcess, ClientError> {
        let args = command.expand_args(
            &bootstrap.to_string_lossy(),
            &admin_address_path.to_string_lossy(),
        );
        let mut child = Command::new(&command.program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A scenario that fails or times out drops its client: it must not outlive it.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ClientError::Spawn {
                program: command.program.display().to_string(),
                source,
            })?;
        let output = OutputLog::default();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(collect(stdout, output.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(collect(stderr, output.clone()));
        }
        Ok(ClientProcess {
            child,
            output,
            exited: None,
        })
    }

    /// What the client wrote so far.
    pub fn output(&self) -> &OutputLog {
        &self.output
    }

    /// The exit status, if the client has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Fails if the client has exited.
    pub fn ensure_running(&mut self) -> Result<(), ClientError> {
        match self.exit_status() {
            Some(status) => Err(ClientError::Exited(status)),
            None => Ok(()),
        }
    }

    /// Waits for the client to write `127.0.0.1:PORT` to `path` (Envoy's
    /// `--admin-address-path`), failing early if it exits.
    pub async fn admin_address(
        &mut self,
        path: &Path,
        timeout: Duration,
    ) -> Result<SocketAddr, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::new();
        loop {
            self.ensure_running()?;
            match tokio::fs::read_to_string(path).await {
                Ok(text) => match parse_admin_address(&text) {
                    Some(address) => return Ok(address),
                    None => last = format!(" (last content: {text:?})"),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => last = format!(" (last error: {e})"),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::NoAdminAddress {
                    path: path.to_path_buf(),
                    waited: timeout,
                    last,
                });
            }
            tokio::time::sleep(ADDRESS_POLL).await;
        }
    }

    /// Kills the client and reaps it.
    pub async fn kill(&mut self) {
        if self.exit_status().is_none() {
            // An error here means it already exited, which is what we want.
            let _ = self.child.kill().await;
        }
    }
}

/// Envoy writes the address alone (`127.0.0.1:9901`), possibly with a newline.
fn parse_admin_address(text: &str) -> Option<SocketAddr> {
    text.trim().parse().ok()
}

/// `line` without ANSI escape sequences (colours of a logger that assumed a terminal).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final byte in @..~ ; a lone ESC is dropped.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn collect(stream: impl AsyncRead + Unpin, output: OutputLog) {
    let mut lines = BufReader::new(stream).lines();
    // Read until the process closes its end; an unreadable (non UTF-8) line ends the copy,
    // which only costs us log lines.
    while let Ok(Some(line)) = lines.next_line().await {
        output.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_log_keeps_the_tail() {
        let log = OutputLog::default();
        assert!(log.is_empty());
        for i in 0..(OUTPUT_LINES + 5) {
            log.push(format!("line {i}"));
        }
        assert_eq!(log.len(), OUTPUT_LINES);
        assert_eq!(
            log.tail(2),
            format!("line {}\nline {}", OUTPUT_LINES + 3, OUTPUT_LINES + 4)
        );
    }

    #[test]
    fn colours_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"),
            "2026  INFO x"
        );
        assert_eq!(strip_ansi("plain"), "plain");
    }

    #[test]
    fn admin_addresses_parse_with_or_without_newline() {
        assert_eq!(
            parse_admin_address("127.0.0.1:9901\n"),
            Some("127.0.0.1:9901".parse().expect("address"))
        );
        assert_eq!(parse_admin_address(""), None);
        assert_eq!(parse_admin_address("127.0.0.1"), None);
    }

    #[tokio::test]
    async fn a_client_that_exits_early_is_reported_with_its_output() {
        let command = ClientCommand::new("sh", ["-c", "echo started {bootstrap}; exit 3"]);
        let dir = std::env::temp_dir();
        let mut process = ClientProcess::spawn(
            &command,
            Path::new("/b.json"),
            &dir.join("xds-conformance-never-written"),
        )
        .expect("sh starts");
        let err = process
            .admin_address(
                &dir.join("xds-conformance-never-written"),
                Duration::from_secs(5),
            )
            .await
            .expect_err("no address");
        assert!(matches!(err, ClientError::Exited(_)), "{err}");
        // The reader task may lag the exit by a moment.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while process.output().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(process.output().tail(1), "started /b.json");
    }

    #[tokio::test]
    async fn the_admin_address_is_read_once_written() {
        let path =
            std::env::temp_dir().join(format!("xds-conformance-admin-{}-test", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let script = format!(
            "sleep 0.2; echo 127.0.0.1:4321 > {}; sleep 30",
            path.display()
        );
        let command = ClientCommand::new("sh", ["-c", script.as_str()]);
        let mut process =
            ClientProcess::spawn(&command, Path::new("/b.json"), &path).expect("sh starts");
        let address = process
            .admin_address(&path, Duration::from_secs(5))
            .await
            .expect("written");
        assert_eq!(address.port(), 4321);
        process.kill().await;
        let _ = std::fs::remove_file(&path);
        assert!(process.exit_status().is_some());
        let _ = std::fs::remove_file(&path);
    }
}
