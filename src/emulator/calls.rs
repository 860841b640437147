//! The call log: one record per API request, for tests and benchmarks to assert on
//! ("exactly one RunInstances", "every call signed with V3") and for `GET /_emulator/calls`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// One API request and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Position in the log, from 1; survives trimming.
    pub seq: u64,
    /// Wall-clock time the request arrived (RFC 3339).
    pub at: String,
    /// `ecs` or `vpc`; empty when the request could not be routed.
    pub api: String,
    pub action: String,
    pub region: String,
    /// `V3`, `V1` or empty (unsigned / unparseable).
    pub signature: String,
    pub status: u16,
    /// The error code, when the call failed.
    pub code: Option<String>,
    pub request_id: String,
    /// Real time spent, including injected latency.
    pub latency_ms: f64,
}

/// The most recent calls, bounded so a long-running emulator does not grow without limit.
#[derive(Debug)]
pub struct CallLog {
    records: VecDeque<CallRecord>,
    next_seq: u64,
    capacity: usize,
}

impl CallLog {
    pub fn new(capacity: usize) -> Self {
        Self {
            records: VecDeque::new(),
            next_seq: 1,
            capacity: capacity.max(1),
        }
    }

    pub fn push(&mut self, mut record: CallRecord) {
        record.seq = self.next_seq;
        self.next_seq += 1;
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    /// Records with `seq > since`.
    pub fn since(&self, since: u64) -> Vec<CallRecord> {
        self.records
            .iter()
            .filter(|r| r.seq > since)
            .cloned()
            .collect()
    }

    pub fn clear(&mut self) {
        self.records.clear();
    }
}
