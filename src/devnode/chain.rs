//! The block DAG: headers with the node's fields and `Debug` text, the sync graph (blocks wait
//! until their parent and referees are present), and a deterministic best-block rule.
//!
//! Best block: the tip of the GHOST pivot chain. From genesis, repeatedly step to the child
//! whose parent-edge subtree holds the most blocks, ties broken by the larger hash. The rule
//! depends only on the set of blocks, so every node holding the same blocks reports the same
//! `cfx_getBestBlockHash`, which both of the harness's sync waits rely on. It is not Conflux's
//! GHAST (no adaptive or heavy blocks, no blame): conflux-node.md §5.2.
//!
//! The pivot chain is kept incrementally: a new block changes it only below the deepest pivot
//! block among its ancestors, so an insert costs O(height) rather than a walk of the DAG.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use super::rlp;
use super::txpool::{Batch, BatchKey};
use super::types::{H160, H256, consts, keccak256, keccak256_parts};

/// A block header with the node's fields, in the node's order.
#[derive(Clone, PartialEq, Eq)]
pub struct BlockHeader {
    pub parent_hash: H256,
    pub height: u64,
    /// Unix time in whole seconds, as the node stamps headers.
    pub timestamp: u64,
    pub author: H160,
    pub transactions_root: H256,
    pub deferred_state_root: H256,
    pub deferred_receipts_root: H256,
    pub deferred_logs_bloom_hash: H256,
    pub blame: u32,
    pub difficulty: u64,
    pub adaptive: bool,
    pub gas_limit: u64,
    pub referee_hashes: Vec<H256>,
    pub nonce: u64,
    /// keccak256 of the header's RLP; set by [`BlockHeader::seal`].
    pub hash: H256,
    pub pow_hash: H256,
    pub approximated_rlp_size: usize,
}

impl BlockHeader {
    /// Computes the hash, PoW hash and encoded size from the other fields.
    pub fn seal(mut self) -> Self {
        let mut payload = Vec::with_capacity(400 + 33 * self.referee_hashes.len());
        rlp::bytes(&mut payload, &self.parent_hash.0);
        rlp::uint(&mut payload, self.height as u128);
        rlp::uint(&mut payload, self.timestamp as u128);
        rlp::bytes(&mut payload, &self.author.0);
        rlp::bytes(&mut payload, &self.transactions_root.0);
        rlp::bytes(&mut payload, &self.deferred_state_root.0);
        rlp::bytes(&mut payload, &self.deferred_receipts_root.0);
        rlp::bytes(&mut payload, &self.deferred_logs_bloom_hash.0);
        rlp::uint(&mut payload, self.blame as u128);
        rlp::uint(&mut payload, self.difficulty as u128);
        rlp::uint(&mut payload, self.adaptive as u128);
        rlp::uint(&mut payload, self.gas_limit as u128);
        let mut refs = Vec::with_capacity(33 * self.referee_hashes.len());
        for r in &self.referee_hashes {
            rlp::bytes(&mut refs, &r.0);
        }
        rlp::list(&mut payload, &refs);
        let problem = keccak256(&rlp::into_list(payload.clone()));
        rlp::uint(&mut payload, self.nonce as u128);
        self.pow_hash = keccak256_parts(&[&problem.0, &self.nonce.to_be_bytes()]);
        self.hash = keccak256(&rlp::into_list(payload.clone()));
        rlp::bytes(&mut payload, &self.pow_hash.0);
        self.approximated_rlp_size = rlp::into_list(payload).len();
        self
    }
}

impl fmt::Debug for BlockHeader {
    /// The node's derived `Debug` of `BlockHeader`, field for field (conflux-node.md §3.3).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BlockHeader {{ rlp_part: BlockHeaderRlpPart {{ parent_hash: {:?}, height: {}, \
             timestamp: {}, author: {:?}, transactions_root: {:?}, deferred_state_root: {:?}, \
             deferred_receipts_root: {:?}, deferred_logs_bloom_hash: {:?}, blame: {}, \
             difficulty: {}, adaptive: {}, gas_limit: {}, referee_hashes: {:?}, custom: [], \
             nonce: {}, pos_reference: None, base_price: None }}, hash: Some({:?}), \
             pow_hash: Some({:?}), approximated_rlp_size: {} }}",
            self.parent_hash,
            self.height,
            self.timestamp,
            self.author,
            self.transactions_root,
            self.deferred_state_root,
            self.deferred_receipts_root,
            self.deferred_logs_bloom_hash,
            self.blame,
            self.difficulty,
            self.adaptive,
            self.gas_limit,
            self.referee_hashes,
            self.nonce,
            self.hash,
            self.pow_hash,
            self.approximated_rlp_size
        )
    }
}

/// A block: its header and its transactions, named by batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub header: BlockHeader,
    pub batches: Vec<Arc<Batch>>,
}

impl Block {
    pub fn hash(&self) -> H256 {
        self.header.hash
    }

    /// Transactions in the block (`tx_count=`).
    pub fn tx_count(&self) -> usize {
        self.batches.iter().map(|b| b.count as usize).sum()
    }

    /// Sum of the transactions' RLP sizes (`block_size=`).
    pub fn size(&self) -> usize {
        self.batches.iter().map(|b| b.bytes as usize).sum()
    }

    /// Parent first, then referees.
    pub fn deps(&self) -> impl Iterator<Item = &H256> {
        std::iter::once(&self.header.parent_hash).chain(&self.header.referee_hashes)
    }
}

/// The transactions root of a body: keccak256 over the batches' names (the real root is a
/// Merkle root over transaction hashes, which devnodes do not hold for other nodes' txs).
pub fn transactions_root(batches: &[Arc<Batch>]) -> H256 {
    if batches.is_empty() {
        return consts::KECCAK_EMPTY;
    }
    let mut bytes = Vec::with_capacity(batches.len() * 22);
    for b in batches {
        bytes.extend_from_slice(&b.sender.to_be_bytes());
        bytes.extend_from_slice(&b.receiver.to_be_bytes());
        bytes.extend_from_slice(&b.first_nonce.to_be_bytes());
        bytes.extend_from_slice(&b.count.to_be_bytes());
        bytes.extend_from_slice(&b.bytes.to_be_bytes());
    }
    keccak256(&bytes)
}

/// The genesis block every node with the same chain id and genesis secrets shares.
pub fn genesis(chain_id: u32, secrets_digest: H256, gas_limit: u64) -> Block {
    let header = BlockHeader {
        parent_hash: H256::default(),
        height: 0,
        timestamp: 0,
        author: H160::default(),
        transactions_root: keccak256_parts(&[&chain_id.to_be_bytes(), &secrets_digest.0]),
        deferred_state_root: consts::KECCAK_EMPTY,
        deferred_receipts_root: consts::KECCAK_EMPTY_LIST_RLP,
        deferred_logs_bloom_hash: consts::KECCAK_EMPTY_BLOOM,
        blame: 0,
        difficulty: 0,
        adaptive: false,
        gas_limit,
        referee_hashes: Vec::new(),
        nonce: 0,
        hash: H256::default(),
        pow_hash: H256::default(),
        approximated_rlp_size: 0,
    }
    .seal();
    Block {
        header,
        batches: Vec::new(),
    }
}

const NONE: usize = usize::MAX;

struct GNode {
    block: Arc<Block>,
    parent: usize,
    referees: Vec<usize>,
    children: Vec<usize>,
    /// Blocks in this block's parent-edge subtree, itself included.
    weight: u64,
}

/// A block waiting for its parent or referees.
struct Orphan {
    block: Arc<Block>,
    missing: usize,
}

/// What inserting a block changed.
#[derive(Debug)]
pub struct Inserted {
    /// The block is the new best block (on the local pivot chain).
    pub on_pivot: bool,
    /// Orphans whose last missing dependency this was, ready to insert next.
    pub unlocked: Vec<Arc<Block>>,
}

/// The sync graph and its pivot chain.
pub struct Graph {
    nodes: Vec<GNode>,
    index: HashMap<H256, usize>,
    /// Pivot chain, by height.
    pivot: Vec<usize>,
    /// Blocks no other block names as parent or referee.
    terminals: HashSet<usize>,
    orphans: HashMap<H256, Orphan>,
    /// Missing block → orphans waiting for it.
    waiting: HashMap<H256, Vec<H256>>,
}

impl Graph {
    pub fn new(genesis: Block) -> Self {
        let hash = genesis.hash();
        let mut g = Self {
            nodes: vec![GNode {
                block: Arc::new(genesis),
                parent: NONE,
                referees: Vec::new(),
                children: Vec::new(),
                weight: 1,
            }],
            index: HashMap::new(),
            pivot: vec![0],
            terminals: HashSet::new(),
            orphans: HashMap::new(),
            waiting: HashMap::new(),
        };
        g.index.insert(hash, 0);
        g.terminals.insert(0);
        g
    }

    /// Blocks in the graph, genesis included (`test_getBlockCount`).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Blocks waiting for dependencies.
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }

    /// Whether the block is in the graph.
    pub fn contains(&self, hash: &H256) -> bool {
        self.index.contains_key(hash)
    }

    /// Whether the block is in the graph or waiting to enter it.
    pub fn is_known(&self, hash: &H256) -> bool {
        self.contains(hash) || self.orphans.contains_key(hash)
    }

    /// A block in the graph or waiting.
    pub fn get(&self, hash: &H256) -> Option<&Arc<Block>> {
        match self.index.get(hash) {
            Some(&i) => Some(&self.nodes[i].block),
            None => self.orphans.get(hash).map(|o| &o.block),
        }
    }

    /// The best block (pivot tip).
    pub fn best(&self) -> &Arc<Block> {
        &self.nodes[*self.pivot.last().expect("genesis")].block
    }

    /// The best block's height: the latest epoch number.
    pub fn best_height(&self) -> u64 {
        (self.pivot.len() - 1) as u64
    }

    /// The dependencies of `block` not yet in the graph.
    pub fn missing_deps(&self, block: &Block) -> Vec<H256> {
        let mut out: Vec<H256> = block
            .deps()
            .filter(|h| !self.contains(h))
            .copied()
            .collect();
        out.dedup();
        out
    }

    /// Parks a block until `missing` (its deps not in the graph) arrive.
    pub fn add_orphan(&mut self, block: Arc<Block>, missing: &[H256]) {
        let hash = block.hash();
        for m in missing {
            self.waiting.entry(*m).or_default().push(hash);
        }
        self.orphans.insert(
            hash,
            Orphan {
                block,
                missing: missing.len(),
            },
        );
    }

    /// Hashes wanted by orphans that nobody has delivered yet (neither in the graph nor
    /// waiting themselves).
    pub fn wanted(&self) -> Vec<H256> {
        self.waiting
            .keys()
            .filter(|h| !self.orphans.contains_key(*h))
            .copied()
            .collect()
    }

    /// Checks a block whose dependencies are in the graph as the sync graph does: height one
    /// above the parent, timestamp not before it, referees distinct and within the bound, body
    /// within the size limit.
    pub fn validate(
        &self,
        block: &Block,
        referee_bound: usize,
        max_bytes: usize,
    ) -> Result<(), &'static str> {
        let parent = &self.nodes[self.index[&block.header.parent_hash]]
            .block
            .header;
        let h = &block.header;
        if h.height != parent.height + 1 {
            return Err("height is not the parent's plus one");
        }
        if h.timestamp < parent.timestamp {
            return Err("timestamp is before the parent's");
        }
        if h.referee_hashes.len() > referee_bound {
            return Err("too many referees");
        }
        if block.size() > max_bytes {
            return Err("transactions exceed max_block_size_in_bytes");
        }
        let mut deps: Vec<&H256> = block.deps().collect();
        deps.sort();
        if deps.windows(2).any(|w| w[0] == w[1]) {
            return Err("parent and referees repeat a block");
        }
        Ok(())
    }

    /// Inserts a block whose parent and referees are all in the graph.
    pub fn insert(&mut self, block: Arc<Block>) -> Inserted {
        let hash = block.hash();
        debug_assert!(self.missing_deps(&block).is_empty());
        let idx = self.nodes.len();
        let parent = self.index[&block.header.parent_hash];
        let referees: Vec<usize> = block
            .header
            .referee_hashes
            .iter()
            .map(|h| self.index[h])
            .collect();
        self.terminals.remove(&parent);
        for r in &referees {
            self.terminals.remove(r);
        }
        self.terminals.insert(idx);
        self.nodes.push(GNode {
            block,
            parent,
            referees,
            children: Vec::new(),
            weight: 1,
        });
        self.nodes[parent].children.push(idx);
        self.index.insert(hash, idx);

        // Weights of every parent-chain ancestor grow by one; remember the deepest ancestor
        // on the pivot chain: the pivot can change only below it.
        let mut fork = NONE;
        let mut below_fork = idx;
        let mut a = parent;
        let mut prev = idx;
        while a != NONE {
            self.nodes[a].weight += 1;
            if fork == NONE && self.is_on_pivot(a) {
                fork = a;
                below_fork = prev;
            }
            prev = a;
            a = self.nodes[a].parent;
        }
        let fork_height = self.nodes[fork].block.header.height as usize;
        let switch = match self.pivot.get(fork_height + 1) {
            None => true,
            Some(&current) => self.heavier(below_fork, current),
        };
        if switch {
            self.pivot.truncate(fork_height + 1);
            let mut at = below_fork;
            loop {
                self.pivot.push(at);
                match self.heaviest_child(at) {
                    Some(c) => at = c,
                    None => break,
                }
            }
        }
        let on_pivot = *self.pivot.last().expect("genesis") == idx;

        let mut unlocked = Vec::new();
        if let Some(waiters) = self.waiting.remove(&hash) {
            for w in waiters {
                if let Some(o) = self.orphans.get_mut(&w) {
                    o.missing -= 1;
                    if o.missing == 0 {
                        unlocked.push(self.orphans.remove(&w).expect("present").block);
                    }
                }
            }
        }
        Inserted { on_pivot, unlocked }
    }

    fn is_on_pivot(&self, i: usize) -> bool {
        let h = self.nodes[i].block.header.height as usize;
        self.pivot.get(h) == Some(&i)
    }

    /// Whether block `a` beats block `b` as a pivot child: heavier, then larger hash.
    fn heavier(&self, a: usize, b: usize) -> bool {
        let (na, nb) = (&self.nodes[a], &self.nodes[b]);
        (na.weight, na.block.hash()) > (nb.weight, nb.block.hash())
    }

    fn heaviest_child(&self, i: usize) -> Option<usize> {
        self.nodes[i]
            .children
            .iter()
            .copied()
            .reduce(|best, c| if self.heavier(c, best) { c } else { best })
    }

    /// Parent and referees for a new block: the best block, and the other terminals (sorted,
    /// at most `bound`).
    pub fn parent_and_referees(&self, bound: usize) -> (Arc<Block>, Vec<H256>) {
        let best_idx = *self.pivot.last().expect("genesis");
        let mut refs: Vec<H256> = self
            .terminals
            .iter()
            .filter(|&&t| t != best_idx)
            .map(|&t| self.nodes[t].block.hash())
            .collect();
        refs.sort();
        refs.truncate(bound);
        (self.nodes[best_idx].block.clone(), refs)
    }

    /// The terminal hashes (what a peer needs to find what it misses).
    pub fn terminal_hashes(&self) -> Vec<H256> {
        let mut t: Vec<H256> = self
            .terminals
            .iter()
            .map(|&i| self.nodes[i].block.hash())
            .collect();
        t.sort();
        t
    }

    /// The blocks of each epoch 1..`end` (exclusive), in pivot order: epoch h holds the past
    /// of pivot block h minus the past of pivot block h-1.
    fn epochs(&self, end: usize) -> Vec<Vec<usize>> {
        let mut seen = vec![false; self.nodes.len()];
        seen[0] = true;
        let mut out = Vec::new();
        for h in 1..end.min(self.pivot.len()) {
            let mut epoch = Vec::new();
            let mut stack = vec![self.pivot[h]];
            while let Some(i) = stack.pop() {
                if std::mem::replace(&mut seen[i], true) {
                    continue;
                }
                epoch.push(i);
                let n = &self.nodes[i];
                stack.push(n.parent);
                stack.extend(&n.referees);
            }
            out.push(epoch);
        }
        out
    }

    /// `test_getGoodPut`: distinct transactions in the blocks of epochs 1..best over the span
    /// of their header timestamps (and over the 30–80 % slice of it), integer division, as the
    /// node computes it.
    pub fn goodput(&self) -> String {
        let blocks: Vec<&Block> = self
            .epochs(self.pivot.len() - 1)
            .into_iter()
            .flatten()
            .map(|i| &*self.nodes[i].block)
            .collect();
        let (mut min, mut max) = (u64::MAX, 0u64);
        for b in &blocks {
            let t = b.header.timestamp;
            if t > 0 && t < min {
                min = t;
            }
            max = max.max(t);
        }
        if blocks.is_empty() || max == min || min == u64::MAX {
            return "-1".into();
        }
        let distinct = |keep: &dyn Fn(u64) -> bool| {
            let mut keys: HashSet<BatchKey> = HashSet::new();
            let mut n = 0u64;
            for b in blocks.iter().filter(|b| keep(b.header.timestamp)) {
                for batch in &b.batches {
                    if keys.insert(batch.key()) {
                        n += batch.count as u64;
                    }
                }
            }
            n
        };
        let full = distinct(&|_| true) / (max - min);
        let lower = min + ((max - min) as f64 * 0.3) as u64;
        let upper = min + ((max - min) as f64 * 0.8) as u64;
        if upper != lower {
            let ranged = distinct(&|t| t > lower && t < upper) / (upper - lower);
            format!("full: {full}, ranged: {ranged}")
        } else {
            format!("full: {full}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(parent: &Block, referees: &[&Block], nonce: u64, ts: u64) -> Arc<Block> {
        let header = BlockHeader {
            parent_hash: parent.hash(),
            height: parent.header.height + 1,
            timestamp: ts,
            referee_hashes: referees.iter().map(|r| r.hash()).collect(),
            nonce,
            ..parent.header.clone()
        }
        .seal();
        Arc::new(Block {
            header,
            batches: vec![],
        })
    }

    fn g0() -> (Graph, Arc<Block>) {
        let genb = genesis(10, H256::default(), 120_000_000);
        (Graph::new(genb.clone()), Arc::new(genb))
    }

    #[test]
    fn header_debug_text_has_the_node_fields_in_order() {
        let (_, genb) = g0();
        let b = block(&genb, &[&genb], 7, 1_700_000_000);
        let text = format!("{:?}", b.header);
        let fields = [
            "BlockHeader { rlp_part: BlockHeaderRlpPart { parent_hash: 0x",
            ", height: 1, timestamp: 1700000000, author: 0x",
            ", transactions_root: 0x",
            ", deferred_state_root: 0x",
            ", deferred_receipts_root: 0x",
            ", deferred_logs_bloom_hash: 0x",
            ", blame: 0, difficulty: 0, adaptive: false, gas_limit: 120000000, referee_hashes: [0x",
            "], custom: [], nonce: 7, pos_reference: None, base_price: None }, hash: Some(0x",
            "), pow_hash: Some(0x",
            "), approximated_rlp_size: ",
        ];
        let mut at = 0;
        for f in fields {
            let pos = text[at..]
                .find(f)
                .unwrap_or_else(|| panic!("{f} in {text}"));
            at += pos + f.len();
        }
        assert!(text.ends_with(" }"));
        assert!(text.contains(&format!("hash: Some({:?})", b.hash())));
        assert_eq!(
            format!("{:?}", b.header.referee_hashes),
            format!("[{:?}]", genb.hash())
        );
    }

    #[test]
    fn the_heavier_subtree_wins_whatever_the_arrival_order() {
        let (_, genb) = g0();
        let a1 = block(&genb, &[], 1, 10);
        let b1 = block(&genb, &[], 2, 10);
        let b2 = block(&b1, &[], 3, 11);
        let a2 = block(&a1, &[], 4, 11);
        let a3 = block(&a2, &[&b2], 5, 12);
        let all = [a1, b1, b2, a2, a3];
        let orders: [[usize; 5]; 3] = [[0, 1, 2, 3, 4], [1, 2, 0, 3, 4], [0, 3, 1, 2, 4]];
        let mut bests = HashSet::new();
        for order in orders {
            let (mut g, _) = g0();
            let mut pending: Vec<Arc<Block>> = order.iter().map(|&i| all[i].clone()).collect();
            while !pending.is_empty() {
                let b = pending.remove(0);
                if g.missing_deps(&b).is_empty() {
                    g.insert(b);
                } else {
                    pending.push(b);
                }
            }
            assert_eq!(g.len(), 6);
            bests.insert(g.best().hash());
            assert_eq!(g.best_height(), 3);
        }
        assert_eq!(bests.len(), 1, "same blocks, same best block");
        assert!(bests.contains(&all[4].hash()));
    }

    #[test]
    fn ties_go_to_the_larger_hash_and_switch_on_weight() {
        let (mut g, genb) = g0();
        let x = block(&genb, &[], 1, 10);
        let y = block(&genb, &[], 2, 10);
        g.insert(x.clone());
        g.insert(y.clone());
        let larger = x.hash().max(y.hash());
        assert_eq!(g.best().hash(), larger);
        let smaller = if larger == x.hash() { &y } else { &x };
        let z = block(smaller, &[], 3, 11);
        let out = g.insert(z.clone());
        assert!(out.on_pivot);
        assert_eq!(g.best().hash(), z.hash());
        let (parent, refs) = g.parent_and_referees(200);
        assert_eq!(parent.hash(), z.hash());
        assert_eq!(refs, vec![larger]);
    }

    #[test]
    fn invalid_blocks_are_refused() {
        let (g, genb) = g0();
        let ok = block(&genb, &[], 1, 10);
        assert_eq!(g.validate(&ok, 200, 1000), Ok(()));
        let mut bad = (*ok).clone();
        bad.header.height = 5;
        assert!(g.validate(&bad, 200, 1000).is_err());
        let mut dup = (*ok).clone();
        dup.header.referee_hashes = vec![genb.hash()];
        assert!(g.validate(&dup, 200, 1000).is_err());
        let mut big = (*ok).clone();
        big.batches = vec![Arc::new(Batch {
            sender: 0,
            receiver: 0,
            first_nonce: 0,
            count: 10,
            bytes: 1001,
            sampled: vec![],
        })];
        assert!(g.validate(&big, 200, 1000).is_err());
        let mut early = (*block(&ok, &[], 2, 9)).clone();
        early.header.parent_hash = genb.hash();
        early.header.height = 1;
        early.header.timestamp = 0;
        assert_eq!(g.validate(&early, 200, 1000), Ok(()), "genesis time is 0");
    }

    #[test]
    fn orphans_wait_for_their_dependencies() {
        let (mut g, genb) = g0();
        let a = block(&genb, &[], 1, 10);
        let b = block(&a, &[], 2, 11);
        let c = block(&b, &[], 3, 12);
        for blk in [&c, &b] {
            let missing = g.missing_deps(blk);
            g.add_orphan(blk.clone(), &missing);
        }
        assert!(g.is_known(&c.hash()) && !g.contains(&c.hash()));
        assert_eq!(g.wanted(), vec![a.hash()]);
        let out = g.insert(a.clone());
        assert_eq!(out.unlocked.len(), 1);
        let out = g.insert(out.unlocked[0].clone());
        assert_eq!(out.unlocked[0].hash(), c.hash());
        g.insert(c.clone());
        assert_eq!(
            (g.len(), g.orphan_count(), g.best().hash()),
            (4, 0, c.hash())
        );
    }

    #[test]
    fn goodput_counts_distinct_transactions_over_the_timestamp_span() {
        let (mut g, genb) = g0();
        let batch = |sender| {
            Arc::new(Batch {
                sender,
                receiver: 0,
                first_nonce: 0,
                count: 10,
                bytes: 1000,
                sampled: vec![],
            })
        };
        let mut parent = genb.clone();
        assert_eq!(g.goodput(), "-1");
        for (i, ts) in [100u64, 105, 110, 115, 120].into_iter().enumerate() {
            let mut b = (*block(&parent, &[], i as u64, ts)).clone();
            b.batches = vec![batch(i as u32), batch(0)];
            let b = Arc::new(b);
            g.insert(b.clone());
            parent = b;
        }
        // Epochs 1..5 exclude the best block: timestamps 100..115 hold 40 distinct txs (40 / 15);
        // the 30–80 % slice (104, 112) holds the blocks at 105 and 110, 30 txs (30 / 8).
        assert_eq!(g.goodput(), "full: 2, ranged: 3");
    }
}
