//! The diff: desired resources against live ones, address by address, into [`Change`]s with a
//! reason under every replace and destroy.
//!
//! Rules:
//! - absent → create; a network, subnet, security group or key pair may only be created when
//!   the spec's `network.create` allows it;
//! - a network or subnet whose block differs, or a key pair whose fingerprint is not the spec
//!   key's, is replaced; what lives inside a replaced resource is replaced with it;
//! - a gateway (AWS) not routing the network's default route is updated in place (route added);
//! - a security group whose rules differ from the spec (peer rules apart) is updated in place:
//!   missing rules authorized, foreign ones revoked (original-tool.md §5.4: rules were never
//!   checked);
//! - a live resource no desired one claims (a region or zone left out of the spec, a duplicate
//!   left by an interrupted run) is deleted;
//! - hosts are a group: instances of a type, zone or subnet the spec no longer wants, stopped
//!   ones, ones with another key and ones that did not answer at `reach` (by instance id, from
//!   the caller) are destroyed and replaced; the rest are kept while their
//!   nodes fit the wanted count (scale down removes the least preferred first); what is
//!   missing is added as a count of nodes.

use std::collections::{BTreeMap, BTreeSet};

use super::PlanError;
use super::desired::DesiredResource;
use super::model::{Action, Change, ChangeKind, HostRef, HostsChange, Removal};
use crate::discover::{Addressed, RegionKey, RegionLive};
use crate::provider::resource::{Attrs, HostStatus, HostsAttrs, Kind, LiveInstance, Rule};
use crate::state::Address;

/// One region's diff inputs.
pub struct RegionDiff<'a> {
    pub key: &'a RegionKey,
    /// What the spec wants here (empty when the region is not in the spec).
    pub desired: &'a [DesiredResource],
    pub live: &'a RegionLive,
    pub addressed: &'a [Addressed],
    /// The hosts group's address in this region.
    pub hosts_address: Address,
    /// `network.create` of the spec's cloud.
    pub may_create_network: bool,
    /// Instances of this region that did not answer over their transport, by id, with the
    /// reason to replace each (from the last `reach` record or a liveness check). Ids no
    /// discovered instance carries are ignored.
    pub unreachable: &'a BTreeMap<String, String>,
}

fn short(fingerprint: &str) -> String {
    let f: String = fingerprint.chars().take(12).collect();
    if f.is_empty() { "(none)".into() } else { f }
}

fn rule_keys(rules: &[Rule]) -> BTreeSet<(String, u16, u16, String)> {
    rules.iter().map(Rule::key).collect()
}

/// Compares one desired resource with its live counterpart.
fn compare(want: &Attrs, have: &Attrs) -> (Action, Option<String>) {
    match (want, have) {
        (Attrs::Network { cidr: a, .. }, Attrs::Network { cidr: b, .. }) if a != b => (
            Action::Replace,
            Some(format!(
                "its block `{b}` is not the spec's `{a}`, which forces replacement"
            )),
        ),
        (
            Attrs::Subnet {
                cidr: a, zone: za, ..
            },
            Attrs::Subnet {
                cidr: b, zone: zb, ..
            },
        ) if a != b || za != zb => (
            Action::Replace,
            Some(format!(
                "its block `{b}` in `{zb}` is not the planned `{a}` in `{za}`, which forces replacement"
            )),
        ),
        (Attrs::SecurityGroup { rules: a, .. }, Attrs::SecurityGroup { rules: b, .. })
            if rule_keys(a) != rule_keys(b) =>
        {
            (
                Action::Update,
                Some("its rules differ from the spec's".into()),
            )
        }
        (Attrs::Peers { rules: None }, Attrs::Peers { .. }) => (
            Action::Update,
            Some("the peers' addresses are known once the hosts are applied".into()),
        ),
        (Attrs::Peers { rules: Some(a) }, Attrs::Peers { rules: b }) => {
            let b = b.clone().unwrap_or_default();
            if rule_keys(a) == rule_keys(&b) {
                (Action::NoOp, None)
            } else {
                (
                    Action::Update,
                    Some("the experiment's hosts in other regions changed".into()),
                )
            }
        }
        (Attrs::KeyPair { fingerprint: a, .. }, Attrs::KeyPair { fingerprint: b, .. })
            if a != b =>
        {
            (
                Action::Replace,
                Some(format!(
                    "its fingerprint `{}` is not the spec key's `{}`",
                    short(b),
                    short(a)
                )),
            )
        }
        _ => (Action::NoOp, None),
    }
}

/// The changes of one region (hosts included), in desired order, deletes after.
pub fn region(d: &RegionDiff<'_>) -> Result<Vec<Change>, PlanError> {
    let cloud = d.key.cloud;
    let region = &d.key.region;
    let by_address: BTreeMap<&Address, &Addressed> = d
        .addressed
        .iter()
        .filter(|a| !a.duplicate)
        .map(|a| (&a.address, a))
        .collect();
    let id_to_address: BTreeMap<(Kind, &str), &Address> = d
        .addressed
        .iter()
        .map(|a| ((a.resource.kind, a.resource.id.as_str()), &a.address))
        .collect();
    let desired_addresses: BTreeSet<&Address> = d.desired.iter().map(|r| &r.address).collect();
    let mut changes: Vec<Change> = Vec::new();
    let base = |address: Address, kind: ChangeKind, action: Action| {
        let mut c = Change::new(address, kind, action);
        c.cloud = Some(cloud);
        c.region = Some(region.clone());
        c
    };

    // Desired resources, hosts last.
    let mut replaced: BTreeMap<Kind, String> = BTreeMap::new();
    let mut hosts_want: Option<&DesiredResource> = None;
    for want in d.desired {
        let kind = want.attrs.kind();
        if kind == Kind::Hosts {
            hosts_want = Some(want);
            continue;
        }
        let mut c = base(want.address.clone(), ChangeKind::of(kind), Action::NoOp);
        c.depends_on = want.depends_on.clone();
        c.after = Some(want.attrs.clone());
        if kind == Kind::Image {
            c.action = Action::Read;
            if let Some(Some(img)) = &d.live.image {
                c.live_id = Some(img.id.clone());
            }
            changes.push(c);
            continue;
        }
        match by_address.get(&want.address) {
            None => {
                let network_kind = matches!(
                    kind,
                    Kind::Network
                        | Kind::Gateway
                        | Kind::Subnet
                        | Kind::SecurityGroup
                        | Kind::KeyPair
                );
                if network_kind && !d.may_create_network {
                    return Err(PlanError::NetworkMissing {
                        address: want.address.clone(),
                    });
                }
                c.action = Action::Create;
            }
            Some(live) => {
                c.live_id = Some(live.resource.id.clone());
                c.before = Some(live.resource.attrs.clone());
                let (action, reason) = compare(&want.attrs, &live.resource.attrs);
                c.action = action;
                c.reason = reason;
                // A gateway attached to the network but without the default route through it
                // (an apply died between the two) is repaired in place.
                if kind == Kind::Gateway
                    && c.action == Action::NoOp
                    && !live.resource.status.eq_ignore_ascii_case("available")
                {
                    c.action = Action::Update;
                    c.reason = Some(format!(
                        "the network's default route does not go through it ({})",
                        live.resource.status
                    ));
                }
                // What lives in a replaced network goes with it.
                let cascade = match kind {
                    Kind::Subnet | Kind::SecurityGroup | Kind::Peers | Kind::Gateway => {
                        replaced.get(&Kind::Network).cloned()
                    }
                    _ => None,
                };
                if c.action != Action::Replace
                    && let Some(why) = cascade
                    && kind != Kind::Peers
                {
                    c.action = Action::Replace;
                    c.reason = Some(why);
                }
                if c.action == Action::Replace {
                    replaced.insert(kind, format!("its {} is replaced", kind_word(kind)));
                }
                // Peer rules live on the group: a replaced group gets them anew.
                if kind == Kind::Peers && replaced.contains_key(&Kind::SecurityGroup) {
                    c.action = Action::Create;
                    c.before = None;
                    c.live_id = None;
                    c.reason = None;
                }
            }
        }
        changes.push(c);
    }

    // Live resources no desired one claims: deleted, parents after children.
    for a in d.addressed {
        if !a.duplicate && desired_addresses.contains(&a.address) {
            continue;
        }
        let kind = a.resource.kind;
        let mut c = base(a.address.clone(), ChangeKind::of(kind), Action::Delete);
        c.live_id = Some(a.resource.id.clone());
        c.before = Some(a.resource.attrs.clone());
        c.reason = Some(if d.desired.is_empty() {
            format!("region `{region}` is not in the spec")
        } else if a.duplicate {
            format!(
                "another {} of this spec is kept; this one is left over (an interrupted run)",
                kind_word(kind)
            )
        } else {
            match (&a.resource.attrs, kind) {
                (Attrs::Subnet { zone, .. }, _) => format!("zone `{zone}` is no longer used"),
                (_, Kind::Peers) => "the spec has a single region: no peer rules".into(),
                _ => format!("the spec no longer needs this {}", kind_word(kind)),
            }
        });
        if let Some(parent) = &a.resource.parent_id {
            let parent_kind = if kind == Kind::Peers {
                Kind::SecurityGroup
            } else {
                Kind::Network
            };
            let pid = if kind == Kind::Peers {
                a.resource.id.as_str()
            } else {
                parent.as_str()
            };
            if let Some(p) = id_to_address.get(&(parent_kind, pid)) {
                c.depends_on.push((*p).clone());
            }
        }
        changes.push(c);
    }

    // Hosts.
    let live_infra: Vec<Address> = d
        .addressed
        .iter()
        .filter(|a| {
            // The gateway too: hosts with public addresses keep it attached (EC2 refuses to
            // detach it before they are gone).
            matches!(
                a.resource.kind,
                Kind::Gateway | Kind::Subnet | Kind::SecurityGroup | Kind::KeyPair
            )
        })
        .map(|a| a.address.clone())
        .collect();
    let usable_subnets: BTreeSet<String> = changes
        .iter()
        .filter(|c| {
            c.kind == ChangeKind::Subnet && matches!(c.action, Action::NoOp | Action::Update)
        })
        .filter_map(|c| c.live_id.clone())
        .collect();
    let replace_all = [Kind::Network, Kind::SecurityGroup, Kind::KeyPair]
        .iter()
        .find_map(|k| replaced.get(k).cloned());
    match hosts_want {
        Some(want) => {
            let Attrs::Hosts(attrs) = &want.attrs else {
                unreachable!("hosts resources carry hosts attributes")
            };
            let (action, hosts, reason) = hosts_change(
                attrs,
                &d.live.instances,
                &usable_subnets,
                replace_all,
                d.unreachable,
            );
            let mut c = base(want.address.clone(), ChangeKind::Hosts, action);
            c.after = Some(want.attrs.clone());
            c.reason = reason;
            let mut deps = want.depends_on.clone();
            for a in live_infra {
                if !deps.contains(&a) {
                    deps.push(a);
                }
            }
            c.depends_on = deps;
            c.hosts = Some(hosts);
            changes.push(c);
        }
        None => {
            let live: Vec<&LiveInstance> = d
                .live
                .instances
                .iter()
                .filter(|i| i.status != HostStatus::Stopping)
                .collect();
            if !live.is_empty() {
                let why = format!("region `{region}` is not in the spec");
                let mut c = base(d.hosts_address.clone(), ChangeKind::Hosts, Action::Delete);
                c.reason = Some(why.clone());
                c.depends_on = live_infra;
                c.hosts = Some(HostsChange {
                    wanted_nodes: 0,
                    kept: Vec::new(),
                    kept_nodes: 0,
                    add_nodes: 0,
                    add_hosts: 0,
                    destroy: live
                        .iter()
                        .map(|i| Removal {
                            host: HostRef::of(i),
                            reason: why.clone(),
                        })
                        .collect(),
                    backfill_nodes: 0,
                });
                changes.push(c);
            }
        }
    }
    Ok(changes)
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Network => "network",
        Kind::Gateway => "gateway",
        Kind::Subnet => "subnet",
        Kind::SecurityGroup => "security group",
        Kind::Peers => "peer rule set",
        Kind::KeyPair => "key pair",
        Kind::Image => "image",
        Kind::Hosts => "hosts group",
    }
}

/// What happens to a region's instances, and a one-line reason for an update. `unreachable`:
/// instance id → why it is replaced (it did not answer); only `instances` are looked up in it.
pub fn hosts_change(
    want: &HostsAttrs,
    instances: &[LiveInstance],
    usable_subnets: &BTreeSet<String>,
    replace_all: Option<String>,
    unreachable: &BTreeMap<String, String>,
) -> (Action, HostsChange, Option<String>) {
    let mut destroy: Vec<Removal> = Vec::new();
    let mut keep: Vec<&LiveInstance> = Vec::new();
    for i in instances {
        let reason = if i.status == HostStatus::Stopping {
            // Already being released: neither kept nor deleted again.
            continue;
        } else if let Some(r) = &replace_all {
            Some(r.clone())
        } else if want.nodes_per_host(&i.instance_type).is_none() {
            Some(format!(
                "type `{}` is not one of the spec's instance types",
                i.instance_type
            ))
        } else if !want.zones.contains(&i.zone) {
            Some(format!("zone `{}` is not one of the spec's zones", i.zone))
        } else if !usable_subnets.contains(&i.subnet_id) {
            Some(format!(
                "its subnet `{}` is not the spec's (deleted or replaced)",
                i.subnet_id
            ))
        } else if i.key_pair != want.key_pair {
            Some(format!(
                "it accepts the key pair `{}`, not the spec's",
                i.key_pair
            ))
        } else if !i.status.is_coming_up() {
            Some(format!(
                "it is {}; a host that is not running is replaced",
                i.status
            ))
        } else {
            // Last: a stopped or misplaced host does not answer either, and its own reason
            // says more.
            unreachable.get(&i.id).cloned()
        };
        match reason {
            Some(reason) => destroy.push(Removal {
                host: HostRef::of(i),
                reason,
            }),
            None => keep.push(i),
        }
    }
    let nph = |i: &LiveInstance| want.nodes_per_host(&i.instance_type).unwrap_or(1);
    let mut capacity: u64 = keep.iter().map(|i| u64::from(nph(i))).sum();
    let wanted = u64::from(want.nodes);
    if capacity > wanted {
        // Scale down: drop the least useful first (not yet running, least preferred type and
        // zone, newest id), while what remains still runs every node.
        let type_rank = |i: &LiveInstance| {
            want.types
                .iter()
                .position(|t| t.name == i.instance_type)
                .unwrap_or(usize::MAX)
        };
        let zone_rank = |i: &LiveInstance| {
            want.zones
                .iter()
                .position(|z| *z == i.zone)
                .unwrap_or(usize::MAX)
        };
        keep.sort_by(|a, b| {
            (a.status != HostStatus::Running)
                .cmp(&(b.status != HostStatus::Running))
                .reverse()
                .then(type_rank(b).cmp(&type_rank(a)))
                .then(zone_rank(b).cmp(&zone_rank(a)))
                .then(b.id.cmp(&a.id))
        });
        let mut still = Vec::new();
        for i in keep {
            let n = u64::from(nph(i));
            if capacity - n >= wanted && capacity > wanted {
                capacity -= n;
                destroy.push(Removal {
                    host: HostRef::of(i),
                    reason: format!("scale down: {} nodes wanted", want.nodes),
                });
            } else {
                still.push(i);
            }
        }
        keep = still;
    }
    keep.sort_by(|a, b| a.id.cmp(&b.id));
    let add_nodes = wanted.saturating_sub(capacity);
    let first_nph = want.types.first().map_or(1, |t| t.nodes_per_host.max(1));
    let add_hosts = add_nodes.div_ceil(u64::from(first_nph));
    let action = match (keep.is_empty(), destroy.is_empty(), add_nodes > 0) {
        (true, true, true) => Action::Create,
        (true, false, true) => Action::Replace,
        (_, false, _) | (_, true, true) => Action::Update,
        (_, true, false) => Action::NoOp,
    };
    let reason = match action {
        Action::Update | Action::Replace => Some(format!(
            "{} host{} kept; {} node{} to place; {} host{} to destroy",
            keep.len(),
            plural(keep.len() as u64),
            add_nodes,
            plural(add_nodes),
            destroy.len(),
            plural(destroy.len() as u64)
        )),
        _ => None,
    };
    let change = HostsChange {
        wanted_nodes: want.nodes,
        kept: keep.iter().map(|i| HostRef::of(i)).collect(),
        kept_nodes: u32::try_from(capacity).unwrap_or(u32::MAX),
        add_nodes: u32::try_from(add_nodes).unwrap_or(u32::MAX),
        add_hosts,
        destroy,
        backfill_nodes: 0,
    };
    (action, change, reason)
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::resource::{InstanceSettings, Tags, TypeChoice};
    use crate::spec::{InstanceType, RegionId, ZoneId};

    fn want(nodes: u32) -> HostsAttrs {
        HostsAttrs {
            nodes,
            types: vec![
                TypeChoice {
                    name: InstanceType::new("big"),
                    nodes_per_host: 2,
                    hourly_cost_usd: None,
                },
                TypeChoice {
                    name: InstanceType::new("small"),
                    nodes_per_host: 1,
                    hourly_cost_usd: None,
                },
            ],
            zones: vec![ZoneId::new("z1"), ZoneId::new("z2")],
            image: "img".into(),
            key_pair: "kp".into(),
            settings: InstanceSettings {
                disk_gb: 40,
                disk_category: "cloud_essd".into(),
                bandwidth_mbps: 100,
                public_ip: true,
                spot: false,
            },
            max_per_call: 100,
        }
    }

    fn inst(id: &str, ty: &str, zone: &str, status: HostStatus) -> LiveInstance {
        LiveInstance {
            id: id.into(),
            region: RegionId::new("r"),
            zone: ZoneId::new(zone),
            instance_type: InstanceType::new(ty),
            status,
            public_ip: None,
            private_ip: None,
            subnet_id: format!("vsw-{zone}"),
            key_pair: "kp".into(),
            tags: Tags::new(),
        }
    }

    fn none() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn subnets() -> BTreeSet<String> {
        ["vsw-z1", "vsw-z2"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    #[test]
    fn a_fresh_region_creates_ceil_nodes_over_nodes_per_host() {
        let (action, h, reason) = hosts_change(&want(5), &[], &subnets(), None, &none());
        assert_eq!(action, Action::Create);
        assert_eq!((h.add_nodes, h.add_hosts), (5, 3));
        assert_eq!(reason, None);
    }

    #[test]
    fn nothing_to_do_when_capacity_matches() {
        let live = [
            inst("i-1", "big", "z1", HostStatus::Running),
            inst("i-2", "small", "z2", HostStatus::Pending),
        ];
        let (action, h, _) = hosts_change(&want(3), &live, &subnets(), None, &none());
        assert_eq!(action, Action::NoOp);
        assert_eq!(h.kept_nodes, 3);
    }

    #[test]
    fn misplaced_and_stopped_hosts_are_replaced_with_reasons() {
        let mut other_key = inst("i-4", "big", "z1", HostStatus::Running);
        other_key.key_pair = "old".into();
        let live = [
            inst("i-1", "big", "z1", HostStatus::Running),
            inst("i-2", "retired", "z1", HostStatus::Running),
            inst("i-3", "big", "z9", HostStatus::Running),
            other_key,
            inst("i-5", "big", "z2", HostStatus::Stopped),
            inst("i-6", "big", "z2", HostStatus::Stopping),
        ];
        let (action, h, reason) = hosts_change(&want(4), &live, &subnets(), None, &none());
        assert_eq!(action, Action::Update);
        let reasons: Vec<(&str, &str)> = h
            .destroy
            .iter()
            .map(|r| (r.host.id.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    "i-2",
                    "type `retired` is not one of the spec's instance types"
                ),
                ("i-3", "zone `z9` is not one of the spec's zones"),
                ("i-4", "it accepts the key pair `old`, not the spec's"),
                (
                    "i-5",
                    "it is Stopped; a host that is not running is replaced"
                ),
            ]
        );
        assert_eq!((h.kept.len(), h.add_nodes, h.add_hosts), (1, 2, 1));
        assert_eq!(
            reason.unwrap(),
            "1 host kept; 2 nodes to place; 4 hosts to destroy"
        );
    }

    #[test]
    fn scale_down_keeps_enough_nodes_and_drops_the_least_preferred() {
        let live = [
            inst("i-1", "big", "z1", HostStatus::Running),
            inst("i-2", "big", "z1", HostStatus::Running),
            inst("i-3", "small", "z2", HostStatus::Running),
            inst("i-4", "small", "z1", HostStatus::Pending),
        ];
        // 6 nodes of capacity, 3 wanted: the pending one, then the small in the worse zone go.
        let (action, h, _) = hosts_change(&want(3), &live, &subnets(), None, &none());
        assert_eq!(action, Action::Update);
        let gone: Vec<&str> = h.destroy.iter().map(|r| r.host.id.as_str()).collect();
        assert_eq!(gone, ["i-4", "i-3"]);
        assert_eq!(h.kept_nodes, 4);
        assert_eq!(h.add_nodes, 0);
        assert!(
            h.destroy
                .iter()
                .all(|r| r.reason == "scale down: 3 nodes wanted")
        );
    }

    #[test]
    fn a_replaced_key_pair_replaces_every_host() {
        let live = [inst("i-1", "big", "z1", HostStatus::Running)];
        let (action, h, _) = hosts_change(
            &want(2),
            &live,
            &subnets(),
            Some("its key pair is replaced".into()),
            &none(),
        );
        assert_eq!(action, Action::Replace);
        assert_eq!(h.destroy[0].reason, "its key pair is replaced");
        assert_eq!(h.add_hosts, 1);
    }

    #[test]
    fn hosts_that_did_not_answer_are_replaced_and_unknown_ids_ignored() {
        let live = [
            inst("i-1", "big", "z1", HostStatus::Running),
            inst("i-2", "big", "z2", HostStatus::Running),
            inst("i-3", "big", "z2", HostStatus::Stopped),
        ];
        let why = |id: &str| {
            format!(
                "it did not answer at the last `reach` ({id}: no route); an unreachable host is replaced"
            )
        };
        let unreachable: BTreeMap<String, String> = ["i-2", "i-3", "i-9"]
            .iter()
            .map(|id| ((*id).to_owned(), why(id)))
            .collect();
        let (action, h, reason) = hosts_change(&want(6), &live, &subnets(), None, &unreachable);
        assert_eq!(action, Action::Update);
        let reasons: Vec<(&str, &str)> = h
            .destroy
            .iter()
            .map(|r| (r.host.id.as_str(), r.reason.as_str()))
            .collect();
        // i-3's own state says more than its silence; i-9 is not one of the region's
        // instances, so nothing happens to it.
        assert_eq!(
            reasons,
            [
                ("i-2", why("i-2").as_str()),
                (
                    "i-3",
                    "it is Stopped; a host that is not running is replaced"
                ),
            ]
        );
        let kept: Vec<&str> = h.kept.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(kept, ["i-1"]);
        assert_eq!((h.kept_nodes, h.add_nodes, h.add_hosts), (2, 4, 2));
        assert_eq!(
            reason.unwrap(),
            "1 host kept; 4 nodes to place; 2 hosts to destroy"
        );
        // Only ids nobody has: nothing changes.
        let unknown = BTreeMap::from([("i-9".to_owned(), why("i-9"))]);
        let (action, h, _) = hosts_change(&want(6), &live[..2], &subnets(), None, &unknown);
        assert_eq!(
            (action, h.destroy.len(), h.add_nodes),
            (Action::Update, 0, 2)
        );
    }
}
