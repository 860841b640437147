//! Start-up failures: a clear one-line cause and fix, exit 1, nothing left running.

use std::net::TcpListener;
use std::process::Command;

fn devnode(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cfxm"))
        .arg("devnode")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_config_says_how_to_pass_one() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = devnode(dir.path(), &["--config", "nope.toml"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot read the node config `nope.toml`"),
        "{err}"
    );
    assert!(err.contains("cfxm devnode --config conflux.toml"), "{err}");
}

#[test]
fn a_bad_value_names_its_key_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("conflux.toml"), "tcp_port=\"eleven\"\n").unwrap();
    let (code, err) = devnode(dir.path(), &["--config", "conflux.toml"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("`tcp_port`: expected a whole number"), "{err}");
    assert!(!dir.path().join("log").exists());
    assert!(
        !dir.path().join("blockchain_data").exists(),
        "no key created"
    );
}

#[test]
fn a_taken_port_is_reported_with_the_key_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("conflux.toml"),
        format!(
            "tcp_port={port}\ndevnode_bind_address=\"127.0.0.1\"\nlog_file=\"./log/conflux.log\"\n"
        ),
    )
    .unwrap();
    let (code, err) = devnode(dir.path(), &["--config", "conflux.toml"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot bind the P2P port (`tcp_port`)"),
        "{err}"
    );
    assert!(err.contains("devnode_bind_address"), "{err}");
    assert!(
        !dir.path().join("log").exists(),
        "nothing logged before the ports are bound"
    );
}

#[test]
fn a_missing_genesis_secrets_file_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("conflux.toml"),
        "tcp_port=0\ngenesis_secrets=\"./missing.txt\"\nmode=\"test\"\n",
    )
    .unwrap();
    let (code, err) = devnode(dir.path(), &["--config", "conflux.toml"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot read the genesis secrets `./missing.txt`"),
        "{err}"
    );
    assert!(err.contains("--write-genesis-secrets"), "{err}");
}

#[test]
fn genesis_secrets_are_written_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = devnode(
        dir.path(),
        &["--write-genesis-secrets", "s.txt", "--count", "3"],
    );
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(dir.path().join("s.txt")).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(
        text.lines()
            .all(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
    );
    // The same count gives the same file: every node derives the same genesis.
    devnode(
        dir.path(),
        &["--write-genesis-secrets", "t.txt", "--count", "3"],
    );
    assert_eq!(
        text,
        std::fs::read_to_string(dir.path().join("t.txt")).unwrap()
    );
}
