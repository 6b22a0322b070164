//! The scenarios, grouped by topic, and the small checks they share.
//!
//! Each scenario asserts positive evidence (a request, a dump entry, a status) so that a client
//! that does nothing fails it; where a rule says something must not happen, it is observed over a
//! bounded window and counted.

mod delta;
mod real_servers;
mod reconnect;
mod subscriptions;
mod transport;
mod warming;

use std::collections::BTreeSet;

use super::Mode;
use super::config_dump::ConfigDump;
use super::runner::Scenario;

pub(super) const BOTH: &[Mode] = &[Mode::Sotw, Mode::Delta];
pub(super) const SOTW: &[Mode] = &[Mode::Sotw];
pub(super) const DELTA: &[Mode] = &[Mode::Delta];

/// Every scenario, in report order.
pub(crate) fn all() -> Vec<Scenario> {
    let mut all = transport::scenarios();
    all.extend(subscriptions::scenarios());
    all.extend(warming::scenarios());
    all.extend(delta::scenarios());
    all.extend(reconnect::scenarios());
    all.extend(real_servers::scenarios());
    all
}

/// A name that occurs twice in `names`.
pub(super) fn duplicated(names: &[String]) -> Option<String> {
    let mut seen = BTreeSet::new();
    names.iter().find(|n| !seen.insert(n.as_str())).cloned()
}

/// `names` contains `name`.
pub(super) fn has(names: &[String], name: &str) -> bool {
    names.iter().any(|n| n == name)
}

/// Lower case without `_` or spaces, so `connect_timeout`, `ConnectTimeout` and
/// `connect timeout` all read `connecttimeout`.
pub(super) fn normalized(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '_' && *c != ' ')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Every cluster of `names` is active (in use, not warming).
pub(super) fn clusters_active(dump: &ConfigDump, names: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| dump.active_cluster(name).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("clusters not active: {missing:?}"))
    }
}

/// Every listener of `names` is active.
pub(super) fn listeners_active(dump: &ConfigDump, names: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| !dump.listener_active(name))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("listeners not active: {missing:?}"))
    }
}

/// The EDS name `name` has at least one endpoint in the dump.
pub(super) fn has_endpoints(dump: &ConfigDump, name: &str) -> Result<(), String> {
    match dump.endpoint_config(name) {
        Some(e) if e.endpoint_count() > 0 => Ok(()),
        Some(_) => Err(format!("the endpoints of {name} are empty")),
        None if !dump.has_endpoints_section() => {
            Err("the dump has no endpoints section (?include_eds)".to_string())
        }
        None => Err(format!("no endpoints for {name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_checks() {
        let names: Vec<String> = ["a", "b", "a"].iter().map(|s| (*s).to_string()).collect();
        assert_eq!(duplicated(&names).as_deref(), Some("a"));
        assert_eq!(duplicated(&names[..2]), None);
        assert!(has(&names, "b") && !has(&names, "c"));
        assert_eq!(normalized("Connect_Timeout: must"), "connecttimeout:must");
        let dump = ConfigDump::parse(r#"{"configs":[]}"#).expect("parses");
        assert!(clusters_active(&dump, &[]).is_ok());
        assert!(clusters_active(&dump, &["x"]).is_err());
        assert!(listeners_active(&dump, &["l"]).is_err());
        assert!(has_endpoints(&dump, "e").is_err_and(|e| e.contains("include_eds")));
    }
}
