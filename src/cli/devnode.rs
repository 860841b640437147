//! `cfxm devnode`: run the stand-in Conflux node, or write a genesis secrets file for it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::devnode::{self, DevnodeOptions};

/// The flags of the real `conflux` binary that a devnode accepts and ignores, so start scripts
/// written for the real node run unchanged.
#[derive(Debug, Args)]
struct IgnoredFlags {
    #[arg(long, hide = true)]
    udp_port: Option<String>,
    #[arg(long, hide = true)]
    jsonrpc_ws_port: Option<String>,
    #[arg(long, hide = true)]
    jsonrpc_cors: Option<String>,
    #[arg(long, hide = true)]
    jsonrpc_http_keep_alive: Option<String>,
    #[arg(long, hide = true)]
    log_conf: Option<String>,
    #[arg(long, hide = true)]
    netconf_dir: Option<String>,
    #[arg(long, hide = true)]
    mining_author: Option<String>,
    #[arg(long, hide = true)]
    ledger_cache_size: Option<String>,
    #[arg(long, hide = true)]
    db_cache_size: Option<String>,
    #[arg(long, hide = true)]
    db_compact_profile: Option<String>,
    #[arg(long, hide = true)]
    block_db_dir: Option<String>,
    #[arg(long, hide = true)]
    enable_discovery: Option<String>,
    #[arg(long, hide = true)]
    node_table_timeout_s: Option<String>,
    #[arg(long, hide = true)]
    node_table_promotion_timeout_s: Option<String>,
    #[arg(long, hide = true)]
    egress_queue_capacity: Option<String>,
    #[arg(long, hide = true)]
    egress_min_throttle: Option<String>,
    #[arg(long, hide = true)]
    egress_max_throttle: Option<String>,
    #[arg(long, hide = true)]
    account_provider_refresh_time_ms: Option<String>,
    #[arg(long, hide = true)]
    archive: bool,
    #[arg(long, hide = true)]
    full: bool,
    #[arg(long, hide = true)]
    light: bool,
}

/// The arguments of `cfxm devnode` (the command's help text is on `cli::Command::Devnode`).
#[derive(Debug, Args)]
pub struct DevnodeArgs {
    /// The node's TOML config.
    #[arg(
        short = 'c',
        long,
        value_name = "FILE",
        required_unless_present = "write_genesis_secrets"
    )]
    config: Option<PathBuf>,
    /// Address the P2P and public RPC ports bind (overrides `devnode_bind_address`).
    #[arg(long, value_name = "IP")]
    bind_address: Option<IpAddr>,
    /// The address peers know this node by, `ip:port` (accepted for compatibility; logged).
    #[arg(long, value_name = "IP:PORT")]
    public_address: Option<String>,
    /// P2P port (overrides `tcp_port`).
    #[arg(short = 'p', long, value_name = "PORT")]
    port: Option<u16>,
    /// Public JSON-RPC port (overrides `jsonrpc_http_port`).
    #[arg(long, value_name = "PORT")]
    jsonrpc_http_port: Option<u16>,
    /// Log file (overrides `log_file`).
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Log level: off, error, warn, info, debug, trace (overrides `log_level`).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Network secret key as hex (overrides `net_key`).
    #[arg(long, value_name = "HEX")]
    net_key: Option<String>,
    /// Node mode, e.g. `test` (overrides `mode`).
    #[arg(long, value_name = "MODE")]
    mode: Option<String>,
    /// Peers to dial at start, `cfxnode://<id>@ip:port,...` (overrides `bootnodes`).
    #[arg(long, value_name = "NODES")]
    bootnodes: Option<String>,
    /// Instead of running, write a genesis secrets file (one hex secret per line) and exit.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    write_genesis_secrets: Option<PathBuf>,
    /// How many secrets `--write-genesis-secrets` writes.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100_000,
        requires = "write_genesis_secrets"
    )]
    count: usize,
    #[command(flatten)]
    _ignored: IgnoredFlags,
}

pub fn run(args: DevnodeArgs) -> ExitCode {
    if let Some(path) = &args.write_genesis_secrets {
        return match devnode::write_genesis_secrets(path, args.count) {
            Ok(()) => {
                eprintln!("wrote {} genesis secrets to {}", args.count, path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                ExitCode::from(1)
            }
        };
    }
    let opts = DevnodeOptions {
        config: args.config.unwrap_or_default(),
        public_address: args.public_address,
        bind_address: args.bind_address,
        port: args.port,
        jsonrpc_http_port: args.jsonrpc_http_port,
        log_file: args.log_file,
        log_level: args.log_level,
        net_key: args.net_key,
        mode: args.mode,
        bootnodes: args.bootnodes,
    };
    match devnode::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", super::render_diagnostic(&e));
            ExitCode::from(1)
        }
    }
}
