//! Executing a [`Plan`]: the plan's changes become steps of a DAG run by the [`Executor`],
//! each step one create, update, delete, hosts placement, backfill or stage (DESIGN §4,
//! "Plan ──apply::run──▶ ApplyEvents").
//!
//! # The step graph
//! Every change gets a *forward* step (create, update, keep, run) unless it is a delete, and a
//! *backward* step (delete) if it is a delete or a replace. For each dependency `p → c` of
//! the plan: forward steps keep the order (`fwd p → fwd c`), backward steps reverse it
//! (`bwd c → bwd p`: instances before vSwitches before the VPC), a change that stays stops
//! using a parent before the parent goes (`fwd c → bwd p`), and a replace deletes before it
//! creates (`bwd x → fwd x`). The executor runs ready steps in parallel, skips the dependents
//! of a failure (reporting its root cause once) and lets independent regions finish.
//!
//! # Values between steps
//! Steps share one `Run`: the live resources applied so far by address (a vSwitch reads its
//! VPC's id there), each region's running hosts (for the inventory and the peer rules), the
//! shortfalls for backfill, and the inventory, rewritten after every region's hosts so an
//! interrupted apply still leaves what it knew (original-tool.md §5.4).
//!
//! # Recovery
//! [`settle`] runs before discovery: every journaled call without an outcome (its apply died
//! during the call) is re-issued identically when the cloud deduplicates it by client token,
//! and its outcome recorded. Discovery then sees what that call created, so a re-run never
//! creates twice.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::json;

use super::event::Reporter;
use super::executor::{ApplyReport, Cancel, Executor, ExecutorError, StepContext};
use super::hosts::{self, HostTiming, HostsRun, HostsTarget, LimitGuard};
use super::mutation::{Mutations, StepError};
use super::retry::RetryPolicy;
use crate::discover::RegionKey;
use crate::plan::desired::{self, CloudView};
use crate::plan::{Action, Change, ChangeKind, Context, Plan, net};
use crate::provider::resource::{
    Attrs, HostsAttrs, Kind, LiveInstance, LiveResource, Provider, TagScope, Tags,
};
use crate::spec::{CloudKind, InstanceType, Owner, RegionId, Spec, SpecName, ZoneId};
use crate::stages::{Stage, StageEnv, StageId};
use crate::state::{
    Address, Intent, Inventory, InventoryHost, InventoryNode, Journal, OutcomeResult, SpecState,
    StateLock,
};

/// Knobs of an apply that are not in the spec.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Steps at once (`--parallelism`).
    pub parallelism: NonZeroUsize,
    pub hosts: HostTiming,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: NonZeroUsize::new(super::DEFAULT_PARALLELISM).expect("non-zero"),
            hosts: HostTiming::default(),
        }
    }
}

/// Whether a step applies a change forward or deletes its live resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Forward,
    Backward,
}

/// One step of the execution graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Index of the change in the plan.
    pub change: usize,
    pub phase: Phase,
    pub address: Address,
    pub kind: ChangeKind,
    pub action: Action,
}

impl Step {
    /// What the step does, for progress lines: `create`, `destroy`, `place hosts`...
    pub fn verb(&self) -> &'static str {
        match (self.phase, self.kind, self.action) {
            (Phase::Backward, ChangeKind::Hosts, _) => "destroy hosts",
            (Phase::Backward, _, _) => "destroy",
            (_, ChangeKind::Stage, _) => "run",
            (_, ChangeKind::Hosts, _) => "hosts",
            (_, ChangeKind::Backfill, _) => "backfill",
            (_, _, Action::Create | Action::Replace) => "create",
            (_, _, Action::Update) => "update",
            (_, _, Action::Read) => "read",
            _ => "keep",
        }
    }

    /// Whether the step does any work (others are bookkeeping, hidden from progress).
    pub fn is_work(&self) -> bool {
        self.phase == Phase::Backward
            || matches!(self.kind, ChangeKind::Hosts | ChangeKind::Backfill)
            || self.action.changes_something()
    }
}

/// The plan's changes as a step DAG (see the module docs for the edges).
pub fn steps(plan: &Plan) -> DiGraph<Step, ()> {
    let mut g = DiGraph::new();
    let mut fwd: BTreeMap<&Address, NodeIndex> = BTreeMap::new();
    let mut bwd: BTreeMap<&Address, NodeIndex> = BTreeMap::new();
    for (i, c) in plan.changes.iter().enumerate() {
        let backward = matches!(c.action, Action::Delete | Action::Replace);
        let forward = c.action != Action::Delete;
        let step = |phase| Step {
            change: i,
            phase,
            address: c.address.clone(),
            kind: c.kind,
            action: c.action,
        };
        if backward {
            bwd.insert(&c.address, g.add_node(step(Phase::Backward)));
        }
        if forward {
            fwd.insert(&c.address, g.add_node(step(Phase::Forward)));
        }
        if let (Some(b), Some(f)) = (bwd.get(&c.address), fwd.get(&c.address)) {
            g.add_edge(*b, *f, ());
        }
    }
    for c in &plan.changes {
        for p in &c.depends_on {
            if let (Some(a), Some(b)) = (fwd.get(p), fwd.get(&c.address)) {
                g.add_edge(*a, *b, ());
            }
            if let (Some(child), Some(parent)) = (bwd.get(&c.address), bwd.get(p)) {
                g.add_edge(*child, *parent, ());
            } else if let (Some(child), None, Some(parent)) =
                (fwd.get(&c.address), bwd.get(&c.address), bwd.get(p))
            {
                // The child stays and stops using the parent before it goes.
                if !fwd.contains_key(p) {
                    g.add_edge(*child, *parent, ());
                }
            }
        }
    }
    g
}

/// What a step produced.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutput {
    Nothing,
    /// A resource's id.
    Resource(String),
    Hosts(HostsSummary),
    Backfill(Vec<BackfillMove>),
    /// A stage ran; `failed` when it failed but the stages after it still run (collect).
    Stage {
        failed: Option<String>,
    },
}

/// What happened to one region's hosts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostsSummary {
    pub region: Option<RegionKey>,
    pub ready: usize,
    pub ready_nodes: u64,
    pub wanted_nodes: u64,
    /// Created per (type, zone).
    pub placed: BTreeMap<(InstanceType, ZoneId), u32>,
    pub replaced: Vec<(String, String)>,
    pub destroyed: usize,
    pub shortfall_nodes: u64,
}

/// Nodes moved from short regions to regions with stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillMove {
    pub region: RegionId,
    pub nodes: i64,
}

/// Why an apply could not start.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ApplyError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Graph(#[from] ExecutorError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Step(#[from] StepError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    State(#[from] crate::state::StateError),
}

/// What an apply did.
pub struct ApplyResult {
    pub graph: DiGraph<Step, ()>,
    pub report: ApplyReport<StepOutput, StepError>,
    pub hosts: Vec<HostsSummary>,
    pub backfill: Vec<BackfillMove>,
    /// Stages that failed while later stages still ran (collect after blocks).
    pub stage_failures: Vec<(Address, String)>,
    /// The latency report, when the `report` stage ran in this apply.
    pub latency: Option<crate::stages::report::ReportOutput>,
    /// The hosts that did not answer when `reach` failed in this execution (the caller
    /// replaces them: [`crate::apply::run::PreparedApply::execute`]).
    pub unreachable: Vec<crate::stages::reach::UnreachableHost>,
    /// Earlier rounds of the same apply, which ended with hosts that did not answer and were
    /// followed by a round that replaced them; in order.
    pub earlier: Vec<ApplyResult>,
}

impl ApplyResult {
    pub fn is_success(&self) -> bool {
        self.report.is_success() && self.stage_failures.is_empty()
    }
}

/// What an execution acts for: a spec (apply, destroy) or just a spec's name and owner
/// (`destroy --owner`, which has no spec file).
#[derive(Clone)]
pub struct Target {
    pub name: SpecName,
    pub owner: Owner,
    /// Needed to create (limits, hosts' SSH user and key) and to run stages.
    pub spec: Option<Arc<Spec>>,
    pub state: SpecState,
    pub providers: BTreeMap<CloudKind, Arc<dyn Provider>>,
    pub policy: RetryPolicy,
    pub stage_options: crate::stages::StageOptions,
}

impl Target {
    pub fn of(ctx: &Context) -> Self {
        Target {
            name: ctx.spec.name.clone(),
            owner: ctx.spec.owner.clone(),
            spec: Some(ctx.spec.clone()),
            state: ctx.state.clone(),
            providers: ctx.providers.clone(),
            policy: ctx.policy.clone(),
            stage_options: ctx.stage_options.clone(),
        }
    }
}

/// Everything an apply's steps share.
struct Run {
    plan: Arc<Plan>,
    name: SpecName,
    owner: Owner,
    spec: Option<Arc<Spec>>,
    providers: BTreeMap<CloudKind, Arc<dyn Provider>>,
    journal: Journal,
    /// For creates and updates.
    policy: RetryPolicy,
    /// For deletes: a longer budget, since a VPC waits for its vSwitches and instances to be
    /// released (`DependencyViolation` is retried, bounded).
    delete_policy: RetryPolicy,
    timing: HostTiming,
    /// `<spec>/<plan id>`: the client tokens' scope.
    scope: String,
    state: SpecState,
    lock: Arc<StateLock>,
    stages: Vec<&'static dyn Stage>,
    stage_options: crate::stages::StageOptions,
    /// Live infra applied so far (and kept), by address.
    resolved: Mutex<BTreeMap<Address, LiveResource>>,
    /// Each region's running hosts after its step.
    hosts: Mutex<BTreeMap<RegionKey, Vec<LiveInstance>>>,
    /// Regions whose placement ran out of candidates: nodes short.
    shortfalls: Mutex<BTreeMap<RegionKey, u64>>,
    /// The inventory, rewritten after every hosts step.
    inventory: Mutex<Inventory>,
    /// The spec's limits, shared by every placement.
    limits: LimitGuard,
    /// Built once the hosts exist, for the stages.
    stage_env: tokio::sync::OnceCell<Arc<StageEnv>>,
    summaries: Mutex<Vec<HostsSummary>>,
    moves: Mutex<Vec<BackfillMove>>,
    stage_failures: Mutex<Vec<(Address, String)>>,
    latency: Mutex<Option<crate::stages::report::ReportOutput>>,
    /// The hosts `reach` found unreachable when it failed.
    unreachable: Mutex<Vec<crate::stages::reach::UnreachableHost>>,
}

/// Re-issues every journaled call that has no outcome, when its action is idempotent by client
/// token, and records what came of it; returns how many were settled. Run before discovery.
pub async fn settle(
    ctx: &Context,
    journal: &Journal,
    cancel: &Cancel,
    reporter: Arc<dyn Reporter>,
) -> Result<usize, StepError> {
    let pending: Vec<(crate::state::Serial, Intent)> = journal.with_log(|log| {
        log.pending_intents()
            .into_iter()
            .map(|p| (p.serial, p.intent.clone()))
            .collect()
    });
    let mut settled = 0;
    for (serial, intent) in pending {
        let cloud = intent
            .address
            .segments()
            .next()
            .and_then(|s| ctx.providers.keys().find(|k| k.as_str() == s).copied());
        let Some(provider) = cloud.and_then(|c| ctx.providers.get(&c)) else {
            continue;
        };
        let scope = String::new();
        let step = StepContext::new(NodeIndex::new(0), reporter.clone(), cancel.clone());
        let m = Mutations {
            journal,
            policy: &ctx.policy,
            step: Some(&step),
            scope: &scope,
            address: &intent.address,
        };
        let result = match provider.settle(&m, &intent).await {
            Ok(Some(ids)) => OutcomeResult::Succeeded { ids },
            Ok(None) => OutcomeResult::Failed {
                class: crate::state::FailureClass::Transient,
                error: "interrupted; not re-issuable, so discovery by tags finds its result".into(),
            },
            // The call never happened and cannot now (no stock, gone, refused): nothing came
            // of it, which is what the outcome says; the plan decides afresh.
            Err(e) if e.cloud_class().is_some() => OutcomeResult::Failed {
                class: e.cloud_class().expect("checked").into(),
                error: format!("re-issued after an interruption: {e}"),
            },
            Err(e) => return Err(e),
        };
        journal.outcome(serial, result).await?;
        settled += 1;
    }
    Ok(settled)
}

/// Executes `plan` (computed for `ctx`'s spec), journaling every cloud call, and returns what
/// happened step by step. `stages` are the experiment's stages (`stages::all()`).
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    ctx: &Target,
    plan: Arc<Plan>,
    lock: Arc<StateLock>,
    journal: Journal,
    stages: Vec<&'static dyn Stage>,
    opts: &ApplyOptions,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
) -> Result<ApplyResult, ApplyError> {
    let graph = steps(&plan);
    // Everything the plan keeps counts against the limits before anything is created.
    let (mut kept_hosts, mut kept_cost) = (0u64, 0f64);
    for c in &plan.changes {
        if let (Some(h), Some(Attrs::Hosts(want))) = (&c.hosts, &c.after) {
            kept_hosts += h.kept.len() as u64;
            for k in &h.kept {
                kept_cost += want
                    .types
                    .iter()
                    .find(|t| t.name.as_str() == k.instance_type)
                    .and_then(|t| t.hourly_cost_usd)
                    .unwrap_or(0.0);
            }
        }
    }
    let inventory = match ctx.state.read_inventory() {
        Ok(Some(inv)) => inv,
        _ => Inventory::new(ctx.name.clone(), chrono::Utc::now()),
    };
    // Each region's hosts as the plan keeps them, until its step says otherwise: a region left
    // out by `--skip` still counts for the others' peer rules.
    let mut seeded: BTreeMap<RegionKey, Vec<LiveInstance>> = BTreeMap::new();
    for c in &plan.changes {
        if let (Some(h), Some(key)) = (&c.hosts, region_key(c)) {
            let kept: Vec<LiveInstance> = h
                .kept
                .iter()
                .map(|k| LiveInstance {
                    id: k.id.clone(),
                    region: key.region.clone(),
                    zone: ZoneId::new(k.zone.clone()),
                    instance_type: InstanceType::new(k.instance_type.clone()),
                    status: k.status,
                    public_ip: k.public_ip.as_deref().and_then(|ip| ip.parse().ok()),
                    private_ip: None,
                    subnet_id: String::new(),
                    key_pair: String::new(),
                    tags: Tags::new(),
                })
                .collect();
            seeded.entry(key).or_default().extend(kept);
        }
    }
    let mut resolved = BTreeMap::new();
    for c in &plan.changes {
        if let Some(live) = live_of(c)
            && c.action != Action::Replace
        {
            resolved.insert(c.address.clone(), live);
        }
    }
    let run = Arc::new(Run {
        plan: plan.clone(),
        name: ctx.name.clone(),
        owner: ctx.owner.clone(),
        spec: ctx.spec.clone(),
        providers: ctx.providers.clone(),
        journal,
        policy: ctx.policy.clone(),
        delete_policy: ctx
            .policy
            .clone()
            .with_budget(40, std::time::Duration::from_secs(15 * 60)),
        timing: opts.hosts,
        scope: format!("{}/{}", ctx.name, plan.id),
        state: ctx.state.clone(),
        lock,
        stages,
        stage_options: ctx.stage_options.clone(),
        resolved: Mutex::new(resolved),
        hosts: Mutex::new(seeded),
        shortfalls: Mutex::new(BTreeMap::new()),
        inventory: Mutex::new(inventory),
        limits: LimitGuard::new(
            ctx.spec.as_ref().and_then(|s| s.limits.max_hosts),
            ctx.spec.as_ref().and_then(|s| s.limits.max_hourly_cost_usd),
            kept_hosts,
            kept_cost,
        ),
        stage_env: tokio::sync::OnceCell::new(),
        summaries: Mutex::new(Vec::new()),
        moves: Mutex::new(Vec::new()),
        stage_failures: Mutex::new(Vec::new()),
        latency: Mutex::new(None),
        unreachable: Mutex::new(Vec::new()),
    });
    let executor = Executor::new(reporter)
        .parallelism(opts.parallelism)
        .cancel_with(cancel);
    let report = executor
        .run(&graph, |step, ctx| {
            let run = run.clone();
            let step = step.clone();
            async move { run_step(&run, &step, &ctx).await }
        })
        .await?;
    let hosts = run
        .summaries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let backfill = run.moves.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let stage_failures = run
        .stage_failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let latency = run.latency.lock().unwrap_or_else(|e| e.into_inner()).take();
    let unreachable =
        std::mem::take(&mut *run.unreachable.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(ApplyResult {
        graph,
        report,
        hosts,
        backfill,
        stage_failures,
        latency,
        unreachable,
        earlier: Vec::new(),
    })
}

/// A change's live resource, as the plan recorded it.
fn live_of(c: &Change) -> Option<LiveResource> {
    let kind = c.kind.resource()?;
    Some(LiveResource {
        kind,
        id: c.live_id.clone()?,
        region: c.region.clone()?,
        status: String::new(),
        attrs: c.before.clone().or_else(|| c.after.clone())?,
        parent_id: None,
        tags: Tags::new(),
    })
}

async fn run_step(run: &Run, step: &Step, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let change = &run.plan.changes[step.change];
    if change.excluded.is_some() {
        return Ok(StepOutput::Nothing);
    }
    let policy = if step.phase == Phase::Backward {
        &run.delete_policy
    } else {
        &run.policy
    };
    let m = Mutations {
        journal: &run.journal,
        policy,
        step: Some(ctx),
        scope: &run.scope,
        address: &change.address,
    };
    tracing::info!(address = %change.address, phase = ?step.phase, action = ?change.action, "step started");
    let result = dispatch(run, step, change, &m, ctx).await;
    match &result {
        Ok(_) => tracing::info!(address = %change.address, phase = ?step.phase, "step done"),
        Err(e) => {
            tracing::info!(address = %change.address, phase = ?step.phase, error = %e, "step failed")
        }
    }
    result
}

async fn dispatch(
    run: &Run,
    step: &Step,
    change: &Change,
    m: &Mutations<'_>,
    ctx: &StepContext,
) -> Result<StepOutput, StepError> {
    let m = *m;
    match (step.phase, change.kind) {
        (Phase::Backward, ChangeKind::Hosts) => destroy_hosts(run, change, &m).await,
        (Phase::Backward, _) => {
            let Some(live) = live_of(change) else {
                return Ok(StepOutput::Nothing);
            };
            let provider = run.provider(change)?;
            provider.delete(&m, &live).await?;
            run.resolved_mut().remove(&change.address);
            Ok(StepOutput::Resource(live.id))
        }
        (Phase::Forward, ChangeKind::Stage) => run_stage(run, change, ctx).await,
        (Phase::Forward, ChangeKind::Backfill) => backfill(run, change, &m).await,
        (Phase::Forward, ChangeKind::Hosts) => apply_hosts(run, change, &m).await,
        (Phase::Forward, ChangeKind::Peers) => peers(run, change, &m).await,
        (Phase::Forward, _) => infra(run, change, &m).await,
    }
}

impl Run {
    fn provider(&self, c: &Change) -> Result<&Arc<dyn Provider>, StepError> {
        c.cloud.and_then(|k| self.providers.get(&k)).ok_or_else(|| {
            StepError::failed(
                format!("`{}` names no cloud this spec uses", c.address),
                "this is a bug in cfxm's planner; please report it",
            )
        })
    }

    fn resolved_mut(&self) -> std::sync::MutexGuard<'_, BTreeMap<Address, LiveResource>> {
        self.resolved.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn resolved(&self, address: &Address) -> Option<LiveResource> {
        self.resolved_mut().get(address).cloned()
    }

    fn tags(&self) -> Tags {
        TagScope::create_tags(&self.owner, &self.name)
    }

    fn region_address(&self, c: &Change, provider: &dyn Provider, kind: Kind) -> Option<Address> {
        let (cloud, region) = (c.cloud?, c.region.as_ref()?);
        Some(match kind {
            Kind::Peers => desired::address(
                cloud,
                region,
                &[
                    provider.noun(Kind::SecurityGroup),
                    provider.noun(Kind::Peers),
                ],
            ),
            _ => desired::address(cloud, region, &[provider.noun(kind)]),
        })
    }

    /// Records a region's running hosts and rewrites the inventory with them.
    fn set_hosts(
        &self,
        key: &RegionKey,
        ready: Vec<LiveInstance>,
        attrs: Option<&HostsAttrs>,
    ) -> Result<(), StepError> {
        let view = self.spec.as_ref().and_then(|spec| {
            spec.clouds
                .iter()
                .find(|c| c.kind() == key.cloud)
                .and_then(|c| CloudView::of(spec, c))
        });
        let entries: Vec<InventoryHost> = ready
            .iter()
            .map(|i| InventoryHost {
                cloud: key.cloud,
                region: key.region.clone(),
                zone: i.zone.clone(),
                instance_id: i.id.clone(),
                instance_type: i.instance_type.clone(),
                status: i.status.to_string(),
                public_ip: i.public_ip,
                private_ip: i.private_ip,
                nodes_per_host: attrs
                    .and_then(|a| a.nodes_per_host(&i.instance_type))
                    .unwrap_or(1),
                ssh_user: view
                    .as_ref()
                    .map(|v| v.ssh_user.to_owned())
                    .unwrap_or_default(),
                ssh_key_path: view
                    .as_ref()
                    .map(|v| v.ssh_key.display().to_string())
                    .unwrap_or_default(),
            })
            .collect();
        self.hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), ready);
        let mut inv = self.inventory.lock().unwrap_or_else(|e| e.into_inner());
        inv.hosts
            .retain(|h| !(h.cloud == key.cloud && h.region == key.region));
        inv.hosts.extend(entries);
        inv.hosts.sort_by(|a, b| {
            (a.cloud, &a.region, &a.instance_id).cmp(&(b.cloud, &b.region, &b.instance_id))
        });
        inv.nodes = inv
            .hosts
            .iter()
            .flat_map(|h| {
                (0..h.nodes_per_host).map(|index| InventoryNode {
                    instance_id: h.instance_id.clone(),
                    index,
                })
            })
            .collect();
        inv.discovered_at = chrono::Utc::now();
        self.state.write_inventory(&self.lock, &inv)?;
        Ok(())
    }
}

fn region_key(c: &Change) -> Option<RegionKey> {
    Some(RegionKey {
        cloud: c.cloud?,
        region: c.region.clone()?,
    })
}

async fn infra(run: &Run, c: &Change, m: &Mutations<'_>) -> Result<StepOutput, StepError> {
    match c.action {
        Action::NoOp => Ok(StepOutput::Nothing),
        Action::Read => {
            // The image: known at plan time; keep its id for the hosts.
            if let Some(id) = &c.live_id
                && let (Some(region), Some(attrs)) = (&c.region, &c.after)
            {
                run.resolved_mut().insert(
                    c.address.clone(),
                    LiveResource {
                        kind: Kind::Image,
                        id: id.clone(),
                        region: region.clone(),
                        status: "Available".into(),
                        attrs: attrs.clone(),
                        parent_id: None,
                        tags: Tags::new(),
                    },
                );
            }
            Ok(StepOutput::Nothing)
        }
        Action::Create | Action::Replace => {
            let provider = run.provider(c)?;
            let want = c
                .after
                .as_ref()
                .ok_or_else(|| missing(c, "desired attributes"))?;
            let region = c.region.as_ref().ok_or_else(|| missing(c, "region"))?;
            let parent = match want.kind() {
                Kind::Subnet | Kind::SecurityGroup | Kind::Gateway => run
                    .region_address(c, provider.as_ref(), Kind::Network)
                    .and_then(|a| run.resolved(&a)),
                _ => None,
            };
            let tags = run.tags();
            let live = provider
                .create(m, region, want, parent.as_ref(), &tags)
                .await?;
            let id = live.id.clone();
            run.resolved_mut().insert(c.address.clone(), live);
            Ok(StepOutput::Resource(id))
        }
        Action::Update => {
            let provider = run.provider(c)?;
            let want = c
                .after
                .as_ref()
                .ok_or_else(|| missing(c, "desired attributes"))?;
            let live = live_of(c).ok_or_else(|| missing(c, "live resource"))?;
            let updated = provider.update(m, &live, want).await?;
            let id = updated.id.clone();
            run.resolved_mut().insert(c.address.clone(), updated);
            Ok(StepOutput::Resource(id))
        }
        Action::Delete | Action::Run => Ok(StepOutput::Nothing),
    }
}

fn missing(c: &Change, what: &str) -> StepError {
    StepError::failed(
        format!("`{}` has no {what} in the plan", c.address),
        "this is a bug in cfxm's planner; please report it",
    )
}

/// The peer rules of one region, from every other region's running hosts as applied.
async fn peers(run: &Run, c: &Change, m: &Mutations<'_>) -> Result<StepOutput, StepError> {
    if c.action == Action::NoOp {
        return Ok(StepOutput::Nothing);
    }
    let provider = run.provider(c)?;
    let here = region_key(c).ok_or_else(|| missing(c, "region"))?;
    let ips: Vec<std::net::Ipv4Addr> = run
        .hosts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(k, _)| **k != here)
        .flat_map(|(_, hosts)| {
            hosts.iter().filter_map(|h| match h.public_ip {
                Some(IpAddr::V4(ip)) => Some(ip),
                _ => None,
            })
        })
        .collect();
    let nph = run
        .plan
        .changes
        .iter()
        .find(|x| x.kind == ChangeKind::Hosts && region_key(x).as_ref() == Some(&here))
        .and_then(|x| match &x.after {
            Some(Attrs::Hosts(h)) => h.types.iter().map(|t| t.nodes_per_host).max(),
            _ => None,
        })
        .unwrap_or(1);
    let want = Attrs::Peers {
        rules: Some(net::peer_rules(&ips, nph)),
    };
    let sg_address = run
        .region_address(c, provider.as_ref(), Kind::SecurityGroup)
        .ok_or_else(|| missing(c, "region"))?;
    let sg = run
        .resolved(&sg_address)
        .ok_or_else(|| missing(c, "security group"))?;
    let live = match c.action {
        Action::Update => {
            let mut live = sg.clone();
            live.kind = Kind::Peers;
            live.attrs = c.before.clone().unwrap_or(Attrs::Peers {
                rules: Some(vec![]),
            });
            provider.update(m, &live, &want).await?
        }
        _ => {
            let region = c.region.as_ref().ok_or_else(|| missing(c, "region"))?;
            provider
                .create(m, region, &want, Some(&sg), &run.tags())
                .await?
        }
    };
    Ok(StepOutput::Resource(live.id))
}

fn target<'a>(
    run: &'a Run,
    c: &'a Change,
    provider: &'a dyn Provider,
    attrs: &'a HostsAttrs,
    progress_total: u64,
) -> Result<HostsTarget<'a>, StepError> {
    let region = c.region.as_ref().ok_or_else(|| missing(c, "region"))?;
    let mut subnets = BTreeMap::new();
    for z in &attrs.zones {
        let a = desired::address(
            c.cloud.ok_or_else(|| missing(c, "cloud"))?,
            region,
            &[provider.noun(Kind::Subnet), z.as_str()],
        );
        if let Some(s) = run.resolved(&a) {
            subnets.insert(z.clone(), s.id);
        }
    }
    let id_of = |kind: Kind| -> Result<String, StepError> {
        run.region_address(c, provider, kind)
            .and_then(|a| run.resolved(&a))
            .map(|r| r.id)
            .ok_or_else(|| missing(c, provider.noun(kind)))
    };
    Ok(HostsTarget {
        provider,
        region,
        attrs,
        subnets,
        security_group: id_of(Kind::SecurityGroup)?,
        image_id: id_of(Kind::Image)?,
        tags: run.tags(),
        name: desired::resource_name(&run.owner, &run.name),
        timing: run.timing,
        limits: &run.limits,
        progress_total,
    })
}

/// Whether the plan backfills `cloud`'s shortfalls (a backfill step that is not left out).
fn backfills(plan: &Plan, cloud: CloudKind) -> bool {
    plan.changes
        .iter()
        .any(|c| c.kind == ChangeKind::Backfill && c.cloud == Some(cloud) && c.excluded.is_none())
}

async fn apply_hosts(run: &Run, c: &Change, m: &Mutations<'_>) -> Result<StepOutput, StepError> {
    let provider = run.provider(c)?;
    let key = region_key(c).ok_or_else(|| missing(c, "region"))?;
    let h = c.hosts.as_ref().ok_or_else(|| missing(c, "hosts"))?;
    let Some(Attrs::Hosts(attrs)) = &c.after else {
        return Err(missing(c, "hosts attributes"));
    };
    let t = target(run, c, provider.as_ref(), attrs, u64::from(attrs.nodes))?;
    // Removals of an update start first; their release is awaited at the end.
    let removals: Vec<String> = if c.action == Action::Update {
        h.destroy.iter().map(|r| r.host.id.clone()).collect()
    } else {
        Vec::new()
    };
    if !removals.is_empty() {
        provider.terminate(m, &key.region, &removals).await?;
    }
    let kept_ids: Vec<String> = h.kept.iter().map(|k| k.id.clone()).collect();
    let keep = provider
        .describe_instances(&key.region, &kept_ids)
        .await
        .map_err(|e| StepError::failed(e.to_string(), "retry the apply"))?;
    let mut generation = 0;
    let result: HostsRun = t
        .converge(m, &keep, u64::from(h.add_nodes), &mut generation)
        .await?;
    if !removals.is_empty() {
        hosts::wait_gone(provider.as_ref(), m, &key.region, &removals, &run.timing).await?;
    }
    run.set_hosts(&key, result.ready.clone(), Some(attrs))?;
    let summary = HostsSummary {
        region: Some(key.clone()),
        ready: result.ready.len(),
        ready_nodes: result.ready_nodes(attrs),
        wanted_nodes: u64::from(attrs.nodes),
        placed: result.placed.clone(),
        replaced: result.replaced.clone(),
        destroyed: removals.len(),
        shortfall_nodes: result.shortfall_nodes,
    };
    run.summaries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(summary.clone());
    if result.shortfall_nodes > 0 {
        if backfills(&run.plan, key.cloud) {
            run.shortfalls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), result.shortfall_nodes);
        } else {
            return Err(shortfall_error(&key.region, result.shortfall_nodes, attrs));
        }
    }
    Ok(StepOutput::Hosts(summary))
}

fn shortfall_error(region: &RegionId, nodes: u64, attrs: &HostsAttrs) -> StepError {
    StepError::failed(
        format!(
            "`{region}` is {nodes} node(s) short: no stock left in any of {} type(s) × {} zone(s)",
            attrs.types.len(),
            attrs.zones.len()
        ),
        "add instance types or zones to the region, enable `placement.backfill`, or retry later; the hosts created are kept",
    )
}

async fn destroy_hosts(run: &Run, c: &Change, m: &Mutations<'_>) -> Result<StepOutput, StepError> {
    let provider = run.provider(c)?;
    let key = region_key(c).ok_or_else(|| missing(c, "region"))?;
    let ids: Vec<String> = c
        .hosts
        .as_ref()
        .map(|h| h.destroy.iter().map(|r| r.host.id.clone()).collect())
        .unwrap_or_default();
    hosts::remove(provider.as_ref(), m, &key.region, &ids, &run.timing).await?;
    if c.action == Action::Delete {
        run.set_hosts(&key, Vec::new(), None)?;
    }
    let summary = HostsSummary {
        region: Some(key),
        destroyed: ids.len(),
        ..HostsSummary::default()
    };
    run.summaries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(summary.clone());
    Ok(StepOutput::Hosts(summary))
}

/// Moves shortfalls of a cloud's regions to its regions with stock, round by round while they
/// make progress, and records the move in the journal (the next plan keeps it).
async fn backfill(run: &Run, c: &Change, m: &Mutations<'_>) -> Result<StepOutput, StepError> {
    let Some(cloud) = c.cloud else {
        return Ok(StepOutput::Nothing);
    };
    let short: BTreeMap<RegionKey, u64> = run
        .shortfalls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(k, _)| k.cloud == cloud)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    if short.is_empty() {
        return Ok(StepOutput::Backfill(Vec::new()));
    }
    let provider = run.provider(c)?;
    let mut remaining: u64 = short.values().sum();
    // Healthy: regions of the cloud whose hosts step finished without a shortfall.
    let done: BTreeSet<RegionKey> = run
        .hosts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .cloned()
        .collect();
    let mut healthy: Vec<&Change> = run
        .plan
        .changes
        .iter()
        .filter(|x| x.kind == ChangeKind::Hosts && x.cloud == Some(cloud))
        .filter(|x| x.excluded.is_none() && x.action != Action::Delete)
        .filter(|x| region_key(x).is_some_and(|k| done.contains(&k) && !short.contains_key(&k)))
        .collect();
    let mut moved: BTreeMap<RegionId, i64> = BTreeMap::new();
    let mut generation = 0;
    let mut rounds = 0;
    while remaining > 0 && !healthy.is_empty() && rounds < 3 {
        rounds += 1;
        let share = remaining / healthy.len() as u64;
        let extra = remaining % healthy.len() as u64;
        let mut placed_round = 0;
        let mut still = Vec::new();
        for (i, x) in healthy.iter().enumerate() {
            let want = share + u64::from((i as u64) < extra);
            if want == 0 {
                still.push(*x);
                continue;
            }
            let Some(Attrs::Hosts(attrs)) = &x.after else {
                continue;
            };
            let key = region_key(x).expect("filtered");
            let t = target(run, x, provider.as_ref(), attrs, want)?;
            m.progress(format!("backfilling {want} node(s) into {}", key.region));
            let result = t.converge(m, &[], want, &mut generation).await?;
            let placed = want - result.shortfall_nodes.min(want);
            placed_round += placed;
            *moved.entry(key.region.clone()).or_default() += placed as i64;
            let mut all = run
                .hosts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .cloned()
                .unwrap_or_default();
            all.extend(result.ready);
            run.set_hosts(&key, all, Some(attrs))?;
            if result.shortfall_nodes == 0 {
                still.push(*x);
            }
        }
        remaining -= placed_round.min(remaining);
        healthy = still;
        if placed_round == 0 {
            break;
        }
    }
    // The short regions gave their nodes away, in order, up to what was placed.
    let mut given: u64 = moved.values().map(|v| *v as u64).sum();
    for (k, v) in &short {
        let g = (*v).min(given);
        given -= g;
        if g > 0 {
            *moved.entry(k.region.clone()).or_default() -= g as i64;
        }
    }
    let moves: Vec<BackfillMove> = moved
        .iter()
        .filter(|(_, v)| **v != 0)
        .map(|(r, v)| BackfillMove {
            region: r.clone(),
            nodes: *v,
        })
        .collect();
    if !moves.is_empty() {
        let spec_nodes: BTreeMap<String, u32> = run
            .spec
            .iter()
            .flat_map(|s| s.clouds.iter())
            .find(|x| x.kind() == cloud)
            .map(|x| {
                x.regions
                    .iter()
                    .map(|r| (r.id.to_string(), r.nodes))
                    .collect()
            })
            .unwrap_or_default();
        let intent = Intent {
            address: c.address.clone(),
            action: "Backfill".into(),
            client_token: None,
            params: json!({ "spec_nodes": spec_nodes, "moved": moved }),
        };
        let serial = run.journal.intent(intent).await?;
        run.journal
            .outcome(serial, OutcomeResult::Succeeded { ids: Vec::new() })
            .await?;
        run.moves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(moves.iter().cloned());
    }
    if remaining > 0 {
        let regions: Vec<String> = short.keys().map(|k| k.region.to_string()).collect();
        return Err(StepError::failed(
            format!(
                "{remaining} node(s) of {} could not be placed anywhere in {cloud}, backfill included",
                regions.join(", ")
            ),
            "add instance types, zones or regions to the spec, or retry later; the hosts created are kept",
        ));
    }
    Ok(StepOutput::Backfill(moves))
}

async fn run_stage(run: &Run, c: &Change, ctx: &StepContext) -> Result<StepOutput, StepError> {
    if c.action != Action::Run {
        return Ok(StepOutput::Nothing);
    }
    let name = c.address.as_str().strip_prefix("stage/").unwrap_or("");
    let id: StageId = name.parse().map_err(|e: crate::stages::UnknownStage| {
        StepError::failed(e.to_string(), "this is a bug in cfxm")
    })?;
    let Some(stage) = run.stages.iter().find(|s| s.id() == id) else {
        return Err(StepError::failed(
            format!("this build has no `{id}` stage"),
            "run `cfxm apply --only infra`, or a cfxm built with the experiment stages",
        ));
    };
    let env = run
        .stage_env
        .get_or_try_init(|| async { stage_env(run).map(Arc::new) })
        .await?;
    let outcome = crate::stages::run_stage(*stage, env, ctx)
        .await
        .map_err(|e| {
            StepError::failed(
                e.to_string(),
                "fix the cause and run `cfxm apply` again; it resumes at this stage",
            )
        })?;
    match outcome.outcome {
        Ok(value) => {
            if id == StageId::Report {
                *run.latency.lock().unwrap_or_else(|e| e.into_inner()) =
                    serde_json::from_value(value).ok();
            }
            Ok(StepOutput::Stage { failed: None })
        }
        Err(f) => {
            let error = f.error.to_string();
            // Hosts that did not answer go to the hosts resource, by the caller's re-plan.
            if id == StageId::Reach
                && let Some(out) = f.outputs.as_ref().and_then(|v| {
                    serde_json::from_value::<crate::stages::reach::ReachOutput>(v.clone()).ok()
                })
            {
                *run.unreachable.lock().unwrap_or_else(|e| e.into_inner()) = out.unreachable;
            }
            // A stage whose every dependent in the plan runs after failures (blocks → collect)
            // fails softly: its dependents still run, and the apply still fails at the end.
            let dependents: Vec<&Change> = run
                .plan
                .changes
                .iter()
                .filter(|x| x.kind == ChangeKind::Stage && x.action == Action::Run)
                .filter(|x| x.depends_on.contains(&c.address))
                .collect();
            let soft = !dependents.is_empty()
                && dependents.iter().all(|x| {
                    x.address
                        .as_str()
                        .strip_prefix("stage/")
                        .and_then(|n| n.parse::<StageId>().ok())
                        .is_some_and(|s| s.info().runs_after_failure)
                });
            if soft {
                run.stage_failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((c.address.clone(), error.clone()));
                Ok(StepOutput::Stage {
                    failed: Some(error),
                })
            } else {
                Err(StepError::failed(
                    format!("stage `{id}` failed: {error}"),
                    "fix the cause and run `cfxm apply` again; it resumes at this stage",
                ))
            }
        }
    }
}

/// The stages' environment over the hosts as applied (the inventory just written).
fn stage_env(run: &Run) -> Result<StageEnv, StepError> {
    let spec = run.spec.clone().ok_or_else(|| {
        StepError::failed(
            "stages need the spec",
            "this is a bug in cfxm; please report it",
        )
    })?;
    let hosts = crate::ssh::hosts::HostList::for_spec(&spec, &run.state)
        .map_err(|e| StepError::failed(e.to_string(), "run `cfxm apply --only infra` first"))?;
    let connector =
        crate::ssh::hosts::Connector::new(&run.state, crate::ssh::SshOptions::default())
            .map_err(|e| StepError::failed(e.to_string(), "check the state directory"))?;
    let mut stage_hosts = Vec::with_capacity(hosts.len());
    for h in hosts.hosts() {
        let transport = connector
            .transport(h)
            .map_err(|e| StepError::failed(e.to_string(), "check the host's inventory record"))?;
        stage_hosts.push(crate::stages::StageHost {
            host: h.clone(),
            transport,
        });
    }
    Ok(StageEnv::new(
        spec,
        run.state.clone(),
        run.lock.clone(),
        run.journal.clone(),
        stage_hosts,
        run.stage_options.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Basis, Mode, PLAN_FORMAT, Summary};
    use crate::state::{Fingerprint, Serial};

    fn change(addr: &str, kind: ChangeKind, action: Action, deps: &[&str]) -> Change {
        let mut c = Change::new(Address::new(addr).unwrap(), kind, action);
        c.depends_on = deps.iter().map(|d| Address::new(*d).unwrap()).collect();
        c
    }

    fn plan(changes: Vec<Change>) -> Plan {
        Plan {
            format: PLAN_FORMAT,
            id: "t".into(),
            mode: Mode::Apply,
            spec: crate::spec::SpecName::new("s"),
            owner: crate::spec::Owner::new("o"),
            created_at: chrono::Utc::now(),
            selection: String::new(),
            summary: Summary::default(),
            changes,
            basis: Basis {
                spec: Fingerprint::of(&1).unwrap(),
                journal_serial: Serial(0),
                live: BTreeMap::new(),
                live_digest: Fingerprint::of(&2).unwrap(),
            },
            warnings: vec![],
            pending: vec![],
        }
    }

    fn order(g: &DiGraph<Step, ()>) -> Vec<String> {
        petgraph::algo::toposort(g, None)
            .unwrap()
            .into_iter()
            .map(|n| {
                let s = &g[n];
                let p = if s.phase == Phase::Forward { "+" } else { "-" };
                format!("{p}{}", s.address)
            })
            .collect()
    }

    #[test]
    fn deletes_run_in_reverse_dependency_order() {
        let p = plan(vec![
            change("a/r/vpc", ChangeKind::Network, Action::Delete, &[]),
            change(
                "a/r/vswitch/z",
                ChangeKind::Subnet,
                Action::Delete,
                &["a/r/vpc"],
            ),
            change(
                "a/r/security_group",
                ChangeKind::SecurityGroup,
                Action::Delete,
                &["a/r/vpc"],
            ),
            change("a/r/key_pair", ChangeKind::KeyPair, Action::Delete, &[]),
            change(
                "a/r/hosts",
                ChangeKind::Hosts,
                Action::Delete,
                &["a/r/vswitch/z", "a/r/security_group", "a/r/key_pair"],
            ),
        ]);
        let g = steps(&p);
        let o = order(&g);
        let pos = |s: &str| o.iter().position(|x| x == s).unwrap();
        assert!(pos("-a/r/hosts") < pos("-a/r/vswitch/z"));
        assert!(pos("-a/r/hosts") < pos("-a/r/key_pair"));
        assert!(pos("-a/r/vswitch/z") < pos("-a/r/vpc"));
        assert!(pos("-a/r/security_group") < pos("-a/r/vpc"));
        assert!(g.node_weights().all(|s| s.phase == Phase::Backward));
    }

    #[test]
    fn a_replace_deletes_its_children_before_it_and_recreates_after() {
        let p = plan(vec![
            change("a/r/vpc", ChangeKind::Network, Action::Replace, &[]),
            change(
                "a/r/vswitch/z",
                ChangeKind::Subnet,
                Action::Replace,
                &["a/r/vpc"],
            ),
            change(
                "a/r/hosts",
                ChangeKind::Hosts,
                Action::Replace,
                &["a/r/vswitch/z"],
            ),
            change(
                "stage/reach",
                ChangeKind::Stage,
                Action::Run,
                &["a/r/hosts"],
            ),
        ]);
        let o = order(&steps(&p));
        let pos = |s: &str| o.iter().position(|x| x == s).unwrap();
        assert!(pos("-a/r/hosts") < pos("-a/r/vswitch/z"));
        assert!(pos("-a/r/vswitch/z") < pos("-a/r/vpc"));
        assert!(pos("-a/r/vpc") < pos("+a/r/vpc"));
        assert!(pos("+a/r/vpc") < pos("+a/r/vswitch/z"));
        assert!(pos("+a/r/vswitch/z") < pos("+a/r/hosts"));
        assert!(pos("+a/r/hosts") < pos("+stage/reach"));
    }

    #[test]
    fn hosts_that_stay_leave_a_deleted_subnet_before_it_goes() {
        let p = plan(vec![
            change("a/r/vpc", ChangeKind::Network, Action::NoOp, &[]),
            change(
                "a/r/vswitch/z1",
                ChangeKind::Subnet,
                Action::NoOp,
                &["a/r/vpc"],
            ),
            change(
                "a/r/vswitch/z2",
                ChangeKind::Subnet,
                Action::Delete,
                &["a/r/vpc"],
            ),
            change(
                "a/r/hosts",
                ChangeKind::Hosts,
                Action::Update,
                &["a/r/vswitch/z1", "a/r/vswitch/z2"],
            ),
        ]);
        let o = order(&steps(&p));
        let pos = |s: &str| o.iter().position(|x| x == s).unwrap();
        assert!(pos("+a/r/hosts") < pos("-a/r/vswitch/z2"));
        assert!(pos("+a/r/vswitch/z1") < pos("+a/r/hosts"));
    }

    /// A stage that succeeds, or fails when told to.
    struct Scripted {
        id: StageId,
        fail: bool,
    }

    impl Stage for Scripted {
        fn id(&self) -> StageId {
            self.id
        }
        fn inputs(
            &self,
            _: &crate::stages::InputContext<'_>,
        ) -> Result<crate::stages::Inputs, crate::stages::StageError> {
            Ok(crate::stages::Inputs::new().with("x", 1))
        }
        fn run<'a>(
            &'a self,
            _: &'a StageEnv,
            _: &'a StepContext,
        ) -> crate::ssh::BoxFuture<'a, Result<serde_json::Value, crate::stages::Failure>> {
            Box::pin(async move {
                if self.fail {
                    Err(crate::stages::Failure::from(
                        crate::stages::StageError::Cancelled,
                    ))
                } else {
                    Ok(serde_json::json!({}))
                }
            })
        }
    }

    /// Runs the eight stages as plan changes, `failing` failing, over a spec without hosts.
    async fn run_stages(failing: StageId) -> (ApplyResult, Vec<&'static str>) {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::spec::load_str(
            "name: s\nowner: o\ncloud:\n  aliyun:\n    instance_types: [{ name: t }]\n    regions: [{ name: r1, nodes: 1 }]\n",
            "s.yaml",
            &dir.path().join("s.yaml"),
        )
        .unwrap();
        let state = crate::state::StateDir::new(dir.path().join("state"))
            .spec(&spec.name)
            .unwrap();
        let lock = Arc::new(state.lock("test").unwrap());
        std::fs::write(state.hosts_json_path(), "[]").unwrap();
        let journal = state.journal(&lock).unwrap();
        let stages: Vec<&'static dyn Stage> = StageId::ALL
            .iter()
            .map(|id| {
                &*Box::leak(Box::new(Scripted {
                    id: *id,
                    fail: *id == failing,
                })) as &'static dyn Stage
            })
            .collect();
        let changes = StageId::ALL
            .iter()
            .map(|id| {
                let mut c = Change::new(id.address(), ChangeKind::Stage, Action::Run);
                c.depends_on = id.info().after.iter().map(|a| a.address()).collect();
                c
            })
            .collect();
        let target = Target {
            name: spec.name.clone(),
            owner: spec.owner.clone(),
            spec: Some(Arc::new(spec)),
            state,
            providers: BTreeMap::new(),
            policy: RetryPolicy::default(),
            stage_options: crate::stages::StageOptions::default(),
        };
        let result = execute(
            &target,
            Arc::new(plan(changes)),
            lock,
            journal,
            stages,
            &ApplyOptions::default(),
            Arc::new(crate::apply::Silent),
            Cancel::new(),
        )
        .await
        .unwrap();
        let ran: Vec<&'static str> = result
            .report
            .outcomes()
            .filter(|(_, o)| o.is_applied())
            .map(|(n, _)| StageId::ALL[result.graph[n].change].as_str())
            .collect();
        (result, ran)
    }

    #[tokio::test]
    async fn a_failed_blocks_stage_still_collects_and_reports_but_the_apply_fails() {
        let (result, ran) = run_stages(StageId::Blocks).await;
        assert_eq!(ran.len(), 8, "{ran:?}");
        assert!(!result.is_success());
        assert_eq!(result.stage_failures.len(), 1);
        assert_eq!(result.stage_failures[0].0.as_str(), "stage/blocks");
    }

    #[tokio::test]
    async fn a_failed_nodes_stage_skips_everything_after_it() {
        let (result, ran) = run_stages(StageId::Nodes).await;
        assert_eq!(ran, ["reach", "image"]);
        let c = result.report.counts();
        assert_eq!((c.failed, c.skipped), (1, 5));
    }
}
