//! The `outrider-upstream-server` binary: flags reach the server, SIGTERM stops it cleanly.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Proto, TestClient};
use http::StatusCode;

#[tokio::test]
async fn binary_serves_with_its_flags_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_outrider-upstream-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--name",
            "cli",
            "--fail-every",
            "2",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().expect("piped stderr");
    // The bound address is only known from the log line (port 0). The reader keeps draining
    // stderr afterwards so the server's shutdown log has somewhere to go.
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let reader = std::thread::spawn(move || {
        let mut addr_tx = Some(addr_tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let addr = line
                .contains("serving HTTP/1.1")
                .then(|| line.split("addr=").nth(1)?.split_whitespace().next())
                .flatten();
            if let (Some(addr), Some(tx)) = (addr, addr_tx.take()) {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = addr_rx.await.expect("address logged");

    let client = TestClient::new(Proto::Http1);
    let url = format!("http://{addr}/");
    let first = client.get(&url).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-upstream-name"), Some("cli"));
    assert_eq!(
        client.get(&url).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    drop(client);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("wait task")
        .expect("wait");
    assert!(status.success(), "{status:?}");
    reader.join().expect("stderr reader");
}

#[test]
fn invalid_flags_fail_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_outrider-upstream-server"))
        .args(["--listen", "127.0.0.1:0", "--fail-ratio", "2"])
        .output()
        .expect("binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fail_ratio"), "{stderr}");
}
