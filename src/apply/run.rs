//! The commands' library side: `cfxm plan`, `cfxm apply` and `cfxm destroy` as plain
//! functions over options structs (STYLE §3: the CLI builds the options, calls one function,
//! and draws what comes back). Confirmation is the CLI's, so apply and destroy come in two
//! halves: `prepare_*` (lock, recover, discover, plan: nothing changes yet) and `execute`.
//!
//! ```text
//! let prepared = run::prepare_apply(request, &on_discover, reporter, cancel).await?;
//! print(render::plan(&prepared.plan, ...));  confirm();
//! let result = prepared.execute(reporter, cancel, &on_discover, &on_round).await?;
//! ```
//!
//! `execute` replaces hosts that did not answer at `reach` within the same apply: it
//! discovers and plans again (the hosts diff now destroys and replaces them) and executes
//! that, at most [`REPLACE_ROUNDS`] times, telling `on_round` before each round.

use std::path::PathBuf;
use std::sync::Arc;

use miette::Diagnostic;
use thiserror::Error;

use super::event::Reporter;
use super::executor::Cancel;
use super::mutation::StepError;
use super::reconcile::{self, ApplyError, ApplyOptions, ApplyResult, Target};
use crate::discover::{self, DiscoverError, Event, Live};
use crate::plan::{self, Context, Plan, PlanError, SavedPlanError, Selection, Settings};
use crate::provider::resource::{Provider, TagScope};
use crate::spec::{CloudKind, Owner, Spec};
use crate::ssh::hosts::HostList;
use crate::stages::Stage;
use crate::stages::reach::UnreachableHost;
use crate::state::{
    FailureClass, Journal, LockHolder, OutcomeResult, StateDir, StateError, StateLock, TornTail,
};

/// Why a command failed before or after its steps (a step's own failure is in the result).
#[derive(Debug, Error, Diagnostic)]
pub enum CommandError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Saved(#[from] SavedPlanError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Step(#[from] StepError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Discover(#[from] DiscoverError),
    #[error("{what}: {source}")]
    #[diagnostic(
        code(cfxm::destroy::credentials),
        help(
            "set `ALIBABA_CLOUD_ACCESS_KEY_ID` and `ALIBABA_CLOUD_ACCESS_KEY_SECRET` (and `CFXM_ALIYUN_ENDPOINT` for an emulator)"
        )
    )]
    Setup {
        what: &'static str,
        source: crate::provider::aliyun::SetupError,
    },
    #[error("hosts still did not answer after {rounds} rounds of replacement: {hosts}")]
    #[diagnostic(
        code(cfxm::apply::unreachable),
        help(
            "their replacements did not answer either: check that new hosts can be reached (the image boots with sshd, `network.ssh_from` includes this machine; local cloud: the slots under `state/<spec>/slots/`), then run `cfxm apply` again, which replaces them"
        )
    )]
    StillUnreachable { hosts: String, rounds: u32 },
    #[error(
        "hosts did not answer at `reach`, and this apply's selection leaves them in place: {hosts}"
    )]
    #[diagnostic(
        code(cfxm::apply::not_replaced),
        help(
            "run `cfxm apply` without the `--only`/`--skip` that leaves their region out, so they are replaced"
        )
    )]
    NotReplaced { hosts: String },
    #[error("{problem}")]
    #[diagnostic(
        code(cfxm::destroy::slots),
        help("the local cloud's slots are under `state/<spec>/slots/`; run `cfxm destroy` again")
    )]
    Slots { problem: String },
}

/// What `cfxm plan` works from.
pub struct PlanRequest {
    pub spec: Spec,
    pub state_dir: StateDir,
    pub settings: Settings,
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub stages: Vec<&'static dyn Stage>,
}

/// `cfxm plan`: discover, diff, plan. Reads the state without its lock; changes nothing.
pub async fn plan(
    req: PlanRequest,
    on_discover: &(dyn Fn(Event) + Send + Sync),
) -> Result<Plan, CommandError> {
    let settings = Settings {
        read_only: true,
        ..req.settings
    };
    let ctx = Context::new(req.spec, &req.state_dir, &settings)?;
    let live = discover::live(&ctx.discovery(), on_discover).await?;
    let selection = Selection::parse(&req.only, &req.skip, &ctx.selectable_regions(&live))
        .map_err(PlanError::from)?;
    let log = ctx.state.read_journal()?;
    let hosts = HostList::for_spec(&ctx.spec, &ctx.state).ok();
    let stage_live = stage_live(&ctx, &selection, &req.stages, hosts.as_ref(), &log).await;
    Ok(plan::compute(
        &ctx,
        &live,
        &log,
        &selection,
        &req.stages,
        hosts.as_ref().map(HostList::hosts),
        &stage_live,
    )?)
}

/// The stages' live checks (and the hosts' liveness probe), when a stage may run and the
/// inventory has hosts to check.
async fn stage_live(
    ctx: &Context,
    selection: &Selection,
    stages: &[&'static dyn Stage],
    hosts: Option<&HostList>,
    log: &crate::state::JournalLog,
) -> plan::StageLive {
    let allowed = selection.stages();
    let any = crate::stages::StageId::ALL
        .iter()
        .any(|s| allowed.allows(*s));
    let (Some(hosts), true, false) = (hosts, any, stages.is_empty()) else {
        return Default::default();
    };
    let Ok(connector) =
        crate::ssh::hosts::Connector::new(&ctx.state, crate::ssh::SshOptions::default())
    else {
        return Default::default();
    };
    let stage_hosts: Vec<crate::stages::StageHost> = hosts
        .hosts()
        .iter()
        .filter_map(|h| {
            Some(crate::stages::StageHost {
                host: h.clone(),
                transport: connector.transport(h).ok()?,
            })
        })
        .collect();
    plan::stage_live(ctx, stages, &stage_hosts, log, &allowed).await
}

/// Discovers and plans `ctx`'s spec afresh under `only`/`skip`, with the journal as it is now.
async fn fresh_plan(
    ctx: &Context,
    journal: &Journal,
    only: &[String],
    skip: &[String],
    stages: &[&'static dyn Stage],
    on_discover: &(dyn Fn(Event) + Send + Sync),
) -> Result<Plan, CommandError> {
    let live = discover::live(&ctx.discovery(), on_discover).await?;
    let selection =
        Selection::parse(only, skip, &ctx.selectable_regions(&live)).map_err(PlanError::from)?;
    let hosts = HostList::for_spec(&ctx.spec, &ctx.state).ok();
    let log = journal.log();
    let stage_live = stage_live(ctx, &selection, stages, hosts.as_ref(), &log).await;
    Ok(plan::compute(
        ctx,
        &live,
        &log,
        &selection,
        stages,
        hosts.as_ref().map(HostList::hosts),
        &stage_live,
    )?)
}

/// What `cfxm apply` works from.
pub struct ApplyRequest {
    pub plan: PlanRequest,
    /// A saved plan to execute instead of a fresh one (`apply plan.json`).
    pub saved: Option<PathBuf>,
    pub options: ApplyOptions,
}

/// What the lock and the journal said about the previous run.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// The previous holder of the lock, when it died without releasing it.
    pub interrupted: Option<LockHolder>,
    /// A half-written last journal line that was cut off.
    pub torn: Option<TornTail>,
    /// Interrupted cloud calls re-issued (idempotently) and recorded.
    pub settled: usize,
}

/// An apply, planned and locked, waiting for confirmation.
pub struct PreparedApply {
    pub ctx: Context,
    pub plan: Arc<Plan>,
    pub recovery: Recovery,
    lock: Arc<StateLock>,
    journal: Journal,
    stages: Vec<&'static dyn Stage>,
    /// `--only`/`--skip`, for the re-plans of replacement rounds.
    only: Vec<String>,
    skip: Vec<String>,
    options: ApplyOptions,
}

/// Rounds of replacing hosts that did not answer at `reach`, within one apply.
pub const REPLACE_ROUNDS: u32 = 2;

/// A replacement round about to run: the hosts that did not answer at `reach`, and the plan
/// (discovered and computed again) that replaces them, for the caller to show.
pub struct Round<'a> {
    /// 1-based.
    pub number: u32,
    pub of: u32,
    pub unreachable: &'a [UnreachableHost],
    pub plan: &'a Plan,
}

/// Locks the spec, settles what an interrupted apply left, discovers and plans (or checks a
/// saved plan against what it assumed). Nothing in the cloud changes here, except settling: a
/// call the previous apply made is re-issued with its own client token, which the cloud
/// answers without creating anything twice.
pub async fn prepare_apply(
    req: ApplyRequest,
    on_discover: &(dyn Fn(Event) + Send + Sync),
    reporter: Arc<dyn Reporter>,
    cancel: &Cancel,
) -> Result<PreparedApply, CommandError> {
    let ctx = Context::new(req.plan.spec, &req.plan.state_dir, &req.plan.settings)?;
    let options = local_timing(&ctx.spec, req.options);
    let lock = ctx.state.lock("cfxm apply")?;
    let journal = ctx.state.journal(&lock)?;
    let mut recovery = Recovery {
        interrupted: lock.interrupted().cloned(),
        torn: journal.repaired().cloned(),
        settled: 0,
    };
    recovery.settled = reconcile::settle(&ctx, &journal, cancel, reporter).await?;
    let fresh = fresh_plan(
        &ctx,
        &journal,
        &req.plan.only,
        &req.plan.skip,
        &req.plan.stages,
        on_discover,
    )
    .await?;
    let plan = match &req.saved {
        None => fresh,
        Some(path) => {
            let saved = plan::saved::read(path)?;
            if saved.spec != ctx.spec.name {
                return Err(SavedPlanError::OtherSpec {
                    planned: saved.spec.to_string(),
                    given: ctx.spec.name.to_string(),
                }
                .into());
            }
            let moved = plan::saved::moved(&saved.basis, &fresh.basis);
            if !moved.is_empty() {
                return Err(SavedPlanError::Stale { moved }.into());
            }
            saved
        }
    };
    Ok(PreparedApply {
        ctx,
        plan: Arc::new(plan),
        recovery,
        lock: Arc::new(lock),
        journal,
        stages: req.plan.stages,
        only: req.plan.only,
        skip: req.plan.skip,
        options,
    })
}

/// A local cloud's hosts "boot" at once: look at them every 100 ms, not every few seconds.
fn local_timing(spec: &Spec, mut options: ApplyOptions) -> ApplyOptions {
    if spec.clouds.iter().any(|c| c.kind() == CloudKind::Local) {
        options.hosts.poll = options
            .hosts
            .poll
            .min(std::time::Duration::from_millis(100));
    }
    options
}

impl PreparedApply {
    /// Executes the plan. When `reach` fails because hosts did not answer, the apply does not
    /// stop at a half-working fleet: it discovers and plans again (the hosts diff now destroys
    /// and replaces those hosts, journaled like any host change; the new hosts change the
    /// stages' inputs, so they run for them) and executes that, at most [`REPLACE_ROUNDS`]
    /// times. `on_round` is told before each round runs; `on_discover` sees its discovery.
    /// The result is the last round's, with the earlier ones in [`ApplyResult::earlier`].
    pub async fn execute(
        self,
        reporter: Arc<dyn Reporter>,
        cancel: Cancel,
        on_discover: &(dyn Fn(Event) + Send + Sync),
        on_round: &(dyn Fn(Round<'_>) + Send + Sync),
    ) -> Result<ApplyResult, CommandError> {
        let target = Target::of(&self.ctx);
        let mut plan = self.plan.clone();
        let mut earlier = Vec::new();
        let mut round = 0;
        loop {
            let mut result = reconcile::execute(
                &target,
                plan,
                self.lock.clone(),
                self.journal.clone(),
                self.stages.clone(),
                &self.options,
                reporter.clone(),
                cancel.clone(),
            )
            .await?;
            let unreachable = std::mem::take(&mut result.unreachable);
            if unreachable.is_empty() || cancel.is_cancelled() {
                result.earlier = earlier;
                return Ok(result);
            }
            if round == REPLACE_ROUNDS {
                return Err(CommandError::StillUnreachable {
                    hosts: host_names(&unreachable),
                    rounds: round,
                });
            }
            round += 1;
            let next = fresh_plan(
                &self.ctx,
                &self.journal,
                &self.only,
                &self.skip,
                &self.stages,
                on_discover,
            )
            .await?;
            // A plan that leaves every one of them in place (its region left out by
            // `--only`/`--skip`) would only fail the same way again.
            let replaced = next.changes.iter().any(|c| {
                c.excluded.is_none()
                    && c.action.changes_something()
                    && c.hosts.as_ref().is_some_and(|h| {
                        h.destroy
                            .iter()
                            .any(|r| unreachable.iter().any(|u| u.instance_id == r.host.id))
                    })
            });
            if !replaced {
                return Err(CommandError::NotReplaced {
                    hosts: host_names(&unreachable),
                });
            }
            on_round(Round {
                number: round,
                of: REPLACE_ROUNDS,
                unreachable: &unreachable,
                plan: &next,
            });
            earlier.push(result);
            plan = Arc::new(next);
        }
    }
}

/// `i-a (ap-southeast-1), i-b (cn-hongkong)`, the first five and a count of the rest.
pub(crate) fn host_names(hosts: &[UnreachableHost]) -> String {
    let mut names: Vec<String> = hosts
        .iter()
        .take(5)
        .map(|h| format!("{} ({})", h.instance_id, h.region))
        .collect();
    if hosts.len() > 5 {
        names.push(format!("and {} more", hosts.len() - 5));
    }
    names.join(", ")
}

/// Whose resources `cfxm destroy` removes.
pub enum DestroyTarget {
    /// Everything tagged for this spec, in every region.
    Spec(Box<Spec>),
    /// Everything of every spec of this owner, in every region of `cloud` (no spec file).
    Owner { owner: Owner, cloud: CloudKind },
}

/// What `cfxm destroy` works from.
pub struct DestroyRequest {
    pub target: DestroyTarget,
    pub state_dir: StateDir,
    pub settings: Settings,
    pub options: ApplyOptions,
}

/// One spec's destroy, planned and locked.
pub struct DestroyUnit {
    pub target: Target,
    pub plan: Arc<Plan>,
    lock: Arc<StateLock>,
    journal: Journal,
}

/// A destroy waiting for confirmation.
pub struct PreparedDestroy {
    pub units: Vec<DestroyUnit>,
    request: discover::Request,
    options: ApplyOptions,
}

/// What was left after a destroy, found by discovering again.
#[derive(Debug, Clone)]
pub struct Leftovers {
    pub live: Live,
}

/// Discovers everything the target's tags mark in every region and plans its deletion.
pub async fn prepare_destroy(
    req: DestroyRequest,
    on_discover: &(dyn Fn(Event) + Send + Sync),
) -> Result<PreparedDestroy, CommandError> {
    match req.target {
        DestroyTarget::Spec(spec) => {
            let ctx = Context::new(*spec, &req.state_dir, &req.settings)?;
            let lock = ctx.state.lock("cfxm destroy")?;
            let journal = ctx.state.journal(&lock)?;
            let mut request = ctx.discovery();
            // Nothing to place: no zones or image to read, every region scanned by tags.
            for c in &mut request.clouds {
                c.spec_regions.clear();
                c.image = None;
            }
            let live = discover::live(&request, on_discover).await?;
            let plan = plan::destroy(
                &ctx.spec.name,
                &ctx.spec.owner,
                &live,
                &ctx.providers,
                &journal.log(),
                ctx.spec_digest.clone(),
            );
            Ok(PreparedDestroy {
                units: vec![DestroyUnit {
                    target: Target::of(&ctx),
                    plan: Arc::new(plan),
                    lock: Arc::new(lock),
                    journal,
                }],
                request,
                options: local_timing(&ctx.spec, req.options),
            })
        }
        DestroyTarget::Owner { owner, cloud } => {
            let buckets = Arc::new(
                crate::apply::RateBuckets::new(req.settings.rates).map_err(PlanError::from)?,
            );
            let provider: Arc<dyn Provider> = match cloud {
                CloudKind::Aliyun => {
                    let env = |k: &str| std::env::var(k).ok();
                    let credentials =
                        crate::provider::aliyun::resolve_credentials_from_env((None, None))
                            .map_err(|e| CommandError::Setup {
                                what: "no Aliyun credentials",
                                source: e.into(),
                            })?;
                    let endpoints = crate::provider::aliyun::Endpoints::resolve(None, &env)
                        .map_err(|e| CommandError::Setup {
                            what: "no usable Aliyun endpoint",
                            source: e.into(),
                        })?;
                    let client = crate::provider::aliyun::Client::new(
                        crate::provider::aliyun::ClientConfig::new(credentials, endpoints),
                    )
                    .map_err(|e| CommandError::Setup {
                        what: "cannot build the Aliyun client",
                        source: e.into(),
                    })?;
                    Arc::new(crate::provider::aliyun::AliyunProvider::new(
                        client,
                        buckets,
                        req.settings.policy.clone(),
                        req.settings.timing,
                    ))
                }
                CloudKind::Aws => Arc::new(
                    crate::provider::aws::AwsProvider::from_env(
                        buckets,
                        req.settings.policy.clone(),
                        req.settings.timing,
                    )
                    .map_err(PlanError::from)?,
                ),
                other => {
                    return Err(PlanError::Unsupported {
                        cloud: other,
                        what: "destroy --owner",
                        help: "only Aliyun and AWS are supported so far",
                    }
                    .into());
                }
            };
            let request = discover::Request {
                scope: TagScope::owner(&owner),
                clouds: vec![discover::CloudRequest {
                    provider: provider.clone(),
                    spec_regions: Vec::new(),
                    image: None,
                }],
                all_regions: true,
            };
            let live = discover::live(&request, on_discover).await?;
            let mut providers = std::collections::BTreeMap::new();
            providers.insert(cloud, provider);
            let mut units = Vec::new();
            for spec in live.specs() {
                let state = req.state_dir.spec(&spec)?;
                let lock = state.lock("cfxm destroy --owner")?;
                let journal = state.journal(&lock)?;
                let plan = plan::destroy(
                    &spec,
                    &owner,
                    &live.of_spec(&spec),
                    &providers,
                    &journal.log(),
                    crate::state::Fingerprint::of(&"no spec file").expect("serializes"),
                );
                units.push(DestroyUnit {
                    target: Target {
                        name: spec.clone(),
                        owner: owner.clone(),
                        spec: None,
                        state,
                        providers: providers.clone(),
                        policy: req.settings.policy.clone(),
                        stage_options: crate::stages::StageOptions::default(),
                    },
                    plan: Arc::new(plan),
                    lock: Arc::new(lock),
                    journal,
                });
            }
            Ok(PreparedDestroy {
                units,
                request,
                options: req.options,
            })
        }
    }
}

impl PreparedDestroy {
    /// Whether nothing tagged exists.
    pub fn is_empty(&self) -> bool {
        self.units.iter().all(|u| u.plan.is_noop())
    }

    /// Executes one spec's destroy.
    pub async fn execute(
        &self,
        unit: &DestroyUnit,
        reporter: Arc<dyn Reporter>,
        cancel: Cancel,
    ) -> Result<ApplyResult, CommandError> {
        Ok(reconcile::execute(
            &unit.target,
            unit.plan.clone(),
            unit.lock.clone(),
            unit.journal.clone(),
            Vec::new(),
            &self.options,
            reporter,
            cancel,
        )
        .await?)
    }

    /// Discovers again: `Err` lists what is still tagged. When nothing is, each spec's
    /// journal closes the calls an interrupted apply left open (their results are gone) and
    /// its inventory is emptied.
    pub async fn verify(
        &self,
        on_discover: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<Result<(), Leftovers>, CommandError> {
        // Hosts still being released are waited for (bounded), not reported as left over.
        let started = tokio::time::Instant::now();
        loop {
            let live = discover::live(&self.request, on_discover).await?;
            if live.is_empty() {
                break;
            }
            let releasing = live.regions.values().all(|r| {
                r.resources.is_empty()
                    && r.instances
                        .iter()
                        .all(|i| i.status == crate::provider::resource::HostStatus::Stopping)
            });
            if !releasing || started.elapsed() > self.options.hosts.release {
                return Ok(Err(Leftovers { live }));
            }
            tokio::time::sleep(self.options.hosts.poll).await;
        }
        for unit in &self.units {
            let pending: Vec<crate::state::Serial> = unit
                .journal
                .with_log(|l| l.pending_intents().iter().map(|p| p.serial).collect());
            for serial in pending {
                unit.journal
                    .outcome(
                        serial,
                        OutcomeResult::Failed {
                            class: FailureClass::Fatal,
                            error: "abandoned: everything tagged for the spec was destroyed".into(),
                        },
                    )
                    .await?;
            }
            let inv = crate::state::Inventory::new(unit.target.name.clone(), chrono::Utc::now());
            unit.target.state.write_inventory(&unit.lock, &inv)?;
            // The local cloud's hosts are gone, and with them their slots; whatever slot is
            // left (an apply killed between creating one and recording its host) goes too,
            // its devnodes stopped first.
            if unit.target.providers.contains_key(&CloudKind::Local) {
                crate::local::remove_slots(&unit.target.state, &unit.target.stage_options)
                    .await
                    .map_err(|problem| CommandError::Slots { problem })?;
            }
        }
        Ok(Ok(()))
    }
}
