//! Saved plans (`plan --out plan.json`, `apply plan.json`) and their precondition, the
//! [`Basis`]: the spec file's digest, the journal's serial, and what existed at each address
//! when the plan was computed. Applying a saved plan first recomputes the basis from a fresh
//! discovery; if anything moved, the plan is refused and [`moved`] says what.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use thiserror::Error;

use super::model::{Basis, PLAN_FORMAT, Plan};
use crate::state::{Fingerprint, Serial};

/// A saved plan that cannot be used.
#[derive(Debug, Error, Diagnostic)]
pub enum SavedPlanError {
    #[error("cannot read the plan `{}`: {source}", path.display())]
    #[diagnostic(
        code(cfxm::plan::unreadable),
        help("write one with `cfxm plan --out FILE`")
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` is not a cfxm plan: {source}", path.display())]
    #[diagnostic(
        code(cfxm::plan::not_a_plan),
        help("write one with `cfxm plan --out FILE`; plans are JSON (`schemas/plan.schema.json`)")
    )]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("`{}` is a format {found} plan; this cfxm reads format {PLAN_FORMAT}", path.display())]
    #[diagnostic(
        code(cfxm::plan::format),
        help("run `cfxm plan --out FILE` again with this cfxm")
    )]
    Format { path: PathBuf, found: u32 },
    #[error("cannot write the plan `{}`: {source}", path.display())]
    #[diagnostic(
        code(cfxm::plan::unwritable),
        help("check the directory exists and is writable")
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the saved plan is stale: {}", moved.join("; "))]
    #[diagnostic(
        code(cfxm::plan::stale),
        help("nothing was changed; run `cfxm plan --out FILE` again and review the new plan")
    )]
    Stale { moved: Vec<String> },
    #[error("the saved plan is for spec `{planned}`, not `{given}`")]
    #[diagnostic(code(cfxm::plan::other_spec), help("pass the plan's spec with `-f`"))]
    OtherSpec { planned: String, given: String },
}

/// Reads a saved plan.
pub fn read(path: &Path) -> Result<Plan, SavedPlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| SavedPlanError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // The format first, so an old plan says so instead of failing on a field.
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(found) = v.get("format").and_then(serde_json::Value::as_u64)
        && found != u64::from(PLAN_FORMAT)
    {
        return Err(SavedPlanError::Format {
            path: path.to_path_buf(),
            found: u32::try_from(found).unwrap_or(u32::MAX),
        });
    }
    serde_json::from_str(&text).map_err(|source| SavedPlanError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `plan` to `path` (pretty JSON), atomically enough for a user file: a temp file in the
/// same directory renamed over it.
pub fn write(path: &Path, plan: &Plan) -> Result<(), SavedPlanError> {
    let text = serde_json::to_string_pretty(plan).expect("plans serialize") + "\n";
    let err = |source| SavedPlanError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("plan")
    ));
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// The basis of a plan computed now.
pub fn basis(spec: Fingerprint, journal_serial: Serial, live: BTreeMap<String, String>) -> Basis {
    let live_digest = Fingerprint::of(&live).expect("strings serialize");
    Basis {
        spec,
        journal_serial,
        live,
        live_digest,
    }
}

/// What changed between the basis a plan was computed from and the basis now; empty when the
/// plan still holds.
pub fn moved(then: &Basis, now: &Basis) -> Vec<String> {
    let mut out = Vec::new();
    if then.spec != now.spec {
        out.push("the spec file changed".to_owned());
    }
    if then.journal_serial != now.journal_serial {
        out.push(format!(
            "the journal moved from {} to {} (another apply or destroy ran)",
            then.journal_serial, now.journal_serial
        ));
    }
    if then.live_digest != now.live_digest {
        let keys: std::collections::BTreeSet<&String> =
            then.live.keys().chain(now.live.keys()).collect();
        let mut listed = 0;
        for k in keys {
            let (a, b) = (then.live.get(k), now.live.get(k));
            if a == b {
                continue;
            }
            listed += 1;
            if listed > 10 {
                continue;
            }
            out.push(format!(
                "`{k}` was {} and is now {}",
                a.map_or("absent", String::as_str),
                b.map_or("absent", String::as_str)
            ));
        }
        if listed > 10 {
            out.push(format!("and {} more addresses changed", listed - 10));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn moved_says_what_moved() {
        let spec = Fingerprint::of(&"spec").unwrap();
        let a = basis(
            spec.clone(),
            Serial(3),
            live(&[("aliyun/r/vpc", "vpc-1"), ("aliyun/r/hosts", "2 instances")]),
        );
        assert!(moved(&a, &a.clone()).is_empty());
        let b = basis(
            spec,
            Serial(5),
            live(&[
                ("aliyun/r/hosts", "3 instances"),
                ("aliyun/r/key_pair", "kp"),
            ]),
        );
        assert_eq!(
            moved(&a, &b),
            [
                "the journal moved from #3 to #5 (another apply or destroy ran)",
                "`aliyun/r/hosts` was 2 instances and is now 3 instances",
                "`aliyun/r/key_pair` was absent and is now kp",
                "`aliyun/r/vpc` was vpc-1 and is now absent",
            ]
        );
    }
}
