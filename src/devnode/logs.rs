//! The node's log files, byte for byte as the analysis reads them (conflux-node.md §3).
//!
//! `conflux.log` lines use the massive-test branch's log4rs pattern
//! `{d} {h({l}):5.5} {T:<20.20} [{i:8.8}] {t:12.12} - {m}{n}`: the time in chrono `%+` form
//! in UTC with all nine fractional digits, the level padded to 5, the thread name to 20, the OS
//! thread id to 8, the target cut to 12, then ` - ` and the message. The time is taken when the
//! event happens, not when the line is flushed, so the analyzer can measure latency from it.
//!
//! Lines are buffered in memory and written whole (a line is never split across two writes), so
//! even a killed node leaves no half line behind; `flush` runs on a timer and at shutdown.
//!
//! `metrics.log` lines are the node's file reporter format, `<unix ms>, <group>, Group, {k: v, …}`.

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::types::H256;

/// Log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// Parses a `log_level` value; `Some(None)` is `off`.
    pub fn parse_filter(s: &str) -> Option<Option<Level>> {
        Some(match s.to_ascii_lowercase().as_str() {
            "off" => None,
            "error" => Some(Level::Error),
            "warn" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            "trace" => Some(Level::Trace),
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }
}

/// Thread names shown in the `{T}` field, after the node's own threads.
pub mod thread {
    /// Network I/O: messages from peers.
    pub const IO: &str = "IO Worker #1";
    /// The JSON-RPC HTTP server (block generation requests).
    pub const RPC: &str = "http.worker0";
    /// The consensus worker.
    pub const CONSENSUS: &str = "Consensus Worker";
    /// The periodic statistics reporter.
    pub const STATISTICS: &str = "Statistics";
    /// The built-in transaction generator.
    pub const TXGEN: &str = "txgen";
    /// Start-up and shutdown.
    pub const MAIN: &str = "main";
}

/// Targets (module paths) shown in the `{t}` field; the pattern keeps their first 12 characters.
pub mod target {
    pub const SYNC: &str = "cfxcore::sync::synchronization_graph";
    pub const SYNC_MSG: &str = "cfxcore::sync::message::get_compact_blocks_response";
    pub const CONSENSUS: &str = "cfxcore::consensus::consensus_inner::consensus_new_block_handler";
    pub const STATISTICS: &str = "cfxcore::statistics";
    pub const TX_DATA: &str = "cfxcore::block_data_manager::tx_data_manager";
    pub const ASSEMBLER: &str = "blockgen::assembler";
    pub const BLOCK_EVENT: &str = "block_event_record";
    pub const NETWORK: &str = "network::service";
    pub const CLIENT: &str = "client::common";
    pub const TXGEN: &str = "txgen";
}

enum Sink {
    File(File),
    Stdout,
}

/// `conflux.log`: buffered, whole-line writes, timestamps taken at the event.
pub struct Logger {
    sink: Sink,
    buf: Vec<u8>,
    level: Option<Level>,
    /// The `{i}` field: the OS thread id. The node runs on one thread (the process's main
    /// thread), whose id is the process id.
    tid: u32,
}

/// Writes a chrono `%+` timestamp in UTC with nine fractional digits.
fn write_time(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}+00:00",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() % 1_000_000_000
    );
}

/// The first `n` characters of `s` (the pattern's `.N` truncation).
fn cut(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Logger {
    /// Opens `path` for appending (creating its directory, relative to the working directory as
    /// the node does), or logs to stdout when the config has no `log_file`.
    pub fn open(path: Option<&Path>, level: Option<Level>) -> io::Result<Self> {
        let sink = match path {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                Sink::File(OpenOptions::new().create(true).append(true).open(p)?)
            }
            None => Sink::Stdout,
        };
        Ok(Self {
            sink,
            buf: Vec::with_capacity(64 * 1024),
            level,
            tid: std::process::id(),
        })
    }

    /// Whether lines of `level` are written.
    pub fn enabled(&self, level: Level) -> bool {
        self.level.is_some_and(|l| level <= l)
    }

    /// Logs one line timestamped now.
    pub fn log(&mut self, level: Level, thread: &str, target: &str, msg: fmt::Arguments<'_>) {
        if self.enabled(level) {
            self.log_at(Utc::now(), level, thread, target, msg);
        }
    }

    /// Logs one line with the time the event happened.
    pub fn log_at(
        &mut self,
        time: DateTime<Utc>,
        level: Level,
        thread: &str,
        target: &str,
        msg: fmt::Arguments<'_>,
    ) {
        if !self.enabled(level) {
            return;
        }
        let start = self.buf.len();
        write_time(&mut self.buf, &time);
        let tid = self.tid.to_string();
        let _ = write!(
            self.buf,
            " {:<5} {:<20} [{:<8}] {:<12} - ",
            level.as_str(),
            cut(thread, 20),
            cut(&tid, 8),
            cut(target, 12)
        );
        let _ = self.buf.write_fmt(msg);
        // A message never spans lines: a newline inside one would break every line parser.
        for b in &mut self.buf[start..] {
            if *b == b'\n' {
                *b = b' ';
            }
        }
        self.buf.push(b'\n');
        if self.buf.len() >= 256 * 1024 {
            self.flush();
        }
    }

    /// Writes the buffered lines. Errors (a full disk) drop the lines rather than the node.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let _ = match &mut self.sink {
            Sink::File(f) => f.write_all(&self.buf),
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&self.buf).and_then(|_| out.flush())
            }
        };
        self.buf.clear();
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The eight block events, in enum order; the last three happen only on the local pivot chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockEvent {
    HeaderReady = 0,
    BodyReady,
    SyncGraph,
    ConsensysGraphInsert,
    ConsensysGraphReady,
    ComputeEpoch,
    NotifyTxPool,
    TxPoolUpdated,
}

const EVENT_KEYS: [&str; 8] = [
    "header_ready",
    "body_ready",
    "sync_graph",
    "consensys_graph_insert",
    "consensys_graph_ready",
    "compute_epoch",
    "notify_tx_pool",
    "tx_pool_updated",
];

/// One block's event record: nanoseconds since the block was first announced to this node.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub hash: H256,
    pub start_wall: DateTime<Utc>,
    pub start: Instant,
    events: [Option<u64>; 8],
    /// `custom_sync_to_con_<k>`: the hand-off from the sync graph to consensus, five stamps.
    sync_to_con: Vec<u64>,
    /// Gauges, by name.
    gauges: Vec<(&'static str, u64)>,
}

impl EventRecord {
    /// Starts a record for a block first seen at `start`.
    pub fn new(hash: H256, start_wall: DateTime<Utc>, start: Instant) -> Self {
        Self {
            hash,
            start_wall,
            start,
            events: [None; 8],
            sync_to_con: Vec::new(),
            gauges: Vec::new(),
        }
    }

    fn since_start(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// Records `event` as happening at `at`.
    pub fn set(&mut self, event: BlockEvent, at: Instant) {
        self.events[event as usize] = Some(self.since_start(at));
    }

    /// Records `event` as happening at the start (a node's own block: header and body are ready
    /// when it is made).
    pub fn set_zero(&mut self, event: BlockEvent) {
        self.events[event as usize] = Some(0);
    }

    /// Appends a `custom_sync_to_con_<k>` stamp.
    pub fn stamp_sync_to_con(&mut self, at: Instant) {
        let v = self.since_start(at);
        self.sync_to_con.push(v);
    }

    /// Sets a gauge (`gauge_<name>`).
    pub fn gauge(&mut self, name: &'static str, value: u64) {
        self.gauges.push((name, value));
    }

    /// Whether all eight events are recorded.
    pub fn is_complete(&self) -> bool {
        self.events.iter().all(Option::is_some)
    }

    /// The message text: `Block events record <status>. hash: …, start_timestamp: …, …`.
    pub fn message(&self) -> String {
        let status = if self.is_complete() {
            "complete"
        } else {
            "partially complete"
        };
        let mut m = format!(
            "Block events record {status}. hash: {:?}, start_timestamp: {:?}",
            self.hash, self.start_wall
        );
        for (key, value) in EVENT_KEYS.iter().zip(self.events) {
            if let Some(v) = value {
                let _ = write!(m, ", {key}: {v}");
            }
        }
        for (k, v) in self.sync_to_con.iter().enumerate() {
            let _ = write!(m, ", custom_sync_to_con_{k}: {v}");
        }
        let mut gauges = self.gauges.clone();
        gauges.sort_by_key(|(name, _)| *name);
        for (name, v) in gauges {
            let _ = write!(m, ", gauge_{name}: {v}");
        }
        m
    }
}

/// An exponentially weighted moving average ticking every 5 s, as metrics libraries compute
/// meters' m1/m5/m15 rates.
#[derive(Debug, Clone)]
struct Ewma {
    alpha: f64,
    rate: f64,
    init: bool,
}

impl Ewma {
    fn new(minutes: f64) -> Self {
        Self {
            alpha: 1.0 - (-5.0 / 60.0 / minutes).exp(),
            rate: 0.0,
            init: false,
        }
    }

    fn tick(&mut self, count_in_tick: u64) {
        let instant = count_in_tick as f64 / 5.0;
        if self.init {
            self.rate += self.alpha * (instant - self.rate);
        } else {
            self.rate = instant;
            self.init = true;
        }
    }
}

/// A meter: a count and its rates (per second).
#[derive(Debug, Clone)]
pub struct Meter {
    count: u64,
    uncounted: u64,
    m1: Ewma,
    m5: Ewma,
    m15: Ewma,
    started: Instant,
    last_tick: Instant,
    last_report: (Instant, u64),
}

impl Meter {
    pub fn new(now: Instant) -> Self {
        Self {
            count: 0,
            uncounted: 0,
            m1: Ewma::new(1.0),
            m5: Ewma::new(5.0),
            m15: Ewma::new(15.0),
            started: now,
            last_tick: now,
            last_report: (now, 0),
        }
    }

    pub fn mark(&mut self, n: u64) {
        self.count += n;
        self.uncounted += n;
    }

    fn tick_to(&mut self, now: Instant) {
        while now.duration_since(self.last_tick) >= Duration::from_secs(5) {
            let n = std::mem::take(&mut self.uncounted);
            self.m1.tick(n);
            self.m5.tick(n);
            self.m15.tick(n);
            self.last_tick += Duration::from_secs(5);
        }
    }

    /// `name.count: …, name.m1: …, name.m5: …, name.m15: …, name.mean: …, name.m0: …`; m0 is
    /// the rate since the previous report.
    pub fn report(&mut self, name: &str, now: Instant) -> String {
        self.tick_to(now);
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let mean = if elapsed > 0.0 {
            self.count as f64 / elapsed
        } else {
            0.0
        };
        let (then, then_count) = self.last_report;
        let span = now.duration_since(then).as_secs_f64();
        let m0 = if span > 0.0 {
            (self.count - then_count) as f64 / span
        } else {
            0.0
        };
        self.last_report = (now, self.count);
        format!(
            "{name}.count: {}, {name}.m1: {:.2}, {name}.m5: {:.2}, {name}.m15: {:.2}, \
             {name}.mean: {:.2}, {name}.m0: {:.2}",
            self.count, self.m1.rate, self.m5.rate, self.m15.rate, mean, m0
        )
    }
}

/// `metrics.log`, appended one report at a time.
pub struct MetricsFile {
    file: File,
}

impl MetricsFile {
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Self {
            file: OpenOptions::new().create(true).append(true).open(path)?,
        })
    }

    /// Writes one report: a `Group` line per `(group, items)`, all with the same time.
    pub fn write(&mut self, now_ms: i64, groups: &[(&str, Vec<String>)]) {
        let mut out = String::new();
        for (group, items) in groups {
            let _ = writeln!(out, "{now_ms}, {group}, Group, {{{}}}", items.join(", "));
        }
        let _ = self.file.write_all(out.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(level: Level, thread: &str, target: &str, msg: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/conflux.log");
        let mut l = Logger::open(Some(&path), Some(Level::Debug)).unwrap();
        let t = DateTime::parse_from_rfc3339("2026-03-04T08:53:44.123456789+00:00")
            .unwrap()
            .with_timezone(&Utc);
        l.tid = 4242;
        l.log_at(t, level, thread, target, format_args!("{msg}"));
        l.log(Level::Trace, thread, target, format_args!("filtered out"));
        l.flush();
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn prefix_follows_the_log4rs_pattern() {
        assert_eq!(
            line(Level::Debug, thread::IO, target::SYNC, "new block"),
            "2026-03-04T08:53:44.123456789+00:00 DEBUG IO Worker #1         [4242    ] \
             cfxcore::syn - new block\n"
        );
        assert_eq!(
            line(
                Level::Info,
                "a thread name longer than twenty",
                "blockgen",
                "x\ny"
            ),
            "2026-03-04T08:53:44.123456789+00:00 INFO  a thread name longer [4242    ] \
             blockgen     - x y\n"
        );
    }

    #[test]
    fn whole_seconds_keep_nine_digits() {
        let mut out = Vec::new();
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        write_time(&mut out, &t);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2023-11-14T22:13:20.000000000+00:00"
        );
    }

    #[test]
    fn event_record_text_orders_keys() {
        let start = Instant::now();
        let wall = DateTime::parse_from_rfc3339("2026-03-04T08:53:44.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut r = EventRecord::new(H256([1; 32]), wall, start);
        r.set_zero(BlockEvent::HeaderReady);
        r.set_zero(BlockEvent::BodyReady);
        for e in [
            BlockEvent::SyncGraph,
            BlockEvent::ConsensysGraphInsert,
            BlockEvent::ConsensysGraphReady,
        ] {
            r.set(e, start + Duration::from_nanos(1500));
        }
        r.stamp_sync_to_con(start + Duration::from_nanos(1000));
        r.gauge("con_worker_queue", 0);
        r.gauge("cmpt_recover_rate", 250);
        assert!(!r.is_complete());
        assert_eq!(
            r.message(),
            format!(
                "Block events record partially complete. hash: {:?}, start_timestamp: \
                 2026-03-04T08:53:44.123456789Z, header_ready: 0, body_ready: 0, sync_graph: 1500, \
                 consensys_graph_insert: 1500, consensys_graph_ready: 1500, custom_sync_to_con_0: \
                 1000, gauge_cmpt_recover_rate: 250, gauge_con_worker_queue: 0",
                H256([1; 32])
            )
        );
        for e in [
            BlockEvent::ComputeEpoch,
            BlockEvent::NotifyTxPool,
            BlockEvent::TxPoolUpdated,
        ] {
            r.set(e, start + Duration::from_nanos(2000));
        }
        assert!(
            r.message()
                .starts_with("Block events record complete. hash: ")
        );
    }

    #[test]
    fn meter_reports_rates() {
        let t0 = Instant::now();
        let mut m = Meter::new(t0);
        m.mark(50);
        let r = m.report("good_tps", t0 + Duration::from_secs(10));
        assert!(r.starts_with("good_tps.count: 50, good_tps.m1: "), "{r}");
        assert!(r.contains("good_tps.mean: 5.00"), "{r}");
        assert!(r.ends_with("good_tps.m0: 5.00"), "{r}");
    }
}
