//! Devnodes as real processes of the built binary, on loopback, driven over JSON-RPC the way the
//! harness drives Conflux nodes.
//!
//! Each node gets its own random 127.x.y.z address (`devnode_bind_address`) and OS-chosen free
//! ports on it, so concurrent test runs cannot collide; a node that still fails to bind is
//! restarted on new ports. Nodes are killed when dropped, so a failing test leaves no process.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use rand::RngExt;
use serde_json::{Value, json};
use sha3::{Digest, Keccak256};

/// Config lines every test node gets (the original tool's keys, scaled down).
pub const BASE_CONFIG: &str = r#"chain_id=10
mode="test"
mining_type="disable"
enable_discovery=false
session_ip_limits="0,0,0,0"
dev_allow_phase_change_without_peer=true
log_file="./log/conflux.log"
log_level="debug"
metrics_enabled=true
metrics_output_file="./log/metrics.log"
metrics_report_interval_ms=400
rpc_enable_metrics=true
public_rpc_apis="cfx,debug,test,pubsub,trace"
generate_tx=true
generate_tx_period_us=2000
txgen_account_count=20
txgen_batch_size=10
send_tx_period_ms=200
tx_pool_size=2000000
max_block_size_in_bytes=460800
target_block_gas_limit=120000000
max_outgoing_peers=80
"#;

/// A devnode process and how to reach it.
pub struct Node {
    pub index: usize,
    pub dir: PathBuf,
    pub ip: Ipv4Addr,
    pub p2p_port: u16,
    pub rpc_port: u16,
    pub local_port: u16,
    /// `0x` + 128 hex, recovered from `test_getNodeId` by [`Node::ready`].
    pub id: String,
    child: Option<Child>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn random_loopback() -> Ipv4Addr {
    let mut r = rand::rng();
    Ipv4Addr::new(
        127,
        r.random_range(100..=250),
        r.random(),
        r.random_range(1..=254),
    )
}

/// Three distinct free ports on `ip` (held together while chosen, so they differ).
fn free_ports(ip: Ipv4Addr) -> (u16, u16, u16) {
    let l: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind((ip, 0)).expect("bind a free port"))
        .collect();
    let p = |i: usize| l[i].local_addr().unwrap().port();
    (p(0), p(1), p(2))
}

/// Writes a genesis secrets file with the binary itself.
pub fn write_secrets(root: &Path, count: usize) -> PathBuf {
    let path = root.join("genesis_secrets.txt");
    let out = Command::new(env!("CARGO_BIN_EXE_cfxm"))
        .args(["devnode", "--write-genesis-secrets"])
        .arg(&path)
        .args(["--count", &count.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    path
}

/// Starts `n` nodes under `root`, each `root/node<i>` with `BASE_CONFIG` + `extra`, and runs the
/// harness's readiness sequence on each.
pub fn start(root: &Path, n: usize, secrets: &Path, extra: &str) -> Vec<Node> {
    let mut nodes: Vec<Node> = (0..n).map(|i| spawn(root, i, secrets, extra)).collect();
    for node in &mut nodes {
        node.ready();
    }
    nodes
}

/// Starts node `index` in `root/node<index>` (keeping its data dir, so a restart keeps its key).
pub fn spawn(root: &Path, index: usize, secrets: &Path, extra: &str) -> Node {
    let dir = root.join(format!("node{index}"));
    std::fs::create_dir_all(&dir).unwrap();
    for _attempt in 0..5 {
        let ip = random_loopback();
        let (p2p_port, local_port, rpc_port) = free_ports(ip);
        // `extra` replaces base lines with the same key (TOML forbids duplicates).
        let keys: Vec<&str> = extra.lines().filter_map(|l| l.split('=').next()).collect();
        let base: String = BASE_CONFIG
            .lines()
            .filter(|l| !keys.contains(&l.split('=').next().unwrap_or("")))
            .map(|l| format!("{l}\n"))
            .collect();
        let config = format!(
            "tcp_port={p2p_port}\njsonrpc_local_http_port={local_port}\n\
             jsonrpc_http_port={rpc_port}\ndevnode_bind_address=\"{ip}\"\n\
             genesis_secrets=\"{}\"\n{base}{extra}\n",
            secrets.display()
        );
        std::fs::write(dir.join("conflux.toml"), config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cfxm"))
            .args(["devnode", "--config", "conflux.toml"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.txt")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap())
            .env_remove("RUST_LOG")
            .spawn()
            .expect("start the devnode");
        let mut node = Node {
            index,
            dir: dir.clone(),
            ip,
            p2p_port,
            rpc_port,
            local_port,
            id: String::new(),
            child: Some(child),
        };
        // Up when sayHello answers; a bind race makes it exit instead: retry on new ports.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if node.call("test_sayHello", None).is_ok() {
                return node;
            }
            if let Some(status) = node.child.as_mut().unwrap().try_wait().unwrap() {
                let err = std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
                assert!(
                    err.contains("cannot bind"),
                    "devnode exited {status}: {err}"
                );
                node.child = None;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            node.child.is_none(),
            "devnode {index} never answered test_sayHello"
        );
    }
    panic!("devnode {index} could not bind free ports in 5 attempts");
}

/// A JSON-RPC reply: the `result`, or the `error` object.
pub type Reply = Result<Value, Value>;

/// One JSON-RPC call over a fresh HTTP/1.1 connection, as jsonrpcclient makes it (no `params`
/// member when there are no arguments).
pub fn rpc(addr: SocketAddr, method: &str, params: Option<Value>) -> std::io::Result<Reply> {
    let mut req = json!({"jsonrpc": "2.0", "method": method, "id": 1});
    if let Some(p) = params {
        req["params"] = p;
    }
    let body = post(addr, &req.to_string())?;
    let v: Value =
        serde_json::from_str(&body).map_err(|e| std::io::Error::other(format!("{e}: {body}")))?;
    Ok(match v.get("error") {
        Some(e) => Err(e.clone()),
        None => Ok(v["result"].clone()),
    })
}

/// POSTs `body` to `addr` and returns the response body.
pub fn post(addr: SocketAddr, body: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, rest) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("HTTP error: {head}")));
    }
    Ok(rest.to_owned())
}

/// Recovers a node id from `test_getNodeId` output exactly as the harness does
/// (`conflux/utils.py::convert_to_nodeid`): r, s, v + 27 over keccak256(challenge).
pub fn recover_node_id(challenge: &[u8], sig: &[u8]) -> String {
    assert_eq!(sig.len(), 65, "r ‖ s ‖ v");
    let v = sig[64] as u32 + 27;
    assert!(
        v == 27 || v == 28,
        "v must be 0 or 1 before the client adds 27"
    );
    let digest = Keccak256::digest(challenge);
    let sig = Signature::from_slice(&sig[..64]).expect("valid r, s");
    let key = VerifyingKey::recover_from_prehash(
        &digest,
        &sig,
        RecoveryId::from_byte((v - 27) as u8).unwrap(),
    )
    .expect("recoverable");
    let point = key.to_sec1_point(false);
    let mut id = String::from("0x");
    for b in &point.as_bytes()[1..] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

impl Node {
    pub fn rpc_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.rpc_port))
    }

    pub fn p2p_addr(&self) -> String {
        format!("{}:{}", self.ip, self.p2p_port)
    }

    /// Calls the public RPC port.
    pub fn call(&self, method: &str, params: Option<Value>) -> std::io::Result<Reply> {
        rpc(self.rpc_addr(), method, params)
    }

    /// Calls and expects a result.
    pub fn ok(&self, method: &str, params: Option<Value>) -> Value {
        self.ok_at(self.rpc_addr(), method, params)
    }

    /// Calls `addr` (the public or the local port) and expects a result.
    pub fn ok_at(&self, addr: SocketAddr, method: &str, params: Option<Value>) -> Value {
        match rpc(addr, method, params) {
            Ok(Ok(v)) => v,
            other => panic!("node {} {method}: {other:?}", self.index),
        }
    }

    /// The harness's readiness sequence: sayHello, getNodeId (recovering the id), then
    /// `debug_currentSyncPhase` polled every 0.1 s until NormalSyncPhase.
    pub fn ready(&mut self) {
        self.ready_on(self.rpc_addr());
    }

    /// The readiness sequence through `addr`.
    pub fn ready_on(&mut self, addr: SocketAddr) {
        assert_eq!(
            self.ok_at(addr, "test_sayHello", None),
            json!("Hello, world")
        );
        let challenge: u32 = rand::rng().random_range(1..u32::MAX);
        let bytes: Vec<u8> = challenge
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        let sig: Vec<u8> =
            serde_json::from_value(self.ok_at(addr, "test_getNodeId", Some(json!([bytes]))))
                .expect("an array of 65 bytes");
        self.id = recover_node_id(&bytes, &sig);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ok_at(addr, "debug_currentSyncPhase", None) == json!("NormalSyncPhase") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never synced",
                self.index
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The node's `conflux.log`.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/conflux.log")).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/metrics.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal (`TERM`, `INT`) by pid.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits for the process to exit; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not exit within {timeout:?}",
                self.index
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Connects `a` and `b` as the harness does: `test_addNode` from both ends.
pub fn connect(nodes: &[Node], a: usize, b: usize) {
    nodes[a].ok(
        "test_addNode",
        Some(json!([nodes[b].id, nodes[b].p2p_addr()])),
    );
    nodes[b].ok(
        "test_addNode",
        Some(json!([nodes[a].id, nodes[a].p2p_addr()])),
    );
}

/// Polls `test_getPeerInfo` until `node` shows every id in `peers` with protocols.
pub fn wait_peers(node: &Node, peers: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = node.ok("test_getPeerInfo", None);
        let shown: Vec<&str> = info
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| !p["protocols"].as_array().unwrap().is_empty())
            .map(|p| p["nodeid"].as_str().unwrap())
            .collect();
        if peers.iter().all(|p| shown.contains(p)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {} shows {shown:?}, wants {peers:?}",
            node.index
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every node reports the same best block hash and `count` blocks.
pub fn wait_converged(nodes: &[Node], count: u64, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let bests: Vec<Value> = nodes
            .iter()
            .map(|n| n.ok("cfx_getBestBlockHash", None))
            .collect();
        let counts: Vec<Value> = nodes
            .iter()
            .map(|n| n.ok("test_getBlockCount", None))
            .collect();
        if bests.iter().all(|b| *b == bests[0]) && counts.iter().all(|c| *c == json!(count)) {
            return bests[0].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no convergence: bests {bests:?}, counts {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
