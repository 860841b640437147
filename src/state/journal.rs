//! The journal, `journal.jsonl`: cfxm's append-only memory of what it asked the cloud to do and
//! which experiment stages ran (DESIGN §5, §9).
//!
//! One JSON object per line, each with a serial that only grows:
//!
//! ```text
//! {"serial":7,"at":"…","kind":"intent","address":"aliyun/ap-southeast-1/hosts","action":"RunInstances","client_token":"cfxm-3f…-0","params":{…}}
//! {"serial":8,"at":"…","kind":"outcome","intent":7,"result":"succeeded","ids":["i-t4n1","i-t4n2"]}
//! {"serial":9,"at":"…","kind":"stage","stage":"topology","fingerprint":"9a…","status":"succeeded","outputs":{…}}
//! ```
//!
//! # The write-ahead rule
//! Before every cloud mutation, an [`Intent`] is appended and fsynced ([`Journal::intent`]); only
//! then is the call made; afterwards its [`CallOutcome`] (ids on success, the error class on
//! failure) is appended. A crash between the two leaves an intent without an outcome, which
//! [`JournalLog::pending_intents`] lists on the next run: "this RunInstances with ClientToken X
//! may have happened". Since instances are tagged in the create call and the token makes the call
//! idempotent (aliyun-api.md §4.5), recovery re-issues the same call with the same token and
//! parameters (the cloud returns the original ids, creating nothing new) or re-discovers by tags.
//! `apply::mutation::journaled` wraps a call in this rule and the retry policy.
//!
//! # Crash tolerance
//! Each entry is written with one `write` and fsynced. A crash mid-write can leave a partial last
//! line; reading treats an unterminated or unparsable *last* line as a torn tail, reports it
//! ([`JournalLog::torn_tail`]) and ignores it (its append never returned, so its call never
//! happened). `SpecState::journal` (via `Journal::open`) cuts it off before appending and says so ([`Journal::repaired`]).
//! A bad line anywhere else is not a crash artifact: [`StateError::JournalCorrupt`].
//!
//! Entries pass through the secret guard (`state::secret`): intent parameters must not carry
//! credentials, and a [`Secret`](super::Secret) inside them makes the append fail.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StateError;
use super::address::Address;
use super::atomic::sync_dir;
use super::secret::to_guarded_json;
use crate::provider::ErrorClass;

/// An entry's position in the journal. Serials only grow; `Serial(0)` means "empty journal", and
/// a saved plan records the last serial it saw (its basis).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Serial(pub u64);

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// An idempotency token sent with a create call (Aliyun `ClientToken`: ≤ 64 ASCII characters,
/// case-sensitive; same token + same parameters returns the original result).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientToken(String);

impl ClientToken {
    pub const MAX_LEN: usize = 64;

    /// A token from its text; `None` if empty, longer than 64 or not printable ASCII.
    pub fn new(text: impl Into<String>) -> Option<Self> {
        let text = text.into();
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text.bytes().all(|b| b.is_ascii_graphic());
        ok.then_some(ClientToken(text))
    }

    /// A deterministic token, `cfxm-<16 hex>-<generation>`, from a `scope` (e.g. the spec name
    /// and plan fingerprint), the resource address and a generation (e.g. the batch number).
    /// Re-running the same step of the same plan yields the same token, so a crashed apply
    /// re-attaches to what it created instead of creating it twice.
    pub fn derive(scope: &str, address: &Address, generation: u32) -> Self {
        let mut h = Sha256::new();
        h.update(scope.as_bytes());
        h.update([0]);
        h.update(address.as_str().as_bytes());
        let digest = h.finalize();
        ClientToken(format!("cfxm-{}-{generation}", hex(&digest[..8])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ClientToken {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ClientToken::new(s.clone()).ok_or_else(|| format!("`{s}` is not a valid client token"))
    }
}

impl From<ClientToken> for String {
    fn from(t: ClientToken) -> String {
        t.0
    }
}

/// A stage's name, e.g. `topology`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StageName(String);

impl StageName {
    pub fn new(s: impl Into<String>) -> Self {
        StageName(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA-256 of a value's canonical JSON (object keys sorted), in hex: what a stage's inputs
/// were, so a re-run can tell whether they changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Fingerprints any serializable value. Key order in maps does not matter.
    pub fn of<T: Serialize>(value: &T) -> Result<Self, StateError> {
        let json = serde_json::to_value(value).map_err(|e| StateError::Refused {
            what: "fingerprint input",
            reason: e.to_string(),
        })?;
        let mut text = String::new();
        canonical(&json, &mut text);
        Ok(Fingerprint(hex(&Sha256::digest(text.as_bytes()))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// JSON with object keys sorted at every level, whatever map order serde_json was built with.
fn canonical(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// [`ErrorClass`] as recorded in an outcome (without the retry-after hint, which is only
/// meaningful at the time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    Throttled,
    Transient,
    NoCapacity,
    NotFound,
    Conflict,
    Fatal,
}

impl From<ErrorClass> for FailureClass {
    fn from(c: ErrorClass) -> Self {
        match c {
            ErrorClass::Throttled { .. } => FailureClass::Throttled,
            ErrorClass::Transient => FailureClass::Transient,
            ErrorClass::NoCapacity => FailureClass::NoCapacity,
            ErrorClass::NotFound => FailureClass::NotFound,
            ErrorClass::Conflict => FailureClass::Conflict,
            ErrorClass::Fatal => FailureClass::Fatal,
        }
    }
}

/// About to mutate the cloud. Written and fsynced before the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// The resource the call acts on.
    pub address: Address,
    /// The cloud API action, e.g. `RunInstances`, `DeleteInstances`, `CreateVpc`.
    pub action: String,
    /// The idempotency token sent with the call, when the action takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<ClientToken>,
    /// The call's parameters, enough to re-issue it identically (never credentials).
    #[serde(default)]
    pub params: serde_json::Value,
}

/// What became of an intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallOutcome {
    /// The intent's serial.
    pub intent: Serial,
    #[serde(flatten)]
    pub result: OutcomeResult,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum OutcomeResult {
    /// The call succeeded; `ids` are the resource ids it created or acted on (a partial fill of
    /// RunInstances lists the instances it did create).
    Succeeded {
        #[serde(default)]
        ids: Vec<String>,
    },
    /// The call failed for good (after retries); nothing more will come of it.
    Failed { class: FailureClass, error: String },
}

/// Where an experiment stage got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Started and not finished: after a crash, it must run again.
    Running,
    Succeeded,
    Failed,
}

/// One record of an experiment stage: its inputs' fingerprint, status and outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub stage: StageName,
    pub fingerprint: Fingerprint,
    pub status: StageStatus,
    /// What later stages need from this one (peer lists, block counts, log paths...).
    #[serde(default)]
    pub outputs: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Intent(Intent),
    Outcome(CallOutcome),
    Stage(StageRecord),
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub serial: Serial,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub record: Record,
}

/// The partial last line a crash mid-write left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Its line number (1-based).
    pub line: usize,
    /// Length of the journal up to it: the part that is whole.
    pub valid_len: u64,
    /// How many bytes it has.
    pub bytes: u64,
}

impl fmt::Display for TornTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} ({} bytes) was cut short by a crash mid-write and is ignored",
            self.line, self.bytes
        )
    }
}

/// An intent without an outcome: its call may or may not have happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingIntent<'a> {
    pub serial: Serial,
    pub at: DateTime<Utc>,
    pub intent: &'a Intent,
}

/// The journal's contents, read back, with the queries the reconciler needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalLog {
    entries: Vec<Entry>,
    torn: Option<TornTail>,
}

impl JournalLog {
    /// Reads `path`; a missing file is an empty journal.
    pub fn read(path: &Path) -> Result<Self, StateError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(&bytes, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JournalLog::default()),
            Err(e) => Err(StateError::io("read the journal", path, e)),
        }
    }

    /// Parses journal bytes (`path` is for error messages).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, StateError> {
        let corrupt = |line: usize, reason: String| StateError::JournalCorrupt {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let mut log = JournalLog::default();
        let mut offset = 0usize;
        let mut line_no = 0usize;
        while offset < bytes.len() {
            line_no += 1;
            let rest = &bytes[offset..];
            let (line, next, terminated) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], offset + i + 1, true),
                None => (rest, bytes.len(), false),
            };
            let is_last = next == bytes.len();
            if terminated && line.iter().all(u8::is_ascii_whitespace) {
                offset = next;
                continue;
            }
            let torn = TornTail {
                line: line_no,
                valid_len: offset as u64,
                bytes: (bytes.len() - offset) as u64,
            };
            // An entry counts only once its newline is written: without it the append never
            // returned, so the cloud call it announced was never made.
            if !terminated {
                log.torn = Some(torn);
                break;
            }
            let entry: Entry = match serde_json::from_slice(line) {
                Ok(e) => e,
                Err(_) if is_last => {
                    log.torn = Some(torn);
                    break;
                }
                Err(e) => return Err(corrupt(line_no, format!("not a journal entry ({e})"))),
            };
            if entry.serial <= log.last_serial() {
                return Err(corrupt(
                    line_no,
                    format!(
                        "serial {} does not follow {}",
                        entry.serial.0,
                        log.last_serial().0
                    ),
                ));
            }
            log.entries.push(entry);
            offset = next;
        }
        Ok(log)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The serial of the last whole entry (`Serial(0)` when empty).
    pub fn last_serial(&self) -> Serial {
        self.entries.last().map_or(Serial(0), |e| e.serial)
    }

    /// The torn last line found when reading, if any.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// The entry with `serial`.
    pub fn get(&self, serial: Serial) -> Option<&Entry> {
        self.entries
            .binary_search_by_key(&serial, |e| e.serial)
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Intents that have no outcome, oldest first: after a crash, the calls that may have
    /// happened without cfxm learning their result.
    pub fn pending_intents(&self) -> Vec<PendingIntent<'_>> {
        let settled: HashSet<Serial> = self
            .entries
            .iter()
            .filter_map(|e| match &e.record {
                Record::Outcome(o) => Some(o.intent),
                _ => None,
            })
            .collect();
        self.entries
            .iter()
            .filter_map(|e| match &e.record {
                Record::Intent(intent) if !settled.contains(&e.serial) => Some(PendingIntent {
                    serial: e.serial,
                    at: e.at,
                    intent,
                }),
                _ => None,
            })
            .collect()
    }

    /// The outcome recorded for the intent `serial`.
    pub fn outcome_of(&self, intent: Serial) -> Option<&OutcomeResult> {
        self.entries.iter().rev().find_map(|e| match &e.record {
            Record::Outcome(o) if o.intent == intent => Some(&o.result),
            _ => None,
        })
    }

    /// Every intent for `address`, oldest first (e.g. to pick the next token generation).
    pub fn intents_for<'a>(
        &'a self,
        address: &'a Address,
    ) -> impl Iterator<Item = (Serial, &'a Intent)> + 'a {
        self.entries.iter().filter_map(move |e| match &e.record {
            Record::Intent(i) if &i.address == address => Some((e.serial, i)),
            _ => None,
        })
    }

    /// The latest record of each stage.
    pub fn latest_stages(&self) -> BTreeMap<&StageName, (Serial, &StageRecord)> {
        let mut latest = BTreeMap::new();
        for e in &self.entries {
            if let Record::Stage(s) = &e.record {
                latest.insert(&s.stage, (e.serial, s));
            }
        }
        latest
    }

    /// The latest record of one stage.
    pub fn latest_stage(&self, stage: &StageName) -> Option<(Serial, &StageRecord)> {
        self.entries.iter().rev().find_map(|e| match &e.record {
            Record::Stage(s) if &s.stage == stage => Some((e.serial, s)),
            _ => None,
        })
    }
}

/// The journal open for appending. Cheap to clone; clones share one file and one serial
/// counter, so concurrent tasks append in serial order.
#[derive(Debug, Clone)]
pub struct Journal {
    /// The file and the log read back plus everything appended since. The mutex makes
    /// "next serial, write, fsync" one step, so the file's order is the serials' order.
    inner: Arc<Mutex<Writer>>,
    path: Arc<PathBuf>,
    repaired: Option<TornTail>,
}

#[derive(Debug)]
struct Writer {
    file: File,
    /// Bytes in the file that are whole entries.
    len: u64,
    log: JournalLog,
}

impl Journal {
    /// Opens (creating) the journal at `path`, cutting off a torn last line. Callers go through
    /// `SpecState::journal`, which requires the spec's lock.
    pub(crate) fn open(path: &Path) -> Result<Self, StateError> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| StateError::io("open the journal", path, e))?;
        if !existed && let Some(dir) = path.parent() {
            sync_dir(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| StateError::io("read the journal", path, e))?;
        let mut log = JournalLog::parse(&bytes, path)?;
        let mut len = bytes.len() as u64;
        let repaired = log.torn.take();
        if let Some(torn) = &repaired {
            file.set_len(torn.valid_len)
                .and_then(|()| file.sync_data())
                .map_err(|e| StateError::io("cut the torn last line of", path, e))?;
            len = torn.valid_len;
        }
        Ok(Journal {
            inner: Arc::new(Mutex::new(Writer { file, len, log })),
            path: Arc::new(path.to_path_buf()),
            repaired,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The torn last line cut off when the journal was opened, to tell the user.
    pub fn repaired(&self) -> Option<&TornTail> {
        self.repaired.as_ref()
    }

    /// Appends `record` with the next serial and fsyncs it; returns the entry as written.
    /// Blocking (one write and one fsync); async code uses [`Journal::append_async`] or the
    /// helpers below.
    pub fn append(&self, record: Record) -> Result<Entry, StateError> {
        let mut w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let entry = Entry {
            serial: Serial(w.log.last_serial().0 + 1),
            at: Utc::now(),
            record,
        };
        let line = to_guarded_json("journal entry", &entry)? + "\n";
        let written = w
            .file
            .write_all(line.as_bytes())
            .and_then(|()| w.file.sync_data());
        if let Err(e) = written {
            // Leave no partial line for the next append to run into.
            let len = w.len;
            let _ = w.file.set_len(len);
            return Err(StateError::io("append to the journal", &self.path, e));
        }
        w.len += line.len() as u64;
        w.log.entries.push(entry.clone());
        Ok(entry)
    }

    /// [`Journal::append`] on the blocking pool, so an fsync never stalls the async runtime.
    pub async fn append_async(&self, record: Record) -> Result<Entry, StateError> {
        let this = self.clone();
        match tokio::task::spawn_blocking(move || this.append(record)).await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Records an intent (durably) before its cloud call; returns its serial for the outcome.
    pub async fn intent(&self, intent: Intent) -> Result<Serial, StateError> {
        Ok(self.append_async(Record::Intent(intent)).await?.serial)
    }

    /// Records the outcome of the intent `intent`.
    pub async fn outcome(
        &self,
        intent: Serial,
        result: OutcomeResult,
    ) -> Result<Serial, StateError> {
        let record = Record::Outcome(CallOutcome { intent, result });
        Ok(self.append_async(record).await?.serial)
    }

    /// Records a stage's progress.
    pub async fn stage(&self, record: StageRecord) -> Result<Serial, StateError> {
        Ok(self.append_async(Record::Stage(record)).await?.serial)
    }

    pub fn last_serial(&self) -> Serial {
        self.with_log(JournalLog::last_serial)
    }

    /// Runs a query on the log as of now (entries read at open plus those appended since).
    pub fn with_log<R>(&self, query: impl FnOnce(&JournalLog) -> R) -> R {
        let w = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        query(&w.log)
    }

    /// A copy of the log as of now.
    pub fn log(&self) -> JournalLog {
        self.with_log(Clone::clone)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::state::Secret;

    fn addr(s: &str) -> Address {
        Address::new(s).unwrap()
    }

    fn run_instances(token: &str) -> Intent {
        Intent {
            address: addr("aliyun/ap-southeast-1/hosts"),
            action: "RunInstances".into(),
            client_token: ClientToken::new(token),
            params: json!({"Amount": 100, "MinAmount": 1, "ZoneId": "ap-southeast-1a"}),
        }
    }

    fn stage(name: &str, fp: &str, status: StageStatus) -> StageRecord {
        StageRecord {
            stage: StageName::new(name),
            fingerprint: Fingerprint(fp.into()),
            status,
            outputs: json!({}),
            error: None,
        }
    }

    #[test]
    fn entries_round_trip_in_the_documented_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("journal.jsonl");
        let j = Journal::open(&path).unwrap();
        let i = j.append(Record::Intent(run_instances("cfxm-1-0"))).unwrap();
        j.append(Record::Outcome(CallOutcome {
            intent: i.serial,
            result: OutcomeResult::Succeeded {
                ids: vec!["i-1".into(), "i-2".into()],
            },
        }))
        .unwrap();
        j.append(Record::Outcome(CallOutcome {
            intent: i.serial,
            result: OutcomeResult::Failed {
                class: ErrorClass::NoCapacity.into(),
                error: "OperationDenied.NoStock".into(),
            },
        }))
        .unwrap();
        j.append(Record::Stage(stage(
            "topology",
            "ab",
            StageStatus::Succeeded,
        )))
        .unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["serial"], 1);
        assert_eq!(lines[0]["kind"], "intent");
        assert_eq!(lines[0]["action"], "RunInstances");
        assert_eq!(lines[0]["client_token"], "cfxm-1-0");
        assert_eq!(lines[0]["params"]["Amount"], 100);
        assert_eq!(lines[1]["kind"], "outcome");
        assert_eq!(lines[1]["intent"], 1);
        assert_eq!(lines[1]["result"], "succeeded");
        assert_eq!(lines[1]["ids"], json!(["i-1", "i-2"]));
        assert_eq!(lines[2]["result"], "failed");
        assert_eq!(lines[2]["class"], "no_capacity");
        assert_eq!(lines[3]["kind"], "stage");
        assert_eq!(lines[3]["status"], "succeeded");

        let back = JournalLog::read(&path).unwrap();
        assert_eq!(back, j.log());
        assert_eq!(back.last_serial(), Serial(4));
    }

    #[test]
    fn serials_continue_across_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("journal.jsonl");
        Journal::open(&path)
            .unwrap()
            .append(Record::Intent(run_instances("t0")))
            .unwrap();
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.last_serial(), Serial(1));
        let e = j.append(Record::Intent(run_instances("t1"))).unwrap();
        assert_eq!(e.serial, Serial(2));
    }

    #[test]
    fn a_torn_last_line_is_reported_ignored_and_cut_before_appending() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("journal.jsonl");
        let j = Journal::open(&path).unwrap();
        j.append(Record::Intent(run_instances("t0"))).unwrap();
        j.append(Record::Intent(run_instances("t1"))).unwrap();
        drop(j);
        let whole = std::fs::read(&path).unwrap();
        // A crash in the middle of writing entry 3.
        let mut torn = whole.clone();
        torn.extend_from_slice(br#"{"serial":3,"at":"2026-01-01T00:00:00Z","kind":"int"#);
        std::fs::write(&path, &torn).unwrap();

        let log = JournalLog::read(&path).unwrap();
        assert_eq!(log.last_serial(), Serial(2));
        let tail = log.torn_tail().unwrap();
        assert_eq!(tail.line, 3);
        assert_eq!(tail.valid_len, whole.len() as u64);
        assert_eq!(tail.bytes, (torn.len() - whole.len()) as u64);
        assert!(tail.to_string().contains("line 3"), "{tail}");

        let j = Journal::open(&path).unwrap();
        assert_eq!(j.repaired(), Some(tail));
        let e = j.append(Record::Intent(run_instances("t2"))).unwrap();
        assert_eq!(e.serial, Serial(3));
        let after = JournalLog::read(&path).unwrap();
        assert!(after.torn_tail().is_none());
        assert_eq!(after.entries().len(), 3);
    }

    #[test]
    fn a_whole_entry_missing_only_its_newline_is_torn_too() {
        // Its append had not returned, so its call was never made.
        let text = concat!(
            r#"{"serial":1,"at":"2026-01-01T00:00:00Z","kind":"intent","address":"a/b","action":"X","params":null}"#,
            "\n",
            r#"{"serial":2,"at":"2026-01-01T00:00:00Z","kind":"intent","address":"a/b","action":"Y","params":null}"#
        );
        let log = JournalLog::parse(text.as_bytes(), Path::new("j")).unwrap();
        assert_eq!(log.last_serial(), Serial(1));
        assert_eq!(log.torn_tail().map(|t| t.line), Some(2));
    }

    #[test]
    fn garbage_after_the_last_newline_such_as_nul_blocks_is_torn() {
        let mut bytes = br#"{"serial":1,"at":"2026-01-01T00:00:00Z","kind":"stage","stage":"nodes","fingerprint":"f","status":"running"}"#.to_vec();
        bytes.push(b'\n');
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        let log = JournalLog::parse(&bytes, Path::new("j")).unwrap();
        assert_eq!(log.entries().len(), 1);
        assert!(log.torn_tail().is_some());
    }

    #[test]
    fn damage_before_the_last_line_is_an_error_with_the_line() {
        let good = r#"{"serial":1,"at":"2026-01-01T00:00:00Z","kind":"intent","address":"a/b","action":"X"}"#;
        let text = format!(
            "{good}\nnot json\n{}\n",
            good.replace("\"serial\":1", "\"serial\":3")
        );
        let err =
            JournalLog::parse(text.as_bytes(), Path::new("state/s/journal.jsonl")).unwrap_err();
        assert!(
            matches!(err, StateError::JournalCorrupt { line: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("state/s/journal.jsonl"), "{err}");

        let backwards = format!("{}\n{good}\n", good.replace("\"serial\":1", "\"serial\":5"));
        let err = JournalLog::parse(backwards.as_bytes(), Path::new("j")).unwrap_err();
        assert!(
            err.to_string().contains("serial 1 does not follow 5"),
            "{err}"
        );
    }

    #[test]
    fn pending_intents_are_those_without_an_outcome() {
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal::open(&tmp.path().join("j")).unwrap();
        let a = j
            .append(Record::Intent(run_instances("ta")))
            .unwrap()
            .serial;
        let b = j
            .append(Record::Intent(run_instances("tb")))
            .unwrap()
            .serial;
        let c = j
            .append(Record::Intent(run_instances("tc")))
            .unwrap()
            .serial;
        j.append(Record::Outcome(CallOutcome {
            intent: b,
            result: OutcomeResult::Succeeded {
                ids: vec!["i-b".into()],
            },
        }))
        .unwrap();
        let log = j.log();
        let pending: Vec<_> = log
            .pending_intents()
            .iter()
            .map(|p| (p.serial, p.intent.client_token.clone().unwrap().to_string()))
            .collect();
        assert_eq!(pending, vec![(a, "ta".to_owned()), (c, "tc".to_owned())]);
        assert_eq!(
            log.outcome_of(b),
            Some(&OutcomeResult::Succeeded {
                ids: vec!["i-b".into()]
            })
        );
        assert_eq!(log.outcome_of(a), None);
        assert_eq!(
            log.intents_for(&addr("aliyun/ap-southeast-1/hosts"))
                .count(),
            3
        );
        assert_eq!(log.intents_for(&addr("other/x")).count(), 0);
        assert!(matches!(log.get(c).unwrap().record, Record::Intent(_)));
    }

    #[test]
    fn latest_record_per_stage_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal::open(&tmp.path().join("j")).unwrap();
        j.append(Record::Stage(stage("nodes", "f1", StageStatus::Running)))
            .unwrap();
        j.append(Record::Stage(stage("topology", "t1", StageStatus::Failed)))
            .unwrap();
        j.append(Record::Stage(stage("nodes", "f1", StageStatus::Succeeded)))
            .unwrap();
        let log = j.log();
        let latest = log.latest_stages();
        assert_eq!(latest.len(), 2);
        let (serial, nodes) = latest[&StageName::new("nodes")];
        assert_eq!((serial, nodes.status), (Serial(3), StageStatus::Succeeded));
        assert_eq!(
            log.latest_stage(&StageName::new("topology"))
                .map(|(_, r)| r.status),
            Some(StageStatus::Failed)
        );
        assert!(log.latest_stage(&StageName::new("blocks")).is_none());
    }

    #[test]
    fn secrets_in_parameters_are_refused_and_nothing_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("j");
        let j = Journal::open(&path).unwrap();
        let mut intent = run_instances("t");
        intent.params = json!({"Password": "hunter2"});
        assert!(matches!(
            j.append(Record::Intent(intent.clone())),
            Err(StateError::Refused { .. })
        ));
        intent.params = json!({ "key": serde_json::to_value(Secret::new("x")).ok() });
        // A `Secret` cannot even become a JSON value.
        assert_eq!(intent.params["key"], serde_json::Value::Null);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert_eq!(j.last_serial(), Serial(0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_get_distinct_serials_in_file_order() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("j");
        let j = Journal::open(&path).unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..64 {
            let j = j.clone();
            tasks.spawn(async move { j.intent(run_instances(&format!("t{n}"))).await.unwrap() });
        }
        let mut serials: Vec<u64> = tasks.join_all().await.into_iter().map(|s| s.0).collect();
        serials.sort_unstable();
        assert_eq!(serials, (1..=64).collect::<Vec<_>>());
        let log = JournalLog::read(&path).unwrap();
        assert_eq!(log.entries().len(), 64);
        assert_eq!(log.last_serial(), Serial(64));
    }

    #[test]
    fn client_tokens_are_deterministic_short_and_scoped() {
        let a = addr("aliyun/ap-southeast-1/hosts");
        let t = ClientToken::derive("latency-1k/plan-9", &a, 3);
        assert_eq!(t, ClientToken::derive("latency-1k/plan-9", &a, 3));
        assert_ne!(t, ClientToken::derive("latency-1k/plan-9", &a, 4));
        assert_ne!(t, ClientToken::derive("latency-1k/plan-8", &a, 3));
        assert_ne!(
            t,
            ClientToken::derive("latency-1k/plan-9", &addr("aliyun/cn-hongkong/hosts"), 3)
        );
        assert!(t.as_str().starts_with("cfxm-") && t.as_str().ends_with("-3"));
        assert!(t.as_str().len() <= ClientToken::MAX_LEN);
        assert!(ClientToken::new("x".repeat(65)).is_none());
        assert!(ClientToken::new("has space").is_none());
        assert!(ClientToken::new("").is_none());
    }

    #[test]
    fn fingerprints_ignore_key_order_but_not_values() {
        let a = Fingerprint::of(&json!({"a": 1, "b": {"x": [1, 2], "y": "z"}})).unwrap();
        let b = Fingerprint::of(&json!({"b": {"y": "z", "x": [1, 2]}, "a": 1})).unwrap();
        let c = Fingerprint::of(&json!({"a": 1, "b": {"x": [2, 1], "y": "z"}})).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.as_str().len(), 64);
    }
}
