//! [`StateLock`]: one writer per spec at a time (DESIGN §6: "a state lock prevents two applies of
//! the same spec at once; a stale lock names its holder").
//!
//! # Why `flock`, not `O_EXCL`
//! An `O_EXCL` lock file is created atomically, but nothing removes it when its holder dies: a
//! killed apply (SIGKILL, OOM, power cut) leaves it behind, and the next run must guess from a pid
//! whether it is stale, which is wrong after pid reuse and impossible from another host. An
//! advisory `flock` on `state/<spec>/lock` is held by the open file description, so the kernel
//! releases it the instant the holder dies, however it dies: a held lock always means a live
//! holder, and a crashed apply never blocks the next one. (`flock`, not POSIX `fcntl` locks:
//! those are per process, so two handles in one process would not exclude each other, and
//! closing any descriptor of the file drops them.) Std's `File::try_lock` is `flock(LOCK_EX |
//! LOCK_NB)` on Unix.
//!
//! The file also carries the holder's record (user, pid, host, start time, command) as one JSON
//! line, written after the lock is taken and truncated on a clean release. So:
//! - a second process gets [`StateError::Locked`] naming the holder;
//! - a record left in an unlocked file means the previous holder died without releasing: it is
//!   *stale*. [`StateLock::inspect`] reports it as [`LockStatus::Stale`] (with
//!   [`LockHolder::liveness`] telling whether that pid is gone, on this host), and
//!   [`StateLock::acquire`] takes the lock anyway and hands the record back through
//!   [`StateLock::interrupted`], so the caller can say "the previous apply (alice, pid 1234) was
//!   interrupted; recovering from the journal". Taking over is safe because the kernel proves
//!   nobody holds it. [`StateLock::break_stale`] clears such a record explicitly without running
//!   anything (for a future `cfxm unlock`); it refuses while the lock is held.
//!
//! The lock file is never deleted: deleting it would let a process that opened the old inode and
//! one that created a new file both "hold" the lock.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StateError;
use super::secret::to_guarded_json;
use crate::spec::SpecName;

/// Who holds (or last held) a spec's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub user: String,
    pub pid: u32,
    pub host: String,
    pub started: DateTime<Utc>,
    /// What it is doing, e.g. `cfxm apply`.
    pub command: String,
}

/// Whether a holder's process is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Running,
    /// No such process on this host.
    Dead,
    /// The holder ran on another host (a shared state directory): cfxm cannot tell.
    OtherHost,
}

/// What [`StateLock::inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockStatus {
    /// Nobody holds the lock and the last holder released it cleanly.
    Free,
    /// A live process holds it (`None` if it has not written its record yet).
    Held(Option<LockHolder>),
    /// Nobody holds it, but the last holder died without releasing: its work was interrupted.
    Stale(LockHolder),
}

impl LockHolder {
    /// This process, about to run `command`.
    pub fn current(command: &str) -> Self {
        LockHolder {
            user: current_user(),
            pid: std::process::id(),
            host: current_host(),
            started: Utc::now(),
            command: command.to_owned(),
        }
    }

    /// Whether the holder's pid is alive, when it ran on this host.
    pub fn liveness(&self) -> Liveness {
        if self.host != current_host() {
            return Liveness::OtherHost;
        }
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return Liveness::Dead;
        };
        // SAFETY: kill with signal 0 sends nothing; it only checks that the pid exists.
        let rc = unsafe { libc::kill(pid, 0) };
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
            Liveness::Running
        } else {
            Liveness::Dead
        }
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (pid {} on {}, `{}`, since {})",
            self.user,
            self.pid,
            self.host,
            self.command,
            self.started.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// Renders a holder for [`StateError::Locked`].
pub(crate) fn describe(holder: Option<&LockHolder>) -> String {
    match holder {
        None => "another process (it has not written its name yet)".to_owned(),
        Some(h) => match h.liveness() {
            // The pid is gone but the lock is held: a child it forked kept the descriptor.
            Liveness::Dead => format!(
                "{h}; that pid has exited, but a process it started still holds the lock file"
            ),
            Liveness::Running | Liveness::OtherHost => h.to_string(),
        },
    }
}

/// The spec's lock, held until dropped.
#[derive(Debug)]
pub struct StateLock {
    /// The locked file; the `flock` lives as long as this descriptor.
    file: File,
    path: PathBuf,
    holder: LockHolder,
    interrupted: Option<LockHolder>,
}

impl StateLock {
    /// Takes the lock at `path` for `command`, or fails naming the holder. Never waits.
    pub fn acquire(path: &Path, spec: &SpecName, command: &str) -> Result<Self, StateError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StateError::io("open the lock file", path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    spec: spec.to_string(),
                    holder: read_record(&mut file).map(Box::new),
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(StateError::LockFailed {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        let interrupted = read_record(&mut file);
        let holder = LockHolder::current(command);
        let line = to_guarded_json("lock record", &holder)? + "\n";
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
            .and_then(|()| file.write_all(line.as_bytes()))
            .and_then(|()| file.sync_data())
            .map_err(|e| StateError::io("write the lock file", path, e))?;
        Ok(StateLock {
            file,
            path: path.to_path_buf(),
            holder,
            interrupted,
        })
    }

    /// Who holds a lock, without taking it (beyond an instant to test it).
    pub fn inspect(path: &Path) -> Result<LockStatus, StateError> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockStatus::Free),
            Err(e) => return Err(StateError::io("open the lock file", path, e)),
        };
        match file.try_lock() {
            Ok(()) => {
                let record = read_record(&mut file);
                let _ = file.unlock();
                Ok(record.map_or(LockStatus::Free, LockStatus::Stale))
            }
            Err(TryLockError::WouldBlock) => Ok(LockStatus::Held(read_record(&mut file))),
            Err(TryLockError::Error(source)) => Err(StateError::LockFailed {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Clears a stale record (a holder that died without releasing) and returns it. Refuses with
    /// [`StateError::Locked`] while a live process holds the lock; `Ok(None)` if there was none.
    pub fn break_stale(path: &Path, spec: &SpecName) -> Result<Option<LockHolder>, StateError> {
        if !path.exists() {
            return Ok(None);
        }
        let lock = StateLock::acquire(path, spec, "cfxm unlock")?;
        Ok(lock.interrupted.clone())
        // Dropping `lock` truncates the record: the state is free and clean.
    }

    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The previous holder, if it died without releasing the lock (its work was interrupted and
    /// the journal may hold intents without outcomes).
    pub fn interrupted(&self) -> Option<&LockHolder> {
        self.interrupted.as_ref()
    }

    /// Releases the lock now (dropping does the same).
    pub fn release(self) {}
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // An empty file means "released cleanly"; then the kernel drops the flock with the
        // descriptor. Errors are ignored: at worst the next holder reports an interruption.
        let _ = self.file.set_len(0);
        let _ = self.file.sync_data();
        let _ = self.file.unlock();
    }
}

fn read_record(file: &mut File) -> Option<LockHolder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    let line = text.lines().next()?.trim();
    serde_json::from_str(line).ok()
}

fn current_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var)
            && !u.is_empty()
        {
            return u;
        }
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    format!("uid {}", unsafe { libc::geteuid() })
}

fn current_host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or errs.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    use super::*;

    fn spec() -> SpecName {
        SpecName::new("s1")
    }

    #[test]
    fn a_second_handle_is_refused_with_the_holder_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("lock");
        let first = StateLock::acquire(&path, &spec(), "cfxm apply").unwrap();
        assert_eq!(first.holder().pid, std::process::id());
        assert!(first.interrupted().is_none());

        let err = StateLock::acquire(&path, &spec(), "cfxm destroy").unwrap_err();
        let StateError::Locked { holder, .. } = &err else {
            panic!("expected Locked, got {err:?}");
        };
        assert_eq!(holder.as_deref(), Some(first.holder()));
        let msg = err.to_string();
        assert!(msg.contains("spec `s1` is locked by"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("`cfxm apply`"), "{msg}");
        assert!(
            matches!(StateLock::inspect(&path).unwrap(), LockStatus::Held(Some(h)) if h == *first.holder())
        );

        drop(first);
        assert_eq!(StateLock::inspect(&path).unwrap(), LockStatus::Free);
        let second = StateLock::acquire(&path, &spec(), "cfxm destroy").unwrap();
        assert!(
            second.interrupted().is_none(),
            "a clean release is not an interruption"
        );
    }

    #[test]
    fn a_record_left_in_an_unlocked_file_is_stale_and_reported_once() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("lock");
        // What a killed holder leaves: its record, and no flock (the kernel dropped it).
        let dead = LockHolder {
            user: "alice".into(),
            pid: u32::MAX - 1,
            host: current_host(),
            started: Utc::now(),
            command: "cfxm apply".into(),
        };
        std::fs::write(&path, serde_json::to_string(&dead).unwrap() + "\n").unwrap();
        assert_eq!(dead.liveness(), Liveness::Dead);
        assert_eq!(
            StateLock::inspect(&path).unwrap(),
            LockStatus::Stale(dead.clone())
        );

        let lock = StateLock::acquire(&path, &spec(), "cfxm apply").unwrap();
        assert_eq!(lock.interrupted(), Some(&dead));
        drop(lock);
        let again = StateLock::acquire(&path, &spec(), "cfxm apply").unwrap();
        assert_eq!(again.interrupted(), None);
    }

    #[test]
    fn break_stale_clears_a_dead_record_but_never_a_live_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("lock");
        assert_eq!(StateLock::break_stale(&path, &spec()).unwrap(), None);

        let dead = LockHolder {
            pid: u32::MAX - 1,
            ..LockHolder::current("cfxm apply")
        };
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();
        assert_eq!(StateLock::break_stale(&path, &spec()).unwrap(), Some(dead));
        assert_eq!(StateLock::inspect(&path).unwrap(), LockStatus::Free);

        let live = StateLock::acquire(&path, &spec(), "cfxm apply").unwrap();
        assert!(matches!(
            StateLock::break_stale(&path, &spec()),
            Err(StateError::Locked { .. })
        ));
        assert_eq!(
            StateLock::inspect(&path).unwrap(),
            LockStatus::Held(Some(live.holder().clone()))
        );
    }

    #[test]
    fn another_host_is_not_judged_by_local_pids() {
        let h = LockHolder {
            host: "not-this-host.example".into(),
            ..LockHolder::current("cfxm apply")
        };
        assert_eq!(h.liveness(), Liveness::OtherHost);
        assert_eq!(LockHolder::current("x").liveness(), Liveness::Running);
    }

    /// Env var that turns this test binary into the lock-holding child of the test below.
    const CHILD_ENV: &str = "CFXM_TEST_LOCK_CHILD";

    /// Two processes: a child (this test binary re-run) takes the lock; the parent is refused
    /// and told the child's pid; the child is SIGKILLed; the parent then sees a stale lock with
    /// a dead pid and takes it over, learning whom it interrupted.
    #[test]
    fn lock_is_exclusive_across_processes_and_freed_by_a_crash() {
        if let Some(path) = std::env::var_os(CHILD_ENV) {
            // Child role: hold the lock until stdin closes (or until killed).
            let lock = StateLock::acquire(Path::new(&path), &spec(), "cfxm test-child").unwrap();
            println!("LOCKED {}", lock.holder().pid);
            std::io::stdout().flush().unwrap();
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("lock");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "state::lock::tests::lock_is_exclusive_across_processes_and_freed_by_a_crash",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Read the child's report on a thread, so a child that never reports fails the test
        // after a deadline instead of hanging it.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness may print `test <name> ... ` before our text on the same line.
                if let Some((_, pid)) = line.split_once("LOCKED ") {
                    let _ = tx.send(pid.trim().parse::<u32>().unwrap());
                    break;
                }
            }
        });
        let child_pid = match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(pid) => pid,
            Err(e) => {
                let _ = child.kill();
                panic!("the child never reported holding the lock: {e}");
            }
        };
        assert_eq!(child_pid, child.id());

        let err = StateLock::acquire(&path, &spec(), "cfxm apply").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("pid {child_pid}")), "{msg}");
        assert!(msg.contains("`cfxm test-child`"), "{msg}");

        child.kill().unwrap(); // SIGKILL: no destructor runs, the record stays
        child.wait().unwrap(); // reap it, so its pid no longer exists
        let LockStatus::Stale(stale) = StateLock::inspect(&path).unwrap() else {
            panic!("a killed holder's lock must read as stale");
        };
        assert_eq!(stale.pid, child_pid);
        assert_eq!(stale.liveness(), Liveness::Dead);

        let lock = StateLock::acquire(&path, &spec(), "cfxm apply").unwrap();
        assert_eq!(lock.interrupted().map(|h| h.pid), Some(child_pid));
    }
}
