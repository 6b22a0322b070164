//! The report as text (rejections first, each where it is; then the ignored and enforced
//! features, each once with its count) and as JSON (`--json`).

use std::fmt::Write as _;

use serde_json::json;

use super::{DocumentReport, Feature, Report, Status};

/// One line of the text report: a feature, how often, and where first.
struct Line<'a> {
    feature: &'a Feature,
    count: usize,
}

/// The features of `document` with one line per rejection and per (status, feature, why).
fn lines(document: &DocumentReport) -> Vec<Line<'_>> {
    let mut lines: Vec<Line<'_>> = Vec::new();
    for feature in &document.features {
        let same = |line: &&mut Line<'_>| {
            feature.status != Status::Rejected
                && line.feature.status == feature.status
                && line.feature.name == feature.name
                && line.feature.why == feature.why
        };
        match lines.iter_mut().find(same) {
            Some(line) => line.count += 1,
            None => lines.push(Line { feature, count: 1 }),
        }
    }
    // Rejections, then ignored, then enforced; document order within each.
    lines.sort_by_key(|line| line.feature.status);
    lines
}

/// The text report.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let source = report.source.display();
    let rejected = report.count(Status::Rejected);
    if rejected == 0 {
        let _ = writeln!(out, "configuration '{source}' OK");
    } else {
        let _ = writeln!(
            out,
            "configuration '{source}' is refused: {rejected} rejected field(s) below"
        );
    }
    for document in &report.documents {
        let _ = writeln!(out, "\n{}:", document.label);
        for line in lines(document) {
            let feature = line.feature;
            let status = feature.status.as_str();
            let _ = match (feature.status, &feature.why) {
                (Status::Rejected, why) => writeln!(
                    out,
                    "  {status:<8}  {}: {}",
                    if feature.at.is_empty() {
                        "(the whole document)"
                    } else {
                        &feature.at
                    },
                    why.as_deref().unwrap_or("")
                ),
                (_, why) => {
                    let count = if line.count > 1 {
                        format!(" ({}×)", line.count)
                    } else {
                        String::new()
                    };
                    let why = why.as_deref().map(|w| format!(": {w}")).unwrap_or_default();
                    writeln!(out, "  {status:<8}  {}{count}{why}", feature.name)
                }
            };
        }
        if !document.complete {
            let _ = writeln!(
                out,
                "  (not checked further: the last rejection is of the whole document)"
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} enforced, {rejected} rejected, {} ignored as harmless",
        report.count(Status::Enforced),
        report.count(Status::Ignored),
    );
    out
}

/// The JSON report.
pub fn json(report: &Report) -> serde_json::Value {
    let documents: Vec<_> = report
        .documents
        .iter()
        .map(|document| {
            let features: Vec<_> = document
                .features
                .iter()
                .map(|f| {
                    json!({
                        "feature": f.name,
                        "at": f.at,
                        "status": f.status.as_str(),
                        "why": f.why,
                    })
                })
                .collect();
            json!({
                "document": document.label,
                "loads": document.loads(),
                "complete": document.complete,
                "features": features,
            })
        })
        .collect();
    json!({
        "source": report.source.display().to_string(),
        "loads": report.loads(),
        "summary": {
            "enforced": report.count(Status::Enforced),
            "rejected": report.count(Status::Rejected),
            "ignored": report.count(Status::Ignored),
        },
        "documents": documents,
    })
}
