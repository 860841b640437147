//! `cfxm emulator serve` (the built-in Aliyun-compatible cloud as a server) and
//! `cfxm emulator world` (print the built-in world, to edit and pass back with `--world`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::emulator::{self, Catalog, Emulator, EmulatorConfig, Knobs};
use crate::provider::aliyun::Secret;

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    #[command(subcommand)]
    command: EmulatorCommand,
}

#[derive(Debug, Subcommand)]
enum EmulatorCommand {
    /// Serve the ECS (2014-05-26) and VPC (2016-04-28) APIs for every region of the world.
    ///
    /// The ECS API also answers its legacy network actions (`CreateVpc`, `DescribeVpcs`,
    /// `DeleteVpc`, `CreateVSwitch`, `DescribeVSwitches`, `DeleteVSwitch`), so scripts that
    /// build their network through the ECS client alone run unchanged.
    /// Point cfxm at it with `CFXM_ALIYUN_ENDPOINT=http://ADDR`, or the official SDK with
    /// `Config(endpoint="ADDR", protocol="http")`. Both signature schemes are checked against
    /// the access key below. Control endpoints (no auth; keep the server on loopback):
    /// `GET /_emulator/calls`, `GET /_emulator/world`, `POST /_emulator/reset`,
    /// `GET|POST /_emulator/faults` (a JSON object of knobs), `POST /_emulator/clock`
    /// (`{"advance_ms": N}`), `POST /_emulator/stock` (`{"zone", "instance_type", "count"}`).
    /// Prints the endpoint URL on stdout; stops on Ctrl-C.
    Serve(Box<ServeArgs>),
    /// Print the built-in world (regions, zones, instance types, stock, images) as JSON.
    World,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// World file (JSON, see `cfxm emulator world`); the built-in world when absent.
    #[arg(long, value_name = "FILE")]
    world: Option<PathBuf>,
    /// Save the world here after every change (atomically) and load it at start; an existing
    /// state file wins over `--world` until `POST /_emulator/reset`.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Access key id clients must use.
    #[arg(long, default_value = emulator::DEFAULT_ACCESS_KEY_ID, value_name = "ID")]
    access_key_id: String,
    /// Access key secret clients must sign with (default: the public `cfxm-local-secret`).
    #[arg(
        long,
        env = "CFXM_EMULATOR_ACCESS_KEY_SECRET",
        default_value = emulator::DEFAULT_ACCESS_KEY_SECRET,
        hide_env_values = true,
        hide_default_value = true,
        value_name = "SECRET"
    )]
    access_key_secret: String,
    /// Seed for ids and injected faults (reproducible runs).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    #[command(flatten)]
    knobs: KnobArgs,
}

/// Realism and faults; all can be changed at run time with `POST /_emulator/faults`.
#[derive(Debug, Args)]
struct KnobArgs {
    /// Start from realistic figures (30 s boot, 3 s networks, 2 min images, 10 s release,
    /// 1 s read lag, 20 req/s per action); the flags below override single knobs.
    #[arg(long)]
    realistic: bool,
    /// Emulated seconds per real second (10 runs a 30 s boot in 3 s).
    #[arg(long, value_name = "FACTOR")]
    clock_speed: Option<f64>,
    /// RunInstances → Running (`Pending`, then `Starting`), e.g. `30s`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    boot_delay: Option<Duration>,
    /// CreateVpc / CreateVSwitch → `Available`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    network_delay: Option<Duration>,
    /// CreateImage / CopyImage → `Available`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    image_delay: Option<Duration>,
    /// DeleteInstances → gone (meanwhile `Stopping`, still blocking its vSwitch and groups).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    release_delay: Option<Duration>,
    /// New resources stay invisible to Describe*/List* calls this long.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    consistency_window: Option<Duration>,
    /// Requests per second per (region, action) before `Throttling.User`.
    #[arg(long, value_name = "RATE")]
    throttle_rate: Option<f64>,
    /// Burst of the throttling bucket.
    #[arg(long, value_name = "N")]
    throttle_burst: Option<u32>,
    /// Probability (0-1) that a call is refused with `Throttling.User` whatever the rate.
    #[arg(long, value_name = "P")]
    throttle_probability: Option<f64>,
    /// Probability (0-1) that a call fails with `ServiceUnavailable` or `InternalError`.
    #[arg(long, value_name = "P")]
    error_rate: Option<f64>,
    /// Real latency added to every API call, e.g. `50ms`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    latency: Option<Duration>,
}

impl KnobArgs {
    fn knobs(&self) -> Knobs {
        let mut k = if self.realistic {
            Knobs::realistic()
        } else {
            Knobs::default()
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if let Some(v) = self.clock_speed {
            k.clock_speed = v;
        }
        if let Some(v) = self.boot_delay {
            k.boot_delay_ms = ms(v);
        }
        if let Some(v) = self.network_delay {
            k.network_delay_ms = ms(v);
        }
        if let Some(v) = self.image_delay {
            k.image_delay_ms = ms(v);
        }
        if let Some(v) = self.release_delay {
            k.release_delay_ms = ms(v);
        }
        if let Some(v) = self.consistency_window {
            k.consistency_window_ms = ms(v);
        }
        if self.throttle_rate.is_some() {
            k.throttle_rate = self.throttle_rate;
        }
        if let Some(v) = self.throttle_burst {
            k.throttle_burst = v;
        }
        if let Some(v) = self.throttle_probability {
            k.throttle_probability = v;
        }
        if let Some(v) = self.error_rate {
            k.error_rate = v;
        }
        if let Some(v) = self.latency {
            k.latency_ms = ms(v);
        }
        k
    }
}

pub fn run(args: EmulatorArgs) -> ExitCode {
    match args.command {
        EmulatorCommand::World => {
            let text =
                serde_json::to_string_pretty(&Catalog::builtin()).expect("the catalog serializes");
            println!("{text}");
            ExitCode::SUCCESS
        }
        EmulatorCommand::Serve(args) => serve(*args),
    }
}

fn fail(diag: &dyn miette::Diagnostic) -> ExitCode {
    eprint!("{}", super::render_diagnostic(diag));
    ExitCode::from(1)
}

fn serve(args: ServeArgs) -> ExitCode {
    let catalog = match &args.world {
        Some(path) => match Catalog::load(path) {
            Ok(c) => c,
            Err(e) => return fail(&e),
        },
        None => Catalog::builtin(),
    };
    let regions = catalog.regions.len();
    let default_secret = args.access_key_secret == emulator::DEFAULT_ACCESS_KEY_SECRET;
    let config = EmulatorConfig {
        listen: args.listen,
        access_key_id: args.access_key_id.clone(),
        access_key_secret: Secret::new(args.access_key_secret),
        catalog,
        state_file: args.state.clone(),
        knobs: args.knobs.knobs(),
        seed: args.seed,
        ..EmulatorConfig::default()
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let handle = match Emulator::start(config).await {
            Ok(h) => h,
            Err(e) => return fail(&e),
        };
        let url = handle.endpoint_url();
        // Never echo a secret the user chose; the default one is public.
        let secret = if default_secret {
            format!(", secret `{}`", emulator::DEFAULT_ACCESS_KEY_SECRET)
        } else {
            String::new()
        };
        let state = args
            .state
            .as_ref()
            .map(|p| format!("; state in `{}`", p.display()))
            .unwrap_or_default();
        // Install the signal handlers before announcing the server, so a client that stops it
        // right after reading the URL gets a graceful shutdown.
        let stop = match shutdown_signal() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
        // Output errors (a closed pipe) must not kill the server: ignore them.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "cfxm emulator: ECS 2014-05-26 + VPC 2016-04-28 for {regions} regions on {url}; access key id `{}`{secret}{state}\n  use it: export CFXM_ALIYUN_ENDPOINT={url}   (Ctrl-C stops)",
            handle.access_key_id()
        );
        let _ = writeln!(std::io::stdout(), "{url}");
        let _ = std::io::stdout().flush();
        handle.run_until(stop).await;
        ExitCode::SUCCESS
    })
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
