//! The plan as data (DESIGN §5, STYLE §7 "a plan is data that carries its own precondition"):
//! [`Plan`] holds [`Change`]s with their dependencies (a DAG) and the [`Basis`] it was computed
//! from. `plan --out` writes it as JSON (the schema is `schemas/plan.schema.json`, generated
//! from these types); `apply plan.json` reads it back and executes exactly these changes.
//!
//! What `before` and `after` mean, per action:
//!
//! | action | before | after |
//! | --- | --- | --- |
//! | `create` | none | the desired attributes |
//! | `update` | the live attributes | the desired attributes (applied in place) |
//! | `replace` | the live attributes | the desired attributes (delete, then create) |
//! | `delete` | the live attributes | none |
//! | `read` | none | the data source's query (the image) |
//! | `no_op` | the live attributes | the desired attributes (equal) |
//! | `run` | none | none (a stage; see `stage`) |
//!
//! A hosts group's instances are in `hosts` instead (kept, added as a count, destroyed one by
//! one with a reason). `reason` is for people and never steers apply.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use petgraph::graph::{DiGraph, NodeIndex};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::provider::resource::{Attrs, HostStatus, Kind, LiveInstance};
use crate::spec::{CloudKind, Owner, RegionId, SpecName};
use crate::state::{Address, Fingerprint, Serial};

/// The format version of saved plans, bumped on incompatible changes.
pub const PLAN_FORMAT: u32 = 1;

/// What happens to one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
    /// A data source is read (the image).
    Read,
    /// An experiment stage runs.
    Run,
}

impl Action {
    /// Terraform's symbol: `+`, `~`, `-/+`, `-`, `<=`, and `>` for a stage that runs.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::Read => "<=",
            Action::Run => ">",
        }
    }

    /// The verb of a plan line: `will be created`.
    pub fn verb(self) -> &'static str {
        match self {
            Action::NoOp => "is up to date",
            Action::Create => "will be created",
            Action::Update => "will be updated in place",
            Action::Replace => "must be replaced",
            Action::Delete => "will be destroyed",
            Action::Read => "will be read",
            Action::Run => "will run",
        }
    }

    /// Whether the cloud or the experiment changes.
    pub fn changes_something(self) -> bool {
        !matches!(self, Action::NoOp | Action::Read)
    }
}

/// What an address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Network,
    Gateway,
    Subnet,
    SecurityGroup,
    Peers,
    KeyPair,
    Image,
    Hosts,
    /// Moving a region's shortfall of hosts to regions with stock.
    Backfill,
    Stage,
}

impl ChangeKind {
    pub fn of(kind: Kind) -> Self {
        match kind {
            Kind::Network => ChangeKind::Network,
            Kind::Gateway => ChangeKind::Gateway,
            Kind::Subnet => ChangeKind::Subnet,
            Kind::SecurityGroup => ChangeKind::SecurityGroup,
            Kind::Peers => ChangeKind::Peers,
            Kind::KeyPair => ChangeKind::KeyPair,
            Kind::Image => ChangeKind::Image,
            Kind::Hosts => ChangeKind::Hosts,
        }
    }

    /// The resource kind, for cloud resources.
    pub fn resource(self) -> Option<Kind> {
        Some(match self {
            ChangeKind::Network => Kind::Network,
            ChangeKind::Gateway => Kind::Gateway,
            ChangeKind::Subnet => Kind::Subnet,
            ChangeKind::SecurityGroup => Kind::SecurityGroup,
            ChangeKind::Peers => Kind::Peers,
            ChangeKind::KeyPair => Kind::KeyPair,
            ChangeKind::Image => Kind::Image,
            ChangeKind::Hosts => Kind::Hosts,
            ChangeKind::Backfill | ChangeKind::Stage => return None,
        })
    }
}

/// A change left out by `--only` / `--skip`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Excluded {
    /// `--only` or `--skip`.
    pub flag: String,
    /// What the change would have been.
    pub would: Action,
}

/// One host, as a plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HostRef {
    pub id: String,
    pub zone: String,
    pub instance_type: String,
    pub status: HostStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
}

impl HostRef {
    pub fn of(i: &LiveInstance) -> Self {
        HostRef {
            id: i.id.clone(),
            zone: i.zone.to_string(),
            instance_type: i.instance_type.to_string(),
            status: i.status,
            public_ip: i.public_ip.map(|a| a.to_string()),
        }
    }
}

/// A host to destroy, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Removal {
    pub host: HostRef,
    pub reason: String,
}

/// What happens to a region's hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostsChange {
    /// Nodes the region should run (the spec's, plus backfill moved here).
    pub wanted_nodes: u32,
    /// Hosts that stay, and the nodes they run.
    pub kept: Vec<HostRef>,
    pub kept_nodes: u32,
    /// Nodes to place on new hosts, and the hosts that takes with the first type.
    pub add_nodes: u32,
    pub add_hosts: u64,
    /// Hosts to delete, each with its reason.
    pub destroy: Vec<Removal>,
    /// Nodes moved here from other regions by an earlier backfill (negative: moved away).
    #[serde(default)]
    pub backfill_nodes: i64,
}

/// A stage's part of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StageChange {
    /// One line: `blocks: run (`blocks.count` changed)` or `reach: up to date`.
    pub summary: String,
    /// Why it runs (empty when it does not).
    pub reasons: Vec<String>,
    /// What changed in the generated node config since the last run, as a unified diff
    /// (`nodes` only, when its config changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// One change in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    #[schemars(with = "String")]
    pub address: Address,
    pub kind: ChangeKind,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub cloud: Option<CloudKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub region: Option<RegionId>,
    /// The live resource's id, when one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Attrs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Attrs>,
    /// Why, for people: under every replace and destroy. Never steers apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<Excluded>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<HostsChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageChange>,
    /// Addresses that must be applied first (for deletes, the graph runs these edges reversed).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub depends_on: Vec<Address>,
}

impl Change {
    pub fn new(address: Address, kind: ChangeKind, action: Action) -> Self {
        Change {
            address,
            kind,
            action,
            cloud: None,
            region: None,
            live_id: None,
            before: None,
            after: None,
            reason: None,
            excluded: None,
            hosts: None,
            stage: None,
            depends_on: Vec::new(),
        }
    }

    /// Hosts added and destroyed by this change (0 for other kinds).
    pub fn host_counts(&self) -> (u64, u64) {
        match (&self.hosts, self.action) {
            (Some(h), a) if a.changes_something() => (h.add_hosts, h.destroy.len() as u64),
            _ => (0, 0),
        }
    }
}

/// `Plan: A to add, C to change, D to destroy.` (hosts counted one by one) and stages to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub add: u64,
    pub change: u64,
    pub destroy: u64,
    /// Stages that run.
    pub run: u64,
}

impl Summary {
    pub fn of(changes: &[Change]) -> Self {
        let mut s = Summary::default();
        for c in changes {
            if c.kind == ChangeKind::Hosts {
                let (add, destroy) = c.host_counts();
                s.add += add;
                s.destroy += destroy;
                continue;
            }
            match c.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace => {
                    s.add += 1;
                    s.destroy += 1;
                }
                Action::Delete => s.destroy += 1,
                Action::Run => s.run += 1,
                Action::NoOp | Action::Read => {}
            }
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        *self == Summary::default()
    }
}

/// What the plan was computed from: apply refuses it when any of this moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Basis {
    /// SHA-256 of the spec file.
    #[schemars(with = "String")]
    pub spec: Fingerprint,
    /// The journal's last serial.
    #[schemars(with = "u64")]
    pub journal_serial: Serial,
    /// Per address, what existed (ids; hosts as a count and a digest of their ids).
    pub live: BTreeMap<String, String>,
    /// SHA-256 of `live`.
    #[schemars(with = "String")]
    pub live_digest: Fingerprint,
}

/// A cloud call an interrupted apply left without an outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PendingCall {
    #[schemars(with = "u64")]
    pub serial: Serial,
    #[schemars(with = "String")]
    pub address: Address,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// Whether the plan makes the spec exist or removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Apply,
    Destroy,
}

/// A plan: changes in dependency order, with what they were computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "cfxm plan")]
pub struct Plan {
    pub format: u32,
    /// A digest of the plan; client tokens of its cloud calls derive from it.
    pub id: String,
    pub mode: Mode,
    #[schemars(with = "String")]
    pub spec: SpecName,
    #[schemars(with = "String")]
    pub owner: Owner,
    #[schemars(with = "String")]
    pub created_at: DateTime<Utc>,
    /// `--only` / `--skip` as given (empty: everything).
    pub selection: String,
    pub summary: Summary,
    pub changes: Vec<Change>,
    pub basis: Basis,
    /// Things to know that do not stop the plan (open SSH, interrupted calls...).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Calls of an interrupted apply without an outcome; apply settles them first.
    #[serde(default)]
    pub pending: Vec<PendingCall>,
}

impl Plan {
    /// Whether applying changes nothing (for `--detailed-exitcode`).
    pub fn is_noop(&self) -> bool {
        self.summary.is_empty() && self.changes.iter().all(|c| !c.action.changes_something())
    }

    pub fn get(&self, address: &Address) -> Option<&Change> {
        self.changes.iter().find(|c| &c.address == address)
    }

    /// The changes as a petgraph DAG (node weights index `changes`; an edge `a → b` means `b`
    /// depends on `a`). Dependencies on addresses outside the plan are dropped.
    pub fn graph(&self) -> DiGraph<usize, ()> {
        let mut g = DiGraph::with_capacity(self.changes.len(), self.changes.len() * 2);
        let index: BTreeMap<&Address, NodeIndex> = self
            .changes
            .iter()
            .enumerate()
            .map(|(i, c)| (&c.address, g.add_node(i)))
            .collect();
        for c in &self.changes {
            let to = index[&c.address];
            for d in &c.depends_on {
                if let Some(&from) = index.get(d) {
                    g.add_edge(from, to, ());
                }
            }
        }
        g
    }
}

/// The JSON Schema of a saved plan / `plan --format json` (draft 2020-12).
pub fn json_schema() -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(Plan)).expect("a schemars schema is plain JSON");
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            "https://github.com/cfxm/cfxm/schemas/plan.schema.json".into(),
        );
    }
    schema
}

/// The schema as pretty JSON with a trailing newline: `schemas/plan.schema.json`.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).expect("JSON serializes");
    text.push('\n');
    text
}
