//! Which hosts a spec has, and how to reach each one.
//!
//! Hosts come from inventories in the original's nine-field `hosts.json` format:
//! - `cloud: static`: the spec's inventory. These hosts exist without cfxm
//!   ([`HostOrigin::Static`]): plan shows them as existing, destroy never deletes them;
//! - every other cloud: the inventory the reconciler writes at `state/<spec>/hosts.json`
//!   ([`HostOrigin::Managed`]).
//!
//! Each host's transport follows from its record ([`Connector::transport`]): provider `local`
//! is the local cloud's slot `state/<spec>/slots/<instance_id>/`; anything else is SSH to `ip`
//! as `ssh_user` with the key `ssh_key_path` (relative paths are relative to the inventory
//! file's directory, `~/` is the home directory).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::Diagnostic;
use thiserror::Error;

use super::known_hosts::{KnownHosts, KnownHostsError};
use super::{LocalTransport, SshOptions, SshPool, SshTarget, Transport};
use crate::spec::{CloudSettings, Spec, SpecName};
use crate::state::hosts_json::{self, HostRecord};
use crate::state::{SpecState, StateError};

/// One host of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Unique within its list: the instance id, else the IP (suffixed `#2`, `#3` on clashes).
    pub label: String,
    pub record: HostRecord,
    pub origin: HostOrigin,
    /// SSH port: 22, or the static cloud's `ssh_port`.
    pub ssh_port: u16,
    /// The private key, `ssh_key_path` resolved.
    pub key: PathBuf,
}

impl Host {
    /// Whether this host is reached through a local slot instead of SSH.
    pub fn is_local(&self) -> bool {
        self.record.provider == "local"
    }
}

/// Where a host came from, which decides whether cfxm may create or delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOrigin {
    /// Listed in the spec's static inventory: never created or deleted by cfxm.
    Static { inventory: PathBuf },
    /// Created by cfxm and recorded in `state/<spec>/hosts.json`.
    Managed { inventory: PathBuf },
}

impl HostOrigin {
    /// Whether cfxm created this host and may delete it.
    pub fn is_managed(&self) -> bool {
        matches!(self, HostOrigin::Managed { .. })
    }

    pub fn inventory(&self) -> &Path {
        match self {
            HostOrigin::Static { inventory } | HostOrigin::Managed { inventory } => inventory,
        }
    }
}

#[derive(Debug, Error, Diagnostic)]
pub enum HostsError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    State(#[from] StateError),

    #[error("spec `{spec}` has no hosts yet: `{}` does not exist", path.display())]
    #[diagnostic(
        code(cfxm::hosts::none),
        help("run `cfxm apply` first to create them, or pass the right `--state-dir`")
    )]
    NoInventory { spec: SpecName, path: PathBuf },

    #[error("cannot read the inventory `{}`: {cause}", path.display())]
    #[diagnostic(
        code(cfxm::hosts::unreadable),
        help(
            "the inventory is the original tool's hosts.json: a JSON array of objects with exactly ip, nodes_per_host, ssh_user, ssh_key_path, provider, region, zone, instance_id, private_ip"
        )
    )]
    Unreadable { path: PathBuf, cause: String },

    #[error("`--hosts {filter}` matches none of the {count} hosts")]
    #[diagnostic(
        code(cfxm::hosts::no_match),
        help(
            "terms are `region=`, `zone=`, `id=`, `ip=`, `provider=` or a bare name, `*` matches anything; regions here: {regions}"
        )
    )]
    NoMatch {
        filter: String,
        count: usize,
        regions: String,
    },

    #[error("`--hosts {filter}`: {problem}")]
    #[diagnostic(
        code(cfxm::hosts::bad_filter),
        help("write terms like `region=ap-southeast-1,id=i-abc*` (comma means or)")
    )]
    BadFilter { filter: String, problem: String },

    #[error("host `{label}` is local but its instance id `{instance_id}` cannot name a slot")]
    #[diagnostic(
        code(cfxm::hosts::bad_slot),
        help("a local host's instance id must be one path component (no `/`, not `.` or `..`)")
    )]
    BadSlot { label: String, instance_id: String },

    #[error("cannot use the known-hosts file: {0}")]
    #[diagnostic(
        code(cfxm::hosts::known_hosts),
        help("check the state directory's permissions; each line is `[ip]:port key-type base64`")
    )]
    KnownHosts(#[from] KnownHostsError),
}

/// The hosts of one spec, in inventory order.
#[derive(Debug, Clone, Default)]
pub struct HostList {
    hosts: Vec<Host>,
}

impl HostList {
    /// The spec's hosts: its static inventory, then the managed inventory in `state_dir` (if
    /// the spec has clouds cfxm manages). A host listed in both counts as static.
    pub fn for_spec(spec: &Spec, state: &SpecState) -> Result<HostList, HostsError> {
        let mut records = Vec::new();
        let mut managed_clouds = false;
        for cloud in &spec.clouds {
            match &cloud.settings {
                CloudSettings::Static(inv) => {
                    let origin = HostOrigin::Static {
                        inventory: inv.path.clone(),
                    };
                    for r in &inv.hosts {
                        records.push((r.clone(), origin.clone(), inv.ssh_port));
                    }
                }
                _ => managed_clouds = true,
            }
        }
        if managed_clouds {
            let path = state.hosts_json_path();
            match read_inventory(&path) {
                Ok(hosts) => {
                    let seen: HashSet<(String, String)> = records
                        .iter()
                        .map(|(r, _, _)| (r.ip.to_string(), r.instance_id.clone()))
                        .collect();
                    let origin = HostOrigin::Managed {
                        inventory: path.clone(),
                    };
                    for r in hosts {
                        if !seen.contains(&(r.ip.to_string(), r.instance_id.clone())) {
                            records.push((r, origin.clone(), 22));
                        }
                    }
                }
                // A spec with a static inventory can run before anything was created.
                Err(HostsError::NoInventory { .. }) if !records.is_empty() => {}
                Err(HostsError::NoInventory { path, .. }) => {
                    return Err(HostsError::NoInventory {
                        spec: spec.name.clone(),
                        path,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(HostList::from_records(records))
    }

    /// Hosts from one inventory file read now (for tools and tests; specs use [`for_spec`]).
    ///
    /// [`for_spec`]: HostList::for_spec
    pub fn from_inventory(
        path: &Path,
        origin_static: bool,
        ssh_port: u16,
    ) -> Result<HostList, HostsError> {
        let origin = if origin_static {
            HostOrigin::Static {
                inventory: path.to_path_buf(),
            }
        } else {
            HostOrigin::Managed {
                inventory: path.to_path_buf(),
            }
        };
        let records = read_inventory(path)?
            .into_iter()
            .map(|r| (r, origin.clone(), ssh_port))
            .collect();
        Ok(HostList::from_records(records))
    }

    fn from_records(records: Vec<(HostRecord, HostOrigin, u16)>) -> HostList {
        let mut used = HashSet::new();
        let hosts = records
            .into_iter()
            .map(|(record, origin, ssh_port)| {
                let base = if record.instance_id.is_empty() {
                    record.ip.to_string()
                } else {
                    record.instance_id.clone()
                };
                let mut label = base.clone();
                let mut n = 1;
                while !used.insert(label.clone()) {
                    n += 1;
                    label = format!("{base}#{n}");
                }
                let key = resolve_key(&record.ssh_key_path, origin.inventory());
                Host {
                    label,
                    record,
                    origin,
                    ssh_port,
                    key,
                }
            })
            .collect();
        HostList { hosts }
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The hosts `filter` selects; an error if it selects none.
    pub fn filter(self, filter: &HostFilter) -> Result<HostList, HostsError> {
        let count = self.hosts.len();
        let regions: BTreeSet<String> =
            self.hosts.iter().map(|h| h.record.region.clone()).collect();
        let hosts: Vec<Host> = self
            .hosts
            .into_iter()
            .filter(|h| filter.matches(h))
            .collect();
        if hosts.is_empty() {
            return Err(HostsError::NoMatch {
                filter: filter.text.clone(),
                count,
                regions: regions.into_iter().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(HostList { hosts })
    }
}

fn read_inventory(path: &Path) -> Result<Vec<HostRecord>, HostsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HostsError::NoInventory {
                spec: SpecName::new(""),
                path: path.to_path_buf(),
            });
        }
        Err(e) => {
            return Err(HostsError::Unreadable {
                path: path.to_path_buf(),
                cause: e.to_string(),
            });
        }
    };
    hosts_json::parse(&text).map_err(|e| HostsError::Unreadable {
        path: path.to_path_buf(),
        cause: e.to_string(),
    })
}

/// `ssh_key_path` as a usable path: `~/` is the home directory, relative is relative to the
/// inventory file's directory.
fn resolve_key(raw: &str, inventory: &Path) -> PathBuf {
    if let Some(rest) = raw.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    let p = Path::new(raw);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    inventory.parent().unwrap_or(Path::new(".")).join(p)
}

/// `--hosts`: comma-separated terms, any of which selects a host.
///
/// A term is `region=GLOB`, `zone=GLOB`, `id=GLOB` (instance id or label), `ip=GLOB`,
/// `provider=GLOB`, or a bare `GLOB` matching any of label, instance id, IP, region and zone.
/// `*` matches any run of characters and `?` one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFilter {
    text: String,
    terms: Vec<(Field, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Any,
    Region,
    Zone,
    Id,
    Ip,
    Provider,
}

impl std::str::FromStr for HostFilter {
    type Err = HostsError;

    fn from_str(text: &str) -> Result<Self, HostsError> {
        let bad = |problem: String| HostsError::BadFilter {
            filter: text.to_string(),
            problem,
        };
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim) {
            if term.is_empty() {
                return Err(bad("an empty term".into()));
            }
            let (field, pattern) = match term.split_once('=') {
                None => (Field::Any, term),
                Some((k, v)) => {
                    let field = match k.trim() {
                        "region" => Field::Region,
                        "zone" => Field::Zone,
                        "id" => Field::Id,
                        "ip" => Field::Ip,
                        "provider" => Field::Provider,
                        other => {
                            return Err(bad(format!(
                                "unknown field `{other}` (use region, zone, id, ip or provider)"
                            )));
                        }
                    };
                    (field, v.trim())
                }
            };
            if pattern.is_empty() {
                return Err(bad(format!("`{term}` has no value")));
            }
            terms.push((field, pattern.to_string()));
        }
        Ok(HostFilter {
            text: text.to_string(),
            terms,
        })
    }
}

impl HostFilter {
    pub fn matches(&self, host: &Host) -> bool {
        let r = &host.record;
        let ip = r.ip.to_string();
        self.terms.iter().any(|(field, pat)| {
            let m = |s: &str| glob(pat, s);
            match field {
                Field::Region => m(&r.region),
                Field::Zone => m(&r.zone),
                Field::Id => m(&r.instance_id) || m(&host.label),
                Field::Ip => m(&ip),
                Field::Provider => m(&r.provider),
                Field::Any => {
                    m(&host.label) || m(&r.instance_id) || m(&ip) || m(&r.region) || m(&r.zone)
                }
            }
        })
    }
}

/// `*` and `?` wildcards over characters.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with single-star backtracking: linear in practice, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Builds each host's transport for one spec: SSH through one shared pool (and its
/// known-hosts file), local hosts through their slots.
pub struct Connector {
    state: SpecState,
    ssh: Arc<SshPool>,
}

impl Connector {
    /// Opens `state/<spec>/known_hosts` (created on the first new host).
    pub fn new(state: &SpecState, options: SshOptions) -> Result<Self, HostsError> {
        let known = KnownHosts::open(state.known_hosts_path(), options.accept_changed_host_keys)?;
        Ok(Connector {
            ssh: SshPool::new(known, options),
            state: state.clone(),
        })
    }

    pub fn ssh_pool(&self) -> &Arc<SshPool> {
        &self.ssh
    }

    /// The transport for `host`. Nothing connects until it is used.
    pub fn transport(&self, host: &Host) -> Result<Arc<dyn Transport>, HostsError> {
        if host.is_local() {
            let dir =
                self.state
                    .slot(&host.record.instance_id)
                    .ok_or_else(|| HostsError::BadSlot {
                        label: host.label.clone(),
                        instance_id: host.record.instance_id.clone(),
                    })?;
            return Ok(Arc::new(
                LocalTransport::new(&host.label, dir).with_address(host.record.ip),
            ));
        }
        Ok(Arc::new(self.ssh.transport(SshTarget {
            label: host.label.clone(),
            host: host.record.ip.to_string(),
            port: host.ssh_port,
            user: host.record.ssh_user.clone(),
            key: host.key.clone(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ip: &str, id: &str, region: &str, provider: &str) -> HostRecord {
        HostRecord {
            ip: ip.parse().unwrap(),
            nodes_per_host: 1,
            ssh_user: "root".into(),
            ssh_key_path: "keys/k.pem".into(),
            provider: provider.into(),
            region: region.into(),
            zone: format!("{region}a"),
            instance_id: id.into(),
            private_ip: None,
        }
    }

    fn list() -> HostList {
        let origin = HostOrigin::Static {
            inventory: PathBuf::from("/inv/hosts.json"),
        };
        HostList::from_records(vec![
            (
                record("10.0.0.1", "i-a1", "ap-southeast-1", "aliyun"),
                origin.clone(),
                22,
            ),
            (
                record("10.0.0.2", "i-a2", "ap-southeast-1", "aliyun"),
                origin.clone(),
                22,
            ),
            (
                record("10.0.1.1", "i-b1", "cn-hongkong", "aws"),
                origin.clone(),
                22,
            ),
            (
                record("10.0.1.1", "", "cn-hongkong", "aws"),
                origin.clone(),
                22,
            ),
            (record("10.0.1.1", "", "cn-hongkong", "aws"), origin, 22),
        ])
    }

    fn labels(l: &HostList) -> Vec<&str> {
        l.hosts().iter().map(|h| h.label.as_str()).collect()
    }

    #[test]
    fn labels_are_unique_and_keys_resolve_beside_the_inventory() {
        let l = list();
        assert_eq!(
            labels(&l),
            ["i-a1", "i-a2", "i-b1", "10.0.1.1", "10.0.1.1#2"]
        );
        assert_eq!(l.hosts()[0].key, Path::new("/inv/keys/k.pem"));
        assert_eq!(
            resolve_key("/abs/k", Path::new("/inv/h.json")),
            Path::new("/abs/k")
        );
        assert!(!l.hosts()[0].origin.is_managed());
    }

    #[test]
    fn filters_by_field_and_glob() {
        let f = |s: &str| {
            list()
                .filter(&s.parse().unwrap())
                .map(|l| labels(&l).join(" "))
        };
        assert_eq!(f("region=ap-*").unwrap(), "i-a1 i-a2");
        assert_eq!(f("i-b1,id=i-a2").unwrap(), "i-a2 i-b1");
        assert_eq!(f("ip=10.0.0.?").unwrap(), "i-a1 i-a2");
        assert_eq!(f("provider=aws").unwrap(), "i-b1 10.0.1.1 10.0.1.1#2");
        assert_eq!(f("cn-hongkonga").unwrap(), "i-b1 10.0.1.1 10.0.1.1#2");
        let none = f("region=eu-*").unwrap_err();
        assert_eq!(
            none.to_string(),
            "`--hosts region=eu-*` matches none of the 5 hosts"
        );
        assert!(matches!(
            "colour=red".parse::<HostFilter>(),
            Err(HostsError::BadFilter { .. })
        ));
        assert!("a,,b".parse::<HostFilter>().is_err());
        assert!("region=".parse::<HostFilter>().is_err());
    }

    #[test]
    fn a_static_spec_lists_its_inventory_and_never_manages_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("inv")).unwrap();
        let hosts = vec![record("10.0.0.1", "i-a1", "ap-southeast-1", "aliyun")];
        std::fs::write(
            dir.path().join("inv/hosts.json"),
            hosts_json::render(&hosts),
        )
        .unwrap();
        let spec_file = dir.path().join("spec.yaml");
        let text = "name: s\nowner: o\ncloud:\n  static:\n    inventory: inv/hosts.json\n    ssh_port: 2222\n";
        let spec = crate::spec::load_str(text, "spec.yaml", &spec_file).unwrap();
        assert!(spec.clouds.iter().all(|c| !c.kind().manages_hosts()));
        // No state exists: a static spec needs none.
        let state = crate::state::StateDir::new(dir.path().join("state"))
            .spec(&spec.name)
            .unwrap();
        let list = HostList::for_spec(&spec, &state).unwrap();
        let h = &list.hosts()[0];
        assert_eq!(h.ssh_port, 2222);
        assert_eq!(h.key, dir.path().join("inv/keys/k.pem"));
        assert!(!h.origin.is_managed());
        assert_eq!(h.origin.inventory(), dir.path().join("inv/hosts.json"));
    }

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*c", "abcd"));
        assert!(glob("?b", "ab"));
        assert!(!glob("?", ""));
    }
}
