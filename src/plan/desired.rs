//! The desired graph: what the spec wants in each region of each cloud, as resources with
//! addresses, attributes and dependencies (DESIGN §5). Pure: it reads the spec and the little
//! of the live world it needs to choose (the region's zones and image, and the blocks existing
//! subnets already use, so they are kept rather than moved).
//!
//! Per region: `network → [gateway →] subnet/<zone>` for each zone, `network → security_group
//! → security_group/peers`, `key_pair`, `image` (read only), and `hosts` after the subnets,
//! the security group, the key pair and the image. The planner adds the cross-region edges
//! (every region's hosts before every region's peer rules and the stages).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::PlanError;
use super::net;
use crate::discover::{Addressed, RegionLive};
use crate::provider::resource::{Attrs, HostsAttrs, InstanceSettings, Kind, Provider, TypeChoice};
use crate::spec::{
    Cidr, Cloud, CloudKind, CloudSettings, Network, Owner, Region, RegionId, Spec, SpecName, ZoneId,
};
use crate::state::Address;

/// One resource the spec wants.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredResource {
    pub address: Address,
    pub cloud: CloudKind,
    pub region: RegionId,
    pub attrs: Attrs,
    pub depends_on: Vec<Address>,
}

/// The parts of a cloud's settings the planner uses, whatever the cloud.
#[derive(Debug, Clone)]
pub struct CloudView<'a> {
    pub kind: CloudKind,
    pub image: &'a str,
    pub ssh_key: PathBuf,
    pub ssh_user: &'a str,
    pub network: &'a Network,
    pub settings: InstanceSettings,
}

impl<'a> CloudView<'a> {
    /// The view of a cloud whose hosts cfxm creates on a provider; `None` for `static`.
    pub fn of(spec: &Spec, cloud: &'a Cloud) -> Option<Self> {
        match &cloud.settings {
            CloudSettings::Aliyun(a) => Some(CloudView {
                kind: CloudKind::Aliyun,
                image: &a.access.image,
                ssh_key: absolute(spec, &a.access.ssh_key),
                ssh_user: &a.access.ssh_user,
                network: &a.network,
                settings: InstanceSettings {
                    disk_gb: a.disk_gb,
                    disk_category: a.disk_category.clone(),
                    bandwidth_mbps: a.bandwidth_mbps,
                    public_ip: a.bandwidth_mbps > 0,
                    spot: a.spot,
                },
            }),
            CloudSettings::Aws(a) => Some(CloudView {
                kind: CloudKind::Aws,
                image: &a.access.image,
                ssh_key: absolute(spec, &a.access.ssh_key),
                ssh_user: &a.access.ssh_user,
                network: &a.network,
                settings: InstanceSettings {
                    disk_gb: a.disk_gb,
                    disk_category: a.volume_type.clone(),
                    // EC2 gives public addresses per subnet/interface, not by bandwidth.
                    bandwidth_mbps: 0,
                    // Given per launch (`AssociatePublicIpAddress`), not by bandwidth.
                    public_ip: true,
                    spot: a.spot,
                },
            }),
            // The built-in cloud: its image, its network, a public (loopback) address for
            // every host, and no SSH (the key pair is `crate::local::public_key`).
            CloudSettings::Local => Some(CloudView {
                kind: CloudKind::Local,
                image: crate::local::LOCAL_IMAGE,
                ssh_key: PathBuf::new(),
                ssh_user: crate::local::LOCAL_SSH_USER,
                network: crate::local::network(),
                settings: InstanceSettings {
                    disk_gb: 40,
                    disk_category: "cloud_essd".into(),
                    bandwidth_mbps: 0,
                    public_ip: true,
                    spot: false,
                },
            }),
            CloudSettings::Static(_) => None,
        }
    }
}

/// The key path as hosts.json will carry it: absolute, so it resolves from any directory.
fn absolute(spec: &Spec, key: &std::path::Path) -> PathBuf {
    let p = if key.is_absolute() {
        key.to_path_buf()
    } else {
        spec.dir().join(key)
    };
    std::path::absolute(&p).unwrap_or(p)
}

/// The name every resource of a spec carries: `conflux-massive-test-<owner>-<spec>` (the
/// original's infra tag, plus the spec so two specs of one owner never share a key pair name).
pub fn resource_name(owner: &Owner, spec: &SpecName) -> String {
    format!("conflux-massive-test-{owner}-{spec}")
}

/// `<cloud>/<region>/<parts...>`.
pub fn address(cloud: CloudKind, region: &RegionId, parts: &[&str]) -> Address {
    Address::new(format!("{cloud}/{region}/{}", parts.join("/")))
        .expect("clouds, regions, nouns and zones are address segments")
}

/// The address of a cloud's backfill step.
pub fn backfill_address(cloud: CloudKind) -> Address {
    Address::new(format!("{cloud}/backfill")).expect("a valid address")
}

/// What [`region`] needs besides the spec.
pub struct RegionInput<'a> {
    pub spec: &'a Spec,
    pub view: &'a CloudView<'a>,
    pub provider: &'a dyn Provider,
    pub region: &'a Region,
    pub live: &'a RegionLive,
    pub addressed: &'a [Addressed],
    /// The spec key's public line.
    pub public_key: &'a str,
    /// Nodes moved here (or away, negative) by a recorded backfill.
    pub backfill_nodes: i64,
}

/// The resources one region of the spec wants.
pub fn region(input: &RegionInput<'_>) -> Result<Vec<DesiredResource>, PlanError> {
    let RegionInput {
        spec,
        view,
        provider,
        region,
        live,
        addressed,
        public_key,
        backfill_nodes,
    } = input;
    let cloud = view.kind;
    let rid = &region.id;
    let noun = |k: Kind| provider.noun(k);
    let name = resource_name(&spec.owner, &spec.name);
    let at = |parts: &[&str]| address(cloud, rid, parts);

    // Zones: the spec's (each must exist), else every zone selling one of the types.
    let offers = live.zones.clone().unwrap_or_default();
    let known: Vec<&ZoneId> = offers.iter().map(|o| &o.zone).collect();
    let zones: Vec<ZoneId> = if region.zones.is_empty() {
        let picked: Vec<ZoneId> = offers
            .iter()
            .filter(|o| {
                region
                    .instance_types
                    .iter()
                    .any(|t| o.types.contains(&t.name))
            })
            .map(|o| o.zone.clone())
            .collect();
        if picked.is_empty() {
            return Err(PlanError::NoZones {
                region: rid.clone(),
                types: region
                    .instance_types
                    .iter()
                    .map(|t| t.name.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        picked
    } else {
        for z in &region.zones {
            if !known.contains(&z) {
                return Err(PlanError::UnknownZone {
                    region: rid.clone(),
                    zone: z.clone(),
                    known: known
                        .iter()
                        .map(|z| z.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        region.zones.clone()
    };

    // The image: a data source that must exist and be usable before anything is created.
    match &live.image {
        Some(Some(img)) if img.status.eq_ignore_ascii_case("available") => {}
        Some(Some(img)) => {
            return Err(PlanError::ImageNotReady {
                region: rid.clone(),
                name: view.image.to_owned(),
                status: img.status.clone(),
            });
        }
        _ => {
            return Err(PlanError::ImageMissing {
                cloud,
                region: rid.clone(),
                name: view.image.to_owned(),
            });
        }
    }

    let vpc_cidr: Cidr = view.network.cidr;
    let kept: BTreeMap<ZoneId, Cidr> = addressed
        .iter()
        .filter(|a| !a.duplicate)
        .filter_map(|a| match &a.resource.attrs {
            Attrs::Subnet { zone, cidr, .. } => Some((zone.clone(), cidr.parse().ok()?)),
            _ => None,
        })
        .collect();
    let blocks =
        net::subnet_blocks(vpc_cidr, &zones, &kept).map_err(|message| PlanError::Subnets {
            region: rid.clone(),
            message,
        })?;
    let max_nph = region
        .instance_types
        .iter()
        .map(|t| t.nodes_per_host)
        .max()
        .unwrap_or(1);

    let network = at(&[noun(Kind::Network)]);
    let gateway = at(&[noun(Kind::Gateway)]);
    let has_gateway = provider.kinds().contains(&Kind::Gateway);
    let sg = at(&[noun(Kind::SecurityGroup)]);
    let peers = at(&[noun(Kind::SecurityGroup), noun(Kind::Peers)]);
    let key = at(&[noun(Kind::KeyPair)]);
    let image = at(&[noun(Kind::Image)]);
    let hosts = at(&[noun(Kind::Hosts)]);

    let res = |address: Address, attrs: Attrs, depends_on: Vec<Address>| DesiredResource {
        address,
        cloud,
        region: rid.clone(),
        attrs,
        depends_on,
    };
    let mut out = vec![res(
        network.clone(),
        Attrs::Network {
            name: name.clone(),
            cidr: vpc_cidr.to_string(),
        },
        vec![],
    )];
    if has_gateway {
        out.push(res(
            gateway.clone(),
            Attrs::Gateway { name: name.clone() },
            vec![network.clone()],
        ));
    }
    let mut subnet_addrs = Vec::new();
    for z in &zones {
        let a = at(&[noun(Kind::Subnet), z.as_str()]);
        subnet_addrs.push(a.clone());
        let parent = if has_gateway {
            vec![network.clone(), gateway.clone()]
        } else {
            vec![network.clone()]
        };
        out.push(res(
            a,
            Attrs::Subnet {
                name: name.clone(),
                zone: z.clone(),
                cidr: blocks[z].to_string(),
            },
            parent,
        ));
    }
    out.push(res(
        sg.clone(),
        Attrs::SecurityGroup {
            name: name.clone(),
            rules: net::base_rules(&view.network.ssh_from, vpc_cidr, max_nph),
        },
        vec![network.clone()],
    ));
    if provider.kinds().contains(&Kind::Peers) && spec.regions() > 1 {
        out.push(res(peers, Attrs::Peers { rules: None }, vec![sg.clone()]));
    }
    let fingerprint = provider.fingerprint(public_key).unwrap_or_default();
    out.push(res(
        key.clone(),
        Attrs::KeyPair {
            name: name.clone(),
            fingerprint,
            public_key: (*public_key).to_owned(),
        },
        vec![],
    ));
    out.push(res(
        image.clone(),
        Attrs::Image {
            name: view.image.to_owned(),
        },
        vec![],
    ));
    let nodes = (i64::from(region.nodes) + backfill_nodes).max(0);
    let mut hosts_deps = subnet_addrs;
    hosts_deps.extend([sg, key, image]);
    out.push(res(
        hosts,
        Attrs::Hosts(HostsAttrs {
            nodes: u32::try_from(nodes).unwrap_or(u32::MAX),
            types: region
                .instance_types
                .iter()
                .map(|t| TypeChoice {
                    name: t.name.clone(),
                    nodes_per_host: t.nodes_per_host,
                    hourly_cost_usd: t.hourly_cost_usd,
                })
                .collect(),
            zones,
            image: view.image.to_owned(),
            key_pair: name,
            settings: view.settings.clone(),
            max_per_call: spec.placement.max_hosts_per_call.clamp(1, 100),
        }),
        hosts_deps,
    ));
    Ok(out)
}
