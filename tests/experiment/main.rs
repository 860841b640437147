//! The experiment area: the product's main job through the built binary, on the local cloud.
//! `cfxm apply` from an empty cloud to the latency report (8 devnodes on 4 slots in 2 regions,
//! 50 blocks), a no-op re-plan, a new `blocks.count` re-running only blocks/collect/report on
//! the same network, an apply killed during `blocks` and resumed, and `destroy` leaving no
//! process, no slot and nothing tagged; hosts that die (devnodes killed, slot broken) replaced
//! by the next apply, or within one apply by a replacement round.
//!
//! Each test has its own temporary directory (spec and state): its local cloud is its own
//! in-process emulator, on a loopback block of its own.

mod replace;
mod run;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn transcript(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn ok(self) -> Outcome {
        assert_eq!(self.code, Some(0), "{}", self.transcript());
        self
    }
}

/// A directory with a spec and a state directory; dropping it kills whatever devnode still
/// runs in it (a failed test must not leave processes behind).
pub struct Lab {
    pub dir: tempfile::TempDir,
}

impl Default for Lab {
    fn default() -> Lab {
        Lab {
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

impl Lab {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self, spec: &str) -> PathBuf {
        self.path().join("state").join(spec)
    }

    /// Writes `spec.yaml`.
    pub fn spec(&self, yaml: &str) -> PathBuf {
        let p = self.path().join("spec.yaml");
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// `cfxm ARGS` in the lab, state under `./state`, no colour, no terminal.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cfxm"));
        c.args(args)
            .current_dir(self.path())
            .env("CFXM_STATE_DIR", self.path().join("state"))
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    /// Runs `cfxm ARGS` to completion.
    pub fn cfxm(&self, args: &[&str]) -> Outcome {
        let out = self.command(args).output().expect("cfxm runs");
        Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (pid, _) in processes_under(self.path()) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Live processes whose working directory is inside `root` (devnodes run in their slots).
pub fn processes_under(root: &Path) -> Vec<(u32, PathBuf)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd"))
            && cwd.starts_with(root)
            && !zombie
        {
            found.push((pid, cwd));
        }
    }
    found.sort();
    found
}

/// A local spec: 2 regions × 4 nodes, 2 nodes per host, `blocks` blocks every 100 ms.
pub fn spec_yaml(blocks: u32) -> String {
    format!(
        "name: exp\nowner: tester\ncloud:\n  local:\n    instance_types:\n      \
         - {{ name: ecs.g8i.2xlarge, nodes_per_host: 2 }}\n    regions:\n      \
         - {{ name: ap-southeast-1, nodes: 4 }}\n      - {{ name: cn-hongkong, nodes: 4 }}\n\
         experiment:\n  topology: {{ peers: 3, seed: 7 }}\n  \
         latency: {{ between_regions: {{ default: 20ms }} }}\n  transactions: {{ tps: 100 }}\n  \
         blocks: {{ count: {blocks}, mean_interval: 100ms, min_node_gap: 100ms }}\n\
         report: {{ percentiles: [50, 90] }}\n"
    )
}
