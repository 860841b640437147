//! Plan: the desired graph from the spec, the diff against what discovery found, and the
//! [`Plan`] that results: a DAG of [`Change`]s with reasons and the [`Basis`] it assumed
//! (DESIGN §4–§5).
//!
//! | piece | owns |
//! | --- | --- |
//! | [`model`] | [`Plan`], [`Change`], [`Action`], [`HostsChange`], [`Basis`], the JSON Schema |
//! | [`desired`] | what the spec wants per region: network → subnets → security group, key pair, image, hosts |
//! | [`diff`] | desired against live: create / update / replace / delete / no-op, with reasons; hosts as a group |
//! | [`net`] | subnet blocks, node ports, security rules, peer address aggregation |
//! | [`select`] | `--only` / `--skip` |
//! | [`saved`] | saved plans and their staleness |
//! | [`keys`] | the spec key's public half |
//!
//! How a command uses it:
//!
//! ```text
//! let ctx = plan::Context::new(spec, &state_dir, &Settings::default())?;   // providers, no IO
//! let live = discover::live(&ctx.discovery(), &on_event).await?;          // every region, in parallel
//! let plan = plan::compute(&ctx, &live, &ctx.state.read_journal()?, &selection, &stages, hosts)?;
//! render::plan(&plan, Format::Text, &mut out)?;                            // or save it
//! ```
//!
//! The planner never touches the cloud itself: discovery reads, apply writes.

pub mod desired;
pub mod diff;
pub mod keys;
pub mod model;
pub mod net;
pub mod saved;
pub mod select;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use miette::Diagnostic;
use thiserror::Error;

pub use model::{
    Action, Basis, Change, ChangeKind, Excluded, HostRef, HostsChange, Mode, PLAN_FORMAT,
    PendingCall, Plan, Removal, StageChange, Summary, json_schema, json_schema_text,
};
pub use saved::SavedPlanError;
pub use select::{Selection, SelectionError};

use crate::apply::{RateBuckets, RateError, RateLimits, RetryPolicy};
use crate::discover::{self, DiscoverError, Live, RegionKey};
use crate::provider::aliyun::{AliyunProvider, SetupError, Timing};
use crate::provider::resource::{Attrs, HostStatus, Kind, Provider, TagScope};
use crate::spec::{CloudKind, RegionId, Spec, ZoneId};
use crate::ssh::hosts::Host;
use crate::stages::reach::UnreachableHost;
use crate::stages::{Stage, StageError, StageId, StageOptions};
use crate::state::{
    Address, Fingerprint, JournalLog, OutcomeResult, SpecState, StateDir, StateError,
};

use desired::{CloudView, backfill_address};

/// Why a plan could not be made. Nothing was changed.
#[derive(Debug, Error, Diagnostic)]
pub enum PlanError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Key(#[from] keys::KeyError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    AwsSetup(#[from] crate::provider::aws::AwsSetupError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Selection(#[from] SelectionError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Rate(#[from] RateError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Stages(#[from] StageError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Saved(#[from] SavedPlanError),
    #[error("zone `{zone}` is not a zone of `{region}`")]
    #[diagnostic(code(cfxm::plan::unknown_zone), help("the region's zones: {known}"))]
    UnknownZone {
        region: RegionId,
        zone: ZoneId,
        known: String,
    },
    #[error("no zone of `{region}` sells any of the instance types {types}")]
    #[diagnostic(
        code(cfxm::plan::no_zones),
        help("add an instance type sold in this region, or move its nodes to another region")
    )]
    NoZones { region: RegionId, types: String },
    #[error("the image `{name}` is not in {cloud} region `{region}` (owned by the account)")]
    #[diagnostic(
        code(cfxm::plan::image_missing),
        help(
            "copy the image to that region (console or `CopyImage`), or set the spec's `image` to one that exists there"
        )
    )]
    ImageMissing {
        cloud: CloudKind,
        region: RegionId,
        name: String,
    },
    #[error("the image `{name}` in `{region}` is {status}, not Available")]
    #[diagnostic(
        code(cfxm::plan::image_not_ready),
        help("wait until it is Available (a copy takes minutes), then plan again")
    )]
    ImageNotReady {
        region: RegionId,
        name: String,
        status: String,
    },
    #[error("`{region}`: {message}")]
    #[diagnostic(
        code(cfxm::plan::subnets),
        help("give the network a larger block (`network.cidr`), or fewer zones")
    )]
    Subnets { region: RegionId, message: String },
    #[error("`{address}` does not exist and the spec's `network.create` is false")]
    #[diagnostic(
        code(cfxm::plan::network_missing),
        help(
            "set `network.create: true` to let cfxm create it, or create it tagged with this spec's three tags"
        )
    )]
    NetworkMissing { address: Address },
    #[error("{cloud} {what} is not supported by this cfxm yet")]
    #[diagnostic(code(cfxm::plan::unsupported), help("{help}"))]
    Unsupported {
        cloud: CloudKind,
        what: &'static str,
        help: &'static str,
    },
    #[error("{message}")]
    #[diagnostic(code(cfxm::plan::limit), help("{help}"))]
    Limit { message: String, help: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Local(#[from] crate::local::LocalError),
}

/// Knobs of discovery and apply that are not in the spec.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub rates: RateLimits,
    pub policy: RetryPolicy,
    pub timing: Timing,
    /// The command only reads (`cfxm plan`): the local cloud loads its saved world but never
    /// writes it, so a plan beside a running apply cannot undo the apply's changes.
    pub read_only: bool,
}

/// One spec, ready to be discovered, planned and applied: its providers, rate buckets and
/// state directory.
pub struct Context {
    pub spec: Arc<Spec>,
    /// SHA-256 of the spec file (a saved plan's basis).
    pub spec_digest: Fingerprint,
    pub state: SpecState,
    pub providers: BTreeMap<CloudKind, Arc<dyn Provider>>,
    /// Shared by every call of the command.
    pub buckets: Arc<RateBuckets>,
    pub policy: RetryPolicy,
    pub stage_options: StageOptions,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("spec", &self.spec.name)
            .field("clouds", &self.providers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The provider of each cloud of `spec` that cfxm creates hosts on.
pub fn providers_for(
    spec: &Spec,
    buckets: &Arc<RateBuckets>,
    settings: &Settings,
) -> Result<BTreeMap<CloudKind, Arc<dyn Provider>>, PlanError> {
    let mut out: BTreeMap<CloudKind, Arc<dyn Provider>> = BTreeMap::new();
    for cloud in &spec.clouds {
        match &cloud.settings {
            crate::spec::CloudSettings::Aliyun(a) => {
                let client = crate::provider::aliyun::Client::for_spec(a)?;
                out.insert(
                    CloudKind::Aliyun,
                    Arc::new(AliyunProvider::new(
                        client,
                        buckets.clone(),
                        settings.policy.clone(),
                        settings.timing,
                    )),
                );
            }
            crate::spec::CloudSettings::Aws(a) => {
                // EC2 throttles apart from Aliyun (and both have an `ap-southeast-1`): its own
                // buckets, at the same rates.
                let aws_buckets = Arc::new(RateBuckets::new(settings.rates)?);
                let provider = crate::provider::aws::AwsProvider::for_spec(
                    a,
                    &cloud.regions,
                    aws_buckets,
                    settings.policy.clone(),
                    settings.timing,
                )?;
                out.insert(CloudKind::Aws, Arc::new(provider));
            }
            // Started by `Context::new`, which knows the spec's state directory (where the
            // local cloud keeps its world and its slots): `crate::local::LocalCloud::start`.
            crate::spec::CloudSettings::Local => {}
            crate::spec::CloudSettings::Static(_) => {}
        }
    }
    Ok(out)
}

impl Context {
    /// A context for `spec` (already validated; `spec.file` is read for its digest).
    pub fn new(spec: Spec, state_dir: &StateDir, settings: &Settings) -> Result<Self, PlanError> {
        let text = std::fs::read(&spec.file).unwrap_or_default();
        let spec_digest =
            Fingerprint::of(&String::from_utf8_lossy(&text)).expect("text serializes");
        let state = state_dir.spec(&spec.name)?;
        let buckets = Arc::new(RateBuckets::new(settings.rates)?);
        let mut providers = providers_for(&spec, &buckets, settings)?;
        if spec.clouds.iter().any(|c| c.kind() == CloudKind::Local) {
            let local = crate::local::LocalCloud::start(
                &state,
                buckets.clone(),
                settings.policy.clone(),
                settings.read_only,
            )?;
            providers.insert(CloudKind::Local, Arc::new(local));
        }
        Ok(Context {
            spec: Arc::new(spec),
            spec_digest,
            state,
            providers,
            buckets,
            policy: settings.policy.clone(),
            stage_options: StageOptions::default(),
        })
    }

    /// The tag scope of this spec.
    pub fn scope(&self) -> TagScope {
        TagScope::spec(&self.spec.owner, &self.spec.name)
    }

    /// What discovery reads for this spec: every region of every cloud it uses.
    pub fn discovery(&self) -> discover::Request {
        let mut clouds = Vec::new();
        for cloud in &self.spec.clouds {
            let Some(provider) = self.providers.get(&cloud.kind()) else {
                continue;
            };
            let view = CloudView::of(&self.spec, cloud);
            clouds.push(discover::CloudRequest {
                provider: provider.clone(),
                spec_regions: cloud.regions.iter().map(|r| r.id.clone()).collect(),
                image: view.map(|v| v.image.to_owned()),
            });
        }
        discover::Request {
            scope: self.scope(),
            clouds,
            all_regions: true,
        }
    }

    /// Regions a `--only`/`--skip` term may name: the spec's and those where it has resources.
    pub fn selectable_regions(&self, live: &Live) -> BTreeSet<RegionId> {
        let mut out: BTreeSet<RegionId> = self
            .spec
            .clouds
            .iter()
            .flat_map(|c| c.regions.iter().map(|r| r.id.clone()))
            .collect();
        for (k, r) in &live.regions {
            if !r.resources.is_empty() || !r.instances.is_empty() {
                out.insert(k.region.clone());
            }
        }
        out
    }
}

/// The backfill recorded in the journal for `cloud`: nodes moved per region, while the spec's
/// per-region counts are still those it was recorded against.
pub fn recorded_backfill(
    log: &JournalLog,
    cloud: CloudKind,
    spec: &Spec,
) -> BTreeMap<RegionId, i64> {
    if !spec.placement.backfill {
        return BTreeMap::new();
    }
    let address = backfill_address(cloud);
    let Some(c) = spec.clouds.iter().find(|c| c.kind() == cloud) else {
        return BTreeMap::new();
    };
    let now: BTreeMap<String, u32> = c
        .regions
        .iter()
        .map(|r| (r.id.to_string(), r.nodes))
        .collect();
    let latest = log
        .intents_for(&address)
        .filter(|(serial, i)| {
            i.action == "Backfill"
                && matches!(
                    log.outcome_of(*serial),
                    Some(OutcomeResult::Succeeded { .. })
                )
        })
        .last();
    let Some((_, intent)) = latest else {
        return BTreeMap::new();
    };
    let recorded: Option<BTreeMap<String, u32>> = intent
        .params
        .get("spec_nodes")
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    if recorded.as_ref() != Some(&now) {
        return BTreeMap::new();
    }
    intent
        .params
        .get("moved")
        .and_then(|v| serde_json::from_value::<BTreeMap<String, i64>>(v.clone()).ok())
        .map(|m| m.into_iter().map(|(k, v)| (RegionId::new(k), v)).collect())
        .unwrap_or_default()
}

/// Computes the plan of `ctx`'s spec against `live`. `stages` are the experiment's stages
/// (empty in a build without them); `hosts` the inventory's hosts, used for the stages'
/// inputs when this plan leaves the hosts as they are; `stage_live` what [`stage_live`] found
/// (the hosts it lists as unreachable, and those the latest `reach` record lists, are
/// destroyed and replaced when discovery finds them among the spec's instances).
pub fn compute(
    ctx: &Context,
    live: &Live,
    log: &JournalLog,
    selection: &Selection,
    stages: &[&dyn Stage],
    hosts: Option<&[Host]>,
    stage_live: &StageLive,
) -> Result<Plan, PlanError> {
    let spec = &ctx.spec;
    let unreachable = unreachable_reasons(log, stage_live);
    let mut changes: Vec<Change> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut basis_live: BTreeMap<String, String> = BTreeMap::new();
    let mut spec_regions: BTreeSet<RegionKey> = BTreeSet::new();
    let no_unreachable = BTreeMap::new();

    for cloud in &spec.clouds {
        let Some(view) = CloudView::of(spec, cloud) else {
            continue;
        };
        let Some(provider) = ctx.providers.get(&view.kind) else {
            continue;
        };
        let public_key = match view.kind {
            CloudKind::Local => crate::local::public_key(),
            _ => keys::public_key_line(&view.ssh_key)?,
        };
        let backfill = recorded_backfill(log, view.kind, spec);
        if view.network.ssh_from.iter().any(|c| c.prefix == 0) {
            warnings.push(format!(
                "{}: SSH is open to the whole internet (`network.ssh_from` includes `0.0.0.0/0`; node ports stay closed to it, cfxm reaches them through SSH); set it to your address",
                view.kind
            ));
        }
        for region in &cloud.regions {
            let key = RegionKey {
                cloud: view.kind,
                region: region.id.clone(),
            };
            spec_regions.insert(key.clone());
            let empty = discover::RegionLive::default();
            let region_live = live.regions.get(&key).unwrap_or(&empty);
            let addressed = live.addressed(&key, provider.as_ref());
            let usable = usable_zones(
                log,
                &key,
                region,
                region_live,
                &addressed,
                provider.as_ref(),
            );
            for z in &usable.left_out {
                warnings.push(format!(
                    "{key}: zone `{z}` is left out: an earlier apply could not create its {} there (no capacity, or the zone is unavailable); name it in the region's `zones:` to try it again",
                    provider.noun(Kind::Subnet)
                ));
            }
            let want = desired::region(&desired::RegionInput {
                spec,
                view: &view,
                provider: provider.as_ref(),
                region,
                live: usable.live.as_ref().unwrap_or(region_live),
                addressed: &addressed,
                public_key: &public_key,
                backfill_nodes: backfill.get(&region.id).copied().unwrap_or(0),
            })?;
            let mut region_changes = diff::region(&diff::RegionDiff {
                key: &key,
                desired: &want,
                live: region_live,
                addressed: &addressed,
                hosts_address: desired::address(
                    view.kind,
                    &region.id,
                    &[provider.noun(Kind::Hosts)],
                ),
                may_create_network: view.network.create,
                unreachable: unreachable.get(&key).unwrap_or(&no_unreachable),
            })?;
            if let Some(moved) = backfill.get(&region.id)
                && let Some(h) = region_changes.iter_mut().find_map(|c| c.hosts.as_mut())
            {
                h.backfill_nodes = *moved;
            }
            record_basis(
                &mut basis_live,
                &key,
                &addressed,
                region_live,
                provider.as_ref(),
            );
            changes.append(&mut region_changes);
        }
    }
    // Regions the spec does not name, where its resources exist: everything there goes.
    for (key, region_live) in &live.regions {
        if spec_regions.contains(key) {
            continue;
        }
        let Some(provider) = ctx.providers.get(&key.cloud) else {
            continue;
        };
        let addressed = live.addressed(key, provider.as_ref());
        if addressed.is_empty() && region_live.instances.is_empty() {
            continue;
        }
        let mut region_changes = diff::region(&diff::RegionDiff {
            key,
            desired: &[],
            live: region_live,
            addressed: &addressed,
            hosts_address: desired::address(key.cloud, &key.region, &[provider.noun(Kind::Hosts)]),
            may_create_network: true,
            unreachable: &no_unreachable,
        })?;
        record_basis(
            &mut basis_live,
            key,
            &addressed,
            region_live,
            provider.as_ref(),
        );
        changes.append(&mut region_changes);
    }

    let hosts_addresses: Vec<Address> = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Hosts && c.action != Action::Delete)
        .map(|c| c.address.clone())
        .collect();
    let hosts_move = changes
        .iter()
        .any(|c| c.kind == ChangeKind::Hosts && c.action.changes_something());

    // Backfill steps: after every region's hosts of a cloud, when the spec allows it.
    let mut backfills = Vec::new();
    if spec.placement.backfill {
        for kind in ctx.providers.keys() {
            let regions: Vec<Address> = hosts_addresses
                .iter()
                .filter(|a| a.as_str().starts_with(&format!("{kind}/")))
                .cloned()
                .collect();
            // Only a placement that adds nodes can fall short.
            let adds = changes.iter().any(|c| {
                c.cloud == Some(*kind)
                    && c.hosts.as_ref().is_some_and(|h| h.add_nodes > 0)
                    && c.action.changes_something()
            });
            if regions.len() < 2 || !adds {
                continue;
            }
            let mut c = Change::new(backfill_address(*kind), ChangeKind::Backfill, Action::NoOp);
            c.cloud = Some(*kind);
            c.reason = Some(
                "a region that runs out of stock moves its shortfall to the cloud's regions with stock"
                    .into(),
            );
            c.depends_on = regions;
            backfills.push(c.address.clone());
            changes.push(c);
        }
    }

    // Peer rules: from the live hosts when this plan leaves every region's hosts alone.
    let peer_ips: Option<BTreeMap<RegionKey, Vec<std::net::Ipv4Addr>>> = if hosts_move {
        None
    } else {
        let mut by_region: BTreeMap<RegionKey, Vec<std::net::Ipv4Addr>> = BTreeMap::new();
        for key in &spec_regions {
            if let Some(r) = live.regions.get(key) {
                for i in &r.instances {
                    if i.status == HostStatus::Running
                        && let Some(IpAddr::V4(ip)) = i.public_ip
                    {
                        by_region.entry(key.clone()).or_default().push(ip);
                    }
                }
            }
        }
        Some(by_region)
    };
    for c in changes.iter_mut().filter(|c| c.kind == ChangeKind::Peers) {
        if c.action == Action::Delete {
            continue;
        }
        c.depends_on.extend(hosts_addresses.iter().cloned());
        c.depends_on.extend(backfills.iter().cloned());
        let (Some(ips), Some(cloud), Some(region)) = (&peer_ips, c.cloud, c.region.clone()) else {
            continue;
        };
        let here = RegionKey { cloud, region };
        let others: Vec<std::net::Ipv4Addr> = ips
            .iter()
            .filter(|(k, _)| **k != here)
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        let nph = spec
            .clouds
            .iter()
            .find(|x| x.kind() == cloud)
            .and_then(|x| x.regions.iter().find(|r| r.id == here.region))
            .map(|r| {
                r.instance_types
                    .iter()
                    .map(|t| t.nodes_per_host)
                    .max()
                    .unwrap_or(1)
            })
            .unwrap_or(1);
        let want = Attrs::Peers {
            rules: Some(net::peer_rules(&others, nph)),
        };
        c.after = Some(want.clone());
        if c.action != Action::Create {
            let have = c.before.clone().unwrap_or(Attrs::Peers {
                rules: Some(vec![]),
            });
            let (action, reason) = peers_compare(&want, &have);
            c.action = action;
            c.reason = reason;
        }
    }

    // Stages, after every host, backfill and peer rule.
    if stages.is_empty() {
        warnings
            .push("this build has no experiment stages: only cloud resources are planned".into());
    } else {
        let mut after_infra: Vec<Address> = hosts_addresses.clone();
        after_infra.extend(backfills.iter().cloned());
        after_infra.extend(
            changes
                .iter()
                .filter(|c| c.kind == ChangeKind::Peers && c.action != Action::Delete)
                .map(|c| c.address.clone()),
        );
        let known_hosts = if hosts_move { None } else { hosts };
        let no_live = BTreeMap::new();
        changes.extend(stage_changes(
            ctx,
            log,
            selection,
            stages,
            known_hosts,
            if hosts_move {
                &no_live
            } else {
                &stage_live.checks
            },
            &after_infra,
        )?);
    }

    // `--only` / `--skip`.
    for c in &mut changes {
        if c.kind == ChangeKind::Stage || !c.action.changes_something() {
            continue;
        }
        let Some(region) = &c.region else { continue };
        if let Err(flag) = selection.region(region) {
            c.excluded = Some(Excluded {
                flag: flag.into(),
                would: c.action,
            });
            c.action = Action::NoOp;
        }
    }

    check_limits(spec, &changes)?;

    for p in log.pending_intents() {
        warnings.push(format!(
            "an interrupted apply left `{}` on `{}` without an outcome (journal {}); `cfxm apply` settles it first",
            p.intent.action, p.intent.address, p.serial
        ));
    }
    let pending = log
        .pending_intents()
        .into_iter()
        .map(|p| PendingCall {
            serial: p.serial,
            address: p.intent.address.clone(),
            action: p.intent.action.clone(),
            client_token: p.intent.client_token.as_ref().map(ToString::to_string),
        })
        .collect();

    let changes = topological(changes);
    let basis = saved::basis(ctx.spec_digest.clone(), log.last_serial(), basis_live);
    let id = plan_id(&basis, &changes, selection);
    Ok(Plan {
        format: PLAN_FORMAT,
        id,
        mode: Mode::Apply,
        spec: spec.name.clone(),
        owner: spec.owner.clone(),
        created_at: chrono::Utc::now(),
        selection: selection.describe(),
        summary: Summary::of(&changes),
        changes,
        basis,
        warnings,
        pending,
    })
}

/// A region's zones for the desired graph, and those left out of them.
struct UsableZones {
    /// The region's live view with the left-out zones removed, when there are any.
    live: Option<discover::RegionLive>,
    left_out: Vec<ZoneId>,
}

/// Zones the spec lets cfxm choose (`zones:` not given) whose subnet does not exist and whose
/// last create call failed for lack of capacity: the cloud refused the zone itself (AWS's
/// "zone unavailable", original-tool.md §4.2, which the original skipped during its infra
/// phase). They are left out until the spec names them; zones the spec names are always kept.
fn usable_zones(
    log: &JournalLog,
    key: &RegionKey,
    region: &crate::spec::Region,
    live: &discover::RegionLive,
    addressed: &[discover::Addressed],
    provider: &dyn Provider,
) -> UsableZones {
    let none = UsableZones {
        live: None,
        left_out: Vec::new(),
    };
    let Some(offers) = live.zones.as_ref().filter(|_| region.zones.is_empty()) else {
        return none;
    };
    let refused = |zone: &ZoneId| {
        let address = desired::address(
            key.cloud,
            &key.region,
            &[provider.noun(Kind::Subnet), zone.as_str()],
        );
        let exists = addressed.iter().any(|a| a.address == address);
        let last = log
            .intents_for(&address)
            .filter(|(_, i)| i.action.starts_with("Create"))
            .last();
        !exists
            && last.is_some_and(|(serial, _)| {
                matches!(
                    log.outcome_of(serial),
                    Some(OutcomeResult::Failed {
                        class: crate::state::FailureClass::NoCapacity,
                        ..
                    })
                )
            })
    };
    let left_out: Vec<ZoneId> = offers
        .iter()
        .map(|o| o.zone.clone())
        .filter(|z| refused(z))
        .collect();
    if left_out.is_empty() {
        return none;
    }
    let mut kept = live.clone();
    if let Some(zones) = kept.zones.as_mut() {
        zones.retain(|o| !left_out.contains(&o.zone));
    }
    UsableZones {
        live: Some(kept),
        left_out,
    }
}

fn peers_compare(want: &Attrs, have: &Attrs) -> (Action, Option<String>) {
    let keys = |a: &Attrs| -> BTreeSet<(String, u16, u16, String)> {
        match a {
            Attrs::Peers { rules: Some(r) } => {
                r.iter().map(crate::provider::resource::Rule::key).collect()
            }
            _ => BTreeSet::new(),
        }
    };
    if keys(want) == keys(have) {
        (Action::NoOp, None)
    } else {
        (
            Action::Update,
            Some("the experiment's hosts in other regions changed".into()),
        )
    }
}

/// What existed per address, for the basis.
fn record_basis(
    out: &mut BTreeMap<String, String>,
    key: &RegionKey,
    addressed: &[discover::Addressed],
    live: &discover::RegionLive,
    provider: &dyn Provider,
) {
    for a in addressed {
        out.insert(a.address.to_string(), a.resource.id.clone());
    }
    if !live.instances.is_empty() {
        let mut ids: Vec<&str> = live.instances.iter().map(|i| i.id.as_str()).collect();
        ids.sort_unstable();
        let digest = Fingerprint::of(&ids).expect("ids serialize");
        out.insert(
            format!(
                "{}/{}/{}",
                key.cloud,
                key.region,
                provider.noun(Kind::Hosts)
            ),
            format!("{} instances ({})", ids.len(), &digest.as_str()[..12]),
        );
    }
}

/// What the plan learnt from the live hosts (only reads).
#[derive(Debug, Clone, Default)]
pub struct StageLive {
    /// The live checks of the stages that are current.
    pub checks: BTreeMap<StageId, crate::stages::Live>,
    /// Hosts that did not answer the liveness probe, run when `reach` is current but a later
    /// stage is about to run (a host that died since the last apply is replaced before the
    /// stages use it).
    pub unreachable: Vec<UnreachableHost>,
}

/// The live checks of the stages that are current (nodes still running, logs still there),
/// over `hosts` as the inventory has them, and the liveness probe of the hosts when a stage
/// after `reach` is about to run while `reach` itself would not. Only reads; a check that
/// cannot run counts as lost.
pub async fn stage_live(
    ctx: &Context,
    stages: &[&dyn Stage],
    hosts: &[crate::stages::StageHost],
    log: &JournalLog,
    selection: &crate::stages::StageSelection,
) -> StageLive {
    let list: Vec<Host> = hosts.iter().map(|h| h.host.clone()).collect();
    let cx = crate::stages::InputContext {
        spec: &ctx.spec,
        hosts: Some(&list),
        options: &ctx.stage_options,
    };
    let Ok(assessed) = crate::stages::assess(stages, &cx, log) else {
        return StageLive::default();
    };
    let live = crate::stages::LiveContext {
        hosts,
        options: &ctx.stage_options,
    };
    let mut checks = crate::stages::check_live(stages, &assessed, &live, log).await;
    let reach_current = assessed
        .iter()
        .any(|a| a.id == StageId::Reach && a.own == crate::stages::Own::Current);
    let later_runs = !crate::stages::decide(&assessed, &checks, selection).is_noop();
    let mut unreachable = Vec::new();
    if reach_current && later_runs {
        unreachable = crate::stages::reach::probe_hosts(hosts, &ctx.stage_options).await;
        if let Some(first) = unreachable.first() {
            checks.insert(
                StageId::Reach,
                crate::stages::Live::Lost {
                    why: format!(
                        "{} of {} hosts did not answer a liveness check; first: {}",
                        unreachable.len(),
                        hosts.len(),
                        first.short_error()
                    ),
                },
            );
        }
    }
    StageLive {
        checks,
        unreachable,
    }
}

/// Per region, the instances to replace because they did not answer, with the reason: those
/// the latest `reach` record lists, and those the liveness probe found (its word is newer).
fn unreachable_reasons(
    log: &JournalLog,
    stage_live: &StageLive,
) -> BTreeMap<RegionKey, BTreeMap<String, String>> {
    use crate::stages::reach::{Seen, last_unreachable, replace_reason};
    let mut out: BTreeMap<RegionKey, BTreeMap<String, String>> = BTreeMap::new();
    let recorded = last_unreachable(log);
    let found = recorded
        .iter()
        .map(|h| (h, Seen::LastReach))
        .chain(stage_live.unreachable.iter().map(|h| (h, Seen::Probe)));
    for (h, seen) in found {
        for cloud in [CloudKind::Aliyun, CloudKind::Aws, CloudKind::Local] {
            // Records of older versions carry no cloud: the region and the id still match.
            if !h.cloud.is_empty() && h.cloud != cloud.as_str() {
                continue;
            }
            let key = RegionKey {
                cloud,
                region: RegionId::new(h.region.clone()),
            };
            out.entry(key)
                .or_default()
                .insert(h.instance_id.clone(), replace_reason(h, seen));
        }
    }
    out
}

/// The stages' changes: which run and why, after `after_infra`.
fn stage_changes(
    ctx: &Context,
    log: &JournalLog,
    selection: &Selection,
    stages: &[&dyn Stage],
    hosts: Option<&[Host]>,
    live: &BTreeMap<StageId, crate::stages::Live>,
    after_infra: &[Address],
) -> Result<Vec<Change>, PlanError> {
    let cx = crate::stages::InputContext {
        spec: &ctx.spec,
        hosts,
        options: &ctx.stage_options,
    };
    let assessed = crate::stages::assess(stages, &cx, log)?;
    let plan = crate::stages::decide(&assessed, live, &selection.stages());
    let mut out = Vec::new();
    for entry in &plan.entries {
        let id = entry.id;
        let reasons: Vec<String> = entry
            .decision
            .reasons()
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut c = Change::new(id.address(), ChangeKind::Stage, Action::NoOp);
        match &entry.decision {
            crate::stages::Decision::Run { .. } => c.action = Action::Run,
            crate::stages::Decision::Excluded { flag, .. } => {
                c.excluded = Some(Excluded {
                    flag: (*flag).to_owned(),
                    would: Action::Run,
                });
            }
            crate::stages::Decision::Blocked { .. } | crate::stages::Decision::UpToDate => {}
        }
        c.stage = Some(StageChange {
            summary: entry.summary(),
            reasons,
            diff: entry
                .decision
                .reasons()
                .iter()
                .any(|r| matches!(r, crate::stages::Reason::Changed { parts } if parts.iter().any(|p| p == "config")))
                .then(|| entry.text_diff("config"))
                .flatten(),
        });
        c.depends_on = if id.info().after.is_empty() {
            after_infra.to_vec()
        } else {
            id.info()
                .after
                .iter()
                .map(|s: &StageId| s.address())
                .collect()
        };
        out.push(c);
    }
    Ok(out)
}

/// `limits.max_hosts` and `limits.max_hourly_cost_usd` against what the plan may run: the
/// hosts kept plus the added nodes on the type with the fewest nodes per host.
fn check_limits(spec: &Spec, changes: &[Change]) -> Result<(), PlanError> {
    let mut hosts: u64 = 0;
    let mut cost: f64 = 0.0;
    let mut unpriced = false;
    for c in changes {
        let (Some(h), Some(Attrs::Hosts(want))) = (&c.hosts, &c.after) else {
            continue;
        };
        let kept = h.kept.len() as u64;
        let min_nph = want
            .types
            .iter()
            .map(|t| t.nodes_per_host.max(1))
            .min()
            .unwrap_or(1);
        let added = u64::from(h.add_nodes).div_ceil(u64::from(min_nph));
        hosts += kept + added;
        for k in &h.kept {
            match want
                .types
                .iter()
                .find(|t| t.name.as_str() == k.instance_type)
            {
                Some(t) => match t.hourly_cost_usd {
                    Some(p) => cost += p,
                    None => unpriced = true,
                },
                None => unpriced = true,
            }
        }
        let dearest = want
            .types
            .iter()
            .map(|t| t.hourly_cost_usd)
            .try_fold(0.0f64, |m, p| p.map(|p| m.max(p)));
        match dearest {
            Some(p) => cost += p * added as f64,
            None => unpriced |= added > 0,
        }
    }
    if let Some(max) = spec.limits.max_hosts
        && hosts > u64::from(max)
    {
        return Err(PlanError::Limit {
            message: format!(
                "this plan may run {} hosts, above `limits.max_hosts` of {}",
                crate::spec::thousands(hosts),
                crate::spec::thousands(u64::from(max))
            ),
            help: "raise the limit, or ask for fewer nodes; nothing was created".into(),
        });
    }
    if let Some(max) = spec.limits.max_hourly_cost_usd
        && !unpriced
        && cost > max
    {
        return Err(PlanError::Limit {
            message: format!(
                "this plan may cost ${cost:.2} per hour, above `limits.max_hourly_cost_usd` of ${max:.2}"
            ),
            help: "raise the limit, use cheaper types, or ask for fewer nodes; nothing was created"
                .into(),
        });
    }
    Ok(())
}

/// `changes` in dependency order, otherwise in their given order (Kahn's algorithm with the
/// original index as priority), so the same inputs always give the same plan.
fn topological(changes: Vec<Change>) -> Vec<Change> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let index: BTreeMap<&Address, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (&c.address, i))
        .collect();
    let n = changes.len();
    let mut waiting = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, c) in changes.iter().enumerate() {
        let deps: BTreeSet<usize> = c
            .depends_on
            .iter()
            .filter_map(|d| index.get(d).copied())
            .collect();
        waiting[i] = deps.len();
        for d in deps {
            dependents[d].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|i| waiting[*i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    // A cycle would leave nodes out; keep them (the executor reports the cycle as a bug).
    let seen: BTreeSet<usize> = order.iter().copied().collect();
    order.extend((0..n).filter(|i| !seen.contains(i)));
    let mut slots: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i].take().expect("each index once"))
        .collect()
}

fn plan_id(basis: &Basis, changes: &[Change], selection: &Selection) -> String {
    let digest = Fingerprint::of(&serde_json::json!({
        "basis": basis,
        "changes": changes,
        "selection": selection.describe(),
    }))
    .expect("plans serialize");
    digest.as_str()[..16].to_owned()
}

/// The destroy plan of one spec: every resource and instance discovery found, deleted, in
/// reverse dependency order (the apply graph reverses the edges).
pub fn destroy(
    spec: &crate::spec::SpecName,
    owner: &crate::spec::Owner,
    live: &Live,
    providers: &BTreeMap<CloudKind, Arc<dyn Provider>>,
    log: &JournalLog,
    spec_digest: Fingerprint,
) -> Plan {
    let mut changes = Vec::new();
    let mut basis_live = BTreeMap::new();
    for (key, region_live) in &live.regions {
        let Some(provider) = providers.get(&key.cloud) else {
            continue;
        };
        let addressed = live.addressed(key, provider.as_ref());
        let hosts_address = desired::address(key.cloud, &key.region, &[provider.noun(Kind::Hosts)]);
        let Ok(mut region_changes) = diff::region(&diff::RegionDiff {
            key,
            desired: &[],
            live: region_live,
            addressed: &addressed,
            hosts_address,
            may_create_network: true,
            unreachable: &BTreeMap::new(),
        }) else {
            continue;
        };
        for c in &mut region_changes {
            c.reason = Some(format!("destroy: tagged for spec `{spec}` of `{owner}`"));
            if let Some(h) = c.hosts.as_mut() {
                for r in &mut h.destroy {
                    r.reason = format!("destroy: tagged for spec `{spec}` of `{owner}`");
                }
            }
        }
        record_basis(
            &mut basis_live,
            key,
            &addressed,
            region_live,
            provider.as_ref(),
        );
        changes.append(&mut region_changes);
    }
    // Listed in the order they go: hosts first, networks last.
    let mut changes = topological(changes);
    changes.reverse();
    let basis = saved::basis(spec_digest, log.last_serial(), basis_live);
    let id = plan_id(&basis, &changes, &Selection::all());
    Plan {
        format: PLAN_FORMAT,
        id,
        mode: Mode::Destroy,
        spec: spec.clone(),
        owner: owner.clone(),
        created_at: chrono::Utc::now(),
        selection: String::new(),
        summary: Summary::of(&changes),
        changes,
        basis,
        warnings: Vec::new(),
        pending: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::resource::{HostsAttrs, InstanceSettings, TypeChoice};
    use crate::spec::InstanceType;

    fn spec(limits: &str) -> Spec {
        crate::spec::load_str(
            &format!(
                "name: s\nowner: o\ncloud:\n  aliyun:\n    instance_types:\n      - {{ name: big, nodes_per_host: 2, hourly_cost_usd: 1.0 }}\n      - {{ name: small, nodes_per_host: 1, hourly_cost_usd: 0.5 }}\n    regions: [{{ name: r1, nodes: 2 }}]\n{limits}"
            ),
            "s.yaml",
            std::path::Path::new("s.yaml"),
        )
        .unwrap()
    }

    fn hosts_change(kept: usize, add_nodes: u32) -> Change {
        let mut c = Change::new(
            Address::new("aliyun/r1/hosts").unwrap(),
            ChangeKind::Hosts,
            Action::Update,
        );
        c.after = Some(Attrs::Hosts(HostsAttrs {
            nodes: 4,
            types: vec![
                TypeChoice {
                    name: InstanceType::new("big"),
                    nodes_per_host: 2,
                    hourly_cost_usd: Some(1.0),
                },
                TypeChoice {
                    name: InstanceType::new("small"),
                    nodes_per_host: 1,
                    hourly_cost_usd: Some(0.5),
                },
            ],
            zones: vec![ZoneId::new("z")],
            image: "i".into(),
            key_pair: "k".into(),
            settings: InstanceSettings {
                disk_gb: 40,
                disk_category: "cloud_essd".into(),
                bandwidth_mbps: 0,
                public_ip: false,
                spot: false,
            },
            max_per_call: 100,
        }));
        c.hosts = Some(HostsChange {
            wanted_nodes: 4,
            kept: (0..kept)
                .map(|i| HostRef {
                    id: format!("i-{i}"),
                    zone: "z".into(),
                    instance_type: "big".into(),
                    status: HostStatus::Running,
                    public_ip: None,
                })
                .collect(),
            kept_nodes: 2 * kept as u32,
            add_nodes,
            add_hosts: u64::from(add_nodes).div_ceil(2),
            destroy: vec![],
            backfill_nodes: 0,
        });
        c
    }

    #[test]
    fn limits_count_kept_hosts_and_the_worst_case_of_the_added_nodes() {
        // 1 kept host + 2 nodes on the 1-node type at worst: 3 hosts.
        let changes = [hosts_change(1, 2)];
        assert!(check_limits(&spec("limits: { max_hosts: 3 }\n"), &changes).is_ok());
        // Cost: 1.0 kept + 2 × 1.0 (the dearest type) = 3.0.
        assert!(check_limits(&spec("limits: { max_hourly_cost_usd: 3.0 }\n"), &changes).is_ok());
        let e =
            check_limits(&spec("limits: { max_hourly_cost_usd: 2.9 }\n"), &changes).unwrap_err();
        assert!(e.to_string().contains("$3.00 per hour"), "{e}");
        // Four kept hosts already pass a limit the spec alone would allow.
        let e =
            check_limits(&spec("limits: { max_hosts: 4 }\n"), &[hosts_change(5, 0)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "this plan may run 5 hosts, above `limits.max_hosts` of 4"
        );
    }

    #[tokio::test]
    async fn unreachable_hosts_are_keyed_by_cloud_and_region_and_the_probe_has_the_last_word() {
        use crate::stages::reach::{ReachOutput, UnreachableHost};
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path())
            .spec(&crate::spec::SpecName::new("s"))
            .unwrap();
        let lock = state.lock("test").unwrap();
        let journal = state.journal(&lock).unwrap();
        let host = |id: &str, cloud: &str, region: &str| UnreachableHost {
            label: id.into(),
            instance_id: id.into(),
            ip: "203.0.113.1".into(),
            cloud: cloud.into(),
            region: region.into(),
            error: format!("{id}: unreachable after 3 attempts in 15s: connection refused"),
        };
        let out = ReachOutput {
            hosts: 3,
            reachable: 0,
            unreachable: vec![
                host("i-a", "aliyun", "r1"),
                host("i-b", "", "r2"),
                host("i-c", "aliyun", "r1"),
            ],
        };
        let record = crate::state::StageRecord {
            stage: StageId::Reach.name(),
            fingerprint: Fingerprint::of(&1).unwrap(),
            status: crate::state::StageStatus::Failed,
            outputs: serde_json::json!({ "inputs": {}, "result": out }),
            error: Some("over budget".into()),
        };
        journal.stage(record).await.unwrap();
        let live = StageLive {
            checks: BTreeMap::new(),
            unreachable: vec![host("i-c", "aliyun", "r1")],
        };
        let got = unreachable_reasons(&journal.log(), &live);
        let key = |cloud, region: &str| RegionKey {
            cloud,
            region: RegionId::new(region),
        };
        let r1 = &got[&key(CloudKind::Aliyun, "r1")];
        assert_eq!(
            r1["i-a"],
            "it did not answer at the last `reach` (unreachable after 3 attempts in 15s: connection refused); an unreachable host is replaced"
        );
        assert!(r1["i-c"].starts_with("it did not answer a liveness check just now ("));
        assert!(!got.contains_key(&key(CloudKind::Aws, "r1")));
        // A record without a cloud (an older cfxm) matches by region and id in any cloud.
        assert!(got[&key(CloudKind::Aws, "r2")].contains_key("i-b"));
        assert!(got[&key(CloudKind::Local, "r2")].contains_key("i-b"));
    }

    #[test]
    fn changes_come_out_in_dependency_order_and_stably() {
        let c = |a: &str, deps: &[&str]| {
            let mut c = Change::new(
                Address::new(a).unwrap(),
                ChangeKind::Network,
                Action::Create,
            );
            c.depends_on = deps.iter().map(|d| Address::new(*d).unwrap()).collect();
            c
        };
        let out = topological(vec![
            c("x/hosts", &["x/vsw", "x/sg"]),
            c("x/sg", &["x/vpc"]),
            c("x/vsw", &["x/vpc"]),
            c("x/vpc", &[]),
            c("y/vpc", &[]),
        ]);
        let order: Vec<&str> = out.iter().map(|c| c.address.as_str()).collect();
        assert_eq!(order, ["x/vpc", "x/sg", "x/vsw", "x/hosts", "y/vpc"]);
    }
}
