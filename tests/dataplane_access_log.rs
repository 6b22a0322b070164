//! Access logs through the real binary: a text format behind a status-code filter, a JSON
//! format with typed values, and Envoy's default format behind a header filter, each written
//! to its file with exactly the requests its filter passes.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::raw_http::{raw_exchange, status_line};
use common::xds_proxy::{
    XdsProxy, backend_snapshot, cluster, endpoints, eventually, get, get_with, h2c_client,
    http_listener, http1_client, http2_cluster, routes,
};
use common::{file_access_log, log_lines as lines, temp_dir};

const ROUTES: &str = r#"  - name: rewritten
    match: { prefix: /orig }
    route: { cluster: backend, prefix_rewrite: /rewritten, host_rewrite_literal: upstream.example }
    request_headers_to_add: [ { header: { key: x-added, value: by-route } } ]
  - name: rewritten-h2
    match: { prefix: /h2-orig }
    route: { cluster: backend-h2, prefix_rewrite: /rewritten, host_rewrite_literal: upstream.example }
    request_headers_to_add: [ { header: { key: x-added, value: by-route } } ]
  - name: empty
    match: { prefix: /empty }
    direct_response: { status: 204 }
  - name: broken
    match: { prefix: /broken }
    route: { cluster: empty }
  - name: missing
    match: { prefix: /missing }
    route: { cluster: nowhere }
  - name: to-backend
    match: { prefix: / }
    route: { cluster: backend }"#;

fn access_logs(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"      access_log:
      - name: errors
        filter:
          status_code_filter:
            comparison: {{ op: GE, value: {{ default_value: 500, runtime_key: access_log.errors }} }}
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
          path: {dir}/errors.log
          log_format:
            text_format_source:
              inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS% %REQ(:METHOD)% %REQ(:PATH)% %UPSTREAM_CLUSTER% %ROUTE_NAME% %UPSTREAM_HOST%\n"
      - name: everything
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
          path: {dir}/all.json
          log_format:
            json_format:
              code: "%RESPONSE_CODE%"
              path: "%REQ(:PATH)%"
              agent: "%REQ(USER-AGENT)%"
              upstream: "%UPSTREAM_HOST%"
              answered_by: "%RESP(X-Upstream-Name)%"
              sent: "%BYTES_SENT%"
              received: "%BYTES_RECEIVED%"
              started: "%START_TIME(%s)%"
              labels: {{ service: demo, line: "code=%RESPONSE_CODE%" }}
      - name: debug
        filter: {{ header_filter: {{ header: {{ name: x-debug, present_match: true }} }} }}
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
          path: {dir}/debug.log
      - name: strings
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
          path: {dir}/strings.json
          json_format: {{ code: "%RESPONSE_CODE%", host: "%UPSTREAM_HOST%" }}
      - name: legacy
        filter:
          or_filter:
            filters:
            - response_flag_filter: {{ flags: [ UF, UH ] }}
            - and_filter:
                filters:
                - duration_filter: {{ comparison: {{ op: GE, value: {{ default_value: 0 }} }} }}
                - grpc_status_filter: {{ statuses: [ UNAVAILABLE ] }}
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
          path: {dir}/legacy.log
          format: "%RESPONSE_CODE% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DURATION%\n""#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_written_in_their_format_when_their_filter_passes() {
    let logs = temp_dir("access-log-files");
    let (backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(cluster("empty", ""))
        .with(endpoints("empty", &[]))
        .with(http_listener("logged", 0, "logged", &access_logs(&logs)))
        .with(routes(ROUTES));
    let proxy = XdsProxy::start("access-log", snapshot, &["--concurrency", "1"]).await;
    let port = proxy.listener_port("logged").await;
    let base = format!("http://{}", SocketAddr::from(([127, 0, 0, 1], port)));
    let client = http1_client();

    let ok = get(&client, &format!("{base}/ok")).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let broken = get(&client, &format!("{base}/broken")).await;
    assert_eq!(broken.status, 503, "{broken:?}");
    let missing = get(&client, &format!("{base}/missing")).await;
    assert_eq!(missing.status, 503, "{missing:?}");
    let debug = get_with(
        &client,
        &format!("{base}/debug?x=1"),
        &[("x-debug", "1"), ("user-agent", "e2e \"agent\"")],
    )
    .await;
    assert_eq!(debug.status, 200, "{debug:?}");
    // A chunked body: its size is known only once read.
    let upload = b"POST /upload HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (response, _) = tokio::task::block_in_place(|| raw_exchange(addr, upload));
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");

    // Entries are flushed within a second of their request's end.
    let all = logs.join("all.json");
    assert!(
        eventually(Duration::from_secs(10), || lines(&all).len() >= 5).await,
        "JSON log: {:?}",
        lines(&all)
    );
    let backend_addr = backend.addr().to_string();
    let entries: Vec<serde_json::Value> = lines(&all)
        .iter()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(entries.len(), 5, "{entries:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let started: u64 = entries[0]["started"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("epoch seconds");
    assert!(now.abs_diff(started) < 60, "{started} vs {now}");
    assert_eq!(
        entries[0],
        serde_json::json!({
            "code": 200,
            "path": "/ok",
            "agent": null,
            "upstream": backend_addr,
            "answered_by": "backend",
            "sent": ok.body.len(),
            "received": 0,
            "started": started.to_string(),
            "labels": { "service": "demo", "line": "code=200" },
        })
    );
    assert_eq!(entries[1]["code"], 503);
    assert_eq!(entries[1]["upstream"], serde_json::Value::Null);
    assert_eq!(entries[1]["answered_by"], serde_json::Value::Null);
    assert_eq!(entries[2]["code"], 503);
    assert_eq!(entries[3]["agent"], "e2e \"agent\"");
    assert_eq!(entries[3]["path"], "/debug?x=1");
    assert_eq!(entries[4]["received"], 11, "{:?}", entries[4]);
    // The file logger's legacy `json_format` renders every value as a string, `-` if missing.
    let strings = logs.join("strings.json");
    assert!(eventually(Duration::from_secs(10), || lines(&strings).len() >= 5).await);
    assert_eq!(
        lines(&strings)[..3],
        [
            format!("{{\"code\":\"200\",\"host\":\"{}\"}}", backend.addr()),
            "{\"code\":\"503\",\"host\":\"-\"}".to_string(),
            "{\"code\":\"503\",\"host\":\"-\"}".to_string(),
        ]
    );

    // Only the 5xx passed the status filter; only the request with x-debug the header one;
    // only the 503s the flag-or-gRPC-status filter (UH by its flag, NC as gRPC Unavailable;
    // the 200s are gRPC status Unknown).
    assert!(
        eventually(Duration::from_secs(10), || {
            !lines(&logs.join("errors.log")).is_empty()
                && !lines(&logs.join("debug.log")).is_empty()
                && !lines(&logs.join("legacy.log")).is_empty()
        })
        .await
    );
    assert_eq!(
        lines(&logs.join("errors.log")),
        [
            "503 UH GET /broken empty broken -",
            // No such cluster: Envoy's `%UPSTREAM_CLUSTER%` is `-`.
            "503 NC GET /missing - missing -"
        ]
    );
    let legacy = lines(&logs.join("legacy.log"));
    assert_eq!(legacy.len(), 2, "{legacy:?}");
    for line in &legacy {
        let duration = line
            .strip_prefix(&format!("503 127.0.0.1:{port} 127.0.0.1 "))
            .unwrap_or_else(|| panic!("{legacy:?}"));
        assert!(duration.parse::<u64>().is_ok(), "{legacy:?}");
    }
    let debug_lines = lines(&logs.join("debug.log"));
    assert_eq!(debug_lines.len(), 1, "{debug_lines:?}");
    let line = &debug_lines[0];
    assert!(
        line.contains(&format!(
            "\"GET /debug?x=1 HTTP/1.1\" 200 - 0 {} ",
            debug.body.len()
        )),
        "{line}"
    );
    assert!(line.contains(" \"-\" \"e2e \"agent\"\" \""), "{line}");
    assert!(
        line.ends_with(&format!("\"127.0.0.1:{port}\" \"{backend_addr}\"")),
        "{line}"
    );
}

/// A client that goes away before its response is logged as Envoy logs it: response code 0,
/// flag `DC` when its HTTP/1.1 connection closes, `DR` when it resets its h2c stream, with the
/// route and cluster it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_went_away_is_logged_with_code_0_and_dc_or_dr() {
    let logs = temp_dir("access-log-abandoned");
    let (_backend, snapshot) = backend_snapshot().await;
    let format = r"%RESPONSE_CODE% %RESPONSE_FLAGS% %REQ(:PATH)% %PROTOCOL% %ROUTE_NAME% %UPSTREAM_CLUSTER%\n";
    let log = file_access_log("all", &logs.join("all.log"), format);
    let snapshot = snapshot
        .with(http_listener("logged", 0, "logged", &log))
        .with(routes(ROUTES));
    let proxy = XdsProxy::start("access-log-dc", snapshot, &["--concurrency", "1"]).await;
    let port = proxy.listener_port("logged").await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let at_backend = |n: u64| {
        let proxy = &proxy;
        async move {
            eventually(Duration::from_secs(10), || {
                proxy.stat_blocking("cluster.backend.upstream_rq_active") == Some(n)
            })
            .await
        }
    };

    // Responses sent whole carry no flag, bodies hyper never reads included: an empty one,
    // and a HEAD's.
    let empty = get(&http1_client(), &format!("http://{addr}/empty")).await;
    assert_eq!(empty.status, 204, "{empty:?}");
    let head = b"HEAD /ok HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";
    let (response, _) = tokio::task::block_in_place(|| raw_exchange(addr, head));
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");

    // HTTP/1.1: the client closes its connection while the backend holds the request.
    let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut client,
        b"GET /delay/20000?h1 HTTP/1.1\r\nhost: a\r\n\r\n",
    )
    .await
    .expect("write");
    assert!(at_backend(1).await, "the request never reached the backend");
    drop(client);
    assert!(at_backend(0).await, "the upstream request was not reset");

    // h2c: the client resets its stream.
    // The client (and its connection) outlives the request: only the stream is reset.
    let h2c = h2c_client();
    let url = format!("http://{addr}/delay/20000?h2");
    let pending = {
        let h2c = h2c.clone();
        tokio::spawn(async move { get(&h2c, &url).await })
    };
    assert!(
        at_backend(1).await,
        "the h2c request never reached the backend"
    );
    pending.abort();
    assert!(at_backend(0).await, "the upstream request was not reset");

    let all = logs.join("all.log");
    assert!(
        eventually(Duration::from_secs(10), || lines(&all).len() >= 4).await,
        "{:?}",
        lines(&all)
    );
    assert_eq!(
        lines(&all),
        [
            "204 - /empty HTTP/1.1 empty -",
            "200 - /ok HTTP/1.1 to-backend backend",
            "0 DC /delay/20000?h1 HTTP/1.1 to-backend backend",
            "0 DR /delay/20000?h2 HTTP/2 to-backend backend"
        ]
    );
    drop(h2c);
}

/// The remaining format sources and options, and the filters that pass everything or sample:
/// an inline `text_format` with a truncated `%RESP()%`, a strftime `%START_TIME()%` and
/// `%REQUESTED_SERVER_NAME%`; `text_format_source` from a file; `typed_json_format` with
/// literals; `omit_empty_values`; `not_health_check` (no request is a health check here) and
/// `runtime` at 100 % and at 0 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_source_and_the_sampling_filters() {
    let logs = temp_dir("access-log-source-files");
    let format_file = logs.join("format.txt");
    std::fs::write(&format_file, "%REQ(:PATH)% from a file\n").expect("write the format");
    let dir = logs.display();
    let file = format_file.display();
    let log = format!(
        r#"      access_log:
      - name: inline
        filter: {{ not_health_check_filter: {{}} }}
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
          path: {dir}/inline.log
          log_format:
            text_format: "%RESPONSE_CODE% [%RESP(X-Upstream-Name):3%] %START_TIME(%Y-%m-%d)% %REQUESTED_SERVER_NAME%\n"
      - name: from-file
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
          path: {dir}/file.log
          log_format: {{ text_format_source: {{ filename: "{file}" }} }}
      - name: typed
        filter: {{ runtime_filter: {{ runtime_key: sampled.all, percent_sampled: {{ numerator: 100, denominator: HUNDRED }} }} }}
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
          path: {dir}/typed.json
          typed_json_format: {{ code: "%RESPONSE_CODE%", agent: "%REQ(USER-AGENT)%", ratio: 0.5, on: true }}
      - name: omitted
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
          path: {dir}/omitted.json
          log_format:
            json_format: {{ code: "%RESPONSE_CODE%", agent: "%REQ(USER-AGENT)%" }}
            omit_empty_values: true
      - name: never
        filter: {{ runtime_filter: {{ runtime_key: sampled.none, percent_sampled: {{ numerator: 0 }} }} }}
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
          path: {dir}/never.log"#
    );
    let (_backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener("logged", 0, "logged", &log))
        .with(routes(ROUTES));
    let proxy = XdsProxy::start("access-log-sources", snapshot, &["--concurrency", "1"]).await;
    let port = proxy.listener_port("logged").await;
    let ok = get(&http1_client(), &format!("http://127.0.0.1:{port}/ok")).await;
    assert_eq!(ok.status, 200, "{ok:?}");

    let files = ["inline.log", "file.log", "typed.json", "omitted.json"].map(|f| logs.join(f));
    assert!(
        eventually(Duration::from_secs(10), || files
            .iter()
            .all(|f| !lines(f).is_empty()))
        .await,
        "every log but `never` has its entry"
    );
    let inline = lines(&files[0]);
    let fields: Vec<&str> = inline[0].split(' ').collect();
    assert_eq!(fields.len(), 4, "{inline:?}");
    assert_eq!(fields[..2], ["200", "[bac]"], "{inline:?}");
    let date = fields[2].as_bytes();
    assert!(
        date.len() == 10
            && date[4] == b'-'
            && date[7] == b'-'
            && date
                .iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit()),
        "{inline:?}"
    );
    assert_eq!(fields[3], "-", "no TLS, no server name");
    assert_eq!(lines(&files[1]), ["/ok from a file"]);
    let typed: serde_json::Value = serde_json::from_str(&lines(&files[2])[0]).expect("JSON");
    assert_eq!(
        typed,
        serde_json::json!({ "agent": null, "code": 200, "on": true, "ratio": 0.5 })
    );
    assert_eq!(lines(&files[3]), ["{\"code\":200}"]);
    // All sinks are flushed together: the others are written, `never` was not.
    assert!(!logs.join("never.log").exists());
}

/// `%REQ(...)%` reads the request as the router forwarded it, as Envoy's access log reads the
/// downstream headers after its router changed them: the rewritten path (the client's in
/// `x-envoy-original-path`) and host, and the route's added headers; over HTTP/1.1 and h2c.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_reads_the_request_as_forwarded() {
    let logs = temp_dir("access-log-forwarded-files");
    let format = r"%REQ(:PATH)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %REQ(:AUTHORITY)% %REQ(X-ADDED)% %REQ(X-CLIENT)%\n";
    let log = file_access_log("forwarded", &logs.join("forwarded.log"), format);
    let (backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http2_cluster("backend-h2"))
        .with(endpoints("backend-h2", &[backend.addr()]))
        .with(http_listener("logged", 0, "logged", &log))
        .with(routes(ROUTES));
    let proxy = XdsProxy::start("access-log-forwarded", snapshot, &["--concurrency", "1"]).await;
    let port = proxy.listener_port("logged").await;
    // Both downstream codecs, to an HTTP/1.1 upstream (authority in `host`) and an HTTP/2
    // one (authority apart from the headers).
    for prefix in ["orig", "h2-orig"] {
        let url = format!("http://127.0.0.1:{port}/{prefix}/x?q=1");
        for client in [http1_client(), h2c_client()] {
            let answer = get_with(&client, &url, &[("x-client", "c")]).await;
            assert_eq!(answer.status, 200, "{answer:?}");
        }
    }
    let forwarded = logs.join("forwarded.log");
    assert!(eventually(Duration::from_secs(10), || lines(&forwarded).len() >= 4).await);
    let expected =
        |prefix: &str| format!("/rewritten/x?q=1 /{prefix}/x?q=1 upstream.example by-route c");
    assert_eq!(
        lines(&forwarded),
        [
            expected("orig"),
            expected("orig"),
            expected("h2-orig"),
            expected("h2-orig")
        ]
    );
}

/// Requests the connection manager's codec refuses (headers over `max_request_headers_kb`,
/// an underscore in a header name under `REJECT_REQUEST`, HTTP/1.0 where it is not accepted)
/// are logged with Envoy's `DPE`, and with no route: they never got that far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_codec_refuses_are_logged_with_dpe() {
    let logs = temp_dir("access-log-dpe");
    let (_backend, snapshot) = backend_snapshot().await;
    let format = r"%RESPONSE_CODE% %RESPONSE_FLAGS% %PROTOCOL% %ROUTE_NAME%\n";
    let log = file_access_log("all", &logs.join("all.log"), format);
    let limits = "      max_request_headers_kb: 1
      common_http_protocol_options: { headers_with_underscores_action: REJECT_REQUEST }";
    let snapshot = snapshot
        .with(http_listener(
            "logged",
            0,
            "logged",
            &format!("{log}\n{limits}"),
        ))
        .with(routes(ROUTES));
    let proxy = XdsProxy::start("access-log-dpe", snapshot, &["--concurrency", "1"]).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("logged").await));

    let large = format!(
        "GET /ok HTTP/1.1\r\nhost: a\r\nx-large: {}\r\n\r\n",
        "v".repeat(2048)
    );
    let requests: [(&[u8], &str); 4] = [
        (large.as_bytes(), "431"),
        (b"GET /ok HTTP/1.1\r\nhost: a\r\nx_under: 1\r\n\r\n", "400"),
        (b"GET /ok HTTP/1.0\r\nhost: a\r\n\r\n", "426"),
        (
            b"GET /ok HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
            "200",
        ),
    ];
    for (request, status) in requests {
        let (response, _) = tokio::task::block_in_place(|| raw_exchange(addr, request));
        assert!(
            status_line(&response).contains(&format!(" {status} ")),
            "{response}"
        );
    }
    let all = logs.join("all.log");
    assert!(
        eventually(Duration::from_secs(10), || lines(&all).len() >= 4).await,
        "{:?}",
        lines(&all)
    );
    assert_eq!(
        lines(&all),
        [
            "431 DPE HTTP/1.1 -",
            "400 DPE HTTP/1.1 -",
            "426 DPE HTTP/1.0 -",
            "200 - HTTP/1.1 to-backend",
        ]
    );
}
