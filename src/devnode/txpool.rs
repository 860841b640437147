//! Transactions: the built-in generator, the pool, and what the node has already seen.
//!
//! The generator follows the node's (`crates/transactiongen`): after
//! `test_sendUsableGenesisAccounts(start)` it owns genesis accounts
//! `[start, start + txgen_account_count)`, and at one transaction per `generate_tx_period_us`
//! picks a sender and a receiver among them and makes `txgen_batch_size` zero-value 21000-gas
//! transfers with consecutive nonces. Each transaction is RLP-encoded as the node encodes it
//! (`[[nonce, gas_price, gas, to, value, storage_limit, epoch_height, chain_id, data], v, r, s]`,
//! about 106 bytes) and hashed with keccak256, so sizes and hashes are realistic.
//!
//! What a stand-in cannot afford is real ECDSA for 17,000 transactions a second across many
//! processes on one machine: `r` and `s` are keccak-derived from the sender's secret and the
//! payload, so they have the real sizes but do not verify (conflux-node.md §5.2).
//!
//! Batches are the unit of gossip and packing. A batch names its transactions by (sender,
//! nonces) and carries its byte size and the hashes of its sampled transactions (hash byte 0 with
//! `b & 0xFE == 0`, 1/128), so other nodes never re-hash or hold 100-byte transactions: a
//! devnode's memory and CPU stay proportional to batches, not bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngExt;

use super::rlp;
use super::types::{H160, H256, keccak256, keccak256_parts};

/// Gas of a simple transfer.
pub const TX_GAS: u64 = 21_000;

/// Whether a transaction is sampled for the "Sampled transaction" log lines.
pub fn is_sampled(hash: &H256) -> bool {
    hash.0[0] & 0xFE == 0
}

/// Transactions from one sender with consecutive nonces, named without their bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Genesis account index of the sender.
    pub sender: u32,
    /// Genesis account index of the receiver.
    pub receiver: u32,
    pub first_nonce: u64,
    pub count: u16,
    /// Sum of the transactions' RLP sizes.
    pub bytes: u32,
    /// (offset in the batch, hash) of the sampled transactions.
    pub sampled: Vec<(u16, H256)>,
}

/// Identifies a batch: its sender and first nonce.
pub type BatchKey = (u32, u64);

impl Batch {
    pub fn key(&self) -> BatchKey {
        (self.sender, self.first_nonce)
    }

    pub fn gas(&self) -> u64 {
        TX_GAS * self.count as u64
    }
}

/// A genesis account the generator sends from.
struct Account {
    index: u32,
    secret: [u8; 32],
    address: H160,
    nonce: u64,
}

/// The RLP of one signed transfer, and its hash.
fn signed_transfer(
    secret: &[u8; 32],
    nonce: u64,
    to: &H160,
    epoch_height: u64,
    chain_id: u32,
) -> (usize, H256) {
    let mut unsigned = Vec::with_capacity(64);
    rlp::uint(&mut unsigned, nonce as u128);
    rlp::uint(&mut unsigned, 1); // gas price
    rlp::uint(&mut unsigned, TX_GAS as u128);
    rlp::bytes(&mut unsigned, &to.0);
    rlp::uint(&mut unsigned, 0); // value
    rlp::uint(&mut unsigned, 0); // storage limit
    rlp::uint(&mut unsigned, epoch_height as u128);
    rlp::uint(&mut unsigned, chain_id as u128);
    rlp::bytes(&mut unsigned, &[]); // data
    let unsigned = rlp::into_list(unsigned);

    let r = keccak256_parts(&[secret, &unsigned]);
    let mut s = keccak256(&r.0).0;
    s[0] &= 0x7f; // a low-s value, as signers normalise
    let mut signed = Vec::with_capacity(unsigned.len() + 70);
    signed.extend_from_slice(&unsigned);
    rlp::uint(&mut signed, (r.0[31] & 1) as u128);
    rlp::uint_be(&mut signed, &r.0);
    rlp::uint_be(&mut signed, &s);
    let signed = rlp::into_list(signed);
    (signed.len(), keccak256(&signed))
}

/// The built-in transaction generator.
pub struct TxGen {
    accounts: Vec<Account>,
    batch_size: u16,
    period: Duration,
    chain_id: u32,
    started: Instant,
    generated: u64,
}

impl TxGen {
    /// A generator over `(genesis index, secret, address)` accounts.
    pub fn new(
        accounts: Vec<(u32, [u8; 32], H160)>,
        batch_size: usize,
        period: Duration,
        chain_id: u32,
        now: Instant,
    ) -> Self {
        Self {
            accounts: accounts
                .into_iter()
                .map(|(index, secret, address)| Account {
                    index,
                    secret,
                    address,
                    nonce: 0,
                })
                .collect(),
            batch_size: batch_size.clamp(1, u16::MAX as usize) as u16,
            period: period.max(Duration::from_nanos(1)),
            chain_id,
            started: now,
            generated: 0,
        }
    }

    /// The batches owed by `now` at the configured pace. A stall never causes a burst of more
    /// than one second's worth: the pace restarts from the backlog's end instead.
    pub fn due(&mut self, now: Instant, epoch_height: u64) -> Vec<Batch> {
        if self.accounts.is_empty() {
            return Vec::new();
        }
        let owed_total = (now.duration_since(self.started).as_nanos() / self.period.as_nanos())
            .min(u64::MAX as u128) as u64;
        let per_second = (1_000_000_000u128 / self.period.as_nanos()).max(1) as u64;
        if owed_total.saturating_sub(self.generated) > per_second {
            self.generated = owed_total - per_second;
        }
        let mut out = Vec::new();
        let mut rng = rand::rng();
        while owed_total >= self.generated + self.batch_size as u64 {
            let s = rng.random_range(0..self.accounts.len());
            let r = rng.random_range(0..self.accounts.len());
            let to = self.accounts[r].address;
            let receiver = self.accounts[r].index;
            let acc = &mut self.accounts[s];
            let mut batch = Batch {
                sender: acc.index,
                receiver,
                first_nonce: acc.nonce,
                count: self.batch_size,
                bytes: 0,
                sampled: Vec::new(),
            };
            for i in 0..self.batch_size {
                let (len, hash) =
                    signed_transfer(&acc.secret, acc.nonce, &to, epoch_height, self.chain_id);
                batch.bytes += len as u32;
                if is_sampled(&hash) {
                    batch.sampled.push((i, hash));
                }
                acc.nonce += 1;
            }
            self.generated += self.batch_size as u64;
            out.push(batch);
        }
        out
    }
}

/// The nonces seen per sender, as merged ranges (gossip arrives nearly in order, so each sender
/// holds one or two ranges).
#[derive(Default)]
pub struct Seen {
    by_sender: HashMap<u32, Vec<(u64, u64)>>,
}

impl Seen {
    /// Whether this batch was seen (in the pool or a block).
    pub fn contains(&self, key: BatchKey) -> bool {
        self.by_sender
            .get(&key.0)
            .is_some_and(|rs| rs.iter().any(|&(a, b)| a <= key.1 && key.1 < b))
    }

    /// Marks `count` nonces from `key.1` seen.
    pub fn insert(&mut self, key: BatchKey, count: u16) {
        let ranges = self.by_sender.entry(key.0).or_default();
        let (mut a, mut b) = (key.1, key.1 + count as u64);
        ranges.retain(|&(x, y)| {
            if y < a || x > b {
                true
            } else {
                a = a.min(x);
                b = b.max(y);
                false
            }
        });
        let pos = ranges.partition_point(|&(x, _)| x < a);
        ranges.insert(pos, (a, b));
    }
}

/// The unpacked transactions, in arrival order.
pub struct Pool {
    batches: HashMap<BatchKey, Arc<Batch>>,
    /// Arrival order; keys of removed batches stay until they reach the front.
    order: VecDeque<BatchKey>,
    txs: usize,
    /// Batches per sender (the `stat_ready_accounts` gauge counts senders).
    senders: HashMap<u32, u32>,
    capacity: usize,
}

/// What a block may hold.
#[derive(Debug, Clone, Copy)]
pub struct PackLimits {
    pub max_txs: usize,
    pub max_bytes: usize,
    pub max_gas: u64,
}

impl Pool {
    pub fn new(capacity: usize) -> Self {
        Self {
            batches: HashMap::new(),
            order: VecDeque::new(),
            txs: 0,
            senders: HashMap::new(),
            capacity,
        }
    }

    /// Adds a batch; false when the pool is full (`tx_pool_size`) or already has it.
    pub fn insert(&mut self, batch: Arc<Batch>) -> bool {
        if self.txs + batch.count as usize > self.capacity {
            return false;
        }
        let key = batch.key();
        if self.batches.contains_key(&key) {
            return false;
        }
        self.txs += batch.count as usize;
        *self.senders.entry(batch.sender).or_default() += 1;
        self.batches.insert(key, batch);
        self.order.push_back(key);
        true
    }

    /// Removes a batch (it was packed into a block).
    pub fn remove(&mut self, key: BatchKey) {
        if let Some(b) = self.batches.remove(&key) {
            self.txs -= b.count as usize;
            if let Some(n) = self.senders.get_mut(&b.sender) {
                *n -= 1;
                if *n == 0 {
                    self.senders.remove(&b.sender);
                }
            }
        }
        // Drop stale keys at the front so `order` stays about as long as the pool.
        while let Some(k) = self.order.front() {
            if self.batches.contains_key(k) {
                break;
            }
            self.order.pop_front();
        }
    }

    /// The oldest batches that fit the limits together (the pool is unchanged).
    pub fn pack(&self, limits: PackLimits) -> Vec<Arc<Batch>> {
        let (mut txs, mut bytes, mut gas) = (0usize, 0usize, 0u64);
        let mut out = Vec::new();
        for key in &self.order {
            let Some(b) = self.batches.get(key) else {
                continue;
            };
            if txs + b.count as usize > limits.max_txs
                || bytes + b.bytes as usize > limits.max_bytes
                || gas + b.gas() > limits.max_gas
            {
                break;
            }
            txs += b.count as usize;
            bytes += b.bytes as usize;
            gas += b.gas();
            out.push(b.clone());
        }
        out
    }

    /// Transactions in the pool.
    pub fn len(&self) -> usize {
        self.txs
    }

    /// Senders with transactions in the pool.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(accounts: u32) -> TxGen {
        let accs = (0..accounts)
            .map(|i| {
                let mut s = [0u8; 32];
                s[31] = i as u8 + 1;
                (100 + i, s, H160([i as u8; 20]))
            })
            .collect();
        TxGen::new(accs, 10, Duration::from_millis(1), 10, Instant::now())
    }

    #[test]
    fn transfers_have_realistic_sizes() {
        let (len, _) = signed_transfer(&[1; 32], 5, &H160([2; 20]), 1234, 10);
        assert!((100..=112).contains(&len), "{len}");
    }

    #[test]
    fn generator_keeps_pace_and_nonces() {
        let mut g = generator(3);
        let t0 = g.started;
        assert!(g.due(t0, 0).is_empty());
        let batches = g.due(t0 + Duration::from_millis(95), 7);
        assert_eq!(batches.len(), 9, "95 txs owed → 9 whole batches");
        let mut next: HashMap<u32, u64> = HashMap::new();
        for b in &batches {
            assert_eq!(b.count, 10);
            assert!((100..103).contains(&b.sender));
            let n = next.entry(b.sender).or_default();
            assert_eq!(b.first_nonce, *n, "consecutive nonces per sender");
            *n += 10;
            assert!(b.bytes >= 1000 && b.bytes <= 1120);
        }
        // A long stall yields at most one second's worth.
        let late = g.due(t0 + Duration::from_secs(60), 7);
        assert_eq!(late.len(), 100);
    }

    #[test]
    fn sampling_is_one_in_128() {
        let mut g = generator(5);
        let t0 = g.started;
        let batches = g.due(t0 + Duration::from_millis(1000), 0);
        let total: usize = batches.iter().map(|b| b.count as usize).sum();
        let sampled: usize = batches.iter().map(|b| b.sampled.len()).sum();
        assert_eq!(total, 1000);
        assert!((1..=25).contains(&sampled), "{sampled} of 1000");
        assert!(
            batches
                .iter()
                .flat_map(|b| &b.sampled)
                .all(|(_, h)| is_sampled(h))
        );
    }

    #[test]
    fn seen_merges_ranges() {
        let mut s = Seen::default();
        s.insert((1, 10), 10);
        assert!(s.contains((1, 10)) && s.contains((1, 19)));
        assert!(!s.contains((1, 20)) && !s.contains((1, 0)) && !s.contains((2, 10)));
        s.insert((1, 0), 10);
        s.insert((1, 30), 10);
        s.insert((1, 20), 10);
        assert_eq!(s.by_sender[&1], vec![(0, 40)]);
    }

    #[test]
    fn pool_packs_oldest_within_limits() {
        let mut pool = Pool::new(35);
        let batch = |sender, bytes| {
            Arc::new(Batch {
                sender,
                receiver: 0,
                first_nonce: 0,
                count: 10,
                bytes,
                sampled: vec![],
            })
        };
        assert!(pool.insert(batch(1, 1000)));
        assert!(pool.insert(batch(2, 1000)));
        assert!(!pool.insert(batch(2, 1000)), "duplicate");
        assert!(pool.insert(batch(3, 1000)));
        assert!(!pool.insert(batch(4, 1000)), "full");
        assert_eq!((pool.len(), pool.senders()), (30, 3));
        let limits = PackLimits {
            max_txs: 1000,
            max_bytes: 2500,
            max_gas: u64::MAX,
        };
        let packed: Vec<u32> = pool.pack(limits).iter().map(|b| b.sender).collect();
        assert_eq!(packed, [1, 2]);
        pool.remove((1, 0));
        let gas_bound = PackLimits {
            max_bytes: usize::MAX,
            max_gas: 10 * TX_GAS,
            ..limits
        };
        let packed: Vec<u32> = pool.pack(gas_bound).iter().map(|b| b.sender).collect();
        assert_eq!(packed, [2]);
        assert_eq!(pool.len(), 20);
    }
}
