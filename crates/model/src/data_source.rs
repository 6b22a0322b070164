//! `core.v3.DataSource`: bytes given inline or by file name (certificates, bodies).

use std::path::PathBuf;

use envoy_types::pb::envoy::config::core::v3::{self as core, data_source::Specifier};

use crate::error::{Result, ValidationError, reject_if_set};

/// Where some configured bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// Read by the consumer (e.g. when building a TLS config); checked readable when validated.
    File(PathBuf),
    Inline(Vec<u8>),
}

impl DataSource {
    /// The bytes, read from the file now if it is one.
    pub fn read(&self) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
        match self {
            DataSource::File(path) => std::fs::read(path).map(std::borrow::Cow::Owned),
            DataSource::Inline(bytes) => Ok(std::borrow::Cow::Borrowed(bytes)),
        }
    }

    pub(crate) fn from_proto(proto: &core::DataSource) -> Result<Self> {
        let core::DataSource {
            watched_directory,
            specifier,
        } = proto;
        // Envoy reloads watched files on change; we read them once, so reject rather than
        // silently serve stale certificates.
        reject_if_set!(watched_directory);
        match specifier {
            Some(Specifier::Filename(f)) if f.is_empty() => {
                Err(ValidationError::new("filename", "must not be empty"))
            }
            // Envoy reads the file when it loads the config, so a missing one is an error there
            // and here (the consumer reads it again when it uses it).
            Some(Specifier::Filename(f)) => match std::fs::metadata(f) {
                Ok(meta) if meta.is_file() => match std::fs::File::open(f) {
                    Ok(_) => Ok(Self::File(PathBuf::from(f))),
                    Err(e) => Err(ValidationError::new(
                        "filename",
                        format!("unable to read file {f}: {e}"),
                    )),
                },
                Ok(_) => Err(ValidationError::new(
                    "filename",
                    format!("unable to read file {f}: not a regular file"),
                )),
                Err(e) => Err(ValidationError::new(
                    "filename",
                    format!("unable to read file {f}: {e}"),
                )),
            },
            Some(Specifier::InlineBytes(b)) => Ok(Self::Inline(b.clone())),
            Some(Specifier::InlineString(s)) => Ok(Self::Inline(s.clone().into_bytes())),
            Some(Specifier::EnvironmentVariable(_)) => {
                Err(ValidationError::unsupported("environment_variable"))
            }
            None => Err(ValidationError::new(
                "specifier",
                "one of filename, inline_bytes or inline_string is required",
            )),
        }
    }
}
