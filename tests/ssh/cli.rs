//! `cfxm exec` as an operator runs it: a spec with a static inventory pointing at the test
//! sshd (three "hosts": one sshd on three loopback addresses), through the built binary.

use std::path::PathBuf;
use std::process::Command;

use super::sshd::Sshd;

const ADDRS: [&str; 3] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];

struct World {
    sshd: Sshd,
    dir: tempfile::TempDir,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl World {
    /// The inventory lists `ips` (ids `i-1`, `i-2`, ...); the key path is relative to it.
    fn new(extra_hosts: &[serde_json::Value]) -> World {
        let sshd = Sshd::start_with(&ADDRS, "");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::copy(sshd.user_key(), dir.path().join("keys/id")).unwrap();
        let mut hosts: Vec<serde_json::Value> = ADDRS
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                serde_json::json!({
                    "ip": ip, "nodes_per_host": 1, "ssh_user": sshd.user,
                    "ssh_key_path": "keys/id", "provider": "aliyun",
                    "region": if i < 2 { "ap-southeast-1" } else { "cn-hongkong" },
                    "zone": "z", "instance_id": format!("i-{}", i + 1), "private_ip": null
                })
            })
            .collect();
        hosts.extend_from_slice(extra_hosts);
        std::fs::write(
            dir.path().join("hosts.json"),
            serde_json::to_string_pretty(&hosts).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("spec.yaml"),
            format!(
                "name: fleet\nowner: ops\ncloud:\n  static:\n    inventory: hosts.json\n    ssh_port: {}\n",
                sshd.port
            ),
        )
        .unwrap();
        World { sshd, dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn exec(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_cfxm"))
            .arg("exec")
            .args(["-f", "spec.yaml", "--state-dir", "state"])
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let clean = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .replace(&self.dir.path().display().to_string(), "[DIR]")
                .replace(&self.sshd.port.to_string(), "[PORT]")
                .replace(&format!("{}@", self.sshd.user), "[USER]@")
        };
        Run {
            code: out.status.code(),
            stdout: clean(&out.stdout),
            stderr: clean(&out.stderr),
        }
    }
}

impl Run {
    /// Exit code, then stdout and stderr with lines sorted (hosts run in parallel, so their
    /// lines interleave in any order), for snapshots.
    fn transcript(&self) -> String {
        let sorted = |s: &str| {
            let mut lines: Vec<&str> = s.lines().collect();
            lines.sort();
            lines.join("\n")
        };
        format!(
            "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            sorted(&self.stdout),
            sorted(&self.stderr)
        )
    }
}

#[test]
fn runs_on_every_host_and_summarizes() {
    let w = World::new(&[]);
    let out = w.exec(&["--", "echo hello; echo from-stderr >&2"]);
    insta::assert_snapshot!(out.transcript(), @r"
    exit: Some(0)
    --- stdout
    i-1 | hello
    i-2 | hello
    i-3 | hello
    --- stderr
    3 ok, 0 failed, 0 unreachable
    i-1 | from-stderr
    i-2 | from-stderr
    i-3 | from-stderr
    ");
    // Host keys were recorded on first use, one line per host.
    let known = std::fs::read_to_string(w.path("state/fleet/known_hosts")).unwrap();
    assert_eq!(known.lines().count(), 3, "{known}");
}

#[test]
fn a_failing_host_fails_the_run_and_is_named() {
    let w = World::new(&[]);
    // SSH_CONNECTION names the server address the client reached.
    let out = w.exec(&[
        "--",
        "case $SSH_CONNECTION in *127.0.0.2*) echo broken >&2; exit 2;; esac; echo fine",
    ]);
    insta::assert_snapshot!(out.transcript(), @r"
    exit: Some(1)
    --- stdout
    i-1 | fine
    i-3 | fine
    --- stderr
    2 ok, 1 failed (exit 2), 0 unreachable
    i-2 ! failed: exit 2
    i-2 | broken
    ");
}

#[test]
fn unreachable_hosts_and_filters() {
    // A fourth host where nothing listens; a per-host command that would otherwise run.
    let dead = serde_json::json!({
        "ip": "127.0.0.9", "nodes_per_host": 1, "ssh_user": "ops", "ssh_key_path": "keys/id",
        "provider": "aliyun", "region": "eu-central-1", "zone": "z", "instance_id": "i-dead",
        "private_ip": null
    });
    let w = World::new(&[dead]);
    let out = w.exec(&["--hosts", "region=eu-*,i-1", "--", "true"]);
    assert_eq!(out.code, Some(1), "{}", out.transcript());
    assert_eq!(out.stdout, "");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines[0].starts_with(
            "i-dead ! unreachable: i-dead (ops@127.0.0.9:[PORT]): unreachable after 3 attempts in "
        ),
        "{}",
        out.stderr
    );
    assert!(
        lines[0].ends_with("Connection refused (os error 111)"),
        "{}",
        out.stderr
    );
    assert_eq!(lines[1], "1 ok, 0 failed, 1 unreachable");
    assert!(
        lines[2].starts_with("help: check that the host is running"),
        "{}",
        out.stderr
    );

    let none = w.exec(&["--hosts", "region=mars", "--", "true"]);
    assert_eq!(none.code, Some(1));
    assert!(
        none.stderr
            .contains("`--hosts region=mars` matches none of the 4 hosts"),
        "{}",
        none.stderr
    );
    assert!(
        none.stderr
            .contains("regions here: ap-southeast-1, cn-hongkong, eu-central-1"),
        "{}",
        none.stderr
    );
}

#[test]
fn put_and_get_copy_files_per_host() {
    let w = World::new(&[]);
    let remote_dir = w.sshd.remote_dir();
    let local = w.path("payload.txt");
    std::fs::write(&local, "payload\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    // The three hosts share one file system here, so give each its own remote path.
    let remote = format!("{}/up/file.txt", remote_dir.display());
    let put = w.exec(&["--hosts", "i-2", "--put", "payload.txt", &remote]);
    assert_eq!(put.code, Some(0), "{}", put.transcript());
    assert_eq!(
        put.stdout,
        format!("i-2 | put 8 bytes to `{remote}`\n")
            .replace(&w.dir.path().display().to_string(), "[DIR]")
    );
    assert_eq!(
        std::fs::read_to_string(remote_dir.join("up/file.txt")).unwrap(),
        "payload\n"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(remote_dir.join("up/file.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640, "the local mode is kept");
    }

    let get = w.exec(&["--get", &remote, "fetched"]);
    assert_eq!(get.code, Some(0), "{}", get.transcript());
    for id in ["i-1", "i-2", "i-3"] {
        let got = w.path(&format!("fetched/{id}/file.txt"));
        assert_eq!(std::fs::read_to_string(&got).unwrap(), "payload\n");
    }
    assert_eq!(get.stderr, "3 ok, 0 failed, 0 unreachable\n");

    let missing = w.exec(&["--hosts", "i-1", "--get", "/nonexistent/x", "fetched"]);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing
            .stderr
            .contains("copying `/nonexistent/x` failed: exit 1: no readable file /nonexistent/x"),
        "{}",
        missing.stderr
    );
    assert!(
        missing
            .stderr
            .contains("0 ok, 1 failed (transfer), 0 unreachable")
    );
}

#[test]
fn json_output_is_one_object_per_line() {
    let w = World::new(&[]);
    let out = w.exec(&[
        "--format",
        "json",
        "--hosts",
        "i-1,i-2",
        "--",
        "echo hi; exit 3",
    ]);
    assert_eq!(out.code, Some(1));
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 5, "{}", out.stdout);
    let outputs: Vec<_> = events.iter().filter(|e| e["event"] == "output").collect();
    assert_eq!(outputs.len(), 2);
    assert!(
        outputs
            .iter()
            .all(|e| e["line"] == "hi" && e["stream"] == "stdout")
    );
    let done: Vec<_> = events.iter().filter(|e| e["event"] == "done").collect();
    assert!(
        done.iter()
            .all(|e| e["status"] == "failed" && e["exit"] == 3)
    );
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["failed"], 2);
    assert_eq!(summary["summary"], "0 ok, 2 failed (exit 3), 0 unreachable");
}

#[test]
fn a_changed_host_key_is_refused_until_accepted() {
    let w = World::new(&[]);
    assert_eq!(w.exec(&["--hosts", "i-1", "--", "true"]).code, Some(0));
    let known = w.path("state/fleet/known_hosts");
    // Someone else's key for 127.0.0.1.
    let other = super::sshd::keygen(w.dir.path(), "other", "ed25519", "OpenSSH");
    let public = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let fields: Vec<&str> = public.split_whitespace().take(2).collect();
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", w.sshd.port, fields.join(" ")),
    )
    .unwrap();

    let refused = w.exec(&["--hosts", "i-1", "--", "true"]);
    assert_eq!(refused.code, Some(1));
    let lines: Vec<&str> = refused.stderr.lines().collect();
    assert!(
        lines[0].starts_with("i-1 ! unreachable: i-1 ([USER]@127.0.0.1:[PORT]): host key changed: the server presents SHA256:"),
        "{}",
        refused.stderr
    );
    assert!(
        lines[0].contains("but `state/fleet/known_hosts` line 1 records SHA256:"),
        "{}",
        refused.stderr
    );
    assert!(lines[2].starts_with("help: if the host was rebuilt or its address reused, re-run with `--accept-changed-host-keys`"), "{}", refused.stderr);

    let accepted = w.exec(&["--hosts", "i-1", "--accept-changed-host-keys", "--", "true"]);
    assert_eq!(accepted.code, Some(0), "{}", accepted.transcript());
    assert!(
        std::fs::read_to_string(&known)
            .unwrap()
            .contains(w.sshd.host_key_pub().split_whitespace().nth(1).unwrap())
    );
}

#[test]
fn local_hosts_run_in_their_slot() {
    let local = serde_json::json!({
        "ip": "127.0.0.1", "nodes_per_host": 1, "ssh_user": "root", "ssh_key_path": "",
        "provider": "local", "region": "local-1", "zone": "z", "instance_id": "slot-7",
        "private_ip": null
    });
    let w = World::new(&[local]);
    let out = w.exec(&["--hosts", "provider=local", "--", "pwd"]);
    // The local cloud creates slots; none exists yet.
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains(
            "local host slot `state/fleet/slots/slot-7` is not a directory (missing or replaced)"
        ),
        "{}",
        out.stderr
    );
    std::fs::create_dir_all(w.path("state/fleet/slots/slot-7")).unwrap();
    let out = w.exec(&["--hosts", "provider=local", "--", "pwd"]);
    assert_eq!(out.code, Some(0), "{}", out.transcript());
    assert_eq!(out.stdout, "slot-7 | [DIR]/state/fleet/slots/slot-7\n");
}

#[test]
fn usage_errors_change_nothing() {
    let w = World::new(&[]);
    let no_action = w.exec(&[]);
    assert_eq!(no_action.code, Some(1));
    assert!(
        no_action
            .stderr
            .contains("the following required arguments were not provided"),
        "{}",
        no_action.stderr
    );

    let both = w.exec(&["--put", "a", "b", "--", "true"]);
    assert_eq!(both.code, Some(1));
    assert!(
        both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );

    let bad_filter = w.exec(&["--hosts", "colour=red", "--", "true"]);
    assert_eq!(bad_filter.code, Some(1));
    assert!(
        bad_filter.stderr.contains("unknown field `colour`"),
        "{}",
        bad_filter.stderr
    );

    let missing_local = w.exec(&["--put", "nope.txt", "/tmp/x"]);
    assert_eq!(missing_local.code, Some(1));
    assert!(
        missing_local.stderr.contains("cannot read `nope.txt`"),
        "{}",
        missing_local.stderr
    );

    // A managed cloud with no hosts yet.
    std::fs::write(
        w.path("local.yaml"),
        "name: nothing-yet\nowner: ops\ncloud:\n  local:\n    instance_types: [{ name: t, nodes_per_host: 1 }]\n    regions: [{ name: r1, nodes: 1 }]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cfxm"))
        .args(["exec", "-f", "local.yaml", "--", "true"])
        .current_dir(w.dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "spec `nothing-yet` has no hosts yet: `state/nothing-yet/hosts.json` does not exist"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("run `cfxm apply` first"), "{stderr}");
    assert!(!w.path("state").exists(), "nothing is created");
}
