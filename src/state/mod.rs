//! The state directory: what cfxm remembers between runs, per spec.
//!
//! Layout (DESIGN §9): `state/<spec-name>/{lock, journal.jsonl, inventory.json, hosts.json,
//! known_hosts, runs/<timestamp>/}`. For now this holds the `hosts.json` format, which the
//! `static` cloud reads, and the path layout ([`layout::SpecDir`]); the lock, journal and
//! inventory come with the reconciler.

pub mod hosts_json;
pub mod layout;
