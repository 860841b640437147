//! The node's state and everything that happens to it: blocks generated, received, inserted and
//! relayed; transactions generated, gossiped and packed; sessions registered and merged; the
//! periodic statistics and metrics. Every method is synchronous and runs under one lock; the
//! network and RPC tasks (`network`, `rpc`) only move bytes in and out.
//!
//! Per block, each node logs exactly once: "new block received" (receivers only, preceded by
//! "transaction received by block"), "new block inserted into graph", "insert new block into
//! consensus", and one "Block events record" line as soon as its record can gain no more
//! events: "complete" for a block that becomes the best block (the pivot-only events follow at
//! once), else "partially complete" right after its insertion (the stand-in never adds a
//! pivot-only event to a block later). The real node keeps the partial records in an LRU until
//! eviction or shutdown; logging them at once means a run's lines are in the log while the
//! nodes keep running, so `collect` needs no shutdown. Duplicates of a known block are dropped
//! before any of that.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::RngExt;
use tokio::sync::{Notify, mpsc};

use super::chain::{Block, BlockHeader, Graph, transactions_root};
use super::config::NodeConfig;
use super::identity::NodeKey;
use super::logs::{BlockEvent, EventRecord, Level, Logger, Meter, MetricsFile, target, thread};
use super::txpool::{Batch, PackLimits, Pool, Seen, TxGen};
use super::types::{H160, H256, NodeId, consts};
use super::wire::Message;

/// A frame queued for a peer, to be written no earlier than `due` (`test_addLatency`).
pub struct Outgoing {
    pub due: Instant,
    pub frame: Arc<Vec<u8>>,
}

/// A registered peer session.
struct Session {
    id: u64,
    addr: String,
    outbound: bool,
    tx: mpsc::UnboundedSender<Outgoing>,
}

/// How a block reached this node, which decides the "transaction received by block" ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Pushed as a new block, transactions named (the compact-block path).
    Compact,
    /// Fetched with `GetBlocks` (the full-block path; the node logs ratio=1).
    Full,
}

/// When a frame arrived.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub at: Instant,
    pub wall: DateTime<Utc>,
}

impl Arrival {
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            wall: Utc::now(),
        }
    }
}

/// A peer as `test_getPeerInfo` shows it.
pub struct PeerInfo {
    pub id: u64,
    pub addr: String,
    pub node_id: NodeId,
}

/// Facts `cfx_getStatus` and `cfx_epochNumber` report.
pub struct Status {
    pub best_hash: H256,
    pub epoch: u64,
    pub block_count: usize,
    pub pending_txs: usize,
}

struct Inner {
    log: Logger,
    metrics: Option<MetricsFile>,
    graph: Graph,
    pool: Pool,
    seen: Seen,
    txgen: Option<TxGen>,
    sessions: HashMap<NodeId, Session>,
    next_session: u64,
    /// Send delay per peer (`test_addLatency`), kept across reconnects.
    latency: HashMap<NodeId, Duration>,
    /// Peers to keep connected (`test_addNode`, `bootnodes`), with their address.
    wanted: HashMap<NodeId, String>,
    /// Dials in progress, so the reconnect timer does not start a second one.
    dialing: HashSet<NodeId>,
    /// Event records and senders of blocks waiting for dependencies.
    orphan_ctx: HashMap<H256, (EventRecord, Option<NodeId>)>,
    /// Batches to gossip to each peer at the next `send_tx_period` tick.
    tx_out: HashMap<NodeId, Vec<Arc<Batch>>>,
    good_tps: Meter,
    /// `referee_bound` and `max_block_size_in_bytes` from the config.
    referee_bound: usize,
    max_block_bytes: usize,
    stopped: bool,
}

/// The node.
pub struct Node {
    pub config: NodeConfig,
    pub key: NodeKey,
    pub genesis: H256,
    author: H160,
    inner: Mutex<Inner>,
    /// Wakes `run` to stop (`test_stop`).
    stop: Notify,
}

impl Node {
    pub fn new(
        config: NodeConfig,
        key: NodeKey,
        log: Logger,
        metrics: Option<MetricsFile>,
        genesis: Block,
    ) -> Self {
        let now = Instant::now();
        let author = config.mining_author.unwrap_or_else(|| key.address());
        let genesis_hash = genesis.hash();
        let inner = Inner {
            log,
            metrics,
            graph: Graph::new(genesis),
            pool: Pool::new(config.tx_pool_size),
            seen: Seen::default(),
            txgen: None,
            sessions: HashMap::new(),
            next_session: 0,
            latency: HashMap::new(),
            wanted: HashMap::new(),
            dialing: HashSet::new(),
            orphan_ctx: HashMap::new(),
            tx_out: HashMap::new(),
            good_tps: Meter::new(now),
            referee_bound: config.referee_bound,
            max_block_bytes: config.max_block_size_in_bytes,
            stopped: false,
        };
        Self {
            config,
            key,
            genesis: genesis_hash,
            author,
            inner: Mutex::new(inner),
            stop: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs one INFO line now.
    pub fn info(&self, target: &str, msg: std::fmt::Arguments<'_>) {
        self.lock().log.log(Level::Info, thread::MAIN, target, msg);
    }

    /// Whether `metrics.log` is written.
    pub fn metrics_enabled(&self) -> bool {
        self.lock().metrics.is_some()
    }

    /// Asks the node to stop (`test_stop`).
    pub fn request_stop(&self) {
        self.stop.notify_one();
    }

    /// Resolves when a stop was requested.
    pub async fn stop_requested(&self) {
        self.stop.notified().await;
    }

    /// Final work before exit: log the records of blocks still waiting for a parent, then
    /// flush everything.
    pub fn shutdown(&self) {
        let mut g = self.lock();
        g.stopped = true;
        let orphans: Vec<EventRecord> = g.orphan_ctx.drain().map(|(_, (r, _))| r).collect();
        for rec in orphans {
            let msg = rec.message();
            g.log.log(
                Level::Debug,
                thread::MAIN,
                target::BLOCK_EVENT,
                format_args!("{msg}"),
            );
        }
        g.sessions.clear();
        g.log.log(
            Level::Info,
            thread::MAIN,
            target::CLIENT,
            format_args!("Conflux client shut down"),
        );
        g.log.flush();
    }

    // ----- sessions -----------------------------------------------------------------------

    /// Whether a connection dialled by `outbound` is the one to keep when both ends dial the
    /// same edge: the one whose dialler has the smaller node id. Both ends apply the same rule,
    /// so they keep the same connection.
    fn preferred(&self, peer: &NodeId, outbound: bool) -> bool {
        let me = self.key.node_id();
        if outbound { me < *peer } else { *peer < me }
    }

    /// Registers a session whose handshake proved `peer`; `None` means "close it" (a duplicate
    /// of a preferred session, or ourselves).
    pub fn register_session(
        &self,
        peer: NodeId,
        addr: String,
        outbound: bool,
        tx: mpsc::UnboundedSender<Outgoing>,
    ) -> Option<u64> {
        if peer == self.key.node_id() {
            return None;
        }
        let mut g = self.lock();
        if g.stopped {
            return None;
        }
        // A second connection to a peer replaces the first only if it is the preferred one.
        if let Some(existing) = g.sessions.get(&peer)
            && (!self.preferred(&peer, outbound) || self.preferred(&peer, existing.outbound))
        {
            return None;
        }
        g.next_session += 1;
        let id = g.next_session;
        g.sessions.insert(
            peer,
            Session {
                id,
                addr: addr.clone(),
                outbound,
                tx,
            },
        );
        g.tx_out.entry(peer).or_default();
        let status = Message::Status {
            terminals: g.graph.terminal_hashes(),
        };
        g.send(&peer, &status);
        g.log.log(
            Level::Debug,
            thread::IO,
            target::NETWORK,
            format_args!(
                "session created: node_id={peer:?}, address={addr}, outbound={outbound}, id={id}"
            ),
        );
        Some(id)
    }

    /// A session's connection ended.
    pub fn session_closed(&self, peer: &NodeId, id: u64) {
        let mut g = self.lock();
        if g.sessions.get(peer).is_some_and(|s| s.id == id) {
            g.sessions.remove(peer);
            g.tx_out.remove(peer);
            g.log.log(
                Level::Debug,
                thread::IO,
                target::NETWORK,
                format_args!("session closed: node_id={peer:?}, id={id}"),
            );
        }
    }

    /// Remembers a peer to keep connected; true when a dial should start now.
    pub fn want_peer(&self, peer: NodeId, addr: String) -> bool {
        let mut g = self.lock();
        g.wanted.insert(peer, addr);
        !g.sessions.contains_key(&peer) && g.dialing.insert(peer)
    }

    /// Forgets a peer and drops its session (`test_removeNode`).
    pub fn remove_peer(&self, peer: &NodeId) {
        let mut g = self.lock();
        g.wanted.remove(peer);
        g.sessions.remove(peer);
        g.tx_out.remove(peer);
    }

    /// A dial finished (either way).
    pub fn dial_done(&self, peer: &NodeId) {
        self.lock().dialing.remove(peer);
    }

    /// Wanted peers with neither a session nor a dial in progress; marks them dialling.
    pub fn peers_to_redial(&self) -> Vec<(NodeId, String)> {
        let mut g = self.lock();
        let g = &mut *g;
        let mut out = Vec::new();
        for (id, addr) in &g.wanted {
            if !g.sessions.contains_key(id) && g.dialing.insert(*id) {
                out.push((*id, addr.clone()));
            }
        }
        out
    }

    /// Sets the send delay to a peer.
    pub fn set_latency(&self, peer: NodeId, latency: Duration) {
        self.lock().latency.insert(peer, latency);
    }

    /// Peers with a finished handshake.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let g = self.lock();
        let mut out: Vec<PeerInfo> = g
            .sessions
            .iter()
            .map(|(id, s)| PeerInfo {
                id: s.id,
                addr: s.addr.clone(),
                node_id: *id,
            })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }

    // ----- messages -----------------------------------------------------------------------

    /// Handles one message from a peer.
    pub fn on_message(&self, from: NodeId, msg: Message, arrival: Arrival) {
        let mut g = self.lock();
        if g.stopped {
            return;
        }
        match msg {
            Message::NewBlock(b) => g.receive_block(Some(from), b, Path::Compact, arrival),
            Message::Blocks(bs) => {
                for b in bs {
                    g.receive_block(Some(from), b, Path::Full, arrival);
                }
            }
            Message::GetBlocks(hashes) => {
                let blocks: Vec<Arc<Block>> = hashes
                    .iter()
                    .take(256)
                    .filter_map(|h| g.graph.get(h).cloned())
                    .collect();
                if !blocks.is_empty() {
                    g.send(&from, &Message::Blocks(blocks));
                }
            }
            Message::Status { terminals } => {
                let unknown: Vec<H256> = terminals
                    .into_iter()
                    .filter(|h| !g.graph.is_known(h))
                    .collect();
                if !unknown.is_empty() {
                    g.send(&from, &Message::GetBlocks(unknown));
                }
            }
            Message::Transactions(batches) => {
                for b in batches {
                    g.add_batch(b, Some(from), thread::IO);
                }
            }
            Message::Hello { .. } | Message::Auth { .. } => {}
        }
    }

    // ----- blocks -------------------------------------------------------------------------

    /// `test_generateOneBlock`: packs the pool, makes a block on the best block, inserts it
    /// (sync graph and consensus) and relays it; returns its hash.
    pub fn generate_block(&self, max_txs: usize, max_bytes: usize) -> H256 {
        let start = Arrival::now();
        let mut g = self.lock();
        let (parent, referees) = g.graph.parent_and_referees(self.config.referee_bound);
        let batches = g.pool.pack(PackLimits {
            max_txs,
            // The node's own limit bounds what a caller may ask for: peers would refuse more.
            max_bytes: max_bytes.min(self.config.max_block_size_in_bytes),
            max_gas: self.config.target_block_gas_limit,
        });
        let now_secs = start.wall.timestamp().max(0) as u64;
        let header = BlockHeader {
            parent_hash: parent.hash(),
            height: parent.header.height + 1,
            timestamp: parent.header.timestamp.max(now_secs),
            author: self.author,
            transactions_root: transactions_root(&batches),
            deferred_state_root: consts::KECCAK_EMPTY,
            deferred_receipts_root: consts::KECCAK_EMPTY_LIST_RLP,
            deferred_logs_bloom_hash: consts::KECCAK_EMPTY_BLOOM,
            blame: 0,
            // The trivial test-mode PoW.
            difficulty: 4,
            adaptive: false,
            gas_limit: self.config.target_block_gas_limit,
            referee_hashes: referees,
            nonce: rand::rng().random(),
            hash: H256::default(),
            pow_hash: H256::default(),
            approximated_rlp_size: 0,
        }
        .seal();
        let block = Arc::new(Block { header, batches });
        let hash = block.hash();
        for b in &block.batches {
            for (_, h) in &b.sampled {
                g.log.log(
                    Level::Debug,
                    thread::RPC,
                    target::ASSEMBLER,
                    format_args!("Sampled transaction {h:?} in packing block"),
                );
            }
            g.pool.remove(b.key());
        }
        let mut rec = EventRecord::new(hash, start.wall, start.at);
        rec.set_zero(BlockEvent::HeaderReady);
        rec.set_zero(BlockEvent::BodyReady);
        rec.gauge("cmpt_recover_rate", 0);
        g.insert_and_cascade(block, rec, None, thread::RPC);
        hash
    }

    /// `cfx_getBestBlockHash` and friends.
    pub fn status(&self) -> Status {
        let g = self.lock();
        Status {
            best_hash: g.graph.best().hash(),
            epoch: g.graph.best_height(),
            block_count: g.graph.len(),
            pending_txs: g.pool.len(),
        }
    }

    /// `test_getGoodPut`.
    pub fn goodput(&self) -> String {
        self.lock().graph.goodput()
    }

    // ----- transactions -------------------------------------------------------------------

    /// Whether the generator has been given its accounts.
    pub fn txgen_started(&self) -> bool {
        self.lock().txgen.is_some()
    }

    /// Starts the generator with its accounts (`test_sendUsableGenesisAccounts`).
    pub fn start_txgen(&self, accounts: Vec<(u32, [u8; 32], H160)>) {
        let n = accounts.len();
        let generator = TxGen::new(
            accounts,
            self.config.txgen_batch_size,
            self.config.generate_tx_period,
            self.config.chain_id,
            Instant::now(),
        );
        let mut g = self.lock();
        if g.txgen.is_none() && self.config.generate_tx {
            g.txgen = Some(generator);
            g.log.log(
                Level::Info,
                thread::TXGEN,
                target::TXGEN,
                format_args!("txgen started with {n} genesis accounts"),
            );
        }
    }

    /// Generator tick: makes the transactions owed by now.
    pub fn tick_txgen(&self) {
        let mut g = self.lock();
        let epoch = g.graph.best_height();
        let batches = match g.txgen.as_mut() {
            Some(generator) => generator.due(Instant::now(), epoch),
            None => return,
        };
        for b in batches {
            g.add_batch(Arc::new(b), None, thread::TXGEN);
        }
    }

    /// Gossip tick (`send_tx_period_ms`): sends each peer the batches queued for it.
    pub fn flush_tx_gossip(&self) {
        let mut g = self.lock();
        let g = &mut *g;
        for (peer, queue) in g.tx_out.iter_mut() {
            if queue.is_empty() {
                continue;
            }
            let batches = std::mem::take(queue);
            if let Some(s) = g.sessions.get(peer) {
                let due = Instant::now() + g.latency.get(peer).copied().unwrap_or_default();
                let _ = s.tx.send(Outgoing {
                    due,
                    frame: Arc::new(Message::Transactions(batches).encode()),
                });
            }
        }
    }

    // ----- periodic -----------------------------------------------------------------------

    /// The 5-second INFO statistics line.
    pub fn log_statistics(&self) {
        let mut g = self.lock();
        let blocks = g.graph.len();
        let headers = blocks + g.graph.orphan_count();
        g.log.log(
            Level::Info,
            thread::STATISTICS,
            target::STATISTICS,
            format_args!(
                "Statistics: StatisticsInner {{ sync_graph: SyncGraphStatistics {{ \
                 inserted_block_count: {blocks}, inserted_header_count: {headers} }}, \
                 consensus_graph: ConsensusGraphStatistics {{ inserted_block_count: {blocks}, \
                 activated_block_count: {blocks}, processed_block_count: {blocks} }} }}"
            ),
        );
    }

    /// One `metrics.log` report.
    pub fn report_metrics(&self) {
        let mut g = self.lock();
        let g = &mut *g;
        let Some(file) = g.metrics.as_mut() else {
            return;
        };
        let now = Instant::now();
        let tps = g.good_tps.report("good_tps", now);
        let pool = g.pool.len();
        let senders = g.pool.senders();
        file.write(
            Utc::now().timestamp_millis(),
            &[
                (
                    "system_metrics",
                    vec![tps, format!("inflight_tx_pool_size: {pool}")],
                ),
                (
                    "txpool",
                    vec![
                        format!("stat_unpacked_txs: {pool}"),
                        format!("stat_ready_accounts: {senders}"),
                    ],
                ),
            ],
        );
    }

    /// Heartbeat: tells every peer our terminals (so a lost relay is repaired) and asks one
    /// peer for blocks that orphans still wait on.
    pub fn heartbeat(&self) {
        let g = self.lock();
        let status = Message::Status {
            terminals: g.graph.terminal_hashes(),
        };
        let peers: Vec<NodeId> = g.sessions.keys().copied().collect();
        let frame = Arc::new(status.encode());
        for p in &peers {
            g.send_frame(p, frame.clone());
        }
        let wanted = g.graph.wanted();
        if !wanted.is_empty() && !peers.is_empty() {
            let p = peers[rand::rng().random_range(0..peers.len())];
            g.send(&p, &Message::GetBlocks(wanted));
        }
    }

    /// Writes buffered log lines.
    pub fn flush_logs(&self) {
        self.lock().log.flush();
    }
}

impl Inner {
    fn send(&self, peer: &NodeId, msg: &Message) {
        self.send_frame(peer, Arc::new(msg.encode()));
    }

    fn send_frame(&self, peer: &NodeId, frame: Arc<Vec<u8>>) {
        if let Some(s) = self.sessions.get(peer) {
            let due = Instant::now() + self.latency.get(peer).copied().unwrap_or_default();
            let _ = s.tx.send(Outgoing { due, frame });
        }
    }

    /// Sends to every peer but `except`.
    fn broadcast(&self, msg: &Message, except: Option<NodeId>) {
        let frame = Arc::new(msg.encode());
        for peer in self.sessions.keys() {
            if Some(*peer) != except {
                self.send_frame(peer, frame.clone());
            }
        }
    }

    /// A batch from the generator (`from` = None) or a peer.
    fn add_batch(&mut self, batch: Arc<Batch>, from: Option<NodeId>, thread: &str) {
        let key = batch.key();
        if self.seen.contains(key) {
            return;
        }
        self.seen.insert(key, batch.count);
        if !self.pool.insert(batch.clone()) {
            return;
        }
        for (_, h) in &batch.sampled {
            self.log.log(
                Level::Debug,
                thread,
                target::TX_DATA,
                format_args!("Sampled transaction {h:?} in tx pool"),
            );
        }
        for (peer, queue) in self.tx_out.iter_mut() {
            if Some(*peer) != from {
                queue.push(batch.clone());
            }
        }
    }

    /// A block from a peer: log its arrival once, then insert it or park it until its
    /// dependencies arrive.
    fn receive_block(
        &mut self,
        from: Option<NodeId>,
        block: Arc<Block>,
        path: Path,
        arrival: Arrival,
    ) {
        let hash = block.hash();
        if self.graph.is_known(&hash) {
            return;
        }
        let mut rec = EventRecord::new(hash, arrival.wall, arrival.at);
        rec.set(BlockEvent::HeaderReady, Instant::now());
        let total = block.tx_count();
        let mut missing = 0usize;
        for b in &block.batches {
            let key = b.key();
            if !self.seen.contains(key) {
                missing += b.count as usize;
                self.seen.insert(key, b.count);
                for (_, h) in &b.sampled {
                    self.log.log(
                        Level::Debug,
                        thread::IO,
                        target::TX_DATA,
                        format_args!("Sampled transaction {h:?} in block"),
                    );
                }
            }
            self.pool.remove(key);
        }
        rec.set(BlockEvent::BodyReady, Instant::now());
        let permille = (missing * 1000).checked_div(total).unwrap_or(0);
        rec.gauge("cmpt_recover_rate", permille as u64);
        let ratio = match path {
            Path::Full => "1".to_owned(),
            Path::Compact if missing == 0 => "0".to_owned(),
            Path::Compact => format!("{:?}", missing as f64 / total as f64),
        };
        self.log.log(
            Level::Debug,
            thread::IO,
            target::SYNC_MSG,
            format_args!("transaction received by block: ratio={ratio}"),
        );
        self.log.log(
            Level::Debug,
            thread::IO,
            target::SYNC_MSG,
            format_args!(
                "new block received: block_header={:?}, tx_count={}, block_size={}",
                block.header,
                total,
                block.size()
            ),
        );
        let deps = self.graph.missing_deps(&block);
        if deps.is_empty() {
            self.insert_and_cascade(block, rec, from, thread::IO);
        } else {
            let ask: Vec<H256> = deps
                .iter()
                .filter(|h| !self.graph.is_known(h))
                .copied()
                .collect();
            self.graph.add_orphan(block, &deps);
            self.orphan_ctx.insert(hash, (rec, from));
            if let (Some(peer), false) = (from, ask.is_empty()) {
                self.send(&peer, &Message::GetBlocks(ask));
            }
        }
    }

    /// Inserts a block whose dependencies are present, then every orphan it unlocks: sync
    /// graph, consensus, event record, relay.
    fn insert_and_cascade(
        &mut self,
        block: Arc<Block>,
        rec: EventRecord,
        from: Option<NodeId>,
        thread: &str,
    ) {
        let mut queue = vec![(block, rec, from)];
        while let Some((block, mut rec, from)) = queue.pop() {
            if let Err(why) = self
                .graph
                .validate(&block, self.referee_bound, self.max_block_bytes)
            {
                self.log.log(
                    Level::Warn,
                    thread,
                    target::SYNC,
                    format_args!("Invalid block {:?} dropped: {why}", block.hash()),
                );
                continue;
            }
            let inserted = self.graph.insert(block.clone());
            rec.set(BlockEvent::SyncGraph, Instant::now());
            rec.stamp_sync_to_con(Instant::now());
            self.log.log(
                Level::Debug,
                thread,
                target::SYNC,
                format_args!(
                    "new block inserted into graph: block_header={:?}, tx_count={}, block_size={}",
                    block.header,
                    block.tx_count(),
                    block.size()
                ),
            );
            rec.stamp_sync_to_con(Instant::now());
            rec.gauge("con_worker_queue", queue.len() as u64);
            rec.stamp_sync_to_con(Instant::now());
            rec.set(BlockEvent::ConsensysGraphInsert, Instant::now());
            rec.stamp_sync_to_con(Instant::now());
            self.log.log(
                Level::Debug,
                thread::CONSENSUS,
                target::CONSENSUS,
                format_args!(
                    "insert new block into consensus: header_only=false block={:?}",
                    block.header
                ),
            );
            rec.stamp_sync_to_con(Instant::now());
            rec.set(BlockEvent::ConsensysGraphReady, Instant::now());
            rec.gauge("con_worker_successors", inserted.unlocked.len() as u64);
            self.good_tps.mark(block.tx_count() as u64);
            if inserted.on_pivot {
                // The stand-in executes nothing: epoch computation and the pool update are
                // immediate, but still stamped in order.
                rec.set(BlockEvent::ComputeEpoch, Instant::now());
                rec.set(BlockEvent::NotifyTxPool, Instant::now());
                rec.set(BlockEvent::TxPoolUpdated, Instant::now());
            }
            // Complete, or as complete as it will get (see the module docs): logged now.
            let msg = rec.message();
            self.log.log(
                Level::Debug,
                thread::CONSENSUS,
                target::BLOCK_EVENT,
                format_args!("{msg}"),
            );
            self.broadcast(&Message::NewBlock(block), from);
            for next in inserted.unlocked {
                let (rec, from) = self.orphan_ctx.remove(&next.hash()).unwrap_or_else(|| {
                    (
                        EventRecord::new(next.hash(), Utc::now(), Instant::now()),
                        None,
                    )
                });
                queue.push((next, rec, from));
            }
        }
    }
}
