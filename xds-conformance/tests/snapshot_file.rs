//! Snapshot files: load errors, serving a file, reloading it on change.

mod common;

use std::time::Duration;

use common::{SotwClient, WAIT, names, sotw, temp_path};
use xds_conformance::type_url::CLUSTER;
use xds_conformance::{FileWatcher, ManagementServer, ServerOptions, Snapshot, SnapshotFileError};

const V1: &str = "version: v1\nclusters:\n- name: a\n  connect_timeout: 0s\n";
const V2: &str = "version: v2\nclusters:\n- name: a\n- name: second\n";

#[test]
fn load_errors_name_the_file_the_item_and_the_field() {
    let path = temp_path("bad.yaml");
    std::fs::write(
        &path,
        "clusters:\n- name: ok\n- name: bad\n  load_assignment: { endpoints: [ { lb_endpointz: [] } ] }\n",
    )
    .expect("write");
    let err = Snapshot::from_file(&path).expect_err("unknown field");
    assert!(
        matches!(err, SnapshotFileError::Resource { index: 1, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: clusters[1].load_assignment.endpoints[0].lb_endpointz: unknown field",
            path.display()
        )
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn served_file_is_reloaded_on_change_and_bad_edits_are_ignored() {
    let path = temp_path("snap.yaml");
    std::fs::write(&path, V1).expect("write");
    let server = ManagementServer::start(ServerOptions::default())
        .await
        .expect("server starts");
    let watcher = FileWatcher::serve(&path, &server).expect("initial load");
    assert_eq!(watcher.status().loads, 1);

    let mut client = SotwClient::connect(&server).await;
    client.send(sotw(CLUSTER, "", &[], "")).await;
    let resp = client.recv().await;
    assert_eq!(resp.version_info, "v1");
    assert_eq!(names(&resp), ["a"]);
    client.send(sotw(CLUSTER, "v1", &[], &resp.nonce)).await;

    std::fs::write(&path, V2).expect("rewrite");
    watcher
        .wait_for(|s| s.loads == 2, Duration::from_secs(1))
        .await
        .expect("reloaded within a second");
    let resp = client.recv().await;
    assert_eq!(resp.version_info, "v2");
    assert_eq!(names(&resp), ["a", "second"]);

    // Truncated, not yet written: skipped, never served as "no resources".
    std::fs::write(&path, "").expect("truncate");
    watcher
        .wait_for(|s| s.failures == 1, WAIT)
        .await
        .expect("the empty file seen");
    assert_eq!(server.snapshot().version(CLUSTER), Some("v2"));

    std::fs::write(&path, "clusters:\n- name: a\n  connect_timeout: later\n").expect("break");
    let status = watcher
        .wait_for(|s| s.failures == 2, WAIT)
        .await
        .expect("failure seen");
    let message = status.last_error.expect("error kept");
    assert!(message.contains("clusters[0].connect_timeout"), "{message}");
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    assert_eq!(
        server.snapshot().version(CLUSTER),
        Some("v2"),
        "last good kept"
    );

    drop(watcher);
    server.shutdown().await;
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_demo_snapshot_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/demo.yaml");
    let snap = Snapshot::from_file(path).expect("demo snapshot is valid");
    assert_eq!(snap.names(CLUSTER), ["demo-backend", "demo-grpc"]);
    assert_eq!(snap.version(CLUSTER), Some("1"));
}

#[tokio::test]
async fn a_file_that_does_not_parse_is_refused_at_start() {
    let path = temp_path("broken.yaml");
    std::fs::write(&path, "clusters: [").expect("write");
    let server = ManagementServer::start(ServerOptions::default())
        .await
        .expect("server starts");
    let err = FileWatcher::serve(&path, &server).expect_err("syntax error");
    assert!(matches!(err, SnapshotFileError::Syntax { .. }), "{err:?}");
    assert!(server.snapshot().get(CLUSTER).is_none());
    server.shutdown().await;
    let _ = std::fs::remove_file(&path);
}
