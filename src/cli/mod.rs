//! Command-line interface: clap definitions and the glue from arguments to library calls.
//!
//! Each command lives in its own file, turns its arguments into plain values and calls one
//! library function; nothing below `cli` sees clap. Data goes to stdout, diagnostics and
//! progress to stderr. Exit codes: 0 success, 1 error (usage errors included), and for
//! `plan --detailed-exitcode` 2 when changes are pending.

mod diagnostics;
mod report;
mod schema;
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
    /// Print the spec's JSON Schema (for editors and CI).
    Schema(schema::SchemaArgs),
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
        Command::Schema(args) => schema::run(args),
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
