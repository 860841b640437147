//! The spec: a YAML file that says what should exist and what runs on it, turned into a checked
//! [`Spec`] once, so nothing downstream re-checks the YAML.
//!
//! Loading is three passes, each reporting every problem it finds with its location:
//! 1. [`yaml`]: text → a tree of spanned nodes (syntax, duplicates, aliases, size limits);
//! 2. [`schema`]: the tree against the JSON Schema generated from [`model`] (unknown keys, missing
//!    keys, types, ranges, forms);
//! 3. [`validate`]: rules across fields (duplicate regions, peers vs nodes, host limits,
//!    durations, addresses, the static inventory).
//!
//! No pass touches the network. A spec that fails any pass yields [`SpecErrors`] and nothing else.

mod diagnostic;
mod ids;
pub mod model;
mod schema;
mod validate;
mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use diagnostic::{SpecError, SpecErrorKind, SpecErrors};
pub(crate) use ids::name_type;
pub use ids::{CloudKind, InstanceType, Owner, RegionId, SpecName, ZoneId};
pub use model::ConfigValue;
pub use schema::{json_schema, json_schema_text};

use crate::state::hosts_json::HostRecord;

/// Largest spec file cfxm reads. A 10,000-node spec is a few KiB; anything near this is a mistake.
pub const MAX_SPEC_BYTES: u64 = 4 * 1024 * 1024;

/// A validated spec.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: SpecName,
    pub owner: Owner,
    /// The spec file; relative paths in the spec (keys, inventories) are relative to its directory.
    pub file: PathBuf,
    /// The clouds in a fixed order: aliyun, aws, local, static.
    pub clouds: Vec<Cloud>,
    pub placement: Placement,
    pub limits: Limits,
    pub node: NodeSpec,
    pub experiment: Experiment,
    pub report: Report,
}

/// One cloud and its regions.
#[derive(Debug, Clone)]
pub struct Cloud {
    pub settings: CloudSettings,
    pub regions: Vec<Region>,
}

impl Cloud {
    pub fn kind(&self) -> CloudKind {
        match self.settings {
            CloudSettings::Aliyun(_) => CloudKind::Aliyun,
            CloudSettings::Aws(_) => CloudKind::Aws,
            CloudSettings::Local => CloudKind::Local,
            CloudSettings::Static(_) => CloudKind::Static,
        }
    }

    pub fn nodes(&self) -> u64 {
        self.regions.iter().map(|r| u64::from(r.nodes)).sum()
    }

    /// Most hosts this cloud may run: each region counted with its smallest `nodes_per_host`.
    /// A static inventory's hosts are counted exactly.
    pub fn max_hosts(&self) -> u64 {
        match &self.settings {
            CloudSettings::Static(inv) => inv.hosts.len() as u64,
            _ => self.regions.iter().map(Region::max_hosts).sum(),
        }
    }
}

/// Cloud-specific settings.
#[derive(Debug, Clone)]
pub enum CloudSettings {
    Aliyun(AliyunSettings),
    Aws(AwsSettings),
    Local,
    Static(StaticInventory),
}

/// How to reach and shape hosts on a real cloud.
#[derive(Debug, Clone)]
pub struct HostAccess {
    /// Image name the hosts boot from.
    pub image: String,
    /// Private key, resolved against the spec's directory.
    pub ssh_key: PathBuf,
    pub ssh_user: String,
}

#[derive(Debug, Clone)]
pub struct Network {
    pub create: bool,
    pub cidr: Cidr,
    pub ssh_from: Vec<Cidr>,
}

/// An IPv4 address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: std::net::Ipv4Addr,
    pub prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| "expected an address block such as `10.0.0.0/16`".to_string())?;
        let addr: std::net::Ipv4Addr = a
            .parse()
            .map_err(|_| format!("`{a}` is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("`/{p}` is not a prefix length between 0 and 32"))?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        if u32::from(addr) & !mask != 0 {
            let base = std::net::Ipv4Addr::from(u32::from(addr) & mask);
            return Err(format!("host bits are set; the block is `{base}/{prefix}`"));
        }
        Ok(Cidr { addr, prefix })
    }
}

#[derive(Debug, Clone)]
pub struct AliyunSettings {
    pub access: HostAccess,
    pub network: Network,
    pub disk_gb: u32,
    pub disk_category: String,
    pub bandwidth_mbps: u32,
    pub spot: bool,
    /// The spec's access key, if it gives one (resolve with
    /// [`crate::provider::aliyun::resolve_credentials_from_env`], which also reads the
    /// environment and the aliyun CLI's profile).
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<crate::provider::aliyun::Secret>,
    /// One endpoint for every region and both APIs (checked to be an `http(s)://host[:port]`
    /// URL); `CFXM_ALIYUN_ENDPOINT` overrides it.
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub access: HostAccess,
    pub network: Network,
    pub disk_gb: u32,
    pub volume_type: String,
    pub iops: u32,
    pub throughput_mbps: u32,
    pub spot: bool,
}

/// Hosts listed in an inventory file.
#[derive(Debug, Clone)]
pub struct StaticInventory {
    pub path: PathBuf,
    pub hosts: Vec<HostRecord>,
    /// SSH port of every listed host.
    pub ssh_port: u16,
}

/// One region of one cloud.
#[derive(Debug, Clone)]
pub struct Region {
    pub id: RegionId,
    pub nodes: u32,
    /// Zones in preference order; empty means every zone of the region.
    pub zones: Vec<ZoneId>,
    /// Instance types in preference order (the region's override, else the cloud's list).
    pub instance_types: Vec<InstanceTypeChoice>,
}

impl Region {
    /// Hosts with a given `nodes_per_host`: ceil(nodes / nodes_per_host).
    pub fn hosts_with(&self, nodes_per_host: u32) -> u64 {
        u64::from(self.nodes).div_ceil(u64::from(nodes_per_host.max(1)))
    }

    /// Most hosts this region may need, over its instance types.
    pub fn max_hosts(&self) -> u64 {
        let smallest = self
            .instance_types
            .iter()
            .map(|t| t.nodes_per_host)
            .min()
            .unwrap_or(1);
        self.hosts_with(smallest)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceTypeChoice {
    pub name: InstanceType,
    pub nodes_per_host: u32,
    pub hourly_cost_usd: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Placement {
    pub max_hosts_per_call: u32,
    pub backfill: bool,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_hosts: Option<u32>,
    pub max_hourly_cost_usd: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub image: String,
    pub config: BTreeMap<String, ConfigValue>,
}

#[derive(Debug, Clone)]
pub struct Experiment {
    pub topology: Topology,
    pub latency: Option<LatencyMatrix>,
    pub transactions: Transactions,
    pub blocks: Blocks,
}

#[derive(Debug, Clone)]
pub struct Topology {
    /// Peers per node, resolved: the spec's value or `min(8, nodes - 1)`.
    pub peers: u32,
    pub seed: u64,
}

/// Extra latency between regions.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyMatrix {
    pub default: Option<Duration>,
    /// Unordered pairs, stored with the smaller region id first.
    pub pairs: BTreeMap<(RegionId, RegionId), Duration>,
}

impl LatencyMatrix {
    /// Latency between two regions: the pair's value, else the default; none within a region.
    pub fn between(&self, a: &RegionId, b: &RegionId) -> Option<Duration> {
        if a == b {
            return None;
        }
        let key = if a <= b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        self.pairs.get(&key).copied().or(self.default)
    }
}

#[derive(Debug, Clone)]
pub struct Transactions {
    pub tps: u32,
}

#[derive(Debug, Clone)]
pub struct Blocks {
    pub count: u32,
    pub mean_interval: Duration,
    pub min_node_gap: Duration,
    pub max_bytes: u32,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub percentiles: Vec<f64>,
}

impl Spec {
    pub fn nodes(&self) -> u64 {
        self.clouds.iter().map(Cloud::nodes).sum()
    }

    pub fn max_hosts(&self) -> u64 {
        self.clouds.iter().map(Cloud::max_hosts).sum()
    }

    pub fn regions(&self) -> usize {
        self.clouds.iter().map(|c| c.regions.len()).sum()
    }

    /// The directory relative paths in the spec are resolved against.
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

    /// One line for humans: `latency-1k, 2 clouds, 9 regions, 10,000 nodes on at most 10,000 hosts`.
    pub fn summary(&self) -> String {
        let clouds = self.clouds.len();
        let regions = self.regions();
        format!(
            "{}, {clouds} cloud{}, {regions} region{}, {} node{} on at most {} host{}",
            self.name,
            plural(clouds as u64),
            plural(regions as u64),
            thousands(self.nodes()),
            plural(self.nodes()),
            thousands(self.max_hosts()),
            plural(self.max_hosts()),
        )
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `10000` → `10,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Reads and validates the spec at `path`. The path is shown in diagnostics as given.
pub fn load(path: &Path) -> Result<Spec, SpecErrors> {
    let file = path.display().to_string();
    let fail = |e: SpecError| SpecErrors {
        file: file.clone(),
        errors: vec![e],
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(read_error(path, &e)))?;
    if meta.len() > MAX_SPEC_BYTES {
        return Err(fail(
            SpecError::new(
                SpecErrorKind::TooLarge,
                format!(
                    "`{file}` is {} bytes; a spec is at most {} bytes",
                    thousands(meta.len()),
                    thousands(MAX_SPEC_BYTES)
                ),
            )
            .help("a spec describes regions and counts, not hosts; is this the right file?"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(read_error(path, &e)))?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            return Err(fail(
                SpecError::new(
                    SpecErrorKind::NotText,
                    format!("`{file}` is not UTF-8 text (invalid byte at offset {at})"),
                )
                .help("a spec is a YAML text file; is this the right file?"),
            ));
        }
    };
    load_str(&text, &file, path)
}

fn read_error(path: &Path, e: &std::io::Error) -> SpecError {
    let help = if e.kind() == std::io::ErrorKind::NotFound {
        "pass the spec with `-f FILE` (the default is `./cfxm.yaml`); examples are in `examples/`"
    } else {
        "check the file's permissions"
    };
    SpecError::new(
        SpecErrorKind::Read,
        format!("cannot read `{}`: {e}", path.display()),
    )
    .help(help)
}

/// Validates spec text. `name` labels diagnostics; `file` anchors relative paths.
pub fn load_str(text: &str, name: &str, file: &Path) -> Result<Spec, SpecErrors> {
    let source = miette::NamedSource::new(name, Arc::<str>::from(text));
    let errors = |errs: Vec<SpecError>| SpecErrors {
        file: name.to_string(),
        errors: errs.into_iter().map(|e| e.with_source(&source)).collect(),
    };
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(errors(vec![
                SpecError::new(SpecErrorKind::Empty, format!("`{name}` is empty")).help(
                    "a spec needs at least `name`, `owner` and `cloud`; see `examples/local.yaml`",
                ),
            ]));
        }
        Err(e) => {
            let mut err = SpecError::new(SpecErrorKind::Syntax, e.message)
                .at(e.span, e.label)
                .help(e.help);
            if let Some((span, label)) = e.related {
                err = err.at(span, label);
            }
            return Err(errors(vec![err]));
        }
    };
    let problems = schema::check(&root);
    if !problems.is_empty() {
        return Err(errors(
            problems
                .into_iter()
                .map(|p| {
                    let e = SpecError::new(p.kind, p.message).at(p.span, p.label);
                    match p.help {
                        Some(h) => e.help(h),
                        None => e,
                    }
                })
                .collect(),
        ));
    }
    let raw: model::RawSpec = match serde_json::from_value(root.to_json()) {
        Ok(raw) => raw,
        Err(e) => {
            // The schema check should have caught this; report it rather than panic.
            return Err(errors(vec![
                SpecError::new(
                    SpecErrorKind::WrongType,
                    format!("the spec does not fit its schema: {e}"),
                )
                .at(root.span, "in this document")
                .help("run `cfxm schema` to see the expected structure"),
            ]));
        }
    };
    validate::validate(raw, &root, file).map_err(errors)
}
