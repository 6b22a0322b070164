//! The resolver against real tables with a scripted lookup and paused time: the first resolution
//! is immediate, changes are published (keeping endpoint state), unchanged answers are not,
//! failures keep the last addresses, a config change restarts the loop, removal stops it.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as pb;
use outrider_dns::{Lookup, run};
use outrider_model::{Cluster, EndpointAddress};
use outrider_tables::{Change, EndpointState, Tables};
use tokio::sync::watch;

/// A host name's scripted answer: addresses, or a failure message.
type Answer = Result<Vec<IpAddr>, String>;

/// Answers from a table the test edits; counts lookups.
#[derive(Clone)]
struct Scripted {
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    lookups: Arc<watch::Sender<usize>>,
}

impl Scripted {
    fn new() -> Self {
        Self {
            answers: Arc::default(),
            lookups: Arc::new(watch::channel(0).0),
        }
    }

    fn answer(&self, name: &str, answer: Result<&[&str], &str>) {
        let answer = answer
            .map(|ips| ips.iter().map(|ip| ip.parse().expect("an IP")).collect())
            .map_err(str::to_string);
        self.answers
            .lock()
            .expect("not poisoned")
            .insert(name.into(), answer);
    }

    /// Waits until `more` lookups happened after this call.
    async fn wait_for_lookups(&self, more: usize) {
        let mut seen = self.lookups.subscribe();
        let target = *seen.borrow() + more;
        tokio::time::timeout(Duration::from_secs(600), seen.wait_for(|n| *n >= target))
            .await
            .expect("lookups in time")
            .expect("lookups counted");
    }
}

impl Lookup for Scripted {
    async fn lookup(&self, hostname: &str) -> io::Result<Vec<IpAddr>> {
        self.lookups.send_modify(|n| *n += 1);
        let answers = self.answers.lock().expect("not poisoned");
        match answers.get(hostname) {
            Some(Ok(ips)) => Ok(ips.clone()),
            Some(Err(e)) => Err(io::Error::other(e.clone())),
            None => Err(io::Error::other("no such name")),
        }
    }
}

fn cluster(kind: &str, host: &str, port: u16) -> Arc<Cluster> {
    let yaml = format!(
        "name: dns\ntype: {kind}\ndns_refresh_rate: 1s\ndns_lookup_family: V4_ONLY\n\
         load_assignment: {{ cluster_name: dns, endpoints: [{{ lb_endpoints: [\
         {{ endpoint: {{ address: {{ socket_address: {{ address: {host}, port_value: {port} }} }} }} }}] }}] }}"
    );
    let proto: pb::Cluster = outrider_envoy_json::from_yaml_str(&yaml).expect("valid YAML");
    Arc::new(Cluster::from_proto(&proto).expect("valid cluster"))
}

fn addresses(tables: &Tables) -> Vec<String> {
    let snapshot = tables.load();
    let Some(entry) = snapshot.cluster("dns") else {
        return Vec::new();
    };
    entry
        .endpoints
        .endpoints()
        .map(|e| e.address.to_string())
        .collect()
}

fn state(tables: &Tables, address: &str) -> Option<Arc<EndpointState>> {
    let address = EndpointAddress::Ip(address.parse().expect("a socket address"));
    tables
        .load()
        .cluster("dns")?
        .endpoints
        .find(&address)
        .cloned()
}

/// Waits until the cluster's endpoints are `expected`.
async fn wait_for_addresses(tables: &Tables, expected: &[&str]) {
    let mut published = tables.subscribe();
    let reached = tokio::time::timeout(Duration::from_secs(600), async {
        while addresses(tables) != expected {
            published.changed().await.expect("tables alive");
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "expected {expected:?}, have {:?}",
        addresses(tables)
    );
}

#[tokio::test(start_paused = true)]
async fn strict_dns_follows_answers_and_keeps_the_last_good_ones() {
    let tables = Arc::new(Tables::new());
    let dns = Scripted::new();
    dns.answer("web", Ok(&["10.0.0.1", "10.0.0.2", "::1"]));
    let resolver = tokio::spawn(run(tables.clone(), dns.clone()));

    let start = tokio::time::Instant::now();
    tables.apply([Change::UpsertCluster(cluster("STRICT_DNS", "web", 80))]);
    wait_for_addresses(&tables, &["10.0.0.1:80", "10.0.0.2:80"]).await;
    assert!(start.elapsed() < Duration::from_secs(1), "resolved at once");

    // A changed answer is published; the address that stays keeps its state.
    let kept = state(&tables, "10.0.0.1:80").expect("endpoint");
    dns.answer("web", Ok(&["10.0.0.3", "10.0.0.1"]));
    wait_for_addresses(&tables, &["10.0.0.3:80", "10.0.0.1:80"]).await;
    let now = state(&tables, "10.0.0.1:80").expect("endpoint");
    assert!(Arc::ptr_eq(&kept, &now), "the kept address kept its state");

    // The same answer again publishes nothing.
    let generation = tables.load().generation();
    dns.wait_for_lookups(3).await;
    assert_eq!(tables.load().generation(), generation);

    // Failures keep the last addresses.
    dns.answer("web", Err("SERVFAIL"));
    dns.wait_for_lookups(3).await;
    assert_eq!(tables.load().generation(), generation);
    assert_eq!(addresses(&tables), ["10.0.0.3:80", "10.0.0.1:80"]);

    // A new config restarts the loop, which starts from the addresses it knew.
    tables.apply([Change::UpsertCluster(cluster("STRICT_DNS", "web", 81))]);
    wait_for_addresses(&tables, &["10.0.0.3:81", "10.0.0.1:81"]).await;

    // A removed cluster is no longer resolved.
    tables.apply([Change::RemoveCluster("dns".into())]);
    tokio::task::yield_now().await;
    let lookups = *dns.lookups.borrow();
    // Paused time: this runs every timer due in the next minute, at once.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(*dns.lookups.borrow(), lookups);
    resolver.abort();
}

#[tokio::test(start_paused = true)]
async fn logical_dns_uses_the_first_address() {
    let tables = Arc::new(Tables::new());
    let dns = Scripted::new();
    dns.answer("api", Ok(&["10.0.0.7", "10.0.0.8"]));
    let resolver = tokio::spawn(run(tables.clone(), dns.clone()));
    tables.apply([Change::UpsertCluster(cluster("LOGICAL_DNS", "api", 443))]);
    wait_for_addresses(&tables, &["10.0.0.7:443"]).await;
    dns.answer("api", Ok(&["10.0.0.8", "10.0.0.7"]));
    wait_for_addresses(&tables, &["10.0.0.8:443"]).await;
    resolver.abort();
}
