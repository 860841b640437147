//! Running stages: [`run_stage`] runs one and journals it (`running` before, `succeeded` or
//! `failed` with its outputs after); [`run_plan`] runs a [`StagePlan`]'s stages in order,
//! reporting [`ApplyEvent`]s, skipping the dependents of a failure (except those that run after
//! failures, like `collect`).
//!
//! The reconciler may instead put each stage in its own graph as a node and call
//! [`run_stage`] from its executor; `run_plan` is the same walk for a chain of stages alone
//! (and what the tests drive).

use std::sync::Arc;

use petgraph::graph::NodeIndex;
use serde_json::Value;

use super::catalogue::{CATALOGUE, StageId};
use super::env::StageEnv;
use super::plan::{Inputs, RecordedOutputs, StagePlan};
use super::{Failure, Stage, StageError};
use crate::apply::{ApplyEvent, ApplyEventKind, Cancel, Finish, Reporter, StepContext};
use crate::state::{StageRecord, StageStatus};

/// How one stage ended.
#[derive(Debug)]
pub struct StageRun {
    pub id: StageId,
    pub inputs: Inputs,
    pub outcome: Result<Value, Failure>,
}

impl StageRun {
    pub fn succeeded(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// Runs `stage` and records it in the journal: a `running` record first (so a crash reads as
/// "interrupted"), then `succeeded` with its outputs or `failed` with its error and whatever it
/// produced. Only a journal write failure is an `Err`; the stage's own failure is in the
/// returned [`StageRun`].
pub async fn run_stage(
    stage: &dyn Stage,
    env: &StageEnv,
    step: &StepContext,
) -> Result<StageRun, StageError> {
    let id = stage.id();
    let hosts = env.host_list();
    let inputs = stage.inputs(&env.input_context(&hosts))?;
    let fingerprint = inputs.fingerprint();
    let record = |status, result: Value, error| StageRecord {
        stage: id.name(),
        fingerprint: fingerprint.clone(),
        status,
        outputs: serde_json::to_value(RecordedOutputs {
            inputs: inputs.clone(),
            result,
        })
        .expect("stage outputs serialize"),
        error,
    };
    env.journal
        .stage(record(StageStatus::Running, Value::Null, None))
        .await?;
    let outcome = if step.is_cancelled() {
        Err(Failure::from(StageError::Cancelled))
    } else {
        stage.run(env, step).await
    };
    let finished = match &outcome {
        Ok(result) => record(StageStatus::Succeeded, result.clone(), None),
        Err(f) => record(
            StageStatus::Failed,
            f.outputs.clone().unwrap_or(Value::Null),
            Some(f.error.to_string()),
        ),
    };
    env.journal.stage(finished).await?;
    Ok(StageRun {
        id,
        inputs,
        outcome,
    })
}

/// How each stage of a [`run_plan`] ended.
#[derive(Debug, Default)]
pub struct PlanRun {
    pub runs: Vec<StageRun>,
    /// Stages not run because a stage they come after failed or was skipped: (stage, root).
    pub skipped: Vec<(StageId, StageId)>,
}

impl PlanRun {
    pub fn is_success(&self) -> bool {
        self.skipped.is_empty() && self.runs.iter().all(StageRun::succeeded)
    }

    pub fn get(&self, id: StageId) -> Option<&StageRun> {
        self.runs.iter().find(|r| r.id == id)
    }
}

/// The graph node a stage's events carry in [`run_plan`]: its catalogue position.
pub fn node_of(id: StageId) -> NodeIndex {
    NodeIndex::new(
        CATALOGUE
            .iter()
            .position(|i| i.id == id)
            .expect("in the catalogue"),
    )
}

/// Runs the stages `plan` says run, in order, with `stages` (one per catalogue entry). A failed stage's dependents are skipped (with events naming it), except
/// stages that run after failures; a cancelled apply stops before the next stage.
pub async fn run_plan(
    plan: &StagePlan,
    stages: &[&dyn Stage],
    env: &StageEnv,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
) -> Result<PlanRun, StageError> {
    let mut out = PlanRun::default();
    // Stages of this plan that did not succeed, with the root cause of each.
    let mut not_ok: Vec<(StageId, StageId, bool)> = Vec::new(); // (stage, root, failed itself)
    for entry in &plan.entries {
        if !entry.decision.runs() {
            continue;
        }
        let id = entry.id;
        let info = id.info();
        let node = node_of(id);
        let blocker = info.after.iter().find_map(|dep| {
            not_ok
                .iter()
                .find(|(s, _, _)| s == dep)
                .filter(|(_, _, failed)| !(info.runs_after_failure && *failed))
                .map(|(_, root, _)| *root)
        });
        if let Some(root) = blocker {
            reporter.report(ApplyEvent {
                node,
                kind: ApplyEventKind::Skipped {
                    upstream: node_of(root),
                },
            });
            out.skipped.push((id, root));
            not_ok.push((id, root, false));
            continue;
        }
        if cancel.is_cancelled() {
            reporter.report(ApplyEvent {
                node,
                kind: ApplyEventKind::Cancelled,
            });
            not_ok.push((id, id, false));
            out.skipped.push((id, id));
            continue;
        }
        let stage = stages
            .iter()
            .find(|s| s.id() == id)
            .expect("a stage for every catalogue entry");
        reporter.report(ApplyEvent {
            node,
            kind: ApplyEventKind::Started,
        });
        let step = StepContext::new(node, reporter.clone(), cancel.clone());
        let run = run_stage(*stage, env, &step).await?;
        let finish = match &run.outcome {
            Ok(_) => Finish::Applied,
            Err(f) => {
                not_ok.push((id, id, true));
                Finish::Failed {
                    error: f.error.to_string(),
                }
            }
        };
        reporter.report(ApplyEvent {
            node,
            kind: ApplyEventKind::Finished(finish),
        });
        out.runs.push(run);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::apply::EventLog;
    use crate::ssh::BoxFuture;
    use crate::stages::plan::{assess, decide};
    use crate::stages::{InputContext, StageOptions, StageSelection};
    use crate::state::StateDir;

    /// A stage whose work is scripted: it fails when told to, and counts its runs.
    struct Scripted {
        id: StageId,
        fail: bool,
        runs: Mutex<u32>,
        value: u32,
    }

    impl Stage for Scripted {
        fn id(&self) -> StageId {
            self.id
        }
        fn inputs(&self, _: &InputContext<'_>) -> Result<Inputs, StageError> {
            Ok(Inputs::new().with("value", self.value))
        }
        fn run<'a>(
            &'a self,
            _: &'a StageEnv,
            step: &'a StepContext,
        ) -> BoxFuture<'a, Result<Value, Failure>> {
            Box::pin(async move {
                *self.runs.lock().unwrap() += 1;
                step.progress_count(1, 1, "done");
                if self.fail {
                    Err(Failure::with_outputs(
                        StageError::Cancelled,
                        serde_json::json!({"partial": true}),
                    ))
                } else {
                    Ok(serde_json::json!({"stage": self.id}))
                }
            })
        }
    }

    fn env(dir: &std::path::Path) -> StageEnv {
        let spec = crate::spec::load_str(
            "name: t\nowner: o\ncloud:\n  local:\n    regions: [{ name: r1, nodes: 1 }]\n",
            "t.yaml",
            &dir.join("t.yaml"),
        )
        .unwrap();
        let state = StateDir::new(dir.join("state")).spec(&spec.name).unwrap();
        let lock = state.lock("test").unwrap();
        let journal = state.journal(&lock).unwrap();
        StageEnv::new(
            Arc::new(spec),
            state,
            Arc::new(lock),
            journal,
            Vec::new(),
            StageOptions::default(),
        )
    }

    #[tokio::test]
    async fn a_failure_skips_dependents_but_collect_still_runs_and_everything_is_journaled() {
        let tmp = tempfile::tempdir().unwrap();
        let env = env(tmp.path());
        let stages: Vec<Scripted> = StageId::ALL
            .iter()
            .map(|id| Scripted {
                id: *id,
                fail: *id == StageId::Blocks,
                runs: Mutex::new(0),
                value: 1,
            })
            .collect();
        let dyns: Vec<&dyn Stage> = stages.iter().map(|s| s as &dyn Stage).collect();
        let hosts = env.host_list();
        let plan = |env: &StageEnv| {
            let a = assess(&dyns, &env.input_context(&hosts), &env.journal.log()).unwrap();
            decide(&a, &Default::default(), &StageSelection::all())
        };
        let events = Arc::new(EventLog::default());
        let run = run_plan(&plan(&env), &dyns, &env, events.clone(), Cancel::new())
            .await
            .unwrap();
        assert!(!run.is_success());
        // blocks failed; collect runs after failures and succeeds; report follows collect.
        assert!(!run.get(StageId::Blocks).unwrap().succeeded());
        assert!(run.get(StageId::Collect).unwrap().succeeded());
        assert!(run.get(StageId::Report).unwrap().succeeded());
        let kinds = events.of(node_of(StageId::Blocks));
        assert!(matches!(
            kinds.last(),
            Some(ApplyEventKind::Finished(Finish::Failed { .. }))
        ));

        // The failure and its partial outputs are recorded; the next plan resumes at blocks.
        let last = crate::stages::plan::LastRun::of(&env.journal.log(), StageId::Blocks).unwrap();
        assert_eq!(last.status, StageStatus::Failed);
        assert_eq!(last.result["partial"], true);
        assert_eq!(
            plan(&env).running(),
            [StageId::Blocks, StageId::Collect, StageId::Report]
        );
    }

    #[tokio::test]
    async fn a_stage_of_a_failed_non_collect_stage_is_skipped_naming_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let env = env(tmp.path());
        let stages: Vec<Scripted> = StageId::ALL
            .iter()
            .map(|id| Scripted {
                id: *id,
                fail: *id == StageId::Nodes,
                runs: Mutex::new(0),
                value: 1,
            })
            .collect();
        let dyns: Vec<&dyn Stage> = stages.iter().map(|s| s as &dyn Stage).collect();
        let hosts = env.host_list();
        let a = assess(&dyns, &env.input_context(&hosts), &env.journal.log()).unwrap();
        let plan = decide(&a, &Default::default(), &StageSelection::all());
        let events = Arc::new(EventLog::default());
        let run = run_plan(&plan, &dyns, &env, events.clone(), Cancel::new())
            .await
            .unwrap();
        assert_eq!(
            run.skipped,
            [
                (StageId::Topology, StageId::Nodes),
                (StageId::Transactions, StageId::Nodes),
                (StageId::Blocks, StageId::Nodes),
                (StageId::Collect, StageId::Nodes),
                (StageId::Report, StageId::Nodes),
            ]
        );
        assert_eq!(
            events.of(node_of(StageId::Collect)),
            [ApplyEventKind::Skipped {
                upstream: node_of(StageId::Nodes)
            }]
        );
        assert_eq!(*stages[3].runs.lock().unwrap(), 0);
    }
}
