//! `ConfigSource`: where a dynamic resource comes from. Only ADS is supported.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    self as core, ApiVersion, config_source::ConfigSourceSpecifier,
};

use crate::error::{Result, ValidationError, reject_if_set};
use crate::proto_value::{enum_value, opt_duration};

/// Envoy's default `initial_fetch_timeout`.
const DEFAULT_INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// A validated `ConfigSource`. Only `ads: {}` is accepted: every dynamic resource comes over the
/// one ADS stream the bootstrap configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSource {
    /// How long a resource from this source may keep its dependant warming. `None` = wait
    /// forever (proto `0s`); 15 s when unset.
    pub initial_fetch_timeout: Option<Duration>,
}

impl Default for ConfigSource {
    fn default() -> Self {
        Self {
            initial_fetch_timeout: Some(DEFAULT_INITIAL_FETCH_TIMEOUT),
        }
    }
}

impl ConfigSource {
    pub fn from_proto(proto: &core::ConfigSource) -> Result<Self> {
        let core::ConfigSource {
            authorities,
            initial_fetch_timeout,
            resource_api_version,
            config_source_specifier,
        } = proto;
        // xdstp:// authorities name other management servers: we only talk to the ADS server.
        reject_if_set!(authorities);
        if enum_value::<ApiVersion>(*resource_api_version, "resource_api_version")?
            == ApiVersion::V2
        {
            return Err(ValidationError::new(
                "resource_api_version",
                "xDS v2 is not supported",
            ));
        }
        match config_source_specifier {
            Some(ConfigSourceSpecifier::Ads(core::AggregatedConfigSource {})) => {}
            Some(ConfigSourceSpecifier::Path(_)) => {
                return Err(ValidationError::new(
                    "path",
                    "not supported (only ads is supported)",
                ));
            }
            Some(ConfigSourceSpecifier::PathConfigSource(_)) => {
                return Err(ValidationError::new(
                    "path_config_source",
                    "not supported (only ads is supported)",
                ));
            }
            Some(ConfigSourceSpecifier::ApiConfigSource(_)) => {
                return Err(ValidationError::new(
                    "api_config_source",
                    "not supported (only ads is supported)",
                ));
            }
            Some(ConfigSourceSpecifier::Self_(_)) => {
                return Err(ValidationError::new(
                    "self",
                    "not supported (only ads is supported)",
                ));
            }
            None => {
                return Err(ValidationError::new(
                    "config_source_specifier",
                    "one of ads, api_config_source, path or self is required (only ads is supported)",
                ));
            }
        }
        let initial_fetch_timeout =
            match opt_duration(initial_fetch_timeout, "initial_fetch_timeout")? {
                None => Some(DEFAULT_INITIAL_FETCH_TIMEOUT),
                Some(d) if d.is_zero() => None,
                Some(d) => Some(d),
            };
        Ok(Self {
            initial_fetch_timeout,
        })
    }
}
