//! `--only` / `--skip`: which parts of a plan may change.
//!
//! Each value is a comma-separated list of terms: `infra` (every region's cloud resources),
//! `stages` (every experiment stage), a region id (that region's cloud resources) or a stage
//! name. With `--only`, everything not named is left out; `--skip` then removes what it names.
//! `--only infra` plans and applies cloud resources alone; `--only stages` runs stages without
//! touching the cloud.
//!
//! Left-out changes stay in the plan as no-ops that say why (`excluded by --only`), so the plan
//! still shows what a full apply would do.

use std::collections::BTreeSet;

use miette::Diagnostic;
use thiserror::Error;

use crate::spec::RegionId;
use crate::stages::{StageId, StageSelection};

/// What an apply may change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `--only` terms, as given (`None`: no restriction).
    only: Option<Terms>,
    skip: Terms,
    /// As typed, for plans and messages.
    pub only_text: Vec<String>,
    pub skip_text: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Terms {
    infra: bool,
    stages: bool,
    regions: BTreeSet<RegionId>,
    stage_names: BTreeSet<StageId>,
}

impl Terms {
    fn is_empty(&self) -> bool {
        !self.infra && !self.stages && self.regions.is_empty() && self.stage_names.is_empty()
    }
}

/// A term that names nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error, Diagnostic)]
#[error("`{flag} {term}` names no region of the spec and no stage")]
#[diagnostic(
    code(cfxm::plan::bad_selection),
    help(
        "use `infra`, `stages`, a region of the spec ({regions}) or a stage (reach, image, nodes, topology, transactions, blocks, collect, report)"
    )
)]
pub struct SelectionError {
    pub flag: &'static str,
    pub term: String,
    pub regions: String,
}

impl Selection {
    /// Everything may change.
    pub fn all() -> Self {
        Self::default()
    }

    /// Parses `--only` and `--skip` values (each may hold comma-separated terms). `regions` are
    /// the regions a term may name: the spec's, plus any where resources of the spec exist.
    pub fn parse<S: AsRef<str>>(
        only: &[S],
        skip: &[S],
        regions: &BTreeSet<RegionId>,
    ) -> Result<Self, SelectionError> {
        let split = |values: &[S]| -> Vec<String> {
            values
                .iter()
                .flat_map(|v| v.as_ref().split(','))
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect()
        };
        let parse = |flag: &'static str, terms: &[String]| -> Result<Terms, SelectionError> {
            let mut out = Terms::default();
            for t in terms {
                match t.as_str() {
                    "infra" => out.infra = true,
                    "stages" => out.stages = true,
                    other => {
                        if let Ok(id) = other.parse::<StageId>() {
                            out.stage_names.insert(id);
                        } else if regions.contains(&RegionId::new(other)) {
                            out.regions.insert(RegionId::new(other));
                        } else {
                            return Err(SelectionError {
                                flag,
                                term: other.to_owned(),
                                regions: regions
                                    .iter()
                                    .map(RegionId::as_str)
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            });
                        }
                    }
                }
            }
            Ok(out)
        };
        let only_text = split(only);
        let skip_text = split(skip);
        let only_terms = parse("--only", &only_text)?;
        let skip_terms = parse("--skip", &skip_text)?;
        Ok(Selection {
            only: (!only_terms.is_empty()).then_some(only_terms),
            skip: skip_terms,
            only_text,
            skip_text,
        })
    }

    /// Whether the cloud resources of `region` may change; `Err(flag)` names the flag that
    /// leaves them out.
    pub fn region(&self, region: &RegionId) -> Result<(), &'static str> {
        if self.skip.infra || self.skip.regions.contains(region) {
            return Err("--skip");
        }
        match &self.only {
            Some(o) if !(o.infra || o.regions.contains(region)) => Err("--only"),
            _ => Ok(()),
        }
    }

    /// The stages that may run.
    pub fn stages(&self) -> StageSelection {
        let excluded_all = self.skip.stages
            || self
                .only
                .as_ref()
                .is_some_and(|o| !o.stages && o.stage_names.is_empty());
        if excluded_all {
            return StageSelection::only([]);
        }
        let mut allowed: BTreeSet<StageId> = match &self.only {
            Some(o) if !o.stages => o.stage_names.clone(),
            _ => StageId::ALL.into_iter().collect(),
        };
        for s in &self.skip.stage_names {
            allowed.remove(s);
        }
        if allowed.len() == StageId::ALL.len() {
            StageSelection::all()
        } else {
            let skipped: Vec<StageId> = StageId::ALL
                .into_iter()
                .filter(|s| !allowed.contains(s))
                .collect();
            if self.only.is_some() {
                StageSelection::only(allowed)
            } else {
                StageSelection::skipping(skipped)
            }
        }
    }

    /// Whether nothing is restricted.
    pub fn is_all(&self) -> bool {
        self.only.is_none() && self.skip.is_empty()
    }

    /// `--only infra --skip ap-southeast-1`, for messages and saved plans.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.only_text.is_empty() {
            parts.push(format!("--only {}", self.only_text.join(",")));
        }
        if !self.skip_text.is_empty() {
            parts.push(format!("--skip {}", self.skip_text.join(",")));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> BTreeSet<RegionId> {
        ["ap-southeast-1", "cn-hongkong"]
            .into_iter()
            .map(RegionId::new)
            .collect()
    }

    #[test]
    fn only_infra_plans_cloud_resources_alone() {
        let s = Selection::parse(&["infra"], &[], &regions()).unwrap();
        assert!(s.region(&RegionId::new("cn-hongkong")).is_ok());
        let stages = s.stages();
        assert!(StageId::ALL.iter().all(|id| !stages.allows(*id)));
        assert_eq!(s.describe(), "--only infra");
    }

    #[test]
    fn regions_and_stages_combine_and_skip_wins() {
        let s = Selection::parse(
            &["ap-southeast-1,blocks", "collect"],
            &["collect"],
            &regions(),
        )
        .unwrap();
        assert!(s.region(&RegionId::new("ap-southeast-1")).is_ok());
        assert_eq!(s.region(&RegionId::new("cn-hongkong")), Err("--only"));
        let st = s.stages();
        assert!(st.allows(StageId::Blocks));
        assert!(!st.allows(StageId::Collect));
        assert!(!st.allows(StageId::Nodes));

        let s = Selection::parse(&[] as &[&str], &["cn-hongkong", "report"], &regions()).unwrap();
        assert_eq!(s.region(&RegionId::new("cn-hongkong")), Err("--skip"));
        assert!(s.region(&RegionId::new("ap-southeast-1")).is_ok());
        assert!(s.stages().allows(StageId::Blocks));
        assert!(!s.stages().allows(StageId::Report));

        let s = Selection::parse(&["stages"], &[] as &[&str], &regions()).unwrap();
        assert_eq!(s.region(&RegionId::new("ap-southeast-1")), Err("--only"));
        assert!(s.stages().allows(StageId::Reach));
        assert!(Selection::all().is_all());
    }

    #[test]
    fn an_unknown_term_is_a_clear_error() {
        let e = Selection::parse(&["ap-southeast-9"], &[], &regions()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`--only ap-southeast-9` names no region of the spec and no stage"
        );
        assert_eq!(e.regions, "ap-southeast-1, cn-hongkong");
    }
}
