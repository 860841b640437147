//! The spec as the user writes it: a serde mirror of the YAML, one struct per mapping.
//!
//! These types are the contract. `cfxm schema` prints the JSON Schema derived from them (doc
//! comments become descriptions, which editors show on hover and which the validator uses as the
//! help line of a diagnostic). Defaults come from the original tool (original-tool.md §2.1,
//! §2.8, §5.2) so a minimal spec is a few lines. Nothing here is validated beyond its shape:
//! `spec::validate` turns a `RawSpec` into a checked [`crate::spec::Spec`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Regex for names that become cloud tag values and resource-name parts.
pub(crate) const NAME_PATTERN: &str = r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$";
/// Regex for a human duration such as `175ms`, `30s`, `30m`, `1h 30m`.
pub(crate) const DURATION_PATTERN: &str =
    r"^\s*([0-9]+(\.[0-9]+)?\s*(ns|us|µs|ms|s|sec|m|min|h|hr|d)\s*)+$";

/// One experiment: what should exist in the cloud, and what runs on it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "cfxm spec")]
pub struct RawSpec {
    /// Identifies this experiment; becomes the `cfxm-spec` tag on every resource and names the
    /// state directory. Lowercase letters, digits and `-`, starting with a letter, at most 40.
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Who owns the resources: the `user` tag, and part of resource names
    /// (`conflux-massive-test-<owner>`). Lowercase letters, digits and `-`, starting with a letter,
    /// at most 40.
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub owner: String,
    /// Where the hosts come from. Several clouds may be used at once (`aliyun` and `aws`);
    /// `local` runs everything on this machine and stands alone.
    pub cloud: RawClouds,
    /// How hosts are placed on real stock.
    #[serde(default)]
    pub placement: RawPlacement,
    /// Hard limits checked before anything is created.
    #[serde(default)]
    pub limits: RawLimits,
    /// The Conflux node: image and config overrides.
    #[serde(default)]
    pub node: RawNode,
    /// What runs once the hosts are up.
    #[serde(default)]
    pub experiment: RawExperiment,
    /// What the latency report shows.
    #[serde(default)]
    pub report: RawReport,
}

/// The clouds that provide hosts; name at least one.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1))]
pub struct RawClouds {
    /// Alibaba Cloud ECS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliyun: Option<RawAliyun>,
    /// AWS EC2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<RawAws>,
    /// The built-in cloud: an Aliyun-compatible emulator and stand-in nodes on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<RawLocal>,
    /// Existing hosts listed in an inventory (the original tool's `hosts.json`); never created or
    /// deleted by cfxm.
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_hosts: Option<RawStatic>,
}

/// Alibaba Cloud ECS hosts.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAliyun {
    /// Name of the custom image (owned by the account, in every region) the hosts boot from.
    #[serde(default = "default_aliyun_image")]
    pub image: String,
    /// SSH private key (PEM or OpenSSH), relative to the spec file. Its public half is imported
    /// as the key pair.
    #[serde(default = "default_ssh_key")]
    pub ssh_key: String,
    /// SSH user on the hosts.
    #[serde(default = "default_root")]
    pub ssh_user: String,
    /// The network cfxm creates (or reuses) in each region.
    #[serde(default)]
    pub network: RawNetwork,
    /// Disk, bandwidth and billing of each host.
    #[serde(default)]
    pub instance: RawAliyunInstance,
    /// Instance types in preference order; a stock-out moves to the next one.
    #[schemars(length(min = 1))]
    pub instance_types: Vec<RawInstanceType>,
    /// Regions and how many Conflux nodes run in each.
    #[schemars(length(min = 1))]
    pub regions: Vec<RawRegion>,
    /// API access key. Prefer the environment (`ALIBABA_CLOUD_ACCESS_KEY_ID` and
    /// `ALIBABA_CLOUD_ACCESS_KEY_SECRET`, or the aliyun CLI's profile) to committing a secret;
    /// when given here it wins over them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<RawAliyunCredentials>,
    /// One endpoint URL for every region and both APIs, e.g. an emulator at
    /// `http://127.0.0.1:8080`. The environment's `CFXM_ALIYUN_ENDPOINT` overrides it; absent,
    /// the real regional endpoints are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// An Aliyun access key pair (both halves, or neither).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAliyunCredentials {
    /// The access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The access key secret. Never printed or saved by cfxm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<String>,
}

/// AWS EC2 hosts.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    /// Name of the AMI (owned by the account, in every region) the hosts boot from.
    #[serde(default = "default_aliyun_image")]
    pub image: String,
    /// SSH private key (PEM or OpenSSH), relative to the spec file. Its public half is imported
    /// as the key pair.
    #[serde(default = "default_ssh_key")]
    pub ssh_key: String,
    /// SSH user on the hosts.
    #[serde(default = "default_ubuntu")]
    pub ssh_user: String,
    /// The network cfxm creates (or reuses) in each region.
    #[serde(default)]
    pub network: RawNetwork,
    /// Disk and billing of each host.
    #[serde(default)]
    pub instance: RawAwsInstance,
    /// Instance types in preference order; a capacity error moves to the next one.
    #[schemars(length(min = 1))]
    pub instance_types: Vec<RawInstanceType>,
    /// Regions and how many Conflux nodes run in each.
    #[schemars(length(min = 1))]
    pub regions: Vec<RawRegion>,
}

/// The built-in cloud on this machine: no account, no cost.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLocal {
    /// Instance types in preference order (names from the emulator's world).
    #[serde(default = "default_local_types")]
    #[schemars(length(min = 1))]
    pub instance_types: Vec<RawInstanceType>,
    /// Regions (names from the emulator's world) and how many nodes run in each.
    #[schemars(length(min = 1))]
    pub regions: Vec<RawRegion>,
}

/// Existing hosts from an inventory file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStatic {
    /// Path of a `hosts.json` in the original tool's nine-field format, relative to the spec.
    pub inventory: String,
    /// SSH port of every host in the inventory (the format has no port field).
    #[serde(default = "default_ssh_port")]
    #[schemars(range(min = 1))]
    pub ssh_port: u16,
}

/// One instance type and how many nodes share a host of it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInstanceType {
    /// The cloud's instance type name, e.g. `ecs.g8i.2xlarge` or `m6i.2xlarge`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Conflux nodes per host of this type (about 4 vCPUs per node).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub nodes_per_host: u32,
    /// Expected price of one host per hour in USD, for `limits.max_hourly_cost_usd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub hourly_cost_usd: Option<f64>,
}

/// One region and its nodes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    /// The cloud's region id, e.g. `ap-southeast-1`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Conflux nodes to run in this region (at least 1).
    #[schemars(range(min = 1))]
    pub nodes: u32,
    /// Zones to use, in preference order; all zones of the region when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<String>>,
    /// Instance types for this region only, replacing the cloud's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub instance_types: Option<Vec<RawInstanceType>>,
}

/// The network of each region.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// Create the VPC, switches, security group and key pair when missing.
    #[serde(default = "yes")]
    pub create: bool,
    /// The VPC's address block; each zone gets a /20 inside it.
    #[serde(default = "default_cidr")]
    pub cidr: String,
    /// Address blocks allowed to reach SSH (port 22). Node ports are only ever open inside the
    /// VPC and to the experiment's own hosts.
    #[serde(default = "default_ssh_from")]
    pub ssh_from: Vec<String>,
}

/// Per-host settings on Aliyun.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAliyunInstance {
    /// System disk size in GB.
    #[serde(default = "default_disk_gb")]
    #[schemars(range(min = 20, max = 32768))]
    pub disk_gb: u32,
    /// System disk category.
    #[serde(default = "default_disk_category")]
    pub disk_category: String,
    /// Public bandwidth out in Mbit/s (pay by traffic); above 0 gives each host a public IP.
    #[serde(default = "default_bandwidth")]
    #[schemars(range(min = 0, max = 1000))]
    pub bandwidth_mbps: u32,
    /// Use spot instances (`SpotAsPriceGo`) instead of pay-as-you-go.
    #[serde(default)]
    pub spot: bool,
}

/// Per-host settings on AWS.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAwsInstance {
    /// Root volume size in GB.
    #[serde(default = "default_disk_gb")]
    #[schemars(range(min = 8, max = 16384))]
    pub disk_gb: u32,
    /// Root volume type.
    #[serde(default = "default_volume_type")]
    pub volume_type: String,
    /// Root volume IOPS.
    #[serde(default = "default_iops")]
    #[schemars(range(min = 3000))]
    pub iops: u32,
    /// Root volume throughput in MB/s.
    #[serde(default = "default_throughput")]
    #[schemars(range(min = 125))]
    pub throughput_mbps: u32,
    /// Use spot instances instead of on-demand.
    #[serde(default)]
    pub spot: bool,
}

/// Placement of hosts over instance types, zones and regions.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPlacement {
    /// Most hosts asked for in one create call (the cloud allows 100).
    #[serde(default = "default_max_per_call")]
    #[schemars(range(min = 1, max = 100))]
    pub max_hosts_per_call: u32,
    /// Move a region's shortfall to regions of the same cloud that still have stock.
    #[serde(default = "yes")]
    pub backfill: bool,
}

/// Limits that stop a plan before anything is created.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Most hosts this spec may run in total, counted with the smallest `nodes_per_host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_hosts: Option<u32>,
    /// Most this spec may cost per hour in USD, from the instance types' `hourly_cost_usd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub max_hourly_cost_usd: Option<f64>,
}

/// The Conflux node.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// Docker image of the node on cloud hosts.
    #[serde(default = "default_node_image")]
    pub image: String,
    /// Overrides on top of the generated `conflux.toml` (key = value).
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
}

/// One value of `conflux.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ConfigValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// A string (written quoted).
    Str(String),
}

/// The experiment that runs on the hosts.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    /// Who connects to whom.
    #[serde(default)]
    pub topology: RawTopology,
    /// Extra latency injected between nodes of different regions (`test_addLatency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<RawLatency>,
    /// Transaction generation.
    #[serde(default)]
    pub transactions: RawTransactions,
    /// Block generation.
    #[serde(default)]
    pub blocks: RawBlocks,
}

/// A ring plus random peers, reproducible from the seed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTopology {
    /// Peers per node (ring neighbours included); `min(8, nodes - 1)` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub peers: Option<u32>,
    /// Seed of the random peer choice.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// Latency between regions, as `default` and `<region>/<region>` keys.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLatency {
    /// `default: 80ms` and `ap-southeast-1/cn-hongkong: 35ms`; the pair's order does not matter.
    pub between_regions: BTreeMap<String, HumanDuration>,
}

/// Transactions generated by the nodes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTransactions {
    /// Transactions per second for the whole network; 0 turns generation off.
    #[serde(default = "default_tps")]
    pub tps: u32,
}

/// Blocks generated on random nodes with exponential gaps.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBlocks {
    /// Number of blocks.
    #[serde(default = "default_block_count")]
    #[schemars(range(min = 1))]
    pub count: u32,
    /// Mean gap between blocks.
    #[serde(default = "default_mean_interval")]
    pub mean_interval: HumanDuration,
    /// Least time between two blocks on the same node.
    #[serde(default = "default_min_node_gap")]
    pub min_node_gap: HumanDuration,
    /// Largest block in bytes.
    #[serde(default = "default_max_bytes")]
    #[schemars(range(min = 1))]
    pub max_bytes: u32,
}

/// The latency report.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    /// Percentiles printed for every latency, each in (0, 100].
    #[serde(default = "default_percentiles")]
    #[schemars(length(min = 1))]
    pub percentiles: Vec<Percentile>,
}

/// A percentile in (0, 100].
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Percentile(#[schemars(extend("exclusiveMinimum" = 0, "maximum" = 100))] pub f64);

/// A duration written for humans: `175ms`, `30s`, `30m`, `1h 30m`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct HumanDuration(#[schemars(regex(pattern = DURATION_PATTERN))] pub String);

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn default_aliyun_image() -> String {
    "conflux-docker-registry".into()
}
fn default_ssh_key() -> String {
    "keys/ssh-key.pem".into()
}
fn default_ssh_port() -> u16 {
    22
}
fn default_root() -> String {
    "root".into()
}
fn default_ubuntu() -> String {
    "ubuntu".into()
}
fn default_cidr() -> String {
    "10.0.0.0/16".into()
}
fn default_ssh_from() -> Vec<String> {
    vec!["0.0.0.0/0".into()]
}
fn default_disk_gb() -> u32 {
    40
}
fn default_disk_category() -> String {
    "cloud_essd".into()
}
fn default_bandwidth() -> u32 {
    100
}
fn default_volume_type() -> String {
    "gp3".into()
}
fn default_iops() -> u32 {
    3000
}
fn default_throughput() -> u32 {
    300
}
fn default_max_per_call() -> u32 {
    100
}
fn default_local_types() -> Vec<RawInstanceType> {
    vec![RawInstanceType {
        name: "ecs.g8i.2xlarge".into(),
        nodes_per_host: 1,
        hourly_cost_usd: None,
    }]
}
fn default_node_image() -> String {
    "lylcx2007/conflux-node:dev".into()
}
fn default_seed() -> u64 {
    42
}
fn default_tps() -> u32 {
    17_000
}
fn default_block_count() -> u32 {
    2000
}
fn default_mean_interval() -> HumanDuration {
    HumanDuration("175ms".into())
}
fn default_min_node_gap() -> HumanDuration {
    HumanDuration("100ms".into())
}
fn default_max_bytes() -> u32 {
    460_800
}
fn default_percentiles() -> Vec<Percentile> {
    [10.0, 30.0, 50.0, 80.0, 90.0, 95.0, 99.0, 99.9]
        .into_iter()
        .map(Percentile)
        .collect()
}

impl Default for RawNetwork {
    fn default() -> Self {
        Self {
            create: true,
            cidr: default_cidr(),
            ssh_from: default_ssh_from(),
        }
    }
}
impl Default for RawAliyunInstance {
    fn default() -> Self {
        Self {
            disk_gb: default_disk_gb(),
            disk_category: default_disk_category(),
            bandwidth_mbps: default_bandwidth(),
            spot: false,
        }
    }
}
impl Default for RawAwsInstance {
    fn default() -> Self {
        Self {
            disk_gb: default_disk_gb(),
            volume_type: default_volume_type(),
            iops: default_iops(),
            throughput_mbps: default_throughput(),
            spot: false,
        }
    }
}
impl Default for RawPlacement {
    fn default() -> Self {
        Self {
            max_hosts_per_call: default_max_per_call(),
            backfill: true,
        }
    }
}
impl Default for RawNode {
    fn default() -> Self {
        Self {
            image: default_node_image(),
            config: BTreeMap::new(),
        }
    }
}
impl Default for RawTopology {
    fn default() -> Self {
        Self {
            peers: None,
            seed: default_seed(),
        }
    }
}
impl Default for RawTransactions {
    fn default() -> Self {
        Self { tps: default_tps() }
    }
}
impl Default for RawBlocks {
    fn default() -> Self {
        Self {
            count: default_block_count(),
            mean_interval: default_mean_interval(),
            min_node_gap: default_min_node_gap(),
            max_bytes: default_max_bytes(),
        }
    }
}
impl Default for RawReport {
    fn default() -> Self {
        Self {
            percentiles: default_percentiles(),
        }
    }
}
