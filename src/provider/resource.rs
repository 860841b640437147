//! The cloud-neutral resource vocabulary and the [`Provider`] trait (DESIGN §5): what the
//! reconciler (discover, plan, apply) knows about a cloud, so a new cloud plugs in by
//! implementing one trait, without touching the reconciler.
//!
//! A region's network is a fixed shape of [`Kind`]s, each one resource: a network (VPC), an
//! optional gateway (AWS's internet gateway and default route; Aliyun needs none), a subnet per
//! zone (a vSwitch on Aliyun), a security group and its peer rules, a key pair, an image (read
//! only) and one hosts group. A provider says which kinds it uses ([`Provider::kinds`]) and how
//! it names them ([`Provider::noun`]); the planner wires them in a fixed dependency order:
//!
//! ```text
//! network → gateway → subnet/<zone> ─┐
//! network → security_group ──────────┼─→ hosts → (all hosts) → security_group/peers → stages
//! key_pair, image ───────────────────┘
//! ```
//!
//! Everything a provider creates carries the three tags of [`TagScope::create_tags`] in the
//! create call itself, and discovery keeps only what matches a [`TagScope`] exactly
//! ([`TagScope::classify`]): never by prefix, never by name alone (DESIGN §6).
//!
//! Mutations go through [`Mutations`] (journal first, retry policy, deterministic client
//! tokens); reads go through the provider's own rate buckets and the same retry policy.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ErrorClass;
use crate::apply::{Classify, Mutations, StepError};
use crate::spec::{CloudKind, InstanceType, Owner, RegionId, SpecName, ZoneId};
use crate::ssh::BoxFuture;
use crate::state::{ClientToken, Intent};

/// The marker tag every cfxm resource carries (the original tool's common tag).
pub const TAG_MARKER: &str = "conflux-massive-test";
/// The marker tag's value.
pub const TAG_MARKER_VALUE: &str = "true";
/// The owner tag (the original's `user_tag`).
pub const TAG_OWNER: &str = "user";
/// The spec tag: which experiment a resource belongs to.
pub const TAG_SPEC: &str = "cfxm-spec";

/// A resource's tags, by key.
pub type Tags = BTreeMap<String, String>;

/// The kinds of resource in a region.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The region's private network (an Aliyun VPC, an AWS VPC).
    Network,
    /// What routes the network to the internet, where the cloud needs one (AWS: an internet
    /// gateway attached to the VPC plus the default route). Aliyun does not.
    Gateway,
    /// The network's block in one zone (an Aliyun vSwitch, an AWS subnet).
    Subnet,
    /// The hosts' firewall: SSH from `ssh_from`, node ports from the network only (cfxm drives
    /// the nodes' JSON-RPC through SSH).
    SecurityGroup,
    /// The security group's rules for the experiment's hosts in other regions (known once every
    /// region's hosts exist).
    Peers,
    /// The spec's SSH key, imported.
    KeyPair,
    /// The image hosts boot from: read, never created.
    Image,
    /// The region's hosts, as one group.
    Hosts,
}

impl Kind {
    /// Whether the planner creates and deletes resources of this kind (the image it only
    /// reads; hosts are a group with their own placement).
    pub fn is_infra(self) -> bool {
        !matches!(self, Kind::Image | Kind::Hosts)
    }
}

/// Which resources a discovery or destroy covers: an owner's, and one spec's or all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagScope {
    pub owner: Owner,
    /// `None`: every spec of the owner (`destroy --owner`); resources must still carry a
    /// `cfxm-spec` tag, so half-tagged ones are never touched.
    pub spec: Option<SpecName>,
}

impl TagScope {
    pub fn spec(owner: &Owner, spec: &SpecName) -> Self {
        TagScope {
            owner: owner.clone(),
            spec: Some(spec.clone()),
        }
    }

    pub fn owner(owner: &Owner) -> Self {
        TagScope {
            owner: owner.clone(),
            spec: None,
        }
    }

    /// The tags a new resource of `spec` carries, sent in its create call.
    pub fn create_tags(owner: &Owner, spec: &SpecName) -> Tags {
        Tags::from([
            (TAG_MARKER.to_owned(), TAG_MARKER_VALUE.to_owned()),
            (TAG_OWNER.to_owned(), owner.to_string()),
            (TAG_SPEC.to_owned(), spec.to_string()),
        ])
    }

    /// The server-side filter: all three tags ANDed; without a spec, the spec tag by key only
    /// (any value). Results are checked again with [`TagScope::classify`].
    pub fn filter(&self) -> Vec<(String, String)> {
        vec![
            (TAG_MARKER.to_owned(), TAG_MARKER_VALUE.to_owned()),
            (TAG_OWNER.to_owned(), self.owner.to_string()),
            (
                TAG_SPEC.to_owned(),
                self.spec
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
        ]
    }

    /// The spec a resource belongs to, if its tags match the scope exactly: the marker is
    /// `true`, the owner tag equals the owner (`alice` never matches `alice2`), and the spec tag
    /// is present, non-empty and (for a spec scope) equal to the spec.
    pub fn classify(&self, tags: &Tags) -> Option<SpecName> {
        if tags.get(TAG_MARKER).map(String::as_str) != Some(TAG_MARKER_VALUE)
            || tags.get(TAG_OWNER).map(String::as_str) != Some(self.owner.as_str())
        {
            return None;
        }
        let spec = tags.get(TAG_SPEC).filter(|s| !s.is_empty())?;
        match &self.spec {
            Some(want) if want.as_str() != spec => None,
            _ => Some(SpecName::new(spec.clone())),
        }
    }
}

/// One TCP ingress rule.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct Rule {
    /// `tcp` (lowercase).
    pub protocol: String,
    pub from_port: u16,
    pub to_port: u16,
    /// An IPv4 block, e.g. `203.0.113.7/32`.
    pub source: String,
    /// Why the rule exists: `ssh`, `vpc` or `peers` for cfxm's rules (stored as the rule's
    /// description `cfxm:<note>`; older versions also wrote `operator`, now revoked as
    /// undesired); empty for a rule cfxm did not write.
    pub note: String,
}

impl Rule {
    pub fn tcp(from_port: u16, to_port: u16, source: impl Into<String>, note: &str) -> Self {
        Rule {
            protocol: "tcp".into(),
            from_port,
            to_port,
            source: source.into(),
            note: note.to_owned(),
        }
    }

    /// What makes two rules the same rule to the cloud (the note is only a label).
    pub fn key(&self) -> (String, u16, u16, String) {
        (
            self.protocol.to_ascii_lowercase(),
            self.from_port,
            self.to_port,
            self.source.clone(),
        )
    }

    /// The description stored with the rule.
    pub fn description(&self) -> String {
        if self.note.is_empty() {
            String::new()
        } else {
            format!("cfxm:{}", self.note)
        }
    }

    /// The note of a stored description (`cfxm:ssh` → `ssh`).
    pub fn note_of(description: &str) -> String {
        description
            .strip_prefix("cfxm:")
            .unwrap_or_default()
            .to_owned()
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports = if self.from_port == self.to_port {
            self.from_port.to_string()
        } else {
            format!("{}-{}", self.from_port, self.to_port)
        };
        write!(f, "{} {ports} from {}", self.protocol, self.source)?;
        if !self.note.is_empty() {
            write!(f, " ({})", self.note)?;
        }
        Ok(())
    }
}

/// An instance type a region may use, in preference order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TypeChoice {
    #[schemars(with = "String")]
    pub name: InstanceType,
    pub nodes_per_host: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_cost_usd: Option<f64>,
}

/// How each host is shaped (disk, bandwidth, billing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InstanceSettings {
    pub disk_gb: u32,
    /// Aliyun's system disk category, or AWS's volume type.
    pub disk_category: String,
    /// Public bandwidth out (Aliyun: above 0 gives each host a public address).
    pub bandwidth_mbps: u32,
    /// Whether every host must have a public address (cfxm reaches hosts, and regions reach
    /// each other, through them); a running host without one is replaced.
    #[serde(default)]
    pub public_ip: bool,
    pub spot: bool,
}

/// What a region's hosts group wants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostsAttrs {
    /// Conflux nodes to run in the region (the spec's count, plus any backfill moved here).
    pub nodes: u32,
    /// Types in preference order; a stock-out moves to the next.
    pub types: Vec<TypeChoice>,
    /// Zones in preference order (one subnet each).
    #[schemars(with = "Vec<String>")]
    pub zones: Vec<ZoneId>,
    /// Name of the image hosts boot from.
    pub image: String,
    /// Name of the key pair hosts accept.
    pub key_pair: String,
    pub settings: InstanceSettings,
    /// Most hosts asked for in one create call (≤ 100).
    pub max_per_call: u32,
}

impl HostsAttrs {
    /// Nodes a host of `instance_type` runs, if the type is one of the region's.
    pub fn nodes_per_host(&self, instance_type: &InstanceType) -> Option<u32> {
        self.types
            .iter()
            .find(|t| &t.name == instance_type)
            .map(|t| t.nodes_per_host)
    }

    /// Hosts needed with the first type: ceil(nodes / nodes_per_host).
    pub fn hosts_estimate(&self) -> u64 {
        let nph = self.types.first().map_or(1, |t| t.nodes_per_host.max(1));
        u64::from(self.nodes).div_ceil(u64::from(nph))
    }
}

/// A resource's attributes: what the spec wants (desired), or what the cloud has (live).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Attrs {
    Network {
        name: String,
        cidr: String,
    },
    Gateway {
        name: String,
    },
    Subnet {
        name: String,
        #[schemars(with = "String")]
        zone: ZoneId,
        cidr: String,
    },
    SecurityGroup {
        name: String,
        /// The rules cfxm manages on the group, peers excluded.
        rules: Vec<Rule>,
    },
    Peers {
        /// Node ports opened to the experiment's hosts in other regions; `None` while those
        /// hosts are still to be applied ("known after apply").
        rules: Option<Vec<Rule>>,
    },
    KeyPair {
        name: String,
        /// As the cloud computes it from the public key.
        fingerprint: String,
        /// The OpenSSH public key line (public: never the private key).
        public_key: String,
    },
    Image {
        name: String,
    },
    Hosts(HostsAttrs),
}

impl Attrs {
    pub fn kind(&self) -> Kind {
        match self {
            Attrs::Network { .. } => Kind::Network,
            Attrs::Gateway { .. } => Kind::Gateway,
            Attrs::Subnet { .. } => Kind::Subnet,
            Attrs::SecurityGroup { .. } => Kind::SecurityGroup,
            Attrs::Peers { .. } => Kind::Peers,
            Attrs::KeyPair { .. } => Kind::KeyPair,
            Attrs::Image { .. } => Kind::Image,
            Attrs::Hosts(_) => Kind::Hosts,
        }
    }

    /// The resource's name, where it has one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Attrs::Network { name, .. }
            | Attrs::Gateway { name }
            | Attrs::Subnet { name, .. }
            | Attrs::SecurityGroup { name, .. }
            | Attrs::KeyPair { name, .. }
            | Attrs::Image { name } => Some(name),
            Attrs::Peers { .. } | Attrs::Hosts(_) => None,
        }
    }

    /// One `key = value` line per attribute, in a fixed order: what plans show and diff.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut kv = |k: &str, v: &dyn fmt::Display| out.push(format!("{k} = {v}"));
        match self {
            Attrs::Network { name, cidr } => {
                kv("name", name);
                kv("cidr", cidr);
            }
            Attrs::Gateway { name } => kv("name", name),
            Attrs::Subnet { name, zone, cidr } => {
                kv("name", name);
                kv("zone", zone);
                kv("cidr", cidr);
            }
            Attrs::SecurityGroup { name, rules } => {
                kv("name", name);
                let mut sorted = rules.clone();
                sorted.sort();
                for r in sorted {
                    kv("rule", &r);
                }
            }
            Attrs::Peers { rules: None } => kv("rules", &"(known after the hosts are applied)"),
            Attrs::Peers { rules: Some(rules) } => {
                let mut sorted = rules.clone();
                sorted.sort();
                for r in sorted {
                    kv("rule", &r);
                }
            }
            Attrs::KeyPair {
                name, fingerprint, ..
            } => {
                kv("name", name);
                kv("fingerprint", fingerprint);
            }
            Attrs::Image { name } => kv("name", name),
            Attrs::Hosts(h) => {
                kv("nodes", &h.nodes);
                let types: Vec<String> = h
                    .types
                    .iter()
                    .map(|t| format!("{} ({} per host)", t.name, t.nodes_per_host))
                    .collect();
                kv("types", &types.join(", "));
                let zones: Vec<&str> = h.zones.iter().map(ZoneId::as_str).collect();
                kv("zones", &zones.join(", "));
                kv("image", &h.image);
                kv("key_pair", &h.key_pair);
                kv(
                    "disk",
                    &format!("{} GB {}", h.settings.disk_gb, h.settings.disk_category),
                );
                kv("bandwidth_mbps", &h.settings.bandwidth_mbps);
                kv("spot", &h.settings.spot);
            }
        }
        out
    }
}

/// A resource as the cloud has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LiveResource {
    pub kind: Kind,
    /// The cloud's id (a key pair's name, where the cloud ids key pairs by name).
    pub id: String,
    #[schemars(with = "String")]
    pub region: RegionId,
    /// As the cloud reports it (`Available`, `Pending`...).
    pub status: String,
    pub attrs: Attrs,
    /// The network a subnet or security group is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub tags: Tags,
}

/// A host's life-cycle state, as the reconciler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    Pending,
    Starting,
    Running,
    Stopping,
    Stopped,
    /// A state the cloud added that cfxm does not know.
    Unknown,
}

impl HostStatus {
    /// Whether the host is, or is on its way to being, usable.
    pub fn is_coming_up(self) -> bool {
        matches!(
            self,
            HostStatus::Pending | HostStatus::Starting | HostStatus::Running
        )
    }
}

impl fmt::Display for HostStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostStatus::Pending => "Pending",
            HostStatus::Starting => "Starting",
            HostStatus::Running => "Running",
            HostStatus::Stopping => "Stopping",
            HostStatus::Stopped => "Stopped",
            HostStatus::Unknown => "Unknown",
        })
    }
}

/// One cloud instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LiveInstance {
    pub id: String,
    #[schemars(with = "String")]
    pub region: RegionId,
    #[schemars(with = "String")]
    pub zone: ZoneId,
    #[schemars(with = "String")]
    pub instance_type: InstanceType,
    pub status: HostStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<IpAddr>,
    /// The subnet (vSwitch) it is in.
    pub subnet_id: String,
    pub key_pair: String,
    pub tags: Tags,
}

/// A zone and the spec's instance types on sale there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneOffer {
    pub zone: ZoneId,
    /// Instance types sold in the zone (all of them; the planner intersects with the spec's).
    pub types: Vec<InstanceType>,
}

/// An image found by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub id: String,
    pub name: String,
    /// `Available` when usable.
    pub status: String,
}

/// Everything of a scope in one region.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionScan {
    pub resources: Vec<LiveResource>,
    pub instances: Vec<LiveInstance>,
}

/// One create call for hosts: `amount` instances of one type in one zone, at least `min_amount`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    pub region: RegionId,
    pub zone: ZoneId,
    pub subnet_id: String,
    pub security_group_id: String,
    pub image_id: String,
    pub key_pair: String,
    pub instance_type: InstanceType,
    pub amount: u32,
    pub min_amount: u32,
    pub settings: InstanceSettings,
    /// Instance name (shared by the batch).
    pub name: String,
    pub tags: Tags,
}

/// A failed cloud call, classified once by the provider that parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderError {
    pub class: ErrorClass,
    /// The API action, e.g. `RunInstances`.
    pub action: String,
    pub code: String,
    /// The whole message: action, region, code, request id, the cloud's words and advice.
    pub message: String,
}

impl ProviderError {
    /// A failure cfxm itself detected (an answer that makes no sense, a missing parent).
    pub fn local(action: &str, class: ErrorClass, message: impl Into<String>) -> Self {
        ProviderError {
            class,
            action: action.to_owned(),
            code: "cfxm".into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProviderError {}

impl Classify for ProviderError {
    fn class(&self) -> ErrorClass {
        self.class
    }
}

impl From<super::aliyun::AliyunError> for ProviderError {
    fn from(e: super::aliyun::AliyunError) -> Self {
        ProviderError {
            class: e.class,
            action: e.action.to_owned(),
            code: e.code.clone(),
            message: e.to_string(),
        }
    }
}

/// A cloud, as the reconciler drives it. Implementations: `aliyun::AliyunProvider`.
///
/// Reads (`regions`, `zones`, `find_image`, `scan`, `instance_status`, `describe_instances`)
/// pace themselves with the provider's rate buckets and retry transient failures; they are
/// never journaled. Mutations take a [`Mutations`] and make every cloud call through
/// [`Mutations::call`], which journals the intent first, retries under the policy, and records
/// the outcome; they tag in the create call and wait until what they created is usable.
pub trait Provider: Send + Sync {
    fn cloud(&self) -> CloudKind;

    /// The infra kinds of one region's network, in dependency order (a subset of network,
    /// gateway, subnet, security group, peers, key pair).
    fn kinds(&self) -> &'static [Kind];

    /// What the cloud calls `kind`, for addresses and plans (`vswitch` on Aliyun).
    fn noun(&self, kind: Kind) -> &'static str;

    /// The fingerprint the cloud shows for an imported OpenSSH public key line, computed the
    /// cloud's way (Aliyun: hex MD5 of the key blob), so a key pair can be checked against
    /// the spec's key without trusting its name.
    fn fingerprint(&self, public_key: &str) -> Option<String>;

    /// Every region the account can use.
    fn regions(&self) -> BoxFuture<'_, Result<Vec<RegionId>, ProviderError>>;

    /// A region's zones, in the cloud's order, with the types on sale.
    fn zones<'a>(
        &'a self,
        region: &'a RegionId,
    ) -> BoxFuture<'a, Result<Vec<ZoneOffer>, ProviderError>>;

    /// The account's image named `name` in `region` (exact name).
    fn find_image<'a>(
        &'a self,
        region: &'a RegionId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ImageRef>, ProviderError>>;

    /// Every resource and instance in `region` whose tags match `scope` exactly (fleets above
    /// the cloud's tag-filter caps included), with status and addresses.
    fn scan<'a>(
        &'a self,
        region: &'a RegionId,
        scope: &'a TagScope,
    ) -> BoxFuture<'a, Result<RegionScan, ProviderError>>;

    /// Creates one infra resource (`want`'s kind) tagged `tags`, inside `parent` (the network
    /// of a subnet or security group), and waits until it is usable.
    fn create<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        region: &'a RegionId,
        want: &'a Attrs,
        parent: Option<&'a LiveResource>,
        tags: &'a Tags,
    ) -> BoxFuture<'a, Result<LiveResource, StepError>>;

    /// Brings `live` in line with `want` in place (security group and peer rules).
    fn update<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        live: &'a LiveResource,
        want: &'a Attrs,
    ) -> BoxFuture<'a, Result<LiveResource, StepError>>;

    /// Deletes one infra resource; a resource already gone is success. Retries while
    /// dependants are still being released, within the policy's budget.
    fn delete<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        live: &'a LiveResource,
    ) -> BoxFuture<'a, Result<(), StepError>>;

    /// One create call for hosts, with `token` for idempotency; returns the ids it created
    /// (possibly fewer than asked: a partial fill). No capacity is `StepError::Cloud` whose
    /// error `is_replan()`.
    fn launch<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        batch: &'a Launch,
        token: ClientToken,
    ) -> BoxFuture<'a, Result<Vec<String>, StepError>>;

    /// Statuses of `ids` (any number; batched by the provider). Unknown ids are absent.
    fn instance_status<'a>(
        &'a self,
        region: &'a RegionId,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<(String, HostStatus)>, ProviderError>>;

    /// Instances by id, with addresses (any number; batched). Unknown ids are absent.
    fn describe_instances<'a>(
        &'a self,
        region: &'a RegionId,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<LiveInstance>, ProviderError>>;

    /// Starts deleting instances (any number; batched); ids already gone are skipped.
    fn terminate<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        region: &'a RegionId,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<(), StepError>>;

    /// Re-issues a journaled mutation that has no outcome (its apply died during the call),
    /// identically (same token, same parameters), when the action is idempotent: the cloud
    /// answers what it answered then, creating nothing twice. Returns the ids, or `None` when
    /// the action cannot be re-issued safely (discovery by tags finds its result instead).
    fn settle<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        intent: &'a Intent,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, StepError>>;
}

/// A failed read in the middle of a mutation: the step stops (the read has its own retries).
pub(crate) fn read_failed(e: ProviderError) -> StepError {
    StepError::from(crate::apply::retry::Stopped {
        error: e,
        decision: crate::apply::Decision::Stop(crate::apply::StopReason::Fatal),
        attempts: 1,
        elapsed: std::time::Duration::ZERO,
    })
}

/// Polls `state()` every `poll` until it says `available` (a new VPC, vSwitch or subnet) and
/// returns that status. Absent (`None`, or a NotFound read) right after the create is read lag,
/// not failure (aliyun-api.md §4.2); still not available after `ready` fails the step with a fix.
/// `cloud` names the cloud in that fix.
pub(crate) async fn wait_available<F, Fut>(
    m: &Mutations<'_>,
    region: &RegionId,
    id: &str,
    (ready, poll): (std::time::Duration, std::time::Duration),
    cloud: &str,
    mut state: F,
) -> Result<String, StepError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, ProviderError>>,
{
    // tokio's clock: tests that pause time see the wait end without waiting.
    let started = tokio::time::Instant::now();
    loop {
        let now = match state().await {
            Ok(s) => s,
            Err(e) if e.class == ErrorClass::NotFound => None,
            Err(e) => return Err(read_failed(e)),
        };
        if let Some(s) = &now
            && s.eq_ignore_ascii_case("available")
        {
            return Ok(s.clone());
        }
        if started.elapsed() >= ready {
            return Err(StepError::failed(
                format!(
                    "`{id}` in `{region}` is still {} after {}",
                    now.as_deref().unwrap_or("invisible"),
                    humantime::format_duration(ready)
                ),
                format!("{cloud} is slow to provision networks; run `cfxm apply` again to resume"),
            ));
        }
        m.progress(format!(
            "waiting for `{id}` to be Available ({})",
            now.as_deref().unwrap_or("not visible yet")
        ));
        m.sleep(poll).await?;
    }
}

/// Deletes instances `batch` at a time with `delete`. Both clouds refuse a whole call when one id
/// is already gone (Aliyun's DeleteInstances, EC2's `InvalidInstanceID.NotFound`): such a
/// refusal ([`StepError::is_done`]) re-reads which still stand with `still_there` and retries
/// with those, at most four rounds a batch (each round drops the gone ones). What is left then
/// fails the step, listed, with `verb` ("deleted", "terminated") in the message.
///
/// The closures take the ids by value: their futures then borrow nothing from this function,
/// which keeps them `Send` inside the providers' boxed futures.
pub(crate) async fn delete_instances_in_rounds<D, DF, S, SF>(
    region: &RegionId,
    verb: &str,
    ids: &[String],
    batch: usize,
    mut delete: D,
    mut still_there: S,
) -> Result<(), StepError>
where
    D: FnMut(Vec<String>) -> DF,
    DF: std::future::Future<Output = Result<(), StepError>>,
    S: FnMut(Vec<String>) -> SF,
    SF: std::future::Future<Output = Result<Vec<String>, StepError>>,
{
    for chunk in ids.chunks(batch.max(1)) {
        let mut left: Vec<String> = chunk.to_vec();
        for _round in 0..4 {
            if left.is_empty() {
                break;
            }
            match delete(left.clone()).await {
                Ok(()) => left.clear(),
                Err(e) if e.is_done() => left = still_there(left).await?,
                Err(e) => return Err(e),
            }
        }
        if !left.is_empty() {
            return Err(StepError::failed(
                format!(
                    "{} instance(s) in `{region}` could not be {verb}: {}",
                    left.len(),
                    left.join(", ")
                ),
                "run `cfxm destroy` again; it retries what is left",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn scopes_match_tags_exactly() {
        let alice = Owner::new("alice");
        let spec = SpecName::new("lat");
        let scope = TagScope::spec(&alice, &spec);
        let full = TagScope::create_tags(&alice, &spec);
        assert_eq!(scope.classify(&full), Some(spec.clone()));
        // `alice2` is not `alice`, and the spec must be this one.
        let alice2 = TagScope::create_tags(&Owner::new("alice2"), &spec);
        assert_eq!(scope.classify(&alice2), None);
        let other = TagScope::create_tags(&alice, &SpecName::new("lat2"));
        assert_eq!(scope.classify(&other), None);
        // Half-tagged or untagged resources are never in scope, not even the owner's.
        let half = tags(&[("conflux-massive-test", "true"), ("user", "alice")]);
        assert_eq!(scope.classify(&half), None);
        assert_eq!(TagScope::owner(&alice).classify(&half), None);
        assert_eq!(scope.classify(&Tags::new()), None);
        let wrong_marker = tags(&[
            ("conflux-massive-test", "yes"),
            ("user", "alice"),
            ("cfxm-spec", "lat"),
        ]);
        assert_eq!(scope.classify(&wrong_marker), None);
        // An owner scope takes every spec of the owner, by name.
        assert_eq!(
            TagScope::owner(&alice).classify(&other),
            Some(SpecName::new("lat2"))
        );
        assert_eq!(TagScope::owner(&alice).classify(&alice2), None);
        assert_eq!(
            TagScope::owner(&alice).filter()[2],
            ("cfxm-spec".to_owned(), String::new())
        );
    }

    #[test]
    fn rules_show_ports_and_purpose_and_compare_without_it() {
        let r = Rule::tcp(22, 22, "203.0.113.7/32", "ssh");
        assert_eq!(r.to_string(), "tcp 22 from 203.0.113.7/32 (ssh)");
        assert_eq!(
            Rule::tcp(11000, 11009, "10.0.0.0/16", "vpc").to_string(),
            "tcp 11000-11009 from 10.0.0.0/16 (vpc)"
        );
        assert_eq!(r.description(), "cfxm:ssh");
        assert_eq!(Rule::note_of("cfxm:peers"), "peers");
        assert_eq!(Rule::note_of("hand-made"), "");
        let mut manual = r.clone();
        manual.note.clear();
        assert_eq!(manual.key(), r.key());
    }
}
