//! Command-line interface: clap definitions and the glue from arguments to library calls.
//!
//! Each command lives in its own file, turns its arguments into plain values and calls one
//! library function; nothing below `cli` sees clap. Data goes to stdout, diagnostics and
//! progress to stderr. Exit codes: 0 success, 1 error (usage errors included), and for
//! `plan --detailed-exitcode` 2 when changes are pending.

mod apply;
mod destroy;
mod devnode;
mod diagnostics;
mod emulator;
mod exec;
mod plan;
mod progress;
mod report;
mod schema;
mod show;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use diagnostics::{render_diagnostic, render_spec_errors};

/// Run massive Conflux test networks on cloud servers, declaratively.
///
/// A spec (YAML) says which regions, how many nodes and what experiment; cfxm makes the cloud
/// match it and runs the experiment. Start with `cfxm validate -f examples/local.yaml`.
#[derive(Debug, Parser)]
#[command(name = "cfxm", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More logging on stderr (`-v` info, `-vv` debug, `-vvv` trace); `RUST_LOG` also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a spec without touching the network; point at every problem in it.
    Validate(validate::ValidateArgs),
    /// Discover what the spec's tags mark in every region and show what apply would change.
    Plan(Box<plan::PlanArgs>),
    /// Make the cloud match the spec (or execute a saved plan), after a typed `yes`.
    Apply(Box<apply::ApplyArgs>),
    /// Delete everything tagged for a spec (or an owner) in every region, after a typed `yes`.
    Destroy(Box<destroy::DestroyArgs>),
    /// Show a spec's hosts, nodes, stages, runs and last report (state + live discovery).
    Show(Box<show::ShowArgs>),
    /// Print the spec's JSON Schema (for editors and CI).
    Schema(schema::SchemaArgs),
    /// Run a command (or copy a file) on every host of a spec; output prefixed by host.
    Exec(exec::ExecArgs),
    /// Run the stand-in Conflux node used on the local cloud.
    ///
    /// Runs like `conflux --config conflux.toml`: it reads the node's TOML config, with
    /// `log_file`, `metrics_output_file` and `conflux_data_dir` relative to the working
    /// directory; serves the harness's JSON-RPC methods; peers with other devnodes; and writes
    /// `conflux.log` and `metrics.log` in the real node's format. SIGTERM, SIGINT or `test_stop`
    /// flush the logs and exit 0.
    ///
    /// One extra config key: `devnode_bind_address` (default 0.0.0.0) is the address the P2P
    /// and public RPC ports bind; the local RPC port binds it too when it is a loopback
    /// address, so many devnodes can share port numbers on different 127.x.y.z addresses.
    Devnode(Box<devnode::DevnodeArgs>),
    /// The built-in Aliyun-compatible cloud (ECS + VPC), for trying cfxm and for tests.
    Emulator(emulator::EmulatorArgs),
    /// Analyse a finished run's node logs: latency tables, report files and plots.
    Report(report::ReportArgs),
}

/// The spec file a command works on.
#[derive(Debug, Clone, Args)]
pub struct SpecArg {
    /// The spec file.
    #[arg(
        short = 'f',
        long = "spec",
        value_name = "FILE",
        default_value = "cfxm.yaml"
    )]
    pub spec: PathBuf,
}

/// Where cfxm keeps what it remembers between runs (lock, journal, inventory, runs).
#[derive(Debug, Clone, Args)]
pub struct StateDirArg {
    /// The state directory; each spec gets `<DIR>/<spec-name>/`.
    #[arg(
        long = "state-dir",
        value_name = "DIR",
        default_value = crate::state::StateDir::DEFAULT,
        env = "CFXM_STATE_DIR"
    )]
    pub state_dir: PathBuf,
}

impl StateDirArg {
    pub fn state_dir(&self) -> crate::state::StateDir {
        crate::state::StateDir::new(&self.state_dir)
    }
}

/// Machine-readable or human output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are successes; usage errors are errors (1), keeping 2 for
            // "changes pending" as Terraform does.
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(cli.verbose);
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Plan(args) => plan::run(*args),
        Command::Apply(args) => apply::run(*args),
        Command::Destroy(args) => destroy::run(*args),
        Command::Show(args) => show::run(*args),
        Command::Schema(args) => schema::run(args),
        Command::Exec(args) => exec::run(args),
        Command::Devnode(args) => devnode::run(*args),
        Command::Emulator(args) => emulator::run(args),
        Command::Report(args) => report::run(args),
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "cfxm=info",
        2 => "cfxm=debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(diagnostics::color_enabled())
        .try_init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
