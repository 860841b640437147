//! The ssh area: the `Transport` suite against a real OpenSSH sshd on loopback and against the
//! local transport (same tests, both fixtures), SSH-only failure modes (keys, host keys,
//! unreachable hosts), node JSON-RPC through the SSH connection, and `cfxm exec` through the
//! built binary on a static inventory.
//!
//! sshd is required: without it these tests fail with "run scripts/test" (they never skip).

mod cli;
mod local_only;
mod ssh_only;
mod sshd;
mod suite;
mod tunnel;

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use cfxm::ssh::{KnownHosts, LocalTransport, SshOptions, SshPool, SshTarget, Transport};
use rand::RngExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

use sshd::Sshd;

/// One transport and where its remote files go.
pub struct Fixture {
    pub transport: Arc<dyn Transport>,
    /// A remote directory for the test's files, as the transport addresses it.
    pub remote: String,
    /// The same directory seen from this machine (both fixtures live on it).
    pub remote_local: PathBuf,
    /// A local scratch directory.
    pub local: tempfile::TempDir,
    pub pool: Option<Arc<SshPool>>,
    pub sshd: Option<Sshd>,
    _slot: Option<tempfile::TempDir>,
}

impl Fixture {
    /// A remote path inside the test's directory.
    pub fn remote_path(&self, name: &str) -> String {
        format!("{}/{name}", self.remote)
    }
}

pub fn ssh_target(sshd: &Sshd, label: &str, host: &str) -> SshTarget {
    SshTarget {
        label: label.into(),
        host: host.into(),
        port: sshd.port,
        user: sshd.user.clone(),
        key: sshd.user_key(),
    }
}

pub fn ssh_pool(sshd: &Sshd, options: SshOptions) -> Arc<SshPool> {
    let kh = KnownHosts::open(sshd.dir.path().join("known_hosts"), false).unwrap();
    SshPool::new(kh, options)
}

pub fn ssh_fixture() -> Fixture {
    let sshd = Sshd::start();
    let pool = ssh_pool(&sshd, SshOptions::default());
    let transport = Arc::new(pool.transport(ssh_target(&sshd, "h1", "127.0.0.1")));
    let remote_local = sshd.remote_dir();
    Fixture {
        transport,
        remote: remote_local.display().to_string(),
        remote_local,
        local: tempfile::tempdir().unwrap(),
        pool: Some(pool),
        sshd: Some(sshd),
        _slot: None,
    }
}

pub fn local_fixture() -> Fixture {
    let slot = tempfile::tempdir().unwrap();
    let transport = Arc::new(LocalTransport::new("h1", slot.path()));
    let remote_local = slot.path().join("work");
    std::fs::create_dir_all(&remote_local).unwrap();
    Fixture {
        transport,
        // Relative: local remote paths are relative to the slot.
        remote: "work".into(),
        remote_local,
        local: tempfile::tempdir().unwrap(),
        pool: None,
        sshd: None,
        _slot: Some(slot),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_file(path: &Path) -> String {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

/// Writes `len` random bytes to `path`; returns their SHA-256.
pub fn random_file(path: &Path, len: usize) -> String {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut h = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        rand::rng().fill(&mut block[..n]);
        h.update(&block[..n]);
        f.write_all(&block[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
    hex(&h.finalize())
}

/// An endless-looking input: `len` random bytes generated as they are read, hashed on the way.
pub struct RandomReader {
    left: usize,
    hash: Sha256,
}

impl RandomReader {
    pub fn new(len: usize) -> Self {
        RandomReader {
            left: len,
            hash: Sha256::new(),
        }
    }

    pub fn sha256(self) -> String {
        hex(&self.hash.finalize())
    }
}

impl AsyncRead for RandomReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.left.min(buf.remaining()).min(256 * 1024);
        let dst = buf.initialize_unfilled_to(n);
        rand::rng().fill(&mut dst[..]);
        self.hash.update(&dst[..]);
        buf.advance(n);
        self.left -= n;
        Poll::Ready(Ok(()))
    }
}
