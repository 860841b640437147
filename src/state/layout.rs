//! Where things live inside the state directory, per spec (DESIGN §9):
//! `state/<spec>/{hosts.json, known_hosts, slots/<instance>/, ...}`.
//!
//! One place names these paths so the reconciler, the transports and the stages agree on them.

use std::path::{Path, PathBuf};

use crate::spec::SpecName;

/// `state/<spec-name>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecDir {
    root: PathBuf,
}

impl SpecDir {
    pub fn new(state_dir: &Path, spec: &SpecName) -> Self {
        SpecDir {
            root: state_dir.join(spec.as_str()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The inventory of the hosts cfxm created, in the original's nine-field format.
    pub fn hosts_json(&self) -> PathBuf {
        self.root.join("hosts.json")
    }

    /// SSH host keys recorded on first use (OpenSSH format).
    pub fn known_hosts(&self) -> PathBuf {
        self.root.join("known_hosts")
    }

    /// The parent of the local cloud's host slots.
    pub fn slots(&self) -> PathBuf {
        self.root.join("slots")
    }

    /// The slot directory of local-cloud instance `instance_id`, or `None` when the id cannot
    /// be a single path component (empty, `.`, `..`, or containing `/` or NUL).
    pub fn slot(&self, instance_id: &str) -> Option<PathBuf> {
        let ok = !instance_id.is_empty()
            && instance_id != "."
            && instance_id != ".."
            && !instance_id.contains(['/', '\0']);
        ok.then(|| self.slots().join(instance_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_documented_layout() {
        let d = SpecDir::new(Path::new("state"), &SpecName::new("latency-1k"));
        assert_eq!(d.hosts_json(), Path::new("state/latency-1k/hosts.json"));
        assert_eq!(d.known_hosts(), Path::new("state/latency-1k/known_hosts"));
        assert_eq!(
            d.slot("i-local-1").unwrap(),
            Path::new("state/latency-1k/slots/i-local-1")
        );
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert_eq!(d.slot(bad), None, "{bad:?}");
        }
    }
}
