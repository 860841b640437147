//! The analyzer area: recovered latencies against generated ground truth, the header method's
//! bias, coverage of missing blocks, compressed logs, the original's exact table layout,
//! `report.json` against its schema, and `cfxm report` as a user runs it.

mod cli;
mod truth;

use std::path::{Path, PathBuf};
use std::process::Command;

use cfxm::analyze::fixture::{self, FixtureSpec, Truth};
use cfxm::analyze::{AnalyzeOptions, Report};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Generates a run in a fresh temp dir.
pub fn run_dir(spec: &FixtureSpec) -> (tempfile::TempDir, Truth) {
    let dir = tempfile::tempdir().unwrap();
    let truth = fixture::write_run(dir.path(), spec).unwrap();
    (dir, truth)
}

pub fn analyze(dir: &Path, percentiles: &[f64]) -> Report {
    let opts = AnalyzeOptions {
        percentiles: percentiles.to_vec(),
        threads: Some(2),
        ..AnalyzeOptions::default()
    };
    cfxm::analyze::analyze_run(dir, &opts).unwrap()
}

/// Runs the built `cfxm` with a pinned terminal.
pub fn cfxm(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cfxm"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("RUST_LOG")
        .output()
        .expect("the cfxm binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
