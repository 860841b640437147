//! The emulated cloud's state: regions → zones (stock per instance type) → images, VPCs,
//! vSwitches, security groups, key pairs and instances, plus idempotency records and address
//! pools. Pure data and rules: no HTTP, no clock of its own (every operation is given `now`, in
//! emulated milliseconds) and no randomness of its own (ids come from the given rng).
//!
//! Asynchronous life cycles are timestamps, not timers: a VPC is `Pending` until its
//! `available_at`, an instance `Pending` → `Starting` → `Running` by `starting_at`/`running_at`,
//! a deleted instance lingers (`Stopping`) until `released_at`, when [`World::sweep`] purges it
//! and gives back its stock and addresses. So a persisted world resumes exactly where it was.
//!
//! Ids sort in creation order (a base-36 sequence number, then random characters), which gives
//! every listing a stable order and lets a page token simply be the next id.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, InstanceTypeDef, PublicIpPolicy};
use super::error::ApiError;
use crate::provider::aliyun::{InstanceStatus, Tag, key_fingerprint};
use crate::spec::Cidr;

/// Emulated time, milliseconds since the Unix epoch.
pub type Millis = i64;

/// How long the asynchronous parts of the world take (emulated time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delays {
    /// RunInstances → Running (a quarter `Pending`, the rest `Starting`).
    pub boot_ms: u64,
    /// CreateVpc / CreateVSwitch → `Available`.
    pub network_ms: u64,
    /// CreateImage / CopyImage → `Available`.
    pub image_ms: u64,
    /// DeleteInstances → gone (meanwhile `Stopping`, still holding its vSwitch and groups).
    pub release_ms: u64,
}

/// Per-call limits of the real service that the world enforces.
pub const MAX_AMOUNT: u32 = 100;
pub const MAX_TAGS: usize = 20;
pub const MAX_VSWITCHES_PER_VPC: usize = 150;

/// A pool of IPv4 addresses (a CIDR block minus reserved offsets).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IpPool {
    base: u32,
    /// First and one-past-last usable offsets.
    first: u32,
    end: u32,
    next: u32,
    free: BTreeSet<u32>,
}

impl IpPool {
    /// All offsets of `cidr` except the first `reserve_low` and last `reserve_high`.
    pub fn new(cidr: Cidr, reserve_low: u32, reserve_high: u32) -> Self {
        let size = 1u64 << (32 - u32::from(cidr.prefix));
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        let end = size.saturating_sub(reserve_high);
        Self {
            base: u32::from(cidr.addr),
            first: reserve_low.min(end),
            end,
            next: reserve_low.min(end),
            free: BTreeSet::new(),
        }
    }
    pub fn capacity(&self) -> u64 {
        u64::from(self.end - self.first)
    }
    pub fn in_use(&self) -> u64 {
        u64::from(self.next - self.first) - self.free.len() as u64
    }
    pub fn available(&self) -> u64 {
        self.capacity() - self.in_use()
    }
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let off = if let Some(off) = self.free.pop_first() {
            off
        } else if self.next < self.end {
            self.next += 1;
            self.next - 1
        } else {
            return None;
        };
        Some(Ipv4Addr::from(self.base.wrapping_add(off)))
    }
    pub fn release(&mut self, ip: Ipv4Addr) {
        let off = u32::from(ip).wrapping_sub(self.base);
        if off >= self.first && off < self.next {
            self.free.insert(off);
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Zone {
    pub id: String,
    pub local_name: String,
    /// Instance type → how many more can be created. Absent = not sold here.
    pub stock: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Image {
    pub id: String,
    pub name: String,
    /// `self` or `system`.
    pub owner: String,
    pub os_type: String,
    pub size_gb: u32,
    pub description: String,
    pub tags: Vec<Tag>,
    pub created_ms: Millis,
    pub available_at: Millis,
    pub copied_from: Option<String>,
}

impl Image {
    pub fn status(&self, now: Millis) -> &'static str {
        if now >= self.available_at {
            "Available"
        } else {
            "Creating"
        }
    }
    pub fn progress(&self, now: Millis) -> String {
        if now >= self.available_at {
            return "100%".into();
        }
        let total = (self.available_at - self.created_ms).max(1);
        let done = ((now - self.created_ms).max(0) * 100 / total).min(99);
        format!("{done}%")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Vpc {
    pub id: String,
    pub name: String,
    pub cidr: String,
    pub description: String,
    pub vrouter_id: String,
    pub route_table_id: String,
    pub tags: Vec<Tag>,
    pub created_ms: Millis,
    pub available_at: Millis,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VSwitch {
    pub id: String,
    pub vpc_id: String,
    pub zone_id: String,
    pub cidr: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<Tag>,
    pub created_ms: Millis,
    pub available_at: Millis,
    /// Private addresses; the first and last three are reserved by the service.
    pub ips: IpPool,
}

/// `Pending` or `Available`, for VPCs and vSwitches.
pub fn network_status(available_at: Millis, now: Millis) -> &'static str {
    if now >= available_at {
        "Available"
    } else {
        "Pending"
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rule {
    pub ip_protocol: String,
    pub port_range: String,
    pub source_cidr_ip: String,
    pub policy: String,
    pub priority: String,
    pub description: String,
    pub created_ms: Millis,
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub vpc_id: String,
    pub rules: Vec<Rule>,
    pub tags: Vec<Tag>,
    pub created_ms: Millis,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyPair {
    pub name: String,
    pub fingerprint: String,
    pub public_key: String,
    pub tags: Vec<Tag>,
    pub created_ms: Millis,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub host_name: String,
    pub zone_id: String,
    pub instance_type: String,
    pub image_id: String,
    pub vpc_id: String,
    pub vswitch_id: String,
    pub security_group_ids: Vec<String>,
    pub key_pair_name: String,
    pub bandwidth_out: u32,
    pub internet_charge_type: String,
    pub charge_type: String,
    pub spot_strategy: String,
    pub disk_category: String,
    pub disk_size_gb: u32,
    pub public_ip: Option<Ipv4Addr>,
    pub private_ip: Ipv4Addr,
    pub tags: Vec<Tag>,
    pub created_ms: Millis,
    pub starting_at: Millis,
    pub running_at: Millis,
    /// Set by DeleteInstances; the instance is purged at this time.
    pub released_at: Option<Millis>,
}

impl Instance {
    pub fn status(&self, now: Millis) -> InstanceStatus {
        if self.released_at.is_some() {
            InstanceStatus::Stopping
        } else if now < self.starting_at {
            InstanceStatus::Pending
        } else if now < self.running_at {
            InstanceStatus::Starting
        } else {
            InstanceStatus::Running
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Region {
    pub id: String,
    pub local_name: String,
    pub zones: Vec<Zone>,
    pub images: BTreeMap<String, Image>,
    pub vpcs: BTreeMap<String, Vpc>,
    pub vswitches: BTreeMap<String, VSwitch>,
    pub security_groups: BTreeMap<String, SecurityGroup>,
    pub key_pairs: BTreeMap<String, KeyPair>,
    pub instances: BTreeMap<String, Instance>,
}

impl Region {
    pub fn zone(&self, id: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.id == id)
    }
    fn zone_mut(&mut self, id: &str) -> Option<&mut Zone> {
        self.zones.iter_mut().find(|z| z.id == id)
    }
}

/// The answer recorded for a ClientToken (aliyun-api.md §4.5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    /// The request's business parameters, canonicalized.
    pub fingerprint: String,
    pub response: serde_json::Value,
}

/// The whole emulated cloud.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct World {
    pub types: BTreeMap<String, InstanceTypeDef>,
    pub regions: BTreeMap<String, Region>,
    pub public_ip: PublicIpPolicy,
    pub public_pool: IpPool,
    /// Creation counter behind every id.
    pub seq: u64,
    /// `api|region|action|token` → the recorded answer.
    pub tokens: HashMap<String, TokenRecord>,
}

/// `RunInstances`, parsed.
#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    pub zone_id: Option<String>,
    pub image_id: String,
    pub instance_type: String,
    pub security_group_ids: Vec<String>,
    pub vswitch_id: String,
    pub key_pair_name: Option<String>,
    pub instance_name: Option<String>,
    pub host_name: Option<String>,
    pub unique_suffix: bool,
    pub amount: u32,
    pub min_amount: Option<u32>,
    pub tags: Vec<Tag>,
    pub bandwidth_out: u32,
    pub internet_charge_type: String,
    pub charge_type: String,
    pub spot_strategy: String,
    pub disk_category: String,
    pub disk_size_gb: u32,
    pub dry_run: bool,
}

const ID_CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn base36(mut n: u64, width: usize) -> String {
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(ID_CHARS[(n % 36) as usize]);
        n /= 36;
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).expect("ascii")
}

/// Tag keys the service reserves.
pub fn check_tags(tags: &[Tag]) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::invalid(format!(
            "The number of tags ({}) exceeds the maximum of {MAX_TAGS}.",
            tags.len()
        )));
    }
    let mut seen = BTreeSet::new();
    for t in tags {
        if t.key.is_empty() || t.key.len() > 128 {
            return Err(ApiError::bad(
                "InvalidTagKey.Malformed",
                "The specified Tag.n.Key is invalid.",
            ));
        }
        let lower = t.key.to_ascii_lowercase();
        if lower.starts_with("aliyun")
            || lower.starts_with("acs:")
            || lower.contains("http://")
            || lower.contains("https://")
        {
            return Err(ApiError::bad(
                "InvalidTagKey.Malformed",
                "The specified Tag.n.Key is invalid: it must not start with `aliyun` or `acs:` or contain `http://` or `https://`.",
            ));
        }
        if t.value.len() > 128 {
            return Err(ApiError::bad(
                "InvalidTagValue.Malformed",
                "The specified Tag.n.Value is invalid.",
            ));
        }
        if !seen.insert(&t.key) {
            return Err(ApiError::bad(
                "InvalidParameter.TagKeyDuplicate",
                "The specified tag keys are duplicated.",
            ));
        }
    }
    Ok(())
}

/// Whether `tags` carries every filter tag (a filter with an empty value matches any value).
pub fn matches_tags(tags: &[Tag], filter: &[Tag]) -> bool {
    filter.iter().all(|f| {
        tags.iter()
            .any(|t| t.key == f.key && (f.value.is_empty() || t.value == f.value))
    })
}

/// Adds or replaces tags by key.
pub fn upsert_tags(tags: &mut Vec<Tag>, new: &[Tag]) {
    for n in new {
        match tags.iter_mut().find(|t| t.key == n.key) {
            Some(t) => t.value = n.value.clone(),
            None => tags.push(n.clone()),
        }
    }
}

fn parse_cidr(s: &str) -> Result<Cidr, ApiError> {
    s.parse::<Cidr>().map_err(|e| {
        ApiError::bad(
            "InvalidCidrBlock.Malformed",
            format!("The specified CidrBlock `{s}` is invalid: {e}."),
        )
    })
}

fn cidr_contains(outer: Cidr, inner: Cidr) -> bool {
    if inner.prefix < outer.prefix {
        return false;
    }
    let mask = if outer.prefix == 0 {
        0
    } else {
        u32::MAX << (32 - outer.prefix)
    };
    u32::from(inner.addr) & mask == u32::from(outer.addr)
}

fn cidr_overlaps(a: Cidr, b: Cidr) -> bool {
    cidr_contains(a, b) || cidr_contains(b, a)
}

fn is_private(c: Cidr) -> bool {
    let blocks = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];
    blocks
        .iter()
        .any(|b| cidr_contains(b.parse().expect("constant"), c))
}

/// Expands `name[begin,bits]` (and `UniqueSuffix`) for the `i`-th of `amount` instances.
fn sequence_name(pattern: &str, i: u32, amount: u32, unique_suffix: bool) -> String {
    if let Some(open) = pattern.rfind('[')
        && let Some(close) = pattern[open..].find(']').map(|c| open + c)
        && let Some((b, w)) = pattern[open + 1..close].split_once(',')
        && let (Ok(begin), Ok(width)) = (b.trim().parse::<u32>(), w.trim().parse::<usize>())
    {
        return format!(
            "{}{:0width$}{}",
            &pattern[..open],
            begin + i,
            &pattern[close + 1..],
            width = width.min(8)
        );
    }
    if unique_suffix && amount > 1 {
        return format!("{pattern}{:03}", i + 1);
    }
    pattern.to_string()
}

// Creation calls take what the API takes (region, names, tags, time, delays, rng); bundling
// them into structs would only rename the parameter list.
#[allow(clippy::too_many_arguments)]
impl World {
    /// A fresh world from its catalog. Account images get generated ids.
    pub fn new(catalog: &Catalog, now: Millis, rng: &mut impl rand::Rng) -> Self {
        let pool: Cidr = catalog
            .public_ip_pool
            .parse()
            .expect("a checked catalog has a valid pool");
        let mut world = World {
            types: catalog
                .instance_types
                .iter()
                .map(|t| (t.id.clone(), t.clone()))
                .collect(),
            regions: BTreeMap::new(),
            public_ip: catalog.public_ip,
            public_pool: IpPool::new(pool, 1, 1),
            seq: 0,
            tokens: HashMap::new(),
        };
        for r in &catalog.regions {
            let mut images = BTreeMap::new();
            for def in &r.images {
                let id = match &def.id {
                    Some(id) => id.clone(),
                    None => world.new_id("m-", rng),
                };
                images.insert(
                    id.clone(),
                    Image {
                        id,
                        name: def.name.clone(),
                        owner: def.owner.clone(),
                        os_type: def.os_type.clone(),
                        size_gb: def.size_gb,
                        description: String::new(),
                        tags: Vec::new(),
                        // Catalog images predate everything (and any consistency window).
                        created_ms: 0,
                        available_at: 0,
                        copied_from: None,
                    },
                );
            }
            world.regions.insert(
                r.id.clone(),
                Region {
                    id: r.id.clone(),
                    local_name: r.local_name.clone(),
                    zones: r
                        .zones
                        .iter()
                        .map(|z| Zone {
                            id: z.id.clone(),
                            local_name: z.local_name.clone(),
                            stock: z.stock.clone(),
                        })
                        .collect(),
                    images,
                    vpcs: BTreeMap::new(),
                    vswitches: BTreeMap::new(),
                    security_groups: BTreeMap::new(),
                    key_pairs: BTreeMap::new(),
                    instances: BTreeMap::new(),
                },
            );
        }
        let _ = now;
        world
    }

    /// `prefix` + 7 base-36 digits of the sequence + 13 random characters (20 after `i-`,
    /// like the real ids), sorting in creation order.
    pub fn new_id(&mut self, prefix: &str, rng: &mut impl rand::Rng) -> String {
        self.seq += 1;
        let mut id = format!("{prefix}{}", base36(self.seq, 7));
        for _ in 0..13 {
            id.push(ID_CHARS[rng.random_range(0..ID_CHARS.len())] as char);
        }
        id
    }

    pub fn region(&self, id: &str) -> Result<&Region, ApiError> {
        self.regions.get(id).ok_or_else(|| unknown_region(id))
    }

    pub fn region_mut(&mut self, id: &str) -> Result<&mut Region, ApiError> {
        self.regions.get_mut(id).ok_or_else(|| unknown_region(id))
    }

    /// Whether [`World::sweep`] has anything to purge.
    pub fn sweep_due(&self, now: Millis) -> bool {
        self.regions
            .values()
            .flat_map(|r| r.instances.values())
            .any(|i| i.released_at.is_some_and(|t| t <= now))
    }

    /// Purges instances whose release time has passed, returning their stock and addresses.
    /// Returns whether anything changed.
    pub fn sweep(&mut self, now: Millis) -> bool {
        let mut changed = false;
        for region in self.regions.values_mut() {
            let gone: Vec<String> = region
                .instances
                .values()
                .filter(|i| i.released_at.is_some_and(|t| t <= now))
                .map(|i| i.id.clone())
                .collect();
            for id in gone {
                let inst = region.instances.remove(&id).expect("listed above");
                if let Some(zone) = region.zone_mut(&inst.zone_id)
                    && let Some(n) = zone.stock.get_mut(&inst.instance_type)
                {
                    *n += 1;
                }
                if let Some(vsw) = region.vswitches.get_mut(&inst.vswitch_id) {
                    vsw.ips.release(inst.private_ip);
                }
                if let Some(ip) = inst.public_ip {
                    self.public_pool.release(ip);
                }
                changed = true;
            }
        }
        changed
    }

    // ----- VPC API -----

    pub fn create_vpc(
        &mut self,
        region: &str,
        cidr: Option<&str>,
        name: &str,
        description: &str,
        tags: Vec<Tag>,
        now: Millis,
        delays: Delays,
        rng: &mut impl rand::Rng,
    ) -> Result<Vpc, ApiError> {
        self.region(region)?;
        check_tags(&tags)?;
        let cidr = parse_cidr(cidr.unwrap_or("172.16.0.0/12"))?;
        if !is_private(cidr) || !(8..=28).contains(&cidr.prefix) {
            return Err(ApiError::bad(
                "InvalidCidrBlock.Malformed",
                "The specified CidrBlock must be a private block (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 or a subnet) with a mask of 8 to 28.",
            ));
        }
        let vpc = Vpc {
            id: self.new_id("vpc-", rng),
            vrouter_id: self.new_id("vrt-", rng),
            route_table_id: self.new_id("vtb-", rng),
            name: name.to_string(),
            cidr: cidr.to_string(),
            description: description.to_string(),
            tags,
            created_ms: now,
            available_at: now + delays.network_ms as Millis,
        };
        self.region_mut(region)?
            .vpcs
            .insert(vpc.id.clone(), vpc.clone());
        Ok(vpc)
    }

    pub fn delete_vpc(&mut self, region: &str, vpc_id: &str, now: Millis) -> Result<(), ApiError> {
        let r = self.region_mut(region)?;
        let vpc = r.vpcs.get(vpc_id).ok_or_else(|| vpc_not_found(vpc_id))?;
        if network_status(vpc.available_at, now) != "Available" {
            return Err(ApiError::bad(
                "IncorrectVpcStatus",
                "The current status of the VPC does not support this operation.",
            ));
        }
        if r.vswitches.values().any(|v| v.vpc_id == vpc_id) {
            return Err(ApiError::bad(
                "DependencyViolation.VSwitch",
                "The specified VPC has vSwitches that must be deleted first.",
            ));
        }
        if r.security_groups.values().any(|g| g.vpc_id == vpc_id) {
            return Err(ApiError::bad(
                "DependencyViolation.SecurityGroup",
                "The specified VPC has security groups that must be deleted first.",
            ));
        }
        if r.instances.values().any(|i| i.vpc_id == vpc_id) {
            return Err(ApiError::bad(
                "DependencyViolation.Instance",
                "The specified VPC has instances that must be released first.",
            ));
        }
        r.vpcs.remove(vpc_id);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn create_vswitch(
        &mut self,
        region: &str,
        vpc_id: &str,
        zone_id: &str,
        cidr: &str,
        name: &str,
        description: &str,
        tags: Vec<Tag>,
        now: Millis,
        delays: Delays,
        rng: &mut impl rand::Rng,
    ) -> Result<VSwitch, ApiError> {
        check_tags(&tags)?;
        let r = self.region(region)?;
        let vpc = r.vpcs.get(vpc_id).ok_or_else(|| vpc_not_found(vpc_id))?;
        if r.zone(zone_id).is_none() {
            return Err(zone_not_found(zone_id, region));
        }
        if network_status(vpc.available_at, now) != "Available" {
            return Err(ApiError::bad(
                "IncorrectVpcStatus",
                "The VPC is not yet Available; retry when it is.",
            ));
        }
        let block = parse_cidr(cidr)?;
        let vpc_block = parse_cidr(&vpc.cidr)?;
        if !(16..=29).contains(&block.prefix) || !cidr_contains(vpc_block, block) {
            return Err(ApiError::bad(
                "InvalidCidrBlock.Malformed",
                format!(
                    "The vSwitch CidrBlock `{cidr}` must lie inside the VPC's `{}` with a mask of 16 to 29.",
                    vpc.cidr
                ),
            ));
        }
        let siblings: Vec<&VSwitch> = r
            .vswitches
            .values()
            .filter(|v| v.vpc_id == vpc_id)
            .collect();
        if siblings.len() >= MAX_VSWITCHES_PER_VPC {
            return Err(ApiError::bad(
                "QuotaExceeded.VSwitch",
                format!("A VPC holds at most {MAX_VSWITCHES_PER_VPC} vSwitches."),
            ));
        }
        if let Some(other) = siblings.iter().find(|v| {
            v.cidr
                .parse::<Cidr>()
                .is_ok_and(|c| cidr_overlaps(c, block))
        }) {
            return Err(ApiError::bad(
                "InvalidCidrBlock.Overlapped",
                format!(
                    "The CidrBlock `{cidr}` overlaps vSwitch `{}` ({}).",
                    other.id, other.cidr
                ),
            ));
        }
        let vsw = VSwitch {
            id: self.new_id("vsw-", rng),
            vpc_id: vpc_id.to_string(),
            zone_id: zone_id.to_string(),
            cidr: block.to_string(),
            name: name.to_string(),
            description: description.to_string(),
            tags,
            created_ms: now,
            available_at: now + delays.network_ms as Millis,
            ips: IpPool::new(block, 1, 3),
        };
        self.region_mut(region)?
            .vswitches
            .insert(vsw.id.clone(), vsw.clone());
        Ok(vsw)
    }

    pub fn delete_vswitch(&mut self, region: &str, id: &str, now: Millis) -> Result<(), ApiError> {
        let r = self.region_mut(region)?;
        let vsw = r.vswitches.get(id).ok_or_else(|| {
            ApiError::not_found(
                "InvalidVSwitchId.NotFound",
                format!("The specified vSwitch `{id}` does not exist."),
            )
        })?;
        if network_status(vsw.available_at, now) != "Available" {
            return Err(ApiError::bad(
                "IncorrectVSwitchStatus",
                "The current status of the vSwitch does not support this operation.",
            ));
        }
        if r.instances.values().any(|i| i.vswitch_id == id) {
            return Err(ApiError::bad(
                "DependencyViolation",
                "The vSwitch still has instances (or instances being released) in it.",
            ));
        }
        r.vswitches.remove(id);
        Ok(())
    }

    // ----- security groups and key pairs -----

    pub fn create_security_group(
        &mut self,
        region: &str,
        vpc_id: &str,
        name: &str,
        description: &str,
        tags: Vec<Tag>,
        now: Millis,
        rng: &mut impl rand::Rng,
    ) -> Result<SecurityGroup, ApiError> {
        check_tags(&tags)?;
        let r = self.region(region)?;
        if vpc_id.is_empty() {
            return Err(ApiError::missing("VpcId"));
        }
        if !r.vpcs.contains_key(vpc_id) {
            return Err(vpc_not_found(vpc_id));
        }
        if !name.is_empty()
            && (name.len() < 2
                || name.len() > 128
                || !name.starts_with(|c: char| c.is_ascii_alphabetic())
                || name.starts_with("http"))
        {
            return Err(ApiError::bad(
                "InvalidSecurityGroupName.Malformed",
                "The security group name must be 2 to 128 characters and start with a letter.",
            ));
        }
        let sg = SecurityGroup {
            id: self.new_id("sg-", rng),
            name: name.to_string(),
            description: description.to_string(),
            vpc_id: vpc_id.to_string(),
            rules: Vec::new(),
            tags,
            created_ms: now,
        };
        self.region_mut(region)?
            .security_groups
            .insert(sg.id.clone(), sg.clone());
        Ok(sg)
    }

    /// Adds ingress rules; a rule identical to an existing one is skipped.
    pub fn authorize(
        &mut self,
        region: &str,
        sg_id: &str,
        rules: Vec<Rule>,
        rng: &mut impl rand::Rng,
    ) -> Result<(), ApiError> {
        self.region(region)?
            .security_groups
            .get(sg_id)
            .ok_or_else(|| sg_not_found(sg_id))?;
        for mut rule in rules {
            rule.id = self.new_id("sgr-", rng);
            let sg = self
                .region_mut(region)?
                .security_groups
                .get_mut(sg_id)
                .expect("checked above");
            let same = |r: &Rule| {
                r.ip_protocol == rule.ip_protocol
                    && r.port_range == rule.port_range
                    && r.source_cidr_ip == rule.source_cidr_ip
                    && r.policy == rule.policy
            };
            if !sg.rules.iter().any(same) {
                sg.rules.push(rule);
            }
        }
        Ok(())
    }

    /// Removes ingress rules equal to `rules` in protocol, ports, source and policy.
    pub fn revoke(&mut self, region: &str, sg_id: &str, rules: &[Rule]) -> Result<(), ApiError> {
        let sg = self
            .region_mut(region)?
            .security_groups
            .get_mut(sg_id)
            .ok_or_else(|| sg_not_found(sg_id))?;
        sg.rules.retain(|r| {
            !rules.iter().any(|x| {
                r.ip_protocol == x.ip_protocol
                    && r.port_range == x.port_range
                    && r.source_cidr_ip == x.source_cidr_ip
                    && r.policy == x.policy
            })
        });
        Ok(())
    }

    pub fn delete_security_group(&mut self, region: &str, sg_id: &str) -> Result<(), ApiError> {
        let r = self.region_mut(region)?;
        if !r.security_groups.contains_key(sg_id) {
            return Err(sg_not_found(sg_id));
        }
        if r.instances
            .values()
            .any(|i| i.security_group_ids.iter().any(|s| s == sg_id))
        {
            return Err(ApiError::bad(
                "DependencyViolation",
                "There are instances (or instances being released) in the security group.",
            ));
        }
        r.security_groups.remove(sg_id);
        Ok(())
    }

    pub fn import_key_pair(
        &mut self,
        region: &str,
        name: &str,
        public_key: &str,
        tags: Vec<Tag>,
        now: Millis,
    ) -> Result<KeyPair, ApiError> {
        check_tags(&tags)?;
        let r = self.region_mut(region)?;
        if name.len() < 2
            || name.len() > 128
            || !name.starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return Err(ApiError::bad(
                "InvalidKeyPairName.Malformed",
                "The key pair name must be 2 to 128 characters and start with a letter.",
            ));
        }
        if r.key_pairs.contains_key(name) {
            return Err(ApiError::bad(
                "KeyPair.AlreadyExist",
                format!("The key pair `{name}` already exists."),
            ));
        }
        let kinds = [
            "ssh-rsa",
            "ssh-dss",
            "ssh-ed25519",
            "ecdsa-sha2-nistp256",
            "ecdsa-sha2-nistp384",
            "ecdsa-sha2-nistp521",
        ];
        let fingerprint = public_key
            .split_whitespace()
            .next()
            .filter(|k| kinds.contains(k))
            .and_then(|_| key_fingerprint(public_key))
            .ok_or_else(|| {
                ApiError::bad(
                    "InvalidPublicKeyBody.Malformed",
                    "The PublicKeyBody is not an OpenSSH public key (`ssh-rsa AAAA...`).",
                )
            })?;
        let kp = KeyPair {
            name: name.to_string(),
            fingerprint,
            public_key: public_key.trim().to_string(),
            tags,
            created_ms: now,
        };
        r.key_pairs.insert(kp.name.clone(), kp.clone());
        Ok(kp)
    }

    /// Deletes key pairs; names that do not exist are ignored, as by the service.
    pub fn delete_key_pairs(&mut self, region: &str, names: &[String]) -> Result<(), ApiError> {
        let r = self.region_mut(region)?;
        for n in names {
            r.key_pairs.remove(n);
        }
        Ok(())
    }

    // ----- images -----

    pub fn create_image(
        &mut self,
        region: &str,
        instance_id: &str,
        name: &str,
        description: &str,
        tags: Vec<Tag>,
        now: Millis,
        delays: Delays,
        rng: &mut impl rand::Rng,
    ) -> Result<Image, ApiError> {
        check_tags(&tags)?;
        let r = self.region(region)?;
        let inst = r
            .instances
            .get(instance_id)
            .filter(|i| i.released_at.is_none())
            .ok_or_else(|| instance_not_found(instance_id))?;
        if !matches!(
            inst.status(now),
            InstanceStatus::Running | InstanceStatus::Stopped
        ) {
            return Err(ApiError::forbidden(
                "IncorrectInstanceStatus",
                "The current status of the instance does not support this operation.",
            ));
        }
        let size = r.images.get(&inst.image_id).map_or(40, |i| i.size_gb);
        check_image_name(r, name)?;
        let image = Image {
            id: self.new_id("m-", rng),
            name: name.to_string(),
            owner: "self".into(),
            os_type: "linux".into(),
            size_gb: size,
            description: description.to_string(),
            tags,
            created_ms: now,
            available_at: now + delays.image_ms as Millis,
            copied_from: None,
        };
        self.region_mut(region)?
            .images
            .insert(image.id.clone(), image.clone());
        Ok(image)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn copy_image(
        &mut self,
        region: &str,
        image_id: &str,
        destination: &str,
        name: Option<&str>,
        tags: Vec<Tag>,
        now: Millis,
        delays: Delays,
        rng: &mut impl rand::Rng,
    ) -> Result<Image, ApiError> {
        check_tags(&tags)?;
        let src = self
            .region(region)?
            .images
            .get(image_id)
            .filter(|i| i.owner == "self")
            .ok_or_else(|| image_not_found(image_id))?
            .clone();
        if src.status(now) != "Available" {
            return Err(ApiError::forbidden(
                "IncorrectImageStatus",
                "The source image is not Available yet.",
            ));
        }
        let dest = self.regions.get(destination).ok_or_else(|| {
            ApiError::bad(
                "InvalidRegionId.Malformed",
                format!("The destination region `{destination}` does not exist."),
            )
        })?;
        let name = name.unwrap_or(&src.name);
        check_image_name(dest, name)?;
        let image = Image {
            id: self.new_id("m-", rng),
            name: name.to_string(),
            tags,
            created_ms: now,
            available_at: now + delays.image_ms as Millis,
            copied_from: Some(format!("{region}/{image_id}")),
            ..src
        };
        self.region_mut(destination)?
            .images
            .insert(image.id.clone(), image.clone());
        Ok(image)
    }

    /// Deletes an account image; a missing (or system) image is ignored, as by the service.
    pub fn delete_image(
        &mut self,
        region: &str,
        image_id: &str,
        force: bool,
        now: Millis,
    ) -> Result<(), ApiError> {
        let r = self.region_mut(region)?;
        let Some(image) = r.images.get(image_id) else {
            return Ok(());
        };
        if image.owner != "self" {
            return Ok(());
        }
        let _ = now;
        if !force
            && r.instances
                .values()
                .any(|i| i.image_id == image_id && i.released_at.is_none())
        {
            return Err(ApiError::forbidden(
                "InvalidImageId.IsUsed",
                "The image is used by instances; pass `Force=true` to delete it anyway.",
            ));
        }
        r.images.remove(image_id);
        Ok(())
    }

    // ----- instances -----

    /// Creates instances: all `amount`, or (with `min_amount`) as many as stock allows down
    /// to `min_amount`; otherwise `OperationDenied.NoStock` and nothing is created.
    pub fn run_instances(
        &mut self,
        region_id: &str,
        args: RunArgs,
        now: Millis,
        delays: Delays,
        rng: &mut impl rand::Rng,
    ) -> Result<Vec<String>, ApiError> {
        check_tags(&args.tags)?;
        if args.amount == 0 || args.amount > MAX_AMOUNT {
            return Err(ApiError::invalid(format!(
                "The specified Amount must be between 1 and {MAX_AMOUNT}."
            )));
        }
        if args.min_amount.is_some_and(|m| m == 0 || m > args.amount) {
            return Err(ApiError::invalid(
                "The specified MinAmount must be between 1 and Amount.",
            ));
        }
        if args.dry_run && (args.amount != 1 || args.min_amount.is_some()) {
            return Err(ApiError::invalid(
                "A dry run requires Amount=1 and no MinAmount.",
            ));
        }
        let region = self.region(region_id)?;
        let itype = self.types.get(&args.instance_type).ok_or_else(|| {
            ApiError::bad(
                "InvalidInstanceType.ValueNotSupported",
                format!(
                    "The specified InstanceType `{}` does not exist or beyond the permitted range.",
                    args.instance_type
                ),
            )
        })?;
        if args.vswitch_id.is_empty() {
            return Err(ApiError::missing("VSwitchId"));
        }
        let vsw = region.vswitches.get(&args.vswitch_id).ok_or_else(|| {
            ApiError::not_found(
                "InvalidVSwitchId.NotFound",
                format!(
                    "The specified vSwitch `{}` does not exist.",
                    args.vswitch_id
                ),
            )
        })?;
        if network_status(vsw.available_at, now) != "Available" {
            return Err(ApiError::bad(
                "IncorrectVSwitchStatus",
                "The current status of the vSwitch does not support this operation.",
            ));
        }
        if let Some(z) = &args.zone_id
            && region.zone(z).is_none()
        {
            return Err(zone_not_found(z, region_id));
        }
        if let Some(z) = &args.zone_id
            && *z != vsw.zone_id
        {
            return Err(ApiError::invalid(format!(
                "The specified ZoneId `{z}` does not match the vSwitch's zone `{}`.",
                vsw.zone_id
            )));
        }
        if args.security_group_ids.is_empty() {
            return Err(ApiError::missing("SecurityGroupId"));
        }
        for sg in &args.security_group_ids {
            let group = region
                .security_groups
                .get(sg)
                .ok_or_else(|| sg_not_found(sg))?;
            if group.vpc_id != vsw.vpc_id {
                return Err(ApiError::invalid(format!(
                    "The security group `{sg}` and the vSwitch `{}` are not in the same VPC.",
                    vsw.id
                )));
            }
        }
        let image = region
            .images
            .get(&args.image_id)
            .ok_or_else(|| image_not_found(&args.image_id))?;
        if image.status(now) != "Available" {
            return Err(ApiError::forbidden(
                "IncorrectImageStatus",
                "The specified image is not Available yet.",
            ));
        }
        if let Some(kp) = &args.key_pair_name
            && !region.key_pairs.contains_key(kp)
        {
            return Err(ApiError::not_found(
                "InvalidKeyPair.NotFound",
                format!("The specified key pair `{kp}` does not exist."),
            ));
        }
        let zone = region
            .zone(&vsw.zone_id)
            .expect("vSwitches are created in known zones");
        let Some(&stock) = zone.stock.get(&args.instance_type) else {
            return Err(ApiError::forbidden(
                "InvalidResourceType.NotSupported",
                format!(
                    "The instance type `{}` is not sold in zone `{}`; try other types or zones.",
                    args.instance_type, zone.id
                ),
            ));
        };
        let wanted = u64::from(args.amount);
        let count = if stock >= wanted {
            wanted
        } else if args.min_amount.is_some_and(|m| stock >= u64::from(m)) {
            stock
        } else {
            return Err(ApiError::forbidden(
                "OperationDenied.NoStock",
                "The requested resource is sold out in the specified zone; try other types of resources or other regions and zones.",
            ));
        };
        if vsw.ips.available() < count {
            return Err(ApiError::bad(
                "QuotaExceeded.PrivateIpAddress",
                "The vSwitch has too few free private addresses; use another vSwitch.",
            ));
        }
        let public = self.public_ip == PublicIpPolicy::Always || args.bandwidth_out > 0;
        if public && self.public_pool.available() < count {
            return Err(ApiError::forbidden(
                "QuotaExceed.PublicIpAddress",
                "The emulated cloud has run out of public addresses (see the world's `public_ip_pool`).",
            ));
        }
        if args.dry_run {
            return Err(ApiError::bad(
                "DryRunOperation",
                "Request validation has been passed with DryRun flag set.",
            ));
        }
        let vpc_id = vsw.vpc_id.clone();
        let zone_id = vsw.zone_id.clone();
        let family = itype.family();
        let _ = family;
        let count = u32::try_from(count).expect("at most 100");
        let boot = delays.boot_ms as Millis;
        let mut ids = Vec::with_capacity(count as usize);
        for i in 0..count {
            let id = self.new_id("i-", rng);
            let public_ip = if public {
                self.public_pool.allocate()
            } else {
                None
            };
            let region = self.regions.get_mut(region_id).expect("checked");
            let private_ip = region
                .vswitches
                .get_mut(&args.vswitch_id)
                .expect("checked")
                .ips
                .allocate()
                .expect("capacity checked");
            let suffix = id.trim_start_matches("i-");
            let name = args.instance_name.as_deref().map_or_else(
                || id.clone(),
                |n| sequence_name(n, i, count, args.unique_suffix),
            );
            let host_name = args.host_name.as_deref().map_or_else(
                || format!("iZ{suffix}Z"),
                |n| sequence_name(n, i, count, args.unique_suffix),
            );
            let inst = Instance {
                id: id.clone(),
                name,
                host_name,
                zone_id: zone_id.clone(),
                instance_type: args.instance_type.clone(),
                image_id: args.image_id.clone(),
                vpc_id: vpc_id.clone(),
                vswitch_id: args.vswitch_id.clone(),
                security_group_ids: args.security_group_ids.clone(),
                key_pair_name: args.key_pair_name.clone().unwrap_or_default(),
                bandwidth_out: args.bandwidth_out,
                internet_charge_type: args.internet_charge_type.clone(),
                charge_type: args.charge_type.clone(),
                spot_strategy: args.spot_strategy.clone(),
                disk_category: args.disk_category.clone(),
                disk_size_gb: args.disk_size_gb,
                public_ip,
                private_ip,
                tags: args.tags.clone(),
                created_ms: now,
                starting_at: now + boot / 4,
                running_at: now + boot,
                released_at: None,
            };
            region.instances.insert(id.clone(), inst);
            ids.push(id);
        }
        let zone = self
            .regions
            .get_mut(region_id)
            .and_then(|r| r.zone_mut(&zone_id))
            .expect("checked");
        *zone.stock.get_mut(&args.instance_type).expect("checked") -= u64::from(count);
        Ok(ids)
    }

    /// Starts releasing instances (all or none). Running ones need `force`; ones still booting
    /// are refused, as by the service.
    pub fn delete_instances(
        &mut self,
        region: &str,
        ids: &[String],
        force: bool,
        now: Millis,
        delays: Delays,
    ) -> Result<(), ApiError> {
        let r = self.region_mut(region)?;
        for id in ids {
            let inst = r.instances.get(id).ok_or_else(|| {
                ApiError::not_found(
                    "InvalidInstanceIds.NotFound",
                    format!("The specified instance `{id}` does not exist."),
                )
            })?;
            match inst.status(now) {
                InstanceStatus::Pending => {
                    return Err(ApiError::forbidden(
                        "IncorrectInstanceStatus.Initializing",
                        format!(
                            "The instance `{id}` is still being created; retry when it is Running."
                        ),
                    ));
                }
                InstanceStatus::Running | InstanceStatus::Starting if !force => {
                    return Err(ApiError::forbidden(
                        "IncorrectInstanceStatus",
                        format!(
                            "The instance `{id}` is running; stop it first or pass `Force=true`."
                        ),
                    ));
                }
                _ => {}
            }
        }
        for id in ids {
            let inst = r.instances.get_mut(id).expect("checked");
            if inst.released_at.is_none() {
                inst.released_at = Some(now + delays.release_ms as Millis);
            }
        }
        if delays.release_ms == 0 {
            self.sweep(now);
        }
        Ok(())
    }

    /// Tags ECS resources of one type (all or none).
    pub fn tag_ecs(
        &mut self,
        region: &str,
        kind: &str,
        ids: &[String],
        tags: &[Tag],
    ) -> Result<(), ApiError> {
        check_tags(tags)?;
        let r = self.region_mut(region)?;
        for id in ids {
            let exists = match kind {
                "instance" => r.instances.contains_key(id),
                "securitygroup" => r.security_groups.contains_key(id),
                "keypair" => r.key_pairs.contains_key(id),
                "image" => r.images.contains_key(id),
                _ => return Err(unsupported_resource_type(kind)),
            };
            if !exists {
                return Err(ApiError::not_found(
                    "InvalidResourceId.NotFound",
                    format!("The specified resource `{id}` does not exist."),
                ));
            }
        }
        for id in ids {
            let target = match kind {
                "instance" => &mut r.instances.get_mut(id).expect("checked").tags,
                "securitygroup" => &mut r.security_groups.get_mut(id).expect("checked").tags,
                "keypair" => &mut r.key_pairs.get_mut(id).expect("checked").tags,
                _ => &mut r.images.get_mut(id).expect("checked").tags,
            };
            upsert_tags(target, tags);
        }
        Ok(())
    }

    /// Every stock figure: (region, zone, type) → remaining.
    pub fn stock(&self) -> Vec<(String, String, String, u64)> {
        let mut out = Vec::new();
        for r in self.regions.values() {
            for z in &r.zones {
                for (t, n) in &z.stock {
                    out.push((r.id.clone(), z.id.clone(), t.clone(), *n));
                }
            }
        }
        out
    }

    /// Sets the stock of one (zone, type) (tests and the control endpoint).
    pub fn set_stock(
        &mut self,
        zone_id: &str,
        instance_type: &str,
        count: Option<u64>,
    ) -> Result<(), ApiError> {
        if !self.types.contains_key(instance_type) {
            return Err(ApiError::invalid(format!(
                "unknown instance type `{instance_type}`"
            )));
        }
        let zone = self
            .regions
            .values_mut()
            .flat_map(|r| r.zones.iter_mut())
            .find(|z| z.id == zone_id)
            .ok_or_else(|| ApiError::invalid(format!("unknown zone `{zone_id}`")))?;
        match count {
            Some(n) => zone.stock.insert(instance_type.to_string(), n),
            None => zone.stock.remove(instance_type),
        };
        Ok(())
    }
}

fn check_image_name(region: &Region, name: &str) -> Result<(), ApiError> {
    if name.len() < 2 || name.len() > 128 || !name.starts_with(|c: char| c.is_alphabetic()) {
        return Err(ApiError::bad(
            "InvalidImageName.Malformed",
            "The image name must be 2 to 128 characters and start with a letter.",
        ));
    }
    if region
        .images
        .values()
        .any(|i| i.owner == "self" && i.name == name)
    {
        return Err(ApiError::bad(
            "InvalidImageName.Duplicated",
            format!("An image named `{name}` already exists in this region."),
        ));
    }
    Ok(())
}

pub fn unknown_region(id: &str) -> ApiError {
    ApiError::bad(
        "InvalidRegionId.Malformed",
        format!("The specified RegionId `{id}` does not exist."),
    )
}
pub fn zone_not_found(zone: &str, region: &str) -> ApiError {
    ApiError::not_found(
        "InvalidZoneId.NotFound",
        format!("The specified zone `{zone}` does not exist in region `{region}`."),
    )
}
pub fn vpc_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "InvalidVpcId.NotFound",
        format!("The specified VPC `{id}` does not exist."),
    )
}
pub fn sg_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "InvalidSecurityGroupId.NotFound",
        format!("The specified security group `{id}` does not exist."),
    )
}
pub fn instance_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "InvalidInstanceId.NotFound",
        format!("The specified instance `{id}` does not exist."),
    )
}
pub fn image_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "InvalidImageId.NotFound",
        format!("The specified image `{id}` does not exist."),
    )
}
pub fn unsupported_resource_type(kind: &str) -> ApiError {
    ApiError::invalid(format!(
        "The specified ResourceType `{kind}` is not supported."
    ))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn world() -> (World, rand::rngs::StdRng) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        (World::new(&Catalog::builtin(), 0, &mut rng), rng)
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let (mut w, mut rng) = world();
        let ids: Vec<String> = (0..50).map(|_| w.new_id("i-", &mut rng)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert_eq!(ids[0].len(), 22);
    }

    #[test]
    fn ip_pools_skip_reserved_and_reuse_released() {
        let mut p = IpPool::new("10.0.0.0/29".parse().unwrap(), 1, 3);
        assert_eq!(p.capacity(), 4);
        let a = p.allocate().unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 0, 0, 1));
        let got: Vec<_> = (0..3).map(|_| p.allocate().unwrap()).collect();
        assert_eq!(got.last(), Some(&Ipv4Addr::new(10, 0, 0, 4)));
        assert!(p.allocate().is_none());
        p.release(a);
        assert_eq!(p.available(), 1);
        assert_eq!(p.allocate(), Some(a));
    }

    #[test]
    fn sequence_names() {
        assert_eq!(sequence_name("web-[1,3]", 1, 2, false), "web-002");
        assert_eq!(sequence_name("web", 0, 3, true), "web001");
        assert_eq!(sequence_name("web", 0, 3, false), "web");
    }

    #[test]
    fn stock_is_consumed_partially_with_min_amount_and_returned_on_release() {
        let (mut w, mut rng) = world();
        let d = Delays::default();
        let r = "ap-southeast-1";
        let vpc = w
            .create_vpc(r, Some("10.0.0.0/16"), "v", "", vec![], 0, d, &mut rng)
            .unwrap();
        let vsw = w
            .create_vswitch(
                r,
                &vpc.id,
                "ap-southeast-1a",
                "10.0.0.0/20",
                "s",
                "",
                vec![],
                0,
                d,
                &mut rng,
            )
            .unwrap();
        let sg = w
            .create_security_group(r, &vpc.id, "sg", "", vec![], 0, &mut rng)
            .unwrap();
        let image = w
            .region(r)
            .unwrap()
            .images
            .values()
            .find(|i| i.owner == "self")
            .unwrap()
            .id
            .clone();
        w.set_stock("ap-southeast-1a", "ecs.g7.2xlarge", Some(3))
            .unwrap();
        let args = RunArgs {
            image_id: image,
            instance_type: "ecs.g7.2xlarge".into(),
            security_group_ids: vec![sg.id.clone()],
            vswitch_id: vsw.id.clone(),
            amount: 5,
            ..RunArgs::default()
        };
        let e = w
            .run_instances(r, args.clone(), 0, d, &mut rng)
            .unwrap_err();
        assert_eq!(
            (e.status, e.code.as_str()),
            (403, "OperationDenied.NoStock")
        );
        let ids = w
            .run_instances(
                r,
                RunArgs {
                    min_amount: Some(2),
                    ..args.clone()
                },
                0,
                d,
                &mut rng,
            )
            .unwrap();
        assert_eq!(ids.len(), 3);
        let e = w.delete_security_group(r, &sg.id).unwrap_err();
        assert_eq!(e.code, "DependencyViolation");
        w.delete_instances(r, &ids, true, 0, d).unwrap();
        assert_eq!(
            w.region(r).unwrap().zone("ap-southeast-1a").unwrap().stock["ecs.g7.2xlarge"],
            3
        );
        w.delete_security_group(r, &sg.id).unwrap();
        assert_eq!(
            w.delete_vpc(r, &vpc.id, 0).unwrap_err().code,
            "DependencyViolation.VSwitch"
        );
        w.delete_vswitch(r, &vsw.id, 0).unwrap();
        w.delete_vpc(r, &vpc.id, 0).unwrap();
    }
}
