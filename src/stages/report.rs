//! `report`: the analyzer (`crate::analyze`, the same function `cfxm report RUN_DIR` calls)
//! over the run directory `collect` filled, with the spec's percentiles. It writes
//! `report.{txt,json,md}` and plots into the run directory and keeps the table for the CLI.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::collect::CollectOutput;
use super::env::{InputContext, StageEnv};
use super::plan::Inputs;
use super::{Failure, Stage, StageError, StageId};
use crate::apply::StepContext;
use crate::ssh::BoxFuture;

/// What the stage records: where the report is, and the table the CLI prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportOutput {
    pub run_dir: PathBuf,
    /// The latency tables, as `cfxm report` prints them.
    pub table: String,
    /// The files written (report.txt, report.json, report.md, plots).
    pub files: Vec<PathBuf>,
}

/// Analyses `run_dir` and writes the report files into it.
fn analyze(run_dir: &std::path::Path, percentiles: Vec<f64>) -> Result<ReportOutput, String> {
    let opts = crate::analyze::AnalyzeOptions {
        percentiles,
        node_groups: crate::analyze::groups_from_hosts_json(run_dir),
        ..Default::default()
    };
    let report = crate::analyze::analyze_run(run_dir, &opts).map_err(|e| e.to_string())?;
    let files = crate::analyze::write_report(run_dir, &report, &Default::default())
        .map_err(|e| e.to_string())?;
    Ok(ReportOutput {
        run_dir: run_dir.to_path_buf(),
        table: crate::analyze::render_text(&report),
        files,
    })
}

/// `report`: see the module docs.
pub struct Report;

impl Stage for Report {
    fn id(&self) -> StageId {
        StageId::Report
    }

    fn inputs(&self, cx: &InputContext<'_>) -> Result<Inputs, StageError> {
        Ok(Inputs::new().with("report.percentiles", &cx.spec.report.percentiles))
    }

    fn run<'a>(
        &'a self,
        env: &'a StageEnv,
        step: &'a StepContext,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            let collected: CollectOutput = env.outputs_of(StageId::Report, StageId::Collect)?;
            let run_dir = collected.run_dir.clone();
            let percentiles = env.spec.report.percentiles.clone();
            step.progress(format!("analysing {}", run_dir.display()));
            let dir = run_dir.clone();
            let output = tokio::task::spawn_blocking(move || analyze(&dir, percentiles))
                .await
                .map_err(|e| StageError::Analyzer {
                    run_dir: run_dir.clone(),
                    message: format!("the analyzer panicked: {e}"),
                })?
                .map_err(|message| StageError::Analyzer {
                    run_dir: run_dir.clone(),
                    message,
                })?;
            Ok(serde_json::to_value(output).expect("serializes"))
        })
    }
}
