//! The local cloud (`cloud: local`, DESIGN §7): the whole product on one machine, no account.
//!
//! [`LocalCloud`] is the reconciler's [`Provider`] for it: the built-in emulator started
//! in-process (its world saved in `state/<spec>/cloud/emulator.json`, so the cloud outlives the
//! command like a real account does), driven by the very same [`AliyunProvider`] (client,
//! signing, tags, pacing, journaled mutations) that drives Aliyun, under the addresses
//! `local/<region>/...`. What it adds is the *backing* of each instance:
//!
//! - **A slot per running instance.** When the provider sees an instance `Running` it makes
//!   sure its slot directory `state/<spec>/slots/<instance-id>/` exists. The slot is the host:
//!   the local transport runs commands there (`ssh::LocalTransport`), and the instance's public
//!   address, a loopback address, is where its nodes listen (`devnode_bind_address`). Every
//!   address of `127.0.0.0/8` is routed to `lo` on Linux, so an address needs no setup.
//! - **Loopback public addresses, unique per local cloud.** The world is the built-in one with
//!   every instance given a public address from one `/20` of `127.0.0.0/8`, chosen at random
//!   when the cloud is first created among the blocks no listening socket uses yet (so two
//!   local clouds on one machine, or one beside the test suite, do not share node ports).
//!   Private addresses are the emulator's VPC bookkeeping (`10.0.x.y`, recorded in
//!   `hosts.json`); a slot has one address, so peers dial local hosts at their loopback one.
//! - **Teardown of what runs there.** Before an instance is deleted (replaced, scaled down or
//!   destroyed), every devnode its slot runs is stopped (through the pid files, checked to
//!   still name our process: [`crate::stages::nodes::stop_all`]) and the slot is removed.
//!   [`remove_slots`] does the same for whatever slots remain once a destroy found nothing
//!   tagged left.
//!
//! A process that only reads (`cfxm plan`) starts the emulator read-only: it loads the saved
//! world but never writes it, and makes no slots, so it cannot undo a concurrent apply.
//! Fast knobs: instances boot at once and networks are available at once (the emulator's
//! defaults), and the provider polls the emulator every 100 ms instead of every 3 s.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use miette::Diagnostic;
use thiserror::Error;

use crate::apply::{Mutations, RateBuckets, RetryPolicy, StepError};
use crate::emulator::{Catalog, Emulator, EmulatorConfig, EmulatorError, EmulatorHandle, Knobs};
use crate::provider::aliyun::{
    AliyunProvider, Client, ClientConfig, Endpoints, SetupError, Timing,
};
use crate::provider::resource::{
    Attrs, HostStatus, ImageRef, Kind, Launch, LiveInstance, LiveResource, Provider, ProviderError,
    RegionScan, TagScope, Tags, ZoneOffer,
};
use crate::spec::{Cidr, CloudKind, Network, RegionId};
use crate::ssh::hosts::{Host, HostOrigin};
use crate::ssh::{BoxFuture, LocalTransport};
use crate::stages::{StageHost, StageOptions};
use crate::state::hosts_json::HostRecord;
use crate::state::{ClientToken, Intent, SpecState};

/// The image every local host "boots" (present in every region of the built-in world).
pub const LOCAL_IMAGE: &str = crate::emulator::CONFLUX_IMAGE;

/// The SSH user `hosts.json` records for local hosts (no SSH reaches them).
pub const LOCAL_SSH_USER: &str = "root";

/// The local cloud's network in every region: the original's VPC block, SSH (never used)
/// only from this machine.
pub fn network() -> &'static Network {
    static NETWORK: LazyLock<Network> = LazyLock::new(|| Network {
        create: true,
        cidr: "10.0.0.0/16".parse().expect("a valid block"),
        ssh_from: vec!["127.0.0.0/8".parse().expect("a valid block")],
    });
    &NETWORK
}

/// The public half of the local cloud's key pair, imported like any spec's key so the same
/// create path runs. Local hosts are slots reached without SSH, so the key opens nothing; it is
/// derived from a fixed seed so every plan shows the same fingerprint.
pub fn public_key() -> String {
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    static LINE: LazyLock<String> = LazyLock::new(|| {
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[0x10; 32]));
        key.public_key()
            .to_openssh()
            .expect("an ed25519 key encodes")
    });
    LINE.clone()
}

/// Where a spec's local cloud keeps its world.
pub fn emulator_state_path(state: &SpecState) -> PathBuf {
    state.dir().join("cloud").join("emulator.json")
}

/// Why the local cloud could not start.
#[derive(Debug, Error, Diagnostic)]
pub enum LocalError {
    #[error("the local cloud's emulator cannot start: {0}")]
    #[diagnostic(
        code(cfxm::local::emulator),
        help(
            "its world is `state/<spec>/cloud/emulator.json`; if that file is damaged, destroy what runs (`cfxm destroy`) or move the spec's state directory away"
        )
    )]
    Emulator(#[source] EmulatorError),

    #[error("the local cloud needs an async runtime")]
    #[diagnostic(
        code(cfxm::local::runtime),
        help("this is a bug in cfxm; please report it")
    )]
    NoRuntime,

    #[error(transparent)]
    #[diagnostic(transparent)]
    Client(#[from] SetupError),
}

/// The reconciler's provider for `cloud: local`: see the module docs.
pub struct LocalCloud {
    /// The same provider that drives Aliyun, pointed at the in-process emulator.
    aliyun: AliyunProvider,
    /// Keeps the in-process emulator serving while the provider lives; its world is on disk.
    emulator: Arc<EmulatorHandle>,
    state: SpecState,
    /// Whether this command may change the world and the slots (not `cfxm plan`).
    writable: bool,
    /// How long devnodes in a slot being removed get to exit.
    stop: StageOptions,
}

impl std::fmt::Debug for LocalCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCloud")
            .field("emulator", &self.emulator.endpoint_url())
            .field("state", &self.state.dir())
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

impl LocalCloud {
    /// Starts `state`'s local cloud on the current tokio runtime: loads its world (or creates
    /// one), serves it on a free loopback port, and returns the provider. `read_only`: load,
    /// never write, and make no slots.
    pub fn start(
        state: &SpecState,
        buckets: Arc<RateBuckets>,
        policy: RetryPolicy,
        read_only: bool,
    ) -> Result<LocalCloud, LocalError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(LocalError::NoRuntime);
        }
        let path = emulator_state_path(state);
        // The address block is chosen once, when the world is created; a saved world keeps its own.
        let catalog = if path.exists() {
            catalog(Cidr {
                addr: Ipv4Addr::new(127, 16, 0, 0),
                prefix: 20,
            })
        } else {
            catalog(free_loopback_block())
        };
        let emulator = Emulator::start_now(EmulatorConfig {
            catalog,
            state_file: Some(path),
            read_only,
            knobs: knobs(),
            ..EmulatorConfig::default()
        })
        .map_err(LocalError::Emulator)?;
        let endpoints = Endpoints::single(&emulator.endpoint_url(), "the local cloud")
            .map_err(SetupError::from)?;
        let client = Client::new(ClientConfig::new(emulator.credentials(), endpoints))
            .map_err(SetupError::from)?;
        let timing = Timing {
            poll: Duration::from_millis(100),
            network_ready: Duration::from_secs(60),
        };
        let aliyun =
            AliyunProvider::new(client, buckets, policy, timing).as_cloud(CloudKind::Local);
        Ok(LocalCloud {
            aliyun,
            emulator: Arc::new(emulator),
            state: state.clone(),
            writable: !read_only,
            stop: StageOptions {
                stop_timeout: Duration::from_secs(10),
                command_timeout: Duration::from_secs(30),
                ..StageOptions::default()
            },
        })
    }

    /// The emulator's URL (`http://127.0.0.1:PORT`), for `cfxm show` and debugging.
    pub fn endpoint_url(&self) -> String {
        self.emulator.endpoint_url()
    }

    /// Makes sure every running instance of `found` that is new has its slot. An instance the
    /// inventory already records had its slot made when it first ran: if that slot is gone
    /// (removed or replaced), the host died, and it stays dead (`reach` reports it and the
    /// hosts resource replaces it) rather than coming back as an empty directory.
    async fn back(&self, found: &[LiveInstance]) -> Result<(), ProviderError> {
        if !self.writable {
            return Ok(());
        }
        let recorded: std::collections::BTreeSet<String> = match self.state.read_inventory() {
            Ok(Some(inv)) => inv.hosts.into_iter().map(|h| h.instance_id).collect(),
            _ => Default::default(),
        };
        for i in found
            .iter()
            .filter(|i| i.status == HostStatus::Running && !recorded.contains(&i.id))
        {
            let Some(dir) = self.state.slot(&i.id) else {
                return Err(ProviderError::local(
                    "DescribeInstances",
                    crate::provider::ErrorClass::Fatal,
                    format!(
                        "the local cloud named an instance `{}` that cannot be a slot",
                        i.id
                    ),
                ));
            };
            tokio::fs::create_dir_all(&dir).await.map_err(|e| {
                ProviderError::local(
                    "DescribeInstances",
                    crate::provider::ErrorClass::Fatal,
                    format!(
                        "cannot create the slot `{}` of {}: {e}",
                        dir.display(),
                        i.id
                    ),
                )
            })?;
        }
        Ok(())
    }
}

/// The world of a local cloud: the built-in one, every instance with a public address from
/// `pool`.
pub fn catalog(pool: Cidr) -> Catalog {
    Catalog {
        public_ip_pool: pool.to_string(),
        public_ip: crate::emulator::PublicIpPolicy::Always,
        ..Catalog::builtin()
    }
}

/// The local cloud's knobs: instant and fault-free (a slot takes no time to "boot").
fn knobs() -> Knobs {
    Knobs::default()
}

/// A `/20` of `127.0.0.0/8` (outside `127.0.x.x`) in which no socket listens now, at random.
fn free_loopback_block() -> Cidr {
    use rand::RngExt;
    let busy = listening_loopback();
    let mut rng = rand::rng();
    let mut pick = || {
        Ipv4Addr::new(
            127,
            rng.random_range(16..=254u8),
            rng.random_range(0..16u8) * 16,
            0,
        )
    };
    let mut block = pick();
    for _ in 0..64 {
        let in_block = |ip: &Ipv4Addr| {
            ip.octets()[1] == block.octets()[1] && ip.octets()[2] & 0xf0 == block.octets()[2]
        };
        if !busy.iter().any(in_block) {
            break;
        }
        block = pick();
    }
    Cidr {
        addr: block,
        prefix: 20,
    }
}

/// Loopback addresses with a listening TCP socket (from `/proc/net/tcp`; empty elsewhere).
fn listening_loopback() -> Vec<Ipv4Addr> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let local = f.nth(1)?;
            let state = f.nth(1)?;
            if state != "0A" {
                return None;
            }
            let hex = local.split(':').next()?;
            let v = u32::from_str_radix(hex, 16).ok()?;
            // The kernel prints the address as a host-order (little-endian) word.
            let ip = Ipv4Addr::from(v.to_le_bytes());
            ip.is_loopback().then_some(ip)
        })
        .collect()
}

/// The local host of slot `dir` as the stages see it, for stopping what runs there.
fn slot_host(state: &SpecState, instance_id: &str, dir: &Path) -> StageHost {
    let record = HostRecord {
        ip: Ipv4Addr::LOCALHOST.into(),
        nodes_per_host: 1,
        ssh_user: LOCAL_SSH_USER.into(),
        ssh_key_path: String::new(),
        provider: CloudKind::Local.to_string(),
        region: String::new(),
        zone: String::new(),
        instance_id: instance_id.to_owned(),
        private_ip: None,
    };
    StageHost {
        host: Host {
            label: instance_id.to_owned(),
            record,
            origin: HostOrigin::Managed {
                inventory: state.hosts_json_path(),
            },
            ssh_port: 22,
            key: PathBuf::new(),
        },
        transport: Arc::new(LocalTransport::new(instance_id, dir)),
    }
}

/// Stops every devnode slot `instance_id` runs (pid files checked to still be ours) and
/// removes the slot; a missing slot is fine. A slot that is broken (its directory removed
/// under running devnodes, or replaced by a file) is still cleaned up: devnodes whose working
/// directory was inside it are killed, and whatever is at its path is removed.
pub async fn remove_slot(
    state: &SpecState,
    instance_id: &str,
    options: &StageOptions,
) -> Result<(), String> {
    let Some(dir) = state.slot(instance_id) else {
        return Ok(());
    };
    if dir.is_dir() {
        let host = slot_host(state, instance_id, &dir);
        crate::stages::nodes::stop_all(&host, options)
            .await
            .map_err(|e| format!("cannot stop the nodes of {instance_id}: {e}"))?;
    }
    kill_orphans(&dir);
    let removed = match tokio::fs::symlink_metadata(&dir).await {
        Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(&dir).await,
        Ok(_) => tokio::fs::remove_file(&dir).await,
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove the slot `{}`: {e}", dir.display())),
    }
}

/// Kills `cfxm devnode` processes whose working directory is inside `slot` or inside what
/// was `slot` before it was deleted (the kernel shows such a directory as `PATH (deleted)`):
/// devnodes a broken slot's pid files can no longer name. Only processes running `devnode`
/// from a node directory of this very slot are touched. Linux only (`/proc`); elsewhere a
/// no-op.
fn kill_orphans(slot: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let inside = |cwd: &Path| {
        let text = cwd.to_string_lossy();
        let text = text.strip_suffix(" (deleted)").unwrap_or(&text);
        Path::new(text).starts_with(slot) && Path::new(text) != slot
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if !inside(&cwd) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let devnode = cmdline
            .split(|b| *b == 0)
            .nth(1)
            .is_some_and(|arg| arg == b"devnode");
        if devnode {
            // SAFETY: kill has no memory-safety preconditions; the pid was just read from
            // /proc with a working directory inside this slot and a devnode command line.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Stops and removes every slot of `state` (what a destroy runs once nothing tagged is
/// left), then the slots directory; returns how many slots there were.
pub async fn remove_slots(state: &SpecState, options: &StageOptions) -> Result<usize, String> {
    let dir = state.slots_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("cannot list `{}`: {e}", dir.display())),
    };
    let mut n = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        remove_slot(state, &name, options).await?;
        n += 1;
    }
    match std::fs::remove_dir(&dir) {
        Ok(()) => Ok(n),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(n),
        Err(e) => Err(format!("cannot remove `{}`: {e}", dir.display())),
    }
}

impl Provider for LocalCloud {
    fn cloud(&self) -> CloudKind {
        CloudKind::Local
    }

    fn kinds(&self) -> &'static [Kind] {
        self.aliyun.kinds()
    }

    fn noun(&self, kind: Kind) -> &'static str {
        self.aliyun.noun(kind)
    }

    fn fingerprint(&self, public_key: &str) -> Option<String> {
        self.aliyun.fingerprint(public_key)
    }

    fn regions(&self) -> BoxFuture<'_, Result<Vec<RegionId>, ProviderError>> {
        self.aliyun.regions()
    }

    fn zones<'a>(
        &'a self,
        region: &'a RegionId,
    ) -> BoxFuture<'a, Result<Vec<ZoneOffer>, ProviderError>> {
        self.aliyun.zones(region)
    }

    fn find_image<'a>(
        &'a self,
        region: &'a RegionId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ImageRef>, ProviderError>> {
        self.aliyun.find_image(region, name)
    }

    fn scan<'a>(
        &'a self,
        region: &'a RegionId,
        scope: &'a TagScope,
    ) -> BoxFuture<'a, Result<RegionScan, ProviderError>> {
        self.aliyun.scan(region, scope)
    }

    fn create<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        region: &'a RegionId,
        want: &'a Attrs,
        parent: Option<&'a LiveResource>,
        tags: &'a Tags,
    ) -> BoxFuture<'a, Result<LiveResource, StepError>> {
        self.aliyun.create(m, region, want, parent, tags)
    }

    fn update<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        live: &'a LiveResource,
        want: &'a Attrs,
    ) -> BoxFuture<'a, Result<LiveResource, StepError>> {
        self.aliyun.update(m, live, want)
    }

    fn delete<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        live: &'a LiveResource,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        self.aliyun.delete(m, live)
    }

    fn launch<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        batch: &'a Launch,
        token: ClientToken,
    ) -> BoxFuture<'a, Result<Vec<String>, StepError>> {
        self.aliyun.launch(m, batch, token)
    }

    fn instance_status<'a>(
        &'a self,
        region: &'a RegionId,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<(String, HostStatus)>, ProviderError>> {
        self.aliyun.instance_status(region, ids)
    }

    fn describe_instances<'a>(
        &'a self,
        region: &'a RegionId,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<LiveInstance>, ProviderError>> {
        Box::pin(async move {
            let found = self.aliyun.describe_instances(region, ids).await?;
            self.back(&found).await?;
            Ok(found)
        })
    }

    fn terminate<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        region: &'a RegionId,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            for id in ids {
                m.progress(format!("stopping the nodes of {id} and removing its slot"));
                remove_slot(&self.state, id, &self.stop)
                    .await
                    .map_err(|e| {
                        StepError::failed(
                            e,
                            "check the slot under `state/<spec>/slots/`; run the command again",
                        )
                    })?;
            }
            self.aliyun.terminate(m, region, ids).await
        })
    }

    fn settle<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        intent: &'a Intent,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, StepError>> {
        self.aliyun.settle(m, intent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_gives_every_instance_a_loopback_address_from_a_free_block() {
        let block = free_loopback_block();
        assert_eq!(block.prefix, 20);
        assert_eq!(block.addr.octets()[0], 127);
        assert!(block.addr.octets()[1] >= 16);
        let c = catalog(block);
        c.check().unwrap();
        assert_eq!(c.public_ip, crate::emulator::PublicIpPolicy::Always);
        assert!(
            c.regions
                .iter()
                .all(|r| r.images.iter().any(|i| i.name == LOCAL_IMAGE))
        );
    }

    #[test]
    fn listening_loopback_sockets_are_seen() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _ = l.local_addr().unwrap();
        assert!(listening_loopback().contains(&Ipv4Addr::LOCALHOST));
    }

    #[tokio::test]
    async fn a_read_only_cloud_never_writes_its_world_and_a_writable_one_keeps_it() {
        let tmp = tempfile::tempdir().unwrap();
        let state = crate::state::StateDir::new(tmp.path())
            .spec(&crate::spec::SpecName::new("s"))
            .unwrap();
        let buckets = Arc::new(RateBuckets::new(Default::default()).unwrap());
        let start = |read_only| {
            LocalCloud::start(&state, buckets.clone(), RetryPolicy::default(), read_only).unwrap()
        };
        let cloud = start(true);
        assert!(!cloud.regions().await.unwrap().is_empty());
        drop(cloud);
        assert!(!emulator_state_path(&state).exists());
        let cloud = start(false);
        assert!(emulator_state_path(&state).is_file());
        // Account images get random ids in a fresh world: the same ids mean the same world.
        let images = |c: &LocalCloud| -> Vec<String> {
            let mut ids: Vec<String> = c
                .emulator
                .world()
                .of_kind("image")
                .map(|r| r.id.clone())
                .collect();
            ids.sort();
            ids
        };
        let saved = images(&cloud);
        drop(cloud);
        let again = start(true);
        assert_eq!(images(&again), saved, "the saved world is loaded");
        std::fs::remove_file(emulator_state_path(&state)).unwrap();
        assert_ne!(images(&start(true)), saved);
    }

    #[test]
    fn the_key_is_fixed_and_public() {
        assert!(public_key().starts_with("ssh-ed25519 "));
        assert_eq!(public_key(), public_key());
    }
}
