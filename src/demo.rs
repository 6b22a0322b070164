//! `outrider demo`: the built-in management server serving a snapshot file (reloaded on every
//! save) and the proxy subscribed to it, with its admin interface, in one process.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use outrider_upstream_server::{GrpcUpstream, UpstreamConfig, UpstreamServer};
use xds_conformance::{FileWatcher, ManagementServer, ServerOptions};

use crate::bootstrap::{self, Overrides};
use crate::cli::DemoArgs;
use crate::proxy::{self, RunOptions};

/// The bootstrap the demo proxy runs with: an Envoy bootstrap like `examples/bootstrap-ads.yaml`,
/// pointed at the built-in server.
fn demo_bootstrap(args: &DemoArgs, xds: SocketAddr) -> String {
    let admin = args.admin_address;
    let api_type = if args.xds_delta { "DELTA_GRPC" } else { "GRPC" };
    format!(
        r#"
node: {{ id: outrider-demo, cluster: demo }}
admin:
  address: {{ socket_address: {{ address: "{admin_ip}", port_value: {admin_port} }} }}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds_cluster }} }}]
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: "{xds_ip}", port_value: {xds_port} }} }} }}
"#,
        admin_ip = admin.ip(),
        admin_port = admin.port(),
        xds_ip = xds.ip(),
        xds_port = xds.port(),
    )
}

/// Runs the demo until Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let snapshot = &args.snapshot;
    if !snapshot.exists() {
        anyhow::bail!(
            "{}: no such file (run the demo from the repository root, or pass --snapshot FILE)",
            snapshot.display()
        );
    }
    let _upstreams = if args.no_upstreams {
        DemoUpstreams::default()
    } else {
        start_upstreams().await?
    };
    let listener = tokio::net::TcpListener::bind(args.xds_address)
        .await
        .with_context(|| {
            format!(
                "the management server cannot listen on {}",
                args.xds_address
            )
        })?;
    let server = ManagementServer::start_on(listener, ServerOptions::default())
        .context("starting the management server")?;
    let _watcher = FileWatcher::serve(snapshot, &server)
        .with_context(|| format!("loading {}", snapshot.display()))?;

    let proto: Bootstrap =
        outrider_envoy_json::from_yaml_str(&demo_bootstrap(&args, server.addr()))
            .context("the demo bootstrap")?;
    let mut loaded = bootstrap::check(proto, &Overrides::default())
        .map_err(|(path, reason)| anyhow::anyhow!("the demo bootstrap: {path}: {reason}"))?;
    loaded.file = Path::new("<demo>").to_path_buf();

    print_instructions(&args, server.addr());
    let options = RunOptions {
        concurrency: 1,
        drain_time: std::time::Duration::from_secs(5),
        admin_address_path: args.admin_address_path.clone(),
        log_level: args.log_level.clone(),
    };
    let result = Box::pin(proxy::serve(loaded, options, proxy::termination_signal())).await;
    server.shutdown().await;
    result
}

/// The demo's upstreams, as `examples/demo.yaml` names them: `a` and `b` healthy, `c` failing
/// a third of its requests (503) so retries and, later, outlier ejections have something to do.
async fn start_upstreams() -> anyhow::Result<DemoUpstreams> {
    let grpc_address = SocketAddr::from(([127, 0, 0, 1], 8091));
    let grpc_listener = tokio::net::TcpListener::bind(grpc_address)
        .await
        .with_context(|| {
            format!("demo gRPC upstream on {grpc_address} (or run with --no-upstreams)")
        })?;
    let grpc = GrpcUpstream::start(grpc_listener).context("demo gRPC upstream")?;
    let mut upstreams = Vec::new();
    // c fails every third request, exactly: the demo's outlier ejection happens for everyone
    // who sends the traffic the banner suggests, not for most of them.
    for (name, port, fail_every) in [("a", 8081, None), ("b", 8082, None), ("c", 8083, Some(3))] {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let mut config = UpstreamConfig::new(name);
        if let Some(n) = fail_every {
            config = config.with_fail_every(n);
        }
        let upstream = UpstreamServer::bind(address, config)
            .await
            .with_context(|| {
                format!("demo upstream {name} on {address} (or run with --no-upstreams)")
            })?;
        upstreams.push(upstream);
    }
    Ok(DemoUpstreams {
        _http: upstreams,
        _grpc: Some(grpc),
    })
}

/// Kept alive for the demo's lifetime; dropping them stops them.
#[derive(Default)]
struct DemoUpstreams {
    _http: Vec<UpstreamServer>,
    _grpc: Option<GrpcUpstream>,
}

#[allow(
    clippy::print_stdout,
    reason = "the demo's instructions are its output"
)]
fn print_instructions(args: &DemoArgs, xds: SocketAddr) {
    let admin = args.admin_address;
    let snapshot = args.snapshot.display();
    let mode = if args.xds_delta {
        "delta"
    } else {
        "state-of-the-world"
    };
    println!(
        r#"
Outrider demo
  management server  {xds} ({mode} ADS), serving {snapshot} (reloaded on save)
  proxy              http://127.0.0.1:10000/ -> upstreams a, b (healthy), c (fails 1 in 3)
  admin              http://{admin}/

Try:
  curl -si 127.0.0.1:10000/                              # round robin over a, b, c (x-upstream-name)
  curl -s 127.0.0.1:10000/echo                           # what the upstream received
  curl -si --http2-prior-knowledge 127.0.0.1:10000/      # h2c
  curl -s {admin}/ready                                  # LIVE once the initial config is in
  curl -s {admin}/config_dump                            # everything, in Envoy's shape
  curl -s '{admin}/config_dump?resource=dynamic_active_clusters'
  curl -s '{admin}/config_dump?include_eds'              # with endpoints
  curl -s {admin}/server_info
  curl -s {admin}/clusters                               # hosts, counters, health flags
  curl -s {admin}/stats/prometheus                       # Envoy's stat names
  outrider diagnose --admin {admin} --cluster demo-backend   # why (no) healthy upstream?

Outlier detection: send some traffic (for i in $(seq 50); do curl -s -o /dev/null
127.0.0.1:10000/; done) and c is ejected for failing 1 in 3 (failure percentage): see
/failed_outlier_check in /clusters and the ejection in outrider diagnose.

Live updates: edit {snapshot} (e.g. change `version` and a cluster's lb_policy), save, and
see the new version in /config_dump within a second. Put an invalid value in (e.g.
`connect_timeout: 0s`): the proxy NACKs it with the reason (see error_state in /config_dump)
and keeps serving the previous version.

Ctrl-C stops the demo.
"#
    );
}
