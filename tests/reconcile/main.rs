//! The reconciler area: `cfxm plan`, `apply` and `destroy` (the built binary) against the
//! in-process emulator, which speaks the Aliyun wire protocol and keeps the world the tests
//! inspect: exact counts, tags on everything, decoys untouched, throttling and 5xx survived, a
//! killed apply resumed without duplicates, stale plans and concurrent applies refused, and
//! plan snapshots for a small and a 10,000-node spec.
//!
//! Each test starts its own emulator on `127.0.0.1:0` and its own temporary directory (spec,
//! key, state), so tests run in parallel. Hosts boot on a fast emulated clock, and cfxm polls
//! every 100 ms (`--poll-interval`, hidden), so an apply takes about a second.

mod apply;
mod crash;
mod destroy;
mod faults;
mod saved;
mod snapshots;

use std::path::{Path, PathBuf};
use std::process::Command;

use cfxm::emulator::{Emulator, EmulatorConfig, EmulatorHandle, Knobs, ResourceView};
use cfxm::provider::aliyun::{Client, ClientConfig, Endpoints, Tag};

/// Flags every command gets in these tests: fast polls, and cfxm's own rate budget raised
/// for an emulator that does not throttle unless told to.
pub const FAST: [&str; 4] = ["--poll-interval", "100ms", "--rate-scale", "4"];

/// Hosts boot in 2 s of emulated time at 20× speed: 100 ms.
pub fn quick_boot() -> Knobs {
    Knobs {
        clock_speed: 20.0,
        boot_delay_ms: 2_000,
        network_delay_ms: 1_000,
        release_delay_ms: 1_000,
        ..Knobs::default()
    }
}

pub struct World {
    pub emu: EmulatorHandle,
    pub dir: tempfile::TempDir,
}

pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn transcript(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn ok(self) -> Outcome {
        assert_eq!(self.code, Some(0), "{}", self.transcript());
        self
    }
}

impl World {
    pub async fn start(knobs: Knobs) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let emu = Emulator::start(EmulatorConfig {
            seed: Some(7),
            knobs,
            ..EmulatorConfig::default()
        })
        .await
        .expect("the emulator starts");
        let dir = tempfile::tempdir().unwrap();
        write_key(&dir.path().join("keys/ssh-key.pem"));
        World { emu, dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name.yaml` and returns its path.
    pub fn spec(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.path().join(format!("{name}.yaml"));
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// The built `cfxm` with the emulator's endpoint and key, in the test's directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cfxm"));
        c.args(args)
            .current_dir(self.path())
            .env("CFXM_ALIYUN_ENDPOINT", self.emu.endpoint_url())
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", self.emu.access_key_id())
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                cfxm::emulator::DEFAULT_ACCESS_KEY_SECRET,
            )
            .env("CFXM_STATE_DIR", self.path().join("state"))
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env_remove("RUST_LOG");
        c
    }

    /// Runs `cfxm args` to completion (on a blocking thread: the emulator serves from this
    /// test's runtime meanwhile).
    pub async fn cfxm(&self, args: &[&str]) -> Outcome {
        let mut cmd = self.command(args);
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("cfxm runs"))
            .await
            .unwrap();
        Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `cfxm <verb> -f <spec> <FAST> <extra>`.
    pub async fn run(&self, verb: &str, spec: &Path, extra: &[&str]) -> Outcome {
        let spec = spec.to_str().unwrap().to_owned();
        let mut args = vec![verb, "-f", spec.as_str()];
        args.extend(FAST);
        args.extend(extra);
        self.cfxm(&args).await
    }

    /// Resources of `kind` carrying exactly the three tags of (owner, spec).
    pub fn tagged(&self, kind: &str, owner: &str, spec: &str) -> Vec<ResourceView> {
        self.emu
            .world()
            .resources
            .into_iter()
            .filter(|r| r.kind == kind && has_tags(&r.tags, owner, spec))
            .collect()
    }

    /// Resources of `kind` in the world, any tags.
    pub fn all(&self, kind: &str) -> Vec<ResourceView> {
        self.emu
            .world()
            .resources
            .into_iter()
            .filter(|r| r.kind == kind)
            .collect()
    }

    pub fn client(&self) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::new(ClientConfig::new(
            self.emu.credentials(),
            Endpoints::single(&self.emu.endpoint_url(), "the test").unwrap(),
        ))
        .unwrap()
    }
}

pub fn has_tags(tags: &[Tag], owner: &str, spec: &str) -> bool {
    let get = |k: &str| tags.iter().find(|t| t.key == k).map(|t| t.value.as_str());
    tags.len() == 3
        && get("conflux-massive-test") == Some("true")
        && get("user") == Some(owner)
        && get("cfxm-spec") == Some(spec)
}

/// A deterministic ed25519 key (same fingerprint in every run, for snapshots).
pub fn write_key(path: &Path) {
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::LineEnding;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&[42; 32]));
    std::fs::write(path, key.to_openssh(LineEnding::LF).unwrap().as_bytes()).unwrap();
}

/// A spec: `regions` as (name, nodes, zones), two instance types, SSH from one address.
pub fn spec_yaml(name: &str, owner: &str, regions: &[(&str, u32, &[&str])], extra: &str) -> String {
    let mut s = format!(
        "name: {name}\nowner: {owner}\ncloud:\n  aliyun:\n    ssh_key: keys/ssh-key.pem\n    \
         network: {{ ssh_from: [203.0.113.7/32] }}\n    instance_types:\n      \
         - {{ name: ecs.g8i.2xlarge, nodes_per_host: 1 }}\n      \
         - {{ name: ecs.g7.2xlarge, nodes_per_host: 1 }}\n    regions:\n"
    );
    for (region, nodes, zones) in regions {
        if zones.is_empty() {
            s.push_str(&format!("      - {{ name: {region}, nodes: {nodes} }}\n"));
        } else {
            s.push_str(&format!(
                "      - {{ name: {region}, nodes: {nodes}, zones: [{}] }}\n",
                zones.join(", ")
            ));
        }
    }
    s.push_str(extra);
    s
}

/// Instances of (owner, spec) that are not being released.
pub fn live_instances(w: &World, owner: &str, spec: &str) -> Vec<ResourceView> {
    w.tagged("instance", owner, spec)
        .into_iter()
        .filter(|i| i.status != "Stopping")
        .collect()
}
