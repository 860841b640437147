//! A real `moto_server` per test: started from the test venv on a free loopback port, found ready
//! by looking for its listening socket in `/proc/net/tcp` (never by an HTTP request: with
//! signature checking on, every request counts against `INITIAL_NO_AUTH_ACTION_COUNT`;
//! toolchain.md §5), and killed by pid when dropped.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The test venv: `CFXM_TEST_VENV`, else `<repo>/target/test-venv` (what `scripts/test` makes).
pub fn venv() -> PathBuf {
    std::env::var_os("CFXM_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv"))
}

pub struct Moto {
    child: Child,
    pub port: u16,
    /// Holds moto's log until the server is gone.
    _dir: tempfile::TempDir,
}

impl Moto {
    /// moto with its defaults (no signature checking).
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// moto with extra environment, e.g. `INITIAL_NO_AUTH_ACTION_COUNT`.
    pub fn start_with(env: &[(&str, &str)]) -> Moto {
        let bin = venv().join("bin/moto_server");
        assert!(
            bin.is_file(),
            "{} is missing: run scripts/test (it installs the pinned moto[server] from \
             scripts/requirements-test.txt into target/test-venv)",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut last_log = String::new();
        // A free port can be taken between our probe and moto's bind; try a few.
        for attempt in 1..=5 {
            let port = free_port();
            let log = dir.path().join(format!("moto-{attempt}.log"));
            let out = File::create(&log).expect("a log file");
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().expect("moto_server starts");
            if wait_listening(&mut child, port, Duration::from_secs(60)) {
                return Moto {
                    child,
                    port,
                    _dir: dir,
                };
            }
            // It exited (port taken) or never listened.
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("moto_server did not start; its last log:\n{last_log}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls for a LISTEN socket on 127.0.0.1:port; false if moto exits or time runs out.
fn wait_listening(child: &mut Child, port: u16, limit: Duration) -> bool {
    let needle = format!("0100007F:{port:04X} 00000000:0000 0A");
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        if tcp.contains(&needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
