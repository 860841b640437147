//! Run directories, `runs/<timestamp>/`: one per experiment run, holding `logs/`, `report.txt`,
//! `report.json` and plots (DESIGN §9; the original's `logs/<timestamp>/`, original-tool.md §1.9).
//!
//! The timestamp is the run's start in UTC as `YYYYmmddHHMMSS`, the original's format, so the
//! names sort by time and its scripts' globs still match. Two runs started in the same second get
//! `-2`, `-3`, ... suffixes; the directory is created with `create_dir` (not `_all`), so two
//! processes can never share one.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::StateError;

/// One run's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Most same-second runs tried before giving up (a sign of a loop, not of real runs).
    const MAX_SAME_SECOND: u32 = 1000;

    pub(crate) fn create(runs: &Path, started: DateTime<Utc>) -> Result<Self, StateError> {
        std::fs::create_dir_all(runs)
            .map_err(|e| StateError::io("create the runs directory", runs, e))?;
        let stamp = started.format("%Y%m%d%H%M%S").to_string();
        for n in 1..=Self::MAX_SAME_SECOND {
            let name = if n == 1 {
                stamp.clone()
            } else {
                format!("{stamp}-{n}")
            };
            let path = runs.join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(RunDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StateError::io("create the run directory", &path, e)),
            }
        }
        Err(StateError::io(
            "create the run directory",
            &runs.join(stamp),
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "too many runs started in the same second",
            ),
        ))
    }

    /// Run directories under `runs`, oldest first; none if it does not exist.
    pub(crate) fn list(runs: &Path) -> Result<Vec<Self>, StateError> {
        let entries = match std::fs::read_dir(runs) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StateError::io("list the runs directory", runs, e)),
        };
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StateError::io("list the runs directory", runs, e))?;
            if entry.path().is_dir() {
                dirs.push(RunDir { path: entry.path() });
            }
        }
        // `20260426101500` < `20260426101500-2` < `20260426101501`: the suffix sorts by number.
        dirs.sort_by_key(|d| {
            let name = d.name().to_owned();
            let (stamp, n) = name.split_once('-').unwrap_or((&name, "1"));
            (
                stamp.to_owned(),
                n.parse::<u32>().unwrap_or(u32::MAX),
                name.clone(),
            )
        });
        Ok(dirs)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's name, e.g. `20260426101500`.
    pub fn name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    /// Collected node logs: `logs/<host>-<node>/`.
    pub fn logs(&self) -> PathBuf {
        self.path.join("logs")
    }
    pub fn report_txt(&self) -> PathBuf {
        self.path.join("report.txt")
    }
    pub fn report_json(&self) -> PathBuf {
        self.path.join("report.json")
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn runs_are_named_by_start_time_and_never_shared() {
        let tmp = tempfile::tempdir().unwrap();
        let runs = tmp.path().join("runs");
        let t = Utc.with_ymd_and_hms(2026, 4, 26, 10, 15, 0).unwrap();
        let a = RunDir::create(&runs, t).unwrap();
        let b = RunDir::create(&runs, t).unwrap();
        let c = RunDir::create(&runs, t + chrono::Duration::seconds(1)).unwrap();
        assert_eq!(a.name(), "20260426101500");
        assert_eq!(b.name(), "20260426101500-2");
        assert_eq!(c.name(), "20260426101501");
        assert!(a.path().is_dir() && b.path().is_dir());
        assert_eq!(a.report_json(), runs.join("20260426101500/report.json"));
        let names: Vec<String> = RunDir::list(&runs)
            .unwrap()
            .iter()
            .map(|r| r.name().to_owned())
            .collect();
        assert_eq!(
            names,
            ["20260426101500", "20260426101500-2", "20260426101501"]
        );
    }
}
