//! The state directory: what cfxm remembers between runs, per spec.
//!
//! Layout (DESIGN §9), under `--state-dir` (default `./state`):
//!
//! ```text
//! state/<spec-name>/lock            who is applying this spec now        (lock.rs)
//! state/<spec-name>/journal.jsonl   intent before every mutation, outcome after, stage records
//! state/<spec-name>/inventory.json  hosts and nodes as last discovered   (inventory.rs)
//! state/<spec-name>/hosts.json      the same hosts in the original tool's format (hosts_json.rs)
//! state/<spec-name>/known_hosts     SSH host keys (owned by `ssh`; only the path lives here)
//! state/<spec-name>/slots/<id>/     the local cloud's host slots (working directory per host)
//! state/<spec-name>/cloud/          the local cloud's world, `emulator.json` (`crate::local`)
//! state/<spec-name>/devnode/        genesis secrets shared by a local cloud's devnodes
//! state/<spec-name>/runs/<ts>/      one experiment run: logs, reports   (runs.rs)
//! ```
//!
//! # How a command uses it
//!
//! ```text
//! let state = StateDir::new(opts.state_dir).spec(&spec.name)?;   // paths only, no IO
//! let lock = state.lock("cfxm apply")?;          // StateError::Locked names the holder
//! if let Some(prev) = lock.interrupted() { /* say: the previous apply died; recovering */ }
//! let journal = state.journal(&lock)?;           // repairs a torn last line, reports it
//! for p in journal.log().pending_intents() { /* "RunInstances with token X may have happened" */ }
//! ... apply, recording through the journal (see `apply::mutation`) ...
//! state.write_inventory(&lock, &inventory)?;     // inventory.json + hosts.json, atomically
//! let run = state.new_run(&lock, chrono::Utc::now())?;  // runs/<timestamp>/
//! ```
//!
//! Writers take `&StateLock` as proof that the caller holds the spec's lock, so two cfxm
//! processes can never interleave writes. Readers (`plan`, `show`) use [`SpecState::read_journal`]
//! and [`SpecState::read_inventory`] without the lock: every file is replaced atomically or
//! appended line by line, so a reader sees a consistent file (a journal's torn last line
//! included, which [`JournalLog`] reports and skips).
//!
//! # Invariants
//! - Every whole-file write is atomic: temp file in the same directory, fsync, rename, fsync of
//!   the directory (`atomic.rs`). A crash leaves the old file or the new one, never half of one.
//! - The journal is append-only and fsynced per entry; cfxm never rewrites it, except to cut a
//!   torn last line left by a crash mid-write (reported to the caller).
//! - No secret is ever written: every JSON document goes through `secret::to_guarded_json`,
//!   which refuses a [`Secret`] and secret-looking keys or values.

pub mod address;
mod atomic;
pub mod hosts_json;
pub mod inventory;
pub mod journal;
pub mod lock;
pub mod runs;
pub mod secret;

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use miette::Diagnostic;
use thiserror::Error;

use crate::spec::SpecName;

pub use address::{Address, AddressError};
pub use inventory::{Inventory, InventoryHost, InventoryNode};
pub use journal::{
    CallOutcome, ClientToken, Entry, FailureClass, Fingerprint, Intent, Journal, JournalLog,
    OutcomeResult, PendingIntent, Record, Serial, StageName, StageRecord, StageStatus, TornTail,
};
pub use lock::{Liveness, LockHolder, LockStatus, StateLock};
pub use runs::RunDir;
pub use secret::Secret;

/// Something went wrong reading or writing the state directory.
#[derive(Debug, Error, Diagnostic)]
pub enum StateError {
    /// Another process holds the spec's lock.
    #[error("the state of spec `{spec}` is locked by {}", lock::describe(.holder.as_deref()))]
    #[diagnostic(
        code(cfxm::state::locked),
        help(
            "wait for that command to finish; if it is hung, stop it (it releases the lock when \
             it exits, even when killed). Lock file: {}",
            path.display()
        )
    )]
    Locked {
        spec: String,
        /// `None` when the holder has taken the lock but not yet written its record.
        holder: Option<Box<LockHolder>>,
        path: PathBuf,
    },

    /// A file or directory could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    #[diagnostic(
        code(cfxm::state::io),
        help("check that the state directory is writable and the disk is not full")
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The filesystem refused an exclusive lock.
    #[error("cannot lock `{path}`: {source}")]
    #[diagnostic(
        code(cfxm::state::lock_unsupported),
        help(
            "put the state directory (`--state-dir`) on a local disk or an NFSv4 mount: cfxm \
             needs `flock` to keep two applies of one spec apart"
        )
    )]
    LockFailed {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A line in the middle of the journal is not a journal entry.
    #[error("the journal `{path}` is damaged at line {line}: {reason}")]
    #[diagnostic(
        code(cfxm::state::journal_corrupt),
        help(
            "cfxm only appends to the journal, so this line was changed by something else. \
             Restore the file from a backup, or move it aside to start a new journal (cfxm then \
             forgets which cloud calls may be in flight; run `cfxm plan` to re-discover)"
        )
    )]
    JournalCorrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// A file cfxm wrote earlier does not parse.
    #[error("cannot read `{path}`: {source}")]
    #[diagnostic(
        code(cfxm::state::parse),
        help(
            "the file is rewritten on the next `cfxm apply`; move it aside if it was edited by hand"
        )
    )]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A value could not be turned into JSON (or held a secret; see [`secret`]).
    #[error("refusing to write {what}: {reason}")]
    #[diagnostic(
        code(cfxm::state::refused),
        help(
            "this is a bug in cfxm: secrets must never reach the state directory; please report it"
        )
    )]
    Refused { what: &'static str, reason: String },

    /// The spec name cannot be a directory name.
    #[error("`{name}` cannot name a state directory")]
    #[diagnostic(
        code(cfxm::state::bad_spec_name),
        help("spec names are lowercase letters, digits and `-`, starting with a letter")
    )]
    BadSpecName { name: String },
}

impl StateError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        StateError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The state directory root (`--state-dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The default root, relative to the working directory, as Terraform keeps its state beside
    /// the configuration.
    pub const DEFAULT: &'static str = "state";

    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one spec. Pure path arithmetic; nothing is created until a writer runs.
    pub fn spec(&self, name: &SpecName) -> Result<SpecState, StateError> {
        let s = name.as_str();
        // Validated spec names always pass; this guards hand-built names (e.g. from a CLI flag)
        // against escaping the state directory.
        let ok = !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !ok {
            return Err(StateError::BadSpecName { name: s.to_owned() });
        }
        Ok(SpecState {
            dir: self.root.join(s),
            spec: name.clone(),
        })
    }
}

impl Default for StateDir {
    fn default() -> Self {
        StateDir::new(Self::DEFAULT)
    }
}

/// One spec's state directory and the files in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecState {
    dir: PathBuf,
    spec: SpecName,
}

impl SpecState {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn spec(&self) -> &SpecName {
        &self.spec
    }
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.jsonl")
    }
    pub fn inventory_path(&self) -> PathBuf {
        self.dir.join("inventory.json")
    }
    pub fn hosts_json_path(&self) -> PathBuf {
        self.dir.join("hosts.json")
    }
    pub fn known_hosts_path(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
    pub fn runs_dir(&self) -> PathBuf {
        self.dir.join("runs")
    }
    /// The parent of the local cloud's host slots.
    pub fn slots_dir(&self) -> PathBuf {
        self.dir.join("slots")
    }
    /// The slot directory of local-cloud instance `instance_id`, or `None` when the id cannot
    /// be a single path component (empty, `.`, `..`, or containing `/` or NUL).
    pub fn slot(&self, instance_id: &str) -> Option<PathBuf> {
        let ok = !instance_id.is_empty()
            && instance_id != "."
            && instance_id != ".."
            && !instance_id.contains(['/', '\0']);
        ok.then(|| self.slots_dir().join(instance_id))
    }

    /// Takes the spec's lock for `command` (e.g. `cfxm apply`), creating the directory first.
    /// Fails with [`StateError::Locked`], naming the holder, when another process has it.
    pub fn lock(&self, command: &str) -> Result<StateLock, StateError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| StateError::io("create the state directory", &self.dir, e))?;
        StateLock::acquire(&self.lock_path(), &self.spec, command)
    }

    /// Opens the journal for appending; needs the lock. A torn last line is cut and reported by
    /// [`Journal::repaired`].
    pub fn journal(&self, lock: &StateLock) -> Result<Journal, StateError> {
        self.check_lock(lock);
        Journal::open(&self.journal_path())
    }

    /// Reads the journal without the lock (for `plan` and `show`).
    pub fn read_journal(&self) -> Result<JournalLog, StateError> {
        JournalLog::read(&self.journal_path())
    }

    /// Writes `inventory.json`, then `hosts.json` in the original tool's format, each atomically.
    pub fn write_inventory(
        &self,
        lock: &StateLock,
        inventory: &Inventory,
    ) -> Result<(), StateError> {
        self.check_lock(lock);
        inventory.write(&self.inventory_path(), &self.hosts_json_path())
    }

    /// The last written inventory, or `None` before the first apply.
    pub fn read_inventory(&self) -> Result<Option<Inventory>, StateError> {
        Inventory::read(&self.inventory_path())
    }

    /// Creates `runs/<timestamp>/` for a run started at `started`.
    pub fn new_run(&self, lock: &StateLock, started: DateTime<Utc>) -> Result<RunDir, StateError> {
        self.check_lock(lock);
        RunDir::create(&self.runs_dir(), started)
    }

    /// Past runs, oldest first.
    pub fn runs(&self) -> Result<Vec<RunDir>, StateError> {
        RunDir::list(&self.runs_dir())
    }

    fn check_lock(&self, lock: &StateLock) {
        // A lock of another spec is a programming error, not a user error.
        debug_assert_eq!(
            lock.path(),
            self.lock_path(),
            "a writer of one spec's state was handed another spec's lock"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_single_path_components() {
        let s = StateDir::default()
            .spec(&SpecName::new("latency-1k"))
            .unwrap();
        assert_eq!(
            s.slot("i-local-1").unwrap(),
            Path::new("state/latency-1k/slots/i-local-1")
        );
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert_eq!(s.slot(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn spec_paths_follow_the_documented_layout() {
        let s = StateDir::default()
            .spec(&SpecName::new("latency-1k"))
            .unwrap();
        assert_eq!(s.dir(), Path::new("state/latency-1k"));
        assert_eq!(s.lock_path(), Path::new("state/latency-1k/lock"));
        assert_eq!(
            s.journal_path(),
            Path::new("state/latency-1k/journal.jsonl")
        );
        assert_eq!(
            s.inventory_path(),
            Path::new("state/latency-1k/inventory.json")
        );
        assert_eq!(
            s.hosts_json_path(),
            Path::new("state/latency-1k/hosts.json")
        );
        assert_eq!(s.runs_dir(), Path::new("state/latency-1k/runs"));
    }

    #[test]
    fn the_lock_error_names_the_holder_and_says_what_to_do() {
        use chrono::TimeZone;
        let err = StateError::Locked {
            spec: "latency-1k".into(),
            holder: Some(Box::new(LockHolder {
                user: "alice".into(),
                pid: 4242,
                host: "build-7.example".into(),
                started: Utc.with_ymd_and_hms(2026, 4, 26, 10, 15, 0).unwrap(),
                command: "cfxm apply".into(),
            })),
            path: PathBuf::from("state/latency-1k/lock"),
        };
        // Compare words only: the renderer wraps to the terminal's width.
        let text = crate::cli::render_diagnostic(&err)
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains(
                "the state of spec `latency-1k` is locked by alice (pid 4242 on \
                 build-7.example, `cfxm apply`, since 2026-04-26 10:15:00 UTC)"
            ),
            "{text}"
        );
        assert!(
            text.contains("help: wait for that command to finish"),
            "{text}"
        );
        assert!(text.contains("state/latency-1k/lock"), "{text}");
    }

    #[test]
    fn hand_built_names_cannot_escape_the_state_dir() {
        let dir = StateDir::new("/tmp/x");
        for bad in ["..", ".", "", "a/b", "../etc", "a\0b"] {
            assert!(
                matches!(
                    dir.spec(&SpecName::new(bad)),
                    Err(StateError::BadSpecName { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn writers_create_the_directory_and_readers_tolerate_its_absence() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("nested/state"))
            .spec(&SpecName::new("s1"))
            .unwrap();
        assert!(state.read_journal().unwrap().entries().is_empty());
        assert!(state.read_inventory().unwrap().is_none());
        assert!(state.runs().unwrap().is_empty());
        let lock = state.lock("cfxm test").unwrap();
        assert!(state.dir().is_dir());
        let journal = state.journal(&lock).unwrap();
        assert_eq!(journal.last_serial(), Serial(0));
    }
}
