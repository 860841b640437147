//! The built-in Aliyun-compatible cloud: an HTTP server that speaks the ECS (`2014-05-26`) and
//! VPC (`2016-04-28`) RPC APIs closely enough that the official Python SDK cannot tell it from
//! the real endpoint (aliyun-api.md). It is the test bed of every cloud-facing line, the engine
//! of `cloud: local`, and `cfxm emulator serve`.
//!
//! Layout: [`world`] is the state and its rules (no HTTP); [`catalog`] what a world starts
//! with; `ecs`/`vpc` the actions (parameters in, wire JSON out); `actions` routing, idempotency
//! and paging; `auth` signature checks (with [`crate::provider::aliyun::sign`], the client's own
//! signer); [`knobs`] realism and faults; [`calls`] the call log; `persist` the state file;
//! `server` the axum glue. In-process use goes through [`Emulator::start`] and the returned
//! [`EmulatorHandle`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cfxm::emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig::default()).await?;
//! println!("{} serves every region; key {}", emu.endpoint_url(), emu.access_key_id());
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

mod actions;
mod auth;
pub mod calls;
pub mod catalog;
mod clock;
mod ecs;
mod error;
pub mod knobs;
mod params;
mod persist;
mod server;
mod vpc;
pub mod world;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

pub use calls::CallRecord;
pub use catalog::{CONFLUX_IMAGE, Catalog, CatalogError, PublicIpPolicy};
pub use error::ApiError;
pub use knobs::Knobs;
pub use persist::StateError;

use crate::provider::aliyun::{Credentials, Secret, Tag};

/// The default access key id, accepted unless configured otherwise.
pub const DEFAULT_ACCESS_KEY_ID: &str = "cfxm-local";
/// The default secret. Public on purpose: the emulator guards nothing of value.
pub const DEFAULT_ACCESS_KEY_SECRET: &str = "cfxm-local-secret";

/// How an emulator starts.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// The world a fresh (or reset) emulator starts with.
    pub catalog: Catalog,
    /// Save the world here after every change, and load it at start.
    pub state_file: Option<PathBuf>,
    /// Load `state_file` but never write it: for a process that only reads (`cfxm plan` on the
    /// local cloud) beside one that may be changing the same world.
    pub read_only: bool,
    pub knobs: Knobs,
    /// Seed for ids and injected faults; random when `None`.
    pub seed: Option<u64>,
    /// How many recent calls the call log keeps.
    pub call_log_capacity: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_key_id: DEFAULT_ACCESS_KEY_ID.into(),
            access_key_secret: Secret::new(DEFAULT_ACCESS_KEY_SECRET),
            catalog: Catalog::builtin(),
            state_file: None,
            read_only: false,
            knobs: Knobs::default(),
            seed: None,
            call_log_capacity: 200_000,
        }
    }
}

/// Why an emulator could not start.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    #[diagnostic(help(
        "pick another address with `--listen`, e.g. `127.0.0.1:0` for any free port"
    ))]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Catalog(#[from] CatalogError),
    #[error("invalid knobs: {0}")]
    #[diagnostic(help("see `cfxm emulator serve --help` for the knobs and their ranges"))]
    Knobs(String),
}

/// Starts emulators.
pub struct Emulator;

impl Emulator {
    /// Binds, loads the state file if any, and serves in the background until
    /// [`EmulatorHandle::shutdown`] (or the handle is dropped).
    pub async fn start(config: EmulatorConfig) -> Result<EmulatorHandle, EmulatorError> {
        Self::start_now(config)
    }

    /// [`Emulator::start`] for synchronous code running inside a tokio runtime (the local
    /// cloud starts while a command builds its providers): binding and loading are blocking
    /// calls that return at once, and the server is spawned on the current runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start_now(config: EmulatorConfig) -> Result<EmulatorHandle, EmulatorError> {
        config.catalog.check()?;
        config.knobs.check().map_err(EmulatorError::Knobs)?;
        let mut rng = match config.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => rand::make_rng(),
        };
        let wall = clock::wall_ms();
        let (world, start_ms) = match &config.state_file {
            Some(path) => match persist::load(path)? {
                Some((world, saved_ms)) => (world, saved_ms.max(wall)),
                None => (world::World::new(&config.catalog, wall, &mut rng), wall),
            },
            None => (world::World::new(&config.catalog, wall, &mut rng), wall),
        };
        let bind_error = |source| EmulatorError::Bind {
            addr: config.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(config.listen).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_error)?;
        let addr = server::local_addr(&listener).map_err(bind_error)?;
        let shared = Arc::new(server::Shared {
            key: auth::AccessKey {
                id: config.access_key_id.clone(),
                secret: config.access_key_secret.clone(),
            },
            catalog: config.catalog.clone(),
            state_file: config.state_file.clone().filter(|_| !config.read_only),
            core: std::sync::RwLock::new(server::Core {
                world,
                clock: clock::Clock::new(start_ms, config.knobs.clock_speed),
                knobs: config.knobs.clone(),
                generation: 1,
            }),
            rng: Mutex::new(rng),
            nonces: Mutex::new(auth::NonceCache::default()),
            throttle: Mutex::new(knobs::Throttle::default()),
            calls: Mutex::new(calls::CallLog::new(config.call_log_capacity)),
            persisted: Mutex::new(0),
            connections: server::Connections::default(),
        });
        // A fresh world with a state file is written at once, so the file always exists.
        shared.persist();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, shared.clone(), async move {
            let _ = rx.await;
        }));
        Ok(EmulatorHandle {
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running emulator. Dropping it stops the server (without waiting); prefer
/// [`EmulatorHandle::shutdown`].
pub struct EmulatorHandle {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    /// Tells the server to stop accepting and finish in-flight requests.
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for EmulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl EmulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `CFXM_ALIYUN_ENDPOINT` or [`crate::provider::aliyun::Endpoints::single`].
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn access_key_id(&self) -> &str {
        &self.shared.key.id
    }

    /// The key pair this emulator accepts.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(self.shared.key.id.clone(), self.shared.key.secret.expose())
    }

    /// Every logged call (the most recent `call_log_capacity`).
    pub fn calls(&self) -> Vec<CallRecord> {
        self.calls_since(0)
    }

    /// Calls with a sequence number above `seq`.
    pub fn calls_since(&self, seq: u64) -> Vec<CallRecord> {
        self.shared.calls.lock().expect("calls lock").since(seq)
    }

    /// TCP connections accepted so far, and how many of them have Nagle's algorithm off.
    /// With keep-alive, one client calling in sequence uses one connection.
    pub fn connections(&self) -> ConnectionStats {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.shared.connections;
        ConnectionStats {
            accepted: c.accepted.load(Relaxed),
            no_delay: c.no_delay.load(Relaxed),
        }
    }

    /// Every resource, and the stock.
    pub fn world(&self) -> WorldView {
        view(&self.shared)
    }

    pub fn knobs(&self) -> Knobs {
        self.shared.read().knobs.clone()
    }

    /// Changes knobs with a partial JSON object, as `POST /_emulator/faults` does.
    pub fn set_faults(&self, patch: &serde_json::Value) -> Result<Knobs, String> {
        apply_knobs(&self.shared, patch)
    }

    /// Replaces every knob.
    pub fn set_knobs(&self, knobs: Knobs) -> Result<(), String> {
        let patch = serde_json::to_value(knobs).expect("knobs serialize");
        apply_knobs(&self.shared, &patch).map(|_| ())
    }

    /// Back to the starting world (the catalog); clears the call log.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Moves the emulated clock forward (finishes boots, async creations, releases).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.write().clock.advance(by);
    }

    /// Sets the stock of one (zone, instance type); `None` stops selling it there.
    pub fn set_stock(
        &self,
        zone: &str,
        instance_type: &str,
        count: Option<u64>,
    ) -> Result<(), ApiError> {
        {
            let mut core = self.shared.write();
            core.world.set_stock(zone, instance_type, count)?;
            core.generation += 1;
        }
        self.shared.persist();
        Ok(())
    }

    /// Stops the server and waits for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.shared.persist();
    }

    /// Waits until the server stops (for `cfxm emulator serve`, which stops on Ctrl-C).
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) {
        signal.await;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.shared.persist();
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn apply_knobs(shared: &server::Shared, patch: &serde_json::Value) -> Result<Knobs, String> {
    let mut core = shared.write();
    let new = core.knobs.patched(patch)?;
    if (new.clock_speed - core.knobs.clock_speed).abs() > f64::EPSILON {
        core.clock.set_speed(new.clock_speed);
    }
    if new.throttle_rate != core.knobs.throttle_rate
        || new.throttle_burst != core.knobs.throttle_burst
    {
        shared.throttle.lock().expect("throttle lock").clear();
    }
    core.knobs = new.clone();
    Ok(new)
}

/// What [`EmulatorHandle::connections`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStats {
    /// TCP connections accepted since the start.
    pub accepted: u64,
    /// Of those, how many had `TCP_NODELAY` on (read back from the socket).
    pub no_delay: u64,
}

/// Every resource of the emulated cloud, for tests, benchmarks and `GET /_emulator/world`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldView {
    /// Emulated time.
    pub now: String,
    pub resources: Vec<ResourceView>,
    /// Remaining stock per (region, zone, type).
    pub stock: Vec<StockView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceView {
    pub id: String,
    /// `vpc`, `vswitch`, `security_group`, `key_pair`, `instance` or `image`.
    pub kind: String,
    pub region: String,
    pub zone: Option<String>,
    pub status: String,
    pub name: String,
    pub tags: Vec<Tag>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockView {
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub available: u64,
}

impl WorldView {
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a ResourceView> + 'a {
        self.resources.iter().filter(move |r| r.kind == kind)
    }
    pub fn stock_of(&self, zone: &str, instance_type: &str) -> Option<u64> {
        self.stock
            .iter()
            .find(|s| s.zone == zone && s.instance_type == instance_type)
            .map(|s| s.available)
    }
}

fn view(shared: &server::Shared) -> WorldView {
    let core = shared.read();
    let now = core.clock.now_ms();
    let w = &core.world;
    let mut resources = Vec::new();
    let res = |id: &str,
               kind: &str,
               region: &str,
               zone: Option<&str>,
               status: &str,
               name: &str,
               tags: &[Tag]| ResourceView {
        id: id.to_string(),
        kind: kind.to_string(),
        region: region.to_string(),
        zone: zone.map(str::to_string),
        status: status.to_string(),
        name: name.to_string(),
        tags: tags.to_vec(),
        public_ip: None,
        private_ip: None,
    };
    for r in w.regions.values() {
        for v in r.vpcs.values() {
            resources.push(res(
                &v.id,
                "vpc",
                &r.id,
                None,
                world::network_status(v.available_at, now),
                &v.name,
                &v.tags,
            ));
        }
        for s in r.vswitches.values() {
            resources.push(res(
                &s.id,
                "vswitch",
                &r.id,
                Some(&s.zone_id),
                world::network_status(s.available_at, now),
                &s.name,
                &s.tags,
            ));
        }
        for g in r.security_groups.values() {
            resources.push(res(
                &g.id,
                "security_group",
                &r.id,
                None,
                "Available",
                &g.name,
                &g.tags,
            ));
        }
        for k in r.key_pairs.values() {
            resources.push(res(
                &k.name,
                "key_pair",
                &r.id,
                None,
                "Available",
                &k.name,
                &k.tags,
            ));
        }
        for i in r.images.values().filter(|i| i.owner == "self") {
            resources.push(res(
                &i.id,
                "image",
                &r.id,
                None,
                i.status(now),
                &i.name,
                &i.tags,
            ));
        }
        for i in r.instances.values() {
            let mut v = res(
                &i.id,
                "instance",
                &r.id,
                Some(&i.zone_id),
                i.status(now).as_str(),
                &i.name,
                &i.tags,
            );
            v.public_ip = i.public_ip.map(|a| a.to_string());
            v.private_ip = Some(i.private_ip.to_string());
            resources.push(v);
        }
    }
    let stock = w
        .stock()
        .into_iter()
        .map(|(region, zone, instance_type, available)| StockView {
            region,
            zone,
            instance_type,
            available,
        })
        .collect();
    WorldView {
        now: clock::seconds(now),
        resources,
        stock,
    }
}
