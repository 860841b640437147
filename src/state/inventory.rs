//! `inventory.json`: the hosts and nodes of a spec as last discovered, and `hosts.json` beside it
//! in the original tool's nine-field format so its scripts keep working (original-tool.md §1.8).
//!
//! The inventory is a cache for `show`, `exec` and the stages, never the source of truth: the
//! cloud (discovered by tags) is. It is rewritten whole and atomically after each discovery or
//! apply, so an interrupted apply still leaves the hosts it knew of (the original wrote
//! `hosts.json` only at the very end, §5.4).

use std::net::IpAddr;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StateError;
use super::atomic::write_atomic;
use super::hosts_json::{self, HostRecord};
use super::secret::to_guarded_json;
use crate::spec::{CloudKind, InstanceType, RegionId, SpecName, ZoneId};

/// The format version written in `inventory.json`, bumped on incompatible changes.
pub const INVENTORY_FORMAT: u32 = 1;

/// Everything known about a spec's hosts and nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub format: u32,
    pub spec: SpecName,
    /// When the cloud was last read.
    pub discovered_at: DateTime<Utc>,
    pub hosts: Vec<InventoryHost>,
    #[serde(default)]
    pub nodes: Vec<InventoryNode>,
}

/// One host (a cloud instance, or a local slot on `cloud: local`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryHost {
    pub cloud: CloudKind,
    pub region: RegionId,
    pub zone: ZoneId,
    pub instance_id: String,
    pub instance_type: InstanceType,
    /// As the cloud reports it (`Pending`, `Running`, ...).
    pub status: String,
    /// Where cfxm reaches it; `None` until the cloud assigns one.
    pub public_ip: Option<IpAddr>,
    /// Where peers in the same VPC reach it.
    pub private_ip: Option<IpAddr>,
    pub nodes_per_host: u32,
    pub ssh_user: String,
    /// The private key's path (never the key).
    pub ssh_key_path: String,
}

/// One Conflux node on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryNode {
    /// The host's instance id.
    pub instance_id: String,
    /// Index of the node on its host, from 0.
    pub index: u32,
}

impl Inventory {
    pub fn new(spec: SpecName, discovered_at: DateTime<Utc>) -> Self {
        Inventory {
            format: INVENTORY_FORMAT,
            spec,
            discovered_at,
            hosts: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// The hosts in the original's `hosts.json` records. Hosts without a public IP yet are left
    /// out: the format requires one, and the original's scripts could not reach them anyway.
    pub fn host_records(&self) -> Vec<HostRecord> {
        self.hosts
            .iter()
            .filter_map(|h| {
                Some(HostRecord {
                    ip: h.public_ip?,
                    nodes_per_host: h.nodes_per_host,
                    ssh_user: h.ssh_user.clone(),
                    ssh_key_path: h.ssh_key_path.clone(),
                    provider: h.cloud.to_string(),
                    region: h.region.to_string(),
                    zone: h.zone.to_string(),
                    instance_id: h.instance_id.clone(),
                    private_ip: h.private_ip,
                })
            })
            .collect()
    }

    /// Reads `path`; `None` if it does not exist yet.
    pub fn read(path: &Path) -> Result<Option<Self>, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StateError::io("read the inventory", path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| StateError::Parse {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Writes the inventory to `inventory` and the original format to `hosts_json`, each
    /// atomically. The inventory goes first: it is the one cfxm reads back.
    pub(crate) fn write(&self, inventory: &Path, hosts_json: &Path) -> Result<(), StateError> {
        let value: serde_json::Value = serde_json::from_str(&to_guarded_json("inventory", self)?)
            .map_err(|e| StateError::Refused {
            what: "inventory",
            reason: e.to_string(),
        })?;
        let pretty = serde_json::to_string_pretty(&value).map_err(|e| StateError::Refused {
            what: "inventory",
            reason: e.to_string(),
        })? + "\n";
        write_atomic(inventory, pretty.as_bytes())?;
        let records = self.host_records();
        // hosts.json goes through the guard too, though its nine fields hold no secret.
        to_guarded_json("hosts.json", &records)?;
        write_atomic(hosts_json, hosts_json::render(&records).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{StateDir, StateLock};

    fn host(id: &str, public: Option<&str>) -> InventoryHost {
        InventoryHost {
            cloud: CloudKind::Aliyun,
            region: RegionId::new("ap-southeast-1"),
            zone: ZoneId::new("ap-southeast-1a"),
            instance_id: id.into(),
            instance_type: InstanceType::new("ecs.g8i.2xlarge"),
            status: "Running".into(),
            public_ip: public.map(|p| p.parse().unwrap()),
            private_ip: Some("10.0.0.7".parse().unwrap()),
            nodes_per_host: 1,
            ssh_user: "root".into(),
            ssh_key_path: "./keys/ssh-key.pem".into(),
        }
    }

    fn sample() -> Inventory {
        let mut inv = Inventory::new(SpecName::new("latency-1k"), Utc::now());
        inv.hosts = vec![host("i-t4n1", Some("47.236.1.2")), host("i-t4n2", None)];
        inv.nodes = vec![InventoryNode {
            instance_id: "i-t4n1".into(),
            index: 0,
        }];
        inv
    }

    #[test]
    fn writes_both_files_and_reads_the_inventory_back() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path())
            .spec(&SpecName::new("latency-1k"))
            .unwrap();
        let lock = state.lock("cfxm test").unwrap();
        let inv = sample();
        state.write_inventory(&lock, &inv).unwrap();

        assert_eq!(state.read_inventory().unwrap(), Some(inv));
        let text = std::fs::read_to_string(state.hosts_json_path()).unwrap();
        // Exactly the original's format: one record (the host with a public IP), nine fields.
        assert_eq!(
            text,
            r#"[
  {
    "ip": "47.236.1.2",
    "nodes_per_host": 1,
    "ssh_user": "root",
    "ssh_key_path": "./keys/ssh-key.pem",
    "provider": "aliyun",
    "region": "ap-southeast-1",
    "zone": "ap-southeast-1a",
    "instance_id": "i-t4n1",
    "private_ip": "10.0.0.7"
  }
]"#
        );
        assert_eq!(hosts_json::parse(&text).unwrap().len(), 1);
        drop(lock);
        // Rewriting replaces, never appends.
        let lock = StateLock::acquire(&state.lock_path(), state.spec(), "x").unwrap();
        let mut smaller = sample();
        smaller.hosts.truncate(0);
        state.write_inventory(&lock, &smaller).unwrap();
        assert_eq!(
            std::fs::read_to_string(state.hosts_json_path()).unwrap(),
            "[]"
        );
        assert!(state.read_inventory().unwrap().unwrap().hosts.is_empty());
    }

    #[test]
    fn a_damaged_inventory_is_a_located_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("inventory.json");
        std::fs::write(&path, "{ nope").unwrap();
        let err = Inventory::read(&path).unwrap_err();
        assert!(matches!(err, StateError::Parse { .. }));
        assert!(err.to_string().contains("inventory.json"), "{err}");
    }
}
