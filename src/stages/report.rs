//! `report`: the analyzer over the run directory `collect` filled, with the spec's
//! percentiles. The analyzer is an [`Analyzer`] handed to the [`StageEnv`]; without one the
//! stage fails with [`StageError::NoAnalyzer`] (the logs stay in the run directory for
//! `cfxm report RUN_DIR`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::collect::CollectOutput;
use super::driver::AnalyzerOutput;
use super::env::{InputContext, StageEnv};
use super::plan::Inputs;
use super::{Failure, Stage, StageError, StageId};
use crate::apply::StepContext;
use crate::ssh::BoxFuture;

pub use super::driver::Analyzer;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportOutput {
    pub run_dir: PathBuf,
    #[serde(flatten)]
    pub analysis: AnalyzerOutput,
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
            let analyzer = env.analyzer.clone().ok_or(StageError::NoAnalyzer)?;
            let run_dir = collected.run_dir.clone();
            let percentiles = env.spec.report.percentiles.clone();
            step.progress(format!("analysing {}", run_dir.display()));
            let dir = run_dir.clone();
            let analysis =
                tokio::task::spawn_blocking(move || analyzer.analyze(&dir, &percentiles))
                    .await
                    .map_err(|e| StageError::Analyzer {
                        run_dir: run_dir.clone(),
                        message: format!("the analyzer panicked: {e}"),
                    })?
                    .map_err(|message| StageError::Analyzer {
                        run_dir: run_dir.clone(),
                        message,
                    })?;
            Ok(serde_json::to_value(ReportOutput { run_dir, analysis }).expect("serializes"))
        })
    }
}
