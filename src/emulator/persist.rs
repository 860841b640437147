//! `--state FILE`: the world saved after every change and loaded at start, so a local cloud
//! survives between CLI invocations. Writes are atomic (a temporary file renamed over the old
//! one), so a crash mid-write leaves the previous state, never half of one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::world::{Millis, World};

/// Bumped when the format changes incompatibly.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Saved {
    format: u32,
    /// Emulated time when saved; the clock resumes from here (or from now, if later).
    emulated_ms: Millis,
    world: World,
}

/// A state file that cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot use the emulator state file `{}`: {reason}", path.display())]
#[diagnostic(help("move the file away to start from a fresh world, or point `--state` elsewhere"))]
pub struct StateError {
    pub path: PathBuf,
    pub reason: String,
}

/// Loads a saved world; `Ok(None)` when the file does not exist yet.
pub fn load(path: &Path) -> Result<Option<(World, Millis)>, StateError> {
    let fail = |reason: String| StateError {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let saved: Saved =
        serde_json::from_slice(&bytes).map_err(|e| fail(format!("not a saved world: {e}")))?;
    if saved.format != FORMAT {
        return Err(fail(format!(
            "format {} is not the supported {FORMAT}",
            saved.format
        )));
    }
    Ok(Some((saved.world, saved.emulated_ms)))
}

/// Serializes the world (under the caller's lock; writing happens later, outside it).
pub fn snapshot(world: &World, emulated_ms: Millis) -> Vec<u8> {
    #[derive(Serialize)]
    struct SavedRef<'a> {
        format: u32,
        emulated_ms: Millis,
        world: &'a World,
    }
    serde_json::to_vec(&SavedRef {
        format: FORMAT,
        emulated_ms,
        world,
    })
    .expect("the world serializes")
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let fail = |e: std::io::Error| StateError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_data().map_err(fail)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(fail)
}
