//! The suite's result: one row per scenario and mode (PASS/FAIL, duration, why), and for every
//! failure the full reason with the server's last requests and the client's last output.

use std::fmt::Write as _;
use std::time::Duration;

use super::Mode;

/// How a scenario ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held.
    Pass,
    /// A check failed: what was expected and what was seen.
    Fail(String),
}

/// One scenario run in one mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioResult {
    /// `sotw.nack_keeps_last_good_version`.
    pub name: String,
    /// The mode it ran in.
    pub mode: Mode,
    /// Pass or fail.
    pub outcome: Outcome,
    /// How long it took.
    pub duration: Duration,
    /// On failure: the server's last requests and the client's last output.
    pub details: String,
    /// What the scenario measured (reconnect attempts, request counts, delays).
    pub notes: Vec<String>,
}

impl ScenarioResult {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }

    /// The failure reason (`""` on a pass).
    pub fn reason(&self) -> &str {
        match &self.outcome {
            Outcome::Pass => "",
            Outcome::Fail(reason) => reason,
        }
    }
}

/// Every result, in the suite's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuiteReport {
    /// One per scenario and mode that ran.
    pub results: Vec<ScenarioResult>,
}

/// The reason column is cut here; the full reason follows the table.
const REASON_WIDTH: usize = 100;

impl SuiteReport {
    /// Whether every scenario passed (and at least one ran: an empty run proves nothing).
    pub fn all_passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(ScenarioResult::passed)
    }

    /// The failed results.
    pub fn failures(&self) -> Vec<&ScenarioResult> {
        self.results.iter().filter(|r| !r.passed()).collect()
    }

    /// The table (scenario, mode, PASS/FAIL, duration, failure reason), a count line, and the
    /// full story of each failure.
    pub fn table(&self) -> String {
        let rows: Vec<[String; 5]> = self
            .results
            .iter()
            .map(|r| {
                [
                    r.name.clone(),
                    r.mode.to_string(),
                    if r.passed() { "PASS" } else { "FAIL" }.to_string(),
                    format!("{:.1}s", r.duration.as_secs_f64()),
                    if r.passed() {
                        first_line(&r.notes.join("; "), REASON_WIDTH)
                    } else {
                        first_line(r.reason(), REASON_WIDTH)
                    },
                ]
            })
            .collect();
        let header = [
            "SCENARIO".to_string(),
            "MODE".to_string(),
            "RESULT".to_string(),
            "TIME".to_string(),
            "REASON / NOTES".to_string(),
        ];
        let mut widths = [0usize; 5];
        for row in std::iter::once(&header).chain(rows.iter()) {
            for (width, cell) in widths.iter_mut().zip(row.iter()) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(rows.iter()) {
            let line = format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let failed = self.failures().len();
        let _ = writeln!(
            out,
            "{} scenarios: {} passed, {} failed",
            self.results.len(),
            self.results.len() - failed,
            failed
        );
        for result in self.failures() {
            let _ = write!(out, "\n--- {} ---\n{}\n", result.name, result.reason());
            if !result.notes.is_empty() {
                let _ = writeln!(out, "notes: {}", result.notes.join("; "));
            }
            if !result.details.is_empty() {
                let _ = writeln!(out, "{}", result.details);
            }
        }
        out
    }
}

/// The first line of `text`, cut to `width` characters.
fn first_line(text: &str, width: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    let cut = super::admin::first_chars(line, width);
    if text.lines().nth(1).is_some() && !cut.ends_with('…') {
        format!("{cut} …")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, outcome: Outcome) -> ScenarioResult {
        ScenarioResult {
            name: name.into(),
            mode: Mode::Sotw,
            outcome,
            duration: Duration::from_millis(1234),
            details: "server 1 last requests: …".into(),
            notes: vec!["3 attempts".into()],
        }
    }

    #[test]
    fn the_table_lists_every_row_and_explains_failures() {
        let report = SuiteReport {
            results: vec![
                result("sotw.ack_matches_response", Outcome::Pass),
                result(
                    "sotw.nack_keeps_last_good_version",
                    Outcome::Fail("no NACK\nsecond line".into()),
                ),
            ],
        };
        assert!(!report.all_passed());
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("SCENARIO"), "{table}");
        assert!(lines[1].contains("sotw.ack_matches_response") && lines[1].contains("PASS"));
        assert!(
            lines[1].contains("1.2s") && lines[1].ends_with("3 attempts"),
            "{table}"
        );
        assert!(
            lines[2].contains("FAIL") && lines[2].ends_with("no NACK …"),
            "{table}"
        );
        assert!(table.contains("2 scenarios: 1 passed, 1 failed"), "{table}");
        assert!(table.contains("--- sotw.nack_keeps_last_good_version ---\nno NACK\nsecond line"));
        assert!(table.contains("server 1 last requests"));
    }

    #[test]
    fn an_empty_run_does_not_pass() {
        assert!(!SuiteReport::default().all_passed());
        let report = SuiteReport {
            results: vec![result("sotw.x", Outcome::Pass)],
        };
        assert!(report.all_passed());
        assert_eq!(
            first_line(&"x".repeat(200), 10),
            format!("{}…", "x".repeat(10))
        );
    }
}
