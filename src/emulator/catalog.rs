//! What a world starts with: regions, zones, instance types with stock per (zone, type),
//! images, and how addresses are handed out. Read from `--world FILE` (JSON) or built in.
//!
//! The built-in world is modelled on the original tool's Aliyun regions (its 10,000-node
//! template's eight regions and its example's seven, plus the large mainland and western
//! regions) and instance types (`config/hardware.json` and the templates' `*.2xlarge`), with the
//! `conflux-docker-registry` image owned by the account in every region. Default stock covers a
//! 10,000-node plan several times over, so only a fault knob or a custom world runs out.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::spec::Cidr;

/// Name of the account-owned image present in every region of the default world.
pub const CONFLUX_IMAGE: &str = "conflux-docker-registry";

/// A world file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Public addresses are drawn from this block, e.g. `198.18.0.0/15`, or a loopback block
    /// such as `127.0.16.0/20` for a local cloud. Unique across all regions.
    #[serde(default = "default_pool")]
    pub public_ip_pool: String,
    /// When an instance gets a public address.
    #[serde(default)]
    pub public_ip: PublicIpPolicy,
    pub instance_types: Vec<InstanceTypeDef>,
    pub regions: Vec<RegionDef>,
}

/// When an instance gets a public address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicIpPolicy {
    /// As the real service: only with `InternetMaxBandwidthOut` > 0.
    #[default]
    WithBandwidth,
    /// Every instance (a local cloud reaches its hosts only through these).
    Always,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceTypeDef {
    pub id: String,
    pub cpu: u32,
    pub memory_gib: f64,
    #[serde(default = "x86")]
    pub arch: String,
}

impl InstanceTypeDef {
    /// `ecs.g8i.2xlarge` → `ecs.g8i`.
    pub fn family(&self) -> String {
        match self.id.rsplit_once('.') {
            Some((f, _)) => f.to_string(),
            None => self.id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionDef {
    pub id: String,
    #[serde(default)]
    pub local_name: String,
    pub zones: Vec<ZoneDef>,
    #[serde(default)]
    pub images: Vec<ImageDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneDef {
    pub id: String,
    #[serde(default)]
    pub local_name: String,
    /// Instance types on sale in this zone and how many can still be created. A type absent
    /// here is not sold in the zone; a type at 0 is sold out.
    pub stock: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDef {
    /// Omit for account images to get a generated `m-…` id; system images use their name.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    /// `self` (owned by the account) or `system`.
    #[serde(default = "self_owner")]
    pub owner: String,
    #[serde(default = "linux")]
    pub os_type: String,
    #[serde(default = "default_image_size")]
    pub size_gb: u32,
}

fn default_pool() -> String {
    "198.18.0.0/15".into()
}
fn x86() -> String {
    "X86".into()
}
fn self_owner() -> String {
    "self".into()
}
fn linux() -> String {
    "linux".into()
}
fn default_image_size() -> u32 {
    20
}

/// A world file that cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CatalogError {
    #[error("cannot read the world file `{path}`: {reason}")]
    #[diagnostic(help(
        "pass a JSON world file (see `cfxm emulator serve --help`), or omit `--world` for the built-in world"
    ))]
    Read { path: String, reason: String },
    #[error("the world is inconsistent: {0}")]
    #[diagnostic(help(
        "fix the world file; every zone's stock must name instance types listed in `instance_types`"
    ))]
    Invalid(String),
}

impl Catalog {
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let fail = |reason: String| CatalogError::Read {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let catalog: Catalog = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        catalog.check()?;
        Ok(catalog)
    }

    /// Cross-field checks: known types, unique ids, a usable address pool.
    pub fn check(&self) -> Result<(), CatalogError> {
        let bad = |m: String| Err(CatalogError::Invalid(m));
        let pool: Cidr = self
            .public_ip_pool
            .parse()
            .map_err(|e| CatalogError::Invalid(format!("`public_ip_pool`: {e}")))?;
        if pool.prefix > 30 {
            return bad(format!("`public_ip_pool` {pool} is too small"));
        }
        let types: std::collections::HashSet<&str> =
            self.instance_types.iter().map(|t| t.id.as_str()).collect();
        let mut regions = std::collections::HashSet::new();
        let mut zones = std::collections::HashSet::new();
        for r in &self.regions {
            if !regions.insert(&r.id) {
                return bad(format!("region `{}` is listed twice", r.id));
            }
            if r.zones.is_empty() {
                return bad(format!("region `{}` has no zones", r.id));
            }
            for z in &r.zones {
                if !zones.insert(&z.id) {
                    return bad(format!("zone `{}` is listed twice", z.id));
                }
                if let Some(t) = z.stock.keys().find(|t| !types.contains(t.as_str())) {
                    return bad(format!(
                        "zone `{}` stocks `{t}`, which `instance_types` does not define",
                        z.id
                    ));
                }
            }
        }
        Ok(())
    }

    /// The built-in world.
    pub fn builtin() -> Self {
        // (id, cpu, GiB): the original's templates use *.2xlarge; hardware.json adds the rest.
        let types: [(&str, u32, f64); 14] = [
            ("ecs.g8i.xlarge", 4, 16.0),
            ("ecs.g8i.2xlarge", 8, 32.0),
            ("ecs.g8i.4xlarge", 16, 64.0),
            ("ecs.g9i.2xlarge", 8, 32.0),
            ("ecs.g9i.4xlarge", 16, 64.0),
            ("ecs.g7.xlarge", 4, 16.0),
            ("ecs.g7.2xlarge", 8, 32.0),
            ("ecs.g7.8xlarge", 32, 128.0),
            ("ecs.g8a.2xlarge", 8, 32.0),
            ("ecs.hfg7.2xlarge", 8, 32.0),
            ("ecs.c7.large", 2, 4.0),
            ("ecs.c7.xlarge", 4, 8.0),
            ("ecs.u1-c1m4.2xlarge", 8, 32.0),
            ("ecs.e-c1m2.large", 2, 4.0),
        ];
        let instance_types = types
            .iter()
            .map(|(id, cpu, mem)| InstanceTypeDef {
                id: id.to_string(),
                cpu: *cpu,
                memory_gib: *mem,
                arch: if id.starts_with("ecs.g8a") {
                    "X86".into()
                } else {
                    x86()
                },
            })
            .collect();
        // (region, local name, zone suffixes, sells g9i). Zone ids follow the real naming:
        // `ap-southeast-1a` style, except the mainland and Hong Kong's `cn-hongkong-b` style.
        let regions: [(&str, &str, &[&str], bool); 17] = [
            (
                "cn-hongkong",
                "China (Hong Kong)",
                &["-b", "-c", "-d"],
                true,
            ),
            ("ap-southeast-1", "Singapore", &["a", "b", "c"], true),
            ("ap-northeast-2", "South Korea (Seoul)", &["a", "b"], true),
            (
                "ap-southeast-3",
                "Malaysia (Kuala Lumpur)",
                &["a", "b"],
                true,
            ),
            (
                "ap-southeast-5",
                "Indonesia (Jakarta)",
                &["a", "b", "c"],
                true,
            ),
            ("ap-southeast-6", "Philippines (Manila)", &["a", "b"], false),
            ("ap-southeast-7", "Thailand (Bangkok)", &["a", "b"], true),
            ("me-east-1", "UAE (Dubai)", &["a", "b"], false),
            ("ap-northeast-1", "Japan (Tokyo)", &["a", "b", "c"], true),
            (
                "cn-hangzhou",
                "China (Hangzhou)",
                &["-h", "-i", "-j", "-k"],
                true,
            ),
            ("cn-shanghai", "China (Shanghai)", &["-e", "-f", "-g"], true),
            ("cn-beijing", "China (Beijing)", &["-h", "-i", "-j"], true),
            ("cn-shenzhen", "China (Shenzhen)", &["-d", "-e"], true),
            ("us-west-1", "US (Silicon Valley)", &["a", "b"], true),
            ("us-east-1", "US (Virginia)", &["a", "b"], true),
            ("eu-central-1", "Germany (Frankfurt)", &["a", "b"], true),
            ("eu-west-1", "UK (London)", &["a", "b"], false),
        ];
        let regions = regions
            .iter()
            .map(|(id, name, zones, g9i)| RegionDef {
                id: id.to_string(),
                local_name: name.to_string(),
                zones: zones
                    .iter()
                    .enumerate()
                    .map(|(i, suffix)| {
                        let zone_id = format!("{id}{suffix}");
                        let letter = suffix.trim_start_matches('-').to_uppercase();
                        let mut stock = BTreeMap::new();
                        for (t, _, _) in types.iter() {
                            let sold_here = if t.starts_with("ecs.g9i") {
                                *g9i && i < 2
                            } else if t.starts_with("ecs.g8a") || t.starts_with("ecs.hfg7") {
                                i == 0
                            } else {
                                true
                            };
                            if sold_here {
                                // The workhorse types get deep stock; the rest a few hundred.
                                let n = if t.ends_with(".2xlarge") { 3000 } else { 500 };
                                stock.insert(t.to_string(), n);
                            }
                        }
                        ZoneDef {
                            local_name: format!("{name} Zone {letter}"),
                            id: zone_id,
                            stock,
                        }
                    })
                    .collect(),
                images: vec![
                    ImageDef {
                        id: None,
                        name: CONFLUX_IMAGE.into(),
                        owner: "self".into(),
                        os_type: "linux".into(),
                        size_gb: 40,
                    },
                    ImageDef {
                        id: Some("ubuntu_22_04_x64_20G_alibase_20240101.vhd".into()),
                        name: "ubuntu_22_04_x64_20G_alibase_20240101.vhd".into(),
                        owner: "system".into(),
                        os_type: "linux".into(),
                        size_gb: 20,
                    },
                    ImageDef {
                        id: Some("ubuntu_24_04_x64_20G_alibase_20240812.vhd".into()),
                        name: "ubuntu_24_04_x64_20G_alibase_20240812.vhd".into(),
                        owner: "system".into(),
                        os_type: "linux".into(),
                        size_gb: 20,
                    },
                ],
            })
            .collect();
        Catalog {
            public_ip_pool: default_pool(),
            public_ip: PublicIpPolicy::WithBandwidth,
            instance_types,
            regions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_world_is_consistent_and_big_enough_for_10k() {
        let c = Catalog::builtin();
        c.check().unwrap();
        // The original tool's 10,000-node template: 8 regions, ecs.g8i.2xlarge first.
        let template = [
            ("cn-hongkong", 1600),
            ("ap-southeast-1", 1800),
            ("ap-northeast-2", 1500),
            ("ap-southeast-3", 1500),
            ("ap-southeast-5", 1500),
            ("ap-southeast-7", 1500),
            ("me-east-1", 530),
            ("ap-southeast-6", 20),
        ];
        for (region, nodes) in template {
            let r = c.regions.iter().find(|r| r.id == region).unwrap();
            let stock: u64 = r
                .zones
                .iter()
                .map(|z| z.stock.get("ecs.g8i.2xlarge").copied().unwrap_or(0))
                .sum();
            assert!(stock >= nodes, "{region}: {stock} < {nodes}");
            assert!(
                r.images
                    .iter()
                    .any(|i| i.name == CONFLUX_IMAGE && i.owner == "self")
            );
        }
    }

    #[test]
    fn inconsistent_worlds_are_refused() {
        let mut c = Catalog::builtin();
        c.regions[0].zones[0].stock.insert("ecs.nope".into(), 1);
        assert!(c.check().unwrap_err().to_string().contains("ecs.nope"));
        let mut c = Catalog::builtin();
        c.public_ip_pool = "10.0.0.1/8".into();
        assert!(c.check().is_err());
        let mut c = Catalog::builtin();
        let dup = c.regions[0].clone();
        c.regions.push(dup);
        assert!(c.check().is_err());
    }
}
