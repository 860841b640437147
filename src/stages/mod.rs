//! The experiment stages as resources (DESIGN §5): `reach → image → nodes → topology →
//! transactions → blocks → collect → report`, each with a fingerprint of its inputs, recorded
//! in the journal with its outputs, and re-run only when its inputs changed, it never finished,
//! or the live world no longer holds its result.
//!
//! | piece | owns |
//! | --- | --- |
//! | [`catalogue`] | [`StageId`], the chain and its dependencies as data, `--only`/`--skip` |
//! | [`plan`](mod@plan) | [`Inputs`] and fingerprints, [`Assessment`] of journal records, [`decide`]: which stages run and why |
//! | [`env`](mod@env) | [`StageEnv`]: the spec, hosts with their transports, journal, RPC client, options |
//! | [`driver`] | [`run_stage`] (journals `running` → `succeeded`/`failed`), [`run_plan`] |
//! | [`rpc`] | the node's JSON-RPC client |
//! | [`config`] | the generated `conflux.toml` (the original's keys and formulas) and its diff |
//! | [`runtime`] | docker containers or devnode processes: start, status, stop, log filter commands |
//!
//! # The contract with the reconciler
//!
//! ```text
//! // plan: which stages run, and why (no network unless a stage's live check needs it)
//! let assessed = stages::assess(&stages::all(), &InputContext { spec, hosts: Some(&hosts), options }, &journal.log());
//! let live = stages::check_live(&stages::all(), &assessed, &LiveContext { hosts, options }, &log).await; // once hosts exist
//! let plan = stages::decide(&assessed, &live, &selection);
//! // each `plan.entries[i]` with `decision.runs()` is a `Run` change at `id.address()`, after the
//! // hosts, with edges from `id.info().after` (see `runs_after_failure` for collect)
//!
//! // apply: the reconciler's executor calls, per stage node,
//! stages::run_stage(stage, &env, &step_ctx).await     // journals the record; events via step_ctx
//! // or hands the whole stage plan to `stages::run_plan(&plan, &stages::all(), &env, reporter, cancel)`
//!
//! // destroy (local cloud): before removing a slot, stop what runs in it
//! stages::nodes::stop_all(&stage_host, &options).await
//! ```
//!
//! Stages never print: progress goes out as [`crate::apply::ApplyEvent`]s through the
//! [`StepContext`], one line per stage with counts (`nodes ready 11/12`, `blocks 143/300, ETA
//! 25s`).

pub mod blocks;
pub mod catalogue;
pub mod collect;
pub mod config;
pub mod driver;
pub mod env;
pub mod image;
pub mod nodes;
pub mod plan;
mod progress;
pub mod reach;
pub mod report;
pub mod rpc;
pub mod runtime;
pub mod topology;
pub mod transactions;

use miette::Diagnostic;
use serde_json::Value;
use thiserror::Error;

use crate::apply::StepContext;
use crate::ssh::{BoxFuture, TransportError};
use crate::state::{JournalLog, StateError};

pub use catalogue::{CATALOGUE, StageId, StageInfo, StageSelection, UnknownStage};
pub use driver::{PlanRun, StageRun, run_plan, run_stage};
pub use env::{Budget, ImageFanout, InputContext, LiveContext, StageEnv, StageHost, StageOptions};
pub use plan::{
    Assessment, Decision, Inputs, LastRun, Live, Own, PlannedStage, Reason, StagePlan, assess,
    check_live, decide,
};
pub use rpc::{Endpoint, RpcClient, RpcError};

/// One experiment stage.
///
/// `inputs` must be a pure function of the spec, the hosts and the options: the plan computes
/// it without touching the network, and the fingerprint of what it returns decides whether the
/// stage re-runs. Whatever a stage reads from upstream stages at run time (node ids, the run
/// directory) is covered by the cascade instead: a stage re-runs whenever an upstream one does.
pub trait Stage: Send + Sync {
    fn id(&self) -> StageId;

    /// What the stage's work depends on, as named parts (`config`, `hosts`, `blocks.count`);
    /// the parts that changed are the plan's reason. Returns [`StageError::HostsPending`] (via
    /// [`InputContext::hosts`]) when it needs hosts the plan does not know yet.
    fn inputs(&self, cx: &InputContext<'_>) -> Result<Inputs, StageError>;

    /// Whether the result of the last successful run still holds in the live world. Called
    /// only for a stage whose inputs are unchanged since it succeeded, and only once the hosts
    /// exist. The default: results hold.
    fn check<'a>(
        &'a self,
        cx: &'a LiveContext<'a>,
        journal: &'a JournalLog,
    ) -> BoxFuture<'a, Result<Live, StageError>> {
        let _ = (cx, journal);
        Box::pin(async { Ok(Live::Holds) })
    }

    /// Does the work; returns the outputs later stages read (recorded in the journal).
    fn run<'a>(
        &'a self,
        env: &'a StageEnv,
        step: &'a StepContext,
    ) -> BoxFuture<'a, Result<Value, Failure>>;
}

/// A stage that did not finish, with what it did produce (recorded with the failure, so a
/// partial collection is never lost).
#[derive(Debug)]
pub struct Failure {
    pub error: StageError,
    pub outputs: Option<Value>,
}

impl Failure {
    pub fn with_outputs(error: StageError, outputs: Value) -> Self {
        Failure {
            error,
            outputs: Some(outputs),
        }
    }
}

impl<E: Into<StageError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            error: e.into(),
            outputs: None,
        }
    }
}

/// Why a stage could not plan or run.
#[derive(Debug, Error, Diagnostic)]
pub enum StageError {
    /// The stage's inputs include the hosts, which this apply has yet to create or replace.
    #[error("the hosts are not known until they are applied")]
    #[diagnostic(code(cfxm::stages::hosts_pending))]
    HostsPending,

    /// More hosts or nodes failed than the stage's budget allows.
    #[error(
        "{stage}: {failed} of {total} {what} failed, more than the {allowed} allowed; first: {first}"
    )]
    #[diagnostic(
        code(cfxm::stages::budget),
        help(
            "the failures are listed in the stage's record (`cfxm show`); fix the cause and run `cfxm apply` again, which resumes at this stage"
        )
    )]
    OverBudget {
        stage: StageId,
        what: &'static str,
        failed: usize,
        total: usize,
        allowed: usize,
        first: String,
    },

    /// A node process or container ended before it answered.
    #[error("{node} exited before it answered `test_sayHello`")]
    #[diagnostic(
        code(cfxm::stages::node_exited),
        help(
            "its own output says why: `node<i>/stdout.txt` in the host's slot (devnode) or `docker logs conflux_node_<i>` (cloud)"
        )
    )]
    NodeExited { node: String },

    /// A stage needs a stage that has not succeeded.
    #[error("{stage} needs the outputs of `{upstream}`, which has not succeeded")]
    #[diagnostic(
        code(cfxm::stages::upstream),
        help("run the stages in order: `cfxm apply` without `--only`/`--skip`")
    )]
    MissingUpstream { stage: StageId, upstream: StageId },

    /// Upstream outputs in the journal do not have the shape this version of cfxm expects.
    #[error("the journal's record of `{upstream}` cannot be read: {problem}")]
    #[diagnostic(
        code(cfxm::stages::record),
        help("re-run that stage: `cfxm apply` (the record was written by another cfxm version)")
    )]
    BadRecord { upstream: StageId, problem: String },

    /// Nothing to run the stage on.
    #[error("{stage}: {problem}")]
    #[diagnostic(code(cfxm::stages::input), help("{help}"))]
    Input {
        stage: StageId,
        problem: String,
        help: String,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Transport(#[from] TransportError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Rpc(#[from] RpcError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    State(#[from] StateError),

    #[error("cannot {action} `{path}`: {source}")]
    #[diagnostic(
        code(cfxm::stages::io),
        help("check the state directory's permissions and free space")
    )]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },

    /// The apply was cancelled (Ctrl-C) while the stage ran.
    #[error("cancelled")]
    #[diagnostic(code(cfxm::stages::cancelled))]
    Cancelled,

    /// The analyzer failed on the collected logs.
    #[error("the analyzer failed on `{run_dir}`: {message}")]
    #[diagnostic(
        code(cfxm::stages::analyzer),
        help("the collected logs stay in the run directory; re-run with `cfxm report RUN_DIR`")
    )]
    Analyzer {
        run_dir: std::path::PathBuf,
        message: String,
    },
}

impl StageError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        StageError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Runs `futures` with at most `limit` at once (on the caller's task, so they may borrow);
/// outputs in completion order.
pub(crate) async fn bounded<F: std::future::Future>(
    futures: Vec<F>,
    limit: usize,
) -> Vec<F::Output> {
    use futures_util::stream::{self, StreamExt};
    stream::iter(futures)
        .buffer_unordered(limit.max(1))
        .collect()
        .await
}

/// Every stage, in catalogue order.
pub fn all() -> [&'static dyn Stage; 8] {
    [
        &reach::Reach,
        &image::Image,
        &nodes::Nodes,
        &topology::Topology,
        &transactions::Transactions,
        &blocks::Blocks,
        &collect::Collect,
        &report::Report,
    ]
}

/// The stages' plan for `env`: inputs against the journal, live checks of current stages over
/// the hosts, decisions under `selection`.
pub async fn plan(env: &StageEnv, selection: &StageSelection) -> Result<StagePlan, StageError> {
    let stages = all();
    let log = env.journal.log();
    let hosts = env.host_list();
    let assessed = assess(&stages, &env.input_context(&hosts), &log)?;
    let live = check_live(&stages, &assessed, &env.live_context(), &log).await;
    Ok(decide(&assessed, &live, selection))
}

/// Plans the stages and runs what the plan says, reporting to `reporter`.
pub async fn apply(
    env: &StageEnv,
    selection: &StageSelection,
    reporter: std::sync::Arc<dyn crate::apply::Reporter>,
    cancel: crate::apply::Cancel,
) -> Result<(StagePlan, driver::PlanRun), StageError> {
    let plan = plan(env, selection).await?;
    let run = run_plan(&plan, &all(), env, reporter, cancel).await?;
    Ok((plan, run))
}
