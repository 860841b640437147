//! Peer connections: the listener, dials, the identity-proving handshake, and per-session
//! reader and writer tasks.
//!
//! Each session has its own writer task fed by an unbounded queue of frames stamped with the
//! earliest time they may leave (`test_addLatency`); a delayed peer only delays its own queue,
//! never another peer's. Readers hand decoded messages to [`Node::on_message`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::identity::recover_prehash;
use super::node::{Arrival, Node, Outgoing};
use super::types::{H256, NodeId, keccak256};
use super::wire::{MAX_FRAME, Message, WireError};

/// How long a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a dial may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection failed before or during the handshake.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("handshake timed out")]
    Timeout,
    #[error("peer is on another chain or genesis")]
    WrongChain,
    #[error("peer is {got:?}, expected {expected:?}")]
    WrongNode { expected: NodeId, got: NodeId },
    #[error("peer's signature does not prove its node id")]
    BadProof,
    #[error("unexpected message during the handshake")]
    Unexpected,
}

async fn read_frame(r: &mut BufReader<OwnedReadHalf>) -> Result<Vec<u8>, PeerError> {
    let len = r.read_u32().await? as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(WireError("bad frame length").into());
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(body)
}

/// Runs the handshake; returns the proven peer id.
async fn handshake(
    node: &Node,
    r: &mut BufReader<OwnedReadHalf>,
    w: &mut OwnedWriteHalf,
    expected: Option<NodeId>,
) -> Result<NodeId, PeerError> {
    let challenge = H256(rand::rng().random());
    let hello = Message::Hello {
        node_id: node.key.node_id(),
        chain_id: node.config.chain_id,
        genesis: node.genesis,
        challenge,
    };
    w.write_all(&hello.encode()).await?;
    let Message::Hello {
        node_id: peer,
        chain_id,
        genesis,
        challenge: peer_challenge,
    } = Message::decode(&read_frame(r).await?)?
    else {
        return Err(PeerError::Unexpected);
    };
    if chain_id != node.config.chain_id || genesis != node.genesis {
        return Err(PeerError::WrongChain);
    }
    if let Some(expected) = expected
        && expected != peer
    {
        return Err(PeerError::WrongNode {
            expected,
            got: peer,
        });
    }
    let auth = Message::Auth {
        signature: node.key.sign(&peer_challenge.0),
    };
    w.write_all(&auth.encode()).await?;
    let Message::Auth { signature } = Message::decode(&read_frame(r).await?)? else {
        return Err(PeerError::Unexpected);
    };
    if recover_prehash(&keccak256(&challenge.0), &signature) != Some(peer) {
        return Err(PeerError::BadProof);
    }
    Ok(peer)
}

/// Runs a connection: handshake, registration, then the reader loop until it ends.
async fn run_connection(
    node: Arc<Node>,
    stream: TcpStream,
    addr: String,
    outbound: bool,
    expected: Option<NodeId>,
) -> Result<(), PeerError> {
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let peer = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake(&node, &mut r, &mut w, expected),
    )
    .await
    .map_err(|_| PeerError::Timeout)??;
    let (tx, rx) = mpsc::unbounded_channel();
    let Some(id) = node.register_session(peer, addr, outbound, tx) else {
        // A duplicate of the connection both ends keep; closing it is the expected outcome.
        return Ok(());
    };
    tokio::spawn(write_loop(w, rx));
    let result = async {
        loop {
            let body = read_frame(&mut r).await?;
            let arrival = Arrival::now();
            let msg = Message::decode(&body)?;
            node.on_message(peer, msg, arrival);
        }
    }
    .await;
    node.session_closed(&peer, id);
    result
}

/// Writes queued frames, each no earlier than its due time.
async fn write_loop(mut w: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(out) = rx.recv().await {
        tokio::time::sleep_until(out.due.into()).await;
        if w.write_all(&out.frame).await.is_err() {
            return;
        }
    }
    // The session was dropped (replaced, removed or shut down): close our side.
    let _ = w.shutdown().await;
}

/// Accepts peers forever.
pub async fn accept_loop(node: Arc<Node>, listener: TcpListener) {
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            let _ = run_connection(node, stream, addr.to_string(), false, None).await;
        });
    }
}

/// Dials `peer` at `addr` and runs the connection.
pub async fn dial(node: Arc<Node>, peer: NodeId, addr: String) {
    let connected = match resolve(&addr) {
        Some(sa) => tokio::time::timeout(CONNECT_TIMEOUT, connect(&node, sa))
            .await
            .ok()
            .and_then(Result::ok),
        None => None,
    };
    let Some(stream) = connected else {
        node.dial_done(&peer);
        return;
    };
    let node2 = node.clone();
    // The dial counts as in progress until the handshake ends; the session then keeps the
    // peer connected, and the reconnect timer takes over if it ends.
    let conn = tokio::spawn(run_connection(node2, stream, addr, true, Some(peer)));
    tokio::task::yield_now().await;
    let handshake_window = tokio::time::sleep(HANDSHAKE_TIMEOUT);
    tokio::pin!(handshake_window);
    tokio::select! {
        _ = conn => {}
        _ = &mut handshake_window => {}
    }
    node.dial_done(&peer);
}

/// Connects from the bind address when one is set, so peers see this node's own address (on
/// the local cloud, its host slot's loopback address) rather than 127.0.0.1.
async fn connect(node: &Node, to: SocketAddr) -> std::io::Result<TcpStream> {
    let from = node.config.bind_address;
    if from.is_unspecified() || from.is_ipv4() != to.is_ipv4() {
        return TcpStream::connect(to).await;
    }
    let socket = if to.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

fn resolve(addr: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs().ok()?.next()
}

/// Re-dials wanted peers that have no session, every second.
pub async fn redial_loop(node: Arc<Node>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (peer, addr) in node.peers_to_redial() {
            tokio::spawn(dial(node.clone(), peer, addr));
        }
    }
}
