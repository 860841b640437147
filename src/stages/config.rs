//! The node's `conflux.toml`, generated with the original tool's keys and formulas
//! (original-tool.md §2.1, conflux-node.md §1.2), then the spec's `node.config` overrides.
//!
//! Every node of an experiment gets the same file; only two values depend on N, the total node
//! count:
//!
//! - `generate_tx_period_us = 1 000 000 · N // tps`: each node's generator paces itself so the
//!   network produces `tps` transactions per second in total (the original: 17,000);
//! - `txgen_account_count = min(100, 100 000 // N)`: the genesis accounts each node's generator
//!   owns, so N ranges fit the 100,000 genesis secrets.
//!
//! Two more follow the spec: `max_block_size_in_bytes` is `blocks.max_bytes`, and
//! `max_outgoing_peers = 10 · peers`. Ports are the in-container ones (11000–11005); on local
//! hosts each devnode gets its slot's ports and its host's address instead
//! ([`ConfluxConfig::for_devnode`]). `tps: 0` turns the generator off (`generate_tx=false`).
//!
//! [`diff`] renders a unified diff between two configs for the plan.

use std::net::IpAddr;

use crate::spec::{ConfigValue, Spec};

/// The in-container P2P port; node `i` on a host publishes `BASE_PORT + 10·i + k`.
pub const BASE_PORT: u16 = 11000;
/// Ports one node slot takes on a host.
pub const PORT_STRIDE: u16 = 10;
/// Genesis secrets the original's image ships; N · `txgen_account_count` must not exceed it.
pub const GENESIS_SECRETS: u64 = 100_000;

/// The ports of node slot `slot` on a host: p2p, local RPC, public RPC, ws, eth http, eth ws.
pub fn slot_ports(slot: u32) -> [u16; 6] {
    let base = u32::from(BASE_PORT) + u32::from(PORT_STRIDE) * slot;
    std::array::from_fn(|k| u16::try_from(base + k as u32).unwrap_or(u16::MAX))
}

/// What the generated values depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigParams {
    /// N: the nodes of the whole experiment.
    pub nodes: u64,
    /// Peers each node dials (`experiment.topology.peers`, at most N − 1).
    pub peers: u32,
    /// Transactions per second for the whole network; 0: no generator.
    pub tps: u32,
    /// `experiment.blocks.max_bytes`.
    pub max_block_bytes: u32,
}

impl ConfigParams {
    /// The spec's values for an experiment of `nodes` nodes.
    pub fn from_spec(spec: &Spec, nodes: u64) -> Self {
        ConfigParams {
            nodes,
            peers: u32::try_from(
                u64::from(spec.experiment.topology.peers).min(nodes.saturating_sub(1)),
            )
            .unwrap_or(u32::MAX),
            tps: spec.experiment.transactions.tps,
            max_block_bytes: spec.experiment.blocks.max_bytes,
        }
    }
}

/// `min(100, 100 000 // N)`.
pub fn txgen_account_count(nodes: u64) -> u64 {
    (GENESIS_SECRETS / nodes.max(1)).min(100)
}

/// A `conflux.toml`: keys in the order they are written.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfluxConfig {
    entries: Vec<(String, ConfigValue)>,
}

impl ConfluxConfig {
    /// The original's config for `p`, without overrides.
    pub fn generated(p: &ConfigParams) -> Self {
        use ConfigValue::{Bool, Int, Str};
        let s = |v: &str| Str(v.to_owned());
        let n = p.nodes.max(1);
        let [p2p, local_rpc, rpc, ws, eth_http, eth_ws] = slot_ports(0);
        let mut e: Vec<(&str, ConfigValue)> = vec![
            // Ports inside the container.
            ("tcp_port", Int(p2p.into())),
            ("jsonrpc_local_http_port", Int(local_rpc.into())),
            ("jsonrpc_http_port", Int(rpc.into())),
            ("jsonrpc_ws_port", Int(ws.into())),
            ("jsonrpc_http_eth_port", Int(eth_http.into())),
            ("jsonrpc_ws_eth_port", Int(eth_ws.into())),
            // Identity and mode.
            ("chain_id", Int(10)),
            ("mode", s("test")),
            // No mining, no discovery, no per-IP limits.
            ("mining_type", s("disable")),
            ("enable_discovery", Bool(false)),
            ("session_ip_limits", s("0,0,0,0")),
            ("subnet_quota", Int(0)),
            // Phase switching.
            ("check_phase_change_period_ms", Int(100)),
            ("dev_allow_phase_change_without_peer", Bool(true)),
            ("min_phase_change_normal_peer_count", Int(1)),
            // Genesis.
            ("execute_genesis", Bool(false)),
            ("check_status_genesis", Bool(false)),
            // Logs and metrics: the analysis lines are DEBUG.
            ("log_file", s("./log/conflux.log")),
            ("log_level", s("debug")),
            ("metrics_enabled", Bool(true)),
            ("metrics_output_file", s("./log/metrics.log")),
            ("rpc_enable_metrics", Bool(true)),
            // The harness needs the test and debug APIs on the public port.
            ("public_rpc_apis", s("cfx,debug,test,pubsub,trace")),
            // Forks disabled.
            ("pos_reference_enable_height", Int(4_294_967_295)),
            ("hydra_transition_height", Int(4_294_967_295)),
            ("hydra_transition_number", Int(4_294_967_295)),
            ("cip43_init_end_number", Int(4_294_967_295)),
            ("cip1559_transition_height", Int(4_294_967_295)),
            ("sigma_fix_transition_number", Int(4_294_967_295)),
            ("dao_vote_transition_number", Int(2_147_483_648)),
            ("dao_vote_transition_height", Int(2_147_483_648)),
            // Storage and caches: production values × storage_memory_gb (16) / 16.
            ("db_cache_size", Int(128)),
            ("ledger_cache_size", Int(1024)),
            ("storage_delta_mpts_cache_size", Int(20_000_000)),
            ("storage_delta_mpts_cache_start_size", Int(2_000_000)),
            ("storage_delta_mpts_slab_idle_size", Int(2_000_000)),
            ("enable_single_mpt_storage", Bool(true)),
            ("persist_tx_index", Bool(false)),
            ("persist_block_number_index", Bool(true)),
            ("enable_optimistic_execution", Bool(false)),
            // Network.
            ("egress_min_throttle", Int(512)),
            ("egress_max_throttle", Int(1024)),
            ("egress_queue_capacity", Int(2048)),
            ("max_outgoing_peers", Int(10 * i64::from(p.peers))),
            // Blocks.
            ("max_block_size_in_bytes", Int(p.max_block_bytes.into())),
            ("target_block_gas_limit", Int(120_000_000)),
            ("execution_prefetch_threads", Int(8)),
            // Pool and sending.
            ("tx_pool_size", Int(2_000_000)),
            ("send_tx_period_ms", Int(200)),
            // The built-in transaction generator.
            ("generate_tx", Bool(p.tps > 0)),
        ];
        if p.tps > 0 {
            let period = 1_000_000 * u128::from(n) / u128::from(p.tps);
            e.push((
                "generate_tx_period_us",
                Int(i64::try_from(period).unwrap_or(i64::MAX)),
            ));
        }
        e.extend([
            ("txgen_account_count", Int(txgen_account_count(n) as i64)),
            ("txgen_batch_size", Int(10)),
            ("genesis_secrets", s("./genesis_secrets.txt")),
        ]);
        ConfluxConfig {
            entries: e.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    /// The generated config with `overrides` (the spec's `node.config`): a key that exists is
    /// replaced where it stands, a new key is appended.
    pub fn with_overrides<'a>(
        mut self,
        overrides: impl IntoIterator<Item = (&'a String, &'a ConfigValue)>,
    ) -> Self {
        for (k, v) in overrides {
            self.set(k, v.clone());
        }
        self
    }

    /// The config an experiment runs on: `spec`'s values for `nodes` nodes, its overrides.
    pub fn for_spec(spec: &Spec, nodes: u64) -> Self {
        Self::generated(&ConfigParams::from_spec(spec, nodes)).with_overrides(&spec.node.config)
    }

    /// Sets `key`, in place if present, else at the end.
    pub fn set(&mut self, key: &str, value: ConfigValue) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_owned(), value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&ConfigValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// An integer key's value.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            ConfigValue::Int(i) => Some(*i),
            ConfigValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The config of devnode `slot` on a local host at `ip`: the slot's ports, bound on the
    /// host's own address, and the host's one genesis secrets file (the node runs in
    /// `node<slot>/`).
    pub fn for_devnode(&self, ip: IpAddr, slot: u32) -> Self {
        let mut c = self.clone();
        let keys = [
            "tcp_port",
            "jsonrpc_local_http_port",
            "jsonrpc_http_port",
            "jsonrpc_ws_port",
            "jsonrpc_http_eth_port",
            "jsonrpc_ws_eth_port",
        ];
        for (key, port) in keys.into_iter().zip(slot_ports(slot)) {
            c.set(key, ConfigValue::Int(port.into()));
        }
        c.set("devnode_bind_address", ConfigValue::Str(ip.to_string()));
        c.set(
            "genesis_secrets",
            ConfigValue::Str("../genesis_secrets.txt".into()),
        );
        c
    }

    /// The file: one `key=value` per line, strings double-quoted (TOML basic strings), as the
    /// original writes it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.entries {
            out.push_str(k);
            out.push('=');
            out.push_str(&render_value(v));
            out.push('\n');
        }
        out
    }
}

fn render_value(v: &ConfigValue) -> String {
    match v {
        ConfigValue::Bool(b) => b.to_string(),
        ConfigValue::Int(i) => i.to_string(),
        ConfigValue::Float(f) => toml::Value::Float(*f).to_string(),
        ConfigValue::Str(s) => toml::Value::String(s.clone()).to_string(),
    }
}

/// A unified diff from `old` to `new` (3 lines of context), or an empty string when equal.
pub fn diff(old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header("conflux.toml (applied)", "conflux.toml (planned)")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(nodes: u64) -> ConfigParams {
        ConfigParams {
            nodes,
            peers: 8.min(nodes.saturating_sub(1) as u32),
            tps: 17_000,
            max_block_bytes: 460_800,
        }
    }

    #[test]
    fn n_dependent_values_follow_the_original_formulas() {
        for (n, period, accounts) in [
            (10, 588, 100),
            (100, 5882, 100),
            (1000, 58823, 100),
            (10_000, 588_235, 10),
        ] {
            let c = ConfluxConfig::generated(&params(n));
            assert_eq!(c.int("generate_tx_period_us"), Some(period), "N={n}");
            assert_eq!(c.int("txgen_account_count"), Some(accounts), "N={n}");
            assert!(n * c.int("txgen_account_count").unwrap() as u64 <= GENESIS_SECRETS);
        }
        assert_eq!(
            ConfluxConfig::generated(&params(10)).int("max_outgoing_peers"),
            Some(80)
        );
        assert_eq!(
            ConfluxConfig::generated(&params(1)).int("max_outgoing_peers"),
            Some(0)
        );
    }

    #[test]
    fn overrides_replace_in_place_and_append_new_keys() {
        let mut o = std::collections::BTreeMap::new();
        o.insert("log_level".to_owned(), ConfigValue::Str("trace".into()));
        o.insert("zz_extra".to_owned(), ConfigValue::Float(1.5));
        let base = ConfluxConfig::generated(&params(10));
        let c = base.clone().with_overrides(&o);
        let pos = |c: &ConfluxConfig, k| c.keys().position(|x| x == k);
        assert_eq!(pos(&c, "log_level"), pos(&base, "log_level"));
        assert!(c.render().contains("log_level=\"trace\"\n"));
        assert!(c.render().ends_with("zz_extra=1.5\n"));
    }

    #[test]
    fn the_rendered_file_parses_as_toml_and_as_a_devnode_config() {
        let c = ConfluxConfig::generated(&params(10)).for_devnode("127.0.3.4".parse().unwrap(), 2);
        let t: toml::Table = c.render().parse().unwrap();
        assert_eq!(t["tcp_port"].as_integer(), Some(11020));
        assert_eq!(t["jsonrpc_http_port"].as_integer(), Some(11022));
        assert_eq!(t["devnode_bind_address"].as_str(), Some("127.0.3.4"));
        assert_eq!(
            t["genesis_secrets"].as_str(),
            Some("../genesis_secrets.txt")
        );
    }

    #[test]
    fn tps_zero_turns_the_generator_off() {
        let c = ConfluxConfig::generated(&ConfigParams {
            tps: 0,
            ..params(10)
        });
        assert_eq!(c.get("generate_tx"), Some(&ConfigValue::Bool(false)));
        assert_eq!(c.get("generate_tx_period_us"), None);
    }

    #[test]
    fn the_diff_is_unified_and_empty_when_equal() {
        let a = ConfluxConfig::generated(&params(10)).render();
        let b = ConfluxConfig::generated(&params(1000)).render();
        assert_eq!(diff(&a, &a), "");
        let d = diff(&a, &b);
        assert!(
            d.starts_with("--- conflux.toml (applied)\n+++ conflux.toml (planned)\n@@"),
            "{d}"
        );
        assert!(
            d.contains("\n-generate_tx_period_us=588\n+generate_tx_period_us=58823\n"),
            "{d}"
        );
    }
}
