//! SSH throughput: cfxm's in-process transport against the system `ssh`/`scp` doing the same
//! work over the same loopback sshd. Prints a table; asserts nothing.
//!
//! Run: `cargo bench --bench ssh` (needs `openssh-server`; `scripts/test` installs it).
//! `CFXM_BENCH_MB` sets the transfer size (default 256).

#[path = "../tests/ssh/sshd.rs"]
mod sshd;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cfxm::ssh::{Exec, KnownHosts, PutSource, SshOptions, SshPool, SshTarget, Transport};
use sshd::Sshd;

/// Commands in flight at once, for both sides (below sshd's default `MaxSessions` of 10).
const IN_FLIGHT: usize = 8;

fn main() {
    let mb: usize = std::env::var("CFXM_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let sshd = Sshd::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("payload.bin");
    write_random(&file, mb << 20);
    let remote = sshd.remote_dir();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "cfxm ssh benchmark: loopback OpenSSH sshd, {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("{:<52} {:>16} {:>22}", "", "cfxm (russh)", "system ssh/scp");

    let pool = || {
        SshPool::new(
            KnownHosts::open(work.path().join("known_hosts"), false).unwrap(),
            SshOptions::default(),
        )
    };
    let target = |label: &str| SshTarget {
        label: label.into(),
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: sshd.user.clone(),
        key: sshd.user_key(),
    };
    let ssh = SystemSsh::new(&sshd, work.path());

    // 1. Many small commands over one connection.
    let n = 1000;
    let p = pool();
    let t: Arc<dyn Transport> = Arc::new(p.transport(target("h")));
    rt.block_on(t.run("true", None)).unwrap();
    let cfxm_rate = n as f64 / rt.block_on(parallel(n, IN_FLIGHT, t.clone())).as_secs_f64();
    ssh.start_master();
    let m = 300;
    let ssh_rate = m as f64 / ssh.parallel(m, IN_FLIGHT, true).as_secs_f64();
    ssh.stop_master();
    row(
        &format!("sessions/s, one connection, {IN_FLIGHT} in flight"),
        format!("{cfxm_rate:.0}"),
        format!("{ssh_rate:.0} (ControlMaster)"),
    );

    // 2. Latency of one command on a warm connection.
    let n = 200;
    let start = Instant::now();
    for _ in 0..n {
        rt.block_on(t.run("true", None)).unwrap();
    }
    let cfxm_ms = start.elapsed().as_secs_f64() * 1000.0 / n as f64;
    ssh.start_master();
    let m = 100;
    let ssh_ms = ssh.parallel(m, 1, true).as_secs_f64() * 1000.0 / m as f64;
    ssh.stop_master();
    row(
        "ms per command, sequential, warm connection",
        format!("{cfxm_ms:.2}"),
        format!("{ssh_ms:.2} (ControlMaster)"),
    );

    // 3. A new connection for every command (how the original tool works).
    let n = 200;
    let start = Instant::now();
    rt.block_on(async {
        let p = pool();
        let sem = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let t = p.transport(target(&format!("h{i}")));
                let sem = sem.clone();
                tokio::spawn(async move {
                    let _permit = sem.acquire().await.unwrap();
                    let t: &dyn Transport = &t;
                    t.run("true", None).await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(p.stats().connections, n as u64);
    });
    let cfxm_rate = n as f64 / start.elapsed().as_secs_f64();
    let m = 100;
    let ssh_rate = m as f64 / ssh.parallel(m, IN_FLIGHT, false).as_secs_f64();
    row(
        &format!("connections+command/s, new each, {IN_FLIGHT} in flight"),
        format!("{cfxm_rate:.0}"),
        format!("{ssh_rate:.0} (ssh per command)"),
    );

    // 4. Bulk transfers (best of two runs each).
    let bytes = (mb << 20) as f64;
    let rate = |d: Duration| bytes / d.as_secs_f64() / 1e6;
    let dest = remote.join("put.bin");
    let dest_s = dest.display().to_string();
    let cfxm_put = best(|| {
        let start = Instant::now();
        rt.block_on(t.put(PutSource::File(&file), &dest_s, 0o644))
            .unwrap();
        start.elapsed()
    });
    let scp_put = best(|| ssh.scp(&file.display().to_string(), &ssh.remote(&dest_s)));
    row(
        &format!("put {mb} MiB, MB/s"),
        format!("{:.0}", rate(cfxm_put)),
        format!("{:.0} (scp)", rate(scp_put)),
    );

    let back = work.path().join("back.bin");
    let cfxm_get = best(|| {
        let start = Instant::now();
        rt.block_on(t.get(&dest_s, &back)).unwrap();
        start.elapsed()
    });
    let scp_get = best(|| ssh.scp(&ssh.remote(&dest_s), &back.display().to_string()));
    row(
        &format!("get {mb} MiB, MB/s"),
        format!("{:.0}", rate(cfxm_get)),
        format!("{:.0} (scp)", rate(scp_get)),
    );

    let cfxm_stdin = best(|| {
        let start = Instant::now();
        rt.block_on(async {
            let mut f = tokio::fs::File::open(&file).await.unwrap();
            let status = t
                .exec(
                    Exec::new(
                        "cat > /dev/null",
                        &mut tokio::io::sink(),
                        &mut tokio::io::sink(),
                    )
                    .stdin(&mut f),
                )
                .await
                .unwrap();
            assert!(status.success());
        });
        start.elapsed()
    });
    let ssh_stdin = best(|| ssh.stdin_from(&file, "cat > /dev/null"));
    row(
        &format!("stdin stream {mb} MiB, MB/s"),
        format!("{:.0}", rate(cfxm_stdin)),
        format!("{:.0} (ssh < file)", rate(ssh_stdin)),
    );

    let cfxm_stdout = best(|| {
        let start = Instant::now();
        rt.block_on(async {
            let status = t
                .exec(Exec::new(
                    &format!("head -c {} /dev/zero", mb << 20),
                    &mut tokio::io::sink(),
                    &mut tokio::io::sink(),
                ))
                .await
                .unwrap();
            assert!(status.success());
        });
        start.elapsed()
    });
    let ssh_stdout = best(|| ssh.stdout_of(&format!("head -c {} /dev/zero", mb << 20)));
    row(
        &format!("stdout stream {mb} MiB, MB/s"),
        format!("{:.0}", rate(cfxm_stdout)),
        format!("{:.0} (ssh > /dev/null)", rate(ssh_stdout)),
    );
    println!(
        "(cipher: both sides negotiate chacha20-poly1305@openssh.com, the default of russh and OpenSSH)"
    );
}

fn row(what: &str, cfxm: String, ssh: String) {
    println!("{what:<52} {cfxm:>16} {ssh:>22}");
}

fn best(mut f: impl FnMut() -> Duration) -> Duration {
    let a = f();
    let b = f();
    a.min(b)
}

async fn parallel(n: usize, in_flight: usize, t: Arc<dyn Transport>) -> Duration {
    let sem = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let t = t.clone();
            let sem = sem.clone();
            tokio::spawn(async move {
                let _permit = sem.acquire().await.unwrap();
                t.run("true", None).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

fn write_random(path: &Path, len: usize) {
    use rand::RngExt;
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..len / block.len() {
        rand::rng().fill(&mut block[..]);
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
}

/// The system OpenSSH client with the same key, user and server.
struct SystemSsh {
    common: Vec<String>,
    control: String,
    dest: String,
    port: u16,
}

impl SystemSsh {
    fn new(sshd: &Sshd, dir: &Path) -> Self {
        let common = [
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-i",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([sshd.user_key().display().to_string()])
        .collect();
        SystemSsh {
            common,
            control: dir.join("cm").display().to_string(),
            dest: format!("{}@127.0.0.1", sshd.user),
            port: sshd.port,
        }
    }

    fn ssh(&self, mux: bool) -> Command {
        let mut c = Command::new("ssh");
        c.args(&self.common).args(["-p", &self.port.to_string()]);
        if mux {
            c.args(["-o", &format!("ControlPath={}", self.control)]);
        }
        c.stdin(Stdio::null()).stdout(Stdio::null());
        c
    }

    fn start_master(&self) {
        let status = self
            .ssh(true)
            .args([
                "-o",
                "ControlMaster=yes",
                "-o",
                "ControlPersist=120",
                "-f",
                "-N",
            ])
            .arg(&self.dest)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn stop_master(&self) {
        let _ = self
            .ssh(true)
            .args(["-O", "exit"])
            .arg(&self.dest)
            .stderr(Stdio::null())
            .status();
    }

    /// `n` runs of `ssh host true`, `in_flight` at once.
    fn parallel(&self, n: usize, in_flight: usize, mux: bool) -> Duration {
        let start = Instant::now();
        std::thread::scope(|s| {
            for w in 0..in_flight {
                s.spawn(move || {
                    for _ in (w..n).step_by(in_flight) {
                        let st = self.ssh(mux).arg(&self.dest).arg("true").status().unwrap();
                        assert!(st.success());
                    }
                });
            }
        });
        start.elapsed()
    }

    fn remote(&self, path: &str) -> String {
        format!("{}:{path}", self.dest)
    }

    fn scp(&self, from: &str, to: &str) -> Duration {
        let start = Instant::now();
        let st = Command::new("scp")
            .args(&self.common)
            .args(["-q", "-P", &self.port.to_string(), from, to])
            .status()
            .unwrap();
        assert!(st.success());
        start.elapsed()
    }

    fn stdin_from(&self, file: &Path, command: &str) -> Duration {
        let start = Instant::now();
        let st = self
            .ssh(false)
            .stdin(std::fs::File::open(file).unwrap())
            .arg(&self.dest)
            .arg(command)
            .status()
            .unwrap();
        assert!(st.success());
        start.elapsed()
    }

    fn stdout_of(&self, command: &str) -> Duration {
        let start = Instant::now();
        let st = self
            .ssh(false)
            .arg(&self.dest)
            .arg(command)
            .status()
            .unwrap();
        assert!(st.success());
        start.elapsed()
    }
}
