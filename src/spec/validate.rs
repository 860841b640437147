//! Rules that span fields, checked after the structure is known to be right: duplicate regions,
//! peers against the node count, host and cost limits, durations, address blocks, zones that
//! belong to their region, the static inventory. Every rule reports at the YAML location of the
//! value it blames, and every failing rule is reported, not just the first.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use super::diagnostic::{SpecError, SpecErrorKind};
use super::ids::{CloudKind, InstanceType, Owner, RegionId, SpecName, ZoneId};
use super::model::{
    HumanDuration, RawAliyun, RawAws, RawInstanceType, RawNetwork, RawRegion, RawSpec,
};
use super::schema::{Seg, SpecPath};
use super::yaml::{ByteSpan, Node, Value};
use super::{
    AliyunSettings, AwsSettings, Blocks, Cidr, Cloud, CloudSettings, Experiment, HostAccess,
    InstanceTypeChoice, LatencyMatrix, Limits, Network, NodeSpec, Placement, Region, Report, Spec,
    StaticInventory, Topology, Transactions, thousands,
};
use crate::state::hosts_json;

/// Where values are in the source, for blaming them.
struct Locator<'a> {
    root: &'a Node,
}

impl Locator<'_> {
    fn find(&self, path: &SpecPath) -> Option<(Option<ByteSpan>, &Node)> {
        let mut node = self.root;
        let mut key = None;
        for seg in &path.0 {
            match (seg, &node.value) {
                (Seg::Key(k), Value::Map(_)) => {
                    let (kk, v) = node.get(k)?;
                    key = Some(kk.span);
                    node = v;
                }
                (Seg::Index(i), Value::Seq(items)) => {
                    node = items.get(*i)?;
                    key = None;
                }
                _ => return None,
            }
        }
        Some((key, node))
    }

    /// The value's span, or its closest written ancestor's (a defaulted value has no text).
    fn value(&self, path: &SpecPath) -> ByteSpan {
        let mut p = path.clone();
        loop {
            if let Some((_, n)) = self.find(&p) {
                return n.span;
            }
            if p.0.pop().is_none() {
                return self.root.span;
            }
        }
    }

    /// The key's span (falls back to the value's).
    fn key(&self, path: &SpecPath) -> ByteSpan {
        match self.find(path) {
            Some((Some(k), _)) => k,
            _ => self.value(path),
        }
    }
}

struct Validator<'a> {
    at: Locator<'a>,
    errors: Vec<SpecError>,
    spec_file: &'a Path,
}

impl Validator<'_> {
    fn error(&mut self, e: SpecError) {
        self.errors.push(e);
    }

    fn duration(&mut self, d: &HumanDuration, path: &SpecPath, positive: bool) -> Duration {
        match humantime::parse_duration(d.0.trim()) {
            Ok(v) if positive && v.is_zero() => {
                self.error(
                    SpecError::new(
                        SpecErrorKind::OutOfRange,
                        format!("{path} must be longer than zero"),
                    )
                    .at(self.at.value(path), "zero")
                    .help("write a positive duration such as `175ms`"),
                );
                v
            }
            Ok(v) => v,
            Err(e) => {
                self.error(
                    SpecError::new(
                        SpecErrorKind::BadValue,
                        format!("{path} is not a duration: `{}` ({e})", d.0),
                    )
                    .at(self.at.value(path), "not a duration")
                    .help("write a number and a unit, such as `175ms`, `30s`, `30m` or `1h 30m`"),
                );
                Duration::ZERO
            }
        }
    }

    fn cidr(&mut self, text: &str, path: &SpecPath) -> Option<Cidr> {
        match text.parse::<Cidr>() {
            Ok(c) => Some(c),
            Err(why) => {
                self.error(
                    SpecError::new(
                        SpecErrorKind::BadValue,
                        format!("{path} is not an address block: {why}"),
                    )
                    .at(self.at.value(path), "not an address block")
                    .help("write an IPv4 block such as `10.0.0.0/16` or `203.0.113.7/32`"),
                );
                None
            }
        }
    }

    fn name_part(&mut self, value: &str, path: &SpecPath) {
        // Aliyun rejects tag values starting with `aliyun` (and `acs:`, `aws:` need a colon,
        // which names cannot hold).
        if let Some(prefix) = ["aliyun"].into_iter().find(|p| value.starts_with(p)) {
            self.error(
                SpecError::new(
                    SpecErrorKind::BadValue,
                    format!("{path} cannot start with `{prefix}`"),
                )
                .at(self.at.value(path), "reserved prefix")
                .help(format!(
                    "clouds reserve tag values starting with `{prefix}`; pick another name"
                )),
            );
        }
    }

    fn network(&mut self, raw: &RawNetwork, path: &SpecPath) -> Network {
        let cidr_path = path.key("cidr");
        let cidr = self.cidr(&raw.cidr, &cidr_path).unwrap_or(Cidr {
            addr: [10, 0, 0, 0].into(),
            prefix: 16,
        });
        let private = [
            (u32::from_be_bytes([10, 0, 0, 0]), 8),
            (u32::from_be_bytes([172, 16, 0, 0]), 12),
            (u32::from_be_bytes([192, 168, 0, 0]), 16),
        ]
        .iter()
        .any(|(base, len)| {
            cidr.prefix >= *len && (u32::from(cidr.addr) >> (32 - len)) == (base >> (32 - len))
        });
        if !private || !(16..=24).contains(&cidr.prefix) {
            self.error(
                SpecError::new(
                    SpecErrorKind::BadValue,
                    format!("{cidr_path} must be a private block from /16 to /24, found `{cidr}`"),
                )
                .at(self.at.value(&cidr_path), "not usable as a VPC block")
                .help("use a block inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, e.g. `10.0.0.0/16`"),
            );
        }
        let ssh_from = raw
            .ssh_from
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.cidr(s, &path.key("ssh_from").index(i)))
            .collect();
        Network {
            create: raw.create,
            cidr,
            ssh_from,
        }
    }

    fn instance_types(
        &mut self,
        raw: &[RawInstanceType],
        path: &SpecPath,
    ) -> Vec<InstanceTypeChoice> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, t) in raw.iter().enumerate() {
            if let Some(first) = seen.insert(t.name.as_str(), i) {
                let here = path.index(i).key("name");
                self.error(
                    SpecError::new(
                        SpecErrorKind::Duplicate,
                        format!("instance type `{}` is listed twice in {path}", t.name),
                    )
                    .at(self.at.value(&here), "listed again")
                    .at(
                        self.at.value(&path.index(first).key("name")),
                        "first listed here",
                    )
                    .help("each type appears once; its position is its preference"),
                );
            }
        }
        raw.iter()
            .map(|t| InstanceTypeChoice {
                name: InstanceType::new(&t.name),
                nodes_per_host: t.nodes_per_host,
                hourly_cost_usd: t.hourly_cost_usd,
            })
            .collect()
    }

    fn regions(
        &mut self,
        kind: CloudKind,
        raw: &[RawRegion],
        cloud_types: &[InstanceTypeChoice],
        path: &SpecPath,
    ) -> Vec<Region> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let rpath = path.index(i);
            if let Some(first) = seen.insert(r.name.as_str(), i) {
                self.error(
                    SpecError::new(
                        SpecErrorKind::Duplicate,
                        format!("region `{}` is listed twice in `cloud.{kind}`", r.name),
                    )
                    .at(self.at.value(&rpath.key("name")), "listed again")
                    .at(
                        self.at.value(&path.index(first).key("name")),
                        "first listed here",
                    )
                    .help("list each region once and add up its `nodes`"),
                );
            }
            let mut zones = Vec::new();
            let mut seen_zones: HashMap<&str, usize> = HashMap::new();
            for (z, zone) in r.zones.iter().flatten().enumerate() {
                let zpath = rpath.key("zones").index(z);
                if !zone.starts_with(r.name.as_str()) || zone.len() == r.name.len() {
                    self.error(
                        SpecError::new(
                            SpecErrorKind::BadValue,
                            format!("zone `{zone}` is not in region `{}`", r.name),
                        )
                        .at(self.at.value(&zpath), "not a zone of this region")
                        .help(format!(
                            "zone ids start with their region's id, e.g. `{}-b` or `{}a`",
                            r.name, r.name
                        )),
                    );
                }
                if let Some(first) = seen_zones.insert(zone.as_str(), z) {
                    self.error(
                        SpecError::new(
                            SpecErrorKind::Duplicate,
                            format!("zone `{zone}` is listed twice in region `{}`", r.name),
                        )
                        .at(self.at.value(&zpath), "listed again")
                        .at(
                            self.at.value(&rpath.key("zones").index(first)),
                            "first listed here",
                        )
                        .help("list each zone once, in preference order"),
                    );
                }
                zones.push(ZoneId::new(zone));
            }
            let instance_types = match &r.instance_types {
                Some(own) => self.instance_types(own, &rpath.key("instance_types")),
                None => cloud_types.to_vec(),
            };
            out.push(Region {
                id: RegionId::new(&r.name),
                nodes: r.nodes,
                zones,
                instance_types,
            });
        }
        out
    }

    fn access(&mut self, image: &str, ssh_key: &str, ssh_user: &str) -> HostAccess {
        HostAccess {
            image: image.to_string(),
            ssh_key: self.relative(ssh_key),
            ssh_user: ssh_user.to_string(),
        }
    }

    fn relative(&self, p: &str) -> std::path::PathBuf {
        let dir = self.spec_file.parent().unwrap_or(Path::new("."));
        dir.join(p)
    }

    fn aliyun(&mut self, raw: &RawAliyun) -> Cloud {
        let path = SpecPath::default().key("cloud").key("aliyun");
        let types = self.instance_types(&raw.instance_types, &path.key("instance_types"));
        let regions = self.regions(
            CloudKind::Aliyun,
            &raw.regions,
            &types,
            &path.key("regions"),
        );
        let network = self.network(&raw.network, &path.key("network"));
        let (access_key_id, access_key_secret) =
            self.aliyun_credentials(raw.credentials.as_ref(), &path.key("credentials"));
        let endpoint = self.aliyun_endpoint(raw.endpoint.as_deref(), &path.key("endpoint"));
        Cloud {
            settings: CloudSettings::Aliyun(AliyunSettings {
                access: self.access(&raw.image, &raw.ssh_key, &raw.ssh_user),
                network,
                disk_gb: raw.instance.disk_gb,
                disk_category: raw.instance.disk_category.clone(),
                bandwidth_mbps: raw.instance.bandwidth_mbps,
                spot: raw.instance.spot,
                access_key_id,
                access_key_secret,
                endpoint,
            }),
            regions,
        }
    }

    /// The spec's access key: both halves or neither.
    fn aliyun_credentials(
        &mut self,
        raw: Option<&crate::spec::model::RawAliyunCredentials>,
        path: &SpecPath,
    ) -> (Option<String>, Option<crate::provider::aliyun::Secret>) {
        let Some(raw) = raw else {
            return (None, None);
        };
        let id = raw.access_key_id.clone().filter(|s| !s.is_empty());
        let secret = raw.access_key_secret.clone().filter(|s| !s.is_empty());
        if id.is_some() != secret.is_some() {
            let missing = if id.is_some() {
                "access_key_secret"
            } else {
                "access_key_id"
            };
            self.error(
                SpecError::new(
                    SpecErrorKind::MissingKey,
                    format!("{path} gives half a key pair: `{missing}` is missing"),
                )
                .at(self.at.value(path), "incomplete key pair")
                .help(
                    "give both halves, or remove `credentials` and export `ALIBABA_CLOUD_ACCESS_KEY_ID` \
                     and `ALIBABA_CLOUD_ACCESS_KEY_SECRET` (preferred)",
                ),
            );
        }
        (id, secret.map(crate::provider::aliyun::Secret::new))
    }

    fn aliyun_endpoint(&mut self, raw: Option<&str>, path: &SpecPath) -> Option<String> {
        let raw = raw?;
        if let Err(e) = crate::provider::aliyun::Endpoints::single(raw, "the spec") {
            self.error(
                SpecError::new(
                    SpecErrorKind::BadValue,
                    format!("{path} is not an endpoint URL: {}", e.reason),
                )
                .at(self.at.value(path), "not `http(s)://host[:port]`")
                .help("use a URL such as `http://127.0.0.1:8080` (scheme, host and optional port)"),
            );
        }
        Some(raw.to_string())
    }

    fn aws(&mut self, raw: &RawAws) -> Cloud {
        let path = SpecPath::default().key("cloud").key("aws");
        let types = self.instance_types(&raw.instance_types, &path.key("instance_types"));
        let regions = self.regions(CloudKind::Aws, &raw.regions, &types, &path.key("regions"));
        let network = self.network(&raw.network, &path.key("network"));
        Cloud {
            settings: CloudSettings::Aws(AwsSettings {
                access: self.access(&raw.image, &raw.ssh_key, &raw.ssh_user),
                network,
                disk_gb: raw.instance.disk_gb,
                volume_type: raw.instance.volume_type.clone(),
                iops: raw.instance.iops,
                throughput_mbps: raw.instance.throughput_mbps,
                spot: raw.instance.spot,
            }),
            regions,
        }
    }

    fn static_inventory(&mut self, inventory: &str, ssh_port: u16) -> Option<Cloud> {
        let path = SpecPath::default()
            .key("cloud")
            .key("static")
            .key("inventory");
        let file = self.relative(inventory);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                self.error(
                    SpecError::new(
                        SpecErrorKind::Reference,
                        format!("cannot read the inventory `{}`: {e}", file.display()),
                    )
                    .at(self.at.value(&path), "this file")
                    .help("the path is relative to the spec file; the format is the original tool's `hosts.json`"),
                );
                return None;
            }
        };
        let hosts = match hosts_json::parse(&text) {
            Ok(h) => h,
            Err(e) => {
                self.error(
                    SpecError::new(
                        SpecErrorKind::Reference,
                        format!(
                            "the inventory `{}` is not a valid hosts.json: {e}",
                            file.display()
                        ),
                    )
                    .at(self.at.value(&path), "this file")
                    .help("each host needs exactly: ip, nodes_per_host, ssh_user, ssh_key_path, provider, region, zone, instance_id, private_ip"),
                );
                return None;
            }
        };
        if hosts.is_empty() || hosts.iter().all(|h| h.nodes_per_host == 0) {
            self.error(
                SpecError::new(
                    SpecErrorKind::Reference,
                    format!("the inventory `{}` lists no nodes", file.display()),
                )
                .at(self.at.value(&path), "empty inventory")
                .help("list at least one host with `nodes_per_host` of 1 or more"),
            );
            return None;
        }
        // Regions as the inventory groups them, in first-seen order.
        let mut regions: Vec<Region> = Vec::new();
        for h in &hosts {
            let id = RegionId::new(&h.region);
            match regions.iter_mut().find(|r| r.id == id) {
                Some(r) => r.nodes += h.nodes_per_host,
                None => regions.push(Region {
                    id,
                    nodes: h.nodes_per_host,
                    zones: Vec::new(),
                    instance_types: Vec::new(),
                }),
            }
        }
        Some(Cloud {
            settings: CloudSettings::Static(StaticInventory {
                path: file,
                hosts,
                ssh_port,
            }),
            regions,
        })
    }
}

pub(super) fn validate(
    raw: RawSpec,
    root: &Node,
    spec_file: &Path,
) -> Result<Spec, Vec<SpecError>> {
    let mut v = Validator {
        at: Locator { root },
        errors: Vec::new(),
        spec_file,
    };
    let top = SpecPath::default();
    v.name_part(&raw.name, &top.key("name"));
    v.name_part(&raw.owner, &top.key("owner"));

    let mut clouds = Vec::new();
    if let Some(a) = &raw.cloud.aliyun {
        clouds.push(v.aliyun(a));
    }
    if let Some(a) = &raw.cloud.aws {
        clouds.push(v.aws(a));
    }
    if let Some(l) = &raw.cloud.local {
        let path = top.key("cloud").key("local");
        if clouds.len() + usize::from(raw.cloud.static_hosts.is_some()) > 0 {
            v.error(
                SpecError::new(
                    SpecErrorKind::Conflict,
                    "the `local` cloud cannot be combined with other clouds",
                )
                .at(v.at.key(&path), "local hosts live on this machine")
                .help("hosts on a real cloud cannot reach nodes on loopback; use `local` alone, or drop it"),
            );
        }
        let types = v.instance_types(&l.instance_types, &path.key("instance_types"));
        let regions = v.regions(CloudKind::Local, &l.regions, &types, &path.key("regions"));
        clouds.push(Cloud {
            settings: CloudSettings::Local,
            regions,
        });
    }
    if let Some(s) = &raw.cloud.static_hosts
        && let Some(c) = v.static_inventory(&s.inventory, s.ssh_port)
    {
        clouds.push(c);
    }

    let total_nodes: u64 = clouds.iter().map(Cloud::nodes).sum();
    let max_hosts: u64 = clouds.iter().map(Cloud::max_hosts).sum();

    let limits_path = top.key("limits");
    if let Some(limit) = raw.limits.max_hosts
        && max_hosts > u64::from(limit)
    {
        let breakdown: Vec<String> = clouds
            .iter()
            .map(|c| format!("{} {}", c.kind(), thousands(c.max_hosts())))
            .collect();
        v.error(
                SpecError::new(
                    SpecErrorKind::Conflict,
                    format!(
                        "the spec may need {} hosts, above `limits.max_hosts` of {}",
                        thousands(max_hosts),
                        thousands(u64::from(limit))
                    ),
                )
                .at(v.at.value(&limits_path.key("max_hosts")), "limit")
                .help(format!(
                    "hosts are counted with each region's smallest `nodes_per_host` ({}); lower `nodes`, raise `nodes_per_host` or raise the limit",
                    breakdown.join(", ")
                )),
            );
    }
    if let Some(limit) = raw.limits.max_hourly_cost_usd {
        let mut total = 0.0;
        let mut unpriced: Vec<String> = Vec::new();
        for c in clouds
            .iter()
            .filter(|c| matches!(c.kind(), CloudKind::Aliyun | CloudKind::Aws))
        {
            for r in &c.regions {
                let worst = r
                    .instance_types
                    .iter()
                    .map(|t| match t.hourly_cost_usd {
                        Some(p) => r.hosts_with(t.nodes_per_host) as f64 * p,
                        None => {
                            if !unpriced.contains(&t.name.to_string()) {
                                unpriced.push(t.name.to_string());
                            }
                            0.0
                        }
                    })
                    .fold(0.0, f64::max);
                total += worst;
            }
        }
        let at = v.at.value(&limits_path.key("max_hourly_cost_usd"));
        if !unpriced.is_empty() {
            v.error(
                SpecError::new(
                    SpecErrorKind::Conflict,
                    format!(
                        "`limits.max_hourly_cost_usd` is set, but {} no `hourly_cost_usd`",
                        unpriced
                            .iter()
                            .map(|t| format!("`{t}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                            + if unpriced.len() == 1 { " has" } else { " have" }
                    ),
                )
                .at(at, "cannot be checked")
                .help("give every instance type an `hourly_cost_usd`, or remove the cost limit"),
            );
        } else if total > limit {
            v.error(
                SpecError::new(
                    SpecErrorKind::Conflict,
                    format!("the spec may cost ${total:.2} per hour, above `limits.max_hourly_cost_usd` of ${limit:.2}"),
                )
                .at(at, "limit")
                .help("each region is priced at its most expensive instance type; lower `nodes` or raise the limit"),
            );
        }
    }

    let exp = top.key("experiment");
    let peers = match raw.experiment.topology.peers {
        Some(p) if u64::from(p) >= total_nodes && total_nodes > 0 => {
            let path = exp.key("topology").key("peers");
            v.error(
                SpecError::new(
                    SpecErrorKind::Conflict,
                    format!(
                        "`experiment.topology.peers` is {p}, but the spec runs only {} node{}",
                        thousands(total_nodes),
                        if total_nodes == 1 { "" } else { "s" }
                    ),
                )
                .at(v.at.value(&path), "too many peers")
                .help(format!(
                    "a node can have at most {} peers here; remove `peers` to use min(8, nodes - 1)",
                    total_nodes.saturating_sub(1)
                )),
            );
            p
        }
        Some(p) => p,
        None => u32::try_from(total_nodes.saturating_sub(1).min(8)).unwrap_or(8),
    };

    let latency = raw.experiment.latency.as_ref().map(|l| {
        let lpath = exp.key("latency").key("between_regions");
        let known: Vec<&str> = clouds
            .iter()
            .flat_map(|c| c.regions.iter().map(|r| r.id.as_str()))
            .collect();
        let mut m = LatencyMatrix {
            default: None,
            pairs: BTreeMap::new(),
        };
        for (key, d) in &l.between_regions {
            let dpath = lpath.key(key);
            let dur = v.duration(d, &dpath, false);
            if key == "default" {
                m.default = Some(dur);
                continue;
            }
            let Some((a, b)) = key.split_once('/') else {
                v.error(
                    SpecError::new(
                        SpecErrorKind::BadValue,
                        format!("`{key}` is not a region pair"),
                    )
                    .at(v.at.key(&dpath), "expected `<region>/<region>`")
                    .help("write `default: 80ms` or a pair such as `ap-southeast-1/cn-hongkong: 35ms`"),
                );
                continue;
            };
            for r in [a, b] {
                if !known.contains(&r) {
                    let hint = super::schema::did_you_mean(r, known.iter().copied())
                        .map(|s| format!("did you mean `{s}`? "))
                        .unwrap_or_default();
                    v.error(
                        SpecError::new(
                            SpecErrorKind::Reference,
                            format!("region `{r}` in `{key}` is not in the spec"),
                        )
                        .at(v.at.key(&dpath), "unknown region")
                        .help(format!("{hint}latency pairs name regions listed under `cloud`")),
                    );
                }
            }
            let (a, b) = (RegionId::new(a), RegionId::new(b));
            let pair = if a <= b { (a, b) } else { (b, a) };
            m.pairs.insert(pair, dur);
        }
        m
    });

    let bpath = exp.key("blocks");
    let blocks = Blocks {
        count: raw.experiment.blocks.count,
        mean_interval: v.duration(
            &raw.experiment.blocks.mean_interval,
            &bpath.key("mean_interval"),
            true,
        ),
        min_node_gap: v.duration(
            &raw.experiment.blocks.min_node_gap,
            &bpath.key("min_node_gap"),
            false,
        ),
        max_bytes: raw.experiment.blocks.max_bytes,
    };

    if !v.errors.is_empty() {
        return Err(v.errors);
    }
    Ok(Spec {
        name: SpecName::new(raw.name),
        owner: Owner::new(raw.owner),
        file: spec_file.to_path_buf(),
        clouds,
        placement: Placement {
            max_hosts_per_call: raw.placement.max_hosts_per_call,
            backfill: raw.placement.backfill,
        },
        limits: Limits {
            max_hosts: raw.limits.max_hosts,
            max_hourly_cost_usd: raw.limits.max_hourly_cost_usd,
        },
        node: NodeSpec {
            image: raw.node.image,
            config: raw.node.config,
        },
        experiment: Experiment {
            topology: Topology {
                peers,
                seed: raw.experiment.topology.seed,
            },
            latency,
            transactions: Transactions {
                tps: raw.experiment.transactions.tps,
            },
            blocks,
        },
        report: Report {
            percentiles: raw.report.percentiles.iter().map(|p| p.0).collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::spec::{SpecErrorKind, load_str};

    fn kinds(src: &str) -> Vec<SpecErrorKind> {
        match load_str(src, "t.yaml", Path::new("t.yaml")) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors.iter().map(|e| e.kind).collect(),
        }
    }

    const BASE: &str = "name: t\nowner: alice\ncloud:\n  aliyun:\n    instance_types: [{ name: ecs.g8i.2xlarge }]\n    regions:\n      - { name: ap-southeast-1, nodes: 10 }\n";

    #[test]
    fn defaults_fill_a_minimal_spec() {
        let s = load_str(BASE, "t.yaml", Path::new("specs/t.yaml")).unwrap();
        assert_eq!(s.experiment.topology.peers, 8);
        assert_eq!(s.experiment.blocks.count, 2000);
        assert_eq!(s.experiment.blocks.mean_interval.as_millis(), 175);
        assert_eq!(s.experiment.transactions.tps, 17_000);
        assert_eq!(
            s.summary(),
            "t, 1 cloud, 1 region, 10 nodes on at most 10 hosts"
        );
        let crate::spec::CloudSettings::Aliyun(a) = &s.clouds[0].settings else {
            panic!()
        };
        assert_eq!(a.access.ssh_key, Path::new("specs/keys/ssh-key.pem"));
        assert_eq!(a.network.cidr.to_string(), "10.0.0.0/16");
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let src = BASE.replace(
            "      - { name: ap-southeast-1, nodes: 10 }\n",
            "      - { name: ap-southeast-1, nodes: 10 }\n      - { name: ap-southeast-1, nodes: 2 }\nexperiment: { topology: { peers: 12 }, blocks: { mean_interval: 0ms } }\nlimits: { max_hosts: 5 }\n",
        );
        let k = kinds(&src);
        assert_eq!(
            k,
            [
                SpecErrorKind::Duplicate,
                SpecErrorKind::Conflict,
                SpecErrorKind::Conflict,
                SpecErrorKind::OutOfRange
            ]
        );
    }

    #[test]
    fn aliyun_credentials_and_endpoint() {
        let src = format!(
            "{BASE}    credentials: {{ access_key_id: id, access_key_secret: hunter2 }}\n    endpoint: http://127.0.0.1:8080\n"
        );
        let s = load_str(&src, "t.yaml", Path::new("t.yaml")).unwrap();
        let crate::spec::CloudSettings::Aliyun(a) = &s.clouds[0].settings else {
            panic!()
        };
        assert_eq!(a.access_key_id.as_deref(), Some("id"));
        assert_eq!(
            a.access_key_secret.as_ref().map(|s| s.expose()),
            Some("hunter2")
        );
        assert!(
            !format!("{a:?}").contains("hunter2"),
            "the secret must not reach Debug output"
        );
        assert_eq!(a.endpoint.as_deref(), Some("http://127.0.0.1:8080"));
        let half = format!("{BASE}    credentials: {{ access_key_id: id }}\n");
        assert_eq!(kinds(&half), [SpecErrorKind::MissingKey]);
        let bad = format!("{BASE}    endpoint: ftp://x/y\n");
        assert_eq!(kinds(&bad), [SpecErrorKind::BadValue]);
    }

    #[test]
    fn worst_case_hosts_use_the_smallest_nodes_per_host() {
        let src = BASE.replace(
            "instance_types: [{ name: ecs.g8i.2xlarge }]",
            "instance_types: [{ name: a, nodes_per_host: 4 }, { name: b, nodes_per_host: 2 }]",
        );
        let s = load_str(&src, "t.yaml", Path::new("t.yaml")).unwrap();
        assert_eq!(s.max_hosts(), 5);
    }

    #[test]
    fn latency_pairs_are_unordered() {
        let src = format!(
            "{BASE}      - {{ name: cn-hongkong, nodes: 2 }}\nexperiment:\n  latency:\n    between_regions: {{ default: 80ms, cn-hongkong/ap-southeast-1: 35ms }}\n"
        );
        let s = load_str(&src, "t.yaml", Path::new("t.yaml")).unwrap();
        let m = s.experiment.latency.unwrap();
        let (a, b) = (
            crate::spec::RegionId::new("ap-southeast-1"),
            crate::spec::RegionId::new("cn-hongkong"),
        );
        assert_eq!(m.between(&a, &b).unwrap().as_millis(), 35);
        assert_eq!(m.between(&b, &a).unwrap().as_millis(), 35);
        assert_eq!(m.between(&a, &a), None);
    }
}
