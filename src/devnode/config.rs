//! The node's TOML config: the keys of conflux-node.md §1.2 that a stand-in honours, with the
//! node's own defaults for the keys a harness leaves out. Unknown keys are accepted and ignored,
//! as the real node's config reader ignores keys it does not know.
//!
//! Harnesses write `key=value` lines with strings double-quoted and numbers bare, but some
//! writers quote everything, so numeric and boolean keys also accept their text form (`"11000"`,
//! `"true"`). A value of the wrong kind is an error naming the key.
//!
//! One key is the stand-in's own: `devnode_bind_address` (default `0.0.0.0`) is the address the
//! P2P and public RPC ports bind, so many devnodes can share one machine with the same ports on
//! different loopback addresses (the local cloud gives each host slot a `127.0.x.y`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::logs::Level;
use super::types::{H160, NodeId};

/// API groups the public RPC port serves (`public_rpc_apis`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSet {
    all: bool,
    groups: Vec<String>,
}

impl ApiSet {
    /// Parses `"cfx,debug,test"`, `"all"` or `"safe"` (= cfx, pubsub, txpool, the node default).
    pub fn parse(s: &str) -> Self {
        let mut groups = Vec::new();
        let mut all = false;
        for g in s.split(',').map(|g| g.trim().to_ascii_lowercase()) {
            match g.as_str() {
                "" => {}
                "all" => all = true,
                "safe" => groups.extend(["cfx", "pubsub", "txpool"].map(String::from)),
                _ => groups.push(g),
            }
        }
        Self { all, groups }
    }

    /// Every group (the local RPC port).
    pub fn all() -> Self {
        Self {
            all: true,
            groups: Vec::new(),
        }
    }

    /// Whether `group` (`test`, `debug`, `cfx`, ...) is served.
    pub fn allows(&self, group: &str) -> bool {
        self.all || self.groups.iter().any(|g| g == group)
    }
}

/// The node's mode; test and dev enable the test-only RPCs (txgen, latency injection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Test,
    Dev,
    Other(String),
}

impl Mode {
    fn parse(s: &str) -> Self {
        match s {
            "test" => Mode::Test,
            "dev" => Mode::Dev,
            other => Mode::Other(other.to_owned()),
        }
    }

    /// Whether the test-mode features are on.
    pub fn is_test_or_dev(&self) -> bool {
        matches!(self, Mode::Test | Mode::Dev)
    }
}

/// A peer to dial at start (`bootnodes`, `cfxnode://<id>@ip:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootNode {
    pub id: NodeId,
    pub addr: String,
}

/// The config a devnode runs with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub tcp_port: u16,
    pub jsonrpc_http_port: Option<u16>,
    pub jsonrpc_local_http_port: Option<u16>,
    pub public_rpc_apis: ApiSet,
    pub mode: Mode,
    pub chain_id: u32,
    pub log_file: Option<PathBuf>,
    pub log_level: Option<Level>,
    pub metrics_enabled: bool,
    pub metrics_output_file: Option<PathBuf>,
    pub metrics_report_interval: Duration,
    pub genesis_secrets: Option<PathBuf>,
    pub generate_tx: bool,
    pub generate_tx_period: Duration,
    pub txgen_account_count: usize,
    pub txgen_batch_size: usize,
    pub max_block_size_in_bytes: usize,
    pub target_block_gas_limit: u64,
    pub send_tx_period: Duration,
    pub tx_pool_size: usize,
    pub max_outgoing_peers: usize,
    pub max_incoming_peers: usize,
    pub referee_bound: usize,
    pub conflux_data_dir: PathBuf,
    pub netconf_dir: Option<PathBuf>,
    pub net_key: Option<String>,
    pub bootnodes: Vec<BootNode>,
    pub mining_author: Option<H160>,
    pub public_address: Option<String>,
    pub bind_address: IpAddr,
}

impl Default for NodeConfig {
    /// The node's defaults (`crates/config/src/configuration.rs` on the massive-test branch).
    fn default() -> Self {
        Self {
            tcp_port: 32323,
            jsonrpc_http_port: None,
            jsonrpc_local_http_port: None,
            public_rpc_apis: ApiSet::parse("safe"),
            mode: Mode::Other(String::new()),
            chain_id: 1,
            log_file: None,
            log_level: Some(Level::Info),
            metrics_enabled: false,
            metrics_output_file: None,
            metrics_report_interval: Duration::from_millis(3000),
            genesis_secrets: None,
            generate_tx: false,
            generate_tx_period: Duration::from_micros(100_000),
            txgen_account_count: 10,
            txgen_batch_size: 10,
            max_block_size_in_bytes: 200 * 1024,
            target_block_gas_limit: 30_000_000,
            send_tx_period: Duration::from_millis(1300),
            tx_pool_size: 50_000,
            max_outgoing_peers: 8,
            max_incoming_peers: 64,
            referee_bound: 200,
            conflux_data_dir: PathBuf::from("./blockchain_data"),
            netconf_dir: None,
            net_key: None,
            bootnodes: Vec::new(),
            mining_author: None,
            public_address: None,
            bind_address: IpAddr::from([0, 0, 0, 0]),
        }
    }
}

/// A config value that could not be used: the key, or for TOML syntax errors the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// `` `tcp_port` `` for a bad value, `line 3` for bad TOML.
    pub key: String,
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: format!("`{key}`"),
        message: message.into(),
    }
}

/// Typed access to one TOML table, recording which key failed.
struct Keys<'a>(&'a toml::Table);

impl Keys<'_> {
    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(err(
                key,
                format!("expected a string, got {}", other.type_str()),
            )),
        }
    }

    fn uint(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Some(*i as u64)),
            Some(toml::Value::Integer(i)) => Err(err(key, format!("expected ≥ 0, got {i}"))),
            Some(toml::Value::Float(f)) if *f >= 0.0 && f.fract() == 0.0 => Ok(Some(*f as u64)),
            Some(toml::Value::String(s)) => s
                .trim()
                .replace('_', "")
                .parse()
                .map(Some)
                .map_err(|_| err(key, format!("expected a whole number, got \"{s}\""))),
            Some(other) => Err(err(
                key,
                format!("expected a whole number, got {}", other.type_str()),
            )),
        }
    }

    fn bounded<T: TryFrom<u64>>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        match self.uint(key)? {
            None => Ok(None),
            Some(v) => T::try_from(v)
                .map(Some)
                .map_err(|_| err(key, format!("{v} is out of range"))),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(toml::Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(other) => Err(err(
                key,
                format!("expected true or false, got {}", other.type_str()),
            )),
        }
    }
}

impl NodeConfig {
    /// Parses the node's TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            ConfigError {
                key: format!("line {line}"),
                message: e.message().to_owned(),
            }
        })?;
        let k = Keys(&table);
        let mut c = NodeConfig::default();

        macro_rules! set {
            ($field:ident, $get:expr) => {
                if let Some(v) = $get {
                    c.$field = v;
                }
            };
        }
        set!(tcp_port, k.bounded("tcp_port")?);
        c.jsonrpc_http_port = k.bounded("jsonrpc_http_port")?;
        c.jsonrpc_local_http_port = k.bounded("jsonrpc_local_http_port")?;
        if let Some(s) = k.string("public_rpc_apis")? {
            c.public_rpc_apis = ApiSet::parse(&s);
        }
        if let Some(m) = k.string("mode")? {
            c.mode = Mode::parse(&m);
        }
        set!(chain_id, k.bounded("chain_id")?);
        c.log_file = k.string("log_file")?.map(PathBuf::from);
        if let Some(l) = k.string("log_level")? {
            c.log_level = Level::parse_filter(&l).ok_or_else(|| {
                err(
                    "log_level",
                    format!("expected off, error, warn, info, debug or trace, got \"{l}\""),
                )
            })?;
        }
        set!(metrics_enabled, k.bool("metrics_enabled")?);
        c.metrics_output_file = k.string("metrics_output_file")?.map(PathBuf::from);
        if let Some(ms) = k.uint("metrics_report_interval_ms")? {
            // At most a day: the reporter multiplies it by a random factor up to 1.5.
            c.metrics_report_interval = Duration::from_millis(ms.clamp(1, 86_400_000));
        }
        c.genesis_secrets = k.string("genesis_secrets")?.map(PathBuf::from);
        set!(generate_tx, k.bool("generate_tx")?);
        if let Some(us) = k.uint("generate_tx_period_us")? {
            c.generate_tx_period = Duration::from_micros(us.max(1));
        }
        set!(txgen_account_count, k.bounded("txgen_account_count")?);
        if let Some(b) = k.bounded::<usize>("txgen_batch_size")? {
            c.txgen_batch_size = b.clamp(1, u16::MAX as usize);
        }
        set!(
            max_block_size_in_bytes,
            k.bounded("max_block_size_in_bytes")?
        );
        set!(target_block_gas_limit, k.uint("target_block_gas_limit")?);
        if let Some(ms) = k.uint("send_tx_period_ms")? {
            c.send_tx_period = Duration::from_millis(ms.max(1));
        }
        set!(tx_pool_size, k.bounded("tx_pool_size")?);
        set!(max_outgoing_peers, k.bounded("max_outgoing_peers")?);
        set!(max_incoming_peers, k.bounded("max_incoming_peers")?);
        set!(referee_bound, k.bounded("referee_bound")?);
        set!(
            conflux_data_dir,
            k.string("conflux_data_dir")?.map(PathBuf::from)
        );
        c.netconf_dir = k.string("netconf_dir")?.map(PathBuf::from);
        c.net_key = k.string("net_key")?;
        if let Some(b) = k.string("bootnodes")? {
            c.bootnodes = parse_bootnodes(&b).map_err(|m| err("bootnodes", m))?;
        }
        if let Some(a) = k.string("mining_author")? {
            c.mining_author = Some(a.parse().map_err(|m| err("mining_author", m))?);
        }
        c.public_address = k.string("public_address")?;
        if let Some(a) = k.string("devnode_bind_address")? {
            c.bind_address = a.parse().map_err(|_| {
                err(
                    "devnode_bind_address",
                    format!("not an IP address: \"{a}\""),
                )
            })?;
        }
        Ok(c)
    }

    /// The file holding the node's network key.
    pub fn key_path(&self) -> PathBuf {
        self.netconf_dir
            .clone()
            .unwrap_or_else(|| self.conflux_data_dir.join("net_config"))
            .join("key")
    }

    /// Whether the built-in transaction generator exists (test/dev mode with genesis secrets).
    pub fn has_txgen(&self) -> bool {
        self.mode.is_test_or_dev() && self.genesis_secrets.is_some()
    }

    /// The address the loopback-only local RPC port binds: the bind address when that is itself
    /// a loopback address (several devnodes on one machine then share port numbers), else
    /// 127.0.0.1 as on the real node.
    pub fn local_rpc_address(&self) -> IpAddr {
        if self.bind_address.is_loopback() {
            self.bind_address
        } else {
            IpAddr::from([127, 0, 0, 1])
        }
    }
}

/// Parses `cfxnode://<128 hex>@ip:port[,...]`.
pub fn parse_bootnodes(s: &str) -> Result<Vec<BootNode>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            let rest = n
                .strip_prefix("cfxnode://")
                .ok_or_else(|| format!("`{n}` does not start with cfxnode://"))?;
            let (id, addr) = rest
                .split_once('@')
                .ok_or_else(|| format!("`{n}` has no @ip:port"))?;
            Ok(BootNode {
                id: id.parse()?,
                addr: addr.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file the original tool generates for 10 nodes (original-tool.md §2.1).
    const MASSIVE: &str = r#"
tcp_port=11000
jsonrpc_local_http_port=11001
jsonrpc_http_port=11002
jsonrpc_ws_port=11003
jsonrpc_http_eth_port=11004
jsonrpc_ws_eth_port=11005
chain_id=10
mode="test"
mining_type="disable"
enable_discovery=false
session_ip_limits="0,0,0,0"
subnet_quota=0
check_phase_change_period_ms=100
dev_allow_phase_change_without_peer=true
min_phase_change_normal_peer_count=1
execute_genesis=false
check_status_genesis=false
log_file="./log/conflux.log"
log_level="debug"
metrics_enabled=true
metrics_output_file="./log/metrics.log"
rpc_enable_metrics=true
public_rpc_apis="cfx,debug,test,pubsub,trace"
pos_reference_enable_height=4294967295
dao_vote_transition_number=2147483648
db_cache_size=128
storage_delta_mpts_cache_size=20000000
egress_min_throttle=512
max_outgoing_peers=80
max_block_size_in_bytes=460800
target_block_gas_limit=120000000
execution_prefetch_threads=8
tx_pool_size=2000000
send_tx_period_ms=200
generate_tx=true
generate_tx_period_us=588
txgen_account_count=100
txgen_batch_size=10
genesis_secrets="./genesis_secrets.txt"
"#;

    #[test]
    fn reads_the_massive_flow_config() {
        let c = NodeConfig::parse(MASSIVE).unwrap();
        assert_eq!(c.tcp_port, 11000);
        assert_eq!(c.jsonrpc_http_port, Some(11002));
        assert_eq!(c.jsonrpc_local_http_port, Some(11001));
        assert!(c.public_rpc_apis.allows("test") && c.public_rpc_apis.allows("debug"));
        assert_eq!(c.mode, Mode::Test);
        assert_eq!(c.chain_id, 10);
        assert_eq!(c.log_file, Some(PathBuf::from("./log/conflux.log")));
        assert_eq!(c.log_level, Some(Level::Debug));
        assert!(c.metrics_enabled);
        assert_eq!(c.generate_tx_period, Duration::from_micros(588));
        assert_eq!(c.txgen_account_count, 100);
        assert_eq!(c.max_block_size_in_bytes, 460_800);
        assert_eq!(c.target_block_gas_limit, 120_000_000);
        assert_eq!(c.send_tx_period, Duration::from_millis(200));
        assert_eq!(c.tx_pool_size, 2_000_000);
        assert!(c.has_txgen());
        assert_eq!(
            c.key_path(),
            PathBuf::from("./blockchain_data/net_config/key")
        );
        assert_eq!(c.bind_address, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(c.local_rpc_address(), IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn defaults_follow_the_node() {
        let c = NodeConfig::parse("").unwrap();
        assert_eq!(c.tcp_port, 32323);
        assert!(c.public_rpc_apis.allows("cfx"));
        assert!(!c.public_rpc_apis.allows("test"));
        assert!(!c.has_txgen());
    }

    #[test]
    fn quoted_numbers_and_the_bind_address_are_accepted() {
        let c = NodeConfig::parse(
            "tcp_port=\"12000\"\ngenerate_tx=\"true\"\ndevnode_bind_address=\"127.0.3.4\"",
        )
        .unwrap();
        assert_eq!(c.tcp_port, 12000);
        assert!(c.generate_tx);
        assert_eq!(c.local_rpc_address(), IpAddr::from([127, 0, 3, 4]));
    }

    #[test]
    fn wrong_values_name_their_key() {
        for (text, key) in [
            ("tcp_port=\"abc\"", "tcp_port"),
            ("tcp_port=70000", "tcp_port"),
            ("log_level=\"loud\"", "log_level"),
            ("generate_tx=3", "generate_tx"),
            ("devnode_bind_address=\"nowhere\"", "devnode_bind_address"),
            ("bootnodes=\"enode://x\"", "bootnodes"),
            ("chain_id=10\ntcp_port=", "line 2"),
            ("tcp_port=1\ntcp_port=2", "line 2"),
        ] {
            let e = NodeConfig::parse(text).unwrap_err();
            assert!(e.key == key || e.key == format!("`{key}`"), "{text}: {e}");
        }
    }

    #[test]
    fn bootnodes_parse() {
        let id = format!("{}", NodeId([0x11; 64]));
        let list = format!(
            "cfxnode://{}@10.0.0.1:11000, cfxnode://{}@10.0.0.2:11010",
            &id[2..],
            &id[2..]
        );
        let nodes = parse_bootnodes(&list).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].addr, "10.0.0.2:11010");
        assert_eq!(nodes[0].id, NodeId([0x11; 64]));
    }
}
