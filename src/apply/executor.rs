//! The executor: a ready-queue over a dependency DAG (cargo's `DependencyQueue`, terraform's
//! walker), generic over the work so it holds no cloud code.
//!
//! # Contract
//! - The graph is a petgraph [`DiGraph`]; an edge `a → b` means *b depends on a* (b starts
//!   only after a succeeded). A cycle is refused before anything runs.
//! - A node starts when all its dependencies are `Applied`. Among ready nodes, the one heading the
//!   longest chain of dependents goes first (critical path first, as cargo does), then the lowest
//!   index, so runs are deterministic for a given graph.
//! - At most `parallelism` nodes run at once ([`DEFAULT_PARALLELISM`]: sized for 10,000-node
//!   specs). Work runs as tokio tasks, so it must be `Send + 'static`: the work closure gets
//!   `&N` and clones what its future needs.
//! - When a node fails (its future returns `Err`, or panics), every node downstream of it is
//!   `Skipped { upstream }` naming that root cause, and reported once. Nodes that do not depend on
//!   it keep going: one region's failure never stops another's.
//! - [`Cancel::cancel`] stops new nodes from starting; running nodes finish (they can watch
//!   [`StepContext::cancelled`] to cut long waits short); nodes never started end `Cancelled`.
//!   Dropping the `run` future aborts running tasks outright (a second Ctrl-C).
//! - The executor never prints; it emits [`ApplyEvent`]s to the [`Reporter`] and returns an
//!   [`ApplyReport`] with one [`Outcome`] per node.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use miette::Diagnostic;
use petgraph::Direction::{Incoming, Outgoing};
use petgraph::graph::{DiGraph, NodeIndex};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::event::{ApplyEvent, ApplyEventKind, Finish, Progress, Reporter, RetryNotice};

/// Nodes in flight by default. A 10,000-node spec has ~100 RunInstances batches, a few hundred
/// infra changes over 9+ regions and per-host waits; cloud calls are paced by the rate buckets,
/// not by this number, so it only bounds memory and open connections. A few hundred keeps every
/// region busy (Terraform's 10 would serialize a large fleet).
pub const DEFAULT_PARALLELISM: usize = 256;

/// A cancellation signal shared by the executor and the work (the CLI trips it on Ctrl-C).
#[derive(Debug, Clone)]
pub struct Cancel {
    /// `true` once cancelled; a watch channel so any number of tasks can await it.
    flag: Arc<watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel {
            flag: Arc::new(watch::channel(false).0),
        }
    }
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.flag.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.flag.borrow()
    }

    /// Resolves once cancelled (immediately if already).
    pub async fn cancelled(&self) {
        let mut rx = self.flag.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// Returned by [`StepContext::sleep`] when the apply was cancelled during the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the apply was cancelled")]
pub struct Cancelled;

/// What a node's work gets besides its node: where to report progress, and the cancel signal.
#[derive(Clone)]
pub struct StepContext {
    node: NodeIndex,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
}

impl fmt::Debug for StepContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepContext")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl StepContext {
    /// A context outside any executor run (e.g. discovery, which retries but is not a graph):
    /// events go to `reporter` under `node`.
    pub fn new(node: NodeIndex, reporter: Arc<dyn Reporter>, cancel: Cancel) -> Self {
        StepContext {
            node,
            reporter,
            cancel,
        }
    }

    pub fn node(&self) -> NodeIndex {
        self.node
    }

    /// Reports a step of progress in words.
    pub fn progress(&self, message: impl Into<String>) {
        self.emit(ApplyEventKind::Progress(Progress {
            done: None,
            total: None,
            message: message.into(),
        }));
    }

    /// Reports progress as a count, e.g. `progress_count(37, 100, "hosts running")`.
    pub fn progress_count(&self, done: u64, total: u64, message: impl Into<String>) {
        self.emit(ApplyEventKind::Progress(Progress {
            done: Some(done),
            total: Some(total),
            message: message.into(),
        }));
    }

    /// Reports a retry (`apply::retry` calls this; so may a client that retries on its own).
    pub fn retried(&self, notice: RetryNotice) {
        self.emit(ApplyEventKind::Retried(notice));
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Sleeps for `duration`, or less if the apply is cancelled meanwhile.
    pub async fn sleep(&self, duration: Duration) -> Result<(), Cancelled> {
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(()),
            () = self.cancel.cancelled() => Err(Cancelled),
        }
    }

    fn emit(&self, kind: ApplyEventKind) {
        self.reporter.report(ApplyEvent {
            node: self.node,
            kind,
        });
    }
}

/// How one node ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T, E> {
    Applied(T),
    Failed(E),
    /// The work panicked: a bug, reported like a failure (dependents are skipped).
    Panicked(String),
    /// Not run: `upstream` failed (the root cause, never another skipped node).
    Skipped {
        upstream: NodeIndex,
    },
    /// Not run: the apply was cancelled first.
    Cancelled,
}

impl<T, E> Outcome<T, E> {
    pub fn is_applied(&self) -> bool {
        matches!(self, Outcome::Applied(_))
    }
    /// Failed or panicked: a root cause.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_) | Outcome::Panicked(_))
    }
}

/// Outcome counts, for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub applied: usize,
    /// Root causes: failed or panicked nodes.
    pub failed: usize,
    pub skipped: usize,
    pub cancelled: usize,
}

/// The result of a run: one outcome per node, indexed like the graph.
#[derive(Debug)]
pub struct ApplyReport<T, E> {
    outcomes: Vec<Outcome<T, E>>,
    /// Wall time of the run (tokio time, so paused-time tests see virtual time).
    pub elapsed: Duration,
    /// Most nodes that ran at once.
    pub peak_in_flight: usize,
}

impl<T, E> ApplyReport<T, E> {
    pub fn outcome(&self, node: NodeIndex) -> &Outcome<T, E> {
        &self.outcomes[node.index()]
    }

    pub fn outcomes(&self) -> impl Iterator<Item = (NodeIndex, &Outcome<T, E>)> {
        self.outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| (NodeIndex::new(i), o))
    }

    pub fn into_outcomes(self) -> Vec<Outcome<T, E>> {
        self.outcomes
    }

    /// The root causes (failed or panicked nodes), each once.
    pub fn failures(&self) -> impl Iterator<Item = (NodeIndex, &Outcome<T, E>)> {
        self.outcomes().filter(|(_, o)| o.is_failure())
    }

    /// The nodes skipped because of `root`.
    pub fn skipped_by(&self, root: NodeIndex) -> Vec<NodeIndex> {
        self.outcomes()
            .filter(|(_, o)| matches!(o, Outcome::Skipped { upstream } if *upstream == root))
            .map(|(n, _)| n)
            .collect()
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for o in &self.outcomes {
            match o {
                Outcome::Applied(_) => c.applied += 1,
                Outcome::Failed(_) | Outcome::Panicked(_) => c.failed += 1,
                Outcome::Skipped { .. } => c.skipped += 1,
                Outcome::Cancelled => c.cancelled += 1,
            }
        }
        c
    }

    /// Every node applied.
    pub fn is_success(&self) -> bool {
        self.outcomes.iter().all(Outcome::is_applied)
    }
}

/// The graph cannot be executed.
#[derive(Debug, Clone, PartialEq, Eq, Error, Diagnostic)]
pub enum ExecutorError {
    #[error("the dependency graph has a cycle through node {}", node.index())]
    #[diagnostic(
        code(cfxm::apply::cycle),
        help(
            "this is a bug in cfxm's planner: plans are acyclic by construction; please report it"
        )
    )]
    Cycle { node: NodeIndex },
}

/// Runs a DAG of work with bounded parallelism.
#[derive(Clone)]
pub struct Executor {
    /// How many nodes run at once: bounds tasks, memory and open connections, not the API rate
    /// (the rate buckets do that).
    parallelism: NonZeroUsize,
    reporter: Arc<dyn Reporter>,
    /// Tripped to stop starting nodes.
    cancel: Cancel,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("parallelism", &self.parallelism)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// An executor with [`DEFAULT_PARALLELISM`] and its own cancel signal.
    pub fn new(reporter: Arc<dyn Reporter>) -> Self {
        Executor {
            parallelism: NonZeroUsize::new(DEFAULT_PARALLELISM).expect("non-zero"),
            reporter,
            cancel: Cancel::new(),
        }
    }

    /// Sets how many nodes may run at once (`--parallelism`).
    pub fn parallelism(mut self, parallelism: NonZeroUsize) -> Self {
        self.parallelism = parallelism;
        self
    }

    /// Uses `cancel` (e.g. one the CLI trips on Ctrl-C) instead of a private one.
    pub fn cancel_with(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    pub fn cancel_handle(&self) -> Cancel {
        self.cancel.clone()
    }

    /// Runs `work` for every node of `graph` in dependency order; returns when every node has an
    /// outcome. `work(&node, ctx)` returns the node's future; it is called on the executor's
    /// task, so it should only clone what the future needs and return.
    pub async fn run<N, Ew, T, E, F, Fut>(
        &self,
        graph: &DiGraph<N, Ew>,
        mut work: F,
    ) -> Result<ApplyReport<T, E>, ExecutorError>
    where
        F: FnMut(&N, StepContext) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let started = Instant::now();
        let order = petgraph::algo::toposort(graph, None)
            .map_err(|c| ExecutorError::Cycle { node: c.node_id() })?;
        let n = graph.node_count();

        // Priority: the length of the longest chain of dependents (critical path first).
        let mut height = vec![0u32; n];
        for &v in order.iter().rev() {
            height[v.index()] = 1 + graph
                .neighbors_directed(v, Outgoing)
                .map(|d| height[d.index()])
                .max()
                .unwrap_or(0);
        }
        // Unfinished dependencies per node (parallel edges count separately, consistently with
        // the per-edge decrement below).
        let mut waiting: Vec<usize> = graph
            .node_indices()
            .map(|v| graph.edges_directed(v, Incoming).count())
            .collect();
        let mut outcomes: Vec<Option<Outcome<T, E>>> = (0..n).map(|_| None).collect();
        let mut ready: BinaryHeap<(u32, Reverse<usize>)> = graph
            .node_indices()
            .filter(|v| waiting[v.index()] == 0)
            .map(|v| (height[v.index()], Reverse(v.index())))
            .collect();

        let mut running: JoinSet<Result<T, E>> = JoinSet::new();
        let mut task_nodes: HashMap<tokio::task::Id, NodeIndex> = HashMap::new();
        let mut peak_in_flight = 0;
        let mut cancelled = self.cancel.is_cancelled();

        loop {
            while !cancelled && running.len() < self.parallelism.get() {
                let Some((_, Reverse(i))) = ready.pop() else {
                    break;
                };
                let node = NodeIndex::new(i);
                self.emit(node, ApplyEventKind::Started);
                let ctx = StepContext::new(node, self.reporter.clone(), self.cancel.clone());
                let handle = running.spawn(work(&graph[node], ctx));
                task_nodes.insert(handle.id(), node);
            }
            peak_in_flight = peak_in_flight.max(running.len());
            if running.is_empty() {
                break;
            }
            let joined = tokio::select! {
                joined = running.join_next_with_id() => joined,
                () = self.cancel.cancelled(), if !cancelled => {
                    cancelled = true;
                    continue;
                }
            };
            let Some(joined) = joined else { break };
            let (node, result) = match joined {
                Ok((id, result)) => (task_nodes.remove(&id), Ok(result)),
                Err(e) => (task_nodes.remove(&e.id()), Err(e)),
            };
            let node = node.expect("every task was registered when spawned");
            let failed = match result {
                Ok(Ok(value)) => {
                    self.emit(node, ApplyEventKind::Finished(Finish::Applied));
                    outcomes[node.index()] = Some(Outcome::Applied(value));
                    for dep in graph.neighbors_directed(node, Outgoing) {
                        let w = &mut waiting[dep.index()];
                        *w -= 1;
                        if *w == 0 && outcomes[dep.index()].is_none() {
                            ready.push((height[dep.index()], Reverse(dep.index())));
                        }
                    }
                    false
                }
                Ok(Err(error)) => {
                    let text = error.to_string();
                    self.emit(node, finished_failed(text));
                    outcomes[node.index()] = Some(Outcome::Failed(error));
                    true
                }
                Err(join_error) => {
                    let text = if join_error.is_panic() {
                        panic_message(join_error.into_panic())
                    } else {
                        "the task was aborted".to_owned()
                    };
                    self.emit(node, finished_failed(format!("panicked: {text}")));
                    outcomes[node.index()] = Some(Outcome::Panicked(text));
                    true
                }
            };
            if failed {
                self.skip_dependents(graph, node, &mut outcomes);
            }
        }

        // Whatever has no outcome now never started: the run was cancelled.
        let outcomes = outcomes
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                o.unwrap_or_else(|| {
                    self.emit(NodeIndex::new(i), ApplyEventKind::Cancelled);
                    Outcome::Cancelled
                })
            })
            .collect();
        Ok(ApplyReport {
            outcomes,
            elapsed: started.elapsed(),
            peak_in_flight,
        })
    }

    /// Marks everything downstream of the failed `root` as skipped because of it.
    fn skip_dependents<N, Ew, T, E>(
        &self,
        graph: &DiGraph<N, Ew>,
        root: NodeIndex,
        outcomes: &mut [Option<Outcome<T, E>>],
    ) {
        let mut stack: Vec<NodeIndex> = graph.neighbors_directed(root, Outgoing).collect();
        while let Some(v) = stack.pop() {
            // Already decided: skipped by an earlier failure (whose root it keeps).
            if outcomes[v.index()].is_some() {
                continue;
            }
            outcomes[v.index()] = Some(Outcome::Skipped { upstream: root });
            self.emit(v, ApplyEventKind::Skipped { upstream: root });
            stack.extend(graph.neighbors_directed(v, Outgoing));
        }
    }

    fn emit(&self, node: NodeIndex, kind: ApplyEventKind) {
        self.reporter.report(ApplyEvent { node, kind });
    }
}

fn finished_failed(error: String) -> ApplyEventKind {
    ApplyEventKind::Finished(Finish::Failed { error })
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-text panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::apply::event::EventLog;

    /// A synthetic graph: node weights are names; edges `a → b` mean b depends on a.
    fn graph(nodes: &[&'static str], edges: &[(usize, usize)]) -> DiGraph<&'static str, ()> {
        let mut g = DiGraph::new();
        let idx: Vec<_> = nodes.iter().map(|n| g.add_node(*n)).collect();
        for &(a, b) in edges {
            g.add_edge(idx[a], idx[b], ());
        }
        g
    }

    fn executor(parallelism: usize) -> (Executor, Arc<EventLog>) {
        let log = Arc::new(EventLog::default());
        let ex = Executor::new(log.clone()).parallelism(NonZeroUsize::new(parallelism).unwrap());
        (ex, log)
    }

    #[tokio::test(start_paused = true)]
    async fn nodes_start_only_after_all_their_dependencies_succeeded() {
        // vpc → {vsw-a, vsw-b, sg} → hosts → stage
        let g = graph(
            &["vpc", "vsw-a", "vsw-b", "sg", "hosts", "stage"],
            &[(0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4), (4, 5)],
        );
        let (ex, _) = executor(8);
        let log = Arc::new(Mutex::new(Vec::new()));
        let report = ex
            .run(&g, |name, _ctx| {
                let name = *name;
                let log = log.clone();
                async move {
                    log.lock().unwrap().push(format!("start {name}"));
                    // Later siblings finish first, to show order follows edges, not timing.
                    let ms = match name {
                        "vsw-a" => 30,
                        "vsw-b" => 20,
                        _ => 10,
                    };
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    log.lock().unwrap().push(format!("end {name}"));
                    Ok::<_, String>(name.len())
                }
            })
            .await
            .unwrap();
        assert!(report.is_success());
        assert_eq!(report.counts().applied, 6);
        assert_eq!(*report.outcome(NodeIndex::new(4)), Outcome::Applied(5));
        let log = log.lock().unwrap().clone();
        let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
        assert!(pos("end vpc") < pos("start vsw-a"));
        for dep in ["end vsw-a", "end vsw-b", "end sg"] {
            assert!(pos(dep) < pos("start hosts"), "{log:?}");
        }
        assert!(pos("end hosts") < pos("start stage"));
        // vpc 10 ms, then the three in parallel (30 ms), hosts 10, stage 10.
        assert_eq!(report.elapsed, Duration::from_millis(60));
    }

    #[tokio::test(start_paused = true)]
    async fn the_parallelism_bound_is_reached_and_never_exceeded() {
        let names: Vec<&'static str> = vec!["n"; 100];
        let g = graph(&names, &[]);
        let (ex, _) = executor(7);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let report = ex
            .run(&g, |_, _| {
                let in_flight = in_flight.clone();
                let peak = peak.clone();
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, String>(())
                }
            })
            .await
            .unwrap();
        assert!(report.is_success());
        assert_eq!(peak.load(Ordering::SeqCst), 7);
        assert_eq!(report.peak_in_flight, 7);
        // 100 nodes, 7 at a time, 100 ms each: ceil(100 / 7) = 15 waves.
        assert_eq!(report.elapsed, Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_skips_its_dependents_once_and_independent_branches_finish() {
        // Two regions: r1: vpc1 → vsw1 → hosts1 → report; r2: vpc2 → vsw2 → hosts2 → report.
        // vsw1 fails; region 2 must still complete; `report` (depends on both) is skipped.
        let g = graph(
            &["vpc1", "vsw1", "hosts1", "vpc2", "vsw2", "hosts2", "report"],
            &[(0, 1), (1, 2), (2, 6), (3, 4), (4, 5), (5, 6)],
        );
        let (ex, events) = executor(4);
        let report = ex
            .run(&g, |name, _| {
                let name = *name;
                async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if name == "vsw1" {
                        Err("InvalidVpcId.NotFound".to_owned())
                    } else {
                        Ok(())
                    }
                }
            })
            .await
            .unwrap();
        let n = NodeIndex::new;
        assert_eq!(
            *report.outcome(n(1)),
            Outcome::Failed("InvalidVpcId.NotFound".to_owned())
        );
        assert_eq!(*report.outcome(n(2)), Outcome::Skipped { upstream: n(1) });
        assert_eq!(
            *report.outcome(n(6)),
            Outcome::Skipped { upstream: n(1) },
            "the root cause, not the intermediate skipped node"
        );
        for i in [0, 3, 4, 5] {
            assert!(report.outcome(n(i)).is_applied(), "node {i}");
        }
        assert_eq!(
            report.counts(),
            Counts {
                applied: 4,
                failed: 1,
                skipped: 2,
                cancelled: 0
            }
        );
        assert_eq!(report.failures().count(), 1);
        assert_eq!(report.skipped_by(n(1)), vec![n(2), n(6)]);
        assert!(!report.is_success());

        // The error text appears exactly once among all events.
        let with_error = events
            .events()
            .iter()
            .filter(|e| format!("{:?}", e.kind).contains("InvalidVpcId.NotFound"))
            .count();
        assert_eq!(with_error, 1);
        assert_eq!(
            events.of(n(2)),
            vec![ApplyEventKind::Skipped { upstream: n(1) }]
        );
        assert_eq!(
            events.of(n(5)),
            vec![
                ApplyEventKind::Started,
                ApplyEventKind::Finished(Finish::Applied)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn two_failures_upstream_of_one_node_skip_it_once() {
        // a and b both fail; c depends on both.
        let g = graph(&["a", "b", "c"], &[(0, 2), (1, 2)]);
        let (ex, events) = executor(4);
        let report = ex
            .run(&g, |_, _| async { Err::<(), _>("boom") })
            .await
            .unwrap();
        assert_eq!(report.counts().failed, 2);
        assert!(matches!(
            report.outcome(NodeIndex::new(2)),
            Outcome::Skipped { .. }
        ));
        assert_eq!(events.of(NodeIndex::new(2)).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_node_is_a_failure_not_a_crash() {
        let g = graph(&["a", "b", "c"], &[(0, 1)]);
        let (ex, events) = executor(4);
        let report = ex
            .run(&g, |name, _| {
                let name = *name;
                async move {
                    if name == "a" {
                        panic!("bug in a");
                    }
                    Ok::<_, String>(())
                }
            })
            .await
            .unwrap();
        assert_eq!(
            *report.outcome(NodeIndex::new(0)),
            Outcome::Panicked("bug in a".into())
        );
        assert_eq!(
            *report.outcome(NodeIndex::new(1)),
            Outcome::Skipped {
                upstream: NodeIndex::new(0)
            }
        );
        assert!(report.outcome(NodeIndex::new(2)).is_applied());
        assert!(
            events
                .of(NodeIndex::new(0))
                .contains(&ApplyEventKind::Finished(Finish::Failed {
                    error: "panicked: bug in a".into()
                }))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_lets_running_nodes_finish_and_starts_nothing_new() {
        // A chain of 3 plus 10 independent nodes, 2 at a time; cancel while the first wave runs.
        let mut names = vec!["c0", "c1", "c2"];
        names.extend(std::iter::repeat_n("free", 10));
        let g = graph(&names, &[(0, 1), (1, 2)]);
        let (ex, events) = executor(2);
        let cancel = ex.cancel_handle();
        let started = Arc::new(AtomicUsize::new(0));
        let started2 = started.clone();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cancel.cancel();
        });
        let report = ex
            .run(&g, |_, ctx| {
                started2.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    assert!(ctx.is_cancelled(), "cancelled mid-flight");
                    Ok::<_, String>(())
                }
            })
            .await
            .unwrap();
        canceller.await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 2);
        let c = report.counts();
        assert_eq!((c.applied, c.cancelled, c.failed, c.skipped), (2, 11, 0, 0));
        // The chain's head ran first (critical path first).
        assert!(report.outcome(NodeIndex::new(0)).is_applied());
        assert_eq!(
            events.of(NodeIndex::new(1)),
            vec![ApplyEventKind::Cancelled]
        );
        assert_eq!(report.elapsed, Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn work_can_cut_a_long_wait_short_on_cancel() {
        let g = graph(&["waits-for-boot"], &[]);
        let (ex, _) = executor(1);
        let cancel = ex.cancel_handle();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel();
        });
        let report = ex
            .run(&g, |_, ctx| async move {
                ctx.sleep(Duration::from_secs(600))
                    .await
                    .map_err(|c| c.to_string())
            })
            .await
            .unwrap();
        assert_eq!(
            *report.outcome(NodeIndex::new(0)),
            Outcome::Failed("the apply was cancelled".into())
        );
        assert_eq!(report.elapsed, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn critical_path_goes_first_when_parallelism_is_scarce() {
        // With one slot: the head of the long chain (node 3) must start before the lone nodes.
        let g = graph(
            &["lone0", "lone1", "lone2", "h", "h1", "h2"],
            &[(3, 4), (4, 5)],
        );
        let (ex, events) = executor(1);
        ex.run(&g, |_, _| async { Ok::<_, String>(()) })
            .await
            .unwrap();
        let first = events
            .events()
            .into_iter()
            .find(|e| e.kind == ApplyEventKind::Started)
            .unwrap();
        assert_eq!(first.node, NodeIndex::new(3));
    }

    #[tokio::test]
    async fn a_cycle_is_refused_before_anything_runs() {
        let g = graph(&["a", "b", "c"], &[(0, 1), (1, 2), (2, 1)]);
        let (ex, events) = executor(4);
        let err = ex
            .run(&g, |_, _| async { Ok::<_, String>(()) })
            .await
            .unwrap_err();
        assert!(matches!(err, ExecutorError::Cycle { .. }));
        assert!(events.events().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn progress_events_carry_the_node() {
        let g = graph(&["hosts"], &[]);
        let (ex, events) = executor(1);
        ex.run(&g, |_, ctx| async move {
            ctx.progress_count(37, 100, "hosts running");
            ctx.progress("waiting for boot");
            Ok::<_, String>(())
        })
        .await
        .unwrap();
        let kinds = events.of(NodeIndex::new(0));
        assert_eq!(kinds.len(), 4);
        assert_eq!(
            kinds[1],
            ApplyEventKind::Progress(Progress {
                done: Some(37),
                total: Some(100),
                message: "hosts running".into()
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ten_thousand_nodes_with_the_default_parallelism() {
        // A 10,000-host fleet as 10,000 nodes under 100 batch nodes: the executor's own cost.
        let mut g: DiGraph<u32, ()> = DiGraph::new();
        let batches: Vec<_> = (0..100).map(|b| g.add_node(b)).collect();
        for i in 0..10_000 {
            let h = g.add_node(i);
            g.add_edge(batches[i as usize / 100], h, ());
        }
        let ex = Executor::new(Arc::new(super::super::event::Silent));
        let report = ex
            .run(&g, |_, _| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, String>(())
            })
            .await
            .unwrap();
        assert!(report.is_success());
        assert_eq!(report.peak_in_flight, DEFAULT_PARALLELISM);
    }
}
