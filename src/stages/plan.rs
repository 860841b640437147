//! Which stages run, and why: the stages' half of `cfxm plan`.
//!
//! Three steps, so the reconciler controls when the network is touched:
//! 1. [`assess`] (pure): each stage's [`Inputs`] and fingerprint against its latest journal
//!    record → [`Own`]: never ran, interrupted, failed, inputs changed (which parts), or
//!    current;
//! 2. [`check_live`] (async, needs the hosts): for current stages, whether their result still
//!    holds ([`Live`]): nodes still running, or gone after their run was collected ("consumed");
//! 3. [`decide`] (pure): own reasons, plus the cascade (a stage runs when one it comes
//!    `after` runs), plus demand (a consumed stage re-runs when a stage that `needs_live` it
//!    runs), then `--only`/`--skip` → a [`StagePlan`] with a [`Decision`] and reasons per stage.
//!
//! A record's outputs hold `{"inputs": …, "result": …}`: the inputs are kept so the next plan
//! can say *what* changed (`blocks.count changed`, a unified diff of `conflux.toml`), not just
//! that the fingerprint moved. Large inputs (the host list of 10,000 hosts) are stored as a
//! digest with a one-line summary.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::catalogue::{CATALOGUE, StageId, StageSelection};
use super::env::{InputContext, LiveContext};
use super::{Stage, StageError};
use crate::state::{Fingerprint, JournalLog, Serial, StageRecord, StageStatus};

/// What a stage depends on, as named parts (`hosts`, `config`, `blocks.count`, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Inputs(BTreeMap<String, Value>);

impl Inputs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a part kept whole (small values: numbers, names, a config file).
    pub fn with(mut self, name: &str, value: impl Serialize) -> Self {
        let v = serde_json::to_value(value).expect("stage inputs serialize");
        self.0.insert(name.to_owned(), v);
        self
    }

    /// Adds a part kept as a digest and a summary (large values: the host list).
    pub fn with_digest(mut self, name: &str, value: impl Serialize, summary: String) -> Self {
        let digest = Fingerprint::of(&value).expect("stage inputs serialize");
        self.0.insert(
            name.to_owned(),
            serde_json::json!({ "digest": digest, "summary": summary }),
        );
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn parts(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.0).expect("stage inputs serialize")
    }

    /// Names of the parts that differ from `old` (added, removed or changed), sorted.
    pub fn changed_parts(&self, old: &Inputs) -> Vec<String> {
        let names: BTreeSet<&String> = self.0.keys().chain(old.0.keys()).collect();
        names
            .into_iter()
            .filter(|n| self.0.get(*n) != old.0.get(*n))
            .cloned()
            .collect()
    }
}

/// What a stage's record keeps in `outputs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedOutputs {
    pub inputs: Inputs,
    #[serde(default)]
    pub result: Value,
}

/// A stage's latest journal record, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub serial: Serial,
    pub status: StageStatus,
    pub fingerprint: Fingerprint,
    /// `None` for a record without recorded inputs.
    pub inputs: Option<Inputs>,
    pub result: Value,
    pub error: Option<String>,
}

impl LastRun {
    pub fn from_record(serial: Serial, r: &StageRecord) -> Self {
        let parsed: Option<RecordedOutputs> = serde_json::from_value(r.outputs.clone()).ok();
        LastRun {
            serial,
            status: r.status,
            fingerprint: r.fingerprint.clone(),
            inputs: parsed.as_ref().map(|p| p.inputs.clone()),
            result: parsed.map(|p| p.result).unwrap_or(Value::Null),
            error: r.error.clone(),
        }
    }

    /// The latest record of `id` in `log`.
    pub fn of(log: &JournalLog, id: StageId) -> Option<Self> {
        log.latest_stage(&id.name())
            .map(|(serial, r)| LastRun::from_record(serial, r))
    }
}

/// Whether a stage's last result still holds in the live world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    Holds,
    /// Used up on purpose (nodes stopped by `collect`): fine as it is, but re-run when a stage
    /// that needs it live runs.
    Consumed {
        why: String,
    },
    /// Gone (nodes crashed, logs deleted): re-run.
    Lost {
        why: String,
    },
}

/// A stage's own reason to run, from its inputs and record alone.
#[derive(Debug, Clone, PartialEq)]
pub enum Own {
    NeverRan,
    /// The record says `running`: an apply stopped during it.
    Interrupted,
    Failed {
        error: String,
    },
    /// The inputs differ in these parts (`hosts`, `config`, `blocks.count`).
    Changed {
        parts: Vec<String>,
    },
    /// The hosts change in this apply, and the stage's inputs include them.
    HostsPending,
    /// A stage it comes after ran since it last did (e.g. it was excluded by `--skip` then).
    Stale {
        upstream: StageId,
    },
    /// Succeeded with the same inputs.
    Current,
}

/// One stage assessed against the journal.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub id: StageId,
    /// `None` when the inputs need hosts not known yet.
    pub inputs: Option<Inputs>,
    pub last: Option<LastRun>,
    pub own: Own,
}

impl Assessment {
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.inputs.as_ref().map(Inputs::fingerprint)
    }
}

/// Step 1: every stage's own reason to run. `stages` in catalogue order.
pub fn assess(
    stages: &[&dyn Stage],
    cx: &InputContext<'_>,
    log: &JournalLog,
) -> Result<Vec<Assessment>, StageError> {
    stages
        .iter()
        .map(|stage| {
            let id = stage.id();
            let last = LastRun::of(log, id);
            let inputs = match stage.inputs(cx) {
                Ok(i) => Some(i),
                Err(StageError::HostsPending) => None,
                Err(e) => return Err(e),
            };
            // An upstream stage that ran after this one's last run.
            let stale = id.info().after.iter().copied().find(|dep| {
                let dep_serial = log.latest_stage(&dep.name()).map(|(s, _)| s);
                matches!((dep_serial, &last), (Some(d), Some(l)) if d > l.serial)
            });
            let own = match (&last, &inputs) {
                (None, _) => Own::NeverRan,
                (Some(l), _) if l.status == StageStatus::Running => Own::Interrupted,
                (Some(l), _) if l.status == StageStatus::Failed => Own::Failed {
                    error: l.error.clone().unwrap_or_default(),
                },
                (Some(_), None) => Own::HostsPending,
                (Some(l), Some(new)) if l.fingerprint == new.fingerprint() => match stale {
                    Some(upstream) => Own::Stale { upstream },
                    None => Own::Current,
                },
                (Some(l), Some(new)) => Own::Changed {
                    parts: match &l.inputs {
                        Some(old) => new.changed_parts(old),
                        None => vec!["inputs".into()],
                    },
                },
            };
            Ok(Assessment {
                id,
                inputs,
                last,
                own,
            })
        })
        .collect()
}

/// Step 2: the live checks of current stages. A check that fails counts as [`Live::Lost`], so
/// the stage re-runs (and says why) rather than the plan failing.
pub async fn check_live(
    stages: &[&dyn Stage],
    assessed: &[Assessment],
    cx: &LiveContext<'_>,
    log: &JournalLog,
) -> BTreeMap<StageId, Live> {
    let mut out = BTreeMap::new();
    for (stage, a) in stages.iter().zip(assessed) {
        if a.own != Own::Current {
            continue;
        }
        let live = match stage.check(cx, log).await {
            Ok(l) => l,
            Err(e) => Live::Lost {
                why: format!("its live check failed: {e}"),
            },
        };
        out.insert(a.id, live);
    }
    out
}

/// Why a stage runs (display only: it never steers the run).
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    NeverRan,
    Interrupted,
    Failed {
        error: String,
    },
    Changed {
        parts: Vec<String>,
    },
    HostsPending,
    /// A stage it comes after ran since its last run.
    Stale {
        upstream: StageId,
    },
    Lost {
        why: String,
    },
    /// A stage it comes after runs.
    Upstream {
        stage: StageId,
    },
    /// A stage that needs it live runs, and its result was consumed.
    Demanded {
        by: StageId,
        why: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NeverRan => f.write_str("never ran"),
            Reason::Interrupted => f.write_str("an apply stopped during it"),
            Reason::Failed { error } if error.is_empty() => f.write_str("failed last time"),
            Reason::Failed { error } => write!(f, "failed last time: {error}"),
            Reason::Changed { parts } => {
                let names: Vec<String> = parts.iter().map(|p| format!("`{p}`")).collect();
                write!(f, "{} changed", names.join(", "))
            }
            Reason::HostsPending => f.write_str("the hosts change in this apply"),
            Reason::Stale { upstream } => write!(f, "`{upstream}` ran since"),
            Reason::Lost { why } => f.write_str(why),
            Reason::Upstream { stage } => write!(f, "`{stage}` runs"),
            Reason::Demanded { by, why } => write!(f, "`{by}` needs it: {why}"),
        }
    }
}

/// What happens to one stage in this apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    UpToDate,
    Run {
        reasons: Vec<Reason>,
    },
    /// Would run, but `--only`/`--skip` leaves it out.
    Excluded {
        reasons: Vec<Reason>,
        flag: &'static str,
    },
    /// Would run, but needs `upstream` live, and `upstream` is excluded.
    Blocked {
        reasons: Vec<Reason>,
        upstream: StageId,
    },
}

impl Decision {
    pub fn runs(&self) -> bool {
        matches!(self, Decision::Run { .. })
    }

    /// The reasons it would run (empty when up to date).
    pub fn reasons(&self) -> &[Reason] {
        match self {
            Decision::UpToDate => &[],
            Decision::Run { reasons }
            | Decision::Excluded { reasons, .. }
            | Decision::Blocked { reasons, .. } => reasons,
        }
    }
}

/// One stage in the plan.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    pub id: StageId,
    pub decision: Decision,
    /// The inputs as planned (`None`: known once the hosts are applied).
    pub inputs: Option<Inputs>,
    /// The inputs of the last run, for diffs.
    pub previous: Option<Inputs>,
}

impl PlannedStage {
    /// A unified diff of a text part of the inputs (`config`) between the last run and this
    /// plan; `None` when the part did not change or is not text on both sides.
    pub fn text_diff(&self, part: &str) -> Option<String> {
        let old = self.previous.as_ref()?.get(part)?.as_str()?;
        let new = self.inputs.as_ref()?.get(part)?.as_str()?;
        let d = super::config::diff(old, new);
        (!d.is_empty()).then_some(d)
    }

    /// A line for the plan: `blocks: run (`blocks.count` changed)` or `reach: up to date`.
    pub fn summary(&self) -> String {
        let why = |r: &[Reason]| {
            r.iter()
                .map(Reason::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        match &self.decision {
            Decision::UpToDate => format!("{}: up to date", self.id),
            Decision::Run { reasons } => format!("{}: run ({})", self.id, why(reasons)),
            Decision::Excluded { reasons, flag } => {
                format!(
                    "{}: excluded by {flag} (would run: {})",
                    self.id,
                    why(reasons)
                )
            }
            Decision::Blocked { reasons, upstream } => format!(
                "{}: blocked, needs `{upstream}` which is excluded (would run: {})",
                self.id,
                why(reasons)
            ),
        }
    }
}

/// The stages' part of a plan, in execution order.
#[derive(Debug, Clone)]
pub struct StagePlan {
    pub entries: Vec<PlannedStage>,
}

impl StagePlan {
    pub fn get(&self, id: StageId) -> &PlannedStage {
        self.entries
            .iter()
            .find(|e| e.id == id)
            .expect("every stage is planned")
    }

    /// The stages that run, in order.
    pub fn running(&self) -> Vec<StageId> {
        self.entries
            .iter()
            .filter(|e| e.decision.runs())
            .map(|e| e.id)
            .collect()
    }

    /// Whether nothing runs.
    pub fn is_noop(&self) -> bool {
        self.running().is_empty()
    }
}

/// Step 3: the decisions. `assessed` in catalogue order; `live` as from [`check_live`]
/// (stages missing from it count as [`Live::Holds`]).
pub fn decide(
    assessed: &[Assessment],
    live: &BTreeMap<StageId, Live>,
    selection: &StageSelection,
) -> StagePlan {
    let own_reasons = |a: &Assessment| -> Vec<Reason> {
        match &a.own {
            Own::NeverRan => vec![Reason::NeverRan],
            Own::Interrupted => vec![Reason::Interrupted],
            Own::Failed { error } => vec![Reason::Failed {
                error: error.clone(),
            }],
            Own::Changed { parts } => vec![Reason::Changed {
                parts: parts.clone(),
            }],
            Own::HostsPending => vec![Reason::HostsPending],
            Own::Stale { upstream } => vec![Reason::Stale {
                upstream: *upstream,
            }],
            Own::Current => match live.get(&a.id) {
                Some(Live::Lost { why }) => vec![Reason::Lost { why: why.clone() }],
                _ => vec![],
            },
        }
    };
    let mut demanded: BTreeMap<StageId, Reason> = BTreeMap::new();
    // A fixpoint over a chain of eight: demand can only add runs, so it ends.
    loop {
        let mut decisions: BTreeMap<StageId, Decision> = BTreeMap::new();
        let mut new_demand = None;
        for info in CATALOGUE.iter() {
            let id = info.id;
            let Some(a) = assessed.iter().find(|a| a.id == id) else {
                continue;
            };
            let mut reasons = own_reasons(a);
            if let Some(r) = demanded.get(&id) {
                reasons.push(r.clone());
            }
            for dep in info.after {
                if decisions.get(dep).is_some_and(Decision::runs) {
                    reasons.push(Reason::Upstream { stage: *dep });
                }
            }
            let decision = if reasons.is_empty() {
                Decision::UpToDate
            } else if !selection.allows(id) {
                Decision::Excluded {
                    reasons,
                    flag: selection.describe(id),
                }
            } else {
                // Needs a consumed stage live that is not running: demand it, or be blocked.
                let mut blocked = None;
                for need in info.needs_live {
                    let consumed = matches!(live.get(need), Some(Live::Consumed { .. }));
                    let running = decisions.get(need).is_some_and(Decision::runs);
                    if consumed && !running {
                        if selection.allows(*need) {
                            if new_demand.is_none() && !demanded.contains_key(need) {
                                let why = match live.get(need) {
                                    Some(Live::Consumed { why }) => why.clone(),
                                    _ => String::new(),
                                };
                                new_demand = Some((*need, Reason::Demanded { by: id, why }));
                            }
                        } else {
                            blocked = Some(*need);
                        }
                    }
                }
                match blocked {
                    Some(upstream) => Decision::Blocked { reasons, upstream },
                    None => Decision::Run { reasons },
                }
            };
            decisions.insert(id, decision);
        }
        match new_demand {
            Some((need, reason)) => {
                demanded.insert(need, reason);
            }
            None => {
                let entries = assessed
                    .iter()
                    .map(|a| PlannedStage {
                        id: a.id,
                        decision: decisions.remove(&a.id).unwrap_or(Decision::UpToDate),
                        inputs: a.inputs.clone(),
                        previous: a.last.as_ref().and_then(|l| l.inputs.clone()),
                    })
                    .collect();
                return StagePlan { entries };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assessed(owns: &[(StageId, Own)]) -> Vec<Assessment> {
        StageId::ALL
            .iter()
            .map(|id| Assessment {
                id: *id,
                inputs: Some(Inputs::new().with("x", 1)),
                last: None,
                own: owns
                    .iter()
                    .find(|(i, _)| i == id)
                    .map(|(_, o)| o.clone())
                    .unwrap_or(Own::Current),
            })
            .collect()
    }

    fn running(plan: &StagePlan) -> Vec<&'static str> {
        plan.running().into_iter().map(StageId::as_str).collect()
    }

    fn consumed_nodes() -> BTreeMap<StageId, Live> {
        BTreeMap::from([(
            StageId::Nodes,
            Live::Consumed {
                why: "`collect` stopped them".into(),
            },
        )])
    }

    #[test]
    fn inputs_name_the_parts_that_changed() {
        let a = Inputs::new().with("blocks.count", 50).with("seed", 1);
        let b = Inputs::new()
            .with("blocks.count", 100)
            .with("seed", 1)
            .with("new", true);
        assert_eq!(b.changed_parts(&a), ["blocks.count", "new"]);
        assert_ne!(a.fingerprint(), b.fingerprint());
        let hosts = Inputs::new().with_digest("hosts", vec![1, 2, 3], "3 hosts".into());
        assert_eq!(hosts.get("hosts").unwrap()["summary"], "3 hosts");
    }

    #[test]
    fn a_fresh_spec_runs_everything() {
        let plan = decide(
            &assessed(&StageId::ALL.map(|id| (id, Own::NeverRan))),
            &BTreeMap::new(),
            &StageSelection::all(),
        );
        assert_eq!(plan.running().len(), 8);
        assert_eq!(
            plan.get(StageId::Topology).summary(),
            "topology: run (never ran; `nodes` runs)"
        );
    }

    #[test]
    fn everything_current_and_nodes_consumed_is_a_noop() {
        let plan = decide(&assessed(&[]), &consumed_nodes(), &StageSelection::all());
        assert!(plan.is_noop(), "{plan:?}");
        assert_eq!(plan.get(StageId::Nodes).summary(), "nodes: up to date");
    }

    #[test]
    fn a_new_block_count_restarts_the_consumed_network_and_nothing_before_it() {
        let plan = decide(
            &assessed(&[(
                StageId::Blocks,
                Own::Changed {
                    parts: vec!["blocks.count".into()],
                },
            )]),
            &consumed_nodes(),
            &StageSelection::all(),
        );
        assert_eq!(
            running(&plan),
            [
                "nodes",
                "topology",
                "transactions",
                "blocks",
                "collect",
                "report"
            ]
        );
        assert_eq!(
            plan.get(StageId::Nodes).summary(),
            "nodes: run (`blocks` needs it: `collect` stopped them)"
        );
        assert_eq!(
            plan.get(StageId::Blocks).summary(),
            "blocks: run (`blocks.count` changed; `transactions` runs)"
        );
    }

    #[test]
    fn with_nodes_still_running_only_the_changed_stage_and_its_dependents_run() {
        let plan = decide(
            &assessed(&[(
                StageId::Blocks,
                Own::Changed {
                    parts: vec!["blocks.count".into()],
                },
            )]),
            &BTreeMap::new(),
            &StageSelection::all(),
        );
        assert_eq!(running(&plan), ["blocks", "collect", "report"]);
    }

    #[test]
    fn lost_nodes_re_run_with_their_dependents() {
        let live = BTreeMap::from([(
            StageId::Nodes,
            Live::Lost {
                why: "3 of 8 nodes are not running".into(),
            },
        )]);
        let plan = decide(&assessed(&[]), &live, &StageSelection::all());
        assert_eq!(
            running(&plan),
            [
                "nodes",
                "topology",
                "transactions",
                "blocks",
                "collect",
                "report"
            ]
        );
        assert_eq!(
            plan.get(StageId::Nodes).summary(),
            "nodes: run (3 of 8 nodes are not running)"
        );
    }

    #[test]
    fn skip_and_only_exclude_and_block() {
        let changed = [(
            StageId::Blocks,
            Own::Changed {
                parts: vec!["blocks.count".into()],
            },
        )];
        let plan = decide(
            &assessed(&changed),
            &consumed_nodes(),
            &StageSelection::skipping([StageId::Report]),
        );
        assert_eq!(
            running(&plan),
            ["nodes", "topology", "transactions", "blocks", "collect"]
        );
        assert!(matches!(
            plan.get(StageId::Report).decision,
            Decision::Excluded { flag: "--skip", .. }
        ));
        // Only blocks: it needs the stopped nodes, which `--only` leaves out.
        let plan = decide(
            &assessed(&changed),
            &consumed_nodes(),
            &StageSelection::only([StageId::Blocks]),
        );
        assert!(plan.is_noop());
        assert_eq!(
            plan.get(StageId::Blocks).summary(),
            "blocks: blocked, needs `nodes` which is excluded (would run: `blocks.count` changed)"
        );
    }

    #[test]
    fn interrupted_and_failed_stages_resume() {
        let plan = decide(
            &assessed(&[
                (StageId::Blocks, Own::Interrupted),
                (
                    StageId::Report,
                    Own::Failed {
                        error: "the analyzer failed".into(),
                    },
                ),
            ]),
            &BTreeMap::new(),
            &StageSelection::all(),
        );
        assert_eq!(running(&plan), ["blocks", "collect", "report"]);
        assert_eq!(
            plan.get(StageId::Report).summary(),
            "report: run (failed last time: the analyzer failed; `collect` runs)"
        );
    }

    /// A stage with fixed inputs, for assessing records.
    struct Fixed(StageId, Inputs);

    impl Stage for Fixed {
        fn id(&self) -> StageId {
            self.0
        }
        fn inputs(&self, _: &InputContext<'_>) -> Result<Inputs, StageError> {
            Ok(self.1.clone())
        }
        fn run<'a>(
            &'a self,
            _: &'a super::super::StageEnv,
            _: &'a crate::apply::StepContext,
        ) -> crate::ssh::BoxFuture<'a, Result<Value, super::super::Failure>> {
            Box::pin(async { Ok(Value::Null) })
        }
    }

    #[test]
    fn records_are_read_back_stale_stages_found_and_config_diffs_shown() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = crate::spec::load_str(
            "name: t\nowner: o\ncloud:\n  local:\n    regions: [{ name: r1, nodes: 1 }]\n",
            "t.yaml",
            &tmp.path().join("t.yaml"),
        )
        .unwrap();
        let state = crate::state::StateDir::new(tmp.path())
            .spec(&spec.name)
            .unwrap();
        let lock = state.lock("test").unwrap();
        let journal = state.journal(&lock).unwrap();
        let config =
            |level: &str| Inputs::new().with("config", format!("a=1\nlog_level=\"{level}\"\n"));
        let record = |id: StageId, inputs: &Inputs| StageRecord {
            stage: id.name(),
            fingerprint: inputs.fingerprint(),
            status: StageStatus::Succeeded,
            outputs: serde_json::to_value(RecordedOutputs {
                inputs: inputs.clone(),
                result: Value::Null,
            })
            .unwrap(),
            error: None,
        };
        let other = Inputs::new().with("x", 1);
        for id in [StageId::Nodes, StageId::Blocks, StageId::Collect] {
            let inputs = if id == StageId::Nodes {
                config("debug")
            } else {
                other.clone()
            };
            journal
                .append(crate::state::Record::Stage(record(id, &inputs)))
                .unwrap();
        }
        // Blocks ran again after collect (say collect was skipped then).
        journal
            .append(crate::state::Record::Stage(record(StageId::Blocks, &other)))
            .unwrap();

        let stages = [
            Fixed(StageId::Nodes, config("trace")),
            Fixed(StageId::Blocks, other.clone()),
            Fixed(StageId::Collect, other.clone()),
        ];
        let dyns: Vec<&dyn Stage> = stages.iter().map(|s| s as &dyn Stage).collect();
        let options = super::super::StageOptions::default();
        let cx = InputContext {
            spec: &spec,
            hosts: Some(&[]),
            options: &options,
        };
        let assessed = assess(&dyns, &cx, &journal.log()).unwrap();
        assert_eq!(
            assessed[0].own,
            Own::Changed {
                parts: vec!["config".into()]
            }
        );
        assert_eq!(assessed[1].own, Own::Current);
        assert_eq!(
            assessed[2].own,
            Own::Stale {
                upstream: StageId::Blocks
            }
        );
        let plan = decide(&assessed, &BTreeMap::new(), &StageSelection::all());
        assert_eq!(
            plan.get(StageId::Collect).summary(),
            "collect: run (`blocks` ran since)"
        );
        assert_eq!(
            plan.get(StageId::Nodes).text_diff("config").unwrap(),
            "--- conflux.toml (applied)\n+++ conflux.toml (planned)\n@@ -1,2 +1,2 @@\n a=1\n-log_level=\"debug\"\n+log_level=\"trace\"\n"
        );
        assert_eq!(plan.get(StageId::Blocks).text_diff("config"), None);
    }
}
