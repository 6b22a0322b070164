//! Runs the scenarios: each in its own task with its own server and client, at most
//! `parallel` at once, each under an overall deadline, a panic or a hang reported as a failure.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::context::{Ctx, Trace};
use super::report::{Outcome, ScenarioResult, SuiteReport};
use super::{ClientCommand, Failure, Mode, SuiteOptions};

/// No scenario may take longer than this (the slowest waits ~17 s for DOES_NOT_EXIST).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(90);

/// What a scenario's body returns.
pub type ScenarioFuture = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;

/// One check of the suite.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// The name without the mode: `nack_keeps_last_good_version`.
    pub name: &'static str,
    /// The modes the rule applies to.
    pub modes: &'static [Mode],
    /// What it checks, in one line.
    pub checks: &'static str,
    /// Takes many seconds by design: started first so the rest overlaps it.
    pub slow: bool,
    pub(crate) run: fn(Ctx) -> ScenarioFuture,
}

impl Scenario {
    /// `<mode>.<name>`.
    pub fn full_name(&self, mode: Mode) -> String {
        format!("{}.{}", mode.as_str(), self.name)
    }
}

/// Every scenario of the suite, in report order.
pub fn scenarios() -> Vec<Scenario> {
    super::scenarios::all()
}

/// The scenario runs `options` asks for, in report order.
fn plan(options: &SuiteOptions) -> Vec<(Scenario, Mode)> {
    let mut plan = Vec::new();
    for scenario in scenarios() {
        for mode in [Mode::Sotw, Mode::Delta] {
            let wanted = options.modes.contains(&mode) && scenario.modes.contains(&mode);
            let named = options
                .only
                .as_deref()
                .is_none_or(|only| scenario.full_name(mode).contains(only));
            if wanted && named {
                plan.push((scenario, mode));
            }
        }
    }
    plan
}

/// Runs every scenario `options` selects against the client `client` starts, and reports.
pub async fn run_suite(client: &ClientCommand, options: &SuiteOptions) -> SuiteReport {
    let plan = plan(options);
    let permits = Arc::new(Semaphore::new(options.parallel.max(1)));
    let mut order: Vec<usize> = (0..plan.len()).collect();
    // Slow scenarios first: they then overlap the quick ones instead of ending the run alone.
    order.sort_by_key(|&i| (!plan[i].0.slow, i));
    let mut tasks = JoinSet::new();
    for index in order {
        let (scenario, mode) = plan[index];
        let permits = permits.clone();
        let command = client.clone();
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits for a free slot.
            let _permit = permits.acquire_owned().await;
            (index, run_one(scenario, mode, command).await)
        });
    }
    let mut results: Vec<Option<ScenarioResult>> = vec![None; plan.len()];
    while let Some(joined) = tasks.join_next().await {
        // `run_one` catches the scenario's own panics; a join error here would be the runner's
        // bug, and its row is filled in below.
        if let Ok((index, result)) = joined {
            results[index] = Some(result);
        }
    }
    SuiteReport {
        results: results
            .into_iter()
            .zip(plan)
            .map(|(result, (scenario, mode))| {
                result.unwrap_or_else(|| ScenarioResult {
                    name: scenario.full_name(mode),
                    mode,
                    outcome: Outcome::Fail("the runner lost this scenario's task".into()),
                    duration: Duration::ZERO,
                    details: String::new(),
                    notes: Vec::new(),
                })
            })
            .collect(),
    }
}

async fn run_one(scenario: Scenario, mode: Mode, command: ClientCommand) -> ScenarioResult {
    let name = scenario.full_name(mode);
    let trace = Arc::new(Trace::default());
    let started = Instant::now();
    tracing::info!(scenario = %name, "scenario started");
    let outcome = match Ctx::new(&name, mode, command, trace.clone()) {
        Err(failure) => Outcome::Fail(failure.0),
        Ok(ctx) => {
            // Its own task, so a panic is caught and a hang can be aborted (which drops the
            // context and kills the client).
            let mut task = tokio::spawn((scenario.run)(ctx));
            match tokio::time::timeout(SCENARIO_TIMEOUT, &mut task).await {
                Ok(Ok(Ok(()))) => Outcome::Pass,
                Ok(Ok(Err(failure))) => Outcome::Fail(failure.0),
                Ok(Err(join)) => {
                    Outcome::Fail(format!("the scenario panicked: {}", panic_message(join)))
                }
                Err(_) => {
                    task.abort();
                    let _ = task.await;
                    Outcome::Fail(format!("did not finish within {SCENARIO_TIMEOUT:?}"))
                }
            }
        }
    };
    let duration = started.elapsed();
    let details = match outcome {
        Outcome::Pass => String::new(),
        Outcome::Fail(_) => trace.explain(),
    };
    tracing::info!(scenario = %name, passed = outcome == Outcome::Pass, ?duration, "scenario ended");
    ScenarioResult {
        name,
        mode,
        outcome,
        duration,
        details,
        notes: trace.notes(),
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    if !join.is_panic() {
        return join.to_string();
    }
    let payload = join.into_panic();
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a non-text panic)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_mode_is_covered() {
        let all = scenarios();
        let mut names: Vec<&str> = all.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "duplicate scenario names");
        assert!(
            all.iter()
                .all(|s| !s.modes.is_empty() && !s.checks.is_empty())
        );
        assert!(all.iter().any(|s| s.modes == [Mode::Sotw]));
        assert!(all.iter().any(|s| s.modes == [Mode::Delta]));
    }

    #[test]
    fn the_plan_follows_modes_and_the_name_filter() {
        let both = plan(&SuiteOptions::default());
        let sotw_only = plan(&SuiteOptions {
            modes: vec![Mode::Sotw],
            ..SuiteOptions::default()
        });
        assert!(sotw_only.iter().all(|(_, mode)| *mode == Mode::Sotw));
        assert!(sotw_only.len() < both.len());
        let filtered = plan(&SuiteOptions {
            only: Some("delta.nack_keeps".into()),
            ..SuiteOptions::default()
        });
        assert_eq!(filtered.len(), 1);
        assert_eq!(filtered[0].1, Mode::Delta);
    }

    #[tokio::test]
    async fn a_client_that_cannot_start_fails_every_scenario_it_was_asked_for() {
        let options = SuiteOptions {
            modes: vec![Mode::Sotw],
            only: Some("sotw.node_on_every_stream".into()),
            parallel: 1,
        };
        let client = ClientCommand::new("/nonexistent/xds-client", ["-c", "{bootstrap}"]);
        let report = run_suite(&client, &options).await;
        assert_eq!(report.results.len(), 1);
        assert!(!report.all_passed());
        assert!(
            report.results[0]
                .reason()
                .contains("cannot start /nonexistent/xds-client"),
            "{}",
            report.table()
        );
    }
}
