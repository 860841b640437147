//! What the executor tells the outside world while it works: [`ApplyEvent`]s sent to a
//! [`Reporter`]. Libraries never print (STYLE §9); the CLI implements `Reporter` with progress
//! bars, tests record events with [`EventLog`].
//!
//! Events for one node arrive in order: `Started`, any number of `Progress` and `Retried`, then
//! exactly one of `Finished(Applied)` / `Finished(Failed)`; or, for a node that never starts,
//! exactly one `Skipped` or `Cancelled`. A failure is reported once, by the failed node;
//! its dependents' `Skipped` events name it as `upstream` instead of repeating its error.

use std::sync::Mutex;
use std::time::Duration;

use petgraph::graph::NodeIndex;

use crate::provider::ErrorClass;

/// One thing that happened to one node of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyEvent {
    /// The node, as indexed in the graph handed to `Executor::run`.
    pub node: NodeIndex,
    pub kind: ApplyEventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApplyEventKind {
    /// The node's work began.
    Started,
    /// The work reports how far it got (e.g. hosts running / wanted).
    Progress(Progress),
    /// A cloud call failed and will be retried (from `apply::retry`).
    Retried(RetryNotice),
    /// The work ended.
    Finished(Finish),
    /// Not run because `upstream` (the root cause, itself `Failed`) failed.
    Skipped { upstream: NodeIndex },
    /// Not run because the apply was cancelled.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Units done and wanted, when the work counts something.
    pub done: Option<u64>,
    pub total: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryNotice {
    /// The attempt that failed (1 for the first call).
    pub attempt: u32,
    /// How long until the next attempt.
    pub delay: Duration,
    pub class: ErrorClass,
    /// The failure, as displayed.
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Applied,
    /// The root cause, displayed (a panic in the work is reported here too).
    Failed {
        error: String,
    },
}

/// Receives events. Called from the executor's task and from work tasks, so it must be cheap and
/// must not block: hand the event to a channel or a progress bar and return.
pub trait Reporter: Send + Sync + 'static {
    fn report(&self, event: ApplyEvent);
}

/// Drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _: ApplyEvent) {}
}

/// Keeps every event, in order (for tests and for `--format json` reports).
#[derive(Debug, Default)]
pub struct EventLog(Mutex<Vec<ApplyEvent>>);

impl EventLog {
    pub fn events(&self) -> Vec<ApplyEvent> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The kinds of events for one node, in order.
    pub fn of(&self, node: NodeIndex) -> Vec<ApplyEventKind> {
        self.events()
            .into_iter()
            .filter(|e| e.node == node)
            .map(|e| e.kind)
            .collect()
    }
}

impl Reporter for EventLog {
    fn report(&self, event: ApplyEvent) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event);
    }
}

/// Forwards events to a channel; a closed channel drops them (the UI went away, the work goes
/// on).
impl Reporter for tokio::sync::mpsc::UnboundedSender<ApplyEvent> {
    fn report(&self, event: ApplyEvent) {
        let _ = self.send(event);
    }
}
