//! What only SSH has: key formats, refused keys, host keys, unreachable hosts, connection reuse.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cfxm::ssh::{KnownHosts, SshOptions, SshPool, SshTarget, Transport, TransportError};

use super::sshd::{Sshd, keygen};
use super::{ssh_pool, ssh_target};

async fn echo(t: &dyn Transport) -> Result<Vec<u8>, TransportError> {
    t.run("echo ok", None).await
}

#[tokio::test]
async fn keys_in_openssh_and_pem_formats_rsa_and_ed25519() {
    let sshd = Sshd::start();
    let pool = ssh_pool(&sshd, SshOptions::default());
    let keys = [
        sshd.user_key(), // ed25519, OpenSSH
        sshd.authorize_new_key("rsa_openssh", "rsa", "OpenSSH"),
        sshd.authorize_new_key("rsa_pem", "rsa", "PEM"), // BEGIN RSA PRIVATE KEY
        sshd.authorize_new_key("rsa_pkcs8", "rsa", "PKCS8"), // BEGIN PRIVATE KEY
    ];
    let first_lines: Vec<String> = keys
        .iter()
        .map(|k| {
            std::fs::read_to_string(k)
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        first_lines,
        [
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----",
        ]
    );
    for key in keys {
        let t = pool.transport(SshTarget {
            key: key.clone(),
            ..ssh_target(&sshd, "h1", "127.0.0.1")
        });
        assert_eq!(echo(&t).await.unwrap(), b"ok\n", "{}", key.display());
    }
}

#[tokio::test]
async fn a_refused_key_is_a_clear_error_without_retries() {
    let sshd = Sshd::start();
    let pool = ssh_pool(&sshd, SshOptions::default());
    let stranger = keygen(sshd.dir.path(), "stranger", "ed25519", "OpenSSH");
    let t = pool.transport(SshTarget {
        key: stranger.clone(),
        ..ssh_target(&sshd, "h1", "127.0.0.1")
    });
    let start = Instant::now();
    let err = echo(&t).await.unwrap_err();
    assert!(matches!(err, TransportError::AuthRefused { .. }), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "no backoff for a refused key"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "h1 ({user}@127.0.0.1:{port}): the server refused key `{key}` for user `{user}`",
            user = sshd.user,
            port = sshd.port,
            key = stranger.display()
        )
    );
    assert!(err.is_unreachable());

    // A key cfxm cannot read at all says so, naming the file.
    let encrypted = sshd.dir.path().join("encrypted");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
        .arg(&encrypted)
        .output()
        .unwrap();
    assert!(out.status.success());
    let t = pool.transport(SshTarget {
        key: encrypted.clone(),
        ..ssh_target(&sshd, "h1", "127.0.0.1")
    });
    let err = echo(&t).await.unwrap_err();
    assert!(matches!(err, TransportError::Key { .. }), "{err:?}");
    assert!(err.to_string().contains("encrypted"), "{err}");
}

#[tokio::test]
async fn host_keys_are_trusted_on_first_use_and_a_change_is_refused() {
    let sshd = Sshd::start();
    let file = sshd.dir.path().join("state/known_hosts");
    let target = ssh_target(&sshd, "h1", "127.0.0.1");

    // First use records the key, in OpenSSH's format.
    let pool = SshPool::new(
        KnownHosts::open(&file, false).unwrap(),
        SshOptions::default(),
    );
    echo(&pool.transport(target.clone())).await.unwrap();
    let host_key = sshd.host_key_pub();
    let recorded = std::fs::read_to_string(&file).unwrap();
    let key_fields: Vec<&str> = host_key.split_whitespace().take(2).collect();
    assert_eq!(
        recorded,
        format!("[127.0.0.1]:{} {}\n", sshd.port, key_fields.join(" "))
    );

    // The host is "rebuilt": the file now records another key for it.
    let other = keygen(sshd.dir.path(), "other_host", "ed25519", "OpenSSH");
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_fields: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    let changed = format!("[127.0.0.1]:{} {}\n", sshd.port, other_fields.join(" "));
    std::fs::write(&file, &changed).unwrap();

    let pool = SshPool::new(
        KnownHosts::open(&file, false).unwrap(),
        SshOptions::default(),
    );
    let start = Instant::now();
    let err = echo(&pool.transport(target.clone())).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "no retries for a changed key"
    );
    let TransportError::HostKeyChanged {
        host,
        file: f,
        line,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(host, &format!("h1 ({}@127.0.0.1:{})", sshd.user, sshd.port));
    assert_eq!(f, &file.display().to_string());
    assert_eq!(*line, 1);
    let help = miette::Diagnostic::help(&err).unwrap().to_string();
    assert!(help.contains("--accept-changed-host-keys"), "{help}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        changed,
        "refusal changes nothing"
    );

    // Accepting rotations replaces the line.
    let pool = SshPool::new(
        KnownHosts::open(&file, true).unwrap(),
        SshOptions {
            accept_changed_host_keys: true,
            ..Default::default()
        },
    );
    echo(&pool.transport(target)).await.unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), recorded);
}

#[tokio::test]
async fn unreachable_hosts_fail_in_bounded_time() {
    let sshd = Sshd::start();
    let options = SshOptions {
        connect_timeout: Duration::from_millis(500),
        connect_attempts: 2,
        retry_backoff: Duration::from_millis(100),
        ..Default::default()
    };
    let pool = ssh_pool(&sshd, options);

    // Nothing listens: refused at once, retried once.
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = pool.transport(SshTarget {
        port: closed_port,
        ..ssh_target(&sshd, "gone", "127.0.0.1")
    });
    let start = Instant::now();
    let err = echo(&t).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(err, TransportError::Unreachable { attempts: 2, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "gone ({}@127.0.0.1:{closed_port}): unreachable after 2 attempts",
            sshd.user
        )),
        "{text}"
    );
    assert!(text.contains("refused"), "{text}");

    // Something accepts TCP but never speaks SSH (a hung host): each attempt times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let t = pool.transport(SshTarget {
        port: silent_port,
        ..ssh_target(&sshd, "hung", "127.0.0.1")
    });
    let start = Instant::now();
    let err = echo(&t).await.unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(15),
        "{took:?}"
    );
    assert!(
        err.to_string().contains("no SSH login within 0.5s"),
        "{err}"
    );
    assert!(err.is_unreachable() && err.is_retryable());
    drop(silent);
}

/// A handful of hosts (one sshd on four loopback addresses), 200 sessions at once: one
/// connection per host, never more sessions per connection than sshd's default `MaxSessions`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sessions_over_a_handful_of_connections() {
    let addrs = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let sshd = Sshd::start_with(&addrs, "");
    let pool = ssh_pool(&sshd, SshOptions::default());
    let hosts: Vec<Arc<dyn Transport>> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| Arc::new(pool.transport(ssh_target(&sshd, &format!("h{i}"), a))) as _)
        .collect();
    let start = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let t = hosts[i % hosts.len()].clone();
            tokio::spawn(async move {
                let out = t.output(&format!("echo {i}; sleep 0.2"), None).await?;
                Ok::<_, TransportError>(out.stdout)
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap().unwrap(), format!("{i}\n").into_bytes());
    }
    let took = start.elapsed();
    let stats = pool.stats();
    assert_eq!(stats.connections, 4);
    assert_eq!(stats.sessions, 200);
    assert_eq!(sshd.logins(), 4, "{}", sshd.log());
    // 50 sessions per host, 8 at a time, 0.2 s each: about 1.5 s, not 200 × 0.2 s. Loose,
    // because others share this machine; the benchmark measures.
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(!sshd.log().contains("refused"), "{}", sshd.log());
}

#[tokio::test]
async fn a_dead_connection_is_replaced() {
    let sshd = Sshd::start();
    let pool = ssh_pool(&sshd, SshOptions::default());
    let t = pool.transport(ssh_target(&sshd, "h1", "127.0.0.1"));
    echo(&t).await.unwrap();
    // Kill the server side of our connection (sshd's per-connection processes), not sshd.
    let children = sshd.children();
    assert!(!children.is_empty());
    for pid in children {
        // SAFETY: plain kill(2) of a child of the sshd this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    // The next call notices and reconnects (the first attempt may see the dead connection).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match echo(&t).await {
            Ok(out) => {
                assert_eq!(out, b"ok\n");
                break;
            }
            Err(e) => {
                assert!(matches!(e, TransportError::Disconnected { .. }), "{e:?}");
                assert!(Instant::now() < deadline, "{e}");
            }
        }
    }
    assert_eq!(pool.stats().connections, 2);

    // Disconnecting on purpose (one-shot fan-outs do) also reconnects on the next call.
    t.disconnect().await;
    echo(&t).await.unwrap();
    assert_eq!(pool.stats().connections, 3);
}
