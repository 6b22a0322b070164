//! Compiles the Envoy `.proto` sources that ship inside the `envoy-types` crate into one
//! `FileDescriptorSet`, so the library can speak Envoy's canonical JSON through `prost-reflect`.
//! protox is a pure-Rust compiler: no system `protoc` is needed.

use std::env;
use std::path::{Path, PathBuf};

/// Must match the `envoy-types` version pinned in the workspace `Cargo.toml`.
const ENVOY_TYPES_DIR: &str = "envoy-types-0.7.7";

/// Every message that can appear in a bootstrap, an xDS response, an admin dump or one of the
/// `typed_config` extensions we implement. Their imports come along transitively.
const ROOTS: &[&str] = &[
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/config/endpoint/v3/load_report.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/config/core/v3/health_check.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/transport_sockets/tls/v3/secret.proto",
    "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/access_loggers/file/v3/file.proto",
    "envoy/extensions/access_loggers/stream/v3/stream.proto",
    "envoy/admin/v3/config_dump.proto",
    "envoy/admin/v3/server_info.proto",
    "envoy/admin/v3/clusters.proto",
    "envoy/admin/v3/certs.proto",
    "envoy/service/discovery/v3/ads.proto",
    "envoy/service/status/v3/csds.proto",
    "envoy/service/load_stats/v3/lrs.proto",
    "envoy/service/event_reporting/v3/event_reporting_service.proto",
    "envoy/data/cluster/v3/outlier_detection_event.proto",
    "envoy/data/core/v3/health_check_event.proto",
    // Extensions users commonly have in a bootstrap or an xDS resource. We do not implement
    // all of them, but we must read them to say so by name (the model rejects them, or skips
    // them when marked optional) instead of failing on an unknown type.
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto",
    "envoy/extensions/filters/listener/original_dst/v3/original_dst.proto",
    "envoy/extensions/filters/listener/proxy_protocol/v3/proxy_protocol.proto",
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/filters/http/fault/v3/fault.proto",
    "envoy/extensions/filters/http/health_check/v3/health_check.proto",
    "envoy/extensions/filters/http/grpc_web/v3/grpc_web.proto",
    "envoy/extensions/filters/http/grpc_stats/v3/config.proto",
    "envoy/extensions/filters/http/buffer/v3/buffer.proto",
    "envoy/extensions/filters/http/compressor/v3/compressor.proto",
    "envoy/extensions/compression/gzip/compressor/v3/gzip.proto",
    "envoy/extensions/filters/http/rbac/v3/rbac.proto",
    "envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto",
    "envoy/extensions/filters/http/lua/v3/lua.proto",
    "envoy/extensions/filters/network/rbac/v3/rbac.proto",
    "envoy/extensions/access_loggers/grpc/v3/als.proto",
    "envoy/extensions/transport_sockets/tcp_stats/v3/tcp_stats.proto",
    // The overload manager's monitors: the connection limit is built, the heap one refused.
    "envoy/extensions/resource_monitors/downstream_connections/v3/downstream_connections.proto",
    "envoy/extensions/resource_monitors/fixed_heap/v3/fixed_heap.proto",
];

/// Include paths inside the crate's `proto/` folder.
const INCLUDES: &[&str] = &[
    "data-plane-api",
    "xds",
    "protoc-gen-validate",
    "googleapis",
    "cel-spec",
    "opentelemetry-proto",
    "client_model",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ENVOY_TYPES_PROTO_DIR");
    let proto_dir = match find_proto_dir() {
        Ok(dir) => dir,
        Err(why) => panic!("outrider-envoy-json: {why}"),
    };
    let includes: Vec<PathBuf> = INCLUDES.iter().map(|i| proto_dir.join(i)).collect();
    let mut compiler = protox::Compiler::new(&includes).unwrap_or_else(|e| compile_error(&e));
    compiler.include_imports(true).include_source_info(false);
    if let Err(e) = compiler.open_files(ROOTS) {
        compile_error(&e);
    }
    // Encoded by the compiler itself, so custom options (e.g. `udpa.annotations.sensitive`,
    // which the admin's redaction reads) survive; a round trip through prost-types drops them.
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(
        out.join("envoy_descriptors.bin"),
        compiler.encode_file_descriptor_set(),
    )
    .expect("OUT_DIR is writable");
}

fn compile_error(e: &protox::Error) -> ! {
    panic!("outrider-envoy-json: compiling Envoy protos: {e}")
}

/// The `proto/` folder of the `envoy-types` package cargo unpacked for this build.
///
/// Cargo does not tell a build script where a dependency's sources are unless that dependency
/// declares `links`, which `envoy-types` does not; so look where cargo unpacks registry crates.
/// `ENVOY_TYPES_PROTO_DIR` overrides this for vendored or otherwise relocated sources.
fn find_proto_dir() -> Result<PathBuf, String> {
    if let Some(dir) = env::var_os("ENVOY_TYPES_PROTO_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let registry_src = cargo_home.join("registry").join("src");
    let entries = std::fs::read_dir(&registry_src)
        .map_err(|e| format!("reading {}: {e}", registry_src.display()))?;
    for entry in entries.flatten() {
        let candidate = entry.path().join(ENVOY_TYPES_DIR).join("proto");
        if candidate.join("data-plane-api").is_dir() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "no {ENVOY_TYPES_DIR}/proto under {}; set ENVOY_TYPES_PROTO_DIR to the proto/ folder of envoy-types",
        registry_src.display()
    ))
}
