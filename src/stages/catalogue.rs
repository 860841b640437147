//! The experiment's stages as data: their names, order and dependencies (DESIGN §5), so the
//! reconciler can add them as graph nodes after the hosts, `plan` can show them, and
//! `--only`/`--skip` can select them by name.
//!
//! The stages form one chain, `reach → image → nodes → topology → transactions → blocks →
//! collect → report`; each entry also says which upstream stages must still be *live* for it
//! to run (the nodes must be running for topology, transactions and blocks) and whether it runs
//! even after its upstream failed (collect: logs are always collected, original-tool.md §5.1).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use miette::Diagnostic;
use thiserror::Error;

use crate::state::StageName;

/// One experiment stage.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum StageId {
    /// Every host answers over its transport.
    Reach,
    /// The node image is present on every host (docker pull; nothing on devnode hosts).
    Image,
    /// `conflux.toml` generated, N nodes started per host and ready.
    Nodes,
    /// Ring + random peers connected, both ways, confirmed; latency injected.
    Topology,
    /// Each node's transaction generator given its genesis accounts.
    Transactions,
    /// Blocks generated on the exponential schedule, then everyone on one best block.
    Blocks,
    /// The analysis lines of this run's node logs pulled into a run directory (nodes keep running).
    Collect,
    /// The analyzer over the run directory.
    Report,
}

impl StageId {
    /// Every stage, in execution order.
    pub const ALL: [StageId; 8] = [
        StageId::Reach,
        StageId::Image,
        StageId::Nodes,
        StageId::Topology,
        StageId::Transactions,
        StageId::Blocks,
        StageId::Collect,
        StageId::Report,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageId::Reach => "reach",
            StageId::Image => "image",
            StageId::Nodes => "nodes",
            StageId::Topology => "topology",
            StageId::Transactions => "transactions",
            StageId::Blocks => "blocks",
            StageId::Collect => "collect",
            StageId::Report => "report",
        }
    }

    /// The journal's name for this stage.
    pub fn name(self) -> StageName {
        StageName::new(self.as_str())
    }

    /// The stage a journal record names, if it is one of these.
    pub fn from_name(name: &StageName) -> Option<StageId> {
        name.as_str().parse().ok()
    }

    /// The plan address of this stage, `stage/<name>` (DESIGN §5).
    pub fn address(self) -> crate::state::Address {
        crate::state::Address::new(format!("stage/{}", self.as_str()))
            .expect("stage addresses are valid")
    }

    /// This stage's catalogue entry.
    pub fn info(self) -> &'static StageInfo {
        CATALOGUE
            .iter()
            .find(|i| i.id == self)
            .expect("every stage is in the catalogue")
    }
}

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StageId {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<Self, UnknownStage> {
        StageId::ALL
            .into_iter()
            .find(|id| id.as_str() == s)
            .ok_or_else(|| UnknownStage::new(s))
    }
}

/// A stage name that names no stage.
#[derive(Debug, Clone, PartialEq, Eq, Error, Diagnostic)]
#[error("`{name}` is not a stage{}", suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
#[diagnostic(
    code(cfxm::stages::unknown),
    help("the stages are reach, image, nodes, topology, transactions, blocks, collect, report")
)]
pub struct UnknownStage {
    pub name: String,
    pub suggestion: Option<&'static str>,
}

impl UnknownStage {
    fn new(name: &str) -> Self {
        let suggestion = StageId::ALL
            .into_iter()
            .map(|id| (strsim::jaro_winkler(name, id.as_str()), id.as_str()))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, s)| s);
        UnknownStage {
            name: name.to_owned(),
            suggestion,
        }
    }
}

/// One stage's place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageInfo {
    pub id: StageId,
    /// Stages that must have finished before this one starts (edges `dep → id` in the plan).
    pub after: &'static [StageId],
    /// Upstream stages whose result must still hold in the live world for this stage to run:
    /// a stage that finished but whose effect is gone ("consumed", e.g. nodes no longer
    /// running after their run was collected) is re-run when one of these needs it.
    pub needs_live: &'static [StageId],
    /// Runs after `after` stages that *failed* too (not after skipped ones): collection always
    /// follows block generation, so a failed run still leaves its logs.
    pub runs_after_failure: bool,
    /// Whether the stage only runs on hosts reached by SSH (docker), and is a no-op on local
    /// (devnode) hosts.
    pub cloud_only: bool,
    /// One line for `plan` and `--help`.
    pub summary: &'static str,
}

/// The stages in execution order.
pub const CATALOGUE: [StageInfo; 8] = [
    StageInfo {
        id: StageId::Reach,
        after: &[],
        needs_live: &[],
        runs_after_failure: false,
        cloud_only: false,
        summary: "every host answers over its transport",
    },
    StageInfo {
        id: StageId::Image,
        after: &[StageId::Reach],
        needs_live: &[],
        runs_after_failure: false,
        cloud_only: true,
        summary: "the node image is present on every host",
    },
    StageInfo {
        id: StageId::Nodes,
        after: &[StageId::Image],
        needs_live: &[],
        runs_after_failure: false,
        cloud_only: false,
        summary: "conflux.toml generated, nodes started and ready",
    },
    StageInfo {
        id: StageId::Topology,
        after: &[StageId::Nodes],
        needs_live: &[StageId::Nodes],
        runs_after_failure: false,
        cloud_only: false,
        summary: "ring + random peers connected both ways, latency injected",
    },
    StageInfo {
        id: StageId::Transactions,
        after: &[StageId::Topology],
        needs_live: &[StageId::Nodes],
        runs_after_failure: false,
        cloud_only: false,
        summary: "transaction generators given disjoint genesis accounts",
    },
    StageInfo {
        id: StageId::Blocks,
        after: &[StageId::Transactions],
        needs_live: &[StageId::Nodes],
        runs_after_failure: false,
        cloud_only: false,
        summary: "blocks generated on the exponential schedule, then synced",
    },
    StageInfo {
        id: StageId::Collect,
        after: &[StageId::Blocks],
        needs_live: &[],
        runs_after_failure: true,
        cloud_only: false,
        summary: "the run's analysis lines of the node logs pulled and compressed",
    },
    StageInfo {
        id: StageId::Report,
        after: &[StageId::Collect],
        needs_live: &[],
        runs_after_failure: false,
        cloud_only: false,
        summary: "latency report over the collected logs",
    },
];

/// Which stages an apply may run (`--only`, `--skip`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageSelection {
    /// `Some`: only these stages may run.
    only: Option<BTreeSet<StageId>>,
    /// These stages never run.
    skip: BTreeSet<StageId>,
}

impl StageSelection {
    /// Every stage.
    pub fn all() -> Self {
        Self::default()
    }

    /// From `--only` and `--skip` stage names (empty `only` means no restriction).
    pub fn from_names<S: AsRef<str>>(only: &[S], skip: &[S]) -> Result<Self, UnknownStage> {
        let parse = |names: &[S]| -> Result<BTreeSet<StageId>, UnknownStage> {
            names.iter().map(|n| n.as_ref().trim().parse()).collect()
        };
        let only = parse(only)?;
        Ok(StageSelection {
            only: (!only.is_empty()).then_some(only),
            skip: parse(skip)?,
        })
    }

    /// Only `stages`.
    pub fn only(stages: impl IntoIterator<Item = StageId>) -> Self {
        StageSelection {
            only: Some(stages.into_iter().collect()),
            skip: BTreeSet::new(),
        }
    }

    /// Every stage but `stages`.
    pub fn skipping(stages: impl IntoIterator<Item = StageId>) -> Self {
        StageSelection {
            only: None,
            skip: stages.into_iter().collect(),
        }
    }

    /// Whether `id` may run.
    pub fn allows(&self, id: StageId) -> bool {
        !self.skip.contains(&id) && self.only.as_ref().is_none_or(|o| o.contains(&id))
    }

    /// `--only`/`--skip` as the user would write them, for messages (`--skip report`).
    pub fn describe(&self, id: StageId) -> &'static str {
        if self.skip.contains(&id) {
            "--skip"
        } else {
            "--only"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_one_chain_in_execution_order() {
        assert_eq!(CATALOGUE.map(|i| i.id), StageId::ALL);
        for (i, info) in CATALOGUE.iter().enumerate() {
            let want: &[StageId] = if i == 0 { &[] } else { &[StageId::ALL[i - 1]] };
            assert_eq!(info.after, want, "{}", info.id);
            // Live needs point upstream only.
            for n in info.needs_live {
                assert!(*n < info.id);
            }
        }
        assert!(StageId::Collect.info().runs_after_failure);
        assert_eq!(StageId::Blocks.address().as_str(), "stage/blocks");
    }

    #[test]
    fn names_round_trip_and_typos_get_a_suggestion() {
        for id in StageId::ALL {
            assert_eq!(id.as_str().parse::<StageId>().unwrap(), id);
            assert_eq!(StageId::from_name(&id.name()), Some(id));
        }
        let e = "blokcs".parse::<StageId>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "`blokcs` is not a stage (did you mean `blocks`?)"
        );
        let e = "zzz".parse::<StageId>().unwrap_err();
        assert_eq!(e.to_string(), "`zzz` is not a stage");
    }

    #[test]
    fn selection_follows_only_and_skip() {
        let s = StageSelection::from_names(&["blocks", "collect"], &["collect"]).unwrap();
        assert!(s.allows(StageId::Blocks));
        assert!(!s.allows(StageId::Collect));
        assert!(!s.allows(StageId::Nodes));
        assert_eq!(s.describe(StageId::Collect), "--skip");
        assert_eq!(s.describe(StageId::Nodes), "--only");
        let all = StageSelection::from_names::<&str>(&[], &[]).unwrap();
        assert!(StageId::ALL.iter().all(|id| all.allows(*id)));
        assert!(StageSelection::from_names(&["nope"], &[]).is_err());
    }
}
