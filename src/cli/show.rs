//! `cfxm show`: a spec's hosts (found by tags, beside the inventory), whether its nodes run,
//! each stage's last record, its runs and the last report. Reads only: no lock, nothing
//! changes (the local cloud's world is loaded read-only).

use std::process::ExitCode;

use clap::Args;

use super::progress::{TuningArgs, Ui};
use super::{Format, SpecArg, StateDirArg};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cfxm show -f examples/local.yaml
  cfxm show -f specs/latency-1k.yaml --format json | jq '.stages[] | select(.status != \"succeeded\")'")]
pub struct ShowArgs {
    #[command(flatten)]
    spec: SpecArg,
    #[command(flatten)]
    state: StateDirArg,
    /// Text for people, or JSON for machines.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    tuning: TuningArgs,
}

pub fn run(args: ShowArgs) -> ExitCode {
    let spec = match super::diagnostics::load_spec(&args.spec.spec) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runtime = match super::diagnostics::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let ui = Ui::new();
    let on_event = {
        let ui = ui.clone();
        move |e| ui.discover_event(e)
    };
    let result = runtime.block_on(crate::show::show(
        spec,
        &args.state.state_dir(),
        args.tuning.settings(),
        &on_event,
    ));
    ui.discovered();
    let code = match result {
        Err(e) => {
            eprint!("{}", super::render_diagnostic(&e));
            ExitCode::from(1)
        }
        Ok(shown) => {
            match args.format {
                Format::Text => print!("{}", crate::show::render_text(&shown)),
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&shown).expect("serializes")
                ),
            }
            ExitCode::SUCCESS
        }
    };
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}
