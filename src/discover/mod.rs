//! Discovery: what exists in the cloud for a [`TagScope`], read region by region, every region
//! in parallel (DESIGN §4, "the only place that maps tags ↔ addresses").
//!
//! Which regions: every region the account has (`DescribeRegions`), so resources of a region
//! since removed from the spec (or created by an interrupted apply of an older spec) are found
//! and planned for deletion; or just the spec's regions when the caller says so. For the spec's
//! regions discovery also reads the zones (with the types on sale) and the boot image, which
//! the planner needs to place subnets and hosts.
//!
//! Every resource is kept only if its tags match the scope exactly ([`TagScope::classify`]);
//! the provider filters server-side first and this module checks again, so a half-tagged or
//! foreign resource never reaches a plan. Addresses are given here ([`Live::addressed`]).
//!
//! Discovery only reads: it never mutates and never journals.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use miette::Diagnostic;
use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::provider::resource::{
    ImageRef, Kind, LiveInstance, LiveResource, Provider, ProviderError, TagScope, ZoneOffer,
};
use crate::spec::{CloudKind, RegionId, SpecName, ZoneId};
use crate::state::Address;

/// Regions scanned at once. Each region has its own rate buckets, so this bounds open
/// connections and memory, not the API rate.
const REGIONS_IN_FLIGHT: usize = 16;

/// A region of a cloud.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionKey {
    pub cloud: CloudKind,
    pub region: RegionId,
}

impl std::fmt::Display for RegionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.cloud, self.region)
    }
}

/// What one region holds for the scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionLive {
    pub resources: Vec<LiveResource>,
    pub instances: Vec<LiveInstance>,
    /// The region's zones, read for the spec's regions only.
    pub zones: Option<Vec<ZoneOffer>>,
    /// The boot image, looked up for the spec's regions only (`Some(None)`: not found).
    pub image: Option<Option<ImageRef>>,
}

/// Everything discovered for a scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub scope: TagScope,
    pub regions: BTreeMap<RegionKey, RegionLive>,
    pub at: DateTime<Utc>,
}

/// What to read.
#[derive(Clone)]
pub struct Request {
    pub scope: TagScope,
    /// The clouds to read, each with the spec's regions on it and the image their hosts boot
    /// from (empty for `destroy --owner`).
    pub clouds: Vec<CloudRequest>,
    /// Scan every region the account has, not only the spec's.
    pub all_regions: bool,
}

#[derive(Clone)]
pub struct CloudRequest {
    pub provider: Arc<dyn Provider>,
    pub spec_regions: Vec<RegionId>,
    /// The image name to look up in the spec's regions.
    pub image: Option<String>,
}

/// Progress of a discovery, for the CLI's bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The regions to scan are known.
    Regions { total: usize },
    /// One region was read: how many resources and instances of the scope it holds.
    Scanned {
        region: RegionKey,
        resources: usize,
        instances: usize,
    },
}

/// Discovery could not read the cloud.
#[derive(Debug, Error, Diagnostic)]
pub enum DiscoverError {
    #[error("cannot list the regions of {cloud}: {error}")]
    #[diagnostic(
        code(cfxm::discover::regions),
        help("check the credentials and the endpoint; nothing was changed")
    )]
    Regions {
        cloud: CloudKind,
        error: ProviderError,
    },
    #[error("cannot read {region}: {error}")]
    #[diagnostic(
        code(cfxm::discover::region),
        help(
            "cfxm plans only from a complete view of the cloud; nothing was changed. Retry, or fix the cause above"
        )
    )]
    Region {
        region: RegionKey,
        error: ProviderError,
    },
    #[error("region `{region}` is not one of the {cloud} account's regions")]
    #[diagnostic(
        code(cfxm::discover::unknown_region),
        help("regions the account has: {known}")
    )]
    UnknownRegion {
        cloud: CloudKind,
        region: RegionId,
        known: String,
    },
}

/// Reads the cloud for `request`. `on_event` sees progress (called from the discovering task).
pub async fn live(
    request: &Request,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> Result<Live, DiscoverError> {
    let at = Utc::now();
    // Which regions, per cloud: (provider, region, in the spec, image to look up).
    struct Job {
        provider: Arc<dyn Provider>,
        region: RegionId,
        in_spec: bool,
        image: Option<String>,
    }
    let mut jobs: Vec<Job> = Vec::new();
    for c in &request.clouds {
        let cloud = c.provider.cloud();
        let mut regions: BTreeSet<RegionId> = BTreeSet::new();
        if request.all_regions || !c.spec_regions.is_empty() {
            let account = c
                .provider
                .regions()
                .await
                .map_err(|error| DiscoverError::Regions { cloud, error })?;
            let known: BTreeSet<RegionId> = account.iter().cloned().collect();
            for r in &c.spec_regions {
                if !known.contains(r) {
                    return Err(DiscoverError::UnknownRegion {
                        cloud,
                        region: r.clone(),
                        known: account
                            .iter()
                            .map(RegionId::as_str)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
            if request.all_regions {
                regions.extend(account);
            }
        }
        regions.extend(c.spec_regions.iter().cloned());
        for r in regions {
            let in_spec = c.spec_regions.contains(&r);
            jobs.push(Job {
                provider: c.provider.clone(),
                region: r,
                in_spec,
                image: c.image.clone(),
            });
        }
    }
    on_event(Event::Regions { total: jobs.len() });

    // Regions read at once: a named bound on discovery's concurrency.
    let in_flight = Arc::new(Semaphore::new(REGIONS_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    for Job {
        provider,
        region,
        in_spec,
        image,
    } in jobs
    {
        let scope = request.scope.clone();
        let in_flight = in_flight.clone();
        tasks.spawn(async move {
            let _permit = in_flight.acquire_owned().await.expect("never closed");
            let key = RegionKey {
                cloud: provider.cloud(),
                region: region.clone(),
            };
            let result = scan_region(provider.as_ref(), &region, &scope, in_spec, image).await;
            (key, result)
        });
    }
    let mut regions = BTreeMap::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let (key, result) = match joined {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        match result {
            Ok(live) => {
                tracing::info!(
                    region = %key,
                    resources = live.resources.len(),
                    instances = live.instances.len(),
                    "region discovered"
                );
                on_event(Event::Scanned {
                    region: key.clone(),
                    resources: live.resources.len(),
                    instances: live.instances.len(),
                });
                regions.insert(key, live);
            }
            Err(error) => {
                if first_error.is_none() {
                    first_error = Some(DiscoverError::Region { region: key, error });
                }
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(Live {
        scope: request.scope.clone(),
        regions,
        at,
    })
}

async fn scan_region(
    provider: &dyn Provider,
    region: &RegionId,
    scope: &TagScope,
    in_spec: bool,
    image: Option<String>,
) -> Result<RegionLive, ProviderError> {
    let scan = provider.scan(region, scope).await?;
    let mut live = RegionLive {
        // Checked again here: the provider's server-side filter is not trusted alone.
        resources: scan
            .resources
            .into_iter()
            .filter(|r| scope.classify(&r.tags).is_some())
            .collect(),
        instances: scan
            .instances
            .into_iter()
            .filter(|i| scope.classify(&i.tags).is_some())
            .collect(),
        zones: None,
        image: None,
    };
    if in_spec {
        live.zones = Some(provider.zones(region).await?);
        if let Some(name) = image {
            live.image = Some(provider.find_image(region, &name).await?);
        }
    }
    Ok(live)
}

/// A live resource with its address.
#[derive(Debug, Clone, PartialEq)]
pub struct Addressed {
    pub address: Address,
    pub resource: LiveResource,
    /// Not the resource the address names for the spec: a second VPC, a vSwitch of another
    /// VPC, a second vSwitch in one zone. Such resources are always deleted.
    pub duplicate: bool,
}

impl Live {
    /// The specs this discovery found resources of (for `destroy --owner`).
    pub fn specs(&self) -> BTreeSet<SpecName> {
        let mut out = BTreeSet::new();
        for r in self.regions.values() {
            for t in r
                .resources
                .iter()
                .map(|x| &x.tags)
                .chain(r.instances.iter().map(|i| &i.tags))
            {
                if let Some(s) = self.scope.classify(t) {
                    out.insert(s);
                }
            }
        }
        out
    }

    /// This discovery narrowed to one spec's resources.
    pub fn of_spec(&self, spec: &SpecName) -> Live {
        let scope = TagScope {
            owner: self.scope.owner.clone(),
            spec: Some(spec.clone()),
        };
        let regions = self
            .regions
            .iter()
            .map(|(k, r)| {
                let mut r = r.clone();
                r.resources.retain(|x| scope.classify(&x.tags).is_some());
                r.instances.retain(|i| scope.classify(&i.tags).is_some());
                (k.clone(), r)
            })
            .collect();
        Live {
            scope,
            regions,
            at: self.at,
        }
    }

    /// Number of resources and instances found.
    pub fn count(&self) -> (usize, usize) {
        self.regions.values().fold((0, 0), |(r, i), l| {
            (r + l.resources.len(), i + l.instances.len())
        })
    }

    /// Whether nothing of the scope exists.
    pub fn is_empty(&self) -> bool {
        self.count() == (0, 0)
    }

    /// The infra resources of a region with their addresses (`<cloud>/<region>/<noun>[/<zone>]`).
    ///
    /// One network per region is the spec's (the oldest-looking: the one with the most subnets,
    /// then the smallest id); its subnets (one per zone) and security group are the spec's;
    /// anything else of the scope in the region is a duplicate addressed with its id appended
    /// (`.../vpc/vpc-123`), which the planner deletes.
    pub fn addressed(&self, key: &RegionKey, provider: &dyn Provider) -> Vec<Addressed> {
        self.addressed_with(key, &|k| provider.noun(k))
    }

    /// [`Live::addressed`] with the nouns given directly.
    pub fn addressed_with(
        &self,
        key: &RegionKey,
        noun: &dyn Fn(Kind) -> &'static str,
    ) -> Vec<Addressed> {
        let Some(region) = self.regions.get(key) else {
            return Vec::new();
        };
        let base = format!("{}/{}", key.cloud, key.region);
        let addr = |parts: &[&str]| {
            Address::new(format!("{base}/{}", parts.join("/")))
                .expect("nouns, zones and ids are address segments")
        };
        let mut out = Vec::new();
        let of = |k: Kind| region.resources.iter().filter(move |r| r.kind == k);

        // The spec's network: most subnets, then smallest id (stable across runs).
        let subnets_in = |id: &str| {
            of(Kind::Subnet)
                .filter(|s| s.parent_id.as_deref() == Some(id))
                .count()
        };
        let mut networks: Vec<&LiveResource> = of(Kind::Network).collect();
        networks.sort_by(|a, b| {
            subnets_in(&b.id)
                .cmp(&subnets_in(&a.id))
                .then_with(|| a.id.cmp(&b.id))
        });
        let main_net = networks.first().map(|n| n.id.clone());
        for (i, n) in networks.iter().enumerate() {
            let address = if i == 0 {
                addr(&[noun(Kind::Network)])
            } else {
                addr(&[noun(Kind::Network), &n.id])
            };
            out.push(Addressed {
                address,
                resource: (*n).clone(),
                duplicate: i > 0,
            });
        }
        let in_main = |r: &LiveResource| r.parent_id.is_some() && r.parent_id == main_net;

        // Subnets: one per zone in the main network.
        let mut subnets: Vec<&LiveResource> = of(Kind::Subnet).collect();
        subnets.sort_by(|a, b| a.id.cmp(&b.id));
        let mut zones_taken: BTreeSet<ZoneId> = BTreeSet::new();
        for s in subnets {
            let zone = match &s.attrs {
                crate::provider::resource::Attrs::Subnet { zone, .. } => zone.clone(),
                _ => continue,
            };
            let canonical = in_main(s) && zones_taken.insert(zone.clone());
            let address = if canonical {
                addr(&[noun(Kind::Subnet), zone.as_str()])
            } else {
                addr(&[noun(Kind::Subnet), zone.as_str(), &s.id])
            };
            out.push(Addressed {
                address,
                resource: s.clone(),
                duplicate: !canonical,
            });
        }

        // Security group (and its peer rules, which share its id): one in the main network.
        let mut groups: Vec<&LiveResource> = of(Kind::SecurityGroup).collect();
        groups.sort_by(|a, b| (!in_main(a), &a.id).cmp(&(!in_main(b), &b.id)));
        let main_sg = groups.first().filter(|g| in_main(g)).map(|g| g.id.clone());
        for g in &groups {
            let canonical = Some(&g.id) == main_sg.as_ref();
            let address = if canonical {
                addr(&[noun(Kind::SecurityGroup)])
            } else {
                addr(&[noun(Kind::SecurityGroup), &g.id])
            };
            out.push(Addressed {
                address,
                resource: (*g).clone(),
                duplicate: !canonical,
            });
        }
        for p in of(Kind::Peers) {
            // Peer rules of a duplicate group go with the group.
            if Some(&p.id) == main_sg.as_ref() {
                out.push(Addressed {
                    address: addr(&[noun(Kind::SecurityGroup), noun(Kind::Peers)]),
                    resource: p.clone(),
                    duplicate: false,
                });
            }
        }

        // Key pairs: named per spec, so at most one per region in a spec scope.
        let mut keys: Vec<&LiveResource> = of(Kind::KeyPair).collect();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        for (i, k) in keys.iter().enumerate() {
            let address = if i == 0 {
                addr(&[noun(Kind::KeyPair)])
            } else {
                addr(&[noun(Kind::KeyPair), &k.id])
            };
            out.push(Addressed {
                address,
                resource: (*k).clone(),
                duplicate: i > 0,
            });
        }
        // Gateways (AWS): the spec's is the one attached to the main network; one attached
        // nowhere (an apply died between create and attach) or to another network is left over.
        let mut gateways: Vec<&LiveResource> = of(Kind::Gateway).collect();
        gateways.sort_by(|a, b| (!in_main(a), &a.id).cmp(&(!in_main(b), &b.id)));
        let main_gw = gateways
            .first()
            .filter(|g| in_main(g))
            .map(|g| g.id.clone());
        for g in gateways {
            let canonical = Some(&g.id) == main_gw.as_ref();
            let address = if canonical {
                addr(&[noun(Kind::Gateway)])
            } else {
                addr(&[noun(Kind::Gateway), &g.id])
            };
            out.push(Addressed {
                address,
                resource: g.clone(),
                duplicate: !canonical,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::resource::{Attrs, Tags};
    use crate::spec::Owner;

    struct Nouns;
    impl Nouns {
        fn noun(kind: Kind) -> &'static str {
            match kind {
                Kind::Network => "vpc",
                Kind::Subnet => "vswitch",
                Kind::SecurityGroup => "security_group",
                Kind::Peers => "peers",
                Kind::KeyPair => "key_pair",
                Kind::Gateway => "gateway",
                Kind::Image => "image",
                Kind::Hosts => "hosts",
            }
        }
    }

    fn res(kind: Kind, id: &str, parent: Option<&str>, zone: &str) -> LiveResource {
        let attrs = match kind {
            Kind::Network => Attrs::Network {
                name: "n".into(),
                cidr: "10.0.0.0/16".into(),
            },
            Kind::Subnet => Attrs::Subnet {
                name: "n".into(),
                zone: ZoneId::new(zone),
                cidr: "10.0.0.0/20".into(),
            },
            Kind::SecurityGroup => Attrs::SecurityGroup {
                name: "n".into(),
                rules: vec![],
            },
            _ => Attrs::Peers {
                rules: Some(vec![]),
            },
        };
        LiveResource {
            kind,
            id: id.into(),
            region: RegionId::new("r1"),
            status: "Available".into(),
            attrs,
            parent_id: parent.map(str::to_owned),
            tags: Tags::new(),
        }
    }

    /// The address logic without a provider: duplicates get their id appended.
    #[test]
    fn duplicates_are_addressed_apart_from_the_specs_resources() {
        let key = RegionKey {
            cloud: CloudKind::Aliyun,
            region: RegionId::new("r1"),
        };
        let region = RegionLive {
            resources: vec![
                res(Kind::Network, "vpc-b", None, ""),
                res(Kind::Network, "vpc-a", None, ""),
                res(Kind::Subnet, "vsw-1", Some("vpc-b"), "z1"),
                res(Kind::Subnet, "vsw-2", Some("vpc-b"), "z1"),
                res(Kind::Subnet, "vsw-3", Some("vpc-a"), "z2"),
                res(Kind::Subnet, "vsw-4", Some("vpc-b"), "z2"),
                res(Kind::SecurityGroup, "sg-1", Some("vpc-a"), ""),
                res(Kind::SecurityGroup, "sg-2", Some("vpc-b"), ""),
            ],
            ..RegionLive::default()
        };
        let live = Live {
            scope: TagScope::owner(&Owner::new("o")),
            regions: BTreeMap::from([(key.clone(), region)]),
            at: Utc::now(),
        };
        let got: Vec<(String, bool)> = live
            .addressed_with(&key, &Nouns::noun)
            .into_iter()
            .map(|a| (a.address.to_string(), a.duplicate))
            .collect();
        let want = [
            ("aliyun/r1/vpc", false),
            ("aliyun/r1/vpc/vpc-a", true),
            ("aliyun/r1/vswitch/z1", false),
            ("aliyun/r1/vswitch/z1/vsw-2", true),
            ("aliyun/r1/vswitch/z2/vsw-3", true),
            ("aliyun/r1/vswitch/z2", false),
            ("aliyun/r1/security_group", false),
            ("aliyun/r1/security_group/sg-1", true),
        ];
        let want: Vec<(String, bool)> = want.iter().map(|(a, d)| ((*a).to_owned(), *d)).collect();
        assert_eq!(got, want);
    }
}
