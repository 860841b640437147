//! Whole-file writes that a crash cannot leave half done.
//!
//! The recipe (as in cargo's and Terraform's state writers): write a temp file in the target's
//! directory (same filesystem, so `rename` is atomic), fsync it, rename it over the target, then
//! fsync the directory so the rename itself survives a power cut. Readers see the old file or the
//! new one, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::StateError;

/// Distinguishes temp files of concurrent writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically and durably.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(|e| StateError::io("create the directory", dir, e))?;
    let temp = temp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| StateError::io("create", &temp, e))?;
        file.write_all(bytes)
            .map_err(|e| StateError::io("write", &temp, e))?;
        file.sync_all()
            .map_err(|e| StateError::io("flush to disk", &temp, e))?;
        fs::rename(&temp, path).map_err(|e| StateError::io("replace", path, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Makes a directory entry change (create, rename) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io("flush to disk", dir, e))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    parent(path).join(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temp_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("sub/inventory.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["inventory.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("target");
        write_atomic(&path, b"old").unwrap();
        // Renaming a file over a non-empty directory fails: the old content must survive and
        // the temp file must be cleaned up.
        let dir_target = tmp.path().join("adir");
        fs::create_dir(&dir_target).unwrap();
        fs::write(dir_target.join("x"), "x").unwrap();
        assert!(write_atomic(&dir_target, b"new").is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        let leftovers = fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".tmp-")
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}
