//! `/config_dump` over a real server: the shape Envoy prints, and each query parameter.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ADMIN, client_status, get, get_json, start, types};
use serde_json::json;

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

fn names(entries: &serde_json::Value, pointer: &str) -> Vec<String> {
    entries
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| e.pointer(pointer).unwrap().as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn sections_come_in_envoys_order_each_with_its_type() {
    let server = start(client_status(true)).await;
    let dump = get_json(server.addr, "/config_dump").await;
    assert_eq!(
        types(&dump),
        [
            "BootstrapConfigDump",
            "ClustersConfigDump",
            "ListenersConfigDump",
            "ScopedRoutesConfigDump",
            "RoutesConfigDump",
            "SecretsConfigDump",
        ]
        .map(|t| format!("{ADMIN}{t}"))
    );
    let bootstrap = &dump["configs"][0];
    assert_eq!(
        bootstrap["bootstrap"]["node"]["id"],
        "sidecar~10.0.0.1~app-1.default~default.svc.cluster.local"
    );
    assert_eq!(bootstrap["last_updated"], "2023-11-14T22:13:20Z");
    // Only the keys Envoy prints: "@type" first, snake_case, defaults omitted.
    let keys: Vec<_> = bootstrap.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["@type", "bootstrap", "last_updated"]);
}

#[tokio::test]
async fn clusters_static_active_warming_and_rejected() {
    let server = start(client_status(true)).await;
    let dump = get_json(server.addr, "/config_dump").await;
    let clusters = &dump["configs"][1];
    assert_eq!(clusters["version_info"], "v2");

    let statics = &clusters["static_clusters"];
    assert_eq!(
        names(statics, "/cluster/name"),
        ["static_cluster", "xds_cluster"]
    );
    assert_eq!(statics[0]["cluster"]["@type"], CLUSTER);
    assert_eq!(statics[0]["last_updated"], "2023-11-14T22:13:20Z");

    let active = &clusters["dynamic_active_clusters"];
    assert_eq!(
        active[0],
        json!({
            "version_info": "v2",
            "cluster": {
                "@type": CLUSTER,
                "name": "cds_acked",
                "type": "EDS",
                "eds_cluster_config": { "eds_config": { "ads": {} } },
                "connect_timeout": "1s",
            },
            "last_updated": "2023-11-14T22:13:30Z",
            "client_status": "ACKED",
        })
    );
    // The rejected update keeps the accepted v1 as the cluster, and says why v2 was refused.
    let nacked = &active[1];
    assert_eq!(nacked["cluster"]["name"], "cds_nacked");
    assert_eq!(nacked["version_info"], "v1");
    assert_eq!(nacked["client_status"], "NACKED");
    assert_eq!(
        nacked["error_state"],
        json!({
            "failed_configuration": {
                "@type": CLUSTER,
                "name": "cds_nacked",
                "type": "EDS",
                "eds_cluster_config": { "eds_config": { "ads": {} } },
                "connect_timeout": "0s",
            },
            "last_update_attempt": "2023-11-14T22:13:30Z",
            "details": "cds_nacked: connect_timeout: must be > 0",
            "version_info": "v2",
        })
    );
    // Rejected with nothing accepted before: only the error.
    assert_eq!(
        active[2],
        json!({
            "error_state": {
                "last_update_attempt": "2023-11-14T22:13:30Z",
                "details": "cds_never: type: unsupported",
                "version_info": "v2",
            },
            "client_status": "NACKED",
        })
    );
    assert_eq!(active.as_array().unwrap().len(), 3);
    assert_eq!(
        names(&clusters["dynamic_warming_clusters"], "/cluster/name"),
        ["cds_warming"]
    );
}

#[tokio::test]
async fn listeners_have_per_state_entries_and_error_state() {
    let server = start(client_status(true)).await;
    let dump = get_json(server.addr, "/config_dump").await;
    let listeners = &dump["configs"][2];
    assert_eq!(listeners["version_info"], "v1");
    assert_eq!(
        names(&listeners["static_listeners"], "/listener/name"),
        ["static_http"]
    );
    let dynamic = listeners["dynamic_listeners"].as_array().unwrap();
    assert_eq!(
        names(&listeners["dynamic_listeners"], "/name"),
        ["lds_acked", "lds_rejected", "lds_warming"]
    );
    let active = &dynamic[0];
    assert_eq!(active["active_state"]["version_info"], "v1");
    assert_eq!(active["active_state"]["listener"]["@type"], LISTENER);
    assert_eq!(active["active_state"]["listener"]["name"], "lds_acked");
    assert_eq!(
        active["active_state"]["last_updated"],
        "2023-11-14T22:13:32Z"
    );
    assert_eq!(active["client_status"], "ACKED");
    assert!(active.get("warming_state").is_none());

    let rejected = &dynamic[1];
    let keys: Vec<_> = rejected.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "error_state", "client_status"]);
    assert_eq!(
        rejected["error_state"]["details"],
        "lds_rejected: rds.route_config_name: must not be empty"
    );
    assert_eq!(
        rejected["error_state"]["failed_configuration"]["@type"],
        LISTENER
    );

    let warming = &dynamic[2];
    assert!(warming.get("active_state").is_none());
    assert_eq!(warming["warming_state"]["listener"]["name"], "lds_warming");
}

#[tokio::test]
async fn routes_inline_are_static_rds_are_dynamic() {
    let server = start(client_status(true)).await;
    let dump = get_json(server.addr, "/config_dump").await;
    let routes = &dump["configs"][4];
    assert_eq!(
        names(&routes["static_route_configs"], "/route_config/name"),
        ["local_route"]
    );
    assert_eq!(
        routes["static_route_configs"][0]["route_config"]["@type"],
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    );
    let dynamic = &routes["dynamic_route_configs"];
    // A route configuration only requested has nothing to dump.
    assert_eq!(names(dynamic, "/route_config/name"), ["rds_route"]);
    assert_eq!(dynamic[0]["version_info"], "r1");
    assert_eq!(dynamic[0]["client_status"], "ACKED");
}

#[tokio::test]
async fn secrets_are_redacted() {
    let server = start(client_status(true)).await;
    let (status, body) = get(server.addr, "/config_dump").await;
    assert_eq!(status, 200);
    assert!(!body.contains("TOP-SECRET-KEY"), "{body}");
    let dump: serde_json::Value = serde_json::from_str(&body).unwrap();
    let secret = &dump["configs"][5]["static_secrets"][0];
    assert_eq!(secret["name"], "server-cert");
    let cert = &secret["secret"]["tls_certificate"];
    assert_eq!(cert["private_key"]["inline_string"], "[redacted]");
    assert_eq!(cert["certificate_chain"]["inline_string"], "CERT");
}

#[tokio::test]
async fn include_eds_adds_endpoints_after_clusters() {
    let server = start(client_status(true)).await;
    let dump = get_json(server.addr, "/config_dump?include_eds").await;
    let kinds = types(&dump);
    assert_eq!(kinds[1], format!("{ADMIN}ClustersConfigDump"));
    assert_eq!(kinds[2], format!("{ADMIN}EndpointsConfigDump"));
    assert_eq!(kinds[3], format!("{ADMIN}ListenersConfigDump"));
    let endpoints = &dump["configs"][2];
    // A static cluster's load_assignment is named after the cluster when it has no name.
    assert_eq!(
        names(
            &endpoints["static_endpoint_configs"],
            "/endpoint_config/cluster_name"
        ),
        ["static_cluster", "xds_cluster"]
    );
    let dynamic = &endpoints["dynamic_endpoint_configs"][0];
    assert_eq!(
        dynamic["endpoint_config"]["@type"],
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    );
    assert_eq!(dynamic["endpoint_config"]["cluster_name"], "cds_acked");
    assert_eq!(dynamic["version_info"], "e1");
}

#[tokio::test]
async fn resource_lists_one_repeated_field_flat() {
    let server = start(client_status(true)).await;
    let dump = get_json(
        server.addr,
        "/config_dump?resource=dynamic_warming_clusters",
    )
    .await;
    assert_eq!(
        types(&dump),
        [format!("{ADMIN}ClustersConfigDump.DynamicCluster")]
    );
    assert_eq!(dump["configs"][0]["cluster"]["name"], "cds_warming");
    assert_eq!(dump["configs"][0]["version_info"], "v2");

    let listeners = get_json(server.addr, "/config_dump?resource=dynamic_listeners").await;
    assert_eq!(listeners["configs"].as_array().unwrap().len(), 3);
    assert_eq!(
        listeners["configs"][0]["@type"],
        format!("{ADMIN}ListenersConfigDump.DynamicListener")
    );

    // Endpoints are only searched with include_eds, as in Envoy.
    let (status, body) = get(
        server.addr,
        "/config_dump?resource=dynamic_endpoint_configs",
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body, "dynamic_endpoint_configs not found in config dump");
    let with_eds = get_json(
        server.addr,
        "/config_dump?resource=dynamic_endpoint_configs&include_eds",
    )
    .await;
    assert_eq!(with_eds["configs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn resource_with_mask_trims_each_entry_inside_its_any() {
    let server = start(client_status(true)).await;
    let dump = get_json(
        server.addr,
        "/config_dump?resource=dynamic_active_clusters&mask=cluster.name,version_info",
    )
    .await;
    let configs = &dump["configs"];
    assert_eq!(
        configs[0],
        json!({
            "@type": format!("{ADMIN}ClustersConfigDump.DynamicCluster"),
            "version_info": "v2",
            "cluster": { "@type": CLUSTER, "name": "cds_acked" },
        })
    );
    assert_eq!(
        configs[2],
        json!({ "@type": format!("{ADMIN}ClustersConfigDump.DynamicCluster") })
    );

    let (status, body) = get(
        server.addr,
        "/config_dump?resource=dynamic_active_clusters&mask=cluster.nme",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "FieldMask paths: \"cluster.nme\" could not be successfully used."
    );
}

#[tokio::test]
async fn resource_that_is_not_repeated_or_unknown() {
    let server = start(client_status(true)).await;
    let (status, body) = get(server.addr, "/config_dump?resource=version_info").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "version_info is not a repeated field. Use ?mask=version_info to get only this field"
    );
    let (status, body) = get(server.addr, "/config_dump?resource=nope").await;
    assert_eq!(status, 404);
    assert_eq!(body, "nope not found in config dump");
}

#[tokio::test]
async fn mask_applies_to_each_section_it_fits() {
    let server = start(client_status(true)).await;
    let dump = get_json(server.addr, "/config_dump?mask=version_info").await;
    assert_eq!(
        dump,
        json!({ "configs": [
            { "@type": format!("{ADMIN}ClustersConfigDump"), "version_info": "v2" },
            { "@type": format!("{ADMIN}ListenersConfigDump"), "version_info": "v1" },
        ]})
    );
    let statics = get_json(server.addr, "/config_dump?mask=static_clusters").await;
    assert_eq!(types(&statics), [format!("{ADMIN}ClustersConfigDump")]);
    assert_eq!(
        statics["configs"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["@type", "static_clusters"]
    );
    let (status, body) = get(server.addr, "/config_dump?mask=bogus").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "FieldMask bogus could not be successfully applied to any configs."
    );
}

#[tokio::test]
async fn name_regex_filters_every_section_by_full_name() {
    let server = start(client_status(true)).await;
    let dump = get_json(server.addr, "/config_dump?name_regex=cds_(acked|warming)").await;
    let clusters = &dump["configs"][1];
    assert!(clusters.get("static_clusters").is_none());
    assert_eq!(
        names(&clusters["dynamic_active_clusters"], "/cluster/name"),
        ["cds_acked"]
    );
    assert_eq!(
        names(&clusters["dynamic_warming_clusters"], "/cluster/name"),
        ["cds_warming"]
    );
    // A full match: "lds_acked" is not matched by "acked".
    let listeners = get_json(server.addr, "/config_dump?name_regex=acked").await;
    assert!(listeners["configs"][2].get("dynamic_listeners").is_none());
    // Percent-encoded, and combined with resource.
    let static_only = get_json(
        server.addr,
        "/config_dump?resource=static_clusters&name_regex=%5Estatic_.%2B",
    )
    .await;
    assert_eq!(
        names(&static_only["configs"], "/cluster/name"),
        ["static_cluster"]
    );

    let (status, body) = get(server.addr, "/config_dump?name_regex=(").await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with("Error while parsing name_regex from (: "),
        "{body}"
    );
}

#[tokio::test]
async fn an_update_warming_over_a_live_version_shows_both() {
    let mut status = client_status(true);
    let clusters = status
        .resources
        .get_mut(&outrider_xds::ResourceType::Cluster)
        .unwrap();
    let warming = clusters.get_mut("cds_warming").unwrap();
    warming.live = Some(outrider_xds::LiveVersion {
        version: "v1".into(),
        resource: common::pack(&common::cluster("cds_warming", "5s")),
        last_updated: Some(common::at(3)),
    });
    let listeners = status
        .resources
        .get_mut(&outrider_xds::ResourceType::Listener)
        .unwrap();
    let warming = listeners.get_mut("lds_warming").unwrap();
    warming.live = Some(outrider_xds::LiveVersion {
        version: "v0".into(),
        resource: common::pack(&common::listener_with_rds("lds_warming", "rds_route")),
        last_updated: Some(common::at(3)),
    });
    let server = start(status).await;
    let dump = get_json(server.addr, "/config_dump").await;

    let clusters = &dump["configs"][1];
    let active = clusters["dynamic_active_clusters"].as_array().unwrap();
    let live = active
        .iter()
        .find(|c| c["cluster"]["name"] == "cds_warming")
        .expect("the live version is active");
    assert_eq!(live["version_info"], "v1");
    assert_eq!(live["cluster"]["connect_timeout"], "5s");
    let warming = &clusters["dynamic_warming_clusters"][0];
    assert_eq!(warming["cluster"]["name"], "cds_warming");
    assert_eq!(warming["version_info"], "v2");

    let listeners = &dump["configs"][2]["dynamic_listeners"];
    let listener = listeners
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "lds_warming")
        .unwrap();
    assert_eq!(listener["active_state"]["version_info"], "v0");
    assert_eq!(listener["warming_state"]["version_info"], "v1");
}
