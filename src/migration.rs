//! `outrider validate`: a migration report. For a bootstrap, a directory of xDS resources or
//! an Envoy `/config_dump`, every feature the configuration uses is listed as enforced,
//! rejected (with the field path and why; each rejection, not only the first), or ignored as
//! harmless (why), so an Envoy user learns in one command what of their configuration holds.
//!
//! Rejections come from the model itself (`prune.rs` takes each rejected field out and checks
//! again); "ignored" comes from the model's list of harmless fields
//! (`outrider_model::IGNORED_FIELDS`), the bootstrap's ignored sections and the harmless HTTP
//! filters; every other field the configuration sets is enforced, because the model converts
//! every field it does not reject or list.

mod field_path;
mod inputs;
mod inventory;
mod prune;
mod render;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::bootstrap::Overrides;
use inputs::{Document, documents};
use inventory::{Verdicts, features};
use prune::prune;
pub use render::{json, text};

/// What a feature's status is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Rejected,
    Ignored,
    Enforced,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Rejected => "rejected",
            Status::Ignored => "ignored",
            Status::Enforced => "enforced",
        }
    }
}

/// One use of a feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// The field path with list indices left out and `Any` types named
    /// (`filter_chains[].filters[].typed_config<HttpConnectionManager>.stat_prefix`).
    pub name: String,
    /// Where it is, exactly.
    pub at: String,
    pub status: Status,
    pub why: Option<String>,
}

/// The report on one document (the bootstrap, or one resource).
#[derive(Debug, Clone)]
pub struct DocumentReport {
    /// `bootstrap`, or the resource's type and name.
    pub label: String,
    pub features: Vec<Feature>,
    /// Whether every rejection was found: `false` when one could not be taken out to look
    /// further (a rejection of the document as a whole).
    pub complete: bool,
}

impl DocumentReport {
    pub fn loads(&self) -> bool {
        self.features.iter().all(|f| f.status != Status::Rejected)
    }
}

/// The report on everything `source` holds.
#[derive(Debug, Clone)]
pub struct Report {
    pub source: PathBuf,
    pub documents: Vec<DocumentReport>,
}

impl Report {
    /// Whether Outrider takes the configuration as it is.
    pub fn loads(&self) -> bool {
        self.documents.iter().all(DocumentReport::loads)
    }

    pub fn count(&self, status: Status) -> usize {
        self.documents
            .iter()
            .flat_map(|d| &d.features)
            .filter(|f| f.status == status)
            .count()
    }
}

/// The report on a bootstrap file, a directory of xDS resources (one per file, each with its
/// `@type`) or a saved Envoy `/config_dump`. An error is a file that cannot be read at all.
pub fn report(source: &Path, overrides: &Overrides) -> Result<Report, String> {
    let documents = documents(source, overrides)?;
    Ok(Report {
        source: source.to_path_buf(),
        documents: documents.into_iter().map(examine).collect(),
    })
}

fn examine(document: Document) -> DocumentReport {
    let Document {
        label,
        message,
        value,
        check,
    } = document;
    let pruned = prune(value.clone(), |value: &Value| check(value));
    let ignored_paths = pruned.loaded.clone().unwrap_or_default();
    let verdicts = Verdicts {
        rejections: &pruned.rejections,
        ignored_paths: &ignored_paths,
    };
    DocumentReport {
        label,
        features: features(&value, &message, &verdicts),
        complete: pruned.loaded.is_some(),
    }
}
