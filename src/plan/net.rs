//! Address arithmetic for the desired network: one subnet block per zone inside the VPC, the
//! node port range, and the experiment's peer addresses aggregated into few rules.
//!
//! Security rules follow DESIGN §6: SSH only from `ssh_from`; node ports only from inside the
//! VPC and from the experiment's own hosts in other regions (their public addresses), never
//! from the world and never from `ssh_from`: cfxm drives the nodes' JSON-RPC through each
//! host's SSH connection (`Transport::connect_tcp`), so the operator needs SSH alone.
//! The last set can hold thousands of addresses, more than a security group's rule quota
//! (Aliyun's default is 200), so it is aggregated into at most [`PEER_BLOCKS`] blocks: the
//! longest prefix length at which the addresses fall into that many blocks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::provider::resource::Rule;
use crate::spec::{Cidr, ZoneId};

/// First node port: node `i` of a host listens on `11000 + 10 i` … `+5` (conflux-node.md §1.3).
pub const NODE_PORT_BASE: u16 = 11000;
/// Ports per node slot.
pub const NODE_PORT_STRIDE: u16 = 10;
/// Most blocks the peer rules of one security group use.
pub const PEER_BLOCKS: usize = 50;

/// The node port range for hosts running up to `nodes_per_host` nodes.
pub fn node_ports(nodes_per_host: u32) -> (u16, u16) {
    let slots = u16::try_from(nodes_per_host.clamp(1, 1000)).unwrap_or(1000);
    (
        NODE_PORT_BASE,
        NODE_PORT_BASE + slots * NODE_PORT_STRIDE - 1,
    )
}

/// The security group's own rules: SSH from each `ssh_from`, node ports from the VPC only
/// (the other regions' hosts come from [`peer_rules`]).
pub fn base_rules(ssh_from: &[Cidr], vpc: Cidr, nodes_per_host: u32) -> Vec<Rule> {
    let (lo, hi) = node_ports(nodes_per_host);
    let mut rules = Vec::new();
    for c in ssh_from {
        rules.push(Rule::tcp(22, 22, c.to_string(), "ssh"));
    }
    rules.push(Rule::tcp(lo, hi, vpc.to_string(), "vpc"));
    rules.sort();
    rules.dedup_by(|a, b| a.key() == b.key());
    rules
}

/// Node ports opened to `peers` (public addresses of the experiment's hosts in other regions).
pub fn peer_rules(peers: &[Ipv4Addr], nodes_per_host: u32) -> Vec<Rule> {
    let (lo, hi) = node_ports(nodes_per_host);
    aggregate(peers, PEER_BLOCKS)
        .into_iter()
        .map(|c| Rule::tcp(lo, hi, c.to_string(), "peers"))
        .collect()
}

/// `ips` as at most `max` blocks: every address covered, blocks as long (narrow) as possible
/// with one prefix length for all, then merged where a block's sibling is present too.
pub fn aggregate(ips: &[Ipv4Addr], max: usize) -> Vec<Cidr> {
    let set: BTreeSet<u32> = ips.iter().map(|a| u32::from(*a)).collect();
    if set.is_empty() {
        return Vec::new();
    }
    let max = max.max(1);
    let blocks_at = |prefix: u8| -> BTreeSet<u32> {
        let mask = mask(prefix);
        set.iter().map(|a| a & mask).collect()
    };
    let mut prefix = 32u8;
    let mut blocks = blocks_at(prefix);
    while blocks.len() > max && prefix > 0 {
        prefix -= 1;
        blocks = blocks_at(prefix);
    }
    blocks
        .into_iter()
        .map(|b| Cidr {
            addr: Ipv4Addr::from(b),
            prefix,
        })
        .collect()
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn overlaps(a: Cidr, b: Cidr) -> bool {
    let p = a.prefix.min(b.prefix);
    (u32::from(a.addr) & mask(p)) == (u32::from(b.addr) & mask(p))
}

fn contains(outer: Cidr, inner: Cidr) -> bool {
    inner.prefix >= outer.prefix && overlaps(outer, inner)
}

/// One subnet block per zone inside `vpc`: zones in `keep` keep their block when it still fits
/// (inside the VPC, overlapping no other), the rest get the lowest free blocks, in zone order.
/// Blocks are 16 times smaller than the VPC (a /16 gives /20s, the original's choice), at most
/// /29 (Aliyun's smallest vSwitch).
pub fn subnet_blocks(
    vpc: Cidr,
    zones: &[ZoneId],
    keep: &BTreeMap<ZoneId, Cidr>,
) -> Result<BTreeMap<ZoneId, Cidr>, String> {
    let prefix = (vpc.prefix + 4).min(29);
    if prefix < vpc.prefix {
        return Err(format!("`{vpc}` is too small for subnets"));
    }
    let mut out: BTreeMap<ZoneId, Cidr> = BTreeMap::new();
    for z in zones {
        if let Some(c) = keep.get(z)
            && contains(vpc, *c)
            && !out.values().any(|o| overlaps(*o, *c))
        {
            out.insert(z.clone(), *c);
        }
    }
    let step = 1u64 << (32 - u32::from(prefix));
    let count = 1u64 << (u32::from(prefix) - u32::from(vpc.prefix));
    for z in zones {
        if out.contains_key(z) {
            continue;
        }
        let base = u64::from(u32::from(vpc.addr));
        let free = (0..count)
            .map(|i| Cidr {
                addr: Ipv4Addr::from(u32::try_from(base + i * step).expect("inside IPv4")),
                prefix,
            })
            .find(|c| !out.values().any(|o| overlaps(*o, *c)));
        match free {
            Some(c) => {
                out.insert(z.clone(), c);
            }
            None => {
                return Err(format!(
                    "`{vpc}` has room for {count} /{prefix} subnets, fewer than the {} zones",
                    zones.len()
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn ports_cover_every_node_slot() {
        assert_eq!(node_ports(1), (11000, 11009));
        assert_eq!(node_ports(4), (11000, 11039));
    }

    #[test]
    fn base_rules_open_node_ports_only_to_the_vpc() {
        let rules = base_rules(&[cidr("203.0.113.7/32")], cidr("10.0.0.0/16"), 1);
        let text: Vec<String> = rules.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "tcp 22 from 203.0.113.7/32 (ssh)",
                "tcp 11000-11009 from 10.0.0.0/16 (vpc)",
            ]
        );
    }

    #[test]
    fn no_ssh_from_block_ever_reaches_a_node_port() {
        let vpc = cidr("10.0.0.0/16");
        for ssh_from in [
            vec![cidr("0.0.0.0/0")],
            vec![cidr("203.0.113.7/32"), cidr("198.51.100.0/24")],
            // Even a block that is also the VPC's opens SSH from it, and node ports only as
            // the VPC rule.
            vec![cidr("10.0.0.0/16"), cidr("0.0.0.0/0")],
        ] {
            for nph in [1, 4, 1000] {
                let rules = base_rules(&ssh_from, vpc, nph);
                let (lo, hi) = node_ports(nph);
                for r in &rules {
                    let node_port = r.to_port >= NODE_PORT_BASE;
                    if node_port {
                        assert_eq!((r.from_port, r.to_port), (lo, hi));
                        assert_eq!((r.source.as_str(), r.note.as_str()), ("10.0.0.0/16", "vpc"));
                    } else {
                        assert_eq!((r.from_port, r.to_port, r.note.as_str()), (22, 22, "ssh"));
                    }
                }
                assert_eq!(
                    rules.iter().filter(|r| r.to_port >= NODE_PORT_BASE).count(),
                    1,
                    "{rules:?}"
                );
            }
        }
    }

    #[test]
    fn peers_aggregate_to_the_narrowest_blocks_within_the_limit() {
        let ips: Vec<Ipv4Addr> = ["198.18.0.1", "198.18.0.2", "198.18.0.3", "47.1.2.3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(aggregate(&ips, 10).len(), 4);
        assert_eq!(
            aggregate(&ips, 2),
            vec![cidr("47.1.2.0/30"), cidr("198.18.0.0/30")]
        );
        assert_eq!(aggregate(&ips, 1), vec![cidr("0.0.0.0/0")]);
        // 10,000 scattered addresses fit the rule budget.
        let many: Vec<Ipv4Addr> = (0..10_000u32)
            .map(|i| {
                Ipv4Addr::from(0x2f00_0000u32.wrapping_add(i.wrapping_mul(2_654_435_761) >> 8))
            })
            .collect();
        let blocks = aggregate(&many, PEER_BLOCKS);
        assert!(blocks.len() <= PEER_BLOCKS && !blocks.is_empty());
        for ip in &many {
            assert!(blocks.iter().any(|b| contains(
                *b,
                Cidr {
                    addr: *ip,
                    prefix: 32
                }
            )));
        }
    }

    #[test]
    fn subnets_are_sixteenths_of_the_vpc_and_kept_where_they_fit() {
        let zones: Vec<ZoneId> = ["a", "b", "c"].into_iter().map(ZoneId::new).collect();
        let fresh = subnet_blocks(cidr("10.0.0.0/16"), &zones, &BTreeMap::new()).unwrap();
        assert_eq!(fresh[&zones[0]], cidr("10.0.0.0/20"));
        assert_eq!(fresh[&zones[2]], cidr("10.0.32.0/20"));
        let keep = BTreeMap::from([(zones[1].clone(), cidr("10.0.0.0/20"))]);
        let kept = subnet_blocks(cidr("10.0.0.0/16"), &zones, &keep).unwrap();
        assert_eq!(kept[&zones[1]], cidr("10.0.0.0/20"));
        assert_eq!(kept[&zones[0]], cidr("10.0.16.0/20"));
        // A kept block outside a changed VPC is re-allocated.
        let moved = subnet_blocks(cidr("10.1.0.0/16"), &zones, &keep).unwrap();
        assert_eq!(moved[&zones[1]], cidr("10.1.16.0/20"));
        let many: Vec<ZoneId> = (0..17).map(|i| ZoneId::new(format!("z{i}"))).collect();
        assert!(subnet_blocks(cidr("10.0.0.0/16"), &many, &BTreeMap::new()).is_err());
    }
}
