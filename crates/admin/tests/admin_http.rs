//! The admin pages other than `/config_dump`, over real HTTP/1.1 and h2c, on a server started
//! with `serve` (the caller's runtime) and with `spawn` (its own thread).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{admin_state, client_status, get, request, start};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use outrider_xds::ClientStatus;

/// Deadline for conditions the server must reach; never a synchronisation sleep.
const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn ready_follows_the_published_status() {
    let server = start(ClientStatus::default()).await;
    assert_eq!(
        get(server.addr, "/ready").await,
        (503, "PRE_INITIALIZING\n".to_string())
    );
    // Some configuration accepted, initial fetch not complete.
    server.state.xds.store(Arc::new(client_status(false)));
    assert_eq!(
        get(server.addr, "/ready").await,
        (503, "INITIALIZING\n".to_string())
    );
    server.state.xds.store(Arc::new(client_status(true)));
    assert_eq!(
        get(server.addr, "/ready").await,
        (200, "LIVE\n".to_string())
    );
}

#[tokio::test]
async fn healthcheck_fail_drains_and_ok_restores() {
    let server = start(client_status(true)).await;
    let mut failed = server.state.control.health_check_failed();
    let (status, _, body) = request(server.addr, "POST", "/healthcheck/fail").await;
    assert_eq!((status, body.as_str()), (200, "OK\n"));
    assert!(*failed.borrow_and_update());
    assert_eq!(
        get(server.addr, "/ready").await,
        (503, "DRAINING\n".to_string())
    );
    let info = common::get_json(server.addr, "/server_info").await;
    assert_eq!(info["state"], "DRAINING");
    let (status, _, _) = request(server.addr, "POST", "/healthcheck/ok").await;
    assert_eq!(status, 200);
    assert!(!*failed.borrow_and_update());
    assert_eq!(
        get(server.addr, "/ready").await,
        (200, "LIVE\n".to_string())
    );
}

#[tokio::test]
async fn server_info_prints_every_field_like_envoy() {
    let server = start(client_status(true)).await;
    let info = common::get_json(server.addr, "/server_info").await;
    assert_eq!(info["version"], "outrider/0.1.0/test");
    // LIVE is the enum's zero value: Envoy prints it anyway on this page.
    assert_eq!(info["state"], "LIVE");
    assert_eq!(info["hot_restart_version"], "disabled");
    assert_eq!(info["hot_restart_initializing"], false);
    let uptime = info["uptime_current_epoch"].as_str().unwrap();
    assert!(uptime.ends_with('s') && !uptime.contains('.'), "{uptime}");
    assert_eq!(info["uptime_all_epochs"], info["uptime_current_epoch"]);
    assert_eq!(info["command_line_options"]["concurrency"], 2);
    assert_eq!(
        info["command_line_options"]["config_path"],
        "/etc/outrider/bootstrap.yaml"
    );
    assert_eq!(
        info["node"]["id"],
        "sidecar~10.0.0.1~app-1.default~default.svc.cluster.local"
    );
}

#[tokio::test]
async fn index_help_and_unknown_paths() {
    let server = start(client_status(true)).await;
    let (status, content_type, index) = request(server.addr, "GET", "/").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"));
    assert!(index.starts_with("admin commands are:\n"), "{index}");
    for path in [
        "/config_dump",
        "/ready",
        "/server_info",
        "/quitquitquit (POST)",
    ] {
        assert!(index.contains(&format!("  {path}: ")), "{path} in {index}");
    }
    assert_eq!(get(server.addr, "/help").await, (200, index.clone()));
    let (status, body) = get(server.addr, "/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body, format!("invalid path. {index}"));
    // Envoy matches the whole path.
    assert_eq!(get(server.addr, "/ready/x").await.0, 404);
}

#[tokio::test]
async fn post_only_endpoints_refuse_get() {
    let server = start(client_status(true)).await;
    for path in [
        "/quitquitquit",
        "/healthcheck/fail",
        "/healthcheck/ok",
        "/logging",
        "/drain_listeners",
    ] {
        assert_eq!(
            get(server.addr, path).await,
            (400, "This endpoint requires POST.\n".to_string()),
            "{path}"
        );
    }
    assert!(!*server.state.control.quit_requested().borrow());
    assert!(!server.state.control.is_health_check_failed());
}

#[tokio::test]
async fn quitquitquit_answers_then_signals() {
    let server = start(client_status(true)).await;
    let mut quit = server.state.control.quit_requested();
    let (status, _, body) = request(server.addr, "POST", "/quitquitquit").await;
    assert_eq!((status, body.as_str()), (200, "OK\n"));
    tokio::time::timeout(DEADLINE, quit.wait_for(|quit| *quit))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn h2c_with_prior_knowledge() {
    let server = start(client_status(true)).await;
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::builder()
        .uri(format!("http://{}/ready", server.addr))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"LIVE\n");
}

/// `spawn` runs on its own thread: the test's runtime only drives the client.
#[tokio::test(flavor = "current_thread")]
async fn spawned_server_serves_and_shuts_down() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let state = admin_state(client_status(true));
    let handle = outrider_admin::spawn(listener, state).unwrap();
    assert_ne!(handle.local_addr.port(), 0);
    assert_eq!(
        get(handle.local_addr, "/ready").await,
        (200, "LIVE\n".to_string())
    );
    let mut quit = handle.quit_requested();
    let (status, _, _) = request(handle.local_addr, "POST", "/quitquitquit").await;
    assert_eq!(status, 200);
    tokio::time::timeout(DEADLINE, quit.wait_for(|quit| *quit))
        .await
        .unwrap()
        .unwrap();
    let addr = handle.local_addr;
    handle.shutdown();
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .unwrap()
        .unwrap();
    // The listener is closed once the thread has ended.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
