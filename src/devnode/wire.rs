//! The devnode peer protocol: length-prefixed binary frames over TCP.
//!
//! Devnodes speak only to devnodes (a stand-in cannot speak Conflux's encrypted RLPx-like
//! protocol, conflux-node.md §5.2), so the format is ours: `u32` big-endian length, one type
//! byte, then the payload. A session starts with a handshake that proves each side's node id:
//! both send `Hello` (id, chain, genesis, a random challenge), then `Auth`, a recoverable
//! signature over keccak256 of the other side's challenge.

use std::sync::Arc;

use super::chain::{Block, BlockHeader};
use super::txpool::Batch;
use super::types::{H160, H256, NodeId};

/// Largest frame accepted (a full 2 MB block is far below it).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Protocol version in `Hello`.
pub const VERSION: u8 = 1;

const MAGIC: [u8; 4] = *b"CFXM";

/// A message between devnodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello {
        node_id: NodeId,
        chain_id: u32,
        genesis: H256,
        challenge: H256,
    },
    Auth {
        signature: [u8; 65],
    },
    /// The sender's terminal blocks (sent when a session starts, and periodically).
    Status {
        terminals: Vec<H256>,
    },
    /// A new block, pushed whole (header and transaction names): the compact-block path.
    NewBlock(Arc<Block>),
    GetBlocks(Vec<H256>),
    /// Blocks answering `GetBlocks`: the full-block path.
    Blocks(Vec<Arc<Block>>),
    Transactions(Vec<Arc<Batch>>),
}

/// A malformed frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed devnode message: {0}")]
pub struct WireError(pub &'static str);

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn hashes(&mut self, hs: &[H256]) {
        self.u32(hs.len() as u32);
        for h in hs {
            self.raw(&h.0);
        }
    }
    fn batch(&mut self, b: &Batch) {
        self.u32(b.sender);
        self.u32(b.receiver);
        self.u64(b.first_nonce);
        self.u16(b.count);
        self.u32(b.bytes);
        self.u16(b.sampled.len() as u16);
        for (i, h) in &b.sampled {
            self.u16(*i);
            self.raw(&h.0);
        }
    }
    fn block(&mut self, b: &Block) {
        let h = &b.header;
        self.raw(&h.parent_hash.0);
        self.u64(h.height);
        self.u64(h.timestamp);
        self.raw(&h.author.0);
        self.raw(&h.transactions_root.0);
        self.raw(&h.deferred_state_root.0);
        self.raw(&h.deferred_receipts_root.0);
        self.raw(&h.deferred_logs_bloom_hash.0);
        self.u32(h.blame);
        self.u64(h.difficulty);
        self.u8(h.adaptive as u8);
        self.u64(h.gas_limit);
        self.hashes(&h.referee_hashes);
        self.u64(h.nonce);
        self.u32(b.batches.len() as u32);
        for batch in &b.batches {
            self.batch(batch);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.arr()?))
    }
    fn h256(&mut self) -> Result<H256, WireError> {
        Ok(H256(self.arr()?))
    }
    /// A count of items at least `min_size` bytes each, checked against what is left so a
    /// hostile count cannot make us allocate.
    fn count(&mut self, min_size: usize) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.0.len() {
            return Err(WireError("count exceeds frame"));
        }
        Ok(n)
    }
    fn hashes(&mut self) -> Result<Vec<H256>, WireError> {
        let n = self.count(32)?;
        (0..n).map(|_| self.h256()).collect()
    }
    fn batch(&mut self) -> Result<Batch, WireError> {
        let sender = self.u32()?;
        let receiver = self.u32()?;
        let first_nonce = self.u64()?;
        let count = self.u16()?;
        let bytes = self.u32()?;
        let n = self.u16()? as usize;
        if n * 34 > self.0.len() {
            return Err(WireError("count exceeds frame"));
        }
        let sampled = (0..n)
            .map(|_| Ok((self.u16()?, self.h256()?)))
            .collect::<Result<_, WireError>>()?;
        Ok(Batch {
            sender,
            receiver,
            first_nonce,
            count,
            bytes,
            sampled,
        })
    }
    fn block(&mut self) -> Result<Block, WireError> {
        let header = BlockHeader {
            parent_hash: self.h256()?,
            height: self.u64()?,
            timestamp: self.u64()?,
            author: H160(self.arr()?),
            transactions_root: self.h256()?,
            deferred_state_root: self.h256()?,
            deferred_receipts_root: self.h256()?,
            deferred_logs_bloom_hash: self.h256()?,
            blame: self.u32()?,
            difficulty: self.u64()?,
            adaptive: self.u8()? != 0,
            gas_limit: self.u64()?,
            referee_hashes: self.hashes()?,
            nonce: self.u64()?,
            hash: H256::default(),
            pow_hash: H256::default(),
            approximated_rlp_size: 0,
        }
        // The hash is recomputed from the content, never taken from the peer.
        .seal();
        let n = self.count(24)?;
        let batches = (0..n)
            .map(|_| self.batch().map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Block { header, batches })
    }
}

impl Message {
    /// The frame: length, type, payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(vec![0, 0, 0, 0]);
        match self {
            Message::Hello {
                node_id,
                chain_id,
                genesis,
                challenge,
            } => {
                w.u8(1);
                w.raw(&MAGIC);
                w.u8(VERSION);
                w.raw(&node_id.0);
                w.u32(*chain_id);
                w.raw(&genesis.0);
                w.raw(&challenge.0);
            }
            Message::Auth { signature } => {
                w.u8(2);
                w.raw(signature);
            }
            Message::Status { terminals } => {
                w.u8(3);
                w.hashes(terminals);
            }
            Message::NewBlock(b) => {
                w.u8(4);
                w.block(b);
            }
            Message::GetBlocks(hs) => {
                w.u8(5);
                w.hashes(hs);
            }
            Message::Blocks(bs) => {
                w.u8(6);
                w.u32(bs.len() as u32);
                for b in bs {
                    w.block(b);
                }
            }
            Message::Transactions(batches) => {
                w.u8(7);
                w.u32(batches.len() as u32);
                for b in batches {
                    w.batch(b);
                }
            }
        }
        let len = (w.0.len() - 4) as u32;
        w.0[..4].copy_from_slice(&len.to_be_bytes());
        w.0
    }

    /// Decodes a frame's body (type and payload, without the length).
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader(body);
        let msg = match r.u8()? {
            1 => {
                if r.arr::<4>()? != MAGIC {
                    return Err(WireError("not a devnode peer"));
                }
                if r.u8()? != VERSION {
                    return Err(WireError("unsupported protocol version"));
                }
                Message::Hello {
                    node_id: NodeId(r.arr()?),
                    chain_id: r.u32()?,
                    genesis: r.h256()?,
                    challenge: r.h256()?,
                }
            }
            2 => Message::Auth {
                signature: r.arr()?,
            },
            3 => Message::Status {
                terminals: r.hashes()?,
            },
            4 => Message::NewBlock(Arc::new(r.block()?)),
            5 => Message::GetBlocks(r.hashes()?),
            6 => {
                let n = r.count(200)?;
                Message::Blocks(
                    (0..n)
                        .map(|_| r.block().map(Arc::new))
                        .collect::<Result<_, _>>()?,
                )
            }
            7 => {
                let n = r.count(24)?;
                Message::Transactions(
                    (0..n)
                        .map(|_| r.batch().map(Arc::new))
                        .collect::<Result<_, _>>()?,
                )
            }
            _ => return Err(WireError("unknown message type")),
        };
        if !r.0.is_empty() {
            return Err(WireError("trailing bytes"));
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::super::chain::genesis;
    use super::*;

    fn round_trip(m: Message) {
        let frame = m.encode();
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(Message::decode(&frame[4..]).unwrap(), m);
    }

    #[test]
    fn every_message_round_trips() {
        let genb = genesis(10, H256([3; 32]), 1);
        let mut b = genb.clone();
        b.header.referee_hashes = vec![H256([1; 32]), H256([2; 32])];
        b.header = b.header.seal();
        b.batches = vec![Arc::new(Batch {
            sender: 1,
            receiver: 2,
            first_nonce: 30,
            count: 10,
            bytes: 1060,
            sampled: vec![(3, H256([0; 32]))],
        })];
        let b = Arc::new(b);
        round_trip(Message::Hello {
            node_id: NodeId([9; 64]),
            chain_id: 10,
            genesis: genb.hash(),
            challenge: H256([4; 32]),
        });
        round_trip(Message::Auth { signature: [5; 65] });
        round_trip(Message::Status {
            terminals: vec![H256([6; 32])],
        });
        round_trip(Message::NewBlock(b.clone()));
        round_trip(Message::GetBlocks(vec![b.hash()]));
        round_trip(Message::Blocks(vec![b.clone(), Arc::new(genb)]));
        round_trip(Message::Transactions(b.batches.clone()));
    }

    #[test]
    fn garbage_is_rejected_not_panicked_on() {
        for body in [
            &[][..],
            &[9],
            &[3, 0xff, 0xff, 0xff, 0xff],
            &[1, b'X', b'X', b'X', b'X'],
            &[7, 0, 0, 0, 1, 0],
        ] {
            assert!(Message::decode(body).is_err(), "{body:?}");
        }
    }
}
