//! Helpers shared by the end-to-end tests: running the real binary and talking to its admin
//! interface over plain HTTP/1.1.

#![allow(dead_code, reason = "each test binary uses a different subset")]

pub mod https;
pub mod pki;
pub mod raw_http;
pub mod websocket;
pub mod xds_proxy;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped, with its output kept in files for failure messages.
pub struct Running {
    child: Child,
    pub stderr_path: PathBuf,
}

impl Running {
    pub fn start(program: &str, args: &[&str], dir: &Path) -> Running {
        let stderr_path = dir.join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr log");
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("the binary starts");
        Running { child, stderr_path }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The process id, for tools that act on the running process (`prlimit`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident set, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

/// Lets process `pid` open `wanted` file descriptors: raises its soft limit to its hard one
/// (`prlimit`) when the soft one is lower. Panics when even the hard limit is too low.
pub fn allow_open_files(pid: u32, wanted: u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [soft, hard] = numbers[..] else {
        panic!("unexpected limits line: {line}");
    };
    assert!(
        hard >= wanted,
        "{wanted} descriptors wanted, the hard limit is {hard}"
    );
    if soft >= wanted {
        return;
    }
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={hard}:{hard}"),
        ])
        .status()
        .expect("prlimit");
    assert!(status.success(), "prlimit failed");
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory under the system temp dir, unique to this test, removed when dropped.
pub fn temp_dir(name: &str) -> TempDir {
    let path = std::env::temp_dir().join(format!("outrider-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).expect("temp dir");
    TempDir(path)
}

/// `hcm_extra` YAML (see `xds_proxy::http_listener`) for one file access log, `name`,
/// writing to `path` in `text_format` (YAML double-quoted: `\n` ends an entry).
pub fn file_access_log(name: &str, path: &Path, text_format: &str) -> String {
    format!(
        r#"      access_log:
      - name: {name}
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
          path: {}
          log_format: {{ text_format: "{text_format}" }}"#,
        path.display()
    )
}

/// The lines of a log file; none while it does not exist.
pub fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A directory that is removed, with what is in it, when dropped. Declare it before the
/// `Running` process that writes into it, so the process is gone first.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits for `condition` to return `Some`, checking every 20 ms, up to `deadline`.
pub fn wait_for<T>(deadline: Duration, mut condition: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = condition() {
            return Some(value);
        }
        if start.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads the address the binary wrote to `--admin-address-path`.
pub fn admin_address(path: &Path, process: &Running) -> SocketAddr {
    wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })
    .unwrap_or_else(|| panic!("no admin address written; stderr:\n{}", process.stderr()))
}

/// `GET path` over HTTP/1.1; returns the status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path)
}

/// `POST path` (no body) over HTTP/1.1; returns the status code and body.
pub fn http_post(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "POST", path)
}

fn http_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The JSON of `GET path`, if it answered 200.
pub fn get_json(addr: SocketAddr, path: &str) -> Option<serde_json::Value> {
    let (status, body) = http_get(addr, path).ok()?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}
