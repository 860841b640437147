//! The stand-in Conflux node (`cfxm devnode --config conflux.toml`): what the local cloud runs
//! where a real `conflux` binary cannot, faithful to the node contract of conflux-node.md.
//!
//! Same start command and config keys, the JSON-RPC subset the harnesses call with the node's
//! exact shapes, a TCP peer protocol with a handshake that proves node ids, a block DAG with a
//! deterministic best block, transaction generation and gossip, and — above all — the
//! `conflux.log` and `metrics.log` lines the analysis parses, byte for byte, stamped with the
//! wall-clock time of each event.
//!
//! The node runs on one thread (a current-thread tokio runtime): thirty of them share two cores
//! in the local cloud. Module map:
//!
//! | module | owns |
//! | --- | --- |
//! | `config` | the TOML keys and their defaults |
//! | `identity` | the secp256k1 node key, node ids, recoverable signatures |
//! | `chain` | headers, the sync graph, the pivot chain, goodput |
//! | `txpool` | the transaction generator, the pool, seen transactions |
//! | `logs` | `conflux.log` line format, block event records, `metrics.log` |
//! | `wire` | the devnode peer protocol's frames |
//! | `network` | listener, dials, handshake, per-peer writers with injected latency |
//! | `node` | the node's state and what happens to it |
//! | `rpc` | JSON-RPC over HTTP |
//!
//! What a stand-in cannot reproduce (real transaction signatures, GHAST consensus, execution,
//! Conflux's wire protocol) is listed in conflux-node.md §5.2. Where this one departs:
//!
//! - devnodes peer only with devnodes, over their own framing (`wire`);
//! - the best block is a GHOST pivot tip, not GHAST; epochs are pivot-block pasts;
//! - transactions carry keccak-derived, non-verifying signatures of the real size, and travel
//!   as batches (sender, nonces) rather than bytes;
//! - nothing is executed: a block's epoch computation and pool update are stamped at once;
//! - the chain lives in memory: a restarted devnode starts again from genesis (its node key
//!   persists in `<conflux_data_dir>/net_config/key`);
//! - peer limits (`max_outgoing_peers`, `max_incoming_peers`), discovery and the WebSocket and
//!   eSpace ports are accepted in the config and not used;
//! - the extra key `devnode_bind_address` chooses the address ports bind (default `0.0.0.0`).

mod chain;
mod config;
mod identity;
mod logs;
mod network;
mod node;
mod rlp;
mod rpc;
mod txpool;
mod types;
mod wire;

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use config::{ApiSet, BootNode, ConfigError, NodeConfig};
pub use identity::{RecoverableSignature, recover_node_id};
pub use types::{H256, NodeId, keccak256};

use identity::NodeKey;
use logs::{Level, Logger, MetricsFile, target};
use node::Node;

/// What `cfxm devnode` was asked to do. Command-line values override the config file's keys of
/// the same name, as the node's flags do.
#[derive(Debug, Clone, Default)]
pub struct DevnodeOptions {
    /// The TOML config (`--config`).
    pub config: PathBuf,
    /// `--public-address ip:port`: the address peers know this node by. Accepted for command-line
    /// compatibility; devnodes learn peers' addresses from `test_addNode`, so it is only logged.
    pub public_address: Option<String>,
    /// `--bind-address`: overrides `devnode_bind_address`.
    pub bind_address: Option<IpAddr>,
    /// `--port`: overrides `tcp_port`.
    pub port: Option<u16>,
    /// `--jsonrpc-http-port`: overrides `jsonrpc_http_port`.
    pub jsonrpc_http_port: Option<u16>,
    /// `--log-file`: overrides `log_file`.
    pub log_file: Option<PathBuf>,
    /// `--log-level`: overrides `log_level`.
    pub log_level: Option<String>,
    /// `--net-key`: overrides `net_key`.
    pub net_key: Option<String>,
    /// `--mode`: overrides `mode`.
    pub mode: Option<String>,
    /// `--bootnodes`: overrides `bootnodes`.
    pub bootnodes: Option<String>,
}

/// Why a devnode could not start.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DevnodeError {
    #[error("cannot read the node config `{path}`: {source}")]
    #[diagnostic(
        code(cfxm::devnode::config),
        help("pass the node's TOML file, e.g. `cfxm devnode --config conflux.toml`")
    )]
    ConfigRead { path: PathBuf, source: io::Error },
    #[error("invalid node config `{path}`: {problem}")]
    #[diagnostic(
        code(cfxm::devnode::config),
        help("fix that line; conflux-node.md §1.2 lists the node's keys and their types")
    )]
    ConfigInvalid { path: PathBuf, problem: ConfigError },
    #[error("invalid command-line value: {0}")]
    #[diagnostic(code(cfxm::devnode::args), help("see `cfxm devnode --help`"))]
    BadArgument(String),
    #[error("cannot bind the {what} on {addr}: {source}")]
    #[diagnostic(
        code(cfxm::devnode::bind),
        help(
            "another process holds that port, or the address is not on this machine; choose \
             other ports in the config, or another `devnode_bind_address`"
        )
    )]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("cannot open `{path}`: {source}")]
    #[diagnostic(
        code(cfxm::devnode::file),
        help("the node writes its logs relative to its working directory; check it is writable")
    )]
    File { path: PathBuf, source: io::Error },
    #[error("node key: {0}")]
    #[diagnostic(
        code(cfxm::devnode::key),
        help("remove the key file to get a new identity, or fix `net_key`")
    )]
    Key(#[from] identity::KeyError),
    #[error("cannot read the genesis secrets `{path}`: {source}")]
    #[diagnostic(
        code(cfxm::devnode::genesis),
        help(
            "every node needs the same secrets file for the same genesis; create one with \
             `cfxm devnode --write-genesis-secrets FILE` or remove `genesis_secrets`"
        )
    )]
    GenesisSecrets { path: PathBuf, source: io::Error },
    #[error("cannot start the node's runtime: {0}")]
    #[diagnostic(code(cfxm::devnode::runtime))]
    Runtime(io::Error),
}

/// Reads the config and applies the command line over it.
pub fn load_config(opts: &DevnodeOptions) -> Result<NodeConfig, DevnodeError> {
    let text =
        std::fs::read_to_string(&opts.config).map_err(|source| DevnodeError::ConfigRead {
            path: opts.config.clone(),
            source,
        })?;
    let mut c = NodeConfig::parse(&text).map_err(|problem| DevnodeError::ConfigInvalid {
        path: opts.config.clone(),
        problem,
    })?;
    if let Some(p) = opts.port {
        c.tcp_port = p;
    }
    if let Some(p) = opts.jsonrpc_http_port {
        c.jsonrpc_http_port = Some(p);
    }
    if let Some(f) = &opts.log_file {
        c.log_file = Some(f.clone());
    }
    if let Some(l) = &opts.log_level {
        c.log_level = Level::parse_filter(l)
            .ok_or_else(|| DevnodeError::BadArgument(format!("--log-level {l}")))?;
    }
    if let Some(k) = &opts.net_key {
        c.net_key = Some(k.clone());
    }
    if let Some(m) = &opts.mode {
        let patched = NodeConfig::parse(&format!("mode = {m:?}"))
            .map_err(|e| DevnodeError::BadArgument(e.to_string()))?;
        c.mode = patched.mode;
    }
    if let Some(b) = &opts.bootnodes {
        c.bootnodes = config::parse_bootnodes(b)
            .map_err(|e| DevnodeError::BadArgument(format!("--bootnodes: {e}")))?;
    }
    if let Some(a) = &opts.public_address {
        c.public_address = Some(a.clone());
    }
    if let Some(a) = opts.bind_address {
        c.bind_address = a;
    }
    Ok(c)
}

/// Runs a devnode until SIGTERM, SIGINT or `test_stop`; then flushes its logs and returns.
pub fn run(opts: &DevnodeOptions) -> Result<(), DevnodeError> {
    let config = load_config(opts)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DevnodeError::Runtime)?;
    let result = rt.block_on(serve(config));
    // Peer and RPC tasks are cancelled with the runtime; nothing of theirs needs flushing.
    rt.shutdown_timeout(Duration::from_millis(100));
    result
}

/// keccak256 of the genesis secrets file, streamed (the file may hold 100,000 secrets).
fn digest_file(path: &Path) -> io::Result<H256> {
    use sha3::{Digest, Keccak256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Keccak256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(H256(h.finalize().into()))
}

/// Writes `count` deterministic genesis secrets (one hex secret per line, like the image's
/// `genesis_secrets.txt`): secret i is keccak256("cfxm-genesis-" ‖ i), retried in the
/// negligible case it is not a valid key.
pub fn write_genesis_secrets(path: &Path, count: usize) -> io::Result<()> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(count * 65);
    for i in 0..count {
        let mut salt = 0u32;
        let secret = loop {
            let s = keccak256(format!("cfxm-genesis-{i}-{salt}").as_bytes());
            if NodeKey::from_secret(&s.0).is_some() {
                break s;
            }
            salt += 1;
        };
        let _ = writeln!(out, "{}", &secret.to_string()[2..]);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, out)
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, DevnodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DevnodeError::Bind { what, addr, source })
}

async fn serve(config: NodeConfig) -> Result<(), DevnodeError> {
    let key = match &config.net_key {
        Some(hex) => NodeKey::from_hex(hex).ok_or(identity::KeyError::BadNetKey)?,
        None => NodeKey::load_or_create(&config.key_path())?,
    };
    let secrets_digest = match &config.genesis_secrets {
        Some(p) => digest_file(p).map_err(|source| DevnodeError::GenesisSecrets {
            path: p.clone(),
            source,
        })?,
        None => H256::default(),
    };
    let genesis = chain::genesis(
        config.chain_id,
        secrets_digest,
        config.target_block_gas_limit,
    );

    // Bind everything before logging, so a port conflict leaves no half-started node behind.
    let p2p = bind(
        "P2P port (`tcp_port`)",
        SocketAddr::new(config.bind_address, config.tcp_port),
    )
    .await?;
    let public_rpc = match config.jsonrpc_http_port {
        Some(port) => Some(
            bind(
                "public RPC port (`jsonrpc_http_port`)",
                SocketAddr::new(config.bind_address, port),
            )
            .await?,
        ),
        None => None,
    };
    let local_rpc = match config.jsonrpc_local_http_port {
        Some(port) => Some(
            bind(
                "local RPC port (`jsonrpc_local_http_port`)",
                SocketAddr::new(config.local_rpc_address(), port),
            )
            .await?,
        ),
        None => None,
    };

    let log = Logger::open(config.log_file.as_deref(), config.log_level).map_err(|source| {
        DevnodeError::File {
            path: config.log_file.clone().unwrap_or_default(),
            source,
        }
    })?;
    let metrics = match (&config.metrics_enabled, &config.metrics_output_file) {
        (true, Some(p)) => Some(MetricsFile::open(p).map_err(|source| DevnodeError::File {
            path: p.clone(),
            source,
        })?),
        _ => None,
    };

    let node = Arc::new(Node::new(config.clone(), key, log, metrics, genesis));
    node.info(
        target::CLIENT,
        format_args!(
            "Starting devnode (cfxm {}, a stand-in for conflux): node_id={:?}, chain_id={}, \
             genesis={:?}",
            env!("CARGO_PKG_VERSION"),
            node.key.node_id(),
            config.chain_id,
            node.genesis
        ),
    );
    let mut listening = format!(
        "P2P on {}",
        p2p.local_addr().map_err(DevnodeError::Runtime)?
    );
    if let Some(l) = &public_rpc {
        listening += &format!(
            ", public RPC on {}",
            l.local_addr().map_err(DevnodeError::Runtime)?
        );
    }
    if let Some(l) = &local_rpc {
        listening += &format!(
            ", local RPC on {}",
            l.local_addr().map_err(DevnodeError::Runtime)?
        );
    }
    if let Some(a) = &config.public_address {
        listening += &format!(", public address {a}");
    }
    node.info(target::NETWORK, format_args!("Listening: {listening}"));

    tokio::spawn(network::accept_loop(node.clone(), p2p));
    for (listener, apis) in [
        (public_rpc, config.public_rpc_apis.clone()),
        (local_rpc, ApiSet::all()),
    ] {
        if let Some(listener) = listener {
            let app = rpc::router(rpc::RpcState {
                node: node.clone(),
                apis: Arc::new(apis),
            });
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
    }
    for b in &config.bootnodes {
        if node.want_peer(b.id, b.addr.clone()) {
            tokio::spawn(network::dial(node.clone(), b.id, b.addr.clone()));
        }
    }
    tokio::spawn(network::redial_loop(node.clone()));
    spawn_timers(&node);

    wait_for_stop(&node).await;
    node.shutdown();
    Ok(())
}

/// Runs `f` every `period` (the first run after one period).
fn every(node: &Arc<Node>, period: Duration, f: fn(&Node)) {
    let node = node.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            f(&node);
        }
    });
}

fn spawn_timers(node: &Arc<Node>) {
    let c = &node.config;
    every(node, Duration::from_millis(100), Node::flush_logs);
    every(node, Duration::from_secs(5), Node::log_statistics);
    every(node, Duration::from_secs(1), Node::heartbeat);
    every(node, c.send_tx_period, Node::flush_tx_gossip);
    if c.has_txgen() {
        // Whole batches at the configured pace; 50 ms keeps wake-ups rare at any rate.
        let batch = c
            .generate_tx_period
            .saturating_mul(c.txgen_batch_size as u32);
        every(
            node,
            batch.clamp(Duration::from_millis(10), Duration::from_millis(50)),
            Node::tick_txgen,
        );
    }
    if node.metrics_enabled() {
        // The node's reporter sleeps interval × U(0.5, 1.5) between reports.
        let node = node.clone();
        let base = c.metrics_report_interval;
        tokio::spawn(async move {
            loop {
                let jitter = 0.5 + rand::RngExt::random::<f64>(&mut rand::rng());
                tokio::time::sleep(base.mul_f64(jitter)).await;
                node.report_metrics();
            }
        });
    }
}

async fn wait_for_stop(node: &Node) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        node.stop_requested().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = node.stop_requested() => {}
    }
}
